/*
 * lrc_avx2.c — the walk of met_lrc_wide_sample (lrc_avx512.c) with AVX2
 * only, 8 stack positions a step, for CPUs without AVX-512 F.
 *
 * Same stack, priorities (int32) and semantics as the 16-wide walk: a block
 * has records iff some priority is below the carried victim's; records =
 * those below it that are also below every priority before them in the
 * block (prefix-min by three lane shifts). AVX2 has no compress/expand, so
 * the rotation (each record's entry moves to the next record, the carried
 * victim takes the first, the last is carried on) is one cyclic permutation
 * of the record lanes, from a 256-entry table indexed by the record mask,
 * after the carried victim is put in the last record's lane. No scatter:
 * the moved experts' positions are scalar stores, one per record.
 *
 * Blocks load and store all 8 lanes: the arrays have MET_LRC_WIDE_PAD
 * lanes of padding (lrc.c), lanes past the walk's end are never records
 * and go back unchanged.
 */
#include "metrics/lrc_impl.h"

#include "engine/formats.h"

#include <immintrin.h>
#include <stdint.h>
#include <stdlib.h>

#define T256 __attribute__((target("avx2,bmi,popcnt")))

/* s is the resolved SIMD path (eng_simd_default), so MOEBENCH_SIMD=scalar
 * keeps the curves off AVX2 as it does the engine's kernels. */
int met_lrc_wide2_available(eng_simd s)
{
    return s >= ENG_SIMD_AVX2 && __builtin_cpu_supports("avx2");
}

/* perm[m] = the lane each lane takes its entry from, one byte per lane, for
 * record mask m: itself outside the records, the record before inside them,
 * the last record for the first. */
static void wide2_table(uint64_t *perm)
{
    for (int m = 0; m < 256; m++) {
        uint64_t p = 0;
        int last = 31 - __builtin_clz((unsigned)m | 1), prev = last;
        for (int j = 0; j < 8; j++) {
            int from = j;
            if (m >> j & 1)
                from = prev, prev = j;
            p |= (uint64_t)from << (8 * j);
        }
        perm[m] = p;
    }
}

typedef struct wide2 {
    const met_lrc_wide_args *a;
    const uint64_t *perm;     /* [256] wide2_table                           */
} wide2;

/* Prefix minimum over the 8 lanes: two in-lane shifts that bring in
 * INT32_MAX, then the low half's last lane into the high half. */
static T256 inline __m256i prefix_min(__m256i v)
{
    const __m256i maxv = _mm256_set1_epi32(INT32_MAX);
    v = _mm256_min_epi32(v, _mm256_alignr_epi8(v, maxv, 12));
    v = _mm256_min_epi32(v, _mm256_alignr_epi8(v, maxv, 8));
    __m256i lo3 = _mm256_permute2x128_si256(_mm256_shuffle_epi32(v, 0xff), maxv, 0x02);
    return _mm256_min_epi32(v, lo3);
}

/* One block of 8 stack positions from b, the first nv (1..8) of them below
 * the accessed one: as wide_block in lrc_avx512.c. The carried victim's key
 * and id are in every lane of *kv, *vb; its id also in *v. The chain from
 * one block to the next is short: if the block has records, the new victim
 * is its minimum, found from the block alone. */
