/*
 * synth.c — synthetic routing traces (models in synth.h) and trace
 * statistics.
 *
 * Popularity draws use Vose's alias table per layer (O(1) per draw); a
 * token's experts must be distinct, so a draw that hits an expert already
 * in the token is redrawn, and after 64 failed redraws (only possible with
 * extreme skew and k close to E) the first free expert after the drawn one
 * is taken. Generation order is sample, token, layer, so a trace depends on
 * the options only.
 */
#include "metrics/synth.h"
#include "metrics/rng.h"
#include "metrics/trace_impl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const model_names[] = {"uniform", "zipf", "sticky", "segments"};

const char *met_synth_model_name(met_synth_model m)
{
    return (unsigned)m < 4 ? model_names[m] : "?";
}

int met_synth_model_parse(const char *name)
{
    for (int i = 0; i < 4; i++)
        if (!strcmp(name, model_names[i]))
            return i;
    return -1;
}

typedef struct alias { double *prob; int32_t *alias; } alias;

typedef struct gen {
    met_synth_opts o;
    met_rng g;
    alias *pop;        /* [L] */
    int32_t *prev;     /* [L][k] previous token (sticky)            */
    int32_t *domain;   /* [L][2k] current segment's domain          */
    int32_t ndom;
    uint8_t *mark;     /* [E] experts already in the current token  */
} gen;

/* Vose's alias method over p(e) ∝ (rank(e) + 1)^-a, ranks a random permutation. */
static int alias_build(alias *a, int32_t E, double zipf, met_rng *g)
{
    double *w = malloc((size_t)E * sizeof *w);
    int32_t *perm = malloc((size_t)E * sizeof *perm), *small = malloc((size_t)E * 4),
            *large = malloc((size_t)E * 4);
    a->prob = malloc((size_t)E * sizeof *a->prob);
    a->alias = malloc((size_t)E * sizeof *a->alias);
    int ok = w && perm && small && large && a->prob && a->alias;
    for (int32_t e = 0; ok && e < E; e++)
        perm[e] = e;
    for (int32_t e = E - 1; ok && e > 0; e--) {
        int32_t j = (int32_t)met_rng_below(g, (uint64_t)e + 1), x = perm[e];
        perm[e] = perm[j], perm[j] = x;
    }
    double sum = 0;
    for (int32_t r = 0; ok && r < E; r++)
        sum += w[perm[r]] = pow(r + 1.0, -zipf);
    int32_t ns = 0, nl = 0;
    for (int32_t e = 0; ok && e < E; e++) {
        w[e] = w[e] * E / sum;
        if (w[e] < 1)
            small[ns++] = e;
        else
            large[nl++] = e;
    }
    while (ok && ns && nl) {
        int32_t s = small[--ns], l = large[--nl];
        a->prob[s] = w[s], a->alias[s] = l;
        w[l] -= 1 - w[s];
        if (w[l] < 1)
            small[ns++] = l;
        else
            large[nl++] = l;
    }
    while (ok && nl)
        a->prob[large[--nl]] = 1, a->alias[large[nl]] = large[nl];
    while (ok && ns)
        a->prob[small[--ns]] = 1, a->alias[small[ns]] = small[ns];
    free(w), free(perm), free(small), free(large);
    return ok ? ENG_OK : ENG_ENOMEM;
}

static int32_t draw_pop(gen *G, int32_t l)
{
    int32_t E = G->o.num_experts;
    if (G->o.zipf == 0)
        return (int32_t)met_rng_below(&G->g, (uint64_t)E);
    int32_t e = (int32_t)met_rng_below(&G->g, (uint64_t)E);
    return met_rng_unit(&G->g) < G->pop[l].prob[e] ? e : G->pop[l].alias[e];
}

/* A popularity draw not yet in the token. */
static int32_t draw_free(gen *G, int32_t l)
{
    int32_t e = draw_pop(G, l);
    for (int tries = 0; G->mark[e] && tries < 64; tries++)
        e = draw_pop(G, l);
    while (G->mark[e])
        e = (e + 1) % G->o.num_experts;
    return e;
}

