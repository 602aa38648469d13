/*
 * lua_policy.h — eviction policies written in Lua (`--policy lua:FILE.lua`),
 * registered through the engine's own policy interface (engine/policy.h).
 *
 * The engine stays free of Lua: this bridge is an eng_policy_ops table whose
 * callbacks call into a Lua state. Every policy instance (one per layer with
 * a per-layer cache) gets its own lua_State, so instances share nothing.
 *
 * The file returns a factory: function(cfg) -> methods, where cfg is
 * {capacity = N, n_keys = K, seed = S} and methods is a table of plain
 * functions (closures; not called with self):
 *   victim(candidates) -> key   required: one of the candidates (the resident,
 *                               unpinned keys, in no particular order)
 *   access(key, pos, hit)       optional: every demand access, first
 *   insert(key, pos)            optional: key became resident
 *   evict(key)                  optional: key left the cache
 *   admit(key) -> boolean       optional: false = serve without caching
 *   reset()                     optional: a new sequence starts, cache empty
 * docs/policies.md ("Policies in Lua") has an example and the overhead.
 *
 * A Lua error in a callback is printed once on stderr (file:line and the
 * message); the instance then refuses to name victims, so the run stops
 * with an error instead of continuing on a broken policy.
 *
 * Thread-safety: a loaded policy may be opened by several handles; each
 * handle (instance) belongs to one thread.
 */
#ifndef HX_LUA_POLICY_H
#define HX_LUA_POLICY_H

#include "engine/err.h"
#include "engine/policy.h"

typedef struct hx_lua_policy hx_lua_policy;

/* Loads and checks FILE (it must compile, return a factory, and the factory
 * must return a table with a victim function for a small test config).
 * Errors: ENG_EIO (unreadable), ENG_EINVAL (Lua error, wrong shape), with
 * the file name and Lua's message. */
int hx_lua_policy_load(hx_lua_policy **out, const char *path, eng_err *err);
void hx_lua_policy_free(hx_lua_policy *lp);

/* The ops table and the user pointer to pass as eng_policy_config.user
 * (eng_policy_open_ops). Valid until hx_lua_policy_free. */
const eng_policy_ops *hx_lua_policy_ops(const hx_lua_policy *lp);
void *hx_lua_policy_user(hx_lua_policy *lp);

/* "lua:PATH" -> PATH, anything else -> NULL. */
const char *hx_lua_policy_path(const char *policy_arg);

#endif
