/*
 * lua_decl.c — the declaration functions a suite file calls: suite{...},
 * experiment{...} and report(fn). See suite.h and docs/lua-api.md.
 *
 * Every field is checked here, by name, so a typo is an error at the
 * script line that made it ("suites/x.lua:12: experiment 'sim': unknown
 * field 'rep' (common fields: ...)"); luaL_error supplies the position.
 * The suite pointer travels as the upvalue of each function.
 */
#include "harness/suite/suite.h"
#include "harness/suite/suite_impl.h"

#include "harness/db/db.h"

#include <errno.h>
#include <lauxlib.h>
#include <lua.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *const common_fields[] = {"name", "kind", "params", "warmup", "reps",
                                             "events", "tags", "metrics", NULL};
static const char *const suite_fields[] = {"name", "description", "options", "defaults",
                                           "metrics", NULL};
static const char *const default_fields[] = {"kind", "warmup", "reps", "events", "tags", NULL};

static hx_suite *suite_of(lua_State *L)
{
    return lua_touserdata(L, lua_upvalueindex(1));
}

static int in_list(const char *const *list, const char *k)
{
    for (; *list; list++)
        if (!strcmp(*list, k))
            return 1;
    return 0;
}

/* Raises "what: unknown field 'k' (fields: a, b, ...)" for a key of the
 * table at idx outside both lists. */
static void check_keys(lua_State *L, int idx, const char *what, const char *const *a,
                       const char *const *b)
{
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        if (lua_type(L, -1) != LUA_TSTRING)
            luaL_error(L, "%s: field names must be strings", what);
        const char *k = lua_tostring(L, -1);
        if (in_list(a, k) || (b && in_list(b, k)))
            continue;
        luaL_Buffer buf;
        luaL_buffinit(L, &buf);
        for (int l = 0; l < 2; l++)
            for (const char *const *f = l ? b : a; f && *f; f++) {
                luaL_addstring(&buf, (l || f != a) ? ", " : "");
                luaL_addstring(&buf, *f);
            }
        luaL_pushresult(&buf);
        luaL_error(L, "%s: unknown field '%s' (fields: %s)", what, k, lua_tostring(L, -1));
    }
}

/* Pushes t[k], or, when nil, the suite's default for k (JSON). */
static int field_or_default(lua_State *L, int t, const char *k, const hx_suite *s)
{
    if (lua_getfield(L, t, k) != LUA_TNIL || !s->defaults)
        return lua_type(L, -1);
    const json_t *d = json_object_get(s->defaults, k);
    if (!d)
        return LUA_TNIL;
    lua_pop(L, 1);
    hx_suite_lua_push_json(L, d);
    return lua_type(L, -1);
}

static json_t *check_json(lua_State *L, int idx, const char *what)
{
    eng_err err = {0};
    json_t *j = hx_suite_lua_to_json(L, idx, what, &err);
    if (!j)
        luaL_error(L, "%s", err.msg);
    return j;
}

/* ---- suite{} ------------------------------------------------------------- */

/* Functions below that allocate report errors through eng_err instead of
 * raising: luaL_error would longjmp past their frees. The Lua-facing
 * callers raise once nothing is left to free. */
static json_t *parse_scalar(const char *opt, const json_t *like, const char *v, eng_err *err)
{
    char *end;
    errno = 0;
    if (json_is_integer(like)) {
        long long x = strtoll(v, &end, 0);
        if (!errno && end != v && !*end)
            return json_integer(x);
    } else if (json_is_real(like)) {
        double x = strtod(v, &end);
        if (!errno && end != v && !*end && isfinite(x))
            return json_real(x);
    } else if (json_is_boolean(like)) {
        if (!strcasecmp(v, "true") || !strcmp(v, "1") || !strcasecmp(v, "yes"))
            return json_true();
        if (!strcasecmp(v, "false") || !strcmp(v, "0") || !strcasecmp(v, "no"))
            return json_false();
    } else {
        return json_string(v);
    }
    eng_err_set(err, ENG_EINVAL, "option '%s': -D %s=%s is not %s", opt, opt, v,
                json_is_boolean(like) ? "true or false"
                : json_is_integer(like) ? "an integer" : "a number");
    return NULL;
}

