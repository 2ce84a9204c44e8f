/* What the parts of mod_retail share: the per-child state and the request
 * handlers the router in mod_retail.c calls. */
#ifndef RETAIL_H
#define RETAIL_H

#include "smh_httpd.h"

#include "rt_config.h"
#include "sm_rt_store.h"
#include "sm_rt_worker.h"
#include "smh_route.h"

typedef struct rt_child_state {
    sm_rt_ctx ctx; /* db NULL when the pool could not be created: 503 */
    sm_rt_worker *worker;
    server_rec *server;
} rt_child_state;

void rt_state_child_init(apr_pool_t *pchild, server_rec *s);
rt_child_state *rt_state(request_rec *r);

/* Common glue (rt_request.c). */
int rt_send_result(request_rec *r, sm_status st, sm_rt_result *res, const char *what,
                   const sm_error *err);
/* State + bearer token -> account. NULL after answering. */
rt_child_state *rt_begin_consumer(request_rec *r, uint64_t *account_id, int *rc);
/* State + admin role. NULL after answering. */
rt_child_state *rt_begin_admin(request_rec *r, int *rc);
/* State only. NULL after answering. */
rt_child_state *rt_begin_public(request_rec *r, int *rc);
int rt_read_body(request_rec *r, const char *what, json_t **body);
/* The request's bearer token (Authorization: Bearer), or NULL. */
const char *rt_bearer_token(request_rec *r);

/* What a request brings to its store operation. */
typedef struct rt_call {
    request_rec *r;
    sm_rt_ctx *ctx;
    uint64_t account;       /* RT_CONSUMER: the token's account */
    json_t *body;           /* the JSON body, when the endpoint reads one */
    const char *param;      /* the endpoint's route parameter */
    unsigned limit, offset; /* paged endpoints */
} rt_call;

typedef enum rt_access {
    RT_PUBLIC,   /* anyone */
    RT_CONSUMER, /* a consumer's API token */
    RT_ADMIN     /* the retailer's admin client certificate */
} rt_access;

/* One endpoint, as route data for rt_handle_op. */
typedef struct rt_endpoint {
    rt_access access;
    const char *body;  /* name of its JSON body in errors ("sign-up"); NULL: no body */
    const char *param; /* route parameter passed as rt_call.param, or NULL */
    int paged;         /* reads limit and offset from the query */
    const char *doing; /* for failures: "creating an account" */
    sm_status (*op)(const rt_call *c, sm_rt_result *res, sm_error *err);
} rt_endpoint;

/* Serves the endpoint in m->data: checks who calls, reads what it needs,
 * runs its operation and sends the answer. */
int rt_handle_op(request_rec *r, const smh_route_match *m, void *ctx);

/* Accounts, devices, wallet, codes (rt_handlers_account.c). */
extern const rt_endpoint rt_ep_signup, rt_ep_login, rt_ep_logout, rt_ep_account,
    rt_ep_devices_list, rt_ep_device_register, rt_ep_device_remove, rt_ep_wallet, rt_ep_redeem,
    rt_ep_topup, rt_ep_codes;

/* Catalog, offers, orders (rt_handlers_shop.c). The search reads its own
 * query parameter. */
int rt_handle_catalog(request_rec *r, const smh_route_match *m, void *ctx);
extern const rt_endpoint rt_ep_catalog_work, rt_ep_sync, rt_ep_offers_list, rt_ep_offer_create,
    rt_ep_offer_end, rt_ep_order_place, rt_ep_orders_list, rt_ep_order_get, rt_ep_order_steer;

/* License proxy and storefront files (rt_proxy.c). */
int rt_handle_license_proxy(request_rec *r, const smh_route_match *m, void *ctx);
int rt_handle_storefront(request_rec *r, const smh_route_match *m, void *ctx);

#endif
