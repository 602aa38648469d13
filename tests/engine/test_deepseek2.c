/*
 * test_deepseek2.c — the deepseek2 architecture (MLA, dense leading layers,
 * shared experts, grouped sigmoid routing) against independent
 * computations:
 *   - the naive reference (ref_forward.c), which decompresses each head's K
 *     and V and computes YaRN and the router from the file's keys, within
 *     the bounds of test_forward.c (ref_bound: 1e-4 relative in
 *     f32/f16/bf16, the reference modelling decode's conversion of each
 *     matvec input to the weight type's partner form), for the absorbed and
 *     the legacy file form of both tiny presets;
 *   - the two forms against each other (mkmodel writes the same weights);
 *   - eng_route_row against a brute-force search over expert subsets;
 *   - prefill against token by token, 1/2/3 threads bit for bit;
 *   - hostile files: each missing or mis-shaped MLA part is a clear error.
 * The offloading invariants (every policy bit-identical to the in-memory
 * run, engine hits = simulator hits) are in test_offload.c.
 */
#include "engine/forward_impl.h"
#include "engine/hooks.h"
#include "engine/mkmodel.h"
#include "engine/session.h"
#include "tests/engine/gguf_edit.h"
#include "tests/util/model_util.h"
#include "tests/engine/ref_forward.h"
#include "tests/test.h"

#include <math.h>
#include <stdlib.h>

static const int32_t k_prompt[] = {1, 17, 42, 99, 5, 300, 7, 255, 3, 77, 401, 12};
enum { NP = sizeof k_prompt / sizeof k_prompt[0] };

static const char *write_ds(const char *preset, const char *type, bool legacy, const char *name)
{
    eng_mkmodel_opts o = {.preset = preset, .seed = 7, .mla_legacy = legacy};
    eng_err e = {0};
    REQUIRE(eng_mkmodel_type_parse(type, &o.type) == 0);
    const char *path = tst_path(name);
    REQUIRE_MSG(eng_mkmodel_write(&o, path, &e) == 0, "%s", e.msg);
    return path;
}

/* Decode (token by token) and prefill against the reference. */
static void check_ref(const char *preset, const char *type, bool legacy)
{
    eng_model *m = tu_open(write_ds(preset, type, legacy, "ds.gguf"));
    const eng_hparams *hp = eng_model_hparams(m);
    CHECK_EQ_INT(hp->mla.absorbed, !legacy);
    eng_session *s = tu_session(m, 2, 64, 0);
    eng_err e = {0};
    double *ref = NULL, tie;
    REQUIRE(ref_forward_tie(m, k_prompt, NP, REF_ACT_Q8, &ref, &tie) == 0);
    for (int i = 0; i < NP; i++)
        REQUIRE_MSG(eng_session_decode(s, k_prompt[i], &e) == 0, "%s", e.msg);
    double dec = ref_rel_err(eng_session_logits(s), ref, hp->n_vocab);
    free(ref);
    REQUIRE(ref_forward(m, k_prompt, NP, REF_ACT_PREFILL, &ref) == 0);
    eng_session_reset(s);
    REQUIRE_MSG(eng_session_eval(s, k_prompt, NP, &e) == 0, "%s", e.msg);
    double pre = ref_rel_err(eng_session_logits(s), ref, hp->n_vocab);
    printf("%s %s%s: decode %.3g, prefill %.3g, closest tie %.2g\n", preset, type,
           legacy ? " legacy" : "", dec, pre, tie);
    CHECK_MSG(dec <= ref_bound(type, true, tie), "%s %s decode: rel err %g", preset, type, dec);
    CHECK_MSG(pre <= ref_bound(type, false, tie), "%s %s prefill: rel err %g", preset, type, pre);
    free(ref);
    eng_session_free(s);
    eng_model_free(m);
}

TEST(ref_tiny_deepseek2)
{
    check_ref("tiny-deepseek2", "f32", false);
    check_ref("tiny-deepseek2", "f32", true);
    check_ref("tiny-deepseek2", "bf16", false);
}

TEST(ref_tiny_deepseek2_lite)
{
    check_ref("tiny-deepseek2-lite", "f32", false);
    check_ref("tiny-deepseek2-lite", "f32", true);
    check_ref("tiny-deepseek2-lite", "f16", false);
}

