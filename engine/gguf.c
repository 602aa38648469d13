/*
 * gguf.c — the GGUF reader. See gguf.h for the contract.
 *
 * Design notes:
 * - The whole file is mapped read-only; parsing walks it with a cursor
 *   (struct cur) whose every read first checks the bytes that remain, so no
 *   read can leave the mapping whatever the counts and lengths say.
 * - Counts are checked against the remaining bytes *before* anything is
 *   allocated for them (a KV takes at least 13 bytes, a tensor info 24, an
 *   array element its size or 8 for a string), so a hostile count cannot
 *   make us allocate more than a small multiple of the file size.
 * - Sizes are multiplied only after a division check or with
 *   __builtin_mul_overflow; offsets are compared as "offset <= size - x",
 *   never "offset + x <= size".
 * - Error messages are built innermost first ("string length 99 exceeds
 *   the 3 bytes left") and prefixed on the way out ("key #2
 *   'general.name'", then the file name), so each names file, object and
 *   problem.
 * - Keys and tensor names are copied NUL-terminated (they are short); values
 *   stay in the mapping. String arrays get an offset index at open, so
 *   element access is O(1).
 * - Lookups by key and by tensor name use open-addressing hash tables built
 *   at open; they also find duplicates, which are rejected.
 */
#include "engine/gguf.h"
#include "engine/formats.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "GGUF is little-endian; so must the host be");

#define MIN_KV_BYTES 13      /* key len (8) + type (4) + smallest value (1) */
#define MIN_INFO_BYTES 24    /* name len (8) + n_dims (4) + type (4) + offset (8) */

typedef struct hash {
    int64_t *slot;   /* index into kv/tensors, -1 empty */
    uint64_t mask;   /* capacity - 1 (capacity a power of 2) */
} hash;

struct eng_gguf {
    char *path;
    const uint8_t *base;
    uint64_t size;
    bool mapped;               /* base came from mmap (unmap on free) */
    uint32_t version, alignment;
    uint64_t data_offset;
    int64_t n_kv, n_tensors;   /* entries parsed and valid */
    uint64_t kv_cap, tensor_cap; /* entries allocated (zeroed) */
    eng_gguf_kv *kv;
    uint64_t **str_index;      /* [n_kv]: for string arrays, byte offset of each element's record */
    eng_gguf_tensor *tensors;
    hash kv_hash, tensor_hash;
};

static const char *const type_names[ENG_GGUF_TYPE_COUNT] = {
    "u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "string", "array", "u64", "i64", "f64"};
static const size_t type_sizes[ENG_GGUF_TYPE_COUNT] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};

const char *eng_gguf_type_name(int type)
{
    return (type >= 0 && type < ENG_GGUF_TYPE_COUNT) ? type_names[type] : "?";
}

size_t eng_gguf_type_size(int type)
{
    return (type >= 0 && type < ENG_GGUF_TYPE_COUNT) ? type_sizes[type] : 0;
}

char *eng_gguf_str_copy(eng_gguf_str s, char *buf, size_t cap)
{
    size_t n = s.len < cap - 1 ? (size_t)s.len : cap - 1;
    if (n)
        memcpy(buf, s.ptr, n);
    buf[n] = '\0';
    return buf;
}

char *eng_gguf_str_dup(eng_gguf_str s)
{
    if (s.len >= SIZE_MAX)
        return NULL;
    char *p = malloc((size_t)s.len + 1);
    return p ? eng_gguf_str_copy(s, p, (size_t)s.len + 1) : NULL;
}

/* ---- hashing ------------------------------------------------------------ */

static uint64_t fnv1a(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 0x100000001b3ull;
    return h;
}

static int hash_init(hash *h, int64_t n)
{
    uint64_t cap = 16;
    while (cap < (uint64_t)n * 2)
        cap <<= 1;
    h->slot = malloc(cap * sizeof *h->slot);
    if (!h->slot)
        return ENG_ENOMEM;
    memset(h->slot, 0xff, cap * sizeof *h->slot);
    h->mask = cap - 1;
    return ENG_OK;
}

/* Finds name; when absent and insert_idx >= 0, inserts it. Returns the
 * index found (an existing entry means a duplicate on insert), or -1. */
static int64_t hash_probe(const hash *h, const char *name, const char *(*name_of)(const void *, int64_t),
                          const void *tab, int64_t insert_idx)
{
    if (!h->slot)
        return -1;
    for (uint64_t i = fnv1a(name) & h->mask;; i = (i + 1) & h->mask) {
        int64_t s = h->slot[i];
        if (s < 0) {
            if (insert_idx >= 0)
                h->slot[i] = insert_idx;
            return -1;
        }
        if (strcmp(name_of(tab, s), name) == 0)
            return s;
    }
}

