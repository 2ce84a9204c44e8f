#include "config.h"

/* Works (registration with the media key re-wrapped under the KEK),
 * contracts and retailer inventory (sm_ks_store.h). */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sm_ks_contract.h"
#include "sm_ks_store_int.h"
#include "sm_validate.h"

#define TITLE_MAX 500u
#define LONG_TEXT_MAX 100000u
#define CREDITS_MAX 20000u

/* Lyrics and liner notes keep their line breaks and tabs; everything else
 * sm_validate_text refuses stays refused. */
static int check_multiline(json_t *body, const char *name, size_t max, const char **value,
                           sm_ks_result *out)
{
    sm_error e = {0};
    const char *s = NULL;
    if (sm_json_get_string(body, name, max, 0, &s, "work", &e) != SM_OK) {
        sm_ks_refuse(out, 400, "invalid-request", "Invalid request", "%s", e.message);
        return 0;
    }
    if (s == NULL)
        return 1;
    char *copy = strdup(s);
    if (copy == NULL) {
        sm_ks_refuse(out, 500, "internal-error", "Internal error", "out of memory");
        return 0;
    }
    for (char *p = copy; *p; p++)
        if (*p == '\n' || *p == '\t' || *p == '\r')
            *p = ' ';
    char label[64];
    snprintf(label, sizeof(label), "work: \"%s\"", name);
    sm_status st = sm_validate_text(copy, max, label, &e);
    free(copy);
    if (st != SM_OK) {
        sm_ks_refuse(out, 400, "invalid-request", "Invalid request", "%s", e.message);
        return 0;
    }
    *value = s;
    return 1;
}

typedef struct work_args {
    const sm_ks_ctx *ctx;
    const sm_ks_caller *caller;
    const char *work_id, *title, *artist, *album, *lyrics, *liner_notes, *credits, *artwork_ref,
        *media_type;
    uint32_t key_version, kek_version;
    uint8_t wrapped[SM_KS_WRAPPED_KEY_LEN];
    sm_ks_result *out;
} work_args;

static sm_status register_work_tx(sm_db_conn *c, void *argp, sm_error *err)
{
    work_args *a = argp;
    char owner[SM_KS_ID_SIZE];
    sm_ks_result_clear(a->out);
    sm_status st = ks_owner_by_dn(c, a->caller->dn, owner, err);
    if (st == SM_ERR_NOT_FOUND)
        return ks_refuse_unregistered(a->out, "an owner");
    if (st != SM_OK)
        return st;
    int64_t now = sm_ks_now(a->ctx);
    st = sm_db_exec(c,
                    "INSERT INTO works (work_id, owner_id, title, artist, album, lyrics, "
                    "liner_notes, credits, artwork_ref, media_type, key_version, kek_version, "
                    "wrapped_key, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    SM_DB_PARAMS(sm_db_text(a->work_id), sm_db_text(owner), sm_db_text(a->title),
                                 sm_db_text(a->artist), sm_db_text(a->album),
                                 sm_db_text(a->lyrics), sm_db_text(a->liner_notes),
                                 sm_db_text(a->credits), sm_db_text(a->artwork_ref),
                                 sm_db_text(a->media_type), sm_db_uint(a->key_version),
                                 sm_db_uint(a->kek_version),
                                 sm_db_blob(a->wrapped, sizeof(a->wrapped)), sm_db_int(now)),
                    NULL, err);
    if (st == SM_ERR_DUPLICATE)
        return ks_refuse_tx(a->out, 409, "work-exists", "Work already registered",
                            "work %s is already registered; works and their keys are never "
                            "replaced (pack a new work id for a new version)",
                            a->work_id);
    if (st != SM_OK)
        return st;
    json_t *data = json_pack("{s:s,s:s,s:I,s:I}", "work_id", a->work_id, "owner", owner,
                             "key_version", (json_int_t)a->key_version, "kek_version",
                             (json_int_t)a->kek_version);
    if (data == NULL)
        return sm_error_set(err, SM_ERR_NOMEM, "out of memory");
    uint64_t seq = 0;
    st = sm_ks_ledger_append(c, a->ctx, "work-registered", NULL, data, &seq, err);
    json_decref(data);
    if (st != SM_OK)
        return st;
    a->out->status = 201;
    a->out->body = json_pack("{s:s,s:s,s:I,s:I}", "work_id", a->work_id, "owner_id", owner,
                             "key_version", (json_int_t)a->key_version, "ledger_seq",
                             (json_int_t)seq);
    return a->out->body != NULL ? SM_OK : sm_error_set(err, SM_ERR_NOMEM, "out of memory");
}

