/*
 * test_model.c — opening models: hyper-parameters from metadata and the
 * errors for broken files (each built here with the GGUF writer), also
 * through `moebench generate` (exit status 2, one line); the prefault and
 * in-RAM ways of holding the file.
 */
#include "engine/model.h"
#include "engine/session.h"
#include "tests/util/model_util.h"
#include "tests/test.h"

#include <string.h>
#include <unistd.h>

static int open_err(const char *path, eng_err *e)
{
    eng_model *m = NULL;
    int rc = eng_model_open(&m, path, NULL, e);
    if (!rc)
        eng_model_free(m);
    return rc;
}

TEST(hparams_from_metadata)
{
    eng_model *m = tu_open(tu_write_preset("tiny-qwen3moe", "f32", "q3.gguf"));
    const eng_hparams *hp = eng_model_hparams(m);
    CHECK_EQ_STR(hp->arch, "qwen3moe");
    CHECK_EQ_INT(hp->n_layer, 4);
    CHECK_EQ_INT(hp->n_embd, 64);
    CHECK_EQ_INT(hp->head_dim, 32); /* key_length, not n_embd / n_head */
    CHECK_EQ_INT(hp->n_rot, 32);
    CHECK_EQ_INT(hp->n_expert, 16);
    CHECK_EQ_INT(hp->n_expert_used, 4);
    CHECK_EQ_INT(hp->n_ff_exp, 32);
    CHECK_EQ_INT(hp->n_vocab, 512);
    CHECK(hp->output_tied == false || hp->output_tied == true);
    eng_model_free(m);
    m = tu_open(tu_write_preset("tiny-qwen2moe", "f32", "q2.gguf"));
    hp = eng_model_hparams(m);
    CHECK_EQ_INT(hp->n_ff_shexp, 128);
    CHECK_EQ_INT(hp->head_dim, 16); /* default n_embd / n_head */
    eng_model_free(m);
}

TEST(dense_llama_hparams)
{
    eng_model *m = tu_open(tu_write_llama("d.gguf", &(tu_llama_opts){0}));
    const eng_hparams *hp = eng_model_hparams(m);
    CHECK_EQ_INT(hp->n_expert, 0);
    CHECK_EQ_INT(hp->n_ff, 96);
    CHECK_EQ_INT(hp->n_head_kv, 2);
    CHECK_EQ_INT(eng_model_expert_bytes(m, 0), 0);
    eng_model_free(m);
}

TEST(missing_tensor_named)
{
    eng_err e = {0};
    const char *p = tu_write_llama("x.gguf", &(tu_llama_opts){.n_expert = 4,
                                                             .skip = "blk.1.ffn_up_exps.weight"});
    CHECK_EQ_INT(open_err(p, &e), ENG_EFORMAT);
    CHECK_CONTAINS(e.msg, "tensor 'blk.1.ffn_up_exps.weight' is missing");
    CHECK_CONTAINS(e.msg, "x.gguf");
}

TEST(wrong_shape_named)
{
    eng_err e = {0};
    const char *p = tu_write_llama("x.gguf", &(tu_llama_opts){.n_expert = 4,
                                                             .bad = "blk.0.ffn_gate_exps.weight"});
    CHECK_EQ_INT(open_err(p, &e), ENG_EFORMAT);
    CHECK_CONTAINS(e.msg, "tensor 'blk.0.ffn_gate_exps.weight': shape {64,48,4}, expected {64,96,4}");
}

TEST(unknown_arch_named)
{
    eng_err e = {0};
    const char *p = tu_write_llama("x.gguf", &(tu_llama_opts){.arch = "gptj"});
    CHECK_EQ_INT(open_err(p, &e), ENG_EUNSUPPORTED);
    CHECK_CONTAINS(e.msg, "architecture 'gptj' is not supported");
}

TEST(missing_key_named)
{
    eng_err e = {0};
    const char *p = tu_write_llama("x.gguf", &(tu_llama_opts){.skip_key = "embedding_length"});
    CHECK_EQ_INT(open_err(p, &e), ENG_EFORMAT);
    CHECK_CONTAINS(e.msg, "llama.embedding_length");
    p = tu_write_llama("y.gguf", &(tu_llama_opts){.arch = "olmoe"});
    CHECK_EQ_INT(open_err(p, &e), ENG_EFORMAT); /* olmoe needs experts */
    CHECK_CONTAINS(e.msg, "olmoe.expert_count");
}

TEST(not_a_gguf)
{
    eng_err e = {0};
    tst_write_file(tst_path("junk.gguf"), "hello world, not a model", 24);
    CHECK(open_err(tst_path("junk.gguf"), &e) == ENG_EFORMAT);
    CHECK(open_err(tst_path("nonexistent.gguf"), &e) == ENG_EIO);
}

