#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "sm_ms_upload.h"
#include "sm_secmem.h"

struct sm_upload_check {
    sm_upload_kind kind;
    char work_id[SM_WORK_ID_MAX + 1];
    uint64_t max_size;
    int64_t announced;
    uint64_t received;
    uint64_t expected; /* total size the header implies; 0 until known */
    EVP_MD_CTX *sha;
    uint8_t digest[SM_SHA256_SIZE];
    /* Containers: the first bytes, until the header parses. */
    uint8_t *head;
    size_t head_len;
    sm_container_header *header;
    sm_status failed;
    sm_error failure;
};

sm_status sm_upload_check_new(sm_upload_kind kind, const char *work_id, uint64_t max_size,
                              int64_t announced, sm_upload_check **out, sm_error *err)
{
    *out = NULL;
    if (strlen(work_id) > SM_WORK_ID_MAX)
        return sm_error_set(err, SM_ERR_ARG, "work id too long");
    if (announced >= 0 && (uint64_t)announced > max_size)
        return sm_error_set(err, SM_ERR_TOO_LARGE,
                            "the upload announces %lld bytes, the limit is %llu bytes",
                            (long long)announced, (unsigned long long)max_size);
    sm_upload_check *u = calloc(1, sizeof(*u));
    if (u == NULL)
        return sm_error_set(err, SM_ERR_NOMEM, "out of memory");
    u->kind = kind;
    memcpy(u->work_id, work_id, strlen(work_id) + 1);
    u->max_size = max_size;
    u->announced = announced;
    u->sha = EVP_MD_CTX_new();
    if (u->sha == NULL || EVP_DigestInit_ex(u->sha, EVP_sha256(), NULL) != 1) {
        sm_upload_check_free(u);
        return sm_error_set(err, SM_ERR_CRYPTO, "SHA-256 unavailable");
    }
    *out = u;
    return SM_OK;
}

static sm_status fail(sm_upload_check *u, sm_error *err)
{
    if (err != NULL)
        *err = u->failure;
    return u->failed;
}

/* Collects bytes until the header parses, then checks it. */
static sm_status take_header_bytes(sm_upload_check *u, const uint8_t *data, size_t len)
{
    size_t want = SM_CONTAINER_HEADER_MAX - u->head_len;
    size_t n = len < want ? len : want;
    if (u->head == NULL && (u->head = malloc(SM_CONTAINER_HEADER_MAX)) == NULL)
        return sm_error_set(&u->failure, SM_ERR_NOMEM, "out of memory");
    memcpy(u->head + u->head_len, data, n);
    u->head_len += n;
    size_t needed = 0;
    sm_error perr;
    sm_status st = sm_container_header_parse(u->head, u->head_len, &u->header, &needed, &perr);
    if (st == SM_ERR_TRUNCATED && u->head_len < SM_CONTAINER_HEADER_MAX)
        return SM_OK; /* wait for more */
    if (st != SM_OK)
        return sm_error_set(&u->failure, st == SM_ERR_TRUNCATED ? SM_ERR_FORMAT : st,
                            "not a valid .smc container: %s", perr.message);
    if (strcmp(u->header->meta.work_id, u->work_id) != 0)
        return sm_error_set(&u->failure, SM_ERR_FORMAT,
                            "the container's header is for work \"%s\", not \"%s\"; upload it "
                            "to /works/%s",
                            u->header->meta.work_id, u->work_id, u->header->meta.work_id);
    u->expected = sm_container_file_size(u->header->len, u->header->meta.plaintext_length);
    if (u->expected > u->max_size)
        return sm_error_set(&u->failure, SM_ERR_TOO_LARGE,
                            "the container's header implies %llu bytes, the limit is %llu bytes",
                            (unsigned long long)u->expected, (unsigned long long)u->max_size);
    if (u->announced >= 0 && (uint64_t)u->announced != u->expected)
        return sm_error_set(&u->failure, SM_ERR_FORMAT,
                            "Content-Length is %lld bytes but the container's header implies "
                            "%llu bytes; the file is truncated or has trailing data",
                            (long long)u->announced, (unsigned long long)u->expected);
    free(u->head);
    u->head = NULL;
    return SM_OK;
}

sm_status sm_upload_check_update(sm_upload_check *u, const uint8_t *data, size_t len,
                                 sm_error *err)
{
    if (u->failed != SM_OK)
        return fail(u, err);
    if (len > u->max_size - u->received) {
        u->failed = sm_error_set(&u->failure, SM_ERR_TOO_LARGE,
                                 "the upload is larger than the limit of %llu bytes",
                                 (unsigned long long)u->max_size);
        return fail(u, err);
    }
    if (u->kind == SM_UPLOAD_CONTAINER && u->header == NULL) {
        sm_status st = take_header_bytes(u, data, len);
        if (st != SM_OK) {
            u->failed = st;
            return fail(u, err);
        }
    }
    u->received += len;
    if (u->header != NULL && u->received > u->expected) {
        u->failed = sm_error_set(&u->failure, SM_ERR_FORMAT,
                                 "more bytes than the container's header implies (%llu); the "
                                 "file has trailing data",
                                 (unsigned long long)u->expected);
        return fail(u, err);
    }
    if (EVP_DigestUpdate(u->sha, data, len) != 1) {
        u->failed = sm_error_set(&u->failure, SM_ERR_CRYPTO, "SHA-256 failed");
        return fail(u, err);
    }
    return SM_OK;
}

