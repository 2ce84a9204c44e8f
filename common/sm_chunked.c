#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#include "sm_chunked.h"
#include "sm_crypto.h"
#include "sm_secmem.h"

#define INFO_LABEL "c2sp.org/chunked-encryption@v1+"
#define INFO_LABEL_LEN (sizeof(INFO_LABEL) - 1)
#define MAX_KEY_SIZE 32u
#define DEFAULT_CACHE_CHUNKS 4u
/* Each cache slot holds 16 KiB of plaintext; 256 slots is 4 MiB. */
#define MAX_CACHE_CHUNKS 256u

struct sm_chunked_keys {
    sm_cobblestone suite;
    sm_aead *aead;
    uint8_t base_nonce[SM_CHUNKED_NONCE_SIZE];
};

/* ------------------------------------------------------------------------ */
/* Suites and geometry                                                       */

static int suite_is_known(sm_cobblestone suite)
{
    return suite == SM_COBBLESTONE_128 || suite == SM_COBBLESTONE_256;
}

size_t sm_cobblestone_key_size(sm_cobblestone suite)
{
    switch (suite) {
    case SM_COBBLESTONE_128: return 16;
    case SM_COBBLESTONE_256: return 32;
    }
    return 0;
}

static const char *suite_aead_name(sm_cobblestone suite)
{
    return suite == SM_COBBLESTONE_128 ? "AEAD_AES_128_GCM" : "AEAD_AES_256_GCM";
}

static const char *suite_display_name(sm_cobblestone suite)
{
    return suite == SM_COBBLESTONE_128 ? "Cobblestone-128" : "Cobblestone-256";
}

uint64_t sm_chunked_chunk_count(uint64_t plain_len)
{
    /* The final chunk is always short, so a multiple of 16 KiB adds an empty one. */
    return plain_len / SM_CHUNK_PLAIN_SIZE + 1;
}

/* Encrypted chunks of a plaintext length, without the 56-byte prefix. */
static uint64_t chunks_size(uint64_t plain_len)
{
    if (plain_len > SM_CHUNKED_MAX_PLAIN)
        return UINT64_MAX;
    return plain_len / SM_CHUNK_PLAIN_SIZE * SM_CHUNK_CIPHER_SIZE +
           plain_len % SM_CHUNK_PLAIN_SIZE + SM_CHUNK_TAG_SIZE;
}

uint64_t sm_chunked_ciphertext_size(uint64_t plain_len)
{
    uint64_t body = chunks_size(plain_len);
    return body == UINT64_MAX ? UINT64_MAX : SM_CHUNKED_PREFIX_SIZE + body;
}

/* Plaintext length for a chunk sequence (no prefix) of body_len bytes. */
static sm_status body_plaintext_size(uint64_t body_len, uint64_t *plain_len, sm_error *err)
{
    uint64_t full_chunks = body_len / SM_CHUNK_CIPHER_SIZE;
    uint64_t final_chunk = body_len % SM_CHUNK_CIPHER_SIZE;
    *plain_len = 0;
    if (final_chunk == 0)
        return sm_error_set(err, SM_ERR_TRUNCATED,
                            "the encrypted data ends at a chunk boundary, so its short final chunk "
                            "is missing: it was truncated");
    if (final_chunk < SM_CHUNK_TAG_SIZE)
        return sm_error_set(err, SM_ERR_FORMAT,
                            "the encrypted data has an impossible length (its final chunk would be "
                            "%u bytes, shorter than a %u-byte tag): it was truncated or has extra "
                            "bytes at the end",
                            (unsigned)final_chunk, SM_CHUNK_TAG_SIZE);
    if (full_chunks >= SM_CHUNKED_MAX_CHUNKS)
        return sm_error_set(err, SM_ERR_TOO_LARGE,
                            "the encrypted data has more than 2^38 chunks, the format's limit");
    *plain_len = full_chunks * SM_CHUNK_PLAIN_SIZE + (final_chunk - SM_CHUNK_TAG_SIZE);
    return SM_OK;
}

sm_status sm_chunked_plaintext_size(uint64_t cipher_len, uint64_t *plain_len, sm_error *err)
{
    *plain_len = 0;
    if (cipher_len < SM_CHUNKED_PREFIX_SIZE)
        return sm_error_set(err, SM_ERR_TRUNCATED,
                            "the encrypted data is %llu bytes, shorter than its %u-byte salt and "
                            "commitment: it was truncated",
                            (unsigned long long)cipher_len, SM_CHUNKED_PREFIX_SIZE);
    return body_plaintext_size(cipher_len - SM_CHUNKED_PREFIX_SIZE, plain_len, err);
}

/* Plaintext bytes in chunk `index` of a message of plain_len bytes. */
static size_t chunk_plain_len(uint64_t plain_len, uint64_t index)
{
    uint64_t full_chunks = plain_len / SM_CHUNK_PLAIN_SIZE;
    return index < full_chunks ? SM_CHUNK_PLAIN_SIZE : (size_t)(plain_len % SM_CHUNK_PLAIN_SIZE);
}

/* ------------------------------------------------------------------------ */
/* Keys                                                                      */

static sm_status check_key_size(sm_cobblestone suite, size_t key_len, const char *what,
                                sm_error *err)
{
    if (!suite_is_known(suite))
        return sm_error_set(err, SM_ERR_ARG, "unknown Cobblestone suite %d", (int)suite);
    if (key_len != sm_cobblestone_key_size(suite))
        return sm_error_set(err, SM_ERR_KEY, "%s is %zu bytes; %s needs exactly %zu bytes", what,
                            key_len, suite_display_name(suite), sm_cobblestone_key_size(suite));
    return SM_OK;
}

