/*
 * datadir.h — where moebench's own files live, found from the running
 * binary so that neither a checkout nor an installation needs a
 * configuration file or a path compiled in (an installed tree can be moved,
 * and `make install DESTDIR=...` stages a tree that runs where it lies).
 *
 *   checkout       build/moebench       -> <top>/scripts/lua, <top>/suites
 *   installation   PREFIX/bin/moebench  -> PREFIX/share/moebench/lua,
 *                                          PREFIX/share/moebench/suites
 *
 * The binary's path comes from /proc/self/exe, symbolic links resolved, so
 * a link to the binary on PATH still finds its files.
 *
 * Thread-safety: no state; safe from any thread.
 */
#ifndef HX_DATADIR_H
#define HX_DATADIR_H

#include <stddef.h>

typedef enum hx_datadir_kind {
    HX_DATADIR_LUA,    /* Lua modules that suites `require` */
    HX_DATADIR_SUITES, /* the shipped suites                */
} hx_datadir_kind;

/* The first existing folder of that kind beside the running binary, into
 * out (cap bytes). Returns 1 when one exists, 0 otherwise (out = ""). */
int hx_datadir_find(hx_datadir_kind kind, char *out, size_t cap);

/* Resolves a suite argument: an existing file as given; otherwise, for a
 * bare name without '/' (ci or ci.lua), the shipped suite of that name.
 * Returns 1 with the path in out, 0 when neither exists (out = name). */
int hx_datadir_suite(const char *name, char *out, size_t cap);

#endif
