#include "config.h"

/* License issuance (DESIGN flow 6): gathers the facts for
 * sm_ks_license_decide in one database transaction, with the transaction
 * row locked and the proof's jti inserted atomically, and on "allow"
 * answers with the media key as a JWE to the device plus a delivery token.
 * Any database failure fails closed: no key leaves without the activation
 * and the ledger entry being committed. A delivery-token renewal
 * ("delivery_only") makes the same checks but the activation limit and
 * answers with a new delivery token only (renewal_tx). */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>


#include "sm_b64.h"
#include "sm_ks_license.h"
#include "sm_ks_store_int.h"
#include "sm_ks_tokens.h"
#include "sm_secmem.h"

#define LICENSE_BODY_VOUCHER_MAX SM_JOSE_MAX_TOKEN

typedef struct license_args {
    const sm_ks_ctx *ctx;
    const sm_ks_voucher *voucher;
    const sm_dpop_result *proof;
    const sm_jwk *device_key;
    const char *via_retailer; /* proxying retailer or NULL */
    /* Made before the transaction (sm_ks_issue_license): the JWE's key agreement
     * and the delivery token. */
    const sm_jwe_sealer *sealer;
    sm_ks_delivery *delivery;
    char *delivery_token; /* owned by sm_ks_issue_license; may be replaced */
    sm_ks_license_facts request_facts; /* voucher and proof facts */
    sm_ks_license_facts facts;         /* plus the database's, per attempt */
    sm_ks_result *out;
    int spend_proof; /* refused after the proof's id was recorded: record it again */
} license_args;

static sm_status refuse_verdict(sm_ks_result *out, sm_ks_license_verdict v)
{
    sm_ks_refuse(out, sm_ks_license_verdict_http_status(v), sm_ks_license_verdict_code(v),
                 "License refused", "%s", sm_ks_license_verdict_message(v));
    return SM_OK;
}

/* The facts about the transaction and its work. */
typedef struct txn_row {
    char work_id[SM_KS_ID_SIZE], retailer[SM_KS_ID_SIZE], jkt[SM_JKT_SIZE];
    sm_ks_terms terms;
    int64_t contract_id, rental_started_at, activations, key_version, kek_version;
    int withdrawn, paid, txn_revoked, device_revoked, contract_allows;
    int proof_spent; /* the proof's id is recorded by a refusal */
    uint8_t wrapped[SM_KS_WRAPPED_KEY_LEN];
} txn_row;

/* Reads the one row of facts license_facts returns (and the renewal's
 * query, in the same column order) into *t; found = 0 when there is none. */
static sm_status read_facts(sm_db_rows *rows, txn_row *t, int *found, sm_error *err)
{
    int64_t flags[5] = {0, 0, 0, 0, 0};
    sm_status st = sm_db_rows_next(rows, found, err);
    if (st == SM_OK && *found) {
        int64_t duration = 0;
        size_t wrapped_len = 0;
        const char *wrapped = sm_db_col_text(rows, 10, &wrapped_len);
        t->rental_started_at = 0;
        t->withdrawn = sm_db_col_text(rows, 11, NULL) != NULL;
        if ((st = ks_col_copy(rows, 0, t->work_id, sizeof(t->work_id), err)) == SM_OK &&
            (st = ks_col_copy(rows, 1, t->retailer, sizeof(t->retailer), err)) == SM_OK &&
            (st = ks_col_copy(rows, 2, t->jkt, sizeof(t->jkt), err)) == SM_OK &&
            (st = sm_db_col_int(rows, 4, &duration, err)) == SM_OK &&
            (st = ks_terms_from_columns(sm_db_col_text(rows, 3, NULL), duration, &t->terms,
                                        err)) == SM_OK &&
            (st = sm_db_col_int(rows, 5, &t->contract_id, err)) == SM_OK &&
            (st = sm_db_col_int(rows, 7, &t->activations, err)) == SM_OK &&
            (sm_db_col_text(rows, 6, NULL) == NULL ||
             (st = sm_db_col_int(rows, 6, &t->rental_started_at, err)) == SM_OK) &&
            (st = sm_db_col_int(rows, 8, &t->key_version, err)) == SM_OK &&
            (st = sm_db_col_int(rows, 9, &t->kek_version, err)) == SM_OK &&
            (st = sm_db_col_int(rows, 12, &flags[0], err)) == SM_OK &&
            (st = sm_db_col_int(rows, 13, &flags[1], err)) == SM_OK &&
            (st = sm_db_col_int(rows, 14, &flags[2], err)) == SM_OK &&
            (st = sm_db_col_int(rows, 15, &flags[3], err)) == SM_OK &&
            (st = sm_db_col_int(rows, 16, &flags[4], err)) == SM_OK) {
            if (wrapped == NULL || wrapped_len != SM_KS_WRAPPED_KEY_LEN)
                st = sm_error_set(err, SM_ERR_DB, "the wrapped key of work %s is damaged",
                                  t->work_id);
            else
                memcpy(t->wrapped, wrapped, SM_KS_WRAPPED_KEY_LEN);
        }
        if (st == SM_OK && t->activations < 0)
            st = sm_error_set(err, SM_ERR_DB, "a transaction's activation count is damaged");
    }
    /* Fail closed: only an exact 1 counts as present for a payment and
     * the contract, anything but 0 as present for a revocation. */
    t->paid = flags[0] == 1;
    t->txn_revoked = flags[1] != 0;
    t->device_revoked = flags[2] != 0;
    t->contract_allows = flags[3] == 1;
    t->proof_spent = flags[4] != 0;
    return st;
}