/* -D value -> JSON of the default's type; lists are comma-separated. */
static json_t *parse_define(const char *opt, const json_t *dflt, const char *v, eng_err *err)
{
    if (!json_is_array(dflt))
        return parse_scalar(opt, dflt, v, err);
    const json_t *like = json_array_size(dflt) ? json_array_get(dflt, 0) : NULL;
    json_t *a = json_array();
    char *copy = strdup(v);
    for (char *save, *p = strtok_r(copy, ",", &save); a && p; p = strtok_r(NULL, ",", &save)) {
        json_t *x = like ? parse_scalar(opt, like, p, err) : json_string(p);
        if (!x)
            a = (json_decref(a), NULL);
        else
            json_array_append_new(a, x);
    }
    free(copy);
    return a;
}

static void check_defines(lua_State *L, const hx_suite *s)
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)s->cfg->defines, k, v) {
        if (!json_object_get(s->opts, k))
            luaL_error(L, "unknown option -D %s (suite '%s' declares: %s)", k, s->name,
                       json_object_size(s->opts) > 2 ? "see --help-suite" : "none");
    }
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* One option: its declaration into s->options, its value into s->opts. */
static int read_option(hx_suite *s, const char *name, const json_t *v, eng_err *err)
{
    int spec = json_is_object(v) && json_object_get(v, "default");
    const json_t *dflt = spec ? json_object_get(v, "default") : v;
    const json_t *help = spec ? json_object_get(v, "help") : NULL;
    if (!strcmp(name, "quick") || !strcmp(name, "seed") || !strcmp(name, "dry_run"))
        return eng_err_set(err, ENG_EINVAL, "suite: option '%s' is reserved (--%s)", name,
                           strcmp(name, "dry_run") ? name : "dry-run");
    json_array_append_new(s->options, json_pack("{s:s, s:O, s:s}", "name", name, "default",
                          dflt, "help", json_is_string(help) ? json_string_value(help) : ""));
    const json_t *d = json_object_get(s->cfg->defines, name);
    json_t *val = d ? parse_define(name, dflt, json_string_value(d), err)
                    : json_deep_copy(dflt);
    if (!val)
        return err->code ? err->code : eng_err_set(err, ENG_ENOMEM, "out of memory");
    json_object_set_new(s->opts, name, val);
    return ENG_OK;
}

/* options = {name = {default = v, help = "..."} | v}, taken in name order. */
static void read_options(lua_State *L, int idx, hx_suite *s)
{
    eng_err err = {0};
    json_t *decl = hx_suite_lua_to_json(L, idx, "suite options", &err);
    if (json_is_array(decl) && json_array_size(decl) == 0)
        decl = (json_decref(decl), json_object());
    if (decl && !json_is_object(decl))
        eng_err_set(&err, ENG_EINVAL, "suite: field 'options' must map option names to "
                    "{default=, help=}");
    size_t n = 0;
    const char **names = malloc((json_object_size(decl) + 1) * sizeof *names);
    const char *k;
    json_t *v;
    json_object_foreach(json_is_object(decl) ? decl : NULL, k, v) names[n++] = k;
    if (names)
        qsort(names, n, sizeof *names, cmp_names);
    for (size_t i = 0; names && !err.code && i < n; i++)
        read_option(s, names[i], json_object_get(decl, names[i]), &err);
    free(names);
    json_decref(decl);
    if (err.code)
        luaL_error(L, "%s", err.msg);
}

/* metrics = {NAME_OR_PATTERN = 'higher' | 'lower' | 'equal', ...} at index
 * t -> JSON object over base (copied; NULL for none). Every entry is
 * checked before anything is allocated, so a raised error leaks nothing. */
