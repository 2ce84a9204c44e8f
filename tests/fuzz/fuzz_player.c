/* Fuzz target for the player core's parsers (docs/PLAYER.md). The first
 * byte picks one; the rest is its input:
 *   0  a 200 license answer (sm_pl_license_parse_answer): an accepted
 *      license satisfies PLAYER.md §1.5, answers the same when written back
 *      as the key server would, and its offline license.json (what
 *      sm_pl_offline_commit writes) reads back to the same entry;
 *   1  a refusal (any other status; the next two bytes pick the status
 *      and the content type): always an error with a refusal reason, the
 *      status class PLAYER.md §1.4 gives, and a message of printable UTF-8
 *      quoting at most 300 bytes of the server's detail;
 *   2  a Content-Range value (sm_pl_parse_content_range): accepted values
 *      satisfy A <= B < SIZE and are exactly their canonical form;
 *   3  an offline license.json (sm_pl_offline_parse_license): accepted
 *      files hold a known license type and media type, and write back to
 *      text that reads back to the same entry; the same bytes as a kept
 *      license (sm_pl_streaming_parse) are never accepted by both;
 *   4  media store answers to the ranged fetcher (sm_pl_fetch_*) through a
 *      memory transport: reads stay inside the container and the buffer
 *      asked for, and every failure has a message.
 * Every failure must carry a message. */
#include "config.h"

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "sm_pl_fetch.h"
#include "sm_pl_license.h"
#include "sm_pl_offline.h"
#include "sm_validate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_WORK "work-42"

static void require(int cond, const char *what)
{
    if (!cond) {
        fprintf(stderr, "fuzz_player: invariant violated: %s\n", what);
        abort();
    }
}

static void require_message(sm_status st, const sm_error *err)
{
    if (st != SM_OK)
        require(err->status == st && err->message[0] != '\0', "failure without a message");
}

static int same_str(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

/* Well-formed UTF-8 without C0 or C1 controls or DEL. */
static int printable_utf8(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        if (*p < 0x20 || *p == 0x7f)
            return 0;
        if (*p < 0x80) {
            p++;
            continue;
        }
        int n = (*p & 0xE0) == 0xC0 ? 1 : (*p & 0xF0) == 0xE0 ? 2 : (*p & 0xF8) == 0xF0 ? 3 : -1;
        if (n < 0 || *p == 0xC0 || *p == 0xC1 || *p > 0xF4)
            return 0;
        if (*p == 0xC2 && p[1] >= 0x80 && p[1] <= 0x9F)
            return 0; /* C1 control */
        for (int i = 1; i <= n; i++)
            if ((p[i] & 0xC0) != 0x80)
                return 0;
        p += n + 1;
    }
    return 1;
}

static int jose_parts(const char *s)
{
    int parts = 1;
    for (; *s; s++)
        parts += *s == '.';
    return parts;
}

/* ---- 0: license answers ----------------------------------------------------- */

static void check_offline_round_trip(const sm_pl_license *lic)
{
    char *text = sm_pl_offline_license_text(lic, "audio/ogg", 123456, 1700000000);
    require(text != NULL, "license.json text");
    sm_pl_offline_entry e;
    memset(&e, 0, sizeof(e));
    sm_error err = {SM_OK, ""};
    sm_status st = sm_pl_offline_parse_license((const uint8_t *)text, strlen(text), lic->work_id,
                                               "fuzz", &e, &err);
    if (st != SM_OK)
        fprintf(stderr, "fuzz_player: %s\n", err.message);
    require(st == SM_OK, "the license.json written for a license does not read back");
    require(same_str(e.work_id, lic->work_id) && same_str(e.txn, lic->txn) &&
                same_str(e.key_jwe, lic->key_jwe) && e.key_version == lic->key_version &&
                e.rental == lic->rental && e.rental_ends_at == lic->rental_ends_at &&
                e.container_size == 123456 && e.stored_at == 1700000000 &&
                same_str(e.media_type, "audio/ogg"),
            "license.json reads back to other data");
    free(e.work_id);
    free(e.txn);
    free(e.key_jwe);
    free(e.media_type);
    free(text);
}


