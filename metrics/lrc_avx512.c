/*
 * lrc_avx512.c — AVX-512 kernels of the one-pass curves.
 *
 * LFU, Belady and FSF curves of at most 64 experts with the whole Mattson
 * stack in two 64-byte registers (AVX-512 BW + VBMI + VBMI2 + BITALG), several curves
 * of one sample at once. Same semantics and same hits as the
 * walk in lrc.c (the tests compare both with brute force); only called when
 * met_lrc_small_available(s) said yes.
 *
 * State of one curve: st[j] = the expert at stack position j (0xff past
 * the stack) and rk[x] = expert x's rank among the stack's experts by
 * priority (0 = lowest; 0xff off the stack), indexed by expert id, so a
 * priority change never moves bytes and the ranks in stack order are one
 * permute, rk[st[j]]. Priorities are distinct inside the stack (they end in
 * the last access position, or are next-use positions), so ranks are a
 * permutation. The Mattson update of an access to x at depth d (lrc.c):
 *  - records = positions j in [1, d) whose rank is below every rank above:
 *    rk[st[j]] == its prefix-min (three shifts inside 8-byte lanes, three
 *    byte permutes across them);
 *  - the rotation (each record's expert moves to the next record's
 *    position, the top to the first, the last to d) = a compress of
 *    positions {0} + records and an expand into records + {d};
 *  - x goes on top; its rank moves from rk[x] to r_new = the number of
 *    stack experts with a lower priority, and the ranks in between shift by
 *    one (compares on the values, not the positions). LFU and FSF get r_new
 *    in O(1) from counts of stack experts per access count (the new
 *    priority ends in the newest position); Belady counts priorities (int32,
 *    four compares).
 * FSF also raises up to k priorities inside the stack when a token enters
 * the lookahead window: all of them in one permutation of the ranks
 * (fsf_enter), whose new ranks are O(1) but for one masked count each,
 * from the counts and the ranks by last access (lr).
 * x's depth is a byte compare of st with x.
 *
 * The second half is the walk of lrc.c for any E on int32 priorities with
 * AVX-512 F only (met_lrc_wide_sample).
 *
 * One update is a chain of dependent vector operations (~40 cycles), so
 * the curves of a sample run interleaved, access by access: their chains
 * are independent and overlap in the out-of-order core.
 */
#include "metrics/lrc_impl.h"

#include "engine/formats.h"

#include <immintrin.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define T512                                                                                  \
    __attribute__((target("avx512f,avx512bw,avx512vl,avx512vbmi,avx512vbmi2,avx512bitalg,bmi," \
                          "bmi2,popcnt")))
#define W512 __attribute__((target("avx512f,popcnt")))

/* s is the resolved SIMD path (eng_simd_default: MOEBENCH_SIMD or the
 * best the CPU has), so MOEBENCH_SIMD=scalar|avx2 keeps the curves off
 * AVX-512 as it does the engine's kernels; the extra features these walks
 * use are checked here. */
int met_lrc_small_available(eng_simd s)
{
    return s >= ENG_SIMD_AVX512 && __builtin_cpu_supports("avx512f") &&
           __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vbmi") &&
           __builtin_cpu_supports("avx512vbmi2") && __builtin_cpu_supports("avx512bitalg");
}

int met_lrc_wide_available(eng_simd s)
{
    return s >= ENG_SIMD_AVX512 && __builtin_cpu_supports("avx512f");
}

typedef struct curve {
    __m512i st;               /* the stack: expert ids by position, 0xff past it */
    __m512i rk;               /* rank of each expert (byte = id), 0xff off stack */
    __m512i lr;               /* FSF: rank by last access (byte = id); for stack
                                 experts only, the other bytes are garbage     */
    __m512i key[4];           /* Belady: int32 priority by id, INT32_MAX off it  */
    int32_t skey[64];         /* the same, scalar                               */
    met_policy pol;
    int32_t look, n;          /* FSF lookahead; stack size                      */
    int32_t cnt[64];          /* LFU/FSF access counts                          */
    int32_t *gt;              /* LFU, FSF: [T + 2] stack experts with count > c  */
    int64_t *dist;
} curve;

typedef struct shifts {
    __m512i idx[3];           /* lane j -> the last byte of 8-byte lane j/8 - 2^s */
    __mmask64 keep[3];        /* lanes j with j/8 >= 2^s                          */
    __m512i bc[65];           /* bc[v] = v in every byte: loads, not broadcasts   */
    __m512i iota, iotaff;     /* byte j = j; the same with 0xff in byte 63        */
} shifts;