/* Counts this activation, which takes the transaction's row lock (a
 * refusal rolls it back), and reads every other fact in the same round
 * trip: procedure license_facts (sql/keyserver/0004_*.sql), a locking read
 * of the transaction (payment and revocation on its row), its work, the
 * device's revocation, whether the contract still offers these terms, and
 * whether a refusal spent the proof's id (dpop_jtis; one spent by a
 * license meets the unique key of the license's row, see license_tx).
 * found = 0 when there is no such transaction. The activations and rental
 * start read here already count this license. */
static sm_status count_and_load_facts(sm_db_conn *c, const char *txn, int64_t now,
                                      const sm_dpop_result *proof, txn_row *t, int *found,
                                      sm_error *err)
{
    sm_db_rows *rows = NULL;
    *found = 0;
    sm_status st = sm_db_query(c, "CALL license_facts(?, ?, ?, ?)",
                               SM_DB_PARAMS(sm_db_text(txn), sm_db_int(now),
                                            sm_db_text(proof->jkt), sm_db_text(proof->jti)),
                               &rows, err);
    if (st == SM_OK)
        st = read_facts(rows, t, found, err);
    sm_db_rows_free(rows);
    if (st == SM_OK && *found && t->activations < 1)
        st = sm_error_set(err, SM_ERR_DB, "transaction %s: the activation count is damaged",
                          txn);
    return st;
}

/* The 200 answer (PROTOCOL.md §2.6): with the key when jwe is not NULL (a
 * license), without it for a delivery-token renewal. NULL when out of
 * memory. */
static json_t *license_answer(const license_args *a, const txn_row *t,
                              const sm_ks_license_decision *d, const char *jwe)
{
    json_t *terms = sm_ks_terms_to_json(&t->terms);
    json_t *o = terms != NULL
                    ? json_pack("{s:s,s:s,s:I,s:s,s:I,s:o,s:I,s:I}", "txn", a->voucher->txn,
                                "work_id", t->work_id, "key_version",
                                (json_int_t)t->key_version, "delivery_token", a->delivery_token,
                                "delivery_expires_at", (json_int_t)a->delivery->exp, "license",
                                terms, "activation", (json_int_t)d->activations_after,
                                "activation_limit", (json_int_t)a->facts.activation_limit)
                    : NULL;
    if (o != NULL && ((jwe != NULL && json_object_set_new(o, "key_jwe", json_string(jwe)) != 0) ||
                      (d->rental_ends_at != 0 &&
                       json_object_set_new(o, "rental_ends_at",
                                           json_integer(d->rental_ends_at)) != 0))) {
        json_decref(o);
        o = NULL;
    }
    return o;
}

