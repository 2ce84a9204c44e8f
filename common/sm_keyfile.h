/* Media key files: a 32-byte media key stored as a JSON Web Key of type
 * "oct" (RFC 7517/7518) in a file of mode 0600:
 *
 *   {"k":"<43 base64url chars>","kid":"<work id>:<key version>","kty":"oct"}
 *
 * `secmedia pack --key-out` writes them and `unpack`/`verify` read them.
 * Standard JWK so any JOSE library can use the key. */
#ifndef SM_KEYFILE_H
#define SM_KEYFILE_H

#include <stddef.h>

#include "sm_error.h"
#include "sm_secmem.h"

#define SM_KEYFILE_MAX_SIZE 1024u

/* The file's bytes for key (and kid, may be NULL), in secure memory; write
 * them with mode 0600 through a temporary file and a rename (sm_file.h, or
 * the CLI's output files), so a crash never leaves a partial key file. */
sm_status sm_keyfile_encode(const sm_secret *key, const char *kid, sm_secret **out, sm_error *err);

/* Loads a media key. Refuses files readable by group or others, files that
 * are not a single strict oct JWK, and keys that are not expected_len bytes.
 * kid_out (may be NULL) receives the kid or "" (size kid_size). */
sm_status sm_keyfile_load(const char *path, size_t expected_len, sm_secret **key_out,
                          char *kid_out, size_t kid_size, sm_error *err);

#endif
