#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/rand.h>

#include "sm_json.h"
#include "sm_file.h"
#include "sm_steer.h"
#include "sm_validate.h"

/* How messages name the document when no path is known. */
#define STEER_DOC "steering file"

/* The magic line without its version number and LF. */
#define STEER_MAGIC_STEM "SECMEDIA-STEER/"
#define STEER_MAGIC_STEM_LEN 15

/* Room for `steering file "<path cut to 200 bytes>"`, and for that plus
 * `: field "<name>"[i]`. */
#define STEER_DOC_MAX 224
#define STEER_WHAT_MAX (STEER_DOC_MAX + 96)

static const sm_json_field steer_fields[] = {
    {"version", SM_JSON_INTEGER, 1},
    {"work_id", SM_JSON_STRING, 1},
    {"title", SM_JSON_STRING, 1},
    {"artist", SM_JSON_STRING, 0},
    {"album", SM_JSON_STRING, 0},
    {"media_type", SM_JSON_STRING, 1},
    {"license_url", SM_JSON_STRING, 1},
    {"media_urls", SM_JSON_ARRAY, 1},
    {"preview_url", SM_JSON_STRING, 0},
    {"transaction_id", SM_JSON_STRING, 0},
    {"voucher", SM_JSON_STRING, 1},
    {NULL, SM_JSON_STRING, 0},
};

static const char *field_what(char *buf, size_t size, const char *doc, const char *name)
{
    snprintf(buf, size, "%s: field \"%s\"", doc, name);
    return buf;
}

static sm_status out_of_memory(sm_error *err, const char *doc)
{
    return sm_error_set(err, SM_ERR_NOMEM, "%s: out of memory", doc);
}

/* Messages may quote input (keys, jansson's "near '...'"): keep control
 * bytes out of them so they are safe to log and to show in a dialog. */
static void sanitize_message(sm_error *err)
{
    if (err == NULL)
        return;
    for (char *p = err->message; *p != '\0'; p++) {
        unsigned char c = (unsigned char)*p;
        if (c < 0x20 || c == 0x7f)
            *p = '?';
    }
}

int sm_steer_probe(const uint8_t *buf, size_t len)
{
    return buf != NULL && len >= SM_STEER_MAGIC_LEN &&
           memcmp(buf, SM_STEER_MAGIC, SM_STEER_MAGIC_LEN) == 0;
}

/* ---- validation of the decoded fields (shared by parse and serialize) ---- */

static sm_status validate_text_field(const char *value, const char *name, int required,
                                     const char *doc, sm_error *err)
{
    char what[STEER_WHAT_MAX];
    field_what(what, sizeof(what), doc, name);
    if (value == NULL) {
        if (required)
            return sm_error_set(err, SM_ERR_FORMAT, "%s: required field \"%s\" is missing", doc,
                                name);
        return SM_OK;
    }
    if (value[0] == '\0')
        return sm_error_set(err, SM_ERR_FORMAT, "%s: must not be empty%s", what,
                            required ? "" : " (leave the field out instead)");
    return sm_validate_text(value, SM_STEER_TEXT_MAX, what, err);
}

static int is_base64url_char(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '_';
}

