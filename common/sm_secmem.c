#include "config.h"

#include <pthread.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "sm_secmem.h"

/* 128 KiB is plenty: a process holds a handful of 32-byte keys and a few
 * derived-key schedules at once. Must be a power of two for OpenSSL. */
#define SM_SECURE_HEAP_SIZE (128 * 1024)
#define SM_SECURE_HEAP_MIN 32

static pthread_once_t secmem_once = PTHREAD_ONCE_INIT;
static int secmem_locked;

static void secmem_setup(void)
{
    if (CRYPTO_secure_malloc_initialized()) {
        secmem_locked = 1;
        return;
    }
    secmem_locked = CRYPTO_secure_malloc_init(SM_SECURE_HEAP_SIZE, SM_SECURE_HEAP_MIN) == 1;
}

int sm_secmem_init(void)
{
    pthread_once(&secmem_once, secmem_setup);
    return secmem_locked;
}

void *sm_secure_alloc(size_t n)
{
    sm_secmem_init();
    /* The normal heap is used only when no secure heap could be set up; once
     * it exists, a secret that does not fit fails (NULL) rather than landing
     * silently in unlocked memory. */
    return OPENSSL_secure_zalloc(n == 0 ? 1 : n);
}

void sm_secure_free(void *p, size_t n)
{
    if (p != NULL)
        OPENSSL_secure_clear_free(p, n == 0 ? 1 : n);
}

void sm_wipe(void *p, size_t n)
{
    if (p != NULL && n > 0)
        OPENSSL_cleanse(p, n);
}

int sm_ct_equal(const void *a, const void *b, size_t n)
{
    return CRYPTO_memcmp(a, b, n) == 0;
}

sm_secret *sm_secret_new(size_t len)
{
    sm_secret *s = OPENSSL_zalloc(sizeof(*s));
    if (s == NULL)
        return NULL;
    s->bytes = sm_secure_alloc(len);
    if (s->bytes == NULL) {
        OPENSSL_free(s);
        return NULL;
    }
    s->len = len;
    return s;
}

sm_secret *sm_secret_from(const uint8_t *bytes, size_t len)
{
    sm_secret *s = sm_secret_new(len);
    if (s != NULL && len > 0)
        memcpy(s->bytes, bytes, len);
    return s;
}

sm_secret *sm_secret_random(size_t len)
{
    sm_secret *s = sm_secret_new(len);
    if (s != NULL && RAND_bytes(s->bytes, (int)len) != 1) {
        sm_secret_free(s);
        return NULL;
    }
    return s;
}

void sm_secret_free(sm_secret *s)
{
    if (s == NULL)
        return;
    sm_secure_free(s->bytes, s->len);
    OPENSSL_free(s);
}
