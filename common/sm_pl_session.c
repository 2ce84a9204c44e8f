#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sm_container.h"
#include "sm_io.h"
#include "sm_pl_fetch.h"
#include "sm_pl_offline.h"
#include "sm_pl_session.h"
#include "sm_secmem.h"

#define DEFAULT_CACHE_CHUNKS 16u
/* Bytes per request when downloading a whole container for offline play. */
#define OFFLINE_WINDOW (64u * SM_PL_CHUNK_WIRE)
#define CHUNK_PLAIN 16384u

/* What a delivery-token renewal during a download needs (an
 * sm_pl_token_renew_fn's context): the purchase, the device, and the
 * license in use, which the renewal must still be about. */
typedef struct token_renewer {
    sm_pl_transport tr;
    const sm_steer *steer;
    const sm_jwk *device_key;
    char txn[65]; /* ids are 1-64 characters */
    uint32_t key_version;
} token_renewer;

struct sm_pl_session {
    sm_steer *steer;
    sm_jwk *device_key;
    token_renewer renewer;    /* online */
    sm_secret *media_key;
    sm_pl_fetch *fetch;       /* online */
    sm_fd_io fdio;            /* offline */
    char *media_path;
    sm_container_ra *ra;
    uint64_t size;
    char media_type[SM_MEDIA_TYPE_MAX + 1];
    int offline;
};

static const char damaged[] = "The media is damaged or was tampered with: ";

sm_status sm_pl_load_device_key(const char *path_or_null, const char *option_name, sm_jwk **out,
                                char *path_out, size_t path_size, sm_error *err)
{
    *out = NULL;
    char path[4096];
    if (path_or_null != NULL && path_or_null[0] != '\0') {
        if (strlen(path_or_null) >= sizeof(path))
            return sm_error_set(err, SM_ERR_ARG, "the device key path is too long");
        snprintf(path, sizeof(path), "%s", path_or_null);
    } else {
        sm_status st = sm_device_key_default_path(path, sizeof(path), err);
        if (st != SM_OK)
            return st;
    }
    if (path_out != NULL && path_size > 0)
        snprintf(path_out, path_size, "%s", path);
    struct stat sb;
    if (stat(path, &sb) != 0 && errno == ENOENT)
        return sm_error_set(err, SM_ERR_KEY,
                            "No device key at %s. Create one with \"secmedia keygen\" (and "
                            "register its public key with your retailer), or set %s.", path,
                            option_name != NULL ? option_name : "--secmedia-device-key");
    sm_error e = {SM_OK, ""};
    sm_jwk *key = NULL;
    sm_status st = sm_jwk_load_file(path, &key, &e);
    if (st != SM_OK)
        return sm_error_set(err, SM_ERR_KEY, "The device key %s cannot be used: %s", path,
                            e.message);
    if (!sm_jwk_has_private(key)) {
        sm_jwk_free(key);
        return sm_error_set(err, SM_ERR_KEY,
                            "The device key %s cannot be used: it holds no private key (give "
                            "the file \"secmedia keygen\" wrote, not the public one)", path);
    }
    *out = key;
    return SM_OK;
}

/* Errors of the container reader in the user's words; network and
 * interruption messages are already worded. */
static sm_status reword_media_error(sm_status st, sm_error *err)
{
    if (err == NULL || st == SM_OK)
        return st;
    if (st == SM_ERR_UNAVAILABLE || st == SM_ERR_STATE || st == SM_ERR_NOMEM || st == SM_ERR_IO ||
        strncmp(err->message, "Network failure", 15) == 0 ||
        /* a delivery-token renewal during the play, refused or garbled */
        strncmp(err->message, "License refused", 15) == 0 ||
        strncmp(err->message, "The key server", 14) == 0 ||
        strncmp(err->message, "Certificate failure", 19) == 0 ||
        strncmp(err->message, damaged, sizeof(damaged) - 1) == 0)
        return st;
    char msg[SM_ERROR_MESSAGE_MAX];
    snprintf(msg, sizeof(msg), "%s", err->message);
    return sm_error_set(err, st, "%s%s", damaged, msg);
}

