#include "config.h"

#include "smh_httpd.h"

#include <string.h>

#include <apr_hash.h>
#include <apr_strings.h>
#include <http_config.h>
#include <http_log.h>

#include "mediastore.h"
#include "ms_config.h"
#include "sm_https.h"
#include "sm_ks_tokens.h"
#include "sm_schema.h"
#include "smh_db.h"
#include "smh_log.h"

APLOG_USE_MODULE(mediastore);

/* Requests to the key server: fetching the JWKS blocks a request, so it is
 * short; a notification runs in the background. */
#define JWKS_TIMEOUT_MS 5000u
#define NOTIFY_TIMEOUT_MS 10000u
/* Verified delivery tokens remembered per child. */
#define TOKEN_CACHE_SLOTS 4096u

/* One state per virtual host using the module, keyed by its server_rec;
 * child-private (created after the fork). */
static apr_hash_t *states;

static void notify_log(void *ctx, sm_ms_notify_report what, const char *txn, const char *work_id,
                       const char *detail)
{
    server_rec *s = ctx;
    switch (what) {
    case SM_MS_NOTIFY_SENT:
        ap_log_error(APLOG_MARK, APLOG_INFO, 0, s,
                     SMLOGNO(02012) "delivery-complete txn %s work %s acknowledged by the key "
                                    "server",
                     txn, work_id);
        break;
    case SM_MS_NOTIFY_RETRY:
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s,
                     SMLOGNO(02013) "delivery-complete txn %s work %s not acknowledged, will "
                                    "retry: %s",
                     txn, work_id, detail);
        break;
    case SM_MS_NOTIFY_REJECTED:
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, s,
                     SMLOGNO(02017) "delivery-complete txn %s work %s refused by the key "
                                    "server for good, not resent: %s",
                     txn, work_id, detail);
        break;
    case SM_MS_NOTIFY_DB_FAILED:
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, s,
                     SMLOGNO(02014) "delivery-complete queue unavailable, will retry: %s", detail);
        break;
    }
}

static apr_status_t stop_notifier(void *data)
{
    sm_ms_notifier_stop(data);
    return APR_SUCCESS;
}

static apr_status_t free_jwks(void *data)
{
    sm_jwks_cache_free(data);
    return APR_SUCCESS;
}

static apr_status_t free_tokens(void *data)
{
    sm_token_cache_free(data);
    return APR_SUCCESS;
}

static sm_https_tls tls_of(const ms_server_config *c)
{
    sm_https_tls tls = {
        .ca_pem = c->keyserver_ca_pem,
        .ca_len = c->keyserver_ca_len,
        .cert_pem = c->client_cert_pem,
        .cert_len = c->client_cert_len,
        .key_pem = c->client_key_pem ? (const char *)c->client_key_pem->bytes : NULL,
        .key_len = c->client_key_pem ? c->client_key_pem->len : 0,
    };
    return tls;
}

void ms_state_child_init(apr_pool_t *pchild, server_rec *s)
{
    states = apr_hash_make(pchild);
    for (server_rec *vs = s; vs != NULL; vs = vs->next) {
        ms_server_config *c = ms_server_conf(vs);
        if (!ms_config_in_use(c))
            continue;
        ms_child_state *st = apr_pcalloc(pchild, sizeof(*st));
        sm_error err;
        sm_https_tls tls = tls_of(c);
        st->db = smh_db_pool_child_init(pchild, vs, &c->db.cfg, SM_SCHEMA_MEDIASTORE);
        /* The JWKS comes from the key server's TLS endpoint; no client
         * certificate is needed for it. */
        sm_https_tls jwks_tls = {.ca_pem = tls.ca_pem, .ca_len = tls.ca_len};
        if (sm_jwks_cache_new(c->jwks_url, &jwks_tls, (int64_t)c->jwks_lifetime,
                              (int64_t)c->jwks_min_refresh, JWKS_TIMEOUT_MS, &st->jwks,
                              &err) != SM_OK)
            ap_log_error(APLOG_MARK, APLOG_ERR, 0, vs,
                         SMLOGNO(02001) "cannot set up the key set cache: %s", err.message);
        else
            apr_pool_cleanup_register(pchild, st->jwks, free_jwks, apr_pool_cleanup_null);
        /* A verified delivery token is remembered no longer than a
         * fetched key set is trusted. */
        if (sm_token_cache_new(TOKEN_CACHE_SLOTS, sizeof(sm_ks_delivery),
                               (int64_t)c->jwks_lifetime, &st->tokens, &err) == SM_OK)
            apr_pool_cleanup_register(pchild, st->tokens, free_tokens, apr_pool_cleanup_null);
        if (st->db != NULL) {
            sm_ms_notifier_config nc = {
                .url = apr_pstrcat(pchild, c->keyserver_url, "/v1/delivery-complete", NULL),
                .tls = tls,
                .retry_interval_s = (unsigned)c->notify_interval,
                .lease_s = NOTIFY_TIMEOUT_MS / 1000 * 3,
                .timeout_ms = NOTIFY_TIMEOUT_MS,
                .batch = 20,
                .log = notify_log,
                .log_ctx = vs,
            };
            /* Registered after the pool's cleanup, so it runs first: the
             * thread stops before the pool it uses goes away. */
            if (sm_ms_notifier_start(st->db, &nc, &st->notifier, &err) != SM_OK)
                ap_log_error(APLOG_MARK, APLOG_ERR, 0, vs,
                             SMLOGNO(02002) "cannot start the delivery-complete sender: %s",
                             err.message);
            else
                apr_pool_cleanup_register(pchild, st->notifier, stop_notifier,
                                          apr_pool_cleanup_null);
        }
        apr_hash_set(states, apr_pmemdup(pchild, &vs, sizeof(vs)), sizeof(vs), st);
    }
}

ms_child_state *ms_state(request_rec *r)
{
    server_rec *s = r->server;
    return states != NULL ? apr_hash_get(states, &s, sizeof(s)) : NULL;
}

const char *ms_storage_path(request_rec *r, const char *work_id, const char *suffix)
{
    return apr_pstrcat(r->pool, ms_server_conf(r->server)->storage_dir, "/", work_id, suffix,
                       NULL);
}

int ms_preview_name_ok(const char *work_id, const char *name)
{
    size_t w = strlen(work_id), p = strlen(MS_PREVIEW_SUFFIX);
    if (strncmp(name, work_id, w) != 0 || strncmp(name + w, MS_PREVIEW_SUFFIX, p) != 0)
        return 0;
    const char *rest = name + w + p;
    if (*rest == '\0')
        return 1;
    if (*rest++ != '-' || strlen(rest) != 16)
        return 0;
    for (; *rest != '\0'; rest++)
        if (!((*rest >= '0' && *rest <= '9') || (*rest >= 'a' && *rest <= 'f')))
            return 0;
    return 1;
}
