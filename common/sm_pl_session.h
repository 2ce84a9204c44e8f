/* The player core: from the bytes of a steering file to decrypted media.
 * sm_pl_session_open loads the device key, takes the license from the
 * offline store or the key server, unwraps the media key into locked memory
 * and opens the container (offline copy or media store mirrors) with the
 * random-access reader. What the VLC plugin and `secmedia fetch` call;
 * docs/PLAYER.md describes the behaviour. No VLC dependency. */
#ifndef SM_PL_SESSION_H
#define SM_PL_SESSION_H

#include <stddef.h>
#include <stdint.h>

#include "sm_error.h"
#include "sm_jose.h"
#include "sm_pl_http.h"
#include "sm_pl_license.h"
#include "sm_steer.h"

typedef struct sm_pl_options {
    const char *device_key_path;  /* NULL or "": sm_device_key_default_path */
    const char *offline_dir;      /* NULL or "": sm_pl_offline_default_dir */
    int offline_keep;             /* store license + container on first play */
    const sm_pl_transport *transport; /* for online plays; NULL = offline only */
    const sm_steer_options *steer_options; /* NULL = https only */
    size_t window;                /* read-ahead bytes per request; 0 = default */
    unsigned cache_chunks;        /* decrypted chunks kept; 0 = 16 */
    int64_t now;                  /* 0 = the clock (tests set it) */
    /* How the user names another key file, for messages; NULL =
     * "--secmedia-device-key" (the VLC option). */
    const char *device_key_option;
} sm_pl_options;

/* Loads the device's private key: a missing file says how to make one
 * (`secmedia keygen`) or name another (option_name, NULL =
 * "--secmedia-device-key"); path_out (may be NULL) gets the path used. */
sm_status sm_pl_load_device_key(const char *path_or_null, const char *option_name, sm_jwk **out,
                                char *path_out, size_t path_size, sm_error *err);

typedef struct sm_pl_session sm_pl_session;

/* On failure err's message is the sentence to show the user; *refusal (may
 * be NULL) tells a license refusal's reason. */
sm_status sm_pl_session_open(const sm_pl_options *o, const uint8_t *steer, size_t steer_len,
                             sm_pl_session **out, sm_pl_refusal *refusal, sm_error *err);

/* Plaintext size and media type (from the authenticated container header). */
uint64_t sm_pl_session_size(const sm_pl_session *s);
const char *sm_pl_session_media_type(const sm_pl_session *s);
const sm_steer *sm_pl_session_steer(const sm_pl_session *s);
/* 1 when playing from the offline store. */
int sm_pl_session_is_offline(const sm_pl_session *s);
/* Requests sent to media stores (0 offline). */
unsigned long sm_pl_session_media_requests(const sm_pl_session *s);

/* Reads authenticated plaintext at offset, at most up to the end of the
 * chunk holding offset, so the bytes before a damaged chunk still come out.
 * *got == 0 with SM_OK: end of media. Errors are final (tampered,
 * truncated, network gone after every mirror was tried). */
sm_status sm_pl_session_read(sm_pl_session *s, uint64_t offset, uint8_t *buf, size_t len,
                             size_t *got, sm_error *err);

/* Wipes the media key and every secret, then frees. */
void sm_pl_session_free(sm_pl_session *s);

/* `secmedia fetch`: one license request, the whole container downloaded
 * with its token and authenticated chunk by chunk, both stored as an
 * offline entry (replaced only with overwrite). entry_dir_out gets the
 * entry's directory. SM_ERR_DUPLICATE when the entry exists. */
sm_status sm_pl_fetch_offline(const sm_pl_options *o, const sm_steer *steer, int overwrite,
                              char *entry_dir_out, size_t entry_dir_size, sm_pl_refusal *refusal,
                              sm_error *err);

#endif