/* Syntax of a compact JWS only: the key server verifies the signature. */
static sm_status validate_voucher(const char *v, const char *what, sm_error *err)
{
    size_t n = strlen(v);
    size_t dots = 0, seg_len = 0;
    if (n > SM_STEER_VOUCHER_MAX)
        return sm_error_set(err, SM_ERR_FORMAT, "%s: the voucher is %zu bytes, the limit is %d",
                            what, n, SM_STEER_VOUCHER_MAX);
    for (size_t i = 0; i <= n; i++) {
        unsigned char c = (unsigned char)v[i];
        if (c == '.' || c == '\0') {
            if (c == '.' && ++dots > 2)
                return sm_error_set(err, SM_ERR_FORMAT,
                                    "%s: a compact JWS has exactly three segments separated by "
                                    "'.', this one has more",
                                    what);
            if (c == '\0' && dots != 2)
                return sm_error_set(err, SM_ERR_FORMAT,
                                    "%s: must be a compact JWS (three base64url segments "
                                    "separated by '.'), found %zu segment%s",
                                    what, dots + 1, dots == 0 ? "" : "s");
            if (seg_len == 0)
                return sm_error_set(err, SM_ERR_FORMAT,
                                    "%s: segment %zu of the compact JWS is empty", what,
                                    c == '.' ? dots : dots + 1);
            if (seg_len % 4 == 1)
                return sm_error_set(err, SM_ERR_FORMAT,
                                    "%s: segment %zu of the compact JWS has an impossible "
                                    "base64url length (%zu)",
                                    what, c == '.' ? dots : dots + 1, seg_len);
            seg_len = 0;
        } else if (is_base64url_char(c)) {
            seg_len++;
        } else {
            return sm_error_set(err, SM_ERR_FORMAT,
                                "%s: contains a character outside the base64url alphabet "
                                "(A-Z a-z 0-9 - _) and '.'; copy the voucher unchanged",
                                what);
        }
    }
    return SM_OK;
}

static sm_status validate_transaction_id(const char *t, const char *what, sm_error *err)
{
    size_t n = strlen(t);
    if (n == 0 || n > SM_STEER_TRANSACTION_ID_MAX)
        return sm_error_set(err, SM_ERR_FORMAT, "%s: a transaction id has 1 to %d characters",
                            what, SM_STEER_TRANSACTION_ID_MAX);
    for (size_t i = 0; i < n; i++) {
        if (!is_base64url_char((unsigned char)t[i]))
            return sm_error_set(err, SM_ERR_FORMAT,
                                "%s: a transaction id may contain only letters, digits, '-' "
                                "and '_'",
                                what);
    }
    return SM_OK;
}

static sm_status validate_media_urls(const sm_steer *s, int insecure, const char *doc,
                                     sm_error *err)
{
    char what[STEER_WHAT_MAX];
    if (s->media_urls == NULL && s->media_url_count == 0)
        return sm_error_set(err, SM_ERR_FORMAT, "%s: required field \"media_urls\" is missing",
                            doc);
    if (s->media_url_count < 1 || s->media_url_count > SM_STEER_MEDIA_URLS_MAX)
        return sm_error_set(err, SM_ERR_FORMAT,
                            "%s: field \"media_urls\": must list 1 to %d URLs, got %zu", doc,
                            SM_STEER_MEDIA_URLS_MAX, s->media_url_count);
    if (s->media_urls == NULL)
        return sm_error_set(err, SM_ERR_ARG, "%s: field \"media_urls\": count without a list",
                            doc);
    for (size_t i = 0; i < s->media_url_count; i++) {
        snprintf(what, sizeof(what), "%s: field \"media_urls\"[%zu]", doc, i);
        if (s->media_urls[i] == NULL)
            return sm_error_set(err, SM_ERR_FORMAT, "%s: is missing", what);
        sm_status st = sm_validate_url(s->media_urls[i], insecure, what, err);
        if (st != SM_OK)
            return st;
        for (size_t j = 0; j < i; j++) {
            if (strcmp(s->media_urls[i], s->media_urls[j]) == 0)
                return sm_error_set(err, SM_ERR_FORMAT,
                                    "%s: duplicate of \"media_urls\"[%zu]; list each mirror once",
                                    what, j);
        }
    }
    return SM_OK;
}

static sm_status missing(const char *doc, const char *name, sm_error *err)
{
    return sm_error_set(err, SM_ERR_FORMAT, "%s: required field \"%s\" is missing", doc, name);
}

