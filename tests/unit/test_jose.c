#include "config.h"

/* Unit tests for the JOSE helpers (common/sm_jose.h): JWK import/export,
 * thumbprints, key files, JWKS, ES256 JWS, the media-key JWE, DPoP proofs,
 * and invalid P-256 public keys from Wycheproof's ECDH vectors.
 *
 * Forged tokens are built here by hand (base64url + OpenSSL HMAC) or, when
 * they must carry a valid signature over an unusual header, with the
 * library's internal ES256 signer. */

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <check.h>
#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/obj_mac.h>
#include <openssl/x509.h>

#include "sm_jose.h"
#include "sm_jose_int.h"
#include "sm_test.h"

#define NOW 1700000000
#define ISS "https://ks.example"
#define AUD "store-1"
#define TYP "voucher+jwt"
#define HTU "https://ks.example/v1/license"

/* RFC 7515 A.3's P-256 public key. */
#define FIXED_X "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU"
#define FIXED_Y "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"
/* The same thumbprint as computed by jwcrypto. */
#define FIXED_JKT "oKIywvGUpTVTyxMQ3bwIIeQUudfr_CkLMjCE19ECD-U"

/* ---- helpers ----------------------------------------------------------- */

static void assert_clean_message(const sm_error *err)
{
    ck_assert_msg(err->message[0] != '\0', "empty error message");
    for (const char *p = err->message; *p != '\0'; p++)
        ck_assert_msg((unsigned char)*p >= 0x20 && *p != 0x7f, "control byte in message: %s",
                      err->message);
    /* Messages never quote tokens (every JOSE header starts with eyJ). */
    ck_assert_msg(strstr(err->message, "eyJ") == NULL, "token in message: %s", err->message);
}

static char *b64u(const void *data, size_t len)
{
    char *out = malloc(len / 3 * 4 + 8);
    ck_assert_ptr_nonnull(out);
    int n = EVP_EncodeBlock((unsigned char *)out, data, (int)len);
    ck_assert_int_ge(n, 0);
    for (int i = 0; i < n; i++) {
        if (out[i] == '+') out[i] = '-';
        if (out[i] == '/') out[i] = '_';
    }
    while (n > 0 && out[n - 1] == '=')
        n--;
    out[n] = '\0';
    return out;
}

static char *b64u_str(const char *s)
{
    return b64u(s, strlen(s));
}

/* Decodes a base64url segment (test side, via OpenSSL). */
static uint8_t *unb64u(const char *s, size_t n, size_t *out_len)
{
    char *tmp = malloc(n + 4);
    ck_assert_ptr_nonnull(tmp);
    memcpy(tmp, s, n);
    for (size_t i = 0; i < n; i++) {
        if (tmp[i] == '-') tmp[i] = '+';
        if (tmp[i] == '_') tmp[i] = '/';
    }
    size_t pad = (4 - n % 4) % 4;
    for (size_t i = 0; i < pad; i++)
        tmp[n + i] = '=';
    uint8_t *out = malloc(n + 4);
    ck_assert_ptr_nonnull(out);
    int m = EVP_DecodeBlock(out, (unsigned char *)tmp, (int)(n + pad));
    ck_assert_int_ge(m, 0);
    free(tmp);
    *out_len = (size_t)m - pad;
    return out;
}

static char *join3(const char *a, const char *b, const char *c)
{
    size_t n = strlen(a) + strlen(b) + strlen(c) + 3;
    char *out = malloc(n);
    ck_assert_ptr_nonnull(out);
    snprintf(out, n, "%s.%s.%s", a, b, c);
    return out;
}

/* Part i (0-based) of a compact token as a new string. */
static char *part(const char *compact, int i)
{
    const char *p = compact;
    for (int k = 0; k < i; k++) {
        p = strchr(p, '.');
        ck_assert_ptr_nonnull(p);
        p++;
    }
    size_t n = strcspn(p, ".");
    char *out = malloc(n + 1);
    ck_assert_ptr_nonnull(out);
    memcpy(out, p, n);
    out[n] = '\0';
    return out;
}

/* Replaces part i of a compact token. */
static char *replace_part(const char *compact, int i, const char *repl)
{
    size_t cap = strlen(compact) + strlen(repl) + 1;
    char *out = malloc(cap);
    ck_assert_ptr_nonnull(out);
    out[0] = '\0';
    size_t used = 0;
    const char *p = compact;
    for (int k = 0;; k++) {
        size_t n = strcspn(p, ".");
        const char *src = k == i ? repl : p;
        size_t sn = k == i ? strlen(repl) : n;
        memcpy(out + used, src, sn);
        used += sn;
        if (p[n] == '\0')
            break;
        out[used++] = '.';
        p += n + 1;
    }
    out[used] = '\0';
    return out;
}

/* Flips one bit of the decoded part i and re-encodes it. */
static char *flip_bit_in_part(const char *compact, int i, size_t byte)
{
    char *seg = part(compact, i);
    size_t n = 0;
    uint8_t *raw = unb64u(seg, strlen(seg), &n);
    ck_assert_uint_lt(byte, n);
    raw[byte] ^= 0x01;
    char *enc = b64u(raw, n);
    char *out = replace_part(compact, i, enc);
    free(enc);
    free(raw);
    free(seg);
    return out;
}

/* A decoded JSON part of a compact token. */
static json_t *json_part(const char *compact, int i)
{
    char *seg = part(compact, i);
    size_t n = 0;
    uint8_t *raw = unb64u(seg, strlen(seg), &n);
    json_t *j = json_loadb((const char *)raw, n, 0, NULL);
    ck_assert_ptr_nonnull(j);
    free(raw);
    free(seg);
    return j;
}

static char *with_json_part(const char *compact, int i, json_t *j)
{
    char *s = json_dumps(j, JSON_COMPACT);
    ck_assert_ptr_nonnull(s);
    char *enc = b64u_str(s);
    char *out = replace_part(compact, i, enc);
    free(enc);
    free(s);
    return out;
}

/* A validly ES256-signed token over any header and payload (via the
 * library's internal signer: cjose signs, nothing is checked). */
static char *forge_signed(const sm_jwk *key, const char *header, const char *payload)
{
    json_t *h = json_loads(header, 0, NULL), *p = json_loads(payload, 0, NULL);
    ck_assert_ptr_nonnull(h);
    ck_assert_ptr_nonnull(p);
    char *out = NULL;
    sm_error err = {0};
    ck_assert_int_eq(smj_es256_sign(key, h, p, &out, &err), SM_OK);
    json_decref(h);
    json_decref(p);
    return out;
}

/* An HS256 token whose HMAC key is the issuer's public JWK text: the classic
 * algorithm-confusion forgery. */
static char *forge_hs256(const sm_jwk *pub, const char *header, const char *payload)
{
    sm_error err = {0};
    char *secret = sm_jwk_to_json(pub, 0, &err);
    ck_assert_ptr_nonnull(secret);
    char *h = b64u_str(header), *p = b64u_str(payload);
    size_t n = strlen(h) + strlen(p) + 2;
    char *input = malloc(n);
    ck_assert_ptr_nonnull(input);
    snprintf(input, n, "%s.%s", h, p);
    unsigned char mac[32];
    unsigned int mlen = 0;
    ck_assert_ptr_nonnull(HMAC(EVP_sha256(), secret, (int)strlen(secret),
                               (const unsigned char *)input, strlen(input), mac, &mlen));
    char *s = b64u(mac, mlen);
    char *out = join3(h, p, s);
    free(s);
    free(input);
    free(h);
    free(p);
    sm_jwk_json_free(secret);
    return out;
}

static sm_jwk *new_key(void)
{
    sm_jwk *k = NULL;
    sm_error err = {0};
    ck_assert_int_eq(sm_jwk_generate(&k, &err), SM_OK);
    return k;
}

static sm_jwk *public_of(const sm_jwk *k)
{
    sm_jwk *p = NULL;
    sm_error err = {0};
    ck_assert_int_eq(sm_jwk_public_copy(k, &p, &err), SM_OK);
    return p;
}

static sm_status import(const char *json, sm_error *err)
{
    sm_jwk *k = NULL;
    sm_status st = sm_jwk_from_json(json, strlen(json), &k, err);
    if (st == SM_OK)
        ck_assert_ptr_nonnull(k);
    else
        ck_assert_ptr_null(k);
    sm_jwk_free(k);
    return st;
}

static char *jwk_json(const char *x, const char *y, const char *extra)
{
    char *buf = malloc(512);
    ck_assert_ptr_nonnull(buf);
    snprintf(buf, 512, "{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"%s\",\"y\":\"%s\"%s}", x, y,
             extra != NULL ? extra : "");
    return buf;
}

/* tmpl with every "@@" replaced by value (malloc'ed). */
static char *subst(const char *tmpl, const char *value)
{
    size_t cap = strlen(tmpl) + 4 * strlen(value) + 1, used = 0;
    char *out = malloc(cap);
    ck_assert_ptr_nonnull(out);
    for (const char *p = tmpl; *p != '\0';) {
        if (p[0] == '@' && p[1] == '@') {
            size_t n = strlen(value);
            ck_assert_uint_lt(used + n, cap);
            memcpy(out + used, value, n);
            used += n;
            p += 2;
        } else {
            ck_assert_uint_lt(used + 1, cap);
            out[used++] = *p++;
        }
    }
    out[used] = '\0';
    return out;
}

/* ---- JWK ------------------------------------------------------------- */

START_TEST(test_jwk_generate_round_trip)
{
    sm_error err = {0};
    sm_jwk *k = new_key();
    ck_assert(sm_jwk_has_private(k));
    char *priv = sm_jwk_to_json(k, 1, &err), *pub = sm_jwk_to_json(k, 0, &err);
    ck_assert_ptr_nonnull(priv);
    ck_assert_ptr_nonnull(pub);
    ck_assert_ptr_nonnull(strstr(priv, "\"d\":\""));
    ck_assert_ptr_null(strstr(pub, "\"d\""));

    sm_jwk *k2 = NULL, *p2 = NULL;
    ck_assert_int_eq(sm_jwk_from_json(priv, strlen(priv), &k2, &err), SM_OK);
    ck_assert_int_eq(sm_jwk_from_json(pub, strlen(pub), &p2, &err), SM_OK);
    ck_assert(sm_jwk_has_private(k2));
    ck_assert(!sm_jwk_has_private(p2));
    ck_assert(sm_jwk_same_public(k, k2));
    ck_assert(sm_jwk_same_public(k, p2));

    char t1[SM_JKT_SIZE], t2[SM_JKT_SIZE], t3[SM_JKT_SIZE];
    ck_assert_int_eq(sm_jwk_thumbprint(k, t1, &err), SM_OK);
    ck_assert_int_eq(sm_jwk_thumbprint(k2, t2, &err), SM_OK);
    ck_assert_int_eq(sm_jwk_thumbprint(p2, t3, &err), SM_OK);
    ck_assert_uint_eq(strlen(t1), 43);
    ck_assert_str_eq(t1, t2);
    ck_assert_str_eq(t1, t3);

    /* A second key differs. */
    sm_jwk *other = new_key();
    ck_assert(!sm_jwk_same_public(k, other));

    /* Exporting a private part from a public key is refused. */
    ck_assert_ptr_null(sm_jwk_to_json(p2, 1, &err));
    ck_assert_int_eq(err.status, SM_ERR_KEY);
    assert_clean_message(&err);

    /* kid survives a round trip and is validated. */
    ck_assert_int_eq(sm_jwk_set_kid(k, "dev-1", &err), SM_OK);
    char *withkid = sm_jwk_to_json(k, 0, &err);
    sm_jwk *k3 = NULL;
    ck_assert_int_eq(sm_jwk_from_json(withkid, strlen(withkid), &k3, &err), SM_OK);
    ck_assert_str_eq(sm_jwk_kid(k3), "dev-1");
    ck_assert_int_eq(sm_jwk_set_kid(k, "bad kid", &err), SM_ERR_FORMAT);
    ck_assert_int_eq(sm_jwk_set_kid(k, "", &err), SM_ERR_FORMAT);

    sm_jwk_json_free(withkid);
    sm_jwk_json_free(priv);
    sm_jwk_json_free(pub);
    sm_jwk_free(k);
    sm_jwk_free(k2);
    sm_jwk_free(k3);
    sm_jwk_free(p2);
    sm_jwk_free(other);
}
END_TEST

