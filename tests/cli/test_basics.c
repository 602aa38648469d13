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