static sm_status validate_steer(const sm_steer *s, const sm_steer_options *opts, const char *doc,
                                sm_error *err)
{
    char what[STEER_WHAT_MAX];
    int insecure = opts != NULL && opts->allow_insecure_urls;
    sm_status st;

    if (s == NULL)
        return sm_error_set(err, SM_ERR_ARG, "%s: no steering data given", doc);
    if (s->version != SM_STEER_VERSION)
        return sm_error_set(err, SM_ERR_UNSUPPORTED,
                            "%s: field \"version\": version %d is not supported (this secmedia "
                            "reads version %d); update secmedia",
                            doc, s->version, SM_STEER_VERSION);

    if (s->work_id == NULL)
        return missing(doc, "work_id", err);
    st = sm_validate_work_id(s->work_id, field_what(what, sizeof(what), doc, "work_id"), err);
    if (st != SM_OK)
        return st;

    if ((st = validate_text_field(s->title, "title", 1, doc, err)) != SM_OK ||
        (st = validate_text_field(s->artist, "artist", 0, doc, err)) != SM_OK ||
        (st = validate_text_field(s->album, "album", 0, doc, err)) != SM_OK)
        return st;

    if (s->media_type == NULL)
        return missing(doc, "media_type", err);
    st = sm_validate_media_type(s->media_type, field_what(what, sizeof(what), doc, "media_type"),
                                err);
    if (st != SM_OK)
        return st;

    if (s->license_url == NULL)
        return missing(doc, "license_url", err);
    st = sm_validate_url(s->license_url, insecure,
                         field_what(what, sizeof(what), doc, "license_url"), err);
    if (st != SM_OK)
        return st;

    if ((st = validate_media_urls(s, insecure, doc, err)) != SM_OK)
        return st;

    if (s->preview_url != NULL) {
        st = sm_validate_url(s->preview_url, insecure,
                             field_what(what, sizeof(what), doc, "preview_url"), err);
        if (st != SM_OK)
            return st;
    }

    if (s->transaction_id != NULL) {
        st = validate_transaction_id(s->transaction_id,
                                     field_what(what, sizeof(what), doc, "transaction_id"), err);
        if (st != SM_OK)
            return st;
    }

    if (s->voucher == NULL)
        return missing(doc, "voucher", err);
    return validate_voucher(s->voucher, field_what(what, sizeof(what), doc, "voucher"), err);
}

sm_status sm_steer_validate_voucher(const char *voucher, const char *what, sm_error *err)
{
    return validate_voucher(voucher, what, err);
}

sm_status sm_steer_validate(const sm_steer *s, const sm_steer_options *opts, sm_error *err)
{
    return validate_steer(s, opts, STEER_DOC, err);
}

/* ---- parsing ---- */

/* Checks the first line. Everything that is not exactly the magic gets the
 * most specific message we can give. */
static sm_status check_magic(const uint8_t *buf, size_t len, const char *doc, sm_error *err)
{
    if (sm_steer_probe(buf, len))
        return SM_OK;
    if (len == 0)
        return sm_error_set(err, SM_ERR_TRUNCATED, "%s: the file is empty", doc);
    if (len >= 3 && buf[0] == 0xef && buf[1] == 0xbb && buf[2] == 0xbf)
        return sm_error_set(err, SM_ERR_FORMAT,
                            "%s: starts with a UTF-8 byte order mark; save it without a BOM "
                            "(the file must begin with the line SECMEDIA-STEER/1)",
                            doc);
    size_t stem = len < STEER_MAGIC_STEM_LEN ? len : STEER_MAGIC_STEM_LEN;
    if (memcmp(buf, STEER_MAGIC_STEM, stem) != 0)
        return sm_error_set(err, SM_ERR_FORMAT,
                            "%s: not a secmedia steering file (it must begin with the line "
                            "SECMEDIA-STEER/1)",
                            doc);
    if (len <= STEER_MAGIC_STEM_LEN)
        return sm_error_set(err, SM_ERR_TRUNCATED,
                            "%s: the file ends after %zu bytes, inside the first line "
                            "SECMEDIA-STEER/1",
                            doc, len);

    size_t i = STEER_MAGIC_STEM_LEN;
    while (i < len && i < STEER_MAGIC_STEM_LEN + 9 && buf[i] >= '0' && buf[i] <= '9')
        i++;
    size_t digits = i - STEER_MAGIC_STEM_LEN;
    int is_v1 = digits == 1 && buf[STEER_MAGIC_STEM_LEN] == '1';
    if (digits == 0)
        return sm_error_set(err, SM_ERR_FORMAT,
                            "%s: not a secmedia steering file (it must begin with the line "
                            "SECMEDIA-STEER/1)",
                            doc);
    if (is_v1 && i == len)
        return sm_error_set(err, SM_ERR_TRUNCATED,
                            "%s: the file ends after its first line SECMEDIA-STEER/1; a line "
                            "feed and the JSON object must follow",
                            doc);
    if (is_v1 && buf[i] == '\r')
        return sm_error_set(err, SM_ERR_FORMAT,
                            "%s: the first line ends with CR LF; steering files use LF line "
                            "endings only (convert it, e.g. with dos2unix)",
                            doc);
    if (is_v1)
        return sm_error_set(err, SM_ERR_FORMAT,
                            "%s: the first line must be exactly SECMEDIA-STEER/1 followed by a "
                            "line feed",
                            doc);
    if (i == len || buf[i] == '\n' || buf[i] == '\r')
        return sm_error_set(err, SM_ERR_UNSUPPORTED,
                            "%s: format SECMEDIA-STEER/%.*s is not supported (this secmedia "
                            "reads SECMEDIA-STEER/1); update secmedia",
                            doc, (int)digits, (const char *)buf + STEER_MAGIC_STEM_LEN);
    return sm_error_set(err, SM_ERR_FORMAT,
                        "%s: not a secmedia steering file (it must begin with the line "
                        "SECMEDIA-STEER/1)",
                        doc);
}

