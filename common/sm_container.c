#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "sm_container.h"
#include "sm_json.h"
#include "sm_validate.h"

#define META_WHAT "container metadata"

static const sm_json_field meta_fields[] = {
    {"work_id", SM_JSON_STRING, 1},
    {"key_version", SM_JSON_INTEGER, 1},
    {"media_type", SM_JSON_STRING, 1},
    {"original_name", SM_JSON_STRING, 1},
    {"plaintext_length", SM_JSON_INTEGER, 1},
    {NULL, SM_JSON_STRING, 0},
};

static uint16_t get_be16(const uint8_t *p)
{
    return (uint16_t)((unsigned)p[0] << 8 | p[1]);
}

static uint32_t get_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put_be16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* ------------------------------------------------------------------------ */
/* Metadata                                                                  */

static sm_status check_terminated(const char *s, size_t size, const char *field, sm_error *err)
{
    if (memchr(s, '\0', size) == NULL)
        return sm_error_set(err, SM_ERR_ARG, META_WHAT ": field \"%s\" is not NUL-terminated",
                            field);
    return SM_OK;
}

sm_status sm_container_meta_validate(const sm_container_meta *meta, sm_error *err)
{
    sm_status st = check_terminated(meta->work_id, sizeof(meta->work_id), "work_id", err);
    if (st == SM_OK)
        st = check_terminated(meta->media_type, sizeof(meta->media_type), "media_type", err);
    if (st == SM_OK)
        st = check_terminated(meta->original_name, sizeof(meta->original_name), "original_name",
                              err);
    if (st == SM_OK)
        st = sm_validate_work_id(meta->work_id, META_WHAT " field \"work_id\"", err);
    if (st == SM_OK && meta->key_version == 0)
        st = sm_error_set(err, SM_ERR_FORMAT,
                          META_WHAT ": field \"key_version\" must be between 1 and 4294967295");
    if (st == SM_OK)
        st = sm_validate_media_type(meta->media_type, META_WHAT " field \"media_type\"", err);
    if (st == SM_OK)
        st = sm_validate_file_name(meta->original_name, SM_ORIGINAL_NAME_MAX,
                                   META_WHAT " field \"original_name\"", err);
    if (st == SM_OK && meta->plaintext_length > SM_CONTAINER_PLAINTEXT_MAX)
        st = sm_error_set(err, SM_ERR_FORMAT,
                          META_WHAT ": field \"plaintext_length\" must be between 0 and %llu",
                          (unsigned long long)SM_CONTAINER_PLAINTEXT_MAX);
    return st;
}

static sm_status meta_from_json(json_t *root, sm_container_meta *meta, sm_error *err)
{
    uint64_t key_version = 0, plaintext_length = 0;
    memset(meta, 0, sizeof(*meta));
    sm_status st = sm_json_check_fields(root, meta_fields, META_WHAT, err);
    if (st == SM_OK)
        st = sm_json_copy_string(root, "work_id", meta->work_id, sizeof(meta->work_id), 1,
                                 META_WHAT, err);
    if (st == SM_OK)
        st = sm_json_get_uint64(root, "key_version", UINT32_MAX, 1, &key_version, META_WHAT, err);
    if (st == SM_OK)
        st = sm_json_copy_string(root, "media_type", meta->media_type, sizeof(meta->media_type),
                                 1, META_WHAT, err);
    if (st == SM_OK)
        st = sm_json_copy_string(root, "original_name", meta->original_name,
                                 sizeof(meta->original_name), 1, META_WHAT, err);
    if (st == SM_OK)
        st = sm_json_get_uint64(root, "plaintext_length", SM_CONTAINER_PLAINTEXT_MAX, 1,
                                &plaintext_length, META_WHAT, err);
    if (st != SM_OK)
        return st;
    meta->key_version = (uint32_t)key_version;
    meta->plaintext_length = plaintext_length;
    return sm_container_meta_validate(meta, err);
}

/* ------------------------------------------------------------------------ */
/* Header encoding and parsing                                               */

void sm_container_header_free(sm_container_header *hdr)
{
    if (hdr == NULL)
        return;
    free(hdr->bytes);
    free(hdr);
}

