/* Retail secrets (common/sm_rt_auth.c): scrypt password hashes (format,
 * verify, tampering, cost bounds, known answers), API tokens, redeem codes, order ids. */
#include "config.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sm_rt_auth.h"

START_TEST(test_password_roundtrip)
{
    char h[SM_RT_PASSWORD_HASH_MAX], h2[SM_RT_PASSWORD_HASH_MAX];
    sm_error err;
    int ok = -1;
    ck_assert_int_eq(sm_rt_password_hash("hunter2hunter2", 14, 10, h, &err), SM_OK);
    ck_assert_str_eq(strstr(h, "$scrypt$ln=10,r=8,p=1$") == h ? "prefix" : h, "prefix");
    ck_assert_int_eq(sm_rt_password_verify("hunter2hunter2", 14, h, &ok, &err), SM_OK);
    ck_assert_int_eq(ok, 1);
    ck_assert_int_eq(sm_rt_password_verify("hunter2hunter3", 14, h, &ok, &err), SM_OK);
    ck_assert_int_eq(ok, 0);
    ck_assert_int_eq(sm_rt_password_verify("hunter2hunter", 13, h, &ok, &err), SM_OK);
    ck_assert_int_eq(ok, 0);
    /* A fresh salt each time. */
    ck_assert_int_eq(sm_rt_password_hash("hunter2hunter2", 14, 10, h2, &err), SM_OK);
    ck_assert_str_ne(h, h2);
    /* Passwords with NUL bytes are hashed by length. */
    ck_assert_int_eq(sm_rt_password_hash("a\0b", 3, 10, h2, &err), SM_OK);
    ck_assert_int_eq(sm_rt_password_verify("a\0c", 3, h2, &ok, &err), SM_OK);
    ck_assert_int_eq(ok, 0);
    ck_assert_int_eq(sm_rt_password_verify("a\0b", 3, h2, &ok, &err), SM_OK);
    ck_assert_int_eq(ok, 1);
}
END_TEST

START_TEST(test_password_tampered_or_foreign)
{
    char h[SM_RT_PASSWORD_HASH_MAX];
    sm_error err;
    int ok = -1;
    ck_assert_int_eq(sm_rt_password_hash("pw-pw-pw-pw", 11, 10, h, &err), SM_OK);
    /* A changed digest character fails verification, not parsing. */
    size_t n = strlen(h);
    h[n - 2] = h[n - 2] == 'A' ? 'B' : 'A';
    ck_assert_int_eq(sm_rt_password_verify("pw-pw-pw-pw", 11, h, &ok, &err), SM_OK);
    ck_assert_int_eq(ok, 0);
    const char *bad[] = {
        "",
        "$2y$10$abcdefghijklmnopqrstuv",
        "$scrypt$ln=9,r=8,p=1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "$scrypt$ln=21,r=8,p=1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "$scrypt$ln=10,r=0,p=1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "$scrypt$ln=010,r=8,p=1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "$scrypt$ln=10,r=8,p=1$AAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "$scrypt$ln=10,r=8,p=1$AAAAAAAAAAAAAAAAAAAAAA$AAAA",
        "$scrypt$ln=10,r=8,p=1$AAAAAAAAAAAAAAAAAAAAAA",
        "$scrypt$ln=10,r=8,p=1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ok = -1;
        ck_assert_msg(sm_rt_password_verify("x", 1, bad[i], &ok, &err) == SM_ERR_FORMAT,
                      "accepted %s", bad[i]);
        ck_assert_int_eq(ok, 0);
    }
    ck_assert_int_eq(sm_rt_password_hash("x", 1, 9, h, &err), SM_ERR_ARG);
    ck_assert_int_eq(sm_rt_password_hash("x", 1, 21, h, &err), SM_ERR_ARG);
}
END_TEST

/* Known answers computed with another scrypt implementation (Python's
 * hashlib.scrypt): "password", salt "secmedia-salt-16", N=1024, r=8,
 * p=1 and p=2, 32 bytes. verify reads the cost from the stored string. */
START_TEST(test_password_known_answers)
{
    sm_error err;
    int ok = -1;
    ck_assert_int_eq(sm_rt_password_verify("password", 8,
                                           "$scrypt$ln=10,r=8,p=1$c2VjbWVkaWEtc2FsdC0xNg$"
                                           "tdbbXK-I5IcORs2niYWgC7q-y0CO0-RdxYKAGfQRQUs",
                                           &ok, &err),
                     SM_OK);
    ck_assert_int_eq(ok, 1);
    ck_assert_int_eq(sm_rt_password_verify("password", 8,
                                           "$scrypt$ln=10,r=8,p=2$c2VjbWVkaWEtc2FsdC0xNg$"
                                           "K9mAM4jooPPYmzYFgUqaB1dIksUJB49JXWP6BeeObC0",
                                           &ok, &err),
                     SM_OK);
    ck_assert_int_eq(ok, 1);
    ck_assert_int_eq(sm_rt_password_verify("Password", 8,
                                           "$scrypt$ln=10,r=8,p=1$c2VjbWVkaWEtc2FsdC0xNg$"
                                           "tdbbXK-I5IcORs2niYWgC7q-y0CO0-RdxYKAGfQRQUs",
                                           &ok, &err),
                     SM_OK);
    ck_assert_int_eq(ok, 0);
}
END_TEST