static sm_status unwrap(const sm_jwk *device_key, const char *jwe, const char *what,
                        sm_secret **key_out, sm_error *err)
{
    sm_error e = {SM_OK, ""};
    sm_status st = sm_jwe_unwrap_key(device_key, jwe, strlen(jwe), key_out, &e);
    if (st != SM_OK)
        return sm_error_set(err, st == SM_ERR_NOMEM ? st : SM_ERR_KEY,
                            "%s cannot be opened with this device key (%s): was the purchase "
                            "made for another device?", what, e.message);
    return SM_OK;
}

static sm_status check_header(const sm_container_header *h, const char *work_id,
                              uint32_t key_version, sm_error *err)
{
    if (strcmp(h->meta.work_id, work_id) != 0)
        return sm_error_set(err, SM_ERR_FORMAT, "%sthe container holds work \"%s\", not \"%s\"",
                            damaged, h->meta.work_id, work_id);
    if (h->meta.key_version != key_version)
        return sm_error_set(err, SM_ERR_FORMAT,
                            "%sthe container has key version %u, the license %u", damaged,
                            (unsigned)h->meta.key_version, (unsigned)key_version);
    return SM_OK;
}

static sm_status open_reader(sm_pl_session *s, sm_read_at_fn read_at, void *ctx,
                             uint64_t file_size, const sm_pl_options *o, const char *work_id,
                             uint32_t key_version, sm_error *err)
{
    unsigned cache = o->cache_chunks != 0 ? o->cache_chunks : DEFAULT_CACHE_CHUNKS;
    sm_status st = sm_container_ra_new(read_at, ctx, file_size, s->media_key, cache, &s->ra, err);
    if (st != SM_OK)
        return reword_media_error(st, err);
    const sm_container_header *h = sm_container_ra_header(s->ra);
    st = check_header(h, work_id, key_version, err);
    if (st != SM_OK)
        return st;
    s->size = h->meta.plaintext_length;
    snprintf(s->media_type, sizeof(s->media_type), "%s", h->meta.media_type);
    return SM_OK;
}

static sm_status resolve_offline_dir(const sm_pl_options *o, char *buf, size_t size,
                                     sm_error *err)
{
    if (o->offline_dir != NULL && o->offline_dir[0] != '\0') {
        int n = snprintf(buf, size, "%s", o->offline_dir);
        if (n < 0 || (size_t)n >= size)
            return sm_error_set(err, SM_ERR_ARG, "the offline directory's path is too long");
        return SM_OK;
    }
    return sm_pl_offline_default_dir(buf, size, err);
}