sm_status sm_container_header_encode(const sm_container_meta *meta, sm_container_header **out,
                                     sm_error *err)
{
    *out = NULL;
    sm_status st = sm_container_meta_validate(meta, err);
    if (st != SM_OK)
        return st;
    json_t *root = json_pack("{s:s, s:I, s:s, s:s, s:I}", "work_id", meta->work_id,
                             "key_version", (json_int_t)meta->key_version, "media_type",
                             meta->media_type, "original_name", meta->original_name,
                             "plaintext_length", (json_int_t)meta->plaintext_length);
    if (root == NULL)
        return sm_error_set(err, SM_ERR_NOMEM, "out of memory encoding " META_WHAT);
    /* Compact with sorted keys, so the same metadata always gives the same bytes. */
    const size_t flags = JSON_COMPACT | JSON_SORT_KEYS;
    size_t meta_len = json_dumpb(root, NULL, 0, flags);
    if (meta_len == 0 || meta_len > SM_CONTAINER_META_MAX) {
        json_decref(root);
        return sm_error_set(err, SM_ERR_TOO_LARGE,
                            META_WHAT " does not fit the %u-byte limit", SM_CONTAINER_META_MAX);
    }
    sm_container_header *hdr = calloc(1, sizeof(*hdr));
    uint8_t *bytes = malloc(SM_CONTAINER_FIXED_SIZE + meta_len);
    if (hdr == NULL || bytes == NULL) {
        json_decref(root);
        free(hdr);
        free(bytes);
        return sm_error_set(err, SM_ERR_NOMEM, "out of memory encoding a container header");
    }
    size_t written = json_dumpb(root, (char *)bytes + SM_CONTAINER_FIXED_SIZE, meta_len, flags);
    json_decref(root);
    if (written != meta_len) {
        free(hdr);
        free(bytes);
        return sm_error_set(err, SM_ERR_FORMAT, "cannot encode " META_WHAT " as JSON");
    }
    memcpy(bytes, SM_CONTAINER_MAGIC, SM_CONTAINER_MAGIC_SIZE);
    put_be16(bytes + 8, SM_CONTAINER_VERSION);
    put_be32(bytes + 10, (uint32_t)meta_len);
    hdr->meta = *meta;
    hdr->bytes = bytes;
    hdr->len = SM_CONTAINER_FIXED_SIZE + meta_len;
    *out = hdr;
    return SM_OK;
}

/* Checks the fixed 14-byte part as far as buf_len allows and gets the
 * metadata length. Mismatching bytes are reported before missing ones, so a
 * probe with a few bytes already rejects other files. */
static sm_status parse_fixed_part(const uint8_t *buf, size_t buf_len, uint32_t *meta_len,
                                  size_t *needed, sm_error *err)
{
    size_t magic_seen = buf_len < SM_CONTAINER_MAGIC_SIZE ? buf_len : SM_CONTAINER_MAGIC_SIZE;
    if (magic_seen > 0 && memcmp(buf, SM_CONTAINER_MAGIC, magic_seen) != 0)
        return sm_error_set(err, SM_ERR_FORMAT,
                            "not a secmedia container (.smc): the data does not start with the "
                            "container signature");
    if (buf_len >= 10) {
        unsigned version = get_be16(buf + 8);
        if (version != SM_CONTAINER_VERSION)
            return sm_error_set(err, SM_ERR_UNSUPPORTED,
                                "container format version %u is not supported (this build reads "
                                "version %u): use a newer secmedia",
                                version, SM_CONTAINER_VERSION);
    }
    if (buf_len < SM_CONTAINER_FIXED_SIZE) {
        if (needed != NULL)
            *needed = SM_CONTAINER_FIXED_SIZE;
        return sm_error_set(err, SM_ERR_TRUNCATED,
                            "the container header is cut short: %zu of at least %u bytes "
                            "(truncated)",
                            buf_len, SM_CONTAINER_FIXED_SIZE);
    }
    uint32_t len = get_be32(buf + 10);
    if (len == 0)
        return sm_error_set(err, SM_ERR_FORMAT,
                            "the container header declares empty metadata: the file is damaged");
    if (len > SM_CONTAINER_META_MAX)
        return sm_error_set(err, SM_ERR_TOO_LARGE,
                            "the container header declares %lu bytes of metadata, more than the "
                            "%u-byte limit: the file is damaged or not a container",
                            (unsigned long)len, SM_CONTAINER_META_MAX);
    *meta_len = len;
    return SM_OK;
}