START_TEST(test_thumbprint_fixed)
{
    /* Independent computation: SHA-256 of the RFC 7638 canonical form. */
    const char *canon = "{\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":\"" FIXED_X "\",\"y\":\"" FIXED_Y
                        "\"}";
    unsigned char digest[32];
    unsigned int dlen = 0;
    ck_assert_int_eq(EVP_Digest(canon, strlen(canon), digest, &dlen, EVP_sha256(), NULL), 1);
    char *expected = b64u(digest, dlen);
    ck_assert_str_eq(expected, FIXED_JKT);

    /* Member order, kid, use and whitespace do not change it. */
    const char *inputs[] = {
        "{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"" FIXED_X "\",\"y\":\"" FIXED_Y "\"}",
        "{ \"y\" : \"" FIXED_Y "\", \"x\":\"" FIXED_X "\",\"kid\":\"k1\",\"use\":\"sig\","
        "\"crv\":\"P-256\",\"kty\":\"EC\" }\n",
    };
    for (size_t i = 0; i < sizeof(inputs) / sizeof(inputs[0]); i++) {
        sm_error err = {0};
        sm_jwk *k = NULL;
        char jkt[SM_JKT_SIZE];
        ck_assert_int_eq(sm_jwk_from_json(inputs[i], strlen(inputs[i]), &k, &err), SM_OK);
        ck_assert_int_eq(sm_jwk_thumbprint(k, jkt, &err), SM_OK);
        ck_assert_str_eq(jkt, expected);
        sm_jwk_free(k);
    }
    free(expected);
}
END_TEST

/* Each must be refused by sm_jwk_from_json. */
static const char *const bad_jwks[] = {
    "[]",
    "{}",
    "{\"kty\":\"RSA\",\"n\":\"AQAB\",\"e\":\"AQAB\"}",
    "{\"kty\":\"EC\",\"crv\":\"P-384\",\"x\":\"" FIXED_X "\",\"y\":\"" FIXED_Y "\"}",
    "{\"kty\":\"EC\",\"crv\":\"secp256k1\",\"x\":\"" FIXED_X "\",\"y\":\"" FIXED_Y "\"}",
    "{\"kty\":\"oct\",\"k\":\"AAAA\"}",
    "{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"" FIXED_X "\"}",
    "{\"kty\":\"EC\",\"crv\":\"P-256\",\"y\":\"" FIXED_Y "\"}",
    "{\"crv\":\"P-256\",\"x\":\"" FIXED_X "\",\"y\":\"" FIXED_Y "\"}",
    /* y of another point: not on the curve */
    "{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"" FIXED_X "\",\"y\":\"" FIXED_X "\"}",
    /* padding, short, long, non-canonical trailing bits, wrong alphabet */
    "{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"" FIXED_X "=\",\"y\":\"" FIXED_Y "\"}",
    "{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVE\","
    "\"y\":\"" FIXED_Y "\"}",
    "{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"AAf83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU\","
    "\"y\":\"" FIXED_Y "\"}",
    "{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEV\","
    "\"y\":\"" FIXED_Y "\"}",
    "{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVE+\","
    "\"y\":\"" FIXED_Y "\"}",
    /* x = p (not a field element), point at infinity as (0, 0) */
    "{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"_____wAAAAEAAAAAAAAAAAAAAAD___________________w\","
    "\"y\":\"" FIXED_Y "\"}",
    "{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\","
    "\"y\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"}",
    /* unknown member, duplicate member, wrong types */
    "{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"" FIXED_X "\",\"y\":\"" FIXED_Y "\",\"ext\":true}",
    "{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"" FIXED_X "\",\"y\":\"" FIXED_Y
    "\",\"x\":\"" FIXED_X "\"}",
    "{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":1,\"y\":\"" FIXED_Y "\"}",
    "{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"" FIXED_X "\",\"y\":\"" FIXED_Y "\",\"kid\":7}",
    "{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"" FIXED_X "\",\"y\":\"" FIXED_Y
    "\",\"kid\":\"a\\\"b\"}",
    "{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"" FIXED_X "\",\"y\":\"" FIXED_Y
    "\",\"use\":\"wrap\"}",
    "{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"" FIXED_X "\",\"y\":\"" FIXED_Y
    "\",\"alg\":\"RS256\"}",
    /* d that does not match x/y, d = 0, d = n, d too short */
    "{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"" FIXED_X "\",\"y\":\"" FIXED_Y
    "\",\"d\":\"AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE\"}",
    "{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"" FIXED_X "\",\"y\":\"" FIXED_Y
    "\",\"d\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"}",
    "{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"" FIXED_X "\",\"y\":\"" FIXED_Y
    "\",\"d\":\"_____wAAAAD__________7zm-q2nF56E87nKwvxjJVE\"}",
    "{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"" FIXED_X "\",\"y\":\"" FIXED_Y
    "\",\"d\":\"AQEB\"}",
    /* trailing garbage, NUL inside */
    "{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"" FIXED_X "\",\"y\":\"" FIXED_Y "\"} x",
    "{\"kty\":\"EC\",\"crv\":\"P-256\\u0000\",\"x\":\"" FIXED_X "\",\"y\":\"" FIXED_Y "\"}",
};

START_TEST(test_jwk_invalid)
{
    sm_error err = {0};
    ck_assert_msg(import(bad_jwks[_i], &err) != SM_OK, "accepted bad JWK #%d: %s", _i,
                  bad_jwks[_i]);
    assert_clean_message(&err);
}
END_TEST

START_TEST(test_jwk_private_matches)
{
    /* A real private key imports; the same d with another key's x/y does not. */
    sm_error err = {0};
    sm_jwk *a = new_key(), *b = new_key();
    char *ja = sm_jwk_to_json(a, 1, &err), *jb = sm_jwk_to_json(b, 0, &err);
    ck_assert_int_eq(import(ja, &err), SM_OK);
    json_t *oa = json_loads(ja, 0, NULL), *ob = json_loads(jb, 0, NULL);
    json_object_set(oa, "x", json_object_get(ob, "x"));
    json_object_set(oa, "y", json_object_get(ob, "y"));
    char *mixed = json_dumps(oa, JSON_COMPACT);
    ck_assert_int_eq(import(mixed, &err), SM_ERR_KEY);
    ck_assert_ptr_nonnull(strstr(err.message, "does not belong"));
    assert_clean_message(&err);
    /* The size limit. */
    size_t big = SM_JOSE_MAX_TOKEN + 1;
    char *huge = malloc(big + 1);
    memset(huge, ' ', big);
    huge[0] = '{';
    huge[big - 1] = '}';
    huge[big] = '\0';
    sm_jwk *k = NULL;
    ck_assert_int_eq(sm_jwk_from_json(huge, big, &k, &err), SM_ERR_TOO_LARGE);
    free(huge);
    free(mixed);
    json_decref(oa);
    json_decref(ob);
    sm_jwk_json_free(ja);
    sm_jwk_json_free(jb);
    sm_jwk_free(a);
    sm_jwk_free(b);
}
END_TEST

static int count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            n++;
    }
    closedir(d);
    return n;
}

START_TEST(test_jwk_files)
{
    const char *dir = smt_tmpdir();
    char priv[4096], pub[4096];
    snprintf(priv, sizeof(priv), "%s/device.jwk", dir);
    snprintf(pub, sizeof(pub), "%s/device.pub.jwk", dir);
    sm_error err = {0};
    sm_jwk *k = new_key();
    struct stat st;

    ck_assert_int_eq(sm_jwk_save_file(k, priv, 1, &err), SM_OK);
    ck_assert_int_eq(stat(priv, &st), 0);
    ck_assert_uint_eq(st.st_mode & 07777, 0600);
    ck_assert_int_eq(sm_jwk_save_file(k, pub, 0, &err), SM_OK);
    ck_assert_int_eq(stat(pub, &st), 0);
    ck_assert_uint_eq(st.st_mode & 07777, 0644);
    ck_assert_int_eq(count_entries(dir), 2); /* no temporary files left */

    sm_jwk *l = NULL, *p = NULL;
    ck_assert_int_eq(sm_jwk_load_file(priv, &l, &err), SM_OK);
    ck_assert(sm_jwk_has_private(l));
    ck_assert(sm_jwk_same_public(k, l));
    ck_assert_int_eq(sm_jwk_load_file(pub, &p, &err), SM_OK);
    ck_assert(!sm_jwk_has_private(p));
    sm_jwk_free(l);
    sm_jwk_free(p);
    l = p = NULL;

    /* Overwrite refused, then allowed explicitly; the file keeps 0600. */
    sm_jwk *k2 = new_key();
    ck_assert_int_eq(sm_jwk_save_file(k2, priv, 1, &err), SM_ERR_IO);
    ck_assert_ptr_nonnull(strstr(err.message, "already exists"));
    assert_clean_message(&err);
    ck_assert_int_eq(sm_jwk_load_file(priv, &l, &err), SM_OK);
    ck_assert(sm_jwk_same_public(k, l)); /* untouched */
    sm_jwk_free(l);
    ck_assert_int_eq(sm_jwk_save_file_overwrite(k2, priv, 1, &err), SM_OK);
    ck_assert_int_eq(stat(priv, &st), 0);
    ck_assert_uint_eq(st.st_mode & 07777, 0600);
    ck_assert_int_eq(sm_jwk_load_file(priv, &l, &err), SM_OK);
    ck_assert(sm_jwk_same_public(k2, l));
    sm_jwk_free(l);
    ck_assert_int_eq(count_entries(dir), 2);

    /* A private key file readable by others is refused, a public one is not. */
    ck_assert_int_eq(chmod(priv, 0644), 0);
    l = NULL;
    ck_assert_int_eq(sm_jwk_load_file(priv, &l, &err), SM_ERR_KEY);
    ck_assert_ptr_null(l);
    ck_assert_ptr_nonnull(strstr(err.message, "chmod 600"));
    assert_clean_message(&err);
    ck_assert_int_eq(chmod(priv, 0640), 0);
    ck_assert_int_eq(sm_jwk_load_file(priv, &l, &err), SM_ERR_KEY);
    ck_assert_int_eq(chmod(priv, 0400), 0);
    ck_assert_int_eq(sm_jwk_load_file(priv, &l, &err), SM_OK);
    sm_jwk_free(l);
    ck_assert_int_eq(sm_jwk_load_file(pub, &p, &err), SM_OK);
    sm_jwk_free(p);

    /* Saving a private part of a public key, a missing file, a directory. */
    sm_jwk *pubk = public_of(k);
    char other[4096];
    snprintf(other, sizeof(other), "%s/x.jwk", dir);
    ck_assert_int_eq(sm_jwk_save_file(pubk, other, 1, &err), SM_ERR_KEY);
    ck_assert_int_eq(sm_jwk_load_file(other, &l, &err), SM_ERR_IO);
    assert_clean_message(&err);
    ck_assert_int_eq(sm_jwk_load_file(dir, &l, &err), SM_ERR_IO);
    snprintf(other, sizeof(other), "%s/nodir/x.jwk", dir);
    ck_assert_int_eq(sm_jwk_save_file(k, other, 1, &err), SM_ERR_IO);
    assert_clean_message(&err);

    /* Garbage in a key file. */
    snprintf(other, sizeof(other), "%s/garbage.jwk", dir);
    smt_write_file(other, (const uint8_t *)"{\"kty\":\"EC\"}", 12);
    ck_assert_int_eq(sm_jwk_load_file(other, &l, &err), SM_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(err.message, other));

    sm_jwk_free(pubk);
    sm_jwk_free(k);
    sm_jwk_free(k2);
    smt_rm_rf(dir);
}
END_TEST

