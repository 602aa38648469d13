/*
 * model.c — opening a GGUF model: metadata -> eng_hparams, tensor lookup and
 * checks (see model.h).
 *
 * Order: architecture (unknown -> ENG_EUNSUPPORTED naming it and the list),
 * hyper-parameters with the reference spec's defaults (§3), then every
 * tensor the architecture needs, each checked for presence, type (computable
 * here; norms and biases f32) and exact shape. A shape error names the
 * tensor, its shape and the one expected.
 */
#include "engine/formats.h"
#include "engine/model_impl.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#endif

enum { MAX_DIM = 1 << 20, MAX_LAYERS = 4096, MAX_EXPERTS = 512 };

typedef struct loader {
    eng_model *m;
    eng_err *err;
    char key[160];
} loader;

static const char *kname(loader *L, const char *suffix)
{
    snprintf(L->key, sizeof L->key, "%s.%s", L->m->hp.arch, suffix);
    return L->key;
}

/* A u32 key that may also be an array with one value per layer (llama.cpp
 * accepts both); per-layer values must all be equal here. */
static int get_dim(loader *L, const char *suffix, int64_t def, bool required, int64_t *out)
{
    const eng_gguf *g = L->m->g;
    const char *key = kname(L, suffix);
    int64_t i = eng_gguf_find_key(g, key);
    if (i < 0) {
        if (required)
            return eng_err_set(L->err, ENG_EFORMAT, "key '%s' is missing", key);
        *out = def;
        return ENG_OK;
    }
    const eng_gguf_kv *kv = eng_gguf_kv_at(g, i);
    if (kv->type == ENG_GGUF_ARRAY) {
        if (kv->arr_len == 0)
            return eng_err_set(L->err, ENG_EFORMAT, "key '%s': empty array", key);
        int64_t v0 = 0, v = 0;
        for (uint64_t j = 0; j < kv->arr_len; j++) {
            int rc = eng_gguf_kv_arr_int(g, i, j, &v, L->err);
            if (rc)
                return rc;
            if (j == 0)
                v0 = v;
            else if (v != v0)
                return eng_err_set(L->err, ENG_EUNSUPPORTED,
                                   "key '%s': per-layer values differ (%" PRId64 " vs %" PRId64
                                   "); not supported", key, v0, v);
        }
        *out = v0;
    } else {
        uint32_t v;
        int rc = eng_gguf_get_u32(g, key, &v, L->err);
        if (rc)
            return rc;
        *out = v;
    }
    if (*out < 0 || *out > MAX_DIM)
        return eng_err_set(L->err, ENG_EFORMAT, "key '%s': value %" PRId64 " out of range 0..%d",
                           key, *out, MAX_DIM);
    return ENG_OK;
}

static int need_positive(loader *L, const char *suffix, int64_t v)
{
    if (v <= 0)
        return eng_err_set(L->err, ENG_EFORMAT, "key '%s.%s': must be > 0, is %" PRId64,
                           L->m->hp.arch, suffix, v);
    return ENG_OK;
}

static int read_arch(loader *L)
{
    char *name = NULL;
    int rc = eng_gguf_get_strdup(L->m->g, "general.architecture", &name, L->err);
    if (rc)
        return rc;
    L->m->arch = eng_arch_find(name);
    snprintf(L->m->hp.arch, sizeof L->m->hp.arch, "%s", name);
    if (!L->m->arch)
        rc = eng_err_set(L->err, ENG_EUNSUPPORTED,
                         "architecture '%.64s' is not supported (supported: %s)", name,
                         eng_arch_names());
    free(name);
    return rc;
}

