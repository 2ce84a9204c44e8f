#include "config.h"

/* Unit tests for the ledger (common/sm_ks_ledger.h): canonical encoding,
 * hash chain, checkpoints, export lines, and the verifier against every
 * kind of tampering, each time naming the first bad entry. */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "sm_ks_keys.h"
#include "sm_ks_ledger.h"

#define ISS "https://ks.example"
#define N_ENTRIES 12
/* Checkpoints after these entries. */
static const uint64_t checkpoint_at[] = {4, 8, 12};

static sm_ks_keys *keys;

/* An export held as lines, editable by the tests. */
typedef struct export_lines {
    char *line[64];
    size_t n;
} export_lines;

static void add_line(export_lines *x, char *line)
{
    ck_assert_ptr_nonnull(line);
    ck_assert_uint_lt(x->n, 64);
    x->line[x->n++] = line;
}

static void free_lines(export_lines *x)
{
    for (size_t i = 0; i < x->n; i++)
        free(x->line[i]);
    x->n = 0;
}

static json_t *entry_data(uint64_t seq)
{
    return json_pack("{s:s,s:s,s:I,s:s}", "txn", "txn-1", "work_id", "w1", "amount",
                     (json_int_t)(100 * seq), "note", "caf\xc3\xa9 \"quoted\"");
}

static void setup(void)
{
    sm_error err = {0};
    sm_jwk *k = NULL;
    ck_assert_int_eq(sm_ks_keys_new(&keys, &err), SM_OK);
    ck_assert_int_eq(sm_jwk_generate(&k, &err), SM_OK);
    ck_assert_int_eq(sm_ks_keys_add_signing(keys, k, "ks-1", 1, &err), SM_OK);
}

static void teardown(void)
{
    sm_ks_keys_free(keys);
    keys = NULL;
}

/* Builds a valid export of N_ENTRIES entries with checkpoints. */
static void build_export(export_lines *x, uint8_t head_out[32])
{
    sm_error err = {0};
    uint8_t head[32] = {0};
    char *jwks = sm_ks_keys_jwks_json(keys, &err);
    add_line(x, sm_ks_ledger_export_header(ISS, jwks, 1700000000, &err));
    free(jwks);
    size_t next_cp = 0;
    for (uint64_t seq = 1; seq <= N_ENTRIES; seq++) {
        json_t *data = entry_data(seq);
        /* Entry 9 stands for a queued row the key server could not read. */
        sm_ks_ledger_entry e = {seq, 1700000000 + (int64_t)seq,
                                seq == 9       ? SM_KS_LEDGER_UNREADABLE_TYPE
                                : seq % 2 == 1 ? "payment"
                                               : "license",
                                data};
        ck_assert_int_eq(sm_ks_ledger_hash(head, &e, head, &err), SM_OK);
        add_line(x, sm_ks_ledger_export_entry(&e, head, &err));
        json_decref(data);
        if (next_cp < sizeof(checkpoint_at) / sizeof(checkpoint_at[0]) &&
            checkpoint_at[next_cp] == seq) {
            char *cp = NULL;
            ck_assert_int_eq(sm_ks_checkpoint_issue(keys, ISS, seq, head, 0, &cp, &err), SM_OK);
            add_line(x, sm_ks_ledger_export_checkpoint(cp, &err));
            free(cp);
            next_cp++;
        }
    }
    add_line(x, sm_ks_ledger_export_end(N_ENTRIES, head, &err));
    if (head_out != NULL)
        memcpy(head_out, head, 32);
}

/* Index of the line holding entry seq. */
static size_t line_of(const export_lines *x, uint64_t seq)
{
    char needle[48];
    snprintf(needle, sizeof(needle), "\"seq\":%llu,", (unsigned long long)seq);
    for (size_t i = 0; i < x->n; i++)
        if (strstr(x->line[i], "\"kind\":\"entry\"") && strstr(x->line[i], needle))
            return i;
    ck_abort_msg("no line for seq %llu", (unsigned long long)seq);
    return 0;
}

