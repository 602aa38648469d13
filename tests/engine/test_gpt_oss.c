/*
 * test_gpt_oss.c — the gpt-oss architecture (attention sinks, sliding-window
 * layers with a ring KV cache, q/k/v/output biases, router and expert
 * biases, SwiGLU-OAI, YaRN without a log multiplier) against independent
 * computations:
 *   - the naive reference (ref_forward.c: full causal attention with the
 *     window as a mask, the sink as one more softmax logit), with prompts
 *     longer than the window of 8, within 1e-4 relative (f32, bf16, q8_0);
 *   - prefill against token by token, chunks that wrap the ring, 1/2/3
 *     threads bit for bit;
 *   - eng_route_row's top-k-then-softmax against a brute-force subset
 *     search, eng_act_row's SwiGLU-OAI against the formula at the clamps;
 *   - rewind inside and beyond what the window layers keep;
 *   - hostile files: each missing or mis-shaped part is a clear error.
 * The offloading invariants are in test_offload.c.
 */
#include "engine/forward_impl.h"
#include "engine/hooks.h"
#include "engine/session.h"
#include "tests/engine/gguf_edit.h"
#include "tests/util/model_util.h"
#include "tests/engine/ref_forward.h"
#include "tests/test.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { NV = 512, NT = 30 }; /* tiny-gpt-oss: vocabulary; tokens, > window 8 */

static void tokens(int32_t *t, int n, int mul)
{
    for (int i = 0; i < n; i++)
        t[i] = (i * mul + 11) % NV;
}

/* Decode and prefill of NT tokens against the reference, which models
 * decode's conversion of each matvec input to the weight type's partner
 * form; the bounds of test_forward.c (ref_bound). */
static void check_ref(const char *type)
{
    eng_model *m = tu_open(tu_write_preset("tiny-gpt-oss", type, "oss.gguf"));
    const eng_hparams *hp = eng_model_hparams(m);
    CHECK_EQ_INT(hp->n_swa, 8);
    int32_t t[NT];
    tokens(t, NT, 37);
    eng_session *s = tu_session(m, 2, 64, 0);
    eng_err e = {0};
    double *ref = NULL, tie;
    REQUIRE(ref_forward_tie(m, t, NT, REF_ACT_Q8, &ref, &tie) == 0);
    for (int i = 0; i < NT; i++)
        REQUIRE_MSG(eng_session_decode(s, t[i], &e) == 0, "%s", e.msg);
    double dec = ref_rel_err(eng_session_logits(s), ref, NV);
    free(ref);
    REQUIRE(ref_forward(m, t, NT, REF_ACT_PREFILL, &ref) == 0);
    eng_session_reset(s);
    REQUIRE_MSG(eng_session_eval(s, t, NT, &e) == 0, "%s", e.msg);
    double pre = ref_rel_err(eng_session_logits(s), ref, NV);
    printf("tiny-gpt-oss %s: decode %.3g, prefill %.3g, closest tie %.2g\n", type, dec, pre, tie);
    CHECK_MSG(dec <= ref_bound(type, true, tie), "%s decode: rel err %g", type, dec);
    CHECK_MSG(pre <= ref_bound(type, false, tie), "%s prefill: rel err %g", type, pre);
    free(ref);
    eng_session_free(s);
    eng_model_free(m);
}

TEST(ref_tiny_gpt_oss)
{
    check_ref("f32");
    check_ref("bf16");
    check_ref("q8_0");
    check_ref("mxfp4");
}

/* Prefill in one batch and in chunks of 5 (the ring of the window layers
 * wraps inside a chunk) against token by token; threads bit for bit. */
TEST(prefill_chunks_threads)
{
    const char *path = tu_write_preset("tiny-gpt-oss", "f32", "p.gguf");
    int32_t t[NT];
    tokens(t, NT, 53);
    float *dec = tu_decode_all(path, t, NT), *last = dec + (NT - 1) * NV;
    eng_model *m = tu_open(path);
    float out[4][NV];
    const int threads[4] = {1, 2, 3, 2}, batch[4] = {0, 0, 0, 5};
    eng_err e = {0};
    for (int c = 0; c < 4; c++) {
        eng_session *s = tu_session(m, threads[c], 64, batch[c]);
        REQUIRE_MSG(eng_session_eval(s, t, NT, &e) == 0, "%s", e.msg);
        memcpy(out[c], eng_session_logits(s), sizeof out[c]);
        eng_session_free(s);
    }
    for (int c = 0; c < 4; c++) {
        double d = tu_max_diff(out[c], last, NV);
        CHECK_MSG(d <= 1e-5, "case %d (%d threads, batch %d): prefill vs decode %g", c,
                  threads[c], batch[c], d);
    }
    CHECK_MSG(!memcmp(out[0], out[1], sizeof out[0]) && !memcmp(out[0], out[2], sizeof out[0]),
              "1, 2 and 3 threads differ");
    eng_model_free(m);
}

