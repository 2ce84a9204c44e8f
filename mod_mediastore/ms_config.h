/* mod_mediastore configuration: directive table, defaults, merge and the
 * post-config check. docs/CONFIGURATION.md describes every directive. */
#ifndef MS_CONFIG_H
#define MS_CONFIG_H

#include <stdint.h>

#include "smh_httpd.h"

#include <http_config.h>

#include "sm_secmem.h"
#include "smh_config.h"
#include "smh_identity.h"

#define MS_HANDLER "secmedia-mediastore"
#define MS_ROLE_OWNER "owner"

/* Defaults */
#define MS_DEFAULT_MAX_UPLOAD (UINT64_C(4) * 1024 * 1024 * 1024)
#define MS_DEFAULT_MAX_PREVIEW (UINT64_C(256) * 1024 * 1024)
#define MS_DEFAULT_JWKS_LIFETIME 3600
#define MS_DEFAULT_JWKS_MIN_REFRESH 30
#define MS_DEFAULT_NOTIFY_INTERVAL 30
#define MS_DEFAULT_TOKEN_MAX_LIFETIME 86400

typedef struct ms_server_config {
    const char *storage_dir;
    smh_db_settings db;
    smh_role_map *roles;
    uint64_t max_upload;
    uint64_t max_preview;
    const char *keyserver_url;     /* base URL, delivery-complete goes to /v1/delivery-complete */
    const char *jwks_url;
    const char *keyserver_ca_file;
    const char *client_cert_file;  /* PEM certificate for notifications */
    const char *client_key_file;   /* PEM private key for notifications */
    /* Their contents, read at configuration time (as root). */
    const char *keyserver_ca_pem;
    apr_size_t keyserver_ca_len;
    const char *client_cert_pem;
    apr_size_t client_cert_len;
    sm_secret *client_key_pem;
    const char *token_issuer;
    const char *token_audience;
    uint64_t jwks_lifetime;        /* seconds a fetched JWKS is used */
    uint64_t jwks_min_refresh;     /* seconds between two fetches, at least */
    uint64_t notify_interval;      /* seconds between delivery-complete retries */
    uint64_t token_max_lifetime;   /* exp - iat allowed, seconds */
    unsigned set_mask;             /* which scalar directives were given */
} ms_server_config;

extern const command_rec ms_directives[];

void *ms_create_server_config(apr_pool_t *p, server_rec *s);
void *ms_merge_server_config(apr_pool_t *p, void *base, void *add);

/* Checks the configuration of every virtual host where the handler may
 * run: NULL when usable, else the message configtest prints. */
const char *ms_config_check(apr_pool_t *p, const ms_server_config *c);

/* 1 when this server has any mod_mediastore directive (then it must be
 * complete). */
int ms_config_in_use(const ms_server_config *c);

ms_server_config *ms_server_conf(server_rec *s);

#endif