static sm_status keys_from(sm_cobblestone suite, const uint8_t *aead_key,
                           const uint8_t base_nonce[SM_CHUNKED_NONCE_SIZE],
                           sm_chunked_keys **out, sm_error *err)
{
    sm_chunked_keys *keys = sm_secure_alloc(sizeof(*keys));
    if (keys == NULL)
        return sm_error_set(err, SM_ERR_NOMEM, "out of secure memory for message keys");
    sm_status st = sm_aead_new(aead_key, sm_cobblestone_key_size(suite), &keys->aead, err);
    if (st != SM_OK) {
        sm_secure_free(keys, sizeof(*keys));
        return st;
    }
    keys->suite = suite;
    memcpy(keys->base_nonce, base_nonce, SM_CHUNKED_NONCE_SIZE);
    *out = keys;
    return SM_OK;
}

sm_status sm_chunked_keys_derive(sm_cobblestone suite, const uint8_t *input_key, size_t input_key_len,
                                 const uint8_t salt[SM_CHUNKED_SALT_SIZE], const uint8_t *context,
                                 size_t context_len, uint8_t commitment[SM_CHUNKED_COMMITMENT_SIZE],
                                 sm_chunked_keys **out, sm_error *err)
{
    *out = NULL;
    sm_status st = check_key_size(suite, input_key_len, "the key", err);
    if (st != SM_OK)
        return st;
    const char *aead_name = suite_aead_name(suite);
    size_t aead_name_len = strlen(aead_name);
    size_t fixed_len = INFO_LABEL_LEN + aead_name_len + 1 + SM_CHUNKED_SALT_SIZE;
    if (context_len > SIZE_MAX - fixed_len)
        return sm_error_set(err, SM_ERR_TOO_LARGE, "the encryption context is too large");

    /* info = label || aead name || 0x00 || salt || context. Nothing secret. */
    uint8_t *info = malloc(fixed_len + context_len);
    if (info == NULL)
        return sm_error_set(err, SM_ERR_NOMEM, "out of memory deriving message keys");
    uint8_t *p = info;
    memcpy(p, INFO_LABEL, INFO_LABEL_LEN);
    p += INFO_LABEL_LEN;
    memcpy(p, aead_name, aead_name_len);
    p += aead_name_len;
    *p++ = 0x00;
    memcpy(p, salt, SM_CHUNKED_SALT_SIZE);
    p += SM_CHUNKED_SALT_SIZE;
    if (context_len > 0)
        memcpy(p, context, context_len);

    size_t key_size = sm_cobblestone_key_size(suite);
    size_t okm_len = key_size + SM_CHUNKED_NONCE_SIZE + SM_CHUNKED_COMMITMENT_SIZE;
    uint8_t *okm = sm_secure_alloc(okm_len);
    if (okm == NULL) {
        free(info);
        return sm_error_set(err, SM_ERR_NOMEM, "out of secure memory deriving message keys");
    }
    st = sm_hkdf("SHA512", SM_HKDF_EXPAND_ONLY, NULL, 0, input_key, input_key_len, info,
                 fixed_len + context_len, okm, okm_len, err);
    free(info);
    if (st == SM_OK)
        st = keys_from(suite, okm, okm + key_size, out, err);
    if (st == SM_OK)
        memcpy(commitment, okm + key_size + SM_CHUNKED_NONCE_SIZE, SM_CHUNKED_COMMITMENT_SIZE);
    sm_secure_free(okm, okm_len);
    return st;
}

sm_status sm_chunked_keys_raw(sm_cobblestone suite, const uint8_t *aead_key, size_t aead_key_len,
                              const uint8_t base_nonce[SM_CHUNKED_NONCE_SIZE],
                              sm_chunked_keys **out, sm_error *err)
{
    *out = NULL;
    sm_status st = check_key_size(suite, aead_key_len, "the AEAD key", err);
    if (st != SM_OK)
        return st;
    return keys_from(suite, aead_key, base_nonce, out, err);
}

void sm_chunked_keys_free(sm_chunked_keys *keys)
{
    if (keys == NULL)
        return;
    sm_aead_free(keys->aead);
    sm_secure_free(keys, sizeof(*keys));
}

/* nonce = base_nonce XOR index as a 96-bit big-endian integer. */
static void chunk_nonce(const sm_chunked_keys *keys, uint64_t index,
                        uint8_t nonce[SM_CHUNKED_NONCE_SIZE])
{
    memcpy(nonce, keys->base_nonce, SM_CHUNKED_NONCE_SIZE);
    for (unsigned i = 0; i < 8; i++)
        nonce[SM_CHUNKED_NONCE_SIZE - 1 - i] ^= (uint8_t)(index >> (8 * i));
}

sm_status sm_chunked_seal_chunk(sm_chunked_keys *keys, uint64_t index, const uint8_t *plain,
                                size_t plain_len, uint8_t *out, sm_error *err)
{
    if (index >= SM_CHUNKED_MAX_CHUNKS)
        return sm_error_set(err, SM_ERR_TOO_LARGE,
                            "chunk index %llu is beyond the format's limit of 2^38 chunks",
                            (unsigned long long)index);
    if (plain_len > SM_CHUNK_PLAIN_SIZE)
        return sm_error_set(err, SM_ERR_ARG, "a chunk holds at most %u bytes, not %zu",
                            SM_CHUNK_PLAIN_SIZE, plain_len);
    uint8_t nonce[SM_CHUNKED_NONCE_SIZE];
    chunk_nonce(keys, index, nonce);
    sm_status st = sm_aead_seal(keys->aead, nonce, sizeof(nonce), NULL, 0, plain, plain_len, out,
                                out + plain_len, SM_CHUNK_TAG_SIZE, err);
    sm_wipe(nonce, sizeof(nonce));
    return st;
}

