/*
 * gguf_write.c — the streaming GGUF writer. See gguf.h.
 *
 * Design notes:
 * - State machine: BUILD (set KVs, add tensors) -> DATA (header written,
 *   tensor bytes flow in info order) -> DONE (renamed) ; any failure moves
 *   to FAILED, after which every call returns ENG_ESTATE and free removes
 *   the temporary file.
 * - KVs are serialized into a memory buffer as they are set (they are small:
 *   the largest are tokenizer arrays, a few MB); tensor data is never
 *   buffered beyond stdio's buffer, so multi-GB files stream.
 * - Offsets follow llama.cpp gguf.cpp: first 0, next = prev + PAD(nbytes,
 *   ALIGN); the data offset is PAD(end of infos, ALIGN); padding is zeros.
 * - The file is "PATH.tmp-PID" until finish flushes, fsyncs and renames it.
 */
#include "engine/formats.h"
#include "engine/gguf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { W_BUILD, W_DATA, W_DONE, W_FAILED };

typedef struct winfo {
    char name[ENG_GGUF_MAX_NAME];
    int type, n_dims;
    int64_t ne[ENG_GGUF_MAX_DIMS];
    uint64_t nbytes, offset;
} winfo;

struct eng_gguf_writer {
    char *path, *tmp;
    FILE *f;
    int state;
    uint8_t *kv;             /* serialized KVs */
    size_t kv_len, kv_cap;
    char **keys;             /* for duplicate checks */
    int64_t n_kv;
    uint32_t alignment;
    winfo *t;
    int64_t n_t, t_cap;
    int64_t cur;             /* tensor receiving data */
    uint64_t cur_done;       /* bytes of it written */
};

static int fail(eng_gguf_writer *w, int code, eng_err *err, const char *fmt, const char *a, const char *b)
{
    if (code == ENG_EIO || code == ENG_ENOMEM)
        w->state = W_FAILED;
    char msg[400];
    snprintf(msg, sizeof msg, fmt, a, b);
    return eng_err_set(err, code, "%s: %s", w->path, msg);
}

int eng_gguf_writer_open(eng_gguf_writer **out, const char *path, eng_err *err)
{
    *out = NULL;
    eng_gguf_writer *w = calloc(1, sizeof *w);
    size_t n = strlen(path) + 32;
    if (!w || !(w->path = strdup(path)) || !(w->tmp = malloc(n))) {
        eng_gguf_writer_free(w);
        return eng_err_set(err, ENG_ENOMEM, "%s: out of memory", path);
    }
    snprintf(w->tmp, n, "%s.tmp-%ld", path, (long)getpid());
    w->alignment = ENG_GGUF_DEFAULT_ALIGNMENT;
    w->f = fopen(w->tmp, "wbx");
    if (!w->f) {
        int rc = eng_err_set(err, ENG_EIO, "%s: cannot create %s: %s", path, w->tmp, strerror(errno));
        free(w->tmp);
        w->tmp = NULL;   /* not ours: do not unlink */
        eng_gguf_writer_free(w);
        return rc;
    }
    setvbuf(w->f, NULL, _IOFBF, 1 << 20);
    *out = w;
    return ENG_OK;
}

void eng_gguf_writer_free(eng_gguf_writer *w)
{
    if (!w)
        return;
    if (w->f)
        fclose(w->f);
    if (w->tmp && w->state != W_DONE)
        unlink(w->tmp);
    for (int64_t i = 0; i < w->n_kv; i++)
        free(w->keys[i]);
    free(w->keys);
    free(w->kv);
    free(w->t);
    free(w->tmp);
    free(w->path);
    free(w);
}

/* ---- KVs ---------------------------------------------------------------- */

static int kv_put(eng_gguf_writer *w, const void *p, size_t n, eng_err *err)
{
    if (n > w->kv_cap - w->kv_len) {
        size_t cap = w->kv_cap ? w->kv_cap : 4096;
        while (n > cap - w->kv_len)
            cap *= 2;
        uint8_t *b = realloc(w->kv, cap);
        if (!b)
            return fail(w, ENG_ENOMEM, err, "out of memory for metadata%s%s", "", "");
        w->kv = b;
        w->kv_cap = cap;
    }
    if (n)
        memcpy(w->kv + w->kv_len, p, n);
    w->kv_len += n;
    return ENG_OK;
}