static void remove_line(export_lines *x, size_t i)
{
    free(x->line[i]);
    memmove(&x->line[i], &x->line[i + 1], (x->n - i - 1) * sizeof(x->line[0]));
    x->n--;
}

static sm_status run_verifier(const export_lines *x, const sm_jwks *trusted,
                              const char *external_cp, sm_ks_ledger_report *r, sm_error *err)
{
    sm_ks_ledger_verifier *v = NULL;
    ck_assert_int_eq(sm_ks_ledger_verifier_new(trusted, trusted ? ISS : NULL, &v, err), SM_OK);
    if (external_cp != NULL)
        ck_assert_int_eq(
            sm_ks_ledger_verifier_add_checkpoint(v, external_cp, strlen(external_cp), err),
            SM_OK);
    for (size_t i = 0; i < x->n; i++)
        if (sm_ks_ledger_verifier_feed(v, x->line[i], strlen(x->line[i]), err) != SM_OK)
            break;
    sm_status st = sm_ks_ledger_verifier_finish(v, r, err);
    sm_ks_ledger_verifier_free(v);
    return st;
}

START_TEST(test_canonical_encoding)
{
    /* Member order in the object does not matter; the encoding is fixed. */
    sm_error err = {0};
    uint8_t prev[32] = {0}, h1[32], h2[32];
    json_t *a = json_pack("{s:s,s:I}", "b", "x", "a", (json_int_t)-5);
    json_t *b = json_pack("{s:I,s:s}", "a", (json_int_t)-5, "b", "x");
    sm_ks_ledger_entry ea = {1, 10, "payment", a}, eb = {1, 10, "payment", b};
    ck_assert_int_eq(sm_ks_ledger_hash(prev, &ea, h1, &err), SM_OK);
    ck_assert_int_eq(sm_ks_ledger_hash(prev, &eb, h2, &err), SM_OK);
    ck_assert_mem_eq(h1, h2, 32);

    uint8_t *enc = NULL;
    size_t len = 0;
    ck_assert_int_eq(sm_ks_ledger_canonical(prev, &ea, &enc, &len, &err), SM_OK);
    static const uint8_t expected[] = {
        's', 'e', 'c', 'm', 'e', 'd', 'i', 'a', '-', 'l', 'e', 'd', 'g', 'e', 'r', '/', '1', 0,
        /* prev: 32 zero bytes */
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 1,          /* seq */
        0, 0, 0, 0, 0, 0, 0, 10,         /* time */
        7, 'p', 'a', 'y', 'm', 'e', 'n', 't', /* type */
        2,                               /* members */
        1, 'a', 'i', 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfb,
        1, 'b', 's', 0, 0, 0, 1, 'x'};
    ck_assert_uint_eq(len, sizeof(expected));
    ck_assert_mem_eq(enc, expected, sizeof(expected));
    free(enc);

    /* Every field changes the hash, and so does prev. */
    ea.seq = 2;
    ck_assert_int_eq(sm_ks_ledger_hash(prev, &ea, h2, &err), SM_OK);
    ck_assert(memcmp(h1, h2, 32) != 0);
    ea.seq = 1;
    prev[31] = 1;
    ck_assert_int_eq(sm_ks_ledger_hash(prev, &ea, h2, &err), SM_OK);
    ck_assert(memcmp(h1, h2, 32) != 0);

    /* Limits. */
    json_t *bad = json_pack("{s:f}", "x", 1.5);
    sm_ks_ledger_entry eb2 = {1, 0, "payment", bad};
    ck_assert_int_eq(sm_ks_ledger_check_entry(&eb2, &err), SM_ERR_FORMAT);
    json_decref(bad);
    bad = json_pack("{s:s}", "Bad-Name", "x");
    eb2.data = bad;
    ck_assert_int_eq(sm_ks_ledger_check_entry(&eb2, &err), SM_ERR_FORMAT);
    json_decref(bad);
    bad = json_pack("{s:{}}", "nested");
    eb2.data = bad;
    ck_assert_int_eq(sm_ks_ledger_check_entry(&eb2, &err), SM_ERR_FORMAT);
    json_decref(bad);
    eb2.data = a;
    eb2.type = "Payment";
    ck_assert_int_eq(sm_ks_ledger_check_entry(&eb2, &err), SM_ERR_FORMAT);
    eb2.type = "payment";
    eb2.seq = 0;
    ck_assert_int_eq(sm_ks_ledger_check_entry(&eb2, &err), SM_ERR_FORMAT);

    /* Stored text round trip. */
    char *text = sm_ks_ledger_data_to_text(a);
    json_t *back = NULL;
    ck_assert_int_eq(sm_ks_ledger_data_from_text(text, strlen(text), &back, &err), SM_OK);
    ck_assert(json_equal(a, back));
    ck_assert_str_eq(text, "{\"a\":-5,\"b\":\"x\"}");
    free(text);
    json_decref(back);
    ck_assert_int_eq(sm_ks_ledger_data_from_text("{\"a\":[1]}", 9, &back, &err), SM_ERR_FORMAT);
    json_decref(a);
    json_decref(b);
}
END_TEST

