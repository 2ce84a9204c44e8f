/* Fuzz target for the retailer's parsers (docs/PROTOCOL.md §4). The first
 * byte picks one; the rest is its input:
 *   0-7  a request body for sign-up, login, device registration, redeem,
 *        top-up, code batch, offer and order. The handlers run with no
 *        database (and no payment authority, and an scrypt cost they
 *        refuse), so a body either gets a 400-class refusal with a detail,
 *        or passes validation and stops at the first step needing the
 *        database: then the body must satisfy the documented rules.
 *        Top-ups and orders take an Idempotency-Key first: one length byte,
 *        then the key.
 *   8    the search box (sm_rt_fulltext_expr): the expression holds only
 *        "+word*" terms of letters and digits, never an operator, and is
 *        stable when its words are searched again; also the paging query.
 *   9    small validators: e-mail normalisation and redeem codes are
 *        idempotent, and the syntax checks agree with their rules.
 *   10   the key server's inventory (sm_rt_inventory_parse);
 *   11   a reservation answer; 12 a payment answer.
 * Every failure must carry a message. */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "sm_jose.h"
#include "sm_json.h"
#include "sm_ks_terms.h"
#include "sm_rt_auth.h"
#include "sm_rt_store.h"
#include "sm_rt_validate.h"
#include "sm_steer.h"
#include "sm_validate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_NOW 1700000000
#define BODY_MAX 65536u

static void require(int cond, const char *what)
{
    if (!cond) {
        fprintf(stderr, "fuzz_retail: invariant violated: %s\n", what);
        abort();
    }
}

static void require_message(sm_status st, const sm_error *err)
{
    if (st != SM_OK)
        require(err->status == st && err->message[0] != '\0', "failure without a message");
}

static char *cstr(const uint8_t *in, size_t len)
{
    char *s = malloc(len + 1);
    require(s != NULL, "alloc");
    memcpy(s, in, len);
    s[len] = '\0';
    return s;
}

/* ---- 0-7: request bodies ---------------------------------------------------------- */

enum { SIGNUP, LOGIN, DEVICE, REDEEM, TOPUP, CODES, OFFER, ORDER, N_BODIES };

/* What a handler returns once the body passed validation. */
static const sm_status passed_status[N_BODIES] = {
    [SIGNUP] = SM_ERR_ARG, /* the refused scrypt cost */
    [LOGIN] = SM_ERR_UNAVAILABLE, [DEVICE] = SM_ERR_UNAVAILABLE, [REDEEM] = SM_ERR_UNAVAILABLE,
    [TOPUP] = SM_OK,       /* 501 payments-not-configured */
    [CODES] = SM_ERR_UNAVAILABLE, [OFFER] = SM_ERR_UNAVAILABLE, [ORDER] = SM_ERR_UNAVAILABLE,
};

static const char *str_field(json_t *body, const char *name)
{
    return json_string_value(json_object_get(body, name));
}

static int64_t int_field(json_t *body, const char *name, int64_t dflt)
{
    json_t *v = json_object_get(body, name);
    return json_is_integer(v) ? (int64_t)json_integer_value(v) : dflt;
}

