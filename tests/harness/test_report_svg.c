/* test_report_svg.c — the SVG chart writer of `moebench report`: the tick
 * step against a brute-force search over 1, 2, 5 x 10^k, and charts of
 * random data whose every drawn point must land inside the plot area
 * (70..490 x 36..348, report_svg.c's margins) with x and y mapped by one
 * linear scale each. */
#include "harness/db/db.h"
#include "tests/test.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

/* The smallest 1, 2, 5 x 10^k step giving at most `want` intervals. */
static double brute_step(double lo, double hi, int want)
{
    static const double m[3] = {1, 2, 5};
    for (int k = -15; k <= 15; k++)
        for (int i = 0; i < 3; i++) {
            double s = m[i] * pow(10, k);
            if ((hi - lo) / s <= want * (1 + 1e-12))
                return s;
        }
    return NAN;
}

TEST(tick_step_is_the_smallest_nice_step)
{
    srand(7);
    for (int t = 0; t < 2000; t++) {
        double lo = (rand() / (double)RAND_MAX - 0.5) * pow(10, rand() % 12 - 6);
        double hi = lo + rand() / (double)RAND_MAX * pow(10, rand() % 12 - 6) + 1e-9;
        int want = 1 + rand() % 8;
        double a = hx_db_svg_tick_step(lo, hi, want), b = brute_step(lo, hi, want);
        CHECK_MSG(fabs(a - b) <= 1e-9 * b, "[%g, %g] want %d: %g, brute force %g", lo, hi,
                  want, a, b);
    }
    CHECK_EQ_INT((int)hx_db_svg_tick_step(3, 3, 5), 1); /* empty span: a usable step */
}

static char *render(const hx_db_svg_chart *c)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    REQUIRE(f);
    hx_db_svg_write(f, c);
    fclose(f);
    char *copy = tst_alloc(len + 1);
    memcpy(copy, buf, len + 1);
    free(buf);
    return copy;
}

TEST(random_charts_stay_inside_the_plot)
{
    srand(11);
    for (int t = 0; t < 200; t++) {
        enum { S = 3, N = 6 };
        double x[S][N], y[S][N];
        hx_db_svg_series s[S];
        double scale = pow(10, rand() % 8 - 3);
        for (int i = 0; i < S; i++) {
            for (int j = 0; j < N; j++) {
                x[i][j] = j * 4 + rand() % 3;
                y[i][j] = (rand() / (double)RAND_MAX - 0.3) * scale;
            }
            s[i] = (hx_db_svg_series){i ? "b<&>" : "a", x[i], y[i], N, NULL, NULL, NULL};
        }
        hx_db_svg_chart c = {"t", "x", "y", s, S, NULL, 0};
        char *svg = render(&c);
        CHECK(!strstr(svg, "b<&>"));
        CHECK_CONTAINS(svg, ">b&lt;&amp;&gt;</text>");
        int polylines = 0;
        for (char *p = svg; (p = strstr(p, "points=\"")); polylines++) {
            p += 8;
            double px[N], py[N];
            for (int j = 0; j < N; j++) {
                int used = 0;
                REQUIRE(sscanf(p, "%lf,%lf%n", &px[j], &py[j], &used) == 2);
                p += used;
                CHECK_MSG(px[j] >= 69.9 && px[j] <= 490.1 && py[j] >= 35.9 && py[j] <= 348.1,
                          "point %g,%g outside the plot", px[j], py[j]);
            }
            /* one linear map per axis: slopes agree (pixels rounded to 0.1) */
            const double *sx = x[polylines], *sy = y[polylines];
            double kx = (px[N - 1] - px[0]) / (sx[N - 1] - sx[0]);
            for (int j = 1; j < N - 1; j++)
                CHECK_NEAR(px[0] + kx * (sx[j] - sx[0]), px[j], 0.2);
            int a = 0, b = 1;
            for (int j = 0; j < N; j++)
                if (fabs(sy[j] - sy[a]) > fabs(sy[b] - sy[a]))
                    b = j;
            double ky = (py[b] - py[a]) / (sy[b] - sy[a]);
            for (int j = 0; j < N; j++)
                CHECK_NEAR(py[a] + ky * (sy[j] - sy[a]), py[j], 0.2);
            CHECK(ky < 0); /* larger values higher up */
        }
        CHECK_EQ_INT(polylines, S);
    }
}

/* A legend longer than the plot is cut: named entries + "+K more" = all. */
TEST(long_legend_is_cut_but_counts_every_series)
{
    enum { S = 40 };
    static const double x[2] = {1, 2}, y[2] = {0.5, 0.7};
    hx_db_svg_series s[S];
    char names[S][8];
    for (int i = 0; i < S; i++) {
        snprintf(names[i], sizeof names[i], "s%d", i);
        s[i] = (hx_db_svg_series){names[i], x, y, 2, NULL, NULL, NULL};
    }
    hx_db_svg_chart c = {"t", "x", "y", s, S, NULL, 0};
    char *svg = render(&c);
    int named = 0, more = 0;
    for (int i = 0; i < S; i++) {
        char t[32];
        snprintf(t, sizeof t, ">s%d</text>", i);
        named += strstr(svg, t) != NULL;
    }
    const char *m = strstr(svg, ">+");
    REQUIRE(m && sscanf(m, ">+%d more<", &more) == 1);
    CHECK(named > 5 && named < S);
    CHECK_EQ_INT(named + more, S);
    int polylines = 0;
    for (const char *p = svg; (p = strstr(p, "<polyline")); p++)
        polylines++;
    CHECK_EQ_INT(polylines, S);
}
