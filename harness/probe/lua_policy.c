/*
 * lua_policy.c — the Lua policy bridge. See probe.h.
 *
 * Design notes. The bridge keeps its own copy of the resident set (from the
 * insert/evict callbacks the handle guarantees to be consistent) so that
 * victim() can offer Lua the evictable keys as a plain array: an eviction
 * costs O(capacity) table building, which is fine for prototyping and is
 * the price documented in docs/policies.md. Lua functions are looked up once
 * at creation and kept as registry references.
 */
#include "harness/probe/probe.h"

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct hx_probe_lua_policy {
    char *path;
    char name[300];          /* "lua:PATH", the ops' registry name */
    eng_policy_ops ops;
    hx_probe_lua_ctx ctx;    /* the shape the instances serve (zero: unknown) */
    int n_created;           /* instances made since the context was set      */
};

enum { M_VICTIM, M_ACCESS, M_INSERT, M_EVICT, M_ADMIT, M_RESET, M_COUNT };
static const char *const method_names[M_COUNT] = {"victim", "access", "insert",
                                                  "evict",  "admit",  "reset"};

typedef struct lp_inst {
    lua_State *L;
    const hx_probe_lua_policy *lp;
    int ref[M_COUNT];        /* LUA_NOREF where the script has no such method */
    uint32_t *resident;      /* [capacity] resident keys, unordered           */
    uint32_t *where;         /* [n_keys] index in resident, UINT32_MAX if out */
    uint32_t n_res, capacity, n_keys;
    int failed;              /* a callback raised an error                     */
    eng_err err;             /* the first one, naming the callback (status)   */
} lp_inst;

static int traceback(lua_State *L)
{
    const char *msg = lua_tostring(L, 1);
    luaL_traceback(L, L, msg ? msg : "(error object is not a string)", 1);
    return 1;
}

/* lua_pcall with a traceback; on error the message is left on the stack. */
static int call(lua_State *L, int nargs, int nres)
{
    int base = lua_gettop(L) - nargs;
    lua_pushcfunction(L, traceback);
    lua_insert(L, base);
    int rc = lua_pcall(L, nargs, nres, base);
    lua_remove(L, base);
    return rc;
}

/* print() goes to stderr: stdout carries --json documents. */
static int l_print(lua_State *L)
{
    int n = lua_gettop(L);
    for (int i = 1; i <= n; i++) {
        size_t len;
        const char *s = luaL_tolstring(L, i, &len);
        if (i > 1)
            fputc('\t', stderr);
        fwrite(s, 1, len, stderr);
        lua_pop(L, 1);
    }
    fputc('\n', stderr);
    return 0;
}

/* The helpers of the factory's cfg, written in Lua over cfg's own fields
 * (so a script can also read the fields): which layer and expert a key is,
 * which token and layer an access position falls in. Positions count the
 * accesses of one sequence in the store's order: token by token, layer by
 * layer, top_k per layer (engine/policy.h), over this instance's layers. */
static const char helpers_lua[] =
    "local c = ...\n"
    "local per_token = c.top_k * (c.scope == 'global' and c.n_layers or 1)\n"
    "function c.layer_of(key)\n"
    "  if c.scope == 'global' then return c.first_layer + key // c.n_experts end\n"
    "  return c.layer end\n"
    "function c.expert_of(key) return key % c.n_experts end\n"
    "function c.token_of(pos) return pos // per_token end\n"
    "function c.layer_at(pos)\n"
    "  if c.scope == 'global' then return c.first_layer + (pos // c.top_k) % c.n_layers end\n"
    "  return c.layer end\n";

/* cfg for the factory: capacity, n_keys, seed, and (when the caller gave
 * the context) n_layers, n_experts, top_k, scope, layer and the helpers. */
