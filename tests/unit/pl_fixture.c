#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>
#include <jansson.h>

#include "pl_fixture.h"
#include "sm_container.h"
#include "sm_io.h"
#include "sm_steer.h"
#include "sm_test.h"

#define VOUCHER                                                                          \
    "eyJhbGciOiJFUzI1NiIsImtpZCI6ImtzLTIwMjYtMDEiLCJ0eXAiOiJzZWNtZWRpYS12b3VjaGVyK2p3dCJ9" \
    ".eyJ0eG4iOiJ0eC0wMDAxIiwid29yayI6IndvcmstNDIiLCJqa3QiOiJhYmMifQ"                     \
    ".MEUCIQDx7m4Vb2XyJ3n7e2wYk2yD1mR2yq0yG2o2E9cJ5iQ5bgIgQ0Fb"

static const char *header_value(const sm_pl_http_request *rq, const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < SM_PL_HTTP_MAX_HEADERS && rq->headers[i] != NULL; i++)
        if (strncasecmp(rq->headers[i], name, n) == 0 && rq->headers[i][n] == ':')
            return rq->headers[i] + n + 2;
    return NULL;
}

static sm_status answer(const sm_pl_http_request *rq, sm_pl_http_response *rs, long status,
                        const char *ctype, const void *body, size_t len, sm_error *err)
{
    rs->status = status;
    snprintf(rs->content_type, sizeof(rs->content_type), "%s", ctype);
    size_t max = rq->max_body;
    if (rq->expect_status != 0 && status != rq->expect_status) {
        max = SM_PL_HTTP_ERROR_BODY_MAX; /* like the curl transport: the rest is dropped */
        if (len > max)
            len = max;
    } else if (rq->body_buf != NULL) {
        if (len > rq->body_cap)
            return sm_error_set(err, SM_ERR_TOO_LARGE, "Network failure: too large");
        memcpy(rq->body_buf, body, len);
        rs->len = len;
        return SM_OK;
    }
    if (len > max)
        return sm_error_set(err, SM_ERR_TOO_LARGE, "Network failure: too large");
    rs->body = malloc(len + 1);
    ck_assert_ptr_nonnull(rs->body);
    memcpy(rs->body, body, len);
    rs->body[len] = '\0';
    rs->len = len;
    return SM_OK;
}

static sm_status problem(const sm_pl_http_request *rq, sm_pl_http_response *rs, long status,
                         const char *slug, const char *detail, sm_error *err)
{
    json_t *o = json_pack("{s:s,s:s,s:i}", "type", "", "title", "Problem", "status", (int)status);
    char type[200];
    snprintf(type, sizeof(type), "https://secmedia.example/problems/%s", slug);
    json_object_set_new(o, "type", json_string(type));
    if (detail != NULL)
        json_object_set_new(o, "detail", json_string(detail));
    char *text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    sm_status st = answer(rq, rs, status, "application/problem+json", text, strlen(text), err);
    free(text);
    return st;
}

