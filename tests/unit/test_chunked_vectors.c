/* The Wycheproof c2sp.org/chunked-encryption vectors (35 per suite), applied
 * as c2sp_chunked_encryption.md says: through the streaming reader, the
 * random-access reader and raw mode, plus deterministic encryption checks. */
#include "config.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sm_chunked.h"
#include "sm_test.h"

#define POISON 0xa5

typedef struct vector {
    const char *file;
    int tc_id;
    const char *comment;
    int valid;
    int header_failure, partial_plaintext, valid_final_chunk, invalid_key_size;
    uint8_t *key, *ctx, *ct, *aead_key, *base_nonce;
    size_t key_len, ctx_len, ct_len, aead_key_len, base_nonce_len;
    int has_msg; /* valid vectors and PartialPlaintext: msgLength/msgSha512 */
    uint64_t msg_len;
    const char *msg_sha512;
} vector;

typedef struct file_counts {
    int vectors, valid, invalid;
    int stream_checks, ra_checks, raw_checks, encrypt_checks, key_size_checks;
} file_counts;

static int only_zero_or_poison(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != 0 && p[i] != POISON)
            return 0;
    return 1;
}

static void check_prefix_hash(const vector *v, const uint8_t *out, size_t used, const char *how)
{
    char hex[129];
    if (v->has_msg && used == v->msg_len) {
        smt_sha512_hex(out, used, hex);
        ck_assert_msg(strcmp(hex, v->msg_sha512) == 0, "%s tc %d (%s): %s output hash differs",
                      v->file, v->tc_id, v->comment, how);
    }
}

/* ------------------------------------------------------------------------ */
/* Streaming                                                                 */

/* Drains a reader with reads of read_size bytes and checks the outcome
 * against the vector. Returns the output (malloc'ed) for valid vectors. */
static uint8_t *drain_stream(const vector *v, sm_chunked_reader *r, size_t read_size,
                             const char *how)
{
    size_t cap = v->ct_len + 1;
    uint8_t *out = malloc(cap);
    size_t used = 0;
    sm_status st = SM_OK;
    sm_error err;
    memset(out, POISON, cap);
    for (;;) {
        size_t ask = cap - used < read_size ? cap - used : read_size;
        size_t got = 99;
        ck_assert_uint_gt(ask, 0);
        st = sm_chunked_reader_read(r, out + used, ask, &got, &err);
        if (st != SM_OK) {
            ck_assert_uint_eq(got, 0);
            /* Nothing from the failed chunk reached the caller's buffer. */
            ck_assert_msg(only_zero_or_poison(out + used, ask),
                          "%s tc %d: %s: unauthenticated bytes in the buffer", v->file, v->tc_id,
                          how);
            break;
        }
        if (got == 0)
            break;
        used += got;
    }
    if (v->valid) {
        ck_assert_msg(st == SM_OK, "%s tc %d (%s): %s: %s", v->file, v->tc_id, v->comment, how,
                      err.message);
        ck_assert_uint_eq(used, v->msg_len);
        check_prefix_hash(v, out, used, how);
        /* The end is reported again, not turned into an error. */
        size_t got = 99;
        ck_assert_int_eq(sm_chunked_reader_read(r, out, 1, &got, &err), SM_OK);
        ck_assert_uint_eq(got, 0);
        return out;
    }
    ck_assert_msg(st != SM_OK, "%s tc %d (%s): %s: invalid message decrypted", v->file, v->tc_id,
                  v->comment, how);
    ck_assert_msg(strlen(err.message) > 0, "%s tc %d: empty error message", v->file, v->tc_id);
    size_t allowed = v->partial_plaintext ? (size_t)v->msg_len : 0;
    ck_assert_msg(used <= allowed, "%s tc %d (%s): %s: %zu bytes output, at most %zu allowed",
                  v->file, v->tc_id, v->comment, how, used, allowed);
    check_prefix_hash(v, out, used, how);
    /* Sticky: never a clean end after an error. */
    for (int i = 0; i < 2; i++) {
        sm_error again;
        size_t got = 99;
        ck_assert_int_eq(sm_chunked_reader_read(r, out, 64, &got, &again), st);
        ck_assert_uint_eq(got, 0);
        ck_assert_str_eq(again.message, err.message);
    }
    free(out);
    return NULL;
}

