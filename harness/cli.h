/*
 * cli.h — the moebench command line: subcommand table, exit codes and the
 * small parsing helpers every subcommand shares.
 *
 * Exit codes (docs/cli.md): 0 success, 1 the work failed (I/O error, out of
 * memory, a failed experiment), 2 bad usage or bad input (unknown option,
 * malformed value, malformed or unsupported file).
 */
#ifndef HX_CLI_H
#define HX_CLI_H

#include <stdint.h>

enum { HX_EXIT_OK = 0, HX_EXIT_FAIL = 1, HX_EXIT_USAGE = 2 };

typedef struct hx_command {
    const char *name;
    const char *summary;                 /* one line for `moebench --help` */
    int (*run)(int argc, char **argv);   /* argv[0] is the command name    */
} hx_command;

/* The table, NULL-terminated (harness/commands.c). */
extern const hx_command hx_commands[];

/* Prints "moebench CMD: MESSAGE" and "Try 'moebench CMD --help'." on
 * stderr; returns HX_EXIT_USAGE. */
int hx_usage_error(const char *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Prints "moebench CMD: MESSAGE" on stderr and returns the exit code that
 * matches an ENG_* error code (hx_exit_code). */
int hx_fail(const char *cmd, int eng_code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ENG_* error code -> exit code: bad input/usage 2, the rest 1. */
int hx_exit_code(int eng_code);

/* Strict number parsing for option values; on error they print a usage
 * error naming the option and return HX_EXIT_USAGE, else 0. */
int hx_parse_i64(const char *cmd, const char *opt, const char *val,
                 int64_t min, int64_t max, int64_t *out);
int hx_parse_int(const char *cmd, const char *opt, const char *val,
                 int min, int max, int *out);
int hx_parse_double(const char *cmd, const char *opt, const char *val,
                    double min, double max, double *out);

#endif
