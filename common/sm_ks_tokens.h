/* The tokens the key server signs (docs/PROTOCOL.md "Key server tokens"):
 *
 * - voucher (typ "secmedia-voucher+jwt"): made at reservation, carried in
 *   the steering file, presented back with a device proof for a license.
 *   aud is the key server itself.
 * - payment acknowledgement (typ "secmedia-payment+jwt"): the receipt a
 *   retailer gets when its payment is recorded; aud is the retailer.
 * - delivery token (typ "secmedia-delivery+jwt"): short-lived, lets the
 *   device fetch one work's container from a media store; aud lists the
 *   media store ids.
 *
 * All are ES256 JWS signed with the key server's active key and verified
 * against its JWKS; verification is strict: exactly the documented claims,
 * each of the documented type. */
#ifndef SM_KS_TOKENS_H
#define SM_KS_TOKENS_H

#include <stddef.h>
#include <stdint.h>

#include "sm_container.h"
#include "sm_error.h"
#include "sm_jose.h"
#include "sm_ks_keys.h"
#include "sm_ks_terms.h"

#define SM_KS_TYP_VOUCHER "secmedia-voucher+jwt"
#define SM_KS_TYP_PAYMENT "secmedia-payment+jwt"
#define SM_KS_TYP_DELIVERY "secmedia-delivery+jwt"

/* Longest issuer (the key server's URL) and most media store audiences. */
#define SM_KS_ISS_MAX 512u
#define SM_KS_MAX_AUDIENCES 16u
/* ISO 4217 code + NUL. */
#define SM_KS_CURRENCY_SIZE 4u
/* Retailer payment reference (its idempotency key): 1..128 of
 * [A-Za-z0-9._~:-]. */
#define SM_KS_PAYMENT_REF_MAX 128u

typedef struct sm_ks_voucher {
    char txn[SM_KS_ID_SIZE];
    char work_id[SM_WORK_ID_MAX + 1];
    char retailer[SM_KS_ID_SIZE];
    sm_ks_terms terms;
    char jkt[SM_JKT_SIZE]; /* the designated device */
    int64_t iat, exp;
    char jti[SM_JOSE_JTI_MAX + 1];
} sm_ks_voucher;

typedef struct sm_ks_payment_ack {
    char txn[SM_KS_ID_SIZE];
    char work_id[SM_WORK_ID_MAX + 1];
    char retailer[SM_KS_ID_SIZE];
    char payment_ref[SM_KS_PAYMENT_REF_MAX + 1];
    int64_t amount; /* wholesale, minor units */
    char currency[SM_KS_CURRENCY_SIZE];
    int64_t paid_at;
    int64_t iat, exp;
    char jti[SM_JOSE_JTI_MAX + 1];
} sm_ks_payment_ack;

typedef struct sm_ks_delivery {
    char work_id[SM_WORK_ID_MAX + 1];
    char txn[SM_KS_ID_SIZE];
    char jkt[SM_JKT_SIZE];
    int64_t iat, exp;
    char jti[SM_JOSE_JTI_MAX + 1];
} sm_ks_delivery;

/* Checks a payment reference's syntax. */
sm_status sm_ks_validate_payment_ref(const char *ref, sm_error *err);

/* Issuing: iat = now (0 = current time), exp = now + lifetime (> 0), a fresh
 * jti; the iat/exp/jti members of the input are ignored and the actual
 * values are written back. The compact token is malloc'ed (free()). */
sm_status sm_ks_voucher_issue(const sm_ks_keys *keys, const char *iss, sm_ks_voucher *v,
                              int64_t now, int64_t lifetime, char **compact_out, sm_error *err);
sm_status sm_ks_payment_ack_issue(const sm_ks_keys *keys, const char *iss, sm_ks_payment_ack *p,
                                  int64_t now, int64_t lifetime, char **compact_out,
                                  sm_error *err);
/* audiences: 1..SM_KS_MAX_AUDIENCES media store ids (one becomes a string
 * "aud", several an array). */
sm_status sm_ks_delivery_issue(const sm_ks_keys *keys, const char *iss,
                               const char *const *audiences, size_t n_audiences,
                               sm_ks_delivery *d, int64_t now, int64_t lifetime,
                               char **compact_out, sm_error *err);

/* Verifying (now 0 = current time). */
sm_status sm_ks_voucher_verify(const sm_jwks *keys, const char *iss, const char *compact,
                               size_t len, int64_t now, sm_ks_voucher *out, sm_error *err);

/* A bounded cache of verified vouchers (per process, thread-safe): the key
 * server sees the same voucher on every license of a sale. An entry is the
 * voucher's parsed facts keyed by SHA-256 of the issuer and the voucher's
 * exact bytes; a hit still needs the signing kid in the key set and passes
 * the exp/iat checks against now again. Everything else (payment,
 * revocation, contract) is the database's to check on every request. */
#define SM_KS_VOUCHER_CACHE_MAX 65536u
typedef struct sm_ks_voucher_cache sm_ks_voucher_cache;
sm_status sm_ks_voucher_cache_new(size_t slots, sm_ks_voucher_cache **out, sm_error *err);
void sm_ks_voucher_cache_free(sm_ks_voucher_cache *cache);
/* sm_ks_voucher_verify through the cache (cache NULL: no caching). */
sm_status sm_ks_voucher_verify_cached(sm_ks_voucher_cache *cache, const sm_jwks *keys,
                                      const char *iss, const char *compact, size_t len,
                                      int64_t now, sm_ks_voucher *out, sm_error *err);
sm_status sm_ks_payment_ack_verify(const sm_jwks *keys, const char *iss, const char *retailer,
                                   const char *compact, size_t len, int64_t now,
                                   sm_ks_payment_ack *out, sm_error *err);
/* audience: the verifying media store's id. max_lifetime > 0 bounds
 * exp - iat (a media store refuses long-lived delivery tokens). */
sm_status sm_ks_delivery_verify(const sm_jwks *keys, const char *iss, const char *audience,
                                const char *compact, size_t len, int64_t now,
                                int64_t max_lifetime, sm_ks_delivery *out, sm_error *err);

#endif
