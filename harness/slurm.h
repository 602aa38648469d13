/*
 * slurm.h — a suite's shards as a Slurm job array (docs/suites.md,
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
 * the Slurm job around it (hx_slurm_placement) and the host (machine
 * table), so the merged database says where each shard ran.
 *
 * Only one process writes each database at a time (a shard's task its own
 * file, the merge job OUT), which SQLite's WAL needs on a shared file
 * system.
 *
 * Thread-safety: no shared state; the functions run child processes
 * (sbatch, squeue) and wait for them.
 */
#ifndef HX_SLURM_H
#define HX_SLURM_H

#include "engine/err.h"
#include "harness/runner.h"

#include <jansson.h>

#define HX_SLURM_MAX_TASKS 1000 /* Slurm's default MaxArraySize is 1001 */

typedef struct hx_slurm_opts {
    int tasks;               /* array size; 0: one per selected experiment,
                                at most HX_SLURM_MAX_TASKS                 */
    const char *sbatch_args; /* given to every sbatch; split like a shell  */
    const char *dir;         /* job folder; NULL: OUT, .db -> .slurm        */
    int dry_run;             /* print scripts and commands; write nothing  */
} hx_slurm_opts;

/* Writes the job folder and submits prepare, shards and merge for suite
 * `file` with the run options `ro` (its db_path is OUT). ENG_EINVAL for a
 * bad option or suite, ENG_EIO when a file cannot be written or sbatch
 * fails (jobs already submitted are cancelled). */
int hx_slurm_submit(const char *file, const hx_run_opts *ro, const hx_slurm_opts *so,
                    eng_err *err);

/* Resubmits the shards of job folder `dir` that are not ok (their old
 * databases move to dir/failed/). Refuses while a job of the last
 * submission is still queued or running. so->tasks and so->dir are
 * ignored; so->sbatch_args NULL reuses the last submission's. */
int hx_slurm_resume(const char *dir, const hx_slurm_opts *so, eng_err *err);

/* Prints the state of every shard of `dir` (ok, failed, ..., where it ran,
 * whether OUT holds it); *bad = shards not ok. */
int hx_slurm_status(const char *dir, int *bad, eng_err *err);

/* The merge job: merges every ok shard of `dir` into OUT, prints the state
 * of each shard; *bad = shards not ok. */
int hx_slurm_merge(const char *dir, int *bad, eng_err *err);

/* --shard auto: shard *i of *n from SLURM_ARRAY_TASK_ID, _MIN, _MAX and
 * _COUNT (i = ID - MIN + 1, n = COUNT). ENG_EINVAL outside an array task
 * or for an array whose indices are not one contiguous range. */
int hx_slurm_shard_auto(int *i, int *n, eng_err *err);

/* The Slurm job this process runs in, from its environment: job_id,
 * array_job_id, array_task_id, array_task_count, node, cluster, partition,
 * submit_host (those that are set). NULL outside a Slurm job. */
json_t *hx_slurm_placement(void);

/* Splits a command line like a shell does (blanks; '...'; "..." with \"
 * and \\; \ outside quotes) into a JSON array of strings, without any
 * expansion. ENG_EINVAL for an unterminated quote. */
int hx_slurm_split_args(const char *s, json_t **out, eng_err *err);

#endif
