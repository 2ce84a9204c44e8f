#include "config.h"

/* Unit tests for the key server's KEK (common/sm_ks_kek.h) and its own keys
 * (common/sm_ks_keys.h): KEK file parsing and modes, wrap/unwrap bound to
 * work id and versions, rotation and re-wrap, signing key set and JWKS,
 * media-key JWE to the key server. */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <check.h>

#include "sm_jose.h"
#include "sm_ks_kek.h"
#include "sm_ks_keys.h"
#include "sm_test.h"

/* 32 bytes of 0x00..0x1f and of 0x20..0x3f in base64url. */
#define K1 "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"
#define K2 "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8"

static sm_ks_kek *parse_ok(const char *doc)
{
    sm_ks_kek *kek = NULL;
    sm_error err = {0};
    sm_status st = sm_ks_kek_parse((const uint8_t *)doc, strlen(doc), "test", &kek, &err);
    ck_assert_msg(st == SM_OK, "parse failed: %s", err.message);
    return kek;
}

static sm_secret *media_key(uint8_t fill)
{
    sm_secret *k = sm_secret_new(32);
    ck_assert_ptr_nonnull(k);
    memset(k->bytes, fill, 32);
    return k;
}

START_TEST(test_kek_parse_and_wrap)
{
    sm_ks_kek *kek = parse_ok("{\"format\":\"secmedia-kek/1\",\"current\":2,\"keys\":["
                              "{\"version\":1,\"key\":\"" K1 "\"},"
                              "{\"version\":2,\"key\":\"" K2 "\"}]}");
    ck_assert_uint_eq(sm_ks_kek_current_version(kek), 2);
    ck_assert(sm_ks_kek_has_version(kek, 1));
    ck_assert(!sm_ks_kek_has_version(kek, 3));
    ck_assert_uint_eq(sm_ks_kek_version_count(kek), 2);

    sm_secret *mk = media_key(0xab);
    uint8_t wrapped[SM_KS_WRAPPED_KEY_LEN], wrapped2[SM_KS_WRAPPED_KEY_LEN];
    uint32_t kv = 0;
    sm_error err = {0};
    ck_assert_int_eq(sm_ks_kek_wrap(kek, "work-1", 1, mk, wrapped, &kv, &err), SM_OK);
    ck_assert_uint_eq(kv, 2);
    ck_assert_uint_eq(wrapped[0], SM_KS_WRAPPED_KEY_FORMAT);
    /* Fresh nonce per wrap: two wraps of one key differ. */
    ck_assert_int_eq(sm_ks_kek_wrap(kek, "work-1", 1, mk, wrapped2, NULL, &err), SM_OK);
    ck_assert(memcmp(wrapped, wrapped2, sizeof(wrapped)) != 0);

    sm_secret *out = NULL;
    ck_assert_int_eq(sm_ks_kek_unwrap(kek, "work-1", 1, 2, wrapped, sizeof(wrapped), &out, &err),
                     SM_OK);
    ck_assert_mem_eq(out->bytes, mk->bytes, 32);
    sm_secret_free(out);

    /* Bound to the work, the key version and the KEK version. */
    ck_assert_int_eq(sm_ks_kek_unwrap(kek, "work-2", 1, 2, wrapped, sizeof(wrapped), &out, &err),
                     SM_ERR_AUTH);
    ck_assert_ptr_null(out);
    ck_assert_ptr_nonnull(strstr(err.message, "another work"));
    ck_assert_int_eq(sm_ks_kek_unwrap(kek, "work-1", 2, 2, wrapped, sizeof(wrapped), &out, &err),
                     SM_ERR_AUTH);
    ck_assert_int_eq(sm_ks_kek_unwrap(kek, "work-1", 1, 1, wrapped, sizeof(wrapped), &out, &err),
                     SM_ERR_AUTH);
    ck_assert_int_eq(sm_ks_kek_unwrap(kek, "work-1", 1, 7, wrapped, sizeof(wrapped), &out, &err),
                     SM_ERR_KEY);
    /* Any flipped bit fails. */
    for (size_t i = 1; i < sizeof(wrapped); i++) {
        wrapped[i] ^= 0x01;
        ck_assert_int_eq(
            sm_ks_kek_unwrap(kek, "work-1", 1, 2, wrapped, sizeof(wrapped), &out, &err),
            SM_ERR_AUTH);
        wrapped[i] ^= 0x01;
    }
    wrapped[0] = 2;
    ck_assert_int_eq(sm_ks_kek_unwrap(kek, "work-1", 1, 2, wrapped, sizeof(wrapped), &out, &err),
                     SM_ERR_FORMAT);
    ck_assert_int_eq(sm_ks_kek_unwrap(kek, "work-1", 1, 2, wrapped, 60, &out, &err),
                     SM_ERR_FORMAT);
    /* Bad inputs to wrap. */
    ck_assert_int_eq(sm_ks_kek_wrap(kek, "../etc", 1, mk, wrapped, NULL, &err), SM_ERR_FORMAT);
    ck_assert_int_eq(sm_ks_kek_wrap(kek, "work-1", 0, mk, wrapped, NULL, &err), SM_ERR_ARG);
    sm_secret *short_key = sm_secret_new(16);
    ck_assert_int_eq(sm_ks_kek_wrap(kek, "work-1", 1, short_key, wrapped, NULL, &err),
                     SM_ERR_KEY);
    sm_secret_free(short_key);
    sm_secret_free(mk);
    sm_ks_kek_free(kek);
}
END_TEST