sm_status sm_chunked_open_chunk(sm_chunked_keys *keys, uint64_t index, const uint8_t *cipher,
                                size_t cipher_len, uint8_t *plain_out, sm_error *err)
{
    if (index >= SM_CHUNKED_MAX_CHUNKS)
        return sm_error_set(err, SM_ERR_TOO_LARGE,
                            "chunk index %llu is beyond the format's limit of 2^38 chunks",
                            (unsigned long long)index);
    if (cipher_len < SM_CHUNK_TAG_SIZE || cipher_len > SM_CHUNK_CIPHER_SIZE)
        return sm_error_set(err, SM_ERR_FORMAT,
                            "chunk %llu is %zu bytes; an encrypted chunk has %u to %u bytes",
                            (unsigned long long)index, cipher_len, SM_CHUNK_TAG_SIZE,
                            SM_CHUNK_CIPHER_SIZE);
    size_t plain_len = cipher_len - SM_CHUNK_TAG_SIZE;
    uint8_t nonce[SM_CHUNKED_NONCE_SIZE];
    chunk_nonce(keys, index, nonce);
    sm_status st = sm_aead_open(keys->aead, nonce, sizeof(nonce), NULL, 0, cipher, plain_len,
                                cipher + plain_len, SM_CHUNK_TAG_SIZE, plain_out, err);
    sm_wipe(nonce, sizeof(nonce));
    if (st == SM_ERR_AUTH)
        return sm_error_set(err, SM_ERR_AUTH,
                            "chunk %llu failed authentication: the file is corrupted or was "
                            "tampered with (chunks modified, reordered, truncated or appended); "
                            "fetch it again from a trusted source",
                            (unsigned long long)index);
    return st;
}

/* ------------------------------------------------------------------------ */
/* Shared helpers                                                            */

static sm_status check_commitment(const uint8_t expected[SM_CHUNKED_COMMITMENT_SIZE],
                                  const uint8_t found[SM_CHUNKED_COMMITMENT_SIZE], sm_error *err)
{
    if (!sm_ct_equal(expected, found, SM_CHUNKED_COMMITMENT_SIZE))
        return sm_error_set(err, SM_ERR_AUTH,
                            "the key commitment does not match: the key is wrong, or the header, "
                            "salt or commitment was modified (corrupted or tampered with)");
    return SM_OK;
}

/* Derives keys from a 56-byte prefix and checks its commitment. */
static sm_status keys_from_prefix(sm_cobblestone suite, const uint8_t *input_key,
                                  size_t input_key_len, const uint8_t *context, size_t context_len,
                                  const uint8_t prefix[SM_CHUNKED_PREFIX_SIZE],
                                  sm_chunked_keys **out, sm_error *err)
{
    uint8_t expected[SM_CHUNKED_COMMITMENT_SIZE];
    sm_chunked_keys *keys = NULL;
    sm_status st = sm_chunked_keys_derive(suite, input_key, input_key_len, prefix, context,
                                          context_len, expected, &keys, err);
    if (st == SM_OK)
        st = check_commitment(expected, prefix + SM_CHUNKED_SALT_SIZE, err);
    if (st != SM_OK) {
        sm_chunked_keys_free(keys);
        keys = NULL;
    }
    *out = keys;
    return st;
}

/* ------------------------------------------------------------------------ */
/* Streaming writer                                                          */

struct sm_chunked_writer {
    sm_chunked_keys *keys;
    sm_write_fn write_fn;
    void *write_ctx;
    /* Plaintext gathers here and is sealed in place, tag appended. */
    uint8_t *buf;
    size_t buffered;
    uint64_t chunk_index;
    uint64_t plain_bytes;
    int finished;
    sm_error failure; /* status != SM_OK once the writer has failed */
};

static sm_status writer_create(sm_chunked_keys *keys_taken, sm_write_fn write_fn, void *write_ctx,
                               sm_chunked_writer **out, sm_error *err)
{
    sm_chunked_writer *w = calloc(1, sizeof(*w));
    uint8_t *buf = malloc(SM_CHUNK_CIPHER_SIZE);
    if (w == NULL || buf == NULL) {
        free(w);
        free(buf);
        sm_chunked_keys_free(keys_taken);
        return sm_error_set(err, SM_ERR_NOMEM, "out of memory creating an encryption stream");
    }
    w->keys = keys_taken;
    w->write_fn = write_fn;
    w->write_ctx = write_ctx;
    w->buf = buf;
    *out = w;
    return SM_OK;
}

sm_status sm_chunked_writer_new(sm_cobblestone suite, const uint8_t *input_key, size_t input_key_len,
                                const uint8_t *context, size_t context_len,
                                const uint8_t *salt_or_null, sm_write_fn write_fn, void *write_ctx,
                                sm_chunked_writer **out, sm_error *err)
{
    uint8_t prefix[SM_CHUNKED_PREFIX_SIZE];
    sm_chunked_keys *keys = NULL;
    sm_chunked_writer *w = NULL;
    *out = NULL;
    sm_status st = check_key_size(suite, input_key_len, "the key", err);
    if (st != SM_OK)
        return st;
    if (salt_or_null != NULL)
        memcpy(prefix, salt_or_null, SM_CHUNKED_SALT_SIZE);
    else if (RAND_bytes(prefix, SM_CHUNKED_SALT_SIZE) != 1)
        return sm_error_set(err, SM_ERR_CRYPTO, "the random number generator failed");
    st = sm_chunked_keys_derive(suite, input_key, input_key_len, prefix, context, context_len,
                                prefix + SM_CHUNKED_SALT_SIZE, &keys, err);
    if (st != SM_OK)
        return st;
    st = writer_create(keys, write_fn, write_ctx, &w, err);
    if (st != SM_OK)
        return st;
    st = write_fn(write_ctx, prefix, sizeof(prefix), err);
    if (st != SM_OK) {
        sm_chunked_writer_free(w);
        return st;
    }
    *out = w;
    return SM_OK;
}

