#include "config.h"

#include "smh_httpd.h"

#include <string.h>

#include <apr_strings.h>
#include <http_config.h>

#include "rt_config.h"
#include "sm_rt_auth.h"
#include "sm_validate.h"
#include "smh_route.h"

extern module AP_MODULE_DECLARE_DATA retail_module;

enum {
    SET_KS_URL = 1u << 0,
    SET_CA = 1u << 1,
    SET_CERT = 1u << 2,
    SET_KEY = 1u << 3,
    SET_CURRENCY = 1u << 4,
    SET_MEDIA = 1u << 5,
    SET_PROXY = 1u << 6,
    SET_PROXY_URL = 1u << 7,
    SET_TOKEN_LIFETIME = 1u << 8,
    SET_LOGIN_WINDOW = 1u << 9,
    SET_LOGIN_MAX_ACCOUNT = 1u << 10,
    SET_LOGIN_MAX_ADDRESS = 1u << 11,
    SET_PASSWORD_COST = 1u << 12,
    SET_SYNC = 1u << 13,
    SET_RESUME = 1u << 14,
    SET_PAYMENTS = 1u << 15,
    SET_MAX_BODY = 1u << 16,
    SET_STOREFRONT = 1u << 17,
};


static const char *const known_roles[] = {RT_ROLE_ADMIN, NULL};

rt_server_config *rt_server_conf(server_rec *s)
{
    return ap_get_module_config(s->module_config, &retail_module);
}

void *rt_create_server_config(apr_pool_t *p, server_rec *s)
{
    (void)s;
    rt_server_config *c = apr_pcalloc(p, sizeof(*c));
    smh_db_settings_init(&c->db);
    c->roles = smh_role_map_make(p);
    c->token_lifetime = SM_RT_DEFAULT_TOKEN_LIFETIME;
    c->login_window = SM_RT_DEFAULT_LOGIN_WINDOW;
    c->login_max_account = SM_RT_DEFAULT_LOGIN_MAX_ACCOUNT;
    c->login_max_address = SM_RT_DEFAULT_LOGIN_MAX_ADDRESS;
    c->password_cost = SM_RT_SCRYPT_LN_DEFAULT;
    c->sync_interval = RT_DEFAULT_SYNC_INTERVAL;
    c->resume_interval = RT_DEFAULT_RESUME_INTERVAL;
    c->max_body = RT_DEFAULT_MAX_BODY;
    return c;
}

void *rt_merge_server_config(apr_pool_t *p, void *basev, void *addv)
{
    const rt_server_config *base = basev, *add = addv;
    rt_server_config *c = apr_pcalloc(p, sizeof(*c));
#define PICK(bit, field) c->field = (add->set_mask & (bit)) ? add->field : base->field
    PICK(SET_KS_URL, keyserver_url);
    PICK(SET_CA, ca_pem);
    PICK(SET_CA, ca_len);
    PICK(SET_CERT, cert_pem);
    PICK(SET_CERT, cert_len);
    PICK(SET_KEY, key_pem);
    PICK(SET_CURRENCY, currency);
    PICK(SET_PROXY, license_proxy);
    PICK(SET_PROXY_URL, license_proxy_url);
    PICK(SET_TOKEN_LIFETIME, token_lifetime);
    PICK(SET_LOGIN_WINDOW, login_window);
    PICK(SET_LOGIN_MAX_ACCOUNT, login_max_account);
    PICK(SET_LOGIN_MAX_ADDRESS, login_max_address);
    PICK(SET_PASSWORD_COST, password_cost);
    PICK(SET_SYNC, sync_interval);
    PICK(SET_RESUME, resume_interval);
    PICK(SET_PAYMENTS, payments);
    PICK(SET_MAX_BODY, max_body);
    PICK(SET_STOREFRONT, storefront_dir);
#undef PICK
    const rt_server_config *m = (add->set_mask & SET_MEDIA) ? add : base;
    memcpy(c->media_urls, m->media_urls, sizeof(c->media_urls));
    c->n_media = m->n_media;
    c->set_mask = base->set_mask | add->set_mask;
    smh_db_settings_merge(&c->db, &base->db, &add->db);
    c->roles = smh_role_map_merge(p, base->roles, add->roles);
    return c;
}

