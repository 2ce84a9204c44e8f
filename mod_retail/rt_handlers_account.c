#include "config.h"

/* Request glue shared by the handlers, and the account, device and wallet
 * handlers: who may call, read the JSON body, call the store operation
 * in common/sm_rt_store*.c, send its answer. No business logic here. */

#include "smh_httpd.h"

#include <string.h>
#include <strings.h>

#include <apr_strings.h>
#include <http_log.h>
#include <http_protocol.h>

#include "retail.h"
#include "sm_rt_validate.h"
#include "smh_body.h"
#include "smh_db.h"
#include "smh_identity.h"
#include "smh_json.h"
#include "smh_log.h"
#include "smh_problem.h"

int rt_send_result(request_rec *r, sm_status st, sm_rt_result *res, const char *what,
                   const sm_error *err)
{
    int rc;
    if (st != SM_OK) {
        if (res != NULL)
            sm_rt_result_clear(res);
        if (st == SM_ERR_UNAVAILABLE && strncmp(err->message, "key server", 10) == 0) {
            ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                          SMLOGNO(03005) "key server unavailable while %s: %s", what,
                          err->message);
            return smh_problem(r, HTTP_SERVICE_UNAVAILABLE, "service-unavailable",
                               "Service temporarily unavailable",
                               "the key server is unreachable while %s; retry later (an order: "
                               "with the same Idempotency-Key, it resumes where it stopped)",
                               what);
        }
        switch (st) {
        case SM_ERR_UNAVAILABLE:
        case SM_ERR_CONFLICT:
        case SM_ERR_DUPLICATE:
        case SM_ERR_DB: return smh_db_problem(r, what, err);
        default:
            ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, SMLOGNO(03006) "failed while %s: %s (%s)",
                          what, err->message, sm_status_name(st));
            return smh_problem_internal(r);
        }
    }
    if (res->status >= 400) {
        if (res->retry_after > 0)
            apr_table_setn(r->err_headers_out, "Retry-After",
                           apr_psprintf(r->pool, "%d", res->retry_after));
        if (res->status == HTTP_UNAUTHORIZED && strncmp(res->slug, "token-", 6) == 0)
            apr_table_setn(r->err_headers_out, "WWW-Authenticate",
                           "Bearer realm=\"secmedia-retail\"");
        rc = smh_problem(r, res->status, res->slug, res->title, "%s", res->detail);
    } else if (res->raw != NULL) {
        smh_finish_request_body(r);
        ap_set_content_type(r, res->raw_type);
        apr_table_setn(r->headers_out, "Cache-Control", "no-store");
        r->status = res->status;
        if (!r->header_only)
            ap_rwrite(res->raw, (int)res->raw_len, r);
        rc = OK;
    } else if (res->status == HTTP_NO_CONTENT || res->body == NULL) {
        rc = smh_send_no_content(r);
    } else {
        rc = smh_send_json(r, res->status, res->body);
    }
    sm_rt_result_clear(res);
    return rc;
}

rt_child_state *rt_begin_public(request_rec *r, int *rc)
{
    rt_child_state *st = rt_state(r);
    if (st == NULL)
        *rc = smh_problem_unavailable(r, "the retailer is not configured on this host");
    else if (st->ctx.db == NULL) {
        *rc = smh_problem_unavailable(r, "the retailer's database is not configured");
        st = NULL;
    }
    return st;
}

rt_child_state *rt_begin_admin(request_rec *r, int *rc)
{
    rt_server_config *c = rt_server_conf(r->server);
    if ((*rc = smh_require_role(r, c->roles, RT_ROLE_ADMIN, NULL)) != OK)
        return NULL;
    return rt_begin_public(r, rc);
}

/* The bearer token of the request, or NULL. */
static const char *bearer_token(request_rec *r)
{
    const char *h = apr_table_get(r->headers_in, "Authorization");
    if (h == NULL || strncasecmp(h, "Bearer ", 7) != 0)
        return NULL;
    h += 7;
    while (*h == ' ')
        h++;
    return *h ? h : NULL;
}