/* A context longer than anything the window layers keep: the ring cache
 * (n_swa + n_batch - 1 rows) gives the reference's logits at position 100. */
TEST(long_context_through_the_ring)
{
    enum { N = 100 };
    eng_model *m = tu_open(tu_write_preset("tiny-gpt-oss", "f32", "long.gguf"));
    int32_t t[N];
    tokens(t, N, 101);
    eng_session *s = tu_session(m, 2, 128, 16);
    eng_err e = {0};
    REQUIRE(eng_session_eval(s, t, N - 10, &e) == 0);
    for (int i = N - 10; i < N; i++)
        REQUIRE(eng_session_decode(s, t[i], &e) == 0);
    double *ref = NULL;
    REQUIRE(ref_forward(m, t, N, REF_ACT_EXACT, &ref) == 0);
    double err = ref_rel_err(eng_session_logits(s), ref, NV);
    CHECK_MSG(err <= 1e-4, "position %d: rel err %g", N, err);
    free(ref);
    eng_session_free(s);
    eng_model_free(m);
}

/* Rewinding within what the window layers keep repeats the same logits;
 * rewinding further back is refused with the reason. */
TEST(rewind_within_the_window_only)
{
    eng_model *m = tu_open(tu_write_preset("tiny-gpt-oss", "f32", "rw.gguf"));
    int32_t t[40];
    tokens(t, 40, 29);
    eng_session *s = tu_session(m, 1, 64, 4); /* ring of 8 + 4 - 1 = 11 rows */
    eng_err e = {0};
    REQUIRE(eng_session_eval(s, t, 39, &e) == 0);
    REQUIRE(eng_session_decode(s, t[39], &e) == 0);
    float first[NV];
    memcpy(first, eng_session_logits(s), sizeof first);
    REQUIRE_MSG(eng_session_rewind(s, 39, &e) == 0, "%s", e.msg);
    REQUIRE(eng_session_decode(s, t[39], &e) == 0);
    CHECK(memcmp(first, eng_session_logits(s), sizeof first) == 0);
    CHECK_EQ_INT(eng_session_rewind(s, 20, &e), ENG_EUNSUPPORTED);
    CHECK_CONTAINS(e.msg, "sliding-window layers keep the last");
    CHECK_EQ_INT(eng_session_pos(s), 40); /* a refused rewind changes nothing */
    eng_session_free(s);
    eng_model_free(m);
}

TEST(kv_cache_of_window_layers_is_bounded)
{
    eng_model *m = tu_open(tu_write_preset("tiny-gpt-oss", "f32", "kv.gguf"));
    /* 2 full layers x 100 rows + 2 window layers x 8 rows; K and V of 2 heads x 32 */
    CHECK_EQ_INT(eng_model_kv_bytes(m, 100), (2 * 100 + 2 * 8) * 2 * 2 * 32 * 4);
    eng_model_free(m);
}

/* ---- router and activation -------------------------------------------------------- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static float frand(void) /* xorshift64, uniform in [-1, 1) */
{
    rng_state ^= rng_state << 13, rng_state ^= rng_state >> 7, rng_state ^= rng_state << 17;
    return (float)((double)(rng_state >> 11) / 4503599627370496.0 - 1.0);
}

/* top-k then softmax (gpt-oss's router bias is in the logits): the
 * k-subset with the largest sum of logits, found by enumeration; weights
 * the softmax over that subset. */
