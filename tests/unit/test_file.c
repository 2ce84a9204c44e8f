/* common/sm_file.c: bounded whole-file reads (text and secrets) and the
 * atomic, never-replacing writer. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <check.h>

#include "sm_file.h"
#include "sm_secmem.h"
#include "sm_test.h"

/* dir/name in a buffer of the caller's. */
static const char *in_dir(char buf[PATH_MAX], const char *dir, const char *name)
{
    snprintf(buf, PATH_MAX, "%s/%s", dir, name);
    return buf;
}

START_TEST(test_read_text_whole_file)
{
    char buf[PATH_MAX];
    const char *dir = smt_tmpdir();
    const char *path = in_dir(buf, dir, "lyrics.txt");
    const char *text = "Premi\xc3\xa8re ligne\n\tdeuxi\xc3\xa8me\n";
    smt_write_file(path, (const uint8_t *)text, strlen(text));
    char *out = NULL;
    size_t len = 0;
    sm_error err = {0};
    ck_assert_int_eq(sm_file_read_text(path, 1000, &out, &len, &err), SM_OK);
    ck_assert_uint_eq(len, strlen(text));
    ck_assert_str_eq(out, text);
    free(out);
    /* Exactly at the limit is fine; an empty file is empty text. */
    ck_assert_int_eq(sm_file_read_text(path, strlen(text), &out, NULL, &err), SM_OK);
    free(out);
    smt_write_file(path, (const uint8_t *)"", 0);
    ck_assert_int_eq(sm_file_read_text(path, 10, &out, &len, &err), SM_OK);
    ck_assert_uint_eq(len, 0);
    ck_assert_str_eq(out, "");
    free(out);
    smt_rm_rf(dir);
}
END_TEST

/* Larger than OpenSSL's secure heap: text is not read into it (lyrics of
 * 100 kB were refused as "out of memory" when it was). */
START_TEST(test_read_text_large)
{
    char buf[PATH_MAX];
    const char *dir = smt_tmpdir();
    const char *path = in_dir(buf, dir, "big.txt");
    size_t n = 400 * 1000;
    uint8_t *data = malloc(n);
    memset(data, 'a', n);
    smt_write_file(path, data, n);
    char *out = NULL;
    size_t len = 0;
    sm_error err = {0};
    ck_assert_int_eq(sm_file_read_text(path, n, &out, &len, &err), SM_OK);
    ck_assert_uint_eq(len, n);
    ck_assert_int_eq(memcmp(out, data, n), 0);
    free(out);
    free(data);
    smt_rm_rf(dir);
}
END_TEST

START_TEST(test_read_text_refusals)
{
    char *out = (char *)1;
    sm_error err = {0};
    char p1[PATH_MAX], p2[PATH_MAX], p3[PATH_MAX];
    const char *dir = smt_tmpdir();
    /* Missing, a directory, too large, a NUL inside: clear messages, no
     * output. */
    ck_assert_int_eq(sm_file_read_text(in_dir(p1, dir, "missing"), 10, &out, NULL, &err), SM_ERR_IO);
    ck_assert_ptr_null(out);
    ck_assert_ptr_nonnull(strstr(err.message, "missing: cannot open it"));
    ck_assert_int_eq(sm_file_read_text(dir, 10, &out, NULL, &err), SM_ERR_IO);
    ck_assert_ptr_nonnull(strstr(err.message, "not a regular file"));
    const char *path = in_dir(p3, dir, "t.txt");
    smt_write_file(path, (const uint8_t *)"0123456789x", 11);
    ck_assert_int_eq(sm_file_read_text(path, 10, &out, NULL, &err), SM_ERR_TOO_LARGE);
    ck_assert_ptr_null(out);
    ck_assert_ptr_nonnull(strstr(err.message, "11 bytes is more than the 10 allowed"));
    smt_write_file(path, (const uint8_t *)"ab\0cd", 5);
    ck_assert_int_eq(sm_file_read_text(path, 10, &out, NULL, &err), SM_ERR_FORMAT);
    ck_assert_ptr_null(out);
    ck_assert_ptr_nonnull(strstr(err.message, "NUL"));
    /* A FIFO planted at the path neither hangs nor is read. */
    const char *fifo = in_dir(p2, dir, "fifo");
    ck_assert_int_eq(mkfifo(fifo, 0600), 0);
    ck_assert_int_eq(sm_file_read_text(fifo, 10, &out, NULL, &err), SM_ERR_IO);
    smt_rm_rf(dir);
}
END_TEST

START_TEST(test_read_secret)
{
    char buf[PATH_MAX];
    const char *dir = smt_tmpdir();
    const char *path = in_dir(buf, dir, "key.jwk");
    smt_write_file(path, (const uint8_t *)"{\"k\":\"x\"}", 9);
    sm_secret *s = NULL;
    mode_t mode = 0;
    sm_error err = {0};
    ck_assert_int_eq(sm_file_read_secret(path, 100, &s, &mode, &err), SM_OK);
    ck_assert_uint_eq(s->len, 9);
    ck_assert_int_eq(memcmp(s->bytes, "{\"k\":\"x\"}", 9), 0);
    ck_assert_int_eq(mode & 0777, 0600);
    sm_secret_free(s);
    ck_assert_int_eq(sm_file_read_secret(path, 8, &s, NULL, &err), SM_ERR_TOO_LARGE);
    ck_assert_ptr_null(s);
    ck_assert_int_eq(sm_file_refuse_loose_mode(path, 0644, &err), SM_ERR_KEY);
    smt_rm_rf(dir);
}
END_TEST

START_TEST(test_write_atomic_never_replaces_unless_asked)
{
    char buf[PATH_MAX];
    const char *dir = smt_tmpdir();
    const char *path = in_dir(buf, dir, "out.json");
    sm_error err = {0};
    ck_assert_int_eq(sm_file_write_atomic(path, "one", 3, 0640, 0, &err), SM_OK);
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_int_eq(st.st_mode & 0777, 0640); /* fchmod: no umask */
    ck_assert_int_eq(sm_file_write_atomic(path, "two", 3, 0640, 0, &err), SM_ERR_IO);
    ck_assert_ptr_nonnull(strstr(err.message, "already exists"));
    char *out = NULL;
    ck_assert_int_eq(sm_file_read_text(path, 10, &out, NULL, &err), SM_OK);
    ck_assert_str_eq(out, "one");
    free(out);
    ck_assert_int_eq(sm_file_write_atomic(path, "two", 3, 0640, 1, &err), SM_OK);
    ck_assert_int_eq(sm_file_read_text(path, 10, &out, NULL, &err), SM_OK);
    ck_assert_str_eq(out, "two");
    free(out);
    smt_rm_rf(dir);
}
END_TEST

static Suite *file_suite(void)
{
    Suite *s = suite_create("file");
    TCase *tc = tcase_create("file");
    tcase_add_test(tc, test_read_text_whole_file);
    tcase_add_test(tc, test_read_text_large);
    tcase_add_test(tc, test_read_text_refusals);
    tcase_add_test(tc, test_read_secret);
    tcase_add_test(tc, test_write_atomic_never_replaces_unless_asked);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    (void)sm_secmem_init(); /* secrets are read into the secure heap */
    SRunner *sr = srunner_create(file_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
