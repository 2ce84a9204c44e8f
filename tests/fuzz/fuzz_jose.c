/* Fuzz target for the JOSE helpers: JWK and JWKS import, JWS verify, JWE
 * unwrap and DPoP verify, each fed the raw input; then the input steers a
 * few byte edits of a valid JWS, JWE and DPoP proof made at start-up with
 * throwaway keys, so the paths behind a good signature or tag are reached
 * too.
 *
 * Invariants besides "no crash, no leak, no UB": every failure carries a
 * message; an imported JWK exports and re-imports to the same key and
 * thumbprint; an edited JWE that still unwraps yields the original key; an
 * edited JWS that still verifies yields the original claims. */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sm_jose.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* cjose 0.6.2 leaks one byte per ECDH-ES decryption (the empty encrypted
 * key part); fixed upstream after 0.6.2.3. Not ours to report. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
    return "leak:libcjose.so\n";
}

#define FUZZ_NOW 1700000000
#define FUZZ_HTU "https://ks.example/v1/license"
#define FUZZ_ISS "https://ks.example"
#define FUZZ_AUD "store-1"
#define FUZZ_TYP "voucher+jwt"
#define FUZZ_KID "fuzz-ks"

static struct {
    int ready;
    sm_jwk *device;
    sm_jwks *issuer_set;
    sm_secret *media_key;
    json_t *claims;
    char *jws;
    char *jwe;
    char *dpop;
} st;

static void require(int cond, const char *what)
{
    if (!cond) {
        fprintf(stderr, "fuzz_jose: invariant violated: %s\n", what);
        abort();
    }
}

static void require_message(sm_status s, const sm_error *err)
{
    if (s != SM_OK)
        require(err->status == s && err->message[0] != '\0', "failure without a message");
}

static void setup(void)
{
    sm_error err;
    sm_jwk *issuer = NULL;
    require(sm_jwk_generate(&issuer, &err) == SM_OK, "issuer key");
    require(sm_jwk_generate(&st.device, &err) == SM_OK, "device key");
    require(sm_jwks_new(&st.issuer_set, &err) == SM_OK, "key set");
    require(sm_jwks_add(st.issuer_set, issuer, FUZZ_KID, &err) == SM_OK, "key set add");
    st.media_key = sm_secret_random(SM_JWE_KEY_LEN);
    require(st.media_key != NULL, "media key");
    st.claims = json_pack("{s:s,s:[s,s],s:i,s:i,s:s,s:s}", "iss", FUZZ_ISS, "aud", "retail-1",
                          FUZZ_AUD, "iat", FUZZ_NOW, "exp", FUZZ_NOW + 600, "jti",
                          "fuzz-jti-0123456789", "work", "w-1");
    require(st.claims != NULL, "claims");
    require(sm_jws_sign(issuer, FUZZ_KID, FUZZ_TYP, st.claims, &st.jws, &err) == SM_OK, "sign");
    require(sm_jwe_wrap_key(st.device, st.media_key, "dev-1", &st.jwe, &err) == SM_OK, "wrap");
    require(sm_dpop_create(st.device, "POST", FUZZ_HTU, FUZZ_NOW, NULL, NULL, &st.dpop, &err) ==
                SM_OK,
            "dpop");
    sm_jwk_free(issuer);
    st.ready = 1;
}

/* OpenSSL creates its DRBGs and the error queue on first use and keeps them
 * where LeakSanitizer does not look: create them here, once, with leak
 * tracking off (these weak symbols exist only in sanitizer builds). */
void __lsan_disable(void) __attribute__((weak));
void __lsan_enable(void) __attribute__((weak));

static void warm_up(void)
{
    static const char off_curve[] =
        "{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"zayDVRyPwUvQEcN8kkIhpmeY8CKVUY7O7WB-2gBy7xA\","
        "\"y\":\"zayDVRyPwUvQEcN8kkIhpmeY8CKVUY7O7WB-2gBy7xA\"}";
    LLVMFuzzerTestOneInput((const uint8_t *)st.jws, strlen(st.jws));
    LLVMFuzzerTestOneInput((const uint8_t *)st.jwe, strlen(st.jwe));
    LLVMFuzzerTestOneInput((const uint8_t *)st.dpop, strlen(st.dpop));
    LLVMFuzzerTestOneInput((const uint8_t *)off_curve, sizeof(off_curve) - 1);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    if (!st.ready) {
        if (__lsan_disable != NULL)
            __lsan_disable();
        setup();
        warm_up();
        if (__lsan_enable != NULL)
            __lsan_enable();
    }
    return 0;
}