static uint8_t *check_stream_derived(const vector *v, size_t read_size)
{
    sm_mem_io src = {.data = v->ct, .len = v->ct_len};
    sm_chunked_reader *r = NULL;
    sm_error err;
    sm_cobblestone suite = strstr(v->file, "128") ? SM_COBBLESTONE_128 : SM_COBBLESTONE_256;
    sm_status st = sm_chunked_reader_new(suite, v->key, v->key_len, v->ctx, v->ctx_len,
                                         sm_mem_read, &src, &r, &err);
    if (v->header_failure) {
        ck_assert_msg(st != SM_OK, "%s tc %d (%s): header failure not detected at creation",
                      v->file, v->tc_id, v->comment);
        ck_assert_ptr_null(r);
        if (v->invalid_key_size)
            ck_assert_int_eq(st, SM_ERR_KEY);
        return NULL;
    }
    ck_assert_msg(st == SM_OK, "%s tc %d (%s): creation: %s", v->file, v->tc_id, v->comment,
                  err.message);
    uint8_t *msg = drain_stream(v, r, read_size, "stream");
    sm_chunked_reader_free(r);
    return msg;
}

static sm_chunked_keys *raw_keys(const vector *v)
{
    sm_chunked_keys *keys = NULL;
    sm_error err;
    sm_cobblestone suite = strstr(v->file, "128") ? SM_COBBLESTONE_128 : SM_COBBLESTONE_256;
    ck_assert_uint_eq(v->base_nonce_len, SM_CHUNKED_NONCE_SIZE);
    ck_assert_msg(sm_chunked_keys_raw(suite, v->aead_key, v->aead_key_len, v->base_nonce, &keys,
                                      &err) == SM_OK,
                  "%s tc %d: raw keys: %s", v->file, v->tc_id, err.message);
    return keys;
}

static void check_stream_raw(const vector *v, size_t read_size)
{
    ck_assert_uint_ge(v->ct_len, SM_CHUNKED_PREFIX_SIZE);
    sm_mem_io src = {.data = v->ct + SM_CHUNKED_PREFIX_SIZE,
                     .len = v->ct_len - SM_CHUNKED_PREFIX_SIZE};
    sm_chunked_reader *r = NULL;
    sm_error err;
    ck_assert_int_eq(sm_chunked_reader_new_raw(raw_keys(v), sm_mem_read, &src, &r, &err), SM_OK);
    free(drain_stream(v, r, read_size, "raw stream"));
    sm_chunked_reader_free(r);
}

/* ------------------------------------------------------------------------ */
/* Random access                                                             */

static void check_ra_reader(const vector *v, sm_chunked_ra *ra, const uint8_t *msg,
                            const char *how)
{
    sm_error err;
    uint64_t size = sm_chunked_ra_size(ra);
    size_t cap = (size_t)size + 32;
    uint8_t *out = malloc(cap);
    size_t got = 99;
    memset(out, POISON, cap);
    /* The whole message, asking for more than there is. */
    sm_status st = sm_chunked_ra_read(ra, 0, out, cap, &got, &err);
    if (v->valid) {
        ck_assert_msg(st == SM_OK, "%s tc %d (%s): %s read: %s", v->file, v->tc_id, v->comment,
                      how, err.message);
        ck_assert_uint_eq(got, v->msg_len);
        check_prefix_hash(v, out, got, how);
        ck_assert_int_eq(sm_chunked_ra_verify_length(ra, &err), SM_OK);
        /* A few ranges around chunk boundaries agree with the message. */
        const uint64_t offsets[] = {0, 1, 16383, 16384, 16385, 32767, size / 2, size};
        for (size_t i = 0; i < sizeof(offsets) / sizeof(offsets[0]); i++) {
            uint64_t off = offsets[i] <= size ? offsets[i] : size;
            size_t want = 20;
            size_t expect = (size_t)(size - off) < want ? (size_t)(size - off) : want;
            ck_assert_int_eq(sm_chunked_ra_read(ra, off, out, want, &got, &err), SM_OK);
            ck_assert_uint_eq(got, expect);
            ck_assert_mem_eq(out, msg + off, got);
        }
    } else {
        ck_assert_msg(st != SM_OK, "%s tc %d (%s): %s: invalid message read whole", v->file,
                      v->tc_id, v->comment, how);
        ck_assert_uint_eq(got, 0);
        ck_assert_msg(only_zero_or_poison(out, cap), "%s tc %d: %s left plaintext after failure",
                      v->file, v->tc_id, how);
        sm_error again;
        ck_assert_int_eq(sm_chunked_ra_read(ra, 0, out, 1, &got, &again), st);
        ck_assert_int_eq(sm_chunked_ra_verify_length(ra, &again), st);
    }
    free(out);
}

