#include "config.h"

/* Retail store: shared helpers, accounts, API tokens, the login rate
 * limit and devices (sm_rt_store.h). */

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

#include "sm_jose.h"
#include "sm_json.h"
#include "sm_rt_auth.h"
#include "sm_rt_store_int.h"
#include "sm_rt_validate.h"
#include "sm_validate.h"

void sm_rt_result_init(sm_rt_result *out)
{
    memset(out, 0, sizeof(*out));
}

void sm_rt_result_clear(sm_rt_result *out)
{
    json_decref(out->body);
    free(out->raw);
    sm_rt_result_init(out);
}

static void set_refusal(sm_rt_result *out, int status, const char *slug, const char *title,
                        const char *fmt, va_list ap) __attribute__((format(printf, 5, 0)));

static void set_refusal(sm_rt_result *out, int status, const char *slug, const char *title,
                        const char *fmt, va_list ap)
{
    sm_rt_result_clear(out);
    out->status = status;
    out->slug = slug;
    out->title = title;
    vsnprintf(out->detail, sizeof(out->detail), fmt, ap);
}

sm_status sm_rt_refuse(sm_rt_result *out, int status, const char *slug, const char *title,
                       const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    set_refusal(out, status, slug, title, fmt, ap);
    va_end(ap);
    return SM_OK;
}

sm_status rt_refuse_tx(sm_rt_result *out, int status, const char *slug, const char *title,
                       const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    set_refusal(out, status, slug, title, fmt, ap);
    va_end(ap);
    return RT_REFUSED;
}

/* fn through runner (a transaction, or autocommit); a refusal the body
 * recorded in out is the answer, any other failure clears out. */
static sm_status run_with(sm_status (*runner)(sm_db_pool *, sm_db_tx_fn, void *, sm_error *),
                          const sm_rt_ctx *ctx, sm_db_tx_fn fn, void *arg, sm_rt_result *out,
                          sm_error *err)
{
    if (ctx->db == NULL)
        return sm_error_set(err, SM_ERR_UNAVAILABLE, "the database is not configured");
    sm_status st = runner(ctx->db, fn, arg, err);
    if (st == RT_REFUSED && out->status >= 400)
        return SM_OK;
    if (st != SM_OK)
        sm_rt_result_clear(out);
    return st;
}

sm_status rt_run(const sm_rt_ctx *ctx, sm_db_tx_fn fn, void *arg, sm_rt_result *out,
                 sm_error *err)
{
    return run_with(sm_db_transaction, ctx, fn, arg, out, err);
}

sm_status rt_run_autocommit(const sm_rt_ctx *ctx, sm_db_tx_fn fn, void *arg, sm_rt_result *out,
                            sm_error *err)
{
    return run_with(sm_db_autocommit, ctx, fn, arg, out, err);
}

sm_status rt_bad_request(sm_rt_result *out, const sm_error *e)
{
    return sm_rt_refuse(out, 400, "invalid-request", "Invalid request", "%s", e->message);
}

sm_status rt_col_copy(sm_db_rows *rows, unsigned col, char *dst, size_t size, sm_error *err)
{
    size_t len = 0;
    const char *v = sm_db_col_text(rows, col, &len);
    if (v == NULL) {
        dst[0] = '\0';
        return SM_OK;
    }
    if (len >= size)
        return sm_error_set(err, SM_ERR_DB, "column %u longer than expected", col);
    memcpy(dst, v, len);
    dst[len] = '\0';
    return SM_OK;
}

int rt_set_text(json_t *obj, const char *name, const char *value)
{
    if (value == NULL || value[0] == '\0')
        return 0;
    return json_object_set_new(obj, name, json_string(value));
}

int64_t sm_rt_now(const sm_rt_ctx *ctx)
{
    return ctx->now != 0 ? ctx->now : (int64_t)time(NULL);
}

/* ---- sign-up ------------------------------------------------------------------ */

static const sm_json_field signup_fields[] = {
    {"email", SM_JSON_STRING, 1},
    {"password", SM_JSON_STRING, 1},
    {"display_name", SM_JSON_STRING, 0},
    {NULL, 0, 0},
};

