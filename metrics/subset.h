/*
 * subset.h — task-adaptive expert subsets (PreMoe, Pei et al. 2025,
 * arXiv 2505.17639): from a profile trace of a task's prompts, a score per
 * (layer, expert) and the experts each layer keeps under a budget; the
 * engine then routes only among the kept experts
 * (eng_session_opts.expert_keep). docs/policies.md "Task-adaptive expert
 * subsets" says what the paper does and where this differs.
 *
 * Score (PreMoe's task-conditioned expected selection score, TCESS, from
 * what a trace records): for expert e of layer l,
 *     score[l][e] = (1 / T) * sum over the T profile tokens of w(t, l, e)
 * where w is the gate weight the token gave e at layer l when e was among
 * its top-k and w >= min_weight (PreMoe's high-confidence threshold r),
 * else 0. A trace without weights counts each selection as 1 (the score
 * is then the selection frequency). Each layer keeps its `keep` experts of
 * highest score (ties: the lower id), keep >= top-k so a token can always
 * route to k experts.
 *
 * File: JSON, {"format": "moebench-expert-subset", "version": 1,
 * "num_layers", "num_experts", "top_k", "layer_offset", "profile_tokens",
 * "min_weight", "weighted", "layers": [{"layer": l, "keep": [ids, best
 * first], "score": [E numbers]}]}. The reader checks every field (ids in
 * range, no repeats, at least top-k kept per layer) and names the file and
 * the field in its message (ENG_EFORMAT).
 *
 * Thread-safety: plain data.
 */
#ifndef MET_SUBSET_H
#define MET_SUBSET_H

#include "engine/err.h"
#include "metrics/trace.h"

#include <stdint.h>

typedef struct met_subset {
    int32_t num_layers, num_experts, top_k, layer_offset;
    int64_t profile_tokens;
    double min_weight;
    int weighted;             /* 1: scores from gate weights; 0: from counts  */
    int32_t *n_keep;          /* [L] experts kept per layer                    */
    int32_t *keep;            /* [L][E]: layer l's kept ids, best first, in
                                 keep[l * E .. l * E + n_keep[l])              */
    double *score;            /* [L][E]                                        */
} met_subset;

typedef struct met_subset_opts {
    int32_t keep;             /* experts per layer (top_k .. E); 0: by bytes   */
    double keep_bytes;        /* budget for all layers' routed experts: each
                                 layer keeps floor(keep_bytes / L / its
                                 expert bytes), at least top_k                 */
    const double *expert_bytes; /* [L] bytes of one expert of each layer
                                 (needed with keep_bytes)                      */
    double min_weight;        /* >= 0: selections with a lower weight do not
                                 count                                         */
} met_subset_opts;

/* The subset of a profile trace. ENG_EINVAL for a budget below top-k
 * experts in a layer (names it) or above E, or a bad option. */
int met_subset_build(const met_trace *t, const met_subset_opts *o, met_subset **out,
                     eng_err *err);
void met_subset_free(met_subset *s);

int met_subset_save(const met_subset *s, const char *path, eng_err *err);
int met_subset_load(met_subset **out, const char *path, eng_err *err);

/* The mask [L * E]: 1 for a kept expert. NULL when out of memory. */
uint8_t *met_subset_mask(const met_subset *s);

#endif
