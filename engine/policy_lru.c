/*
 * policy_lru.c — lru and fifo: one list of resident keys, most recent at
 * the head; the victim is the unpinned key nearest the tail. lru moves a key
 * to the head on every access (priority = position of the last access, as
 * in the paper's LRU); fifo only on insert (priority = insertion order).
 * Every operation O(1) except victim, O(pinned).
 */
#include "engine/policy_impl.h"

#include <stdlib.h>

typedef struct list_state {
    eng_plist l;
    int move_on_access;   /* 1 lru, 0 fifo */
} list_state;

static int create(void **st, const eng_policy_config *cfg, eng_err *err, int lru)
{
    list_state *s = eng_policy_calloc(1, sizeof *s, "lru state", err);
    if (!s)
        return ENG_ENOMEM;
    if (eng_plist_init(&s->l, cfg->n_keys, err)) {
        free(s);
        return ENG_ENOMEM;
    }
    s->move_on_access = lru;
    *st = s;
    return ENG_OK;
}

static int lru_create(void **st, const eng_policy_config *cfg, eng_err *err)
{
    return create(st, cfg, err, 1);
}

static int fifo_create(void **st, const eng_policy_config *cfg, eng_err *err)
{
    return create(st, cfg, err, 0);
}

static void destroy(void *st)
{
    list_state *s = st;
    eng_plist_free(&s->l);
    free(s);
}

static int reset(void *st, const eng_policy_future *future, eng_err *err)
{
    eng_plist_clear(&((list_state *)st)->l);
    return ENG_OK;
}

static void access_key(void *st, uint32_t key, int64_t pos, int hit)
{
    list_state *s = st;
    if (s->move_on_access && s->l.in[key]) {
        eng_plist_remove(&s->l, key);
        eng_plist_push_head(&s->l, key);
    }
}

static void insert(void *st, uint32_t key, int64_t pos)
{
    eng_plist_push_head(&((list_state *)st)->l, key);
}

static int victim(void *st, const uint8_t *pinned, uint32_t *key)
{
    return eng_plist_last_unpinned(&((list_state *)st)->l, pinned, key);
}

static void evict(void *st, uint32_t key)
{
    eng_plist_remove(&((list_state *)st)->l, key);
}

const eng_policy_ops eng_policy_lru_ops = {
    .name = "lru",
    .summary = "least recently used: evict the key whose last access is oldest",
    .create = lru_create, .destroy = destroy, .reset = reset, .access = access_key,
    .insert = insert, .victim = victim, .evict = evict,
};

const eng_policy_ops eng_policy_fifo_ops = {
    .name = "fifo",
    .summary = "first in, first out: evict the key cached longest ago",
    .create = fifo_create, .destroy = destroy, .reset = reset, .access = access_key,
    .insert = insert, .victim = victim, .evict = evict,
};
