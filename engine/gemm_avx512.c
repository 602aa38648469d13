/*
 * gemm_avx512.c — integer prefill kernels with AVX-512 VNNI (gemm.h).
 *
 * A task's weight rows are taken 16 at a time (one row per 32-bit lane).
 * Each tile is first packed into the thread's scratch: per 32-element
 * block, 8 registers whose lane r holds 4 consecutive unsigned codes of row
 * r (a 16 x 8 transpose of dwords), then the rows' scales. The compute loop
 * then walks the packed blocks once per chunk of up to 16 activation rows,
 * keeping all 8 code registers and one f32 accumulator per activation row in
 * registers: per block and activation row it issues 8 vpdpbusd whose signed
 * operand is 4 activation quants broadcast from memory, so every weight
 * byte loaded is used by every activation row of the chunk, and no lane
 * ever needs a horizontal sum (which is also why the result is the scalar
 * reference's bit for bit).
 *
 * Packing costs about as much as the products of two activation rows; it is
 * paid once per tile, so a tile shared by the ~8 tokens an expert gets in a
 * 64-token batch is already dominated by the products.
 */
#include "engine/gemm.h"
#include "engine/kernels.h"

#include <immintrin.h>
#include <string.h>

#define TGT __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")))
#define AI __attribute__((always_inline)) inline

enum { L = 16, REC = 640 };   /* rows per tile; packed bytes per block: codes, S, M/S1 */

typedef enum { K_INT, K_MIN, K_HALVES } kind;

/* ---- packing --------------------------------------------------------------- */

/* A[k] = [32 code bytes of row k | of row k + 8] -> rec[64 j + 4 r + i] =
 * byte 4 j + i of row r. */
TGT static AI void transpose_store(__m512i A[8], uint8_t *rec)
{
    __m512i t[8], u[8];
    #pragma GCC unroll 16
    for (int k = 0; k < 8; k += 4) {
        t[k] = _mm512_unpacklo_epi32(A[k], A[k + 1]);
        t[k + 1] = _mm512_unpackhi_epi32(A[k], A[k + 1]);
        t[k + 2] = _mm512_unpacklo_epi32(A[k + 2], A[k + 3]);
        t[k + 3] = _mm512_unpackhi_epi32(A[k + 2], A[k + 3]);
        u[k] = _mm512_unpacklo_epi64(t[k], t[k + 2]);
        u[k + 1] = _mm512_unpackhi_epi64(t[k], t[k + 2]);
        u[k + 2] = _mm512_unpacklo_epi64(t[k + 1], t[k + 3]);
        u[k + 3] = _mm512_unpackhi_epi64(t[k + 1], t[k + 3]);
    }
    const __m512i lo = _mm512_setr_epi64(0, 1, 8, 9, 4, 5, 12, 13);
    const __m512i hi = _mm512_setr_epi64(2, 3, 10, 11, 6, 7, 14, 15);
    #pragma GCC unroll 16
    for (int j = 0; j < 4; j++) {
        _mm512_store_si512((__m512i *)(rec + 64 * j), _mm512_permutex2var_epi64(u[j], lo, u[4 + j]));
        _mm512_store_si512((__m512i *)(rec + 64 * (j + 4)),
                           _mm512_permutex2var_epi64(u[j], hi, u[4 + j]));
    }
}

/* The tile's rows 256 bytes past off: the near future of every row (the
 * hardware prefetcher is slow to pick up 16 short streams). */
TGT static AI void prefetch_rows(const uint8_t *const rows[L], size_t off)
{
    #pragma GCC unroll 16
    for (int r = 0; r < L; r++)
        _mm_prefetch((const char *)rows[r] + off + 256, _MM_HINT_T0);
}

TGT static AI __m512i load_pair(const uint8_t *a, const uint8_t *b)
{
    return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)a)),
                              _mm256_loadu_si256((const __m256i *)b), 1);
}

