/* The secmedia encrypted media container (.smc), format version 1.
 *
 *   offset 0   8 bytes  magic "\x89SMC\r\n\x1a\n"
 *   offset 8   2 bytes  format version, big-endian (1)
 *   offset 10  4 bytes  metadata length N, big-endian (1..SM_CONTAINER_META_MAX)
 *   offset 14  N bytes  metadata: one UTF-8 JSON object (see docs/FORMATS.md)
 *   then       Cobblestone-256 message (c2sp.org/chunked-encryption) whose
 *              context is the whole header (bytes 0 .. 14+N-1)
 *
 * The header is authenticated by the key commitment: a reader with the key
 * rejects any header change before decrypting a single chunk. */
#ifndef SM_CONTAINER_H
#define SM_CONTAINER_H

#include <stddef.h>
#include <stdint.h>

#include "sm_chunked.h"
#include "sm_error.h"
#include "sm_io.h"
#include "sm_secmem.h"

#define SM_CONTAINER_MAGIC "\x89SMC\r\n\x1a\n"
#define SM_CONTAINER_MAGIC_SIZE 8u
#define SM_CONTAINER_VERSION 1u
#define SM_CONTAINER_FIXED_SIZE 14u
#define SM_CONTAINER_META_MAX 16384u
#define SM_CONTAINER_HEADER_MAX (SM_CONTAINER_FIXED_SIZE + SM_CONTAINER_META_MAX)
#define SM_MEDIA_KEY_SIZE 32u

#define SM_WORK_ID_MAX 64u
#define SM_MEDIA_TYPE_MAX 127u
#define SM_ORIGINAL_NAME_MAX 255u
/* plaintext_length stays exact as a JSON number in every language (2^53 - 1);
 * a container can only hold SM_CHUNKED_MAX_PLAIN (2^52 - 1) bytes, so the
 * writer and readers refuse larger values with SM_ERR_TOO_LARGE. */
#define SM_CONTAINER_PLAINTEXT_MAX ((UINT64_C(1) << 53) - 1)

/* Metadata carried in the header. Strings are NUL-terminated UTF-8. */
typedef struct sm_container_meta {
    char work_id[SM_WORK_ID_MAX + 1];          /* [A-Za-z0-9][A-Za-z0-9._-]* */
    uint32_t key_version;                      /* >= 1 */
    char media_type[SM_MEDIA_TYPE_MAX + 1];    /* RFC 6838 type/subtype */
    char original_name[SM_ORIGINAL_NAME_MAX + 1]; /* base name, no '/' or controls */
    uint64_t plaintext_length;                 /* < 2^53 */
} sm_container_meta;

/* A parsed header: the metadata plus the exact header bytes (the context). */
typedef struct sm_container_header {
    sm_container_meta meta;
    uint8_t *bytes;
    size_t len;
} sm_container_header;

/* Checks every metadata field; SM_ERR_FORMAT names the bad field. */
sm_status sm_container_meta_validate(const sm_container_meta *meta, sm_error *err);

/* Serialises the header for meta. */
sm_status sm_container_header_encode(const sm_container_meta *meta, sm_container_header **out,
                                     sm_error *err);

/* Parses a header at the start of buf. When buf is too short to hold the
 * whole header, returns SM_ERR_TRUNCATED and sets *needed to the number of
 * bytes required (when known). Strict: unknown version, unknown or missing
 * fields, wrong types, duplicate keys, oversize: an error. */
sm_status sm_container_header_parse(const uint8_t *buf, size_t buf_len, sm_container_header **out,
                                    size_t *needed, sm_error *err);

/* Reads a header through a sequential or positional source. */
sm_status sm_container_header_read(sm_read_fn read_fn, void *read_ctx, sm_container_header **out,
                                   sm_error *err);
sm_status sm_container_header_read_at(sm_read_at_fn read_at, void *read_ctx,
                                      sm_container_header **out, sm_error *err);

void sm_container_header_free(sm_container_header *hdr);

/* Total file size for a header length and plaintext length. */
uint64_t sm_container_file_size(size_t header_len, uint64_t plaintext_length);
/* Chunk count and the file offset of chunk k. */
uint64_t sm_container_chunk_count(uint64_t plaintext_length);
uint64_t sm_container_chunk_offset(size_t header_len, uint64_t chunk_index);

/* --- Writer: streaming, constant memory ------------------------------------- */
typedef struct sm_container_writer sm_container_writer;

/* Writes the header and the Cobblestone prefix. key must be SM_MEDIA_KEY_SIZE. */
sm_status sm_container_writer_new(const sm_container_meta *meta, const sm_secret *key,
                                  sm_write_fn write_fn, void *write_ctx,
                                  sm_container_writer **out, sm_error *err);
sm_status sm_container_writer_write(sm_container_writer *w, const uint8_t *data, size_t len,
                                    sm_error *err);
/* Fails with SM_ERR_STATE when the bytes written differ from
 * meta->plaintext_length (a file that changed while being packed). */
sm_status sm_container_writer_finish(sm_container_writer *w, sm_error *err);
void sm_container_writer_free(sm_container_writer *w);

/* --- Streaming reader -------------------------------------------------------- */
typedef struct sm_container_reader sm_container_reader;

/* Reads the header and verifies the key commitment before returning. */
sm_status sm_container_reader_new(sm_read_fn read_fn, void *read_ctx, const sm_secret *key,
                                  sm_container_reader **out, sm_error *err);
const sm_container_header *sm_container_reader_header(const sm_container_reader *r);
/* As sm_chunked_reader_read; additionally the authenticated plaintext length
 * must equal the header's plaintext_length. Errors are sticky. */
sm_status sm_container_reader_read(sm_container_reader *r, uint8_t *buf, size_t len, size_t *got,
                                   sm_error *err);
void sm_container_reader_free(sm_container_reader *r);

/* --- Random-access reader ---------------------------------------------------- */
typedef struct sm_container_ra sm_container_ra;

/* read_at addresses the whole file. file_size is the size the source reports
 * (e.g. from Content-Range); it must equal the size the header implies. */
sm_status sm_container_ra_new(sm_read_at_fn read_at, void *read_ctx, uint64_t file_size,
                              const sm_secret *key, unsigned cache_chunks,
                              sm_container_ra **out, sm_error *err);
const sm_container_header *sm_container_ra_header(const sm_container_ra *ra);
sm_status sm_container_ra_read(sm_container_ra *ra, uint64_t offset, uint8_t *buf, size_t len,
                               size_t *got, sm_error *err);
sm_status sm_container_ra_verify_length(sm_container_ra *ra, sm_error *err);
void sm_container_ra_free(sm_container_ra *ra);

#endif
