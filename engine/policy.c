/*
 * policy.c — the policy handle (resident set, pins, checks, the demand
 * protocol) and the registry of built-in policies. See policy.h.
 *
 * Invariants kept here, so that a policy (built-in, user C, Lua) can rely on
 * them and cannot break them: n_cached == number of keys with cached[k];
 * n_cached <= capacity; pinned[k] implies cached[k]; ops->insert is called
 * only for a key that is not cached, ops->evict and a victim only for one
 * that is; with a future, every access satisfies keys[pos] == key.
 */
#include "engine/policy_impl.h"

#include <stdlib.h>
#include <string.h>

struct eng_policy {
    const eng_policy_ops *ops;
    void *st;                    /* the policy's own state                   */
    uint32_t capacity, n_keys;
    uint8_t *cached;             /* [n_keys] 1 when resident                 */
    uint8_t *pinned;             /* [n_keys] 1 when pinned                   */
    uint32_t n_cached, n_pinned;
    int in_sequence;             /* reset done (or not needed)               */
    int64_t min_pos;             /* oracle policies: next access must be >= this */
    eng_policy_future fut;       /* valid when ops needs the future          */
    eng_err fail;                /* the sticky error; fail.code 0 while none */
};

/* Returns the sticky error (copied into err), or ENG_OK. */
static int sticky(const eng_policy *p, eng_err *err)
{
    if (!p->fail.code)
        return ENG_OK;
    if (err)
        *err = p->fail;
    return p->fail.code;
}

/* After a callback: a policy that reports an error makes it sticky. */
static int after_callback(eng_policy *p, eng_err *err)
{
    eng_err e = {0};
    int rc;
    if (!p->ops->status || !(rc = p->ops->status(p->st, &e)))
        return ENG_OK;
    p->fail = e;
    p->fail.code = rc;
    return sticky(p, err);
}

/* Any other failure of a call sticks too. */
static int stick(eng_policy *p, int rc, eng_err *err)
{
    if (rc && !p->fail.code) {
        p->fail = *err;
        p->fail.code = rc;
    }
    return rc;
}

int eng_policy_status(const eng_policy *p, eng_err *err)
{
    return sticky(p, err);
}

static const eng_policy_ops *const builtins[] = {
    &eng_policy_lru_ops,    &eng_policy_lfu_ops,    &eng_policy_fifo_ops,
    &eng_policy_random_ops, &eng_policy_static_ops, &eng_policy_belady_ops,
    &eng_policy_fsf_ops,    &eng_policy_hobbit_ops,
};

size_t eng_policy_builtin_count(void) { return sizeof builtins / sizeof builtins[0]; }

const eng_policy_ops *eng_policy_builtin(size_t i)
{
    return i < eng_policy_builtin_count() ? builtins[i] : NULL;
}

const eng_policy_ops *eng_policy_find(const char *name)
{
    for (size_t i = 0; name && i < eng_policy_builtin_count(); i++)
        if (strcmp(builtins[i]->name, name) == 0)
            return builtins[i];
    return NULL;
}

