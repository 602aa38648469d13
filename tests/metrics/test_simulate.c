/* test_simulate.c — the replay simulator against a brute-force literal
 * implementation of the reference's cache procedure (tests/metrics/
 * simtest.c, independent of engine/policy*.c), on random and structured
 * traces, every cache size, both scopes, both look-ups, warm and cold; and
 * the cost model's totals. */
#include "tests/test.h"

#include "metrics/simulate.h"
#include "tests/metrics/simtest.h"

#include <jansson.h>
#include <math.h>
#include <stdbool.h>
#include <string.h>
#include <stdlib.h>

static const char *const pname[] = {"lru", "lfu", "belady", "fsf"};

static met_sim_result *run(const met_trace *t, const char *policy, int64_t c, int scope,
                           int lookup, int start, int layer, int lookahead)
{
    met_sim_config cfg;
    met_sim_config_default(&cfg);
    cfg.policy = policy;
    cfg.cache_experts = c;
    cfg.scope = scope;
    cfg.lookup = lookup;
    cfg.start = start;
    cfg.layer = layer;
    cfg.lookahead = lookahead;
    met_sim_result *r = NULL;
    eng_err err = {0};
    REQUIRE_MSG(met_sim_run(t, &cfg, &r, &err) == 0, "%s", err.msg);
    return r;
}

/* Every sample's hits equal the brute force, for one layer (layer >= 0) or
 * the model-wide pool (layer -1, scope global). */
static void compare(const met_trace *t, int layer, int lookup, int start, const char *what)
{
    int32_t E = t->info.num_experts, L = t->info.num_layers;
    int64_t nkeys = layer >= 0 ? E : (int64_t)L * E;
    for (int p = 0; p < 4; p++)
        for (int la = 1; la <= (p == 3 ? 4 : 1); la *= 2)
            for (int64_t c = 1; c <= nkeys; c++) {
                met_sim_result *r = run(t, pname[p], c, layer >= 0 ? MET_SIM_SCOPE_LAYER
                                                               : MET_SIM_SCOPE_GLOBAL,
                                        lookup, start, layer, la);
                for (int64_t s = 0; s < t->info.num_samples; s++) {
                    uint32_t *seq;
                    int32_t kt;
                    int64_t T = st_sequence(t, s, layer, &seq, &kt);
                    int64_t want = st_brute(seq, T, kt, (uint32_t)nkeys, c, p, la,
                                            start == MET_SIM_START_WARM,
                                            lookup == MET_SIM_LOOKUP_TOKEN);
                    CHECK_MSG(r->sample_hits[s] == want,
                              "%s: %s L=%d c=%lld sample %lld: %lld hits, brute force %lld",
                              what, pname[p], la, (long long)c, (long long)s,
                              (long long)r->sample_hits[s], (long long)want);
                }
                met_sim_result_free(r);
            }
}

TEST(equals_brute_force_on_random_single_layer_traces)
{
    for (uint64_t seed = 1; seed <= 10; seed++) {
        int32_t E = 5 + (int32_t)(seed % 4), k = 1 + (int32_t)(seed % 3);
        met_trace *t = st_random_trace(seed, 1, E, k, 2, 12 + (int64_t)seed, 0.15 * (double)(seed % 4),
                                       (double)(seed % 3));
        compare(t, 0, MET_SIM_LOOKUP_TOKEN, MET_SIM_START_WARM, "token/warm");
        compare(t, 0, MET_SIM_LOOKUP_TOKEN, MET_SIM_START_COLD, "token/cold");
        compare(t, 0, MET_SIM_LOOKUP_SEQUENTIAL, MET_SIM_START_WARM, "sequential/warm");
        compare(t, 0, MET_SIM_LOOKUP_SEQUENTIAL, MET_SIM_START_COLD, "sequential/cold");
    }
}