static int read_attention_hparams(loader *L)
{
    eng_hparams *hp = &L->m->hp;
    int rc;
    if ((rc = get_dim(L, "attention.head_count", 0, true, &hp->n_head)) ||
        (rc = need_positive(L, "attention.head_count", hp->n_head)) ||
        (rc = get_dim(L, "attention.head_count_kv", hp->n_head, false, &hp->n_head_kv)) ||
        (rc = need_positive(L, "attention.head_count_kv", hp->n_head_kv)))
        return rc;
    if (hp->n_head % hp->n_head_kv)
        return eng_err_set(L->err, ENG_EFORMAT,
                           "head_count %" PRId64 " is not a multiple of head_count_kv %" PRId64,
                           hp->n_head, hp->n_head_kv);
    int64_t vlen;
    if ((rc = get_dim(L, "attention.key_length", hp->n_embd / hp->n_head, false, &hp->head_dim)) ||
        (rc = need_positive(L, "attention.key_length", hp->head_dim)) ||
        (rc = get_dim(L, "attention.value_length", hp->head_dim, false, &vlen)))
        return rc;
    if (vlen != hp->head_dim)
        return eng_err_set(L->err, ENG_EUNSUPPORTED,
                           "key '%s': %" PRId64 " differs from key_length %" PRId64,
                           kname(L, "attention.value_length"), vlen, hp->head_dim);
    if ((rc = get_dim(L, "rope.dimension_count", hp->head_dim, false, &hp->n_rot)))
        return rc;
    if (hp->n_rot % 2 || hp->n_rot > hp->head_dim || hp->n_rot <= 0 ||
        (L->m->arch->rot_must_equal_hd && hp->n_rot != hp->head_dim))
        return eng_err_set(L->err, ENG_EFORMAT,
                           "key '%s': %" PRId64 " is not valid for head_dim %" PRId64,
                           kname(L, "rope.dimension_count"), hp->n_rot, hp->head_dim);
    if ((rc = eng_gguf_get_f32(L->m->g, kname(L, "attention.layer_norm_rms_epsilon"), &hp->eps,
                               L->err)))
        return rc;
    if (!(hp->eps > 0 && hp->eps < 1))
        return eng_err_set(L->err, ENG_EFORMAT, "key '%s': %g out of range (0, 1)", L->key,
                           hp->eps);
    if ((rc = eng_gguf_get_f32_or(L->m->g, kname(L, "rope.freq_base"), 10000.0f,
                                  &hp->rope_base, L->err)))
        return rc;
    if (!(hp->rope_base > 0))
        return eng_err_set(L->err, ENG_EFORMAT, "key '%s': %g must be > 0", L->key,
                           hp->rope_base);
    return ENG_OK;
}

/* Expert counts and FFN widths, with the fallbacks of spec §3. */
static int read_ffn_hparams(loader *L)
{
    eng_hparams *hp = &L->m->hp;
    const eng_arch *a = L->m->arch;
    int rc;
    if ((rc = get_dim(L, "expert_count", 0, !a->dense_allowed, &hp->n_expert)) ||
        (rc = get_dim(L, "expert_used_count", 0, hp->n_expert > 0, &hp->n_expert_used)) ||
        (rc = get_dim(L, "feed_forward_length", 0, false, &hp->n_ff)))
        return rc;
    if (hp->n_expert == 0) {
        if (!a->dense_allowed)
            return eng_err_set(L->err, ENG_EFORMAT, "key '%s': must be > 0 for %s",
                               kname(L, "expert_count"), hp->arch);
        hp->n_expert_used = 0;
        return need_positive(L, "feed_forward_length", hp->n_ff);
    }
    if (hp->n_expert > MAX_EXPERTS || hp->n_expert_used < 1 || hp->n_expert_used > hp->n_expert)
        return eng_err_set(L->err, ENG_EFORMAT,
                           "expert_used_count %" PRId64 " / expert_count %" PRId64
                           ": need 1 <= used <= count <= %d",
                           hp->n_expert_used, hp->n_expert, MAX_EXPERTS);
    if (a->n_ff_is_expert_width) {
        hp->n_ff_exp = hp->n_ff;
        if ((rc = need_positive(L, "feed_forward_length", hp->n_ff)))
            return rc;
    } else {
        if ((rc = get_dim(L, "expert_feed_forward_length", hp->n_ff / hp->n_expert_used, false,
                          &hp->n_ff_exp)) ||
            (rc = need_positive(L, "expert_feed_forward_length", hp->n_ff_exp)))
            return rc;
    }
    if (a->shared_expert) {
        if ((rc = get_dim(L, "expert_shared_feed_forward_length", hp->n_ff, false,
                          &hp->n_ff_shexp)) ||
            (rc = need_positive(L, "expert_shared_feed_forward_length", hp->n_ff_shexp)))
            return rc;
    }
    return ENG_OK;
}

