/*
 * simulate.c — the replay simulator (see simulate.h for the definitions).
 *
 * State: one policy handle per instance (1 for GLOBAL scope, one per layer
 * for LAYER), each with its own access counter `pos` and, for oracle
 * policies, the future of the current sample built from the trace. The
 * simulator's own state is the clock (now), the link (link_free), and per
 * (layer, expert) the prefetch flag and arrival time.
 *
 * Invariants: the policy handle is the resident set (the simulator never
 * keeps a second one); every access goes through eng_policy_demand, so the
 * engine's store and this replay run the same protocol; pf[g] implies the
 * key is resident (cleared when it is evicted or demanded).
 */
#include "metrics/simulate.h"

#include "engine/predict.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

typedef struct sim_inst {
    eng_policy *pol;
    uint8_t *seen;        /* [n_keys] accessed in this sample               */
    int64_t pos;          /* position of the next access in this sample     */
    uint32_t *fkeys;      /* [max accesses per sample] future (oracles)      */
    int64_t *ftok;        /* [max tokens per sample + 1]                    */
} sim_inst;

enum { LOOK_MISS = 0, LOOK_HIT, LOOK_WARM };

typedef struct sim {
    const met_trace *t;
    const met_sim_config *cfg;
    int32_t L, E, k, l0, n_inst;   /* L layers replayed, from trace layer l0 */
    uint32_t n_keys;               /* per instance                           */
    int oracle;                    /* policy needs the future                */
    sim_inst *inst;
    double now, link_free;         /* us                                     */
    double *ready;                 /* [L*E] prefetch arrival time            */
    uint8_t *pf;                   /* [L*E] prefetched, not yet demanded     */
    uint8_t *low;                  /* [L*E] resident as the low copy         */
    uint8_t *look;                 /* [L*k] token look-up outcome            */
    uint8_t *pf_used;              /* [E] experts of a prefill chunk's layer */
    int64_t *s_hits, *s_acc;       /* [L] this sample                        */
    int32_t *last_ids, *pred_ids;  /* PREDICT: [L][E] last unit's experts and
                                      the pending prediction, per layer      */
    int *last_n, *pred_n;          /* [L]                                    */
    double *pred_score;            /* [E] predictor scratch                  */
    double *rate_sum;              /* [L + 1] per-sample rates, [L] = total  */
    int64_t *rate_n;               /* [L + 1]                                */
    met_sim_result *res;
    eng_err *err;
} sim;

static void *zalloc(size_t n, size_t size, eng_err *err)
{
    void *p = calloc(n ? n : 1, size);
    if (!p)
        eng_err_set(err, ENG_ENOMEM, "simulate: out of memory (%zu x %zu bytes)", n, size);
    return p;
}

/* PREDICT: a predictor of the trace's shape, every layer replayed. */
static int check_predictor(const met_trace *t, const met_sim_config *c, eng_err *err)
{
    if (!c->predictor)
        return eng_err_set(err, ENG_EINVAL, "--prefetch predict needs a predictor");
    eng_predictor_info pi = eng_predictor_get_info(c->predictor);
    if (pi.n_layer != t->info.num_layers || pi.n_expert != t->info.num_experts ||
        pi.layer_offset != t->info.layer_offset)
        return eng_err_set(err, ENG_EINVAL,
                           "--prefetch predict: the predictor has %d layers from layer %d x %d "
                           "experts, the trace %d from layer %d x %d",
                           pi.n_layer, pi.layer_offset, pi.n_expert, t->info.num_layers,
                           t->info.layer_offset, t->info.num_experts);
    if (c->layer != -1)
        return eng_err_set(err, ENG_EINVAL, "--prefetch predict predicts across layers: it "
                                            "replays every layer (no --layer)");
    if (c->predict_n < 0 || c->predict_n > t->info.num_experts || c->predict_kind < 0 ||
        c->predict_kind > ENG_PREDICT_FREQUENCY)
        return eng_err_set(err, ENG_EINVAL, "--predict-n %d: 1..%d experts", c->predict_n,
                           t->info.num_experts);
    return ENG_OK;
}

