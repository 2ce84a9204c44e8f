#include "config.h"

/* Catalog (synced from the key server's inventory), retail offers and the
 * shop's search (sm_rt_store.h). */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sm_json.h"
#include "sm_ks_terms.h"
#include "sm_rt_store_int.h"
#include "sm_rt_validate.h"
#include "sm_validate.h"

#define INVENTORY_MAX (16u * 1024u * 1024u)
#define TEXT_MAX 500u
#define PRICE_MAX 1000000000000LL

/* ---- sync ----------------------------------------------------------------------- */

typedef struct sync_args {
    const sm_rt_ctx *ctx;
    json_t *works;
    uint64_t n_terms;
    uint64_t available, unavailable;
} sync_args;

static const char *opt_string(json_t *o, const char *name)
{
    json_t *v = json_object_get(o, name);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

/* Checks one inventory entry enough to store it safely. */
static sm_status check_entry(json_t *w, size_t i, sm_error *err)
{
    const char *id = opt_string(w, "work_id"), *title = opt_string(w, "title"),
               *owner = opt_string(w, "owner_id"), *cur = opt_string(w, "currency");
    sm_error e = {0};
    /* Title, artist, album and media type go into every steering file sold:
     * what a steering file cannot hold would leave paid orders unfinished. */
    if (!json_is_object(w) || id == NULL || sm_validate_work_id(id, "work_id", &e) != SM_OK ||
        title == NULL || title[0] == '\0' ||
        sm_validate_text(title, TEXT_MAX, "title", &e) != SM_OK ||
        owner == NULL || strlen(owner) > 64 ||
        cur == NULL || strlen(cur) != 3 || !json_is_integer(json_object_get(w, "contract_id")) ||
        !json_is_integer(json_object_get(w, "valid_until")) ||
        !json_is_array(json_object_get(w, "licenses")))
        return sm_error_set(err, SM_ERR_FORMAT, "inventory entry %zu is malformed", i);
    const char *fields[] = {"artist", "album"};
    for (size_t k = 0; k < 2; k++) {
        const char *v = opt_string(w, fields[k]);
        if (v != NULL && sm_validate_text(v, TEXT_MAX, fields[k], &e) != SM_OK)
            return sm_error_set(err, SM_ERR_FORMAT, "inventory entry %zu: %s", i, e.message);
    }
    const char *art = opt_string(w, "artwork_ref"), *mt = opt_string(w, "media_type");
    if ((art != NULL && strlen(art) > 2048) || (mt != NULL && strlen(mt) > 127))
        return sm_error_set(err, SM_ERR_FORMAT, "inventory entry %zu: artwork or type too long",
                            i);
    if (mt != NULL && mt[0] != '\0' && sm_validate_media_type(mt, "media_type", &e) != SM_OK)
        return sm_error_set(err, SM_ERR_FORMAT, "inventory entry %zu: %s", i, e.message);
    size_t j;
    json_t *l;
    json_array_foreach(json_object_get(w, "licenses"), j, l) {
        const char *type = opt_string(l, "type");
        if (type == NULL || sm_ks_license_type_from_name(type) == 0 ||
            !json_is_integer(json_object_get(l, "price")))
            return sm_error_set(err, SM_ERR_FORMAT, "inventory entry %zu: license %zu malformed",
                                i, j);
    }
    return SM_OK;
}

sm_status sm_rt_inventory_parse(const char *body, size_t len, json_t **doc, json_t **works,
                                sm_error *err)
{
    *doc = NULL;
    *works = NULL;
    json_t *d = NULL;
    sm_status st = sm_json_parse_object((const uint8_t *)body, len, INVENTORY_MAX, "inventory",
                                        &d, err);
    json_t *list = st == SM_OK ? json_object_get(d, "works") : NULL;
    if (st == SM_OK && !json_is_array(list))
        st = sm_error_set(err, SM_ERR_FORMAT, "inventory has no works array");
    size_t i;
    json_t *w;
    if (st == SM_OK)
        json_array_foreach(list, i, w) {
            if ((st = check_entry(w, i, err)) != SM_OK)
                break;
        }
    if (st != SM_OK) {
        json_decref(d);
        return st;
    }
    *doc = d;
    *works = list;
    return SM_OK;
}

static sm_status sync_tx(sm_db_conn *c, void *argp, sm_error *err)
{
    sync_args *a = argp;
    int64_t now = sm_rt_now(a->ctx);
    a->n_terms = 0;
    sm_status st = sm_db_exec(c, "UPDATE catalog_works SET available = 0", NULL, 0, NULL, err);
    if (st == SM_OK)
        st = sm_db_exec(c, "DELETE FROM wholesale_terms", NULL, 0, NULL, err);
    size_t i;
    json_t *w;
    json_array_foreach(a->works, i, w) {
        if (st != SM_OK)
            break;
        st = sm_db_exec(
            c,
            "INSERT INTO catalog_works (work_id, title, artist, album, artwork_ref, media_type, "
            "owner_id, available, synced_at) VALUES (?, ?, ?, ?, ?, ?, ?, 1, ?) "
            "ON DUPLICATE KEY UPDATE title = VALUES(title), artist = VALUES(artist), "
            "album = VALUES(album), artwork_ref = VALUES(artwork_ref), "
            "media_type = VALUES(media_type), owner_id = VALUES(owner_id), available = 1, "
            "synced_at = VALUES(synced_at)",
            SM_DB_PARAMS(sm_db_text(opt_string(w, "work_id")), sm_db_text(opt_string(w, "title")),
                         sm_db_text(opt_string(w, "artist") ? opt_string(w, "artist") : ""),
                         sm_db_text(opt_string(w, "album") ? opt_string(w, "album") : ""),
                         sm_db_text(opt_string(w, "artwork_ref")),
                         sm_db_text(opt_string(w, "media_type")),
                         sm_db_text(opt_string(w, "owner_id")), sm_db_int(now)),
            NULL, err);
        size_t j;
        json_t *l;
        json_array_foreach(json_object_get(w, "licenses"), j, l) {
            if (st != SM_OK)
                break;
            json_t *d = json_object_get(l, "duration");
            st = sm_db_exec(
                c,
                "INSERT INTO wholesale_terms (work_id, contract_id, license_type, duration, "
                "price, currency, valid_until) VALUES (?, ?, ?, ?, ?, ?, ?) "
                "ON DUPLICATE KEY UPDATE price = VALUES(price)",
                SM_DB_PARAMS(sm_db_text(opt_string(w, "work_id")),
                             sm_db_int(json_integer_value(json_object_get(w, "contract_id"))),
                             sm_db_text(opt_string(l, "type")),
                             sm_db_int(json_is_integer(d) ? json_integer_value(d) : 0),
                             sm_db_int(json_integer_value(json_object_get(l, "price"))),
                             sm_db_text(opt_string(w, "currency")),
                             sm_db_int(json_integer_value(json_object_get(w, "valid_until")))),
                NULL, err);
            a->n_terms++;
        }
    }
    sm_db_rows *rows = NULL;
    int has = 0;
    if (st == SM_OK)
        st = sm_db_query(c,
                         "SELECT COALESCE(SUM(available = 1), 0), COALESCE(SUM(available = 0), 0) "
                         "FROM catalog_works",
                         NULL, 0, &rows, err);
    if (st == SM_OK && (st = sm_db_rows_next(rows, &has, err)) == SM_OK && has &&
        (st = sm_db_col_uint(rows, 0, &a->available, err)) == SM_OK)
        st = sm_db_col_uint(rows, 1, &a->unavailable, err);
    sm_db_rows_free(rows);
    if (st == SM_OK)
        st = sm_db_exec(c, "UPDATE catalog_sync SET last_sync_at = ? WHERE id = 1",
                        SM_DB_PARAMS(sm_db_int(now)), NULL, err);
    return st;
}

sm_status sm_rt_catalog_sync(const sm_rt_ctx *ctx, sm_rt_result *out, sm_error *err)
{
    sm_rt_result_init(out);
    if (ctx->ks == NULL)
        return sm_error_set(err, SM_ERR_UNAVAILABLE, "key server not configured");
    sm_rt_ks_response r;
    sm_status st = sm_rt_ks_call(ctx->ks, "GET", "/v1/inventory", NULL, 0, NULL, INVENTORY_MAX,
                                 &r, err);
    if (st != SM_OK)
        return st == SM_ERR_TOO_LARGE ? sm_rt_refuse(out, 502, "keyserver-error",
                                                     "Key server error", "%s", err->message)
                                      : st;
    if (r.status != 200) {
        long status = r.status;
        sm_rt_ks_response_free(&r);
        if (status >= 500)
            return sm_error_set(err, SM_ERR_UNAVAILABLE,
                                "key server answered %ld to the inventory request", status);
        return sm_rt_refuse(out, 502, "keyserver-error", "Key server error",
                            "the key server refused the inventory request (%ld); check the "
                            "retailer's registration and client certificate",
                            status);
    }
    json_t *doc = NULL, *works = NULL;
    sm_error e = {0};
    st = sm_rt_inventory_parse(r.body, r.len, &doc, &works, &e);
    sm_rt_ks_response_free(&r);
    if (st != SM_OK) {
        return sm_rt_refuse(out, 502, "keyserver-error", "Key server error",
                            "the key server's inventory is not usable: %s", e.message);
    }
    sync_args a = {ctx, works, 0, 0, 0};
    st = rt_run(ctx, sync_tx, &a, out, err);
    json_decref(doc);
    if (st != SM_OK)
        return st;
    out->status = 200;
    out->body = json_pack("{s:I,s:I,s:I,s:I}", "works", (json_int_t)a.available, "offers",
                          (json_int_t)a.n_terms, "removed", (json_int_t)a.unavailable,
                          "synced_at", (json_int_t)sm_rt_now(ctx));
    return out->body ? SM_OK : sm_error_set(err, SM_ERR_NOMEM, "out of memory");
}

typedef struct lease_args {
    const sm_rt_ctx *ctx;
    int64_t interval;
    uint64_t took;
} lease_args;

static sm_status lease_tx(sm_db_conn *c, void *argp, sm_error *err)
{
    lease_args *a = argp;
    int64_t now = sm_rt_now(a->ctx);
    /* Taken when free and the last sync is old enough; the lease covers
     * the sync's own duration (a crashed syncer frees it after 5 min). */
    return sm_db_exec(c,
                      "UPDATE catalog_sync SET lease_until = ? WHERE id = 1 AND lease_until < ? "
                      "AND (last_sync_at IS NULL OR last_sync_at + ? <= ?)",
                      SM_DB_PARAMS(sm_db_int(now + 300), sm_db_int(now), sm_db_int(a->interval),
                                   sm_db_int(now)),
                      &a->took, err);
}

static sm_status release_tx(sm_db_conn *c, void *argp, sm_error *err)
{
    (void)argp;
    return sm_db_exec(c, "UPDATE catalog_sync SET lease_until = 0 WHERE id = 1", NULL, 0, NULL,
                      err);
}

sm_status sm_rt_catalog_sync_if_due(const sm_rt_ctx *ctx, int64_t interval, int *ran,
                                    sm_error *err)
{
    *ran = 0;
    if (ctx->db == NULL)
        return sm_error_set(err, SM_ERR_UNAVAILABLE, "the database is not configured");
    lease_args a = {ctx, interval, 0};
    sm_status st = sm_db_transaction(ctx->db, lease_tx, &a, err);
    if (st != SM_OK || a.took == 0)
        return st;
    sm_rt_result res;
    st = sm_rt_catalog_sync(ctx, &res, err);
    if (st == SM_OK && res.status != 200)
        st = sm_error_set(err, SM_ERR_UNAVAILABLE, "%s", res.detail);
    sm_rt_result_clear(&res);
    sm_error e2 = {0};
    (void)sm_db_transaction(ctx->db, release_tx, NULL, &e2);
    *ran = st == SM_OK;
    return st;
}

/* ---- offers ------------------------------------------------------------------------ */

static const sm_json_field offer_fields[] = {
    {"work_id", SM_JSON_STRING, 1},
    {"license", SM_JSON_OBJECT, 1},
    {"price", SM_JSON_INTEGER, 1},
    {"valid_from", SM_JSON_INTEGER, 0},
    {"valid_until", SM_JSON_INTEGER, 0},
    {NULL, 0, 0},
};

json_t *rt_offer_json(uint64_t id, const char *work_id, const char *type, int64_t duration,
                      int64_t price, int64_t from, int64_t until)
{
    sm_ks_terms t = {sm_ks_license_type_from_name(type), duration};
    json_t *lic = sm_ks_terms_to_json(&t);
    if (lic == NULL)
        return NULL;
    return json_pack("{s:I,s:s,s:o,s:I,s:I,s:I}", "offer_id", (json_int_t)id, "work_id", work_id,
                     "license", lic, "price", (json_int_t)price, "valid_from", (json_int_t)from,
                     "valid_until", (json_int_t)until);
}

typedef struct offer_args {
    const sm_rt_ctx *ctx;
    const char *work_id;
    sm_ks_terms terms;
    int64_t price, from, until;
    int has_until;
    sm_rt_result *out;
} offer_args;

static sm_status offer_tx(sm_db_conn *c, void *argp, sm_error *err)
{
    offer_args *a = argp;
    sm_rt_result_clear(a->out);
    sm_db_rows *rows = NULL;
    int has = 0;
    sm_status st = sm_db_query(c,
                               "SELECT 1 FROM catalog_works WHERE work_id = ? AND available = 1 "
                               "LOCK IN SHARE MODE",
                               SM_DB_PARAMS(sm_db_text(a->work_id)), &rows, err);
    if (st == SM_OK)
        st = sm_db_rows_next(rows, &has, err);
    sm_db_rows_free(rows);
    if (st != SM_OK)
        return st;
    if (!has)
        return rt_refuse_tx(a->out, 422, "unknown-work", "Unknown work",
                            "work %s is not in the catalog (or no longer sellable); sync the "
                            "catalog (POST /v1/admin/catalog/sync) and check the contracts",
                            a->work_id);
    const char *type = sm_ks_license_type_name(a->terms.type);
    /* The key server sells under the newest contract offering the terms. */
    st = sm_db_query(c,
                     "SELECT price, currency, valid_until FROM wholesale_terms "
                     "WHERE work_id = ? AND license_type = ? AND duration = ? "
                     "ORDER BY contract_id DESC LIMIT 1",
                     SM_DB_PARAMS(sm_db_text(a->work_id), sm_db_text(type),
                                  sm_db_int(a->terms.duration)),
                     &rows, err);
    int64_t wholesale = 0, contract_until = 0;
    char currency[4] = "";
    has = 0;
    if (st == SM_OK && (st = sm_db_rows_next(rows, &has, err)) == SM_OK && has &&
        (st = sm_db_col_int(rows, 0, &wholesale, err)) == SM_OK &&
        (st = rt_col_copy(rows, 1, currency, sizeof(currency), err)) == SM_OK)
        st = sm_db_col_int(rows, 2, &contract_until, err);
    sm_db_rows_free(rows);
    if (st != SM_OK)
        return st;
    if (!has)
        return rt_refuse_tx(a->out, 422, "license-not-in-contract", "License not in contract",
                            "no contract lets this retailer sell work %s as %s%s; offer a "
                            "license type the contract allows",
                            a->work_id, type,
                            a->terms.type == SM_KS_RENTAL ? " with this duration" : "");
    if (strcmp(currency, a->ctx->currency) != 0)
        return rt_refuse_tx(a->out, 422, "currency-mismatch", "Currency mismatch",
                            "the contract for work %s is in %s, points are worth %s", a->work_id,
                            currency, a->ctx->currency);
    if (a->price < wholesale)
        return rt_refuse_tx(a->out, 422, "below-wholesale", "Price below wholesale",
                            "price %lld is below the contract's wholesale price %lld; set at "
                            "least that",
                            (long long)a->price, (long long)wholesale);
    int64_t until = a->has_until ? a->until : contract_until;
    if (a->from >= until)
        return rt_refuse_tx(a->out, 400, "invalid-request", "Invalid request",
                            "the offer's window is empty: valid_from must be before valid_until "
                            "(default: the contract's end, %lld)",
                            (long long)contract_until);
    st = sm_db_exec(c,
                    "INSERT INTO offers (work_id, license_type, duration, price, valid_from, "
                    "valid_until, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    SM_DB_PARAMS(sm_db_text(a->work_id), sm_db_text(type),
                                 sm_db_int(a->terms.duration), sm_db_int(a->price),
                                 sm_db_int(a->from), sm_db_int(until),
                                 sm_db_int(sm_rt_now(a->ctx))),
                    NULL, err);
    if (st != SM_OK)
        return st;
    a->out->status = 201;
    a->out->body = rt_offer_json(sm_db_insert_id(c), a->work_id, type, a->terms.duration,
                                 a->price, a->from, until);
    return a->out->body ? SM_OK : sm_error_set(err, SM_ERR_NOMEM, "out of memory");
}

