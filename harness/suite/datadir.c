/*
 * datadir.c — moebench's own files, found beside the binary. See suite.h.
 */
#include "harness/suite/suite.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int is_dir(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static int is_file(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* The folder above the binary's folder: <top> of build/moebench, PREFIX of
 * PREFIX/bin/moebench. 0 when /proc/self/exe cannot be read. */
static int exe_parent(char *out, size_t cap)
{
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0)
        return 0;
    exe[n] = '\0';
    for (int up = 0; up < 2; up++) {
        char *slash = strrchr(exe, '/');
        if (!slash)
            return 0;
        *slash = '\0';
    }
    snprintf(out, cap, "%s", exe[0] ? exe : "/");
    return 1;
}

int hx_suite_datadir_find(hx_suite_datadir_kind kind, char *out, size_t cap)
{
    /* checkout first: a binary built in a checkout uses that checkout's
     * modules even when an installation exists beside it */
    static const char *const lua[] = {"scripts/lua", "share/moebench/lua", NULL};
    static const char *const suites[] = {"suites", "share/moebench/suites", NULL};
    char top[4096];
    out[0] = '\0';
    if (!exe_parent(top, sizeof top))
        return 0;
    for (const char *const *d = kind == HX_SUITE_DATADIR_LUA ? lua : suites; *d; d++) {
        char p[4200];
        snprintf(p, sizeof p, "%s/%s", top, *d);
        if (is_dir(p)) {
            snprintf(out, cap, "%s", p);
            return 1;
        }
    }
    return 0;
}

int hx_suite_datadir_suite(const char *name, char *out, size_t cap)
{
    snprintf(out, cap, "%s", name);
    if (is_file(name))
        return 1;
    char dir[4096];
    if (strchr(name, '/') || !*name || !hx_suite_datadir_find(HX_SUITE_DATADIR_SUITES, dir, sizeof dir))
        return 0;
    size_t len = strlen(name);
    const char *ext = len > 4 && !strcmp(name + len - 4, ".lua") ? "" : ".lua";
    char p[4200];
    snprintf(p, sizeof p, "%s/%s%s", dir, name, ext);
    if (!is_file(p))
        return 0;
    snprintf(out, cap, "%s", p);
    return 1;
}
