/*
 * test_lrc.c — the routing-consistency metrics against independent
 * computations: a brute-force cache simulator that follows the reference
 * literally (one cache size at a time, priorities recomputed by scanning the
 * trace at each eviction), brute-force window counts for SRP, the worked
 * example of the reference, and the model-wide results against the
 * explicitly concatenated trace. Every exact method the kernels can choose
 * (metrics/lrc_impl.h) is forced in turn and checked the same way.
 */
#include "metrics/lrc.h"
#include "metrics/lrc_impl.h"
#include "metrics/trace.h"
#include "tests/metrics/lrc_util.h"
#include "tests/test.h"

#include <stdlib.h>

/* Priority of cached expert e when access p (token t) loads: larger is
 * kept. Pairs compare lexicographically. */
typedef struct prio { int64_t a, b; } prio;

static prio brute_prio(met_policy pol, const int32_t *ids, int64_t T, int32_t k, int32_t L,
                       int32_t e, int64_t p, const int64_t *cnt, const int64_t *last)
{
    int64_t N = T * k, t = p / k;
    if (pol == MET_POLICY_LRU)
        return (prio){last[e], 0};
    if (pol == MET_POLICY_LFU)
        return (prio){cnt[e], last[e]};
    if (pol == MET_POLICY_BELADY) {
        for (int64_t q = p; q < N; q++)
            if (ids[q] == e)
                return (prio){-q, 0};
        return (prio){-(N + e), 0};
    }
    int64_t n = 0, end = (t + L) * k < N ? (t + L) * k : N;
    for (int64_t q = p; q < end; q++)
        n += ids[q] == e;
    return (prio){n, last[e]};
}

/* The reference, literally, for one cache size c. */
static int64_t brute_hits(const int32_t *ids, int64_t T, int32_t k, int32_t E, int32_t c,
                          met_policy pol, int32_t L)
{
    char *in = tst_alloc((size_t)E), *seen = tst_alloc((size_t)E), *look = tst_alloc((size_t)k);
    int64_t *cnt = tst_alloc((size_t)E * 8), *last = tst_alloc((size_t)E * 8);
    int32_t ncache = 0, nseen = 0;
    int64_t hits = 0;
    memset(in, 0, (size_t)E), memset(seen, 0, (size_t)E);
    memset(cnt, 0, (size_t)E * 8), memset(last, 0, (size_t)E * 8);
    for (int64_t t = 0; t < T; t++) {
        const int32_t *tok = ids + t * k;
        for (int32_t r = 0; r < k; r++)
            look[r] = in[tok[r]];
        for (int32_t r = 0; r < k; r++) {
            int warm = 0;
            if (!seen[tok[r]]) {
                seen[tok[r]] = 1;
                warm = nseen++ < c;
            }
            hits += look[r] || warm;
        }
        for (int32_t r = 0; r < k; r++) {
            int32_t x = tok[r];
            int64_t p = t * k + r;
            if (!in[x]) {
                if (ncache == c) {
                    int32_t v = -1;
                    prio pv = {0, 0};
                    for (int32_t e = 0; e < E; e++) {
                        if (!in[e])
                            continue;
                        prio pe = brute_prio(pol, ids, T, k, L, e, p, cnt, last);
                        if (v < 0 || pe.a < pv.a || (pe.a == pv.a && pe.b < pv.b))
                            v = e, pv = pe;
                    }
                    in[v] = 0, ncache--;
                }
                in[x] = 1, ncache++;
            }
            cnt[x]++, last[x] = p;
        }
    }
    return hits;
}