static const char *kv_name(const void *tab, int64_t i) { return ((const eng_gguf_kv *)tab)[i].key; }
static const char *tensor_name(const void *tab, int64_t i) { return ((const eng_gguf_tensor *)tab)[i].name; }

/* ---- cursor ------------------------------------------------------------- */

typedef struct cur {
    const uint8_t *p;
    uint64_t pos, size;
    eng_err *err;
} cur;

static int need(cur *c, uint64_t n, const char *what)
{
    if (n > c->size - c->pos)
        return eng_err_set(c->err, ENG_EFORMAT,
                           "%s: truncated at offset %llu (needs %llu bytes, %llu left)", what,
                           (unsigned long long)c->pos, (unsigned long long)n,
                           (unsigned long long)(c->size - c->pos));
    return ENG_OK;
}

static int rd(cur *c, void *dst, uint64_t n, const char *what)
{
    int rc = need(c, n, what);
    if (!rc) {
        memcpy(dst, c->p + c->pos, (size_t)n);
        c->pos += n;
    }
    return rc;
}

static int rd_str(cur *c, eng_gguf_str *s, const char *what)
{
    uint64_t len;
    int rc = rd(c, &len, 8, what);
    if (rc)
        return rc;
    if (len > c->size - c->pos)
        return eng_err_set(c->err, ENG_EFORMAT,
                           "%s: string length %llu at offset %llu exceeds the %llu bytes left", what,
                           (unsigned long long)len, (unsigned long long)(c->pos - 8),
                           (unsigned long long)(c->size - c->pos));
    s->ptr = (const char *)c->p + c->pos;
    s->len = len;
    c->pos += len;
    return ENG_OK;
}

/* A NUL-terminated copy of a key or name; NUL bytes inside are rejected. */
static int copy_name(cur *c, eng_gguf_str s, char **out, const char *what)
{
    if (memchr(s.ptr, 0, (size_t)s.len))
        return eng_err_set(c->err, ENG_EFORMAT, "%s contains a NUL byte", what);
    *out = eng_gguf_str_dup(s);
    return *out ? ENG_OK : eng_err_set(c->err, ENG_ENOMEM, "out of memory");
}

/* ---- key/value pairs ---------------------------------------------------- */

static int check_bools(cur *c, const uint8_t *p, uint64_t n)
{
    for (uint64_t i = 0; i < n; i++)
        if (p[i] > 1)
            return eng_err_set(c->err, ENG_EFORMAT, "invalid bool value %u", p[i]);
    return ENG_OK;
}

static int read_scalar(cur *c, eng_gguf_kv *kv)
{
    if (kv->type == ENG_GGUF_STRING)
        return rd_str(c, &kv->v.s, "value");
    union { uint8_t u8; int8_t i8; uint16_t u16; int16_t i16; uint32_t u32; int32_t i32;
            float f32; uint64_t u64; int64_t i64; double f64; } b;
    int rc = rd(c, &b, type_sizes[kv->type], "value");
    if (rc)
        return rc;
    switch (kv->type) {
    case ENG_GGUF_U8: kv->v.u = b.u8; break;
    case ENG_GGUF_I8: kv->v.i = b.i8; break;
    case ENG_GGUF_U16: kv->v.u = b.u16; break;
    case ENG_GGUF_I16: kv->v.i = b.i16; break;
    case ENG_GGUF_U32: kv->v.u = b.u32; break;
    case ENG_GGUF_I32: kv->v.i = b.i32; break;
    case ENG_GGUF_F32: kv->v.f = b.f32; break;
    case ENG_GGUF_U64: kv->v.u = b.u64; break;
    case ENG_GGUF_I64: kv->v.i = b.i64; break;
    case ENG_GGUF_F64: kv->v.f = b.f64; break;
    case ENG_GGUF_BOOL:
        if ((rc = check_bools(c, &b.u8, 1)))
            return rc;
        kv->v.b = b.u8 != 0;
        break;
    default: break;
    }
    return ENG_OK;
}

