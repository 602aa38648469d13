/*
 * sample.c — token sampling (see sample.h).
 *
 * The candidate list is sorted only when a filter needs an order (top-k or
 * top-p); a plain temperature draw walks the vocabulary in id order.
 */
#include "engine/sample.h"

#include <math.h>
#include <stdlib.h>

struct eng_sampler {
    eng_sampler_opts o;
    int64_t n_vocab;
    uint64_t s[4];          /* xoshiro256** state */
    int32_t *idx;           /* [n_vocab] candidate ids */
    double *prob;           /* [n_vocab] probabilities, by candidate slot */
    const float *cmp_logits;/* for the qsort comparator (set per call) */
};

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static inline uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static uint64_t xoshiro_next(uint64_t s[4])
{
    uint64_t r = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return r;
}

void eng_sampler_seed(eng_sampler *s, uint64_t seed)
{
    for (int i = 0; i < 4; i++)
        s->s[i] = splitmix64(&seed);
}

double eng_sampler_uniform(eng_sampler *s)
{
    return (double)(xoshiro_next(s->s) >> 11) * 0x1.0p-53;
}

int eng_sampler_open(eng_sampler **out, const eng_sampler_opts *opts, int64_t n_vocab,
                     eng_err *err)
{
    *out = NULL;
    if (n_vocab <= 0 || n_vocab > INT32_MAX)
        return eng_err_set(err, ENG_EINVAL, "sampler: vocabulary size %lld out of range",
                           (long long)n_vocab);
    if (!(opts->top_p > 0) || isnan(opts->temp))
        return eng_err_set(err, ENG_EINVAL, "sampler: top-p %g must be in (0, 1]", opts->top_p);
    eng_sampler *s = calloc(1, sizeof *s);
    if (!s)
        return eng_err_set(err, ENG_ENOMEM, "sampler: out of memory");
    s->o = *opts;
    s->n_vocab = n_vocab;
    s->idx = malloc((size_t)n_vocab * sizeof *s->idx);
    s->prob = malloc((size_t)n_vocab * sizeof *s->prob);
    if (!s->idx || !s->prob) {
        eng_sampler_free(s);
        return eng_err_set(err, ENG_ENOMEM, "sampler: out of memory");
    }
    eng_sampler_seed(s, opts->seed);
    *out = s;
    return ENG_OK;
}

void eng_sampler_free(eng_sampler *s)
{
    if (!s)
        return;
    free(s->idx);
    free(s->prob);
    free(s);
}

int32_t eng_argmax(const float *x, int64_t n)
{
    int64_t best = 0;
    for (int64_t i = 1; i < n; i++)
        if (x[i] > x[best])
            best = i;
    return (int32_t)best;
}

/* qsort_r comparator: descending logit, then ascending id. */
static int cmp_cand(const void *a, const void *b, void *arg)
{
    const float *l = arg;
    int32_t ia = *(const int32_t *)a, ib = *(const int32_t *)b;
    if (l[ia] != l[ib])
        return l[ia] > l[ib] ? -1 : 1;
    return (ia > ib) - (ia < ib);
}

/* Fills idx/prob with the candidates in order and returns their count;
 * prob holds softmax(logits/temp) over the whole vocabulary. */
static int64_t candidates(eng_sampler *s, const float *logits)
{
    int64_t n = s->n_vocab;
    for (int64_t i = 0; i < n; i++)
        s->idx[i] = (int32_t)i;
    int sorted = (s->o.top_k > 0 && s->o.top_k < n) || s->o.top_p < 1.0;
    if (sorted)
        qsort_r(s->idx, (size_t)n, sizeof *s->idx, cmp_cand, (void *)logits);
    float mx = logits[eng_argmax(logits, n)];
    double sum = 0;
    for (int64_t i = 0; i < n; i++) {
        s->prob[i] = exp(((double)logits[s->idx[i]] - mx) / s->o.temp);
        sum += s->prob[i];
    }
    for (int64_t i = 0; i < n; i++)
        s->prob[i] /= sum;
    if (s->o.top_k > 0 && s->o.top_k < n)
        n = s->o.top_k;
    if (s->o.top_p < 1.0) {
        double cum = 0;
        int64_t keep = 0;
        while (keep < n && cum < s->o.top_p)
            cum += s->prob[keep++];
        n = keep > 0 ? keep : 1;
    }
    return n;
}

int32_t eng_sampler_sample(eng_sampler *s, const float *logits)
{
    if (!(s->o.temp > 0))
        return eng_argmax(logits, s->n_vocab);
    int64_t n = candidates(s, logits);
    double mass = 0;
    for (int64_t i = 0; i < n; i++)
        mass += s->prob[i];
    double u = eng_sampler_uniform(s) * mass, cum = 0;
    for (int64_t i = 0; i < n; i++) {
        cum += s->prob[i];
        if (u < cum)
            return s->idx[i];
    }
    return s->idx[n - 1];
}