static json_t *read_directions(lua_State *L, int t, const char *what, const json_t *base)
{
    int ty = lua_getfield(L, t, "metrics");
    if (ty != LUA_TNIL && ty != LUA_TTABLE)
        luaL_error(L, "%s: field 'metrics' must be a table {metric = 'higher' | 'lower' |"
                   " 'equal'}", what);
    for (lua_pushnil(L); ty == LUA_TTABLE && lua_next(L, -2); lua_pop(L, 1)) {
        if (lua_type(L, -2) != LUA_TSTRING || !lua_rawlen(L, -2) ||
            lua_rawlen(L, -2) >= HX_DB_NAME_MAX)
            luaL_error(L, "%s: field 'metrics': keys must be metric names or patterns", what);
        if (lua_type(L, -1) != LUA_TSTRING || hx_db_dir_parse(lua_tostring(L, -1)) < 0)
            luaL_error(L, "%s: field 'metrics': '%s' must be 'higher', 'lower' or 'equal'"
                       " (which way is better)", what, lua_tostring(L, -2));
    }
    json_t *o = base ? json_deep_copy(base) : ty == LUA_TTABLE ? json_object() : NULL;
    for (lua_pushnil(L); ty == LUA_TTABLE && lua_next(L, -2); lua_pop(L, 1))
        json_object_set_new(o, lua_tostring(L, -2), json_string(lua_tostring(L, -1)));
    lua_pop(L, 1);
    return o;
}

static int l_suite(lua_State *L)
{
    hx_suite *s = suite_of(L);
    luaL_checktype(L, 1, LUA_TTABLE);
    if (s->name)
        return luaL_error(L, "suite{} called twice");
    check_keys(L, 1, "suite", suite_fields, NULL);
    if (lua_getfield(L, 1, "name") != LUA_TSTRING || !lua_rawlen(L, -1))
        return luaL_error(L, "suite: field 'name' (a non-empty string) is missing");
    s->name = strdup(lua_tostring(L, -1));
    int t = lua_getfield(L, 1, "description");
    if (t != LUA_TNIL && t != LUA_TSTRING)
        return luaL_error(L, "suite: field 'description' must be a string");
    s->description = strdup(t == LUA_TSTRING ? lua_tostring(L, -1) : "");
    s->options = json_array();
    s->opts = json_object();
    if (lua_getfield(L, 1, "options") != LUA_TNIL)
        read_options(L, lua_gettop(L), s);
    if ((t = lua_getfield(L, 1, "defaults")) != LUA_TNIL) {
        luaL_argcheck(L, t == LUA_TTABLE, 1, "suite: field 'defaults' must be a table");
        check_keys(L, lua_gettop(L), "suite defaults", default_fields, NULL);
        s->defaults = check_json(L, -1, "suite defaults");
    }
    s->metrics = read_directions(L, 1, "suite", NULL);
    json_object_set_new(s->opts, "quick", json_boolean(s->cfg->quick));
    json_object_set_new(s->opts, "seed", json_integer((json_int_t)s->cfg->seed));
    json_object_set_new(s->opts, "dry_run", json_boolean(s->cfg->dry_run));
    if (s->cfg->help_only) {
        static int sentinel;
        lua_pushlightuserdata(L, &sentinel);
        return lua_error(L);
    }
    check_defines(L, s);
    hx_suite_lua_push_json(L, s->opts);
    return 1;
}

/* ---- report(fn) ---------------------------------------------------------- */

static int l_report(lua_State *L)
{
    hx_suite *s = suite_of(L);
    luaL_checktype(L, 1, LUA_TFUNCTION);
    if (s->report_ref != LUA_NOREF)
        luaL_unref(L, LUA_REGISTRYINDEX, s->report_ref);
    lua_pushvalue(L, 1);
    s->report_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    return 0;
}

static int l_experiment(lua_State *L); /* below */

int hx_suite_lua_decl_register(lua_State *L, hx_suite *s)
{
    static const luaL_Reg fns[] = {{"suite", l_suite}, {"experiment", l_experiment},
                                   {"report", l_report}, {NULL, NULL}};
    lua_pushglobaltable(L);
    lua_pushlightuserdata(L, s);
    luaL_setfuncs(L, fns, 1);
    lua_pop(L, 1);
    return 0;
}

/* ---- experiment{} -------------------------------------------------------- */