/* Decodes a complete header held in `bytes` (taken over, also on failure). */
static sm_status header_from_bytes(uint8_t *bytes, size_t len, sm_container_header **out,
                                   sm_error *err)
{
    json_t *root = NULL;
    sm_container_meta meta;
    sm_status st = sm_json_parse_object(bytes + SM_CONTAINER_FIXED_SIZE,
                                        len - SM_CONTAINER_FIXED_SIZE, SM_CONTAINER_META_MAX,
                                        META_WHAT, &root, err);
    if (st == SM_OK)
        st = meta_from_json(root, &meta, err);
    json_decref(root);
    sm_container_header *hdr = st == SM_OK ? calloc(1, sizeof(*hdr)) : NULL;
    if (st == SM_OK && hdr == NULL)
        st = sm_error_set(err, SM_ERR_NOMEM, "out of memory reading a container header");
    if (st != SM_OK) {
        free(bytes);
        return st;
    }
    hdr->meta = meta;
    hdr->bytes = bytes;
    hdr->len = len;
    *out = hdr;
    return SM_OK;
}

sm_status sm_container_header_parse(const uint8_t *buf, size_t buf_len, sm_container_header **out,
                                    size_t *needed, sm_error *err)
{
    uint32_t meta_len = 0;
    *out = NULL;
    if (needed != NULL)
        *needed = 0;
    sm_status st = parse_fixed_part(buf, buf_len, &meta_len, needed, err);
    if (st != SM_OK)
        return st;
    size_t header_len = SM_CONTAINER_FIXED_SIZE + (size_t)meta_len;
    if (buf_len < header_len) {
        if (needed != NULL)
            *needed = header_len;
        return sm_error_set(err, SM_ERR_TRUNCATED,
                            "the container header is cut short: %zu of %zu bytes (truncated)",
                            buf_len, header_len);
    }
    uint8_t *bytes = malloc(header_len);
    if (bytes == NULL)
        return sm_error_set(err, SM_ERR_NOMEM, "out of memory reading a container header");
    memcpy(bytes, buf, header_len);
    return header_from_bytes(bytes, header_len, out, err);
}

sm_status sm_container_header_read(sm_read_fn read_fn, void *read_ctx, sm_container_header **out,
                                   sm_error *err)
{
    uint8_t fixed[SM_CONTAINER_FIXED_SIZE];
    uint32_t meta_len = 0;
    size_t got = 0;
    *out = NULL;
    /* Exactly the header is consumed: the encrypted body follows in the same stream. */
    sm_status st = sm_read_fully(read_fn, read_ctx, fixed, sizeof(fixed), &got, err);
    if (st != SM_OK)
        return st;
    if (got == 0)
        return sm_error_set(err, SM_ERR_TRUNCATED, "the input is empty: not a container");
    st = parse_fixed_part(fixed, got, &meta_len, NULL, err);
    if (st != SM_OK)
        return st;
    size_t header_len = SM_CONTAINER_FIXED_SIZE + (size_t)meta_len;
    uint8_t *bytes = malloc(header_len);
    if (bytes == NULL)
        return sm_error_set(err, SM_ERR_NOMEM, "out of memory reading a container header");
    memcpy(bytes, fixed, sizeof(fixed));
    st = sm_read_fully(read_fn, read_ctx, bytes + sizeof(fixed), meta_len, &got, err);
    if (st == SM_OK && got < meta_len)
        st = sm_error_set(err, SM_ERR_TRUNCATED,
                          "the container header is cut short: %zu of %zu bytes: the file is "
                          "truncated",
                          sizeof(fixed) + got, header_len);
    if (st != SM_OK) {
        free(bytes);
        return st;
    }
    return header_from_bytes(bytes, header_len, out, err);
}

