/* test_slurm_env.c — what a process reads from the Slurm job around it
 * (--shard auto, the placement a run records) and the shell-like split of
 * --sbatch-args (harness/suite/slurm_env.c). Each test runs in its own process,
 * so setenv here touches no other test. */
#include "tests/test.h"

#include "harness/suite/suite.h"

#include <stdlib.h>

static void array_env(const char *id, const char *min, const char *max, const char *count)
{
    const char *names[] = {"SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_MIN",
                           "SLURM_ARRAY_TASK_MAX", "SLURM_ARRAY_TASK_COUNT"};
    const char *vals[] = {id, min, max, count};
    for (int k = 0; k < 4; k++)
        vals[k] ? setenv(names[k], vals[k], 1) : unsetenv(names[k]);
}

TEST(shard_auto_maps_indices_from_min)
{
    static const struct { const char *id, *min, *max, *count; int i, n; } ok[] = {
        {"1", "1", "3", "3", 1, 3},  {"3", "1", "3", "3", 3, 3},
        {"0", "0", "9", "10", 1, 10}, {"9", "0", "9", "10", 10, 10},
        {"6", "5", "7", "3", 2, 3},  {"42", "42", "42", "1", 1, 1},
    };
    for (size_t k = 0; k < sizeof ok / sizeof ok[0]; k++) {
        array_env(ok[k].id, ok[k].min, ok[k].max, ok[k].count);
        int i = 0, n = 0;
        eng_err err = {0};
        CHECK_EQ_INT(hx_suite_slurm_shard_auto(&i, &n, &err), ENG_OK);
        CHECK_MSG(i == ok[k].i && n == ok[k].n, "id %s of %s-%s: %d/%d, want %d/%d", ok[k].id,
                  ok[k].min, ok[k].max, i, n, ok[k].i, ok[k].n);
    }
}

TEST(shard_auto_refuses_what_it_cannot_map)
{
    static const struct { const char *id, *min, *max, *count, *msg; } bad[] = {
        {NULL, "1", "3", "3", "SLURM_ARRAY_TASK_ID is not set"},
        {"1", NULL, "3", "3", "SLURM_ARRAY_TASK_MIN is not set"},
        {"2", "1", "5", "2", "not one contiguous range"},  /* --array=1,5    */
        {"3", "1", "9", "5", "not one contiguous range"},  /* --array=1-9:2  */
        {"x", "1", "3", "3", "SLURM_ARRAY_TASK_ID='x' is not an index"},
        {"-1", "1", "3", "3", "is not an index"},
        {"4", "1", "3", "3", "SLURM_ARRAY_TASK_ID=4 is outside 1-3"},
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        array_env(bad[k].id, bad[k].min, bad[k].max, bad[k].count);
        int i = -7, n = -7;
        eng_err err = {0};
        CHECK_EQ_INT(hx_suite_slurm_shard_auto(&i, &n, &err), ENG_EINVAL);
        CHECK_CONTAINS(err.msg, bad[k].msg);
        CHECK(i == -7 && n == -7);
    }
}

TEST(placement_outside_and_inside_a_job)
{
    unsetenv("SLURM_JOB_ID");
    CHECK(hx_suite_slurm_placement() == NULL);
    setenv("SLURM_JOB_ID", "1234", 1);
    setenv("SLURM_ARRAY_JOB_ID", "1230", 1);
    setenv("SLURM_ARRAY_TASK_ID", "4", 1);
    setenv("SLURMD_NODENAME", "node07", 1);
    setenv("SLURM_CLUSTER_NAME", "big", 1);
    unsetenv("SLURM_JOB_PARTITION");
    json_t *p = hx_suite_slurm_placement();
    REQUIRE(p);
    CHECK_EQ_INT(json_integer_value(json_object_get(p, "job_id")), 1234);
    CHECK_EQ_INT(json_integer_value(json_object_get(p, "array_job_id")), 1230);
    CHECK_EQ_INT(json_integer_value(json_object_get(p, "array_task_id")), 4);
    CHECK_EQ_STR(json_string_value(json_object_get(p, "node")), "node07");
    CHECK_EQ_STR(json_string_value(json_object_get(p, "cluster")), "big");
    CHECK(json_object_get(p, "partition") == NULL);
    json_decref(p);
}

static char *split_joined(const char *s, int *rc)
{
    json_t *a = NULL;
    eng_err err = {0};
    *rc = hx_suite_slurm_split_args(s, &a, &err);
    if (*rc)
        return tst_alloc(1);
    size_t i, len = 0;
    json_t *v;
    char *out = tst_alloc(4096);
    json_array_foreach(a, i, v)
        len += (size_t)snprintf(out + len, 4096 - len, "[%s]", json_string_value(v));
    json_decref(a);
    return out;
}

TEST(split_args_like_a_shell)
{
    static const struct { const char *in, *out; } cases[] = {
        {"", ""},
        {"  --partition=cpu   -t 10 ", "[--partition=cpu][-t][10]"},
        {"--comment='a b' -J \"x y\"", "[--comment=a b][-J][x y]"},
        {"'it'\\''s'", "[it's]"},
        {"\"say \\\"hi\\\" \\\\ \\n\"", "[say \"hi\" \\ \\n]"},
        {"a\\ b $HOME *", "[a b][$HOME][*]"}, /* no expansion, no globbing */
        {"''", "[]"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        int rc;
        char *got = split_joined(cases[k].in, &rc);
        CHECK_EQ_INT(rc, ENG_OK);
        CHECK_EQ_STR(got, cases[k].out);
    }
    json_t *a = NULL;
    eng_err err = {0};
    CHECK_EQ_INT(hx_suite_slurm_split_args("--x='open", &a, &err), ENG_EINVAL);
    CHECK_CONTAINS(err.msg, "unterminated ' quote");
    CHECK(a == NULL);
    CHECK_EQ_INT(hx_suite_slurm_split_args(NULL, &a, &err), ENG_OK);
    CHECK_EQ_INT(json_array_size(a), 0);
    json_decref(a);
}