sm_status sm_chunked_writer_new_raw(sm_chunked_keys *keys_taken, sm_write_fn write_fn,
                                    void *write_ctx, sm_chunked_writer **out, sm_error *err)
{
    *out = NULL;
    if (keys_taken == NULL)
        return sm_error_set(err, SM_ERR_ARG, "raw-mode writer needs keys");
    return writer_create(keys_taken, write_fn, write_ctx, out, err);
}

static sm_status writer_fail(sm_chunked_writer *w, sm_status st, const sm_error *cause,
                             sm_error *err)
{
    w->failure.status = st;
    if (cause != NULL && cause != &w->failure)
        memcpy(w->failure.message, cause->message, sizeof(w->failure.message));
    if (w->failure.message[0] == '\0')
        sm_error_set(&w->failure, st, "the output failed without saying why");
    if (err != NULL && err != &w->failure)
        *err = w->failure;
    return st;
}

static sm_status writer_check_usable(sm_chunked_writer *w, sm_error *err)
{
    if (w->failure.status != SM_OK) {
        if (err != NULL)
            *err = w->failure;
        return w->failure.status;
    }
    if (w->finished)
        return sm_error_set(err, SM_ERR_STATE, "the encryption stream is already finished");
    return SM_OK;
}

/* Seals plain_len bytes (from `plain`, or in place from w->buf) as chunk
 * w->chunk_index and writes it out. */
static sm_status writer_emit_chunk(sm_chunked_writer *w, const uint8_t *plain, size_t plain_len,
                                   sm_error *err)
{
    sm_error local = {SM_OK, ""}; /* callbacks may fail without filling it */
    sm_status st = sm_chunked_seal_chunk(w->keys, w->chunk_index, plain, plain_len, w->buf, &local);
    if (st == SM_OK)
        st = w->write_fn(w->write_ctx, w->buf, plain_len + SM_CHUNK_TAG_SIZE, &local);
    if (st != SM_OK)
        return writer_fail(w, st, &local, err);
    w->chunk_index++;
    return SM_OK;
}

sm_status sm_chunked_writer_write(sm_chunked_writer *w, const uint8_t *data, size_t len,
                                  sm_error *err)
{
    sm_status st = writer_check_usable(w, err);
    if (st != SM_OK)
        return st;
    while (len > 0) {
        /* A full chunk is never the final one, so it can go out at once. The
         * final chunk's index must stay below 2^38 too. */
        int chunk_will_fill = w->buffered + len >= SM_CHUNK_PLAIN_SIZE;
        if (chunk_will_fill && w->chunk_index + 1 >= SM_CHUNKED_MAX_CHUNKS) {
            sm_error local = {SM_OK, ""}; /* callbacks may fail without filling it */
            sm_error_set(&local, SM_ERR_TOO_LARGE,
                         "the plaintext exceeds the format's limit of 2^38 chunks (64 TiB)");
            return writer_fail(w, SM_ERR_TOO_LARGE, &local, err);
        }
        if (w->buffered == 0 && len >= SM_CHUNK_PLAIN_SIZE) {
            /* Aligned input: seal straight from the caller's buffer, no copy. */
            st = writer_emit_chunk(w, data, SM_CHUNK_PLAIN_SIZE, err);
            if (st != SM_OK)
                return st;
            data += SM_CHUNK_PLAIN_SIZE;
            len -= SM_CHUNK_PLAIN_SIZE;
            w->plain_bytes += SM_CHUNK_PLAIN_SIZE;
            continue;
        }
        size_t room = SM_CHUNK_PLAIN_SIZE - w->buffered;
        size_t take = len < room ? len : room;
        memcpy(w->buf + w->buffered, data, take);
        w->buffered += take;
        data += take;
        len -= take;
        w->plain_bytes += take;
        if (w->buffered == SM_CHUNK_PLAIN_SIZE) {
            st = writer_emit_chunk(w, w->buf, SM_CHUNK_PLAIN_SIZE, err);
            if (st != SM_OK)
                return st;
            w->buffered = 0;
        }
    }
    return SM_OK;
}

sm_status sm_chunked_writer_finish(sm_chunked_writer *w, sm_error *err)
{
    sm_status st = writer_check_usable(w, err);
    if (st != SM_OK)
        return st;
    st = writer_emit_chunk(w, w->buf, w->buffered, err);
    if (st != SM_OK)
        return st;
    w->buffered = 0;
    w->finished = 1;
    return SM_OK;
}

uint64_t sm_chunked_writer_plain_bytes(const sm_chunked_writer *w)
{
    return w->plain_bytes;
}

void sm_chunked_writer_free(sm_chunked_writer *w)
{
    if (w == NULL)
        return;
    sm_chunked_keys_free(w->keys);
    if (w->buf != NULL) {
        sm_wipe(w->buf, SM_CHUNK_CIPHER_SIZE);
        free(w->buf);
    }
    free(w);
}

/* ------------------------------------------------------------------------ */
/* Streaming reader                                                          */

/* One chunk plus one byte: the extra byte tells a full chunk (more follows)
 * from a final one without needing the total length. */
#define READER_WINDOW (SM_CHUNK_CIPHER_SIZE + 1)

