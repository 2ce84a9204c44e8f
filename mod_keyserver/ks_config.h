/* mod_keyserver configuration: directive table, defaults, merge and the
 * check run by check_config (so `apachectl configtest` fails on an
 * incomplete or inconsistent configuration). docs/CONFIGURATION.md §2
 * describes every directive. */
#ifndef KS_CONFIG_H
#define KS_CONFIG_H

#include <stdint.h>

#include "smh_httpd.h"

#include <http_config.h>

#include "sm_ks_kek.h"
#include "sm_ks_keys.h"
#include "sm_ks_store.h"
#include "smh_config.h"
#include "smh_identity.h"

#define KS_HANDLER "secmedia-keyserver"

/* Client-certificate roles. */
#define KS_ROLE_ADMIN "admin"
#define KS_ROLE_OWNER "owner"
#define KS_ROLE_RETAILER "retailer"
#define KS_ROLE_MEDIASTORE "mediastore"
#define KS_ROLE_AUDITOR "auditor"

/* Defaults */
#define KS_DEFAULT_MAX_BODY (64u * 1024u)
#define KS_DEFAULT_MAX_WORK_BODY (1024u * 1024u)

typedef struct ks_server_config {
    smh_db_settings db;
    smh_role_map *roles;
    const char *issuer;       /* https base URL; "iss" of every token */
    const char *kek_file;
    sm_ks_kek *kek;           /* loaded when the directive is read (as root) */
    sm_ks_keys *keys;         /* signing keys + encryption key, likewise */
    unsigned n_signing;
    unsigned n_active;
    int have_encryption;
    const char *media_stores[SM_KS_MAX_MEDIA_STORES];
    unsigned n_media_stores;
    uint64_t voucher_lifetime;
    uint64_t payment_ack_lifetime;
    uint64_t delivery_lifetime;
    uint64_t reservation_lifetime;
    uint64_t proof_max_age;
    uint64_t activation_limit;
    uint64_t checkpoint_every;
    uint64_t max_body;
    uint64_t max_work_body;
    unsigned set_mask; /* which directives were given (merge) */
} ks_server_config;

extern const command_rec ks_directives[];

void *ks_create_server_config(apr_pool_t *p, server_rec *s);
void *ks_merge_server_config(apr_pool_t *p, void *base, void *add);

/* NULL when the virtual host's configuration is complete, else the message
 * configtest prints. */
const char *ks_config_check(apr_pool_t *p, const ks_server_config *c);
/* 1 when the server has any mod_keyserver directive. */
int ks_config_in_use(const ks_server_config *c);

ks_server_config *ks_server_conf(server_rec *s);

#endif
