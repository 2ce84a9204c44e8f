#include "config.h"

/* The points wallet: balance, journal, redeem codes, top-ups through the
 * payment authority (sm_rt_store.h). Every movement locks the account row
 * (SELECT ... FOR UPDATE), changes the balance and appends to the journal
 * in one transaction; the schema's CHECKs refuse a negative balance. */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "sm_json.h"
#include "sm_rt_auth.h"
#include "sm_rt_store_int.h"
#include "sm_rt_validate.h"

#define POINTS_MAX 1000000
#define CODES_MAX 1000

static json_t *entry_json(uint64_t entry_id, const char *kind, int64_t amount, int64_t after,
                          const char *order_id, int64_t created)
{
    json_t *o = json_pack("{s:I,s:s,s:I,s:I,s:I}", "entry_id", (json_int_t)entry_id, "kind",
                          kind, "amount", (json_int_t)amount, "balance_after", (json_int_t)after,
                          "created_at", (json_int_t)created);
    if (o != NULL)
        rt_set_text(o, "order_id", order_id);
    return o;
}

/* Locks the account row; *balance gets the balance. */
static sm_status lock_balance(sm_db_conn *c, uint64_t account_id, int64_t *balance,
                              sm_error *err)
{
    sm_db_rows *rows = NULL;
    int has = 0;
    sm_status st = sm_db_query(c, "SELECT balance FROM accounts WHERE account_id = ? FOR UPDATE",
                               SM_DB_PARAMS(sm_db_uint(account_id)), &rows, err);
    if (st == SM_OK)
        st = sm_db_rows_next(rows, &has, err);
    if (st == SM_OK && !has)
        st = sm_error_set(err, SM_ERR_NOT_FOUND, "account %llu is gone",
                          (unsigned long long)account_id);
    if (st == SM_OK)
        st = sm_db_col_int(rows, 0, balance, err);
    sm_db_rows_free(rows);
    return st;
}

sm_status rt_wallet_journal_add(sm_db_conn *c, uint64_t account_id, const char *kind,
                                int64_t amount, const char *order_id, const char *reference,
                                int64_t now, sm_error *err)
{
    /* VALUES with the balance as a scalar subquery, not INSERT ... SELECT:
     * InnoDB (innodb_autoinc_lock_mode 1, MariaDB's default) holds a
     * table-level AUTO-INC lock for the whole of an INSERT ... SELECT, so
     * every order's journal entry queued behind every other's (at 32
     * concurrent buyers the slowest retail statement, ~15 ms on average);
     * a VALUES insert takes the next id under a short mutex. The account
     * row is this transaction's (locked by the balance change), so the
     * subquery reads the balance just written. */
    return sm_db_exec(
        c,
        "INSERT INTO wallet_journal (account_id, kind, amount, balance_after, order_id, "
        "reference, created_at) VALUES (?, ?, ?, "
        "(SELECT balance FROM accounts WHERE account_id = ?), ?, ?, ?)",
        SM_DB_PARAMS(sm_db_uint(account_id), sm_db_text(kind), sm_db_int(amount),
                     sm_db_uint(account_id), sm_db_text(order_id), sm_db_text(reference),
                     sm_db_int(now)),
        NULL, err);
}

/* Two statements: the conditional UPDATE locks the account row and
 * refuses a debit the balance does not cover; the journal entry reads the
 * new balance from the row it now holds. The CHECK constraints are the
 * second line. */
sm_status rt_wallet_move(sm_db_conn *c, uint64_t account_id, const char *kind, int64_t amount,
                         const char *order_id, const char *reference, int64_t now,
                         uint64_t *entry_id, int64_t *after, sm_error *err)
{
    uint64_t changed = 0;
    sm_status st = SM_OK;
    if (amount < 0)
        st = sm_db_exec(c,
                        "UPDATE accounts SET balance = balance + ? WHERE account_id = ? AND "
                        "balance >= ?",
                        SM_DB_PARAMS(sm_db_int(amount), sm_db_uint(account_id),
                                     sm_db_int(-amount)),
                        &changed, err);
    else if (amount > 0)
        st = sm_db_exec(c, "UPDATE accounts SET balance = balance + ? WHERE account_id = ?",
                        SM_DB_PARAMS(sm_db_int(amount), sm_db_uint(account_id)), &changed, err);
    else { /* nothing moves; still lock the row the entry reads */
        int64_t unchanged = 0;
        st = lock_balance(c, account_id, &unchanged, err);
        changed = st == SM_OK;
    }
    if (st != SM_OK)
        return st;
    if (changed == 0)
        return amount < 0 ? sm_error_set(err, SM_ERR_STATE, "the balance would become negative")
                          : sm_error_set(err, SM_ERR_NOT_FOUND, "account %llu is gone",
                                         (unsigned long long)account_id);
    st = rt_wallet_journal_add(c, account_id, kind, amount, order_id, reference, now, err);
    if (st == SM_OK && entry_id != NULL)
        *entry_id = sm_db_insert_id(c);
    if (st == SM_OK && after != NULL)
        st = lock_balance(c, account_id, after, err);
    return st;
}