static int check_config(const eng_policy_ops *ops, const eng_policy_config *cfg, eng_err *err)
{
    const char *n = ops->name ? ops->name : "(unnamed)";
    if (!cfg)
        return eng_err_set(err, ENG_EINVAL, "policy '%s': no configuration", n);
    if (cfg->n_keys < 1 || cfg->n_keys > (uint32_t)INT32_MAX)
        return eng_err_set(err, ENG_EINVAL, "policy '%s': n_keys %u out of range [1, %d]", n,
                           cfg->n_keys, INT32_MAX);
    if (cfg->capacity < 1)
        return eng_err_set(err, ENG_EINVAL, "policy '%s': capacity must be at least 1", n);
    if (cfg->lookahead < 0)
        return eng_err_set(err, ENG_EINVAL, "policy '%s': lookahead %d is negative", n,
                           cfg->lookahead);
    if (cfg->lfu_age < 0)
        return eng_err_set(err, ENG_EINVAL, "policy '%s': lfu_age is negative", n);
    if (cfg->keys_per_layer && cfg->n_keys % cfg->keys_per_layer)
        return eng_err_set(err, ENG_EINVAL, "policy '%s': keys_per_layer %u does not divide "
                           "n_keys %u", n, cfg->keys_per_layer, cfg->n_keys);
    for (int i = 0; i < 4; i++)
        if (!(cfg->hobbit_w[i] >= 0 && cfg->hobbit_w[i] <= 1e6))
            return eng_err_set(err, ENG_EINVAL, "policy '%s': hobbit weight %d is %g (0..1e6)",
                               n, i + 1, cfg->hobbit_w[i]);
    if ((ops->flags & ENG_POLICY_NEEDS_PROFILE) && !cfg->profile)
        return eng_err_set(err, ENG_EINVAL, "policy '%s': needs a profile (access counts)", n);
    if (!ops->create || !ops->destroy || !ops->reset || !ops->access || !ops->insert ||
        !ops->victim || !ops->evict)
        return eng_err_set(err, ENG_EINVAL, "policy '%s': ops table lacks a callback", n);
    return ENG_OK;
}

int eng_policy_open(eng_policy **out, const char *name, const eng_policy_config *cfg,
                    eng_err *err)
{
    *out = NULL;
    const eng_policy_ops *ops = eng_policy_find(name);
    if (!ops)
        return eng_err_set(err, ENG_EINVAL,
                           "unknown policy '%s' (lru, lfu, fifo, random, static, belady, fsf, hobbit)",
                           name ? name : "(null)");
    return eng_policy_open_ops(out, ops, cfg, err);
}

int eng_policy_open_ops(eng_policy **out, const eng_policy_ops *ops,
                        const eng_policy_config *cfg, eng_err *err)
{
    *out = NULL;
    if (!ops)
        return eng_err_set(err, ENG_EINVAL, "policy: no ops table");
    int rc = check_config(ops, cfg, err);
    if (rc)
        return rc;
    eng_policy *p = eng_policy_calloc(1, sizeof *p, "policy handle", err);
    if (!p)
        return ENG_ENOMEM;
    p->ops = ops;
    p->capacity = cfg->capacity;
    p->n_keys = cfg->n_keys;
    p->cached = eng_policy_calloc(cfg->n_keys, 1, "resident set", err);
    p->pinned = eng_policy_calloc(cfg->n_keys, 1, "pins", err);
    if (!p->cached || !p->pinned) {
        eng_policy_free(p);
        return ENG_ENOMEM;
    }
    rc = ops->create(&p->st, cfg, err);
    if (rc) {
        p->st = NULL;
        eng_policy_free(p);
        return eng_err_prefix(err, "policy '%s'", ops->name);
    }
    p->in_sequence = !(ops->flags & ENG_POLICY_NEEDS_FUTURE);
    *out = p;
    return ENG_OK;
}

void eng_policy_free(eng_policy *p)
{
    if (!p)
        return;
    if (p->st)
        p->ops->destroy(p->st);
    free(p->cached);
    free(p->pinned);
    free(p);
}

static int check_future(const eng_policy *p, const eng_policy_future *f, eng_err *err)
{
    const char *n = p->ops->name;
    if (!f)
        return eng_err_set(err, ENG_EINVAL,
                           "policy '%s' is an oracle: it needs the future access sequence "
                           "(a trace of the same input)", n);
    if (f->n_access < 0 || f->n_tokens < 0 || (f->n_access > 0 && !f->keys) || !f->token_start)
        return eng_err_set(err, ENG_EINVAL, "policy '%s': future view is incomplete", n);
    if (f->token_start[0] != 0 || f->token_start[f->n_tokens] != f->n_access)
        return eng_err_set(err, ENG_EINVAL,
                           "policy '%s': future token offsets do not span 0..%lld", n,
                           (long long)f->n_access);
    for (int64_t t = 0; t < f->n_tokens; t++)
        if (f->token_start[t + 1] < f->token_start[t])
            return eng_err_set(err, ENG_EINVAL,
                               "policy '%s': future token %lld: offsets decrease", n,
                               (long long)t);
    for (int64_t i = 0; i < f->n_access; i++)
        if (f->keys[i] >= p->n_keys)
            return eng_err_set(err, ENG_EINVAL,
                               "policy '%s': future access %lld: key %u >= n_keys %u", n,
                               (long long)i, f->keys[i], p->n_keys);
    return ENG_OK;
}

