/*
 * lrc_compute.c — SRP and the cache curves of a whole trace, per layer and
 * model-wide, with bootstrap intervals (met_lrc_compute).
 *
 * Streaming: one layer's ids are gathered at a time (reader_layer); the
 * model-wide pass reads one sample (all layers) at a time per thread and
 * builds its concatenation (layer l's ids + l*E, layers in order). Model-wide
 * SRP needs no pass of its own: window counts of different layers never mix,
 * so the model's window-count histogram is the sum of the layers' (one
 * global threshold over the summed tp, pred, act).
 *
 * Per-sample results are kept (histograms, per-sample hit-rate curves) so
 * that the bootstrap is a reweighting: with the draw counts of B replicates
 * as a B x S matrix W, the replicates' histograms and mean curves are W·H
 * and W·R / S — one dgemm each (OpenBLAS). The same W serves every layer and
 * the model, as the reference asks. Integer histograms make the SRP sums
 * exact in double whatever the summation order.
 *
 * Threads: workers take samples from a shared counter; each writes only its
 * samples' rows, so results do not depend on the thread count.
 *
 * Memory (S samples after stride, E_tot = L*E): one layer's ids (2 bytes x
 * tokens x k), per-sample curves 8 x S x E x (3 + seg lens) for the layer
 * and for the model, SRP histograms 8 x S x sum(seg_len + 1) twice, W
 * (8 x B x S).
 */
#include "metrics/lrc.h"
#include "metrics/rng.h"

#include <cblas.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

typedef struct job {
    /* input */
    const int32_t *segs;      /* kept segment lengths                     */
    int nseg, hw;             /* hw = sum(seg + 1): SRP histogram row     */
    int64_t S;                /* selected samples                         */
    const int64_t *sel;       /* [S] trace sample index                   */
    const int64_t *start;     /* trace sample_start                       */
    int32_t E, k;             /* of this job (totals for the model)       */
    const uint16_t *layer_ids;/* layer pass: [tokens][k]; NULL = model pass */
    met_trace_reader *r;      /* model pass                               */
    const int32_t *layers;    /* model pass: layers concatenated          */
    int nl;
    /* output */
    int64_t *hist;            /* [S][hw] (layer pass)                     */
    double **rates;           /* [3 + nseg] each [S][E]                   */
    const met_lrc_opts *o;    /* progress callback                        */
    int pass, n_pass;         /* this pass (a layer, or the model)        */
    /* work */
    atomic_llong next;
    pthread_mutex_t mu;
    eng_err err;
} job;

typedef struct worker {
    job *j;
    met_lrc_ws *ws;
    int32_t *ids;             /* current sample, [T][k] */
    uint16_t *raw;            /* model pass: [L][T][k_layer] */
    int64_t *hits;            /* [3 + nseg][E] */
    int64_t cap;
    int caller;               /* runs on the calling thread: reports progress */
} worker;

static int fail(job *j, const eng_err *e)
{
    pthread_mutex_lock(&j->mu);
    if (!j->err.code)
        j->err = *e;
    pthread_mutex_unlock(&j->mu);
    return e->code;
}

static int grow(worker *w, int64_t n, size_t raw_n, eng_err *e)
{
    if (n <= w->cap)
        return ENG_OK;
    int32_t *p = realloc(w->ids, (size_t)n * sizeof *p);
    if (p)
        w->ids = p;
    uint16_t *q = p && raw_n ? realloc(w->raw, raw_n * sizeof *q) : w->raw;
    if (q)
        w->raw = q;
    if (!p || (raw_n && !q))
        return eng_err_set(e, ENG_ENOMEM, "lrc: out of memory for a sample");
    w->cap = n;
    return ENG_OK;
}