static int push_cfg(lua_State *L, hx_probe_lua_policy *lp, const eng_policy_config *cfg,
                    eng_err *err)
{
    lua_createtable(L, 0, 12);
    lua_pushinteger(L, cfg->capacity);
    lua_setfield(L, -2, "capacity");
    lua_pushinteger(L, cfg->n_keys);
    lua_setfield(L, -2, "n_keys");
    lua_pushinteger(L, (lua_Integer)(cfg->seed & 0x7fffffffffffffffULL));
    lua_setfield(L, -2, "seed");
    const hx_probe_lua_ctx *c = &lp->ctx;
    if (!c->n_layers || !c->n_experts || !c->top_k)
        return ENG_OK;
    int layer = c->first_layer + (c->per_layer ? lp->n_created % c->n_layers : 0);
    const struct { const char *k; lua_Integer v; } f[] = {
        {"n_layers", c->n_layers}, {"n_experts", c->n_experts}, {"top_k", c->top_k},
        {"first_layer", c->first_layer}, {"layer", layer},
    };
    for (size_t i = 0; i < sizeof f / sizeof *f; i++) {
        if (!c->per_layer && !strcmp(f[i].k, "layer"))
            continue;
        lua_pushinteger(L, f[i].v);
        lua_setfield(L, -2, f[i].k);
    }
    lua_pushstring(L, c->per_layer ? "layer" : "global");
    lua_setfield(L, -2, "scope");
    if (luaL_loadstring(L, helpers_lua) != LUA_OK) /* our own code: cannot fail */
        return eng_err_set(err, ENG_ESTATE, "lua policy: %s", lua_tostring(L, -1));
    lua_pushvalue(L, -2);
    lua_call(L, 1, 0);
    return ENG_OK;
}

/* Compiles the file, calls it, calls the factory with cfg: leaves the
 * methods table on the stack. */
static int instantiate(lua_State *L, hx_probe_lua_policy *lp, const eng_policy_config *cfg,
                       eng_err *err)
{
    const char *path = lp->path;
    int rc = luaL_loadfile(L, path);
    if (rc != LUA_OK)
        return eng_err_set(err, rc == LUA_ERRFILE ? ENG_EIO : ENG_EINVAL, "%s",
                           lua_tostring(L, -1));
    if (call(L, 0, 1) != LUA_OK)
        return eng_err_set(err, ENG_EINVAL, "%s", lua_tostring(L, -1));
    if (!lua_isfunction(L, -1))
        return eng_err_set(err, ENG_EINVAL,
                           "%s: must return a factory function(cfg), returned a %s", path,
                           luaL_typename(L, -1));
    int prc = push_cfg(L, lp, cfg, err);
    if (prc)
        return prc;
    if (call(L, 1, 1) != LUA_OK)
        return eng_err_set(err, ENG_EINVAL, "%s", lua_tostring(L, -1));
    if (!lua_istable(L, -1))
        return eng_err_set(err, ENG_EINVAL, "%s: the factory must return a table of methods",
                           path);
    lua_getfield(L, -1, "victim");
    int ok = lua_isfunction(L, -1);
    lua_pop(L, 1);
    if (!ok)
        return eng_err_set(err, ENG_EINVAL, "%s: the methods table has no victim function", path);
    return ENG_OK;
}

static void inst_free(lp_inst *in)
{
    if (!in)
        return;
    if (in->L)
        lua_close(in->L);
    free(in->resident);
    free(in->where);
    free(in);
}

