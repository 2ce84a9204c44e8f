/* Distributor -> retailer contracts (DESIGN flow 2).
 *
 * An owner lets one retailer sell some of its works during a validity
 * window, under one or more license offers (purchase, rentals of given
 * durations) each with a wholesale price in integer minor units of one
 * ISO 4217 currency, and names the rights holders who share the money, in
 * basis points that add up to exactly 10000 (100 %).
 *
 * JSON form (the body of POST /v1/contracts, see docs/PROTOCOL.md):
 *
 *   {"retailer":"retailer1","works":["w1","w2"],"currency":"EUR",
 *    "valid_from":1700000000,"valid_until":1800000000,
 *    "licenses":[{"type":"purchase","price":199},
 *                {"type":"rental","duration":172800,"price":99}],
 *    "royalties":[{"holder":"Label","share_bps":6000},
 *                 {"holder":"Artist","share_bps":4000}]} */
#ifndef SM_KS_CONTRACT_H
#define SM_KS_CONTRACT_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "sm_container.h"
#include "sm_error.h"
#include "sm_ks_terms.h"

#define SM_KS_MAX_OFFERS 8u
#define SM_KS_MAX_HOLDERS 32u
#define SM_KS_MAX_CONTRACT_WORKS 256u
#define SM_KS_HOLDER_NAME_MAX 200u
#define SM_KS_BPS_TOTAL 10000u
/* Largest wholesale price in minor units (10^12: no overflow when summed
 * over many sales in 64 bits). */
#define SM_KS_PRICE_MAX INT64_C(1000000000000)

typedef struct sm_ks_offer {
    sm_ks_terms terms;
    int64_t price; /* wholesale, minor units of the contract currency */
} sm_ks_offer;

typedef struct sm_ks_royalty {
    char holder[SM_KS_HOLDER_NAME_MAX + 1];
    uint32_t share_bps;
} sm_ks_royalty;

typedef struct sm_ks_contract {
    char retailer[SM_KS_ID_SIZE];
    char currency[4];
    int64_t valid_from;  /* first second the retailer may sell */
    int64_t valid_until; /* first second it may no longer sell */
    size_t n_works;
    char works[SM_KS_MAX_CONTRACT_WORKS][SM_WORK_ID_MAX + 1];
    size_t n_offers;
    sm_ks_offer offers[SM_KS_MAX_OFFERS];
    size_t n_royalties;
    sm_ks_royalty royalties[SM_KS_MAX_HOLDERS];
} sm_ks_contract;

/* Strict parse and validation of the JSON form; *out is malloc'ed. */
sm_status sm_ks_contract_from_json(json_t *obj, sm_ks_contract **out, sm_error *err);

/* Checks every invariant (ids, currency, window, offers unique and priced,
 * holders unique, shares 1..10000 summing to exactly 10000). */
sm_status sm_ks_contract_validate(const sm_ks_contract *c, sm_error *err);

/* The offer with exactly these terms, or NULL. */
const sm_ks_offer *sm_ks_contract_find_offer(const sm_ks_contract *c, const sm_ks_terms *terms);

/* 1 when sales are allowed at time now: valid_from <= now < valid_until. */
int sm_ks_contract_active(const sm_ks_contract *c, int64_t now);

/* Splits amount (>= 0) among the holders by their shares so the parts add
 * up exactly to amount: each gets floor(amount * bps / 10000), and the
 * minor units left over go one each to the largest remainders (ties to
 * the earlier holder). parts has n_royalties entries. */
sm_status sm_ks_contract_apportion(const sm_ks_contract *c, int64_t amount, int64_t *parts,
                                   sm_error *err);

/* ISO 4217 currency in use for payments: its number of minor-unit digits
 * (0, 2, 3 or 4), or -1 for a string that is not such a code. */
int sm_ks_currency_minor_units(const char *code);

/* JSON form of a validated contract (without the works list when
 * with_works is 0); NULL when out of memory. */
json_t *sm_ks_contract_to_json(const sm_ks_contract *c, int with_works);

#endif
