/*
 * spec_formats.c — see spec_formats.h. Byte offsets are the spec's layout
 * tables; element order and bit positions its dequantization formulas.
 */
#include "tests/engine/spec_formats.h"

#include <math.h>
#include <string.h>

enum { F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q5_0 = 6, Q5_1 = 7, Q8_0 = 8, Q2_K = 10, Q3_K = 11,
       Q4_K = 12, Q5_K = 13, Q6_K = 14, IQ4_NL = 20, IQ4_XS = 23, BF16 = 30, MXFP4 = 39 };

static const int iq4nl[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};
/* E2M1 values, doubled (the scale carries the missing 1/2) */
static const double fp4x2[16] = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};

double spec_half(uint16_t h)
{
    int s = h >> 15, e = (h >> 10) & 31, f = h & 1023;
    double v = e == 0 ? ldexp(f, -24) : e == 31 ? (f ? NAN : INFINITY) : ldexp(f + 1024, e - 25);
    return s ? -v : v;
}

static double half_at(const uint8_t *p) { return spec_half((uint16_t)(p[0] | p[1] << 8)); }
static uint32_t u32_at(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Low nibble of qs[j] is element j, high nibble element j + 16. */
static int nib(const uint8_t *qs, int j) { return j < 16 ? qs[j] & 15 : qs[j - 16] >> 4; }

static void block32(int type, const uint8_t *p, double *a, double *b)
{
    for (int j = 0; j < 32; j++) {
        b[j] = 0;
        switch (type) {
        case Q8_0: a[j] = (int8_t)p[2 + j] * half_at(p); break;
        case Q4_0: a[j] = (nib(p + 2, j) - 8) * half_at(p); break;
        case Q4_1:
            a[j] = nib(p + 4, j) * half_at(p);
            b[j] = -half_at(p + 2);
            break;
        case Q5_0: a[j] = ((nib(p + 6, j) | (int)((u32_at(p + 2) >> j) & 1) << 4) - 16) * half_at(p); break;
        case Q5_1:
            a[j] = (nib(p + 8, j) | (int)((u32_at(p + 4) >> j) & 1) << 4) * half_at(p);
            b[j] = -half_at(p + 2);
            break;
        case IQ4_NL: a[j] = half_at(p) * iq4nl[nib(p + 2, j)]; break;
        case MXFP4: a[j] = fp4x2[nib(p + 1, j)] * ldexp(1.0, p[0] - 128); break;
        }
    }
}

/* K-quant sub-block scales/mins: get_scale_min_k4 of the spec. */
static void k4(const uint8_t *s, int j, int *sc, int *m)
{
    *sc = j < 4 ? s[j] & 63 : (s[j + 4] & 15) | ((s[j - 4] >> 6) << 4);
    *m = j < 4 ? s[j + 4] & 63 : (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
}

static void block256(int type, const uint8_t *p, double *a, double *b)
{
    for (int e = 0; e < 256; e++) {
        /* half g (128), quarter t, l within 32: the 2-bit layouts */
        const int g = e / 128, t = (e / 32) % 4, l = e % 32;
        b[e] = 0;
        if (type == Q2_K) {   /* scales[16]@0, qs[64]@16, d@80, dmin@82 */
            const uint8_t sc = p[e / 16];
            a[e] = half_at(p + 80) * (sc & 15) * ((p[16 + 32 * g + l] >> (2 * t)) & 3);
            b[e] = half_at(p + 82) * (sc >> 4);
        } else if (type == Q3_K) {   /* hmask@0, qs@32, scales[12]@96, d@108 */
            const uint8_t *s = p + 96;
            const int k = e / 16 % 4, w = e / 64;   /* S[16w + k]... the spec's four rows */
            int S;
            if (w == 0) S = (s[k] & 15) | ((s[8 + k] & 3) << 4);
            else if (w == 1) S = (s[4 + k] & 15) | (((s[8 + k] >> 2) & 3) << 4);
            else if (w == 2) S = (s[k] >> 4) | (((s[8 + k] >> 4) & 3) << 4);
            else S = (s[4 + k] >> 4) | (((s[8 + k] >> 6) & 3) << 4);
            const int q = ((p[32 + 32 * g + l] >> (2 * t)) & 3) - ((p[l] >> (4 * g + t)) & 1 ? 0 : 4);
            a[e] = half_at(p + 108) * (S - 32) * q;
        } else if (type == Q4_K || type == Q5_K) {
            /* Q4_K: d@0, dmin@2, scales@4, qs@16; Q5_K: qh[32]@16, qs@48 */
            int sc, m;
            k4(p + 4, e / 32, &sc, &m);
            const int c = e / 64, hi = (e / 32) % 2;
            const uint8_t *qs = p + (type == Q4_K ? 16 : 48);
            int q = hi ? qs[32 * c + l] >> 4 : qs[32 * c + l] & 15;
            if (type == Q5_K)
                q += (p[16 + l] & (1 << (2 * c + hi))) ? 16 : 0;
            a[e] = half_at(p) * sc * q;
            b[e] = half_at(p + 2) * m;
        } else if (type == Q6_K) {   /* ql@0, qh@128, scales@192, d@208 */
            const uint8_t *ql = p + 64 * g, *qh = p + 128 + 32 * g;
            const int lo = t == 0 ? ql[l] & 15 : t == 1 ? ql[l + 32] & 15 : t == 2 ? ql[l] >> 4 : ql[l + 32] >> 4;
            const int q = (lo | ((qh[l] >> (2 * t)) & 3) << 4) - 32;
            a[e] = half_at(p + 208) * (int8_t)p[192 + e / 16] * q;
        } else if (type == IQ4_XS) {   /* d@0, scales_h@2, scales_l[4]@4, qs[128]@8 */
            const int ib = e / 32, j = e % 32;
            const int ls = ((p[4 + ib / 2] >> (4 * (ib % 2))) & 15) | (((p[2] | p[3] << 8) >> (2 * ib)) & 3) << 4;
            a[e] = half_at(p) * (ls - 32) * iq4nl[nib(p + 8 + 16 * ib, j)];
        }
    }
}

bool spec_known(int type)
{
    switch (type) {
    case F32: case F16: case BF16: case Q4_0: case Q4_1: case Q5_0: case Q5_1: case Q8_0:
    case IQ4_NL: case MXFP4: case Q2_K: case Q3_K: case Q4_K: case Q5_K: case Q6_K: case IQ4_XS:
        return true;
    default:
        return false;
    }
}

static int block_bytes(int type)
{
    switch (type) {
    case Q4_0: case IQ4_NL: return 18;
    case Q4_1: return 20;
    case Q5_0: return 22;
    case Q5_1: return 24;
    case Q8_0: return 34;
    case MXFP4: return 17;
    case Q2_K: return 84;
    case Q3_K: return 110;
    case Q4_K: return 144;
    case Q5_K: return 176;
    case Q6_K: return 210;
    case IQ4_XS: return 136;
    default: return 0;
    }
}

void spec_row(int type, const uint8_t *p, int64_t n, double *a, double *b)
{
    if (type == F32 || type == F16 || type == BF16) {
        for (int64_t j = 0; j < n; j++) {
            b[j] = 0;
            if (type == F32) {
                float f;
                memcpy(&f, p + 4 * j, 4);
                a[j] = f;
            } else if (type == F16) {
                a[j] = half_at(p + 2 * j);
            } else {
                uint32_t u = (uint32_t)(p[2 * j] | p[2 * j + 1] << 8) << 16;
                float f;
                memcpy(&f, &u, 4);
                a[j] = f;
            }
        }
        return;
    }
    const int blck = type == Q2_K || type == Q3_K || type == Q4_K || type == Q5_K || type == Q6_K ||
                     type == IQ4_XS ? 256 : 32;
    for (int64_t i = 0; i < n / blck; i++, p += block_bytes(type))
        if (blck == 32)
            block32(type, p, a + 32 * i, b + 32 * i);
        else
            block256(type, p, a + 256 * i, b + 256 * i);
}

const int *spec_half_fields(int type, int *n, bool *e8m0)
{
    static const int o0[] = {0}, o02[] = {0, 2}, o80[] = {80, 82}, o108[] = {108}, o208[] = {208};
    *e8m0 = type == MXFP4;
    switch (type) {
    case Q4_1: case Q5_1: case Q4_K: case Q5_K: *n = 2; return o02;
    case Q2_K: *n = 2; return o80;
    case Q3_K: *n = 1; return o108;
    case Q6_K: *n = 1; return o208;
    case MXFP4: *n = 0; return o0;
    default: *n = 1; return o0;
    }
}
