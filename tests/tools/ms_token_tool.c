/* Test helper for the media store tests: signing keys, their JWKS and
 * ES256 tokens with arbitrary claims, made with the project's own JOSE
 * code (what the key server will use).
 *
 *   ms_token_tool keygen OUT.jwk KID        private P-256 JWK, mode 0600
 *   ms_token_tool jwks KEY.jwk...           prints the public JWKS
 *   ms_token_tool sign KEY.jwk TYP CLAIMS   prints a compact JWS over the
 *                                           JSON object CLAIMS, as given */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sm_jose.h"

static int fail(const char *what, const sm_error *err)
{
    fprintf(stderr, "ms_token_tool %s: %s\n", what, err->message);
    return 1;
}

int main(int argc, char **argv)
{
    sm_error err;
    if (argc == 4 && strcmp(argv[1], "keygen") == 0) {
        sm_jwk *key;
        if (sm_jwk_generate(&key, &err) != SM_OK || sm_jwk_set_kid(key, argv[3], &err) != SM_OK ||
            sm_jwk_save_file_overwrite(key, argv[2], 1, &err) != SM_OK)
            return fail("keygen", &err);
        sm_jwk_free(key);
        return 0;
    }
    if (argc >= 3 && strcmp(argv[1], "jwks") == 0) {
        sm_jwks *set;
        if (sm_jwks_new(&set, &err) != SM_OK)
            return fail("jwks", &err);
        for (int i = 2; i < argc; i++) {
            sm_jwk *key;
            if (sm_jwk_load_file(argv[i], &key, &err) != SM_OK ||
                sm_jwks_add(set, key, NULL, &err) != SM_OK)
                return fail("jwks", &err);
            sm_jwk_free(key);
        }
        char *json = sm_jwks_to_json(set, &err);
        if (json == NULL)
            return fail("jwks", &err);
        printf("%s\n", json);
        free(json);
        sm_jwks_free(set);
        return 0;
    }
    if (argc == 5 && strcmp(argv[1], "sign") == 0) {
        sm_jwk *key;
        json_error_t jerr;
        json_t *claims = json_loads(argv[4], 0, &jerr);
        char *token;
        if (claims == NULL) {
            fprintf(stderr, "ms_token_tool sign: claims are not JSON: %s\n", jerr.text);
            return 1;
        }
        if (sm_jwk_load_file(argv[2], &key, &err) != SM_OK ||
            sm_jws_sign(key, NULL, argv[3], claims, &token, &err) != SM_OK)
            return fail("sign", &err);
        printf("%s\n", token);
        free(token);
        json_decref(claims);
        sm_jwk_free(key);
        return 0;
    }
    fprintf(stderr, "usage: ms_token_tool keygen OUT KID | jwks KEY... | sign KEY TYP CLAIMS\n");
    return 2;
}