/* The sample's ids as int32, concatenated over layers for the model. */
static int load_sample(worker *w, int64_t s, int64_t T, eng_err *e)
{
    job *j = w->j;
    int64_t n = T * j->k;
    const met_trace_info *in = j->r ? met_trace_reader_info(j->r) : NULL;
    size_t raw_n = in ? (size_t)in->num_layers * (size_t)T * in->top_k : 0;
    int rc = grow(w, n, raw_n, e);
    if (rc)
        return rc;
    if (j->layer_ids) {
        const uint16_t *src = j->layer_ids + j->start[s] * j->k;
        for (int64_t i = 0; i < n; i++)
            w->ids[i] = src[i];
        return ENG_OK;
    }
    if ((rc = met_trace_reader_sample(j->r, s, w->raw, NULL, e)))
        return rc;
    int32_t kl = in->top_k, El = in->num_experts;
    for (int64_t t = 0; t < T; t++)
        for (int li = 0; li < j->nl; li++) {
            const uint16_t *src = w->raw + ((size_t)j->layers[li] * T + t) * kl;
            int32_t *dst = w->ids + t * j->k + li * kl;
            for (int32_t q = 0; q < kl; q++)
                dst[q] = src[q] + li * El;
        }
    return ENG_OK;
}

static int one_sample(worker *w, int64_t i, eng_err *e)
{
    job *j = w->j;
    int64_t s = j->sel[i], T = j->start[s + 1] - j->start[s];
    int rc = load_sample(w, s, T, e);
    for (int q = 0, off = 0; !rc && j->hist && q < j->nseg; off += j->segs[q++] + 1)
        rc = met_srp_sample_hist(w->ws, w->ids, T, j->k, j->segs[q],
                                 j->hist + i * j->hw + off, e);
    met_policy pols[3 + 64];
    int32_t looks[3 + 64];
    for (int c = 0; c < 3 + j->nseg; c++)
        pols[c] = c < 3 ? (met_policy)c : MET_POLICY_FSF, looks[c] = c < 3 ? 1 : j->segs[c - 3];
    if (!rc) /* all curves at once: side by side where the kernels can */
        rc = met_curves_sample(w->ws, 3 + j->nseg, pols, looks, w->ids, T, j->k, w->hits, e);
    for (int c = 0; !rc && c < 3 + j->nseg; c++) {
        double *out = j->rates[c] + i * j->E, inv = 1.0 / ((double)T * j->k);
        for (int32_t x = 0; x < j->E; x++)
            out[x] = (double)w->hits[(size_t)c * j->E + x] * inv;
    }
    return rc;
}

static void *work(void *arg)
{
    worker *w = arg;
    job *j = w->j;
    eng_err e = {0};
    for (;;) {
        int64_t i = atomic_fetch_add(&j->next, 1);
        if (i >= j->S || j->err.code)
            break;
        if (one_sample(w, i, &e)) {
            fail(j, &e);
            break;
        }
        if (w->caller && j->o && j->o->progress) {
            int64_t done = atomic_load(&j->next);
            j->o->progress(j->o->progress_user, j->pass, j->n_pass, done > j->S ? j->S : done,
                           j->S);
        }
    }
    return NULL;
}

static int run_job(job *j, int threads, eng_err *err)
{
    worker *ws = calloc((size_t)threads, sizeof *ws);
    pthread_t *th = calloc((size_t)threads, sizeof *th);
    int started = 0, rc = ENG_OK;
    if (!ws || !th)
        rc = eng_err_set(err, ENG_ENOMEM, "lrc: out of memory");
    atomic_store(&j->next, 0);
    pthread_mutex_init(&j->mu, NULL);
    memset(&j->err, 0, sizeof j->err);
    for (int t = 0; !rc && t < threads; t++) {
        ws[t].j = j;
        if ((rc = met_lrc_ws_new(&ws[t].ws, j->E, err)))
            break;
        if (!(ws[t].hits = malloc((size_t)(3 + j->nseg) * j->E * sizeof *ws[t].hits))) {
            rc = eng_err_set(err, ENG_ENOMEM, "lrc: out of memory");
            break;
        }
        if (t > 0 && pthread_create(&th[t], NULL, work, &ws[t])) {
            rc = eng_err_set(err, ENG_ENOMEM, "lrc: cannot start a thread");
            break;
        }
        started = t + 1;
    }
    if (!rc) {
        ws[0].caller = 1;
        work(&ws[0]);
    }
    for (int t = 1; t < started; t++)
        pthread_join(th[t], NULL);
    /* the pass is complete: say so even if other threads took every sample */
    if (!rc && !j->err.code && j->o && j->o->progress)
        j->o->progress(j->o->progress_user, j->pass, j->n_pass, j->S, j->S);
    if (!rc && j->err.code) {
        rc = j->err.code;
        if (err)
            *err = j->err;
    }
    for (int t = 0; ws && t < threads; t++) {
        met_lrc_ws_free(ws[t].ws);
        free(ws[t].ids), free(ws[t].raw), free(ws[t].hits);
    }
    pthread_mutex_destroy(&j->mu);
    free(ws), free(th);
    return rc;
}

