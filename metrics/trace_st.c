/*
 * trace_st.c — moe-lrc's per-layer safetensors files.
 *
 * One file per layer; each holds, per dataset key, one tensor [samples,
 * tokens, k] of top-k expert ids (tensor name = dataset key; dtype I8 as
 * moe-lrc writes it; U8, I16, I32, I64 are read too). A trace is a directory
 * of such files (or one file = a one-layer trace). Layer order: the number at
 * the end of the file name's stem ("layer_07.safetensors", "7.safetensors",
 * "blk.7.safetensors"); numbers must be distinct, and are sorted (they need
 * not start at 0). Samples: keys in name order, each key's samples in
 * order, the key becoming the sample label. Every file must hold the same
 * keys with the same shapes. num_experts: the "num_experts" entry of
 * __metadata__ when present (moebench writes it), else largest id + 1.
 *
 * safetensors layout: u64 LE header length N, N bytes of JSON
 * {name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__":
 * {str: str}}, then the data; offsets are relative to the data start.
 * Everything is checked: N against the file size, each tensor's byte range
 * inside the data and equal to its shape times the dtype size.
 */
#include "metrics/trace.h"
#include "metrics/trace_impl.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define ST_MAX_HEADER (64u << 20)

typedef struct st_tensor {
    const char *name;        /* points into the JSON tree */
    int dsize, is_signed;
    int64_t shape[3];
    uint64_t begin, end;
} st_tensor;

typedef struct st_file {
    char *path;
    int64_t layer_no;
    unsigned char *data;     /* the data section */
    uint64_t data_len;
    json_t *hdr;
    st_tensor *t;
    int nt;
    int64_t meta_E;          /* -1 when absent */
    int64_t meta_off;        /* __metadata__.layer_offset, 0 when absent */
} st_file;

static int dtype_size(const char *d, int *sgn)
{
    static const struct { const char *n; int size, sgn; } tab[] = {
        {"I8", 1, 1}, {"U8", 1, 0}, {"I16", 2, 1}, {"I32", 4, 1}, {"I64", 8, 1}};
    for (size_t i = 0; i < sizeof tab / sizeof *tab; i++)
        if (!strcmp(d, tab[i].n)) {
            *sgn = tab[i].sgn;
            return tab[i].size;
        }
    return 0;
}

static int cmp_tensor(const void *a, const void *b)
{
    return strcmp(((const st_tensor *)a)->name, ((const st_tensor *)b)->name);
}

static int parse_tensor(st_tensor *t, const char *name, json_t *v, uint64_t dlen,
                        const char *path, eng_err *err)
{
    json_t *dt = json_object_get(v, "dtype"), *sh = json_object_get(v, "shape");
    json_t *of = json_object_get(v, "data_offsets");
    t->name = name;
    if (!json_is_string(dt) || !(t->dsize = dtype_size(json_string_value(dt), &t->is_signed)))
        return eng_err_set(err, ENG_EFORMAT, "%s: tensor '%s': dtype missing or not an integer "
                           "type (I8, U8, I16, I32, I64)", path, name);
    if (!json_is_array(sh) || json_array_size(sh) != 3)
        return eng_err_set(err, ENG_EFORMAT,
                           "%s: tensor '%s': shape must be [samples, tokens, k]", path, name);
    uint64_t n = (uint64_t)t->dsize;
    for (int i = 0; i < 3; i++) {
        json_t *x = json_array_get(sh, (size_t)i);
        if (!json_is_integer(x) || json_integer_value(x) < 0 ||
            (uint64_t)json_integer_value(x) > dlen)
            return eng_err_set(err, ENG_EFORMAT, "%s: tensor '%s': shape[%d] invalid", path,
                               name, i);
        t->shape[i] = json_integer_value(x);
        if (t->shape[i] && n > dlen / (uint64_t)t->shape[i] + 1)
            return eng_err_set(err, ENG_EFORMAT, "%s: tensor '%s': shape larger than the file",
                               path, name);
        n *= (uint64_t)t->shape[i];
    }
    json_t *b = json_array_get(of, 0), *e = json_array_get(of, 1);
    if (!json_is_array(of) || json_array_size(of) != 2 || !json_is_integer(b) ||
        !json_is_integer(e) || json_integer_value(b) < 0 ||
        json_integer_value(e) < json_integer_value(b) || (uint64_t)json_integer_value(e) > dlen)
        return eng_err_set(err, ENG_EFORMAT,
                           "%s: tensor '%s': data_offsets missing or outside the data (%llu bytes)",
                           path, name, (unsigned long long)dlen);
    t->begin = (uint64_t)json_integer_value(b), t->end = (uint64_t)json_integer_value(e);
    if (t->end - t->begin != n)
        return eng_err_set(err, ENG_EFORMAT,
                           "%s: tensor '%s': data_offsets span %llu bytes, shape needs %llu", path,
                           name, (unsigned long long)(t->end - t->begin), (unsigned long long)n);
    return ENG_OK;
}

