#include "config.h"

/* Password hashing with scrypt (OpenSSL 3 EVP_KDF), tokens and codes
 * (sm_rt_auth.h). scrypt is memory-hard and ships with the OpenSSL the
 * project already links: no extra dependency (docs/DEPENDENCIES.md). */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include "sm_b64.h"
#include "sm_rt_auth.h"

#define SALT_LEN 16u
#define DK_LEN 32u
#define SCRYPT_R 8u
#define SCRYPT_P 1u

static sm_status scrypt_derive(const char *password, size_t len, const uint8_t *salt,
                               size_t salt_len, unsigned ln, unsigned r, unsigned p,
                               uint8_t *out, size_t out_len, sm_error *err)
{
    EVP_KDF *kdf = EVP_KDF_fetch(NULL, "SCRYPT", NULL);
    EVP_KDF_CTX *kctx = kdf != NULL ? EVP_KDF_CTX_new(kdf) : NULL;
    EVP_KDF_free(kdf);
    if (kctx == NULL)
        return sm_error_set(err, SM_ERR_CRYPTO, "scrypt is not available in this OpenSSL");
    uint64_t n = (uint64_t)1 << ln;
    uint32_t rr = r, pp = p;
    /* Room for the largest cost we accept (2^20 * 128 * 8 = 1 GiB). */
    uint64_t maxmem = (uint64_t)1 << 31;
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_PASSWORD, (void *)password, len),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)salt, salt_len),
        OSSL_PARAM_construct_uint64(OSSL_KDF_PARAM_SCRYPT_N, &n),
        OSSL_PARAM_construct_uint32(OSSL_KDF_PARAM_SCRYPT_R, &rr),
        OSSL_PARAM_construct_uint32(OSSL_KDF_PARAM_SCRYPT_P, &pp),
        OSSL_PARAM_construct_uint64(OSSL_KDF_PARAM_SCRYPT_MAXMEM, &maxmem),
        OSSL_PARAM_construct_end(),
    };
    int ok = EVP_KDF_derive(kctx, out, out_len, params) == 1;
    EVP_KDF_CTX_free(kctx);
    if (!ok)
        return sm_error_set(err, SM_ERR_CRYPTO, "scrypt failed (out of memory?)");
    return SM_OK;
}

sm_status sm_rt_password_hash(const char *password, size_t len, unsigned ln,
                              char out[SM_RT_PASSWORD_HASH_MAX], sm_error *err)
{
    if (ln < SM_RT_SCRYPT_LN_MIN || ln > SM_RT_SCRYPT_LN_MAX)
        return sm_error_set(err, SM_ERR_ARG, "scrypt cost 2^%u is not 2^%u..2^%u", ln,
                            SM_RT_SCRYPT_LN_MIN, SM_RT_SCRYPT_LN_MAX);
    uint8_t salt[SALT_LEN], dk[DK_LEN];
    if (RAND_bytes(salt, sizeof(salt)) != 1)
        return sm_error_set(err, SM_ERR_CRYPTO, "no random bytes");
    sm_status st = scrypt_derive(password, len, salt, sizeof(salt), ln, SCRYPT_R, SCRYPT_P, dk,
                                 sizeof(dk), err);
    if (st != SM_OK)
        return st;
    char s64[32], d64[48];
    if ((st = sm_b64url_encode(salt, sizeof(salt), s64, sizeof(s64), err)) == SM_OK &&
        (st = sm_b64url_encode(dk, sizeof(dk), d64, sizeof(d64), err)) == SM_OK)
        snprintf(out, SM_RT_PASSWORD_HASH_MAX, "$scrypt$ln=%u,r=%u,p=%u$%s$%s", ln, SCRYPT_R,
                 SCRYPT_P, s64, d64);
    OPENSSL_cleanse(dk, sizeof(dk));
    return st;
}

/* Reads a small decimal number; advances *p. */
static int read_small_uint(const char **p, unsigned max, unsigned *out)
{
    const char *s = *p;
    unsigned v = 0;
    if (*s < '0' || *s > '9' || (s[0] == '0' && s[1] >= '0' && s[1] <= '9'))
        return 0;
    while (*s >= '0' && *s <= '9') {
        v = v * 10 + (unsigned)(*s - '0');
        if (v > max)
            return 0;
        s++;
    }
    *p = s;
    *out = v;
    return 1;
}

static int expect_literal(const char **p, const char *lit)
{
    size_t n = strlen(lit);
    if (strncmp(*p, lit, n) != 0)
        return 0;
    *p += n;
    return 1;
}

