#include "config.h"

#include <limits.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>

#include "sm_crypto.h"
#include "sm_secmem.h"

#define SM_GCM_DEFAULT_NONCE_LEN 12u
#define SM_GCM_MIN_TAG_LEN 12u

/* EVP update calls take an int length; larger inputs are fed in pieces. */
#define SM_EVP_MAX_PER_CALL ((size_t)1 << 30)

struct sm_aead {
    /* One context for both directions: re-initialising with a NULL key keeps
     * the key schedule, so each message only pays for the IV setup. */
    EVP_CIPHER_CTX *ctx;
    size_t nonce_len; /* the IV length currently configured in ctx */
};

static const char *gcm_cipher_name(size_t key_len)
{
    switch (key_len) {
    case 16: return "AES-128-GCM";
    case 24: return "AES-192-GCM";
    case 32: return "AES-256-GCM";
    default: return NULL;
    }
}

sm_status sm_aead_new(const uint8_t *key, size_t key_len, sm_aead **out, sm_error *err)
{
    *out = NULL;
    const char *name = gcm_cipher_name(key_len);
    if (name == NULL)
        return sm_error_set(err, SM_ERR_KEY,
                            "an AES-GCM key is 16, 24 or 32 bytes, not %zu", key_len);
    sm_aead *aead = OPENSSL_zalloc(sizeof(*aead));
    EVP_CIPHER *cipher = EVP_CIPHER_fetch(NULL, name, NULL);
    if (aead == NULL || cipher == NULL) {
        EVP_CIPHER_free(cipher);
        OPENSSL_free(aead);
        return sm_error_set(err, cipher == NULL ? SM_ERR_CRYPTO : SM_ERR_NOMEM,
                            "cannot set up %s: %s", name,
                            cipher == NULL ? "OpenSSL does not provide it" : "out of memory");
    }
    aead->ctx = EVP_CIPHER_CTX_new();
    if (aead->ctx == NULL || EVP_CipherInit_ex2(aead->ctx, cipher, key, NULL, 1, NULL) != 1) {
        EVP_CIPHER_free(cipher);
        sm_aead_free(aead);
        return sm_error_set(err, SM_ERR_CRYPTO, "cannot set up %s: OpenSSL failed", name);
    }
    /* The context keeps its own reference to the cipher. */
    EVP_CIPHER_free(cipher);
    aead->nonce_len = SM_GCM_DEFAULT_NONCE_LEN;
    *out = aead;
    return SM_OK;
}

void sm_aead_free(sm_aead *aead)
{
    if (aead == NULL)
        return;
    /* EVP_CIPHER_CTX_free cleanses the key schedule. */
    EVP_CIPHER_CTX_free(aead->ctx);
    OPENSSL_free(aead);
}

static sm_status check_sizes(size_t nonce_len, size_t tag_len, sm_error *err)
{
    if (nonce_len == 0 || nonce_len > SM_GCM_NONCE_MAX)
        return sm_error_set(err, SM_ERR_ARG,
                            "AES-GCM nonce of %zu bytes is not supported (1 to %u bytes; 12 is "
                            "the normal size)",
                            nonce_len, SM_GCM_NONCE_MAX);
    if (tag_len < SM_GCM_MIN_TAG_LEN || tag_len > SM_GCM_TAG_LEN)
        return sm_error_set(err, SM_ERR_ARG,
                            "AES-GCM tag of %zu bytes is not supported (%u to %u bytes)", tag_len,
                            SM_GCM_MIN_TAG_LEN, SM_GCM_TAG_LEN);
    return SM_OK;
}

/* Starts a message: sets the direction and the nonce, keeping the key. */
static int start_message(sm_aead *aead, const uint8_t *nonce, size_t nonce_len, int encrypt)
{
    if (nonce_len != aead->nonce_len) {
        OSSL_PARAM params[2];
        size_t len = nonce_len;
        params[0] = OSSL_PARAM_construct_size_t(OSSL_CIPHER_PARAM_AEAD_IVLEN, &len);
        params[1] = OSSL_PARAM_construct_end();
        if (EVP_CIPHER_CTX_set_params(aead->ctx, params) != 1)
            return 0;
        aead->nonce_len = nonce_len;
    }
    return EVP_CipherInit_ex2(aead->ctx, NULL, NULL, nonce, encrypt, NULL) == 1;
}

static int feed_aad(EVP_CIPHER_CTX *ctx, const uint8_t *aad, size_t aad_len)
{
    int ignored;
    for (size_t done = 0; done < aad_len;) {
        size_t piece = aad_len - done < SM_EVP_MAX_PER_CALL ? aad_len - done : SM_EVP_MAX_PER_CALL;
        if (EVP_CipherUpdate(ctx, NULL, &ignored, aad + done, (int)piece) != 1)
            return 0;
        done += piece;
    }
    return 1;
}

/* GCM is a stream mode: every update writes exactly as many bytes as it reads. */
static int feed_data(EVP_CIPHER_CTX *ctx, const uint8_t *in, size_t len, uint8_t *out)
{
    for (size_t done = 0; done < len;) {
        size_t piece = len - done < SM_EVP_MAX_PER_CALL ? len - done : SM_EVP_MAX_PER_CALL;
        int written = 0;
        if (EVP_CipherUpdate(ctx, out + done, &written, in + done, (int)piece) != 1 ||
            written != (int)piece)
            return 0;
        done += piece;
    }
    return 1;
}