sm_status sm_ks_register_work(const sm_ks_ctx *ctx, const sm_ks_caller *caller, json_t *body,
                              sm_ks_result *out, sm_error *err)
{
    static const sm_json_field fields[] = {
        {"work_id", SM_JSON_STRING, 1},     {"key_version", SM_JSON_INTEGER, 1},
        {"media_key_jwe", SM_JSON_STRING, 1}, {"title", SM_JSON_STRING, 1},
        {"artist", SM_JSON_STRING, 0},      {"album", SM_JSON_STRING, 0},
        {"lyrics", SM_JSON_STRING, 0},      {"liner_notes", SM_JSON_STRING, 0},
        {"credits", SM_JSON_STRING, 0},     {"artwork_ref", SM_JSON_STRING, 0},
        {"media_type", SM_JSON_STRING, 0},  {NULL, SM_JSON_STRING, 0}};
    work_args a;
    memset(&a, 0, sizeof(a));
    a.ctx = ctx;
    a.caller = caller;
    a.out = out;
    sm_ks_result_init(out);
    sm_error e = {0};
    uint64_t key_version = 0;
    const char *jwe = NULL;
    if (!ks_check_body(body, fields, "work", out) || !ks_body_id(body, "work_id", "work", &a.work_id, out) ||
        !ks_body_text(body, "title", TITLE_MAX, 1, "work", &a.title, out) ||
        !ks_body_text(body, "artist", TITLE_MAX, 0, "work", &a.artist, out) ||
        !ks_body_text(body, "album", TITLE_MAX, 0, "work", &a.album, out) ||
        !check_multiline(body, "lyrics", LONG_TEXT_MAX, &a.lyrics, out) ||
        !check_multiline(body, "liner_notes", LONG_TEXT_MAX, &a.liner_notes, out) ||
        !check_multiline(body, "credits", CREDITS_MAX, &a.credits, out) ||
        !ks_body_text(body, "artwork_ref", 2048, 0, "work", &a.artwork_ref, out) ||
        !ks_body_text(body, "media_type", 127, 0, "work", &a.media_type, out))
        return SM_OK;
    if (sm_json_get_uint64(body, "key_version", UINT32_MAX, 1, &key_version, "work", &e) !=
            SM_OK ||
        key_version == 0)
        return sm_ks_refuse(out, 400, "invalid-request", "Invalid request",
                            "work: \"key_version\" must be an integer from 1 to 4294967295");
    if (a.artwork_ref != NULL && sm_validate_url(a.artwork_ref, 0, "work: \"artwork_ref\"", &e) !=
                                     SM_OK)
        return sm_ks_refuse(out, 400, "invalid-request", "Invalid request", "%s", e.message);
    if (a.media_type != NULL &&
        sm_validate_media_type(a.media_type, "work: \"media_type\"", &e) != SM_OK)
        return sm_ks_refuse(out, 400, "invalid-request", "Invalid request", "%s", e.message);
    a.key_version = (uint32_t)key_version;

    /* The key arrives wrapped to our encryption key and is stored wrapped
     * under the KEK; in between it only lives in locked memory. */
    jwe = json_string_value(json_object_get(body, "media_key_jwe"));
    sm_secret *key = NULL;
    if (sm_ks_keys_unwrap_media_key(ctx->keys, jwe, json_string_length(json_object_get(body,
                                                                                      "media_key_jwe")),
                                    &key, &e) != SM_OK)
        return sm_ks_refuse(out, 400, "invalid-media-key", "Invalid media key",
                            "work: \"media_key_jwe\" cannot be opened with this key server's "
                            "encryption key (GET /v1/encryption-key): %s",
                            e.message);
    sm_status st = sm_ks_kek_wrap(ctx->kek, a.work_id, a.key_version, key, a.wrapped,
                                  &a.kek_version, err);
    sm_secret_free(key);
    if (st != SM_OK)
        return st;
    return ks_run(ctx, register_work_tx, &a, out, err);
}