static int parse_meta(st_file *f, json_t *m, eng_err *err)
{
    json_t *e = json_object_get(m, "num_experts"), *o = json_object_get(m, "layer_offset");
    if (!json_is_object(m))
        return eng_err_set(err, ENG_EFORMAT, "%s: __metadata__ is not an object", f->path);
    char *end;
    if (o) {
        long v = json_is_string(o) ? strtol(json_string_value(o), &end, 10) : -1;
        if (!json_is_string(o) || *end || v < 0 || v > MET_TRACE_MAX_LAYERS)
            return eng_err_set(err, ENG_EFORMAT, "%s: __metadata__.layer_offset invalid",
                               f->path);
        f->meta_off = v;
    }
    if (!e)
        return ENG_OK;
    long v = json_is_string(e) ? strtol(json_string_value(e), &end, 10) : -1;
    if (!json_is_string(e) || *end || v < 1 || v > MET_TRACE_MAX_EXPERTS)
        return eng_err_set(err, ENG_EFORMAT, "%s: __metadata__.num_experts invalid", f->path);
    f->meta_E = v;
    return ENG_OK;
}

static int parse_header(st_file *f, const char *txt, size_t n, eng_err *err)
{
    json_error_t je;
    f->hdr = json_loadb(txt, n, JSON_REJECT_DUPLICATES, &je);
    if (!f->hdr || !json_is_object(f->hdr))
        return eng_err_set(err, ENG_EFORMAT, "%s: header JSON: %s", f->path,
                           f->hdr ? "not an object" : je.text);
    f->t = calloc(json_object_size(f->hdr) + 1, sizeof *f->t);
    if (!f->t)
        return eng_err_set(err, ENG_ENOMEM, "%s: out of memory", f->path);
    const char *name;
    json_t *v;
    json_object_foreach(f->hdr, name, v) {
        int rc = !strcmp(name, "__metadata__")
                     ? parse_meta(f, v, err)
                     : parse_tensor(&f->t[f->nt++], name, v, f->data_len, f->path, err);
        if (rc)
            return rc;
    }
    qsort(f->t, (size_t)f->nt, sizeof *f->t, cmp_tensor);
    return ENG_OK;
}

