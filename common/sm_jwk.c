#include "config.h"

/* P-256 JWKs: strict import with our own point and scalar validation
 * (cjose accepts coordinates >= p reduced modulo p and, when "d" is present,
 * silently ignores x/y), RFC 7638 thumbprints, key files and JWK sets. */

#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>
#include <openssl/params.h>
#include <pthread.h>

#include "sm_file.h"
#include "sm_jose_int.h"
#include "sm_json.h"

/* ---- validation and construction ------------------------------------ */

/* Checks 0 <= x, y < p, that (x, y) is on P-256 and, when d is given, that
 * 1 <= d < n and d·G = (x, y). */
static sm_status validate_p256(const uint8_t x[SMJ_COORD_LEN], const uint8_t y[SMJ_COORD_LEN],
                               const uint8_t *d, sm_error *err)
{
    sm_status st = SM_ERR_KEY;
    const char *msg = NULL;
    EC_GROUP *group = EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1);
    BN_CTX *ctx = BN_CTX_secure_new();
    BIGNUM *p = BN_new(), *bx = BN_new(), *by = BN_new(), *bd = BN_secure_new();
    EC_POINT *pt = group != NULL ? EC_POINT_new(group) : NULL;
    EC_POINT *q = group != NULL ? EC_POINT_new(group) : NULL;
    if (group == NULL || ctx == NULL || p == NULL || bx == NULL || by == NULL || bd == NULL ||
        pt == NULL || q == NULL) {
        st = sm_error_set(err, SM_ERR_NOMEM, "JWK: out of memory validating the key");
        goto out;
    }
    if (EC_GROUP_get_curve(group, p, NULL, NULL, ctx) != 1 ||
        BN_bin2bn(x, SMJ_COORD_LEN, bx) == NULL || BN_bin2bn(y, SMJ_COORD_LEN, by) == NULL) {
        st = sm_error_set(err, SM_ERR_CRYPTO, "JWK: OpenSSL failed reading the coordinates");
        goto out;
    }
    if (BN_cmp(bx, p) >= 0 || BN_cmp(by, p) >= 0) {
        msg = "a coordinate is not below the field prime";
        goto bad;
    }
    uint8_t oct[1 + 2 * SMJ_COORD_LEN];
    oct[0] = 0x04;
    memcpy(oct + 1, x, SMJ_COORD_LEN);
    memcpy(oct + 1 + SMJ_COORD_LEN, y, SMJ_COORD_LEN);
    if (EC_POINT_oct2point(group, pt, oct, sizeof(oct), ctx) != 1 ||
        EC_POINT_is_on_curve(group, pt, ctx) != 1) {
        msg = "the point (x, y) is not on the P-256 curve";
        goto bad;
    }
    if (EC_POINT_is_at_infinity(group, pt)) {
        msg = "the point is the point at infinity";
        goto bad;
    }
    if (d != NULL) {
        if (BN_bin2bn(d, SMJ_COORD_LEN, bd) == NULL) {
            st = sm_error_set(err, SM_ERR_NOMEM, "JWK: out of memory validating the key");
            goto out;
        }
        if (BN_is_zero(bd) || BN_cmp(bd, EC_GROUP_get0_order(group)) >= 0) {
            msg = "the private scalar d is out of range";
            goto bad;
        }
        if (EC_POINT_mul(group, q, bd, NULL, NULL, ctx) != 1) {
            st = sm_error_set(err, SM_ERR_CRYPTO, "JWK: OpenSSL failed deriving the public key");
            goto out;
        }
        if (EC_POINT_cmp(group, q, pt, ctx) != 0) {
            msg = "the private part d does not belong to the public point x/y";
            goto bad;
        }
    }
    st = SM_OK;
    goto out;
bad:
    st = sm_error_set(err, SM_ERR_KEY, "JWK: invalid P-256 key: %s", msg);
out:
    EC_POINT_free(q);
    EC_POINT_free(pt);
    BN_clear_free(bd);
    BN_free(by);
    BN_free(bx);
    BN_free(p);
    BN_CTX_free(ctx);
    EC_GROUP_free(group);
    return st;
}

