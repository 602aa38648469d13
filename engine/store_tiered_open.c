/*
 * store_tiered_open.c — opening the tiered store: checking the options,
 * sizing the slots, opening the slow tier's files (probing O_DIRECT),
 * building the oracle policies' futures, the policies and the loader
 * threads (store_tiered_impl.h; design notes in store_tiered.c).
 */
#include "engine/predict.h"
#include "engine/store_tiered_impl.h"

#include "engine/lowprec.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- open ---------------------------------------------------------------- */

/* The policy the options name: an ops table given directly, else a built-in. */
static const eng_policy_ops *policy_ops_of(const eng_tiered_opts *o)
{
    return o->policy_ops ? o->policy_ops : eng_policy_find(o->policy ? o->policy : "");
}

/* predict: a predictor of the model's shape (its MoE layers, experts). */
static int check_predictor(const eng_hparams *hp, const eng_tiered_opts *o, eng_err *err)
{
    if (o->prefetch != ENG_PREFETCH_PREDICT)
        return ENG_OK;
    if (!o->predictor)
        return eng_err_set(err, ENG_EINVAL, "tiered store: the predict prefetcher needs a "
                                            "predictor (predict.h)");
    eng_predictor_info pi = eng_predictor_get_info(o->predictor);
    if (pi.n_layer != hp->n_layer_moe || pi.n_expert != hp->n_expert ||
        pi.layer_offset != hp->n_layer_dense)
        return eng_err_set(err, ENG_EINVAL,
                           "tiered store: predictor of %d MoE layers from layer %d, %d experts;"
                           " the model has %" PRId64 " from layer %" PRId64 ", %" PRId64,
                           pi.n_layer, pi.layer_offset, pi.n_expert, hp->n_layer_moe,
                           hp->n_layer_dense, hp->n_expert);
    if (o->predict_n < 0 || o->predict_n > hp->n_expert || o->predict_kind < 0 ||
        o->predict_kind > ENG_PREDICT_FREQUENCY)
        return eng_err_set(err, ENG_EINVAL, "tiered store: predict %d experts of kind %d "
                           "(0..%" PRId64 ", a eng_predict_kind)", o->predict_n,
                           o->predict_kind, hp->n_expert);
    return ENG_OK;
}

/* The mixed-precision options. */
static int check_lp_opts(const eng_tiered_opts *o, const eng_policy_ops *ops, eng_err *err)
{
    if (!o->lowprec && (o->lp_threshold != 0 || o->lp_last || o->lp_always))
        return eng_err_set(err, ENG_EINVAL,
                           "tiered store: a low-precision rule needs a companion (lowprec)");
    if (o->lowprec && ops->admit && o->cache_experts == 0)
        return eng_err_set(err, ENG_EINVAL,
                           "tiered store: policy '%s' admits a fixed set of experts; with a "
                           "low-precision companion give its size in experts, not bytes",
                           ops->name);
    if (!(o->lp_threshold >= 0 && o->lp_threshold < 1e30))
        return eng_err_set(err, ENG_EINVAL, "tiered store: low-precision threshold %g (>= 0)",
                           o->lp_threshold);
    return ENG_OK;
}