sm_status sm_rt_offer_create(const sm_rt_ctx *ctx, json_t *body, sm_rt_result *out,
                             sm_error *err)
{
    sm_rt_result_init(out);
    sm_error e = {0};
    const char *work_id = NULL;
    uint64_t price = 0, from = 0, until = 0;
    offer_args a;
    memset(&a, 0, sizeof(a));
    if (sm_json_check_fields(body, offer_fields, "offer", &e) != SM_OK ||
        sm_json_get_string(body, "work_id", 64, 1, &work_id, "offer", &e) != SM_OK ||
        sm_validate_work_id(work_id, "field \"work_id\"", &e) != SM_OK ||
        sm_ks_terms_from_json(json_object_get(body, "license"), "field \"license\"", &a.terms,
                              &e) != SM_OK ||
        sm_json_get_uint64(body, "price", (uint64_t)PRICE_MAX, 1, &price, "offer", &e) != SM_OK ||
        sm_json_get_uint64(body, "valid_from", (uint64_t)1 << 40, 0, &from, "offer", &e) != SM_OK ||
        sm_json_get_uint64(body, "valid_until", (uint64_t)1 << 40, 0, &until, "offer", &e) !=
            SM_OK)
        return rt_bad_request(out, &e);
    a.ctx = ctx;
    a.work_id = work_id;
    a.price = (int64_t)price;
    a.from = json_object_get(body, "valid_from") ? (int64_t)from : sm_rt_now(ctx);
    a.has_until = json_object_get(body, "valid_until") != NULL;
    a.until = (int64_t)until;
    a.out = out;
    return rt_run(ctx, offer_tx, &a, out, err);
}