TEST(worked_example_hits)
{
    static const int32_t ids[] = {0, 1, 2, 3, 0, 2, 1, 0};
    static const int64_t want[4][4] = {{1, 4, 5, 8}, {1, 4, 5, 8}, {1, 4, 6, 8}, {1, 4, 6, 8}};
    met_lrc_ws *ws;
    REQUIRE(!met_lrc_ws_new(&ws, 4, NULL));
    for (int p = 0; p < 4; p++) {
        int64_t hits[4];
        REQUIRE(!met_curve_sample(ws, (met_policy)p, 2, ids, 4, 2, hits, NULL));
        for (int c = 0; c < 4; c++) {
            CHECK_MSG(hits[c] == want[p][c], "%s c=%d: %lld, want %lld",
                      met_policy_name((met_policy)p), c + 1, (long long)hits[c],
                      (long long)want[p][c]);
            CHECK_EQ_INT(brute_hits(ids, 4, 2, 4, c + 1, (met_policy)p, 2), want[p][c]);
        }
    }
    met_lrc_ws_free(ws);
}

TEST(worked_example_srp)
{
    static const int32_t ids[] = {0, 1, 2, 3, 0, 2, 1, 0};
    met_lrc_ws *ws;
    REQUIRE(!met_lrc_ws_new(&ws, 4, NULL));
    int64_t h[3] = {0};
    REQUIRE(!met_srp_sample_hist(ws, ids, 4, 2, 2, h, NULL));
    double hd[3] = {(double)h[0], (double)h[1], (double)h[2]}, f1[3];
    met_srp s;
    met_srp_from_hist(hd, 2, f1, &s);
    CHECK_NEAR(f1[0], 2.0 / 3, 1e-15);
    CHECK_NEAR(f1[1], 0.75, 1e-15);
    CHECK_NEAR(f1[2], 0.5, 1e-15);
    CHECK_NEAR(s.best_f1, 0.75, 1e-15);
    CHECK_EQ_INT(s.threshold, 1);
    CHECK_NEAR(s.act_r, 0.5, 1e-15);
    CHECK_NEAR(s.best_m, 5.0 / 3, 1e-15);
    met_lrc_ws_free(ws);
}

/* The methods met_curve_sample can use; AUTO first. */
static const struct {
    met_lrc_lru lru;
    met_lrc_walk walk;
    met_lrc_small small;
} methods[] = {
    {MET_LRC_LRU_AUTO, MET_LRC_WALK_AUTO, MET_LRC_SMALL_AUTO},
    {MET_LRC_LRU_FENWICK, MET_LRC_WALK_SCAN, MET_LRC_SMALL_OFF},
    {MET_LRC_LRU_COUNT, MET_LRC_WALK_MASK, MET_LRC_SMALL_OFF},
    {MET_LRC_LRU_AUTO, MET_LRC_WALK_AVX512, MET_LRC_SMALL_OFF}, /* AUTO where no AVX-512 */
    {MET_LRC_LRU_AUTO, MET_LRC_WALK_PORTABLE, MET_LRC_SMALL_OFF},
    {MET_LRC_LRU_AUTO, MET_LRC_WALK_AVX2, MET_LRC_SMALL_OFF}, /* AUTO where no AVX2 */
};
#define NMETHODS ((int)(sizeof methods / sizeof methods[0]))

/* One-pass curves == brute force, integer for integer, on random and
 * structured samples (ties, repeats, k = 1, k = E, one token), with every
 * method. */
