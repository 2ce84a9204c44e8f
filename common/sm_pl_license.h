/* The player's license client (DESIGN flow 6, PROTOCOL.md §2.6): build the
 * request (voucher + DPoP proof), send it, and turn the answer into either a
 * license or a refusal in plain words (docs/PLAYER.md §1.4-1.5). */
#ifndef SM_PL_LICENSE_H
#define SM_PL_LICENSE_H

#include <stddef.h>
#include <stdint.h>

#include "sm_error.h"
#include "sm_jose.h"
#include "sm_pl_http.h"
#include "sm_steer.h"

#define SM_PL_PROBLEM_BASE "https://secmedia.example/problems/"
/* Largest license answer read (the key server's are about 2 KiB). */
#define SM_PL_LICENSE_MAX_ANSWER 65536u
/* Longest server detail quoted in a message. */
#define SM_PL_DETAIL_MAX 300u

/* Why a license was refused (the problem type), or NONE. */
typedef enum sm_pl_refusal {
    SM_PL_REFUSAL_NONE = 0,
    SM_PL_REFUSAL_NOT_PAID,
    SM_PL_REFUSAL_RENTAL_EXPIRED,
    SM_PL_REFUSAL_TXN_REVOKED,
    SM_PL_REFUSAL_DEVICE_REVOKED,
    SM_PL_REFUSAL_ACTIVATION_LIMIT,
    SM_PL_REFUSAL_WRONG_DEVICE,
    SM_PL_REFUSAL_VOUCHER_EXPIRED,
    SM_PL_REFUSAL_WORK_WITHDRAWN,
    SM_PL_REFUSAL_NO_LICENSE,  /* a renewal before any license (409 no-license) */
    SM_PL_REFUSAL_UNAVAILABLE, /* 503 service-unavailable */
    SM_PL_REFUSAL_OTHER
} sm_pl_refusal;

typedef struct sm_pl_license {
    char *txn;
    char *work_id;
    uint32_t key_version;
    char *key_jwe;          /* compact JWE to the device key; NULL in a renewal */
    char *delivery_token;   /* bearer token for the media stores (wiped on free) */
    int64_t delivery_expires_at;
    int rental;             /* 0 purchase, 1 rental */
    int64_t rental_duration;
    int64_t rental_ends_at; /* 0 unless a rental */
    uint32_t activation;
    uint32_t activation_limit;
} sm_pl_license;

/* The request body {"voucher":"..."} (with "delivery_only":true for a
 * delivery-token renewal; malloc'ed) and the DPoP proof for POST
 * license_url, made with the device key at `now` (0 = now). */
sm_status sm_pl_license_build_request(const char *voucher, const sm_jwk *device_key,
                                      const char *license_url, int64_t now, int delivery_only,
                                      char **body_out, char **proof_out, sm_error *err);

/* Interprets an answer: 200 application/json -> *out (checked against
 * expected_work_id when not NULL); anything else -> an error whose message
 * says why in plain words, with *refusal (may be NULL) set. Status of a
 * refusal: SM_ERR_UNAVAILABLE for 503 / 5xx, SM_ERR_KEY otherwise; a
 * malformed 200 answer is SM_ERR_FORMAT. */
sm_status sm_pl_license_parse_answer(long status, const char *content_type, const uint8_t *body,
                                     size_t len, const char *expected_work_id,
                                     sm_pl_license **out, sm_pl_refusal *refusal, sm_error *err);

/* The same for the answer to a delivery-token renewal (PROTOCOL.md §2.6):
 * the license answer without "key_jwe" (*out's key_jwe is NULL). */
sm_status sm_pl_license_parse_renewal(long status, const char *content_type,
                                      const uint8_t *body, size_t len,
                                      const char *expected_work_id, sm_pl_license **out,
                                      sm_pl_refusal *refusal, sm_error *err);

/* The plain-words sentence for a refusal slug and the enum it maps to. */
sm_pl_refusal sm_pl_refusal_from_slug(const char *slug);

/* Sends the request for steer through the transport and parses the answer. */
sm_status sm_pl_license_request(const sm_pl_transport *tr, const sm_steer *steer,
                                const sm_jwk *device_key, sm_pl_license **out,
                                sm_pl_refusal *refusal, sm_error *err);

/* A delivery-token renewal for steer's purchase: a new token without
 * spending an activation, for a device that kept the key of an earlier
 * license. SM_PL_REFUSAL_NO_LICENSE when the key server issued none. */
sm_status sm_pl_license_renew(const sm_pl_transport *tr, const sm_steer *steer,
                              const sm_jwk *device_key, sm_pl_license **out,
                              sm_pl_refusal *refusal, sm_error *err);

void sm_pl_license_free(sm_pl_license *lic);

#endif