static int read_array(cur *c, eng_gguf_kv *kv, uint64_t **index)
{
    uint32_t et;
    int rc = rd(c, &et, 4, "array element type");
    if (!rc)
        rc = rd(c, &kv->arr_len, 8, "array length");
    if (rc)
        return rc;
    if (et == ENG_GGUF_ARRAY)
        return eng_err_set(c->err, ENG_EFORMAT, "nested arrays are not supported");
    if (et >= ENG_GGUF_TYPE_COUNT)
        return eng_err_set(c->err, ENG_EFORMAT, "unknown array element type %u", et);
    kv->arr_type = (eng_gguf_type)et;
    kv->arr_data = c->p + c->pos;
    uint64_t left = c->size - c->pos, n = kv->arr_len;
    if (et != ENG_GGUF_STRING) {
        if (n > left / type_sizes[et])
            return eng_err_set(c->err, ENG_EFORMAT,
                               "array of %llu %s exceeds the %llu bytes left", (unsigned long long)n,
                               type_names[et], (unsigned long long)left);
        if (et == ENG_GGUF_BOOL && (rc = check_bools(c, c->p + c->pos, n)))
            return rc;
        c->pos += n * type_sizes[et];
        return ENG_OK;
    }
    if (n > left / 8)
        return eng_err_set(c->err, ENG_EFORMAT, "array of %llu strings exceeds the %llu bytes left",
                           (unsigned long long)n, (unsigned long long)left);
    *index = malloc((n ? n : 1) * sizeof **index);
    if (!*index)
        return eng_err_set(c->err, ENG_ENOMEM, "out of memory for %llu strings", (unsigned long long)n);
    for (uint64_t i = 0; i < n; i++) {
        eng_gguf_str s;
        (*index)[i] = c->pos;
        if ((rc = rd_str(c, &s, "array element")))
            return eng_err_prefix(c->err, "element %llu", (unsigned long long)i);
    }
    return ENG_OK;
}

static int check_alignment(cur *c, const eng_gguf_kv *kv, uint32_t *align)
{
    if (kv->type != ENG_GGUF_U32)
        return eng_err_set(c->err, ENG_EFORMAT, "type %s, must be u32", eng_gguf_type_name(kv->type));
    uint64_t a = kv->v.u;
    if (a == 0 || (a & (a - 1)))
        return eng_err_set(c->err, ENG_EFORMAT, "alignment %llu is not a power of 2",
                           (unsigned long long)a);
    if (a < 8)
        return eng_err_set(c->err, ENG_EFORMAT, "alignment %llu is not a multiple of 8",
                           (unsigned long long)a);
    *align = (uint32_t)a;
    return ENG_OK;
}

static int read_kv(eng_gguf *g, cur *c, int64_t i)
{
    eng_gguf_kv *kv = &g->kv[i];
    eng_gguf_str key;
    uint32_t type;
    int rc = rd_str(c, &key, "key");
    if (!rc)
        rc = copy_name(c, key, (char **)&kv->key, "key");
    if (rc)
        return eng_err_prefix(c->err, "key #%lld", (long long)i);
    if (kv->key[0] == '\0')
        rc = eng_err_set(c->err, ENG_EFORMAT, "empty key");
    if (!rc)
        rc = rd(c, &type, 4, "value type");
    if (!rc && type >= ENG_GGUF_TYPE_COUNT)
        rc = eng_err_set(c->err, ENG_EFORMAT, "unknown value type %u", type);
    if (!rc) {
        kv->type = (eng_gguf_type)type;
        rc = type == ENG_GGUF_ARRAY ? read_array(c, kv, &g->str_index[i]) : read_scalar(c, kv);
    }
    if (!rc && strcmp(kv->key, "general.alignment") == 0)
        rc = check_alignment(c, kv, &g->alignment);
    if (!rc && hash_probe(&g->kv_hash, kv->key, kv_name, g->kv, i) >= 0)
        rc = eng_err_set(c->err, ENG_EFORMAT, "duplicate key");
    if (rc)
        return eng_err_prefix(c->err, "key #%lld '%.200s'", (long long)i, kv->key);
    return ENG_OK;
}

/* ---- tensor infos ------------------------------------------------------- */

static int tensor_sizes(cur *c, eng_gguf_tensor *t)
{
    const eng_format *f = eng_format_get(t->type);
    if (!f)
        return eng_err_set(c->err, ENG_EUNSUPPORTED, "unknown ggml type %d", t->type);
    if (t->ne[0] % f->blck)
        return eng_err_set(c->err, ENG_EFORMAT, "ne0 = %lld is not a multiple of %s's block size %lld",
                           (long long)t->ne[0], f->name, (long long)f->blck);
    uint64_t elems = 1, blocks = (uint64_t)(t->ne[0] / f->blck), bytes;
    if (blocks > UINT64_MAX / f->type_size)   /* divide before multiplying */
        return eng_err_set(c->err, ENG_EFORMAT, "row size overflows");
    bytes = blocks * f->type_size;
    t->row_bytes = bytes;
    for (int d = 0; d < ENG_GGUF_MAX_DIMS; d++)
        if (__builtin_mul_overflow(elems, (uint64_t)t->ne[d], &elems) || elems > INT64_MAX)
            return eng_err_set(c->err, ENG_EFORMAT, "element count overflows (ne = %lld x %lld x %lld x %lld)",
                               (long long)t->ne[0], (long long)t->ne[1], (long long)t->ne[2],
                               (long long)t->ne[3]);
    for (int d = 1; d < ENG_GGUF_MAX_DIMS; d++)
        if (__builtin_mul_overflow(bytes, (uint64_t)t->ne[d], &bytes))
            return eng_err_set(c->err, ENG_EFORMAT, "byte count overflows");
    t->nbytes = bytes;
    return ENG_OK;
}

