#include "config.h"

/* Contract parsing, validation and royalty apportionment (sm_ks_contract.h). */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sm_json.h"
#include "sm_ks_contract.h"
#include "sm_validate.h"

/* NumericDate bound shared with the JOSE layer: 9999-12-31T23:59:59Z. */
#define MAX_DATE INT64_C(253402300799)

/* ISO 4217 codes of currencies in circulation (funds codes included, metals,
 * SDR and test codes left out), with their minor-unit digits. Sorted. */
static const struct {
    char code[4];
    int minor;
} currencies[] = {
    {"AED", 2}, {"AFN", 2}, {"ALL", 2}, {"AMD", 2}, {"ANG", 2}, {"AOA", 2}, {"ARS", 2},
    {"AUD", 2}, {"AWG", 2}, {"AZN", 2}, {"BAM", 2}, {"BBD", 2}, {"BDT", 2}, {"BGN", 2},
    {"BHD", 3}, {"BIF", 0}, {"BMD", 2}, {"BND", 2}, {"BOB", 2}, {"BOV", 2}, {"BRL", 2},
    {"BSD", 2}, {"BTN", 2}, {"BWP", 2}, {"BYN", 2}, {"BZD", 2}, {"CAD", 2}, {"CDF", 2},
    {"CHE", 2}, {"CHF", 2}, {"CHW", 2}, {"CLF", 4}, {"CLP", 0}, {"CNY", 2}, {"COP", 2},
    {"COU", 2}, {"CRC", 2}, {"CUP", 2}, {"CVE", 2}, {"CZK", 2}, {"DJF", 0}, {"DKK", 2},
    {"DOP", 2}, {"DZD", 2}, {"EGP", 2}, {"ERN", 2}, {"ETB", 2}, {"EUR", 2}, {"FJD", 2},
    {"FKP", 2}, {"GBP", 2}, {"GEL", 2}, {"GHS", 2}, {"GIP", 2}, {"GMD", 2}, {"GNF", 0},
    {"GTQ", 2}, {"GYD", 2}, {"HKD", 2}, {"HNL", 2}, {"HTG", 2}, {"HUF", 2}, {"IDR", 2},
    {"ILS", 2}, {"INR", 2}, {"IQD", 3}, {"IRR", 2}, {"ISK", 0}, {"JMD", 2}, {"JOD", 3},
    {"JPY", 0}, {"KES", 2}, {"KGS", 2}, {"KHR", 2}, {"KMF", 0}, {"KPW", 2}, {"KRW", 0},
    {"KWD", 3}, {"KYD", 2}, {"KZT", 2}, {"LAK", 2}, {"LBP", 2}, {"LKR", 2}, {"LRD", 2},
    {"LSL", 2}, {"LYD", 3}, {"MAD", 2}, {"MDL", 2}, {"MGA", 2}, {"MKD", 2}, {"MMK", 2},
    {"MNT", 2}, {"MOP", 2}, {"MRU", 2}, {"MUR", 2}, {"MVR", 2}, {"MWK", 2}, {"MXN", 2},
    {"MXV", 2}, {"MYR", 2}, {"MZN", 2}, {"NAD", 2}, {"NGN", 2}, {"NIO", 2}, {"NOK", 2},
    {"NPR", 2}, {"NZD", 2}, {"OMR", 3}, {"PAB", 2}, {"PEN", 2}, {"PGK", 2}, {"PHP", 2},
    {"PKR", 2}, {"PLN", 2}, {"PYG", 0}, {"QAR", 2}, {"RON", 2}, {"RSD", 2}, {"RUB", 2},
    {"RWF", 0}, {"SAR", 2}, {"SBD", 2}, {"SCR", 2}, {"SDG", 2}, {"SEK", 2}, {"SGD", 2},
    {"SHP", 2}, {"SLE", 2}, {"SOS", 2}, {"SRD", 2}, {"SSP", 2}, {"STN", 2}, {"SVC", 2},
    {"SYP", 2}, {"SZL", 2}, {"THB", 2}, {"TJS", 2}, {"TMT", 2}, {"TND", 3}, {"TOP", 2},
    {"TRY", 2}, {"TTD", 2}, {"TWD", 2}, {"TZS", 2}, {"UAH", 2}, {"UGX", 0}, {"USD", 2},
    {"USN", 2}, {"UYI", 0}, {"UYU", 2}, {"UYW", 4}, {"UZS", 2}, {"VED", 2}, {"VES", 2},
    {"VND", 0}, {"VUV", 0}, {"WST", 2}, {"XAF", 0}, {"XCD", 2}, {"XCG", 2}, {"XOF", 0},
    {"XPF", 0}, {"YER", 2}, {"ZAR", 2}, {"ZMW", 2}, {"ZWG", 2},
};