/* Stack experts with a priority below v (Belady). */
static T512 inline int32_t count_below(const curve *c, int32_t v)
{
    __m512i b = _mm512_set1_epi32(v);
    __mmask32 lo = _mm512_kunpackw(_mm512_cmplt_epi32_mask(c->key[1], b),
                                   _mm512_cmplt_epi32_mask(c->key[0], b));
    __mmask32 hi = _mm512_kunpackw(_mm512_cmplt_epi32_mask(c->key[3], b),
                                   _mm512_cmplt_epi32_mask(c->key[2], b));
    return (int32_t)__builtin_popcountll(_cvtmask64_u64(_mm512_kunpackd(hi, lo)));
}

static T512 inline void set_key(curve *c, int32_t x, int32_t v)
{
    c->skey[x] = v;
    c->key[x >> 4] = _mm512_mask_set1_epi32(c->key[x >> 4], (__mmask16)(1u << (x & 15)), v);
}

/* Ranks after one expert moves from rank r_old to r_new (its own lane is
 * set by the caller): those in (r_old, r_new] go down by one, those in
 * [r_new, r_old) up (0xff, off the stack, is in neither: ranks < 64). Both
 * ranges tested: no branch, no dependence on the direction. */
static T512 inline __m512i rank_move(const shifts *sh, __m512i rk, int32_t r_old, int32_t r_new)
{
    __m512i o = sh->bc[r_old], w = sh->bc[r_new];
    __mmask64 dn = _mm512_cmpgt_epu8_mask(rk, o) & _mm512_cmple_epu8_mask(rk, w);
    __mmask64 up = _mm512_cmpge_epu8_mask(rk, w) & _mm512_cmplt_epu8_mask(rk, o);
    rk = _mm512_mask_sub_epi8(rk, dn, rk, sh->bc[1]);
    return _mm512_mask_add_epi8(rk, up, rk, sh->bc[1]);
}

/* Lane mask of x's stack position (xb = x in every byte), 0 when x is not
 * in the stack. */
static T512 inline uint64_t where(__m512i st, __m512i xb)
{
    return _mm512_cmpeq_epi8_mask(st, xb);
}

/* Byte j & 63 of v. */
static T512 inline int32_t lane(const shifts *sh, __m512i v, int32_t j)
{
    __m512i b = _mm512_permutexvar_epi8(sh->bc[j], v);
    return _mm_cvtsi128_si32(_mm512_castsi512_si128(b)) & 0xff;
}

/* v with byte x set to b. */
static T512 inline __m512i set_lane(const shifts *sh, __m512i v, int32_t x, int32_t b)
{
    return _mm512_mask_mov_epi8(v, _cvtu64_mask64((uint64_t)1 << x), sh->bc[b]);
}

/* Position 0 and the positions in [1, d) whose rank is below every rank
 * above them (none at all when d = 0): prefix maxima of the complemented
 * ranks within each 8-byte lane by shifts; then each byte takes the maximum
 * of the last bytes of the 1, 2, 4 lanes before (which by then cover 1, 2,
 * 4 lanes). Positions >= d do not matter: a prefix looks only upwards. */
static T512 inline __mmask64 records(const shifts *sh, __m512i rk, int32_t d)
{
    __m512i q = _mm512_ternarylogic_epi64(rk, rk, rk, 0x55), nq = q; /* ~rk */
    q = _mm512_max_epu8(q, _mm512_slli_epi64(q, 8));
    q = _mm512_max_epu8(q, _mm512_slli_epi64(q, 16));
    q = _mm512_max_epu8(q, _mm512_slli_epi64(q, 32));
    for (int i = 0; i < 3; i++)
        q = _mm512_max_epu8(q, _mm512_maskz_permutexvar_epi8(sh->keep[i], sh->idx[i], q));
    return _mm512_mask_cmpeq_epi8_mask(_bzhi_u64(~(uint64_t)0, (unsigned)d), nq, q);
}

/* The Mattson update for an access to x at position p (N accesses). The
 * ranks in stack order are one permute of the ranks by id; the rank move
 * (on the ranks by id) does not depend on the positions, so it runs beside
 * the prefix-min (the chain is st -> ranks -> prefix-min -> records ->
 * rotation). */