TEST(curves_equal_brute_force)
{
    lrc_rng g = {12345};
    met_lrc_ws *ws = NULL;
    int cases = 0;
    for (int it = 0; it < 400; it++) {
        int32_t E = 1 + (int32_t)lrc_below(&g, 12), k = 1 + (int32_t)lrc_below(&g, (uint64_t)E);
        int64_t T = 1 + (int64_t)lrc_below(&g, it % 5 == 0 ? 3 : 30);
        int model = (int)lrc_below(&g, 4); /* 0 uniform, 1 sticky, 2 repeat, 3 two experts hot */
        if (it % 7 == 0)
            k = E;
        if (it % 11 == 0)
            k = 1;
        int32_t *ids = tst_alloc((size_t)(T * k) * 4);
        lrc_random_sample(&g, ids, T, k, E, model);
        REQUIRE(!met_lrc_ws_new(&ws, E, NULL));
        int64_t *hits = tst_alloc((size_t)E * 8);
        for (int p = 0; p < MET_POLICY_COUNT; p++) {
            int32_t L = 1 + (int32_t)lrc_below(&g, 6);
            for (int q = 0; q < NMETHODS; q++) {
                met_lrc_ws_force(ws, methods[q].lru, methods[q].walk, methods[q].small);
                REQUIRE(!met_curve_sample(ws, (met_policy)p, L, ids, T, k, hits, NULL));
                for (int32_t c = 1; c <= E; c++) {
                    int64_t b = brute_hits(ids, T, k, E, c, (met_policy)p, L);
                    CHECK_MSG(hits[c - 1] == b,
                              "it %d %s method %d E=%d k=%d T=%lld L=%d c=%d: %lld vs brute %lld",
                              it, met_policy_name((met_policy)p), q, E, k, (long long)T, L, c,
                              (long long)hits[c - 1], (long long)b);
                    cases++;
                }
                CHECK_EQ_INT(hits[E - 1], T * k); /* warm start: every curve reaches 1 */
            }
        }
        met_lrc_ws_free(ws);
    }
    CHECK(cases > 12000);
}

/* Larger E, around the methods' boundaries: LRU counting up to
 * MET_LRC_LRU_COUNT_MAX_E experts (Fenwick tree above), record masks in
 * blocks of 64 stack positions (walks longer than a block). Every method
 * gives the same hits for every size, and brute force agrees at sizes
 * around the boundaries. */
TEST(curves_large_e_methods_agree)
{
    lrc_rng g = {2024};
    static const int32_t Es[] = {63, 64, 65, 129, MET_LRC_LRU_COUNT_MAX_E,
                                 MET_LRC_LRU_COUNT_MAX_E + 1};
    for (int ie = 0; ie < (int)(sizeof Es / sizeof Es[0]); ie++) {
        int32_t E = Es[ie], k = 8 + (int32_t)lrc_below(&g, 8);
        int64_t T = 16;
        int32_t *ids = tst_alloc((size_t)(T * k) * 4);
        lrc_random_sample(&g, ids, T, k, E, ie % 2 ? 0 : 1);
        met_lrc_ws *ws;
        REQUIRE(!met_lrc_ws_new(&ws, E, NULL));
        int64_t *hits = tst_alloc((size_t)E * 8), *ref = tst_alloc((size_t)E * 8);
        const int32_t sizes[] = {1, 2, 3, 63, 64, 65, 66, E / 2, E - 1, E};
        for (int p = 0; p < MET_POLICY_COUNT; p++) {
            int32_t L = p == MET_POLICY_FSF ? 1 + (int32_t)lrc_below(&g, 6) : 1;
            for (int q = 0; q < NMETHODS; q++) {
                met_lrc_ws_force(ws, methods[q].lru, methods[q].walk, methods[q].small);
                REQUIRE(!met_curve_sample(ws, (met_policy)p, L, ids, T, k, q ? hits : ref, NULL));
                for (int32_t c = 0; q && c < E; c++)
                    CHECK_MSG(hits[c] == ref[c], "%s E=%d method %d c=%d: %lld vs auto %lld",
                              met_policy_name((met_policy)p), E, q, c + 1, (long long)hits[c],
                              (long long)ref[c]);
            }
            for (int i = 0; i < (int)(sizeof sizes / sizeof sizes[0]); i++) {
                int32_t c = sizes[i];
                if (c < 1 || c > E)
                    continue;
                int64_t b = brute_hits(ids, T, k, E, c, (met_policy)p, L);
                CHECK_MSG(ref[c - 1] == b, "%s E=%d k=%d c=%d: %lld vs brute %lld",
                          met_policy_name((met_policy)p), E, k, c, (long long)ref[c - 1],
                          (long long)b);
            }
        }
        met_lrc_ws_free(ws);
    }
}

