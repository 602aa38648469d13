/*
 * lowprec.c — the companion expert file (lowprec.h): writing it from a
 * model, opening and checking it against the model, locating an expert's
 * low-precision slices.
 *
 * Design notes.
 *  - Writing streams: one row at a time is dequantized (scalar reference)
 *    and quantized into a row buffer, then appended; memory stays at two
 *    rows whatever the model's size.
 *  - The tensors keep the model's names, shapes and order (MoE layer by
 *    layer, gate, up, down, then the biases), so a companion expert is the
 *    model's expert slice for slice and eng_lowprec_locate can fill the same
 *    eng_expert_weights the store and forward pass already use.
 *  - The fingerprint reads at most 256 bytes of each expert tensor: cheap at
 *    open, yet two models of one preset with different seeds differ.
 */
#include "engine/lowprec.h"

#include "engine/formats.h"
#include "engine/gguf.h"
#include "engine/model_impl.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define FP_SAMPLE 256 /* data bytes of each expert tensor in the fingerprint */

struct eng_lowprec {
    eng_gguf *g;
    const eng_model *m;
    char *path;
    int type;
    int L;
    eng_tref *t;            /* [L * ENG_SLICE_MAX]: the companion's tensors */
    uint64_t *xbytes;       /* [L] bytes of one low-precision expert        */
};

/* The model's stacked expert tensors of MoE layer l in slice order; NULL
 * past the ones it has. */
static void layer_trefs(const eng_model *m, int l, eng_tref out[ENG_SLICE_MAX])
{
    const eng_layer *ly = &m->layers[m->moe_layer[l]];
    const eng_tref t[ENG_SLICE_MAX] = {ly->gate_exps,   ly->up_exps,   ly->down_exps,
                                       ly->gate_exps_b, ly->up_exps_b, ly->down_exps_b};
    memcpy(out, t, sizeof t);
}

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

void eng_lowprec_importance_map(const uint64_t *counts, int n_layer, int n_expert, double q,
                                uint8_t *out)
{
    const int n_low = (int)(q * n_expert);
    for (int l = 0; l < n_layer; l++) {
        const uint64_t *c = counts + (size_t)l * n_expert;
        uint8_t *o = out + (size_t)l * n_expert;
        /* rank of e = experts before it in (count, id) order; O(E^2), once */
        for (int e = 0; e < n_expert; e++) {
            int rank = 0;
            for (int f = 0; f < n_expert; f++)
                rank += c[f] < c[e] || (c[f] == c[e] && f < e);
            o[e] = rank < n_low;
        }
    }
}

uint64_t eng_lowprec_model_hash(const eng_model *m)
{
    const eng_hparams *hp = &m->hp;
    uint64_t h = fnv(0xcbf29ce484222325ull, hp->arch, strlen(hp->arch));
    h = fnv(h, &hp->n_expert, sizeof hp->n_expert);
    for (int l = 0; l < hp->n_layer_moe; l++) {
        eng_tref t[ENG_SLICE_MAX];
        layer_trefs(m, l, t);
        for (int i = 0; i < ENG_SLICE_MAX && t[i]; i++) {
            int32_t type = t[i]->type;
            h = fnv(h, t[i]->name, strlen(t[i]->name));
            h = fnv(h, &type, sizeof type);
            h = fnv(h, t[i]->ne, sizeof t[i]->ne);
            h = fnv(h, t[i]->data, t[i]->nbytes < FP_SAMPLE ? t[i]->nbytes : FP_SAMPLE);
        }
    }
    return h;
}

static int model_file_bytes(const eng_model *m, uint64_t *out, eng_err *err)
{
    struct stat st;
    if (stat(eng_model_path(m), &st) != 0)
        return eng_err_set(err, ENG_EIO, "%s: %s", eng_model_path(m), strerror(errno));
    *out = (uint64_t)st.st_size;
    return ENG_OK;
}

/* ---- write ---------------------------------------------------------------- */

/* Whether the engine can quantize to type (a one-block trial). */
static int check_type(int type, eng_err *err)
{
    const eng_format *f = eng_format_get(type);
    if (!f || !f->supported)
        return eng_err_set(err, ENG_EUNSUPPORTED, "low-precision type %s: no kernels here",
                           eng_type_name(type));
    float zero[256] = {0};
    unsigned char blk[1024];
    if (f->blck > 256 || f->type_size > sizeof blk ||
        eng_quantize_row(type, zero, blk, f->blck, NULL) != ENG_OK)
        return eng_err_set(err, ENG_EUNSUPPORTED, "low-precision type %s: the engine cannot "
                           "quantize to it", f->name);
    return ENG_OK;
}