START_TEST(test_kek_rotation)
{
    sm_ks_kek *kek = NULL;
    sm_error err = {0};
    ck_assert_int_eq(sm_ks_kek_generate(&kek, &err), SM_OK);
    ck_assert_uint_eq(sm_ks_kek_current_version(kek), 1);
    sm_secret *mk = media_key(0x5a);
    uint8_t w1[SM_KS_WRAPPED_KEY_LEN], w2[SM_KS_WRAPPED_KEY_LEN];
    uint32_t v1 = 0, v2 = 0;
    ck_assert_int_eq(sm_ks_kek_wrap(kek, "w", 3, mk, w1, &v1, &err), SM_OK);
    ck_assert_uint_eq(v1, 1);

    ck_assert_int_eq(sm_ks_kek_add_version(kek, &err), SM_OK);
    ck_assert_uint_eq(sm_ks_kek_current_version(kek), 2);
    /* The old version still unwraps; re-wrap moves the key to version 2. */
    ck_assert_int_eq(sm_ks_kek_rewrap(kek, "w", 3, v1, w1, sizeof(w1), w2, &v2, &err), SM_OK);
    ck_assert_uint_eq(v2, 2);
    ck_assert_int_eq(sm_ks_kek_remove_version(kek, 2, &err), SM_ERR_ARG); /* current */
    ck_assert_int_eq(sm_ks_kek_remove_version(kek, 1, &err), SM_OK);
    ck_assert_int_eq(sm_ks_kek_remove_version(kek, 1, &err), SM_ERR_KEY);
    sm_secret *out = NULL;
    ck_assert_int_eq(sm_ks_kek_unwrap(kek, "w", 3, 1, w1, sizeof(w1), &out, &err), SM_ERR_KEY);
    ck_assert_int_eq(sm_ks_kek_unwrap(kek, "w", 3, 2, w2, sizeof(w2), &out, &err), SM_OK);
    ck_assert_mem_eq(out->bytes, mk->bytes, 32);
    sm_secret_free(out);

    /* Serialize, parse back: same keys. */
    sm_secret *doc = NULL;
    ck_assert_int_eq(sm_ks_kek_serialize(kek, &doc, &err), SM_OK);
    sm_ks_kek *again = NULL;
    ck_assert_int_eq(sm_ks_kek_parse(doc->bytes, doc->len, "again", &again, &err), SM_OK);
    sm_secret_free(doc);
    ck_assert_int_eq(sm_ks_kek_unwrap(again, "w", 3, 2, w2, sizeof(w2), &out, &err), SM_OK);
    ck_assert_mem_eq(out->bytes, mk->bytes, 32);
    sm_secret_free(out);
    sm_ks_kek_free(again);
    sm_secret_free(mk);
    sm_ks_kek_free(kek);
}
END_TEST