/* Deep walks around the vector walks' blocks (8 and 16 positions; 64 at a
 * time skipped): E at block boundaries, up to model-wide sizes, with
 * enough accesses (N ~ 3E) that the stack fills and accesses reach every
 * depth. Every method == the scan walk at every size; brute force agrees
 * at sizes around the boundaries (for E > 256 LFU only: Belady's and
 * FSF's literal priorities cost a trace scan per expert per eviction;
 * their vector walks are checked against the scan walk, itself checked by
 * brute force at the smaller E). */
TEST(curves_wide_walk_block_boundaries)
{
    lrc_rng g = {9001};
    static const int32_t Es[] = {7, 8, 9, 15, 16, 17, 63, 64, 65, 72, 1024, 1031};
    for (int ie = 0; ie < (int)(sizeof Es / sizeof Es[0]); ie++) {
        int32_t E = Es[ie];
        int32_t k = 1 + (int32_t)lrc_below(&g, E < 64 ? (uint64_t)E : 32);
        int64_t T = 3 * (int64_t)E / k + 4;
        int32_t *ids = tst_alloc((size_t)(T * k) * 4);
        lrc_random_sample(&g, ids, T, k, E, ie % 2 ? 0 : 1);
        met_lrc_ws *ws;
        REQUIRE(!met_lrc_ws_new(&ws, E, NULL));
        int64_t *hits = tst_alloc((size_t)E * 8), *ref = tst_alloc((size_t)E * 8);
        const int32_t sizes[] = {1, 2, 7, 8, 9, 15, 16, 17, 63, 64, 65, 66, E - 1, E};
        for (int p = 1; p < MET_POLICY_COUNT; p++) {
            int32_t L = p == MET_POLICY_FSF ? 1 + (int32_t)lrc_below(&g, 6) : 1;
            met_lrc_ws_force(ws, MET_LRC_LRU_FENWICK, MET_LRC_WALK_SCAN, MET_LRC_SMALL_OFF);
            REQUIRE(!met_curve_sample(ws, (met_policy)p, L, ids, T, k, ref, NULL));
            for (int q = 0; q < NMETHODS; q++) {
                met_lrc_ws_force(ws, methods[q].lru, methods[q].walk, methods[q].small);
                REQUIRE(!met_curve_sample(ws, (met_policy)p, L, ids, T, k, hits, NULL));
                for (int32_t c = 0; c < E; c++)
                    CHECK_MSG(hits[c] == ref[c], "%s E=%d k=%d method %d c=%d: %lld vs scan %lld",
                              met_policy_name((met_policy)p), E, k, q, c + 1,
                              (long long)hits[c], (long long)ref[c]);
            }
            CHECK_EQ_INT(ref[E - 1], T * k);
            if (E > 256 && p != MET_POLICY_LFU)
                continue;
            for (int i = 0; i < (int)(sizeof sizes / sizeof sizes[0]); i++) {
                int32_t c = sizes[i];
                if (c < 1 || c > E)
                    continue;
                int64_t b = brute_hits(ids, T, k, E, c, (met_policy)p, L);
                CHECK_MSG(ref[c - 1] == b, "%s E=%d k=%d c=%d: %lld vs brute %lld",
                          met_policy_name((met_policy)p), E, k, c, (long long)ref[c - 1],
                          (long long)b);
            }
        }
        met_lrc_ws_free(ws);
    }
}

/* Several curves in one call (side by side where the CPU allows, in groups
 * of MET_LRC_SMALL_MAX_CURVES) == one general call per curve. */
