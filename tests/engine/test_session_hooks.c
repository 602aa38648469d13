/*
 * test_session_hooks.c — what the engine reports through the hook table:
 * routing events (count, ids, weights, agreement with the reference),
 * region begin/end balance, token_done; and the expert store's layout and
 * statistics.
 */
#include "engine/gguf.h"
#include "engine/session.h"
#include "engine/store.h"
#include "tests/util/model_util.h"
#include "tests/engine/ref_forward.h"
#include "tests/test.h"

#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <unistd.h>

enum { MAXEV = 4096 };

typedef struct rec {
    int n_ev, n_prefill, bad_ids, bad_sum, n_done, depth_err;
    int depth[ENG_REGION_COUNT];
    int begins[ENG_REGION_COUNT];
    int k, n_expert, norm;
    int32_t ids[MAXEV][8];
    int layer[MAXEV];
    int64_t pos[MAXEV];
} rec;

static void on_routing(void *u, const eng_routing_event *ev)
{
    rec *r = u;
    if (r->n_ev >= MAXEV)
        return;
    double sum = 0;
    for (int j = 0; j < ev->top_k; j++) {
        if (ev->experts[j] < 0 || ev->experts[j] >= r->n_expert)
            r->bad_ids++;
        for (int i = 0; i < j; i++)
            r->bad_ids += ev->experts[i] == ev->experts[j];
        if (j + 1 < ev->top_k && ev->weights[j] < ev->weights[j + 1])
            r->bad_ids++; /* router order: descending gate */
        sum += ev->weights[j];
        r->ids[r->n_ev][j] = ev->experts[j];
    }
    if (r->norm ? fabs(sum - 1) > 1e-5 : !(sum > 0 && sum <= 1 + 1e-6))
        r->bad_sum++;
    r->layer[r->n_ev] = ev->layer;
    r->pos[r->n_ev] = ev->pos;
    r->n_prefill += ev->is_prefill;
    r->n_ev++;
}

static void on_begin(void *u, eng_region g)
{
    rec *r = u;
    r->depth[g]++;
    r->begins[g]++;
}

static void on_end(void *u, eng_region g)
{
    rec *r = u;
    if (--r->depth[g] < 0)
        r->depth_err++;
}

static void on_done(void *u, int64_t pos)
{
    rec *r = u;
    if (pos != r->n_done)
        r->depth_err++;
    r->n_done++;
}

static void check_routing(const char *preset, int norm)
{
    eng_model *m = tu_open(tu_write_preset(preset, "f32", "h.gguf"));
    const eng_hparams *hp = eng_model_hparams(m);
    rec *r = tst_alloc(sizeof *r);
    memset(r, 0, sizeof *r);
    r->k = (int)hp->n_expert_used;
    r->n_expert = (int)hp->n_expert;
    r->norm = norm;
    eng_hooks h = {.user = r, .routing = on_routing, .region_begin = on_begin,
                   .region_end = on_end, .token_done = on_done};
    eng_session *s = NULL;
    eng_err e = {0};
    REQUIRE(eng_session_open(&s, m, &(eng_session_opts){.n_threads = 2, .hooks = &h}, &e) == 0);
    int32_t toks[6] = {3, 9, 27, 81, 243, 100};
    REQUIRE(eng_session_eval(s, toks, 4, &e) == 0);
    REQUIRE(eng_session_decode(s, toks[4], &e) == 0);
    REQUIRE(eng_session_decode(s, toks[5], &e) == 0);
    CHECK_EQ_INT(r->n_ev, 6 * hp->n_layer);
    CHECK_EQ_INT(r->n_prefill, 4 * hp->n_layer);
    CHECK_EQ_INT(r->bad_ids, 0);
    CHECK_EQ_INT(r->bad_sum, 0);
    CHECK_EQ_INT(r->n_done, 6);
    CHECK_EQ_INT(r->depth_err, 0);
    for (int g = 0; g < ENG_REGION_COUNT; g++)
        CHECK_MSG(r->depth[g] == 0, "region %s unbalanced", eng_region_name(g));
    CHECK(r->begins[ENG_REGION_ATTENTION] == 6 * hp->n_layer ||
          r->begins[ENG_REGION_ATTENTION] == 3 * hp->n_layer); /* per token or per batch */
    CHECK(r->begins[ENG_REGION_EXPERT_FFN] > 0 && r->begins[ENG_REGION_LM_HEAD] == 3);
    /* The same experts as the reference, per (token, layer). */
    int32_t *ref_ids = tst_alloc(sizeof(int32_t) * 6 * hp->n_layer * r->k);
    REQUIRE(ref_routing(m, toks, 6, ref_ids) == 0);
    int mismatch = 0;
    for (int i = 0; i < r->n_ev; i++)
        for (int j = 0; j < r->k; j++)
            mismatch += r->ids[i][j] != ref_ids[(r->pos[i] * hp->n_layer + r->layer[i]) * r->k + j];
    CHECK_MSG(mismatch == 0, "%s: %d routing ids differ from the reference", preset, mismatch);
    eng_session_free(s);
    eng_model_free(m);
}

