/* test_mkmodel.c — `moebench mkmodel` as a user meets it: help, listing,
 * usage errors (exit 2), I/O errors (exit 1, nothing left behind), a
 * written file that the GGUF reader (and `moebench info`, when built) opens. */
#include "tests/test.h"

#include "engine/gguf.h"

#include <stdlib.h>
#include <unistd.h>

TEST(help_and_list)
{
    char *out;
    CHECK_EQ_INT(tst_sh(&out, NULL, "%s mkmodel --help", tst_moebench()), 0);
    CHECK_CONTAINS(out, "usage: moebench mkmodel");
    CHECK_EQ_INT(tst_sh(&out, NULL, "%s mkmodel --list", tst_moebench()), 0);
    CHECK_CONTAINS(out, "tiny-olmoe");
    CHECK_CONTAINS(out, "qwen3-30b-a3b");
    CHECK_CONTAINS(out, "46.2 GiB"); /* Mixtral-8x7B at Q8_0 */
}

TEST(usage_errors_exit_2)
{
    static const struct {
        const char *args, *msg;
    } cases[] = {
        {"--preset nope -o x.gguf", "unknown preset 'nope'"},
        {"--preset tiny-olmoe --arch mixtral -o x.gguf", "is a olmoe model, not mixtral"},
        {"--preset tiny-olmoe --arch gpt9 -o x.gguf", "unknown architecture 'gpt9'"},
        {"--preset tiny-olmoe --type q4_k_l -o x.gguf", "unknown --type 'q4_k_l'"},
        {"--preset tiny-olmoe --layers 0 -o x.gguf", "--layers"},
        {"--preset tiny-olmoe --layers 9 -o x.gguf", "layers 9"},
        {"--preset tiny-olmoe --layers 2x -o x.gguf", "--layers"},
        {"--preset tiny-olmoe --seed -1 -o x.gguf", "--seed"},
        {"--preset tiny-mixtral --vocab wordpiece -o x.gguf", "--vocab: 'wordpiece' is not bpe or spm"},
        {"--preset tiny-olmoe --router-locality 1.5 -o x.gguf", "--router-locality"},
        {"--preset tiny-olmoe", "-o FILE is required"},
        {"-o x.gguf", "--preset is required"},
        {"--bogus", "unknown option"},
    };
    char *bin = realpath(tst_moebench(), NULL);
    REQUIRE(bin);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *err;
        int rc = tst_sh(NULL, &err, "cd %s && %s mkmodel %s", tst_tmpdir(), bin, cases[i].args);
        CHECK_MSG(rc == 2, "mkmodel %s: exit %d", cases[i].args, rc);
        CHECK_CONTAINS(err, cases[i].msg);
        CHECK(access(tst_path("x.gguf"), F_OK) != 0);
    }
    free(bin);
}

TEST(io_error_exit_1_and_no_partial_file)
{
    char *err, *out;
    CHECK_EQ_INT(tst_sh(NULL, &err, "%s mkmodel --preset tiny-mixtral -o %s/no/dir/m.gguf",
                        tst_moebench(), tst_tmpdir()),
                 1);
    CHECK_CONTAINS(err, "moebench mkmodel:");
    /* a read-only directory: nothing, not even a temporary, is left */
    REQUIRE(tst_sh(NULL, NULL, "mkdir %s/ro && chmod 555 %s/ro", tst_tmpdir(), tst_tmpdir()) == 0);
    if (access(tst_path("ro"), W_OK) != 0) { /* root can write anyway */
        CHECK_EQ_INT(tst_sh(NULL, NULL, "%s mkmodel --preset tiny-mixtral -o %s/ro/m.gguf",
                            tst_moebench(), tst_tmpdir()),
                     1);
        CHECK_EQ_INT(tst_sh(&out, NULL, "ls -A %s/ro | wc -l", tst_tmpdir()), 0);
        CHECK_EQ_STR(out, "0\n");
    }
}

TEST(writes_a_file_the_reader_opens)
{
    char *out;
    const char *path = tst_path("m.gguf");
    CHECK_EQ_INT(tst_sh(&out, NULL,
                        "%s mkmodel --arch qwen2moe --preset tiny-qwen2moe --type q8_0 --seed 7 "
                        "--layers 2 --router-locality 0.5 -o %s",
                        tst_moebench(), path),
                 0);
    CHECK_CONTAINS(out, "wrote ");
    CHECK_CONTAINS(out, "tiny-qwen2moe qwen2moe q8_0, 2 layers");
    eng_gguf *g;
    eng_err e = {0};
    REQUIRE_MSG(eng_gguf_open(&g, path, &e) == ENG_OK, "%s", e.msg);
    uint32_t n;
    CHECK(eng_gguf_get_u32(g, "qwen2moe.block_count", &n, &e) == ENG_OK && n == 2);
    char size[32];
    snprintf(size, sizeof size, "%llu bytes", (unsigned long long)eng_gguf_file_size(g));
    CHECK_CONTAINS(out, size);
    eng_gguf_free(g);
    /* moebench info (the GGUF inspector) reads it, when that command exists */
    if (tst_sh(NULL, NULL, "%s --help | grep -q '^  info '", tst_moebench()) == 0) {
        CHECK_EQ_INT(tst_sh(&out, NULL, "%s info %s", tst_moebench(), path), 0);
        CHECK_CONTAINS(out, "qwen2moe");
    }
}