TEST(curves_sample_equals_single_calls)
{
    lrc_rng g = {31337};
    static const int32_t Es[] = {1, 5, 17, 63, 64, 65, 100};
    enum { NC = 11 };
    for (int it = 0; it < 28; it++) {
        int32_t E = Es[it % 7], k = 1 + (int32_t)lrc_below(&g, (uint64_t)(E < 9 ? E : 9));
        int64_t T = 1 + (int64_t)lrc_below(&g, it < 7 ? 4 : 300);
        int32_t *ids = tst_alloc((size_t)(T * k) * 4);
        lrc_random_sample(&g, ids, T, k, E, it % 4);
        met_policy pols[NC];
        int32_t looks[NC];
        for (int i = 0; i < NC; i++) {
            pols[i] = (met_policy)lrc_below(&g, MET_POLICY_COUNT);
            looks[i] = 1 + (int32_t)lrc_below(&g, (uint64_t)T + 3);
        }
        met_lrc_ws *ws;
        REQUIRE(!met_lrc_ws_new(&ws, E, NULL));
        int64_t *all = tst_alloc((size_t)NC * E * 8), *one = tst_alloc((size_t)E * 8);
        REQUIRE(!met_curves_sample(ws, NC, pols, looks, ids, T, k, all, NULL));
        met_lrc_ws_force(ws, MET_LRC_LRU_FENWICK, MET_LRC_WALK_SCAN, MET_LRC_SMALL_OFF);
        for (int i = 0; i < NC; i++) {
            REQUIRE(!met_curve_sample(ws, pols[i], looks[i], ids, T, k, one, NULL));
            for (int32_t c = 0; c < E; c++)
                CHECK_MSG(all[(size_t)i * E + c] == one[c],
                          "it %d curve %d %s L=%d E=%d k=%d T=%lld c=%d: %lld vs %lld", it, i,
                          met_policy_name(pols[i]), looks[i], E, k, (long long)T, c + 1,
                          (long long)all[(size_t)i * E + c], (long long)one[c]);
        }
        met_lrc_ws_free(ws);
    }
}

/* The in-register stack (E <= 64) with many experts per token (k > 16:
 * the entering token's ids gathered another way; up to k rank changes per
 * FSF window step) and counts that tie: several curves side by side ==
 * the general walk, and brute force at a few sizes. */
TEST(curves_small_stack_wide_tokens)
{
    lrc_rng g = {4242};
    static const int32_t Es[] = {17, 40, 63, 64};
    enum { NC = 6 };
    for (int it = 0; it < 16; it++) {
        int32_t E = Es[it % 4], k = it < 4 ? E : 17 + (int32_t)lrc_below(&g, (uint64_t)E - 16);
        int64_t T = 8 + (int64_t)lrc_below(&g, 40);
        int32_t *ids = tst_alloc((size_t)(T * k) * 4);
        lrc_random_sample(&g, ids, T, k, E, it % 4);
        met_policy pols[NC] = {MET_POLICY_FSF, MET_POLICY_FSF, MET_POLICY_FSF, MET_POLICY_LFU,
                               MET_POLICY_BELADY, MET_POLICY_FSF};
        int32_t looks[NC] = {1, 2, 3 + (int32_t)lrc_below(&g, 6), 1, 1, (int32_t)T + 1};
        met_lrc_ws *ws;
        REQUIRE(!met_lrc_ws_new(&ws, E, NULL));
        int64_t *all = tst_alloc((size_t)NC * E * 8), *one = tst_alloc((size_t)E * 8);
        REQUIRE(!met_curves_sample(ws, NC, pols, looks, ids, T, k, all, NULL));
        met_lrc_ws_force(ws, MET_LRC_LRU_FENWICK, MET_LRC_WALK_SCAN, MET_LRC_SMALL_OFF);
        const int32_t sizes[] = {1, 2, E / 3, E / 2, E - 1};
        for (int i = 0; i < NC; i++) {
            REQUIRE(!met_curve_sample(ws, pols[i], looks[i], ids, T, k, one, NULL));
            for (int32_t c = 0; c < E; c++)
                CHECK_MSG(all[(size_t)i * E + c] == one[c],
                          "it %d curve %d %s L=%d E=%d k=%d T=%lld c=%d: %lld vs %lld", it, i,
                          met_policy_name(pols[i]), looks[i], E, k, (long long)T, c + 1,
                          (long long)all[(size_t)i * E + c], (long long)one[c]);
            for (int q = 0; it % 4 == 0 && q < (int)(sizeof sizes / sizeof sizes[0]); q++) {
                int32_t c = sizes[q] < 1 ? 1 : sizes[q];
                int64_t b = brute_hits(ids, T, k, E, c, pols[i], looks[i]);
                CHECK_MSG(all[(size_t)i * E + c - 1] == b,
                          "it %d %s L=%d E=%d k=%d c=%d: %lld vs brute %lld", it,
                          met_policy_name(pols[i]), looks[i], E, k, c,
                          (long long)all[(size_t)i * E + c - 1], (long long)b);
            }
        }
        met_lrc_ws_free(ws);
    }
}

