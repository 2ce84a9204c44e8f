/* Player core end to end over memory servers (common/sm_pl_session.c):
 * play, seek, tamper, truncation, device key and license failures. */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <check.h>

#include "pl_fixture.h"
#include "sm_pl_fetch.h"
#include "sm_pl_offline.h"
#include "sm_pl_session.h"
#include "sm_test.h"

#define CHUNK 16384u

/* Reads the whole media with reads of `step` bytes. */
static void read_all(sm_pl_session *s, const plf_world *w, size_t step)
{
    uint8_t *buf = malloc(step);
    uint64_t off = 0;
    for (;;) {
        size_t got = 0;
        sm_error err = {SM_OK, ""};
        ck_assert_msg(sm_pl_session_read(s, off, buf, step, &got, &err) == SM_OK, "%s",
                      err.message);
        if (got == 0)
            break;
        /* Never across a chunk boundary, so good bytes before a bad chunk come out. */
        ck_assert_uint_le(off % CHUNK + got, CHUNK);
        ck_assert_mem_eq(buf, w->plain + off, got);
        off += got;
    }
    ck_assert_uint_eq(off, w->plain_len);
    free(buf);
}

START_TEST(plays_the_whole_media)
{
    static const size_t sizes[] = {0, 1, CHUNK - 1, CHUNK, 5 * CHUNK + 77, 40 * CHUNK};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        plf_world *w = plf_new(sizes[i], "audio/flac", 1);
        sm_pl_options o = plf_options(w);
        sm_pl_session *s = NULL;
        sm_error err = {SM_OK, ""};
        ck_assert_msg(plf_open(w, &o, &s, NULL, &err) == SM_OK, "%s", err.message);
        ck_assert_uint_eq(sm_pl_session_size(s), sizes[i]);
        ck_assert_str_eq(sm_pl_session_media_type(s), "audio/flac");
        ck_assert_int_eq(sm_pl_session_is_offline(s), 0);
        read_all(s, w, 5000);
        ck_assert_uint_eq(w->ks_requests, 1);
        sm_pl_session_free(s);
        plf_free(w);
    }
}
END_TEST

START_TEST(seeks_anywhere)
{
    plf_world *w = plf_new(64 * CHUNK + 1234, "video/x-matroska", 2);
    sm_pl_options o = plf_options(w);
    o.window = 4 * SM_PL_CHUNK_WIRE;
    o.cache_chunks = 4;
    sm_pl_session *s = NULL;
    ck_assert_int_eq(plf_open(w, &o, &s, NULL, NULL), SM_OK);
    /* The index at the end first (m4a/mkv), then back, then jumps. */
    static const uint64_t offs[] = {64 * CHUNK + 1000, 0, 17, 30 * CHUNK - 5, 3 * CHUNK,
                                    63 * CHUNK, 1 * CHUNK + 1, 64 * CHUNK + 1233};
    uint8_t buf[CHUNK];
    for (size_t i = 0; i < sizeof(offs) / sizeof(offs[0]); i++) {
        size_t got = 0;
        ck_assert_int_eq(sm_pl_session_read(s, offs[i], buf, sizeof(buf), &got, NULL), SM_OK);
        ck_assert_uint_gt(got, 0);
        ck_assert_mem_eq(buf, w->plain + offs[i], got);
    }
    size_t got = 1;
    ck_assert_int_eq(sm_pl_session_read(s, w->plain_len, buf, 10, &got, NULL), SM_OK);
    ck_assert_uint_eq(got, 0);
    ck_assert_int_eq(sm_pl_session_read(s, w->plain_len + 999, buf, 10, &got, NULL), SM_OK);
    ck_assert_uint_eq(got, 0);
    /* Only the chunks touched were fetched, not the whole file. */
    ck_assert_uint_lt(sm_pl_session_media_requests(s), 12);
    sm_pl_session_free(s);
    plf_free(w);
}
END_TEST

