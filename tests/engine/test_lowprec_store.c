/*
 * test_lowprec_store.c — the tiered store with a low-precision companion
 * (store_tiered.h, mixed precision).
 *
 * Independent checks of what the store claims:
 *  - rule off (a companion, no rule): logits bit-identical to the memory
 *    store, nothing loaded low;
 *  - every load low (lp_always): logits bit-identical to a memory-store run
 *    of another model file, written here, whose expert tensors are the
 *    companion's (tu_gguf_with_tensors);
 *  - HOBBIT's rule: each miss's precision is the rule applied to the
 *    routing event's gate weights and ranks (recomputed here), and the
 *    logits are bit-identical to a run through a replay store that serves
 *    the i-th access from the model or the companion as the tiered run
 *    reported it (no cache, no policy: it only picks pointers);
 *  - bytes: bytes_demand is the sum of the real bytes of each miss's copy;
 *    with a budget in bytes the copies held never exceed it, and more low
 *    copies fit than high ones.
 */
#include "engine/formats.h"
#include "engine/lowprec.h"
#include "engine/session.h"
#include "engine/store_impl.h"
#include "engine/store_tiered.h"
#include "tests/engine/gguf_edit.h"
#include "tests/test.h"
#include "tests/util/model_util.h"

#include <stdlib.h>
#include <string.h>

#define N_TOK 12
#define MAX_ACC 4096

typedef struct access {
    int64_t pos;
    int layer, expert;
    bool low, miss;
} access;

typedef struct rec {
    access acc[MAX_ACC];
    int n_acc;
    /* routing: [pos][layer][k] */
    int32_t ids[N_TOK][8][8];
    float w[N_TOK][8][8];
    int k;
    uint64_t miss_bytes;
    const eng_model *m;
    const eng_lowprec *lp;
} rec;

static void on_cache(void *user, const eng_cache_event *ev)
{
    rec *r = user;
    if (ev->kind != ENG_CACHE_HIT && ev->kind != ENG_CACHE_MISS)
        return;
    REQUIRE(r->n_acc < MAX_ACC);
    r->acc[r->n_acc++] = (access){ev->pos, ev->layer, ev->expert, ev->low,
                                  ev->kind == ENG_CACHE_MISS};
    if (ev->kind == ENG_CACHE_MISS)
        r->miss_bytes += ev->low ? eng_lowprec_expert_bytes(r->lp, ev->layer)
                                 : eng_model_expert_bytes(r->m, ev->layer);
}

static void on_routing(void *user, const eng_routing_event *ev)
{
    rec *r = user;
    REQUIRE(ev->pos < N_TOK && ev->layer < 8 && ev->top_k <= 8);
    r->k = ev->top_k;
    memcpy(r->ids[ev->pos][ev->layer], ev->experts, (size_t)ev->top_k * sizeof *ev->experts);
    memcpy(r->w[ev->pos][ev->layer], ev->weights, (size_t)ev->top_k * sizeof *ev->weights);
}

static const int32_t k_toks[N_TOK] = {1, 17, 42, 99, 3, 250, 7, 7, 64, 300, 12, 5};

/* Logits after each token, decoded one by one through store st (NULL: the
 * memory store); *r gets the hooks' records when given. */
static float *run(const eng_model *m, eng_store *st, rec *r)
{
    eng_hooks h = {.user = r, .cache = on_cache, .routing = on_routing};
    eng_err e = {0};
    eng_session *s;
    REQUIRE_MSG(eng_session_open(&s, m, &(eng_session_opts){.n_threads = 1, .n_ctx = 32,
                                  .n_batch = 1, .store = st, .hooks = r ? &h : NULL}, &e) == 0,
                "%s", e.msg);
    const int64_t V = eng_model_hparams(m)->n_vocab;
    float *out = malloc((size_t)(N_TOK * V) * sizeof *out);
    REQUIRE(out);
    for (int i = 0; i < N_TOK; i++) {
        REQUIRE_MSG(eng_session_decode(s, k_toks[i], &e) == 0, "%s", e.msg);
        memcpy(out + i * V, eng_session_logits(s), (size_t)V * sizeof *out);
        if (st && !strcmp(eng_store_kind(st), "tiered")) {
            eng_tiered_stats ts;
            REQUIRE(eng_tiered_get_stats(st, &ts, &e) == 0);
            CHECK(ts.held_bytes <= ts.cache_bytes);
        }
    }
    eng_session_free(s);
    return out;
}

