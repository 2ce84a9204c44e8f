/* What the parts of mod_keyserver share: the per-child state and the
 * request handlers the router in mod_keyserver.c calls. */
#ifndef KEYSERVER_H
#define KEYSERVER_H

#include "smh_httpd.h"

#include "ks_config.h"
#include "sm_ks_store.h"
#include "smh_route.h"

/* Per-child, per-virtual-host state, created in child_init. */
typedef struct ks_child_state {
    sm_ks_ctx ctx;          /* db NULL when the pool could not be created: 503 */
    sm_ks_kek *child_kek;   /* this child's copy of the KEK, in its locked memory */
    char *license_url;
} ks_child_state;

void ks_state_child_init(apr_pool_t *pchild, server_rec *s);
/* This child's state for r's virtual host, or NULL (then answer 503). */
ks_child_state *ks_state(request_rec *r);

/* Handlers (ks_handlers.c). */

/* Most endpoints have one shape: a caller in a role, a JSON body, an
 * operation, its answer. Their route's data is a ks_body_route and their
 * handler ks_handle_body_op. */
typedef sm_status (*ks_body_op)(const sm_ks_ctx *ctx, const sm_ks_caller *caller, json_t *body,
                                sm_ks_result *out, sm_error *err);
typedef struct ks_body_route {
    const char *role;
    int large_body;   /* the works limit (KeyServerMaxWorkBodySize) applies */
    const char *what; /* for messages: "registering an owner" */
    ks_body_op op;
} ks_body_route;
int ks_handle_body_op(request_rec *r, const smh_route_match *m, void *ctx);
int ks_handle_jwks(request_rec *r, const smh_route_match *m, void *ctx);
int ks_handle_encryption_key(request_rec *r, const smh_route_match *m, void *ctx);
int ks_handle_get_work(request_rec *r, const smh_route_match *m, void *ctx);
int ks_handle_inventory(request_rec *r, const smh_route_match *m, void *ctx);
int ks_handle_license(request_rec *r, const smh_route_match *m, void *ctx);
int ks_handle_revoke(request_rec *r, const smh_route_match *m, void *ctx);
int ks_handle_withdraw_work(request_rec *r, const smh_route_match *m, void *ctx);
int ks_handle_revoke_contract(request_rec *r, const smh_route_match *m, void *ctx);
int ks_handle_ledger_export(request_rec *r, const smh_route_match *m, void *ctx);
int ks_handle_checkpoint_now(request_rec *r, const smh_route_match *m, void *ctx);
int ks_handle_latest_checkpoint(request_rec *r, const smh_route_match *m, void *ctx);

#endif