/* 16 bytes of nibbles of rows a and b -> [a lo | a hi | b lo | b hi]. */
TGT static AI __m512i nibbles_pair(const uint8_t *a, const uint8_t *b)
{
    __m256i v = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)a)),
                                        _mm_loadu_si128((const __m128i *)b), 1);
    __m512i z = _mm512_permutexvar_epi64(_mm512_setr_epi64(0, 1, 0, 1, 2, 3, 2, 3),
                                         _mm512_castsi256_si512(v));
    z = _mm512_mask_srli_epi16(z, 0xFF00FF00u, z, 4);
    return _mm512_and_si512(z, _mm512_set1_epi8(15));
}

static inline float h2f(const void *p)
{
    uint16_t h;
    memcpy(&h, p, 2);
    return eng_fp16_to_fp32(h);
}

/* Scales of the 16 rows, one per row at rows[r] + off (fp16), into S. */
TGT static AI void store_f16_scales(const uint8_t *const rows[L], size_t off, float *S)
{
    uint16_t h[L];
    #pragma GCC unroll 16
    for (int r = 0; r < L; r++)
        memcpy(&h[r], rows[r] + off, 2);
    _mm512_store_ps(S, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)h)));
}

TGT static void pack_q8_0(const uint8_t *const rows[L], int64_t nb, uint8_t *rec)
{
    const __m512i flip = _mm512_set1_epi8((char)0x80);
    for (int64_t b = 0; b < nb; b++, rec += REC) {
        const size_t o = (size_t)b * sizeof(eng_block_q8_0);
        __m512i A[8];
        prefetch_rows(rows, o);
        #pragma GCC unroll 16
        for (int k = 0; k < 8; k++)
            A[k] = _mm512_xor_si512(load_pair(rows[k] + o + 2, rows[k + 8] + o + 2), flip);
        transpose_store(A, rec);
        store_f16_scales(rows, o, (float *)(rec + 512));
    }
}

TGT static void pack_q4_0(const uint8_t *const rows[L], int64_t nb, uint8_t *rec)
{
    for (int64_t b = 0; b < nb; b++, rec += REC) {
        const size_t o = (size_t)b * sizeof(eng_block_q4_0);
        prefetch_rows(rows, o);
        __m512i A[8];
        #pragma GCC unroll 16
        for (int k = 0; k < 8; k++)
            A[k] = nibbles_pair(rows[k] + o + 2, rows[k + 8] + o + 2);
        transpose_store(A, rec);
        store_f16_scales(rows, o, (float *)(rec + 512));
    }
}

TGT static void pack_q5_0(const uint8_t *const rows[L], int64_t nb, uint8_t *rec)
{
    const __m512i bit4 = _mm512_set1_epi8(16);
    for (int64_t b = 0; b < nb; b++, rec += REC) {
        const size_t o = (size_t)b * sizeof(eng_block_q5_0);
        prefetch_rows(rows, o);
        __m512i A[8];
        #pragma GCC unroll 16
        for (int k = 0; k < 8; k++) {
            uint32_t h0, h1;
            memcpy(&h0, rows[k] + o + 2, 4);
            memcpy(&h1, rows[k + 8] + o + 2, 4);
            A[k] = nibbles_pair(rows[k] + o + 6, rows[k + 8] + o + 6);
            A[k] = _mm512_mask_add_epi8(A[k], (__mmask64)h0 | (__mmask64)h1 << 32, A[k], bit4);
        }
        transpose_store(A, rec);
        store_f16_scales(rows, o, (float *)(rec + 512));
    }
}

