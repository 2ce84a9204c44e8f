#include "config.h"

#include <stdint.h>
#include <string.h>

#include "sm_validate.h"

static int is_alnum(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

sm_status sm_validate_work_id(const char *s, const char *what, sm_error *err)
{
    size_t n = strlen(s);
    if (n == 0 || n > 64)
        return sm_error_set(err, SM_ERR_FORMAT, "%s: a work id has 1 to 64 characters", what);
    if (!is_alnum((unsigned char)s[0]))
        return sm_error_set(err, SM_ERR_FORMAT,
                            "%s: a work id must start with a letter or digit", what);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!is_alnum(c) && c != '.' && c != '_' && c != '-')
            return sm_error_set(err, SM_ERR_FORMAT,
                                "%s: a work id may contain only letters, digits, '.', '_' and '-'",
                                what);
    }
    return SM_OK;
}

/* RFC 6838 restricted-name: first char alnum, then alnum or !#$&-^_.+ */
static size_t restricted_name_len(const char *s)
{
    size_t i = 0;
    if (!is_alnum((unsigned char)s[0]))
        return 0;
    for (i = 1; s[i] != '\0' && i < 127; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!is_alnum(c) && strchr("!#$&-^_.+", c) == NULL)
            break;
    }
    return i;
}

sm_status sm_validate_media_type(const char *s, const char *what, sm_error *err)
{
    size_t n = strlen(s);
    if (n == 0 || n > 127)
        return sm_error_set(err, SM_ERR_FORMAT, "%s: a media type has 3 to 127 characters", what);
    size_t t = restricted_name_len(s);
    if (t == 0 || s[t] != '/')
        return sm_error_set(err, SM_ERR_FORMAT,
                            "%s: \"%.40s\" is not a media type of the form type/subtype", what, s);
    size_t st = restricted_name_len(s + t + 1);
    if (st == 0 || s[t + 1 + st] != '\0')
        return sm_error_set(err, SM_ERR_FORMAT,
                            "%s: \"%.40s\" is not a media type of the form type/subtype", what, s);
    return SM_OK;
}

/* Length of the UTF-8 sequence at p (1..4), or 0 when it is malformed,
 * overlong, a surrogate or above U+10FFFF. */
static size_t utf8_seq_len(const unsigned char *p)
{
    unsigned char c = p[0];
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        return (p[1] & 0xc0) == 0x80 ? 2 : 0;
    if (c >= 0xe0 && c <= 0xef) {
        if ((p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80)
            return 0;
        if (c == 0xe0 && p[1] < 0xa0)
            return 0; /* overlong */
        if (c == 0xed && p[1] >= 0xa0)
            return 0; /* surrogate */
        return 3;
    }
    if (c >= 0xf0 && c <= 0xf4) {
        if ((p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80 || (p[3] & 0xc0) != 0x80)
            return 0;
        if (c == 0xf0 && p[1] < 0x90)
            return 0; /* overlong */
        if (c == 0xf4 && p[1] >= 0x90)
            return 0; /* above U+10FFFF */
        return 4;
    }
    return 0;
}

sm_status sm_validate_text(const char *s, size_t max_len, const char *what, sm_error *err)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strlen(s);
    if (n > max_len)
        return sm_error_set(err, SM_ERR_FORMAT, "%s: longer than %zu bytes", what, max_len);
    for (size_t i = 0; i < n;) {
        if (p[i] < 0x20 || p[i] == 0x7f)
            return sm_error_set(err, SM_ERR_FORMAT, "%s: contains a control character", what);
        size_t l = utf8_seq_len(p + i);
        if (l == 0)
            return sm_error_set(err, SM_ERR_FORMAT, "%s: is not valid UTF-8", what);
        i += l;
    }
    return SM_OK;
}

sm_status sm_validate_file_name(const char *s, size_t max_len, const char *what, sm_error *err)
{
    sm_status st = sm_validate_text(s, max_len, what, err);
    if (st != SM_OK)
        return st;
    if (s[0] == '\0' || strcmp(s, ".") == 0 || strcmp(s, "..") == 0 || strchr(s, '/') != NULL ||
        strchr(s, '\\') != NULL)
        return sm_error_set(err, SM_ERR_FORMAT,
                            "%s: must be a plain file name (no '/', '\\', \".\" or \"..\")", what);
    return SM_OK;
}

sm_status sm_validate_url(const char *s, int allow_insecure, const char *what, sm_error *err)
{
    size_t n = strlen(s);
    const char *rest;
    if (n > 2048)
        return sm_error_set(err, SM_ERR_FORMAT, "%s: URL longer than 2048 bytes", what);
    if (strncmp(s, "https://", 8) == 0) {
        rest = s + 8;
    } else if (strncmp(s, "http://", 7) == 0) {
        if (!allow_insecure)
            return sm_error_set(err, SM_ERR_FORMAT,
                                "%s: only https:// URLs are accepted (got \"%.60s\")", what, s);
        rest = s + 7;
    } else {
        return sm_error_set(err, SM_ERR_FORMAT, "%s: \"%.60s\" is not an https:// URL", what, s);
    }
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p <= 0x20 || *p >= 0x7f || *p == '"' || *p == '<' || *p == '>' || *p == '\\' ||
            *p == '`' || *p == '{' || *p == '}' || *p == '|' || *p == '^')
            return sm_error_set(err, SM_ERR_FORMAT,
                                "%s: URL contains a character that must be percent-encoded", what);
        if (*p == '#')
            return sm_error_set(err, SM_ERR_FORMAT, "%s: URL must not have a #fragment", what);
    }
    size_t host_len = strcspn(rest, "/?");
    if (memchr(rest, '@', host_len) != NULL)
        return sm_error_set(err, SM_ERR_FORMAT, "%s: URL must not carry user:password@", what);
    if (host_len == 0 || rest[0] == ':')
        return sm_error_set(err, SM_ERR_FORMAT, "%s: URL has no host", what);
    return SM_OK;
}
