/* Fuzz target for the key server's parsers. The first byte picks one:
 *   0  KEK document (sm_ks_kek_parse): accepted documents re-serialize to a
 *      document that parses to the same versions and unwraps what the first
 *      one wrapped;
 *   1  contract JSON (sm_ks_contract_from_json): accepted contracts write
 *      back to JSON that parses to the same JSON, and every apportionment
 *      adds up to the amount;
 *   2  ledger export lines (the verifier): never crashes, a failure always
 *      has a message, and success needs an end line;
 *   3  license terms JSON: accepted terms round-trip;
 *   4  stored ledger data (sm_ks_ledger_data_from_text): accepted data
 *      hashes, and its stored text parses back to the same object.
 * The rest of the input is the document. */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sm_jose.h"
#include "sm_json.h"
#include "sm_ks_contract.h"
#include "sm_ks_keys.h"
#include "sm_ks_kek.h"
#include "sm_ks_ledger.h"
#include "sm_ks_terms.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* LeakSanitizer's switches, when linked in. */
void __lsan_disable(void) __attribute__((weak));
void __lsan_enable(void) __attribute__((weak));

static void require(int cond, const char *what)
{
    if (!cond) {
        fprintf(stderr, "fuzz_keyserver: invariant violated: %s\n", what);
        abort();
    }
}

static void fuzz_kek(const uint8_t *doc, size_t len)
{
    sm_ks_kek *kek = NULL, *again = NULL;
    sm_secret *text = NULL, *key = NULL, *back = NULL;
    sm_error err = {0};
    uint8_t wrapped[SM_KS_WRAPPED_KEY_LEN];
    uint32_t version = 0;
    if (sm_ks_kek_parse(doc, len, "fuzz", &kek, &err) != SM_OK) {
        require(kek == NULL && err.message[0] != '\0', "failure without message");
        return;
    }
    require(sm_ks_kek_serialize(kek, &text, &err) == SM_OK, "serialize");
    require(sm_ks_kek_parse(text->bytes, text->len, "again", &again, &err) == SM_OK, "reparse");
    require(sm_ks_kek_current_version(again) == sm_ks_kek_current_version(kek), "current");
    require(sm_ks_kek_version_count(again) == sm_ks_kek_version_count(kek), "count");
    key = sm_secret_new(32);
    require(key != NULL, "alloc");
    memset(key->bytes, 0x5a, 32);
    require(sm_ks_kek_wrap(kek, "w", 1, key, wrapped, &version, &err) == SM_OK, "wrap");
    require(sm_ks_kek_unwrap(again, "w", 1, version, wrapped, sizeof(wrapped), &back, &err) ==
                SM_OK,
            "unwrap with the re-parsed KEK");
    require(memcmp(back->bytes, key->bytes, 32) == 0, "round trip");
    sm_secret_free(back);
    sm_secret_free(key);
    sm_secret_free(text);
    sm_ks_kek_free(again);
    sm_ks_kek_free(kek);
}

static void fuzz_contract(const uint8_t *doc, size_t len)
{
    json_t *obj = NULL, *out = NULL, *obj2 = NULL;
    sm_ks_contract *c = NULL, *c2 = NULL;
    sm_error err = {0};
    if (sm_json_parse_object(doc, len, 65536, "fuzz", &obj, &err) != SM_OK)
        return;
    if (sm_ks_contract_from_json(obj, &c, &err) != SM_OK) {
        require(c == NULL && err.message[0] != '\0', "failure without message");
        json_decref(obj);
        return;
    }
    out = sm_ks_contract_to_json(c, 1);
    require(out != NULL, "to_json");
    require(sm_ks_contract_from_json(out, &c2, &err) == SM_OK, "written contract parses");
    obj2 = sm_ks_contract_to_json(c2, 1);
    require(json_equal(out, obj2), "contract JSON is stable");
    int64_t parts[SM_KS_MAX_HOLDERS];
    for (int64_t amount = 0; amount < 3 * SM_KS_BPS_TOTAL; amount += 997) {
        int64_t total = 0;
        require(sm_ks_contract_apportion(c, amount, parts, &err) == SM_OK, "apportion");
        for (size_t i = 0; i < c->n_royalties; i++)
            total += parts[i];
        require(total == amount, "parts add up");
    }
    json_decref(obj2);
    json_decref(out);
    json_decref(obj);
    free(c2);
    free(c);
}

