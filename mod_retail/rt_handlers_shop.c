#include "config.h"

/* Catalog, offers and orders handlers (glue only). */

#include "smh_httpd.h"

#include <string.h>

#include <apr_strings.h>
#include <http_protocol.h>

#include "retail.h"
#include "sm_rt_validate.h"
#include "smh_body.h"
#include "smh_problem.h"

int rt_handle_catalog(request_rec *r, const smh_route_match *m, void *ctx)
{
    (void)m;
    (void)ctx;
    int rc = OK;
    rt_child_state *st = rt_begin_public(r, &rc);
    if (st == NULL)
        return rc;
    unsigned limit, offset;
    sm_error err = {0};
    char q[SM_RT_SEARCH_MAX + 1];
    if (sm_rt_paging(r->args, &limit, &offset, &err) != SM_OK)
        return smh_problem_bad_request(r, err.message);
    int found = sm_rt_query_param(r->args, "q", q, sizeof(q));
    if (found < 0)
        return smh_problem_bad_request(r, "query parameter \"q\": at most 200 bytes, given once, "
                                          "percent-encoded");
    sm_rt_result res;
    sm_status s = sm_rt_catalog_list(&st->ctx, found ? q : NULL, limit, offset, &res, &err);
    return rt_send_result(r, s, &res, "searching the catalog", &err);
}

int rt_handle_catalog_work(request_rec *r, const smh_route_match *m, void *ctx)
{
    (void)ctx;
    int rc = OK;
    rt_child_state *st = rt_begin_public(r, &rc);
    if (st == NULL)
        return rc;
    sm_rt_result res;
    sm_error err = {0};
    sm_status s = sm_rt_catalog_get(&st->ctx, smh_route_param(m, "work_id"), &res, &err);
    return rt_send_result(r, s, &res, "reading the catalog", &err);
}

int rt_handle_sync(request_rec *r, const smh_route_match *m, void *ctx)
{
    (void)m;
    (void)ctx;
    int rc = OK;
    rt_child_state *st = rt_begin_admin(r, &rc);
    if (st == NULL)
        return rc;
    smh_finish_request_body(r);
    sm_rt_result res;
    sm_error err = {0};
    sm_status s = sm_rt_catalog_sync(&st->ctx, &res, &err);
    return rt_send_result(r, s, &res, "syncing the catalog", &err);
}

int rt_handle_offers_list(request_rec *r, const smh_route_match *m, void *ctx)
{
    (void)m;
    (void)ctx;
    int rc = OK;
    rt_child_state *st = rt_begin_admin(r, &rc);
    if (st == NULL)
        return rc;
    sm_rt_result res;
    sm_error err = {0};
    sm_status s = sm_rt_offer_list(&st->ctx, &res, &err);
    return rt_send_result(r, s, &res, "listing offers", &err);
}

int rt_handle_offer_create(request_rec *r, const smh_route_match *m, void *ctx)
{
    (void)m;
    (void)ctx;
    int rc = OK;
    rt_child_state *st = rt_begin_admin(r, &rc);
    if (st == NULL)
        return rc;
    json_t *body = NULL;
    if ((rc = rt_read_body(r, "offer", &body)) != OK)
        return rc;
    sm_rt_result res;
    sm_error err = {0};
    sm_status s = sm_rt_offer_create(&st->ctx, body, &res, &err);
    json_decref(body);
    return rt_send_result(r, s, &res, "creating an offer", &err);
}

int rt_handle_offer_end(request_rec *r, const smh_route_match *m, void *ctx)
{
    (void)ctx;
    int rc = OK;
    rt_child_state *st = rt_begin_admin(r, &rc);
    if (st == NULL)
        return rc;
    sm_rt_result res;
    sm_error err = {0};
    sm_status s = sm_rt_offer_end(&st->ctx, smh_route_param(m, "offer_id"), &res, &err);
    return rt_send_result(r, s, &res, "ending an offer", &err);
}

int rt_handle_order_place(request_rec *r, const smh_route_match *m, void *ctx)
{
    (void)m;
    (void)ctx;
    int rc = OK;
    uint64_t account = 0;
    rt_child_state *st = rt_begin_consumer(r, &account, &rc);
    if (st == NULL)
        return rc;
    json_t *body = NULL;
    if ((rc = rt_read_body(r, "order", &body)) != OK)
        return rc;
    sm_rt_result res;
    sm_error err = {0};
    sm_status s = sm_rt_order_place(&st->ctx, account,
                                    apr_table_get(r->headers_in, "Idempotency-Key"), body, &res,
                                    &err);
    json_decref(body);
    return rt_send_result(r, s, &res, "placing an order", &err);
}

int rt_handle_orders_list(request_rec *r, const smh_route_match *m, void *ctx)
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
    sm_status s = sm_rt_order_list(&st->ctx, account, limit, offset, &res, &err);
    return rt_send_result(r, s, &res, "listing orders", &err);
}

int rt_handle_order_get(request_rec *r, const smh_route_match *m, void *ctx)
{
    (void)ctx;
    int rc = OK;
    uint64_t account = 0;
    rt_child_state *st = rt_begin_consumer(r, &account, &rc);
    if (st == NULL)
        return rc;
    sm_rt_result res;
    sm_error err = {0};
    sm_status s = sm_rt_order_get(&st->ctx, account, smh_route_param(m, "order_id"), &res, &err);
    return rt_send_result(r, s, &res, "reading an order", &err);
}

int rt_handle_order_steer(request_rec *r, const smh_route_match *m, void *ctx)
{
    (void)ctx;
    int rc = OK;
    uint64_t account = 0;
    rt_child_state *st = rt_begin_consumer(r, &account, &rc);
    if (st == NULL)
        return rc;
    sm_rt_result res;
    sm_error err = {0};
    const char *id = smh_route_param(m, "order_id");
    sm_status s = sm_rt_order_steer(&st->ctx, account, id, &res, &err);
    if (s == SM_OK && res.status == 200)
        apr_table_setn(r->headers_out, "Content-Disposition",
                       apr_psprintf(r->pool, "attachment; filename=\"%s.steer\"", id));
    return rt_send_result(r, s, &res, "reading a steering file", &err);
}