int eng_policy_reset(eng_policy *p, const eng_policy_future *future, eng_err *err)
{
    if (p->fail.code)
        return sticky(p, err);
    int needs = (p->ops->flags & ENG_POLICY_NEEDS_FUTURE) != 0;
    if (needs || future) {
        int rc = check_future(p, future, err);
        if (rc)
            return rc;
    }
    memset(p->cached, 0, p->n_keys);
    memset(p->pinned, 0, p->n_keys);
    p->n_cached = p->n_pinned = 0;
    p->min_pos = 0;
    p->fut = future ? *future : (eng_policy_future){0};
    int rc = p->ops->reset(p->st, future, err);
    if (rc) {
        p->in_sequence = 0;
        return eng_err_prefix(err, "policy '%s': reset", p->ops->name);
    }
    p->in_sequence = 1;
    return ENG_OK;
}

static int check_key(const eng_policy *p, uint32_t key, eng_err *err)
{
    if (p->fail.code)
        return sticky(p, err);
    if (!p->in_sequence)
        return eng_err_set(err, ENG_ESTATE, "policy '%s': no sequence started (call reset)",
                           p->ops->name);
    if (key >= p->n_keys)
        return eng_err_set(err, ENG_EINVAL, "policy '%s': key %u >= n_keys %u", p->ops->name,
                           key, p->n_keys);
    return ENG_OK;
}

int eng_policy_access(eng_policy *p, uint32_t key, int64_t pos, int hit, eng_err *err)
{
    int rc = check_key(p, key, err);
    if (rc)
        return rc;
    if (pos < 0)
        return eng_err_set(err, ENG_EINVAL, "policy '%s': access position %lld is negative",
                           p->ops->name, (long long)pos);
    if (p->ops->flags & ENG_POLICY_NEEDS_FUTURE) {
        if (pos >= p->fut.n_access)
            return eng_err_set(err, ENG_ESTATE,
                               "policy '%s': access %lld is past the end of the trace (%lld "
                               "accesses)", p->ops->name, (long long)pos,
                               (long long)p->fut.n_access);
        if (pos < p->min_pos)
            return eng_err_set(err, ENG_ESTATE,
                               "policy '%s': access position %lld after %lld (positions must "
                               "increase)", p->ops->name, (long long)pos,
                               (long long)p->min_pos - 1);
        if (p->fut.keys[pos] != key)
            return eng_err_set(err, ENG_ESTATE,
                               "policy '%s': access %lld is key %u but the trace says %u (the "
                               "run does not match the trace)", p->ops->name, (long long)pos,
                               key, p->fut.keys[pos]);
    }
    p->ops->access(p->st, key, pos, hit);
    p->min_pos = pos + 1;
    return after_callback(p, err);
}

int eng_policy_admit(eng_policy *p, uint32_t key)
{
    if (key >= p->n_keys || p->fail.code)
        return 0;
    if (!p->ops->admit)
        return 1;
    int yes = p->ops->admit(p->st, key) != 0;
    return after_callback(p, NULL) ? 0 : yes;
}

int eng_policy_victim(eng_policy *p, uint32_t *key, eng_err *err)
{
    if (p->fail.code)
        return sticky(p, err);
    if (p->n_cached <= p->n_pinned)
        return eng_err_set(err, ENG_ESTATE, "policy '%s': nothing to evict (%u cached, %u pinned)",
                           p->ops->name, p->n_cached, p->n_pinned);
    uint32_t k = 0;
    int none = p->ops->victim(p->st, p->n_pinned ? p->pinned : NULL, &k);
    int rc = after_callback(p, err);
    if (rc)
        return rc;
    if (none)
        return stick(p, eng_err_set(err, ENG_ESTATE,
                                    "policy '%s' found no victim among %u cached keys",
                                    p->ops->name, p->n_cached), err);
    if (k >= p->n_keys || !p->cached[k] || p->pinned[k])
        return stick(p, eng_err_set(err, ENG_ESTATE, "policy '%s' chose key %u, which is %s",
                                    p->ops->name, k,
                                    k >= p->n_keys    ? "out of range"
                                    : !p->cached[k] ? "not cached"
                                                    : "pinned"), err);
    *key = k;
    return ENG_OK;
}

