/*
 * harness/cli/ — the `moebench` command line: main(), the subcommand table
 * (commands.c), one cmd_NAME.c per subcommand, and what they share: exit
 * codes, usage errors, strict option parsing, the SIGBUS guard. Prefix
 * hx_cli_. The subcommands' entry points are internal (cli_impl.h).
 *
 * The other rooms of harness/: suite/ (Lua suites, kinds, runner, Slurm),
 * db/ (the SQLite results store and everything that reads it: compare,
 * regress, report, query), probe/ (what `generate` and `simulate` attach
 * to the engine: offloading, counters, traces, Lua policies).
 */
#ifndef HX_CLI_H
#define HX_CLI_H

#include "metrics/trace.h"

#include <stddef.h>
#include <stdint.h>

/* ---- cli ---------------- */
/*
 * The moebench command line: subcommand table, exit codes and the
 * small parsing helpers every subcommand shares.
 *
 * Exit codes (docs/cli.md): 0 success, 1 the work failed (I/O error, out of
 * memory, a failed experiment), 2 bad usage or bad input (unknown option,
 * malformed value, malformed or unsupported file).
 */

enum { HX_CLI_EXIT_OK = 0, HX_CLI_EXIT_FAIL = 1, HX_CLI_EXIT_USAGE = 2 };

typedef struct hx_cli_command {
    const char *name;
    const char *summary;                 /* one line for `moebench --help` */
    int (*run)(int argc, char **argv);   /* argv[0] is the command name    */
} hx_cli_command;

/* The table, NULL-terminated (harness/cli/commands.c). */
extern const hx_cli_command hx_cli_commands[];

/* Prints "moebench CMD: MESSAGE" and "Try 'moebench CMD --help'." on
 * stderr; returns HX_CLI_EXIT_USAGE. */
int hx_cli_usage_error(const char *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Prints "moebench CMD: MESSAGE" on stderr and returns the exit code that
 * matches an ENG_* error code (hx_cli_exit_code). */
int hx_cli_fail(const char *cmd, int eng_code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ENG_* error code -> exit code: bad input/usage 2, the rest 1. */
int hx_cli_exit_code(int eng_code);

/* Creates the folder an output file goes into (one level, as `models/`
 * for `mkmodel -o models/x.gguf`) when it is missing; errors are left to
 * the write that follows, which names the file. */
void hx_cli_make_parent(const char *path);

/* b bytes as "123 B", "4.5 KiB", "6.7 MiB", ... into buf. */
void hx_cli_human_bytes(uint64_t b, char *buf, size_t cap);

/* Progress of a long write on stderr, at most once a percent
 * ("\rCMD: 42%  1.2 MiB / 3.0 MiB", a newline when done == total): a
 * progress callback whose user is an hx_cli_progress (last_pct -1 at the
 * start). */
typedef struct hx_cli_progress {
    const char *cmd;
    int last_pct;
} hx_cli_progress;
void hx_cli_progress_bytes(void *user, uint64_t done, uint64_t total);

/* The first-parent history of REF in the git repository of the working
 * directory, oldest first (`git rev-list --first-parent --reverse REF`):
 * full hashes into *out (free with hx_cli_git_order_free). 0, or -1 when
 * git fails or finds nothing. */
int hx_cli_git_order(const char *ref, char ***out, size_t *n);
void hx_cli_git_order_free(char **order, size_t n);

/* An input file named on the command line must exist and be readable: 0,
 * else "moebench CMD: WHAT PATH: reason" (what names the option, e.g.
 * "-m", or NULL) and exit code 2, so a wrong path exits 2 in every command. */
int hx_cli_input(const char *cmd, const char *what, const char *path);

/* Strict number parsing for option values; on error they print a usage
 * error naming the option and return HX_CLI_EXIT_USAGE, else 0. */
int hx_cli_parse_i64(const char *cmd, const char *opt, const char *val,
                 int64_t min, int64_t max, int64_t *out);
int hx_cli_parse_int(const char *cmd, const char *opt, const char *val,
                 int min, int max, int *out);
int hx_cli_parse_double(const char *cmd, const char *opt, const char *val,
                    double min, double max, double *out);

/* ---- sigbus ---------------- */
/*
 * Turns a SIGBUS (a memory-mapped file shrank under the run)
 * into one line on stderr and exit status 1. main() installs it for every
 * command.
 */

void hx_cli_sigbus_install(void);

/* ---- trace_opts ---------------- */
/*
 * Option parsers shared by `moebench trace` and `moebench
 * metrics`. Each prints its own usage error and returns HX_CLI_EXIT_USAGE, or 0.
 */

/* "4,16,64,256": at most 64 distinct lengths in 1..1e6. */
int hx_cli_parse_seg_lens(const char *cmd, const char *val, int32_t *segs, int *n);
/* "0,3,8-15": distinct layer numbers 0..MET_TRACE_MAX_LAYERS-1 (malloc'd). */
int hx_cli_parse_layers(const char *cmd, const char *val, int32_t **layers, int *n);
/* moetrace|json|csv|safetensors */
int hx_cli_parse_format(const char *cmd, const char *val, met_trace_format *out);

#endif
