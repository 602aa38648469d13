/*
 * lowprec.h — a model's companion expert file: every routed expert of the
 * model in a second, lower-precision format, for mixed-precision expert
 * offloading (HOBBIT, EdgeMoE; docs/policies.md).
 *
 *   eng_lowprec_write(model, ENG_TYPE_Q4_0, "m.q4_0-experts.gguf", NULL, NULL, &err);
 *   eng_lowprec *lp; eng_lowprec_open(&lp, model, "m.q4_0-experts.gguf", &err);
 *   eng_lowprec_locate(lp, layer, expert, &w, &err);  // w: the low copy's slices
 *
 * The file is a GGUF holding, for every MoE layer, the model's stacked
 * expert tensors under the model's own names (blk.N.ffn_gate_exps.weight,
 * ..._up_exps, ..._down_exps, and the expert biases where the model has
 * them): the matrices requantized to the companion's type from the model's
 * own values (each row dequantized to f32 with the scalar reference, then
 * quantized with eng_quantize_row: bit for bit quantize(dequantize(row))),
 * the biases copied unchanged (f32). No other tensors.
 *
 * Keys that tie the companion to its model (all checked by open, each
 * mismatch an ENG_EINVAL naming the file, the key and both values):
 *   general.architecture            the model's
 *   moebench.lowprec.expert_count   n_expert
 *   moebench.lowprec.moe_layers     n_layer_moe
 *   moebench.lowprec.model_bytes    the model file's size
 *   moebench.lowprec.model_hash     FNV-1a 64 of the architecture, n_expert,
 *                                   and of every expert tensor its name,
 *                                   type, shape and first 256 data bytes
 *                                   (eng_lowprec_model_hash): another model
 *                                   with the same shapes still differs
 *   moebench.lowprec.type           the companion's ggml type name
 *   moebench.lowprec.model          the model's file name (for messages)
 * and every tensor must be present with the model's shape and the
 * companion's type (biases f32).
 *
 * Thread-safety: an open companion is immutable (a read-only mapping); any
 * number of threads may call locate. It must outlive every store using it;
 * the model must outlive it.
 */
#ifndef ENG_LOWPREC_H
#define ENG_LOWPREC_H

#include "engine/err.h"
#include "engine/model.h"
#include "engine/store.h"

#include <stdint.h>

typedef struct eng_lowprec eng_lowprec;

/* Progress of a write: done of total source bytes converted. */
typedef void (*eng_lowprec_progress_fn)(void *user, uint64_t done, uint64_t total);

/* Writes the companion of m in `type` (any type eng_quantize_row makes:
 * f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, iq4_nl, mxfp4, q2_K ...
 * q6_K, iq4_xs) to path (atomically, as the GGUF writer does). Errors:
 * ENG_EINVAL a dense model, or a matrix whose rows do not fit the type's
 * blocks (naming the tensor); ENG_EUNSUPPORTED a type the engine cannot
 * quantize to, or a model tensor it cannot dequantize; ENG_EIO. */
int eng_lowprec_write(const eng_model *m, int type, const char *path,
                      eng_lowprec_progress_fn progress, void *user, eng_err *err);

/* Opens path as m's companion, checking every key and tensor above. */
int eng_lowprec_open(eng_lowprec **out, const eng_model *m, const char *path, eng_err *err);
void eng_lowprec_free(eng_lowprec *lp);

const char *eng_lowprec_path(const eng_lowprec *lp);
/* The companion's matrix type (ggml id). */
int eng_lowprec_type(const eng_lowprec *lp);
/* Bytes of one low-precision expert of MoE layer `layer` (all its slices). */
uint64_t eng_lowprec_expert_bytes(const eng_lowprec *lp, int layer);

/* Like eng_expert_locate, for the low copy: pointers into the companion's
 * mapping, file offsets into the companion file, mat[i].type its type. */
int eng_lowprec_locate(const eng_lowprec *lp, int layer, int expert, eng_expert_weights *out,
                       eng_err *err);

/* EdgeMoE-style bit-width by importance: out[l * E + e] = 1 for the
 * floor(q * E) experts of each layer l with the fewest activations in
 * counts[l * E + e] (a profile: how often a trace routed to each expert),
 * ties to the lower expert id; 0 for the others. q in [0, 1]. For
 * eng_tiered_opts.lp_always. */
void eng_lowprec_importance_map(const uint64_t *counts, int n_layer, int n_expert, double q,
                                uint8_t *out);

/* The fingerprint stored as moebench.lowprec.model_hash. */
uint64_t eng_lowprec_model_hash(const eng_model *m);

#endif