TEST(cli_generate_bad_models_exit_2)
{
    const char *bad[] = {
        tu_write_llama("a.gguf", &(tu_llama_opts){.n_expert = 4, .skip = "output_norm.weight"}),
        tu_write_llama("b.gguf", &(tu_llama_opts){.n_expert = 4, .bad = "blk.0.attn_q.weight"}),
        tu_write_llama("c.gguf", &(tu_llama_opts){.arch = "gptj"}),
    };
    tst_write_file(tst_path("junk.gguf"), "GGUFjunk", 8);
    for (int i = 0; i < 3; i++) {
        char *err;
        CHECK_EQ_INT(tst_sh(NULL, &err, "%s generate -m %s --tokens 1,2", tst_moebench(), bad[i]), 2);
        CHECK_CONTAINS(err, "moebench generate: ");
        CHECK_MSG(strchr(err, '\n') == err + strlen(err) - 1, "more than one line: %s", err);
    }
    char *err;
    CHECK_EQ_INT(tst_sh(NULL, &err, "%s generate -m %s --tokens 1", tst_moebench(),
                        tst_path("junk.gguf")), 2);
}

TEST(prefault_opens_the_same_model)
{
    const char *p = tu_write_preset("tiny-mixtral", "q4_0", "p.gguf");
    eng_model *m = NULL;
    eng_err e = {0};
    REQUIRE(eng_model_open(&m, p, &(eng_model_opts){.prefault = true}, &e) == 0);
    CHECK_EQ_INT(eng_model_hparams(m)->n_expert, 8);
    eng_model_free(m);
}

/* in_ram: the same bytes at the same addresses, now private memory: the
 * logits equal the mapped model's bit for bit, and truncating the file
 * afterwards changes nothing (a mapping would fault). */
TEST(in_ram_computes_the_same_and_owns_its_bytes)
{
    const char *p = tu_write_preset("tiny-olmoe", "q8_0", "r.gguf");
    const char *copy = tst_path("r-copy.gguf");
    char *out, *err;
    REQUIRE(tst_sh(&out, &err, "cp '%s' '%s'", p, copy) == 0);
    int32_t toks[12];
    for (int i = 0; i < 12; i++)
        toks[i] = (i * 37 + 5) % 500;
    eng_model *a = tu_open(p), *b = NULL;
    eng_err e = {0};
    REQUIRE_MSG(eng_model_open(&b, copy, &(eng_model_opts){.in_ram = true}, &e) == 0, "%s", e.msg);
    REQUIRE(truncate(copy, 0) == 0);
    eng_session *sa = tu_session(a, 2, 32, 0), *sb = tu_session(b, 2, 32, 0);
    const int64_t nv = eng_model_hparams(a)->n_vocab;
    for (int i = 0; i < 12; i++) {
        REQUIRE_MSG(eng_session_decode(sa, toks[i], &e) == 0, "%s", e.msg);
        REQUIRE_MSG(eng_session_decode(sb, toks[i], &e) == 0, "%s", e.msg);
        CHECK(memcmp(eng_session_logits(sa), eng_session_logits(sb), (size_t)nv * 4) == 0);
    }
    eng_session_reset(sa);
    eng_session_reset(sb);
    REQUIRE(eng_session_eval(sa, toks, 12, &e) == 0 && eng_session_eval(sb, toks, 12, &e) == 0);
    CHECK(memcmp(eng_session_logits(sa), eng_session_logits(sb), (size_t)nv * 4) == 0);
    eng_session_free(sa);
    eng_session_free(sb);
    eng_model_free(a);
    eng_model_free(b);
}

TEST(dense_llama_not_taken_for_legacy_mixtral)
{
    /* a dense llama has blk.N.ffn_gate.weight, not the legacy .0 names: the
     * hint must not fire for it */
    eng_err e = {0};
    const char *p = tu_write_llama("x.gguf", &(tu_llama_opts){.n_expert = 0});
    CHECK_EQ_INT(open_err(p, &e), ENG_OK);
}

TEST(bad_hyper_parameters_named)
{
    static const struct { const char *key; uint32_t v; const char *msg; } cases[] = {
        {"attention.head_count_kv", 3, "not a multiple of head_count_kv 3"},
        {"attention.head_count", 0, "llama.attention.head_count': must be > 0"},
        {"expert_used_count", 9, "expert_used_count 9 / expert_count 4"},
        {"block_count", 0, "llama.block_count': must be > 0"},
        {"embedding_length", 48, "tensor 'token_embd.weight': shape {64,128}, expected {48,128}"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        eng_err e = {0};
        char name[32];
        snprintf(name, sizeof name, "h%zu.gguf", i);
        const char *p = tu_write_llama(name, &(tu_llama_opts){.n_expert = 4, .set_key = cases[i].key,
                                                             .set_value = cases[i].v});
        CHECK_MSG(open_err(p, &e) != ENG_OK, "%s = %u opened", cases[i].key, cases[i].v);
        CHECK_CONTAINS(e.msg, cases[i].msg);
    }
}