typedef struct signup_args {
    const sm_rt_ctx *ctx;
    const char *email, *name, *hash;
    sm_rt_result *out;
} signup_args;

static sm_status signup_tx(sm_db_conn *c, void *argp, sm_error *err)
{
    signup_args *a = argp;
    sm_rt_result_clear(a->out);
    int64_t now = sm_rt_now(a->ctx);
    sm_status st = sm_db_exec(c,
                              "INSERT INTO accounts (email, display_name, password_hash, balance, "
                              "created_at) VALUES (?, ?, ?, 0, ?)",
                              SM_DB_PARAMS(sm_db_text(a->email), sm_db_text(a->name),
                                           sm_db_text(a->hash), sm_db_int(now)),
                              NULL, err);
    if (st == SM_ERR_DUPLICATE)
        return rt_refuse_tx(a->out, 409, "account-exists", "Account exists",
                            "an account with this e-mail address exists; log in instead "
                            "(POST /v1/sessions)");
    if (st != SM_OK)
        return st;
    uint64_t id = sm_db_insert_id(c);
    a->out->status = 201;
    a->out->body = json_pack("{s:I,s:s,s:I,s:I}", "account_id", (json_int_t)id, "email",
                             a->email, "balance", (json_int_t)0, "created_at", (json_int_t)now);
    if (a->out->body != NULL && a->name != NULL)
        rt_set_text(a->out->body, "display_name", a->name);
    return a->out->body != NULL ? SM_OK : sm_error_set(err, SM_ERR_NOMEM, "out of memory");
}

sm_status sm_rt_signup(const sm_rt_ctx *ctx, json_t *body, sm_rt_result *out, sm_error *err)
{
    sm_rt_result_init(out);
    sm_error e = {0};
    const char *email = NULL, *pw = NULL, *name = NULL;
    char norm[SM_RT_EMAIL_MAX + 1];
    if (sm_json_check_fields(body, signup_fields, "sign-up", &e) != SM_OK ||
        sm_json_get_string(body, "email", SM_RT_EMAIL_MAX, 1, &email, "sign-up", &e) != SM_OK ||
        sm_rt_email_normalize(email, norm, &e) != SM_OK ||
        sm_json_get_string(body, "password", SM_RT_PASSWORD_MAX, 1, &pw, "sign-up", &e) != SM_OK ||
        sm_rt_password_check(pw, json_string_length(json_object_get(body, "password")), &e) !=
            SM_OK ||
        sm_json_get_string(body, "display_name", SM_RT_NAME_MAX, 0, &name, "sign-up", &e) !=
            SM_OK ||
        (name != NULL && ((name[0] == '\0' &&
                           sm_error_set(&e, SM_ERR_FORMAT,
                                        "sign-up: field \"display_name\" is empty; leave it "
                                        "out for none") != SM_OK) ||
                          sm_validate_text(name, SM_RT_NAME_MAX, "field \"display_name\"", &e) !=
                              SM_OK)))
        return rt_bad_request(out, &e);
    char hash[SM_RT_PASSWORD_HASH_MAX];
    sm_status st = sm_rt_password_hash(pw, json_string_length(json_object_get(body, "password")),
                                       ctx->scrypt_ln, hash, err);
    if (st != SM_OK)
        return st;
    signup_args a = {ctx, norm, name, hash, out};
    return rt_run(ctx, signup_tx, &a, out, err);
}

/* ---- login and its rate limit --------------------------------------------------- */

static const sm_json_field login_fields[] = {
    {"email", SM_JSON_STRING, 1},
    {"password", SM_JSON_STRING, 1},
    {NULL, 0, 0},
};

typedef struct login_args {
    const sm_rt_ctx *ctx;
    uint8_t account_key[32], address_key[32];
    int limited;          /* out: over a limit */
    int64_t retry_after;
    char hash[SM_RT_PASSWORD_HASH_MAX];
    uint64_t account_id;  /* 0 = no such account */
    int64_t address_window_start; /* out: the address counter's window */
} login_args;

