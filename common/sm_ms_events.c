#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/rand.h>

#include "sm_ms_events.h"

/* Longest answer read from the key server. */
#define NOTIFY_MAX_RESPONSE 65536u
#define ID_BUF 65u
#define OWNER_BUF 65u

static int64_t unix_now(void)
{
    return (int64_t)time(NULL);
}

sm_status sm_ms_event_record(sm_db_pool *db, const char *txn, const char *work_id,
                             int64_t delivered_at, sm_error *err)
{
    sm_db_conn *c;
    sm_status st = sm_db_acquire(db, &c, err);
    if (st != SM_OK)
        return st;
    /* The unique (txn, work_id) key makes a repeat a no-op. */
    st = sm_db_exec(c,
                    "INSERT INTO delivery_events (txn, work_id, delivered_at, next_attempt_at) "
                    "VALUES (?, ?, ?, ?) ON DUPLICATE KEY UPDATE id = id",
                    SM_DB_PARAMS(sm_db_text(txn), sm_db_text(work_id), sm_db_int(delivered_at),
                                 sm_db_int(delivered_at)),
                    NULL, err);
    sm_db_release(c);
    return st;
}

typedef struct due_event {
    uint64_t id;
    char txn[ID_BUF];
    char work_id[ID_BUF];
    int64_t delivered_at;
} due_event;

static void report(const sm_ms_notifier_config *cfg, sm_ms_notify_report what, const char *txn,
                   const char *work_id, const char *detail)
{
    if (cfg->log != NULL)
        cfg->log(cfg->log_ctx, what, txn, work_id, detail);
}

/* Claims up to cfg->batch due rows and reads them back. */
static sm_status claim(sm_db_conn *c, const sm_ms_notifier_config *cfg, const char *owner,
                       due_event *events, unsigned *count, sm_error *err)
{
    *count = 0;
    int64_t now = unix_now();
    sm_status st = sm_db_exec(c,
                              "UPDATE delivery_events SET lease_owner = ?, lease_until = ? "
                              "WHERE acked_at IS NULL AND rejected_at IS NULL "
                              "AND next_attempt_at <= ? AND lease_until < ? "
                              "ORDER BY id LIMIT ?",
                              SM_DB_PARAMS(sm_db_text(owner), sm_db_int(now + cfg->lease_s),
                                           sm_db_int(now), sm_db_int(now),
                                           sm_db_uint(cfg->batch)),
                              NULL, err);
    if (st != SM_OK)
        return st;
    sm_db_rows *rows;
    st = sm_db_query(c,
                     "SELECT id, txn, work_id, delivered_at FROM delivery_events "
                     "WHERE lease_owner = ? AND acked_at IS NULL AND lease_until >= ? "
                     "ORDER BY id LIMIT ?",
                     SM_DB_PARAMS(sm_db_text(owner), sm_db_int(now), sm_db_uint(cfg->batch)),
                     &rows, err);
    if (st != SM_OK)
        return st;
    int has;
    while ((st = sm_db_rows_next(rows, &has, err)) == SM_OK && has && *count < cfg->batch) {
        due_event *e = &events[*count];
        const char *txn = sm_db_col_text(rows, 1, NULL);
        const char *work = sm_db_col_text(rows, 2, NULL);
        if (sm_db_col_uint(rows, 0, &e->id, err) != SM_OK ||
            sm_db_col_int(rows, 3, &e->delivered_at, err) != SM_OK || txn == NULL ||
            work == NULL || strlen(txn) >= ID_BUF || strlen(work) >= ID_BUF) {
            st = sm_error_set(err, SM_ERR_DB, "unexpected row in delivery_events");
            break;
        }
        memcpy(e->txn, txn, strlen(txn) + 1);
        memcpy(e->work_id, work, strlen(work) + 1);
        (*count)++;
    }
    sm_db_rows_free(rows);
    return st;
}

/* POSTs one event; SM_OK only for a 200 or 204 answer. */
static sm_status send_event(const sm_ms_notifier_config *cfg, const due_event *e, sm_error *err)
{
    json_t *doc = json_pack("{s:s,s:s,s:I}", "txn", e->txn, "work_id", e->work_id,
                            "delivered_at", (json_int_t)e->delivered_at);
    char *body = doc != NULL ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    if (body == NULL)
        return sm_error_set(err, SM_ERR_NOMEM, "out of memory");
    sm_https_response resp;
    sm_status st = sm_https_request("POST", cfg->url, &cfg->tls, "application/json", body,
                                    strlen(body), NOTIFY_MAX_RESPONSE, cfg->timeout_ms, &resp, err);
    free(body);
    if (st != SM_OK)
        return st;
    if (resp.status == 404 || resp.status == 409)
        st = sm_error_set(err, SM_ERR_CLAIM, "%s refused it for good (HTTP %ld): %.200s",
                          cfg->url, resp.status, resp.body);
    else if (resp.status != 200 && resp.status != 204)
        st = sm_error_set(err, SM_ERR_UNAVAILABLE, "%s answered HTTP %ld: %.200s", cfg->url,
                          resp.status, resp.body);
    sm_https_response_free(&resp);
    return st;
}

