/*
 * harness/suite/ — experiments written as Lua suites and the runner that
 * executes them: the embedded Lua state and its `moebench` module
 * (lua_*.c), experiment kinds (kind*.c: lua, command), turning a command's
 * JSON into results (result_*.c), the runner (runner.c), the environment a
 * run records (env.c), Slurm job arrays (slurm*.c) and where moebench's own
 * Lua modules and suites live (datadir.c). Prefix hx_suite_. Results go to
 * the store of harness/db/db.h.
 */
#ifndef HX_SUITE_H
#define HX_SUITE_H

#include "engine/err.h"
#include "harness/db/db.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/* ---- kind ---------------- */
/*
 * Experiment kinds: the one place where something measurable
 * plugs into the runner.
 *
 * A suite declares experiments (harness/suite/lua_api.c); each names a kind.
 * For every repetition (warm-ups included) the runner calls the kind's
 * run() with the experiment's parameters and fills an hx_db_result from what
 * it returns; it measures wall and CPU time around the call itself, then
 * stores the results (harness/db/db.h). A kind is a row in hx_suite_kinds[]
 * (harness/suite/kind.c):
 *
 *     {"generate", "engine: decode N tokens", generate_fields,
 *      generate_check, generate_run, generate_init, generate_fini},
 *
 * run() reads x->exp->params / x->exp->args (JSON) and x->exp->events, and
 * fills the hx_db_result: samples (tokens_per_s, hit_rate, ...), per-token
 * series, counter rows per region, cache_stats rows per layer, routing
 * metrics; the runner adds wall_ms/cpu_ms, summarises and stores each in
 * its table (harness/db/db.h). init/fini hold state for the whole run (a
 * model loaded once for a sweep).
 *
 * Kinds today: "lua" (the body is a Lua function, kind_lua in lua_api.c)
 * and "command" (runs `moebench SUBCOMMAND ... --json`, or any program,
 * and records the numbers of its JSON output, kind_command.c).
 *
 * Experiment fields: name, kind, params, warmup, reps, events, tags and
 * (lua kind) run are common; every other field of the Lua table goes into
 * hx_suite_experiment.args as JSON, and must be listed in the kind's `fields` (an
 * unknown field is an error at declaration, naming the script line).
 *
 * Thread-safety: the runner calls kinds from one thread, one at a time.
 */

struct lua_State;
typedef struct hx_suite_kind hx_suite_kind;

/* One declared experiment. Strings and JSON are owned by the suite. */
typedef struct hx_suite_experiment {
    int seq;              /* declaration order, 0-based                     */
    char *name;           /* as declared                                    */
    char *label;          /* name plus "k=v ..." params: display and filter */
    const hx_suite_kind *kind;
    json_t *params;       /* object: the user's parameters (any JSON value) */
    json_t *args;         /* object: kind-specific fields (argv, program...)*/
    json_t *events;       /* array of strings: requested counter events     */
    json_t *tags;         /* array of strings                               */
    json_t *directions;   /* metrics = {...} of the suite and the experiment:
                             pattern -> "higher"|"lower"|"equal", or NULL   */
    int warmup, reps;     /* warm-up runs (not stored), measured runs        */
    int lua_ref;          /* lua kind: registry ref of run(), else LUA_NOREF */
    char *file_line;      /* "suites/x.lua:12", where it was declared        */
    char uuid[37];        /* stable identity in the database (merge)        */
} hx_suite_experiment;

/* What a kind sees for one repetition. */
typedef struct hx_suite_exec {
    const hx_suite_experiment *exp;
    int rep;              /* 0..reps-1 measured; -warmup..-1 warm-ups        */
    int is_warmup;        /* 1: results are discarded                       */
    uint64_t seed;        /* from --seed, experiment seq and rep; < 2^63   */
    const json_t *opts;   /* the suite's resolved options (object)          */
    struct lua_State *L;  /* the suite's Lua state (lua kind only)          */
    const char *self_exe; /* path of this moebench binary                   */
    double timeout_s;     /* 0: none; the lua and command kinds honour it   */
    void *kctx;           /* the kind's per-run context (init), or NULL     */
    const char *suite_dir; /* the suite file's directory ("." for none)     */
    char **detail;        /* on failure a kind may leave a malloc'd text here
                             (a command's stderr): stored in experiment.error
                             after the message; the runner frees it         */
} hx_suite_exec;