static const struct {
    const char *doc;
    sm_status status;
    const char *message_part;
} bad_keks[] = {
    {"", SM_ERR_FORMAT, "invalid JSON"},
    {"[]", SM_ERR_FORMAT, "object"},
    {"{\"format\":\"secmedia-kek/2\",\"current\":1,\"keys\":[{\"version\":1,\"key\":\"" K1 "\"}]}",
     SM_ERR_UNSUPPORTED, "format"},
    {"{\"format\":\"secmedia-kek/1\",\"current\":2,\"keys\":[{\"version\":1,\"key\":\"" K1 "\"}]}",
     SM_ERR_KEY, "current version 2"},
    {"{\"format\":\"secmedia-kek/1\",\"current\":1,\"keys\":[]}", SM_ERR_FORMAT, "1 to 64"},
    {"{\"format\":\"secmedia-kek/1\",\"current\":1,\"keys\":[{\"version\":1,\"key\":\"" K1
     "\"},{\"version\":1,\"key\":\"" K2 "\"}]}",
     SM_ERR_FORMAT, "twice"},
    {"{\"format\":\"secmedia-kek/1\",\"current\":0,\"keys\":[{\"version\":0,\"key\":\"" K1 "\"}]}",
     SM_ERR_FORMAT, "version"},
    {"{\"format\":\"secmedia-kek/1\",\"current\":1,\"keys\":[{\"version\":1,\"key\":\"AAEC\"}]}",
     SM_ERR_KEY, "32 bytes"},
    /* Last character with non-zero unused bits: not canonical. */
    {"{\"format\":\"secmedia-kek/1\",\"current\":1,\"keys\":[{\"version\":1,\"key\":"
     "\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh9\"}]}",
     SM_ERR_KEY, "canonical"},
    /* Characters outside base64url: refused, never an abort in a decoder. */
    {"{\"format\":\"secmedia-kek/1\",\"current\":1,\"keys\":[{\"version\":1,\"key\":"
     "\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdH+8\"}]}",
     SM_ERR_KEY, "canonical"},
    {"{\"format\":\"secmedia-kek/1\",\"current\":1,\"keys\":[{\"version\":1,\"key\":"
     "\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwd!!!\"}]}",
     SM_ERR_KEY, "canonical"},
    {"{\"format\":\"secmedia-kek/1\",\"current\":1,\"keys\":[{\"version\":1,\"key\":\"" K1
     "\",\"alg\":\"A256GCM\"}]}",
     SM_ERR_FORMAT, "unknown field"},
    {"{\"format\":\"secmedia-kek/1\",\"current\":1,\"current\":1,\"keys\":[]}", SM_ERR_FORMAT,
     "duplicate"},
    {"{\"format\":\"secmedia-kek/1\",\"current\":\"1\",\"keys\":[{\"version\":1,\"key\":\"" K1
     "\"}]}",
     SM_ERR_FORMAT, "integer"},
    {"{\"format\":\"secmedia-kek/1\",\"current\":1,\"keys\":[{\"version\":1,\"key\":\"" K1
     "\"}]} x",
     SM_ERR_FORMAT, "invalid JSON"},
};

START_TEST(test_kek_bad_documents)
{
    sm_ks_kek *kek = (sm_ks_kek *)1;
    sm_error err = {0};
    const char *doc = bad_keks[_i].doc;
    sm_status st = sm_ks_kek_parse((const uint8_t *)doc, strlen(doc), "KEK file x", &kek, &err);
    ck_assert_msg(st == bad_keks[_i].status, "case %d: status %s (%s)", _i, sm_status_name(st),
                  err.message);
    ck_assert_ptr_null(kek);
    ck_assert_msg(strstr(err.message, bad_keks[_i].message_part) != NULL, "case %d: %s", _i,
                  err.message);
    /* Never the key material in a message. */
    ck_assert_ptr_null(strstr(err.message, "AAECAwQF"));
}
END_TEST

START_TEST(test_kek_file_modes)
{
    const char *dir = smt_tmpdir();
    char path[512];
    snprintf(path, sizeof(path), "%s/kek.json", dir);
    sm_ks_kek *kek = NULL, *loaded = NULL;
    sm_error err = {0};
    ck_assert_int_eq(sm_ks_kek_generate(&kek, &err), SM_OK);
    ck_assert_int_eq(sm_ks_kek_save(kek, path, 0, &err), SM_OK);
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_uint_eq(st.st_mode & 0777, 0600);
    ck_assert_int_eq(sm_ks_kek_save(kek, path, 0, &err), SM_ERR_IO); /* no overwrite */
    ck_assert_int_eq(sm_ks_kek_load(path, &loaded, &err), SM_OK);
    ck_assert_uint_eq(sm_ks_kek_current_version(loaded), 1);
    sm_ks_kek_free(loaded);
    loaded = NULL;
    chmod(path, 0640);
    ck_assert_int_eq(sm_ks_kek_load(path, &loaded, &err), SM_ERR_KEY);
    ck_assert_ptr_nonnull(strstr(err.message, "chmod 600"));
    ck_assert_ptr_null(loaded);
    chmod(path, 0604);
    ck_assert_int_eq(sm_ks_kek_load(path, &loaded, &err), SM_ERR_KEY);
    snprintf(path, sizeof(path), "%s/missing.json", dir);
    ck_assert_int_eq(sm_ks_kek_load(path, &loaded, &err), SM_ERR_IO);
    sm_ks_kek_free(kek);
    smt_rm_rf(dir);
}
END_TEST

