/*
 * spec_formats.h — test oracle: every supported block format decoded from
 * its bytes in double precision, written from the spec's formulas
 * (reference gguf-moe.md §2, gguf-moe-2.md §4.2; docs/engine.md) and
 * independent of engine/'s kernels and structs.
 *
 * An element is y = a - b: a the scale part (d*sc*q, or d*value for the
 * table formats), b the min part (dmin*m for Q2_K/Q4_K/Q5_K, -m for
 * Q4_1/Q5_1, 0 otherwise). Kernels sum the two parts apart, so the error
 * bounds of the tests use |a| + |b|; dequantization must give y rounded
 * once to f32 (every product involved is exact or rounds once).
 */
#ifndef TST_SPEC_FORMATS_H
#define TST_SPEC_FORMATS_H

#include <stdbool.h>
#include <stdint.h>

/* Whether spec_row knows the type (every block format the engine supports). */
bool spec_known(int type);
/* Row of n elements (a multiple of the block) of `type` at p into a[n], b[n]. */
void spec_row(int type, const uint8_t *p, int64_t n, double *a, double *b);
/* fp16 bits -> double, exactly. */
double spec_half(uint16_t h);
/* The offsets of the fp16 scale fields in a block, for tests that fill
 * blocks with random bytes but need finite scales; *n gets the count
 * (MXFP4's scale is the byte at 0: *n = 0, *e8m0 = true). */
const int *spec_half_fields(int type, int *n, bool *e8m0);

#endif
