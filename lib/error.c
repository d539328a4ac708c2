/* error.c -- status codes in words, and the per-thread last-error message.
 * One table of static strings; messages are thread-local, so concurrent
 * readers of one engine never see each other's failures. */
#include "internal.h"

#include <stdio.h>
#include <string.h>

static const char *const status_text[] = {
    "ok",                                  /*   0 */
    "invalid argument",                    /*  -1 */
    "out of memory",                       /*  -2 */
    "unknown id",                          /*  -3 */
    "no trained model",                    /*  -4 */
    "input/output error",                  /*  -5 */
    "file is truncated or corrupt",        /*  -6 */
    "unsupported file format version",     /*  -7 */
    "value out of range",                  /*  -8 */
    "resource busy",                       /*  -9 */
    "malformed input",                     /* -10 */
    "canceled",                            /* -11 */
    "not supported",                       /* -12 */
    "limit reached",                       /* -13 */
    "engine is read-only",                 /* -14 */
};

CX_API const char *cx_strerror(int status)
{
    size_t i = (size_t)(-(long)status);
    if (status > 0 || i >= sizeof status_text / sizeof status_text[0])
        return "unknown status";
    return status_text[i];
}

/* The last failure of this thread, and the engine it happened on.  One
 * slot per thread is enough: the message is read right after the call. */
static _Thread_local struct {
    const cx_engine *engine;
    char msg[512];
} last;

int cx__fail(const cx_engine *e, int status, const char *fmt, ...)
{
    va_list ap;
    last.engine = e;
    va_start(ap, fmt);
    vsnprintf(last.msg, sizeof last.msg, fmt, ap);
    va_end(ap);
    return status;
}

void cx__forget_errors(const cx_engine *e)
{
    if (last.engine == e)
        last.msg[0] = 0;
}

CX_API const char *cx_errmsg(const cx_engine *e)
{
    return last.engine == e ? last.msg : "";
}
