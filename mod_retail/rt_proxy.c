#include "config.h"

/* The license proxy (POST /v1/license forwarded unchanged to the key
 * server with the retailer's client certificate) and the storefront's
 * static files. */

#include "smh_httpd.h"

#include <string.h>
#include <strings.h>

#include <apr_file_io.h>
#include <apr_strings.h>
#include <http_log.h>
#include <http_protocol.h>

#include "retail.h"
#include "smh_body.h"
#include "smh_log.h"
#include "smh_problem.h"

#define LICENSE_ANSWER_MAX (256u * 1024u)
#define STOREFRONT_FILE_MAX (8u * 1024u * 1024u)

int rt_handle_license_proxy(request_rec *r, const smh_route_match *m, void *ctx)
{
    (void)m;
    (void)ctx;
    rt_server_config *c = rt_server_conf(r->server);
    if (!c->license_proxy)
        return smh_problem_not_found(r, "this retailer has no license proxy; ask the key "
                                        "server named in the steering file");
    int rc = OK;
    rt_child_state *st = rt_begin_public(r, &rc);
    if (st == NULL)
        return rc;
    if (st->ctx.ks == NULL)
        return smh_problem_unavailable(r, "the key server client is not set up");
    const char *ct = apr_table_get(r->headers_in, "Content-Type");
    if (ct == NULL || strncasecmp(ct, "application/json", 16) != 0 ||
        (ct[16] != '\0' && ct[16] != ';' && ct[16] != ' '))
        return smh_problem(r, HTTP_UNSUPPORTED_MEDIA_TYPE, "unsupported-media-type",
                           "Unsupported media type",
                           "send the license request as Content-Type: application/json");
    char *body = NULL;
    apr_size_t len = 0;
    if ((rc = smh_read_body(r, (apr_size_t)c->max_body, &body, &len)) != OK)
        return rc;
    sm_rt_ks_response ans;
    sm_error err = {0};
    /* Body and proof go out byte for byte: the key server checks the
     * proof against this proxy's registered URL. */
    sm_status s = sm_rt_ks_call(st->ctx.ks, "POST", "/v1/license", body, len,
                                apr_table_get(r->headers_in, "DPoP"), LICENSE_ANSWER_MAX, &ans,
                                &err);
    if (s != SM_OK) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      SMLOGNO(03007) "license proxy: the key server did not answer: %s",
                      err.message);
        return smh_problem_unavailable(r, "the key server is unreachable; retry later");
    }
    if (ans.status < 200 || ans.status > 599 || ans.content_type[0] == '\0') {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      SMLOGNO(03008) "license proxy: unusable answer %ld from the key server",
                      ans.status);
        sm_rt_ks_response_free(&ans);
        return smh_problem(r, HTTP_BAD_GATEWAY, "keyserver-error", "Key server error",
                           "the key server's answer could not be relayed; retry later");
    }
    r->status = (int)ans.status;
    ap_set_content_type(r, apr_pstrdup(r->pool, ans.content_type));
    apr_table_setn(r->headers_out, "Cache-Control", "no-store");
    if (ans.status == HTTP_UNAUTHORIZED)
        apr_table_setn(r->err_headers_out, "WWW-Authenticate", "DPoP algs=\"ES256\"");
    if (ans.status >= 400)
        apr_table_setn(r->err_headers_out, "Cache-Control", "no-store");
    ap_rwrite(ans.body, (int)ans.len, r);
    sm_rt_ks_response_free(&ans);
    return OK;
}

static const char *type_for(const char *name)
{
    static const struct {
        const char *ext, *type;
    } types[] = {
        {".html", "text/html; charset=utf-8"}, {".js", "text/javascript; charset=utf-8"},
        {".css", "text/css; charset=utf-8"},   {".svg", "image/svg+xml"},
        {".png", "image/png"},                 {".json", "application/json"},
        {".ico", "image/x-icon"},              {".txt", "text/plain; charset=utf-8"},
    };
    const char *dot = strrchr(name, '.');
    for (size_t i = 0; dot != NULL && i < sizeof(types) / sizeof(types[0]); i++)
        if (strcmp(dot, types[i].ext) == 0)
            return types[i].type;
    return "application/octet-stream";
}

static int storefront_name_ok(const char *s)
{
    if (s == NULL || s[0] == '\0' || s[0] == '.' || strlen(s) > 100)
        return 0;
    for (const char *p = s; *p; p++)
        if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
              *p == '.' || *p == '_' || *p == '-'))
            return 0;
    return 1;
}

int rt_handle_storefront(request_rec *r, const smh_route_match *m, void *ctx)
{
    (void)ctx;
    rt_server_config *c = rt_server_conf(r->server);
    const char *name = smh_route_param(m, "file");
    if (name == NULL)
        name = "index.html";
    if (c->storefront_dir == NULL || !storefront_name_ok(name))
        return smh_problem_not_found(r, "no such storefront file");
    const char *path = apr_pstrcat(r->pool, c->storefront_dir, "/", name, NULL);
    apr_file_t *f;
    apr_finfo_t fi;
    if (apr_file_open(&f, path, APR_READ | APR_BINARY, 0, r->pool) != APR_SUCCESS)
        return smh_problem_not_found(r, "no such storefront file");
    if (apr_file_info_get(&fi, APR_FINFO_SIZE | APR_FINFO_TYPE, f) != APR_SUCCESS ||
        fi.filetype != APR_REG || fi.size < 0 || fi.size > (apr_off_t)STOREFRONT_FILE_MAX) {
        apr_file_close(f);
        return smh_problem_not_found(r, "no such storefront file");
    }
    char *buf = apr_palloc(r->pool, (apr_size_t)fi.size + 1);
    apr_size_t got = 0;
    apr_status_t rv = fi.size > 0 ? apr_file_read_full(f, buf, (apr_size_t)fi.size, &got)
                                  : APR_SUCCESS;
    apr_file_close(f);
    if (rv != APR_SUCCESS || got != (apr_size_t)fi.size)
        return smh_problem_internal(r);
    smh_finish_request_body(r);
    ap_set_content_type(r, type_for(name));
    apr_table_setn(r->headers_out, "Cache-Control", "no-cache");
    apr_table_setn(r->headers_out, "X-Content-Type-Options", "nosniff");
    ap_set_content_length(r, (apr_off_t)got);
    if (!r->header_only)
        ap_rwrite(buf, (int)got, r);
    return OK;
}