static int check_config(const met_trace *t, const met_sim_config *c, eng_err *err)
{
    if (c->cache_experts < 1 || c->cache_experts > INT32_MAX)
        return eng_err_set(err, ENG_EINVAL, "--cache-experts: %lld is out of range [1, %d]",
                           (long long)c->cache_experts, INT32_MAX);
    const int32_t off = t->info.layer_offset; /* layers are the model's */
    if (c->layer != -1 && (c->layer < off || c->layer - off >= t->info.num_layers))
        return eng_err_set(err, ENG_EINVAL, "--layer: %d is not a layer of the trace (%d..%d)",
                           c->layer, off, off + t->info.num_layers - 1);
    if (c->prefetch != MET_SIM_PREFETCH_NONE && c->lookup != MET_SIM_LOOKUP_SEQUENTIAL)
        return eng_err_set(err, ENG_EINVAL,
                           "--prefetch %s needs --lookup sequential (token look-up is the "
                           "paper's cache procedure, which has no prefetch)",
                           met_sim_prefetch_name(c->prefetch));
    if (c->prefetch == MET_SIM_PREFETCH_PREDICT) {
        int rc = check_predictor(t, c, err);
        if (rc)
            return rc;
    }
    if (!(c->expert_bytes > 0) || !(c->link_gbps > 0) || !(c->link_latency_us >= 0) ||
        !(c->compute_us >= 0))
        return eng_err_set(err, ENG_EINVAL,
                           "cost model: expert bytes and link bandwidth must be > 0, latency "
                           "and compute >= 0");
    if (c->prefetch != MET_SIM_PREFETCH_NONE && t->info.top_k > 4096)
        return eng_err_set(err, ENG_EUNSUPPORTED, "--prefetch oracle: top_k %d > 4096",
                           t->info.top_k);
    if ((int64_t)t->info.num_layers * t->info.num_experts > INT32_MAX)
        return eng_err_set(err, ENG_EINVAL, "trace: too many layer-experts for one pool");
    if (c->lp_bytes > 0 && (c->lookup != MET_SIM_LOOKUP_SEQUENTIAL ||
                            c->start != MET_SIM_START_COLD))
        return eng_err_set(err, ENG_EINVAL,
                           "low precision: replayed as the engine's store runs it, with "
                           "--lookup sequential and --start cold");
    if (c->lp_bytes > 0 && (c->lp_threshold > 0 || c->lp_last) && !t->weights)
        return eng_err_set(err, ENG_EINVAL,
                           "low precision: the weight rules need a trace with gate weights");
    if (!(c->lp_bytes >= 0) || !(c->lp_threshold >= 0))
        return eng_err_set(err, ENG_EINVAL, "low precision: bytes and threshold must be >= 0");
    if (!c->ops && !eng_policy_find(c->policy))
        return eng_err_set(err, ENG_EINVAL,
                           "unknown policy '%s' (lru, lfu, fifo, random, static, belady, fsf, "
                           "hobbit)",
                           c->policy ? c->policy : "(none)");
    return ENG_OK;
}

/* Access counts per (replayed layer, expert) from the profile trace. */
static int profile_counts(sim *s, uint64_t **out)
{
    const met_trace *p = s->cfg->profile ? s->cfg->profile : s->t;
    if (p->info.num_layers != s->t->info.num_layers ||
        p->info.num_experts != s->t->info.num_experts)
        return eng_err_set(s->err, ENG_EINVAL,
                           "profile trace: %d layers x %d experts, the replayed trace has "
                           "%d x %d", p->info.num_layers, p->info.num_experts,
                           s->t->info.num_layers, s->t->info.num_experts);
    uint64_t *cnt = zalloc((size_t)s->L * s->E, sizeof *cnt, s->err);
    if (!cnt)
        return ENG_ENOMEM;
    int32_t pk = p->info.top_k, pl = p->info.num_layers;
    for (int64_t tok = 0; tok < p->info.num_tokens; tok++)
        for (int32_t li = 0; li < s->L; li++)
            for (int32_t r = 0; r < pk; r++)
                cnt[(size_t)li * s->E + p->ids[(tok * pl + s->l0 + li) * pk + r]]++;
    *out = cnt;
    return ENG_OK;
}