static void fuzz_jwk(const uint8_t *data, size_t size)
{
    sm_error err;
    sm_jwk *k = NULL;
    sm_status s = sm_jwk_from_json((const char *)data, size, &k, &err);
    require_message(s, &err);
    if (s != SM_OK) {
        require(k == NULL, "output set on failure");
        return;
    }
    char jkt[SM_JKT_SIZE], jkt2[SM_JKT_SIZE];
    require(sm_jwk_thumbprint(k, jkt, &err) == SM_OK && strlen(jkt) == 43, "thumbprint");
    char *json = sm_jwk_to_json(k, sm_jwk_has_private(k), &err);
    require(json != NULL, "export");
    sm_jwk *back = NULL;
    require(sm_jwk_from_json(json, strlen(json), &back, &err) == SM_OK, "re-import");
    require(sm_jwk_same_public(k, back) && sm_jwk_has_private(k) == sm_jwk_has_private(back),
            "re-imported key differs");
    require(sm_jwk_thumbprint(back, jkt2, &err) == SM_OK && strcmp(jkt, jkt2) == 0,
            "re-imported thumbprint differs");
    sm_jwk_json_free(json);
    sm_jwk_free(back);
    sm_jwk_free(k);
}

static sm_status verify_jws(const char *tok, size_t len, json_t **claims)
{
    sm_error err;
    sm_jws_expect e;
    sm_jws_expect_init(&e, FUZZ_ISS, FUZZ_AUD, FUZZ_TYP);
    e.now = FUZZ_NOW;
    sm_status s = sm_jws_verify(tok, len, st.issuer_set, &e, claims, NULL, &err);
    require_message(s, &err);
    require((s == SM_OK) == (*claims != NULL), "claims output and status disagree");
    return s;
}

static sm_status unwrap(const char *tok, size_t len, sm_secret **key)
{
    sm_error err;
    sm_status s = sm_jwe_unwrap_key(st.device, tok, len, key, &err);
    require_message(s, &err);
    require((s == SM_OK) == (*key != NULL), "key output and status disagree");
    return s;
}

static sm_status verify_dpop(const char *tok, size_t len)
{
    sm_error err;
    sm_dpop_expect e;
    sm_dpop_expect_init(&e, "POST", FUZZ_HTU);
    e.now = FUZZ_NOW;
    sm_dpop_result res;
    sm_status s = sm_dpop_verify(tok, len, &e, &res, &err);
    require_message(s, &err);
    if (s == SM_OK)
        require(strlen(res.jkt) == 43 && res.jti[0] != '\0', "result fields");
    return s;
}

/* A copy of tok with up to 8 single-byte edits steered by data. */
static char *edit(const char *tok, const uint8_t *data, size_t size, size_t *len)
{
    size_t n = strlen(tok);
    char *out = malloc(n + 1);
    require(out != NULL, "malloc");
    memcpy(out, tok, n + 1);
    for (size_t i = 0; i + 2 < size && i < 24; i += 3) {
        size_t pos = ((size_t)data[i] << 8 | data[i + 1]) % n;
        out[pos] = (char)data[i + 2];
    }
    *len = n;
    return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!st.ready)
        LLVMFuzzerInitialize(NULL, NULL);
    const char *in = (const char *)data;

    fuzz_jwk(data, size);

    sm_error err;
    sm_jwks *set = NULL;
    sm_status s = sm_jwks_from_json(in, size, &set, &err);
    require_message(s, &err);
    if (s == SM_OK) {
        char *doc = sm_jwks_to_json(set, &err);
        require(doc != NULL, "JWKS export");
        sm_jwks *back = NULL;
        require(sm_jwks_from_json(doc, strlen(doc), &back, &err) == SM_OK &&
                    sm_jwks_count(back) == sm_jwks_count(set),
                "JWKS re-import");
        sm_jwks_free(back);
        free(doc);
    }
    sm_jwks_free(set);

    json_t *claims = NULL;
    verify_jws(in, size, &claims);
    json_decref(claims);
    sm_secret *key = NULL;
    unwrap(in, size, &key);
    sm_secret_free(key);
    verify_dpop(in, size);

    if (size >= 3) {
        size_t len = 0;
        char *t = edit(st.jws, data, size, &len);
        claims = NULL;
        if (verify_jws(t, len, &claims) == SM_OK)
            require(json_equal(claims, st.claims), "edited JWS verified with other claims");
        json_decref(claims);
        free(t);

        t = edit(st.jwe, data, size, &len);
        key = NULL;
        if (unwrap(t, len, &key) == SM_OK)
            require(key->len == st.media_key->len &&
                        sm_ct_equal(key->bytes, st.media_key->bytes, key->len),
                    "edited JWE unwrapped to another key");
        sm_secret_free(key);
        free(t);

        t = edit(st.dpop, data, size, &len);
        verify_dpop(t, len);
        free(t);
    }
    return 0;
}
