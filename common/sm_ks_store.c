#include "config.h"

/* Shared pieces of the key server store and the registration of owners and
 * retailers (see sm_ks_store.h). */

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>

#include "sm_ks_store_int.h"
#include "sm_validate.h"

void sm_ks_result_init(sm_ks_result *out)
{
    memset(out, 0, sizeof(*out));
}

void sm_ks_result_clear(sm_ks_result *out)
{
    json_decref(out->body);
    json_decref(out->extensions);
    sm_ks_result_init(out);
}

static void set_refusal(sm_ks_result *out, int status, const char *slug, const char *title,
                        const char *fmt, va_list ap) __attribute__((format(printf, 5, 0)));

static void set_refusal(sm_ks_result *out, int status, const char *slug, const char *title,
                        const char *fmt, va_list ap)
{
    sm_ks_result_clear(out);
    out->status = status;
    out->slug = slug;
    out->title = title;
    vsnprintf(out->detail, sizeof(out->detail), fmt, ap);
}

sm_status sm_ks_refuse(sm_ks_result *out, int status, const char *slug, const char *title,
                       const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    set_refusal(out, status, slug, title, fmt, ap);
    va_end(ap);
    return SM_OK;
}

sm_status ks_refuse_tx(sm_ks_result *out, int status, const char *slug, const char *title,
                       const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    set_refusal(out, status, slug, title, fmt, ap);
    va_end(ap);
    return KS_REFUSED;
}

int64_t sm_ks_now(const sm_ks_ctx *ctx)
{
    return ctx->now != 0 ? ctx->now : (int64_t)time(NULL);
}

void sm_ks_dn_hash(const char *dn, uint8_t out[32])
{
    unsigned int len = 0;
    EVP_Digest(dn, strlen(dn), out, &len, EVP_sha256(), NULL);
}

sm_status ks_run(const sm_ks_ctx *ctx, sm_db_tx_fn fn, void *arg, sm_ks_result *out,
                 sm_error *err)
{
    if (ctx->db == NULL)
        return sm_error_set(err, SM_ERR_UNAVAILABLE, "the database is not configured");
    sm_status st = sm_db_transaction(ctx->db, fn, arg, err);
    if (st == KS_REFUSED && out->status >= 400)
        return SM_OK;
    if (st != SM_OK)
        sm_ks_result_clear(out);
    return st;
}

int ks_check_body(json_t *body, const sm_json_field *fields, const char *what,
                  sm_ks_result *out)
{
    sm_error e = {0};
    if (!json_is_object(body)) {
        sm_ks_refuse(out, 400, "invalid-request", "Invalid request", "%s must be a JSON object",
                     what);
        return 0;
    }
    if (sm_json_check_fields(body, fields, what, &e) != SM_OK) {
        sm_ks_refuse(out, 400, "invalid-request", "Invalid request", "%s", e.message);
        return 0;
    }
    return 1;
}

int ks_body_id(json_t *body, const char *name, const char *what, const char **value,
               sm_ks_result *out)
{
    sm_error e = {0};
    char label[96];
    snprintf(label, sizeof(label), "%s: \"%s\"", what, name);
    const char *s = NULL;
    if (sm_json_get_string(body, name, SM_KS_ID_MAX, 1, &s, what, &e) != SM_OK ||
        sm_ks_validate_id(s, label, &e) != SM_OK) {
        sm_ks_refuse(out, 400, "invalid-request", "Invalid request", "%s", e.message);
        return 0;
    }
    *value = s;
    return 1;
}

int ks_body_text(json_t *body, const char *name, size_t max, int required, const char *what,
                 const char **value, sm_ks_result *out)
{
    sm_error e = {0};
    char label[96];
    snprintf(label, sizeof(label), "%s: \"%s\"", what, name);
    const char *s = NULL;
    if (sm_json_get_string(body, name, max, required, &s, what, &e) != SM_OK ||
        (s != NULL && sm_validate_text(s, max, label, &e) != SM_OK)) {
        sm_ks_refuse(out, 400, "invalid-request", "Invalid request", "%s", e.message);
        return 0;
    }
    if (s != NULL && required && *s == '\0') {
        sm_ks_refuse(out, 400, "invalid-request", "Invalid request", "%s must not be empty",
                     label);
        return 0;
    }
    *value = s;
    return 1;
}