struct sm_chunked_reader {
    sm_chunked_keys *keys;
    sm_read_fn read_fn;
    void *read_ctx;
    uint8_t *buf; /* READER_WINDOW bytes: ciphertext, then plaintext once opened in place */
    int has_lookahead;
    uint8_t lookahead; /* first byte of the next chunk, read ahead */
    size_t plain_pos, plain_len; /* authenticated plaintext waiting in buf */
    uint64_t chunk_index;
    int end_reached; /* the final chunk was authenticated */
    int length_known;
    uint64_t expected_plain_len;
    sm_error failure;
};

static sm_status reader_create(sm_chunked_keys *keys_taken, sm_read_fn read_fn, void *read_ctx,
                               sm_chunked_reader **out, sm_error *err)
{
    sm_chunked_reader *r = calloc(1, sizeof(*r));
    uint8_t *buf = malloc(READER_WINDOW);
    if (r == NULL || buf == NULL) {
        free(r);
        free(buf);
        sm_chunked_keys_free(keys_taken);
        return sm_error_set(err, SM_ERR_NOMEM, "out of memory creating a decryption stream");
    }
    r->keys = keys_taken;
    r->read_fn = read_fn;
    r->read_ctx = read_ctx;
    r->buf = buf;
    *out = r;
    return SM_OK;
}

sm_status sm_chunked_reader_new(sm_cobblestone suite, const uint8_t *input_key, size_t input_key_len,
                                const uint8_t *context, size_t context_len, sm_read_fn read_fn,
                                void *read_ctx, sm_chunked_reader **out, sm_error *err)
{
    uint8_t prefix[SM_CHUNKED_PREFIX_SIZE];
    size_t got = 0;
    sm_chunked_keys *keys = NULL;
    *out = NULL;
    /* A key of the wrong size is refused before any input is read. */
    sm_status st = check_key_size(suite, input_key_len, "the key", err);
    if (st != SM_OK)
        return st;
    st = sm_read_fully(read_fn, read_ctx, prefix, sizeof(prefix), &got, err);
    if (st != SM_OK)
        return st;
    if (got < sizeof(prefix))
        return sm_error_set(err, SM_ERR_TRUNCATED,
                            "the encrypted data ends after %zu bytes, inside its %u-byte salt and "
                            "commitment: it was truncated",
                            got, SM_CHUNKED_PREFIX_SIZE);
    st = keys_from_prefix(suite, input_key, input_key_len, context, context_len, prefix, &keys,
                          err);
    if (st != SM_OK)
        return st;
    return reader_create(keys, read_fn, read_ctx, out, err);
}

sm_status sm_chunked_reader_new_raw(sm_chunked_keys *keys_taken, sm_read_fn read_fn,
                                    void *read_ctx, sm_chunked_reader **out, sm_error *err)
{
    *out = NULL;
    if (keys_taken == NULL)
        return sm_error_set(err, SM_ERR_ARG, "raw-mode reader needs keys");
    return reader_create(keys_taken, read_fn, read_ctx, out, err);
}

sm_status sm_chunked_reader_expect_length(sm_chunked_reader *r, uint64_t plain_len, sm_error *err)
{
    if (r->chunk_index != 0 || r->plain_len != 0 || r->end_reached || r->failure.status != SM_OK)
        return sm_error_set(err, SM_ERR_STATE,
                            "the expected length must be set before the first read");
    if (plain_len > SM_CHUNKED_MAX_PLAIN)
        return sm_error_set(err, SM_ERR_TOO_LARGE,
                            "a plaintext of %llu bytes exceeds the format's limit of 2^38 chunks",
                            (unsigned long long)plain_len);
    r->length_known = 1;
    r->expected_plain_len = plain_len;
    return SM_OK;
}

/* Records a sticky failure and wipes any plaintext still buffered. */
static sm_status reader_fail(sm_chunked_reader *r, const sm_error *cause)
{
    r->failure = *cause;
    if (r->failure.status == SM_OK)
        r->failure.status = SM_ERR_STATE;
    if (r->failure.message[0] == '\0')
        sm_error_set(&r->failure, r->failure.status, "the input failed without saying why");
    sm_wipe(r->buf, READER_WINDOW);
    r->plain_pos = r->plain_len = 0;
    return r->failure.status;
}

/* When the total length is known (from an authenticated header), checks the
 * window read for the current chunk against it, so truncation and trailing
 * data are reported as such instead of as an authentication failure. */
static sm_status reader_check_expected(const sm_chunked_reader *r, size_t window_len,
                                       sm_error *err)
{
    uint64_t final_index = r->expected_plain_len / SM_CHUNK_PLAIN_SIZE;
    unsigned long long index = (unsigned long long)r->chunk_index;
    unsigned long long chunks = (unsigned long long)(final_index + 1);
    if (r->chunk_index < final_index) {
        if (window_len < READER_WINDOW)
            return sm_error_set(err, SM_ERR_TRUNCATED,
                                "the data ends inside chunk %llu of %llu: the file is truncated "
                                "(an incomplete download or copy?)",
                                index, chunks);
        return SM_OK;
    }
    size_t final_len =
        (size_t)(r->expected_plain_len % SM_CHUNK_PLAIN_SIZE) + SM_CHUNK_TAG_SIZE;
    if (window_len < final_len)
        return sm_error_set(err, SM_ERR_TRUNCATED,
                            "the data ends inside its final chunk (%llu of %llu): the file is "
                            "truncated (an incomplete download or copy?)",
                            index, chunks);
    if (window_len > final_len)
        return sm_error_set(err, SM_ERR_FORMAT,
                            "there is data after the final chunk (%llu of %llu): the file has "
                            "trailing bytes appended; fetch it again from a trusted source",
                            index, chunks);
    return SM_OK;
}

/* Reads and authenticates the next chunk into `dest` (which must have room
 * for a full chunk's plaintext, or be NULL for r->buf). Returns the
 * plaintext length in *plain_len and sets end_reached after the final one. */