sm_status smj_jwk_from_raw(const uint8_t x[SMJ_COORD_LEN], const uint8_t y[SMJ_COORD_LEN],
                           const uint8_t *d_or_null, const char *kid, sm_jwk **out,
                           sm_error *err)
{
    *out = NULL;
    if (kid != NULL) {
        sm_status st = smj_check_kid(kid, "JWK", err);
        if (st != SM_OK)
            return st;
    }
    sm_status st = validate_p256(x, y, d_or_null, err);
    if (st != SM_OK)
        return st;
    sm_jwk *jwk = calloc(1, sizeof(*jwk));
    if (jwk == NULL)
        return sm_error_set(err, SM_ERR_NOMEM, "JWK: out of memory");
    jwk->refs = 1;
    memcpy(jwk->x, x, SMJ_COORD_LEN);
    memcpy(jwk->y, y, SMJ_COORD_LEN);
    if (kid != NULL && (jwk->kid = strdup(kid)) == NULL) {
        sm_jwk_free(jwk);
        return sm_error_set(err, SM_ERR_NOMEM, "JWK: out of memory");
    }
    if (d_or_null != NULL && (jwk->d = sm_secret_from(d_or_null, SMJ_COORD_LEN)) == NULL) {
        sm_jwk_free(jwk);
        return sm_error_set(err, SM_ERR_NOMEM, "JWK: out of memory");
    }
    /* cjose wants writable buffers; hand it copies. */
    uint8_t cx[SMJ_COORD_LEN], cy[SMJ_COORD_LEN];
    memcpy(cx, x, sizeof(cx));
    memcpy(cy, y, sizeof(cy));
    cjose_jwk_ec_keyspec spec;
    memset(&spec, 0, sizeof(spec));
    spec.crv = CJOSE_JWK_EC_P_256;
    spec.x = cx;
    spec.xlen = sizeof(cx);
    spec.y = cy;
    spec.ylen = sizeof(cy);
    if (jwk->d != NULL) {
        spec.d = jwk->d->bytes;
        spec.dlen = jwk->d->len;
    }
    cjose_err cerr;
    jwk->cj = cjose_jwk_create_EC_spec(&spec, &cerr);
    sm_wipe(&spec, sizeof(spec));
    if (jwk->cj == NULL) {
        sm_jwk_free(jwk);
        return smj_cjose_error(err, SM_ERR_CRYPTO, "JWK", &cerr);
    }
    *out = jwk;
    return SM_OK;
}

static sm_status decode_coord(json_t *obj, const char *name, uint8_t out[SMJ_COORD_LEN],
                              const char *what, sm_error *err)
{
    const char *s = NULL;
    sm_status st = sm_json_get_string(obj, name, SMJ_COORD_B64_LEN, 1, &s, what, err);
    if (st != SM_OK)
        return st;
    size_t n = 0;
    if (strlen(s) != SMJ_COORD_B64_LEN ||
        sm_b64url_decode(s, SMJ_COORD_B64_LEN, out, SMJ_COORD_LEN, &n, what, NULL) != SM_OK ||
        n != SMJ_COORD_LEN)
        return sm_error_set(err, SM_ERR_KEY,
                            "%s: \"%s\" must be 32 bytes in canonical base64url (43 characters)",
                            what, name);
    return SM_OK;
}

/* The checks of a JWK object: members, kty, crv, use, alg, kid, the
 * coordinates and d. Fills x, y, *kid_out (points into obj) and *d_out (a
 * new secret, or NULL for a public key). */
