/*
 * kind_command.c — the "command" experiment kind: runs a subprocess and
 * records the numbers of the JSON it prints.
 *
 * Default program: this moebench binary, with argv = {"simulate", ...} and
 * "--json" appended unless argv already has it, so a suite can drive any
 * subcommand that prints JSON without linking it. `program` runs any other
 * executable (argv then are its arguments, nothing appended). The
 * experiment's events = {...} are appended as `--events a,b` to the
 * subcommands that count events (generate, bench-counters) and are an
 * error with any other command. The child gets MOEBENCH_SEED and
 * MOEBENCH_REP in its environment.
 *
 * Output capture: stdout and stderr are read through pipes with poll(), so
 * neither can fill up and block the child; stdout is capped at
 * STDOUT_MAX (a bigger output fails the repetition). Of stderr the first
 * STDERR_HEAD and the last STDERR_TAIL bytes are kept: when the command
 * fails, the message names the cause (the last line of stderr that is not
 * a "Try '... --help'" hint) and the command, shell-quoted so it can be
 * pasted; the whole kept stderr goes to experiment.error through
 * x->detail. A timeout kills the child with SIGKILL. JSON -> samples,
 * series and rows: result_json.c.
 */
#include "harness/suite/suite.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define STDOUT_MAX (64u << 20)
#define STDERR_HEAD 8192
#define STDERR_TAIL 8192
#define BLOB_MAX (1u << 20)   /* outputs up to this size are kept as a blob */
#define ARGV_MAX 256

/* Subcommands that count the events of field 'events' (as --events). */
static const char *const counting[] = {"generate", "bench-counters", NULL};

/* events = {...} becomes `--events a,b` of the moebench subcommand it runs;
 * a command that counts no events is an error rather than a field that
 * is stored and ignored. */
static int check_events(const hx_suite_experiment *e, const json_t *prog, const json_t *argv,
                        eng_err *err)
{
    if (!json_array_size(e->events))
        return ENG_OK;
    const char *sub = json_string_value(json_array_get(argv, 0));
    int counts = 0;
    for (int i = 0; !prog && sub && counting[i]; i++)
        counts |= !strcmp(sub, counting[i]);
    if (!counts)
        return eng_err_set(err, ENG_EINVAL, "field 'events': they are passed as --events to"
                           " `moebench generate` or `moebench bench-counters`; this experiment"
                           " runs %s%s, which counts no events", prog ? "the program " : "moebench ",
                           prog ? json_string_value(prog) : sub ? sub : "?");
    for (size_t i = 0; i < json_array_size(argv); i++) {
        const char *a = json_string_value(json_array_get(argv, i));
        if (!strcmp(a, "--events") || !strncmp(a, "--events=", 9) ||
            !strncmp(a, "--events-preset", 15))
            return eng_err_set(err, ENG_EINVAL, "field 'events' and argv's %s both name events;"
                               " keep one", a);
    }
    for (size_t i = 0; i < json_array_size(e->events); i++)
        if (strchr(json_string_value(json_array_get(e->events, i)), ','))
            return eng_err_set(err, ENG_EINVAL, "field 'events': item %zu holds a comma; give"
                               " one event per item", i + 1);
    return ENG_OK;
}

int hx_suite_kind_command_check(const hx_suite_experiment *e, eng_err *err)
{
    const json_t *argv = json_object_get(e->args, "argv");
    const json_t *prog = json_object_get(e->args, "program");
    const json_t *to = json_object_get(e->args, "timeout");
    const json_t *js = json_object_get(e->args, "json");
    if (prog && (!json_is_string(prog) || !json_string_length(prog)))
        return eng_err_set(err, ENG_EINVAL, "field 'program' must be a non-empty string");
    if (!argv && !prog)
        return eng_err_set(err, ENG_EINVAL, "field 'argv' is missing (a list of strings: "
                           "the moebench subcommand and its arguments)");
    if (argv && !json_is_array(argv))
        return eng_err_set(err, ENG_EINVAL, "field 'argv' must be a list of strings");
    if (json_array_size(argv) + 5 > ARGV_MAX)
        return eng_err_set(err, ENG_EINVAL, "field 'argv' has more than %d items", ARGV_MAX - 5);
    if (!prog && json_array_size(argv) == 0)
        return eng_err_set(err, ENG_EINVAL, "field 'argv' is empty: name a moebench subcommand");
    for (size_t i = 0; i < json_array_size(argv); i++)
        if (!json_is_string(json_array_get(argv, i)))
            return eng_err_set(err, ENG_EINVAL, "field 'argv': item %zu is not a string", i + 1);
    if (to && (!json_is_number(to) || !(json_number_value(to) > 0)))
        return eng_err_set(err, ENG_EINVAL, "field 'timeout' must be a number of seconds > 0");
    if (js && !json_is_boolean(js))
        return eng_err_set(err, ENG_EINVAL, "field 'json' must be true or false");
    return check_events(e, prog, argv, err);
}

