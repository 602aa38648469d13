/*
 * quality.c — perplexity, KL divergence against a base run, and the base
 * file (see quality.h; the format is in docs/quality.md).
 *
 * Base file, little-endian:
 *   "MBKLBASE" u32 version (1) u32 model_len u64 model_size
 *   i64 n_vocab, n_ctx, n_chunks, first, n_batch  i32 bos  u32 0
 *   model name [model_len]   tokens i32 [n_chunks * n_ctx]
 *   rows, chunk by chunk, position by position:
 *     f64 nll  i32 top1  u32 n   then n == n_vocab: f32 lp [n] (dense)
 *                                 else (u32 id, f32 lp) [n], ids ascending
 *   "MBKLEND\0" u64 rows
 * The end mark is written last, so a base run that died leaves a file the
 * reader refuses at open; the writer also goes through path.tmp and a
 * rename, so an older complete file is never half overwritten.
 *
 * Invariant of the reader: every count is checked against the bytes left
 * before it is used; a row never reads into the end mark.
 */
#include "metrics/quality.h"
#include "metrics/stats.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

enum { HEAD_BYTES = 72, END_BYTES = 16, VERSION = 1, MODEL_MAX = 4096 };
static const char k_magic[8] = "MBKLBASE", k_end[8] = "MBKLEND";

/* ---- rows ------------------------------------------------------------------ */

static float max_of(const float *l, int64_t n, int32_t *imax)
{
    float m = l[0];
    int32_t im = 0;
    for (int64_t i = 1; i < n; i++)
        if (l[i] > m)
            m = l[i], im = (int32_t)i;
    if (imax)
        *imax = im;
    return m;
}

static double sum_exp(const float *l, int64_t n, float m)
{
    double s = 0.0;
    for (int64_t i = 0; i < n; i++)
        s += expf(l[i] - m);
    return s;
}

double met_quality_nll(const float *logits, int64_t n_vocab, int32_t target)
{
    const float m = max_of(logits, n_vocab, NULL);
    /* perplexity.cpp log_softmax: (float)(l - max) - log(double sum) */
    return -((double)(logits[target] - m) - log(sum_exp(logits, n_vocab, m)));
}

/* lp[i] = l_i - (m + (float)log(sum)): the one formula for base and run. */
static void log_probs(const float *l, int64_t n, float *lp, int32_t *imax)
{
    const float m = max_of(l, n, imax);
    const float mls = m + (float)log(sum_exp(l, n, m));
    for (int64_t i = 0; i < n; i++)
        lp[i] = l[i] - mls;
}

void met_quality_ppl_add(met_quality_ppl *p, double nll)
{
    p->nll += nll;
    p->nll2 += nll * nll;
    p->count++;
}

double met_quality_ppl_value(const met_quality_ppl *p, double *err)
{
    *err = NAN;
    if (p->count == 0)
        return NAN;
    const double mean = p->nll / (double)p->count, ppl = exp(mean);
    const double var = p->nll2 / (double)p->count - mean * mean;
    if (p->count > 1 && var > 0)
        *err = ppl * sqrt(var / (double)(p->count - 1));
    return ppl;
}

void met_quality_row_of(met_quality_row *r, const float *logits, int64_t n_vocab,
                        int32_t target, int32_t *id_buf, float *lp_buf)
{
    r->nll = met_quality_nll(logits, n_vocab, target);
    log_probs(logits, n_vocab, lp_buf, &r->top1);
    int64_t kept = 0;
    for (int64_t i = 0; i < n_vocab; i++)
        kept += lp_buf[i] > MET_QUALITY_LP_MIN;
    r->lp = lp_buf;
    if (2 * kept >= n_vocab) { /* 8 bytes a sparse entry, 4 a dense one */
        r->id = NULL;
        r->n = n_vocab;
        return;
    }
    r->id = id_buf;
    r->n = 0;
    for (int64_t i = 0; i < n_vocab; i++)
        if (lp_buf[i] > MET_QUALITY_LP_MIN) { /* compacts in place: r->n <= i */
            id_buf[r->n] = (int32_t)i;
            lp_buf[r->n++] = lp_buf[i];
        }
}

double met_quality_kl(const met_quality_row *base, const float *logits, int64_t n_vocab,
                      int32_t *top1, float *lp_buf)
{
    log_probs(logits, n_vocab, lp_buf, top1);
    double kl = 0.0;
    for (int64_t j = 0; j < base->n; j++) {
        const double lb = base->lp[j];
        if (lb > MET_QUALITY_LP_MIN)
            kl += exp(lb) * (lb - (double)lp_buf[base->id ? base->id[j] : j]);
    }
    return kl;
}

