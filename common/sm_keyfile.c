#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjose/base64.h>
#include <cjose/util.h>

#include "sm_file.h"
#include "sm_json.h"
#include "sm_keyfile.h"

sm_status sm_keyfile_save(const char *path, const sm_secret *key, const char *kid, int overwrite,
                          sm_error *err)
{
    char *k64 = NULL;
    size_t k64_len = 0;
    cjose_err cerr;
    if (!cjose_base64url_encode(key->bytes, key->len, &k64, &k64_len, &cerr))
        return sm_error_set(err, SM_ERR_CRYPTO, "cannot encode key: %s", cerr.message);

    /* Built by hand (not jansson) so the key text only ever sits in buffers
     * we wipe. kid is validated below so it needs no JSON escaping. */
    if (kid != NULL) {
        for (const char *c = kid; *c; c++) {
            if (*c < 0x21 || *c > 0x7e || *c == '"' || *c == '\\') {
                sm_wipe(k64, k64_len);
                cjose_get_dealloc()(k64);
                return sm_error_set(err, SM_ERR_ARG, "key id contains an invalid character");
            }
        }
    }
    size_t cap = k64_len + (kid != NULL ? strlen(kid) : 0) + 64;
    sm_secret *doc = sm_secret_new(cap);
    if (doc == NULL) {
        sm_wipe(k64, k64_len);
        cjose_get_dealloc()(k64);
        return sm_error_set(err, SM_ERR_NOMEM, "out of memory");
    }
    int n = kid != NULL
                ? snprintf((char *)doc->bytes, cap, "{\"k\":\"%s\",\"kid\":\"%s\",\"kty\":\"oct\"}\n",
                           k64, kid)
                : snprintf((char *)doc->bytes, cap, "{\"k\":\"%s\",\"kty\":\"oct\"}\n", k64);
    sm_wipe(k64, k64_len);
    cjose_get_dealloc()(k64);
    sm_status st = (n < 0 || (size_t)n >= cap)
                       ? sm_error_set(err, SM_ERR_ARG, "key id too long")
                       : sm_file_write_atomic(path, doc->bytes, (size_t)n, 0600, overwrite, err);
    sm_secret_free(doc);
    return st;
}

sm_status sm_keyfile_load(const char *path, size_t expected_len, sm_secret **key_out,
                          char *kid_out, size_t kid_size, sm_error *err)
{
    static const sm_json_field fields[] = {
        {"kty", SM_JSON_STRING, 1}, {"k", SM_JSON_STRING, 1}, {"kid", SM_JSON_STRING, 0},
        {NULL, SM_JSON_STRING, 0}};
    sm_secret *raw = NULL;
    json_t *doc = NULL;
    uint8_t *decoded = NULL;
    size_t decoded_len = 0;
    cjose_err cerr;
    char what[300];
    sm_status st;

    *key_out = NULL;
    snprintf(what, sizeof(what), "key file %s", path);
    mode_t mode = 0;
    st = sm_file_read_secret(path, SM_KEYFILE_MAX_SIZE, &raw, &mode, err);
    if (st != SM_OK)
        return st;
    if ((mode & 077) != 0) {
        st = sm_file_refuse_loose_mode(path, mode, err);
        goto out;
    }
    st = sm_json_parse_object(raw->bytes, raw->len, SM_KEYFILE_MAX_SIZE, what, &doc, err);
    if (st != SM_OK)
        goto out;
    st = sm_json_check_fields(doc, fields, what, err);
    if (st != SM_OK)
        goto out;
    if (strcmp(json_string_value(json_object_get(doc, "kty")), "oct") != 0) {
        st = sm_error_set(err, SM_ERR_KEY, "%s: not a media key (kty must be \"oct\")", what);
        goto out;
    }
    json_t *k = json_object_get(doc, "k");
    if (!cjose_base64url_decode(json_string_value(k), json_string_length(k), &decoded,
                                &decoded_len, &cerr) ||
        decoded_len != expected_len) {
        st = sm_error_set(err, SM_ERR_KEY, "%s: \"k\" must be %zu bytes in base64url", what,
                          expected_len);
        goto out;
    }
    /* Only the canonical encoding (43 chars for 32 bytes, no padding). */
    if (json_string_length(k) != (expected_len * 4 + 2) / 3) {
        st = sm_error_set(err, SM_ERR_KEY, "%s: \"k\" is not canonical base64url", what);
        goto out;
    }
    if (kid_out != NULL) {
        const char *kid = json_string_value(json_object_get(doc, "kid"));
        if (kid == NULL)
            kid = "";
        if (strlen(kid) >= kid_size) {
            st = sm_error_set(err, SM_ERR_KEY, "%s: \"kid\" is too long", what);
            goto out;
        }
        memcpy(kid_out, kid, strlen(kid) + 1);
    }
    *key_out = sm_secret_from(decoded, decoded_len);
    st = *key_out != NULL ? SM_OK : sm_error_set(err, SM_ERR_NOMEM, "out of memory");
out:
    if (decoded != NULL) {
        sm_wipe(decoded, decoded_len);
        cjose_get_dealloc()(decoded);
    }
    if (doc != NULL) {
        /* jansson copied the base64 key text: wipe it before release. */
        json_t *kv = json_object_get(doc, "k");
        if (kv != NULL && json_is_string(kv))
            sm_wipe((char *)json_string_value(kv), json_string_length(kv));
        json_decref(doc);
    }
    sm_secret_free(raw);
    return st;
}
