/* Player core: steering file probe, license request, answer parsing and
 * refusal mapping (common/sm_pl_license.c). */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <check.h>
#include <jansson.h>

#include "pl_fixture.h"
#include "sm_pl_license.h"
#include "sm_steer.h"

START_TEST(probe_reads_only_the_magic)
{
    const uint8_t good[] = "SECMEDIA-STEER/1\n{";
    ck_assert_int_eq(sm_steer_probe(good, SM_STEER_MAGIC_LEN), 1);
    ck_assert_int_eq(sm_steer_probe(good, SM_STEER_MAGIC_LEN - 1), 0);
    ck_assert_int_eq(sm_steer_probe((const uint8_t *)"SECMEDIA-STEER/2\n", 17), 0);
    ck_assert_int_eq(sm_steer_probe((const uint8_t *)"SECMEDIA-STEER/1\r\n", 17), 0);
    ck_assert_int_eq(sm_steer_probe((const uint8_t *)"OggS\0\x02\0\0\0\0\0\0\0\0\0\0\0", 17), 0);
    ck_assert_int_eq(sm_steer_probe((const uint8_t *)"\xef\xbb\xbfSECMEDIA-STEER/1\n", 17), 0);
}
END_TEST

START_TEST(request_carries_voucher_and_bound_proof)
{
    plf_world *w = plf_new(100, "audio/ogg", 1);
    sm_steer *s = plf_steer_parsed(w);
    char *body = NULL, *proof = NULL;
    ck_assert_int_eq(sm_pl_license_build_request(s->voucher, w->device_key, s->license_url, 0, 0,
                                                 &body, &proof, NULL),
                     SM_OK);
    json_t *o = json_loads(body, 0, NULL);
    ck_assert_ptr_nonnull(o);
    ck_assert_uint_eq(json_object_size(o), 1);
    ck_assert_str_eq(json_string_value(json_object_get(o, "voucher")), s->voucher);
    json_decref(o);
    free(body);
    free(proof);
    /* A renewal asks for the delivery token only. */
    ck_assert_int_eq(sm_pl_license_build_request(s->voucher, w->device_key, s->license_url, 0, 1,
                                                 &body, &proof, NULL),
                     SM_OK);
    o = json_loads(body, 0, NULL);
    ck_assert_uint_eq(json_object_size(o), 2);
    ck_assert(json_is_true(json_object_get(o, "delivery_only")));
    json_decref(o);
    sm_dpop_expect e;
    sm_dpop_expect_init(&e, "POST", PLF_LICENSE_URL);
    e.jkt = w->jkt;
    sm_dpop_result r;
    sm_error err = {SM_OK, ""};
    ck_assert_msg(sm_dpop_verify(proof, strlen(proof), &e, &r, &err) == SM_OK, "%s", err.message);
    /* The proof is for the license URL only. */
    sm_dpop_expect_init(&e, "POST", "https://keys.test/v1/other");
    ck_assert_int_ne(sm_dpop_verify(proof, strlen(proof), &e, &r, NULL), SM_OK);
    free(body);
    free(proof);

    /* Through the transport: exactly one request, accepted by the fake server. */
    sm_pl_license *lic = NULL;
    ck_assert_msg(sm_pl_license_request(&w->transport, s, w->device_key, &lic, NULL, &err) == SM_OK,
                  "%s", err.message);
    ck_assert_uint_eq(w->ks_requests, 1);
    ck_assert_str_eq(w->ks_last_error, "");
    ck_assert_str_eq(lic->work_id, PLF_WORK_ID);
    ck_assert_str_eq(lic->delivery_token, PLF_TOKEN);
    ck_assert_uint_eq(lic->key_version, 1);
    ck_assert_int_eq(lic->rental, 0);
    sm_pl_license_free(lic);
    sm_steer_free(s);
    plf_free(w);
}
END_TEST

#define GOOD_JWE "eyJhbGciOiJFQ0RILUVTIn0..aXY.Y2lwaGVy.dGFn"

static sm_status parse(const char *json, sm_pl_license **lic, sm_error *err)
{
    return sm_pl_license_parse_answer(200, "application/json", (const uint8_t *)json, strlen(json),
                                      PLF_WORK_ID, lic, NULL, err);
}

