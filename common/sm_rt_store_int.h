/* Internals shared by the sm_rt_store*.c files. */
#ifndef SM_RT_STORE_INT_H
#define SM_RT_STORE_INT_H

#include "sm_rt_store.h"

/* A transaction body returns this after filling a refusal: the
 * transaction is rolled back and the refusal answered. */
#define RT_REFUSED SM_ERR_STATE

sm_status rt_refuse_tx(sm_rt_result *out, int status, const char *slug, const char *title,
                       const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* sm_db_transaction with refusals mapped to SM_OK. */
sm_status rt_run(const sm_rt_ctx *ctx, sm_db_tx_fn fn, void *arg, sm_rt_result *out,
                 sm_error *err);
/* Like rt_run, but fn runs in autocommit: for bodies whose every
 * statement stands alone (one statement is the whole transaction), which
 * saves START TRANSACTION and COMMIT. fn must be safe to run again after
 * an unknown outcome: a conflict (deadlock) runs it again, and so does,
 * once, a connection lost under it. */
sm_status rt_run_autocommit(const sm_rt_ctx *ctx, sm_db_tx_fn fn, void *arg, sm_rt_result *out,
                            sm_error *err);
/* 400 invalid-request from a validation error. */
sm_status rt_bad_request(sm_rt_result *out, const sm_error *e);
/* Copies column col (NUL-terminated, may be truncated never: error). */
sm_status rt_col_copy(sm_db_rows *rows, unsigned col, char *dst, size_t size, sm_error *err);
/* SQL NULL -> JSON null is not used: absent members instead. */
int rt_set_text(json_t *obj, const char *name, const char *value);

/* Locks the account row, applies amount (signed) to its balance and
 * appends a journal entry (kind: redeem, purchase, order, refund).
 * SM_ERR_STATE when the balance would become negative. */
sm_status rt_wallet_move(sm_db_conn *c, uint64_t account_id, const char *kind, int64_t amount,
                         const char *order_id, const char *reference, int64_t now,
                         uint64_t *entry_id, int64_t *after, sm_error *err);

/* Appends the journal entry of a movement already applied to the account
 * row, which the caller's transaction holds locked: balance_after is read
 * from that row. */
sm_status rt_wallet_journal_add(sm_db_conn *c, uint64_t account_id, const char *kind,
                                int64_t amount, const char *order_id, const char *reference,
                                int64_t now, sm_error *err);

/* An offer as the API shows it. */
json_t *rt_offer_json(uint64_t id, const char *work_id, const char *type, int64_t duration,
                      int64_t price, int64_t from, int64_t until);
/* A positive decimal id of at most 15 digits. */
int rt_parse_id(const char *s, uint64_t *out);

#endif