static int read_info_fields(eng_gguf *g, cur *c, eng_gguf_tensor *t)
{
    uint32_t n_dims, type;
    int rc = rd(c, &n_dims, 4, "n_dims");
    if (rc)
        return rc;
    if (n_dims > ENG_GGUF_MAX_DIMS)
        return eng_err_set(c->err, ENG_EFORMAT, "n_dims %u exceeds %d", n_dims, ENG_GGUF_MAX_DIMS);
    t->n_dims = (int)n_dims;
    for (int d = 0; d < ENG_GGUF_MAX_DIMS; d++)
        t->ne[d] = 1;
    for (uint32_t d = 0; d < n_dims; d++) {
        if ((rc = rd(c, &t->ne[d], 8, "ne")))
            return rc;
        if (t->ne[d] < 0)
            return eng_err_set(c->err, ENG_EFORMAT, "dimension %u is negative (%lld)", d,
                               (long long)t->ne[d]);
    }
    if ((rc = rd(c, &type, 4, "type")))
        return rc;
    if (type >= ENG_TYPE_COUNT || !eng_format_get((int)type))
        return eng_err_set(c->err, ENG_EUNSUPPORTED, "unknown ggml type %u", type);
    t->type = (int)type;
    if ((rc = tensor_sizes(c, t)))
        return rc;
    if ((rc = rd(c, &t->offset, 8, "offset")))
        return rc;
    if (t->offset % g->alignment)
        return eng_err_set(c->err, ENG_EFORMAT, "offset %llu not aligned to %u",
                           (unsigned long long)t->offset, g->alignment);
    return ENG_OK;
}

static int read_info(eng_gguf *g, cur *c, int64_t i)
{
    eng_gguf_tensor *t = &g->tensors[i];
    eng_gguf_str name;
    int rc = rd_str(c, &name, "name");
    if (!rc && name.len >= ENG_GGUF_MAX_NAME)
        rc = eng_err_set(c->err, ENG_EFORMAT, "name '%.40s...' is %llu bytes (at most %d)", name.ptr,
                         (unsigned long long)name.len, ENG_GGUF_MAX_NAME - 1);
    if (!rc)
        rc = copy_name(c, name, (char **)&t->name, "name");
    if (rc)
        return eng_err_prefix(c->err, "tensor #%lld", (long long)i);
    rc = read_info_fields(g, c, t);
    if (!rc && hash_probe(&g->tensor_hash, t->name, tensor_name, g->tensors, i) >= 0)
        rc = eng_err_set(c->err, ENG_EFORMAT, "duplicate tensor name");
    if (rc)
        return eng_err_prefix(c->err, "tensor '%s'", t->name);
    return ENG_OK;
}

/* Second pass once the data offset is known: every tensor inside the file. */
static int place_tensors(eng_gguf *g, eng_err *err)
{
    uint64_t avail = g->size - g->data_offset;
    for (int64_t i = 0; i < g->n_tensors; i++) {
        eng_gguf_tensor *t = &g->tensors[i];
        if (t->offset > avail || t->nbytes > avail - t->offset)
            return eng_err_set(err, ENG_EFORMAT,
                               "tensor '%s': data [%llu, +%llu) lies outside the %llu bytes of tensor data",
                               t->name, (unsigned long long)t->offset, (unsigned long long)t->nbytes,
                               (unsigned long long)avail);
        t->file_offset = g->data_offset + t->offset;
        t->data = g->base + t->file_offset;
    }
    return ENG_OK;
}

/* ---- open --------------------------------------------------------------- */