static sm_status open_offline(sm_pl_session *s, const sm_pl_options *o,
                              const sm_pl_offline_entry *e, sm_error *err)
{
    sm_status st = unwrap(s->device_key, e->key_jwe, "The offline license", &s->media_key, err);
    if (st != SM_OK)
        return st;
    s->media_path = strdup(e->media_path);
    if (s->media_path == NULL)
        return sm_error_set(err, SM_ERR_NOMEM, "out of memory");
    int fd = open(e->media_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return sm_error_set(err, SM_ERR_IO, "cannot open the offline copy %s: %s", e->media_path,
                            strerror(errno));
    s->fdio.fd = fd;
    s->fdio.name = s->media_path;
    s->offline = 1;
    return open_reader(s, sm_fd_read_at, &s->fdio, e->container_size, o, e->work_id,
                       e->key_version, err);
}

/* A delivery-token renewal for the purchase whose license was kept from
 * an earlier online play (store/streaming/): *lic gets the renewal with the
 * kept key_jwe filled in, *key the media key it holds. SM_ERR_NOT_FOUND when there is no usable kept
 * license, so the caller asks for a license: none, unreadable, or one that
 * is damaged, does not open with this device key, or that the key server
 * has no license on record for (those three are forgotten). Any other
 * failure is the renewal's refusal or network error, or out of memory. */
static sm_status renew_kept(const sm_pl_transport *tr, const sm_steer *steer,
                            const sm_jwk *device_key, const char *store, sm_pl_license **lic,
                            sm_secret **key, sm_pl_refusal *refusal, sm_error *err)
{
    *lic = NULL;
    *key = NULL;
    sm_pl_offline_entry *kept = NULL;
    sm_status st = sm_pl_streaming_find(store, steer, &kept, NULL);
    if (st == SM_ERR_FORMAT)
        sm_pl_streaming_forget(store, steer);
    if (st == SM_ERR_NOMEM)
        return sm_error_set(err, st, "out of memory");
    if (st != SM_OK) /* none, or unreadable now: kept for another time */
        return SM_ERR_NOT_FOUND;
    /* Opens with this device key? (Another key file: the old one's
     * license is no use.) */
    st = unwrap(device_key, kept->key_jwe, "The kept license", key, err);
    if (st != SM_OK) {
        sm_pl_offline_entry_free(kept);
        if (st != SM_ERR_KEY)
            return st;
        sm_pl_streaming_forget(store, steer);
        return SM_ERR_NOT_FOUND;
    }
    sm_pl_refusal r = SM_PL_REFUSAL_NONE;
    st = sm_pl_license_renew(tr, steer, device_key, lic, &r, err);
    if (st == SM_OK && ((*lic)->key_version != kept->key_version ||
                        strcmp((*lic)->txn, kept->txn) != 0)) {
        st = SM_ERR_NOT_FOUND; /* the purchase is not the kept one's any more */
    } else if (st == SM_OK && ((*lic)->key_jwe = strdup(kept->key_jwe)) == NULL) {
        st = sm_error_set(err, SM_ERR_NOMEM, "out of memory");
    } else if (st != SM_OK && r == SM_PL_REFUSAL_NO_LICENSE) {
        st = SM_ERR_NOT_FOUND;
    }
    if (st == SM_ERR_NOT_FOUND)
        sm_pl_streaming_forget(store, steer);
    if (st != SM_OK) {
        sm_pl_license_free(*lic);
        *lic = NULL;
        sm_secret_free(*key);
        *key = NULL;
        if (st != SM_ERR_NOT_FOUND && refusal != NULL)
            *refusal = r;
    }
    sm_pl_offline_entry_free(kept);
    return st;
}

/* The license for an online play or a fetch, and the media key it holds
 * (unwrapped into locked memory): a renewal when a license was kept from an
 * earlier online play (no activation spent; *renewed 1, may be NULL), else
 * a new one. store may be NULL (nothing kept). */
static sm_status obtain_license(const sm_pl_transport *tr, const sm_steer *steer,
                                const sm_jwk *device_key, const char *store,
                                sm_pl_license **lic, sm_secret **key, int *renewed,
                                sm_pl_refusal *refusal, sm_error *err)
{
    if (renewed != NULL)
        *renewed = 0;
    sm_status st = store != NULL
                       ? renew_kept(tr, steer, device_key, store, lic, key, refusal, err)
                       : SM_ERR_NOT_FOUND;
    if (st == SM_OK && renewed != NULL)
        *renewed = 1;
    if (st == SM_ERR_NOT_FOUND) {
        st = sm_pl_license_request(tr, steer, device_key, lic, refusal, err);
        if (st == SM_OK)
            st = unwrap(device_key, (*lic)->key_jwe, "The media key sent by the key server", key,
                        err);
        if (st != SM_OK) {
            sm_pl_license_free(*lic);
            *lic = NULL;
        }
    }
    return st;
}

static void renewer_init(token_renewer *r, const sm_pl_transport *tr, const sm_steer *steer,
                         const sm_jwk *device_key, const sm_pl_license *lic)
{
    r->tr = *tr;
    r->steer = steer;
    r->device_key = device_key;
    snprintf(r->txn, sizeof(r->txn), "%s", lic->txn);
    r->key_version = lic->key_version;
}

/* A new delivery token during a download (an sm_pl_token_renew_fn). */
static sm_status renew_token(void *ctx, char **token, sm_error *err)
{
    const token_renewer *r = ctx;
    sm_pl_license *lic = NULL;
    sm_status st = sm_pl_license_renew(&r->tr, r->steer, r->device_key, &lic, NULL, err);
    if (st == SM_OK && (strcmp(lic->txn, r->txn) != 0 || lic->key_version != r->key_version))
        st = sm_error_set(err, SM_ERR_FORMAT,
                          "The key server sent an invalid delivery-token renewal: it is for "
                          "another purchase or key version than the license in use");
    if (st == SM_OK) {
        *token = lic->delivery_token;
        lic->delivery_token = NULL;
    }
    sm_pl_license_free(lic);
    return st;
}

static sm_status open_online(sm_pl_session *s, const sm_pl_options *o, const char *store,
                             sm_pl_refusal *refusal, sm_error *err)
{
    if (o->transport == NULL)
        return sm_error_set(err, SM_ERR_UNAVAILABLE,
                            "Network failure: this purchase is not stored for offline play and "
                            "the network is not used");
    sm_pl_license *lic = NULL;
    int renewed = 0;
    sm_status st = obtain_license(o->transport, s->steer, s->device_key, store, &lic,
                                  &s->media_key, &renewed, refusal, err);
    /* Kept for the next play as soon as the key opens: the activation is
     * spent now, whatever happens to this play. A store that cannot take
     * it costs the next play an activation, not this one its sound. */
    if (st == SM_OK && store != NULL && !renewed)
        (void)sm_pl_streaming_keep(store, s->steer, lic, o->now, NULL);
    if (st == SM_OK) {
        renewer_init(&s->renewer, o->transport, s->steer, s->device_key, lic);
        st = sm_pl_fetch_new(o->transport, s->steer->media_urls, s->steer->media_url_count,
                             lic->delivery_token, o->window, &s->fetch, err);
    }
    if (st == SM_OK) {
        sm_pl_fetch_set_renewal(s->fetch, renew_token, &s->renewer);
        st = sm_pl_fetch_open(s->fetch, err);
    }
    if (st == SM_OK)
        st = open_reader(s, sm_pl_fetch_read_at, s->fetch, sm_pl_fetch_size(s->fetch), o,
                         lic->work_id, lic->key_version, err);
    sm_pl_license_free(lic);
    return st;
}

sm_status sm_pl_session_open(const sm_pl_options *o, const uint8_t *steer, size_t steer_len,
                             sm_pl_session **out, sm_pl_refusal *refusal, sm_error *err)
{
    *out = NULL;
    if (refusal != NULL)
        *refusal = SM_PL_REFUSAL_NONE;
    sm_pl_session *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return sm_error_set(err, SM_ERR_NOMEM, "out of memory");
    s->fdio.fd = -1;
    sm_status st = sm_steer_parse(steer, steer_len, o->steer_options, &s->steer, err);
    if (st == SM_OK)
        st = sm_pl_load_device_key(o->device_key_path, o->device_key_option, &s->device_key, NULL,
                                   0, err);
    char store[4096];
    int have_store = 0;
    if (st == SM_OK) {
        /* Without a usable default store (no home directory) the player
         * still plays online; an explicit store or keeping needs one. */
        sm_error e = {SM_OK, ""};
        sm_status rs = resolve_offline_dir(o, store, sizeof(store), &e);
        have_store = rs == SM_OK;
        if (rs != SM_OK && (o->offline_keep || (o->offline_dir != NULL && o->offline_dir[0]))) {
            if (err != NULL)
                *err = e;
            st = rs;
        }
    }
    sm_pl_offline_entry *entry = NULL;
    if (st == SM_OK && !have_store) {
        st = open_online(s, o, NULL, refusal, err);
    } else if (st == SM_OK) {
        sm_error e = {SM_OK, ""};
        sm_status found = sm_pl_offline_find(store, s->steer, o->now, &entry, &e);
        if (found == SM_ERR_NOT_FOUND && o->offline_keep) {
            found = sm_pl_fetch_offline(o, s->steer, 0, NULL, 0, refusal, &e);
            if (found == SM_OK)
                found = sm_pl_offline_find(store, s->steer, o->now, &entry, &e);
        }
        if (found == SM_OK) {
            st = open_offline(s, o, entry, err);
        } else if (found == SM_ERR_NOT_FOUND) {
            st = open_online(s, o, store, refusal, err);
        } else {
            if (found == SM_ERR_EXPIRED && refusal != NULL)
                *refusal = SM_PL_REFUSAL_RENTAL_EXPIRED;
            if (err != NULL)
                *err = e;
            st = found;
        }
    }
    sm_pl_offline_entry_free(entry);
    if (st != SM_OK) {
        sm_pl_session_free(s);
        return st;
    }
    *out = s;
    return SM_OK;
}

uint64_t sm_pl_session_size(const sm_pl_session *s)
{
    return s->size;
}

const char *sm_pl_session_media_type(const sm_pl_session *s)
{
    return s->media_type;
}

const sm_steer *sm_pl_session_steer(const sm_pl_session *s)
{
    return s->steer;
}

int sm_pl_session_is_offline(const sm_pl_session *s)
{
    return s->offline;
}

unsigned long sm_pl_session_media_requests(const sm_pl_session *s)
{
    return s->fetch != NULL ? sm_pl_fetch_requests(s->fetch) : 0;
}

sm_status sm_pl_session_read(sm_pl_session *s, uint64_t offset, uint8_t *buf, size_t len,
                             size_t *got, sm_error *err)
{
    *got = 0;
    if (len == 0 || offset >= s->size) {
        if (offset >= s->size && len > 0) {
            /* A read at the end must still prove where the end is. */
            sm_status st = sm_container_ra_verify_length(s->ra, err);
            return reword_media_error(st, err);
        }
        return SM_OK;
    }
    size_t room = CHUNK_PLAIN - (size_t)(offset % CHUNK_PLAIN);
    if (len > room)
        len = room;
    sm_status st = sm_container_ra_read(s->ra, offset, buf, len, got, err);
    return reword_media_error(st, err);
}

void sm_pl_session_free(sm_pl_session *s)
{
    if (s == NULL)
        return;
    sm_container_ra_free(s->ra);
    sm_pl_fetch_free(s->fetch);
    if (s->fdio.fd >= 0)
        close(s->fdio.fd);
    free(s->media_path);
    sm_secret_free(s->media_key);
    sm_jwk_free(s->device_key);
    sm_steer_free(s->steer);
    free(s);
}

/* --- secmedia fetch ----------------------------------------------------------- */

static sm_status download(sm_pl_fetch *f, int fd, uint64_t *size_out, sm_error *err)
{
    uint8_t *buf = malloc(OFFLINE_WINDOW);
    if (buf == NULL)
        return sm_error_set(err, SM_ERR_NOMEM, "out of memory");
    sm_status st = sm_pl_fetch_open(f, err);
    uint64_t size = st == SM_OK ? sm_pl_fetch_size(f) : 0;
    for (uint64_t off = 0; st == SM_OK && off < size;) {
        size_t got = 0;
        st = sm_pl_fetch_read_at(f, off, buf, OFFLINE_WINDOW, &got, err);
        if (st == SM_OK && got == 0)
            st = sm_error_set(err, SM_ERR_TRUNCATED, "the media store's answer ended early");
        for (size_t w = 0; st == SM_OK && w < got;) {
            ssize_t n = write(fd, buf + w, got - w);
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0)
                st = sm_error_set(err, SM_ERR_IO, "cannot write the offline copy: %s",
                                  strerror(errno));
            else
                w += (size_t)n;
        }
        off += got;
    }
    free(buf);
    *size_out = size;
    return st;
}

