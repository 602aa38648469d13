/*
 * predict.c — routing predictors (predict.h): counting a profile, the file,
 * and the prediction.
 *
 * Design notes. The tables are dense u64 counts, L * E * E each for trans
 * and hist: at the limits (4096 layers is not a real model; 64 layers x 256
 * experts is DeepSeek-V3) that is 64 x 256 x 256 x 8 = 32 MiB per table,
 * fine for a profile artefact. The prediction is a full scan of the scores
 * with a partial selection, O(E * n); n <= k in practice.
 */
#include "engine/predict.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct eng_predictor {
    int L, E, k, layer_offset;
    uint64_t tokens;
    uint64_t *freq;   /* [L][E]    */
    uint64_t *trans;  /* [L][E][E] */
    uint64_t *hist;   /* [L][E][E] */
};

static const char magic[8] = {'M', 'O', 'E', 'P', 'R', 'E', 'D', '1'};
enum { VERSION = 1, HEADER = 8 + 4 * 5 + 8 };

static const char *const kind_names[] = {"transition", "history", "frequency"};

const char *eng_predict_kind_name(eng_predict_kind k)
{
    return (unsigned)k < 3 ? kind_names[k] : "?";
}

int eng_predict_kind_parse(const char *name)
{
    for (int i = 0; i < 3; i++)
        if (name && !strcmp(name, kind_names[i]))
            return i;
    return -1;
}

static size_t n_freq(const eng_predictor *p) { return (size_t)p->L * (size_t)p->E; }
static size_t n_pair(const eng_predictor *p) { return n_freq(p) * (size_t)p->E; }

static int check_shape(int L, int E, int k, int off, const char *what, eng_err *err)
{
    if (L < 1 || L > ENG_PREDICT_MAX_LAYERS || E < 1 || E > ENG_PREDICT_MAX_EXPERTS || k < 1 ||
        k > E || off < 0 || off > ENG_PREDICT_MAX_LAYERS)
        return eng_err_set(err, ENG_EINVAL,
                           "%s: %d layers, %d experts, top-k %d, layer offset %d: out of range "
                           "(layers 1..%d, experts 1..%d, top-k 1..experts)",
                           what, L, E, k, off, ENG_PREDICT_MAX_LAYERS, ENG_PREDICT_MAX_EXPERTS);
    return ENG_OK;
}

int eng_predictor_new(eng_predictor **out, int n_layer, int n_expert, int top_k,
                      int layer_offset, eng_err *err)
{
    *out = NULL;
    int rc = check_shape(n_layer, n_expert, top_k, layer_offset, "predictor", err);
    if (rc)
        return rc;
    eng_predictor *p = calloc(1, sizeof *p);
    if (!p)
        return eng_err_set(err, ENG_ENOMEM, "predictor: out of memory");
    *p = (eng_predictor){.L = n_layer, .E = n_expert, .k = top_k, .layer_offset = layer_offset};
    p->freq = calloc(n_freq(p), sizeof *p->freq);
    p->trans = calloc(n_pair(p), sizeof *p->trans);
    p->hist = calloc(n_pair(p), sizeof *p->hist);
    if (!p->freq || !p->trans || !p->hist) {
        const size_t bytes = (2 * n_pair(p) + n_freq(p)) * sizeof(uint64_t);
        eng_predictor_free(p);
        return eng_err_set(err, ENG_ENOMEM, "predictor: out of memory (%zu bytes of tables)",
                           bytes);
    }
    *out = p;
    return ENG_OK;
}

void eng_predictor_free(eng_predictor *p)
{
    if (!p)
        return;
    free(p->freq);
    free(p->trans);
    free(p->hist);
    free(p);
}

/* Adds every pair (a[i], b[j]) to table row base. */
static void add_pairs(const eng_predictor *p, uint64_t *tab, int l, const uint16_t *a,
                      const uint16_t *b)
{
    uint64_t *row = tab + (size_t)l * p->E * p->E;
    for (int i = 0; i < p->k; i++)
        for (int j = 0; j < p->k; j++)
            row[(size_t)a[i] * p->E + b[j]]++;
}

