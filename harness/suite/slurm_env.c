/*
 * slurm_env.c — what a process learns from the Slurm job around it
 * (placement, --shard auto), and shell-like splitting of --sbatch-args.
 * See suite.h.
 *
 * Slurm sets, in every task of `sbatch --array=SPEC`: SLURM_ARRAY_TASK_ID
 * (this task's index), SLURM_ARRAY_TASK_MIN/_MAX (the smallest and largest
 * index of SPEC), SLURM_ARRAY_TASK_COUNT (how many indices) and
 * SLURM_ARRAY_JOB_ID (the array's job id; SLURM_JOB_ID is the task's own).
 * Indices need not start at 1 (--array=0-9) nor be contiguous
 * (--array=1,5 or 1-9:2): --shard auto accepts one contiguous range only,
 * where index ID is shard ID - MIN + 1 of COUNT.
 */
#include "harness/suite/suite.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* An environment variable as a non-negative integer; -1 when unset, -2
 * when set to something else. */
static long long env_int(const char *name)
{
    const char *v = getenv(name);
    if (!v || !*v)
        return -1;
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    return errno || *end || x < 0 ? -2 : x;
}

int hx_suite_slurm_shard_auto(int *i, int *n, eng_err *err)
{
    static const char *const names[] = {"SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_MIN",
                                        "SLURM_ARRAY_TASK_MAX", "SLURM_ARRAY_TASK_COUNT"};
    long long v[4];
    for (int k = 0; k < 4; k++) {
        v[k] = env_int(names[k]);
        if (v[k] == -1)
            return eng_err_set(err, ENG_EINVAL,
                               "--shard auto: %s is not set (not a task of a Slurm job array)",
                               names[k]);
        if (v[k] == -2)
            return eng_err_set(err, ENG_EINVAL, "--shard auto: %s='%s' is not an index",
                               names[k], getenv(names[k]));
    }
    long long id = v[0], min = v[1], max = v[2], count = v[3];
    if (min > max || count < 1 || count > 1000000 || max - min + 1 != count)
        return eng_err_set(err, ENG_EINVAL,
                           "--shard auto: the array's indices %lld-%lld are not one contiguous"
                           " range of %lld (SLURM_ARRAY_TASK_COUNT); use --shard I/N",
                           min, max, count);
    if (id < min || id > max)
        return eng_err_set(err, ENG_EINVAL,
                           "--shard auto: SLURM_ARRAY_TASK_ID=%lld is outside %lld-%lld", id,
                           min, max);
    *i = (int)(id - min + 1);
    *n = (int)count;
    return ENG_OK;
}

json_t *hx_suite_slurm_placement(void)
{
    static const struct {
        const char *key, *env;
        int integer;
    } vars[] = {
        {"job_id", "SLURM_JOB_ID", 1},           {"array_job_id", "SLURM_ARRAY_JOB_ID", 1},
        {"array_task_id", "SLURM_ARRAY_TASK_ID", 1},
        {"array_task_count", "SLURM_ARRAY_TASK_COUNT", 1},
        {"node", "SLURMD_NODENAME", 0},          {"cluster", "SLURM_CLUSTER_NAME", 0},
        {"partition", "SLURM_JOB_PARTITION", 0}, {"submit_host", "SLURM_SUBMIT_HOST", 0},
    };
    if (!getenv("SLURM_JOB_ID"))
        return NULL;
    json_t *o = json_object();
    for (size_t k = 0; o && k < sizeof vars / sizeof vars[0]; k++) {
        const char *v = getenv(vars[k].env);
        long long x = vars[k].integer ? env_int(vars[k].env) : -1;
        if (x >= 0)
            json_object_set_new(o, vars[k].key, json_integer(x));
        else if (v && *v)
            json_object_set_new(o, vars[k].key, json_string(v));
    }
    return o;
}

/* ---- --sbatch-args ------------------------------------------------------ */

/* Appends one word of s at *p (which is not a blank) to buf; advances *p. */
static int split_word(const char **p, char *buf, eng_err *err)
{
    const char *s = *p;
    size_t n = 0;
    while (*s && *s != ' ' && *s != '\t' && *s != '\n') {
        char q = *s;
        if (q == '\'' || q == '"') {
            const char *open = s++;
            while (*s && *s != q) {
                if (q == '"' && *s == '\\' && (s[1] == '"' || s[1] == '\\'))
                    s++;
                buf[n++] = *s++;
            }
            if (!*s)
                return eng_err_set(err, ENG_EINVAL,
                                   "--sbatch-args: unterminated %c quote at '%.20s'", q, open);
            s++;
        } else if (q == '\\' && s[1]) {
            buf[n++] = s[1];
            s += 2;
        } else {
            buf[n++] = *s++;
        }
    }
    buf[n] = '\0';
    *p = s;
    return ENG_OK;
}

int hx_suite_slurm_split_args(const char *s, json_t **out, eng_err *err)
{
    *out = json_array();
    char *buf = malloc(strlen(s ? s : "") + 1); /* a word is never longer */
    if (!*out || !buf) {
        free(buf);
        json_decref(*out);
        return eng_err_set(err, ENG_ENOMEM, "out of memory");
    }
    int rc = ENG_OK;
    while (s && *s && !rc) {
        if (*s == ' ' || *s == '\t' || *s == '\n') {
            s++;
            continue;
        }
        rc = split_word(&s, buf, err);
        if (!rc && json_array_append_new(*out, json_string(buf)))
            rc = eng_err_set(err, ENG_EINVAL, "--sbatch-args: '%s' is not UTF-8", buf);
    }
    free(buf);
    if (rc) {
        json_decref(*out);
        *out = NULL;
    }
    return rc;
}
