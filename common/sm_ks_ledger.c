#include "config.h"

/* Ledger entries: limits, canonical encoding, hash chain, checkpoints and
 * export lines (see sm_ks_ledger.h). The verifier is sm_ks_ledger_verify.c. */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>

#include "sm_b64.h"
#include "sm_json.h"
#include "sm_ks_ledger.h"
#include "sm_validate.h"

#define CANONICAL_LABEL "secmedia-ledger/1"
#define TAG_STRING 0x73u  /* 's' */
#define TAG_INTEGER 0x69u /* 'i' */
/* Checkpoints are evidence and never expire: 9999-12-31T23:59:59Z. */
#define CHECKPOINT_EXP INT64_C(253402300799)

static int is_type_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
}

static int is_name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
}

sm_status sm_ks_ledger_check_entry(const sm_ks_ledger_entry *e, sm_error *err)
{
    if (e->seq == 0 || e->seq > (uint64_t)INT64_MAX)
        return sm_error_set(err, SM_ERR_FORMAT, "ledger entry: seq must be 1 or more");
    if (e->time < 0 || e->time > CHECKPOINT_EXP)
        return sm_error_set(err, SM_ERR_FORMAT, "ledger entry %llu: time out of range",
                            (unsigned long long)e->seq);
    size_t tl = e->type != NULL ? strlen(e->type) : 0;
    if (tl == 0 || tl > SM_KS_LEDGER_TYPE_MAX)
        return sm_error_set(err, SM_ERR_FORMAT, "ledger entry %llu: type must be 1 to %u characters",
                            (unsigned long long)e->seq, SM_KS_LEDGER_TYPE_MAX);
    for (size_t i = 0; i < tl; i++)
        if (!is_type_char(e->type[i]))
            return sm_error_set(err, SM_ERR_FORMAT,
                                "ledger entry %llu: type may only hold a-z 0-9 -",
                                (unsigned long long)e->seq);
    if (!json_is_object(e->data))
        return sm_error_set(err, SM_ERR_FORMAT, "ledger entry %llu: data must be an object",
                            (unsigned long long)e->seq);
    if (json_object_size(e->data) > SM_KS_LEDGER_MAX_FIELDS)
        return sm_error_set(err, SM_ERR_FORMAT, "ledger entry %llu: more than %u data members",
                            (unsigned long long)e->seq, SM_KS_LEDGER_MAX_FIELDS);
    const char *name;
    json_t *value;
    json_object_foreach(e->data, name, value) {
        size_t nl = strlen(name);
        if (nl == 0 || nl > SM_KS_LEDGER_NAME_MAX)
            return sm_error_set(err, SM_ERR_FORMAT,
                                "ledger entry %llu: member names are 1 to %u characters",
                                (unsigned long long)e->seq, SM_KS_LEDGER_NAME_MAX);
        for (size_t i = 0; i < nl; i++)
            if (!is_name_char(name[i]))
                return sm_error_set(err, SM_ERR_FORMAT,
                                    "ledger entry %llu: member names may only hold a-z 0-9 _",
                                    (unsigned long long)e->seq);
        if (json_is_string(value)) {
            size_t vl = json_string_length(value);
            if (vl > SM_KS_LEDGER_STRING_MAX || strlen(json_string_value(value)) != vl)
                return sm_error_set(err, SM_ERR_FORMAT,
                                    "ledger entry %llu: member \"%s\" is longer than %u bytes or "
                                    "holds a NUL",
                                    (unsigned long long)e->seq, name, SM_KS_LEDGER_STRING_MAX);
            char what[80];
            snprintf(what, sizeof(what), "ledger entry %llu: member \"%s\"",
                     (unsigned long long)e->seq, name);
            sm_status st = sm_validate_text(json_string_value(value), SM_KS_LEDGER_STRING_MAX,
                                            what, err);
            if (st != SM_OK)
                return st;
        } else if (!json_is_integer(value)) {
            return sm_error_set(err, SM_ERR_FORMAT,
                                "ledger entry %llu: member \"%s\" must be a string or an integer",
                                (unsigned long long)e->seq, name);
        }
    }
    return SM_OK;
}