static int kv_put_str(eng_gguf_writer *w, const char *s, uint64_t len, eng_err *err)
{
    int rc = kv_put(w, &len, 8, err);
    return rc ? rc : kv_put(w, s, (size_t)len, err);
}

/* Checks state and key, records the key, writes key and type. */
static int kv_begin(eng_gguf_writer *w, const char *key, eng_gguf_type type, eng_err *err)
{
    if (w->state != W_BUILD)
        return fail(w, ENG_ESTATE, err, "key '%s': metadata can only be set before the header%s", key, "");
    if (!key || !*key)
        return fail(w, ENG_EINVAL, err, "empty key%s%s", "", "");
    for (int64_t i = 0; i < w->n_kv; i++)
        if (strcmp(w->keys[i], key) == 0)
            return fail(w, ENG_EINVAL, err, "duplicate key '%s'%s", key, "");
    char **k = realloc(w->keys, (size_t)(w->n_kv + 1) * sizeof *k);
    if (!k || !(k[w->n_kv] = strdup(key))) {
        if (k)
            w->keys = k;
        return fail(w, ENG_ENOMEM, err, "out of memory%s%s", "", "");
    }
    w->keys = k;
    w->n_kv++;
    uint32_t t = type;
    int rc = kv_put_str(w, key, strlen(key), err);
    return rc ? rc : kv_put(w, &t, 4, err);
}

static int kv_scalar(eng_gguf_writer *w, const char *key, eng_gguf_type type, const void *v, eng_err *err)
{
    int rc = kv_begin(w, key, type, err);
    return rc ? rc : kv_put(w, v, eng_gguf_type_size(type), err);
}

#define SETTER(NAME, CT, TYPE)                                                                 \
    int eng_gguf_writer_set_##NAME(eng_gguf_writer *w, const char *key, CT v, eng_err *err)    \
    {                                                                                          \
        return kv_scalar(w, key, TYPE, &v, err);                                               \
    }
SETTER(u8, uint8_t, ENG_GGUF_U8)
SETTER(i8, int8_t, ENG_GGUF_I8)
SETTER(u16, uint16_t, ENG_GGUF_U16)
SETTER(i16, int16_t, ENG_GGUF_I16)
SETTER(i32, int32_t, ENG_GGUF_I32)
SETTER(u64, uint64_t, ENG_GGUF_U64)
SETTER(i64, int64_t, ENG_GGUF_I64)
SETTER(f32, float, ENG_GGUF_F32)
SETTER(f64, double, ENG_GGUF_F64)
#undef SETTER

int eng_gguf_writer_set_u32(eng_gguf_writer *w, const char *key, uint32_t v, eng_err *err)
{
    if (key && strcmp(key, "general.alignment") == 0) {
        if (v < 8 || (v & (v - 1)))
            return fail(w, ENG_EINVAL, err, "general.alignment must be a power of 2 >= 8%s%s", "", "");
        if (w->n_t > 0)
            return fail(w, ENG_ESTATE, err, "general.alignment must be set before adding tensors%s%s", "", "");
    }
    int rc = kv_scalar(w, key, ENG_GGUF_U32, &v, err);
    if (!rc && strcmp(key, "general.alignment") == 0)
        w->alignment = v;
    return rc;
}

int eng_gguf_writer_set_bool(eng_gguf_writer *w, const char *key, bool v, eng_err *err)
{
    uint8_t b = v ? 1 : 0;
    return kv_scalar(w, key, ENG_GGUF_BOOL, &b, err);
}

int eng_gguf_writer_set_strn(eng_gguf_writer *w, const char *key, const char *v, size_t len, eng_err *err)
{
    int rc = kv_begin(w, key, ENG_GGUF_STRING, err);
    return rc ? rc : kv_put_str(w, v, len, err);
}