static sm_status offers_query(sm_db_conn *c, const char *work_id, int64_t now, json_t *list,
                              sm_error *err)
{
    sm_db_rows *rows = NULL;
    sm_status st;
    if (work_id != NULL)
        st = sm_db_query(c,
                         "SELECT offer_id, work_id, license_type, duration, price, valid_from, "
                         "valid_until FROM offers WHERE work_id = ? AND valid_from <= ? AND "
                         "valid_until > ? ORDER BY price, offer_id",
                         SM_DB_PARAMS(sm_db_text(work_id), sm_db_int(now), sm_db_int(now)), &rows,
                         err);
    else
        st = sm_db_query(c,
                         "SELECT offer_id, work_id, license_type, duration, price, valid_from, "
                         "valid_until FROM offers ORDER BY offer_id",
                         NULL, 0, &rows, err);
    int has = 0;
    while (st == SM_OK && (st = sm_db_rows_next(rows, &has, err)) == SM_OK && has) {
        uint64_t id = 0;
        int64_t duration = 0, price = 0, from = 0, until = 0;
        if ((st = sm_db_col_uint(rows, 0, &id, err)) != SM_OK ||
            (st = sm_db_col_int(rows, 3, &duration, err)) != SM_OK ||
            (st = sm_db_col_int(rows, 4, &price, err)) != SM_OK ||
            (st = sm_db_col_int(rows, 5, &from, err)) != SM_OK ||
            (st = sm_db_col_int(rows, 6, &until, err)) != SM_OK)
            break;
        json_t *o = rt_offer_json(id, sm_db_col_text(rows, 1, NULL), sm_db_col_text(rows, 2, NULL),
                                  duration, price, from, until);
        if (o == NULL || json_array_append_new(list, o) != 0)
            st = sm_error_set(err, SM_ERR_NOMEM, "out of memory");
    }
    sm_db_rows_free(rows);
    return st;
}