static int check_opts(const eng_model *m, const eng_tiered_opts *o, eng_err *err)
{
    const eng_hparams *hp = eng_model_hparams(m);
    const eng_policy_ops *ops = policy_ops_of(o);
    int rc;
    if (hp->n_expert == 0)
        return eng_err_set(err, ENG_EINVAL, "tiered store: %s is a dense model (no experts)",
                           eng_model_path(m));
    if (!ops)
        return eng_err_set(err, ENG_EINVAL, "tiered store: unknown policy '%s'",
                           o->policy ? o->policy : "");
    if ((ops->flags & ENG_POLICY_NEEDS_FUTURE) && !o->plan)
        return eng_err_set(err, ENG_EINVAL,
                           "tiered store: policy '%s' needs the routing of the input (a trace)",
                           ops->name);
    if ((ops->flags & ENG_POLICY_NEEDS_PROFILE) && !o->profile)
        return eng_err_set(err, ENG_EINVAL,
                           "tiered store: policy '%s' needs a profile (access counts)",
                           ops->name);
    if (o->prefetch == ENG_PREFETCH_ORACLE && !o->plan)
        return eng_err_set(err, ENG_EINVAL,
                           "tiered store: the oracle prefetcher needs the routing of the input");
    if (o->plan && (o->plan->n_layer != hp->n_layer_moe || o->plan->top_k != hp->n_expert_used ||
                    o->plan->n_tokens < 0 || (o->plan->n_tokens > 0 && !o->plan->experts)))
        return eng_err_set(err, ENG_EINVAL,
                           "tiered store: routing plan has %d layers, top-k %d; the model %" PRId64
                           " layers, top-k %" PRId64,
                           o->plan->n_layer, o->plan->top_k, hp->n_layer_moe, hp->n_expert_used);
    if (o->plan)
        for (int64_t i = 0; i < o->plan->n_tokens * o->plan->n_layer * o->plan->top_k; i++)
            if (o->plan->experts[i] < 0 || o->plan->experts[i] >= hp->n_expert)
                return eng_err_set(err, ENG_EINVAL,
                                   "tiered store: routing plan entry %" PRId64
                                   ": expert %d out of range",
                                   i, o->plan->experts[i]);
    if (o->tier == ENG_TIER_LINK && !(o->link_gbps > 0 && o->link_gbps < 1e6 &&
                                      o->link_latency_us >= 0 && o->link_latency_us < 1e7))
        return eng_err_set(err, ENG_EINVAL,
                           "tiered store: link %.3g GB/s, %.3g us: need 0 < GB/s and 0 <= us",
                           o->link_gbps, o->link_latency_us);
    if (o->warm && (ops->flags & ENG_POLICY_NEEDS_FUTURE))
        return eng_err_set(err, ENG_EINVAL,
                           "tiered store: a warm start is not supported with policy '%s'",
                           ops->name);
    if (o->link_mode != ENG_LINK_COPY && o->link_mode != ENG_LINK_MAP)
        return eng_err_set(err, ENG_EINVAL, "tiered store: link mode %d (copy or map)",
                           (int)o->link_mode);
    if ((rc = check_predictor(hp, o, err)))
        return rc;
    if (o->pregate_ahead < 0 || o->pregate_ahead > 64)
        return eng_err_set(err, ENG_EINVAL, "tiered store: pregate ahead %d layers (1..64)",
                           o->pregate_ahead);
    if (!(o->pregate_adaptive >= 0 && o->pregate_adaptive <= 1))
        return eng_err_set(err, ENG_EINVAL, "tiered store: pregate confidence %g (0..1)",
                           o->pregate_adaptive);
    if (o->n_loaders < 0 || o->n_loaders > 64)
        return eng_err_set(err, ENG_EINVAL, "tiered store: %d loader threads (1..64)",
                           o->n_loaders);
    return check_lp_opts(o, ops, err);
}

/* region[i] := at least slice i of w plus O_DIRECT slack (aligned). */
static void grow_regions(uint64_t region[ENG_SLICE_MAX], const eng_expert_weights *w)
{
    for (int i = 0; i < w->n_slices; i++) {
        uint64_t r = ((uint64_t)w->mat[i].n_out * w->mat[i].row_bytes + 2 * ALIGN) &
                     ~(uint64_t)(ALIGN - 1);
        if (r > region[i])
            region[i] = r;
    }
}

/* The low copies' slot regions, and the smallest and largest copy's
 * bytes. */
static int plan_lowprec(tiered *t, uint64_t *lp_min, uint64_t *lp_max, eng_err *err)
{
    *lp_min = UINT64_MAX;
    *lp_max = 0;
    for (int l = 0; t->o.lowprec && l < t->L; l++) {
        eng_expert_weights w;
        int rc = eng_lowprec_locate(t->o.lowprec, l, 0, &w, err);
        if (rc)
            return rc;
        grow_regions(t->lp_region, &w);
        if (w.bytes < *lp_min)
            *lp_min = w.bytes;
        if (w.bytes > *lp_max)
            *lp_max = w.bytes;
    }
    return ENG_OK;
}

