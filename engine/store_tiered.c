/*
 * store_tiered.c — the tiered expert store (store_tiered.h).
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
 */
#include "engine/store_tiered.h"

#include "engine/policy.h"
#include "engine/store_impl.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

enum { ALIGN = 4096 };
enum { SLOT_EMPTY = 0, SLOT_LOADING, SLOT_READY, SLOT_FAILED };

typedef struct slot {
    int state;
    int32_t key;               /* layer * E + expert; -1 when empty          */
    int users;                 /* acquired and not released                  */
    bool prefetched;           /* loaded by a prefetch, not demanded yet     */
    bool pinned;
    bool guard;                /* protected from a hint's eviction (pinned) */
    bool done_pending;         /* LOAD_DONE event not emitted yet            */
    uint64_t load_ns;
    eng_err err;               /* FAILED: why                                */
    unsigned char *buf;        /* aligned, slot_alloc bytes                  */
    const void *p[3];          /* gate, up, down inside buf                  */
} slot;

typedef struct tiered {
    eng_store *s;
    const eng_model *m;
    eng_tiered_opts o;
    int L, E;
    uint64_t xbytes;           /* largest expert's bytes                     */
    uint64_t region[3];        /* bytes reserved in a slot for each slice    */
    int n_pools, per_pool, n_slots;
    eng_policy **pol;          /* [n_pools]                                  */
    int *n_pinned;             /* [n_pools]                                  */
    int64_t *apos;             /* [n_pools] demand accesses this sequence    */
    int32_t *slot_of;          /* [L * E]                                    */
    slot *slots;               /* [n_slots + 1]; the last is the scratch     */
    eng_policy_future *fut;    /* [n_pools] when the policy needs one        */
    uint32_t **fkeys;
    int64_t **ftok;
    int fd_direct, fd_buf;     /* -1 when not open                           */
    const char *io_mode;
    pthread_mutex_t mu;
    pthread_cond_t cv, qcv;
    int *q, q_head, q_len;     /* ring of slot indices, n_slots + 1          */
    pthread_t *thr;
    int n_thr;
    bool stop;
    eng_tiered_counts *lc;     /* [L]                                        */
    double link_target_ns, link_actual_ns;
    int prep_layer, prep_n, prep_done;
    /* Keys the current layer (prepared) and this layer's earlier, nearer
     * hints still need: a hint never evicts them. [round_cap] */
    int32_t *round;
    int round_n, round_cap;
} tiered;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

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

static void cache_event(tiered *t, eng_cache_event_kind kind, int32_t key, int64_t pos,
                        uint64_t bytes, uint64_t ns)
{
    if (!t->s->has_cache_hook)
        return;
    eng_cache_event ev = {.kind = kind, .layer = key / t->E, .expert = key % t->E, .pos = pos,
                          .bytes = bytes, .ns = ns};
    t->s->hooks.cache(t->s->hooks.user, &ev);
}

/* Keeps the policy pin equal to "loading or in use". Lock held. */
static void slot_sync_pin(tiered *t, int si)
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

/* ---- I/O ----------------------------------------------------------------- */

/* Reads len bytes at off, up to EOF; returns bytes read or -errno. */
static int64_t pread_full(int fd, void *buf, uint64_t len, uint64_t off)
{
    uint64_t got = 0;
    while (got < len) {
        ssize_t r = pread(fd, (char *)buf + got, len - got, (off_t)(off + got));
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (r == 0)
            break;
        got += (uint64_t)r;
    }
    return (int64_t)got;
}

static const char *file_name(const tiered *t)
{
    return t->o.file ? t->o.file : eng_model_path(t->m);
}

