#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "sm_json.h"
#include "sm_pl_license.h"
#include "sm_secmem.h"
#include "sm_validate.h"

static const struct {
    const char *slug;
    sm_pl_refusal refusal;
    const char *sentence;
} refusals[] = {
    {"not-paid", SM_PL_REFUSAL_NOT_PAID, "License refused: the purchase has not been paid yet."},
    {"rental-expired", SM_PL_REFUSAL_RENTAL_EXPIRED,
     "License refused: the rental period has ended."},
    {"transaction-revoked", SM_PL_REFUSAL_TXN_REVOKED,
     "License refused: this purchase was revoked or refunded."},
    {"device-revoked", SM_PL_REFUSAL_DEVICE_REVOKED, "License refused: this device was revoked."},
    {"activation-limit", SM_PL_REFUSAL_ACTIVATION_LIMIT,
     "License refused: the activation limit for this purchase has been reached."},
    {"wrong-device", SM_PL_REFUSAL_WRONG_DEVICE,
     "License refused: this steering file was bought for another device."},
    {"voucher-expired", SM_PL_REFUSAL_VOUCHER_EXPIRED,
     "License refused: the steering file's voucher has expired."},
    {"work-withdrawn", SM_PL_REFUSAL_WORK_WITHDRAWN,
     "License refused: the work has been withdrawn."},
    {"no-license", SM_PL_REFUSAL_NO_LICENSE,
     "License refused: the key server has issued no license for this purchase yet."},
    {"service-unavailable", SM_PL_REFUSAL_UNAVAILABLE,
     "The key server is unavailable right now; try again later."},
};

sm_pl_refusal sm_pl_refusal_from_slug(const char *slug)
{
    for (size_t i = 0; i < sizeof(refusals) / sizeof(refusals[0]); i++)
        if (slug != NULL && strcmp(slug, refusals[i].slug) == 0)
            return refusals[i].refusal;
    return SM_PL_REFUSAL_OTHER;
}

static const char *refusal_sentence(const char *slug)
{
    for (size_t i = 0; i < sizeof(refusals) / sizeof(refusals[0]); i++)
        if (slug != NULL && strcmp(slug, refusals[i].slug) == 0)
            return refusals[i].sentence;
    return NULL;
}

sm_status sm_pl_license_build_request(const char *voucher, const sm_jwk *device_key,
                                      const char *license_url, int64_t now, int delivery_only,
                                      char **body_out, char **proof_out, sm_error *err)
{
    *body_out = NULL;
    *proof_out = NULL;
    json_t *o = delivery_only ? json_pack("{s:s,s:b}", "voucher", voucher, "delivery_only", 1)
                              : json_pack("{s:s}", "voucher", voucher);
    char *body = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (body == NULL)
        return sm_error_set(err, SM_ERR_NOMEM, "out of memory");
    sm_status st = sm_dpop_create(device_key, "POST", license_url, now, NULL, NULL, proof_out, err);
    if (st != SM_OK) {
        free(body);
        return st;
    }
    *body_out = body;
    return SM_OK;
}

/* Copies the server's detail without control characters (C0, DEL and C1:
 * U+0085 or U+009B would still steer a terminal or break a line), at most
 * SM_PL_DETAIL_MAX bytes, never cutting a UTF-8 sequence. */
static void clean_detail(const char *in, char *out, size_t size)
{
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)in; *p != '\0' && o + 1 < size; p++) {
        if (*p < 0x20 || *p == 0x7f)
            continue;
        if (*p == 0xC2 && p[1] >= 0x80 && p[1] <= 0x9F) {
            p++;
            continue;
        }
        out[o++] = (char)*p;
    }
    /* Back off a cut multi-byte sequence. */
    if (o + 1 >= size) {
        size_t k = o;
        while (k > 0 && ((unsigned char)out[k - 1] & 0xC0) == 0x80)
            k--;
        if (k > 0 && ((unsigned char)out[k - 1] & 0x80) != 0)
            o = k - 1;
    }
    out[o] = '\0';
}

static int slug_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 64)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
            return 0;
    return 1;
}

