/*
 * lrc.h — local routing consistency metrics of "Not All Models Suit Expert
 * Offloading" (Liang et al., arXiv 2505.16056): SRP (segment routing best
 * performance), and cache hit-rate curves for every cache size of LRU, LFU,
 * Belady and FSF (segment-lookahead; its curve is SCH), per layer and
 * model-wide, with basic-bootstrap confidence intervals. The conventions
 * (warm start, whole-token look-up, per-sample averaging, tie breaks) are
 * those of the paper's code; docs/metrics.md states them with a worked
 * example.
 *
 * Two levels:
 *   - kernels on one sample: met_curve_sample (hits for every cache size
 *     in one pass) and met_srp_sample_hist (window-count histogram);
 *   - met_lrc_compute: a whole trace through a met_trace_reader, layer by
 *     layer (streaming: one layer's ids in memory at a time) plus the
 *     model-wide concatenation (sample by sample), threads over samples,
 *     bootstrap over samples.
 *
 * Thread-safety: a met_lrc_ws is scratch for one thread; the kernels touch
 * nothing else. met_lrc_compute starts its own threads and is reentrant.
 */
#ifndef MET_LRC_H
#define MET_LRC_H

#include "engine/err.h"
#include "metrics/trace.h"

#include <stdint.h>

typedef enum met_policy {
    MET_POLICY_LRU = 0,   /* evict the least recently used                    */
    MET_POLICY_LFU,       /* least frequently used since sample start, ties LRU */
    MET_POLICY_BELADY,    /* farthest next use (oracle)                       */
    MET_POLICY_FSF,       /* fewest uses in the next `lookahead` tokens, ties LRU */
    MET_POLICY_COUNT
} met_policy;

/* "lru", "lfu", "belady", "fsf" */
const char *met_policy_name(met_policy p);

/* Scratch for the one-sample kernels, sized for num_experts experts and
 * grown as needed for sample length. */
typedef struct met_lrc_ws met_lrc_ws;
int met_lrc_ws_new(met_lrc_ws **out, int32_t num_experts, eng_err *err);
void met_lrc_ws_free(met_lrc_ws *ws);

/* Hit counts of one sample (T < 2^22 tokens) for every cache size at once:
 * hits[c - 1] for c = 1..E, each in 0..T*k. ids[T][k]: expert ids < E (the
 * ws's num_experts), no repeats within a token (met_trace_validate's
 * invariant; not re-checked). lookahead (tokens, >= 1) is used by FSF only.
 * Semantics: lrc-metrics conventions (look-up of the whole token against the
 * cache before the token, warm start, load in router order evicting the
 * lowest priority). ENG_ENOMEM only. */
int met_curve_sample(met_lrc_ws *ws, met_policy p, int32_t lookahead, const int32_t *ids,
                     int64_t T, int32_t k, int64_t *hits, eng_err *err);

/* Several curves of one sample: hits + i*E for curve i (policy pols[i],
 * lookahead looks[i]), each exactly as met_curve_sample gives it. Faster
 * than one call per curve where the kernels can run curves side by side
 * (E <= 64 on AVX-512 VBMI2 CPUs). */
int met_curves_sample(met_lrc_ws *ws, int n, const met_policy *pols, const int32_t *looks,
                      const int32_t *ids, int64_t T, int32_t k, int64_t *hits, eng_err *err);

/* Window-count histogram of one sample for segment length seg_len:
 * hist[j] += #{(window, expert) : c(window, expert) = j}, j = 0..seg_len
 * (j = 0 counts all E experts absent from a window). A sample shorter than
 * seg_len has no windows and adds nothing. */
int met_srp_sample_hist(met_lrc_ws *ws, const int32_t *ids, int64_t T, int32_t k,
                        int32_t seg_len, int64_t *hist, eng_err *err);

/* SRP from a (possibly weighted) histogram hist[0..seg_len].
 * f1[m] for m = 0..seg_len (may be NULL). */