/* `lua:PATH` (a policy written in Lua) with a relative PATH names a file
 * beside the suite when one is there, so a suite and its policies move
 * together; otherwise PATH stays relative to the working directory. A
 * rewritten argument is malloc'd into *owned (the caller frees it). */
static const char *suite_relative(const hx_suite_exec *x, const char *a, char **owned)
{
    if (strncmp(a, "lua:", 4) || a[4] == '/' || !a[4] || !x->suite_dir)
        return a;
    size_t n = strlen(x->suite_dir) + strlen(a) + 2;
    char *p = malloc(n);
    if (!p)
        return a;
    snprintf(p, n, "lua:%s/%s", x->suite_dir, a + 4);
    if (access(p + 4, R_OK) != 0) {
        free(p);
        return a;
    }
    return *owned = p;
}

/* Builds the argv array (pointers into the JSON strings, into owned[] for
 * arguments rewritten by suite_relative and into events_buf for the joined
 * events); returns argc. */
static int build_argv(const hx_suite_exec *x, const char **av, char **owned,
                      char *events_buf, size_t cap)
{
    const json_t *args = x->exp->args;
    const json_t *prog = json_object_get(args, "program");
    const json_t *argv = json_object_get(args, "argv");
    int n = 0, has_json = 0;
    av[n++] = prog ? json_string_value(prog) : x->self_exe;
    for (size_t i = 0; i < json_array_size(argv); i++) {
        av[n] = suite_relative(x, json_string_value(json_array_get(argv, i)), &owned[n]);
        has_json |= !strcmp(av[n], "--json");
        n++;
    }
    if (!prog && !has_json && !json_is_false(json_object_get(args, "json")))
        av[n++] = "--json";
    const json_t *ev = x->exp->events;
    if (json_array_size(ev)) { /* check_events allowed them: a counting subcommand */
        size_t used = 0;
        events_buf[0] = '\0';
        for (size_t i = 0; i < json_array_size(ev) && used < cap; i++)
            used += (size_t)snprintf(events_buf + used, cap - used, "%s%s", i ? "," : "",
                                     json_string_value(json_array_get(ev, i)));
        av[n++] = "--events";
        av[n++] = events_buf;
    }
    av[n] = NULL;
    return n;
}

/* The command line as a shell would take it back: words of safe
 * characters as they are, others in single quotes ('\'' for a quote). */
static void describe(const char **av, char *buf, size_t cap)
{
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; av[i] && used + 1 < cap; i++) {
        const char *a = av[i];
        int plain = *a && strspn(a, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                    "0123456789_-+=.,/:@%^") == strlen(a);
        used += (size_t)snprintf(buf + used, cap - used, "%s%s", i ? " " : "", plain ? a : "'");
        for (; !plain && *a && used + 5 < cap; a++)
            used += (size_t)snprintf(buf + used, cap - used, "%s",
                                     *a == '\'' ? "'\\''" : (char[2]){*a, 0});
        if (!plain && used + 1 < cap)
            buf[used++] = '\'', buf[used] = '\0';
    }
}

typedef struct capture {
    char *out;
    size_t nout, capout;
    char head[STDERR_HEAD];     /* the first bytes of stderr                */
    size_t nhead;
    char err[STDERR_TAIL + 1];  /* the last bytes (overlaps head when short) */
    size_t nerr;
    size_t err_total;           /* bytes of stderr seen                     */
    int too_big, timed_out;
} capture;

static void keep_tail(capture *c, const char *buf, size_t n)
{
    size_t h = n < STDERR_HEAD - c->nhead ? n : STDERR_HEAD - c->nhead;
    memcpy(c->head + c->nhead, buf, h);
    c->nhead += h;
    c->err_total += n;
    if (n >= STDERR_TAIL) {
        memcpy(c->err, buf + n - STDERR_TAIL, STDERR_TAIL);
        c->nerr = STDERR_TAIL;
    } else {
        size_t drop = c->nerr + n > STDERR_TAIL ? c->nerr + n - STDERR_TAIL : 0;
        memmove(c->err, c->err + drop, c->nerr - drop);
        c->nerr -= drop;
        memcpy(c->err + c->nerr, buf, n);
        c->nerr += n;
    }
    c->err[c->nerr] = '\0';
}