/* ---- the owner's view of a work -------------------------------------------- */

sm_status sm_ks_get_work(const sm_ks_ctx *ctx, const sm_ks_caller *caller, const char *work_id,
                         sm_ks_result *out, sm_error *err)
{
    sm_error e = {0};
    sm_ks_result_init(out);
    if (sm_ks_validate_id(work_id, "work id", &e) != SM_OK)
        return sm_ks_refuse(out, 400, "invalid-request", "Invalid request", "%s", e.message);
    if (ctx->db == NULL)
        return sm_error_set(err, SM_ERR_UNAVAILABLE, "the database is not configured");
    sm_db_conn *c = NULL;
    sm_status st = sm_db_acquire(ctx->db, &c, err);
    if (st != SM_OK)
        return st;
    char owner[SM_KS_ID_SIZE];
    st = ks_owner_by_dn(c, caller->dn, owner, err);
    if (st == SM_ERR_NOT_FOUND) {
        sm_db_release(c);
        ks_refuse_unregistered(out, "an owner");
        return SM_OK;
    }
    sm_db_rows *rows = NULL;
    int has = 0;
    if (st == SM_OK)
        st = sm_db_query(c,
                         "SELECT title, artist, album, lyrics, liner_notes, credits, artwork_ref, "
                         "media_type, key_version, kek_version, created_at, withdrawn_at "
                         "FROM works WHERE work_id = ? AND owner_id = ?",
                         SM_DB_PARAMS(sm_db_text(work_id), sm_db_text(owner)), &rows, err);
    if (st == SM_OK)
        st = sm_db_rows_next(rows, &has, err);
    if (st == SM_OK && !has) {
        sm_ks_refuse(out, 404, "not-found", "Not found", "you have no work %s", work_id);
    } else if (st == SM_OK) {
        static const char *const names[] = {"title",       "artist",  "album",
                                            "lyrics",      "liner_notes", "credits",
                                            "artwork_ref", "media_type"};
        json_t *o = json_pack("{s:s}", "work_id", work_id);
        for (unsigned i = 0; o != NULL && i < 8; i++) {
            const char *v = sm_db_col_text(rows, i, NULL);
            if (v != NULL)
                json_object_set_new(o, names[i], json_string(v));
        }
        int64_t kv = 0, kekv = 0, created = 0, withdrawn = 0;
        sm_db_col_int(rows, 8, &kv, NULL);
        sm_db_col_int(rows, 9, &kekv, NULL);
        sm_db_col_int(rows, 10, &created, NULL);
        if (o != NULL) {
            json_object_set_new(o, "key_version", json_integer(kv));
            json_object_set_new(o, "created_at", json_integer(created));
            if (sm_db_col_int(rows, 11, &withdrawn, NULL) == SM_OK)
                json_object_set_new(o, "withdrawn_at", json_integer(withdrawn));
        }
        out->status = 200;
        out->body = o;
        if (o == NULL)
            st = sm_error_set(err, SM_ERR_NOMEM, "out of memory");
    }
    sm_db_rows_free(rows);
    sm_db_release(c);
    return st;
}

/* ---- contracts ------------------------------------------------------------ */