static sm_status parse_object(json_t *obj, int allow_private, const char *what,
                              uint8_t x[SMJ_COORD_LEN], uint8_t y[SMJ_COORD_LEN],
                              const char **kid_out, sm_secret **d_out, sm_error *err)
{
    static const sm_json_field fields[] = {
        {"kty", SM_JSON_STRING, 1}, {"crv", SM_JSON_STRING, 1}, {"x", SM_JSON_STRING, 1},
        {"y", SM_JSON_STRING, 1},   {"d", SM_JSON_STRING, 0},   {"kid", SM_JSON_STRING, 0},
        {"use", SM_JSON_STRING, 0}, {"alg", SM_JSON_STRING, 0}, {NULL, 0, 0}};
    *kid_out = NULL;
    *d_out = NULL;
    if (!json_is_object(obj))
        return sm_error_set(err, SM_ERR_FORMAT, "%s: a JWK must be a JSON object", what);
    json_t *dv = json_object_get(obj, "d");
    sm_status st = SM_OK;
    sm_secret *d = NULL;
    if (dv != NULL && !allow_private) {
        st = sm_error_set(err, SM_ERR_KEY,
                          "%s: holds a private key (\"d\"); only a public key belongs here", what);
        goto out;
    }
    if ((st = sm_json_check_fields(obj, fields, what, err)) != SM_OK)
        goto out;
    const char *kty = json_string_value(json_object_get(obj, "kty"));
    const char *crv = json_string_value(json_object_get(obj, "crv"));
    if (strcmp(kty, "EC") != 0) {
        st = sm_error_set(err, SM_ERR_UNSUPPORTED,
                          "%s: kty must be \"EC\"; only P-256 keys are supported", what);
        goto out;
    }
    if (strcmp(crv, "P-256") != 0) {
        st = sm_error_set(err, SM_ERR_UNSUPPORTED,
                          "%s: crv must be \"P-256\"; other curves are not supported", what);
        goto out;
    }
    const char *use = NULL, *alg = NULL, *kid = NULL;
    if ((st = sm_json_get_string(obj, "use", 8, 0, &use, what, err)) != SM_OK ||
        (st = sm_json_get_string(obj, "alg", 16, 0, &alg, what, err)) != SM_OK ||
        (st = sm_json_get_string(obj, "kid", SM_JOSE_KID_MAX, 0, &kid, what, err)) != SM_OK)
        goto out;
    if (use != NULL && strcmp(use, "sig") != 0 && strcmp(use, "enc") != 0) {
        st = sm_error_set(err, SM_ERR_UNSUPPORTED, "%s: use must be \"sig\" or \"enc\"", what);
        goto out;
    }
    if (alg != NULL && strcmp(alg, "ES256") != 0 && strcmp(alg, "ECDH-ES") != 0) {
        st = sm_error_set(err, SM_ERR_UNSUPPORTED, "%s: alg must be \"ES256\" or \"ECDH-ES\"",
                          what);
        goto out;
    }
    if (kid != NULL && (st = smj_check_kid(kid, what, err)) != SM_OK)
        goto out;
    if ((st = decode_coord(obj, "x", x, what, err)) != SM_OK ||
        (st = decode_coord(obj, "y", y, what, err)) != SM_OK)
        goto out;
    if (dv != NULL) {
        size_t n = 0;
        const char *ds = json_string_value(dv);
        if ((d = sm_secret_new(SMJ_COORD_LEN)) == NULL) {
            st = sm_error_set(err, SM_ERR_NOMEM, "%s: out of memory", what);
            goto out;
        }
        if (json_string_length(dv) != SMJ_COORD_B64_LEN ||
            sm_b64url_decode(ds, SMJ_COORD_B64_LEN, d->bytes, d->len, &n, what, NULL) !=
                SM_OK ||
            n != SMJ_COORD_LEN) {
            st = sm_error_set(err, SM_ERR_KEY,
                              "%s: \"d\" must be 32 bytes in canonical base64url (43 characters)",
                              what);
            goto out;
        }
    }
    *kid_out = kid;
    *d_out = d;
    d = NULL;
out:
    sm_secret_free(d);
    /* The private member's text is secret too: wipe it where jansson keeps it. */
    if (dv != NULL && json_is_string(dv))
        sm_wipe((char *)json_string_value(dv), json_string_length(dv));
    return st;
}

sm_status smj_jwk_from_object(json_t *obj, int allow_private, const char *what, sm_jwk **out,
                              sm_error *err)
{
    uint8_t x[SMJ_COORD_LEN], y[SMJ_COORD_LEN];
    const char *kid = NULL;
    sm_secret *d = NULL;
    *out = NULL;
    sm_status st = parse_object(obj, allow_private, what, x, y, &kid, &d, err);
    if (st == SM_OK)
        st = smj_jwk_from_raw(x, y, d != NULL ? d->bytes : NULL, kid, out, err);
    sm_secret_free(d);
    return st;
}

/* ---- device-key cache -------------------------------------------------- */

/* Validated public keys without kid (device keys from proofs), direct-mapped
 * by coordinates. A colliding key only evicts another: the cache stays
 * bounded whatever keys clients send. */
#define DEVKEY_CACHE_SLOTS 1024u

typedef struct devkey_slot {
    sm_jwk *key;
    char jkt[SM_JKT_SIZE];
} devkey_slot;

static devkey_slot devkey_cache[DEVKEY_CACHE_SLOTS];
static pthread_mutex_t devkey_lock = PTHREAD_MUTEX_INITIALIZER;

static size_t devkey_index(const uint8_t x[SMJ_COORD_LEN], const uint8_t y[SMJ_COORD_LEN])
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < 8; i++)
        h = (h ^ x[i] ^ ((uint32_t)y[i] << 8)) * 16777619u;
    return h % DEVKEY_CACHE_SLOTS;
}

