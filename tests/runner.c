/*
 * runner.c — runs every registered TEST in its own process.
 *
 *   moebench-tests [-j N] [-v] [-l] [--timeout S] [FILTER...]
 *
 * Tests run N at a time (default: online CPUs). Each child gets its own
 * temporary directory and writes its output to a file that the parent prints
 * when the test fails (or always with -v). A test that crashes, times out or
 * calls REQUIRE fails; the others go on. The last line is
 * "N passed, N failed"; the exit status is 1 when any test failed.
 */
#include "tests/test.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_TESTS 4096

typedef struct test_case {
    char name[160];
    tst_fn fn;
} test_case;

/* Registry filled by constructors before main; the only file-scope state of
 * the runner, and it is written once. */
static struct {
    test_case tests[MAX_TESTS];
    int n;
} registry;

/* State of the test running in this (child) process. */
static struct {
    int failures;
    char tmpdir[256];
    void **allocs;
    size_t nalloc, cap;
} current;

void tst_register(const char *file, const char *name, tst_fn fn)
{
    if (registry.n == MAX_TESTS) {
        fprintf(stderr, "runner: too many tests (max %d)\n", MAX_TESTS);
        exit(2);
    }
    /* tests/engine/test_gguf.c -> engine/gguf */
    const char *p = strncmp(file, "tests/", 6) == 0 ? file + 6 : file;
    char suite[128];
    snprintf(suite, sizeof suite, "%s", p);
    char *dot = strrchr(suite, '.');
    if (dot)
        *dot = '\0';
    char *slash = strrchr(suite, '/');
    char *base = slash ? slash + 1 : suite;
    if (strncmp(base, "test_", 5) == 0)
        memmove(base, base + 5, strlen(base + 5) + 1);
    test_case *t = &registry.tests[registry.n++];
    snprintf(t->name, sizeof t->name, "%s/%s", suite, name);
    t->fn = fn;
}

void tst_fail(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s:%d: failed: ", file, line);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    current.failures++;
}

void tst_abort(void)
{
    fflush(NULL);
    _exit(1);
}

void *tst_alloc(size_t n)
{
    void *p = calloc(1, n ? n : 1);
    if (!p) {
        fprintf(stderr, "tst_alloc: out of memory\n");
        tst_abort();
    }
    if (current.nalloc == current.cap) {
        current.cap = current.cap ? 2 * current.cap : 64;
        current.allocs = realloc(current.allocs, current.cap * sizeof *current.allocs);
        if (!current.allocs)
            tst_abort();
    }
    current.allocs[current.nalloc++] = p;
    return p;
}

const char *tst_tmpdir(void)
{
    return current.tmpdir;
}

const char *tst_path(const char *name)
{
    size_t n = strlen(current.tmpdir) + strlen(name) + 2;
    char *p = tst_alloc(n);
    snprintf(p, n, "%s/%s", current.tmpdir, name);
    return p;
}

const char *tst_moebench(void)
{
    const char *p = getenv("MOEBENCH");
    return p && *p ? p : "build/moebench";
}

char *tst_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    size_t got;
    while (buf && (got = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += got;
        if (cap - n - 1 == 0) {
            cap *= 2;
            char *nb = realloc(buf, cap);
            if (!nb) {
                free(buf);
                buf = NULL;
            } else {
                buf = nb;
            }
        }
    }
    fclose(f);
    if (!buf)
        return NULL;
    buf[n] = '\0';
    if (len)
        *len = n;
    char *out = tst_alloc(n + 1);
    memcpy(out, buf, n + 1);
    free(buf);
    return out;
}

void tst_write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    REQUIRE_MSG(f != NULL, "cannot write %s: %s", path, strerror(errno));
    REQUIRE(fwrite(data, 1, len, f) == len);
    REQUIRE(fclose(f) == 0);
}

int tst_sh(char **out, char **err, const char *fmt, ...)
{
    char cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    static int seq;
    char outp[300], errp[300], full[9000];
    seq++;
    snprintf(outp, sizeof outp, "%s/.sh%d.out", current.tmpdir, seq);
    snprintf(errp, sizeof errp, "%s/.sh%d.err", current.tmpdir, seq);
    snprintf(full, sizeof full, "( %s ) >'%s' 2>'%s' </dev/null", cmd, outp, errp);
    int st = system(full);
    if (out)
        *out = tst_read_file(outp, NULL);
    if (err)
        *err = tst_read_file(errp, NULL);
    if (st == -1)
        return -1;
    if (WIFEXITED(st))
        return WEXITSTATUS(st);
    return 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
}

/* ---- parent side ------------------------------------------------------- */

typedef struct running {
    pid_t pid;
    int index;
    char outfile[256];
    char tmpdir[256];
    struct timespec start;
} running;

