/* Player core: the offline store and `secmedia fetch`
 * (common/sm_pl_offline.c, sm_pl_fetch_offline). */
#include "config.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <check.h>

#include "pl_fixture.h"
#include "sm_b64.h"
#include "sm_pl_offline.h"
#include "sm_pl_session.h"
#include "sm_test.h"

/* Entries (non-dot names) and temporaries (dot names) in the store. */
static void count_entries(const char *dir, int *entries, int *temporaries)
{
    *entries = *temporaries = 0;
    DIR *d = opendir(dir);
    if (d == NULL)
        return;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (de->d_name[0] == '.')
            (*temporaries)++;
        else
            (*entries)++;
    }
    closedir(d);
}

static void play_all(sm_pl_session *s, const plf_world *w)
{
    uint8_t buf[7000];
    uint64_t off = 0;
    size_t got = 0;
    while (sm_pl_session_read(s, off, buf, sizeof(buf), &got, NULL) == SM_OK && got > 0) {
        ck_assert_mem_eq(buf, w->plain + off, got);
        off += got;
    }
    ck_assert_uint_eq(off, w->plain_len);
}

START_TEST(fetch_then_play_without_network)
{
    plf_world *w = plf_new(9 * 16384 + 3, "audio/mp4", 2);
    w->mirrors[0].mode = PLF_MIRROR_DOWN;
    sm_pl_options o = plf_options(w);
    sm_steer *steer = plf_steer_parsed(w);
    char entry[4096];
    sm_error err = {SM_OK, ""};
    ck_assert_msg(sm_pl_fetch_offline(&o, steer, 0, entry, sizeof(entry), NULL, &err) == SM_OK,
                  "%s", err.message);
    ck_assert_uint_eq(w->ks_requests, 1);

    /* Layout: <store>/<b64url sha256(voucher)>/{license.json,media.smc}, 0600. */
    char name[44];
    ck_assert_int_eq(sm_pl_offline_entry_name(steer->voucher, name, NULL), SM_OK);
    ck_assert_uint_eq(strlen(name), 43);
    char expect[4096];
    snprintf(expect, sizeof(expect), "%s/%s", w->offline_dir, name);
    ck_assert_str_eq(entry, expect);
    char path[4200];
    struct stat sb;
    snprintf(path, sizeof(path), "%s/media.smc", entry);
    size_t len = 0;
    uint8_t *stored = smt_read_file(path, &len);
    ck_assert_uint_eq(len, w->container_len);
    ck_assert_mem_eq(stored, w->container, len);
    free(stored);
    ck_assert_int_eq(stat(path, &sb), 0);
    ck_assert_uint_eq(sb.st_mode & 0777, 0600);
    snprintf(path, sizeof(path), "%s/license.json", entry);
    ck_assert_int_eq(stat(path, &sb), 0);
    ck_assert_uint_eq(sb.st_mode & 0777, 0600);
    /* The media key is not in the store, only its JWE. */
    char key_b64[64];
    ck_assert_int_eq(sm_b64url_encode(w->media_key->bytes, w->media_key->len, key_b64,
                                      sizeof(key_b64), NULL), SM_OK);
    uint8_t *lic = smt_read_file(path, &len);
    char *text = calloc(1, len + 1);
    memcpy(text, lic, len);
    ck_assert_ptr_null(strstr(text, key_b64));
    ck_assert_ptr_null(strstr(text, PLF_TOKEN)); /* the delivery token is not kept either */
    ck_assert_ptr_nonnull(strstr(text, "\"format\":\"secmedia-offline/1\""));
    free(text);
    free(lic);
    snprintf(path, sizeof(path), "%s", w->offline_dir);
    ck_assert_int_eq(stat(path, &sb), 0);
    ck_assert_uint_eq(sb.st_mode & 0777, 0700);

    /* Now with no network at all. */
    w->ks_down = 1;
    w->mirrors[1].mode = PLF_MIRROR_DOWN;
    sm_pl_session *s = NULL;
    ck_assert_msg(plf_open(w, &o, &s, NULL, &err) == SM_OK, "%s", err.message);
    ck_assert_int_eq(sm_pl_session_is_offline(s), 1);
    ck_assert_str_eq(sm_pl_session_media_type(s), "audio/mp4");
    play_all(s, w);
    sm_pl_session_free(s);
    /* Without a transport too. */
    o.transport = NULL;
    ck_assert_int_eq(plf_open(w, &o, &s, NULL, NULL), SM_OK);
    sm_pl_session_free(s);
    ck_assert_uint_eq(w->ks_requests, 1);

    /* A second fetch keeps the entry and spends no activation. */
    o.transport = &w->transport;
    w->ks_down = 0;
    ck_assert_int_eq(sm_pl_fetch_offline(&o, steer, 0, entry, sizeof(entry), NULL, &err),
                     SM_ERR_DUPLICATE);
    ck_assert_uint_eq(w->ks_requests, 1);
    /* --force replaces it whole. */
    w->mirrors[1].mode = PLF_MIRROR_OK;
    ck_assert_int_eq(sm_pl_fetch_offline(&o, steer, 1, entry, sizeof(entry), NULL, &err), SM_OK);
    ck_assert_uint_eq(w->ks_requests, 2);
    int entries, temporaries;
    count_entries(w->offline_dir, &entries, &temporaries);
    ck_assert_int_eq(entries, 1);
    ck_assert_int_eq(temporaries, 0);
    sm_steer_free(steer);
    plf_free(w);
}
END_TEST

