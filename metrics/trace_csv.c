/*
 * trace_csv.c — CSV traces, one row per (sample, token, layer, rank):
 *   # moetrace num_layers=L num_experts=E top_k=k      (optional first line)
 *   sample,token,layer,rank,expert,weight
 *   0,0,0,0,17,0.41
 * weight is empty when the trace has none (all rows, or none, carry one).
 * Rows may come in any order, but every (sample, token < T_s, layer < L,
 * rank < k) must appear exactly once. Without the comment line, L, k and
 * the token counts come from the largest indices and E = largest id + 1.
 * Token ids and labels are not carried.
 */
#include "metrics/trace.h"
#include "metrics/trace_impl.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct row {
    int64_t s, t;
    int32_t l, r, e;
    float w;
} row;

typedef struct rows {
    row *v;
    size_t n, cap;
    int64_t hdrL, hdrE, hdrK; /* from the comment line, -1 if absent */
    int64_t hdrOff;           /* its layer_offset=, 0 if absent        */
    int weights;              /* -1 unknown, 0 none, 1 all            */
} rows;

static int parse_i64(const char *f, int64_t max, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(f, &end, 10);
    if (end == f || *end || errno || v < 0 || v > max)
        return -1;
    *out = v;
    return 0;
}

static int parse_row(rows *R, char *line, const char *path, long ln, eng_err *err)
{
    char *f[7];
    int nf = 0;
    for (char *p = line;; p++) {
        if (nf < 7)
            f[nf] = p;
        nf++;
        p = strchr(p, ',');
        if (!p)
            break;
        *p = 0;
    }
    if (nf != 6)
        return eng_err_set(err, ENG_EFORMAT, "%s:%ld: expected 6 fields, got %d", path, ln, nf);
    int64_t v[5];
    static const char *const names[] = {"sample", "token", "layer", "rank", "expert"};
    static const int64_t max[] = {INT64_MAX / 2, INT64_MAX / 2, MET_TRACE_MAX_LAYERS - 1,
                                  MET_TRACE_MAX_EXPERTS - 1, MET_TRACE_MAX_EXPERTS - 1};
    for (int i = 0; i < 5; i++)
        if (parse_i64(f[i], max[i], &v[i]))
            return eng_err_set(err, ENG_EFORMAT, "%s:%ld: %s: bad value '%s'", path, ln,
                               names[i], f[i]);
    int has_w = *f[5] != 0;
    if (R->weights >= 0 && R->weights != has_w)
        return eng_err_set(err, ENG_EFORMAT, "%s:%ld: weight: present on some rows only", path,
                           ln);
    R->weights = has_w;
    float w = 0;
    if (has_w) {
        char *end;
        w = strtof(f[5], &end);
        if (*end || !isfinite(w))
            return eng_err_set(err, ENG_EFORMAT, "%s:%ld: weight: bad value '%s'", path, ln, f[5]);
    }
    if (R->n == R->cap) {
        size_t nc = R->cap ? 2 * R->cap : 1024;
        row *p = realloc(R->v, nc * sizeof *p);
        if (!p)
            return eng_err_set(err, ENG_ENOMEM, "%s: out of memory", path);
        R->v = p, R->cap = nc;
    }
    R->v[R->n++] = (row){v[0], v[1], (int32_t)v[2], (int32_t)v[3], (int32_t)v[4], w};
    return ENG_OK;
}

static int read_rows(rows *R, const char *path, eng_err *err)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return eng_err_set(err, ENG_EIO, "%s: %s", path, strerror(errno));
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    long ln = 0;
    int rc = ENG_OK, seen_header = 0;
    while (!rc && (len = getline(&line, &cap, f)) >= 0) {
        ln++;
        while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = 0;
        if ((size_t)len != strlen(line))
            rc = eng_err_set(err, ENG_EFORMAT, "%s:%ld: NUL byte", path, ln);
        else if (!seen_header && line[0] == '#') {
            long long a, b, c, o = 0;
            int got = sscanf(line, "# moetrace num_layers=%lld num_experts=%lld top_k=%lld "
                             "layer_offset=%lld", &a, &b, &c, &o);
            if (got >= 3)
                R->hdrL = a, R->hdrE = b, R->hdrK = c, R->hdrOff = o;
        } else if (!seen_header) {
            seen_header = 1;
            if (strcmp(line, "sample,token,layer,rank,expert,weight"))
                rc = eng_err_set(err, ENG_EFORMAT,
                                 "%s:%ld: header must be sample,token,layer,rank,expert,weight",
                                 path, ln);
        } else if (len) {
            rc = parse_row(R, line, path, ln, err);
        }
    }
    if (!rc && ferror(f))
        rc = eng_err_set(err, ENG_EIO, "%s: read error", path);
    if (!rc && !seen_header)
        rc = eng_err_set(err, ENG_EFORMAT, "%s: header line missing", path);
    free(line);
    fclose(f);
    return rc;
}

