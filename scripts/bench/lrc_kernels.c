/*
 * lrc_kernels.c — per-curve cost of the one-pass kernels (built and run by
 * scripts/bench/metrics.sh): for sample 0 of a trace, the CPU time of one
 * met_curve_sample call per policy, for one layer (E, k of the trace) and for
 * the model-wide concatenation (L*E, L*k), single-threaded, best of REPS.
 *   lrc_kernels TRACE.moetrace [REPS]
 */
#include "metrics/lrc.h"
#include "metrics/trace.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double cpu_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + t.tv_nsec * 1e-9;
}

static double best_of(met_lrc_ws *ws, met_policy p, int32_t look, const int32_t *ids, int64_t T,
                      int32_t k, int64_t *hits, int reps)
{
    double best = 1e30;
    for (int i = 0; i < reps; i++) {
        double t0 = cpu_now();
        met_curve_sample(ws, p, look, ids, T, k, hits, NULL);
        double dt = cpu_now() - t0;
        best = dt < best ? dt : best;
    }
    return best;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return 2;
    int reps = argc > 2 ? atoi(argv[2]) : 20;
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
    uint16_t *raw = malloc((size_t)(L * T * k) * 2);
    int32_t *lay = malloc((size_t)(T * k) * 4), *all = malloc((size_t)(T * k * L) * 4);
    int64_t *hits = malloc((size_t)L * E * 8);
    met_lrc_ws *wl, *wm;
    if (met_trace_reader_sample(r, 0, raw, NULL, &err) || met_lrc_ws_new(&wl, E, NULL) ||
        met_lrc_ws_new(&wm, L * E, NULL))
        return 1;
    for (int64_t i = 0; i < T * k; i++)
        lay[i] = raw[i];
    for (int64_t t = 0; t < T; t++)
        for (int32_t l = 0; l < L; l++)
            for (int32_t q = 0; q < k; q++)
                all[(t * L + l) * k + q] = raw[((size_t)l * T + t) * k + q] + l * E;
    printf("one sample, T = %lld; CPU time per call (all %d cache sizes at once), best of %d:\n",
           (long long)T, (int)E, reps);
    static const int32_t looks[] = {4, 16, 64, 256};
    for (int p = 0; p < 3 + 4; p++) {
        met_policy pol = p < 3 ? (met_policy)p : MET_POLICY_FSF;
        int32_t look = p < 3 ? 1 : looks[p - 3];
        double a = best_of(wl, pol, look, lay, T, k, hits, reps);
        double b = best_of(wm, pol, look, all, T, L * k, hits, reps > 3 ? 3 : reps);
        char name[32];
        snprintf(name, sizeof name, p < 3 ? "%s" : "%s L=%d", met_policy_name(pol), (int)look);
        printf("  %-11s layer (E=%d, k=%d): %7.1f us   model-wide (E=%d, k=%d): %7.2f ms\n",
               name, (int)E, (int)k, a * 1e6, (int)(L * E), (int)(L * k), b * 1e3);
    }
    return 0;
}
