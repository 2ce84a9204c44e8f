/* The payment authority: how the retailer takes real money for wallet
 * points. A processor integration implements this interface (charge once
 * per reference: a repeat with the same reference must not charge again,
 * and answers the first outcome). docs/PROTOCOL.md §4.6 describes the
 * contract. The only implementation in this tree is the test double
 * below; it moves no money. */
#ifndef SM_RT_PAYMENT_H
#define SM_RT_PAYMENT_H

#include <stdint.h>

#include "sm_error.h"

typedef struct sm_rt_charge {
    int approved;              /* 1 approved, 0 declined */
    char processor_ref[65];    /* the processor's id of the charge (approved) */
    char decline_reason[200];  /* for the buyer (declined) */
} sm_rt_charge;

typedef struct sm_rt_payment_authority {
    const char *name;
    /* Charges amount minor units of currency to what payment_token stands
     * for, once per reference (the random reference of the retailer's
     * top-up row, bound to one account, amount and request). SM_ERR_UNAVAILABLE when the outcome is unknown: the caller
     * repeats with the same reference. */
    sm_status (*charge)(void *self, uint64_t account_id, int64_t amount, const char *currency,
                        const char *payment_token, const char *reference, sm_rt_charge *out,
                        sm_error *err);
    void *self;
} sm_rt_payment_authority;

/* The test double "test-double": approves payment_token "approve",
 * declines any other, answers SM_ERR_UNAVAILABLE for "unavailable"; a
 * repeated reference answers the first outcome (per process), and one
 * reused for another account or amount is refused (SM_ERR_STATE).
 * For tests and demonstrations only. */
const sm_rt_payment_authority *sm_rt_payment_test_double(void);

/* The authority named name ("test-double"), or NULL. */
const sm_rt_payment_authority *sm_rt_payment_by_name(const char *name);

#endif