/* What the database said, as decision facts. The decision wants the state
 * before this request: counted_here is 1 when the read already counts this
 * license (license_facts), 0 for a renewal, which counts nothing. */
static void apply_facts(sm_ks_license_facts *f, const txn_row *t, int found, int counted_here)
{
    f->txn_found = found;
    f->proof_jti_fresh = 1;
    if (!found)
        return;
    f->proof_jti_fresh = !t->proof_spent;
    f->txn_work_id = t->work_id;
    f->txn_retailer = t->retailer;
    f->txn_jkt = t->jkt;
    f->txn_terms = t->terms;
    f->payment = t->paid ? SM_KS_PAID : SM_KS_UNPAID;
    f->txn_revoked = t->txn_revoked;
    f->device_revoked = t->device_revoked;
    f->contract_allows_terms = t->contract_allows;
    f->work_withdrawn = t->withdrawn;
    f->rental_started_at = t->rental_started_at;
    f->activations = (uint32_t)(t->activations - counted_here);
}

/* A delivery token never outlives the rental it serves: when the rental
 * ends before the token made ahead of the transaction would expire, it is
 * made again, expiring with the rental (a license or renewal within the
 * rental's last token lifetime; one more signature then, under the
 * transaction's locks). */
static sm_status cap_to_rental(license_args *a, const sm_ks_license_decision *d, sm_error *err)
{
    if (d->rental_ends_at == 0 || d->rental_ends_at >= a->delivery->exp)
        return SM_OK;
    const sm_ks_ctx *ctx = a->ctx;
    char *capped = NULL;
    sm_status st = sm_ks_delivery_issue(ctx->keys, ctx->issuer, ctx->media_stores,
                                        ctx->n_media_stores, a->delivery, a->facts.now,
                                        d->rental_ends_at - a->facts.now, &capped, err);
    if (st != SM_OK)
        return st;
    sm_wipe(a->delivery_token, strlen(a->delivery_token));
    free(a->delivery_token);
    a->delivery_token = capped;
    return SM_OK;
}

static sm_status grant(sm_db_conn *c, license_args *a, const txn_row *t,
                       const sm_ks_license_decision *d, sm_error *err)
{
    const sm_ks_ctx *ctx = a->ctx;
    const sm_ks_voucher *v = a->voucher;
    const sm_ks_delivery *dt = a->delivery;
    int64_t now = a->facts.now;
    sm_secret *key = NULL;
    char *jwe = NULL;
    sm_status st = cap_to_rental(a, d, err);
    if (st == SM_OK)
        st = sm_ks_kek_unwrap(ctx->kek, t->work_id, (uint32_t)t->key_version,
                              (uint32_t)t->kek_version, t->wrapped, sizeof(t->wrapped), &key,
                              err);
    if (st == SM_OK) {
        st = sm_jwe_sealer_seal(a->sealer, key, &jwe, err);
        sm_secret_free(key);
    }
    /* The answer is ready before the license is committed: after the
     * COMMIT nothing may fail. */
    json_t *o = NULL;
    if (st == SM_OK && (o = license_answer(a, t, d, jwe)) == NULL)
        st = sm_error_set(err, SM_ERR_NOMEM, "out of memory");
    /* The row is also the license's ledger entry, queued (chained = 0):
     * no head lock here, which would serialise every license; a sealer
     * chains it within milliseconds (FORMATS.md §7.5). The procedure
     * inserts it and commits, in one round trip. */
    if (st == SM_OK)
        st = sm_db_exec_commit(c, "CALL license_grant(?, ?, ?, ?, ?, ?, ?, ?)",
                               SM_DB_PARAMS(sm_db_text(v->txn), sm_db_text(a->proof->jkt),
                                            sm_db_int(now), sm_db_text(a->proof->jti),
                                            sm_db_text(dt->jti), sm_db_text(a->via_retailer),
                                            sm_db_text(t->work_id),
                                            sm_db_uint(d->activations_after)),
                               err);
    if (st == SM_ERR_DUPLICATE) {
        /* A license with this proof exists (committed): a replay. */
        sm_ks_result_clear(a->out);
        refuse_verdict(a->out, SM_KS_REFUSE_PROOF_REPLAYED);
        st = KS_REFUSED;
    }
    if (st == SM_OK) {
        a->out->status = 200;
        a->out->body = o;
        o = NULL;
    }
    json_decref(o);
    free(jwe);
    return st;
}