sm_status sm_upload_check_finish(sm_upload_check *u, const uint8_t declared[SM_SHA256_SIZE],
                                 sm_error *err)
{
    if (u->failed != SM_OK)
        return fail(u, err);
    if (u->kind == SM_UPLOAD_CONTAINER && u->header == NULL) {
        u->failed = sm_error_set(&u->failure, u->received == 0 ? SM_ERR_TRUNCATED : SM_ERR_FORMAT,
                                 u->received == 0 ? "the upload is empty"
                                                  : "the upload ends inside the container header");
        return fail(u, err);
    }
    if (u->header != NULL && u->received != u->expected) {
        u->failed = sm_error_set(&u->failure, SM_ERR_TRUNCATED,
                                 "the upload ended after %llu of the %llu bytes the container's "
                                 "header implies",
                                 (unsigned long long)u->received, (unsigned long long)u->expected);
        return fail(u, err);
    }
    if (u->announced >= 0 && (uint64_t)u->announced != u->received) {
        u->failed = sm_error_set(&u->failure, SM_ERR_TRUNCATED,
                                 "the upload ended after %llu of %lld announced bytes",
                                 (unsigned long long)u->received, (long long)u->announced);
        return fail(u, err);
    }
    unsigned int dlen = 0;
    if (EVP_DigestFinal_ex(u->sha, u->digest, &dlen) != 1 || dlen != SM_SHA256_SIZE) {
        u->failed = sm_error_set(&u->failure, SM_ERR_CRYPTO, "SHA-256 failed");
        return fail(u, err);
    }
    if (!sm_ct_equal(u->digest, declared, SM_SHA256_SIZE)) {
        u->failed = sm_error_set(&u->failure, SM_ERR_AUTH,
                                 "the SHA-256 of the %llu bytes received differs from the "
                                 "declared one; the upload was corrupted or the digest is wrong",
                                 (unsigned long long)u->received);
        return fail(u, err);
    }
    return SM_OK;
}

uint64_t sm_upload_check_received(const sm_upload_check *u)
{
    return u->received;
}

const uint8_t *sm_upload_check_digest(const sm_upload_check *u)
{
    return u->digest;
}

const sm_container_header *sm_upload_check_header(const sm_upload_check *u)
{
    return u->header;
}

void sm_upload_check_free(sm_upload_check *u)
{
    if (u == NULL)
        return;
    EVP_MD_CTX_free(u->sha);
    free(u->head);
    sm_container_header_free(u->header);
    free(u);
}

/* --- digest fields ---------------------------------------------------------- */

static int is_lcalpha(char c)
{
    return c >= 'a' && c <= 'z';
}

