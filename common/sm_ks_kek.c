#include "config.h"

/* KEK file parsing and media-key wrapping (see sm_ks_kek.h and
 * docs/FORMATS.md "KEK file"). */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#include "sm_b64.h"
#include "sm_crypto.h"
#include "sm_json.h"
#include "sm_file.h"
#include "sm_ks_kek.h"
#include "sm_validate.h"

#define KEK_FORMAT "secmedia-kek/1"
#define WRAP_NONCE_LEN 12u
#define WRAP_AAD_LABEL "secmedia/kek-wrap/1"
/* 43 base64url characters encode 32 bytes. */
#define KEY_B64_LEN 43u

typedef struct kek_entry {
    uint32_t version;
    sm_secret *key;
} kek_entry;

struct sm_ks_kek {
    uint32_t current;
    size_t n;
    kek_entry v[SM_KS_KEK_MAX_VERSIONS];
};

void sm_ks_kek_free(sm_ks_kek *kek)
{
    if (kek == NULL)
        return;
    for (size_t i = 0; i < kek->n; i++)
        sm_secret_free(kek->v[i].key);
    free(kek);
}

static const sm_secret *find_version(const sm_ks_kek *kek, uint32_t version)
{
    for (size_t i = 0; i < kek->n; i++)
        if (kek->v[i].version == version)
            return kek->v[i].key;
    return NULL;
}

uint32_t sm_ks_kek_current_version(const sm_ks_kek *kek)
{
    return kek->current;
}

int sm_ks_kek_has_version(const sm_ks_kek *kek, uint32_t version)
{
    return find_version(kek, version) != NULL;
}

size_t sm_ks_kek_version_count(const sm_ks_kek *kek)
{
    return kek->n;
}

/* Decodes a key member straight into secure memory. sm_b64url_decode
 * accepts only the canonical encoding (43 characters, no padding, unused
 * bits zero), so every key has one spelling. */
static sm_status decode_key(json_t *k, const char *what, uint32_t version, sm_secret **out,
                            sm_error *err)
{
    size_t got = 0;
    *out = sm_secret_new(SM_KS_KEK_KEY_LEN);
    if (*out == NULL)
        return sm_error_set(err, SM_ERR_NOMEM, "%s: out of memory", what);
    if (json_string_length(k) != KEY_B64_LEN ||
        sm_b64url_decode(json_string_value(k), json_string_length(k), (*out)->bytes,
                         (*out)->len, &got, "key", NULL) != SM_OK ||
        got != SM_KS_KEK_KEY_LEN) {
        int canonical_length = json_string_length(k) == KEY_B64_LEN;
        sm_secret_free(*out);
        *out = NULL;
        return sm_error_set(err, SM_ERR_KEY,
                            canonical_length
                                ? "%s: the key of version %u is not canonical base64url"
                                : "%s: the key of version %u must be 32 bytes in base64url "
                                  "(43 characters, no padding)",
                            what, (unsigned)version);
    }
    return SM_OK;
}

/* jansson keeps its own copies of the key strings: wipe them before release. */
static void wipe_and_release(json_t *doc)
{
    if (doc == NULL)
        return;
    json_t *keys = json_object_get(doc, "keys");
    if (json_is_array(keys)) {
        size_t i;
        json_t *entry;
        json_array_foreach(keys, i, entry) {
            json_t *k = json_is_object(entry) ? json_object_get(entry, "key") : NULL;
            if (json_is_string(k))
                sm_wipe((char *)json_string_value(k), json_string_length(k));
        }
    }
    json_decref(doc);
}

static sm_status parse_version_number(json_t *v, const char *what, const char *name,
                                      uint32_t *out, sm_error *err)
{
    json_int_t n = json_integer_value(v);
    if (n < 1 || n > (json_int_t)UINT32_MAX)
        return sm_error_set(err, SM_ERR_FORMAT, "%s: \"%s\" must be an integer from 1 to %u", what,
                            name, (unsigned)UINT32_MAX);
    *out = (uint32_t)n;
    return SM_OK;
}

