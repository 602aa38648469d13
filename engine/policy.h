/*
 * policy.h — eviction policies for a cache of expert weights: one interface
 * that the engine's tiered expert store and the replay simulator
 * (metrics/simulate.h) both drive, so each policy has exactly one
 * implementation. docs/policies.md describes every policy precisely and how
 * to add one.
 *
 * Model. A cache of `capacity` slots over integer keys 0..n_keys-1. The
 * store decides what a key is (layer * n_expert + expert for one global
 * pool; the expert id for a per-layer partition, one policy per layer); the
 * policy only sees keys. Accesses of one *sequence* (a sample, a prompt and
 * its generation) are numbered 0, 1, 2, ... in the order the store makes
 * them: token by token, layer by layer, router order inside a layer, for the
 * keys in this policy's scope only. That number is `pos`.
 *
 * Two layers:
 *  - eng_policy_ops: the callbacks a policy implements (a struct of function
 *    pointers with a state pointer; a Lua-scripted policy is one such table
 *    whose callbacks call into Lua; the engine never does).
 *  - eng_policy: the handle the store uses. It owns the policy's state, keeps
 *    the resident set and the pins, checks every call (a buggy policy that
 *    names a key that is not cached, or is pinned, is an ENG_ESTATE error,
 *    never a corrupt cache), and offers eng_policy_demand(), the whole
 *    demand-access protocol in one call.
 *
 * Demand-access protocol (what eng_policy_demand does; a store may do the
 * steps itself):
 *    1. ops->access(key, pos, hit)       every demand access, first
 *    2. if key is resident: done (hit)
 *    3. ops->admit(key) == 0:            serve without caching (static)
 *    4. if the cache is full: victim = ops->victim(pinned); ops->evict(victim)
 *    5. ops->insert(key, pos)
 * A prefetch is steps 4-5 alone (insert without access), with `pos` the
 * position of the next demand access of this sequence.
 *
 * Oracle policies (belady, fsf) need the future: at eng_policy_reset the
 * store passes an eng_policy_future, the keys of the whole sequence in
 * access order with token boundaries, built from a trace of the same input
 * (the engine: `--trace-in FILE`; the simulator: the trace it replays).
 * `pos` must then index that view and key == future.keys[pos]; a mismatch
 * (the run routed differently from the trace) is an ENG_ESTATE error.
 *
 * Errors. The handle checks every call (bad keys, a victim that is not
 * resident, a future mismatch) and, after each callback, the policy's own
 * status (ops->status). The first failure sticks, as sqlite3_errmsg does:
 * from then on every call on the handle that takes an eng_err returns that
 * same error (code and message), and eng_policy_status reports it, so a
 * store or simulator fails with the callback's own message, not a later
 * symptom ("found no victim").
 *
 * Thread-safety: a handle belongs to one thread at a time; calls on
 * different handles are independent. Built-in ops tables are immutable.
 */
#ifndef ENG_POLICY_H
#define ENG_POLICY_H

#include "engine/err.h"

#include <stddef.h>
#include <stdint.h>

/* The future of one sequence, for oracle policies. Borrowed: it must stay
 * valid until the next eng_policy_reset or eng_policy_free. */
typedef struct eng_policy_future {
    const uint32_t *keys;       /* [n_access] keys in access order           */
    int64_t n_access;
    const int64_t *token_start; /* [n_tokens + 1] offsets into keys; [0] = 0,
                                   [n_tokens] = n_access, non-decreasing     */
    int64_t n_tokens;
} eng_policy_future;

/* Creation parameters. Fields a policy does not use are ignored. */
typedef struct eng_policy_config {
    uint32_t capacity;          /* slots, >= 1                                */
    uint32_t n_keys;            /* key space, >= 1                            */
    uint64_t seed;              /* random: generator seed                     */
    int lookahead;              /* fsf: tokens L in the window, >= 1 (0 -> 1) */
    int64_t lfu_age;            /* lfu: halve every count after this many
                                   accesses of a sequence; 0 = never (the
                                   paper's LFU)                               */
    const uint64_t *profile;    /* static: [n_keys] access counts from a
                                   profile trace; copied at creation          */
    uint32_t keys_per_layer;    /* keys of one layer when the key space spans
                                   layers (layer = key / keys_per_layer: a
                                   global pool, E); 0: one layer (a per-layer
                                   pool). Must divide n_keys.                 */
    double hobbit_w[4];         /* hobbit: weights of recency, frequency,
                                   high-precision share, layer nearness,
                                   each >= 0; all 0: 1 each                   */
    void *user;                 /* custom ops (eng_policy_open_ops): theirs   */
} eng_policy_config;

enum {
    ENG_POLICY_NEEDS_FUTURE = 1u << 0,   /* reset needs an eng_policy_future */
    ENG_POLICY_NEEDS_PROFILE = 1u << 1,  /* config.profile must be set       */
};

/* The callbacks a policy implements. `st` is what create stored. Keys passed
 * in are < n_keys; insert is only called for a key that is not resident,
 * evict and victim only while it is; the handle guarantees this. */
