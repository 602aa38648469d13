/*
 * test_glm4moe.c — the glm4moe architecture (GLM-4.5/4.5-Air/4.6: partial
 * rotary, q/k/v biases, optional per-head QK-norm, post_attention_norm,
 * dense leading layers, sigmoid routing with a selection bias, one shared
 * expert, a next-token-prediction layer that is checked and never run)
 * against independent computations:
 *   - the naive reference (ref_forward.c reads the keys itself), with and
 *     without QK-norm, within 1e-4 (q8_0 decode: 2e-2, see test_gpt_oss.c);
 *   - prefill against token by token, 1/2/3 threads bit for bit;
 *   - routing events: MoE layers only, the reference's experts;
 *   - hostile files: each missing or mis-shaped part is a clear error.
 * The offloading invariants are in test_offload.c.
 */
#include "engine/hooks.h"
#include "engine/session.h"
#include "tests/engine/gguf_edit.h"
#include "tests/util/model_util.h"
#include "tests/engine/ref_forward.h"
#include "tests/test.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { NV = 512, NT = 24 };

static void tokens(int32_t *t, int n, int mul)
{
    for (int i = 0; i < n; i++)
        t[i] = (i * mul + 5) % NV;
}

/* The preset without its QK-norm tensors: GLM-4.5-Air's form. */
static const char *without_qk_norm(const char *src)
{
    tu_edit ed[10];
    static char names[10][48];
    for (int l = 0; l < 5; l++)
        for (int q = 0; q < 2; q++) {
            char *nm = names[2 * l + q];
            snprintf(nm, sizeof names[0], "blk.%d.attn_%c_norm.weight", l, q ? 'k' : 'q');
            ed[2 * l + q] = (tu_edit){TU_DROP_TENSOR, nm, 0};
        }
    return tu_gguf_edit(src, "air.gguf", ed, 10);
}

/* Decode and prefill against the reference, which models decode's
 * conversion of each matvec input to the weight type's partner form; the
 * bounds of test_forward.c (ref_bound). */
static void check_ref(const char *path, const char *what, const char *type)
{
    eng_model *m = tu_open(path);
    int32_t t[NT];
    tokens(t, NT, 41);
    eng_session *s = tu_session(m, 2, 64, 0);
    eng_err e = {0};
    double *ref = NULL, tie;
    REQUIRE(ref_forward_tie(m, t, NT, REF_ACT_Q8, &ref, &tie) == 0);
    for (int i = 0; i < NT; i++)
        REQUIRE_MSG(eng_session_decode(s, t[i], &e) == 0, "%s", e.msg);
    double dec = ref_rel_err(eng_session_logits(s), ref, NV);
    free(ref);
    REQUIRE(ref_forward(m, t, NT, REF_ACT_PREFILL, &ref) == 0);
    eng_session_reset(s);
    REQUIRE_MSG(eng_session_eval(s, t, NT, &e) == 0, "%s", e.msg);
    double pre = ref_rel_err(eng_session_logits(s), ref, NV);
    printf("%s: decode %.3g, prefill %.3g, closest tie %.2g\n", what, dec, pre, tie);
    CHECK_MSG(dec <= ref_bound(type, true, tie), "%s decode: rel err %g", what, dec);
    CHECK_MSG(pre <= ref_bound(type, false, tie), "%s prefill: rel err %g", what, pre);
    free(ref);
    eng_session_free(s);
    eng_model_free(m);
}

TEST(ref_tiny_glm4moe)
{
    const char *f32 = tu_write_preset("tiny-glm4moe", "f32", "glm.gguf");
    check_ref(f32, "tiny-glm4moe f32", "f32");
    check_ref(tu_write_preset("tiny-glm4moe", "bf16", "glm16.gguf"), "tiny-glm4moe bf16", "bf16");
    check_ref(tu_write_preset("tiny-glm4moe", "q8_0", "glm8.gguf"), "tiny-glm4moe q8_0", "q8_0");
    eng_model *m = tu_open(without_qk_norm(f32));
    CHECK(eng_model_hparams(m)->n_rot == 16 && eng_model_hparams(m)->head_dim == 32);
    eng_model_free(m);
    check_ref(without_qk_norm(f32), "tiny-glm4moe without qk-norm", "f32");
}

TEST(prefill_threads_bit_identical)
{
    const char *path = tu_write_preset("tiny-glm4moe", "f32", "p.gguf");
    int32_t t[NT];
    tokens(t, NT, 67);
    float *dec = tu_decode_all(path, t, NT), *last = dec + (NT - 1) * NV;
    eng_model *m = tu_open(path);
    float out[3][NV];
    eng_err e = {0};
    for (int c = 0; c < 3; c++) {
        eng_session *s = tu_session(m, c + 1, 64, 0);
        REQUIRE(eng_session_eval(s, t, NT, &e) == 0);
        memcpy(out[c], eng_session_logits(s), sizeof out[c]);
        eng_session_free(s);
    }
    double d = tu_max_diff(out[0], last, NV);
    CHECK_MSG(d <= 1e-5, "prefill vs decode %g", d);
    CHECK_MSG(!memcmp(out[0], out[1], sizeof out[0]) && !memcmp(out[0], out[2], sizeof out[0]),
              "1, 2 and 3 threads differ");
    eng_model_free(m);
}

