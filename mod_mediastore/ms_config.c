#include "config.h"

#include "smh_httpd.h"

#include <string.h>

#include <apr_strings.h>
#include <http_config.h>

#include "ms_config.h"
#include "sm_validate.h"
#include "smh_route.h"

extern module AP_MODULE_DECLARE_DATA mediastore_module;

/* Bits of ms_server_config.set_mask */
enum {
    SET_STORAGE = 1u << 0,
    SET_MAX_UPLOAD = 1u << 1,
    SET_MAX_PREVIEW = 1u << 2,
    SET_KS_URL = 1u << 3,
    SET_JWKS_URL = 1u << 4,
    SET_CA = 1u << 5,
    SET_CERT = 1u << 6,
    SET_KEY = 1u << 7,
    SET_ISSUER = 1u << 8,
    SET_AUDIENCE = 1u << 9,
    SET_JWKS_LIFETIME = 1u << 10,
    SET_JWKS_REFRESH = 1u << 11,
    SET_NOTIFY = 1u << 12,
    SET_TOKEN_LIFETIME = 1u << 13,
};

static const char *const known_roles[] = {MS_ROLE_OWNER, NULL};

ms_server_config *ms_server_conf(server_rec *s)
{
    return ap_get_module_config(s->module_config, &mediastore_module);
}

void *ms_create_server_config(apr_pool_t *p, server_rec *s)
{
    (void)s;
    ms_server_config *c = apr_pcalloc(p, sizeof(*c));
    smh_db_settings_init(&c->db);
    c->roles = smh_role_map_make(p);
    c->max_upload = MS_DEFAULT_MAX_UPLOAD;
    c->max_preview = MS_DEFAULT_MAX_PREVIEW;
    c->jwks_lifetime = MS_DEFAULT_JWKS_LIFETIME;
    c->jwks_min_refresh = MS_DEFAULT_JWKS_MIN_REFRESH;
    c->notify_interval = MS_DEFAULT_NOTIFY_INTERVAL;
    c->token_max_lifetime = MS_DEFAULT_TOKEN_MAX_LIFETIME;
    return c;
}

void *ms_merge_server_config(apr_pool_t *p, void *basev, void *addv)
{
    const ms_server_config *base = basev, *add = addv;
    ms_server_config *c = apr_pcalloc(p, sizeof(*c));
#define PICK(bit, field) c->field = (add->set_mask & (bit)) ? add->field : base->field
    PICK(SET_STORAGE, storage_dir);
    PICK(SET_MAX_UPLOAD, max_upload);
    PICK(SET_MAX_PREVIEW, max_preview);
    PICK(SET_KS_URL, keyserver_url);
    PICK(SET_JWKS_URL, jwks_url);
    PICK(SET_CA, keyserver_ca_file);
    PICK(SET_CA, keyserver_ca_pem);
    PICK(SET_CA, keyserver_ca_len);
    PICK(SET_CERT, client_cert_file);
    PICK(SET_CERT, client_cert_pem);
    PICK(SET_CERT, client_cert_len);
    PICK(SET_KEY, client_key_file);
    PICK(SET_KEY, client_key_pem);
    PICK(SET_ISSUER, token_issuer);
    PICK(SET_AUDIENCE, token_audience);
    PICK(SET_JWKS_LIFETIME, jwks_lifetime);
    PICK(SET_JWKS_REFRESH, jwks_min_refresh);
    PICK(SET_NOTIFY, notify_interval);
    PICK(SET_TOKEN_LIFETIME, token_max_lifetime);
#undef PICK
    c->set_mask = base->set_mask | add->set_mask;
    smh_db_settings_merge(&c->db, &base->db, &add->db);
    c->roles = smh_role_map_merge(p, base->roles, add->roles);
    return c;
}

static ms_server_config *cmd_conf(cmd_parms *cmd)
{
    return ap_get_module_config(cmd->server->module_config, &mediastore_module);
}

static const char *set_db(cmd_parms *cmd, void *dummy, const char *arg)
{
    (void)dummy;
    return smh_db_setting_set(cmd, &cmd_conf(cmd)->db, arg);
}

static const char *set_storage_dir(cmd_parms *cmd, void *dummy, const char *arg)
{
    (void)dummy;
    ms_server_config *c = cmd_conf(cmd);
    const char *msg = smh_parse_directory(cmd->pool, cmd->cmd->name, arg, &c->storage_dir);
    if (msg == NULL)
        c->set_mask |= SET_STORAGE;
    return msg;
}