typedef struct fixture {
    eng_model *m;
    eng_lowprec *lp;
    const char *model_path, *lp_path;
    int64_t V;
} fixture;

static fixture setup(const char *preset, int type)
{
    fixture f = {0};
    f.model_path = tu_write_preset(preset, "f32", "m.gguf");
    f.m = tu_open(f.model_path);
    f.lp_path = tst_path("m.low.gguf");
    eng_err e = {0};
    REQUIRE_MSG(eng_lowprec_write(f.m, type, f.lp_path, NULL, NULL, &e) == 0, "%s", e.msg);
    REQUIRE_MSG(eng_lowprec_open(&f.lp, f.m, f.lp_path, &e) == 0, "%s", e.msg);
    f.V = eng_model_hparams(f.m)->n_vocab;
    return f;
}

static void teardown(fixture *f)
{
    eng_lowprec_free(f->lp);
    eng_model_free(f->m);
}

static rec *new_rec(const fixture *f)
{
    rec *r = calloc(1, sizeof *r);
    REQUIRE(r);
    r->m = f->m;
    r->lp = f->lp;
    return r;
}

static eng_store *open_store(fixture *f, eng_tiered_opts *o)
{
    o->lowprec = f->lp;
    eng_store *st;
    eng_err e = {0};
    REQUIRE_MSG(eng_store_open_tiered(&st, f->m, o, &e) == 0, "%s", e.msg);
    return st;
}

static eng_tiered_stats stats(eng_store *st)
{
    eng_tiered_stats ts;
    eng_err e;
    REQUIRE(eng_tiered_get_stats(st, &ts, &e) == 0);
    return ts;
}

TEST(rule_off_is_bit_identical)
{
    fixture f = setup("tiny-olmoe", ENG_TYPE_Q4_0);
    eng_tiered_opts o = eng_tiered_defaults();
    o.cache_experts = 5;
    eng_store *st = open_store(&f, &o);
    float *a = run(f.m, st, NULL), *b = run(f.m, NULL, NULL);
    CHECK(!memcmp(a, b, (size_t)(N_TOK * f.V) * sizeof *a));
    eng_tiered_stats ts = stats(st);
    CHECK(ts.total.misses > 0);
    CHECK_EQ_INT(ts.total.lp_loads, 0);
    CHECK_EQ_INT(ts.total.lp_served, 0);
    free(a);
    free(b);
    eng_store_free(st);
    teardown(&f);
}

/* Every expert low: the model with the companion's expert tensors. */
static void all_low(const char *preset, int type, eng_tier tier)
{
    fixture f = setup(preset, type);
    const eng_hparams *hp = eng_model_hparams(f.m);
    size_t n = (size_t)(hp->n_layer_moe * hp->n_expert);
    uint8_t *always = malloc(n);
    memset(always, 1, n);
    eng_tiered_opts o = eng_tiered_defaults();
    o.cache_experts = 3;
    o.tier = tier;
    o.lp_always = always;
    eng_store *st = open_store(&f, &o);
    rec *r = new_rec(&f);
    float *a = run(f.m, st, r);

    eng_model *swapped = tu_open(tu_gguf_with_tensors(f.model_path, "swapped.gguf", f.lp_path));
    float *b = run(swapped, NULL, NULL);
    CHECK(!memcmp(a, b, (size_t)(N_TOK * f.V) * sizeof *a));
    float *c = run(f.m, NULL, NULL);
    CHECK(memcmp(a, c, (size_t)(N_TOK * f.V) * sizeof *a) != 0); /* it did change */
    eng_tiered_stats ts = stats(st);
    CHECK_EQ_INT(ts.total.lp_served, ts.total.accesses);
    CHECK_EQ_INT(ts.total.lp_loads, ts.total.misses);
    CHECK_EQ_INT(ts.total.bytes_demand, r->miss_bytes);
    CHECK_EQ_INT(ts.total.lp_bytes, r->miss_bytes);
    free(a);
    free(b);
    free(c);
    free(r);
    free(always);
    eng_store_free(st);
    eng_model_free(swapped);
    teardown(&f);
}