/* ---- key server keys -------------------------------------------------- */

static sm_jwk *new_key(void)
{
    sm_jwk *k = NULL;
    sm_error err = {0};
    ck_assert_int_eq(sm_jwk_generate(&k, &err), SM_OK);
    return k;
}

START_TEST(test_keys_set)
{
    sm_ks_keys *keys = NULL;
    sm_error err = {0};
    ck_assert_int_eq(sm_ks_keys_new(&keys, &err), SM_OK);
    ck_assert_int_eq(sm_ks_keys_check(keys, &err), SM_ERR_KEY);
    ck_assert_ptr_nonnull(strstr(err.message, "no signing key"));

    sm_jwk *old = new_key(), *cur = new_key(), *enc = new_key(), *dup = NULL;
    ck_assert_int_eq(sm_ks_keys_add_signing(keys, old, "ks-2024", 0, &err), SM_OK);
    ck_assert_int_eq(sm_ks_keys_check(keys, &err), SM_ERR_KEY);
    ck_assert_ptr_nonnull(strstr(err.message, "active"));
    ck_assert_int_eq(sm_ks_keys_add_signing(keys, cur, "ks-2025", 1, &err), SM_OK);
    /* A second active key, a repeated kid and a repeated key are refused. */
    sm_jwk *extra = new_key();
    ck_assert_int_eq(sm_ks_keys_add_signing(keys, extra, "ks-2026", 1, &err), SM_ERR_ARG);
    ck_assert_int_eq(sm_ks_keys_add_signing(keys, extra, "ks-2025", 0, &err), SM_ERR_ARG);
    ck_assert_int_eq(sm_jwk_public_copy(cur, &dup, &err), SM_OK);
    ck_assert_int_eq(sm_ks_keys_add_signing(keys, dup, "ks-x", 0, &err), SM_ERR_KEY); /* public */
    sm_jwk_free(dup);
    sm_jwk_free(extra);

    ck_assert_int_eq(sm_ks_keys_check(keys, &err), SM_ERR_KEY);
    ck_assert_ptr_nonnull(strstr(err.message, "encryption"));
    ck_assert_int_eq(sm_ks_keys_set_encryption(keys, enc, "ks-enc-1", &err), SM_OK);
    ck_assert_int_eq(sm_ks_keys_check(keys, &err), SM_OK);
    ck_assert_str_eq(sm_ks_keys_active_kid(keys), "ks-2025");

    /* JWKS: both signing keys, public only, not the encryption key. */
    char *jwks_json = sm_ks_keys_jwks_json(keys, &err);
    ck_assert_ptr_nonnull(jwks_json);
    ck_assert_ptr_nonnull(strstr(jwks_json, "\"ks-2024\""));
    ck_assert_ptr_nonnull(strstr(jwks_json, "\"ks-2025\""));
    ck_assert_ptr_null(strstr(jwks_json, "ks-enc-1"));
    ck_assert_ptr_null(strstr(jwks_json, "\"d\""));
    sm_jwks *parsed = NULL;
    ck_assert_int_eq(sm_jwks_from_json(jwks_json, strlen(jwks_json), &parsed, &err), SM_OK);
    free(jwks_json);

    /* Signing uses the active key; verification by the published set. */
    json_t *claims = json_pack("{s:s,s:s,s:i,s:i,s:s}", "iss", "https://ks", "aud", "x", "iat",
                               1700000000, "exp", 1700000600, "jti", "abcdefghijklmnopqrstuv");
    char *token = NULL, kid[SM_JOSE_KID_MAX + 1];
    ck_assert_int_eq(sm_ks_keys_sign(keys, "test+jwt", claims, &token, &err), SM_OK);
    json_decref(claims);
    sm_jws_expect e;
    sm_jws_expect_init(&e, "https://ks", "x", "test+jwt");
    e.now = 1700000100;
    json_t *got = NULL;
    ck_assert_int_eq(sm_jws_verify(token, strlen(token), parsed, &e, &got, kid, &err), SM_OK);
    ck_assert_str_eq(kid, "ks-2025");
    json_decref(got);
    free(token);
    sm_jwks_free(parsed);

    char *enc_pub = sm_ks_keys_encryption_jwk_json(keys, &err);
    ck_assert_ptr_nonnull(enc_pub);
    ck_assert_ptr_nonnull(strstr(enc_pub, "ks-enc-1"));
    ck_assert_ptr_null(strstr(enc_pub, "\"d\""));
    sm_jwk_json_free(enc_pub);
    sm_ks_keys_free(keys);
}
END_TEST