sm_status ks_col_copy(const sm_db_rows *rows, unsigned col, char *dst, size_t size,
                      sm_error *err)
{
    size_t len = 0;
    const char *s = sm_db_col_text(rows, col, &len);
    if (s == NULL || len >= size)
        return sm_error_set(err, SM_ERR_DB, "unexpected value in result column %u", col);
    memcpy(dst, s, len);
    dst[len] = '\0';
    return SM_OK;
}

static sm_status party_by_dn(sm_db_conn *c, const char *sql, const char *dn,
                             char id[SM_KS_ID_SIZE], char **proxy_url_out, sm_error *err)
{
    uint8_t h[32];
    sm_db_rows *rows = NULL;
    int has = 0;
    if (proxy_url_out != NULL)
        *proxy_url_out = NULL;
    if (dn == NULL)
        return sm_error_set(err, SM_ERR_NOT_FOUND, "no client certificate");
    sm_ks_dn_hash(dn, h);
    sm_status st = sm_db_query(c, sql, SM_DB_PARAMS(sm_db_blob(h, sizeof(h))), &rows, err);
    if (st != SM_OK)
        return st;
    if ((st = sm_db_rows_next(rows, &has, err)) == SM_OK) {
        if (!has)
            st = sm_error_set(err, SM_ERR_NOT_FOUND, "certificate not registered");
        else
            st = ks_col_copy(rows, 0, id, SM_KS_ID_SIZE, err);
        if (st == SM_OK && has && proxy_url_out != NULL) {
            const char *u = sm_db_col_text(rows, 1, NULL);
            if (u != NULL && (*proxy_url_out = strdup(u)) == NULL)
                st = sm_error_set(err, SM_ERR_NOMEM, "out of memory");
        }
    }
    sm_db_rows_free(rows);
    return st;
}

sm_status ks_owner_by_dn(sm_db_conn *c, const char *dn, char id[SM_KS_ID_SIZE], sm_error *err)
{
    return party_by_dn(c, "SELECT owner_id FROM owners WHERE dn_sha256 = ?", dn, id, NULL, err);
}

sm_status ks_retailer_by_dn(sm_db_conn *c, const char *dn, char id[SM_KS_ID_SIZE],
                            char **proxy_url_out, sm_error *err)
{
    return party_by_dn(c,
                       "SELECT retailer_id, license_proxy_url FROM retailers WHERE dn_sha256 = ?",
                       dn, id, proxy_url_out, err);
}

sm_status ks_refuse_unregistered(sm_ks_result *out, const char *role)
{
    return ks_refuse_tx(out, 403, "not-registered", "Client not registered",
                        "the client certificate is not registered as %s with this key server; "
                        "ask the key server's admin to register it",
                        role);
}

const char *ks_terms_type_column(const sm_ks_terms *t)
{
    return sm_ks_license_type_name(t->type);
}

sm_status ks_terms_from_columns(const char *type, int64_t duration, sm_ks_terms *out,
                                sm_error *err)
{
    out->type = sm_ks_license_type_from_name(type);
    out->duration = out->type == SM_KS_RENTAL ? duration : 0;
    if (out->type == 0)
        return sm_error_set(err, SM_ERR_DB, "unexpected license type in the database");
    return SM_OK;
}

/* ---- owners and retailers ------------------------------------------------ */

typedef struct party_args {
    const sm_ks_ctx *ctx;
    int is_owner;
    const char *id, *name, *dn, *proxy_url;
    sm_ks_result *out;
} party_args;