int sm_ks_currency_minor_units(const char *code)
{
    if (code == NULL || strlen(code) != 3)
        return -1;
    size_t lo = 0, hi = sizeof(currencies) / sizeof(currencies[0]);
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(code, currencies[mid].code);
        if (c == 0)
            return currencies[mid].minor;
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return -1;
}

static sm_status check_date(json_t *obj, const char *name, int64_t *out, sm_error *err)
{
    json_int_t v = json_integer_value(json_object_get(obj, name));
    if (v < 0 || v > MAX_DATE)
        return sm_error_set(err, SM_ERR_FORMAT,
                            "contract: \"%s\" must be seconds since 1970 (0 to %lld)", name,
                            (long long)MAX_DATE);
    *out = v;
    return SM_OK;
}

static sm_status parse_works(json_t *arr, sm_ks_contract *c, sm_error *err)
{
    size_t n = json_array_size(arr);
    if (n == 0 || n > SM_KS_MAX_CONTRACT_WORKS)
        return sm_error_set(err, SM_ERR_FORMAT, "contract: \"works\" must list 1 to %u work ids",
                            SM_KS_MAX_CONTRACT_WORKS);
    for (size_t i = 0; i < n; i++) {
        const char *id = json_string_value(json_array_get(arr, i));
        char what[48];
        snprintf(what, sizeof(what), "contract: works[%zu]", i);
        if (id == NULL)
            return sm_error_set(err, SM_ERR_FORMAT, "%s must be a string", what);
        if (strlen(id) != json_string_length(json_array_get(arr, i)))
            return sm_error_set(err, SM_ERR_FORMAT, "%s contains a NUL character", what);
        sm_status st = sm_ks_validate_id(id, what, err);
        if (st != SM_OK)
            return st;
        memcpy(c->works[i], id, strlen(id) + 1);
    }
    c->n_works = n;
    return SM_OK;
}

static sm_status parse_offers(json_t *arr, sm_ks_contract *c, sm_error *err)
{
    static const sm_json_field fields[] = {{"type", SM_JSON_STRING, 1},
                                           {"duration", SM_JSON_INTEGER, 0},
                                           {"price", SM_JSON_INTEGER, 1},
                                           {NULL, SM_JSON_STRING, 0}};
    size_t n = json_array_size(arr);
    if (n == 0 || n > SM_KS_MAX_OFFERS)
        return sm_error_set(err, SM_ERR_FORMAT,
                            "contract: \"licenses\" must list 1 to %u license offers",
                            SM_KS_MAX_OFFERS);
    for (size_t i = 0; i < n; i++) {
        json_t *o = json_array_get(arr, i);
        char what[48];
        snprintf(what, sizeof(what), "contract: licenses[%zu]", i);
        if (!json_is_object(o))
            return sm_error_set(err, SM_ERR_FORMAT, "%s must be an object", what);
        sm_status st = sm_json_check_fields(o, fields, what, err);
        if (st != SM_OK)
            return st;
        /* The terms are the offer without its price. */
        json_t *terms = json_copy(o);
        if (terms == NULL)
            return sm_error_set(err, SM_ERR_NOMEM, "contract: out of memory");
        json_object_del(terms, "price");
        st = sm_ks_terms_from_json(terms, what, &c->offers[i].terms, err);
        json_decref(terms);
        if (st != SM_OK)
            return st;
        c->offers[i].price = json_integer_value(json_object_get(o, "price"));
    }
    c->n_offers = n;
    return SM_OK;
}