TEST(equals_brute_force_model_wide_and_per_layer)
{
    for (uint64_t seed = 20; seed < 24; seed++) {
        met_trace *t = st_random_trace(seed, 3, 4, 2, 2, 10, 0.3, 1.0);
        compare(t, -1, MET_SIM_LOOKUP_TOKEN, MET_SIM_START_WARM, "global token/warm");
        compare(t, -1, MET_SIM_LOOKUP_SEQUENTIAL, MET_SIM_START_COLD, "global sequential/cold");
        for (int l = 0; l < 3; l++)
            compare(t, l, MET_SIM_LOOKUP_TOKEN, MET_SIM_START_WARM, "one layer");
        /* all layers, per-layer scope: each layer's hits are its own replay */
        for (int p = 0; p < 4; p++)
            for (int64_t c = 1; c <= 4; c++) {
                met_sim_result *all = run(t, pname[p], c, MET_SIM_SCOPE_LAYER,
                                          MET_SIM_LOOKUP_TOKEN, MET_SIM_START_WARM, -1, 2);
                int64_t sum = 0;
                for (int l = 0; l < 3; l++) {
                    met_sim_result *one = run(t, pname[p], c, MET_SIM_SCOPE_LAYER,
                                              MET_SIM_LOOKUP_TOKEN, MET_SIM_START_WARM, l, 2);
                    CHECK_EQ_INT(all->layers[l].hits, one->total.hits);
                    CHECK_NEAR(all->layers[l].sample_hit_rate, one->total.sample_hit_rate, 0);
                    CHECK_EQ_INT(one->first_layer, l);
                    sum += one->total.hits;
                    met_sim_result_free(one);
                }
                CHECK_EQ_INT(all->total.hits, sum);
                met_sim_result_free(all);
            }
    }
}

TEST(equals_brute_force_on_structured_traces)
{
    /* cyclic scan (LRU's worst case), a constant token, ping-pong, and a
     * sample with one token, all in one trace */
    enum { E = 6 };
    int64_t T[] = {18, 8, 10, 1};
    uint16_t ids[2 * (18 + 8 + 10 + 1)];
    size_t n = 0;
    for (int t = 0; t < 18; t++) {
        ids[n++] = (uint16_t)((2 * t) % E);
        ids[n++] = (uint16_t)((2 * t + 1) % E);
    }
    for (int t = 0; t < 8; t++) {
        ids[n++] = 4;
        ids[n++] = 1;
    }
    for (int t = 0; t < 10; t++) {
        ids[n++] = (uint16_t)(t % 2 ? 0 : 5);
        ids[n++] = (uint16_t)(t % 2 ? 5 : 3);
    }
    ids[n++] = 2;
    ids[n++] = 0;
    met_trace *t = st_trace(1, E, 2, 4, T, ids);
    compare(t, 0, MET_SIM_LOOKUP_TOKEN, MET_SIM_START_WARM, "structured token/warm");
    compare(t, 0, MET_SIM_LOOKUP_SEQUENTIAL, MET_SIM_START_COLD, "structured sequential/cold");
}

TEST(sample_hit_rate_is_the_mean_of_samples)
{
    met_trace *t = st_random_trace(3, 2, 8, 2, 5, 20, 0.2, 1.0);
    met_sim_result *r = run(t, "lru", 3, MET_SIM_SCOPE_LAYER, MET_SIM_LOOKUP_TOKEN,
                            MET_SIM_START_WARM, -1, 1);
    double sum = 0;
    for (int64_t s = 0; s < 5; s++) {
        CHECK_EQ_INT(r->sample_accesses[s], 20 * 2 * 2);
        sum += (double)r->sample_hits[s] / (double)r->sample_accesses[s];
    }
    CHECK_NEAR(r->total.sample_hit_rate, sum / 5, 1e-12);
    CHECK_NEAR(r->total.hit_rate, (double)r->total.hits / (double)r->total.accesses, 0);
    met_sim_result_free(r);
}

