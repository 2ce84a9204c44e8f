#include "config.h"

/* DPoP-style proofs after RFC 9449: a JWS made with the device key over the
 * request method and URL, a time and a unique id, with the public device
 * key in the header. Checked like every JWS here: alg first, no unknown
 * header members or claims. */

#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "sm_jose_int.h"
#include "sm_json.h"

#define SMJ_HTM_MAX 16u
#define SMJ_HTU_MAX 2048u
#define SMJ_MAX_WINDOW 86400
#define SMJ_ATH_LEN 43u

void sm_dpop_expect_init(sm_dpop_expect *e, const char *htm, const char *htu)
{
    memset(e, 0, sizeof(*e));
    e->htm = htm;
    e->htu = htu;
    e->max_age = -1;
    e->max_skew = -1;
}

/* ---- htu comparison ----------------------------------------------------- */

typedef struct url_parts {
    int https;
    const char *host;
    size_t host_len;
    unsigned port;
    const char *path;
    size_t path_len;
} url_parts;

static int lower(int c)
{
    return c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c;
}

static int is_hex(int c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* Splits an absolute http(s) URL; refuses userinfo, controls, spaces and
 * non-ASCII (URLs on the wire are percent-encoded). */
static int parse_url(const char *s, url_parts *u)
{
    size_t n = strlen(s);
    if (n == 0 || n > SMJ_HTU_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= 0x20 || c >= 0x7f)
            return 0;
    }
    const char *p;
    if (n >= 8 && lower(s[0]) == 'h' && lower(s[1]) == 't' && lower(s[2]) == 't' &&
        lower(s[3]) == 'p' && lower(s[4]) == 's' && memcmp(s + 5, "://", 3) == 0) {
        u->https = 1;
        p = s + 8;
    } else if (n >= 7 && lower(s[0]) == 'h' && lower(s[1]) == 't' && lower(s[2]) == 't' &&
               lower(s[3]) == 'p' && memcmp(s + 4, "://", 3) == 0) {
        u->https = 0;
        p = s + 7;
    } else {
        return 0;
    }
    const char *auth_end = p + strcspn(p, "/?#");
    const char *host_end;
    if (memchr(p, '@', (size_t)(auth_end - p)) != NULL)
        return 0;
    if (*p == '[') {
        const char *close = memchr(p, ']', (size_t)(auth_end - p));
        if (close == NULL)
            return 0;
        host_end = close + 1;
    } else {
        host_end = memchr(p, ':', (size_t)(auth_end - p));
        if (host_end == NULL)
            host_end = auth_end;
    }
    u->host = p;
    u->host_len = (size_t)(host_end - p);
    if (u->host_len == 0)
        return 0;
    u->port = u->https ? 443 : 80;
    if (host_end < auth_end) {
        if (*host_end != ':')
            return 0;
        const char *q = host_end + 1;
        if (q < auth_end) {
            unsigned port = 0;
            if (auth_end - q > 5)
                return 0;
            for (; q < auth_end; q++) {
                if (*q < '0' || *q > '9')
                    return 0;
                port = port * 10 + (unsigned)(*q - '0');
            }
            if (port == 0 || port > 65535)
                return 0;
            u->port = port;
        }
    }
    u->path = auth_end;
    u->path_len = strcspn(auth_end, "?#");
    return 1;
}

static int path_equal(const char *a, size_t an, const char *b, size_t bn)
{
    /* An empty path is "/" (RFC 3986 §6.2.3); %xx hex digits compare
     * case-insensitively (§6.2.2.1); everything else byte for byte. */
    if (an == 0) {
        a = "/";
        an = 1;
    }
    if (bn == 0) {
        b = "/";
        bn = 1;
    }
    if (an != bn)
        return 0;
    for (size_t i = 0; i < an; i++) {
        if (a[i] == '%' && b[i] == '%' && i + 2 < an && is_hex(a[i + 1]) && is_hex(a[i + 2]) &&
            is_hex(b[i + 1]) && is_hex(b[i + 2])) {
            if (lower(a[i + 1]) != lower(b[i + 1]) || lower(a[i + 2]) != lower(b[i + 2]))
                return 0;
            i += 2;
            continue;
        }
        if (a[i] != b[i])
            return 0;
    }
    return 1;
}

