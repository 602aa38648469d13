/*
 * err.h — error codes and the error record every fallible call fills.
 *
 * Fallible functions return an int code (ENG_OK = 0 on success) and, on
 * failure, leave a message on an eng_err the caller passed in. The message
 * names the object (file, tensor, key, field) so that it can be shown to a
 * user as it is: "model.gguf: tensor 'blk.3.ffn_down_exps.weight': offset
 * 123 not aligned to 32". metrics/ and harness/ use the same record.
 *
 * Thread-safety: an eng_err belongs to one caller; do not share one between
 * threads.
 */
#ifndef ENG_ERR_H
#define ENG_ERR_H

enum {
    ENG_OK = 0,
    ENG_EINVAL,       /* bad argument or option value                 */
    ENG_EFORMAT,      /* malformed input file or data                 */
    ENG_EUNSUPPORTED, /* well-formed but not supported (type, arch)   */
    ENG_EIO,          /* read/write/open failed                       */
    ENG_ENOMEM,       /* allocation failed                            */
    ENG_ESTATE,       /* call made in the wrong state (API misuse)    */
    ENG_ERR_COUNT
};

typedef struct eng_err {
    int code;        /* one of ENG_*; ENG_OK when no error was set */
    char msg[512];   /* human-readable, names the object           */
} eng_err;

/* Sets e (if not NULL) and returns code, so callers can
 * `return eng_err_set(e, ENG_EFORMAT, "%s: bad magic", path);`. */
int eng_err_set(eng_err *e, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prepends "prefix: " to an already set message (adds context on the way up). */
int eng_err_prefix(eng_err *e, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

void eng_err_clear(eng_err *e);

/* ENG_ASSERT(cond): an invariant the engine establishes itself (never a
 * check of input, which is an error code). Active unless NDEBUG is defined
 * (the Makefile never defines it, so debug, release and sanitizer builds
 * all check); a failure prints the condition and its place and aborts. */
#ifdef NDEBUG
#define ENG_ASSERT(cond) ((void)sizeof(cond)) /* names its variables, evaluates nothing */
#else
#define ENG_ASSERT(cond) ((cond) ? (void)0 : eng_assert_fail(#cond, __FILE__, __LINE__))
#endif
void eng_assert_fail(const char *cond, const char *file, int line) __attribute__((noreturn));

/* Short name of a code: "invalid argument", "bad format", ... */
const char *eng_err_name(int code);

#endif