sm_status sm_ks_kek_parse(const uint8_t *buf, size_t len, const char *what, sm_ks_kek **out,
                          sm_error *err)
{
    static const sm_json_field top_fields[] = {{"format", SM_JSON_STRING, 1},
                                               {"current", SM_JSON_INTEGER, 1},
                                               {"keys", SM_JSON_ARRAY, 1},
                                               {NULL, SM_JSON_STRING, 0}};
    static const sm_json_field key_fields[] = {{"version", SM_JSON_INTEGER, 1},
                                               {"key", SM_JSON_STRING, 1},
                                               {NULL, SM_JSON_STRING, 0}};
    json_t *doc = NULL;
    sm_ks_kek *kek = NULL;
    sm_status st;
    char entry_what[300];

    *out = NULL;
    if (what == NULL)
        what = "KEK file";
    st = sm_json_parse_object(buf, len, SM_KS_KEK_FILE_MAX, what, &doc, err);
    if (st != SM_OK)
        return st;
    if ((st = sm_json_check_fields(doc, top_fields, what, err)) != SM_OK)
        goto fail;
    if (strcmp(json_string_value(json_object_get(doc, "format")), KEK_FORMAT) != 0) {
        st = sm_error_set(err, SM_ERR_UNSUPPORTED, "%s: \"format\" must be \"%s\"", what,
                          KEK_FORMAT);
        goto fail;
    }
    json_t *keys = json_object_get(doc, "keys");
    size_t n = json_array_size(keys);
    if (n == 0 || n > SM_KS_KEK_MAX_VERSIONS) {
        st = sm_error_set(err, SM_ERR_FORMAT, "%s: \"keys\" must hold 1 to %u keys", what,
                          SM_KS_KEK_MAX_VERSIONS);
        goto fail;
    }
    kek = calloc(1, sizeof(*kek));
    if (kek == NULL) {
        st = sm_error_set(err, SM_ERR_NOMEM, "%s: out of memory", what);
        goto fail;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *entry = json_array_get(keys, i);
        snprintf(entry_what, sizeof(entry_what), "%s: keys[%zu]", what, i);
        if (!json_is_object(entry)) {
            st = sm_error_set(err, SM_ERR_FORMAT, "%s must be an object", entry_what);
            goto fail;
        }
        if ((st = sm_json_check_fields(entry, key_fields, entry_what, err)) != SM_OK)
            goto fail;
        uint32_t version = 0;
        st = parse_version_number(json_object_get(entry, "version"), entry_what, "version",
                                  &version, err);
        if (st != SM_OK)
            goto fail;
        if (find_version(kek, version) != NULL) {
            st = sm_error_set(err, SM_ERR_FORMAT, "%s: version %u is listed twice", what,
                              (unsigned)version);
            goto fail;
        }
        sm_secret *key = NULL;
        if ((st = decode_key(json_object_get(entry, "key"), what, version, &key, err)) != SM_OK)
            goto fail;
        kek->v[kek->n].version = version;
        kek->v[kek->n].key = key;
        kek->n++;
    }
    if ((st = parse_version_number(json_object_get(doc, "current"), what, "current",
                                   &kek->current, err)) != SM_OK)
        goto fail;
    if (find_version(kek, kek->current) == NULL) {
        st = sm_error_set(err, SM_ERR_KEY, "%s: the current version %u is not among \"keys\"", what,
                          (unsigned)kek->current);
        goto fail;
    }
    wipe_and_release(doc);
    *out = kek;
    return SM_OK;
fail:
    wipe_and_release(doc);
    sm_ks_kek_free(kek);
    return st;
}

