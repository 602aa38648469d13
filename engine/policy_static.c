/*
 * policy_static.c — pin the `capacity` most used keys of a profile (access
 * counts from a profile trace; ties to the lower key) and never evict: only
 * pinned keys are admitted, so a miss on any other key is served without
 * caching (the store streams it through a scratch buffer). With capacity >=
 * n_keys every key is pinned. victim is never needed and always fails.
 */
#include "engine/policy_impl.h"

#include <stdlib.h>

typedef struct static_state {
    uint8_t *pin;   /* [n_keys] 1 for the chosen keys */
} static_state;

typedef struct ranked {
    uint64_t count;
    uint32_t key;
} ranked;

static int by_count_desc(const void *a, const void *b)
{
    const ranked *x = a, *y = b;
    if (x->count != y->count)
        return x->count > y->count ? -1 : 1;
    return x->key < y->key ? -1 : x->key > y->key;
}

static void destroy(void *st)
{
    static_state *s = st;
    free(s->pin);
    free(s);
}

static int create(void **st, const eng_policy_config *cfg, eng_err *err)
{
    static_state *s = eng_policy_calloc(1, sizeof *s, "static state", err);
    ranked *r = eng_policy_calloc(cfg->n_keys, sizeof *r, "static ranking", err);
    if (s)
        s->pin = eng_policy_calloc(cfg->n_keys, 1, "static pins", err);
    if (!s || !r || !s->pin) {
        free(r);
        if (s)
            destroy(s);
        return ENG_ENOMEM;
    }
    for (uint32_t k = 0; k < cfg->n_keys; k++)
        r[k] = (ranked){cfg->profile[k], k};
    qsort(r, cfg->n_keys, sizeof *r, by_count_desc);
    uint32_t n = cfg->capacity < cfg->n_keys ? cfg->capacity : cfg->n_keys;
    for (uint32_t i = 0; i < n; i++)
        s->pin[r[i].key] = 1;
    free(r);
    *st = s;
    return ENG_OK;
}

static int reset(void *st, const eng_policy_future *future, eng_err *err) { return ENG_OK; }
static void access_key(void *st, uint32_t key, int64_t pos, int hit) {}
static int admit(void *st, uint32_t key) { return ((static_state *)st)->pin[key]; }
static void insert(void *st, uint32_t key, int64_t pos) {}
static int victim(void *st, const uint8_t *pinned, uint32_t *key) { return -1; }
static void evict(void *st, uint32_t key) {}

const eng_policy_ops eng_policy_static_ops = {
    .name = "static",
    .summary = "pin the most used keys of a profile trace; never evict, others uncached",
    .flags = ENG_POLICY_NEEDS_PROFILE,
    .create = create, .destroy = destroy, .reset = reset, .access = access_key,
    .admit = admit, .insert = insert, .victim = victim, .evict = evict,
};