START_TEST(offline_option_keeps_on_first_play)
{
    plf_world *w = plf_new(3 * 16384, "audio/ogg", 1);
    sm_pl_options o = plf_options(w);
    o.offline_keep = 1;
    sm_pl_session *s = NULL;
    sm_error err = {SM_OK, ""};
    ck_assert_msg(plf_open(w, &o, &s, NULL, &err) == SM_OK, "%s", err.message);
    ck_assert_int_eq(sm_pl_session_is_offline(s), 1);
    play_all(s, w);
    sm_pl_session_free(s);
    unsigned media_requests = w->mirrors[0].requests;
    ck_assert_int_eq(plf_open(w, &o, &s, NULL, &err), SM_OK);
    sm_pl_session_free(s);
    ck_assert_uint_eq(w->ks_requests, 1);
    ck_assert_uint_eq(w->mirrors[0].requests, media_requests);
    plf_free(w);
}
END_TEST

START_TEST(rental_ends_offline_too)
{
    plf_world *w = plf_new(1000, "audio/ogg", 1);
    w->ks_rental = 1;
    w->ks_rental_ends = 1800000000;
    sm_pl_options o = plf_options(w);
    sm_steer *steer = plf_steer_parsed(w);
    ck_assert_int_eq(sm_pl_fetch_offline(&o, steer, 0, NULL, 0, NULL, NULL), SM_OK);
    o.transport = NULL;
    o.now = 1800000000 - 1;
    sm_pl_session *s = NULL;
    ck_assert_int_eq(plf_open(w, &o, &s, NULL, NULL), SM_OK);
    sm_pl_session_free(s);
    o.now = 1800000000;
    sm_error err = {SM_OK, ""};
    sm_pl_refusal r = SM_PL_REFUSAL_NONE;
    ck_assert_int_eq(plf_open(w, &o, &s, &r, &err), SM_ERR_EXPIRED);
    ck_assert_str_eq(err.message, "License refused: the rental period has ended.");
    ck_assert_int_eq(r, SM_PL_REFUSAL_RENTAL_EXPIRED);
    sm_steer_free(steer);
    plf_free(w);
}
END_TEST