sm_status sm_ks_kek_load(const char *path, sm_ks_kek **out, sm_error *err)
{
    sm_secret *raw = NULL;
    char what[300];
    *out = NULL;
    snprintf(what, sizeof(what), "KEK file %s", path);
    mode_t mode = 0;
    sm_status st = sm_file_read_secret(path, SM_KS_KEK_FILE_MAX, &raw, &mode, err);
    if (st != SM_OK)
        return st;
    if ((mode & 077) != 0) {
        sm_secret_free(raw);
        return sm_file_refuse_loose_mode(path, mode, err);
    }
    st = sm_ks_kek_parse(raw->bytes, raw->len, what, out, err);
    sm_secret_free(raw);
    return st;
}

static sm_status add_random_version(sm_ks_kek *kek, uint32_t version, sm_error *err)
{
    if (kek->n >= SM_KS_KEK_MAX_VERSIONS)
        return sm_error_set(err, SM_ERR_TOO_LARGE,
                            "KEK: already %u versions; remove re-wrapped old versions first",
                            SM_KS_KEK_MAX_VERSIONS);
    sm_secret *key = sm_secret_random(SM_KS_KEK_KEY_LEN);
    if (key == NULL)
        return sm_error_set(err, SM_ERR_CRYPTO, "KEK: cannot draw a random key");
    kek->v[kek->n].version = version;
    kek->v[kek->n].key = key;
    kek->n++;
    kek->current = version;
    return SM_OK;
}

sm_status sm_ks_kek_generate(sm_ks_kek **out, sm_error *err)
{
    *out = NULL;
    sm_ks_kek *kek = calloc(1, sizeof(*kek));
    if (kek == NULL)
        return sm_error_set(err, SM_ERR_NOMEM, "KEK: out of memory");
    sm_status st = add_random_version(kek, 1, err);
    if (st != SM_OK) {
        sm_ks_kek_free(kek);
        return st;
    }
    *out = kek;
    return SM_OK;
}

sm_status sm_ks_kek_add_version(sm_ks_kek *kek, sm_error *err)
{
    uint32_t highest = 0;
    for (size_t i = 0; i < kek->n; i++)
        if (kek->v[i].version > highest)
            highest = kek->v[i].version;
    if (highest == UINT32_MAX)
        return sm_error_set(err, SM_ERR_ARG, "KEK: no version number left");
    return add_random_version(kek, highest + 1, err);
}

sm_status sm_ks_kek_remove_version(sm_ks_kek *kek, uint32_t version, sm_error *err)
{
    if (version == kek->current)
        return sm_error_set(err, SM_ERR_ARG, "KEK: version %u is current and cannot be removed",
                            (unsigned)version);
    for (size_t i = 0; i < kek->n; i++) {
        if (kek->v[i].version == version) {
            sm_secret_free(kek->v[i].key);
            memmove(&kek->v[i], &kek->v[i + 1], (kek->n - i - 1) * sizeof(kek->v[0]));
            kek->n--;
            return SM_OK;
        }
    }
    return sm_error_set(err, SM_ERR_KEY, "KEK: there is no version %u", (unsigned)version);
}

sm_status sm_ks_kek_serialize(const sm_ks_kek *kek, sm_secret **doc_out, sm_error *err)
{
    /* Built by hand into secure memory so the key text never sits in a
     * buffer we cannot wipe. Per key: {"version":4294967295,"key":"<43>"}, */
    size_t cap = 64 + kek->n * (KEY_B64_LEN + 48);
    sm_secret *doc = sm_secret_new(cap);
    *doc_out = NULL;
    if (doc == NULL)
        return sm_error_set(err, SM_ERR_NOMEM, "KEK: out of memory");
    char *p = (char *)doc->bytes;
    size_t used = 0;
    int n = snprintf(p, cap, "{\"format\":\"%s\",\"current\":%u,\"keys\":[", KEK_FORMAT,
                     (unsigned)kek->current);
    used = (size_t)n;
    for (size_t i = 0; i < kek->n; i++) {
        char k64[KEY_B64_LEN + 1];
        if (sm_b64url_encode(kek->v[i].key->bytes, kek->v[i].key->len, k64, sizeof(k64), err) !=
            SM_OK) {
            sm_secret_free(doc);
            return SM_ERR_CRYPTO;
        }
        n = snprintf(p + used, cap - used, "%s{\"version\":%u,\"key\":\"%s\"}",
                     i > 0 ? "," : "", (unsigned)kek->v[i].version, k64);
        sm_wipe(k64, sizeof(k64));
        if (n < 0 || (size_t)n >= cap - used) {
            sm_secret_free(doc);
            return sm_error_set(err, SM_ERR_CRYPTO, "KEK: document buffer too small");
        }
        used += (size_t)n;
    }
    n = snprintf(p + used, cap - used, "]}\n");
    if (n < 0 || (size_t)n >= cap - used) {
        sm_secret_free(doc);
        return sm_error_set(err, SM_ERR_CRYPTO, "KEK: document buffer too small");
    }
    used += (size_t)n;
    /* The secret's length is the document's; the rest of the buffer is zero. */
    doc->len = used;
    *doc_out = doc;
    return SM_OK;
}

