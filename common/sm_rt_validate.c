#include "config.h"

/* Retail input rules (sm_rt_validate.h). */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sm_rt_validate.h"
#include "sm_validate.h"

sm_status sm_rt_email_normalize(const char *in, char out[SM_RT_EMAIL_MAX + 1], sm_error *err)
{
    size_t len = strlen(in);
    const char *at = strchr(in, '@');
    if (len == 0 || len > SM_RT_EMAIL_MAX)
        return sm_error_set(err, SM_ERR_FORMAT, "field \"email\": 1 to %u bytes",
                            SM_RT_EMAIL_MAX);
    if (at == NULL || at == in || strchr(at + 1, '@') != NULL || at[1] == '\0')
        return sm_error_set(err, SM_ERR_FORMAT,
                            "field \"email\": not an address of the form local@domain");
    const char *dot = strchr(at + 1, '.');
    if (dot == NULL || dot == at + 1 || dot[1] == '\0' || in[len - 1] == '.')
        return sm_error_set(err, SM_ERR_FORMAT,
                            "field \"email\": the domain needs a dot, e.g. local@example.org");
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c <= 0x20 || c >= 0x7f || strchr("\"<>(),;:\\[]", c) != NULL)
            return sm_error_set(err, SM_ERR_FORMAT,
                                "field \"email\": only printable ASCII without spaces, quotes, "
                                "brackets, commas, colons, semicolons or backslashes");
        out[i] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : (char)c;
    }
    out[len] = '\0';
    return SM_OK;
}

sm_status sm_rt_password_check(const char *pw, size_t len, sm_error *err)
{
    if (len < SM_RT_PASSWORD_MIN || len > SM_RT_PASSWORD_MAX)
        return sm_error_set(err, SM_ERR_FORMAT, "field \"password\": %u to %u bytes",
                            SM_RT_PASSWORD_MIN, SM_RT_PASSWORD_MAX);
    if (memchr(pw, '\0', len) != NULL)
        return sm_error_set(err, SM_ERR_FORMAT, "field \"password\": no NUL characters");
    sm_error e = {0};
    if (sm_validate_text(pw, SM_RT_PASSWORD_MAX, "password", &e) != SM_OK)
        return sm_error_set(err, SM_ERR_FORMAT,
                            "field \"password\": well-formed UTF-8 without control characters");
    return SM_OK;
}

sm_status sm_rt_idempotency_key_check(const char *key, sm_error *err)
{
    size_t len = key != NULL ? strlen(key) : 0;
    if (len == 0 || len > SM_RT_IDEMPOTENCY_KEY_MAX)
        return sm_error_set(err, SM_ERR_FORMAT,
                            "the Idempotency-Key header is required: 1 to %u characters of "
                            "A-Z a-z 0-9 . _ ~ : -, new for every order",
                            SM_RT_IDEMPOTENCY_KEY_MAX);
    for (size_t i = 0; i < len; i++) {
        char c = key[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '~' || c == ':' || c == '-'))
            return sm_error_set(err, SM_ERR_FORMAT,
                                "the Idempotency-Key header may only hold A-Z a-z 0-9 . _ ~ : -");
    }
    return SM_OK;
}

int sm_rt_jkt_syntax_ok(const char *jkt)
{
    if (jkt == NULL || strlen(jkt) != 43)
        return 0;
    for (const char *p = jkt; *p; p++)
        if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
              *p == '-' || *p == '_'))
            return 0;
    return 1;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int sm_rt_query_param(const char *query, const char *name, char *out, size_t size)
{
    int found = 0;
    size_t nlen = strlen(name);
    const char *p = query;
    while (p != NULL && *p != '\0') {
        size_t plen = strcspn(p, "&");
        if (plen > nlen && strncmp(p, name, nlen) == 0 && p[nlen] == '=') {
            if (found)
                return -1;
            found = 1;
            size_t o = 0;
            for (size_t i = nlen + 1; i < plen; i++) {
                char c = p[i];
                if (c == '+') {
                    c = ' ';
                } else if (c == '%') {
                    int hi = i + 2 < plen ? hexval(p[i + 1]) : -1;
                    int lo = hi >= 0 ? hexval(p[i + 2]) : -1;
                    if (hi < 0 || lo < 0)
                        return -1;
                    c = (char)(hi * 16 + lo);
                    i += 2;
                    if (c == '\0')
                        return -1;
                }
                if (o + 1 >= size)
                    return -1;
                out[o++] = c;
            }
            out[o] = '\0';
        } else if (plen == nlen && strncmp(p, name, nlen) == 0) {
            if (found || size == 0)
                return -1;
            found = 1;
            out[0] = '\0';
        }
        p += plen;
        if (*p == '&')
            p++;
    }
    return found;
}

