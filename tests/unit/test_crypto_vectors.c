/* Wycheproof AES-GCM and HKDF vectors through sm_aead_* and sm_hkdf.
 *
 * Every vector is run; none is skipped. Parameter sizes the wrapper does not
 * support by design (nonces longer than SM_GCM_NONCE_MAX, empty nonces, tags
 * outside 12..16 bytes) must be rejected with SM_ERR_ARG, and are counted
 * separately so the summary shows them. */
#include "config.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/hmac.h>

#include "sm_crypto.h"
#include "sm_test.h"

typedef struct gcm_counts {
    int total;
    int valid_passed;
    int invalid_rejected;
    int valid_rejected_by_design;
    int invalid_rejected_by_design;
} gcm_counts;

static int all_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != 0)
            return 0;
    return 1;
}

static int wrapper_supports(size_t nonce_len, size_t tag_len)
{
    return nonce_len >= 1 && nonce_len <= SM_GCM_NONCE_MAX && tag_len >= 12 &&
           tag_len <= SM_GCM_TAG_LEN;
}

static void run_gcm_vector(json_t *test, size_t tag_len, gcm_counts *counts)
{
    int tc_id = (int)json_integer_value(json_object_get(test, "tcId"));
    const char *result = json_string_value(json_object_get(test, "result"));
    int expect_valid = strcmp(result, "valid") == 0;
    ck_assert_msg(expect_valid || strcmp(result, "invalid") == 0, "tc %d: result %s", tc_id,
                  result);
    size_t key_len, iv_len, aad_len, msg_len, ct_len, tag_hex_len;
    uint8_t *key = smt_hex_decode(json_string_value(json_object_get(test, "key")), &key_len);
    uint8_t *iv = smt_hex_decode(json_string_value(json_object_get(test, "iv")), &iv_len);
    uint8_t *aad = smt_hex_decode(json_string_value(json_object_get(test, "aad")), &aad_len);
    uint8_t *msg = smt_hex_decode(json_string_value(json_object_get(test, "msg")), &msg_len);
    uint8_t *ct = smt_hex_decode(json_string_value(json_object_get(test, "ct")), &ct_len);
    uint8_t *tag = smt_hex_decode(json_string_value(json_object_get(test, "tag")), &tag_hex_len);
    ck_assert_uint_eq(tag_hex_len, tag_len);
    ck_assert_uint_eq(msg_len, ct_len);

    sm_aead *aead = NULL;
    sm_error err;
    ck_assert_msg(sm_aead_new(key, key_len, &aead, &err) == SM_OK, "tc %d: %s", tc_id,
                  err.message);
    uint8_t *out = malloc(msg_len + 1);
    uint8_t out_tag[SM_GCM_TAG_LEN];
    counts->total++;

    if (!wrapper_supports(iv_len, tag_len)) {
        /* Explicitly outside the wrapper's contract: it must say so, not guess. */
        ck_assert_int_eq(sm_aead_seal(aead, iv, iv_len, aad, aad_len, msg, msg_len, out, out_tag,
                                      tag_len, &err),
                         SM_ERR_ARG);
        ck_assert_int_eq(sm_aead_open(aead, iv, iv_len, aad, aad_len, ct, ct_len, tag, tag_len,
                                      out, &err),
                         SM_ERR_ARG);
        if (expect_valid)
            counts->valid_rejected_by_design++;
        else
            counts->invalid_rejected_by_design++;
    } else {
        sm_status seal = sm_aead_seal(aead, iv, iv_len, aad, aad_len, msg, msg_len, out, out_tag,
                                      tag_len, &err);
        ck_assert_msg(seal == SM_OK, "tc %d: seal: %s", tc_id, err.message);
        if (expect_valid) {
            ck_assert_msg(memcmp(out, ct, ct_len) == 0, "tc %d: ciphertext differs", tc_id);
            ck_assert_msg(memcmp(out_tag, tag, tag_len) == 0, "tc %d: tag differs", tc_id);
        }
        memset(out, 0xa5, msg_len + 1);
        sm_status open = sm_aead_open(aead, iv, iv_len, aad, aad_len, ct, ct_len, tag, tag_len,
                                      out, &err);
        if (expect_valid) {
            ck_assert_msg(open == SM_OK, "tc %d: open: %s", tc_id, err.message);
            ck_assert_msg(memcmp(out, msg, msg_len) == 0, "tc %d: plaintext differs", tc_id);
            counts->valid_passed++;
        } else {
            ck_assert_msg(open == SM_ERR_AUTH, "tc %d (%s): open returned %s", tc_id,
                          json_string_value(json_object_get(test, "comment")),
                          sm_status_name(open));
            ck_assert_msg(all_zero(out, msg_len), "tc %d: plaintext not wiped", tc_id);
            ck_assert_msg(out[msg_len] == 0xa5, "tc %d: wrote past the plaintext", tc_id);
            counts->invalid_rejected++;
        }
    }
    sm_aead_free(aead);
    free(out);
    free(key);
    free(iv);
    free(aad);
    free(msg);
    free(ct);
    free(tag);
}