/* Slot geometry and count from the options. */
static int plan_slots(tiered *t, eng_err *err)
{
    for (int l = 0; l < t->L; l++) {
        eng_expert_weights w;
        int rc = eng_expert_locate(t->m, l, 0, &w, err);
        if (rc)
            return rc;
        grow_regions(t->region, &w);
        t->n_slices = w.n_slices;
        if (w.bytes > t->xbytes)
            t->xbytes = w.bytes;
    }
    t->n_pools = t->o.scope == ENG_SCOPE_LAYER ? t->L : 1;
    uint64_t per = t->o.cache_experts, lp_min = 0, lp_max = 0;
    int rc = plan_lowprec(t, &lp_min, &lp_max, err);
    if (rc)
        return rc;
    if (per == 0 && t->o.lowprec) {
        /* a budget in bytes: as many slots as the smallest copies fill; it
         * must hold the largest copy of either precision */
        t->lp_budget = t->o.cache_bytes / (uint64_t)t->n_pools;
        if (lp_max > t->xbytes)
            t->xbytes = lp_max;
        per = t->lp_budget < t->xbytes ? 0 : t->lp_budget / lp_min;
    } else if (per == 0) {
        per = t->o.cache_bytes / t->xbytes / (uint64_t)t->n_pools;
    }
    if (per == 0)
        return eng_err_set(err, ENG_EINVAL,
                           "tiered store: a budget of %" PRIu64 " bytes holds no expert of %" PRIu64
                           " bytes%s",
                           t->o.cache_bytes, t->xbytes,
                           t->n_pools > 1 ? " per layer" : "");
    uint64_t all = (uint64_t)t->L * (uint64_t)t->E;
    if (per > all / (uint64_t)t->n_pools)
        per = all / (uint64_t)t->n_pools; /* more slots than experts is pointless */
    t->per_pool = (int)per;
    t->n_slots = t->per_pool * t->n_pools;
    return ENG_OK;
}

/* Link tier: the experts must be in RAM, or a "link" copy would page them
 * in from disk. Touch every page of the expert tensors once (they then sit
 * in the page cache, as long as memory allows). */
static void prefault_experts(tiered *t)
{
    const eng_hparams *hp = eng_model_hparams(t->m);
    volatile unsigned char sink = 0;
    for (int l = 0; l < t->L; l++) {
        eng_expert_weights w;
        eng_err e;
        if (eng_expert_locate(t->m, l, 0, &w, &e))
            return;
        for (int i = 0; i < w.n_slices; i++) {
            const unsigned char *p = w.mat[i].data;
            uint64_t n = (uint64_t)w.mat[i].n_out * w.mat[i].row_bytes * (uint64_t)hp->n_expert;
            for (uint64_t off = 0; off < n; off += ALIGN)
                sink = (unsigned char)(sink + p[off]);
        }
    }
    (void)sink;
}

