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
 * NaN inputs are rejected (ENG_EINVAL): a measurement is a number.
 *
 * Thread-safety: every function is pure; call from any thread.
 */
#ifndef MET_STATS_H
#define MET_STATS_H

#include "engine/err.h"

#include <stddef.h>

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

#endif