sm_status sm_rt_offer_list(const sm_rt_ctx *ctx, sm_rt_result *out, sm_error *err)
{
    sm_rt_result_init(out);
    sm_db_conn *c = NULL;
    sm_status st = sm_db_acquire(ctx->db, &c, err);
    if (st != SM_OK)
        return st;
    json_t *list = json_array();
    st = list ? offers_query(c, NULL, 0, list, err) : sm_error_set(err, SM_ERR_NOMEM, "oom");
    sm_db_release(c);
    if (st == SM_OK) {
        out->status = 200;
        out->body = json_pack("{s:o}", "offers", list);
        list = NULL;
    }
    json_decref(list);
    return st;
}

typedef struct end_args {
    const sm_rt_ctx *ctx;
    uint64_t id;
    uint64_t affected;
} end_args;

static sm_status end_tx(sm_db_conn *c, void *argp, sm_error *err)
{
    end_args *a = argp;
    int64_t now = sm_rt_now(a->ctx);
    /* Ends it now (orders keep their reference); an offer that has not
     * started yet gets a past one-second window (the CHECK wants
     * valid_from < valid_until). */
    return sm_db_exec(c,
                      "UPDATE offers SET valid_from = LEAST(valid_from, ? - 1), "
                      "valid_until = LEAST(valid_until, ?) WHERE offer_id = ?",
                      SM_DB_PARAMS(sm_db_int(now), sm_db_int(now), sm_db_uint(a->id)),
                      &a->affected, err);
}