static int lp_create(void **st, const eng_policy_config *cfg, eng_err *err)
{
    hx_probe_lua_policy *lp = cfg->user;
    lp_inst *in = calloc(1, sizeof *in);
    if (!in)
        return eng_err_set(err, ENG_ENOMEM, "lua policy: out of memory");
    in->lp = lp;
    in->capacity = cfg->capacity;
    in->n_keys = cfg->n_keys;
    in->resident = malloc((size_t)cfg->capacity * sizeof *in->resident);
    in->where = malloc((size_t)cfg->n_keys * sizeof *in->where);
    in->L = luaL_newstate();
    if (!in->resident || !in->where || !in->L) {
        inst_free(in);
        return eng_err_set(err, ENG_ENOMEM, "lua policy: out of memory");
    }
    memset(in->where, 0xff, (size_t)cfg->n_keys * sizeof *in->where);
    luaL_openlibs(in->L);
    lua_pushcfunction(in->L, l_print);
    lua_setglobal(in->L, "print");
    int rc = instantiate(in->L, lp, cfg, err);
    lp->n_created++;
    if (rc) {
        inst_free(in);
        return rc;
    }
    for (int m = 0; m < M_COUNT; m++) {
        lua_getfield(in->L, -1, method_names[m]);
        in->ref[m] = lua_isfunction(in->L, -1) ? luaL_ref(in->L, LUA_REGISTRYINDEX) : LUA_NOREF;
        if (in->ref[m] == LUA_NOREF)
            lua_pop(in->L, 1);
    }
    lua_pop(in->L, 1);
    *st = in;
    return ENG_OK;
}

static void lp_destroy(void *st)
{
    inst_free(st);
}

/* Pushes method m; 0 when the script has none (or the instance failed). */
static int push_method(lp_inst *in, int m)
{
    if (in->failed || in->ref[m] == LUA_NOREF)
        return 0;
    lua_rawgeti(in->L, LUA_REGISTRYINDEX, in->ref[m]);
    return 1;
}

/* The error on the stack becomes the instance's sticky error, which the
 * policy handle picks up through lp_status after this callback. */
static void fail(lp_inst *in, const char *what)
{
    if (!in->failed)
        eng_err_set(&in->err, ENG_ESTATE, "lua policy %s: %s: %s", in->lp->path, what,
                    lua_tostring(in->L, -1));
    in->failed = 1;
    lua_settop(in->L, 0);
}

static int lp_status(void *st, eng_err *err)
{
    lp_inst *in = st;
    if (!in->failed)
        return ENG_OK;
    *err = in->err;
    return in->err.code;
}

static int lp_reset(void *st, const eng_policy_future *future, eng_err *err)
{
    lp_inst *in = st;
    for (uint32_t i = 0; i < in->n_res; i++)
        in->where[in->resident[i]] = UINT32_MAX;
    in->n_res = 0;
    if (push_method(in, M_RESET) && call(in->L, 0, 0) != LUA_OK)
        fail(in, "reset");
    if (in->failed)
        return lp_status(in, err);
    return ENG_OK;
}

static void lp_access(void *st, uint32_t key, int64_t pos, int hit)
{
    lp_inst *in = st;
    if (!push_method(in, M_ACCESS))
        return;
    lua_pushinteger(in->L, key);
    lua_pushinteger(in->L, pos);
    lua_pushboolean(in->L, hit);
    if (call(in->L, 3, 0) != LUA_OK)
        fail(in, "access");
}

static int lp_admit(void *st, uint32_t key)
{
    lp_inst *in = st;
    if (!push_method(in, M_ADMIT))
        return 1;
    lua_pushinteger(in->L, key);
    if (call(in->L, 1, 1) != LUA_OK) {
        fail(in, "admit");
        return 1;
    }
    int ok = lua_toboolean(in->L, -1);
    lua_pop(in->L, 1);
    return ok;
}

static void lp_insert(void *st, uint32_t key, int64_t pos)
{
    lp_inst *in = st;
    if (in->n_res < in->capacity && in->where[key] == UINT32_MAX) {
        in->where[key] = in->n_res;
        in->resident[in->n_res++] = key;
    }
    if (!push_method(in, M_INSERT))
        return;
    lua_pushinteger(in->L, key);
    lua_pushinteger(in->L, pos);
    if (call(in->L, 2, 0) != LUA_OK)
        fail(in, "insert");
}