static sm_status key_server(plf_world *w, const sm_pl_http_request *rq, sm_pl_http_response *rs,
                            sm_error *err)
{
    w->ks_requests++;
    w->ks_last_error[0] = '\0';
    if (w->ks_down)
        return sm_error_set(err, SM_ERR_UNAVAILABLE,
                            "Network failure: cannot reach %s: Connection refused", rq->url);
    const char *ct = header_value(rq, "Content-Type");
    const char *proof = header_value(rq, "DPoP");
    if (strcmp(rq->method, "POST") != 0 || ct == NULL || strcmp(ct, "application/json") != 0)
        snprintf(w->ks_last_error, sizeof(w->ks_last_error), "not a JSON POST");
    json_error_t jerr;
    json_t *body = json_loadb(rq->body, rq->body_len, JSON_REJECT_DUPLICATES, &jerr);
    const char *voucher = json_string_value(json_object_get(body, "voucher"));
    json_t *only = json_object_get(body, "delivery_only");
    int renewal = json_is_true(only);
    if (voucher == NULL || strcmp(voucher, VOUCHER) != 0 ||
        json_object_size(body) != (only != NULL ? 2u : 1u) || (only != NULL && !renewal))
        snprintf(w->ks_last_error, sizeof(w->ks_last_error), "bad body");
    json_decref(body);
    sm_dpop_expect e;
    sm_dpop_expect_init(&e, "POST", PLF_LICENSE_URL);
    e.jkt = w->jkt;
    sm_dpop_result res;
    sm_error perr = {SM_OK, ""};
    if (proof == NULL || sm_dpop_verify(proof, strlen(proof), &e, &res, &perr) != SM_OK)
        snprintf(w->ks_last_error, sizeof(w->ks_last_error), "bad proof: %s", perr.message);
    if (w->ks_last_error[0] != '\0')
        return problem(rq, rs, 401, "proof-invalid", w->ks_last_error, err);
    if (w->ks_raw_body != NULL)
        return answer(rq, rs, w->ks_status, w->ks_content_type, w->ks_raw_body,
                      strlen(w->ks_raw_body), err);
    if (w->ks_status != 200)
        return problem(rq, rs, w->ks_status, w->ks_slug, w->ks_detail, err);
    if (renewal && w->ks_licenses == 0)
        return problem(rq, rs, 409, "no-license", "request a license first", err);
    char *jwe = NULL;
    if (renewal)
        w->ks_renewals++;
    else
        w->ks_licenses++;
    if (!renewal)
        ck_assert_int_eq(sm_jwe_wrap_key(w->device_key, w->media_key, w->jkt, &jwe, NULL),
                         SM_OK);
    const char *txn = renewal && w->ks_renewal_txn != NULL ? w->ks_renewal_txn : "txn-0001";
    json_t *o = json_pack("{s:s,s:s,s:i,s:s,s:I,s:{s:s},s:i,s:i}", "txn", txn, "work_id",
                          PLF_WORK_ID, "key_version", 1, "delivery_token",
                          renewal ? PLF_RENEWED_TOKEN : PLF_TOKEN, "delivery_expires_at",
                          (json_int_t)1900000000, "license", "type",
                          w->ks_rental ? "rental" : "purchase", "activation",
                          (int)w->ks_licenses, "activation_limit", 5);
    if (jwe != NULL)
        json_object_set_new(o, "key_jwe", json_string(jwe));
    if (w->ks_rental) {
        json_object_set_new(json_object_get(o, "license"), "duration", json_integer(3600));
        json_object_set_new(o, "rental_ends_at", json_integer(w->ks_rental_ends));
    }
    char *text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    free(jwe);
    sm_status st = answer(rq, rs, 200, "application/json", text, strlen(text), err);
    free(text);
    return st;
}