START_TEST(test_device_key_default_path)
{
    char buf[4096];
    sm_error err = {0};
    setenv("SECMEDIA_DEVICE_KEY", "/keys/dev.jwk", 1);
    setenv("XDG_CONFIG_HOME", "/xdg", 1);
    setenv("HOME", "/home/u", 1);
    ck_assert_int_eq(sm_device_key_default_path(buf, sizeof(buf), &err), SM_OK);
    ck_assert_str_eq(buf, "/keys/dev.jwk");
    setenv("SECMEDIA_DEVICE_KEY", "", 1);
    ck_assert_int_eq(sm_device_key_default_path(buf, sizeof(buf), &err), SM_OK);
    ck_assert_str_eq(buf, "/xdg/secmedia/device.jwk");
    unsetenv("SECMEDIA_DEVICE_KEY");
    setenv("XDG_CONFIG_HOME", "relative", 1); /* ignored, as the XDG spec asks */
    ck_assert_int_eq(sm_device_key_default_path(buf, sizeof(buf), &err), SM_OK);
    ck_assert_str_eq(buf, "/home/u/.config/secmedia/device.jwk");
    unsetenv("XDG_CONFIG_HOME");
    ck_assert_int_eq(sm_device_key_default_path(buf, sizeof(buf), &err), SM_OK);
    ck_assert_str_eq(buf, "/home/u/.config/secmedia/device.jwk");
    ck_assert_int_eq(sm_device_key_default_path(buf, 10, &err), SM_ERR_TOO_LARGE);
    ck_assert_str_eq(buf, "");
}
END_TEST

/* ---- Wycheproof: invalid and valid P-256 public keys --------------------- */

/* Reads one DER tag/length at *p; returns the content length or -1. */
static long der_header(const uint8_t **p, const uint8_t *end, int tag)
{
    if (end - *p < 2 || **p != tag)
        return -1;
    (*p)++;
    size_t len = *(*p)++;
    if (len & 0x80) {
        size_t nb = len & 0x7f;
        if (nb == 0 || nb > 2 || (size_t)(end - *p) < nb)
            return -1;
        len = 0;
        for (size_t i = 0; i < nb; i++)
            len = len << 8 | *(*p)++;
    }
    if (len > (size_t)(end - *p))
        return -1;
    return (long)len;
}

/* The subjectPublicKey BIT STRING content of a SubjectPublicKeyInfo. */
static int spki_point(const uint8_t *der, size_t len, const uint8_t **pt, size_t *pt_len)
{
    const uint8_t *p = der, *end = der + len;
    long n = der_header(&p, end, 0x30);
    if (n < 0)
        return 0;
    end = p + n;
    long alg = der_header(&p, end, 0x30);
    if (alg < 0)
        return 0;
    p += alg;
    long bits = der_header(&p, end, 0x03);
    if (bits < 1 || *p != 0x00)
        return 0;
    *pt = p + 1;
    *pt_len = (size_t)bits - 1;
    return 1;
}

/* Builds a JWK from raw coordinate bytes (any lengths). */
static char *jwk_from_coords(const uint8_t *x, size_t xl, const uint8_t *y, size_t yl)
{
    char *xs = b64u(x, xl), *ys = b64u(y, yl);
    char *j = jwk_json(xs, ys, NULL);
    free(xs);
    free(ys);
    return j;
}

static int is_p256(EVP_PKEY *pk)
{
    char name[64];
    size_t n = 0;
    return pk != NULL &&
           EVP_PKEY_get_utf8_string_param(pk, OSSL_PKEY_PARAM_GROUP_NAME, name, sizeof(name),
                                          &n) == 1 &&
           strcmp(name, "prime256v1") == 0;
}

/* Independent of the library: is this encoded point on P-256? */
static int on_p256(const uint8_t *pt, size_t len)
{
    EC_GROUP *g = EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1);
    EC_POINT *p = EC_POINT_new(g);
    int ok = len == 65 && EC_POINT_oct2point(g, p, pt, len, NULL) == 1 &&
             EC_POINT_is_on_curve(g, p, NULL) == 1 && !EC_POINT_is_at_infinity(g, p);
    EC_POINT_free(p);
    EC_GROUP_free(g);
    return ok;
}

START_TEST(test_wycheproof_public_keys)
{
    json_t *root = smt_load_wycheproof("ecdh_secp256r1_test.json");
    size_t gi, ti;
    json_t *group, *test;
    int invalid = 0, invalid_by_openssl = 0, invalid_by_us = 0, invalid_params_only = 0;
    int valid = 0, acceptable = 0;
    json_array_foreach(json_object_get(root, "testGroups"), gi, group) {
        json_array_foreach(json_object_get(group, "tests"), ti, test) {
            const char *result = json_string_value(json_object_get(test, "result"));
            int tc = (int)json_integer_value(json_object_get(test, "tcId"));
            size_t der_len = 0;
            uint8_t *der =
                smt_hex_decode(json_string_value(json_object_get(test, "public")), &der_len);
            const unsigned char *dp = der;
            EVP_PKEY *pk = d2i_PUBKEY(NULL, &dp, (long)der_len);
            const uint8_t *pt = NULL;
            size_t pt_len = 0;
            int have_point = spki_point(der, der_len, &pt, &pt_len);
            uint8_t buf[200];
            if (!have_point && pk != NULL &&
                EVP_PKEY_get_octet_string_param(pk, OSSL_PKEY_PARAM_PUB_KEY, buf, sizeof(buf),
                                                &pt_len) == 1) {
                pt = buf;
                have_point = 1;
            }
            sm_error err = {0};

            if (strcmp(result, "invalid") == 0) {
                invalid++;
                int point_flag = smt_has_flag(test, "InvalidCurveAttack") ||
                                 smt_has_flag(test, "ModifiedPublicPoint") ||
                                 smt_has_flag(test, "WrongCurve") ||
                                 smt_has_flag(test, "InvalidEncoding") ||
                                 smt_has_flag(test, "InvalidCompressedPublic");
                int uncompressed = have_point && pt_len >= 3 && pt[0] == 0x04 && pt_len % 2 == 1;
                if (uncompressed) {
                    /* The coordinates as a JWK. */
                    size_t half = (pt_len - 1) / 2;
                    char *j = jwk_from_coords(pt + 1, half, pt + 1 + half, half);
                    sm_status st = import(j, &err);
                    if (point_flag || !on_p256(pt, pt_len)) {
                        /* Off the curve or another curve's point: refused. */
                        ck_assert_msg(st != SM_OK, "tcId %d: invalid public key imported: %s",
                                      tc, j);
                        assert_clean_message(&err);
                        invalid_by_us++;
                    } else {
                        /* The point is a valid P-256 point and only the DER's
                         * explicit curve parameters are wrong: a JWK names the
                         * curve and cannot carry them, so as a JWK it is the
                         * valid key. */
                        ck_assert_msg(smt_has_flag(test, "UnnamedCurve"),
                                      "tcId %d: invalid key with a valid point and named curve",
                                      tc);
                        ck_assert_msg(st == SM_OK, "tcId %d: valid P-256 point refused: %s", tc,
                                      err.message);
                        invalid_params_only++;
                    }
                    free(j);
                } else {
                    /* No uncompressed point (compressed or broken encoding):
                     * nothing to put in a JWK; OpenSSL must not read it as a
                     * P-256 key. */
                    ck_assert_msg(pk == NULL || !is_p256(pk),
                                  "tcId %d: invalid key has no JWK form but parsed as P-256", tc);
                    invalid_by_openssl++;
                }
            } else if (strcmp(result, "valid") == 0 ||
                       (strcmp(result, "acceptable") == 0 && is_p256(pk))) {
                /* Valid P-256 keys must import; compressed ones are
                 * decompressed by OpenSSL first (JWK has no compressed form). */
                uint8_t full[65];
                if (is_p256(pk) && !(have_point && pt_len == 65 && pt[0] == 0x04)) {
                    EVP_PKEY_set_utf8_string_param(pk, OSSL_PKEY_PARAM_EC_POINT_CONVERSION_FORMAT,
                                                   "uncompressed");
                    size_t fl = 0;
                    ck_assert_int_eq(EVP_PKEY_get_octet_string_param(
                                         pk, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, full,
                                         sizeof(full), &fl),
                                     1);
                    ck_assert_uint_eq(fl, 65);
                    pt = full;
                    pt_len = fl;
                }
                ck_assert_msg(pt != NULL && pt_len == 65 && pt[0] == 0x04,
                              "tcId %d: no uncompressed P-256 point", tc);
                char *j = jwk_from_coords(pt + 1, 32, pt + 33, 32);
                ck_assert_msg(import(j, &err) == SM_OK, "tcId %d: valid key refused: %s (%s)", tc,
                              j, err.message);
                free(j);
                if (strcmp(result, "valid") == 0)
                    valid++;
                else
                    acceptable++;
            }
            EVP_PKEY_free(pk);
            free(der);
        }
    }
    fprintf(stderr,
            "wycheproof ecdh_secp256r1: %d invalid public keys: %d refused by our JWK import, %d "
            "without a JWK form and refused by OpenSSL's DER parser, %d invalid only in explicit "
            "DER curve parameters; %d valid and %d acceptable keys imported\n",
            invalid, invalid_by_us, invalid_by_openssl, invalid_params_only, valid, acceptable);
    ck_assert_int_gt(invalid_by_us, 30);
    ck_assert_int_le(invalid_params_only, 8);
    ck_assert_int_eq(invalid, invalid_by_us + invalid_by_openssl + invalid_params_only);
    ck_assert_int_gt(valid, 300);
    json_decref(root);
}
END_TEST

/* ---- JWKS ------------------------------------------------------------ */

START_TEST(test_jwks)
{
    sm_error err = {0};
    sm_jwk *a = new_key(), *b = new_key();
    sm_jwks *set = NULL;
    ck_assert_int_eq(sm_jwks_new(&set, &err), SM_OK);
    ck_assert_int_eq(sm_jwks_add(set, a, "ks-1", &err), SM_OK);
    ck_assert_int_eq(sm_jwks_add(set, b, NULL, &err), SM_OK); /* kid = jkt */
    ck_assert_int_eq(sm_jwks_add(set, b, "ks-1", &err), SM_ERR_FORMAT);
    ck_assert_uint_eq(sm_jwks_count(set), 2);
    char jkt[SM_JKT_SIZE];
    ck_assert_int_eq(sm_jwk_thumbprint(b, jkt, &err), SM_OK);
    ck_assert_ptr_nonnull(sm_jwks_find(set, jkt));
    ck_assert(sm_jwk_same_public(sm_jwks_find(set, "ks-1"), a));
    ck_assert(!sm_jwk_has_private(sm_jwks_find(set, "ks-1")));
    ck_assert_ptr_null(sm_jwks_find(set, "ks-2"));

    char *doc = sm_jwks_to_json(set, &err);
    ck_assert_ptr_nonnull(doc);
    ck_assert_ptr_null(strstr(doc, "\"d\""));
    sm_jwks *back = NULL;
    ck_assert_int_eq(sm_jwks_from_json(doc, strlen(doc), &back, &err), SM_OK);
    ck_assert_uint_eq(sm_jwks_count(back), 2);
    ck_assert(sm_jwk_same_public(sm_jwks_find(back, "ks-1"), a));
    ck_assert(sm_jwk_same_public(sm_jwks_find(back, jkt), b));
    sm_jwks_free(back);

    /* Refused: a private key, no kid, duplicate kid, empty, unknown member. */
    char *priv = sm_jwk_to_json(a, 1, &err);
    char *pub = sm_jwk_to_json(a, 0, &err);
    const char *fmts[] = {"{\"keys\":[@@]}", "{\"keys\":[@@],\"x\":1}", "{\"keys\":@@}",
                          "{\"keys\":[]}",
                          "{\"keys\":[{\"kty\":\"oct\",\"k\":\"AA\",\"kid\":\"a\"}]}"};
    char *bad = subst(fmts[0], priv); /* private */
    ck_assert_int_eq(sm_jwks_from_json(bad, strlen(bad), &back, &err), SM_ERR_KEY);
    ck_assert_ptr_null(back);
    assert_clean_message(&err);
    free(bad);
    for (size_t i = 0; i < sizeof(fmts) / sizeof(fmts[0]); i++) {
        bad = subst(fmts[i], pub); /* the first: no kid */
        ck_assert_int_ne(sm_jwks_from_json(bad, strlen(bad), &back, &err), SM_OK);
        ck_assert_ptr_null(back);
        free(bad);
    }
    json_t *o = json_loads(doc, 0, NULL);
    json_t *keys = json_object_get(o, "keys");
    json_array_append(keys, json_array_get(keys, 0)); /* duplicate kid */
    char *dup = json_dumps(o, JSON_COMPACT);
    ck_assert_int_eq(sm_jwks_from_json(dup, strlen(dup), &back, &err), SM_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(err.message, "twice"));

    free(dup);
    json_decref(o);
    sm_jwk_json_free(priv);
    sm_jwk_json_free(pub);
    free(doc);
    sm_jwks_free(set);
    sm_jwk_free(a);
    sm_jwk_free(b);
}
END_TEST