static int open_instances(sim *s)
{
    const met_sim_config *c = s->cfg;
    const eng_policy_ops *ops = c->ops ? c->ops : eng_policy_find(c->policy);
    uint64_t *counts = NULL;
    int rc = ENG_OK;
    if ((ops->flags & ENG_POLICY_NEEDS_PROFILE) && (rc = profile_counts(s, &counts)))
        return rc;
    s->oracle = (ops->flags & ENG_POLICY_NEEDS_FUTURE) != 0;
    int64_t max_t = 0;
    for (int64_t i = 0; i < s->t->info.num_samples; i++) {
        int64_t n = s->t->sample_start[i + 1] - s->t->sample_start[i];
        max_t = n > max_t ? n : max_t;
    }
    int64_t per_tok = s->n_inst == 1 ? (int64_t)s->L * s->k : s->k;
    for (int32_t i = 0; i < s->n_inst && !rc; i++) {
        sim_inst *in = &s->inst[i];
        eng_policy_config pc = {
            .capacity = (uint32_t)c->cache_experts, .n_keys = s->n_keys,
            .seed = c->seed + (uint64_t)i, .lookahead = c->lookahead, .lfu_age = c->lfu_age,
            .profile = counts ? counts + (size_t)i * s->E : NULL, .user = c->ops_user,
            .keys_per_layer = s->n_inst == 1 ? (uint32_t)s->E : 0,
        };
        memcpy(pc.hobbit_w, c->hobbit_w, sizeof pc.hobbit_w);
        rc = eng_policy_open_ops(&in->pol, ops, &pc, s->err);
        if (!rc && !(in->seen = zalloc(s->n_keys, 1, s->err)))
            rc = ENG_ENOMEM;
        if (!rc && s->oracle) {
            in->fkeys = zalloc((size_t)(max_t * per_tok), sizeof *in->fkeys, s->err);
            in->ftok = zalloc((size_t)max_t + 1, sizeof *in->ftok, s->err);
            if (!in->fkeys || !in->ftok)
                rc = ENG_ENOMEM;
        }
    }
    free(counts);
    return rc;
}

static uint16_t expert_at(const sim *s, int64_t tok, int32_t li, int32_t r)
{
    return s->t->ids[(tok * s->t->info.num_layers + s->l0 + li) * s->k + r];
}

static sim_inst *inst_of(sim *s, int32_t li) { return &s->inst[s->n_inst == 1 ? 0 : li]; }

static uint32_t key_of(const sim *s, int32_t li, uint16_t e)
{
    return s->n_inst == 1 ? (uint32_t)li * (uint32_t)s->E + e : e;
}

/* Resets every instance for sample `smp` (first token tok0, T tokens). */
static int begin_sample(sim *s, int64_t tok0, int64_t T)
{
    for (int32_t i = 0; i < s->n_inst; i++) {
        sim_inst *in = &s->inst[i];
        memset(in->seen, 0, s->n_keys);
        in->pos = 0;
        eng_policy_future f = {0}, *fp = NULL;
        if (s->oracle) {
            int32_t la = s->n_inst == 1 ? 0 : i, lb = s->n_inst == 1 ? s->L : i + 1;
            int64_t n = 0;
            for (int64_t t = 0; t < T; t++) {
                in->ftok[t] = n;
                for (int32_t li = la; li < lb; li++)
                    for (int32_t r = 0; r < s->k; r++)
                        in->fkeys[n++] = key_of(s, li, expert_at(s, tok0 + t, li, r));
            }
            in->ftok[T] = n;
            f = (eng_policy_future){in->fkeys, n, in->ftok, T};
            fp = &f;
        }
        int rc = eng_policy_reset(in->pol, fp, s->err);
        if (rc)
            return rc;
    }
    memset(s->pf, 0, (size_t)s->L * s->E);
    for (int32_t l = 0; s->last_n && l < s->L; l++)
        s->last_n[l] = s->pred_n[l] = 0; /* no context, nothing pending */
    memset(s->low, 0, (size_t)s->L * s->E);
    memset(s->s_hits, 0, (size_t)s->L * sizeof *s->s_hits);
    memset(s->s_acc, 0, (size_t)s->L * sizeof *s->s_acc);
    return ENG_OK;
}

/* WARM start: a first access to a non-resident key the policy admits, while
 * the cache (counting `pending` warm hits not yet inserted) has room. */
static int warm_ok(const sim *s, sim_inst *in, uint32_t key, uint32_t pending)
{
    if (s->cfg->start != MET_SIM_START_WARM || in->seen[key])
        return 0;
    return eng_policy_admit(in->pol, key) &&
           (uint64_t)eng_policy_cached_count(in->pol) + pending < eng_policy_capacity(in->pol);
}

/* TOKEN look-up: step 1 of the paper's procedure for the group of token tok
 * that starts at layer li (GLOBAL: all layers; LAYER: layer li). */
