/*
 * synth.h — synthetic routing traces with tunable locality, and summary
 * statistics of a trace (expert popularity, reuse distances).
 *
 * Models (docs/metrics.md states them with formulas); every layer has its
 * own expert popularity: p(e) ∝ 1 / (rank(e) + 1)^zipf with a random rank
 * permutation per layer (zipf = 0: uniform). A token's k experts are drawn
 * without replacement, router order = draw order.
 *   uniform   zipf forced to 0, tokens independent
 *   zipf      tokens independent, popularity skewed by --zipf (default 1)
 *   sticky    each of the previous token's experts is kept with probability
 *             `stickiness` (kept ones first, in their old order), the rest
 *             drawn afresh from the popularity
 *   segments  the sample is cut into segments of `segment_len` tokens; each
 *             segment draws a domain of 2k experts from the popularity; each
 *             slot of a token comes from the domain with probability
 *             `stickiness`, else from the popularity
 * Draws use xoshiro256** seeded by splitmix64(seed): the same options give
 * the same trace on every machine.
 *
 * Thread-safety: no shared state; calls are independent.
 */
#ifndef MET_SYNTH_H
#define MET_SYNTH_H

#include "engine/err.h"
#include "metrics/trace.h"

#include <stdint.h>

typedef enum met_synth_model {
    MET_SYNTH_UNIFORM = 0,
    MET_SYNTH_ZIPF,
    MET_SYNTH_STICKY,
    MET_SYNTH_SEGMENTS,
} met_synth_model;

/* "uniform", "zipf", "sticky", "segments" <-> enum (-1: unknown). */
const char *met_synth_model_name(met_synth_model m);
int met_synth_model_parse(const char *name);

typedef struct met_synth_opts {
    int32_t num_layers, num_experts, top_k;
    int64_t num_samples, tokens;  /* every sample has `tokens` tokens      */
    met_synth_model model;
    double zipf;                  /* popularity exponent >= 0              */
    double stickiness;            /* 0..1 (sticky, segments)               */
    int32_t segment_len;          /* >= 1 (segments)                       */
    uint64_t seed;
} met_synth_opts;

/* Writes a synthetic trace to path in format fmt (AUTO: by extension).
 * .moetrace is streamed sample by sample (memory: one sample); other
 * formats are built in memory first. */
int met_synth_write(const char *path, met_trace_format fmt, const met_synth_opts *o,
                    eng_err *err);
/* The same trace in memory. */
int met_synth_trace(met_trace **out, const met_synth_opts *o, eng_err *err);

/* ---- statistics ---------------------------------------------------------- */

#define MET_REUSE_BUCKETS 40      /* bucket b: distances [2^b, 2^(b+1))    */

typedef struct met_layer_stats {
    int64_t *counts;              /* [E] activations of each expert          */
    double entropy_bits;          /* of the activation shares                */
    double entropy_norm;          /* entropy_bits / log2(E) (0 when E = 1)   */
    double gini;                  /* of the counts: 0 even, -> 1 concentrated */
    int64_t first_use;            /* accesses with no earlier use in the sample */
    int64_t reuse[MET_REUSE_BUCKETS]; /* token distance to the previous use  */
} met_layer_stats;

/* Per-layer statistics, streaming layer by layer through the reader.
 * out[num_layers]; free with met_trace_stats_free. */
int met_trace_stats(met_trace_reader *r, met_layer_stats **out, eng_err *err);
void met_trace_stats_free(met_layer_stats *st, int32_t num_layers);

#endif
