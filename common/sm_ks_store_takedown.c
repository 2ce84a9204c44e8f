#include "config.h"

/* Taking sales back: an owner (or an admin) withdraws a work or revokes a
 * contract. Both only set a time on the row; what follows from it is
 * already enforced where the row is read: reservations and the inventory
 * skip withdrawn works and revoked contracts, contract creation refuses a
 * withdrawn work, and a license is refused for a withdrawn work
 * (work-withdrawn) or a sale under a revoked contract (contract-invalid,
 * through transactions.terms_offered, which a trigger of schema version 6
 * keeps). Each is a ledger entry with the caller's reason, and idempotent:
 * the second call changes nothing and says so. */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sm_ks_store_int.h"

#define TAKEDOWN_REASON_MAX 500u

typedef struct takedown_args {
    const sm_ks_ctx *ctx;
    const sm_ks_caller *caller;
    int is_admin;
    const char *work_id;  /* a withdrawal */
    uint64_t contract_id; /* a contract revocation */
    const char *reason;
    sm_ks_result *out;
} takedown_args;

/* The acting party, "admin" or the caller's owner id, into by. */
static sm_status acting_owner(const takedown_args *a, sm_db_conn *c, char by[SM_KS_ID_SIZE],
                              sm_error *err)
{
    if (a->is_admin) {
        snprintf(by, SM_KS_ID_SIZE, "admin");
        return SM_OK;
    }
    sm_status st = ks_owner_by_dn(c, a->caller->dn, by, err);
    if (st == SM_ERR_NOT_FOUND)
        return ks_refuse_unregistered(a->out, "an owner");
    return st;
}

/* One row, locked FOR UPDATE: column 0 its owner, column 1 the takedown
 * time (NULL: none, *at = 0), column 2 (when retailer != NULL) its
 * retailer. *found = 0 when there is no such row. */
static sm_status read_locked(sm_db_conn *c, const char *sql, sm_db_param key,
                             char owner[SM_KS_ID_SIZE], char *retailer, int64_t *at, int *found,
                             sm_error *err)
{
    sm_db_rows *rows = NULL;
    *found = 0;
    *at = 0;
    sm_status st = sm_db_query(c, sql, &key, 1, &rows, err);
    if (st == SM_OK)
        st = sm_db_rows_next(rows, found, err);
    if (st == SM_OK && *found) {
        st = ks_col_copy(rows, 0, owner, SM_KS_ID_SIZE, err);
        if (st == SM_OK && retailer != NULL)
            st = ks_col_copy(rows, 2, retailer, SM_KS_ID_SIZE, err);
        if (st == SM_OK && sm_db_col_text(rows, 1, NULL) != NULL &&
            (st = sm_db_col_int(rows, 1, at, err)) == SM_OK && *at <= 0)
            st = sm_error_set(err, SM_ERR_DB, "a stored takedown time is damaged");
    }
    sm_db_rows_free(rows);
    return st;
}

/* The start of both takedowns: who acts (by: "admin" or the caller's
 * owner id), and the target row locked (sql, key: see read_locked), or a
 * 404 refusal naming it (noun, label) when it is not there or not the
 * caller's. */
static sm_status lock_target(sm_db_conn *c, takedown_args *a, const char *sql, sm_db_param key,
                             const char *noun, const char *label, char by[SM_KS_ID_SIZE],
                             char owner[SM_KS_ID_SIZE], char *retailer, int64_t *at,
                             sm_error *err)
{
    int found = 0;
    sm_ks_result_clear(a->out);
    sm_status st = acting_owner(a, c, by, err);
    if (st == SM_OK)
        st = read_locked(c, sql, key, owner, retailer, at, &found, err);
    if (st != SM_OK)
        return st;
    if (!found || (!a->is_admin && strcmp(owner, by) != 0))
        return ks_refuse_tx(a->out, 404, "not-found", "Not found", "%s no %s %s",
                            a->is_admin ? "there is" : "you have", noun, label);
    return SM_OK;
}

/* 201 with the new time, or 200 with the time of the earlier takedown. */
static sm_status answer(sm_ks_result *out, json_t *o, const char *time_name, int64_t at,
                        const char *flag_name, int already, sm_error *err)
{
    if (o == NULL || json_object_set_new(o, time_name, json_integer(at)) != 0 ||
        json_object_set_new(o, flag_name, json_boolean(already)) != 0) {
        json_decref(o);
        return sm_error_set(err, SM_ERR_NOMEM, "out of memory");
    }
    out->status = already ? 200 : 201;
    out->body = o;
    return SM_OK;
}

/* Sets the row's time (update: the statement, its parameters the time and
 * key) and appends the ledger entry (data, consumed; NULL: out of memory). */
static sm_status record_takedown(sm_db_conn *c, const sm_ks_ctx *ctx, const char *update,
                                 int64_t at, sm_db_param key, const char *type, json_t *data,
                                 sm_error *err)
{
    sm_status st = data == NULL ? sm_error_set(err, SM_ERR_NOMEM, "out of memory")
                                : sm_db_exec(c, update, SM_DB_PARAMS(sm_db_int(at), key), NULL,
                                             err);
    if (st == SM_OK)
        st = sm_ks_ledger_append(c, ctx, type, NULL, data, NULL, err);
    json_decref(data);
    return st;
}

