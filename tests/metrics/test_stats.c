/* test_stats.c — metrics/stats.c against brute-force computations:
 * the Mann-Whitney p against enumeration of every rank assignment,
 * the bootstrap ratio interval against the exact resampling distribution,
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

/* ---- Mann-Whitney U and the bootstrap ratio interval ----------------- */

/* Mid-rank of pool[i] by counting: (#less) + (#equal + 1) / 2. */
static double midrank(const double *pool, int n, int i)
{
    int less = 0, equal = 0;
    for (int j = 0; j < n; j++)
        less += pool[j] < pool[i], equal += pool[j] == pool[i];
    return less + (equal + 1) / 2.0;
}

/* Two-sided exact p by visiting every assignment of na of the n pooled
 * values to the first sample (bit masks): the fraction of assignments
 * whose rank sum is at least as far from its mean as the observed one. */
static double brute_mwu_p(const double *a, int na, const double *b, int nb)
{
    double pool[16], rk[16];
    int n = na + nb;
    memcpy(pool, a, na * sizeof *a);
    memcpy(pool + na, b, nb * sizeof *b);
    double w = 0, mu = na * (n + 1) / 2.0;
    for (int i = 0; i < n; i++)
        rk[i] = midrank(pool, n, i), w += i < na ? rk[i] : 0;
    long hit = 0, all = 0;
    for (unsigned m = 0; m < 1u << n; m++) {
        if (__builtin_popcount(m) != na)
            continue;
        double s = 0;
        for (int i = 0; i < n; i++)
            s += m >> i & 1 ? rk[i] : 0;
        all++;
        hit += fabs(s - mu) >= fabs(w - mu) - 1e-9;
    }
    return (double)hit / (double)all;
}

TEST(mwu_hand_computed)
{
    met_mwu r;
    eng_err err = {0};
    double a3[] = {1, 2, 3}, b3[] = {4, 5, 6};
    REQUIRE(met_stats_mann_whitney(a3, 3, b3, 3, &r, &err) == ENG_OK);
    CHECK(r.exact);
    CHECK_NEAR(r.u, 0, 0);
    CHECK_NEAR(r.p, 2.0 / 20, 1e-15); /* both extremes of C(6,3) = 20 */
    REQUIRE(met_stats_mann_whitney(b3, 3, a3, 3, &r, &err) == ENG_OK);
    CHECK_NEAR(r.u, 9, 0);
    CHECK_NEAR(r.p, 0.1, 1e-15);
    double a2[] = {1, 2}, b2[] = {3, 4};
    REQUIRE(met_stats_mann_whitney(a2, 2, b2, 2, &r, &err) == ENG_OK);
    CHECK_NEAR(r.p, 2.0 / 6, 1e-15);
    /* every value tied: no evidence at all */
    double t[] = {5, 5, 5};
    REQUIRE(met_stats_mann_whitney(t, 3, t, 3, &r, &err) == ENG_OK);
    CHECK_NEAR(r.p, 1, 1e-15);
    CHECK_NEAR(r.u, 4.5, 0);
    /* R's ?wilcox.test example: W = 35, one-sided p 0.1272 (no ties) */
    double x[] = {0.80, 0.83, 1.89, 1.04, 1.45, 1.38, 1.91, 1.64, 0.73, 1.46};
    double y[] = {1.15, 0.88, 0.90, 0.74, 1.21};
    REQUIRE(met_stats_mann_whitney(x, 10, y, 5, &r, &err) == ENG_OK);
    CHECK_NEAR(r.u, 35, 0);
    CHECK_NEAR(r.p, 2 * 0.1272, 2e-4);
    CHECK_NEAR(met_stats_mwu_min_p(2, 2), 1.0 / 3, 1e-15);
    CHECK_NEAR(met_stats_mwu_min_p(3, 3), 0.1, 1e-15);
    CHECK_NEAR(met_stats_mwu_min_p(4, 4), 2.0 / 70, 1e-15);
    CHECK_NEAR(met_stats_mwu_min_p(1, 1), 1, 0);
    CHECK(met_stats_mann_whitney(x, 0, y, 5, &r, &err) == ENG_EINVAL);
    double bad[] = {1, NAN};
    CHECK(met_stats_mann_whitney(bad, 2, y, 5, &r, &err) == ENG_EINVAL);
}

