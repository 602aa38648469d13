/*
 * lua_kind.c — the "lua" experiment kind: the measured body is the
 * experiment's run(ctx) function, called in the suite's Lua state under
 * lua_pcall with a traceback.
 *
 * ctx = {name, label, params, rep, warmup, seed, opts} plus the methods
 * ctx:series(metric, {numbers}) and ctx:blob(name, value). run returns nil
 * or a table {metric = number, ...}: each pair is a sample. The methods
 * hold a box (a full userdata, so it outlives the call safely) pointing at
 * this repetition's hx_db_result; the box is emptied when run returns, so a ctx kept past its call fails cleanly instead of
 * writing into freed memory.
 *
 * Timeout (field `timeout`, or `moebench run --timeout`): a count hook
 * checks the deadline every HOOK_EVERY instructions and raises an error;
 * the deadline lives in the state's extra space (lua_getextraspace), the
 * one place a hook can read without globals. Time spent inside a C
 * function (moebench.sleep) is not interrupted until it returns.
 */

#define HOOK_EVERY 10000
#include "harness/suite/suite.h"

#include <lauxlib.h>
#include <lua.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct ctx_box {
    hx_db_result *r;
} ctx_box;

int hx_suite_kind_lua_check(const hx_suite_experiment *e, eng_err *err)
{
    if (e->lua_ref == LUA_NOREF || e->lua_ref == LUA_REFNIL)
        return eng_err_set(err, ENG_EINVAL, "field 'run' is missing (a function run(ctx) "
                           "returning {metric = number, ...})");
    const json_t *to = json_object_get(e->args, "timeout");
    if (to && (!json_is_number(to) || !(json_number_value(to) > 0)))
        return eng_err_set(err, ENG_EINVAL, "field 'timeout' must be a number of seconds > 0");
    if (json_array_size(e->events))
        return eng_err_set(err, ENG_EINVAL, "field 'events': a lua experiment records what run()"
                           " returns and counts no events; give the events to a command"
                           " experiment running `moebench generate` (kind='command')");
    return ENG_OK;
}

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void timeout_hook(lua_State *L, lua_Debug *ar)
{
    (void)ar;
    double deadline;
    memcpy(&deadline, lua_getextraspace(L), sizeof deadline);
    if (mono_s() > deadline) {
        lua_sethook(L, NULL, 0, 0);
        /* in a hook, level 0 is the Lua function that was running */
        luaL_where(L, 0);
        lua_pushstring(L, "run() exceeded its time limit");
        lua_concat(L, 2);
        lua_error(L);
    }
}

/* Arms the deadline hook when the experiment or the command line sets a
 * limit. */
static void arm_timeout(lua_State *L, const hx_suite_exec *x)
{
    const json_t *to = json_object_get(x->exp->args, "timeout");
    double limit = to ? json_number_value(to) : x->timeout_s;
    if (!(limit > 0))
        return;
    double deadline = mono_s() + limit;
    memcpy(lua_getextraspace(L), &deadline, sizeof deadline);
    lua_sethook(L, timeout_hook, LUA_MASKCOUNT, HOOK_EVERY);
}

static hx_db_result *box_result(lua_State *L)
{
    ctx_box *b = lua_touserdata(L, lua_upvalueindex(1));
    if (!b->r)
        luaL_error(L, "ctx used after its run() returned");
    return b->r;
}

static int l_ctx_series(lua_State *L)
{
    hx_db_result *r = box_result(L);
    const char *m = luaL_checkstring(L, 2);
    luaL_checktype(L, 3, LUA_TTABLE);
    size_t n = (size_t)luaL_len(L, 3);
    double *v = lua_newuserdatauv(L, (n ? n : 1) * sizeof *v, 0);
    for (size_t i = 0; i < n; i++) {
        if (lua_rawgeti(L, 3, (lua_Integer)i + 1) != LUA_TNUMBER)
            return luaL_error(L, "ctx:series('%s'): item %d is not a number", m, (int)i + 1);
        v[i] = lua_tonumber(L, -1);
        lua_pop(L, 1);
    }
    eng_err err = {0};
    if (hx_db_result_series(r, m, v, n, &err))
        return luaL_error(L, "ctx:series: %s", err.msg);
    return 0;
}