START_TEST(answer_parsed_strictly)
{
    sm_pl_license *lic = NULL;
    sm_error err = {SM_OK, ""};
    const char *ok = "{\"txn\":\"txn-1\",\"work_id\":\"work-42\",\"key_version\":3,"
                     "\"key_jwe\":\"" GOOD_JWE "\",\"delivery_token\":\"a.b.c\","
                     "\"delivery_expires_at\":1700003600,\"license\":{\"type\":\"rental\","
                     "\"duration\":172800},\"rental_ends_at\":1700172800,\"activation\":2,"
                     "\"activation_limit\":5,\"future_member\":true}";
    ck_assert_msg(parse(ok, &lic, &err) == SM_OK, "%s", err.message);
    ck_assert_uint_eq(lic->key_version, 3);
    ck_assert_int_eq(lic->rental, 1);
    ck_assert_int_eq(lic->rental_duration, 172800);
    ck_assert_int_eq(lic->rental_ends_at, 1700172800);
    ck_assert_uint_eq(lic->activation, 2);
    ck_assert_uint_eq(lic->activation_limit, 5);
    sm_pl_license_free(lic);

    static const char *bad[] = {
        /* wrong types, missing members, bad tokens, other work, duplicates, garbage */
        "{\"txn\":\"txn-1\",\"work_id\":\"work-42\",\"key_version\":\"3\",\"key_jwe\":\"" GOOD_JWE
        "\",\"delivery_token\":\"a.b.c\",\"delivery_expires_at\":1,\"license\":{\"type\":"
        "\"purchase\"},\"activation\":1,\"activation_limit\":5}",
        "{\"txn\":\"txn-1\",\"work_id\":\"work-42\",\"key_version\":3,\"delivery_token\":\"a.b.c\","
        "\"delivery_expires_at\":1,\"license\":{\"type\":\"purchase\"},\"activation\":1,"
        "\"activation_limit\":5}",
        "{\"txn\":\"txn-1\",\"work_id\":\"work-42\",\"key_version\":3,\"key_jwe\":\"a.b.c\","
        "\"delivery_token\":\"a.b.c\",\"delivery_expires_at\":1,\"license\":{\"type\":"
        "\"purchase\"},\"activation\":1,\"activation_limit\":5}",
        "{\"txn\":\"txn-1\",\"work_id\":\"work-43\",\"key_version\":3,\"key_jwe\":\"" GOOD_JWE
        "\",\"delivery_token\":\"a.b.c\",\"delivery_expires_at\":1,\"license\":{\"type\":"
        "\"purchase\"},\"activation\":1,\"activation_limit\":5}",
        "{\"txn\":\"txn-1\",\"work_id\":\"work-42\",\"key_version\":0,\"key_jwe\":\"" GOOD_JWE
        "\",\"delivery_token\":\"a.b.c\",\"delivery_expires_at\":1,\"license\":{\"type\":"
        "\"purchase\"},\"activation\":1,\"activation_limit\":5}",
        "{\"txn\":\"txn-1\",\"work_id\":\"work-42\",\"key_version\":3,\"key_jwe\":\"" GOOD_JWE
        "\",\"delivery_token\":\"a.b.c\",\"delivery_expires_at\":1,\"license\":{\"type\":"
        "\"rental\",\"duration\":60},\"activation\":1,\"activation_limit\":5}",
        "{\"txn\":\"txn-1\",\"work_id\":\"work-42\",\"key_version\":3,\"key_jwe\":\"" GOOD_JWE
        "\",\"delivery_token\":\"a.b\",\"delivery_expires_at\":1,\"license\":{\"type\":"
        "\"purchase\"},\"activation\":1,\"activation_limit\":5}",
        "{\"txn\":\"txn-1\",\"txn\":\"txn-2\"}",
        "{} trailing",
        "[]",
        "",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        lic = NULL;
        sm_error e = {SM_OK, ""};
        ck_assert_msg(parse(bad[i], &lic, &e) != SM_OK, "accepted bad answer %zu", i);
        ck_assert_ptr_null(lic);
        ck_assert_msg(strstr(e.message, "invalid license") != NULL, "case %zu: %s", i, e.message);
    }
    /* A renewal: the same answer without key_jwe; with one it is refused
     * (and a license without one, above). */
    const char *renewal = "{\"txn\":\"txn-1\",\"work_id\":\"work-42\",\"key_version\":3,"
                          "\"delivery_token\":\"a.b.c\",\"delivery_expires_at\":1700003600,"
                          "\"license\":{\"type\":\"purchase\"},\"activation\":2,"
                          "\"activation_limit\":5}";
    ck_assert_msg(sm_pl_license_parse_renewal(200, "application/json", (const uint8_t *)renewal,
                                              strlen(renewal), PLF_WORK_ID, &lic, NULL,
                                              &err) == SM_OK,
                  "%s", err.message);
    ck_assert_ptr_null(lic->key_jwe);
    ck_assert_str_eq(lic->delivery_token, "a.b.c");
    ck_assert_uint_eq(lic->activation, 2);
    sm_pl_license_free(lic);
    lic = NULL;
    ck_assert_int_eq(sm_pl_license_parse_renewal(200, "application/json", (const uint8_t *)ok,
                                                 strlen(ok), PLF_WORK_ID, &lic, NULL, &err),
                     SM_ERR_FORMAT);
    ck_assert_ptr_null(lic);
    ck_assert_msg(strstr(err.message, "invalid delivery-token renewal: it carries a \"key_jwe\"") !=
                      NULL,
                  "%s", err.message);
    const char *no_license = "{\"type\":\"https://secmedia.example/problems/no-license\","
                             "\"title\":\"No license\",\"status\":409,\"detail\":\"request a "
                             "license first\"}";
    sm_pl_refusal r = SM_PL_REFUSAL_NONE;
    ck_assert_int_eq(sm_pl_license_parse_renewal(409, "application/problem+json",
                                                 (const uint8_t *)no_license, strlen(no_license),
                                                 PLF_WORK_ID, &lic, &r, &err),
                     SM_ERR_KEY);
    ck_assert_int_eq(r, SM_PL_REFUSAL_NO_LICENSE);
    ck_assert_msg(strstr(err.message, "no license for this purchase") != NULL, "%s", err.message);

    /* A 200 that is not JSON. */
    ck_assert_int_eq(sm_pl_license_parse_answer(200, "text/html", (const uint8_t *)"<html>", 6,
                                                NULL, &lic, NULL, &err),
                     SM_ERR_FORMAT);
}
END_TEST