/* Authenticates every chunk of the downloaded file; plaintext is wiped. */
static sm_status verify_file(int fd, const sm_secret *key, const sm_pl_license *lic,
                             char *media_type, size_t mt_size, sm_error *err)
{
    if (lseek(fd, 0, SEEK_SET) != 0)
        return sm_error_set(err, SM_ERR_IO, "cannot reread the offline copy: %s",
                            strerror(errno));
    sm_fd_io io = {fd, "the downloaded container"};
    sm_container_reader *r = NULL;
    sm_status st = sm_container_reader_new(sm_fd_read, &io, key, &r, err);
    if (st == SM_OK)
        st = check_header(sm_container_reader_header(r), lic->work_id, lic->key_version, err);
    uint8_t *buf = st == SM_OK ? malloc(65536) : NULL;
    if (st == SM_OK && buf == NULL)
        st = sm_error_set(err, SM_ERR_NOMEM, "out of memory");
    for (size_t got = 1; st == SM_OK && got > 0;)
        st = sm_container_reader_read(r, buf, 65536, &got, err);
    if (buf != NULL) {
        sm_wipe(buf, 65536);
        free(buf);
    }
    if (st == SM_OK)
        snprintf(media_type, mt_size, "%s", sm_container_reader_header(r)->meta.media_type);
    sm_container_reader_free(r);
    return reword_media_error(st, err);
}

