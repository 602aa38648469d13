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

#include "engine/arch.h"
#include "engine/err.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct eng_model eng_model;

/* The most experts a token may select (expert_used_count): the forward
 * pass keeps per-token routing in arrays of this size. */
#define ENG_MAX_EXPERT_USED 64
/* The most expert groups (expert_group_count) group-limited routing takes. */
#define ENG_MAX_EXPERT_GROUPS 64

/* RoPE as ggml computes it (ggml_rope_ext with YaRN; reference spec
 * part 2 §0.3). Without YaRN: freq_scale 1, ext_factor 0, attn_factor 1,
 * which leaves plain RoPE bit for bit. */
typedef struct eng_rope_params {
    int64_t n_rot;           /* rope.dimension_count: rotated dims per head  */
    float base;              /* rope.freq_base (default 10000)               */
    float freq_scale;        /* 1 / rope.scaling.factor (1: no scaling)      */
    float ext_factor;        /* 1 for YaRN, else 0                           */
    float attn_factor;       /* magnitude of cos/sin (ggml's mscale)         */
    float corr_dims[2];      /* YaRN ramp ends, in rotated pairs             */
    float yarn_log_mul;      /* deepseek2's mscale_all_dim (0: none)         */
    int64_t n_ctx_orig;      /* rope.scaling.original_context_length         */
} eng_rope_params;

/* Multi-head latent attention (deepseek2; reference spec part 2 §1). */
typedef struct eng_mla_params {
    int64_t q_lora_rank;     /* attention.q_lora_rank R_q; 0: q = W_q h     */
    int64_t kv_lora_rank;    /* attention.kv_lora_rank R_kv: the latent     */
    int64_t dk;              /* per-head query/key width, nope + rope
                                (key_length_mla; key_length in legacy files) */
    int64_t dv;              /* per-head value width (value_length_mla)     */
    int64_t nope;            /* dk - n_rot: the part without RoPE           */
    bool absorbed;           /* attn_k_b/attn_v_b: the KV cache holds the
                                latent + k_pe per token (R_kv + n_rot), not
                                per head; else attn_kv_b (legacy): per-head
                                K and V, as multi-head attention            */
} eng_mla_params;

/* Hyper-parameters, as read from `{arch}.*` keys (reference spec §3). */
typedef struct eng_hparams {
    char arch[32];           /* general.architecture                         */
    int64_t n_layer;         /* layers that run                              */
    int64_t n_layer_file;    /* block_count: n_layer + the next-token-prediction
                                layers a file may append (loaded, checked,
                                never run)                                   */
    int64_t n_layer_dense;   /* leading layers with a dense FFN (all of them in
                                a model without experts)                     */
    int64_t n_layer_moe;     /* MoE layers = n_layer - n_layer_dense: model
                                layers n_layer_dense .. n_layer - 1, numbered
                                0 .. n_layer_moe - 1 by the expert store,
                                routing events and traces                    */
    int64_t n_ctx_train;     /* context_length                               */
    int64_t n_embd;          /* embedding_length                             */
    int64_t n_head;          /* attention.head_count                         */
    int64_t n_head_kv;       /* attention.head_count_kv (default n_head)     */
    int64_t head_dim;        /* attention.key_length (default n_embd/n_head) */
    int64_t head_dim_v;      /* attention.value_length (default head_dim)    */
    int64_t n_rot;           /* rope.dimension_count (default head_dim)      */
    int64_t n_vocab;         /* token_embd ne[1]                             */
    int64_t n_expert;        /* expert_count (0: dense FFN)                  */
    int64_t n_expert_used;   /* expert_used_count, k                         */
    int64_t n_ff;            /* feed_forward_length (dense width; 0 if absent) */
    int64_t n_ff_exp;        /* routed expert FFN width                      */
    int64_t n_ff_shexp;      /* shared expert width, else 0                  */
    float eps;               /* attention.layer_norm_rms_epsilon             */
    float rope_base;         /* rope.freq_base (default 10000)               */
    eng_rope_params rope;    /* the whole RoPE, rope.n_rot == n_rot          */
    float kq_scale;          /* attention score scale (1/sqrt(head_dim))     */
    eng_gating gating;       /* router: how logits select and weigh experts  */
    bool expert_weights_norm;/* renormalise the k weights to sum 1           */
    float expert_weights_scale; /* multiply the k weights (0 or 1: not)      */
    int64_t n_group;         /* expert groups for selection (<= 1: none)     */
    int64_t n_group_used;    /* groups a token may select from               */
    bool output_tied;        /* no `output` tensor: logits use token_embd    */
    eng_mla_params mla;      /* deepseek2 only                               */
    int64_t n_swa;           /* attention.sliding_window: a window layer's
                                query sees the last n_swa positions (0: no
                                window layers)                               */
    int64_t swa_pattern;     /* layer il has the window iff il % pattern <
                                pattern - 1 (sliding_window_pattern, 2)      */
    eng_rope_params rope_swa;/* RoPE of the window layers (rope.freq_base_swa) */
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
    /* Read the whole file into private anonymous memory at the mapping's
     * addresses, asking for transparent huge pages (MADV_HUGEPAGE), so that
     * nothing stays mapped from the page cache's 4 KiB pages. Decode streams
     * every weight it uses once per token; with 2 MiB pages it pays a
     * fraction of the TLB misses (docs/performance.md: decode 1.15-1.27x
     * faster on olmoe-1b-7b q8_0). Costs the file's size in RAM, not shared with
     * the page cache, and one read of the file at open; implies prefault and
     * private_dense. */
    bool in_ram;
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

/* Bytes of the session's KV cache (f32) for a context of n_ctx tokens, as
 * the architecture's attention lays it out (attn_impl.h); a sliding-window
 * layer counts its window (a session adds n_batch - 1 rows of slack). */
uint64_t eng_model_kv_bytes(const eng_model *m, int64_t n_ctx);

/* Weight elements one token multiplies with in the layers (attention,
 * router, k routed experts, shared expert or dense FFN), and in the output
 * head. 2 * these is the FLOP count of a token (attention scores aside). */
uint64_t eng_model_layer_params(const eng_model *m);
uint64_t eng_model_head_params(const eng_model *m);

/* The GGUF handle (for the tokenizer, which reads its metadata). */
struct eng_gguf;
const struct eng_gguf *eng_model_gguf(const eng_model *m);

#endif
