/*
 * store_tiered.c — the tiered expert store (store_tiered.h): slots,
 * policies, prefetch, the store's operations and statistics. Reads and
 * loader threads are in store_tiered_io.c, opening in store_tiered_open.c,
 * the shared state in store_tiered_impl.h.
 *
 * Design notes.
 *  - Slots. The fast tier is n_slots buffers, each big enough for the
 *    largest expert plus alignment slack for O_DIRECT. Pool p (one pool in
 *    global scope, one per layer in layer scope) owns slots
 *    [p * per_pool, (p + 1) * per_pool) and has one eng_policy of capacity
 *    per_pool; slot_of[layer * E + expert] maps a resident expert to its
 *    slot. The policy decides what is resident; the slot table mirrors it.
 *    One extra scratch slot serves misses the policy does not admit.
 *  - Pins. A slot is pinned in its policy while it is loading or acquired,
 *    so no victim is ever a buffer in use. The store serves one expert at a
 *    time (max_held = 1) so demand accesses see no pins of their own; only
 *    in-flight prefetches are pinned, and when every slot is pinned the
 *    demand waits for a load to finish (loads always finish). Exception:
 *    when every pool holds all its keys and the policy admits every key,
 *    nothing is ever evicted, so pins cannot change a decision: the store
 *    then serves a whole layer at once (max_held = top-k), and the forward
 *    pass computes the layer's experts in one dispatch as with the memory
 *    store (no per-expert pool dispatches).
 *  - Locking. One mutex guards slots, policies and counters. The forward
 *    thread runs the policy protocol under it; loader threads take a slot
 *    index from the queue (demand loads go first, and a queued prefetch
 *    that a demand waits for moves to the front), read without the lock
 *    (the slot is LOADING and pinned: nobody else touches its buffer), then
 *    mark it READY or FAILED and broadcast.
 *  - Errors. A failed load leaves the slot FAILED with the message; the
 *    acquire that needs it returns the error and the slot is dropped. Never
 *    wrong bytes: a short read (file truncated) is ENG_EIO.
 *  - File tier: O_DIRECT when the file system accepts it (probed at open by
 *    one aligned read), reading the aligned superset of each slice and
 *    pointing inside it; else buffered pread + POSIX_FADV_DONTNEED so the
 *    page cache does not turn misses into memory copies.
 *  - Mixed precision (o.lowprec). A slot holds one copy of an expert, high
 *    (the model's bytes) or low (the companion's), marked sl->low; the
 *    policy still sees one key per expert. The decision is made per load
 *    (want_low): a demand miss from the prepared layer's gate weights and
 *    ranks, a prefetch from lp_always only. A resident low copy serves a
 *    low need; a high need drops it first (an eviction and lp_upgrade) and
 *    misses, so the forward pass always computes with the precision the
 *    rule asked for or a higher one. With a budget in bytes, each pool may
 *    hold up to lp_budget bytes of copies (held[p]): take_slot evicts until
 *    the new copy fits, and there are as many slots as low copies fit;
 *    slot buffers are then allocated by the loader at the size of the copy
 *    loaded (buf_cap), so memory follows the bytes held. The store serves
 *    one expert at a time (never top-k at once), so a dropped low copy is
 *    never in use.
 */
#include "engine/predict.h"
#include "engine/store_tiered_impl.h"

#include "engine/lowprec.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

eng_tiered_opts eng_tiered_defaults(void)
{
    return (eng_tiered_opts){.policy = "lru", .scope = ENG_SCOPE_GLOBAL, .tier = ENG_TIER_FILE,
                             .link_gbps = 25.0, .link_latency_us = 10.0, .seed = 1,
                             .lookahead = 1, .n_loaders = 1};
}

static int pool_of(const tiered *t, int layer) { return t->o.scope == ENG_SCOPE_LAYER ? layer : 0; }

static uint32_t pkey_of(const tiered *t, int32_t key)
{
    return t->o.scope == ENG_SCOPE_LAYER ? (uint32_t)(key % t->E) : (uint32_t)key;
}

static void cache_event_low(tiered *t, eng_cache_event_kind kind, int32_t key, int64_t pos,
                            uint64_t bytes, uint64_t ns, bool low)
{
    if (!t->s->has_cache_hook)
        return;
    eng_cache_event ev = {.kind = kind, .layer = key / t->E, .expert = key % t->E, .pos = pos,
                          .bytes = bytes, .ns = ns, .low = low};
    t->s->hooks.cache(t->s->hooks.user, &ev);
}