/* ---- estimates and bootstrap ------------------------------------------- */

typedef struct boot {
    int B;
    int64_t S;
    double *W;                /* [B][S] draw counts */
} boot;

static int boot_make(boot *b, int B, int64_t S, uint64_t seed, eng_err *err)
{
    b->B = B, b->S = S, b->W = NULL;
    if (!B || !S)
        return ENG_OK;
    if (!(b->W = calloc((size_t)B * (size_t)S, sizeof *b->W)))
        return eng_err_set(err, ENG_ENOMEM, "bootstrap: out of memory for %d x %lld draws", B,
                           (long long)S);
    met_rng g;
    met_rng_seed(&g, seed);
    for (int r = 0; r < B; r++)
        for (int64_t d = 0; d < S; d++)
            b->W[(size_t)r * S + met_rng_below(&g, (uint64_t)S)] += 1;
    return ENG_OK;
}

/* C[B][M] = W[B][S] * X[S][M] */
static double *reweight(const boot *b, const double *X, int64_t M, eng_err *err)
{
    double *C = malloc((size_t)b->B * (size_t)M * sizeof *C);
    if (!C) {
        eng_err_set(err, ENG_ENOMEM, "bootstrap: out of memory");
        return NULL;
    }
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, b->B, (int)M, (int)b->S, 1.0, b->W,
                (int)b->S, X, (int)M, 0.0, C, (int)M);
    return C;
}

static int finish_srp(met_lrc_srp *out, int32_t seg, const int64_t *hist, int hw, int off,
                      int64_t S, const boot *b, eng_err *err)
{
    double *X = malloc((size_t)S * (seg + 1) * sizeof *X + 1), *tot = calloc(seg + 1, 8);
    out->seg_len = seg;
    out->f1 = malloc((size_t)(seg + 1) * sizeof *out->f1);
    if (!X || !tot || !out->f1) {
        free(X), free(tot);
        return eng_err_set(err, ENG_ENOMEM, "srp: out of memory");
    }
    for (int64_t s = 0; s < S; s++)
        for (int32_t m = 0; m <= seg; m++)
            tot[m] += (double)(X[s * (seg + 1) + m] = (double)hist[s * hw + off + m]);
    met_srp_from_hist(tot, seg, out->f1, &out->srp);
    int rc = ENG_OK;
    if (b->W) {
        double *C = reweight(b, X, seg + 1, err), *rep = malloc((size_t)b->B * sizeof *rep);
        if (!C || !rep)
            rc = eng_err_set(err, ENG_ENOMEM, "srp: out of memory");
        for (int r = 0; !rc && r < b->B; r++) {
            met_srp one;
            met_srp_from_hist(C + (size_t)r * (seg + 1), seg, NULL, &one);
            rep[r] = one.best_f1;
        }
        if (!rc)
            met_bootstrap_basic(out->srp.best_f1, rep, b->B, 0.95, &out->ci_lb, &out->ci_ub);
        free(C), free(rep);
    }
    free(X), free(tot);
    return rc;
}

