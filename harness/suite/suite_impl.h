/*
 * suite_impl.h — what the suite room's files share and nobody else uses:
 * slurm.c (submission) with slurm_shards.c (the state of each shard,
 * status, merge), lua_api.c with lua_decl.c; not part of the harness's API.
 *
 * The job folder's job.json, as written by hx_suite_slurm_submit:
 *   {"format": 1, "name": "ci", "suite": "/abs/ci.lua", "db": "/abs/OUT.db",
 *    "dir": "/abs/OUT.slurm", "cwd": "/abs", "exe": "/abs/moebench",
 *    "tasks": N, "run_args": ["-D", "k=v", ...],
 *    "submissions": [{"submitted_at": "...", "shards": [1, 2, 3],
 *                     "array_spec": "1-3", "sbatch_args": "...",
 *                     "prepare": 101, "array": 102, "merge": 103}, ...]}
 * Every path is absolute, so the jobs do not depend on where sbatch ran.
 */
#ifndef HX_SUITE_IMPL_H
#define HX_SUITE_IMPL_H

#include "engine/err.h"

#include <jansson.h>
#include <stddef.h>

/* Reads and checks dir/job.json (every field above, by name). */
int hx_suite_slurm_job_load(const char *dir, json_t **job, eng_err *err);

/* The array job that last ran shard i (0 when none did). */
long long hx_suite_slurm_job_array_of(const json_t *job, int i);

typedef enum hx_suite_shard_state {
    HX_SUITE_SHARD_OK,          /* a finished run of the shard, status ok         */
    HX_SUITE_SHARD_FAILED,      /* finished, some experiment failed               */
    HX_SUITE_SHARD_INTERRUPTED, /* SIGTERM/SIGINT: scancel or the time limit      */
    HX_SUITE_SHARD_UNFINISHED,  /* status still 'running': running, or killed     */
    HX_SUITE_SHARD_NO_RUN,      /* a database without a run of this shard         */
    HX_SUITE_SHARD_MISSING,     /* no database: the task did not start its run    */
    HX_SUITE_SHARD_UNREADABLE,  /* a file that is not a readable moebench db      */
} hx_suite_shard_state;

typedef struct hx_suite_slurm_shard {
    int index;              /* 1..N                                        */
    hx_suite_shard_state state;
    int n_ok, n_failed;     /* experiments of the run                      */
    int merged;             /* OUT holds the run (by UUID)                 */
    char uuid[37];
    char host[128];         /* machine.hostname of the run                 */
    char job[64];           /* ARRAYJOB_TASK from run.cli.slurm, or ""     */
    char path[4200];        /* dir/shard-i.db                              */
    char why[256];          /* for UNREADABLE: the database's message      */
} hx_suite_slurm_shard;

/* The state of every shard 1..N of the job (malloc'd array of N; NULL
 * when out of memory). A problem with a shard is its state, not an
 * error; `merged` is read from OUT when it exists. */
hx_suite_slurm_shard *hx_suite_slurm_shards_inspect(const json_t *job);

/* The shard database's path, dir/shard-i.db. */
void hx_suite_slurm_shard_path(const char *dir, int i, char *out, size_t cap);

/* A short word for the state: "ok", "failed", "no database", ... */
const char *hx_suite_slurm_shard_state_name(hx_suite_shard_state st);

/* lua_decl.c: registers the globals suite{}, experiment{} and report(fn)
 * of a suite's Lua state (lua_api.c calls it while loading). */
struct lua_State;
struct hx_suite;
int hx_suite_lua_decl_register(struct lua_State *L, struct hx_suite *s);

#endif
