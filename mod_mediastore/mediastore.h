/* What the parts of mod_mediastore share: the per-child state and the
 * request handlers the router in mod_mediastore.c calls. */
#ifndef MEDIASTORE_H
#define MEDIASTORE_H

#include "smh_httpd.h"

#include "sm_db.h"
#include "smh_route.h"

/* Per-child state, created in child_init. */
typedef struct ms_child_state {
    sm_db_pool *db; /* NULL when the pool could not be created: answer 503 */
} ms_child_state;

void ms_state_child_init(apr_pool_t *pchild, server_rec *s);
/* This child's state for r's virtual host. */
ms_child_state *ms_state(request_rec *r);

int ms_handle_upload_work(request_rec *r, const smh_route_match *m, void *ctx);
int ms_handle_upload_preview(request_rec *r, const smh_route_match *m, void *ctx);
int ms_handle_deliver(request_rec *r, const smh_route_match *m, void *ctx);
int ms_handle_preview(request_rec *r, const smh_route_match *m, void *ctx);

/* Hooks of the delivery side (log_transaction for delivery-complete). */
void ms_register_delivery_hooks(apr_pool_t *p);

#endif
