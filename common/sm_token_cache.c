#include "config.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "sm_token_cache.h"

typedef struct slot {
    uint8_t digest[32];
    int64_t until; /* 0 = empty */
} slot;

struct sm_token_cache {
    size_t mask;
    size_t value_size;
    int64_t max_age;
    slot *slots;
    uint8_t *values;
    EVP_MD *sha256; /* fetched once: OpenSSL 3's implicit fetch per call is slow */
    pthread_mutex_t lock;
};

sm_status sm_token_cache_new(size_t slots, size_t value_size, int64_t max_age_s,
                             sm_token_cache **out, sm_error *err)
{
    *out = NULL;
    size_t n = 1;
    while (n < slots && n < ((size_t)1 << 20))
        n <<= 1;
    sm_token_cache *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return sm_error_set(err, SM_ERR_NOMEM, "out of memory");
    c->mask = n - 1;
    c->value_size = value_size;
    c->max_age = max_age_s;
    c->slots = calloc(n, sizeof(slot));
    c->values = calloc(n, value_size > 0 ? value_size : 1);
    c->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    if (c->slots == NULL || c->values == NULL || c->sha256 == NULL ||
        pthread_mutex_init(&c->lock, NULL) != 0) {
        EVP_MD_free(c->sha256);
        free(c->slots);
        free(c->values);
        free(c);
        return sm_error_set(err, SM_ERR_NOMEM, "out of memory");
    }
    *out = c;
    return SM_OK;
}

void sm_token_cache_free(sm_token_cache *c)
{
    if (c == NULL)
        return;
    pthread_mutex_destroy(&c->lock);
    EVP_MD_free(c->sha256);
    free(c->slots);
    free(c->values);
    free(c);
}

static int digest_of(const sm_token_cache *c, const char *token, size_t len, uint8_t out[32])
{
    unsigned int n = 0;
    return EVP_Digest(token, len, out, &n, c->sha256, NULL) == 1 && n == 32;
}

static size_t index_of(const sm_token_cache *c, const uint8_t digest[32])
{
    size_t h;
    memcpy(&h, digest, sizeof(h));
    return h & c->mask;
}

int sm_token_cache_get(sm_token_cache *c, const char *token, size_t len, int64_t now,
                       void *value_out)
{
    uint8_t d[32];
    if (c == NULL || !digest_of(c, token, len, d))
        return 0;
    size_t i = index_of(c, d);
    int hit = 0;
    pthread_mutex_lock(&c->lock);
    if (c->slots[i].until > now && memcmp(c->slots[i].digest, d, 32) == 0) {
        memcpy(value_out, c->values + i * c->value_size, c->value_size);
        hit = 1;
    }
    pthread_mutex_unlock(&c->lock);
    return hit;
}

void sm_token_cache_put(sm_token_cache *c, const char *token, size_t len, int64_t now,
                        int64_t exp, const void *value)
{
    uint8_t d[32];
    if (c == NULL || !digest_of(c, token, len, d))
        return;
    int64_t until = exp < now + c->max_age ? exp : now + c->max_age;
    if (until <= now)
        return;
    size_t i = index_of(c, d);
    pthread_mutex_lock(&c->lock);
    memcpy(c->slots[i].digest, d, 32);
    c->slots[i].until = until;
    memcpy(c->values + i * c->value_size, value, c->value_size);
    pthread_mutex_unlock(&c->lock);
}