/* A growable byte buffer for the canonical encoding. */
typedef struct buf {
    uint8_t *p;
    size_t len, cap;
    int failed;
} buf;

static void put(buf *b, const void *data, size_t n)
{
    if (b->failed)
        return;
    if (n > b->cap - b->len) {
        size_t cap = b->cap * 2 + n + 64;
        uint8_t *np = realloc(b->p, cap);
        if (np == NULL) {
            b->failed = 1;
            return;
        }
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->len, data, n);
    b->len += n;
}

static void put_u8(buf *b, unsigned v)
{
    uint8_t c = (uint8_t)v;
    put(b, &c, 1);
}

static void put_be(buf *b, uint64_t v, unsigned bytes)
{
    uint8_t tmp[8];
    for (unsigned i = 0; i < bytes; i++)
        tmp[i] = (uint8_t)(v >> (8 * (bytes - 1 - i)));
    put(b, tmp, bytes);
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

sm_status sm_ks_ledger_canonical(const uint8_t prev[SM_KS_LEDGER_HASH_LEN],
                                 const sm_ks_ledger_entry *e, uint8_t **out, size_t *out_len,
                                 sm_error *err)
{
    const char *names[SM_KS_LEDGER_MAX_FIELDS];
    size_t n = 0;
    buf b = {0};
    *out = NULL;
    *out_len = 0;
    sm_status st = sm_ks_ledger_check_entry(e, err);
    if (st != SM_OK)
        return st;
    const char *name;
    json_t *value;
    json_object_foreach(e->data, name, value) names[n++] = name;
    qsort(names, n, sizeof(names[0]), cmp_names);

    put(&b, CANONICAL_LABEL, sizeof(CANONICAL_LABEL)); /* with its NUL */
    put(&b, prev, SM_KS_LEDGER_HASH_LEN);
    put_be(&b, e->seq, 8);
    put_be(&b, (uint64_t)e->time, 8);
    put_u8(&b, (unsigned)strlen(e->type));
    put(&b, e->type, strlen(e->type));
    put_u8(&b, (unsigned)n);
    for (size_t i = 0; i < n; i++) {
        json_t *v = json_object_get(e->data, names[i]);
        put_u8(&b, (unsigned)strlen(names[i]));
        put(&b, names[i], strlen(names[i]));
        if (json_is_string(v)) {
            put_u8(&b, TAG_STRING);
            put_be(&b, json_string_length(v), 4);
            put(&b, json_string_value(v), json_string_length(v));
        } else {
            put_u8(&b, TAG_INTEGER);
            put_be(&b, (uint64_t)json_integer_value(v), 8);
        }
    }
    if (b.failed) {
        free(b.p);
        return sm_error_set(err, SM_ERR_NOMEM, "ledger: out of memory");
    }
    *out = b.p;
    *out_len = b.len;
    return SM_OK;
}

sm_status sm_ks_ledger_hash(const uint8_t prev[SM_KS_LEDGER_HASH_LEN],
                            const sm_ks_ledger_entry *e, uint8_t out[SM_KS_LEDGER_HASH_LEN],
                            sm_error *err)
{
    uint8_t *enc = NULL;
    size_t enc_len = 0;
    unsigned int md_len = 0;
    sm_status st = sm_ks_ledger_canonical(prev, e, &enc, &enc_len, err);
    if (st != SM_OK)
        return st;
    int ok = EVP_Digest(enc, enc_len, out, &md_len, EVP_sha256(), NULL) == 1 &&
             md_len == SM_KS_LEDGER_HASH_LEN;
    free(enc);
    return ok ? SM_OK : sm_error_set(err, SM_ERR_CRYPTO, "ledger: SHA-256 failed");
}

void sm_ks_ledger_hash_to_b64(const uint8_t hash[SM_KS_LEDGER_HASH_LEN],
                              char out[SM_KS_LEDGER_HASH_B64_SIZE])
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t o = 0;
    for (size_t i = 0; i < SM_KS_LEDGER_HASH_LEN; i += 3) {
        uint32_t v = (uint32_t)hash[i] << 16;
        size_t left = SM_KS_LEDGER_HASH_LEN - i;
        if (left > 1)
            v |= (uint32_t)hash[i + 1] << 8;
        if (left > 2)
            v |= hash[i + 2];
        out[o++] = alphabet[(v >> 18) & 63];
        out[o++] = alphabet[(v >> 12) & 63];
        if (left > 1)
            out[o++] = alphabet[(v >> 6) & 63];
        if (left > 2)
            out[o++] = alphabet[v & 63];
    }
    out[o] = '\0';
}

