/* test_stats.c — metrics/stats.c against brute-force computations:
 * two-pass mean/variance, order statistics found by counting (no sort),
 * the t CDF by numerical integration of the density, and published
 * t-table values. */
#include "tests/test.h"

#include "metrics/stats.h"

#include <math.h>
#include <stdlib.h>

/* Deterministic data: xorshift, shifted by a large offset so that a naive
 * sum-of-squares variance would lose digits. */
static void fill(double *x, size_t n, unsigned seed, double offset)
{
    unsigned s = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; i++) {
        s ^= s << 13, s ^= s >> 17, s ^= s << 5;
        x[i] = offset + (double)(s % 100000) / 997.0;
    }
}

/* k-th smallest (0-based) by counting, independent of any sort. */
static double kth_by_counting(const double *x, size_t n, size_t k)
{
    for (size_t i = 0; i < n; i++) {
        size_t less = 0, equal = 0;
        for (size_t j = 0; j < n; j++) {
            less += x[j] < x[i];
            equal += x[j] == x[i];
        }
        if (less <= k && k < less + equal)
            return x[i];
    }
    return NAN;
}

static double brute_percentile(const double *x, size_t n, double p)
{
    double h = (double)(n - 1) * p / 100.0;
    size_t lo = (size_t)h;
    double a = kth_by_counting(x, n, lo);
    if (lo + 1 >= n)
        return a;
    return a + (h - (double)lo) * (kth_by_counting(x, n, lo + 1) - a);
}

TEST(mean_stddev_match_two_pass)
{
    static const size_t sizes[] = {1, 2, 3, 7, 100, 1001};
    for (size_t si = 0; si < sizeof sizes / sizeof *sizes; si++) {
        size_t n = sizes[si];
        double *x = tst_alloc(n * sizeof *x);
        fill(x, n, (unsigned)n, 1e6);
        long double sum = 0, ss = 0;
        for (size_t i = 0; i < n; i++)
            sum += x[i];
        long double mean = sum / n;
        for (size_t i = 0; i < n; i++)
            ss += (x[i] - mean) * (x[i] - mean);
        double sd = n > 1 ? (double)sqrtl(ss / (n - 1)) : 0;
        CHECK_NEAR(met_stats_mean(x, n), (double)mean, 1e-6);
        CHECK_NEAR(met_stats_stddev(x, n), sd, 1e-6 * (sd + 1));
    }
}

TEST(percentiles_match_order_statistics)
{
    static const size_t sizes[] = {1, 2, 5, 10, 33, 200};
    static const double ps[] = {0, 1, 10, 25, 50, 75, 90, 99, 100};
    for (size_t si = 0; si < sizeof sizes / sizeof *sizes; si++) {
        size_t n = sizes[si];
        double *x = tst_alloc(n * sizeof *x);
        fill(x, n, 7 + (unsigned)n, 0);
        x[n / 2] = x[0]; /* a tie */
        for (size_t pi = 0; pi < sizeof ps / sizeof *ps; pi++)
            CHECK_NEAR(met_stats_percentile(x, n, ps[pi]), brute_percentile(x, n, ps[pi]),
                       1e-12);
    }
}

TEST(known_percentiles_r_type7)
{
    /* R: quantile(c(1,2,3,4,10), c(.5,.9,.25)) = 3, 7.6, 2 */
    double x[] = {10, 1, 4, 3, 2};
    CHECK_NEAR(met_stats_percentile(x, 5, 50), 3, 1e-15);
    CHECK_NEAR(met_stats_percentile(x, 5, 90), 7.6, 1e-12);
    CHECK_NEAR(met_stats_percentile(x, 5, 25), 2, 1e-15);
    CHECK(isnan(met_stats_percentile(x, 5, 101)));
    CHECK(isnan(met_stats_percentile(x, 0, 50)));
}

/* Student t density, integrated by Simpson's rule from 0 to t. */
static double t_cdf_by_integration(double t, double df)
{
    double c = exp(lgamma((df + 1) / 2) - lgamma(df / 2)) / sqrt(df * M_PI);
    int m = 20000;
    double h = t / m, s = 0;
    for (int i = 0; i <= m; i++) {
        double u = i * h;
        double f = c * pow(1 + u * u / df, -(df + 1) / 2);
        s += f * (i == 0 || i == m ? 1 : (i % 2 ? 4 : 2));
    }
    return 0.5 + s * h / 3;
}

