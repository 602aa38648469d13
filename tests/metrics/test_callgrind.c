/* test_callgrind.c — the deterministic instruction-count mode: the
 * synthetic workload of `moebench bench-counters` under callgrind, summed
 * per region by scripts/callgrind-regions.sh, twice. */
#include "tests/test.h"

#include <stdlib.h>

/* Runs the synthetic workload under callgrind into DIR and returns the
 * per-region table (region, instructions per line). OpenBLAS, loaded with
 * the binary, would otherwise start idle threads whose instructions land in
 * whichever interval is open when they run. */
static char *callgrind_table(const char *dir)
{
    char *out, *err;
    int st = tst_sh(&out, &err,
                    "mkdir -p %s && OPENBLAS_NUM_THREADS=1 "
                    "valgrind --tool=callgrind --callgrind-out-file=%s/cg.out "
                    "%s bench-counters --synthetic 2 --unit-iters 2000 --events '' >/dev/null",
                    dir, dir, tst_moebench());
    REQUIRE_MSG(st == 0, "callgrind run exited %d: %s", st, err);
    st = tst_sh(&out, &err, "scripts/callgrind-regions.sh %s/cg.out*", dir);
    REQUIRE_MSG(st == 0, "callgrind-regions.sh exited %d: %s", st, err);
    return out;
}

static long long region_ir(const char *table, const char *region)
{
    char key[64];
    snprintf(key, sizeof key, "\n%s ", region);
    const char *p = strstr(table, key);
    REQUIRE_MSG(p, "no row for %s in:\n%s", region, table);
    return atoll(p + strlen(key));
}

TEST(instruction_counts_per_region_are_exact_and_repeatable)
{
    if (tst_sh(NULL, NULL, "command -v valgrind >/dev/null") != 0) {
        printf("valgrind not installed: the callgrind mode is not tested here\n");
        return;
    }
    if (tst_sh(NULL, NULL, "%s --version | grep -q sanitize", tst_moebench()) == 0) {
        printf("sanitizer build: valgrind cannot run it; tested by make test\n");
        return;
    }
    char *a = callgrind_table(tst_path("a"));
    char *b = callgrind_table(tst_path("b"));
    const char *regions[] = {"embed", "attention", "router", "expert_ffn",
                             "expert_wait", "lm_head", "sampling"};
    for (size_t i = 0; i < sizeof regions / sizeof *regions; i++) {
        long long x = region_ir(a, regions[i]), y = region_ir(b, regions[i]);
        CHECK_MSG(x > 0 && x == y, "%s: %lld vs %lld instructions", regions[i], x, y);
    }
    /* attention and router have the same number of boundaries (4 a token)
     * and 12 vs 4 work units a token; lm_head and sampling 1 boundary and
     * 4 vs 1 units. Boundary costs cancel in the differences, so the work
     * ratio 8:3 must hold exactly. */
    long long d1 = region_ir(a, "attention") - region_ir(a, "router");
    long long d2 = region_ir(a, "lm_head") - region_ir(a, "sampling");
    CHECK_MSG(d1 > 0 && 3 * d1 == 8 * d2, "attention-router %lld, lm_head-sampling %lld", d1, d2);
}