START_TEST(test_hash_b64)
{
    uint8_t h[32], back[32];
    sm_error err = {0};
    for (int i = 0; i < 32; i++)
        h[i] = (uint8_t)(i * 37 + 1);
    char b64[SM_KS_LEDGER_HASH_B64_SIZE];
    sm_ks_ledger_hash_to_b64(h, b64);
    ck_assert_uint_eq(strlen(b64), 43);
    ck_assert_int_eq(sm_ks_ledger_hash_from_b64(b64, back, &err), SM_OK);
    ck_assert_mem_eq(h, back, 32);
    b64[42] = b64[42] == 'A' ? 'B' : 'A'; /* non-zero unused bits or another value */
    sm_status st = sm_ks_ledger_hash_from_b64(b64, back, &err);
    ck_assert(st != SM_OK || memcmp(h, back, 32) != 0);
    ck_assert_int_eq(sm_ks_ledger_hash_from_b64("short", back, &err), SM_ERR_FORMAT);
    /* Outside the alphabet, padding, a standard-base64 character. */
    ck_assert_int_eq(sm_ks_ledger_hash_from_b64("!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!", back,
                                                &err),
                     SM_ERR_FORMAT);
    ck_assert_int_eq(sm_ks_ledger_hash_from_b64("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", back,
                                                &err),
                     SM_ERR_FORMAT);
    ck_assert_int_eq(sm_ks_ledger_hash_from_b64("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA+", back,
                                                &err),
                     SM_ERR_FORMAT);
}
END_TEST

START_TEST(test_checkpoint)
{
    sm_error err = {0};
    uint8_t head[32];
    memset(head, 0x42, sizeof(head));
    char *cp = NULL;
    ck_assert_int_eq(sm_ks_checkpoint_issue(keys, ISS, 77, head, 1700000000, &cp, &err), SM_OK);
    sm_ks_checkpoint got;
    ck_assert_int_eq(
        sm_ks_checkpoint_verify(sm_ks_keys_jwks(keys), ISS, cp, strlen(cp), &got, &err), SM_OK);
    ck_assert_uint_eq(got.seq, 77);
    ck_assert_mem_eq(got.head, head, 32);
    ck_assert_str_eq(got.kid, "ks-1");
    ck_assert_int_eq(
        sm_ks_checkpoint_verify(sm_ks_keys_jwks(keys), "https://x", cp, strlen(cp), &got, &err),
        SM_ERR_CLAIM);
    free(cp);
    ck_assert_int_eq(sm_ks_checkpoint_issue(keys, ISS, 0, head, 0, &cp, &err), SM_ERR_ARG);
}
END_TEST