START_TEST(test_aes_gcm_vectors)
{
    json_t *root = smt_load_wycheproof("aes_gcm_test.json");
    gcm_counts counts = {0};
    size_t g;
    json_t *group;
    json_array_foreach(json_object_get(root, "testGroups"), g, group) {
        size_t tag_bits = (size_t)json_integer_value(json_object_get(group, "tagSize"));
        ck_assert_uint_eq(tag_bits % 8, 0);
        size_t t;
        json_t *test;
        json_array_foreach(json_object_get(group, "tests"), t, test)
            run_gcm_vector(test, tag_bits / 8, &counts);
    }
    int expected_total = (int)json_integer_value(json_object_get(root, "numberOfTests"));
    printf("aes_gcm_test.json: %d vectors: %d valid passed, %d invalid rejected, %d valid "
           "rejected by design (unsupported nonce/tag size), %d invalid rejected by design\n",
           counts.total, counts.valid_passed, counts.invalid_rejected,
           counts.valid_rejected_by_design, counts.invalid_rejected_by_design);
    fflush(stdout);
    ck_assert_int_eq(counts.total, expected_total);
    ck_assert_int_eq(counts.valid_passed + counts.invalid_rejected +
                         counts.valid_rejected_by_design + counts.invalid_rejected_by_design,
                     expected_total);
    /* Only the very long nonces (OpenSSL's 128-byte limit) may be refused. */
    ck_assert_int_le(counts.valid_rejected_by_design, 3);
    json_decref(root);
}
END_TEST

START_TEST(test_aead_wrapper_arguments)
{
    uint8_t key[32] = {1}, nonce[12] = {2}, pt[32] = {3}, ct[32], tag[16];
    sm_aead *aead = NULL;
    sm_error err;
    ck_assert_int_eq(sm_aead_new(key, 20, &aead, &err), SM_ERR_KEY);
    ck_assert_ptr_null(aead);
    ck_assert_int_eq(sm_aead_new(key, 32, &aead, &err), SM_OK);
    ck_assert_int_eq(sm_aead_seal(aead, nonce, 12, NULL, 0, pt, 32, ct, tag, 11, &err), SM_ERR_ARG);
    ck_assert_int_eq(sm_aead_seal(aead, nonce, 12, NULL, 0, pt, 32, ct, tag, 17, &err), SM_ERR_ARG);
    ck_assert_int_eq(sm_aead_seal(aead, nonce, 0, NULL, 0, pt, 32, ct, tag, 16, &err), SM_ERR_ARG);
    /* In place both ways, and a truncated 12-byte tag. */
    uint8_t buf[32];
    memcpy(buf, pt, sizeof(buf));
    ck_assert_int_eq(sm_aead_seal(aead, nonce, 12, NULL, 0, buf, 32, buf, tag, 12, &err), SM_OK);
    ck_assert_int_eq(sm_aead_open(aead, nonce, 12, NULL, 0, buf, 32, tag, 12, buf, &err), SM_OK);
    ck_assert_mem_eq(buf, pt, sizeof(pt));
    tag[0] ^= 1;
    ck_assert_int_eq(sm_aead_open(aead, nonce, 12, NULL, 0, ct, 32, tag, 12, buf, &err),
                     SM_ERR_AUTH);
    ck_assert_ptr_nonnull(strstr(err.message, "authentication failed"));
    sm_aead_free(aead);
}
END_TEST

typedef struct hkdf_counts {
    int total, valid_passed, invalid_rejected;
} hkdf_counts;