/* ---- JWS --------------------------------------------------------------- */

static sm_jwk *issuer;      /* kid ks-1 */
static sm_jwk *issuer_pub;
static sm_jwks *issuer_set; /* ks-1 -> issuer, ks-2 -> another key */

static void jws_setup(void)
{
    sm_error err = {0};
    issuer = new_key();
    issuer_pub = public_of(issuer);
    sm_jwk *other = new_key();
    ck_assert_int_eq(sm_jwks_new(&issuer_set, &err), SM_OK);
    ck_assert_int_eq(sm_jwks_add(issuer_set, issuer, "ks-1", &err), SM_OK);
    ck_assert_int_eq(sm_jwks_add(issuer_set, other, "ks-2", &err), SM_OK);
    sm_jwk_free(other);
}

static void jws_teardown(void)
{
    sm_jwks_free(issuer_set);
    sm_jwk_free(issuer_pub);
    sm_jwk_free(issuer);
}

static json_t *good_claims(void)
{
    json_t *c = json_pack("{s:s,s:[s,s],s:I,s:I,s:s,s:s}", "iss", ISS, "aud", "retail-1", AUD,
                          "iat", (json_int_t)NOW, "exp", (json_int_t)(NOW + 600), "jti",
                          "0123456789abcdefXYZ", "work", "w-1");
    ck_assert_ptr_nonnull(c);
    return c;
}

static char *sign_claims(json_t *claims, const char *kid, const char *typ)
{
    char *tok = NULL;
    sm_error err = {0};
    ck_assert_int_eq(sm_jws_sign(issuer, kid, typ, claims, &tok, &err), SM_OK);
    return tok;
}

static sm_status verify_at(const char *tok, int64_t now, sm_error *err)
{
    sm_jws_expect e;
    sm_jws_expect_init(&e, ISS, AUD, TYP);
    e.now = now;
    json_t *claims = NULL;
    sm_status st = sm_jws_verify(tok, strlen(tok), issuer_set, &e, &claims, NULL, err);
    if (st == SM_OK) {
        ck_assert_ptr_nonnull(claims);
    } else {
        ck_assert_ptr_null(claims);
        assert_clean_message(err);
    }
    json_decref(claims);
    return st;
}

START_TEST(test_jws_round_trip)
{
    json_t *c = good_claims();
    char *tok = sign_claims(c, "ks-1", TYP);
    sm_jws_expect e;
    sm_jws_expect_init(&e, ISS, AUD, TYP);
    e.now = NOW + 10;
    json_t *got = NULL;
    char kid[SM_JOSE_KID_MAX + 1];
    sm_error err = {0};
    ck_assert_int_eq(sm_jws_verify(tok, strlen(tok), issuer_set, &e, &got, kid, &err), SM_OK);
    ck_assert(json_equal(got, c));
    ck_assert_str_eq(kid, "ks-1");
    json_decref(got);

    /* Header is exactly alg, kid, typ; signature is 64 raw bytes. */
    json_t *h = json_part(tok, 0);
    ck_assert_uint_eq(json_object_size(h), 3);
    ck_assert_str_eq(json_string_value(json_object_get(h, "alg")), "ES256");
    ck_assert_str_eq(json_string_value(json_object_get(h, "typ")), TYP);
    char *sig = part(tok, 2);
    ck_assert_uint_eq(strlen(sig), 86);

    /* aud as a plain string; typ compared case-insensitively; kid NULL uses
     * the key's jkt. */
    json_object_set_new(c, "aud", json_string(AUD));
    char *tok2 = sign_claims(c, "ks-1", "Voucher+JWT");
    ck_assert_int_eq(verify_at(tok2, NOW, &err), SM_OK);
    char *tok3 = sign_claims(c, NULL, TYP);
    json_t *h3 = json_part(tok3, 0);
    char jkt[SM_JKT_SIZE];
    ck_assert_int_eq(sm_jwk_thumbprint(issuer, jkt, &err), SM_OK);
    ck_assert_str_eq(json_string_value(json_object_get(h3, "kid")), jkt);
    ck_assert_int_eq(verify_at(tok3, NOW, &err), SM_ERR_KEY); /* not in the set */

    /* Boundaries: exp + skew, iat - skew, custom skew, lifetime. */
    ck_assert_int_eq(verify_at(tok, NOW + 600 + 59, &err), SM_OK);
    ck_assert_int_eq(verify_at(tok, NOW + 600 + 60, &err), SM_ERR_EXPIRED);
    ck_assert_int_eq(verify_at(tok, NOW - 60, &err), SM_OK);
    ck_assert_int_eq(verify_at(tok, NOW - 61, &err), SM_ERR_EXPIRED);
    sm_jws_expect_init(&e, ISS, AUD, TYP);
    e.now = NOW + 600;
    e.max_skew = 0;
    ck_assert_int_eq(sm_jws_verify(tok, strlen(tok), issuer_set, &e, &got, NULL, &err),
                     SM_ERR_EXPIRED);
    e.now = NOW;
    e.max_lifetime = 599;
    ck_assert_int_eq(sm_jws_verify(tok, strlen(tok), issuer_set, &e, &got, NULL, &err),
                     SM_ERR_CLAIM);
    e.max_lifetime = 600;
    ck_assert_int_eq(sm_jws_verify(tok, strlen(tok), issuer_set, &e, &got, NULL, &err), SM_OK);
    json_decref(got);
    got = NULL;
    /* Nonsense times and skews are caller errors, not overflows. */
    e.now = INT64_MAX;
    ck_assert_int_eq(sm_jws_verify(tok, strlen(tok), issuer_set, &e, &got, NULL, &err),
                     SM_ERR_ARG);
    e.now = NOW;
    e.max_skew = INT64_MAX;
    ck_assert_int_eq(sm_jws_verify(tok, strlen(tok), issuer_set, &e, &got, NULL, &err),
                     SM_ERR_ARG);
    ck_assert_ptr_null(got);

    /* Signing needs a private key and a typ. */
    char *none = NULL;
    ck_assert_int_eq(sm_jws_sign(issuer_pub, "ks-1", TYP, c, &none, &err), SM_ERR_KEY);
    ck_assert_int_eq(sm_jws_sign(issuer, "ks-1", NULL, c, &none, &err), SM_ERR_ARG);
    ck_assert_ptr_null(none);

    json_decref(h);
    json_decref(h3);
    free(sig);
    free(tok);
    free(tok2);
    free(tok3);
    json_decref(c);
}
END_TEST

START_TEST(test_jws_key_and_claim_failures)
{
    sm_error err = {0};
    json_t *c = good_claims();
    char *tok = sign_claims(c, "ks-1", TYP);

    /* Wrong key: the kid names another key. */
    char *wrong = sign_claims(c, "ks-2", TYP);
    ck_assert_int_eq(verify_at(wrong, NOW, &err), SM_ERR_AUTH);
    /* Unknown kid. */
    char *unknown = sign_claims(c, "ks-9", TYP);
    ck_assert_int_eq(verify_at(unknown, NOW, &err), SM_ERR_KEY);
    ck_assert_ptr_nonnull(strstr(err.message, "ks-9"));
    /* Expired, not yet valid. */
    ck_assert_int_eq(verify_at(tok, NOW + 3600, &err), SM_ERR_EXPIRED);
    ck_assert_int_eq(verify_at(tok, NOW - 3600, &err), SM_ERR_EXPIRED);
    json_t *c2 = good_claims();
    json_object_set_new(c2, "nbf", json_integer(NOW + 300));
    char *nbf = sign_claims(c2, "ks-1", TYP);
    ck_assert_int_eq(verify_at(nbf, NOW, &err), SM_ERR_EXPIRED);
    ck_assert_int_eq(verify_at(nbf, NOW + 300, &err), SM_OK);
    /* Wrong typ, missing typ (forged with a valid signature). */
    char *typ = sign_claims(c, "ks-1", "delivery+jwt");
    ck_assert_int_eq(verify_at(typ, NOW, &err), SM_ERR_CLAIM);
    char *payload = json_dumps(c, JSON_COMPACT);
    char *notyp = forge_signed(issuer, "{\"alg\":\"ES256\",\"kid\":\"ks-1\"}", payload);
    ck_assert_int_eq(verify_at(notyp, NOW, &err), SM_ERR_CLAIM);
    /* Missing kid. */
    char *nokid = forge_signed(issuer, "{\"alg\":\"ES256\",\"typ\":\"" TYP "\"}", payload);
    ck_assert_int_eq(verify_at(nokid, NOW, &err), SM_ERR_FORMAT);

    /* Wrong iss, wrong aud (string and array). */
    json_object_set_new(c2, "iss", json_string("https://evil.example"));
    char *iss = sign_claims(c2, "ks-1", TYP);
    ck_assert_int_eq(verify_at(iss, NOW, &err), SM_ERR_CLAIM);
    json_decref(c2);
    c2 = good_claims();
    json_object_set_new(c2, "aud", json_string("store-2"));
    char *aud1 = sign_claims(c2, "ks-1", TYP);
    ck_assert_int_eq(verify_at(aud1, NOW, &err), SM_ERR_CLAIM);
    json_object_set_new(c2, "aud", json_pack("[s,s]", "a", "store-12"));
    char *aud2 = sign_claims(c2, "ks-1", TYP);
    ck_assert_int_eq(verify_at(aud2, NOW, &err), SM_ERR_CLAIM);
    json_object_set_new(c2, "aud", json_pack("[s,i]", AUD, 1));
    char *aud3 = sign_claims(c2, "ks-1", TYP);
    ck_assert_int_eq(verify_at(aud3, NOW, &err), SM_ERR_CLAIM);
    json_decref(c2);

    free(payload);
    free(tok);
    free(wrong);
    free(unknown);
    free(nbf);
    free(typ);
    free(notyp);
    free(nokid);
    free(iss);
    free(aud1);
    free(aud2);
    free(aud3);
    json_decref(c);
}
END_TEST

static const char *const required_claims[] = {"iss", "aud", "exp", "iat", "jti"};

START_TEST(test_jws_missing_claim)
{
    sm_error err = {0};
    json_t *c = good_claims();
    json_object_del(c, required_claims[_i]);
    char *tok = sign_claims(c, "ks-1", TYP);
    ck_assert_int_eq(verify_at(tok, NOW, &err), SM_ERR_CLAIM);
    ck_assert_ptr_nonnull(strstr(err.message, required_claims[_i]));
    free(tok);
    json_decref(c);
}
END_TEST

/* Claims that must be refused: {name, JSON value}. */
static const char *const bad_claims[][2] = {
    {"exp", "\"1700000600\""}, {"exp", "1700000600.5"}, {"iat", "-1"},
    {"iat", "1700000601"}, /* after exp */
    {"exp", "99999999999999"}, {"jti", "\"short\""}, {"jti", "\"has space in it 12345\""},
    {"jti", "123456789012345678"}, {"iss", "[\"" ISS "\"]"}, {"aud", "[]"}, {"aud", "{}"},
    {"nbf", "\"now\""},
};

START_TEST(test_jws_bad_claim_value)
{
    sm_error err = {0};
    json_t *c = good_claims();
    json_t *v = json_loads(bad_claims[_i][1], JSON_DECODE_ANY, NULL);
    ck_assert_ptr_nonnull(v);
    json_object_set_new(c, bad_claims[_i][0], v);
    char *tok = sign_claims(c, "ks-1", TYP);
    ck_assert_msg(verify_at(tok, NOW, &err) == SM_ERR_CLAIM, "claim %s = %s: %s",
                  bad_claims[_i][0], bad_claims[_i][1], err.message);
    free(tok);
    json_decref(c);
}
END_TEST

