/* Memory for secrets (media keys, derived keys, private key bytes).
 *
 * Backed by OpenSSL's secure heap when it could be set up (mlock'ed, excluded
 * from core dumps, guard pages), otherwise by the normal heap; in both cases
 * the bytes are wiped before they are released. */
#ifndef SM_SECMEM_H
#define SM_SECMEM_H

#include <stddef.h>
#include <stdint.h>

/* Sets up the process-wide secure heap once (idempotent, thread-safe).
 * Returns 1 when secrets will live in locked memory, 0 when the secure heap
 * is unavailable (e.g. RLIMIT_MEMLOCK too low) and the heap is used.
 * Locked pages are not inherited by fork(): servers call this in each child
 * (httpd's child_init), not before forking. */
int sm_secmem_init(void);

/* Zeroed secret buffer of n bytes, or NULL when out of memory. */
void *sm_secure_alloc(size_t n);

/* Wipes n bytes at p and releases them; p may be NULL. */
void sm_secure_free(void *p, size_t n);

/* Wipes n bytes in place (not optimised away). */
void sm_wipe(void *p, size_t n);

/* Constant-time comparison: 1 when equal, 0 otherwise. */
int sm_ct_equal(const void *a, const void *b, size_t n);

/* A fixed-size secret: bytes live in secure memory. */
typedef struct sm_secret {
    uint8_t *bytes;
    size_t len;
} sm_secret;

/* Allocates a zeroed secret of len bytes; NULL when out of memory. */
sm_secret *sm_secret_new(size_t len);
/* Copies len bytes into a new secret; the caller still wipes its source. */
sm_secret *sm_secret_from(const uint8_t *bytes, size_t len);
/* Fills a new secret from the CSPRNG; NULL on failure. */
sm_secret *sm_secret_random(size_t len);
void sm_secret_free(sm_secret *s);

#endif
