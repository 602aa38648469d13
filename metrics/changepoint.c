/*
 * changepoint.c — change points of a series by E-divisive means (Matteson &
 * James, "A Nonparametric Approach for Multiple Change Point Analysis of
 * Multivariate Data", JASA 2014; the method of MongoDB's performance CI and
 * of Apache Otava / Hunter). See stats.h.
 *
 * Divergence. For a segment x[s..e) split at t into X = x[s..t) (n points)
 * and Y = x[t..e) (m points), with d(a, b) = |a - b|^alpha:
 *     E = 2/(n m) sum d(X, Y) - 1/C(n,2) sum_{i<k} d(X_i, X_k)
 *                             - 1/C(m,2) sum_{j<k} d(Y_j, Y_k)
 *     q = n m / (n + m) E
 * (the energy distance between the two sides, scaled; alpha = 1 compares
 * means). The best split of a segment maximises q. Moving t by one moves
 * one point from Y to X, which changes the three sums by two row sums, so
 * a scan of all splits is O(len^2).
 *
 * Hierarchy. Start with one segment; repeatedly take the segment whose best
 * split has the largest q, and test it: permute the points within every
 * current segment (so known changes stay), take the largest best-split q
 * over the segments, R times; p = (1 + #{permuted q >= observed}) / (R + 1).
 * Accept when p < sig and split; stop at the first rejection. The draws
 * come from the seeded generator (rng.h): the same series and seed give the
 * same change points.
 */
#include "metrics/rng.h"
#include "metrics/stats.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAX_POINTS 5000 /* d is n^2 doubles: 200 MB at this size */

typedef struct scan {
    const double *d;        /* [n][n] distances                              */
    size_t n;
    const size_t *perm;     /* [n] index map (identity or a permutation)     */
    size_t min_size;
} scan;

static double dist(const scan *sc, size_t i, size_t j)
{
    return sc->d[sc->perm[i] * sc->n + sc->perm[j]];
}

/* Best split of [s, e): returns q, *at the first index of the right side;
 * -INFINITY when the segment is too short to split. */
static double best_split(const scan *sc, size_t s, size_t e, size_t *at)
{
    size_t k = sc->min_size;
    if (e - s < 2 * k)
        return -INFINITY;
    double between = 0, wl = 0, wr = 0;
    for (size_t i = s; i < s + k; i++) /* X = [s, s+k), Y = [s+k, e) */
        for (size_t j = i + 1; j < e; j++) {
            if (j < s + k)
                wl += dist(sc, i, j);
            else
                between += dist(sc, i, j);
        }
    for (size_t i = s + k; i < e; i++)
        for (size_t j = i + 1; j < e; j++)
            wr += dist(sc, i, j);
    double best = -INFINITY;
    for (size_t t = s + k;; t++) {
        double n = (double)(t - s), m = (double)(e - t);
        double ediv = 2 * between / (n * m) - wl / (n * (n - 1) / 2) - wr / (m * (m - 1) / 2);
        double q = n * m / (n + m) * ediv;
        if (q > best)
            best = q, *at = t;
        if (t + 1 > e - k)
            break;
        /* point t moves from Y to X */
        double to_left = 0, to_right = 0;
        for (size_t i = s; i < t; i++)
            to_left += dist(sc, i, t);
        for (size_t j = t + 1; j < e; j++)
            to_right += dist(sc, t, j);
        between += to_right - to_left;
        wl += to_left;
        wr -= to_right;
    }
    return best;
}

/* The largest best-split q over the segments cut by cps[0..ncp) (sorted). */
static double max_over(const scan *sc, const size_t *cuts, size_t ncut, size_t *seg_of_best,
                       size_t *at)
{
    double best = -INFINITY;
    for (size_t g = 0; g + 1 < ncut; g++) {
        size_t t = 0;
        double q = best_split(sc, cuts[g], cuts[g + 1], &t);
        if (q > best) {
            best = q;
            if (seg_of_best)
                *seg_of_best = g;
            if (at)
                *at = t;
        }
    }
    return best;
}