sm_status sm_rt_password_verify(const char *password, size_t len, const char *stored, int *ok,
                                sm_error *err)
{
    *ok = 0;
    const char *p = stored;
    unsigned ln = 0, r = 0, par = 0;
    if (!expect_literal(&p, "$scrypt$ln=") || !read_small_uint(&p, SM_RT_SCRYPT_LN_MAX, &ln) ||
        ln < SM_RT_SCRYPT_LN_MIN || !expect_literal(&p, ",r=") || !read_small_uint(&p, 32, &r) ||
        r == 0 || !expect_literal(&p, ",p=") || !read_small_uint(&p, 16, &par) || par == 0 ||
        !expect_literal(&p, "$"))
        return sm_error_set(err, SM_ERR_FORMAT, "stored password hash has an unknown form");
    const char *dollar = strchr(p, '$');
    if (dollar == NULL)
        return sm_error_set(err, SM_ERR_FORMAT, "stored password hash has no digest");
    uint8_t salt[SALT_LEN], want[DK_LEN], got[DK_LEN];
    size_t salt_len = 0, want_len = 0;
    sm_status st = sm_b64url_decode(p, (size_t)(dollar - p), salt, sizeof(salt), &salt_len, "salt", err);
    if (st == SM_OK)
        st = sm_b64url_decode(dollar + 1, strlen(dollar + 1), want, sizeof(want), &want_len,
                              "digest", err);
    if (st != SM_OK || salt_len != SALT_LEN || want_len != DK_LEN)
        return sm_error_set(err, SM_ERR_FORMAT, "stored password hash is malformed");
    st = scrypt_derive(password, len, salt, salt_len, ln, r, par, got, sizeof(got), err);
    if (st == SM_OK)
        *ok = CRYPTO_memcmp(got, want, DK_LEN) == 0;
    OPENSSL_cleanse(got, sizeof(got));
    return st;
}

sm_status sm_rt_token_new(char out[SM_RT_TOKEN_SIZE], sm_error *err)
{
    uint8_t raw[32];
    if (RAND_bytes(raw, sizeof(raw)) != 1)
        return sm_error_set(err, SM_ERR_CRYPTO, "no random bytes");
    memcpy(out, "smrt_", 5);
    sm_status st = sm_b64url_encode(raw, sizeof(raw), out + 5, SM_RT_TOKEN_SIZE - 5, err);
    OPENSSL_cleanse(raw, sizeof(raw));
    return st;
}

int sm_rt_token_syntax_ok(const char *s)
{
    if (s == NULL || strncmp(s, "smrt_", 5) != 0 || strlen(s) != SM_RT_TOKEN_SIZE - 1)
        return 0;
    for (const char *p = s + 5; *p; p++)
        if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
              *p == '-' || *p == '_'))
            return 0;
    return 1;
}

static const char crockford[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/* n characters of alphabet (32 symbols) from random bytes. */
static sm_status random_base32(char *out, size_t n, const char *alphabet, sm_error *err)
{
    uint8_t raw[32];
    if (n > sizeof(raw) || RAND_bytes(raw, (int)n) != 1)
        return sm_error_set(err, SM_ERR_CRYPTO, "no random bytes");
    for (size_t i = 0; i < n; i++)
        out[i] = alphabet[raw[i] & 31u];
    OPENSSL_cleanse(raw, sizeof(raw));
    return SM_OK;
}

sm_status sm_rt_code_new(char out[SM_RT_CODE_SIZE], sm_error *err)
{
    char raw[20];
    sm_status st = random_base32(raw, sizeof(raw), crockford, err);
    if (st != SM_OK)
        return st;
    size_t o = 0;
    for (size_t i = 0; i < 20; i++) {
        if (i > 0 && i % 5 == 0)
            out[o++] = '-';
        out[o++] = raw[i];
    }
    out[o] = '\0';
    OPENSSL_cleanse(raw, sizeof(raw));
    return SM_OK;
}

sm_status sm_rt_code_normalize(const char *in, char out[21], sm_error *err)
{
    size_t n = 0;
    for (const char *p = in; *p; p++) {
        char c = *p;
        if (c == '-' || c == ' ')
            continue;
        if (c >= 'a' && c <= 'z')
            c = (char)(c - 'a' + 'A');
        if (c == 'O')
            c = '0';
        else if (c == 'I' || c == 'L')
            c = '1';
        if (strchr(crockford, c) == NULL || c == '\0' || n == 20)
            return sm_error_set(err, SM_ERR_FORMAT,
                                "a code is 20 letters and digits (dashes optional)");
        out[n++] = c;
    }
    if (n != 20)
        return sm_error_set(err, SM_ERR_FORMAT, "a code is 20 letters and digits (dashes optional)");
    out[n] = '\0';
    return SM_OK;
}

static const char lower32[] = "0123456789abcdefghjkmnpqrstvwxyz";

sm_status sm_rt_order_id_new(char out[SM_RT_ORDER_ID_SIZE], sm_error *err)
{
    sm_status st = random_base32(out, SM_RT_ORDER_ID_SIZE - 1, lower32, err);
    out[SM_RT_ORDER_ID_SIZE - 1] = '\0';
    return st;
}

int sm_rt_order_id_syntax_ok(const char *s)
{
    if (s == NULL || strlen(s) != SM_RT_ORDER_ID_SIZE - 1)
        return 0;
    for (const char *p = s; *p; p++)
        if (strchr(lower32, *p) == NULL)
            return 0;
    return 1;
}

void sm_rt_sha256(const void *data, size_t len, uint8_t out[32])
{
    unsigned int n = 0;
    EVP_Digest(data, len, out, &n, EVP_sha256(), NULL);
}
