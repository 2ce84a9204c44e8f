/* c2sp.org/chunked-encryption ("Cobblestone").
 *
 * Message = salt(24) || commitment(32) || chunk_0 || ... || chunk_n, each
 * chunk AEAD(key, base_nonce XOR index, plaintext <= 16 KiB) with a 16-byte
 * tag; the final chunk is always shorter than 16 KiB (possibly empty).
 * key || base_nonce || commitment = HKDF-Expand(SHA-512, prk = input key,
 *     info = "c2sp.org/chunked-encryption@v1+" || aead || 0x00 || salt || context).
 *
 * Offsets seen by the callbacks here are relative to the first salt byte. */
#ifndef SM_CHUNKED_H
#define SM_CHUNKED_H

#include <stddef.h>
#include <stdint.h>

#include "sm_error.h"
#include "sm_io.h"

#define SM_CHUNK_PLAIN_SIZE 16384u
#define SM_CHUNK_TAG_SIZE 16u
#define SM_CHUNK_CIPHER_SIZE (SM_CHUNK_PLAIN_SIZE + SM_CHUNK_TAG_SIZE)
#define SM_CHUNKED_SALT_SIZE 24u
#define SM_CHUNKED_COMMITMENT_SIZE 32u
#define SM_CHUNKED_PREFIX_SIZE (SM_CHUNKED_SALT_SIZE + SM_CHUNKED_COMMITMENT_SIZE)
#define SM_CHUNKED_NONCE_SIZE 12u
/* The spec allows 2^38 chunks; callers must not exceed it. */
#define SM_CHUNKED_MAX_CHUNKS (UINT64_C(1) << 38)
/* Longest plaintext that fits in 2^38 chunks (the last one short): 2^52 - 1. */
#define SM_CHUNKED_MAX_PLAIN (SM_CHUNKED_MAX_CHUNKS * SM_CHUNK_PLAIN_SIZE - 1)

typedef enum sm_cobblestone {
    SM_COBBLESTONE_128, /* AEAD_AES_128_GCM, SHA-512 */
    SM_COBBLESTONE_256  /* AEAD_AES_256_GCM, SHA-512: what .smc uses */
} sm_cobblestone;

/* Size of the input key for a suite (16 or 32). */
size_t sm_cobblestone_key_size(sm_cobblestone suite);

/* Ciphertext length (prefix included) of a plaintext of plain_len bytes;
 * UINT64_MAX when plain_len > SM_CHUNKED_MAX_PLAIN. */
uint64_t sm_chunked_ciphertext_size(uint64_t plain_len);
/* Number of chunks (>= 1) for a plaintext length. */
uint64_t sm_chunked_chunk_count(uint64_t plain_len);
/* Plaintext length implied by a ciphertext length; SM_ERR_TRUNCATED or
 * SM_ERR_FORMAT when no valid message has that length. */
sm_status sm_chunked_plaintext_size(uint64_t cipher_len, uint64_t *plain_len, sm_error *err);

/* Per-message keys: AEAD key schedule plus base nonce, both in secure memory. */
typedef struct sm_chunked_keys sm_chunked_keys;

/* Derives keys from an input key, salt and context, and writes the expected
 * commitment. SM_ERR_KEY when input_key_len is not the suite's key size. */
sm_status sm_chunked_keys_derive(sm_cobblestone suite, const uint8_t *input_key, size_t input_key_len,
                                 const uint8_t salt[SM_CHUNKED_SALT_SIZE], const uint8_t *context,
                                 size_t context_len, uint8_t commitment[SM_CHUNKED_COMMITMENT_SIZE],
                                 sm_chunked_keys **out, sm_error *err);
/* Raw mode (hazmat, for tests and higher-level protocols): key and nonce given.
 * The *_raw constructors below take ownership of keys_taken, also when they fail. */
sm_status sm_chunked_keys_raw(sm_cobblestone suite, const uint8_t *aead_key, size_t aead_key_len,
                              const uint8_t base_nonce[SM_CHUNKED_NONCE_SIZE],
                              sm_chunked_keys **out, sm_error *err);
void sm_chunked_keys_free(sm_chunked_keys *keys);

/* One chunk. seal: out gets plain_len + 16 bytes. open: on failure the
 * plaintext buffer is wiped and SM_ERR_AUTH returned. */
sm_status sm_chunked_seal_chunk(sm_chunked_keys *keys, uint64_t index, const uint8_t *plain,
                                size_t plain_len, uint8_t *out, sm_error *err);
sm_status sm_chunked_open_chunk(sm_chunked_keys *keys, uint64_t index, const uint8_t *cipher,
                                size_t cipher_len, uint8_t *plain_out, sm_error *err);