/* Failures in the current window for (scope, subject). */
static sm_status failures_of(sm_db_conn *c, const char *scope, const uint8_t subject[32],
                             int64_t now, int64_t window, uint64_t *count, int64_t *ends,
                             sm_error *err)
{
    sm_db_rows *rows = NULL;
    int has = 0;
    *count = 0;
    *ends = 0;
    sm_status st = sm_db_query(c,
                               "SELECT failures, window_start FROM login_failures "
                               "WHERE scope = ? AND subject = ?",
                               SM_DB_PARAMS(sm_db_text(scope), sm_db_blob(subject, 32)), &rows,
                               err);
    if (st == SM_OK)
        st = sm_db_rows_next(rows, &has, err);
    int64_t start = 0;
    if (st == SM_OK && has && (st = sm_db_col_uint(rows, 0, count, err)) == SM_OK &&
        (st = sm_db_col_int(rows, 1, &start, err)) == SM_OK) {
        if (start + window <= now)
            *count = 0;
        else
            *ends = start + window;
    }
    sm_db_rows_free(rows);
    return st;
}

static sm_status count_failure(sm_db_conn *c, const char *scope, const uint8_t subject[32],
                               int64_t now, int64_t window, sm_error *err)
{
    return sm_db_exec(c,
                      "INSERT INTO login_failures (scope, subject, window_start, failures) "
                      "VALUES (?, ?, ?, 1) ON DUPLICATE KEY UPDATE "
                      "failures = IF(window_start + ? <= VALUES(window_start), 1, failures + 1), "
                      "window_start = IF(window_start + ? <= VALUES(window_start), "
                      "VALUES(window_start), window_start)",
                      SM_DB_PARAMS(sm_db_text(scope), sm_db_blob(subject, 32), sm_db_int(now),
                                   sm_db_int(window), sm_db_int(window)),
                      NULL, err);
}

/* Counts this attempt before the password is verified, so parallel
 * attempts cannot all pass a check made before any of them is recorded:
 * the upserts lock the account's and then the address's counter row (always
 * in that order) until the commit, and the counts read back include every
 * attempt committed before. Over a limit: RT_REFUSED rolls the increments
 * back (an attempt refused here never reaches the password check, so it is
 * not counted) and a->limited is set. */
static sm_status login_check_tx(sm_db_conn *c, void *argp, sm_error *err)
{
    login_args *a = argp;
    int64_t now = sm_rt_now(a->ctx);
    int64_t window = a->ctx->login_window;
    uint64_t n_acc = 0, n_addr = 0;
    int64_t end_acc = 0, end_addr = 0;
    a->limited = 0;
    a->address_window_start = 0;
    sm_status st = count_failure(c, "account", a->account_key, now, window, err);
    if (st == SM_OK)
        st = count_failure(c, "address", a->address_key, now, window, err);
    if (st == SM_OK)
        st = failures_of(c, "account", a->account_key, now, window, &n_acc, &end_acc, err);
    if (st == SM_OK)
        st = failures_of(c, "address", a->address_key, now, window, &n_addr, &end_addr, err);
    if (st != SM_OK)
        return st;
    if (n_acc > a->ctx->login_max_account || n_addr > a->ctx->login_max_address) {
        a->limited = 1;
        int64_t end = n_acc > a->ctx->login_max_account ? end_acc : end_addr;
        a->retry_after = end > now ? end - now : 1;
        return RT_REFUSED;
    }
    a->address_window_start = end_addr - window;
    return SM_OK;
}

/* After a successful login: clears the account's count and takes this
 * attempt back from the address's (only failures count against it). */
static sm_status login_success_tx(sm_db_conn *c, void *argp, sm_error *err)
{
    login_args *a = argp;
    sm_status st = sm_db_exec(c,
                              "DELETE FROM login_failures WHERE scope = 'account' AND subject = ?",
                              SM_DB_PARAMS(sm_db_blob(a->account_key, 32)), NULL, err);
    if (st == SM_OK)
        st = sm_db_exec(c,
                        "UPDATE login_failures SET failures = failures - 1 WHERE scope = "
                        "'address' AND subject = ? AND window_start = ? AND failures > 0",
                        SM_DB_PARAMS(sm_db_blob(a->address_key, 32),
                                     sm_db_int(a->address_window_start)),
                        NULL, err);
    if (st == SM_OK) /* a success leaves no trace, as before it was counted */
        st = sm_db_exec(c,
                        "DELETE FROM login_failures WHERE scope = 'address' AND subject = ? "
                        "AND failures = 0",
                        SM_DB_PARAMS(sm_db_blob(a->address_key, 32)), NULL, err);
    return st;
}

