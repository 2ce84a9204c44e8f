/* The .smc container: round trips, tampering, header strictness, writer
 * length checks and random access that fetches only what it needs. */
#include "config.h"

#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sm_container.h"
#include "sm_test.h"

#define POISON 0xa5
#define CHUNK SM_CHUNK_PLAIN_SIZE

static sm_secret *test_key(uint32_t seed)
{
    uint8_t bytes[SM_MEDIA_KEY_SIZE];
    smt_fill_pattern(bytes, sizeof(bytes), seed);
    sm_secret *key = sm_secret_from(bytes, sizeof(bytes));
    ck_assert_ptr_nonnull(key);
    return key;
}

static sm_container_meta test_meta(uint64_t plaintext_length)
{
    sm_container_meta meta;
    memset(&meta, 0, sizeof(meta));
    snprintf(meta.work_id, sizeof(meta.work_id), "%s", "work-42.v2");
    meta.key_version = 3;
    snprintf(meta.media_type, sizeof(meta.media_type), "%s", "audio/ogg");
    snprintf(meta.original_name, sizeof(meta.original_name), "%s",
             "Sonate \xc3\xa0 l'\xc3\xa9t\xc3\xa9 (live).ogg");
    meta.plaintext_length = plaintext_length;
    return meta;
}

static uint8_t *make_plaintext(size_t len, uint32_t seed)
{
    uint8_t *p = malloc(len > 0 ? len : 1);
    smt_fill_pattern(p, len, seed);
    return p;
}

/* Packs plain into a new in-memory container, written in pieces of `piece`. */
static sm_mem_io pack(const uint8_t *plain, size_t len, const sm_secret *key, size_t piece)
{
    sm_mem_io sink = {0};
    sm_container_writer *w = NULL;
    sm_error err;
    sm_container_meta meta = test_meta(len);
    ck_assert_msg(sm_container_writer_new(&meta, key, sm_mem_write, &sink, &w, &err) == SM_OK,
                  "writer: %s", err.message);
    for (size_t done = 0; done < len;) {
        size_t n = len - done < piece ? len - done : piece;
        ck_assert_int_eq(sm_container_writer_write(w, plain + done, n, &err), SM_OK);
        done += n;
    }
    ck_assert_msg(sm_container_writer_finish(w, &err) == SM_OK, "finish: %s", err.message);
    sm_container_writer_free(w);
    return sink;
}

static int only_zero_or_poison(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != 0 && p[i] != POISON)
            return 0;
    return 1;
}

/* ------------------------------------------------------------------------ */
/* Round trips                                                               */

static void check_stream_roundtrip(const sm_mem_io *file, const uint8_t *plain, size_t len,
                                   const sm_secret *key, size_t read_size)
{
    sm_mem_io src = {.data = file->data, .len = file->len};
    sm_container_reader *r = NULL;
    sm_error err;
    ck_assert_msg(sm_container_reader_new(sm_mem_read, &src, key, &r, &err) == SM_OK, "%s",
                  err.message);
    const sm_container_header *hdr = sm_container_reader_header(r);
    ck_assert_uint_eq(hdr->meta.plaintext_length, len);
    ck_assert_str_eq(hdr->meta.work_id, "work-42.v2");
    ck_assert_uint_eq(hdr->meta.key_version, 3);
    ck_assert_str_eq(hdr->meta.media_type, "audio/ogg");
    ck_assert_str_eq(hdr->meta.original_name, test_meta(0).original_name);
    ck_assert_uint_eq(sm_container_file_size(hdr->len, len), file->len);
    uint8_t *out = malloc(len + read_size);
    size_t used = 0, got = 0;
    for (;;) {
        ck_assert_msg(sm_container_reader_read(r, out + used, read_size, &got, &err) == SM_OK,
                      "len %zu read %zu: %s", len, read_size, err.message);
        if (got == 0)
            break;
        used += got;
        ck_assert_uint_le(used, len);
    }
    ck_assert_uint_eq(used, len);
    ck_assert_mem_eq(out, plain, len);
    free(out);
    sm_container_reader_free(r);
}

static void check_ra_roundtrip(const sm_mem_io *file, const uint8_t *plain, size_t len,
                               const sm_secret *key)
{
    sm_mem_io src = {.data = file->data, .len = file->len};
    sm_container_ra *ra = NULL;
    sm_error err;
    ck_assert_msg(sm_container_ra_new(sm_mem_read_at, &src, file->len, key, 0, &ra, &err) ==
                      SM_OK,
                  "%s", err.message);
    ck_assert_uint_eq(sm_container_ra_header(ra)->meta.plaintext_length, len);
    ck_assert_int_eq(sm_container_ra_verify_length(ra, &err), SM_OK);
    uint8_t *out = malloc(len + 100);
    size_t got = 0;
    ck_assert_int_eq(sm_container_ra_read(ra, 0, out, len + 100, &got, &err), SM_OK);
    ck_assert_uint_eq(got, len);
    ck_assert_mem_eq(out, plain, len);
    /* At and past the end: an authenticated, empty read. */
    ck_assert_int_eq(sm_container_ra_read(ra, len, out, 10, &got, &err), SM_OK);
    ck_assert_uint_eq(got, 0);
    ck_assert_int_eq(sm_container_ra_read(ra, (uint64_t)len + 12345, out, 10, &got, &err), SM_OK);
    ck_assert_uint_eq(got, 0);
    free(out);
    sm_container_ra_free(ra);
}

static const size_t roundtrip_lengths[] = {0,         1,         16383,        16384,
                                           16385,     3 * CHUNK, 3 * CHUNK + 5};

START_TEST(test_roundtrip)
{
    size_t len = roundtrip_lengths[_i];
    sm_secret *key = test_key(1);
    uint8_t *plain = make_plaintext(len, 0x1234u + (uint32_t)len);
    const size_t pieces[] = {1, 1000, CHUNK, 100000};
    for (size_t p = 0; p < sizeof(pieces) / sizeof(pieces[0]); p++) {
        if (pieces[p] == 1 && len > 20000)
            continue;
        sm_mem_io file = pack(plain, len, key, pieces[p]);
        check_stream_roundtrip(&file, plain, len, key, 1000);
        check_stream_roundtrip(&file, plain, len, key, CHUNK);
        check_stream_roundtrip(&file, plain, len, key, 70000);
        if (len < 20000)
            check_stream_roundtrip(&file, plain, len, key, 1);
        check_ra_roundtrip(&file, plain, len, key);
        free(file.data);
    }
    free(plain);
    sm_secret_free(key);
}
END_TEST