static sm_status reader_next_chunk(sm_chunked_reader *r, uint8_t *dest, size_t dest_room,
                                   size_t *plain_len, int *used_dest)
{
    sm_error local = {SM_OK, ""}; /* callbacks may fail without filling it */
    size_t have = 0, got = 0;
    *plain_len = 0;
    *used_dest = 0;
    if (r->has_lookahead) {
        r->buf[0] = r->lookahead;
        have = 1;
        r->has_lookahead = 0;
    }
    sm_status st = sm_read_fully(r->read_fn, r->read_ctx, r->buf + have, READER_WINDOW - have, &got,
                              &local);
    if (st != SM_OK)
        return reader_fail(r, &local);
    size_t window_len = have + got;

    if (r->length_known && reader_check_expected(r, window_len, &local) != SM_OK)
        return reader_fail(r, &local);

    int is_final = window_len < READER_WINDOW;
    size_t cipher_len = is_final ? window_len : SM_CHUNK_CIPHER_SIZE;
    if (is_final && cipher_len == SM_CHUNK_CIPHER_SIZE) {
        sm_error_set(&local, SM_ERR_TRUNCATED,
                     "the data ends after full chunk %llu without the short final chunk: it "
                     "was truncated",
                     (unsigned long long)r->chunk_index);
        return reader_fail(r, &local);
    }
    if (is_final && cipher_len == 0) {
        /* Only possible before the first chunk: a full chunk leaves a lookahead byte. */
        sm_error_set(&local, SM_ERR_TRUNCATED,
                     "the encrypted data has no chunks after its salt and commitment: it was "
                     "truncated");
        return reader_fail(r, &local);
    }
    if (is_final && cipher_len < SM_CHUNK_TAG_SIZE) {
        sm_error_set(&local, SM_ERR_FORMAT,
                     "the final chunk (%llu) is %zu bytes, shorter than its %u-byte tag: the data "
                     "was truncated or has extra bytes at the end",
                     (unsigned long long)r->chunk_index, cipher_len, SM_CHUNK_TAG_SIZE);
        return reader_fail(r, &local);
    }
    if (!is_final && r->chunk_index + 1 >= SM_CHUNKED_MAX_CHUNKS) {
        sm_error_set(&local, SM_ERR_TOO_LARGE,
                     "the encrypted data has more than 2^38 chunks, the format's limit");
        return reader_fail(r, &local);
    }
    if (!is_final) {
        r->lookahead = r->buf[SM_CHUNK_CIPHER_SIZE];
        r->has_lookahead = 1;
    }
    size_t chunk_plain = cipher_len - SM_CHUNK_TAG_SIZE;
    uint8_t *out = dest != NULL && dest_room >= chunk_plain ? dest : r->buf;
    st = sm_chunked_open_chunk(r->keys, r->chunk_index, r->buf, cipher_len, out, &local);
    if (st != SM_OK)
        return reader_fail(r, &local);
    r->chunk_index++;
    if (is_final)
        r->end_reached = 1;
    *plain_len = chunk_plain;
    *used_dest = out != r->buf;
    return SM_OK;
}

sm_status sm_chunked_reader_read(sm_chunked_reader *r, uint8_t *buf, size_t len, size_t *got,
                                 sm_error *err)
{
    size_t total = 0;
    *got = 0;
    if (r->failure.status != SM_OK) {
        if (err != NULL)
            *err = r->failure;
        return r->failure.status;
    }
    if (len == 0)
        return sm_error_set(err, SM_ERR_ARG, "a read of 0 bytes cannot tell data from the end");
    while (total < len) {
        if (r->plain_pos < r->plain_len) {
            size_t n = r->plain_len - r->plain_pos;
            if (n > len - total)
                n = len - total;
            memcpy(buf + total, r->buf + r->plain_pos, n);
            r->plain_pos += n;
            total += n;
            continue;
        }
        if (r->end_reached)
            break;
        size_t chunk_plain = 0;
        int used_dest = 0;
        /* Opened straight into the caller's buffer when a whole chunk fits. */
        sm_status st = reader_next_chunk(r, buf + total, len - total, &chunk_plain, &used_dest);
        if (st != SM_OK) {
            /* Bytes already returned in this call were authenticated; the
             * error is sticky and comes back on the next call. */
            if (total > 0)
                break;
            if (err != NULL)
                *err = r->failure;
            return st;
        }
        if (used_dest) {
            total += chunk_plain;
        } else {
            r->plain_pos = 0;
            r->plain_len = chunk_plain;
        }
    }
    *got = total;
    return SM_OK;
}

void sm_chunked_reader_free(sm_chunked_reader *r)
{
    if (r == NULL)
        return;
    sm_chunked_keys_free(r->keys);
    if (r->buf != NULL) {
        sm_wipe(r->buf, READER_WINDOW);
        free(r->buf);
    }
    free(r);
}

/* ------------------------------------------------------------------------ */
/* Random-access reader                                                      */

typedef struct cache_slot {
    uint8_t *plain; /* SM_CHUNK_PLAIN_SIZE bytes, allocated on first use */
    uint64_t index;
    size_t len;
    uint64_t last_used;
    int valid;
} cache_slot;

struct sm_chunked_ra {
    sm_chunked_keys *keys;
    sm_read_at_fn read_at;
    void *read_ctx;
    uint64_t chunks_offset; /* where chunk 0 starts: 56, or 0 in raw mode */
    uint64_t plain_size;
    uint64_t chunk_count;
    uint8_t *cipher_buf; /* one encrypted chunk */
    cache_slot *slots;
    unsigned slot_count;
    uint64_t use_clock;
    int length_verified;
    sm_error failure;
};

