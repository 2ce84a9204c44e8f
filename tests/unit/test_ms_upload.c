/* Media store upload checks (common/sm_ms_upload.c): header, size and
 * SHA-256 judged while bytes stream in; RFC 9530 digest fields; whether a
 * Range asks for the last byte. */
#include "config.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "sm_container.h"
#include "sm_ms_upload.h"
#include "sm_token_cache.h"
#include "sm_test.h"

static sm_mem_io make_container(const char *work_id, size_t plain_len)
{
    sm_container_meta meta;
    memset(&meta, 0, sizeof(meta));
    snprintf(meta.work_id, sizeof(meta.work_id), "%s", work_id);
    meta.key_version = 1;
    snprintf(meta.media_type, sizeof(meta.media_type), "%s", "audio/ogg");
    snprintf(meta.original_name, sizeof(meta.original_name), "%s", "a.ogg");
    meta.plaintext_length = plain_len;
    uint8_t keybytes[SM_MEDIA_KEY_SIZE];
    smt_fill_pattern(keybytes, sizeof(keybytes), 7);
    sm_secret *key = sm_secret_from(keybytes, sizeof(keybytes));
    uint8_t *plain = malloc(plain_len + 1);
    smt_fill_pattern(plain, plain_len, 9);
    sm_mem_io sink = {0};
    sm_container_writer *w;
    sm_error err;
    ck_assert_int_eq(sm_container_writer_new(&meta, key, sm_mem_write, &sink, &w, &err), SM_OK);
    ck_assert_int_eq(sm_container_writer_write(w, plain, plain_len, &err), SM_OK);
    ck_assert_int_eq(sm_container_writer_finish(w, &err), SM_OK);
    sm_container_writer_free(w);
    sm_secret_free(key);
    free(plain);
    return sink;
}

static void sha256(const uint8_t *data, size_t len, uint8_t out[32])
{
    unsigned int n;
    ck_assert_int_eq(EVP_Digest(data, len, out, &n, EVP_sha256(), NULL), 1);
}

/* Feeds data in pieces of `piece` bytes; returns the first failure. */
static sm_status feed(sm_upload_check *u, const uint8_t *data, size_t len, size_t piece,
                      sm_error *err)
{
    for (size_t off = 0; off < len;) {
        size_t n = len - off < piece ? len - off : piece;
        sm_status st = sm_upload_check_update(u, data + off, n, err);
        if (st != SM_OK)
            return st;
        off += n;
    }
    return SM_OK;
}

static const size_t pieces[] = {1, 7, 13, 4096, 1 << 20};

START_TEST(test_valid_container_any_piece_size)
{
    sm_mem_io f = make_container("w1", 50000);
    uint8_t digest[32];
    sha256(f.data, f.len, digest);
    sm_upload_check *u;
    sm_error err;
    ck_assert_int_eq(sm_upload_check_new(SM_UPLOAD_CONTAINER, "w1", 1 << 20,
                                         _i % 2 ? (int64_t)f.len : -1, &u, &err),
                     SM_OK);
    ck_assert_int_eq(feed(u, f.data, f.len, pieces[_i], &err), SM_OK);
    ck_assert_msg(sm_upload_check_finish(u, digest, &err) == SM_OK, "%s", err.message);
    ck_assert_uint_eq(sm_upload_check_received(u), f.len);
    ck_assert_mem_eq(sm_upload_check_digest(u), digest, 32);
    ck_assert_str_eq(sm_upload_check_header(u)->meta.work_id, "w1");
    sm_upload_check_free(u);
    free(f.data);
}
END_TEST

static sm_status run_upload(sm_upload_kind kind, const char *work_id, const uint8_t *data,
                            size_t len, uint64_t max, int64_t announced, const uint8_t *digest,
                            sm_error *err)
{
    sm_upload_check *u;
    sm_status st = sm_upload_check_new(kind, work_id, max, announced, &u, err);
    if (st != SM_OK)
        return st;
    st = feed(u, data, len, 1000, err);
    if (st == SM_OK)
        st = sm_upload_check_finish(u, digest, err);
    sm_upload_check_free(u);
    return st;
}

