/*
 * model.h — a GGUF MoE model opened for inference: hyper-parameters from the
 * file's metadata, every tensor looked up and its type and shape checked.
 *
 *   eng_model *m; eng_err e;
 *   if (eng_model_open(&m, "olmoe.gguf", NULL, &e)) fprintf(stderr, "%s\n", e.msg);
 *   const eng_hparams *hp = eng_model_hparams(m);
 *
 * Supported `general.architecture` values: llama (Mixtral; also dense llama
 * when expert_count is 0 or absent), qwen2moe, qwen3moe, olmoe. Errors, each
 * naming the file and the key or tensor:
 *   ENG_EIO          the file cannot be read
 *   ENG_EFORMAT      malformed file, missing key or tensor, wrong shape
 *                    ("m.gguf: tensor 'blk.2.ffn_gate_exps.weight': shape
 *                    {64,32,8}, expected {64,128,8}")
 *   ENG_EUNSUPPORTED an architecture or tensor type the engine cannot run
 *
 * The weights stay in the read-only mapping of the file (no copy). The model
 * is immutable after open: any number of sessions (session.h) may share it
 * from any threads. eng_model_free must come after every session and store
 * using it is freed.
 */
#ifndef ENG_MODEL_H
#define ENG_MODEL_H

#include "engine/err.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct eng_model eng_model;

/* Hyper-parameters, as read from `{arch}.*` keys (reference spec §3). */
typedef struct eng_hparams {
    char arch[32];           /* general.architecture                         */
    int64_t n_layer;         /* block_count                                  */
    int64_t n_ctx_train;     /* context_length                               */
    int64_t n_embd;          /* embedding_length                             */
    int64_t n_head;          /* attention.head_count                         */
    int64_t n_head_kv;       /* attention.head_count_kv (default n_head)     */
    int64_t head_dim;        /* attention.key_length (default n_embd/n_head) */
    int64_t n_rot;           /* rope.dimension_count (default head_dim)      */
    int64_t n_vocab;         /* token_embd ne[1]                             */
    int64_t n_expert;        /* expert_count (0: dense FFN)                  */
    int64_t n_expert_used;   /* expert_used_count, k                         */
    int64_t n_ff;            /* feed_forward_length (dense width; 0 if absent) */
    int64_t n_ff_exp;        /* routed expert FFN width                      */
    int64_t n_ff_shexp;      /* shared expert width (qwen2moe), else 0       */
    float eps;               /* attention.layer_norm_rms_epsilon             */
    float rope_base;         /* rope.freq_base (default 10000)               */
    bool output_tied;        /* no `output` tensor: logits use token_embd    */
} eng_hparams;

typedef struct eng_model_opts {
    /* Map every page of the file before returning (madvise
     * MADV_POPULATE_READ, else one read per page), so that the first
     * forward pass does not pay the page faults: what llama-bench's warm-up
     * run achieves. Needs the file to fit in RAM; off by default. */
    bool prefault;
    /* Read every byte outside the routed experts' tensors (header, dense
     * weights, norms, routers, embeddings, shared experts) into private
     * anonymous memory at the same addresses, so that after open only the
     * expert tensors remain mapped from the file. For a tiered store with
     * the file tier, which reads experts with pread and never through the
     * mapping: the file shrinking under a running generation is then an
     * ENG_EIO from the store's read, never a SIGBUS. Costs the dense bytes
     * in RAM (anonymous) and one read of them at open. */
    bool private_dense;
} eng_model_opts;

/* opts may be NULL (defaults). */
int eng_model_open(eng_model **out, const char *path, const eng_model_opts *opts,
                   eng_err *err);
void eng_model_free(eng_model *m);

const eng_hparams *eng_model_hparams(const eng_model *m);
const char *eng_model_path(const eng_model *m);

/* Bytes of one routed expert as stored (gate + up + down slices of `layer`);
 * 0 for a dense model. Layers may differ in type, hence the argument. */
uint64_t eng_model_expert_bytes(const eng_model *m, int layer);

/* Bytes of weights a decode step reads for one token with the memory store:
 * attention, router, k experts and shared expert per layer, output norm and
 * head, one embedding row. What docs/performance.md divides by bandwidth. */
uint64_t eng_model_decode_bytes(const eng_model *m);

/* Weight elements one token multiplies with in the layers (attention,
 * router, k routed experts, shared expert or dense FFN), and in the output
 * head. 2 * these is the FLOP count of a token (attention scores aside). */
uint64_t eng_model_layer_params(const eng_model *m);
uint64_t eng_model_head_params(const eng_model *m);

/* The GGUF handle (for the tokenizer, which reads its metadata). */
struct eng_gguf;
const struct eng_gguf *eng_model_gguf(const eng_model *m);

#endif
