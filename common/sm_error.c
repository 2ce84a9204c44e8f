#include "config.h"

#include <stdarg.h>
#include <stdio.h>

#include "sm_error.h"

sm_status sm_error_set(sm_error *err, sm_status status, const char *fmt, ...)
{
    if (err != NULL) {
        va_list ap;
        err->status = status;
        va_start(ap, fmt);
        vsnprintf(err->message, sizeof(err->message), fmt, ap);
        va_end(ap);
    }
    return status;
}

void sm_error_clear(sm_error *err)
{
    if (err != NULL) {
        err->status = SM_OK;
        err->message[0] = '\0';
    }
}

const char *sm_status_name(sm_status status)
{
    switch (status) {
    case SM_OK: return "ok";
    case SM_ERR_ARG: return "argument";
    case SM_ERR_NOMEM: return "out-of-memory";
    case SM_ERR_IO: return "io";
    case SM_ERR_FORMAT: return "format";
    case SM_ERR_UNSUPPORTED: return "unsupported";
    case SM_ERR_TOO_LARGE: return "too-large";
    case SM_ERR_TRUNCATED: return "truncated";
    case SM_ERR_AUTH: return "authentication";
    case SM_ERR_KEY: return "key";
    case SM_ERR_EXPIRED: return "expired";
    case SM_ERR_CLAIM: return "claim";
    case SM_ERR_CRYPTO: return "crypto";
    case SM_ERR_STATE: return "state";
    case SM_ERR_UNAVAILABLE: return "unavailable";
    case SM_ERR_CONFLICT: return "conflict";
    case SM_ERR_DUPLICATE: return "duplicate";
    case SM_ERR_NOT_FOUND: return "not-found";
    case SM_ERR_DB: return "database";
    }
    return "unknown";
}