/* Finds the top-level member whose key or value contains byte offset pos of
 * the JSON text (where jansson stopped), so a syntax error can name the
 * field. The text before pos was accepted by jansson, so a small scanner
 * that tracks strings and nesting is enough. Returns 0 when no field applies
 * (outside the object, between members, inside a key) or the key is not
 * plain printable ASCII. */
static int field_at(const uint8_t *json, size_t len, size_t pos, char *name, size_t name_size)
{
    size_t depth = 0, key_start = 0, key_len = 0;
    int in_string = 0, escaped = 0, string_is_key = 0, expect_key = 0, have_key = 0;
    if (pos > len)
        pos = len;
    for (size_t i = 0; i < pos; i++) {
        uint8_t c = json[i];
        if (in_string) {
            if (escaped) {
                escaped = 0;
            } else if (c == '\\') {
                escaped = 1;
            } else if (c == '"') {
                in_string = 0;
                if (string_is_key) {
                    key_len = i - key_start;
                    have_key = 1;
                    expect_key = 0;
                }
            }
            continue;
        }
        switch (c) {
        case '"':
            in_string = 1;
            string_is_key = depth == 1 && expect_key;
            if (string_is_key)
                key_start = i + 1;
            break;
        case '{':
        case '[':
            depth++;
            if (depth == 1)
                expect_key = 1;
            break;
        case '}':
        case ']':
            if (depth <= 1)
                return 0; /* the error is after the object: in no field */
            depth--;
            break;
        case ',':
            if (depth == 1) {
                expect_key = 1;
                have_key = 0;
            }
            break;
        default:
            break;
        }
    }
    if (depth == 0 || !have_key || (in_string && string_is_key))
        return 0;
    if (key_len == 0 || key_len >= name_size)
        return 0;
    for (size_t i = 0; i < key_len; i++) {
        uint8_t c = json[key_start + i];
        if (c < 0x20 || c >= 0x7f || c == '\\' || c == '"')
            return 0;
    }
    memcpy(name, json + key_start, key_len);
    name[key_len] = '\0';
    return 1;
}

/* Rewrites a JSON syntax error so it gives the line in the file (the magic
 * line is line 1) and, where possible, the field it is in. */
static void describe_json_error(const uint8_t *json, size_t len, const char *doc, sm_error *err)
{
    json_error_t jerr;
    char name[65];
    if (err == NULL || memchr(json, '\0', len) != NULL)
        return;
    json_t *again = json_loadb((const char *)json, len, JSON_REJECT_DUPLICATES, &jerr);
    if (again != NULL) { /* not a syntax error (e.g. not an object): keep the message */
        json_decref(again);
        return;
    }
    size_t pos = jerr.position > 0 ? (size_t)jerr.position : 0;
    if (field_at(json, len, pos, name, sizeof(name)))
        sm_error_set(err, SM_ERR_FORMAT, "%s: field \"%s\": invalid JSON at line %d column %d: %s",
                     doc, name, jerr.line + 1, jerr.column, jerr.text);
    else
        sm_error_set(err, SM_ERR_FORMAT, "%s: invalid JSON at line %d column %d: %s", doc,
                     jerr.line + 1, jerr.column, jerr.text);
}