typedef struct eng_policy_ops {
    const char *name;           /* registry name: "lru"                       */
    const char *summary;        /* one line for listings                      */
    unsigned flags;             /* ENG_POLICY_NEEDS_*                         */
    int (*create)(void **st, const eng_policy_config *cfg, eng_err *err);
    void (*destroy)(void *st);
    /* New sequence; the cache is empty. future is NULL for online use. */
    int (*reset)(void *st, const eng_policy_future *future, eng_err *err);
    /* A demand access (hit: key was resident). Before any insert for it. */
    void (*access)(void *st, uint32_t key, int64_t pos, int hit);
    /* May key be cached? NULL = always. 0 = serve it without caching. */
    int (*admit)(void *st, uint32_t key);
    void (*insert)(void *st, uint32_t key, int64_t pos);
    /* The resident key to evict next. pinned: [n_keys], nonzero = must not
     * be chosen; NULL when nothing is pinned. Returns 0, or nonzero when no
     * candidate exists (the handle reports it). */
    int (*victim)(void *st, const uint8_t *pinned, uint32_t *key);
    void (*evict)(void *st, uint32_t key);
    /* Optional (NULL: the policy cannot fail). The policy's own sticky
     * error: 0 while it has none, else its code with a message naming the
     * callback that failed (a scripted policy whose access raised an
     * error). The handle asks after every callback; see "Errors" below. */
    int (*status)(void *st, eng_err *err);
    /* Optional (NULL: the policy ignores precision). After each demand
     * access (after its access, and insert on a miss): whether the copy
     * that serves it is the high-precision one (1) or a low one (0; mixed
     * precision, engine/store_tiered.h). Without a companion every access
     * is reported high. */
    void (*precision)(void *st, uint32_t key, int high);
} eng_policy_ops;

typedef struct eng_policy eng_policy;

/* Registry of built-in policies: lru, lfu, fifo, random, static, belady,
 * fsf, hobbit. eng_policy_find returns NULL for an unknown name. */
const eng_policy_ops *eng_policy_find(const char *name);
size_t eng_policy_builtin_count(void);
const eng_policy_ops *eng_policy_builtin(size_t i);   /* NULL past the end */

/* Opens a built-in policy by name, or any ops table (a user's C policy, the
 * harness's Lua bridge). Checks cfg (capacity, n_keys, lookahead, profile).
 * The handle starts in a sequence with an empty cache only for policies
 * that need no future; oracle policies need eng_policy_reset first. */
int eng_policy_open(eng_policy **out, const char *name, const eng_policy_config *cfg,
                    eng_err *err);
int eng_policy_open_ops(eng_policy **out, const eng_policy_ops *ops,
                        const eng_policy_config *cfg, eng_err *err);
void eng_policy_free(eng_policy *p);

/* Starts a sequence: empties the resident set and the pins. future: required
 * by ENG_POLICY_NEEDS_FUTURE policies, checked (keys < n_keys, offsets
 * monotone), else may be NULL. To keep entries across sequences, insert them
 * again after the reset. */
int eng_policy_reset(eng_policy *p, const eng_policy_future *future, eng_err *err);

/* Outcome of one demand access. */
typedef struct eng_policy_result {
    int hit;                    /* key was resident                           */
    int inserted;               /* key is resident now after a miss           */
    int evicted;                /* 1: `victim` left the cache                 */
    uint32_t victim;
} eng_policy_result;

/* The demand-access protocol above in one call. On a miss with admit == 0
 * nothing is inserted (inserted = 0): the store serves the expert from a
 * scratch buffer. Errors: bad key/pos, future mismatch, no evictable entry
 * (everything pinned), a policy naming a bad victim: ENG_EINVAL/ENG_ESTATE. */
int eng_policy_demand(eng_policy *p, uint32_t key, int64_t pos, eng_policy_result *res,
                      eng_err *err);

/* The steps, for stores that interleave them with I/O and for prefetch. */
int eng_policy_access(eng_policy *p, uint32_t key, int64_t pos, int hit, eng_err *err);
/* 1: key may be cached, 0: serve it without caching. A failure (sticky)
 * answers 0; the next call with an eng_err returns it. */
int eng_policy_admit(eng_policy *p, uint32_t key);
int eng_policy_victim(eng_policy *p, uint32_t *key, eng_err *err);
int eng_policy_insert(eng_policy *p, uint32_t key, int64_t pos, eng_err *err);
int eng_policy_evict(eng_policy *p, uint32_t key, eng_err *err);

/* Reports the precision that served a demand access of key (see
 * ops->precision); a no-op for policies without the callback. */
int eng_policy_precision(eng_policy *p, uint32_t key, int high, eng_err *err);

/* Pins: a pinned resident key is never chosen as victim (an expert being
 * computed with, a prefetch in flight). A flag, not a count. Pinning a key
 * that is not resident is ENG_ESTATE; evicting a pinned key too. */
int eng_policy_pin(eng_policy *p, uint32_t key, eng_err *err);
void eng_policy_unpin(eng_policy *p, uint32_t key);

/* The handle's sticky error: ENG_OK while none, else its code (and its
 * message into err when err is not NULL). */
int eng_policy_status(const eng_policy *p, eng_err *err);

int eng_policy_is_cached(const eng_policy *p, uint32_t key);
uint32_t eng_policy_cached_count(const eng_policy *p);
uint32_t eng_policy_pinned_count(const eng_policy *p);
uint32_t eng_policy_capacity(const eng_policy *p);
const char *eng_policy_name(const eng_policy *p);
unsigned eng_policy_flags(const eng_policy *p);

#endif
