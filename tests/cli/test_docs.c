/*
 * test_docs.c — every example command in docs/ (every .md) and README.md runs as
 * written.
 *
 * The extractor reads each page's code blocks: fenced blocks whose info
 * string is sh, bash or console, untagged fences whose first line is a
 * command (else they hold output), and indented (4-space) blocks whose
 * first line starts with a command (`moebench`, `build/moebench`, `make`,
 * `cd`, `$ `). In a block with `$ ` lines only those are commands (the other
 * lines are their output); otherwise every line is, with `\` continuations
 * and quotes spanning lines joined. A line that reads as a usage synopsis
 * (a `[` or `...` or an upper-case placeholder such as FILE, N, RUN outside
 * quotes) is a synopsis, not an example. Each page runs in a sandbox of its
 * own (suites/, scripts/, tests/, docs/ and results/ci-baseline.json of
 * the checkout linked in, `moebench` on PATH and as build/moebench), its
 * commands in page order, each under a time limit, and must exit 0.
 *
 * A page states what the extractor cannot guess in an HTML comment (not
 * shown by Markdown viewers) on the line before a block:
 *   <!-- doc-test: skip REASON -->   the block is not run; REASON is printed
 *   <!-- doc-test: exit N -->        its commands exit with status N
 *   <!-- doc-test: file NAME -->     a fenced block is written to NAME
 *   <!-- doc-test: setup CMD -->     CMD runs first (what the page assumes)
 *   <!-- doc-test: skip-page REASON --> every block of the page is skipped
 *   <!-- doc-test: unsanitized REASON --> skipped in the ASan build (valgrind)
 * Several may precede one block. Nothing is skipped silently: the test's
 * output (-v) lists every command run, every skip with its reason and the
 * count of synopses per page.
 */
#include "tests/test.h"
#include "tests/util/util.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DIRECTIVES 8
#define TIME_LIMIT_S 300

typedef struct page {
    const char *path, *sandbox;
    int run, skipped, synopses, files;
    char *skip_page;            /* reason, or NULL                          */
} page;

/* Pending directives for the next block. */
typedef struct directives {
    char *skip;                 /* reason, or NULL                          */
    int exit_status;
    char *file;
    char *setup[MAX_DIRECTIVES];
    int nsetup;
} directives;

static char *dup_range(const char *s, size_t n)
{
    char *p = tst_alloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    return s;
}

static void read_directive(page *pg, directives *d, const char *line)
{
    char *body = trim(dup_range(line + 4, strlen(line) - 4)); /* after "<!--" */
    size_t n = strlen(body);
    if (n >= 3 && !strcmp(body + n - 3, "-->"))
        body[n - 3] = '\0';
    body = trim(body);
    if (strncmp(body, "doc-test:", 9))
        return;
    body = trim(body + 9);
    if (!strncmp(body, "skip-page", 9))
        pg->skip_page = trim(body + 9);
    else if (!strncmp(body, "skip", 4))
        d->skip = trim(body + 4);
    else if (!strncmp(body, "unsanitized", 11)) {
#ifdef __SANITIZE_ADDRESS__
        d->skip = trim(body + 11);
#endif
    }
    else if (!strncmp(body, "exit", 4))
        d->exit_status = atoi(body + 4);
    else if (!strncmp(body, "file", 4))
        d->file = trim(body + 4);
    else if (!strncmp(body, "setup", 5) && d->nsetup < MAX_DIRECTIVES)
        d->setup[d->nsetup++] = trim(body + 5);
    else
        tst_fail(__FILE__, __LINE__, "unknown doc-test directive: %s", body);
}

/* A usage synopsis rather than an example: outside quotes, a '[', "...",
 * or a word of capitals (FILE, N, RUN, SUITE.lua, OUT.md, FILE.gguf). */
