/*
 * lrc_kernels.c — per-curve cost of the one-pass kernels (built and run by
 * scripts/bench/metrics.sh): CPU time of one met_curve_sample call per
 * policy, for one layer (E, k of the trace; layer 0) and for the model-wide
 * concatenation (L*E, L*k), single-threaded.
 *
 * Each round calls the kernel once on each of the first S samples in turn
 * and the figure is the best round's mean per call. Last, all seven curves
 * of a sample in one met_curves_sample call, as met_lrc_compute computes
 * them (side by side where the kernels can), per sample and per curve; and
 * per policy side by side with itself (four copies in one call), the cost
 * of one curve when its update chains overlap with others'. Calling it again and
 * again on one sample would let the branch predictor learn that sample's
 * branches (up to 2.5x faster than on fresh samples here), which the
 * whole-trace run never sees.
 * With "portable", the methods a CPU with neither AVX-512 nor AVX2 gets
 * (forced through metrics/lrc_impl.h), to measure them on one that has it;
 * with "avx2", the AVX2 walk for the layer and the model-wide curves (a CPU
 * with AVX2 but without AVX-512 F gets it model-wide only: that is
 * MOEBENCH_SIMD=avx2 with neither word).
 *   lrc_kernels TRACE.moetrace [ROUNDS] [SAMPLES] [portable|avx2]
 */
#include "metrics/lrc.h"
#include "metrics/lrc_impl.h"
#include "metrics/trace.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double cpu_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + t.tv_nsec * 1e-9;
}

/* ids: S samples of T*k ids each, back to back; n curves per call. */
static double best_round_all(met_lrc_ws *ws, int n, const met_policy *p, const int32_t *look,
                             const int32_t *ids, int S, int64_t T, int32_t k, int64_t *hits,
                             int rounds)
{
    double best = 1e30;
    for (int i = 0; i < rounds; i++) {
        double t0 = cpu_now();
        for (int s = 0; s < S; s++)
            met_curves_sample(ws, n, p, look, ids + (size_t)s * T * k, T, k, hits, NULL);
        double dt = (cpu_now() - t0) / S;
        best = dt < best ? dt : best;
    }
    return best;
}