int eng_policy_insert(eng_policy *p, uint32_t key, int64_t pos, eng_err *err)
{
    int rc = check_key(p, key, err);
    if (rc)
        return rc;
    if (p->cached[key])
        return eng_err_set(err, ENG_ESTATE, "policy '%s': key %u inserted twice", p->ops->name,
                           key);
    if (p->n_cached >= p->capacity)
        return eng_err_set(err, ENG_ESTATE, "policy '%s': insert of key %u into a full cache",
                           p->ops->name, key);
    p->ops->insert(p->st, key, pos);
    p->cached[key] = 1;
    p->n_cached++;
    return after_callback(p, err);
}

int eng_policy_evict(eng_policy *p, uint32_t key, eng_err *err)
{
    int rc = check_key(p, key, err);
    if (rc)
        return rc;
    if (!p->cached[key] || p->pinned[key])
        return eng_err_set(err, ENG_ESTATE, "policy '%s': evict of key %u, which is %s",
                           p->ops->name, key, p->cached[key] ? "pinned" : "not cached");
    p->ops->evict(p->st, key);
    p->cached[key] = 0;
    p->n_cached--;
    return after_callback(p, err);
}

int eng_policy_demand(eng_policy *p, uint32_t key, int64_t pos, eng_policy_result *res,
                      eng_err *err)
{
    *res = (eng_policy_result){0};
    int hit = key < p->n_keys && p->cached[key];
    int rc = eng_policy_access(p, key, pos, hit, err);
    if (rc)
        return rc;
    res->hit = hit;
    if (hit)
        return ENG_OK;
    if (!eng_policy_admit(p, key))
        return sticky(p, err);
    if (p->n_cached >= p->capacity) {
        rc = eng_policy_victim(p, &res->victim, err);
        if (!rc)
            rc = eng_policy_evict(p, res->victim, err);
        if (rc)
            return rc;
        res->evicted = 1;
    }
    rc = eng_policy_insert(p, key, pos, err);
    if (rc)
        return rc;
    res->inserted = 1;
    return ENG_OK;
}

int eng_policy_precision(eng_policy *p, uint32_t key, int high, eng_err *err)
{
    int rc = check_key(p, key, err);
    if (rc || !p->ops->precision)
        return rc;
    p->ops->precision(p->st, key, high != 0);
    return after_callback(p, err);
}

int eng_policy_pin(eng_policy *p, uint32_t key, eng_err *err)
{
    int rc = check_key(p, key, err);
    if (rc)
        return rc;
    if (!p->cached[key])
        return eng_err_set(err, ENG_ESTATE, "policy '%s': pin of key %u, which is not cached",
                           p->ops->name, key);
    if (!p->pinned[key]) {
        p->pinned[key] = 1;
        p->n_pinned++;
    }
    return ENG_OK;
}

void eng_policy_unpin(eng_policy *p, uint32_t key)
{
    if (key < p->n_keys && p->pinned[key]) {
        p->pinned[key] = 0;
        p->n_pinned--;
    }
}

int eng_policy_is_cached(const eng_policy *p, uint32_t key)
{
    return key < p->n_keys && p->cached[key];
}

uint32_t eng_policy_cached_count(const eng_policy *p) { return p->n_cached; }
uint32_t eng_policy_pinned_count(const eng_policy *p) { return p->n_pinned; }
uint32_t eng_policy_capacity(const eng_policy *p) { return p->capacity; }
const char *eng_policy_name(const eng_policy *p) { return p->ops->name; }
unsigned eng_policy_flags(const eng_policy *p) { return p->ops->flags; }
