/*
 * sample.h — logits -> next token: greedy, temperature, top-k, top-p, with a
 * seeded PRNG of our own (xoshiro256**, seeded by splitmix64) so that a seed
 * gives the same tokens on every machine and libc.
 *
 * Order of the steps (the Hugging Face transformers order):
 *   temperature <= 0        -> greedy: argmax, lowest id among equal logits;
 *   otherwise  p = softmax(logits / temp); keep the top_k most likely
 *   (top_k <= 0: all); then keep the smallest prefix, by descending p, whose
 *   mass reaches top_p (top_p >= 1: all; always at least one token);
 *   renormalise and draw. Candidates are ordered by descending logit, ties by
 *   ascending id, so the draw is reproducible.
 *
 * Thread-safety: an eng_sampler is owned by one thread.
 */
#ifndef ENG_SAMPLE_H
#define ENG_SAMPLE_H

#include "engine/err.h"

#include <stdint.h>

typedef struct eng_sampler_opts {
    double temp;     /* <= 0: greedy                                  */
    int top_k;       /* <= 0: no limit                                */
    double top_p;    /* in (0, 1]; >= 1: no limit                     */
    uint64_t seed;
} eng_sampler_opts;

typedef struct eng_sampler eng_sampler;

int eng_sampler_open(eng_sampler **out, const eng_sampler_opts *opts, int64_t n_vocab,
                     eng_err *err);
void eng_sampler_free(eng_sampler *s);
/* Re-seeds the PRNG (same seed -> same sequence of draws). */
void eng_sampler_seed(eng_sampler *s, uint64_t seed);
/* Picks a token from logits[n_vocab] (n_vocab as given to open). */
int32_t eng_sampler_sample(eng_sampler *s, const float *logits);

/* Index of the largest value, lowest index among equal values. */
int32_t eng_argmax(const float *x, int64_t n);

/* Uniform double in [0, 1) from the sampler's PRNG (exposed for tests). */
double eng_sampler_uniform(eng_sampler *s);

#endif