/* src must outlive the reader. */
static sm_status open_ra_derived(const vector *v, sm_mem_io *src, sm_chunked_ra **out,
                                 sm_error *err)
{
    sm_cobblestone suite = strstr(v->file, "128") ? SM_COBBLESTONE_128 : SM_COBBLESTONE_256;
    memset(src, 0, sizeof(*src));
    src->data = v->ct;
    src->len = v->ct_len;
    return sm_chunked_ra_new(suite, v->key, v->key_len, v->ctx, v->ctx_len, sm_mem_read_at, src,
                             v->ct_len, 0, out, err);
}

static void check_ra_derived(const vector *v, const uint8_t *msg)
{
    sm_mem_io src;
    sm_chunked_ra *ra = NULL;
    sm_error err;
    sm_status st = open_ra_derived(v, &src, &ra, &err);
    if (v->header_failure) {
        ck_assert_msg(st != SM_OK, "%s tc %d (%s): random access: header failure not detected",
                      v->file, v->tc_id, v->comment);
        return;
    }
    if (st != SM_OK) {
        /* Allowed only for invalid messages (e.g. an impossible length). */
        ck_assert_msg(!v->valid, "%s tc %d (%s): random access creation: %s", v->file, v->tc_id,
                      v->comment, err.message);
        return;
    }
    check_ra_reader(v, ra, msg, "random access");
    sm_chunked_ra_free(ra);

    /* Length authentication on a fresh reader. */
    ck_assert_int_eq(open_ra_derived(v, &src, &ra, &err), SM_OK);
    st = sm_chunked_ra_verify_length(ra, &err);
    if (v->valid)
        ck_assert_int_eq(st, SM_OK);
    else if (!v->valid_final_chunk)
        ck_assert_msg(st != SM_OK, "%s tc %d (%s): verify_length accepted an invalid message",
                      v->file, v->tc_id, v->comment);
    sm_chunked_ra_free(ra);
}

static void check_ra_raw(const vector *v, const uint8_t *msg)
{
    sm_mem_io src = {.data = v->ct + SM_CHUNKED_PREFIX_SIZE,
                     .len = v->ct_len - SM_CHUNKED_PREFIX_SIZE};
    sm_chunked_ra *ra = NULL;
    sm_error err;
    sm_status st = sm_chunked_ra_new_raw(raw_keys(v), sm_mem_read_at, &src, src.len, 0, &ra, &err);
    if (st != SM_OK) {
        ck_assert_msg(!v->valid, "%s tc %d (%s): raw random access creation: %s", v->file,
                      v->tc_id, v->comment, err.message);
        return;
    }
    check_ra_reader(v, ra, msg, "raw random access");
    sm_chunked_ra_free(ra);
    ck_assert_int_eq(sm_chunked_ra_new_raw(raw_keys(v), sm_mem_read_at, &src, src.len, 0, &ra,
                                           &err),
                     SM_OK);
    st = sm_chunked_ra_verify_length(ra, &err);
    if (v->valid)
        ck_assert_int_eq(st, SM_OK);
    else if (!v->valid_final_chunk)
        ck_assert_msg(st != SM_OK, "%s tc %d: raw verify_length accepted an invalid message",
                      v->file, v->tc_id);
    sm_chunked_ra_free(ra);
}

/* ------------------------------------------------------------------------ */
/* Encryption                                                                */

