/*
 * policy_random.c — evict a uniformly random resident key, from a seeded
 * splitmix64 stream: the same seed and the same calls give the same
 * victims. The stream is seeded once at creation (not at every reset), so
 * successive sequences draw different numbers. O(1) per operation; victim
 * scans past pinned keys from the drawn slot, O(pinned).
 */
#include "engine/policy_impl.h"

#include <stdlib.h>

typedef struct random_state {
    uint32_t *slot;       /* [n] resident keys, any order      */
    uint32_t *where;      /* [n_keys] index in slot            */
    uint32_t n;
    uint64_t rng;
} random_state;

static void destroy(void *st)
{
    random_state *s = st;
    free(s->slot);
    free(s->where);
    free(s);
}

static int create(void **st, const eng_policy_config *cfg, eng_err *err)
{
    random_state *s = eng_policy_calloc(1, sizeof *s, "random state", err);
    if (!s)
        return ENG_ENOMEM;
    s->slot = eng_policy_calloc(cfg->n_keys, sizeof *s->slot, "random slots", err);
    s->where = eng_policy_calloc(cfg->n_keys, sizeof *s->where, "random slots", err);
    if (!s->slot || !s->where) {
        destroy(s);
        return ENG_ENOMEM;
    }
    s->rng = cfg->seed;
    *st = s;
    return ENG_OK;
}

static int reset(void *st, const eng_policy_future *future, eng_err *err)
{
    ((random_state *)st)->n = 0;
    return ENG_OK;
}

static void access_key(void *st, uint32_t key, int64_t pos, int hit) {}

static void insert(void *st, uint32_t key, int64_t pos)
{
    random_state *s = st;
    s->where[key] = s->n;
    s->slot[s->n++] = key;
}

static int victim(void *st, const uint8_t *pinned, uint32_t *key)
{
    random_state *s = st;
    if (s->n == 0)
        return -1;
    uint32_t r = (uint32_t)(eng_prng_next(&s->rng) % s->n);
    for (uint32_t i = 0; i < s->n; i++) {
        uint32_t k = s->slot[(r + i) % s->n];
        if (!pinned || !pinned[k]) {
            *key = k;
            return 0;
        }
    }
    return -1;
}

static void evict(void *st, uint32_t key)
{
    random_state *s = st;
    uint32_t i = s->where[key], last = s->slot[--s->n];
    s->slot[i] = last;
    s->where[last] = i;
}

const eng_policy_ops eng_policy_random_ops = {
    .name = "random",
    .summary = "evict a uniformly random resident key (seeded, reproducible)",
    .create = create, .destroy = destroy, .reset = reset, .access = access_key,
    .insert = insert, .victim = victim, .evict = evict,
};