static void lookup_group(sim *s, int64_t tok, int32_t li)
{
    int32_t lb = s->n_inst == 1 ? s->L : li + 1;
    sim_inst *in = inst_of(s, li);
    uint32_t pending = 0;
    for (int32_t l = li; l < lb; l++)
        for (int32_t r = 0; r < s->k; r++) {
            uint32_t key = key_of(s, l, expert_at(s, tok, l, r));
            uint8_t *o = &s->look[(size_t)l * s->k + r];
            if (eng_policy_is_cached(in->pol, key))
                *o = LOOK_HIT;
            else if (warm_ok(s, in, key, pending)) {
                *o = LOOK_WARM;
                pending++;
            } else
                *o = LOOK_MISS;
            in->seen[key] = 1;
        }
}

/* A load of expert g (layer-expert) on the link: the low copy when low
 * (counted), else the model's. */
static void link_load(sim *s, size_t g, bool low, double *arrival)
{
    const met_sim_config *c = s->cfg;
    double dur = low ? c->link_latency_us + c->lp_bytes / (c->link_gbps * 1e3) : s->res->load_us;
    double start = s->link_free > s->now ? s->link_free : s->now;
    *arrival = start + dur;
    s->link_free = *arrival;
    s->res->link_busy_us += dur;
    s->low[g] = low;
    s->res->layers[g / (size_t)s->E].lp_loads += low;
}

/* Whether the access of rank r at (tok, li) takes the low copy (w: the
 * trace's weights, or NULL for a chunk access). */
static bool want_low(const sim *s, int64_t tok, int32_t li, int32_t r, uint16_t e)
{
    const met_sim_config *c = s->cfg;
    if (!(c->lp_bytes > 0))
        return false;
    if (c->lp_always && c->lp_always[(size_t)(s->l0 + li) * s->E + e])
        return true;
    if (r < 0)
        return false;
    float w = s->t->weights ? s->t->weights[(tok * s->t->info.num_layers + s->l0 + li) * s->k + r]
                            : 1.0f;
    return w < c->lp_threshold || (c->lp_last && s->k > 1 && r == s->k - 1);
}

static void wait_until(sim *s, double when, met_sim_counts *lc)
{
    if (when > s->now) {
        lc->stall_us += when - s->now;
        s->now = when;
    }
}

static void note_eviction(sim *s, int32_t li, uint32_t victim)
{
    size_t g = s->n_inst == 1 ? victim : (size_t)li * s->E + victim;
    s->res->layers[g / (size_t)s->E].evictions++;
    s->low[g] = 0;
    if (s->pf[g]) {
        s->pf[g] = 0;
        s->res->layers[g / (size_t)s->E].prefetch_wasted++;
    }
}

/* One demand access of expert e at layer li: classify (look: the token
 * look-up's outcome, or -1 to look it up now, SEQUENTIAL), run the policy
 * protocol, charge the cost. low: the access takes the low copy. */
static int demand_expert(sim *s, int32_t li, uint16_t e, int look, bool low)
{
    sim_inst *in = inst_of(s, li);
    uint32_t key = key_of(s, li, e);
    size_t g = (size_t)li * s->E + e;
    met_sim_counts *lc = &s->res->layers[li];
    int rc;
    if (s->low[g] && !low && eng_policy_is_cached(in->pol, key)) {
        lc->lp_upgrades++; /* the low copy cannot serve a high need */
        if ((rc = eng_policy_evict(in->pol, key, s->err)))
            return rc;
        note_eviction(s, li, key);
    }
    if (look < 0) {
        look = eng_policy_is_cached(in->pol, key) ? LOOK_HIT
               : warm_ok(s, in, key, 0)           ? LOOK_WARM
                                                  : LOOK_MISS;
        in->seen[key] = 1;
    }
    eng_policy_result pr;
    if ((rc = eng_policy_demand(in->pol, key, in->pos++, &pr, s->err)))
        return rc;
    if (pr.evicted)
        note_eviction(s, li, pr.victim);
    /* the copy that serves it, as the engine's store reports it */
    const bool served_low = look == LOOK_MISS ? low : s->low[g];
    if ((rc = eng_policy_precision(in->pol, key, !served_low, s->err)))
        return rc;
    lc->accesses++;
    s->s_acc[li]++;
    double arrival;
    if (look == LOOK_MISS) {
        lc->misses++;
        lc->uncached += !pr.inserted;
        link_load(s, g, low, &arrival);
        lc->lp_served += low;
        if (!pr.inserted)
            s->low[g] = 0; /* served, not cached */
        wait_until(s, arrival, lc);
        return ENG_OK;
    }
    lc->lp_served += s->low[g];
    lc->hits++;
    s->s_hits[li]++;
    if (look == LOOK_WARM) {
        lc->warm_hits++;
    } else if (!pr.hit) {
        lc->reloads++;            /* evicted by an earlier access of the token */
        link_load(s, g, low, &arrival);
        wait_until(s, arrival, lc);
    } else if (s->pf[g]) {
        s->pf[g] = 0;
        lc->prefetch_useful++;
        wait_until(s, s->ready[g], lc);
    }
    return ENG_OK;
}

