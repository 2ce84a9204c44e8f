/* File helpers shared by every writer and reader of secmedia's small files
 * (key files, JWKs, steering files). */
#ifndef SM_FILE_H
#define SM_FILE_H

#include <stddef.h>
#include <sys/types.h>

#include "sm_error.h"
#include "sm_secmem.h"

/* Writes data to path so that readers see either the old file or the whole
 * new one, even after a crash: a temporary file in the same directory
 * (created exclusively, mode 0600 until complete), fsync, then set to `mode`
 * and moved into place, then the directory is synced. Without overwrite an
 * existing path is never replaced (also not in a race). On failure path is
 * untouched and no temporary file remains. Messages start with the path. */
sm_status sm_file_write_atomic(const char *path, const void *data, size_t len, mode_t mode,
                               int overwrite, sm_error *err);

/* Moves a complete, synced temporary file tmp to path (never replacing an
 * existing path unless overwrite, also not in a race) and syncs the
 * directory. On failure tmp is left for the caller to remove. */
sm_status sm_file_install(const char *tmp, const char *path, int overwrite, sm_error *err);

/* Reads a whole regular file of at most max_len bytes into secure memory
 * (it may hold a key). *mode_out (may be NULL) receives its st_mode so the
 * caller can refuse a secret readable by group or others. */
sm_status sm_file_read_secret(const char *path, size_t max_len, sm_secret **out, mode_t *mode_out,
                              sm_error *err);

/* Reads a whole regular file of at most max_len bytes that is not secret
 * (lyrics, a JWE) into *out (malloc'ed, NUL-terminated; free() it),
 * its length in *len_out (may be NULL). A file with a NUL byte in it is
 * refused (SM_ERR_FORMAT): it could not be used as text. */
sm_status sm_file_read_text(const char *path, size_t max_len, char **out, size_t *len_out,
                            sm_error *err);

/* The standard refusal for a secret file readable by group or others. */
sm_status sm_file_refuse_loose_mode(const char *path, mode_t mode, sm_error *err);

#endif