static int read_st(st_file *f, eng_err *err)
{
    FILE *fp = fopen(f->path, "rb");
    if (!fp)
        return eng_err_set(err, ENG_EIO, "%s: %s", f->path, strerror(errno));
    unsigned char lb[8];
    struct stat st;
    int rc = ENG_OK;
    uint64_t fsize = 0, hl = 0;
    if (fstat(fileno(fp), &st) || fread(lb, 1, 8, fp) != 8)
        rc = eng_err_set(err, ENG_EFORMAT, "%s: header length: file shorter than 8 bytes",
                         f->path);
    if (!rc) {
        fsize = (uint64_t)st.st_size;
        for (int i = 7; i >= 0; i--)
            hl = hl << 8 | lb[i];
        if (hl > fsize - 8 || hl > ST_MAX_HEADER)
            rc = eng_err_set(err, ENG_EFORMAT, "%s: header length %llu exceeds the file (%llu)",
                             f->path, (unsigned long long)hl, (unsigned long long)fsize);
    }
    char *txt = NULL;
    if (!rc) {
        f->data_len = fsize - 8 - hl;
        txt = malloc(hl + 1);
        f->data = malloc(f->data_len + 1);
        if (!txt || !f->data)
            rc = eng_err_set(err, ENG_ENOMEM, "%s: out of memory", f->path);
        else if (fread(txt, 1, hl, fp) != hl || fread(f->data, 1, f->data_len, fp) != f->data_len)
            rc = eng_err_set(err, ENG_EIO, "%s: short read", f->path);
    }
    if (!rc)
        rc = parse_header(f, txt, hl, err);
    free(txt);
    fclose(fp);
    return rc;
}

static int64_t value_at(const st_file *f, const st_tensor *t, uint64_t i)
{
    const unsigned char *p = f->data + t->begin + i * (uint64_t)t->dsize;
    uint64_t u = 0;
    for (int b = t->dsize - 1; b >= 0; b--)
        u = u << 8 | p[b];
    if (t->is_signed && t->dsize < 8 && (u >> (t->dsize * 8 - 1)) & 1)
        u |= ~(uint64_t)0 << (t->dsize * 8);
    return (int64_t)u;
}

/* Layer number = last run of digits in the file name before ".safetensors". */
static int64_t layer_number(const char *name)
{
    size_t n = strlen(name);
    if (n > 12 && !strcasecmp(name + n - 12, ".safetensors"))
        n -= 12;
    size_t e = n;
    while (n && name[n - 1] >= '0' && name[n - 1] <= '9')
        n--;
    if (n == e || e - n > 9)
        return -1;
    return strtoll(name + n, NULL, 10);
}

static int cmp_layer(const void *a, const void *b)
{
    int64_t x = ((const st_file *)a)->layer_no, y = ((const st_file *)b)->layer_no;
    return (x > y) - (x < y);
}

static void files_free(st_file *f, int n)
{
    for (int i = 0; f && i < n; i++) {
        free(f[i].path), free(f[i].data), free(f[i].t);
        json_decref(f[i].hdr);
    }
    free(f);
}

static int list_files(const char *path, st_file **out, int *nout, eng_err *err)
{
    struct stat st;
    if (stat(path, &st))
        return eng_err_set(err, ENG_EIO, "%s: %s", path, strerror(errno));
    if (!S_ISDIR(st.st_mode)) {
        *out = calloc(1, sizeof **out);
        if (!*out || !((*out)->path = strdup(path)))
            return eng_err_set(err, ENG_ENOMEM, "%s: out of memory", path);
        *nout = 1;
        return ENG_OK;
    }
    DIR *d = opendir(path);
    if (!d)
        return eng_err_set(err, ENG_EIO, "%s: %s", path, strerror(errno));
    struct dirent *de;
    int n = 0, cap = 0, rc = ENG_OK;
    st_file *f = NULL;
    while (!rc && (de = readdir(d))) {
        size_t len = strlen(de->d_name);
        if (len < 12 || strcasecmp(de->d_name + len - 12, ".safetensors"))
            continue;
        if (n == cap) {
            st_file *g = realloc(f, (size_t)(cap = cap ? 2 * cap : 16) * sizeof *g);
            if (!g) {
                rc = eng_err_set(err, ENG_ENOMEM, "%s: out of memory", path);
                break;
            }
            f = g;
        }
        memset(&f[n], 0, sizeof f[n]);
        f[n].layer_no = layer_number(de->d_name);
        if (asprintf(&f[n].path, "%s/%s", path, de->d_name) < 0)
            f[n].path = NULL, rc = eng_err_set(err, ENG_ENOMEM, "%s: out of memory", path);
        else if (n++, f[n - 1].layer_no < 0)
            rc = eng_err_set(err, ENG_EFORMAT, "%s: file name has no layer number at its end",
                             f[n - 1].path);
        if (n > MET_TRACE_MAX_LAYERS)
            rc = eng_err_set(err, ENG_EFORMAT, "%s: more than %d layer files", path,
                             MET_TRACE_MAX_LAYERS);
    }
    closedir(d);
    if (!rc && !n)
        rc = eng_err_set(err, ENG_EFORMAT, "%s: no *.safetensors files", path);
    if (!rc) {
        qsort(f, (size_t)n, sizeof *f, cmp_layer);
        for (int i = 1; i < n; i++)
            if (f[i].layer_no == f[i - 1].layer_no)
                rc = eng_err_set(err, ENG_EFORMAT, "%s and %s: same layer number", f[i - 1].path,
                                 f[i].path);
    }
    *out = f, *nout = n;
    return rc;
}