static const hx_suite_kind *read_kind(lua_State *L, int t, const char *name, const hx_suite *s)
{
    int ty = field_or_default(L, t, "kind", s);
    const char *kn = ty == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
    if (ty == LUA_TNIL) {
        lua_getfield(L, t, "run");
        kn = lua_isfunction(L, -1) ? "lua" : NULL;
        lua_getfield(L, t, "argv");
        kn = kn ? kn : !lua_isnil(L, -1) ? "command" : NULL;
        lua_pop(L, 2);
        if (!kn)
            luaL_error(L, "experiment '%s': field 'kind' is missing (and no run function or "
                       "argv to tell it)", name);
    } else if (!kn) {
        luaL_error(L, "experiment '%s': field 'kind' must be a string", name);
    }
    const hx_suite_kind *k = hx_suite_kind_find(kn);
    if (!k) {
        luaL_Buffer b;
        luaL_buffinit(L, &b);
        for (int i = 0; hx_suite_kinds[i].name; i++) {
            luaL_addstring(&b, i ? ", " : "");
            luaL_addstring(&b, hx_suite_kinds[i].name);
        }
        luaL_pushresult(&b);
        luaL_error(L, "experiment '%s': unknown kind '%s' (kinds: %s)", name, kn,
                   lua_tostring(L, -1));
    }
    lua_pop(L, 1);
    return k;
}

static int read_count(lua_State *L, int t, const char *f, int dflt, int lo, int hi,
                      const char *name, const hx_suite *s)
{
    int ty = field_or_default(L, t, f, s);
    int v = dflt;
    if (ty != LUA_TNIL) {
        if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < lo || lua_tointeger(L, -1) > hi)
            luaL_error(L, "experiment '%s': field '%s' must be an integer in [%d, %d]", name,
                       f, lo, hi);
        v = (int)lua_tointeger(L, -1);
    }
    lua_pop(L, 1);
    return v;
}

/* events/tags: a string or a list of strings -> JSON array. Every item is
 * checked before the array is allocated, so a raised error leaks nothing. */
static json_t *read_strings(lua_State *L, int t, const char *f, const char *name,
                            const hx_suite *s)
{
    int ty = field_or_default(L, t, f, s);
    lua_Integer n = ty == LUA_TTABLE ? luaL_len(L, -1) : 0;
    if (ty != LUA_TNIL && ty != LUA_TSTRING && ty != LUA_TTABLE)
        luaL_error(L, "experiment '%s': field '%s' must be a string or a list of strings",
                   name, f);
    for (lua_Integer i = 1; i <= n; i++) {
        if (lua_rawgeti(L, -1, i) != LUA_TSTRING)
            luaL_error(L, "experiment '%s': field '%s': item %d is not a string", name, f,
                       (int)i);
        lua_pop(L, 1);
    }
    json_t *a = json_array();
    if (ty == LUA_TSTRING)
        json_array_append_new(a, json_string(lua_tostring(L, -1)));
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(L, -1, i);
        json_array_append_new(a, json_string(lua_tostring(L, -1)));
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    return a;
}

/* "name k=v k=v" with params in key order (they are sorted). */
static char *make_label(const char *name, const json_t *params)
{
    size_t cap = strlen(name) + 1;
    const char *k;
    json_t *v;
    char **vals = calloc(json_object_size(params) + 1, sizeof *vals);
    size_t i = 0;
    json_object_foreach((json_t *)params, k, v) {
        vals[i] = json_is_string(v) ? strdup(json_string_value(v))
                                    : json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
        cap += strlen(k) + strlen(vals[i] ? vals[i] : "") + 2;
        i++;
    }
    char *out = malloc(cap);
    size_t used = (size_t)snprintf(out, cap, "%s", name);
    i = 0;
    json_object_foreach((json_t *)params, k, v) {
        used += (size_t)snprintf(out + used, cap - used, " %s=%s", k, vals[i] ? vals[i] : "");
        free(vals[i++]);
    }
    free(vals);
    return out;
}

static json_t *read_params(lua_State *L, int t, const char *name)
{
    int ty = lua_getfield(L, t, "params");
    json_t *p = NULL;
    if (ty == LUA_TNIL)
        p = json_object();
    else if (ty != LUA_TTABLE)
        luaL_error(L, "experiment '%s': field 'params' must be a table", name);
    else
        p = check_json(L, -1, "params");
    if (json_is_array(p) && json_array_size(p) == 0)
        p = (json_decref(p), json_object());
    if (!json_is_object(p)) {
        json_decref(p);
        luaL_error(L, "experiment '%s': field 'params' must have string keys", name);
    }
    lua_pop(L, 1);
    return p;
}