START_TEST(test_jws_tampering)
{
    sm_error err = {0};
    json_t *c = good_claims();
    char *tok = sign_claims(c, "ks-1", TYP);
    ck_assert_int_eq(verify_at(tok, NOW, &err), SM_OK);

    /* Payload: another claim value under the original signature. */
    json_t *c2 = good_claims();
    json_object_set_new(c2, "work", json_string("w-2"));
    char *tp = with_json_part(tok, 1, c2);
    ck_assert_int_eq(verify_at(tp, NOW, &err), SM_ERR_AUTH);
    /* Header: same meaning, different bytes. */
    char *hb64 = b64u_str("{\"alg\":\"ES256\",\"typ\":\"" TYP "\",\"kid\":\"ks-1\"}");
    char *th = replace_part(tok, 0, hb64);
    ck_assert_int_eq(verify_at(th, NOW, &err), SM_ERR_AUTH);
    /* Signature bits: r and s. */
    char *ts1 = flip_bit_in_part(tok, 2, 5), *ts2 = flip_bit_in_part(tok, 2, 40);
    ck_assert_int_eq(verify_at(ts1, NOW, &err), SM_ERR_AUTH);
    ck_assert_int_eq(verify_at(ts2, NOW, &err), SM_ERR_AUTH);

    /* Signature of another length: r||s||00, 00||r||00||s (cjose alone would
     * accept this one: it splits any length in halves), DER, empty. */
    char *sig = part(tok, 2);
    size_t sl = 0;
    uint8_t *raw = unb64u(sig, strlen(sig), &sl);
    ck_assert_uint_eq(sl, 64);
    uint8_t longer[66] = {0};
    memcpy(longer, raw, 64);
    char *s65 = b64u(longer, 65);
    char *t65 = replace_part(tok, 2, s65);
    ck_assert_int_eq(verify_at(t65, NOW, &err), SM_ERR_AUTH);
    memset(longer, 0, sizeof(longer));
    memcpy(longer + 1, raw, 32);
    memcpy(longer + 34, raw + 32, 32);
    char *s66 = b64u(longer, 66);
    char *t66 = replace_part(tok, 2, s66);
    ck_assert_int_eq(verify_at(t66, NOW, &err), SM_ERR_AUTH);
    ECDSA_SIG *es = ECDSA_SIG_new();
    ECDSA_SIG_set0(es, BN_bin2bn(raw, 32, NULL), BN_bin2bn(raw + 32, 32, NULL));
    unsigned char *derbuf = NULL;
    int dl = i2d_ECDSA_SIG(es, &derbuf);
    ck_assert_int_gt(dl, 0);
    char *sder = b64u(derbuf, (size_t)dl);
    char *tder = replace_part(tok, 2, sder);
    ck_assert_int_eq(verify_at(tder, NOW, &err), SM_ERR_AUTH);
    char *tempty = replace_part(tok, 2, "");
    ck_assert_int_eq(verify_at(tempty, NOW, &err), SM_ERR_FORMAT);

    /* Encoding: padding, non-canonical trailing bits, "a===" (which trips
     * an assert inside cjose's decoder), 2 or 4 parts, oversize. */
    size_t tl = strlen(tok);
    char *padded = malloc(tl + 3);
    snprintf(padded, tl + 3, "%s==", tok);
    ck_assert_int_eq(verify_at(padded, NOW, &err), SM_ERR_FORMAT);
    char *noncanon = strdup(tok);
    char *last = noncanon + tl - 1; /* 86 chars: the last one carries 4 unused bits */
    *last = *last == 'A' ? 'B' : (char)(*last ^ 0x01);
    ck_assert_int_ne(verify_at(noncanon, NOW, &err), SM_OK);
    char *aeq = replace_part(tok, 1, "a===");
    ck_assert_int_eq(verify_at(aeq, NOW, &err), SM_ERR_FORMAT);
    char *one = replace_part(tok, 1, "a");
    ck_assert_int_eq(verify_at(one, NOW, &err), SM_ERR_FORMAT);
    char *h = part(tok, 0), *p = part(tok, 1);
    char *two = malloc(tl);
    snprintf(two, tl, "%s.%s", h, p);
    ck_assert_int_eq(verify_at(two, NOW, &err), SM_ERR_FORMAT);
    char *four = malloc(tl + 3);
    snprintf(four, tl + 3, "%s.", tok);
    ck_assert_int_eq(verify_at(four, NOW, &err), SM_ERR_FORMAT);
    char *big = malloc(SM_JOSE_MAX_TOKEN + 2);
    memset(big, 'A', SM_JOSE_MAX_TOKEN + 1);
    big[0] = 'e';
    big[10] = '.';
    big[20] = '.';
    big[SM_JOSE_MAX_TOKEN + 1] = '\0';
    ck_assert_int_eq(verify_at(big, NOW, &err), SM_ERR_TOO_LARGE);
    /* A NUL byte inside the given length. */
    char *withnul = strdup(tok);
    withnul[10] = '\0';
    json_t *cl = NULL;
    sm_jws_expect e;
    sm_jws_expect_init(&e, ISS, AUD, TYP);
    e.now = NOW;
    ck_assert_int_eq(sm_jws_verify(withnul, tl, issuer_set, &e, &cl, NULL, &err), SM_ERR_FORMAT);

    free(withnul);
    free(big);
    free(four);
    free(two);
    free(h);
    free(p);
    free(one);
    free(aeq);
    free(noncanon);
    free(padded);
    free(tempty);
    free(tder);
    free(sder);
    OPENSSL_free(derbuf);
    ECDSA_SIG_free(es);
    free(t66);
    free(s66);
    free(t65);
    free(s65);
    free(raw);
    free(sig);
    free(ts1);
    free(ts2);
    free(th);
    free(hb64);
    free(tp);
    json_decref(c2);
    free(tok);
    json_decref(c);
}
END_TEST

/* Headers refused before any signature check (status UNSUPPORTED means the
 * verifier stopped at the header, not at the signature). */
static const char *const bad_alg_headers[] = {
    "{\"alg\":\"none\",\"kid\":\"ks-1\",\"typ\":\"" TYP "\"}",
    "{\"alg\":\"HS256\",\"kid\":\"ks-1\",\"typ\":\"" TYP "\"}",
    "{\"alg\":\"ES384\",\"kid\":\"ks-1\",\"typ\":\"" TYP "\"}",
    "{\"alg\":\"RS256\",\"kid\":\"ks-1\",\"typ\":\"" TYP "\"}",
    "{\"alg\":\"es256\",\"kid\":\"ks-1\",\"typ\":\"" TYP "\"}",
    "{\"alg\":\"ES256\\u0000\",\"kid\":\"ks-1\",\"typ\":\"" TYP "\"}",
    "{\"alg\":[\"ES256\"],\"kid\":\"ks-1\",\"typ\":\"" TYP "\"}",
    "{\"kid\":\"ks-1\",\"typ\":\"" TYP "\"}",
};

START_TEST(test_jws_bad_alg)
{
    sm_error err = {0};
    json_t *c = good_claims();
    char *payload = json_dumps(c, JSON_COMPACT);
    /* HMAC keyed with the public key (algorithm confusion) ... */
    char *hs = forge_hs256(issuer_pub, bad_alg_headers[_i], payload);
    /* jansson itself refuses the \u0000 one: FORMAT. Never AUTH: no
     * signature check was reached. */
    sm_status st = verify_at(hs, NOW, &err);
    ck_assert_msg(st == SM_ERR_UNSUPPORTED || (st == SM_ERR_FORMAT && _i == 5), "got %s",
                  sm_status_name(st));
    /* ... and a valid ES256 signature under the same header. */
    char *h = b64u_str(bad_alg_headers[_i]), *p = b64u_str(payload);
    char *good = sign_claims(c, "ks-1", TYP);
    char *sig = part(good, 2);
    char *es = join3(h, p, sig);
    ck_assert_int_eq(verify_at(es, NOW, &err), st);
    /* alg none with an empty signature part. */
    char *empty = join3(h, p, "");
    ck_assert_int_ne(verify_at(empty, NOW, &err), SM_OK);
    free(empty);
    free(es);
    free(sig);
    free(good);
    free(h);
    free(p);
    free(hs);
    free(payload);
    json_decref(c);
}
END_TEST

/* Validly signed, but with header members we refuse. */
static const char *const bad_headers[][2] = {
    {"{\"alg\":\"ES256\",\"kid\":\"ks-1\",\"typ\":\"" TYP "\",\"crit\":[\"exp\"],\"exp\":1}",
     "unsupported"},
    {"{\"alg\":\"ES256\",\"kid\":\"ks-1\",\"typ\":\"" TYP "\",\"jku\":\"https://x/\"}", "format"},
    {"{\"alg\":\"ES256\",\"kid\":\"ks-1\",\"typ\":\"" TYP "\",\"x5u\":\"https://x/\"}", "format"},
    {"{\"alg\":\"ES256\",\"kid\":\"ks-1\",\"typ\":\"" TYP "\",\"b64\":false}", "format"},
    {"{\"alg\":\"ES256\",\"kid\":\"ks-1\",\"typ\":\"" TYP "\",\"cty\":\"JWT\"}", "format"},
    {"{\"alg\":\"ES256\",\"kid\":1,\"typ\":\"" TYP "\"}", "format"},
    {"{\"alg\":\"ES256\",\"kid\":\"ks 1\",\"typ\":\"" TYP "\"}", "format"},
    {"{\"alg\":\"ES256\",\"kid\":\"ks-1\",\"typ\":7}", "format"},
};

START_TEST(test_jws_bad_header)
{
    sm_error err = {0};
    json_t *c = good_claims();
    char *payload = json_dumps(c, JSON_COMPACT);
    char *tok = forge_signed(issuer, bad_headers[_i][0], payload);
    sm_status st = verify_at(tok, NOW, &err);
    ck_assert_msg(st != SM_OK, "accepted header %s", bad_headers[_i][0]);
    ck_assert_str_eq(sm_status_name(st), bad_headers[_i][1]);
    free(tok);
    free(payload);
    json_decref(c);
}
END_TEST

START_TEST(test_jws_duplicate_header_member)
{
    sm_error err = {0};
    json_t *c = good_claims();
    char *good = sign_claims(c, "ks-1", TYP);
    /* cjose's parser keeps the last "alg"; ours refuses duplicates. */
    char *h = b64u_str("{\"alg\":\"ES256\",\"kid\":\"ks-1\",\"typ\":\"" TYP "\",\"alg\":\"none\"}");
    char *tok = replace_part(good, 0, h);
    ck_assert_int_eq(verify_at(tok, NOW, &err), SM_ERR_FORMAT);
    char *payload = json_dumps(c, JSON_COMPACT);
    char *withjwk = NULL;
    {
        char *pubjson = sm_jwk_to_json(issuer_pub, 0, &err);
        char hdr[512];
        snprintf(hdr, sizeof(hdr), "{\"alg\":\"ES256\",\"kid\":\"ks-1\",\"typ\":\"" TYP
                                   "\",\"jwk\":%s}",
                 pubjson);
        withjwk = forge_signed(issuer, hdr, payload);
        sm_jwk_json_free(pubjson);
    }
    ck_assert_int_eq(verify_at(withjwk, NOW, &err), SM_ERR_FORMAT);
    free(withjwk);
    free(payload);
    free(tok);
    free(h);
    free(good);
    json_decref(c);
}
END_TEST

/* ---- JWE ------------------------------------------------------------- */

static sm_jwk *device;
static sm_jwk *device_pub;
static sm_secret *media_key;

static void jwe_setup(void)
{
    device = new_key();
    device_pub = public_of(device);
    media_key = sm_secret_random(32);
    ck_assert_ptr_nonnull(media_key);
}

static void jwe_teardown(void)
{
    sm_secret_free(media_key);
    sm_jwk_free(device_pub);
    sm_jwk_free(device);
}

static char *wrap(const char *kid)
{
    char *jwe = NULL;
    sm_error err = {0};
    ck_assert_int_eq(sm_jwe_wrap_key(device_pub, media_key, kid, &jwe, &err), SM_OK);
    return jwe;
}

