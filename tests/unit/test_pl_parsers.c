/* The player core's parsers under mutated input (a deterministic fuzz
 * pass in the normal test run): license answers, problem answers,
 * Content-Range values and offline license.json files. Every mutation must
 * give a clean answer or a clean error, never a crash, leak or read past
 * the input (run it under ASan: make check-asan). */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "pl_fixture.h"
#include "sm_pl_fetch.h"
#include "sm_pl_license.h"
#include "sm_pl_offline.h"
#include "sm_test.h"

static const char *seeds[] = {
    "{\"txn\":\"txn-1\",\"work_id\":\"work-42\",\"key_version\":3,"
    "\"key_jwe\":\"eyJhbGciOiJFQ0RILUVTIn0..aXY.Y2lwaGVy.dGFn\",\"delivery_token\":\"a.b.c\","
    "\"delivery_expires_at\":1700003600,\"license\":{\"type\":\"rental\",\"duration\":172800},"
    "\"rental_ends_at\":1700172800,\"activation\":2,\"activation_limit\":5}",
    "{\"type\":\"https://secmedia.example/problems/not-paid\",\"title\":\"Not paid\","
    "\"status\":402,\"detail\":\"pay \\u00e9 first\"}",
};

static uint32_t rng_state = 12345;
static uint32_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 17;
    rng_state ^= rng_state << 5;
    return rng_state;
}

/* A mutated copy of seed: flips, inserts, deletions, truncation. */
static uint8_t *mutate(const char *seed, size_t *len)
{
    size_t n = strlen(seed);
    uint8_t *b = malloc(n + 64);
    memcpy(b, seed, n);
    int edits = 1 + (int)(rng() % 4);
    for (int e = 0; e < edits && n > 0; e++) {
        size_t at = rng() % n;
        switch (rng() % 4) {
        case 0: b[at] ^= (uint8_t)(1u << (rng() % 8)); break;
        case 1: {
            static const char alphabet[] = "{}[]\":,0\\u\x80\xff\x00 9-e.";
            b[at] = (uint8_t)alphabet[rng() % (sizeof(alphabet) - 1)];
            break;
        }
        case 2: memmove(b + at, b + at + 1, n - at - 1); n--; break;
        default: n = at; break;
        }
    }
    uint8_t *exact = malloc(n > 0 ? n : 1); /* exactly sized: ASan sees overreads */
    memcpy(exact, b, n);
    free(b);
    *len = n;
    return exact;
}

START_TEST(answers_survive_mutation)
{
    for (int i = 0; i < 20000; i++) {
        const char *seed = seeds[i % 2];
        size_t len = 0;
        uint8_t *in = mutate(seed, &len);
        sm_pl_license *lic = NULL;
        sm_pl_refusal r;
        sm_error err = {SM_OK, ""};
        long status = i % 2 == 0 ? 200 : 402;
        const char *ct = i % 2 == 0 ? "application/json" : "application/problem+json";
        sm_status st = sm_pl_license_parse_answer(status, ct, in, len, NULL, &lic, &r, &err);
        if (st == SM_OK) {
            ck_assert_ptr_nonnull(lic);
            ck_assert_ptr_nonnull(lic->key_jwe);
            sm_pl_license_free(lic);
        } else {
            ck_assert_ptr_null(lic);
            ck_assert(err.message[0] != '\0');
            for (const char *p = err.message; *p; p++)
                ck_assert((unsigned char)*p >= 0x20);
        }
        free(in);
    }
}
END_TEST

START_TEST(content_range_survives_mutation)
{
    for (int i = 0; i < 20000; i++) {
        size_t len = 0;
        uint8_t *in = mutate("bytes 16400-32799/1234567", &len);
        char *s = malloc(len + 1);
        memcpy(s, in, len);
        s[len] = '\0';
        uint64_t a, b, n;
        if (sm_pl_parse_content_range(s, &a, &b, &n) == 0)
            ck_assert(a <= b && b < n);
        free(s);
        free(in);
    }
}
END_TEST

START_TEST(offline_license_survives_mutation)
{
    plf_world *w = plf_new(1000, "audio/ogg", 1);
    sm_pl_options o = plf_options(w);
    sm_steer *steer = plf_steer_parsed(w);
    char entry[4096];
    ck_assert_int_eq(sm_pl_fetch_offline(&o, steer, 0, entry, sizeof(entry), NULL, NULL), SM_OK);
    char path[4200];
    snprintf(path, sizeof(path), "%s/license.json", entry);
    size_t len = 0;
    uint8_t *orig = smt_read_file(path, &len);
    char *seed = calloc(1, len + 1);
    memcpy(seed, orig, len);
    for (int i = 0; i < 2000; i++) {
        size_t n = 0;
        uint8_t *in = mutate(seed, &n);
        smt_write_file(path, in, n);
        sm_pl_offline_entry *e = NULL;
        sm_error err = {SM_OK, ""};
        sm_status st = sm_pl_offline_find(w->offline_dir, steer, 0, &e, &err);
        ck_assert(st == SM_OK ? e != NULL : e == NULL);
        sm_pl_offline_entry_free(e);
        free(in);
    }
    free(seed);
    free(orig);
    sm_steer_free(steer);
    plf_free(w);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("pl_parsers");
    TCase *tc = tcase_create("mutation");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, answers_survive_mutation);
    tcase_add_test(tc, content_range_survives_mutation);
    tcase_add_test(tc, offline_license_survives_mutation);
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
