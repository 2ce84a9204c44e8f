#include "config.h"

/* Reservations, payments, delivery-complete and revocations
 * (sm_ks_store.h). Every one is idempotent: a retried request gets the
 * first answer back and leaves the ledger as it was. */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sm_ks_store_int.h"
#include "sm_ks_tokens.h"

#define REF_MAX 128u
#define REASON_MAX 500u

static int check_jkt_syntax(const char *jkt)
{
    if (jkt == NULL || strlen(jkt) != SM_JKT_SIZE - 1)
        return 0;
    for (const char *p = jkt; *p; p++)
        if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
              *p == '-' || *p == '_'))
            return 0;
    return 1;
}

/* ---- reservation ------------------------------------------------------------- */

typedef struct reserve_args {
    const sm_ks_ctx *ctx;
    const sm_ks_caller *caller;
    const char *ref, *work_id, *jkt;
    sm_ks_terms terms;
    uint64_t contract_id; /* 0 = any */
    sm_ks_result *out;
} reserve_args;

static json_t *reservation_body(const char *txn, const char *voucher, const char *work_id,
                                const sm_ks_terms *t, int64_t price, const char *currency,
                                int64_t pay_by, int64_t contract_id)
{
    json_t *terms = sm_ks_terms_to_json(t);
    if (terms == NULL)
        return NULL;
    return json_pack("{s:s,s:s,s:s,s:o,s:I,s:s,s:I,s:I}", "txn", txn, "voucher", voucher,
                     "work_id", work_id, "license", terms, "price", (json_int_t)price,
                     "currency", currency, "pay_by", (json_int_t)pay_by, "contract_id",
                     (json_int_t)contract_id);
}

#define REPEAT_SELECT                                                                            \
    "SELECT txn, work_id, license_type, duration, jkt, voucher, price, currency, pay_by, "       \
    "contract_id FROM transactions WHERE retailer_id = ? AND reservation_ref = ?"

/* A repeat of an earlier reservation with the same reference. locking: a
 * locking read, which sees the row a concurrent request committed after
 * this transaction's snapshot was taken. */
static sm_status reservation_repeat(sm_db_conn *c, reserve_args *a, const char *retailer,
                                    int locking, int *found, sm_error *err)
{
    sm_db_rows *rows = NULL;
    int has = 0;
    *found = 0;
    sm_status st = sm_db_query(c, locking ? REPEAT_SELECT " LOCK IN SHARE MODE" : REPEAT_SELECT,
                               SM_DB_PARAMS(sm_db_text(retailer), sm_db_text(a->ref)), &rows, err);
    if (st == SM_OK)
        st = sm_db_rows_next(rows, &has, err);
    if (st == SM_OK && has) {
        int64_t duration = 0, price = 0, pay_by = 0, contract_id = 0;
        sm_ks_terms t;
        const char *work = sm_db_col_text(rows, 1, NULL), *jkt = sm_db_col_text(rows, 4, NULL);
        if ((st = sm_db_col_int(rows, 3, &duration, err)) == SM_OK &&
            (st = sm_db_col_int(rows, 6, &price, err)) == SM_OK &&
            (st = sm_db_col_int(rows, 8, &pay_by, err)) == SM_OK &&
            (st = sm_db_col_int(rows, 9, &contract_id, err)) == SM_OK &&
            (st = ks_terms_from_columns(sm_db_col_text(rows, 2, NULL), duration, &t, err)) ==
                SM_OK) {
            *found = 1;
            if (work == NULL || jkt == NULL || strcmp(work, a->work_id) != 0 ||
                strcmp(jkt, a->jkt) != 0 || !sm_ks_terms_equal(&t, &a->terms) ||
                (a->contract_id != 0 && (uint64_t)contract_id != a->contract_id)) {
                st = ks_refuse_tx(a->out, 409, "idempotency-key-reused", "Reference reused",
                                  "reservation_ref %s was already used for another reservation; "
                                  "use a new reference for a new sale",
                                  a->ref);
            } else {
                a->out->status = 200;
                a->out->body = reservation_body(
                    sm_db_col_text(rows, 0, NULL), sm_db_col_text(rows, 5, NULL), work, &t, price,
                    sm_db_col_text(rows, 7, NULL), pay_by, contract_id);
                if (a->out->body == NULL)
                    st = sm_error_set(err, SM_ERR_NOMEM, "out of memory");
            }
        }
    }
    sm_db_rows_free(rows);
    return st;
}