static sm_status take_string(json_t *root, const char *name, char **dst, const char *doc,
                             sm_error *err)
{
    const char *v = NULL;
    /* Lengths are checked by the validators; this rejects embedded NULs. */
    sm_status st = sm_json_get_string(root, name, SM_STEER_MAX_SIZE, 0, &v, doc, err);
    if (st != SM_OK || v == NULL)
        return st;
    *dst = strdup(v);
    return *dst != NULL ? SM_OK : out_of_memory(err, doc);
}

static sm_status take_media_urls(json_t *root, sm_steer *s, const char *doc, sm_error *err)
{
    json_t *arr = json_object_get(root, "media_urls");
    size_t n = json_array_size(arr);
    if (n < 1 || n > SM_STEER_MEDIA_URLS_MAX)
        return sm_error_set(err, SM_ERR_FORMAT,
                            "%s: field \"media_urls\": must list 1 to %d URLs, got %zu", doc,
                            SM_STEER_MEDIA_URLS_MAX, n);
    s->media_urls = calloc(n, sizeof(*s->media_urls));
    if (s->media_urls == NULL)
        return out_of_memory(err, doc);
    s->media_url_count = n;
    for (size_t i = 0; i < n; i++) {
        json_t *item = json_array_get(arr, i);
        if (!json_is_string(item))
            return sm_error_set(err, SM_ERR_FORMAT, "%s: field \"media_urls\"[%zu] must be a string",
                                doc, i);
        const char *v = json_string_value(item);
        if (strlen(v) != json_string_length(item))
            return sm_error_set(err, SM_ERR_FORMAT,
                                "%s: field \"media_urls\"[%zu] contains a NUL character", doc, i);
        s->media_urls[i] = strdup(v);
        if (s->media_urls[i] == NULL)
            return out_of_memory(err, doc);
    }
    return SM_OK;
}

static sm_status steer_from_json(json_t *root, const sm_steer_options *opts, const char *doc,
                                 sm_steer **out, sm_error *err)
{
    sm_status st = sm_json_check_fields(root, steer_fields, doc, err);
    if (st != SM_OK)
        return st;

    json_int_t version = json_integer_value(json_object_get(root, "version"));
    if (version != SM_STEER_VERSION)
        return sm_error_set(err, SM_ERR_UNSUPPORTED,
                            "%s: field \"version\": version %lld is not supported (this "
                            "secmedia reads version %d); update secmedia",
                            doc, (long long)version, SM_STEER_VERSION);

    sm_steer *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return out_of_memory(err, doc);
    s->version = SM_STEER_VERSION;
    if ((st = take_string(root, "work_id", &s->work_id, doc, err)) != SM_OK ||
        (st = take_string(root, "title", &s->title, doc, err)) != SM_OK ||
        (st = take_string(root, "artist", &s->artist, doc, err)) != SM_OK ||
        (st = take_string(root, "album", &s->album, doc, err)) != SM_OK ||
        (st = take_string(root, "media_type", &s->media_type, doc, err)) != SM_OK ||
        (st = take_string(root, "license_url", &s->license_url, doc, err)) != SM_OK ||
        (st = take_media_urls(root, s, doc, err)) != SM_OK ||
        (st = take_string(root, "preview_url", &s->preview_url, doc, err)) != SM_OK ||
        (st = take_string(root, "transaction_id", &s->transaction_id, doc, err)) != SM_OK ||
        (st = take_string(root, "voucher", &s->voucher, doc, err)) != SM_OK ||
        (st = validate_steer(s, opts, doc, err)) != SM_OK) {
        sm_steer_free(s);
        return st;
    }
    *out = s;
    return SM_OK;
}