static sm_status license_tx(sm_db_conn *c, void *argp, sm_error *err)
{
    license_args *a = argp;
    /* Starts from the request's facts on every attempt (the transaction may
     * run again after a deadlock). */
    a->facts = a->request_facts;
    sm_ks_license_facts *f = &a->facts;
    const sm_ks_voucher *v = a->voucher;
    txn_row t;
    memset(&t, 0, sizeof(t));
    sm_ks_result_clear(a->out);
    a->spend_proof = 0;

    /* Single use: unique keys decide, atomically, across every node. A
     * granted license's row carries the proof's id (unique with the jkt):
     * a second license with the proof fails on that key, after the first
     * commits. A refusal records the id in dpop_jtis (spend_proof), which
     * the locking read of count_and_load_facts sees (and gap-locks when absent, so a
     * refusal spending it waits for this transaction); a refusal also
     * finds an id a license spent (spend_proof). */
    int found = 0;
    sm_status st = count_and_load_facts(c, v->txn, f->now, a->proof, &t, &found, err);
    if (st != SM_OK)
        return st;
    /* A first license's rental clock starts now (license_facts set it):
     * the decision computes the same end either way. */
    apply_facts(f, &t, found, 1);
    sm_ks_license_decision d = sm_ks_license_decide(f);
    if (d.verdict != SM_KS_LICENSE_ALLOW) {
        /* Roll back the counted activation; the proof is spent in a
         * statement of its own (spend_proof). */
        refuse_verdict(a->out, d.verdict);
        a->spend_proof = d.verdict != SM_KS_REFUSE_PROOF_REPLAYED;
        return KS_REFUSED;
    }
    return grant(c, a, &t, &d, err);
}

/* Records the proof's id as spent unless a license already carries it or
 * dpop_jtis has it: *spent = 1 then (a replay), 0 when this call spent it.
 * The INSERT ... SELECT reads licenses with a locking read, so it waits for
 * a license in flight with the same proof and then sees its row. */
static sm_status record_proof(sm_db_conn *c, const sm_dpop_result *proof, int64_t now,
                              int *spent, sm_error *err)
{
    uint64_t added = 0;
    sm_status st = sm_db_exec(c,
                              "INSERT INTO dpop_jtis (jkt, jti, seen_at) SELECT ?, ?, ? FROM DUAL "
                              "WHERE NOT EXISTS (SELECT 1 FROM licenses WHERE jkt = ? AND "
                              "proof_jti = ?)",
                              SM_DB_PARAMS(sm_db_text(proof->jkt), sm_db_text(proof->jti),
                                           sm_db_int(now), sm_db_text(proof->jkt),
                                           sm_db_text(proof->jti)),
                              &added, err);
    *spent = st == SM_ERR_DUPLICATE || (st == SM_OK && added == 0);
    return *spent ? SM_OK : st;
}

/* The facts license_facts reads, in its column order, without counting an
 * activation: a renewal moves no counter, so a shared lock on the
 * transaction's row is enough (a revocation in progress is waited for).
 * The proof was spent by this transaction's first statement (column 16). */
static const char renewal_facts[] =
    "SELECT t.work_id, t.retailer_id, t.jkt, t.license_type, t.duration, t.contract_id, "
    "t.rental_started_at, t.activations, w.key_version, w.kek_version, w.wrapped_key, "
    "w.withdrawn_at, t.paid, t.revoked, rd.subject IS NOT NULL, t.terms_offered, 0 "
    "FROM transactions t JOIN works w ON w.work_id = t.work_id "
    "LEFT JOIN revocations rd ON rd.kind = 'device' AND rd.subject = t.jkt "
    "WHERE t.txn = ? LOCK IN SHARE MODE";

