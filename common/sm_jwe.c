#include "config.h"

/* The media-key JWE: ECDH-ES (direct key agreement) + A256GCM, compact.
 * Wrapping uses OpenSSL's primitives directly (see below); for unwrapping
 * cjose 0.6.2 does the ECDH, Concat KDF and GCM, and this file checks the
 * header and every part's size before cjose sees the token (cjose itself
 * accepts any IV length, any tag length before the CVE-2023-37464 fix, any
 * alg/enc it knows, and a "zip" member it then ignores). */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "sm_jose_int.h"
#include "sm_json.h"

#define SMJ_GCM_IV_LEN 12u
#define SMJ_GCM_TAG_LEN 16u

/* ---- wrapping, with OpenSSL ------------------------------------------------
 *
 * cjose's encrypt path re-derives the curve group several times, checks the
 * recipient's point again with a full scalar multiplication (OpenSSL's
 * EVP_PKEY_derive_set_peer public check) and parses its own header back:
 * about 300 µs, three times the ECDH itself. The key server wraps a media
 * key on every license, so this file builds the JWE directly from the
 * primitives of RFC 7518 §4.6 (ephemeral P-256 key, ECDH, Concat KDF with
 * SHA-256) and §5.3 (A256GCM); the recipient's point was validated when
 * the sm_jwk was made. Unwrapping (devices, the CLI) stays with cjose, and
 * the interop tests check both directions against jwcrypto. */

#define SMJ_ENC "A256GCM"

/* RFC 7518 §4.6.2 Concat KDF for one SHA-256 block: the 256-bit CEK for
 * direct key agreement with enc A256GCM and no apu/apv. */
static int concat_kdf(const uint8_t z[SMJ_COORD_LEN], uint8_t cek[SM_JWE_KEY_LEN])
{
    static const uint8_t counter[4] = {0, 0, 0, 1};
    static const uint8_t alg_id[4 + 7] = {0, 0, 0, 7, 'A', '2', '5', '6', 'G', 'C', 'M'};
    static const uint8_t party_infos[8] = {0, 0, 0, 0, 0, 0, 0, 0}; /* apu, apv: empty */
    static const uint8_t supp_pub[4] = {0, 0, 1, 0};                 /* 256 bits */
    unsigned int n = 0;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    int ok = md != NULL && EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1 &&
             EVP_DigestUpdate(md, counter, sizeof(counter)) == 1 &&
             EVP_DigestUpdate(md, z, SMJ_COORD_LEN) == 1 &&
             EVP_DigestUpdate(md, alg_id, sizeof(alg_id)) == 1 &&
             EVP_DigestUpdate(md, party_infos, sizeof(party_infos)) == 1 &&
             EVP_DigestUpdate(md, supp_pub, sizeof(supp_pub)) == 1 &&
             EVP_DigestFinal_ex(md, cek, &n) == 1 && n == SM_JWE_KEY_LEN;
    EVP_MD_CTX_free(md);
    return ok;
}

/* A fresh key on the recipient's curve and the ECDH shared secret with the
 * recipient; the ephemeral public coordinates go to ex/ey. */