/* One slice into dst (region bytes); *p points at the slice. Unlocked. */
static int read_slice(tiered *t, unsigned char *dst, const eng_expert_mat *mat, const void **p,
                      eng_err *err)
{
    const uint64_t len = (uint64_t)mat->n_out * mat->row_bytes, off = mat->file_offset;
    if (__atomic_load_n(&t->fd_direct, __ATOMIC_RELAXED) >= 0) {
        uint64_t a0 = off & ~(uint64_t)(ALIGN - 1);
        uint64_t a1 = (off + len + ALIGN - 1) & ~(uint64_t)(ALIGN - 1);
        int64_t r = pread_full(t->fd_direct, dst, a1 - a0, a0);
        if (r >= 0 && (uint64_t)r >= off + len - a0) {
            *p = dst + (off - a0);
            return ENG_OK;
        }
        if (r != -EINVAL && r >= 0)
            return eng_err_set(err, ENG_EIO,
                               "%s: read %" PRId64 " of %" PRIu64 " bytes at offset %" PRIu64
                               ": the file is shorter than the model (truncated?)",
                               file_name(t),
                               r > (int64_t)(off - a0) ? r - (int64_t)(off - a0) : 0, len, off);
        if (r != -EINVAL)
            return eng_err_set(err, ENG_EIO, "%s: read at offset %" PRIu64 ": %s",
                               file_name(t), off, strerror((int)-r));
        /* O_DIRECT refused late: documented fallback to buffered reads */
    }
    int64_t r = pread_full(t->fd_buf, dst, len, off);
    if (r < 0)
        return eng_err_set(err, ENG_EIO, "%s: read at offset %" PRIu64 ": %s", file_name(t),
                           off, strerror((int)-r));
    if ((uint64_t)r < len)
        return eng_err_set(err, ENG_EIO,
                           "%s: read %" PRId64 " of %" PRIu64 " bytes at offset %" PRIu64
                           ": the file is shorter than the model (truncated?)",
                           file_name(t), r, len, off);
    (void)posix_fadvise(t->fd_buf, (off_t)off, (off_t)len, POSIX_FADV_DONTNEED);
    *p = dst;
    return ENG_OK;
}

static int load_slot(tiered *t, slot *sl, eng_err *err)
{
    eng_expert_weights w;
    int rc = eng_expert_locate(t->m, sl->key / t->E, sl->key % t->E, &w, err);
    if (rc)
        return rc;
    const eng_expert_mat *mats[3] = {&w.gate, &w.up, &w.down};
    unsigned char *dst[3] = {NULL, NULL, NULL}; /* no buffers in link mode map */
    if (sl->buf) {
        dst[0] = sl->buf;
        dst[1] = sl->buf + t->region[0];
        dst[2] = sl->buf + t->region[0] + t->region[1];
    }
    if (t->o.tier == ENG_TIER_LINK) {
        void *d[3] = {dst[0], dst[1], dst[2]};
        const void *src[3];
        uint64_t len[3];
        for (int i = 0; i < 3; i++) {
            src[i] = mats[i]->data;
            len[i] = (uint64_t)mats[i]->n_out * mats[i]->row_bytes;
            /* map: the slot refers to the bytes in RAM, no copy */
            sl->p[i] = t->o.link_mode == ENG_LINK_MAP ? src[i] : dst[i];
        }
        uint64_t ns = t->o.link_mode == ENG_LINK_MAP
                          ? eng_link_wait(w.bytes, t->o.link_gbps, t->o.link_latency_us)
                          : eng_link_copy_segs(d, src, len, 3, t->o.link_gbps,
                                               t->o.link_latency_us);
        double target = t->o.link_latency_us * 1e3 + (double)w.bytes / t->o.link_gbps;
        pthread_mutex_lock(&t->mu);
        t->link_target_ns += target;
        t->link_actual_ns += (double)ns;
        pthread_mutex_unlock(&t->mu);
        return ENG_OK;
    }
    for (int i = 0; i < 3; i++)
        if ((rc = read_slice(t, dst[i], mats[i], &sl->p[i], err)))
            return rc;
    return ENG_OK;
}