/* The absorbed form caches the latent, the legacy form per-head K and V:
 * the same function of the same weights, through 40 positions of YaRN. */
TEST(absorbed_equals_legacy)
{
    int32_t toks[40];
    for (int i = 0; i < 40; i++)
        toks[i] = (i * 131 + 7) % 512;
    const char *presets[] = {"tiny-deepseek2", "tiny-deepseek2-lite"};
    for (int p = 0; p < 2; p++) {
        float *a = tu_decode_all(write_ds(presets[p], "f32", false, "a.gguf"), toks, 40);
        float *b = tu_decode_all(write_ds(presets[p], "f32", true, "b.gguf"), toks, 40);
        double md = 0, mx = 0;
        for (int i = 0; i < 40 * 512; i++) {
            md = fmax(md, fabs((double)a[i] - b[i]));
            mx = fmax(mx, fabs((double)b[i]));
        }
        printf("%s: absorbed vs legacy max diff %.3g (max |logit| %.3g)\n", presets[p], md, mx);
        CHECK_MSG(md <= 1e-5 * mx, "%s: absorbed and legacy differ by %g", presets[p], md);
    }
}

TEST(prefill_equals_decode)
{
    const char *cases[][2] = {{"tiny-deepseek2", "f32"}, {"tiny-deepseek2-lite", "f32"}};
    for (int c = 0; c < 2; c++)
        for (int legacy = 0; legacy < 2; legacy++) {
            const char *path = write_ds(cases[c][0], cases[c][1], legacy, "p.gguf");
            float *dec = tu_decode_all(path, k_prompt, NP);
            eng_model *m = tu_open(path);
            eng_session *s = tu_session(m, 2, 64, 0);
            eng_err e = {0};
            REQUIRE(eng_session_eval(s, k_prompt, NP, &e) == 0);
            const float *pre = eng_session_logits(s), *last = dec + (NP - 1) * 512;
            double md = 0, mx = 0;
            for (int i = 0; i < 512; i++) {
                md = fmax(md, fabs((double)pre[i] - last[i]));
                mx = fmax(mx, fabs((double)last[i]));
            }
            CHECK_MSG(md <= 1e-5 * fmax(1, mx), "%s legacy=%d: prefill vs decode %g",
                      cases[c][0], legacy, md);
            eng_session_free(s);
            eng_model_free(m);
        }
}

/* 1, 2, 3 threads and chunked prefill: bit-identical logits. */
TEST(threads_and_chunks_bit_identical)
{
    const char *paths[] = {write_ds("tiny-deepseek2", "q8_0", false, "q.gguf"),
                           write_ds("tiny-deepseek2-lite", "f32", true, "l.gguf")};
    int32_t toks[40];
    for (int i = 0; i < 40; i++)
        toks[i] = (i * 37 + 11) % 512;
    for (int p = 0; p < 2; p++) {
        eng_model *m = tu_open(paths[p]);
        float *l[4];
        eng_err e = {0};
        for (int t = 0; t < 4; t++) {
            eng_session *s = NULL;
            eng_session_opts o = {.n_threads = t < 3 ? t + 1 : 2, .n_ctx = 64,
                                  .n_batch = t < 3 ? 0 : 7};
            REQUIRE(eng_session_open(&s, m, &o, &e) == 0);
            REQUIRE(eng_session_eval(s, toks, 40, &e) == 0);
            REQUIRE(eng_session_decode(s, 5, &e) == 0);
            l[t] = tst_alloc(512 * sizeof(float));
            memcpy(l[t], eng_session_logits(s), 512 * sizeof(float));
            eng_session_free(s);
        }
        for (int t = 1; t < 3; t++)
            CHECK_MSG(memcmp(l[0], l[t], 512 * sizeof(float)) == 0, "%s: %d threads differ",
                      paths[p], t + 1);
        double md = 0; /* chunks of 7 change sgemm's batch, not its sums per row */
        for (int i = 0; i < 512; i++)
            md = fmax(md, fabs((double)l[0][i] - l[3][i]));
        CHECK_MSG(md <= 1e-4, "%s: chunked prefill differs by %g", paths[p], md);
        eng_model_free(m);
    }
}