typedef struct token_args {
    const sm_rt_ctx *ctx;
    uint64_t account_id;
    uint8_t token_hash[32];
    int64_t expires_at;
} token_args;

static sm_status token_insert_tx(sm_db_conn *c, void *argp, sm_error *err)
{
    token_args *a = argp;
    return sm_db_exec(c,
                      "INSERT INTO api_tokens (token_sha256, account_id, created_at, expires_at) "
                      "VALUES (?, ?, ?, ?)",
                      SM_DB_PARAMS(sm_db_blob(a->token_hash, 32), sm_db_uint(a->account_id),
                                   sm_db_int(sm_rt_now(a->ctx)), sm_db_int(a->expires_at)),
                      NULL, err);
}

/* A hash for the unknown-account case, so a login for an address nobody
 * uses costs the same scrypt work as a real one. */
static void dummy_hash(unsigned ln, char out[SM_RT_PASSWORD_HASH_MAX])
{
    snprintf(out, SM_RT_PASSWORD_HASH_MAX,
             "$scrypt$ln=%u,r=8,p=1$AAAAAAAAAAAAAAAAAAAAAA$"
             "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
             ln);
}

sm_status sm_rt_login(const sm_rt_ctx *ctx, json_t *body, const char *client_addr,
                      sm_rt_result *out, sm_error *err)
{
    sm_rt_result_init(out);
    sm_error e = {0};
    const char *email = NULL, *pw = NULL;
    char norm[SM_RT_EMAIL_MAX + 1];
    if (sm_json_check_fields(body, login_fields, "login", &e) != SM_OK ||
        sm_json_get_string(body, "email", SM_RT_EMAIL_MAX, 1, &email, "login", &e) != SM_OK ||
        sm_rt_email_normalize(email, norm, &e) != SM_OK ||
        sm_json_get_string(body, "password", SM_RT_PASSWORD_MAX, 1, &pw, "login", &e) != SM_OK)
        return rt_bad_request(out, &e);
    if (ctx->db == NULL)
        return sm_error_set(err, SM_ERR_UNAVAILABLE, "the database is not configured");
    login_args a;
    memset(&a, 0, sizeof(a));
    a.ctx = ctx;
    sm_rt_sha256(norm, strlen(norm), a.account_key);
    sm_rt_sha256(client_addr ? client_addr : "", client_addr ? strlen(client_addr) : 0,
                 a.address_key);
    sm_status st = sm_db_transaction(ctx->db, login_check_tx, &a, err);
    if (st != SM_OK && !(st == RT_REFUSED && a.limited))
        return st;
    if (a.limited) {
        sm_rt_refuse(out, 429, "too-many-attempts", "Too many login attempts",
                     "too many failed logins for this account or from this address; try again "
                     "in %lld seconds",
                     (long long)a.retry_after);
        out->retry_after = (int)(a.retry_after > 86400 ? 86400 : a.retry_after);
        return SM_OK;
    }
    /* The lookup needs no transaction of its own. */
    sm_db_conn *c = NULL;
    if ((st = sm_db_acquire(ctx->db, &c, err)) != SM_OK)
        return st;
    sm_db_rows *rows = NULL;
    int has = 0;
    st = sm_db_query(c, "SELECT account_id, password_hash FROM accounts WHERE email = ?",
                     SM_DB_PARAMS(sm_db_text(norm)), &rows, err);
    if (st == SM_OK)
        st = sm_db_rows_next(rows, &has, err);
    if (st == SM_OK && has && (st = sm_db_col_uint(rows, 0, &a.account_id, err)) == SM_OK)
        st = rt_col_copy(rows, 1, a.hash, sizeof(a.hash), err);
    sm_db_rows_free(rows);
    sm_db_release(c);
    if (st != SM_OK)
        return st;
    int ok = 0;
    size_t pwlen = json_string_length(json_object_get(body, "password"));
    if (!has)
        dummy_hash(ctx->scrypt_ln, a.hash);
    st = sm_rt_password_verify(pw, pwlen, a.hash, &ok, err);
    if (st != SM_OK)
        return st;
    ok = ok && has;
    /* A failure was counted before the check; a success undoes that. */
    if (ok && (st = sm_db_transaction(ctx->db, login_success_tx, &a, err)) != SM_OK)
        return st;
    if (!ok)
        return sm_rt_refuse(out, 401, "login-failed", "Login failed",
                            "the e-mail address or the password is wrong");
    char token[SM_RT_TOKEN_SIZE];
    if ((st = sm_rt_token_new(token, err)) != SM_OK)
        return st;
    token_args t = {ctx, a.account_id, {0}, sm_rt_now(ctx) + ctx->token_lifetime};
    sm_rt_sha256(token, strlen(token), t.token_hash);
    st = sm_db_transaction(ctx->db, token_insert_tx, &t, err);
    if (st == SM_OK) {
        out->status = 201;
        out->body = json_pack("{s:s,s:s,s:I,s:I}", "token", token, "token_type", "Bearer",
                              "expires_at", (json_int_t)t.expires_at, "account_id",
                              (json_int_t)a.account_id);
        if (out->body == NULL)
            st = sm_error_set(err, SM_ERR_NOMEM, "out of memory");
    }
    OPENSSL_cleanse(token, sizeof(token));
    return st;
}

