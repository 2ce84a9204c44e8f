#include "config.h"

/* Unit tests for the key server's tokens (common/sm_ks_tokens.h) and license
 * terms (common/sm_ks_terms.h): round trips, every claim checked, one token
 * type never accepted as another, audience and issuer binding, expiry,
 * rotation (a token signed with a retired key still verifies while that key
 * is published). */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "sm_ks_keys.h"
#include "sm_ks_terms.h"
#include "sm_ks_tokens.h"

#define NOW 1700000000
#define ISS "https://ks.example"
#define JKT "oKIywvGUpTVTyxMQ3bwIIeQUudfr_CkLMjCE19ECD-U"

/* Copies a string into a fixed field (tests only build small values). */
#define SET(dst, src) snprintf((dst), sizeof(dst), "%s", (src))

static sm_ks_keys *keys;

static void setup(void)
{
    sm_error err = {0};
    sm_jwk *a = NULL, *b = NULL, *enc = NULL;
    ck_assert_int_eq(sm_ks_keys_new(&keys, &err), SM_OK);
    ck_assert_int_eq(sm_jwk_generate(&a, &err), SM_OK);
    ck_assert_int_eq(sm_jwk_generate(&b, &err), SM_OK);
    ck_assert_int_eq(sm_jwk_generate(&enc, &err), SM_OK);
    ck_assert_int_eq(sm_ks_keys_add_signing(keys, a, "old", 0, &err), SM_OK);
    ck_assert_int_eq(sm_ks_keys_add_signing(keys, b, "new", 1, &err), SM_OK);
    ck_assert_int_eq(sm_ks_keys_set_encryption(keys, enc, "enc", &err), SM_OK);
}

static void teardown(void)
{
    sm_ks_keys_free(keys);
    keys = NULL;
}

static sm_ks_voucher sample_voucher(void)
{
    sm_ks_voucher v;
    memset(&v, 0, sizeof(v));
    SET(v.txn, "txn-abc");
    SET(v.work_id, "work-1");
    SET(v.retailer, "retailer1");
    SET(v.jkt, JKT);
    v.terms.type = SM_KS_RENTAL;
    v.terms.duration = 172800;
    return v;
}

START_TEST(test_terms)
{
    sm_error err = {0};
    sm_ks_terms t;
    json_t *o = json_pack("{s:s}", "type", "purchase");
    ck_assert_int_eq(sm_ks_terms_from_json(o, "t", &t, &err), SM_OK);
    ck_assert_int_eq(t.type, SM_KS_PURCHASE);
    json_decref(o);
    o = json_pack("{s:s,s:i}", "type", "rental", "duration", 3600);
    ck_assert_int_eq(sm_ks_terms_from_json(o, "t", &t, &err), SM_OK);
    ck_assert_int_eq(t.duration, 3600);
    json_t *back = sm_ks_terms_to_json(&t);
    ck_assert(json_equal(o, back));
    json_decref(back);
    json_decref(o);

    static const char *bad[] = {
        "{\"type\":\"rental\"}",
        "{\"type\":\"rental\",\"duration\":59}",
        "{\"type\":\"rental\",\"duration\":31708801}",
        "{\"type\":\"rental\",\"duration\":\"3600\"}",
        "{\"type\":\"purchase\",\"duration\":3600}",
        "{\"type\":\"lease\"}",
        "{\"type\":\"purchase\",\"extra\":1}",
        "{}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        json_error_t jerr;
        o = json_loads(bad[i], 0, &jerr);
        ck_assert_ptr_nonnull(o);
        ck_assert_msg(sm_ks_terms_from_json(o, "t", &t, &err) == SM_ERR_FORMAT, "accepted %s",
                      bad[i]);
        json_decref(o);
    }
    char txn[SM_KS_ID_SIZE];
    ck_assert_int_eq(sm_ks_new_txn_id(txn, &err), SM_OK);
    ck_assert_int_eq(strlen(txn), 26);
    ck_assert_int_eq(sm_ks_validate_id(txn, "txn", &err), SM_OK);
    ck_assert_int_eq(sm_ks_validate_id("..", "id", &err), SM_ERR_FORMAT);
    ck_assert_int_eq(sm_ks_validate_id("a'; DROP TABLE x; --", "id", &err), SM_ERR_FORMAT);
    ck_assert_int_eq(sm_ks_validate_id(NULL, "id", &err), SM_ERR_FORMAT);
}
END_TEST

