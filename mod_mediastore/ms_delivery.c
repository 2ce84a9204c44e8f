/* GET/HEAD /works/{work_id} (a delivery token required) and
 * GET/HEAD /works/{work_id}/preview (public).
 *
 * After the checks the file is served the way httpd's own default handler
 * serves static files: a file bucket (sendfile on plain HTTP), ETag and
 * Last-Modified from the file, conditional requests via
 * ap_meets_conditions, and ranges (206, 416, If-Range, multipart) by
 * httpd's byterange filter. The token is checked against the key server's
 * JWKS held in memory: no database round trip per request. */
#include "config.h"

#include "smh_httpd.h"

#include <string.h>

#include <apr_strings.h>
#include <http_config.h>
#include <http_core.h>
#include <http_log.h>
#include <http_protocol.h>
#include <http_request.h>

#include "mediastore.h"
#include "ms_config.h"
#include "sm_ks_tokens.h"
#include "sm_ms_upload.h"
#include "smh_db.h"
#include "smh_log.h"
#include "smh_problem.h"

APLOG_USE_MODULE(mediastore);

#define BEARER_REALM "Bearer realm=\"secmedia-mediastore\""

/* Sends path as the response body with content_type. */
static int serve_file(request_rec *r, const char *path, const char *content_type,
                      apr_off_t *size_out)
{
    apr_file_t *fd;
    core_dir_config *d = ap_get_core_module_config(r->per_dir_config);
    apr_status_t rv = apr_stat(&r->finfo, path, APR_FINFO_MIN, r->pool);
    if (rv != APR_SUCCESS || r->finfo.filetype != APR_REG)
        return -1;
    rv = apr_file_open(&fd, path,
                       APR_READ | APR_BINARY
#if APR_HAS_SENDFILE
                           | AP_SENDFILE_ENABLED(d->enable_sendfile)
#endif
                       ,
                       0, r->pool);
    if (rv != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r, SMLOGNO(02015) "cannot open %s", path);
        return smh_problem_internal(r);
    }
    r->filename = (char *)path;
    ap_set_content_type(r, content_type);
    ap_update_mtime(r, r->finfo.mtime);
    ap_set_last_modified(r);
    ap_set_etag(r);
    ap_set_accept_ranges(r);
    ap_set_content_length(r, r->finfo.size);
    apr_table_setn(r->headers_out, "Cache-Control", "private");
    *size_out = r->finfo.size;
    apr_bucket_brigade *bb = apr_brigade_create(r->pool, r->connection->bucket_alloc);
    int status = ap_meets_conditions(r);
    const char *range = apr_table_get(r->headers_in, "Range");
    /* httpd's byterange filter answers an unsatisfiable range with its
     * HTML error page and no Content-Range; answer it like every other
     * error here, with the size (RFC 9110 §15.5.17). */
    if (status == OK && range != NULL && r->method_number == M_GET &&
        ap_condition_if_range(r, r->headers_out) != AP_CONDITION_NOMATCH &&
        sm_range_unsatisfiable(range, (uint64_t)r->finfo.size)) {
        apr_file_close(fd);
        apr_table_unset(r->headers_out, "ETag");
        apr_table_unset(r->headers_out, "Last-Modified");
        apr_table_setn(r->headers_out, "Content-Range",
                       apr_psprintf(r->pool, "bytes */%" APR_OFF_T_FMT, r->finfo.size));
        return smh_problem(r, HTTP_RANGE_NOT_SATISFIABLE, "range-not-satisfiable",
                           "Range not satisfiable",
                           "the range \"%.100s\" lies beyond the %" APR_OFF_T_FMT
                           " bytes of this file",
                           range, r->finfo.size);
    }
    if (status != OK) {
        apr_file_close(fd);
        r->status = status;
    } else {
        apr_bucket *e = apr_brigade_insert_file(bb, fd, 0, r->finfo.size, r->pool);
#if APR_HAS_MMAP
        if (d->enable_mmap == ENABLE_MMAP_OFF)
            (void)apr_bucket_file_enable_mmap(e, 0);
#endif
        (void)e;
    }
    APR_BRIGADE_INSERT_TAIL(bb, apr_bucket_eos_create(r->connection->bucket_alloc));
    rv = ap_pass_brigade(r->output_filters, bb);
    apr_brigade_cleanup(bb);
    if (rv == APR_SUCCESS || r->status != HTTP_OK || r->connection->aborted)
        return OK;
    return AP_FILTER_ERROR;
}

