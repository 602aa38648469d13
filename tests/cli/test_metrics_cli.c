/* test_metrics_cli.c — `moebench metrics` as a user at a terminal sees it:
 * a long computation shows progress on stderr (a pseudo-terminal made by
 * script(1)), and nothing of it reaches a file or a pipe. */
#include "tests/test.h"
#include "tests/util/util.h"

TEST(progress_on_a_terminal_only)
{
    const char *t = tst_path("t.moetrace");
    REQUIRE(tst_sh(NULL, NULL, "%s trace synth --layers 4 --experts 32 --top-k 4 --samples 6"
                   " --tokens 300 --model zipf -o %s", tu_mb(), t) == 0);
    char *out, *err;
    REQUIRE(tst_sh(&out, NULL, "script -qec '%s metrics %s --bootstrap 0 --json > %s' /dev/null",
                   tu_mb(), t, tst_path("m.json")) == 0);
    CHECK_CONTAINS(out, "moebench metrics: layer 1/4, sample ");
    CHECK_CONTAINS(out, "moebench metrics: layer 4/4, sample 6/6");
    CHECK_CONTAINS(out, "moebench metrics: model-wide, sample 6/6");
    CHECK_CONTAINS(out, "left ~");
    REQUIRE(tst_sh(&out, &err, "%s metrics %s --bootstrap 0 --json", tu_mb(), t) == 0);
    CHECK_EQ_STR(err, "");
    CHECK(!strstr(out, "moebench metrics:"));
}
