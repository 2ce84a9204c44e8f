#include "config.h"

/* ES256 compact JWS with kid and the registered claims iss, aud, exp, iat,
 * jti (and optional nbf). The header is checked here, alg first, before the
 * token reaches cjose: cjose imports alg "none" and would run any alg it
 * knows with whatever key it is given. */

#include <stdlib.h>
#include <string.h>

#include "sm_jose_int.h"
#include "sm_json.h"

#define SMJ_MAX_SKEW 86400
#define SMJ_TYP_MAX 64u
#define SMJ_ISS_MAX 512u
#define SMJ_AUD_MAX_ITEMS 16u

void sm_jws_expect_init(sm_jws_expect *e, const char *iss, const char *aud, const char *typ)
{
    memset(e, 0, sizeof(*e));
    e->iss = iss;
    e->aud = aud;
    e->typ = typ;
    e->max_skew = -1;
}

static sm_status check_typ_syntax(const char *typ, sm_error *err)
{
    size_t n = strlen(typ);
    if (n == 0 || n > SMJ_TYP_MAX)
        return sm_error_set(err, SM_ERR_ARG, "JWS: typ must be 1 to %u characters", SMJ_TYP_MAX);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)typ[i];
        if (c < 0x21 || c > 0x7e || c == '"' || c == '\\')
            return sm_error_set(err, SM_ERR_ARG, "JWS: typ must be printable ASCII");
    }
    return SM_OK;
}

sm_status sm_jws_sign(const sm_jwk *key, const char *kid, const char *typ, json_t *claims,
                      char **compact_out, sm_error *err)
{
    if (compact_out == NULL)
        return sm_error_set(err, SM_ERR_ARG, "JWS: no output given");
    *compact_out = NULL;
    if (key == NULL || typ == NULL || !json_is_object(claims))
        return sm_error_set(err, SM_ERR_ARG, "JWS: a key, a typ and a claims object are needed");
    if (key->d == NULL)
        return sm_error_set(err, SM_ERR_KEY, "JWS: signing needs a private key");
    sm_status st = check_typ_syntax(typ, err);
    if (st != SM_OK)
        return st;
    char jkt[SM_JKT_SIZE];
    if (kid == NULL)
        kid = key->kid;
    if (kid == NULL) {
        if ((st = sm_jwk_thumbprint(key, jkt, err)) != SM_OK)
            return st;
        kid = jkt;
    }
    if ((st = smj_check_kid(kid, "JWS", err)) != SM_OK)
        return st;
    json_t *header = json_pack("{s:s,s:s,s:s}", "alg", "ES256", "kid", kid, "typ", typ);
    if (header == NULL)
        return sm_error_set(err, SM_ERR_NOMEM, "JWS: out of memory");
    st = smj_es256_sign(key, header, claims, compact_out, err);
    json_decref(header);
    return st;
}

static sm_status check_date(json_t *claims, const char *name, int required, uint64_t *out,
                            sm_error *err)
{
    sm_status st = sm_json_get_uint64(claims, name, (uint64_t)SMJ_MAX_NUMERIC_DATE, required, out,
                                      "JWS claims", err);
    if (st != SM_OK && err != NULL)
        err->status = SM_ERR_CLAIM;
    return st != SM_OK ? SM_ERR_CLAIM : SM_OK;
}

static sm_status check_aud(json_t *aud, const char *expected, sm_error *err)
{
    if (aud == NULL)
        return sm_error_set(err, SM_ERR_CLAIM, "JWS claims: required claim \"aud\" is missing");
    if (json_is_string(aud)) {
        if (strcmp(json_string_value(aud), expected) == 0 &&
            strlen(json_string_value(aud)) == json_string_length(aud))
            return SM_OK;
        return sm_error_set(err, SM_ERR_CLAIM,
                            "JWS claims: the token is meant for another audience (aud)");
    }
    if (!json_is_array(aud) || json_array_size(aud) == 0 ||
        json_array_size(aud) > SMJ_AUD_MAX_ITEMS)
        return sm_error_set(err, SM_ERR_CLAIM,
                            "JWS claims: \"aud\" must be a string or an array of 1 to %u strings",
                            SMJ_AUD_MAX_ITEMS);
    int found = 0;
    size_t i;
    json_t *v;
    json_array_foreach(aud, i, v) {
        if (!json_is_string(v))
            return sm_error_set(err, SM_ERR_CLAIM,
                                "JWS claims: every \"aud\" array item must be a string");
        if (strcmp(json_string_value(v), expected) == 0 &&
            strlen(json_string_value(v)) == json_string_length(v))
            found = 1;
    }
    if (!found)
        return sm_error_set(err, SM_ERR_CLAIM,
                            "JWS claims: the token is meant for another audience (aud)");
    return SM_OK;
}

