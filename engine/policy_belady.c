/*
 * policy_belady.c — Belady's MIN: evict the resident key whose next access
 * is farthest in the future; a key never accessed again has next access
 * N + key (N = accesses in the sequence), so among those the highest key
 * goes first, as in the paper's code (reference/lrc-metrics.md).
 *
 * At reset the accesses are bucketed by key (occ, a counting sort, O(N +
 * n_keys)); cur[k] walks key k's bucket forward as positions pass, so the
 * next use of k at or after any later position is found in amortized O(1).
 * A resident key's priority is fixed between its accesses (nothing else
 * changes its next use), so a heap ordered by -next_use suffices.
 */
#include "engine/policy_impl.h"

#include <stdlib.h>

typedef struct belady_state {
    eng_pheap h;          /* resident keys by -next_use                    */
    uint32_t n_keys;
    int64_t n;            /* accesses in the sequence                      */
    int64_t *occ;         /* [n] positions, grouped by key, ascending      */
    int64_t *start;       /* [n_keys + 1] bucket offsets into occ          */
    int64_t *cur;         /* [n_keys] first bucket entry not yet passed    */
    int64_t occ_cap;
} belady_state;

static void destroy(void *st)
{
    belady_state *s = st;
    eng_pheap_free(&s->h);
    free(s->occ);
    free(s->start);
    free(s->cur);
    free(s);
}

static int create(void **st, const eng_policy_config *cfg, eng_err *err)
{
    belady_state *s = eng_policy_calloc(1, sizeof *s, "belady state", err);
    if (!s)
        return ENG_ENOMEM;
    s->n_keys = cfg->n_keys;
    s->start = eng_policy_calloc((size_t)cfg->n_keys + 1, sizeof *s->start, "belady", err);
    s->cur = eng_policy_calloc(cfg->n_keys, sizeof *s->cur, "belady", err);
    if (!s->start || !s->cur || eng_pheap_init(&s->h, cfg->n_keys, err)) {
        destroy(s);
        return ENG_ENOMEM;
    }
    *st = s;
    return ENG_OK;
}

static int reset(void *st, const eng_policy_future *f, eng_err *err)
{
    belady_state *s = st;
    eng_pheap_clear(&s->h);
    if (f->n_access > s->occ_cap) {
        int64_t *occ = realloc(s->occ, (size_t)f->n_access * sizeof *occ);
        if (!occ)
            return eng_err_set(err, ENG_ENOMEM, "out of memory for %lld accesses",
                               (long long)f->n_access);
        s->occ = occ;
        s->occ_cap = f->n_access;
    }
    s->n = f->n_access;
    for (uint32_t k = 0; k <= s->n_keys; k++)
        s->start[k] = 0;
    for (int64_t i = 0; i < f->n_access; i++)
        s->start[f->keys[i] + 1]++;
    for (uint32_t k = 0; k < s->n_keys; k++) {
        s->start[k + 1] += s->start[k];
        s->cur[k] = s->start[k];
    }
    for (int64_t i = 0; i < f->n_access; i++)
        s->occ[s->cur[f->keys[i]]++] = i;
    for (uint32_t k = 0; k < s->n_keys; k++)
        s->cur[k] = s->start[k];
    return ENG_OK;
}

/* Next access of key at a position >= from (skipping passed ones). */
static int64_t next_use(belady_state *s, uint32_t key, int64_t from)
{
    int64_t end = s->start[key + 1];
    while (s->cur[key] < end && s->occ[s->cur[key]] < from)
        s->cur[key]++;
    return s->cur[key] < end ? s->occ[s->cur[key]] : s->n + (int64_t)key;
}

static void access_key(void *st, uint32_t key, int64_t pos, int hit)
{
    belady_state *s = st;
    int64_t next = next_use(s, key, pos + 1);
    if (eng_pheap_has(&s->h, key))
        eng_pheap_set(&s->h, key, -next, 0);
}

static void insert(void *st, uint32_t key, int64_t pos)
{
    belady_state *s = st;
    eng_pheap_set(&s->h, key, -next_use(s, key, pos), 0);
}

static int victim(void *st, const uint8_t *pinned, uint32_t *key)
{
    return eng_pheap_min(&((belady_state *)st)->h, pinned, key);
}

static void evict(void *st, uint32_t key)
{
    eng_pheap_remove(&((belady_state *)st)->h, key);
}

const eng_policy_ops eng_policy_belady_ops = {
    .name = "belady",
    .summary = "oracle: evict the key used farthest in the future (needs a trace)",
    .flags = ENG_POLICY_NEEDS_FUTURE,
    .create = create, .destroy = destroy, .reset = reset, .access = access_key,
    .insert = insert, .victim = victim, .evict = evict,
};
