#include "config.h"

/* Table tests of the license decision (common/sm_ks_license.h): one
 * baseline request that is allowed, then one row per fact changed, each
 * with the exact verdict expected; plus precedence between failures and the
 * rental clock and activation counting. */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "sm_ks_license.h"

#define NOW 1700000000
#define JKT_A "oKIywvGUpTVTyxMQ3bwIIeQUudfr_CkLMjCE19ECD-U"
#define JKT_B "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"

static sm_ks_license_facts baseline(void)
{
    sm_ks_license_facts f;
    memset(&f, 0, sizeof(f));
    f.now = NOW;
    f.voucher_status = SM_OK;
    f.voucher_txn = "txn-1";
    f.voucher_work_id = "w1";
    f.voucher_retailer = "retailer1";
    f.voucher_jkt = JKT_A;
    f.voucher_terms.type = SM_KS_PURCHASE;
    f.proof_status = SM_OK;
    f.proof_jkt = JKT_A;
    f.proof_jti_fresh = 1;
    f.txn_found = 1;
    f.txn_work_id = "w1";
    f.txn_retailer = "retailer1";
    f.txn_jkt = JKT_A;
    f.txn_terms.type = SM_KS_PURCHASE;
    f.payment = SM_KS_PAID;
    f.contract_allows_terms = 1;
    f.activations = 0;
    f.activation_limit = 0; /* default 5 */
    return f;
}

typedef void (*mutate_fn)(sm_ks_license_facts *f);

#define ROW(name, body, verdict)                                                               \
    static void name(sm_ks_license_facts *f) { body; }
ROW(m_none, (void)f, 0)
ROW(m_voucher_bad, f->voucher_status = SM_ERR_AUTH, 0)
ROW(m_voucher_claim, f->voucher_status = SM_ERR_CLAIM, 0)
ROW(m_voucher_expired, f->voucher_status = SM_ERR_EXPIRED, 0)
ROW(m_proof_bad, f->proof_status = SM_ERR_AUTH, 0)
ROW(m_proof_missing, f->proof_jkt = NULL, 0)
ROW(m_proof_stale, f->proof_status = SM_ERR_EXPIRED, 0)
ROW(m_wrong_device, f->proof_jkt = JKT_B, 0)
ROW(m_replayed, f->proof_jti_fresh = 0, 0)
ROW(m_no_txn, f->txn_found = 0, 0)
ROW(m_other_work, f->txn_work_id = "w2", 0)
ROW(m_other_retailer, f->txn_retailer = "retailer2", 0)
ROW(m_other_device_stored, f->txn_jkt = JKT_B, 0)
ROW(m_other_terms, (f->txn_terms.type = SM_KS_RENTAL, f->txn_terms.duration = 3600), 0)
ROW(m_device_revoked, f->device_revoked = 1, 0)
ROW(m_txn_revoked, f->txn_revoked = 1, 0)
ROW(m_refunded, f->payment = SM_KS_REFUNDED, 0)
ROW(m_unpaid, f->payment = SM_KS_UNPAID, 0)
ROW(m_contract, f->contract_allows_terms = 0, 0)
ROW(m_withdrawn, f->work_withdrawn = 1, 0)
ROW(m_limit_reached, f->activations = 5, 0)
ROW(m_below_limit, f->activations = 4, 0)
ROW(m_custom_limit, (f->activations = 1, f->activation_limit = 1), 0)
ROW(m_rental_first, (f->voucher_terms = f->txn_terms = (sm_ks_terms){SM_KS_RENTAL, 3600}), 0)
ROW(m_rental_running,
    (f->voucher_terms = f->txn_terms = (sm_ks_terms){SM_KS_RENTAL, 3600},
     f->rental_started_at = NOW - 3599),
    0)
ROW(m_rental_over,
    (f->voucher_terms = f->txn_terms = (sm_ks_terms){SM_KS_RENTAL, 3600},
     f->rental_started_at = NOW - 3600),
    0)
/* Precedence: a caller without the device learns nothing about the txn. */
ROW(m_wrong_device_and_unpaid, (f->proof_jkt = JKT_B, f->payment = SM_KS_UNPAID), 0)
ROW(m_replay_and_revoked, (f->proof_jti_fresh = 0, f->txn_revoked = 1), 0)
ROW(m_revoked_and_unpaid, (f->txn_revoked = 1, f->payment = SM_KS_UNPAID), 0)
ROW(m_unpaid_and_limit, (f->payment = SM_KS_UNPAID, f->activations = 9), 0)
ROW(m_device_revoked_and_rental_over,
    (f->device_revoked = 1, f->voucher_terms = f->txn_terms = (sm_ks_terms){SM_KS_RENTAL, 60},
     f->rental_started_at = 1),
    0)
ROW(m_rental_over_and_limit,
    (f->voucher_terms = f->txn_terms = (sm_ks_terms){SM_KS_RENTAL, 60},
     f->rental_started_at = 1, f->activations = 5),
    0)

