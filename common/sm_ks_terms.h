/* License terms and the identifiers the key server hands out or accepts.
 *
 * Terms are what a buyer gets: a purchase (no end) or a rental of a fixed
 * duration that starts with the first license issued for the transaction.
 * JSON form, used in contracts, reservations and vouchers alike:
 *
 *   {"type":"purchase"}
 *   {"type":"rental","duration":172800}     (seconds) */
#ifndef SM_KS_TERMS_H
#define SM_KS_TERMS_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "sm_error.h"

/* Owner, retailer, media store and transaction ids: 1..64 characters of
 * [A-Za-z0-9._-], first a letter or digit (the work id rule). */
#define SM_KS_ID_MAX 64u
#define SM_KS_ID_SIZE (SM_KS_ID_MAX + 1u)

/* Rental durations, seconds: one minute to 366 days. */
#define SM_KS_RENTAL_MIN 60
#define SM_KS_RENTAL_MAX (366 * 86400)

typedef enum sm_ks_license_type {
    SM_KS_PURCHASE = 1,
    SM_KS_RENTAL = 2
} sm_ks_license_type;

typedef struct sm_ks_terms {
    sm_ks_license_type type;
    int64_t duration; /* seconds; rentals only, 0 for a purchase */
} sm_ks_terms;

/* Checks an id; `what` names it in the message ("retailer id"). */
sm_status sm_ks_validate_id(const char *id, const char *what, sm_error *err);

/* A new transaction id: "txn-" and 22 base64url characters (128 random
 * bits), NUL-terminated. */
sm_status sm_ks_new_txn_id(char out[SM_KS_ID_SIZE], sm_error *err);

/* Strict parse of the JSON form above (no other members). */
sm_status sm_ks_terms_from_json(json_t *obj, const char *what, sm_ks_terms *out, sm_error *err);
/* New JSON object for the terms, or NULL when out of memory. */
json_t *sm_ks_terms_to_json(const sm_ks_terms *terms);

int sm_ks_terms_equal(const sm_ks_terms *a, const sm_ks_terms *b);

/* "purchase" / "rental"; NULL for an invalid type. */
const char *sm_ks_license_type_name(sm_ks_license_type type);
/* 0 when the name is not a license type. */
sm_ks_license_type sm_ks_license_type_from_name(const char *name);

#endif