/* Why the contract query found nothing: the caller is no registered
 * retailer, or this is a repeat (answered as the first time, even if the
 * contract ended since), or there is no contract for it. */
static sm_status reserve_diagnose(sm_db_conn *c, reserve_args *a, sm_error *err)
{
    char retailer[SM_KS_ID_SIZE];
    sm_status st = ks_retailer_by_dn(c, a->caller->dn, retailer, NULL, err);
    if (st == SM_ERR_NOT_FOUND)
        return ks_refuse_unregistered(a->out, "a retailer");
    if (st != SM_OK)
        return st;
    int found = 0;
    if ((st = reservation_repeat(c, a, retailer, 0, &found, err)) != SM_OK || found)
        return st;
    return ks_refuse_tx(a->out, 403, "no-contract", "No contract",
                        "no active contract lets retailer %s sell work %s under these "
                        "license terms (see GET /v1/inventory)",
                        retailer, a->work_id);
}

/* The common case first: the caller's registered retailer id and the
 * contract in one query, then the insert; a repeat of a reservation is
 * told by the insert's duplicate reference (or, when no contract matches
 * any more, by reserve_diagnose). */
static sm_status reserve_tx(sm_db_conn *c, void *argp, sm_error *err)
{
    reserve_args *a = argp;
    char retailer[SM_KS_ID_SIZE] = "";
    sm_ks_result_clear(a->out);
    if (a->caller->dn == NULL)
        return ks_refuse_unregistered(a->out, "a retailer");
    uint8_t dn_hash[32];
    sm_ks_dn_hash(a->caller->dn, dn_hash);

    int64_t now = sm_ks_now(a->ctx);
    sm_db_rows *rows = NULL;
    int has = 0;
    /* The newest active contract that offers these terms for this work;
     * shared locks keep it (and the work, and the retailer the new row
     * refers to) from changing until commit. */
    sm_status st = sm_db_query(
        c,
        "SELECT k.contract_id, k.currency, o.price, r.retailer_id FROM retailers r "
        "JOIN contracts k ON k.retailer_id = r.retailer_id "
        "JOIN contract_works cw ON cw.contract_id = k.contract_id "
        "JOIN works w ON w.work_id = cw.work_id "
        "JOIN contract_offers o ON o.contract_id = k.contract_id "
        "WHERE r.dn_sha256 = ? AND cw.work_id = ? AND o.license_type = ? AND o.duration = ? "
        "AND k.revoked_at IS NULL AND k.valid_from <= ? AND k.valid_until > ? "
        "AND w.withdrawn_at IS NULL AND (? = 0 OR k.contract_id = ?) "
        "ORDER BY k.contract_id DESC LIMIT 1 LOCK IN SHARE MODE",
        SM_DB_PARAMS(sm_db_blob(dn_hash, sizeof(dn_hash)), sm_db_text(a->work_id),
                     sm_db_text(ks_terms_type_column(&a->terms)), sm_db_int(a->terms.duration),
                     sm_db_int(now), sm_db_int(now), sm_db_uint(a->contract_id),
                     sm_db_uint(a->contract_id)),
        &rows, err);
    if (st == SM_OK)
        st = sm_db_rows_next(rows, &has, err);
    int64_t contract_id = 0, price = 0;
    char currency[4] = "";
    if (st == SM_OK && has && (st = sm_db_col_int(rows, 0, &contract_id, err)) == SM_OK &&
        (st = ks_col_copy(rows, 1, currency, sizeof(currency), err)) == SM_OK &&
        (st = sm_db_col_int(rows, 2, &price, err)) == SM_OK)
        st = ks_col_copy(rows, 3, retailer, sizeof(retailer), err);
    sm_db_rows_free(rows);
    if (st != SM_OK)
        return st;
    if (!has)
        return reserve_diagnose(c, a, err);

    sm_ks_voucher v;
    memset(&v, 0, sizeof(v));
    if ((st = sm_ks_new_txn_id(v.txn, err)) != SM_OK)
        return st;
    snprintf(v.work_id, sizeof(v.work_id), "%s", a->work_id);
    snprintf(v.retailer, sizeof(v.retailer), "%s", retailer);
    snprintf(v.jkt, sizeof(v.jkt), "%s", a->jkt);
    v.terms = a->terms;
    char *voucher = NULL;
    if ((st = sm_ks_voucher_issue(a->ctx->keys, a->ctx->issuer, &v, now,
                                  a->ctx->voucher_lifetime, &voucher, err)) != SM_OK)
        return st;
    int64_t pay_by = now + a->ctx->reservation_lifetime;
    st = sm_db_exec(c,
                    "INSERT INTO transactions (txn, retailer_id, reservation_ref, work_id, "
                    "contract_id, license_type, duration, price, currency, jkt, voucher, "
                    "reserved_at, pay_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    SM_DB_PARAMS(sm_db_text(v.txn), sm_db_text(retailer), sm_db_text(a->ref),
                                 sm_db_text(a->work_id), sm_db_int(contract_id),
                                 sm_db_text(ks_terms_type_column(&a->terms)),
                                 sm_db_int(a->terms.duration), sm_db_int(price),
                                 sm_db_text(currency), sm_db_text(a->jkt), sm_db_text(voucher),
                                 sm_db_int(now), sm_db_int(pay_by)),
                    NULL, err);
    /* The reference was used: a repeat (answered as the first time) or a
     * reuse for another sale. The row is committed (the duplicate check
     * waits for its writer), and the locking read sees it; only the failed
     * insert was undone. Not found after all: run again. */
    if (st == SM_ERR_DUPLICATE) {
        int found = 0;
        free(voucher);
        st = reservation_repeat(c, a, retailer, 1, &found, err);
        if (st == SM_OK && !found)
            st = sm_error_set(err, SM_ERR_CONFLICT,
                              "concurrent reservation with the same reference");
        return st;
    }
    json_t *data = NULL;
    if (st == SM_OK) {
        data = json_pack("{s:s,s:s,s:s,s:I,s:s,s:I,s:I,s:s,s:s}", "txn", v.txn, "work_id",
                         a->work_id, "retailer", retailer, "contract_id", (json_int_t)contract_id,
                         "license", ks_terms_type_column(&a->terms), "duration",
                         (json_int_t)a->terms.duration, "price", (json_int_t)price, "currency",
                         currency, "jkt", a->jkt);
        st = data != NULL ? sm_ks_ledger_enqueue(c, a->ctx, "reservation", v.txn, data, err)
                          : sm_error_set(err, SM_ERR_NOMEM, "out of memory");
        json_decref(data);
    }
    if (st == SM_OK) {
        a->out->status = 201;
        a->out->body = reservation_body(v.txn, voucher, a->work_id, &a->terms, price, currency,
                                        pay_by, contract_id);
        if (a->out->body == NULL)
            st = sm_error_set(err, SM_ERR_NOMEM, "out of memory");
    }
    free(voucher);
    return st;
}