static sm_status refusal_error(long status, const char *content_type, const uint8_t *body,
                               size_t len, sm_pl_refusal *refusal, sm_error *err)
{
    char slug[65] = "";
    char detail[SM_PL_DETAIL_MAX + 1] = "";
    if (content_type != NULL && strcmp(content_type, "application/problem+json") == 0 &&
        body != NULL && len <= SM_PL_LICENSE_MAX_ANSWER) {
        json_error_t jerr;
        json_t *o = json_loadb((const char *)body, len, JSON_REJECT_DUPLICATES, &jerr);
        if (json_is_object(o)) {
            const char *type = json_string_value(json_object_get(o, "type"));
            size_t base = strlen(SM_PL_PROBLEM_BASE);
            if (type != NULL && strncmp(type, SM_PL_PROBLEM_BASE, base) == 0 &&
                slug_ok(type + base))
                snprintf(slug, sizeof(slug), "%s", type + base);
            const char *d = json_string_value(json_object_get(o, "detail"));
            if (d != NULL)
                clean_detail(d, detail, sizeof(detail));
        }
        json_decref(o);
    }
    sm_pl_refusal r = slug[0] != '\0' ? sm_pl_refusal_from_slug(slug) : SM_PL_REFUSAL_OTHER;
    /* PLAYER.md §1.4: any 503 is "unavailable, try again later", whatever
     * problem type its body names. */
    if (status == 503)
        r = SM_PL_REFUSAL_UNAVAILABLE;
    if (refusal != NULL)
        *refusal = r;
    const char *sentence =
        refusal_sentence(r == SM_PL_REFUSAL_UNAVAILABLE ? "service-unavailable" : slug);
    char head[160];
    if (sentence != NULL)
        snprintf(head, sizeof(head), "%s", sentence);
    else if (r == SM_PL_REFUSAL_UNAVAILABLE)
        snprintf(head, sizeof(head), "%s", refusal_sentence("service-unavailable"));
    else if (slug[0] != '\0')
        snprintf(head, sizeof(head), "License refused by the key server (HTTP %ld, %s).", status,
                 slug);
    else
        snprintf(head, sizeof(head), "License refused by the key server (HTTP %ld).", status);
    sm_status st = (status >= 500 && status <= 599) ? SM_ERR_UNAVAILABLE : SM_ERR_KEY;
    if (detail[0] != '\0')
        return sm_error_set(err, st, "%s Server says: %s", head, detail);
    return sm_error_set(err, st, "%s", head);
}

static char *dup_field(json_t *o, const char *name)
{
    const char *s = json_string_value(json_object_get(o, name));
    return s != NULL ? strdup(s) : NULL;
}

/* A compact JOSE token: parts of base64url separated by dots. */
static int token_syntax_ok(const char *s, int parts)
{
    size_t n = strlen(s);
    if (n == 0 || n > SM_JOSE_MAX_TOKEN)
        return 0;
    int dots = 0;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (ch == '.')
            dots++;
        else if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
                   (ch >= '0' && ch <= '9') || ch == '-' || ch == '_'))
            return 0;
    }
    return dots == parts - 1;
}