static void check_totals(const met_sim_result *r, double bytes, const char *what)
{
    const met_sim_counts *c = &r->total;
    CHECK_MSG(c->hits + c->misses == c->accesses, "%s: hits + misses != accesses", what);
    CHECK_NEAR(c->bytes_moved, (double)(c->misses + c->reloads + c->prefetch_issued) * bytes,
               1e-6);
    CHECK_NEAR(r->link_busy_us, (double)(c->misses + c->reloads + c->prefetch_issued) * r->load_us,
               1e-6 * r->link_busy_us + 1e-9);
    CHECK_NEAR(r->time_us, r->compute_us + c->stall_us, 1e-9 * r->time_us);
    CHECK_MSG(r->overlap_us >= -1e-6, "%s: negative overlap", what);
    CHECK_EQ_INT(c->prefetch_issued, c->prefetch_useful + c->prefetch_wasted);
    int64_t acc = 0, hits = 0;
    for (int32_t l = 0; l < r->n_layers; l++) {
        acc += r->layers[l].accesses;
        hits += r->layers[l].hits;
    }
    CHECK_EQ_INT(acc, c->accesses);
    CHECK_EQ_INT(hits, c->hits);
}

TEST(cost_model_totals_add_up)
{
    met_trace *t = st_random_trace(11, 4, 16, 2, 3, 40, 0.3, 1.0);
    const char *pol[] = {"lru", "lfu", "fifo", "random", "static", "belady", "fsf"};
    for (int p = 0; p < 7; p++)
        for (int sc = 0; sc < 2; sc++)
            for (int pf = 0; pf < 2; pf++)
                for (int64_t c = 2; c <= 64; c *= 4) {
                    met_sim_config cfg;
                    met_sim_config_default(&cfg);
                    cfg.policy = pol[p];
                    cfg.scope = sc;
                    cfg.prefetch = pf;
                    cfg.cache_experts = c;
                    cfg.lookahead = 2;
                    met_sim_result *r;
                    eng_err err = {0};
                    REQUIRE_MSG(met_sim_run(t, &cfg, &r, &err) == 0, "%s", err.msg);
                    check_totals(r, cfg.expert_bytes, pol[p]);
                    CHECK_EQ_INT(r->total.accesses, 40 * 3 * 4 * 2);
                    CHECK_NEAR(r->compute_us, (double)r->total.accesses * cfg.compute_us, 1e-6);
                    if (!pf) {   /* every load is waited for in full */
                        CHECK_EQ_INT(r->total.prefetch_issued, 0);
                        CHECK_NEAR(r->total.stall_us,
                                   (double)(r->total.misses + r->total.reloads) * r->load_us,
                                   1e-6 * r->total.stall_us + 1e-9);
                    }
                    met_sim_result_free(r);
                }
}

TEST(token_lookup_reloads_are_hits_that_move_bytes)
{
    /* LRU c = 2 of the worked example: token 2 = [0,2]: 0 misses, 2 hits in
     * the look-up, loading 0 evicts 2, which is loaded again: a reload */
    uint16_t ids[] = {0, 1, 2, 3, 0, 2, 1, 0};
    int64_t T = 4;
    met_trace *t = st_trace(1, 4, 2, 1, &T, ids);
    met_sim_result *r = run(t, "lru", 2, MET_SIM_SCOPE_LAYER, MET_SIM_LOOKUP_TOKEN,
                            MET_SIM_START_WARM, -1, 1);
    CHECK_EQ_INT(r->total.hits, 4);
    CHECK_EQ_INT(r->total.warm_hits, 2);
    CHECK_EQ_INT(r->total.reloads, 2);   /* t3: loading 1 evicts 0, which reloads */
    CHECK_EQ_INT(r->total.misses, 4);
    check_totals(r, 12582912, "reload");
    met_sim_result_free(r);
}