static int read_hparams(loader *L)
{
    eng_hparams *hp = &L->m->hp;
    int rc;
    if ((rc = get_dim(L, "block_count", 0, true, &hp->n_layer)) ||
        (rc = need_positive(L, "block_count", hp->n_layer)) ||
        (rc = get_dim(L, "context_length", 0, true, &hp->n_ctx_train)) ||
        (rc = need_positive(L, "context_length", hp->n_ctx_train)) ||
        (rc = get_dim(L, "embedding_length", 0, true, &hp->n_embd)) ||
        (rc = need_positive(L, "embedding_length", hp->n_embd)))
        return rc;
    if (hp->n_layer > MAX_LAYERS)
        return eng_err_set(L->err, ENG_EFORMAT, "key '%s': %" PRId64 " layers, at most %d",
                           kname(L, "block_count"), hp->n_layer, MAX_LAYERS);
    if ((rc = read_attention_hparams(L)))
        return rc;
    return read_ffn_hparams(L);
}

static void fmt_shape(char *buf, size_t cap, const int64_t *ne, int n)
{
    size_t o = (size_t)snprintf(buf, cap, "{");
    for (int i = 0; i < n && o < cap; i++)
        o += (size_t)snprintf(buf + o, cap - o, "%s%" PRId64, i ? "," : "", ne[i]);
    if (o < cap)
        snprintf(buf + o, cap - o, "}");
}

/* Finds `name`, checks its shape is exactly ne[0..n) (trailing dims 1) and
 * its type computable (f32 only when f32_only). *out = NULL and ENG_OK for a
 * missing optional tensor. */
static int tensor(loader *L, eng_tref *out, const char *name, bool required, bool f32_only,
                  int n, const int64_t *ne)
{
    const eng_gguf_tensor *t = eng_gguf_find_tensor(L->m->g, name);
    *out = t;
    if (!t)
        return required ? eng_err_set(L->err, ENG_EFORMAT, "tensor '%s' is missing", name)
                        : ENG_OK;
    int64_t want[ENG_GGUF_MAX_DIMS] = {1, 1, 1, 1};
    memcpy(want, ne, (size_t)n * sizeof *ne);
    if (memcmp(want, t->ne, sizeof want) != 0) {
        char got_s[96], want_s[96];
        int nd = t->n_dims > n ? t->n_dims : n;
        fmt_shape(got_s, sizeof got_s, t->ne, nd);
        fmt_shape(want_s, sizeof want_s, want, nd);
        return eng_err_set(L->err, ENG_EFORMAT, "tensor '%s': shape %s, expected %s", name,
                           got_s, want_s);
    }
    if (f32_only && t->type != ENG_TYPE_F32)
        return eng_err_set(L->err, ENG_EUNSUPPORTED, "tensor '%s': type %s, expected f32", name,
                           eng_type_name(t->type));
    const eng_format *f = eng_format_get(t->type);
    if (!f || !f->supported)
        return eng_err_set(L->err, ENG_EUNSUPPORTED,
                           "tensor '%s': type %s has no kernels in this engine", name,
                           eng_type_name(t->type));
    return ENG_OK;
}

#define DIMS(...) (int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), (int64_t[]){__VA_ARGS__}

static int layer_tensor(loader *L, eng_tref *out, int il, const char *what, bool req, bool f32,
                        int n, const int64_t *ne)
{
    char name[ENG_GGUF_MAX_NAME + 32];
    snprintf(name, sizeof name, "blk.%d.%s", il, what);
    return tensor(L, out, name, req, f32, n, ne);
}

static int load_attention(loader *L, int il, eng_layer *l)
{
    const eng_hparams *hp = &L->m->hp;
    const eng_arch *a = L->m->arch;
    int64_t d = hp->n_embd, nq = hp->n_head * hp->head_dim, nkv = hp->n_head_kv * hp->head_dim;
    int rc;
    if ((rc = layer_tensor(L, &l->attn_norm, il, "attn_norm.weight", true, true, DIMS(d))) ||
        (rc = layer_tensor(L, &l->wq, il, "attn_q.weight", true, false, DIMS(d, nq))) ||
        (rc = layer_tensor(L, &l->wk, il, "attn_k.weight", true, false, DIMS(d, nkv))) ||
        (rc = layer_tensor(L, &l->wv, il, "attn_v.weight", true, false, DIMS(d, nkv))) ||
        (rc = layer_tensor(L, &l->wo, il, "attn_output.weight", true, false, DIMS(nq, d))))
        return rc;
    if (a->qkv_bias &&
        ((rc = layer_tensor(L, &l->bq, il, "attn_q.bias", true, true, DIMS(nq))) ||
         (rc = layer_tensor(L, &l->bk, il, "attn_k.bias", true, true, DIMS(nkv))) ||
         (rc = layer_tensor(L, &l->bv, il, "attn_v.bias", true, true, DIMS(nkv)))))
        return rc;
    if (a->attn_out_bias_allowed &&
        (rc = layer_tensor(L, &l->bo, il, "attn_output.bias", false, true, DIMS(d))))
        return rc;
    if (a->qk_norm != ENG_QKNORM_NONE) {
        bool head = a->qk_norm == ENG_QKNORM_HEAD;
        if ((rc = layer_tensor(L, &l->q_norm, il, "attn_q_norm.weight", true, true,
                               DIMS(head ? hp->head_dim : nq))) ||
            (rc = layer_tensor(L, &l->k_norm, il, "attn_k_norm.weight", true, true,
                               DIMS(head ? hp->head_dim : nkv))))
            return rc;
    }
    return ENG_OK;
}