sm_status smj_jwk_from_object_cached(json_t *obj, const char *what, sm_jwk **out,
                                     char jkt_out[SM_JKT_SIZE], sm_error *err)
{
    uint8_t x[SMJ_COORD_LEN], y[SMJ_COORD_LEN];
    const char *kid = NULL;
    sm_secret *d = NULL;
    char jkt[SM_JKT_SIZE];
    *out = NULL;
    sm_status st = parse_object(obj, 0, what, x, y, &kid, &d, err);
    sm_secret_free(d); /* always NULL: private keys are refused above */
    if (st != SM_OK)
        return st;
    if (kid != NULL) {
        /* Keys with a kid are not device keys from proofs: no caching. */
        if ((st = smj_jwk_from_raw(x, y, NULL, kid, out, err)) == SM_OK && jkt_out != NULL &&
            (st = sm_jwk_thumbprint(*out, jkt_out, err)) != SM_OK) {
            sm_jwk_free(*out);
            *out = NULL;
        }
        return st;
    }
    size_t i = devkey_index(x, y);
    pthread_mutex_lock(&devkey_lock);
    devkey_slot *slot = &devkey_cache[i];
    if (slot->key != NULL && memcmp(slot->key->x, x, SMJ_COORD_LEN) == 0 &&
        memcmp(slot->key->y, y, SMJ_COORD_LEN) == 0) {
        *out = smj_jwk_ref(slot->key);
        if (jkt_out != NULL)
            memcpy(jkt_out, slot->jkt, SM_JKT_SIZE);
        pthread_mutex_unlock(&devkey_lock);
        return SM_OK;
    }
    pthread_mutex_unlock(&devkey_lock);
    /* A miss: validate and build outside the lock. */
    sm_jwk *key = NULL;
    if ((st = smj_jwk_from_raw(x, y, NULL, NULL, &key, err)) != SM_OK)
        return st;
    if ((st = sm_jwk_thumbprint(key, jkt, err)) != SM_OK) {
        sm_jwk_free(key);
        return st;
    }
    (void)smj_jwk_public_pkey(key); /* made once here rather than per use */
    sm_jwk *evicted = NULL;
    pthread_mutex_lock(&devkey_lock);
    evicted = slot->key;
    slot->key = smj_jwk_ref(key);
    memcpy(slot->jkt, jkt, SM_JKT_SIZE);
    pthread_mutex_unlock(&devkey_lock);
    sm_jwk_free(evicted);
    *out = key;
    if (jkt_out != NULL)
        memcpy(jkt_out, jkt, SM_JKT_SIZE);
    return SM_OK;
}

sm_status sm_jwk_from_json(const char *json, size_t len, sm_jwk **out, sm_error *err)
{
    if (out == NULL)
        return sm_error_set(err, SM_ERR_ARG, "JWK: no output given");
    *out = NULL;
    if (json == NULL)
        return sm_error_set(err, SM_ERR_ARG, "JWK: no input given");
    json_t *obj = NULL;
    sm_status st =
        sm_json_parse_object((const uint8_t *)json, len, SM_JOSE_MAX_TOKEN, "JWK", &obj, err);
    if (st != SM_OK)
        return st;
    st = smj_jwk_from_object(obj, 1, "JWK", out, err);
    json_decref(obj);
    return st;
}

sm_status sm_jwk_generate(sm_jwk **out, sm_error *err)
{
    if (out == NULL)
        return sm_error_set(err, SM_ERR_ARG, "JWK: no output given");
    *out = NULL;
    sm_status st = SM_OK;
    BIGNUM *bd = NULL, *bx = NULL, *by = NULL;
    sm_secret *d = sm_secret_new(SMJ_COORD_LEN);
    EVP_PKEY *pkey = EVP_EC_gen("P-256");
    if (d == NULL || pkey == NULL) {
        st = sm_error_set(err, SM_ERR_CRYPTO, "JWK: generating a P-256 key failed");
        goto out;
    }
    if (EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_PRIV_KEY, &bd) != 1 ||
        EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_EC_PUB_X, &bx) != 1 ||
        EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_EC_PUB_Y, &by) != 1) {
        st = sm_error_set(err, SM_ERR_CRYPTO, "JWK: reading the generated key failed");
        goto out;
    }
    uint8_t x[SMJ_COORD_LEN], y[SMJ_COORD_LEN];
    if (BN_bn2binpad(bd, d->bytes, SMJ_COORD_LEN) != SMJ_COORD_LEN ||
        BN_bn2binpad(bx, x, SMJ_COORD_LEN) != SMJ_COORD_LEN ||
        BN_bn2binpad(by, y, SMJ_COORD_LEN) != SMJ_COORD_LEN) {
        st = sm_error_set(err, SM_ERR_CRYPTO, "JWK: the generated key has an unexpected size");
        goto out;
    }
    st = smj_jwk_from_raw(x, y, d->bytes, NULL, out, err);
out:
    BN_clear_free(bd);
    BN_free(bx);
    BN_free(by);
    EVP_PKEY_free(pkey);
    sm_secret_free(d);
    return st;
}

