/*
 * stats.c — descriptive statistics and Student's t. See stats.h.
 *
 * The t CDF goes through the regularized incomplete beta function,
 * I_x(a, b), evaluated by its continued fraction (modified Lentz), which
 * converges fast for x < (a + 1) / (a + b + 2); the symmetry
 * I_x(a, b) = 1 - I_{1-x}(b, a) covers the rest. The quantile inverts the
 * CDF by bisection: 200 halvings of a bracket are far below double
 * precision and cost microseconds, and bisection cannot diverge.
 */
#include "metrics/stats.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

double met_stats_mean(const double *x, size_t n)
{
    if (n == 0)
        return NAN;
    double m = 0;
    for (size_t i = 0; i < n; i++)
        m += (x[i] - m) / (double)(i + 1);
    return m;
}

double met_stats_stddev(const double *x, size_t n)
{
    if (n < 2)
        return 0;
    double m = 0, m2 = 0; /* Welford: m2 = sum of squared deviations */
    for (size_t i = 0; i < n; i++) {
        double d = x[i] - m;
        m += d / (double)(i + 1);
        m2 += d * (x[i] - m);
    }
    return sqrt(m2 / (double)(n - 1));
}

double met_stats_percentile_sorted(const double *s, size_t n, double p)
{
    if (n == 0 || !(p >= 0 && p <= 100))
        return NAN;
    double h = (double)(n - 1) * p / 100.0;
    size_t lo = (size_t)floor(h);
    if (lo >= n - 1)
        return s[n - 1];
    double frac = h - (double)lo;
    return s[lo] + frac * (s[lo + 1] - s[lo]);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double met_stats_percentile(const double *x, size_t n, double p)
{
    if (n == 0)
        return NAN;
    double *s = malloc(n * sizeof *s);
    if (!s)
        return NAN;
    memcpy(s, x, n * sizeof *s);
    qsort(s, n, sizeof *s, cmp_double);
    double v = met_stats_percentile_sorted(s, n, p);
    free(s);
    return v;
}

/* Continued fraction of I_x(a, b) (Numerical Recipes' betacf, Lentz). */
static double beta_cf(double a, double b, double x)
{
    const double tiny = 1e-300;
    double c = 1, d = 1 - (a + b) * x / (a + 1);
    if (fabs(d) < tiny)
        d = tiny;
    d = 1 / d;
    double h = d;
    for (int m = 1; m <= 1000; m++) {
        double m2 = 2.0 * m;
        double aa = m * (b - m) * x / ((a + m2 - 1) * (a + m2));
        d = 1 + aa * d;
        d = fabs(d) < tiny ? 1 / tiny : 1 / d;
        c = 1 + aa / c;
        if (fabs(c) < tiny)
            c = tiny;
        h *= d * c;
        aa = -(a + m) * (a + b + m) * x / ((a + m2) * (a + m2 + 1));
        d = 1 + aa * d;
        d = fabs(d) < tiny ? 1 / tiny : 1 / d;
        c = 1 + aa / c;
        if (fabs(c) < tiny)
            c = tiny;
        double del = d * c;
        h *= del;
        if (fabs(del - 1) < 1e-16)
            break;
    }
    return h;
}

/* Regularized incomplete beta I_x(a, b), 0 <= x <= 1. */
static double inc_beta(double a, double b, double x)
{
    if (x <= 0)
        return 0;
    if (x >= 1)
        return 1;
    double lbt = lgamma(a + b) - lgamma(a) - lgamma(b) + a * log(x) + b * log1p(-x);
    if (x < (a + 1) / (a + b + 2))
        return exp(lbt) * beta_cf(a, b, x) / a;
    return 1 - exp(lbt) * beta_cf(b, a, 1 - x) / b;
}

double met_stats_t_cdf(double t, double df)
{
    if (!(df > 0) || isnan(t))
        return NAN;
    if (isinf(t))
        return t > 0 ? 1 : 0;
    /* P(|T| > |t|) = I_{df/(df+t^2)}(df/2, 1/2) */
    double tail = 0.5 * inc_beta(df / 2, 0.5, df / (df + t * t));
    return t > 0 ? 1 - tail : tail;
}

double met_stats_t_quantile(double p, double df)
{
    if (!(p > 0 && p < 1) || !(df > 0))
        return NAN;
    if (p == 0.5)
        return 0;
    if (p < 0.5)
        return -met_stats_t_quantile(1 - p, df);
    double lo = 0, hi = 1;
    while (met_stats_t_cdf(hi, df) < p && hi < 1e300)
        hi *= 2;
    for (int i = 0; i < 200 && hi - lo > 1e-15 * hi; i++) {
        double mid = 0.5 * (lo + hi);
        if (met_stats_t_cdf(mid, df) < p)
            lo = mid;
        else
            hi = mid;
    }
    return 0.5 * (lo + hi);
}

int met_stats_summarize(const double *x, size_t n, met_summary *out, eng_err *err)
{
    if (n == 0)
        return eng_err_set(err, ENG_EINVAL, "statistics of an empty set of values");
    for (size_t i = 0; i < n; i++)
        if (isnan(x[i]))
            return eng_err_set(err, ENG_EINVAL, "value %zu of %zu is NaN", i, n);
    double *s = malloc(n * sizeof *s);
    if (!s)
        return eng_err_set(err, ENG_ENOMEM, "out of memory sorting %zu values", n);
    memcpy(s, x, n * sizeof *s);
    qsort(s, n, sizeof *s, cmp_double);
    met_summary r = {.n = n, .min = s[0], .max = s[n - 1]};
    r.mean = met_stats_mean(x, n);
    r.stddev = met_stats_stddev(x, n);
    r.median = r.p50 = met_stats_percentile_sorted(s, n, 50);
    r.p90 = met_stats_percentile_sorted(s, n, 90);
    r.p99 = met_stats_percentile_sorted(s, n, 99);
    r.ci_lo = r.ci_hi = NAN;
    if (n >= 2) {
        double half = met_stats_t_quantile(0.975, (double)(n - 1)) * r.stddev / sqrt((double)n);
        r.ci_lo = r.mean - half;
        r.ci_hi = r.mean + half;
    }
    free(s);
    *out = r;
    return ENG_OK;
}