static void cache_event(tiered *t, eng_cache_event_kind kind, int32_t key, int64_t pos,
                        uint64_t bytes, uint64_t ns)
{
    cache_event_low(t, kind, key, pos, bytes, ns, false);
}

/* Keeps the policy pin equal to "loading or in use". Lock held. */
void tiered_slot_sync_pin(tiered *t, int si)
{
    if (si >= t->n_slots)
        return; /* scratch */
    slot *sl = &t->slots[si];
    bool want = sl->key >= 0 && (sl->state == SLOT_LOADING || sl->users > 0 || sl->guard);
    if (want == sl->pinned)
        return;
    int p = si / t->per_pool;
    uint32_t pk = pkey_of(t, sl->key);
    if (want) {
        eng_err e;
        if (eng_policy_pin(t->pol[p], pk, &e) == ENG_OK) {
            sl->pinned = true;
            t->n_pinned[p]++;
        }
    } else {
        eng_policy_unpin(t->pol[p], pk);
        sl->pinned = false;
        t->n_pinned[p]--;
    }
}

/* ---- slots and policies -------------------------------------------------- */

/* Drops a slot's expert from the cache (policy and table). Lock held. */
static int drop_slot(tiered *t, int si, int64_t pos, eng_err *err)
{
    slot *sl = &t->slots[si];
    int p = si / t->per_pool;
    if (sl->pinned) {
        sl->users = 0;
        sl->state = SLOT_EMPTY;
        tiered_slot_sync_pin(t, si);
    }
    int rc = eng_policy_evict(t->pol[p], pkey_of(t, sl->key), err);
    eng_tiered_counts *c = &t->lc[sl->key / t->E];
    c->evictions++;
    if (sl->prefetched)
        c->pf_wasted++;
    if (sl->done_pending)
        cache_event_low(t, ENG_CACHE_LOAD_DONE, sl->key, pos, sl->low ? sl->bytes : t->xbytes,
                        sl->load_ns, sl->low);
    cache_event(t, ENG_CACHE_EVICT, sl->key, pos, 0, 0);
    t->held[p] -= sl->bytes;
    sl->bytes = 0;
    sl->low = false;
    t->slot_of[sl->key] = -1;
    memset(&sl->err, 0, sizeof sl->err);
    sl->key = -1;
    sl->state = SLOT_EMPTY;
    sl->prefetched = sl->done_pending = false;
    return rc;
}

/* A slot of pool p for a new copy of `need` bytes, evicting until a slot
 * is free (and, with lp_budget, the bytes fit). wait: block for in-flight
 * loads when every cached expert is pinned; else return -1 then. */
static int take_slot(tiered *t, int p, uint64_t need, int64_t pos, bool wait, eng_err *err,
                     int *rc)
{
    *rc = ENG_OK;
    for (;;) {
        const uint32_t cached = eng_policy_cached_count(t->pol[p]);
        const bool fits = !t->lp_budget || t->held[p] + need <= t->lp_budget;
        if (fits && cached < (uint32_t)t->per_pool) {
            for (int i = p * t->per_pool; i < (p + 1) * t->per_pool; i++)
                if (t->slots[i].key < 0)
                    return i;
            *rc = eng_err_set(err, ENG_ESTATE, "tiered store: slot table out of step");
            return -1;
        }
        if ((uint32_t)t->n_pinned[p] < cached) {
            uint32_t vk;
            if ((*rc = eng_policy_victim(t->pol[p], &vk, err)))
                return -1;
            int32_t key = t->o.scope == ENG_SCOPE_LAYER ? p * t->E + (int32_t)vk : (int32_t)vk;
            int si = t->slot_of[key];
            if (si < 0) {
                *rc = eng_err_set(err, ENG_ESTATE, "tiered store: victim %u has no slot", vk);
                return -1;
            }
            if ((*rc = drop_slot(t, si, pos, err)))
                return -1;
            continue; /* the freed slot, once the bytes fit */
        }
        if (!wait)
            return -1;
        bool loading = false;
        for (int i = p * t->per_pool; i < (p + 1) * t->per_pool; i++)
            loading |= t->slots[i].state == SLOT_LOADING;
        if (!loading) {
            *rc = eng_err_set(err, ENG_ESTATE,
                              "tiered store: all %d slots are in use; the cache is too small "
                              "for how many experts the caller holds",
                              t->per_pool);
            return -1;
        }
        pthread_cond_wait(&t->cv, &t->mu);
    }
}

