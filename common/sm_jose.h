/* JOSE for secmedia, over cjose and jansson: P-256 JWKs and their RFC 7638
 * thumbprints, ES256 compact JWS with kid and registered claims, JWK sets,
 * the media-key JWE (ECDH-ES + A256GCM) and DPoP-style device proofs
 * (RFC 9449). docs/FORMATS.md §3 is the normative description.
 *
 * Every verifier here checks the protected header itself before handing
 * anything to cjose: exactly the expected alg (so "none", HS256 and others
 * are refused before any key is touched), no unknown header members, no
 * "crit", strict base64url and strict JSON (no duplicate members), and
 * inputs no larger than SM_JOSE_MAX_TOKEN bytes.
 *
 * Strings returned as `char *` (compact tokens, JWKS documents) are
 * malloc'ed: release them with free(). JWK JSON from sm_jwk_to_json may hold
 * a private key: release it with sm_jwk_json_free. */
#ifndef SM_JOSE_H
#define SM_JOSE_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "sm_error.h"
#include "sm_secmem.h"

/* Largest compact JWS/JWE/DPoP proof and largest JWK/JWKS document read. */
#define SM_JOSE_MAX_TOKEN 16384u
/* Largest JWK file read by sm_jwk_load_file. */
#define SM_JWK_FILE_MAX 4096u
/* Longest kid accepted in a JWK, JWS or JWE header. */
#define SM_JOSE_KID_MAX 128u
/* jti: 16..128 characters of [A-Za-z0-9._~-]. */
#define SM_JOSE_JTI_MIN 16u
#define SM_JOSE_JTI_MAX 128u
/* Default allowed clock difference, seconds. */
#define SM_JOSE_DEFAULT_SKEW 60
/* Default maximum age of a DPoP proof, seconds. */
#define SM_DPOP_DEFAULT_MAX_AGE 300
/* Size of the media key carried by sm_jwe_wrap_key / sm_jwe_unwrap_key. */
#define SM_JWE_KEY_LEN 32u
/* A jkt: 43 base64url characters + NUL. */
#define SM_JKT_SIZE 44u

/* ---- JWK (P-256 only) ---------------------------------------------- */

typedef struct sm_jwk sm_jwk; /* wraps cjose_jwk_t */

/* A fresh P-256 key pair. */
sm_status sm_jwk_generate(sm_jwk **out, sm_error *err);

/* Strict import: a JSON object with kty "EC", crv "P-256", x and y (32 bytes
 * each, canonical base64url), optionally d (32 bytes, 1 <= d < n, matching
 * x/y), kid (1..SM_JOSE_KID_MAX printable ASCII), use ("sig" or "enc") and
 * alg ("ES256" or "ECDH-ES"); nothing else. The point must be on the curve
 * and not the point at infinity. At most SM_JOSE_MAX_TOKEN bytes. */
sm_status sm_jwk_from_json(const char *json, size_t len, sm_jwk **out, sm_error *err);

/* {"kty":"EC","crv":"P-256"[,"kid":...],"x":...,"y":...[,"d":...]}; with
 * include_private the key must have a private part. Free with
 * sm_jwk_json_free. */
char *sm_jwk_to_json(const sm_jwk *jwk, int include_private, sm_error *err);
/* Wipes then frees; NULL is fine. */
void sm_jwk_json_free(char *json);

/* Reads one JWK file (at most SM_JWK_FILE_MAX bytes, a regular file). A file
 * holding a private key is refused when group or others have any access. */
sm_status sm_jwk_load_file(const char *path, sm_jwk **out, sm_error *err);

/* Writes the JWK through a temporary file in the same directory (created
 * with O_EXCL, mode 0600, fsync'ed) renamed into place, then fsyncs the
 * directory. Private files end up 0600, public ones 0644.
 * sm_jwk_save_file refuses to replace an existing file;
 * sm_jwk_save_file_overwrite replaces it atomically. */
sm_status sm_jwk_save_file(const sm_jwk *jwk, const char *path, int include_private,
                           sm_error *err);
sm_status sm_jwk_save_file_overwrite(const sm_jwk *jwk, const char *path, int include_private,
                                     sm_error *err);

int sm_jwk_has_private(const sm_jwk *jwk);

/* RFC 7638 thumbprint (SHA-256 of {"crv","kty","x","y"}), base64url:
 * 43 characters + NUL. This is the device's "jkt". */
sm_status sm_jwk_thumbprint(const sm_jwk *jwk, char out[44], sm_error *err);

/* The JWK's kid or NULL. set_kid validates like the importer; NULL clears. */
const char *sm_jwk_kid(const sm_jwk *jwk);
sm_status sm_jwk_set_kid(sm_jwk *jwk, const char *kid, sm_error *err);