typedef struct contract_args {
    const sm_ks_ctx *ctx;
    const sm_ks_caller *caller;
    const sm_ks_contract *contract;
    sm_ks_result *out;
} contract_args;

static sm_status create_contract_tx(sm_db_conn *c, void *argp, sm_error *err)
{
    contract_args *a = argp;
    const sm_ks_contract *k = a->contract;
    char owner[SM_KS_ID_SIZE];
    sm_db_rows *rows = NULL;
    int has = 0;
    sm_ks_result_clear(a->out);
    sm_status st = ks_owner_by_dn(c, a->caller->dn, owner, err);
    if (st == SM_ERR_NOT_FOUND)
        return ks_refuse_unregistered(a->out, "an owner");
    if (st != SM_OK)
        return st;
    st = sm_db_query(c, "SELECT 1 FROM retailers WHERE retailer_id = ?",
                     SM_DB_PARAMS(sm_db_text(k->retailer)), &rows, err);
    if (st == SM_OK)
        st = sm_db_rows_next(rows, &has, err);
    sm_db_rows_free(rows);
    if (st != SM_OK)
        return st;
    if (!has)
        return ks_refuse_tx(a->out, 422, "unknown-retailer", "Unknown retailer",
                            "contract: retailer %s is not registered", k->retailer);
    for (size_t i = 0; i < k->n_works; i++) {
        /* Locked so the work cannot change owner or be withdrawn meanwhile. */
        rows = NULL;
        has = 0;
        st = sm_db_query(c,
                         "SELECT 1 FROM works WHERE work_id = ? AND owner_id = ? AND "
                         "withdrawn_at IS NULL LOCK IN SHARE MODE",
                         SM_DB_PARAMS(sm_db_text(k->works[i]), sm_db_text(owner)), &rows, err);
        if (st == SM_OK)
            st = sm_db_rows_next(rows, &has, err);
        sm_db_rows_free(rows);
        if (st != SM_OK)
            return st;
        if (!has)
            return ks_refuse_tx(a->out, 422, "unknown-work", "Unknown work",
                                "contract: you have no work %s (or it was withdrawn)",
                                k->works[i]);
    }
    int64_t now = sm_ks_now(a->ctx);
    st = sm_db_exec(c,
                    "INSERT INTO contracts (owner_id, retailer_id, currency, valid_from, "
                    "valid_until, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                    SM_DB_PARAMS(sm_db_text(owner), sm_db_text(k->retailer),
                                 sm_db_text(k->currency), sm_db_int(k->valid_from),
                                 sm_db_int(k->valid_until), sm_db_int(now)),
                    NULL, err);
    if (st != SM_OK)
        return st;
    uint64_t id = sm_db_insert_id(c);
    for (size_t i = 0; st == SM_OK && i < k->n_works; i++)
        st = sm_db_exec(c, "INSERT INTO contract_works (contract_id, work_id) VALUES (?, ?)",
                        SM_DB_PARAMS(sm_db_uint(id), sm_db_text(k->works[i])), NULL, err);
    for (size_t i = 0; st == SM_OK && i < k->n_offers; i++)
        st = sm_db_exec(c,
                        "INSERT INTO contract_offers (contract_id, license_type, duration, price) "
                        "VALUES (?, ?, ?, ?)",
                        SM_DB_PARAMS(sm_db_uint(id),
                                     sm_db_text(ks_terms_type_column(&k->offers[i].terms)),
                                     sm_db_int(k->offers[i].terms.duration),
                                     sm_db_int(k->offers[i].price)),
                        NULL, err);
    for (size_t i = 0; st == SM_OK && i < k->n_royalties; i++)
        st = sm_db_exec(c,
                        "INSERT INTO contract_royalties (contract_id, position, holder, share_bps) "
                        "VALUES (?, ?, ?, ?)",
                        SM_DB_PARAMS(sm_db_uint(id), sm_db_uint(i),
                                     sm_db_text(k->royalties[i].holder),
                                     sm_db_uint(k->royalties[i].share_bps)),
                        NULL, err);
    if (st != SM_OK)
        return st;
    json_t *data = json_pack("{s:I,s:s,s:s,s:s,s:I,s:I,s:I}", "contract_id", (json_int_t)id,
                             "owner", owner, "retailer", k->retailer, "currency", k->currency,
                             "valid_from", (json_int_t)k->valid_from, "valid_until",
                             (json_int_t)k->valid_until, "works", (json_int_t)k->n_works);
    if (data == NULL)
        return sm_error_set(err, SM_ERR_NOMEM, "out of memory");
    st = sm_ks_ledger_append(c, a->ctx, "contract", NULL, data, NULL, err);
    json_decref(data);
    if (st != SM_OK)
        return st;
    json_t *o = sm_ks_contract_to_json(k, 1);
    if (o == NULL)
        return sm_error_set(err, SM_ERR_NOMEM, "out of memory");
    json_object_set_new(o, "contract_id", json_integer((json_int_t)id));
    json_object_set_new(o, "owner_id", json_string(owner));
    a->out->status = 201;
    a->out->body = o;
    return SM_OK;
}