int rt_parse_id(const char *s, uint64_t *out)
{
    uint64_t v = 0;
    if (s == NULL || s[0] == '\0' || s[0] == '0' || strlen(s) > 15)
        return 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9')
            return 0;
        v = v * 10 + (uint64_t)(*p - '0');
    }
    *out = v;
    return 1;
}

sm_status sm_rt_offer_end(const sm_rt_ctx *ctx, const char *offer_id, sm_rt_result *out,
                          sm_error *err)
{
    sm_rt_result_init(out);
    end_args a = {ctx, 0, 0};
    if (!rt_parse_id(offer_id, &a.id))
        return sm_rt_refuse(out, 400, "invalid-request", "Invalid request",
                            "the path names no offer id (a positive number)");
    sm_status st = rt_run(ctx, end_tx, &a, out, err);
    if (st != SM_OK)
        return st;
    /* MariaDB counts matched-but-unchanged rows as 0 affected: ask. */
    if (a.affected == 0) {
        sm_db_conn *c = NULL;
        if ((st = sm_db_acquire(ctx->db, &c, err)) != SM_OK)
            return st;
        sm_db_rows *rows = NULL;
        int has = 0;
        st = sm_db_query(c, "SELECT 1 FROM offers WHERE offer_id = ?",
                         SM_DB_PARAMS(sm_db_uint(a.id)), &rows, err);
        if (st == SM_OK)
            st = sm_db_rows_next(rows, &has, err);
        sm_db_rows_free(rows);
        sm_db_release(c);
        if (st != SM_OK)
            return st;
        if (!has)
            return sm_rt_refuse(out, 404, "not-found", "Not found", "no offer %llu",
                                (unsigned long long)a.id);
    }
    out->status = 204;
    return SM_OK;
}

