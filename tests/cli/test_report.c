/* test_report.c — `moebench report` end to end on a database made by
 * `moebench run` of a tiny inline suite whose numbers are known: hit rate
 * c / (c + k) for policy lru (k = 2) and lfu (k = 4) at cache sizes 2, 4,
 * 8, and tokens/s 10 c plus a counter, so the repetitions differ and the
 * 95 % CI is not zero. The expected cells are computed here from those
 * formulas and from the raw samples (Student's t by hand), not copied
 * from a report. Routing rows are added with SQL (the lua kind does not
 * write them). */
#include "tests/test.h"
#include "tests/util/util.h"

#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>

#define MB tst_moebench()

static const char suite_text[] =
    "suite{name='rpt'}\n"
    "local calls = 0\n"
    "for _, p in ipairs{'lru', 'lfu'} do\n"
    "  for _, c in ipairs{2, 4, 8} do\n"
    "    experiment{name='toy', params={policy=p, cache_size=c}, reps=2, warmup=0,\n"
    "      run=function() calls = calls + 1\n"
    "        return {hit_rate=c/(c + (p == 'lru' and 2 or 4)), tokens_per_s=10*c + calls} end}\n"
    "  end\n"
    "end\n"
    "experiment{name='odd|name', params={note='a<b>&c'}, run=function() return {x=1} end}\n";

static const int sizes[3] = {2, 4, 8};

static const char *make_db(void)
{
    const char *suite = tst_path("rpt.lua"), *db = tst_path("r.db");
    tst_write_file(suite, suite_text, strlen(suite_text));
    REQUIRE(tst_sh(NULL, NULL, "%s run %s --db %s -q", MB, suite, db) == 0);
    return db;
}

/* The tokens_per_s samples of one experiment, as the table should show
 * them: "mean ± half-width" with t(0.975, 1) = 12.7062047361747. */