/* Bytes of key's copy, high or low. */
static uint64_t copy_bytes(const tiered *t, int32_t key, bool low)
{
    return low ? eng_lowprec_expert_bytes(t->o.lowprec, key / t->E)
               : eng_model_expert_bytes(t->m, key / t->E);
}

/* Starts loading key's copy (low: the companion's) into slot si. Lock
 * held. */
static void start_load(tiered *t, int si, int32_t key, bool prefetch, bool front, bool low)
{
    slot *sl = &t->slots[si];
    sl->key = key;
    sl->state = SLOT_LOADING;
    sl->prefetched = prefetch;
    sl->done_pending = false;
    sl->low = low;
    eng_tiered_counts *c = &t->lc[key / t->E];
    uint64_t bytes = copy_bytes(t, key, low);
    if (si < t->n_slots) {
        t->slot_of[key] = si;
        sl->bytes = bytes;
        t->held[si / t->per_pool] += bytes;
    }
    tiered_slot_sync_pin(t, si);
    if (low) {
        c->lp_loads++;
        c->lp_bytes += bytes;
    }
    if (prefetch) {
        c->pf_issued++;
        c->bytes_prefetch += bytes;
    } else {
        c->bytes_demand += bytes;
    }
    t->s->stats.bytes_loaded += bytes;
    tiered_enqueue(t, si, front);
}

/* Waits until no load is in flight (sequence start, destroy). Lock held. */
static void drain(tiered *t)
{
    for (;;) {
        bool busy = t->q_len > 0;
        for (int i = 0; i <= t->n_slots; i++)
            busy |= t->slots[i].state == SLOT_LOADING;
        if (!busy)
            return;
        pthread_cond_wait(&t->cv, &t->mu);
    }
}

/* An importance profile marks key: every load of it is low. */
static bool always_low(const tiered *t, int32_t key)
{
    return t->o.lowprec && t->o.lp_always && t->o.lp_always[key];
}

/* HOBBIT's token-level rule for the expert of rank j among n with gate
 * weight w: below the threshold, or last of the top-k. */
static bool rule_low(const tiered *t, float w, int j, int n)
{
    return w < t->o.lp_threshold || (t->o.lp_last && n > 1 && j == n - 1);
}

/* Whether a demand of key takes the low copy: always_low, or the rule on
 * the prepared layer's gate weights. Lock held. */
static bool want_low(const tiered *t, int layer, int expert)
{
    if (!t->o.lowprec)
        return false;
    if (always_low(t, layer * t->E + expert))
        return true;
    if (layer != t->prep_layer || !t->prep_has_w)
        return false;
    for (int j = 0; j < t->prep_n; j++)
        if (t->prep_ids[j] == expert)
            return rule_low(t, t->prep_w[j], j, t->prep_n);
    return false;
}

/* Warm start: every free slot gets the next expert in key order (as
 * prefetches), then waits for the loads, so the sequence starts full. */
static void warm_fill(tiered *t)
{
    for (int p = 0; p < t->n_pools; p++) {
        int l0 = t->n_pools > 1 ? p : 0, l1 = t->n_pools > 1 ? p + 1 : t->L;
        for (int32_t key = l0 * t->E; key < l1 * t->E; key++) {
            if (eng_policy_cached_count(t->pol[p]) >= (uint32_t)t->per_pool)
                break;
            if (!eng_policy_admit(t->pol[p], pkey_of(t, key)))
                continue;
            eng_err e;
            const bool low = always_low(t, key);
            if (t->lp_budget && t->held[p] + copy_bytes(t, key, low) > t->lp_budget)
                break; /* full in bytes: fill, never evict */
            int rc, si = take_slot(t, p, copy_bytes(t, key, low), 0, false, &e, &rc);
            if (si < 0 || eng_policy_insert(t->pol[p], pkey_of(t, key), 0, &e))
                break;
            start_load(t, si, key, true, false, low);
        }
    }
}

/* A new sequence: empty cache, policies reset (with their futures). */
static void new_sequence(tiered *t)
{
    drain(t);
    for (int i = 0; i <= t->n_slots; i++) {
        slot *sl = &t->slots[i];
        if (sl->key >= 0 && sl->prefetched)
            t->lc[sl->key / t->E].pf_wasted++;
        sl->key = -1;
        sl->state = SLOT_EMPTY;
        sl->users = 0;
        sl->pinned = sl->guard = sl->prefetched = sl->done_pending = false;
        sl->low = false;
        sl->bytes = 0;
    }
    for (int i = 0; i < t->L * t->E; i++)
        t->slot_of[i] = -1;
    for (int l = 0; t->last_n && l < t->L; l++)
        t->last_n[l] = t->pred_n[l] = 0; /* no context, nothing pending */
    for (int p = 0; p < t->n_pools; p++) {
        eng_err e;
        int rc = eng_policy_reset(t->pol[p], t->fut ? &t->fut[p] : NULL, &e);
        ENG_ASSERT(rc == ENG_OK || eng_policy_status(t->pol[p], NULL)); /* checked at open */
        t->n_pinned[p] = 0;
        t->apos[p] = 0;
        t->held[p] = 0;
    }
    if (t->o.warm) {
        warm_fill(t);
        drain(t);
    }
}