/* The token from "Authorization: Bearer" or "?token=" (RFC 6750 §2.1 and
 * §2.3); NULL with *problem set when absent or given twice. The query
 * form is blanked out of the request line so access logs never hold it. */
static const char *find_token(request_rec *r, int *problem)
{
    *problem = OK;
    const char *from_header = NULL, *from_query = NULL;
    const char *auth = apr_table_get(r->headers_in, "Authorization");
    if (auth != NULL && strncasecmp(auth, "Bearer ", 7) == 0) {
        from_header = auth + 7;
        while (*from_header == ' ')
            from_header++;
    }
    if (r->args != NULL) {
        char *args = apr_pstrdup(r->pool, r->args);
        for (char *p = args; p != NULL && *p != '\0';) {
            char *amp = strchr(p, '&');
            if (amp != NULL)
                *amp = '\0';
            if (strncmp(p, "token=", 6) == 0) {
                char *v = apr_pstrdup(r->pool, p + 6);
                if (ap_unescape_urlencoded(v) == OK)
                    from_query = v;
            }
            p = amp != NULL ? amp + 1 : NULL;
        }
        if (from_query != NULL && r->the_request != NULL) {
            char *line = apr_pstrdup(r->pool, r->the_request);
            char *t = strstr(line, "token=");
            if (t != NULL) {
                t += 6;
                while (*t != '\0' && *t != '&' && *t != ' ')
                    *t++ = 'x';
            }
            r->the_request = line;
        }
    }
    if (from_header != NULL && from_query != NULL) {
        *problem = smh_problem(r, HTTP_BAD_REQUEST, "token-invalid", "Invalid delivery token",
                               "send the delivery token once: in the Authorization header or "
                               "in ?token=, not both");
        return NULL;
    }
    const char *token = from_header != NULL ? from_header : from_query;
    if (token == NULL || *token == '\0') {
        apr_table_setn(r->err_headers_out, "WWW-Authenticate", BEARER_REALM);
        *problem = smh_problem(r, HTTP_UNAUTHORIZED, "token-required", "Delivery token required",
                               "fetching a work needs the delivery token the key server issued "
                               "with the license: send Authorization: Bearer <token> or "
                               "?token=<token>");
        return NULL;
    }
    return token;
}

typedef struct verify_call {
    const ms_server_config *cfg;
    const char *token;
    sm_ks_delivery claims;
} verify_call;

static sm_status verify_with_keys(const sm_jwks *keys, void *arg, sm_error *err)
{
    verify_call *v = arg;
    return sm_ks_delivery_verify(keys, v->cfg->token_issuer, v->cfg->token_audience, v->token,
                                 strlen(v->token), 0, (int64_t)v->cfg->token_max_lifetime,
                                 &v->claims, err);
}

static int token_problem(request_rec *r, sm_status st, const sm_error *err)
{
    if (st == SM_ERR_UNAVAILABLE) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      SMLOGNO(02009) "cannot check delivery tokens, no key set: %s",
                      err->message);
        return smh_problem_unavailable(r, "the media store cannot reach the key server to check "
                                          "delivery tokens; retry later");
    }
    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, SMLOGNO(02010) "delivery token refused: %s",
                  err->message);
    apr_table_setn(r->err_headers_out, "WWW-Authenticate",
                   BEARER_REALM ", error=\"invalid_token\"");
    if (st == SM_ERR_EXPIRED)
        return smh_problem(r, HTTP_UNAUTHORIZED, "token-expired", "Delivery token expired",
                           "%s; ask the key server for a new license and delivery token",
                           err->message);
    return smh_problem(r, HTTP_UNAUTHORIZED, "token-invalid", "Invalid delivery token",
                       "%s", err->message);
}