sm_status sm_ks_reserve(const sm_ks_ctx *ctx, const sm_ks_caller *caller, json_t *body,
                        sm_ks_result *out, sm_error *err)
{
    static const sm_json_field fields[] = {{"reservation_ref", SM_JSON_STRING, 1},
                                           {"work_id", SM_JSON_STRING, 1},
                                           {"license", SM_JSON_OBJECT, 1},
                                           {"jkt", SM_JSON_STRING, 1},
                                           {"contract_id", SM_JSON_INTEGER, 0},
                                           {NULL, SM_JSON_STRING, 0}};
    reserve_args a;
    sm_error e = {0};
    memset(&a, 0, sizeof(a));
    a.ctx = ctx;
    a.caller = caller;
    a.out = out;
    sm_ks_result_init(out);
    if (!ks_check_body(body, fields, "reservation", out) ||
        !ks_body_id(body, "work_id", "reservation", &a.work_id, out))
        return SM_OK;
    a.ref = json_string_value(json_object_get(body, "reservation_ref"));
    if (sm_ks_validate_payment_ref(a.ref, &e) != SM_OK)
        return sm_ks_refuse(out, 400, "invalid-request", "Invalid request",
                            "reservation: \"reservation_ref\" must be 1 to 128 characters of "
                            "A-Z a-z 0-9 . _ ~ : -");
    a.jkt = json_string_value(json_object_get(body, "jkt"));
    if (!check_jkt_syntax(a.jkt))
        return sm_ks_refuse(out, 400, "invalid-request", "Invalid request",
                            "reservation: \"jkt\" must be the device key's RFC 7638 thumbprint "
                            "(43 base64url characters)");
    if (sm_ks_terms_from_json(json_object_get(body, "license"), "reservation: \"license\"",
                              &a.terms, &e) != SM_OK)
        return sm_ks_refuse(out, 400, "invalid-request", "Invalid request", "%s", e.message);
    if (json_object_get(body, "contract_id") != NULL &&
        (sm_json_get_uint64(body, "contract_id", UINT64_MAX >> 1, 1, &a.contract_id,
                            "reservation", &e) != SM_OK ||
         a.contract_id == 0))
        return sm_ks_refuse(out, 400, "invalid-request", "Invalid request",
                            "reservation: \"contract_id\" must be a positive integer");
    return ks_run(ctx, reserve_tx, &a, out, err);
}