static int is_synopsis(const char *cmd)
{
    char q = 0;
    for (const char *p = cmd; *p; p++) {
        if (q) {
            q = *p == q ? 0 : q;
            continue;
        }
        if (*p == '\'' || *p == '"') {
            q = *p;
            continue;
        }
        if (*p == '#')
            return 0; /* a comment: the rest is prose */
        if (*p == '[' || !strncmp(p, "...", 3))
            return 1;
        if ((p == cmd || strchr(" =(|", p[-1])) && isupper((unsigned char)*p)) {
            const char *e = p;
            while (isupper((unsigned char)*e) || isdigit((unsigned char)*e) || *e == '_')
                e++;
            if (*e == '.') /* FILE.gguf */
                while (isalnum((unsigned char)*++e))
                    ;
            if (!*e || strchr(" ,)|]", *e))
                return e - p >= 1 && !(e - p == 1 && p[-1] == '=');
        }
    }
    return 0;
}

/* Quotes left open at the end of s (so the command goes on). */
static int open_quote(const char *s)
{
    char q = 0;
    for (; *s; s++) {
        if (q)
            q = *s == q ? 0 : q;
        else if (*s == '\'' || *s == '"')
            q = *s;
        else if (*s == '\\' && s[1])
            s++;
        else if (*s == '#' && (s[-1] == ' '))
            break;
    }
    return q != 0;
}

/* A line that starts a command: moebench or a program the pages use, maybe
 * after VAR=value assignments; "moebench run: ..." is an error message
 * (output), not a command. */
