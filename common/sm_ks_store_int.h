/* Internals shared by the sm_ks_store_*.c files. Not part of the API. */
#ifndef SM_KS_STORE_INT_H
#define SM_KS_STORE_INT_H

#include <stddef.h>
#include <stdint.h>

#include "sm_json.h"
#include "sm_ks_store.h"
#include "sm_ks_terms.h"

/* A transaction body that refused the request returns this status so the
 * transaction rolls back; ks_run turns it into SM_OK for the caller. */
#define KS_REFUSED SM_ERR_STATE

/* Runs fn in a transaction (retried on deadlock). A refusal left in out is
 * reported as SM_OK; so is success. */
sm_status ks_run(const sm_ks_ctx *ctx, sm_db_tx_fn fn, void *arg, sm_ks_result *out,
                 sm_error *err);

/* A transaction body that records a refusal and rolls back. */
sm_status ks_refuse_tx(sm_ks_result *out, int status, const char *slug, const char *title,
                       const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* Checks body against fields; on failure fills a 400 refusal and returns 0. */
int ks_check_body(json_t *body, const sm_json_field *fields, const char *what,
                  sm_ks_result *out);
/* A required string member that must be an id; 0 and a 400 refusal when not. */
int ks_body_id(json_t *body, const char *name, const char *what, const char **value,
               sm_ks_result *out);
/* A string member as text (UTF-8, no controls) of at most max bytes;
 * optional when !required (then *value may stay NULL). */
int ks_body_text(json_t *body, const char *name, size_t max, int required, const char *what,
                 const char **value, sm_ks_result *out);

/* The id of the owner / retailer whose certificate DN is dn, copied into
 * id (SM_KS_ID_SIZE). SM_ERR_NOT_FOUND when none is registered. */
sm_status ks_owner_by_dn(sm_db_conn *c, const char *dn, char id[SM_KS_ID_SIZE], sm_error *err);
sm_status ks_retailer_by_dn(sm_db_conn *c, const char *dn, char id[SM_KS_ID_SIZE],
                            char **proxy_url_out, sm_error *err);

/* Refusal for a caller whose certificate is not registered as role. */
sm_status ks_refuse_unregistered(sm_ks_result *out, const char *role);

/* Copies a column into a fixed buffer; SM_ERR_DB when NULL or too long. */
sm_status ks_col_copy(const sm_db_rows *rows, unsigned col, char *dst, size_t size,
                      sm_error *err);

/* Terms <-> (license_type, duration) columns. */
const char *ks_terms_type_column(const sm_ks_terms *t);
sm_status ks_terms_from_columns(const char *type, int64_t duration, sm_ks_terms *out,
                                sm_error *err);

#endif