/* ---- the shop's catalog ----------------------------------------------------------------- */

static json_t *item_json(const sm_rt_ctx *ctx, sm_db_rows *rows)
{
    const char *work_id = sm_db_col_text(rows, 0, NULL);
    json_t *o = json_pack("{s:s,s:s}", "work_id", work_id, "title", sm_db_col_text(rows, 1, NULL));
    if (o == NULL)
        return NULL;
    rt_set_text(o, "artist", sm_db_col_text(rows, 2, NULL));
    rt_set_text(o, "album", sm_db_col_text(rows, 3, NULL));
    rt_set_text(o, "artwork_ref", sm_db_col_text(rows, 4, NULL));
    rt_set_text(o, "media_type", sm_db_col_text(rows, 5, NULL));
    if (ctx->n_media > 0) {
        size_t n = strlen(ctx->media_urls[0]) + strlen(work_id) + 20;
        char *u = malloc(n);
        if (u != NULL) {
            snprintf(u, n, "%s/works/%s/preview", ctx->media_urls[0], work_id);
            json_object_set_new(o, "preview_url", json_string(u));
            free(u);
        }
    }
    return o;
}

static sm_status attach_offers(sm_db_conn *c, json_t *items, int64_t now, sm_error *err)
{
    size_t i;
    json_t *it;
    sm_status st = SM_OK;
    json_array_foreach(items, i, it) {
        json_t *list = json_array();
        if (list == NULL)
            return sm_error_set(err, SM_ERR_NOMEM, "out of memory");
        st = offers_query(c, json_string_value(json_object_get(it, "work_id")), now, list, err);
        json_object_set_new(it, "offers", list);
        if (st != SM_OK)
            break;
    }
    return st;
}