TEST(oracle_prefetch_hides_loads_behind_compute)
{
    met_trace *t = st_random_trace(5, 4, 16, 2, 2, 50, 0.2, 1.0);
    for (int sc = 0; sc < 2; sc++) {
        met_sim_config cfg;
        met_sim_config_default(&cfg);
        cfg.scope = sc;
        cfg.cache_experts = sc ? 24 : 6;
        cfg.compute_us = 2000;          /* long compute: every prefetch fits */
        met_sim_result *a, *b;
        eng_err err = {0};
        REQUIRE(met_sim_run(t, &cfg, &a, &err) == 0);
        cfg.prefetch = MET_SIM_PREFETCH_ORACLE;
        REQUIRE_MSG(met_sim_run(t, &cfg, &b, &err) == 0, "%s", err.msg);
        CHECK(b->total.prefetch_issued > 0);
        CHECK(b->total.prefetch_useful > 0);
        CHECK(b->total.hits > a->total.hits);
        CHECK(b->total.stall_us < a->total.stall_us);
        CHECK(b->overlap_us > 0);
        CHECK(b->tokens_per_s > a->tokens_per_s);
        check_totals(b, cfg.expert_bytes, "prefetch");
        met_sim_result_free(a);
        met_sim_result_free(b);
    }
}

TEST(bad_configurations_are_named)
{
    met_trace *t = st_random_trace(1, 2, 4, 1, 1, 5, 0, 0);
    met_sim_config cfg;
    met_sim_result *r = NULL;
    eng_err err = {0};
    struct { void (*set)(met_sim_config *); const char *msg; } cases[4];
    (void)cases;
    met_sim_config_default(&cfg);
    cfg.cache_experts = 0;
    CHECK_EQ_INT(met_sim_run(t, &cfg, &r, &err), ENG_EINVAL);
    CHECK_CONTAINS(err.msg, "--cache-experts");
    met_sim_config_default(&cfg);
    cfg.layer = 2;
    CHECK_EQ_INT(met_sim_run(t, &cfg, &r, &err), ENG_EINVAL);
    CHECK_CONTAINS(err.msg, "--layer");
    met_sim_config_default(&cfg);
    cfg.policy = "mru";
    CHECK_EQ_INT(met_sim_run(t, &cfg, &r, &err), ENG_EINVAL);
    CHECK_CONTAINS(err.msg, "unknown policy");
    met_sim_config_default(&cfg);
    cfg.prefetch = MET_SIM_PREFETCH_ORACLE;
    cfg.lookup = MET_SIM_LOOKUP_TOKEN;
    CHECK_EQ_INT(met_sim_run(t, &cfg, &r, &err), ENG_EINVAL);
    CHECK_CONTAINS(err.msg, "--prefetch oracle");
    met_sim_config_default(&cfg);
    cfg.link_gbps = 0;
    CHECK_EQ_INT(met_sim_run(t, &cfg, &r, &err), ENG_EINVAL);
    met_sim_config_default(&cfg);
    cfg.policy = "static";
    met_trace *other = st_random_trace(1, 3, 4, 1, 1, 5, 0, 0);
    cfg.profile = other;
    CHECK_EQ_INT(met_sim_run(t, &cfg, &r, &err), ENG_EINVAL);
    CHECK_CONTAINS(err.msg, "profile trace");
    CHECK(r == NULL);
}

TEST(json_has_options_totals_and_layers)
{
    met_trace *t = st_random_trace(2, 2, 8, 2, 2, 10, 0.2, 1.0);
    met_sim_config cfg;
    met_sim_config_default(&cfg);
    cfg.cache_experts = 3;
    met_sim_result *r;
    eng_err err = {0};
    REQUIRE(met_sim_run(t, &cfg, &r, &err) == 0);
    json_t *j = met_sim_result_json(r, &cfg);
    REQUIRE(j);
    char *s = json_dumps(j, JSON_COMPACT);
    CHECK_CONTAINS(s, "\"policy\":\"lru\"");
    CHECK_CONTAINS(s, "\"lookup\":\"sequential\"");
    CHECK_CONTAINS(s, "\"tokens_per_s\":");
    json_t *tot = json_object_get(j, "totals");
    CHECK_EQ_INT(json_integer_value(json_object_get(tot, "accesses")), r->total.accesses);
    CHECK_EQ_INT(json_integer_value(json_object_get(tot, "misses")), r->total.misses);
    CHECK_EQ_INT(json_array_size(json_object_get(j, "layers")), 2);
    free(s);
    json_decref(j);
    met_sim_result_free(r);
}