/* Q4_K: 8 records per super-block; S = d*sc and M = dmin*m per row. */
TGT static void pack_q4_k(const uint8_t *const rows[L], int64_t nb, uint8_t *rec)
{
    const __m512i m4 = _mm512_set1_epi8(15);
    for (int64_t s = 0; s < nb / 8; s++) {
        const size_t o = (size_t)s * sizeof(eng_block_q4_k);
        for (int j = 0; j < 8; j++, rec += REC) {
            if (j % 2 == 0)
                prefetch_rows(rows, o + 64 * (size_t)(j / 2));
            __m512i A[8];
            #pragma GCC unroll 16
            for (int k = 0; k < 8; k++) {
                __m512i v = load_pair(rows[k] + o + 16 + 32 * (j / 2),
                                      rows[k + 8] + o + 16 + 32 * (j / 2));
                A[k] = _mm512_and_si512(j & 1 ? _mm512_srli_epi16(v, 4) : v, m4);
            }
            transpose_store(A, rec);
        }
        float *base = (float *)(rec - 8 * REC + 512);
        #pragma GCC unroll 16
        for (int r = 0; r < L; r++) {
            const eng_block_q4_k *p = (const eng_block_q4_k *)(rows[r] + o);
            uint8_t sm[16];
            eng_q4k_unpack_scales(p->scales, sm);
            const float d = h2f(&p->d), dmin = h2f(&p->dmin);
            #pragma GCC unroll 16
            for (int j = 0; j < 8; j++) {
                base[j * (REC / 4) + r] = d * (float)sm[j];
                base[j * (REC / 4) + 16 + r] = dmin * (float)sm[8 + j];
            }
        }
    }
}

/* Q6_K: block k of a super-block is quarter c = k % 4 of half h = k / 4. */
TGT static void pack_q6_k(const uint8_t *const rows[L], int64_t nb, uint8_t *rec)
{
    const __m512i m4 = _mm512_set1_epi8(15), m3 = _mm512_set1_epi8(3);
    for (int64_t s = 0; s < nb / 8; s++) {
        const size_t o = (size_t)s * sizeof(eng_block_q6_k);
        for (int k8 = 0; k8 < 8; k8++, rec += REC) {
            if (k8 % 2 == 0)
                prefetch_rows(rows, o + 64 * (size_t)(k8 / 2));
            const int h = k8 / 4, c = k8 % 4;
            const size_t ol = o + 64 * h + 32 * (c & 1), oh = o + 128 + 32 * h;
            __m512i A[8];
            #pragma GCC unroll 16
            for (int k = 0; k < 8; k++) {
                __m512i lo = load_pair(rows[k] + ol, rows[k + 8] + ol);
                __m512i hi = load_pair(rows[k] + oh, rows[k + 8] + oh);
                lo = _mm512_and_si512(c >> 1 ? _mm512_srli_epi16(lo, 4) : lo, m4);
                hi = _mm512_and_si512(_mm512_srli_epi16(hi, 2 * c), m3);
                A[k] = _mm512_or_si512(lo, _mm512_slli_epi16(hi, 4));
            }
            transpose_store(A, rec);
        }
        float *base = (float *)(rec - 8 * REC + 512);
        #pragma GCC unroll 16
        for (int r = 0; r < L; r++) {
            const eng_block_q6_k *p = (const eng_block_q6_k *)(rows[r] + o);
            const float d = h2f(&p->d);
            for (int k8 = 0; k8 < 8; k8++) {
                base[k8 * (REC / 4) + r] = d * (float)p->scales[2 * k8];
                base[k8 * (REC / 4) + 16 + r] = d * (float)p->scales[2 * k8 + 1];
            }
        }
    }
}

/* ---- products ------------------------------------------------------------- */

/* The chunk's data: quants q + (b*N + t)*32, per-block arrays [b*N + t]. */
typedef struct chunk {
    const int8_t *q;
    const float *d, *sf;
    const int32_t *sn, *hn;
    const char *pf;       /* the next tile's bytes, pf_step per block (or NULL) */
    size_t pf_step;
} chunk;

TGT static AI __m512i bq(const int8_t *p)
{
    int32_t v;
    memcpy(&v, p, 4);
    return _mm512_set1_epi32(v);
}

/* 4 dwords j0..j0+3 of a block into s. */
TGT static AI __m512i dot4(__m512i s, const __m512i *w, const int8_t *q)
{
    s = _mm512_dpbusd_epi32(s, w[0], bq(q));
    s = _mm512_dpbusd_epi32(s, w[1], bq(q + 4));
    s = _mm512_dpbusd_epi32(s, w[2], bq(q + 8));
    return _mm512_dpbusd_epi32(s, w[3], bq(q + 12));
}