sm_status sm_rt_wallet_get(const sm_rt_ctx *ctx, uint64_t account_id, unsigned limit,
                           unsigned offset, sm_rt_result *out, sm_error *err)
{
    sm_rt_result_init(out);
    sm_db_conn *c = NULL;
    sm_status st = sm_db_acquire(ctx->db, &c, err);
    if (st != SM_OK)
        return st;
    sm_db_rows *rows = NULL;
    int has = 0;
    int64_t balance = 0;
    st = sm_db_query(c, "SELECT balance FROM accounts WHERE account_id = ?",
                     SM_DB_PARAMS(sm_db_uint(account_id)), &rows, err);
    if (st == SM_OK)
        st = sm_db_rows_next(rows, &has, err);
    if (st == SM_OK && has)
        st = sm_db_col_int(rows, 0, &balance, err);
    sm_db_rows_free(rows);
    rows = NULL;
    json_t *list = json_array();
    if (st == SM_OK)
        st = sm_db_query(c,
                         "SELECT entry_id, kind, amount, balance_after, order_id, created_at "
                         "FROM wallet_journal WHERE account_id = ? "
                         "ORDER BY entry_id DESC LIMIT ? OFFSET ?",
                         SM_DB_PARAMS(sm_db_uint(account_id), sm_db_uint(limit),
                                      sm_db_uint(offset)),
                         &rows, err);
    while (st == SM_OK && list != NULL && (st = sm_db_rows_next(rows, &has, err)) == SM_OK && has) {
        uint64_t id = 0;
        int64_t amount = 0, after = 0, created = 0;
        if ((st = sm_db_col_uint(rows, 0, &id, err)) != SM_OK ||
            (st = sm_db_col_int(rows, 2, &amount, err)) != SM_OK ||
            (st = sm_db_col_int(rows, 3, &after, err)) != SM_OK ||
            (st = sm_db_col_int(rows, 5, &created, err)) != SM_OK)
            break;
        json_t *e = entry_json(id, sm_db_col_text(rows, 1, NULL), amount, after,
                               sm_db_col_text(rows, 4, NULL), created);
        if (e == NULL || json_array_append_new(list, e) != 0)
            st = sm_error_set(err, SM_ERR_NOMEM, "out of memory");
    }
    sm_db_rows_free(rows);
    sm_db_release(c);
    if (st == SM_OK && list != NULL) {
        out->status = 200;
        out->body = json_pack("{s:I,s:o,s:I,s:I}", "balance", (json_int_t)balance, "entries",
                              list, "limit", (json_int_t)limit, "offset", (json_int_t)offset);
        list = NULL;
        if (out->body == NULL)
            st = sm_error_set(err, SM_ERR_NOMEM, "out of memory");
    }
    json_decref(list);
    return st;
}

/* ---- redeem --------------------------------------------------------------------- */

static const sm_json_field redeem_fields[] = {
    {"code", SM_JSON_STRING, 1},
    {NULL, 0, 0},
};

typedef struct redeem_args {
    const sm_rt_ctx *ctx;
    uint64_t account_id;
    uint8_t code_hash[32];
    sm_rt_result *out;
} redeem_args;