TEST(presets_resolve_and_reject_unknown_names)
{
    double g, l, b;
    eng_err err = {0};
    CHECK_EQ_INT(met_sim_link_preset("nvme", &g, &l, &err), 0);
    CHECK_NEAR(g, 7.0, 0);
    CHECK_NEAR(l, 80.0, 0);
    CHECK_EQ_INT(met_sim_link_preset("usb", &g, &l, &err), ENG_EINVAL);
    CHECK_CONTAINS(err.msg, "pcie4x16");
    CHECK_EQ_INT(met_sim_expert_preset("olmoe-q8_0", &b, &err), 0);
    CHECK_NEAR(b, 3.0 * 2048 * 1024 / 32 * 34, 0);
    CHECK_EQ_INT(met_sim_expert_preset("gpt", &b, &err), ENG_EINVAL);
}

/* ---- against the one-pass curves of metrics/lrc.h ------------------------ */

#include "metrics/lrc.h"

/* For every sample: met_curve_sample's hits for every cache size equal the
 * simulator's (--lookup token --start warm) on one layer or model-wide. */
static void compare_curves(const met_trace *t, int layer)
{
    int32_t L = t->info.num_layers, E = t->info.num_experts, k = t->info.top_k;
    int32_t Et = layer >= 0 ? E : L * E, kt = layer >= 0 ? k : L * k;
    met_lrc_ws *ws;
    eng_err err = {0};
    REQUIRE(met_lrc_ws_new(&ws, Et, &err) == 0);
    int64_t S = t->info.num_samples;
    int64_t *want = tst_alloc((size_t)(S * Et) * sizeof *want);
    for (int p = 0; p < 4; p++)
        for (int la = 1; la <= (p == 3 ? 8 : 1); la *= 2) {
            for (int64_t s = 0; s < S; s++) {
                uint32_t *seq;
                int32_t kk;
                int64_t T = st_sequence(t, s, layer, &seq, &kk);
                int32_t *ids = tst_alloc((size_t)(T * kt + 1) * sizeof *ids);
                for (int64_t i = 0; i < T * kt; i++)
                    ids[i] = (int32_t)seq[i];
                REQUIRE(met_curve_sample(ws, (met_policy)p, la, ids, T, kt, want + s * Et,
                                         &err) == 0);
            }
            for (int64_t c = 1; c <= Et; c++) {
                met_sim_result *r = run(t, pname[p], c, layer >= 0 ? MET_SIM_SCOPE_LAYER
                                                               : MET_SIM_SCOPE_GLOBAL,
                                        MET_SIM_LOOKUP_TOKEN, MET_SIM_START_WARM, layer, la);
                for (int64_t s = 0; s < S; s++)
                    CHECK_MSG(r->sample_hits[s] == want[s * Et + c - 1],
                              "layer %d %s L=%d c=%lld sample %lld: simulator %lld, curve %lld",
                              layer, pname[p], la, (long long)c, (long long)s,
                              (long long)r->sample_hits[s], (long long)want[s * Et + c - 1]);
                met_sim_result_free(r);
            }
        }
    met_lrc_ws_free(ws);
}

TEST(equals_the_one_pass_curves)
{
    for (uint64_t seed = 100; seed < 106; seed++) {
        int32_t E = 8 + 4 * (int32_t)(seed % 3), k = 1 + (int32_t)(seed % 4);
        met_trace *t = st_random_trace(seed, 2, E, k, 4, 40 + 7 * (int64_t)(seed % 5),
                                       0.2 * (double)(seed % 4), 0.7 * (double)(seed % 3));
        compare_curves(t, 0);
        compare_curves(t, 1);
        if (seed % 2 == 0)
            compare_curves(t, -1);
    }
}