typedef struct met_srp {
    double best_f1;        /* max over m of F1(m)                      */
    int32_t threshold;     /* smallest maximising m                    */
    double act_r;          /* act / pred(0)  (= k/E for exact top-k)   */
    double best_m;         /* pred(threshold) / act                    */
} met_srp;
void met_srp_from_hist(const double *hist, int32_t seg_len, double *f1, met_srp *out);

/* ---- whole trace --------------------------------------------------------- */

typedef struct met_lrc_opts {
    const int32_t *seg_lens;  /* segment lengths (SRP windows, FSF lookahead) */
    int num_seg_lens;
    int bootstrap;            /* replicates B; 0 = no intervals                */
    uint64_t seed;            /* bootstrap draws                               */
    int64_t stride;           /* keep samples 0, stride, 2*stride, ... (>= 1)  */
    int threads;              /* worker threads (>= 1)                         */
    const int32_t *layers;    /* layers to analyse, NULL = all                 */
    int num_layers;           /* entries of layers                             */
    int model;                /* also the model-wide concatenation of them     */
    /* Progress (NULL: none), called on the calling thread between samples:
     * pass p of n_pass (one per layer, then the model-wide one), `done` of
     * `total` samples of that pass. The callback throttles its own output. */
    void (*progress)(void *user, int pass, int n_pass, int64_t done, int64_t total);
    void *progress_user;
} met_lrc_opts;

/* A curve over cache sizes c = 1..E; the CI arrays are NULL without
 * bootstrap. */
typedef struct met_lrc_curve {
    double *hit_rate;         /* [E] mean over samples of hits / (T*k)   */
    double *ci_lb, *ci_ub;    /* [E] or NULL                             */
} met_lrc_curve;

typedef struct met_lrc_srp {
    int32_t seg_len;
    met_srp srp;
    double *f1;               /* [seg_len + 1]                           */
    double ci_lb, ci_ub;      /* of best_f1; valid when bootstrapped     */
} met_lrc_srp;

/* Results for one layer, or the model-wide trace (E, k = totals L*E, L*k). */
typedef struct met_lrc_result {
    int32_t num_experts, top_k;
    int64_t num_samples;      /* samples analysed (after stride; empty ones dropped) */
    int num_seg;              /* segment lengths kept (not longer than every sample) */
    met_lrc_srp *srp;         /* [num_seg]                               */
    met_lrc_curve *sch;       /* [num_seg] FSF with lookahead = seg_len  */
    met_lrc_curve curve[3];   /* LRU, LFU, BELADY (index = met_policy)   */
} met_lrc_result;

typedef struct met_lrc_report {
    int num_layers;           /* layers analysed                          */
    int32_t *layer_index;     /* [num_layers] trace layer of each result  */
    int32_t layer_offset;     /* the trace's: model layer = offset + trace layer */
    met_lrc_result *layers;   /* [num_layers]                             */
    met_lrc_result *model;    /* NULL unless opts.model                   */
    int bootstrap;            /* B used                                   */
} met_lrc_report;

int met_lrc_compute(met_trace_reader *r, const met_lrc_opts *opts, met_lrc_report **out,
                    eng_err *err);
void met_lrc_report_free(met_lrc_report *rep);

/* The report as JSON (jansson), the shape `moebench metrics --json` prints:
 * {"num_layers": L, "layers": [R, ...], "model": R} with R = {"num_experts",
 * "top_k", "num_samples", "seg_lens", "cache_m", "srp": {"<len>": {...}},
 * "sch": {"<len>": {"hit_rate", ...}}, "lru", "lfu", "belady"}; CI keys only
 * when bootstrapped. docs/metrics.md describes every field. NULL when out
 * of memory. */
struct json_t;
struct json_t *met_lrc_report_json(const met_lrc_report *rep);

/* Basic-bootstrap interval from B replicate values (sorted in place):
 * lo = round(B * (1 - conf) / 2), hi = B - lo; ci_lb = 2 est - rep[hi],
 * ci_ub = 2 est - rep[lo]. rep[hi] is clamped to B - 1. */
void met_bootstrap_basic(double est, double *rep, int B, double conf, double *lb, double *ub);

#endif