struct hx_suite_kind {
    const char *name;
    const char *summary;
    const char *const *fields; /* kind-specific fields, NULL-terminated      */
    /* Validates args at declaration (and --dry-run); may be NULL. */
    int (*check)(const hx_suite_experiment *e, eng_err *err);
    /* One repetition. Fills out; on failure returns an ENG_* code with the
     * message in err (the runner records the experiment as failed). */
    int (*run)(const hx_suite_exec *x, hx_db_result *out, eng_err *err);
    /* Optional per-run context, for state shared by every experiment and
     * repetition of this kind in one run (the engine kind: models loaded
     * once, keyed by path). init is called before the kind's first
     * repetition, fini after the run; both may be NULL. A failed init
     * fails the experiment that needed it (and is retried by the next). */
    int (*init)(void **kctx, eng_err *err);
    void (*fini)(void *kctx);
};

/* The table, NULL-name terminated (kind.c). */
extern const hx_suite_kind hx_suite_kinds[];

/* Kind by name, NULL when unknown. */
const hx_suite_kind *hx_suite_kind_find(const char *name);

/* Whether field is one of the kind's fields. */
int hx_suite_kind_has_field(const hx_suite_kind *k, const char *field);

/* Kind implementations (kind_command.c, lua_api.c). */
int hx_suite_kind_command_check(const hx_suite_experiment *e, eng_err *err);
int hx_suite_kind_command_run(const hx_suite_exec *x, hx_db_result *out, eng_err *err);
int hx_suite_kind_lua_check(const hx_suite_experiment *e, eng_err *err);
int hx_suite_kind_lua_run(const hx_suite_exec *x, hx_db_result *out, eng_err *err);

/* JSON output of a command -> result: numbers become samples (dotted
 * paths), arrays of numbers series, recognised objects routing_metric /
 * cache_stats rows, with the shapes of `moebench simulate --json` and
 * `moebench metrics --json` understood (docs/database.md, "How the command
 * kind fills the tables"). default_trace (may be NULL) labels routing rows
 * when the output names no trace (result_json.c). */
int hx_suite_result_from_json(hx_db_result *r, const json_t *root, const char *default_trace,
                        eng_err *err);
/* `moebench generate --json` output (a "summary" object, a "model" with
 * "arch") and its mapping to samples, the decode_ms series, cache_stats
 * and counter rows (result_generate.c); hx_suite_result_from_json uses it. */
int hx_suite_result_is_generate(const json_t *root);
int hx_suite_result_from_generate(hx_db_result *r, const json_t *root, eng_err *err);
/* The "cache" object of generate's or perplexity's JSON: cache_stats rows
 * (total and per layer), cache.<key> samples, hit_rate, and stall_share =
 * cache.decode_stall_ms / time_ms when time_ms > 0 (result_generate.c). */
int hx_suite_result_cache(hx_db_result *r, const json_t *root, double time_ms, eng_err *err);
/* `moebench perplexity --json` (a "ppl" and an integer "tokens_scored"):
 * every top-level number as a sample, chunk_ms as a series, the cache as
 * above over eval_ms (result_perplexity.c). */
int hx_suite_result_is_perplexity(const json_t *root);
int hx_suite_result_from_perplexity(hx_db_result *r, const json_t *root, eng_err *err);

/* ---- suite ---------------- */
/*
 * A suite file loaded into an embedded Lua 5.4 state, and the
 * experiments it declared (harness/suite/lua_api.c; the Lua side is documented
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
 *   directory, the modules beside the binary (harness/suite/suite.h: a
 *   checkout's scripts/lua or an installation's share/moebench/lua),
 *   ./scripts/lua, then Lua's defaults.
 *
 * Thread-safety: a suite and its Lua state belong to one thread.
 */

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
    json_t *metrics;        /* suite{metrics = {...}}: directions, or NULL   */
    hx_suite_experiment *exps;    /* declared experiments, in order                 */
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

/* Lua <-> JSON for the Lua boundary (lua_json.c). hx_suite_lua_to_json returns
 * a new reference or NULL with a message naming `what`; an empty table is
 * an array. hx_suite_lua_push_json pushes a JSON value (null becomes nil). */
json_t *hx_suite_lua_to_json(struct lua_State *L, int idx, const char *what, eng_err *err);
void hx_suite_lua_push_json(struct lua_State *L, const json_t *v);

/* Pushes the traceback message handler used for every lua_pcall. */
void hx_suite_lua_push_traceback(struct lua_State *L);

/* Opens the `moebench` module (lua_api.c) on L: luaL_requiref-style. */
int hx_suite_lua_open_module(struct lua_State *L);