sm_status sm_ks_create_contract(const sm_ks_ctx *ctx, const sm_ks_caller *caller, json_t *body,
                                sm_ks_result *out, sm_error *err)
{
    sm_ks_contract *k = NULL;
    sm_error e = {0};
    sm_ks_result_init(out);
    if (sm_ks_contract_from_json(body, &k, &e) != SM_OK)
        return sm_ks_refuse(out, 400, "invalid-request", "Invalid request", "%s", e.message);
    contract_args a = {ctx, caller, k, out};
    sm_status st = ks_run(ctx, create_contract_tx, &a, out, err);
    free(k);
    return st;
}

/* ---- inventory ------------------------------------------------------------- */

/* Offers of the retailer's active contracts, by contract id. */
static sm_status load_offers(sm_db_conn *c, const char *retailer, int64_t now, json_t *by_contract,
                             sm_error *err)
{
    sm_db_rows *rows = NULL;
    int has = 0;
    sm_status st = sm_db_query(
        c,
        "SELECT o.contract_id, o.license_type, o.duration, o.price FROM contract_offers o "
        "JOIN contracts k ON k.contract_id = o.contract_id WHERE k.retailer_id = ? "
        "AND k.revoked_at IS NULL AND k.valid_from <= ? AND k.valid_until > ? "
        "ORDER BY o.contract_id, o.license_type, o.duration",
        SM_DB_PARAMS(sm_db_text(retailer), sm_db_int(now), sm_db_int(now)), &rows, err);
    while (st == SM_OK && (st = sm_db_rows_next(rows, &has, err)) == SM_OK && has) {
        int64_t duration = 0, price = 0;
        sm_ks_terms t;
        const char *id = sm_db_col_text(rows, 0, NULL);
        if ((st = sm_db_col_int(rows, 2, &duration, err)) != SM_OK ||
            (st = sm_db_col_int(rows, 3, &price, err)) != SM_OK ||
            (st = ks_terms_from_columns(sm_db_col_text(rows, 1, NULL), duration, &t, err)) !=
                SM_OK)
            break;
        json_t *offers = json_object_get(by_contract, id);
        if (offers == NULL) {
            offers = json_array();
            json_object_set_new(by_contract, id, offers);
        }
        json_t *offer = sm_ks_terms_to_json(&t);
        if (offer == NULL || json_object_set_new(offer, "price", json_integer(price)) != 0 ||
            json_array_append_new(offers, offer) != 0) {
            st = sm_error_set(err, SM_ERR_NOMEM, "out of memory");
            break;
        }
    }
    sm_db_rows_free(rows);
    return st;
}

