#include "config.h"

/* Background sync, order resumption and purging of expired tokens
 * (sm_rt_worker.h). */

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sm_rt_worker.h"

struct sm_rt_worker {
    sm_rt_ctx ctx;
    int64_t sync_interval, resume_interval;
    sm_rt_worker_log log;
    void *log_ctx;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int stop;
};

#define PURGE_INTERVAL 3600

static void round_once(sm_rt_worker *w, int64_t *next_sync, int64_t *next_resume,
                       int64_t *next_purge)
{
    int64_t now = (int64_t)time(NULL);
    char msg[600];
    sm_error err = {0};
    if (now >= *next_purge) {
        uint64_t purged = 0;
        if (sm_rt_purge_expired(&w->ctx, &purged, &err) != SM_OK) {
            snprintf(msg, sizeof(msg), "purging expired tokens failed: %s", err.message);
            w->log(w->log_ctx, 1, msg);
        } else if (purged > 0) {
            snprintf(msg, sizeof(msg), "purged %llu expired tokens and login counts",
                     (unsigned long long)purged);
            w->log(w->log_ctx, 0, msg);
        }
        *next_purge = now + PURGE_INTERVAL;
    }
    if (w->sync_interval > 0 && now >= *next_sync) {
        int ran = 0;
        if (sm_rt_catalog_sync_if_due(&w->ctx, w->sync_interval, &ran, &err) != SM_OK) {
            snprintf(msg, sizeof(msg), "scheduled catalog sync failed: %s", err.message);
            w->log(w->log_ctx, 1, msg);
        } else if (ran) {
            w->log(w->log_ctx, 0, "scheduled catalog sync done");
        }
        /* Look again well within the interval: another child or node may
         * hold the lease this time. */
        *next_sync = now + (w->sync_interval < 60 ? w->sync_interval : 60);
    }
    if (w->resume_interval > 0 && now >= *next_resume) {
        unsigned done = 0;
        if (sm_rt_orders_resume(&w->ctx, w->resume_interval, 50, &done, &err) != SM_OK) {
            snprintf(msg, sizeof(msg), "resuming orders failed: %s", err.message);
            w->log(w->log_ctx, 1, msg);
        } else if (done > 0) {
            snprintf(msg, sizeof(msg), "finished %u orders whose payment was pending", done);
            w->log(w->log_ctx, 0, msg);
        }
        *next_resume = now + w->resume_interval;
    }
}

static void *worker_main(void *arg)
{
    sm_rt_worker *w = arg;
    /* Housekeeping first, when the child starts, then hourly. */
    int64_t next_sync = (int64_t)time(NULL) + 1, next_resume = next_sync, next_purge = 0;
    pthread_mutex_lock(&w->lock);
    while (!w->stop) {
        pthread_mutex_unlock(&w->lock);
        round_once(w, &next_sync, &next_resume, &next_purge);
        pthread_mutex_lock(&w->lock);
        if (w->stop)
            break;
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += 1;
        while (!w->stop && pthread_cond_timedwait(&w->cond, &w->lock, &until) != ETIMEDOUT)
            ;
    }
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

sm_status sm_rt_worker_start(const sm_rt_ctx *ctx, int64_t sync_interval,
                             int64_t resume_interval, sm_rt_worker_log log, void *log_ctx,
                             sm_rt_worker **out, sm_error *err)
{
    *out = NULL;
    sm_rt_worker *w = calloc(1, sizeof(*w));
    if (w == NULL)
        return sm_error_set(err, SM_ERR_NOMEM, "out of memory");
    w->ctx = *ctx;
    w->sync_interval = sync_interval;
    w->resume_interval = resume_interval;
    w->log = log;
    w->log_ctx = log_ctx;
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->cond, NULL);
    if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
        pthread_mutex_destroy(&w->lock);
        pthread_cond_destroy(&w->cond);
        free(w);
        return sm_error_set(err, SM_ERR_STATE, "cannot start the retail background thread");
    }
    *out = w;
    return SM_OK;
}

void sm_rt_worker_stop(sm_rt_worker *w)
{
    if (w == NULL)
        return;
    pthread_mutex_lock(&w->lock);
    w->stop = 1;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
    pthread_join(w->thread, NULL);
    pthread_mutex_destroy(&w->lock);
    pthread_cond_destroy(&w->cond);
    free(w);
}