TEST(all_low_equals_swapped_model_file) { all_low("tiny-olmoe", ENG_TYPE_Q4_0, ENG_TIER_FILE); }
TEST(all_low_equals_swapped_model_link) { all_low("tiny-qwen3moe", ENG_TYPE_Q8_0, ENG_TIER_LINK); }

/* ---- the replay store: the i-th access from the copy the tiered run used */

typedef struct replay {
    const rec *r;
    const eng_lowprec *lp;
    int i;
} replay;

static int rp_acquire(eng_store *s, int layer, int expert, int64_t pos, eng_expert_weights *out,
                      eng_err *err)
{
    replay *rp = s->impl;
    REQUIRE(rp->i < rp->r->n_acc);
    const access *a = &rp->r->acc[rp->i++];
    CHECK(a->layer == layer && a->expert == expert && a->pos == pos);
    return a->low ? eng_lowprec_locate(rp->lp, layer, expert, out, err)
                  : eng_expert_locate(s->m, layer, expert, out, err);
}

static const eng_store_ops replay_ops = {.kind = "replay", .acquire = rp_acquire, .max_held = 0};

/* The logits a of a tiered run equal a replay's of the copies it reported. */
static void check_replay(const fixture *f, const rec *r, const float *a)
{
    eng_store *rs = calloc(1, sizeof *rs);
    replay rp = {.r = r, .lp = f->lp};
    eng_store_init(rs, &replay_ops, f->m, &rp);
    float *b = run(f->m, rs, NULL);
    CHECK_EQ_INT(rp.i, r->n_acc);
    CHECK(!memcmp(a, b, (size_t)(N_TOK * f->V) * sizeof *a));
    free(b);
    eng_store_free(rs);
}

/* pregate: also prefetch with HOBBIT's adaptive pregate, whose low
 * prefetches a demand may take (a hit on a low copy) or upgrade. */
static void hobbit(double thr, bool last, eng_cache_scope scope, uint32_t slots, bool pregate)
{
    fixture f = setup("tiny-olmoe", ENG_TYPE_Q4_0);
    eng_tiered_opts o = eng_tiered_defaults();
    o.cache_experts = slots;
    o.scope = scope;
    o.lp_threshold = thr;
    o.lp_last = last;
    if (pregate) {
        o.prefetch = ENG_PREFETCH_PREGATE;
        o.pregate_ahead = 3;
        o.pregate_adaptive = 0.45;
    }
    eng_store *st = open_store(&f, &o);
    rec *r = new_rec(&f);
    float *a = run(f.m, st, r);
    eng_tiered_stats ts = stats(st);
    /* the decision, recomputed from the routing events */
    int n_low_miss = 0;
    for (int i = 0; i < r->n_acc; i++) {
        const access *ac = &r->acc[i];
        int j = 0;
        while (j < r->k && r->ids[ac->pos][ac->layer][j] != ac->expert)
            j++;
        REQUIRE(j < r->k);
        bool want = r->w[ac->pos][ac->layer][j] < thr || (last && j == r->k - 1);
        if (ac->miss)
            CHECK_MSG(ac->low == want, "access %d (pos %lld layer %d expert %d rank %d w %g): "
                      "low %d, rule says %d", i, (long long)ac->pos, ac->layer, ac->expert, j,
                      r->w[ac->pos][ac->layer][j], ac->low, want);
        else
            CHECK(!ac->low || want); /* a hit serves the low copy only for a low need */
        n_low_miss += ac->miss && ac->low;
    }
    CHECK_EQ_INT(ts.total.accesses, r->n_acc);
    CHECK_EQ_INT(ts.total.lp_loads, n_low_miss + ts.total.pf_low);
    CHECK(pregate ? ts.total.pf_low > 0 && ts.total.pf_low < ts.total.pf_issued &&
                        ts.total.pg_skipped > 0
                  : ts.total.pf_issued == 0);
    CHECK(ts.total.lp_served > 0 && ts.total.lp_served < ts.total.accesses); /* a mix */
    CHECK(ts.total.lp_upgrades > 0); /* high needs of low-resident experts happened */
    CHECK(ts.total.evictions >= ts.total.lp_upgrades);
    CHECK_EQ_INT(ts.total.bytes_demand, r->miss_bytes);
    check_replay(&f, r, a); /* the same precisions, replayed without a cache */
    free(a);
    free(r);
    eng_store_free(st);
    teardown(&f);
}

