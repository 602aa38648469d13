/*
 * lrc_impl.h — internals of the one-sample kernels that the tests reach:
 * the choice between exact ways of computing the same curve. Every choice
 * gives the same hits; the tests force each one and compare them with a
 * brute-force simulation.
 */
#ifndef MET_LRC_IMPL_H
#define MET_LRC_IMPL_H

#include "engine/formats.h"
#include "metrics/lrc.h"

/* LRU: the stack distance by counting last-use times over all experts (a
 * few vector compares when E is small) or by a Fenwick tree over access
 * positions (any E). AUTO: counting for E <= MET_LRC_LRU_COUNT_MAX_E. */
#define MET_LRC_LRU_COUNT_MAX_E 256
typedef enum met_lrc_lru {
    MET_LRC_LRU_AUTO = 0,
    MET_LRC_LRU_COUNT,
    MET_LRC_LRU_FENWICK
} met_lrc_lru;

/* LFU, Belady, FSF: the Mattson walk finds its records by a branchy scan,
 * by branch-free masks after the first record, 16 positions a step with
 * AVX-512 (int32 priorities, lrc_avx512.c) or 8 a step with AVX2
 * (lrc_avx2.c). AUTO: AVX-512 where the CPU has it and the priorities fit,
 * else AVX2 where it has that and E >= MET_LRC_WIDE2_MIN_E, else masks for
 * E <= 256 and FSF with lookahead <= 16, else the scan. PORTABLE: AUTO as on a CPU with neither
 * (no vector walk). AVX512 where it cannot run is AUTO; AVX2 where it
 * cannot run is AUTO without AVX-512. */
/* Measured (docs/performance.md) from E = 64 (one layer) up, where the
 * AVX2 walk wins or ties; smaller E keeps the portable walk (not measured). */
#define MET_LRC_WIDE2_MIN_E 64
typedef enum met_lrc_walk {
    MET_LRC_WALK_AUTO = 0,
    MET_LRC_WALK_SCAN,
    MET_LRC_WALK_MASK,
    MET_LRC_WALK_AVX512,
    MET_LRC_WALK_PORTABLE,
    MET_LRC_WALK_AVX2
} met_lrc_walk;

/* LFU, Belady, FSF with E <= 64 on a CPU with AVX-512 BW/VBMI/VBMI2/BITALG:
 * the whole stack in registers (lrc_avx512.c), no walk. AUTO uses it where
 * it can; OFF forces the walk. */
typedef enum met_lrc_small { MET_LRC_SMALL_AUTO = 0, MET_LRC_SMALL_OFF } met_lrc_small;

/* Forces the methods of later met_curve_sample calls on ws. COUNT needs
 * E <= MET_LRC_LRU_COUNT_MAX_E and falls back to the Fenwick tree above. */
void met_lrc_ws_force(met_lrc_ws *ws, met_lrc_lru lru, met_lrc_walk walk, met_lrc_small small);

/* Priorities are non-negative int64: (count, last position) packed as
 * count * 2^40 + position. */
#define MET_LRC_KEY(count, p) ((int64_t)(((uint64_t)(count) << 40) | (uint64_t)(p)))

/* ---- lrc_avx512.c ---- */
#define MET_LRC_SMALL_MAX_E 64
#define MET_LRC_SMALL_MAX_CURVES 8

/* Whether met_lrc_small_sample may run: the resolved path s
 * (eng_simd_default, which reads MOEBENCH_SIMD) is AVX-512 and this CPU has
 * the extra features (VBMI, VBMI2, BITALG) it uses. */
int met_lrc_small_available(eng_simd s);

typedef struct met_lrc_small_args {
    int ncurves;                                 /* 1..MET_LRC_SMALL_MAX_CURVES */
    met_policy pols[MET_LRC_SMALL_MAX_CURVES];   /* LFU, BELADY or FSF          */
    int32_t looks[MET_LRC_SMALL_MAX_CURVES];     /* FSF lookahead               */
    int64_t *dist[MET_LRC_SMALL_MAX_CURVES];     /* [E + 2] zeroed: output      */
    int32_t *gt[MET_LRC_SMALL_MAX_CURVES];       /* [T + 2] LFU/FSF scratch     */
    const int32_t *ids;                          /* [T][k], ids < 64            */
    int64_t T;
    int32_t k;
    const int64_t *next;      /* [T*k] Belady: next access position (N + id: never) */
} met_lrc_small_args;

/* The curves' distance histograms of one sample, as lrc.c's walk computes
 * them. 0 (nothing done) when the priorities do not fit in int32:
 * (T + 2) * T * k + 128 >= 2^31. */