sm_status sm_ks_ledger_hash_from_b64(const char *b64, uint8_t out[SM_KS_LEDGER_HASH_LEN],
                                     sm_error *err)
{
    size_t got = 0;
    /* Canonical only: one spelling per hash. */
    if (b64 == NULL || strlen(b64) != SM_KS_LEDGER_HASH_B64_SIZE - 1 ||
        sm_b64url_decode(b64, strlen(b64), out, SM_KS_LEDGER_HASH_LEN, &got, "hash", NULL) !=
            SM_OK ||
        got != SM_KS_LEDGER_HASH_LEN)
        return sm_error_set(err, SM_ERR_FORMAT,
                            "a hash must be 43 characters of canonical base64url");
    return SM_OK;
}

char *sm_ks_ledger_data_to_text(json_t *data)
{
    return json_dumps(data, JSON_COMPACT | JSON_SORT_KEYS);
}

sm_status sm_ks_ledger_data_from_text(const char *text, size_t len, json_t **out, sm_error *err)
{
    json_t *data = NULL;
    *out = NULL;
    sm_status st = sm_json_parse_object((const uint8_t *)text, len, SM_KS_LEDGER_LINE_MAX,
                                        "ledger data", &data, err);
    if (st != SM_OK)
        return st;
    sm_ks_ledger_entry probe = {1, 0, "probe", data};
    if ((st = sm_ks_ledger_check_entry(&probe, err)) != SM_OK) {
        json_decref(data);
        return st;
    }
    *out = data;
    return SM_OK;
}

/* ---- checkpoints --------------------------------------------------------- */

sm_status sm_ks_checkpoint_issue(const sm_ks_keys *keys, const char *iss, uint64_t seq,
                                 const uint8_t head[SM_KS_LEDGER_HASH_LEN], int64_t now,
                                 char **compact_out, sm_error *err)
{
    char head64[SM_KS_LEDGER_HASH_B64_SIZE], jti[23];
    *compact_out = NULL;
    if (seq == 0 || seq > (uint64_t)INT64_MAX)
        return sm_error_set(err, SM_ERR_ARG, "checkpoint: seq must be 1 or more");
    if (iss == NULL || *iss == '\0')
        return sm_error_set(err, SM_ERR_ARG, "checkpoint: an issuer is needed");
    sm_status st = sm_jose_random_jti(jti, err);
    if (st != SM_OK)
        return st;
    sm_ks_ledger_hash_to_b64(head, head64);
    int64_t iat = now != 0 ? now : (int64_t)time(NULL);
    json_t *claims = json_pack("{s:s,s:s,s:I,s:I,s:s,s:I,s:s}", "iss", iss, "aud",
                               SM_KS_LEDGER_AUDIENCE, "iat", (json_int_t)iat, "exp",
                               (json_int_t)CHECKPOINT_EXP, "jti", jti, "seq", (json_int_t)seq,
                               "head", head64);
    if (claims == NULL)
        return sm_error_set(err, SM_ERR_NOMEM, "checkpoint: out of memory");
    st = sm_ks_keys_sign(keys, SM_KS_TYP_CHECKPOINT, claims, compact_out, err);
    json_decref(claims);
    return st;
}

