/*
 * rng.h — the seeded generator of the metrics module (bootstrap draws,
 * synthetic traces): xoshiro256** (Blackman & Vigna) seeded by splitmix64.
 * Ours rather than rand()/random(): the same seed gives the same numbers on
 * every platform and libc. Internal header; a met_rng belongs to one thread.
 */
#ifndef MET_RNG_H
#define MET_RNG_H

#include <stdint.h>

typedef struct met_rng { uint64_t s[4]; } met_rng;

static inline uint64_t met_splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static inline void met_rng_seed(met_rng *g, uint64_t seed)
{
    for (int i = 0; i < 4; i++)
        g->s[i] = met_splitmix64(&seed);
}

static inline uint64_t met_rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static inline uint64_t met_rng_next(met_rng *g)
{
    uint64_t *s = g->s, r = met_rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0], s[3] ^= s[1], s[1] ^= s[2], s[0] ^= s[3], s[2] ^= t;
    s[3] = met_rotl(s[3], 45);
    return r;
}

/* Uniform in [0, n), n >= 1, without modulo bias (Lemire 2019). */
static inline uint64_t met_rng_below(met_rng *g, uint64_t n)
{
    for (;;) {
        __uint128_t m = (__uint128_t)met_rng_next(g) * n;
        uint64_t lo = (uint64_t)m;
        if (lo >= n || lo >= (-n) % n)
            return (uint64_t)(m >> 64);
    }
}

/* Uniform double in [0, 1). */
static inline double met_rng_unit(met_rng *g) { return (met_rng_next(g) >> 11) * 0x1.0p-53; }

#endif