int eng_predictor_add_sample(eng_predictor *p, const uint16_t *ids, int64_t T, eng_err *err)
{
    const size_t per_tok = (size_t)p->L * p->k;
    for (size_t i = 0; i < (size_t)T * per_tok; i++)
        if (ids[i] >= p->E)
            return eng_err_set(err, ENG_EINVAL,
                               "predictor: token %lld layer %d: expert %u >= %d experts",
                               (long long)(i / per_tok), (int)(i % per_tok / p->k), ids[i], p->E);
    for (int64_t t = 0; t < T; t++) {
        const uint16_t *u = ids + (size_t)t * per_tok, *nx = u + per_tok;
        for (int l = 0; l < p->L; l++) {
            const uint16_t *cl = u + (size_t)l * p->k;
            for (int r = 0; r < p->k; r++)
                p->freq[(size_t)l * p->E + cl[r]]++;
            if (l + 1 < p->L)
                add_pairs(p, p->trans, l, cl, cl + p->k);
            if (t + 1 < T) {
                add_pairs(p, p->hist, l, cl, nx + (size_t)l * p->k);
                if (l + 1 == p->L)
                    add_pairs(p, p->trans, l, cl, nx);
            }
        }
    }
    p->tokens += (uint64_t)T;
    return ENG_OK;
}

eng_predictor_info eng_predictor_get_info(const eng_predictor *p)
{
    return (eng_predictor_info){p->L, p->E, p->k, p->layer_offset, p->tokens};
}

uint64_t eng_predictor_freq(const eng_predictor *p, int l, int j)
{
    return p->freq[(size_t)l * p->E + j];
}

uint64_t eng_predictor_trans(const eng_predictor *p, int l, int i, int j)
{
    return p->trans[((size_t)l * p->E + i) * p->E + j];
}

uint64_t eng_predictor_hist(const eng_predictor *p, int l, int i, int j)
{
    return p->hist[((size_t)l * p->E + i) * p->E + j];
}

/* ---- prediction ---------------------------------------------------------- */

/* Adds row i of table l to score for every valid i of ids. */
static void add_rows(const eng_predictor *p, const uint64_t *tab, int l, const int32_t *ids,
                     int n, double *score)
{
    for (int a = 0; a < n; a++) {
        if (ids[a] < 0 || ids[a] >= p->E)
            continue;
        const uint64_t *row = tab + ((size_t)l * p->E + (size_t)ids[a]) * p->E;
        for (int j = 0; j < p->E; j++)
            score[j] += (double)row[j];
    }
}

/* Whether expert a ranks before b: score, then freq, then lower id. */
static int better(const double *score, const uint64_t *fq, int a, int b)
{
    if (score[a] != score[b])
        return score[a] > score[b];
    if (fq[a] != fq[b])
        return fq[a] > fq[b];
    return a < b;
}

int eng_predictor_predict(const eng_predictor *p, eng_predict_kind kind, int nl,
                          const int32_t *cur, int n_cur, const int32_t *prev, int n_prev,
                          int n, int32_t *out, double *score)
{
    if (nl < 0 || nl >= p->L || n < 1)
        return 0;
    n = n > p->E ? p->E : n;
    const uint64_t *fq = p->freq + (size_t)nl * p->E;
    for (int j = 0; j < p->E; j++)
        score[j] = 0;
    if (kind == ENG_PREDICT_TRANSITION)
        add_rows(p, p->trans, nl > 0 ? nl - 1 : p->L - 1, cur, n_cur, score);
    else if (kind == ENG_PREDICT_HISTORY)
        add_rows(p, p->hist, nl, prev, n_prev, score);
    else
        for (int j = 0; j < p->E; j++)
            score[j] = (double)fq[j];
    int m = 0; /* insertion into out[0..m), best first */
    for (int j = 0; j < p->E; j++) {
        if (m == n && !better(score, fq, j, out[n - 1]))
            continue;
        int i = m < n ? m++ : n - 1;
        for (; i > 0 && better(score, fq, j, out[i - 1]); i--)
            out[i] = out[i - 1];
        out[i] = j;
    }
    return m;
}

/* ---- file ---------------------------------------------------------------- */