START_TEST(damaged_download_or_store_never_plays)
{
    plf_world *w = plf_new(5 * 16384, "audio/ogg", 1);
    w->mirrors[0].data[w->container_len - 30] ^= 0x40;
    sm_pl_options o = plf_options(w);
    sm_steer *steer = plf_steer_parsed(w);
    sm_error err = {SM_OK, ""};
    ck_assert_int_ne(sm_pl_fetch_offline(&o, steer, 0, NULL, 0, NULL, &err), SM_OK);
    ck_assert_msg(strncmp(err.message, "The media is damaged", 20) == 0, "%s", err.message);
    int entries, temporaries;
    count_entries(w->offline_dir, &entries, &temporaries);
    ck_assert_int_eq(entries, 0);
    ck_assert_int_eq(temporaries, 0);

    /* A good entry whose container changes on disk afterwards. */
    memcpy(w->mirrors[0].data, w->container, w->container_len);
    char entry[4096];
    ck_assert_int_eq(sm_pl_fetch_offline(&o, steer, 0, entry, sizeof(entry), NULL, NULL), SM_OK);
    char path[4200];
    snprintf(path, sizeof(path), "%s/media.smc", entry);
    size_t len = 0;
    uint8_t *bytes = smt_read_file(path, &len);
    bytes[len - 20] ^= 1;
    smt_write_file(path, bytes, len);
    o.transport = NULL;
    sm_pl_session *s = NULL;
    ck_assert_int_eq(plf_open(w, &o, &s, NULL, &err), SM_OK); /* the last chunk is not read yet */
    uint8_t buf[16384];
    size_t got = 0;
    ck_assert_int_eq(sm_pl_session_read(s, 0, buf, sizeof(buf), &got, NULL), SM_OK);
    ck_assert_int_ne(sm_pl_session_read(s, 4 * 16384, buf, sizeof(buf), &got, &err), SM_OK);
    ck_assert_uint_eq(got, 0);
    sm_pl_session_free(s);
    /* Cut short on disk: refused at open. */
    smt_write_file(path, bytes, len - 1);
    ck_assert_int_ne(plf_open(w, &o, &s, NULL, &err), SM_OK);
    ck_assert_msg(strstr(err.message, "damaged") != NULL, "%s", err.message);
    free(bytes);
    /* A damaged license.json. */
    smt_write_file(path, w->container, w->container_len);
    snprintf(path, sizeof(path), "%s/license.json", entry);
    smt_write_file(path, (const uint8_t *)"{\"format\":1}", 12);
    ck_assert_int_eq(plf_open(w, &o, &s, NULL, &err), SM_ERR_FORMAT);
    sm_steer_free(steer);
    plf_free(w);
}
END_TEST

/* license.json without a directory: what commit writes reads back, and a
 * key_version of 0 (never issued, PLAYER.md §1.5) is refused up front. */
START_TEST(license_json_parses_without_a_store)
{
    sm_pl_license lic = {.txn = "txn-1", .work_id = "work-42", .key_version = 3,
                         .key_jwe = "h..i.c.t", .rental = 1, .rental_duration = 60,
                         .rental_ends_at = 1700000060};
    char *text = sm_pl_offline_license_text(&lic, "audio/ogg", 99, 1700000000);
    ck_assert_ptr_nonnull(text);
    sm_pl_offline_entry e;
    memset(&e, 0, sizeof(e));
    sm_error err = {SM_OK, ""};
    ck_assert_int_eq(sm_pl_offline_parse_license((const uint8_t *)text, strlen(text), "work-42",
                                                 "t", &e, &err),
                     SM_OK);
    ck_assert_str_eq(e.txn, "txn-1");
    ck_assert_uint_eq(e.key_version, 3);
    ck_assert_int_eq(e.rental, 1);
    ck_assert_int_eq(e.rental_ends_at, 1700000060);
    ck_assert_uint_eq(e.container_size, 99);
    free(e.work_id);
    free(e.txn);
    free(e.key_jwe);
    free(e.media_type);
    free(text);

    lic.key_version = 0;
    text = sm_pl_offline_license_text(&lic, "audio/ogg", 99, 1700000000);
    memset(&e, 0, sizeof(e));
    ck_assert_int_eq(sm_pl_offline_parse_license((const uint8_t *)text, strlen(text), NULL, "t",
                                                 &e, &err),
                     SM_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(err.message, "\"key_version\" must be at least 1"));
    free(text);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("pl_offline");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, fetch_then_play_without_network);
    tcase_add_test(tc, offline_option_keeps_on_first_play);
    tcase_add_test(tc, rental_ends_offline_too);
    tcase_add_test(tc, damaged_download_or_store_never_plays);
    tcase_add_test(tc, license_json_parses_without_a_store);
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
