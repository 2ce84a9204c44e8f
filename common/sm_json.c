#include "config.h"

#include <string.h>

#include "sm_json.h"
#include "sm_secmem.h"

static const char *json_error_description(enum json_error_code code)
{
    switch (code) {
    case json_error_invalid_utf8: return "invalid UTF-8";
    case json_error_premature_end_of_input: return "the document ends too early";
    case json_error_end_of_input_expected: return "unexpected data after the JSON value";
    case json_error_duplicate_key: return "duplicate member name";
    case json_error_null_character: return "NUL character (\\u0000)";
    case json_error_null_byte_in_key: return "NUL character in a member name";
    case json_error_numeric_overflow: return "number out of range";
    case json_error_invalid_syntax: return "syntax error";
    default: return "not valid JSON";
    }
}

sm_status sm_json_parse_object(const uint8_t *buf, size_t len, size_t max_len, const char *what,
                               json_t **out, sm_error *err)
{
    json_error_t jerr;
    *out = NULL;
    if (len > max_len)
        return sm_error_set(err, SM_ERR_TOO_LARGE, "%s: JSON is %zu bytes, the limit is %zu",
                            what, len, max_len);
    if (memchr(buf, '\0', len) != NULL)
        return sm_error_set(err, SM_ERR_FORMAT, "%s: JSON contains a NUL byte", what);
    json_t *root = json_loadb((const char *)buf, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        /* jansson's own text quotes up to 20 bytes of the input ("near
         * '...'"), which may be key material: describe the error instead. */
        const char *why = json_error_description(json_error_code(&jerr));
        int line = jerr.line, column = jerr.column;
        sm_wipe(&jerr, sizeof(jerr));
        return sm_error_set(err, SM_ERR_FORMAT, "%s: invalid JSON at line %d column %d: %s", what,
                            line, column, why);
    }
    if (!json_is_object(root)) {
        json_decref(root);
        return sm_error_set(err, SM_ERR_FORMAT, "%s: expected a JSON object", what);
    }
    *out = root;
    return SM_OK;
}

static const char *type_name(sm_json_type t)
{
    switch (t) {
    case SM_JSON_STRING: return "a string";
    case SM_JSON_INTEGER: return "an integer";
    case SM_JSON_BOOLEAN: return "a boolean";
    case SM_JSON_OBJECT: return "an object";
    case SM_JSON_ARRAY: return "an array";
    case SM_JSON_NUMBER: return "a number";
    }
    return "?";
}

static int type_matches(json_t *v, sm_json_type t)
{
    switch (t) {
    case SM_JSON_STRING: return json_is_string(v);
    case SM_JSON_INTEGER: return json_is_integer(v);
    case SM_JSON_BOOLEAN: return json_is_boolean(v);
    case SM_JSON_OBJECT: return json_is_object(v);
    case SM_JSON_ARRAY: return json_is_array(v);
    case SM_JSON_NUMBER: return json_is_number(v);
    }
    return 0;
}

/* At most 64 bytes of a member name for a message, never cutting a UTF-8
 * sequence (a cut one makes the whole message invalid UTF-8, and JSON
 * problem documents cannot carry it). */
static int name_len_for_message(const char *key)
{
    size_t n = strlen(key);
    if (n <= 64)
        return (int)n;
    n = 64;
    while (n > 0 && ((unsigned char)key[n] & 0xC0) == 0x80)
        n--;
    return (int)n;
}

sm_status sm_json_check_fields(json_t *obj, const sm_json_field *fields, const char *what,
                               sm_error *err)
{
    const char *key;
    json_t *value;
    json_object_foreach(obj, key, value) {
        const sm_json_field *f = fields;
        while (f->name != NULL && strcmp(f->name, key) != 0)
            f++;
        if (f->name == NULL)
            return sm_error_set(err, SM_ERR_FORMAT, "%s: unknown field \"%.*s\"", what,
                                name_len_for_message(key), key);
        if (!type_matches(value, f->type))
            return sm_error_set(err, SM_ERR_FORMAT, "%s: field \"%s\" must be %s", what, key,
                                type_name(f->type));
    }
    for (const sm_json_field *f = fields; f->name != NULL; f++) {
        if (f->required && json_object_get(obj, f->name) == NULL)
            return sm_error_set(err, SM_ERR_FORMAT, "%s: required field \"%s\" is missing", what,
                                f->name);
    }
    return SM_OK;
}

sm_status sm_json_get_string(json_t *obj, const char *name, size_t max_len, int required,
                             const char **out, const char *what, sm_error *err)
{
    json_t *v = json_object_get(obj, name);
    if (v == NULL) {
        if (required)
            return sm_error_set(err, SM_ERR_FORMAT, "%s: required field \"%s\" is missing", what,
                                name);
        return SM_OK;
    }
    if (!json_is_string(v))
        return sm_error_set(err, SM_ERR_FORMAT, "%s: field \"%s\" must be a string", what, name);
    size_t len = json_string_length(v);
    if (len > max_len)
        return sm_error_set(err, SM_ERR_FORMAT, "%s: field \"%s\" is longer than %zu bytes", what,
                            name, max_len);
    /* jansson allows \u0000 inside strings; none of our fields may hold one. */
    if (strlen(json_string_value(v)) != len)
        return sm_error_set(err, SM_ERR_FORMAT, "%s: field \"%s\" contains a NUL character",
                            what, name);
    *out = json_string_value(v);
    return SM_OK;
}

sm_status sm_json_get_uint64(json_t *obj, const char *name, uint64_t max, int required,
                             uint64_t *out, const char *what, sm_error *err)
{
    json_t *v = json_object_get(obj, name);
    if (v == NULL) {
        if (required)
            return sm_error_set(err, SM_ERR_FORMAT, "%s: required field \"%s\" is missing", what,
                                name);
        return SM_OK;
    }
    if (!json_is_integer(v))
        return sm_error_set(err, SM_ERR_FORMAT, "%s: field \"%s\" must be an integer", what, name);
    json_int_t i = json_integer_value(v);
    if (i < 0 || (uint64_t)i > max)
        return sm_error_set(err, SM_ERR_FORMAT, "%s: field \"%s\" must be between 0 and %llu",
                            what, name, (unsigned long long)max);
    *out = (uint64_t)i;
    return SM_OK;
}

sm_status sm_json_copy_string(json_t *obj, const char *name, char *dst, size_t dst_size,
                              int required, const char *what, sm_error *err)
{
    const char *s = NULL;
    sm_status st = sm_json_get_string(obj, name, dst_size - 1, required, &s, what, err);
    if (st != SM_OK)
        return st;
    if (s != NULL)
        memcpy(dst, s, strlen(s) + 1);
    return SM_OK;
}