/* ---- routing ------------------------------------------------------------------ */

/* The router the slow way: the allowed groups by sorting each group, then
 * the k-subset of allowed experts with the largest sum of selection scores
 * found by enumerating every subset (unique for distinct scores). */
static void brute_route(const eng_hparams *hp, const float *l, const float *bias, int32_t *ids,
                        double *w)
{
    const int E = (int)hp->n_expert, k = (int)hp->n_expert_used;
    double p[64], sel[64];
    bool allowed[64];
    double mx = -INFINITY, sum = 0;
    for (int e = 0; e < E; e++)
        mx = fmax(mx, l[e]);
    for (int e = 0; e < E; e++) {
        p[e] = hp->gating == ENG_GATING_SIGMOID ? 1 / (1 + exp(-(double)l[e]))
                                                : exp((double)l[e] - mx);
        sum += p[e];
    }
    for (int e = 0; e < E; e++) {
        if (hp->gating != ENG_GATING_SIGMOID)
            p[e] /= sum;
        sel[e] = p[e] + (bias ? bias[e] : 0);
        allowed[e] = true;
    }
    if (hp->n_group > 1) {
        const int G = (int)hp->n_group, per = E / G;
        double gs[64];
        for (int g = 0; g < G; g++) {
            double a = -INFINITY, b = -INFINITY;
            for (int e = g * per; e < (g + 1) * per; e++)
                if (sel[e] > a) {
                    b = a;
                    a = sel[e];
                } else if (sel[e] > b) {
                    b = sel[e];
                }
            gs[g] = a + b;
        }
        for (int g = 0; g < G; g++) { /* kept iff fewer than n_used groups beat it */
            int better = 0;
            for (int h = 0; h < G; h++)
                better += gs[h] > gs[g];
            for (int e = g * per; e < (g + 1) * per; e++)
                allowed[e] = better < hp->n_group_used;
        }
    }
    double best = -INFINITY;
    uint32_t best_mask = 0;
    for (uint32_t mask = 0; mask < (1u << E); mask++) {
        if (__builtin_popcount(mask) != k)
            continue;
        double s = 0;
        bool ok = true;
        for (int e = 0; e < E && ok; e++)
            if (mask >> e & 1) {
                ok = allowed[e];
                s += sel[e];
            }
        if (ok && s > best) {
            best = s;
            best_mask = mask;
        }
    }
    int n = 0; /* in descending selection score */
    for (int j = 0; j < k; j++) {
        int pick = -1;
        for (int e = 0; e < E; e++)
            if ((best_mask >> e & 1) && (pick < 0 || sel[e] > sel[pick])) {
                bool taken = false;
                for (int i = 0; i < n; i++)
                    taken |= ids[i] == e;
                if (!taken)
                    pick = e;
            }
        ids[n++] = pick;
    }
    double ws = 0;
    for (int j = 0; j < k; j++)
        ws += (w[j] = p[ids[j]]);
    for (int j = 0; j < k; j++) {
        if (hp->expert_weights_norm)
            w[j] /= fmax(ws, 6.103515625e-5);
        if (hp->expert_weights_scale != 0 && hp->expert_weights_scale != 1)
            w[j] *= hp->expert_weights_scale;
    }
}

static uint64_t rng_state = 88172645463325252ull;
static float frand(void) /* xorshift64, uniform in [-1, 1) */
{
    rng_state ^= rng_state << 13, rng_state ^= rng_state >> 7, rng_state ^= rng_state << 17;
    return (float)((double)(rng_state >> 11) / 4503599627370496.0 - 1.0);
}

