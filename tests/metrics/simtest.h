/*
 * simtest.h — test helpers for the policy and simulator tests: in-memory
 * traces (hand-written or random with tunable locality) and a brute-force,
 * literal implementation of the paper's cache procedure
 * (reference/lrc-metrics.md), independent of engine/policy*.c.
 */
#ifndef TST_SIMTEST_H
#define TST_SIMTEST_H

#include "metrics/trace.h"

#include <stdint.h>

/* A trace of S samples with T[s] tokens; ids [token][layer][k] copied from
 * `ids` (or zero). Memory is freed at test end (tst_alloc). */
met_trace *st_trace(int32_t L, int32_t E, int32_t k, int64_t S, const int64_t *T,
                    const uint16_t *ids);

/* Random trace: each token's k distinct experts per layer; with probability
 * `stick` an expert repeats the previous token's choice at that rank, else
 * it is drawn from a Zipf-like skew (skew 0 = uniform). */
met_trace *st_random_trace(uint64_t seed, int32_t L, int32_t E, int32_t k, int64_t S,
                           int64_t T, double stick, double skew);

enum { ST_LRU, ST_LFU, ST_BELADY, ST_FSF };

/* The paper's procedure on one flat access sequence: tokens of kt accesses
 * (seq[t * kt + j]), n_keys keys, cache size c, warm start and token look-up
 * (token_lookup = 0: look up each access just before loading it). Returns
 * the hits. Literal O(N * c * N) priorities; small inputs only. */
int64_t st_brute(const uint32_t *seq, int64_t T, int32_t kt, uint32_t n_keys, int64_t c,
                 int policy, int lookahead, int warm, int token_lookup);

/* Flat sequence of sample s: one layer (layer >= 0, keys = expert ids) or
 * the model-wide concatenation (layer = -1, keys = l * E + e). Returns the
 * token count; *kt gets the accesses per token. tst_alloc'd. */
int64_t st_sequence(const met_trace *t, int64_t s, int32_t layer, uint32_t **seq, int32_t *kt);

#endif