static sm_status parse_royalties(json_t *arr, sm_ks_contract *c, sm_error *err)
{
    static const sm_json_field fields[] = {{"holder", SM_JSON_STRING, 1},
                                           {"share_bps", SM_JSON_INTEGER, 1},
                                           {NULL, SM_JSON_STRING, 0}};
    size_t n = json_array_size(arr);
    if (n == 0 || n > SM_KS_MAX_HOLDERS)
        return sm_error_set(err, SM_ERR_FORMAT,
                            "contract: \"royalties\" must name 1 to %u rights holders",
                            SM_KS_MAX_HOLDERS);
    for (size_t i = 0; i < n; i++) {
        json_t *o = json_array_get(arr, i);
        char what[48];
        snprintf(what, sizeof(what), "contract: royalties[%zu]", i);
        if (!json_is_object(o))
            return sm_error_set(err, SM_ERR_FORMAT, "%s must be an object", what);
        sm_status st = sm_json_check_fields(o, fields, what, err);
        if (st != SM_OK)
            return st;
        st = sm_json_copy_string(o, "holder", c->royalties[i].holder,
                                 sizeof(c->royalties[i].holder), 1, what, err);
        if (st != SM_OK)
            return st;
        json_int_t bps = json_integer_value(json_object_get(o, "share_bps"));
        if (bps < 1 || bps > SM_KS_BPS_TOTAL)
            return sm_error_set(err, SM_ERR_FORMAT,
                                "%s: \"share_bps\" must be 1 to 10000 (basis points, "
                                "10000 = 100 %%)",
                                what);
        c->royalties[i].share_bps = (uint32_t)bps;
    }
    c->n_royalties = n;
    return SM_OK;
}

sm_status sm_ks_contract_from_json(json_t *obj, sm_ks_contract **out, sm_error *err)
{
    static const sm_json_field fields[] = {{"retailer", SM_JSON_STRING, 1},
                                           {"works", SM_JSON_ARRAY, 1},
                                           {"currency", SM_JSON_STRING, 1},
                                           {"valid_from", SM_JSON_INTEGER, 1},
                                           {"valid_until", SM_JSON_INTEGER, 1},
                                           {"licenses", SM_JSON_ARRAY, 1},
                                           {"royalties", SM_JSON_ARRAY, 1},
                                           {NULL, SM_JSON_STRING, 0}};
    *out = NULL;
    if (!json_is_object(obj))
        return sm_error_set(err, SM_ERR_FORMAT, "contract: expected a JSON object");
    sm_status st = sm_json_check_fields(obj, fields, "contract", err);
    if (st != SM_OK)
        return st;
    sm_ks_contract *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return sm_error_set(err, SM_ERR_NOMEM, "contract: out of memory");
    if ((st = sm_json_copy_string(obj, "retailer", c->retailer, sizeof(c->retailer), 1,
                                  "contract", err)) != SM_OK ||
        (st = sm_json_copy_string(obj, "currency", c->currency, sizeof(c->currency), 1,
                                  "contract", err)) != SM_OK ||
        (st = check_date(obj, "valid_from", &c->valid_from, err)) != SM_OK ||
        (st = check_date(obj, "valid_until", &c->valid_until, err)) != SM_OK ||
        (st = parse_works(json_object_get(obj, "works"), c, err)) != SM_OK ||
        (st = parse_offers(json_object_get(obj, "licenses"), c, err)) != SM_OK ||
        (st = parse_royalties(json_object_get(obj, "royalties"), c, err)) != SM_OK ||
        (st = sm_ks_contract_validate(c, err)) != SM_OK) {
        free(c);
        return st;
    }
    *out = c;
    return SM_OK;
}