/* ---- payment ----------------------------------------------------------------- */

typedef struct payment_args {
    const sm_ks_ctx *ctx;
    const sm_ks_caller *caller;
    const char *txn, *ref, *currency;
    int64_t amount;
    sm_ks_result *out;
} payment_args;

/* The payment already recorded for a->txn, if any (*paid = 1): the same
 * request again gets the first answer, another one already-paid. The
 * caller holds the transaction row's lock, which every payment of the txn
 * takes first; a locking read sees a payment committed while it waited for
 * that lock, which the snapshot of a plain read would not. */
static sm_status payment_repeat(sm_db_conn *c, payment_args *a, const char *currency, int *paid,
                                sm_error *err)
{
    sm_db_rows *rows = NULL;
    *paid = 0;
    sm_status st = sm_db_query(c, "SELECT payment_ref, amount, paid_at, ack FROM payments "
                                  "WHERE txn = ? LOCK IN SHARE MODE",
                               SM_DB_PARAMS(sm_db_text(a->txn)), &rows, err);
    if (st == SM_OK)
        st = sm_db_rows_next(rows, paid, err);
    if (st == SM_OK && *paid) {
        const char *ref = sm_db_col_text(rows, 0, NULL), *ack = sm_db_col_text(rows, 3, NULL);
        int64_t amount = 0, paid_at = 0;
        sm_db_col_int(rows, 1, &amount, NULL);
        sm_db_col_int(rows, 2, &paid_at, NULL);
        if (ref != NULL && ack != NULL && strcmp(ref, a->ref) == 0 && amount == a->amount &&
            strcmp(currency, a->currency) == 0) {
            a->out->status = 200;
            a->out->body = json_pack("{s:s,s:s,s:I,s:I,s:s}", "txn", a->txn, "payment_token",
                                     ack, "paid_at", (json_int_t)paid_at, "amount",
                                     (json_int_t)amount, "currency", currency);
            st = a->out->body != NULL ? SM_OK : sm_error_set(err, SM_ERR_NOMEM, "out of memory");
        } else {
            st = ks_refuse_tx(a->out, 409, "already-paid", "Already paid",
                              "transaction %s already has a payment recorded under another "
                              "reference or amount",
                              a->txn);
        }
    }
    sm_db_rows_free(rows);
    return st;
}

