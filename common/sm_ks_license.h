/* The license decision (DESIGN flow 6): given everything the key server
 * knows about a license request, allow it or name the precise reason for
 * refusing it. Pure: no I/O, no clock, no database; the caller gathers the
 * facts (in one database transaction, rows locked) and acts on the answer.
 *
 * Checks, in this order, so the reason reported is the most fundamental one
 * and nothing about a transaction leaks to a caller who cannot prove it
 * holds the designated device:
 *   1. the voucher verified (our signature, typ, iss/aud, time window);
 *   2. the device proof verified (signature, htm/htu, freshness);
 *   3. the proof's key is the device the voucher is bound to;
 *   4. the proof's jti was not seen before (single use);
 *   5. the transaction exists and matches the voucher (work, retailer,
 *      device, terms);
 *   6. the designated device is not revoked, the transaction is not
 *      revoked or refunded;
 *   7. the payment is recorded;
 *   8. the contract still covers the terms sold, the work is not withdrawn;
 *   9. a rental has not run out;
 *  10. the activation limit is not reached; for a delivery-token renewal
 *      (delivery_only) instead: a license was issued before, and nothing
 *      is counted. */
#ifndef SM_KS_LICENSE_H
#define SM_KS_LICENSE_H

#include <stdint.h>

#include "sm_error.h"
#include "sm_ks_terms.h"

/* Activations (licenses issued) per transaction unless configured. */
#define SM_KS_DEFAULT_ACTIVATION_LIMIT 5u
#define SM_KS_MAX_ACTIVATION_LIMIT 1000u

typedef enum sm_ks_license_verdict {
    SM_KS_LICENSE_ALLOW = 0,
    SM_KS_REFUSE_VOUCHER_INVALID,   /* bad signature/typ/issuer or not a voucher */
    SM_KS_REFUSE_VOUCHER_EXPIRED,   /* the voucher's exp has passed */
    SM_KS_REFUSE_PROOF_INVALID,     /* DPoP proof malformed, bad signature, wrong htm/htu */
    SM_KS_REFUSE_PROOF_STALE,       /* DPoP iat outside the allowed window */
    SM_KS_REFUSE_WRONG_DEVICE,      /* proof key is not the voucher's jkt */
    SM_KS_REFUSE_PROOF_REPLAYED,    /* the proof's jti was used before */
    SM_KS_REFUSE_UNKNOWN_TXN,       /* no such transaction */
    SM_KS_REFUSE_TXN_MISMATCH,      /* voucher and stored transaction disagree */
    SM_KS_REFUSE_DEVICE_REVOKED,    /* the designated device was revoked */
    SM_KS_REFUSE_TXN_REVOKED,       /* the transaction was revoked or refunded */
    SM_KS_REFUSE_NOT_PAID,          /* no payment recorded yet */
    SM_KS_REFUSE_CONTRACT_INVALID,  /* contract gone or no longer allows the terms */
    SM_KS_REFUSE_WORK_WITHDRAWN,    /* the work was withdrawn */
    SM_KS_REFUSE_RENTAL_EXPIRED,    /* rental period over */
    SM_KS_REFUSE_ACTIVATION_LIMIT,  /* activation limit reached */
    SM_KS_REFUSE_NO_LICENSE         /* renewal asked for before any license */
} sm_ks_license_verdict;

typedef enum sm_ks_payment_state {
    SM_KS_UNPAID = 0,
    SM_KS_PAID = 1,
    SM_KS_REFUNDED = 2
} sm_ks_payment_state;

/* What the caller learnt. Strings may be NULL where the fact is absent. */
typedef struct sm_ks_license_facts {
    int64_t now;

    /* Voucher, as verified by sm_ks_voucher_verify. */
    sm_status voucher_status;
    const char *voucher_txn;
    const char *voucher_work_id;
    const char *voucher_retailer;
    const char *voucher_jkt;
    sm_ks_terms voucher_terms;

    /* Device proof, as verified by sm_dpop_verify (without a jkt binding:
     * the binding is check 3 here). */
    sm_status proof_status;
    const char *proof_jkt;
    int proof_jti_fresh; /* 1: the atomic insert of the jti succeeded */

    /* The stored transaction. */
    int txn_found;
    const char *txn_work_id;
    const char *txn_retailer;
    const char *txn_jkt;
    sm_ks_terms txn_terms;
    int txn_revoked;
    sm_ks_payment_state payment;
    int device_revoked;
    int work_withdrawn;
    int contract_allows_terms; /* the contract still exists and offers txn_terms */
    int64_t rental_started_at; /* first license time; 0 = no license yet */

    uint32_t activations;      /* licenses issued so far */
    uint32_t activation_limit; /* 0 = SM_KS_DEFAULT_ACTIVATION_LIMIT */
    /* A delivery-token renewal: every check of a license except the
     * activation limit; needs activations >= 1 and counts nothing. */
    int delivery_only;
} sm_ks_license_facts;

typedef struct sm_ks_license_decision {
    sm_ks_license_verdict verdict;
    /* For an allowed rental: when it ends (0 for a purchase). */
    int64_t rental_ends_at;
    /* For an allowed request: activations after this one (a renewal:
     * the activations so far, unchanged). */
    uint32_t activations_after;
} sm_ks_license_decision;

/* Decides. Never fails: every input combination maps to a verdict. */
sm_ks_license_decision sm_ks_license_decide(const sm_ks_license_facts *facts);

/* Stable short code ("not-paid", "rental-expired", ...) for problem types
 * and logs; "allowed" for SM_KS_LICENSE_ALLOW. */
const char *sm_ks_license_verdict_code(sm_ks_license_verdict v);
/* A sentence for the problem detail, saying what to do where possible. */
const char *sm_ks_license_verdict_message(sm_ks_license_verdict v);
/* The HTTP status for a refusal (200 for ALLOW). */
int sm_ks_license_verdict_http_status(sm_ks_license_verdict v);

#endif
