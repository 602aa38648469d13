/* test_install.c — `make install` / `make uninstall` into a temporary
 * staging folder (DESTDIR + PREFIX), and the installed moebench running a
 * shipped suite from an unrelated folder: a PATH whose only moebench is the
 * installed one, no source tree in reach, no MOEBENCH_LUA_PATH. The
 * binary under test ($MOEBENCH) is installed as it is: `make -o BIN`
 * keeps make from relinking the binary that the other tests are running. */
#include "tests/test.h"

#include <libgen.h>
#include <stdlib.h>

/* make install/uninstall for the build folder of the binary under test. */
static int make_target(const char *target, const char *stage, char **err)
{
    char bin[4096];
    snprintf(bin, sizeof bin, "%s", tst_moebench());
    char *build = dirname(bin);
    return tst_sh(NULL, err,
                  "env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make -s --no-print-directory "
                  "-o %s/moebench BUILD=%s DESTDIR=%s PREFIX=/opt/mb %s",
                  build, build, stage, target);
}

/* Runs CMD in folder `away` with nothing of the checkout in reach. */
#define AWAY(out, err, ...)                                                        \
    tst_sh(out, err, "cd %s && env -i HOME=%s PATH=%s/opt/mb/bin:/usr/bin:/bin sh -c '%s'", \
           tst_path("away"), tst_tmpdir(), tst_path("stage"), __VA_ARGS__)

TEST(install_run_uninstall)
{
    const char *stage = tst_path("stage");
    char *err, *out;
    REQUIRE_MSG(make_target("install", stage, &err) == 0, "make install: %s", err);
    static const char *const files[] = {
        "bin/moebench", "share/moebench/lua/sweep.lua", "share/moebench/lua/models.lua",
        "share/moebench/lua/policies/lru.lua", "share/moebench/suites/ci.lua",
        "share/man/man1/moebench.1", "share/bash-completion/completions/moebench", NULL};
    for (const char *const *f = files; *f; f++)
        CHECK_EQ_INT(tst_sh(NULL, NULL, "test -f %s/opt/mb/%s", stage, *f), 0);

    REQUIRE(tst_sh(NULL, NULL, "mkdir %s", tst_path("away")) == 0);
    CHECK_EQ_INT(AWAY(&out, NULL, "command -v moebench"), 0);
    CHECK_EQ_STR(out, tst_path("stage/opt/mb/bin/moebench\n"));
    /* a shipped suite by name; its modules from share/moebench/lua */
    CHECK_EQ_INT(AWAY(&out, &err, "moebench run ci -q --db ci.db"), 0);
    CHECK_CONTAINS(out, " ok, 0 failed");
    /* every experiment the suite declares ran ok (toy cache, events, engine) */
    CHECK_EQ_INT(tst_sh(&out, NULL, "sqlite3 %s \"select count(*) > 10 and count(*) ="
                        " sum(status = 'ok') and count(distinct kind) = 2 from experiment\"",
                        tst_path("away/ci.db")), 0);
    CHECK_EQ_STR(out, "1\n");
    /* and only from there: without the installed module the suite fails */
    REQUIRE(tst_sh(NULL, NULL, "mv %s/opt/mb/share/moebench/lua/sweep.lua %s", stage,
                   tst_path("sweep.lua")) == 0);
    CHECK_EQ_INT(AWAY(NULL, &err, "moebench run ci -q --db ci2.db"), 2);
    CHECK_CONTAINS(err, "module 'sweep' not found");
    CHECK_CONTAINS(err, "/stage/opt/mb/share/moebench/lua/sweep.lua'");
    REQUIRE(tst_sh(NULL, NULL, "mv %s %s/opt/mb/share/moebench/lua/", tst_path("sweep.lua"),
                   stage) == 0);

    CHECK_EQ_INT(AWAY(&out, NULL, "moebench help run"), 0);
    CHECK_CONTAINS(out, "usage: moebench run");

    REQUIRE_MSG(make_target("uninstall", stage, &err) == 0, "make uninstall: %s", err);
    CHECK_EQ_INT(tst_sh(&out, NULL, "find %s -type f", stage), 0);
    CHECK_EQ_STR(out, "");
    CHECK_EQ_INT(tst_sh(NULL, NULL, "test -e %s/opt/mb/share/moebench", stage), 1);
}

TEST(man_page_has_every_command)
{
    const char *page = tst_path("moebench.1");
    REQUIRE(tst_sh(NULL, NULL, "scripts/manpage.sh %s > %s", tst_moebench(), page) == 0);
    char *list, *src = tst_read_file(page, NULL);
    REQUIRE(src);
    REQUIRE(tst_sh(&list, NULL, "%s --help | awk '/^commands:/{f=1;next} f&&/^  [a-z]/{print $1}'",
                   tst_moebench()) == 0);
    int n = 0;
    for (char *c = strtok(list, "\n"); c; c = strtok(NULL, "\n"), n++) {
        char want[128];
        snprintf(want, sizeof want, ".SS \"moebench %s\"\n.nf\nusage: moebench %s", c, c);
        CHECK_MSG(strstr(src, want), "no section for '%s'", c);
    }
    CHECK(n >= 10);
    /* help lines that start with a quote would be troff requests */
    CHECK_CONTAINS(src, "\\&'moebench help COMMAND'");
    if (tst_sh(NULL, NULL, "command -v groff") != 0) {
        printf("groff not installed (man-db is not a dependency): rendering not checked\n");
        return;
    }
    /* rendered by groff (man-db's renderer) with every warning on: none */
    char *txt, *warn;
    REQUIRE(tst_sh(&txt, &warn, "groff -man -Tutf8 -ww -P-cbou %s", page) == 0);
    CHECK_EQ_STR(warn, "");
    CHECK_CONTAINS(txt, "'moebench help COMMAND'");
    CHECK_CONTAINS(txt, "--shard I/N");
}

TEST(bash_completion)
{
    char *out;
    /* commands, a command's options, shipped-suite files */
    CHECK_EQ_INT(tst_sh(&out, NULL,
                        "bash -c 'source scripts/moebench.bash; "
                        "COMP_WORDS=(%s ru); COMP_CWORD=1; _moebench; echo \"${COMPREPLY[*]}\"; "
                        "COMP_WORDS=(%s run --sha); COMP_CWORD=2; _moebench; echo \"${COMPREPLY[*]}\"; "
                        "COMP_WORDS=(%s help mer); COMP_CWORD=2; _moebench; echo \"${COMPREPLY[*]}\"; "
                        "COMP_WORDS=(%s run suites/c); COMP_CWORD=2; _moebench; "
                        "printf \"%%s\\n\" \"${COMPREPLY[@]}\" | sort | paste -sd \" \"'",
                        tst_moebench(), tst_moebench(), tst_moebench(), tst_moebench()),
                 0);
    char *want;
    REQUIRE(tst_sh(&want, NULL, "printf 'run runs\\n--shard\\nmerge\\n'; "
                               "ls suites/c*.lua | sort | paste -sd ' '") == 0);
    CHECK_CONTAINS(want, "suites/ci.lua");
    CHECK_EQ_STR(out, want);
}

TEST(help_command)
{
    char *out, *err;
    CHECK_EQ_INT(tst_sh(&out, NULL, "%s help merge", tst_moebench()), 0);
    CHECK_CONTAINS(out, "usage: moebench merge");
    CHECK_EQ_INT(tst_sh(NULL, &err, "%s help nosuch", tst_moebench()), 2);
    CHECK_CONTAINS(err, "unknown command 'nosuch'");
}