static void tps_cell(const char *db, const char *label, double *mean, char *cell, size_t cap)
{
    sqlite3 *s;
    sqlite3_stmt *st;
    REQUIRE(sqlite3_open(db, &s) == SQLITE_OK);
    REQUIRE(sqlite3_prepare_v2(s, "SELECT value FROM sample JOIN experiment e ON e.id ="
                               " experiment_id WHERE e.label = ? AND metric = 'tokens_per_s'"
                               " ORDER BY rep", -1, &st, NULL) == SQLITE_OK);
    sqlite3_bind_text(st, 1, label, -1, SQLITE_STATIC);
    double v[2];
    int n = 0;
    while (sqlite3_step(st) == SQLITE_ROW && n < 2)
        v[n++] = sqlite3_column_double(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(s);
    REQUIRE(n == 2);
    *mean = (v[0] + v[1]) / 2;
    double sd = fabs(v[0] - v[1]) / sqrt(2.0);
    snprintf(cell, cap, "%.4g ± %.2g", *mean, 12.7062047361747 * sd / sqrt(2.0));
}

static int count(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

TEST(markdown_tables_and_chart_files)
{
    const char *db = make_db(), *md = tst_path("out.md");
    char *err;
    REQUIRE(tst_sh(NULL, &err, "%s report --db %s -o %s", MB, db, md) == 0);
    const char *text = tst_read_file(md, NULL);
    REQUIRE(text);
    CHECK_CONTAINS(text, "# moebench report: rpt\n");
    CHECK_CONTAINS(text, "| suite | rpt |");
    CHECK_CONTAINS(text, "| status | ok |");
    CHECK_CONTAINS(text, "| experiments | 7 |");
    CHECK_CONTAINS(text, "| experiment | status | reps | tokens\\_per\\_s | hit\\_rate | wall\\_ms |");
    char hit_row[2][256], tps_row[2][256], tmp[128];
    for (int p = 0; p < 2; p++) {
        const char *pol = p ? "lfu" : "lru";
        snprintf(hit_row[p], sizeof hit_row[p], "| %s |", pol);
        snprintf(tps_row[p], sizeof tps_row[p], "| %s |", pol);
        for (int i = 0; i < 3; i++) {
            double h = sizes[i] / (double)(sizes[i] + (p ? 4 : 2)), mean;
            char label[64], cell[64], row[256];
            snprintf(label, sizeof label, "toy cache_size=%d policy=%s", sizes[i], pol);
            tps_cell(db, label, &mean, cell, sizeof cell);
            snprintf(row, sizeof row, "| toy cache\\_size=%d policy=%s | ok | 2 | %s | %.4g ± 0 |",
                     sizes[i], pol, cell, h);
            CHECK_CONTAINS(text, row);
            snprintf(tmp, sizeof tmp, " %.4g ± 0 |", h);
            strcat(hit_row[p], tmp);
            snprintf(tmp, sizeof tmp, " %s |", cell);
            strcat(tps_row[p], tmp);
        }
        CHECK_CONTAINS(text, hit_row[p]);
        CHECK_CONTAINS(text, tps_row[p]);
    }
    CHECK_CONTAINS(text, "| policy / cache size (expert slots) | 2 | 4 | 8 |");
    /* escaping: | < > & in a label; no rate or speed for it */
    CHECK_CONTAINS(text, "| odd\\|name note=a\\<b\\>\\&c | ok | 1 | - | - |");
    CHECK_CONTAINS(text, "![Hit rate vs cache size](out-hit-rate.svg)");
    CHECK_CONTAINS(text, "![Tokens/s vs cache size](out-tokens-per-s.svg)");
    const char *names[2] = {"out-hit-rate.svg", "out-tokens-per-s.svg"};
    for (int i = 0; i < 2; i++) {
        const char *svg = tst_read_file(tst_path(names[i]), NULL);
        REQUIRE_MSG(svg, "%s not written", names[i]);
        CHECK_EQ_INT(count(svg, "<polyline"), 2);
        CHECK_EQ_INT(count(svg, "<circle"), 6);
        /* an error bar per point (95 % CI over the two repetitions) and units */
        CHECK_EQ_INT(count(svg, "class=\"ci\""), 6);
        CHECK_CONTAINS(svg, ">cache size (expert slots, as the experiment");
        CHECK_CONTAINS(svg, ">lru</text>");
        CHECK_CONTAINS(svg, ">lfu</text>");
        CHECK_EQ_INT(count(svg, "<svg"), 1);
        CHECK_EQ_INT(count(svg, "</svg>"), 1);
    }
}

TEST(markdown_on_stdout_leaves_charts_out)
{
    const char *db = make_db();
    char *out;
    REQUIRE(tst_sh(&out, NULL, "%s report --db %s --title 'T|1'", MB, db) == 0);
    CHECK_CONTAINS(out, "# T\\|1\n");
    CHECK_CONTAINS(out, "2 chart(s) left out");
    CHECK(!strstr(out, "!["));
    CHECK_EQ_INT(tst_sh(NULL, NULL, "ls %s/*.svg", tst_tmpdir()) != 0, 1);
}

/* Every tag the report writes with a closing tag is closed as often as opened. */
static void check_balanced(const char *html)
{
    static const char *const tags[] = {"html", "head", "title", "style", "body", "h1", "h2",
                                       "h3", "p", "table", "thead", "tbody", "tr", "th", "td",
                                       "div", "svg", "text"};
    for (size_t i = 0; i < sizeof tags / sizeof tags[0]; i++) {
        char open1[32], open2[32], close[32];
        snprintf(open1, sizeof open1, "<%s>", tags[i]);
        snprintf(open2, sizeof open2, "<%s ", tags[i]);
        snprintf(close, sizeof close, "</%s>", tags[i]);
        int o = count(html, open1) + count(html, open2), c = count(html, close);
        CHECK_MSG(o == c && o > 0, "<%s>: %d opened, %d closed", tags[i], o, c);
    }
}

TEST(html_is_balanced_with_inline_charts)
{
    const char *db = make_db(), *html = tst_path("out.html");
    REQUIRE(tst_sh(NULL, NULL, "%s report --db %s latest:rpt -o %s --title '<T&>'", MB, db,
                   html) == 0);
    const char *text = tst_read_file(html, NULL);
    REQUIRE(text);
    check_balanced(text);
    CHECK_EQ_INT(count(text, "<svg"), 2);
    CHECK_EQ_INT(count(text, "<polyline"), 4);
    CHECK_CONTAINS(text, "<title>&lt;T&amp;&gt;</title>");
    CHECK_CONTAINS(text, "<td>odd|name note=a&lt;b&gt;&amp;c</td>");
    CHECK(!strstr(text, "a<b>"));
    CHECK_EQ_INT(tst_sh(NULL, NULL, "ls %s/*.svg", tst_tmpdir()) != 0, 1);
    /* --format wins over the extension */
    REQUIRE(tst_sh(NULL, NULL, "%s report --db %s --format html > %s", MB, db,
                   tst_path("x.md")) == 0);
    CHECK_EQ_INT(count(tst_read_file(tst_path("x.md"), NULL), "<svg"), 2);
}

/* SRP per segment length (mean of two repetitions) and one curve chart
 * with a line per metric; layer 0 rows are left out (model-wide only). */
TEST(routing_section)
{
    const char *db = make_db();
    tu_sql(db, "WITH x(id) AS (SELECT id FROM experiment WHERE name = 'odd|name')"
            " INSERT INTO routing_metric (experiment_id, rep, trace, layer, metric, param,"
            " value, ci_lo, ci_hi) SELECT id, r, '/tmp/d/t.bin', -1, 'srp', L, 0.5 + L / 100.0"
            " + r / 10.0, 0.4, 0.8 FROM x, (SELECT 0 AS r UNION SELECT 1),"
            " (SELECT 4 AS L UNION SELECT 16)"
            " UNION ALL SELECT id, 0, '/tmp/d/t.bin', -1, m, c, c / (c + k), NULL, NULL FROM x,"
            " (SELECT 'lru' AS m, 3.0 AS k UNION SELECT 'belady', 1.0 UNION SELECT 'sch/4', 2.0),"
            " (SELECT 1 AS c UNION SELECT 2 UNION SELECT 4)"
            " UNION ALL SELECT id, 0, '/tmp/d/t.bin', 0, 'srp', 4, 0.99, NULL, NULL FROM x");
    const char *md = tst_path("out.md");
    REQUIRE(tst_sh(NULL, NULL, "%s report --db %s -o %s", MB, db, md) == 0);
    const char *text = tst_read_file(md, NULL);
    REQUIRE(text);
    CHECK_CONTAINS(text, "## Routing consistency");
    char row[256];
    for (int L = 4; L <= 16; L += 12) {
        snprintf(row, sizeof row, "| odd\\|name note=a\\<b\\>\\&c | t.bin | %d | %.6g | 0.4 – 0.8 | 2 |",
                 L, (0.5 + L / 100.0 + 0.5 + L / 100.0 + 0.1) / 2);
        CHECK_CONTAINS(text, row);
    }
    CHECK(!strstr(text, "0.99"));
    CHECK_CONTAINS(text, "](out-routing-0.svg)");
    const char *svg = tst_read_file(tst_path("out-routing-0.svg"), NULL);
    REQUIRE(svg);
    CHECK_EQ_INT(count(svg, "<polyline"), 3);
    CHECK_CONTAINS(svg, ">sch/4</text>");
    CHECK_CONTAINS(svg, ">belady</text>");
    CHECK_CONTAINS(svg, "odd|name note=a&lt;b&gt;&amp;c: t.bin");
    /* the x axis is cache_m, and says so */
    CHECK_CONTAINS(svg, ">cache size m (slots per layer / top-k)</text>");
    CHECK(!strstr(text, "(*)"));
    /* a zero-width interval (a one-sample trace) is marked and explained */
    tu_sql(db, "INSERT INTO routing_metric (experiment_id, rep, trace, layer, metric, param,"
               " value, ci_lo, ci_hi) SELECT id, 0, 'one.bin', -1, 'srp', 4, 0.3, 0.3, 0.3"
               " FROM experiment WHERE name = 'odd|name'");
    REQUIRE(tst_sh(NULL, NULL, "%s report --db %s -o %s", MB, db, md) == 0);
    text = tst_read_file(md, NULL);
    CHECK_CONTAINS(text, "| one.bin | 4 | 0.3 | 0.3 – 0.3 (\\*) | 1 |");
    CHECK_CONTAINS(text, "An interval of zero width is not certainty");
}

TEST(errors)
{
    const char *db = make_db();
    char *err;
    CHECK_EQ_INT(tst_sh(NULL, &err, "%s report --db %s nosuchrun", MB, db), 2);
    CHECK_CONTAINS(err, "no run 'nosuchrun'");
    CHECK_EQ_INT(tst_sh(NULL, &err, "%s report --db %s 99", MB, db), 2);
    CHECK_CONTAINS(err, "no run '99'");
    CHECK_EQ_INT(tst_sh(NULL, &err, "%s report --db %s/none.db", MB, tst_tmpdir()), 2);
    CHECK_CONTAINS(err, "none.db: no such database");
    CHECK_EQ_INT(tst_sh(NULL, &err, "%s report --db %s --format pdf", MB, db), 2);
    CHECK_CONTAINS(err, "--format must be md or html");
    CHECK_EQ_INT(tst_sh(NULL, &err, "%s report --db %s -o %s/no/such/dir/x.md", MB, db,
                        tst_tmpdir()), 1);
    CHECK_CONTAINS(err, "cannot write");
    CHECK_EQ_INT(tst_sh(NULL, &err, "%s report --db %s latest latest", MB, db), 2);
}

/* 17 traces of one experiment: 16 charts (docs/cli.md) and a note. */
TEST(curve_charts_are_capped)
{
    const char *db = make_db();
    tu_sql(db, "WITH RECURSIVE t(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM t WHERE i < 16)"
            " INSERT INTO routing_metric (experiment_id, rep, trace, layer, metric, param, value)"
            " SELECT e.id, 0, 'tr' || t.i, -1, 'lru', c.c, 0.1 * c.c FROM t,"
            " (SELECT id FROM experiment WHERE name = 'odd|name') e,"
            " (SELECT 1 AS c UNION SELECT 2) c");
    const char *md = tst_path("my report.md");
    REQUIRE(tst_sh(NULL, NULL, "%s report --db %s -o '%s'", MB, db, md) == 0);
    const char *text = tst_read_file(md, NULL);
    REQUIRE(text);
    CHECK_EQ_INT(count(text, "](<my report-routing-"), 16);
    CHECK_CONTAINS(text, "](<my report-routing-15.svg>)");
    CHECK_CONTAINS(text, "Only the first 16 curve charts are drawn.");
    CHECK(tst_read_file(tst_path("my report-routing-15.svg"), NULL) != NULL);
    CHECK(tst_read_file(tst_path("my report-routing-16.svg"), NULL) == NULL);
    CHECK_CONTAINS(text, "](<my report-hit-rate.svg>)");
}
