/* lrc_util.h — helpers for the metrics tests: a seeded generator, random
 * and structured samples, random multi-layer traces. */
#ifndef TST_LRC_UTIL_H
#define TST_LRC_UTIL_H

#include "metrics/trace.h"

#include <stdint.h>

typedef struct lrc_rng { uint64_t s; } lrc_rng;
uint64_t lrc_next(lrc_rng *g);
uint64_t lrc_below(lrc_rng *g, uint64_t n);

/* ids[T][k], distinct within a token, < E. model: 0 uniform, 1 sticky
 * (most experts carried over), 2 exact repeats, 3 a few hot experts. */
void lrc_random_sample(lrc_rng *g, int32_t *ids, int64_t T, int32_t k, int32_t E, int model);

/* A random trace (uneven sample lengths in 1..maxT, or all -maxT when
 * maxT < 0, optional weights,
 * token ids and labels). */
met_trace *lrc_random_trace(lrc_rng *g, int32_t L, int32_t E, int32_t k, int64_t S, int64_t maxT,
                            uint32_t flags);

#endif