static int load_ffn(loader *L, int il, eng_layer *l)
{
    const eng_hparams *hp = &L->m->hp;
    int64_t d = hp->n_embd, E = hp->n_expert, F = hp->n_ff_exp, S = hp->n_ff_shexp;
    int rc;
    if ((rc = layer_tensor(L, &l->ffn_norm, il, "ffn_norm.weight", true, true, DIMS(d))))
        return rc;
    if (E == 0)
        return (rc = layer_tensor(L, &l->ffn_gate, il, "ffn_gate.weight", true, false,
                                  DIMS(d, hp->n_ff))) ||
                       (rc = layer_tensor(L, &l->ffn_up, il, "ffn_up.weight", true, false,
                                          DIMS(d, hp->n_ff))) ||
                       (rc = layer_tensor(L, &l->ffn_down, il, "ffn_down.weight", true, false,
                                          DIMS(hp->n_ff, d)))
                   ? rc
                   : ENG_OK;
    char legacy[64];
    snprintf(legacy, sizeof legacy, "blk.%d.ffn_gate.0.weight", il);
    if (eng_gguf_find_tensor(L->m->g, legacy) &&
        !eng_gguf_find_tensor(L->m->g, "blk.0.ffn_gate_exps.weight"))
        return eng_err_set(L->err, ENG_EUNSUPPORTED,
                           "tensor '%s': per-expert tensors of old Mixtral files are not "
                           "supported; re-convert with a current llama.cpp (stacked *_exps)",
                           legacy);
    if ((rc = layer_tensor(L, &l->router, il, "ffn_gate_inp.weight", true, false, DIMS(d, E))) ||
        (rc = layer_tensor(L, &l->gate_exps, il, "ffn_gate_exps.weight", true, false,
                           DIMS(d, F, E))) ||
        (rc = layer_tensor(L, &l->up_exps, il, "ffn_up_exps.weight", true, false,
                           DIMS(d, F, E))) ||
        (rc = layer_tensor(L, &l->down_exps, il, "ffn_down_exps.weight", true, false,
                           DIMS(F, d, E))))
        return rc;
    if (!L->m->arch->shared_expert)
        return ENG_OK;
    if ((rc = layer_tensor(L, &l->shexp_gate, il, "ffn_gate_inp_shexp.weight", true, true,
                           DIMS(d))) ||
        (rc = layer_tensor(L, &l->gate_sh, il, "ffn_gate_shexp.weight", true, false,
                           DIMS(d, S))) ||
        (rc = layer_tensor(L, &l->up_sh, il, "ffn_up_shexp.weight", true, false, DIMS(d, S))) ||
        (rc = layer_tensor(L, &l->down_sh, il, "ffn_down_shexp.weight", true, false,
                           DIMS(S, d))))
        return rc;
    return ENG_OK;
}