static int write_keys(eng_gguf_writer *w, const eng_model *m, int type, eng_err *err)
{
    const eng_hparams *hp = &m->hp;
    uint64_t bytes;
    int rc = model_file_bytes(m, &bytes, err);
    if (rc)
        return rc;
    const char *base = strrchr(eng_model_path(m), '/');
    base = base ? base + 1 : eng_model_path(m);
    if ((rc = eng_gguf_writer_set_str(w, "general.architecture", hp->arch, err)) ||
        (rc = eng_gguf_writer_set_str(w, "general.type", "moebench-lowprec-experts", err)) ||
        (rc = eng_gguf_writer_set_u32(w, "moebench.lowprec.expert_count",
                                      (uint32_t)hp->n_expert, err)) ||
        (rc = eng_gguf_writer_set_u32(w, "moebench.lowprec.moe_layers",
                                      (uint32_t)hp->n_layer_moe, err)) ||
        (rc = eng_gguf_writer_set_u64(w, "moebench.lowprec.model_bytes", bytes, err)) ||
        (rc = eng_gguf_writer_set_u64(w, "moebench.lowprec.model_hash",
                                      eng_lowprec_model_hash(m), err)) ||
        (rc = eng_gguf_writer_set_str(w, "moebench.lowprec.type", eng_type_name(type), err)))
        return rc;
    return eng_gguf_writer_set_str(w, "moebench.lowprec.model", base, err);
}

/* Adds every expert tensor's info; *total: the source bytes to convert. */
static int add_tensors(eng_gguf_writer *w, const eng_model *m, int type, uint64_t *total,
                       eng_err *err)
{
    const eng_format *f = eng_format_get(type);
    *total = 0;
    for (int l = 0; l < m->hp.n_layer_moe; l++) {
        eng_tref t[ENG_SLICE_MAX];
        layer_trefs(m, l, t);
        for (int i = 0; i < ENG_SLICE_MAX && t[i]; i++) {
            const bool mat = i <= ENG_SLICE_DOWN;
            if (mat && t[i]->ne[0] % f->blck)
                return eng_err_set(err, ENG_EINVAL,
                                   "%s: tensor '%s': rows of %" PRId64 " elements do not fit "
                                   "%s's blocks of %" PRId64 "; pick another --type",
                                   eng_model_path(m), t[i]->name, t[i]->ne[0], f->name,
                                   f->blck);
            int rc = eng_gguf_writer_add_tensor(w, t[i]->name, mat ? type : t[i]->type,
                                                t[i]->n_dims, t[i]->ne, NULL, err);
            if (rc)
                return rc;
            *total += t[i]->nbytes;
        }
    }
    return ENG_OK;
}

typedef struct wr_state {
    eng_gguf_writer *w;
    float *row;
    unsigned char *q;
    uint64_t done, total;
    eng_lowprec_progress_fn progress;
    void *user;
} wr_state;

/* One tensor: every row dequantized and requantized (matrices) or copied
 * (biases). */
static int write_tensor(wr_state *s, eng_tref t, int type, bool mat, eng_err *err)
{
    const int64_t n = t->ne[0], rows = (int64_t)(t->nbytes / t->row_bytes);
    int rc;
    if (!mat)
        return eng_gguf_writer_append(s->w, t->data, t->nbytes, err);
    const uint64_t qb = eng_type_row_bytes(type, n);
    for (int64_t r = 0; r < rows; r++) {
        const void *src = (const char *)t->data + (uint64_t)r * t->row_bytes;
        if ((rc = eng_dequantize_row(t->type, src, s->row, n, err)) ||
            (rc = eng_quantize_row(type, s->row, s->q, n, err)))
            return eng_err_prefix(err, "tensor '%s' row %" PRId64, t->name, r);
        if ((rc = eng_gguf_writer_append(s->w, s->q, qb, err)))
            return rc;
        s->done += t->row_bytes;
        if (s->progress && (r % 256 == 255 || r == rows - 1))
            s->progress(s->user, s->done, s->total);
    }
    return ENG_OK;
}