/* ---- prefetch ------------------------------------------------------------ */

/* Starts loads of experts ids[0..n) of layer nl that are not resident;
 * w: their predicted gate weights (pregate) for the precision rule, or
 * NULL. Lock held. */
static void prefetch_ids(tiered *t, int nl, const int32_t *ids, const float *w, int n,
                         int64_t pos)
{
    int p = pool_of(t, nl);
    for (int j = 0; j < n; j++) {
        if (ids[j] < 0 || ids[j] >= t->E)
            continue;
        int32_t key = nl * t->E + ids[j];
        if (t->slot_of[key] >= 0 || !eng_policy_admit(t->pol[p], pkey_of(t, key)))
            continue;
        eng_err e;
        int rc;
        const bool low = always_low(t, key) || (t->o.lowprec && w && rule_low(t, w[j], j, n));
        int si = take_slot(t, p, copy_bytes(t, key, low), pos, false, &e, &rc);
        if (si < 0)
            return; /* everything pinned: skip, the demand will load it */
        if (eng_policy_insert(t->pol[p], pkey_of(t, key), t->apos[p], &e))
            return;
        start_load(t, si, key, true, false, low);
        t->lc[nl].pf_low += low;
        cache_event_low(t, ENG_CACHE_PREFETCH, key, pos, copy_bytes(t, key, low), 0, low);
    }
}

/* Oracle: the plan's experts of the layer after `layer` at token pos. */
static void prefetch_next(tiered *t, int layer, int64_t pos)
{
    const eng_routing_plan *pl = t->o.plan;
    int nl = layer + 1;
    int64_t tok = pos;
    if (nl == t->L) {
        nl = 0;
        tok++;
    }
    if (tok >= pl->n_tokens)
        return;
    prefetch_ids(t, nl, pl->experts + (tok * pl->n_layer + nl) * pl->top_k, NULL, pl->top_k,
                 pos);
}

static int t_hint_ahead(const eng_store *s, bool *wrap)
{
    const tiered *t = s->impl;
    if (t->o.prefetch != ENG_PREFETCH_PREGATE)
        return 0;
    *wrap = t->o.pregate_wrap;
    return t->o.pregate_ahead > 0 ? t->o.pregate_ahead : 1;
}

/* Pins (or unpins) the resident keys of the round, so that a prefetch's
 * victim is never an expert the current layer or a nearer prediction still
 * needs. Lock held. */
static void guard_round(tiered *t, bool on)
{
    for (int i = 0; i < t->round_n; i++) {
        int si = t->slot_of[t->round[i]];
        if (si < 0 || t->slots[si].guard == on)
            continue;
        t->slots[si].guard = on;
        tiered_slot_sync_pin(t, si);
    }
}

static void round_add(tiered *t, int layer, const int32_t *ids, int n)
{
    for (int j = 0; j < n && t->round_n < t->round_cap; j++)
        if (ids[j] >= 0 && ids[j] < t->E)
            t->round[t->round_n++] = layer * t->E + ids[j];
}

/* Adaptive pregate: a prediction is confident when its largest predicted
 * weight holds at least the share C of the predicted top-k's weights (a
 * router sure of its first choice); with no weights, it is. */
static bool hint_confident(const tiered *t, const float *w, int n)
{
    double sum = 0, top = 0;
    for (int j = 0; w && j < n; j++) {
        sum += w[j];
        top = w[j] > top ? w[j] : top;
    }
    return !w || !(sum > 0) || top >= t->o.pregate_adaptive * sum;
}

/* Counts the layers of this round that the forward pass will not predict
 * after an unconfident hint for `layer`: those up to pregate_ahead from
 * the prepared layer, as far as dec_pregate would go. Lock held. */
