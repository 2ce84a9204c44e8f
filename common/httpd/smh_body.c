#include "config.h"

#include "smh_httpd.h"

#include <string.h>

#include <apr_strings.h>
#include <http_log.h>
#include <http_protocol.h>
#include <util_filter.h>

#include "smh_body.h"
#include "smh_log.h"
#include "smh_problem.h"

#define BODY_CONSUMED_NOTE "secmedia-body-consumed"

int smh_body_consumed(request_rec *r)
{
    if (apr_table_get(r->notes, BODY_CONSUMED_NOTE) != NULL)
        return 1;
    /* No body at all: nothing to consume. */
    return apr_table_get(r->headers_in, "Content-Length") == NULL &&
           apr_table_get(r->headers_in, "Transfer-Encoding") == NULL;
}

void smh_body_mark_consumed(request_rec *r)
{
    apr_table_setn(r->notes, BODY_CONSUMED_NOTE, "1");
}

apr_off_t smh_body_announced_length(request_rec *r)
{
    const char *cl = apr_table_get(r->headers_in, "Content-Length");
    char *end;
    apr_off_t v;
    if (cl == NULL || apr_table_get(r->headers_in, "Transfer-Encoding") != NULL)
        return -1;
    if (apr_strtoff(&v, cl, &end, 10) != APR_SUCCESS || *end != '\0' || v < 0)
        return -1;
    return v;
}

int smh_read_body(request_rec *r, apr_size_t limit, char **buf, apr_size_t *len)
{
    *buf = NULL;
    *len = 0;
    apr_off_t announced = smh_body_announced_length(r);
    if (announced > (apr_off_t)limit)
        return smh_problem_too_large(r, (apr_off_t)limit, "request body");
    apr_size_t cap = announced > 0 ? (apr_size_t)announced : 1024;
    if (cap > limit)
        cap = limit;
    char *data = apr_palloc(r->pool, cap + 1);
    apr_size_t used = 0;
    apr_bucket_brigade *bb = apr_brigade_create(r->pool, r->connection->bucket_alloc);
    int seen_eos = 0;
    while (!seen_eos) {
        apr_status_t rv = ap_get_brigade(r->input_filters, bb, AP_MODE_READBYTES, APR_BLOCK_READ,
                                         HUGE_STRING_LEN);
        if (rv != APR_SUCCESS) {
            apr_brigade_destroy(bb);
            r->connection->keepalive = AP_CONN_CLOSE;
            smh_body_mark_consumed(r); /* nothing more can be read */
            ap_log_rerror(APLOG_MARK, APLOG_INFO, rv, r,
                          SMLOGNO(00002) "reading the request body failed");
            return smh_problem(r, ap_map_http_request_error(rv, HTTP_BAD_REQUEST),
                               "body-read-failed", "Request body could not be read",
                               "the request body ended early or was malformed; send it again");
        }
        for (apr_bucket *b = APR_BRIGADE_FIRST(bb); b != APR_BRIGADE_SENTINEL(bb);
             b = APR_BUCKET_NEXT(b)) {
            if (APR_BUCKET_IS_EOS(b)) {
                seen_eos = 1;
                break;
            }
            const char *piece;
            apr_size_t n;
            if (apr_bucket_read(b, &piece, &n, APR_BLOCK_READ) != APR_SUCCESS)
                continue;
            if (n > limit - used) {
                apr_brigade_destroy(bb);
                return smh_problem_too_large(r, (apr_off_t)limit, "request body");
            }
            if (used + n > cap) {
                apr_size_t newcap = cap * 2 > used + n ? cap * 2 : used + n;
                if (newcap > limit)
                    newcap = limit;
                char *grown = apr_palloc(r->pool, newcap + 1);
                memcpy(grown, data, used);
                data = grown;
                cap = newcap;
            }
            memcpy(data + used, piece, n);
            used += n;
        }
        apr_brigade_cleanup(bb);
    }
    apr_brigade_destroy(bb);
    smh_body_mark_consumed(r);
    data[used] = '\0';
    *buf = data;
    *len = used;
    return OK;
}

static int is_json_content_type(const char *ct)
{
    if (ct == NULL)
        return 0;
    size_t n = strcspn(ct, "; \t");
    return n == strlen("application/json") && strncasecmp(ct, "application/json", n) == 0;
}

int smh_read_json_body(request_rec *r, apr_size_t limit, const sm_json_field *fields,
                       const char *what, json_t **out)
{
    *out = NULL;
    if (!is_json_content_type(apr_table_get(r->headers_in, "Content-Type")))
        return smh_problem(r, HTTP_UNSUPPORTED_MEDIA_TYPE, "unsupported-media-type",
                           "Unsupported media type",
                           "the %s must be sent as Content-Type: application/json", what);
    char *buf;
    apr_size_t len;
    int rc = smh_read_body(r, limit, &buf, &len);
    if (rc != OK)
        return rc;
    sm_error err;
    json_t *doc;
    sm_status st = sm_json_parse_object((const uint8_t *)buf, len, limit, what, &doc, &err);
    if (st == SM_OK && fields != NULL) {
        st = sm_json_check_fields(doc, fields, what, &err);
        if (st != SM_OK)
            json_decref(doc);
    }
    if (st != SM_OK)
        return smh_problem_bad_request(r, err.message);
    *out = doc;
    return OK;
}