static int read_header(eng_gguf *g, cur *c, uint64_t *n_tensors, uint64_t *n_kv)
{
    uint32_t magic;
    if (c->size == 0)
        return eng_err_set(c->err, ENG_EFORMAT, "file is empty");
    int rc = rd(c, &magic, 4, "magic");
    if (rc)
        return rc;
    if (magic != ENG_GGUF_MAGIC)
        return eng_err_set(c->err, ENG_EFORMAT, "bad magic %02x %02x %02x %02x (not a GGUF file)",
                           c->p[0], c->p[1], c->p[2], c->p[3]);
    if ((rc = rd(c, &g->version, 4, "version")))
        return rc;
    if (g->version != 2 && g->version != 3)
        return (g->version & 0xffff) == 0
                   ? eng_err_set(c->err, ENG_EUNSUPPORTED,
                                 "version 0x%08x: a big-endian file (not supported)", g->version)
                   : eng_err_set(c->err, ENG_EUNSUPPORTED,
                                 "GGUF version %u is not supported (2 and 3 are)", g->version);
    if ((rc = rd(c, n_tensors, 8, "tensor_count")) || (rc = rd(c, n_kv, 8, "kv_count")))
        return rc;
    uint64_t left = c->size - c->pos;
    if (*n_kv > left / MIN_KV_BYTES)
        return eng_err_set(c->err, ENG_EFORMAT, "kv_count %llu is more than the %llu bytes left can hold",
                           (unsigned long long)*n_kv, (unsigned long long)left);
    if (*n_tensors > left / MIN_INFO_BYTES)
        return eng_err_set(c->err, ENG_EFORMAT,
                           "tensor_count %llu is more than the %llu bytes left can hold",
                           (unsigned long long)*n_tensors, (unsigned long long)left);
    return ENG_OK;
}

static int parse(eng_gguf *g, eng_err *err)
{
    cur c = {.p = g->base, .pos = 0, .size = g->size, .err = err};
    uint64_t nt, nk;
    int rc = read_header(g, &c, &nt, &nk);
    if (rc)
        return rc;
    g->alignment = ENG_GGUF_DEFAULT_ALIGNMENT;
    g->kv = calloc(nk ? nk : 1, sizeof *g->kv);
    g->str_index = calloc(nk ? nk : 1, sizeof *g->str_index);
    g->tensors = calloc(nt ? nt : 1, sizeof *g->tensors);
    if (!g->kv || !g->str_index || !g->tensors || hash_init(&g->kv_hash, (int64_t)nk) ||
        hash_init(&g->tensor_hash, (int64_t)nt))
        return eng_err_set(err, ENG_ENOMEM, "out of memory for %llu keys and %llu tensors",
                           (unsigned long long)nk, (unsigned long long)nt);
    g->kv_cap = nk;
    g->tensor_cap = nt;
    for (uint64_t i = 0; i < nk; i++, g->n_kv++)
        if ((rc = read_kv(g, &c, (int64_t)i)))
            return rc;
    for (uint64_t i = 0; i < nt; i++, g->n_tensors++)
        if ((rc = read_info(g, &c, (int64_t)i)))
            return rc;
    g->data_offset = c.pos;
    if (nt > 0) {
        uint64_t pad = (g->alignment - c.pos % g->alignment) % g->alignment;
        if (pad > g->size - c.pos)
            return eng_err_set(err, ENG_EFORMAT, "truncated in the padding before the tensor data "
                               "(offset %llu, alignment %u)", (unsigned long long)c.pos, g->alignment);
        g->data_offset = c.pos + pad;
    }
    return place_tensors(g, err);
}

static int gguf_new(eng_gguf **out, const char *name, eng_err *err)
{
    *out = calloc(1, sizeof **out);
    if (*out && ((*out)->path = strdup(name)))
        return ENG_OK;
    free(*out);
    *out = NULL;
    return eng_err_set(err, ENG_ENOMEM, "%s: out of memory", name);
}

static int finish_open(eng_gguf **out, eng_gguf *g, eng_err *err)
{
    int rc = parse(g, err);
    if (rc) {
        eng_err_prefix(err, "%s", g->path);
        eng_gguf_free(g);
        return rc;
    }
    *out = g;
    return ENG_OK;
}

int eng_gguf_open_mem(eng_gguf **out, const void *data, size_t size, const char *name,
                      eng_err *err)
{
    eng_gguf *g;
    *out = NULL;
    int rc = gguf_new(&g, name ? name : "(memory)", err);
    if (rc)
        return rc;
    g->base = data;
    g->size = data ? size : 0;
    return finish_open(out, g, err);
}