START_TEST(test_keys_encryption_must_differ)
{
    sm_ks_keys *keys = NULL;
    sm_error err = {0};
    ck_assert_int_eq(sm_ks_keys_new(&keys, &err), SM_OK);
    sm_jwk *k = new_key();
    ck_assert_int_eq(sm_ks_keys_add_signing(keys, k, "sig", 1, &err), SM_OK);
    char *json = sm_jwk_to_json(k, 1, &err);
    sm_jwk *same = NULL;
    ck_assert_int_eq(sm_jwk_from_json(json, strlen(json), &same, &err), SM_OK);
    sm_jwk_json_free(json);
    ck_assert_int_eq(sm_ks_keys_set_encryption(keys, same, "enc", &err), SM_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(err.message, "separate keys"));
    sm_jwk_free(same);
    sm_ks_keys_free(keys);
}
END_TEST

START_TEST(test_keys_unwrap_media_key)
{
    sm_ks_keys *keys = NULL;
    sm_error err = {0};
    ck_assert_int_eq(sm_ks_keys_new(&keys, &err), SM_OK);
    ck_assert_int_eq(sm_ks_keys_add_signing(keys, new_key(), "sig", 1, &err), SM_OK);
    sm_jwk *enc = new_key();
    sm_jwk *enc_pub = NULL;
    ck_assert_int_eq(sm_jwk_public_copy(enc, &enc_pub, &err), SM_OK);
    ck_assert_int_eq(sm_ks_keys_set_encryption(keys, enc, "ks-enc", &err), SM_OK);

    sm_secret *mk = media_key(0x11), *out = NULL;
    char *jwe = NULL;
    ck_assert_int_eq(sm_jwe_wrap_key(enc_pub, mk, "ks-enc", &jwe, &err), SM_OK);
    ck_assert_int_eq(sm_ks_keys_unwrap_media_key(keys, jwe, strlen(jwe), &out, &err), SM_OK);
    ck_assert_mem_eq(out->bytes, mk->bytes, 32);
    sm_secret_free(out);
    out = NULL;
    free(jwe);
    /* No kid, or the sender's own label as kid (`pack` writes
     * "<work id>:<key version>"), is fine. */
    ck_assert_int_eq(sm_jwe_wrap_key(enc_pub, mk, NULL, &jwe, &err), SM_OK);
    ck_assert_int_eq(sm_ks_keys_unwrap_media_key(keys, jwe, strlen(jwe), &out, &err), SM_OK);
    sm_secret_free(out);
    out = NULL;
    free(jwe);
    ck_assert_int_eq(sm_jwe_wrap_key(enc_pub, mk, "work-1:1", &jwe, &err), SM_OK);
    ck_assert_int_eq(sm_ks_keys_unwrap_media_key(keys, jwe, strlen(jwe), &out, &err), SM_OK);
    ck_assert_mem_eq(out->bytes, mk->bytes, 32);
    sm_secret_free(out);
    out = NULL;
    free(jwe);
    /* To another key: auth failure. */
    sm_jwk *other = new_key();
    ck_assert_int_eq(sm_jwe_wrap_key(other, mk, NULL, &jwe, &err), SM_OK);
    ck_assert_int_eq(sm_ks_keys_unwrap_media_key(keys, jwe, strlen(jwe), &out, &err),
                     SM_ERR_AUTH);
    free(jwe);
    sm_jwk_free(other);
    sm_jwk_free(enc_pub);
    sm_secret_free(mk);
    sm_ks_keys_free(keys);
}
END_TEST

static Suite *kek_suite(void)
{
    Suite *s = suite_create("ks_kek");
    TCase *tc = tcase_create("kek");
    tcase_add_test(tc, test_kek_parse_and_wrap);
    tcase_add_test(tc, test_kek_rotation);
    tcase_add_loop_test(tc, test_kek_bad_documents, 0,
                        (int)(sizeof(bad_keks) / sizeof(bad_keks[0])));
    tcase_add_test(tc, test_kek_file_modes);
    suite_add_tcase(s, tc);
    TCase *keys = tcase_create("keys");
    tcase_add_test(keys, test_keys_set);
    tcase_add_test(keys, test_keys_encryption_must_differ);
    tcase_add_test(keys, test_keys_unwrap_media_key);
    suite_add_tcase(s, keys);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(kek_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
