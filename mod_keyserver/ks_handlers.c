#include "config.h"

/* Request handlers: who may call (client-certificate role), read the JSON
 * body, call the store operation in common/sm_ks_store*.c, send its answer.
 * No business logic here. */

#include "smh_httpd.h"

#include <string.h>

#include <apr_atomic.h>
#include <http_log.h>
#include <http_protocol.h>

#include "keyserver.h"
#include "smh_body.h"
#include "smh_db.h"
#include "smh_identity.h"
#include "smh_json.h"
#include "smh_log.h"
#include "smh_problem.h"

/* Answers with a store outcome and releases it. */
static int send_outcome(request_rec *r, sm_status st, sm_ks_result *res, const char *what,
                        const sm_error *err)
{
    int rc;
    if (st != SM_OK) {
        if (res != NULL)
            sm_ks_result_clear(res);
        switch (st) {
        case SM_ERR_UNAVAILABLE:
        case SM_ERR_CONFLICT:
        case SM_ERR_DUPLICATE:
        case SM_ERR_DB: return smh_db_problem(r, what, err);
        default:
            ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, SMLOGNO(01002) "failed while %s: %s (%s)",
                          what, err->message, sm_status_name(st));
            return smh_problem_internal(r);
        }
    }
    if (res->status >= 400)
        rc = smh_problem_ext(r, res->status, res->slug, res->title, res->extensions, "%s",
                             res->detail);
    else if (res->status == HTTP_NO_CONTENT || res->body == NULL)
        rc = smh_send_no_content(r);
    else
        rc = smh_send_json(r, res->status, res->body);
    sm_ks_result_clear(res);
    return rc;
}

/* This child's state and the vhost configuration; answers 503 when the
 * module is not usable here. */
static ks_child_state *state_or_answer(request_rec *r, int *rc)
{
    ks_child_state *st = ks_state(r);
    if (st == NULL)
        *rc = smh_problem_unavailable(r, "the key server is not configured on this host");
    return st;
}

/* Role check + state. Returns NULL after answering. */
static ks_child_state *begin(request_rec *r, const char *role, sm_ks_caller *caller, int *rc)
{
    ks_server_config *c = ks_server_conf(r->server);
    memset(caller, 0, sizeof(*caller));
    if (role != NULL && (*rc = smh_require_role(r, c->roles, role, &caller->dn)) != OK)
        return NULL;
    return state_or_answer(r, rc);
}

/* begin() for endpoints an admin may use on anything and role on its own
 * objects; *is_admin says which the caller is. */
static ks_child_state *begin_admin_or(request_rec *r, const char *role, sm_ks_caller *caller,
                                      int *is_admin, int *rc)
{
    *is_admin = smh_client_has_role(r, ks_server_conf(r->server)->roles, KS_ROLE_ADMIN);
    return begin(r, *is_admin ? KS_ROLE_ADMIN : role, caller, rc);
}

static int read_body(request_rec *r, int large, const char *what, json_t **body)
{
    ks_server_config *c = ks_server_conf(r->server);
    return smh_read_json_body(r, (apr_size_t)(large ? c->max_work_body : c->max_body), NULL,
                              what, body);
}

/* The common shape: role, JSON body, operation, answer (keyserver.h). */
int ks_handle_body_op(request_rec *r, const smh_route_match *m, void *ctx)
{
    (void)ctx;
    const ks_body_route *route = m->data;
    sm_ks_caller caller;
    int rc = OK;
    ks_child_state *st = begin(r, route->role, &caller, &rc);
    if (st == NULL)
        return rc;
    json_t *body = NULL;
    if ((rc = read_body(r, route->large_body, route->what, &body)) != OK)
        return rc;
    sm_ks_result res;
    sm_error err = {0};
    sm_status s = route->op(&st->ctx, &caller, body, &res, &err);
    json_decref(body);
    return send_outcome(r, s, &res, route->what, &err);
}

/* ---- public keys ---------------------------------------------------------- */

static int send_public_json(request_rec *r, const char *json)
{
    ap_set_content_type(r, "application/json");
    /* Public and rotated rarely: caches may keep it a few minutes. */
    apr_table_setn(r->headers_out, "Cache-Control", "public, max-age=300");
    if (!r->header_only)
        ap_rputs(json, r);
    return OK;
}

int ks_handle_jwks(request_rec *r, const smh_route_match *m, void *ctx)
{
    (void)m;
    (void)ctx;
    sm_ks_caller caller;
    int rc = OK;
    ks_child_state *st = begin(r, NULL, &caller, &rc);
    if (st == NULL)
        return rc;
    sm_error err = {0};
    char *json = sm_ks_keys_jwks_json(st->ctx.keys, &err);
    if (json == NULL)
        return send_outcome(r, err.status ? err.status : SM_ERR_NOMEM, NULL, "publishing keys",
                            &err);
    rc = send_public_json(r, json);
    free(json);
    return rc;
}