static void write_in_pieces(sm_chunked_writer *w, const uint8_t *msg, size_t len, size_t piece)
{
    sm_error err;
    for (size_t done = 0; done < len;) {
        size_t n = len - done < piece ? len - done : piece;
        ck_assert_int_eq(sm_chunked_writer_write(w, msg + done, n, &err), SM_OK);
        done += n;
    }
    ck_assert_int_eq(sm_chunked_writer_finish(w, &err), SM_OK);
    ck_assert_uint_eq(sm_chunked_writer_plain_bytes(w), len);
}

static void check_encryption(const vector *v, const uint8_t *msg)
{
    sm_error err;
    const size_t pieces[] = {1000, 16384, 100000};
    sm_cobblestone suite = strstr(v->file, "128") ? SM_COBBLESTONE_128 : SM_COBBLESTONE_256;
    for (size_t i = 0; i < sizeof(pieces) / sizeof(pieces[0]); i++) {
        /* 1. Raw mode is deterministic: the chunks without the 56-byte prefix. */
        sm_mem_io sink = {0};
        sm_chunked_writer *w = NULL;
        ck_assert_int_eq(sm_chunked_writer_new_raw(raw_keys(v), sm_mem_write, &sink, &w, &err),
                         SM_OK);
        write_in_pieces(w, msg, (size_t)v->msg_len, pieces[i]);
        sm_chunked_writer_free(w);
        ck_assert_uint_eq(sink.len, v->ct_len - SM_CHUNKED_PREFIX_SIZE);
        ck_assert_msg(memcmp(sink.data, v->ct + SM_CHUNKED_PREFIX_SIZE, sink.len) == 0,
                      "%s tc %d: raw encryption differs", v->file, v->tc_id);
        free(sink.data);

        /* 2. With the vector's salt injected: the whole ciphertext. */
        memset(&sink, 0, sizeof(sink));
        ck_assert_int_eq(sm_chunked_writer_new(suite, v->key, v->key_len, v->ctx, v->ctx_len,
                                               v->ct, sm_mem_write, &sink, &w, &err),
                         SM_OK);
        write_in_pieces(w, msg, (size_t)v->msg_len, pieces[i]);
        sm_chunked_writer_free(w);
        ck_assert_uint_eq(sink.len, v->ct_len);
        ck_assert_msg(memcmp(sink.data, v->ct, sink.len) == 0,
                      "%s tc %d: salted encryption differs", v->file, v->tc_id);
        ck_assert_uint_eq(sm_chunked_ciphertext_size(v->msg_len), v->ct_len);
        free(sink.data);
    }
}

static void check_key_size_refused(const vector *v)
{
    sm_error err;
    sm_mem_io sink = {0};
    sm_chunked_writer *w = NULL;
    sm_cobblestone suite = strstr(v->file, "128") ? SM_COBBLESTONE_128 : SM_COBBLESTONE_256;
    ck_assert_int_eq(sm_chunked_writer_new(suite, v->key, v->key_len, v->ctx, v->ctx_len, NULL,
                                           sm_mem_write, &sink, &w, &err),
                     SM_ERR_KEY);
    ck_assert_ptr_null(w);
    ck_assert_uint_eq(sink.len, 0);
}

/* ------------------------------------------------------------------------ */

static uint8_t *hex_field(json_t *test, const char *name, size_t *len)
{
    json_t *v = json_object_get(test, name);
    *len = 0;
    return v != NULL ? smt_hex_decode(json_string_value(v), len) : NULL;
}

