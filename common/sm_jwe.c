#include "config.h"

/* The media-key JWE: ECDH-ES (direct key agreement) + A256GCM, compact.
 * cjose 0.6.2 does the ECDH, Concat KDF and GCM; this file checks the
 * header and every part's size before cjose sees the token (cjose itself
 * accepts any IV length, any tag length before the CVE-2023-37464 fix, any
 * alg/enc it knows, and a "zip" member it then ignores). */

#include <stdlib.h>
#include <string.h>

#include "sm_jose_int.h"
#include "sm_json.h"

#define SMJ_GCM_IV_LEN 12u
#define SMJ_GCM_TAG_LEN 16u

sm_status sm_jwe_wrap_key(const sm_jwk *recipient, const sm_secret *key, const char *kid_or_null,
                          char **compact_out, sm_error *err)
{
    if (compact_out == NULL)
        return sm_error_set(err, SM_ERR_ARG, "JWE: no output given");
    *compact_out = NULL;
    if (recipient == NULL || key == NULL || key->bytes == NULL)
        return sm_error_set(err, SM_ERR_ARG, "JWE: a recipient key and a media key are needed");
    if (key->len != SM_JWE_KEY_LEN)
        return sm_error_set(err, SM_ERR_KEY, "JWE: the media key must be %u bytes, not %zu",
                            SM_JWE_KEY_LEN, key->len);
    sm_status st;
    if (kid_or_null != NULL && (st = smj_check_kid(kid_or_null, "JWE", err)) != SM_OK)
        return st;
    json_t *header = json_pack("{s:s,s:s}", "alg", "ECDH-ES", "enc", "A256GCM");
    if (header == NULL ||
        (kid_or_null != NULL && json_object_set_new(header, "kid", json_string(kid_or_null)))) {
        json_decref(header);
        return sm_error_set(err, SM_ERR_NOMEM, "JWE: out of memory");
    }
    cjose_err cerr;
    cjose_jwe_t *jwe =
        cjose_jwe_encrypt(recipient->cj, (cjose_header_t *)header, key->bytes, key->len, &cerr);
    json_decref(header);
    if (jwe == NULL)
        return smj_cjose_error(err, SM_ERR_CRYPTO, "JWE encryption", &cerr);
    char *ser = cjose_jwe_export(jwe, &cerr);
    cjose_jwe_release(jwe);
    if (ser == NULL)
        return smj_cjose_error(err, SM_ERR_CRYPTO, "JWE export", &cerr);
    *compact_out = strdup(ser);
    cjose_get_dealloc()(ser);
    if (*compact_out == NULL)
        return sm_error_set(err, SM_ERR_NOMEM, "JWE: out of memory");
    return SM_OK;
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