int eng_gguf_open(eng_gguf **out, const char *path, eng_err *err)
{
    eng_gguf *g;
    *out = NULL;
    int rc = gguf_new(&g, path, err);
    if (rc)
        return rc;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        rc = eng_err_set(err, ENG_EIO, "%s: %s", path, strerror(errno));
    } else if (!S_ISREG(st.st_mode)) {
        rc = eng_err_set(err, ENG_EIO, "%s: not a regular file", path);
    } else if (st.st_size > 0) {
        void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED)
            rc = eng_err_set(err, ENG_EIO, "%s: mmap: %s", path, strerror(errno));
        else {
            g->base = m;
            g->size = (uint64_t)st.st_size;
            g->mapped = true;
        }
    }
    if (fd >= 0)
        close(fd);
    if (rc) {
        eng_gguf_free(g);
        return rc;
    }
    return finish_open(out, g, err);
}

void eng_gguf_free(eng_gguf *g)
{
    if (!g)
        return;
    for (uint64_t i = 0; i < g->kv_cap; i++) {
        free((char *)g->kv[i].key);
        free(g->str_index[i]);
    }
    for (uint64_t i = 0; i < g->tensor_cap; i++)
        free((char *)g->tensors[i].name);
    free(g->kv);
    free(g->str_index);
    free(g->tensors);
    free(g->kv_hash.slot);
    free(g->tensor_hash.slot);
    if (g->mapped)
        munmap((void *)g->base, (size_t)g->size);
    free(g->path);
    free(g);
}

/* ---- accessors ---------------------------------------------------------- */

const char *eng_gguf_path(const eng_gguf *g) { return g->path; }
uint64_t eng_gguf_file_size(const eng_gguf *g) { return g->size; }
uint32_t eng_gguf_version(const eng_gguf *g) { return g->version; }
uint32_t eng_gguf_alignment(const eng_gguf *g) { return g->alignment; }
uint64_t eng_gguf_data_offset(const eng_gguf *g) { return g->data_offset; }
const void *eng_gguf_base(const eng_gguf *g) { return g->base; }
int64_t eng_gguf_kv_count(const eng_gguf *g) { return g->n_kv; }
int64_t eng_gguf_tensor_count(const eng_gguf *g) { return g->n_tensors; }

const eng_gguf_kv *eng_gguf_kv_at(const eng_gguf *g, int64_t i)
{
    return (i >= 0 && i < g->n_kv) ? &g->kv[i] : NULL;
}

int64_t eng_gguf_find_key(const eng_gguf *g, const char *key)
{
    return hash_probe(&g->kv_hash, key, kv_name, g->kv, -1);
}

bool eng_gguf_has(const eng_gguf *g, const char *key) { return eng_gguf_find_key(g, key) >= 0; }

const eng_gguf_tensor *eng_gguf_tensor_at(const eng_gguf *g, int64_t i)
{
    return (i >= 0 && i < g->n_tensors) ? &g->tensors[i] : NULL;
}

const eng_gguf_tensor *eng_gguf_find_tensor(const eng_gguf *g, const char *name)
{
    int64_t i = hash_probe(&g->tensor_hash, name, tensor_name, g->tensors, -1);
    return i >= 0 ? &g->tensors[i] : NULL;
}

/* ---- typed getters ------------------------------------------------------ */

static int missing(const eng_gguf *g, const char *key, eng_err *err)
{
    return eng_err_set(err, ENG_EFORMAT, "%s: key '%s' is missing", g->path, key);
}

static int wrong_type(const eng_gguf *g, const eng_gguf_kv *kv, const char *expected, eng_err *err)
{
    return eng_err_set(err, ENG_EFORMAT, "%s: key '%s': type %s, expected %s", g->path, kv->key,
                       eng_gguf_type_name(kv->type), expected);
}

static bool is_signed(int t) { return t == ENG_GGUF_I8 || t == ENG_GGUF_I16 || t == ENG_GGUF_I32 || t == ENG_GGUF_I64; }
static bool is_unsigned(int t) { return t == ENG_GGUF_U8 || t == ENG_GGUF_U16 || t == ENG_GGUF_U32 || t == ENG_GGUF_U64; }

/* Any integer kv as a range check against [lo, hi] (lo <= 0 <= hi). */
static int get_int(const eng_gguf *g, const char *key, int64_t lo, uint64_t hi, const char *tname,
                   bool *neg, uint64_t *mag, eng_err *err)
{
    int64_t i = eng_gguf_find_key(g, key);
    if (i < 0)
        return missing(g, key, err);
    const eng_gguf_kv *kv = &g->kv[i];
    if (is_unsigned(kv->type)) {
        *neg = false;
        *mag = kv->v.u;
    } else if (is_signed(kv->type)) {
        *neg = kv->v.i < 0;
        *mag = *neg ? (uint64_t)0 - (uint64_t)kv->v.i : (uint64_t)kv->v.i;
    } else {
        return wrong_type(g, kv, "an integer", err);
    }
    if ((*neg && *mag > (uint64_t)0 - (uint64_t)lo) || (!*neg && *mag > hi))
        return eng_err_set(err, ENG_EFORMAT, "%s: key '%s': value %s%llu out of range for %s", g->path,
                           key, *neg ? "-" : "", (unsigned long long)*mag, tname);
    return ENG_OK;
}

