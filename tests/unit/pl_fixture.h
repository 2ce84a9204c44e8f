/* A memory-backed world for the player core's tests: a device key on disk,
 * a packed container, a fake key server and fake media store mirrors behind
 * an sm_pl_transport, so the core runs end to end with no network and no
 * VLC. */
#ifndef PL_FIXTURE_H
#define PL_FIXTURE_H

#include <stddef.h>
#include <stdint.h>

#include "sm_jose.h"
#include "sm_pl_http.h"
#include "sm_pl_session.h"
#include "sm_secmem.h"

#define PLF_LICENSE_URL "https://keys.test/v1/license"
#define PLF_WORK_ID "work-42"
#define PLF_TOKEN "eyJhbGciOiJFUzI1NiJ9.eyJ3b3JrX2lkIjoid29yay00MiJ9.c2lnbmF0dXJlc2lnbmF0dXJl"
/* The delivery token a renewal hands out. */
#define PLF_RENEWED_TOKEN "eyJhbGciOiJFUzI1NiJ9.eyJ3b3JrX2lkIjoid29yay00MiJ9.cmVuZXdlZHJlbmV3ZWQ"
#define PLF_MAX_MIRRORS 4

typedef enum plf_mirror_mode {
    PLF_MIRROR_OK = 0,
    PLF_MIRROR_DOWN,         /* connection refused */
    PLF_MIRROR_CERT,         /* certificate not trusted */
    PLF_MIRROR_500,
    PLF_MIRROR_404,
    PLF_MIRROR_IGNORE_RANGE, /* answers 200 with the whole file */
    PLF_MIRROR_HANG          /* never answers: reports an interruption */
} plf_mirror_mode;

typedef struct plf_mirror {
    char url[128];
    plf_mirror_mode mode;
    uint8_t *data;      /* what this mirror serves (owned) */
    size_t len;
    unsigned requests;
    int fail_after;     /* > 0: switch to PLF_MIRROR_DOWN after this many requests */
    /* > 0: PLF_TOKEN is answered 401 token-expired after this many
     * requests (a play outliving its delivery token); PLF_RENEWED_TOKEN
     * stays good. */
    int token_expires_after;
    uint64_t last_first, last_last; /* last range asked for */
} plf_mirror;

typedef struct plf_world {
    char dir[256];           /* temporary directory */
    char device_key_path[512];
    char offline_dir[512];
    sm_jwk *device_key;
    char jkt[SM_JKT_SIZE];
    sm_secret *media_key;
    uint8_t *plain;          /* the plaintext packed */
    size_t plain_len;
    uint8_t *container;      /* the container bytes */
    size_t container_len;
    char media_type[64];
    /* key server */
    long ks_status;          /* 200 = issue a license; else a problem answer */
    const char *ks_slug;     /* problem slug */
    const char *ks_detail;
    const char *ks_raw_body; /* when set, sent as is (with ks_content_type) */
    const char *ks_content_type;
    int ks_rental;           /* issue a rental ending at ks_rental_ends */
    int64_t ks_rental_ends;
    int ks_down;             /* the key server cannot be reached */
    unsigned ks_requests;
    /* Licenses issued (a renewal before the first is 409 no-license) and
     * delivery-token renewals ({"delivery_only":true}) answered. */
    unsigned ks_licenses, ks_renewals;
    const char *ks_renewal_txn; /* when set, renewals answer this txn */
    char ks_last_error[256]; /* what the fake key server disliked, "" if nothing */
    /* media stores */
    plf_mirror mirrors[PLF_MAX_MIRRORS];
    size_t mirror_count;
    sm_pl_transport transport;
} plf_world;

/* Creates the world with plain_len bytes of media of the given type and
 * mirror_count healthy mirrors. */
plf_world *plf_new(size_t plain_len, const char *media_type, size_t mirror_count);
void plf_free(plf_world *w);

/* The steering file bytes for the world (malloc'ed). */
uint8_t *plf_steer(const plf_world *w, size_t *len);
/* The parsed steering file (sm_steer_free it). */
sm_steer *plf_steer_parsed(const plf_world *w);

/* Options pointing at the world's device key, offline dir and transport. */
sm_pl_options plf_options(plf_world *w);

/* Replaces what a mirror serves (copied). */
void plf_mirror_set_data(plf_world *w, size_t m, const uint8_t *data, size_t len);

/* Opens a session on the world's steering file. */
sm_status plf_open(plf_world *w, const sm_pl_options *o, sm_pl_session **s, sm_pl_refusal *refusal,
                   sm_error *err);

#endif