static void token_layer(gen *G, int64_t t, int32_t l, int32_t *out)
{
    int32_t k = G->o.top_k, n = 0, *prev = G->prev + (size_t)l * k;
    int32_t *dom = G->domain + (size_t)l * 2 * k;
    met_synth_model m = G->o.model;
    if (m == MET_SYNTH_STICKY && t > 0)
        for (int32_t r = 0; r < k; r++)
            if (met_rng_unit(&G->g) < G->o.stickiness)
                G->mark[out[n++] = prev[r]] = 1;
    while (n < k) {
        int32_t e = -1;
        if (m == MET_SYNTH_SEGMENTS && met_rng_unit(&G->g) < G->o.stickiness) {
            int32_t free_n = 0;
            for (int32_t i = 0; i < G->ndom; i++)
                free_n += !G->mark[dom[i]];
            if (free_n) {
                int32_t pick = (int32_t)met_rng_below(&G->g, (uint64_t)free_n);
                for (int32_t i = 0; e < 0; i++)
                    if (!G->mark[dom[i]] && pick-- == 0)
                        e = dom[i];
            }
        }
        if (e < 0)
            e = draw_free(G, l);
        G->mark[out[n++] = e] = 1;
    }
    for (int32_t r = 0; r < k; r++)
        G->mark[out[r]] = 0, prev[r] = out[r];
}

static void new_domain(gen *G, int32_t l)
{
    int32_t k = G->o.top_k, *dom = G->domain + (size_t)l * 2 * k;
    for (int32_t i = 0; i < G->ndom; i++)
        G->mark[dom[i] = draw_free(G, l)] = 1;
    for (int32_t i = 0; i < G->ndom; i++)
        G->mark[dom[i]] = 0;
}

/* One sample, token-major: ids[T][L][k]. */
static void gen_sample(gen *G, uint16_t *ids)
{
    int32_t L = G->o.num_layers, k = G->o.top_k;
    int32_t *tmp = G->prev + (size_t)L * k; /* scratch [k] after prev */
    for (int64_t t = 0; t < G->o.tokens; t++)
        for (int32_t l = 0; l < L; l++) {
            if (G->o.model == MET_SYNTH_SEGMENTS && t % G->o.segment_len == 0)
                new_domain(G, l);
            token_layer(G, t, l, tmp);
            for (int32_t r = 0; r < k; r++)
                ids[((size_t)t * L + l) * k + r] = (uint16_t)tmp[r];
        }
}

static void gen_free(gen *G)
{
    for (int32_t l = 0; G->pop && l < G->o.num_layers; l++)
        free(G->pop[l].prob), free(G->pop[l].alias);
    free(G->pop), free(G->prev), free(G->domain), free(G->mark);
}

static int gen_init(gen *G, const met_synth_opts *o, eng_err *err)
{
    memset(G, 0, sizeof *G);
    G->o = *o;
    met_trace_info in = {.num_layers = o->num_layers, .num_experts = o->num_experts,
                         .top_k = o->top_k, .num_samples = o->num_samples,
                         .num_tokens = o->num_samples > 0 && o->tokens > INT64_MAX / o->num_samples
                                           ? -1 : o->num_samples * o->tokens};
    int rc = met_trace_info_check(&in, "synth", err);
    if (rc)
        return eng_err_set(err, ENG_EINVAL, "%s", err ? err->msg : "synth: bad shape");
    if (o->tokens < 0 || !(o->zipf >= 0 && o->zipf <= 100) ||
        !(o->stickiness >= 0 && o->stickiness <= 1) || o->segment_len < 1 || (unsigned)o->model > 3)
        return eng_err_set(err, ENG_EINVAL, "synth: tokens, zipf, stickiness or segment_len "
                           "out of range");
    if (o->model == MET_SYNTH_UNIFORM)
        G->o.zipf = 0;
    met_rng_seed(&G->g, o->seed);
    int32_t L = o->num_layers, E = o->num_experts, k = o->top_k;
    G->ndom = 2 * k < E ? 2 * k : E;
    G->pop = calloc((size_t)L, sizeof *G->pop);
    G->prev = calloc((size_t)(L + 1) * k, sizeof *G->prev);
    G->domain = calloc((size_t)L * 2 * k, sizeof *G->domain);
    G->mark = calloc((size_t)E, 1);
    rc = !G->pop || !G->prev || !G->domain || !G->mark ? ENG_ENOMEM : ENG_OK;
    for (int32_t l = 0; !rc && l < L; l++)
        rc = alias_build(&G->pop[l], E, G->o.zipf, &G->g);
    if (rc) {
        gen_free(G);
        return eng_err_set(err, ENG_ENOMEM, "synth: out of memory");
    }
    return ENG_OK;
}

