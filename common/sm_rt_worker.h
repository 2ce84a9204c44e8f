/* The retailer's background thread (one per httpd child and virtual
 * host, like the media store's delivery-complete sender): syncs the
 * catalog on a schedule (a database lease lets one child of one node do
 * it per interval), finishes orders whose payment outcome was unknown, and
 * when it starts and hourly deletes expired tokens and stale login counts. */
#ifndef SM_RT_WORKER_H
#define SM_RT_WORKER_H

#include "sm_error.h"
#include "sm_rt_store.h"

typedef void (*sm_rt_worker_log)(void *log_ctx, int is_error, const char *message);

typedef struct sm_rt_worker sm_rt_worker;

/* ctx is copied (its pointers must outlive the worker). sync_interval 0:
 * no scheduled sync. */
sm_status sm_rt_worker_start(const sm_rt_ctx *ctx, int64_t sync_interval,
                             int64_t resume_interval, sm_rt_worker_log log, void *log_ctx,
                             sm_rt_worker **out, sm_error *err);
void sm_rt_worker_stop(sm_rt_worker *w);

#endif
