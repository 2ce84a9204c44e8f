/* Retail secrets: password hashes (scrypt through OpenSSL 3's EVP_KDF),
 * API tokens, redeem codes and order ids. No httpd or database here.
 *
 * A password hash is the text "$scrypt$ln=<log2 N>,r=<r>,p=<p>$<salt>$<hash>"
 * (salt 16 bytes, hash 32 bytes, both base64url without padding), so the
 * cost can be raised later without invalidating stored hashes. Tokens and
 * codes are high-entropy random strings; only their SHA-256 is stored. */
#ifndef SM_RT_AUTH_H
#define SM_RT_AUTH_H

#include <stddef.h>
#include <stdint.h>

#include "sm_error.h"

#define SM_RT_PASSWORD_HASH_MAX 128u
#define SM_RT_SCRYPT_LN_DEFAULT 15u /* N = 32768, r = 8: 32 MiB per hash */
#define SM_RT_SCRYPT_LN_MIN 10u
#define SM_RT_SCRYPT_LN_MAX 20u
#define SM_RT_TOKEN_SIZE 49u  /* "smrt_" + 43 base64url characters + NUL */
#define SM_RT_CODE_SIZE 24u   /* "XXXXX-XXXXX-XXXXX-XXXXX" + NUL */
#define SM_RT_ORDER_ID_SIZE 27u /* 26 characters + NUL */

/* Hashes password (len bytes) with a fresh random salt at cost 2^ln. */
sm_status sm_rt_password_hash(const char *password, size_t len, unsigned ln,
                              char out[SM_RT_PASSWORD_HASH_MAX], sm_error *err);

/* *ok = 1 when password matches stored (constant-time comparison of the
 * derived bytes). SM_ERR_FORMAT when stored is not a hash of ours. */
sm_status sm_rt_password_verify(const char *password, size_t len, const char *stored, int *ok,
                                sm_error *err);

/* A new API token: "smrt_" + base64url of 32 random bytes. */
sm_status sm_rt_token_new(char out[SM_RT_TOKEN_SIZE], sm_error *err);
/* 1 when s looks like one of our tokens (length and alphabet only). */
int sm_rt_token_syntax_ok(const char *s);

/* A new redeem code: 20 characters of Crockford's base32 (100 bits) in
 * four groups of five joined by '-'. */
sm_status sm_rt_code_new(char out[SM_RT_CODE_SIZE], sm_error *err);
/* Normalises what a person typed (case, '-' and spaces ignored, O->0,
 * I/L->1) into the canonical 20 characters; SM_ERR_FORMAT otherwise. */
sm_status sm_rt_code_normalize(const char *in, char out[21], sm_error *err);

/* A new order id: 26 characters of lowercase base32 (130 random bits). */
sm_status sm_rt_order_id_new(char out[SM_RT_ORDER_ID_SIZE], sm_error *err);
int sm_rt_order_id_syntax_ok(const char *s);

/* SHA-256 of len bytes. */
void sm_rt_sha256(const void *data, size_t len, uint8_t out[32]);

#endif
