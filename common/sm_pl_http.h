/* The player's HTTP transport: what the license client and the media
 * fetcher send through. The real one (sm_pl_http_curl_*) keeps one libcurl
 * handle for keep-alive, speaks HTTPS with an optional CA file, bounds
 * connect and request times and stops when the caller's interrupt check
 * says so (VLC: vlc_killed()). Tests plug in memory servers through the
 * same function pointer. docs/PLAYER.md describes the requests made. */
#ifndef SM_PL_HTTP_H
#define SM_PL_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "sm_error.h"

#define SM_PL_HTTP_MAX_HEADERS 8

typedef struct sm_pl_http_request {
    const char *method;                            /* "GET" or "POST" */
    const char *url;
    const char *headers[SM_PL_HTTP_MAX_HEADERS];   /* "Name: value", NULL-terminated list */
    const char *body;                              /* POST body or NULL */
    size_t body_len;
    /* Where the answer's body goes: into body_buf (at most body_cap bytes;
     * a longer body is an error) when set, else a malloc'ed buffer of at
     * most max_body bytes. */
    uint8_t *body_buf;
    size_t body_cap;
    size_t max_body;
    /* When non-zero: an answer with another status does not go to
     * body_buf; up to SM_PL_HTTP_ERROR_BODY_MAX bytes of it go to a
     * malloc'ed body instead (the rest is dropped), so an error answer or a
     * server ignoring Range never overflows the caller's buffer. */
    long expect_status;
} sm_pl_http_request;

#define SM_PL_HTTP_ERROR_BODY_MAX 4096u

typedef struct sm_pl_http_response {
    long status;
    char content_type[128];   /* media type without parameters, lower case; "" if none */
    char content_range[128];  /* the Content-Range header value; "" if none */
    uint8_t *body;            /* malloc'ed (NUL-terminated) unless body_buf was given */
    size_t len;
} sm_pl_http_response;

/* Performs one request. SM_OK with rs->status for any HTTP answer;
 * SM_ERR_UNAVAILABLE when the server cannot be reached or the time ran out,
 * SM_ERR_AUTH when the TLS certificate could not be verified,
 * SM_ERR_TOO_LARGE when the body exceeds the limit, SM_ERR_STATE when
 * interrupted. Messages start "Network failure: " or "Certificate failure: "
 * and name the URL (without its query). */
typedef sm_status (*sm_pl_http_fn)(void *ctx, const sm_pl_http_request *rq,
                                   sm_pl_http_response *rs, sm_error *err);

typedef struct sm_pl_transport {
    sm_pl_http_fn perform;
    void *ctx;
} sm_pl_transport;

void sm_pl_http_response_clear(sm_pl_http_response *rs);

/* Copies url without query and fragment into buf (for messages). */
void sm_pl_url_for_message(const char *url, char *buf, size_t size);

/* --- libcurl transport ----------------------------------------------------- */

typedef struct sm_pl_http_config {
    const char *ca_file;           /* PEM CAs, or NULL for the system store */
    unsigned connect_timeout_s;    /* 0 = 10 */
    unsigned timeout_s;            /* whole request; 0 = 30 */
    int allow_http;                /* plain http:// too (tests only) */
    /* Polled during transfers; a non-zero answer aborts the request. */
    int (*interrupted)(void *ctx);
    void *interrupt_ctx;
} sm_pl_http_config;

typedef struct sm_pl_http_curl sm_pl_http_curl;

sm_status sm_pl_http_curl_new(const sm_pl_http_config *cfg, sm_pl_http_curl **out, sm_error *err);
/* An sm_pl_http_fn; ctx is the sm_pl_http_curl. */
sm_status sm_pl_http_curl_perform(void *ctx, const sm_pl_http_request *rq,
                                  sm_pl_http_response *rs, sm_error *err);
void sm_pl_http_curl_free(sm_pl_http_curl *c);

#endif