static void put_u32(unsigned char *b, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        b[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t get_u32(const unsigned char *b)
{
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static void put_u64(unsigned char *b, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        b[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t get_u64(const unsigned char *b)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | b[i];
    return v;
}

static int write_table(FILE *f, const uint64_t *t, size_t n)
{
    unsigned char buf[8 * 512];
    for (size_t i = 0; i < n;) {
        size_t m = n - i < 512 ? n - i : 512;
        for (size_t j = 0; j < m; j++)
            put_u64(buf + 8 * j, t[i + j]);
        if (fwrite(buf, 8, m, f) != m)
            return -1;
        i += m;
    }
    return 0;
}

int eng_predictor_save(const eng_predictor *p, const char *path, eng_err *err)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return eng_err_set(err, ENG_EIO, "%s: cannot create: %s", path, strerror(errno));
    unsigned char h[HEADER];
    memcpy(h, magic, 8);
    put_u32(h + 8, VERSION);
    put_u32(h + 12, (uint32_t)p->L);
    put_u32(h + 16, (uint32_t)p->E);
    put_u32(h + 20, (uint32_t)p->k);
    put_u32(h + 24, (uint32_t)p->layer_offset);
    put_u64(h + 28, p->tokens);
    int bad = fwrite(h, 1, HEADER, f) != HEADER || write_table(f, p->freq, n_freq(p)) ||
              write_table(f, p->trans, n_pair(p)) || write_table(f, p->hist, n_pair(p));
    bad |= fclose(f) != 0;
    return bad ? eng_err_set(err, ENG_EIO, "%s: write failed: %s", path, strerror(errno))
               : ENG_OK;
}

static int read_table(FILE *f, uint64_t *t, size_t n)
{
    unsigned char buf[8 * 512];
    for (size_t i = 0; i < n;) {
        size_t m = n - i < 512 ? n - i : 512;
        if (fread(buf, 8, m, f) != m)
            return -1;
        for (size_t j = 0; j < m; j++)
            t[i + j] = get_u64(buf + 8 * j);
        i += m;
    }
    return 0;
}

/* The header: magic, version, shape, and the file's size against it. */
static int read_header(FILE *f, const char *path, int *shape, uint64_t *tokens, eng_err *err)
{
    unsigned char h[HEADER];
    if (fseek(f, 0, SEEK_END) || ftell(f) < 0)
        return eng_err_set(err, ENG_EIO, "%s: cannot seek: %s", path, strerror(errno));
    const uint64_t size = (uint64_t)ftell(f);
    rewind(f);
    if (size < HEADER || fread(h, 1, HEADER, f) != HEADER)
        return eng_err_set(err, ENG_EFORMAT, "%s: %llu bytes: shorter than the %d-byte header",
                           path, (unsigned long long)size, HEADER);
    if (memcmp(h, magic, 8))
        return eng_err_set(err, ENG_EFORMAT, "%s: not a moebench predictor (magic is not "
                           "MOEPRED1; build one with `moebench trace predictor`)", path);
    if (get_u32(h + 8) != VERSION)
        return eng_err_set(err, ENG_EFORMAT, "%s: version %u (this build reads %d)", path,
                           get_u32(h + 8), VERSION);
    for (int i = 0; i < 4; i++) {
        uint32_t v = get_u32(h + 12 + 4 * i);
        shape[i] = v > 1u << 20 ? -1 : (int)v;
    }
    if (check_shape(shape[0], shape[1], shape[2], shape[3], path, err)) {
        if (err)
            err->code = ENG_EFORMAT; /* a bad header is a bad file, not a bad argument */
        return ENG_EFORMAT;
    }
    const uint64_t LE = (uint64_t)shape[0] * (uint64_t)shape[1];
    const uint64_t want = HEADER + 8 * (LE + 2 * LE * (uint64_t)shape[1]);
    if (size != want)
        return eng_err_set(err, ENG_EFORMAT,
                           "%s: %llu bytes, the header's shape (%d layers, %d experts) needs %llu",
                           path, (unsigned long long)size, shape[0], shape[1],
                           (unsigned long long)want);
    *tokens = get_u64(h + 28);
    return ENG_OK;
}

int eng_predictor_load(eng_predictor **out, const char *path, eng_err *err)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return eng_err_set(err, ENG_EIO, "%s: cannot open: %s", path, strerror(errno));
    int shape[4];
    uint64_t tokens = 0;
    eng_predictor *p = NULL;
    int rc = read_header(f, path, shape, &tokens, err);
    if (!rc)
        rc = eng_predictor_new(&p, shape[0], shape[1], shape[2], shape[3], err);
    if (!rc && (read_table(f, p->freq, n_freq(p)) || read_table(f, p->trans, n_pair(p)) ||
                read_table(f, p->hist, n_pair(p))))
        rc = eng_err_set(err, ENG_EIO, "%s: read failed", path);
    fclose(f);
    if (rc) {
        eng_predictor_free(p);
        return rc;
    }
    p->tokens = tokens;
    *out = p;
    return ENG_OK;
}