sm_status sm_ms_notify_round(sm_db_pool *db, const sm_ms_notifier_config *cfg, const char *owner,
                             unsigned *sent, int *due_left, sm_error *err)
{
    if (sent != NULL)
        *sent = 0;
    if (due_left != NULL)
        *due_left = 0;
    due_event *events = calloc(cfg->batch, sizeof(*events));
    if (events == NULL)
        return sm_error_set(err, SM_ERR_NOMEM, "out of memory");
    sm_db_conn *c;
    unsigned count = 0;
    sm_status st = sm_db_acquire(db, &c, err);
    if (st == SM_OK) {
        st = claim(c, cfg, owner, events, &count, err);
        /* No connection is held while talking to the key server. */
        sm_db_release(c);
    }
    if (st != SM_OK) {
        free(events);
        return st;
    }
    for (unsigned i = 0; i < count; i++) {
        const due_event *e = &events[i];
        sm_error serr;
        sm_error_clear(&serr);
        sm_status sst = send_event(cfg, e, &serr);
        int64_t now = unix_now();
        sm_error dberr;
        sm_status dst = sm_db_acquire(db, &c, &dberr);
        if (dst == SM_OK) {
            if (sst == SM_OK)
                dst = sm_db_exec(c,
                                 "UPDATE delivery_events SET acked_at = ?, lease_owner = NULL, "
                                 "lease_until = 0, attempts = attempts + 1, last_error = NULL "
                                 "WHERE id = ? AND lease_owner = ?",
                                 SM_DB_PARAMS(sm_db_int(now), sm_db_uint(e->id),
                                              sm_db_text(owner)),
                                 NULL, &dberr);
            else if (sst == SM_ERR_CLAIM)
                dst = sm_db_exec(c,
                                 "UPDATE delivery_events SET rejected_at = ?, lease_owner = NULL, "
                                 "lease_until = 0, attempts = attempts + 1, "
                                 "last_error = LEFT(?, 255) WHERE id = ? AND lease_owner = ?",
                                 SM_DB_PARAMS(sm_db_int(now), sm_db_text(serr.message),
                                              sm_db_uint(e->id), sm_db_text(owner)),
                                 NULL, &dberr);
            else
                dst = sm_db_exec(c,
                                 "UPDATE delivery_events SET next_attempt_at = ?, "
                                 "lease_owner = NULL, lease_until = 0, "
                                 "attempts = attempts + 1, last_error = LEFT(?, 255) "
                                 "WHERE id = ? AND lease_owner = ?",
                                 SM_DB_PARAMS(sm_db_int(now + cfg->retry_interval_s),
                                              sm_db_text(serr.message), sm_db_uint(e->id),
                                              sm_db_text(owner)),
                                 NULL, &dberr);
            sm_db_release(c);
        }
        if (sst == SM_OK) {
            if (sent != NULL)
                (*sent)++;
            report(cfg, SM_MS_NOTIFY_SENT, e->txn, e->work_id, "acknowledged");
        } else {
            report(cfg, sst == SM_ERR_CLAIM ? SM_MS_NOTIFY_REJECTED : SM_MS_NOTIFY_RETRY,
                   e->txn, e->work_id, serr.message);
        }
        if (dst != SM_OK) {
            /* The lease expires and the row is sent again: harmless. */
            report(cfg, SM_MS_NOTIFY_DB_FAILED, e->txn, e->work_id, dberr.message);
        }
    }
    free(events);
    if (due_left != NULL)
        *due_left = count == cfg->batch;
    return SM_OK;
}

/* --- the thread --------------------------------------------------------------- */

typedef struct deferred_event {
    struct deferred_event *next;
    char txn[ID_BUF];
    char work_id[ID_BUF];
    int64_t delivered_at;
} deferred_event;

struct sm_ms_notifier {
    deferred_event *deferred; /* under lock */
    unsigned deferred_count;
    sm_db_pool *db;
    sm_ms_notifier_config cfg;
    char *url;
    char owner[OWNER_BUF];
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int stop;
    int woken;
};

/* Stores the deferred events; those that still fail go back on the list. */
static void record_deferred(sm_ms_notifier *n)
{
    pthread_mutex_lock(&n->lock);
    deferred_event *list = n->deferred;
    n->deferred = NULL;
    n->deferred_count = 0;
    pthread_mutex_unlock(&n->lock);
    while (list != NULL) {
        deferred_event *e = list;
        list = e->next;
        sm_error err;
        if (sm_ms_event_record(n->db, e->txn, e->work_id, e->delivered_at, &err) == SM_OK) {
            free(e);
            continue;
        }
        pthread_mutex_lock(&n->lock);
        e->next = n->deferred;
        n->deferred = e;
        n->deferred_count++;
        pthread_mutex_unlock(&n->lock);
    }
}