rt_child_state *rt_begin_consumer(request_rec *r, uint64_t *account_id, int *rc)
{
    rt_child_state *st = rt_begin_public(r, rc);
    if (st == NULL)
        return NULL;
    sm_rt_result res;
    sm_error err = {0};
    sm_status s = sm_rt_authenticate(&st->ctx, bearer_token(r), account_id, &res, &err);
    if (s != SM_OK || res.status >= 400) {
        *rc = rt_send_result(r, s, &res, "checking the API token", &err);
        return NULL;
    }
    sm_rt_result_clear(&res);
    return st;
}

int rt_read_body(request_rec *r, const char *what, json_t **body)
{
    rt_server_config *c = rt_server_conf(r->server);
    return smh_read_json_body(r, (apr_size_t)c->max_body, NULL, what, body);
}

/* ---- accounts -------------------------------------------------------------------- */

int rt_handle_signup(request_rec *r, const smh_route_match *m, void *ctx)
{
    (void)m;
    (void)ctx;
    int rc = OK;
    rt_child_state *st = rt_begin_public(r, &rc);
    if (st == NULL)
        return rc;
    json_t *body = NULL;
    if ((rc = rt_read_body(r, "sign-up", &body)) != OK)
        return rc;
    sm_rt_result res;
    sm_error err = {0};
    sm_status s = sm_rt_signup(&st->ctx, body, &res, &err);
    json_decref(body);
    return rt_send_result(r, s, &res, "creating an account", &err);
}

int rt_handle_login(request_rec *r, const smh_route_match *m, void *ctx)
{
    (void)m;
    (void)ctx;
    int rc = OK;
    rt_child_state *st = rt_begin_public(r, &rc);
    if (st == NULL)
        return rc;
    json_t *body = NULL;
    if ((rc = rt_read_body(r, "login", &body)) != OK)
        return rc;
    sm_rt_result res;
    sm_error err = {0};
    sm_status s = sm_rt_login(&st->ctx, body, r->useragent_ip, &res, &err);
    json_decref(body);
    return rt_send_result(r, s, &res, "logging in", &err);
}

int rt_handle_logout(request_rec *r, const smh_route_match *m, void *ctx)
{
    (void)m;
    (void)ctx;
    int rc = OK;
    uint64_t account = 0;
    rt_child_state *st = rt_begin_consumer(r, &account, &rc);
    if (st == NULL)
        return rc;
    sm_rt_result res;
    sm_error err = {0};
    sm_status s = sm_rt_logout(&st->ctx, bearer_token(r), &res, &err);
    return rt_send_result(r, s, &res, "revoking the token", &err);
}

int rt_handle_account(request_rec *r, const smh_route_match *m, void *ctx)
{
    (void)m;
    (void)ctx;
    int rc = OK;
    uint64_t account = 0;
    rt_child_state *st = rt_begin_consumer(r, &account, &rc);
    if (st == NULL)
        return rc;
    sm_rt_result res;
    sm_error err = {0};
    sm_status s = sm_rt_account_get(&st->ctx, account, &res, &err);
    return rt_send_result(r, s, &res, "reading the account", &err);
}

/* ---- devices ------------------------------------------------------------------------ */

int rt_handle_devices_list(request_rec *r, const smh_route_match *m, void *ctx)
{
    (void)m;
    (void)ctx;
    int rc = OK;
    uint64_t account = 0;
    rt_child_state *st = rt_begin_consumer(r, &account, &rc);
    if (st == NULL)
        return rc;
    sm_rt_result res;
    sm_error err = {0};
    sm_status s = sm_rt_device_list(&st->ctx, account, &res, &err);
    return rt_send_result(r, s, &res, "listing devices", &err);
}