static void lp_evict(void *st, uint32_t key)
{
    lp_inst *in = st;
    uint32_t i = in->where[key];
    if (i != UINT32_MAX) {
        uint32_t last = in->resident[--in->n_res];
        in->resident[i] = last;
        in->where[last] = i;
        in->where[key] = UINT32_MAX;
    }
    if (!push_method(in, M_EVICT))
        return;
    lua_pushinteger(in->L, key);
    if (call(in->L, 1, 0) != LUA_OK)
        fail(in, "evict");
}

static int lp_victim(void *st, const uint8_t *pinned, uint32_t *key)
{
    lp_inst *in = st;
    if (!push_method(in, M_VICTIM))
        return 1;
    lua_createtable(in->L, (int)in->n_res, 0);
    lua_Integer n = 0;
    for (uint32_t i = 0; i < in->n_res; i++) {
        uint32_t k = in->resident[i];
        if (pinned && pinned[k])
            continue;
        lua_pushinteger(in->L, k);
        lua_rawseti(in->L, -2, ++n);
    }
    if (n == 0) {
        lua_pop(in->L, 2);
        return 1;
    }
    if (call(in->L, 1, 1) != LUA_OK) {
        fail(in, "victim");
        return 1;
    }
    int isnum;
    lua_Integer v = lua_tointegerx(in->L, -1, &isnum);
    const char *type = luaL_typename(in->L, -1); /* a static string */
    lua_pop(in->L, 1);
    if (!isnum || v < 0 || (uint64_t)v >= in->n_keys || in->where[v] == UINT32_MAX ||
        (pinned && pinned[v])) {
        if (isnum)
            lua_pushfstring(in->L, "returned key %I, which is not one of the %I candidates",
                            v, n);
        else
            lua_pushfstring(in->L, "returned a %s, not a key", type);
        fail(in, "victim");
        return 1;
    }
    *key = (uint32_t)v;
    return 0;
}

const char *hx_probe_lua_policy_path(const char *policy_arg)
{
    return policy_arg && strncmp(policy_arg, "lua:", 4) == 0 ? policy_arg + 4 : NULL;
}

int hx_probe_lua_policy_load(hx_probe_lua_policy **out, const char *path, eng_err *err)
{
    hx_probe_lua_policy *lp = calloc(1, sizeof *lp);
    if (!lp || !(lp->path = strdup(path))) {
        free(lp);
        return eng_err_set(err, ENG_ENOMEM, "lua policy: out of memory");
    }
    snprintf(lp->name, sizeof lp->name, "lua:%s", path);
    lp->ops = (eng_policy_ops){
        .name = lp->name, .summary = "eviction policy written in Lua", .flags = 0,
        .create = lp_create, .destroy = lp_destroy, .reset = lp_reset, .access = lp_access,
        .admit = lp_admit, .insert = lp_insert, .victim = lp_victim, .evict = lp_evict,
        .status = lp_status,
    };
    /* Check the script once, with a small configuration, so that a broken
     * file is a usage error before any work starts. */
    void *probe = NULL;
    eng_policy_config cfg = {.capacity = 2, .n_keys = 4, .seed = 1, .user = lp};
    int rc = lp_create(&probe, &cfg, err);
    if (rc) {
        hx_probe_lua_policy_free(lp);
        return rc;
    }
    lp_destroy(probe);
    lp->n_created = 0;
    *out = lp;
    return ENG_OK;
}

void hx_probe_lua_policy_context(hx_probe_lua_policy *lp, const hx_probe_lua_ctx *ctx)
{
    lp->ctx = *ctx;
    lp->n_created = 0;
}

void hx_probe_lua_policy_free(hx_probe_lua_policy *lp)
{
    if (!lp)
        return;
    free(lp->path);
    free(lp);
}

const eng_policy_ops *hx_probe_lua_policy_ops(const hx_probe_lua_policy *lp)
{
    return &lp->ops;
}

void *hx_probe_lua_policy_user(hx_probe_lua_policy *lp)
{
    return lp;
}
