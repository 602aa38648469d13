/*
 * test_premoe.c — task-adaptive expert subsets (PreMoe;
 * eng_session_opts.expert_keep, eng_route_row_masked):
 *   - the masked router against the plain router given -inf where the mask
 *     drops (logits for softmax-then-top-k and top-k-then-softmax, the
 *     selection bias for sigmoid), on random logits, every gating kind;
 *   - a mask that keeps every expert is the full model, bit for bit, for
 *     every tiny architecture (grouped routing included);
 *   - a subset equals a model file whose router bias (gpt-oss) or selection
 *     bias (glm4moe) is -inf for the dropped experts, written independently
 *     by patching the GGUF bytes: tokens and logits bit-identical, through
 *     the batched prefill and decode;
 *   - a softmax model routes only to kept experts, and bad masks are errors.
 */
#include "engine/forward_impl.h"
#include "engine/gguf.h"
#include "engine/model.h"
#include "engine/sample.h"
#include "engine/session.h"
#include "engine/vecops.h"
#include "tests/test.h"
#include "tests/util/model_util.h"

#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static uint64_t rng = 88172645463325252ull;

static float frand(void)
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (float)((double)(rng >> 11) / 9007199254740992.0 * 8.0 - 4.0);
}

TEST(masked_router_equals_minus_inf)
{
    enum { E = 12 };
    float l[E], li[E], bias[E], bias_i[E], scratch[2 * E], w1[8], w2[8];
    int32_t a[8], b[8];
    uint8_t keep[E];
    int bad = 0, trials = 0;
    const eng_vecops *vo = &eng_vecops_scalar;
    for (int g = 0; g < 3; g++)
        for (int k = 1; k <= 4; k++)
            for (int it = 0; it < 200; it++) {
                eng_hparams hp = {.n_expert = E, .n_expert_used = k, .gating = (eng_gating)g,
                                  .expert_weights_norm = it % 2, .expert_weights_scale = 1.5f,
                                  .n_group = 1, .n_group_used = 1};
                int kept = 0;
                for (int e = 0; e < E; e++) {
                    keep[e] = (rng >> (e % 60)) & 1;
                    kept += keep[e];
                    l[e] = frand();
                    bias[e] = g == ENG_GATING_SIGMOID && it % 3 ? frand() * 0.25f : 0;
                }
                for (int e = 0; kept < k && e < E; e++)
                    if (!keep[e])
                        keep[e] = 1, kept++;
                const float *sb = g == ENG_GATING_SIGMOID ? bias : NULL;
                const eng_vecops *v = eng_vecops_get((eng_simd)(it % ENG_SIMD_COUNT));
                vo = v ? v : &eng_vecops_scalar; /* every SIMD path this CPU has */
                eng_route_row_masked(vo, &hp, l, sb, keep, scratch, a, w1);
                /* reference: -inf logits, or -inf selection bias (sigmoid) */
                for (int e = 0; e < E; e++) {
                    li[e] = keep[e] || g == ENG_GATING_SIGMOID ? l[e] : -INFINITY;
                    bias_i[e] = keep[e] ? bias[e] : -INFINITY;
                }
                eng_route_row(vo, &hp, li, g == ENG_GATING_SIGMOID ? bias_i : NULL, scratch, b, w2);
                bad += memcmp(a, b, (size_t)k * sizeof *a) || memcmp(w1, w2, (size_t)k * 4);
                for (int j = 0; j < k; j++)
                    bad += !keep[a[j]];
                trials++;
            }
    CHECK_MSG(bad == 0, "%d of %d routings differ", bad, trials);
    /* groups: a dropping mask lifts the group limit, a full mask keeps it */
    float s8[8] = {3, 2.9f, -1, -1, 0.5f, 0.4f, -3, -3};
    eng_hparams hp = {.n_expert = 8, .n_expert_used = 2, .gating = ENG_GATING_SIGMOID,
                      .n_group = 4, .n_group_used = 1, .expert_weights_scale = 1};
    uint8_t all[8] = {1, 1, 1, 1, 1, 1, 1, 1}, some[8] = {0, 1, 1, 1, 1, 1, 1, 1};
    int32_t x[2], y[2];
    eng_route_row(vo, &hp, s8, NULL, scratch, x, w1);
    eng_route_row_masked(vo, &hp, s8, NULL, all, scratch, y, w2);
    CHECK(x[0] == y[0] && x[1] == y[1] && x[0] == 0 && x[1] == 1);
    eng_route_row_masked(vo, &hp, s8, NULL, some, scratch, y, w2);
    CHECK_MSG(y[0] == 1 && y[1] == 4, "got %d %d", y[0], y[1]); /* with the limit: 4, 5 */
}