/* The documented rules a body that passed validation must meet. */
static void check_passed(int which, json_t *body, const char *idem)
{
    sm_error e = {SM_OK, ""};
    char norm[SM_RT_EMAIL_MAX + 1];
    switch (which) {
    case SIGNUP:
    case LOGIN: {
        const char *email = str_field(body, "email"), *pw = str_field(body, "password");
        require(email != NULL && sm_rt_email_normalize(email, norm, &e) == SM_OK, "email");
        require(strchr(norm, '@') != NULL && strlen(norm) <= SM_RT_EMAIL_MAX, "email form");
        require(pw != NULL, "password");
        if (which == SIGNUP) {
            size_t n = json_string_length(json_object_get(body, "password"));
            require(n >= SM_RT_PASSWORD_MIN && n <= SM_RT_PASSWORD_MAX &&
                        memchr(pw, '\0', n) == NULL,
                    "password length");
            const char *name = str_field(body, "display_name");
            require(json_object_get(body, "display_name") == NULL ||
                        (name != NULL && name[0] != '\0' &&
                         sm_validate_text(name, SM_RT_NAME_MAX, "n", NULL) == SM_OK),
                    "display_name");
        }
        break;
    }
    case DEVICE: {
        json_t *k = json_object_get(body, "jwk");
        char *text = json_dumps(k, JSON_COMPACT);
        sm_jwk *jwk = NULL;
        require(text != NULL && sm_jwk_from_json(text, strlen(text), &jwk, &e) == SM_OK,
                "registered jwk imports");
        require(!sm_jwk_has_private(jwk), "registered a private key");
        sm_jwk_free(jwk);
        free(text);
        const char *name = str_field(body, "name");
        require(json_object_get(body, "name") == NULL || (name != NULL && name[0] != '\0'),
                "device name");
        break;
    }
    case REDEEM: {
        char code[21], again[21];
        const char *c = str_field(body, "code");
        require(c != NULL && sm_rt_code_normalize(c, code, &e) == SM_OK, "redeem code");
        require(sm_rt_code_normalize(code, again, &e) == SM_OK && strcmp(code, again) == 0,
                "code normalisation is not idempotent");
        break;
    }
    case TOPUP: {
        int64_t points = int_field(body, "points", 0);
        const char *tok = str_field(body, "payment_token");
        require(points >= 1 && points <= 1000000, "top-up points");
        require(tok != NULL && tok[0] != '\0', "payment token");
        require(sm_rt_idempotency_key_check(idem, &e) == SM_OK, "top-up Idempotency-Key");
        break;
    }
    case CODES: {
        int64_t points = int_field(body, "points", 0), count = int_field(body, "count", 0);
        int64_t expires = int_field(body, "expires_at", 0);
        require(points >= 1 && points <= 1000000 && count >= 1 && count <= 1000,
                "code batch sizes");
        require(expires == 0 || expires > FUZZ_NOW, "code batch expiry in the past");
        break;
    }
    case OFFER: {
        sm_ks_terms t;
        const char *work = str_field(body, "work_id");
        require(work != NULL && sm_validate_work_id(work, "w", NULL) == SM_OK, "offer work_id");
        require(sm_ks_terms_from_json(json_object_get(body, "license"), "l", &t, &e) == SM_OK,
                "offer terms");
        int64_t price = int_field(body, "price", -1);
        require(price >= 0 && price <= 1000000000000LL, "offer price");
        break;
    }
    case ORDER: {
        int64_t offer = int_field(body, "offer_id", -1);
        const char *jkt = str_field(body, "device_jkt");
        require(offer >= 0, "offer_id");
        require(json_object_get(body, "device_jkt") == NULL || sm_rt_jkt_syntax_ok(jkt),
                "device_jkt");
        require(sm_rt_idempotency_key_check(idem, &e) == SM_OK, "order Idempotency-Key");
        break;
    }
    }
}