static void load_vector(const char *file, json_t *test, vector *v)
{
    memset(v, 0, sizeof(*v));
    v->file = file;
    v->tc_id = (int)json_integer_value(json_object_get(test, "tcId"));
    v->comment = json_string_value(json_object_get(test, "comment"));
    const char *result = json_string_value(json_object_get(test, "result"));
    ck_assert_msg(strcmp(result, "valid") == 0 || strcmp(result, "invalid") == 0,
                  "tc %d: unexpected result %s", v->tc_id, result);
    v->valid = strcmp(result, "valid") == 0;
    v->header_failure = smt_has_flag(test, "HeaderFailure");
    v->partial_plaintext = smt_has_flag(test, "PartialPlaintext");
    v->valid_final_chunk = smt_has_flag(test, "ValidFinalChunk");
    v->invalid_key_size = smt_has_flag(test, "InvalidKeySize");
    v->key = hex_field(test, "key", &v->key_len);
    v->ctx = hex_field(test, "ctx", &v->ctx_len);
    v->ct = smt_hex_inflate(json_string_value(json_object_get(test, "ct")), &v->ct_len);
    v->aead_key = hex_field(test, "aeadKey", &v->aead_key_len);
    v->base_nonce = hex_field(test, "baseNonce", &v->base_nonce_len);
    json_t *len = json_object_get(test, "msgLength");
    if (len != NULL) {
        v->has_msg = 1;
        v->msg_len = (uint64_t)json_integer_value(len);
        v->msg_sha512 = json_string_value(json_object_get(test, "msgSha512"));
    }
    /* The document's promises about which fields exist. */
    ck_assert(!v->valid || (v->has_msg && v->aead_key != NULL));
    ck_assert(v->header_failure || v->aead_key != NULL);
}

static void free_vector(vector *v)
{
    free(v->key);
    free(v->ctx);
    free(v->ct);
    free(v->aead_key);
    free(v->base_nonce);
}

static void run_vector(const vector *v, file_counts *counts)
{
    counts->vectors++;
    if (v->valid)
        counts->valid++;
    else
        counts->invalid++;

    /* Streaming, with reads smaller than, equal to and larger than a chunk. */
    const size_t read_sizes[] = {1000, 16384, 100000};
    uint8_t *msg = NULL;
    for (size_t i = 0; i < sizeof(read_sizes) / sizeof(read_sizes[0]); i++) {
        uint8_t *out = check_stream_derived(v, read_sizes[i]);
        if (msg == NULL)
            msg = out;
        else {
            ck_assert_mem_eq(out, msg, (size_t)v->msg_len);
            free(out);
        }
    }
    if (v->ct_len < 40000)
        free(check_stream_derived(v, 1));
    counts->stream_checks++;

    check_ra_derived(v, msg);
    counts->ra_checks++;

    if (!v->header_failure) {
        check_stream_raw(v, 1000);
        check_stream_raw(v, 100000);
        check_ra_raw(v, msg);
        counts->raw_checks++;
    }
    if (v->valid) {
        check_encryption(v, msg);
        counts->encrypt_checks++;
    }
    if (v->invalid_key_size) {
        check_key_size_refused(v);
        counts->key_size_checks++;
    }
    free(msg);
}

static int run_file(const char *file)
{
    json_t *root = smt_load_wycheproof(file);
    file_counts counts = {0};
    size_t g;
    json_t *group;
    json_array_foreach(json_object_get(root, "testGroups"), g, group) {
        ck_assert_str_eq(json_string_value(json_object_get(group, "type")), "ChunkedEncryption");
        ck_assert_str_eq(json_string_value(json_object_get(group, "sha")), "SHA-512");
        const char *aead = json_string_value(json_object_get(group, "aead"));
        ck_assert_str_eq(aead, strstr(file, "128") ? "AEAD_AES_128_GCM" : "AEAD_AES_256_GCM");
        size_t t;
        json_t *test;
        json_array_foreach(json_object_get(group, "tests"), t, test) {
            vector v;
            load_vector(file, test, &v);
            run_vector(&v, &counts);
            free_vector(&v);
        }
    }
    printf("%s: %d vectors (%d valid, %d invalid): %d streaming, %d random-access, %d raw-mode, "
           "%d encryption, %d key-size checks passed\n",
           file, counts.vectors, counts.valid, counts.invalid, counts.stream_checks,
           counts.ra_checks, counts.raw_checks, counts.encrypt_checks, counts.key_size_checks);
    fflush(stdout);
    ck_assert_int_eq(counts.vectors,
                     (int)json_integer_value(json_object_get(root, "numberOfTests")));
    json_decref(root);
    return counts.vectors;
}

START_TEST(test_all_vectors)
{
    int total = run_file("c2sp_chunked_encryption_aes_128_gcm_test.json");
    total += run_file("c2sp_chunked_encryption_aes_256_gcm_test.json");
    printf("c2sp chunked encryption: %d vectors processed\n", total);
    fflush(stdout);
    ck_assert_int_eq(total, 70);
}
END_TEST