int met_synth_trace(met_trace **out, const met_synth_opts *o, eng_err *err)
{
    *out = NULL;
    gen G;
    int rc = gen_init(&G, o, err);
    if (rc)
        return rc;
    int64_t *counts = malloc((size_t)(o->num_samples + 1) * sizeof *counts);
    met_trace_info in = {.num_layers = o->num_layers, .num_experts = o->num_experts,
                         .top_k = o->top_k, .num_samples = o->num_samples};
    met_trace *t = NULL;
    for (int64_t s = 0; counts && s < o->num_samples; s++)
        counts[s] = o->tokens;
    rc = counts ? met_trace_alloc(&t, &in, counts, err)
                : eng_err_set(err, ENG_ENOMEM, "synth: out of memory");
    size_t per = (size_t)o->tokens * o->num_layers * o->top_k;
    for (int64_t s = 0; !rc && s < o->num_samples; s++)
        gen_sample(&G, t->ids + (size_t)s * per);
    free(counts);
    gen_free(&G);
    if (rc)
        return rc;
    *out = t;
    return ENG_OK;
}

static int stream_moetrace(const char *path, const met_synth_opts *o, eng_err *err)
{
    gen G;
    int rc = gen_init(&G, o, err);
    if (rc)
        return rc;
    int32_t L = o->num_layers, k = o->top_k;
    met_trace_info in = {.num_layers = L, .num_experts = o->num_experts, .top_k = k};
    met_trace_writer *w = NULL;
    uint16_t *ids = malloc((size_t)o->tokens * L * k * sizeof *ids + 2);
    int32_t *ex = malloc((size_t)k * sizeof *ex);
    rc = !ids || !ex ? eng_err_set(err, ENG_ENOMEM, "synth: out of memory")
                     : met_trace_writer_open(&w, path, &in, err);
    for (int64_t s = 0; !rc && s < o->num_samples; s++) {
        gen_sample(&G, ids);
        rc = met_trace_writer_begin_sample(w, NULL, err);
        for (int64_t t = 0; !rc && t < o->tokens; t++)
            for (int32_t l = 0; !rc && l < L; l++) {
                for (int32_t r = 0; r < k; r++)
                    ex[r] = ids[((size_t)t * L + l) * k + r];
                rc = met_trace_writer_route(w, l, t, 0, k, ex, NULL, err);
            }
    }
    if (w) {
        eng_err e2 = {0};
        int rc2 = met_trace_writer_close(w, &e2);
        if (!rc && rc2 && err)
            *err = e2;
        rc = rc ? rc : rc2;
    }
    free(ids), free(ex);
    gen_free(&G);
    return rc;
}

int met_synth_write(const char *path, met_trace_format fmt, const met_synth_opts *o, eng_err *err)
{
    if (fmt == MET_FMT_AUTO)
        fmt = met_trace_format_guess(path);
    if (fmt == MET_FMT_MOETRACE)
        return stream_moetrace(path, o, err);
    met_trace *t;
    int rc = met_synth_trace(&t, o, err);
    if (!rc)
        rc = met_trace_save(t, path, fmt, err);
    met_trace_free(t);
    return rc;
}

