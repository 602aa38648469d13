/* test_cli.c — the moebench CLI as a user meets it: help, version, exit
 * codes, the events catalogue. */
#include "tests/test.h"

TEST(help_lists_commands)
{
    char *out;
    CHECK_EQ_INT(tst_sh(&out, NULL, "%s --help", tst_moebench()), 0);
    CHECK_CONTAINS(out, "usage: moebench");
    CHECK_CONTAINS(out, "events");
}

TEST(no_arguments_is_usage_error)
{
    char *err;
    CHECK_EQ_INT(tst_sh(NULL, &err, "%s", tst_moebench()), 2);
    CHECK_CONTAINS(err, "usage: moebench");
}

TEST(version_names_commit)
{
    char *out;
    CHECK_EQ_INT(tst_sh(&out, NULL, "%s --version", tst_moebench()), 0);
    CHECK_CONTAINS(out, "moebench 0.");
    CHECK_CONTAINS(out, "commit ");
}

TEST(unknown_command_is_one_line_and_exit_2)
{
    char *out, *err;
    CHECK_EQ_INT(tst_sh(&out, &err, "%s nosuchcommand", tst_moebench()), 2);
    CHECK_CONTAINS(err, "unknown command 'nosuchcommand'");
    CHECK_CONTAINS(err, "moebench --help");
    CHECK_EQ_STR(out, "");
}

TEST(every_command_has_help)
{
    char *list;
    REQUIRE(tst_sh(&list, NULL, "%s --help | awk '/^commands:/{f=1;next} f&&/^  [a-z]/{print $1}'",
                   tst_moebench()) == 0);
    int n = 0;
    for (char *line = strtok(list, "\n"); line; line = strtok(NULL, "\n")) {
        char *out;
        int st = tst_sh(&out, NULL, "%s %s --help", tst_moebench(), line);
        CHECK_MSG(st == 0, "'%s --help' exited %d", line, st);
        CHECK_MSG(out && strstr(out, "usage: moebench"), "'%s --help' prints no usage", line);
        n++;
    }
    CHECK(n >= 1);
}

TEST(unknown_option_is_exit_2)
{
    char *err;
    CHECK_EQ_INT(tst_sh(NULL, &err, "%s events --bogus", tst_moebench()), 2);
    CHECK_CONTAINS(err, "--bogus");
}

TEST(events_table_shows_software_events)
{
    char *out;
    CHECK_EQ_INT(tst_sh(&out, NULL, "%s events", tst_moebench()), 0);
    CHECK_CONTAINS(out, "perf::TASK-CLOCK");
    CHECK_CONTAINS(out, "countable here");
}

TEST(events_json_is_valid_and_tells_countability)
{
    char *out;
    /* python3 is not a dependency; jq neither: check with sqlite3's JSON. */
    CHECK_EQ_INT(tst_sh(&out, NULL,
                        "%s events --json > %s && sqlite3 :memory: \"select "
                        "json_extract(e.value,'$.countable') from json_each("
                        "json_extract(readfile('%s'),'$.events')) e where "
                        "json_extract(e.value,'$.name')='perf::TASK-CLOCK'\"",
                        tst_moebench(), tst_path("ev.json"), tst_path("ev.json")),
                 0);
    /* Software events count on every Linux machine with perf_event. */
    CHECK_EQ_STR(out, "1\n");
}

TEST(events_not_countable_always_have_a_reason)
{
    /* Whatever the machine: a preset is 'countable' in our listing iff the
     * probe started it, and a not-countable one carries a reason. */
    char *out;
    CHECK_EQ_INT(tst_sh(&out, NULL,
                        "%s events --presets --json > %s && sqlite3 :memory: \"select "
                        "count(*) from json_each(json_extract(readfile('%s'),'$.events')) e "
                        "where json_extract(e.value,'$.countable')=0 and "
                        "json_extract(e.value,'$.reason')=''\"",
                        tst_moebench(), tst_path("p.json"), tst_path("p.json")),
                 0);
    CHECK_EQ_STR(out, "0\n");
}

/* Every command that reads a file: a missing one exits 2 and names it; a
 * file that is not a database names itself; output that cannot be
 * written exits 1 with the OS's reason. */
TEST(missing_inputs_exit_2_and_name_the_file)
{
    const char *mb = tst_moebench(), *no = tst_path("nope");
    const char *junk = tst_path("junk.db");
    tst_write_file(junk, "not sqlite at all, not at all, no\n", 34);
    const char *cmds[] = {
        "report --db %s",        "regress --db %s --baseline %s", "compare --db %s 1 2",
        "export --db %s 1 --json", "query --db %s 'select 1'",    "runs --db %s",
        "merge " "%s.out %s",    "metrics %s",                    "simulate %s --policy lru --cache-experts 1",
        "trace stats %s",        "trace convert %s x.json",       "generate -m %s --tokens 1 -n 1",
        "info %s",               "run %s.lua",
    };
    for (size_t i = 0; i < sizeof cmds / sizeof *cmds; i++) {
        char cmd[512], *err;
        snprintf(cmd, sizeof cmd, cmds[i], no, no);
        CHECK_MSG(tst_sh(NULL, &err, "%s %s", mb, cmd) == 2, "%s: not exit 2: %s", cmd, err);
        CHECK_MSG(strstr(err, "nope"), "%s: names no file: %s", cmd, err);
        CHECK_MSG(!strchr(err, '\n') || !strchr(strchr(err, '\n') + 1, '\n'), "%s: more than"
                  " one line: %s", cmd, err);
        if (i < 6) {
            snprintf(cmd, sizeof cmd, cmds[i], junk, junk);
            CHECK_MSG(tst_sh(NULL, &err, "%s %s", mb, cmd) == 2, "%s: not exit 2: %s", cmd, err);
            CHECK_MSG(strstr(err, "junk.db: not a moebench database"), "%s: %s", cmd, err);
        }
    }
}

TEST(write_errors_exit_1_with_the_reason)
{
    const char *db = tst_path("w.db"), *suite = tst_path("w.lua");
    static const char src[] = "suite{name='w'}\n"
                              "experiment{name='x', run=function() return {v=1} end}\n";
    tst_write_file(suite, src, strlen(src));
    REQUIRE(tst_sh(NULL, NULL, "%s run %s --db %s -q", tst_moebench(), suite, db) == 0);
    const char *cmds[] = {"runs --db %s", "export --db %s latest --json", "query --db %s 'select 1'",
                          "report --db %s"};
    for (size_t i = 0; i < sizeof cmds / sizeof *cmds; i++) {
        char cmd[512], *err;
        snprintf(cmd, sizeof cmd, cmds[i], db);
        CHECK_MSG(tst_sh(NULL, &err, "%s %s > /dev/full", tst_moebench(), cmd) == 1, "%s: %s",
                  cmd, err);
        CHECK_MSG(strstr(err, "No space left on device"), "%s: no reason: %s", cmd, err);
    }
    char *err;
    CHECK_EQ_INT(tst_sh(NULL, &err, "%s report --db %s -o /nonexistent/r.html", tst_moebench(),
                        db), 1);
    CHECK_CONTAINS(err, "/nonexistent/r.html: No such file or directory");
}