/* A new key holding only the public part (kid kept). */
sm_status sm_jwk_public_copy(const sm_jwk *jwk, sm_jwk **out, sm_error *err);

/* 1 when both hold the same public key. */
int sm_jwk_same_public(const sm_jwk *a, const sm_jwk *b);

void sm_jwk_free(sm_jwk *jwk);

/* Default per-user device key path: $SECMEDIA_DEVICE_KEY if set and not
 * empty, else $XDG_CONFIG_HOME/secmedia/device.jwk (when XDG_CONFIG_HOME is
 * an absolute path), else $HOME/.config/secmedia/device.jwk (HOME from the
 * password database when unset). */
sm_status sm_device_key_default_path(char *buf, size_t size, sm_error *err);

/* ---- JWK sets -------------------------------------------------------- */

typedef struct sm_jwks sm_jwks; /* public keys, each with a unique kid */

#define SM_JWKS_MAX_KEYS 32u

sm_status sm_jwks_new(sm_jwks **out, sm_error *err);
/* Adds a public copy of key. kid_or_null overrides the key's kid; when both
 * are absent the key's jkt is the kid. Duplicate kids are refused. */
sm_status sm_jwks_add(sm_jwks *set, const sm_jwk *key, const char *kid_or_null, sm_error *err);
/* {"keys":[JWK,...]}: 1..SM_JWKS_MAX_KEYS public keys (a "d" is refused),
 * each with a unique kid, each imported like sm_jwk_from_json. */
sm_status sm_jwks_from_json(const char *json, size_t len, sm_jwks **out, sm_error *err);
/* The public JWKS document (what the key server publishes). Free with free(). */
char *sm_jwks_to_json(const sm_jwks *set, sm_error *err);
/* The key with this kid (exact match) or NULL. */
const sm_jwk *sm_jwks_find(const sm_jwks *set, const char *kid);
size_t sm_jwks_count(const sm_jwks *set);
void sm_jwks_free(sm_jwks *set);

/* ---- ES256 JWS with registered claims -------------------------------- */

/* Signs claims (a JSON object) as a compact JWS with protected header
 * {"alg":"ES256","kid":kid,"typ":typ}. key must hold a private part; kid
 * NULL means the key's kid, else its jkt; typ is required. The claims are
 * signed as given: put iss, aud, exp, iat and jti in them (sm_jose_random_jti
 * makes a jti) or sm_jws_verify will refuse the token. Free with free(). */
sm_status sm_jws_sign(const sm_jwk *key, const char *kid, const char *typ, json_t *claims,
                      char **compact_out, sm_error *err);

typedef struct sm_jws_expect {
    const char *iss;      /* required: "iss" must equal it */
    const char *aud;      /* required: "aud" equals it or is an array containing it */
    const char *typ;      /* required: header "typ" must equal it (ASCII case-insensitive) */
    int64_t now;          /* seconds since the epoch; 0 = the current time */
    int64_t max_skew;     /* allowed clock difference; < 0 = SM_JOSE_DEFAULT_SKEW */
    int64_t max_lifetime; /* if > 0, exp - iat may not exceed it */
} sm_jws_expect;

/* Sets iss/aud/typ, now = 0, max_skew = -1 (default), max_lifetime = 0. */
void sm_jws_expect_init(sm_jws_expect *e, const char *iss, const char *aud, const char *typ);

/* Verifies a compact JWS against the key named by its kid in keys and the
 * expectations, and returns the claims (json_decref them). Refuses: a size
 * over SM_JOSE_MAX_TOKEN; alg other than ES256 (before any verification);
 * header members other than alg/kid/typ (crit, jwk, jku, x5u, ...); missing
 * or unknown kid; wrong typ; a signature that is not 64 bytes or does not
 * verify; claims that are not a strict JSON object; missing iss, aud, exp,
 * iat or jti; iss/aud mismatch; now >= exp + skew; iat > now + skew;
 * nbf > now + skew; exp < iat; a jti outside the jti syntax. Other claims
 * are returned for the caller to check. kid_out (may be NULL) gets the kid. */
sm_status sm_jws_verify(const char *compact, size_t len, const sm_jwks *keys,
                        const sm_jws_expect *expect, json_t **claims_out,
                        char kid_out[SM_JOSE_KID_MAX + 1], sm_error *err);

/* 22 characters of base64url from 16 random bytes (+ NUL). */
sm_status sm_jose_random_jti(char out[23], sm_error *err);

/* ---- Media key JWE ---------------------------------------------------- */

/* Compact JWE with protected header {"alg":"ECDH-ES","enc":"A256GCM",
 * "epk":..., ["kid":...]} carrying the SM_JWE_KEY_LEN raw key bytes to the
 * recipient's public key. Free with free(). */