/* A license answer, or with renewal a delivery-token renewal's (no key). */
static sm_status parse_license(const uint8_t *body, size_t len, const char *expected_work_id,
                               int renewal, sm_pl_license **out, sm_error *err)
{
    const char *what = renewal ? "The key server sent an invalid delivery-token renewal"
                               : "The key server sent an invalid license";
    json_t *o = NULL;
    sm_status st = sm_json_parse_object(body, len, SM_PL_LICENSE_MAX_ANSWER, what, &o, err);
    if (st != SM_OK)
        return st;
    uint64_t key_version = 0, dexp = 0, activation = 0, limit = 0, rental_ends = 0;
    const char *type = NULL;
    json_t *terms = json_object_get(o, "license");
    if ((st = sm_json_get_uint64(o, "key_version", UINT32_MAX, 1, &key_version, what, err)) ||
        (st = sm_json_get_uint64(o, "delivery_expires_at", INT64_MAX, 1, &dexp, what, err)) ||
        (st = sm_json_get_uint64(o, "activation", UINT32_MAX, 1, &activation, what, err)) ||
        (st = sm_json_get_uint64(o, "activation_limit", UINT32_MAX, 1, &limit, what, err)) ||
        (st = sm_json_get_uint64(o, "rental_ends_at", INT64_MAX, 0, &rental_ends, what, err))) {
        json_decref(o);
        return st;
    }
    const char *txn = json_string_value(json_object_get(o, "txn"));
    const char *work = json_string_value(json_object_get(o, "work_id"));
    const char *jwe = json_string_value(json_object_get(o, "key_jwe"));
    const char *tok = json_string_value(json_object_get(o, "delivery_token"));
    if (txn == NULL || sm_validate_work_id(txn, "txn", NULL) != SM_OK)
        st = sm_error_set(err, SM_ERR_FORMAT, "%s: \"txn\" is missing or not an id", what);
    else if (work == NULL || sm_validate_work_id(work, "work_id", NULL) != SM_OK)
        st = sm_error_set(err, SM_ERR_FORMAT, "%s: \"work_id\" is missing or not an id", what);
    else if (expected_work_id != NULL && strcmp(work, expected_work_id) != 0)
        st = sm_error_set(err, SM_ERR_FORMAT,
                          "%s: it is for work \"%s\", the steering file for \"%s\"", what, work,
                          expected_work_id);
    else if (key_version == 0)
        st = sm_error_set(err, SM_ERR_FORMAT, "%s: \"key_version\" must be at least 1", what);
    else if (!renewal && (jwe == NULL || !token_syntax_ok(jwe, 5)))
        st = sm_error_set(err, SM_ERR_FORMAT, "%s: \"key_jwe\" is missing or not a compact JWE",
                          what);
    else if (renewal && jwe != NULL)
        st = sm_error_set(err, SM_ERR_FORMAT, "%s: it carries a \"key_jwe\"", what);
    else if (tok == NULL || !token_syntax_ok(tok, 3))
        st = sm_error_set(err, SM_ERR_FORMAT,
                          "%s: \"delivery_token\" is missing or not a compact JWS", what);
    else if (!json_is_object(terms) ||
             (type = json_string_value(json_object_get(terms, "type"))) == NULL ||
             (strcmp(type, "purchase") != 0 && strcmp(type, "rental") != 0))
        st = sm_error_set(err, SM_ERR_FORMAT,
                          "%s: \"license\" must be {\"type\":\"purchase\"} or a rental", what);
    if (st != SM_OK) {
        json_decref(o);
        return st;
    }
    sm_pl_license *lic = calloc(1, sizeof(*lic));
    if (lic == NULL) {
        json_decref(o);
        return sm_error_set(err, SM_ERR_NOMEM, "out of memory");
    }
    lic->txn = dup_field(o, "txn");
    lic->work_id = dup_field(o, "work_id");
    lic->key_jwe = renewal ? NULL : dup_field(o, "key_jwe");
    lic->delivery_token = dup_field(o, "delivery_token");
    lic->key_version = (uint32_t)key_version;
    lic->delivery_expires_at = (int64_t)dexp;
    lic->activation = (uint32_t)activation;
    lic->activation_limit = (uint32_t)limit;
    if (strcmp(type, "rental") == 0) {
        json_t *d = json_object_get(terms, "duration");
        lic->rental = 1;
        lic->rental_duration = json_is_integer(d) ? (int64_t)json_integer_value(d) : 0;
        lic->rental_ends_at = (int64_t)rental_ends;
        if (lic->rental_duration <= 0 || rental_ends == 0)
            st = sm_error_set(err, SM_ERR_FORMAT,
                              "%s: a rental needs a positive \"duration\" and \"rental_ends_at\"",
                              what);
    }
    json_decref(o);
    if (st == SM_OK && (lic->txn == NULL || lic->work_id == NULL ||
                        (!renewal && lic->key_jwe == NULL) || lic->delivery_token == NULL))
        st = sm_error_set(err, SM_ERR_NOMEM, "out of memory");
    if (st != SM_OK) {
        sm_pl_license_free(lic);
        return st;
    }
    *out = lic;
    return SM_OK;
}