TEST(topk_softmax_router_matches_brute_force)
{
    eng_hparams hp = {.n_expert = 12, .n_expert_used = 4, .gating = ENG_GATING_TOPK_SOFTMAX};
    float l[12], scratch[64], w[12];
    int32_t ids[12];
    for (int trial = 0; trial < 300; trial++) {
        for (int e = 0; e < 12; e++)
            l[e] = 6 * frand();
        const eng_vecops *vo = eng_vecops_get((eng_simd)(trial % ENG_SIMD_COUNT));
        eng_route_row(vo ? vo : &eng_vecops_scalar, &hp, l, NULL, scratch, ids, w);
        double best = -INFINITY;
        uint32_t best_mask = 0;
        for (uint32_t mask = 0; mask < 1u << 12; mask++) {
            if (__builtin_popcount(mask) != 4)
                continue;
            double s = 0;
            for (int e = 0; e < 12; e++)
                s += (mask >> e & 1) ? (double)l[e] : 0;
            if (s > best)
                best = s, best_mask = mask;
        }
        double z = 0;
        for (int e = 0; e < 12; e++)
            z += (best_mask >> e & 1) ? exp((double)l[e]) : 0;
        uint32_t got = 0;
        for (int j = 0; j < 4; j++) {
            got |= 1u << ids[j];
            double want = exp((double)l[ids[j]]) / z;
            CHECK_MSG(fabs(w[j] - want) <= 1e-6, "trial %d: weight %g, expected %g", trial, w[j],
                      want);
            if (j)
                CHECK(l[ids[j]] <= l[ids[j - 1]]);
        }
        CHECK_MSG(got == best_mask, "trial %d: experts %#x, brute force %#x", trial, got,
                  best_mask);
    }
}

/* x = min(g, 7), y = clamp(u, -7, 7): x sigmoid(1.702 x) (y + 1). */
TEST(swiglu_oai_at_the_clamps)
{
    const float g[] = {-20, -7.5f, -1, 0, 0.5f, 6.99f, 7, 7.01f, 30};
    const float u[] = {-30, -7, -7.01f, 0, 2, 7, 7.5f, -0.5f, 100};
    enum { N = sizeof g / sizeof g[0] };
    float gate[N], up[N];
    memcpy(gate, g, sizeof g);
    memcpy(up, u, sizeof u);
    eng_act_row(&eng_vecops_scalar, ENG_ACT_SWIGLU_OAI, gate, up, N);
    for (int i = 0; i < N; i++) {
        double x = fmin(g[i], 7), y = fmax(-7, fmin(u[i], 7));
        double want = x / (1 + exp(-1.702 * x)) * (y + 1);
        CHECK_MSG(fabs(gate[i] - want) <= 1e-5 * fmax(1, fabs(want)), "g %g u %g: %g, expected %g",
                  g[i], u[i], gate[i], want);
    }
}

/* ---- hostile files ------------------------------------------------------------ */

TEST(bad_gpt_oss_files_are_clear_errors)
{
    const char *src = tu_write_preset("tiny-gpt-oss", "f32", "good.gguf");
    eng_model_free(tu_open(tu_gguf_edit(src, "copy.gguf", NULL, 0)));
    tu_open_fails(src, (tu_edit[]){{TU_DROP_TENSOR, "blk.1.attn_sinks.weight", 0}}, 1, ENG_EFORMAT,
                  "'blk.1.attn_sinks.weight' is missing");
    tu_open_fails(src, (tu_edit[]){{TU_DROP_TENSOR, "blk.0.attn_output.bias", 0}}, 1, ENG_EFORMAT,
                  "'blk.0.attn_output.bias' is missing");
    tu_open_fails(src, (tu_edit[]){{TU_DROP_TENSOR, "blk.2.ffn_gate_inp.bias", 0}}, 1, ENG_EFORMAT,
                  "'blk.2.ffn_gate_inp.bias' is missing");
    tu_open_fails(src, (tu_edit[]){{TU_DROP_TENSOR, "blk.3.ffn_down_exps.bias", 0}}, 1, ENG_EFORMAT,
                  "'blk.3.ffn_down_exps.bias' is missing");
    tu_open_fails(src, (tu_edit[]){{TU_SET_NE1, "blk.1.ffn_up_exps.bias", 4}}, 1, ENG_EFORMAT,
                  "'blk.1.ffn_up_exps.bias': shape {64,4}, expected {64,8}");
    tu_open_fails(src, (tu_edit[]){{TU_DROP_TENSOR, "blk.0.post_attention_norm.weight", 0}}, 1,
                  ENG_EFORMAT, "'blk.0.post_attention_norm.weight' is missing");
    tu_open_fails(src, (tu_edit[]){{TU_DROP_KEY, "gpt-oss.attention.sliding_window", 0}}, 1,
                  ENG_EFORMAT, "key 'gpt-oss.attention.sliding_window' is missing");
    tu_open_fails(src, (tu_edit[]){{TU_SET_U32, "gpt-oss.attention.sliding_window", 0}}, 1,
                  ENG_EFORMAT, "sliding_window");
    tu_open_fails(src, (tu_edit[]){{TU_DROP_KEY, "gpt-oss.expert_feed_forward_length", 0}}, 1,
                  ENG_EFORMAT, "expert_feed_forward_length");
}