static int is_key_char(char c)
{
    return is_lcalpha(c) || (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.' ||
           c == '*';
}

static const char *skip_ows(const char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    return s;
}

/* Skips a structured-field parameter list ";k=v;k2" (values: tokens,
 * numbers, strings without escapes, byte sequences). */
static const char *skip_params(const char *s)
{
    while (*s == ';') {
        s = skip_ows(s + 1);
        if (!is_lcalpha(*s) && *s != '*')
            return NULL;
        while (is_key_char(*s))
            s++;
        if (*s == '=') {
            s++;
            if (*s == '"') {
                s = strchr(s + 1, '"');
                if (s == NULL)
                    return NULL;
                s++;
            } else if (*s == ':') {
                s = strchr(s + 1, ':');
                if (s == NULL)
                    return NULL;
                s++;
            } else {
                while (*s != '\0' && *s != ';' && *s != ',' && *s != ' ' && *s != '\t')
                    s++;
            }
        }
    }
    return s;
}

static int b64_value(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

/* Decodes standard base64 with padding (RFC 8941 byte sequence). */
static int b64_decode(const char *s, size_t len, uint8_t *out, size_t out_max, size_t *out_len)
{
    if (len % 4 != 0)
        return 0;
    size_t o = 0;
    for (size_t i = 0; i < len; i += 4) {
        int v[4];
        int pad = 0;
        for (int k = 0; k < 4; k++) {
            char c = s[i + (size_t)k];
            if (c == '=' && i + 4 == len && k >= 2) {
                v[k] = 0;
                pad++;
            } else if (pad > 0 || (v[k] = b64_value(c)) < 0) {
                return 0;
            }
        }
        uint32_t w = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 |
                     (uint32_t)v[3];
        uint8_t bytes[3] = {(uint8_t)(w >> 16), (uint8_t)(w >> 8), (uint8_t)w};
        for (int k = 0; k < 3 - pad; k++) {
            if (o == out_max)
                return 0;
            out[o++] = bytes[k];
        }
    }
    *out_len = o;
    return 1;
}

sm_status sm_digest_field_sha256(const char *field, uint8_t out[SM_SHA256_SIZE], sm_error *err)
{
    const char *s = skip_ows(field);
    int found = 0;
    while (*s != '\0') {
        const char *key = s;
        if (!is_lcalpha(*s) && *s != '*')
            return sm_error_set(err, SM_ERR_FORMAT,
                                "digest field: expected an algorithm name such as sha-256");
        while (is_key_char(*s))
            s++;
        size_t key_len = (size_t)(s - key);
        if (*s != '=' || s[1] != ':')
            return sm_error_set(err, SM_ERR_FORMAT,
                                "digest field: write the digest as sha-256=:BASE64:");
        s += 2;
        const char *end = strchr(s, ':');
        if (end == NULL)
            return sm_error_set(err, SM_ERR_FORMAT, "digest field: unterminated :BASE64: value");
        if (key_len == 7 && strncmp(key, "sha-256", 7) == 0) {
            uint8_t buf[SM_SHA256_SIZE + 3];
            size_t n = 0;
            if (found)
                return sm_error_set(err, SM_ERR_FORMAT, "digest field: sha-256 given twice");
            if (!b64_decode(s, (size_t)(end - s), buf, sizeof(buf), &n) || n != SM_SHA256_SIZE)
                return sm_error_set(err, SM_ERR_FORMAT,
                                    "digest field: the sha-256 value must be 32 bytes in "
                                    "standard base64");
            memcpy(out, buf, SM_SHA256_SIZE);
            found = 1;
        }
        s = skip_params(end + 1);
        if (s == NULL)
            return sm_error_set(err, SM_ERR_FORMAT, "digest field: malformed parameters");
        s = skip_ows(s);
        if (*s == ',') {
            s = skip_ows(s + 1);
            if (*s == '\0')
                return sm_error_set(err, SM_ERR_FORMAT, "digest field: trailing comma");
        } else if (*s != '\0') {
            return sm_error_set(err, SM_ERR_FORMAT, "digest field: members must be separated "
                                                    "by commas");
        }
    }
    if (!found)
        return sm_error_set(err, SM_ERR_NOT_FOUND, "digest field has no sha-256 member");
    return SM_OK;
}

/* --- ranges ------------------------------------------------------------------ */

static int parse_u64(const char **sp, uint64_t *out)
{
    const char *s = *sp;
    if (*s < '0' || *s > '9')
        return 0;
    uint64_t v = 0;
    for (; *s >= '0' && *s <= '9'; s++) {
        unsigned d = (unsigned)(*s - '0');
        v = v > (UINT64_MAX - d) / 10 ? UINT64_MAX : v * 10 + d;
    }
    *out = v;
    *sp = s;
    return 1;
}

int sm_range_includes_last_byte(const char *range, uint64_t size)
{
    if (range == NULL || size == 0)
        return 0;
    const char *s = skip_ows(range);
    if (strncmp(s, "bytes=", 6) != 0)
        return 0;
    s += 6;
    for (;;) {
        s = skip_ows(s);
        uint64_t first = 0, last = UINT64_MAX;
        if (*s == '-') { /* suffix range: the last N bytes */
            s++;
            uint64_t n;
            if (!parse_u64(&s, &n))
                return 0;
            if (n > 0)
                return 1;
        } else {
            if (!parse_u64(&s, &first) || *s != '-')
                return 0;
            s++;
            if (*s >= '0' && *s <= '9' && !parse_u64(&s, &last))
                return 0;
            if (first < size && last >= size - 1)
                return 1;
        }
        s = skip_ows(s);
        if (*s != ',')
            return 0;
        s++;
    }
}

int sm_range_unsatisfiable(const char *range, uint64_t size)
{
    if (range == NULL)
        return 0;
    const char *s = skip_ows(range);
    if (strncmp(s, "bytes=", 6) != 0)
        return 0;
    s += 6;
    for (;;) {
        s = skip_ows(s);
        uint64_t first, last = UINT64_MAX;
        if (*s == '-') {
            s++;
            if (!parse_u64(&s, &first))
                return 0;
            if (first > 0 && size > 0)
                return 0; /* a non-empty suffix always overlaps */
        } else {
            if (!parse_u64(&s, &first) || *s != '-')
                return 0;
            s++;
            if (*s >= '0' && *s <= '9' && (!parse_u64(&s, &last) || last < first))
                return 0;
            if (first < size)
                return 0;
        }
        s = skip_ows(s);
        if (*s == '\0')
            return 1;
        if (*s != ',')
            return 0;
        s++;
    }
}