START_TEST(test_bad_uploads)
{
    sm_mem_io f = make_container("w1", 50000);
    uint8_t digest[32], wrong[32];
    sha256(f.data, f.len, digest);
    memcpy(wrong, digest, 32);
    wrong[0] ^= 1;
    sm_error err;
    /* Another work's container. */
    ck_assert_int_eq(run_upload(SM_UPLOAD_CONTAINER, "w2", f.data, f.len, 1 << 20, -1, digest,
                                &err),
                     SM_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(err.message, "for work \"w1\""));
    /* Too large: announced, or only seen while streaming. */
    ck_assert_int_eq(run_upload(SM_UPLOAD_CONTAINER, "w1", f.data, f.len, 1000, (int64_t)f.len,
                                digest, &err),
                     SM_ERR_TOO_LARGE);
    ck_assert_int_eq(run_upload(SM_UPLOAD_CONTAINER, "w1", f.data, f.len, 40000, -1, digest,
                                &err),
                     SM_ERR_TOO_LARGE);
    /* Digest mismatch. */
    ck_assert_int_eq(run_upload(SM_UPLOAD_CONTAINER, "w1", f.data, f.len, 1 << 20, -1, wrong,
                                &err),
                     SM_ERR_AUTH);
    /* Truncated, trailing data, Content-Length disagreeing with the header. */
    ck_assert_int_eq(run_upload(SM_UPLOAD_CONTAINER, "w1", f.data, f.len - 1, 1 << 20, -1,
                                digest, &err),
                     SM_ERR_TRUNCATED);
    uint8_t *longer = malloc(f.len + 1);
    memcpy(longer, f.data, f.len);
    longer[f.len] = 'x';
    ck_assert_int_eq(run_upload(SM_UPLOAD_CONTAINER, "w1", longer, f.len + 1, 1 << 20, -1,
                                digest, &err),
                     SM_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(err.message, "trailing"));
    ck_assert_int_eq(run_upload(SM_UPLOAD_CONTAINER, "w1", f.data, f.len, 1 << 20,
                                (int64_t)f.len + 1, digest, &err),
                     SM_ERR_FORMAT);
    /* Not a container at all, empty, or cut inside the header. */
    uint8_t junk[5000];
    memset(junk, 'j', sizeof(junk));
    ck_assert_int_eq(run_upload(SM_UPLOAD_CONTAINER, "w1", junk, sizeof(junk), 1 << 20, -1,
                                digest, &err),
                     SM_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(err.message, "not a valid .smc container"));
    ck_assert_int_eq(run_upload(SM_UPLOAD_CONTAINER, "w1", f.data, 0, 1 << 20, -1, digest, &err),
                     SM_ERR_TRUNCATED);
    ck_assert_int_eq(run_upload(SM_UPLOAD_CONTAINER, "w1", f.data, 12, 1 << 20, -1, digest,
                                &err),
                     SM_ERR_FORMAT);
    /* A header change keeps the size but not the digest. */
    f.data[20] ^= 0x01;
    ck_assert_int_ne(run_upload(SM_UPLOAD_CONTAINER, "w1", f.data, f.len, 1 << 20, -1, digest,
                                &err),
                     SM_OK);
    free(longer);
    free(f.data);
}
END_TEST

START_TEST(test_preview_is_opaque)
{
    uint8_t data[3000];
    smt_fill_pattern(data, sizeof(data), 3);
    uint8_t digest[32];
    sha256(data, sizeof(data), digest);
    sm_error err;
    ck_assert_int_eq(run_upload(SM_UPLOAD_PREVIEW, "w1", data, sizeof(data), 4096, -1, digest,
                                &err),
                     SM_OK);
    ck_assert_int_eq(run_upload(SM_UPLOAD_PREVIEW, "w1", data, sizeof(data), 2048, -1, digest,
                                &err),
                     SM_ERR_TOO_LARGE);
    ck_assert_int_eq(run_upload(SM_UPLOAD_PREVIEW, "w1", data, sizeof(data), 4096, 2999, digest,
                                &err),
                     SM_ERR_TRUNCATED);
}
END_TEST

START_TEST(test_digest_fields)
{
    /* sha-256 of "" is 47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU= */
    static const uint8_t empty[32] = {0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14,
                                      0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f, 0xb9, 0x24,
                                      0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b, 0x93, 0x4c,
                                      0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55};
    static const char *good[] = {
        "sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:",
        "  sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:  ",
        "sha-512=:AAAA:, sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:",
        "sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:;p=1,unixsum=:AAAA:",
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        uint8_t out[32];
        sm_error err;
        ck_assert_msg(sm_digest_field_sha256(good[i], out, &err) == SM_OK, "%s: %s", good[i],
                      err.message);
        ck_assert_mem_eq(out, empty, 32);
    }
    static const struct {
        const char *field;
        sm_status want;
    } bad[] = {
        {"", SM_ERR_NOT_FOUND},
        {"sha-512=:AAAA:", SM_ERR_NOT_FOUND},
        {"sha-256=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=", SM_ERR_FORMAT},
        {"sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU:", SM_ERR_FORMAT},
        {"sha-256=:AAAA:", SM_ERR_FORMAT},
        {"sha-256=:47DEQpj8HBSa-_TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:", SM_ERR_FORMAT},
        {"SHA-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:", SM_ERR_FORMAT},
        {"sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:,", SM_ERR_FORMAT},
        {"sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=: x", SM_ERR_FORMAT},
        {"sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:, "
         "sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:",
         SM_ERR_FORMAT},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uint8_t out[32];
        sm_error err;
        sm_status st = sm_digest_field_sha256(bad[i].field, out, &err);
        ck_assert_msg(st == bad[i].want, "\"%s\": got %s, want %s", bad[i].field,
                      sm_status_name(st), sm_status_name(bad[i].want));
    }
}
END_TEST