static const char *set_size(cmd_parms *cmd, void *dummy, const char *arg)
{
    (void)dummy;
    ms_server_config *c = cmd_conf(cmd);
    int upload = strcmp(cmd->info, "upload") == 0;
    uint64_t v;
    const char *msg = smh_parse_size(cmd->pool, cmd->cmd->name, arg, 1024,
                                     UINT64_C(1) << 50, &v);
    if (msg != NULL)
        return msg;
    if (upload) {
        c->max_upload = v;
        c->set_mask |= SET_MAX_UPLOAD;
    } else {
        c->max_preview = v;
        c->set_mask |= SET_MAX_PREVIEW;
    }
    return NULL;
}

static const char *set_url(cmd_parms *cmd, void *dummy, const char *arg)
{
    (void)dummy;
    ms_server_config *c = cmd_conf(cmd);
    int jwks = strcmp(cmd->info, "jwks") == 0;
    const char *url;
    const char *msg = smh_parse_https_url(cmd->pool, cmd->cmd->name, arg, &url);
    if (msg != NULL)
        return msg;
    if (jwks) {
        c->jwks_url = url;
        c->set_mask |= SET_JWKS_URL;
    } else {
        c->keyserver_url = url;
        c->set_mask |= SET_KS_URL;
    }
    return NULL;
}


static const char *set_file(cmd_parms *cmd, void *dummy, const char *arg)
{
    (void)dummy;
    ms_server_config *c = cmd_conf(cmd);
    const char *which = cmd->info;
    const char *path;
    const char *msg = smh_parse_readable_file(cmd->pool, cmd->cmd->name, arg, &path);
    if (msg != NULL)
        return msg;
    if (strcmp(which, "ca") == 0) {
        if ((msg = smh_read_pem_file(cmd, path, &c->keyserver_ca_pem, &c->keyserver_ca_len)) != NULL)
            return msg;
        c->keyserver_ca_file = path;
        c->set_mask |= SET_CA;
    } else if (strcmp(which, "cert") == 0) {
        if ((msg = smh_read_pem_file(cmd, path, &c->client_cert_pem, &c->client_cert_len)) != NULL)
            return msg;
        c->client_cert_file = path;
        c->set_mask |= SET_CERT;
    } else {
        sm_secret *key;
        if ((msg = smh_read_private_key_file(cmd, path, &key)) != NULL)
            return msg;
        c->client_key_pem = key;
        c->client_key_file = path;
        c->set_mask |= SET_KEY;
    }
    return NULL;
}

static const char *set_token_string(cmd_parms *cmd, void *dummy, const char *arg)
{
    (void)dummy;
    ms_server_config *c = cmd_conf(cmd);
    sm_error err;
    if (sm_validate_text(arg, 512, cmd->cmd->name, &err) != SM_OK || arg[0] == '\0')
        return apr_psprintf(cmd->pool, "%s: give a non-empty printable value", cmd->cmd->name);
    if (strcmp(cmd->info, "issuer") == 0) {
        c->token_issuer = apr_pstrdup(cmd->pool, arg);
        c->set_mask |= SET_ISSUER;
    } else {
        c->token_audience = apr_pstrdup(cmd->pool, arg);
        c->set_mask |= SET_AUDIENCE;
    }
    return NULL;
}

static const char *set_seconds(cmd_parms *cmd, void *dummy, const char *arg)
{
    (void)dummy;
    ms_server_config *c = cmd_conf(cmd);
    const char *which = cmd->info;
    uint64_t v;
    const char *msg = smh_parse_seconds(cmd->pool, cmd->cmd->name, arg, 1, 7 * 86400, &v);
    if (msg != NULL)
        return msg;
    if (strcmp(which, "jwks-lifetime") == 0) {
        c->jwks_lifetime = v;
        c->set_mask |= SET_JWKS_LIFETIME;
    } else if (strcmp(which, "jwks-refresh") == 0) {
        c->jwks_min_refresh = v;
        c->set_mask |= SET_JWKS_REFRESH;
    } else if (strcmp(which, "notify") == 0) {
        c->notify_interval = v;
        c->set_mask |= SET_NOTIFY;
    } else {
        c->token_max_lifetime = v;
        c->set_mask |= SET_TOKEN_LIFETIME;
    }
    return NULL;
}

static const char *set_role(cmd_parms *cmd, void *dummy, const char *role, const char *dn)
{
    (void)dummy;
    return smh_role_map_add(cmd->pool, cmd_conf(cmd)->roles, cmd->cmd->name, role, dn,
                            known_roles);
}

