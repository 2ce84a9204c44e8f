#include "config.h"

/* jose_tool: the library's JOSE helpers as a command for the jwcrypto
 * interop test (tests/interop/jwcrypto_interop.sh) and for making fuzz
 * seeds. Output goes to stdout; errors to stderr with exit status 1. */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sm_jose.h"

static void usage(void)
{
    fprintf(stderr,
            "usage: jose_tool keygen PRIVATE.jwk PUBLIC.jwk\n"
            "       jose_tool thumbprint JWKFILE\n"
            "       jose_tool wrap PUBLIC.jwk KEYHEX [KID]\n"
            "       jose_tool unwrap PRIVATE.jwk JWEFILE\n"
            "       jose_tool sign PRIVATE.jwk KID TYP CLAIMS.json\n"
            "       jose_tool verify JWKS.json ISS AUD TYP NOW TOKENFILE\n"
            "       jose_tool jwks PUBLIC.jwk KID\n"
            "       jose_tool dpop PRIVATE.jwk HTM HTU NOW [JTI]\n"
            "       jose_tool dpop-verify HTM HTU NOW PROOFFILE [JKT]\n");
}

static int fail(const char *what, const sm_error *err)
{
    fprintf(stderr, "jose_tool %s: %s (%s)\n", what, err->message, sm_status_name(err->status));
    return 1;
}

/* Whole file, trailing whitespace removed; NULL with a message on error. */
static char *read_text(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "jose_tool: cannot open %s: %s\n", path, strerror(errno));
        return NULL;
    }
    size_t cap = 65536, n;
    char *buf = malloc(cap + 1);
    if (buf == NULL) {
        fclose(f);
        return NULL;
    }
    n = fread(buf, 1, cap, f);
    fclose(f);
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
        n--;
    buf[n] = '\0';
    *len = n;
    return buf;
}

