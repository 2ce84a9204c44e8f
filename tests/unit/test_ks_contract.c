#include "config.h"

/* Unit tests for contracts (common/sm_ks_contract.h): the valid form, each
 * refused variant with the message naming the problem, offer lookup, the
 * validity window, currencies and exact royalty apportionment. */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "sm_ks_contract.h"

#define GOOD                                                                                   \
    "{\"retailer\":\"retailer1\",\"works\":[\"w1\",\"w2\"],\"currency\":\"EUR\","             \
    "\"valid_from\":1700000000,\"valid_until\":1800000000,"                                    \
    "\"licenses\":[{\"type\":\"purchase\",\"price\":199},"                                     \
    "{\"type\":\"rental\",\"duration\":172800,\"price\":99}],"                                 \
    "\"royalties\":[{\"holder\":\"Label\",\"share_bps\":6000},"                                \
    "{\"holder\":\"Artist\",\"share_bps\":4000}]}"

static json_t *load(const char *text)
{
    json_error_t jerr;
    json_t *o = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
    ck_assert_msg(o != NULL, "test JSON: %s", jerr.text);
    return o;
}

START_TEST(test_contract_good)
{
    sm_error err = {0};
    sm_ks_contract *c = NULL;
    json_t *o = load(GOOD);
    ck_assert_msg(sm_ks_contract_from_json(o, &c, &err) == SM_OK, "%s", err.message);
    ck_assert_str_eq(c->retailer, "retailer1");
    ck_assert_uint_eq(c->n_works, 2);
    ck_assert_uint_eq(c->n_offers, 2);
    ck_assert_uint_eq(c->n_royalties, 2);
    sm_ks_terms rent = {SM_KS_RENTAL, 172800}, buy = {SM_KS_PURCHASE, 0},
                other = {SM_KS_RENTAL, 3600};
    ck_assert_int_eq(sm_ks_contract_find_offer(c, &rent)->price, 99);
    ck_assert_int_eq(sm_ks_contract_find_offer(c, &buy)->price, 199);
    ck_assert_ptr_null(sm_ks_contract_find_offer(c, &other));
    ck_assert(!sm_ks_contract_active(c, 1699999999));
    ck_assert(sm_ks_contract_active(c, 1700000000));
    ck_assert(sm_ks_contract_active(c, 1799999999));
    ck_assert(!sm_ks_contract_active(c, 1800000000));
    /* Round trip through the JSON form. */
    json_t *back = sm_ks_contract_to_json(c, 1);
    ck_assert(json_equal(o, back));
    json_decref(back);
    back = sm_ks_contract_to_json(c, 0);
    ck_assert_ptr_null(json_object_get(back, "works"));
    json_decref(back);
    json_decref(o);
    free(c);
}
END_TEST

/* Each case replaces one member of GOOD. */
static const struct {
    const char *member;
    const char *value; /* JSON; NULL removes the member */
    const char *message_part;
} bad[] = {
    {"retailer", NULL, "\"retailer\" is missing"},
    {"retailer", "\"r1; DROP TABLE contracts\"", "retailer"},
    {"retailer", "7", "must be a string"},
    {"works", "[]", "1 to 256"},
    {"works", "[\"w1\",\"w1\"]", "listed twice"},
    {"works", "[\"../w1\"]", "works[0]"},
    {"works", "[1]", "works[0] must be a string"},
    {"currency", "\"EURO\"", "currency"},
    {"currency", "\"eur\"", "ISO 4217"},
    {"currency", "\"XXX\"", "ISO 4217"},
    {"valid_from", "1800000000", "before"},
    {"valid_until", "-1", "valid_until"},
    {"valid_from", "1.5", "integer"},
    {"licenses", "[]", "1 to 8"},
    {"licenses", "[{\"type\":\"purchase\"}]", "\"price\" is missing"},
    {"licenses", "[{\"type\":\"purchase\",\"price\":1.99}]", "integer"},
    {"licenses", "[{\"type\":\"purchase\",\"price\":-1}]", "minor units"},
    {"licenses", "[{\"type\":\"purchase\",\"price\":1000000000001}]", "minor units"},
    {"licenses", "[{\"type\":\"rental\",\"price\":5}]", "duration"},
    {"licenses", "[{\"type\":\"gift\",\"price\":5}]", "purchase\" or \"rental"},
    {"licenses", "[{\"type\":\"purchase\",\"price\":5},{\"type\":\"purchase\",\"price\":6}]",
     "repeats"},
    {"licenses", "[{\"type\":\"purchase\",\"price\":5,\"extra\":1}]", "unknown field"},
    {"royalties", "[]", "1 to 32"},
    {"royalties", "[{\"holder\":\"A\",\"share_bps\":5000}]", "5000 basis points"},
    {"royalties", "[{\"holder\":\"A\",\"share_bps\":6000},{\"holder\":\"B\",\"share_bps\":4001}]",
     "10001"},
    {"royalties", "[{\"holder\":\"A\",\"share_bps\":0},{\"holder\":\"B\",\"share_bps\":10000}]",
     "1 to 10000"},
    {"royalties", "[{\"holder\":\"A\",\"share_bps\":5000},{\"holder\":\"A\",\"share_bps\":5000}]",
     "named twice"},
    {"royalties", "[{\"holder\":\"\",\"share_bps\":10000}]", "must not be empty"},
    {"royalties", "[{\"holder\":\"A\\u0007\",\"share_bps\":10000}]", "holder"},
    {"royalties", "[{\"holder\":\"A\",\"share_bps\":\"10000\"}]", "integer"},
    {"royalties", "[{\"holder\":\"A\",\"percent\":100}]", "unknown field"},
    {"extra", "true", "unknown field \"extra\""},
};

