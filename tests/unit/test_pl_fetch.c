/* Player core: ranged fetcher with mirrors and read-ahead
 * (common/sm_pl_fetch.c) over memory media stores. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "pl_fixture.h"
#include "sm_pl_fetch.h"

static sm_pl_fetch *new_fetch(plf_world *w, size_t window)
{
    char *urls[PLF_MAX_MIRRORS];
    for (size_t i = 0; i < w->mirror_count; i++)
        urls[i] = w->mirrors[i].url;
    sm_pl_fetch *f = NULL;
    ck_assert_int_eq(sm_pl_fetch_new(&w->transport, urls, w->mirror_count, PLF_TOKEN, window, &f,
                                     NULL),
                     SM_OK);
    return f;
}

START_TEST(content_range_parsed_strictly)
{
    uint64_t a, b, n;
    ck_assert_int_eq(sm_pl_parse_content_range("bytes 0-99/100", &a, &b, &n), 0);
    ck_assert(a == 0 && b == 99 && n == 100);
    ck_assert_int_eq(sm_pl_parse_content_range("bytes 5-5/18446744073709551615", &a, &b, &n), 0);
    static const char *bad[] = {"bytes 0-99/99", "bytes 9-5/100", "bytes 00-5/100",
                                "bytes 0-5/100 ", "bytes */100", "bytes 0-5", "items 0-5/10",
                                "bytes -1-5/10", "bytes 0-5/18446744073709551616", "",
                                "bytes 0-5/1x0"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(sm_pl_parse_content_range(bad[i], &a, &b, &n) != 0, "accepted %s", bad[i]);
}
END_TEST

START_TEST(reads_ahead_by_the_window)
{
    plf_world *w = plf_new(20 * 16384 + 100, "audio/ogg", 1);
    sm_pl_fetch *f = new_fetch(w, 4 * SM_PL_CHUNK_WIRE);
    ck_assert_int_eq(sm_pl_fetch_open(f, NULL), SM_OK);
    ck_assert_uint_eq(sm_pl_fetch_size(f), w->container_len);
    uint8_t buf[SM_PL_CHUNK_WIRE];
    /* Sequential reads of one chunk each: one request per 4 chunks. */
    size_t total = 0;
    for (uint64_t off = 0; off < w->container_len; off += sizeof(buf)) {
        size_t got = 0;
        ck_assert_int_eq(sm_pl_fetch_read_at(f, off, buf, sizeof(buf), &got, NULL), SM_OK);
        ck_assert_mem_eq(buf, w->container + off, got);
        total += got;
    }
    ck_assert_uint_eq(total, w->container_len);
    size_t windows = (w->container_len + 4 * SM_PL_CHUNK_WIRE - 1) / (4 * SM_PL_CHUNK_WIRE);
    ck_assert_uint_le(sm_pl_fetch_requests(f), windows + 1);
    /* Past the end: nothing, no request. */
    unsigned long before = sm_pl_fetch_requests(f);
    size_t got = 1;
    ck_assert_int_eq(sm_pl_fetch_read_at(f, w->container_len, buf, 10, &got, NULL), SM_OK);
    ck_assert_uint_eq(got, 0);
    ck_assert_uint_eq(sm_pl_fetch_requests(f), before);
    /* A seek backwards fetches a window there; reads inside it are free. */
    ck_assert_int_eq(sm_pl_fetch_read_at(f, 1000, buf, 100, &got, NULL), SM_OK);
    ck_assert_uint_eq(w->mirrors[0].last_first, 1000);
    before = sm_pl_fetch_requests(f);
    uint8_t *three = malloc(3 * 16000);
    ck_assert_int_eq(sm_pl_fetch_read_at(f, 1100, three, 3 * 16000, &got, NULL), SM_OK);
    ck_assert_uint_eq(got, 3 * 16000);
    ck_assert_mem_eq(three, w->container + 1100, got);
    ck_assert_uint_eq(sm_pl_fetch_requests(f), before);
    free(three);
    /* Larger than the window: straight through. */
    uint8_t *big = malloc(6 * SM_PL_CHUNK_WIRE);
    ck_assert_int_eq(sm_pl_fetch_read_at(f, 7, big, 6 * SM_PL_CHUNK_WIRE, &got, NULL), SM_OK);
    ck_assert_uint_eq(got, 6 * SM_PL_CHUNK_WIRE);
    ck_assert_mem_eq(big, w->container + 7, got);
    free(big);
    sm_pl_fetch_free(f);
    plf_free(w);
}
END_TEST