static void *loader_main(void *arg)
{
    tiered *t = arg;
    pthread_mutex_lock(&t->mu);
    for (;;) {
        while (!t->stop && t->q_len == 0)
            pthread_cond_wait(&t->qcv, &t->mu);
        if (t->stop)
            break;
        int si = t->q[t->q_head];
        t->q_head = (t->q_head + 1) % (t->n_slots + 1);
        t->q_len--;
        slot *sl = &t->slots[si];
        pthread_mutex_unlock(&t->mu);
        ENG_HOOK(&t->s->hooks, region_begin, ENG_REGION_EXPERT_LOAD);
        uint64_t t0 = now_ns();
        eng_err e = {0};
        int rc = load_slot(t, sl, &e);
        uint64_t dt = now_ns() - t0;
        ENG_HOOK(&t->s->hooks, region_end, ENG_REGION_EXPERT_LOAD);
        pthread_mutex_lock(&t->mu);
        sl->state = rc ? SLOT_FAILED : SLOT_READY;
        if (rc)
            sl->err = e;
        sl->load_ns = dt;
        sl->done_pending = true;
        t->lc[sl->key / t->E].load_ns += dt;
        slot_sync_pin(t, si);
        pthread_cond_broadcast(&t->cv);
    }
    pthread_mutex_unlock(&t->mu);
    return NULL;
}

/* Queues a load (demand loads jump ahead of prefetches). Lock held. */
static void enqueue(tiered *t, int si, bool front)
{
    int cap = t->n_slots + 1;
    if (front) {
        t->q_head = (t->q_head + cap - 1) % cap;
        t->q[t->q_head] = si;
    } else {
        t->q[(t->q_head + t->q_len) % cap] = si;
    }
    t->q_len++;
    pthread_cond_signal(&t->qcv);
}

/* A demand waits on slot si, a prefetch still queued: its load goes to the
 * front, ahead of prefetches for later layers. Lock held. */
static void promote(tiered *t, int si)
{
    const int cap = t->n_slots + 1;
    for (int i = 0; i < t->q_len; i++) {
        if (t->q[(t->q_head + i) % cap] != si)
            continue;
        for (int j = i; j > 0; j--)
            t->q[(t->q_head + j) % cap] = t->q[(t->q_head + j - 1) % cap];
        t->q[t->q_head] = si;
        return;
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
        slot_sync_pin(t, si);
    }
    int rc = eng_policy_evict(t->pol[p], pkey_of(t, sl->key), err);
    eng_tiered_counts *c = &t->lc[sl->key / t->E];
    c->evictions++;
    if (sl->prefetched)
        c->pf_wasted++;
    if (sl->done_pending)
        cache_event(t, ENG_CACHE_LOAD_DONE, sl->key, pos, t->xbytes, sl->load_ns);
    cache_event(t, ENG_CACHE_EVICT, sl->key, pos, 0, 0);
    t->slot_of[sl->key] = -1;
    memset(&sl->err, 0, sizeof sl->err);
    sl->key = -1;
    sl->state = SLOT_EMPTY;
    sl->prefetched = sl->done_pending = false;
    return rc;
}

/* A slot of pool p for a new expert, evicting when full. wait: block for
 * in-flight loads when every slot is pinned; else return -1 then. */
static int take_slot(tiered *t, int p, int64_t pos, bool wait, eng_err *err, int *rc)
{
    *rc = ENG_OK;
    for (;;) {
        if (eng_policy_cached_count(t->pol[p]) < (uint32_t)t->per_pool) {
            for (int i = p * t->per_pool; i < (p + 1) * t->per_pool; i++)
                if (t->slots[i].key < 0)
                    return i;
            *rc = eng_err_set(err, ENG_ESTATE, "tiered store: slot table out of step");
            return -1;
        }
        if (t->n_pinned[p] < t->per_pool) {
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
            return si;
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

/* Starts loading key into slot si. Lock held. */
static void start_load(tiered *t, int si, int32_t key, bool prefetch, bool front)
{
    slot *sl = &t->slots[si];
    sl->key = key;
    sl->state = SLOT_LOADING;
    sl->prefetched = prefetch;
    sl->done_pending = false;
    if (si < t->n_slots)
        t->slot_of[key] = si;
    slot_sync_pin(t, si);
    eng_tiered_counts *c = &t->lc[key / t->E];
    uint64_t bytes = eng_model_expert_bytes(t->m, key / t->E);
    if (prefetch) {
        c->pf_issued++;
        c->bytes_prefetch += bytes;
    } else {
        c->bytes_demand += bytes;
    }
    t->s->stats.bytes_loaded += bytes;
    enqueue(t, si, front);
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
            int rc, si = take_slot(t, p, 0, false, &e, &rc);
            if (si < 0 || eng_policy_insert(t->pol[p], pkey_of(t, key), 0, &e))
                break;
            start_load(t, si, key, true, false);
        }
    }
}

static void drain(tiered *t);

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
    }
    for (int i = 0; i < t->L * t->E; i++)
        t->slot_of[i] = -1;
    for (int p = 0; p < t->n_pools; p++) {
        eng_err e;
        (void)eng_policy_reset(t->pol[p], t->fut ? &t->fut[p] : NULL, &e); /* checked at open */
        t->n_pinned[p] = 0;
        t->apos[p] = 0;
    }
    if (t->o.warm) {
        warm_fill(t);
        drain(t);
    }
}