sm_status sm_rt_catalog_list(const sm_rt_ctx *ctx, const char *q, unsigned limit,
                             unsigned offset, sm_rt_result *out, sm_error *err)
{
    sm_rt_result_init(out);
    char expr[1024];
    unsigned words = 0, ignored = 0;
    sm_error e = {0};
    if (q != NULL && sm_rt_fulltext_expr(q, expr, sizeof(expr), &words, &ignored, &e) != SM_OK)
        return rt_bad_request(out, &e);
    if (words == 0 && ignored > 0) {
        /* Only words the index does not hold: nothing can match. */
        out->status = 200;
        out->body = json_pack("{s:[],s:i,s:I,s:I}", "items", "total", 0, "limit",
                              (json_int_t)limit, "offset", (json_int_t)offset);
        return out->body ? SM_OK : sm_error_set(err, SM_ERR_NOMEM, "out of memory");
    }
    int64_t now = sm_rt_now(ctx);
    sm_db_conn *c = NULL;
    sm_status st = sm_db_acquire(ctx->db, &c, err);
    if (st != SM_OK)
        return st;
    sm_db_rows *rows = NULL;
    uint64_t total = 0;
    int has = 0;
    if (words > 0)
        st = sm_db_query(c,
                         "SELECT COUNT(*) FROM catalog_works w WHERE w.available = 1 AND "
                         "EXISTS (SELECT 1 FROM offers o WHERE o.work_id = w.work_id AND "
                         "o.valid_from <= ? AND o.valid_until > ?) AND "
                         "MATCH (w.title, w.artist, w.album) AGAINST (? IN BOOLEAN MODE)",
                         SM_DB_PARAMS(sm_db_int(now), sm_db_int(now), sm_db_text(expr)), &rows,
                         err);
    else
        st = sm_db_query(c,
                         "SELECT COUNT(*) FROM catalog_works w WHERE w.available = 1 AND "
                         "EXISTS (SELECT 1 FROM offers o WHERE o.work_id = w.work_id AND "
                         "o.valid_from <= ? AND o.valid_until > ?)",
                         SM_DB_PARAMS(sm_db_int(now), sm_db_int(now)), &rows, err);
    if (st == SM_OK && (st = sm_db_rows_next(rows, &has, err)) == SM_OK && has)
        st = sm_db_col_uint(rows, 0, &total, err);
    sm_db_rows_free(rows);
    rows = NULL;
    if (st == SM_OK && words > 0)
        st = sm_db_query(c,
                         "SELECT w.work_id, w.title, w.artist, w.album, w.artwork_ref, "
                         "w.media_type FROM catalog_works w WHERE w.available = 1 AND "
                         "EXISTS (SELECT 1 FROM offers o WHERE o.work_id = w.work_id AND "
                         "o.valid_from <= ? AND o.valid_until > ?) AND "
                         "MATCH (w.title, w.artist, w.album) AGAINST (? IN BOOLEAN MODE) "
                         "ORDER BY MATCH (w.title, w.artist, w.album) AGAINST (? IN BOOLEAN MODE) "
                         "DESC, w.title, w.work_id LIMIT ? OFFSET ?",
                         SM_DB_PARAMS(sm_db_int(now), sm_db_int(now), sm_db_text(expr),
                                      sm_db_text(expr), sm_db_uint(limit), sm_db_uint(offset)),
                         &rows, err);
    else if (st == SM_OK)
        st = sm_db_query(c,
                         "SELECT w.work_id, w.title, w.artist, w.album, w.artwork_ref, "
                         "w.media_type FROM catalog_works w WHERE w.available = 1 AND "
                         "EXISTS (SELECT 1 FROM offers o WHERE o.work_id = w.work_id AND "
                         "o.valid_from <= ? AND o.valid_until > ?) "
                         "ORDER BY w.title, w.work_id LIMIT ? OFFSET ?",
                         SM_DB_PARAMS(sm_db_int(now), sm_db_int(now), sm_db_uint(limit),
                                      sm_db_uint(offset)),
                         &rows, err);
    json_t *items = json_array();
    while (st == SM_OK && items && (st = sm_db_rows_next(rows, &has, err)) == SM_OK && has) {
        json_t *it = item_json(ctx, rows);
        if (it == NULL || json_array_append_new(items, it) != 0)
            st = sm_error_set(err, SM_ERR_NOMEM, "out of memory");
    }
    sm_db_rows_free(rows);
    if (st == SM_OK && items)
        st = attach_offers(c, items, now, err);
    sm_db_release(c);
    if (st == SM_OK && items) {
        out->status = 200;
        out->body = json_pack("{s:o,s:I,s:I,s:I}", "items", items, "total", (json_int_t)total,
                              "limit", (json_int_t)limit, "offset", (json_int_t)offset);
        items = NULL;
        if (out->body == NULL)
            st = sm_error_set(err, SM_ERR_NOMEM, "out of memory");
    }
    json_decref(items);
    return st;
}