static int is_command_start(const char *l)
{
    static const char *const words[] = {"moebench ", "build/moebench ", "$ ", "make ", "cd ",
                                        "chromium ", "sqlite3 ", "valgrind ", "for ", "git ",
                                        "env ", "cc ", "head ", "jq ",
                                        "scripts/", "tests/", ".ci/", "build-fuzz/", NULL};
    while (isupper((unsigned char)*l)) { /* OPENBLAS_NUM_THREADS=1 moebench ... */
        const char *eq = l + strspn(l, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_");
        if (*eq != '=')
            break;
        l = eq + strcspn(eq, " ");
        l += strspn(l, " ");
        if (!*l || *l == '#')
            return 1; /* M=models/x.gguf: an assignment is a command too */
    }
    for (const char *const *w = words; *w; w++)
        if (!strncmp(l, *w, strlen(*w))) {
            const char *next = l + strlen(*w);
            size_t n = strcspn(next, " ");
            return !(n && next[n - 1] == ':');
        }
    return !strcmp(l, "moebench") || !strcmp(l, "make");
}

static void run_command(page *pg, const directives *d, const char *cmd, int line)
{
    if (is_synopsis(cmd)) {
        pg->synopses++;
        printf("  %s:%d synopsis: %s\n", pg->path, line, cmd);
        return;
    }
    char *out, *err;
    pg->run++;
    printf("  %s:%d run: %s\n", pg->path, line, cmd);
    int st = tst_sh(&out, &err, "cd '%s' && PATH='%s/bin':\"$PATH\" timeout %d sh -c '%s'",
                    pg->sandbox, pg->sandbox, TIME_LIMIT_S, cmd);
    size_t n = strlen(err);
    CHECK_MSG(st == d->exit_status, "%s:%d: `%s` exited %d, not %d:\n%s", pg->path, line, cmd,
              st, d->exit_status, err + (n > 1500 ? n - 1500 : 0));
}

/* Escapes ' for the sh -c '...' in run_command. */
static char *sq(const char *s)
{
    size_t n = 0;
    for (const char *p = s; *p; p++)
        n += *p == '\'' ? 4 : 1;
    char *o = tst_alloc(n + 1), *w = o;
    for (const char *p = s; *p; p++) {
        if (*p == '\'')
            memcpy(w, "'\\''", 4), w += 4;
        else
            *w++ = *p;
    }
    *w = '\0';
    return o;
}

/* The commands of one block (lines[0..n)), first_line its page line. */
static void run_block(page *pg, directives *d, char **lines, int n, int first_line)
{
    for (int i = 0; !pg->skip_page && i < d->nsetup; i++) {
        char *err;
        int st = tst_sh(NULL, &err, "cd '%s' && PATH='%s/bin':\"$PATH\" sh -c '%s'",
                        pg->sandbox, pg->sandbox, sq(d->setup[i]));
        CHECK_MSG(st == 0, "%s:%d: setup `%s` exited %d: %s", pg->path, first_line,
                  d->setup[i], st, err);
    }
    if (d->skip || pg->skip_page) {
        pg->skipped++;
        printf("  %s:%d SKIPPED (%s): %s\n", pg->path, first_line,
               d->skip ? d->skip : pg->skip_page, trim(lines[0]));
        return;
    }
    int dollar = 0;
    for (int i = 0; i < n; i++)
        dollar |= !strncmp(lines[i], "$ ", 2);
    char cmd[16384];
    for (int i = 0; i < n; i++) {
        char *l = lines[i];
        if (dollar && strncmp(l, "$ ", 2))
            continue; /* output */
        if (dollar)
            l += 2;
        if (!*trim(l) || *trim(l) == '#')
            continue;
        int start = first_line + i;
        snprintf(cmd, sizeof cmd, "%s", trim(l));
        /* continuations: a trailing backslash, or an open quote */
        while (i + 1 < n && (cmd[strlen(cmd) - 1] == '\\' || open_quote(cmd))) {
            size_t len = strlen(cmd);
            if (cmd[len - 1] == '\\')
                cmd[len - 1] = ' ';
            snprintf(cmd + strlen(cmd), sizeof cmd - strlen(cmd), "%s%s",
                     open_quote(cmd) ? "\n" : "", trim(lines[++i]));
        }
        run_command(pg, d, sq(cmd), start);
    }
}

static void sandbox(page *pg)
{
    const char *root = tu_root();
    char name[256];
    snprintf(name, sizeof name, "doc-%s", strrchr(pg->path, '/') ? strrchr(pg->path, '/') + 1
                                                                 : pg->path);
    pg->sandbox = tst_path(name);
    REQUIRE(tst_sh(NULL, NULL, "mkdir -p '%s/bin' '%s/build' '%s/results' && cd '%s' &&"
                   " ln -s '%s/suites' '%s/scripts' '%s/tests' '%s/docs' . &&"
                   " ln -s '%s/results/ci-baseline.json' results/ &&"
                   " ln -s '%s' bin/moebench && ln -s '%s' build/moebench", pg->sandbox,
                   pg->sandbox, pg->sandbox, pg->sandbox, root, root, root, root, root, tu_mb(),
                   tu_mb()) == 0);
}

static void run_page(const char *path)
{
    page pg = {.path = path};
    char *text = tst_read_file(path, NULL);
    REQUIRE_MSG(text, "cannot read %s", path);
    sandbox(&pg);
    /* split into lines */
    int nl = 0, cap = 1;
    for (const char *p = text; *p; p++)
        cap += *p == '\n';
    char **lines = tst_alloc((size_t)cap * sizeof *lines);
    for (char *p = text; *p;) {
        size_t n = strcspn(p, "\n");
        lines[nl++] = dup_range(p, n);
        p += n + (p[n] == '\n');
    }
    directives d = {0};
    for (int i = 0; i < nl; i++) {
        char *l = lines[i];
        if (!strncmp(l, "<!--", 4)) {
            read_directive(&pg, &d, l);
            continue;
        }
        if (!strncmp(l, "```", 3)) {
            const char *info = trim(dup_range(l + 3, strlen(l) - 3));
            int j = i + 1;
            while (j < nl && strncmp(lines[j], "```", 3))
                j++;
            if (d.file) {
                char *body = tst_alloc(1);
                size_t len = 0;
                for (int k = i + 1; k < j; k++) {
                    size_t add = strlen(lines[k]) + 1;
                    char *nb = tst_alloc(len + add + 1);
                    memcpy(nb, body, len);
                    memcpy(nb + len, lines[k], add - 1);
                    nb[len + add - 1] = '\n';
                    body = nb, len += add;
                }
                char fp[4096];
                snprintf(fp, sizeof fp, "%s/%s", pg.sandbox, d.file);
                tst_write_file(fp, body, len);
                pg.files++;
                printf("  %s:%d file %s written\n", path, i + 1, d.file);
            } else if (!strcmp(info, "sh") || !strcmp(info, "bash") ||
                       !strcmp(info, "console") ||
                       (!*info && j > i + 1 && is_command_start(lines[i + 1]))) {
                run_block(&pg, &d, lines + i + 1, j - i - 1, i + 2);
            } else if (d.skip) {
                pg.skipped++;
            }
            d = (directives){0};
            i = j;
            continue;
        }
        /* the line before, directives skipped, must be blank or a heading
         * (an indented block cannot continue a paragraph: CommonMark) */
        int b = i - 1;
        while (b >= 0 && !strncmp(lines[b], "<!--", 4))
            b--;
        int blank_before = b < 0 || b < i - 1 || /* after an HTML comment block */
                           !*trim(dup_range(lines[b], strlen(lines[b]))) || lines[b][0] == '#';
        if (blank_before && !strncmp(l, "    ", 4) && is_command_start(l + 4)) {
            int j = i;
            char **blk = tst_alloc((size_t)(nl - i) * sizeof *blk);
            while (j < nl && (!strncmp(lines[j], "    ", 4) || !*lines[j])) {
                if (!*lines[j] && (j + 1 >= nl || strncmp(lines[j + 1], "    ", 4)))
                    break;
                blk[j - i] = dup_range(lines[j] + (*lines[j] ? 4 : 0),
                                       *lines[j] ? strlen(lines[j]) - 4 : 0);
                j++;
            }
            run_block(&pg, &d, blk, j - i, i + 1);
            d = (directives){0};
            i = j - 1;
            continue;
        }
        if (*trim(dup_range(l, strlen(l))))
            d = (directives){0}; /* directives apply to the block right after them */
    }
    printf("%s: %d commands run, %d blocks skipped (reasons above), %d synopses, %d files\n",
           path, pg.run, pg.skipped, pg.synopses, pg.files);
}

TEST(readme) { run_page("README.md"); }
TEST(index_md) { run_page("docs/index.md"); }
TEST(cli_md) { run_page("docs/cli.md"); }
TEST(suites_md) { run_page("docs/suites.md"); }
TEST(ci_md) { run_page("docs/ci.md"); }
TEST(database_md) { run_page("docs/database.md"); }
TEST(lua_api_md) { run_page("docs/lua-api.md"); }
TEST(metrics_md) { run_page("docs/metrics.md"); }
TEST(simulate_md) { run_page("docs/simulate.md"); }
TEST(policies_md) { run_page("docs/policies.md"); }
TEST(offloading_md) { run_page("docs/offloading.md"); }
TEST(counters_md) { run_page("docs/counters.md"); }
TEST(engine_md) { run_page("docs/engine.md"); }
TEST(performance_md) { run_page("docs/performance.md"); }
TEST(testing_md) { run_page("docs/testing.md"); }
TEST(dependencies_md) { run_page("docs/dependencies.md"); }

/* The extractor itself, on a page made for it: what runs, what is a
 * synopsis, what a directive does; a failing example fails the test (seen
 * through a child run of the test binary would be circular, so the parts
 * are checked directly). */
TEST(extractor_rules)
{
    CHECK(is_synopsis("moebench run SUITE.lua [--db FILE]"));
    CHECK(is_synopsis("moebench info FILE.gguf --json"));
    CHECK(is_synopsis("moebench merge OUT IN..."));
    CHECK(is_synopsis("moebench generate -m m.gguf -n N"));
    CHECK(!is_synopsis("moebench query \"SELECT * FROM run\""));
    CHECK(!is_synopsis("moebench run suites/ci.lua --db a.db   # FILE in a comment"));
    CHECK(!is_synopsis("MOEBENCH_SIMD=avx2 moebench metrics t.moetrace"));
    CHECK(!is_synopsis("moebench generate -m models/tiny.gguf -p \"Hello\" -n 32"));
    CHECK(open_quote("moebench query \"select 1,"));
    CHECK(!open_quote("moebench query \"select 1\" # it's"));
    CHECK(is_command_start("moebench runs"));
    CHECK(!is_command_start("experts per layer"));
    CHECK(!is_command_start("moebench run: suites/x.lua:12: experiment 'sim': unknown field"));
    CHECK(is_command_start("MOEBENCH_SIMD=avx2 moebench metrics t.moetrace"));
    CHECK(is_command_start("OPENBLAS_NUM_THREADS=1 valgrind --tool=callgrind x"));
    CHECK(!is_command_start("N=4 experts per layer"));
    CHECK(is_command_start("M=models/olmoe-1b-7b-L4-q8_0.gguf"));
}