static int write_data(wr_state *s, const eng_model *m, int type, eng_err *err)
{
    for (int l = 0; l < m->hp.n_layer_moe; l++) {
        eng_tref t[ENG_SLICE_MAX];
        layer_trefs(m, l, t);
        for (int i = 0; i < ENG_SLICE_MAX && t[i]; i++) {
            int rc = write_tensor(s, t[i], type, i <= ENG_SLICE_DOWN, err);
            if (rc)
                return rc;
            if (i > ENG_SLICE_DOWN)
                s->done += t[i]->nbytes;
        }
    }
    if (s->progress)
        s->progress(s->user, s->total, s->total);
    return ENG_OK;
}

int eng_lowprec_write(const eng_model *m, int type, const char *path,
                      eng_lowprec_progress_fn progress, void *user, eng_err *err)
{
    if (m->hp.n_layer_moe == 0)
        return eng_err_set(err, ENG_EINVAL, "%s: a dense model has no experts",
                           eng_model_path(m));
    int rc = check_type(type, err);
    if (rc)
        return rc;
    eng_gguf_writer *w = NULL;
    if ((rc = eng_gguf_writer_open(&w, path, err)))
        return rc;
    wr_state s = {.w = w, .progress = progress, .user = user};
    int64_t width = m->hp.n_embd > m->hp.n_ff_exp ? m->hp.n_embd : m->hp.n_ff_exp;
    s.row = malloc((size_t)width * sizeof *s.row);
    s.q = malloc((size_t)width * sizeof(float)); /* no format is wider than f32 */
    if (!s.row || !s.q)
        rc = eng_err_set(err, ENG_ENOMEM, "%s: out of memory", path);
    if (!rc && !(rc = write_keys(w, m, type, err)) && !(rc = add_tensors(w, m, type, &s.total, err)) &&
        !(rc = eng_gguf_writer_write_header(w, err)) && !(rc = write_data(&s, m, type, err)))
        rc = eng_gguf_writer_finish(w, err);
    free(s.row);
    free(s.q);
    eng_gguf_writer_free(w);
    return rc;
}

/* ---- open ----------------------------------------------------------------- */

static int check_u64(const eng_lowprec *lp, const char *key, uint64_t want, eng_err *err)
{
    uint64_t got;
    if (!eng_gguf_has(lp->g, key))
        return eng_err_set(err, ENG_EINVAL, "%s: key %s missing: not a moebench companion "
                           "expert file (moebench mkexperts makes one)", lp->path, key);
    int rc = eng_gguf_get_u64(lp->g, key, &got, err);
    if (rc)
        return rc;
    if (got != want)
        return eng_err_set(err, ENG_EINVAL,
                           "%s: %s is %" PRIu64 ", the model %s has %" PRIu64
                           ": this companion was made from another model (remake it with "
                           "moebench mkexperts -m %s)",
                           lp->path, key, got, eng_model_path(lp->m), want,
                           eng_model_path(lp->m));
    return ENG_OK;
}

static int check_keys(eng_lowprec *lp, eng_err *err)
{
    const eng_model *m = lp->m;
    char *arch = NULL, *tname = NULL;
    int rc = eng_gguf_get_strdup(lp->g, "moebench.lowprec.type", &tname, err);
    if (rc) {
        eng_err_set(err, ENG_EINVAL, "%s: key moebench.lowprec.type missing: not a moebench "
                    "companion expert file (moebench mkexperts makes one)", lp->path);
        return ENG_EINVAL;
    }
    lp->type = eng_type_from_name(tname);
    const eng_format *f = eng_format_get(lp->type);
    if (!f || !f->supported)
        rc = eng_err_set(err, ENG_EUNSUPPORTED, "%s: moebench.lowprec.type '%s': no kernels here",
                         lp->path, tname);
    free(tname);
    if (rc)
        return rc;
    if ((rc = eng_gguf_get_strdup(lp->g, "general.architecture", &arch, err)))
        return rc;
    if (strcmp(arch, m->hp.arch))
        rc = eng_err_set(err, ENG_EINVAL, "%s: general.architecture is '%s', the model %s is "
                         "'%s': this companion was made from another model", lp->path, arch,
                         eng_model_path(m), m->hp.arch);
    free(arch);
    uint64_t bytes;
    if (rc || (rc = model_file_bytes(m, &bytes, err)))
        return rc;
    if ((rc = check_u64(lp, "moebench.lowprec.expert_count", (uint64_t)m->hp.n_expert, err)) ||
        (rc = check_u64(lp, "moebench.lowprec.moe_layers", (uint64_t)m->hp.n_layer_moe, err)) ||
        (rc = check_u64(lp, "moebench.lowprec.model_bytes", bytes, err)))
        return rc;
    return check_u64(lp, "moebench.lowprec.model_hash", eng_lowprec_model_hash(m), err);
}