sm_status sm_ks_inventory(const sm_ks_ctx *ctx, const sm_ks_caller *caller, sm_ks_result *out,
                          sm_error *err)
{
    sm_ks_result_init(out);
    if (ctx->db == NULL)
        return sm_error_set(err, SM_ERR_UNAVAILABLE, "the database is not configured");
    sm_db_conn *c = NULL;
    sm_status st = sm_db_acquire(ctx->db, &c, err);
    if (st != SM_OK)
        return st;
    char retailer[SM_KS_ID_SIZE];
    int64_t now = sm_ks_now(ctx);
    st = ks_retailer_by_dn(c, caller->dn, retailer, NULL, err);
    if (st == SM_ERR_NOT_FOUND) {
        sm_db_release(c);
        ks_refuse_unregistered(out, "a retailer");
        return SM_OK;
    }
    json_t *offers = json_object(), *works = json_array();
    sm_db_rows *rows = NULL;
    int has = 0;
    if (offers == NULL || works == NULL)
        st = sm_error_set(err, SM_ERR_NOMEM, "out of memory");
    if (st == SM_OK)
        st = load_offers(c, retailer, now, offers, err);
    if (st == SM_OK)
        st = sm_db_query(
            c,
            "SELECT w.work_id, w.title, w.artist, w.album, w.artwork_ref, w.media_type, "
            "k.contract_id, k.currency, k.valid_until, o.owner_id, o.name FROM contracts k "
            "JOIN contract_works cw ON cw.contract_id = k.contract_id "
            "JOIN works w ON w.work_id = cw.work_id JOIN owners o ON o.owner_id = w.owner_id "
            "WHERE k.retailer_id = ? AND k.revoked_at IS NULL AND k.valid_from <= ? "
            "AND k.valid_until > ? AND w.withdrawn_at IS NULL ORDER BY w.work_id, k.contract_id",
            SM_DB_PARAMS(sm_db_text(retailer), sm_db_int(now), sm_db_int(now)), &rows, err);
    while (st == SM_OK && (st = sm_db_rows_next(rows, &has, err)) == SM_OK && has) {
        static const char *const names[] = {"work_id", "title", "artist", "album",
                                            "artwork_ref", "media_type"};
        json_t *w = json_object();
        for (unsigned i = 0; w != NULL && i < 6; i++) {
            const char *v = sm_db_col_text(rows, i, NULL);
            if (v != NULL)
                json_object_set_new(w, names[i], json_string(v));
        }
        int64_t contract_id = 0, valid_until = 0;
        sm_db_col_int(rows, 6, &contract_id, NULL);
        sm_db_col_int(rows, 8, &valid_until, NULL);
        const char *currency = sm_db_col_text(rows, 7, NULL);
        const char *cid = sm_db_col_text(rows, 6, NULL);
        json_t *lic = cid != NULL ? json_object_get(offers, cid) : NULL;
        if (w == NULL ||
            json_object_set_new(w, "contract_id", json_integer(contract_id)) != 0 ||
            json_object_set_new(w, "currency", json_string(currency ? currency : "")) != 0 ||
            json_object_set_new(w, "valid_until", json_integer(valid_until)) != 0 ||
            json_object_set_new(w, "owner_id", json_string(sm_db_col_text(rows, 9, NULL))) !=
                0 ||
            json_object_set_new(w, "licenses", lic != NULL ? json_incref(lic) : json_array()) !=
                0 ||
            json_array_append_new(works, w) != 0) {
            st = sm_error_set(err, SM_ERR_NOMEM, "out of memory");
            break;
        }
    }
    sm_db_rows_free(rows);
    sm_db_release(c);
    json_decref(offers);
    if (st != SM_OK) {
        json_decref(works);
        return st;
    }
    out->status = 200;
    out->body = json_pack("{s:s,s:o}", "retailer_id", retailer, "works", works);
    return out->body != NULL ? SM_OK : sm_error_set(err, SM_ERR_NOMEM, "out of memory");
}