static void fuzz_body(int which, const uint8_t *in, size_t len)
{
    char *idem = NULL;
    if (which == TOPUP || which == ORDER) {
        if (len == 0)
            return;
        size_t k = in[0] % 140u;
        if (k > len - 1)
            k = len - 1;
        idem = cstr(in + 1, k);
        in += 1 + k;
        len -= 1 + k;
    }
    json_t *body = NULL;
    sm_error err = {SM_OK, ""};
    /* What mod_retail does with a request body (smh_body). */
    sm_status st = sm_json_parse_object(in, len, BODY_MAX, "request body", &body, &err);
    if (st != SM_OK) {
        require_message(st, &err);
        free(idem);
        return;
    }
    sm_rt_ctx ctx;
    memset(&ctx, 0, sizeof(ctx));
    ctx.currency = "EUR";
    ctx.license_url = "https://ks.example/v1/license";
    ctx.now = FUZZ_NOW;
    ctx.token_lifetime = 3600;
    ctx.scrypt_ln = 0;
    sm_rt_result out;
    memset(&err, 0, sizeof(err));
    switch (which) {
    case SIGNUP: st = sm_rt_signup(&ctx, body, &out, &err); break;
    case LOGIN: st = sm_rt_login(&ctx, body, "192.0.2.1", &out, &err); break;
    case DEVICE: st = sm_rt_device_register(&ctx, 1, body, &out, &err); break;
    case REDEEM: st = sm_rt_wallet_redeem(&ctx, 1, body, &out, &err); break;
    case TOPUP: st = sm_rt_wallet_topup(&ctx, 1, idem, body, &out, &err); break;
    case CODES: st = sm_rt_codes_issue(&ctx, body, &out, &err); break;
    case OFFER: st = sm_rt_offer_create(&ctx, body, &out, &err); break;
    default: st = sm_rt_order_place(&ctx, 1, idem, body, &out, &err); break;
    }
    require(out.body == NULL && out.raw == NULL, "an answer body without a database");
    int passed;
    if (which == TOPUP && st == SM_OK && out.status == 501) {
        require(out.slug != NULL && strcmp(out.slug, "payments-not-configured") == 0, "501 slug");
        passed = 1;
    } else if (st == SM_OK) {
        require(out.status == 400, "a refusal other than 400 before the database");
        require(out.slug != NULL && out.title != NULL && out.detail[0] != '\0',
                "a refusal without slug, title or detail");
        /* mod_retail replaces a detail jansson refuses by a placeholder. */
        json_t *d = json_string(out.detail);
        require(d != NULL, "a refusal detail that is not UTF-8");
        json_decref(d);
        require(strcmp(out.slug, "invalid-request") == 0 || strcmp(out.slug, "invalid-jwk") == 0,
                "refusal slug");
        passed = 0;
    } else {
        require_message(st, &err);
        require(st == passed_status[which], "unexpected error before the database");
        passed = 1;
    }
    if (passed)
        check_passed(which, body, idem);
    sm_rt_result_clear(&out);
    json_decref(body);
    free(idem);
}

/* ---- 8: search expression and paging --------------------------------------------- */

static int word_byte(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c >= 0x80;
}

static void fuzz_search(const uint8_t *in, size_t len)
{
    char *q = cstr(in, len);
    char expr[1024], expr2[1024], again[1024];
    unsigned words = 0, ignored = 0, words2 = 0, ignored2 = 0;
    sm_error err = {SM_OK, ""};
    sm_status st = sm_rt_fulltext_expr(q, expr, sizeof(expr), &words, &ignored, &err);
    if (st != SM_OK) {
        require_message(st, &err);
    } else {
        require(words <= 10, "more than 10 words");
        require(strlen(q) <= SM_RT_SEARCH_MAX, "a query over 200 bytes");
        /* "+w1* +w2* ...": words of letters, digits and UTF-8 only. */
        size_t o = 0;
        unsigned n = 0;
        const char *p = expr;
        while (*p) {
            require(p[0] == '+', "a term without +");
            const char *w = ++p;
            while (word_byte((unsigned char)*p))
                p++;
            size_t wl = (size_t)(p - w);
            require(wl >= 3 && wl <= 64, "word length");
            require(*p == '*', "a term without *");
            p++;
            require(*p == '\0' || (*p == ' ' && p[1] == '+'), "terms not separated by a space");
            if (*p == ' ')
                p++;
            if (o > 0)
                again[o++] = ' ';
            memcpy(again + o, w, wl);
            o += wl;
            n++;
        }
        again[o] = '\0';
        require(n == words, "word count");
        /* Searching the kept words again gives the same expression. */
        st = sm_rt_fulltext_expr(again, expr2, sizeof(expr2), &words2, &ignored2, &err);
        require(st == SM_OK && words2 == words && ignored2 == 0 && strcmp(expr, expr2) == 0,
                "the expression is not stable");
    }
    unsigned limit = 0, offset = 0;
    memset(&err, 0, sizeof(err));
    st = sm_rt_paging(q, &limit, &offset, &err);
    if (st == SM_OK)
        require(limit >= 1 && limit <= SM_RT_PAGE_MAX && offset <= SM_RT_OFFSET_MAX, "paging");
    else
        require_message(st, &err);
    char value[64];
    int f = sm_rt_query_param(q, "q", value, sizeof(value));
    require(f >= -1 && f <= 1, "query_param result");
    if (f == 1)
        require(strlen(value) < sizeof(value), "query_param length");
    free(q);
}