/* Presents a positional source as a sequential one starting at offset 0. */
typedef struct read_at_cursor {
    sm_read_at_fn read_at;
    void *ctx;
    uint64_t pos;
} read_at_cursor;

static sm_status read_at_cursor_read(void *ctx, uint8_t *buf, size_t len, size_t *got,
                                     sm_error *err)
{
    read_at_cursor *c = ctx;
    sm_status st = c->read_at(c->ctx, c->pos, buf, len, got, err);
    if (st == SM_OK)
        c->pos += *got;
    return st;
}

sm_status sm_container_header_read_at(sm_read_at_fn read_at, void *read_ctx,
                                      sm_container_header **out, sm_error *err)
{
    read_at_cursor cursor = {read_at, read_ctx, 0};
    return sm_container_header_read(read_at_cursor_read, &cursor, out, err);
}

/* ------------------------------------------------------------------------ */
/* Geometry                                                                  */

uint64_t sm_container_file_size(size_t header_len, uint64_t plaintext_length)
{
    uint64_t body = sm_chunked_ciphertext_size(plaintext_length);
    if (body == UINT64_MAX || body > UINT64_MAX - header_len)
        return UINT64_MAX;
    return header_len + body;
}

uint64_t sm_container_chunk_count(uint64_t plaintext_length)
{
    return sm_chunked_chunk_count(plaintext_length);
}

uint64_t sm_container_chunk_offset(size_t header_len, uint64_t chunk_index)
{
    if (chunk_index >= SM_CHUNKED_MAX_CHUNKS)
        return UINT64_MAX;
    return header_len + SM_CHUNKED_PREFIX_SIZE + chunk_index * SM_CHUNK_CIPHER_SIZE;
}

static sm_status check_media_key(const sm_secret *key, sm_error *err)
{
    if (key == NULL || key->bytes == NULL || key->len != SM_MEDIA_KEY_SIZE)
        return sm_error_set(err, SM_ERR_KEY, "a media key is %u bytes, this one is %zu",
                            SM_MEDIA_KEY_SIZE, key != NULL ? key->len : (size_t)0);
    return SM_OK;
}

static sm_status check_encryptable_length(uint64_t plaintext_length, sm_error *err)
{
    if (plaintext_length > SM_CHUNKED_MAX_PLAIN)
        return sm_error_set(err, SM_ERR_TOO_LARGE,
                            "a plaintext of %llu bytes exceeds what a container can hold "
                            "(2^52 - 1 bytes)",
                            (unsigned long long)plaintext_length);
    return SM_OK;
}

/* ------------------------------------------------------------------------ */
/* Writer                                                                    */

struct sm_container_writer {
    sm_chunked_writer *chunked;
    uint64_t expected_length;
    uint64_t written;
    int finished;
    sm_error failure;
};

sm_status sm_container_writer_new(const sm_container_meta *meta, const sm_secret *key,
                                  sm_write_fn write_fn, void *write_ctx,
                                  sm_container_writer **out, sm_error *err)
{
    sm_container_header *hdr = NULL;
    *out = NULL;
    sm_status st = check_media_key(key, err);
    if (st == SM_OK)
        st = sm_container_header_encode(meta, &hdr, err);
    if (st == SM_OK)
        st = check_encryptable_length(meta->plaintext_length, err);
    sm_container_writer *w = st == SM_OK ? calloc(1, sizeof(*w)) : NULL;
    if (st == SM_OK && w == NULL)
        st = sm_error_set(err, SM_ERR_NOMEM, "out of memory creating a container writer");
    if (st == SM_OK)
        st = write_fn(write_ctx, hdr->bytes, hdr->len, err);
    /* The whole header is the Cobblestone context: the commitment covers it. */
    if (st == SM_OK)
        st = sm_chunked_writer_new(SM_COBBLESTONE_256, key->bytes, key->len, hdr->bytes, hdr->len,
                                   NULL, write_fn, write_ctx, &w->chunked, err);
    sm_container_header_free(hdr);
    if (st != SM_OK) {
        free(w);
        return st;
    }
    w->expected_length = meta->plaintext_length;
    *out = w;
    return SM_OK;
}