START_TEST(tampered_chunk_stops_with_an_error)
{
    plf_world *w = plf_new(10 * CHUNK, "audio/ogg", 1);
    /* Flip one ciphertext byte of chunk 3. */
    size_t at = w->container_len - 10 * SM_PL_CHUNK_WIRE + 3 * SM_PL_CHUNK_WIRE - 16 + 100;
    w->mirrors[0].data[at] ^= 0x01;
    sm_pl_options o = plf_options(w);
    sm_pl_session *s = NULL;
    ck_assert_int_eq(plf_open(w, &o, &s, NULL, NULL), SM_OK);
    uint8_t buf[CHUNK];
    uint64_t off = 0;
    sm_status st = SM_OK;
    sm_error err = {SM_OK, ""};
    size_t got = 0;
    while ((st = sm_pl_session_read(s, off, buf, sizeof(buf), &got, &err)) == SM_OK && got > 0) {
        ck_assert_mem_eq(buf, w->plain + off, got);
        off += got;
    }
    /* Everything before the bad chunk came out; nothing of it or after. */
    ck_assert_int_eq(st, SM_ERR_AUTH);
    ck_assert_uint_eq(off, 3 * CHUNK);
    ck_assert_uint_eq(got, 0);
    ck_assert_msg(strncmp(err.message, "The media is damaged or was tampered with: ", 43) == 0,
                  "%s", err.message);
    /* Final: later reads fail too, even of good chunks. */
    ck_assert_int_ne(sm_pl_session_read(s, 0, buf, 10, &got, NULL), SM_OK);
    ck_assert_uint_eq(got, 0);
    sm_pl_session_free(s);

    /* A changed header fails before any byte is played. */
    memcpy(w->mirrors[0].data, w->container, w->container_len);
    w->mirrors[0].data[20] ^= 0x20;
    s = NULL;
    ck_assert_int_ne(plf_open(w, &o, &s, NULL, &err), SM_OK);
    ck_assert_ptr_null(s);
    ck_assert_msg(strncmp(err.message, "The media is damaged", 20) == 0, "%s", err.message);
    plf_free(w);
}
END_TEST

START_TEST(truncated_media_refused)
{
    plf_world *w = plf_new(10 * CHUNK + 5, "audio/ogg", 1);
    plf_mirror_set_data(w, 0, w->container, w->container_len - 100);
    sm_pl_options o = plf_options(w);
    sm_pl_session *s = NULL;
    sm_error err = {SM_OK, ""};
    ck_assert_int_ne(plf_open(w, &o, &s, NULL, &err), SM_OK);
    ck_assert_msg(strncmp(err.message, "The media is damaged", 20) == 0, "%s", err.message);
    /* Extra bytes at the end too. */
    uint8_t *longer = calloc(1, w->container_len + 16400);
    memcpy(longer, w->container, w->container_len);
    plf_mirror_set_data(w, 0, longer, w->container_len + 16400);
    free(longer);
    ck_assert_int_ne(plf_open(w, &o, &s, NULL, &err), SM_OK);
    ck_assert_msg(strncmp(err.message, "The media is damaged", 20) == 0, "%s", err.message);
    plf_free(w);
}
END_TEST

START_TEST(device_key_problems_explained)
{
    plf_world *w = plf_new(100, "audio/ogg", 1);
    sm_pl_options o = plf_options(w);
    char missing[600];
    snprintf(missing, sizeof(missing), "%s/none.jwk", w->dir);
    o.device_key_path = missing;
    sm_pl_session *s = NULL;
    sm_error err = {SM_OK, ""};
    ck_assert_int_eq(plf_open(w, &o, &s, NULL, &err), SM_ERR_KEY);
    ck_assert_msg(strstr(err.message, "No device key at ") == err.message, "%s", err.message);
    ck_assert_ptr_nonnull(strstr(err.message, "secmedia keygen"));
    ck_assert_uint_eq(w->ks_requests, 0);

    /* A public key only. */
    char pub[600];
    snprintf(pub, sizeof(pub), "%s/public.jwk", w->dir);
    ck_assert_int_eq(sm_jwk_save_file(w->device_key, pub, 0, NULL), SM_OK);
    o.device_key_path = pub;
    ck_assert_int_eq(plf_open(w, &o, &s, NULL, &err), SM_ERR_KEY);
    ck_assert_msg(strstr(err.message, "cannot be used") != NULL, "%s", err.message);
    /* Readable by others. */
    ck_assert_int_eq(chmod(w->device_key_path, 0644), 0);
    o.device_key_path = w->device_key_path;
    ck_assert_int_eq(plf_open(w, &o, &s, NULL, &err), SM_ERR_KEY);
    ck_assert_msg(strstr(err.message, "cannot be used") != NULL, "%s", err.message);
    ck_assert_uint_eq(w->ks_requests, 0);
    plf_free(w);
}
END_TEST