/* ---- prefetch ------------------------------------------------------------ */

/* Starts loads of experts ids[0..n) of layer nl that are not resident.
 * Lock held. */
static void prefetch_ids(tiered *t, int nl, const int32_t *ids, int n, int64_t pos)
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
        int si = take_slot(t, p, pos, false, &e, &rc);
        if (si < 0)
            return; /* everything pinned: skip, the demand will load it */
        if (eng_policy_insert(t->pol[p], pkey_of(t, key), t->apos[p], &e))
            return;
        start_load(t, si, key, true, false);
        cache_event(t, ENG_CACHE_PREFETCH, key, pos, eng_model_expert_bytes(t->m, nl), 0);
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
    prefetch_ids(t, nl, pl->experts + (tok * pl->n_layer + nl) * pl->top_k, pl->top_k, pos);
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
        slot_sync_pin(t, si);
    }
}

static void round_add(tiered *t, int layer, const int32_t *ids, int n)
{
    for (int j = 0; j < n && t->round_n < t->round_cap; j++)
        if (ids[j] >= 0 && ids[j] < t->E)
            t->round[t->round_n++] = layer * t->E + ids[j];
}

static void t_hint(eng_store *s, int layer, const int32_t *ids, int n, int64_t pos)
{
    tiered *t = s->impl;
    if (t->o.prefetch != ENG_PREFETCH_PREGATE || layer < 0 || layer >= t->L)
        return;
    pthread_mutex_lock(&t->mu);
    guard_round(t, true);
    prefetch_ids(t, layer, ids, n, pos);
    guard_round(t, false);
    round_add(t, layer, ids, n);
    pthread_mutex_unlock(&t->mu);
}

/* ---- ops ----------------------------------------------------------------- */

static void t_prepare(eng_store *s, int layer, const int32_t *ids, int n, int64_t pos)
{
    tiered *t = s->impl;
    pthread_mutex_lock(&t->mu);
    if (layer == 0 && pos == 0)
        new_sequence(t);
    t->prep_layer = layer;
    t->prep_n = n;
    t->prep_done = 0;
    t->round_n = 0;
    round_add(t, layer, ids, n);
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
    uint64_t t0 = now_ns();
    while (sl->state == SLOT_LOADING)
        pthread_cond_wait(&t->cv, &t->mu);
    uint64_t dt = now_ns() - t0;
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
            promote(t, si);
    } else {
        c->misses++;
        t->s->stats.misses++;
        out->miss = true;
        cache_event(t, ENG_CACHE_MISS, key, pos, 0, 0);
        if (!eng_policy_admit(t->pol[p], pk)) {
            si = t->n_slots; /* scratch: served, not cached */
            if (t->slots[si].users > 0 || t->slots[si].state == SLOT_LOADING)
                return eng_err_set(err, ENG_ESTATE, "tiered store: scratch slot busy");
        } else {
            si = take_slot(t, p, pos, true, err, &rc);
            if (si < 0)
                return rc;
            if ((rc = eng_policy_insert(t->pol[p], pk, apos, err)))
                return rc;
        }
        start_load(t, si, key, false, true);
    }
    slot *sl = &t->slots[si];
    sl->users++;
    slot_sync_pin(t, si);
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
            cache_event(t, ENG_CACHE_LOAD_DONE, sl->key, pos, out->bytes, sl->load_ns);
        }
        if (sl->state == SLOT_FAILED) {
            rc = eng_err_set(err, sl->err.code ? sl->err.code : ENG_EIO, "%s", sl->err.msg);
            sl->users--;
            if (si < t->n_slots)
                (void)drop_slot(t, si, pos, &(eng_err){0});
            else
                sl->state = SLOT_EMPTY;
        } else {
            out->gate.data = sl->p[0];
            out->up.data = sl->p[1];
            out->down.data = sl->p[2];
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
    slot_sync_pin(t, si);
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
    free(t);
}