sm_status sm_jwe_wrap_key(const sm_jwk *recipient, const sm_secret *key, const char *kid_or_null,
                          char **compact_out, sm_error *err);

/* The same JWE in two steps, for callers that want the costly part (an
 * ephemeral key and the ECDH agreement) done before the media key is at
 * hand, e.g. outside a database transaction: sm_jwe_sealer_new agrees a
 * content key with the recipient, sm_jwe_sealer_seal encrypts a media key
 * under it (a fresh IV each time). The content key is in the secure heap;
 * sm_jwe_sealer_free wipes it. */
typedef struct sm_jwe_sealer sm_jwe_sealer;
sm_status sm_jwe_sealer_new(const sm_jwk *recipient, const char *kid_or_null,
                            sm_jwe_sealer **out, sm_error *err);
sm_status sm_jwe_sealer_seal(const sm_jwe_sealer *sealer, const sm_secret *key,
                             char **compact_out, sm_error *err);
void sm_jwe_sealer_free(sm_jwe_sealer *sealer);

/* Decrypts with the recipient's private key; the key lands in secure memory.
 * Refuses anything but alg ECDH-ES / enc A256GCM, header members other than
 * alg/enc/epk/kid (zip, crit, apu, apv, ...), an epk that is not a valid
 * public P-256 key, a non-empty encrypted key, an IV other than 12 bytes, a
 * tag other than 16 bytes and a plaintext other than SM_JWE_KEY_LEN bytes.
 * kid_out (may be NULL) gets the header kid or "". */
sm_status sm_jwe_unwrap_key(const sm_jwk *recipient_private, const char *compact, size_t len,
                            sm_secret **key_out, sm_error *err);
sm_status sm_jwe_unwrap_key_kid(const sm_jwk *recipient_private, const char *compact,
                                size_t len, sm_secret **key_out,
                                char kid_out[SM_JOSE_KID_MAX + 1], sm_error *err);

/* ---- DPoP-style proofs (RFC 9449) -------------------------------------- */

/* A proof for one request: header {"typ":"dpop+jwt","alg":"ES256","jwk":
 * public device key}, claims {"jti","htm","htu","iat"[,"ath"]}. htu is sent
 * without query and fragment. now 0 = current time; jti NULL = random;
 * access_token (may be NULL) adds ath = base64url(SHA-256(token)). */
sm_status sm_dpop_create(const sm_jwk *device_key, const char *htm, const char *htu, int64_t now,
                         const char *jti_or_null, const char *access_token_or_null,
                         char **proof_out, sm_error *err);

typedef struct sm_dpop_expect {
    const char *htm;          /* required, compared exactly ("POST") */
    const char *htu;          /* required; scheme, host, port and path compared */
    const char *jkt;          /* if set, the embedded key's thumbprint must equal it */
    const char *access_token; /* if set, "ath" must be its hash; if NULL, no "ath" allowed */
    int64_t now;              /* 0 = the current time */
    int64_t max_age;          /* iat may be at most this old; < 0 = SM_DPOP_DEFAULT_MAX_AGE */
    int64_t max_skew;         /* iat may be this far in the future; < 0 = SM_JOSE_DEFAULT_SKEW */
} sm_dpop_expect;

void sm_dpop_expect_init(sm_dpop_expect *e, const char *htm, const char *htu);

typedef struct sm_dpop_result {
    char jkt[SM_JKT_SIZE];          /* thumbprint of the embedded key */
    char jti[SM_JOSE_JTI_MAX + 1];  /* for the caller's single-use check */
    int64_t iat;
} sm_dpop_result;

/* Verifies a proof. The caller must still enforce single use of jti (for at
 * least max_age + max_skew seconds). */
sm_status sm_dpop_verify(const char *proof, size_t len, const sm_dpop_expect *expect,
                         sm_dpop_result *out, sm_error *err);

/* The same, and on success hands back the proof's public key (key_out may
 * be NULL), e.g. to wrap a media key to it. The key may be shared with a
 * cache of device keys: use it read-only (no sm_jwk_set_kid) and release
 * it with sm_jwk_free. */
sm_status sm_dpop_verify_key(const char *proof, size_t len, const sm_dpop_expect *expect,
                             sm_dpop_result *out, sm_jwk **key_out, sm_error *err);

/* Compares two http(s) URLs as RFC 9449 §4.3 asks for htu: scheme and host
 * case-insensitively, default ports normalised, path byte-exact (empty = "/"),
 * query and fragment ignored. 1 = same, 0 = different or not an http(s) URL. */
int sm_dpop_htu_equal(const char *a, const char *b);

#endif
