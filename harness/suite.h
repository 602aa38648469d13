/*
 * suite.h — a suite file loaded into an embedded Lua 5.4 state, and the
 * experiments it declared (harness/lua_api.c; the Lua side is documented
 * in docs/lua-api.md).
 *
 * Loading runs the file once: `suite{...}` declares the name, description
 * and options (resolved against the -D values, returned to the script),
 * each `experiment{...}` is checked field by field and appended to the
 * plan, `report(fn)` registers the function that prints the comparison at
 * the end. Errors carry the script's file:line and a traceback. The Lua
 * state stays open: the lua kind calls the experiments' run functions in
 * it, and the runner calls the report function.
 *
 * Module search path (package.path), first match wins:
 *   $MOEBENCH_LUA_PATH (directories separated by ':'), the suite file's own
 *   directory, the modules beside the binary (harness/datadir.h: a
 *   checkout's scripts/lua or an installation's share/moebench/lua),
 *   ./scripts/lua, then Lua's defaults.
 *
 * Thread-safety: a suite and its Lua state belong to one thread.
 */
#ifndef HX_SUITE_H
#define HX_SUITE_H

#include "engine/err.h"
#include "harness/kind.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

struct lua_State;

typedef struct hx_suite_config {
    const json_t *defines;  /* object: option name -> string, from -D      */
    int quick;              /* --quick: the script sees opts.quick = true   */
    uint64_t seed;          /* --seed: opts.seed                            */
    int help_only;          /* stop at suite(): for --help-suite            */
    int dry_run;            /* --dry-run: the script sees opts.dry_run = true */
    const char *self_exe;   /* this binary, for package.path and commands   */
} hx_suite_config;

typedef struct hx_suite {
    struct lua_State *L;
    char *file;
    char *name, *description;
    json_t *options;        /* array of {name, default, help}, declared order */
    json_t *opts;           /* resolved: option -> value, plus quick, seed    */
    json_t *defaults;       /* suite{defaults = {...}} for experiments        */
    hx_experiment *exps;    /* declared experiments, in order                 */
    size_t nexps, capexps;
    int report_ref;         /* LUA_NOREF or the report function               */
    const hx_suite_config *cfg;
} hx_suite;

/* Loads and runs the suite file. ENG_EINVAL with "file:line: message" and
 * a traceback for an error in the script or a bad declaration (including
 * a bad or unknown -D option); ENG_EIO when the file cannot be read. With
 * cfg->help_only the load stops at suite() and succeeds. */
int hx_suite_load(hx_suite **out, const char *file, const hx_suite_config *cfg,
                  eng_err *err);
void hx_suite_free(hx_suite *s);

/* Prints the suite's name, description and options with defaults. */
void hx_suite_print_help(const hx_suite *s);

/* Calls the report function (if any) with the results (an array of
 * experiment objects: name, label, params, status, error, summary). */
int hx_suite_report(hx_suite *s, const json_t *results, eng_err *err);

/* Lua <-> JSON for the Lua boundary (lua_json.c). hx_lua_to_json returns
 * a new reference or NULL with a message naming `what`; an empty table is
 * an array. hx_lua_push_json pushes a JSON value (null becomes nil). */
json_t *hx_lua_to_json(struct lua_State *L, int idx, const char *what, eng_err *err);
void hx_lua_push_json(struct lua_State *L, const json_t *v);

/* Pushes the traceback message handler used for every lua_pcall. */
void hx_lua_push_traceback(struct lua_State *L);

/* Opens the `moebench` module (lua_api.c) on L: luaL_requiref-style. */
int hx_lua_open_module(struct lua_State *L);

#endif
