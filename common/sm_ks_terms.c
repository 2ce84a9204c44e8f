#include "config.h"

/* License terms and key-server identifiers (see sm_ks_terms.h). */

#include <string.h>

#include "sm_jose.h"
#include "sm_json.h"
#include "sm_ks_terms.h"
#include "sm_validate.h"

sm_status sm_ks_validate_id(const char *id, const char *what, sm_error *err)
{
    if (id == NULL)
        return sm_error_set(err, SM_ERR_FORMAT, "%s is missing", what);
    /* The work id rule is exactly the one we want: safe in URLs, file
     * names and log lines, never "." or "..". */
    return sm_validate_work_id(id, what, err);
}

sm_status sm_ks_new_txn_id(char out[SM_KS_ID_SIZE], sm_error *err)
{
    char jti[23];
    sm_status st = sm_jose_random_jti(jti, err);
    if (st != SM_OK)
        return st;
    memcpy(out, "txn-", 4);
    memcpy(out + 4, jti, sizeof(jti));
    return SM_OK;
}

const char *sm_ks_license_type_name(sm_ks_license_type type)
{
    switch (type) {
    case SM_KS_PURCHASE: return "purchase";
    case SM_KS_RENTAL: return "rental";
    }
    return NULL;
}

sm_ks_license_type sm_ks_license_type_from_name(const char *name)
{
    if (name == NULL)
        return 0;
    if (strcmp(name, "purchase") == 0)
        return SM_KS_PURCHASE;
    if (strcmp(name, "rental") == 0)
        return SM_KS_RENTAL;
    return 0;
}

sm_status sm_ks_terms_from_json(json_t *obj, const char *what, sm_ks_terms *out, sm_error *err)
{
    static const sm_json_field fields[] = {{"type", SM_JSON_STRING, 1},
                                           {"duration", SM_JSON_INTEGER, 0},
                                           {NULL, SM_JSON_STRING, 0}};
    if (!json_is_object(obj))
        return sm_error_set(err, SM_ERR_FORMAT, "%s must be an object", what);
    sm_status st = sm_json_check_fields(obj, fields, what, err);
    if (st != SM_OK)
        return st;
    const char *type = json_string_value(json_object_get(obj, "type"));
    json_t *duration = json_object_get(obj, "duration");
    memset(out, 0, sizeof(*out));
    out->type = sm_ks_license_type_from_name(type);
    switch (out->type) {
    case SM_KS_PURCHASE:
        if (duration != NULL)
            return sm_error_set(err, SM_ERR_FORMAT, "%s: a purchase has no \"duration\"", what);
        return SM_OK;
    case SM_KS_RENTAL: {
        if (duration == NULL)
            return sm_error_set(err, SM_ERR_FORMAT,
                                "%s: a rental needs \"duration\" (seconds)", what);
        json_int_t d = json_integer_value(duration);
        if (d < SM_KS_RENTAL_MIN || d > SM_KS_RENTAL_MAX)
            return sm_error_set(err, SM_ERR_FORMAT,
                                "%s: \"duration\" must be %d to %d seconds", what,
                                SM_KS_RENTAL_MIN, SM_KS_RENTAL_MAX);
        out->duration = d;
        return SM_OK;
    }
    }
    return sm_error_set(err, SM_ERR_FORMAT,
                        "%s: \"type\" must be \"purchase\" or \"rental\"", what);
}

json_t *sm_ks_terms_to_json(const sm_ks_terms *terms)
{
    const char *name = sm_ks_license_type_name(terms->type);
    if (name == NULL)
        return NULL;
    if (terms->type == SM_KS_RENTAL)
        return json_pack("{s:s,s:I}", "type", name, "duration", (json_int_t)terms->duration);
    return json_pack("{s:s}", "type", name);
}

int sm_ks_terms_equal(const sm_ks_terms *a, const sm_ks_terms *b)
{
    return a->type == b->type && a->duration == b->duration;
}