START_TEST(test_range_last_byte)
{
    ck_assert(sm_range_includes_last_byte("bytes=0-", 100));
    ck_assert(sm_range_includes_last_byte("bytes=0-99", 100));
    ck_assert(sm_range_includes_last_byte("bytes=90-200", 100));
    ck_assert(sm_range_includes_last_byte("bytes=-1", 100));
    ck_assert(sm_range_includes_last_byte("bytes=0-9, 99-99", 100));
    ck_assert(!sm_range_includes_last_byte("bytes=0-98", 100));
    ck_assert(!sm_range_includes_last_byte("bytes=-0", 100));
    ck_assert(!sm_range_includes_last_byte("bytes=100-", 100));
    ck_assert(!sm_range_includes_last_byte("items=0-", 100));
    ck_assert(!sm_range_includes_last_byte("bytes=x-", 100));
    ck_assert(!sm_range_includes_last_byte(NULL, 100));
    ck_assert(!sm_range_includes_last_byte("bytes=0-", 0));
}
END_TEST

START_TEST(test_range_unsatisfiable)
{
    ck_assert(sm_range_unsatisfiable("bytes=100-", 100));
    ck_assert(sm_range_unsatisfiable("bytes=100-200, 300-", 100));
    ck_assert(sm_range_unsatisfiable("bytes=-0", 100));
    ck_assert(!sm_range_unsatisfiable("bytes=99-", 100));
    ck_assert(!sm_range_unsatisfiable("bytes=100-, 0-0", 100));
    ck_assert(!sm_range_unsatisfiable("bytes=-5", 100));
    ck_assert(!sm_range_unsatisfiable("bytes=5-1", 100));   /* malformed: ignored */
    ck_assert(!sm_range_unsatisfiable("bytes=x", 100));
    ck_assert(!sm_range_unsatisfiable("lines=100-", 100));
    ck_assert(!sm_range_unsatisfiable(NULL, 100));
}
END_TEST

START_TEST(test_token_cache)
{
    sm_token_cache *c;
    sm_error err;
    ck_assert_int_eq(sm_token_cache_new(3, sizeof(int), 100, &c, &err), SM_OK);
    int v = 0;
    ck_assert(!sm_token_cache_get(c, "tok-a", 5, 1000, &v));
    int a = 42;
    sm_token_cache_put(c, "tok-a", 5, 1000, 1050, &a);
    ck_assert(sm_token_cache_get(c, "tok-a", 5, 1049, &v) && v == 42);
    /* Expired at exp, and only the very same string hits. */
    ck_assert(!sm_token_cache_get(c, "tok-a", 5, 1050, &v));
    ck_assert(!sm_token_cache_get(c, "tok-b", 5, 1010, &v));
    ck_assert(!sm_token_cache_get(c, "tok-", 4, 1010, &v));
    /* max_age caps a long-lived token. */
    sm_token_cache_put(c, "tok-c", 5, 1000, 999999, &a);
    ck_assert(sm_token_cache_get(c, "tok-c", 5, 1099, &v));
    ck_assert(!sm_token_cache_get(c, "tok-c", 5, 1100, &v));
    /* Already expired: not stored. */
    sm_token_cache_put(c, "tok-d", 5, 1000, 1000, &a);
    ck_assert(!sm_token_cache_get(c, "tok-d", 5, 999, &v));
    /* Many entries in few slots: overwritten, never confused. */
    char name[16];
    for (int i = 0; i < 100; i++) {
        snprintf(name, sizeof(name), "t%d", i);
        sm_token_cache_put(c, name, strlen(name), 1000, 2000, &i);
    }
    for (int i = 0; i < 100; i++) {
        snprintf(name, sizeof(name), "t%d", i);
        if (sm_token_cache_get(c, name, strlen(name), 1001, &v))
            ck_assert_int_eq(v, i);
    }
    sm_token_cache_free(c);
}
END_TEST

static Suite *ms_upload_suite(void)
{
    Suite *s = suite_create("ms_upload");
    TCase *tc = tcase_create("upload");
    tcase_add_loop_test(tc, test_valid_container_any_piece_size, 0,
                        (int)(sizeof(pieces) / sizeof(pieces[0])));
    tcase_add_test(tc, test_bad_uploads);
    tcase_add_test(tc, test_preview_is_opaque);
    suite_add_tcase(s, tc);
    tc = tcase_create("fields");
    tcase_add_test(tc, test_digest_fields);
    tcase_add_test(tc, test_range_last_byte);
    tcase_add_test(tc, test_range_unsatisfiable);
    tcase_add_test(tc, test_token_cache);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(ms_upload_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