int eng_gguf_get_u64(const eng_gguf *g, const char *key, uint64_t *out, eng_err *err)
{
    bool neg;
    uint64_t m;
    int rc = get_int(g, key, 0, UINT64_MAX, "u64", &neg, &m, err);
    if (!rc)
        *out = m;
    return rc;
}

int eng_gguf_get_u32(const eng_gguf *g, const char *key, uint32_t *out, eng_err *err)
{
    bool neg;
    uint64_t m;
    int rc = get_int(g, key, 0, UINT32_MAX, "u32", &neg, &m, err);
    if (!rc)
        *out = (uint32_t)m;
    return rc;
}

int eng_gguf_get_i64(const eng_gguf *g, const char *key, int64_t *out, eng_err *err)
{
    bool neg;
    uint64_t m;
    int rc = get_int(g, key, INT64_MIN, INT64_MAX, "i64", &neg, &m, err);
    if (!rc)
        *out = neg ? (int64_t)(0 - m) : (int64_t)m;
    return rc;
}

int eng_gguf_get_i32(const eng_gguf *g, const char *key, int32_t *out, eng_err *err)
{
    bool neg;
    uint64_t m;
    int rc = get_int(g, key, INT32_MIN, INT32_MAX, "i32", &neg, &m, err);
    if (!rc)
        *out = neg ? (int32_t)(int64_t)(0 - m) : (int32_t)m;
    return rc;
}

static const eng_gguf_kv *get_kv(const eng_gguf *g, const char *key, int type, const char *tname,
                                 int *rc, eng_err *err)
{
    int64_t i = eng_gguf_find_key(g, key);
    *rc = ENG_OK;
    if (i < 0) {
        *rc = missing(g, key, err);
        return NULL;
    }
    const eng_gguf_kv *kv = &g->kv[i];
    if ((int)kv->type != type && !(type == ENG_GGUF_F32 && kv->type == ENG_GGUF_F64)) {
        *rc = wrong_type(g, kv, tname, err);
        return NULL;
    }
    return kv;
}

int eng_gguf_get_f32(const eng_gguf *g, const char *key, float *out, eng_err *err)
{
    int rc;
    const eng_gguf_kv *kv = get_kv(g, key, ENG_GGUF_F32, "f32", &rc, err);
    if (kv)
        *out = (float)kv->v.f;
    return rc;
}

int eng_gguf_get_bool(const eng_gguf *g, const char *key, bool *out, eng_err *err)
{
    int rc;
    const eng_gguf_kv *kv = get_kv(g, key, ENG_GGUF_BOOL, "bool", &rc, err);
    if (kv)
        *out = kv->v.b;
    return rc;
}

int eng_gguf_get_str(const eng_gguf *g, const char *key, eng_gguf_str *out, eng_err *err)
{
    int rc;
    const eng_gguf_kv *kv = get_kv(g, key, ENG_GGUF_STRING, "string", &rc, err);
    if (kv)
        *out = kv->v.s;
    return rc;
}

int eng_gguf_get_strdup(const eng_gguf *g, const char *key, char **out, eng_err *err)
{
    eng_gguf_str s;
    int rc = eng_gguf_get_str(g, key, &s, err);
    if (rc)
        return rc;
    *out = eng_gguf_str_dup(s);
    return *out ? ENG_OK : eng_err_set(err, ENG_ENOMEM, "%s: key '%s': out of memory", g->path, key);
}

int eng_gguf_get_u32_or(const eng_gguf *g, const char *key, uint32_t def, uint32_t *out, eng_err *err)
{
    if (!eng_gguf_has(g, key)) {
        *out = def;
        return ENG_OK;
    }
    return eng_gguf_get_u32(g, key, out, err);
}

int eng_gguf_get_f32_or(const eng_gguf *g, const char *key, float def, float *out, eng_err *err)
{
    if (!eng_gguf_has(g, key)) {
        *out = def;
        return ENG_OK;
    }
    return eng_gguf_get_f32(g, key, out, err);
}