static sm_status parse_answer(long status, const char *content_type, const uint8_t *body,
                              size_t len, const char *expected_work_id, int renewal,
                              sm_pl_license **out, sm_pl_refusal *refusal, sm_error *err)
{
    *out = NULL;
    if (refusal != NULL)
        *refusal = SM_PL_REFUSAL_NONE;
    if (status != 200)
        return refusal_error(status, content_type, body, len, refusal, err);
    if (content_type == NULL || strcmp(content_type, "application/json") != 0)
        return sm_error_set(err, SM_ERR_FORMAT,
                            "The key server sent an invalid license: the answer is not "
                            "application/json");
    return parse_license(body, len, expected_work_id, renewal, out, err);
}

sm_status sm_pl_license_parse_answer(long status, const char *content_type, const uint8_t *body,
                                     size_t len, const char *expected_work_id,
                                     sm_pl_license **out, sm_pl_refusal *refusal, sm_error *err)
{
    return parse_answer(status, content_type, body, len, expected_work_id, 0, out, refusal, err);
}

sm_status sm_pl_license_parse_renewal(long status, const char *content_type,
                                      const uint8_t *body, size_t len,
                                      const char *expected_work_id, sm_pl_license **out,
                                      sm_pl_refusal *refusal, sm_error *err)
{
    return parse_answer(status, content_type, body, len, expected_work_id, 1, out, refusal, err);
}

static sm_status license_call(const sm_pl_transport *tr, const sm_steer *steer,
                              const sm_jwk *device_key, int renewal, sm_pl_license **out,
                              sm_pl_refusal *refusal, sm_error *err)
{
    *out = NULL;
    if (refusal != NULL)
        *refusal = SM_PL_REFUSAL_NONE;
    char *body = NULL, *proof = NULL;
    sm_status st = sm_pl_license_build_request(steer->voucher, device_key, steer->license_url, 0,
                                               renewal, &body, &proof, err);
    if (st != SM_OK)
        return st;
    size_t hlen = strlen(proof) + sizeof("DPoP: ");
    char *dpop = malloc(hlen);
    if (dpop == NULL) {
        free(body);
        free(proof);
        return sm_error_set(err, SM_ERR_NOMEM, "out of memory");
    }
    snprintf(dpop, hlen, "DPoP: %s", proof);
    sm_pl_http_request rq = {
        .method = "POST",
        .url = steer->license_url,
        .headers = {"Content-Type: application/json",
                    "Accept: application/json, application/problem+json", dpop, NULL},
        .body = body,
        .body_len = strlen(body),
        .max_body = SM_PL_LICENSE_MAX_ANSWER,
    };
    sm_pl_http_response rs;
    st = tr->perform(tr->ctx, &rq, &rs, err);
    if (st == SM_OK)
        st = parse_answer(rs.status, rs.content_type, rs.body, rs.len, steer->work_id, renewal,
                          out, refusal, err);
    if (rs.body != NULL)
        sm_wipe(rs.body, rs.len); /* holds the delivery token */
    sm_pl_http_response_clear(&rs);
    sm_wipe(dpop, strlen(dpop));
    free(dpop);
    free(proof);
    free(body);
    return st;
}

sm_status sm_pl_license_request(const sm_pl_transport *tr, const sm_steer *steer,
                                const sm_jwk *device_key, sm_pl_license **out,
                                sm_pl_refusal *refusal, sm_error *err)
{
    return license_call(tr, steer, device_key, 0, out, refusal, err);
}

sm_status sm_pl_license_renew(const sm_pl_transport *tr, const sm_steer *steer,
                              const sm_jwk *device_key, sm_pl_license **out,
                              sm_pl_refusal *refusal, sm_error *err)
{
    return license_call(tr, steer, device_key, 1, out, refusal, err);
}

static void free_wiped(char *s)
{
    if (s != NULL) {
        sm_wipe(s, strlen(s));
        free(s);
    }
}

void sm_pl_license_free(sm_pl_license *lic)
{
    if (lic == NULL)
        return;
    free(lic->txn);
    free(lic->work_id);
    free_wiped(lic->key_jwe);
    free_wiped(lic->delivery_token);
    free(lic);
}