sm_jwk *smj_jwk_ref(const sm_jwk *jwk)
{
    sm_jwk *k = (sm_jwk *)jwk;
    __atomic_add_fetch(&k->refs, 1, __ATOMIC_RELAXED);
    return k;
}

EVP_PKEY *smj_jwk_public_pkey(const sm_jwk *jwk)
{
    sm_jwk *k = (sm_jwk *)jwk;
    EVP_PKEY *have = __atomic_load_n(&k->pub, __ATOMIC_ACQUIRE);
    if (have != NULL)
        return have;
    uint8_t point[1 + 2 * SMJ_COORD_LEN];
    point[0] = 0x04;
    memcpy(point + 1, jwk->x, SMJ_COORD_LEN);
    memcpy(point + 1 + SMJ_COORD_LEN, jwk->y, SMJ_COORD_LEN);
    char group[] = "prime256v1";
    OSSL_PARAM params[] = {
        OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group) - 1),
        OSSL_PARAM_octet_string(OSSL_PKEY_PARAM_PUB_KEY, point, sizeof(point)), OSSL_PARAM_END};
    EVP_PKEY *made = NULL;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
    if (ctx == NULL || EVP_PKEY_fromdata_init(ctx) != 1 ||
        EVP_PKEY_fromdata(ctx, &made, EVP_PKEY_PUBLIC_KEY, params) != 1) {
        EVP_PKEY_CTX_free(ctx);
        return NULL;
    }
    EVP_PKEY_CTX_free(ctx);
    EVP_PKEY *expected = NULL;
    if (!__atomic_compare_exchange_n(&k->pub, &expected, made, 0, __ATOMIC_ACQ_REL,
                                     __ATOMIC_ACQUIRE)) {
        /* Another thread published one first. */
        EVP_PKEY_free(made);
        return expected;
    }
    return made;
}

void sm_jwk_free(sm_jwk *jwk)
{
    if (jwk == NULL)
        return;
    if (__atomic_sub_fetch(&jwk->refs, 1, __ATOMIC_ACQ_REL) != 0)
        return;
    EVP_PKEY_free(jwk->pub);
    if (jwk->cj != NULL)
        cjose_jwk_release(jwk->cj);
    sm_secret_free(jwk->d);
    free(jwk->kid);
    sm_wipe(jwk, sizeof(*jwk));
    free(jwk);
}

int sm_jwk_has_private(const sm_jwk *jwk)
{
    return jwk != NULL && jwk->d != NULL;
}

const char *sm_jwk_kid(const sm_jwk *jwk)
{
    return jwk != NULL ? jwk->kid : NULL;
}

sm_status sm_jwk_set_kid(sm_jwk *jwk, const char *kid, sm_error *err)
{
    if (jwk == NULL)
        return sm_error_set(err, SM_ERR_ARG, "JWK: no key given");
    char *copy = NULL;
    if (kid != NULL) {
        sm_status st = smj_check_kid(kid, "JWK", err);
        if (st != SM_OK)
            return st;
        if ((copy = strdup(kid)) == NULL)
            return sm_error_set(err, SM_ERR_NOMEM, "JWK: out of memory");
    }
    free(jwk->kid);
    jwk->kid = copy;
    return SM_OK;
}

sm_status sm_jwk_public_copy(const sm_jwk *jwk, sm_jwk **out, sm_error *err)
{
    if (jwk == NULL || out == NULL)
        return sm_error_set(err, SM_ERR_ARG, "JWK: no key given");
    return smj_jwk_from_raw(jwk->x, jwk->y, NULL, jwk->kid, out, err);
}

int sm_jwk_same_public(const sm_jwk *a, const sm_jwk *b)
{
    return a != NULL && b != NULL && memcmp(a->x, b->x, SMJ_COORD_LEN) == 0 &&
           memcmp(a->y, b->y, SMJ_COORD_LEN) == 0;
}

/* ---- serialization --------------------------------------------------- */

json_t *smj_jwk_public_object(const sm_jwk *jwk, int with_kid)
{
    char x64[SMJ_COORD_B64_LEN + 1], y64[SMJ_COORD_B64_LEN + 1];
    if (sm_b64url_encode(jwk->x, SMJ_COORD_LEN, x64, sizeof(x64), NULL) != SM_OK ||
        sm_b64url_encode(jwk->y, SMJ_COORD_LEN, y64, sizeof(y64), NULL) != SM_OK)
        return NULL;
    json_t *obj = json_pack("{s:s,s:s,s:s,s:s}", "kty", "EC", "crv", "P-256", "x", x64, "y", y64);
    if (obj != NULL && with_kid && jwk->kid != NULL &&
        json_object_set_new(obj, "kid", json_string(jwk->kid)) != 0) {
        json_decref(obj);
        return NULL;
    }
    return obj;
}