static sm_status media_store(plf_world *w, plf_mirror *m, const sm_pl_http_request *rq,
                             sm_pl_http_response *rs, sm_error *err)
{
    m->requests++;
    if (m->fail_after > 0 && m->requests > (unsigned)m->fail_after)
        m->mode = PLF_MIRROR_DOWN;
    switch (m->mode) {
    case PLF_MIRROR_DOWN:
        return sm_error_set(err, SM_ERR_UNAVAILABLE,
                            "Network failure: cannot reach %s: Connection refused", m->url);
    case PLF_MIRROR_CERT:
        return sm_error_set(err, SM_ERR_AUTH,
                            "Certificate failure: the certificate of %s could not be verified",
                            m->url);
    case PLF_MIRROR_HANG:
        return sm_error_set(err, SM_ERR_STATE, "Interrupted: the request to %s was stopped",
                            m->url);
    case PLF_MIRROR_500:
        return problem(rq, rs, 500, "internal-error", "boom", err);
    case PLF_MIRROR_404:
        return problem(rq, rs, 404, "work-not-found", "no such work", err);
    default:
        break;
    }
    (void)w;
    const char *auth = header_value(rq, "Authorization");
    int first_token = auth != NULL && strcmp(auth, "Bearer " PLF_TOKEN) == 0;
    if (!first_token && (auth == NULL || strcmp(auth, "Bearer " PLF_RENEWED_TOKEN) != 0))
        return problem(rq, rs, 401, "token-required", NULL, err);
    if (first_token && m->token_expires_after > 0 &&
        m->requests > (unsigned)m->token_expires_after)
        return problem(rq, rs, 401, "token-expired", "the delivery token has expired", err);
    if (m->mode == PLF_MIRROR_IGNORE_RANGE)
        return answer(rq, rs, 200, "application/vnd.secmedia.container", m->data, m->len, err);
    const char *range = header_value(rq, "Range");
    ck_assert_ptr_nonnull(range);
    ck_assert(strncmp(range, "bytes=", 6) == 0);
    char *end = NULL;
    unsigned long long a = strtoull(range + 6, &end, 10);
    ck_assert(*end == '-');
    unsigned long long b = strtoull(end + 1, &end, 10);
    ck_assert(*end == '\0');
    ck_assert_uint_le(a, b);
    m->last_first = a;
    m->last_last = b;
    if (a >= m->len) {
        snprintf(rs->content_range, sizeof(rs->content_range), "bytes */%zu", m->len);
        return problem(rq, rs, 416, "range-not-satisfiable", NULL, err);
    }
    if (b >= m->len)
        b = m->len - 1;
    snprintf(rs->content_range, sizeof(rs->content_range), "bytes %llu-%llu/%zu", a, b, m->len);
    return answer(rq, rs, 206, "application/vnd.secmedia.container", m->data + a,
                  (size_t)(b - a + 1), err);
}

static sm_status fake_perform(void *ctx, const sm_pl_http_request *rq, sm_pl_http_response *rs,
                              sm_error *err)
{
    plf_world *w = ctx;
    memset(rs, 0, sizeof(*rs));
    if (strcmp(rq->url, PLF_LICENSE_URL) == 0)
        return key_server(w, rq, rs, err);
    for (size_t i = 0; i < w->mirror_count; i++)
        if (strcmp(rq->url, w->mirrors[i].url) == 0)
            return media_store(w, &w->mirrors[i], rq, rs, err);
    return sm_error_set(err, SM_ERR_UNAVAILABLE, "Network failure: cannot reach %s: no such host",
                        rq->url);
}

void plf_mirror_set_data(plf_world *w, size_t m, const uint8_t *data, size_t len)
{
    free(w->mirrors[m].data);
    w->mirrors[m].data = malloc(len > 0 ? len : 1);
    ck_assert_ptr_nonnull(w->mirrors[m].data);
    memcpy(w->mirrors[m].data, data, len);
    w->mirrors[m].len = len;
}