enum { N_PROMPT = 6, N_GEN = 5 };

typedef struct run {
    int32_t tokens[N_GEN];
    float *logits;            /* [N_GEN][V] */
    int64_t routed, outside;  /* routing events, experts chosen outside keep */
    const uint8_t *keep;
    int E;
} run;

static void on_route(void *user, const eng_routing_event *ev)
{
    run *r = user;
    r->routed++;
    for (int j = 0; r->keep && j < ev->top_k; j++)
        r->outside += !r->keep[ev->layer * r->E + ev->experts[j]];
}

static void run_model(const char *path, const uint8_t *keep, int64_t n_batch, run *r)
{
    eng_model *m = tu_open(path);
    const eng_hparams *hp = eng_model_hparams(m);
    r->logits = tst_alloc((size_t)N_GEN * (size_t)hp->n_vocab * sizeof(float));
    r->keep = keep;
    r->E = (int)hp->n_expert;
    eng_hooks h = {.user = r, .routing = on_route};
    eng_session *s;
    eng_err e;
    eng_session_opts so = {.n_threads = 2, .n_ctx = 32, .n_batch = n_batch, .hooks = &h,
                           .expert_keep = keep};
    REQUIRE_MSG(eng_session_open(&s, m, &so, &e) == ENG_OK, "%s", e.msg);
    int32_t prompt[N_PROMPT];
    for (int i = 0; i < N_PROMPT; i++)
        prompt[i] = (int32_t)((i * 41 + 5) % hp->n_vocab);
    REQUIRE_MSG(eng_session_eval(s, prompt, N_PROMPT, &e) == ENG_OK, "%s", e.msg);
    for (int i = 0; i < N_GEN; i++) {
        r->tokens[i] = eng_argmax(eng_session_logits(s), hp->n_vocab);
        REQUIRE(eng_session_decode(s, r->tokens[i], &e) == ENG_OK);
        memcpy(r->logits + (size_t)i * hp->n_vocab, eng_session_logits(s),
               (size_t)hp->n_vocab * sizeof(float));
    }
    eng_session_free(s);
    eng_model_free(m);
}

static int same(const run *a, const run *b, int64_t V)
{
    return !memcmp(a->tokens, b->tokens, sizeof a->tokens) &&
           !memcmp(a->logits, b->logits, (size_t)N_GEN * (size_t)V * sizeof(float));
}

static int64_t vocab_of(const char *path)
{
    eng_model *m = tu_open(path);
    int64_t v = eng_model_hparams(m)->n_vocab;
    eng_model_free(m);
    return v;
}

/* A mask that keeps every expert, for every tiny architecture. */
TEST(subset_of_all_experts_is_the_full_model)
{
    const char *presets[] = {"tiny-mixtral", "tiny-qwen2moe", "tiny-qwen3moe", "tiny-olmoe",
                             "tiny-deepseek2", "tiny-deepseek2-lite", "tiny-gpt-oss",
                             "tiny-glm4moe"};
    for (size_t p = 0; p < sizeof presets / sizeof *presets; p++) {
        const char *path = tu_write_preset(presets[p], "q8_0", "m.gguf");
        eng_model *m = tu_open(path);
        const eng_hparams *hp = eng_model_hparams(m);
        size_t n = (size_t)hp->n_layer_moe * (size_t)hp->n_expert;
        uint8_t *all = tst_alloc(n);
        memset(all, 7, n); /* any non-zero byte keeps */
        eng_model_free(m);
        for (int64_t nb = 1; nb <= 16; nb += 15) {
            run a = {0}, b = {0};
            run_model(path, NULL, nb, &a);
            run_model(path, all, nb, &b);
            CHECK_MSG(same(&a, &b, vocab_of(path)), "%s batch %lld: a full mask changed the "
                      "output", presets[p], (long long)nb);
        }
    }
}

/* Copies src to name with float32 value -inf at elements `drop` of tensor
 * `tensor` of each MoE layer (il = model layer). */