static int demand(sim *s, int64_t tok, int32_t li, int32_t r)
{
    int look = s->cfg->lookup == MET_SIM_LOOKUP_TOKEN ? s->look[(size_t)li * s->k + r] : -1;
    uint16_t e = expert_at(s, tok, li, r);
    return demand_expert(s, li, e, look, want_low(s, tok, li, r, e));
}

/* Pins key and remembers it in pins[*n] (so unpinning costs O(pins)). */
static int pin(sim_inst *in, uint32_t key, uint32_t *pins, int *n, eng_err *err)
{
    pins[(*n)++] = key;
    return eng_policy_pin(in->pol, key, err);
}

/* Loads one expert of the next unit ahead, evicting if needed. */
static int prefetch_one(sim *s, sim_inst *in, int32_t li, uint16_t e, uint32_t *pins, int *np)
{
    uint32_t key = key_of(s, li, e), victim;
    size_t g = (size_t)li * s->E + e;
    met_sim_counts *lc = &s->res->layers[li];
    int rc;
    if (eng_policy_is_cached(in->pol, key) || !eng_policy_admit(in->pol, key))
        return ENG_OK;
    if (eng_policy_cached_count(in->pol) >= eng_policy_capacity(in->pol)) {
        if (eng_policy_cached_count(in->pol) <= eng_policy_pinned_count(in->pol)) {
            lc->prefetch_dropped++;
            return ENG_OK;
        }
        if ((rc = eng_policy_victim(in->pol, &victim, s->err)) ||
            (rc = eng_policy_evict(in->pol, victim, s->err)))
            return rc;
        note_eviction(s, li, victim);
    }
    if ((rc = eng_policy_insert(in->pol, key, in->pos, s->err)))
        return rc;
    s->pf[g] = 1;
    lc->prefetch_issued++;
    link_load(s, g, want_low(s, 0, li, -1, e), &s->ready[g]);
    /* pinned while the rest of its unit is prefetched, so that the unit's
     * own prefetches do not evict each other */
    return pin(in, key, pins, np, s->err);
}

/* Prefetch of experts ids[n] of layer li, while unit (ctok, cli) is
 * computed (its experts pinned when they share a policy instance). */
static int prefetch_ids(sim *s, int64_t ctok, int32_t cli, int32_t li, const int32_t *ids, int n)
{
    sim_inst *in = inst_of(s, li), *cur = inst_of(s, cli);
    /* k <= 4096 and n <= k (oracle) or <= ENG_PREDICT_MAX_EXPERTS: checked in met_sim_run */
    uint32_t pins[4096 + ENG_PREDICT_MAX_EXPERTS];
    int np = 0, rc = ENG_OK;
    for (int32_t r = 0; r < s->k && in == cur && !rc; r++) {
        uint32_t key = key_of(s, cli, expert_at(s, ctok, cli, r));
        if (eng_policy_is_cached(in->pol, key))
            rc = pin(in, key, pins, &np, s->err);
    }
    for (int r = 0; r < n && !rc; r++)
        rc = prefetch_one(s, in, li, (uint16_t)ids[r], pins, &np);
    for (int i = 0; i < np; i++)
        eng_policy_unpin(in->pol, pins[i]);
    return rc;
}

/* Oracle prefetch of unit (tok, li)'s experts. */
static int prefetch_unit(sim *s, int64_t ctok, int32_t cli, int64_t tok, int32_t li)
{
    int32_t ids[4096];
    for (int32_t r = 0; r < s->k; r++)
        ids[r] = expert_at(s, tok, li, r);
    return prefetch_ids(s, ctok, cli, li, ids, s->k);
}

/* PREDICT, as the engine's store does at each layer's prepare: score the
 * pending prediction for unit (tok, li), remember its experts, predict the
 * next unit (nli) and prefetch that prediction (when the next unit is in
 * the sample: has_next). */