plf_world *plf_new(size_t plain_len, const char *media_type, size_t mirror_count)
{
    sm_secmem_init();
    plf_world *w = calloc(1, sizeof(*w));
    ck_assert_ptr_nonnull(w);
    snprintf(w->dir, sizeof(w->dir), "%s", smt_tmpdir());
    snprintf(w->device_key_path, sizeof(w->device_key_path), "%s/device.jwk", w->dir);
    snprintf(w->offline_dir, sizeof(w->offline_dir), "%s/offline", w->dir);
    snprintf(w->media_type, sizeof(w->media_type), "%s", media_type);
    ck_assert_int_eq(sm_jwk_generate(&w->device_key, NULL), SM_OK);
    ck_assert_int_eq(sm_jwk_thumbprint(w->device_key, w->jkt, NULL), SM_OK);
    ck_assert_int_eq(sm_jwk_save_file(w->device_key, w->device_key_path, 1, NULL), SM_OK);
    w->media_key = sm_secret_random(SM_MEDIA_KEY_SIZE);
    ck_assert_ptr_nonnull(w->media_key);
    w->plain = malloc(plain_len > 0 ? plain_len : 1);
    ck_assert_ptr_nonnull(w->plain);
    smt_fill_pattern(w->plain, plain_len, 42);
    w->plain_len = plain_len;

    sm_container_meta meta = {.key_version = 1, .plaintext_length = plain_len};
    snprintf(meta.work_id, sizeof(meta.work_id), "%s", PLF_WORK_ID);
    snprintf(meta.media_type, sizeof(meta.media_type), "%s", media_type);
    snprintf(meta.original_name, sizeof(meta.original_name), "song.bin");
    sm_mem_io out = {0};
    sm_container_writer *cw = NULL;
    sm_error err = {SM_OK, ""};
    ck_assert_int_eq(sm_container_writer_new(&meta, w->media_key, sm_mem_write, &out, &cw, &err),
                     SM_OK);
    ck_assert_int_eq(sm_container_writer_write(cw, w->plain, plain_len, &err), SM_OK);
    ck_assert_int_eq(sm_container_writer_finish(cw, &err), SM_OK);
    sm_container_writer_free(cw);
    w->container = out.data;
    w->container_len = out.len;

    w->ks_status = 200;
    w->mirror_count = mirror_count;
    for (size_t i = 0; i < mirror_count; i++) {
        snprintf(w->mirrors[i].url, sizeof(w->mirrors[i].url), "https://m%zu.test/works/%s", i + 1,
                 PLF_WORK_ID);
        plf_mirror_set_data(w, i, w->container, w->container_len);
    }
    w->transport.perform = fake_perform;
    w->transport.ctx = w;
    return w;
}

void plf_free(plf_world *w)
{
    if (w == NULL)
        return;
    for (size_t i = 0; i < w->mirror_count; i++)
        free(w->mirrors[i].data);
    sm_jwk_free(w->device_key);
    sm_secret_free(w->media_key);
    free(w->plain);
    free(w->container);
    smt_rm_rf(w->dir);
    free(w);
}

uint8_t *plf_steer(const plf_world *w, size_t *len)
{
    char *urls[PLF_MAX_MIRRORS];
    for (size_t i = 0; i < w->mirror_count; i++)
        urls[i] = (char *)w->mirrors[i].url;
    sm_steer s = {
        .version = 1,
        .work_id = (char *)PLF_WORK_ID,
        .title = (char *)"A Song",
        .artist = (char *)"The Examples",
        .media_type = (char *)w->media_type,
        .license_url = (char *)PLF_LICENSE_URL,
        .media_urls = urls,
        .media_url_count = w->mirror_count,
        .voucher = (char *)VOUCHER,
    };
    char *out = NULL;
    sm_error err = {SM_OK, ""};
    ck_assert_msg(sm_steer_serialize(&s, NULL, &out, len, &err) == SM_OK, "%s", err.message);
    return (uint8_t *)out;
}

sm_steer *plf_steer_parsed(const plf_world *w)
{
    size_t len = 0;
    uint8_t *b = plf_steer(w, &len);
    sm_steer *s = NULL;
    ck_assert_int_eq(sm_steer_parse(b, len, NULL, &s, NULL), SM_OK);
    free(b);
    return s;
}

sm_pl_options plf_options(plf_world *w)
{
    sm_pl_options o = {
        .device_key_path = w->device_key_path,
        .offline_dir = w->offline_dir,
        .transport = &w->transport,
    };
    return o;
}

sm_status plf_open(plf_world *w, const sm_pl_options *o, sm_pl_session **s, sm_pl_refusal *refusal,
                   sm_error *err)
{
    size_t len = 0;
    uint8_t *b = plf_steer(w, &len);
    sm_status st = sm_pl_session_open(o, b, len, s, refusal, err);
    free(b);
    return st;
}
