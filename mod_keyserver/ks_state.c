#include "config.h"

#include "smh_httpd.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

#include <apr_hash.h>
#include <apr_strings.h>
#include <http_config.h>
#include <http_log.h>

#include "keyserver.h"
#include "sm_schema.h"
#include "smh_db.h"
#include "smh_log.h"
#include "sm_ks_tokens.h"

/* One state per virtual host that uses the module, in a child-private
 * table keyed by the server_rec (the configuration is shared read-only). */
static apr_hash_t *states;

static apr_status_t free_child_kek(void *data)
{
    sm_ks_kek_free(data);
    return APR_SUCCESS;
}

/* The KEK was read as root before the fork; locked pages are not inherited,
 * so each child copies it into its own locked memory. */
static sm_ks_kek *child_copy_of_kek(apr_pool_t *pchild, server_rec *s, const sm_ks_kek *kek)
{
    sm_secret *doc = NULL;
    sm_ks_kek *copy = NULL;
    sm_error err = {0};
    if (sm_ks_kek_serialize(kek, &doc, &err) != SM_OK ||
        sm_ks_kek_parse(doc->bytes, doc->len, "KEK", &copy, &err) != SM_OK) {
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, s,
                     SMLOGNO(01001) "cannot copy the KEK into this child's locked memory: %s",
                     err.message);
        sm_secret_free(doc);
        return NULL;
    }
    sm_secret_free(doc);
    apr_pool_cleanup_register(pchild, copy, free_child_kek, apr_pool_cleanup_null);
    return copy;
}

static apr_status_t free_voucher_cache(void *data)
{
    sm_ks_voucher_cache_free(data);
    return APR_SUCCESS;
}

/* ---- ledger sealer ----------------------------------------------------------
 * A license row is its queued ledger entry (FORMATS.md §7.5); one thread per
 * child and virtual host chains the queue every KS_SEAL_INTERVAL_MS. */

#define KS_SEAL_INTERVAL_MS 100

typedef struct ks_sealer {
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake; /* on CLOCK_MONOTONIC: a clock step never stalls it */
    atomic_int stop;     /* also read by sm_ks_ledger_seal between batches */
    const sm_ks_ctx *ctx;
    server_rec *s;
} ks_sealer;

/* While sealing keeps failing, SM01007 is repeated this often (with the
 * time it has been failing), so a long outage does not hide behind one
 * line. */
#define KS_SEAL_FAILING_RELOG_S 600

static void *sealer_main(void *arg)
{
    ks_sealer *k = arg;
    int failing = 0;
    time_t failing_since = 0, logged_at = 0;
    pthread_mutex_lock(&k->lock);
    while (!atomic_load(&k->stop)) {
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_nsec += KS_SEAL_INTERVAL_MS * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        while (!atomic_load(&k->stop) &&
               pthread_cond_timedwait(&k->wake, &k->lock, &until) != ETIMEDOUT) {
        }
        if (atomic_load(&k->stop))
            break;
        pthread_mutex_unlock(&k->lock);
        sm_error err = {0};
        uint64_t sealed = 0;
        if (sm_ks_ledger_seal(k->ctx, &k->stop, &sealed, &err) != SM_OK) {
            /* Queued entries stay queued and are chained once the database
             * answers again: say so when it starts, then now and then, not
             * every interval. */
            time_t now = time(NULL);
            if (!failing) {
                failing_since = now;
                logged_at = 0;
            }
            if (!failing || now - logged_at >= KS_SEAL_FAILING_RELOG_S) {
                ap_log_error(APLOG_MARK, APLOG_WARNING, 0, k->s,
                             SMLOGNO(01007) "ledger entries not chained for %" APR_INT64_T_FMT " s, will retry: "
                             "%s",
                             (apr_int64_t)(now - failing_since), err.message);
                logged_at = now;
            }
            failing = 1;
        } else if (failing) {
            ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, k->s,
                         SMLOGNO(01008) "ledger sealing works again");
            failing = 0;
        }
        pthread_mutex_lock(&k->lock);
    }
    pthread_mutex_unlock(&k->lock);
    return NULL;
}

/* Registered after the database pool's cleanup, so it runs first: the
 * thread is gone before the pool is. */
static apr_status_t stop_sealer(void *data)
{
    ks_sealer *k = data;
    pthread_mutex_lock(&k->lock);
    atomic_store(&k->stop, 1);
    pthread_cond_signal(&k->wake);
    pthread_mutex_unlock(&k->lock);
    pthread_join(k->thread, NULL);
    pthread_cond_destroy(&k->wake);
    pthread_mutex_destroy(&k->lock);
    return APR_SUCCESS;
}