static int predict_unit(sim *s, int64_t tok, int32_t li, int32_t nli, int has_next)
{
    met_sim_counts *lc = &s->res->layers[li];
    int32_t *last = s->last_ids + (size_t)li * s->E;
    const int32_t *pr = s->pred_ids + (size_t)li * s->E;
    for (int32_t r = 0; r < s->k; r++)
        last[r] = expert_at(s, tok, li, r);
    for (int i = 0; i < s->pred_n[li]; i++) {
        lc->predicted++;
        for (int32_t r = 0; r < s->k; r++)
            if (last[r] == pr[i]) {
                lc->predicted_used++;
                break;
            }
    }
    s->pred_n[li] = 0;
    s->last_n[li] = s->k;
    if (!has_next)
        return ENG_OK;
    int32_t *out = s->pred_ids + (size_t)nli * s->E;
    s->pred_n[nli] = eng_predictor_predict(
        s->cfg->predictor, (eng_predict_kind)s->cfg->predict_kind, nli, last, s->k,
        s->last_ids + (size_t)nli * s->E, s->last_n[nli],
        s->cfg->predict_n > 0 ? s->cfg->predict_n : s->k, out, s->pred_score);
    return prefetch_ids(s, tok, li, nli, out, s->pred_n[nli]);
}

static int run_unit(sim *s, int64_t tok, int32_t li, int64_t T, int64_t tok0)
{
    if (s->cfg->lookup == MET_SIM_LOOKUP_TOKEN && (s->n_inst > 1 || li == 0))
        lookup_group(s, tok0 + tok, li);
    for (int32_t r = 0; r < s->k; r++) {
        int rc = demand(s, tok0 + tok, li, r);
        if (rc)
            return eng_err_prefix(s->err, "token %lld layer %d", (long long)tok, s->l0 + li);
    }
    if (s->cfg->prefetch != MET_SIM_PREFETCH_NONE) {
        int64_t ntok = li + 1 < s->L ? tok : tok + 1;
        int32_t nli = li + 1 < s->L ? li + 1 : 0;
        int rc = ENG_OK;
        if (s->cfg->prefetch == MET_SIM_PREFETCH_PREDICT)
            rc = predict_unit(s, tok0 + tok, li, nli, ntok < T);
        else if (ntok < T)
            rc = prefetch_unit(s, tok0 + tok, li, tok0 + ntok, nli);
        if (rc)
            return eng_err_prefix(s->err, "prefetch at token %lld layer %d", (long long)tok,
                                  s->l0 + li);
    }
    double c = s->k * s->cfg->compute_us;
    s->now += c;
    s->res->compute_us += c;
    return ENG_OK;
}

static void end_sample(sim *s, int64_t smp)
{
    int64_t hits = 0, acc = 0;
    for (size_t g = 0; g < (size_t)s->L * s->E; g++)
        if (s->pf[g]) {
            s->res->layers[g / (size_t)s->E].prefetch_wasted++;
            s->pf[g] = 0;
        }
    for (int32_t li = 0; li < s->L; li++) {
        hits += s->s_hits[li];
        acc += s->s_acc[li];
        if (s->s_acc[li] > 0) {
            s->rate_sum[li] += (double)s->s_hits[li] / (double)s->s_acc[li];
            s->rate_n[li]++;
        }
    }
    s->res->sample_hits[smp] = hits;
    s->res->sample_accesses[smp] = acc;
    if (acc > 0) {
        s->rate_sum[s->L] += (double)hits / (double)acc;
        s->rate_n[s->L]++;
    }
}

static void finish_counts(met_sim_counts *c, double rate_sum, int64_t rate_n, double bytes,
                          double lp_bytes)
{
    c->hit_rate = c->accesses ? (double)c->hits / (double)c->accesses : 0.0;
    c->sample_hit_rate = rate_n ? rate_sum / (double)rate_n : 0.0;
    c->bytes_moved = (double)(c->misses + c->reloads + c->prefetch_issued - c->lp_loads) * bytes +
                     (double)c->lp_loads * lp_bytes;
}