static sm_status payment_tx(sm_db_conn *c, void *argp, sm_error *err)
{
    payment_args *a = argp;
    char retailer[SM_KS_ID_SIZE] = "";
    sm_ks_result_clear(a->out);
    if (a->caller->dn == NULL)
        return ks_refuse_unregistered(a->out, "a retailer");
    uint8_t dn_hash[32];
    sm_ks_dn_hash(a->caller->dn, dn_hash);
    /* The transaction row lock serialises every payment of one txn. */
    sm_db_rows *rows = NULL;
    int has = 0;
    sm_status st = sm_db_query(c,
                               "SELECT retailer_id, work_id, price, currency, pay_by, revoked "
                               "FROM transactions WHERE txn = ? FOR UPDATE",
                               SM_DB_PARAMS(sm_db_text(a->txn)), &rows, err);
    if (st == SM_OK)
        st = sm_db_rows_next(rows, &has, err);
    char owner_retailer[SM_KS_ID_SIZE] = "", work_id[SM_KS_ID_SIZE] = "", currency[4] = "";
    int64_t price = 0, pay_by = 0, revoked_flag = 0;
    if (st == SM_OK && has &&
        (st = ks_col_copy(rows, 0, owner_retailer, sizeof(owner_retailer), err)) == SM_OK &&
        (st = ks_col_copy(rows, 1, work_id, sizeof(work_id), err)) == SM_OK &&
        (st = sm_db_col_int(rows, 2, &price, err)) == SM_OK &&
        (st = ks_col_copy(rows, 3, currency, sizeof(currency), err)) == SM_OK &&
        (st = sm_db_col_int(rows, 4, &pay_by, err)) == SM_OK)
        st = sm_db_col_int(rows, 5, &revoked_flag, err);
    sm_db_rows_free(rows);
    if (st != SM_OK)
        return st;
    /* The txn's revocation is on its row (trigger transactions_revoked,
     * schema version 4), read here under the row lock that a revocation's
     * trigger takes too: a revocation committed while this transaction
     * waited for the lock is seen. Anything but 0 counts (fail closed). */
    int revoked = revoked_flag != 0;

    /* The caller's retailer id (no row: not registered), share-locked like
     * the payment row's foreign key would lock it. */
    rows = NULL;
    int registered = 0;
    st = sm_db_query(c, "SELECT retailer_id FROM retailers WHERE dn_sha256 = ? LOCK IN SHARE MODE",
                     SM_DB_PARAMS(sm_db_blob(dn_hash, sizeof(dn_hash))), &rows, err);
    if (st == SM_OK)
        st = sm_db_rows_next(rows, &registered, err);
    if (st == SM_OK && registered)
        st = ks_col_copy(rows, 0, retailer, sizeof(retailer), err);
    sm_db_rows_free(rows);
    if (st != SM_OK)
        return st;
    if (!registered)
        return ks_refuse_unregistered(a->out, "a retailer");
    /* Another retailer's transaction looks exactly like an unknown one. */
    if (!has || strcmp(owner_retailer, retailer) != 0)
        return ks_refuse_tx(a->out, 404, "unknown-transaction", "Unknown transaction",
                            "retailer %s has no transaction %s", retailer, a->txn);
    int64_t now = sm_ks_now(a->ctx);
    /* A payment already recorded comes before every other refusal. It is
     * looked up only when one of them applies or the insert below finds
     * it: a locking read of an absent row locks a gap of `payments`, and
     * two payments holding one gap and inserting into it deadlock. */
    int paid = 0;
    if (revoked || now >= pay_by || a->amount != price || strcmp(a->currency, currency) != 0) {
        if ((st = payment_repeat(c, a, currency, &paid, err)) != SM_OK || paid)
            return st;
    }
    if (revoked)
        return ks_refuse_tx(a->out, 409, "transaction-revoked", "Transaction revoked",
                            "transaction %s was revoked; it cannot be paid", a->txn);
    if (now >= pay_by)
        return ks_refuse_tx(a->out, 409, "reservation-expired", "Reservation expired",
                            "the reservation %s had to be paid by %lld; reserve again", a->txn,
                            (long long)pay_by);
    if (a->amount != price || strcmp(a->currency, currency) != 0) {
        ks_refuse_tx(a->out, 422, "amount-mismatch", "Amount mismatch",
                     "transaction %s is owed %lld %s (wholesale), not %lld %s", a->txn,
                     (long long)price, currency, (long long)a->amount, a->currency);
        a->out->extensions = json_pack("{s:I,s:s}", "amount", (json_int_t)price, "currency",
                                       currency);
        return KS_REFUSED;
    }

    sm_ks_payment_ack p;
    memset(&p, 0, sizeof(p));
    snprintf(p.txn, sizeof(p.txn), "%s", a->txn);
    snprintf(p.work_id, sizeof(p.work_id), "%s", work_id);
    snprintf(p.retailer, sizeof(p.retailer), "%s", retailer);
    snprintf(p.payment_ref, sizeof(p.payment_ref), "%s", a->ref);
    snprintf(p.currency, sizeof(p.currency), "%s", currency);
    p.amount = price;
    p.paid_at = now;
    char *ack = NULL;
    if ((st = sm_ks_payment_ack_issue(a->ctx->keys, a->ctx->issuer, &p, now,
                                      a->ctx->payment_ack_lifetime, &ack, err)) != SM_OK)
        return st;
    st = sm_db_exec(c,
                    "INSERT INTO payments (txn, retailer_id, payment_ref, amount, currency, "
                    "paid_at, ack) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    SM_DB_PARAMS(sm_db_text(a->txn), sm_db_text(retailer), sm_db_text(a->ref),
                                 sm_db_int(price), sm_db_text(currency), sm_db_int(now),
                                 sm_db_text(ack)),
                    NULL, err);
    if (st == SM_ERR_DUPLICATE) {
        /* The txn is paid (a repeat, or paid otherwise), or the reference
         * was used for another transaction. Only the insert was undone. */
        free(ack);
        if ((st = payment_repeat(c, a, currency, &paid, err)) != SM_OK || paid)
            return st;
        return ks_refuse_tx(a->out, 409, "idempotency-key-reused", "Reference reused",
                            "payment_ref %s was already used for another transaction", a->ref);
    }
    if (st == SM_OK) {
        json_t *data = json_pack("{s:s,s:s,s:s,s:s,s:I,s:s}", "txn", a->txn, "work_id", work_id,
                                 "retailer", retailer, "payment_ref", a->ref, "amount",
                                 (json_int_t)price, "currency", currency);
        st = data != NULL ? sm_ks_ledger_enqueue(c, a->ctx, "payment", a->txn, data, err)
                          : sm_error_set(err, SM_ERR_NOMEM, "out of memory");
        json_decref(data);
    }
    if (st == SM_OK) {
        a->out->status = 201;
        a->out->body = json_pack("{s:s,s:s,s:I,s:I,s:s}", "txn", a->txn, "payment_token", ack,
                                 "paid_at", (json_int_t)now, "amount", (json_int_t)price,
                                 "currency", currency);
        if (a->out->body == NULL)
            st = sm_error_set(err, SM_ERR_NOMEM, "out of memory");
    }
    free(ack);
    return st;
}

