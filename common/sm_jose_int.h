/* Internals shared by sm_jose.c, sm_jwk.c, sm_jws.c, sm_jwe.c and sm_dpop.c.
 * Not part of the library's API. */
#ifndef SM_JOSE_INT_H
#define SM_JOSE_INT_H

#include <stddef.h>
#include <stdint.h>

#include <cjose/cjose.h>
#include <openssl/evp.h>

#include "sm_b64.h"
#include "sm_jose.h"

#define SMJ_COORD_LEN 32u /* P-256 field element / scalar */
#define SMJ_COORD_B64_LEN 43u
/* 9999-12-31T23:59:59Z: NumericDates and "now" beyond are refused, which
 * also keeps the time arithmetic far from overflow. */
#define SMJ_MAX_NUMERIC_DATE INT64_C(253402300799)

struct sm_jwk {
    cjose_jwk_t *cj;
    uint8_t x[SMJ_COORD_LEN];
    uint8_t y[SMJ_COORD_LEN];
    sm_secret *d; /* NULL for a public key */
    char *kid;    /* NULL when absent */
    /* The public key as an OpenSSL key, made on first use
     * (smj_jwk_public_pkey) and kept: keys are shared between threads, so
     * it is published with an atomic compare-and-swap. */
    EVP_PKEY *pub;
    /* References: sm_jwk_free drops one; the last frees. Keys held by the
     * device-key cache are shared with the requests that use them. */
    unsigned refs;
};

/* One segment of a compact serialization. */
typedef struct smj_segment {
    const char *b64;
    size_t len;
} smj_segment;

/* Splits compact into exactly n segments separated by '.', each strict
 * base64url; only segments whose bit is set in empty_ok may be empty.
 * Checks the size limit and that no NUL is present. */
sm_status smj_split_compact(const char *compact, size_t len, size_t n, smj_segment *segs,
                            unsigned empty_ok, const char *what, sm_error *err);

/* Decodes a segment holding a JSON object and parses it strictly. */
sm_status smj_decode_json_segment(const smj_segment *seg, const char *what, json_t **out,
                                  sm_error *err);

/* The current time when now == 0. */
int64_t smj_now(int64_t now);

/* Checks the jti syntax. */
sm_status smj_check_jti(const char *jti, const char *what, sm_error *err);
/* Checks the kid syntax: 1..SM_JOSE_KID_MAX printable ASCII. */
sm_status smj_check_kid(const char *kid, const char *what, sm_error *err);

/* ASCII case-insensitive equality. */
int smj_strcaseeq(const char *a, const char *b);

/* An sm_error message for a failed cjose call. */
sm_status smj_cjose_error(sm_error *err, sm_status status, const char *what,
                          const cjose_err *cerr);

/* Builds a key from raw coordinates (and d); validates the point and that d
 * matches it. kid may be NULL. */
sm_status smj_jwk_from_raw(const uint8_t x[SMJ_COORD_LEN], const uint8_t y[SMJ_COORD_LEN],
                           const uint8_t *d_or_null, const char *kid, sm_jwk **out,
                           sm_error *err);

/* Imports a JWK from a parsed JSON object (strict, like sm_jwk_from_json).
 * allow_private 0 refuses a "d" member with "what holds a private key". */
sm_status smj_jwk_from_object(json_t *obj, int allow_private, const char *what, sm_jwk **out,
                              sm_error *err);

/* The public key as an OpenSSL EVP_PKEY owned by jwk (do not free); NULL
 * when OpenSSL fails. Thread-safe. */
EVP_PKEY *smj_jwk_public_pkey(const sm_jwk *jwk);

/* Another reference to jwk (released with sm_jwk_free). */
sm_jwk *smj_jwk_ref(const sm_jwk *jwk);

/* Like smj_jwk_from_object(obj, 0, ...), the same checks in the same order,
 * but a public key without kid is looked up in a bounded process-wide
 * cache keyed by its exact coordinates, so a device that comes back skips
 * the point validation and the key construction. jkt_out (may be NULL)
 * receives the RFC 7638 thumbprint. *out is a reference: sm_jwk_free. */
sm_status smj_jwk_from_object_cached(json_t *obj, const char *what, sm_jwk **out,
                                     char jkt_out[SM_JKT_SIZE], sm_error *err);

/* The public JWK as a new JSON object (kid included when with_kid). */
json_t *smj_jwk_public_object(const sm_jwk *jwk, int with_kid);

/* Signs the JSON payload with ES256 under the given protected header
 * (which must already hold alg ES256). */
sm_status smj_es256_sign(const sm_jwk *key, json_t *header, json_t *payload, char **compact_out,
                         sm_error *err);

/* Verifies the ES256 signature of a split compact JWS with key: checks the
 * 64-byte signature length first, then cjose. Returns SM_ERR_AUTH when it
 * does not verify. */
sm_status smj_es256_verify(const char *compact, size_t len, const smj_segment segs[3],
                           const sm_jwk *key, const char *what, sm_error *err);

#endif
