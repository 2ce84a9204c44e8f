#include "config.h"

/* The payment authority's test double (sm_rt_payment.h). */

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "sm_rt_payment.h"

/* Like a processor, the double remembers the references it saw (the last
 * SEEN_MAX, per process): a repeat with the same account and amount answers
 * the first outcome without charging again; a reference reused for another
 * account or amount is an error of the caller, and the double refuses it
 * loudly rather than approving a charge it never made. */
#define SEEN_MAX 1024

typedef struct seen_charge {
    char reference[129];
    uint64_t account_id;
    int64_t amount;
    sm_rt_charge outcome;
} seen_charge;

static pthread_mutex_t seen_lock = PTHREAD_MUTEX_INITIALIZER;
static seen_charge seen[SEEN_MAX];
static size_t seen_next;

static sm_status test_double_decide(uint64_t account_id, int64_t amount, const char *currency,
                                    const char *payment_token, const char *reference,
                                    sm_rt_charge *out, sm_error *err)
{
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

static sm_status test_double_charge(void *self, uint64_t account_id, int64_t amount,
                                    const char *currency, const char *payment_token,
                                    const char *reference, sm_rt_charge *out, sm_error *err)
{
    (void)self;
    memset(out, 0, sizeof(*out));
    if (strlen(reference) >= sizeof(seen[0].reference))
        return sm_error_set(err, SM_ERR_ARG, "test double: reference too long");
    pthread_mutex_lock(&seen_lock);
    for (size_t i = 0; i < SEEN_MAX; i++) {
        if (strcmp(seen[i].reference, reference) != 0)
            continue;
        sm_status st = SM_OK;
        if (seen[i].account_id != account_id || seen[i].amount != amount)
            st = sm_error_set(err, SM_ERR_STATE,
                              "test double: reference %s reused for another account or amount",
                              reference);
        else
            *out = seen[i].outcome;
        pthread_mutex_unlock(&seen_lock);
        return st;
    }
    sm_status st = test_double_decide(account_id, amount, currency, payment_token, reference,
                                      out, err);
    if (st == SM_OK) {
        seen_charge *e = &seen[seen_next];
        seen_next = (seen_next + 1) % SEEN_MAX;
        snprintf(e->reference, sizeof(e->reference), "%s", reference);
        e->account_id = account_id;
        e->amount = amount;
        e->outcome = *out;
    }
    pthread_mutex_unlock(&seen_lock);
    return st;
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