int ks_handle_encryption_key(request_rec *r, const smh_route_match *m, void *ctx)
{
    (void)m;
    (void)ctx;
    sm_ks_caller caller;
    int rc = OK;
    ks_child_state *st = begin(r, NULL, &caller, &rc);
    if (st == NULL)
        return rc;
    sm_error err = {0};
    char *json = sm_ks_keys_encryption_jwk_json(st->ctx.keys, &err);
    if (json == NULL)
        return send_outcome(r, err.status ? err.status : SM_ERR_NOMEM, NULL,
                            "publishing the encryption key", &err);
    rc = send_public_json(r, json);
    sm_jwk_json_free(json);
    return rc;
}

/* ---- admin, owner, retailer ------------------------------------------------- */

int ks_handle_get_work(request_rec *r, const smh_route_match *m, void *ctx)
{
    (void)ctx;
    sm_ks_caller caller;
    int rc = OK;
    ks_child_state *st = begin(r, KS_ROLE_OWNER, &caller, &rc);
    if (st == NULL)
        return rc;
    sm_ks_result res;
    sm_error err = {0};
    sm_status s = sm_ks_get_work(&st->ctx, &caller, smh_route_param(m, "work_id"), &res, &err);
    return send_outcome(r, s, &res, "reading a work", &err);
}

int ks_handle_inventory(request_rec *r, const smh_route_match *m, void *ctx)
{
    (void)m;
    (void)ctx;
    sm_ks_caller caller;
    int rc = OK;
    ks_child_state *st = begin(r, KS_ROLE_RETAILER, &caller, &rc);
    if (st == NULL)
        return rc;
    sm_ks_result res;
    sm_error err = {0};
    sm_status s = sm_ks_inventory(&st->ctx, &caller, &res, &err);
    return send_outcome(r, s, &res, "listing the inventory", &err);
}

/* ---- device license ---------------------------------------------------------- */

/* Spent proof ids only matter while a proof could still be fresh; they
 * are purged every so many license requests per child. */
#define KS_PURGE_EVERY 1000u
static volatile apr_uint32_t licenses_since_purge;

static void purge_proofs_now_and_then(request_rec *r, const sm_ks_ctx *ctx)
{
    if (apr_atomic_inc32(&licenses_since_purge) % KS_PURGE_EVERY != KS_PURGE_EVERY - 1)
        return;
    uint64_t purged = 0;
    sm_error err = {0};
    if (sm_ks_purge_proofs(ctx, &purged, &err) == SM_OK)
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r,
                      SMLOGNO(01004) "purged %" APR_UINT64_T_FMT " spent device proof ids",
                      (apr_uint64_t)purged);
}

int ks_handle_license(request_rec *r, const smh_route_match *m, void *ctx)
{
    (void)m;
    (void)ctx;
    sm_ks_caller caller;
    int rc = OK;
    ks_child_state *st = begin(r, NULL, &caller, &rc);
    if (st == NULL)
        return rc;
    /* Devices call without a certificate; a retailer's license proxy
     * forwards the device's request with its own. */
    ks_server_config *c = ks_server_conf(r->server);
    if (smh_client_has_role(r, c->roles, KS_ROLE_RETAILER))
        caller.dn = smh_client_subject_dn(r);
    json_t *body = NULL;
    if ((rc = read_body(r, 0, "license request", &body)) != OK)
        return rc;
    sm_ks_result res;
    sm_error err = {0};
    sm_status s = sm_ks_issue_license(&st->ctx, &caller, body,
                                      apr_table_get(r->headers_in, "DPoP"), &res, &err);
    json_decref(body);
    purge_proofs_now_and_then(r, &st->ctx);
    if (s == SM_OK && res.status == HTTP_UNAUTHORIZED)
        apr_table_setn(r->err_headers_out, "WWW-Authenticate", "DPoP algs=\"ES256\"");
    return send_outcome(r, s, &res, "issuing a license", &err);
}

/* ---- media store, revocation -------------------------------------------------- */

int ks_handle_revoke(request_rec *r, const smh_route_match *m, void *ctx)
{
    (void)m;
    (void)ctx;
    /* An admin revokes anything; a retailer refunds its own sales. */
    sm_ks_caller caller;
    int rc = OK, is_admin = 0;
    ks_child_state *st = begin_admin_or(r, KS_ROLE_RETAILER, &caller, &is_admin, &rc);
    if (st == NULL)
        return rc;
    json_t *body = NULL;
    if ((rc = read_body(r, 0, "revocation", &body)) != OK)
        return rc;
    sm_ks_result res;
    sm_error err = {0};
    sm_status s = sm_ks_revoke(&st->ctx, &caller, is_admin, body, &res, &err);
    json_decref(body);
    return send_outcome(r, s, &res, "recording a revocation", &err);
}

/* ---- withdrawing a work, revoking a contract (owner or admin) --------------- */

typedef sm_status (*ks_takedown_op)(const sm_ks_ctx *ctx, const sm_ks_caller *caller,
                                    int is_admin, const char *id, json_t *body,
                                    sm_ks_result *out, sm_error *err);