START_TEST(license_failures_explained)
{
    plf_world *w = plf_new(100, "audio/ogg", 1);
    sm_pl_options o = plf_options(w);
    sm_pl_session *s = NULL;
    sm_error err = {SM_OK, ""};
    sm_pl_refusal r = SM_PL_REFUSAL_NONE;
    w->ks_status = 403;
    w->ks_slug = "activation-limit";
    w->ks_detail = "5 of 5 activations used";
    ck_assert_int_eq(plf_open(w, &o, &s, &r, &err), SM_ERR_KEY);
    ck_assert_int_eq(r, SM_PL_REFUSAL_ACTIVATION_LIMIT);
    ck_assert_str_eq(err.message, "License refused: the activation limit for this purchase has "
                                  "been reached. Server says: 5 of 5 activations used");
    ck_assert_uint_eq(w->mirrors[0].requests, 0);

    w->ks_status = 200;
    w->ks_down = 1;
    ck_assert_int_eq(plf_open(w, &o, &s, &r, &err), SM_ERR_UNAVAILABLE);
    ck_assert_msg(strncmp(err.message, "Network failure: cannot reach", 29) == 0, "%s",
                  err.message);

    /* A key wrapped for another device. */
    w->ks_down = 0;
    sm_jwk *other = NULL;
    ck_assert_int_eq(sm_jwk_generate(&other, NULL), SM_OK);
    sm_jwk *mine = w->device_key;
    w->device_key = other; /* the fake server wraps to this one */
    ck_assert_int_eq(plf_open(w, &o, &s, &r, &err), SM_ERR_KEY);
    ck_assert_msg(strstr(err.message, "cannot be opened with this device key") != NULL, "%s",
                  err.message);
    w->device_key = mine;
    sm_jwk_free(other);

    /* The whole license exchange keeps the token and key out of messages. */
    w->ks_raw_body = "{\"txn\":1}";
    w->ks_content_type = "application/json";
    ck_assert_int_eq(plf_open(w, &o, &s, &r, &err), SM_ERR_FORMAT);
    ck_assert_msg(strncmp(err.message, "The key server sent an invalid license", 38) == 0, "%s",
                  err.message);
    plf_free(w);
}
END_TEST

static int kept_license_exists(const plf_world *w)
{
    char path[1024];
    sm_steer *st = plf_steer_parsed(w);
    char name[44];
    ck_assert_int_eq(sm_pl_offline_entry_name(st->voucher, name, NULL), SM_OK);
    sm_steer_free(st);
    snprintf(path, sizeof(path), "%s/%s/%s.json", w->offline_dir, SM_PL_STREAMING_DIR, name);
    struct stat sb;
    if (stat(path, &sb) != 0)
        return 0;
    ck_assert_int_eq(sb.st_mode & 0777, 0600);
    return 1;
}

static void play_once(plf_world *w, const sm_pl_options *o)
{
    sm_pl_session *s = NULL;
    sm_error err = {SM_OK, ""};
    ck_assert_msg(plf_open(w, o, &s, NULL, &err) == SM_OK, "%s", err.message);
    ck_assert_int_eq(sm_pl_session_is_offline(s), 0);
    read_all(s, w, 7000);
    sm_pl_session_free(s);
}

/* PLAYER.md §1.3: the first online play spends an activation and keeps its
 * license (the key still wrapped to the device key); later plays only ask
 * for a new delivery token. */