static sm_status unwrap(const sm_jwk *key, const char *jwe, sm_error *err)
{
    sm_secret *out = NULL;
    sm_status st = sm_jwe_unwrap_key(key, jwe, strlen(jwe), &out, err);
    if (st == SM_OK) {
        ck_assert_ptr_nonnull(out);
        ck_assert_uint_eq(out->len, 32);
        ck_assert(sm_ct_equal(out->bytes, media_key->bytes, 32));
    } else {
        ck_assert_ptr_null(out);
        assert_clean_message(err);
    }
    sm_secret_free(out);
    return st;
}

START_TEST(test_jwe_round_trip)
{
    sm_error err = {0};
    char jkt[SM_JKT_SIZE];
    ck_assert_int_eq(sm_jwk_thumbprint(device, jkt, &err), SM_OK);
    char *jwe = wrap(jkt);
    ck_assert_int_eq(unwrap(device, jwe, &err), SM_OK);
    sm_secret *out = NULL;
    char kid[SM_JOSE_KID_MAX + 1];
    ck_assert_int_eq(sm_jwe_unwrap_key_kid(device, jwe, strlen(jwe), &out, kid, &err), SM_OK);
    ck_assert_str_eq(kid, jkt);
    sm_secret_free(out);

    /* Header: alg, enc, epk, kid and nothing else; the key never in clear. */
    json_t *h = json_part(jwe, 0);
    ck_assert_uint_eq(json_object_size(h), 4);
    ck_assert_str_eq(json_string_value(json_object_get(h, "alg")), "ECDH-ES");
    ck_assert_str_eq(json_string_value(json_object_get(h, "enc")), "A256GCM");
    ck_assert_ptr_null(json_object_get(json_object_get(h, "epk"), "d"));
    char *ek = part(jwe, 1);
    ck_assert_str_eq(ek, "");
    json_decref(h);
    free(ek);

    /* Without kid; two wraps differ (fresh ephemeral key and IV). */
    char *a = wrap(NULL), *b = wrap(NULL);
    ck_assert_str_ne(a, b);
    ck_assert_int_eq(unwrap(device, a, &err), SM_OK);
    ck_assert_int_eq(sm_jwe_unwrap_key_kid(device, a, strlen(a), &out, kid, &err), SM_OK);
    ck_assert_str_eq(kid, "");
    sm_secret_free(out);

    /* Wrong key size, bad kid. */
    sm_secret *k16 = sm_secret_random(16);
    char *x = NULL;
    ck_assert_int_eq(sm_jwe_wrap_key(device_pub, k16, NULL, &x, &err), SM_ERR_KEY);
    ck_assert_int_eq(sm_jwe_wrap_key(device_pub, media_key, "a b", &x, &err), SM_ERR_FORMAT);
    ck_assert_ptr_null(x);
    sm_secret_free(k16);

    free(a);
    free(b);
    free(jwe);
}
END_TEST

/* The two-step form: one key agreement, then seals; each seal decrypts
 * to its key, with its own IV under the same header. */
START_TEST(test_jwe_sealer)
{
    sm_error err = {0};
    sm_jwe_sealer *sealer = NULL;
    ck_assert_int_eq(sm_jwe_sealer_new(device_pub, "kid-1", &sealer, &err), SM_OK);
    sm_secret *other_key = sm_secret_random(32);
    char *a = NULL, *b = NULL;
    ck_assert_int_eq(sm_jwe_sealer_seal(sealer, media_key, &a, &err), SM_OK);
    ck_assert_int_eq(sm_jwe_sealer_seal(sealer, other_key, &b, &err), SM_OK);
    ck_assert_int_eq(unwrap(device, a, &err), SM_OK);
    sm_secret *out = NULL;
    ck_assert_int_eq(sm_jwe_unwrap_key(device, b, strlen(b), &out, &err), SM_OK);
    ck_assert(sm_ct_equal(out->bytes, other_key->bytes, 32));
    sm_secret_free(out);
    char *ha = part(a, 0), *hb = part(b, 0), *iva = part(a, 2), *ivb = part(b, 2);
    ck_assert_str_eq(ha, hb);
    ck_assert_str_ne(iva, ivb);
    /* Another device cannot open it; bad inputs are refused. */
    sm_jwk *stranger = new_key();
    ck_assert_int_eq(unwrap(stranger, a, &err), SM_ERR_AUTH);
    sm_secret *k16 = sm_secret_random(16);
    char *x = NULL;
    ck_assert_int_eq(sm_jwe_sealer_seal(sealer, k16, &x, &err), SM_ERR_KEY);
    ck_assert_int_eq(sm_jwe_sealer_seal(NULL, media_key, &x, &err), SM_ERR_ARG);
    ck_assert_ptr_null(x);
    sm_jwe_sealer *bad = NULL;
    ck_assert_int_eq(sm_jwe_sealer_new(device_pub, "a b", &bad, &err), SM_ERR_FORMAT);
    ck_assert_int_eq(sm_jwe_sealer_new(NULL, NULL, &bad, &err), SM_ERR_ARG);
    ck_assert_ptr_null(bad);
    sm_jwe_sealer_free(NULL);
    sm_jwk_free(stranger);
    sm_secret_free(k16);
    sm_secret_free(other_key);
    free(ha);
    free(hb);
    free(iva);
    free(ivb);
    free(a);
    free(b);
    sm_jwe_sealer_free(sealer);
}
END_TEST

START_TEST(test_jwe_wrong_key)
{
    sm_error err = {0};
    char *jwe = wrap(NULL);
    sm_jwk *other = new_key();
    ck_assert_int_eq(unwrap(other, jwe, &err), SM_ERR_AUTH);
    ck_assert_int_eq(unwrap(device_pub, jwe, &err), SM_ERR_KEY);
    sm_jwk_free(other);
    free(jwe);
}
END_TEST

START_TEST(test_jwe_tampering)
{
    sm_error err = {0};
    char *jwe = wrap("dev-1");
    ck_assert_int_eq(unwrap(device, jwe, &err), SM_OK);

    /* Bits of IV, ciphertext, tag. */
    const int parts[] = {2, 3, 3, 4, 4};
    const size_t bytes[] = {0, 0, 31, 0, 15};
    for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
        char *t = flip_bit_in_part(jwe, parts[i], bytes[i]);
        ck_assert_msg(unwrap(device, t, &err) == SM_ERR_AUTH, "part %d byte %zu", parts[i],
                      bytes[i]);
        free(t);
    }
    /* Header (authenticated as AAD): another kid; same members, new order. */
    json_t *h = json_part(jwe, 0);
    json_object_set_new(h, "kid", json_string("dev-2"));
    char *t1 = with_json_part(jwe, 0, h);
    ck_assert_int_eq(unwrap(device, t1, &err), SM_ERR_AUTH);
    /* epk replaced by another valid point. */
    sm_jwk *other = new_key();
    json_object_set_new(h, "kid", json_string("dev-1"));
    json_object_set_new(h, "epk", smj_jwk_public_object(other, 0));
    char *t2 = with_json_part(jwe, 0, h);
    ck_assert_int_eq(unwrap(device, t2, &err), SM_ERR_AUTH);
    /* epk off the curve (invalid-curve attack), epk with a private part. */
    json_t *epk = smj_jwk_public_object(other, 0);
    json_object_set(epk, "y", json_object_get(epk, "x"));
    json_object_set_new(h, "epk", epk);
    char *t3 = with_json_part(jwe, 0, h);
    ck_assert_int_eq(unwrap(device, t3, &err), SM_ERR_KEY);
    char *otherjson = sm_jwk_to_json(other, 1, &err);
    json_object_set_new(h, "epk", json_loads(otherjson, 0, NULL));
    char *t4 = with_json_part(jwe, 0, h);
    ck_assert_int_eq(unwrap(device, t4, &err), SM_ERR_KEY);
    ck_assert_ptr_nonnull(strstr(err.message, "private"));
    sm_jwk_json_free(otherjson);

    json_decref(h);
    free(t1);
    free(t2);
    free(t3);
    free(t4);
    sm_jwk_free(other);
    free(jwe);
}
END_TEST

/* Header changes refused before decryption: {member, JSON value or NULL to
 * delete, expected status}. */
static const struct {
    const char *name;
    const char *value;
    sm_status status;
} bad_jwe_headers[] = {
    {"alg", "\"RSA-OAEP\"", SM_ERR_UNSUPPORTED},   {"alg", "\"dir\"", SM_ERR_UNSUPPORTED},
    {"alg", "\"ECDH-ES+A256KW\"", SM_ERR_UNSUPPORTED}, {"alg", "\"none\"", SM_ERR_UNSUPPORTED},
    {"alg", NULL, SM_ERR_UNSUPPORTED},             {"enc", "\"A128GCM\"", SM_ERR_UNSUPPORTED},
    {"enc", "\"A256CBC-HS512\"", SM_ERR_UNSUPPORTED}, {"enc", NULL, SM_ERR_UNSUPPORTED},
    {"zip", "\"DEF\"", SM_ERR_UNSUPPORTED},        {"crit", "[\"zip\"]", SM_ERR_UNSUPPORTED},
    {"apu", "\"QWxpY2U\"", SM_ERR_FORMAT},         {"jku", "\"https://x/\"", SM_ERR_FORMAT},
    {"epk", NULL, SM_ERR_FORMAT},                  {"epk", "\"x\"", SM_ERR_FORMAT},
    {"kid", "7", SM_ERR_FORMAT},                   {"kid", "\"a\\\"b\"", SM_ERR_FORMAT},
};

START_TEST(test_jwe_bad_header)
{
    sm_error err = {0};
    char *jwe = wrap(NULL);
    json_t *h = json_part(jwe, 0);
    if (bad_jwe_headers[_i].value == NULL)
        json_object_del(h, bad_jwe_headers[_i].name);
    else
        json_object_set_new(h, bad_jwe_headers[_i].name,
                            json_loads(bad_jwe_headers[_i].value, JSON_DECODE_ANY, NULL));
    char *t = with_json_part(jwe, 0, h);
    sm_status st = unwrap(device, t, &err);
    ck_assert_msg(st == bad_jwe_headers[_i].status, "%s=%s: got %s (%s)",
                  bad_jwe_headers[_i].name,
                  bad_jwe_headers[_i].value ? bad_jwe_headers[_i].value : "(deleted)",
                  sm_status_name(st), err.message);
    json_decref(h);
    free(t);
    free(jwe);
}
END_TEST

START_TEST(test_jwe_bad_parts)
{
    sm_error err = {0};
    char *jwe = wrap(NULL);
    uint8_t bytes[40];
    memset(bytes, 0x41, sizeof(bytes));
    /* Non-empty encrypted key; IV 16; 1-byte tag (CVE-2023-37464); ct 31/33. */
    const struct {
        int part;
        size_t len;
    } cases[] = {{1, 32}, {2, 16}, {2, 8}, {4, 1}, {4, 12}, {3, 31}, {3, 33}, {3, 0}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *enc = b64u(bytes, cases[i].len);
        char *t = replace_part(jwe, cases[i].part, enc);
        ck_assert_msg(unwrap(device, t, &err) == SM_ERR_FORMAT, "part %d len %zu: %s",
                      cases[i].part, cases[i].len, err.message);
        free(t);
        free(enc);
    }
    /* 4 or 6 parts, padding, oversize. */
    size_t n = strlen(jwe);
    char *six = malloc(n + 3);
    snprintf(six, n + 3, "%s.A", jwe);
    ck_assert_int_eq(unwrap(device, six, &err), SM_ERR_FORMAT);
    char *four = strdup(jwe);
    *strrchr(four, '.') = '\0';
    ck_assert_int_eq(unwrap(device, four, &err), SM_ERR_FORMAT);
    char *pad = malloc(n + 2);
    snprintf(pad, n + 2, "%s=", jwe);
    ck_assert_int_eq(unwrap(device, pad, &err), SM_ERR_FORMAT);
    char *big = malloc(SM_JOSE_MAX_TOKEN + 2);
    memset(big, 'A', SM_JOSE_MAX_TOKEN + 1);
    big[SM_JOSE_MAX_TOKEN + 1] = '\0';
    ck_assert_int_eq(unwrap(device, big, &err), SM_ERR_TOO_LARGE);

    /* A real A128GCM JWE made with cjose directly is refused too. */
    json_t *h = json_pack("{s:s,s:s}", "alg", "ECDH-ES", "enc", "A128GCM");
    cjose_err cerr;
    cjose_jwe_t *cj = cjose_jwe_encrypt(device_pub->cj, (cjose_header_t *)h, media_key->bytes,
                                        32, &cerr);
    ck_assert_ptr_nonnull(cj);
    char *ser = cjose_jwe_export(cj, &cerr);
    ck_assert_ptr_nonnull(ser);
    ck_assert_int_eq(unwrap(device, ser, &err), SM_ERR_UNSUPPORTED);
    cjose_get_dealloc()(ser);
    cjose_jwe_release(cj);
    json_decref(h);

    free(big);
    free(pad);
    free(four);
    free(six);
    free(jwe);
}
END_TEST