sm_status sm_ks_contract_validate(const sm_ks_contract *c, sm_error *err)
{
    sm_status st = sm_ks_validate_id(c->retailer, "contract: retailer", err);
    if (st != SM_OK)
        return st;
    if (sm_ks_currency_minor_units(c->currency) < 0)
        return sm_error_set(err, SM_ERR_FORMAT,
                            "contract: \"currency\" must be an ISO 4217 code in use, such as "
                            "EUR or USD");
    if (c->valid_from < 0 || c->valid_until > MAX_DATE || c->valid_from >= c->valid_until)
        return sm_error_set(err, SM_ERR_FORMAT,
                            "contract: \"valid_from\" must be before \"valid_until\"");
    if (c->n_works == 0 || c->n_works > SM_KS_MAX_CONTRACT_WORKS)
        return sm_error_set(err, SM_ERR_FORMAT, "contract: 1 to %u works",
                            SM_KS_MAX_CONTRACT_WORKS);
    for (size_t i = 0; i < c->n_works; i++) {
        if ((st = sm_ks_validate_id(c->works[i], "contract: work id", err)) != SM_OK)
            return st;
        for (size_t j = 0; j < i; j++)
            if (strcmp(c->works[i], c->works[j]) == 0)
                return sm_error_set(err, SM_ERR_FORMAT, "contract: work %s is listed twice",
                                    c->works[i]);
    }
    if (c->n_offers == 0 || c->n_offers > SM_KS_MAX_OFFERS)
        return sm_error_set(err, SM_ERR_FORMAT, "contract: 1 to %u license offers",
                            SM_KS_MAX_OFFERS);
    for (size_t i = 0; i < c->n_offers; i++) {
        const sm_ks_offer *o = &c->offers[i];
        if (sm_ks_license_type_name(o->terms.type) == NULL)
            return sm_error_set(err, SM_ERR_FORMAT, "contract: licenses[%zu]: invalid type", i);
        if (o->terms.type == SM_KS_RENTAL &&
            (o->terms.duration < SM_KS_RENTAL_MIN || o->terms.duration > SM_KS_RENTAL_MAX))
            return sm_error_set(err, SM_ERR_FORMAT,
                                "contract: licenses[%zu]: rental duration out of range", i);
        if (o->terms.type == SM_KS_PURCHASE && o->terms.duration != 0)
            return sm_error_set(err, SM_ERR_FORMAT,
                                "contract: licenses[%zu]: a purchase has no duration", i);
        if (o->price < 0 || o->price > SM_KS_PRICE_MAX)
            return sm_error_set(err, SM_ERR_FORMAT,
                                "contract: licenses[%zu]: \"price\" must be 0 to %lld minor "
                                "units (an integer: 199 means 1.99 EUR)",
                                i, (long long)SM_KS_PRICE_MAX);
        for (size_t j = 0; j < i; j++)
            if (sm_ks_terms_equal(&o->terms, &c->offers[j].terms))
                return sm_error_set(err, SM_ERR_FORMAT,
                                    "contract: licenses[%zu] repeats the terms of licenses[%zu]",
                                    i, j);
    }
    if (c->n_royalties == 0 || c->n_royalties > SM_KS_MAX_HOLDERS)
        return sm_error_set(err, SM_ERR_FORMAT, "contract: 1 to %u rights holders",
                            SM_KS_MAX_HOLDERS);
    uint32_t total = 0;
    for (size_t i = 0; i < c->n_royalties; i++) {
        const sm_ks_royalty *r = &c->royalties[i];
        char what[48];
        snprintf(what, sizeof(what), "contract: royalties[%zu].holder", i);
        if (r->holder[0] == '\0')
            return sm_error_set(err, SM_ERR_FORMAT, "%s must not be empty", what);
        if ((st = sm_validate_text(r->holder, SM_KS_HOLDER_NAME_MAX, what, err)) != SM_OK)
            return st;
        if (r->share_bps < 1 || r->share_bps > SM_KS_BPS_TOTAL)
            return sm_error_set(err, SM_ERR_FORMAT,
                                "contract: royalties[%zu]: share must be 1 to 10000 bps", i);
        for (size_t j = 0; j < i; j++)
            if (strcmp(r->holder, c->royalties[j].holder) == 0)
                return sm_error_set(err, SM_ERR_FORMAT,
                                    "contract: rights holder \"%.64s\" is named twice; give one "
                                    "entry with the summed share",
                                    r->holder);
        total += r->share_bps; /* at most 32 * 10000: no overflow */
    }
    if (total != SM_KS_BPS_TOTAL)
        return sm_error_set(err, SM_ERR_FORMAT,
                            "contract: royalty shares add up to %u basis points; they must add "
                            "up to exactly 10000 (100 %%)",
                            (unsigned)total);
    return SM_OK;
}

