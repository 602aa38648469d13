/*
 * err.c — the error record. See err.h.
 */
#include "engine/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int eng_err_set(eng_err *e, int code, const char *fmt, ...)
{
    if (e) {
        /* through a copy: the arguments may point into e->msg itself */
        char buf[sizeof e->msg];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(buf, sizeof buf, fmt, ap);
        va_end(ap);
        memcpy(e->msg, buf, sizeof buf);
        e->code = code;
    }
    return code;
}

int eng_err_prefix(eng_err *e, const char *fmt, ...)
{
    if (!e)
        return ENG_OK;
    char prefix[256], old[sizeof e->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, e->msg, sizeof old);
    snprintf(e->msg, sizeof e->msg, "%s: %s", prefix, old);
    return e->code;
}

void eng_err_clear(eng_err *e)
{
    if (e) {
        e->code = ENG_OK;
        e->msg[0] = '\0';
    }
}

const char *eng_err_name(int code)
{
    static const char *const names[ENG_ERR_COUNT] = {
        [ENG_OK] = "ok",
        [ENG_EINVAL] = "invalid argument",
        [ENG_EFORMAT] = "bad format",
        [ENG_EUNSUPPORTED] = "unsupported",
        [ENG_EIO] = "i/o error",
        [ENG_ENOMEM] = "out of memory",
        [ENG_ESTATE] = "wrong state",
    };
    return (code >= 0 && code < ENG_ERR_COUNT) ? names[code] : "unknown error";
}

void eng_assert_fail(const char *cond, const char *file, int line)
{
    fprintf(stderr, "moebench: internal error: %s:%d: assertion '%s' failed\n", file, line,
            cond);
    abort();
}