static sm_status redeem_tx(sm_db_conn *c, void *argp, sm_error *err)
{
    redeem_args *a = argp;
    sm_rt_result_clear(a->out);
    int64_t now = sm_rt_now(a->ctx);
    sm_db_rows *rows = NULL;
    int has = 0;
    sm_status st = sm_db_query(c,
                               "SELECT points, COALESCE(expires_at, 0), redeemed_by "
                               "FROM redeem_codes WHERE code_sha256 = ? FOR UPDATE",
                               SM_DB_PARAMS(sm_db_blob(a->code_hash, 32)), &rows, err);
    if (st == SM_OK)
        st = sm_db_rows_next(rows, &has, err);
    int64_t points = 0, expires = 0;
    int redeemed = 0;
    if (st == SM_OK && has && (st = sm_db_col_int(rows, 0, &points, err)) == SM_OK &&
        (st = sm_db_col_int(rows, 1, &expires, err)) == SM_OK)
        redeemed = sm_db_col_text(rows, 2, NULL) != NULL;
    sm_db_rows_free(rows);
    if (st != SM_OK)
        return st;
    if (!has)
        return rt_refuse_tx(a->out, 404, "unknown-code", "Unknown code",
                            "no such code; check what you typed");
    if (redeemed)
        return rt_refuse_tx(a->out, 409, "code-redeemed", "Code already redeemed",
                            "this code was already redeemed");
    if (expires != 0 && expires <= now)
        return rt_refuse_tx(a->out, 410, "code-expired", "Code expired", "this code has expired");
    st = sm_db_exec(c,
                    "UPDATE redeem_codes SET redeemed_by = ?, redeemed_at = ? "
                    "WHERE code_sha256 = ?",
                    SM_DB_PARAMS(sm_db_uint(a->account_id), sm_db_int(now),
                                 sm_db_blob(a->code_hash, 32)),
                    NULL, err);
    uint64_t id = 0;
    int64_t after = 0;
    if (st == SM_OK)
        st = rt_wallet_move(c, a->account_id, "redeem", points, NULL, NULL, now, &id, &after, err);
    if (st != SM_OK)
        return st;
    a->out->status = 200;
    a->out->body = entry_json(id, "redeem", points, after, NULL, now);
    return a->out->body ? SM_OK : sm_error_set(err, SM_ERR_NOMEM, "out of memory");
}

sm_status sm_rt_wallet_redeem(const sm_rt_ctx *ctx, uint64_t account_id, json_t *body,
                              sm_rt_result *out, sm_error *err)
{
    sm_rt_result_init(out);
    sm_error e = {0};
    const char *code = NULL;
    char norm[21];
    if (sm_json_check_fields(body, redeem_fields, "redeem request", &e) != SM_OK ||
        sm_json_get_string(body, "code", 64, 1, &code, "redeem request", &e) != SM_OK)
        return rt_bad_request(out, &e);
    if (sm_rt_code_normalize(code, norm, &e) != SM_OK)
        return sm_rt_refuse(out, 400, "invalid-request", "Invalid request", "field \"code\": %s",
                            e.message);
    redeem_args a = {ctx, account_id, {0}, out};
    sm_rt_sha256(norm, 20, a.code_hash);
    OPENSSL_cleanse(norm, sizeof(norm));
    return rt_run(ctx, redeem_tx, &a, out, err);
}

/* ---- admin: codes ----------------------------------------------------------------- */

static const sm_json_field codes_fields[] = {
    {"points", SM_JSON_INTEGER, 1},
    {"count", SM_JSON_INTEGER, 1},
    {"expires_at", SM_JSON_INTEGER, 0},
    {NULL, 0, 0},
};

typedef struct codes_args {
    const sm_rt_ctx *ctx;
    int64_t points, expires_at;
    size_t count;
    char (*codes)[SM_RT_CODE_SIZE];
} codes_args;

static sm_status codes_tx(sm_db_conn *c, void *argp, sm_error *err)
{
    codes_args *a = argp;
    int64_t now = sm_rt_now(a->ctx);
    sm_status st = SM_OK;
    for (size_t i = 0; i < a->count && st == SM_OK; i++) {
        char norm[21];
        uint8_t h[32];
        if ((st = sm_rt_code_normalize(a->codes[i], norm, err)) != SM_OK)
            break;
        sm_rt_sha256(norm, 20, h);
        st = sm_db_exec(c,
                        "INSERT INTO redeem_codes (code_sha256, points, created_at, expires_at) "
                        "VALUES (?, ?, ?, ?)",
                        SM_DB_PARAMS(sm_db_blob(h, 32), sm_db_int(a->points), sm_db_int(now),
                                     a->expires_at ? sm_db_int(a->expires_at) : sm_db_null()),
                        NULL, err);
    }
    return st;
}

