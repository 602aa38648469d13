/*
 * store_tiered_impl.h — internal: the state of the tiered store, shared by
 * its three files: store_tiered.c (slots, policies, prefetch, the store's
 * operations, statistics), store_tiered_io.c (reads from the slow tier and
 * the loader threads) and store_tiered_open.c (options, sizing, files and
 * start-up). The design notes are at the top of store_tiered.c.
 */
#ifndef ENG_STORE_TIERED_IMPL_H
#define ENG_STORE_TIERED_IMPL_H

#include "engine/policy.h"
#include "engine/store_impl.h"
#include "engine/store_tiered.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

enum { ALIGN = 4096, HUGE_PAGE = 2 << 20 };
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
    bool low;                  /* holds the low-precision copy               */
    uint64_t bytes;            /* the held copy's bytes (budget)             */
    eng_err err;               /* FAILED: why                                */
    unsigned char *buf;        /* aligned, slot_alloc bytes                  */
    uint64_t buf_cap;          /* with a companion: buf's bytes (sized to the
                                  copy loaded into it)                       */
    const void *p[ENG_SLICE_MAX]; /* the expert's slices inside buf         */
} slot;

typedef struct tiered {
    eng_store *s;
    const eng_model *m;
    eng_tiered_opts o;
    int L, E;
    uint64_t xbytes;           /* largest expert's bytes                     */
    uint64_t region[ENG_SLICE_MAX]; /* bytes reserved in a slot per slice    */
    int n_slices;              /* slices of an expert (eng_expert_weights)   */
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
    bool round_sure;           /* adaptive pregate: every hint of this round
                                  so far was confident                       */
    /* predict: per layer, the experts of its last prepared unit and the
     * pending prediction for its next one ([L][E] each, counts [L]) */
    int32_t *last_ids, *pred_ids;
    int *last_n, *pred_n;
    double *pred_score;        /* [E] predictor scratch                      */
    /* mixed precision (o.lowprec; store_tiered.c "Mixed precision") */
    uint64_t lp_region[ENG_SLICE_MAX]; /* as region, for the low copies     */
    uint64_t lp_budget;        /* bytes per pool (a budget in bytes); 0:
                                  slots only                                 */
    uint64_t *held;            /* [n_pools] bytes of the copies cached       */
    int32_t *prep_ids;         /* [E] the prepared layer's experts ...       */
    float *prep_w;             /* [E] ... and gate weights (prep_has_w)      */
    bool prep_has_w;
    int fdl_direct, fdl_buf;   /* the companion file; -1 when not open       */
} tiered;

static inline uint64_t tiered_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* store_tiered.c */
extern const eng_store_ops eng_tiered_store_ops;
/* Keeps the policy pin equal to "loading, in use or guarded". Lock held. */
void tiered_slot_sync_pin(tiered *t, int si);

/* store_tiered_io.c */
/* The model file's name for messages. */
const char *tiered_file_name(const tiered *t);
/* A loader thread: takes slot indices from the queue and loads them. */
void *tiered_loader_main(void *arg);
/* Queues a load of slot si (front: ahead of queued prefetches). Lock held. */
void tiered_enqueue(tiered *t, int si, bool front);
/* Moves a queued load of slot si to the front. Lock held. */
void tiered_promote(tiered *t, int si);
/* Removes a queued load of slot si that no loader has started: true if it
 * was queued. Lock held. */
bool tiered_dequeue(tiered *t, int si);

#endif