/* Every file must hold layer 0's keys with the same shapes. */
static int check_files(st_file *f, int n, int32_t *k, int64_t *E, eng_err *err)
{
    if (!f[0].nt)
        return eng_err_set(err, ENG_EFORMAT, "%s: no tensors", f[0].path);
    *k = (int32_t)(f[0].t[0].shape[2] > MET_TRACE_MAX_EXPERTS ? -1 : f[0].t[0].shape[2]);
    *E = -1;
    for (int i = 0; i < n; i++) {
        if (f[i].nt != f[0].nt)
            return eng_err_set(err, ENG_EFORMAT, "%s: %d tensors, %s has %d", f[i].path, f[i].nt,
                               f[0].path, f[0].nt);
        for (int q = 0; q < f[i].nt; q++) {
            st_tensor *a = &f[i].t[q], *b = &f[0].t[q];
            if (strcmp(a->name, b->name) || memcmp(a->shape, b->shape, sizeof a->shape))
                return eng_err_set(err, ENG_EFORMAT,
                                   "%s: tensor '%s': name or shape differs from %s", f[i].path,
                                   a->name, f[0].path);
            if (a->shape[2] != *k)
                return eng_err_set(err, ENG_EFORMAT, "%s: tensor '%s': k = %lld, expected %d (k "
                                   "mismatch)", f[i].path, a->name, (long long)a->shape[2],
                                   (int)*k);
        }
        if (f[i].meta_off != f[0].meta_off)
            return eng_err_set(err, ENG_EFORMAT, "%s: layer_offset differs between files",
                               f[i].path);
        if (f[i].meta_E > 0 && *E > 0 && f[i].meta_E != *E)
            return eng_err_set(err, ENG_EFORMAT, "%s: num_experts differs between files",
                               f[i].path);
        if (f[i].meta_E > 0)
            *E = f[i].meta_E;
    }
    int64_t mx = -1;
    for (int i = 0; *E < 0 && i < n; i++)
        for (int q = 0; q < f[i].nt; q++)
            for (uint64_t j = 0; j < f[i].t[q].end - f[i].t[q].begin; j += f[i].t[q].dsize) {
                int64_t v = value_at(&f[i], &f[i].t[q], j / f[i].t[q].dsize);
                mx = v > mx ? v : mx;
            }
    if (*E < 0)
        *E = mx + 1 < 1 ? 1 : mx + 1;
    return ENG_OK;
}