const command_rec ms_directives[] = {
    AP_INIT_TAKE1("MediaStoreStorageDir", set_storage_dir, NULL, RSRC_CONF,
                  "directory holding the containers and previews (writable by the httpd user)"),
    AP_INIT_TAKE1("MediaStoreMaxUploadSize", set_size, (void *)"upload", RSRC_CONF,
                  "largest container accepted, e.g. 4G (default 4G)"),
    AP_INIT_TAKE1("MediaStoreMaxPreviewSize", set_size, (void *)"preview", RSRC_CONF,
                  "largest preview accepted, e.g. 256M (default 256M)"),
    AP_INIT_TAKE2("MediaStoreClientRole", set_role, NULL, RSRC_CONF,
                  "ROLE SUBJECT-DN: grant a client certificate a role (owner)"),
    AP_INIT_TAKE1("MediaStoreKeyServerURL", set_url, (void *)"keyserver", RSRC_CONF,
                  "https base URL of the key server (delivery-complete notifications)"),
    AP_INIT_TAKE1("MediaStoreKeyServerJWKSURL", set_url, (void *)"jwks", RSRC_CONF,
                  "https URL of the key server's JWK set (delivery token keys)"),
    AP_INIT_TAKE1("MediaStoreKeyServerCAFile", set_file, (void *)"ca", RSRC_CONF,
                  "PEM CA certificates trusted for the key server's TLS certificate"),
    AP_INIT_TAKE1("MediaStoreClientCertFile", set_file, (void *)"cert", RSRC_CONF,
                  "PEM client certificate the media store presents to the key server"),
    AP_INIT_TAKE1("MediaStoreClientKeyFile", set_file, (void *)"key", RSRC_CONF,
                  "PEM private key of MediaStoreClientCertFile (read at startup as root)"),
    AP_INIT_TAKE1("MediaStoreTokenIssuer", set_token_string, (void *)"issuer", RSRC_CONF,
                  "required \"iss\" of delivery tokens (the key server's issuer id)"),
    AP_INIT_TAKE1("MediaStoreTokenAudience", set_token_string, (void *)"audience", RSRC_CONF,
                  "required \"aud\" of delivery tokens (this media store's id)"),
    AP_INIT_TAKE1("MediaStoreJWKSCacheLifetime", set_seconds, (void *)"jwks-lifetime",
                  RSRC_CONF, "how long a fetched JWK set is used, e.g. 1h (default 1h)"),
    AP_INIT_TAKE1("MediaStoreJWKSMinRefreshInterval", set_seconds, (void *)"jwks-refresh",
                  RSRC_CONF,
                  "least time between two JWK set fetches, e.g. 30s (default 30s)"),
    AP_INIT_TAKE1("MediaStoreNotifyRetryInterval", set_seconds, (void *)"notify", RSRC_CONF,
                  "time between delivery-complete retries while the key server is down "
                  "(default 30s)"),
    AP_INIT_TAKE1("MediaStoreTokenMaxLifetime", set_seconds, (void *)"token-lifetime",
                  RSRC_CONF, "longest exp - iat accepted in a delivery token (default 1d)"),
    SMH_DB_DIRECTIVES("MediaStore", set_db),
    {.name = NULL}}; /* designated: clang wants every field otherwise */

int ms_config_in_use(const ms_server_config *c)
{
    return c->set_mask != 0 || smh_db_settings_present(&c->db) || c->roles->entries->nelts > 0;
}

const char *ms_config_check(apr_pool_t *p, const ms_server_config *c)
{
    static const struct {
        unsigned bit;
        const char *directive;
    } required[] = {
        {SET_STORAGE, "MediaStoreStorageDir"},
        {SET_KS_URL, "MediaStoreKeyServerURL"},
        {SET_JWKS_URL, "MediaStoreKeyServerJWKSURL"},
        {SET_CA, "MediaStoreKeyServerCAFile"},
        {SET_CERT, "MediaStoreClientCertFile"},
        {SET_KEY, "MediaStoreClientKeyFile"},
        {SET_ISSUER, "MediaStoreTokenIssuer"},
        {SET_AUDIENCE, "MediaStoreTokenAudience"},
    };
    for (size_t i = 0; i < sizeof(required) / sizeof(required[0]); i++) {
        if (!(c->set_mask & required[i].bit))
            return apr_psprintf(p, "mod_mediastore: %s is required", required[i].directive);
    }
    return smh_db_settings_check(p, &c->db, "MediaStore");
}