/* Every expert tensor present, with the model's shape and the right type. */
static int check_tensors(eng_lowprec *lp, eng_err *err)
{
    const eng_model *m = lp->m;
    for (int l = 0; l < lp->L; l++) {
        eng_tref t[ENG_SLICE_MAX];
        layer_trefs(m, l, t);
        lp->xbytes[l] = 0;
        for (int i = 0; i < ENG_SLICE_MAX && t[i]; i++) {
            eng_tref c = eng_gguf_find_tensor(lp->g, t[i]->name);
            int want = i <= ENG_SLICE_DOWN ? lp->type : t[i]->type;
            if (!c)
                return eng_err_set(err, ENG_EFORMAT, "%s: tensor '%s' missing", lp->path,
                                   t[i]->name);
            if (c->type != want || c->n_dims != t[i]->n_dims ||
                memcmp(c->ne, t[i]->ne, sizeof c->ne))
                return eng_err_set(err, ENG_EFORMAT,
                                   "%s: tensor '%s': %s {%" PRId64 ",%" PRId64 ",%" PRId64
                                   "}, expected %s {%" PRId64 ",%" PRId64 ",%" PRId64 "}",
                                   lp->path, c->name, eng_type_name(c->type), c->ne[0],
                                   c->ne[1], c->ne[2], eng_type_name(want), t[i]->ne[0],
                                   t[i]->ne[1], t[i]->ne[2]);
            lp->t[l * ENG_SLICE_MAX + i] = c;
            lp->xbytes[l] += c->nbytes / (uint64_t)m->hp.n_expert;
        }
    }
    return ENG_OK;
}

int eng_lowprec_open(eng_lowprec **out, const eng_model *m, const char *path, eng_err *err)
{
    *out = NULL;
    if (m->hp.n_layer_moe == 0)
        return eng_err_set(err, ENG_EINVAL, "%s: a dense model has no experts",
                           eng_model_path(m));
    eng_lowprec *lp = calloc(1, sizeof *lp);
    if (!lp)
        return eng_err_set(err, ENG_ENOMEM, "%s: out of memory", path);
    lp->m = m;
    lp->L = (int)m->hp.n_layer_moe;
    lp->path = strdup(path);
    lp->t = calloc((size_t)lp->L * ENG_SLICE_MAX, sizeof *lp->t);
    lp->xbytes = calloc((size_t)lp->L, sizeof *lp->xbytes);
    int rc = ENG_OK;
    if (!lp->path || !lp->t || !lp->xbytes)
        rc = eng_err_set(err, ENG_ENOMEM, "%s: out of memory", path);
    if (!rc && !(rc = eng_gguf_open(&lp->g, path, err)) && !(rc = check_keys(lp, err)))
        rc = check_tensors(lp, err);
    if (rc) {
        eng_lowprec_free(lp);
        return rc;
    }
    *out = lp;
    return ENG_OK;
}

void eng_lowprec_free(eng_lowprec *lp)
{
    if (!lp)
        return;
    eng_gguf_free(lp->g);
    free(lp->path);
    free(lp->t);
    free(lp->xbytes);
    free(lp);
}

const char *eng_lowprec_path(const eng_lowprec *lp) { return lp->path; }
int eng_lowprec_type(const eng_lowprec *lp) { return lp->type; }

uint64_t eng_lowprec_expert_bytes(const eng_lowprec *lp, int layer)
{
    return layer >= 0 && layer < lp->L ? lp->xbytes[layer] : 0;
}

int eng_lowprec_locate(const eng_lowprec *lp, int layer, int expert, eng_expert_weights *out,
                       eng_err *err)
{
    int rc = eng_expert_locate(lp->m, layer, expert, out, err);
    if (rc)
        return rc;
    out->bytes = 0;
    for (int i = 0; i < out->n_slices; i++) {
        eng_tref t = lp->t[layer * ENG_SLICE_MAX + i];
        const int64_t rows = t->n_dims == 2 ? 1 : t->ne[1];
        const uint64_t slice = (uint64_t)rows * t->row_bytes;
        eng_expert_mat *mt = &out->mat[i];
        mt->data = (const char *)t->data + (uint64_t)expert * slice;
        mt->type = t->type;
        mt->row_bytes = t->row_bytes;
        mt->file_offset = t->file_offset + (uint64_t)expert * slice;
        out->bytes += slice;
    }
    return ENG_OK;
}