static rt_server_config *cmd_conf(cmd_parms *cmd)
{
    return ap_get_module_config(cmd->server->module_config, &retail_module);
}

static const char *set_db(cmd_parms *cmd, void *dummy, const char *arg)
{
    (void)dummy;
    return smh_db_setting_set(cmd, &cmd_conf(cmd)->db, arg);
}

static const char *set_url(cmd_parms *cmd, void *dummy, const char *arg)
{
    (void)dummy;
    rt_server_config *c = cmd_conf(cmd);
    const char *url;
    const char *msg = smh_parse_https_url(cmd->pool, cmd->cmd->name, arg, &url);
    if (msg != NULL)
        return msg;
    if (strcmp(cmd->info, "ks") == 0) {
        c->keyserver_url = url;
        c->set_mask |= SET_KS_URL;
    } else if (strcmp(cmd->info, "proxy") == 0) {
        c->license_proxy_url = url;
        c->set_mask |= SET_PROXY_URL;
    } else {
        if (c->n_media >= SM_RT_MAX_MEDIA_STORES)
            return apr_psprintf(cmd->pool, "%s: at most %u media stores", cmd->cmd->name,
                                SM_RT_MAX_MEDIA_STORES);
        for (unsigned i = 0; i < c->n_media; i++)
            if (strcmp(c->media_urls[i], url) == 0)
                return apr_psprintf(cmd->pool, "%s: %s is listed twice", cmd->cmd->name, url);
        c->media_urls[c->n_media++] = url;
        c->set_mask |= SET_MEDIA;
    }
    return NULL;
}

static const char *set_file(cmd_parms *cmd, void *dummy, const char *arg)
{
    (void)dummy;
    rt_server_config *c = cmd_conf(cmd);
    const char *path;
    const char *msg = smh_parse_readable_file(cmd->pool, cmd->cmd->name, arg, &path);
    if (msg != NULL)
        return msg;
    if (strcmp(cmd->info, "ca") == 0) {
        if ((msg = smh_read_pem_file(cmd, path, &c->ca_pem, &c->ca_len)) != NULL)
            return msg;
        c->set_mask |= SET_CA;
    } else if (strcmp(cmd->info, "cert") == 0) {
        if ((msg = smh_read_pem_file(cmd, path, &c->cert_pem, &c->cert_len)) != NULL)
            return msg;
        c->set_mask |= SET_CERT;
    } else {
        sm_secret *key;
        if ((msg = smh_read_private_key_file(cmd, path, &key)) != NULL)
            return msg;
        c->key_pem = key;
        c->set_mask |= SET_KEY;
    }
    return NULL;
}

static const char *set_currency(cmd_parms *cmd, void *dummy, const char *arg)
{
    (void)dummy;
    rt_server_config *c = cmd_conf(cmd);
    if (strlen(arg) != 3 || arg[0] < 'A' || arg[0] > 'Z' || arg[1] < 'A' || arg[1] > 'Z' ||
        arg[2] < 'A' || arg[2] > 'Z')
        return apr_psprintf(cmd->pool, "%s: \"%s\" is not an ISO 4217 code such as EUR",
                            cmd->cmd->name, arg);
    c->currency = apr_pstrdup(cmd->pool, arg);
    c->set_mask |= SET_CURRENCY;
    return NULL;
}

static const char *set_proxy(cmd_parms *cmd, void *dummy, int on)
{
    (void)dummy;
    rt_server_config *c = cmd_conf(cmd);
    c->license_proxy = on;
    c->set_mask |= SET_PROXY;
    return NULL;
}

