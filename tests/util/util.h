/*
 * util.h — helpers the test files share (prefix tu_): the moebench
 * binary as an absolute path, running a command and parsing its JSON,
 * one-line SQL on a results database, text files in the test's folder. Everything REQUIREs success (a failure ends
 * the test with the reason) and memory comes from tst_alloc unless said.
 *
 * Byte-level GGUF files for the bad-file tests: tests/util/gguf_bytes.h.
 * Engine-only helpers (a hand-built llama, sessions, logits):
 * tests/util/model_util.h.
 */
#ifndef TST_UTIL_H
#define TST_UTIL_H

#include <jansson.h>

/* The repository root (the tests run there). */
const char *tu_root(void);
/* tst_moebench() as an absolute path, usable after `cd` in a command. */
const char *tu_mb(void);

/* Writes text to tst_path(name); returns the path. */
const char *tu_write_text(const char *name, const char *text);

/* Runs `sh -c CMD` (printf-style), REQUIREs exit 0 and stdout that parses
 * as JSON; the caller json_decref()s the result. */
json_t *tu_sh_json(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Executes SQL (any number of statements) on the database file db. */
void tu_sql(const char *db, const char *sql);
/* The first column of the first row of a read-only query as text (reals
 * as %.10g, as `moebench query` prints them; "" for NULL or no row; "(error: ...)" when the query fails, so a CHECK shows
 * why). Opens db read-only, waits up to 2 s for a writer. */
char *tu_q1(const char *db, const char *sql);

#endif