static sm_status withdraw_work_tx(sm_db_conn *c, void *argp, sm_error *err)
{
    takedown_args *a = argp;
    char by[SM_KS_ID_SIZE], owner[SM_KS_ID_SIZE];
    int64_t at = 0;
    /* Locked: a contract being created for the work or a reservation of it
     * (both share-lock it) either commits first or sees the withdrawal. */
    sm_status st = lock_target(
        c, a, "SELECT owner_id, withdrawn_at FROM works WHERE work_id = ? FOR UPDATE",
        sm_db_text(a->work_id), "work", a->work_id, by, owner, NULL, &at, err);
    if (st != SM_OK)
        return st;
    int already = at != 0;
    if (!already) {
        at = sm_ks_now(a->ctx);
        st = record_takedown(c, a->ctx, "UPDATE works SET withdrawn_at = ? WHERE work_id = ?",
                             at, sm_db_text(a->work_id), "work-withdrawn",
                             json_pack("{s:s,s:s,s:s,s:s}", "work_id", a->work_id, "owner",
                                       owner, "reason", a->reason, "by", by),
                             err);
        if (st != SM_OK)
            return st;
    }
    return answer(a->out, json_pack("{s:s}", "work_id", a->work_id), "withdrawn_at", at,
                  "already_withdrawn", already, err);
}

static sm_status revoke_contract_tx(sm_db_conn *c, void *argp, sm_error *err)
{
    takedown_args *a = argp;
    char by[SM_KS_ID_SIZE], owner[SM_KS_ID_SIZE], retailer[SM_KS_ID_SIZE], label[24];
    int64_t at = 0;
    snprintf(label, sizeof(label), "%llu", (unsigned long long)a->contract_id);
    /* Locked: a reservation under the contract share-locks it, so it
     * either commits first (and its sale is marked by the trigger below) or
     * sees the revocation. */
    sm_status st = lock_target(c, a,
                               "SELECT owner_id, revoked_at, retailer_id FROM contracts "
                               "WHERE contract_id = ? FOR UPDATE",
                               sm_db_uint(a->contract_id), "contract", label, by, owner,
                               retailer, &at, err);
    if (st != SM_OK)
        return st;
    int already = at != 0;
    if (!already) {
        /* The trigger transactions_contract_revoked (schema version 6)
         * marks every sale under it in this statement. */
        at = sm_ks_now(a->ctx);
        st = record_takedown(c, a->ctx,
                             "UPDATE contracts SET revoked_at = ? WHERE contract_id = ?", at,
                             sm_db_uint(a->contract_id), "contract-revoked",
                             json_pack("{s:I,s:s,s:s,s:s,s:s}", "contract_id",
                                       (json_int_t)a->contract_id, "owner", owner, "retailer",
                                       retailer, "reason", a->reason, "by", by),
                             err);
        if (st != SM_OK)
            return st;
    }
    return answer(a->out,
                  json_pack("{s:I,s:s}", "contract_id", (json_int_t)a->contract_id,
                            "retailer_id", retailer),
                  "revoked_at", at, "already_revoked", already, err);
}

/* The body of both: {"reason"} and nothing else. */
static int read_reason(json_t *body, const char *what, const char **reason, sm_ks_result *out)
{
    static const sm_json_field fields[] = {{"reason", SM_JSON_STRING, 1},
                                           {NULL, SM_JSON_STRING, 0}};
    return ks_check_body(body, fields, what, out) &&
           ks_body_text(body, "reason", TAKEDOWN_REASON_MAX, 1, what, reason, out);
}

sm_status sm_ks_withdraw_work(const sm_ks_ctx *ctx, const sm_ks_caller *caller, int is_admin,
                              const char *work_id, json_t *body, sm_ks_result *out,
                              sm_error *err)
{
    takedown_args a = {ctx, caller, is_admin, work_id, 0, NULL, out};
    sm_error e = {0};
    sm_ks_result_init(out);
    if (work_id == NULL || sm_ks_validate_id(work_id, "work withdrawal: the work id", &e) != SM_OK)
        return sm_ks_refuse(out, 400, "invalid-request", "Invalid request", "%s", e.message);
    if (!read_reason(body, "work withdrawal", &a.reason, out))
        return SM_OK;
    return ks_run(ctx, withdraw_work_tx, &a, out, err);
}

/* A contract id in a URL: 1-19 decimal digits, no leading zero, at most
 * 2^63 - 1 (the column is a signed BIGINT). */
static int parse_contract_id(const char *s, uint64_t *id)
{
    size_t n = s != NULL ? strlen(s) : 0;
    if (n == 0 || n > 19 || s[0] == '0')
        return 0;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return 0;
        v = v * 10 + (uint64_t)(s[i] - '0'); /* 19 digits fit in 64 bits */
    }
    if (v > (uint64_t)INT64_MAX)
        return 0;
    *id = v;
    return 1;
}

sm_status sm_ks_revoke_contract(const sm_ks_ctx *ctx, const sm_ks_caller *caller, int is_admin,
                                const char *contract_id, json_t *body, sm_ks_result *out,
                                sm_error *err)
{
    takedown_args a = {ctx, caller, is_admin, NULL, 0, NULL, out};
    sm_ks_result_init(out);
    if (!parse_contract_id(contract_id, &a.contract_id))
        return sm_ks_refuse(out, 400, "invalid-request", "Invalid request",
                            "contract revocation: a contract id is a positive decimal number "
                            "without leading zeros, as POST /v1/contracts answered it");
    if (!read_reason(body, "contract revocation", &a.reason, out))
        return SM_OK;
    return ks_run(ctx, revoke_contract_tx, &a, out, err);
}