/* The renewal parser (PROTOCOL.md §2.6) on the same bytes: a license has
 * a key_jwe and a renewal must not, so never both accept. */
static void check_renewal(const uint8_t *body, size_t blen, const char *expected, int license_ok)
{
    sm_pl_license *r = (sm_pl_license *)&r; /* must be overwritten */
    sm_error err = {SM_OK, ""};
    sm_status st =
        sm_pl_license_parse_renewal(200, "application/json", body, blen, expected, &r, NULL, &err);
    if (st != SM_OK) {
        require_message(st, &err);
        require(r == NULL, "renewal output set on failure");
        require(strncmp(err.message, "The key server sent an invalid delivery-token renewal",
                        53) == 0,
                "bad renewal message wording");
        return;
    }
    require(!license_ok, "the same answer accepted as a license and as a renewal");
    require(r->key_jwe == NULL, "a renewal with a key");
    require(r->delivery_token != NULL && jose_parts(r->delivery_token) == 3,
            "renewal delivery_token is a compact JWS");
    require(expected == NULL || strcmp(r->work_id, expected) == 0, "renewal work_id");
    sm_pl_license_free(r);
}

static void fuzz_license(const uint8_t *in, size_t len)
{
    if (len == 0)
        return;
    const char *expected = (in[0] & 1) ? FUZZ_WORK : NULL;
    const uint8_t *body = in + 1;
    size_t blen = len - 1;
    sm_pl_license *lic = (sm_pl_license *)&lic; /* must be overwritten */
    sm_pl_refusal refusal = SM_PL_REFUSAL_OTHER;
    sm_error err = {SM_OK, ""};
    sm_status st = sm_pl_license_parse_answer(200, "application/json", body, blen, expected, &lic,
                                              &refusal, &err);
    require(refusal == SM_PL_REFUSAL_NONE, "a 200 answer is no refusal");
    check_renewal(body, blen, expected, st == SM_OK);
    if (st != SM_OK) {
        require_message(st, &err);
        require(lic == NULL, "output set on failure");
        require(st == SM_ERR_FORMAT || st == SM_ERR_TOO_LARGE || st == SM_ERR_NOMEM,
                "a bad 200 answer is a format error");
        require(strncmp(err.message, "The key server sent an invalid license", 38) == 0,
                "bad license message wording");
        return;
    }
    require(lic != NULL, "no output on success");
    /* PLAYER.md §1.5 */
    require(lic->txn != NULL && sm_validate_work_id(lic->txn, "txn", NULL) == SM_OK, "txn");
    require(lic->work_id != NULL && sm_validate_work_id(lic->work_id, "w", NULL) == SM_OK,
            "work_id");
    require(expected == NULL || strcmp(lic->work_id, expected) == 0, "work_id not the expected");
    require(lic->key_version >= 1, "key_version");
    require(lic->key_jwe != NULL && jose_parts(lic->key_jwe) == 5, "key_jwe is a compact JWE");
    require(lic->delivery_token != NULL && jose_parts(lic->delivery_token) == 3,
            "delivery_token is a compact JWS");
    require(lic->delivery_expires_at >= 0, "delivery_expires_at");
    if (lic->rental)
        require(lic->rental_duration > 0 && lic->rental_ends_at > 0, "rental terms");
    else
        require(lic->rental_duration == 0 && lic->rental_ends_at == 0, "purchase terms");

    /* Written back as the key server sends it, it answers the same. */
    json_t *terms = lic->rental ? json_pack("{s:s,s:I}", "type", "rental", "duration",
                                            (json_int_t)lic->rental_duration)
                                : json_pack("{s:s}", "type", "purchase");
    json_t *o = json_pack("{s:s,s:s,s:I,s:s,s:s,s:I,s:o,s:I,s:I}", "txn", lic->txn, "work_id",
                          lic->work_id, "key_version", (json_int_t)lic->key_version, "key_jwe",
                          lic->key_jwe, "delivery_token", lic->delivery_token,
                          "delivery_expires_at", (json_int_t)lic->delivery_expires_at, "license",
                          terms, "activation", (json_int_t)lic->activation, "activation_limit",
                          (json_int_t)lic->activation_limit);
    require(o != NULL, "answer JSON");
    if (lic->rental)
        json_object_set_new(o, "rental_ends_at", json_integer(lic->rental_ends_at));
    char *text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    require(text != NULL, "answer text");
    sm_pl_license *back = NULL;
    st = sm_pl_license_parse_answer(200, "application/json", (const uint8_t *)text, strlen(text),
                                    lic->work_id, &back, NULL, &err);
    require(st == SM_OK, "a written license does not parse");
    require(strcmp(back->txn, lic->txn) == 0 && strcmp(back->work_id, lic->work_id) == 0 &&
                strcmp(back->key_jwe, lic->key_jwe) == 0 &&
                strcmp(back->delivery_token, lic->delivery_token) == 0 &&
                back->key_version == lic->key_version &&
                back->delivery_expires_at == lic->delivery_expires_at &&
                back->rental == lic->rental && back->rental_duration == lic->rental_duration &&
                back->rental_ends_at == lic->rental_ends_at &&
                back->activation == lic->activation &&
                back->activation_limit == lic->activation_limit,
            "a written license parses to other data");
    free(text);
    sm_pl_license_free(back);
    check_offline_round_trip(lic);
    sm_pl_license_free(lic);
}