START_TEST(later_online_plays_renew_the_token)
{
    plf_world *w = plf_new(3 * CHUNK + 5, "audio/ogg", 1);
    sm_pl_options o = plf_options(w);
    play_once(w, &o);
    ck_assert_uint_eq(w->ks_licenses, 1);
    ck_assert_uint_eq(w->ks_renewals, 0);
    ck_assert(kept_license_exists(w));
    play_once(w, &o);
    play_once(w, &o);
    ck_assert_uint_eq(w->ks_licenses, 1);
    ck_assert_uint_eq(w->ks_renewals, 2);

    /* The key server has no license on record (e.g. its database was
     * restored): the kept one is forgotten and a license is asked for. */
    w->ks_licenses = 0;
    play_once(w, &o);
    ck_assert_uint_eq(w->ks_licenses, 1);
    ck_assert_uint_eq(w->ks_renewals, 2);
    ck_assert(kept_license_exists(w));

    /* A refusal of the renewal is the player's answer, in plain words,
     * and the kept license stays (the key server judges every play). */
    w->ks_status = 403;
    w->ks_slug = "transaction-revoked";
    sm_pl_session *s = NULL;
    sm_pl_refusal r = SM_PL_REFUSAL_NONE;
    sm_error err = {SM_OK, ""};
    ck_assert_int_eq(plf_open(w, &o, &s, &r, &err), SM_ERR_KEY);
    ck_assert_int_eq(r, SM_PL_REFUSAL_TXN_REVOKED);
    ck_assert_msg(strstr(err.message, "revoked") != NULL, "%s", err.message);
    ck_assert(kept_license_exists(w));
    plf_free(w);
}
END_TEST

START_TEST(a_damaged_or_foreign_kept_license_is_forgotten)
{
    plf_world *w = plf_new(CHUNK, "audio/ogg", 1);
    sm_pl_options o = plf_options(w);
    play_once(w, &o);
    /* Damaged: a full license again, and a good one kept. */
    sm_steer *st = plf_steer_parsed(w);
    char name[44], path[1024];
    ck_assert_int_eq(sm_pl_offline_entry_name(st->voucher, name, NULL), SM_OK);
    snprintf(path, sizeof(path), "%s/%s/%s.json", w->offline_dir, SM_PL_STREAMING_DIR, name);
    smt_write_file(path, (const uint8_t *)"{\"format\":", 11);
    play_once(w, &o);
    ck_assert_uint_eq(w->ks_licenses, 2);
    ck_assert_uint_eq(w->ks_renewals, 0);
    sm_pl_offline_entry *kept = NULL;
    ck_assert_int_eq(sm_pl_streaming_find(w->offline_dir, st, &kept, NULL), SM_OK);
    sm_pl_offline_entry_free(kept);
    /* Another device key: its license cannot be opened with the new key. */
    sm_jwk *other = NULL;
    ck_assert_int_eq(sm_jwk_generate(&other, NULL), SM_OK);
    ck_assert_int_eq(sm_jwk_save_file_overwrite(other, w->device_key_path, 1, NULL), SM_OK);
    sm_jwk_free(w->device_key);
    w->device_key = other;
    ck_assert_int_eq(sm_jwk_thumbprint(other, w->jkt, NULL), SM_OK);
    play_once(w, &o);
    ck_assert_uint_eq(w->ks_licenses, 3);
    ck_assert_uint_eq(w->ks_renewals, 0);
    /* A renewal for another transaction than the kept license's: not
     * trusted; forgotten, and a license asked for. */
    w->ks_renewal_txn = "txn-9999";
    play_once(w, &o);
    ck_assert_uint_eq(w->ks_licenses, 4);
    ck_assert_uint_eq(w->ks_renewals, 1);
    sm_steer_free(st);
    plf_free(w);
}
END_TEST

/* A play that outlives its delivery token renews it when a media store
 * answers 401 token-expired, and goes on. */