static sm_status number_param(const char *query, const char *name, unsigned min, unsigned max,
                              unsigned *out, sm_error *err)
{
    char buf[16];
    int f = sm_rt_query_param(query, name, buf, sizeof(buf));
    if (f == 0)
        return SM_OK;
    unsigned v = 0;
    int ok = f == 1 && buf[0] != '\0' && !(buf[0] == '0' && buf[1] != '\0');
    for (const char *c = buf; ok && *c; c++) {
        if (*c < '0' || *c > '9' || v > (max - (unsigned)(*c - '0')) / 10)
            ok = 0;
        else
            v = v * 10 + (unsigned)(*c - '0');
    }
    if (!ok || v < min || v > max)
        return sm_error_set(err, SM_ERR_FORMAT, "query parameter \"%s\": a number from %u to %u",
                            name, min, max);
    *out = v;
    return SM_OK;
}

sm_status sm_rt_paging(const char *query, unsigned *limit, unsigned *offset, sm_error *err)
{
    *limit = SM_RT_PAGE_DEFAULT;
    *offset = 0;
    sm_status st = number_param(query, "limit", 1, SM_RT_PAGE_MAX, limit, err);
    if (st == SM_OK)
        st = number_param(query, "offset", 0, SM_RT_OFFSET_MAX, offset, err);
    return st;
}

#define FT_MAX_WORDS 10u
#define FT_WORD_MAX 64u

sm_status sm_rt_fulltext_expr(const char *q, char *out, size_t size, unsigned *words,
                              sm_error *err)
{
    *words = 0;
    if (size == 0)
        return sm_error_set(err, SM_ERR_ARG, "no room for the search expression");
    out[0] = '\0';
    size_t qlen = strlen(q);
    if (qlen > SM_RT_SEARCH_MAX)
        return sm_error_set(err, SM_ERR_FORMAT, "query parameter \"q\": at most %u bytes",
                            SM_RT_SEARCH_MAX);
    sm_error e = {0};
    if (sm_validate_text(q, SM_RT_SEARCH_MAX, "q", &e) != SM_OK)
        return sm_error_set(err, SM_ERR_FORMAT,
                            "query parameter \"q\": well-formed UTF-8 without control characters");
    size_t o = 0;
    const unsigned char *p = (const unsigned char *)q;
    while (*p) {
        /* Letters and digits of any script (UTF-8 bytes >= 0x80 stay in
         * a word); everything else, including + - < > ( ) ~ * " @,
         * separates words. */
        while (*p && !((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
                       (*p >= '0' && *p <= '9') || *p >= 0x80))
            p++;
        const unsigned char *start = p;
        while ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
               *p >= 0x80)
            p++;
        size_t wlen = (size_t)(p - start);
        if (wlen == 0)
            continue;
        if (wlen > FT_WORD_MAX)
            return sm_error_set(err, SM_ERR_FORMAT, "query parameter \"q\": words of at most %u bytes",
                                FT_WORD_MAX);
        if (*words == FT_MAX_WORDS)
            return sm_error_set(err, SM_ERR_FORMAT, "query parameter \"q\": at most %u words",
                                FT_MAX_WORDS);
        if (o + wlen + 4 >= size)
            return sm_error_set(err, SM_ERR_TOO_LARGE, "search expression too long");
        if (o > 0)
            out[o++] = ' ';
        out[o++] = '+';
        memcpy(out + o, start, wlen);
        o += wlen;
        out[o++] = '*';
        out[o] = '\0';
        (*words)++;
    }
    return SM_OK;
}