TEST(t_cdf_matches_integrated_density)
{
    static const double dfs[] = {1, 2, 3, 4.5, 9, 30, 200};
    static const double ts[] = {0.1, 0.5, 1, 2, 3.5, 6};
    for (size_t i = 0; i < sizeof dfs / sizeof *dfs; i++)
        for (size_t j = 0; j < sizeof ts / sizeof *ts; j++) {
            double want = t_cdf_by_integration(ts[j], dfs[i]);
            CHECK_NEAR(met_stats_t_cdf(ts[j], dfs[i]), want, 1e-9);
            CHECK_NEAR(met_stats_t_cdf(-ts[j], dfs[i]), 1 - want, 1e-9);
        }
}

TEST(t_quantile_table_values)
{
    /* Two-sided 95 % critical values (any t table). */
    CHECK_NEAR(met_stats_t_quantile(0.975, 1), 12.7062047, 1e-6);
    CHECK_NEAR(met_stats_t_quantile(0.975, 2), 4.3026527, 1e-6);
    CHECK_NEAR(met_stats_t_quantile(0.975, 4), 2.7764451, 1e-6);
    CHECK_NEAR(met_stats_t_quantile(0.975, 10), 2.2281389, 1e-6);
    CHECK_NEAR(met_stats_t_quantile(0.975, 30), 2.0422725, 1e-6);
    CHECK_NEAR(met_stats_t_quantile(0.995, 5), 4.0321430, 1e-6);
    CHECK_NEAR(met_stats_t_quantile(0.025, 4), -2.7764451, 1e-6);
    CHECK_NEAR(met_stats_t_quantile(0.5, 7), 0, 0);
    CHECK(isnan(met_stats_t_quantile(1.0, 3)));
    CHECK(isnan(met_stats_t_quantile(0.9, 0)));
}

TEST(summary_agrees_with_parts)
{
    double x[12];
    fill(x, 12, 3, 50);
    met_summary s;
    eng_err err = {0};
    REQUIRE(met_stats_summarize(x, 12, &s, &err) == ENG_OK);
    CHECK_EQ_INT(s.n, 12);
    CHECK_NEAR(s.mean, met_stats_mean(x, 12), 0);
    CHECK_NEAR(s.median, brute_percentile(x, 12, 50), 1e-12);
    CHECK_NEAR(s.p90, brute_percentile(x, 12, 90), 1e-12);
    CHECK_NEAR(s.p99, brute_percentile(x, 12, 99), 1e-12);
    CHECK_NEAR(s.min, kth_by_counting(x, 12, 0), 0);
    CHECK_NEAR(s.max, kth_by_counting(x, 12, 11), 0);
    double half = 2.2009852 * s.stddev / sqrt(12.0); /* t(0.975, 11) */
    CHECK_NEAR(s.ci_lo, s.mean - half, 1e-6);
    CHECK_NEAR(s.ci_hi, s.mean + half, 1e-6);
}

TEST(summary_edge_cases)
{
    met_summary s;
    eng_err err = {0};
    double one = 4.5;
    REQUIRE(met_stats_summarize(&one, 1, &s, &err) == ENG_OK);
    CHECK_NEAR(s.mean, 4.5, 0);
    CHECK_NEAR(s.stddev, 0, 0);
    CHECK(isnan(s.ci_lo) && isnan(s.ci_hi));
    CHECK_EQ_INT(met_stats_summarize(&one, 0, &s, &err), ENG_EINVAL);
    CHECK_CONTAINS(err.msg, "empty");
    double bad[] = {1, NAN};
    CHECK_EQ_INT(met_stats_summarize(bad, 2, &s, &err), ENG_EINVAL);
    CHECK_CONTAINS(err.msg, "NaN");
    double same[] = {3, 3, 3};
    REQUIRE(met_stats_summarize(same, 3, &s, &err) == ENG_OK);
    CHECK_NEAR(s.ci_lo, 3, 0);
    CHECK_NEAR(s.ci_hi, 3, 0);
}
