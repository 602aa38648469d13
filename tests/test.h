/*
 * test.h — moebench's lean test runner (see docs/testing.md for why not
 * Criterion or cmocka).
 *
 *   TEST(gguf_roundtrip) { CHECK(x == 1); CHECK_EQ_INT(a, b); REQUIRE(p); }
 *
 * Every TEST runs in its own forked process, so a crash or a sanitizer abort
 * fails that test only; its output is shown when it fails (or with -v).
 * CHECK* records a failure and goes on; REQUIRE* ends the test at once.
 * A test's name is "<folder>/<file>/<name>", e.g. engine/gguf/roundtrip,
 * which is what command-line filters match (substring).
 */
#ifndef TST_TEST_H
#define TST_TEST_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef void (*tst_fn)(void);
void tst_register(const char *file, const char *name, tst_fn fn);

#define TEST(name)                                                          \
    static void test_##name(void);                                          \
    __attribute__((constructor)) static void tst_reg_##name(void)           \
    {                                                                       \
        tst_register(__FILE__, #name, test_##name);                         \
    }                                                                       \
    static void test_##name(void)

/* Records a failure at file:line with a printf-style explanation. */
void tst_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Ends the current test as failed (used by REQUIRE). */
void tst_abort(void) __attribute__((noreturn));

#define CHECK(cond)                                                         \
    do { if (!(cond)) tst_fail(__FILE__, __LINE__, "CHECK(%s)", #cond); } while (0)
#define REQUIRE(cond)                                                       \
    do { if (!(cond)) { tst_fail(__FILE__, __LINE__, "REQUIRE(%s)", #cond); \
                        tst_abort(); } } while (0)
#define CHECK_MSG(cond, ...)                                                \
    do { if (!(cond)) tst_fail(__FILE__, __LINE__, __VA_ARGS__); } while (0)
#define REQUIRE_MSG(cond, ...)                                              \
    do { if (!(cond)) { tst_fail(__FILE__, __LINE__, __VA_ARGS__);          \
                        tst_abort(); } } while (0)
#define CHECK_EQ_INT(a, b)                                                  \
    do { long long va_ = (long long)(a), vb_ = (long long)(b);              \
         if (va_ != vb_) tst_fail(__FILE__, __LINE__, "%s == %s: %lld != %lld", \
                                  #a, #b, va_, vb_); } while (0)
#define CHECK_EQ_STR(a, b)                                                  \
    do { const char *sa_ = (a), *sb_ = (b);                                 \
         if (!sa_ || !sb_ || strcmp(sa_, sb_) != 0)                         \
             tst_fail(__FILE__, __LINE__, "%s == %s: \"%s\" != \"%s\"",     \
                      #a, #b, sa_ ? sa_ : "(null)", sb_ ? sb_ : "(null)"); } while (0)
/* |a - b| <= tol */
#define CHECK_NEAR(a, b, tol)                                               \
    do { double va_ = (double)(a), vb_ = (double)(b), t_ = (double)(tol);   \
         if (!(va_ - vb_ <= t_ && vb_ - va_ <= t_))                         \
             tst_fail(__FILE__, __LINE__, "%s ~ %s: %.17g vs %.17g (tol %g)", \
                      #a, #b, va_, vb_, t_); } while (0)
/* Substring test, for error messages and CLI output. */
#define CHECK_CONTAINS(hay, needle)                                         \
    do { const char *h_ = (hay), *n_ = (needle);                            \
         if (!h_ || !strstr(h_, n_))                                        \
             tst_fail(__FILE__, __LINE__, "%s contains \"%s\"; it is: %s",  \
                      #hay, n_, h_ ? h_ : "(null)"); } while (0)

/* A fresh directory for this test, removed by the runner afterwards. */
const char *tst_tmpdir(void);
/* Joins tst_tmpdir() and name into a static-per-call buffer (malloc'd;
 * freed at test end). */
const char *tst_path(const char *name);

/* Runs `sh -c CMD` (printf-style), returns its exit status (128+sig if it
 * was killed). out/err (optional) get malloc'd NUL-terminated captures that
 * the runner frees at test end. */
int tst_sh(char **out, char **err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Path of the moebench binary under test ($MOEBENCH or build/moebench). */
const char *tst_moebench(void);

/* Reads a whole file (malloc'd, freed at test end); NULL if unreadable. */
char *tst_read_file(const char *path, size_t *len);
/* Writes len bytes; REQUIREs success. */
void tst_write_file(const char *path, const void *data, size_t len);

/* Memory freed when the test ends. */
void *tst_alloc(size_t n);

#include <string.h>

#endif