static void finish(sim *s)
{
    met_sim_result *r = s->res;
    met_sim_counts *t = &r->total;
    for (int32_t li = 0; li < s->L; li++) {
        met_sim_counts *c = &r->layers[li];
        finish_counts(c, s->rate_sum[li], s->rate_n[li], s->cfg->expert_bytes, s->cfg->lp_bytes);
        t->accesses += c->accesses, t->hits += c->hits, t->misses += c->misses;
        t->warm_hits += c->warm_hits, t->reloads += c->reloads, t->uncached += c->uncached;
        t->evictions += c->evictions, t->prefetch_issued += c->prefetch_issued;
        t->prefetch_useful += c->prefetch_useful, t->prefetch_wasted += c->prefetch_wasted;
        t->prefetch_dropped += c->prefetch_dropped, t->stall_us += c->stall_us;
        t->predicted += c->predicted, t->predicted_used += c->predicted_used;
        t->lp_loads += c->lp_loads, t->lp_served += c->lp_served;
        t->lp_upgrades += c->lp_upgrades;
    }
    finish_counts(t, s->rate_sum[s->L], s->rate_n[s->L], s->cfg->expert_bytes,
                  s->cfg->lp_bytes);
    r->time_us = r->compute_us + t->stall_us;
    r->overlap_us = r->link_busy_us - t->stall_us;
    r->tokens_per_s = r->time_us > 0 ? (double)r->n_tokens / (r->time_us * 1e-6) : 0.0;
}

static int alloc_sim(sim *s)
{
    const met_trace *t = s->t;
    met_sim_result *r = s->res;
    size_t LE = (size_t)s->L * s->E;
    r->layers = zalloc((size_t)s->L, sizeof *r->layers, s->err);
    r->sample_hits = zalloc((size_t)t->info.num_samples, sizeof *r->sample_hits, s->err);
    r->sample_accesses = zalloc((size_t)t->info.num_samples, sizeof *r->sample_hits, s->err);
    s->inst = zalloc((size_t)s->n_inst, sizeof *s->inst, s->err);
    s->ready = zalloc(LE, sizeof *s->ready, s->err);
    s->pf = zalloc(LE, 1, s->err);
    s->low = zalloc(LE, 1, s->err);
    s->look = zalloc((size_t)s->L * s->k, 1, s->err);
    s->pf_used = zalloc((size_t)s->E, 1, s->err);
    s->s_hits = zalloc((size_t)s->L, sizeof *s->s_hits, s->err);
    s->s_acc = zalloc((size_t)s->L, sizeof *s->s_acc, s->err);
    s->rate_sum = zalloc((size_t)s->L + 1, sizeof *s->rate_sum, s->err);
    s->rate_n = zalloc((size_t)s->L + 1, sizeof *s->rate_n, s->err);
    if (s->cfg->prefetch == MET_SIM_PREFETCH_PREDICT) {
        s->last_ids = zalloc(LE, sizeof *s->last_ids, s->err);
        s->pred_ids = zalloc(LE, sizeof *s->pred_ids, s->err);
        s->last_n = zalloc((size_t)s->L, sizeof *s->last_n, s->err);
        s->pred_n = zalloc((size_t)s->L, sizeof *s->pred_n, s->err);
        s->pred_score = zalloc((size_t)s->E, sizeof *s->pred_score, s->err);
        if (!s->last_ids || !s->pred_ids || !s->last_n || !s->pred_n || !s->pred_score)
            return ENG_ENOMEM;
    }
    if (!r->layers || !r->sample_hits || !r->sample_accesses || !s->inst || !s->ready ||
        !s->pf || !s->low || !s->look || !s->pf_used || !s->s_hits || !s->s_acc || !s->rate_sum || !s->rate_n)
        return ENG_ENOMEM;
    return ENG_OK;
}

static void free_sim(sim *s)
{
    for (int32_t i = 0; s->inst && i < s->n_inst; i++) {
        eng_policy_free(s->inst[i].pol);
        free(s->inst[i].seen);
        free(s->inst[i].fkeys);
        free(s->inst[i].ftok);
    }
    free(s->inst);
    free(s->ready);
    free(s->pf);
    free(s->low);
    free(s->look);
    free(s->pf_used);
    free(s->s_hits);
    free(s->s_acc);
    free(s->rate_sum);
    free(s->rate_n);
    free(s->last_ids);
    free(s->pred_ids);
    free(s->last_n);
    free(s->pred_n);
    free(s->pred_score);
}

/* A prefill chunk of tokens [c0, c1) of the sample at tok0, as the
 * engine's store sees it: layer by layer, each expert the chunk routes to
 * once, in ascending id (engine/ffn.c bat_experts); compute for every
 * (token, slot) pair. */