sm_status sm_ks_kek_save(const sm_ks_kek *kek, const char *path, int overwrite, sm_error *err)
{
    sm_secret *doc = NULL;
    sm_status st = sm_ks_kek_serialize(kek, &doc, err);
    if (st != SM_OK)
        return st;
    st = sm_file_write_atomic(path, doc->bytes, doc->len, 0600, overwrite, err);
    sm_secret_free(doc);
    return st;
}

/* AAD = label NUL, u8 work id length, work id, u32 key version,
 * u32 KEK version (big-endian). Length-prefixed so no two inputs collide. */
static sm_status build_aad(const char *work_id, uint32_t key_version, uint32_t kek_version,
                           uint8_t *aad, size_t cap, size_t *aad_len, sm_error *err)
{
    sm_status st = sm_validate_work_id(work_id, "work id", err);
    if (st != SM_OK)
        return st;
    size_t label_len = sizeof(WRAP_AAD_LABEL); /* includes the NUL */
    size_t id_len = strlen(work_id);
    size_t need = label_len + 1 + id_len + 8;
    if (need > cap)
        return sm_error_set(err, SM_ERR_ARG, "work id too long");
    uint8_t *p = aad;
    memcpy(p, WRAP_AAD_LABEL, label_len);
    p += label_len;
    *p++ = (uint8_t)id_len;
    memcpy(p, work_id, id_len);
    p += id_len;
    for (int shift = 24; shift >= 0; shift -= 8)
        *p++ = (uint8_t)(key_version >> shift);
    for (int shift = 24; shift >= 0; shift -= 8)
        *p++ = (uint8_t)(kek_version >> shift);
    *aad_len = (size_t)(p - aad);
    return SM_OK;
}

#define AAD_CAP 128u

sm_status sm_ks_kek_wrap(const sm_ks_kek *kek, const char *work_id, uint32_t key_version,
                         const sm_secret *media_key, uint8_t out[SM_KS_WRAPPED_KEY_LEN],
                         uint32_t *kek_version_out, sm_error *err)
{
    uint8_t aad[AAD_CAP];
    size_t aad_len;
    if (media_key == NULL || media_key->len != SM_KS_KEK_KEY_LEN)
        return sm_error_set(err, SM_ERR_KEY, "a media key must be 32 bytes");
    if (key_version == 0)
        return sm_error_set(err, SM_ERR_ARG, "the media key version must be at least 1");
    uint32_t version = kek->current;
    const sm_secret *k = find_version(kek, version);
    sm_status st = build_aad(work_id, key_version, version, aad, sizeof(aad), &aad_len, err);
    if (st != SM_OK)
        return st;
    out[0] = SM_KS_WRAPPED_KEY_FORMAT;
    uint8_t *nonce = out + 1, *ct = out + 1 + WRAP_NONCE_LEN,
            *tag = out + 1 + WRAP_NONCE_LEN + SM_KS_KEK_KEY_LEN;
    /* Random 96-bit nonces: far below the 2^32 wraps per KEK version where
     * collisions would start to matter. */
    if (RAND_bytes(nonce, WRAP_NONCE_LEN) != 1)
        return sm_error_set(err, SM_ERR_CRYPTO, "cannot draw a random nonce");
    sm_aead *aead = NULL;
    if ((st = sm_aead_new(k->bytes, k->len, &aead, err)) != SM_OK)
        return st;
    st = sm_aead_seal(aead, nonce, WRAP_NONCE_LEN, aad, aad_len, media_key->bytes,
                      media_key->len, ct, tag, SM_GCM_TAG_LEN, err);
    sm_aead_free(aead);
    if (st != SM_OK) {
        sm_wipe(out, SM_KS_WRAPPED_KEY_LEN);
        return st;
    }
    if (kek_version_out != NULL)
        *kek_version_out = version;
    return SM_OK;
}