int met_quality_kl_add(met_quality_kl_acc *a, const met_quality_row *base, const float *logits,
                       int64_t n_vocab, double nll, float *lp_buf, eng_err *err)
{
    if (a->n == a->cap) {
        int64_t cap = a->cap ? 2 * a->cap : 1024;
        double *k = realloc(a->kl, (size_t)cap * sizeof *k);
        if (!k)
            return eng_err_set(err, ENG_ENOMEM, "KL divergence: out of memory");
        a->kl = k, a->cap = cap;
    }
    int32_t top1;
    const double kl = met_quality_kl(base, logits, n_vocab, &top1, lp_buf);
    a->kl[a->n++] = kl;
    a->kl_sum += kl;
    a->kl_sum2 += kl * kl;
    a->same_top += top1 == base->top1;
    met_quality_ppl_add(&a->run, nll);
    met_quality_ppl_add(&a->base, base->nll);
    a->nll_nll_base += nll * base->nll;
    return ENG_OK;
}

static int dbl_cmp(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

/* mean and llama.cpp's uncertainty of it (0 with 10 values or fewer) */
static double mean_err(double sum, double sum2, int64_t n, double *err)
{
    const double f = sum / (double)n, df = sum2 / (double)n - f * f;
    *err = df > 0 && n > 10 ? sqrt(df / (double)(n - 1)) : 0.0;
    return f;
}

void met_quality_kl_result_of(met_quality_kl_acc *a, met_quality_kl_result *o)
{
    const int64_t n = a->n;
    *o = (met_quality_kl_result){.count = n};
    if (n == 0) {
        o->kl_mean = o->kl_mean_err = o->kl_median = o->kl_p99 = o->kl_max = NAN;
        o->top1 = o->top1_err = o->ppl = o->ppl_err = o->ppl_base = o->ppl_base_err = NAN;
        o->ppl_delta = o->ppl_delta_err = NAN;
        return;
    }
    qsort(a->kl, (size_t)n, sizeof *a->kl, dbl_cmp);
    o->kl_mean = mean_err(a->kl_sum, a->kl_sum2, n, &o->kl_mean_err);
    o->kl_median = met_stats_percentile_sorted(a->kl, (size_t)n, 50);
    o->kl_p99 = met_stats_percentile_sorted(a->kl, (size_t)n, 99);
    o->kl_max = a->kl[n - 1];
    o->top1 = (double)a->same_top / (double)n;
    o->top1_err = n > 1 ? sqrt(o->top1 * (1 - o->top1) / (double)(n - 1)) : NAN;
    o->ppl = met_quality_ppl_value(&a->run, &o->ppl_err);
    o->ppl_base = met_quality_ppl_value(&a->base, &o->ppl_base_err);
    o->ppl_delta = o->ppl - o->ppl_base;
    /* perplexity.cpp kl_divergence: the errors of ln ppl (mean_and_uncertainty),
     * their covariance (0 under 10 values), then sqrt(u^2 + ub^2 - 2 ppl ppl_b cov) */
    double u, ub;
    mean_err(a->run.nll, a->run.nll2, n, &u);
    mean_err(a->base.nll, a->base.nll2, n, &ub);
    double cov = 0;
    if (n >= 10)
        cov = (a->nll_nll_base / (double)n -
               (a->run.nll / (double)n) * (a->base.nll / (double)n)) / (double)(n - 1);
    const double pu = o->ppl * u, pub = o->ppl_base * ub;
    const double v = pu * pu + pub * pub - 2.0 * o->ppl * o->ppl_base * cov;
    o->ppl_delta_err = v > 0 ? sqrt(v) : 0.0;
}

void met_quality_kl_free(met_quality_kl_acc *a)
{
    free(a->kl);
    memset(a, 0, sizeof *a);
}

/* ---- little-endian fields --------------------------------------------------- */

static void put32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static void put64(unsigned char *p, uint64_t v)
{
    put32(p, (uint32_t)v);
    put32(p + 4, (uint32_t)(v >> 32));
}

static uint32_t get32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get64(const unsigned char *p) { return get32(p) | (uint64_t)get32(p + 4) << 32; }

static uint32_t f2u(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static float u2f(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* ---- writer ------------------------------------------------------------------ */

struct met_quality_base_writer {
    FILE *f;
    char *path, *tmp;
    int64_t n_vocab, rows, want;
    unsigned char *buf;          /* one row: 16 + 8 * n_vocab bytes      */
};

static int check_info(const met_quality_base_info *in, eng_err *err)
{
    if (!in->model || !in->model[0] || strlen(in->model) > MODEL_MAX)
        return eng_err_set(err, ENG_EINVAL, "KL base: model name empty or over %d bytes",
                           MODEL_MAX);
    if (in->n_vocab < 1 || in->n_vocab > INT32_MAX || in->n_ctx < 2 || in->n_ctx > 1 << 24 ||
        in->first < 0 || in->first > in->n_ctx - 2 || in->n_chunks < 1 ||
        in->n_chunks > (1 << 30) / in->n_ctx || in->n_batch < 1 || in->bos < -1 ||
        in->bos >= in->n_vocab)
        return eng_err_set(err, ENG_EINVAL, "KL base: inconsistent run (vocab %" PRId64
                           ", ctx %" PRId64 ", first %" PRId64 ", chunks %" PRId64 ")",
                           in->n_vocab, in->n_ctx, in->first, in->n_chunks);
    return ENG_OK;
}

static int write_head(met_quality_base_writer *w, const met_quality_base_info *in)
{
    unsigned char h[HEAD_BYTES] = {0};
    const size_t ml = strlen(in->model);
    memcpy(h, k_magic, 8);
    put32(h + 8, VERSION);
    put32(h + 12, (uint32_t)ml);
    put64(h + 16, in->model_size);
    const int64_t v[5] = {in->n_vocab, in->n_ctx, in->n_chunks, in->first, in->n_batch};
    for (int i = 0; i < 5; i++)
        put64(h + 24 + 8 * i, (uint64_t)v[i]);
    put32(h + 64, (uint32_t)in->bos);
    if (fwrite(h, 1, sizeof h, w->f) != sizeof h || fwrite(in->model, 1, ml, w->f) != ml)
        return ENG_EIO;
    const int64_t nt = in->n_chunks * in->n_ctx;
    for (int64_t i = 0; i < nt; i++) {
        unsigned char b[4];
        put32(b, (uint32_t)in->tokens[i]);
        if (fwrite(b, 1, 4, w->f) != 4)
            return ENG_EIO;
    }
    return ENG_OK;
}

int met_quality_base_create(met_quality_base_writer **out, const char *path,
                            const met_quality_base_info *info, eng_err *err)
{
    *out = NULL;
    int rc = check_info(info, err);
    if (rc)
        return rc;
    for (int64_t i = 0; i < info->n_chunks * info->n_ctx; i++)
        if (info->tokens[i] < 0 || info->tokens[i] >= info->n_vocab)
            return eng_err_set(err, ENG_EINVAL, "KL base: token %" PRId64 " out of range", i);
    met_quality_base_writer *w = calloc(1, sizeof *w);
    size_t pl = strlen(path);
    if (!w || !(w->path = strdup(path)) || !(w->tmp = malloc(pl + 5)) ||
        !(w->buf = malloc(16 + 8 * (size_t)info->n_vocab))) {
        met_quality_base_abort(w);
        return eng_err_set(err, ENG_ENOMEM, "%s: out of memory", path);
    }
    snprintf(w->tmp, pl + 5, "%s.tmp", path);
    w->n_vocab = info->n_vocab;
    w->want = info->n_chunks * met_quality_scored(info->n_ctx, info->first);
    if (!(w->f = fopen(w->tmp, "wb"))) {
        rc = eng_err_set(err, ENG_EIO, "%s: %s", w->tmp, strerror(errno));
        met_quality_base_abort(w);
        return rc;
    }
    if (write_head(w, info)) {
        rc = eng_err_set(err, ENG_EIO, "%s: write error: %s", w->tmp, strerror(errno));
        met_quality_base_abort(w);
        return rc;
    }
    *out = w;
    return ENG_OK;
}

int met_quality_base_write(met_quality_base_writer *w, const met_quality_row *r, eng_err *err)
{
    if (w->rows >= w->want)
        return eng_err_set(err, ENG_ESTATE, "%s: more rows than the header says", w->path);
    unsigned char *p = w->buf;
    uint64_t nb;
    memcpy(&nb, &r->nll, 8);
    put64(p, nb);
    put32(p + 8, (uint32_t)r->top1);
    put32(p + 12, (uint32_t)r->n);
    p += 16;
    for (int64_t j = 0; j < r->n; j++) {
        if (r->id) {
            put32(p, (uint32_t)r->id[j]);
            p += 4;
        }
        put32(p, f2u(r->lp[j]));
        p += 4;
    }
    size_t len = (size_t)(p - w->buf);
    if (fwrite(w->buf, 1, len, w->f) != len)
        return eng_err_set(err, ENG_EIO, "%s: write error: %s", w->tmp, strerror(errno));
    w->rows++;
    return ENG_OK;
}

int met_quality_base_close(met_quality_base_writer *w, eng_err *err)
{
    int rc = ENG_OK;
    if (w->rows != w->want) {
        rc = eng_err_set(err, ENG_ESTATE, "%s: %" PRId64 " rows of %" PRId64 " written", w->path,
                         w->rows, w->want);
    } else {
        unsigned char e[END_BYTES];
        memcpy(e, k_end, 8);
        put64(e + 8, (uint64_t)w->rows);
        int bad = fwrite(e, 1, sizeof e, w->f) != sizeof e;
        bad |= fclose(w->f) != 0;
        w->f = NULL;
        if (bad || rename(w->tmp, w->path) != 0)
            rc = eng_err_set(err, ENG_EIO, "%s: %s", bad ? w->tmp : w->path, strerror(errno));
    }
    if (rc) {
        met_quality_base_abort(w);
        return rc;
    }
    free(w->path), free(w->tmp), free(w->buf), free(w);
    return ENG_OK;
}

void met_quality_base_abort(met_quality_base_writer *w)
{
    if (!w)
        return;
    if (w->f)
        fclose(w->f);
    if (w->tmp)
        remove(w->tmp);
    free(w->path), free(w->tmp), free(w->buf), free(w);
}

/* ---- reader ------------------------------------------------------------------ */

struct met_quality_base_reader {
    FILE *f;
    char *path;
    met_quality_base_info info;
    char *model;
    int32_t *tokens;
    uint64_t off, end;           /* next row's offset; where the end mark starts */
    int64_t rows, want;
    unsigned char *buf;          /* one row's entries: 8 * n_vocab bytes */
    int32_t *id;
    float *lp;
};

static int rfail(met_quality_base_reader *r, eng_err *err, int code, const char *what)
{
    return eng_err_set(err, code, "%s: %s", r->path, what);
}

static int read_at(met_quality_base_reader *r, void *dst, size_t n, eng_err *err)
{
    if (n && fread(dst, 1, n, r->f) != n)
        return eng_err_set(err, ENG_EIO, "%s: read error", r->path);
    r->off += n;
    return ENG_OK;
}

/* The fixed header: every field checked before it sizes anything. */
static int read_head(met_quality_base_reader *r, uint64_t size, eng_err *err)
{
    unsigned char h[HEAD_BYTES];
    if (size < HEAD_BYTES + END_BYTES || read_at(r, h, sizeof h, err) || memcmp(h, k_magic, 8))
        return rfail(r, err, ENG_EFORMAT, "not a moebench KL base file (magic MBKLBASE)");
    if (get32(h + 8) != VERSION)
        return rfail(r, err, ENG_EFORMAT, "KL base file version is not 1");
    met_quality_base_info *in = &r->info;
    const uint32_t ml = get32(h + 12);
    in->model_size = get64(h + 16);
    int64_t *v[5] = {&in->n_vocab, &in->n_ctx, &in->n_chunks, &in->first, &in->n_batch};
    for (int i = 0; i < 5; i++)
        *v[i] = (int64_t)get64(h + 24 + 8 * i);
    in->bos = (int32_t)get32(h + 64);
    in->model = "x";
    if (ml < 1 || ml > MODEL_MAX || check_info(in, err))
        return rfail(r, err, ENG_EFORMAT, "header: a count out of range");
    r->end = size - END_BYTES;
    const uint64_t nt = (uint64_t)in->n_chunks * (uint64_t)in->n_ctx; /* < 2^30: checked */
    if (ml + 4 * nt > r->end - HEAD_BYTES)
        return rfail(r, err, ENG_EFORMAT, "header: model name and tokens run past the end");
    if (!(r->model = calloc(ml + 1, 1)) || !(r->tokens = malloc(4 * nt)))
        return rfail(r, err, ENG_ENOMEM, "out of memory");
    if (read_at(r, r->model, ml, err))
        return err->code;
    for (uint64_t i = 0; i < nt; i++) {
        unsigned char b[4];
        if (read_at(r, b, 4, err))
            return err->code;
        r->tokens[i] = (int32_t)get32(b);
        if (r->tokens[i] < 0 || r->tokens[i] >= in->n_vocab)
            return rfail(r, err, ENG_EFORMAT, "tokens: an id out of the vocabulary");
    }
    in->model = r->model;
    in->tokens = r->tokens;
    r->want = in->n_chunks * met_quality_scored(in->n_ctx, in->first);
    return ENG_OK;
}

static int read_end(met_quality_base_reader *r, eng_err *err)
{
    unsigned char e[END_BYTES];
    if (fseeko(r->f, (off_t)r->end, SEEK_SET) || fread(e, 1, sizeof e, r->f) != sizeof e)
        return eng_err_set(err, ENG_EIO, "%s: read error", r->path);
    if (memcmp(e, k_end, 8) || get64(e + 8) != (uint64_t)r->want)
        return rfail(r, err, ENG_EFORMAT, "no end mark: the base run did not finish (or the"
                                          " file was cut)");
    if (fseeko(r->f, (off_t)r->off, SEEK_SET))
        return eng_err_set(err, ENG_EIO, "%s: seek error", r->path);
    return ENG_OK;
}

int met_quality_base_open(met_quality_base_reader **out, const char *path, eng_err *err)
{
    *out = NULL;
    met_quality_base_reader *r = calloc(1, sizeof *r);
    if (!r || !(r->path = strdup(path))) {
        free(r);
        return eng_err_set(err, ENG_ENOMEM, "%s: out of memory", path);
    }
    struct stat st;
    int rc;
    if (!(r->f = fopen(path, "rb")) || fstat(fileno(r->f), &st) || !S_ISREG(st.st_mode)) {
        rc = eng_err_set(err, ENG_EIO, "%s: %s", path,
                         r->f ? "not a regular file" : strerror(errno));
    } else if (!(rc = read_head(r, (uint64_t)st.st_size, err)) && !(rc = read_end(r, err))) {
        const size_t nv = (size_t)r->info.n_vocab;
        if (!(r->buf = malloc(8 * nv)) || !(r->id = malloc(4 * nv)) ||
            !(r->lp = malloc(4 * nv)))
            rc = rfail(r, err, ENG_ENOMEM, "out of memory");
    }
    if (rc) {
        met_quality_base_free(r);
        return rc;
    }
    *out = r;
    return ENG_OK;
}

const met_quality_base_info *met_quality_base_info_of(const met_quality_base_reader *r)
{
    return &r->info;
}

/* The entries of a row of n values (dense when n == n_vocab). */
static int read_entries(met_quality_base_reader *r, met_quality_row *row, eng_err *err)
{
    const bool dense = row->n == r->info.n_vocab;
    const size_t bytes = (size_t)row->n * (dense ? 4 : 8);
    if (bytes > r->end - r->off)
        return rfail(r, err, ENG_EFORMAT, "a row runs into the end mark");
    if (read_at(r, r->buf, bytes, err))
        return err->code;
    const unsigned char *p = r->buf;
    for (int64_t j = 0; j < row->n; j++) {
        if (!dense) {
            r->id[j] = (int32_t)get32(p);
            p += 4;
            if (r->id[j] < 0 || r->id[j] >= r->info.n_vocab || (j && r->id[j] <= r->id[j - 1]))
                return rfail(r, err, ENG_EFORMAT, "a row's token ids are out of order or range");
        }
        r->lp[j] = u2f(get32(p));
        p += 4;
        if (isnan(r->lp[j]) || r->lp[j] > 0 || (!dense && !(r->lp[j] > MET_QUALITY_LP_MIN)))
            return rfail(r, err, ENG_EFORMAT, "a row holds a log-probability out of range");
    }
    row->id = dense ? NULL : r->id;
    row->lp = r->lp;
    return ENG_OK;
}

int met_quality_base_next(met_quality_base_reader *r, met_quality_row *row, eng_err *err)
{
    if (r->rows >= r->want)
        return rfail(r, err, ENG_ESTATE, "read past the last row");
    unsigned char h[16];
    if (16 > r->end - r->off)
        return rfail(r, err, ENG_EFORMAT, "a row runs into the end mark");
    if (read_at(r, h, sizeof h, err))
        return err->code;
    uint64_t nb = get64(h);
    memcpy(&row->nll, &nb, 8);
    row->top1 = (int32_t)get32(h + 8);
    row->n = get32(h + 12);
    if (!isfinite(row->nll) || row->top1 < 0 || row->top1 >= r->info.n_vocab ||
        row->n > r->info.n_vocab)
        return rfail(r, err, ENG_EFORMAT, "a row's nll, top-1 or count is out of range");
    int rc = read_entries(r, row, err);
    if (!rc)
        r->rows++;
    return rc;
}

void met_quality_base_free(met_quality_base_reader *r)
{
    if (!r)
        return;
    if (r->f)
        fclose(r->f);
    free(r->path), free(r->model), free(r->tokens), free(r->buf), free(r->id), free(r->lp);
    free(r);
}