static void run_hkdf_file(const char *file, const char *digest, size_t digest_len)
{
    json_t *root = smt_load_wycheproof(file);
    hkdf_counts counts = {0};
    size_t g;
    json_t *group;
    json_array_foreach(json_object_get(root, "testGroups"), g, group) {
        size_t t;
        json_t *test;
        json_array_foreach(json_object_get(group, "tests"), t, test) {
            int tc_id = (int)json_integer_value(json_object_get(test, "tcId"));
            int expect_valid =
                strcmp(json_string_value(json_object_get(test, "result")), "valid") == 0;
            size_t ikm_len, salt_len, info_len, okm_len;
            uint8_t *ikm = smt_hex_decode(json_string_value(json_object_get(test, "ikm")), &ikm_len);
            uint8_t *salt =
                smt_hex_decode(json_string_value(json_object_get(test, "salt")), &salt_len);
            uint8_t *info =
                smt_hex_decode(json_string_value(json_object_get(test, "info")), &info_len);
            uint8_t *okm = smt_hex_decode(json_string_value(json_object_get(test, "okm")), &okm_len);
            size_t size = (size_t)json_integer_value(json_object_get(test, "size"));
            uint8_t *out = malloc(size + 1);
            sm_error err;
            sm_status st = sm_hkdf(digest, SM_HKDF_EXTRACT_AND_EXPAND, salt, salt_len, ikm,
                                   ikm_len, info, info_len, out, size, &err);
            counts.total++;
            if (expect_valid) {
                ck_assert_msg(st == SM_OK, "%s tc %d: %s", file, tc_id, err.message);
                ck_assert_uint_eq(okm_len, size);
                ck_assert_msg(memcmp(out, okm, size) == 0, "%s tc %d: okm differs", file, tc_id);
                /* The same result through EXPAND_ONLY from PRK = HMAC(salt, ikm)
                 * (RFC 5869: an empty salt means HashLen zero bytes). */
                uint8_t prk[64], zero_salt[64] = {0};
                unsigned prk_len = 0;
                HMAC(digest_len == 32 ? EVP_sha256() : EVP_sha512(),
                     salt_len > 0 ? salt : zero_salt, salt_len > 0 ? (int)salt_len : (int)digest_len,
                     ikm, ikm_len, prk, &prk_len);
                ck_assert_uint_eq(prk_len, digest_len);
                st = sm_hkdf(digest, SM_HKDF_EXPAND_ONLY, NULL, 0, prk, prk_len, info, info_len,
                             out, size, &err);
                ck_assert_msg(st == SM_OK, "%s tc %d expand-only: %s", file, tc_id, err.message);
                ck_assert_msg(memcmp(out, okm, size) == 0, "%s tc %d: expand-only differs", file,
                              tc_id);
                counts.valid_passed++;
            } else {
                ck_assert_msg(st != SM_OK, "%s tc %d: invalid vector accepted", file, tc_id);
                ck_assert_int_eq(st, SM_ERR_ARG);
                counts.invalid_rejected++;
            }
            free(out);
            free(ikm);
            free(salt);
            free(info);
            free(okm);
        }
    }
    int expected_total = (int)json_integer_value(json_object_get(root, "numberOfTests"));
    printf("%s: %d vectors: %d valid passed, %d invalid rejected\n", file, counts.total,
           counts.valid_passed, counts.invalid_rejected);
    fflush(stdout);
    ck_assert_int_eq(counts.total, expected_total);
    ck_assert_int_eq(counts.valid_passed + counts.invalid_rejected, expected_total);
    json_decref(root);
}

START_TEST(test_hkdf_sha256_vectors)
{
    run_hkdf_file("hkdf_sha256_test.json", "SHA256", 32);
}
END_TEST

START_TEST(test_hkdf_sha512_vectors)
{
    run_hkdf_file("hkdf_sha512_test.json", "SHA512", 64);
}
END_TEST

START_TEST(test_hkdf_arguments)
{
    uint8_t ikm[32] = {0}, out[16];
    sm_error err;
    ck_assert_int_eq(sm_hkdf("SHA1", SM_HKDF_EXPAND_ONLY, NULL, 0, ikm, 32, NULL, 0, out, 16, &err),
                     SM_ERR_ARG);
    ck_assert_int_eq(sm_hkdf("SHA256", SM_HKDF_EXPAND_ONLY, NULL, 0, ikm, 32, NULL, 0, out, 0, &err),
                     SM_ERR_ARG);
    ck_assert_int_eq(sm_hkdf("SHA256", SM_HKDF_EXPAND_ONLY, NULL, 0, ikm, 32, NULL, 0, out, 16, &err),
                     SM_OK);
}
END_TEST

static Suite *crypto_suite(void)
{
    Suite *s = suite_create("crypto_vectors");
    TCase *tc = tcase_create("wycheproof");
    tcase_add_test(tc, test_aes_gcm_vectors);
    tcase_add_test(tc, test_aead_wrapper_arguments);
    tcase_add_test(tc, test_hkdf_sha256_vectors);
    tcase_add_test(tc, test_hkdf_sha512_vectors);
    tcase_add_test(tc, test_hkdf_arguments);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(crypto_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