sm_status sm_rt_codes_issue(const sm_rt_ctx *ctx, json_t *body, sm_rt_result *out,
                            sm_error *err)
{
    sm_rt_result_init(out);
    sm_error e = {0};
    uint64_t points = 0, count = 0, expires = 0;
    if (sm_json_check_fields(body, codes_fields, "code batch", &e) != SM_OK ||
        sm_json_get_uint64(body, "points", POINTS_MAX, 1, &points, "code batch", &e) != SM_OK ||
        sm_json_get_uint64(body, "count", CODES_MAX, 1, &count, "code batch", &e) != SM_OK ||
        sm_json_get_uint64(body, "expires_at", (uint64_t)1 << 40, 0, &expires, "code batch", &e) !=
            SM_OK)
        return rt_bad_request(out, &e);
    if (points == 0 || count == 0)
        return sm_rt_refuse(out, 400, "invalid-request", "Invalid request",
                            "fields \"points\" (1..%d) and \"count\" (1..%d) must be positive",
                            POINTS_MAX, CODES_MAX);
    if (expires != 0 && (int64_t)expires <= sm_rt_now(ctx))
        return sm_rt_refuse(out, 400, "invalid-request", "Invalid request",
                            "field \"expires_at\" is in the past");
    codes_args a = {ctx, (int64_t)points, (int64_t)expires, (size_t)count,
                    calloc((size_t)count, SM_RT_CODE_SIZE)};
    if (a.codes == NULL)
        return sm_error_set(err, SM_ERR_NOMEM, "out of memory");
    sm_status st = SM_OK;
    for (size_t i = 0; i < a.count && st == SM_OK; i++)
        st = sm_rt_code_new(a.codes[i], err);
    if (st == SM_OK)
        st = rt_run(ctx, codes_tx, &a, out, err);
    json_t *list = st == SM_OK ? json_array() : NULL;
    for (size_t i = 0; list != NULL && i < a.count; i++)
        json_array_append_new(list, json_string(a.codes[i]));
    OPENSSL_cleanse(a.codes, a.count * SM_RT_CODE_SIZE);
    free(a.codes);
    if (st != SM_OK)
        return st;
    out->status = 201;
    out->body = json_pack("{s:I,s:o}", "points", (json_int_t)points, "codes", list);
    if (out->body != NULL && expires != 0)
        json_object_set_new(out->body, "expires_at", json_integer((json_int_t)expires));
    return out->body ? SM_OK : sm_error_set(err, SM_ERR_NOMEM, "out of memory");
}

/* ---- top-up through the payment authority ------------------------------------------ */

static const sm_json_field topup_fields[] = {
    {"points", SM_JSON_INTEGER, 1},
    {"payment_token", SM_JSON_STRING, 1},
    {NULL, 0, 0},
};

typedef struct topup_args {
    const sm_rt_ctx *ctx;
    uint64_t account_id;
    const char *idem_key;
    int64_t points;
    uint8_t request_hash[32];
    char reference[64];   /* in: a fresh random one; out: the row's */
    int done;             /* out: answered (a repeat of a credited top-up, or 409) */
    sm_rt_result *out;
} topup_args;

/* Answers the journal entry a credited top-up made (200). */
static sm_status topup_answer_entry(sm_db_conn *c, topup_args *a, uint64_t entry_id,
                                    sm_error *err)
{
    sm_db_rows *rows = NULL;
    int has = 0;
    sm_status st = sm_db_query(c,
                               "SELECT amount, balance_after, created_at FROM wallet_journal "
                               "WHERE entry_id = ? AND account_id = ?",
                               SM_DB_PARAMS(sm_db_uint(entry_id), sm_db_uint(a->account_id)),
                               &rows, err);
    if (st == SM_OK)
        st = sm_db_rows_next(rows, &has, err);
    if (st == SM_OK && !has)
        st = sm_error_set(err, SM_ERR_DB, "top-up entry %llu is missing",
                          (unsigned long long)entry_id);
    int64_t amount = 0, after = 0, created = 0;
    if (st == SM_OK && (st = sm_db_col_int(rows, 0, &amount, err)) == SM_OK &&
        (st = sm_db_col_int(rows, 1, &after, err)) == SM_OK)
        st = sm_db_col_int(rows, 2, &created, err);
    sm_db_rows_free(rows);
    if (st != SM_OK)
        return st;
    a->done = 1;
    a->out->status = 200;
    a->out->body = entry_json(entry_id, "purchase", amount, after, NULL, created);
    return a->out->body ? SM_OK : sm_error_set(err, SM_ERR_NOMEM, "out of memory");
}