static const char *patch_bias(const char *src, const char *name, const char *fmt, int l0,
                              int L, int E, const uint8_t *keep)
{
    const char *dst = tst_path(name);
    FILE *in = fopen(src, "rb"), *out = fopen(dst, "wb");
    REQUIRE(in && out);
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0)
        REQUIRE(fwrite(buf, 1, n, out) == n);
    fclose(in);
    fclose(out);
    eng_gguf *g;
    eng_err e;
    REQUIRE(eng_gguf_open(&g, src, &e) == ENG_OK);
    int fd = open(dst, O_WRONLY);
    REQUIRE(fd >= 0);
    const float minf = -INFINITY;
    for (int l = 0; l < L; l++) {
        char tn[64];
        snprintf(tn, sizeof tn, fmt, l + l0);
        const eng_gguf_tensor *t = eng_gguf_find_tensor(g, tn);
        REQUIRE_MSG(t && t->type == 0 && t->ne[0] == E, "tensor %s", tn);
        for (int x = 0; x < E; x++)
            if (!keep[l * E + x])
                REQUIRE(pwrite(fd, &minf, 4, (off_t)(t->file_offset + 4u * (unsigned)x)) == 4);
    }
    close(fd);
    eng_gguf_free(g);
    return dst;
}

static void subset_vs_patched(const char *preset, const char *type, const char *fmt)
{
    const char *path = tu_write_preset(preset, type, "m.gguf");
    eng_model *m = tu_open(path);
    const eng_hparams *hp = eng_model_hparams(m);
    const int L = (int)hp->n_layer_moe, E = (int)hp->n_expert, k = (int)hp->n_expert_used;
    const int l0 = (int)hp->n_layer_dense;
    const int64_t V = hp->n_vocab;
    eng_model_free(m);
    uint8_t *keep = tst_alloc((size_t)L * E);
    for (int l = 0; l < L; l++) /* keep k + l experts of each layer, spread out */
        for (int x = 0; x < E; x++)
            keep[l * E + x] = (x * 5 + l * 3) % E < k + l;
    const char *ref = patch_bias(path, "ref.gguf", fmt, l0, L, E, keep);
    for (int64_t nb = 1; nb <= 16; nb += 15) {
        run a = {0}, b = {0}, full = {0};
        run_model(path, keep, nb, &a);
        run_model(ref, NULL, nb, &b);
        run_model(path, NULL, nb, &full);
        CHECK_MSG(same(&a, &b, V), "%s batch %lld: subset != patched model", preset,
                  (long long)nb);
        CHECK_MSG(!same(&a, &full, V), "%s: the subset changed nothing", preset);
        CHECK(a.outside == 0 && a.routed == (int64_t)(N_PROMPT + N_GEN) * L);
    }
}

TEST(subset_equals_router_bias_minus_inf_gpt_oss)
{
    subset_vs_patched("tiny-gpt-oss", "q8_0", "blk.%d.ffn_gate_inp.bias");
}

TEST(subset_equals_selection_bias_minus_inf_glm4moe)
{
    subset_vs_patched("tiny-glm4moe", "f32", "blk.%d.exp_probs_b.bias");
}

TEST(subset_softmax_routes_only_kept_and_bad_masks)
{
    const char *path = tu_write_preset("tiny-olmoe", "f32", "m.gguf");
    eng_model *m = tu_open(path);
    const eng_hparams *hp = eng_model_hparams(m);
    const int L = (int)hp->n_layer_moe, E = (int)hp->n_expert, k = (int)hp->n_expert_used;
    uint8_t *keep = tst_alloc((size_t)L * E);
    for (int i = 0; i < L * E; i++)
        keep[i] = i % E >= E - k - 1; /* the last k + 1 experts */
    run a = {0}, full = {0};
    run_model(path, keep, 4, &a);
    run_model(path, NULL, 4, &full);
    CHECK(a.outside == 0 && a.routed == (int64_t)(N_PROMPT + N_GEN) * L);
    CHECK(!same(&a, &full, hp->n_vocab));
    keep[E - 1] = 0;
    keep[E - 2] = 0; /* layer 0 keeps k - 1 */
    eng_session *s;
    eng_err e;
    CHECK(eng_session_open(&s, m, &(eng_session_opts){.n_threads = 1, .expert_keep = keep}, &e) ==
          ENG_EINVAL);
    CHECK_CONTAINS(e.msg, "MoE layer 0 keeps");
    eng_model_free(m);
}
