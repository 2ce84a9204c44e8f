/* The key server's operations over its MariaDB database: everything
 * mod_keyserver does for a request once it knows who is calling, without
 * any httpd dependency. Each operation takes the parsed JSON body, checks
 * it strictly, runs one database transaction (retried as a whole on
 * deadlock) that also appends to the ledger, and returns the JSON answer.
 *
 * Outcomes:
 * - SM_OK and out->status 200/201/204 with out->body (may be NULL for 204);
 * - SM_OK and a refusal (out->status >= 400, out->slug, out->detail): the
 *   request was understood and refused (not paid, wrong device, ...);
 * - another status: the request could not be carried out (database
 *   unavailable: SM_ERR_UNAVAILABLE, answer 503; a bug: 500). Nothing was
 *   half-written: the transaction was rolled back.
 *
 * Refusal slugs are the problem types of docs/PROTOCOL.md §2. */
#ifndef SM_KS_STORE_H
#define SM_KS_STORE_H

#include <stddef.h>
#include <stdatomic.h>
#include <stdint.h>

#include <jansson.h>

#include "sm_db.h"
#include "sm_error.h"
#include "sm_ks_kek.h"
#include "sm_ks_keys.h"
#include "sm_ks_ledger.h"

/* Defaults of the tunables (seconds unless noted). */
#define SM_KS_DEFAULT_VOUCHER_LIFETIME (3650 * 86400)
#define SM_KS_DEFAULT_PAYMENT_ACK_LIFETIME (3650 * 86400)
#define SM_KS_DEFAULT_DELIVERY_LIFETIME 3600
#define SM_KS_DEFAULT_RESERVATION_LIFETIME 3600
#define SM_KS_DEFAULT_CHECKPOINT_EVERY 100u
#define SM_KS_MAX_MEDIA_STORES 16u

typedef struct sm_ks_ctx {
    sm_db_pool *db;
    const sm_ks_keys *keys;
    const sm_ks_kek *kek;
    const char *issuer;      /* iss of every token; base URL of the key server */
    const char *license_url; /* htu devices sign for: issuer + "/v1/license" */
    const char *media_stores[SM_KS_MAX_MEDIA_STORES];
    size_t n_media_stores;
    int64_t voucher_lifetime;
    int64_t payment_ack_lifetime;
    int64_t delivery_lifetime;
    int64_t reservation_lifetime; /* time to record the payment after reserving */
    int64_t proof_max_age;
    uint32_t activation_limit;
    uint64_t checkpoint_every; /* a checkpoint every N ledger entries; 0 = only on demand */
    int64_t now;               /* 0 = the clock; tests set it */
    /* Verified vouchers of this process (NULL: verify every time). */
    struct sm_ks_voucher_cache *voucher_cache;
    /* Told of each queued ledger row that could not be read and was
     * chained as an unreadable-entry (FORMATS.md §7.5); NULL: nobody. Runs
     * inside the sealing transaction: a retried transaction tells again. */
    void (*unreadable_entry)(void *arg, const char *queue, uint64_t id, const char *problem);
    void *unreadable_entry_arg;
} sm_ks_ctx;

/* Who is calling, as established by the module from the client
 * certificate (NULL dn: no certificate, e.g. a device). */
typedef struct sm_ks_caller {
    const char *dn;
} sm_ks_caller;

#define SM_KS_DETAIL_MAX 400u

typedef struct sm_ks_result {
    int status;        /* HTTP status */
    json_t *body;      /* answer (owned; json_decref), NULL for 204 or a refusal */
    const char *slug;  /* refusal: problem type slug */
    const char *title; /* refusal: problem title */
    char detail[SM_KS_DETAIL_MAX];
    json_t *extensions; /* refusal: extra problem members (owned), may be NULL */
} sm_ks_result;

void sm_ks_result_init(sm_ks_result *out);
void sm_ks_result_clear(sm_ks_result *out);