static void start_sealer(apr_pool_t *pchild, server_rec *s, const sm_ks_ctx *ctx)
{
    ks_sealer *k = apr_pcalloc(pchild, sizeof(*k));
    k->ctx = ctx;
    k->s = s;
    atomic_init(&k->stop, 0);
    pthread_condattr_t monotonic;
    int rc = pthread_condattr_init(&monotonic);
    if (rc == 0) {
        if ((rc = pthread_condattr_setclock(&monotonic, CLOCK_MONOTONIC)) == 0 &&
            (rc = pthread_mutex_init(&k->lock, NULL)) == 0 &&
            (rc = pthread_cond_init(&k->wake, &monotonic)) != 0)
            pthread_mutex_destroy(&k->lock);
        pthread_condattr_destroy(&monotonic);
    }
    if (rc == 0 && (rc = pthread_create(&k->thread, NULL, sealer_main, k)) != 0) {
        pthread_cond_destroy(&k->wake);
        pthread_mutex_destroy(&k->lock);
    }
    if (rc != 0) {
        /* Entries then wait for the next checkpoint, export or
         * synchronous append, which seal first. */
        ap_log_error(APLOG_MARK, APLOG_ERR, rc, s,
                     SMLOGNO(01009) "no ledger sealer thread in this child");
        return;
    }
    apr_pool_cleanup_register(pchild, k, stop_sealer, apr_pool_cleanup_null);
}

/* A queued ledger row was chained as an unreadable-entry (FORMATS.md
 * §7.5): the ledger goes on, an administrator must look at the row. */
static void log_unreadable_entry(void *arg, const char *queue, uint64_t id, const char *problem)
{
    ap_log_error(APLOG_MARK, APLOG_ERR, 0, (server_rec *)arg,
                 SMLOGNO(01010) "queued ledger row %s.id=%" APR_UINT64_T_FMT " is unreadable (%s): chained as an "
                 "unreadable-entry; the row is kept, inspect it",
                 queue, (apr_uint64_t)id, problem);
}

/* Entries of each child's cache of verified vouchers (about 0.5 KiB each). */
#define KS_VOUCHER_CACHE_SLOTS 4096u

void ks_state_child_init(apr_pool_t *pchild, server_rec *s)
{
    states = apr_hash_make(pchild);
    for (server_rec *vs = s; vs != NULL; vs = vs->next) {
        ks_server_config *c = ks_server_conf(vs);
        if (!ks_config_in_use(c) || c->kek == NULL || c->keys == NULL)
            continue;
        ks_child_state *st = apr_pcalloc(pchild, sizeof(*st));
        sm_ks_ctx *ctx = &st->ctx;
        st->child_kek = child_copy_of_kek(pchild, vs, c->kek);
        st->license_url = apr_pstrcat(pchild, c->issuer, "/v1/license", NULL);
        ctx->db = smh_db_pool_child_init(pchild, vs, &c->db.cfg, SM_SCHEMA_KEYSERVER);
        ctx->keys = c->keys;
        ctx->kek = st->child_kek != NULL ? st->child_kek : c->kek;
        ctx->issuer = c->issuer;
        ctx->license_url = st->license_url;
        for (unsigned i = 0; i < c->n_media_stores; i++)
            ctx->media_stores[i] = c->media_stores[i];
        ctx->n_media_stores = c->n_media_stores;
        ctx->voucher_lifetime = (int64_t)c->voucher_lifetime;
        ctx->payment_ack_lifetime = (int64_t)c->payment_ack_lifetime;
        ctx->delivery_lifetime = (int64_t)c->delivery_lifetime;
        ctx->reservation_lifetime = (int64_t)c->reservation_lifetime;
        ctx->proof_max_age = (int64_t)c->proof_max_age;
        ctx->activation_limit = (uint32_t)c->activation_limit;
        ctx->checkpoint_every = c->checkpoint_every;
        ctx->unreadable_entry = log_unreadable_entry;
        ctx->unreadable_entry_arg = vs;
        sm_error cerr = {0};
        sm_ks_voucher_cache *vc = NULL;
        if (sm_ks_voucher_cache_new(KS_VOUCHER_CACHE_SLOTS, &vc, &cerr) == SM_OK) {
            ctx->voucher_cache = vc;
            apr_pool_cleanup_register(pchild, vc, free_voucher_cache, apr_pool_cleanup_null);
        } else {
            /* Not fatal: vouchers are then verified on every request. */
            ap_log_error(APLOG_MARK, APLOG_WARNING, 0, vs,
                         SMLOGNO(01006) "no voucher cache in this child: %s", cerr.message);
        }
        /* apr_hash keeps the key's address, not a copy: it must outlive
         * this loop. */
        server_rec **key = apr_palloc(pchild, sizeof(*key));
        *key = vs;
        apr_hash_set(states, key, sizeof(*key), st);
        if (ctx->db != NULL)
            start_sealer(pchild, vs, ctx);
        /* A fresh child clears proof ids nobody could replay any more; a
         * database that is down now is no reason to fail the child. */
        uint64_t purged = 0;
        sm_error err = {0};
        if (ctx->db != NULL && sm_ks_purge_proofs(ctx, &purged, &err) != SM_OK)
            ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, vs,
                         SMLOGNO(01005) "spent device proof ids not purged: %s", err.message);
    }
}

ks_child_state *ks_state(request_rec *r)
{
    server_rec *s = r->server;
    return states != NULL ? apr_hash_get(states, &s, sizeof(s)) : NULL;
}
