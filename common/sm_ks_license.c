#include "config.h"

/* The license decision (see sm_ks_license.h for the order of checks). */

#include <string.h>

#include "sm_ks_license.h"

/* NULL-safe exact comparison: an absent fact never matches. */
static int same(const char *a, const char *b)
{
    return a != NULL && b != NULL && strcmp(a, b) == 0;
}

static sm_ks_license_decision refuse(sm_ks_license_verdict v)
{
    sm_ks_license_decision d = {v, 0, 0};
    return d;
}

sm_ks_license_decision sm_ks_license_decide(const sm_ks_license_facts *f)
{
    if (f->voucher_status == SM_ERR_EXPIRED)
        return refuse(SM_KS_REFUSE_VOUCHER_EXPIRED);
    if (f->voucher_status != SM_OK || f->voucher_txn == NULL || f->voucher_jkt == NULL)
        return refuse(SM_KS_REFUSE_VOUCHER_INVALID);
    if (f->proof_status == SM_ERR_EXPIRED)
        return refuse(SM_KS_REFUSE_PROOF_STALE);
    if (f->proof_status != SM_OK || f->proof_jkt == NULL)
        return refuse(SM_KS_REFUSE_PROOF_INVALID);
    if (!same(f->proof_jkt, f->voucher_jkt))
        return refuse(SM_KS_REFUSE_WRONG_DEVICE);
    if (!f->proof_jti_fresh)
        return refuse(SM_KS_REFUSE_PROOF_REPLAYED);
    if (!f->txn_found)
        return refuse(SM_KS_REFUSE_UNKNOWN_TXN);
    if (!same(f->txn_work_id, f->voucher_work_id) || !same(f->txn_retailer, f->voucher_retailer) ||
        !same(f->txn_jkt, f->voucher_jkt) || !sm_ks_terms_equal(&f->txn_terms, &f->voucher_terms))
        return refuse(SM_KS_REFUSE_TXN_MISMATCH);
    if (f->device_revoked)
        return refuse(SM_KS_REFUSE_DEVICE_REVOKED);
    if (f->txn_revoked || f->payment == SM_KS_REFUNDED)
        return refuse(SM_KS_REFUSE_TXN_REVOKED);
    if (f->payment != SM_KS_PAID)
        return refuse(SM_KS_REFUSE_NOT_PAID);
    if (!f->contract_allows_terms)
        return refuse(SM_KS_REFUSE_CONTRACT_INVALID);
    if (f->work_withdrawn)
        return refuse(SM_KS_REFUSE_WORK_WITHDRAWN);

    sm_ks_license_decision d = {SM_KS_LICENSE_ALLOW, 0, 0};
    if (f->txn_terms.type == SM_KS_RENTAL) {
        /* The rental clock starts with the first license. */
        int64_t start = f->rental_started_at > 0 ? f->rental_started_at : f->now;
        d.rental_ends_at = start + f->txn_terms.duration;
        if (f->now >= d.rental_ends_at)
            return refuse(SM_KS_REFUSE_RENTAL_EXPIRED);
    } else if (f->txn_terms.type != SM_KS_PURCHASE) {
        return refuse(SM_KS_REFUSE_TXN_MISMATCH);
    }

    if (f->delivery_only) {
        /* Renews the delivery token of a license this device holds: the
         * key already went out with a counted activation. */
        if (f->activations == 0)
            return refuse(SM_KS_REFUSE_NO_LICENSE);
        d.activations_after = f->activations;
        return d;
    }
    uint32_t limit = f->activation_limit != 0 ? f->activation_limit : SM_KS_DEFAULT_ACTIVATION_LIMIT;
    if (f->activations >= limit)
        return refuse(SM_KS_REFUSE_ACTIVATION_LIMIT);
    d.activations_after = f->activations + 1;
    return d;
}

static const struct {
    const char *code;
    int http;
    const char *message;
} verdicts[] = {
    [SM_KS_LICENSE_ALLOW] = {"allowed", 200, "license issued"},
    [SM_KS_REFUSE_VOUCHER_INVALID] = {"voucher-invalid", 401,
                                      "the voucher is not a valid voucher of this key server"},
    [SM_KS_REFUSE_VOUCHER_EXPIRED] = {"voucher-expired", 401,
                                      "the voucher has expired; ask the retailer for a new one"},
    [SM_KS_REFUSE_PROOF_INVALID] = {"proof-invalid", 401,
                                    "the device proof (DPoP header) is missing or invalid"},
    [SM_KS_REFUSE_PROOF_STALE] = {"proof-stale", 401,
                                  "the device proof is too old or from the future; check the "
                                  "device clock"},
    [SM_KS_REFUSE_WRONG_DEVICE] = {"wrong-device", 403,
                                   "the voucher is bound to another device"},
    [SM_KS_REFUSE_PROOF_REPLAYED] = {"proof-replayed", 401,
                                     "the device proof was already used; make a new one per "
                                     "request"},
    [SM_KS_REFUSE_UNKNOWN_TXN] = {"unknown-transaction", 404,
                                  "the voucher's transaction is not known to this key server"},
    [SM_KS_REFUSE_TXN_MISMATCH] = {"transaction-mismatch", 403,
                                   "the voucher does not match the recorded transaction"},
    [SM_KS_REFUSE_DEVICE_REVOKED] = {"device-revoked", 403, "the device has been revoked"},
    [SM_KS_REFUSE_TXN_REVOKED] = {"transaction-revoked", 403,
                                  "the purchase was revoked or refunded"},
    [SM_KS_REFUSE_NOT_PAID] = {"not-paid", 402,
                               "no payment is recorded for this transaction yet"},
    [SM_KS_REFUSE_CONTRACT_INVALID] = {"contract-invalid", 403,
                                       "the retailer's contract no longer covers this license"},
    [SM_KS_REFUSE_WORK_WITHDRAWN] = {"work-withdrawn", 410, "the work has been withdrawn"},
    [SM_KS_REFUSE_RENTAL_EXPIRED] = {"rental-expired", 403, "the rental period is over"},
    [SM_KS_REFUSE_ACTIVATION_LIMIT] = {"activation-limit", 403,
                                       "the activation limit of this purchase is reached"},
    [SM_KS_REFUSE_NO_LICENSE] = {"no-license", 409,
                                 "no license was issued for this purchase yet; request a "
                                 "license (without delivery_only) first"},
};

static int known(sm_ks_license_verdict v)
{
    return (unsigned)v < sizeof(verdicts) / sizeof(verdicts[0]) && verdicts[v].code != NULL;
}

const char *sm_ks_license_verdict_code(sm_ks_license_verdict v)
{
    return known(v) ? verdicts[v].code : "refused";
}

const char *sm_ks_license_verdict_message(sm_ks_license_verdict v)
{
    return known(v) ? verdicts[v].message : "the license was refused";
}

int sm_ks_license_verdict_http_status(sm_ks_license_verdict v)
{
    return known(v) ? verdicts[v].http : 403;
}
