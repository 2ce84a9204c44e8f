#include "config.h"

/* The payment authority's test double (sm_rt_payment.h). */

#include <stdio.h>
#include <string.h>

#include "sm_rt_payment.h"

static sm_status test_double_charge(void *self, uint64_t account_id, int64_t amount,
                                    const char *currency, const char *payment_token,
                                    const char *reference, sm_rt_charge *out, sm_error *err)
{
    (void)self;
    memset(out, 0, sizeof(*out));
    if (strcmp(payment_token, "unavailable") == 0)
        return sm_error_set(err, SM_ERR_UNAVAILABLE, "test double: processor unavailable");
    if (strcmp(payment_token, "approve") != 0) {
        snprintf(out->decline_reason, sizeof(out->decline_reason),
                 "the test payment authority declines every token but \"approve\"");
        return SM_OK;
    }
    out->approved = 1;
    snprintf(out->processor_ref, sizeof(out->processor_ref), "test-%llu-%lld-%s-%.24s",
             (unsigned long long)account_id, (long long)amount, currency, reference);
    return SM_OK;
}

static const sm_rt_payment_authority test_double = {"test-double", test_double_charge, NULL};

const sm_rt_payment_authority *sm_rt_payment_test_double(void)
{
    return &test_double;
}

const sm_rt_payment_authority *sm_rt_payment_by_name(const char *name)
{
    return strcmp(name, "test-double") == 0 ? &test_double : NULL;
}