/* Kind-specific fields (every key outside common_fields) -> args. */
static json_t *read_args(lua_State *L, int t, const hx_suite_kind *k, const char *name)
{
    json_t *args = json_object();
    eng_err err = {0};
    lua_pushnil(L);
    while (lua_next(L, t)) {
        const char *key = lua_tostring(L, -2);
        if (!in_list(common_fields, key) && strcmp(key, "run") != 0) {
            char what[256];
            snprintf(what, sizeof what, "experiment '%s': field '%s'", name, key);
            json_t *v = hx_suite_lua_to_json(L, -1, what, &err);
            if (!v) {
                json_decref(args);
                luaL_error(L, "%s", err.msg);
            }
            json_object_set_new(args, key, v);
        }
        lua_pop(L, 1);
    }
    (void)k;
    return args;
}

static hx_suite_experiment *append(lua_State *L, hx_suite *s)
{
    if (s->nexps == s->capexps) {
        size_t nc = s->capexps ? 2 * s->capexps : 16;
        hx_suite_experiment *p = realloc(s->exps, nc * sizeof *p);
        if (!p)
            luaL_error(L, "out of memory declaring experiments");
        s->exps = p;
        s->capexps = nc;
    }
    hx_suite_experiment *e = &s->exps[s->nexps];
    memset(e, 0, sizeof *e);
    e->lua_ref = LUA_NOREF;
    e->seq = (int)s->nexps;
    return e;
}

static void check_unique(lua_State *L, const hx_suite *s, const hx_suite_experiment *e)
{
    for (size_t i = 0; i + 1 < s->nexps; i++) /* e is the last one */
        if (!strcmp(s->exps[i].label, e->label))
            luaL_error(L, "experiment '%s' is declared twice (first at %s); give it another "
                       "name or different params", e->label, s->exps[i].file_line);
}

static int l_experiment(lua_State *L)
{
    hx_suite *s = suite_of(L);
    luaL_checktype(L, 1, LUA_TTABLE);
    if (!s->name)
        return luaL_error(L, "call suite{name = ...} before experiment{}");
    if (lua_getfield(L, 1, "name") != LUA_TSTRING || !lua_rawlen(L, -1))
        return luaL_error(L, "experiment: field 'name' (a non-empty string) is missing");
    const char *name = lua_tostring(L, -1);
    const hx_suite_kind *k = read_kind(L, 1, name, s);
    char what[256];
    snprintf(what, sizeof what, "experiment '%s'", name);
    check_keys(L, 1, what, common_fields, k->fields);
    hx_suite_experiment *e = append(L, s);
    e->kind = k;
    e->warmup = read_count(L, 1, "warmup", 0, 0, 1000, name, s);
    e->reps = read_count(L, 1, "reps", 1, 1, 100000, name, s);
    /* From here on, allocations belong to *e and are freed with the suite
     * even if a later check raises an error (nexps is bumped first). */
    e->name = strdup(name);
    s->nexps++;
    e->events = read_strings(L, 1, "events", name, s);
    e->tags = read_strings(L, 1, "tags", name, s);
    e->directions = read_directions(L, 1, what, s->metrics);
    e->params = read_params(L, 1, name);
    e->args = read_args(L, 1, k, name);
    e->label = make_label(name, e->params);
    luaL_where(L, 1);
    e->file_line = strdup(lua_tostring(L, -1));
    for (size_t n = strlen(e->file_line); n && strchr(": ", e->file_line[n - 1]); n--)
        e->file_line[n - 1] = '\0';
    hx_db_uuid_new(e->uuid);
    if (lua_getfield(L, 1, "run") == LUA_TFUNCTION)
        e->lua_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    else if (!lua_isnil(L, -1))
        return luaL_error(L, "experiment '%s': field 'run' must be a function", name);
    check_unique(L, s, e);
    eng_err err = {0};
    if (k->check && k->check(e, &err))
        return luaL_error(L, "experiment '%s': %s", name, err.msg);
    return 0;
}
