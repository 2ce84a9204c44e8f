/* RFC 9457 problem details (application/problem+json) for every error a
 * secmedia module answers with.
 *
 * A problem's "type" is SMH_PROBLEM_BASE followed by a stable slug; the
 * slugs are listed in docs/PROTOCOL.md and never change meaning. "title"
 * is a fixed summary of the type; "detail" says what was wrong with this
 * request and what to do about it.
 *
 * Functions here that answer the request return DONE: handlers pass that
 * value straight back to httpd ("response already sent"). */
#ifndef SMH_PROBLEM_H
#define SMH_PROBLEM_H

#include "smh_httpd.h"
#include <jansson.h>

#include "sm_error.h"

#define SMH_PROBLEM_BASE "https://secmedia.example/problems/"

/* Answers with status and a problem document: type SMH_PROBLEM_BASE slug,
 * the title, and the formatted detail. extensions (may be NULL) is an
 * object of extra members, borrowed. Adds Cache-Control: no-store; on 503
 * adds Retry-After. Consumes or abandons an unread request body (see
 * smh_finish_request_body). Logs the problem at info (4xx) or debug. */
int smh_problem_ext(request_rec *r, int status, const char *slug, const char *title,
                    json_t *extensions, const char *detail_fmt, ...)
    __attribute__((format(printf, 6, 7)));
int smh_problem(request_rec *r, int status, const char *slug, const char *title,
                const char *detail_fmt, ...) __attribute__((format(printf, 5, 6)));

/* Problems every module uses, with their fixed slug and title. */
int smh_problem_not_found(request_rec *r, const char *detail);
int smh_problem_bad_request(request_rec *r, const char *detail);
int smh_problem_too_large(request_rec *r, apr_off_t limit, const char *what);
/* 503 "service-unavailable" for a dependency that is down (database, key
 * server). reason goes to the error log (with the caller's message id
 * already logged by the caller), detail to the client. */
int smh_problem_unavailable(request_rec *r, const char *detail);
/* 500 "internal-error": the cause is in the error log, not in the answer. */
int smh_problem_internal(request_rec *r);

/* The HTTP status an sm_status maps to when it reaches a client:
 * FORMAT/ARG -> 400, TOO_LARGE -> 413, AUTH/EXPIRED/CLAIM/KEY -> 401,
 * NOT_FOUND -> 404, DUPLICATE -> 409, UNAVAILABLE/CONFLICT -> 503,
 * anything else -> 500. */
int smh_http_status_for(sm_status st);

/* Before answering early, make sure the connection is still usable: a
 * small unread body (at most 64 KiB announced) is read and discarded; a
 * larger or chunked one is abandoned and the connection closed after the
 * answer, so an oversize upload is not read to its end. */
void smh_finish_request_body(request_rec *r);

#endif