static void count_skipped(tiered *t, int layer)
{
    int ahead = t->o.pregate_ahead > 0 ? t->o.pregate_ahead : 1;
    ahead = ahead < t->L - 1 ? ahead : t->L - 1;
    const int d0 = (layer - t->prep_layer + t->L) % t->L;
    for (int d = d0 + 1; d <= ahead; d++) {
        if (t->prep_layer + d >= t->L && !t->o.pregate_wrap)
            break;
        t->lc[(t->prep_layer + d) % t->L].pg_skipped++;
    }
}

static bool t_hint(eng_store *s, int layer, const int32_t *ids, const float *w, int n,
                   int64_t pos)
{
    tiered *t = s->impl;
    if (t->o.prefetch != ENG_PREFETCH_PREGATE || layer < 0 || layer >= t->L)
        return false;
    pthread_mutex_lock(&t->mu);
    const bool adaptive = t->o.pregate_adaptive > 0;
    if (adaptive && !t->round_sure) { /* a caller that did not stop */
        pthread_mutex_unlock(&t->mu);
        return false;
    }
    guard_round(t, true);
    prefetch_ids(t, layer, ids, w, n, pos);
    guard_round(t, false);
    round_add(t, layer, ids, n);
    if (adaptive && !hint_confident(t, w, n)) {
        t->round_sure = false;
        count_skipped(t, layer);
    }
    const bool more = !adaptive || t->round_sure;
    pthread_mutex_unlock(&t->mu);
    return more;
}

/* Predict: scores the pending prediction for this unit of `layer`
 * against ids, remembers ids as the layer's last unit, then predicts the
 * next unit (layer + 1, or layer 0 of the next token) and prefetches it,
 * guarding the current layer's experts as a pregate hint does. Lock held. */
static void predict_next(tiered *t, int layer, const int32_t *ids, int n, int64_t pos)
{
    eng_tiered_counts *c = &t->lc[layer];
    const int32_t *pr = t->pred_ids + (size_t)layer * t->E;
    for (int i = 0; i < t->pred_n[layer]; i++) {
        c->pred_made++;
        for (int j = 0; j < n; j++)
            if (ids[j] == pr[i]) {
                c->pred_used++;
                break;
            }
    }
    t->pred_n[layer] = 0;
    int32_t *last = t->last_ids + (size_t)layer * t->E;
    n = n < t->E ? n : t->E;
    memcpy(last, ids, (size_t)n * sizeof *last);
    t->last_n[layer] = n;
    const int nl = layer + 1 < t->L ? layer + 1 : 0;
    const int want = t->o.predict_n > 0 ? t->o.predict_n
                                        : (int)eng_model_hparams(t->m)->n_expert_used;
    int32_t *out = t->pred_ids + (size_t)nl * t->E;
    t->pred_n[nl] = eng_predictor_predict(t->o.predictor, (eng_predict_kind)t->o.predict_kind,
                                          nl, last, n, t->last_ids + (size_t)nl * t->E,
                                          t->last_n[nl], want, out, t->pred_score);
    guard_round(t, true);
    prefetch_ids(t, nl, out, NULL, t->pred_n[nl], pos);
    guard_round(t, false);
}

/* ---- correction (ExpertFlow) ---------------------------------------------- */

/* Cancels the queued prefetch in slot si: out of the queue, the slot and
 * the policy entry freed, its counts taken back (nothing was read). Lock
 * held; the slot is LOADING, prefetched and not yet started. */
static void cancel_prefetch(tiered *t, int si, int64_t pos)
{
    slot *sl = &t->slots[si];
    const int p = si / t->per_pool;
    eng_tiered_counts *c = &t->lc[sl->key / t->E];
    sl->state = SLOT_EMPTY;
    tiered_slot_sync_pin(t, si);
    eng_err e;
    int rc = eng_policy_evict(t->pol[p], pkey_of(t, sl->key), &e);
    ENG_ASSERT(rc == ENG_OK || eng_policy_status(t->pol[p], NULL)); /* resident, unpinned */
    c->pf_cancelled++;
    c->bytes_cancelled += sl->bytes;
    c->bytes_prefetch -= sl->bytes;
    t->s->stats.bytes_loaded -= sl->bytes;
    if (sl->low) {
        c->lp_loads--;
        c->lp_bytes -= sl->bytes;
        c->pf_low--;
    }
    cache_event(t, ENG_CACHE_EVICT, sl->key, pos, 0, 0);
    t->held[p] -= sl->bytes;
    t->slot_of[sl->key] = -1;
    sl->key = -1;
    sl->bytes = 0;
    sl->low = sl->prefetched = sl->done_pending = false;
}

/* prefetch_correct: layer is prepared with experts ids[n] (its real
 * routing); its prefetches still queued that ids does not name go. Lock
 * held. */