static const struct {
    const char *name;
    mutate_fn mutate;
    sm_ks_license_verdict verdict;
    const char *code;
    int http;
} rows[] = {
    {"allowed", m_none, SM_KS_LICENSE_ALLOW, "allowed", 200},
    {"voucher signature", m_voucher_bad, SM_KS_REFUSE_VOUCHER_INVALID, "voucher-invalid", 401},
    {"voucher claim", m_voucher_claim, SM_KS_REFUSE_VOUCHER_INVALID, "voucher-invalid", 401},
    {"voucher expired", m_voucher_expired, SM_KS_REFUSE_VOUCHER_EXPIRED, "voucher-expired", 401},
    {"proof signature", m_proof_bad, SM_KS_REFUSE_PROOF_INVALID, "proof-invalid", 401},
    {"proof missing", m_proof_missing, SM_KS_REFUSE_PROOF_INVALID, "proof-invalid", 401},
    {"proof stale", m_proof_stale, SM_KS_REFUSE_PROOF_STALE, "proof-stale", 401},
    {"wrong device", m_wrong_device, SM_KS_REFUSE_WRONG_DEVICE, "wrong-device", 403},
    {"replayed proof", m_replayed, SM_KS_REFUSE_PROOF_REPLAYED, "proof-replayed", 401},
    {"unknown txn", m_no_txn, SM_KS_REFUSE_UNKNOWN_TXN, "unknown-transaction", 404},
    {"work mismatch", m_other_work, SM_KS_REFUSE_TXN_MISMATCH, "transaction-mismatch", 403},
    {"retailer mismatch", m_other_retailer, SM_KS_REFUSE_TXN_MISMATCH, "transaction-mismatch",
     403},
    {"device mismatch", m_other_device_stored, SM_KS_REFUSE_TXN_MISMATCH,
     "transaction-mismatch", 403},
    {"terms mismatch", m_other_terms, SM_KS_REFUSE_TXN_MISMATCH, "transaction-mismatch", 403},
    {"device revoked", m_device_revoked, SM_KS_REFUSE_DEVICE_REVOKED, "device-revoked", 403},
    {"txn revoked", m_txn_revoked, SM_KS_REFUSE_TXN_REVOKED, "transaction-revoked", 403},
    {"refunded", m_refunded, SM_KS_REFUSE_TXN_REVOKED, "transaction-revoked", 403},
    {"not paid", m_unpaid, SM_KS_REFUSE_NOT_PAID, "not-paid", 402},
    {"contract", m_contract, SM_KS_REFUSE_CONTRACT_INVALID, "contract-invalid", 403},
    {"withdrawn", m_withdrawn, SM_KS_REFUSE_WORK_WITHDRAWN, "work-withdrawn", 410},
    {"limit reached", m_limit_reached, SM_KS_REFUSE_ACTIVATION_LIMIT, "activation-limit", 403},
    {"below limit", m_below_limit, SM_KS_LICENSE_ALLOW, "allowed", 200},
    {"custom limit", m_custom_limit, SM_KS_REFUSE_ACTIVATION_LIMIT, "activation-limit", 403},
    {"rental first play", m_rental_first, SM_KS_LICENSE_ALLOW, "allowed", 200},
    {"rental running", m_rental_running, SM_KS_LICENSE_ALLOW, "allowed", 200},
    {"rental over", m_rental_over, SM_KS_REFUSE_RENTAL_EXPIRED, "rental-expired", 403},
    {"wrong device before unpaid", m_wrong_device_and_unpaid, SM_KS_REFUSE_WRONG_DEVICE,
     "wrong-device", 403},
    {"replay before revoked", m_replay_and_revoked, SM_KS_REFUSE_PROOF_REPLAYED,
     "proof-replayed", 401},
    {"revoked before unpaid", m_revoked_and_unpaid, SM_KS_REFUSE_TXN_REVOKED,
     "transaction-revoked", 403},
    {"unpaid before limit", m_unpaid_and_limit, SM_KS_REFUSE_NOT_PAID, "not-paid", 402},
    {"device revoked before rental", m_device_revoked_and_rental_over,
     SM_KS_REFUSE_DEVICE_REVOKED, "device-revoked", 403},
    {"rental over before limit", m_rental_over_and_limit, SM_KS_REFUSE_RENTAL_EXPIRED,
     "rental-expired", 403},
};

START_TEST(test_decision_table)
{
    sm_ks_license_facts f = baseline();
    rows[_i].mutate(&f);
    sm_ks_license_decision d = sm_ks_license_decide(&f);
    ck_assert_msg(d.verdict == rows[_i].verdict, "%s: got %s, expected %s", rows[_i].name,
                  sm_ks_license_verdict_code(d.verdict),
                  sm_ks_license_verdict_code(rows[_i].verdict));
    ck_assert_str_eq(sm_ks_license_verdict_code(d.verdict), rows[_i].code);
    ck_assert_int_eq(sm_ks_license_verdict_http_status(d.verdict), rows[_i].http);
    ck_assert(strlen(sm_ks_license_verdict_message(d.verdict)) > 10);
    if (d.verdict == SM_KS_LICENSE_ALLOW)
        ck_assert_uint_eq(d.activations_after, f.activations + 1);
    else
        ck_assert_uint_eq(d.activations_after, 0);
}
END_TEST