static const char *set_seconds(cmd_parms *cmd, void *dummy, const char *arg)
{
    (void)dummy;
    rt_server_config *c = cmd_conf(cmd);
    const char *w = cmd->info;
    uint64_t v;
    uint64_t min = (strcmp(w, "sync") == 0) ? 0 : 1;
    uint64_t max = strcmp(w, "token") == 0 ? UINT64_C(365) * 86400 : UINT64_C(7) * 86400;
    const char *msg = smh_parse_seconds(cmd->pool, cmd->cmd->name, arg, min, max, &v);
    if (msg != NULL)
        return msg;
    if (strcmp(w, "token") == 0) {
        c->token_lifetime = v;
        c->set_mask |= SET_TOKEN_LIFETIME;
    } else if (strcmp(w, "window") == 0) {
        c->login_window = v;
        c->set_mask |= SET_LOGIN_WINDOW;
    } else if (strcmp(w, "sync") == 0) {
        c->sync_interval = v;
        c->set_mask |= SET_SYNC;
    } else {
        c->resume_interval = v;
        c->set_mask |= SET_RESUME;
    }
    return NULL;
}

static const char *set_count(cmd_parms *cmd, void *dummy, const char *arg)
{
    (void)dummy;
    rt_server_config *c = cmd_conf(cmd);
    uint64_t v;
    const char *msg;
    if (strcmp(cmd->info, "cost") == 0) {
        if ((msg = smh_parse_uint(cmd->pool, cmd->cmd->name, arg, SM_RT_SCRYPT_LN_MIN,
                                  SM_RT_SCRYPT_LN_MAX, &v)) != NULL)
            return msg;
        c->password_cost = v;
        c->set_mask |= SET_PASSWORD_COST;
        return NULL;
    }
    if ((msg = smh_parse_uint(cmd->pool, cmd->cmd->name, arg, 1, 1000000, &v)) != NULL)
        return msg;
    if (strcmp(cmd->info, "account") == 0) {
        c->login_max_account = v;
        c->set_mask |= SET_LOGIN_MAX_ACCOUNT;
    } else {
        c->login_max_address = v;
        c->set_mask |= SET_LOGIN_MAX_ADDRESS;
    }
    return NULL;
}

static const char *set_payments(cmd_parms *cmd, void *dummy, const char *arg)
{
    (void)dummy;
    rt_server_config *c = cmd_conf(cmd);
    c->payments = sm_rt_payment_by_name(arg);
    if (c->payments == NULL)
        return apr_psprintf(cmd->pool,
                            "%s: unknown payment authority \"%s\"; known: test-double (a test "
                            "double that moves no money)",
                            cmd->cmd->name, arg);
    c->set_mask |= SET_PAYMENTS;
    return NULL;
}

static const char *set_size(cmd_parms *cmd, void *dummy, const char *arg)
{
    (void)dummy;
    rt_server_config *c = cmd_conf(cmd);
    uint64_t v;
    const char *msg = smh_parse_size(cmd->pool, cmd->cmd->name, arg, 1024, 16u * 1024 * 1024, &v);
    if (msg != NULL)
        return msg;
    c->max_body = v;
    c->set_mask |= SET_MAX_BODY;
    return NULL;
}

static const char *set_storefront(cmd_parms *cmd, void *dummy, const char *arg)
{
    (void)dummy;
    rt_server_config *c = cmd_conf(cmd);
    const char *msg = smh_parse_directory(cmd->pool, cmd->cmd->name, arg, &c->storefront_dir);
    if (msg == NULL)
        c->set_mask |= SET_STOREFRONT;
    return msg;
}

static const char *set_role(cmd_parms *cmd, void *dummy, const char *role, const char *dn)
{
    (void)dummy;
    return smh_role_map_add(cmd->pool, cmd_conf(cmd)->roles, cmd->cmd->name, role, dn,
                            known_roles);
}

