#include "config.h"

#include "smh_httpd.h"

#include <string.h>

#include <apr_hash.h>
#include <apr_strings.h>
#include <http_config.h>
#include <http_log.h>

#include "retail.h"
#include "sm_schema.h"
#include "smh_db.h"
#include "smh_log.h"

/* Key server answers take at most this long (a reservation or payment
 * signs one token and commits one transaction). */
#define KS_TIMEOUT_MS 10000u

static apr_hash_t *states;

static apr_status_t free_ks(void *data)
{
    sm_rt_ks_free(data);
    return APR_SUCCESS;
}

static apr_status_t stop_worker(void *data)
{
    sm_rt_worker_stop(data);
    return APR_SUCCESS;
}

static void worker_log(void *log_ctx, int is_error, const char *message)
{
    server_rec *s = log_ctx;
    if (is_error)
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s, SMLOGNO(03003) "%s", message);
    else
        ap_log_error(APLOG_MARK, APLOG_INFO, 0, s, SMLOGNO(03004) "%s", message);
}

void rt_state_child_init(apr_pool_t *pchild, server_rec *s)
{
    states = apr_hash_make(pchild);
    for (server_rec *vs = s; vs != NULL; vs = vs->next) {
        rt_server_config *c = rt_server_conf(vs);
        if (!rt_config_in_use(c) || c->keyserver_url == NULL)
            continue;
        rt_child_state *st = apr_pcalloc(pchild, sizeof(*st));
        sm_rt_ctx *ctx = &st->ctx;
        st->server = vs;
        ctx->db = smh_db_pool_child_init(pchild, vs, &c->db.cfg, SM_SCHEMA_RETAIL);
        sm_https_tls tls = {c->ca_pem, c->ca_len, c->cert_pem, c->cert_len,
                            c->key_pem ? (const char *)c->key_pem->bytes : NULL,
                            c->key_pem ? c->key_pem->len : 0};
        sm_error err = {0};
        if (sm_rt_ks_new(c->keyserver_url, &tls, KS_TIMEOUT_MS, &ctx->ks, &err) != SM_OK)
            ap_log_error(APLOG_MARK, APLOG_ERR, 0, vs,
                         SMLOGNO(03001) "cannot set up the key server client: %s", err.message);
        else
            apr_pool_cleanup_register(pchild, ctx->ks, free_ks, apr_pool_cleanup_null);
        ctx->currency = c->currency;
        ctx->license_url = c->license_proxy
                               ? c->license_proxy_url
                               : apr_pstrcat(pchild, c->keyserver_url, "/v1/license", NULL);
        for (unsigned i = 0; i < c->n_media; i++)
            ctx->media_urls[i] = c->media_urls[i];
        ctx->n_media = c->n_media;
        ctx->token_lifetime = (int64_t)c->token_lifetime;
        ctx->login_window = (int64_t)c->login_window;
        ctx->login_max_account = (unsigned)c->login_max_account;
        ctx->login_max_address = (unsigned)c->login_max_address;
        ctx->scrypt_ln = (unsigned)c->password_cost;
        ctx->payments = c->payments;
        /* Registered after the pool's and the client's cleanups, so it
         * runs first: the thread stops before what it uses goes away. */
        if (ctx->db != NULL && ctx->ks != NULL) {
            if (sm_rt_worker_start(ctx, (int64_t)c->sync_interval, (int64_t)c->resume_interval,
                                   worker_log, vs, &st->worker, &err) != SM_OK)
                ap_log_error(APLOG_MARK, APLOG_ERR, 0, vs,
                             SMLOGNO(03002) "cannot start the background thread: %s",
                             err.message);
            else
                apr_pool_cleanup_register(pchild, st->worker, stop_worker,
                                          apr_pool_cleanup_null);
        }
        apr_hash_set(states, apr_pmemdup(pchild, &vs, sizeof(vs)), sizeof(vs), st);
    }
}

rt_child_state *rt_state(request_rec *r)
{
    server_rec *s = r->server;
    return states != NULL ? apr_hash_get(states, &s, sizeof(s)) : NULL;
}