sm_status sm_rt_catalog_get(const sm_rt_ctx *ctx, const char *work_id, sm_rt_result *out,
                            sm_error *err)
{
    sm_rt_result_init(out);
    sm_error e = {0};
    if (sm_validate_work_id(work_id, "work id in the path", &e) != SM_OK)
        return rt_bad_request(out, &e);
    sm_db_conn *c = NULL;
    sm_status st = sm_db_acquire(ctx->db, &c, err);
    if (st != SM_OK)
        return st;
    sm_db_rows *rows = NULL;
    int has = 0;
    st = sm_db_query(c,
                     "SELECT work_id, title, artist, album, artwork_ref, media_type "
                     "FROM catalog_works WHERE work_id = ? AND available = 1",
                     SM_DB_PARAMS(sm_db_text(work_id)), &rows, err);
    json_t *items = json_array();
    if (st == SM_OK && (st = sm_db_rows_next(rows, &has, err)) == SM_OK && has && items) {
        json_t *it = item_json(ctx, rows);
        if (it == NULL || json_array_append_new(items, it) != 0)
            st = sm_error_set(err, SM_ERR_NOMEM, "out of memory");
    }
    sm_db_rows_free(rows);
    if (st == SM_OK && has)
        st = attach_offers(c, items, sm_rt_now(ctx), err);
    sm_db_release(c);
    if (st == SM_OK && !has)
        sm_rt_refuse(out, 404, "not-found", "Not found", "work %s is not in this shop", work_id);
    else if (st == SM_OK) {
        out->status = 200;
        out->body = json_incref(json_array_get(items, 0));
    }
    json_decref(items);
    return st;
}