static int parse_i64(const char *s, int64_t *out)
{
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0')
        return 0;
    *out = v;
    return 1;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static int cmd_keygen(char **argv)
{
    sm_error err = {0};
    sm_jwk *jwk = NULL;
    if (sm_jwk_generate(&jwk, &err) != SM_OK ||
        sm_jwk_save_file(jwk, argv[0], 1, &err) != SM_OK ||
        sm_jwk_save_file(jwk, argv[1], 0, &err) != SM_OK) {
        sm_jwk_free(jwk);
        return fail("keygen", &err);
    }
    sm_jwk_free(jwk);
    return 0;
}

static int cmd_thumbprint(char **argv)
{
    sm_error err = {0};
    sm_jwk *jwk = NULL;
    char jkt[SM_JKT_SIZE];
    if (sm_jwk_load_file(argv[0], &jwk, &err) != SM_OK ||
        sm_jwk_thumbprint(jwk, jkt, &err) != SM_OK) {
        sm_jwk_free(jwk);
        return fail("thumbprint", &err);
    }
    printf("%s\n", jkt);
    sm_jwk_free(jwk);
    return 0;
}

static int cmd_wrap(char **argv, int argc)
{
    sm_error err = {0};
    size_t hl = strlen(argv[1]);
    if (hl != 2 * SM_JWE_KEY_LEN) {
        fprintf(stderr, "jose_tool wrap: KEYHEX must be %u hex digits\n", 2 * SM_JWE_KEY_LEN);
        return 2;
    }
    sm_secret *key = sm_secret_new(SM_JWE_KEY_LEN);
    if (key == NULL)
        return 1;
    for (size_t i = 0; i < SM_JWE_KEY_LEN; i++) {
        int hi = hexval(argv[1][2 * i]), lo = hexval(argv[1][2 * i + 1]);
        if (hi < 0 || lo < 0) {
            sm_secret_free(key);
            fprintf(stderr, "jose_tool wrap: KEYHEX is not hex\n");
            return 2;
        }
        key->bytes[i] = (uint8_t)(hi << 4 | lo);
    }
    sm_jwk *jwk = NULL;
    char *jwe = NULL;
    int rc = 0;
    if (sm_jwk_load_file(argv[0], &jwk, &err) != SM_OK ||
        sm_jwe_wrap_key(jwk, key, argc > 2 ? argv[2] : NULL, &jwe, &err) != SM_OK)
        rc = fail("wrap", &err);
    else
        printf("%s\n", jwe);
    free(jwe);
    sm_jwk_free(jwk);
    sm_secret_free(key);
    return rc;
}

static int cmd_unwrap(char **argv)
{
    sm_error err = {0};
    size_t len = 0;
    char *jwe = read_text(argv[1], &len);
    if (jwe == NULL)
        return 1;
    sm_jwk *jwk = NULL;
    sm_secret *key = NULL;
    int rc = 0;
    if (sm_jwk_load_file(argv[0], &jwk, &err) != SM_OK ||
        sm_jwe_unwrap_key(jwk, jwe, len, &key, &err) != SM_OK) {
        rc = fail("unwrap", &err);
    } else {
        for (size_t i = 0; i < key->len; i++)
            printf("%02x", key->bytes[i]);
        printf("\n");
    }
    sm_secret_free(key);
    sm_jwk_free(jwk);
    free(jwe);
    return rc;
}

static int cmd_sign(char **argv)
{
    sm_error err = {0};
    size_t len = 0;
    char *text = read_text(argv[3], &len);
    if (text == NULL)
        return 1;
    json_error_t jerr;
    json_t *claims = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    free(text);
    if (claims == NULL) {
        fprintf(stderr, "jose_tool sign: %s: %s\n", argv[3], jerr.text);
        return 1;
    }
    sm_jwk *jwk = NULL;
    char *jws = NULL;
    int rc = 0;
    if (sm_jwk_load_file(argv[0], &jwk, &err) != SM_OK ||
        sm_jws_sign(jwk, argv[1], argv[2], claims, &jws, &err) != SM_OK)
        rc = fail("sign", &err);
    else
        printf("%s\n", jws);
    free(jws);
    sm_jwk_free(jwk);
    json_decref(claims);
    return rc;
}

static int cmd_verify(char **argv)
{
    sm_error err = {0};
    size_t jl = 0, tl = 0;
    int64_t now;
    if (!parse_i64(argv[4], &now)) {
        fprintf(stderr, "jose_tool verify: NOW must be an integer\n");
        return 2;
    }
    char *jwks_text = read_text(argv[0], &jl);
    char *token = read_text(argv[5], &tl);
    sm_jwks *set = NULL;
    json_t *claims = NULL;
    int rc = 0;
    sm_jws_expect e;
    sm_jws_expect_init(&e, argv[1], argv[2], argv[3]);
    e.now = now;
    char kid[SM_JOSE_KID_MAX + 1];
    if (jwks_text == NULL || token == NULL) {
        rc = 1;
    } else if (sm_jwks_from_json(jwks_text, jl, &set, &err) != SM_OK ||
               sm_jws_verify(token, tl, set, &e, &claims, kid, &err) != SM_OK) {
        rc = fail("verify", &err);
    } else {
        char *s = json_dumps(claims, JSON_COMPACT | JSON_SORT_KEYS);
        printf("%s\n", s != NULL ? s : "");
        free(s);
    }
    json_decref(claims);
    sm_jwks_free(set);
    free(jwks_text);
    free(token);
    return rc;
}

static int cmd_jwks(char **argv)
{
    sm_error err = {0};
    sm_jwk *jwk = NULL;
    sm_jwks *set = NULL;
    char *doc = NULL;
    int rc = 0;
    if (sm_jwk_load_file(argv[0], &jwk, &err) != SM_OK || sm_jwks_new(&set, &err) != SM_OK ||
        sm_jwks_add(set, jwk, argv[1], &err) != SM_OK ||
        (doc = sm_jwks_to_json(set, &err)) == NULL)
        rc = fail("jwks", &err);
    else
        printf("%s\n", doc);
    free(doc);
    sm_jwks_free(set);
    sm_jwk_free(jwk);
    return rc;
}

static int cmd_dpop(char **argv, int argc)
{
    sm_error err = {0};
    int64_t now;
    if (!parse_i64(argv[3], &now)) {
        fprintf(stderr, "jose_tool dpop: NOW must be an integer\n");
        return 2;
    }
    sm_jwk *jwk = NULL;
    char *proof = NULL;
    int rc = 0;
    if (sm_jwk_load_file(argv[0], &jwk, &err) != SM_OK ||
        sm_dpop_create(jwk, argv[1], argv[2], now, argc > 4 ? argv[4] : NULL, NULL, &proof,
                       &err) != SM_OK)
        rc = fail("dpop", &err);
    else
        printf("%s\n", proof);
    free(proof);
    sm_jwk_free(jwk);
    return rc;
}

static int cmd_dpop_verify(char **argv, int argc)
{
    sm_error err = {0};
    int64_t now;
    if (!parse_i64(argv[2], &now)) {
        fprintf(stderr, "jose_tool dpop-verify: NOW must be an integer\n");
        return 2;
    }
    size_t len = 0;
    char *proof = read_text(argv[3], &len);
    if (proof == NULL)
        return 1;
    sm_dpop_expect e;
    sm_dpop_expect_init(&e, argv[0], argv[1]);
    e.now = now;
    e.jkt = argc > 4 ? argv[4] : NULL;
    sm_dpop_result res;
    int rc = 0;
    if (sm_dpop_verify(proof, len, &e, &res, &err) != SM_OK)
        rc = fail("dpop-verify", &err);
    else
        printf("%s %s %lld\n", res.jkt, res.jti, (long long)res.iat);
    free(proof);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage();
        return 2;
    }
    const char *cmd = argv[1];
    char **args = argv + 2;
    int n = argc - 2;
    if (strcmp(cmd, "keygen") == 0 && n == 2)
        return cmd_keygen(args);
    if (strcmp(cmd, "thumbprint") == 0 && n == 1)
        return cmd_thumbprint(args);
    if (strcmp(cmd, "wrap") == 0 && (n == 2 || n == 3))
        return cmd_wrap(args, n);
    if (strcmp(cmd, "unwrap") == 0 && n == 2)
        return cmd_unwrap(args);
    if (strcmp(cmd, "sign") == 0 && n == 4)
        return cmd_sign(args);
    if (strcmp(cmd, "verify") == 0 && n == 6)
        return cmd_verify(args);
    if (strcmp(cmd, "jwks") == 0 && n == 2)
        return cmd_jwks(args);
    if (strcmp(cmd, "dpop") == 0 && (n == 4 || n == 5))
        return cmd_dpop(args, n);
    if (strcmp(cmd, "dpop-verify") == 0 && (n == 4 || n == 5))
        return cmd_dpop_verify(args, n);
    usage();
    return 2;
}