/* Reads the account's top-up under a->idem_key (locked). *has 0: none.
 * Refuses another request under the same key (409); answers a credited
 * one (200, a->done); a pending one leaves its reference in a->reference. */
static sm_status topup_lookup(sm_db_conn *c, topup_args *a, int *has, sm_error *err)
{
    sm_db_rows *rows = NULL;
    *has = 0;
    sm_status st = sm_db_query(c,
                               "SELECT request_sha256, points, reference, state, entry_id "
                               "FROM topups WHERE account_id = ? AND idempotency_key = ? "
                               "FOR UPDATE",
                               SM_DB_PARAMS(sm_db_uint(a->account_id), sm_db_text(a->idem_key)),
                               &rows, err);
    if (st == SM_OK)
        st = sm_db_rows_next(rows, has, err);
    if (st != SM_OK || !*has) {
        sm_db_rows_free(rows);
        return st;
    }
    size_t hlen = 0;
    const char *h = sm_db_col_text(rows, 0, &hlen);
    int64_t points = 0;
    uint64_t entry_id = 0;
    int same = 0, credited = 0;
    if ((st = sm_db_col_int(rows, 1, &points, err)) == SM_OK &&
        (st = rt_col_copy(rows, 2, a->reference, sizeof(a->reference), err)) == SM_OK) {
        const char *state = sm_db_col_text(rows, 3, NULL);
        credited = state != NULL && strcmp(state, "credited") == 0;
        if (credited)
            st = sm_db_col_uint(rows, 4, &entry_id, err);
        /* A row from before version 2 has no request hash: its amount. */
        same = points == a->points &&
               (h == NULL ? credited
                          : hlen == 32 && CRYPTO_memcmp(h, a->request_hash, 32) == 0);
    }
    sm_db_rows_free(rows);
    if (st != SM_OK)
        return st;
    if (!same) {
        a->done = 1;
        return rt_refuse_tx(a->out, 409, "idempotency-key-reused", "Idempotency key reused",
                            "this Idempotency-Key was used for another top-up (another amount "
                            "or payment token); use a new key for a new top-up");
    }
    return credited ? topup_answer_entry(c, a, entry_id, err) : SM_OK;
}

/* Before the charge: the top-up row, bound to this account, amount and
 * request, with the server's random reference (or the existing one). */
static sm_status topup_begin_tx(sm_db_conn *c, void *argp, sm_error *err)
{
    topup_args *a = argp;
    sm_rt_result_clear(a->out);
    a->done = 0;
    int has = 0;
    sm_status st = topup_lookup(c, a, &has, err);
    if (st != SM_OK || has)
        return st;
    st = sm_db_exec(c,
                    "INSERT INTO topups (account_id, idempotency_key, request_sha256, points, "
                    "reference, state, created_at) VALUES (?, ?, ?, ?, ?, 'pending', ?)",
                    SM_DB_PARAMS(sm_db_uint(a->account_id), sm_db_text(a->idem_key),
                                 sm_db_blob(a->request_hash, 32), sm_db_int(a->points),
                                 sm_db_text(a->reference), sm_db_int(sm_rt_now(a->ctx))),
                    NULL, err);
    if (st == SM_ERR_DUPLICATE) /* a concurrent first request: read its row */
        return sm_error_set(err, SM_ERR_CONFLICT, "concurrent top-up with the same key");
    return st;
}