START_TEST(test_voucher_round_trip)
{
    sm_error err = {0};
    sm_ks_voucher v = sample_voucher(), got;
    char *tok = NULL;
    ck_assert_int_eq(sm_ks_voucher_issue(keys, ISS, &v, NOW, 86400, &tok, &err), SM_OK);
    ck_assert_int_eq(v.iat, NOW);
    ck_assert_int_eq(v.exp, NOW + 86400);
    ck_assert_int_ge(strlen(v.jti), 16);
    const sm_jwks *jwks = sm_ks_keys_jwks(keys);
    ck_assert_int_eq(sm_ks_voucher_verify(jwks, ISS, tok, strlen(tok), NOW + 10, &got, &err),
                     SM_OK);
    ck_assert_str_eq(got.txn, "txn-abc");
    ck_assert_str_eq(got.work_id, "work-1");
    ck_assert_str_eq(got.retailer, "retailer1");
    ck_assert_str_eq(got.jkt, JKT);
    ck_assert(sm_ks_terms_equal(&got.terms, &v.terms));
    ck_assert_str_eq(got.jti, v.jti);

    /* Expired, other issuer, not a voucher. */
    ck_assert_int_eq(sm_ks_voucher_verify(jwks, ISS, tok, strlen(tok), NOW + 86400 + 61, &got,
                                          &err),
                     SM_ERR_EXPIRED);
    ck_assert_int_eq(
        sm_ks_voucher_verify(jwks, "https://other", tok, strlen(tok), NOW + 10, &got, &err),
        SM_ERR_CLAIM);
    sm_ks_delivery d;
    const char *aud[] = {ISS};
    ck_assert_int_eq(sm_ks_delivery_verify(jwks, ISS, aud[0], tok, strlen(tok), NOW + 10, 0, &d,
                                           &err),
                     SM_ERR_CLAIM); /* wrong typ */
    /* A flipped payload byte breaks the signature. */
    char *dot = strchr(tok, '.');
    dot[5] = dot[5] == 'A' ? 'B' : 'A';
    ck_assert_int_ne(sm_ks_voucher_verify(jwks, ISS, tok, strlen(tok), NOW + 10, &got, &err),
                     SM_OK);
    free(tok);

    /* Bad inputs to issue. */
    v = sample_voucher();
    SET(v.jkt, "short");
    ck_assert_int_eq(sm_ks_voucher_issue(keys, ISS, &v, NOW, 60, &tok, &err), SM_ERR_CLAIM);
    v = sample_voucher();
    SET(v.work_id, "../x");
    ck_assert_int_eq(sm_ks_voucher_issue(keys, ISS, &v, NOW, 60, &tok, &err), SM_ERR_FORMAT);
    v = sample_voucher();
    ck_assert_int_eq(sm_ks_voucher_issue(keys, ISS, &v, NOW, 0, &tok, &err), SM_ERR_ARG);
    ck_assert_ptr_null(tok);
}
END_TEST

/* Signs arbitrary claims with the key server's key as a voucher, to check
 * that verification is strict about the claim set. */
static char *sign_raw(const char *typ, json_t *claims)
{
    char *tok = NULL;
    sm_error err = {0};
    ck_assert_int_eq(sm_ks_keys_sign(keys, typ, claims, &tok, &err), SM_OK);
    json_decref(claims);
    return tok;
}