/* ---- 1: refusals ----------------------------------------------------------------- */

static void fuzz_refusal(const uint8_t *in, size_t len)
{
    static const char *const types[] = {"application/problem+json", "application/json", NULL,
                                        "application/problem+json"};
    if (len < 2)
        return;
    long status = 100 + (long)(((unsigned)in[0] << 8 | in[1]) % 500u);
    if (status == 200)
        status = 299;
    const char *ct = types[(in[0] >> 6) & 3];
    sm_pl_license *lic = (sm_pl_license *)&lic;
    sm_pl_refusal refusal = SM_PL_REFUSAL_NONE;
    sm_error err = {SM_OK, ""};
    sm_status st = sm_pl_license_parse_answer(status, ct, in + 2, len - 2, FUZZ_WORK, &lic,
                                              &refusal, &err);
    require(st != SM_OK, "a refusal was accepted");
    require_message(st, &err);
    require(lic == NULL, "output set on a refusal");
    require(refusal != SM_PL_REFUSAL_NONE, "a refusal without a reason");
    require(st == ((status >= 500 && status <= 599) ? SM_ERR_UNAVAILABLE : SM_ERR_KEY),
            "status class of a refusal");
    if (status == 503)
        require(refusal == SM_PL_REFUSAL_UNAVAILABLE &&
                    strncmp(err.message, "The key server is unavailable", 29) == 0,
                "any 503 is \"unavailable\" (PLAYER.md §1.4)");
    require(printable_utf8(err.message), "refusal message is not printable UTF-8");
    require(strncmp(err.message, "License refused", 15) == 0 ||
                strncmp(err.message, "The key server is unavailable", 29) == 0,
            "refusal message wording");
    const char *says = strstr(err.message, " Server says: ");
    if (says != NULL)
        require(strlen(says + 14) <= SM_PL_DETAIL_MAX, "quoted detail longer than 300 bytes");
}

/* ---- 2: Content-Range ------------------------------------------------------------ */