sm_status sm_rt_authenticate(const sm_rt_ctx *ctx, const char *token, uint64_t *account_id,
                             sm_rt_result *out, sm_error *err)
{
    sm_rt_result_init(out);
    *account_id = 0;
    if (token == NULL)
        return sm_rt_refuse(out, 401, "token-required", "API token required",
                            "send Authorization: Bearer <token> (get one from POST /v1/sessions)");
    if (!sm_rt_token_syntax_ok(token))
        return sm_rt_refuse(out, 401, "token-invalid", "API token invalid",
                            "the bearer token is malformed; log in again (POST /v1/sessions)");
    if (ctx->db == NULL)
        return sm_error_set(err, SM_ERR_UNAVAILABLE, "the database is not configured");
    uint8_t h[32];
    sm_rt_sha256(token, strlen(token), h);
    sm_db_conn *c = NULL;
    sm_status st = sm_db_acquire(ctx->db, &c, err);
    if (st != SM_OK)
        return st;
    sm_db_rows *rows = NULL;
    int has = 0;
    int64_t expires = 0, revoked = 0;
    st = sm_db_query(c,
                     "SELECT account_id, expires_at, COALESCE(revoked_at, 0) FROM api_tokens "
                     "WHERE token_sha256 = ?",
                     SM_DB_PARAMS(sm_db_blob(h, 32)), &rows, err);
    if (st == SM_OK)
        st = sm_db_rows_next(rows, &has, err);
    if (st == SM_OK && has && (st = sm_db_col_uint(rows, 0, account_id, err)) == SM_OK &&
        (st = sm_db_col_int(rows, 1, &expires, err)) == SM_OK)
        st = sm_db_col_int(rows, 2, &revoked, err);
    sm_db_rows_free(rows);
    sm_db_release(c);
    if (st != SM_OK)
        return st;
    if (!has || revoked != 0 || expires <= sm_rt_now(ctx)) {
        *account_id = 0;
        return sm_rt_refuse(out, 401, "token-invalid", "API token invalid",
                            "the bearer token is unknown, expired or revoked; log in again "
                            "(POST /v1/sessions)");
    }
    return SM_OK;
}

typedef struct logout_args {
    const sm_rt_ctx *ctx;
    uint8_t h[32];
} logout_args;

static sm_status logout_tx(sm_db_conn *c, void *argp, sm_error *err)
{
    logout_args *a = argp;
    return sm_db_exec(c,
                      "UPDATE api_tokens SET revoked_at = ? WHERE token_sha256 = ? AND "
                      "revoked_at IS NULL",
                      SM_DB_PARAMS(sm_db_int(sm_rt_now(a->ctx)), sm_db_blob(a->h, 32)), NULL, err);
}

