/* test_compare.c — how `regress` classifies metrics by name
 * (harness/db/db.h): timings with their good direction, and counts. */
#include "tests/test.h"

#include "harness/db/db.h"

TEST(metric_classes)
{
    static const struct { const char *name; int timing, higher; } cases[] = {
        {"wall_ms", 1, 0},          {"cpu_ms", 1, 0},           {"decode_ms_p50", 1, 0},
        {"cache.decode_ms_p99", 1, 0}, {"tokens_per_s", 1, 1},  {"decode_tok_s", 1, 1},
        {"cache.link_gbps", 1, 1},  {"stall_share", 1, 0},      {"peak_rss_mib", 1, 0},
        {"cache_stats[-1].stall_ns", 1, 0}, {"regions.token_time_ns", 1, 0},
        {"elapsed_s", 1, 0},        {"cache.link_latency_us", 1, 0},
        {"hit_rate", 0, 0},         {"cache.hits", 0, 0},       {"misses", 0, 0},
        {"cache.prefetch_useful", 0, 0}, {"cache_stats[0].bytes_loaded", 0, 0},
        {"generated_tokens", 0, 0}, {"cache.evictions", 0, 0},  {"routing[t layer -1 4].srp", 0, 0},
        {"sessions", 0, 0},         {"timeout_count", 0, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int higher = -1, c = hx_db_cmp_metric_class(cases[i].name, &higher);
        CHECK_MSG(c == (cases[i].timing ? HX_DB_CMP_TIMING : HX_DB_CMP_COUNT), "%s: class %d",
                  cases[i].name, c);
        CHECK_MSG(higher == cases[i].higher, "%s: higher_better %d", cases[i].name, higher);
    }
}
