/*
 * simtest.c — see simtest.h. The brute force follows the reference text
 * word by word: priorities are recomputed from scratch at every eviction by
 * scanning the sequence, nothing is incremental.
 */
#include "tests/metrics/simtest.h"

#include "tests/test.h"

#include <math.h>

met_trace *st_trace(int32_t L, int32_t E, int32_t k, int64_t S, const int64_t *T,
                    const uint16_t *ids)
{
    met_trace *t = tst_alloc(sizeof *t);
    int64_t n = 0;
    t->sample_start = tst_alloc((size_t)(S + 1) * sizeof *t->sample_start);
    for (int64_t s = 0; s < S; s++) {
        t->sample_start[s] = n;
        n += T[s];
    }
    t->sample_start[S] = n;
    t->info = (met_trace_info){.num_layers = L, .num_experts = E, .top_k = k,
                               .num_samples = S, .num_tokens = n};
    size_t nid = (size_t)n * L * k;
    t->ids = tst_alloc((nid ? nid : 1) * sizeof *t->ids);
    if (ids)
        memcpy(t->ids, ids, nid * sizeof *t->ids);
    return t;
}

static uint64_t rng(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static double unif(uint64_t *s) { return (double)(rng(s) >> 11) / 9007199254740992.0; }

static uint16_t draw(uint64_t *s, int32_t E, double skew)
{
    double u = unif(s);
    int32_t e = (int32_t)(E * pow(u, 1.0 + skew));
    return (uint16_t)(e < E ? e : E - 1);
}

met_trace *st_random_trace(uint64_t seed, int32_t L, int32_t E, int32_t k, int64_t S,
                           int64_t T, double stick, double skew)
{
    int64_t *Ts = tst_alloc((size_t)S * sizeof *Ts);
    for (int64_t s = 0; s < S; s++)
        Ts[s] = T;
    met_trace *t = st_trace(L, E, k, S, Ts, NULL);
    uint64_t st = seed;
    for (int64_t tok = 0; tok < t->info.num_tokens; tok++)
        for (int32_t l = 0; l < L; l++) {
            uint16_t *row = &t->ids[(tok * L + l) * k];
            int first = tok == 0;
            for (int64_t s = 0; s < S; s++)
                first |= t->sample_start[s] == tok;
            for (int32_t r = 0; r < k; r++) {
                uint16_t e;
                int dup;
                int tries = 0;
                do {
                    if (!first && tries == 0 && unif(&st) < stick)
                        e = t->ids[((tok - 1) * L + l) * k + r];
                    else
                        e = tries > 50 ? (uint16_t)(rng(&st) % (uint64_t)E) : draw(&st, E, skew);
                    dup = 0;
                    for (int32_t q = 0; q < r; q++)
                        dup |= row[q] == e;
                    tries++;
                } while (dup);
                row[r] = e;
            }
        }
    return t;
}

int64_t st_sequence(const met_trace *t, int64_t s, int32_t layer, uint32_t **seq, int32_t *kt)
{
    int32_t L = t->info.num_layers, E = t->info.num_experts, k = t->info.top_k;
    int64_t t0 = t->sample_start[s], T = t->sample_start[s + 1] - t0;
    *kt = layer >= 0 ? k : L * k;
    *seq = tst_alloc((size_t)(T * *kt + 1) * sizeof **seq);
    int64_t n = 0;
    for (int64_t tok = t0; tok < t0 + T; tok++)
        for (int32_t l = 0; l < L; l++) {
            if (layer >= 0 && l != layer)
                continue;
            for (int32_t r = 0; r < k; r++) {
                uint16_t e = t->ids[(tok * L + l) * k + r];
                (*seq)[n++] = layer >= 0 ? e : (uint32_t)(l * E + e);
            }
        }
    return T;
}

/* Priority of cached key x at access position p of token t (lower = evicted
 * first), as (a, b); for belady the larger next use is evicted, so a = -next. */
static void priority(const uint32_t *seq, int64_t N, int64_t T, int32_t kt, int policy,
                     int L, uint32_t x, int64_t p, int64_t t, int64_t *a, int64_t *b)
{
    int64_t last = -1, count = 0;
    for (int64_t q = 0; q <= p; q++)
        if (seq[q] == x) {
            last = q;
            count++;
        }
    *b = last;
    if (policy == ST_LRU) {
        *a = last;
        *b = 0;
    } else if (policy == ST_LFU) {
        *a = count;
    } else if (policy == ST_BELADY) {
        int64_t next = N + x;
        for (int64_t q = p + 1; q < N; q++)
            if (seq[q] == x) {
                next = q;
                break;
            }
        *a = -next;
        *b = 0;
    } else {
        int64_t end_tok = t + L < T ? t + L : T, n = 0;
        for (int64_t q = p + 1; q < end_tok * kt; q++)
            n += seq[q] == x;
        *a = n;
    }
}

int64_t st_brute(const uint32_t *seq, int64_t T, int32_t kt, uint32_t n_keys, int64_t c,
                 int policy, int lookahead, int warm, int token_lookup)
{
    int64_t N = T * kt, hits = 0, ncached = 0, ndistinct = 0;
    uint8_t *cached = tst_alloc(n_keys), *seen = tst_alloc(n_keys), *hit = tst_alloc(kt);
    for (int64_t t = 0; t < T; t++) {
        for (int32_t j = 0; j < kt && token_lookup; j++) {    /* step 1: look-up */
            uint32_t x = seq[t * kt + j];
            hit[j] = cached[x] || (warm && !seen[x] && ndistinct < c);
            ndistinct += !seen[x];
            seen[x] = 1;
        }
        for (int32_t j = 0; j < kt; j++) {                    /* step 2: load */
            int64_t p = t * kt + j;
            uint32_t x = seq[p];
            if (!token_lookup) {
                hit[j] = cached[x] || (warm && !seen[x] && ndistinct < c);
                ndistinct += !seen[x];
                seen[x] = 1;
            }
            hits += hit[j];
            if (cached[x])
                continue;
            if (ncached == c) {
                int64_t ba = 0, bb = 0, victim = -1;
                for (uint32_t y = 0; y < n_keys; y++) {
                    if (!cached[y])
                        continue;
                    int64_t a, b;
                    priority(seq, N, T, kt, policy, lookahead, y, p, t, &a, &b);
                    if (victim < 0 || a < ba || (a == ba && b < bb)) {
                        victim = y;
                        ba = a;
                        bb = b;
                    }
                }
                cached[victim] = 0;
                ncached--;
            }
            cached[x] = 1;
            ncached++;
        }
    }
    return hits;
}