/* A delivery-token renewal (PROTOCOL.md §2.6, "delivery_only"): spends the
 * proof, reads the facts, decides; commits in every case, so a refused
 * renewal's proof stays spent too. Nothing else is written: no activation,
 * no license row, no ledger entry (no sale or key changes hands). */
static sm_status renewal_tx(sm_db_conn *c, void *argp, sm_error *err)
{
    license_args *a = argp;
    a->facts = a->request_facts;
    sm_ks_license_facts *f = &a->facts;
    sm_ks_result_clear(a->out);
    int spent = 0;
    sm_status st = record_proof(c, a->proof, f->now, &spent, err);
    if (st != SM_OK)
        return st;
    if (spent)
        return refuse_verdict(a->out, SM_KS_REFUSE_PROOF_REPLAYED);
    txn_row t;
    memset(&t, 0, sizeof(t));
    int found = 0;
    sm_db_rows *rows = NULL;
    st = sm_db_query(c, renewal_facts, SM_DB_PARAMS(sm_db_text(a->voucher->txn)), &rows, err);
    if (st == SM_OK)
        st = read_facts(rows, &t, &found, err);
    sm_db_rows_free(rows);
    if (st != SM_OK)
        return st;
    apply_facts(f, &t, found, 0);
    sm_ks_license_decision d = sm_ks_license_decide(f);
    if (d.verdict != SM_KS_LICENSE_ALLOW)
        return refuse_verdict(a->out, d.verdict);
    if ((st = cap_to_rental(a, &d, err)) != SM_OK)
        return st;
    json_t *o = license_answer(a, &t, &d, NULL);
    if (o == NULL)
        return sm_error_set(err, SM_ERR_NOMEM, "out of memory");
    a->out->status = 200;
    a->out->body = o;
    return SM_OK;
}

/* A refusal rolled the whole transaction back: record the proof's id on
 * its own, so that the proof is spent even when the answer is no, unless a
 * license already carries it. When it turns out spent (a concurrent
 * request, or an unknown transaction's replay), the answer is
 * proof-replayed, which sm_ks_license_decide puts before every database
 * fact. If the database fails here, the answer is the failure (503). */
static sm_status spend_proof(const sm_ks_ctx *ctx, const sm_dpop_result *proof, int64_t now,
                             sm_ks_result *out, sm_error *err)
{
    sm_db_conn *c = NULL;
    int spent = 0;
    sm_status st = sm_db_acquire(ctx->db, &c, err);
    if (st == SM_OK) {
        st = record_proof(c, proof, now, &spent, err);
        sm_db_release(c);
    }
    if (st == SM_OK && spent)
        refuse_verdict(out, SM_KS_REFUSE_PROOF_REPLAYED);
    if (st != SM_OK)
        sm_ks_result_clear(out);
    return st;
}

