/* The key server's JWK set as seen by a verifier (the media store): fetched
 * over HTTPS on first use, used for `lifetime` seconds, fetched again when
 * a token names an unknown kid (the key server rotated its keys) — but
 * never more often than once per `min_refresh` seconds, so a flood of
 * tokens with made-up kids cannot turn into a flood of fetches. When a
 * fetch fails the previous set stays in use; with no set at all, the
 * answer is SM_ERR_UNAVAILABLE. Thread-safe; no lock is held during a
 * fetch, and concurrent callers share one fetch. */
#ifndef SM_JWKS_CACHE_H
#define SM_JWKS_CACHE_H

#include <stdint.h>

#include "sm_error.h"
#include "sm_https.h"
#include "sm_jose.h"

typedef struct sm_jwks_cache sm_jwks_cache;

/* url, tls blobs are copied. */
sm_status sm_jwks_cache_new(const char *url, const sm_https_tls *tls, int64_t lifetime_s,
                            int64_t min_refresh_s, unsigned timeout_ms, sm_jwks_cache **out,
                            sm_error *err);
void sm_jwks_cache_free(sm_jwks_cache *c);

/* Runs fn with the current key set. When fn returns SM_ERR_KEY (no key with
 * the token's kid), refreshes the set (rate limit permitting) and runs fn
 * once more. Returns fn's status, or the fetch failure when no set could
 * be had (SM_ERR_UNAVAILABLE). */
typedef sm_status (*sm_jwks_use_fn)(const sm_jwks *keys, void *arg, sm_error *err);
sm_status sm_jwks_cache_use(sm_jwks_cache *c, sm_jwks_use_fn fn, void *arg, sm_error *err);

typedef struct sm_jwks_cache_stats {
    uint64_t fetches;        /* attempts */
    uint64_t fetch_failures;
    uint64_t refused_refreshes; /* unknown kid, refresh skipped by the rate limit */
    char last_error[SM_ERROR_MESSAGE_MAX];
} sm_jwks_cache_stats;

void sm_jwks_cache_get_stats(sm_jwks_cache *c, sm_jwks_cache_stats *out);

#endif