/* ---- DPoP ------------------------------------------------------------- */

static sm_status dpop_verify_at(const char *proof, int64_t now, const char *jkt,
                                const char *token, sm_dpop_result *res, sm_error *err)
{
    sm_dpop_expect e;
    sm_dpop_expect_init(&e, "POST", HTU);
    e.now = now;
    e.jkt = jkt;
    e.access_token = token;
    sm_status st = sm_dpop_verify(proof, strlen(proof), &e, res, err);
    if (st != SM_OK) {
        assert_clean_message(err);
        ck_assert_str_eq(res->jkt, "");
    }
    return st;
}

static char *dpop(const sm_jwk *key, const char *htm, const char *htu, const char *jti,
                  const char *token)
{
    char *proof = NULL;
    sm_error err = {0};
    ck_assert_int_eq(sm_dpop_create(key, htm, htu, NOW, jti, token, &proof, &err), SM_OK);
    return proof;
}

START_TEST(test_dpop_round_trip)
{
    sm_error err = {0};
    sm_jwk *dev = new_key();
    char jkt[SM_JKT_SIZE];
    ck_assert_int_eq(sm_jwk_thumbprint(dev, jkt, &err), SM_OK);
    char *proof = dpop(dev, "POST", HTU "?b=1#frag", NULL, NULL);
    sm_dpop_result res;
    ck_assert_int_eq(dpop_verify_at(proof, NOW + 5, jkt, NULL, &res, &err), SM_OK);
    ck_assert_str_eq(res.jkt, jkt);
    ck_assert_int_eq(res.iat, NOW);
    ck_assert_uint_ge(strlen(res.jti), 16);
    ck_assert_int_eq(dpop_verify_at(proof, NOW, NULL, NULL, &res, &err), SM_OK);

    /* Header: typ, alg, public jwk only; claims: htu without query. */
    json_t *h = json_part(proof, 0), *c = json_part(proof, 1);
    ck_assert_uint_eq(json_object_size(h), 3);
    ck_assert_str_eq(json_string_value(json_object_get(h, "typ")), "dpop+jwt");
    ck_assert_ptr_null(json_object_get(json_object_get(h, "jwk"), "d"));
    ck_assert_str_eq(json_string_value(json_object_get(c, "htu")), HTU);
    json_decref(h);
    json_decref(c);

    /* Fixed jti; a second proof has another random jti. */
    char *p2 = dpop(dev, "POST", HTU, "fixed-jti-0123456789", NULL);
    ck_assert_int_eq(dpop_verify_at(p2, NOW, jkt, NULL, &res, &err), SM_OK);
    ck_assert_str_eq(res.jti, "fixed-jti-0123456789");
    char *p3 = dpop(dev, "POST", HTU, NULL, NULL);
    sm_dpop_result res3;
    ck_assert_int_eq(dpop_verify_at(p3, NOW, jkt, NULL, &res3, &err), SM_OK);
    char *p1jti = strdup(res.jti);
    ck_assert_int_eq(dpop_verify_at(proof, NOW, jkt, NULL, &res, &err), SM_OK);
    ck_assert_str_ne(res.jti, res3.jti);
    free(p1jti);

    /* ath bound to an access token. */
    char *p4 = dpop(dev, "POST", HTU, NULL, "access-token-1");
    ck_assert_int_eq(dpop_verify_at(p4, NOW, jkt, "access-token-1", &res, &err), SM_OK);
    ck_assert_int_eq(dpop_verify_at(p4, NOW, jkt, "access-token-2", &res, &err), SM_ERR_CLAIM);
    ck_assert_int_eq(dpop_verify_at(p4, NOW, jkt, NULL, &res, &err), SM_ERR_CLAIM);
    ck_assert_int_eq(dpop_verify_at(proof, NOW, jkt, "access-token-1", &res, &err),
                     SM_ERR_CLAIM);

    /* Creating needs a private key, a method, an http(s) URL, a valid jti. */
    sm_jwk *pub = public_of(dev);
    char *x = NULL;
    ck_assert_int_eq(sm_dpop_create(pub, "POST", HTU, NOW, NULL, NULL, &x, &err), SM_ERR_KEY);
    ck_assert_int_eq(sm_dpop_create(dev, "PO ST", HTU, NOW, NULL, NULL, &x, &err), SM_ERR_ARG);
    ck_assert_int_eq(sm_dpop_create(dev, "POST", "ftp://x/", NOW, NULL, NULL, &x, &err),
                     SM_ERR_ARG);
    ck_assert_int_eq(sm_dpop_create(dev, "POST", HTU, NOW, "short", NULL, &x, &err),
                     SM_ERR_CLAIM);
    ck_assert_ptr_null(x);

    sm_jwk_free(pub);
    free(p2);
    free(p3);
    free(p4);
    free(proof);
    sm_jwk_free(dev);
}
END_TEST

START_TEST(test_dpop_failures)
{
    sm_error err = {0};
    sm_dpop_result res;
    sm_jwk *dev = new_key(), *other = new_key();
    char jkt[SM_JKT_SIZE], other_jkt[SM_JKT_SIZE];
    ck_assert_int_eq(sm_jwk_thumbprint(dev, jkt, &err), SM_OK);
    ck_assert_int_eq(sm_jwk_thumbprint(other, other_jkt, &err), SM_OK);
    char *proof = dpop(dev, "POST", HTU, NULL, NULL);

    /* Key mismatch with the bound jkt. */
    ck_assert_int_eq(dpop_verify_at(proof, NOW, other_jkt, NULL, &res, &err), SM_ERR_KEY);
    ck_assert_int_eq(dpop_verify_at(proof, NOW, "short", NULL, &res, &err), SM_ERR_KEY);
    /* Stale and future iat (defaults: 300 s old, 60 s ahead). */
    ck_assert_int_eq(dpop_verify_at(proof, NOW + 300, jkt, NULL, &res, &err), SM_OK);
    ck_assert_int_eq(dpop_verify_at(proof, NOW + 301, jkt, NULL, &res, &err), SM_ERR_EXPIRED);
    ck_assert_int_eq(dpop_verify_at(proof, NOW - 60, jkt, NULL, &res, &err), SM_OK);
    ck_assert_int_eq(dpop_verify_at(proof, NOW - 61, jkt, NULL, &res, &err), SM_ERR_EXPIRED);
    sm_dpop_expect e;
    sm_dpop_expect_init(&e, "POST", HTU);
    e.now = NOW + 11;
    e.max_age = 10;
    ck_assert_int_eq(sm_dpop_verify(proof, strlen(proof), &e, &res, &err), SM_ERR_EXPIRED);
    e.now = INT64_MAX;
    ck_assert_int_eq(sm_dpop_verify(proof, strlen(proof), &e, &res, &err), SM_ERR_ARG);
    e.now = NOW;
    e.max_age = INT64_MAX;
    ck_assert_int_eq(sm_dpop_verify(proof, strlen(proof), &e, &res, &err), SM_ERR_ARG);
    char *never = NULL;
    ck_assert_int_eq(sm_dpop_create(dev, "POST", HTU, INT64_MAX, NULL, NULL, &never, &err),
                     SM_ERR_ARG);
    /* Wrong method, wrong URL. */
    char *get = dpop(dev, "GET", HTU, NULL, NULL);
    ck_assert_int_eq(dpop_verify_at(get, NOW, jkt, NULL, &res, &err), SM_ERR_CLAIM);
    char *post = dpop(dev, "post", HTU, NULL, NULL);
    ck_assert_int_eq(dpop_verify_at(post, NOW, jkt, NULL, &res, &err), SM_ERR_CLAIM);
    const char *wrong_urls[] = {
        "https://ks.example/v1/license2",     "https://ks.example/v1/",
        "http://ks.example/v1/license",       "https://ks.example:8443/v1/license",
        "https://ks.example.evil/v1/license", "https://ks.example/V1/license"};
    for (size_t i = 0; i < sizeof(wrong_urls) / sizeof(wrong_urls[0]); i++) {
        char *p = dpop(dev, "POST", wrong_urls[i], NULL, NULL);
        ck_assert_msg(dpop_verify_at(p, NOW, jkt, NULL, &res, &err) == SM_ERR_CLAIM, "%s",
                      wrong_urls[i]);
        free(p);
    }
    /* Tampered payload, signature by another key than the embedded one. */
    json_t *c = json_part(proof, 1);
    json_object_set_new(c, "htu", json_string(HTU "x"));
    char *tp = with_json_part(proof, 1, c);
    ck_assert_int_eq(dpop_verify_at(tp, NOW, jkt, NULL, &res, &err), SM_ERR_AUTH);
    json_decref(c);
    char *otherproof = dpop(other, "POST", HTU, NULL, NULL);
    char *osig = part(otherproof, 2);
    char *mixed = replace_part(proof, 2, osig);
    ck_assert_int_eq(dpop_verify_at(mixed, NOW, NULL, NULL, &res, &err), SM_ERR_AUTH);

    free(mixed);
    free(osig);
    free(otherproof);
    free(tp);
    free(get);
    free(post);
    free(proof);
    sm_jwk_free(dev);
    sm_jwk_free(other);
}
END_TEST

/* Forged proofs: {header (printf %s = public jwk JSON), payload, status}. */
#define DPOP_CLAIMS \
    "{\"jti\":\"0123456789abcdefgh\",\"htm\":\"POST\",\"htu\":\"" HTU "\",\"iat\":1700000000"
static const struct {
    const char *header;
    const char *payload;
    sm_status status;
    int hmac;
} forged_proofs[] = {
    {"{\"typ\":\"dpop+jwt\",\"alg\":\"none\",\"jwk\":@@}", DPOP_CLAIMS "}", SM_ERR_UNSUPPORTED, 1},
    {"{\"typ\":\"dpop+jwt\",\"alg\":\"HS256\",\"jwk\":@@}", DPOP_CLAIMS "}", SM_ERR_UNSUPPORTED, 1},
    {"{\"typ\":\"dpop+jwt\",\"alg\":\"ES384\",\"jwk\":@@}", DPOP_CLAIMS "}", SM_ERR_UNSUPPORTED, 0},
    {"{\"typ\":\"jwt\",\"alg\":\"ES256\",\"jwk\":@@}", DPOP_CLAIMS "}", SM_ERR_CLAIM, 0},
    {"{\"alg\":\"ES256\",\"jwk\":@@}", DPOP_CLAIMS "}", SM_ERR_FORMAT, 0},
    {"{\"typ\":\"dpop+jwt\",\"alg\":\"ES256\"}", DPOP_CLAIMS "}", SM_ERR_FORMAT, 0},
    {"{\"typ\":\"dpop+jwt\",\"alg\":\"ES256\",\"kid\":\"k\",\"jwk\":@@}", DPOP_CLAIMS "}",
     SM_ERR_FORMAT, 0},
    {"{\"typ\":\"dpop+jwt\",\"alg\":\"ES256\",\"crit\":[\"x\"],\"jwk\":@@}", DPOP_CLAIMS "}",
     SM_ERR_UNSUPPORTED, 0},
    {"{\"typ\":\"dpop+jwt\",\"alg\":\"ES256\",\"jwk\":@@}",
     "{\"htm\":\"POST\",\"htu\":\"" HTU "\",\"iat\":1700000000}", SM_ERR_CLAIM, 0},
    {"{\"typ\":\"dpop+jwt\",\"alg\":\"ES256\",\"jwk\":@@}",
     "{\"jti\":\"0123456789abcdefgh\",\"htu\":\"" HTU "\",\"iat\":1700000000}", SM_ERR_CLAIM, 0},
    {"{\"typ\":\"dpop+jwt\",\"alg\":\"ES256\",\"jwk\":@@}",
     "{\"jti\":\"0123456789abcdefgh\",\"htm\":\"POST\",\"iat\":1700000000}", SM_ERR_CLAIM, 0},
    {"{\"typ\":\"dpop+jwt\",\"alg\":\"ES256\",\"jwk\":@@}",
     "{\"jti\":\"0123456789abcdefgh\",\"htm\":\"POST\",\"htu\":\"" HTU "\"}", SM_ERR_CLAIM, 0},
    {"{\"typ\":\"dpop+jwt\",\"alg\":\"ES256\",\"jwk\":@@}",
     "{\"jti\":\"0123456789abcdefgh\",\"htm\":\"POST\",\"htu\":\"" HTU "\",\"iat\":\"1700000000\"}",
     SM_ERR_CLAIM, 0},
    {"{\"typ\":\"dpop+jwt\",\"alg\":\"ES256\",\"jwk\":@@}",
     "{\"jti\":\"short\",\"htm\":\"POST\",\"htu\":\"" HTU "\",\"iat\":1700000000}", SM_ERR_CLAIM,
     0},
    {"{\"typ\":\"dpop+jwt\",\"alg\":\"ES256\",\"jwk\":@@}", DPOP_CLAIMS ",\"nonce\":\"n\"}",
     SM_ERR_CLAIM, 0},
    {"{\"typ\":\"dpop+jwt\",\"alg\":\"ES256\",\"jwk\":@@}", DPOP_CLAIMS ",\"exp\":1700000100}",
     SM_ERR_CLAIM, 0},
};