sm_status sm_ks_kek_unwrap(const sm_ks_kek *kek, const char *work_id, uint32_t key_version,
                           uint32_t kek_version, const uint8_t *wrapped, size_t wrapped_len,
                           sm_secret **media_key_out, sm_error *err)
{
    uint8_t aad[AAD_CAP];
    size_t aad_len;
    *media_key_out = NULL;
    if (wrapped == NULL || wrapped_len != SM_KS_WRAPPED_KEY_LEN ||
        wrapped[0] != SM_KS_WRAPPED_KEY_FORMAT)
        return sm_error_set(err, SM_ERR_FORMAT,
                            "wrapped media key of work %.64s: not a %u-byte format-1 blob",
                            work_id != NULL ? work_id : "?", SM_KS_WRAPPED_KEY_LEN);
    const sm_secret *k = find_version(kek, kek_version);
    if (k == NULL)
        return sm_error_set(err, SM_ERR_KEY,
                            "wrapped media key of work %.64s needs KEK version %u, which the KEK "
                            "file does not hold",
                            work_id != NULL ? work_id : "?", (unsigned)kek_version);
    sm_status st = build_aad(work_id, key_version, kek_version, aad, sizeof(aad), &aad_len, err);
    if (st != SM_OK)
        return st;
    sm_secret *key = sm_secret_new(SM_KS_KEK_KEY_LEN);
    if (key == NULL)
        return sm_error_set(err, SM_ERR_NOMEM, "out of memory");
    sm_aead *aead = NULL;
    if ((st = sm_aead_new(k->bytes, k->len, &aead, err)) != SM_OK) {
        sm_secret_free(key);
        return st;
    }
    st = sm_aead_open(aead, wrapped + 1, WRAP_NONCE_LEN, aad, aad_len,
                      wrapped + 1 + WRAP_NONCE_LEN, SM_KS_KEK_KEY_LEN,
                      wrapped + 1 + WRAP_NONCE_LEN + SM_KS_KEK_KEY_LEN, SM_GCM_TAG_LEN,
                      key->bytes, NULL);
    sm_aead_free(aead);
    if (st != SM_OK) {
        sm_secret_free(key);
        return sm_error_set(err, SM_ERR_AUTH,
                            "wrapped media key of work %s (key version %u, KEK version %u) does "
                            "not authenticate: altered or stored under another work",
                            work_id, (unsigned)key_version, (unsigned)kek_version);
    }
    *media_key_out = key;
    return SM_OK;
}

sm_status sm_ks_kek_rewrap(const sm_ks_kek *kek, const char *work_id, uint32_t key_version,
                           uint32_t kek_version, const uint8_t *wrapped, size_t wrapped_len,
                           uint8_t out[SM_KS_WRAPPED_KEY_LEN], uint32_t *new_kek_version_out,
                           sm_error *err)
{
    sm_secret *key = NULL;
    sm_status st =
        sm_ks_kek_unwrap(kek, work_id, key_version, kek_version, wrapped, wrapped_len, &key, err);
    if (st != SM_OK)
        return st;
    st = sm_ks_kek_wrap(kek, work_id, key_version, key, out, new_kek_version_out, err);
    sm_secret_free(key);
    return st;
}