static int fill_st(met_trace *t, st_file *f, int n, eng_err *err)
{
    int32_t L = n, k = t->info.top_k;
    int64_t s0 = 0;
    for (int q = 0; q < f[0].nt; q++) {
        int64_t ns = f[0].t[q].shape[0], T = f[0].t[q].shape[1];
        for (int64_t s = 0; s < ns; s++) {
            int rc = met_trace_set_label(t, s0 + s, f[0].t[q].name, err);
            if (rc)
                return rc;
            for (int l = 0; l < L; l++)
                for (int64_t i = 0; i < T * k; i++) {
                    int64_t v = value_at(&f[l], &f[l].t[q], (uint64_t)(s * T * k + i));
                    if (v < 0 || v >= t->info.num_experts)
                        return eng_err_set(err, ENG_EFORMAT,
                                           "%s: tensor '%s' sample %lld token %lld: expert %lld "
                                           "not in 0..%d",
                                           f[l].path, f[0].t[q].name, (long long)s,
                                           (long long)(i / k), (long long)v,
                                           (int)t->info.num_experts - 1);
                    size_t g = (size_t)(t->sample_start[s0 + s] + i / k);
                    t->ids[(g * L + l) * k + i % k] = (uint16_t)v;
                }
        }
        s0 += ns;
    }
    return ENG_OK;
}

int met_trace_load_st(met_trace **out, const char *path, eng_err *err)
{
    *out = NULL;
    st_file *f = NULL;
    int n = 0;
    int32_t k = 0;
    int64_t E = 0, S = 0, *counts = NULL;
    met_trace *t = NULL;
    int rc = list_files(path, &f, &n, err);
    for (int i = 0; !rc && i < n; i++)
        rc = read_st(&f[i], err);
    if (!rc)
        rc = check_files(f, n, &k, &E, err);
    for (int q = 0; !rc && q < f[0].nt; q++)
        S += f[0].t[q].shape[0]; /* each shape[0] <= file size: no overflow */
    if (!rc && !(counts = malloc((S ? (size_t)S : 1) * sizeof *counts)))
        rc = eng_err_set(err, ENG_ENOMEM, "%s: out of memory", path);
    for (int q = 0, s = 0; !rc && q < f[0].nt; q++)
        for (int64_t i = 0; i < f[0].t[q].shape[0]; i++)
            counts[s++] = f[0].t[q].shape[1];
    met_trace_info in = {.num_layers = n, .num_experts = (int32_t)(E > INT32_MAX ? 0 : E),
                         .top_k = k, .num_samples = S, .flags = MET_TRACE_LABELS,
                         .layer_offset = (int32_t)f[0].meta_off};
    if (!rc)
        rc = met_trace_info_check(&in, path, err);
    if (!rc)
        rc = met_trace_alloc(&t, &in, counts, err);
    if (!rc)
        rc = fill_st(t, f, n, err);
    if (!rc)
        rc = met_trace_validate(t, path, err);
    free(counts);
    files_free(f, n);
    if (rc) {
        met_trace_free(t);
        return rc;
    }
    *out = t;
    return ENG_OK;
}

/* ---- export ---------------------------------------------------------------- */

typedef struct group { const char *key; int64_t s0, ns, T; } group;

/* Consecutive samples with the same label form one tensor. */
static int make_groups(const met_trace *t, group **out, int *nout, eng_err *err)
{
    group *g = calloc((size_t)t->info.num_samples + 1, sizeof *g);
    int n = 0;
    if (!g)
        return eng_err_set(err, ENG_ENOMEM, "safetensors: out of memory");
    for (int64_t s = 0; s < t->info.num_samples; s++) {
        const char *key = t->labels && t->labels[s][0] ? t->labels[s] : "samples";
        int64_t T = t->sample_start[s + 1] - t->sample_start[s];
        if (n && !strcmp(g[n - 1].key, key)) {
            if (T != g[n - 1].T) {
                free(g);
                return eng_err_set(err, ENG_EUNSUPPORTED, "safetensors: dataset '%s': samples "
                                   "of different lengths (one tensor needs equal lengths)", key);
            }
            g[n - 1].ns++;
            continue;
        }
        for (int i = 0; i < n; i++)
            if (!strcmp(g[i].key, key) || !strcmp(key, "__metadata__")) {
                free(g);
                return eng_err_set(err, ENG_EUNSUPPORTED,
                                   "safetensors: samples of dataset '%s' are not contiguous", key);
            }
        g[n++] = (group){key, s, 1, T};
    }
    *out = g, *nout = n;
    return ENG_OK;
}