/* After an approved charge: credits the row's amount to its account, once. */
static sm_status topup_credit_tx(sm_db_conn *c, void *argp, sm_error *err)
{
    topup_args *a = argp;
    sm_rt_result_clear(a->out);
    a->done = 0;
    int has = 0;
    char charged[sizeof(a->reference)];
    memcpy(charged, a->reference, sizeof(charged));
    sm_status st = topup_lookup(c, a, &has, err);
    if (st != SM_OK || a->done)
        return st;
    if (!has || strcmp(charged, a->reference) != 0)
        return sm_error_set(err, SM_ERR_DB, "top-up row changed under the charge");
    int64_t now = sm_rt_now(a->ctx);
    uint64_t id = 0;
    int64_t after = 0;
    st = rt_wallet_move(c, a->account_id, "purchase", a->points, NULL, a->reference, now, &id,
                        &after, err);
    if (st == SM_OK)
        st = sm_db_exec(c,
                        "UPDATE topups SET state = 'credited', entry_id = ? "
                        "WHERE account_id = ? AND idempotency_key = ? AND state = 'pending'",
                        SM_DB_PARAMS(sm_db_uint(id), sm_db_uint(a->account_id),
                                     sm_db_text(a->idem_key)),
                        NULL, err);
    if (st != SM_OK)
        return st;
    a->out->status = 201;
    a->out->body = entry_json(id, "purchase", a->points, after, NULL, now);
    return a->out->body ? SM_OK : sm_error_set(err, SM_ERR_NOMEM, "out of memory");
}

sm_status sm_rt_wallet_topup(const sm_rt_ctx *ctx, uint64_t account_id, const char *idem_key,
                             json_t *body, sm_rt_result *out, sm_error *err)
{
    sm_rt_result_init(out);
    sm_error e = {0};
    uint64_t points = 0;
    const char *token = NULL;
    if (sm_json_check_fields(body, topup_fields, "top-up", &e) != SM_OK ||
        sm_json_get_uint64(body, "points", POINTS_MAX, 1, &points, "top-up", &e) != SM_OK ||
        sm_json_get_string(body, "payment_token", 512, 1, &token, "top-up", &e) != SM_OK)
        return rt_bad_request(out, &e);
    if (points == 0 || token[0] == '\0')
        return sm_rt_refuse(out, 400, "invalid-request", "Invalid request",
                            "field \"points\" must be 1..%d and \"payment_token\" non-empty",
                            POINTS_MAX);
    if (sm_rt_idempotency_key_check(idem_key, &e) != SM_OK)
        return rt_bad_request(out, &e);
    if (ctx->payments == NULL)
        return sm_rt_refuse(out, 501, "payments-not-configured", "Payments not configured",
                            "this retailer takes no card payments; redeem a code instead");
    topup_args a = {ctx, account_id, idem_key, (int64_t)points, {0}, "", 0, out};
    /* The request's hash binds the key to this amount and payment token
     * (the token itself is never stored). */
    size_t tlen = strlen(token);
    char head[32];
    int hn = snprintf(head, sizeof(head), "topup\n%llu\n", (unsigned long long)points);
    char *req = malloc((size_t)hn + tlen);
    if (req == NULL)
        return sm_error_set(err, SM_ERR_NOMEM, "out of memory");
    memcpy(req, head, (size_t)hn);
    memcpy(req + hn, token, tlen);
    sm_rt_sha256(req, (size_t)hn + tlen, a.request_hash);
    OPENSSL_cleanse(req, (size_t)hn + tlen);
    free(req);
    /* The reference the payment authority sees: drawn here, never the
     * client's key, so no two accounts or requests share one. */
    uint8_t rnd[16];
    if (RAND_bytes(rnd, sizeof(rnd)) != 1)
        return sm_error_set(err, SM_ERR_CRYPTO, "RAND_bytes failed");
    memcpy(a.reference, "topup-", 6);
    for (size_t i = 0; i < sizeof(rnd); i++)
        snprintf(a.reference + 6 + 2 * i, 3, "%02x", rnd[i]);
    sm_status st = rt_run(ctx, topup_begin_tx, &a, out, err);
    if (st != SM_OK || a.done)
        return st;
    sm_rt_charge charge;
    st = ctx->payments->charge(ctx->payments->self, account_id, a.points, ctx->currency, token,
                               a.reference, &charge, err);
    if (st != SM_OK)
        return st;
    if (!charge.approved)
        return sm_rt_refuse(out, 402, "payment-declined", "Payment declined", "%s",
                            charge.decline_reason);
    /* The processor charges once per reference, so a repeat after an
     * unknown outcome (same key, same request: the same row and reference)
     * is safe; the row is credited once. */
    return rt_run(ctx, topup_credit_tx, &a, out, err);
}
