#include "config.h"

/* Orders: the state machine that turns an offer, a device and points into
 * a paid sale at the key server and a steering file (sm_rt_store.h,
 * docs/PROTOCOL.md §4.7).
 *
 *   pending --reservation ok + debit--> debited --payment recorded--> completed
 *      | key server refuses,                   | key server refuses for good
 *      | or balance too low                    v
 *      v                                    refunded (debit given back)
 *    failed
 *
 * Each arrow is one database transaction that checks the state it leaves
 * (row locked FOR UPDATE), so concurrent repeats of one order move it
 * once. The key server calls between them are idempotent (the order id is
 * both the reservation_ref and the payment_ref), so an order whose outcome
 * was unknown (key server unreachable: 503) resumes from its state when
 * repeated with the same Idempotency-Key, and the background resumer
 * finishes orders left in debited. A debit never exists without a
 * reservation (debit follows it), and a reservation is paid once (one
 * payment_ref). */

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "sm_json.h"
#include "sm_ks_terms.h"
#include "sm_rt_auth.h"
#include "sm_rt_store_int.h"
#include "sm_rt_validate.h"
#include "sm_steer.h"

#define KS_ANSWER_MAX (256u * 1024u)
#define MAX_STEPS 8

typedef struct rt_order {
    char order_id[SM_RT_ORDER_ID_SIZE];
    uint8_t req_hash[32];
    char state[12];
    uint64_t offer_id;
    char work_id[65];
    sm_ks_terms terms;
    int64_t price;
    char jkt[44];
    int gift;
    char txn[65];
    char *voucher;
    int64_t wholesale;
    char currency[4];
    char *steer;
    char *problem;
    int64_t created_at, completed_at;
    char *title;
    /* The work's display data, read with the offer (new orders only). */
    int have_meta;
    char *artist, *album, *media_type;
} rt_order;

static void order_clear(rt_order *o)
{
    free(o->voucher);
    free(o->steer);
    free(o->problem);
    free(o->title);
    free(o->artist);
    free(o->album);
    free(o->media_type);
    memset(o, 0, sizeof(*o));
}

#define ORDER_COLS                                                                               \
    "o.order_id, o.request_sha256, o.state, o.offer_id, o.work_id, o.license_type, o.duration, " \
    "o.price, o.device_jkt, o.gift, o.txn, o.voucher, o.wholesale_price, o.currency, o.steer, "  \
    "o.problem, o.created_at, o.completed_at, "                                                  \
    "(SELECT w.title FROM catalog_works w WHERE w.work_id = o.work_id)"

static char *dup_col(sm_db_rows *rows, unsigned col)
{
    size_t len = 0;
    const char *v = sm_db_col_text(rows, col, &len);
    if (v == NULL)
        return NULL;
    char *d = malloc(len + 1);
    if (d != NULL) {
        memcpy(d, v, len);
        d[len] = '\0';
    }
    return d;
}

static sm_status order_from_row(sm_db_rows *rows, rt_order *o, sm_error *err)
{
    order_clear(o);
    size_t hlen = 0;
    const char *h = sm_db_col_text(rows, 1, &hlen);
    int64_t gift = 0, duration = 0;
    sm_status st;
    if ((st = rt_col_copy(rows, 0, o->order_id, sizeof(o->order_id), err)) != SM_OK ||
        (st = rt_col_copy(rows, 2, o->state, sizeof(o->state), err)) != SM_OK ||
        (st = sm_db_col_uint(rows, 3, &o->offer_id, err)) != SM_OK ||
        (st = rt_col_copy(rows, 4, o->work_id, sizeof(o->work_id), err)) != SM_OK ||
        (st = sm_db_col_int(rows, 6, &duration, err)) != SM_OK ||
        (st = sm_db_col_int(rows, 7, &o->price, err)) != SM_OK ||
        (st = rt_col_copy(rows, 8, o->jkt, sizeof(o->jkt), err)) != SM_OK ||
        (st = sm_db_col_int(rows, 9, &gift, err)) != SM_OK ||
        (st = rt_col_copy(rows, 10, o->txn, sizeof(o->txn), err)) != SM_OK ||
        (st = rt_col_copy(rows, 13, o->currency, sizeof(o->currency), err)) != SM_OK ||
        (st = sm_db_col_int(rows, 16, &o->created_at, err)) != SM_OK)
        return st;
    if (h == NULL || hlen != 32)
        return sm_error_set(err, SM_ERR_DB, "order row without a request hash");
    memcpy(o->req_hash, h, 32);
    o->terms.type = sm_ks_license_type_from_name(sm_db_col_text(rows, 5, NULL));
    o->terms.duration = duration;
    o->gift = gift != 0;
    if (sm_db_col_text(rows, 12, NULL) != NULL &&
        (st = sm_db_col_int(rows, 12, &o->wholesale, err)) != SM_OK)
        return st;
    if (sm_db_col_text(rows, 17, NULL) != NULL &&
        (st = sm_db_col_int(rows, 17, &o->completed_at, err)) != SM_OK)
        return st;
    o->voucher = dup_col(rows, 11);
    o->steer = dup_col(rows, 14);
    o->problem = dup_col(rows, 15);
    o->title = dup_col(rows, 18);
    return SM_OK;
}

/* Loads an order (FOR UPDATE when lock). *found = 0 when absent. */
static sm_status load_order(sm_db_conn *c, const char *order_id, int lock, rt_order *o,
                            int *found, sm_error *err)
{
    sm_db_rows *rows = NULL;
    *found = 0;
    sm_status st = lock ? sm_db_query(c, "SELECT " ORDER_COLS " FROM orders o WHERE o.order_id = ? "
                                         "FOR UPDATE",
                                      SM_DB_PARAMS(sm_db_text(order_id)), &rows, err)
                        : sm_db_query(c, "SELECT " ORDER_COLS " FROM orders o WHERE o.order_id = ?",
                                      SM_DB_PARAMS(sm_db_text(order_id)), &rows, err);
    if (st == SM_OK)
        st = sm_db_rows_next(rows, found, err);
    if (st == SM_OK && *found)
        st = order_from_row(rows, o, err);
    sm_db_rows_free(rows);
    return st;
}

