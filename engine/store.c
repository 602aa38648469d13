/*
 * store.c — the expert store front end and the memory store (see store.h).
 *
 * The memory store keeps nothing of its own: acquire computes the
 * slices' positions in the mapping (eng_expert_locate), release does
 * nothing. It is the baseline every tiered store must match bit for bit.
 */
#include "engine/store_impl.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

/* Expert e's slice of a stacked tensor {ne0, ne1, E}, or of a stacked bias
 * {ne0, E} (one row per expert). */
static void locate_mat(eng_tref t, int expert, eng_expert_mat *out)
{
    const int64_t rows = t->n_dims == 2 ? 1 : t->ne[1];
    uint64_t slice = (uint64_t)rows * t->row_bytes;
    out->data = (const char *)t->data + (uint64_t)expert * slice;
    out->type = t->type;
    out->n_in = t->ne[0];
    out->n_out = rows;
    out->row_bytes = t->row_bytes;
    out->file_offset = t->file_offset + (uint64_t)expert * slice;
}

int eng_expert_locate(const eng_model *m, int layer, int expert, eng_expert_weights *out,
                      eng_err *err)
{
    const eng_hparams *hp = &m->hp;
    if (hp->n_layer_moe == 0)
        return eng_err_set(err, ENG_EINVAL, "expert store: the model has no experts");
    if (layer < 0 || layer >= hp->n_layer_moe || expert < 0 || expert >= hp->n_expert)
        return eng_err_set(err, ENG_EINVAL,
                           "expert store: expert %d of MoE layer %d out of range", expert, layer);
    const eng_layer *l = &m->layers[m->moe_layer[layer]];
    memset(out, 0, sizeof *out);
    out->layer = layer;
    out->expert = expert;
    const eng_tref t[ENG_SLICE_MAX] = {l->gate_exps,   l->up_exps,   l->down_exps,
                                       l->gate_exps_b, l->up_exps_b, l->down_exps_b};
    for (int i = 0; i < ENG_SLICE_MAX && t[i]; i++) {
        locate_mat(t[i], expert, &out->mat[i]);
        out->bytes += (uint64_t)out->mat[i].n_out * out->mat[i].row_bytes;
        out->n_slices = i + 1;
    }
    return ENG_OK;
}

void eng_store_init(eng_store *s, const eng_store_ops *ops, const eng_model *m, void *impl)
{
    memset(s, 0, sizeof *s);
    s->ops = ops;
    s->m = m;
    s->impl = impl;
    s->max_held = ops->max_held;
}

void eng_store_free(eng_store *s)
{
    if (!s)
        return;
    if (s->ops->destroy)
        s->ops->destroy(s);
    free(s);
}

const char *eng_store_kind(const eng_store *s)
{
    return s->ops->kind;
}

void eng_store_set_hooks(eng_store *s, const eng_hooks *hooks)
{
    memset(&s->hooks, 0, sizeof s->hooks);
    if (hooks)
        s->hooks = *hooks;
    s->has_cache_hook = hooks && hooks->cache;
}

void eng_store_prepare(eng_store *s, int layer, const int32_t *ids, int n, int64_t pos)
{
    if (s->ops->prepare)
        s->ops->prepare(s, layer, ids, n, pos);
}

void eng_store_prepare_w(eng_store *s, int layer, const int32_t *ids, const float *w, int n,
                         int64_t pos)
{
    if (s->ops->prepare_w)
        s->ops->prepare_w(s, layer, ids, w, n, pos);
    else
        eng_store_prepare(s, layer, ids, n, pos);
}

int eng_store_acquire(eng_store *s, int layer, int expert, int64_t pos,
                      eng_expert_weights *out, eng_err *err)
{
    int rc = s->ops->acquire(s, layer, expert, pos, out, err);
    if (rc)
        return rc;
    s->stats.acquires++;
    if (!out->miss)
        s->stats.hits++;
    if (s->has_cache_hook && !out->miss) {
        eng_cache_event ev = {.kind = ENG_CACHE_HIT, .layer = layer, .expert = expert,
                              .pos = pos, .low = out->low};
        s->hooks.cache(s->hooks.user, &ev);
    }
    return ENG_OK;
}

void eng_store_release(eng_store *s, eng_expert_weights *w)
{
    if (s->ops->release)
        s->ops->release(s, w);
    w->slot = NULL;
}

int eng_store_max_held(const eng_store *s)
{
    return s->max_held > 0 ? s->max_held : INT_MAX;
}

int eng_store_hint_ahead(const eng_store *s, bool *wrap)
{
    bool w = false;
    int n = s->ops->hint_ahead ? s->ops->hint_ahead(s, &w) : 0;
    if (wrap)
        *wrap = n > 0 && w;
    return n;
}

bool eng_store_hint(eng_store *s, int layer, const int32_t *ids, const float *w, int n,
                    int64_t pos)
{
    return s->ops->hint ? s->ops->hint(s, layer, ids, w, n, pos) : false;
}

void eng_store_get_stats(const eng_store *s, eng_store_stats *out)
{
    *out = s->stats;
}

void eng_store_reset_stats(eng_store *s)
{
    memset(&s->stats, 0, sizeof s->stats);
}

/* ---- the memory store --------------------------------------------------- */

static int mem_acquire(eng_store *s, int layer, int expert, int64_t pos, eng_expert_weights *out,
                       eng_err *err)
{
    (void)pos;
    return eng_expert_locate(s->m, layer, expert, out, err);
}

static const eng_store_ops memory_ops = {
    .kind = "memory",
    .acquire = mem_acquire,
};

int eng_store_open_memory(eng_store **out, const eng_model *m, eng_err *err)
{
    *out = NULL;
    eng_store *s = malloc(sizeof *s);
    if (!s)
        return eng_err_set(err, ENG_ENOMEM, "expert store: out of memory");
    eng_store_init(s, &memory_ops, m, NULL);
    *out = s;
    return ENG_OK;
}