static sm_status parse_steer(const uint8_t *buf, size_t len, const sm_steer_options *opts,
                             const char *doc, sm_steer **out, sm_error *err)
{
    if (out == NULL || (buf == NULL && len > 0))
        return sm_error_set(err, SM_ERR_ARG, "%s: sm_steer_parse needs a buffer and an output",
                            doc);
    *out = NULL;
    if (len > SM_STEER_MAX_SIZE)
        return sm_error_set(err, SM_ERR_TOO_LARGE,
                            "%s: %zu bytes, the limit is %d; this is not a steering file", doc,
                            len, SM_STEER_MAX_SIZE);
    sm_status st = check_magic(buf, len, doc, err);
    if (st != SM_OK)
        return st;

    const uint8_t *json = buf + SM_STEER_MAGIC_LEN;
    size_t json_len = len - SM_STEER_MAGIC_LEN;
    const uint8_t *cr = memchr(json, '\r', json_len);
    if (cr != NULL) {
        size_t line = 2;
        for (const uint8_t *p = json; p < cr; p++)
            line += *p == '\n';
        return sm_error_set(err, SM_ERR_FORMAT,
                            "%s: line %zu contains a carriage return (CR); steering files use "
                            "LF line endings only (convert it, e.g. with dos2unix)",
                            doc, line);
    }

    json_t *root = NULL;
    st = sm_json_parse_object(json, json_len, SM_STEER_MAX_SIZE - SM_STEER_MAGIC_LEN, doc, &root,
                              err);
    if (st == SM_OK) {
        st = steer_from_json(root, opts, doc, out, err);
        json_decref(root);
    } else if (st == SM_ERR_FORMAT) {
        describe_json_error(json, json_len, doc, err);
    }
    if (st != SM_OK)
        sanitize_message(err);
    return st;
}

sm_status sm_steer_parse(const uint8_t *buf, size_t len, const sm_steer_options *opts,
                         sm_steer **out, sm_error *err)
{
    return parse_steer(buf, len, opts, STEER_DOC, out, err);
}

static void errno_text(int errnum, char *buf, size_t size)
{
    /* GNU strerror_r may return a static string instead of filling buf. */
    const char *s = strerror_r(errnum, buf, size);
    if (s != buf)
        snprintf(buf, size, "%s", s);
}

