/*
 * kind.h — experiment kinds: the one place where something measurable
 * plugs into the runner.
 *
 * A suite declares experiments (harness/lua_api.c); each names a kind.
 * For every repetition (warm-ups included) the runner calls the kind's
 * run() with the experiment's parameters and fills an hx_result from what
 * it returns; it measures wall and CPU time around the call itself, then
 * stores the results (harness/db.h). A kind is a row in hx_kinds[]
 * (harness/kind.c):
 *
 *     {"generate", "engine: decode N tokens", generate_fields,
 *      generate_check, generate_run, generate_init, generate_fini},
 *
 * run() reads x->exp->params / x->exp->args (JSON) and x->exp->events, and
 * fills the hx_result: samples (tokens_per_s, hit_rate, ...), per-token
 * series, counter rows per region, cache_stats rows per layer, routing
 * metrics; the runner adds wall_ms/cpu_ms, summarises and stores each in
 * its table (harness/db.h). init/fini hold state for the whole run (a
 * model loaded once for a sweep).
 *
 * Kinds today: "lua" (the body is a Lua function, kind_lua in lua_api.c)
 * and "command" (runs `moebench SUBCOMMAND ... --json`, or any program,
 * and records the numbers of its JSON output, kind_command.c).
 *
 * Experiment fields: name, kind, params, warmup, reps, events, tags and
 * (lua kind) run are common; every other field of the Lua table goes into
 * hx_experiment.args as JSON, and must be listed in the kind's `fields` (an
 * unknown field is an error at declaration, naming the script line).
 *
 * Thread-safety: the runner calls kinds from one thread, one at a time.
 */
#ifndef HX_KIND_H
#define HX_KIND_H

#include "engine/err.h"
#include "harness/result.h"

#include <jansson.h>
#include <stdint.h>

struct lua_State;
typedef struct hx_kind hx_kind;

/* One declared experiment. Strings and JSON are owned by the suite. */
typedef struct hx_experiment {
    int seq;              /* declaration order, 0-based                     */
    char *name;           /* as declared                                    */
    char *label;          /* name plus "k=v ..." params: display and filter */
    const hx_kind *kind;
    json_t *params;       /* object: the user's parameters (any JSON value) */
    json_t *args;         /* object: kind-specific fields (argv, program...)*/
    json_t *events;       /* array of strings: requested counter events     */
    json_t *tags;         /* array of strings                               */
    int warmup, reps;     /* warm-up runs (not stored), measured runs        */
    int lua_ref;          /* lua kind: registry ref of run(), else LUA_NOREF */
    char *file_line;      /* "suites/x.lua:12", where it was declared        */
    char uuid[37];        /* stable identity in the database (merge)        */
} hx_experiment;

/* What a kind sees for one repetition. */
typedef struct hx_exec {
    const hx_experiment *exp;
    int rep;              /* 0..reps-1 measured; -warmup..-1 warm-ups        */
    int is_warmup;        /* 1: results are discarded                       */
    uint64_t seed;        /* from --seed, experiment seq and rep; < 2^63   */
    const json_t *opts;   /* the suite's resolved options (object)          */
    struct lua_State *L;  /* the suite's Lua state (lua kind only)          */
    const char *self_exe; /* path of this moebench binary                   */
    double timeout_s;     /* 0: none; the lua and command kinds honour it   */
    void *kctx;           /* the kind's per-run context (init), or NULL     */
} hx_exec;

struct hx_kind {
    const char *name;
    const char *summary;
    const char *const *fields; /* kind-specific fields, NULL-terminated      */
    /* Validates args at declaration (and --dry-run); may be NULL. */
    int (*check)(const hx_experiment *e, eng_err *err);
    /* One repetition. Fills out; on failure returns an ENG_* code with the
     * message in err (the runner records the experiment as failed). */
    int (*run)(const hx_exec *x, hx_result *out, eng_err *err);
    /* Optional per-run context, for state shared by every experiment and
     * repetition of this kind in one run (the engine kind: models loaded
     * once, keyed by path). init is called before the kind's first
     * repetition, fini after the run; both may be NULL. A failed init
     * fails the experiment that needed it (and is retried by the next). */
    int (*init)(void **kctx, eng_err *err);
    void (*fini)(void *kctx);
};

/* The table, NULL-name terminated (kind.c). */
extern const hx_kind hx_kinds[];

/* Kind by name, NULL when unknown. */
const hx_kind *hx_kind_find(const char *name);

/* Whether field is one of the kind's fields. */
int hx_kind_has_field(const hx_kind *k, const char *field);

/* Kind implementations (kind_command.c, lua_api.c). */
int hx_kind_command_check(const hx_experiment *e, eng_err *err);
int hx_kind_command_run(const hx_exec *x, hx_result *out, eng_err *err);
int hx_kind_lua_check(const hx_experiment *e, eng_err *err);
int hx_kind_lua_run(const hx_exec *x, hx_result *out, eng_err *err);

/* JSON output of a command -> result: numbers become samples (dotted
 * paths), arrays of numbers series, recognised objects routing_metric /
 * cache_stats rows, with the shapes of `moebench simulate --json` and
 * `moebench metrics --json` understood (docs/database.md, "How the command
 * kind fills the tables"). default_trace (may be NULL) labels routing rows
 * when the output names no trace (result_json.c). */
int hx_result_from_json(hx_result *r, const json_t *root, const char *default_trace,
                        eng_err *err);
/* `moebench generate --json` output (a "summary" object, a "model" with
 * "arch") and its mapping to samples, the decode_ms series, cache_stats
 * and counter rows (result_generate.c); hx_result_from_json uses it. */
int hx_result_is_generate(const json_t *root);
int hx_result_from_generate(hx_result *r, const json_t *root, eng_err *err);

#endif