static void check_router(eng_hparams hp, int trials, bool with_bias)
{
    float l[64], bias[64], scratch[128], w[64];
    int32_t ids[64], bids[64];
    double bw[64];
    int mismatches = 0;
    for (int t = 0; t < trials; t++) {
        for (int e = 0; e < hp.n_expert; e++) {
            l[e] = 4 * frand();
            bias[e] = 0.5f * frand();
        }
        const eng_vecops *vo = eng_vecops_get((eng_simd)(t % ENG_SIMD_COUNT));
        if (!vo)
            vo = &eng_vecops_scalar;   /* every path where the CPU has it */
        eng_route_row(vo, &hp, l, with_bias ? bias : NULL, scratch, ids, w);
        brute_route(&hp, l, with_bias ? bias : NULL, bids, bw);
        for (int j = 0; j < hp.n_expert_used; j++) {
            mismatches += ids[j] != bids[j];
            CHECK_MSG(fabs(w[j] - bw[j]) <= 1e-6 * fmax(1, fabs(bw[j])),
                      "trial %d rank %d: weight %g vs %g", t, j, w[j], bw[j]);
        }
    }
    CHECK_MSG(mismatches == 0, "%d selections differ from the brute force", mismatches);
}

TEST(router_matches_brute_force)
{
    eng_hparams hp = {.n_expert = 16, .n_expert_used = 4, .gating = ENG_GATING_SIGMOID,
                      .expert_weights_norm = true, .expert_weights_scale = 2.5f, .n_group = 4,
                      .n_group_used = 2};
    check_router(hp, 400, true);   /* DeepSeek-V3: sigmoid, bias, groups, norm, scale */
    hp.n_group = 8, hp.n_group_used = 3, hp.n_expert_used = 3;
    check_router(hp, 300, true);   /* groups of 2: the sum is the whole group */
    hp = (eng_hparams){.n_expert = 12, .n_expert_used = 3, .gating = ENG_GATING_SOFTMAX_TOPK};
    check_router(hp, 300, false);  /* DeepSeek-V2-Lite: softmax, no norm */
    hp.n_group = 3, hp.n_group_used = 1, hp.expert_weights_scale = 16;
    check_router(hp, 300, false);  /* DeepSeek-V2: softmax, groups, scale 16 */
}

/* Routing events number MoE layers from 0 (dense layers route nothing) and
 * carry the model's layer; they equal the reference's routing. */
typedef struct seen {
    int n, bad_order;
    int32_t ids[NP * 8][8];
    int layer[NP * 8], model_layer[NP * 8];
} seen;

static void on_routing(void *user, const eng_routing_event *ev)
{
    seen *s = user;
    if (s->n >= NP * 8)
        return;
    memcpy(s->ids[s->n], ev->experts, (size_t)ev->top_k * sizeof(int32_t));
    s->layer[s->n] = ev->layer;
    s->model_layer[s->n++] = ev->model_layer;
}

TEST(routing_events_skip_dense_layers_and_match_the_reference)
{
    eng_model *m = tu_open(write_ds("tiny-deepseek2", "f32", false, "r.gguf"));
    const eng_hparams *hp = eng_model_hparams(m);
    REQUIRE(hp->n_layer_dense == 1 && hp->n_layer_moe == 3);
    seen *sn = tst_alloc(sizeof *sn);
    eng_hooks h = {.user = sn, .routing = on_routing};
    eng_session *s = tu_session(m, 1, 64, 0);
    eng_session_set_hooks(s, &h);
    eng_err e = {0};
    for (int i = 0; i < NP; i++)
        REQUIRE(eng_session_decode(s, k_prompt[i], &e) == 0);
    CHECK_EQ_INT(sn->n, NP * 3);
    int32_t *ref = tst_alloc((size_t)NP * 3 * 2 * sizeof *ref);
    REQUIRE(ref_routing(m, k_prompt, NP, ref) == 0);
    for (int i = 0; i < sn->n; i++) {
        CHECK_EQ_INT(sn->layer[i], i % 3);
        CHECK_EQ_INT(sn->model_layer[i], i % 3 + 1);
        CHECK_MSG(sn->ids[i][0] == ref[2 * i] && sn->ids[i][1] == ref[2 * i + 1],
                  "event %d: experts %d,%d, reference %d,%d", i, sn->ids[i][0], sn->ids[i][1],
                  ref[2 * i], ref[2 * i + 1]);
    }
    eng_session_free(s);
    eng_model_free(m);
}

