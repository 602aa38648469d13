/*
 * ref_forward.h — a deliberately naive reference forward pass for the
 * engine tests: plain loops, double accumulation, no threads, no SIMD, its
 * own dequantization (the spec decoder of spec_formats.c, not engine/), the
 * whole sequence recomputed with full causal attention (no KV cache).
 * Architecture behaviour is written out per name here, independently of
 * engine/arch.c.
 *
 * act: model what the engine's decode kernels do to their input: each
 * matvec's input vector is converted to the weight type's partner form
 * (llama.cpp's vec_dot_type: Q8_0 / Q8_1 / Q8_K blocks, f16, bf16;
 * see partner_image), then the dot is exact. The engine does this
 * everywhere in decode (REF_ACT_Q8); in prefill (REF_ACT_PREFILL) for the
 * block formats, which it multiplies in integers (all of them: gemm.h, the
 * same partner forms as decode), for F16/BF16 (x rounded to them) and for
 * the output head of the last position, while F32 runs float products on
 * f32 inputs.
 */
enum { REF_ACT_EXACT = 0, REF_ACT_Q8, REF_ACT_PREFILL };
#ifndef TST_REF_FORWARD_H
#define TST_REF_FORWARD_H

#include "engine/model.h"

#include <stdbool.h>
#include <stdint.h>

/* Logits [n_vocab] (malloc'd into *out) of the last of tokens[0..n). */
int ref_forward(const eng_model *m, const int32_t *tokens, int64_t n, int act,
                double **out);

/* ref_forward, and *min_tie: how close any quantized activation v (in
 * quantization steps) came to a rounding tie (x.5), relative to |v|
 * (infinity without any): an implementation whose activations differ from
 * the reference's by a relative e rounds it to the other level only when
 * min_tie < e. */
int ref_forward_tie(const eng_model *m, const int32_t *tokens, int64_t n, int act, double **out,
                    double *min_tie);

/* Routing of every (token, layer) as the reference sees it: ids[(t*L + l)*k + j]. */
int ref_routing(const eng_model *m, const int32_t *tokens, int64_t n, int32_t *ids);

/* max_i |a_i - b_i| / max_i |b_i| */
double ref_rel_err(const float *a, const double *b, int64_t n);

/* The bound on ref_rel_err for the logits of a file of mkmodel type `type`
 * (test_forward.c's header derives it): decode against REF_ACT_Q8, or
 * prefill against REF_ACT_PREFILL, with ref_forward_tie's min_tie. 1e-4 for
 * f32/f16/bf16, 1e-3 for the block types; 2e-2 when an activation came
 * within 4e-7 of a rounding tie, 1e-2 for f16 decode on kernels that sum in
 * f16 (AVX512-FP16). */
double ref_bound(const char *type, bool decode, double min_tie);

#endif
