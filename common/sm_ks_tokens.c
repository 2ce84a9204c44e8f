#include "config.h"

/* Vouchers, payment acknowledgements and delivery tokens (sm_ks_tokens.h). */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <pthread.h>

#include "sm_json.h"
#include "sm_ks_tokens.h"

/* Upper bound for every lifetime: beyond it exp would pass 9999-12-31,
 * which the JWS layer refuses. */
#define MAX_LIFETIME (INT64_C(100) * 366 * 86400)

/* Keeps the message of a lower-level check but reports it as a bad claim:
 * the token was signed by us, so a bad value is a claim problem. */
static sm_status as_claim_error(sm_error *err)
{
    if (err != NULL)
        err->status = SM_ERR_CLAIM;
    return SM_ERR_CLAIM;
}

static int64_t current_time(int64_t now)
{
    return now != 0 ? now : (int64_t)time(NULL);
}

static sm_status check_jkt(const char *jkt, const char *what, sm_error *err)
{
    size_t n = jkt != NULL ? strlen(jkt) : 0;
    if (n != SM_JKT_SIZE - 1)
        return sm_error_set(err, SM_ERR_CLAIM, "%s: \"jkt\" must be a 43-character thumbprint",
                            what);
    for (size_t i = 0; i < n; i++) {
        char c = jkt[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_'))
            return sm_error_set(err, SM_ERR_CLAIM, "%s: \"jkt\" is not base64url", what);
    }
    return SM_OK;
}

sm_status sm_ks_validate_payment_ref(const char *ref, sm_error *err)
{
    size_t n = ref != NULL ? strlen(ref) : 0;
    if (n == 0 || n > SM_KS_PAYMENT_REF_MAX)
        return sm_error_set(err, SM_ERR_FORMAT, "payment reference must be 1 to %u characters",
                            SM_KS_PAYMENT_REF_MAX);
    for (size_t i = 0; i < n; i++) {
        char c = ref[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.' || c == '~' || c == ':'))
            return sm_error_set(err, SM_ERR_FORMAT,
                                "payment reference may only hold A-Z a-z 0-9 . _ ~ : -");
    }
    return SM_OK;
}

static sm_status check_currency(const char *c, const char *what, sm_error *err)
{
    if (c == NULL || strlen(c) != 3 || c[0] < 'A' || c[0] > 'Z' || c[1] < 'A' || c[1] > 'Z' ||
        c[2] < 'A' || c[2] > 'Z')
        return sm_error_set(err, SM_ERR_CLAIM, "%s: \"currency\" must be three capital letters",
                            what);
    return SM_OK;
}

/* Adds iat, exp and a fresh jti to claims and writes them back. */
static sm_status add_time_claims(json_t *claims, const char *iss, json_t *aud, int64_t now,
                                 int64_t lifetime, int64_t *iat, int64_t *exp,
                                 char jti[SM_JOSE_JTI_MAX + 1], const char *what, sm_error *err)
{
    char fresh[23];
    if (iss == NULL || strlen(iss) == 0 || strlen(iss) > SM_KS_ISS_MAX) {
        json_decref(aud);
        return sm_error_set(err, SM_ERR_ARG, "%s: issuer must be 1 to %u bytes", what,
                            SM_KS_ISS_MAX);
    }
    if (lifetime <= 0 || lifetime > MAX_LIFETIME) {
        json_decref(aud);
        return sm_error_set(err, SM_ERR_ARG, "%s: lifetime must be 1 s to 100 years", what);
    }
    sm_status st = sm_jose_random_jti(fresh, err);
    if (st != SM_OK) {
        json_decref(aud);
        return st;
    }
    *iat = current_time(now);
    *exp = *iat + lifetime;
    memcpy(jti, fresh, sizeof(fresh));
    if (json_object_set_new(claims, "iss", json_string(iss)) != 0 ||
        json_object_set_new(claims, "aud", aud) != 0 ||
        json_object_set_new(claims, "iat", json_integer(*iat)) != 0 ||
        json_object_set_new(claims, "exp", json_integer(*exp)) != 0 ||
        json_object_set_new(claims, "jti", json_string(fresh)) != 0)
        return sm_error_set(err, SM_ERR_NOMEM, "%s: out of memory", what);
    return SM_OK;
}

static sm_status sign_claims(const sm_ks_keys *keys, const char *typ, json_t *claims,
                             char **compact_out, const char *what, sm_error *err)
{
    if (claims == NULL)
        return sm_error_set(err, SM_ERR_NOMEM, "%s: out of memory", what);
    sm_status st = sm_ks_keys_sign(keys, typ, claims, compact_out, err);
    json_decref(claims);
    return st;
}

/* ---- voucher ------------------------------------------------------------ */

static sm_status check_voucher_fields(const sm_ks_voucher *v, sm_error *err)
{
    sm_status st;
    if ((st = sm_ks_validate_id(v->txn, "voucher: txn", err)) != SM_OK ||
        (st = sm_ks_validate_id(v->work_id, "voucher: work_id", err)) != SM_OK ||
        (st = sm_ks_validate_id(v->retailer, "voucher: retailer", err)) != SM_OK ||
        (st = check_jkt(v->jkt, "voucher", err)) != SM_OK)
        return st;
    if (sm_ks_license_type_name(v->terms.type) == NULL)
        return sm_error_set(err, SM_ERR_ARG, "voucher: invalid license type");
    return SM_OK;
}

sm_status sm_ks_voucher_issue(const sm_ks_keys *keys, const char *iss, sm_ks_voucher *v,
                              int64_t now, int64_t lifetime, char **compact_out, sm_error *err)
{
    *compact_out = NULL;
    sm_status st = check_voucher_fields(v, err);
    if (st != SM_OK)
        return st;
    json_t *terms = sm_ks_terms_to_json(&v->terms);
    json_t *claims = terms != NULL ? json_pack("{s:s,s:s,s:s,s:o,s:s}", "txn", v->txn, "work_id",
                                               v->work_id, "retailer", v->retailer, "license",
                                               terms, "jkt", v->jkt)
                                   : NULL;
    if (claims == NULL)
        return sm_error_set(err, SM_ERR_NOMEM, "voucher: out of memory");
    /* The voucher comes back to the key server itself: it is its audience. */
    st = add_time_claims(claims, iss, json_string(iss), now, lifetime, &v->iat, &v->exp, v->jti,
                         "voucher", err);
    if (st != SM_OK) {
        json_decref(claims);
        return st;
    }
    return sign_claims(keys, SM_KS_TYP_VOUCHER, claims, compact_out, "voucher", err);
}

/* Copies the registered claims every token shares. */
static void copy_registered(json_t *claims, int64_t *iat, int64_t *exp,
                            char jti[SM_JOSE_JTI_MAX + 1])
{
    *iat = json_integer_value(json_object_get(claims, "iat"));
    *exp = json_integer_value(json_object_get(claims, "exp"));
    const char *j = json_string_value(json_object_get(claims, "jti"));
    size_t n = strlen(j);
    memcpy(jti, j, n + 1); /* sm_jws_verify checked 16..128 characters */
}

static sm_status verify_common(const sm_jwks *keys, const char *iss, const char *aud,
                               const char *typ, const char *compact, size_t len, int64_t now,
                               int64_t max_lifetime, const sm_json_field *fields,
                               const char *what, json_t **claims_out,
                               char kid_out[SM_JOSE_KID_MAX + 1], sm_error *err)
{
    sm_jws_expect expect;
    json_t *claims = NULL;
    *claims_out = NULL;
    sm_jws_expect_init(&expect, iss, aud, typ);
    expect.now = now;
    expect.max_lifetime = max_lifetime;
    sm_status st = sm_jws_verify(compact, len, keys, &expect, &claims, kid_out, err);
    if (st != SM_OK)
        return st;
    /* aud may legitimately be a string or an array (checked by
     * sm_jws_verify); the other members must match the table exactly. */
    json_t *rest = json_copy(claims);
    if (rest == NULL) {
        json_decref(claims);
        return sm_error_set(err, SM_ERR_NOMEM, "%s: out of memory", what);
    }
    json_object_del(rest, "aud");
    st = sm_json_check_fields(rest, fields, what, err);
    json_decref(rest);
    if (st != SM_OK) {
        json_decref(claims);
        return as_claim_error(err);
    }
    *claims_out = claims;
    return SM_OK;
}

#define REGISTERED_FIELDS                                                                      \
    {"iss", SM_JSON_STRING, 1}, {"iat", SM_JSON_INTEGER, 1}, {"exp", SM_JSON_INTEGER, 1},      \
        {"jti", SM_JSON_STRING, 1}

static sm_status copy_id(json_t *claims, const char *name, char *dst, size_t size,
                         const char *what, sm_error *err)
{
    char label[96];
    snprintf(label, sizeof(label), "%s: %s", what, name);
    const char *s = json_string_value(json_object_get(claims, name));
    sm_status st = sm_ks_validate_id(s, label, err);
    if (st != SM_OK)
        return as_claim_error(err);
    size_t n = strlen(s);
    if (n >= size)
        return sm_error_set(err, SM_ERR_CLAIM, "%s is too long", label);
    memcpy(dst, s, n + 1);
    return SM_OK;
}

static sm_status voucher_verify(const sm_jwks *keys, const char *iss, const char *compact,
                                size_t len, int64_t now, sm_ks_voucher *out,
                                char kid[SM_JOSE_KID_MAX + 1], sm_error *err)
{
    static const sm_json_field fields[] = {
        REGISTERED_FIELDS,
        {"txn", SM_JSON_STRING, 1},
        {"work_id", SM_JSON_STRING, 1},
        {"retailer", SM_JSON_STRING, 1},
        {"license", SM_JSON_OBJECT, 1},
        {"jkt", SM_JSON_STRING, 1},
        {NULL, SM_JSON_STRING, 0}};
    json_t *claims = NULL;
    memset(out, 0, sizeof(*out));
    sm_status st = verify_common(keys, iss, iss, SM_KS_TYP_VOUCHER, compact, len, now, 0, fields,
                                 "voucher", &claims, kid, err);
    if (st != SM_OK)
        return st;
    const char *jkt = json_string_value(json_object_get(claims, "jkt"));
    if ((st = copy_id(claims, "txn", out->txn, sizeof(out->txn), "voucher", err)) != SM_OK ||
        (st = copy_id(claims, "work_id", out->work_id, sizeof(out->work_id), "voucher", err)) !=
            SM_OK ||
        (st = copy_id(claims, "retailer", out->retailer, sizeof(out->retailer), "voucher",
                      err)) != SM_OK ||
        (st = check_jkt(jkt, "voucher", err)) != SM_OK)
        goto out;
    memcpy(out->jkt, jkt, SM_JKT_SIZE);
    if ((st = sm_ks_terms_from_json(json_object_get(claims, "license"), "voucher: license",
                                    &out->terms, err)) != SM_OK) {
        st = as_claim_error(err);
        goto out;
    }
    copy_registered(claims, &out->iat, &out->exp, out->jti);
out:
    json_decref(claims);
    if (st != SM_OK)
        memset(out, 0, sizeof(*out));
    return st;
}

sm_status sm_ks_voucher_verify(const sm_jwks *keys, const char *iss, const char *compact,
                               size_t len, int64_t now, sm_ks_voucher *out, sm_error *err)
{
    return voucher_verify(keys, iss, compact, len, now, out, NULL, err);
}

/* ---- cache of verified vouchers ------------------------------------------- */

/* Direct-mapped by SHA-256(iss, NUL, voucher bytes): a voucher is only
 * found again when those exact bytes come back for the same issuer. */
typedef struct voucher_slot {
    uint8_t digest[32];
    int used;
    const sm_jwks *keys;
    char kid[SM_JOSE_KID_MAX + 1];
    sm_ks_voucher voucher;
} voucher_slot;

struct sm_ks_voucher_cache {
    pthread_mutex_t lock;
    size_t n;
    voucher_slot *slots;
};

sm_status sm_ks_voucher_cache_new(size_t slots, sm_ks_voucher_cache **out, sm_error *err)
{
    *out = NULL;
    if (slots == 0 || slots > SM_KS_VOUCHER_CACHE_MAX)
        return sm_error_set(err, SM_ERR_ARG, "voucher cache: 1 to %u entries",
                            SM_KS_VOUCHER_CACHE_MAX);
    sm_ks_voucher_cache *c = calloc(1, sizeof(*c));
    if (c == NULL || (c->slots = calloc(slots, sizeof(*c->slots))) == NULL) {
        free(c);
        return sm_error_set(err, SM_ERR_NOMEM, "voucher cache: out of memory");
    }
    c->n = slots;
    if (pthread_mutex_init(&c->lock, NULL) != 0) {
        free(c->slots);
        free(c);
        return sm_error_set(err, SM_ERR_NOMEM, "voucher cache: no mutex");
    }
    *out = c;
    return SM_OK;
}

void sm_ks_voucher_cache_free(sm_ks_voucher_cache *c)
{
    if (c == NULL)
        return;
    pthread_mutex_destroy(&c->lock);
    free(c->slots);
    free(c);
}

static int voucher_digest(const char *iss, const char *compact, size_t len, uint8_t out[32])
{
    unsigned int n = 0;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    int ok = md != NULL && EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1 &&
             EVP_DigestUpdate(md, iss, strlen(iss) + 1) == 1 &&
             EVP_DigestUpdate(md, compact, len) == 1 && EVP_DigestFinal_ex(md, out, &n) == 1 &&
             n == 32;
    EVP_MD_CTX_free(md);
    return ok;
}

/* The time checks sm_jws_verify makes, again for a cached voucher. */
static sm_status voucher_times(const sm_ks_voucher *v, int64_t now, sm_error *err)
{
    int64_t skew = SM_JOSE_DEFAULT_SKEW;
    if (now >= v->exp + skew)
        return sm_error_set(err, SM_ERR_EXPIRED, "JWS: the token has expired (exp); get a new one");
    if (v->iat > now + skew)
        return sm_error_set(err, SM_ERR_EXPIRED,
                            "JWS: the token was issued in the future (iat); check the clocks of "
                            "both machines");
    return SM_OK;
}

sm_status sm_ks_voucher_verify_cached(sm_ks_voucher_cache *cache, const sm_jwks *keys,
                                      const char *iss, const char *compact, size_t len,
                                      int64_t now, sm_ks_voucher *out, sm_error *err)
{
    uint8_t digest[32];
    if (cache == NULL || keys == NULL || iss == NULL || compact == NULL ||
        len > SM_JOSE_MAX_TOKEN || !voucher_digest(iss, compact, len, digest))
        return sm_ks_voucher_verify(keys, iss, compact, len, now, out, err);
    now = current_time(now);
    voucher_slot *slot = &cache->slots[(((size_t)digest[0] << 16) | ((size_t)digest[1] << 8) |
                                        digest[2]) % cache->n];
    pthread_mutex_lock(&cache->lock);
    /* The key that signed it must still be in the key set. */
    int hit = slot->used && slot->keys == keys && CRYPTO_memcmp(slot->digest, digest, 32) == 0 &&
              sm_jwks_find(keys, slot->kid) != NULL;
    if (hit)
        *out = slot->voucher;
    pthread_mutex_unlock(&cache->lock);
    if (hit) {
        sm_status st = voucher_times(out, now, err);
        if (st != SM_OK)
            memset(out, 0, sizeof(*out));
        return st;
    }
    char kid[SM_JOSE_KID_MAX + 1];
    sm_status st = voucher_verify(keys, iss, compact, len, now, out, kid, err);
    if (st != SM_OK)
        return st;
    pthread_mutex_lock(&cache->lock);
    memcpy(slot->digest, digest, 32);
    slot->keys = keys;
    memcpy(slot->kid, kid, sizeof(kid));
    slot->voucher = *out;
    slot->used = 1;
    pthread_mutex_unlock(&cache->lock);
    return SM_OK;
}

/* ---- payment acknowledgement -------------------------------------------- */

sm_status sm_ks_payment_ack_issue(const sm_ks_keys *keys, const char *iss, sm_ks_payment_ack *p,
                                  int64_t now, int64_t lifetime, char **compact_out,
                                  sm_error *err)
{
    *compact_out = NULL;
    sm_status st;
    if ((st = sm_ks_validate_id(p->txn, "payment: txn", err)) != SM_OK ||
        (st = sm_ks_validate_id(p->work_id, "payment: work_id", err)) != SM_OK ||
        (st = sm_ks_validate_id(p->retailer, "payment: retailer", err)) != SM_OK ||
        (st = sm_ks_validate_payment_ref(p->payment_ref, err)) != SM_OK ||
        (st = check_currency(p->currency, "payment", err)) != SM_OK)
        return st;
    if (p->amount < 0 || p->paid_at < 0)
        return sm_error_set(err, SM_ERR_ARG, "payment: amount and paid_at must not be negative");
    json_t *claims = json_pack("{s:s,s:s,s:s,s:s,s:I,s:s,s:I}", "txn", p->txn, "work_id",
                               p->work_id, "retailer", p->retailer, "payment_ref",
                               p->payment_ref, "amount", (json_int_t)p->amount, "currency",
                               p->currency, "paid_at", (json_int_t)p->paid_at);
    if (claims == NULL)
        return sm_error_set(err, SM_ERR_NOMEM, "payment: out of memory");
    st = add_time_claims(claims, iss, json_string(p->retailer), now, lifetime, &p->iat, &p->exp,
                         p->jti, "payment", err);
    if (st != SM_OK) {
        json_decref(claims);
        return st;
    }
    return sign_claims(keys, SM_KS_TYP_PAYMENT, claims, compact_out, "payment", err);
}

sm_status sm_ks_payment_ack_verify(const sm_jwks *keys, const char *iss, const char *retailer,
                                   const char *compact, size_t len, int64_t now,
                                   sm_ks_payment_ack *out, sm_error *err)
{
    static const sm_json_field fields[] = {
        REGISTERED_FIELDS,
        {"txn", SM_JSON_STRING, 1},
        {"work_id", SM_JSON_STRING, 1},
        {"retailer", SM_JSON_STRING, 1},
        {"payment_ref", SM_JSON_STRING, 1},
        {"amount", SM_JSON_INTEGER, 1},
        {"currency", SM_JSON_STRING, 1},
        {"paid_at", SM_JSON_INTEGER, 1},
        {NULL, SM_JSON_STRING, 0}};
    json_t *claims = NULL;
    memset(out, 0, sizeof(*out));
    sm_status st = verify_common(keys, iss, retailer, SM_KS_TYP_PAYMENT, compact, len, now, 0,
                                 fields, "payment acknowledgement", &claims, NULL, err);
    if (st != SM_OK)
        return st;
    const char *what = "payment acknowledgement";
    const char *ref = json_string_value(json_object_get(claims, "payment_ref"));
    const char *currency = json_string_value(json_object_get(claims, "currency"));
    json_int_t amount = json_integer_value(json_object_get(claims, "amount"));
    json_int_t paid_at = json_integer_value(json_object_get(claims, "paid_at"));
    if ((st = copy_id(claims, "txn", out->txn, sizeof(out->txn), what, err)) != SM_OK ||
        (st = copy_id(claims, "work_id", out->work_id, sizeof(out->work_id), what, err)) !=
            SM_OK ||
        (st = copy_id(claims, "retailer", out->retailer, sizeof(out->retailer), what, err)) !=
            SM_OK ||
        (st = check_currency(currency, what, err)) != SM_OK)
        goto out;
    if (sm_ks_validate_payment_ref(ref, err) != SM_OK) {
        st = sm_error_set(err, SM_ERR_CLAIM, "%s: invalid payment_ref", what);
        goto out;
    }
    if (strcmp(out->retailer, retailer) != 0) {
        st = sm_error_set(err, SM_ERR_CLAIM, "%s: issued to another retailer", what);
        goto out;
    }
    if (amount < 0 || paid_at < 0) {
        st = sm_error_set(err, SM_ERR_CLAIM, "%s: negative amount or paid_at", what);
        goto out;
    }
    memcpy(out->payment_ref, ref, strlen(ref) + 1);
    memcpy(out->currency, currency, SM_KS_CURRENCY_SIZE);
    out->amount = amount;
    out->paid_at = paid_at;
    copy_registered(claims, &out->iat, &out->exp, out->jti);
out:
    json_decref(claims);
    if (st != SM_OK)
        memset(out, 0, sizeof(*out));
    return st;
}

/* ---- delivery token ----------------------------------------------------- */

sm_status sm_ks_delivery_issue(const sm_ks_keys *keys, const char *iss,
                               const char *const *audiences, size_t n_audiences,
                               sm_ks_delivery *d, int64_t now, int64_t lifetime,
                               char **compact_out, sm_error *err)
{
    *compact_out = NULL;
    sm_status st;
    if ((st = sm_ks_validate_id(d->work_id, "delivery: work_id", err)) != SM_OK ||
        (st = sm_ks_validate_id(d->txn, "delivery: txn", err)) != SM_OK ||
        (st = check_jkt(d->jkt, "delivery", err)) != SM_OK)
        return st;
    if (n_audiences == 0 || n_audiences > SM_KS_MAX_AUDIENCES)
        return sm_error_set(err, SM_ERR_ARG, "delivery: 1 to %u media store ids are needed",
                            SM_KS_MAX_AUDIENCES);
    for (size_t i = 0; i < n_audiences; i++)
        if ((st = sm_ks_validate_id(audiences[i], "delivery: media store id", err)) != SM_OK)
            return st;
    json_t *aud = NULL;
    if (n_audiences == 1) {
        aud = json_string(audiences[0]);
    } else {
        aud = json_array();
        for (size_t i = 0; aud != NULL && i < n_audiences; i++)
            if (json_array_append_new(aud, json_string(audiences[i])) != 0) {
                json_decref(aud);
                aud = NULL;
            }
    }
    json_t *claims = json_pack("{s:s,s:s,s:s}", "work_id", d->work_id, "txn", d->txn, "jkt",
                               d->jkt);
    if (aud == NULL || claims == NULL) {
        json_decref(aud);
        json_decref(claims);
        return sm_error_set(err, SM_ERR_NOMEM, "delivery: out of memory");
    }
    st = add_time_claims(claims, iss, aud, now, lifetime, &d->iat, &d->exp, d->jti, "delivery",
                         err);
    if (st != SM_OK) {
        json_decref(claims);
        return st;
    }
    return sign_claims(keys, SM_KS_TYP_DELIVERY, claims, compact_out, "delivery", err);
}

sm_status sm_ks_delivery_verify(const sm_jwks *keys, const char *iss, const char *audience,
                                const char *compact, size_t len, int64_t now,
                                int64_t max_lifetime, sm_ks_delivery *out, sm_error *err)
{
    static const sm_json_field fields[] = {REGISTERED_FIELDS,
                                           {"work_id", SM_JSON_STRING, 1},
                                           {"txn", SM_JSON_STRING, 1},
                                           {"jkt", SM_JSON_STRING, 1},
                                           {NULL, SM_JSON_STRING, 0}};
    json_t *claims = NULL;
    memset(out, 0, sizeof(*out));
    sm_status st = verify_common(keys, iss, audience, SM_KS_TYP_DELIVERY, compact, len, now,
                                 max_lifetime, fields, "delivery token", &claims, NULL, err);
    if (st != SM_OK)
        return st;
    const char *jkt = json_string_value(json_object_get(claims, "jkt"));
    if ((st = copy_id(claims, "work_id", out->work_id, sizeof(out->work_id), "delivery token",
                      err)) != SM_OK ||
        (st = copy_id(claims, "txn", out->txn, sizeof(out->txn), "delivery token", err)) !=
            SM_OK ||
        (st = check_jkt(jkt, "delivery token", err)) != SM_OK)
        goto out;
    memcpy(out->jkt, jkt, SM_JKT_SIZE);
    copy_registered(claims, &out->iat, &out->exp, out->jti);
out:
    json_decref(claims);
    if (st != SM_OK)
        memset(out, 0, sizeof(*out));
    return st;
}