START_TEST(test_geometry)
{
    uint64_t plain = 0;
    sm_error err;
    ck_assert_uint_eq(sm_chunked_chunk_count(0), 1);
    ck_assert_uint_eq(sm_chunked_chunk_count(16383), 1);
    ck_assert_uint_eq(sm_chunked_chunk_count(16384), 2);
    ck_assert_uint_eq(sm_chunked_ciphertext_size(0), 72);
    ck_assert_uint_eq(sm_chunked_ciphertext_size(16384), 56 + 16400 + 16);
    ck_assert_uint_eq(sm_chunked_ciphertext_size(SM_CHUNKED_MAX_PLAIN + 1), UINT64_MAX);
    ck_assert_int_eq(sm_chunked_plaintext_size(72, &plain, &err), SM_OK);
    ck_assert_uint_eq(plain, 0);
    ck_assert_int_eq(sm_chunked_plaintext_size(56 + 16400 + 17, &plain, &err), SM_OK);
    ck_assert_uint_eq(plain, 16385);
    ck_assert_int_eq(sm_chunked_plaintext_size(55, &plain, &err), SM_ERR_TRUNCATED);
    ck_assert_int_eq(sm_chunked_plaintext_size(56, &plain, &err), SM_ERR_TRUNCATED);
    ck_assert_int_eq(sm_chunked_plaintext_size(56 + 16400, &plain, &err), SM_ERR_TRUNCATED);
    ck_assert_int_eq(sm_chunked_plaintext_size(56 + 15, &plain, &err), SM_ERR_FORMAT);
    ck_assert_int_eq(sm_chunked_plaintext_size(56 + SM_CHUNKED_MAX_CHUNKS * 16400 + 16, &plain,
                                               &err),
                     SM_ERR_TOO_LARGE);
    ck_assert_int_eq(sm_chunked_plaintext_size(56 + (SM_CHUNKED_MAX_CHUNKS - 1) * 16400 + 16399,
                                               &plain, &err),
                     SM_OK);
    ck_assert_uint_eq(plain, SM_CHUNKED_MAX_PLAIN);
}
END_TEST

/* The counter is a 96-bit big-endian XOR: chunk 2^32 + 1 must differ from 1. */
START_TEST(test_high_chunk_index_nonce)
{
    uint8_t key[32] = {7}, nonce[12] = {0}, plain[16] = {1}, a[32], b[32], back[16];
    sm_chunked_keys *keys = NULL;
    sm_error err;
    ck_assert_int_eq(sm_chunked_keys_raw(SM_COBBLESTONE_256, key, 32, nonce, &keys, &err), SM_OK);
    ck_assert_int_eq(sm_chunked_seal_chunk(keys, 1, plain, 16, a, &err), SM_OK);
    ck_assert_int_eq(sm_chunked_seal_chunk(keys, (UINT64_C(1) << 32) + 1, plain, 16, b, &err),
                     SM_OK);
    ck_assert(memcmp(a, b, 32) != 0);
    ck_assert_int_eq(sm_chunked_open_chunk(keys, (UINT64_C(1) << 32) + 1, b, 32, back, &err),
                     SM_OK);
    ck_assert_mem_eq(back, plain, 16);
    ck_assert_int_eq(sm_chunked_open_chunk(keys, 1, b, 32, back, &err), SM_ERR_AUTH);
    ck_assert_ptr_nonnull(strstr(err.message, "chunk 1 failed authentication"));
    ck_assert_int_eq(sm_chunked_seal_chunk(keys, SM_CHUNKED_MAX_CHUNKS, plain, 16, a, &err),
                     SM_ERR_TOO_LARGE);
    sm_chunked_keys_free(keys);
}
END_TEST

static Suite *chunked_suite(void)
{
    Suite *s = suite_create("chunked_vectors");
    TCase *tc = tcase_create("wycheproof");
    /* Four vectors are over 4 MiB and each runs through several paths. */
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_all_vectors);
    tcase_add_test(tc, test_geometry);
    tcase_add_test(tc, test_high_chunk_index_nonce);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(chunked_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
