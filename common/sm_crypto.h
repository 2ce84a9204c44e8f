/* Thin wrappers over OpenSSL EVP: AES-GCM and HKDF.
 *
 * The only place the project touches symmetric primitives directly; both are
 * checked against the Wycheproof aes_gcm and hkdf vectors. */
#ifndef SM_CRYPTO_H
#define SM_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

#include "sm_error.h"

#define SM_GCM_TAG_LEN 16
/* Longest nonce the wrapper accepts (OpenSSL 3's GCM limit, 1024 bits). */
#define SM_GCM_NONCE_MAX 128u

/* An AES-GCM key schedule (AES-128/192/256 by key length), reusable for many
 * messages. Key bytes are not kept outside OpenSSL's context. One sm_aead
 * must not be used by two threads at once. */
typedef struct sm_aead sm_aead;

sm_status sm_aead_new(const uint8_t *key, size_t key_len, sm_aead **out, sm_error *err);
void sm_aead_free(sm_aead *aead);

/* Encrypts pt_len bytes into ct (same length) and writes a tag_len-byte tag.
 * nonce_len must be 1..SM_GCM_NONCE_MAX (12 is the normal size); tag_len
 * 12..16; other sizes are SM_ERR_ARG. ct may be the same buffer as pt. */
sm_status sm_aead_seal(sm_aead *aead, const uint8_t *nonce, size_t nonce_len,
                       const uint8_t *aad, size_t aad_len, const uint8_t *pt, size_t pt_len,
                       uint8_t *ct, uint8_t *tag, size_t tag_len, sm_error *err);

/* Decrypts and authenticates; on failure returns SM_ERR_AUTH and wipes the
 * ct_len bytes of pt, so no unauthenticated plaintext escapes. pt may be the
 * same buffer as ct. */
sm_status sm_aead_open(sm_aead *aead, const uint8_t *nonce, size_t nonce_len,
                       const uint8_t *aad, size_t aad_len, const uint8_t *ct, size_t ct_len,
                       const uint8_t *tag, size_t tag_len, uint8_t *pt, sm_error *err);

typedef enum sm_hkdf_mode {
    SM_HKDF_EXTRACT_AND_EXPAND, /* RFC 5869 HKDF */
    SM_HKDF_EXPAND_ONLY         /* ikm is the PRK (c2sp chunked encryption) */
} sm_hkdf_mode;

/* digest: "SHA256" or "SHA512". salt is ignored in EXPAND_ONLY mode.
 * out_len must be 1..255 * digest size (RFC 5869), else SM_ERR_ARG. */
sm_status sm_hkdf(const char *digest, sm_hkdf_mode mode, const uint8_t *salt, size_t salt_len,
                  const uint8_t *ikm, size_t ikm_len, const uint8_t *info, size_t info_len,
                  uint8_t *out, size_t out_len, sm_error *err);

#endif