int rt_handle_device_register(request_rec *r, const smh_route_match *m, void *ctx)
{
    (void)m;
    (void)ctx;
    int rc = OK;
    uint64_t account = 0;
    rt_child_state *st = rt_begin_consumer(r, &account, &rc);
    if (st == NULL)
        return rc;
    json_t *body = NULL;
    if ((rc = rt_read_body(r, "device", &body)) != OK)
        return rc;
    sm_rt_result res;
    sm_error err = {0};
    sm_status s = sm_rt_device_register(&st->ctx, account, body, &res, &err);
    json_decref(body);
    return rt_send_result(r, s, &res, "registering a device", &err);
}

int rt_handle_device_remove(request_rec *r, const smh_route_match *m, void *ctx)
{
    (void)ctx;
    int rc = OK;
    uint64_t account = 0;
    rt_child_state *st = rt_begin_consumer(r, &account, &rc);
    if (st == NULL)
        return rc;
    sm_rt_result res;
    sm_error err = {0};
    sm_status s = sm_rt_device_remove(&st->ctx, account, smh_route_param(m, "jkt"), &res, &err);
    return rt_send_result(r, s, &res, "removing a device", &err);
}

/* ---- wallet ------------------------------------------------------------------------ */

int rt_handle_wallet(request_rec *r, const smh_route_match *m, void *ctx)
{
    (void)m;
    (void)ctx;
    int rc = OK;
    uint64_t account = 0;
    rt_child_state *st = rt_begin_consumer(r, &account, &rc);
    if (st == NULL)
        return rc;
    unsigned limit, offset;
    sm_error err = {0};
    if (sm_rt_paging(r->args, &limit, &offset, &err) != SM_OK)
        return smh_problem_bad_request(r, err.message);
    sm_rt_result res;
    sm_status s = sm_rt_wallet_get(&st->ctx, account, limit, offset, &res, &err);
    return rt_send_result(r, s, &res, "reading the wallet", &err);
}

int rt_handle_redeem(request_rec *r, const smh_route_match *m, void *ctx)
{
    (void)m;
    (void)ctx;
    int rc = OK;
    uint64_t account = 0;
    rt_child_state *st = rt_begin_consumer(r, &account, &rc);
    if (st == NULL)
        return rc;
    json_t *body = NULL;
    if ((rc = rt_read_body(r, "redeem request", &body)) != OK)
        return rc;
    sm_rt_result res;
    sm_error err = {0};
    sm_status s = sm_rt_wallet_redeem(&st->ctx, account, body, &res, &err);
    json_decref(body);
    return rt_send_result(r, s, &res, "redeeming a code", &err);
}

int rt_handle_topup(request_rec *r, const smh_route_match *m, void *ctx)
{
    (void)m;
    (void)ctx;
    int rc = OK;
    uint64_t account = 0;
    rt_child_state *st = rt_begin_consumer(r, &account, &rc);
    if (st == NULL)
        return rc;
    json_t *body = NULL;
    if ((rc = rt_read_body(r, "top-up", &body)) != OK)
        return rc;
    sm_rt_result res;
    sm_error err = {0};
    sm_status s = sm_rt_wallet_topup(&st->ctx, account,
                                     apr_table_get(r->headers_in, "Idempotency-Key"), body, &res,
                                     &err);
    json_decref(body);
    return rt_send_result(r, s, &res, "buying points", &err);
}

int rt_handle_codes(request_rec *r, const smh_route_match *m, void *ctx)
{
    (void)m;
    (void)ctx;
    int rc = OK;
    rt_child_state *st = rt_begin_admin(r, &rc);
    if (st == NULL)
        return rc;
    json_t *body = NULL;
    if ((rc = rt_read_body(r, "code batch", &body)) != OK)
        return rc;
    sm_rt_result res;
    sm_error err = {0};
    sm_status s = sm_rt_codes_issue(&st->ctx, body, &res, &err);
    json_decref(body);
    return rt_send_result(r, s, &res, "issuing codes", &err);
}
