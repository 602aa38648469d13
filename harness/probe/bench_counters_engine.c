/*
 * bench_counters_engine.c — `moebench bench-counters --model FILE`: the
 * overhead of region counters on the real engine, measured in one process.
 *
 * Why in one process: the engine's decode speed differs by ±7–10 % between
 * runs of the same command on these shared VMs, far more than the 2 % the
 * counters may cost, so comparing two runs cannot show it. Neither can
 * alternating tokens: two successive tokens route to different experts and
 * differ by several per cent themselves. So every decode step is timed
 * twice on identical work: the token is decoded at position p, the session
 * is rewound to p (eng_session_rewind) and the same token is decoded again,
 * once with the region hooks on and once off, the order alternating from
 * step to step, after one untimed pass that warms the caches (see
 * decode_twice). The hooked pass must give bit-identical logits (the hooks
 * only observe; counted as mismatches, which must be 0). Each step gives a ratio
 * on/off; the result is the median ratio with a distribution-free 95 %
 * interval (order statistics of the ratios, binomial with p = 1/2). Times
 * are thread CPU time (with one thread it holds all the work; the
 * counters' system calls count, other jobs preempting us do not) and wall
 * time.
 */
#include "harness/probe/probe.h"

#include "engine/model.h"
#include "engine/session.h"
#include "metrics/regions.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int64_t clock_ns(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int32_t argmax(const float *v, int64_t n)
{
    int64_t best = 0;
    for (int64_t i = 1; i < n; i++)
        if (v[i] > v[best])
            best = i;
    return (int32_t)best;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Sorts v and gives the median and the distribution-free 95 % interval of
 * the median: the order statistics j-th and (n-1-j)-th with j the largest
 * index such that P(Binomial(n, 1/2) <= j) <= 0.025 (normal approximation
 * for n > 0; the interval is the whole range for tiny n). */
static void median_ci(double *v, int64_t n, double *med, double *lo, double *hi)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    *med = n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
    double j = floor(0.5 * (double)n - 0.98 * sqrt((double)n)) - 1;
    int64_t k = j < 0 ? 0 : (int64_t)j;
    *lo = v[k];
    *hi = v[n - 1 - k];
}

typedef struct token_time {
    int64_t cpu_ns, wall_ns;
} token_time;

/* Decodes `tok` at the session's position with hook table h (NULL: none). */
static int decode_timed(eng_session *s, const eng_hooks *h, int32_t tok, token_time *t,
                        eng_err *err)
{
    eng_session_set_hooks(s, h);
    int64_t c0 = clock_ns(CLOCK_THREAD_CPUTIME_ID), w0 = clock_ns(CLOCK_MONOTONIC);
    int rc = eng_session_decode(s, tok, err);
    t->cpu_ns = clock_ns(CLOCK_THREAD_CPUTIME_ID) - c0;
    t->wall_ns = clock_ns(CLOCK_MONOTONIC) - w0;
    return rc;
}

/* One step: `tok` at position p three times, rewinding in between: an
 * untimed pass that warms the caches (a repeated pass runs 10-20 % faster
 * than the first one here, which would swamp the comparison), then hooks
 * on and off in the given order. Counts a logits mismatch between the
 * warm-up pass (hooks off) and the hooked one. */
static int decode_twice(eng_session *s, const eng_hooks *on, int on_first, int32_t tok,
                        float *first_logits, int64_t vocab, token_time *t_on,
                        token_time *t_off, int64_t *mismatches, eng_err *err)
{
    int64_t p = eng_session_pos(s);
    token_time warm;
    int rc = decode_timed(s, NULL, tok, &warm, err);
    if (!rc) {
        memcpy(first_logits, eng_session_logits(s), (size_t)vocab * sizeof(float));
        rc = eng_session_rewind(s, p, err);
    }
    if (!rc)
        rc = decode_timed(s, on_first ? on : NULL, tok, on_first ? t_on : t_off, err);
    if (!rc && on_first)
        *mismatches += memcmp(first_logits, eng_session_logits(s), (size_t)vocab * 4) != 0;
    if (!rc)
        rc = eng_session_rewind(s, p, err);
    if (!rc)
        rc = decode_timed(s, on_first ? NULL : on, tok, on_first ? t_off : t_on, err);
    if (!rc && !on_first)
        *mismatches += memcmp(first_logits, eng_session_logits(s), (size_t)vocab * 4) != 0;
    return rc;
}

/* The alternated decode; fills t_on[i], t_off[i] for step i. */
static int decode_steps(eng_session *s, const eng_hooks *on, const hx_probe_bce_opts *o,
                        int64_t vocab, int32_t tok, token_time *t_on, token_time *t_off,
                        int32_t *ids, hx_probe_bce_result *r, eng_err *err)
{
    float *first = malloc((size_t)vocab * sizeof *first);
    if (!first)
        return eng_err_set(err, ENG_ENOMEM, "out of memory for %lld logits", (long long)vocab);
    int rc = ENG_OK;
    for (int64_t i = 0; i < o->steps && !rc; i++) {
        ids[i] = tok;
        rc = decode_twice(s, on, i % 2 == 0, tok, first, vocab, &t_on[i], &t_off[i],
                          &r->mismatches, err);
        tok = argmax(eng_session_logits(s), vocab);
        if (o->progress && (i + 1) % 16 == 0)
            fprintf(stderr, "\rbench-counters: %lld/%lld steps", (long long)(i + 1),
                    (long long)o->steps);
    }
    if (o->progress)
        fputc('\n', stderr);
    eng_session_set_hooks(s, NULL);
    free(first);
    return rc;
}