sm_status sm_ks_checkpoint_verify(const sm_jwks *keys, const char *iss, const char *compact,
                                  size_t len, sm_ks_checkpoint *out, sm_error *err)
{
    static const sm_json_field fields[] = {
        {"iss", SM_JSON_STRING, 1}, {"aud", SM_JSON_STRING, 1}, {"iat", SM_JSON_INTEGER, 1},
        {"exp", SM_JSON_INTEGER, 1}, {"jti", SM_JSON_STRING, 1}, {"seq", SM_JSON_INTEGER, 1},
        {"head", SM_JSON_STRING, 1}, {NULL, SM_JSON_STRING, 0}};
    sm_jws_expect expect;
    json_t *claims = NULL;
    memset(out, 0, sizeof(*out));
    sm_jws_expect_init(&expect, iss, SM_KS_LEDGER_AUDIENCE, SM_KS_TYP_CHECKPOINT);
    sm_status st = sm_jws_verify(compact, len, keys, &expect, &claims, out->kid, err);
    if (st != SM_OK)
        return st;
    if ((st = sm_json_check_fields(claims, fields, "checkpoint", err)) != SM_OK) {
        st = SM_ERR_CLAIM;
        if (err != NULL)
            err->status = st;
        goto out;
    }
    json_int_t seq = json_integer_value(json_object_get(claims, "seq"));
    if (seq < 1) {
        st = sm_error_set(err, SM_ERR_CLAIM, "checkpoint: seq must be 1 or more");
        goto out;
    }
    if (sm_ks_ledger_hash_from_b64(json_string_value(json_object_get(claims, "head")), out->head,
                                   NULL) != SM_OK) {
        st = sm_error_set(err, SM_ERR_CLAIM, "checkpoint: head is not a base64url SHA-256 hash");
        goto out;
    }
    out->seq = (uint64_t)seq;
    out->iat = json_integer_value(json_object_get(claims, "iat"));
out:
    json_decref(claims);
    return st;
}

/* ---- export lines -------------------------------------------------------- */

static char *dump_line(json_t *o, sm_error *err)
{
    char *s = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (s == NULL)
        sm_error_set(err, SM_ERR_NOMEM, "ledger export: out of memory");
    return s;
}

char *sm_ks_ledger_export_header(const char *iss, const char *jwks_json, int64_t exported_at,
                                 sm_error *err)
{
    json_error_t jerr;
    json_t *jwks = json_loads(jwks_json, JSON_REJECT_DUPLICATES, &jerr);
    if (jwks == NULL) {
        sm_error_set(err, SM_ERR_ARG, "ledger export: the JWKS is not JSON");
        return NULL;
    }
    return dump_line(json_pack("{s:s,s:s,s:s,s:I,s:o}", "kind", "header", "format",
                               SM_KS_LEDGER_EXPORT_FORMAT, "issuer", iss, "exported_at",
                               (json_int_t)exported_at, "jwks", jwks),
                     err);
}

char *sm_ks_ledger_export_entry(const sm_ks_ledger_entry *e,
                                const uint8_t hash[SM_KS_LEDGER_HASH_LEN], sm_error *err)
{
    char h[SM_KS_LEDGER_HASH_B64_SIZE];
    if (sm_ks_ledger_check_entry(e, err) != SM_OK)
        return NULL;
    sm_ks_ledger_hash_to_b64(hash, h);
    return dump_line(json_pack("{s:s,s:I,s:I,s:s,s:O,s:s}", "kind", "entry", "seq",
                               (json_int_t)e->seq, "time", (json_int_t)e->time, "type", e->type,
                               "data", e->data, "hash", h),
                     err);
}

char *sm_ks_ledger_export_checkpoint(const char *compact, sm_error *err)
{
    return dump_line(json_pack("{s:s,s:s}", "kind", "checkpoint", "token", compact), err);
}

char *sm_ks_ledger_export_end(uint64_t last_seq, const uint8_t head[SM_KS_LEDGER_HASH_LEN],
                              sm_error *err)
{
    char h[SM_KS_LEDGER_HASH_B64_SIZE];
    sm_ks_ledger_hash_to_b64(head, h);
    return dump_line(json_pack("{s:s,s:I,s:s}", "kind", "end", "last_seq", (json_int_t)last_seq,
                               "head", h),
                     err);
}
