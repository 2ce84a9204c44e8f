/* Strict JSON over jansson: every secmedia document is parsed with these so
 * duplicate keys, unknown fields, wrong types and oversize input are refused
 * the same way everywhere. */
#ifndef SM_JSON_H
#define SM_JSON_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "sm_error.h"

/* Parses exactly one JSON object from buf (no trailing bytes other than
 * whitespace, no duplicate keys, no embedded NUL, at most max_len bytes).
 * `what` names the document in messages ("steering file", ...). */
sm_status sm_json_parse_object(const uint8_t *buf, size_t len, size_t max_len, const char *what,
                               json_t **out, sm_error *err);

/* Field descriptors for sm_json_check_fields. */
typedef enum sm_json_type {
    SM_JSON_STRING,
    SM_JSON_INTEGER,
    SM_JSON_BOOLEAN,
    SM_JSON_OBJECT,
    SM_JSON_ARRAY,
    SM_JSON_NUMBER /* integer or real */
} sm_json_type;

typedef struct sm_json_field {
    const char *name;
    sm_json_type type;
    int required;
} sm_json_field;

/* Checks that obj has only the listed fields, every required one, each of
 * the listed type. fields ends with a {NULL} entry. */
sm_status sm_json_check_fields(json_t *obj, const sm_json_field *fields, const char *what,
                               sm_error *err);

/* Typed getters that fail with a message naming the field. A missing
 * optional field leaves *out untouched and returns SM_OK when !required. */
sm_status sm_json_get_string(json_t *obj, const char *name, size_t max_len, int required,
                             const char **out, const char *what, sm_error *err);
sm_status sm_json_get_uint64(json_t *obj, const char *name, uint64_t max, int required,
                             uint64_t *out, const char *what, sm_error *err);

/* Copies a string field into a fixed buffer (NUL-terminated); too long is an error. */
sm_status sm_json_copy_string(json_t *obj, const char *name, char *dst, size_t dst_size,
                              int required, const char *what, sm_error *err);

#endif