static void fuzz_content_range(const uint8_t *in, size_t len)
{
    char *s = malloc(len + 1);
    require(s != NULL, "alloc");
    memcpy(s, in, len);
    s[len] = '\0';
    uint64_t a = 1, b = 2, n = 3;
    if (sm_pl_parse_content_range(s, &a, &b, &n) == 0) {
        require(a <= b && b < n, "accepted range outside the size");
        char canon[80];
        snprintf(canon, sizeof(canon), "bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64, a, b, n);
        require(strcmp(canon, s) == 0, "accepted Content-Range is not in canonical form");
    }
    free(s);
}

/* ---- 3: offline license.json ------------------------------------------------------ */

static void free_fields(sm_pl_offline_entry *e)
{
    free(e->work_id);
    free(e->txn);
    if (e->key_jwe != NULL)
        memset(e->key_jwe, 0, strlen(e->key_jwe));
    free(e->key_jwe);
    free(e->media_type);
    memset(e, 0, sizeof(*e));
}

static void fuzz_offline(const uint8_t *in, size_t len)
{
    if (len == 0)
        return;
    const char *expected = (in[0] & 1) ? FUZZ_WORK : NULL;
    sm_pl_offline_entry e, back;
    memset(&e, 0, sizeof(e));
    memset(&back, 0, sizeof(back));
    sm_error err = {SM_OK, ""};
    sm_pl_offline_entry kept;
    memset(&kept, 0, sizeof(kept));
    sm_status kst = sm_pl_streaming_parse(in + 1, len - 1, expected, "fuzz", &kept, &err);
    if (kst != SM_OK) {
        require_message(kst, &err);
    } else {
        require(kept.work_id && kept.txn && kept.key_jwe && kept.media_type == NULL,
                "fields of an accepted kept license");
        require(kept.key_version >= 1 && (!kept.rental || kept.rental_ends_at > 0),
                "kept license terms");
    }
    free_fields(&kept);
    err.status = SM_OK;
    err.message[0] = '\0';
    sm_status st = sm_pl_offline_parse_license(in + 1, len - 1, expected, "fuzz", &e, &err);
    require(st != SM_OK || kst != SM_OK, "accepted both as license.json and as a kept license");
    if (st != SM_OK) {
        require_message(st, &err);
        free_fields(&e);
        return;
    }
    require(e.work_id && e.txn && e.key_jwe && e.media_type, "fields of an accepted entry");
    require(expected == NULL || strcmp(e.work_id, expected) == 0, "work_id not the expected");
    require(sm_validate_media_type(e.media_type, "media_type", NULL) == SM_OK, "media_type");
    require(e.key_version >= 1, "key_version (1..2^32-1, PLAYER.md §1.5)");
    require(e.container_size <= (UINT64_C(1) << 53), "container_size");
    require(!e.rental || e.rental_ends_at > 0, "a rental without its end");

    sm_pl_license lic = {
        .txn = e.txn,
        .work_id = e.work_id,
        .key_version = e.key_version,
        .key_jwe = e.key_jwe,
        .rental = e.rental,
        .rental_duration = e.rental ? 1 : 0, /* not kept in the entry */
        .rental_ends_at = e.rental ? e.rental_ends_at : 0,
    };
    char *text = sm_pl_offline_license_text(&lic, e.media_type, e.container_size, e.stored_at);
    require(text != NULL, "license.json text");
    st = sm_pl_offline_parse_license((const uint8_t *)text, strlen(text), e.work_id, "again",
                                     &back, &err);
    require(st == SM_OK, "an accepted license.json does not read back after writing");
    require(strcmp(back.work_id, e.work_id) == 0 && strcmp(back.txn, e.txn) == 0 &&
                strcmp(back.key_jwe, e.key_jwe) == 0 &&
                strcmp(back.media_type, e.media_type) == 0 && back.key_version == e.key_version &&
                back.rental == e.rental && back.container_size == e.container_size &&
                back.stored_at == e.stored_at &&
                (!e.rental || back.rental_ends_at == e.rental_ends_at),
            "license.json reads back to other data");
    free(text);
    free_fields(&back);
    free_fields(&e);
}

/* ---- 4: ranged fetcher over canned answers ---------------------------------------- */

typedef struct canned {
    const uint8_t *p, *end;
} canned;

static int take(canned *c, size_t n, const uint8_t **out)
{
    if ((size_t)(c->end - c->p) < n)
        return 0;
    *out = c->p;
    c->p += n;
    return 1;
}

/* Serves the next answer from the input: [status][range len][range][body len][body];
 * behaves like the libcurl transport (body_buf only for the expected status). */
static sm_status canned_perform(void *ctx, const sm_pl_http_request *rq, sm_pl_http_response *rs,
                                sm_error *err)
{
    static const long statuses[] = {206, 206, 206, 206, 200, 404, 401, 503};
    canned *c = ctx;
    const uint8_t *h = NULL, *range = NULL, *blen = NULL, *body = NULL;
    memset(rs, 0, sizeof(*rs));
    if (!take(c, 2, &h))
        return sm_error_set(err, SM_ERR_UNAVAILABLE, "Network failure: cannot reach %s: canned",
                            rq->url);
    size_t rlen = h[1] % sizeof(rs->content_range);
    if (!take(c, rlen, &range) || !take(c, 1, &blen))
        return sm_error_set(err, SM_ERR_UNAVAILABLE, "Network failure: cannot reach %s: cut",
                            rq->url);
    size_t n = (size_t)blen[0] * 4;
    if (!take(c, n, &body)) {
        n = (size_t)(c->end - c->p);
        body = c->p;
        c->p = c->end;
    }
    rs->status = statuses[h[0] & 7];
    memcpy(rs->content_range, range, rlen);
    rs->content_range[rlen] = '\0';
    snprintf(rs->content_type, sizeof(rs->content_type), "%s",
             (h[0] & 8) ? "application/problem+json" : "application/octet-stream");
    int expected = rq->expect_status == 0 || rs->status == rq->expect_status;
    if (rq->body_buf != NULL && expected) {
        if (n > rq->body_cap)
            return sm_error_set(err, SM_ERR_TOO_LARGE,
                                "Network failure: %s sent a larger answer than expected", rq->url);
        if (n > 0)
            memcpy(rq->body_buf, body, n);
        rs->len = n;
        return SM_OK;
    }
    size_t max = expected ? rq->max_body : SM_PL_HTTP_ERROR_BODY_MAX;
    if (n > max)
        n = max;
    rs->body = malloc(n + 1);
    if (rs->body == NULL)
        return sm_error_set(err, SM_ERR_NOMEM, "out of memory");
    if (n > 0)
        memcpy(rs->body, body, n);
    rs->body[n] = '\0';
    rs->len = n;
    return SM_OK;
}

static void fuzz_fetch(const uint8_t *in, size_t len)
{
    static char *const urls[] = {"https://m1.example/works/w", "https://m2.example/works/w",
                                 "https://m3.example/works/w"};
    if (len < 3)
        return;
    canned c = {in + 3, in + len};
    sm_pl_transport tr = {canned_perform, &c};
    size_t window = 1 + in[0] % 64;
    sm_pl_fetch *f = NULL;
    sm_error err = {SM_OK, ""};
    sm_status st = sm_pl_fetch_new(&tr, urls, 1 + in[1] % 3, "tok.en.x", window, &f, &err);
    require(st == SM_OK, "fetch_new");
    st = sm_pl_fetch_open(f, &err);
    require_message(st, &err);
    if (st == SM_OK) {
        uint64_t size = sm_pl_fetch_size(f);
        require(size > 0, "opened a container of no bytes");
        uint8_t buf[160];
        uint64_t offsets[4] = {0, size / 2, size - 1, (uint64_t)in[2] * 7};
        for (int i = 0; i < 4; i++) {
            size_t want = 1 + (size_t)((in[2] + 37u * (unsigned)i) % sizeof(buf));
            size_t got = 12345;
            memset(&err, 0, sizeof(err));
            st = sm_pl_fetch_read_at(f, offsets[i], buf, want, &got, &err);
            require_message(st, &err);
            if (st != SM_OK)
                break;
            require(got <= want, "read more than asked");
            require(offsets[i] >= size ? got == 0 : offsets[i] + got <= size,
                    "read past the container");
            require(sm_pl_fetch_size(f) == size, "the container size changed");
        }
    }
    require(sm_pl_fetch_mirror(f) < 3, "mirror index");
    sm_pl_fetch_free(f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    const uint8_t *in = data + 1;
    size_t len = size - 1;
    switch (data[0] % 5) {
    case 0: fuzz_license(in, len); break;
    case 1: fuzz_refusal(in, len); break;
    case 2: fuzz_content_range(in, len); break;
    case 3: fuzz_offline(in, len); break;
    default: fuzz_fetch(in, len); break;
    }
    return 0;
}
