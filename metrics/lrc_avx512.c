/*
 * lrc_avx512.c — LFU, Belady and FSF curves of at most 64 experts with the
 * whole Mattson stack in two 64-byte registers (AVX-512 BW + VBMI + VBMI2),
 * several curves of one sample at once. Same semantics and same hits as the
 * walk in lrc.c (the tests compare both with brute force); only called when
 * met_lrc_small_available() said yes.
 *
 * State of one curve: st[j] = the expert at stack position j, rk[j] = its
 * rank among the stack's experts by priority (0 = lowest); both 0xff past
 * the stack. Priorities are distinct inside the stack (they end in the last
 * access position, or are next-use positions), so ranks are a permutation.
 * The Mattson update of an access to x at depth d (lrc.c) becomes:
 *  - records = positions j in [1, d) whose rank is below every rank above:
 *    rk[j] == prefix-min(rk)[j] (shift+min steps, up to six);
 *  - the rotation (each record's expert moves to the next record's
 *    position, the top to the first, the last to d) = a compress of
 *    positions {0} + records and an expand into records + {d};
 *  - x goes on top; its rank moves from r_old (read from rk[d]) to r_new =
 *    the number of stack experts with a lower priority, and the ranks in
 *    between shift by one. LFU gets r_new in O(1) from counts of experts per
 *    access count; Belady and FSF count priorities (int32, four compares).
 * FSF also raises priorities inside the stack when a token enters the
 * lookahead window: a rank move in place.
 * x's depth is a byte compare of st with x.
 *
 * One update is a chain of dependent vector operations (~40 cycles), so
 * the curves of a sample run interleaved, access by access: their chains
 * are independent and overlap in the out-of-order core.
 */
#include "metrics/lrc_int.h"

#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#define T512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512vbmi,avx512vbmi2,bmi,bmi2,popcnt")))

int met_lrc_small_available(void)
{
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vbmi") && __builtin_cpu_supports("avx512vbmi2");
}

typedef struct curve {
    __m512i st, rk;           /* the stack and its ranks (bytes)                */
    __m512i key[4];           /* int32 priority of stack experts, INT32_MAX else */
    int32_t skey[64];         /* the same, scalar                               */
    met_policy pol;
    int32_t look, n;          /* FSF lookahead; stack size                      */
    int32_t cnt[64], since[64]; /* LFU/FSF access counts; last access           */
    int32_t *gt;              /* LFU: [T + 2] stack experts with count > c       */
    int64_t *dist;
} curve;

typedef struct shifts {
    __m512i idx[3];           /* lane j -> the last byte of 8-byte lane j/8 - 2^s */
    __mmask64 keep[3];        /* lanes j with j/8 >= 2^s                          */
} shifts;

/* Stack experts with a priority below v. */
static T512 inline int32_t count_below(const curve *c, int32_t v)
{
    __m512i b = _mm512_set1_epi32(v);
    uint64_t m = _mm512_cmplt_epi32_mask(c->key[0], b) |
                 (uint64_t)_mm512_cmplt_epi32_mask(c->key[1], b) << 16 |
                 (uint64_t)_mm512_cmplt_epi32_mask(c->key[2], b) << 32 |
                 (uint64_t)_mm512_cmplt_epi32_mask(c->key[3], b) << 48;
    return (int32_t)__builtin_popcountll(m);
}

static T512 inline void set_key(curve *c, int32_t x, int32_t v)
{
    c->skey[x] = v;
    c->key[x >> 4] = _mm512_mask_set1_epi32(c->key[x >> 4], (__mmask16)(1u << (x & 15)), v);
}

/* Ranks of the stack experts after one moves up from rank r_old to r_new
 * (its own lane is set by the caller). */
static T512 inline __m512i rank_up(__m512i rk, int32_t r_old, int32_t r_new)
{
    __mmask64 dn = _mm512_cmpgt_epu8_mask(rk, _mm512_set1_epi8((char)r_old)) &
                   _mm512_cmple_epu8_mask(rk, _mm512_set1_epi8((char)r_new));
    return _mm512_mask_sub_epi8(rk, dn, rk, _mm512_set1_epi8(1));
}

