/* Error reporting shared by every secmedia component.
 *
 * Functions that can fail return an sm_status and, when given a non-NULL
 * sm_error, fill it with a message meant for a human: what went wrong and,
 * where it helps, what to do.  Messages never contain key material. */
#ifndef SM_ERROR_H
#define SM_ERROR_H

#include <stddef.h>

typedef enum sm_status {
    SM_OK = 0,
    SM_ERR_ARG,         /* caller passed an invalid argument */
    SM_ERR_NOMEM,       /* allocation failed */
    SM_ERR_IO,          /* read/write/open failed */
    SM_ERR_FORMAT,      /* input is malformed or violates the format */
    SM_ERR_UNSUPPORTED, /* well-formed but of a version/algorithm we refuse */
    SM_ERR_TOO_LARGE,   /* input exceeds a documented size limit */
    SM_ERR_TRUNCATED,   /* input ended early */
    SM_ERR_AUTH,        /* authentication (tag, signature, commitment) failed */
    SM_ERR_KEY,         /* key missing, wrong size, wrong type or not matching */
    SM_ERR_EXPIRED,     /* token outside its validity window */
    SM_ERR_CLAIM,       /* a required claim is missing or has the wrong value */
    SM_ERR_CRYPTO,      /* the crypto library failed unexpectedly */
    SM_ERR_STATE,       /* object is in a failed state or used out of order */
    SM_ERR_UNAVAILABLE, /* a service we depend on (database, key server) cannot be
                         * reached or is overloaded: servers answer 503, fail closed */
    SM_ERR_CONFLICT,    /* a transient conflict (deadlock, lock wait timeout): the
                         * whole transaction may be retried */
    SM_ERR_DUPLICATE,   /* a unique key already holds this value */
    SM_ERR_NOT_FOUND,   /* the named object does not exist */
    SM_ERR_DB           /* the database refused a statement for another reason */
} sm_status;

#define SM_ERROR_MESSAGE_MAX 512

typedef struct sm_error {
    sm_status status;
    char message[SM_ERROR_MESSAGE_MAX];
} sm_error;

/* Records status and a printf-style message in err (if non-NULL) and
 * returns status, so callers can write `return sm_error_set(...)`. */
sm_status sm_error_set(sm_error *err, sm_status status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Resets err to SM_OK with an empty message. */
void sm_error_clear(sm_error *err);

/* A short stable name for a status ("auth", "format", ...). */
const char *sm_status_name(sm_status status);

#endif