static T512 inline void access(curve *c, const shifts *sh, int32_t x, __m512i xb, int32_t p,
                               int32_t N, const int64_t *next)
{
    uint64_t m = where(c->st, xb);
    int32_t isnew = m == 0, d = isnew ? c->n : (int32_t)_tzcnt_u64(m);
    int32_t r_old = isnew ? c->n : lane(sh, c->rk, x), r_new;
    c->n += isnew;
    if (c->pol == MET_POLICY_LFU) { /* (count, p): above every count <= its own */
        int32_t n1 = c->cnt[x]++;
        c->gt[n1]++;
        r_new = c->n - c->gt[n1 + 1] - 1;
    } else if (c->pol == MET_POLICY_FSF) { /* (f, p): above every f <= its own */
        int32_t f = --c->cnt[x];
        for (int32_t j = 0; isnew && j < f; j++) /* x joins the stack with f */
            c->gt[j]++;
        c->gt[f] -= !isnew; /* x's f went from f + 1 to f */
        r_new = c->n - c->gt[f] - 1;
        /* x becomes the most recently used: those used after it move down */
        __m512i lo = sh->bc[isnew ? 64 : lane(sh, c->lr, x)];
        __m512i lr = _mm512_mask_sub_epi8(c->lr, _mm512_cmpgt_epu8_mask(c->lr, lo), c->lr,
                                          sh->bc[1]);
        c->lr = set_lane(sh, lr, x, c->n - 1);
    } else {
        int32_t key = (int32_t)(2 * N + 64 - next[p]);
        r_new = count_below(c, key) - (c->skey[x] < key); /* not x itself */
        set_key(c, x, key);
    }
    /* from = {0} + records, to = records + {d}: kept in mask registers */
    __mmask64 from = records(sh, _mm512_permutexvar_epi8(c->st, c->rk), d);
    __mmask64 to = _kxor_mask64(from, _cvtu64_mask64(d ? 1 | (uint64_t)1 << d : 0));
    __m512i st = _mm512_mask_expand_epi8(c->st, to, _mm512_maskz_compress_epi8(from, c->st));
    c->st = _mm512_mask_mov_epi8(st, 1, xb);
    c->rk = set_lane(sh, rank_move(sh, c->rk, r_old, r_new), x, r_new);
}

/* FSF: the experts of a token entering the lookahead window (tok[0..k),
 * idx: their ids as bytes), each priority (f, last access) becoming
 * (f + 1, last access), all in one rank permutation. In old ranks (the
 * order of the old priorities), with M = the moved experts (those in the
 * stack) and thr(e) = the number of old priorities below e's new one:
 *  - thr(e) = (n - gt[f]) + those of count f + 1 (the next gt[f] - gt[f+1]
 *    ranks) last used before e: one masked count;
 *  - an unmoved expert of rank v goes down by #{e in M: r(e) < v < thr(e)};
 *  - e goes to thr(e) - #{e' in M: r(e') < thr(e)} + #{e' in M: r(e') < r(e)}
 *    (the moved keep their order among themselves).
 * The map old rank -> new rank is one byte vector and the new ranks one
 * permute of it: the chain through the ranks is a few operations per
 * token instead of a rank move per expert. */
static T512 inline void fsf_enter(curve *c, const shifts *sh, const int32_t *tok, int32_t k,
                                  __m512i idx)
{
    uint8_t ro[64] __attribute__((aligned(64))), le[64] __attribute__((aligned(64)));
    int32_t thr[64], fs[64], mv[64], m = 0;
    __m512i rk = c->rk, lr = c->lr;
    _mm512_store_si512(ro, _mm512_permutexvar_epi8(idx, rk));
    _mm512_store_si512(le, _mm512_permutexvar_epi8(idx, lr));
    uint64_t rm = 0;
    for (int32_t r = 0; r < k; r++) {
        int32_t f = c->cnt[tok[r]]++;
        if (ro[r] == 0xff) /* not in the stack (rare once the stack is full) */
            continue;
        int32_t lo = c->n - c->gt[f], w = c->gt[f] - c->gt[f + 1];
        __mmask64 cls = _mm512_cmplt_epu8_mask(_mm512_sub_epi8(rk, sh->bc[lo]), sh->bc[w]);
        __mmask64 old = _mm512_mask_cmplt_epu8_mask(cls, lr, sh->bc[le[r]]);
        thr[m] = lo + (int32_t)__builtin_popcountll(_cvtmask64_u64(old));
        fs[m] = f, mv[m++] = ro[r], rm |= (uint64_t)1 << ro[r];
    }
    if (!m)
        return;
    __m512i map = c->n == 64 ? sh->iota : sh->iotaff, to = map;
    for (int32_t i = 0; i < m; i++) {
        int32_t o = mv[i], t = thr[i];
        __mmask64 in = _mm512_cmplt_epu8_mask(_mm512_sub_epi8(sh->iota, sh->bc[o + 1]),
                                              sh->bc[t - o - 1]);
        map = _mm512_mask_sub_epi8(map, in, map, sh->bc[1]);
        to = set_lane(sh, to, o, t - (int32_t)__builtin_popcountll(_bzhi_u64(rm, (unsigned)t)) +
                                     (int32_t)__builtin_popcountll(_bzhi_u64(rm, (unsigned)o)));
        c->gt[fs[i]]++; /* e's f went above f */
    }
    /* the moved ranks last: one of them may lie in another's range */
    c->rk = _mm512_permutexvar_epi8(rk, _mm512_mask_mov_epi8(map, _cvtu64_mask64(rm), to));
}

