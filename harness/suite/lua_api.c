/*
 * lua_api.c — the `moebench` Lua module and the loading of a suite file.
 * See suite.h; docs/lua-api.md is the user's reference.
 *
 * The boundary is thin and checked: luaL_check* appears only here and in
 * lua_decl.c/lua_kind.c; C errors become luaL_error (which prefixes the
 * script's file:line) or `nil, message` for functions whose failure a
 * script may want to handle (json.decode). Every call into Lua goes
 * through lua_pcall with the traceback handler below.
 */
#include "harness/suite/suite.h"
#include "harness/suite/suite_impl.h"

#include "harness/version.h"
#include "metrics/stats.h"

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>


static int traceback(lua_State *L)
{
    const char *msg = lua_tostring(L, 1);
    if (!msg) {
        if (lua_type(L, 1) == LUA_TLIGHTUSERDATA)
            return 1; /* internal sentinel (--help-suite): pass it through */
        msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    }
    luaL_traceback(L, L, msg, 1);
    return 1;
}

void hx_suite_lua_push_traceback(lua_State *L)
{
    lua_pushcfunction(L, traceback);
}

/* ---- moebench.stats ------------------------------------------------------ */

/* Reads a list of numbers at arg 1 into a malloc'd array (userdata-backed
 * so that a Lua error cannot leak it). */
static double *check_numbers(lua_State *L, int arg, size_t *n)
{
    luaL_checktype(L, arg, LUA_TTABLE);
    size_t len = (size_t)luaL_len(L, arg);
    double *v = lua_newuserdatauv(L, (len ? len : 1) * sizeof *v, 0);
    for (size_t i = 0; i < len; i++) {
        int t = lua_rawgeti(L, arg, (lua_Integer)i + 1);
        if (t != LUA_TNUMBER)
            luaL_error(L, "bad argument #%d: item %d is a %s, not a number", arg, (int)i + 1,
                       lua_typename(L, t));
        v[i] = lua_tonumber(L, -1);
        if (isnan(v[i]))
            luaL_error(L, "bad argument #%d: item %d is NaN", arg, (int)i + 1);
        lua_pop(L, 1);
    }
    *n = len;
    return v;
}

static double *check_nonempty(lua_State *L, size_t *n)
{
    double *v = check_numbers(L, 1, n);
    if (*n == 0)
        luaL_error(L, "bad argument #1: the list is empty");
    return v;
}

static int l_mean(lua_State *L)
{
    size_t n;
    double *v = check_nonempty(L, &n);
    lua_pushnumber(L, met_stats_mean(v, n));
    return 1;
}

static int l_median(lua_State *L)
{
    size_t n;
    double *v = check_nonempty(L, &n);
    lua_pushnumber(L, met_stats_percentile(v, n, 50));
    return 1;
}

static int l_stddev(lua_State *L)
{
    size_t n;
    double *v = check_nonempty(L, &n);
    lua_pushnumber(L, met_stats_stddev(v, n));
    return 1;
}

static int l_percentile(lua_State *L)
{
    size_t n;
    double *v = check_nonempty(L, &n);
    double p = luaL_checknumber(L, 2);
    luaL_argcheck(L, p >= 0 && p <= 100, 2, "percentile must be in [0, 100]");
    lua_pushnumber(L, met_stats_percentile(v, n, p));
    return 1;
}

static void set_num(lua_State *L, const char *k, double v)
{
    if (isnan(v))
        return; /* undefined (CI of one value): absent, i.e. nil */
    lua_pushnumber(L, v);
    lua_setfield(L, -2, k);
}

static int l_summary(lua_State *L)
{
    size_t n;
    double *v = check_nonempty(L, &n);
    met_summary s;
    eng_err err = {0};
    if (met_stats_summarize(v, n, &s, &err))
        return luaL_error(L, "%s", err.msg);
    lua_createtable(L, 0, 11);
    lua_pushinteger(L, (lua_Integer)s.n);
    lua_setfield(L, -2, "n");
    set_num(L, "mean", s.mean), set_num(L, "median", s.median);
    set_num(L, "min", s.min), set_num(L, "max", s.max), set_num(L, "stddev", s.stddev);
    set_num(L, "p50", s.p50), set_num(L, "p90", s.p90), set_num(L, "p99", s.p99);
    set_num(L, "ci_lo", s.ci_lo), set_num(L, "ci_hi", s.ci_hi);
    return 1;
}

/* ---- moebench.json, clock, sleep ----------------------------------------- */