sm_status sm_rt_logout(const sm_rt_ctx *ctx, const char *token, sm_rt_result *out,
                       sm_error *err)
{
    sm_rt_result_init(out);
    logout_args a = {ctx, {0}};
    sm_rt_sha256(token, strlen(token), a.h);
    sm_status st = rt_run(ctx, logout_tx, &a, out, err);
    if (st == SM_OK)
        out->status = 204;
    return st;
}

sm_status sm_rt_account_get(const sm_rt_ctx *ctx, uint64_t account_id, sm_rt_result *out,
                            sm_error *err)
{
    sm_rt_result_init(out);
    sm_db_conn *c = NULL;
    sm_status st = sm_db_acquire(ctx->db, &c, err);
    if (st != SM_OK)
        return st;
    sm_db_rows *rows = NULL;
    int has = 0;
    st = sm_db_query(c,
                     "SELECT email, display_name, balance, created_at FROM accounts "
                     "WHERE account_id = ?",
                     SM_DB_PARAMS(sm_db_uint(account_id)), &rows, err);
    if (st == SM_OK)
        st = sm_db_rows_next(rows, &has, err);
    int64_t balance = 0, created = 0;
    if (st == SM_OK && has && (st = sm_db_col_int(rows, 2, &balance, err)) == SM_OK &&
        (st = sm_db_col_int(rows, 3, &created, err)) == SM_OK) {
        out->status = 200;
        out->body = json_pack("{s:I,s:s,s:I,s:I}", "account_id", (json_int_t)account_id,
                              "email", sm_db_col_text(rows, 0, NULL), "balance",
                              (json_int_t)balance, "created_at", (json_int_t)created);
        if (out->body == NULL)
            st = sm_error_set(err, SM_ERR_NOMEM, "out of memory");
        else
            rt_set_text(out->body, "display_name", sm_db_col_text(rows, 1, NULL));
    } else if (st == SM_OK) {
        sm_rt_refuse(out, 401, "token-invalid", "API token invalid", "the account is gone");
    }
    sm_db_rows_free(rows);
    sm_db_release(c);
    return st;
}

/* ---- housekeeping --------------------------------------------------------------------- */

typedef struct purge_args {
    const sm_rt_ctx *ctx;
    uint64_t purged;
} purge_args;

static sm_status purge_tx(sm_db_conn *c, void *argp, sm_error *err)
{
    purge_args *a = argp;
    int64_t now = sm_rt_now(a->ctx);
    uint64_t n1 = 0, n2 = 0;
    sm_status st = sm_db_exec(c,
                              "DELETE FROM api_tokens WHERE expires_at <= ? OR revoked_at <= ? "
                              "LIMIT 10000",
                              SM_DB_PARAMS(sm_db_int(now), sm_db_int(now)), &n1, err);
    if (st == SM_OK)
        st = sm_db_exec(c, "DELETE FROM login_failures WHERE window_start + ? <= ? LIMIT 10000",
                        SM_DB_PARAMS(sm_db_int(a->ctx->login_window), sm_db_int(now)), &n2, err);
    a->purged = n1 + n2;
    return st;
}

sm_status sm_rt_purge_expired(const sm_rt_ctx *ctx, uint64_t *purged, sm_error *err)
{
    *purged = 0;
    if (ctx->db == NULL)
        return sm_error_set(err, SM_ERR_UNAVAILABLE, "the database is not configured");
    purge_args a = {ctx, 0};
    sm_status st = sm_db_transaction(ctx->db, purge_tx, &a, err);
    *purged = a.purged;
    return st;
}

/* ---- devices ---------------------------------------------------------------------- */

static const sm_json_field device_fields[] = {
    {"name", SM_JSON_STRING, 0},
    {"jwk", SM_JSON_OBJECT, 1},
    {NULL, 0, 0},
};

typedef struct device_args {
    const sm_rt_ctx *ctx;
    uint64_t account_id;
    const char *name, *jkt, *jwk;
    sm_rt_result *out;
} device_args;