START_TEST(test_rental_end)
{
    sm_ks_license_facts f = baseline();
    f.voucher_terms = f.txn_terms = (sm_ks_terms){SM_KS_RENTAL, 7200};
    sm_ks_license_decision d = sm_ks_license_decide(&f);
    ck_assert_int_eq(d.verdict, SM_KS_LICENSE_ALLOW);
    ck_assert_int_eq(d.rental_ends_at, NOW + 7200); /* starts now */
    f.rental_started_at = NOW - 100;
    d = sm_ks_license_decide(&f);
    ck_assert_int_eq(d.rental_ends_at, NOW - 100 + 7200);
    f = baseline();
    d = sm_ks_license_decide(&f);
    ck_assert_int_eq(d.rental_ends_at, 0);
}
END_TEST

START_TEST(test_activation_counting)
{
    /* Exactly `limit` licenses are issued when requests come one by one. */
    for (uint32_t limit = 1; limit <= 7; limit++) {
        sm_ks_license_facts f = baseline();
        f.activation_limit = limit;
        uint32_t issued = 0;
        for (int i = 0; i < 20; i++) {
            sm_ks_license_decision d = sm_ks_license_decide(&f);
            if (d.verdict == SM_KS_LICENSE_ALLOW) {
                issued++;
                f.activations = d.activations_after;
            }
        }
        ck_assert_uint_eq(issued, limit);
    }
}
END_TEST

/* A delivery-token renewal: every license check but the limit, which it
 * neither needs nor moves; it needs a license issued before. */
START_TEST(test_delivery_only)
{
    sm_ks_license_facts f = baseline();
    f.delivery_only = 1;
    sm_ks_license_decision d = sm_ks_license_decide(&f);
    ck_assert_str_eq(sm_ks_license_verdict_code(d.verdict), "no-license");
    ck_assert_int_eq(sm_ks_license_verdict_http_status(d.verdict), 409);
    for (uint32_t n = 1; n <= 9; n++) { /* at, and over, the limit of 5 */
        f.activations = n;
        d = sm_ks_license_decide(&f);
        ck_assert_int_eq(d.verdict, SM_KS_LICENSE_ALLOW);
        ck_assert_uint_eq(d.activations_after, n); /* nothing counted */
    }
    /* Every other refusal still applies, in the same order. */
    for (size_t i = 1; i < sizeof(rows) / sizeof(rows[0]); i++) {
        if (rows[i].verdict == SM_KS_REFUSE_ACTIVATION_LIMIT || rows[i].verdict == 0)
            continue;
        f = baseline();
        f.delivery_only = 1;
        f.activations = 2;
        rows[i].mutate(&f);
        d = sm_ks_license_decide(&f);
        ck_assert_msg(d.verdict == rows[i].verdict, "%s (renewal): got %s", rows[i].name,
                      sm_ks_license_verdict_code(d.verdict));
    }
    /* A rental's renewal ends with the rental, whose clock the first
     * license started. */
    f = baseline();
    f.delivery_only = 1;
    f.activations = 1;
    f.voucher_terms = f.txn_terms = (sm_ks_terms){SM_KS_RENTAL, 3600};
    f.rental_started_at = NOW - 600;
    d = sm_ks_license_decide(&f);
    ck_assert_int_eq(d.verdict, SM_KS_LICENSE_ALLOW);
    ck_assert_int_eq(d.rental_ends_at, NOW + 3000);
    f.rental_started_at = NOW - 3600;
    ck_assert_int_eq(sm_ks_license_decide(&f).verdict, SM_KS_REFUSE_RENTAL_EXPIRED);
}
END_TEST

START_TEST(test_unknown_verdict)
{
    ck_assert_str_eq(sm_ks_license_verdict_code((sm_ks_license_verdict)999), "refused");
    ck_assert_int_eq(sm_ks_license_verdict_http_status((sm_ks_license_verdict)999), 403);
    /* An all-zero fact set is refused, never allowed. */
    sm_ks_license_facts f;
    memset(&f, 0, sizeof(f));
    ck_assert_int_ne(sm_ks_license_decide(&f).verdict, SM_KS_LICENSE_ALLOW);
}
END_TEST

static Suite *license_suite(void)
{
    Suite *s = suite_create("ks_license");
    TCase *tc = tcase_create("decision");
    tcase_add_loop_test(tc, test_decision_table, 0, (int)(sizeof(rows) / sizeof(rows[0])));
    tcase_add_test(tc, test_rental_end);
    tcase_add_test(tc, test_activation_counting);
    tcase_add_test(tc, test_delivery_only);
    tcase_add_test(tc, test_unknown_verdict);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(license_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