static sm_status ra_create(sm_chunked_keys *keys_taken, sm_read_at_fn read_at, void *read_ctx,
                           uint64_t chunks_offset, uint64_t plain_size, unsigned cache_chunks,
                           sm_chunked_ra **out, sm_error *err)
{
    sm_chunked_ra *ra = calloc(1, sizeof(*ra));
    unsigned slot_count = cache_chunks == 0 ? DEFAULT_CACHE_CHUNKS : cache_chunks;
    if (ra != NULL) {
        ra->cipher_buf = malloc(SM_CHUNK_CIPHER_SIZE);
        ra->slots = calloc(slot_count, sizeof(*ra->slots));
    }
    if (ra == NULL || ra->cipher_buf == NULL || ra->slots == NULL) {
        if (ra != NULL) {
            free(ra->cipher_buf);
            free(ra->slots);
        }
        free(ra);
        sm_chunked_keys_free(keys_taken);
        return sm_error_set(err, SM_ERR_NOMEM, "out of memory creating a random-access decryptor");
    }
    ra->keys = keys_taken;
    ra->read_at = read_at;
    ra->read_ctx = read_ctx;
    ra->chunks_offset = chunks_offset;
    ra->plain_size = plain_size;
    ra->chunk_count = sm_chunked_chunk_count(plain_size);
    ra->slot_count = slot_count;
    *out = ra;
    return SM_OK;
}

static sm_status check_cache_chunks(unsigned cache_chunks, sm_error *err)
{
    if (cache_chunks > MAX_CACHE_CHUNKS)
        return sm_error_set(err, SM_ERR_ARG, "a chunk cache of %u chunks is too large (at most %u)",
                            cache_chunks, MAX_CACHE_CHUNKS);
    return SM_OK;
}

sm_status sm_chunked_ra_new(sm_cobblestone suite, const uint8_t *input_key, size_t input_key_len,
                            const uint8_t *context, size_t context_len, sm_read_at_fn read_at,
                            void *read_ctx, uint64_t cipher_len, unsigned cache_chunks,
                            sm_chunked_ra **out, sm_error *err)
{
    uint8_t prefix[SM_CHUNKED_PREFIX_SIZE];
    uint64_t plain_size = 0;
    size_t got = 0;
    sm_chunked_keys *keys = NULL;
    *out = NULL;
    sm_status st = check_key_size(suite, input_key_len, "the key", err);
    if (st == SM_OK)
        st = check_cache_chunks(cache_chunks, err);
    /* The length is checked before any I/O: an impossible one needs no fetch. */
    if (st == SM_OK)
        st = sm_chunked_plaintext_size(cipher_len, &plain_size, err);
    if (st == SM_OK)
        st = read_at(read_ctx, 0, prefix, sizeof(prefix), &got, err);
    if (st != SM_OK)
        return st;
    if (got < sizeof(prefix))
        return sm_error_set(err, SM_ERR_TRUNCATED,
                            "the encrypted data ends after %zu bytes, inside its %u-byte salt and "
                            "commitment, although %llu bytes were announced: it was truncated",
                            got, SM_CHUNKED_PREFIX_SIZE, (unsigned long long)cipher_len);
    st = keys_from_prefix(suite, input_key, input_key_len, context, context_len, prefix, &keys,
                          err);
    if (st != SM_OK)
        return st;
    return ra_create(keys, read_at, read_ctx, SM_CHUNKED_PREFIX_SIZE, plain_size, cache_chunks,
                     out, err);
}

sm_status sm_chunked_ra_new_raw(sm_chunked_keys *keys_taken, sm_read_at_fn read_at, void *read_ctx,
                                uint64_t cipher_len, unsigned cache_chunks, sm_chunked_ra **out,
                                sm_error *err)
{
    uint64_t plain_size = 0;
    *out = NULL;
    sm_status st = keys_taken != NULL
                       ? SM_OK
                       : sm_error_set(err, SM_ERR_ARG, "raw-mode random-access reader needs keys");
    if (st == SM_OK)
        st = check_cache_chunks(cache_chunks, err);
    if (st == SM_OK)
        st = body_plaintext_size(cipher_len, &plain_size, err);
    if (st != SM_OK) {
        sm_chunked_keys_free(keys_taken);
        return st;
    }
    return ra_create(keys_taken, read_at, read_ctx, 0, plain_size, cache_chunks, out, err);
}

uint64_t sm_chunked_ra_size(const sm_chunked_ra *ra)
{
    return ra->plain_size;
}

static void ra_wipe_cache(sm_chunked_ra *ra)
{
    for (unsigned i = 0; i < ra->slot_count; i++) {
        if (ra->slots[i].plain != NULL)
            sm_wipe(ra->slots[i].plain, SM_CHUNK_PLAIN_SIZE);
        ra->slots[i].valid = 0;
    }
}

static sm_status ra_fail(sm_chunked_ra *ra, const sm_error *cause, sm_error *err)
{
    ra->failure = *cause;
    if (ra->failure.status == SM_OK)
        ra->failure.status = SM_ERR_STATE;
    if (ra->failure.message[0] == '\0')
        sm_error_set(&ra->failure, ra->failure.status, "the input failed without saying why");
    ra_wipe_cache(ra);
    if (err != NULL)
        *err = ra->failure;
    return ra->failure.status;
}

static sm_status ra_check_usable(const sm_chunked_ra *ra, sm_error *err)
{
    if (ra->failure.status != SM_OK) {
        if (err != NULL)
            *err = ra->failure;
        return ra->failure.status;
    }
    return SM_OK;
}

/* Fetches chunk `index` and authenticates it into dest (room for its
 * plaintext). Failures are sticky. */