static int keep_out(capture *c, const char *buf, size_t n)
{
    if (c->nout + n > STDOUT_MAX) {
        c->too_big = 1;
        return 0;
    }
    if (c->nout + n + 1 > c->capout) {
        size_t nc = c->capout ? c->capout : 65536;
        while (nc < c->nout + n + 1)
            nc *= 2;
        char *p = realloc(c->out, nc);
        if (!p)
            return -1;
        c->out = p;
        c->capout = nc;
    }
    memcpy(c->out + c->nout, buf, n);
    c->nout += n;
    c->out[c->nout] = '\0';
    return 0;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Reads both pipes to EOF (or timeout / size cap). */
static int pump(int fo, int fe, pid_t pid, double timeout_s, capture *c)
{
    struct pollfd p[2] = {{fo, POLLIN, 0}, {fe, POLLIN, 0}};
    double deadline = timeout_s > 0 ? now_s() + timeout_s : 0;
    char buf[65536];
    while (p[0].fd >= 0 || p[1].fd >= 0) {
        int wait_ms = -1;
        if (deadline) {
            double left = deadline - now_s();
            if (left <= 0) {
                c->timed_out = 1;
                kill(pid, SIGKILL);
                break;
            }
            wait_ms = (int)(left * 1000) + 1;
        }
        int r = poll(p, 2, wait_ms);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -1;
        for (int i = 0; i < 2; i++) {
            if (p[i].fd < 0 || !(p[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            ssize_t got = read(p[i].fd, buf, sizeof buf);
            if (got < 0 && errno == EINTR)
                continue;
            if (got <= 0) {
                p[i].fd = -1;
                continue;
            }
            if (i == 1)
                keep_tail(c, buf, (size_t)got);
            else if (keep_out(c, buf, (size_t)got) < 0)
                return -1;
            if (c->too_big) {
                kill(pid, SIGKILL);
                return 0;
            }
        }
    }
    return 0;
}

static pid_t spawn(const hx_suite_exec *x, const char **av, int *fo, int *fe)
{
    int po[2], pe[2];
    if (pipe2(po, O_CLOEXEC) < 0)
        return -1;
    if (pipe2(pe, O_CLOEXEC) < 0) {
        close(po[0]), close(po[1]);
        return -1;
    }
    pid_t pid = fork();
    if (pid == 0) {
        char seed[32], rep[16];
        snprintf(seed, sizeof seed, "%llu", (unsigned long long)x->seed);
        snprintf(rep, sizeof rep, "%d", x->rep);
        setenv("MOEBENCH_SEED", seed, 1);
        setenv("MOEBENCH_REP", rep, 1);
        int devnull = open("/dev/null", O_RDONLY);
        if (devnull >= 0)
            dup2(devnull, 0);
        dup2(po[1], 1);
        dup2(pe[1], 2);
        execvp(av[0], (char *const *)av);
        fprintf(stderr, "cannot run %s: %s\n", av[0], strerror(errno));
        _exit(127);
    }
    close(po[1]);
    close(pe[1]);
    if (pid < 0) {
        close(po[0]), close(pe[0]);
        return -1;
    }
    *fo = po[0];
    *fe = pe[0];
    return pid;
}

/* The kept stderr as one text (malloc'd): all of it when it fit, else
 * its head, a line saying how much was left out, and its tail. */
static char *stderr_text(const capture *c)
{
    size_t after = c->err_total - c->nhead;         /* bytes past the head */
    size_t tail = after < c->nerr ? after : c->nerr;
    char *t = malloc(c->nhead + tail + 64);
    if (!t)
        return NULL;
    memcpy(t, c->head, c->nhead);
    size_t n = c->nhead;
    if (after > tail)
        n += (size_t)sprintf(t + n, "\n[... %zu bytes left out ...]\n", after - tail);
    memcpy(t + n, c->err + c->nerr - tail, tail);
    t[n + tail] = '\0';
    return t;
}

/* The cause, for the one-line message: the last non-empty line of stderr
 * that is not a "Try '... --help'" hint (moebench's usage errors end with
 * one), else the last line; copied into buf. */
static void cause(const char *text, char *buf, size_t cap)
{
    const char *best = NULL, *last = NULL;
    size_t nbest = 0, nlast = 0;
    for (const char *p = text ? text : ""; *p;) {
        size_t n = strcspn(p, "\n");
        size_t m = n;
        while (m && (p[m - 1] == ' ' || p[m - 1] == '\r'))
            m--;
        if (m) {
            last = p, nlast = m;
            if (strncmp(p, "Try '", 5))
                best = p, nbest = m;
        }
        p += n + (p[n] == '\n');
    }
    if (!best)
        best = last, nbest = nlast;
    snprintf(buf, cap, "%.*s", best ? (int)nbest : 0, best ? best : "");
}

/* The failure of a finished command: the cause first (what the runner
 * prints), then the command line; the whole stderr in *x->detail. */
static int failed(const hx_suite_exec *x, const capture *c, const char *what, const char *how,
                  eng_err *err)
{
    char *text = stderr_text(c), why[400];
    cause(text, why, sizeof why);
    if (x->detail && text && *text) {
        free(*x->detail);
        if ((*x->detail = malloc(strlen(text) + 16)))
            sprintf(*x->detail, "stderr:\n%s", text);
    }
    free(text);
    return eng_err_set(err, ENG_EIO, "%s%s%s\ncommand: %s", how, *why ? ": " : "", why, what);
}

static int finish(const hx_suite_exec *x, capture *c, int status, const char *what, hx_db_result *out,
                  eng_err *err)
{
    const json_t *to = json_object_get(x->exp->args, "timeout");
    char how[96];
    if (c->timed_out) {
        snprintf(how, sizeof how, "timed out after %g s", to ? json_number_value(to)
                                                              : x->timeout_s);
        return failed(x, c, what, how, err);
    }
    if (c->too_big)
        return eng_err_set(err, ENG_EIO, "'%s' printed more than %u bytes", what, STDOUT_MAX);
    if (WIFSIGNALED(status) || WEXITSTATUS(status) != 0) {
        if (WIFSIGNALED(status))
            snprintf(how, sizeof how, "killed by signal %d", WTERMSIG(status));
        else
            snprintf(how, sizeof how, "exited with status %d", WEXITSTATUS(status));
        return failed(x, c, what, how, err);
    }
    json_error_t je;
    json_t *root = json_loadb(c->out ? c->out : "", c->nout, JSON_DECODE_ANY, &je);
    if (!root)
        return eng_err_set(err, ENG_EFORMAT, "'%s': output is not JSON (line %d: %s)", what,
                           je.line, je.text);
    /* `moebench metrics|simulate TRACE ...`: TRACE labels the routing rows */
    const json_t *argv = json_object_get(x->exp->args, "argv");
    const char *a1 = json_string_value(json_array_get(argv, 1));
    const char *trace = !json_object_get(x->exp->args, "program") && a1 && a1[0] != '-' ? a1
                                                                                     : NULL;
    int rc = hx_suite_result_from_json(out, root, trace, err);
    if (!rc && c->nout <= BLOB_MAX)
        rc = hx_db_result_blob(out, "output", json_incref(root), err);
    json_decref(root);
    if (rc)
        eng_err_prefix(err, "'%s'", what);
    return rc;
}

int hx_suite_kind_command_run(const hx_suite_exec *x, hx_db_result *out, eng_err *err)
{
    const char *av[ARGV_MAX];
    char events[4096], *owned[ARGV_MAX] = {0};
    build_argv(x, av, owned, events, sizeof events);
    char what[1024];
    describe(av, what, sizeof what);
    const json_t *to = json_object_get(x->exp->args, "timeout");
    double timeout = to ? json_number_value(to) : x->timeout_s;
    int fo, fe;
    pid_t pid = spawn(x, av, &fo, &fe);
    if (pid < 0) {
        for (int i = 0; i < ARGV_MAX; i++)
            free(owned[i]);
        return eng_err_set(err, ENG_EIO, "cannot start '%s': %s", what, strerror(errno));
    }
    capture c = {0};
    int prc = pump(fo, fe, pid, timeout, &c);
    close(fo);
    close(fe);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    int rc = prc < 0 ? eng_err_set(err, ENG_ENOMEM, "'%s': cannot read its output", what)
                     : finish(x, &c, status, what, out, err);
    free(c.out);
    for (int i = 0; i < ARGV_MAX; i++)
        free(owned[i]);
    return rc;
}
