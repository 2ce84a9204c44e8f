#include "config.h"

#include "smh_httpd.h"

#include <stdarg.h>
#include <stdio.h>

#include <apr_strings.h>
#include <http_log.h>
#include <http_protocol.h>
#include <http_request.h>

#include "smh_body.h"
#include "smh_log.h"
#include "smh_problem.h"

/* Bodies announced up to this size are read and dropped before an early
 * answer so the connection can be kept alive; larger ones are abandoned. */
#define DISCARD_BODY_MAX (64 * 1024)

/* Seconds a client should wait before retrying a 503. */
#define RETRY_AFTER_SECONDS "5"

void smh_finish_request_body(request_rec *r)
{
    if (smh_body_consumed(r))
        return;
    const char *te = apr_table_get(r->headers_in, "Transfer-Encoding");
    const char *cl = apr_table_get(r->headers_in, "Content-Length");
    apr_off_t announced = 0;
    if (te == NULL && (cl == NULL || (apr_strtoff(&announced, cl, NULL, 10) == APR_SUCCESS &&
                                      announced >= 0 && announced <= DISCARD_BODY_MAX))) {
        if (ap_discard_request_body(r) == OK) {
            smh_body_mark_consumed(r);
            return;
        }
    }
    r->connection->keepalive = AP_CONN_CLOSE;
}

static int send_problem(request_rec *r, int status, const char *slug, const char *title,
                        json_t *extensions, const char *detail)
{
    smh_finish_request_body(r);
    json_t *doc = json_object();
    if (doc == NULL)
        return HTTP_INTERNAL_SERVER_ERROR;
    if (extensions != NULL)
        json_object_update(doc, extensions);
    json_object_set_new(doc, "type", json_string(apr_pstrcat(r->pool, SMH_PROBLEM_BASE, slug,
                                                             NULL)));
    json_object_set_new(doc, "title", json_string(title));
    json_object_set_new(doc, "status", json_integer(status));
    /* jansson refuses invalid UTF-8; a detail quoting client input must
     * still produce an answer. */
    json_t *d = json_string(detail);
    json_object_set_new(doc, "detail", d != NULL ? d : json_string("(detail not valid UTF-8)"));
    char *body = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    if (body == NULL)
        return HTTP_INTERNAL_SERVER_ERROR;
    ap_log_rerror(APLOG_MARK, status >= 500 ? APLOG_DEBUG : APLOG_INFO, 0, r,
                  SMLOGNO(00001) "%d %s: %s", status, slug, detail);
    r->status = status;
    ap_set_content_type(r, "application/problem+json");
    apr_table_setn(r->headers_out, "Cache-Control", "no-store");
    if (status == HTTP_SERVICE_UNAVAILABLE)
        apr_table_setn(r->headers_out, "Retry-After", RETRY_AFTER_SECONDS);
    apr_size_t len = strlen(body);
    ap_set_content_length(r, (apr_off_t)len);
    if (!r->header_only)
        ap_rwrite(body, (int)len, r);
    free(body);
    return DONE;
}

int smh_problem_ext(request_rec *r, int status, const char *slug, const char *title,
                    json_t *extensions, const char *detail_fmt, ...)
{
    va_list ap;
    va_start(ap, detail_fmt);
    const char *detail = apr_pvsprintf(r->pool, detail_fmt, ap);
    va_end(ap);
    return send_problem(r, status, slug, title, extensions, detail);
}

int smh_problem(request_rec *r, int status, const char *slug, const char *title,
                const char *detail_fmt, ...)
{
    va_list ap;
    va_start(ap, detail_fmt);
    const char *detail = apr_pvsprintf(r->pool, detail_fmt, ap);
    va_end(ap);
    return send_problem(r, status, slug, title, NULL, detail);
}

int smh_problem_not_found(request_rec *r, const char *detail)
{
    return send_problem(r, HTTP_NOT_FOUND, "not-found", "Not found", NULL, detail);
}

int smh_problem_bad_request(request_rec *r, const char *detail)
{
    return send_problem(r, HTTP_BAD_REQUEST, "invalid-request", "Invalid request", NULL, detail);
}

int smh_problem_too_large(request_rec *r, apr_off_t limit, const char *what)
{
    json_t *ext = json_pack("{sI}", "limit", (json_int_t)limit);
    int rc = smh_problem_ext(r, HTTP_REQUEST_ENTITY_TOO_LARGE, "body-too-large",
                             "Request body too large", ext,
                             "the %s is larger than the limit of %" APR_OFF_T_FMT
                             " bytes; send a smaller one or ask the operator to raise the limit",
                             what, limit);
    json_decref(ext);
    return rc;
}

int smh_problem_unavailable(request_rec *r, const char *detail)
{
    return send_problem(r, HTTP_SERVICE_UNAVAILABLE, "service-unavailable",
                        "Service temporarily unavailable", NULL, detail);
}

int smh_problem_internal(request_rec *r)
{
    return send_problem(r, HTTP_INTERNAL_SERVER_ERROR, "internal-error", "Internal error", NULL,
                        "the server failed to handle the request; the cause is in its error "
                        "log, and retrying will not help until it is fixed");
}

int smh_http_status_for(sm_status st)
{
    switch (st) {
    case SM_ERR_ARG:
    case SM_ERR_FORMAT:
    case SM_ERR_TRUNCATED:
    case SM_ERR_UNSUPPORTED:
        return HTTP_BAD_REQUEST;
    case SM_ERR_TOO_LARGE:
        return HTTP_REQUEST_ENTITY_TOO_LARGE;
    case SM_ERR_AUTH:
    case SM_ERR_EXPIRED:
    case SM_ERR_CLAIM:
    case SM_ERR_KEY:
        return HTTP_UNAUTHORIZED;
    case SM_ERR_NOT_FOUND:
        return HTTP_NOT_FOUND;
    case SM_ERR_DUPLICATE:
        return HTTP_CONFLICT;
    case SM_ERR_UNAVAILABLE:
    case SM_ERR_CONFLICT:
        return HTTP_SERVICE_UNAVAILABLE;
    default:
        return HTTP_INTERNAL_SERVER_ERROR;
    }
}