static void shuffle_within(size_t *perm, const size_t *cuts, size_t ncut, met_rng *g)
{
    for (size_t c = 0; c + 1 < ncut; c++)
        for (size_t i = cuts[c + 1] - 1; i > cuts[c]; i--) {
            size_t j = cuts[c] + (size_t)(met_rng_next(g) % (i - cuts[c] + 1));
            size_t t = perm[i];
            perm[i] = perm[j], perm[j] = t;
        }
}

static void insert_cut(size_t *cuts, size_t *ncut, size_t at)
{
    size_t i = *ncut;
    while (i > 0 && cuts[i - 1] > at)
        cuts[i] = cuts[i - 1], i--;
    cuts[i] = at;
    (*ncut)++;
}

int met_stats_edivisive(const double *x, size_t n, const met_cp_opts *o, met_cp *out,
                        size_t cap, size_t *nout, eng_err *err)
{
    *nout = 0;
    met_cp_opts opt = o ? *o : (met_cp_opts){0};
    if (opt.min_size < 2)
        opt.min_size = 2; /* within-sums need pairs on both sides */
    if (opt.permutations <= 0)
        opt.permutations = 199;
    if (!(opt.sig > 0))
        opt.sig = 0.05;
    if (!(opt.alpha > 0 && opt.alpha <= 2))
        opt.alpha = 1;
    if (n > MAX_POINTS)
        return eng_err_set(err, ENG_EINVAL, "change points: %zu points, at most %d", n,
                           MAX_POINTS);
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i]))
            return eng_err_set(err, ENG_EINVAL, "change points: point %zu is not finite", i);
    if (n < 2 * (size_t)opt.min_size)
        return ENG_OK;
    double *d = malloc(n * n * sizeof *d);
    size_t *id = malloc(n * sizeof *id), *perm = malloc(n * sizeof *perm);
    size_t *cuts = malloc((n + 2) * sizeof *cuts);
    if (!d || !id || !perm || !cuts) {
        free(d), free(id), free(perm), free(cuts);
        return eng_err_set(err, ENG_ENOMEM, "change points: out of memory for %zu points", n);
    }
    for (size_t i = 0; i < n; i++) {
        id[i] = i;
        for (size_t j = 0; j < n; j++)
            d[i * n + j] = opt.alpha == 1 ? fabs(x[i] - x[j]) : pow(fabs(x[i] - x[j]), opt.alpha);
    }
    scan sc = {d, n, id, (size_t)opt.min_size};
    size_t ncut = 2;
    cuts[0] = 0, cuts[1] = n;
    met_rng g;
    met_rng_seed(&g, opt.seed);
    while (*nout < cap) {
        size_t at = 0;
        sc.perm = id;
        double q = max_over(&sc, cuts, ncut, NULL, &at);
        if (!isfinite(q) || !(q > 0))
            break;
        int ge = 0;
        memcpy(perm, id, n * sizeof *perm);
        sc.perm = perm;
        for (int r = 0; r < opt.permutations; r++) {
            shuffle_within(perm, cuts, ncut, &g);
            ge += max_over(&sc, cuts, ncut, NULL, NULL) >= q;
        }
        double p = (1.0 + ge) / (1.0 + opt.permutations);
        if (p >= opt.sig)
            break;
        out[(*nout)++] = (met_cp){.index = at, .stat = q, .p = p};
        insert_cut(cuts, &ncut, at);
    }
    /* in series order */
    for (size_t i = 1; i < *nout; i++)
        for (size_t j = i; j > 0 && out[j - 1].index > out[j].index; j--) {
            met_cp t = out[j];
            out[j] = out[j - 1], out[j - 1] = t;
        }
    free(d), free(id), free(perm), free(cuts);
    return ENG_OK;
}