/* ---- statistics ---------------------------------------------------------- */

static void popularity(met_layer_stats *st, int32_t E)
{
    int64_t tot = 0;
    for (int32_t e = 0; e < E; e++)
        tot += st->counts[e];
    double h = 0;
    for (int32_t e = 0; e < E && tot; e++)
        if (st->counts[e]) {
            double p = (double)st->counts[e] / (double)tot;
            h -= p * log2(p);
        }
    st->entropy_bits = h;
    st->entropy_norm = E > 1 ? h / log2((double)E) : 0;
    /* Gini of the counts sorted ascending: sum (2i - n - 1) x_i / (n sum x) */
    int64_t *x = malloc((size_t)E * sizeof *x);
    if (!x || !tot) {
        free(x);
        st->gini = 0;
        return;
    }
    memcpy(x, st->counts, (size_t)E * sizeof *x);
    for (int32_t i = 1; i < E; i++) { /* E is small (experts): insertion sort */
        int64_t v = x[i];
        int32_t j = i;
        for (; j > 0 && x[j - 1] > v; j--)
            x[j] = x[j - 1];
        x[j] = v;
    }
    double g = 0;
    for (int32_t i = 0; i < E; i++)
        g += (2.0 * (i + 1) - E - 1) * (double)x[i];
    st->gini = g / ((double)E * (double)tot);
    free(x);
}

static void reuse(met_layer_stats *st, const uint16_t *ids, const int64_t *start, int64_t S,
                  int32_t k, int64_t *lastt, int32_t E)
{
    for (int64_t s = 0; s < S; s++) {
        for (int32_t e = 0; e < E; e++)
            lastt[e] = -1;
        for (int64_t g = start[s]; g < start[s + 1]; g++)
            for (int32_t r = 0; r < k; r++) {
                int32_t e = ids[g * k + r];
                int64_t t = g - start[s];
                st->counts[e]++;
                if (lastt[e] < 0) {
                    st->first_use++;
                } else {
                    int b = 63 - __builtin_clzll((unsigned long long)(t - lastt[e]));
                    st->reuse[b < MET_REUSE_BUCKETS ? b : MET_REUSE_BUCKETS - 1]++;
                }
                lastt[e] = t;
            }
    }
}

int met_trace_stats(met_trace_reader *r, met_layer_stats **out, eng_err *err)
{
    *out = NULL;
    const met_trace_info *in = met_trace_reader_info(r);
    int32_t L = in->num_layers, E = in->num_experts, k = in->top_k;
    met_layer_stats *st = calloc((size_t)L, sizeof *st);
    uint16_t *ids = malloc((size_t)in->num_tokens * k * sizeof *ids + 2);
    int64_t *lastt = malloc((size_t)E * sizeof *lastt);
    int rc = !st || !ids || !lastt ? eng_err_set(err, ENG_ENOMEM, "stats: out of memory") : 0;
    for (int32_t l = 0; !rc && l < L; l++) {
        if (!(st[l].counts = calloc((size_t)E, sizeof *st[l].counts))) {
            rc = eng_err_set(err, ENG_ENOMEM, "stats: out of memory");
            break;
        }
        rc = met_trace_reader_layer(r, l, ids, NULL, err);
        if (rc)
            break;
        reuse(&st[l], ids, met_trace_reader_sample_start(r), in->num_samples, k, lastt, E);
        popularity(&st[l], E);
    }
    free(ids), free(lastt);
    if (rc) {
        met_trace_stats_free(st, L);
        return rc;
    }
    *out = st;
    return ENG_OK;
}

void met_trace_stats_free(met_layer_stats *st, int32_t L)
{
    for (int32_t l = 0; st && l < L; l++)
        free(st[l].counts);
    free(st);
}