/* The same for a move in either direction. */
static T512 inline __m512i rank_move(__m512i rk, int32_t r_old, int32_t r_new)
{
    __m512i o = _mm512_set1_epi8((char)r_old), w = _mm512_set1_epi8((char)r_new);
    __mmask64 dn = _mm512_cmpgt_epu8_mask(rk, o) & _mm512_cmple_epu8_mask(rk, w);
    __mmask64 up = _mm512_cmpge_epu8_mask(rk, w) & _mm512_cmplt_epu8_mask(rk, o);
    rk = _mm512_mask_sub_epi8(rk, dn, rk, _mm512_set1_epi8(1));
    return _mm512_mask_add_epi8(rk, up, rk, _mm512_set1_epi8(1));
}

/* Lane mask of x's stack position (xb = x in every byte), 0 when x is not
 * in the stack. */
static T512 inline uint64_t where(__m512i st, __m512i xb)
{
    return _mm512_cmpeq_epi8_mask(st, xb);
}

/* Byte j & 63 of v. */
static T512 inline int32_t lane(__m512i v, int32_t j)
{
    __m512i b = _mm512_permutexvar_epi8(_mm512_set1_epi8((char)j), v);
    return _mm_cvtsi128_si32(_mm512_castsi512_si128(b)) & 0xff;
}

/* FSF: expert e (at the positions of lane mask m: one, or none when e is
 * not in the stack) gets the higher priority key. */
static T512 inline void rekey(curve *c, int32_t e, uint64_t m, int32_t key)
{
    if (!m) /* not in the stack (rare once the stack is full) */
        return;
    int32_t r_old = lane(c->rk, (int32_t)_tzcnt_u64(m));
    int32_t r_new = count_below(c, key) - 1; /* e's old, lower priority counted */
    set_key(c, e, key);
    c->rk = _mm512_mask_set1_epi8(rank_up(c->rk, r_old, r_new), m, (char)r_new);
}

/* Positions in [1, d) whose rank is below every rank above them: prefix
 * maxima of the complemented ranks (past the stack 0, neutral), within
 * each 8-byte lane by shifts; then each byte takes the maximum of the last
 * bytes of the 1, 2, 4 lanes before (which by then cover 1, 2, 4 lanes). */
static T512 inline __mmask64 records(const shifts *sh, __m512i rk, int32_t d)
{
    __m512i q = _mm512_ternarylogic_epi64(rk, rk, rk, 0x55), nq = q; /* ~rk */
    q = _mm512_max_epu8(q, _mm512_slli_epi64(q, 8));
    q = _mm512_max_epu8(q, _mm512_slli_epi64(q, 16));
    q = _mm512_max_epu8(q, _mm512_slli_epi64(q, 32));
    for (int i = 0; i < 3; i++)
        q = _mm512_max_epu8(q, _mm512_maskz_permutexvar_epi8(sh->keep[i], sh->idx[i], q));
    return _mm512_mask_cmpeq_epi8_mask(_bzhi_u64(~(uint64_t)1, (unsigned)d), nq, q);
}

/* The Mattson update for an access to x at position p (N accesses). The
 * rank move does not depend on the positions, so it runs beside the
 * prefix-min (the chain is rk -> prefix-min -> records -> rotation). */
static T512 inline void access(curve *c, const shifts *sh, int32_t x, __m512i xb, int32_t p,
                               int32_t N, const int64_t *next)
{
    uint64_t m = where(c->st, xb);
    int32_t isnew = m == 0, d = isnew ? c->n : (int32_t)_tzcnt_u64(m);
    int32_t r_old = isnew ? c->n : lane(c->rk, d), r_new, key;
    c->n += isnew;
    if (c->pol == MET_POLICY_LFU) { /* (count, p): above every count <= its own */
        int32_t n1 = c->cnt[x]++;
        c->gt[n1]++;
        r_new = c->n - c->gt[n1 + 1] - 1;
        key = (n1 + 1) * N + p;
    } else {
        key = c->pol == MET_POLICY_FSF ? --c->cnt[x] * N + p : (int32_t)(2 * N + 64 - next[p]);
        r_new = count_below(c, key) - (c->skey[x] < key); /* not x itself */
    }
    set_key(c, x, key);
    c->since[x] = p;
    __m512i rk = rank_move(c->rk, r_old, r_new);
    __mmask64 rec = records(sh, c->rk, d);
    __mmask64 from = rec | 1, to = rec | (uint64_t)1 << d;
    __m512i st = _mm512_mask_expand_epi8(c->st, to, _mm512_maskz_compress_epi8(from, c->st));
    rk = _mm512_mask_expand_epi8(rk, to, _mm512_maskz_compress_epi8(from, rk));
    c->st = _mm512_mask_mov_epi8(st, 1, xb);
    c->rk = _mm512_mask_set1_epi8(rk, 1, (char)r_new);
}