/* ---- runner ---------------- */
/*
 * Runs a suite: selects experiments (--filter, --shard),
 * schedules warm-ups and repetitions (optionally interleaved in a seeded
 * random order), calls each experiment's kind, times it, stores every
 * experiment in the database as it completes, and prints a comparison.
 *
 * Under Slurm the run records the job around it (harness/suite/suite.h,
 * hx_suite_slurm_placement) in run.cli.slurm: where a shard ran.
 *
 * Interruption: SIGINT/SIGTERM stop the run between repetitions (a Lua
 * body is stopped by a debug hook); the experiment in flight is dropped,
 * every finished one is already committed, the run is marked
 * 'interrupted'. A second signal kills the process at once.
 *
 * Thread-safety: one run per process at a time (the signal handler's
 * state is process-wide by nature).
 */

typedef struct hx_suite_run_opts {
    const char *db_path;      /* results database                           */
    const json_t *defines;    /* -D name=value (object of strings)          */
    const char *filter;       /* substring, or glob with * ? [ ], on labels */
    int shard_i, shard_n;     /* --shard I/N, 1 <= I <= N; N = 0: no shard  */
    int dry_run, quick, interleave, fail_fast, quiet;
    int prepare;              /* load the suite (it makes its models), run
                                 nothing, store nothing: --prepare          */
    int reps, warmup;         /* overrides when >= 0                        */
    double timeout_s;         /* per repetition of command kinds; 0: none   */
    uint64_t seed;
    const char *self_exe;
    int argc;                 /* the command line, recorded with the run    */
    char **argv;
} hx_suite_run_opts;

typedef struct hx_suite_run_outcome {
    int declared, selected, ok, failed;
    int interrupted;
    int64_t run_id;           /* 0 for --dry-run                            */
    char run_uuid[37];
} hx_suite_run_outcome;

/* Runs the suite file. Returns ENG_OK when the run completed (experiments
 * may have failed: see out->failed), ENG_EINVAL for a bad suite or option
 * (message with file:line), ENG_EIO for a database problem. */
int hx_suite_runner_run(const char *file, const hx_suite_run_opts *o, hx_suite_run_outcome *out, eng_err *err);

struct hx_suite;
/* Runs an already loaded suite (hx_suite_runner_run = hx_suite_load + this);
 * the suite stays the caller's. For tests and embedders that build or
 * adjust experiments in C. */
int hx_suite_runner_run_suite(struct hx_suite *s, const char *file, const hx_suite_run_opts *o,
                        hx_suite_run_outcome *out, eng_err *err);

/* Prints the suite's options (--help-suite). */
int hx_suite_runner_help_suite(const char *file, const hx_suite_run_opts *o, eng_err *err);

/* Loads the suite as a dry run (it makes no model) and counts the
 * experiments --filter selects, before any --shard. */
int hx_suite_runner_count(const char *file, const hx_suite_run_opts *o, int *selected, eng_err *err);

/* Deterministic shard membership of the k-th selected experiment. */
int hx_suite_runner_in_shard(int k, int shard_i, int shard_n);

/* ---- slurm ---------------- */
/*
 * A suite's shards as a Slurm job array (docs/suites.md,
 * "Running on a cluster (Slurm)").
 *
 * `moebench run SUITE --slurm --db OUT` writes a job folder DIR and submits
 * three jobs with sbatch, each depending on the one before:
 *   prepare  one task, `moebench run SUITE --prepare`: loads the suite once,
 *            which makes the models and traces the suite makes on first use
 *            (scripts/lua/models.lua), so the array's tasks find them made
 *            instead of each making its own at the same time;
 *   shards   the job array, afterok:prepare (and --kill-on-invalid-dep, so
 *            a failed prepare cancels it instead of leaving it pending
 *            forever): array index i runs `--shard i/N` into DIR/shard-i.db;
 *   merge    afterany:shards, `moebench merge --slurm DIR`: merges every
 *            shard that is ok into OUT, lists the others, exit 1 if any.
 * DIR holds the three scripts, job.json (suite, database, N, the run
 * options, and each submission's shards and job ids), the shard databases
 * and log/ (every job's output). `moebench run --slurm-resume DIR`
 * resubmits the three jobs for the shards that are not ok, and only those.
 *
 * A shard is ok when its database holds a finished run of that shard
 * (run.cli shard_i/shard_n) with status 'ok'. Every shard's run records
 * the Slurm job around it (hx_suite_slurm_placement) and the host (machine
 * table), so the merged database says where each shard ran.
 *
 * Only one process writes each database at a time (a shard's task its own
 * file, the merge job OUT), which SQLite's WAL needs on a shared file
 * system.
 *
 * Thread-safety: no shared state; the functions run child processes
 * (sbatch, squeue) and wait for them.
 */

#define HX_SUITE_SLURM_MAX_TASKS 1000 /* Slurm's default MaxArraySize is 1001 */