static int load_tensors(loader *L)
{
    eng_model *m = L->m;
    eng_hparams *hp = &m->hp;
    int rc;
    const eng_gguf_tensor *te = eng_gguf_find_tensor(m->g, "token_embd.weight");
    if (!te)
        return eng_err_set(L->err, ENG_EFORMAT, "tensor 'token_embd.weight' is missing");
    hp->n_vocab = te->ne[1];
    if (hp->n_vocab <= 0 || hp->n_vocab > INT32_MAX)
        return eng_err_set(L->err, ENG_EFORMAT, "tensor 'token_embd.weight': %" PRId64
                           " rows is not a valid vocabulary size", hp->n_vocab);
    if ((rc = tensor(L, &m->tok_embd, "token_embd.weight", true, false,
                     DIMS(hp->n_embd, hp->n_vocab))) ||
        (rc = tensor(L, &m->output_norm, "output_norm.weight", true, true, DIMS(hp->n_embd))) ||
        (rc = tensor(L, &m->output, "output.weight", !m->arch->output_tied_allowed, false,
                     DIMS(hp->n_embd, hp->n_vocab))))
        return rc;
    hp->output_tied = m->output == NULL;
    if (hp->output_tied)
        m->output = m->tok_embd;
    m->layers = calloc((size_t)hp->n_layer, sizeof *m->layers);
    if (!m->layers)
        return eng_err_set(L->err, ENG_ENOMEM, "out of memory for %" PRId64 " layers",
                           hp->n_layer);
    for (int il = 0; il < hp->n_layer; il++)
        if ((rc = load_attention(L, il, &m->layers[il])) ||
            (rc = load_ffn(L, il, &m->layers[il])))
            return rc;
    return ENG_OK;
}

/* Maps every page of the file now (see eng_model_opts.prefault). */
static void prefault(const eng_gguf *g)
{
    const volatile char *base = eng_gguf_base(g);
    uint64_t size = eng_gguf_file_size(g);
    if (!base || !size)
        return;
    if (madvise((void *)base, (size_t)size, MADV_POPULATE_READ) == 0)
        return;
    long page = sysconf(_SC_PAGESIZE);
    char sink = 0;
    for (uint64_t o = 0; o < size; o += (uint64_t)(page > 0 ? page : 4096))
        sink ^= base[o]; /* older kernels: touch each page */
    (void)sink;
}

/* ---- private dense weights (eng_model_opts.private_dense) ---------------- */

typedef struct byte_range {
    uint64_t lo, hi;
} byte_range;

static int cmp_range(const void *a, const void *b)
{
    const byte_range *x = a, *y = b;
    return (x->lo > y->lo) - (x->lo < y->lo);
}

/* Replaces file bytes [a, b) of the mapping (page-aligned) by a private copy
 * read with pread. The bytes at the same addresses do not change. */
static int copy_private(const eng_model *m, int fd, uint64_t a, uint64_t b, eng_err *err)
{
    const uint64_t size = eng_gguf_file_size(m->g);
    char *addr = (char *)eng_gguf_base(m->g) + a;
    if (mmap(addr, b - a, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1,
             0) == MAP_FAILED)
        return eng_err_set(err, ENG_ENOMEM, "private copy of %" PRIu64 " bytes: %s", b - a,
                           strerror(errno));
    const uint64_t want = (b < size ? b : size) - a;
    uint64_t got = 0;
    while (got < want) {
        ssize_t r = pread(fd, addr + got, want - got, (off_t)(a + got));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return eng_err_set(err, ENG_EIO,
                               "read %" PRIu64 " of %" PRIu64 " bytes at offset %" PRIu64 ": %s",
                               got, want, a,
                               r < 0 ? strerror(errno) : "the file is shorter than at open");
        got += (uint64_t)r;
    }
    (void)mprotect(addr, b - a, PROT_READ);
    return ENG_OK;
}

/* Everything but the page-aligned interiors of the routed expert tensors
 * becomes private memory. */
static int privatize_dense(eng_model *m, eng_err *err)
{
    const uint64_t size = eng_gguf_file_size(m->g);
    const long ps = sysconf(_SC_PAGESIZE);
    const uint64_t page = ps > 0 ? (uint64_t)ps : 4096;
    if (!eng_gguf_base(m->g) || size == 0)
        return ENG_OK;
    const int n = m->hp.n_expert > 0 ? 3 * (int)m->hp.n_layer : 0;
    byte_range *r = calloc((size_t)n + 1, sizeof *r);
    if (!r)
        return eng_err_set(err, ENG_ENOMEM, "out of memory");
    int nr = 0;
    for (int il = 0; il < n / 3; il++) {
        const eng_layer *l = &m->layers[il];
        eng_tref t[3] = {l->gate_exps, l->up_exps, l->down_exps};
        for (int i = 0; i < 3; i++) {
            uint64_t lo = (t[i]->file_offset + page - 1) / page * page;
            uint64_t hi = (t[i]->file_offset + t[i]->nbytes) / page * page;
            if (lo < hi)
                r[nr++] = (byte_range){lo, hi};
        }
    }
    qsort(r, (size_t)nr, sizeof *r, cmp_range);
    int fd = open(eng_gguf_path(m->g), O_RDONLY | O_CLOEXEC), rc = ENG_OK;
    if (fd < 0)
        rc = eng_err_set(err, ENG_EIO, "%s", strerror(errno));
    uint64_t cur = 0;
    const uint64_t end = (size + page - 1) / page * page;
    for (int i = 0; !rc && i <= nr; i++) {
        uint64_t lo = i < nr ? r[i].lo : end;
        if (lo > cur)
            rc = copy_private(m, fd, cur, lo, err);
        if (i < nr && r[i].hi > cur)
            cur = r[i].hi;
    }
    if (fd >= 0)
        close(fd);
    free(r);
    return rc;
}