int ms_handle_deliver(request_rec *r, const smh_route_match *m, void *ctx)
{
    (void)ctx;
    const char *work_id = smh_route_param(m, "work_id");
    int rc = ms_check_work_id(r, work_id);
    if (rc != OK)
        return rc;
    const char *token = find_token(r, &rc);
    if (token == NULL)
        return rc;
    ms_child_state *state = ms_state(r);
    if (state == NULL || state->jwks == NULL)
        return smh_problem_unavailable(r, "the media store cannot check delivery tokens; retry "
                                          "later");
    verify_call v = {.cfg = ms_server_conf(r->server), .token = token};
    size_t token_len = strlen(token);
    int64_t now = (int64_t)apr_time_sec(r->request_time);
    /* Range requests of one player repeat one token: verify it once. */
    if (!sm_token_cache_get(state->tokens, token, token_len, now, &v.claims)) {
        sm_error err;
        sm_status st = sm_jwks_cache_use(state->jwks, verify_with_keys, &v, &err);
        if (st != SM_OK)
            return token_problem(r, st, &err);
        sm_token_cache_put(state->tokens, token, token_len, now, v.claims.exp, &v.claims);
    }
    if (strcmp(v.claims.work_id, work_id) != 0)
        return smh_problem(r, HTTP_FORBIDDEN, "token-wrong-work", "Token is for another work",
                           "this delivery token opens work \"%s\", not \"%s\"",
                           v.claims.work_id, work_id);
    apr_off_t size = 0;
    rc = serve_file(r, ms_storage_path(r, work_id, MS_CONTAINER_SUFFIX), MS_CONTAINER_TYPE,
                    &size);
    if (rc == -1)
        return smh_problem(r, HTTP_NOT_FOUND, "work-not-found", "Work not found",
                           "work \"%s\" is not stored on this media store; try another mirror "
                           "from the steering file",
                           work_id);
    ms_note_delivery(r, v.claims.txn, work_id, size);
    return rc;
}

int ms_handle_preview(request_rec *r, const smh_route_match *m, void *ctx)
{
    (void)ctx;
    const char *work_id = smh_route_param(m, "work_id");
    int rc = ms_check_work_id(r, work_id);
    if (rc != OK)
        return rc;
    ms_child_state *state = ms_state(r);
    if (state == NULL || state->db == NULL)
        return smh_problem_unavailable(r, "the media store's database is unavailable; retry "
                                          "later");
    /* The preview's media type and file are in the database (one row:
     * they always belong together). */
    sm_db_conn *c;
    sm_error err;
    sm_status st = sm_db_acquire(state->db, &c, &err);
    if (st != SM_OK)
        return smh_db_problem(r, "looking up the preview", &err);
    sm_db_rows *rows;
    const char *type = NULL, *file = NULL;
    st = sm_db_query(c, "SELECT preview_type, preview_file FROM works WHERE work_id = ?",
                     SM_DB_PARAMS(sm_db_text(work_id)), &rows, &err);
    if (st == SM_OK) {
        int has;
        if ((st = sm_db_rows_next(rows, &has, &err)) == SM_OK && has &&
            sm_db_col_text(rows, 0, NULL) != NULL && sm_db_col_text(rows, 1, NULL) != NULL) {
            type = apr_pstrdup(r->pool, sm_db_col_text(rows, 0, NULL));
            file = apr_pstrdup(r->pool, sm_db_col_text(rows, 1, NULL));
        }
        sm_db_rows_free(rows);
    }
    sm_db_release(c);
    if (st != SM_OK)
        return smh_db_problem(r, "looking up the preview", &err);
    if (file != NULL && !ms_preview_name_ok(work_id, file)) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      SMLOGNO(02018) "work %s: the database names preview file \"%.100s\", "
                                     "not a preview name of this work",
                      work_id, file);
        return smh_problem_internal(r);
    }
    apr_off_t size;
    rc = file == NULL ? -1 : serve_file(r, ms_storage_path(r, file, ""), type, &size);
    if (rc == -1)
        return smh_problem(r, HTTP_NOT_FOUND, "preview-not-found", "Preview not found",
                           "work \"%s\" has no preview here", work_id);
    return rc;
}
