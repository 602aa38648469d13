/*
 * env.h — what a run records about where and with what it ran: the
 * machine (CPU, cores, memory, kernel, whether a hardware PMU counts, per
 * the same probe as `moebench events`) and the build (commit, dirty flag,
 * compiler, flags, versions of SQLite, Lua, OpenBLAS, PAPI, jansson).
 * Both are JSON objects; the store keys them by a hash of their contents.
 *
 * Thread-safety: call from one thread (the PMU probe initialises PAPI).
 */
#ifndef HX_ENV_H
#define HX_ENV_H

#include <jansson.h>

/* New references; never NULL except out of memory. */
json_t *hx_env_machine(void);
json_t *hx_env_build(void);

#endif