static int finish_curve(met_lrc_curve *out, const double *R, int32_t E, int64_t S, const boot *b,
                        eng_err *err)
{
    out->hit_rate = calloc((size_t)E, sizeof *out->hit_rate);
    if (!out->hit_rate)
        return eng_err_set(err, ENG_ENOMEM, "curve: out of memory");
    for (int64_t s = 0; s < S; s++) /* in sample order: deterministic sums */
        for (int32_t c = 0; c < E; c++)
            out->hit_rate[c] += R[s * E + c];
    for (int32_t c = 0; c < E; c++)
        out->hit_rate[c] = S ? out->hit_rate[c] / (double)S : 0;
    if (!b->W)
        return ENG_OK;
    double *C = reweight(b, R, E, err), *rep = malloc((size_t)b->B * sizeof *rep);
    out->ci_lb = malloc((size_t)E * sizeof *out->ci_lb);
    out->ci_ub = malloc((size_t)E * sizeof *out->ci_ub);
    int rc = !C || !rep || !out->ci_lb || !out->ci_ub
                 ? eng_err_set(err, ENG_ENOMEM, "curve: out of memory")
                 : ENG_OK;
    for (int32_t c = 0; !rc && c < E; c++) {
        for (int r = 0; r < b->B; r++)
            rep[r] = C[(size_t)r * E + c] / (double)S;
        met_bootstrap_basic(out->hit_rate[c], rep, b->B, 0.95, &out->ci_lb[c], &out->ci_ub[c]);
    }
    free(C), free(rep);
    return rc;
}

static int finish(met_lrc_result *res, job *j, const int64_t *hist, const boot *b, eng_err *err)
{
    res->num_experts = j->E, res->top_k = j->k, res->num_samples = j->S;
    res->num_seg = j->nseg;
    res->srp = calloc((size_t)j->nseg + 1, sizeof *res->srp);
    res->sch = calloc((size_t)j->nseg + 1, sizeof *res->sch);
    if (!res->srp || !res->sch)
        return eng_err_set(err, ENG_ENOMEM, "lrc: out of memory");
    int rc = ENG_OK;
    for (int q = 0, off = 0; !rc && q < j->nseg; off += j->segs[q++] + 1)
        rc = finish_srp(&res->srp[q], j->segs[q], hist, j->hw, off, j->S, b, err);
    for (int c = 0; !rc && c < 3 + j->nseg; c++)
        rc = finish_curve(c < 3 ? &res->curve[c] : &res->sch[c - 3], j->rates[c], j->E, j->S, b,
                          err);
    return rc;
}

/* ---- driver --------------------------------------------------------------- */

static void curve_free(met_lrc_curve *c)
{
    free(c->hit_rate), free(c->ci_lb), free(c->ci_ub);
}

static void result_free(met_lrc_result *res)
{
    for (int q = 0; res->srp && q < res->num_seg; q++)
        free(res->srp[q].f1);
    for (int q = 0; res->sch && q < res->num_seg; q++)
        curve_free(&res->sch[q]);
    for (int c = 0; c < 3; c++)
        curve_free(&res->curve[c]);
    free(res->srp), free(res->sch);
}

void met_lrc_report_free(met_lrc_report *rep)
{
    if (!rep)
        return;
    for (int i = 0; rep->layers && i < rep->num_layers; i++)
        result_free(&rep->layers[i]);
    if (rep->model)
        result_free(rep->model);
    free(rep->model), free(rep->layers), free(rep->layer_index), free(rep);
}

static double *dup_arr(const double *a, size_t n, int *bad)
{
    if (!a)
        return NULL;
    double *b = malloc(n * sizeof *b + 1);
    if (!b)
        *bad = 1;
    else
        memcpy(b, a, n * sizeof *b);
    return b;
}

static void curve_copy(met_lrc_curve *d, const met_lrc_curve *s, int32_t E, int *bad)
{
    d->hit_rate = dup_arr(s->hit_rate, (size_t)E, bad);
    d->ci_lb = dup_arr(s->ci_lb, (size_t)E, bad);
    d->ci_ub = dup_arr(s->ci_ub, (size_t)E, bad);
}