static void check_fallover(plf_mirror_mode first_mode)
{
    plf_world *w = plf_new(50000, "audio/ogg", 2);
    w->mirrors[0].mode = first_mode;
    sm_pl_fetch *f = new_fetch(w, 0);
    sm_error err = {SM_OK, ""};
    ck_assert_msg(sm_pl_fetch_open(f, &err) == SM_OK, "mode %d: %s", first_mode, err.message);
    ck_assert_uint_eq(sm_pl_fetch_mirror(f), 1);
    ck_assert_uint_eq(w->mirrors[0].requests, 1);
    uint8_t buf[100];
    size_t got = 0;
    ck_assert_int_eq(sm_pl_fetch_read_at(f, 200, buf, 100, &got, NULL), SM_OK);
    ck_assert_mem_eq(buf, w->container + 200, 100);
    sm_pl_fetch_free(f);
    plf_free(w);
}

START_TEST(falls_over_to_the_next_mirror)
{
    check_fallover(PLF_MIRROR_DOWN);
    check_fallover(PLF_MIRROR_500);
    check_fallover(PLF_MIRROR_404);
    check_fallover(PLF_MIRROR_CERT);
    check_fallover(PLF_MIRROR_IGNORE_RANGE);
}
END_TEST

START_TEST(all_mirrors_failing_is_one_clear_error)
{
    plf_world *w = plf_new(50000, "audio/ogg", 3);
    w->mirrors[0].mode = PLF_MIRROR_DOWN;
    w->mirrors[1].mode = PLF_MIRROR_500;
    w->mirrors[2].mode = PLF_MIRROR_IGNORE_RANGE;
    sm_pl_fetch *f = new_fetch(w, 0);
    sm_error err = {SM_OK, ""};
    ck_assert_int_eq(sm_pl_fetch_open(f, &err), SM_ERR_UNAVAILABLE);
    ck_assert_msg(strncmp(err.message,
                          "Network failure: no media store delivered the container (last: ",
                          60) == 0, "%s", err.message);
    ck_assert_msg(strstr(err.message, "200 instead of 206") != NULL, "%s", err.message);
    ck_assert_ptr_null(strstr(err.message, PLF_TOKEN));
    sm_pl_fetch_free(f);

    /* Only certificate failures: say so. */
    for (size_t i = 0; i < 3; i++)
        w->mirrors[i].mode = PLF_MIRROR_CERT;
    f = new_fetch(w, 0);
    ck_assert_int_eq(sm_pl_fetch_open(f, &err), SM_ERR_AUTH);
    ck_assert_msg(strncmp(err.message, "Certificate failure", 19) == 0, "%s", err.message);
    sm_pl_fetch_free(f);

    /* An interruption stops at once: no other mirror is tried. */
    w->mirrors[0].mode = PLF_MIRROR_HANG;
    w->mirrors[1].requests = 0;
    f = new_fetch(w, 0);
    ck_assert_int_eq(sm_pl_fetch_open(f, &err), SM_ERR_STATE);
    ck_assert_uint_eq(w->mirrors[1].requests, 0);
    sm_pl_fetch_free(f);
    plf_free(w);
}
END_TEST

START_TEST(mirror_lost_during_play)
{
    plf_world *w = plf_new(40 * 16384, "audio/ogg", 2);
    w->mirrors[0].fail_after = 2;
    sm_pl_fetch *f = new_fetch(w, 2 * SM_PL_CHUNK_WIRE);
    uint8_t buf[SM_PL_CHUNK_WIRE];
    for (uint64_t off = 0; off < w->container_len; off += sizeof(buf)) {
        size_t got = 0;
        sm_error err = {SM_OK, ""};
        ck_assert_msg(sm_pl_fetch_read_at(f, off, buf, sizeof(buf), &got, &err) == SM_OK, "%s",
                      err.message);
        ck_assert_mem_eq(buf, w->container + off, got);
    }
    ck_assert_uint_eq(sm_pl_fetch_mirror(f), 1);
    sm_pl_fetch_free(f);

    /* A mirror holding a file of another size is refused once playing. */
    w->mirrors[0].mode = PLF_MIRROR_OK;
    w->mirrors[0].requests = 0;
    w->mirrors[0].fail_after = 1;
    w->mirrors[1].mode = PLF_MIRROR_OK;
    plf_mirror_set_data(w, 1, w->container, w->container_len - 16);
    f = new_fetch(w, 2 * SM_PL_CHUNK_WIRE);
    ck_assert_int_eq(sm_pl_fetch_open(f, NULL), SM_OK);
    size_t got = 0;
    sm_error err = {SM_OK, ""};
    ck_assert_int_ne(sm_pl_fetch_read_at(f, 10 * SM_PL_CHUNK_WIRE, buf, 10, &got, &err), SM_OK);
    ck_assert_msg(strstr(err.message, "bytes, the other mirror") != NULL, "%s", err.message);
    sm_pl_fetch_free(f);
    plf_free(w);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("pl_fetch");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, content_range_parsed_strictly);
    tcase_add_test(tc, reads_ahead_by_the_window);
    tcase_add_test(tc, falls_over_to_the_next_mirror);
    tcase_add_test(tc, all_mirrors_failing_is_one_clear_error);
    tcase_add_test(tc, mirror_lost_during_play);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