sm_status sm_steer_load_file(const char *path, const sm_steer_options *opts, sm_steer **out,
                             sm_error *err)
{
    char doc[STEER_DOC_MAX];
    char why[128];
    if (out != NULL)
        *out = NULL;
    if (path == NULL || out == NULL)
        return sm_error_set(err, SM_ERR_ARG, "%s: sm_steer_load_file needs a path and an output",
                            STEER_DOC);
    snprintf(doc, sizeof(doc), "%s \"%.200s\"", STEER_DOC, path);

    sm_status st;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        errno_text(errno, why, sizeof(why));
        st = sm_error_set(err, SM_ERR_IO, "%s: cannot open it: %s", doc, why);
        sanitize_message(err);
        return st;
    }
    /* One byte more than the limit tells "too large" from "exactly 64 KiB". */
    uint8_t *buf = malloc(SM_STEER_MAX_SIZE + 1);
    if (buf == NULL) {
        close(fd);
        return out_of_memory(err, doc);
    }
    size_t got = 0;
    while (got < SM_STEER_MAX_SIZE + 1) {
        ssize_t n = read(fd, buf + got, SM_STEER_MAX_SIZE + 1 - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            errno_text(errno, why, sizeof(why));
            close(fd);
            free(buf);
            st = sm_error_set(err, SM_ERR_IO, "%s: cannot read it: %s", doc, why);
            sanitize_message(err);
            return st;
        }
        if (n == 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    if (got > SM_STEER_MAX_SIZE)
        st = sm_error_set(err, SM_ERR_TOO_LARGE,
                          "%s: larger than %d bytes; this is not a steering file", doc,
                          SM_STEER_MAX_SIZE);
    else
        st = parse_steer(buf, got, opts, doc, out, err);
    free(buf);
    if (st != SM_OK)
        sanitize_message(err); /* the path may hold control characters */
    return st;
}

/* ---- writing ---- */

static int add_string(json_t *obj, const char *name, const char *value)
{
    if (value == NULL)
        return 0;
    return json_object_set_new(obj, name, json_string(value));
}

static json_t *steer_to_json(const sm_steer *s)
{
    json_t *obj = json_object();
    json_t *urls = json_array();
    int bad = obj == NULL || urls == NULL;
    for (size_t i = 0; !bad && i < s->media_url_count; i++)
        bad = json_array_append_new(urls, json_string(s->media_urls[i])) != 0;
    /* Fixed order: jansson writes members in insertion order. */
    bad = bad || json_object_set_new(obj, "version", json_integer(s->version)) != 0 ||
          add_string(obj, "work_id", s->work_id) != 0 ||
          add_string(obj, "title", s->title) != 0 || add_string(obj, "artist", s->artist) != 0 ||
          add_string(obj, "album", s->album) != 0 ||
          add_string(obj, "media_type", s->media_type) != 0 ||
          add_string(obj, "license_url", s->license_url) != 0 ||
          json_object_set(obj, "media_urls", urls) != 0 ||
          add_string(obj, "preview_url", s->preview_url) != 0 ||
          add_string(obj, "transaction_id", s->transaction_id) != 0 ||
          add_string(obj, "voucher", s->voucher) != 0;
    json_decref(urls);
    if (bad) {
        json_decref(obj);
        return NULL;
    }
    return obj;
}

sm_status sm_steer_serialize(const sm_steer *s, const sm_steer_options *opts, char **out,
                             size_t *len, sm_error *err)
{
    if (out == NULL || len == NULL)
        return sm_error_set(err, SM_ERR_ARG, "%s: sm_steer_serialize needs out and len",
                            STEER_DOC);
    *out = NULL;
    *len = 0;
    sm_status st = validate_steer(s, opts, STEER_DOC, err);
    if (st != SM_OK)
        return st;

    json_t *obj = steer_to_json(s);
    char *json = obj != NULL ? json_dumps(obj, JSON_INDENT(2)) : NULL;
    json_decref(obj);
    if (json == NULL)
        return out_of_memory(err, STEER_DOC);
    size_t json_len = strlen(json);
    size_t total = SM_STEER_MAGIC_LEN + json_len + 1;
    if (total > SM_STEER_MAX_SIZE) {
        free(json);
        return sm_error_set(err, SM_ERR_TOO_LARGE,
                            "%s: would be %zu bytes, the limit is %d; shorten the text fields "
                            "or list fewer mirrors",
                            STEER_DOC, total, SM_STEER_MAX_SIZE);
    }
    char *buf = malloc(total + 1);
    if (buf == NULL) {
        free(json);
        return out_of_memory(err, STEER_DOC);
    }
    memcpy(buf, SM_STEER_MAGIC, SM_STEER_MAGIC_LEN);
    memcpy(buf + SM_STEER_MAGIC_LEN, json, json_len);
    buf[total - 1] = '\n';
    buf[total] = '\0';
    free(json);
    *out = buf;
    *len = total;
    return SM_OK;
}

sm_status sm_steer_save_file(const sm_steer *s, const sm_steer_options *opts, const char *path,
                             sm_error *err)
{
    if (path == NULL || path[0] == '\0')
        return sm_error_set(err, SM_ERR_ARG, "%s: sm_steer_save_file needs a path", STEER_DOC);
    char *data = NULL;
    size_t len = 0;
    sm_status st = sm_steer_serialize(s, opts, &data, &len, err);
    if (st != SM_OK)
        return st;
    /* Nothing in a steering file is secret: readable like any document. */
    st = sm_file_write_atomic(path, data, len, 0644, 1, err);
    free(data);
    if (st != SM_OK)
        sanitize_message(err);
    return st;
}

void sm_steer_free(sm_steer *s)
{
    if (s == NULL)
        return;
    free(s->work_id);
    free(s->title);
    free(s->artist);
    free(s->album);
    free(s->media_type);
    free(s->license_url);
    if (s->media_urls != NULL) {
        for (size_t i = 0; i < s->media_url_count; i++)
            free(s->media_urls[i]);
        free(s->media_urls);
    }
    free(s->voucher);
    free(s->preview_url);
    free(s->transaction_id);
    free(s);
}