int sm_dpop_htu_equal(const char *a, const char *b)
{
    url_parts ua, ub;
    if (a == NULL || b == NULL || !parse_url(a, &ua) || !parse_url(b, &ub))
        return 0;
    if (ua.https != ub.https || ua.port != ub.port || ua.host_len != ub.host_len)
        return 0;
    for (size_t i = 0; i < ua.host_len; i++) {
        if (lower(ua.host[i]) != lower(ub.host[i]))
            return 0;
    }
    return path_equal(ua.path, ua.path_len, ub.path, ub.path_len);
}

/* ---- proofs ------------------------------------------------------------- */

static int is_tchar(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static sm_status check_htm(const char *htm, sm_error *err)
{
    size_t n = strlen(htm);
    if (n == 0 || n > SMJ_HTM_MAX)
        return sm_error_set(err, SM_ERR_ARG, "DPoP: htm must be an HTTP method name");
    for (size_t i = 0; i < n; i++) {
        if (!is_tchar((unsigned char)htm[i]))
            return sm_error_set(err, SM_ERR_ARG, "DPoP: htm must be an HTTP method name");
    }
    return SM_OK;
}

static sm_status access_token_hash(const char *token, char out[SMJ_ATH_LEN + 1], sm_error *err)
{
    uint8_t digest[32];
    unsigned int dlen = 0;
    if (EVP_Digest(token, strlen(token), digest, &dlen, EVP_sha256(), NULL) != 1 ||
        dlen != sizeof(digest))
        return sm_error_set(err, SM_ERR_CRYPTO, "DPoP: SHA-256 failed");
    return sm_b64url_encode(digest, sizeof(digest), out, SMJ_ATH_LEN + 1, err);
}

sm_status sm_dpop_create(const sm_jwk *device_key, const char *htm, const char *htu, int64_t now,
                         const char *jti_or_null, const char *access_token_or_null,
                         char **proof_out, sm_error *err)
{
    if (proof_out == NULL)
        return sm_error_set(err, SM_ERR_ARG, "DPoP: no output given");
    *proof_out = NULL;
    if (device_key == NULL || htm == NULL || htu == NULL)
        return sm_error_set(err, SM_ERR_ARG, "DPoP: a device key, htm and htu are needed");
    if (device_key->d == NULL)
        return sm_error_set(err, SM_ERR_KEY, "DPoP: a proof needs the device's private key");
    if (now < 0 || now > SMJ_MAX_NUMERIC_DATE)
        return sm_error_set(err, SM_ERR_ARG, "DPoP: now must be a date before the year 10000");
    sm_status st = check_htm(htm, err);
    if (st != SM_OK)
        return st;
    url_parts u;
    if (!parse_url(htu, &u))
        return sm_error_set(err, SM_ERR_ARG,
                            "DPoP: htu must be an absolute http(s) URL without userinfo, at "
                            "most %u bytes",
                            SMJ_HTU_MAX);
    char jti[SM_JOSE_JTI_MAX + 1];
    if (jti_or_null != NULL) {
        if ((st = smj_check_jti(jti_or_null, "DPoP", err)) != SM_OK)
            return st;
        memcpy(jti, jti_or_null, strlen(jti_or_null) + 1);
    } else if ((st = sm_jose_random_jti(jti, err)) != SM_OK) {
        return st;
    }
    /* RFC 9449 §4.2: htu without query and fragment. */
    size_t htu_len = (size_t)(u.path + u.path_len - htu);
    json_t *jwk = smj_jwk_public_object(device_key, 0);
    json_t *header = jwk != NULL ? json_pack("{s:s,s:s,s:o}", "typ", "dpop+jwt", "alg", "ES256",
                                             "jwk", jwk)
                                 : NULL;
    json_t *claims = json_pack("{s:s,s:s,s:s%,s:I}", "jti", jti, "htm", htm, "htu", htu, htu_len,
                               "iat", (json_int_t)smj_now(now));
    if (header == NULL || claims == NULL) {
        st = sm_error_set(err, SM_ERR_NOMEM, "DPoP: out of memory");
        goto out;
    }
    if (access_token_or_null != NULL) {
        char ath[SMJ_ATH_LEN + 1];
        if ((st = access_token_hash(access_token_or_null, ath, err)) != SM_OK)
            goto out;
        if (json_object_set_new(claims, "ath", json_string(ath)) != 0) {
            st = sm_error_set(err, SM_ERR_NOMEM, "DPoP: out of memory");
            goto out;
        }
    }
    st = smj_es256_sign(device_key, header, claims, proof_out, err);
out:
    json_decref(header);
    json_decref(claims);
    return st;
}

sm_status sm_dpop_verify(const char *proof, size_t len, const sm_dpop_expect *expect,
                         sm_dpop_result *out, sm_error *err)
{
    return sm_dpop_verify_key(proof, len, expect, out, NULL, err);
}

sm_status sm_dpop_verify_key(const char *proof, size_t len, const sm_dpop_expect *expect,
                             sm_dpop_result *out, sm_jwk **key_out, sm_error *err)
{
    static const sm_json_field header_fields[] = {{"typ", SM_JSON_STRING, 1},
                                                  {"alg", SM_JSON_STRING, 1},
                                                  {"jwk", SM_JSON_OBJECT, 1},
                                                  {NULL, 0, 0}};
    static const sm_json_field claim_fields[] = {
        {"jti", SM_JSON_STRING, 1}, {"htm", SM_JSON_STRING, 1}, {"htu", SM_JSON_STRING, 1},
        {"iat", SM_JSON_INTEGER, 1}, {"ath", SM_JSON_STRING, 0}, {NULL, 0, 0}};
    if (key_out != NULL)
        *key_out = NULL;
    if (out == NULL)
        return sm_error_set(err, SM_ERR_ARG, "DPoP: no output given");
    memset(out, 0, sizeof(*out));
    if (expect == NULL || expect->htm == NULL || expect->htu == NULL)
        return sm_error_set(err, SM_ERR_ARG, "DPoP: the expected htm and htu are needed");
    if (expect->now < 0 || expect->now > SMJ_MAX_NUMERIC_DATE ||
        expect->max_age > SMJ_MAX_WINDOW || expect->max_skew > SMJ_MAX_WINDOW)
        return sm_error_set(err, SM_ERR_ARG,
                            "DPoP: now must be a date before the year 10000, max_age and "
                            "max_skew <= %d s",
                            SMJ_MAX_WINDOW);

    smj_segment segs[3];
    sm_status st = smj_split_compact(proof, len, 3, segs, 0, "DPoP proof", err);
    if (st != SM_OK)
        return st;
    json_t *header = NULL, *claims = NULL;
    sm_jwk *key = NULL;
    if ((st = smj_decode_json_segment(&segs[0], "DPoP proof header", &header, err)) != SM_OK)
        return st;
    json_t *alg = json_object_get(header, "alg");
    if (!json_is_string(alg) || strcmp(json_string_value(alg), "ES256") != 0 ||
        json_string_length(alg) != 5) {
        st = sm_error_set(err, SM_ERR_UNSUPPORTED,
                          "DPoP proof: alg must be \"ES256\"; none, HMAC and other algorithms "
                          "are refused");
        goto out;
    }
    if (json_object_get(header, "crit") != NULL) {
        st = sm_error_set(err, SM_ERR_UNSUPPORTED,
                          "DPoP proof: the header has \"crit\"; no critical extensions are "
                          "supported");
        goto out;
    }
    if ((st = sm_json_check_fields(header, header_fields, "DPoP proof header", err)) != SM_OK)
        goto out;
    json_t *typ = json_object_get(header, "typ");
    if (!smj_strcaseeq(json_string_value(typ), "dpop+jwt") ||
        strlen(json_string_value(typ)) != json_string_length(typ)) {
        st = sm_error_set(err, SM_ERR_CLAIM, "DPoP proof: typ must be \"dpop+jwt\"");
        goto out;
    }
    json_t *jwk = json_object_get(header, "jwk");
    if (json_object_get(jwk, "d") != NULL) {
        st = sm_error_set(err, SM_ERR_KEY,
                          "DPoP proof: the embedded jwk holds a private key; a proof must carry "
                          "the public key only (and that private key must now be replaced)");
        goto out;
    }
    /* A device that comes back is found in the key cache: its point was
     * validated and its thumbprint computed when it was first seen. */
    if ((st = smj_jwk_from_object_cached(jwk, "DPoP proof jwk", &key, out->jkt, err)) != SM_OK)
        goto out;
    if ((st = smj_es256_verify(proof, len, segs, key, "DPoP proof", err)) != SM_OK)
        goto out;
    if (expect->jkt != NULL &&
        (strlen(expect->jkt) != SM_JKT_SIZE - 1 ||
         !sm_ct_equal(expect->jkt, out->jkt, SM_JKT_SIZE - 1))) {
        st = sm_error_set(err, SM_ERR_KEY,
                          "DPoP proof: signed with another device key than the one this request "
                          "is bound to (jkt)");
        goto out;
    }

    if ((st = smj_decode_json_segment(&segs[1], "DPoP proof claims", &claims, err)) != SM_OK)
        goto out;
    if ((st = sm_json_check_fields(claims, claim_fields, "DPoP proof claims", err)) != SM_OK) {
        st = err != NULL ? (err->status = SM_ERR_CLAIM) : SM_ERR_CLAIM;
        goto out;
    }
    const char *jti = NULL, *htm = NULL, *htu = NULL, *ath = NULL;
    uint64_t iat = 0;
    if (sm_json_get_string(claims, "jti", SM_JOSE_JTI_MAX, 1, &jti, "DPoP proof", err) != SM_OK ||
        sm_json_get_string(claims, "htm", SMJ_HTM_MAX, 1, &htm, "DPoP proof", err) != SM_OK ||
        sm_json_get_string(claims, "htu", SMJ_HTU_MAX, 1, &htu, "DPoP proof", err) != SM_OK ||
        sm_json_get_string(claims, "ath", SMJ_ATH_LEN, 0, &ath, "DPoP proof", err) != SM_OK ||
        sm_json_get_uint64(claims, "iat", (uint64_t)SMJ_MAX_NUMERIC_DATE, 1, &iat, "DPoP proof",
                           err) != SM_OK) {
        st = err != NULL ? (err->status = SM_ERR_CLAIM) : SM_ERR_CLAIM;
        goto out;
    }
    if ((st = smj_check_jti(jti, "DPoP proof", err)) != SM_OK)
        goto out;
    if (strcmp(htm, expect->htm) != 0) {
        st = sm_error_set(err, SM_ERR_CLAIM,
                          "DPoP proof: made for another HTTP method (htm) than this request");
        goto out;
    }
    if (!sm_dpop_htu_equal(htu, expect->htu)) {
        st = sm_error_set(err, SM_ERR_CLAIM,
                          "DPoP proof: made for another URL (htu) than this request");
        goto out;
    }
    int64_t now = smj_now(expect->now);
    int64_t max_age = expect->max_age < 0 ? SM_DPOP_DEFAULT_MAX_AGE : expect->max_age;
    int64_t skew = expect->max_skew < 0 ? SM_JOSE_DEFAULT_SKEW : expect->max_skew;
    if ((int64_t)iat > now + skew) {
        st = sm_error_set(err, SM_ERR_EXPIRED,
                          "DPoP proof: made in the future (iat); check the device's clock");
        goto out;
    }
    if ((int64_t)iat < now - max_age) {
        st = sm_error_set(err, SM_ERR_EXPIRED,
                          "DPoP proof: too old (iat more than %lld s ago); make a new proof for "
                          "each request",
                          (long long)max_age);
        goto out;
    }
    if (expect->access_token != NULL) {
        char want[SMJ_ATH_LEN + 1];
        if ((st = access_token_hash(expect->access_token, want, err)) != SM_OK)
            goto out;
        if (ath == NULL || strlen(ath) != SMJ_ATH_LEN || !sm_ct_equal(ath, want, SMJ_ATH_LEN)) {
            st = sm_error_set(err, SM_ERR_CLAIM,
                              "DPoP proof: ath does not match the access token sent with it");
            goto out;
        }
    } else if (ath != NULL) {
        st = sm_error_set(err, SM_ERR_CLAIM,
                          "DPoP proof: has ath but no access token came with the request");
        goto out;
    }
    memcpy(out->jti, jti, strlen(jti) + 1);
    out->iat = (int64_t)iat;
    st = SM_OK;
    if (key_out != NULL) {
        *key_out = key;
        key = NULL;
    }
out:
    if (st != SM_OK)
        memset(out, 0, sizeof(*out));
    sm_jwk_free(key);
    json_decref(claims);
    json_decref(header);
    return st;
}