static sm_status ephemeral_agree(EVP_PKEY *recipient, uint8_t ex[SMJ_COORD_LEN],
                                 uint8_t ey[SMJ_COORD_LEN], uint8_t z[SMJ_COORD_LEN],
                                 sm_error *err)
{
    sm_status st = SM_ERR_CRYPTO;
    EVP_PKEY *eph = NULL;
    EVP_PKEY_CTX *gen = EVP_PKEY_CTX_new(recipient, NULL), *dh = NULL;
    uint8_t point[1 + 2 * SMJ_COORD_LEN];
    size_t zlen = SMJ_COORD_LEN, plen = 0;
    if (gen == NULL || EVP_PKEY_keygen_init(gen) != 1 || EVP_PKEY_keygen(gen, &eph) != 1)
        goto out;
    /* The uncompressed point in one export (x and y one by one would
     * convert to affine coordinates twice). */
    if (EVP_PKEY_get_octet_string_param(eph, OSSL_PKEY_PARAM_PUB_KEY, point, sizeof(point),
                                        &plen) != 1 ||
        plen != sizeof(point) || point[0] != 0x04)
        goto out;
    memcpy(ex, point + 1, SMJ_COORD_LEN);
    memcpy(ey, point + 1 + SMJ_COORD_LEN, SMJ_COORD_LEN);
    /* The recipient's point was validated when its sm_jwk was made (on the
     * curve, not infinity; P-256 has cofactor 1): no second check. */
    if ((dh = EVP_PKEY_CTX_new(eph, NULL)) == NULL || EVP_PKEY_derive_init(dh) != 1 ||
        EVP_PKEY_derive_set_peer_ex(dh, recipient, 0) != 1 ||
        EVP_PKEY_derive(dh, z, &zlen) != 1 || zlen != SMJ_COORD_LEN)
        goto out;
    st = SM_OK;
out:
    EVP_PKEY_CTX_free(dh);
    EVP_PKEY_CTX_free(gen);
    EVP_PKEY_free(eph); /* OpenSSL clears the private scalar */
    if (st != SM_OK) {
        sm_wipe(z, SMJ_COORD_LEN);
        return sm_error_set(err, SM_ERR_CRYPTO, "JWE: the ECDH key agreement failed");
    }
    return SM_OK;
}

static int gcm_seal(const uint8_t cek[SM_JWE_KEY_LEN], const uint8_t iv[SMJ_GCM_IV_LEN],
                    const char *aad, size_t aad_len, const uint8_t *plain, size_t plain_len,
                    uint8_t *cipher, uint8_t tag[SMJ_GCM_TAG_LEN])
{
    int n = 0, fin = 0;
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    int ok = c != NULL && EVP_EncryptInit_ex(c, EVP_aes_256_gcm(), NULL, NULL, NULL) == 1 &&
             EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_IVLEN, SMJ_GCM_IV_LEN, NULL) == 1 &&
             EVP_EncryptInit_ex(c, NULL, NULL, cek, iv) == 1 &&
             EVP_EncryptUpdate(c, NULL, &n, (const uint8_t *)aad, (int)aad_len) == 1 &&
             EVP_EncryptUpdate(c, cipher, &n, plain, (int)plain_len) == 1 &&
             (size_t)n == plain_len && EVP_EncryptFinal_ex(c, cipher + n, &fin) == 1 &&
             fin == 0 && EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, SMJ_GCM_TAG_LEN, tag) == 1;
    EVP_CIPHER_CTX_free(c);
    return ok;
}

/* base64url of n bytes: 4 * ceil(n / 3) at most, plus NUL. */
#define B64_SIZE(n) (((n) + 2) / 3 * 4 + 1)

struct sm_jwe_sealer {
    uint8_t cek[SM_JWE_KEY_LEN]; /* from the key agreement */
    char header64[B64_SIZE(160 + SM_JOSE_KID_MAX + 2 * SMJ_COORD_B64_LEN)];
};

