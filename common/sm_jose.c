#include "config.h"

/* Helpers shared by the JOSE files: strict compact splitting, canonical
 * base64url (cjose's decoder is lenient and asserts on some malformed
 * input, so nothing reaches it unchecked), strict JSON segments, the ES256
 * sign/verify core and syntax checks for kid and jti. */

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/rand.h>

#include "sm_jose_int.h"
#include "sm_json.h"

sm_status smj_split_compact(const char *compact, size_t len, size_t n, smj_segment *segs,
                            unsigned empty_ok, const char *what, sm_error *err)
{
    if (compact == NULL)
        return sm_error_set(err, SM_ERR_ARG, "%s: no token given", what);
    if (len > SM_JOSE_MAX_TOKEN)
        return sm_error_set(err, SM_ERR_TOO_LARGE, "%s: %zu bytes, the limit is %u", what, len,
                            SM_JOSE_MAX_TOKEN);
    if (len == 0)
        return sm_error_set(err, SM_ERR_FORMAT, "%s: empty token", what);
    size_t idx = 0, start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && compact[i] != '.')
            continue;
        if (idx == n)
            return sm_error_set(err, SM_ERR_FORMAT,
                                "%s: compact serialization must have exactly %zu parts", what, n);
        segs[idx].b64 = compact + start;
        segs[idx].len = i - start;
        if (segs[idx].len == 0 && !(empty_ok & (1u << idx)))
            return sm_error_set(err, SM_ERR_FORMAT, "%s: part %zu is empty", what, idx + 1);
        if (!sm_b64url_canonical(segs[idx].b64, segs[idx].len))
            return sm_error_set(err, SM_ERR_FORMAT,
                                "%s: part %zu is not canonical unpadded base64url", what, idx + 1);
        idx++;
        start = i + 1;
    }
    if (idx != n)
        return sm_error_set(err, SM_ERR_FORMAT,
                            "%s: compact serialization must have exactly %zu parts", what, n);
    return SM_OK;
}

sm_status smj_decode_json_segment(const smj_segment *seg, const char *what, json_t **out,
                                  sm_error *err)
{
    size_t cap = seg->len / 4 * 3 + 3, n = 0;
    uint8_t *buf = malloc(cap);
    if (buf == NULL)
        return sm_error_set(err, SM_ERR_NOMEM, "%s: out of memory", what);
    sm_status st = sm_b64url_decode(seg->b64, seg->len, buf, cap, &n, what, err);
    if (st == SM_OK)
        st = sm_json_parse_object(buf, n, SM_JOSE_MAX_TOKEN, what, out, err);
    free(buf);
    return st;
}

int64_t smj_now(int64_t now)
{
    return now != 0 ? now : (int64_t)time(NULL);
}

static int jti_char(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '_' || c == '.' || c == '~';
}

sm_status smj_check_jti(const char *jti, const char *what, sm_error *err)
{
    size_t n = strlen(jti);
    if (n < SM_JOSE_JTI_MIN || n > SM_JOSE_JTI_MAX)
        return sm_error_set(err, SM_ERR_CLAIM, "%s: jti must be %u to %u characters long", what,
                            SM_JOSE_JTI_MIN, SM_JOSE_JTI_MAX);
    for (size_t i = 0; i < n; i++) {
        if (!jti_char((unsigned char)jti[i]))
            return sm_error_set(err, SM_ERR_CLAIM,
                                "%s: jti may only contain A-Z a-z 0-9 and - _ . ~", what);
    }
    return SM_OK;
}

sm_status smj_check_kid(const char *kid, const char *what, sm_error *err)
{
    size_t n = strlen(kid);
    if (n == 0 || n > SM_JOSE_KID_MAX)
        return sm_error_set(err, SM_ERR_FORMAT, "%s: kid must be 1 to %u characters long", what,
                            SM_JOSE_KID_MAX);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)kid[i];
        if (c < 0x21 || c > 0x7e || c == '"' || c == '\\')
            return sm_error_set(err, SM_ERR_FORMAT,
                                "%s: kid may only contain printable ASCII without spaces, quotes "
                                "or backslashes",
                                what);
    }
    return SM_OK;
}

