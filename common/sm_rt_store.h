/* The retailer's operations over its MariaDB database and the key server:
 * everything mod_retail does for a request once it knows who is calling,
 * without any httpd dependency. Same outcome convention as the key
 * server's store (sm_ks_store.h):
 * - SM_OK and out->status 200/201/204 with out->body;
 * - SM_OK and a refusal (out->status >= 400, slug, title, detail);
 * - another status: not carried out (SM_ERR_UNAVAILABLE: database or key
 *   server down, answer 503; anything else 500). Nothing half-written.
 * Refusal slugs are the problem types of docs/PROTOCOL.md §4. */
#ifndef SM_RT_STORE_H
#define SM_RT_STORE_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "sm_db.h"
#include "sm_error.h"
#include "sm_rt_ks.h"
#include "sm_rt_payment.h"

#define SM_RT_MAX_MEDIA_STORES 8u
#define SM_RT_DEFAULT_TOKEN_LIFETIME (30 * 86400)
#define SM_RT_DEFAULT_LOGIN_WINDOW 900
#define SM_RT_DEFAULT_LOGIN_MAX_ACCOUNT 10u
#define SM_RT_DEFAULT_LOGIN_MAX_ADDRESS 100u

typedef struct sm_rt_ctx {
    sm_db_pool *db;
    sm_rt_ks *ks;                 /* NULL: no key server configured (503 for sales) */
    const char *currency;         /* RetailCurrency: a point is one minor unit of it */
    const char *license_url;      /* put in every .steer */
    const char *media_urls[SM_RT_MAX_MEDIA_STORES]; /* media store base URLs */
    size_t n_media;
    int64_t token_lifetime;
    int64_t login_window;
    unsigned login_max_account;
    unsigned login_max_address;
    unsigned scrypt_ln;
    const sm_rt_payment_authority *payments; /* NULL: top-ups answer 501 */
    int64_t now;                  /* 0 = the clock; tests set it */
} sm_rt_ctx;

#define SM_RT_DETAIL_MAX 400u

typedef struct sm_rt_result {
    int status;
    json_t *body;
    const char *slug;
    const char *title;
    char detail[SM_RT_DETAIL_MAX];
    int retry_after;    /* seconds, for 429 / 503 refusals; 0 = none */
    char *raw;          /* a non-JSON answer (malloc'ed), e.g. a .steer */
    size_t raw_len;
    const char *raw_type;
} sm_rt_result;

void sm_rt_result_init(sm_rt_result *out);
void sm_rt_result_clear(sm_rt_result *out);
sm_status sm_rt_refuse(sm_rt_result *out, int status, const char *slug, const char *title,
                       const char *fmt, ...) __attribute__((format(printf, 5, 6)));
int64_t sm_rt_now(const sm_rt_ctx *ctx);

/* ---- accounts and tokens ---------------------------------------------------- */
sm_status sm_rt_signup(const sm_rt_ctx *ctx, json_t *body, sm_rt_result *out, sm_error *err);
/* client_addr: the peer's address (rate limit per address). */
sm_status sm_rt_login(const sm_rt_ctx *ctx, json_t *body, const char *client_addr,
                      sm_rt_result *out, sm_error *err);
/* The account a bearer token stands for: *account_id set, or a 401
 * refusal (token-required / token-invalid). */
sm_status sm_rt_authenticate(const sm_rt_ctx *ctx, const char *token, uint64_t *account_id,
                             sm_rt_result *out, sm_error *err);
sm_status sm_rt_logout(const sm_rt_ctx *ctx, const char *token, sm_rt_result *out,
                       sm_error *err);
sm_status sm_rt_account_get(const sm_rt_ctx *ctx, uint64_t account_id, sm_rt_result *out,
                            sm_error *err);

/* Deletes expired or revoked API tokens and login-failure counts whose
 * window has passed (at most 10000 rows each per call); *purged counts
 * the rows. */
sm_status sm_rt_purge_expired(const sm_rt_ctx *ctx, uint64_t *purged, sm_error *err);

/* ---- devices ------------------------------------------------------------------ */
sm_status sm_rt_device_register(const sm_rt_ctx *ctx, uint64_t account_id, json_t *body,
                                sm_rt_result *out, sm_error *err);
sm_status sm_rt_device_list(const sm_rt_ctx *ctx, uint64_t account_id, sm_rt_result *out,
                            sm_error *err);