sm_status sm_jwe_sealer_new(const sm_jwk *recipient, const char *kid_or_null,
                            sm_jwe_sealer **out, sm_error *err)
{
    if (out == NULL)
        return sm_error_set(err, SM_ERR_ARG, "JWE: no output given");
    *out = NULL;
    if (recipient == NULL)
        return sm_error_set(err, SM_ERR_ARG, "JWE: a recipient key is needed");
    sm_status st;
    if (kid_or_null != NULL && (st = smj_check_kid(kid_or_null, "JWE", err)) != SM_OK)
        return st;
    EVP_PKEY *peer = smj_jwk_public_pkey(recipient);
    if (peer == NULL)
        return sm_error_set(err, SM_ERR_CRYPTO, "JWE: OpenSSL cannot use the recipient key");
    /* The content key lives in the secure heap, like every key. */
    sm_jwe_sealer *s = OPENSSL_secure_zalloc(sizeof(*s));
    if (s == NULL)
        return sm_error_set(err, SM_ERR_NOMEM, "JWE: out of memory");

    uint8_t ex[SMJ_COORD_LEN], ey[SMJ_COORD_LEN], z[SMJ_COORD_LEN];
    if ((st = ephemeral_agree(peer, ex, ey, z, err)) != SM_OK) {
        sm_jwe_sealer_free(s);
        return st;
    }
    int kdf_ok = concat_kdf(z, s->cek);
    sm_wipe(z, sizeof(z));
    if (!kdf_ok) {
        sm_jwe_sealer_free(s);
        return sm_error_set(err, SM_ERR_CRYPTO, "JWE: the Concat KDF failed");
    }
    /* The protected header, by hand: every value is base64url or a kid
     * whose syntax (smj_check_kid) needs no JSON escaping. */
    char ex64[SMJ_COORD_B64_LEN + 1], ey64[SMJ_COORD_B64_LEN + 1];
    char header[160 + SM_JOSE_KID_MAX + 2 * SMJ_COORD_B64_LEN];
    int hn = -1;
    if (sm_b64url_encode(ex, sizeof(ex), ex64, sizeof(ex64), NULL) == SM_OK &&
        sm_b64url_encode(ey, sizeof(ey), ey64, sizeof(ey64), NULL) == SM_OK)
        hn = snprintf(header, sizeof(header),
                      "{\"alg\":\"ECDH-ES\",\"enc\":\"" SMJ_ENC "\"%s%s%s,\"epk\":{\"kty\":\"EC\","
                      "\"crv\":\"P-256\",\"x\":\"%s\",\"y\":\"%s\"}}",
                      kid_or_null != NULL ? ",\"kid\":\"" : "",
                      kid_or_null != NULL ? kid_or_null : "", kid_or_null != NULL ? "\"" : "",
                      ex64, ey64);
    if (hn < 0 || (size_t)hn >= sizeof(header) ||
        sm_b64url_encode((const uint8_t *)header, (size_t)hn, s->header64, sizeof(s->header64),
                         NULL) != SM_OK) {
        sm_jwe_sealer_free(s);
        return sm_error_set(err, SM_ERR_CRYPTO, "JWE: the header does not fit");
    }
    *out = s;
    return SM_OK;
}

sm_status sm_jwe_sealer_seal(const sm_jwe_sealer *s, const sm_secret *key, char **compact_out,
                             sm_error *err)
{
    if (compact_out == NULL)
        return sm_error_set(err, SM_ERR_ARG, "JWE: no output given");
    *compact_out = NULL;
    if (s == NULL || key == NULL || key->bytes == NULL)
        return sm_error_set(err, SM_ERR_ARG, "JWE: a sealer and a media key are needed");
    if (key->len != SM_JWE_KEY_LEN)
        return sm_error_set(err, SM_ERR_KEY, "JWE: the media key must be %u bytes, not %zu",
                            SM_JWE_KEY_LEN, key->len);
    uint8_t iv[SMJ_GCM_IV_LEN], ct[SM_JWE_KEY_LEN], tag[SMJ_GCM_TAG_LEN];
    char iv64[B64_SIZE(SMJ_GCM_IV_LEN)], ct64[B64_SIZE(SM_JWE_KEY_LEN)];
    char tag64[B64_SIZE(SMJ_GCM_TAG_LEN)];
    sm_status st = SM_ERR_CRYPTO;
    /* A fresh IV per seal: a content key never meets one IV twice. */
    if (RAND_bytes(iv, sizeof(iv)) != 1 ||
        !gcm_seal(s->cek, iv, s->header64, strlen(s->header64), key->bytes, key->len, ct, tag) ||
        sm_b64url_encode(iv, sizeof(iv), iv64, sizeof(iv64), NULL) != SM_OK ||
        sm_b64url_encode(ct, sizeof(ct), ct64, sizeof(ct64), NULL) != SM_OK ||
        sm_b64url_encode(tag, sizeof(tag), tag64, sizeof(tag64), NULL) != SM_OK) {
        st = sm_error_set(err, SM_ERR_CRYPTO, "JWE: encryption failed");
        goto out;
    }
    /* header . (empty encrypted key) . iv . ciphertext . tag */
    size_t total = strlen(s->header64) + 2 + strlen(iv64) + 1 + strlen(ct64) + 1 + strlen(tag64);
    char *compact = malloc(total + 1);
    if (compact == NULL) {
        st = sm_error_set(err, SM_ERR_NOMEM, "JWE: out of memory");
        goto out;
    }
    snprintf(compact, total + 1, "%s..%s.%s.%s", s->header64, iv64, ct64, tag64);
    *compact_out = compact;
    st = SM_OK;
out:
    sm_wipe(ct, sizeof(ct));
    return st;
}