sm_status sm_ks_record_payment(const sm_ks_ctx *ctx, const sm_ks_caller *caller, json_t *body,
                               sm_ks_result *out, sm_error *err)
{
    static const sm_json_field fields[] = {{"txn", SM_JSON_STRING, 1},
                                           {"payment_ref", SM_JSON_STRING, 1},
                                           {"amount", SM_JSON_INTEGER, 1},
                                           {"currency", SM_JSON_STRING, 1},
                                           {NULL, SM_JSON_STRING, 0}};
    payment_args a;
    sm_error e = {0};
    memset(&a, 0, sizeof(a));
    a.ctx = ctx;
    a.caller = caller;
    a.out = out;
    sm_ks_result_init(out);
    if (!ks_check_body(body, fields, "payment", out) ||
        !ks_body_id(body, "txn", "payment", &a.txn, out))
        return SM_OK;
    a.ref = json_string_value(json_object_get(body, "payment_ref"));
    if (sm_ks_validate_payment_ref(a.ref, &e) != SM_OK)
        return sm_ks_refuse(out, 400, "invalid-request", "Invalid request",
                            "payment: \"payment_ref\" must be 1 to 128 characters of A-Z a-z 0-9 "
                            ". _ ~ : -");
    a.amount = json_integer_value(json_object_get(body, "amount"));
    a.currency = json_string_value(json_object_get(body, "currency"));
    if (a.amount < 0)
        return sm_ks_refuse(out, 400, "invalid-request", "Invalid request",
                            "payment: \"amount\" must not be negative (integer minor units)");
    if (strlen(a.currency) != 3)
        return sm_ks_refuse(out, 400, "invalid-request", "Invalid request",
                            "payment: \"currency\" must be an ISO 4217 code such as EUR");
    return ks_run(ctx, payment_tx, &a, out, err);
}

/* ---- delivery-complete ----------------------------------------------------------- */

typedef struct delivery_args {
    const sm_ks_ctx *ctx;
    const char *txn, *work_id;
    int64_t delivered_at;
    sm_ks_result *out;
} delivery_args;

