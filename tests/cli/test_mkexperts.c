/* test_mkexperts.c — `moebench mkexperts` as a user meets it: help, usage
 * errors (exit 2) naming the option or tensor, a written companion that
 * opens against its model, and nothing left behind on failure. */
#include "tests/test.h"
#include "tests/util/util.h"

#include <string.h>
#include <unistd.h>

TEST(help)
{
    char *out;
    CHECK_EQ_INT(tst_sh(&out, NULL, "%s mkexperts --help", tu_mb()), 0);
    CHECK_CONTAINS(out, "usage: moebench mkexperts");
    CHECK_CONTAINS(out, "--type");
}

TEST(writes_and_errors)
{
    const char *dir = tst_tmpdir(), *mb = tu_mb();
    REQUIRE(tst_sh(NULL, NULL, "cd %s && %s mkmodel --preset tiny-olmoe -o m.gguf", dir, mb) == 0);
    char *out, *err;
    CHECK_EQ_INT(tst_sh(&out, &err, "cd %s && %s mkexperts -m m.gguf --type Q4_0 -o c.gguf", dir, mb),
                 0);
    CHECK_CONTAINS(out, "wrote c.gguf: 4 MoE layers x 16 experts in q4_0, 3456 bytes per expert");
    static const struct {
        const char *args, *msg;
    } cases[] = {
        {"--type q4_0 -o x.gguf", "-m MODEL is required"},
        {"-m m.gguf -o x.gguf", "--type TYPE is required"},
        {"-m m.gguf --type q4_0", "-o FILE is required"},
        {"-m m.gguf --type q9 -o x.gguf", "unknown type 'q9'"},
        {"-m nope.gguf --type q4_0 -o x.gguf", "nope.gguf"},
        {"-m m.gguf --type q4_K -o x.gguf", "tensor 'blk.0.ffn_gate_exps.weight': rows of 64"},
        {"-m m.gguf --type q4_0 -o x.gguf --bogus", "unknown option '--bogus'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int rc = tst_sh(NULL, &err, "cd %s && %s mkexperts %s", dir, mb, cases[i].args);
        CHECK_MSG(rc == 2, "%s: exit %d", cases[i].args, rc);
        CHECK_CONTAINS(err, cases[i].msg);
    }
    CHECK(access(tst_path("x.gguf"), F_OK) != 0);
}