/* One layer: the model-wide trace is the layer itself. */
static int result_copy(met_lrc_result *d, const met_lrc_result *s, eng_err *err)
{
    int bad = 0;
    *d = *s;
    d->srp = calloc((size_t)s->num_seg + 1, sizeof *d->srp);
    d->sch = calloc((size_t)s->num_seg + 1, sizeof *d->sch);
    bad = !d->srp || !d->sch;
    for (int q = 0; !bad && q < s->num_seg; q++) {
        d->srp[q] = s->srp[q];
        d->srp[q].f1 = dup_arr(s->srp[q].f1, (size_t)s->srp[q].seg_len + 1, &bad);
        curve_copy(&d->sch[q], &s->sch[q], s->num_experts, &bad);
    }
    for (int c = 0; c < 3; c++)
        curve_copy(&d->curve[c], &s->curve[c], s->num_experts, &bad);
    return bad ? eng_err_set(err, ENG_ENOMEM, "lrc: out of memory") : ENG_OK;
}

typedef struct plan {
    int64_t S, *sel;
    int32_t segs[64];
    int nseg, hw, nl;
    int32_t *layers;
} plan;

static int make_plan(plan *p, met_trace_reader *r, const met_lrc_opts *o, eng_err *err)
{
    const met_trace_info *in = met_trace_reader_info(r);
    const int64_t *st = met_trace_reader_sample_start(r);
    if (o->stride < 1 || o->threads < 1 || o->bootstrap < 0 || o->num_seg_lens < 0 ||
        o->num_seg_lens > 64)
        return eng_err_set(err, ENG_EINVAL, "lrc: stride/threads/bootstrap/seg_lens out of range");
    int64_t maxT = 0;
    if (!(p->sel = malloc(((size_t)in->num_samples + 1) * sizeof *p->sel)))
        return eng_err_set(err, ENG_ENOMEM, "lrc: out of memory");
    for (int64_t s = 0; s < in->num_samples; s += o->stride) {
        int64_t T = st[s + 1] - st[s];
        if (T > 0)
            p->sel[p->S++] = s;
        maxT = T > maxT ? T : maxT;
    }
    for (int q = 0; q < o->num_seg_lens; q++) {
        if (o->seg_lens[q] < 1)
            return eng_err_set(err, ENG_EINVAL, "lrc: segment length %d < 1", (int)o->seg_lens[q]);
        if (o->seg_lens[q] <= maxT) /* longer than every sample: skipped */
            p->segs[p->nseg++] = o->seg_lens[q], p->hw += o->seg_lens[q] + 1;
    }
    p->nl = o->layers ? o->num_layers : in->num_layers;
    if (p->nl < 1 || !(p->layers = malloc((size_t)p->nl * sizeof *p->layers)))
        return eng_err_set(err, p->nl < 1 ? ENG_EINVAL : ENG_ENOMEM, "lrc: no layers to analyse");
    for (int i = 0; i < p->nl; i++) {
        p->layers[i] = o->layers ? o->layers[i] : i;
        if (p->layers[i] < 0 || p->layers[i] >= in->num_layers)
            return eng_err_set(err, ENG_EINVAL, "lrc: layer %d not in the trace (0..%d)",
                               (int)p->layers[i], (int)in->num_layers - 1);
    }
    return ENG_OK;
}

static int alloc_rates(job *j, eng_err *err)
{
    j->rates = calloc((size_t)3 + j->nseg, sizeof *j->rates);
    if (!j->rates)
        return eng_err_set(err, ENG_ENOMEM, "lrc: out of memory");
    for (int c = 0; c < 3 + j->nseg; c++)
        if (!(j->rates[c] = malloc((size_t)j->S * (size_t)j->E * sizeof(double) + 1)))
            return eng_err_set(err, ENG_ENOMEM, "lrc: out of memory for %lld x %d curves",
                               (long long)j->S, (int)j->E);
    return ENG_OK;
}

static void free_rates(job *j)
{
    for (int c = 0; j->rates && c < 3 + j->nseg; c++)
        free(j->rates[c]);
    free(j->rates);
    j->rates = NULL;
}

