/* Checking an upload to the media store while it streams in, without
 * keeping it in memory: the .smc header (parsed from the first bytes, its
 * work id must be the one in the URL), the total size (exactly what the
 * header implies, never above the configured limit), and the SHA-256 the
 * uploader declared. Previews are opaque bytes: only size and SHA-256.
 * No httpd dependency; mod_mediastore feeds it bucket by bucket. */
#ifndef SM_MS_UPLOAD_H
#define SM_MS_UPLOAD_H

#include <stddef.h>
#include <stdint.h>

#include "sm_container.h"
#include "sm_error.h"

#define SM_SHA256_SIZE 32u

typedef enum sm_upload_kind {
    SM_UPLOAD_CONTAINER,
    SM_UPLOAD_PREVIEW
} sm_upload_kind;

typedef struct sm_upload_check sm_upload_check;

/* work_id: the work named in the URL (validated by the caller). max_size:
 * the configured limit. announced: the Content-Length, or -1 if unknown;
 * a known one above max_size fails here already (SM_ERR_TOO_LARGE). */
sm_status sm_upload_check_new(sm_upload_kind kind, const char *work_id, uint64_t max_size,
                              int64_t announced, sm_upload_check **out, sm_error *err);

/* Feeds the next bytes. Fails as soon as the bytes can be judged:
 * SM_ERR_TOO_LARGE past max_size; SM_ERR_FORMAT for a bad header, a header
 * naming another work, more bytes than the header implies, or a
 * Content-Length that disagrees with the header. Errors are sticky. */
sm_status sm_upload_check_update(sm_upload_check *u, const uint8_t *data, size_t len,
                                 sm_error *err);

/* At the end of the body: SM_ERR_TRUNCATED when fewer bytes came than the
 * header implies (or no complete header), SM_ERR_AUTH when the SHA-256
 * differs from declared_sha256. */
sm_status sm_upload_check_finish(sm_upload_check *u, const uint8_t declared_sha256[SM_SHA256_SIZE],
                                 sm_error *err);

uint64_t sm_upload_check_received(const sm_upload_check *u);
/* After a successful finish: the SHA-256 of what was received. */
const uint8_t *sm_upload_check_digest(const sm_upload_check *u);
/* The parsed header (containers, once enough bytes came), else NULL. */
const sm_container_header *sm_upload_check_header(const sm_upload_check *u);

void sm_upload_check_free(sm_upload_check *u);

/* --- declared digests (RFC 9530) -------------------------------------------
 * Parses the value of a Repr-Digest or Content-Digest field, a structured
 * dictionary such as `sha-256=:BASE64:, sha-512=:BASE64:`, and returns the
 * sha-256 member. SM_ERR_NOT_FOUND when the field has no sha-256 member;
 * SM_ERR_FORMAT for a malformed field or a value that is not 32 bytes. */
sm_status sm_digest_field_sha256(const char *field, uint8_t out[SM_SHA256_SIZE], sm_error *err);

/* --- ranges ----------------------------------------------------------------- */
/* 1 when an HTTP Range field value ("bytes=a-b,c-") asks for the last byte
 * of a representation of size bytes (so serving it completes a delivery). */
int sm_range_includes_last_byte(const char *range, uint64_t size);
/* 1 when range is a well-formed bytes range set none of whose ranges
 * overlaps a representation of size bytes (RFC 9110 §14.1.1: answer 416).
 * Malformed sets give 0: they are ignored and the whole body is sent. */
int sm_range_unsatisfiable(const char *range, uint64_t size);

#endif