TEST(hobbit_threshold) { hobbit(0.12, false, ENG_SCOPE_GLOBAL, 24, false); }
TEST(hobbit_threshold_or_last_per_layer) { hobbit(0.08, true, ENG_SCOPE_LAYER, 3, false); }
TEST(hobbit_pregate_prefetches_low) { hobbit(0.12, true, ENG_SCOPE_GLOBAL, 32, true); }

/* A pregate hint carries the predicted gate weights: each prefetch takes
 * the copy the rule gives the predicted weight and rank, and a demand with
 * the same weights hits it in that precision. With an adaptive depth an
 * unconfident prediction ends the round: the store says stop, counts the
 * layers left out, and ignores a caller that goes on. */
TEST(pregate_hint_weights_choose_precision)
{
    fixture f = setup("tiny-olmoe", ENG_TYPE_Q4_0);
    const int k = (int)eng_model_hparams(f.m)->n_expert_used;
    REQUIRE(k == 4 && eng_model_hparams(f.m)->n_layer_moe >= 4);
    eng_tiered_opts o = eng_tiered_defaults();
    o.cache_experts = 16;
    o.lp_threshold = 0.2;
    o.lp_last = true;
    o.prefetch = ENG_PREFETCH_PREGATE;
    o.pregate_ahead = 3;
    o.pregate_adaptive = 0.5;
    eng_store *st = open_store(&f, &o);
    const int32_t a[] = {0, 1, 2, 3}, b[] = {4, 5, 6, 7}, c[] = {8, 9, 10, 11};
    const float wa[] = {0.4f, 0.3f, 0.2f, 0.1f};
    const float wb[] = {0.6f, 0.25f, 0.1f, 0.05f}; /* confident: 0.6 of the sum */
    const float wc[] = {0.3f, 0.3f, 0.25f, 0.15f}; /* not */
    const bool low_b[] = {false, false, true, true}; /* 0.1 < 0.2; last */
    eng_store_prepare_w(st, 0, a, wa, k, 0);
    CHECK(eng_store_hint(st, 1, b, wb, k, 0));
    CHECK(!eng_store_hint(st, 2, c, wc, k, 0)); /* layer 3 left out */
    CHECK(!eng_store_hint(st, 3, a, wa, k, 0)); /* ignored */
    eng_tiered_stats ts = stats(st);
    CHECK_EQ_INT(ts.total.pf_issued, 2 * k);
    CHECK_EQ_INT(ts.layers[1].pf_low, 2);
    CHECK_EQ_INT(ts.layers[2].pf_low, 1); /* the last rank */
    CHECK_EQ_INT(ts.total.pg_skipped, 1);
    CHECK_EQ_INT(ts.layers[3].pg_skipped, 1);
    eng_store_prepare_w(st, 1, b, wb, k, 0);
    for (int j = 0; j < k; j++) {
        eng_expert_weights w;
        eng_err e;
        REQUIRE_MSG(eng_store_acquire(st, 1, b[j], 0, &w, &e) == 0, "%s", e.msg);
        CHECK(!w.miss && w.low == low_b[j]);
        eng_store_release(st, &w);
    }
    /* a high need of a low prefetch (expert 6 now weighs 0.3): upgraded */
    const int32_t b2[] = {6, 4, 5, 7};
    const float wb2[] = {0.3f, 0.3f, 0.3f, 0.1f};
    eng_store_prepare_w(st, 1, b2, wb2, k, 1);
    eng_expert_weights w;
    eng_err e;
    REQUIRE_MSG(eng_store_acquire(st, 1, 6, 1, &w, &e) == 0, "%s", e.msg);
    CHECK(w.miss && !w.low);
    eng_store_release(st, &w);
    ts = stats(st);
    CHECK_EQ_INT(ts.total.lp_upgrades, 1);
    eng_store_free(st);
    teardown(&f);
}

