/* test_info.c — `moebench info` on a small MoE-shaped file written with our
 * writer, its JSON, and bad files (one error line, exit status 2). */
#include "tests/test.h"
#include "tests/util/gguf_bytes.h"

#include "engine/formats.h"
#include "engine/gguf.h"

/* A qwen3moe-shaped file: 2 experts of {64, 32} in Q8_0 stacked tensors,
 * one legacy per-expert tensor, a router and norms in F32, a shared expert
 * in F16, a tokenizer array. Returns the path. */
static const char *write_model(void)
{
    const char *path = tst_path("tiny.gguf");
    eng_gguf_writer *w;
    eng_err err = {0};
    REQUIRE(eng_gguf_writer_open(&w, path, &err) == ENG_OK);
    REQUIRE(eng_gguf_writer_set_str(w, "general.architecture", "qwen3moe", &err) == ENG_OK);
    REQUIRE(eng_gguf_writer_set_u32(w, "qwen3moe.block_count", 1, &err) == ENG_OK);
    REQUIRE(eng_gguf_writer_set_u32(w, "qwen3moe.expert_count", 2, &err) == ENG_OK);
    REQUIRE(eng_gguf_writer_set_f32(w, "qwen3moe.rope.freq_base", 1e6f, &err) == ENG_OK);
    const char *toks[3] = {"<s>", "hello", "\xe2\x96\x81w"};
    REQUIRE(eng_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", toks, 3, &err) == ENG_OK);
    struct { const char *name; int type, nd; int64_t ne[3]; } t[] = {
        {"token_embd.weight", ENG_TYPE_F32, 2, {64, 3}},
        {"blk.0.ffn_gate_inp.weight", ENG_TYPE_F32, 2, {64, 2}},
        {"blk.0.ffn_gate_exps.weight", ENG_TYPE_Q8_0, 3, {64, 32, 2}},
        {"blk.0.ffn_down_exps.weight", ENG_TYPE_Q8_0, 3, {32, 64, 2}},
        {"blk.0.ffn_up.1.weight", ENG_TYPE_Q4_0, 2, {64, 32}},
        {"blk.0.ffn_up_shexp.weight", ENG_TYPE_F16, 2, {64, 16}},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        REQUIRE(eng_gguf_writer_add_tensor(w, t[i].name, t[i].type, t[i].nd, t[i].ne, NULL, &err) == ENG_OK);
    REQUIRE(eng_gguf_writer_write_header(w, &err) == ENG_OK);
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        uint64_t n = eng_gguf_writer_tensor_nbytes(w, (int64_t)i);
        void *zeros = tst_alloc(n);
        memset(zeros, 0, n);
        REQUIRE(eng_gguf_writer_write_tensor_data(w, (int64_t)i, zeros, n, &err) == ENG_OK);
    }
    REQUIRE(eng_gguf_writer_finish(w, &err) == ENG_OK);
    eng_gguf_writer_free(w);
    return path;
}

/* experts: 2 * (2*32*34*2... computed from the table) */
static uint64_t expert_bytes(void)
{
    return 2 * eng_type_row_bytes(ENG_TYPE_Q8_0, 64) * 32 + 2 * eng_type_row_bytes(ENG_TYPE_Q8_0, 32) * 64 +
           eng_type_row_bytes(ENG_TYPE_Q4_0, 64) * 32;
}

TEST(info_text_shows_arch_hparams_tensors_and_expert_bytes)
{
    const char *path = write_model();
    char *out, *err;
    CHECK_EQ_INT(tst_sh(&out, &err, "%s info %s", tst_moebench(), path), 0);
    CHECK_EQ_STR(err, "");
    CHECK_CONTAINS(out, "architecture:  qwen3moe");
    CHECK_CONTAINS(out, "qwen3moe.expert_count");
    CHECK_CONTAINS(out, "qwen3moe.rope.freq_base                          f32    1000000");
    CHECK_CONTAINS(out, "blk.0.ffn_gate_exps.weight");
    CHECK_CONTAINS(out, "64 x 32 x 2");
    CHECK_CONTAINS(out, "q8_0");
    char line[64];
    snprintf(line, sizeof line, "experts:     %llu bytes", (unsigned long long)expert_bytes());
    CHECK_CONTAINS(out, line);
    CHECK(strstr(out, "tokenizer.ggml.tokens") == NULL);   /* only with --kv */
    CHECK_EQ_INT(tst_sh(&out, NULL, "%s info --kv %s", tst_moebench(), path), 0);
    CHECK_CONTAINS(out, "tokenizer.ggml.tokens                            array  [3 x string: \"<s>\", \"hello\", \"\\xe2\\x96\\x81w\"]");
    /* the usage's order: options after the file work as well */
    char *after;
    CHECK_EQ_INT(tst_sh(&after, NULL, "%s info %s --kv", tst_moebench(), path), 0);
    CHECK_EQ_STR(after, out);
}

TEST(info_json_agrees_with_the_file)
{
    const char *path = write_model();
    char *out;
    const char *js = tst_path("i.json");
    CHECK_EQ_INT(tst_sh(&out, NULL,
                        "%s info --json --kv %s > %s && sqlite3 :memory: \"select "
                        "json_extract(readfile('%s'), '$.architecture'), "
                        "json_extract(readfile('%s'), '$.bytes.experts'), "
                        "json_extract(readfile('%s'), '$.hparams.\\\"qwen3moe.expert_count\\\"'), "
                        "json_array_length(readfile('%s'), '$.tensors'), "
                        "json_extract(readfile('%s'), '$.kv.\\\"tokenizer.ggml.tokens\\\"[1]'), "
                        "json_extract(readfile('%s'), '$.tensors[2].expert')\"",
                        tst_moebench(), path, js, js, js, js, js, js, js),
                 0);
    char expect[128];
    snprintf(expect, sizeof expect, "qwen3moe|%llu|2|6|hello|1\n", (unsigned long long)expert_bytes());
    CHECK_EQ_STR(out, expect);
}

/* Bad file -> exit 2, exactly one line on stderr naming file and problem. */
static void expect_bad(const gb *b, const char *text)
{
    const char *path = tst_path("bad.gguf");
    tst_write_file(path, b->p ? (const void *)b->p : "", b->n);  /* never NULL to fwrite */
    char *out, *err;
    CHECK_EQ_INT(tst_sh(&out, &err, "%s info %s", tst_moebench(), path), 2);
    CHECK_EQ_STR(out, "");
    CHECK_CONTAINS(err, "moebench info: ");
    CHECK_CONTAINS(err, path);
    CHECK_CONTAINS(err, text);
    CHECK_MSG(strchr(err, '\n') == err + strlen(err) - 1, "more than one line: %s", err);
}

TEST(info_bad_files_are_one_line_exit_2)
{
    gb b = {0};
    gb_valid_small(&b);
    memcpy(b.p, "GGML", 4);
    expect_bad(&b, "bad magic");
    gb c = {0};
    gb_header(&c, 3, 1, 0);
    gb_info(&c, "blk.3.ffn_down_exps.weight", 1, (int64_t[]){4}, 0, 123);
    gb_pad(&c, 32);
    gb_zeros(&c, 256);
    expect_bad(&c, "tensor 'blk.3.ffn_down_exps.weight': offset 123 not aligned to 32");
    gb d = {0};
    gb_valid_small(&d);
    d.n -= 5;
    expect_bad(&d, "lies outside");
    gb e = {0};
    expect_bad(&e, "file is empty");
}

TEST(info_usage_errors)
{
    char *err;
    CHECK_EQ_INT(tst_sh(NULL, &err, "%s info", tst_moebench()), 2);
    CHECK_CONTAINS(err, "missing FILE.gguf");
    CHECK_EQ_INT(tst_sh(NULL, &err, "%s info a.gguf b.gguf", tst_moebench()), 2);
    CHECK_EQ_INT(tst_sh(NULL, &err, "%s info --nope x.gguf", tst_moebench()), 2);
    CHECK_CONTAINS(err, "--nope");
    CHECK_EQ_INT(tst_sh(NULL, &err, "%s info %s", tst_moebench(), tst_path("missing.gguf")), 2);
    CHECK_CONTAINS(err, "No such file or directory");
}