/* FSF: token tok enters the lookahead window. */
static T512 inline void fsf_enter(curve *c, const int32_t *tok, int32_t k, int32_t N)
{
    for (int32_t r = 0; r < k; r++) {
        int32_t e = tok[r];
        rekey(c, e, where(c->st, _mm512_set1_epi8((char)e)), ++c->cnt[e] * N + c->since[e]);
    }
}

static T512 void curve_init(curve *c, met_policy pol, int32_t look, int64_t *dist, int32_t *gt,
                            int64_t T)
{
    c->st = c->rk = _mm512_set1_epi8((char)0xff);
    for (int i = 0; i < 4; i++)
        c->key[i] = _mm512_set1_epi32(INT32_MAX);
    for (int i = 0; i < 64; i++)
        c->skey[i] = INT32_MAX;
    c->pol = pol, c->look = look, c->n = 0, c->dist = dist, c->gt = gt;
    memset(c->cnt, 0, sizeof c->cnt), memset(c->since, 0, sizeof c->since);
    if (gt)
        memset(gt, 0, ((size_t)T + 2) * sizeof *gt);
}

T512 int met_lrc_small_sample(const met_lrc_small_args *a)
{
    enum { MAXC = MET_LRC_SMALL_MAX_CURVES };
    curve cv[MAXC] __attribute__((aligned(64)));
    shifts sh;
    int32_t k = a->k, N = (int32_t)(a->T * k), nc = a->ncurves;
    if (nc > MAXC || (a->T + 2) * (int64_t)N + 128 >= INT32_MAX)
        return 0;
    for (int i = 0; i < 3; i++) {
        uint8_t idx[64];
        for (int j = 0; j < 64; j++)
            idx[j] = (uint8_t)((8 * ((j >> 3) - (1 << i)) + 7) & 63);
        sh.idx[i] = _mm512_loadu_si512(idx);
        sh.keep[i] = ~(uint64_t)0 << (8 << i);
    }
    for (int i = 0; i < nc; i++)
        curve_init(&cv[i], a->pols[i], a->looks[i], a->dist[i],
                   a->pols[i] == MET_POLICY_LFU ? a->gt[i] : NULL, a->T);
    for (int i = 0; i < nc; i++)
        for (int64_t t = 0; cv[i].pol == MET_POLICY_FSF && t < a->T && t < cv[i].look; t++)
            fsf_enter(&cv[i], a->ids + t * k, k, N);
    for (int64_t t = 0; t < a->T; t++) {
        const int32_t *tok = a->ids + t * k;
        for (int i = 0; i < nc; i++)
            if (cv[i].pol == MET_POLICY_FSF && t > 0 && t + cv[i].look - 1 < a->T)
                fsf_enter(&cv[i], a->ids + (t + cv[i].look - 1) * k, k, N);
        int32_t fresh[MAXC] = {0};
        for (int32_t r = 0; r < k; r++) { /* look-up before the token */
            __m512i xb = _mm512_set1_epi8((char)tok[r]);
            for (int i = 0; i < nc; i++) {
                uint64_t m = where(cv[i].st, xb);
                fresh[i] += m == 0;
                cv[i].dist[m ? (int32_t)_tzcnt_u64(m) + 1 : cv[i].n + fresh[i]]++;
            }
        }
        for (int32_t r = 0; r < k; r++) {
            __m512i xb = _mm512_set1_epi8((char)tok[r]);
            for (int i = 0; i < nc; i++)
                access(&cv[i], &sh, tok[r], xb, (int32_t)(t * k + r), N, a->next);
        }
    }
    return 1;
}