static void correct_layer(tiered *t, int layer, const int32_t *ids, int n, int64_t pos)
{
    for (int e = 0; e < t->E; e++) {
        const int si = t->slot_of[layer * t->E + e];
        if (si < 0 || !t->slots[si].prefetched || t->slots[si].state != SLOT_LOADING ||
            t->slots[si].users > 0 || t->slots[si].guard)
            continue;
        bool used = false;
        for (int j = 0; j < n && !used; j++)
            used = ids[j] == e;
        if (!used && tiered_dequeue(t, si))
            cancel_prefetch(t, si, pos);
    }
}

/* ---- ops ----------------------------------------------------------------- */

static void t_prepare(eng_store *s, int layer, const int32_t *ids, int n, int64_t pos)
{
    tiered *t = s->impl;
    pthread_mutex_lock(&t->mu);
    if (layer == 0 && pos == 0)
        new_sequence(t);
    t->prep_layer = layer;
    t->prep_has_w = false; /* a batch's prepare: no per-token weights */
    t->prep_n = n;
    t->prep_done = 0;
    t->round_n = 0;
    t->round_sure = true;
    round_add(t, layer, ids, n);
    if (t->o.prefetch_correct && layer >= 0 && layer < t->L)
        correct_layer(t, layer, ids, n, pos);
    if (t->o.prefetch == ENG_PREFETCH_PREDICT && layer >= 0 && layer < t->L)
        predict_next(t, layer, ids, n, pos);
    pthread_mutex_unlock(&t->mu);
}

/* prepare, keeping the ids and gate weights for want_low. */
static void t_prepare_w(eng_store *s, int layer, const int32_t *ids, const float *w, int n,
                        int64_t pos)
{
    tiered *t = s->impl;
    t_prepare(s, layer, ids, n, pos);
    if (!t->o.lowprec)
        return;
    pthread_mutex_lock(&t->mu);
    t->prep_has_w = w && n <= t->E;
    for (int j = 0; t->prep_has_w && j < n; j++) {
        t->prep_ids[j] = ids[j];
        t->prep_w[j] = w[j];
    }
    pthread_mutex_unlock(&t->mu);
}

/* Blocks until slot si is not loading; stall time to the layer and to
 * *ns. Returns whether it waited. Lock held. */
static bool wait_loaded(tiered *t, int si, int layer, uint64_t *ns)
{
    slot *sl = &t->slots[si];
    *ns = 0;
    if (sl->state != SLOT_LOADING)
        return false;
    ENG_HOOK(&t->s->hooks, region_begin, ENG_REGION_EXPERT_WAIT);
    uint64_t t0 = tiered_now_ns();
    while (sl->state == SLOT_LOADING)
        pthread_cond_wait(&t->cv, &t->mu);
    uint64_t dt = tiered_now_ns() - t0;
    ENG_HOOK(&t->s->hooks, region_end, ENG_REGION_EXPERT_WAIT);
    t->lc[layer].stall_ns += dt;
    t->s->stats.wait_ns += dt;
    *ns = dt;
    return true;
}