static sm_status refuse(long status, const char *slug, const char *detail, sm_pl_refusal *r,
                        sm_error *err)
{
    json_t *o = json_pack("{s:s,s:s,s:i}", "type", "", "title", "t", "status", (int)status);
    if (slug != NULL) {
        char type[200];
        snprintf(type, sizeof(type), "%s%s", SM_PL_PROBLEM_BASE, slug);
        json_object_set_new(o, "type", json_string(type));
    }
    if (detail != NULL)
        json_object_set_new(o, "detail", json_string(detail));
    char *text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    sm_pl_license *lic = NULL;
    sm_status st = sm_pl_license_parse_answer(status, "application/problem+json",
                                              (const uint8_t *)text, strlen(text), NULL, &lic, r,
                                              err);
    ck_assert_ptr_null(lic);
    free(text);
    return st;
}

START_TEST(refusals_mapped_to_plain_words)
{
    static const struct {
        long status;
        const char *slug;
        sm_pl_refusal r;
        const char *start;
    } cases[] = {
        {402, "not-paid", SM_PL_REFUSAL_NOT_PAID, "License refused: the purchase has not been paid"},
        {403, "rental-expired", SM_PL_REFUSAL_RENTAL_EXPIRED,
         "License refused: the rental period has ended."},
        {403, "transaction-revoked", SM_PL_REFUSAL_TXN_REVOKED,
         "License refused: this purchase was revoked or refunded."},
        {403, "device-revoked", SM_PL_REFUSAL_DEVICE_REVOKED,
         "License refused: this device was revoked."},
        {403, "activation-limit", SM_PL_REFUSAL_ACTIVATION_LIMIT,
         "License refused: the activation limit for this purchase has been reached."},
        {403, "wrong-device", SM_PL_REFUSAL_WRONG_DEVICE,
         "License refused: this steering file was bought for another device."},
        {401, "voucher-expired", SM_PL_REFUSAL_VOUCHER_EXPIRED,
         "License refused: the steering file's voucher has expired."},
        {410, "work-withdrawn", SM_PL_REFUSAL_WORK_WITHDRAWN,
         "License refused: the work has been withdrawn."},
        {503, "service-unavailable", SM_PL_REFUSAL_UNAVAILABLE, "The key server is unavailable"},
        {503, "not-paid", SM_PL_REFUSAL_UNAVAILABLE, "The key server is unavailable"},
        {403, "contract-invalid", SM_PL_REFUSAL_OTHER,
         "License refused by the key server (HTTP 403, contract-invalid)."},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        sm_pl_refusal r = SM_PL_REFUSAL_NONE;
        sm_error err = {SM_OK, ""};
        sm_status st = refuse(cases[i].status, cases[i].slug, "ask the shop", &r, &err);
        ck_assert_int_eq(st, cases[i].status >= 500 ? SM_ERR_UNAVAILABLE : SM_ERR_KEY);
        ck_assert_int_eq(r, cases[i].r);
        ck_assert_msg(strncmp(err.message, cases[i].start, strlen(cases[i].start)) == 0, "%s",
                      err.message);
        ck_assert_msg(strstr(err.message, " Server says: ask the shop") != NULL, "%s",
                      err.message);
    }
    /* The server's detail: control characters removed, bounded, UTF-8 kept whole. */
    char detail[1000];
    memset(detail, 'x', sizeof(detail) - 1);
    detail[sizeof(detail) - 1] = '\0';
    detail[5] = '\n';
    memcpy(detail + SM_PL_DETAIL_MAX - 1, "\xc3\xa9", 2);
    sm_pl_refusal r;
    sm_error err = {SM_OK, ""};
    refuse(402, "not-paid", detail, &r, &err);
    for (const char *p = err.message; *p; p++)
        ck_assert((unsigned char)*p >= 0x20);
    const char *said = strstr(err.message, "Server says: ");
    ck_assert_ptr_nonnull(said);
    ck_assert_uint_le(strlen(said + 13), SM_PL_DETAIL_MAX);
    ck_assert_ptr_null(strstr(err.message, "\xc3\x00"));
    /* C1 controls (NEL, CSI) go too; other non-ASCII text stays. */
    refuse(402, "not-paid", "a\xc2\x85" "b\xc2\x9b" "c\xc2\xa0" "d\xc3\xa9", &r, &err);
    said = strstr(err.message, "Server says: ");
    ck_assert_ptr_nonnull(said);
    ck_assert_str_eq(said + 13, "abc\xc2\xa0" "d\xc3\xa9");
    /* No problem body, or a foreign type: status only. */
    ck_assert_int_eq(sm_pl_license_parse_answer(403, "text/plain", (const uint8_t *)"no", 2, NULL,
                                                &(sm_pl_license *){NULL}, &r, &err),
                     SM_ERR_KEY);
    ck_assert_str_eq(err.message, "License refused by the key server (HTTP 403).");
    ck_assert_int_eq(r, SM_PL_REFUSAL_OTHER);
    sm_error e2 = {SM_OK, ""};
    json_t *o = json_pack("{s:s}", "type", "https://evil.example/problems/not-paid");
    char *text = json_dumps(o, 0);
    json_decref(o);
    sm_pl_license_parse_answer(402, "application/problem+json", (const uint8_t *)text,
                               strlen(text), NULL, &(sm_pl_license *){NULL}, &r, &e2);
    free(text);
    ck_assert_str_eq(e2.message, "License refused by the key server (HTTP 402).");
    ck_assert_int_eq(sm_pl_license_parse_answer(502, "text/html", (const uint8_t *)"x", 1, NULL,
                                                &(sm_pl_license *){NULL}, &r, &e2),
                     SM_ERR_UNAVAILABLE);
    ck_assert_int_eq(sm_pl_refusal_from_slug("activation-limit"), SM_PL_REFUSAL_ACTIVATION_LIMIT);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("pl_license");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, probe_reads_only_the_magic);
    tcase_add_test(tc, request_carries_voucher_and_bound_proof);
    tcase_add_test(tc, answer_parsed_strictly);
    tcase_add_test(tc, refusals_mapped_to_plain_words);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