START_TEST(test_tokens_codes_ids)
{
    char t1[SM_RT_TOKEN_SIZE], t2[SM_RT_TOKEN_SIZE];
    sm_error err;
    ck_assert_int_eq(sm_rt_token_new(t1, &err), SM_OK);
    ck_assert_int_eq(sm_rt_token_new(t2, &err), SM_OK);
    ck_assert_str_ne(t1, t2);
    ck_assert_uint_eq(strlen(t1), SM_RT_TOKEN_SIZE - 1);
    ck_assert(sm_rt_token_syntax_ok(t1));
    ck_assert(!sm_rt_token_syntax_ok("smrt_short"));
    char bad[SM_RT_TOKEN_SIZE];
    memcpy(bad, t1, sizeof(bad));
    bad[10] = '\'';
    ck_assert(!sm_rt_token_syntax_ok(bad));
    ck_assert(!sm_rt_token_syntax_ok(NULL));

    char code[SM_RT_CODE_SIZE], norm[21], norm2[21];
    ck_assert_int_eq(sm_rt_code_new(code, &err), SM_OK);
    ck_assert_uint_eq(strlen(code), 23);
    ck_assert(code[5] == '-' && code[11] == '-' && code[17] == '-');
    ck_assert_int_eq(sm_rt_code_normalize(code, norm, &err), SM_OK);
    ck_assert_uint_eq(strlen(norm), 20);
    /* Lower case, no dashes, spaces, O for 0 and l for 1 are the same code. */
    ck_assert_int_eq(sm_rt_code_normalize("abcde fghjk-mnpqr stvwo", norm, &err), SM_OK);
    ck_assert_str_eq(norm, "ABCDEFGHJKMNPQRSTVW0");
    ck_assert_int_eq(sm_rt_code_normalize("ABCDE-FGHJK-MNPQR-STVW0", norm2, &err), SM_OK);
    ck_assert_str_eq(norm, norm2);
    ck_assert_int_eq(sm_rt_code_normalize("IIIII-LLLLL-11111-iiiii", norm, &err), SM_OK);
    ck_assert_str_eq(norm, "11111111111111111111");
    ck_assert_int_eq(sm_rt_code_normalize("ABCDE-FGHJK-MNPQR-STVW", norm, &err), SM_ERR_FORMAT);
    ck_assert_int_eq(sm_rt_code_normalize("ABCDE-FGHJK-MNPQR-STVWXY", norm, &err),
                     SM_ERR_FORMAT);
    ck_assert_int_eq(sm_rt_code_normalize("ABCDE-FGHJK-MNPQR-STVW'", norm, &err), SM_ERR_FORMAT);
    ck_assert_int_eq(sm_rt_code_normalize("ABCDE-FGHJK-MNPQR-STVWU", norm, &err), SM_ERR_FORMAT);

    char id[SM_RT_ORDER_ID_SIZE], id2[SM_RT_ORDER_ID_SIZE];
    ck_assert_int_eq(sm_rt_order_id_new(id, &err), SM_OK);
    ck_assert_int_eq(sm_rt_order_id_new(id2, &err), SM_OK);
    ck_assert_str_ne(id, id2);
    ck_assert(sm_rt_order_id_syntax_ok(id));
    ck_assert(!sm_rt_order_id_syntax_ok("ABCDEFGHJKMNPQRSTVWXYZ0123"));
    ck_assert(!sm_rt_order_id_syntax_ok("abc"));
}
END_TEST

START_TEST(test_sha256)
{
    uint8_t h[32];
    sm_rt_sha256("abc", 3, h);
    ck_assert_uint_eq(h[0], 0xba);
    ck_assert_uint_eq(h[31], 0xad);
}
END_TEST

static Suite *rt_auth_suite(void)
{
    Suite *s = suite_create("rt_auth");
    TCase *tc = tcase_create("auth");
    tcase_add_test(tc, test_password_roundtrip);
    tcase_add_test(tc, test_password_tampered_or_foreign);
    tcase_add_test(tc, test_password_known_answers);
    tcase_add_test(tc, test_tokens_codes_ids);
    tcase_add_test(tc, test_sha256);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(rt_auth_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
