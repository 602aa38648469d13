/*
 * policy_lfu.c — least frequently used, ties to the least recently used.
 *
 * Priority of a resident key = (accesses since the sequence start, counted
 * also while the key was not cached; position of its last access), the
 * lowest is evicted: exactly the paper's LFU (reference/lrc-metrics.md).
 * Optional aging (config.lfu_age = A > 0): after every A-th access of a
 * sequence all counts are halved (rounding down), so old popularity fades;
 * O(n_keys log n) then, amortized O(n_keys/A) per access.
 */
#include "engine/policy_impl.h"

#include <stdlib.h>

typedef struct lfu_state {
    eng_pheap h;          /* resident keys by (count, last)               */
    uint64_t *count;      /* [n_keys] accesses this sequence (aged)       */
    int64_t *last;        /* [n_keys] position of last access, -1 = none  */
    uint32_t n_keys;
    int64_t age, since_age;
} lfu_state;

static void destroy(void *st)
{
    lfu_state *s = st;
    eng_pheap_free(&s->h);
    free(s->count);
    free(s->last);
    free(s);
}

static int create(void **st, const eng_policy_config *cfg, eng_err *err)
{
    lfu_state *s = eng_policy_calloc(1, sizeof *s, "lfu state", err);
    if (!s)
        return ENG_ENOMEM;
    s->n_keys = cfg->n_keys;
    s->age = cfg->lfu_age;
    s->count = eng_policy_calloc(cfg->n_keys, sizeof *s->count, "lfu counts", err);
    s->last = eng_policy_calloc(cfg->n_keys, sizeof *s->last, "lfu counts", err);
    if (!s->count || !s->last || eng_pheap_init(&s->h, cfg->n_keys, err)) {
        destroy(s);
        return ENG_ENOMEM;
    }
    *st = s;
    return ENG_OK;
}

static int reset(void *st, const eng_policy_future *future, eng_err *err)
{
    lfu_state *s = st;
    eng_pheap_clear(&s->h);
    for (uint32_t k = 0; k < s->n_keys; k++) {
        s->count[k] = 0;
        s->last[k] = -1;
    }
    s->since_age = 0;
    return ENG_OK;
}

static void halve_all(lfu_state *s)
{
    for (uint32_t k = 0; k < s->n_keys; k++) {
        s->count[k] >>= 1;
        if (eng_pheap_has(&s->h, k))
            eng_pheap_set(&s->h, k, (int64_t)s->count[k], s->last[k]);
    }
}

static void access_key(void *st, uint32_t key, int64_t pos, int hit)
{
    lfu_state *s = st;
    s->count[key]++;
    s->last[key] = pos;
    if (s->age > 0 && ++s->since_age >= s->age) {
        s->since_age = 0;
        halve_all(s);
    }
    if (eng_pheap_has(&s->h, key))
        eng_pheap_set(&s->h, key, (int64_t)s->count[key], s->last[key]);
}

static void insert(void *st, uint32_t key, int64_t pos)
{
    lfu_state *s = st;
    eng_pheap_set(&s->h, key, (int64_t)s->count[key], s->last[key]);
}

static int victim(void *st, const uint8_t *pinned, uint32_t *key)
{
    return eng_pheap_min(&((lfu_state *)st)->h, pinned, key);
}

static void evict(void *st, uint32_t key)
{
    eng_pheap_remove(&((lfu_state *)st)->h, key);
}

const eng_policy_ops eng_policy_lfu_ops = {
    .name = "lfu",
    .summary = "least frequently used this sequence (counts include uncached time), ties lru",
    .create = create, .destroy = destroy, .reset = reset, .access = access_key,
    .insert = insert, .victim = victim, .evict = evict,
};
