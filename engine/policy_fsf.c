/*
 * policy_fsf.c — the segment-lookahead oracle whose hit rate is SCH
 * (reference/lrc-metrics.md): at an access in token t, a resident key's
 * priority is (its accesses after the current position within tokens
 * t..t+L-1, clipped at the sequence end; position of its last access), the
 * lowest evicted. The current token's not yet processed accesses count, the
 * processed ones do not.
 *
 * The window is a sliding range of positions (done, wend): positions are
 * added at wend as tokens enter (the window end is the start of token t+L)
 * and removed at done as they are passed, so each position enters and
 * leaves once and only the keys touched change priority: O(log n) per
 * access, amortized.
 */
#include "engine/policy_impl.h"

#include <stdlib.h>

typedef struct fsf_state {
    eng_pheap h;                 /* resident keys by (count, last)          */
    uint32_t n_keys;
    int lookahead;               /* L tokens                                */
    eng_policy_future f;         /* borrowed view of the sequence           */
    int32_t *count;              /* [n_keys] accesses in the window         */
    int64_t *last;               /* [n_keys] last access, -1 = none         */
    int64_t done, wend, tok;     /* window = positions [done, wend); tok = token of the cursor */
} fsf_state;

static void destroy(void *st)
{
    fsf_state *s = st;
    eng_pheap_free(&s->h);
    free(s->count);
    free(s->last);
    free(s);
}

static int create(void **st, const eng_policy_config *cfg, eng_err *err)
{
    fsf_state *s = eng_policy_calloc(1, sizeof *s, "fsf state", err);
    if (!s)
        return ENG_ENOMEM;
    s->n_keys = cfg->n_keys;
    s->lookahead = cfg->lookahead > 0 ? cfg->lookahead : 1;
    s->count = eng_policy_calloc(cfg->n_keys, sizeof *s->count, "fsf counts", err);
    s->last = eng_policy_calloc(cfg->n_keys, sizeof *s->last, "fsf counts", err);
    if (!s->count || !s->last || eng_pheap_init(&s->h, cfg->n_keys, err)) {
        destroy(s);
        return ENG_ENOMEM;
    }
    *st = s;
    return ENG_OK;
}

static int reset(void *st, const eng_policy_future *f, eng_err *err)
{
    fsf_state *s = st;
    eng_pheap_clear(&s->h);
    for (uint32_t k = 0; k < s->n_keys; k++) {
        s->count[k] = 0;
        s->last[k] = -1;
    }
    s->f = *f;
    s->done = s->wend = s->tok = 0;
    return ENG_OK;
}

static void bump(fsf_state *s, uint32_t key, int32_t delta)
{
    s->count[key] += delta;
    if (eng_pheap_has(&s->h, key))
        eng_pheap_set(&s->h, key, s->count[key], s->last[key]);
}

/* Moves the window so that it holds the positions after pos up to the end
 * of token tok + L - 1. */
static void advance(fsf_state *s, int64_t pos)
{
    while (s->tok < s->f.n_tokens && s->f.token_start[s->tok + 1] <= pos)
        s->tok++;
    int64_t end_tok = s->tok + s->lookahead;
    if (end_tok > s->f.n_tokens)
        end_tok = s->f.n_tokens;
    int64_t target = s->f.token_start[end_tok];
    while (s->wend < target)
        bump(s, s->f.keys[s->wend++], +1);
    while (s->done <= pos && s->done < s->wend)
        bump(s, s->f.keys[s->done++], -1);
}

static void access_key(void *st, uint32_t key, int64_t pos, int hit)
{
    fsf_state *s = st;
    advance(s, pos);
    s->last[key] = pos;
    if (eng_pheap_has(&s->h, key))
        eng_pheap_set(&s->h, key, s->count[key], s->last[key]);
}

static void insert(void *st, uint32_t key, int64_t pos)
{
    fsf_state *s = st;
    eng_pheap_set(&s->h, key, s->count[key], s->last[key]);
}

static int victim(void *st, const uint8_t *pinned, uint32_t *key)
{
    return eng_pheap_min(&((fsf_state *)st)->h, pinned, key);
}

static void evict(void *st, uint32_t key)
{
    eng_pheap_remove(&((fsf_state *)st)->h, key);
}

const eng_policy_ops eng_policy_fsf_ops = {
    .name = "fsf",
    .summary = "oracle: evict the key least used in the next L tokens, ties lru (SCH policy)",
    .flags = ENG_POLICY_NEEDS_FUTURE,
    .create = create, .destroy = destroy, .reset = reset, .access = access_key,
    .insert = insert, .victim = victim, .evict = evict,
};