/* EdgeMoE: an importance map; every access of a marked expert is low, of
 * the others high, prefetched or not (pregate prefetches here). */
TEST(importance_map_fixes_precision)
{
    fixture f = setup("tiny-olmoe", ENG_TYPE_Q4_0);
    const eng_hparams *hp = eng_model_hparams(f.m);
    const int L = (int)hp->n_layer_moe, E = (int)hp->n_expert;
    uint64_t *counts = calloc((size_t)(L * E), sizeof *counts);
    uint8_t *map = malloc((size_t)(L * E));
    for (int i = 0; i < L * E; i++)
        counts[i] = (uint64_t)((i * 7) % 11);
    eng_lowprec_importance_map(counts, L, E, 0.5, map);
    eng_tiered_opts o = eng_tiered_defaults();
    o.cache_experts = 10;
    o.prefetch = ENG_PREFETCH_PREGATE;
    o.lp_always = map;
    eng_store *st = open_store(&f, &o);
    rec *r = new_rec(&f);
    float *a = run(f.m, st, r);
    int n_low = 0;
    for (int i = 0; i < r->n_acc; i++) {
        const access *ac = &r->acc[i];
        CHECK_EQ_INT(ac->low, map[ac->layer * E + ac->expert]);
        n_low += ac->low;
    }
    CHECK(n_low > 0 && n_low < r->n_acc);
    eng_tiered_stats ts = stats(st);
    CHECK_EQ_INT(ts.total.lp_served, n_low);
    CHECK(ts.total.pf_issued > 0);
    CHECK_EQ_INT(ts.total.lp_upgrades, 0);
    check_replay(&f, r, a);
    free(a);
    free(r);
    free(map);
    free(counts);
    eng_store_free(st);
    teardown(&f);
}

TEST(byte_budget_counts_copies_held)
{
    fixture f = setup("tiny-olmoe", ENG_TYPE_Q4_0);
    const uint64_t hb = eng_model_expert_bytes(f.m, 0), lb = eng_lowprec_expert_bytes(f.lp, 0);
    eng_tiered_opts o = eng_tiered_defaults();
    o.cache_bytes = 4 * hb;
    o.lp_threshold = 0.12;
    eng_store *st = open_store(&f, &o);
    eng_tiered_stats ts = stats(st);
    CHECK_EQ_INT(ts.slots, 4 * hb / lb); /* as many slots as low copies fit */
    CHECK_EQ_INT(ts.cache_bytes, 4 * hb);
    rec *r = new_rec(&f);
    float *a = run(f.m, st, r); /* checks held_bytes <= cache_bytes after each token */
    ts = stats(st);
    CHECK(ts.held_bytes > 0 && ts.held_bytes <= 4 * hb);
    CHECK_EQ_INT(ts.total.bytes_demand, r->miss_bytes);
    CHECK(ts.total.lp_loads > 0);
    check_replay(&f, r, a); /* the loader-sized slot buffers hold the right bytes */
    /* a budget below the largest copy is refused */
    o.cache_bytes = hb - 1;
    eng_store *bad = NULL;
    eng_err e = {0};
    CHECK_EQ_INT(eng_store_open_tiered(&bad, f.m, &o, &e), ENG_EINVAL);
    CHECK_CONTAINS(e.msg, "holds no expert");
    /* a rule without a companion is refused */
    eng_tiered_opts o2 = eng_tiered_defaults();
    o2.cache_experts = 4;
    o2.lp_last = true;
    CHECK_EQ_INT(eng_store_open_tiered(&bad, f.m, &o2, &e), ENG_EINVAL);
    CHECK_CONTAINS(e.msg, "companion");
    free(a);
    free(r);
    eng_store_free(st);
    teardown(&f);
}
