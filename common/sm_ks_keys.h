/* The key server's own asymmetric keys.
 *
 * - ES256 signing keys, each with a kid: exactly one is active (it signs
 *   vouchers, payment acknowledgements, delivery tokens and ledger
 *   checkpoints); the others stay in the published JWKS so tokens they
 *   signed still verify during a rotation and old checkpoints stay
 *   checkable.
 * - One P-256 encryption key: owners wrap a work's media key to it as a
 *   compact JWE (ECDH-ES + A256GCM) when they register the work.
 *
 * Read-only after set-up; safe to share between threads. */
#ifndef SM_KS_KEYS_H
#define SM_KS_KEYS_H

#include <stddef.h>

#include <jansson.h>

#include "sm_error.h"
#include "sm_jose.h"
#include "sm_secmem.h"

#define SM_KS_MAX_SIGNING_KEYS SM_JWKS_MAX_KEYS

typedef struct sm_ks_keys sm_ks_keys;

sm_status sm_ks_keys_new(sm_ks_keys **out, sm_error *err);
void sm_ks_keys_free(sm_ks_keys *keys);

/* Adds a signing key (a private P-256 JWK) under kid; takes ownership of
 * key on success only. active != 0 makes it the signing key; a second
 * active key, a duplicate kid or a public-only key is refused. */
sm_status sm_ks_keys_add_signing(sm_ks_keys *keys, sm_jwk *key, const char *kid, int active,
                                 sm_error *err);
/* The same from a private JWK file (0600, see sm_jwk_load_file). */
sm_status sm_ks_keys_load_signing(sm_ks_keys *keys, const char *path, const char *kid, int active,
                                  sm_error *err);

/* Sets the encryption key (private P-256 JWK); takes ownership on success. */
sm_status sm_ks_keys_set_encryption(sm_ks_keys *keys, sm_jwk *key, const char *kid,
                                    sm_error *err);
sm_status sm_ks_keys_load_encryption(sm_ks_keys *keys, const char *path, const char *kid,
                                     sm_error *err);

/* When exactly one signing key was added and none marked active, makes it
 * the active one (a single key needs no "active" flag in the
 * configuration). Otherwise does nothing. */
void sm_ks_keys_default_active(sm_ks_keys *keys);

/* Checks the set is complete: one active signing key and an encryption
 * key. The message says what is missing, for configuration errors. */
sm_status sm_ks_keys_check(const sm_ks_keys *keys, sm_error *err);

/* Public verification keys (every signing key, by kid). */
const sm_jwks *sm_ks_keys_jwks(const sm_ks_keys *keys);
/* The JWKS document to publish; free() it. */
char *sm_ks_keys_jwks_json(const sm_ks_keys *keys, sm_error *err);
/* The public encryption JWK (with kid, "use":"enc" semantics); free with
 * sm_jwk_json_free. */
char *sm_ks_keys_encryption_jwk_json(const sm_ks_keys *keys, sm_error *err);
const char *sm_ks_keys_active_kid(const sm_ks_keys *keys);

/* Signs claims with the active key as a compact ES256 JWS of type typ. */
sm_status sm_ks_keys_sign(const sm_ks_keys *keys, const char *typ, json_t *claims,
                          char **compact_out, sm_error *err);

/* Opens a media-key JWE addressed to the encryption key (its header kid,
 * if any, is the sender's label and not checked; a JWE for another key is
 * SM_ERR_AUTH). */
sm_status sm_ks_keys_unwrap_media_key(const sm_ks_keys *keys, const char *jwe, size_t len,
                                      sm_secret **key_out, sm_error *err);

#endif
