/*
 * model.c — opening and closing a GGUF model (see model.h): the mapping,
 * the optional prefault, private copy of the dense weights or of the whole
 * file in huge pages, and what the
 * model's size means for a decode step. Reading the file's metadata and
 * tensors is model_load.c.
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
 * read with pread. The bytes at the same addresses do not change. huge:
 * ask for transparent huge pages (MADV_HUGEPAGE) before the bytes arrive. */
static int copy_private(const eng_model *m, int fd, uint64_t a, uint64_t b, bool huge,
                        eng_err *err)
{
    const uint64_t size = eng_gguf_file_size(m->g);
    char *addr = (char *)eng_gguf_base(m->g) + a;
    if (mmap(addr, b - a, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1,
             0) == MAP_FAILED)
        return eng_err_set(err, ENG_ENOMEM, "private copy of %" PRIu64 " bytes: %s", b - a,
                           strerror(errno));
    if (huge) /* a hint: where the kernel gives none, 4 KiB pages remain */
        (void)madvise(addr, b - a, MADV_HUGEPAGE);
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
    const int n = 3 * (int)m->hp.n_layer_moe;
    byte_range *r = calloc((size_t)n + 1, sizeof *r);
    if (!r)
        return eng_err_set(err, ENG_ENOMEM, "out of memory");
    int nr = 0;
    for (int j = 0; j < n / 3; j++) {
        const eng_layer *l = &m->layers[m->moe_layer[j]];
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
            rc = copy_private(m, fd, cur, lo, false, err);
        if (i < nr && r[i].hi > cur)
            cur = r[i].hi;
    }
    if (fd >= 0)
        close(fd);
    free(r);
    return rc;
}

/* The whole file as private memory in huge pages (eng_model_opts.in_ram). */
static int load_in_ram(eng_model *m, eng_err *err)
{
    const uint64_t size = eng_gguf_file_size(m->g);
    const long ps = sysconf(_SC_PAGESIZE);
    const uint64_t page = ps > 0 ? (uint64_t)ps : 4096;
    if (!eng_gguf_base(m->g) || size == 0)
        return ENG_OK;
    int fd = open(eng_gguf_path(m->g), O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return eng_err_set(err, ENG_EIO, "%s", strerror(errno));
    int rc = copy_private(m, fd, 0, (size + page - 1) / page * page, true, err);
    close(fd);
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
    const bool in_ram = opts && opts->in_ram;
    if ((rc = eng_model_load(m, err)) || (in_ram && (rc = load_in_ram(m, err))) ||
        (!in_ram && opts && opts->private_dense && (rc = privatize_dense(m, err)))) {
        eng_err_prefix(err, "%s", path);
        eng_model_free(m);
        return rc;
    }
    if (opts && opts->prefault && !in_ram)
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
    free(m->moe_layer);
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
    if (layer < 0 || layer >= m->hp.n_layer_moe)
        return 0;
    const eng_layer *l = &m->layers[m->moe_layer[layer]];
    uint64_t E = (uint64_t)m->hp.n_expert;
    uint64_t b = l->gate_exps->nbytes + l->up_exps->nbytes + l->down_exps->nbytes;
    if (l->gate_exps_b) /* the expert biases travel with the expert */
        b += l->gate_exps_b->nbytes + l->up_exps_b->nbytes + l->down_exps_b->nbytes;
    return b / E;
}

/* What a tensor of the file is to one decode step. The layers that run
 * read every weight once, except the routed experts (k of E) and the
 * embedding table (one row); next-token-prediction layers are not run. */
typedef enum tensor_role { T_LAYER, T_EXPERTS, T_EMBD, T_OUTPUT, T_UNUSED } tensor_role;

static tensor_role role_of(const eng_model *m, eng_tref t)
{
    if (t == m->output)
        return T_OUTPUT;
    if (t == m->tok_embd)
        return T_EMBD;
    for (int i = 0; i < m->hp.n_layer_moe; i++) {
        const eng_layer *l = &m->layers[m->moe_layer[i]];
        if (t == l->gate_exps || t == l->up_exps || t == l->down_exps ||
            (t && (t == l->gate_exps_b || t == l->up_exps_b || t == l->down_exps_b)))
            return T_EXPERTS;
    }
    int il;
    if (sscanf(t->name, "blk.%d.", &il) == 1 && il >= m->hp.n_layer)
        return T_UNUSED;
    return T_LAYER;
}

uint64_t eng_model_decode_bytes(const eng_model *m)
{
    const uint64_t E = (uint64_t)(m->hp.n_expert > 0 ? m->hp.n_expert : 1);
    const uint64_t k = (uint64_t)m->hp.n_expert_used;
    uint64_t total = m->tok_embd->row_bytes;
    for (int64_t i = 0; i < eng_gguf_tensor_count(m->g); i++) {
        eng_tref t = eng_gguf_tensor_at(m->g, i);
        switch (role_of(m, t)) {
        case T_LAYER: case T_OUTPUT: total += t->nbytes; break;
        case T_EXPERTS: total += t->nbytes / E * k; break;
        case T_EMBD: case T_UNUSED: break;
        }
    }
    return total;
}

/* Elements of a matrix (ne0 * ne1 * ne2); norms and biases (1-D) are not
 * matrix products. */
static uint64_t mat_elems(eng_tref t)
{
    return t->n_dims < 2 ? 0 : (uint64_t)t->ne[0] * (uint64_t)t->ne[1] * (uint64_t)t->ne[2];
}

uint64_t eng_model_layer_params(const eng_model *m)
{
    const uint64_t E = (uint64_t)(m->hp.n_expert > 0 ? m->hp.n_expert : 1);
    const uint64_t k = (uint64_t)m->hp.n_expert_used;
    uint64_t total = 0;
    for (int64_t i = 0; i < eng_gguf_tensor_count(m->g); i++) {
        eng_tref t = eng_gguf_tensor_at(m->g, i);
        tensor_role r = role_of(m, t);
        if (r == T_LAYER)
            total += mat_elems(t);
        else if (r == T_EXPERTS && t->n_dims == 3) /* not the expert biases */
            total += mat_elems(t) / E * k;
    }
    for (int il = 0; il < m->hp.n_layer; il++) /* a 1-D weight, but a dot product */
        if (m->layers[il].shexp_gate)
            total += (uint64_t)m->layers[il].shexp_gate->ne[0];
    return total;
}

static uint64_t ne(eng_tref t)
{
    return t ? (uint64_t)t->ne[0] * (uint64_t)t->ne[1] : 0;
}

uint64_t eng_model_head_params(const eng_model *m)
{
    return ne(m->output);
}
