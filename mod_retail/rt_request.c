#include "config.h"

/* The request glue every retail endpoint shares: who may call, reading
 * the JSON body and the paging parameters, calling the store operation
 * (common/sm_rt_store*.c) and sending its answer. No business logic here;
 * the endpoints themselves are tables (rt_endpoint) in
 * rt_handlers_account.c and rt_handlers_shop.c. */

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

const char *rt_bearer_token(request_rec *r)
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
    sm_status s = sm_rt_authenticate(&st->ctx, rt_bearer_token(r), account_id, &res, &err);
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

int rt_handle_op(request_rec *r, const smh_route_match *m, void *ctx)
{
    (void)ctx;
    const rt_endpoint *ep = m->data;
    int rc = OK;
    rt_call call;
    memset(&call, 0, sizeof(call));
    call.r = r;
    rt_child_state *st = ep->access == RT_CONSUMER ? rt_begin_consumer(r, &call.account, &rc)
                         : ep->access == RT_ADMIN  ? rt_begin_admin(r, &rc)
                                                   : rt_begin_public(r, &rc);
    if (st == NULL)
        return rc;
    call.ctx = &st->ctx;
    if (ep->param != NULL)
        call.param = smh_route_param(m, ep->param);
    sm_error err = {0};
    if (ep->paged && sm_rt_paging(r->args, &call.limit, &call.offset, &err) != SM_OK)
        return smh_problem_bad_request(r, err.message);
    if (ep->body != NULL) {
        if ((rc = rt_read_body(r, ep->body, &call.body)) != OK)
            return rc;
    } else {
        /* Nothing to read: done with the request before the work (which
         * may take long, e.g. a catalog sync). */
        smh_finish_request_body(r);
    }
    sm_rt_result res;
    sm_status s = ep->op(&call, &res, &err);
    json_decref(call.body);
    return rt_send_result(r, s, &res, ep->doing, &err);
}