sm_status sm_aead_seal(sm_aead *aead, const uint8_t *nonce, size_t nonce_len,
                       const uint8_t *aad, size_t aad_len, const uint8_t *pt, size_t pt_len,
                       uint8_t *ct, uint8_t *tag, size_t tag_len, sm_error *err)
{
    sm_status st = check_sizes(nonce_len, tag_len, err);
    if (st != SM_OK)
        return st;
    uint8_t final_block[16];
    int final_len = 0;
    OSSL_PARAM params[2];
    params[0] = OSSL_PARAM_construct_octet_string(OSSL_CIPHER_PARAM_AEAD_TAG, tag, tag_len);
    params[1] = OSSL_PARAM_construct_end();
    if (!start_message(aead, nonce, nonce_len, 1) || !feed_aad(aead->ctx, aad, aad_len) ||
        !feed_data(aead->ctx, pt, pt_len, ct) ||
        EVP_CipherFinal_ex(aead->ctx, final_block, &final_len) != 1 || final_len != 0 ||
        EVP_CIPHER_CTX_get_params(aead->ctx, params) != 1)
        return sm_error_set(err, SM_ERR_CRYPTO, "AES-GCM encryption failed inside OpenSSL");
    return SM_OK;
}

sm_status sm_aead_open(sm_aead *aead, const uint8_t *nonce, size_t nonce_len,
                       const uint8_t *aad, size_t aad_len, const uint8_t *ct, size_t ct_len,
                       const uint8_t *tag, size_t tag_len, uint8_t *pt, sm_error *err)
{
    sm_status st = check_sizes(nonce_len, tag_len, err);
    if (st != SM_OK)
        return st;
    uint8_t final_block[16];
    int final_len = 0;
    /* OpenSSL only reads the expected tag, but the param API wants a void *. */
    uint8_t expected_tag[SM_GCM_TAG_LEN];
    memcpy(expected_tag, tag, tag_len);
    OSSL_PARAM params[2];
    params[0] =
        OSSL_PARAM_construct_octet_string(OSSL_CIPHER_PARAM_AEAD_TAG, expected_tag, tag_len);
    params[1] = OSSL_PARAM_construct_end();
    if (!start_message(aead, nonce, nonce_len, 0) ||
        EVP_CIPHER_CTX_set_params(aead->ctx, params) != 1 || !feed_aad(aead->ctx, aad, aad_len))
        return sm_error_set(err, SM_ERR_CRYPTO, "AES-GCM decryption failed inside OpenSSL");
    if (!feed_data(aead->ctx, ct, ct_len, pt) ||
        EVP_CipherFinal_ex(aead->ctx, final_block, &final_len) != 1 || final_len != 0) {
        /* GCM decrypts before it can check the tag: never let that text out. */
        sm_wipe(pt, ct_len);
        return sm_error_set(err, SM_ERR_AUTH,
                            "AES-GCM authentication failed: the data or its tag was modified, or "
                            "the key or nonce is wrong");
    }
    return SM_OK;
}

sm_status sm_hkdf(const char *digest, sm_hkdf_mode mode, const uint8_t *salt, size_t salt_len,
                  const uint8_t *ikm, size_t ikm_len, const uint8_t *info, size_t info_len,
                  uint8_t *out, size_t out_len, sm_error *err)
{
    size_t digest_len;
    if (digest != NULL && strcmp(digest, "SHA256") == 0)
        digest_len = 32;
    else if (digest != NULL && strcmp(digest, "SHA512") == 0)
        digest_len = 64;
    else
        return sm_error_set(err, SM_ERR_ARG, "HKDF digest must be SHA256 or SHA512");
    if (out_len == 0 || out_len > 255 * digest_len)
        return sm_error_set(err, SM_ERR_ARG,
                            "HKDF-%s can derive 1 to %zu bytes, not %zu (RFC 5869 limit)", digest,
                            255 * digest_len, out_len);
    if (mode != SM_HKDF_EXTRACT_AND_EXPAND && mode != SM_HKDF_EXPAND_ONLY)
        return sm_error_set(err, SM_ERR_ARG, "unknown HKDF mode %d", (int)mode);

    int openssl_mode = mode == SM_HKDF_EXPAND_ONLY ? EVP_KDF_HKDF_MODE_EXPAND_ONLY
                                                    : EVP_KDF_HKDF_MODE_EXTRACT_AND_EXPAND;
    /* The param API takes non-const pointers; OpenSSL copies and never writes them. */
    static uint8_t empty[1];
    OSSL_PARAM params[6], *p = params;
    *p++ = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)digest, 0);
    *p++ = OSSL_PARAM_construct_int(OSSL_KDF_PARAM_MODE, &openssl_mode);
    *p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY,
                                             ikm_len > 0 ? (void *)ikm : empty, ikm_len);
    if (mode == SM_HKDF_EXTRACT_AND_EXPAND && salt_len > 0)
        *p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)salt, salt_len);
    if (info_len > 0)
        *p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)info, info_len);
    *p = OSSL_PARAM_construct_end();

    EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
    EVP_KDF_CTX *kctx = kdf != NULL ? EVP_KDF_CTX_new(kdf) : NULL;
    int ok = kctx != NULL && EVP_KDF_derive(kctx, out, out_len, params) == 1;
    EVP_KDF_CTX_free(kctx);
    EVP_KDF_free(kdf);
    if (!ok) {
        sm_wipe(out, out_len);
        return sm_error_set(err, SM_ERR_CRYPTO,
                            "HKDF-%s failed inside OpenSSL (info of %zu bytes, output %zu bytes)",
                            digest, info_len, out_len);
    }
    return SM_OK;
}