static int l_ctx_blob(lua_State *L)
{
    hx_db_result *r = box_result(L);
    const char *name = luaL_checkstring(L, 2);
    luaL_checkany(L, 3);
    eng_err err = {0};
    json_t *j = hx_suite_lua_to_json(L, 3, name, &err);
    if (!j || hx_db_result_blob(r, name, j, &err))
        return luaL_error(L, "ctx:blob: %s", err.msg);
    return 0;
}

/* box_idx: stack index of the ctx_box userdata the methods close over. */
static void push_ctx(lua_State *L, const hx_suite_exec *x, int box_idx)
{
    lua_createtable(L, 0, 10);
    lua_pushstring(L, x->exp->name);
    lua_setfield(L, -2, "name");
    lua_pushstring(L, x->exp->label);
    lua_setfield(L, -2, "label");
    hx_suite_lua_push_json(L, x->exp->params);
    lua_setfield(L, -2, "params");
    lua_pushinteger(L, x->rep);
    lua_setfield(L, -2, "rep");
    lua_pushboolean(L, x->is_warmup);
    lua_setfield(L, -2, "warmup");
    lua_pushinteger(L, (lua_Integer)(x->seed & 0x7fffffffffffffffull));
    lua_setfield(L, -2, "seed");
    if (x->opts) {
        hx_suite_lua_push_json(L, x->opts);
        lua_setfield(L, -2, "opts");
    }
    static const luaL_Reg methods[] = {{"series", l_ctx_series}, {"blob", l_ctx_blob},
                                       {NULL, NULL}};
    lua_pushvalue(L, box_idx);
    luaL_setfuncs(L, methods, 1);
}

/* The value run() returned (top of stack) -> samples. */
static int take_returns(lua_State *L, hx_db_result *out, eng_err *err)
{
    if (lua_isnil(L, -1))
        return ENG_OK;
    if (!lua_istable(L, -1))
        return eng_err_set(err, ENG_EINVAL, "run() returned a %s; return a table "
                           "{metric = number, ...} or nothing", luaL_typename(L, -1));
    lua_pushnil(L);
    while (lua_next(L, -2)) {
        if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TNUMBER) {
            const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "?";
            int rc = eng_err_set(err, ENG_EINVAL, "run() returned field '%s' = %s; metrics "
                                 "must be numbers under string names", k, luaL_typename(L, -1));
            lua_pop(L, 2);
            return rc;
        }
        int rc = hx_db_result_sample(out, lua_tostring(L, -2), lua_tonumber(L, -1), err);
        lua_pop(L, 1);
        if (rc) {
            lua_pop(L, 1);
            return eng_err_prefix(err, "run() returned");
        }
    }
    return ENG_OK;
}

int hx_suite_kind_lua_run(const hx_suite_exec *x, hx_db_result *out, eng_err *err)
{
    lua_State *L = x->L;
    if (!L || !lua_checkstack(L, 16))
        return eng_err_set(err, ENG_ESTATE, "lua kind: no Lua state");
    int top = lua_gettop(L);
    hx_suite_lua_push_traceback(L);
    ctx_box *box = lua_newuserdatauv(L, sizeof *box, 0); /* at top + 2 */
    box->r = out;
    lua_rawgeti(L, LUA_REGISTRYINDEX, x->exp->lua_ref);
    push_ctx(L, x, top + 2);
    arm_timeout(L, x);
    int r = lua_pcall(L, 1, 1, top + 1);
    if (lua_gethook(L) == timeout_hook)
        lua_sethook(L, NULL, 0, 0);
    box->r = NULL;
    int rc = ENG_OK;
    if (r != LUA_OK)
        rc = eng_err_set(err, r == LUA_ERRMEM ? ENG_ENOMEM : ENG_EINVAL, "%s",
                         lua_tostring(L, -1) ? lua_tostring(L, -1) : "error object is not a string");
    else
        rc = take_returns(L, out, err);
    lua_settop(L, top);
    return rc;
}