/* Formatted by hand rather than with json_dumps so that the private part is
 * never copied into jansson's growing buffers; every value is base64url or a
 * kid whose syntax needs no escaping. */
char *sm_jwk_to_json(const sm_jwk *jwk, int include_private, sm_error *err)
{
    if (jwk == NULL) {
        sm_error_set(err, SM_ERR_ARG, "JWK: no key given");
        return NULL;
    }
    if (include_private && jwk->d == NULL) {
        sm_error_set(err, SM_ERR_KEY, "JWK: this key has no private part to export");
        return NULL;
    }
    char x64[SMJ_COORD_B64_LEN + 1], y64[SMJ_COORD_B64_LEN + 1], d64[SMJ_COORD_B64_LEN + 1];
    d64[0] = '\0';
    if (sm_b64url_encode(jwk->x, SMJ_COORD_LEN, x64, sizeof(x64), err) != SM_OK ||
        sm_b64url_encode(jwk->y, SMJ_COORD_LEN, y64, sizeof(y64), err) != SM_OK ||
        (include_private &&
         sm_b64url_encode(jwk->d->bytes, jwk->d->len, d64, sizeof(d64), err) != SM_OK)) {
        sm_wipe(d64, sizeof(d64));
        return NULL;
    }
    size_t cap = 160 + SM_JOSE_KID_MAX + 3 * SMJ_COORD_B64_LEN;
    char *out = malloc(cap);
    if (out == NULL) {
        sm_wipe(d64, sizeof(d64));
        sm_error_set(err, SM_ERR_NOMEM, "JWK: out of memory");
        return NULL;
    }
    int n = snprintf(out, cap,
                     "{\"kty\":\"EC\",\"crv\":\"P-256\"%s%s%s,\"x\":\"%s\",\"y\":\"%s\"%s%s%s}",
                     jwk->kid != NULL ? ",\"kid\":\"" : "", jwk->kid != NULL ? jwk->kid : "",
                     jwk->kid != NULL ? "\"" : "", x64, y64, include_private ? ",\"d\":\"" : "",
                     include_private ? d64 : "", include_private ? "\"" : "");
    sm_wipe(d64, sizeof(d64));
    if (n < 0 || (size_t)n >= cap) {
        sm_jwk_json_free(out);
        sm_error_set(err, SM_ERR_CRYPTO, "JWK: serialization failed");
        return NULL;
    }
    return out;
}

void sm_jwk_json_free(char *json)
{
    if (json == NULL)
        return;
    sm_wipe(json, strlen(json));
    free(json);
}

