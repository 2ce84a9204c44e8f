/* Retail input rules that need no database: e-mail addresses, passwords,
 * idempotency keys, device thumbprints, query strings and the full-text
 * search expression. */
#ifndef SM_RT_VALIDATE_H
#define SM_RT_VALIDATE_H

#include <stddef.h>
#include <stdint.h>

#include "sm_error.h"

#define SM_RT_EMAIL_MAX 254u
#define SM_RT_PASSWORD_MIN 10u
#define SM_RT_PASSWORD_MAX 1024u
#define SM_RT_NAME_MAX 200u
#define SM_RT_IDEMPOTENCY_KEY_MAX 128u
#define SM_RT_SEARCH_MAX 200u
#define SM_RT_PAGE_MAX 100u
#define SM_RT_PAGE_DEFAULT 20u
#define SM_RT_OFFSET_MAX 1000000u

/* An address local@domain of printable ASCII (no spaces, quotes, angle
 * brackets, commas, semicolons or backslashes), one '@', a domain with a
 * dot, at most 254 bytes. out (254 + 1 bytes) gets it lower-cased. */
sm_status sm_rt_email_normalize(const char *in, char out[SM_RT_EMAIL_MAX + 1], sm_error *err);

/* 10..1024 bytes of UTF-8 without control characters. */
sm_status sm_rt_password_check(const char *pw, size_t len, sm_error *err);

/* 1..128 of [A-Za-z0-9._~:-]. */
sm_status sm_rt_idempotency_key_check(const char *key, sm_error *err);

/* 43 characters of base64url (an RFC 7638 SHA-256 thumbprint). */
int sm_rt_jkt_syntax_ok(const char *jkt);

/* Finds name in an application/x-www-form-urlencoded query string (may be
 * NULL) and percent-decodes its value into out ('+' is a space). Returns 1
 * found, 0 absent, -1 malformed, too long, given twice or decoding to a
 * NUL byte. */
int sm_rt_query_param(const char *query, const char *name, char *out, size_t size);

/* limit (1..100, default 20) and offset (0..1000000, default 0) from a
 * query string; SM_ERR_FORMAT naming the parameter otherwise. */
sm_status sm_rt_paging(const char *query, unsigned *limit, unsigned *offset, sm_error *err);

/* Turns what a shopper typed into a MariaDB boolean-mode full-text
 * expression: every word (letters and digits; other bytes separate words,
 * so no operator of the boolean syntax survives) becomes "+word*". At most
 * 10 words, each at most 64 bytes. *words gets the count (0: list all). */
sm_status sm_rt_fulltext_expr(const char *q, char *out, size_t size, unsigned *words,
                              sm_error *err);

#endif
