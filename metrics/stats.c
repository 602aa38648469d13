/*
 * stats.c — descriptive statistics and Student's t. See stats.h.
 *
 * The t CDF goes through the regularized incomplete beta function,
 * I_x(a, b), evaluated by its continued fraction (modified Lentz), which
 * converges fast for x < (a + 1) / (a + b + 2); the symmetry
 * I_x(a, b) = 1 - I_{1-x}(b, a) covers the rest. The quantile inverts the
 * CDF by bisection: 200 halvings of a bracket are far below double
 * precision and cost microseconds, and bisection cannot diverge.
 *
 * The exact Mann-Whitney p counts rank-sum subsets by dynamic programming:
 * O(n * na * n^2) additions, a few million for n = 50 (MET_MWU_EXACT_MAX).
 */
#include "metrics/stats.h"
#include "metrics/rng.h"

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

/* ---- two-sample comparison: Mann-Whitney U, bootstrap ratio ---------- */

/* Twice the mid-rank of each pooled value (integers: a tie group over
 * ranks i+1..j has mid-rank (i + 1 + j) / 2). pooled is a then b. */
static int doubled_midranks(const double *pool, size_t n, long *r2, double *ties_t3)
{
    size_t *idx = malloc(n * sizeof *idx);
    if (!idx)
        return ENG_ENOMEM;
    for (size_t i = 0; i < n; i++)
        idx[i] = i;
    /* insertion sort of indices by value: n is a repetition count */
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && pool[idx[j - 1]] > pool[idx[j]]; j--) {
            size_t t = idx[j];
            idx[j] = idx[j - 1], idx[j - 1] = t;
        }
    *ties_t3 = 0;
    for (size_t i = 0, j; i < n; i = j) {
        for (j = i + 1; j < n && pool[idx[j]] == pool[idx[i]]; j++)
            ;
        for (size_t k = i; k < j; k++)
            r2[idx[k]] = (long)(i + 1 + j);
        double t = (double)(j - i);
        *ties_t3 += t * t * t - t;
    }
    free(idx);
    return ENG_OK;
}

/* Exact two-sided p: count subsets of size na of the doubled ranks by
 * their sum (cnt[k][s], k items chosen so far), then add up the subsets at
 * least as far from the mean as the observed sum w2. */
static int mwu_exact_p(const long *r2, size_t n, size_t na, long w2, double *p)
{
    long smax = 0;
    for (size_t i = 0; i < n; i++)
        smax += r2[i];
    size_t width = (size_t)smax + 1;
    double *cnt = calloc((na + 1) * width, sizeof *cnt);
    if (!cnt)
        return ENG_ENOMEM;
    cnt[0] = 1;
    for (size_t i = 0; i < n; i++)
        for (size_t k = (i + 1 < na ? i + 1 : na); k >= 1; k--)
            for (long s = smax; s >= r2[i]; s--)
                cnt[k * width + (size_t)s] += cnt[(k - 1) * width + (size_t)(s - r2[i])];
    /* E[W2] = na (n + 1): an integer, so the comparison below is exact */
    long mu2 = (long)(na * (n + 1)), dev = labs(w2 - mu2);
    double tail = 0, total = 0;
    for (long s = 0; s <= smax; s++) {
        double c = cnt[na * width + (size_t)s];
        total += c;
        if (labs(s - mu2) >= dev)
            tail += c;
    }
    free(cnt);
    *p = tail / total;
    return ENG_OK;
}

int met_stats_mann_whitney(const double *a, size_t na, const double *b, size_t nb,
                           met_mwu *out, eng_err *err)
{
    if (na == 0 || nb == 0)
        return eng_err_set(err, ENG_EINVAL, "rank test of an empty sample (%zu and %zu values)",
                           na, nb);
    size_t n = na + nb;
    double *pool = malloc(n * sizeof *pool);
    long *r2 = malloc(n * sizeof *r2);
    int rc = pool && r2 ? ENG_OK : ENG_ENOMEM;
    double t3 = 0;
    if (!rc) {
        memcpy(pool, a, na * sizeof *pool);
        memcpy(pool + na, b, nb * sizeof *pool);
        for (size_t i = 0; i < n && !rc; i++)
            if (isnan(pool[i]))
                rc = eng_err_set(err, ENG_EINVAL, "rank test: value %zu is NaN", i);
    }
    if (!rc)
        rc = doubled_midranks(pool, n, r2, &t3);
    long w2 = 0;
    for (size_t i = 0; !rc && i < na; i++)
        w2 += r2[i];
    met_mwu r = {.u = 0.5 * (double)w2 - 0.5 * (double)(na * (na + 1))};
    if (!rc && n <= MET_MWU_EXACT_MAX) {
        r.exact = 1;
        rc = mwu_exact_p(r2, n, na, w2, &r.p);
    } else if (!rc) {
        double dn = (double)n, mu = 0.5 * (double)na * (double)nb;
        double var = (double)na * (double)nb / 12.0 * ((dn + 1) - t3 / (dn * (dn - 1)));
        double z = fmax(fabs(r.u - mu) - 0.5, 0) / sqrt(var);
        r.p = var > 0 ? erfc(z / sqrt(2.0)) : 1;
    }
    if (rc == ENG_ENOMEM)
        eng_err_set(err, rc, "out of memory ranking %zu values", n);
    free(pool);
    free(r2);
    if (!rc)
        *out = r;
    return rc;
}

double met_stats_mwu_min_p(size_t na, size_t nb)
{
    double c = 1; /* C(na + nb, na), built as a product of ratios */
    for (size_t i = 1; i <= na; i++)
        c = c * (double)(nb + i) / (double)i;
    return fmin(1, 2 / c);
}

static double resampled_mean(met_rng *g, const double *x, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++)
        m += (x[met_rng_below(g, n)] - m) / (double)(i + 1);
    return m;
}

int met_stats_ratio_ci(const double *a, size_t na, const double *b, size_t nb,
                       int resamples, uint64_t seed, met_ratio_ci *out, eng_err *err)
{
    if (na == 0 || nb == 0 || resamples < 1)
        return eng_err_set(err, ENG_EINVAL, "ratio interval of %zu and %zu values, %d resamples",
                           na, nb, resamples);
    for (size_t i = 0; i < na + nb; i++)
        if (isnan(i < na ? a[i] : b[i - na]))
            return eng_err_set(err, ENG_EINVAL, "ratio interval: value %zu is NaN", i);
    met_ratio_ci r = {NAN, NAN, NAN};
    double ma = met_stats_mean(a, na);
    if (ma != 0) {
        double *q = malloc((size_t)resamples * sizeof *q);
        if (!q)
            return eng_err_set(err, ENG_ENOMEM, "out of memory for %d resamples", resamples);
        met_rng g;
        met_rng_seed(&g, seed);
        for (int i = 0; i < resamples; i++) {
            double da = resampled_mean(&g, a, na);
            q[i] = resampled_mean(&g, b, nb) / da; /* da = 0: +-inf, sorts to an end */
        }
        qsort(q, (size_t)resamples, sizeof *q, cmp_double);
        r.ratio = met_stats_mean(b, nb) / ma;
        r.lo = met_stats_percentile_sorted(q, (size_t)resamples, 2.5);
        r.hi = met_stats_percentile_sorted(q, (size_t)resamples, 97.5);
        free(q);
    }
    *out = r;
    return ENG_OK;
}