TGT static AI void compute(kind kd, int sh, const uint8_t *rec, int64_t nb, chunk x, float *Y,
                         int64_t ldy, __mmask16 m, const int N)
{
    __m512 acc[16];
#pragma GCC unroll 16
    for (int t = 0; t < N; t++)
        acc[t] = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; b++, rec += REC) {
        __m512i w[8];
        #pragma GCC unroll 16
        for (int j = 0; j < 8; j++)
            w[j] = _mm512_load_si512((const __m512i *)(rec + 64 * j));
        const __m512 S = _mm512_load_ps((const float *)(rec + 512));
        const __m512 M = _mm512_load_ps((const float *)(rec + 576));
        const int64_t i0 = b * N;
        if (x.pf) /* the next tile streams into L2 while this one computes */
            for (size_t k = 0; k < x.pf_step; k += 64)
                _mm_prefetch(x.pf + (size_t)b * x.pf_step + k, _MM_HINT_T1);
#pragma GCC unroll 16
        for (int t = 0; t < N; t++) {
            const int8_t *q = x.q + (i0 + t) * 32;
            const __m512 dx = _mm512_set1_ps(x.d[i0 + t]);
            __m512 f;
            if (kd == K_HALVES) {
                __m512i s0 = _mm512_slli_epi32(_mm512_set1_epi32(x.hn[2 * (i0 + t)]), 5);
                __m512i s1 = _mm512_slli_epi32(_mm512_set1_epi32(x.hn[2 * (i0 + t) + 1]), 5);
                s0 = dot4(s0, w, q);
                s1 = dot4(s1, w + 4, q + 16);
                f = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s1), M,
                                    _mm512_mul_ps(_mm512_cvtepi32_ps(s0), S));
            } else {
                __m512i s = kd == K_INT
                                ? _mm512_slli_epi32(_mm512_set1_epi32(x.sn[i0 + t]), sh)
                                : _mm512_setzero_si512();
                s = dot4(dot4(s, w, q), w + 4, q + 16);
                f = _mm512_mul_ps(_mm512_cvtepi32_ps(s), S);
                if (kd == K_MIN)
                    f = _mm512_fnmadd_ps(M, _mm512_set1_ps(x.sf[i0 + t]), f);
            }
            acc[t] = _mm512_fmadd_ps(f, dx, acc[t]);
        }
    }
#pragma GCC unroll 16
    for (int t = 0; t < N; t++)
        _mm512_mask_storeu_ps(Y + t * ldy, m, acc[t]);
}

typedef void (*compute_fn)(int sh, const uint8_t *rec, int64_t nb, chunk x, float *Y,
                           int64_t ldy, __mmask16 m);

#define INST(KD, N)                                                                          \
    TGT static void c_##KD##_##N(int sh, const uint8_t *rec, int64_t nb, chunk x, float *Y,    \
                               int64_t ldy, __mmask16 m)                                     \
    {                                                                                        \
        compute(KD, sh, rec, nb, x, Y, ldy, m, N);                                           \
    }
#define INST_ALL(KD)                                                                         \
    INST(KD, 1) INST(KD, 2) INST(KD, 3) INST(KD, 4) INST(KD, 5) INST(KD, 6) INST(KD, 7)     \
    INST(KD, 8) INST(KD, 9) INST(KD, 10) INST(KD, 11) INST(KD, 12) INST(KD, 13)             \
    INST(KD, 14) INST(KD, 15) INST(KD, 16)