int met_lrc_small_sample(const met_lrc_small_args *a);

/* Whether met_lrc_wide_sample may run: s is AVX-512 (AVX-512 F used). */
int met_lrc_wide_available(eng_simd s);

typedef struct met_lrc_wide_args {
    met_policy pol;           /* LFU, BELADY or FSF                          */
    int32_t look, k, E;
    const int32_t *ids;       /* [T][k]                                      */
    int64_t T;
    const int64_t *next;      /* [T*k] Belady: next access position          */
    int64_t *dist;            /* [E + 2] zeroed: output                      */
    int32_t *st, *sk;         /* [E] scratch: stack, priorities in stack order */
    int32_t *pos, *key, *cnt, *since; /* [E] scratch                         */
} met_lrc_wide_args;

/* e's priority, and its copy in stack order when e is on the stack. */
static inline void met_lrc_wide_set_key(const met_lrc_wide_args *a, int32_t e, int32_t v)
{
    a->key[e] = v;
    if (a->pos[e] >= 0)
        a->sk[a->pos[e]] = v;
}

/* The per-sample loop both wide walks share (lrc_avx512.c, lrc_avx2.c):
 * priorities by policy, the whole-token look-up into a->dist, then each
 * access through `access` (moves x to the top of the stack; *n = stack
 * size). Always inlined into each walk's own target-attributed entry
 * point, where `access` is a constant and becomes a direct call. 0 when
 * the priorities do not fit in int32. */
static inline __attribute__((always_inline)) int
met_lrc_wide_drive(const met_lrc_wide_args *a, const void *ctx,
                   void (*access)(const void *ctx, int32_t x, int32_t *n))
{
    int32_t k = a->k, n = 0, look = a->look;
    int64_t T = a->T;
    if ((T + 2) * T * k + 2 * (int64_t)a->E >= INT32_MAX)
        return 0;
    int32_t N = (int32_t)(T * k);
    met_policy pol = a->pol;
    for (int32_t e = 0; e < a->E; e++)
        a->pos[e] = -1, a->key[e] = 0, a->cnt[e] = 0, a->since[e] = 0;
    for (int64_t t = 0; pol == MET_POLICY_FSF && t < T && t < look; t++)
        for (int32_t r = 0; r < k; r++) {
            int32_t e = a->ids[t * k + r];
            met_lrc_wide_set_key(a, e, ++a->cnt[e] * N + a->since[e]);
        }
    for (int64_t t = 0; t < T; t++) {
        const int32_t *tok = a->ids + t * k;
        for (int32_t r = 0; pol == MET_POLICY_FSF && t > 0 && t + look - 1 < T && r < k; r++) {
            int32_t e = a->ids[(t + look - 1) * k + r];
            met_lrc_wide_set_key(a, e, ++a->cnt[e] * N + a->since[e]);
        }
        for (int32_t r = 0, fresh = 0; r < k; r++) { /* look-up before the token */
            int32_t d = a->pos[tok[r]];
            a->dist[d >= 0 ? d + 1 : n + ++fresh]++;
        }
        for (int32_t r = 0; r < k; r++) {
            int32_t x = tok[r], p = (int32_t)(t * k + r);
            access(ctx, x, &n);
            a->since[x] = p;
            if (pol == MET_POLICY_LFU)
                met_lrc_wide_set_key(a, x, ++a->cnt[x] * N + p);
            else if (pol == MET_POLICY_FSF)
                met_lrc_wide_set_key(a, x, --a->cnt[x] * N + p);
            else
                met_lrc_wide_set_key(a, x, (int32_t)(2 * (int64_t)N + a->E - a->next[p]));
        }
    }
    return 1;
}

/* One curve's distance histogram with lrc.c's walk on int32 priorities, 16
 * stack positions a step. 0 (nothing done) when the priorities do not fit:
 * (T + 2) * T * k + 2E >= 2^31. */
int met_lrc_wide_sample(const met_lrc_wide_args *a);

/* ---- lrc_avx2.c ---- */
/* Lanes of padding past E that met_lrc_wide2_sample's st and sk need (it
 * loads and stores whole blocks of 8). */
#define MET_LRC_WIDE_PAD 8

/* Whether met_lrc_wide2_sample may run: s is AVX2 or better. */
int met_lrc_wide2_available(eng_simd s);

/* met_lrc_wide_sample with AVX2, 8 stack positions a step; st and sk hold
 * E + MET_LRC_WIDE_PAD entries. 0 (nothing done) in the same case. */
int met_lrc_wide2_sample(const met_lrc_wide_args *a);

#endif