int smj_strcaseeq(const char *a, const char *b)
{
    for (;; a++, b++) {
        unsigned char ca = (unsigned char)*a, cb = (unsigned char)*b;
        if (ca >= 'A' && ca <= 'Z') ca = (unsigned char)(ca - 'A' + 'a');
        if (cb >= 'A' && cb <= 'Z') cb = (unsigned char)(cb - 'A' + 'a');
        if (ca != cb)
            return 0;
        if (ca == '\0')
            return 1;
    }
}

sm_status smj_cjose_error(sm_error *err, sm_status status, const char *what,
                          const cjose_err *cerr)
{
    if (cerr != NULL && cerr->code == CJOSE_ERR_NO_MEMORY)
        return sm_error_set(err, SM_ERR_NOMEM, "%s: out of memory", what);
    return sm_error_set(err, status, "%s: cjose failed (%s)", what,
                        cerr != NULL && cerr->message != NULL ? cerr->message : "unknown error");
}

sm_status sm_jose_random_jti(char out[23], sm_error *err)
{
    /* An identifier, not a secret: no locked memory needed (one is drawn
     * for every token and license). */
    uint8_t r[16];
    if (RAND_bytes(r, sizeof(r)) != 1)
        return sm_error_set(err, SM_ERR_CRYPTO, "jti: the random generator failed");
    return sm_b64url_encode(r, sizeof(r), out, 23, err);
}

/* ES256 core. The caller has already checked the header; cjose only signs
 * and verifies. */

sm_status smj_es256_sign(const sm_jwk *key, json_t *header, json_t *payload, char **compact_out,
                         sm_error *err)
{
    *compact_out = NULL;
    if (key->d == NULL)
        return sm_error_set(err, SM_ERR_KEY, "JWS: signing needs a private key");
    char *body = json_dumps(payload, JSON_COMPACT);
    if (body == NULL)
        return sm_error_set(err, SM_ERR_NOMEM, "JWS: cannot serialize the claims");
    cjose_err cerr;
    cjose_jws_t *jws = cjose_jws_sign(key->cj, (cjose_header_t *)header, (const uint8_t *)body,
                                      strlen(body), &cerr);
    free(body);
    if (jws == NULL)
        return smj_cjose_error(err, SM_ERR_CRYPTO, "JWS signing", &cerr);
    const char *ser = NULL;
    sm_status st = SM_OK;
    if (!cjose_jws_export(jws, &ser, &cerr) || ser == NULL) {
        st = smj_cjose_error(err, SM_ERR_CRYPTO, "JWS export", &cerr);
    } else if (strlen(ser) > SM_JOSE_MAX_TOKEN) {
        st = sm_error_set(err, SM_ERR_TOO_LARGE,
                          "JWS: the signed token would be %zu bytes, the limit is %u; send "
                          "fewer claims",
                          strlen(ser), SM_JOSE_MAX_TOKEN);
    } else if ((*compact_out = strdup(ser)) == NULL) {
        st = sm_error_set(err, SM_ERR_NOMEM, "JWS: out of memory");
    }
    cjose_jws_release(jws);
    return st;
}

sm_status smj_es256_verify(const char *compact, size_t len, const smj_segment segs[3],
                           const sm_jwk *key, const char *what, sm_error *err)
{
    /* cjose splits any signature length in two halves, so a DER signature
     * or zero-padded r||s would reach ECDSA: require exactly 64 bytes. */
    uint8_t sig[66];
    size_t sig_len = 0;
    if (sm_b64url_decode(segs[2].b64, segs[2].len, sig, sizeof(sig), &sig_len, what, err) !=
            SM_OK ||
        sig_len != 64)
        return sm_error_set(err, SM_ERR_AUTH,
                            "%s: the ES256 signature must be 64 bytes (r||s)", what);
    cjose_err cerr;
    cjose_jws_t *jws = cjose_jws_import(compact, len, &cerr);
    if (jws == NULL)
        return smj_cjose_error(err, SM_ERR_FORMAT, what, &cerr);
    int ok = cjose_jws_verify(jws, key->cj, &cerr);
    cjose_jws_release(jws);
    if (!ok)
        return sm_error_set(err, SM_ERR_AUTH,
                            "%s: the signature does not verify (altered token or wrong key)",
                            what);
    return SM_OK;
}