START_TEST(test_dpop_forged)
{
    sm_error err = {0};
    sm_jwk *dev = new_key();
    char *pub = sm_jwk_to_json(dev, 0, &err);
    char *header = subst(forged_proofs[_i].header, pub);
    char *proof = forged_proofs[_i].hmac ? forge_hs256(dev, header, forged_proofs[_i].payload)
                                         : forge_signed(dev, header, forged_proofs[_i].payload);
    sm_dpop_result res;
    sm_status st = dpop_verify_at(proof, NOW, NULL, NULL, &res, &err);
    ck_assert_msg(st == forged_proofs[_i].status, "#%d: got %s (%s)", _i, sm_status_name(st),
                  err.message);
    free(proof);
    free(header);
    sm_jwk_json_free(pub);
    sm_jwk_free(dev);
}
END_TEST

START_TEST(test_dpop_private_jwk)
{
    /* A proof whose embedded jwk holds the private key, validly signed. */
    sm_error err = {0};
    sm_jwk *dev = new_key();
    char *priv = sm_jwk_to_json(dev, 1, &err);
    char header[1024];
    snprintf(header, sizeof(header), "{\"typ\":\"dpop+jwt\",\"alg\":\"ES256\",\"jwk\":%s}", priv);
    char *proof = forge_signed(dev, header, DPOP_CLAIMS "}");
    sm_dpop_result res;
    ck_assert_int_eq(dpop_verify_at(proof, NOW, NULL, NULL, &res, &err), SM_ERR_KEY);
    ck_assert_ptr_nonnull(strstr(err.message, "private"));
    /* The same with the public jwk verifies: the forging itself is sound. */
    char *pub = sm_jwk_to_json(dev, 0, &err);
    snprintf(header, sizeof(header), "{\"typ\":\"dpop+jwt\",\"alg\":\"ES256\",\"jwk\":%s}", pub);
    char *ok = forge_signed(dev, header, DPOP_CLAIMS "}");
    ck_assert_int_eq(dpop_verify_at(ok, NOW, NULL, NULL, &res, &err), SM_OK);
    free(ok);
    sm_jwk_json_free(pub);
    free(proof);
    sm_jwk_json_free(priv);
    sm_jwk_free(dev);
}
END_TEST

START_TEST(test_dpop_key)
{
    /* sm_dpop_verify_key hands back the proof's public key: the device's,
     * the same (cached) object for the next proof, usable as the JWE
     * recipient; nothing on failure; a point off the curve next to a cached
     * one is still refused. */
    sm_error err = {0};
    sm_jwk *dev = new_key();
    char jkt[SM_JKT_SIZE];
    ck_assert_int_eq(sm_jwk_thumbprint(dev, jkt, &err), SM_OK);
    sm_dpop_expect e;
    sm_dpop_expect_init(&e, "POST", HTU);
    e.now = NOW;
    sm_dpop_result res;
    sm_jwk *k1 = NULL, *k2 = NULL, *k3 = NULL;
    char *p1 = dpop(dev, "POST", HTU, NULL, NULL), *p2 = dpop(dev, "POST", HTU, NULL, NULL);
    ck_assert_int_eq(sm_dpop_verify_key(p1, strlen(p1), &e, &res, &k1, &err), SM_OK);
    ck_assert_str_eq(res.jkt, jkt);
    ck_assert_ptr_nonnull(k1);
    ck_assert(sm_jwk_same_public(k1, dev));
    ck_assert(!sm_jwk_has_private(k1));
    ck_assert_ptr_null(sm_jwk_kid(k1));
    ck_assert_int_eq(sm_dpop_verify_key(p2, strlen(p2), &e, &res, &k2, &err), SM_OK);
    ck_assert_ptr_eq(k1, k2);
    ck_assert_str_eq(res.jkt, jkt);
    /* The media key wrapped to it opens with the device's private key. */
    sm_secret *mk = sm_secret_random(32), *back = NULL;
    char *jwe = NULL;
    ck_assert_int_eq(sm_jwe_wrap_key(k2, mk, jkt, &jwe, &err), SM_OK);
    ck_assert_int_eq(sm_jwe_unwrap_key(dev, jwe, strlen(jwe), &back, &err), SM_OK);
    ck_assert(sm_ct_equal(back->bytes, mk->bytes, 32));
    sm_secret_free(back);
    free(jwe);
    sm_jwk_free(k1);
    sm_jwk_free(k2);
    /* Refused: no key comes back. */
    e.htu = "https://other.example/v1/license";
    k3 = (sm_jwk *)1;
    ck_assert_int_eq(sm_dpop_verify_key(p1, strlen(p1), &e, &res, &k3, &err), SM_ERR_CLAIM);
    ck_assert_ptr_null(k3);
    /* The cached x with another y (off the curve), validly signed. */
    char *pub = sm_jwk_to_json(dev, 0, &err);
    char *y = strstr(pub, "\"y\":\"");
    ck_assert_ptr_nonnull(y);
    y[6] = y[6] == 'A' ? 'B' : 'A';
    char header[1024];
    snprintf(header, sizeof(header), "{\"typ\":\"dpop+jwt\",\"alg\":\"ES256\",\"jwk\":%s}", pub);
    char *bad = forge_signed(dev, header, DPOP_CLAIMS "}");
    ck_assert_int_eq(dpop_verify_at(bad, NOW, NULL, NULL, &res, &err), SM_ERR_KEY);
    free(bad);
    sm_jwk_json_free(pub);
    sm_secret_free(mk);
    free(p1);
    free(p2);
    sm_jwk_free(dev);
}
END_TEST

START_TEST(test_htu_equal)
{
    static const char *const same[][2] = {
        {"https://ks.example/v1/license", "https://ks.example/v1/license"},
        {"https://ks.example/v1/license", "HTTPS://KS.Example/v1/license"},
        {"https://ks.example/v1/license", "https://ks.example:443/v1/license"},
        {"http://ks.example/", "http://ks.example:80"},
        {"https://ks.example", "https://ks.example/"},
        {"https://ks.example/v1/license?x=1", "https://ks.example/v1/license#frag"},
        {"https://ks.example/a%2fb", "https://ks.example/a%2Fb"},
        {"https://[::1]:8443/x", "https://[::1]:8443/x?y"},
        {"https://ks.example:/x", "https://ks.example/x"},
    };
    static const char *const differ[][2] = {
        {"https://ks.example/v1/license", "http://ks.example/v1/license"},
        {"https://ks.example/v1/license", "https://ks.example:8443/v1/license"},
        {"https://ks.example/v1/license", "https://ks.example/v1/License"},
        {"https://ks.example/v1/license", "https://ks.example/v1/license/"},
        {"https://ks.example/a%2fb", "https://ks.example/a/b"},
        {"https://ks.example/", "https://user@ks.example/"},
        {"https://ks.example/", "ftp://ks.example/"},
        {"https://ks.example/", "https://ks.example:99999/"},
        {"https://ks.example/", "https://ks.example:0/"},
        {"https://ks.example/", "https:///"},
        {"https://ks.example/", "https://ks.example/ x"},
        {"https://ks.example/", ""},
    };
    for (size_t i = 0; i < sizeof(same) / sizeof(same[0]); i++)
        ck_assert_msg(sm_dpop_htu_equal(same[i][0], same[i][1]), "%s vs %s", same[i][0],
                      same[i][1]);
    for (size_t i = 0; i < sizeof(differ) / sizeof(differ[0]); i++)
        ck_assert_msg(!sm_dpop_htu_equal(differ[i][0], differ[i][1]), "%s vs %s", differ[i][0],
                      differ[i][1]);
}
END_TEST

static Suite *jose_suite(void)
{
    Suite *s = suite_create("jose");
    TCase *jwk = tcase_create("jwk");
    tcase_add_test(jwk, test_jwk_generate_round_trip);
    tcase_add_test(jwk, test_thumbprint_fixed);
    tcase_add_loop_test(jwk, test_jwk_invalid, 0, (int)(sizeof(bad_jwks) / sizeof(bad_jwks[0])));
    tcase_add_test(jwk, test_jwk_private_matches);
    tcase_add_test(jwk, test_jwk_files);
    tcase_add_test(jwk, test_device_key_default_path);
    tcase_add_test(jwk, test_wycheproof_public_keys);
    tcase_add_test(jwk, test_jwks);
    suite_add_tcase(s, jwk);

    TCase *jws = tcase_create("jws");
    tcase_add_checked_fixture(jws, jws_setup, jws_teardown);
    tcase_add_test(jws, test_jws_round_trip);
    tcase_add_test(jws, test_jws_key_and_claim_failures);
    tcase_add_loop_test(jws, test_jws_missing_claim, 0,
                        (int)(sizeof(required_claims) / sizeof(required_claims[0])));
    tcase_add_loop_test(jws, test_jws_bad_claim_value, 0,
                        (int)(sizeof(bad_claims) / sizeof(bad_claims[0])));
    tcase_add_test(jws, test_jws_tampering);
    tcase_add_loop_test(jws, test_jws_bad_alg, 0,
                        (int)(sizeof(bad_alg_headers) / sizeof(bad_alg_headers[0])));
    tcase_add_loop_test(jws, test_jws_bad_header, 0,
                        (int)(sizeof(bad_headers) / sizeof(bad_headers[0])));
    tcase_add_test(jws, test_jws_duplicate_header_member);
    suite_add_tcase(s, jws);

    TCase *jwe = tcase_create("jwe");
    tcase_add_checked_fixture(jwe, jwe_setup, jwe_teardown);
    tcase_add_test(jwe, test_jwe_round_trip);
    tcase_add_test(jwe, test_jwe_sealer);
    tcase_add_test(jwe, test_jwe_wrong_key);
    tcase_add_test(jwe, test_jwe_tampering);
    tcase_add_loop_test(jwe, test_jwe_bad_header, 0,
                        (int)(sizeof(bad_jwe_headers) / sizeof(bad_jwe_headers[0])));
    tcase_add_test(jwe, test_jwe_bad_parts);
    suite_add_tcase(s, jwe);

    TCase *dp = tcase_create("dpop");
    tcase_add_test(dp, test_dpop_round_trip);
    tcase_add_test(dp, test_dpop_failures);
    tcase_add_loop_test(dp, test_dpop_forged, 0,
                        (int)(sizeof(forged_proofs) / sizeof(forged_proofs[0])));
    tcase_add_test(dp, test_dpop_private_jwk);
    tcase_add_test(dp, test_dpop_key);
    tcase_add_test(dp, test_htu_equal);
    suite_add_tcase(s, dp);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(jose_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