sm_status sm_rt_device_remove(const sm_rt_ctx *ctx, uint64_t account_id, const char *jkt,
                              sm_rt_result *out, sm_error *err);

/* ---- wallet ------------------------------------------------------------------- */
sm_status sm_rt_wallet_get(const sm_rt_ctx *ctx, uint64_t account_id, unsigned limit,
                           unsigned offset, sm_rt_result *out, sm_error *err);
sm_status sm_rt_wallet_redeem(const sm_rt_ctx *ctx, uint64_t account_id, json_t *body,
                              sm_rt_result *out, sm_error *err);
sm_status sm_rt_wallet_topup(const sm_rt_ctx *ctx, uint64_t account_id, const char *idem_key,
                             json_t *body, sm_rt_result *out, sm_error *err);
/* Admin: issue count codes worth points each. */
sm_status sm_rt_codes_issue(const sm_rt_ctx *ctx, json_t *body, sm_rt_result *out,
                            sm_error *err);

/* ---- catalog and offers ----------------------------------------------------- */
/* Pulls GET /v1/inventory and replaces the catalog's wholesale terms. */
sm_status sm_rt_catalog_sync(const sm_rt_ctx *ctx, sm_rt_result *out, sm_error *err);
/* A scheduled sync: runs only when the shared lease (one row in the
 * database) is free and the last sync is at least interval seconds old,
 * so one child of one node syncs at a time. *ran = 1 when it synced. */
sm_status sm_rt_catalog_sync_if_due(const sm_rt_ctx *ctx, int64_t interval, int *ran,
                                    sm_error *err);
sm_status sm_rt_offer_create(const sm_rt_ctx *ctx, json_t *body, sm_rt_result *out,
                             sm_error *err);
sm_status sm_rt_offer_list(const sm_rt_ctx *ctx, sm_rt_result *out, sm_error *err);
sm_status sm_rt_offer_end(const sm_rt_ctx *ctx, const char *offer_id, sm_rt_result *out,
                          sm_error *err);
/* q may be NULL or empty (everything). */
sm_status sm_rt_catalog_list(const sm_rt_ctx *ctx, const char *q, unsigned limit,
                             unsigned offset, sm_rt_result *out, sm_error *err);
sm_status sm_rt_catalog_get(const sm_rt_ctx *ctx, const char *work_id, sm_rt_result *out,
                            sm_error *err);

/* ---- orders --------------------------------------------------------------------- */
sm_status sm_rt_order_place(const sm_rt_ctx *ctx, uint64_t account_id, const char *idem_key,
                            json_t *body, sm_rt_result *out, sm_error *err);
sm_status sm_rt_order_list(const sm_rt_ctx *ctx, uint64_t account_id, unsigned limit,
                           unsigned offset, sm_rt_result *out, sm_error *err);
sm_status sm_rt_order_get(const sm_rt_ctx *ctx, uint64_t account_id, const char *order_id,
                          sm_rt_result *out, sm_error *err);
/* The .steer as raw bytes (out->raw). */
sm_status sm_rt_order_steer(const sm_rt_ctx *ctx, uint64_t account_id, const char *order_id,
                            sm_rt_result *out, sm_error *err);
/* Finishes orders left in state debited (payment outcome unknown) for at
 * least min_age seconds: records the payment again (idempotent) or
 * refunds. *done counts the orders finished. */
sm_status sm_rt_orders_resume(const sm_rt_ctx *ctx, int64_t min_age, unsigned max,
                              unsigned *done, sm_error *err);

/* ---- key server answers (the fuzzer and unit tests call these) ------------------ */
/* GET /v1/inventory's body: *doc (owned) and *works, its "works" array with
 * every entry checked; SM_ERR_FORMAT (or the JSON error) otherwise. */
sm_status sm_rt_inventory_parse(const char *body, size_t len, json_t **doc, json_t **works,
                                sm_error *err);

/* A 200/201 answer to POST /v1/reservations (strings point into ans). */
typedef struct sm_rt_reservation_answer {
    const char *txn, *voucher, *currency;
    int64_t price;
} sm_rt_reservation_answer;
sm_status sm_rt_reservation_answer_parse(json_t *ans, sm_rt_reservation_answer *out,
                                         sm_error *err);
/* A 200/201 answer to POST /v1/payments: its payment_token (points into ans). */
sm_status sm_rt_payment_answer_parse(json_t *ans, const char **payment_token, sm_error *err);

#endif