static const eng_store_ops tiered_ops = {
    .kind = "tiered",
    .prepare = t_prepare,
    .acquire = t_acquire,
    .release = t_release,
    .destroy = t_destroy,
    .max_held = 1,
    .hint_ahead = t_hint_ahead,
    .hint = t_hint,
};


/* ---- open ---------------------------------------------------------------- */

/* The policy the options name: an ops table given directly, else a built-in. */
static const eng_policy_ops *policy_ops_of(const eng_tiered_opts *o)
{
    return o->policy_ops ? o->policy_ops : eng_policy_find(o->policy ? o->policy : "");
}

static int check_opts(const eng_model *m, const eng_tiered_opts *o, eng_err *err)
{
    const eng_hparams *hp = eng_model_hparams(m);
    const eng_policy_ops *ops = policy_ops_of(o);
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
    if (o->plan && (o->plan->n_layer != hp->n_layer || o->plan->top_k != hp->n_expert_used ||
                    o->plan->n_tokens < 0 || (o->plan->n_tokens > 0 && !o->plan->experts)))
        return eng_err_set(err, ENG_EINVAL,
                           "tiered store: routing plan has %d layers, top-k %d; the model %" PRId64
                           " layers, top-k %" PRId64,
                           o->plan->n_layer, o->plan->top_k, hp->n_layer, hp->n_expert_used);
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
    if (o->pregate_ahead < 0 || o->pregate_ahead > 64)
        return eng_err_set(err, ENG_EINVAL, "tiered store: pregate ahead %d layers (1..64)",
                           o->pregate_ahead);
    if (o->n_loaders < 0 || o->n_loaders > 64)
        return eng_err_set(err, ENG_EINVAL, "tiered store: %d loader threads (1..64)",
                           o->n_loaders);
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
        const eng_expert_mat *mats[3] = {&w.gate, &w.up, &w.down};
        for (int i = 0; i < 3; i++) {
            uint64_t r = ((uint64_t)mats[i]->n_out * mats[i]->row_bytes + 2 * ALIGN) &
                         ~(uint64_t)(ALIGN - 1);
            if (r > t->region[i])
                t->region[i] = r;
        }
        if (w.bytes > t->xbytes)
            t->xbytes = w.bytes;
    }
    t->n_pools = t->o.scope == ENG_SCOPE_LAYER ? t->L : 1;
    uint64_t per = t->o.cache_experts;
    if (per == 0)
        per = t->o.cache_bytes / t->xbytes / (uint64_t)t->n_pools;
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
        const eng_expert_mat *mats[3] = {&w.gate, &w.up, &w.down};
        for (int i = 0; i < 3; i++) {
            const unsigned char *p = mats[i]->data;
            uint64_t n = (uint64_t)mats[i]->n_out * mats[i]->row_bytes * (uint64_t)hp->n_expert;
            for (uint64_t off = 0; off < n; off += ALIGN)
                sink = (unsigned char)(sink + p[off]);
        }
    }
    (void)sink;
}