void sm_jwe_sealer_free(sm_jwe_sealer *s)
{
    if (s != NULL)
        OPENSSL_secure_clear_free(s, sizeof(*s));
}

sm_status sm_jwe_wrap_key(const sm_jwk *recipient, const sm_secret *key, const char *kid_or_null,
                          char **compact_out, sm_error *err)
{
    if (compact_out == NULL)
        return sm_error_set(err, SM_ERR_ARG, "JWE: no output given");
    *compact_out = NULL;
    sm_jwe_sealer *s = NULL;
    sm_status st = sm_jwe_sealer_new(recipient, kid_or_null, &s, err);
    if (st == SM_OK)
        st = sm_jwe_sealer_seal(s, key, compact_out, err);
    sm_jwe_sealer_free(s);
    return st;
}

static sm_status check_part_len(const smj_segment *seg, size_t expected, const char *name,
                                sm_error *err)
{
    uint8_t buf[64];
    size_t n = 0;
    if (sm_b64url_decode(seg->b64, seg->len, buf, sizeof(buf), &n, "JWE", NULL) != SM_OK ||
        n != expected)
        return sm_error_set(err, SM_ERR_FORMAT, "JWE: the %s must be %zu bytes", name, expected);
    return SM_OK;
}

sm_status sm_jwe_unwrap_key_kid(const sm_jwk *recipient_private, const char *compact,
                                size_t len, sm_secret **key_out,
                                char kid_out[SM_JOSE_KID_MAX + 1], sm_error *err)
{
    static const sm_json_field header_fields[] = {{"alg", SM_JSON_STRING, 1},
                                                  {"enc", SM_JSON_STRING, 1},
                                                  {"epk", SM_JSON_OBJECT, 1},
                                                  {"kid", SM_JSON_STRING, 0},
                                                  {NULL, 0, 0}};
    if (key_out == NULL)
        return sm_error_set(err, SM_ERR_ARG, "JWE: no output given");
    *key_out = NULL;
    if (kid_out != NULL)
        kid_out[0] = '\0';
    if (recipient_private == NULL)
        return sm_error_set(err, SM_ERR_ARG, "JWE: no device key given");
    if (recipient_private->d == NULL)
        return sm_error_set(err, SM_ERR_KEY,
                            "JWE: unwrapping needs the device's private key, not its public key");

    /* header . encrypted key (empty for ECDH-ES) . iv . ciphertext . tag */
    smj_segment segs[5];
    sm_status st = smj_split_compact(compact, len, 5, segs, 1u << 1, "JWE", err);
    if (st != SM_OK)
        return st;
    json_t *header = NULL;
    sm_jwk *epk = NULL;
    if ((st = smj_decode_json_segment(&segs[0], "JWE header", &header, err)) != SM_OK)
        return st;
    json_t *alg = json_object_get(header, "alg"), *enc = json_object_get(header, "enc");
    if (!json_is_string(alg) || strcmp(json_string_value(alg), "ECDH-ES") != 0 ||
        json_string_length(alg) != 7) {
        st = sm_error_set(err, SM_ERR_UNSUPPORTED,
                          "JWE: alg must be \"ECDH-ES\"; other key management is refused");
        goto out;
    }
    if (!json_is_string(enc) || strcmp(json_string_value(enc), "A256GCM") != 0 ||
        json_string_length(enc) != 7) {
        st = sm_error_set(err, SM_ERR_UNSUPPORTED,
                          "JWE: enc must be \"A256GCM\"; other content encryption is refused");
        goto out;
    }
    if (json_object_get(header, "zip") != NULL) {
        st = sm_error_set(err, SM_ERR_UNSUPPORTED, "JWE: compressed (zip) content is refused");
        goto out;
    }
    if (json_object_get(header, "crit") != NULL) {
        st = sm_error_set(err, SM_ERR_UNSUPPORTED,
                          "JWE: the header has \"crit\"; no critical extensions are supported");
        goto out;
    }
    if ((st = sm_json_check_fields(header, header_fields, "JWE header", err)) != SM_OK)
        goto out;
    const char *kid = NULL;
    if ((st = sm_json_get_string(header, "kid", SM_JOSE_KID_MAX, 0, &kid, "JWE header", err)) !=
            SM_OK ||
        (kid != NULL && (st = smj_check_kid(kid, "JWE header", err)) != SM_OK))
        goto out;
    /* The ephemeral key must be a valid P-256 point: the invalid-curve
     * defence does not rest on cjose alone. */
    if ((st = smj_jwk_from_object(json_object_get(header, "epk"), 0, "JWE epk", &epk, err)) !=
        SM_OK)
        goto out;
    if (segs[1].len != 0) {
        st = sm_error_set(err, SM_ERR_FORMAT,
                          "JWE: the encrypted key must be empty with ECDH-ES direct agreement");
        goto out;
    }
    if ((st = check_part_len(&segs[2], SMJ_GCM_IV_LEN, "IV", err)) != SM_OK ||
        (st = check_part_len(&segs[3], SM_JWE_KEY_LEN, "ciphertext", err)) != SM_OK ||
        (st = check_part_len(&segs[4], SMJ_GCM_TAG_LEN, "authentication tag", err)) != SM_OK)
        goto out;

    cjose_err cerr;
    cjose_jwe_t *jwe = cjose_jwe_import(compact, len, &cerr);
    if (jwe == NULL) {
        st = smj_cjose_error(err, SM_ERR_FORMAT, "JWE", &cerr);
        goto out;
    }
    size_t plen = 0;
    uint8_t *plain = cjose_jwe_decrypt(jwe, recipient_private->cj, &plen, &cerr);
    cjose_jwe_release(jwe);
    if (plain == NULL) {
        st = sm_error_set(err, SM_ERR_AUTH,
                          "JWE: cannot decrypt the media key: it was made for another device "
                          "key or it was altered");
        goto out;
    }
    if (plen == SM_JWE_KEY_LEN && (*key_out = sm_secret_from(plain, plen)) == NULL)
        st = sm_error_set(err, SM_ERR_NOMEM, "JWE: out of memory");
    else if (plen != SM_JWE_KEY_LEN)
        st = sm_error_set(err, SM_ERR_FORMAT, "JWE: the media key must be %u bytes",
                          SM_JWE_KEY_LEN);
    sm_wipe(plain, plen);
    cjose_get_dealloc()(plain);
    if (st == SM_OK && kid_out != NULL && kid != NULL)
        memcpy(kid_out, kid, strlen(kid) + 1);
out:
    sm_jwk_free(epk);
    json_decref(header);
    return st;
}

sm_status sm_jwe_unwrap_key(const sm_jwk *recipient_private, const char *compact, size_t len,
                            sm_secret **key_out, sm_error *err)
{
    return sm_jwe_unwrap_key_kid(recipient_private, compact, len, key_out, NULL, err);
}
