/* The key server's key-encryption key (KEK): media keys at rest.
 *
 * A KEK file holds one or more versioned 256-bit keys (docs/FORMATS.md,
 * "KEK file"); the `current` version wraps new media keys, every listed
 * version can still unwrap, so an operator rotates by adding a version,
 * making it current, re-wrapping every stored key, and only then dropping the
 * old version.
 *
 * A wrapped media key is AES-256-GCM under one KEK version with additional
 * data binding the work id, the media key version and the KEK version, so a
 * wrapped key copied into another work's row (or relabelled with another
 * version) fails to unwrap instead of yielding a key for the wrong work.
 *
 * An sm_ks_kek is read-only after loading and may be shared by threads. */
#ifndef SM_KS_KEK_H
#define SM_KS_KEK_H

#include <stddef.h>
#include <stdint.h>

#include "sm_error.h"
#include "sm_secmem.h"

/* Largest KEK file read, and most versions in one file. */
#define SM_KS_KEK_FILE_MAX 8192u
#define SM_KS_KEK_MAX_VERSIONS 64u
#define SM_KS_KEK_KEY_LEN 32u

/* Wrapped media key: format byte 0x01, 12-byte nonce, 32-byte ciphertext,
 * 16-byte tag. */
#define SM_KS_WRAPPED_KEY_FORMAT 0x01u
#define SM_KS_WRAPPED_KEY_LEN 61u

typedef struct sm_ks_kek sm_ks_kek;

/* Parses a KEK document held in memory (the file's bytes). */
sm_status sm_ks_kek_parse(const uint8_t *doc, size_t len, const char *what, sm_ks_kek **out,
                          sm_error *err);

/* Reads a KEK file: a regular file, not accessible to group or others,
 * at most SM_KS_KEK_FILE_MAX bytes, parsed as above. */
sm_status sm_ks_kek_load(const char *path, sm_ks_kek **out, sm_error *err);

/* A new KEK holding one random key of version 1 (for tests and set-up). */
sm_status sm_ks_kek_generate(sm_ks_kek **out, sm_error *err);

/* Adds a random key of the next version and makes it current (rotation). */
sm_status sm_ks_kek_add_version(sm_ks_kek *kek, sm_error *err);

/* Removes a version that is not current (after every key was re-wrapped). */
sm_status sm_ks_kek_remove_version(sm_ks_kek *kek, uint32_t version, sm_error *err);

/* The KEK document (secret: it lands in secure memory). */
sm_status sm_ks_kek_serialize(const sm_ks_kek *kek, sm_secret **doc_out, sm_error *err);

/* Writes the KEK document to path with mode 0600 through a temp file. */
sm_status sm_ks_kek_save(const sm_ks_kek *kek, const char *path, int overwrite, sm_error *err);

uint32_t sm_ks_kek_current_version(const sm_ks_kek *kek);
int sm_ks_kek_has_version(const sm_ks_kek *kek, uint32_t version);
size_t sm_ks_kek_version_count(const sm_ks_kek *kek);

/* Wraps a 32-byte media key of work_id / key_version under the current KEK
 * version (written to *kek_version_out). */
sm_status sm_ks_kek_wrap(const sm_ks_kek *kek, const char *work_id, uint32_t key_version,
                         const sm_secret *media_key, uint8_t out[SM_KS_WRAPPED_KEY_LEN],
                         uint32_t *kek_version_out, sm_error *err);

/* Unwraps with the given KEK version. A wrapped key that belongs to another
 * work, key version or KEK version, or was altered, is SM_ERR_AUTH; an
 * unknown KEK version is SM_ERR_KEY. The key lands in secure memory. */
sm_status sm_ks_kek_unwrap(const sm_ks_kek *kek, const char *work_id, uint32_t key_version,
                           uint32_t kek_version, const uint8_t *wrapped, size_t wrapped_len,
                           sm_secret **media_key_out, sm_error *err);

/* Unwraps under kek_version and wraps again under the current version. */
sm_status sm_ks_kek_rewrap(const sm_ks_kek *kek, const char *work_id, uint32_t key_version,
                           uint32_t kek_version, const uint8_t *wrapped, size_t wrapped_len,
                           uint8_t out[SM_KS_WRAPPED_KEY_LEN], uint32_t *new_kek_version_out,
                           sm_error *err);

void sm_ks_kek_free(sm_ks_kek *kek);

#endif