static json_t *order_json(const rt_order *o, int with_steer)
{
    json_t *lic = sm_ks_terms_to_json(&o->terms);
    if (lic == NULL)
        return NULL;
    json_t *j = json_pack("{s:s,s:s,s:I,s:s,s:o,s:I,s:s,s:b,s:I}", "order_id", o->order_id,
                          "state", o->state, "offer_id", (json_int_t)o->offer_id, "work_id",
                          o->work_id, "license", lic, "price", (json_int_t)o->price,
                          "device_jkt", o->jkt, "gift", o->gift, "created_at",
                          (json_int_t)o->created_at);
    if (j == NULL)
        return NULL;
    rt_set_text(j, "title", o->title);
    rt_set_text(j, "txn", o->txn);
    if (o->completed_at != 0)
        json_object_set_new(j, "completed_at", json_integer((json_int_t)o->completed_at));
    if (strcmp(o->state, "completed") == 0) {
        char url[64];
        snprintf(url, sizeof(url), "/v1/orders/%s/steer", o->order_id);
        json_object_set_new(j, "steer_url", json_string(url));
        if (with_steer && o->steer != NULL)
            json_object_set_new(j, "steer", json_string(o->steer));
    }
    if (o->problem != NULL) {
        json_t *p = json_loads(o->problem, 0, NULL);
        if (p != NULL)
            json_object_set_new(j, "problem", p);
    }
    return j;
}

/* The stored refusal of a failed or refunded order, as a problem. */
static const struct {
    const char *slug, *title;
} order_problems[] = {
    {"offer-unavailable", "Offer unavailable"},
    {"insufficient-funds", "Insufficient funds"},
    {"order-failed", "Order failed"},
};

static sm_status answer_problem(const rt_order *o, sm_rt_result *out)
{
    json_t *p = o->problem ? json_loads(o->problem, 0, NULL) : NULL;
    const char *slug = p ? json_string_value(json_object_get(p, "slug")) : NULL;
    const char *detail = p ? json_string_value(json_object_get(p, "detail")) : NULL;
    int status = p ? (int)json_integer_value(json_object_get(p, "status")) : 409;
    for (size_t i = 0; i < sizeof(order_problems) / sizeof(order_problems[0]); i++)
        if (slug != NULL && strcmp(slug, order_problems[i].slug) == 0) {
            sm_rt_refuse(out, status, order_problems[i].slug, order_problems[i].title,
                         "order %s: %s", o->order_id, detail ? detail : "failed");
            json_decref(p);
            return SM_OK;
        }
    json_decref(p);
    return sm_rt_refuse(out, 409, "order-failed", "Order failed", "order %s failed",
                        o->order_id);
}