START_TEST(test_verify_good)
{
    export_lines x = {0};
    sm_error err = {0};
    sm_ks_ledger_report r;
    uint8_t head[32];
    build_export(&x, head);
    ck_assert_msg(run_verifier(&x, NULL, NULL, &r, &err) == SM_OK, "%s", err.message);
    ck_assert_uint_eq(r.entries, N_ENTRIES);
    ck_assert_uint_eq(r.last_seq, N_ENTRIES);
    ck_assert_uint_eq(r.checkpoints, 3);
    ck_assert_uint_eq(r.last_checkpoint_seq, 12);
    ck_assert_int_eq(r.keys_from_export, 1);
    ck_assert_mem_eq(r.head, head, 32);
    ck_assert_uint_eq(r.unreadable, 1);
    ck_assert_uint_eq(r.first_unreadable_seq, 9);
    ck_assert_int_eq(run_verifier(&x, sm_ks_keys_jwks(keys), NULL, &r, &err), SM_OK);
    ck_assert_int_eq(r.keys_from_export, 0);
    free_lines(&x);

    /* An empty ledger exports as header + end. */
    char *jwks = sm_ks_keys_jwks_json(keys, &err);
    uint8_t zero[32] = {0};
    add_line(&x, sm_ks_ledger_export_header(ISS, jwks, 1, &err));
    add_line(&x, sm_ks_ledger_export_end(0, zero, &err));
    free(jwks);
    ck_assert_int_eq(run_verifier(&x, NULL, NULL, &r, &err), SM_OK);
    ck_assert_uint_eq(r.entries, 0);
    free_lines(&x);
}
END_TEST

/* Replaces the first occurrence of `from` in line i by `to`. */
static void edit_line(export_lines *x, size_t i, const char *from, const char *to)
{
    char *p = strstr(x->line[i], from);
    ck_assert_ptr_nonnull(p);
    size_t n = strlen(x->line[i]) - strlen(from) + strlen(to) + 1;
    char *out = malloc(n);
    ck_assert_ptr_nonnull(out);
    snprintf(out, n, "%.*s%s%s", (int)(p - x->line[i]), x->line[i], to, p + strlen(from));
    free(x->line[i]);
    x->line[i] = out;
}

START_TEST(test_detect_changed_entry)
{
    export_lines x = {0};
    sm_error err = {0};
    sm_ks_ledger_report r;
    build_export(&x, NULL);
    edit_line(&x, line_of(&x, 6), "\"amount\":600", "\"amount\":1");
    ck_assert_int_eq(run_verifier(&x, NULL, NULL, &r, &err), SM_ERR_AUTH);
    ck_assert_uint_eq(r.first_bad_seq, 6);
    ck_assert_ptr_nonnull(strstr(err.message, "entry seq 6"));
    ck_assert_uint_eq(r.last_seq, 5);
    free_lines(&x);
}
END_TEST

/* Rewrites entries from seq `from` on with recomputed hashes, as an attacker
 * with database access would, after changing entry `from`'s amount. */
static void rewrite_chain(export_lines *x, uint64_t from)
{
    sm_error err = {0};
    uint8_t head[32] = {0};
    for (uint64_t seq = 1; seq <= N_ENTRIES; seq++) {
        json_t *data = entry_data(seq);
        if (seq == from)
            json_object_set_new(data, "amount", json_integer(1));
        /* Entry 9 stands for a queued row the key server could not read. */
        sm_ks_ledger_entry e = {seq, 1700000000 + (int64_t)seq,
                                seq == 9       ? SM_KS_LEDGER_UNREADABLE_TYPE
                                : seq % 2 == 1 ? "payment"
                                               : "license",
                                data};
        ck_assert_int_eq(sm_ks_ledger_hash(head, &e, head, &err), SM_OK);
        if (seq >= from) {
            size_t i = line_of(x, seq);
            free(x->line[i]);
            x->line[i] = sm_ks_ledger_export_entry(&e, head, &err);
        }
        json_decref(data);
    }
    free(x->line[x->n - 1]);
    x->line[x->n - 1] = sm_ks_ledger_export_end(N_ENTRIES, head, &err);
}