int eng_gguf_writer_set_str(eng_gguf_writer *w, const char *key, const char *v, eng_err *err)
{
    return eng_gguf_writer_set_strn(w, key, v, strlen(v), err);
}

static int arr_head(eng_gguf_writer *w, const char *key, eng_gguf_type et, uint64_t n, eng_err *err)
{
    uint32_t t = et;
    int rc = kv_begin(w, key, ENG_GGUF_ARRAY, err);
    if (!rc)
        rc = kv_put(w, &t, 4, err);
    return rc ? rc : kv_put(w, &n, 8, err);
}

int eng_gguf_writer_set_arr(eng_gguf_writer *w, const char *key, eng_gguf_type et, const void *data,
                            uint64_t n, eng_err *err)
{
    size_t sz = eng_gguf_type_size(et);
    if (sz == 0)
        return fail(w, ENG_EINVAL, err, "key '%s': arrays of %s need set_arr_str", key ? key : "",
                    eng_gguf_type_name(et));
    if (n > SIZE_MAX / sz)
        return fail(w, ENG_EINVAL, err, "key '%s': array too long%s", key ? key : "", "");
    if (et == ENG_GGUF_BOOL)
        for (uint64_t i = 0; i < n; i++)
            if (((const uint8_t *)data)[i] > 1)
                return fail(w, ENG_EINVAL, err, "key '%s': bool array element is not 0 or 1%s", key ? key : "", "");
    int rc = arr_head(w, key, et, n, err);
    return rc ? rc : kv_put(w, data, (size_t)(n * sz), err);
}

int eng_gguf_writer_set_arr_strn(eng_gguf_writer *w, const char *key, const char *const *strs,
                                 const size_t *lens, uint64_t n, eng_err *err)
{
    int rc = arr_head(w, key, ENG_GGUF_STRING, n, err);
    for (uint64_t i = 0; !rc && i < n; i++)
        rc = kv_put_str(w, strs[i], lens ? lens[i] : strlen(strs[i]), err);
    return rc;
}

int eng_gguf_writer_set_arr_str(eng_gguf_writer *w, const char *key, const char *const *strs,
                                uint64_t n, eng_err *err)
{
    return eng_gguf_writer_set_arr_strn(w, key, strs, NULL, n, err);
}

/* ---- tensors ------------------------------------------------------------ */

static uint64_t pad(uint64_t x, uint64_t a) { return (x + a - 1) & ~(a - 1); }

static int check_tensor(eng_gguf_writer *w, const char *name, int type, int n_dims, const int64_t *ne,
                        uint64_t *nbytes, eng_err *err)
{
    if (w->state != W_BUILD)
        return fail(w, ENG_ESTATE, err, "tensor '%s': infos can only be added before the header%s", name, "");
    size_t len = strlen(name);
    if (len == 0 || len >= ENG_GGUF_MAX_NAME)
        return fail(w, ENG_EINVAL, err, "tensor '%s': name must be 1..63 bytes%s", name, "");
    const eng_format *f = eng_format_get(type);
    if (!f)
        return fail(w, ENG_EINVAL, err, "tensor '%s': unknown ggml type%s", name, "");
    if (n_dims < 1 || n_dims > ENG_GGUF_MAX_DIMS)
        return fail(w, ENG_EINVAL, err, "tensor '%s': n_dims must be 1..4%s", name, "");
    uint64_t bytes = 0;
    for (int d = 0; d < n_dims; d++)
        if (ne[d] < 0)
            return fail(w, ENG_EINVAL, err, "tensor '%s': negative dimension%s", name, "");
    if (ne[0] % f->blck)
        return fail(w, ENG_EINVAL, err, "tensor '%s': ne0 is not a multiple of %s's block size", name, f->name);
    bytes = eng_type_row_bytes(type, ne[0]);
    for (int d = 1; d < n_dims; d++)
        if (__builtin_mul_overflow(bytes, (uint64_t)ne[d], &bytes))
            return fail(w, ENG_EINVAL, err, "tensor '%s': size overflows%s", name, "");
    for (int64_t i = 0; i < w->n_t; i++)
        if (strcmp(w->t[i].name, name) == 0)
            return fail(w, ENG_EINVAL, err, "duplicate tensor name '%s'%s", name, "");
    *nbytes = bytes;
    return ENG_OK;
}