int sm_ms_notifier_defer(sm_ms_notifier *n, const char *txn, const char *work_id,
                         int64_t delivered_at)
{
    if (n == NULL || strlen(txn) >= ID_BUF || strlen(work_id) >= ID_BUF)
        return 0;
    deferred_event *e = calloc(1, sizeof(*e));
    if (e == NULL)
        return 0;
    memcpy(e->txn, txn, strlen(txn) + 1);
    memcpy(e->work_id, work_id, strlen(work_id) + 1);
    e->delivered_at = delivered_at;
    pthread_mutex_lock(&n->lock);
    int ok = n->deferred_count < SM_MS_NOTIFIER_MAX_DEFERRED;
    if (ok) {
        e->next = n->deferred;
        n->deferred = e;
        n->deferred_count++;
    }
    pthread_mutex_unlock(&n->lock);
    if (!ok)
        free(e);
    return ok;
}

static void *notifier_main(void *arg)
{
    sm_ms_notifier *n = arg;
    pthread_mutex_lock(&n->lock);
    while (!n->stop) {
        n->woken = 0;
        pthread_mutex_unlock(&n->lock);
        record_deferred(n);
        sm_error err;
        sm_error_clear(&err);
        int due_left = 0;
        if (sm_ms_notify_round(n->db, &n->cfg, n->owner, NULL, &due_left, &err) != SM_OK)
            report(&n->cfg, SM_MS_NOTIFY_DB_FAILED, "", "", err.message);
        pthread_mutex_lock(&n->lock);
        if (n->stop || n->woken || due_left)
            continue;
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += n->cfg.retry_interval_s;
        while (!n->stop && !n->woken &&
               pthread_cond_timedwait(&n->cond, &n->lock, &until) != ETIMEDOUT) {
        }
    }
    pthread_mutex_unlock(&n->lock);
    return NULL;
}

sm_status sm_ms_notifier_start(sm_db_pool *db, const sm_ms_notifier_config *cfg,
                               sm_ms_notifier **out, sm_error *err)
{
    *out = NULL;
    sm_status st = sm_https_global_init(err);
    if (st != SM_OK)
        return st;
    sm_ms_notifier *n = calloc(1, sizeof(*n));
    if (n == NULL)
        return sm_error_set(err, SM_ERR_NOMEM, "out of memory");
    n->db = db;
    n->cfg = *cfg;
    n->url = strdup(cfg->url);
    n->cfg.url = n->url;
    if (n->cfg.batch == 0)
        n->cfg.batch = 20;
    /* Unique per process: host name, pid and randomness. */
    char host[32] = "";
    unsigned char rnd[4] = {0};
    gethostname(host, sizeof(host) - 1);
    (void)RAND_bytes(rnd, sizeof(rnd));
    snprintf(n->owner, sizeof(n->owner), "%.31s:%ld:%02x%02x%02x%02x", host, (long)getpid(),
             rnd[0], rnd[1], rnd[2], rnd[3]);
    pthread_mutex_init(&n->lock, NULL);
    pthread_cond_init(&n->cond, NULL);
    if (n->url == NULL || pthread_create(&n->thread, NULL, notifier_main, n) != 0) {
        pthread_mutex_destroy(&n->lock);
        pthread_cond_destroy(&n->cond);
        free(n->url);
        free(n);
        return sm_error_set(err, SM_ERR_STATE, "cannot start the delivery-complete sender");
    }
    *out = n;
    return SM_OK;
}

void sm_ms_notifier_wake(sm_ms_notifier *n)
{
    if (n == NULL)
        return;
    pthread_mutex_lock(&n->lock);
    n->woken = 1;
    pthread_cond_signal(&n->cond);
    pthread_mutex_unlock(&n->lock);
}

void sm_ms_notifier_stop(sm_ms_notifier *n)
{
    if (n == NULL)
        return;
    pthread_mutex_lock(&n->lock);
    n->stop = 1;
    pthread_cond_signal(&n->cond);
    pthread_mutex_unlock(&n->lock);
    pthread_join(n->thread, NULL);
    while (n->deferred != NULL) {
        deferred_event *e = n->deferred;
        n->deferred = e->next;
        report(&n->cfg, SM_MS_NOTIFY_DB_FAILED, e->txn, e->work_id,
               "delivery-complete lost: the database stayed unreachable until shutdown");
        free(e);
    }
    pthread_mutex_destroy(&n->lock);
    pthread_cond_destroy(&n->cond);
    free(n->url);
    free(n);
}