START_TEST(test_contract_bad)
{
    sm_error err = {0};
    sm_ks_contract *c = (sm_ks_contract *)1;
    /* Build the mutated document as text so scalars parse too. */
    json_t *o = load(GOOD);
    if (bad[_i].value == NULL) {
        json_object_del(o, bad[_i].member);
    } else {
        char wrapped[1024];
        snprintf(wrapped, sizeof(wrapped), "{\"v\":%s}", bad[_i].value);
        json_t *w = load(wrapped);
        json_object_set(o, bad[_i].member, json_object_get(w, "v"));
        json_decref(w);
    }
    sm_status st = sm_ks_contract_from_json(o, &c, &err);
    ck_assert_msg(st == SM_ERR_FORMAT, "case %d accepted (%s)", _i, sm_status_name(st));
    ck_assert_ptr_null(c);
    ck_assert_msg(strstr(err.message, bad[_i].message_part) != NULL, "case %d: \"%s\"", _i,
                  err.message);
    json_decref(o);
}
END_TEST

START_TEST(test_currencies)
{
    ck_assert_int_eq(sm_ks_currency_minor_units("EUR"), 2);
    ck_assert_int_eq(sm_ks_currency_minor_units("JPY"), 0);
    ck_assert_int_eq(sm_ks_currency_minor_units("KWD"), 3);
    ck_assert_int_eq(sm_ks_currency_minor_units("CLF"), 4);
    ck_assert_int_eq(sm_ks_currency_minor_units("AED"), 2);
    ck_assert_int_eq(sm_ks_currency_minor_units("ZWG"), 2);
    ck_assert_int_eq(sm_ks_currency_minor_units("XAU"), -1);
    ck_assert_int_eq(sm_ks_currency_minor_units("XXX"), -1);
    ck_assert_int_eq(sm_ks_currency_minor_units("EU"), -1);
    ck_assert_int_eq(sm_ks_currency_minor_units(""), -1);
    ck_assert_int_eq(sm_ks_currency_minor_units(NULL), -1);
}
END_TEST

START_TEST(test_apportion)
{
    sm_error err = {0};
    sm_ks_contract *c = NULL;
    json_t *o = load(GOOD);
    ck_assert_int_eq(sm_ks_contract_from_json(o, &c, &err), SM_OK);
    json_decref(o);
    int64_t parts[SM_KS_MAX_HOLDERS];
    ck_assert_int_eq(sm_ks_contract_apportion(c, 199, parts, &err), SM_OK);
    /* 60 % of 199 = 119.4, 40 % = 79.6: the leftover unit goes to 79.6. */
    ck_assert_int_eq(parts[0], 119);
    ck_assert_int_eq(parts[1], 80);

    /* Three equal-ish shares; parts always sum to the amount. */
    c->n_royalties = 3;
    c->royalties[0].share_bps = 3334;
    c->royalties[1].share_bps = 3333;
    c->royalties[2].share_bps = 3333;
    snprintf(c->royalties[2].holder, sizeof(c->royalties[2].holder), "Producer");
    ck_assert_int_eq(sm_ks_contract_validate(c, &err), SM_OK);
    for (int64_t amount = 0; amount < 20000; amount += 7) {
        ck_assert_int_eq(sm_ks_contract_apportion(c, amount, parts, &err), SM_OK);
        ck_assert_int_eq(parts[0] + parts[1] + parts[2], amount);
        for (int i = 0; i < 3; i++) {
            int64_t exact_floor = amount * c->royalties[i].share_bps / 10000;
            ck_assert(parts[i] == exact_floor || parts[i] == exact_floor + 1);
        }
    }
    /* Large amounts do not overflow. */
    int64_t big = SM_KS_PRICE_MAX * 1000000;
    ck_assert_int_eq(sm_ks_contract_apportion(c, big, parts, &err), SM_OK);
    ck_assert_int_eq(parts[0] + parts[1] + parts[2], big);
    ck_assert_int_eq(sm_ks_contract_apportion(c, -1, parts, &err), SM_ERR_ARG);
    free(c);
}
END_TEST

static Suite *contract_suite(void)
{
    Suite *s = suite_create("ks_contract");
    TCase *tc = tcase_create("contract");
    tcase_add_test(tc, test_contract_good);
    tcase_add_loop_test(tc, test_contract_bad, 0, (int)(sizeof(bad) / sizeof(bad[0])));
    tcase_add_test(tc, test_currencies);
    tcase_add_test(tc, test_apportion);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(contract_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