sm_status sm_pl_fetch_offline(const sm_pl_options *o, const sm_steer *steer, int overwrite,
                              char *entry_dir_out, size_t entry_dir_size, sm_pl_refusal *refusal,
                              sm_error *err)
{
    if (refusal != NULL)
        *refusal = SM_PL_REFUSAL_NONE;
    if (o->transport == NULL)
        return sm_error_set(err, SM_ERR_ARG, "fetching needs the network");
    char store[4096];
    sm_status st = resolve_offline_dir(o, store, sizeof(store), err);
    if (st != SM_OK)
        return st;
    sm_jwk *device_key = NULL;
    st = sm_pl_load_device_key(o->device_key_path, o->device_key_option, &device_key, NULL, 0,
                               err);
    if (st != SM_OK)
        return st;
    /* Check the store can take the entry before spending an activation. */
    sm_pl_offline_writer w;
    st = sm_pl_offline_begin(store, steer, overwrite, &w, err);
    if (st != SM_OK) {
        sm_jwk_free(device_key);
        return st;
    }
    sm_pl_license *lic = NULL;
    sm_secret *key = NULL;
    sm_pl_fetch *f = NULL;
    uint64_t size = 0;
    char media_type[SM_MEDIA_TYPE_MAX + 1] = "";
    token_renewer renewer;
    st = obtain_license(o->transport, steer, device_key, store, &lic, &key, NULL, refusal, err);
    if (st == SM_OK) {
        renewer_init(&renewer, o->transport, steer, device_key, lic);
        st = sm_pl_fetch_new(o->transport, steer->media_urls, steer->media_url_count,
                             lic->delivery_token, OFFLINE_WINDOW, &f, err);
    }
    if (st == SM_OK) /* a long download may outlive its token */
        sm_pl_fetch_set_renewal(f, renew_token, &renewer);
    if (st == SM_OK)
        st = download(f, w.media_fd, &size, err);
    if (st == SM_OK)
        st = verify_file(w.media_fd, key, lic, media_type, sizeof(media_type), err);
    if (st == SM_OK && entry_dir_out != NULL && entry_dir_size > 0)
        snprintf(entry_dir_out, entry_dir_size, "%s", w.final_dir);
    if (st == SM_OK)
        st = sm_pl_offline_commit(&w, lic, media_type, size, o->now, overwrite, err);
    else
        sm_pl_offline_abort(&w);
    sm_pl_fetch_free(f);
    sm_secret_free(key);
    sm_pl_license_free(lic);
    sm_jwk_free(device_key);
    return st;
}
