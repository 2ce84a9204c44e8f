/* mod_retail configuration: directive table, defaults, merge and the check
 * run by check_config (so `apachectl configtest` fails on an incomplete or
 * inconsistent configuration). docs/CONFIGURATION.md §4 describes every
 * directive. */
#ifndef RT_CONFIG_H
#define RT_CONFIG_H

#include <stdint.h>

#include "smh_httpd.h"

#include <http_config.h>

#include "sm_rt_payment.h"
#include "sm_rt_store.h"
#include "sm_secmem.h"
#include "smh_config.h"
#include "smh_identity.h"

#define RT_HANDLER "secmedia-retail"
#define RT_ROLE_ADMIN "admin"
#define RT_DEFAULT_MAX_BODY (64u * 1024u)
#define RT_DEFAULT_SYNC_INTERVAL 3600u
#define RT_DEFAULT_RESUME_INTERVAL 60u

typedef struct rt_server_config {
    smh_db_settings db;
    smh_role_map *roles;
    const char *keyserver_url;
    const char *ca_pem, *cert_pem;
    apr_size_t ca_len, cert_len;
    sm_secret *key_pem;
    const char *currency;
    const char *media_urls[SM_RT_MAX_MEDIA_STORES];
    unsigned n_media;
    int license_proxy;
    const char *license_proxy_url;
    uint64_t token_lifetime;
    uint64_t login_window;
    uint64_t login_max_account;
    uint64_t login_max_address;
    uint64_t password_cost;
    uint64_t sync_interval;
    uint64_t resume_interval;
    const sm_rt_payment_authority *payments;
    uint64_t max_body;
    const char *storefront_dir;
    uint64_t set_mask;
} rt_server_config;

extern const command_rec rt_directives[];

void *rt_create_server_config(apr_pool_t *p, server_rec *s);
void *rt_merge_server_config(apr_pool_t *p, void *base, void *add);

const char *rt_config_check(apr_pool_t *p, const rt_server_config *c);
int rt_config_in_use(const rt_server_config *c);

rt_server_config *rt_server_conf(server_rec *s);

#endif