START_TEST(test_detect_rewritten_chain)
{
    export_lines x = {0};
    sm_error err = {0};
    sm_ks_ledger_report r;
    build_export(&x, NULL);
    rewrite_chain(&x, 6);
    /* Hashes are consistent again, but the checkpoint at 8 disagrees. */
    ck_assert_int_eq(run_verifier(&x, NULL, NULL, &r, &err), SM_ERR_AUTH);
    ck_assert_uint_eq(r.first_bad_seq, 5); /* first entry after the good checkpoint at 4 */
    ck_assert_ptr_nonnull(strstr(err.message, "checkpoint at seq 8"));
    free_lines(&x);
}
END_TEST

START_TEST(test_detect_deleted_entry)
{
    export_lines x = {0};
    sm_error err = {0};
    sm_ks_ledger_report r;
    build_export(&x, NULL);
    remove_line(&x, line_of(&x, 3));
    ck_assert_int_eq(run_verifier(&x, NULL, NULL, &r, &err), SM_ERR_AUTH);
    ck_assert_uint_eq(r.first_bad_seq, 3);
    ck_assert_ptr_nonnull(strstr(err.message, "entry 3 is missing"));
    free_lines(&x);
}
END_TEST

START_TEST(test_detect_reordered_entries)
{
    export_lines x = {0};
    sm_error err = {0};
    sm_ks_ledger_report r;
    build_export(&x, NULL);
    size_t a = line_of(&x, 2), b = line_of(&x, 3);
    char *tmp = x.line[a];
    x.line[a] = x.line[b];
    x.line[b] = tmp;
    ck_assert_int_eq(run_verifier(&x, NULL, NULL, &r, &err), SM_ERR_AUTH);
    ck_assert_uint_eq(r.first_bad_seq, 2);
    free_lines(&x);

    /* Renumbered after swapping: the hash no longer fits the content. */
    build_export(&x, NULL);
    a = line_of(&x, 2);
    b = line_of(&x, 3);
    edit_line(&x, a, "\"seq\":2,", "\"seq\":3,");
    edit_line(&x, b, "\"seq\":3,", "\"seq\":2,");
    tmp = x.line[a];
    x.line[a] = x.line[b];
    x.line[b] = tmp;
    ck_assert_int_eq(run_verifier(&x, NULL, NULL, &r, &err), SM_ERR_AUTH);
    ck_assert_uint_eq(r.first_bad_seq, 2);
    free_lines(&x);
}
END_TEST

START_TEST(test_detect_tail_cut)
{
    export_lines x = {0};
    sm_error err = {0};
    sm_ks_ledger_report r;

    /* Cut entries 10..12, keep the checkpoint at 12 and a forged end. */
    build_export(&x, NULL);
    size_t cp12 = line_of(&x, 12) + 1;
    char *checkpoint = strdup(x.line[cp12]);
    size_t first_cut = line_of(&x, 10);
    while (x.n > first_cut)
        remove_line(&x, x.n - 1);
    add_line(&x, checkpoint);
    ck_assert_int_eq(run_verifier(&x, NULL, NULL, &r, &err), SM_ERR_AUTH);
    ck_assert_uint_eq(r.first_bad_seq, 10);
    ck_assert_ptr_nonnull(strstr(err.message, "were cut"));
    free_lines(&x);

    /* Cut the checkpoint too: only a checkpoint kept elsewhere shows it. */
    build_export(&x, NULL);
    json_error_t jerr;
    json_t *cpl = json_loads(x.line[line_of(&x, 12) + 1], 0, &jerr);
    char *external = strdup(json_string_value(json_object_get(cpl, "token")));
    json_decref(cpl);
    size_t cut = line_of(&x, 9) + 1;
    uint8_t head9[32];
    {
        json_t *e9 = json_loads(x.line[line_of(&x, 9)], 0, &jerr);
        ck_assert_int_eq(
            sm_ks_ledger_hash_from_b64(json_string_value(json_object_get(e9, "hash")), head9, &err),
            SM_OK);
        json_decref(e9);
    }
    while (x.n > cut)
        remove_line(&x, x.n - 1);
    add_line(&x, sm_ks_ledger_export_end(9, head9, &err));
    ck_assert_int_eq(run_verifier(&x, NULL, NULL, &r, &err), SM_OK); /* undetectable alone */
    ck_assert_int_eq(run_verifier(&x, sm_ks_keys_jwks(keys), external, &r, &err), SM_ERR_AUTH);
    ck_assert_uint_eq(r.first_bad_seq, 10);
    ck_assert_ptr_nonnull(strstr(err.message, "separately given"));
    free(external);
    free_lines(&x);

    /* Export truncated in transfer: no end line. */
    build_export(&x, NULL);
    remove_line(&x, x.n - 1);
    ck_assert_int_eq(run_verifier(&x, NULL, NULL, &r, &err), SM_ERR_TRUNCATED);
    free_lines(&x);
}
END_TEST