/* ---- 9: small validators ---------------------------------------------------------- */

static void fuzz_validators(const uint8_t *in, size_t len)
{
    char *s = cstr(in, len);
    sm_error err = {SM_OK, ""};
    char norm[SM_RT_EMAIL_MAX + 1], norm2[SM_RT_EMAIL_MAX + 1];
    sm_status st = sm_rt_email_normalize(s, norm, &err);
    if (st == SM_OK) {
        require(strlen(norm) == strlen(s) && strlen(norm) <= SM_RT_EMAIL_MAX, "email length");
        const char *at = strchr(norm, '@');
        require(at != NULL && strchr(at + 1, '@') == NULL && strchr(at + 1, '.') != NULL,
                "email shape");
        for (const char *p = norm; *p; p++)
            require(!(*p >= 'A' && *p <= 'Z') && (unsigned char)*p > 0x20 &&
                        (unsigned char)*p < 0x7f,
                    "email characters");
        require(sm_rt_email_normalize(norm, norm2, &err) == SM_OK && strcmp(norm, norm2) == 0,
                "email normalisation is not idempotent");
    } else {
        require_message(st, &err);
    }
    char code[21], code2[21];
    memset(&err, 0, sizeof(err));
    st = sm_rt_code_normalize(s, code, &err);
    if (st == SM_OK) {
        require(strlen(code) == 20, "code length");
        require(sm_rt_code_normalize(code, code2, &err) == SM_OK && strcmp(code, code2) == 0,
                "code normalisation is not idempotent");
    } else {
        require_message(st, &err);
    }
    memset(&err, 0, sizeof(err));
    st = sm_rt_password_check(s, len, &err);
    if (st == SM_OK)
        require(len >= SM_RT_PASSWORD_MIN && len <= SM_RT_PASSWORD_MAX &&
                    memchr(s, '\0', len) == NULL,
                "password rules");
    else
        require_message(st, &err);
    memset(&err, 0, sizeof(err));
    st = sm_rt_idempotency_key_check(s, &err);
    if (st == SM_OK)
        require(strlen(s) >= 1 && strlen(s) <= SM_RT_IDEMPOTENCY_KEY_MAX &&
                    strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                              "0123456789._~:-") == strlen(s),
                "idempotency key rules");
    else
        require_message(st, &err);
    if (sm_rt_jkt_syntax_ok(s))
        require(strlen(s) == 43, "jkt length");
    if (sm_rt_token_syntax_ok(s))
        require(strlen(s) == SM_RT_TOKEN_SIZE - 1 && strncmp(s, "smrt_", 5) == 0, "token form");
    if (sm_rt_order_id_syntax_ok(s))
        require(strlen(s) == SM_RT_ORDER_ID_SIZE - 1, "order id length");
    free(s);
}

/* ---- 10-12: key server answers ---------------------------------------------------- */

/* Whether the steering file an order builds from these key server values
 * (as build_steer in sm_rt_store_orders.c does) is valid: anything the
 * retailer accepts must end in a steering file, or a paid order could
 * never complete. */
static sm_status steer_from(const char *work_id, const char *title, const char *artist,
                            const char *album, const char *media_type, const char *txn,
                            const char *voucher, sm_error *err)
{
    char *urls[1] = {(char *)"https://m1.example/works/w1"};
    sm_steer s;
    memset(&s, 0, sizeof(s));
    s.version = SM_STEER_VERSION;
    s.work_id = (char *)work_id;
    s.title = (char *)title;
    s.artist = artist != NULL && artist[0] ? (char *)artist : NULL;
    s.album = album != NULL && album[0] ? (char *)album : NULL;
    s.media_type = media_type != NULL && media_type[0] ? (char *)media_type
                                                       : (char *)"application/octet-stream";
    s.license_url = (char *)"https://ks.example/v1/license";
    s.media_urls = urls;
    s.media_url_count = 1;
    s.voucher = (char *)voucher;
    s.transaction_id = txn != NULL && txn[0] && strchr(txn, '.') == NULL ? (char *)txn : NULL;
    return sm_steer_validate(&s, NULL, err);
}

