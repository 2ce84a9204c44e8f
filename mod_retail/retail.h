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

/* Common glue (rt_handlers_account.c). */
int rt_send_result(request_rec *r, sm_status st, sm_rt_result *res, const char *what,
                   const sm_error *err);
/* State + bearer token -> account. NULL after answering. */
rt_child_state *rt_begin_consumer(request_rec *r, uint64_t *account_id, int *rc);
/* State + admin role. NULL after answering. */
rt_child_state *rt_begin_admin(request_rec *r, int *rc);
/* State only. NULL after answering. */
rt_child_state *rt_begin_public(request_rec *r, int *rc);
int rt_read_body(request_rec *r, const char *what, json_t **body);

/* Accounts, devices, wallet (rt_handlers_account.c). */
int rt_handle_signup(request_rec *r, const smh_route_match *m, void *ctx);
int rt_handle_login(request_rec *r, const smh_route_match *m, void *ctx);
int rt_handle_logout(request_rec *r, const smh_route_match *m, void *ctx);
int rt_handle_account(request_rec *r, const smh_route_match *m, void *ctx);
int rt_handle_devices_list(request_rec *r, const smh_route_match *m, void *ctx);
int rt_handle_device_register(request_rec *r, const smh_route_match *m, void *ctx);
int rt_handle_device_remove(request_rec *r, const smh_route_match *m, void *ctx);
int rt_handle_wallet(request_rec *r, const smh_route_match *m, void *ctx);
int rt_handle_redeem(request_rec *r, const smh_route_match *m, void *ctx);
int rt_handle_topup(request_rec *r, const smh_route_match *m, void *ctx);
int rt_handle_codes(request_rec *r, const smh_route_match *m, void *ctx);

/* Catalog, offers, orders (rt_handlers_shop.c). */
int rt_handle_catalog(request_rec *r, const smh_route_match *m, void *ctx);
int rt_handle_catalog_work(request_rec *r, const smh_route_match *m, void *ctx);
int rt_handle_sync(request_rec *r, const smh_route_match *m, void *ctx);
int rt_handle_offers_list(request_rec *r, const smh_route_match *m, void *ctx);
int rt_handle_offer_create(request_rec *r, const smh_route_match *m, void *ctx);
int rt_handle_offer_end(request_rec *r, const smh_route_match *m, void *ctx);
int rt_handle_order_place(request_rec *r, const smh_route_match *m, void *ctx);
int rt_handle_orders_list(request_rec *r, const smh_route_match *m, void *ctx);
int rt_handle_order_get(request_rec *r, const smh_route_match *m, void *ctx);
int rt_handle_order_steer(request_rec *r, const smh_route_match *m, void *ctx);

/* License proxy and storefront files (rt_proxy.c). */
int rt_handle_license_proxy(request_rec *r, const smh_route_match *m, void *ctx);
int rt_handle_storefront(request_rec *r, const smh_route_match *m, void *ctx);

#endif