static int handle_takedown(request_rec *r, const char *id, const char *what, ks_takedown_op op)
{
    /* An admin takes down anything; an owner its own works and contracts. */
    sm_ks_caller caller;
    int rc = OK, is_admin = 0;
    ks_child_state *st = begin_admin_or(r, KS_ROLE_OWNER, &caller, &is_admin, &rc);
    if (st == NULL)
        return rc;
    json_t *body = NULL;
    if ((rc = read_body(r, 0, what, &body)) != OK)
        return rc;
    sm_ks_result res;
    sm_error err = {0};
    sm_status s = op(&st->ctx, &caller, is_admin, id, body, &res, &err);
    json_decref(body);
    return send_outcome(r, s, &res, what, &err);
}

int ks_handle_withdraw_work(request_rec *r, const smh_route_match *m, void *ctx)
{
    (void)ctx;
    return handle_takedown(r, smh_route_param(m, "work_id"), "withdrawing a work",
                           sm_ks_withdraw_work);
}

int ks_handle_revoke_contract(request_rec *r, const smh_route_match *m, void *ctx)
{
    (void)ctx;
    return handle_takedown(r, smh_route_param(m, "contract_id"), "revoking a contract",
                           sm_ks_revoke_contract);
}

/* ---- ledger ----------------------------------------------------------------------- */

/* Ledger reads: admins and auditors. */
static ks_child_state *begin_ledger_reader(request_rec *r, int *rc)
{
    ks_server_config *c = ks_server_conf(r->server);
    sm_ks_caller caller;
    int auditor = smh_client_has_role(r, c->roles, KS_ROLE_AUDITOR);
    return begin(r, auditor ? KS_ROLE_AUDITOR : KS_ROLE_ADMIN, &caller, rc);
}

typedef struct export_writer {
    request_rec *r;
    int started;
} export_writer;

static int write_export(void *arg, const char *data, size_t len)
{
    export_writer *w = arg;
    if (!w->started) {
        ap_set_content_type(w->r, "application/jsonl; charset=utf-8");
        apr_table_setn(w->r->headers_out, "Cache-Control", "no-store");
        w->started = 1;
    }
    if (w->r->header_only)
        return 0;
    return ap_rwrite(data, (int)len, w->r) == (int)len ? 0 : -1;
}

int ks_handle_ledger_export(request_rec *r, const smh_route_match *m, void *ctx)
{
    (void)m;
    (void)ctx;
    int rc = OK;
    ks_child_state *st = begin_ledger_reader(r, &rc);
    if (st == NULL)
        return rc;
    export_writer w = {r, 0};
    sm_error err = {0};
    sm_status s = sm_ks_ledger_export(&st->ctx, write_export, &w, &err);
    if (s == SM_OK)
        return OK;
    if (!w.started)
        return send_outcome(r, s, NULL, "exporting the ledger", &err);
    /* Headers are out: cut the connection so the client sees a truncated
     * export (the verifier reports the missing end line). */
    ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r,
                  SMLOGNO(01003) "ledger export stopped: %s", err.message);
    r->connection->keepalive = AP_CONN_CLOSE;
    r->connection->aborted = 1;
    return OK;
}

int ks_handle_checkpoint_now(request_rec *r, const smh_route_match *m, void *ctx)
{
    (void)m;
    (void)ctx;
    sm_ks_caller caller;
    int rc = OK;
    ks_child_state *st = begin(r, KS_ROLE_ADMIN, &caller, &rc);
    if (st == NULL)
        return rc;
    smh_finish_request_body(r);
    sm_ks_result res;
    sm_error err = {0};
    sm_status s = sm_ks_checkpoint_now(&st->ctx, &res, &err);
    return send_outcome(r, s, &res, "signing a checkpoint", &err);
}

int ks_handle_latest_checkpoint(request_rec *r, const smh_route_match *m, void *ctx)
{
    (void)m;
    (void)ctx;
    ks_server_config *c = ks_server_conf(r->server);
    /* Anyone with a role here may keep checkpoints to audit later exports. */
    if (smh_client_subject_dn(r) == NULL ||
        !(smh_client_has_role(r, c->roles, KS_ROLE_ADMIN) ||
          smh_client_has_role(r, c->roles, KS_ROLE_AUDITOR) ||
          smh_client_has_role(r, c->roles, KS_ROLE_RETAILER) ||
          smh_client_has_role(r, c->roles, KS_ROLE_OWNER) ||
          smh_client_has_role(r, c->roles, KS_ROLE_MEDIASTORE)))
        return smh_require_role(r, c->roles, KS_ROLE_AUDITOR, NULL);
    sm_ks_caller caller;
    int rc = OK;
    ks_child_state *st = begin(r, NULL, &caller, &rc);
    if (st == NULL)
        return rc;
    sm_ks_result res;
    sm_error err = {0};
    sm_status s = sm_ks_latest_checkpoint(&st->ctx, &res, &err);
    return send_outcome(r, s, &res, "reading the latest checkpoint", &err);
}