static void fuzz_inventory(const uint8_t *in, size_t len)
{
    json_t *doc = NULL, *works = NULL;
    sm_error err = {SM_OK, ""};
    sm_status st = sm_rt_inventory_parse((const char *)in, len, &doc, &works, &err);
    if (st != SM_OK) {
        require_message(st, &err);
        require(doc == NULL && works == NULL, "output set on failure");
        return;
    }
    require(json_is_array(works) && works == json_object_get(doc, "works"), "works");
    size_t i, j;
    json_t *w, *l;
    json_array_foreach(works, i, w) {
        const char *id = json_string_value(json_object_get(w, "work_id"));
        const char *cur = json_string_value(json_object_get(w, "currency"));
        require(id != NULL && sm_validate_work_id(id, "w", NULL) == SM_OK, "inventory work_id");
        require(json_string_value(json_object_get(w, "title")) != NULL, "inventory title");
        require(cur != NULL && strlen(cur) == 3, "inventory currency");
        sm_error e = {SM_OK, ""};
        sm_status st2 = steer_from(id, json_string_value(json_object_get(w, "title")),
                                   json_string_value(json_object_get(w, "artist")),
                                   json_string_value(json_object_get(w, "album")),
                                   json_string_value(json_object_get(w, "media_type")), NULL,
                                   "e30.e30.c2ln", &e);
        if (st2 != SM_OK)
            fprintf(stderr, "fuzz_retail: %s\n", e.message);
        require(st2 == SM_OK, "an accepted inventory entry makes no valid steering file");
        json_array_foreach(json_object_get(w, "licenses"), j, l) {
            const char *type = json_string_value(json_object_get(l, "type"));
            require(type != NULL && sm_ks_license_type_from_name(type) != 0, "inventory type");
            require(json_is_integer(json_object_get(l, "price")), "inventory price");
        }
    }
    json_decref(doc);
}

static void fuzz_ks_answer(int payment, const uint8_t *in, size_t len)
{
    /* What ks_post does with an answer. */
    json_t *ans = json_loadb((const char *)in, len, JSON_REJECT_DUPLICATES, NULL);
    sm_error err = {SM_OK, ""};
    if (payment) {
        const char *tok = NULL;
        sm_status st = sm_rt_payment_answer_parse(ans, &tok, &err);
        require_message(st, &err);
        require(st != SM_OK || tok != NULL, "payment token");
    } else {
        sm_rt_reservation_answer ra;
        sm_status st = sm_rt_reservation_answer_parse(ans, &ra, &err);
        require_message(st, &err);
        if (st == SM_OK) {
            require(ra.txn != NULL && strlen(ra.txn) <= 64 && ra.voucher != NULL &&
                        ra.currency != NULL && strlen(ra.currency) == 3 && ra.price >= 0,
                    "reservation answer");
            sm_status st2 = steer_from("w1", "t", NULL, NULL, NULL, ra.txn, ra.voucher, &err);
            if (st2 != SM_OK)
                fprintf(stderr, "fuzz_retail: %s\n", err.message);
            require(st2 == SM_OK, "an accepted reservation makes no valid steering file");
        }
    }
    json_decref(ans);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    const uint8_t *in = data + 1;
    size_t len = size - 1;
    int which = data[0] % 13;
    if (which < N_BODIES)
        fuzz_body(which, in, len);
    else if (which == 8)
        fuzz_search(in, len);
    else if (which == 9)
        fuzz_validators(in, len);
    else if (which == 10)
        fuzz_inventory(in, len);
    else
        fuzz_ks_answer(which == 12, in, len);
    return 0;
}
