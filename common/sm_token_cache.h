/* A small cache of tokens that already passed verification, so that a
 * player fetching a container in many Range requests with one delivery
 * token pays for one ECDSA verification, not one per request.
 *
 * Entries are keyed by the SHA-256 of the whole compact token: only the
 * very same string hits, so nothing can be forged through the cache. An
 * entry lives until the token's exp or the cache's max_age, whichever
 * comes first (max_age bounds how long a token signed by a key the issuer
 * since withdrew from its JWKS keeps working). Fixed size, thread-safe;
 * a full slot is simply overwritten. */
#ifndef SM_TOKEN_CACHE_H
#define SM_TOKEN_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "sm_error.h"

typedef struct sm_token_cache sm_token_cache;

/* slots: number of entries (rounded up to a power of two); value_size: the
 * bytes stored per token (e.g. its decoded claims). */
sm_status sm_token_cache_new(size_t slots, size_t value_size, int64_t max_age_s,
                             sm_token_cache **out, sm_error *err);
void sm_token_cache_free(sm_token_cache *c);

/* 1 and value copied out when token is cached and now < its expiry. */
int sm_token_cache_get(sm_token_cache *c, const char *token, size_t len, int64_t now,
                       void *value_out);

/* Remembers a verified token valid until exp (Unix seconds). */
void sm_token_cache_put(sm_token_cache *c, const char *token, size_t len, int64_t now,
                        int64_t exp, const void *value);

#endif