/* Shape from the rows (and the comment line), then the token counts. */
static int shape(rows *R, met_trace_info *in, int64_t **counts, const char *path, eng_err *err)
{
    int64_t S = 0, L = 0, K = 0, E = 0;
    for (size_t i = 0; i < R->n; i++) {
        row *w = &R->v[i];
        S = w->s + 1 > S ? w->s + 1 : S;
        L = w->l + 1 > L ? w->l + 1 : L;
        K = w->r + 1 > K ? w->r + 1 : K;
        E = w->e + 1 > E ? w->e + 1 : E;
    }
    if (R->hdrL >= 0) {
        if (R->hdrL < 1 || R->hdrL > MET_TRACE_MAX_LAYERS || R->hdrE < 1 ||
            R->hdrE > MET_TRACE_MAX_EXPERTS || R->hdrK < 1 || R->hdrK > R->hdrE ||
            R->hdrOff < 0 || R->hdrOff > MET_TRACE_MAX_LAYERS)
            return eng_err_set(err, ENG_EFORMAT, "%s: shape line out of range", path);
        if (R->hdrL < L || R->hdrK < K || R->hdrE < E)
            return eng_err_set(err, ENG_EFORMAT, "%s: rows exceed the shape in the comment line",
                               path);
        L = R->hdrL, K = R->hdrK, E = R->hdrE;
    }
    if (!R->n && R->hdrL < 0)
        return eng_err_set(err, ENG_EFORMAT, "%s: no rows and no shape line", path);
    if ((uint64_t)S > R->n)
        return eng_err_set(err, ENG_EFORMAT, "%s: sample %lld: missing rows", path,
                           (long long)S - 1);
    *in = (met_trace_info){.num_layers = (int32_t)L, .num_experts = (int32_t)E,
                           .top_k = (int32_t)K, .num_samples = S,
                           .flags = R->weights == 1 ? MET_TRACE_WEIGHTS : 0,
                           .layer_offset = (int32_t)R->hdrOff};
    if (!(*counts = calloc(S ? (size_t)S : 1, sizeof **counts)))
        return eng_err_set(err, ENG_ENOMEM, "%s: out of memory", path);
    for (size_t i = 0; i < R->n; i++)
        if (R->v[i].t + 1 > (*counts)[R->v[i].s])
            (*counts)[R->v[i].s] = R->v[i].t + 1;
    uint64_t need = 0, per = (uint64_t)L * (uint64_t)K;
    for (int64_t s = 0; s < S; s++) {
        if ((uint64_t)(*counts)[s] > (R->n - need) / per)
            return eng_err_set(err, ENG_EFORMAT, "%s: sample %lld: missing rows", path,
                               (long long)s);
        need += (uint64_t)(*counts)[s] * per;
    }
    if (need != R->n)
        return eng_err_set(err, ENG_EFORMAT,
                           "%s: %zu rows, the shape needs %llu (missing or repeated rows)", path,
                           R->n, (unsigned long long)need);
    return ENG_OK;
}

static int fill(met_trace *t, rows *R, const char *path, eng_err *err)
{
    int32_t L = t->info.num_layers, k = t->info.top_k;
    size_t n = (size_t)t->info.num_tokens * L * k;
    uint8_t *seen = calloc(n ? n : 1, 1);
    if (!seen)
        return eng_err_set(err, ENG_ENOMEM, "%s: out of memory", path);
    int rc = ENG_OK;
    for (size_t i = 0; !rc && i < R->n; i++) {
        row *w = &R->v[i];
        size_t o = ((size_t)(t->sample_start[w->s] + w->t) * L + w->l) * k + w->r;
        if (seen[o]++)
            rc = eng_err_set(err, ENG_EFORMAT,
                             "%s: sample %lld token %lld layer %d rank %d: given twice", path,
                             (long long)w->s, (long long)w->t, (int)w->l, (int)w->r);
        t->ids[o] = (uint16_t)w->e;
        if (t->weights)
            t->weights[o] = w->w;
    }
    free(seen); /* all rows distinct and the count matches: every slot is filled */
    return rc ? rc : met_trace_validate(t, path, err);
}

int met_trace_load_csv(met_trace **out, const char *path, eng_err *err)
{
    *out = NULL;
    rows R = {.hdrL = -1, .hdrE = -1, .hdrK = -1, .weights = -1};
    met_trace_info in;
    int64_t *counts = NULL;
    met_trace *t = NULL;
    int rc = read_rows(&R, path, err);
    if (!rc)
        rc = shape(&R, &in, &counts, path, err);
    if (!rc)
        rc = met_trace_info_check(&in, path, err);
    if (!rc)
        rc = met_trace_alloc(&t, &in, counts, err);
    if (!rc)
        rc = fill(t, &R, path, err);
    free(R.v), free(counts);
    if (rc) {
        met_trace_free(t);
        return rc;
    }
    *out = t;
    return ENG_OK;
}

int met_trace_save_csv(const met_trace *t, const char *path, eng_err *err)
{
    const met_trace_info *in = &t->info;
    int32_t L = in->num_layers, k = in->top_k;
    FILE *f = fopen(path, "w");
    if (!f)
        return eng_err_set(err, ENG_EIO, "%s: %s", path, strerror(errno));
    fprintf(f, "# moetrace num_layers=%d num_experts=%d top_k=%d", (int)L,
            (int)in->num_experts, (int)k);
    if (in->layer_offset)
        fprintf(f, " layer_offset=%d", (int)in->layer_offset);
    fputc('\n', f);
    fputs("sample,token,layer,rank,expert,weight\n", f);
    for (int64_t s = 0; s < in->num_samples; s++)
        for (int64_t g = t->sample_start[s]; g < t->sample_start[s + 1]; g++)
            for (int32_t l = 0; l < L; l++)
                for (int32_t r = 0; r < k; r++) {
                    size_t o = ((size_t)g * L + l) * k + r;
                    fprintf(f, "%lld,%lld,%d,%d,%u,", (long long)s,
                            (long long)(g - t->sample_start[s]), (int)l, (int)r, t->ids[o]);
                    if (t->weights)
                        fprintf(f, "%.9g", t->weights[o]); /* round-trips a float */
                    fputc('\n', f);
                }
    if (ferror(f) | fclose(f))
        return eng_err_set(err, ENG_EIO, "%s: write failed", path);
    return ENG_OK;
}
