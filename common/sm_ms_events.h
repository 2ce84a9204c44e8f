/* Delivery-complete events of the media store: recorded in its database
 * when the last byte of a work went out for a transaction, then sent to
 * the key server (POST {key server}/v1/delivery-complete with
 * {"txn","work_id","delivered_at"}, answered 200 or 204) until it
 * acknowledges them. A 404 (unknown transaction) or 409 (transaction for
 * another work) is the key server's final word: the event is marked
 * rejected and not sent again. Anything else is retried. The database is the queue, so events survive
 * restarts; a sender claims due rows with a lease (owner + expiry), so
 * several processes or nodes can run senders without sending one row at
 * the same time. The key server must treat a repeat as success (a lease
 * can expire while a slow request is still under way). */
#ifndef SM_MS_EVENTS_H
#define SM_MS_EVENTS_H

#include <stdint.h>

#include "sm_db.h"
#include "sm_error.h"
#include "sm_https.h"

/* Records (txn, work_id) as delivered at delivered_at (Unix seconds).
 * Idempotent: a pair already recorded keeps its first time. */
sm_status sm_ms_event_record(sm_db_pool *db, const char *txn, const char *work_id,
                             int64_t delivered_at, sm_error *err);

/* What a sender reports (for the caller's log, which adds message ids). */
typedef enum sm_ms_notify_report {
    SM_MS_NOTIFY_SENT,      /* acknowledged by the key server */
    SM_MS_NOTIFY_RETRY,     /* key server unreachable or failed; will retry */
    SM_MS_NOTIFY_REJECTED,  /* refused for good (404, 409): kept, not resent */
    SM_MS_NOTIFY_DB_FAILED  /* the queue could not be read or updated */
} sm_ms_notify_report;

typedef void (*sm_ms_notify_log_fn)(void *ctx, sm_ms_notify_report what, const char *txn,
                                    const char *work_id, const char *detail);

typedef struct sm_ms_notifier_config {
    const char *url;            /* full endpoint URL */
    sm_https_tls tls;           /* key server CA, our client certificate */
    unsigned retry_interval_s;  /* delay before retrying a failed event */
    unsigned lease_s;           /* how long a claim lasts; > request timeout */
    unsigned timeout_ms;        /* per request */
    unsigned batch;             /* rows claimed per round */
    sm_ms_notify_log_fn log;    /* may be NULL */
    void *log_ctx;
} sm_ms_notifier_config;

/* One round: claims due rows for owner, sends each, records the outcome.
 * *sent (may be NULL) gets the number acknowledged, *due_left whether
 * claimable rows remain. */
sm_status sm_ms_notify_round(sm_db_pool *db, const sm_ms_notifier_config *cfg, const char *owner,
                             unsigned *sent, int *due_left, sm_error *err);

/* A background thread running rounds: at once when woken, otherwise every
 * retry_interval_s (sooner while due rows remain). */
typedef struct sm_ms_notifier sm_ms_notifier;

sm_status sm_ms_notifier_start(sm_db_pool *db, const sm_ms_notifier_config *cfg,
                               sm_ms_notifier **out, sm_error *err);
void sm_ms_notifier_wake(sm_ms_notifier *n);
/* For an event sm_ms_event_record could not store (database down): keeps
 * it in memory and records it from the thread once the database is back,
 * so a short outage loses nothing (a restart during one would). Returns 0
 * when the in-memory list is full (SM_MS_NOTIFIER_MAX_DEFERRED). */
#define SM_MS_NOTIFIER_MAX_DEFERRED 10000u
int sm_ms_notifier_defer(sm_ms_notifier *n, const char *txn, const char *work_id,
                         int64_t delivered_at);
/* Stops and joins the thread (waits for a request in flight, at most
 * timeout_ms); NULL is fine. */
void sm_ms_notifier_stop(sm_ms_notifier *n);

#endif