TEST(kv_cache_holds_the_latent)
{
    eng_model *a = tu_open(write_ds("tiny-deepseek2", "f32", false, "a.gguf"));
    eng_model *b = tu_open(write_ds("tiny-deepseek2", "f32", true, "b.gguf"));
    /* absorbed: kv_lora_rank + rope per token and layer; legacy: H (dk + dv) */
    CHECK_EQ_INT(eng_model_kv_bytes(a, 100), 4 * 100 * 4 * (32 + 16));
    CHECK_EQ_INT(eng_model_kv_bytes(b, 100), 4 * 100 * 4 * 4 * (48 + 32));
    eng_model_free(a);
    eng_model_free(b);
}

/* ---- hostile files ------------------------------------------------------------ */

TEST(bad_deepseek2_files_are_clear_errors)
{
    const char *src = write_ds("tiny-deepseek2", "f32", false, "good.gguf");
    eng_model_free(tu_open(tu_gguf_edit(src, "copy.gguf", NULL, 0))); /* the copy itself is fine */
    tu_open_fails(src, (tu_edit[]){{TU_DROP_TENSOR, "blk.2.attn_k_b.weight", 0}}, 1, ENG_EFORMAT,
                  "tensor 'blk.2.attn_k_b.weight' is missing");
    tu_open_fails(src, (tu_edit[]){{TU_DROP_TENSOR, "blk.0.attn_kv_a_norm.weight", 0}}, 1,
                  ENG_EFORMAT, "'blk.0.attn_kv_a_norm.weight' is missing");
    tu_open_fails(src, (tu_edit[]){{TU_SET_NE1, "blk.1.attn_kv_a_mqa.weight", 40}}, 1,
                  ENG_EFORMAT, "'blk.1.attn_kv_a_mqa.weight': shape {64,40}, expected {64,48}");
    tu_open_fails(src, (tu_edit[]){{TU_SET_U32, "deepseek2.attention.kv_lora_rank", 16}}, 1,
                  ENG_EFORMAT, "must be 1 and kv_lora_rank + rope.dimension_count");
    tu_open_fails(src, (tu_edit[]){{TU_DROP_KEY, "deepseek2.attention.kv_lora_rank", 0}}, 1,
                  ENG_EFORMAT, "key 'deepseek2.attention.kv_lora_rank' is missing");
    tu_open_fails(src, (tu_edit[]){{TU_DROP_KEY, "deepseek2.attention.value_length_mla", 0}}, 1,
                  ENG_EFORMAT, "must be given together");
    tu_open_fails(src, (tu_edit[]){{TU_SET_U32, "deepseek2.attention.head_count_kv", 2}}, 1,
                  ENG_EFORMAT, "head_count_kv 2");
    tu_open_fails(src, (tu_edit[]){{TU_SET_U32, "deepseek2.expert_group_count", 3}}, 1,
                  ENG_EFORMAT, "3 groups do not divide expert_count 8");
    tu_open_fails(src, (tu_edit[]){{TU_SET_U32, "deepseek2.expert_group_used_count", 4}}, 1,
                  ENG_EFORMAT, "need 1 <= used < expert_group_count 4");
    tu_open_fails(src, (tu_edit[]){{TU_SET_U32, "deepseek2.expert_gating_func", 4}}, 1,
                  ENG_EUNSUPPORTED, "gating function 4 is not supported");
    tu_open_fails(src, (tu_edit[]){{TU_SET_U32, "deepseek2.rope.dimension_count", 48}}, 1,
                  ENG_EFORMAT, "no non-rotated part");
    tu_open_fails(src, (tu_edit[]){{TU_DROP_TENSOR, "blk.3.ffn_down_shexp.weight", 0}}, 1,
                  ENG_EFORMAT, "'blk.3.ffn_down_shexp.weight' is missing");
    tu_open_fails(src, (tu_edit[]){{TU_SET_U32, "deepseek2.leading_dense_block_count", 9}}, 1,
                  ENG_EFORMAT, "9 dense layers, the model runs 4");
    const char *legacy = write_ds("tiny-deepseek2", "f32", true, "legacy.gguf");
    tu_open_fails(legacy, (tu_edit[]){{TU_DROP_TENSOR, "blk.1.attn_kv_b.weight", 0}}, 1,
                  ENG_EFORMAT, "'blk.1.attn_kv_b.weight' is missing");
    tu_open_fails(legacy, (tu_edit[]){{TU_SET_U32, "deepseek2.attention.head_count_kv", 1}}, 1,
                  ENG_EFORMAT, "must equal head_count 4");
}

