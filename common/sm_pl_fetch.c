#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sm_pl_fetch.h"
#include "sm_secmem.h"

struct sm_pl_fetch {
    sm_pl_transport tr;
    char **urls;
    size_t url_count;
    size_t current;     /* mirror in use */
    char *auth_header;  /* "Authorization: Bearer ..." */
    size_t window;
    uint8_t *buf;       /* read-ahead window */
    uint64_t buf_off;
    size_t buf_len;
    uint64_t size;      /* 0 until opened */
    int opened;
    unsigned long requests;
    sm_pl_token_renew_fn renew;
    void *renew_ctx;
};

static int parse_u64(const char **p, uint64_t *out)
{
    const char *s = *p;
    uint64_t v = 0;
    if (*s < '0' || *s > '9')
        return -1;
    if (*s == '0' && s[1] >= '0' && s[1] <= '9')
        return -1; /* no leading zeros */
    while (*s >= '0' && *s <= '9') {
        unsigned d = (unsigned)(*s - '0');
        if (v > (UINT64_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
        s++;
    }
    *p = s;
    *out = v;
    return 0;
}

int sm_pl_parse_content_range(const char *v, uint64_t *first, uint64_t *last, uint64_t *size)
{
    if (strncmp(v, "bytes ", 6) != 0)
        return -1;
    const char *p = v + 6;
    if (parse_u64(&p, first) != 0 || *p++ != '-' || parse_u64(&p, last) != 0 || *p++ != '/' ||
        parse_u64(&p, size) != 0 || *p != '\0')
        return -1;
    if (*first > *last || *last >= *size)
        return -1;
    return 0;
}

/* "Authorization: Bearer <token>" in a new malloc'ed string. */
static char *auth_header(const char *token)
{
    size_t hlen = strlen(token) + sizeof("Authorization: Bearer ");
    char *h = malloc(hlen);
    if (h != NULL)
        snprintf(h, hlen, "Authorization: Bearer %s", token);
    return h;
}

static void free_wiped(char *s)
{
    if (s != NULL) {
        sm_wipe(s, strlen(s));
        free(s);
    }
}

sm_status sm_pl_fetch_new(const sm_pl_transport *tr, char *const *urls, size_t url_count,
                          const char *token, size_t window, sm_pl_fetch **out, sm_error *err)
{
    *out = NULL;
    if (url_count == 0 || url_count > 8 || token == NULL || token[0] == '\0')
        return sm_error_set(err, SM_ERR_ARG, "a fetch needs 1-8 media URLs and a delivery token");
    if (window == 0)
        window = SM_PL_FETCH_DEFAULT_WINDOW;
    if (window > SM_PL_FETCH_MAX_WINDOW)
        window = SM_PL_FETCH_MAX_WINDOW;
    sm_pl_fetch *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return sm_error_set(err, SM_ERR_NOMEM, "out of memory");
    f->tr = *tr;
    f->window = window;
    f->urls = calloc(url_count, sizeof(char *));
    f->auth_header = auth_header(token);
    f->buf = malloc(window);
    int ok = f->urls != NULL && f->auth_header != NULL && f->buf != NULL;
    for (size_t i = 0; ok && i < url_count; i++) {
        f->urls[i] = strdup(urls[i]);
        ok = f->urls[i] != NULL;
        f->url_count = i + 1;
    }
    if (!ok) {
        sm_pl_fetch_free(f);
        return sm_error_set(err, SM_ERR_NOMEM, "out of memory");
    }
    *out = f;
    return SM_OK;
}

void sm_pl_fetch_set_renewal(sm_pl_fetch *f, sm_pl_token_renew_fn fn, void *ctx)
{
    f->renew = fn;
    f->renew_ctx = ctx;
}

/* A new delivery token from the renewal callback, in the header. */
static sm_status renew_token(sm_pl_fetch *f, sm_error *err)
{
    char *token = NULL;
    sm_status st = f->renew(f->renew_ctx, &token, err);
    if (st != SM_OK)
        return st;
    char *h = token != NULL && token[0] != '\0' ? auth_header(token) : NULL;
    int empty = token == NULL || token[0] == '\0';
    free_wiped(token);
    if (h == NULL)
        return sm_error_set(err, empty ? SM_ERR_ARG : SM_ERR_NOMEM,
                            empty ? "the renewal gave no delivery token" : "out of memory");
    free_wiped(f->auth_header);
    f->auth_header = h;
    return SM_OK;
}

void sm_pl_fetch_free(sm_pl_fetch *f)
{
    if (f == NULL)
        return;
    for (size_t i = 0; f->urls != NULL && i < f->url_count; i++)
        free(f->urls[i]);
    free(f->urls);
    free_wiped(f->auth_header);
    free(f->buf);
    free(f);
}

uint64_t sm_pl_fetch_size(const sm_pl_fetch *f)
{
    return f->size;
}

size_t sm_pl_fetch_mirror(const sm_pl_fetch *f)
{
    return f->current;
}

unsigned long sm_pl_fetch_requests(const sm_pl_fetch *f)
{
    return f->requests;
}

/* The problem slug of an error answer, for the message ("" if none). */
static void problem_slug(const sm_pl_http_response *rs, char *out, size_t size)
{
    out[0] = '\0';
    if (rs->body == NULL || strcmp(rs->content_type, "application/problem+json") != 0)
        return;
    const char *t = strstr((const char *)rs->body, "/problems/");
    if (t == NULL)
        return;
    t += strlen("/problems/");
    size_t n = 0;
    while (n + 1 < size && ((t[n] >= 'a' && t[n] <= 'z') || t[n] == '-' ||
                            (t[n] >= '0' && t[n] <= '9'))) {
        out[n] = t[n];
        n++;
    }
    out[n] = '\0';
}

/* One ranged GET of [first, last] from mirror m into dst. */
static sm_status fetch_from(sm_pl_fetch *f, size_t m, uint64_t first, uint64_t last, uint8_t *dst,
                            size_t *got, uint64_t *size_out, sm_error *err)
{
    char range[80];
    snprintf(range, sizeof(range), "Range: bytes=%llu-%llu", (unsigned long long)first,
             (unsigned long long)last);
    sm_pl_http_request rq = {
        .method = "GET",
        .url = f->urls[m],
        .headers = {f->auth_header, range, NULL},
        .body_buf = dst,
        .body_cap = (size_t)(last - first + 1),
        .expect_status = 206,
    };
    char shown[512];
    sm_pl_url_for_message(f->urls[m], shown, sizeof(shown));
    sm_pl_http_response rs;
    f->requests++;
    sm_status st = f->tr.perform(f->tr.ctx, &rq, &rs, err);
    if (st != SM_OK)
        return st;
    uint64_t a = 0, b = 0, size = 0;
    if (rs.status != 206) {
        char slug[65];
        problem_slug(&rs, slug, sizeof(slug));
        if (rs.status == 200)
            st = sm_error_set(err, SM_ERR_UNAVAILABLE,
                              "%s answered 200 instead of 206 to a range request (the server "
                              "does not support ranges)", shown);
        else if (rs.status == 401 && strcmp(slug, "token-expired") == 0)
            st = sm_error_set(err, SM_ERR_EXPIRED, "%s answered HTTP 401 (token-expired)",
                              shown);
        else
            st = sm_error_set(err, SM_ERR_UNAVAILABLE, "%s answered HTTP %ld%s%s%s", shown,
                              rs.status, slug[0] ? " (" : "", slug, slug[0] ? ")" : "");
    } else if (sm_pl_parse_content_range(rs.content_range, &a, &b, &size) != 0) {
        st = sm_error_set(err, SM_ERR_UNAVAILABLE, "%s sent a missing or malformed Content-Range",
                          shown);
    } else if (a != first || b > last || (b < last && b != size - 1)) {
        st = sm_error_set(err, SM_ERR_UNAVAILABLE,
                          "%s sent another range than the one asked for", shown);
    } else if (rs.len != b - a + 1) {
        st = sm_error_set(err, SM_ERR_UNAVAILABLE,
                          "%s sent %zu bytes for a range of %llu (connection cut?)", shown,
                          rs.len, (unsigned long long)(b - a + 1));
    } else if (f->opened && size != f->size) {
        st = sm_error_set(err, SM_ERR_UNAVAILABLE,
                          "%s has a container of %llu bytes, the other mirror %llu", shown,
                          (unsigned long long)size, (unsigned long long)f->size);
    } else {
        *got = rs.len;
        *size_out = size;
    }
    sm_pl_http_response_clear(&rs);
    return st;
}

/* Tries the mirror in use, then the others in order. A mirror that finds
 * the token expired gets the request again with a renewed one (once). */
static sm_status fetch_range(sm_pl_fetch *f, uint64_t first, uint64_t last, uint8_t *dst,
                             size_t *got, sm_error *err)
{
    sm_error last_err = {SM_OK, ""};
    int all_cert = 1, renewed = 0;
    for (size_t k = 0; k < f->url_count; k++) {
        size_t m = (f->current + k) % f->url_count;
        uint64_t size = 0;
        sm_error e = {SM_OK, ""};
        sm_status st = fetch_from(f, m, first, last, dst, got, &size, &e);
        if (st == SM_ERR_EXPIRED && f->renew != NULL && !renewed) {
            renewed = 1;
            st = renew_token(f, err);
            if (st != SM_OK)
                return st;
            st = fetch_from(f, m, first, last, dst, got, &size, &e);
        }
        if (st == SM_OK) {
            f->current = m;
            if (!f->opened) {
                f->size = size;
                f->opened = 1;
            }
            return SM_OK;
        }
        if (st == SM_ERR_STATE || st == SM_ERR_NOMEM) { /* interrupted: stop at once */
            if (err != NULL)
                *err = e;
            return st;
        }
        if (st != SM_ERR_AUTH)
            all_cert = 0;
        last_err = e;
    }
    if (all_cert) {
        if (err != NULL)
            *err = last_err;
        return SM_ERR_AUTH;
    }
    const char *msg = last_err.message;
    if (strncmp(msg, "Network failure: ", 17) == 0)
        msg += 17;
    return sm_error_set(err, SM_ERR_UNAVAILABLE,
                        "Network failure: no media store delivered the container (last: %s).",
                        msg);
}

sm_status sm_pl_fetch_open(sm_pl_fetch *f, sm_error *err)
{
    size_t got = 0;
    sm_status st = fetch_range(f, 0, f->window - 1, f->buf, &got, err);
    if (st != SM_OK)
        return st;
    f->buf_off = 0;
    f->buf_len = got;
    return SM_OK;
}

sm_status sm_pl_fetch_read_at(void *ctx, uint64_t offset, uint8_t *buf, size_t len, size_t *got,
                              sm_error *err)
{
    sm_pl_fetch *f = ctx;
    *got = 0;
    if (!f->opened) {
        sm_status st = sm_pl_fetch_open(f, err);
        if (st != SM_OK)
            return st;
    }
    if (offset >= f->size || len == 0)
        return SM_OK;
    if ((uint64_t)len > f->size - offset)
        len = (size_t)(f->size - offset);
    if (offset >= f->buf_off && offset - f->buf_off <= f->buf_len &&
        len <= f->buf_len - (size_t)(offset - f->buf_off)) {
        memcpy(buf, f->buf + (offset - f->buf_off), len);
        *got = len;
        return SM_OK;
    }
    if (len >= f->window) { /* larger than the window: straight into the caller's buffer */
        sm_status st = fetch_range(f, offset, offset + len - 1, buf, got, err);
        return st;
    }
    uint64_t last = offset + f->window - 1;
    if (last >= f->size)
        last = f->size - 1;
    size_t n = 0;
    f->buf_len = 0;
    sm_status st = fetch_range(f, offset, last, f->buf, &n, err);
    if (st != SM_OK)
        return st;
    f->buf_off = offset;
    f->buf_len = n;
    if (n < len)
        len = n;
    memcpy(buf, f->buf, len);
    *got = len;
    return SM_OK;
}