START_TEST(test_voucher_strict_claims)
{
    sm_error err = {0};
    sm_ks_voucher got;
    const sm_jwks *jwks = sm_ks_keys_jwks(keys);
    const char *base = "{\"iss\":\"" ISS "\",\"aud\":\"" ISS "\",\"iat\":1700000000,"
                       "\"exp\":1700086400,\"jti\":\"abcdefghijklmnopqrstuv\","
                       "\"txn\":\"txn-1\",\"work_id\":\"w1\",\"retailer\":\"r1\","
                       "\"license\":{\"type\":\"purchase\"},\"jkt\":\"" JKT "\"}";
    json_error_t jerr;
    json_t *ok = json_loads(base, 0, &jerr);
    char *tok = sign_raw(SM_KS_TYP_VOUCHER, json_deep_copy(ok));
    ck_assert_int_eq(sm_ks_voucher_verify(jwks, ISS, tok, strlen(tok), NOW, &got, &err), SM_OK);
    free(tok);

    /* Each mutation must be refused. */
    static const char *const removed[] = {"txn", "work_id", "retailer", "license", "jkt"};
    for (size_t i = 0; i < sizeof(removed) / sizeof(removed[0]); i++) {
        json_t *c = json_deep_copy(ok);
        json_object_del(c, removed[i]);
        tok = sign_raw(SM_KS_TYP_VOUCHER, c);
        ck_assert_msg(sm_ks_voucher_verify(jwks, ISS, tok, strlen(tok), NOW, &got, &err) != SM_OK,
                      "accepted without %s", removed[i]);
        free(tok);
    }
    struct {
        const char *name;
        json_t *value;
    } changed[] = {
        {"extra", json_true()},
        {"jkt", json_string("not-a-thumbprint")},
        {"work_id", json_string("../../etc/passwd")},
        {"txn", json_integer(5)},
        {"license", json_pack("{s:s}", "type", "rental")},
        {"retailer", json_string("")},
    };
    for (size_t i = 0; i < sizeof(changed) / sizeof(changed[0]); i++) {
        json_t *c = json_deep_copy(ok);
        json_object_set_new(c, changed[i].name, changed[i].value);
        tok = sign_raw(SM_KS_TYP_VOUCHER, c);
        sm_status st = sm_ks_voucher_verify(jwks, ISS, tok, strlen(tok), NOW, &got, &err);
        ck_assert_msg(st == SM_ERR_CLAIM, "case %zu (%s): %s %s", i, changed[i].name,
                      sm_status_name(st), err.message);
        free(tok);
    }
    /* A payment acknowledgement or delivery type with voucher claims. */
    tok = sign_raw(SM_KS_TYP_PAYMENT, json_deep_copy(ok));
    ck_assert_int_eq(sm_ks_voucher_verify(jwks, ISS, tok, strlen(tok), NOW, &got, &err),
                     SM_ERR_CLAIM);
    free(tok);
    json_decref(ok);
}
END_TEST

START_TEST(test_rotation)
{
    /* A voucher signed with the old key stays valid while it is published;
     * a set without it refuses the token. */
    sm_error err = {0};
    sm_ks_keys *old_only = NULL;
    sm_jwk *k = NULL;
    ck_assert_int_eq(sm_ks_keys_new(&old_only, &err), SM_OK);
    ck_assert_int_eq(sm_jwk_generate(&k, &err), SM_OK);
    ck_assert_int_eq(sm_ks_keys_add_signing(old_only, k, "gone", 1, &err), SM_OK);
    sm_ks_voucher v = sample_voucher(), got;
    char *tok = NULL;
    ck_assert_int_eq(sm_ks_voucher_issue(old_only, ISS, &v, NOW, 600, &tok, &err), SM_OK);
    ck_assert_int_eq(
        sm_ks_voucher_verify(sm_ks_keys_jwks(keys), ISS, tok, strlen(tok), NOW, &got, &err),
        SM_ERR_KEY);
    free(tok);
    sm_ks_keys_free(old_only);
}
END_TEST