START_TEST(test_foreign_checkpoint_and_format)
{
    export_lines x = {0};
    sm_error err = {0};
    sm_ks_ledger_report r;
    /* Trusted keys that did not sign the export's checkpoints. */
    sm_ks_keys *other = NULL;
    sm_jwk *k = NULL;
    ck_assert_int_eq(sm_ks_keys_new(&other, &err), SM_OK);
    ck_assert_int_eq(sm_jwk_generate(&k, &err), SM_OK);
    ck_assert_int_eq(sm_ks_keys_add_signing(other, k, "ks-1", 1, &err), SM_OK);
    build_export(&x, NULL);
    ck_assert_int_eq(run_verifier(&x, sm_ks_keys_jwks(other), NULL, &r, &err), SM_ERR_AUTH);
    ck_assert_ptr_nonnull(strstr(err.message, "checkpoint does not verify"));
    sm_ks_keys_free(other);

    /* Garbage, unknown kinds, data after the end, duplicate members. */
    static const char *const bad_lines[] = {
        "not json",
        "{\"kind\":\"mystery\"}",
        "{\"kind\":\"entry\",\"kind\":\"entry\"}",
        "{\"kind\":\"end\",\"last_seq\":12}",
    };
    for (size_t i = 0; i < sizeof(bad_lines) / sizeof(bad_lines[0]); i++) {
        char *saved = x.line[5];
        x.line[5] = (char *)bad_lines[i];
        ck_assert_int_ne(run_verifier(&x, NULL, NULL, &r, &err), SM_OK);
        ck_assert_uint_eq(r.bad_line, 6);
        x.line[5] = saved;
    }
    add_line(&x, strdup("{\"kind\":\"entry\"}"));
    ck_assert_int_eq(run_verifier(&x, NULL, NULL, &r, &err), SM_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(err.message, "after the end"));
    free_lines(&x);

    /* No header. */
    build_export(&x, NULL);
    remove_line(&x, 0);
    ck_assert_int_eq(run_verifier(&x, NULL, NULL, &r, &err), SM_ERR_FORMAT);
    free_lines(&x);
}
END_TEST

static Suite *ledger_suite(void)
{
    Suite *s = suite_create("ks_ledger");
    TCase *tc = tcase_create("ledger");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_canonical_encoding);
    tcase_add_test(tc, test_hash_b64);
    tcase_add_test(tc, test_checkpoint);
    tcase_add_test(tc, test_verify_good);
    tcase_add_test(tc, test_detect_changed_entry);
    tcase_add_test(tc, test_detect_rewritten_chain);
    tcase_add_test(tc, test_detect_deleted_entry);
    tcase_add_test(tc, test_detect_reordered_entries);
    tcase_add_test(tc, test_detect_tail_cut);
    tcase_add_test(tc, test_foreign_checkpoint_and_format);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(ledger_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