int eng_gguf_writer_add_tensor(eng_gguf_writer *w, const char *name, int type, int n_dims,
                               const int64_t *ne, int64_t *index, eng_err *err)
{
    uint64_t nbytes = 0;
    int rc = check_tensor(w, name, type, n_dims, ne, &nbytes, err);
    if (rc)
        return rc;
    if (w->n_t == w->t_cap) {
        int64_t cap = w->t_cap ? w->t_cap * 2 : 64;
        winfo *t = realloc(w->t, (size_t)cap * sizeof *t);
        if (!t)
            return fail(w, ENG_ENOMEM, err, "out of memory%s%s", "", "");
        w->t = t;
        w->t_cap = cap;
    }
    winfo *t = &w->t[w->n_t];
    memset(t, 0, sizeof *t);
    strcpy(t->name, name);
    t->type = type;
    t->n_dims = n_dims;
    for (int d = 0; d < ENG_GGUF_MAX_DIMS; d++)
        t->ne[d] = d < n_dims ? ne[d] : 1;
    t->nbytes = nbytes;
    t->offset = w->n_t ? pad(w->t[w->n_t - 1].offset + w->t[w->n_t - 1].nbytes, w->alignment) : 0;
    if (index)
        *index = w->n_t;
    w->n_t++;
    return ENG_OK;
}

uint64_t eng_gguf_writer_tensor_nbytes(const eng_gguf_writer *w, int64_t i)
{
    return (i >= 0 && i < w->n_t) ? w->t[i].nbytes : 0;
}

/* ---- output ------------------------------------------------------------- */

static int out(eng_gguf_writer *w, const void *p, size_t n, eng_err *err)
{
    if (n && fwrite(p, 1, n, w->f) != n)
        return fail(w, ENG_EIO, err, "write %s: %s", w->tmp, strerror(errno));
    return ENG_OK;
}

static int out_zeros(eng_gguf_writer *w, uint64_t n, eng_err *err)
{
    static const uint8_t zeros[256];
    int rc = ENG_OK;
    while (!rc && n) {
        size_t k = n < sizeof zeros ? (size_t)n : sizeof zeros;
        rc = out(w, zeros, k, err);
        n -= k;
    }
    return rc;
}

int eng_gguf_writer_write_header(eng_gguf_writer *w, eng_err *err)
{
    if (w->state != W_BUILD)
        return fail(w, ENG_ESTATE, err, "header already written or writer failed%s%s", "", "");
    uint32_t head[2] = {ENG_GGUF_MAGIC, ENG_GGUF_VERSION};
    uint64_t counts[2] = {(uint64_t)w->n_t, (uint64_t)w->n_kv};
    int rc = out(w, head, 8, err);
    if (!rc)
        rc = out(w, counts, 16, err);
    if (!rc)
        rc = out(w, w->kv, w->kv_len, err);
    uint64_t pos = 24 + w->kv_len;
    for (int64_t i = 0; !rc && i < w->n_t; i++) {
        const winfo *t = &w->t[i];
        uint64_t len = strlen(t->name);
        uint32_t nd = (uint32_t)t->n_dims, ty = (uint32_t)t->type;
        rc = out(w, &len, 8, err);
        if (!rc) rc = out(w, t->name, (size_t)len, err);
        if (!rc) rc = out(w, &nd, 4, err);
        if (!rc) rc = out(w, t->ne, 8 * (size_t)nd, err);
        if (!rc) rc = out(w, &ty, 4, err);
        if (!rc) rc = out(w, &t->offset, 8, err);
        pos += 8 + len + 4 + 8 * nd + 4 + 8;
    }
    if (!rc && w->n_t > 0)
        rc = out_zeros(w, pad(pos, w->alignment) - pos, err);
    if (!rc)
        w->state = W_DATA;
    return rc;
}