/* Next-token-prediction layers in block_count: checked, never run. */
TEST(mtp_layers_are_checked_not_run)
{
    const char *src = write_ds("tiny-deepseek2", "f32", false, "base.gguf");
    /* blk.3 becomes an MTP layer without its nextn tensors: allowed, they are
     * optional when the first MTP layer has no nextn.eh_proj */
    const char *p = tu_gguf_edit(src, "mtp.gguf",
                                 (tu_edit[]){{TU_SET_U32, "deepseek2.nextn_predict_layers", 1}}, 1);
    eng_model *m = tu_open(p);
    const eng_hparams *hp = eng_model_hparams(m);
    CHECK_EQ_INT(hp->n_layer, 3);
    CHECK_EQ_INT(hp->n_layer_file, 4);
    CHECK_EQ_INT(hp->n_layer_moe, 2);
    eng_session *s = tu_session(m, 1, 64, 0);
    eng_err e = {0};
    CHECK(eng_session_eval(s, k_prompt, 4, &e) == 0);
    eng_session_free(s);
    eng_model_free(m);
    tu_open_fails(src, (tu_edit[]){{TU_SET_U32, "deepseek2.nextn_predict_layers", 1},
                                   {TU_SET_NE1, "blk.3.attn_q_b.weight", 100}}, 2, ENG_EFORMAT,
                  "'blk.3.attn_q_b.weight': shape {32,100}");
    tu_open_fails(src, (tu_edit[]){{TU_SET_U32, "deepseek2.nextn_predict_layers", 4}}, 1,
                  ENG_EFORMAT, "must be below block_count 4");
}

/* MLA reports its parts as regions nested in `attention`, each opened and
 * closed inside it; multi-head attention stays one region. */
typedef struct reg_log {
    int depth_in_attention, bad, parts[ENG_REGION_COUNT];
} reg_log;

static void on_begin(void *user, eng_region r)
{
    reg_log *g = user;
    if (r == ENG_REGION_ATTENTION)
        g->depth_in_attention++;
    else if (r == ENG_REGION_ATTN_PROJ || r == ENG_REGION_ATTN_LATENT || r == ENG_REGION_ATTN_CORE) {
        g->bad += g->depth_in_attention != 1;
        g->parts[r]++;
    }
}

static void on_end(void *user, eng_region r)
{
    reg_log *g = user;
    if (r == ENG_REGION_ATTENTION)
        g->depth_in_attention--;
}

static void count_regions(const char *path, reg_log *g)
{
    eng_model *m = tu_open(path);
    eng_hooks h = {.user = g, .region_begin = on_begin, .region_end = on_end};
    eng_session *s = tu_session(m, 1, 64, 0);
    eng_session_set_hooks(s, &h);
    eng_err e = {0};
    REQUIRE(eng_session_eval(s, k_prompt, 4, &e) == 0);
    REQUIRE(eng_session_decode(s, 9, &e) == 0);
    eng_session_free(s);
    eng_model_free(m);
}

TEST(mla_parts_are_nested_regions)
{
    reg_log g = {0};
    count_regions(write_ds("tiny-deepseek2", "f32", false, "a.gguf"), &g);
    CHECK_EQ_INT(g.bad, 0);
    CHECK_EQ_INT(g.depth_in_attention, 0);
    /* 4 layers x (one batch + one decode step); the latent region twice per layer */
    CHECK_EQ_INT(g.parts[ENG_REGION_ATTN_PROJ], 8);
    CHECK_EQ_INT(g.parts[ENG_REGION_ATTN_LATENT], 16);
    CHECK_EQ_INT(g.parts[ENG_REGION_ATTN_CORE], 8);
    reg_log o = {0};
    count_regions(tu_write_preset("tiny-olmoe", "f32", "o.gguf"), &o);
    CHECK_EQ_INT(o.parts[ENG_REGION_ATTN_PROJ] + o.parts[ENG_REGION_ATTN_CORE], 0);
}
