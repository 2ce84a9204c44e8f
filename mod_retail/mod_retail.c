#include "config.h"

/* mod_retail: the retailer. Consumer accounts with API tokens, devices,
 * a points wallet, the catalog synced from the key server's inventory,
 * retail offers, orders that reserve and pay at the key server and hand
 * out steering files, an optional license proxy and the storefront's
 * files. This file registers the hooks and routes; the work is in rt_*.c
 * and common/sm_rt_*.c. */

#include "smh_httpd.h"

#include <apr_strings.h>
#include <http_config.h>
#include <http_log.h>
#include <http_protocol.h>
#include <http_request.h>

#include "retail.h"
#include "sm_secmem.h"
#include "smh_identity.h"
#include "smh_log.h"
#include "smh_route.h"
#include "smh_storage.h"

static int rt_check_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp, server_rec *s)
{
    (void)pconf;
    (void)plog;
    for (server_rec *vs = s; vs != NULL; vs = vs->next) {
        rt_server_config *c = rt_server_conf(vs);
        if (!rt_config_in_use(c))
            continue;
        const char *msg = rt_config_check(ptemp, c);
        if (msg != NULL) {
            ap_log_error(APLOG_MARK, APLOG_STARTUP | APLOG_EMERG, 0, NULL,
                         SMLOGNO(03000) "%s (virtual host %s:%u, %s line %u)", msg,
                         vs->server_hostname ? vs->server_hostname : "?", vs->port,
                         vs->defn_name ? vs->defn_name : "?", vs->defn_line_number);
            return HTTP_INTERNAL_SERVER_ERROR;
        }
    }
    return OK;
}

static void rt_optional_fn_retrieve(void)
{
    smh_identity_init();
}

static void rt_child_init(apr_pool_t *pchild, server_rec *s)
{
    sm_secmem_init();
    rt_state_child_init(pchild, s);
}

static const smh_route routes[] = {
    {"POST", "/v1/accounts", rt_handle_op, &rt_ep_signup},
    {"POST", "/v1/sessions", rt_handle_op, &rt_ep_login},
    {"DELETE", "/v1/sessions/current", rt_handle_op, &rt_ep_logout},
    {"GET,HEAD", "/v1/account", rt_handle_op, &rt_ep_account},
    {"GET,HEAD", "/v1/devices", rt_handle_op, &rt_ep_devices_list},
    {"POST", "/v1/devices", rt_handle_op, &rt_ep_device_register},
    {"DELETE", "/v1/devices/{jkt}", rt_handle_op, &rt_ep_device_remove},
    {"GET,HEAD", "/v1/wallet", rt_handle_op, &rt_ep_wallet},
    {"POST", "/v1/wallet/redeem", rt_handle_op, &rt_ep_redeem},
    {"POST", "/v1/wallet/topups", rt_handle_op, &rt_ep_topup},
    {"GET,HEAD", "/v1/catalog", rt_handle_catalog, NULL},
    {"GET,HEAD", "/v1/catalog/{work_id}", rt_handle_op, &rt_ep_catalog_work},
    {"GET,HEAD", "/v1/orders", rt_handle_op, &rt_ep_orders_list},
    {"POST", "/v1/orders", rt_handle_op, &rt_ep_order_place},
    {"GET,HEAD", "/v1/orders/{order_id}", rt_handle_op, &rt_ep_order_get},
    {"GET,HEAD", "/v1/orders/{order_id}/steer", rt_handle_op, &rt_ep_order_steer},
    {"POST", "/v1/license", rt_handle_license_proxy, NULL},
    {"POST", "/v1/admin/codes", rt_handle_op, &rt_ep_codes},
    {"POST", "/v1/admin/catalog/sync", rt_handle_op, &rt_ep_sync},
    {"GET,HEAD", "/v1/admin/offers", rt_handle_op, &rt_ep_offers_list},
    {"POST", "/v1/admin/offers", rt_handle_op, &rt_ep_offer_create},
    {"DELETE", "/v1/admin/offers/{offer_id}", rt_handle_op, &rt_ep_offer_end},
    {"GET,HEAD", "/store/", rt_handle_storefront, NULL},
    {"GET,HEAD", "/store/{file}", rt_handle_storefront, NULL},
};

/* None of our URLs is a file: no core directory walk for them. */
static int rt_map_to_storage(request_rec *r)
{
    return smh_storage_skip_walk(r, RT_HANDLER);
}

static int rt_handler(request_rec *r)
{
    if (r->handler == NULL || strcmp(r->handler, RT_HANDLER) != 0)
        return DECLINED;
    return smh_route_dispatch(r, routes, sizeof(routes) / sizeof(routes[0]), NULL);
}

static void rt_register_hooks(apr_pool_t *p)
{
    (void)p;
    ap_hook_check_config(rt_check_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_optional_fn_retrieve(rt_optional_fn_retrieve, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_child_init(rt_child_init, NULL, NULL, APR_HOOK_MIDDLE);
    smh_storage_hook(rt_map_to_storage);
    ap_hook_handler(rt_handler, NULL, NULL, APR_HOOK_MIDDLE);
}

AP_DECLARE_MODULE(retail) = {
    STANDARD20_MODULE_STUFF,
    NULL, /* no per-directory configuration */
    NULL,
    rt_create_server_config,
    rt_merge_server_config,
    rt_directives,
    rt_register_hooks,
#if defined(AP_MODULE_FLAG_ALWAYS_MERGE)
    AP_MODULE_FLAG_NONE
#endif
};