/* Window counts by brute force. */
TEST(srp_hist_equals_brute_force)
{
    lrc_rng g = {777};
    for (int it = 0; it < 200; it++) {
        int32_t E = 1 + (int32_t)lrc_below(&g, 10), k = 1 + (int32_t)lrc_below(&g, (uint64_t)E);
        int64_t T = 1 + (int64_t)lrc_below(&g, 40);
        int32_t seg = 1 + (int32_t)lrc_below(&g, 20);
        int32_t *ids = tst_alloc((size_t)(T * k) * 4);
        lrc_random_sample(&g, ids, T, k, E, (int)lrc_below(&g, 4));
        met_lrc_ws *ws;
        REQUIRE(!met_lrc_ws_new(&ws, E, NULL));
        int64_t *h = tst_alloc((size_t)(seg + 1) * 8), *b = tst_alloc((size_t)(seg + 1) * 8);
        memset(h, 0, (size_t)(seg + 1) * 8), memset(b, 0, (size_t)(seg + 1) * 8);
        REQUIRE(!met_srp_sample_hist(ws, ids, T, k, seg, h, NULL));
        for (int64_t w = 0; w + seg <= T; w++)
            for (int32_t e = 0; e < E; e++) {
                int64_t c = 0;
                for (int64_t t = w; t < w + seg; t++)
                    for (int32_t r = 0; r < k; r++)
                        c += ids[t * k + r] == e;
                b[c]++;
            }
        for (int32_t j = 0; j <= seg; j++)
            CHECK_MSG(h[j] == b[j], "it %d seg %d: hist[%d] = %lld, brute %lld", it, seg, j,
                      (long long)h[j], (long long)b[j]);
        met_lrc_ws_free(ws);
    }
}

/* MOEBENCH_SIMD is resolved by eng_simd_default alone: a bad value is the
 * engine's error here too (it used to be ignored by the curves), and a
 * forced scalar path gives the hits the default path gives. */
TEST(simd_variable_resolved_once)
{
    static const int32_t ids[] = {0, 1, 2, 3, 0, 2, 1, 0};
    met_lrc_ws *ws;
    eng_err err = {0};
    setenv("MOEBENCH_SIMD", "neon", 1);
    CHECK_EQ_INT(met_lrc_ws_new(&ws, 4, &err), ENG_EINVAL);
    CHECK_CONTAINS(err.msg, "MOEBENCH_SIMD");
    CHECK(ws == NULL);
    int64_t want[4], got[4];
    unsetenv("MOEBENCH_SIMD");
    REQUIRE(!met_lrc_ws_new(&ws, 4, NULL));
    REQUIRE(!met_curve_sample(ws, MET_POLICY_BELADY, 2, ids, 4, 2, want, NULL));
    met_lrc_ws_free(ws);
    setenv("MOEBENCH_SIMD", "scalar", 1);
    REQUIRE(!met_lrc_ws_new(&ws, 4, NULL));
    REQUIRE(!met_curve_sample(ws, MET_POLICY_BELADY, 2, ids, 4, 2, got, NULL));
    met_lrc_ws_free(ws);
    for (int c = 0; c < 4; c++)
        CHECK_EQ_INT(got[c], want[c]);
}
