#include "config.h"

/* Strict base64url (RFC 4648 section 5, no padding). cjose's decoder is
 * lenient and asserts on some malformed input, so every decode in secmedia
 * goes through here: the input is checked to be canonical before cjose
 * sees it, and decoded bytes are wiped from cjose's buffer. */

#include <string.h>

#include <cjose/base64.h>
#include <cjose/util.h>

#include "sm_b64.h"
#include "sm_secmem.h"

static int b64url_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '-') return 62;
    if (c == '_') return 63;
    return -1;
}

int sm_b64url_canonical(const char *s, size_t len)
{
    if (len % 4 == 1)
        return 0;
    for (size_t i = 0; i < len; i++) {
        if (b64url_value((unsigned char)s[i]) < 0)
            return 0;
    }
    if (len % 4 == 2)
        return (b64url_value((unsigned char)s[len - 1]) & 0x0f) == 0;
    if (len % 4 == 3)
        return (b64url_value((unsigned char)s[len - 1]) & 0x03) == 0;
    return 1;
}

sm_status sm_b64url_decode(const char *s, size_t len, uint8_t *dst, size_t cap, size_t *out_len,
                            const char *what, sm_error *err)
{
    if (!sm_b64url_canonical(s, len))
        return sm_error_set(err, SM_ERR_FORMAT, "%s: not canonical unpadded base64url", what);
    size_t need = len / 4 * 3 + (len % 4 == 0 ? 0 : len % 4 - 1);
    if (need > cap)
        return sm_error_set(err, SM_ERR_FORMAT, "%s: decodes to %zu bytes, at most %zu allowed",
                            what, need, cap);
    if (len == 0) {
        *out_len = 0;
        return SM_OK;
    }
    cjose_err cerr;
    uint8_t *buf = NULL;
    size_t n = 0;
    if (!cjose_base64url_decode(s, len, &buf, &n, &cerr) || buf == NULL)
        return sm_error_set(err, SM_ERR_FORMAT, "%s: cannot decode base64url: %s", what,
                            cerr.message);
    if (n != need) {
        sm_wipe(buf, n);
        cjose_get_dealloc()(buf);
        return sm_error_set(err, SM_ERR_CRYPTO, "%s: base64url decoder returned %zu bytes, not %zu",
                            what, n, need);
    }
    memcpy(dst, buf, n);
    sm_wipe(buf, n);
    cjose_get_dealloc()(buf);
    *out_len = n;
    return SM_OK;
}

sm_status sm_b64url_encode(const uint8_t *src, size_t len, char *dst, size_t dst_size,
                            sm_error *err)
{
    cjose_err cerr;
    char *out = NULL;
    size_t n = 0;
    if (!cjose_base64url_encode(src, len, &out, &n, &cerr) || out == NULL)
        return sm_error_set(err, SM_ERR_CRYPTO, "base64url: cannot encode: %s", cerr.message);
    sm_status st = SM_OK;
    if (n + 1 > dst_size)
        st = sm_error_set(err, SM_ERR_ARG, "base64url: output buffer too small");
    else
        memcpy(dst, out, n + 1);
    sm_wipe(out, n);
    cjose_get_dealloc()(out);
    return st;
}