/* The exact p against enumeration of every rank assignment, on random
 * small samples with and without ties (values drawn from few levels). */
TEST(mwu_exact_matches_enumeration)
{
    unsigned s = 12345;
    for (int iter = 0; iter < 300; iter++) {
        double a[8], b[8];
        s ^= s << 13, s ^= s >> 17, s ^= s << 5;
        int na = 1 + s % 7, nb = 1 + (s >> 8) % 7, levels = iter % 3 ? 4 : 1000;
        for (int i = 0; i < na + nb; i++) {
            s ^= s << 13, s ^= s >> 17, s ^= s << 5;
            (i < na ? a : b)[i < na ? i : i - na] = (double)(s % (unsigned)levels) * 0.25;
        }
        met_mwu r;
        eng_err err = {0};
        REQUIRE(met_stats_mann_whitney(a, na, b, nb, &r, &err) == ENG_OK);
        double u = 0; /* U by counting pairs */
        for (int i = 0; i < na; i++)
            for (int j = 0; j < nb; j++)
                u += a[i] > b[j] ? 1 : a[i] == b[j] ? 0.5 : 0;
        CHECK_NEAR(r.u, u, 0);
        CHECK_NEAR(r.p, brute_mwu_p(a, na, b, nb), 1e-12);
    }
}

/* Above MET_MWU_EXACT_MAX: the normal approximation, checked against the
 * formula worked by hand (tie-corrected variance, continuity 0.5). */
TEST(mwu_normal_approximation)
{
    double a[30], b[30];
    for (int i = 0; i < 30; i++)
        a[i] = i < 20 ? 1 : 2, b[i] = i < 10 ? 2 : 3;
    met_mwu r;
    eng_err err = {0};
    REQUIRE(met_stats_mann_whitney(a, 30, b, 30, &r, &err) == ENG_OK);
    CHECK(!r.exact);
    /* pairs: a=1 (20) vs b=2 (10): 0; a=2 (10) vs b=2 (10): 100 ties -> 50 */
    CHECK_NEAR(r.u, 50, 0);
    /* ties: three groups of 20 -> sum t^3 - t = 3 * 7980 */
    double var = 900 / 12.0 * (61 - 3 * 7980.0 / (60 * 59));
    double z = (450 - 50 - 0.5) / sqrt(var);
    CHECK_NEAR(r.p, erfc(z / sqrt(2)), 1e-15);
    CHECK(r.p < 1e-9);
}

/* Every resample pair of na = nb = 3 has probability 1/27^2: the bootstrap
 * ends must sit between the exact 1 % and 5 % (95 % and 99 %) quantiles
 * of that distribution. */
TEST(ratio_ci_against_enumeration)
{
    double a[] = {10, 12, 15}, b[] = {11, 16, 20}, q[27 * 27];
    int k = 0;
    for (int i = 0; i < 27; i++)
        for (int j = 0; j < 27; j++) {
            double ma = (a[i % 3] + a[i / 3 % 3] + a[i / 9]) / 3;
            double mb = (b[j % 3] + b[j / 3 % 3] + b[j / 9]) / 3;
            q[k++] = mb / ma;
        }
    met_ratio_ci r, r2;
    eng_err err = {0};
    REQUIRE(met_stats_ratio_ci(a, 3, b, 3, 20000, 7, &r, &err) == ENG_OK);
    CHECK_NEAR(r.ratio, (47.0 / 3) / (37.0 / 3), 1e-15);
    CHECK(r.lo >= kth_by_counting(q, 729, 7) && r.lo <= kth_by_counting(q, 729, 36));
    CHECK(r.hi >= kth_by_counting(q, 729, 692) && r.hi <= kth_by_counting(q, 729, 721));
    REQUIRE(met_stats_ratio_ci(a, 3, b, 3, 20000, 7, &r2, &err) == ENG_OK);
    CHECK(r.lo == r2.lo && r.hi == r2.hi); /* same seed, same interval */
    double c[] = {4, 4}, d[] = {6, 6, 6};
    REQUIRE(met_stats_ratio_ci(c, 2, d, 3, 100, 1, &r, &err) == ENG_OK);
    CHECK(r.ratio == 1.5 && r.lo == 1.5 && r.hi == 1.5);
    double z[] = {0, 0};
    REQUIRE(met_stats_ratio_ci(z, 2, d, 3, 100, 1, &r, &err) == ENG_OK);
    CHECK(isnan(r.ratio) && isnan(r.lo));
    CHECK(met_stats_ratio_ci(c, 2, d, 0, 100, 1, &r, &err) == ENG_EINVAL);
}

