/*
 * env.c — machine and build description. See suite.h.
 *
 * Everything comes from the system (/proc/cpuinfo, sysconf, uname) or from
 * the libraries' own version calls, never from a configuration file, so a
 * database row says what really ran. pmu_available is 1 when PAPI_TOT_INS
 * (or PAPI_TOT_CYC) starts counting: on a VM without a PMU it does not.
 */
#include "harness/suite/suite.h"

#include "harness/version.h"
#include "metrics/papi.h"

#include <cblas.h>
#include <lua.h>
#include <papi.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

static void cpu_model(char *out, size_t cap)
{
    snprintf(out, cap, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f)
        return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        char *colon = strchr(line, ':');
        if (strncmp(line, "model name", 10) != 0 || !colon)
            continue;
        colon += 2;
        colon[strcspn(colon, "\n")] = '\0';
        snprintf(out, cap, "%s", colon);
        break;
    }
    fclose(f);
}

static int pmu_available(void)
{
    eng_err err = {0};
    met_event_info info;
    if (met_event_probe("PAPI_TOT_INS", &info, &err) == ENG_OK && info.countable)
        return 1;
    return met_event_probe("PAPI_TOT_CYC", &info, &err) == ENG_OK && info.countable;
}

static void papi_version(char *out, size_t cap)
{
    snprintf(out, cap, "%d.%d.%d", PAPI_VERSION_MAJOR(PAPI_VERSION),
             PAPI_VERSION_MINOR(PAPI_VERSION), PAPI_VERSION_REVISION(PAPI_VERSION));
}

json_t *hx_suite_env_machine(void)
{
    char model[256], host[256] = "unknown", pv[32];
    cpu_model(model, sizeof model);
    gethostname(host, sizeof host - 1);
    papi_version(pv, sizeof pv);
    struct utsname u;
    if (uname(&u) != 0)
        snprintf(u.release, sizeof u.release, "unknown");
    long long mem = (long long)sysconf(_SC_PHYS_PAGES) * (long long)sysconf(_SC_PAGESIZE);
    return json_pack("{s:s, s:s, s:I, s:I, s:s, s:s, s:b, s:s}", "hostname", host, "cpu_model",
                     model, "cores", (json_int_t)sysconf(_SC_NPROCESSORS_ONLN), "memory_bytes",
                     (json_int_t)mem, "kernel", u.release, "arch", u.machine, "pmu_available",
                     pmu_available(), "papi_version", pv);
}

json_t *hx_suite_env_build(void)
{
    char pv[32];
    papi_version(pv, sizeof pv);
    const char *cfg = openblas_get_config();
    return json_pack("{s:s, s:s, s:b, s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "version",
                     hx_version_string, "commit", hx_version_commit, "dirty",
                     strstr(hx_version_commit, "-dirty") != NULL, "compiler",
                     "gcc-compatible " __VERSION__, "cflags", hx_version_cflags, "sqlite",
                     sqlite3_libversion(), "lua", LUA_RELEASE, "openblas", cfg ? cfg : "unknown",
                     "papi", pv, "jansson", JANSSON_VERSION);
}
