/* mod_mediastore: the media store. Accepts encrypted containers and
 * previews from owners, delivers containers to players holding a delivery
 * token from the key server, and tells the key server when a transaction's
 * container went out completely. This file registers the hooks; the work
 * is in ms_*.c and in common/. */
#include "config.h"

#include "smh_httpd.h"

#include <apr_strings.h>
#include <http_config.h>
#include <http_log.h>
#include <http_protocol.h>
#include <http_request.h>

#include "mediastore.h"
#include "ms_config.h"
#include "sm_secmem.h"
#include "smh_identity.h"
#include "smh_log.h"
#include "smh_problem.h"
#include "smh_route.h"
#include "smh_storage.h"

/* check_config runs after the virtual hosts are merged and also for
 * `apachectl configtest`, so an incomplete configuration fails there. */
static int ms_check_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp, server_rec *s)
{
    (void)pconf;
    (void)plog;
    for (server_rec *vs = s; vs != NULL; vs = vs->next) {
        ms_server_config *c = ms_server_conf(vs);
        if (!ms_config_in_use(c))
            continue;
        const char *msg = ms_config_check(ptemp, c);
        if (msg != NULL) {
            ap_log_error(APLOG_MARK, APLOG_STARTUP | APLOG_EMERG, 0, NULL,
                         SMLOGNO(02000) "%s (virtual host %s:%u, %s line %u)", msg,
                         vs->server_hostname ? vs->server_hostname : "?", vs->port,
                         vs->defn_name ? vs->defn_name : "?", vs->defn_line_number);
            return HTTP_INTERNAL_SERVER_ERROR;
        }
    }
    return OK;
}

static void ms_optional_fn_retrieve(void)
{
    smh_identity_init();
}

static void ms_child_init(apr_pool_t *pchild, server_rec *s)
{
    sm_secmem_init();
    ms_state_child_init(pchild, s);
}

static const smh_route routes[] = {
    {"PUT", "/works/{work_id}", ms_handle_upload_work, NULL},
    {"PUT", "/works/{work_id}/preview", ms_handle_upload_preview, NULL},
    {"GET,HEAD", "/works/{work_id}", ms_handle_deliver, NULL},
    {"GET,HEAD", "/works/{work_id}/preview", ms_handle_preview, NULL},
};

/* None of our URLs is a file: no core directory walk for them. */
static int ms_map_to_storage(request_rec *r)
{
    return smh_storage_skip_walk(r, MS_HANDLER);
}

static int ms_handler(request_rec *r)
{
    if (r->handler == NULL || strcmp(r->handler, MS_HANDLER) != 0)
        return DECLINED;
    return smh_route_dispatch(r, routes, sizeof(routes) / sizeof(routes[0]), NULL);
}

static void ms_register_hooks(apr_pool_t *p)
{
    (void)p;
    ap_hook_check_config(ms_check_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_optional_fn_retrieve(ms_optional_fn_retrieve, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_child_init(ms_child_init, NULL, NULL, APR_HOOK_MIDDLE);
    smh_storage_hook(ms_map_to_storage);
    ap_hook_handler(ms_handler, NULL, NULL, APR_HOOK_MIDDLE);
    ms_register_delivery_hooks(p);
}

AP_DECLARE_MODULE(mediastore) = {
    STANDARD20_MODULE_STUFF,
    NULL, /* no per-directory configuration */
    NULL,
    ms_create_server_config,
    ms_merge_server_config,
    ms_directives,
    ms_register_hooks,
#if defined(AP_MODULE_FLAG_ALWAYS_MERGE)
    AP_MODULE_FLAG_NONE
#endif
};