static double vec_at(json_t *layer, const char *curve, const char *seg, int64_t c)
{
    json_t *o = json_object_get(layer, curve);
    if (seg)
        o = json_object_get(o, seg);
    return json_real_value(json_array_get(json_object_get(o, "hit_rate"), (size_t)(c - 1)));
}

/* The test vectors' expected curves (computed by an independent brute force
 * that agrees with the paper's code): the simulator's mean per-sample hit
 * rate at every cache size, per layer and model-wide. */
TEST(reproduces_the_lrc_test_vectors)
{
    const char *names[] = {"repeat-2x6k3", "sticky-2x8k2", "uniform-1x16k4"};
    for (int n = 0; n < 3; n++) {
        char path[256], exp[256];
        snprintf(path, sizeof path, "tests/metrics/data/%s.json", names[n]);
        snprintf(exp, sizeof exp, "tests/metrics/data/%s.expected.json", names[n]);
        met_trace *t;
        eng_err err = {0};
        REQUIRE_MSG(met_trace_load(&t, path, MET_FMT_AUTO, &err) == 0, "%s", err.msg);
        json_error_t je;
        json_t *want = json_load_file(exp, 0, &je);
        REQUIRE_MSG(want, "%s: %s", exp, je.text);
        int32_t L = t->info.num_layers, E = t->info.num_experts;
        const char *curves[] = {"lru", "lfu", "belady", "sch", "sch"};
        const char *pol[] = {"lru", "lfu", "belady", "fsf", "fsf"};
        const char *segs[] = {NULL, NULL, NULL, "4", "16"};
        for (int p = 0; p < 5; p++)
            for (int layer = -1; layer < L; layer++) {
                json_t *jl = layer < 0 ? json_object_get(want, "model")
                                       : json_array_get(json_object_get(want, "layers"),
                                                        (size_t)layer);
                int64_t ncache = layer < 0 ? (int64_t)L * E : E;
                for (int64_t c = 1; c <= ncache; c++) {
                    met_sim_result *r = run(t, pol[p], c, layer < 0 ? MET_SIM_SCOPE_GLOBAL
                                                                   : MET_SIM_SCOPE_LAYER,
                                            MET_SIM_LOOKUP_TOKEN, MET_SIM_START_WARM, layer,
                                            segs[p] ? atoi(segs[p]) : 1);
                    double w = vec_at(jl, curves[p], segs[p], c);
                    CHECK_MSG(fabs(r->total.sample_hit_rate - w) <= 1e-9,
                              "%s layer %d %s%s c=%lld: %.12f, expected %.12f", names[n],
                              layer, curves[p], segs[p] ? segs[p] : "", (long long)c,
                              r->total.sample_hit_rate, w);
                    met_sim_result_free(r);
                }
            }
        json_decref(want);
        met_trace_free(t);
    }
}

/* Sample s's accesses as the engine's store makes them when its prompt ran
 * batched: per batch, per layer, each expert of the batch once in
 * ascending id; then per token, per layer, the k in router order. Keys as
 * in scope global (l * E + e) or, for one layer, expert ids. */
static int64_t batched_sequence(const met_trace *t, int64_t s, int32_t layer, uint32_t *seq)
{
    const int32_t L = t->info.num_layers, E = t->info.num_experts, k = t->info.top_k;
    const int64_t g0 = t->sample_start[s], T = t->sample_start[s + 1] - g0;
    met_trace_prompt p = met_trace_prompt_of(t, s);
    int64_t n = 0, tok = 0;
    for (; tok < p.tokens; tok += p.batch) {
        int64_t end = tok + p.batch < p.tokens ? tok + p.batch : p.tokens;
        for (int32_t l = 0; l < L; l++)
            for (int32_t e = 0; e < E; e++) {
                bool used = false;
                for (int64_t q = tok; q < end; q++)
                    for (int32_t r = 0; r < k; r++)
                        used |= t->ids[((g0 + q) * L + l) * k + r] == e;
                if (used && (layer < 0 || l == layer))
                    seq[n++] = layer < 0 ? (uint32_t)(l * E + e) : (uint32_t)e;
            }
    }
    for (tok = p.tokens; tok < T; tok++)
        for (int32_t l = 0; l < L; l++)
            for (int32_t r = 0; r < k; r++)
                if (layer < 0 || l == layer)
                    seq[n++] = layer < 0 ? (uint32_t)(l * E) + t->ids[((g0 + tok) * L + l) * k + r]
                                         : t->ids[((g0 + tok) * L + l) * k + r];
    return n;
}