static double elapsed_ms(const struct timespec *a)
{
    struct timespec b;
    clock_gettime(CLOCK_MONOTONIC, &b);
    return (b.tv_sec - a->tv_sec) * 1e3 + (b.tv_nsec - a->tv_nsec) / 1e6;
}

static void remove_tree(const char *dir)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "runner: could not remove %s\n", dir);
}

static void run_child(const test_case *t, const running *r, int timeout_s)
{
    int fd = open(r->outfile, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd >= 0) {
        dup2(fd, 1);
        dup2(fd, 2);
        close(fd);
    }
    setvbuf(stdout, NULL, _IONBF, 0);
    snprintf(current.tmpdir, sizeof current.tmpdir, "%s", r->tmpdir);
    alarm((unsigned)timeout_s);
    t->fn();
    fflush(NULL);
    for (size_t i = 0; i < current.nalloc; i++)
        free(current.allocs[i]);
    free(current.allocs);
    _exit(current.failures ? 1 : 0);
}

static void print_file(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        fwrite(buf, 1, n, stdout);
    fclose(f);
}

static int matches(const char *name, int nfilters, char **filters)
{
    if (nfilters == 0)
        return 1;
    for (int i = 0; i < nfilters; i++)
        if (strstr(name, filters[i]))
            return 1;
    return 0;
}

static int usage(int status)
{
    printf("usage: moebench-tests [-j N] [-v] [-l] [--timeout SECONDS] [FILTER...]\n"
           "  runs every test whose name contains one of the FILTERs (all without);\n"
           "  -j N       tests at a time (default: online CPUs)\n"
           "  -v         show the output of passing tests too\n"
           "  -l         list test names and exit\n"
           "  --timeout  seconds before a test is killed (default 300)\n");
    return status;
}

static int finish(running *r, int status, int verbose, const char *name)
{
    int ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    double ms = elapsed_ms(&r->start);
    printf("%s %s (%.0f ms)", ok ? "ok  " : "FAIL", name, ms);
    if (WIFSIGNALED(status))
        printf(" — killed by signal %d%s", WTERMSIG(status),
               WTERMSIG(status) == SIGALRM ? " (timeout)" : "");
    printf("\n");
    if (!ok || verbose)
        print_file(r->outfile);
    fflush(stdout);
    unlink(r->outfile);
    remove_tree(r->tmpdir);
    return ok;
}

int main(int argc, char **argv)
{
    long jobs = sysconf(_SC_NPROCESSORS_ONLN);
    int verbose = 0, list = 0, timeout_s = 300, nf = 0;
    char **filters = calloc((size_t)argc, sizeof *filters);
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-j") && i + 1 < argc)
            jobs = atol(argv[++i]);
        else if (!strcmp(argv[i], "-v"))
            verbose = 1;
        else if (!strcmp(argv[i], "-l"))
            list = 1;
        else if (!strcmp(argv[i], "--timeout") && i + 1 < argc)
            timeout_s = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help"))
            return usage(0);
        else if (argv[i][0] == '-')
            return usage(2);
        else
            filters[nf++] = argv[i];
    }
    if (jobs < 1)
        jobs = 1;
    if (list) {
        for (int i = 0; i < registry.n; i++)
            if (matches(registry.tests[i].name, nf, filters))
                printf("%s\n", registry.tests[i].name);
        return 0;
    }
    running *slots = calloc((size_t)jobs, sizeof *slots);
    int passed = 0, failed = 0, next = 0, active = 0;
    fflush(stdout);
    for (;;) {
        while (active < jobs && next < registry.n) {
            int i = next++;
            if (!matches(registry.tests[i].name, nf, filters))
                continue;
            running *r = NULL;
            for (long s = 0; s < jobs; s++)
                if (slots[s].pid == 0) { r = &slots[s]; break; }
            snprintf(r->tmpdir, sizeof r->tmpdir, "/tmp/moebench-test-XXXXXX");
            if (!mkdtemp(r->tmpdir)) {
                perror("runner: mkdtemp");
                return 2;
            }
            snprintf(r->outfile, sizeof r->outfile, "%s.log", r->tmpdir);
            r->index = i;
            clock_gettime(CLOCK_MONOTONIC, &r->start);
            pid_t pid = fork();
            if (pid == 0)
                run_child(&registry.tests[i], r, timeout_s);
            r->pid = pid;
            active++;
        }
        if (active == 0)
            break;
        int status;
        pid_t pid = wait(&status);
        if (pid < 0)
            break;
        for (long s = 0; s < jobs; s++) {
            if (slots[s].pid != pid)
                continue;
            if (finish(&slots[s], status, verbose, registry.tests[slots[s].index].name))
                passed++;
            else
                failed++;
            slots[s].pid = 0;
            active--;
        }
    }
    free(slots);
    free(filters);
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