#define TABLE(KD)                                                                            \
    {NULL, c_##KD##_1, c_##KD##_2, c_##KD##_3, c_##KD##_4, c_##KD##_5, c_##KD##_6,          \
     c_##KD##_7, c_##KD##_8, c_##KD##_9, c_##KD##_10, c_##KD##_11, c_##KD##_12,             \
     c_##KD##_13, c_##KD##_14, c_##KD##_15, c_##KD##_16}

INST_ALL(K_INT)
INST_ALL(K_MIN)
INST_ALL(K_HALVES)

static const compute_fn computers[3][17] = {TABLE(K_INT), TABLE(K_MIN), TABLE(K_HALVES)};

/* ---- driver ---------------------------------------------------------------- */

typedef void (*pack_fn)(const uint8_t *const rows[L], int64_t nb, uint8_t *rec);

TGT static void run(pack_fn pack, kind kd, int sh, const void *w, size_t rb, const eng_qx *x,
                  float *Y, int64_t ldy, int64_t r0, int64_t r1, void *scratch)
{
    uint8_t *rec = (uint8_t *)(((uintptr_t)scratch + 63) & ~(uintptr_t)63);
    const int64_t nb = x->n / 32;
    for (int64_t r = r0; r < r1; r += L) {
        const int nr = r1 - r < L ? (int)(r1 - r) : L;
        const uint8_t *rows[L];
        for (int i = 0; i < L; i++) /* rows past the end repeat the last one */
            rows[i] = (const uint8_t *)w + (size_t)(r + (i < nr ? i : nr - 1)) * rb;
        pack(rows, nb, rec);
        const __mmask16 m = (__mmask16)((1u << nr) - 1);
        /* the next 16 rows: this task's next tile or, most often, the next
         * task's, which the pool tends to give to this thread; prefetching
         * past the matrix is harmless */
        const char *next = (const char *)w + (size_t)(r + L) * rb;
        const size_t step = ((size_t)L * rb / (size_t)nb + 63) & ~(size_t)63;
        for (int64_t c = 0; c * x->kc < x->T; c++) {
            const int64_t base = c * x->kc * nb;
            const chunk ch = {x->q + base * 32, x->d + base, x->sf + base, x->sn + base,
                              x->hn + 2 * base, c == 0 ? next : NULL, step};
            computers[kd][eng_qx_chunk_rows(x, c)](sh, rec, nb, ch, Y + c * x->kc * ldy + r,
                                                     ldy, m);
        }
    }
}

#define GEMM(NAME, PACK, KD, SH)                                                             \
    TGT static void NAME(const void *w, size_t rb, const eng_qx *x, float *Y, int64_t ldy,     \
                       int64_t r0, int64_t r1, void *scratch)                                \
    {                                                                                        \
        run(PACK, KD, SH, w, rb, x, Y, ldy, r0, r1, scratch);                                \
    }

GEMM(gemm_q8_0, pack_q8_0, K_INT, 7)
GEMM(gemm_q4_0, pack_q4_0, K_INT, 3)
GEMM(gemm_q5_0, pack_q5_0, K_INT, 4)
GEMM(gemm_q4_k, pack_q4_k, K_MIN, 0)
GEMM(gemm_q6_k, pack_q6_k, K_HALVES, 5)

/* ---- float weights ---------------------------------------------------------- */

/* weight rows per register block; elements of a row per panel (f16/bf16
 * rows are widened a panel at a time into the thread's scratch, L1) */
enum { FR = 8, FP = 512 };
typedef enum { W_F32, W_F16, W_BF16 } wkind;

/* n f16/bf16 values at s widened exactly to f32 at d. */
TGT static AI void widen(wkind wk, const uint16_t *s, float *d, int64_t n)
{
    int64_t k = 0;
    for (; k + 16 <= n; k += 16)
        _mm512_storeu_ps(d + k, wk == W_F16 ? _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(s + k))) : _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(s + k))), 16)));
    for (; k < n; k++)
        d[k] = wk == W_F16 ? eng_fp16_to_fp32(s[k]) : eng_bf16_to_fp32(s[k]);
}

/* Y rows [0, nr) of the FR weight rows for every chunk of x: tokens in the
 * lanes, each weight broadcast from memory into an fma. */