START_TEST(test_voucher_cache)
{
    /* A cached voucher gives the same facts, is still refused once expired
     * or before its iat, is never found for other bytes, another issuer or
     * another key set, and a bad voucher is never cached. */
    sm_error err = {0};
    sm_ks_voucher_cache *cache = NULL;
    ck_assert_int_eq(sm_ks_voucher_cache_new(0, &cache, &err), SM_ERR_ARG);
    ck_assert_int_eq(sm_ks_voucher_cache_new(8, &cache, &err), SM_OK);
    const sm_jwks *jwks = sm_ks_keys_jwks(keys);
    sm_ks_voucher v = sample_voucher(), got, again;
    char *tok = NULL;
    ck_assert_int_eq(sm_ks_voucher_issue(keys, ISS, &v, NOW, 600, &tok, &err), SM_OK);
    size_t n = strlen(tok);
    ck_assert_int_eq(sm_ks_voucher_verify_cached(cache, jwks, ISS, tok, n, NOW, &got, &err),
                     SM_OK);
    ck_assert_int_eq(sm_ks_voucher_verify_cached(cache, jwks, ISS, tok, n, NOW + 5, &again, &err),
                     SM_OK);
    ck_assert_mem_eq(&got, &again, sizeof(got));
    ck_assert_str_eq(again.txn, "txn-abc");
    ck_assert_str_eq(again.jti, v.jti);
    /* Time is checked on every hit. */
    ck_assert_int_eq(
        sm_ks_voucher_verify_cached(cache, jwks, ISS, tok, n, NOW + 600 + 61, &again, &err),
        SM_ERR_EXPIRED);
    ck_assert_str_eq(again.txn, "");
    ck_assert_int_eq(
        sm_ks_voucher_verify_cached(cache, jwks, ISS, tok, n, NOW - 61, &again, &err),
        SM_ERR_EXPIRED);
    /* Another issuer: not a hit, and the full check refuses it. */
    ck_assert_int_eq(
        sm_ks_voucher_verify_cached(cache, jwks, "https://other", tok, n, NOW, &again, &err),
        SM_ERR_CLAIM);
    /* A set without the signing key: not a hit. */
    sm_ks_keys *other = NULL;
    sm_jwk *k = NULL;
    ck_assert_int_eq(sm_ks_keys_new(&other, &err), SM_OK);
    ck_assert_int_eq(sm_jwk_generate(&k, &err), SM_OK);
    ck_assert_int_eq(sm_ks_keys_add_signing(other, k, "new", 1, &err), SM_OK);
    ck_assert_int_eq(sm_ks_voucher_verify_cached(cache, sm_ks_keys_jwks(other), ISS, tok, n,
                                                 NOW, &again, &err),
                     SM_ERR_AUTH);
    sm_ks_keys_free(other);
    /* Altered bytes, even where a lenient decoder would not look: not a
     * hit, and refused. */
    char *dot = strchr(tok, '.'), saved = dot[5];
    dot[5] = dot[5] == 'A' ? 'B' : 'A';
    for (int i = 0; i < 2; i++)
        ck_assert_int_ne(sm_ks_voucher_verify_cached(cache, jwks, ISS, tok, n, NOW, &again, &err),
                         SM_OK);
    dot[5] = saved;
    ck_assert_int_eq(sm_ks_voucher_verify_cached(cache, jwks, ISS, tok, n, NOW, &again, &err),
                     SM_OK);
    /* No cache: the plain verification. */
    ck_assert_int_eq(sm_ks_voucher_verify_cached(NULL, jwks, ISS, tok, n, NOW, &again, &err),
                     SM_OK);
    /* Many vouchers through a small cache (evictions) all verify. */
    for (int i = 0; i < 40; i++) {
        char *t = NULL;
        sm_ks_voucher w = sample_voucher();
        ck_assert_int_eq(sm_ks_voucher_issue(keys, ISS, &w, NOW, 600, &t, &err), SM_OK);
        for (int r = 0; r < 2; r++) {
            ck_assert_int_eq(
                sm_ks_voucher_verify_cached(cache, jwks, ISS, t, strlen(t), NOW, &again, &err),
                SM_OK);
            ck_assert_str_eq(again.jti, w.jti);
        }
        free(t);
    }
    free(tok);
    sm_ks_voucher_cache_free(cache);
}
END_TEST