static double best_round(met_lrc_ws *ws, met_policy p, int32_t look, const int32_t *ids,
                         int S, int64_t T, int32_t k, int64_t *hits, int rounds)
{
    double best = 1e30;
    for (int i = 0; i < rounds; i++) {
        double t0 = cpu_now();
        for (int s = 0; s < S; s++)
            met_curve_sample(ws, p, look, ids + (size_t)s * T * k, T, k, hits, NULL);
        double dt = (cpu_now() - t0) / S;
        best = dt < best ? dt : best;
    }
    return best;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return 2;
    int rounds = argc > 2 ? atoi(argv[2]) : 5, S = argc > 3 ? atoi(argv[3]) : 32;
    met_trace_reader *r;
    eng_err err = {0};
    if (met_trace_reader_open(&r, argv[1], MET_FMT_AUTO, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    const met_trace_info *in = met_trace_reader_info(r);
    int32_t L = in->num_layers, E = in->num_experts, k = in->top_k;
    const int64_t *ss = met_trace_reader_sample_start(r);
    int64_t T = ss[1] - ss[0];
    S = S < 1 ? 1 : S > in->num_samples ? (int)in->num_samples : S;
    for (int s = 0; s < S; s++)
        if (ss[s + 1] - ss[s] != T) {
            fprintf(stderr, "samples 0..%d must have the same length\n", S - 1);
            return 1;
        }
    size_t n = (size_t)T * k;
    uint16_t *raw = malloc(L * n * 2);
    int32_t *lay = malloc(S * n * 4), *all = malloc(S * n * L * 4);
    int64_t *hits = malloc((size_t)7 * L * E * 8);
    met_lrc_ws *wl, *wm;
    if (!raw || !lay || !all || !hits || met_lrc_ws_new(&wl, E, NULL) ||
        met_lrc_ws_new(&wm, L * E, NULL))
        return 1;
    int portable = argc > 4 && !strcmp(argv[4], "portable");
    int avx2 = argc > 4 && !strcmp(argv[4], "avx2");
    if (portable || avx2) {
        met_lrc_walk w = portable ? MET_LRC_WALK_PORTABLE : MET_LRC_WALK_AVX2;
        met_lrc_ws_force(wl, MET_LRC_LRU_AUTO, w, MET_LRC_SMALL_OFF);
        met_lrc_ws_force(wm, MET_LRC_LRU_AUTO, w, MET_LRC_SMALL_OFF);
    }
    for (int s = 0; s < S; s++) {
        if (met_trace_reader_sample(r, s, raw, NULL, &err))
            return 1;
        for (size_t i = 0; i < n; i++)
            lay[s * n + i] = raw[i];
        for (int64_t t = 0; t < T; t++)
            for (int32_t l = 0; l < L; l++)
                for (int32_t q = 0; q < k; q++)
                    all[s * n * L + (t * L + l) * k + q] =
                        raw[((size_t)l * T + t) * k + q] + l * E;
    }
    int Sm = S < 8 ? S : 8;
    printf("T = %lld; CPU time per call (all cache sizes at once), mean over %d samples "
           "(model-wide %d), best of %d rounds%s:\n", (long long)T, S, Sm, rounds,
           portable ? ", methods of a CPU without AVX-512 or AVX2"
           : avx2   ? ", AVX2 walk"
                    : "");
    static const int32_t looks[] = {4, 16, 64, 256};
    for (int p = 0; p < 3 + 4; p++) {
        met_policy pol = p < 3 ? (met_policy)p : MET_POLICY_FSF;
        int32_t look = p < 3 ? 1 : looks[p - 3];
        double a = best_round(wl, pol, look, lay, S, T, k, hits, rounds);
        double b = best_round(wm, pol, look, all, Sm, T, L * k, hits, rounds > 3 ? 3 : rounds);
        char name[32];
        snprintf(name, sizeof name, p < 3 ? "%s" : "%s L=%d", met_policy_name(pol), (int)look);
        printf("  %-11s layer (E=%d, k=%d): %7.1f us   model-wide (E=%d, k=%d): %7.2f ms\n",
               name, (int)E, (int)k, a * 1e6, (int)(L * E), (int)(L * k), b * 1e3);
    }
    met_policy pols[7] = {MET_POLICY_LRU, MET_POLICY_LFU, MET_POLICY_BELADY, MET_POLICY_FSF,
                          MET_POLICY_FSF, MET_POLICY_FSF, MET_POLICY_FSF};
    int32_t lk[7] = {1, 1, 1, 4, 16, 64, 256};
    double a = best_round_all(wl, 7, pols, lk, lay, S, T, k, hits, rounds);
    double b = best_round_all(wm, 7, pols, lk, all, Sm, T, L * k, hits, rounds > 3 ? 3 : rounds);
    printf("  all 7 in one met_curves_sample call: layer %7.1f us (%.1f us per curve)   "
           "model-wide %7.2f ms (%.2f ms per curve)\n", a * 1e6, a * 1e6 / 7, b * 1e3, b * 1e3 / 7);
    printf("  layer, four copies of one curve in one call, per curve:");
    for (int p = 1; p < 7; p++) {
        met_policy p4[4] = {pols[p], pols[p], pols[p], pols[p]};
        int32_t l4[4] = {lk[p], lk[p], lk[p], lk[p]};
        double c = best_round_all(wl, 4, p4, l4, lay, S, T, k, hits, rounds) / 4;
        if (p < 3)
            printf(" %s %.1f us,", met_policy_name(pols[p]), c * 1e6);
        else
            printf(" fsf L=%d %.1f us%s", (int)lk[p], c * 1e6, p < 6 ? "," : "");
    }
    printf("\n");
    met_lrc_ws_free(wl), met_lrc_ws_free(wm), met_trace_reader_free(r);
    free(raw), free(lay), free(all), free(hits);
    return 0;
}