static int l_json_encode(lua_State *L)
{
    luaL_checkany(L, 1);
    eng_err err = {0};
    json_t *j = hx_suite_lua_to_json(L, 1, "value", &err);
    if (!j)
        return luaL_error(L, "json.encode: %s", err.msg);
    char *s = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY | JSON_SORT_KEYS);
    json_decref(j);
    if (!s)
        return luaL_error(L, "json.encode: out of memory");
    lua_pushstring(L, s);
    free(s);
    return 1;
}

static int l_json_decode(lua_State *L)
{
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    json_error_t je;
    json_t *j = json_loadb(s, len, JSON_DECODE_ANY, &je);
    if (!j) {
        lua_pushnil(L);
        lua_pushfstring(L, "json.decode: line %d: %s", je.line, je.text);
        return 2;
    }
    hx_suite_lua_push_json(L, j);
    json_decref(j);
    return 1;
}

static int l_clock(lua_State *L)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    lua_pushnumber(L, (double)ts.tv_sec + ts.tv_nsec / 1e9);
    return 1;
}

static int l_sleep(lua_State *L)
{
    double s = luaL_checknumber(L, 1);
    luaL_argcheck(L, s >= 0 && s <= 86400, 1, "seconds must be in [0, 86400]");
    struct timespec ts = {(time_t)s, (long)((s - floor(s)) * 1e9)};
    /* A handled signal (the runner's Ctrl-C) ends the sleep early, so the
     * interrupt hook runs as soon as the script continues. */
    nanosleep(&ts, NULL);
    return 0;
}

int hx_suite_lua_open_module(lua_State *L)
{
    static const luaL_Reg top[] = {{"clock", l_clock}, {"sleep", l_sleep}, {NULL, NULL}};
    static const luaL_Reg stats[] = {{"mean", l_mean},       {"median", l_median},
                                     {"stddev", l_stddev},   {"percentile", l_percentile},
                                     {"summary", l_summary}, {NULL, NULL}};
    static const luaL_Reg json[] = {{"encode", l_json_encode}, {"decode", l_json_decode},
                                    {NULL, NULL}};
    luaL_newlib(L, top);
    luaL_newlib(L, stats);
    lua_setfield(L, -2, "stats");
    luaL_newlib(L, json);
    lua_setfield(L, -2, "json");
    lua_pushfstring(L, "%s (commit %s)", hx_version_string, hx_version_commit);
    lua_setfield(L, -2, "version");
    lua_createtable(L, 4, 0);
    for (int i = 0; hx_suite_kinds[i].name; i++) {
        lua_pushstring(L, hx_suite_kinds[i].name);
        lua_rawseti(L, -2, i + 1);
    }
    lua_setfield(L, -2, "kinds");
    /* the running binary, so a suite can run `moebench mkmodel` etc. while
     * it declares its experiments (scripts/lua/models.lua) */
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    exe[n > 0 ? n : 0] = '\0';
    lua_pushstring(L, n > 0 ? exe : "moebench");
    lua_setfield(L, -2, "exe");
    return 1;
}

/* ---- loading ------------------------------------------------------------- */

static void add_dir(luaL_Buffer *b, const char *dir)
{
    if (!dir || !*dir)
        return;
    luaL_addstring(b, dir);
    luaL_addstring(b, "/?.lua;");
    luaL_addstring(b, dir);
    luaL_addstring(b, "/?/init.lua;");
}

/* package.path = MOEBENCH_LUA_PATH dirs; suite dir; the modules beside the
 * binary (harness/suite/suite.h); ./scripts/lua; Lua's defaults. */
static void set_path(lua_State *L, const char *file, const char *self_exe)
{
    lua_getglobal(L, "package"); /* before the buffer: it owns the stack top */
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    const char *env = getenv("MOEBENCH_LUA_PATH");
    char tmp[4096];
    if (env) {
        snprintf(tmp, sizeof tmp, "%s", env);
        for (char *save, *d = strtok_r(tmp, ":", &save); d; d = strtok_r(NULL, ":", &save))
            add_dir(&b, d);
    }
    snprintf(tmp, sizeof tmp, "%s", file);
    char *slash = strrchr(tmp, '/');
    add_dir(&b, slash ? (*slash = '\0', tmp[0] ? tmp : "/") : ".");
    if (self_exe && hx_suite_datadir_find(HX_SUITE_DATADIR_LUA, tmp, sizeof tmp))
        add_dir(&b, tmp);
    add_dir(&b, "./scripts/lua");
    luaL_pushresult(&b);
    lua_getfield(L, -2, "path");
    lua_concat(L, 2);
    lua_setfield(L, -2, "path");
    lua_pop(L, 1);
}