START_TEST(an_expired_token_is_renewed_during_the_play)
{
    plf_world *w = plf_new(40 * CHUNK, "audio/ogg", 2);
    sm_pl_options o = plf_options(w);
    o.window = 2 * SM_PL_CHUNK_WIRE;
    w->mirrors[0].token_expires_after = 3;
    sm_pl_session *s = NULL;
    sm_error err = {SM_OK, ""};
    ck_assert_msg(plf_open(w, &o, &s, NULL, &err) == SM_OK, "%s", err.message);
    read_all(s, w, 5000);
    ck_assert_uint_eq(w->ks_licenses, 1);
    ck_assert_uint_eq(w->ks_renewals, 1);
    /* Still the first mirror: an expired token is not a broken mirror. */
    ck_assert_uint_eq(w->mirrors[1].requests, 0);
    sm_pl_session_free(s);

    /* Renewal refused during the play: the read fails with the reason.
     * (Without the kept license, so that the play starts with a license
     * and its first token.) */
    sm_steer *steer = plf_steer_parsed(w);
    sm_pl_streaming_forget(w->offline_dir, steer);
    sm_steer_free(steer);
    w->mirrors[0].requests = 0;
    ck_assert_int_eq(plf_open(w, &o, &s, NULL, &err), SM_OK);
    w->ks_status = 403;
    w->ks_slug = "transaction-revoked";
    uint8_t buf[CHUNK];
    size_t got = 0;
    sm_status st = SM_OK;
    for (uint64_t off = 0; st == SM_OK && off < w->plain_len; off += got) {
        st = sm_pl_session_read(s, off, buf, sizeof(buf), &got, &err);
        if (st == SM_OK)
            ck_assert_uint_gt(got, 0);
    }
    ck_assert_int_eq(st, SM_ERR_KEY);
    /* The refusal's own words, not "damaged media". */
    ck_assert_msg(strncmp(err.message, "License refused: this purchase was revoked", 42) == 0,
                  "%s", err.message);
    sm_pl_session_free(s);

    /* A renewal for another purchase during the play is refused too. */
    w->ks_status = 200;
    w->ks_renewal_txn = "txn-9999";
    steer = plf_steer_parsed(w);
    sm_pl_streaming_forget(w->offline_dir, steer);
    sm_steer_free(steer);
    w->mirrors[0].requests = 0;
    ck_assert_int_eq(plf_open(w, &o, &s, NULL, &err), SM_OK);
    st = SM_OK;
    for (uint64_t off = 0; st == SM_OK && off < w->plain_len; off += got)
        st = sm_pl_session_read(s, off, buf, sizeof(buf), &got, &err);
    ck_assert_int_eq(st, SM_ERR_FORMAT);
    ck_assert_msg(strstr(err.message, "invalid delivery-token renewal: it is for another "
                                      "purchase") != NULL,
                  "%s", err.message);
    sm_pl_session_free(s);
    plf_free(w);
}
END_TEST

/* secmedia fetch after an online play renews too: the offline entry gets
 * the kept key, no activation is spent. */
START_TEST(fetch_after_an_online_play_spends_no_activation)
{
    plf_world *w = plf_new(5 * CHUNK + 9, "audio/ogg", 1);
    sm_pl_options o = plf_options(w);
    play_once(w, &o);
    sm_steer *steer = plf_steer_parsed(w);
    char dir[1024];
    sm_error err = {SM_OK, ""};
    ck_assert_msg(sm_pl_fetch_offline(&o, steer, 0, dir, sizeof(dir), NULL, &err) == SM_OK, "%s",
                  err.message);
    ck_assert_uint_eq(w->ks_licenses, 1);
    ck_assert_uint_eq(w->ks_renewals, 1);
    sm_steer_free(steer);
    /* The offline entry plays without the network. */
    w->ks_down = 1;
    w->mirrors[0].mode = PLF_MIRROR_DOWN;
    sm_pl_session *s = NULL;
    ck_assert_msg(plf_open(w, &o, &s, NULL, &err) == SM_OK, "%s", err.message);
    ck_assert_int_eq(sm_pl_session_is_offline(s), 1);
    read_all(s, w, 9000);
    sm_pl_session_free(s);
    plf_free(w);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("pl_session");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, plays_the_whole_media);
    tcase_add_test(tc, seeks_anywhere);
    tcase_add_test(tc, tampered_chunk_stops_with_an_error);
    tcase_add_test(tc, truncated_media_refused);
    tcase_add_test(tc, device_key_problems_explained);
    tcase_add_test(tc, license_failures_explained);
    tcase_add_test(tc, later_online_plays_renew_the_token);
    tcase_add_test(tc, a_damaged_or_foreign_kept_license_is_forgotten);
    tcase_add_test(tc, an_expired_token_is_renewed_during_the_play);
    tcase_add_test(tc, fetch_after_an_online_play_spends_no_activation);
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
