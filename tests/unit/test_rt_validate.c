/* Retail input rules (common/sm_rt_validate.c): e-mail addresses,
 * passwords, idempotency keys, thumbprints, query strings, paging and the
 * full-text expression built from what a shopper typed. */
#include "config.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sm_rt_validate.h"

START_TEST(test_email)
{
    char out[SM_RT_EMAIL_MAX + 1];
    sm_error err;
    ck_assert_int_eq(sm_rt_email_normalize("Ann.Lee+shop@Example.ORG", out, &err), SM_OK);
    ck_assert_str_eq(out, "ann.lee+shop@example.org");
    const char *bad[] = {"", "noat", "@example.org", "a@", "a@b", "a@.org", "a@b.",
                         "a b@example.org", "a@b@c.org", "o'neil\"@x.org", "a;b@x.org",
                         "a@ex\x01.org", "\xc3\xa9@example.org", "a,b@example.org"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(sm_rt_email_normalize(bad[i], out, &err) == SM_ERR_FORMAT, "took %s",
                      bad[i]);
    char big[300];
    memset(big, 'a', sizeof(big));
    memcpy(big + 250, "@x.org", 7);
    ck_assert_int_eq(sm_rt_email_normalize(big, out, &err), SM_ERR_FORMAT);
}
END_TEST

START_TEST(test_password_rules)
{
    sm_error err;
    ck_assert_int_eq(sm_rt_password_check("0123456789", 10, &err), SM_OK);
    ck_assert_int_eq(sm_rt_password_check("Grüße aus Köln", strlen("Grüße aus Köln"), &err),
                     SM_OK);
    ck_assert_int_eq(sm_rt_password_check("012345678", 9, &err), SM_ERR_FORMAT);
    ck_assert_int_eq(sm_rt_password_check("0123456789\n", 11, &err), SM_ERR_FORMAT);
    ck_assert_int_eq(sm_rt_password_check("01234\0" "56789", 11, &err), SM_ERR_FORMAT);
    ck_assert_int_eq(sm_rt_password_check("0123456789\xff", 11, &err), SM_ERR_FORMAT);
    char *big = malloc(1026);
    memset(big, 'x', 1025);
    big[1025] = '\0';
    ck_assert_int_eq(sm_rt_password_check(big, 1025, &err), SM_ERR_FORMAT);
    big[1024] = '\0';
    ck_assert_int_eq(sm_rt_password_check(big, 1024, &err), SM_OK);
    free(big);
}
END_TEST

START_TEST(test_idempotency_key_and_jkt)
{
    sm_error err;
    ck_assert_int_eq(sm_rt_idempotency_key_check("order-1:a.b_c~d", &err), SM_OK);
    ck_assert_int_eq(sm_rt_idempotency_key_check(NULL, &err), SM_ERR_FORMAT);
    ck_assert_int_eq(sm_rt_idempotency_key_check("", &err), SM_ERR_FORMAT);
    ck_assert_int_eq(sm_rt_idempotency_key_check("a b", &err), SM_ERR_FORMAT);
    ck_assert_int_eq(sm_rt_idempotency_key_check("k'; DROP", &err), SM_ERR_FORMAT);
    char k[130];
    memset(k, 'k', 129);
    k[129] = '\0';
    ck_assert_int_eq(sm_rt_idempotency_key_check(k, &err), SM_ERR_FORMAT);
    k[128] = '\0';
    ck_assert_int_eq(sm_rt_idempotency_key_check(k, &err), SM_OK);
    ck_assert(sm_rt_jkt_syntax_ok("0123456789abcdefghijABCDEFGHIJ-_0123456789a"));
    ck_assert(!sm_rt_jkt_syntax_ok("0123456789abcdefghijABCDEFGHIJ-_0123456789"));
    ck_assert(!sm_rt_jkt_syntax_ok("0123456789abcdefghijABCDEFGHIJ-_0123456789="));
}
END_TEST

START_TEST(test_query_params)
{
    char v[32];
    ck_assert_int_eq(sm_rt_query_param("q=blue+moon&limit=5", "q", v, sizeof(v)), 1);
    ck_assert_str_eq(v, "blue moon");
    ck_assert_int_eq(sm_rt_query_param("q=%41%2b%26x", "q", v, sizeof(v)), 1);
    ck_assert_str_eq(v, "A+&x");
    ck_assert_int_eq(sm_rt_query_param("qq=1&xq=2", "q", v, sizeof(v)), 0);
    ck_assert_int_eq(sm_rt_query_param(NULL, "q", v, sizeof(v)), 0);
    ck_assert_int_eq(sm_rt_query_param("q=1&q=2", "q", v, sizeof(v)), -1);
    ck_assert_int_eq(sm_rt_query_param("q=%4", "q", v, sizeof(v)), -1);
    ck_assert_int_eq(sm_rt_query_param("q=%zz", "q", v, sizeof(v)), -1);
    ck_assert_int_eq(sm_rt_query_param("q=%00", "q", v, sizeof(v)), -1);
    ck_assert_int_eq(sm_rt_query_param("q", "q", v, sizeof(v)), 1);
    ck_assert_str_eq(v, "");
    ck_assert_int_eq(sm_rt_query_param("q=0123456789012345678901234567890123", "q", v, sizeof(v)),
                     -1);
    unsigned limit, offset;
    sm_error err;
    ck_assert_int_eq(sm_rt_paging(NULL, &limit, &offset, &err), SM_OK);
    ck_assert_uint_eq(limit, 20);
    ck_assert_uint_eq(offset, 0);
    ck_assert_int_eq(sm_rt_paging("limit=100&offset=1000000", &limit, &offset, &err), SM_OK);
    ck_assert_uint_eq(limit, 100);
    ck_assert_uint_eq(offset, 1000000);
    const char *bad[] = {"limit=0", "limit=101", "limit=05", "limit=", "limit=1x",
                         "offset=-1", "offset=1000001", "limit=99999999999999999999",
                         "limit=1&limit=1"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(sm_rt_paging(bad[i], &limit, &offset, &err) == SM_ERR_FORMAT, "took %s",
                      bad[i]);
}
END_TEST

START_TEST(test_fulltext_expression)
{
    char out[1024];
    unsigned words = 99;
    sm_error err;
    ck_assert_int_eq(sm_rt_fulltext_expr("Blue Moon", out, sizeof(out), &words, &err), SM_OK);
    ck_assert_str_eq(out, "+Blue* +Moon*");
    ck_assert_uint_eq(words, 2);
    /* Boolean-mode operators never survive. */
    ck_assert_int_eq(sm_rt_fulltext_expr("+a -b* \"c\" (d) <e> ~f @g", out, sizeof(out), &words,
                                         &err),
                     SM_OK);
    ck_assert_str_eq(out, "+a* +b* +c* +d* +e* +f* +g*");
    ck_assert_int_eq(sm_rt_fulltext_expr("x'; DROP TABLE offers; --", out, sizeof(out), &words,
                                         &err),
                     SM_OK);
    ck_assert_str_eq(out, "+x* +DROP* +TABLE* +offers*");
    ck_assert_int_eq(sm_rt_fulltext_expr("Café 東京", out, sizeof(out), &words, &err), SM_OK);
    ck_assert_str_eq(out, "+Café* +東京*");
    ck_assert_int_eq(sm_rt_fulltext_expr("  --  ", out, sizeof(out), &words, &err), SM_OK);
    ck_assert_uint_eq(words, 0);
    ck_assert_str_eq(out, "");
    ck_assert_int_eq(sm_rt_fulltext_expr("a b c d e f g h i j k", out, sizeof(out), &words, &err),
                     SM_ERR_FORMAT);
    ck_assert_int_eq(sm_rt_fulltext_expr("bad\x01", out, sizeof(out), &words, &err),
                     SM_ERR_FORMAT);
    ck_assert_int_eq(sm_rt_fulltext_expr("\xc3", out, sizeof(out), &words, &err), SM_ERR_FORMAT);
    char longword[80];
    memset(longword, 'w', 65);
    longword[65] = '\0';
    ck_assert_int_eq(sm_rt_fulltext_expr(longword, out, sizeof(out), &words, &err),
                     SM_ERR_FORMAT);
    char small[8];
    ck_assert_int_eq(sm_rt_fulltext_expr("abcdefgh", small, sizeof(small), &words, &err),
                     SM_ERR_TOO_LARGE);
}
END_TEST

static Suite *rt_validate_suite(void)
{
    Suite *s = suite_create("rt_validate");
    TCase *tc = tcase_create("validate");
    tcase_add_test(tc, test_email);
    tcase_add_test(tc, test_password_rules);
    tcase_add_test(tc, test_idempotency_key_and_jkt);
    tcase_add_test(tc, test_query_params);
    tcase_add_test(tc, test_fulltext_expression);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(rt_validate_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