/* Fills a refusal; returns SM_OK so operations can `return refuse(...)`. */
sm_status sm_ks_refuse(sm_ks_result *out, int status, const char *slug, const char *title,
                       const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* The current time of ctx (its `now` when set). */
int64_t sm_ks_now(const sm_ks_ctx *ctx);

/* SHA-256 of a subject DN (the unique key of owners and retailers). */
void sm_ks_dn_hash(const char *dn, uint8_t out[32]);

/* ---- parties (admin) ---------------------------------------------------- */

/* POST /v1/owners {"owner_id","name","subject_dn"} -> 201. */
sm_status sm_ks_register_owner(const sm_ks_ctx *ctx, const sm_ks_caller *caller, json_t *body,
                               sm_ks_result *out, sm_error *err);
/* POST /v1/retailers {"retailer_id","name","subject_dn"[,"license_proxy_url"]} -> 201. */
sm_status sm_ks_register_retailer(const sm_ks_ctx *ctx, const sm_ks_caller *caller,
                                  json_t *body, sm_ks_result *out, sm_error *err);

/* ---- works and contracts (owner) ----------------------------------------- */

/* POST /v1/works: metadata + media key JWE to the key server -> 201. */
sm_status sm_ks_register_work(const sm_ks_ctx *ctx, const sm_ks_caller *caller, json_t *body,
                              sm_ks_result *out, sm_error *err);
/* GET /v1/works/{work_id}: the owner's view of its work (no key). */
sm_status sm_ks_get_work(const sm_ks_ctx *ctx, const sm_ks_caller *caller, const char *work_id,
                         sm_ks_result *out, sm_error *err);
/* POST /v1/contracts -> 201 {"contract_id"}. */
sm_status sm_ks_create_contract(const sm_ks_ctx *ctx, const sm_ks_caller *caller, json_t *body,
                                sm_ks_result *out, sm_error *err);

/* ---- sales (retailer) ------------------------------------------------------ */

/* GET /v1/inventory: the works the calling retailer may sell now. */
sm_status sm_ks_inventory(const sm_ks_ctx *ctx, const sm_ks_caller *caller, sm_ks_result *out,
                          sm_error *err);
/* POST /v1/reservations -> 201 {"txn","voucher",...} (200 on a repeat). */
sm_status sm_ks_reserve(const sm_ks_ctx *ctx, const sm_ks_caller *caller, json_t *body,
                        sm_ks_result *out, sm_error *err);
/* POST /v1/payments -> 201 {"txn","payment_token","paid_at"} (200 on a repeat). */
sm_status sm_ks_record_payment(const sm_ks_ctx *ctx, const sm_ks_caller *caller, json_t *body,
                               sm_ks_result *out, sm_error *err);

/* ---- license (device, or a retailer's proxy) ---------------------------- */

/* POST /v1/license {"voucher"[, "delivery_only": true]} with the DPoP
 * proof from the request header (NULL when absent). caller->dn set when a
 * retailer proxies. delivery_only renews the delivery token of a license
 * issued before: every check but the activation limit, nothing counted,
 * no key in the answer. */
sm_status sm_ks_issue_license(const sm_ks_ctx *ctx, const sm_ks_caller *caller, json_t *body,
                              const char *dpop_proof, sm_ks_result *out, sm_error *err);

/* ---- media store, revocation ---------------------------------------------- */

/* POST /v1/delivery-complete {"txn","work_id","delivered_at"} -> 204. */
sm_status sm_ks_delivery_complete(const sm_ks_ctx *ctx, const sm_ks_caller *caller,
                                  json_t *body, sm_ks_result *out, sm_error *err);
/* POST /v1/works/{work_id}/withdrawal {"reason"} -> 201 {"work_id",
 * "withdrawn_at","already_withdrawn":false}, or 200 with true and the
 * earlier time. The caller's own work, or any when is_admin. */
sm_status sm_ks_withdraw_work(const sm_ks_ctx *ctx, const sm_ks_caller *caller, int is_admin,
                              const char *work_id, json_t *body, sm_ks_result *out,
                              sm_error *err);
/* POST /v1/contracts/{contract_id}/revocation {"reason"} -> 201
 * {"contract_id","retailer_id","revoked_at","already_revoked":false}, or 200
 * with true. The caller's own contract, or any when is_admin. */
sm_status sm_ks_revoke_contract(const sm_ks_ctx *ctx, const sm_ks_caller *caller, int is_admin,
                                const char *contract_id, json_t *body, sm_ks_result *out,
                                sm_error *err);
/* POST /v1/revocations {"kind","subject","reason"} -> 201 (200 if already).
 * is_admin: any subject; otherwise the caller must be the retailer of the
 * transaction (a refund). */
sm_status sm_ks_revoke(const sm_ks_ctx *ctx, const sm_ks_caller *caller, int is_admin,
                       json_t *body, sm_ks_result *out, sm_error *err);

/* ---- ledger --------------------------------------------------------------- */

/* Appends an entry inside the caller's transaction (locks the head row),
 * after chaining the queued entries this transaction can see. */
sm_status sm_ks_ledger_append(sm_db_conn *conn, const sm_ks_ctx *ctx, const char *type,
                              const char *txn, json_t *data, uint64_t *seq_out, sm_error *err);

/* Queues an entry inside the caller's transaction (no head lock): a
 * sealer chains it after everything queued before it (FORMATS.md §7.5).
 * For frequent events (sales). The entry is checked first (FORMATS.md §7:
 * type, data; txn an id): SM_ERR_ARG, nothing written, when it breaks a
 * rule, so the queue only ever holds entries a sealer can chain. */
sm_status sm_ks_ledger_enqueue(sm_db_conn *conn, const sm_ks_ctx *ctx, const char *type,
                               const char *txn, json_t *data, sm_error *err);

/* Chains every queued entry (license rows and sale events not yet
 * chained; one batch per transaction, docs/FORMATS.md §7.5); *sealed (may
 * be NULL) = how many. Called by each httpd child's sealer every 100 ms;
 * checkpoints and exports seal first by themselves. A non-NULL stop is
 * read between batches: once it is set, a backlog is left to the next
 * sealer instead of holding up the caller (a child shutting down). */
sm_status sm_ks_ledger_seal(const sm_ks_ctx *ctx, const atomic_int *stop, uint64_t *sealed,
                            sm_error *err);

/* POST /v1/ledger/checkpoints: a checkpoint of the current head -> 201. */
sm_status sm_ks_checkpoint_now(const sm_ks_ctx *ctx, sm_ks_result *out, sm_error *err);
/* GET /v1/ledger/checkpoints/latest -> 200 (404 when none yet). */
sm_status sm_ks_latest_checkpoint(const sm_ks_ctx *ctx, sm_ks_result *out, sm_error *err);

/* GET /v1/ledger/export: writes the export (docs/FORMATS.md §7.3) line by
 * line through write (each call one line with its LF); first makes sure
 * the head is covered by a checkpoint. A consistent snapshot. write
 * returns 0 to go on, non-zero to stop (client gone). */
typedef int (*sm_ks_write_fn)(void *arg, const char *data, size_t len);
sm_status sm_ks_ledger_export(const sm_ks_ctx *ctx, sm_ks_write_fn write, void *arg,
                              sm_error *err);

/* Purges device-proof jtis older than the proof window (housekeeping). */
sm_status sm_ks_purge_proofs(const sm_ks_ctx *ctx, uint64_t *purged, sm_error *err);

#endif