static int do_layers(met_trace_reader *r, const met_lrc_opts *o, plan *p, const boot *b,
                     met_lrc_report *rep, int64_t *model_hist, eng_err *err)
{
    const met_trace_info *in = met_trace_reader_info(r);
    size_t n = (size_t)in->num_tokens * (size_t)in->top_k;
    uint16_t *ids = malloc(n * sizeof *ids + 1);
    job j = {.segs = p->segs, .nseg = p->nseg, .hw = p->hw, .S = p->S, .sel = p->sel,
             .start = met_trace_reader_sample_start(r), .E = in->num_experts, .k = in->top_k,
             .layer_ids = ids, .o = o, .n_pass = p->nl + (o->model && p->nl > 1)};
    j.hist = malloc((size_t)p->S * (size_t)p->hw * sizeof *j.hist + 1);
    int rc = !ids || !j.hist ? eng_err_set(err, ENG_ENOMEM, "lrc: out of memory for a layer")
                             : alloc_rates(&j, err);
    for (int li = 0; !rc && li < p->nl; li++) {
        memset(j.hist, 0, (size_t)p->S * (size_t)p->hw * sizeof *j.hist);
        j.pass = li;
        rc = met_trace_reader_layer(r, p->layers[li], ids, NULL, err);
        if (!rc)
            rc = run_job(&j, o->threads, err);
        if (!rc)
            rc = finish(&rep->layers[li], &j, j.hist, b, err);
        for (size_t i = 0; !rc && model_hist && i < (size_t)p->S * p->hw; i++)
            model_hist[i] += j.hist[i];
    }
    free_rates(&j);
    free(j.hist), free(ids);
    return rc;
}

static int do_model(met_trace_reader *r, const met_lrc_opts *o, plan *p, const boot *b,
                    met_lrc_report *rep, const int64_t *model_hist, eng_err *err)
{
    const met_trace_info *in = met_trace_reader_info(r);
    if (!(rep->model = calloc(1, sizeof *rep->model)))
        return eng_err_set(err, ENG_ENOMEM, "lrc: out of memory");
    if (p->nl == 1)
        return result_copy(rep->model, &rep->layers[0], err);
    job j = {.segs = p->segs, .nseg = p->nseg, .hw = p->hw, .S = p->S, .sel = p->sel,
             .start = met_trace_reader_sample_start(r), .E = p->nl * in->num_experts,
             .k = p->nl * in->top_k, .r = r, .layers = p->layers, .nl = p->nl, .o = o,
             .pass = p->nl, .n_pass = p->nl + 1};
    int rc = alloc_rates(&j, err);
    if (!rc)
        rc = run_job(&j, o->threads, err);
    if (!rc)
        rc = finish(rep->model, &j, model_hist, b, err);
    free_rates(&j);
    return rc;
}

int met_lrc_compute(met_trace_reader *r, const met_lrc_opts *o, met_lrc_report **out,
                    eng_err *err)
{
    *out = NULL;
    plan p = {0};
    boot b = {0};
    int64_t *model_hist = NULL;
    met_lrc_report *rep = calloc(1, sizeof *rep);
    int rc = rep ? make_plan(&p, r, o, err) : eng_err_set(err, ENG_ENOMEM, "lrc: out of memory");
    if (rep)
        rep->layer_index = p.layers; /* the report owns it, also on error; p borrows */
    if (!rc && !(rep->layers = calloc((size_t)p.nl, sizeof *rep->layers)))
        rc = eng_err_set(err, ENG_ENOMEM, "lrc: out of memory");
    if (!rc) {
        rep->num_layers = p.nl;
        rep->layer_offset = met_trace_reader_info(r)->layer_offset;
        rep->bootstrap = o->bootstrap;
        rc = boot_make(&b, o->bootstrap, p.S, o->seed, err);
    }
    if (!rc && o->model && !(model_hist = calloc((size_t)p.S * p.hw + 1, sizeof *model_hist)))
        rc = eng_err_set(err, ENG_ENOMEM, "lrc: out of memory");
    if (!rc)
        rc = do_layers(r, o, &p, &b, rep, model_hist, err);
    if (!rc && o->model)
        rc = do_model(r, o, &p, &b, rep, model_hist, err);
    free(model_hist), free(b.W), free(p.sel);
    if (rc) {
        met_lrc_report_free(rep);
        return rc;
    }
    *out = rep;
    return ENG_OK;
}