static sm_status delivery_tx(sm_db_conn *c, void *argp, sm_error *err)
{
    delivery_args *a = argp;
    sm_db_rows *rows = NULL;
    int has = 0;
    char work_id[SM_KS_ID_SIZE] = "";
    sm_ks_result_clear(a->out);
    sm_status st = sm_db_query(c, "SELECT work_id FROM transactions WHERE txn = ? FOR UPDATE",
                               SM_DB_PARAMS(sm_db_text(a->txn)), &rows, err);
    if (st == SM_OK)
        st = sm_db_rows_next(rows, &has, err);
    if (st == SM_OK && has)
        st = ks_col_copy(rows, 0, work_id, sizeof(work_id), err);
    sm_db_rows_free(rows);
    if (st != SM_OK)
        return st;
    if (!has)
        return ks_refuse_tx(a->out, 404, "unknown-transaction", "Unknown transaction",
                            "no transaction %s", a->txn);
    if (strcmp(work_id, a->work_id) != 0)
        return ks_refuse_tx(a->out, 409, "work-mismatch", "Work mismatch",
                            "transaction %s is for another work, not %s", a->txn, a->work_id);
    /* A media store only delivers with a delivery token, and those come
     * with licenses: a delivery of a transaction without one is a report
     * nothing could have caused (a faulty or dishonest store), and would
     * be chained without its cause. Committed licenses are all visible
     * here: the snapshot starts with this read, after the row lock. */
    int64_t licensed = 0;
    rows = NULL;
    has = 0;
    st = sm_db_query(c, "SELECT EXISTS (SELECT 1 FROM licenses WHERE txn = ?)",
                     SM_DB_PARAMS(sm_db_text(a->txn)), &rows, err);
    if (st == SM_OK && (st = sm_db_rows_next(rows, &has, err)) == SM_OK && has)
        st = sm_db_col_int(rows, 0, &licensed, err);
    sm_db_rows_free(rows);
    if (st != SM_OK)
        return st;
    if (licensed != 1)
        return ks_refuse_tx(a->out, 409, "no-license", "No license issued",
                            "no license was issued for transaction %s, so nothing of it can "
                            "have been delivered",
                            a->txn);
    uint64_t added = 0;
    st = sm_db_exec(c,
                    "INSERT IGNORE INTO deliveries (txn, work_id, delivered_at, reported_at) "
                    "VALUES (?, ?, ?, ?)",
                    SM_DB_PARAMS(sm_db_text(a->txn), sm_db_text(a->work_id),
                                 sm_db_int(a->delivered_at), sm_db_int(sm_ks_now(a->ctx))),
                    &added, err);
    if (st == SM_OK && added == 1) {
        json_t *data = json_pack("{s:s,s:s,s:I}", "txn", a->txn, "work_id", a->work_id,
                                 "delivered_at", (json_int_t)a->delivered_at);
        st = data != NULL ? sm_ks_ledger_enqueue(c, a->ctx, "delivery", a->txn, data, err)
                          : sm_error_set(err, SM_ERR_NOMEM, "out of memory");
        json_decref(data);
    }
    if (st == SM_OK)
        a->out->status = 204;
    return st;
}

sm_status sm_ks_delivery_complete(const sm_ks_ctx *ctx, const sm_ks_caller *caller,
                                  json_t *body, sm_ks_result *out, sm_error *err)
{
    static const sm_json_field fields[] = {{"txn", SM_JSON_STRING, 1},
                                           {"work_id", SM_JSON_STRING, 1},
                                           {"delivered_at", SM_JSON_INTEGER, 1},
                                           {NULL, SM_JSON_STRING, 0}};
    delivery_args a = {ctx, NULL, NULL, 0, out};
    (void)caller;
    sm_ks_result_init(out);
    if (!ks_check_body(body, fields, "delivery-complete", out) ||
        !ks_body_id(body, "txn", "delivery-complete", &a.txn, out) ||
        !ks_body_id(body, "work_id", "delivery-complete", &a.work_id, out))
        return SM_OK;
    a.delivered_at = json_integer_value(json_object_get(body, "delivered_at"));
    if (a.delivered_at < 0 || a.delivered_at > sm_ks_now(ctx) + 86400)
        return sm_ks_refuse(out, 400, "invalid-request", "Invalid request",
                            "delivery-complete: \"delivered_at\" must be a past time in seconds "
                            "since 1970");
    return ks_run(ctx, delivery_tx, &a, out, err);
}

/* ---- revocation ------------------------------------------------------------------ */

typedef struct revoke_args {
    const sm_ks_ctx *ctx;
    const sm_ks_caller *caller;
    int is_admin;
    const char *kind, *subject, *reason;
    sm_ks_result *out;
} revoke_args;