TEST(routing_events_mixtral) { check_routing("tiny-mixtral", 1); }
TEST(routing_events_qwen2moe) { check_routing("tiny-qwen2moe", 0); }
TEST(routing_events_qwen3moe) { check_routing("tiny-qwen3moe", 1); }
TEST(routing_events_olmoe) { check_routing("tiny-olmoe", 0); }

/* An expert's slices sit at e * ne1 * row_bytes of each stacked tensor, and
 * the file bytes at file_offset are the bytes the mapping shows. */
TEST(store_expert_layout)
{
    const char *path = tu_write_preset("tiny-olmoe", "q8_0", "s.gguf");
    eng_model *m = tu_open(path);
    eng_err e = {0};
    eng_expert_weights w;
    REQUIRE(eng_expert_locate(m, 2, 5, &w, &e) == 0);
    const eng_gguf_tensor *t = eng_gguf_find_tensor(eng_model_gguf(m), "blk.2.ffn_down_exps.weight");
    REQUIRE(t);
    CHECK_EQ_INT(w.mat[ENG_SLICE_DOWN].file_offset, t->file_offset + 5 * (uint64_t)t->ne[1] * t->row_bytes);
    CHECK_EQ_INT(w.mat[ENG_SLICE_DOWN].n_in, t->ne[0]);
    CHECK_EQ_INT(w.mat[ENG_SLICE_DOWN].n_out, t->ne[1]);
    CHECK_EQ_INT(w.bytes, eng_model_expert_bytes(m, 2));
    size_t nb = w.mat[ENG_SLICE_GATE].n_out * w.mat[ENG_SLICE_GATE].row_bytes;
    unsigned char *buf = tst_alloc(nb);
    int fd = open(path, O_RDONLY);
    REQUIRE(fd >= 0);
    CHECK_EQ_INT(pread(fd, buf, nb, (off_t)w.mat[ENG_SLICE_GATE].file_offset), (long long)nb);
    close(fd);
    CHECK(memcmp(buf, w.mat[ENG_SLICE_GATE].data, nb) == 0);
    CHECK_EQ_INT(eng_expert_locate(m, 2, 16, &w, &e), ENG_EINVAL);
    CHECK_EQ_INT(eng_expert_locate(m, 4, 0, &w, &e), ENG_EINVAL);
    eng_model_free(m);
}

static void count_cache(void *u, const eng_cache_event *ev)
{
    (*(int *)u) += ev->kind == ENG_CACHE_HIT;
}

TEST(store_stats_and_cache_hook)
{
    eng_model *m = tu_open(tu_write_preset("tiny-mixtral", "f32", "s.gguf"));
    const eng_hparams *hp = eng_model_hparams(m);
    eng_err e = {0};
    eng_store *st = NULL;
    REQUIRE(eng_store_open_memory(&st, m, &e) == 0);
    CHECK_EQ_STR(eng_store_kind(st), "memory");
    int hits = 0;
    eng_hooks h = {.user = &hits, .cache = count_cache};
    eng_session *s = NULL;
    REQUIRE(eng_session_open(&s, m, &(eng_session_opts){.n_threads = 1, .store = st, .hooks = &h},
                             &e) == 0);
    for (int i = 0; i < 3; i++)
        REQUIRE(eng_session_decode(s, 10 + i, &e) == 0);
    eng_store_stats ss;
    eng_store_get_stats(st, &ss);
    CHECK_EQ_INT(ss.acquires, 3 * hp->n_layer * hp->n_expert_used);
    CHECK_EQ_INT(ss.hits, ss.acquires);
    CHECK_EQ_INT(ss.misses, 0);
    CHECK_EQ_INT(hits, (int)ss.acquires);
    eng_session_free(s);
    eng_store_free(st); /* borrowed by the session: still ours */
    eng_model_free(m);
}

TEST(decode_bytes_counts_k_experts)
{
    eng_model *m = tu_open(tu_write_preset("tiny-olmoe", "f32", "b.gguf"));
    const eng_hparams *hp = eng_model_hparams(m);
    uint64_t per_expert = (uint64_t)3 * hp->n_embd * hp->n_ff_exp * 4;
    CHECK_EQ_INT(eng_model_expert_bytes(m, 0), per_expert);
    CHECK(eng_model_decode_bytes(m) > hp->n_layer * hp->n_expert_used * per_expert);
    CHECK(eng_model_decode_bytes(m) < hp->n_layer * hp->n_expert * per_expert);
    eng_model_free(m);
}