/* E-divisive means: a planted step is found at its index with a small p;
 * two steps both; a flat noisy series gives nothing (at sig 0.05 with a
 * fixed seed); the same input gives the same answer. */
TEST(edivisive_finds_planted_steps)
{
    double x[60];
    uint64_t s = 12345;
    for (int i = 0; i < 60; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        double noise = ((s >> 11) / 9007199254740992.0 - 0.5) * 2; /* +-1 */
        x[i] = (i < 25 ? 10 : i < 45 ? 14 : 12) + noise;
    }
    met_cp cp[8];
    size_t n = 0;
    eng_err err = {0};
    met_cp_opts o = {.min_size = 3, .permutations = 199, .seed = 1};
    REQUIRE(met_stats_edivisive(x, 60, &o, cp, 8, &n, &err) == ENG_OK);
    REQUIRE_MSG(n == 2, "found %zu change points", n);
    CHECK_EQ_INT(cp[0].index, 25);
    CHECK_EQ_INT(cp[1].index, 45);
    CHECK(cp[0].p < 0.05 && cp[1].p < 0.05);
    size_t n2 = 0;
    met_cp again[8];
    REQUIRE(met_stats_edivisive(x, 60, &o, again, 8, &n2, &err) == ENG_OK);
    CHECK(n2 == n && again[0].p == cp[0].p && again[1].index == cp[1].index);
    /* noise alone */
    for (int i = 0; i < 60; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        x[i] = 10 + ((s >> 11) / 9007199254740992.0 - 0.5) * 2;
    }
    REQUIRE(met_stats_edivisive(x, 60, &o, cp, 8, &n, &err) == ENG_OK);
    CHECK_EQ_INT(n, 0);
    /* a constant series, too short a one, a NaN */
    for (int i = 0; i < 60; i++)
        x[i] = 3;
    REQUIRE(met_stats_edivisive(x, 60, &o, cp, 8, &n, &err) == ENG_OK);
    CHECK_EQ_INT(n, 0);
    REQUIRE(met_stats_edivisive(x, 5, &o, cp, 8, &n, &err) == ENG_OK);
    CHECK_EQ_INT(n, 0);
    x[3] = NAN;
    CHECK_EQ_INT(met_stats_edivisive(x, 60, &o, cp, 8, &n, &err), ENG_EINVAL);
}

/* The statistic by brute force at every split of a small series equals
 * the incremental scan's choice (the best split of the whole series is the
 * first change point accepted). */
TEST(edivisive_split_matches_brute_force)
{
    const double x[] = {1, 1.2, 0.9, 1.1, 5, 5.3, 4.8, 5.1, 5.2, 4.9};
    size_t n = sizeof x / sizeof *x, best_t = 0;
    double best = -1;
    for (size_t t = 2; t + 2 <= n; t++) {
        double b = 0, wl = 0, wr = 0;
        for (size_t i = 0; i < n; i++)
            for (size_t j = i + 1; j < n; j++) {
                double d = fabs(x[i] - x[j]);
                if (j < t)
                    wl += d;
                else if (i >= t)
                    wr += d;
                else
                    b += d;
            }
        double a = (double)t, m = (double)(n - t);
        double q = a * m / (a + m) * (2 * b / (a * m) - wl / (a * (a - 1) / 2) -
                                      wr / (m * (m - 1) / 2));
        if (q > best)
            best = q, best_t = t;
    }
    met_cp cp[4];
    size_t k = 0;
    eng_err err = {0};
    met_cp_opts o = {.min_size = 2, .permutations = 99, .seed = 3};
    REQUIRE(met_stats_edivisive(x, n, &o, cp, 1, &k, &err) == ENG_OK);
    REQUIRE(k == 1);
    CHECK_EQ_INT(cp[0].index, best_t);
    CHECK_NEAR(cp[0].stat, best, 1e-12);
}
