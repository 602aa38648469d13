/*
 * policy_hobbit.c — HOBBIT's sequence-level multidimensional cache policy
 * (Tang et al., arXiv 2411.01433): each resident key is scored on four
 * dimensions, each mapped to [0, 1] (1 = worth keeping), and the key of the
 * lowest weighted sum goes, ties to the lower key. docs/policies.md gives
 * the definitions; the paper's exact formula was not available, so these
 * are moebench's:
 *
 *   R  recency: tick of the key's last access or insertion (one tick per
 *      access and per insert, so prefetches count as recent), min-max
 *      normalized over the resident set (1 when all are equal)
 *   F  frequency: accesses this sequence, counted also while not resident
 *      (as lfu), divided by the largest count of a resident key (0 when 0)
 *   H  high-precision share: of the accesses reported through
 *      ops->precision, the share served by the high copy (1 with no
 *      report): an expert mostly served low is cheap to reload
 *   D  layer nearness (a global pool, keys_per_layer = E > 0, L = n_keys /
 *      E layers > 1): d = (layer(key) - current layer) mod L, the current
 *      layer being that of the last access; D = 1 - d / (L - 1). The
 *      current layer's keys are 1, the layer just computed 0. Else 0.
 *
 *   priority = wr R + wf F + wh H + wd D   (weights: config.hobbit_w,
 *                                           all zero -> 1 each)
 *
 * Victim: O(resident) per call (two passes: normalizers, then scores);
 * every other call O(1).
 */
#include "engine/policy_impl.h"

#include <stdlib.h>

typedef struct hobbit_state {
    uint32_t n_keys, per_layer, n_layers;
    double w[4];          /* recency, frequency, high share, nearness     */
    int64_t tick;         /* events this sequence                         */
    int64_t *last;        /* [n_keys] tick of last access or insert       */
    uint64_t *count;      /* [n_keys] accesses this sequence              */
    uint64_t *high, *uses; /* [n_keys] precision reports: high, all       */
    uint32_t *res;        /* [capacity] resident keys, any order          */
    int32_t *at;          /* [n_keys] index in res, -1 when absent        */
    uint32_t n_res, cur_layer;
} hobbit_state;

static void destroy(void *st)
{
    hobbit_state *s = st;
    free(s->last);
    free(s->count);
    free(s->high);
    free(s->uses);
    free(s->res);
    free(s->at);
    free(s);
}

static void set_weights(hobbit_state *s, const double *w)
{
    const int any = w[0] > 0 || w[1] > 0 || w[2] > 0 || w[3] > 0;
    for (int i = 0; i < 4; i++)
        s->w[i] = any ? w[i] : 1.0;
}

static int create(void **st, const eng_policy_config *cfg, eng_err *err)
{
    hobbit_state *s = eng_policy_calloc(1, sizeof *s, "hobbit state", err);
    if (!s)
        return ENG_ENOMEM;
    const size_t n = cfg->n_keys;
    s->n_keys = cfg->n_keys;
    s->per_layer = cfg->keys_per_layer;
    s->n_layers = s->per_layer ? cfg->n_keys / s->per_layer : 1;
    set_weights(s, cfg->hobbit_w);
    s->last = eng_policy_calloc(n, sizeof *s->last, "hobbit recency", err);
    s->count = eng_policy_calloc(n, sizeof *s->count, "hobbit counts", err);
    s->high = eng_policy_calloc(n, sizeof *s->high, "hobbit counts", err);
    s->uses = eng_policy_calloc(n, sizeof *s->uses, "hobbit counts", err);
    s->at = eng_policy_calloc(n, sizeof *s->at, "hobbit index", err);
    s->res = eng_policy_calloc(cfg->capacity, sizeof *s->res, "hobbit resident set", err);
    if (!s->last || !s->count || !s->high || !s->uses || !s->at || !s->res) {
        destroy(s);
        return ENG_ENOMEM;
    }
    *st = s;
    return ENG_OK;
}

static int reset(void *st, const eng_policy_future *future, eng_err *err)
{
    hobbit_state *s = st;
    for (uint32_t k = 0; k < s->n_keys; k++) {
        s->last[k] = -1;
        s->count[k] = s->high[k] = s->uses[k] = 0;
        s->at[k] = -1;
    }
    s->n_res = s->cur_layer = 0;
    s->tick = 0;
    return ENG_OK;
}

static void access_key(void *st, uint32_t key, int64_t pos, int hit)
{
    hobbit_state *s = st;
    s->count[key]++;
    s->last[key] = s->tick++;
    if (s->per_layer)
        s->cur_layer = key / s->per_layer;
}

static void precision(void *st, uint32_t key, int high)
{
    hobbit_state *s = st;
    s->uses[key]++;
    s->high[key] += high != 0;
}

static void insert(void *st, uint32_t key, int64_t pos)
{
    hobbit_state *s = st;
    s->last[key] = s->tick++;
    s->at[key] = (int32_t)s->n_res;
    s->res[s->n_res++] = key;
}

static void evict(void *st, uint32_t key)
{
    hobbit_state *s = st;
    const uint32_t i = (uint32_t)s->at[key], moved = s->res[--s->n_res];
    s->res[i] = moved;
    s->at[moved] = (int32_t)i;
    s->at[key] = -1;
}

/* The four dimensions' normalizers over the resident set. */
typedef struct norms {
    int64_t last_min, last_max;
    uint64_t count_max;
} norms;

static norms resident_norms(const hobbit_state *s)
{
    norms n = {INT64_MAX, INT64_MIN, 0};
    for (uint32_t i = 0; i < s->n_res; i++) {
        const uint32_t k = s->res[i];
        n.last_min = s->last[k] < n.last_min ? s->last[k] : n.last_min;
        n.last_max = s->last[k] > n.last_max ? s->last[k] : n.last_max;
        n.count_max = s->count[k] > n.count_max ? s->count[k] : n.count_max;
    }
    return n;
}

static double score(const hobbit_state *s, const norms *n, uint32_t k)
{
    const double r = n->last_max > n->last_min
                         ? (double)(s->last[k] - n->last_min) / (double)(n->last_max - n->last_min)
                         : 1.0;
    const double f = n->count_max ? (double)s->count[k] / (double)n->count_max : 0.0;
    const double h = s->uses[k] ? (double)s->high[k] / (double)s->uses[k] : 1.0;
    double d = 0.0;
    if (s->per_layer && s->n_layers > 1) {
        const uint32_t dist = (k / s->per_layer + s->n_layers - s->cur_layer) % s->n_layers;
        d = 1.0 - (double)dist / (double)(s->n_layers - 1);
    }
    return s->w[0] * r + s->w[1] * f + s->w[2] * h + s->w[3] * d;
}

static int victim(void *st, const uint8_t *pinned, uint32_t *key)
{
    const hobbit_state *s = st;
    const norms n = resident_norms(s);
    int found = 0;
    double best = 0;
    for (uint32_t i = 0; i < s->n_res; i++) {
        const uint32_t k = s->res[i];
        if (pinned && pinned[k])
            continue;
        const double p = score(s, &n, k);
        if (!found || p < best || (p == best && k < *key)) {
            best = p;
            *key = k;
            found = 1;
        }
    }
    return found ? 0 : -1;
}

const eng_policy_ops eng_policy_hobbit_ops = {
    .name = "hobbit",
    .summary = "HOBBIT's multidimensional score: recency, frequency, high-precision share, "
               "layer nearness (weighted)",
    .create = create, .destroy = destroy, .reset = reset, .access = access_key,
    .insert = insert, .victim = victim, .evict = evict, .precision = precision,
};