sm_status sm_jwk_thumbprint(const sm_jwk *jwk, char out[44], sm_error *err)
{
    if (jwk == NULL || out == NULL)
        return sm_error_set(err, SM_ERR_ARG, "JWK thumbprint: no key given");
    out[0] = '\0';
    /* RFC 7638: the required members only, lexicographic order, no spaces. */
    json_t *obj = smj_jwk_public_object(jwk, 0);
    char *canon = obj != NULL ? json_dumps(obj, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(obj);
    if (canon == NULL)
        return sm_error_set(err, SM_ERR_NOMEM, "JWK thumbprint: out of memory");
    uint8_t digest[32];
    unsigned int dlen = 0;
    int ok = EVP_Digest(canon, strlen(canon), digest, &dlen, EVP_sha256(), NULL) == 1 &&
             dlen == sizeof(digest);
    free(canon);
    if (!ok)
        return sm_error_set(err, SM_ERR_CRYPTO, "JWK thumbprint: SHA-256 failed");
    return sm_b64url_encode(digest, sizeof(digest), out, SM_JKT_SIZE, err);
}

/* ---- files ------------------------------------------------------------ */

sm_status sm_jwk_load_file(const char *path, sm_jwk **out, sm_error *err)
{
    if (path == NULL || out == NULL)
        return sm_error_set(err, SM_ERR_ARG, "JWK file: no path given");
    *out = NULL;
    /* The file may hold a private key: it is read into secure memory. */
    sm_secret *buf = NULL;
    mode_t mode = 0;
    sm_status rc = sm_file_read_secret(path, SM_JWK_FILE_MAX, &buf, &mode, err);
    if (rc != SM_OK)
        return rc;
    sm_jwk *jwk = NULL;
    sm_error inner;
    sm_error_clear(&inner);
    rc = sm_jwk_from_json((const char *)buf->bytes, buf->len, &jwk, &inner);
    sm_secret_free(buf);
    if (rc != SM_OK)
        return sm_error_set(err, rc, "%s: %s", path, inner.message);
    if (jwk->d != NULL && (mode & 077) != 0) {
        sm_jwk_free(jwk);
        return sm_file_refuse_loose_mode(path, mode, err);
    }
    *out = jwk;
    return SM_OK;
}

/* Private keys are written 0600, public ones 0644, always atomically. */
static sm_status save_file(const sm_jwk *jwk, const char *path, int include_private,
                           int overwrite, sm_error *err)
{
    if (jwk == NULL || path == NULL || path[0] == '\0')
        return sm_error_set(err, SM_ERR_ARG, "JWK file: no key or path given");
    if (include_private && jwk->d == NULL)
        return sm_error_set(err, SM_ERR_KEY, "%s: this key has no private part to save", path);
    char *json = sm_jwk_to_json(jwk, include_private, err);
    if (json == NULL)
        return err != NULL ? err->status : SM_ERR_NOMEM;
    size_t len = strlen(json);
    sm_secret *doc = sm_secret_new(len + 1);
    sm_status st;
    if (doc == NULL) {
        st = sm_error_set(err, SM_ERR_NOMEM, "%s: out of memory", path);
    } else {
        memcpy(doc->bytes, json, len);
        doc->bytes[len] = '\n';
        st = sm_file_write_atomic(path, doc->bytes, doc->len, include_private ? 0600 : 0644,
                                  overwrite, err);
    }
    sm_secret_free(doc);
    sm_jwk_json_free(json);
    return st;
}

sm_status sm_jwk_save_file(const sm_jwk *jwk, const char *path, int include_private,
                           sm_error *err)
{
    return save_file(jwk, path, include_private, 0, err);
}

sm_status sm_jwk_save_file_overwrite(const sm_jwk *jwk, const char *path, int include_private,
                                     sm_error *err)
{
    return save_file(jwk, path, include_private, 1, err);
}

sm_status sm_device_key_default_path(char *buf, size_t size, sm_error *err)
{
    if (buf == NULL || size == 0)
        return sm_error_set(err, SM_ERR_ARG, "device key path: no buffer given");
    buf[0] = '\0';
    const char *env = getenv("SECMEDIA_DEVICE_KEY");
    const char *xdg = getenv("XDG_CONFIG_HOME");
    const char *home = getenv("HOME");
    int n;
    if (env != NULL && env[0] != '\0') {
        n = snprintf(buf, size, "%s", env);
    } else if (xdg != NULL && xdg[0] == '/') {
        n = snprintf(buf, size, "%s/secmedia/device.jwk", xdg);
    } else {
        struct passwd pw, *res = NULL;
        char pwbuf[4096];
        if ((home == NULL || home[0] == '\0') &&
            getpwuid_r(getuid(), &pw, pwbuf, sizeof(pwbuf), &res) == 0 && res != NULL)
            home = res->pw_dir;
        if (home == NULL || home[0] == '\0')
            return sm_error_set(err, SM_ERR_ARG,
                                "device key path: HOME is not set; set SECMEDIA_DEVICE_KEY to "
                                "the key file's path");
        n = snprintf(buf, size, "%s/.config/secmedia/device.jwk", home);
    }
    if (n < 0 || (size_t)n >= size) {
        buf[0] = '\0';
        return sm_error_set(err, SM_ERR_TOO_LARGE, "device key path: longer than %zu bytes",
                            size - 1);
    }
    return SM_OK;
}

/* ---- JWK sets ------------------------------------------------------ */

struct sm_jwks {
    size_t n;
    sm_jwk *keys[SM_JWKS_MAX_KEYS];
};

sm_status sm_jwks_new(sm_jwks **out, sm_error *err)
{
    if (out == NULL)
        return sm_error_set(err, SM_ERR_ARG, "JWKS: no output given");
    *out = calloc(1, sizeof(**out));
    if (*out == NULL)
        return sm_error_set(err, SM_ERR_NOMEM, "JWKS: out of memory");
    return SM_OK;
}

void sm_jwks_free(sm_jwks *set)
{
    if (set == NULL)
        return;
    for (size_t i = 0; i < set->n; i++)
        sm_jwk_free(set->keys[i]);
    free(set);
}

size_t sm_jwks_count(const sm_jwks *set)
{
    return set != NULL ? set->n : 0;
}

const sm_jwk *sm_jwks_find(const sm_jwks *set, const char *kid)
{
    if (set == NULL || kid == NULL)
        return NULL;
    for (size_t i = 0; i < set->n; i++) {
        if (strcmp(set->keys[i]->kid, kid) == 0)
            return set->keys[i];
    }
    return NULL;
}

/* Takes ownership of key (which must have a kid) on success. */
static sm_status jwks_insert(sm_jwks *set, sm_jwk *key, sm_error *err)
{
    if (set->n >= SM_JWKS_MAX_KEYS)
        return sm_error_set(err, SM_ERR_TOO_LARGE, "JWKS: more than %u keys", SM_JWKS_MAX_KEYS);
    if (sm_jwks_find(set, key->kid) != NULL)
        return sm_error_set(err, SM_ERR_FORMAT, "JWKS: kid \"%s\" appears twice", key->kid);
    set->keys[set->n++] = key;
    return SM_OK;
}

sm_status sm_jwks_add(sm_jwks *set, const sm_jwk *key, const char *kid_or_null, sm_error *err)
{
    if (set == NULL || key == NULL)
        return sm_error_set(err, SM_ERR_ARG, "JWKS: no set or key given");
    char jkt[SM_JKT_SIZE];
    const char *kid = kid_or_null != NULL ? kid_or_null : key->kid;
    if (kid == NULL) {
        sm_status st = sm_jwk_thumbprint(key, jkt, err);
        if (st != SM_OK)
            return st;
        kid = jkt;
    }
    sm_jwk *copy = NULL;
    sm_status st = smj_jwk_from_raw(key->x, key->y, NULL, kid, &copy, err);
    if (st != SM_OK)
        return st;
    if ((st = jwks_insert(set, copy, err)) != SM_OK)
        sm_jwk_free(copy);
    return st;
}

sm_status sm_jwks_from_json(const char *json, size_t len, sm_jwks **out, sm_error *err)
{
    static const sm_json_field fields[] = {{"keys", SM_JSON_ARRAY, 1}, {NULL, 0, 0}};
    if (out == NULL)
        return sm_error_set(err, SM_ERR_ARG, "JWKS: no output given");
    *out = NULL;
    if (json == NULL)
        return sm_error_set(err, SM_ERR_ARG, "JWKS: no input given");
    json_t *obj = NULL;
    sm_status st =
        sm_json_parse_object((const uint8_t *)json, len, SM_JOSE_MAX_TOKEN, "JWKS", &obj, err);
    if (st != SM_OK)
        return st;
    sm_jwks *set = NULL;
    if ((st = sm_json_check_fields(obj, fields, "JWKS", err)) != SM_OK)
        goto out;
    json_t *keys = json_object_get(obj, "keys");
    size_t n = json_array_size(keys);
    if (n == 0 || n > SM_JWKS_MAX_KEYS) {
        st = sm_error_set(err, SM_ERR_FORMAT, "JWKS: \"keys\" must hold 1 to %u keys",
                          SM_JWKS_MAX_KEYS);
        goto out;
    }
    if ((st = sm_jwks_new(&set, err)) != SM_OK)
        goto out;
    for (size_t i = 0; i < n; i++) {
        char what[32];
        snprintf(what, sizeof(what), "JWKS key %zu", i + 1);
        sm_jwk *key = NULL;
        if ((st = smj_jwk_from_object(json_array_get(keys, i), 0, what, &key, err)) != SM_OK)
            goto out;
        if (key->kid == NULL) {
            sm_jwk_free(key);
            st = sm_error_set(err, SM_ERR_FORMAT, "%s: has no kid; every key in a JWKS needs one",
                              what);
            goto out;
        }
        if ((st = jwks_insert(set, key, err)) != SM_OK) {
            sm_jwk_free(key);
            goto out;
        }
    }
    *out = set;
    set = NULL;
out:
    sm_jwks_free(set);
    json_decref(obj);
    return st;
}

char *sm_jwks_to_json(const sm_jwks *set, sm_error *err)
{
    if (set == NULL) {
        sm_error_set(err, SM_ERR_ARG, "JWKS: no set given");
        return NULL;
    }
    json_t *arr = json_array();
    json_t *doc = json_pack("{s:o}", "keys", arr);
    char *out = NULL;
    if (doc == NULL)
        goto nomem;
    for (size_t i = 0; i < set->n; i++) {
        json_t *k = smj_jwk_public_object(set->keys[i], 1);
        if (k == NULL || json_array_append_new(arr, k) != 0)
            goto nomem;
    }
    out = json_dumps(doc, JSON_COMPACT);
    if (out == NULL)
        goto nomem;
    json_decref(doc);
    return out;
nomem:
    json_decref(doc);
    sm_error_set(err, SM_ERR_NOMEM, "JWKS: out of memory");
    return NULL;
}