static sm_status check_claims(json_t *claims, const sm_jws_expect *expect, sm_error *err)
{
    const char *iss = NULL, *jti = NULL;
    uint64_t exp = 0, iat = 0, nbf = 0;
    int64_t now = smj_now(expect->now);
    int64_t skew = expect->max_skew < 0 ? SM_JOSE_DEFAULT_SKEW : expect->max_skew;
    sm_status st;

    if (sm_json_get_string(claims, "iss", SMJ_ISS_MAX, 1, &iss, "JWS claims", err) != SM_OK ||
        sm_json_get_string(claims, "jti", SM_JOSE_JTI_MAX, 1, &jti, "JWS claims", err) != SM_OK)
        return err != NULL ? (err->status = SM_ERR_CLAIM) : SM_ERR_CLAIM;
    if ((st = check_date(claims, "exp", 1, &exp, err)) != SM_OK ||
        (st = check_date(claims, "iat", 1, &iat, err)) != SM_OK ||
        (st = check_date(claims, "nbf", 0, &nbf, err)) != SM_OK)
        return st;
    if ((st = smj_check_jti(jti, "JWS claims", err)) != SM_OK)
        return st;
    if (strcmp(iss, expect->iss) != 0)
        return sm_error_set(err, SM_ERR_CLAIM,
                            "JWS claims: the token comes from another issuer (iss)");
    if ((st = check_aud(json_object_get(claims, "aud"), expect->aud, err)) != SM_OK)
        return st;
    if (exp < iat)
        return sm_error_set(err, SM_ERR_CLAIM, "JWS claims: exp is before iat");
    if (expect->max_lifetime > 0 && exp - iat > (uint64_t)expect->max_lifetime)
        return sm_error_set(err, SM_ERR_CLAIM,
                            "JWS claims: the token is valid for %llu s, longer than the %lld s "
                            "allowed",
                            (unsigned long long)(exp - iat), (long long)expect->max_lifetime);
    if (now >= (int64_t)exp + skew)
        return sm_error_set(err, SM_ERR_EXPIRED,
                            "JWS: the token has expired (exp); get a new one");
    if ((int64_t)iat > now + skew)
        return sm_error_set(err, SM_ERR_EXPIRED,
                            "JWS: the token was issued in the future (iat); check the clocks of "
                            "both machines");
    if (json_object_get(claims, "nbf") != NULL && (int64_t)nbf > now + skew)
        return sm_error_set(err, SM_ERR_EXPIRED, "JWS: the token is not valid yet (nbf)");
    return SM_OK;
}

sm_status sm_jws_verify(const char *compact, size_t len, const sm_jwks *keys,
                        const sm_jws_expect *expect, json_t **claims_out,
                        char kid_out[SM_JOSE_KID_MAX + 1], sm_error *err)
{
    static const sm_json_field header_fields[] = {{"alg", SM_JSON_STRING, 1},
                                                  {"kid", SM_JSON_STRING, 1},
                                                  {"typ", SM_JSON_STRING, 0},
                                                  {NULL, 0, 0}};
    if (claims_out == NULL)
        return sm_error_set(err, SM_ERR_ARG, "JWS: no output given");
    *claims_out = NULL;
    if (kid_out != NULL)
        kid_out[0] = '\0';
    if (keys == NULL || expect == NULL || expect->iss == NULL || expect->aud == NULL ||
        expect->typ == NULL)
        return sm_error_set(err, SM_ERR_ARG,
                            "JWS: a key set and the expected iss, aud and typ are needed");
    if (expect->now < 0 || expect->now > SMJ_MAX_NUMERIC_DATE ||
        expect->max_skew > SMJ_MAX_SKEW)
        return sm_error_set(err, SM_ERR_ARG,
                            "JWS: now must be a date before the year 10000 and max_skew <= %d s",
                            SMJ_MAX_SKEW);

    smj_segment segs[3];
    sm_status st = smj_split_compact(compact, len, 3, segs, 0, "JWS", err);
    if (st != SM_OK)
        return st;
    json_t *header = NULL, *claims = NULL;
    if ((st = smj_decode_json_segment(&segs[0], "JWS header", &header, err)) != SM_OK)
        return st;

    /* alg before anything else: nothing but ES256 goes further. */
    json_t *alg = json_object_get(header, "alg");
    if (!json_is_string(alg) || strcmp(json_string_value(alg), "ES256") != 0 ||
        json_string_length(alg) != 5) {
        st = sm_error_set(err, SM_ERR_UNSUPPORTED,
                          "JWS: alg must be \"ES256\"; none, HMAC and other algorithms are "
                          "refused");
        goto out;
    }
    if (json_object_get(header, "crit") != NULL) {
        st = sm_error_set(err, SM_ERR_UNSUPPORTED,
                          "JWS: the header has \"crit\"; no critical extensions are supported");
        goto out;
    }
    if ((st = sm_json_check_fields(header, header_fields, "JWS header", err)) != SM_OK)
        goto out;
    const char *typ = NULL, *kid = NULL;
    if ((st = sm_json_get_string(header, "typ", SMJ_TYP_MAX, 0, &typ, "JWS header", err)) !=
            SM_OK ||
        (st = sm_json_get_string(header, "kid", SM_JOSE_KID_MAX, 1, &kid, "JWS header", err)) !=
            SM_OK ||
        (st = smj_check_kid(kid, "JWS header", err)) != SM_OK)
        goto out;
    if (typ == NULL || !smj_strcaseeq(typ, expect->typ)) {
        st = sm_error_set(err, SM_ERR_CLAIM,
                          "JWS: the token type (typ) is not \"%s\"; it is another kind of token",
                          expect->typ);
        goto out;
    }
    const sm_jwk *key = sm_jwks_find(keys, kid);
    if (key == NULL) {
        st = sm_error_set(err, SM_ERR_KEY,
                          "JWS: no key with kid \"%.64s\" is known; refresh the issuer's key set "
                          "(JWKS) if it rotated its keys",
                          kid);
        goto out;
    }
    if ((st = smj_es256_verify(compact, len, segs, key, "JWS", err)) != SM_OK)
        goto out;
    if ((st = smj_decode_json_segment(&segs[1], "JWS claims", &claims, err)) != SM_OK)
        goto out;
    if ((st = check_claims(claims, expect, err)) != SM_OK)
        goto out;
    if (kid_out != NULL)
        memcpy(kid_out, kid, strlen(kid) + 1);
    *claims_out = claims;
    claims = NULL;
out:
    json_decref(claims);
    json_decref(header);
    return st;
}