static sm_status ra_open_chunk(sm_chunked_ra *ra, uint64_t index, uint8_t *dest, sm_error *err)
{
    sm_error local = {SM_OK, ""}; /* callbacks may fail without filling it */
    size_t plain_len = chunk_plain_len(ra->plain_size, index);
    size_t cipher_len = plain_len + SM_CHUNK_TAG_SIZE;
    uint64_t offset = ra->chunks_offset + index * SM_CHUNK_CIPHER_SIZE;
    size_t got = 0;
    sm_status st = ra->read_at(ra->read_ctx, offset, ra->cipher_buf, cipher_len, &got, &local);
    if (st != SM_OK)
        return ra_fail(ra, &local, err);
    if (got != cipher_len) {
        sm_error_set(&local, got < cipher_len ? SM_ERR_TRUNCATED : SM_ERR_IO,
                     got < cipher_len
                         ? "chunk %llu is cut short: the data is shorter than announced (it was "
                           "truncated or changed while being read)"
                         : "the source returned more bytes than asked for chunk %llu",
                     (unsigned long long)index);
        return ra_fail(ra, &local, err);
    }
    st = sm_chunked_open_chunk(ra->keys, index, ra->cipher_buf, cipher_len, dest, &local);
    if (st != SM_OK)
        return ra_fail(ra, &local, err);
    if (index == ra->chunk_count - 1)
        ra->length_verified = 1;
    return SM_OK;
}

static cache_slot *ra_cache_find(sm_chunked_ra *ra, uint64_t index)
{
    for (unsigned i = 0; i < ra->slot_count; i++) {
        if (ra->slots[i].valid && ra->slots[i].index == index) {
            ra->slots[i].last_used = ++ra->use_clock;
            return &ra->slots[i];
        }
    }
    return NULL;
}

/* Loads a chunk into the least recently used slot. */
static sm_status ra_cache_load(sm_chunked_ra *ra, uint64_t index, cache_slot **out, sm_error *err)
{
    cache_slot *victim = &ra->slots[0];
    for (unsigned i = 0; i < ra->slot_count; i++) {
        cache_slot *s = &ra->slots[i];
        if (!s->valid) {
            victim = s;
            break;
        }
        if (s->last_used < victim->last_used)
            victim = s;
    }
    victim->valid = 0;
    if (victim->plain == NULL) {
        victim->plain = malloc(SM_CHUNK_PLAIN_SIZE);
        if (victim->plain == NULL) {
            sm_error local = {SM_OK, ""}; /* callbacks may fail without filling it */
            sm_error_set(&local, SM_ERR_NOMEM, "out of memory for the chunk cache");
            return ra_fail(ra, &local, err);
        }
    }
    sm_status st = ra_open_chunk(ra, index, victim->plain, err);
    if (st != SM_OK)
        return st;
    victim->index = index;
    victim->len = chunk_plain_len(ra->plain_size, index);
    victim->valid = 1;
    victim->last_used = ++ra->use_clock;
    *out = victim;
    return SM_OK;
}

sm_status sm_chunked_ra_read(sm_chunked_ra *ra, uint64_t offset, uint8_t *buf, size_t len,
                             size_t *got, sm_error *err)
{
    *got = 0;
    sm_status st = ra_check_usable(ra, err);
    if (st != SM_OK || len == 0)
        return st;
    uint64_t available = offset < ra->plain_size ? ra->plain_size - offset : 0;
    /* A short read tells the caller where the message ends, so that end
     * must be authenticated first (the final chunk may hold no data). */
    if ((uint64_t)len > available) {
        st = sm_chunked_ra_verify_length(ra, err);
        if (st != SM_OK)
            return st;
    }
    size_t want = (uint64_t)len < available ? len : (size_t)available;
    size_t done = 0;
    while (done < want) {
        uint64_t pos = offset + done;
        uint64_t index = pos / SM_CHUNK_PLAIN_SIZE;
        size_t in_chunk = (size_t)(pos % SM_CHUNK_PLAIN_SIZE);
        size_t chunk_len = chunk_plain_len(ra->plain_size, index);
        size_t n = chunk_len - in_chunk;
        if (n > want - done)
            n = want - done;
        cache_slot *slot = ra_cache_find(ra, index);
        if (slot == NULL && in_chunk == 0 && n == chunk_len) {
            /* The caller wants the whole chunk: open it straight into its
             * buffer and leave the cache to partial reads. */
            st = ra_open_chunk(ra, index, buf + done, err);
            if (st != SM_OK)
                break;
            done += n;
            continue;
        }
        if (slot == NULL) {
            st = ra_cache_load(ra, index, &slot, err);
            if (st != SM_OK)
                break;
        }
        memcpy(buf + done, slot->plain + in_chunk, n);
        done += n;
    }
    if (st != SM_OK) {
        /* A failed read returns nothing, not even the chunks that did verify. */
        sm_wipe(buf, want);
        return st;
    }
    *got = done;
    return SM_OK;
}

sm_status sm_chunked_ra_verify_length(sm_chunked_ra *ra, sm_error *err)
{
    sm_status st = ra_check_usable(ra, err);
    if (st != SM_OK || ra->length_verified)
        return st;
    cache_slot *slot = NULL;
    return ra_cache_load(ra, ra->chunk_count - 1, &slot, err);
}

void sm_chunked_ra_free(sm_chunked_ra *ra)
{
    if (ra == NULL)
        return;
    sm_chunked_keys_free(ra->keys);
    if (ra->slots != NULL) {
        ra_wipe_cache(ra);
        for (unsigned i = 0; i < ra->slot_count; i++)
            free(ra->slots[i].plain);
        free(ra->slots);
    }
    if (ra->cipher_buf != NULL) {
        sm_wipe(ra->cipher_buf, SM_CHUNK_CIPHER_SIZE);
        free(ra->cipher_buf);
    }
    free(ra);
}