int eng_model_open(eng_model **out, const char *path, const eng_model_opts *opts, eng_err *err)
{
    *out = NULL;
    eng_model *m = calloc(1, sizeof *m);
    if (!m)
        return eng_err_set(err, ENG_ENOMEM, "%s: out of memory", path);
    int rc = eng_gguf_open(&m->g, path, err);
    if (rc) {
        free(m);
        return rc;
    }
    loader L = {.m = m, .err = err};
    if ((rc = read_arch(&L)) || (rc = read_hparams(&L)) || (rc = load_tensors(&L)) ||
        (opts && opts->private_dense && (rc = privatize_dense(m, err)))) {
        eng_err_prefix(err, "%s", path);
        eng_model_free(m);
        return rc;
    }
    if (opts && opts->prefault)
        prefault(m->g);
    *out = m;
    return ENG_OK;
}

void eng_model_free(eng_model *m)
{
    if (!m)
        return;
    eng_gguf_free(m->g);
    free(m->layers);
    free(m);
}

const eng_hparams *eng_model_hparams(const eng_model *m)
{
    return &m->hp;
}

const char *eng_model_path(const eng_model *m)
{
    return eng_gguf_path(m->g);
}

const struct eng_gguf *eng_model_gguf(const eng_model *m)
{
    return m->g;
}

uint64_t eng_model_expert_bytes(const eng_model *m, int layer)
{
    if (m->hp.n_expert == 0 || layer < 0 || layer >= m->hp.n_layer)
        return 0;
    const eng_layer *l = &m->layers[layer];
    uint64_t E = (uint64_t)m->hp.n_expert;
    return (l->gate_exps->nbytes + l->up_exps->nbytes + l->down_exps->nbytes) / E;
}

static uint64_t nb(eng_tref t)
{
    return t ? t->nbytes : 0;
}

uint64_t eng_model_decode_bytes(const eng_model *m)
{
    uint64_t total = nb(m->output_norm) + nb(m->output) + m->tok_embd->row_bytes;
    for (int il = 0; il < m->hp.n_layer; il++) {
        const eng_layer *l = &m->layers[il];
        total += nb(l->attn_norm) + nb(l->wq) + nb(l->wk) + nb(l->wv) + nb(l->wo) + nb(l->bq) +
                 nb(l->bk) + nb(l->bv) + nb(l->bo) + nb(l->q_norm) + nb(l->k_norm) +
                 nb(l->ffn_norm) + nb(l->router) + nb(l->shexp_gate) + nb(l->gate_sh) +
                 nb(l->up_sh) + nb(l->down_sh) + nb(l->ffn_gate) + nb(l->ffn_up) +
                 nb(l->ffn_down);
        total += eng_model_expert_bytes(m, il) * (uint64_t)m->hp.n_expert_used;
    }
    return total;
}

static uint64_t ne(eng_tref t)
{
    return t ? (uint64_t)t->ne[0] * (uint64_t)t->ne[1] : 0;
}

uint64_t eng_model_layer_params(const eng_model *m)
{
    uint64_t total = 0;
    for (int il = 0; il < m->hp.n_layer; il++) {
        const eng_layer *l = &m->layers[il];
        total += ne(l->wq) + ne(l->wk) + ne(l->wv) + ne(l->wo) + ne(l->router) +
                 ne(l->shexp_gate) + ne(l->gate_sh) + ne(l->up_sh) + ne(l->down_sh) +
                 ne(l->ffn_gate) + ne(l->ffn_up) + ne(l->ffn_down);
        total += (ne(l->gate_exps) + ne(l->up_exps) + ne(l->down_exps)) *
                 (uint64_t)m->hp.n_expert_used;
    }
    return total;
}

uint64_t eng_model_head_params(const eng_model *m)
{
    return ne(m->output);
}
