/* A small HTTPS client over libcurl for server-to-server calls (the media
 * store fetching the key server's JWKS and posting delivery-complete).
 * https:// only, no redirects, certificate and host name verified against
 * the given CAs, optional client certificate, bounded answers and times.
 * Keys and certificates are passed as PEM bytes, so files can be read at
 * startup (as root) and the worker processes never open them. */
#ifndef SM_HTTPS_H
#define SM_HTTPS_H

#include <stddef.h>

#include "sm_error.h"

typedef struct sm_https_tls {
    const char *ca_pem;   /* trusted CA certificates; NULL = system store */
    size_t ca_len;
    const char *cert_pem; /* client certificate, or NULL */
    size_t cert_len;
    const char *key_pem;  /* its private key */
    size_t key_len;
} sm_https_tls;

typedef struct sm_https_response {
    long status;
    char *body; /* NUL-terminated, malloc'ed */
    size_t len;
} sm_https_response;

/* Initialises libcurl once per process (thread-safe). */
sm_status sm_https_global_init(sm_error *err);

/* Sends one request. body may be NULL. The answer is refused when larger
 * than max_response bytes. SM_ERR_UNAVAILABLE when the server cannot be
 * reached, the TLS handshake fails or the time runs out (the message says
 * which); any HTTP status is SM_OK with out->status set. */
sm_status sm_https_request(const char *method, const char *url, const sm_https_tls *tls,
                           const char *content_type, const char *body, size_t body_len,
                           size_t max_response, unsigned timeout_ms, sm_https_response *out,
                           sm_error *err);

void sm_https_response_free(sm_https_response *r);

#endif
