/*
 * cli.c — shared command-line helpers. See cli.h.
 */
#include "harness/cli/cli.h"

#include "engine/err.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int hx_cli_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "moebench %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry 'moebench %s --help'.\n", cmd);
    return HX_CLI_EXIT_USAGE;
}

int hx_cli_exit_code(int eng_code)
{
    switch (eng_code) {
    case ENG_OK:
        return HX_CLI_EXIT_OK;
    case ENG_EINVAL:
    case ENG_EFORMAT:
    case ENG_EUNSUPPORTED:
        return HX_CLI_EXIT_USAGE;
    default:
        return HX_CLI_EXIT_FAIL;
    }
}

int hx_cli_fail(const char *cmd, int eng_code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "moebench %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return hx_cli_exit_code(eng_code);
}

int hx_cli_parse_i64(const char *cmd, const char *opt, const char *val,
                 int64_t min, int64_t max, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(val, &end, 10);
    if (errno || end == val || *end != '\0')
        return hx_cli_usage_error(cmd, "%s: '%s' is not an integer", opt, val);
    if (v < min || v > max)
        return hx_cli_usage_error(cmd, "%s: %lld is out of range [%lld, %lld]", opt, v,
                              (long long)min, (long long)max);
    *out = v;
    return 0;
}

int hx_cli_parse_int(const char *cmd, const char *opt, const char *val,
                 int min, int max, int *out)
{
    int64_t v;
    int rc = hx_cli_parse_i64(cmd, opt, val, min, max, &v);
    if (rc == 0)
        *out = (int)v;
    return rc;
}

int hx_cli_parse_double(const char *cmd, const char *opt, const char *val,
                    double min, double max, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(val, &end);
    if (errno || end == val || *end != '\0' || !isfinite(v))
        return hx_cli_usage_error(cmd, "%s: '%s' is not a number", opt, val);
    if (v < min || v > max)
        return hx_cli_usage_error(cmd, "%s: %g is out of range [%g, %g]", opt, v, min, max);
    *out = v;
    return 0;
}

int hx_cli_input(const char *cmd, const char *what, const char *path)
{
    if (path && access(path, R_OK) == 0)
        return HX_CLI_EXIT_OK;
    return hx_cli_fail(cmd, ENG_EINVAL, "%s%s%s: %s", what ? what : "", what ? " " : "",
                       path ? path : "(none)", strerror(errno));
}

void hx_cli_human_bytes(uint64_t b, char *buf, size_t cap)
{
    const char *u[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)b;
    int i = 0;
    while (v >= 1024 && i < 4) {
        v /= 1024;
        i++;
    }
    snprintf(buf, cap, i ? "%.1f %s" : "%.0f %s", v, u[i]);
}

void hx_cli_progress_bytes(void *user, uint64_t done, uint64_t total)
{
    hx_cli_progress *ps = user;
    int pct = total ? (int)(100.0 * (double)done / (double)total) : 100;
    if (pct == ps->last_pct)
        return;
    ps->last_pct = pct;
    char a[32], b[32];
    hx_cli_human_bytes(done, a, sizeof a);
    hx_cli_human_bytes(total, b, sizeof b);
    fprintf(stderr, "\r%s: %3d%%  %s / %s", ps->cmd, pct, a, b);
    if (done == total)
        fputc('\n', stderr);
}

void hx_cli_make_parent(const char *path)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash || slash == dir)
        return;
    *slash = '\0';
    if (access(dir, F_OK) != 0)
        mkdir(dir, 0777);
}

int hx_cli_git_order(const char *ref, char ***out, size_t *n)
{
    *out = NULL, *n = 0;
    if (strchr(ref, '\''))
        return -1;
    char cmd[512];
    snprintf(cmd, sizeof cmd, "git rev-list --first-parent --reverse '%s' 2>/dev/null", ref);
    FILE *p = popen(cmd, "r");
    if (!p)
        return -1;
    char line[128];
    size_t cap = 0;
    while (fgets(line, sizeof line, p)) {
        line[strcspn(line, "\n")] = '\0';
        if (*n == cap) {
            char **q = realloc(*out, (cap = cap ? 2 * cap : 256) * sizeof *q);
            if (!q)
                break;
            *out = q;
        }
        if (((*out)[*n] = strdup(line)))
            (*n)++;
    }
    return pclose(p) == 0 && *n ? 0 : -1;
}

void hx_cli_git_order_free(char **order, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(order[i]);
    free(order);
}