static int open_files(tiered *t, eng_err *err)
{
    const char *path = tiered_file_name(t);
    t->fd_direct = t->fd_buf = -1;
    if (t->o.tier == ENG_TIER_LINK) {
        t->io_mode = t->o.link_mode == ENG_LINK_MAP ? "link-map" : "link";
        prefault_experts(t);
        return ENG_OK;
    }
    t->fd_buf = open(path, O_RDONLY | O_CLOEXEC);
    if (t->fd_buf < 0)
        return eng_err_set(err, ENG_EIO, "%s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(t->fd_buf, &st) != 0)
        return eng_err_set(err, ENG_EIO, "%s: %s", path, strerror(errno));
    for (int l = 0; l < t->L; l++) {
        eng_expert_weights w;
        int rc = eng_expert_locate(t->m, l, t->E - 1, &w, err);
        if (rc)
            return rc;
        for (int i = 0; i < w.n_slices; i++)
            if (w.mat[i].file_offset + (uint64_t)w.mat[i].n_out * w.mat[i].row_bytes >
                (uint64_t)st.st_size)
                return eng_err_set(err, ENG_EIO,
                                   "%s: %" PRId64 " bytes, too short for the experts of layer %d",
                                   path, (int64_t)st.st_size, l);
    }
    t->io_mode = "buffered+fadvise";
    if (t->o.no_direct)
        return ENG_OK;
    t->fd_direct = open(path, O_RDONLY | O_CLOEXEC | O_DIRECT);
    if (t->fd_direct < 0)
        return ENG_OK; /* refused (tmpfs, ...): buffered */
    /* probe: one aligned read of the first expert's gate slice */
    eng_expert_weights w;
    (void)eng_expert_locate(t->m, 0, 0, &w, err);
    unsigned char *b = t->slots[t->n_slots].buf;
    uint64_t a0 = w.mat[ENG_SLICE_GATE].file_offset & ~(uint64_t)(ALIGN - 1);
    if (pread(t->fd_direct, b, ALIGN, (off_t)a0) < 0) {
        close(t->fd_direct);
        t->fd_direct = -1;
        return ENG_OK;
    }
    t->io_mode = "o_direct";
    return ENG_OK;
}

/* The companion's file for the file tier (same I/O mode as the model's:
 * a late O_DIRECT refusal falls back to buffered reads, as for the model);
 * the link tier reads its mapping, prefaulted. */
static int open_lowprec(tiered *t, eng_err *err)
{
    t->fdl_direct = t->fdl_buf = -1;
    if (!t->o.lowprec)
        return ENG_OK;
    const char *path = eng_lowprec_path(t->o.lowprec);
    if (t->o.tier == ENG_TIER_LINK) {
        volatile unsigned char sink = 0;
        for (int l = 0; l < t->L; l++)
            for (int e = 0; e < t->E; e++) {
                eng_expert_weights w;
                if (eng_lowprec_locate(t->o.lowprec, l, e, &w, err))
                    return err->code;
                for (int i = 0; i < w.n_slices; i++)
                    for (uint64_t off = 0; off < w.mat[i].n_out * w.mat[i].row_bytes; off += ALIGN)
                        sink = (unsigned char)(sink + ((const unsigned char *)w.mat[i].data)[off]);
            }
        (void)sink;
        return ENG_OK;
    }
    t->fdl_buf = open(path, O_RDONLY | O_CLOEXEC);
    if (t->fdl_buf < 0)
        return eng_err_set(err, ENG_EIO, "%s: %s", path, strerror(errno));
    if (t->fd_direct >= 0)
        t->fdl_direct = open(path, O_RDONLY | O_CLOEXEC | O_DIRECT);
    return ENG_OK;
}

/* Futures of the oracle policies from the plan, one per pool. */
static int build_futures(tiered *t, eng_err *err)
{
    const eng_routing_plan *pl = t->o.plan;
    const int64_t T = pl->n_tokens, k = pl->top_k;
    t->fut = calloc((size_t)t->n_pools, sizeof *t->fut);
    t->fkeys = calloc((size_t)t->n_pools, sizeof *t->fkeys);
    t->ftok = calloc((size_t)t->n_pools, sizeof *t->ftok);
    if (!t->fut || !t->fkeys || !t->ftok)
        return eng_err_set(err, ENG_ENOMEM, "tiered store: out of memory");
    const int64_t per_tok = t->n_pools > 1 ? k : (int64_t)t->L * k;
    for (int p = 0; p < t->n_pools; p++) {
        t->fkeys[p] = malloc((size_t)(T * per_tok + 1) * sizeof **t->fkeys);
        t->ftok[p] = malloc((size_t)(T + 1) * sizeof **t->ftok);
        if (!t->fkeys[p] || !t->ftok[p])
            return eng_err_set(err, ENG_ENOMEM, "tiered store: out of memory for the future");
        int64_t n = 0;
        for (int64_t tok = 0; tok < T; tok++) {
            t->ftok[p][tok] = n;
            for (int l = 0; l < t->L; l++) {
                if (t->n_pools > 1 && l != p)
                    continue;
                for (int64_t j = 0; j < k; j++) {
                    int32_t e = pl->experts[(tok * t->L + l) * k + j];
                    t->fkeys[p][n++] = t->n_pools > 1 ? (uint32_t)e : (uint32_t)(l * t->E + e);
                }
            }
        }
        t->ftok[p][T] = n;
        t->fut[p] = (eng_policy_future){.keys = t->fkeys[p], .n_access = n,
                                        .token_start = t->ftok[p], .n_tokens = T};
    }
    return ENG_OK;
}

static int open_policies(tiered *t, eng_err *err)
{
    t->pol = calloc((size_t)t->n_pools, sizeof *t->pol);
    if (!t->pol)
        return eng_err_set(err, ENG_ENOMEM, "tiered store: out of memory");
    const eng_policy_ops *ops = policy_ops_of(&t->o);
    int rc;
    if ((ops->flags & ENG_POLICY_NEEDS_FUTURE) && (rc = build_futures(t, err)))
        return rc;
    eng_policy_config cfg = {.capacity = (uint32_t)t->per_pool,
                             .n_keys = (uint32_t)(t->n_pools > 1 ? t->E : t->L * t->E),
                             .seed = t->o.seed, .lookahead = t->o.lookahead,
                             .user = t->o.policy_user,
                             .keys_per_layer = t->n_pools > 1 ? 0 : (uint32_t)t->E};
    memcpy(cfg.hobbit_w, t->o.hobbit_w, sizeof cfg.hobbit_w);
    for (int p = 0; p < t->n_pools; p++) {
        /* per-layer pools see their layer's counts, a global pool all */
        cfg.profile = t->o.profile ? t->o.profile + (t->n_pools > 1 ? (size_t)p * t->E : 0)
                                   : NULL;
        if ((rc = eng_policy_open_ops(&t->pol[p], ops, &cfg, err)))
            return rc;
        if ((rc = eng_policy_reset(t->pol[p], t->fut ? &t->fut[p] : NULL, err)))
            return rc;
    }
    return ENG_OK;
}

static int alloc_tables(tiered *t, eng_err *err)
{
    const size_t ns = (size_t)t->n_slots + 1;
    t->n_pinned = calloc((size_t)t->n_pools, sizeof *t->n_pinned);
    t->apos = calloc((size_t)t->n_pools, sizeof *t->apos);
    t->slot_of = malloc((size_t)t->L * (size_t)t->E * sizeof *t->slot_of);
    t->slots = calloc(ns, sizeof *t->slots);
    t->q = calloc(ns, sizeof *t->q);
    t->lc = calloc((size_t)t->L, sizeof *t->lc);
    t->round_cap = (t->L + 1) * t->E; /* a batch's experts + every layer's hint */
    t->round = malloc((size_t)t->round_cap * sizeof *t->round);
    t->held = calloc((size_t)t->n_pools, sizeof *t->held);
    t->prep_ids = calloc((size_t)t->E, sizeof *t->prep_ids);
    t->prep_w = calloc((size_t)t->E, sizeof *t->prep_w);
    if (!t->n_pinned || !t->apos || !t->slot_of || !t->slots || !t->q || !t->lc || !t->round ||
        !t->held || !t->prep_ids || !t->prep_w)
        return eng_err_set(err, ENG_ENOMEM, "tiered store: out of memory");
    if (t->o.prefetch == ENG_PREFETCH_PREDICT) {
        const size_t LE = (size_t)t->L * (size_t)t->E;
        t->last_ids = malloc(LE * sizeof *t->last_ids);
        t->pred_ids = malloc(LE * sizeof *t->pred_ids);
        t->last_n = calloc((size_t)t->L, sizeof *t->last_n);
        t->pred_n = calloc((size_t)t->L, sizeof *t->pred_n);
        t->pred_score = malloc((size_t)t->E * sizeof *t->pred_score);
        if (!t->last_ids || !t->pred_ids || !t->last_n || !t->pred_n || !t->pred_score)
            return eng_err_set(err, ENG_ENOMEM, "tiered store: out of memory");
    }
    for (int i = 0; i < t->L * t->E; i++)
        t->slot_of[i] = -1;
    uint64_t bytes = 0;
    for (int i = 0; i < t->n_slices; i++)
        bytes += t->region[i];
    const bool map = t->o.tier == ENG_TIER_LINK && t->o.link_mode == ENG_LINK_MAP;
    for (size_t i = 0; i < ns; i++) {
        t->slots[i].key = -1;
        if (map)
            continue; /* slots refer to the mapping: the budget is counted, not allocated */
        if (t->o.lowprec && i < (size_t)t->n_slots)
            continue; /* the loader sizes each to the copy it loads */
        /* a slot of a huge page or more starts on one and asks for them:
         * decode streams a cached expert once per use, and 2 MiB pages
         * spare it most TLB misses (as eng_model_opts.in_ram does) */
        const bool huge = bytes >= HUGE_PAGE;
        if (posix_memalign((void **)&t->slots[i].buf, huge ? HUGE_PAGE : ALIGN, bytes) != 0) {
            t->slots[i].buf = NULL;
            return eng_err_set(err, ENG_ENOMEM,
                               "tiered store: out of memory for %zu slots of %" PRIu64 " bytes",
                               ns, bytes);
        }
        if (huge) /* a hint: without THP the slot keeps 4 KiB pages */
            (void)madvise(t->slots[i].buf, bytes / HUGE_PAGE * HUGE_PAGE, MADV_HUGEPAGE);
        t->slots[i].buf_cap = bytes;
    }
    return ENG_OK;
}

static int start_loaders(tiered *t, eng_err *err)
{
    int n = t->o.n_loaders > 0 ? t->o.n_loaders : 1;
    t->thr = calloc((size_t)n, sizeof *t->thr);
    if (!t->thr)
        return eng_err_set(err, ENG_ENOMEM, "tiered store: out of memory");
    for (; t->n_thr < n; t->n_thr++)
        if (pthread_create(&t->thr[t->n_thr], NULL, tiered_loader_main, t) != 0)
            return eng_err_set(err, ENG_ENOMEM, "tiered store: cannot start loader thread");
    return ENG_OK;
}

int eng_store_open_tiered(eng_store **out, const eng_model *m, const eng_tiered_opts *o,
                          eng_err *err)
{
    *out = NULL;
    int rc = check_opts(m, o, err);
    if (rc)
        return rc;
    eng_store *s = calloc(1, sizeof *s);
    tiered *t = calloc(1, sizeof *t);
    if (!s || !t) {
        free(s);
        free(t);
        return eng_err_set(err, ENG_ENOMEM, "tiered store: out of memory");
    }
    eng_store_init(s, &eng_tiered_store_ops, m, t);
    t->s = s;
    t->m = m;
    t->o = *o;
    t->L = (int)eng_model_hparams(m)->n_layer_moe;
    t->E = (int)eng_model_hparams(m)->n_expert;
    t->fd_direct = t->fd_buf = t->fdl_direct = t->fdl_buf = -1;
    pthread_mutex_init(&t->mu, NULL);
    pthread_cond_init(&t->cv, NULL);
    pthread_cond_init(&t->qcv, NULL);
    if ((rc = plan_slots(t, err)) || (rc = alloc_tables(t, err)) ||
        (rc = open_files(t, err)) || (rc = open_lowprec(t, err)) ||
        (rc = open_policies(t, err)) ||
        (rc = start_loaders(t, err))) {
        eng_store_free(s);
        return rc;
    }
    const int pool_keys = t->n_pools > 1 ? t->E : t->L * t->E;
    if (t->per_pool >= pool_keys && !policy_ops_of(o)->admit && !o->lowprec)
        s->max_held = (int)eng_model_hparams(m)->n_expert_used; /* no eviction ever */
    *out = s;
    return ENG_OK;
}
