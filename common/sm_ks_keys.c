#include "config.h"

/* The key server's signing and encryption keys (see sm_ks_keys.h). */

#include <stdlib.h>
#include <string.h>

#include "sm_ks_keys.h"

struct sm_ks_keys {
    sm_jwk *signing[SM_KS_MAX_SIGNING_KEYS];
    size_t n_signing;
    sm_jwk *active; /* one of signing[], not owned separately */
    sm_jwks *public_set;
    sm_jwk *encryption;
};

sm_status sm_ks_keys_new(sm_ks_keys **out, sm_error *err)
{
    *out = NULL;
    sm_ks_keys *keys = calloc(1, sizeof(*keys));
    if (keys == NULL)
        return sm_error_set(err, SM_ERR_NOMEM, "key server keys: out of memory");
    sm_status st = sm_jwks_new(&keys->public_set, err);
    if (st != SM_OK) {
        free(keys);
        return st;
    }
    *out = keys;
    return SM_OK;
}

void sm_ks_keys_free(sm_ks_keys *keys)
{
    if (keys == NULL)
        return;
    for (size_t i = 0; i < keys->n_signing; i++)
        sm_jwk_free(keys->signing[i]);
    sm_jwks_free(keys->public_set);
    sm_jwk_free(keys->encryption);
    free(keys);
}

sm_status sm_ks_keys_add_signing(sm_ks_keys *keys, sm_jwk *key, const char *kid, int active,
                                 sm_error *err)
{
    if (key == NULL || kid == NULL)
        return sm_error_set(err, SM_ERR_ARG, "signing key: a key and a kid are needed");
    if (!sm_jwk_has_private(key))
        return sm_error_set(err, SM_ERR_KEY,
                            "signing key %.128s: the file holds only a public key", kid);
    if (active && keys->active != NULL)
        return sm_error_set(err, SM_ERR_ARG,
                            "signing key %.128s: key %s is already the active signing key; "
                            "only one may be active",
                            kid, sm_jwk_kid(keys->active));
    if (keys->n_signing >= SM_KS_MAX_SIGNING_KEYS)
        return sm_error_set(err, SM_ERR_TOO_LARGE, "at most %u signing keys",
                            SM_KS_MAX_SIGNING_KEYS);
    if (sm_jwks_find(keys->public_set, kid) != NULL)
        return sm_error_set(err, SM_ERR_ARG, "signing key kid %.128s is used twice", kid);
    for (size_t i = 0; i < keys->n_signing; i++)
        if (sm_jwk_same_public(keys->signing[i], key))
            return sm_error_set(err, SM_ERR_ARG,
                                "signing key %.128s is the same key as %s under another kid", kid,
                                sm_jwk_kid(keys->signing[i]));
    sm_status st = sm_jwk_set_kid(key, kid, err);
    if (st != SM_OK)
        return st;
    if ((st = sm_jwks_add(keys->public_set, key, kid, err)) != SM_OK)
        return st;
    keys->signing[keys->n_signing++] = key;
    if (active)
        keys->active = key;
    return SM_OK;
}

sm_status sm_ks_keys_load_signing(sm_ks_keys *keys, const char *path, const char *kid, int active,
                                  sm_error *err)
{
    sm_jwk *key = NULL;
    sm_status st = sm_jwk_load_file(path, &key, err);
    if (st != SM_OK)
        return st;
    if ((st = sm_ks_keys_add_signing(keys, key, kid, active, err)) != SM_OK)
        sm_jwk_free(key);
    return st;
}

sm_status sm_ks_keys_set_encryption(sm_ks_keys *keys, sm_jwk *key, const char *kid,
                                    sm_error *err)
{
    if (key == NULL || kid == NULL)
        return sm_error_set(err, SM_ERR_ARG, "encryption key: a key and a kid are needed");
    if (keys->encryption != NULL)
        return sm_error_set(err, SM_ERR_ARG, "only one encryption key may be configured");
    if (!sm_jwk_has_private(key))
        return sm_error_set(err, SM_ERR_KEY,
                            "encryption key %.128s: the file holds only a public key", kid);
    /* One key, one purpose: a signing key reused for ECDH would let one
     * protocol's messages be played against the other. */
    for (size_t i = 0; i < keys->n_signing; i++)
        if (sm_jwk_same_public(keys->signing[i], key))
            return sm_error_set(err, SM_ERR_ARG,
                                "the encryption key is also signing key %s; use separate keys",
                                sm_jwk_kid(keys->signing[i]));
    sm_status st = sm_jwk_set_kid(key, kid, err);
    if (st != SM_OK)
        return st;
    keys->encryption = key;
    return SM_OK;
}

sm_status sm_ks_keys_load_encryption(sm_ks_keys *keys, const char *path, const char *kid,
                                     sm_error *err)
{
    sm_jwk *key = NULL;
    sm_status st = sm_jwk_load_file(path, &key, err);
    if (st != SM_OK)
        return st;
    if ((st = sm_ks_keys_set_encryption(keys, key, kid, err)) != SM_OK)
        sm_jwk_free(key);
    return st;
}

void sm_ks_keys_default_active(sm_ks_keys *keys)
{
    if (keys->active == NULL && keys->n_signing == 1)
        keys->active = keys->signing[0];
}

sm_status sm_ks_keys_check(const sm_ks_keys *keys, sm_error *err)
{
    if (keys->active == NULL)
        return sm_error_set(err, SM_ERR_KEY,
                            keys->n_signing == 0 ? "no signing key is configured"
                                                 : "none of the signing keys is marked active");
    if (keys->encryption == NULL)
        return sm_error_set(err, SM_ERR_KEY, "no encryption key is configured");
    return SM_OK;
}

const sm_jwks *sm_ks_keys_jwks(const sm_ks_keys *keys)
{
    return keys->public_set;
}

char *sm_ks_keys_jwks_json(const sm_ks_keys *keys, sm_error *err)
{
    return sm_jwks_to_json(keys->public_set, err);
}

char *sm_ks_keys_encryption_jwk_json(const sm_ks_keys *keys, sm_error *err)
{
    if (keys->encryption == NULL) {
        sm_error_set(err, SM_ERR_KEY, "no encryption key is configured");
        return NULL;
    }
    return sm_jwk_to_json(keys->encryption, 0, err);
}

const char *sm_ks_keys_active_kid(const sm_ks_keys *keys)
{
    return keys->active != NULL ? sm_jwk_kid(keys->active) : NULL;
}

sm_status sm_ks_keys_sign(const sm_ks_keys *keys, const char *typ, json_t *claims,
                          char **compact_out, sm_error *err)
{
    if (keys->active == NULL)
        return sm_error_set(err, SM_ERR_KEY, "no active signing key");
    return sm_jws_sign(keys->active, sm_jwk_kid(keys->active), typ, claims, compact_out, err);
}

sm_status sm_ks_keys_unwrap_media_key(const sm_ks_keys *keys, const char *jwe, size_t len,
                                      sm_secret **key_out, sm_error *err)
{
    *key_out = NULL;
    if (keys->encryption == NULL)
        return sm_error_set(err, SM_ERR_KEY, "no encryption key is configured");
    /* The header's kid is not checked: senders use it for their own labels
     * (`secmedia pack` writes "<work id>:<key version>"), and a JWE made for
     * any other key fails authentication anyway. */
    return sm_jwe_unwrap_key(keys->encryption, jwe, len, key_out, err);
}