static json_t *device_json(const char *jkt, const char *name, const char *jwk, int64_t created)
{
    json_t *o = json_pack("{s:s,s:I}", "jkt", jkt, "created_at", (json_int_t)created);
    if (o == NULL)
        return NULL;
    rt_set_text(o, "name", name);
    json_t *k = jwk != NULL ? json_loads(jwk, 0, NULL) : NULL;
    if (k != NULL)
        json_object_set_new(o, "jwk", k);
    return o;
}

static sm_status device_tx(sm_db_conn *c, void *argp, sm_error *err)
{
    device_args *a = argp;
    sm_rt_result_clear(a->out);
    sm_db_rows *rows = NULL;
    int has = 0;
    sm_status st = sm_db_query(c,
                               "SELECT account_id, name, created_at FROM devices WHERE jkt = ? "
                               "FOR UPDATE",
                               SM_DB_PARAMS(sm_db_text(a->jkt)), &rows, err);
    if (st == SM_OK)
        st = sm_db_rows_next(rows, &has, err);
    uint64_t owner = 0;
    int64_t created = 0;
    char name[SM_RT_NAME_MAX * 4 + 1] = "";
    if (st == SM_OK && has && (st = sm_db_col_uint(rows, 0, &owner, err)) == SM_OK &&
        (st = rt_col_copy(rows, 1, name, sizeof(name), err)) == SM_OK)
        st = sm_db_col_int(rows, 2, &created, err);
    sm_db_rows_free(rows);
    if (st != SM_OK)
        return st;
    if (has && owner != a->account_id)
        return rt_refuse_tx(a->out, 409, "device-taken", "Device registered elsewhere",
                            "this device key is registered to another account; a device "
                            "belongs to one account (make a new key pair for this one)");
    if (has) {
        a->out->status = 200;
        a->out->body = device_json(a->jkt, name, a->jwk, created);
        return a->out->body ? SM_OK : sm_error_set(err, SM_ERR_NOMEM, "out of memory");
    }
    created = sm_rt_now(a->ctx);
    st = sm_db_exec(c,
                    "INSERT INTO devices (jkt, account_id, name, jwk, created_at) "
                    "VALUES (?, ?, ?, ?, ?)",
                    SM_DB_PARAMS(sm_db_text(a->jkt), sm_db_uint(a->account_id),
                                 sm_db_text(a->name), sm_db_text(a->jwk), sm_db_int(created)),
                    NULL, err);
    if (st == SM_ERR_DUPLICATE)
        return sm_error_set(err, SM_ERR_CONFLICT, "concurrent registration of the same device");
    if (st != SM_OK)
        return st;
    a->out->status = 201;
    a->out->body = device_json(a->jkt, a->name, a->jwk, created);
    return a->out->body ? SM_OK : sm_error_set(err, SM_ERR_NOMEM, "out of memory");
}

sm_status sm_rt_device_register(const sm_rt_ctx *ctx, uint64_t account_id, json_t *body,
                                sm_rt_result *out, sm_error *err)
{
    sm_rt_result_init(out);
    sm_error e = {0};
    const char *name = NULL;
    if (sm_json_check_fields(body, device_fields, "device", &e) != SM_OK ||
        sm_json_get_string(body, "name", SM_RT_NAME_MAX, 0, &name, "device", &e) != SM_OK ||
        (name != NULL &&
         ((name[0] == '\0' && sm_error_set(&e, SM_ERR_FORMAT,
                                            "device: field \"name\" is empty; leave it out "
                                            "for none") != SM_OK) ||
          sm_validate_text(name, SM_RT_NAME_MAX, "field \"name\"", &e) != SM_OK)))
        return rt_bad_request(out, &e);
    json_t *jwk_obj = json_object_get(body, "jwk");
    char *jwk_text = json_dumps(jwk_obj, JSON_COMPACT | JSON_SORT_KEYS);
    if (jwk_text == NULL)
        return sm_error_set(err, SM_ERR_NOMEM, "out of memory");
    sm_jwk *jwk = NULL;
    sm_status st = sm_jwk_from_json(jwk_text, strlen(jwk_text), &jwk, &e);
    free(jwk_text);
    if (st != SM_OK)
        return sm_rt_refuse(out, 400, "invalid-jwk", "Invalid device key",
                            "field \"jwk\": %s; send the device's public P-256 key "
                            "(secmedia device keygen)",
                            e.message);
    if (sm_jwk_has_private(jwk)) {
        sm_jwk_free(jwk);
        return sm_rt_refuse(out, 400, "invalid-jwk", "Invalid device key",
                            "field \"jwk\" holds a private key (\"d\"); send only the public "
                            "part and keep the private key on the device");
    }
    char jkt[SM_JKT_SIZE];
    char *pub = NULL;
    if ((st = sm_jwk_thumbprint(jwk, jkt, err)) == SM_OK) {
        pub = sm_jwk_to_json(jwk, 0, err);
        if (pub == NULL)
            st = err->status ? err->status : SM_ERR_NOMEM;
    }
    sm_jwk_free(jwk);
    if (st != SM_OK)
        return st;
    device_args a = {ctx, account_id, name, jkt, pub, out};
    st = rt_run(ctx, device_tx, &a, out, err);
    sm_jwk_json_free(pub);
    return st;
}

