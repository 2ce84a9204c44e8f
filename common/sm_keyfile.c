#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>


#include "sm_b64.h"
#include "sm_file.h"
#include "sm_json.h"
#include "sm_keyfile.h"

sm_status sm_keyfile_encode(const sm_secret *key, const char *kid, sm_secret **out, sm_error *err)
{
    *out = NULL;
    /* Built by hand (not jansson) so the key text only ever sits in secure
     * memory. kid is validated below so it needs no JSON escaping. */
    if (kid != NULL) {
        for (const char *c = kid; *c; c++) {
            if (*c < 0x21 || *c > 0x7e || *c == '"' || *c == '\\')
                return sm_error_set(err, SM_ERR_ARG, "key id contains an invalid character");
        }
    }
    size_t k64_cap = (key->len + 2) / 3 * 4 + 1;
    size_t cap = k64_cap + (kid != NULL ? strlen(kid) : 0) + 64;
    sm_secret *k64 = sm_secret_new(k64_cap);
    sm_secret *doc = sm_secret_new(cap);
    if (k64 == NULL || doc == NULL) {
        sm_secret_free(k64);
        sm_secret_free(doc);
        return sm_error_set(err, SM_ERR_NOMEM, "out of memory");
    }
    if (sm_b64url_encode(key->bytes, key->len, (char *)k64->bytes, k64->len, err) != SM_OK) {
        sm_secret_free(k64);
        sm_secret_free(doc);
        return err != NULL ? err->status : SM_ERR_CRYPTO;
    }
    int n = kid != NULL
                ? snprintf((char *)doc->bytes, cap, "{\"k\":\"%s\",\"kid\":\"%s\",\"kty\":\"oct\"}\n",
                           (const char *)k64->bytes, kid)
                : snprintf((char *)doc->bytes, cap, "{\"k\":\"%s\",\"kty\":\"oct\"}\n",
                           (const char *)k64->bytes);
    sm_secret_free(k64);
    if (n < 0 || (size_t)n >= cap) {
        sm_secret_free(doc);
        return sm_error_set(err, SM_ERR_ARG, "key id too long");
    }
    *out = sm_secret_from(doc->bytes, (size_t)n);
    sm_secret_free(doc);
    return *out != NULL ? SM_OK : sm_error_set(err, SM_ERR_NOMEM, "out of memory");
}

sm_status sm_keyfile_load(const char *path, size_t expected_len, sm_secret **key_out,
                          char *kid_out, size_t kid_size, sm_error *err)
{
    static const sm_json_field fields[] = {
        {"kty", SM_JSON_STRING, 1}, {"k", SM_JSON_STRING, 1}, {"kid", SM_JSON_STRING, 0},
        {NULL, SM_JSON_STRING, 0}};
    sm_secret *raw = NULL;
    json_t *doc = NULL;
    sm_secret *decoded = NULL;
    size_t decoded_len = 0;
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
    decoded = sm_secret_new(expected_len);
    if (decoded == NULL) {
        st = sm_error_set(err, SM_ERR_NOMEM, "out of memory");
        goto out;
    }
    if (sm_b64url_decode(json_string_value(k), json_string_length(k), decoded->bytes,
                         decoded->len, &decoded_len, what, NULL) != SM_OK ||
        decoded_len != expected_len) {
        st = sm_error_set(err, SM_ERR_KEY,
                          "%s: \"k\" must be %zu bytes in canonical unpadded base64url", what,
                          expected_len);
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
    *key_out = decoded;
    decoded = NULL;
    st = SM_OK;
out:
    sm_secret_free(decoded);
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