static int run_chunk(sim *s, int64_t tok0, int64_t c0, int64_t c1)
{
    for (int32_t li = 0; li < s->L; li++) {
        uint8_t *used = s->pf_used;
        memset(used, 0, (size_t)s->E);
        for (int64_t tok = c0; tok < c1; tok++)
            for (int32_t r = 0; r < s->k; r++)
                used[expert_at(s, tok0 + tok, li, r)] = 1;
        for (int32_t e = 0; e < s->E; e++) {
            int rc = used[e] ? demand_expert(s, li, (uint16_t)e, -1,
                                             want_low(s, 0, li, -1, (uint16_t)e))
                             : ENG_OK;
            if (rc)
                return eng_err_prefix(s->err, "prompt tokens %lld..%lld layer %d",
                                      (long long)c0, (long long)(c1 - 1), s->l0 + li);
        }
        double c = (double)(c1 - c0) * s->k * s->cfg->compute_us;
        s->now += c;
        s->res->compute_us += c;
    }
    return ENG_OK;
}

/* Whether sample smp's prompt replays as the engine ran it (chunks), and
 * if not although it was batched, why (kept for the result's note). */
static int batched_prompt(sim *s, int64_t smp)
{
    met_trace_prompt p = met_trace_prompt_of(s->t, smp);
    if (p.tokens == 0 || p.batch <= 1 || s->cfg->prompt == MET_SIM_PROMPT_TOKENS)
        return 0;
    const char *why = s->cfg->lookup == MET_SIM_LOOKUP_TOKEN ? "--lookup token looks up per token"
                      : s->oracle ? "the policy's future is per token"
                      : s->cfg->prefetch == MET_SIM_PREFETCH_ORACLE
                          ? "oracle prefetch looks one unit ahead per token"
                      : s->cfg->prefetch == MET_SIM_PREFETCH_PREDICT
                          ? "predict prefetch predicts one unit ahead per token"
                          : NULL;
    if (why && !s->res->prompt_note)
        s->res->prompt_note = why;
    return why == NULL;
}

static int replay(sim *s)
{
    const met_trace *t = s->t;
    for (int64_t smp = 0; smp < t->info.num_samples; smp++) {
        int64_t tok0 = t->sample_start[smp], T = t->sample_start[smp + 1] - tok0, tok = 0;
        int rc = begin_sample(s, tok0, T);
        if (!rc && batched_prompt(s, smp)) {
            met_trace_prompt p = met_trace_prompt_of(t, smp);
            for (; tok < p.tokens && !rc; tok += p.batch)
                rc = run_chunk(s, tok0, tok, tok + p.batch < p.tokens ? tok + p.batch : p.tokens);
            s->res->batched_samples++;
            tok = p.tokens;
        }
        for (; tok < T && !rc; tok++)
            for (int32_t li = 0; li < s->L && !rc; li++)
                rc = run_unit(s, tok, li, T, tok0);
        if (rc)
            return eng_err_prefix(s->err, "sample %lld", (long long)smp);
        end_sample(s, smp);
    }
    return ENG_OK;
}

int met_sim_run(const met_trace *t, const met_sim_config *cfg, met_sim_result **out,
                eng_err *err)
{
    *out = NULL;
    int rc = met_trace_validate(t, "trace", err);
    if (!rc && cfg->profile)
        rc = met_trace_validate(cfg->profile, "profile trace", err);
    if (!rc)
        rc = check_config(t, cfg, err);
    if (rc)
        return rc;
    met_sim_result *r = zalloc(1, sizeof *r, err);
    if (!r)
        return ENG_ENOMEM;
    sim s = {.t = t, .cfg = cfg, .res = r, .err = err, .E = t->info.num_experts,
             .k = t->info.top_k};
    s.l0 = cfg->layer >= 0 ? cfg->layer - t->info.layer_offset : 0;
    s.L = cfg->layer >= 0 ? 1 : t->info.num_layers;
    s.n_inst = cfg->scope == MET_SIM_SCOPE_GLOBAL ? 1 : s.L;
    s.n_keys = (uint32_t)(cfg->scope == MET_SIM_SCOPE_GLOBAL ? s.L * s.E : s.E);
    r->n_layers = s.L;
    r->first_layer = s.l0 + t->info.layer_offset;
    r->n_samples = t->info.num_samples;
    r->n_tokens = t->info.num_tokens;
    r->load_us = cfg->link_latency_us + cfg->expert_bytes / (cfg->link_gbps * 1e3);
    rc = alloc_sim(&s);
    if (!rc)
        rc = open_instances(&s);
    if (!rc)
        rc = replay(&s);
    if (!rc)
        finish(&s);
    free_sim(&s);
    if (rc) {
        met_sim_result_free(r);
        return rc;
    }
    *out = r;
    return ENG_OK;
}

void met_sim_result_free(met_sim_result *r)
{
    if (!r)
        return;
    free(r->layers);
    free(r->sample_hits);
    free(r->sample_accesses);
    free(r);
}