/* The ids of a token as bytes. */
static T512 inline __m512i token_bytes(const int32_t *tok, int32_t k)
{
    if (k <= 16)
        return _mm512_castsi128_si512(_mm512_cvtepi32_epi8(
            _mm512_maskz_loadu_epi32((__mmask16)((1u << k) - 1), tok)));
    uint8_t b[64] = {0};
    for (int32_t r = 0; r < k; r++)
        b[r] = (uint8_t)tok[r];
    return _mm512_loadu_si512(b);
}

static T512 void curve_init(curve *c, met_policy pol, int32_t look, int64_t *dist, int32_t *gt,
                            int64_t T)
{
    c->st = c->rk = c->lr = _mm512_set1_epi8((char)0xff);
    for (int i = 0; i < 4; i++)
        c->key[i] = _mm512_set1_epi32(INT32_MAX);
    for (int i = 0; i < 64; i++)
        c->skey[i] = INT32_MAX;
    c->pol = pol, c->look = look, c->n = 0, c->dist = dist, c->gt = gt;
    memset(c->cnt, 0, sizeof c->cnt);
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
    uint8_t io[64];
    for (int v = 0; v < 64; v++)
        io[v] = (uint8_t)v;
    sh.iota = _mm512_loadu_si512(io);
    sh.iotaff = _mm512_mask_mov_epi8(sh.iota, (__mmask64)1 << 63, _mm512_set1_epi8(-1));
    for (int v = 0; v <= 64; v++)
        sh.bc[v] = _mm512_set1_epi8((char)v);
    for (int i = 0; i < nc; i++)
        curve_init(&cv[i], a->pols[i], a->looks[i], a->dist[i],
                   a->pols[i] != MET_POLICY_BELADY ? a->gt[i] : NULL, a->T);
    for (int i = 0; i < nc; i++)
        for (int64_t t = 0; cv[i].pol == MET_POLICY_FSF && t < a->T && t < cv[i].look; t++)
            for (int32_t r = 0; r < k; r++)
                cv[i].cnt[a->ids[t * k + r]]++; /* the stack is empty */
    for (int64_t t = 0; t < a->T; t++) {
        const int32_t *tok = a->ids + t * k;
        const int32_t *enter[MAXC]; /* FSF: the token entering each window */
        for (int i = 0; i < nc; i++)
            enter[i] = cv[i].pol == MET_POLICY_FSF && t > 0 && t + cv[i].look - 1 < a->T
                           ? a->ids + (t + cv[i].look - 1) * k
                           : NULL;
        for (int i = 0; i < nc; i++)
            if (enter[i])
                fsf_enter(&cv[i], &sh, enter[i], k, token_bytes(enter[i], k));
        /* look-up before the token: the stack positions holding one of its
         * experts (distinct ids < 64, a bit set) are one bit shuffle */
        uint64_t tb = 0;
        for (int32_t r = 0; r < k; r++)
            tb |= (uint64_t)1 << tok[r];
        __m512i tbv = _mm512_set1_epi64((long long)tb);
        for (int i = 0; i < nc; i++) {
            uint64_t m = _bzhi_u64(_cvtmask64_u64(_mm512_bitshuffle_epi64_mask(tbv, cv[i].st)),
                                   (unsigned)cv[i].n); /* past the stack: 0xff, not an id */
            int32_t miss = k - (int32_t)__builtin_popcountll(m);
            for (; m; m &= m - 1)
                cv[i].dist[_tzcnt_u64(m) + 1]++;
            for (int32_t f = 1; f <= miss; f++) /* warm start: rank among the new + 1 */
                cv[i].dist[cv[i].n + f]++;
        }
        for (int32_t r = 0; r < k; r++) {
            __m512i xb = sh.bc[tok[r]];
            for (int i = 0; i < nc; i++)
                access(&cv[i], &sh, tok[r], xb, (int32_t)(t * k + r), N, a->next);
        }
    }
    return 1;
}

