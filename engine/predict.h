/*
 * predict.h — routing predictors learnt from a profile trace, for
 * prediction-based prefetch (ExpertFlow, EdgeMoE; docs/policies.md
 * "Prediction-based prefetch"). The tiered store (store_tiered.h,
 * --prefetch predict:FILE) and the replay simulator (metrics/simulate.h)
 * ask the same predictor the same question, so a replay predicts what the
 * engine would.
 *
 * A predictor is three tables of counts over the profile's tokens (within
 * each sample; L MoE layers, E experts, k experts per token and layer):
 *   freq[l][j]       tokens that chose j at layer l
 *   trans[l][i][j]   tokens that chose i at layer l and j at layer l + 1;
 *                    for l = L - 1: i at layer L - 1 of a token and j at
 *                    layer 0 of the next token of the same sample
 *   hist[l][i][j]    i at layer l of a token and j at layer l of the next
 *                    token of the same sample
 * and a question: which n experts will unit (layer nl) use, given the
 * experts `cur` of the unit before it (layer nl - 1 of the same token, or
 * the last layer of the previous token when nl = 0) and `prev` (layer nl
 * of the previous token)?
 *   TRANSITION (ExpertFlow-style path): score[j] = sum over i in cur of
 *              trans[nl - 1 (or L - 1)][i][j]
 *   HISTORY    (per-token history):     score[j] = sum over i in prev of
 *              hist[nl][i][j]
 *   FREQUENCY  (EdgeMoE-style preload of the most probable experts):
 *              score[j] = freq[nl][j]
 * The n experts of highest score, ties to the higher freq[nl][j], then to
 * the lower id. An empty context (no cur / prev) leaves FREQUENCY's order.
 *
 * File (docs/policies.md has the layout): "MOEPRED1", u32 version 1, u32 L,
 * E, k, i32 layer_offset, u64 profile tokens, then freq, trans, hist as
 * little-endian u64 counts. A reader checks every size against the file
 * before allocating (ENG_EFORMAT naming the file and field).
 *
 * Thread-safety: a predictor is read-only after building/loading and may be
 * shared by threads.
 */
#ifndef ENG_PREDICT_H
#define ENG_PREDICT_H

#include "engine/err.h"

#include <stdint.h>

typedef enum eng_predict_kind {
    ENG_PREDICT_TRANSITION = 0,
    ENG_PREDICT_HISTORY,
    ENG_PREDICT_FREQUENCY,
} eng_predict_kind;

/* "transition", "history", "frequency" <-> enum; parse gives -1 when unknown. */
const char *eng_predict_kind_name(eng_predict_kind k);
int eng_predict_kind_parse(const char *name);

/* Limits the builder and the reader enforce (tables are L * E * E). */
#define ENG_PREDICT_MAX_LAYERS  4096
#define ENG_PREDICT_MAX_EXPERTS 1024

typedef struct eng_predictor eng_predictor;

/* An empty predictor (all counts 0). ENG_EINVAL outside the limits. */
int eng_predictor_new(eng_predictor **out, int n_layer, int n_expert, int top_k,
                      int layer_offset, eng_err *err);
void eng_predictor_free(eng_predictor *p);

/* Counts one sample: ids[(t * L + l) * k + r], T tokens, router order.
 * ENG_EINVAL for an id out of range (the table stays as it was). */
int eng_predictor_add_sample(eng_predictor *p, const uint16_t *ids, int64_t T, eng_err *err);

int eng_predictor_save(const eng_predictor *p, const char *path, eng_err *err);
int eng_predictor_load(eng_predictor **out, const char *path, eng_err *err);

typedef struct eng_predictor_info {
    int n_layer, n_expert, top_k, layer_offset;
    uint64_t tokens;          /* profile tokens counted                         */
} eng_predictor_info;
eng_predictor_info eng_predictor_get_info(const eng_predictor *p);

/* The counts (for tests and reports): freq[l][j], trans[l][i][j], hist[l][i][j]. */
uint64_t eng_predictor_freq(const eng_predictor *p, int l, int j);
uint64_t eng_predictor_trans(const eng_predictor *p, int l, int i, int j);
uint64_t eng_predictor_hist(const eng_predictor *p, int l, int i, int j);

/* The n (1..E) experts predicted for layer nl, best first, into out[n].
 * cur[n_cur]: the experts of the unit before (see above), prev[n_prev]:
 * layer nl's experts at the previous token; either may be empty. Ids out
 * of range in cur/prev are ignored. scratch: [E] doubles. Returns n. */
int eng_predictor_predict(const eng_predictor *p, eng_predict_kind kind, int nl,
                          const int32_t *cur, int n_cur, const int32_t *prev, int n_prev,
                          int n, int32_t *out, double *scratch);

#endif