static sm_status writer_fail(sm_container_writer *w, const sm_error *cause, sm_error *err)
{
    w->failure = *cause;
    if (w->failure.status == SM_OK)
        w->failure.status = SM_ERR_STATE;
    if (err != NULL)
        *err = w->failure;
    return w->failure.status;
}

static sm_status writer_check_usable(const sm_container_writer *w, sm_error *err)
{
    if (w->failure.status != SM_OK) {
        if (err != NULL)
            *err = w->failure;
        return w->failure.status;
    }
    if (w->finished)
        return sm_error_set(err, SM_ERR_STATE, "the container is already finished");
    return SM_OK;
}

sm_status sm_container_writer_write(sm_container_writer *w, const uint8_t *data, size_t len,
                                    sm_error *err)
{
    sm_error local;
    sm_status st = writer_check_usable(w, err);
    if (st != SM_OK)
        return st;
    if ((uint64_t)len > w->expected_length - w->written) {
        sm_error_set(&local, SM_ERR_STATE,
                     "the input is longer than the %llu bytes announced in the container header: "
                     "it changed while being packed; pack it again",
                     (unsigned long long)w->expected_length);
        return writer_fail(w, &local, err);
    }
    st = sm_chunked_writer_write(w->chunked, data, len, &local);
    if (st != SM_OK)
        return writer_fail(w, &local, err);
    w->written += len;
    return SM_OK;
}

sm_status sm_container_writer_finish(sm_container_writer *w, sm_error *err)
{
    sm_error local;
    sm_status st = writer_check_usable(w, err);
    if (st != SM_OK)
        return st;
    if (w->written != w->expected_length) {
        sm_error_set(&local, SM_ERR_STATE,
                     "the input had %llu bytes but the container header announces %llu: it "
                     "changed while being packed; pack it again",
                     (unsigned long long)w->written, (unsigned long long)w->expected_length);
        return writer_fail(w, &local, err);
    }
    st = sm_chunked_writer_finish(w->chunked, &local);
    if (st != SM_OK)
        return writer_fail(w, &local, err);
    w->finished = 1;
    return SM_OK;
}

void sm_container_writer_free(sm_container_writer *w)
{
    if (w == NULL)
        return;
    sm_chunked_writer_free(w->chunked);
    free(w);
}

/* ------------------------------------------------------------------------ */
/* Streaming reader                                                          */

struct sm_container_reader {
    sm_container_header *header;
    sm_chunked_reader *chunked;
};

sm_status sm_container_reader_new(sm_read_fn read_fn, void *read_ctx, const sm_secret *key,
                                  sm_container_reader **out, sm_error *err)
{
    sm_container_header *hdr = NULL;
    sm_chunked_reader *chunked = NULL;
    *out = NULL;
    sm_status st = check_media_key(key, err);
    if (st == SM_OK)
        st = sm_container_header_read(read_fn, read_ctx, &hdr, err);
    if (st == SM_OK)
        st = check_encryptable_length(hdr->meta.plaintext_length, err);
    if (st == SM_OK)
        st = sm_chunked_reader_new(SM_COBBLESTONE_256, key->bytes, key->len, hdr->bytes, hdr->len,
                                   read_fn, read_ctx, &chunked, err);
    /* The header is authenticated now, so its length is trusted for the
     * truncation and trailing-data checks. */
    if (st == SM_OK)
        st = sm_chunked_reader_expect_length(chunked, hdr->meta.plaintext_length, err);
    sm_container_reader *r = st == SM_OK ? calloc(1, sizeof(*r)) : NULL;
    if (st == SM_OK && r == NULL)
        st = sm_error_set(err, SM_ERR_NOMEM, "out of memory creating a container reader");
    if (st != SM_OK) {
        sm_chunked_reader_free(chunked);
        sm_container_header_free(hdr);
        return st;
    }
    r->header = hdr;
    r->chunked = chunked;
    *out = r;
    return SM_OK;
}

const sm_container_header *sm_container_reader_header(const sm_container_reader *r)
{
    return r->header;
}