sm_status sm_rt_device_list(const sm_rt_ctx *ctx, uint64_t account_id, sm_rt_result *out,
                            sm_error *err)
{
    sm_rt_result_init(out);
    sm_db_conn *c = NULL;
    sm_status st = sm_db_acquire(ctx->db, &c, err);
    if (st != SM_OK)
        return st;
    sm_db_rows *rows = NULL;
    st = sm_db_query(c,
                     "SELECT jkt, name, jwk, created_at FROM devices WHERE account_id = ? "
                     "ORDER BY created_at, jkt",
                     SM_DB_PARAMS(sm_db_uint(account_id)), &rows, err);
    json_t *list = json_array();
    int has = 0;
    while (st == SM_OK && list != NULL && (st = sm_db_rows_next(rows, &has, err)) == SM_OK && has) {
        int64_t created = 0;
        if ((st = sm_db_col_int(rows, 3, &created, err)) != SM_OK)
            break;
        json_t *d = device_json(sm_db_col_text(rows, 0, NULL), sm_db_col_text(rows, 1, NULL),
                                sm_db_col_text(rows, 2, NULL), created);
        if (d == NULL || json_array_append_new(list, d) != 0)
            st = sm_error_set(err, SM_ERR_NOMEM, "out of memory");
    }
    sm_db_rows_free(rows);
    sm_db_release(c);
    if (st == SM_OK && list != NULL) {
        out->status = 200;
        out->body = json_pack("{s:o}", "devices", list);
        list = NULL;
    }
    json_decref(list);
    if (st == SM_OK && out->body == NULL)
        st = sm_error_set(err, SM_ERR_NOMEM, "out of memory");
    return st;
}

typedef struct remove_args {
    uint64_t account_id;
    const char *jkt;
    uint64_t affected;
} remove_args;

static sm_status remove_tx(sm_db_conn *c, void *argp, sm_error *err)
{
    remove_args *a = argp;
    return sm_db_exec(c, "DELETE FROM devices WHERE jkt = ? AND account_id = ?",
                      SM_DB_PARAMS(sm_db_text(a->jkt), sm_db_uint(a->account_id)), &a->affected,
                      err);
}

sm_status sm_rt_device_remove(const sm_rt_ctx *ctx, uint64_t account_id, const char *jkt,
                              sm_rt_result *out, sm_error *err)
{
    sm_rt_result_init(out);
    if (!sm_rt_jkt_syntax_ok(jkt))
        return sm_rt_refuse(out, 400, "invalid-request", "Invalid request",
                            "the path names no device thumbprint (43 base64url characters)");
    remove_args a = {account_id, jkt, 0};
    sm_status st = rt_run(ctx, remove_tx, &a, out, err);
    if (st != SM_OK)
        return st;
    if (a.affected == 0)
        return sm_rt_refuse(out, 404, "not-found", "Not found",
                            "no device with this thumbprint is registered to your account");
    out->status = 204;
    return SM_OK;
}