const command_rec rt_directives[] = {
    AP_INIT_TAKE1("RetailKeyServerURL", set_url, (void *)"ks", RSRC_CONF,
                  "https base URL of the key server (its KeyServerIssuer)"),
    AP_INIT_TAKE1("RetailKeyServerCAFile", set_file, (void *)"ca", RSRC_CONF,
                  "PEM file of the CA(s) the key server's certificate is checked against"),
    AP_INIT_TAKE1("RetailClientCertFile", set_file, (void *)"cert", RSRC_CONF,
                  "PEM certificate this retailer presents to the key server"),
    AP_INIT_TAKE1("RetailClientKeyFile", set_file, (void *)"key", RSRC_CONF,
                  "its PEM private key (mode 0600 or stricter; read at startup)"),
    AP_INIT_TAKE2("RetailClientRole", set_role, NULL, RSRC_CONF,
                  "ROLE SUBJECT-DN: grant a client certificate a role (admin)"),
    AP_INIT_TAKE1("RetailCurrency", set_currency, NULL, RSRC_CONF,
                  "ISO 4217 code; one wallet point is one minor unit of it (e.g. EUR)"),
    AP_INIT_TAKE1("RetailMediaStoreURL", set_url, (void *)"media", RSRC_CONF,
                  "https base URL of a media store put in steering files (repeat per mirror, "
                  "at most 8)"),
    AP_INIT_FLAG("RetailLicenseProxy", set_proxy, NULL, RSRC_CONF,
                 "On: steering files name this retailer's POST /v1/license, which forwards to "
                 "the key server (default Off)"),
    AP_INIT_TAKE1("RetailLicenseProxyURL", set_url, (void *)"proxy", RSRC_CONF,
                  "the public https URL of this retailer's /v1/license (as registered at the "
                  "key server as license_proxy_url)"),
    AP_INIT_TAKE1("RetailTokenLifetime", set_seconds, (void *)"token", RSRC_CONF,
                  "validity of API tokens (default 30d)"),
    AP_INIT_TAKE1("RetailLoginWindow", set_seconds, (void *)"window", RSRC_CONF,
                  "window in which failed logins are counted (default 15m)"),
    AP_INIT_TAKE1("RetailLoginMaxFailures", set_count, (void *)"account", RSRC_CONF,
                  "failed logins per account and window before 429 (default 10)"),
    AP_INIT_TAKE1("RetailLoginMaxFailuresPerAddress", set_count, (void *)"address", RSRC_CONF,
                  "failed logins per client address and window before 429 (default 100)"),
    AP_INIT_TAKE1("RetailPasswordCost", set_count, (void *)"cost", RSRC_CONF,
                  "scrypt cost as log2 N for new password hashes (10..20, default 15)"),
    AP_INIT_TAKE1("RetailCatalogSyncInterval", set_seconds, (void *)"sync", RSRC_CONF,
                  "how often the catalog is synced from the key server (0 = only on demand; "
                  "default 1h)"),
    AP_INIT_TAKE1("RetailOrderResumeInterval", set_seconds, (void *)"resume", RSRC_CONF,
                  "how long an order may wait for its payment to be recorded before the "
                  "background thread retries it (default 60s)"),
    AP_INIT_TAKE1("RetailPaymentAuthority", set_payments, NULL, RSRC_CONF,
                  "payment authority for wallet top-ups (only: test-double)"),
    AP_INIT_TAKE1("RetailMaxBodySize", set_size, NULL, RSRC_CONF,
                  "largest JSON request body (default 64K)"),
    AP_INIT_TAKE1("RetailStorefrontDir", set_storefront, NULL, RSRC_CONF,
                  "directory of the storefront's static files, served under /store/"),
    SMH_DB_DIRECTIVES("Retail", set_db),
    {.name = NULL}};

int rt_config_in_use(const rt_server_config *c)
{
    return c->set_mask != 0 || smh_db_settings_present(&c->db) || c->roles->entries->nelts > 0;
}

const char *rt_config_check(apr_pool_t *p, const rt_server_config *c)
{
    static const struct {
        unsigned bit;
        const char *directive;
    } required[] = {
        {SET_KS_URL, "RetailKeyServerURL"},   {SET_CA, "RetailKeyServerCAFile"},
        {SET_CERT, "RetailClientCertFile"},   {SET_KEY, "RetailClientKeyFile"},
        {SET_CURRENCY, "RetailCurrency"},     {SET_MEDIA, "RetailMediaStoreURL"},
    };
    for (size_t i = 0; i < sizeof(required) / sizeof(required[0]); i++)
        if (!(c->set_mask & required[i].bit))
            return apr_psprintf(p, "mod_retail: %s is required", required[i].directive);
    if (c->license_proxy && !(c->set_mask & SET_PROXY_URL))
        return "mod_retail: RetailLicenseProxy On needs RetailLicenseProxyURL (this retailer's "
               "public URL of /v1/license)";
    return smh_db_settings_check(p, &c->db, "Retail");
}