int eng_gguf_writer_append(eng_gguf_writer *w, const void *data, size_t n, eng_err *err)
{
    if (w->state != W_DATA)
        return fail(w, ENG_ESTATE, err, "tensor data before the header or after a failure%s%s", "", "");
    const uint8_t *p = data;
    while (n) {
        if (w->cur >= w->n_t)
            return fail(w, ENG_EINVAL, err, "more tensor data than the tensors hold%s%s", "", "");
        const winfo *t = &w->t[w->cur];
        uint64_t left = t->nbytes - w->cur_done;
        size_t k = n < left ? n : (size_t)left;
        int rc = out(w, p, k, err);
        if (rc)
            return rc;
        p += k;
        n -= k;
        w->cur_done += k;
        if (w->cur_done == t->nbytes) {   /* tensor complete: pad to the next offset */
            uint64_t end = t->offset + t->nbytes;
            if (w->cur + 1 < w->n_t && (rc = out_zeros(w, w->t[w->cur + 1].offset - end, err)))
                return rc;
            w->cur++;
            w->cur_done = 0;
        }
    }
    /* zero-byte tensors complete without data */
    while (w->cur < w->n_t && w->t[w->cur].nbytes == 0 && w->cur_done == 0) {
        w->cur++;
    }
    return ENG_OK;
}

int eng_gguf_writer_write_tensor_data(eng_gguf_writer *w, int64_t index, const void *data,
                                      size_t nbytes, eng_err *err)
{
    if (w->state != W_DATA)
        return fail(w, ENG_ESTATE, err, "tensor data before the header or after a failure%s%s", "", "");
    while (w->cur < w->n_t && w->t[w->cur].nbytes == 0 && w->cur < index)
        w->cur++;   /* empty tensors before this one need no bytes */
    if (index != w->cur || w->cur_done != 0)
        return fail(w, ENG_EINVAL, err, "tensor data out of order (expected tensor '%s', got '%s')",
                    w->cur < w->n_t ? w->t[w->cur].name : "(none)",
                    index >= 0 && index < w->n_t ? w->t[index].name : "(bad index)");
    if (nbytes != w->t[index].nbytes) {
        char a[32], b[32];
        snprintf(a, sizeof a, "%zu", nbytes);
        snprintf(b, sizeof b, "%llu", (unsigned long long)w->t[index].nbytes);
        eng_err_set(err, ENG_EINVAL, "%s: tensor '%s': %s bytes given, %s expected", w->path,
                    w->t[index].name, a, b);
        return ENG_EINVAL;
    }
    if (nbytes == 0) {
        w->cur++;
        return ENG_OK;
    }
    return eng_gguf_writer_append(w, data, nbytes, err);
}

int eng_gguf_writer_finish(eng_gguf_writer *w, eng_err *err)
{
    if (w->state == W_BUILD) {
        int rc = eng_gguf_writer_write_header(w, err);
        if (rc)
            return rc;
    }
    if (w->state != W_DATA)
        return fail(w, ENG_ESTATE, err, "finish after a failure%s%s", "", "");
    while (w->cur < w->n_t && w->t[w->cur].nbytes == 0)
        w->cur++;
    if (w->cur < w->n_t)
        return fail(w, ENG_EINVAL, err, "tensor '%s' (and later ones) got no or partial data%s",
                    w->t[w->cur].name, "");
    if (fflush(w->f) != 0 || fsync(fileno(w->f)) != 0)
        return fail(w, ENG_EIO, err, "flush %s: %s", w->tmp, strerror(errno));
    int rc = fclose(w->f);
    w->f = NULL;
    if (rc != 0)
        return fail(w, ENG_EIO, err, "close %s: %s", w->tmp, strerror(errno));
    if (rename(w->tmp, w->path) != 0)
        return fail(w, ENG_EIO, err, "rename %s: %s", w->tmp, strerror(errno));
    w->state = W_DONE;
    return ENG_OK;
}