typedef struct seen {
    int n;
    int32_t ids[NT * 3][4];
    int layer[NT * 3], model_layer[NT * 3];
} seen;

static void on_routing(void *user, const eng_routing_event *ev)
{
    seen *s = user;
    if (s->n >= NT * 3)
        return;
    memcpy(s->ids[s->n], ev->experts, 4 * sizeof(int32_t));
    s->layer[s->n] = ev->layer;
    s->model_layer[s->n++] = ev->model_layer;
}

/* 5 blocks in the file: dense layer 0, MoE layers 1-3, the MTP layer 4.
 * Routing events come from the 3 MoE layers that run. */
TEST(mtp_layer_skipped_routing_matches_the_reference)
{
    eng_model *m = tu_open(tu_write_preset("tiny-glm4moe", "f32", "r.gguf"));
    const eng_hparams *hp = eng_model_hparams(m);
    CHECK_EQ_INT(hp->n_layer_file, 5);
    CHECK_EQ_INT(hp->n_layer, 4);
    CHECK_EQ_INT(hp->n_layer_dense, 1);
    CHECK_EQ_INT(hp->n_layer_moe, 3);
    seen *sn = tst_alloc(sizeof *sn);
    eng_hooks h = {.user = sn, .routing = on_routing};
    eng_session *s = tu_session(m, 1, 64, 0);
    eng_session_set_hooks(s, &h);
    int32_t t[NT];
    tokens(t, NT, 13);
    eng_err e = {0};
    for (int i = 0; i < NT; i++)
        REQUIRE(eng_session_decode(s, t[i], &e) == 0);
    CHECK_EQ_INT(sn->n, NT * 3);
    int32_t *ref = tst_alloc((size_t)NT * 3 * 4 * sizeof *ref);
    REQUIRE(ref_routing(m, t, NT, ref) == 0);
    int differ = 0;
    for (int i = 0; i < sn->n; i++) {
        CHECK_EQ_INT(sn->layer[i], i % 3);
        CHECK_EQ_INT(sn->model_layer[i], i % 3 + 1);
        differ += memcmp(sn->ids[i], ref + 4 * i, 4 * sizeof *ref) != 0;
    }
    CHECK_MSG(differ == 0, "%d of %d routings differ from the reference", differ, sn->n);
    eng_session_free(s);
    eng_model_free(m);
}

/* ---- hostile files ------------------------------------------------------------ */

TEST(bad_glm4moe_files_are_clear_errors)
{
    const char *src = tu_write_preset("tiny-glm4moe", "f32", "good.gguf");
    eng_model_free(tu_open(tu_gguf_edit(src, "copy.gguf", NULL, 0)));
    tu_open_fails(src, (tu_edit[]){{TU_DROP_TENSOR, "blk.2.exp_probs_b.bias", 0}}, 1, ENG_EFORMAT,
                  "'blk.2.exp_probs_b.bias' is missing");
    tu_open_fails(src, (tu_edit[]){{TU_DROP_TENSOR, "blk.1.ffn_up_shexp.weight", 0}}, 1,
                  ENG_EFORMAT, "'blk.1.ffn_up_shexp.weight' is missing");
    tu_open_fails(src, (tu_edit[]){{TU_DROP_TENSOR, "blk.0.attn_k_norm.weight", 0}}, 1,
                  ENG_EFORMAT, "attn_k_norm");
    tu_open_fails(src, (tu_edit[]){{TU_DROP_TENSOR, "blk.4.nextn.eh_proj.weight", 0}}, 1,
                  ENG_EFORMAT, "'blk.4.nextn.eh_proj.weight' is missing");
    tu_open_fails(src, (tu_edit[]){{TU_DROP_TENSOR, "blk.4.exp_probs_b.bias", 0}}, 1,
                  ENG_EFORMAT, "'blk.4.exp_probs_b.bias' is missing");
    tu_open_fails(src, (tu_edit[]){{TU_DROP_KEY, "glm4moe.expert_shared_count", 0}}, 1,
                  ENG_EFORMAT, "key 'glm4moe.expert_shared_count' is missing");
    tu_open_fails(src, (tu_edit[]){{TU_SET_U32, "glm4moe.rope.dimension_count", 48}}, 1,
                  ENG_EFORMAT, "48 is not valid for head_dim 32");
    tu_open_fails(src, (tu_edit[]){{TU_SET_U32, "glm4moe.nextn_predict_layers", 5}}, 1,
                  ENG_EFORMAT, "must be below block_count 5");
    tu_open_fails(src, (tu_edit[]){{TU_SET_U32, "glm4moe.leading_dense_block_count", 9}}, 1,
                  ENG_EFORMAT, "9 dense layers, the model runs 4");
}