static char *problem_text(int status, const char *slug, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static char *problem_text(int status, const char *slug, const char *fmt, ...)
{
    char detail[SM_RT_DETAIL_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof(detail), fmt, ap);
    va_end(ap);
    json_t *p = json_pack("{s:i,s:s,s:s}", "status", status, "slug", slug, "detail", detail);
    char *s = p ? json_dumps(p, JSON_COMPACT) : NULL;
    json_decref(p);
    return s;
}

/* ---- step 0: create or find ------------------------------------------------------ */

typedef struct create_args {
    const sm_rt_ctx *ctx;
    uint64_t account_id;
    const char *idem_key;
    uint8_t req_hash[32];
    uint64_t offer_id;
    const char *jkt; /* may be NULL */
    rt_order *ord;
    int found;
    int inserted; /* create_fast inserted the order */
    sm_rt_result *out;
} create_args;

/* Inserts the order checked by the caller and fills a->ord with it (no
 * read back). SM_ERR_DUPLICATE: the account used this key already. */
static sm_status insert_order(sm_db_conn *c, create_args *a, const char *work_id,
                              const char *type, int64_t duration, int64_t price, const char *jkt,
                              int gift, int64_t now, sm_error *err)
{
    char order_id[SM_RT_ORDER_ID_SIZE];
    sm_status st = sm_rt_order_id_new(order_id, err);
    if (st != SM_OK)
        return st;
    st = sm_db_exec(c,
                    "INSERT INTO orders (order_id, account_id, idempotency_key, request_sha256, "
                    "state, offer_id, work_id, license_type, duration, price, device_jkt, gift, "
                    "created_at, updated_at) VALUES (?, ?, ?, ?, 'pending', ?, ?, ?, ?, ?, ?, ?, "
                    "?, ?)",
                    SM_DB_PARAMS(sm_db_text(order_id), sm_db_uint(a->account_id),
                                 sm_db_text(a->idem_key), sm_db_blob(a->req_hash, 32),
                                 sm_db_uint(a->offer_id), sm_db_text(work_id), sm_db_text(type),
                                 sm_db_int(duration), sm_db_int(price), sm_db_text(jkt),
                                 sm_db_int(gift), sm_db_int(now), sm_db_int(now)),
                    NULL, err);
    if (st != SM_OK)
        return st;
    rt_order *o = a->ord;
    memcpy(o->order_id, order_id, sizeof(o->order_id));
    memcpy(o->req_hash, a->req_hash, 32);
    snprintf(o->state, sizeof(o->state), "pending");
    o->offer_id = a->offer_id;
    snprintf(o->work_id, sizeof(o->work_id), "%s", work_id);
    o->terms.type = sm_ks_license_type_from_name(type);
    o->terms.duration = duration;
    o->price = price;
    snprintf(o->jkt, sizeof(o->jkt), "%s", jkt);
    o->gift = gift;
    o->created_at = now;
    return SM_OK;
}

static sm_status create_tx(sm_db_conn *c, void *argp, sm_error *err)
{
    create_args *a = argp;
    sm_rt_result_clear(a->out);
    a->found = 0;
    sm_db_rows *rows = NULL;
    int has = 0;
    sm_status st = sm_db_query(c,
                               "SELECT " ORDER_COLS " FROM orders o WHERE o.account_id = ? AND "
                               "o.idempotency_key = ?",
                               SM_DB_PARAMS(sm_db_uint(a->account_id), sm_db_text(a->idem_key)),
                               &rows, err);
    if (st == SM_OK)
        st = sm_db_rows_next(rows, &has, err);
    if (st == SM_OK && has)
        st = order_from_row(rows, a->ord, err);
    sm_db_rows_free(rows);
    if (st != SM_OK)
        return st;
    if (has) {
        if (CRYPTO_memcmp(a->ord->req_hash, a->req_hash, 32) != 0)
            return rt_refuse_tx(a->out, 409, "idempotency-key-reused", "Idempotency key reused",
                                "this Idempotency-Key was used for another order (other offer "
                                "or device); use a new key for a new order");
        a->found = 1;
        return SM_OK;
    }
    int64_t now = sm_rt_now(a->ctx);
    /* The offer, active now, of a work still sellable. */
    st = sm_db_query(c,
                     "SELECT o.work_id, o.license_type, o.duration, o.price, w.title, w.artist, "
                     "w.album, w.media_type FROM offers o "
                     "JOIN catalog_works w ON w.work_id = o.work_id WHERE o.offer_id = ? AND "
                     "o.valid_from <= ? AND o.valid_until > ? AND w.available = 1",
                     SM_DB_PARAMS(sm_db_uint(a->offer_id), sm_db_int(now), sm_db_int(now)), &rows,
                     err);
    char work_id[65] = "", type[10] = "";
    int64_t duration = 0, price = 0;
    has = 0;
    if (st == SM_OK && (st = sm_db_rows_next(rows, &has, err)) == SM_OK && has &&
        (st = rt_col_copy(rows, 0, work_id, sizeof(work_id), err)) == SM_OK &&
        (st = rt_col_copy(rows, 1, type, sizeof(type), err)) == SM_OK &&
        (st = sm_db_col_int(rows, 2, &duration, err)) == SM_OK &&
        (st = sm_db_col_int(rows, 3, &price, err)) == SM_OK) {
        order_clear(a->ord);
        a->ord->title = dup_col(rows, 4);
        a->ord->artist = dup_col(rows, 5);
        a->ord->album = dup_col(rows, 6);
        a->ord->media_type = dup_col(rows, 7);
        a->ord->have_meta = a->ord->title != NULL;
    }
    sm_db_rows_free(rows);
    if (st != SM_OK)
        return st;
    if (!has)
        return rt_refuse_tx(a->out, 404, "unknown-offer", "Unknown offer",
                            "offer %llu does not exist or is not on sale now; see GET /v1/catalog",
                            (unsigned long long)a->offer_id);
    /* The designated device: named (any account's: a gift) or the
     * buyer's only one. */
    char jkt[44] = "";
    uint64_t owner = 0;
    if (a->jkt != NULL) {
        st = sm_db_query(c, "SELECT account_id FROM devices WHERE jkt = ?",
                         SM_DB_PARAMS(sm_db_text(a->jkt)), &rows, err);
        has = 0;
        if (st == SM_OK && (st = sm_db_rows_next(rows, &has, err)) == SM_OK && has)
            st = sm_db_col_uint(rows, 0, &owner, err);
        sm_db_rows_free(rows);
        if (st != SM_OK)
            return st;
        if (!has)
            return rt_refuse_tx(a->out, 404, "unknown-device", "Unknown device",
                                "no registered device has this thumbprint; the recipient must "
                                "register it first (POST /v1/devices)");
        snprintf(jkt, sizeof(jkt), "%s", a->jkt);
    } else {
        st = sm_db_query(c, "SELECT jkt FROM devices WHERE account_id = ? LIMIT 2",
                         SM_DB_PARAMS(sm_db_uint(a->account_id)), &rows, err);
        size_t n = st == SM_OK ? sm_db_rows_count(rows) : 0;
        if (st == SM_OK && n == 1 && (st = sm_db_rows_next(rows, &has, err)) == SM_OK)
            st = rt_col_copy(rows, 0, jkt, sizeof(jkt), err);
        sm_db_rows_free(rows);
        if (st != SM_OK)
            return st;
        if (n != 1)
            return rt_refuse_tx(a->out, 400, "invalid-request", "Invalid request",
                                n == 0 ? "you have no registered device; register one "
                                         "(POST /v1/devices) or name one in \"device_jkt\""
                                       : "you have several devices; name one in \"device_jkt\"");
        owner = a->account_id;
    }
    /* A cheap early refusal; the debit step checks again under lock. */
    st = sm_db_query(c, "SELECT balance FROM accounts WHERE account_id = ?",
                     SM_DB_PARAMS(sm_db_uint(a->account_id)), &rows, err);
    int64_t balance = 0;
    has = 0;
    if (st == SM_OK && (st = sm_db_rows_next(rows, &has, err)) == SM_OK && has)
        st = sm_db_col_int(rows, 0, &balance, err);
    sm_db_rows_free(rows);
    if (st != SM_OK)
        return st;
    if (balance < price)
        return rt_refuse_tx(a->out, 402, "insufficient-funds", "Insufficient funds",
                            "the offer costs %lld points and your balance is %lld; top up or "
                            "redeem a code first",
                            (long long)price, (long long)balance);
    st = insert_order(c, a, work_id, type, duration, price, jkt, owner != a->account_id, now,
                      err);
    if (st == SM_ERR_DUPLICATE) /* the same key, concurrently: run again, find it */
        return sm_error_set(err, SM_ERR_CONFLICT, "concurrent order with the same key");
    return st;
}

/* The common case in two statements, in autocommit: one query checks the
 * offer (active now, work on sale), the designated device and a balance
 * that covers the price, and reads what the order needs (with the work's
 * display data for its steering file); then the insert. The same reads
 * create_tx makes, none of them locking (the debit checks the balance
 * again under lock). Nothing found, or the key already used: create_tx
 * runs and says precisely why (or finds the earlier order). */
#define CREATE_CHECK_SELECT                                                                      \
    "SELECT o.work_id, o.license_type, o.duration, o.price, d.jkt, d.account_id, w.title, "      \
    "w.artist, w.album, w.media_type FROM offers o "                                             \
    "JOIN catalog_works w ON w.work_id = o.work_id "                                            \
    "JOIN accounts a ON a.account_id = ? AND a.balance >= o.price "
#define CREATE_CHECK_WHERE                                                                       \
    "WHERE o.offer_id = ? AND o.valid_from <= ? AND o.valid_until > ? AND w.available = 1"

/* device_jkt named: any account's registered device (a gift). */
static const char create_check_named[] = CREATE_CHECK_SELECT
    "JOIN devices d ON d.jkt = ? " CREATE_CHECK_WHERE;
/* None named: the buyer's only device. */
static const char create_check_only[] = CREATE_CHECK_SELECT
    "JOIN devices d ON d.account_id = a.account_id " CREATE_CHECK_WHERE
    " AND (SELECT COUNT(*) FROM devices n WHERE n.account_id = a.account_id) = 1";

static sm_status create_fast(sm_db_conn *c, void *argp, sm_error *err)
{
    create_args *a = argp;
    sm_rt_result_clear(a->out);
    a->found = 0;
    a->inserted = 0;
    int64_t now = sm_rt_now(a->ctx);
    sm_db_rows *rows = NULL;
    sm_status st;
    if (a->jkt != NULL)
        st = sm_db_query(c, create_check_named,
                         SM_DB_PARAMS(sm_db_uint(a->account_id), sm_db_text(a->jkt),
                                      sm_db_uint(a->offer_id), sm_db_int(now), sm_db_int(now)),
                         &rows, err);
    else
        st = sm_db_query(c, create_check_only,
                         SM_DB_PARAMS(sm_db_uint(a->account_id), sm_db_uint(a->offer_id),
                                      sm_db_int(now), sm_db_int(now)),
                         &rows, err);
    int has = 0;
    char work_id[65] = "", type[10] = "", jkt[44] = "";
    int64_t duration = 0, price = 0;
    uint64_t owner = 0;
    rt_order *o = a->ord;
    order_clear(o);
    if (st == SM_OK && (st = sm_db_rows_next(rows, &has, err)) == SM_OK && has &&
        (st = rt_col_copy(rows, 0, work_id, sizeof(work_id), err)) == SM_OK &&
        (st = rt_col_copy(rows, 1, type, sizeof(type), err)) == SM_OK &&
        (st = sm_db_col_int(rows, 2, &duration, err)) == SM_OK &&
        (st = sm_db_col_int(rows, 3, &price, err)) == SM_OK &&
        (st = rt_col_copy(rows, 4, jkt, sizeof(jkt), err)) == SM_OK &&
        (st = sm_db_col_uint(rows, 5, &owner, err)) == SM_OK) {
        o->title = dup_col(rows, 6);
        o->artist = dup_col(rows, 7);
        o->album = dup_col(rows, 8);
        o->media_type = dup_col(rows, 9);
        o->have_meta = o->title != NULL;
    }
    sm_db_rows_free(rows);
    if (st == SM_OK && has)
        st = insert_order(c, a, work_id, type, duration, price, jkt, owner != a->account_id, now,
                          err);
    if (st == SM_OK && has) {
        a->inserted = 1;
        return SM_OK;
    }
    order_clear(o);
    return st == SM_ERR_DUPLICATE ? SM_OK : st; /* the key was used: create_tx finds that order */
}

/* ---- transitions ------------------------------------------------------------------- */

typedef struct step_args {
    const sm_rt_ctx *ctx;
    uint64_t account_id;
    rt_order *ord;
    const char *from;  /* the state the step leaves */
    /* reserve */
    const char *txn, *voucher, *currency;
    int64_t wholesale;
    /* fail / refund */
    char *problem;
    /* complete */
    const char *payment_token, *steer;
} step_args;

/* Re-reads the order under lock; SM_OK with *moved = 1 when it is no
 * longer in a->from (another request moved it: the caller goes on from
 * the state now loaded). */
static sm_status relock(sm_db_conn *c, step_args *a, int *moved, sm_error *err)
{
    char id[SM_RT_ORDER_ID_SIZE], state[12] = "";
    memcpy(id, a->ord->order_id, sizeof(id));
    sm_db_rows *rows = NULL;
    int has = 0;
    *moved = 0;
    sm_status st = sm_db_query(c, "SELECT state FROM orders WHERE order_id = ? FOR UPDATE",
                               SM_DB_PARAMS(sm_db_text(id)), &rows, err);
    if (st == SM_OK)
        st = sm_db_rows_next(rows, &has, err);
    if (st == SM_OK && has)
        st = rt_col_copy(rows, 0, state, sizeof(state), err);
    sm_db_rows_free(rows);
    if (st == SM_OK && !has)
        st = sm_error_set(err, SM_ERR_DB, "order %s vanished", id);
    if (st != SM_OK || strcmp(state, a->from) == 0)
        return st; /* still where this step starts: the struct is current */
    /* Another request moved it: take the row as it is now. */
    int found = 0;
    st = load_order(c, id, 0, a->ord, &found, err);
    if (st == SM_OK && !found)
        st = sm_error_set(err, SM_ERR_DB, "order %s vanished", id);
    *moved = st == SM_OK;
    return st;
}


/* Takes the row as it is now after another request moved it. */
static sm_status reload(sm_db_conn *c, step_args *a, sm_error *err)
{
    char id[SM_RT_ORDER_ID_SIZE];
    memcpy(id, a->ord->order_id, sizeof(id));
    int found = 0;
    sm_status st = load_order(c, id, 1, a->ord, &found, err);
    if (st == SM_OK && !found)
        st = sm_error_set(err, SM_ERR_DB, "order %s vanished", id);
    return st;
}

/* The reservation as the order now holds it. */
static sm_status keep_reservation(step_args *a, sm_error *err)
{
    snprintf(a->ord->txn, sizeof(a->ord->txn), "%s", a->txn);
    free(a->ord->voucher);
    a->ord->voucher = strdup(a->voucher);
    a->ord->wholesale = a->wholesale;
    snprintf(a->ord->currency, sizeof(a->ord->currency), "%s", a->currency);
    if (a->ord->voucher == NULL)
        return sm_error_set(err, SM_ERR_NOMEM, "out of memory");
    return SM_OK;
}

/* The common case of reserved_tx in one statement: the order row leaves
 * pending and the account row pays the price, or neither changes (*done =
 * 0: the order moved on, or the balance no longer covers the price). */
static sm_status debit_in_one(sm_db_conn *c, step_args *a, int64_t now, int *done,
                              sm_error *err)
{
    uint64_t changed = 0;
    *done = 0;
    sm_status st = sm_db_exec(c,
                              "UPDATE orders o JOIN accounts a ON a.account_id = ? "
                              "SET o.state = 'debited', o.txn = ?, o.voucher = ?, "
                              "o.wholesale_price = ?, o.currency = ?, o.updated_at = ?, "
                              "a.balance = a.balance - o.price "
                              "WHERE o.order_id = ? AND o.state = 'pending' AND "
                              "a.balance >= o.price",
                              SM_DB_PARAMS(sm_db_uint(a->account_id), sm_db_text(a->txn),
                                           sm_db_text(a->voucher), sm_db_int(a->wholesale),
                                           sm_db_text(a->currency), sm_db_int(now),
                                           sm_db_text(a->ord->order_id)),
                              &changed, err);
    if (st != SM_OK || changed == 0)
        return st;
    if (changed != 2)
        return sm_error_set(err, SM_ERR_DB, "order %s: its debit changed %llu rows, not 2",
                            a->ord->order_id, (unsigned long long)changed);
    if ((st = rt_wallet_journal_add(c, a->account_id, "order", -a->ord->price, a->ord->order_id,
                                    NULL, now, err)) != SM_OK ||
        (st = keep_reservation(a, err)) != SM_OK)
        return st;
    snprintf(a->ord->state, sizeof(a->ord->state), "debited");
    *done = 1;
    return SM_OK;
}

/* The reservation came back: record it and, in the same transaction,
 * debit the wallet (pending -> debited in one commit); a balance that no
 * longer covers the price fails the order instead, nothing debited. Both
 * rows are locked by the first UPDATE, the order row before the account
 * row, as everywhere; the journal entry follows. Only when it changed
 * nothing (or the price is 0, which changes no balance) do the separate
 * steps below find out why. */
static sm_status reserved_tx(sm_db_conn *c, void *argp, sm_error *err)
{
    step_args *a = argp;
    a->from = "pending";
    int64_t now = sm_rt_now(a->ctx);
    int done = 0;
    sm_status st = a->ord->price > 0 ? debit_in_one(c, a, now, &done, err) : SM_OK;
    if (st != SM_OK || done)
        return st;
    uint64_t claimed = 0;
    st = sm_db_exec(c,
                    "UPDATE orders SET state = 'debited', txn = ?, voucher = ?, "
                    "wholesale_price = ?, currency = ?, updated_at = ? "
                    "WHERE order_id = ? AND state = 'pending'",
                    SM_DB_PARAMS(sm_db_text(a->txn), sm_db_text(a->voucher),
                                 sm_db_int(a->wholesale), sm_db_text(a->currency), sm_db_int(now),
                                 sm_db_text(a->ord->order_id)),
                    &claimed, err);
    if (st != SM_OK)
        return st;
    if (claimed == 0)
        return reload(c, a, err); /* another request moved it on */
    if ((st = keep_reservation(a, err)) != SM_OK)
        return st;
    st = rt_wallet_move(c, a->account_id, "order", -a->ord->price, a->ord->order_id, NULL, now,
                        NULL, NULL, err);
    if (st == SM_ERR_STATE) {
        /* Not enough points now (spent by a concurrent order): fail it;
         * the unpaid reservation expires at the key server. */
        free(a->problem);
        a->problem = problem_text(402, "insufficient-funds",
                                  "your balance no longer covers %lld points; top up and order "
                                  "again with a new Idempotency-Key",
                                  (long long)a->ord->price);
        if (a->problem == NULL)
            return sm_error_set(err, SM_ERR_NOMEM, "out of memory");
        st = sm_db_exec(c, "UPDATE orders SET state = 'failed', problem = ? WHERE order_id = ?",
                        SM_DB_PARAMS(sm_db_text(a->problem), sm_db_text(a->ord->order_id)), NULL,
                        err);
        if (st == SM_OK) {
            snprintf(a->ord->state, sizeof(a->ord->state), "failed");
            free(a->ord->problem);
            a->ord->problem = strdup(a->problem);
        }
        return st;
    }
    if (st == SM_OK)
        snprintf(a->ord->state, sizeof(a->ord->state), "debited");
    return st;
}

/* The order row is locked and in state a->from. */
static sm_status fail_locked(sm_db_conn *c, step_args *a, sm_error *err)
{
    sm_status st = SM_OK;
    int refund = strcmp(a->from, "debited") == 0;
    if (refund)
        st = rt_wallet_move(c, a->account_id, "refund", a->ord->price, a->ord->order_id, NULL,
                            sm_rt_now(a->ctx), NULL, NULL, err);
    if (st == SM_OK)
        st = sm_db_exec(c,
                        "UPDATE orders SET state = ?, problem = ?, txn = COALESCE(?, txn), "
                        "voucher = COALESCE(?, voucher), "
                        "wholesale_price = COALESCE(?, wholesale_price), "
                        "currency = COALESCE(?, currency), updated_at = ? WHERE order_id = ?",
                        SM_DB_PARAMS(sm_db_text(refund ? "refunded" : "failed"),
                                     sm_db_text(a->problem), sm_db_text(a->txn),
                                     sm_db_text(a->voucher),
                                     a->txn ? sm_db_int(a->wholesale) : sm_db_null(),
                                     sm_db_text(a->currency), sm_db_int(sm_rt_now(a->ctx)),
                                     sm_db_text(a->ord->order_id)),
                        NULL, err);
    if (st == SM_OK) {
        snprintf(a->ord->state, sizeof(a->ord->state), "%s", refund ? "refunded" : "failed");
        free(a->ord->problem);
        a->ord->problem = strdup(a->problem);
    }
    return st;
}

static sm_status fail_tx(sm_db_conn *c, void *argp, sm_error *err)
{
    step_args *a = argp;
    int moved = 0;
    sm_status st = relock(c, a, &moved, err);
    if (st != SM_OK || moved)
        return st;
    return fail_locked(c, a, err);
}

static char *build_steer(const sm_rt_ctx *ctx, sm_db_conn *c, const rt_order *o, sm_error *err)
{
    sm_db_rows *rows = NULL;
    int has = 0;
    const char *title = o->title, *artist = o->artist, *album = o->album, *mt = o->media_type;
    if (!o->have_meta) {
        sm_status st = sm_db_query(c,
                                   "SELECT title, artist, album, media_type FROM catalog_works "
                                   "WHERE work_id = ?",
                                   SM_DB_PARAMS(sm_db_text(o->work_id)), &rows, err);
        if (st == SM_OK)
            st = sm_db_rows_next(rows, &has, err);
        if (st != SM_OK || !has) {
            sm_db_rows_free(rows);
            if (st == SM_OK)
                sm_error_set(err, SM_ERR_DB, "work %s left the catalog", o->work_id);
            return NULL;
        }
        title = sm_db_col_text(rows, 0, NULL);
        artist = sm_db_col_text(rows, 1, NULL);
        album = sm_db_col_text(rows, 2, NULL);
        mt = sm_db_col_text(rows, 3, NULL);
    }
    char *urls[SM_RT_MAX_MEDIA_STORES];
    sm_steer s;
    memset(&s, 0, sizeof(s));
    s.version = SM_STEER_VERSION;
    s.work_id = (char *)o->work_id;
    s.title = (char *)title;
    s.artist = artist && artist[0] ? (char *)artist : NULL;
    s.album = album && album[0] ? (char *)album : NULL;
    s.media_type = mt && mt[0] ? (char *)mt : (char *)"application/octet-stream";
    s.license_url = (char *)ctx->license_url;
    for (size_t i = 0; i < ctx->n_media; i++) {
        size_t n = strlen(ctx->media_urls[i]) + strlen(o->work_id) + 10;
        urls[i] = malloc(n);
        if (urls[i] != NULL)
            snprintf(urls[i], n, "%s/works/%s", ctx->media_urls[i], o->work_id);
    }
    s.media_urls = urls;
    s.media_url_count = ctx->n_media;
    char preview[2200];
    if (ctx->n_media > 0 && urls[0] != NULL) {
        snprintf(preview, sizeof(preview), "%s/preview", urls[0]);
        s.preview_url = preview;
    }
    s.voucher = o->voucher;
    s.transaction_id = strchr(o->txn, '.') == NULL && o->txn[0] ? (char *)o->txn : NULL;
    char *text = NULL;
    size_t len = 0;
    if (sm_steer_serialize(&s, NULL, &text, &len, err) != SM_OK)
        text = NULL;
    for (size_t i = 0; i < ctx->n_media; i++)
        free(urls[i]);
    sm_db_rows_free(rows);
    return text;
}

/* Runs in autocommit: its UPDATE is the whole transition (it locks the
 * row and checks the state), so a repeat after an unknown outcome finds
 * the order completed and takes it as it is. */
static sm_status complete_tx(sm_db_conn *c, void *argp, sm_error *err)
{
    step_args *a = argp;
    char *steer = build_steer(a->ctx, c, a->ord, err);
    if (steer == NULL)
        return err->status != SM_OK ? err->status : SM_ERR_NOMEM;
    int64_t now = sm_rt_now(a->ctx);
    uint64_t done = 0;
    /* Locks the row and checks the state in one statement. */
    sm_status st = sm_db_exec(c,
                              "UPDATE orders SET state = 'completed', payment_token = ?, "
                              "steer = ?, completed_at = ?, updated_at = ? "
                              "WHERE order_id = ? AND state = 'debited'",
                              SM_DB_PARAMS(sm_db_text(a->payment_token), sm_db_text(steer),
                                           sm_db_int(now), sm_db_int(now),
                                           sm_db_text(a->ord->order_id)),
                              &done, err);
    if (st == SM_OK && done == 0) {
        free(steer);
        return reload(c, a, err); /* another request completed it */
    }
    if (st == SM_OK) {
        snprintf(a->ord->state, sizeof(a->ord->state), "completed");
        free(a->ord->steer);
        a->ord->steer = steer;
        a->ord->completed_at = now;
    } else {
        free(steer);
    }
    return st;
}

/* ---- key server calls --------------------------------------------------------------- */

/* Posts body to path; *status and *answer (owned) on an HTTP answer.
 * SM_ERR_UNAVAILABLE for no answer or a 5xx (outcome unknown). */
static sm_status ks_post(const sm_rt_ctx *ctx, const char *path, json_t *body, long *status,
                         json_t **answer, sm_error *err)
{
    *answer = NULL;
    if (ctx->ks == NULL)
        return sm_error_set(err, SM_ERR_UNAVAILABLE, "key server not configured");
    char *text = json_dumps(body, JSON_COMPACT);
    if (text == NULL)
        return sm_error_set(err, SM_ERR_NOMEM, "out of memory");
    sm_rt_ks_response r;
    sm_status st = sm_rt_ks_call(ctx->ks, "POST", path, text, strlen(text), NULL, KS_ANSWER_MAX,
                                 &r, err);
    free(text);
    if (st != SM_OK)
        return st == SM_ERR_TOO_LARGE ? SM_ERR_UNAVAILABLE : st;
    *status = r.status;
    if (r.status >= 500) {
        sm_rt_ks_response_free(&r);
        return sm_error_set(err, SM_ERR_UNAVAILABLE, "key server answered %ld on %s",
                            *status, path);
    }
    *answer = json_loadb(r.body, r.len, JSON_REJECT_DUPLICATES, NULL);
    sm_rt_ks_response_free(&r);
    return SM_OK;
}

static const char *ans_str(json_t *a, const char *name)
{
    json_t *v = json_object_get(a, name);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

sm_status sm_rt_reservation_answer_parse(json_t *ans, sm_rt_reservation_answer *out,
                                         sm_error *err)
{
    json_t *price = json_object_get(ans, "price");
    out->txn = ans_str(ans, "txn");
    out->voucher = ans_str(ans, "voucher");
    out->currency = ans_str(ans, "currency");
    out->price = json_is_integer(price) ? json_integer_value(price) : -1;
    if (out->txn == NULL || out->voucher == NULL || out->currency == NULL ||
        strlen(out->currency) != 3 || strlen(out->txn) > 64 || out->price < 0)
        return sm_error_set(err, SM_ERR_FORMAT, "the key server's reservation answer is malformed");
    /* Both go into the steering file once the payment is recorded: refuse
     * now what it could not hold, before any debit. */
    sm_error e = {0};
    if (sm_ks_validate_id(out->txn, "txn", &e) != SM_OK ||
        sm_steer_validate_voucher(out->voucher, "voucher", &e) != SM_OK)
        return sm_error_set(err, SM_ERR_FORMAT,
                            "the key server's reservation answer is malformed: %s", e.message);
    return SM_OK;
}

sm_status sm_rt_payment_answer_parse(json_t *ans, const char **payment_token, sm_error *err)
{
    *payment_token = ans_str(ans, "payment_token");
    if (*payment_token == NULL)
        return sm_error_set(err, SM_ERR_FORMAT, "the key server's payment answer is malformed");
    return SM_OK;
}

static sm_status step_reserve(const sm_rt_ctx *ctx, uint64_t account_id, rt_order *o,
                              sm_rt_result *out, sm_error *err)
{
    json_t *lic = sm_ks_terms_to_json(&o->terms);
    json_t *body = lic ? json_pack("{s:s,s:s,s:o,s:s}", "reservation_ref", o->order_id,
                                   "work_id", o->work_id, "license", lic, "jkt", o->jkt)
                       : NULL;
    if (body == NULL)
        return sm_error_set(err, SM_ERR_NOMEM, "out of memory");
    long status = 0;
    json_t *ans = NULL;
    sm_status st = ks_post(ctx, "/v1/reservations", body, &status, &ans, err);
    json_decref(body);
    if (st != SM_OK)
        return st;
    step_args a = {.ctx = ctx, .account_id = account_id, .ord = o, .from = "pending"};
    if (status == 200 || status == 201) {
        sm_rt_reservation_answer ra;
        sm_error e = {0};
        if (sm_rt_reservation_answer_parse(ans, &ra, &e) == SM_OK) {
            a.txn = ra.txn;
            a.voucher = ra.voucher;
            a.currency = ra.currency;
            a.wholesale = ra.price;
        } else {
            json_decref(ans);
            return sm_rt_refuse(out, 502, "keyserver-error", "Key server error",
                                "the key server's reservation answer is malformed");
        }
        st = rt_run(ctx, reserved_tx, &a, out, err);
        free(a.problem);
        a.problem = NULL;
    } else {
        const char *slug = ans_str(ans, "type");
        const char *detail = ans_str(ans, "detail");
        a.problem = problem_text(409, "offer-unavailable",
                                 "the key server refused the sale (%ld %s): %s", status,
                                 slug ? slug : "", detail ? detail : "no detail");
        st = a.problem ? rt_run(ctx, fail_tx, &a, out, err)
                       : sm_error_set(err, SM_ERR_NOMEM, "out of memory");
        free(a.problem);
    }
    json_decref(ans);
    return st;
}

/* PROTOCOL.md §1.3: a problem's type is this base and a slug. */
#define RT_KS_PROBLEM_BASE "https://secmedia.example/problems/"

/* The key server's answers to POST /v1/payments that say for certain the
 * payment was not and will not be recorded for this order (PROTOCOL.md
 * §2.5): only these refund the debit. */
static const struct {
    long status;
    const char *type;
} payment_refusals[] = {
    {404, RT_KS_PROBLEM_BASE "unknown-transaction"},
    {409, RT_KS_PROBLEM_BASE "already-paid"},
    {409, RT_KS_PROBLEM_BASE "transaction-revoked"},
    {409, RT_KS_PROBLEM_BASE "reservation-expired"},
    {422, RT_KS_PROBLEM_BASE "amount-mismatch"},
};

static int payment_refused_for_good(long status, json_t *ans)
{
    const char *type = ans_str(ans, "type");
    if (type == NULL)
        return 0;
    for (size_t i = 0; i < sizeof(payment_refusals) / sizeof(payment_refusals[0]); i++)
        if (status == payment_refusals[i].status && strcmp(type, payment_refusals[i].type) == 0)
            return 1;
    return 0;
}

static sm_status step_pay(const sm_rt_ctx *ctx, uint64_t account_id, rt_order *o,
                          sm_rt_result *out, sm_error *err)
{
    json_t *body = json_pack("{s:s,s:s,s:I,s:s}", "txn", o->txn, "payment_ref", o->order_id,
                             "amount", (json_int_t)o->wholesale, "currency", o->currency);
    if (body == NULL)
        return sm_error_set(err, SM_ERR_NOMEM, "out of memory");
    long status = 0;
    json_t *ans = NULL;
    sm_status st = ks_post(ctx, "/v1/payments", body, &status, &ans, err);
    json_decref(body);
    if (st != SM_OK)
        return st;
    step_args a = {.ctx = ctx, .account_id = account_id, .ord = o, .from = "debited"};
    if (status == 200 || status == 201) {
        sm_error e = {0};
        if (sm_rt_payment_answer_parse(ans, &a.payment_token, &e) != SM_OK) {
            json_decref(ans);
            /* Recorded, but the answer is unusable: leave it debited; the
             * idempotent repeat gets the answer again. */
            return sm_rt_refuse(out, 502, "keyserver-error", "Key server error",
                                "the key server's payment answer is malformed");
        }
        st = rt_run_autocommit(ctx, complete_tx, &a, out, err);
    } else if (!payment_refused_for_good(status, ans)) {
        /* Not one of the key server's definite refusals of this payment
         * (401, 403, 408, 429, another type, no problem body): the outcome
         * is not known to be "unpaid", so the order stays debited and is
         * retried (by a repeat or the background thread), never refunded. */
        const char *slug = ans_str(ans, "type");
        sm_rt_refuse(out, 502, "keyserver-error", "Key server error",
                     "the key server answered %ld (%s) to the payment; the order stays debited "
                     "and is retried: repeat the request with the same Idempotency-Key",
                     status, slug && strlen(slug) <= 200 ? slug : "no problem type");
        json_decref(ans);
        return SM_OK;
    } else {
        const char *slug = ans_str(ans, "type");
        const char *detail = ans_str(ans, "detail");
        a.problem = problem_text(409, "order-failed",
                                 "the key server refused to record the payment (%ld %s: %s); "
                                 "your %lld points were refunded",
                                 status, slug ? slug : "", detail ? detail : "no detail",
                                 (long long)o->price);
        st = a.problem ? rt_run(ctx, fail_tx, &a, out, err)
                       : sm_error_set(err, SM_ERR_NOMEM, "out of memory");
        free(a.problem);
    }
    json_decref(ans);
    return st;
}

/* Runs the state machine from o's state to an end or an error. */
static sm_status drive(const sm_rt_ctx *ctx, uint64_t account_id, rt_order *o,
                       sm_rt_result *out, sm_error *err)
{
    for (int i = 0; i < MAX_STEPS; i++) {
        sm_status st;
        if (strcmp(o->state, "pending") == 0)
            st = step_reserve(ctx, account_id, o, out, err);
        else if (strcmp(o->state, "debited") == 0)
            st = step_pay(ctx, account_id, o, out, err);
        else
            return SM_OK;
        if (st != SM_OK || out->status >= 400)
            return st;
    }
    return sm_error_set(err, SM_ERR_STATE, "order %s did not settle", o->order_id);
}

static const sm_json_field order_fields[] = {
    {"offer_id", SM_JSON_INTEGER, 1},
    {"device_jkt", SM_JSON_STRING, 0},
    {NULL, 0, 0},
};

sm_status sm_rt_order_place(const sm_rt_ctx *ctx, uint64_t account_id, const char *idem_key,
                            json_t *body, sm_rt_result *out, sm_error *err)
{
    sm_rt_result_init(out);
    sm_error e = {0};
    uint64_t offer_id = 0;
    const char *jkt = NULL;
    if (sm_rt_idempotency_key_check(idem_key, &e) != SM_OK ||
        sm_json_check_fields(body, order_fields, "order", &e) != SM_OK ||
        sm_json_get_uint64(body, "offer_id", (uint64_t)1 << 50, 1, &offer_id, "order", &e) !=
            SM_OK ||
        sm_json_get_string(body, "device_jkt", 43, 0, &jkt, "order", &e) != SM_OK)
        return rt_bad_request(out, &e);
    if (jkt != NULL && !sm_rt_jkt_syntax_ok(jkt))
        return sm_rt_refuse(out, 400, "invalid-request", "Invalid request",
                            "field \"device_jkt\": a device thumbprint is 43 base64url characters");
    char canon[96];
    snprintf(canon, sizeof(canon), "%llu\n%s", (unsigned long long)offer_id, jkt ? jkt : "");
    rt_order ord;
    memset(&ord, 0, sizeof(ord));
    create_args a = {ctx, account_id, idem_key, {0}, offer_id, jkt, &ord, 0, 0, out};
    sm_rt_sha256(canon, strlen(canon), a.req_hash);
    sm_status st = rt_run_autocommit(ctx, create_fast, &a, out, err);
    if (st == SM_OK && !a.inserted)
        st = rt_run(ctx, create_tx, &a, out, err);
    if (st == SM_OK && out->status < 400) {
        int was_completed = a.found && strcmp(ord.state, "completed") == 0;
        st = drive(ctx, account_id, &ord, out, err);
        if (st == SM_OK && out->status < 400) {
            if (strcmp(ord.state, "completed") == 0) {
                out->status = was_completed ? 200 : 201;
                out->body = order_json(&ord, 1);
                if (out->body == NULL)
                    st = sm_error_set(err, SM_ERR_NOMEM, "out of memory");
            } else {
                st = answer_problem(&ord, out);
            }
        }
    }
    order_clear(&ord);
    return st;
}

sm_status sm_rt_order_list(const sm_rt_ctx *ctx, uint64_t account_id, unsigned limit,
                           unsigned offset, sm_rt_result *out, sm_error *err)
{
    sm_rt_result_init(out);
    sm_db_conn *c = NULL;
    sm_status st = sm_db_acquire(ctx->db, &c, err);
    if (st != SM_OK)
        return st;
    sm_db_rows *rows = NULL;
    st = sm_db_query(c,
                     "SELECT " ORDER_COLS " FROM orders o WHERE o.account_id = ? "
                     "ORDER BY o.created_at DESC, o.order_id DESC LIMIT ? OFFSET ?",
                     SM_DB_PARAMS(sm_db_uint(account_id), sm_db_uint(limit), sm_db_uint(offset)),
                     &rows, err);
    json_t *list = json_array();
    int has = 0;
    rt_order o;
    memset(&o, 0, sizeof(o));
    while (st == SM_OK && list && (st = sm_db_rows_next(rows, &has, err)) == SM_OK && has) {
        if ((st = order_from_row(rows, &o, err)) != SM_OK)
            break;
        json_t *j = order_json(&o, 0);
        if (j == NULL || json_array_append_new(list, j) != 0)
            st = sm_error_set(err, SM_ERR_NOMEM, "out of memory");
    }
    order_clear(&o);
    sm_db_rows_free(rows);
    sm_db_release(c);
    if (st == SM_OK && list) {
        out->status = 200;
        out->body = json_pack("{s:o,s:I,s:I}", "orders", list, "limit", (json_int_t)limit,
                              "offset", (json_int_t)offset);
        list = NULL;
    }
    json_decref(list);
    return st;
}

static sm_status own_order(const sm_rt_ctx *ctx, uint64_t account_id, const char *order_id,
                           rt_order *o, sm_rt_result *out, sm_error *err)
{
    if (!sm_rt_order_id_syntax_ok(order_id))
        return sm_rt_refuse(out, 400, "invalid-request", "Invalid request",
                            "the path names no order id (26 letters and digits)");
    sm_db_conn *c = NULL;
    sm_status st = sm_db_acquire(ctx->db, &c, err);
    if (st != SM_OK)
        return st;
    sm_db_rows *rows = NULL;
    int has = 0;
    st = sm_db_query(c, "SELECT " ORDER_COLS " FROM orders o WHERE o.order_id = ? AND "
                        "o.account_id = ?",
                     SM_DB_PARAMS(sm_db_text(order_id), sm_db_uint(account_id)), &rows, err);
    if (st == SM_OK)
        st = sm_db_rows_next(rows, &has, err);
    if (st == SM_OK && has)
        st = order_from_row(rows, o, err);
    sm_db_rows_free(rows);
    sm_db_release(c);
    if (st == SM_OK && !has)
        sm_rt_refuse(out, 404, "not-found", "Not found", "you have no order %s", order_id);
    return st;
}

sm_status sm_rt_order_get(const sm_rt_ctx *ctx, uint64_t account_id, const char *order_id,
                          sm_rt_result *out, sm_error *err)
{
    sm_rt_result_init(out);
    rt_order o;
    memset(&o, 0, sizeof(o));
    sm_status st = own_order(ctx, account_id, order_id, &o, out, err);
    if (st == SM_OK && out->status < 400) {
        out->status = 200;
        out->body = order_json(&o, 0);
        if (out->body == NULL)
            st = sm_error_set(err, SM_ERR_NOMEM, "out of memory");
    }
    order_clear(&o);
    return st;
}

sm_status sm_rt_order_steer(const sm_rt_ctx *ctx, uint64_t account_id, const char *order_id,
                            sm_rt_result *out, sm_error *err)
{
    sm_rt_result_init(out);
    rt_order o;
    memset(&o, 0, sizeof(o));
    sm_status st = own_order(ctx, account_id, order_id, &o, out, err);
    if (st == SM_OK && out->status < 400) {
        if (strcmp(o.state, "completed") != 0 || o.steer == NULL) {
            sm_rt_refuse(out, 409, "order-not-completed", "Order not completed",
                         "order %s is %s; only a completed order has a steering file",
                         o.order_id, o.state);
        } else {
            out->status = 200;
            out->raw = o.steer;
            out->raw_len = strlen(o.steer);
            out->raw_type = "application/vnd.secmedia.steer";
            o.steer = NULL;
        }
    }
    order_clear(&o);
    return st;
}

sm_status sm_rt_orders_resume(const sm_rt_ctx *ctx, int64_t min_age, unsigned max,
                              unsigned *done, sm_error *err)
{
    *done = 0;
    if (ctx->db == NULL || ctx->ks == NULL)
        return SM_OK;
    sm_db_conn *c = NULL;
    sm_status st = sm_db_acquire(ctx->db, &c, err);
    if (st != SM_OK)
        return st;
    sm_db_rows *rows = NULL;
    st = sm_db_query(c,
                     "SELECT order_id, account_id FROM orders WHERE state = 'debited' AND "
                     "updated_at <= ? ORDER BY updated_at LIMIT ?",
                     SM_DB_PARAMS(sm_db_int(sm_rt_now(ctx) - min_age), sm_db_uint(max)), &rows,
                     err);
    size_t n = st == SM_OK ? sm_db_rows_count(rows) : 0;
    char (*ids)[SM_RT_ORDER_ID_SIZE] = n ? calloc(n, SM_RT_ORDER_ID_SIZE) : NULL;
    uint64_t *accounts = n ? calloc(n, sizeof(uint64_t)) : NULL;
    int has = 0;
    for (size_t i = 0; st == SM_OK && ids && accounts && i < n; i++) {
        if ((st = sm_db_rows_next(rows, &has, err)) != SM_OK || !has)
            break;
        if ((st = rt_col_copy(rows, 0, ids[i], SM_RT_ORDER_ID_SIZE, err)) == SM_OK)
            st = sm_db_col_uint(rows, 1, &accounts[i], err);
    }
    sm_db_rows_free(rows);
    sm_db_release(c);
    for (size_t i = 0; st == SM_OK && ids && accounts && i < n; i++) {
        rt_order o;
        memset(&o, 0, sizeof(o));
        int found = 0;
        if ((st = sm_db_acquire(ctx->db, &c, err)) != SM_OK)
            break;
        st = load_order(c, ids[i], 0, &o, &found, err);
        sm_db_release(c);
        if (st == SM_OK && found) {
            sm_rt_result res;
            sm_rt_result_init(&res);
            st = drive(ctx, accounts[i], &o, &res, err);
            if (st == SM_OK && strcmp(o.state, "debited") != 0)
                (*done)++;
            sm_rt_result_clear(&res);
        }
        order_clear(&o);
    }
    free(ids);
    free(accounts);
    return st;
}