static void fuzz_ledger(const uint8_t *doc, size_t len)
{
    sm_ks_ledger_verifier *v = NULL;
    sm_ks_ledger_report report;
    sm_error err = {0};
    require(sm_ks_ledger_verifier_new(NULL, NULL, &v, &err) == SM_OK, "verifier");
    size_t start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i == len || doc[i] == '\n') {
            if (i > start || i < len)
                sm_ks_ledger_verifier_feed(v, (const char *)doc + start, i - start, &err);
            start = i + 1;
        }
    }
    sm_status st = sm_ks_ledger_verifier_finish(v, &report, &err);
    require(st == SM_OK || err.message[0] != '\0', "failure without message");
    if (st == SM_OK)
        require(report.last_seq == report.entries, "entries and last seq agree");
    sm_ks_ledger_verifier_free(v);
}

static void fuzz_terms(const uint8_t *doc, size_t len)
{
    json_t *obj = NULL;
    sm_ks_terms t, t2;
    sm_error err = {0};
    if (sm_json_parse_object(doc, len, 4096, "fuzz", &obj, &err) != SM_OK)
        return;
    if (sm_ks_terms_from_json(obj, "terms", &t, &err) == SM_OK) {
        json_t *back = sm_ks_terms_to_json(&t);
        require(back != NULL && json_equal(back, obj), "terms round trip");
        require(sm_ks_terms_from_json(back, "terms", &t2, &err) == SM_OK &&
                    sm_ks_terms_equal(&t, &t2),
                "terms re-parse");
        json_decref(back);
    }
    json_decref(obj);
}

static void fuzz_ledger_data(const uint8_t *doc, size_t len)
{
    json_t *data = NULL, *back = NULL;
    sm_error err = {0};
    uint8_t prev[SM_KS_LEDGER_HASH_LEN] = {0}, hash[SM_KS_LEDGER_HASH_LEN];
    if (sm_ks_ledger_data_from_text((const char *)doc, len, &data, &err) != SM_OK)
        return;
    sm_ks_ledger_entry e = {1, 0, "fuzz", data};
    require(sm_ks_ledger_hash(prev, &e, hash, &err) == SM_OK, "accepted data hashes");
    char *text = sm_ks_ledger_data_to_text(data);
    require(text != NULL, "to text");
    require(sm_ks_ledger_data_from_text(text, strlen(text), &back, &err) == SM_OK &&
                json_equal(back, data),
            "stored text round trip");
    free(text);
    json_decref(back);
    json_decref(data);
}

/* OpenSSL sets up EC groups, providers and per-thread state on first use
 * and keeps them for the process; done here, with leak tracking off, so
 * libFuzzer's per-input leak check does not report them. */
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    if (__lsan_disable != NULL)
        __lsan_disable();
    sm_error err = {0};
    sm_ks_keys *keys = NULL;
    sm_jwk *k = NULL;
    sm_ks_checkpoint cp;
    uint8_t head[SM_KS_LEDGER_HASH_LEN] = {0};
    char *token = NULL;
    sm_ks_kek *kek = NULL;
    if (sm_ks_keys_new(&keys, &err) == SM_OK && sm_jwk_generate(&k, &err) == SM_OK &&
        sm_ks_keys_add_signing(keys, k, "warm", 1, &err) == SM_OK &&
        sm_ks_checkpoint_issue(keys, "https://warm.example", 1, head, 0, &token, &err) == SM_OK)
        sm_ks_checkpoint_verify(sm_ks_keys_jwks(keys), "https://warm.example", token,
                                strlen(token), &cp, &err);
    free(token);
    sm_ks_keys_free(keys);
    if (sm_ks_kek_generate(&kek, &err) == SM_OK) {
        sm_secret *key = sm_secret_new(32), *back = NULL;
        uint8_t wrapped[SM_KS_WRAPPED_KEY_LEN];
        uint32_t v = 0;
        if (key != NULL && sm_ks_kek_wrap(kek, "w", 1, key, wrapped, &v, &err) == SM_OK)
            sm_ks_kek_unwrap(kek, "w", 1, v, wrapped, sizeof(wrapped), &back, &err);
        sm_secret_free(back);
        sm_secret_free(key);
        sm_ks_kek_free(kek);
    }
    if (__lsan_enable != NULL)
        __lsan_enable();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    const uint8_t *doc = data + 1;
    size_t len = size - 1;
    switch (data[0] % 5) {
    case 0: fuzz_kek(doc, len); break;
    case 1: fuzz_contract(doc, len); break;
    case 2: fuzz_ledger(doc, len); break;
    case 3: fuzz_terms(doc, len); break;
    default: fuzz_ledger_data(doc, len); break;
    }
    return 0;
}
