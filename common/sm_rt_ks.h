/* The retailer's client for the key server: HTTPS with the retailer's
 * client certificate, the key server checked against a CA, and kept-alive
 * connections (a small pool of libcurl handles per process, each keeping
 * its connection open between requests), so an order costs no TLS
 * handshake. Thread-safe. */
#ifndef SM_RT_KS_H
#define SM_RT_KS_H

#include <stddef.h>

#include "sm_error.h"
#include "sm_https.h"

typedef struct sm_rt_ks sm_rt_ks;

typedef struct sm_rt_ks_response {
    long status;
    char *body; /* NUL-terminated, malloc'ed */
    size_t len;
    char content_type[128]; /* "" when none */
} sm_rt_ks_response;

/* base_url: the key server's https base (its KeyServerIssuer); the PEM
 * blobs in tls are copied. */
sm_status sm_rt_ks_new(const char *base_url, const sm_https_tls *tls, unsigned timeout_ms,
                       sm_rt_ks **out, sm_error *err);
void sm_rt_ks_free(sm_rt_ks *ks);
const char *sm_rt_ks_base_url(const sm_rt_ks *ks);

/* method + base_url + path; body (JSON) may be NULL; dpop (may be NULL)
 * is sent as the DPoP header. SM_ERR_UNAVAILABLE when the key server
 * cannot be reached or did not answer in time (outcome unknown); any HTTP
 * status is SM_OK. */
sm_status sm_rt_ks_call(sm_rt_ks *ks, const char *method, const char *path, const char *body,
                        size_t body_len, const char *dpop, size_t max_response,
                        sm_rt_ks_response *out, sm_error *err);
void sm_rt_ks_response_free(sm_rt_ks_response *r);

#endif