static hx_suite *suite_new(const char *file, const hx_suite_config *cfg)
{
    hx_suite *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->file = strdup(file);
    s->cfg = cfg;
    s->report_ref = LUA_NOREF;
    s->L = luaL_newstate();
    if (!s->file || !s->L) {
        hx_suite_free(s);
        return NULL;
    }
    return s;
}

static int load_file(hx_suite *s, eng_err *err)
{
    lua_State *L = s->L;
    hx_suite_lua_push_traceback(L);
    int base = lua_gettop(L);
    int r = luaL_loadfile(L, s->file);
    if (r == LUA_ERRFILE)
        return eng_err_set(err, ENG_EIO, "%s", lua_tostring(L, -1));
    if (r == LUA_OK)
        r = lua_pcall(L, 0, 0, base);
    if (r != LUA_OK && lua_type(L, -1) == LUA_TLIGHTUSERDATA)
        r = LUA_OK; /* --help-suite stopped at suite() */
    if (r != LUA_OK) {
        const char *m = lua_tostring(L, -1);
        return eng_err_set(err, r == LUA_ERRMEM ? ENG_ENOMEM : ENG_EINVAL, "%s",
                           m ? m : "error");
    }
    lua_settop(L, base - 1);
    if (!s->name)
        return eng_err_set(err, ENG_EINVAL, "%s: the file never calls suite{name = ...}",
                           s->file);
    return ENG_OK;
}

int hx_suite_load(hx_suite **out, const char *file, const hx_suite_config *cfg, eng_err *err)
{
    *out = NULL;
    hx_suite *s = suite_new(file, cfg);
    if (!s)
        return eng_err_set(err, ENG_ENOMEM, "%s: out of memory", file);
    lua_State *L = s->L;
    luaL_openlibs(L);
    set_path(L, file, cfg->self_exe);
    luaL_requiref(L, "moebench", hx_suite_lua_open_module, 1);
    lua_pop(L, 1);
    hx_suite_lua_decl_register(L, s);
    int rc = load_file(s, err);
    if (rc) {
        hx_suite_free(s);
        return rc;
    }
    *out = s;
    return ENG_OK;
}

void hx_suite_free(hx_suite *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->nexps; i++) {
        hx_suite_experiment *e = &s->exps[i];
        free(e->name), free(e->label), free(e->file_line);
        json_decref(e->params), json_decref(e->args);
        json_decref(e->events), json_decref(e->tags), json_decref(e->directions);
    }
    free(s->exps);
    if (s->L)
        lua_close(s->L);
    json_decref(s->options), json_decref(s->opts), json_decref(s->defaults);
    json_decref(s->metrics);
    free(s->file), free(s->name), free(s->description);
    free(s);
}

void hx_suite_print_help(const hx_suite *s)
{
    printf("suite %s (%s)\n", s->name, s->file);
    if (s->description && *s->description)
        printf("\n%s\n", s->description);
    printf("\noptions (-D NAME=VALUE):\n");
    size_t i;
    json_t *o;
    json_array_foreach(s->options, i, o) {
        char *d = json_dumps(json_object_get(o, "default"), JSON_ENCODE_ANY | JSON_COMPACT);
        printf("  %-18s %s (default %s)\n", json_string_value(json_object_get(o, "name")),
               json_string_value(json_object_get(o, "help")), d ? d : "?");
        free(d);
    }
    if (json_array_size(s->options) == 0)
        printf("  (none)\n");
    printf("  %-18s %s\n", "--quick", "smaller sizes: the suite sees opts.quick = true");
}

int hx_suite_report(hx_suite *s, const json_t *results, eng_err *err)
{
    if (s->report_ref == LUA_NOREF)
        return ENG_OK;
    lua_State *L = s->L;
    hx_suite_lua_push_traceback(L);
    int base = lua_gettop(L);
    lua_rawgeti(L, LUA_REGISTRYINDEX, s->report_ref);
    hx_suite_lua_push_json(L, results);
    hx_suite_lua_push_json(L, s->opts);
    int r = lua_pcall(L, 2, 0, base);
    int rc = ENG_OK;
    if (r != LUA_OK)
        rc = eng_err_set(err, ENG_EINVAL, "report: %s", lua_tostring(L, -1));
    lua_settop(L, base - 1);
    return rc;
}
