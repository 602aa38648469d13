/*
 * stats.h — descriptive statistics of repeated measurements: mean, median,
 * extremes, sample standard deviation, percentiles and the 95 % confidence
 * interval of the mean from Student's t distribution.
 *
 * Conventions (the same as R's defaults, so numbers can be checked there):
 *  - stddev is the sample standard deviation (divisor n - 1), 0 when n < 2;
 *  - percentiles interpolate linearly between order statistics (R type 7,
 *    numpy's default): h = (n - 1) p / 100, x[floor h] + frac(h) (x[ceil h] -
 *    x[floor h]) on the sorted data;
 *  - the CI of the mean is mean ± t(0.975, n - 1) · s / sqrt(n); it is
 *    undefined (NaN) for n < 2.
 * And for comparing two sets of repetitions: the Mann-Whitney rank test
 * and a bootstrap interval of the ratio of their means.
 * NaN inputs are rejected (ENG_EINVAL): a measurement is a number.
 *
 * Thread-safety: every function is pure; call from any thread.
 */
#ifndef MET_STATS_H
#define MET_STATS_H

#include "engine/err.h"

#include <stddef.h>
#include <stdint.h>

typedef struct met_summary {
    size_t n;           /* number of values summarised                   */
    double mean, median, min, max;
    double stddev;      /* sample standard deviation (n - 1), 0 if n < 2 */
    double p50, p90, p99;
    double ci_lo, ci_hi; /* 95 % CI of the mean (t); NaN when n < 2      */
} met_summary;

/* Summarises x[0..n). ENG_EINVAL when n == 0 or a value is NaN;
 * ENG_ENOMEM when the sorted copy cannot be allocated. */
int met_stats_summarize(const double *x, size_t n, met_summary *out, eng_err *err);

/* Mean (Welford's update, stable for large offsets); NaN when n == 0. */
double met_stats_mean(const double *x, size_t n);

/* Sample standard deviation (n - 1); 0 when n < 2. */
double met_stats_stddev(const double *x, size_t n);

/* p-th percentile (0 <= p <= 100) of sorted[0..n), R type 7; NaN when
 * n == 0 or p is out of range. The input must be sorted ascending. */
double met_stats_percentile_sorted(const double *sorted, size_t n, double p);

/* Sorts a copy and returns the percentile; NaN on n == 0 or no memory. */
double met_stats_percentile(const double *x, size_t n, double p);

/* Student's t distribution with df > 0 degrees of freedom: CDF and the
 * quantile (0 < p < 1), e.g. met_stats_t_quantile(0.975, 4) = 2.7764. */
double met_stats_t_cdf(double t, double df);
double met_stats_t_quantile(double p, double df);

/* Mann-Whitney U (Wilcoxon rank-sum) test of a[0..na) against b[0..nb),
 * two-sided. Tied values get mid-ranks. With na + nb <= MET_MWU_EXACT_MAX
 * the p-value is exact: the permutation distribution of the rank sum of a
 * (mid-ranks included, so ties are exact too) counted by dynamic
 * programming over all C(na + nb, na) assignments; p = P(|W - E W| >=
 * |w - E W|). Larger samples use the normal approximation with the tie
 * correction of the variance and a continuity correction of 0.5 (R's
 * wilcox.test(exact = FALSE, correct = TRUE)). */
#define MET_MWU_EXACT_MAX 50
typedef struct met_mwu {
    double u;   /* U of a: pairs with a > b, plus half the tied pairs   */
    double p;   /* two-sided p-value                                     */
    int exact;  /* 1 exact permutation distribution, 0 normal approx    */
} met_mwu;

/* ENG_EINVAL when a sample is empty or holds NaN; ENG_ENOMEM. */
int met_stats_mann_whitney(const double *a, size_t na, const double *b, size_t nb,
                           met_mwu *out, eng_err *err);

/* The smallest two-sided p the exact test can give for these sizes (no
 * ties): 2 / C(na + nb, na), 1 when that exceeds 1. With na = nb = 2 it is
 * 1/3, with 3 + 3 0.1, with 4 + 4 0.029: below 4 repetitions a side the
 * test cannot reach p < 0.05 whatever the data. */
double met_stats_mwu_min_p(size_t na, size_t nb);

/* Ratio of means mean(b) / mean(a) with a percentile-bootstrap 95 %
 * interval: `resamples` times, resample a and b independently with
 * replacement (seeded xoshiro256**: the same seed gives the same interval),
 * take the 2.5th and 97.5th percentiles (R type 7) of the resampled ratios.
 * Bootstrap rather than Fieller: it assumes no normality, and Fieller's
 * interval is unbounded whenever mean(a) is not clearly away from zero.
 * With very few repetitions the bootstrap interval is too narrow (it only
 * sees the values it has); read it with n. ratio, lo, hi are NaN when
 * mean(a) is 0. ENG_EINVAL on an empty sample, NaN or resamples < 1. */
typedef struct met_ratio_ci { double ratio, lo, hi; } met_ratio_ci;
int met_stats_ratio_ci(const double *a, size_t na, const double *b, size_t nb,
                       int resamples, uint64_t seed, met_ratio_ci *out, eng_err *err);

/* Change points of a series by E-divisive means (Matteson & James 2014),
 * the method of MongoDB's performance CI and Apache Otava (changepoint.c
 * states the statistic and the hierarchy): nonparametric (no normality),
 * multiple changes, each with a permutation-test p-value. Chosen over PELT
 * because PELT needs a cost model and a penalty, and gives no p-value for a
 * change; over a t-test per split because benchmark noise is not normal. */
typedef struct met_cp_opts {
    int min_size;       /* points at least on each side of a change (>= 2)  */
    int permutations;   /* R of the permutation test (0: 199)               */
    double sig;         /* accept a change when p < sig (0: 0.05)           */
    double alpha;       /* distance exponent in (0, 2] (0: 1, i.e. means)   */
    uint64_t seed;      /* permutation draws                                */
} met_cp_opts;

typedef struct met_cp {
    size_t index;       /* first point after the change                     */
    double stat;        /* q of the split                                   */
    double p;           /* permutation p-value                              */
} met_cp;

/* Up to cap change points of x[0..n) into out (in series order), their
 * count in *nout. ENG_EINVAL for a non-finite value or n > 5000;
 * ENG_ENOMEM (n^2 distances are kept). NULL o: the defaults. */
int met_stats_edivisive(const double *x, size_t n, const met_cp_opts *o, met_cp *out,
                        size_t cap, size_t *nout, eng_err *err);

#endif
