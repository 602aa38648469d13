/*
 * runner.h — runs a suite: selects experiments (--filter, --shard),
 * schedules warm-ups and repetitions (optionally interleaved in a seeded
 * random order), calls each experiment's kind, times it, stores every
 * experiment in the database as it completes, and prints a comparison.
 *
 * Under Slurm the run records the job around it (harness/slurm.h,
 * hx_slurm_placement) in run.cli.slurm: where a shard ran.
 *
 * Interruption: SIGINT/SIGTERM stop the run between repetitions (a Lua
 * body is stopped by a debug hook); the experiment in flight is dropped,
 * every finished one is already committed, the run is marked
 * 'interrupted'. A second signal kills the process at once.
 *
 * Thread-safety: one run per process at a time (the signal handler's
 * state is process-wide by nature).
 */
#ifndef HX_RUNNER_H
#define HX_RUNNER_H

#include "engine/err.h"

#include <jansson.h>
#include <stdint.h>

typedef struct hx_run_opts {
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
} hx_run_opts;

typedef struct hx_run_outcome {
    int declared, selected, ok, failed;
    int interrupted;
    int64_t run_id;           /* 0 for --dry-run                            */
    char run_uuid[37];
} hx_run_outcome;

/* Runs the suite file. Returns ENG_OK when the run completed (experiments
 * may have failed: see out->failed), ENG_EINVAL for a bad suite or option
 * (message with file:line), ENG_EIO for a database problem. */
int hx_runner_run(const char *file, const hx_run_opts *o, hx_run_outcome *out, eng_err *err);

struct hx_suite;
/* Runs an already loaded suite (hx_runner_run = hx_suite_load + this);
 * the suite stays the caller's. For tests and embedders that build or
 * adjust experiments in C. */
int hx_runner_run_suite(struct hx_suite *s, const char *file, const hx_run_opts *o,
                        hx_run_outcome *out, eng_err *err);

/* Prints the suite's options (--help-suite). */
int hx_runner_help_suite(const char *file, const hx_run_opts *o, eng_err *err);

/* Loads the suite as a dry run (it makes no model) and counts the
 * experiments --filter selects, before any --shard. */
int hx_runner_count(const char *file, const hx_run_opts *o, int *selected, eng_err *err);

/* Deterministic shard membership of the k-th selected experiment. */
int hx_runner_in_shard(int k, int shard_i, int shard_n);

#endif
