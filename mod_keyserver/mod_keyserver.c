#include "config.h"

/* mod_keyserver: the key server. Holds the works' media keys wrapped under
 * a KEK, registers owners, retailers, works and contracts, reserves sales,
 * records payments, releases licenses to devices that prove they hold the
 * designated key, and keeps the tamper-evident ledger. This file registers
 * the hooks and routes; the work is in ks_*.c and common/sm_ks_*.c. */

#include "smh_httpd.h"

#include <apr_strings.h>
#include <http_config.h>
#include <http_log.h>
#include <http_protocol.h>
#include <http_request.h>

#include "keyserver.h"
#include "sm_secmem.h"
#include "smh_identity.h"
#include "smh_log.h"
#include "smh_route.h"
#include "smh_storage.h"

/* check_config runs after the virtual hosts are merged and also for
 * `apachectl configtest`, so an incomplete configuration fails there. */
static int ks_check_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp, server_rec *s)
{
    (void)pconf;
    (void)plog;
    for (server_rec *vs = s; vs != NULL; vs = vs->next) {
        ks_server_config *c = ks_server_conf(vs);
        if (!ks_config_in_use(c))
            continue;
        if (c->keys != NULL)
            sm_ks_keys_default_active(c->keys);
        const char *msg = ks_config_check(ptemp, c);
        if (msg != NULL) {
            ap_log_error(APLOG_MARK, APLOG_STARTUP | APLOG_EMERG, 0, NULL,
                         SMLOGNO(01000) "%s (virtual host %s:%u, %s line %u)", msg,
                         vs->server_hostname ? vs->server_hostname : "?", vs->port,
                         vs->defn_name ? vs->defn_name : "?", vs->defn_line_number);
            return HTTP_INTERNAL_SERVER_ERROR;
        }
    }
    return OK;
}

static void ks_optional_fn_retrieve(void)
{
    smh_identity_init();
}

static void ks_child_init(apr_pool_t *pchild, server_rec *s)
{
    sm_secmem_init();
    ks_state_child_init(pchild, s);
}

static const smh_route routes[] = {
    {"GET,HEAD", "/v1/jwks", ks_handle_jwks, NULL},
    {"GET,HEAD", "/v1/encryption-key", ks_handle_encryption_key, NULL},
    {"POST", "/v1/owners", ks_handle_body_op,
     &(const ks_body_route){KS_ROLE_ADMIN, 0, "registering an owner", sm_ks_register_owner}},
    {"POST", "/v1/retailers", ks_handle_body_op,
     &(const ks_body_route){KS_ROLE_ADMIN, 0, "registering a retailer", sm_ks_register_retailer}},
    {"POST", "/v1/works", ks_handle_body_op,
     &(const ks_body_route){KS_ROLE_OWNER, 1, "registering a work", sm_ks_register_work}},
    {"GET,HEAD", "/v1/works/{work_id}", ks_handle_get_work, NULL},
    {"POST", "/v1/works/{work_id}/withdrawal", ks_handle_withdraw_work, NULL},
    {"POST", "/v1/contracts", ks_handle_body_op,
     &(const ks_body_route){KS_ROLE_OWNER, 0, "creating a contract", sm_ks_create_contract}},
    {"POST", "/v1/contracts/{contract_id}/revocation", ks_handle_revoke_contract, NULL},
    {"GET,HEAD", "/v1/inventory", ks_handle_inventory, NULL},
    {"POST", "/v1/reservations", ks_handle_body_op,
     &(const ks_body_route){KS_ROLE_RETAILER, 0, "reserving a sale", sm_ks_reserve}},
    {"POST", "/v1/payments", ks_handle_body_op,
     &(const ks_body_route){KS_ROLE_RETAILER, 0, "recording a payment", sm_ks_record_payment}},
    {"POST", "/v1/license", ks_handle_license, NULL},
    {"POST", "/v1/delivery-complete", ks_handle_body_op,
     &(const ks_body_route){KS_ROLE_MEDIASTORE, 0, "recording a delivery",
                            sm_ks_delivery_complete}},
    {"POST", "/v1/revocations", ks_handle_revoke, NULL},
    {"GET,HEAD", "/v1/ledger/export", ks_handle_ledger_export, NULL},
    {"POST", "/v1/ledger/checkpoints", ks_handle_checkpoint_now, NULL},
    {"GET,HEAD", "/v1/ledger/checkpoints/latest", ks_handle_latest_checkpoint, NULL},
};

/* None of our URLs is a file: no core directory walk for them. */
static int ks_map_to_storage(request_rec *r)
{
    return smh_storage_skip_walk(r, KS_HANDLER);
}

static int ks_handler(request_rec *r)
{
    if (r->handler == NULL || strcmp(r->handler, KS_HANDLER) != 0)
        return DECLINED;
    return smh_route_dispatch(r, routes, sizeof(routes) / sizeof(routes[0]), NULL);
}

static void ks_register_hooks(apr_pool_t *p)
{
    (void)p;
    ap_hook_check_config(ks_check_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_optional_fn_retrieve(ks_optional_fn_retrieve, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_child_init(ks_child_init, NULL, NULL, APR_HOOK_MIDDLE);
    smh_storage_hook(ks_map_to_storage);
    ap_hook_handler(ks_handler, NULL, NULL, APR_HOOK_MIDDLE);
}

AP_DECLARE_MODULE(keyserver) = {
    STANDARD20_MODULE_STUFF,
    NULL, /* no per-directory configuration */
    NULL,
    ks_create_server_config,
    ks_merge_server_config,
    ks_directives,
    ks_register_hooks,
#if defined(AP_MODULE_FLAG_ALWAYS_MERGE)
    AP_MODULE_FLAG_NONE
#endif
};