static sm_status revoke_tx(sm_db_conn *c, void *argp, sm_error *err)
{
    revoke_args *a = argp;
    char by[SM_KS_ID_SIZE] = "admin";
    sm_ks_result_clear(a->out);
    sm_status st = SM_OK;
    if (!a->is_admin) {
        st = ks_retailer_by_dn(c, a->caller->dn, by, NULL, err);
        if (st == SM_ERR_NOT_FOUND)
            return ks_refuse_unregistered(a->out, "a retailer");
        if (st != SM_OK)
            return st;
        if (strcmp(a->kind, "transaction") != 0)
            return ks_refuse_tx(a->out, 403, "not-allowed", "Not allowed",
                                "only an admin may revoke a device");
    }
    if (strcmp(a->kind, "transaction") == 0) {
        sm_db_rows *rows = NULL;
        int has = 0;
        char retailer[SM_KS_ID_SIZE] = "";
        st = sm_db_query(c, "SELECT retailer_id FROM transactions WHERE txn = ? FOR UPDATE",
                         SM_DB_PARAMS(sm_db_text(a->subject)), &rows, err);
        if (st == SM_OK)
            st = sm_db_rows_next(rows, &has, err);
        if (st == SM_OK && has)
            st = ks_col_copy(rows, 0, retailer, sizeof(retailer), err);
        sm_db_rows_free(rows);
        if (st != SM_OK)
            return st;
        if (!has || (!a->is_admin && strcmp(retailer, by) != 0))
            return ks_refuse_tx(a->out, 404, "unknown-transaction", "Unknown transaction",
                                "no transaction %s%s%s", a->subject,
                                a->is_admin ? "" : " of retailer ", a->is_admin ? "" : by);
    }
    int64_t now = sm_ks_now(a->ctx);
    uint64_t added = 0;
    st = sm_db_exec(c,
                    "INSERT IGNORE INTO revocations (kind, subject, reason, revoked_by, "
                    "revoked_at) VALUES (?, ?, ?, ?, ?)",
                    SM_DB_PARAMS(sm_db_text(a->kind), sm_db_text(a->subject),
                                 sm_db_text(a->reason), sm_db_text(by), sm_db_int(now)),
                    &added, err);
    if (st == SM_OK && added == 1) {
        json_t *data = json_pack("{s:s,s:s,s:s,s:s}", "kind", a->kind, "subject", a->subject,
                                 "reason", a->reason, "by", by);
        st = data != NULL
                 ? sm_ks_ledger_append(c, a->ctx, "revocation",
                                       strcmp(a->kind, "transaction") == 0 ? a->subject : NULL,
                                       data, NULL, err)
                 : sm_error_set(err, SM_ERR_NOMEM, "out of memory");
        json_decref(data);
    }
    if (st == SM_OK) {
        a->out->status = added == 1 ? 201 : 200;
        a->out->body = json_pack("{s:s,s:s,s:b}", "kind", a->kind, "subject", a->subject,
                                 "already_revoked", added != 1);
        if (a->out->body == NULL)
            st = sm_error_set(err, SM_ERR_NOMEM, "out of memory");
    }
    return st;
}

sm_status sm_ks_revoke(const sm_ks_ctx *ctx, const sm_ks_caller *caller, int is_admin,
                       json_t *body, sm_ks_result *out, sm_error *err)
{
    static const sm_json_field fields[] = {{"kind", SM_JSON_STRING, 1},
                                           {"subject", SM_JSON_STRING, 1},
                                           {"reason", SM_JSON_STRING, 1},
                                           {NULL, SM_JSON_STRING, 0}};
    revoke_args a = {ctx, caller, is_admin, NULL, NULL, NULL, out};
    sm_ks_result_init(out);
    if (!ks_check_body(body, fields, "revocation", out) ||
        !ks_body_text(body, "reason", REASON_MAX, 1, "revocation", &a.reason, out))
        return SM_OK;
    a.kind = json_string_value(json_object_get(body, "kind"));
    a.subject = json_string_value(json_object_get(body, "subject"));
    if (strcmp(a.kind, "transaction") == 0) {
        if (!ks_body_id(body, "subject", "revocation", &a.subject, out))
            return SM_OK;
    } else if (strcmp(a.kind, "device") == 0) {
        if (!check_jkt_syntax(a.subject))
            return sm_ks_refuse(out, 400, "invalid-request", "Invalid request",
                                "revocation: a device is named by its jkt (43 base64url "
                                "characters)");
    } else {
        return sm_ks_refuse(out, 400, "invalid-request", "Invalid request",
                            "revocation: \"kind\" must be \"transaction\" or \"device\"");
    }
    return ks_run(ctx, revoke_tx, &a, out, err);
}