sm_status sm_ks_issue_license(const sm_ks_ctx *ctx, const sm_ks_caller *caller, json_t *body,
                              const char *dpop_proof, sm_ks_result *out, sm_error *err)
{
    static const sm_json_field fields[] = {{"voucher", SM_JSON_STRING, 1},
                                           {"delivery_only", SM_JSON_BOOLEAN, 0},
                                           {NULL, SM_JSON_STRING, 0}};
    license_args a;
    sm_ks_voucher voucher;
    sm_dpop_result proof;
    sm_error e = {0};
    memset(&a, 0, sizeof(a));
    memset(&proof, 0, sizeof(proof));
    a.ctx = ctx;
    a.out = out;
    a.voucher = &voucher;
    a.proof = &proof;
    sm_ks_result_init(out);
    if (!ks_check_body(body, fields, "license request", out))
        return SM_OK;

    sm_ks_license_facts *f = &a.request_facts;
    f->now = sm_ks_now(ctx);
    f->activation_limit =
        ctx->activation_limit != 0 ? ctx->activation_limit : SM_KS_DEFAULT_ACTIVATION_LIMIT;
    f->delivery_only = json_is_true(json_object_get(body, "delivery_only"));

    json_t *vj = json_object_get(body, "voucher");
    f->voucher_status = sm_ks_voucher_verify_cached(
        ctx->voucher_cache, sm_ks_keys_jwks(ctx->keys), ctx->issuer, json_string_value(vj),
        json_string_length(vj), f->now, &voucher, &e);
    if (f->voucher_status == SM_OK) {
        f->voucher_txn = voucher.txn;
        f->voucher_work_id = voucher.work_id;
        f->voucher_retailer = voucher.retailer;
        f->voucher_jkt = voucher.jkt;
        f->voucher_terms = voucher.terms;
    }

    /* A retailer's proxy forwards the device's proof made for its own URL. */
    char *proxy_url = NULL;
    char via[SM_KS_ID_SIZE] = "";
    if (caller != NULL && caller->dn != NULL && ctx->db != NULL) {
        sm_db_conn *c = NULL;
        sm_status st = sm_db_acquire(ctx->db, &c, err);
        if (st != SM_OK)
            return st;
        st = ks_retailer_by_dn(c, caller->dn, via, &proxy_url, err);
        sm_db_release(c);
        if (st == SM_ERR_NOT_FOUND)
            via[0] = '\0';
        else if (st != SM_OK)
            return st;
        else
            a.via_retailer = via;
    }
    sm_dpop_expect expect;
    sm_dpop_expect_init(&expect, "POST", proxy_url != NULL ? proxy_url : ctx->license_url);
    expect.now = f->now;
    expect.max_age = ctx->proof_max_age;
    /* The proof's key (validated, from the device-key cache when the
     * device came before) is the JWE recipient. */
    sm_jwk *device_key = NULL;
    f->proof_status = dpop_proof != NULL ? sm_dpop_verify_key(dpop_proof, strlen(dpop_proof),
                                                              &expect, &proof, &device_key, &e)
                                         : SM_ERR_FORMAT;
    free(proxy_url);
    if (f->proof_status == SM_OK)
        f->proof_jkt = proof.jkt;

    /* Refusals that need no database: nothing is recorded for requests
     * that cannot prove they hold the designated device. */
    f->proof_jti_fresh = 1;
    sm_ks_license_decision early = sm_ks_license_decide(f);
    if (early.verdict != SM_KS_LICENSE_ALLOW && early.verdict <= SM_KS_REFUSE_WRONG_DEVICE) {
        sm_jwk_free(device_key);
        return refuse_verdict(out, early.verdict);
    }
    if (device_key == NULL)
        return refuse_verdict(out, SM_KS_REFUSE_PROOF_INVALID);
    a.device_key = device_key;
    /* The crypto a grant needs that no database fact changes (the
     * voucher's work is the transaction's when the answer is yes), before
     * the transaction: its locks and its connection are held for the
     * database work only. A refusal discards it. */
    sm_jwe_sealer *sealer = NULL;
    sm_ks_delivery dt;
    char *delivery = NULL;
    memset(&dt, 0, sizeof(dt));
    snprintf(dt.work_id, sizeof(dt.work_id), "%s", voucher.work_id);
    snprintf(dt.txn, sizeof(dt.txn), "%s", voucher.txn);
    snprintf(dt.jkt, sizeof(dt.jkt), "%s", proof.jkt);
    sm_status st = f->delivery_only ? SM_OK
                                    : sm_jwe_sealer_new(device_key, proof.jkt, &sealer, err);
    if (st == SM_OK)
        st = sm_ks_delivery_issue(ctx->keys, ctx->issuer, ctx->media_stores,
                                  ctx->n_media_stores, &dt, f->now, ctx->delivery_lifetime,
                                  &delivery, err);
    a.sealer = sealer;
    a.delivery = &dt;
    a.delivery_token = delivery;
    if (st == SM_OK)
        st = ks_run(ctx, f->delivery_only ? renewal_tx : license_tx, &a, out, err);
    sm_jwe_sealer_free(sealer);
    if (a.delivery_token != NULL) /* a bearer token, unused when refused */
        sm_wipe(a.delivery_token, strlen(a.delivery_token));
    free(a.delivery_token);
    sm_jwk_free(device_key);
    if (st == SM_OK && a.spend_proof)
        st = spend_proof(ctx, &proof, f->now, out, err);
    return st;
}