/* ---- the walk for any E (lrc.c's stack_access on int32 priorities) -------
 *
 * Stack, priorities and positions as in lrc.c, but int32, and the walk
 * takes 16 positions a step: a block has records iff some priority is below
 * the carried victim's; then records = those below it that are also below
 * every priority before them in the block (prefix-min by four lane shifts),
 * and the rotation is a compress, a one-lane shift that brings the carried
 * victim in, and an expand. Positions of the moved experts by a scatter. */

/* One block of 16 stack positions from b (valid: those below the accessed
 * one): the records move, the carried victim (key kv, id vb, both in every
 * lane) comes in, the new one goes out: the block's minimum, when below
 * kv (then the block has records). */
static W512 inline void wide_block(const met_lrc_wide_args *a, int32_t b, __mmask16 valid,
                                   __m512i *kv, __m512i *vb)
{
    const __m512i maxv = _mm512_set1_epi32(INT32_MAX);
    __m512i K = _mm512_mask_loadu_epi32(maxv, valid, a->sk + b);
    __mmask16 lt = _mm512_cmplt_epi32_mask(K, *kv);
    if (!lt)
        return;
    __m512i P = _mm512_min_epi32(K, _mm512_alignr_epi32(K, maxv, 15));
    P = _mm512_min_epi32(P, _mm512_alignr_epi32(P, maxv, 14));
    P = _mm512_min_epi32(P, _mm512_alignr_epi32(P, maxv, 12));
    P = _mm512_min_epi32(P, _mm512_alignr_epi32(P, maxv, 8));
    __m512i pmin = _mm512_permutexvar_epi32(_mm512_set1_epi32(15), P);
    __mmask16 rec = _mm512_mask_cmpeq_epi32_mask(lt, K, P);
    __m512i I = _mm512_maskz_loadu_epi32(valid, a->st + b);
    __m512i CK = _mm512_maskz_compress_epi32(rec, K), CI = _mm512_maskz_compress_epi32(rec, I);
    K = _mm512_mask_expand_epi32(K, rec, _mm512_alignr_epi32(CK, *kv, 15));
    I = _mm512_mask_expand_epi32(I, rec, _mm512_alignr_epi32(CI, *vb, 15));
    _mm512_mask_storeu_epi32(a->sk + b, rec, K);
    _mm512_mask_storeu_epi32(a->st + b, rec, I);
    const __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    _mm512_mask_i32scatter_epi32(a->pos, rec, I, _mm512_add_epi32(iota, _mm512_set1_epi32(b)), 4);
    *vb = _mm512_permutexvar_epi32(_mm512_set1_epi32(__builtin_popcount(rec) - 1), CI);
    *kv = _mm512_min_epi32(*kv, pmin);
}

static W512 void wide_access(const met_lrc_wide_args *a, int32_t x, int32_t *n)
{
    int32_t *st = a->st, *sk = a->sk, *pos = a->pos;
    int32_t d = pos[x];
    if (d == 0)
        return;
    int32_t end = d < 0 ? *n : d;
    if (d < 0 && (*n)++ == 0) { /* first expert of the sample */
        st[0] = x, pos[x] = 0, sk[0] = a->key[x];
        return;
    }
    __m512i kv = _mm512_set1_epi32(sk[0]), vb = _mm512_set1_epi32(st[0]);
    st[0] = x, pos[x] = 0, sk[0] = a->key[x];
    int32_t b = 1;
    for (; b + 64 <= end; b += 64) { /* four blocks without a key below kv: skip */
        __mmask16 lt = _mm512_cmplt_epi32_mask(_mm512_loadu_si512(sk + b), kv) |
                       _mm512_cmplt_epi32_mask(_mm512_loadu_si512(sk + b + 16), kv) |
                       _mm512_cmplt_epi32_mask(_mm512_loadu_si512(sk + b + 32), kv) |
                       _mm512_cmplt_epi32_mask(_mm512_loadu_si512(sk + b + 48), kv);
        for (int q = 0; lt && q < 4; q++)
            wide_block(a, b + 16 * q, 0xffff, &kv, &vb);
    }
    for (; b < end; b += 16)
        wide_block(a, b, end - b >= 16 ? 0xffff : (__mmask16)((1u << (end - b)) - 1), &kv, &vb);
    int32_t v = _mm_cvtsi128_si32(_mm512_castsi512_si128(vb));
    st[end] = v, sk[end] = _mm_cvtsi128_si32(_mm512_castsi512_si128(kv)), pos[v] = end;
}

/* met_lrc_wide_drive's access step. */
static W512 void wide_access_cb(const void *a, int32_t x, int32_t *n)
{
    wide_access(a, x, n);
}

W512 int met_lrc_wide_sample(const met_lrc_wide_args *a)
{
    return met_lrc_wide_drive(a, a, wide_access_cb);
}