sm_status sm_container_reader_read(sm_container_reader *r, uint8_t *buf, size_t len, size_t *got,
                                   sm_error *err)
{
    return sm_chunked_reader_read(r->chunked, buf, len, got, err);
}

void sm_container_reader_free(sm_container_reader *r)
{
    if (r == NULL)
        return;
    sm_chunked_reader_free(r->chunked);
    sm_container_header_free(r->header);
    free(r);
}

/* ------------------------------------------------------------------------ */
/* Random-access reader                                                      */

struct sm_container_ra {
    sm_container_header *header;
    sm_read_at_fn file_read_at;
    void *file_ctx;
    sm_chunked_ra *chunked;
};

/* The Cobblestone reader addresses its message from the salt on; the file
 * has the header in front. */
static sm_status body_read_at(void *ctx, uint64_t offset, uint8_t *buf, size_t len, size_t *got,
                              sm_error *err)
{
    const sm_container_ra *ra = ctx;
    *got = 0;
    if (offset > UINT64_MAX - ra->header->len)
        return sm_error_set(err, SM_ERR_ARG, "read offset beyond the largest file offset");
    return ra->file_read_at(ra->file_ctx, ra->header->len + offset, buf, len, got, err);
}

static sm_status check_file_size(uint64_t file_size, uint64_t expected, sm_error *err)
{
    if (file_size < expected)
        return sm_error_set(err, SM_ERR_TRUNCATED,
                            "the container is %llu bytes but its header announces %llu: it is "
                            "truncated (an incomplete download or copy?)",
                            (unsigned long long)file_size, (unsigned long long)expected);
    if (file_size > expected)
        return sm_error_set(err, SM_ERR_FORMAT,
                            "the container is %llu bytes, %llu more than its header announces: "
                            "data was appended to it; fetch it again from a trusted source",
                            (unsigned long long)file_size,
                            (unsigned long long)(file_size - expected));
    return SM_OK;
}

sm_status sm_container_ra_new(sm_read_at_fn read_at, void *read_ctx, uint64_t file_size,
                              const sm_secret *key, unsigned cache_chunks,
                              sm_container_ra **out, sm_error *err)
{
    sm_container_header *hdr = NULL;
    *out = NULL;
    sm_status st = check_media_key(key, err);
    if (st == SM_OK)
        st = sm_container_header_read_at(read_at, read_ctx, &hdr, err);
    if (st == SM_OK)
        st = check_encryptable_length(hdr->meta.plaintext_length, err);
    if (st == SM_OK)
        st = check_file_size(file_size,
                             sm_container_file_size(hdr->len, hdr->meta.plaintext_length), err);
    sm_container_ra *ra = st == SM_OK ? calloc(1, sizeof(*ra)) : NULL;
    if (st == SM_OK && ra == NULL)
        st = sm_error_set(err, SM_ERR_NOMEM, "out of memory creating a container reader");
    if (st != SM_OK) {
        sm_container_header_free(hdr);
        return st;
    }
    ra->header = hdr;
    ra->file_read_at = read_at;
    ra->file_ctx = read_ctx;
    st = sm_chunked_ra_new(SM_COBBLESTONE_256, key->bytes, key->len, hdr->bytes, hdr->len,
                           body_read_at, ra, file_size - hdr->len, cache_chunks, &ra->chunked,
                           err);
    if (st != SM_OK) {
        sm_container_ra_free(ra);
        return st;
    }
    *out = ra;
    return SM_OK;
}

const sm_container_header *sm_container_ra_header(const sm_container_ra *ra)
{
    return ra->header;
}

sm_status sm_container_ra_read(sm_container_ra *ra, uint64_t offset, uint8_t *buf, size_t len,
                               size_t *got, sm_error *err)
{
    return sm_chunked_ra_read(ra->chunked, offset, buf, len, got, err);
}

sm_status sm_container_ra_verify_length(sm_container_ra *ra, sm_error *err)
{
    return sm_chunked_ra_verify_length(ra->chunked, err);
}

void sm_container_ra_free(sm_container_ra *ra)
{
    if (ra == NULL)
        return;
    sm_chunked_ra_free(ra->chunked);
    sm_container_header_free(ra->header);
    free(ra);
}