/* LRU hits of a flat access sequence, cold, looked up one by one: the
 * most recently used c keys are resident. */
static int64_t lru_hits(const uint32_t *seq, int64_t n, int64_t c)
{
    int64_t hits = 0;
    for (int64_t i = 0; i < n; i++) {
        int64_t distinct = 0; /* distinct keys since the last use of seq[i] */
        bool seen = false;
        for (int64_t j = i - 1; j >= 0 && !seen; j--) {
            seen = seq[j] == seq[i];
            bool first = !seen;
            for (int64_t q = j + 1; first && q < i; q++)
                first = seq[q] != seq[j];
            distinct += first;
        }
        hits += seen && distinct < c;
    }
    return hits;
}

TEST(batched_prompt_replays_as_the_engine_store_saw_it)
{
    met_trace *t = st_random_trace(7, 3, 8, 2, 3, 20, 0.4, 0.5);
    eng_err e = {0};
    const met_trace_prompt pr[3] = {{12, 5}, {20, 20}, {0, 0}};
    for (int s = 0; s < 3; s++)
        REQUIRE_MSG(!met_trace_set_prompt(t, s, pr[s], &e), "%s", e.msg);
    uint32_t *seq = tst_alloc(20 * 3 * 2 * sizeof *seq);
    for (int scope = 0; scope < 2; scope++)
        for (int64_t c = 1; c <= 6; c++) {
            met_sim_result *r = run(t, "lru", c, scope ? MET_SIM_SCOPE_GLOBAL : MET_SIM_SCOPE_LAYER,
                                    MET_SIM_LOOKUP_SEQUENTIAL, MET_SIM_START_COLD, -1, 1);
            CHECK_EQ_INT(r->batched_samples, 2);
            CHECK(r->prompt_note == NULL);
            for (int64_t s = 0; s < 3; s++) {
                int64_t want = 0, acc = 0;
                for (int32_t l = scope ? -1 : 0; l < (scope ? 0 : 3); l++) {
                    int64_t n = batched_sequence(t, s, l, seq);
                    want += lru_hits(seq, n, c);
                    acc += n;
                }
                CHECK_MSG(r->sample_hits[s] == want && r->sample_accesses[s] == acc,
                          "scope %d c %lld sample %lld: %lld/%lld, brute force %lld/%lld", scope,
                          (long long)c, (long long)s, (long long)r->sample_hits[s],
                          (long long)r->sample_accesses[s], (long long)want, (long long)acc);
            }
            met_sim_result_free(r);
        }
    /* an oracle policy replays the prompt token by token and says why;
     * --prompt tokens does so on request */
    met_sim_result *r = run(t, "belady", 3, MET_SIM_SCOPE_LAYER, MET_SIM_LOOKUP_SEQUENTIAL,
                            MET_SIM_START_COLD, -1, 1);
    CHECK_EQ_INT(r->batched_samples, 0);
    CHECK(r->prompt_note && strstr(r->prompt_note, "future is per token"));
    CHECK_EQ_INT(r->total.accesses, 3 * 20 * 3 * 2);
    met_sim_result_free(r);
    met_sim_config cfg;
    met_sim_config_default(&cfg);
    cfg.cache_experts = 3;
    cfg.prompt = MET_SIM_PROMPT_TOKENS;
    REQUIRE(!met_sim_run(t, &cfg, &r, &e));
    CHECK_EQ_INT(r->batched_samples, 0);
    CHECK(r->prompt_note == NULL);
    CHECK_EQ_INT(r->total.accesses, 3 * 20 * 3 * 2);
    met_sim_result_free(r);
}
