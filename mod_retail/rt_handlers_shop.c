#include "config.h"

/* The catalog, offer and order endpoints: each a store operation
 * (common/sm_rt_store*.c) and what rt_handle_op needs to call it; the
 * catalog search reads its own query parameter. */

#include "smh_httpd.h"

#include <apr_strings.h>
#include <apr_tables.h>
#include <http_protocol.h>

#include "retail.h"
#include "sm_rt_validate.h"
#include "smh_problem.h"

/* ---- catalog ------------------------------------------------------------------------ */

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

static sm_status catalog_work(const rt_call *c, sm_rt_result *res, sm_error *err)
{
    return sm_rt_catalog_get(c->ctx, c->param, res, err);
}
const rt_endpoint rt_ep_catalog_work = {RT_PUBLIC, NULL, "work_id", 0, "reading the catalog",
                                        catalog_work};

static sm_status sync_catalog(const rt_call *c, sm_rt_result *res, sm_error *err)
{
    return sm_rt_catalog_sync(c->ctx, res, err);
}
const rt_endpoint rt_ep_sync = {RT_ADMIN, NULL, NULL, 0, "syncing the catalog", sync_catalog};

/* ---- offers ------------------------------------------------------------------------- */

static sm_status offers_list(const rt_call *c, sm_rt_result *res, sm_error *err)
{
    return sm_rt_offer_list(c->ctx, res, err);
}
const rt_endpoint rt_ep_offers_list = {RT_ADMIN, NULL, NULL, 0, "listing offers", offers_list};

static sm_status offer_create(const rt_call *c, sm_rt_result *res, sm_error *err)
{
    return sm_rt_offer_create(c->ctx, c->body, res, err);
}
const rt_endpoint rt_ep_offer_create = {RT_ADMIN, "offer", NULL, 0, "creating an offer",
                                        offer_create};

static sm_status offer_end(const rt_call *c, sm_rt_result *res, sm_error *err)
{
    return sm_rt_offer_end(c->ctx, c->param, res, err);
}
const rt_endpoint rt_ep_offer_end = {RT_ADMIN, NULL, "offer_id", 0, "ending an offer",
                                     offer_end};

/* ---- orders ------------------------------------------------------------------------- */

static sm_status order_place(const rt_call *c, sm_rt_result *res, sm_error *err)
{
    return sm_rt_order_place(c->ctx, c->account,
                             apr_table_get(c->r->headers_in, "Idempotency-Key"), c->body, res,
                             err);
}
const rt_endpoint rt_ep_order_place = {RT_CONSUMER, "order", NULL, 0, "placing an order",
                                       order_place};

static sm_status orders_list(const rt_call *c, sm_rt_result *res, sm_error *err)
{
    return sm_rt_order_list(c->ctx, c->account, c->limit, c->offset, res, err);
}
const rt_endpoint rt_ep_orders_list = {RT_CONSUMER, NULL, NULL, 1, "listing orders",
                                       orders_list};

static sm_status order_get(const rt_call *c, sm_rt_result *res, sm_error *err)
{
    return sm_rt_order_get(c->ctx, c->account, c->param, res, err);
}
const rt_endpoint rt_ep_order_get = {RT_CONSUMER, NULL, "order_id", 0, "reading an order",
                                     order_get};

static sm_status order_steer(const rt_call *c, sm_rt_result *res, sm_error *err)
{
    sm_status s = sm_rt_order_steer(c->ctx, c->account, c->param, res, err);
    if (s == SM_OK && res->status == 200)
        apr_table_setn(c->r->headers_out, "Content-Disposition",
                       apr_psprintf(c->r->pool, "attachment; filename=\"%s.steer\"", c->param));
    return s;
}
const rt_endpoint rt_ep_order_steer = {RT_CONSUMER, NULL, "order_id", 0,
                                       "reading a steering file", order_steer};