int eng_gguf_get_bool_or(const eng_gguf *g, const char *key, bool def, bool *out, eng_err *err)
{
    if (!eng_gguf_has(g, key)) {
        *out = def;
        return ENG_OK;
    }
    return eng_gguf_get_bool(g, key, out, err);
}

int eng_gguf_get_arr(const eng_gguf *g, const char *key, int64_t *kv_index, eng_err *err)
{
    int rc;
    const eng_gguf_kv *kv = get_kv(g, key, ENG_GGUF_ARRAY, "array", &rc, err);
    if (kv)
        *kv_index = kv - g->kv;
    return rc;
}

/* ---- array elements ----------------------------------------------------- */

static const eng_gguf_kv *arr_elem(const eng_gguf *g, int64_t i, uint64_t j, eng_err *err)
{
    const eng_gguf_kv *kv = eng_gguf_kv_at(g, i);
    if (!kv || kv->type != ENG_GGUF_ARRAY) {
        eng_err_set(err, ENG_EINVAL, "%s: kv #%lld is not an array", g->path, (long long)i);
        return NULL;
    }
    if (j >= kv->arr_len) {
        eng_err_set(err, ENG_EINVAL, "%s: key '%s': index %llu out of range (%llu elements)", g->path,
                    kv->key, (unsigned long long)j, (unsigned long long)kv->arr_len);
        return NULL;
    }
    return kv;
}

static int arr_type_error(const eng_gguf *g, const eng_gguf_kv *kv, const char *expected, eng_err *err)
{
    return eng_err_set(err, ENG_EFORMAT, "%s: key '%s': array of %s, expected %s", g->path, kv->key,
                       eng_gguf_type_name(kv->arr_type), expected);
}

int eng_gguf_kv_arr_int(const eng_gguf *g, int64_t i, uint64_t j, int64_t *out, eng_err *err)
{
    const eng_gguf_kv *kv = arr_elem(g, i, j, err);
    if (!kv)
        return ENG_EINVAL;
    const uint8_t *p = (const uint8_t *)kv->arr_data + j * type_sizes[kv->arr_type];
    union { uint8_t u8; int8_t i8; uint16_t u16; int16_t i16; uint32_t u32; int32_t i32;
            uint64_t u64; int64_t i64; } b;
    if (is_signed(kv->arr_type) || is_unsigned(kv->arr_type) || kv->arr_type == ENG_GGUF_BOOL)
        memcpy(&b, p, type_sizes[kv->arr_type]);
    switch (kv->arr_type) {
    case ENG_GGUF_U8:
    case ENG_GGUF_BOOL: *out = b.u8; break;
    case ENG_GGUF_I8: *out = b.i8; break;
    case ENG_GGUF_U16: *out = b.u16; break;
    case ENG_GGUF_I16: *out = b.i16; break;
    case ENG_GGUF_U32: *out = b.u32; break;
    case ENG_GGUF_I32: *out = b.i32; break;
    case ENG_GGUF_I64: *out = b.i64; break;
    case ENG_GGUF_U64:
        if (b.u64 > INT64_MAX)
            return eng_err_set(err, ENG_EFORMAT, "%s: key '%s': element %llu: value %llu out of range",
                               g->path, kv->key, (unsigned long long)j, (unsigned long long)b.u64);
        *out = (int64_t)b.u64;
        break;
    default: return arr_type_error(g, kv, "integers", err);
    }
    return ENG_OK;
}

int eng_gguf_kv_arr_f32(const eng_gguf *g, int64_t i, uint64_t j, float *out, eng_err *err)
{
    const eng_gguf_kv *kv = arr_elem(g, i, j, err);
    if (!kv)
        return ENG_EINVAL;
    if (kv->arr_type == ENG_GGUF_F32) {
        memcpy(out, (const uint8_t *)kv->arr_data + j * 4, 4);
    } else if (kv->arr_type == ENG_GGUF_F64) {
        double d;
        memcpy(&d, (const uint8_t *)kv->arr_data + j * 8, 8);
        *out = (float)d;
    } else {
        return arr_type_error(g, kv, "f32", err);
    }
    return ENG_OK;
}

int eng_gguf_kv_arr_str(const eng_gguf *g, int64_t i, uint64_t j, eng_gguf_str *out, eng_err *err)
{
    const eng_gguf_kv *kv = arr_elem(g, i, j, err);
    if (!kv)
        return ENG_EINVAL;
    if (kv->arr_type != ENG_GGUF_STRING)
        return arr_type_error(g, kv, "strings", err);
    const uint8_t *rec = g->base + g->str_index[i][j];
    memcpy(&out->len, rec, 8);
    out->ptr = (const char *)rec + 8;
    return ENG_OK;
}