static int open_files(tiered *t, eng_err *err)
{
    const char *path = file_name(t);
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
        const eng_expert_mat *mats[3] = {&w.gate, &w.up, &w.down};
        for (int i = 0; i < 3; i++)
            if (mats[i]->file_offset + (uint64_t)mats[i]->n_out * mats[i]->row_bytes >
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
    uint64_t a0 = w.gate.file_offset & ~(uint64_t)(ALIGN - 1);
    if (pread(t->fd_direct, b, ALIGN, (off_t)a0) < 0) {
        close(t->fd_direct);
        t->fd_direct = -1;
        return ENG_OK;
    }
    t->io_mode = "o_direct";
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
                             .user = t->o.policy_user};
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
    if (!t->n_pinned || !t->apos || !t->slot_of || !t->slots || !t->q || !t->lc || !t->round)
        return eng_err_set(err, ENG_ENOMEM, "tiered store: out of memory");
    for (int i = 0; i < t->L * t->E; i++)
        t->slot_of[i] = -1;
    const uint64_t bytes = t->region[0] + t->region[1] + t->region[2];
    const bool map = t->o.tier == ENG_TIER_LINK && t->o.link_mode == ENG_LINK_MAP;
    for (size_t i = 0; i < ns; i++) {
        t->slots[i].key = -1;
        if (map)
            continue; /* slots refer to the mapping: the budget is counted, not allocated */
        if (posix_memalign((void **)&t->slots[i].buf, ALIGN, bytes) != 0) {
            t->slots[i].buf = NULL;
            return eng_err_set(err, ENG_ENOMEM,
                               "tiered store: out of memory for %zu slots of %" PRIu64 " bytes",
                               ns, bytes);
        }
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
        if (pthread_create(&t->thr[t->n_thr], NULL, loader_main, t) != 0)
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
    eng_store_init(s, &tiered_ops, m, t);
    t->s = s;
    t->m = m;
    t->o = *o;
    t->L = (int)eng_model_hparams(m)->n_layer;
    t->E = (int)eng_model_hparams(m)->n_expert;
    t->fd_direct = t->fd_buf = -1;
    pthread_mutex_init(&t->mu, NULL);
    pthread_cond_init(&t->cv, NULL);
    pthread_cond_init(&t->qcv, NULL);
    if ((rc = plan_slots(t, err)) || (rc = alloc_tables(t, err)) ||
        (rc = open_files(t, err)) || (rc = open_policies(t, err)) ||
        (rc = start_loaders(t, err))) {
        eng_store_free(s);
        return rc;
    }
    const int pool_keys = t->n_pools > 1 ? t->E : t->L * t->E;
    if (t->per_pool >= pool_keys && !policy_ops_of(o)->admit)
        s->max_held = (int)eng_model_hparams(m)->n_expert_used; /* no eviction ever */
    *out = s;
    return ENG_OK;
}

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
}

int eng_tiered_get_stats(eng_store *s, eng_tiered_stats *out, eng_err *err)
{
    memset(out, 0, sizeof *out);
    if (!s || s->ops != &tiered_ops)
        return eng_err_set(err, ENG_EINVAL, "not a tiered store");
    tiered *t = s->impl;
    pthread_mutex_lock(&t->mu);
    for (int l = 0; l < t->L; l++)
        add_counts(&out->total, &t->lc[l]);
    out->layers = t->lc;
    out->n_layer = t->L;
    out->slots = (uint32_t)t->n_slots;
    out->slot_bytes = t->xbytes;
    out->cache_bytes = (uint64_t)t->n_slots * t->xbytes;
    out->io_mode = t->io_mode;
    out->link_target_ns = t->link_target_ns;
    out->link_actual_ns = t->link_actual_ns;
    pthread_mutex_unlock(&t->mu);
    return ENG_OK;
}

void eng_tiered_reset_stats(eng_store *s)
{
    if (!s || s->ops != &tiered_ops)
        return;
    tiered *t = s->impl;
    pthread_mutex_lock(&t->mu);
    memset(t->lc, 0, (size_t)t->L * sizeof *t->lc);
    t->link_target_ns = t->link_actual_ns = 0;
    pthread_mutex_unlock(&t->mu);
    eng_store_reset_stats(s);
}