/* The demand protocol for (layer, expert); leaves the slot acquired. */
static int demand(tiered *t, int layer, int expert, int64_t pos, eng_expert_weights *out,
                  int *si_out, eng_err *err)
{
    const int32_t key = layer * t->E + expert;
    const int p = pool_of(t, layer);
    const uint32_t pk = pkey_of(t, key);
    eng_tiered_counts *c = &t->lc[layer];
    int si = t->slot_of[key], rc;
    const bool low = want_low(t, layer, expert);
    if (si >= 0 && t->slots[si].low && !low) {
        /* the low copy cannot serve a high need: drop it, then miss. A low
         * prefetch (pregate's predicted weights) may still be on its way:
         * its buffer is the loader's until it lands */
        uint64_t waited;
        if (t->slots[si].state == SLOT_LOADING)
            tiered_promote(t, si);
        wait_loaded(t, si, layer, &waited);
        ENG_ASSERT(t->slots[si].users == 0 && t->slots[si].state != SLOT_LOADING);
        c->lp_upgrades++;
        if ((rc = drop_slot(t, si, pos, err)))
            return rc;
        si = -1;
    }
    const bool hit = si >= 0;
    bool useful = false;
    if ((rc = eng_policy_access(t->pol[p], pk, t->apos[p], hit, err)))
        return rc;
    const int64_t apos = t->apos[p]++;
    c->accesses++;
    if (hit) {
        c->hits++;
        slot *sl = &t->slots[si];
        if (sl->prefetched) {
            c->pf_useful++;
            c->pf_late += sl->state == SLOT_LOADING;
            sl->prefetched = false;
            useful = true;
        }
        if (sl->state == SLOT_LOADING)
            tiered_promote(t, si);
    } else {
        c->misses++;
        t->s->stats.misses++;
        out->miss = true;
        cache_event_low(t, ENG_CACHE_MISS, key, pos, 0, 0, low);
        if (!eng_policy_admit(t->pol[p], pk)) {
            si = t->n_slots; /* scratch: served, not cached */
            if (t->slots[si].users > 0 || t->slots[si].state == SLOT_LOADING)
                return eng_err_set(err, ENG_ESTATE, "tiered store: scratch slot busy");
        } else {
            si = take_slot(t, p, copy_bytes(t, key, low), pos, true, err, &rc);
            if (si < 0)
                return rc;
            if ((rc = eng_policy_insert(t->pol[p], pk, apos, err)))
                return rc;
        }
        start_load(t, si, key, false, true, low);
    }
    slot *sl = &t->slots[si];
    if ((rc = eng_policy_precision(t->pol[p], pk, !sl->low, err)))
        return rc;
    out->low = sl->low;
    c->lp_served += sl->low;
    sl->users++;
    tiered_slot_sync_pin(t, si);
    uint64_t waited;
    out->waited = wait_loaded(t, si, layer, &waited);
    if (useful) {
        c->pf_useful_load_ns += sl->load_ns; /* set: the slot is no longer loading */
        c->pf_late_stall_ns += waited;
    }
    *si_out = si;
    return ENG_OK;
}

static int t_acquire(eng_store *s, int layer, int expert, int64_t pos, eng_expert_weights *out,
                     eng_err *err)
{
    tiered *t = s->impl;
    int rc = eng_expert_locate(s->m, layer, expert, out, err), si = -1;
    if (rc)
        return rc;
    pthread_mutex_lock(&t->mu);
    rc = demand(t, layer, expert, pos, out, &si, err);
    if (!rc) {
        slot *sl = &t->slots[si];
        if (sl->done_pending) {
            sl->done_pending = false;
            cache_event_low(t, ENG_CACHE_LOAD_DONE, sl->key, pos,
                            sl->low ? sl->bytes : out->bytes, sl->load_ns, sl->low);
        }
        if (sl->state == SLOT_FAILED) {
            rc = eng_err_set(err, sl->err.code ? sl->err.code : ENG_EIO, "%s", sl->err.msg);
            sl->users--;
            if (si < t->n_slots)
                (void)drop_slot(t, si, pos, &(eng_err){0});
            else
                sl->state = SLOT_EMPTY;
        } else {
            if (sl->low) { /* the low copy's types and row sizes */
                eng_expert_weights lw;
                int lrc = eng_lowprec_locate(t->o.lowprec, layer, expert, &lw, err);
                ENG_ASSERT(lrc == ENG_OK); /* the same range eng_expert_locate checked */
                memcpy(out->mat, lw.mat, sizeof out->mat);
                out->bytes = lw.bytes;
            }
            for (int i = 0; i < out->n_slices; i++)
                out->mat[i].data = sl->p[i];
            out->slot = sl;
            if (t->o.prefetch == ENG_PREFETCH_ORACLE && layer == t->prep_layer &&
                ++t->prep_done == t->prep_n)
                prefetch_next(t, layer, pos);
        }
    }
    pthread_mutex_unlock(&t->mu);
    return rc;
}

static void t_release(eng_store *s, eng_expert_weights *w)
{
    tiered *t = s->impl;
    slot *sl = w->slot;
    if (!sl)
        return;
    pthread_mutex_lock(&t->mu);
    int si = (int)(sl - t->slots);
    if (sl->users > 0)
        sl->users--;
    if (si == t->n_slots && sl->users == 0) {
        sl->state = SLOT_EMPTY;
        sl->key = -1;
    }
    tiered_slot_sync_pin(t, si);
    pthread_cond_broadcast(&t->cv);
    pthread_mutex_unlock(&t->mu);
}