static T256 inline void wide2_block(const wide2 *w, int32_t b, int32_t nv, __m256i *kv,
                                    __m256i *vb, int32_t *v)
{
    const met_lrc_wide_args *a = w->a;
    const __m256i iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    __m256i K = _mm256_loadu_si256((const __m256i *)(a->sk + b));
    __m256i inval = _mm256_cmpgt_epi32(_mm256_set1_epi32(nv), iota);
    inval = _mm256_andnot_si256(inval, _mm256_set1_epi32(INT32_MAX));
    __m256i Kv = _mm256_max_epi32(K, inval); /* INT32_MAX past nv (priorities >= 0) */
    __m256i ltv = _mm256_cmpgt_epi32(*kv, Kv);
    if (_mm256_testz_si256(ltv, ltv))
        return;
    __m256i P = prefix_min(Kv);
    __m256i recv = _mm256_and_si256(ltv, _mm256_cmpeq_epi32(Kv, P));
    unsigned rec = (unsigned)_mm256_movemask_ps(_mm256_castsi256_ps(recv));
    /* the last record is the block's minimum: the new carried victim */
    __m256i pmin = _mm256_permutevar8x32_epi32(P, _mm256_set1_epi32(7));
    __m256i oh = _mm256_cmpeq_epi32(Kv, pmin);
    int32_t last = (int32_t)__builtin_ctz((unsigned)_mm256_movemask_ps(_mm256_castsi256_ps(oh)));
    __m256i I = _mm256_loadu_si256((const __m256i *)(a->st + b));
    __m256i nb = _mm256_permutevar8x32_epi32(I, _mm256_set1_epi32(last));
    __m256i idx = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(w->perm + rec)));
    K = _mm256_permutevar8x32_epi32(_mm256_blendv_epi8(K, *kv, oh), idx);
    I = _mm256_permutevar8x32_epi32(_mm256_blendv_epi8(I, *vb, oh), idx);
    /* positions from the ids before the store (no load of a lane of it) */
    int32_t c = *v, *st = a->st + b, *pos = a->pos;
    _mm256_storeu_si256((__m256i *)(a->sk + b), K);
    for (; rec; rec &= rec - 1) {
        int32_t j = (int32_t)__builtin_ctz(rec), id = st[j];
        pos[c] = b + j, c = id;
    }
    _mm256_storeu_si256((__m256i *)st, I);
    *kv = pmin, *vb = nb, *v = c;
}

static T256 void wide2_access(const wide2 *w, int32_t x, int32_t *n)
{
    const met_lrc_wide_args *a = w->a;
    int32_t *st = a->st, *sk = a->sk, *pos = a->pos;
    int32_t d = pos[x];
    if (d == 0)
        return;
    int32_t end = d < 0 ? *n : d;
    if (d < 0 && (*n)++ == 0) { /* first expert of the sample */
        st[0] = x, pos[x] = 0, sk[0] = a->key[x];
        return;
    }
    int32_t v = st[0];
    __m256i kv = _mm256_set1_epi32(sk[0]), vb = _mm256_set1_epi32(v);
    st[0] = x, pos[x] = 0, sk[0] = a->key[x];
    int32_t b = 1;
    for (; b + 64 <= end; b += 64) { /* eight blocks without a key below kv: skip */
        __m256i lt = _mm256_setzero_si256();
        for (int q = 0; q < 8; q++) {
            __m256i K = _mm256_loadu_si256((const __m256i *)(sk + b + 8 * q));
            lt = _mm256_or_si256(lt, _mm256_cmpgt_epi32(kv, K));
        }
        for (int q = 0; !_mm256_testz_si256(lt, lt) && q < 8; q++)
            wide2_block(w, b + 8 * q, 8, &kv, &vb, &v);
    }
    for (; b < end; b += 8)
        wide2_block(w, b, end - b >= 8 ? 8 : end - b, &kv, &vb, &v);
    st[end] = v, sk[end] = _mm256_cvtsi256_si32(kv), pos[v] = end;
}

/* met_lrc_wide_drive's access step. */
static T256 void wide2_access_cb(const void *w, int32_t x, int32_t *n)
{
    wide2_access(w, x, n);
}

/* As met_lrc_wide_sample; a's arrays have MET_LRC_WIDE_PAD lanes more. */
T256 int met_lrc_wide2_sample(const met_lrc_wide_args *a)
{
    uint64_t perm[256];
    wide2_table(perm);
    wide2 w = {a, perm};
    return met_lrc_wide_drive(a, &w, wide2_access_cb);
}