START_TEST(test_payment_ack)
{
    sm_error err = {0};
    sm_ks_payment_ack p, got;
    memset(&p, 0, sizeof(p));
    SET(p.txn, "txn-1");
    SET(p.work_id, "w1");
    SET(p.retailer, "retailer1");
    SET(p.payment_ref, "order-42:attempt-1");
    SET(p.currency, "EUR");
    p.amount = 199;
    p.paid_at = NOW;
    char *tok = NULL;
    ck_assert_int_eq(sm_ks_payment_ack_issue(keys, ISS, &p, NOW, 3600, &tok, &err), SM_OK);
    const sm_jwks *jwks = sm_ks_keys_jwks(keys);
    ck_assert_int_eq(
        sm_ks_payment_ack_verify(jwks, ISS, "retailer1", tok, strlen(tok), NOW, &got, &err),
        SM_OK);
    ck_assert_int_eq(got.amount, 199);
    ck_assert_str_eq(got.currency, "EUR");
    ck_assert_str_eq(got.payment_ref, "order-42:attempt-1");
    /* Addressed to retailer1 only. */
    ck_assert_int_eq(
        sm_ks_payment_ack_verify(jwks, ISS, "retailer2", tok, strlen(tok), NOW, &got, &err),
        SM_ERR_CLAIM);
    free(tok);
    SET(p.payment_ref, "bad ref");
    ck_assert_int_eq(sm_ks_payment_ack_issue(keys, ISS, &p, NOW, 3600, &tok, &err),
                     SM_ERR_FORMAT);
    SET(p.payment_ref, "ok");
    SET(p.currency, "eur");
    ck_assert_int_eq(sm_ks_payment_ack_issue(keys, ISS, &p, NOW, 3600, &tok, &err),
                     SM_ERR_CLAIM);
    SET(p.currency, "EUR");
    p.amount = -1;
    ck_assert_int_eq(sm_ks_payment_ack_issue(keys, ISS, &p, NOW, 3600, &tok, &err), SM_ERR_ARG);
}
END_TEST

START_TEST(test_delivery)
{
    sm_error err = {0};
    sm_ks_delivery d, got;
    memset(&d, 0, sizeof(d));
    SET(d.work_id, "work-A");
    SET(d.txn, "txn-1");
    SET(d.jkt, JKT);
    const char *one[] = {"mediastore"};
    const char *two[] = {"store-eu", "store-us"};
    const sm_jwks *jwks = sm_ks_keys_jwks(keys);
    char *tok = NULL;
    ck_assert_int_eq(sm_ks_delivery_issue(keys, ISS, one, 1, &d, NOW, 300, &tok, &err), SM_OK);
    ck_assert_int_eq(sm_ks_delivery_verify(jwks, ISS, "mediastore", tok, strlen(tok), NOW + 299,
                                           600, &got, &err),
                     SM_OK);
    ck_assert_str_eq(got.work_id, "work-A");
    ck_assert_str_eq(got.txn, "txn-1");
    ck_assert_str_eq(got.jkt, JKT);
    /* Another store, too late, too long-lived for the verifier. */
    ck_assert_int_eq(sm_ks_delivery_verify(jwks, ISS, "other", tok, strlen(tok), NOW, 600, &got,
                                           &err),
                     SM_ERR_CLAIM);
    ck_assert_int_eq(sm_ks_delivery_verify(jwks, ISS, "mediastore", tok, strlen(tok),
                                           NOW + 300 + 61, 600, &got, &err),
                     SM_ERR_EXPIRED);
    ck_assert_int_eq(sm_ks_delivery_verify(jwks, ISS, "mediastore", tok, strlen(tok), NOW, 100,
                                           &got, &err),
                     SM_ERR_CLAIM);
    /* Not usable as a voucher. */
    sm_ks_voucher v;
    ck_assert_int_ne(sm_ks_voucher_verify(jwks, ISS, tok, strlen(tok), NOW, &v, &err), SM_OK);
    free(tok);
    ck_assert_int_eq(sm_ks_delivery_issue(keys, ISS, two, 2, &d, NOW, 300, &tok, &err), SM_OK);
    ck_assert_int_eq(sm_ks_delivery_verify(jwks, ISS, "store-us", tok, strlen(tok), NOW, 0, &got,
                                           &err),
                     SM_OK);
    free(tok);
    ck_assert_int_eq(sm_ks_delivery_issue(keys, ISS, two, 0, &d, NOW, 300, &tok, &err),
                     SM_ERR_ARG);
}
END_TEST

static Suite *tokens_suite(void)
{
    Suite *s = suite_create("ks_tokens");
    TCase *tc = tcase_create("tokens");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_terms);
    tcase_add_test(tc, test_voucher_round_trip);
    tcase_add_test(tc, test_voucher_strict_claims);
    tcase_add_test(tc, test_rotation);
    tcase_add_test(tc, test_voucher_cache);
    tcase_add_test(tc, test_payment_ack);
    tcase_add_test(tc, test_delivery);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(tokens_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