static sm_status register_party_tx(sm_db_conn *c, void *argp, sm_error *err)
{
    party_args *a = argp;
    uint8_t h[32];
    int64_t now = sm_ks_now(a->ctx);
    sm_ks_dn_hash(a->dn, h);
    sm_status st =
        a->is_owner
            ? sm_db_exec(c,
                         "INSERT INTO owners (owner_id, name, subject_dn, dn_sha256, created_at) "
                         "VALUES (?, ?, ?, ?, ?)",
                         SM_DB_PARAMS(sm_db_text(a->id), sm_db_text(a->name), sm_db_text(a->dn),
                                      sm_db_blob(h, sizeof(h)), sm_db_int(now)),
                         NULL, err)
            : sm_db_exec(c,
                         "INSERT INTO retailers (retailer_id, name, subject_dn, dn_sha256, "
                         "license_proxy_url, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                         SM_DB_PARAMS(sm_db_text(a->id), sm_db_text(a->name), sm_db_text(a->dn),
                                      sm_db_blob(h, sizeof(h)), sm_db_text(a->proxy_url),
                                      sm_db_int(now)),
                         NULL, err);
    if (st == SM_ERR_DUPLICATE)
        return ks_refuse_tx(a->out, 409, "already-registered", "Already registered",
                            "%s %s, or its certificate DN, is already registered",
                            a->is_owner ? "owner" : "retailer", a->id);
    if (st != SM_OK)
        return st;
    sm_ks_result_clear(a->out);
    a->out->status = 201;
    a->out->body = json_pack("{s:s,s:s,s:s}", a->is_owner ? "owner_id" : "retailer_id", a->id,
                             "name", a->name, "subject_dn", a->dn);
    if (a->out->body == NULL)
        return sm_error_set(err, SM_ERR_NOMEM, "out of memory");
    if (a->proxy_url != NULL)
        json_object_set_new(a->out->body, "license_proxy_url", json_string(a->proxy_url));
    return SM_OK;
}

static sm_status register_party(const sm_ks_ctx *ctx, int is_owner, json_t *body,
                                sm_ks_result *out, sm_error *err)
{
    static const sm_json_field owner_fields[] = {{"owner_id", SM_JSON_STRING, 1},
                                                 {"name", SM_JSON_STRING, 1},
                                                 {"subject_dn", SM_JSON_STRING, 1},
                                                 {NULL, SM_JSON_STRING, 0}};
    static const sm_json_field retailer_fields[] = {{"retailer_id", SM_JSON_STRING, 1},
                                                    {"name", SM_JSON_STRING, 1},
                                                    {"subject_dn", SM_JSON_STRING, 1},
                                                    {"license_proxy_url", SM_JSON_STRING, 0},
                                                    {NULL, SM_JSON_STRING, 0}};
    const char *what = is_owner ? "owner" : "retailer";
    party_args a = {ctx, is_owner, NULL, NULL, NULL, NULL, out};
    sm_ks_result_init(out);
    if (!ks_check_body(body, is_owner ? owner_fields : retailer_fields, what, out) ||
        !ks_body_id(body, is_owner ? "owner_id" : "retailer_id", what, &a.id, out) ||
        !ks_body_text(body, "name", 200, 1, what, &a.name, out) ||
        !ks_body_text(body, "subject_dn", 1024, 1, what, &a.dn, out) ||
        (!is_owner &&
         !ks_body_text(body, "license_proxy_url", 2048, 0, what, &a.proxy_url, out)))
        return SM_OK;
    sm_error e = {0};
    if (a.proxy_url != NULL && sm_validate_url(a.proxy_url, 0, "license_proxy_url", &e) != SM_OK)
        return sm_ks_refuse(out, 400, "invalid-request", "Invalid request", "%s", e.message);
    return ks_run(ctx, register_party_tx, &a, out, err);
}

sm_status sm_ks_register_owner(const sm_ks_ctx *ctx, const sm_ks_caller *caller, json_t *body,
                               sm_ks_result *out, sm_error *err)
{
    (void)caller;
    return register_party(ctx, 1, body, out, err);
}

sm_status sm_ks_register_retailer(const sm_ks_ctx *ctx, const sm_ks_caller *caller,
                                  json_t *body, sm_ks_result *out, sm_error *err)
{
    (void)caller;
    return register_party(ctx, 0, body, out, err);
}