/* --- Streaming encryption (push, constant memory) --------------------------- */
typedef struct sm_chunked_writer sm_chunked_writer;

/* Writes salt and commitment through write_fn immediately. salt may be NULL
 * (random, the normal case) or given (tests only). */
sm_status sm_chunked_writer_new(sm_cobblestone suite, const uint8_t *input_key, size_t input_key_len,
                                const uint8_t *context, size_t context_len,
                                const uint8_t *salt_or_null, sm_write_fn write_fn, void *write_ctx,
                                sm_chunked_writer **out, sm_error *err);
/* Raw mode writer: no prefix is written. */
sm_status sm_chunked_writer_new_raw(sm_chunked_keys *keys_taken, sm_write_fn write_fn,
                                    void *write_ctx, sm_chunked_writer **out, sm_error *err);
sm_status sm_chunked_writer_write(sm_chunked_writer *w, const uint8_t *data, size_t len,
                                  sm_error *err);
/* Emits the final short (possibly empty) chunk. */
sm_status sm_chunked_writer_finish(sm_chunked_writer *w, sm_error *err);
uint64_t sm_chunked_writer_plain_bytes(const sm_chunked_writer *w);
void sm_chunked_writer_free(sm_chunked_writer *w);

/* --- Streaming decryption (pull) ------------------------------------------- */
typedef struct sm_chunked_reader sm_chunked_reader;

/* Reads and checks the 56-byte prefix (commitment) before returning. */
sm_status sm_chunked_reader_new(sm_cobblestone suite, const uint8_t *input_key, size_t input_key_len,
                                const uint8_t *context, size_t context_len, sm_read_fn read_fn,
                                void *read_ctx, sm_chunked_reader **out, sm_error *err);
sm_status sm_chunked_reader_new_raw(sm_chunked_keys *keys_taken, sm_read_fn read_fn,
                                    void *read_ctx, sm_chunked_reader **out, sm_error *err);
/* Optional, before the first read: the caller knows the plaintext length
 * (e.g. from an authenticated header). The reader then reports truncation
 * and trailing data as such, before trying to open the chunk concerned. */
sm_status sm_chunked_reader_expect_length(sm_chunked_reader *r, uint64_t plain_len, sm_error *err);
/* Returns only authenticated plaintext, filling buf across chunks. *got == 0
 * with SM_OK means the end of the message was authenticated. When a chunk
 * fails after others were copied in the same call, those bytes are returned
 * with SM_OK and the error comes with the next call; the failed chunk's
 * bytes never reach buf. Any error is sticky: every later call returns it
 * again. len == 0 is SM_ERR_ARG (not sticky). */
sm_status sm_chunked_reader_read(sm_chunked_reader *r, uint8_t *buf, size_t len, size_t *got,
                                 sm_error *err);
void sm_chunked_reader_free(sm_chunked_reader *r);

/* --- Random access decryption ---------------------------------------------- */
typedef struct sm_chunked_ra sm_chunked_ra;

/* cipher_len is the total message length (prefix included); it must be a
 * valid Cobblestone length. Reads and checks the prefix before returning.
 * cache_chunks decrypted chunks are kept (0 = default of 4, at most 256). */
sm_status sm_chunked_ra_new(sm_cobblestone suite, const uint8_t *input_key, size_t input_key_len,
                            const uint8_t *context, size_t context_len, sm_read_at_fn read_at,
                            void *read_ctx, uint64_t cipher_len, unsigned cache_chunks,
                            sm_chunked_ra **out, sm_error *err);
/* Raw mode: no prefix, so offsets and cipher_len start at chunk 0. */
sm_status sm_chunked_ra_new_raw(sm_chunked_keys *keys_taken, sm_read_at_fn read_at, void *read_ctx,
                                uint64_t cipher_len, unsigned cache_chunks, sm_chunked_ra **out,
                                sm_error *err);
/* Plaintext size implied by cipher_len; authenticated only after
 * sm_chunked_ra_verify_length() or a read of the final chunk. */
uint64_t sm_chunked_ra_size(const sm_chunked_ra *ra);
/* Reads up to len bytes at plaintext offset; *got < len only at the end.
 * Fetches and authenticates only the chunks touched; a read that reaches
 * past the end also authenticates the final chunk, so a short read is a
 * trusted end of message. On error *got is 0 and
 * whatever it wrote to buf is wiped. Errors are sticky. */
sm_status sm_chunked_ra_read(sm_chunked_ra *ra, uint64_t offset, uint8_t *buf, size_t len,
                             size_t *got, sm_error *err);
/* Authenticates the message length by decrypting the final chunk. */
sm_status sm_chunked_ra_verify_length(sm_chunked_ra *ra, sm_error *err);
void sm_chunked_ra_free(sm_chunked_ra *ra);

#endif