TGT static AI void float_rows(wkind wk, const char *const rows[FR], int nr, const eng_xt *x,
                              float *Y, int64_t ldy, float *buf)
{
    const int64_t n = x->n, fp = n < FP ? n : FP; /* scratch: FR * fp floats */
    for (int64_t c = 0; c * x->kc < x->T; c++) {
        const float *xt = x->x + c * x->kc * n;
        __m512 acc[FR];
#pragma GCC unroll 8
        for (int r = 0; r < FR; r++)
            acc[r] = _mm512_setzero_ps();
        for (int64_t k0 = 0; k0 < n; k0 += FP) {
            const int64_t kn = n - k0 < FP ? n - k0 : FP;
            const float *wr[FR];
#pragma GCC unroll 8
            for (int r = 0; r < FR; r++) {
                if (wk == W_F32) {
                    wr[r] = (const float *)rows[r] + k0;
                } else {
                    widen(wk, (const uint16_t *)rows[r] + k0, buf + r * fp, kn);
                    wr[r] = buf + r * fp;
                }
            }
#pragma GCC unroll 2
            for (int64_t k = 0; k < kn; k++) {
                if (wk == W_F32 && c == 0 && k % 16 == 0) /* 8 streams: help the prefetcher */
#pragma GCC unroll 8
                    for (int r = 0; r < FR; r++)
                        _mm_prefetch((const char *)(wr[r] + k) + 512, _MM_HINT_T0);
                const __m512 xv = _mm512_load_ps(xt + (k0 + k) * 16);
#pragma GCC unroll 8
                for (int r = 0; r < FR; r++)
                    acc[r] = _mm512_fmadd_ps(_mm512_set1_ps(wr[r][k]), xv, acc[r]);
            }
        }
        float tmp[FR][16] __attribute__((aligned(64)));
#pragma GCC unroll 8
        for (int r = 0; r < FR; r++)
            _mm512_store_ps(tmp[r], acc[r]);
        const int64_t nc = x->T - c * x->kc < x->kc ? x->T - c * x->kc : x->kc;
        for (int64_t t = 0; t < nc; t++)
            for (int r = 0; r < nr; r++)
                Y[(c * x->kc + t) * ldy + r] = tmp[r][t];
    }
}

TGT static AI void run_f(wkind wk, const void *w, size_t rb, const eng_xt *x, float *Y,
                         int64_t ldy, int64_t r0, int64_t r1, void *scratch)
{
    float *buf = (float *)(((uintptr_t)scratch + 63) & ~(uintptr_t)63);
    for (int64_t r = r0; r < r1; r += FR) {
        const int nr = r1 - r < FR ? (int)(r1 - r) : FR;
        const char *rows[FR];
        for (int i = 0; i < FR; i++) /* rows past the end repeat the last one */
            rows[i] = (const char *)w + (size_t)(r + (i < nr ? i : nr - 1)) * rb;
        float_rows(wk, rows, nr, x, Y + r, ldy, buf);
    }
}

#define GEMM_F(NAME, WK)                                                                     \
    TGT static void NAME(const void *w, size_t rb, const eng_xt *x, float *Y, int64_t ldy,   \
                         int64_t r0, int64_t r1, void *scratch)                              \
    {                                                                                        \
        run_f(WK, w, rb, x, Y, ldy, r0, r1, scratch);                                        \
    }
GEMM_F(gemm_f32, W_F32)
GEMM_F(gemm_f16, W_F16)
GEMM_F(gemm_bf16, W_BF16)

const eng_gemm_kernels eng_gemm_avx512 = {
    .simd = ENG_SIMD_AVX512,
    .kc = 16,
    .gemm = {[ENG_TYPE_Q8_0] = gemm_q8_0, [ENG_TYPE_Q4_0] = gemm_q4_0,
             [ENG_TYPE_Q5_0] = gemm_q5_0, [ENG_TYPE_Q4_K] = gemm_q4_k,
             [ENG_TYPE_Q6_K] = gemm_q6_k},
    .kc_f = 16,
    .gemm_f = {[ENG_TYPE_F32] = gemm_f32, [ENG_TYPE_F16] = gemm_f16, [ENG_TYPE_BF16] = gemm_bf16},
};