const sm_ks_offer *sm_ks_contract_find_offer(const sm_ks_contract *c, const sm_ks_terms *terms)
{
    for (size_t i = 0; i < c->n_offers; i++)
        if (sm_ks_terms_equal(&c->offers[i].terms, terms))
            return &c->offers[i];
    return NULL;
}

int sm_ks_contract_active(const sm_ks_contract *c, int64_t now)
{
    return now >= c->valid_from && now < c->valid_until;
}

sm_status sm_ks_contract_apportion(const sm_ks_contract *c, int64_t amount, int64_t *parts,
                                   sm_error *err)
{
    uint32_t remainder[SM_KS_MAX_HOLDERS];
    if (amount < 0 || amount > SM_KS_PRICE_MAX * 1000000)
        return sm_error_set(err, SM_ERR_ARG, "apportion: amount out of range");
    if (c->n_royalties == 0 || c->n_royalties > SM_KS_MAX_HOLDERS)
        return sm_error_set(err, SM_ERR_ARG, "apportion: no rights holders");
    /* amount * bps would overflow past ~9.2e14 * 1e4; split amount into
     * whole multiples of 10000 and the rest to stay exact. */
    int64_t high = amount / SM_KS_BPS_TOTAL, low = amount % SM_KS_BPS_TOTAL;
    int64_t given = 0;
    for (size_t i = 0; i < c->n_royalties; i++) {
        int64_t bps = c->royalties[i].share_bps;
        parts[i] = high * bps + (low * bps) / SM_KS_BPS_TOTAL;
        remainder[i] = (uint32_t)((low * bps) % SM_KS_BPS_TOTAL);
        given += parts[i];
    }
    /* Largest remainder: fewer than n_royalties units are left over. */
    int64_t left = amount - given;
    while (left > 0) {
        size_t best = 0;
        for (size_t i = 1; i < c->n_royalties; i++)
            if (remainder[i] > remainder[best])
                best = i;
        parts[best]++;
        remainder[best] = 0;
        left--;
    }
    return SM_OK;
}

json_t *sm_ks_contract_to_json(const sm_ks_contract *c, int with_works)
{
    json_t *offers = json_array(), *royalties = json_array(), *works = json_array();
    json_t *o = json_pack("{s:s,s:s,s:I,s:I,s:o,s:o}", "retailer", c->retailer, "currency",
                          c->currency, "valid_from", (json_int_t)c->valid_from, "valid_until",
                          (json_int_t)c->valid_until, "licenses", offers, "royalties",
                          royalties);
    if (o == NULL) {
        json_decref(works);
        return NULL;
    }
    for (size_t i = 0; i < c->n_offers; i++) {
        json_t *t = sm_ks_terms_to_json(&c->offers[i].terms);
        if (t == NULL || json_object_set_new(t, "price", json_integer(c->offers[i].price)) != 0 ||
            json_array_append_new(offers, t) != 0)
            goto nomem;
    }
    for (size_t i = 0; i < c->n_royalties; i++)
        if (json_array_append_new(royalties,
                                  json_pack("{s:s,s:I}", "holder", c->royalties[i].holder,
                                            "share_bps",
                                            (json_int_t)c->royalties[i].share_bps)) != 0)
            goto nomem;
    if (with_works) {
        for (size_t i = 0; i < c->n_works; i++)
            if (json_array_append_new(works, json_string(c->works[i])) != 0)
                goto nomem;
        if (json_object_set(o, "works", works) != 0)
            goto nomem;
    }
    json_decref(works);
    return o;
nomem:
    json_decref(works);
    json_decref(o);
    return NULL;
}
