/* What the parts of mod_mediastore share: the per-child state and the
 * request handlers the router in mod_mediastore.c calls. */
#ifndef MEDIASTORE_H
#define MEDIASTORE_H

#include "smh_httpd.h"

#include "sm_db.h"
#include "sm_jwks_cache.h"
#include "sm_ms_events.h"
#include "sm_token_cache.h"
#include "smh_route.h"

#define MS_CONTAINER_TYPE "application/vnd.secmedia.container"
#define MS_CONTAINER_SUFFIX ".smc"
#define MS_PREVIEW_SUFFIX ".preview"

/* Per child and virtual host, created in child_init. A NULL member means
 * it could not be created (logged then): requests needing it answer 503. */
typedef struct ms_child_state {
    sm_db_pool *db;
    sm_jwks_cache *jwks;
    sm_ms_notifier *notifier;
    sm_token_cache *tokens; /* delivery tokens already verified */
} ms_child_state;

void ms_state_child_init(apr_pool_t *pchild, server_rec *s);
/* This child's state for r's virtual host, or NULL. */
ms_child_state *ms_state(request_rec *r);

/* storage_dir/<work_id><suffix>; work_id must be validated already. */
const char *ms_storage_path(request_rec *r, const char *work_id, const char *suffix);

/* Whether name is a preview file name of work_id: <work_id>.preview (from
 * schema version 2) or <work_id>.preview-<16 lowercase hex digits>. What
 * the database says is checked before it becomes a path. */
int ms_preview_name_ok(const char *work_id, const char *name);

int ms_handle_upload_work(request_rec *r, const smh_route_match *m, void *ctx);
int ms_handle_upload_preview(request_rec *r, const smh_route_match *m, void *ctx);
int ms_handle_deliver(request_rec *r, const smh_route_match *m, void *ctx);
int ms_handle_preview(request_rec *r, const smh_route_match *m, void *ctx);

/* Delivery-complete: remember what r delivers, and the log_transaction
 * hook that records the event once the last byte went out. */
void ms_note_delivery(request_rec *r, const char *txn, const char *work_id, apr_off_t size);
void ms_register_delivery_hooks(apr_pool_t *p);

/* A 400 "invalid-work-id" problem when work_id is not a valid id; OK
 * otherwise. */
int ms_check_work_id(request_rec *r, const char *work_id);

#endif
