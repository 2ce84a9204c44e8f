/* The offline store (docs/PLAYER.md §2): per purchase a directory named by
 * the SHA-256 of the steering file's voucher, holding license.json (the
 * media key still wrapped to the device key) and media.smc (the container
 * as served). Entries appear atomically (temporary directory + rename). */
#ifndef SM_PL_OFFLINE_H
#define SM_PL_OFFLINE_H

#include <stddef.h>
#include <stdint.h>

#include "sm_error.h"
#include "sm_pl_license.h"
#include "sm_steer.h"

#define SM_PL_OFFLINE_FORMAT "secmedia-offline/1"
#define SM_PL_KEPT_FORMAT "secmedia-kept-license/1"
#define SM_PL_OFFLINE_LICENSE "license.json"
#define SM_PL_OFFLINE_MEDIA "media.smc"
#define SM_PL_OFFLINE_LICENSE_MAX 65536u

/* $XDG_DATA_HOME/secmedia/offline (absolute XDG_DATA_HOME only), else
 * $HOME/.local/share/secmedia/offline. */
sm_status sm_pl_offline_default_dir(char *buf, size_t size, sm_error *err);

/* base64url(SHA-256(voucher)): 43 characters + NUL. */
sm_status sm_pl_offline_entry_name(const char *voucher, char out[44], sm_error *err);

typedef struct sm_pl_offline_entry {
    char *dir;          /* the entry's directory */
    char *media_path;   /* dir/media.smc */
    char *work_id;
    char *txn;
    uint32_t key_version;
    char *key_jwe;
    int rental;
    int64_t rental_ends_at;
    char *media_type;
    uint64_t container_size;
    int64_t stored_at;
} sm_pl_offline_entry;

/* Looks up the entry for steer. SM_ERR_NOT_FOUND when there is none; a
 * damaged license.json, another work id or a container of another size is
 * SM_ERR_FORMAT; a rental past its end (by `now`, 0 = the clock) is
 * SM_ERR_EXPIRED with the "rental period has ended" sentence. */
sm_status sm_pl_offline_find(const char *store, const sm_steer *steer, int64_t now,
                             sm_pl_offline_entry **out, sm_error *err);

/* license.json's checks without the file system (sm_pl_offline_find's
 * parser; the fuzzer and the unit tests call it): fills e's work_id, txn,
 * key_version, key_jwe, rental, rental_ends_at, media_type,
 * container_size and stored_at (free with sm_pl_offline_entry_free, also
 * after a failure). expected_work_id (may be NULL) must be the file's
 * work_id. `what` names the file in messages. */
sm_status sm_pl_offline_parse_license(const uint8_t *bytes, size_t len,
                                      const char *expected_work_id, const char *what,
                                      sm_pl_offline_entry *e, sm_error *err);

/* The license.json text sm_pl_offline_commit writes for lic (compact,
 * sorted keys, no newline); malloc'ed, NULL when out of memory. Holds
 * the wrapped key: wipe it before freeing. */
char *sm_pl_offline_license_text(const sm_pl_license *lic, const char *media_type,
                                 uint64_t container_size, int64_t stored_at);

/* Writing an entry: begin makes store (0700) and a temporary directory in
 * it; the caller writes the container to the fd; commit writes
 * license.json, syncs and renames the directory to the entry's name
 * (replacing an existing entry only with overwrite); abort removes it. */
typedef struct sm_pl_offline_writer {
    char *store;
    char *tmp_dir;
    char *final_dir;
    int media_fd;
} sm_pl_offline_writer;

sm_status sm_pl_offline_begin(const char *store, const sm_steer *steer, int overwrite,
                              sm_pl_offline_writer *w, sm_error *err);
sm_status sm_pl_offline_commit(sm_pl_offline_writer *w, const sm_pl_license *lic,
                               const char *media_type, uint64_t container_size, int64_t now,
                               int overwrite, sm_error *err);
void sm_pl_offline_abort(sm_pl_offline_writer *w);

void sm_pl_offline_entry_free(sm_pl_offline_entry *e);

/* Streaming plays (docs/PLAYER.md §1.5): the license of an online play is
 * kept as <store>/streaming/<entry name>.json (license.json without
 * media_type and container_size, format SM_PL_KEPT_FORMAT: the media key
 * still wrapped to the device key; no media), so that later online plays
 * of the purchase ask the key server only for a new delivery token instead
 * of spending an activation. */
#define SM_PL_STREAMING_DIR "streaming"

/* The kept license for steer: SM_ERR_NOT_FOUND when there is none,
 * SM_ERR_FORMAT when it is damaged or for another work, SM_ERR_IO when it
 * cannot be read now. Rentals are not judged here (the key server judges
 * every online play). The entry's dir, media_path and media_type are
 * NULL. */
sm_status sm_pl_streaming_find(const char *store, const sm_steer *steer,
                               sm_pl_offline_entry **out, sm_error *err);

/* A kept license's checks without the file system (the fuzzer's entry);
 * like sm_pl_offline_parse_license. */
sm_status sm_pl_streaming_parse(const uint8_t *bytes, size_t len, const char *expected_work_id,
                                const char *what, sm_pl_offline_entry *e, sm_error *err);

/* Keeps lic (a license with its key_jwe) for steer, replacing an older
 * one; written atomically, mode 0600, directories 0700. now 0 = clock. */
sm_status sm_pl_streaming_keep(const char *store, const sm_steer *steer,
                               const sm_pl_license *lic, int64_t now, sm_error *err);

/* Forgets the kept license for steer (none is fine). */
void sm_pl_streaming_forget(const char *store, const sm_steer *steer);

#endif