typedef struct hx_suite_slurm_opts {
    int tasks;               /* array size; 0: one per selected experiment,
                                at most HX_SUITE_SLURM_MAX_TASKS                 */
    const char *sbatch_args; /* given to every sbatch; split like a shell  */
    const char *dir;         /* job folder; NULL: OUT, .db -> .slurm        */
    int dry_run;             /* print scripts and commands; write nothing  */
} hx_suite_slurm_opts;

/* Writes the job folder and submits prepare, shards and merge for suite
 * `file` with the run options `ro` (its db_path is OUT). ENG_EINVAL for a
 * bad option or suite, ENG_EIO when a file cannot be written or sbatch
 * fails (jobs already submitted are cancelled). */
int hx_suite_slurm_submit(const char *file, const hx_suite_run_opts *ro, const hx_suite_slurm_opts *so,
                    eng_err *err);

/* Resubmits the shards of job folder `dir` that are not ok (their old
 * databases move to dir/failed/). Refuses while a job of the last
 * submission is still queued or running. so->tasks and so->dir are
 * ignored; so->sbatch_args NULL reuses the last submission's. */
int hx_suite_slurm_resume(const char *dir, const hx_suite_slurm_opts *so, eng_err *err);

/* Prints the state of every shard of `dir` (ok, failed, ..., where it ran,
 * whether OUT holds it); *bad = shards not ok. */
int hx_suite_slurm_status(const char *dir, int *bad, eng_err *err);

/* The merge job: merges every ok shard of `dir` into OUT, prints the state
 * of each shard; *bad = shards not ok. */
int hx_suite_slurm_merge(const char *dir, int *bad, eng_err *err);

/* --shard auto: shard *i of *n from SLURM_ARRAY_TASK_ID, _MIN, _MAX and
 * _COUNT (i = ID - MIN + 1, n = COUNT). ENG_EINVAL outside an array task
 * or for an array whose indices are not one contiguous range. */
int hx_suite_slurm_shard_auto(int *i, int *n, eng_err *err);

/* The Slurm job this process runs in, from its environment: job_id,
 * array_job_id, array_task_id, array_task_count, node, cluster, partition,
 * submit_host (those that are set). NULL outside a Slurm job. */
json_t *hx_suite_slurm_placement(void);

/* Splits a command line like a shell does (blanks; '...'; "..." with \"
 * and \\; \ outside quotes) into a JSON array of strings, without any
 * expansion. ENG_EINVAL for an unterminated quote. */
int hx_suite_slurm_split_args(const char *s, json_t **out, eng_err *err);

/* ---- env ---------------- */
/*
 * What a run records about where and with what it ran: the
 * machine (CPU, cores, memory, kernel, whether a hardware PMU counts, per
 * the same probe as `moebench events`) and the build (commit, dirty flag,
 * compiler, flags, versions of SQLite, Lua, OpenBLAS, PAPI, jansson).
 * Both are JSON objects; the store keys them by a hash of their contents.
 *
 * Thread-safety: call from one thread (the PMU probe initialises PAPI).
 */

/* New references; never NULL except out of memory. */
json_t *hx_suite_env_machine(void);
json_t *hx_suite_env_build(void);

/* ---- datadir ---------------- */
/*
 * Where moebench's own files live, found from the running
 * binary so that neither a checkout nor an installation needs a
 * configuration file or a path compiled in (an installed tree can be moved,
 * and `make install DESTDIR=...` stages a tree that runs where it lies).
 *
 *   checkout       build/moebench       -> <top>/scripts/lua, <top>/suites
 *   installation   PREFIX/bin/moebench  -> PREFIX/share/moebench/lua,
 *                                          PREFIX/share/moebench/suites
 *
 * The binary's path comes from /proc/self/exe, symbolic links resolved, so
 * a link to the binary on PATH still finds its files.
 *
 * Thread-safety: no state; safe from any thread.
 */

typedef enum hx_suite_datadir_kind {
    HX_SUITE_DATADIR_LUA,    /* Lua modules that suites `require` */
    HX_SUITE_DATADIR_SUITES, /* the shipped suites                */
} hx_suite_datadir_kind;

/* The first existing folder of that kind beside the running binary, into
 * out (cap bytes). Returns 1 when one exists, 0 otherwise (out = ""). */
int hx_suite_datadir_find(hx_suite_datadir_kind kind, char *out, size_t cap);

/* Resolves a suite argument: an existing file as given; otherwise, for a
 * bare name without '/' (ci or ci.lua), the shipped suite of that name.
 * Returns 1 with the path in out, 0 when neither exists (out = name). */
int hx_suite_datadir_suite(const char *name, char *out, size_t cap);

#endif
