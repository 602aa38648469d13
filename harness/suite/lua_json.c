/*
 * lua_json.c — conversion between Lua values and jansson JSON at the Lua
 * boundary. See suite.h.
 *
 * A Lua table is an array when its keys are exactly 1..n, an object when
 * every key is a string; anything else (mixed keys, functions, userdata,
 * NaN, invalid UTF-8, nesting deeper than MAX_DEPTH) is refused with a
 * message naming the offending path ("params.sizes[3]"). Object keys are
 * emitted sorted, so the same table always gives the same JSON text (labels
 * and content hashes depend on it).
 */
#include "harness/suite/suite.h"

#include <lauxlib.h>
#include <lua.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 32

static json_t *to_json(lua_State *L, int idx, const char *path, int depth, eng_err *err);

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Counts keys; *is_array when they are 1..n. Non-string, non-integer keys
 * make it neither (error). */
static int classify(lua_State *L, int idx, size_t *n, int *is_array, int *is_object)
{
    lua_Integer maxi = 0;
    size_t count = 0, nint = 0, nstr = 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        count++;
        if (lua_type(L, -2) == LUA_TSTRING)
            nstr++;
        else if (lua_isinteger(L, -2) && lua_tointeger(L, -2) >= 1) {
            nint++;
            if (lua_tointeger(L, -2) > maxi)
                maxi = lua_tointeger(L, -2);
        }
        lua_pop(L, 1);
    }
    *n = count;
    *is_array = nint == count && (size_t)maxi == count;
    *is_object = nstr == count;
    return 0;
}

static json_t *array_to_json(lua_State *L, int idx, size_t n, const char *path, int depth,
                             eng_err *err)
{
    json_t *a = json_array();
    for (size_t i = 1; a && i <= n; i++) {
        char sub[256];
        snprintf(sub, sizeof sub, "%s[%zu]", path, i);
        lua_rawgeti(L, idx, (lua_Integer)i);
        json_t *v = to_json(L, lua_gettop(L), sub, depth + 1, err);
        lua_pop(L, 1);
        if (!v || json_array_append_new(a, v)) {
            json_decref(a);
            return NULL;
        }
    }
    return a;
}

static json_t *object_to_json(lua_State *L, int idx, size_t n, const char *path, int depth,
                              eng_err *err)
{
    const char **keys = malloc((n ? n : 1) * sizeof *keys);
    json_t *o = json_object();
    size_t k = 0;
    lua_pushnil(L);
    while (keys && lua_next(L, idx)) {
        keys[k++] = lua_tostring(L, -2); /* strings stay alive: the table holds them */
        lua_pop(L, 1);
    }
    if (keys)
        qsort(keys, k, sizeof *keys, cmp_str);
    for (size_t i = 0; keys && o && i < k; i++) {
        char sub[256];
        snprintf(sub, sizeof sub, "%s.%s", path, keys[i]);
        lua_getfield(L, idx, keys[i]);
        json_t *v = to_json(L, lua_gettop(L), sub, depth + 1, err);
        lua_pop(L, 1);
        if (!v || json_object_set_new(o, keys[i], v)) {
            json_decref(o);
            o = NULL;
        }
    }
    free(keys);
    return o;
}

static json_t *table_to_json(lua_State *L, int idx, const char *path, int depth, eng_err *err)
{
    if (depth > MAX_DEPTH) {
        eng_err_set(err, ENG_EINVAL, "%s: nested deeper than %d tables", path, MAX_DEPTH);
        return NULL;
    }
    size_t n;
    int is_array, is_object;
    classify(L, idx, &n, &is_array, &is_object);
    json_t *v = NULL;
    if (is_array)
        v = array_to_json(L, idx, n, path, depth, err);
    else if (is_object)
        v = object_to_json(L, idx, n, path, depth, err);
    else
        eng_err_set(err, ENG_EINVAL, "%s: a table must be a list (keys 1..n) or have only "
                    "string keys", path);
    if (!v && err->code == ENG_OK)
        eng_err_set(err, ENG_ENOMEM, "%s: out of memory", path);
    return v;
}

static json_t *to_json(lua_State *L, int idx, const char *path, int depth, eng_err *err)
{
    json_t *v = NULL;
    switch (lua_type(L, idx)) {
    case LUA_TBOOLEAN:
        return json_boolean(lua_toboolean(L, idx));
    case LUA_TNUMBER:
        if (lua_isinteger(L, idx))
            return json_integer((json_int_t)lua_tointeger(L, idx));
        if (!isfinite(lua_tonumber(L, idx))) {
            eng_err_set(err, ENG_EINVAL, "%s: %g is not a finite number", path,
                        lua_tonumber(L, idx));
            return NULL;
        }
        return json_real(lua_tonumber(L, idx));
    case LUA_TSTRING: {
        size_t len;
        const char *s = lua_tolstring(L, idx, &len);
        if (!(v = json_stringn(s, len)))
            eng_err_set(err, ENG_EINVAL, "%s: string is not valid UTF-8", path);
        return v;
    }
    case LUA_TTABLE:
        return table_to_json(L, idx, path, depth, err);
    default:
        eng_err_set(err, ENG_EINVAL, "%s: a %s cannot be stored (use strings, numbers, "
                    "booleans and tables)", path, luaL_typename(L, idx));
        return NULL;
    }
}

json_t *hx_suite_lua_to_json(lua_State *L, int idx, const char *what, eng_err *err)
{
    if (!lua_checkstack(L, MAX_DEPTH * 3 + 8)) {
        eng_err_set(err, ENG_ENOMEM, "%s: Lua stack exhausted", what);
        return NULL;
    }
    return to_json(L, lua_absindex(L, idx), what, 0, err);
}

void hx_suite_lua_push_json(lua_State *L, const json_t *v)
{
    luaL_checkstack(L, 4, "converting JSON");
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        lua_createtable(L, 0, (int)json_object_size(v));
        const char *k;
        json_t *c;
        json_object_foreach((json_t *)v, k, c) {
            hx_suite_lua_push_json(L, c);
            lua_setfield(L, -2, k);
        }
        break;
    }
    case JSON_ARRAY:
        lua_createtable(L, (int)json_array_size(v), 0);
        for (size_t i = 0; i < json_array_size(v); i++) {
            hx_suite_lua_push_json(L, json_array_get(v, i));
            lua_rawseti(L, -2, (lua_Integer)i + 1);
        }
        break;
    case JSON_STRING:
        lua_pushlstring(L, json_string_value(v), json_string_length(v));
        break;
    case JSON_INTEGER:
        lua_pushinteger(L, (lua_Integer)json_integer_value(v));
        break;
    case JSON_REAL:
        lua_pushnumber(L, json_real_value(v));
        break;
    case JSON_TRUE:
    case JSON_FALSE:
        lua_pushboolean(L, json_is_true(v));
        break;
    default:
        lua_pushnil(L);
    }
}