static int write_layer(const met_trace *t, const group *g, int ng, int32_t l, const char *file,
                       eng_err *err)
{
    int32_t L = t->info.num_layers, k = t->info.top_k;
    json_t *h = json_object(), *meta = json_object();
    char buf[32];
    snprintf(buf, sizeof buf, "%d", (int)t->info.num_experts);
    json_object_set_new(meta, "num_experts", json_string(buf));
    if (t->info.layer_offset) {
        snprintf(buf, sizeof buf, "%d", (int)t->info.layer_offset);
        json_object_set_new(meta, "layer_offset", json_string(buf));
    }
    json_object_set_new(meta, "format", json_string("moebench top-k ids [samples, tokens, k]"));
    json_object_set_new(h, "__metadata__", meta);
    uint64_t off = 0;
    int rc = ENG_OK;
    for (int i = 0; i < ng; i++) {
        uint64_t n = (uint64_t)g[i].ns * (uint64_t)g[i].T * (uint64_t)k;
        if (json_object_set_new(h, g[i].key,
                                json_pack("{s:s, s:[I,I,i], s:[I,I]}", "dtype", "I8", "shape",
                                          (json_int_t)g[i].ns, (json_int_t)g[i].T, (int)k,
                                          "data_offsets", (json_int_t)off,
                                          (json_int_t)(off + n))))
            rc = eng_err_set(err, ENG_EUNSUPPORTED, "%s: dataset key '%s' is not valid UTF-8",
                             file, g[i].key);
        off += n;
    }
    char *txt = rc ? NULL : json_dumps(h, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(h);
    FILE *f = rc ? NULL : fopen(file, "wb");
    if (!rc && (!txt || !f))
        rc = eng_err_set(err, ENG_EIO, "%s: cannot create", file);
    if (!rc) {
        size_t hl = strlen(txt), pad = (8 - hl % 8) % 8;
        unsigned char lb[8];
        for (int i = 0; i < 8; i++)
            lb[i] = (unsigned char)((hl + pad) >> (8 * i));
        fwrite(lb, 1, 8, f);
        fwrite(txt, 1, hl, f);
        for (size_t i = 0; i < pad; i++)
            fputc(' ', f);
        for (int i = 0; i < ng; i++)
            for (int64_t g2 = t->sample_start[g[i].s0]; g2 < t->sample_start[g[i].s0 + g[i].ns];
                 g2++)
                for (int32_t r = 0; r < k; r++)
                    fputc((int8_t)t->ids[((size_t)g2 * L + l) * k + r], f);
    }
    if (f && (ferror(f) | fclose(f)) && !rc)
        rc = eng_err_set(err, ENG_EIO, "%s: write failed", file);
    free(txt);
    return rc;
}

int met_trace_save_st(const met_trace *t, const char *path, eng_err *err)
{
    if (t->info.num_experts > 128)
        return eng_err_set(err, ENG_EUNSUPPORTED,
                           "%s: safetensors traces hold int8 ids: num_experts %d > 128", path,
                           (int)t->info.num_experts);
    group *g = NULL;
    int ng = 0;
    int rc = make_groups(t, &g, &ng, err);
    if (!rc && mkdir(path, 0755) && errno != EEXIST)
        rc = eng_err_set(err, ENG_EIO, "%s: %s", path, strerror(errno));
    for (int32_t l = 0; !rc && l < t->info.num_layers; l++) {
        char file[4096];
        snprintf(file, sizeof file, "%s/layer_%02d.safetensors", path, (int)l);
        rc = write_layer(t, g, ng, l, file, err);
    }
    free(g);
    return rc;
}