/* The same bytes through the file descriptor adapters. */
START_TEST(test_roundtrip_files)
{
    size_t len = 2 * CHUNK + 777;
    sm_secret *key = test_key(2);
    uint8_t *plain = make_plaintext(len, 99);
    const char *dir = smt_tmpdir();
    char path[512];
    snprintf(path, sizeof(path), "%s/x.smc", dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ck_assert_int_ge(fd, 0);
    sm_fd_io out = {.fd = fd, .name = path};
    sm_container_writer *w = NULL;
    sm_error err;
    sm_container_meta meta = test_meta(len);
    ck_assert_int_eq(sm_container_writer_new(&meta, key, sm_fd_write, &out, &w, &err), SM_OK);
    ck_assert_int_eq(sm_container_writer_write(w, plain, len, &err), SM_OK);
    ck_assert_int_eq(sm_container_writer_finish(w, &err), SM_OK);
    sm_container_writer_free(w);
    close(fd);

    fd = open(path, O_RDONLY);
    sm_fd_io in = {.fd = fd, .name = path};
    sm_container_reader *r = NULL;
    ck_assert_int_eq(sm_container_reader_new(sm_fd_read, &in, key, &r, &err), SM_OK);
    uint8_t *buf = malloc(len + 1);
    size_t used = 0, got = 0;
    do {
        ck_assert_int_eq(sm_container_reader_read(r, buf + used, len + 1 - used, &got, &err),
                         SM_OK);
        used += got;
    } while (got > 0 && used <= len);
    ck_assert_uint_eq(used, len);
    ck_assert_mem_eq(buf, plain, len);
    sm_container_reader_free(r);

    size_t file_len = 0;
    free(smt_read_file(path, &file_len));
    sm_container_ra *ra = NULL;
    ck_assert_int_eq(sm_container_ra_new(sm_fd_read_at, &in, file_len, key, 2, &ra, &err), SM_OK);
    ck_assert_int_eq(sm_container_ra_read(ra, CHUNK - 3, buf, 10, &got, &err), SM_OK);
    ck_assert_uint_eq(got, 10);
    ck_assert_mem_eq(buf, plain + CHUNK - 3, 10);
    sm_container_ra_free(ra);
    close(fd);

    /* A closed descriptor is an I/O error naming the file. */
    sm_fd_io closed = {.fd = fd, .name = path};
    ck_assert_int_eq(sm_fd_read(&closed, buf, 10, &got, &err), SM_ERR_IO);
    ck_assert_ptr_nonnull(strstr(err.message, path));
    free(buf);
    free(plain);
    sm_secret_free(key);
    smt_rm_rf(dir);
}
END_TEST

/* A source that hands out at most a few bytes per call, as pipes do. */
typedef struct dribble_src {
    sm_mem_io mem;
    uint32_t state;
} dribble_src;

static sm_status dribble_read(void *ctx, uint8_t *buf, size_t len, size_t *got, sm_error *err)
{
    dribble_src *d = ctx;
    d->state = d->state * 1103515245u + 12345u;
    size_t most = 1 + (d->state >> 16) % 700;
    return sm_mem_read(&d->mem, buf, len < most ? len : most, got, err);
}

START_TEST(test_short_reads_from_source)
{
    size_t len = 2 * CHUNK + 9;
    sm_secret *key = test_key(3);
    uint8_t *plain = make_plaintext(len, 5);
    sm_mem_io file = pack(plain, len, key, 4096);
    dribble_src src = {.mem = {.data = file.data, .len = file.len}, .state = 1};
    sm_container_reader *r = NULL;
    sm_error err;
    ck_assert_int_eq(sm_container_reader_new(dribble_read, &src, key, &r, &err), SM_OK);
    uint8_t *out = malloc(len + 10);
    size_t used = 0, got = 0;
    do {
        ck_assert_msg(sm_container_reader_read(r, out + used, 5000, &got, &err) == SM_OK, "%s",
                      err.message);
        used += got;
    } while (got > 0);
    ck_assert_uint_eq(used, len);
    ck_assert_mem_eq(out, plain, len);
    sm_container_reader_free(r);
    free(out);
    free(file.data);
    free(plain);
    sm_secret_free(key);
}
END_TEST

START_TEST(test_header_encoding_deterministic)
{
    sm_container_meta meta = test_meta(123456);
    sm_container_header *a = NULL, *b = NULL, *parsed = NULL;
    sm_error err;
    ck_assert_int_eq(sm_container_header_encode(&meta, &a, &err), SM_OK);
    ck_assert_int_eq(sm_container_header_encode(&meta, &b, &err), SM_OK);
    ck_assert_uint_eq(a->len, b->len);
    ck_assert_mem_eq(a->bytes, b->bytes, a->len);
    ck_assert_mem_eq(a->bytes, SM_CONTAINER_MAGIC, SM_CONTAINER_MAGIC_SIZE);
    /* Compact, keys sorted. */
    const char *expect = "{\"key_version\":3,\"media_type\":\"audio/ogg\",\"original_name\":"
                         "\"Sonate \xc3\xa0 l'\xc3\xa9t\xc3\xa9 (live).ogg\","
                         "\"plaintext_length\":123456,\"work_id\":\"work-42.v2\"}";
    ck_assert_uint_eq(a->len, SM_CONTAINER_FIXED_SIZE + strlen(expect));
    ck_assert_mem_eq(a->bytes + SM_CONTAINER_FIXED_SIZE, expect, strlen(expect));
    ck_assert_int_eq(sm_container_header_parse(a->bytes, a->len, &parsed, NULL, &err), SM_OK);
    ck_assert_mem_eq(&parsed->meta, &meta, sizeof(meta));
    ck_assert_mem_eq(parsed->bytes, a->bytes, a->len);
    sm_container_header_free(a);
    sm_container_header_free(b);
    sm_container_header_free(parsed);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Tampering                                                                 */

typedef struct damaged {
    char name[96];
    uint8_t *data;
    size_t len;
    uint64_t max_plain;   /* plaintext the streaming reader may hand out first */
    sm_status expect;     /* the status both readers must report; SM_OK: any error */
    int first_bad_chunk;  /* for random-access per-chunk reads; -1 when unknown */
} damaged;

typedef struct original {
    uint8_t *plain;
    size_t plain_len;
    sm_mem_io file;
    size_t header_len;
    const sm_secret *key;
} original;

static void expect_stream_failure(const original *o, const damaged *d, size_t read_size)
{
    sm_mem_io src = {.data = d->data, .len = d->len};
    sm_container_reader *r = NULL;
    sm_error err;
    size_t used = 0;
    memset(&err, 0, sizeof(err));
    sm_status st = sm_container_reader_new(sm_mem_read, &src, o->key, &r, &err);
    if (st != SM_OK)
        ck_assert_ptr_null(r);
    size_t cap = o->plain_len + read_size;
    uint8_t *out = malloc(cap);
    memset(out, POISON, cap);
    while (st == SM_OK) {
        size_t got = 99;
        st = sm_container_reader_read(r, out + used, read_size, &got, &err);
        if (st != SM_OK) {
            ck_assert_uint_eq(got, 0);
            ck_assert_msg(only_zero_or_poison(out + used, read_size),
                          "%s: plaintext of the failed chunk reached the caller", d->name);
            break;
        }
        ck_assert_msg(got > 0, "%s: streaming reader reached a clean end", d->name);
        used += got;
        ck_assert_uint_le(used, o->plain_len);
    }
    ck_assert_msg(st != SM_OK, "%s: accepted", d->name);
    if (d->expect != SM_OK)
        ck_assert_msg(st == d->expect, "%s: streaming reader said %s (%s), expected %s", d->name,
                      sm_status_name(st), err.message, sm_status_name(d->expect));
    ck_assert_msg(strlen(err.message) > 10, "%s: no error message", d->name);
    ck_assert_msg(used <= d->max_plain, "%s: %zu bytes handed out, at most %llu expected",
                  d->name, used, (unsigned long long)d->max_plain);
    ck_assert_msg(memcmp(out, o->plain, used) == 0, "%s: output is not the plaintext", d->name);
    if (r != NULL) {
        for (int i = 0; i < 3; i++) {
            sm_error again;
            size_t got = 99;
            ck_assert_int_eq(sm_container_reader_read(r, out, 100, &got, &again), st);
            ck_assert_uint_eq(got, 0);
            ck_assert_str_eq(again.message, err.message);
        }
    }
    sm_container_reader_free(r);
    free(out);
}

static void expect_ra_failure(const original *o, const damaged *d)
{
    sm_mem_io src = {.data = d->data, .len = d->len};
    sm_container_ra *ra = NULL;
    sm_error err;
    sm_status st = sm_container_ra_new(sm_mem_read_at, &src, d->len, o->key, 0, &ra, &err);
    size_t cap = o->plain_len + 100;
    uint8_t *out = malloc(cap);
    size_t got = 99;
    if (st == SM_OK) {
        memset(out, POISON, cap);
        st = sm_container_ra_read(ra, 0, out, cap, &got, &err);
        ck_assert_msg(st != SM_OK, "%s: random access read the whole message", d->name);
        ck_assert_uint_eq(got, 0);
        ck_assert_msg(only_zero_or_poison(out, cap), "%s: plaintext left after failure", d->name);
        sm_error again;
        ck_assert_int_eq(sm_container_ra_read(ra, 0, out, 1, &got, &again), st);
        ck_assert_int_eq(sm_container_ra_verify_length(ra, &again), st);
        ck_assert_str_eq(again.message, err.message);
        sm_container_ra_free(ra);

        /* Chunk by chunk on a fresh reader: the good ones before the damage
         * read fine, the damaged one fails and the failure sticks. */
        if (d->first_bad_chunk >= 0) {
            ck_assert_int_eq(
                sm_container_ra_new(sm_mem_read_at, &src, d->len, o->key, 0, &ra, &err), SM_OK);
            for (int k = 0; (uint64_t)k < sm_container_chunk_count(o->plain_len); k++) {
                memset(out, POISON, cap);
                sm_status chunk_st =
                    sm_container_ra_read(ra, (uint64_t)k * CHUNK, out, CHUNK, &got, &err);
                if (k < d->first_bad_chunk) {
                    ck_assert_msg(chunk_st == SM_OK, "%s: chunk %d: %s", d->name, k, err.message);
                    ck_assert_mem_eq(out, o->plain + (size_t)k * CHUNK, got);
                } else {
                    ck_assert_msg(chunk_st != SM_OK, "%s: chunk %d read", d->name, k);
                    ck_assert_uint_eq(got, 0);
                    ck_assert(only_zero_or_poison(out, cap));
                    if (d->expect != SM_OK)
                        ck_assert_int_eq(chunk_st, d->expect);
                }
            }
            sm_container_ra_free(ra);
        }
    }
    ck_assert_msg(st != SM_OK, "%s: accepted", d->name);
    if (d->expect != SM_OK)
        ck_assert_msg(st == d->expect, "%s: random access said %s (%s), expected %s", d->name,
                      sm_status_name(st), err.message, sm_status_name(d->expect));
    free(out);
}

static void expect_failure(const original *o, damaged *d)
{
    expect_stream_failure(o, d, 5000);
    expect_stream_failure(o, d, 100000);
    expect_ra_failure(o, d);
    free(d->data);
    d->data = NULL;
}

static damaged copy_of(const original *o, const char *name)
{
    damaged d;
    memset(&d, 0, sizeof(d));
    snprintf(d.name, sizeof(d.name), "%s", name);
    d.len = o->file.len;
    d.data = malloc(d.len + 2 * SM_CHUNK_CIPHER_SIZE);
    memcpy(d.data, o->file.data, d.len);
    d.max_plain = 0;
    d.expect = SM_OK;
    d.first_bad_chunk = -1;
    return d;
}

static original make_original(size_t plain_len, const sm_secret *key)
{
    original o;
    o.plain_len = plain_len;
    o.plain = make_plaintext(plain_len, 777);
    o.key = key;
    o.file = pack(o.plain, plain_len, key, 5000);
    sm_container_header *hdr = NULL;
    sm_error err;
    ck_assert_int_eq(sm_container_header_parse(o.file.data, o.file.len, &hdr, NULL, &err), SM_OK);
    o.header_len = hdr->len;
    sm_container_header_free(hdr);
    return o;
}

static void free_original(original *o)
{
    free(o->plain);
    free(o->file.data);
}

static size_t chunk_cipher_len(const original *o, uint64_t k)
{
    return k + 1 < sm_container_chunk_count(o->plain_len)
               ? SM_CHUNK_CIPHER_SIZE
               : o->plain_len % CHUNK + SM_CHUNK_TAG_SIZE;
}

START_TEST(test_tamper_header_bits)
{
    sm_secret *key = test_key(10);
    original o = make_original(3 * CHUNK + 5, key);
    /* Every bit 0 and bit 7 of the fixed part and the metadata. */
    for (size_t pos = 0; pos < o.header_len; pos++) {
        for (int bit = 0; bit < 8; bit += 7) {
            char name[96];
            snprintf(name, sizeof(name), "header byte %zu bit %d", pos, bit);
            damaged d = copy_of(&o, name);
            d.data[pos] ^= (uint8_t)(1u << bit);
            if (pos < SM_CONTAINER_MAGIC_SIZE)
                d.expect = SM_ERR_FORMAT;
            else if (pos < 10)
                d.expect = SM_ERR_UNSUPPORTED;
            else if (pos == 10 && bit == 7)
                d.expect = SM_ERR_TOO_LARGE;
            expect_failure(&o, &d);
        }
    }
    free_original(&o);
    sm_secret_free(key);
}
END_TEST

START_TEST(test_tamper_prefix_and_chunks)
{
    sm_secret *key = test_key(11);
    original o = make_original(3 * CHUNK + 5, key);
    uint64_t chunks = sm_container_chunk_count(o.plain_len);
    ck_assert_uint_eq(chunks, 4);
    /* Salt and commitment: every byte; the commitment check catches them all. */
    for (size_t i = 0; i < SM_CHUNKED_PREFIX_SIZE; i++) {
        char name[96];
        snprintf(name, sizeof(name), "%s byte %zu", i < SM_CHUNKED_SALT_SIZE ? "salt" : "commitment",
                 i);
        damaged d = copy_of(&o, name);
        d.data[o.header_len + i] ^= 0x10;
        d.expect = SM_ERR_AUTH;
        expect_failure(&o, &d);
    }
    /* Each chunk: first, middle and last body byte, first and last tag byte. */
    for (uint64_t k = 0; k < chunks; k++) {
        size_t start = (size_t)sm_container_chunk_offset(o.header_len, k);
        size_t body = chunk_cipher_len(&o, k) - SM_CHUNK_TAG_SIZE;
        size_t spots[5] = {0, body / 2, body > 0 ? body - 1 : 0, body, body + 15};
        const char *what[5] = {"body start", "body middle", "body end", "tag start", "tag end"};
        for (int s = 0; s < 5; s++) {
            if (s < 3 && body == 0)
                continue;
            char name[96];
            snprintf(name, sizeof(name), "chunk %llu %s", (unsigned long long)k, what[s]);
            damaged d = copy_of(&o, name);
            d.data[start + spots[s]] ^= 0x01;
            d.expect = SM_ERR_AUTH;
            d.max_plain = k * CHUNK;
            d.first_bad_chunk = (int)k;
            expect_failure(&o, &d);
        }
    }
    free_original(&o);
    sm_secret_free(key);
}
END_TEST

static void truncations(size_t plain_len)
{
    sm_secret *key = test_key(12);
    original o = make_original(plain_len, key);
    uint64_t chunks = sm_container_chunk_count(o.plain_len);
    size_t cuts[64];
    size_t ncuts = 0;
    /* Inside the header, inside the prefix, at every chunk boundary, inside
     * every chunk, and one byte short of the end. */
    const size_t header_cuts[] = {0, 1, 7, 8, 9, 10, 13, 14, 15, o.header_len - 1, o.header_len,
                                  o.header_len + 10, o.header_len + SM_CHUNKED_PREFIX_SIZE - 1};
    for (size_t i = 0; i < sizeof(header_cuts) / sizeof(header_cuts[0]); i++)
        cuts[ncuts++] = header_cuts[i];
    for (uint64_t k = 0; k < chunks; k++) {
        size_t start = (size_t)sm_container_chunk_offset(o.header_len, k);
        cuts[ncuts++] = start;
        cuts[ncuts++] = start + chunk_cipher_len(&o, k) / 2;
        cuts[ncuts++] = start + chunk_cipher_len(&o, k) - 1;
    }
    cuts[ncuts++] = o.file.len - 1;
    for (size_t i = 0; i < ncuts; i++) {
        char name[96];
        snprintf(name, sizeof(name), "%zu-byte plaintext cut to %zu of %zu bytes", plain_len,
                 cuts[i], o.file.len);
        damaged d = copy_of(&o, name);
        d.len = cuts[i];
        d.expect = SM_ERR_TRUNCATED;
        if (cuts[i] > 0 && cuts[i] < SM_CONTAINER_MAGIC_SIZE)
            d.expect = SM_ERR_TRUNCATED;
        /* Whole chunks before the cut may come out of the streaming reader. */
        size_t body_start = o.header_len + SM_CHUNKED_PREFIX_SIZE;
        d.max_plain = cuts[i] > body_start ? (cuts[i] - body_start) / SM_CHUNK_CIPHER_SIZE * CHUNK
                                           : 0;
        expect_failure(&o, &d);
    }
    free_original(&o);
    sm_secret_free(key);
}

START_TEST(test_tamper_truncation)
{
    truncations(3 * CHUNK + 5);
    /* Here the final chunk is empty: cutting exactly it off must fail too. */
    truncations(3 * CHUNK);
}
END_TEST

/* A source that claims the full size but ends early (e.g. a file truncated
 * after its size was taken): the random-access reader must still fail. */
START_TEST(test_source_shorter_than_announced)
{
    sm_secret *key = test_key(13);
    original o = make_original(3 * CHUNK + 5, key);
    for (uint64_t k = 0; k < 4; k++) {
        sm_mem_io src = {.data = o.file.data,
                         .len = (size_t)sm_container_chunk_offset(o.header_len, k) + 10};
        sm_container_ra *ra = NULL;
        sm_error err;
        ck_assert_int_eq(sm_container_ra_new(sm_mem_read_at, &src, o.file.len, key, 0, &ra, &err),
                         SM_OK);
        uint8_t buf[64];
        size_t got = 99;
        memset(buf, POISON, sizeof(buf));
        ck_assert_int_eq(sm_container_ra_read(ra, k * CHUNK, buf, 4, &got, &err),
                         SM_ERR_TRUNCATED);
        ck_assert_uint_eq(got, 0);
        ck_assert(only_zero_or_poison(buf, sizeof(buf)));
        ck_assert_int_eq(sm_container_ra_read(ra, 0, buf, 4, &got, &err), SM_ERR_TRUNCATED);
        sm_container_ra_free(ra);
    }
    free_original(&o);
    sm_secret_free(key);
}
END_TEST

START_TEST(test_tamper_reorder_and_append)
{
    sm_secret *key = test_key(14);
    original o = make_original(3 * CHUNK + 5, key);
    size_t c0 = (size_t)sm_container_chunk_offset(o.header_len, 0);
    size_t c1 = (size_t)sm_container_chunk_offset(o.header_len, 1);
    size_t c2 = (size_t)sm_container_chunk_offset(o.header_len, 2);
    size_t c3 = (size_t)sm_container_chunk_offset(o.header_len, 3);
    const size_t full = SM_CHUNK_CIPHER_SIZE;

    damaged d = copy_of(&o, "chunks 0 and 1 swapped");
    memcpy(d.data + c0, o.file.data + c1, full);
    memcpy(d.data + c1, o.file.data + c0, full);
    d.expect = SM_ERR_AUTH;
    d.first_bad_chunk = 0;
    expect_failure(&o, &d);

    d = copy_of(&o, "chunks 1 and 2 swapped");
    memcpy(d.data + c1, o.file.data + c2, full);
    memcpy(d.data + c2, o.file.data + c1, full);
    d.expect = SM_ERR_AUTH;
    d.max_plain = CHUNK;
    d.first_bad_chunk = 1;
    expect_failure(&o, &d);

    d = copy_of(&o, "chunk 0 duplicated over chunk 1");
    memcpy(d.data + c1, o.file.data + c0, full);
    d.expect = SM_ERR_AUTH;
    d.max_plain = CHUNK;
    d.first_bad_chunk = 1;
    expect_failure(&o, &d);

    /* Appended data: the header's length makes it trailing data. */
    d = copy_of(&o, "copy of chunk 1 appended");
    memcpy(d.data + d.len, o.file.data + c1, full);
    d.len += full;
    d.expect = SM_ERR_FORMAT;
    d.max_plain = 3 * CHUNK;
    expect_failure(&o, &d);

    d = copy_of(&o, "copy of the final chunk appended");
    memcpy(d.data + d.len, o.file.data + c3, o.file.len - c3);
    d.len += o.file.len - c3;
    d.expect = SM_ERR_FORMAT;
    d.max_plain = 3 * CHUNK;
    expect_failure(&o, &d);

    d = copy_of(&o, "one garbage byte appended");
    d.data[d.len++] = 0x42;
    d.expect = SM_ERR_FORMAT;
    d.max_plain = 3 * CHUNK;
    expect_failure(&o, &d);

    d = copy_of(&o, "a chunk of garbage appended");
    smt_fill_pattern(d.data + d.len, full, 31337);
    d.len += full;
    d.expect = SM_ERR_FORMAT;
    d.max_plain = 3 * CHUNK;
    expect_failure(&o, &d);

    /* A final chunk moved before the others cannot be swapped in place
     * (different sizes); the final chunk cut off and replaced with chunk 0
     * is a length change. A different key fails the commitment. */
    sm_secret *other = test_key(15);
    original wrong = o;
    wrong.key = other;
    d = copy_of(&o, "wrong key");
    d.expect = SM_ERR_AUTH;
    expect_failure(&wrong, &d);
    sm_secret_free(other);

    free_original(&o);
    sm_secret_free(key);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Header strictness                                                         */

/* Builds a header with the given version, metadata text and declared length
 * (SIZE_MAX: the text's real length). */
static uint8_t *build_header(unsigned version, const char *json, size_t declared, size_t *len)
{
    size_t json_len = strlen(json);
    size_t meta_len = declared == SIZE_MAX ? json_len : declared;
    *len = SM_CONTAINER_FIXED_SIZE + json_len;
    uint8_t *h = malloc(*len + 1);
    memcpy(h, SM_CONTAINER_MAGIC, SM_CONTAINER_MAGIC_SIZE);
    h[8] = (uint8_t)(version >> 8);
    h[9] = (uint8_t)version;
    h[10] = (uint8_t)(meta_len >> 24);
    h[11] = (uint8_t)(meta_len >> 16);
    h[12] = (uint8_t)(meta_len >> 8);
    h[13] = (uint8_t)meta_len;
    memcpy(h + SM_CONTAINER_FIXED_SIZE, json, json_len);
    return h;
}

#define GOOD_META                                                                                  \
    "{\"work_id\":\"w1\",\"key_version\":1,\"media_type\":\"video/mp4\",\"original_name\":"      \
    "\"a.mp4\",\"plaintext_length\":10}"

typedef struct header_case {
    const char *name;
    unsigned version;
    const char *json;
    size_t declared;
    sm_status expect;
    const char *message_part; /* must appear in the error message */
} header_case;

static const header_case header_cases[] = {
    {"valid", 1, GOOD_META, SIZE_MAX, SM_OK, NULL},
    {"valid with whitespace", 1,
     " {\n \"work_id\" : \"w1\", \"key_version\" : 1, \"media_type\" : \"video/mp4\",\n"
     " \"original_name\" : \"\\u00e9t\\u00e9.mp4\", \"plaintext_length\" : 0 }\n",
     SIZE_MAX, SM_OK, NULL},
    {"unknown version", 2, GOOD_META, SIZE_MAX, SM_ERR_UNSUPPORTED, "version 2"},
    {"version 0", 0, GOOD_META, SIZE_MAX, SM_ERR_UNSUPPORTED, "version 0"},
    {"metadata length 0", 1, GOOD_META, 0, SM_ERR_FORMAT, "empty metadata"},
    {"metadata length too big", 1, GOOD_META, SM_CONTAINER_META_MAX + 1, SM_ERR_TOO_LARGE,
     "limit"},
    {"metadata length 2^32-1", 1, GOOD_META, 0xffffffffu, SM_ERR_TOO_LARGE, "limit"},
    {"unknown field", 1,
     "{\"work_id\":\"w1\",\"key_version\":1,\"media_type\":\"video/mp4\",\"original_name\":"
     "\"a.mp4\",\"plaintext_length\":10,\"title\":\"x\"}",
     SIZE_MAX, SM_ERR_FORMAT, "title"},
    {"missing field", 1,
     "{\"work_id\":\"w1\",\"key_version\":1,\"media_type\":\"video/mp4\",\"plaintext_length\":10}",
     SIZE_MAX, SM_ERR_FORMAT, "original_name"},
    {"duplicate key", 1,
     "{\"work_id\":\"w1\",\"work_id\":\"w2\",\"key_version\":1,\"media_type\":\"video/mp4\","
     "\"original_name\":\"a.mp4\",\"plaintext_length\":10}",
     SIZE_MAX, SM_ERR_FORMAT, "duplicate"},
    {"key_version as string", 1,
     "{\"work_id\":\"w1\",\"key_version\":\"1\",\"media_type\":\"video/mp4\",\"original_name\":"
     "\"a.mp4\",\"plaintext_length\":10}",
     SIZE_MAX, SM_ERR_FORMAT, "key_version"},
    {"plaintext_length as real", 1,
     "{\"work_id\":\"w1\",\"key_version\":1,\"media_type\":\"video/mp4\",\"original_name\":"
     "\"a.mp4\",\"plaintext_length\":10.0}",
     SIZE_MAX, SM_ERR_FORMAT, "plaintext_length"},
    {"work_id as number", 1,
     "{\"work_id\":7,\"key_version\":1,\"media_type\":\"video/mp4\",\"original_name\":"
     "\"a.mp4\",\"plaintext_length\":10}",
     SIZE_MAX, SM_ERR_FORMAT, "work_id"},
    {"work id ../x", 1,
     "{\"work_id\":\"../x\",\"key_version\":1,\"media_type\":\"video/mp4\",\"original_name\":"
     "\"a.mp4\",\"plaintext_length\":10}",
     SIZE_MAX, SM_ERR_FORMAT, "work_id"},
    {"work id too long", 1,
     "{\"work_id\":\"a12345678901234567890123456789012345678901234567890123456789012345\","
     "\"key_version\":1,\"media_type\":\"video/mp4\",\"original_name\":\"a.mp4\","
     "\"plaintext_length\":10}",
     SIZE_MAX, SM_ERR_FORMAT, "work_id"},
    {"key_version 0", 1,
     "{\"work_id\":\"w1\",\"key_version\":0,\"media_type\":\"video/mp4\",\"original_name\":"
     "\"a.mp4\",\"plaintext_length\":10}",
     SIZE_MAX, SM_ERR_FORMAT, "key_version"},
    {"key_version 2^32", 1,
     "{\"work_id\":\"w1\",\"key_version\":4294967296,\"media_type\":\"video/mp4\","
     "\"original_name\":\"a.mp4\",\"plaintext_length\":10}",
     SIZE_MAX, SM_ERR_FORMAT, "key_version"},
    {"negative plaintext_length", 1,
     "{\"work_id\":\"w1\",\"key_version\":1,\"media_type\":\"video/mp4\",\"original_name\":"
     "\"a.mp4\",\"plaintext_length\":-1}",
     SIZE_MAX, SM_ERR_FORMAT, "plaintext_length"},
    {"plaintext_length 2^53", 1,
     "{\"work_id\":\"w1\",\"key_version\":1,\"media_type\":\"video/mp4\",\"original_name\":"
     "\"a.mp4\",\"plaintext_length\":9007199254740992}",
     SIZE_MAX, SM_ERR_FORMAT, "plaintext_length"},
    {"bad media type", 1,
     "{\"work_id\":\"w1\",\"key_version\":1,\"media_type\":\"video\",\"original_name\":"
     "\"a.mp4\",\"plaintext_length\":10}",
     SIZE_MAX, SM_ERR_FORMAT, "media_type"},
    {"name with a slash", 1,
     "{\"work_id\":\"w1\",\"key_version\":1,\"media_type\":\"video/mp4\",\"original_name\":"
     "\"../a.mp4\",\"plaintext_length\":10}",
     SIZE_MAX, SM_ERR_FORMAT, "original_name"},
    {"name with a control character", 1,
     "{\"work_id\":\"w1\",\"key_version\":1,\"media_type\":\"video/mp4\",\"original_name\":"
     "\"a\\u0007.mp4\",\"plaintext_length\":10}",
     SIZE_MAX, SM_ERR_FORMAT, "original_name"},
    {"name with NUL", 1,
     "{\"work_id\":\"w1\",\"key_version\":1,\"media_type\":\"video/mp4\",\"original_name\":"
     "\"a\\u0000.mp4\",\"plaintext_length\":10}",
     SIZE_MAX, SM_ERR_FORMAT, "u0000"},
    {"empty name", 1,
     "{\"work_id\":\"w1\",\"key_version\":1,\"media_type\":\"video/mp4\",\"original_name\":"
     "\"\",\"plaintext_length\":10}",
     SIZE_MAX, SM_ERR_FORMAT, "original_name"},
    {"trailing garbage in metadata", 1, GOOD_META "x", SIZE_MAX, SM_ERR_FORMAT, "JSON"},
    {"two objects", 1, GOOD_META GOOD_META, SIZE_MAX, SM_ERR_FORMAT, "JSON"},
    {"array", 1, "[1,2]", SIZE_MAX, SM_ERR_FORMAT, "object"},
    {"string", 1, "\"x\"", SIZE_MAX, SM_ERR_FORMAT, NULL},
    {"number", 1, "1", SIZE_MAX, SM_ERR_FORMAT, NULL},
    {"empty object", 1, "{}", SIZE_MAX, SM_ERR_FORMAT, "missing"},
    {"invalid UTF-8", 1,
     "{\"work_id\":\"w1\",\"key_version\":1,\"media_type\":\"video/mp4\",\"original_name\":"
     "\"a\xff.mp4\",\"plaintext_length\":10}",
     SIZE_MAX, SM_ERR_FORMAT, NULL},
};

START_TEST(test_header_strictness)
{
    const header_case *hc = &header_cases[_i];
    size_t len = 0;
    uint8_t *h = build_header(hc->version, hc->json, hc->declared, &len);
    sm_container_header *hdr = NULL;
    size_t needed = 99;
    sm_error err;
    memset(&err, 0, sizeof(err));
    sm_status st = sm_container_header_parse(h, len, &hdr, &needed, &err);
    ck_assert_msg(st == hc->expect, "%s: got %s (%s), expected %s", hc->name, sm_status_name(st),
                  err.message, sm_status_name(hc->expect));
    if (st == SM_OK) {
        ck_assert_uint_eq(hdr->len, len);
        ck_assert_mem_eq(hdr->bytes, h, len);
        ck_assert_str_eq(hdr->meta.work_id, "w1");
        sm_container_header_free(hdr);
    } else {
        ck_assert_ptr_null(hdr);
        ck_assert_msg(strlen(err.message) > 10, "%s: no message", hc->name);
        if (hc->message_part != NULL)
            ck_assert_msg(strstr(err.message, hc->message_part) != NULL,
                          "%s: message \"%s\" does not mention \"%s\"", hc->name, err.message,
                          hc->message_part);
    }
    /* The sequential and positional readers agree with the parser. */
    sm_mem_io src = {.data = h, .len = len};
    st = sm_container_header_read(sm_mem_read, &src, &hdr, &err);
    ck_assert_msg(st == hc->expect, "%s: sequential read said %s (%s)", hc->name,
                  sm_status_name(st), err.message);
    if (st == SM_OK)
        ck_assert_uint_eq(src.pos, len);
    sm_container_header_free(hdr);
    st = sm_container_header_read_at(sm_mem_read_at, &src, &hdr, &err);
    ck_assert_msg(st == hc->expect, "%s: positional read said %s (%s)", hc->name,
                  sm_status_name(st), err.message);
    sm_container_header_free(hdr);
    free(h);
}
END_TEST

START_TEST(test_header_truncated_and_magic)
{
    size_t len = 0;
    uint8_t *h = build_header(1, GOOD_META, SIZE_MAX, &len);
    sm_container_header *hdr = NULL;
    size_t needed = 0;
    sm_error err;
    /* Every prefix is reported as truncated, with the bytes still needed. */
    for (size_t cut = 0; cut < len; cut++) {
        ck_assert_int_eq(sm_container_header_parse(h, cut, &hdr, &needed, &err), SM_ERR_TRUNCATED);
        ck_assert_ptr_null(hdr);
        ck_assert_uint_eq(needed, cut < SM_CONTAINER_FIXED_SIZE ? SM_CONTAINER_FIXED_SIZE : len);
        sm_mem_io src = {.data = h, .len = cut};
        ck_assert_int_eq(sm_container_header_read(sm_mem_read, &src, &hdr, &err),
                         SM_ERR_TRUNCATED);
        ck_assert_int_eq(sm_container_header_read_at(sm_mem_read_at, &src, &hdr, &err),
                         SM_ERR_TRUNCATED);
    }
    /* A wrong first byte is recognised from a one-byte probe. */
    const uint8_t png[] = {0x89, 'P', 'N', 'G'};
    ck_assert_int_eq(sm_container_header_parse(png, 1, &hdr, &needed, &err), SM_ERR_TRUNCATED);
    ck_assert_int_eq(sm_container_header_parse(png, 2, &hdr, &needed, &err), SM_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(err.message, "not a secmedia container"));
    const uint8_t text[] = "#EXTM3U\n";
    ck_assert_int_eq(sm_container_header_parse(text, 1, &hdr, &needed, &err), SM_ERR_FORMAT);
    /* Bytes after the header are the body, not part of the header. */
    uint8_t *longer = malloc(len + 100);
    memcpy(longer, h, len);
    memset(longer + len, 'z', 100);
    ck_assert_int_eq(sm_container_header_parse(longer, len + 100, &hdr, &needed, &err), SM_OK);
    ck_assert_uint_eq(hdr->len, len);
    sm_container_header_free(hdr);
    sm_mem_io src = {.data = longer, .len = len + 100};
    ck_assert_int_eq(sm_container_header_read(sm_mem_read, &src, &hdr, &err), SM_OK);
    ck_assert_uint_eq(src.pos, len); /* exactly the header consumed */
    sm_container_header_free(hdr);
    free(longer);
    free(h);
}
END_TEST

START_TEST(test_meta_validation_on_write)
{
    sm_secret *key = test_key(20);
    sm_mem_io sink = {0};
    sm_container_writer *w = NULL;
    sm_error err;
    sm_container_meta meta = test_meta(10);
    snprintf(meta.work_id, sizeof(meta.work_id), "%s", "../etc");
    ck_assert_int_eq(sm_container_writer_new(&meta, key, sm_mem_write, &sink, &w, &err),
                     SM_ERR_FORMAT);
    meta = test_meta(10);
    meta.key_version = 0;
    ck_assert_int_eq(sm_container_writer_new(&meta, key, sm_mem_write, &sink, &w, &err),
                     SM_ERR_FORMAT);
    meta = test_meta(10);
    snprintf(meta.original_name, sizeof(meta.original_name), "%s", "a/b");
    ck_assert_int_eq(sm_container_writer_new(&meta, key, sm_mem_write, &sink, &w, &err),
                     SM_ERR_FORMAT);
    meta = test_meta(10);
    memset(meta.media_type, 'a', sizeof(meta.media_type)); /* not terminated */
    ck_assert_int_ne(sm_container_writer_new(&meta, key, sm_mem_write, &sink, &w, &err), SM_OK);
    meta = test_meta(SM_CONTAINER_PLAINTEXT_MAX + 1);
    ck_assert_int_eq(sm_container_writer_new(&meta, key, sm_mem_write, &sink, &w, &err),
                     SM_ERR_FORMAT);
    meta = test_meta(SM_CHUNKED_MAX_PLAIN + 1);
    ck_assert_int_eq(sm_container_writer_new(&meta, key, sm_mem_write, &sink, &w, &err),
                     SM_ERR_TOO_LARGE);
    meta = test_meta(10);
    sm_secret *short_key = sm_secret_new(16);
    ck_assert_int_eq(sm_container_writer_new(&meta, short_key, sm_mem_write, &sink, &w, &err),
                     SM_ERR_KEY);
    sm_secret_free(short_key);
    ck_assert_ptr_null(w);
    ck_assert_uint_eq(sink.len, 0);
    sm_secret_free(key);
}
END_TEST

START_TEST(test_writer_length_mismatch)
{
    sm_secret *key = test_key(21);
    uint8_t data[40000];
    smt_fill_pattern(data, sizeof(data), 3);
    sm_error err;
    sm_container_meta meta = test_meta(20000);

    /* Fewer bytes than announced: refused at finish, and it stays refused. */
    sm_mem_io sink = {0};
    sm_container_writer *w = NULL;
    ck_assert_int_eq(sm_container_writer_new(&meta, key, sm_mem_write, &sink, &w, &err), SM_OK);
    ck_assert_int_eq(sm_container_writer_write(w, data, 19999, &err), SM_OK);
    ck_assert_int_eq(sm_container_writer_finish(w, &err), SM_ERR_STATE);
    ck_assert_ptr_nonnull(strstr(err.message, "19999"));
    ck_assert_int_eq(sm_container_writer_write(w, data, 1, &err), SM_ERR_STATE);
    ck_assert_int_eq(sm_container_writer_finish(w, &err), SM_ERR_STATE);
    sm_container_writer_free(w);
    free(sink.data);

    /* More bytes than announced: refused at once. */
    memset(&sink, 0, sizeof(sink));
    ck_assert_int_eq(sm_container_writer_new(&meta, key, sm_mem_write, &sink, &w, &err), SM_OK);
    ck_assert_int_eq(sm_container_writer_write(w, data, 15000, &err), SM_OK);
    ck_assert_int_eq(sm_container_writer_write(w, data, 5001, &err), SM_ERR_STATE);
    ck_assert_int_eq(sm_container_writer_finish(w, &err), SM_ERR_STATE);
    sm_container_writer_free(w);
    free(sink.data);

    /* Exactly right, then nothing more is accepted. */
    memset(&sink, 0, sizeof(sink));
    ck_assert_int_eq(sm_container_writer_new(&meta, key, sm_mem_write, &sink, &w, &err), SM_OK);
    ck_assert_int_eq(sm_container_writer_write(w, data, 20000, &err), SM_OK);
    ck_assert_int_eq(sm_container_writer_finish(w, &err), SM_OK);
    ck_assert_int_eq(sm_container_writer_write(w, data, 1, &err), SM_ERR_STATE);
    ck_assert_int_eq(sm_container_writer_finish(w, &err), SM_ERR_STATE);
    sm_container_writer_free(w);
    ck_assert_uint_eq(sink.len, sm_container_file_size(sink.len - sm_chunked_ciphertext_size(20000),
                                                       20000));
    free(sink.data);
    sm_secret_free(key);
}
END_TEST

/* A sink that fails after n bytes: the writer reports it and stays failed. */
typedef struct failing_sink {
    size_t budget;
} failing_sink;

static sm_status failing_write(void *ctx, const uint8_t *buf, size_t len, sm_error *err)
{
    failing_sink *s = ctx;
    (void)buf;
    if (len > s->budget)
        return sm_error_set(err, SM_ERR_IO, "cannot write test sink: No space left on device");
    s->budget -= len;
    return SM_OK;
}

START_TEST(test_writer_io_failure)
{
    sm_secret *key = test_key(22);
    uint8_t data[50000] = {0};
    sm_error err;
    sm_container_meta meta = test_meta(sizeof(data));
    failing_sink sink = {.budget = 20000};
    sm_container_writer *w = NULL;
    ck_assert_int_eq(sm_container_writer_new(&meta, key, failing_write, &sink, &w, &err), SM_OK);
    ck_assert_int_eq(sm_container_writer_write(w, data, sizeof(data), &err), SM_ERR_IO);
    ck_assert_ptr_nonnull(strstr(err.message, "No space"));
    ck_assert_int_eq(sm_container_writer_finish(w, &err), SM_ERR_IO);
    sm_container_writer_free(w);
    sm_secret_free(key);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Random access: correctness and fetch economy                              */

typedef struct fetch {
    uint64_t offset;
    size_t len;
} fetch;

typedef struct counting_src {
    sm_mem_io mem;
    fetch fetches[64];
    size_t count;
} counting_src;

static sm_status counting_read_at(void *ctx, uint64_t offset, uint8_t *buf, size_t len,
                                  size_t *got, sm_error *err)
{
    counting_src *c = ctx;
    ck_assert_uint_lt(c->count, sizeof(c->fetches) / sizeof(c->fetches[0]));
    c->fetches[c->count].offset = offset;
    c->fetches[c->count].len = len;
    c->count++;
    return sm_mem_read_at(&c->mem, offset, buf, len, got, err);
}

static uint32_t next_random(uint32_t *state)
{
    *state ^= *state << 13;
    *state ^= *state >> 17;
    *state ^= *state << 5;
    return *state;
}

START_TEST(test_random_access_reads)
{
    const size_t len = 300 * 1024 + 123; /* 19 chunks, the last one short */
    sm_secret *key = test_key(30);
    uint8_t *plain = make_plaintext(len, 4242);
    sm_mem_io file = pack(plain, len, key, 10000);
    counting_src src = {.mem = {.data = file.data, .len = file.len}};
    sm_container_ra *ra = NULL;
    sm_error err;
    ck_assert_int_eq(sm_container_ra_new(counting_read_at, &src, file.len, key, 0, &ra, &err),
                     SM_OK);
    size_t header_len = sm_container_ra_header(ra)->len;
    uint64_t chunks = sm_container_chunk_count(len);
    ck_assert_uint_eq(chunks, 19);

    /* Opening reads the header and the salt/commitment, nothing else. */
    ck_assert_uint_eq(src.count, 3);
    ck_assert_uint_eq(src.fetches[0].offset, 0);
    ck_assert_uint_eq(src.fetches[0].len, SM_CONTAINER_FIXED_SIZE);
    ck_assert_uint_eq(src.fetches[1].offset, SM_CONTAINER_FIXED_SIZE);
    ck_assert_uint_eq(src.fetches[1].len, header_len - SM_CONTAINER_FIXED_SIZE);
    ck_assert_uint_eq(src.fetches[2].offset, header_len);
    ck_assert_uint_eq(src.fetches[2].len, SM_CHUNKED_PREFIX_SIZE);

    /* 10 bytes inside chunk 5 on a cold cache: chunk 5's bytes only. */
    uint8_t *out = malloc(4 * CHUNK);
    size_t got = 0;
    src.count = 0;
    ck_assert_int_eq(sm_container_ra_read(ra, 5 * CHUNK + 100, out, 10, &got, &err), SM_OK);
    ck_assert_uint_eq(got, 10);
    ck_assert_mem_eq(out, plain + 5 * CHUNK + 100, 10);
    ck_assert_uint_eq(src.count, 1);
    ck_assert_uint_eq(src.fetches[0].offset, sm_container_chunk_offset(header_len, 5));
    ck_assert_uint_eq(src.fetches[0].len, SM_CHUNK_CIPHER_SIZE);
    /* Again from the cache: no fetch at all. */
    src.count = 0;
    ck_assert_int_eq(sm_container_ra_read(ra, 5 * CHUNK + 2000, out, 100, &got, &err), SM_OK);
    ck_assert_mem_eq(out, plain + 5 * CHUNK + 2000, 100);
    ck_assert_uint_eq(src.count, 0);

    /* 1000 random reads: right bytes, and only touched chunks fetched. */
    uint32_t rng = 0xC0FFEEu;
    int crossing = 0, past_end = 0, empty = 0;
    for (int i = 0; i < 1000; i++) {
        uint64_t offset = next_random(&rng) % (len + 3000);
        size_t want;
        switch (next_random(&rng) % 6) {
        case 0: want = 0; break;
        case 1: want = 1 + next_random(&rng) % 16; break;
        case 2: want = next_random(&rng) % CHUNK; break;
        case 3: want = CHUNK; break;
        case 4: want = next_random(&rng) % (3 * CHUNK); break;
        default:
            /* Up to and past the end, starting within the last two chunks. */
            offset = len - next_random(&rng) % (2 * CHUNK);
            want = (size_t)(len - offset) + next_random(&rng) % 50;
            break;
        }
        src.count = 0;
        memset(out, POISON, 4 * CHUNK);
        ck_assert_msg(sm_container_ra_read(ra, offset, out, want, &got, &err) == SM_OK,
                      "read %d (%llu, %zu): %s", i, (unsigned long long)offset, want, err.message);
        size_t expect = offset >= len ? 0 : (len - offset < want ? (size_t)(len - offset) : want);
        ck_assert_uint_eq(got, expect);
        if (got > 0)
            ck_assert_mem_eq(out, plain + offset, got);
        ck_assert_msg(only_zero_or_poison(out + got, want - got) || want == got,
                      "read %d wrote beyond what it returned", i);
        if (want == 0)
            empty++;
        if (got > 0 && offset / CHUNK != (offset + got - 1) / CHUNK)
            crossing++;
        if (want > expect)
            past_end++;

        /* Each fetch is one whole encrypted chunk, touched by this read (or
         * the final chunk, authenticated for a short read), fetched once. */
        uint64_t first = offset / CHUNK;
        uint64_t last = got > 0 ? (offset + got - 1) / CHUNK : first;
        for (size_t f = 0; f < src.count; f++) {
            uint64_t rel = src.fetches[f].offset - header_len - SM_CHUNKED_PREFIX_SIZE;
            ck_assert_uint_eq(rel % SM_CHUNK_CIPHER_SIZE, 0);
            uint64_t k = rel / SM_CHUNK_CIPHER_SIZE;
            int touched = got > 0 && k >= first && k <= last;
            int final_for_end = want > expect && k == chunks - 1;
            ck_assert_msg(touched || final_for_end, "read %d fetched chunk %llu", i,
                          (unsigned long long)k);
            ck_assert_uint_eq(src.fetches[f].len,
                              k == chunks - 1 ? len % CHUNK + SM_CHUNK_TAG_SIZE
                                              : SM_CHUNK_CIPHER_SIZE);
            for (size_t g = 0; g < f; g++)
                ck_assert_uint_ne(src.fetches[g].offset, src.fetches[f].offset);
        }
        ck_assert_uint_le(src.count, (size_t)(last - first + 1) + 1);
    }
    ck_assert_int_gt(crossing, 50);
    ck_assert_int_gt(past_end, 50);
    ck_assert_int_gt(empty, 50);
    sm_container_ra_free(ra);
    free(out);
    free(file.data);
    free(plain);
    sm_secret_free(key);
}
END_TEST

START_TEST(test_random_access_size_mismatch)
{
    sm_secret *key = test_key(31);
    uint8_t *plain = make_plaintext(1000, 1);
    sm_mem_io file = pack(plain, 1000, key, 1000);
    sm_container_ra *ra = NULL;
    sm_error err;
    ck_assert_int_eq(sm_container_ra_new(sm_mem_read_at, &file, file.len - 1, key, 0, &ra, &err),
                     SM_ERR_TRUNCATED);
    ck_assert_ptr_nonnull(strstr(err.message, "truncated"));
    ck_assert_int_eq(sm_container_ra_new(sm_mem_read_at, &file, file.len + 1, key, 0, &ra, &err),
                     SM_ERR_FORMAT);
    ck_assert_int_eq(sm_container_ra_new(sm_mem_read_at, &file, file.len, key, 100000, &ra, &err),
                     SM_ERR_ARG);
    sm_secret *short_key = sm_secret_new(31);
    ck_assert_int_eq(sm_container_ra_new(sm_mem_read_at, &file, file.len, short_key, 0, &ra, &err),
                     SM_ERR_KEY);
    sm_mem_io src = {.data = file.data, .len = file.len};
    sm_container_reader *r = NULL;
    ck_assert_int_eq(sm_container_reader_new(sm_mem_read, &src, short_key, &r, &err), SM_ERR_KEY);
    sm_secret_free(short_key);
    ck_assert_ptr_null(ra);
    free(file.data);
    free(plain);
    sm_secret_free(key);
}
END_TEST

START_TEST(test_geometry)
{
    ck_assert_uint_eq(sm_container_chunk_count(0), 1);
    ck_assert_uint_eq(sm_container_chunk_count(CHUNK), 2);
    ck_assert_uint_eq(sm_container_chunk_offset(100, 0), 156);
    ck_assert_uint_eq(sm_container_chunk_offset(100, 2), 156 + 2 * 16400);
    ck_assert_uint_eq(sm_container_file_size(100, 0), 100 + 56 + 16);
    ck_assert_uint_eq(sm_container_file_size(100, CHUNK + 1), 100 + 56 + 16400 + 17);
    ck_assert_uint_eq(sm_container_file_size(100, SM_CONTAINER_PLAINTEXT_MAX), UINT64_MAX);
}
END_TEST

static Suite *container_suite(void)
{
    Suite *s = suite_create("container");
    TCase *tc = tcase_create("roundtrip");
    tcase_set_timeout(tc, 300);
    tcase_add_loop_test(tc, test_roundtrip, 0,
                        (int)(sizeof(roundtrip_lengths) / sizeof(roundtrip_lengths[0])));
    tcase_add_test(tc, test_roundtrip_files);
    tcase_add_test(tc, test_short_reads_from_source);
    tcase_add_test(tc, test_header_encoding_deterministic);
    tcase_add_test(tc, test_geometry);
    suite_add_tcase(s, tc);

    tc = tcase_create("tamper");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_tamper_header_bits);
    tcase_add_test(tc, test_tamper_prefix_and_chunks);
    tcase_add_test(tc, test_tamper_truncation);
    tcase_add_test(tc, test_source_shorter_than_announced);
    tcase_add_test(tc, test_tamper_reorder_and_append);
    suite_add_tcase(s, tc);

    tc = tcase_create("header");
    tcase_add_loop_test(tc, test_header_strictness, 0,
                        (int)(sizeof(header_cases) / sizeof(header_cases[0])));
    tcase_add_test(tc, test_header_truncated_and_magic);
    tcase_add_test(tc, test_meta_validation_on_write);
    tcase_add_test(tc, test_writer_length_mismatch);
    tcase_add_test(tc, test_writer_io_failure);
    suite_add_tcase(s, tc);

    tc = tcase_create("random_access");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_random_access_reads);
    tcase_add_test(tc, test_random_access_size_mismatch);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(container_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