static void t_destroy(eng_store *s)
{
    tiered *t = s->impl;
    if (!t)
        return;
    if (t->n_thr > 0) {
        pthread_mutex_lock(&t->mu);
        drain(t);
        t->stop = true;
        pthread_cond_broadcast(&t->qcv);
        pthread_mutex_unlock(&t->mu);
        for (int i = 0; i < t->n_thr; i++)
            pthread_join(t->thr[i], NULL);
    }
    pthread_mutex_destroy(&t->mu);
    pthread_cond_destroy(&t->cv);
    pthread_cond_destroy(&t->qcv);
    for (int p = 0; t->pol && p < t->n_pools; p++) {
        eng_policy_free(t->pol[p]);
        if (t->fkeys)
            free(t->fkeys[p]);
        if (t->ftok)
            free(t->ftok[p]);
    }
    if (t->slots)
        for (int i = 0; i <= t->n_slots; i++)
            free(t->slots[i].buf);
    if (t->fd_direct >= 0)
        close(t->fd_direct);
    if (t->fd_buf >= 0)
        close(t->fd_buf);
    if (t->fdl_direct >= 0)
        close(t->fdl_direct);
    if (t->fdl_buf >= 0)
        close(t->fdl_buf);
    free(t->held);
    free(t->prep_ids);
    free(t->prep_w);
    free(t->pol);
    free(t->fkeys);
    free(t->ftok);
    free(t->fut);
    free(t->n_pinned);
    free(t->apos);
    free(t->slot_of);
    free(t->slots);
    free(t->q);
    free(t->thr);
    free(t->lc);
    free(t->round);
    free(t->last_ids);
    free(t->pred_ids);
    free(t->last_n);
    free(t->pred_n);
    free(t->pred_score);
    free(t);
}

const eng_store_ops eng_tiered_store_ops = {
    .kind = "tiered",
    .prepare = t_prepare,
    .prepare_w = t_prepare_w,
    .acquire = t_acquire,
    .release = t_release,
    .destroy = t_destroy,
    .max_held = 1,
    .hint_ahead = t_hint_ahead,
    .hint = t_hint,
};


/* ---- statistics ---------------------------------------------------------- */

static void add_counts(eng_tiered_counts *a, const eng_tiered_counts *b)
{
    a->accesses += b->accesses;
    a->hits += b->hits;
    a->misses += b->misses;
    a->pf_issued += b->pf_issued;
    a->pf_useful += b->pf_useful;
    a->pf_late += b->pf_late;
    a->pf_wasted += b->pf_wasted;
    a->bytes_demand += b->bytes_demand;
    a->bytes_prefetch += b->bytes_prefetch;
    a->evictions += b->evictions;
    a->stall_ns += b->stall_ns;
    a->load_ns += b->load_ns;
    a->pf_useful_load_ns += b->pf_useful_load_ns;
    a->pf_late_stall_ns += b->pf_late_stall_ns;
    a->pred_made += b->pred_made;
    a->pred_used += b->pred_used;
    a->lp_loads += b->lp_loads;
    a->lp_bytes += b->lp_bytes;
    a->lp_served += b->lp_served;
    a->lp_upgrades += b->lp_upgrades;
    a->pf_low += b->pf_low;
    a->pf_cancelled += b->pf_cancelled;
    a->bytes_cancelled += b->bytes_cancelled;
    a->pg_skipped += b->pg_skipped;
}

int eng_tiered_get_stats(eng_store *s, eng_tiered_stats *out, eng_err *err)
{
    memset(out, 0, sizeof *out);
    if (!s || s->ops != &eng_tiered_store_ops)
        return eng_err_set(err, ENG_EINVAL, "not a tiered store");
    tiered *t = s->impl;
    pthread_mutex_lock(&t->mu);
    for (int l = 0; l < t->L; l++)
        add_counts(&out->total, &t->lc[l]);
    out->layers = t->lc;
    out->n_layer = t->L;
    out->slots = (uint32_t)t->n_slots;
    out->slot_bytes = t->xbytes;
    out->cache_bytes = t->lp_budget ? t->lp_budget * (uint64_t)t->n_pools
                                    : (uint64_t)t->n_slots * t->xbytes;
    for (int p = 0; p < t->n_pools; p++)
        out->held_bytes += t->held[p];
    out->io_mode = t->io_mode;
    out->link_target_ns = t->link_target_ns;
    out->link_actual_ns = t->link_actual_ns;
    pthread_mutex_unlock(&t->mu);
    return ENG_OK;
}

void eng_tiered_reset_stats(eng_store *s)
{
    if (!s || s->ops != &eng_tiered_store_ops)
        return;
    tiered *t = s->impl;
    pthread_mutex_lock(&t->mu);
    memset(t->lc, 0, (size_t)t->L * sizeof *t->lc);
    t->link_target_ns = t->link_actual_ns = 0;
    pthread_mutex_unlock(&t->mu);
    eng_store_reset_stats(s);
}