static void summarise(const token_time *t_on, const token_time *t_off, int64_t n,
                      hx_probe_bce_result *r)
{
    double *v = malloc((size_t)n * 4 * sizeof *v);
    if (!v)
        return;
    double *cpu = v, *wall = v + n, *a = v + 2 * n, *b = v + 3 * n, d0, d1;
    for (int64_t i = 0; i < n; i++) {
        cpu[i] = (double)t_on[i].cpu_ns / (double)t_off[i].cpu_ns;
        wall[i] = (double)t_on[i].wall_ns / (double)t_off[i].wall_ns;
        a[i] = (double)t_off[i].cpu_ns;
        b[i] = (double)t_on[i].cpu_ns;
    }
    median_ci(cpu, n, &r->cpu_ratio, &r->cpu_lo, &r->cpu_hi);
    median_ci(wall, n, &r->wall_ratio, &r->wall_lo, &r->wall_hi);
    median_ci(a, n, &r->cpu_ms_off, &d0, &d1);
    median_ci(b, n, &r->cpu_ms_on, &d0, &d1);
    r->cpu_ms_off /= 1e6;
    r->cpu_ms_on /= 1e6;
    free(v);
}

/* Region begin/end pairs per hooked token, from the region table. */
static double pairs_per_token(const met_regions *reg, int64_t tokens)
{
    double calls = 0;
    for (int g = 0; g < ENG_REGION_COUNT; g++) {
        met_region_stats st;
        if (met_regions_total(reg, (eng_region)g, &st) == ENG_OK)
            calls += (double)st.calls;
    }
    return tokens ? calls / (double)tokens : 0;
}

static int run_session(const eng_model *m, met_regions *reg, const hx_probe_bce_opts *o,
                       hx_probe_bce_result *r, eng_err *err)
{
    const eng_hparams *hp = eng_model_hparams(m);
    eng_session_opts so = {.n_threads = o->threads, .n_ctx = o->prompt + o->steps + 1};
    eng_session *s;
    int rc = eng_session_open(&s, m, &so, err);
    if (rc)
        return rc;
    int32_t *ids = malloc((size_t)(o->prompt + o->steps) * sizeof *ids);
    token_time *tt = calloc((size_t)(2 * o->steps), sizeof *tt);
    if (!ids || !tt) {
        rc = eng_err_set(err, ENG_ENOMEM, "out of memory for %lld pairs", (long long)o->steps);
        goto out;
    }
    for (int64_t i = 0; i < o->prompt; i++) /* a fixed, spread-out prompt */
        ids[i] = (int32_t)((i * 7919 + 13) % hp->n_vocab);
    eng_hooks on = {0};
    met_regions_hooks(reg, &on);
    if ((rc = eng_session_eval(s, ids, o->prompt, err)))
        goto out;
    int32_t tok = argmax(eng_session_logits(s), hp->n_vocab);
    met_regions_reset(reg); /* the table covers the hooked decode tokens only */
    rc = decode_steps(s, &on, o, hp->n_vocab, tok, tt, tt + o->steps, ids + o->prompt, r,
                      err);
    if (!rc) {
        summarise(tt, tt + o->steps, o->steps, r);
        r->pairs_per_token = pairs_per_token(reg, o->steps);
        r->readings_per_token = (double)met_regions_readings(reg) / (double)o->steps;
        r->generated = malloc((size_t)o->steps * sizeof *r->generated);
        if (r->generated)
            memcpy(r->generated, ids + o->prompt, (size_t)o->steps * sizeof *ids);
        r->n_generated = r->generated ? o->steps : 0;
        r->prompt = malloc((size_t)o->prompt * sizeof *r->prompt);
        if (r->prompt)
            memcpy(r->prompt, ids, (size_t)o->prompt * sizeof *ids);
        r->n_prompt = r->prompt ? o->prompt : 0;
    }
out:
    free(ids);
    free(tt);
    eng_session_free(s);
    return rc;
}

int hx_probe_bce_run(const hx_probe_bce_opts *o, met_counters *c, hx_probe_bce_result *r, eng_err *err)
{
    memset(r, 0, sizeof *r);
    eng_model_opts mo = {.prefault = o->prefault};
    eng_model *m;
    int rc = eng_model_open(&m, o->model, &mo, err);
    if (rc)
        return rc;
    met_regions_opts ro;
    met_regions_opts_default(&ro);
    ro.coalesce = o->no_coalesce ? 0 : -1;
    met_regions *reg;
    rc = met_regions_open(&reg, c, &ro, err);
    if (!rc) {
        rc = run_session(m, reg, o, r, err);
        met_regions_free(reg);
    }
    eng_model_free(m);
    return rc;
}

void hx_probe_bce_result_free(hx_probe_bce_result *r)
{
    free(r->generated);
    free(r->prompt);
    r->generated = r->prompt = NULL;
}
