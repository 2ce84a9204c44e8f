#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "sm_b64.h"
#include "sm_file.h"
#include "sm_json.h"
#include "sm_pl_offline.h"
#include "sm_secmem.h"
#include "sm_validate.h"

sm_status sm_pl_offline_default_dir(char *buf, size_t size, sm_error *err)
{
    const char *xdg = getenv("XDG_DATA_HOME");
    int n;
    if (xdg != NULL && xdg[0] == '/') {
        n = snprintf(buf, size, "%s/secmedia/offline", xdg);
    } else {
        const char *home = getenv("HOME");
        if (home == NULL || home[0] == '\0') {
            struct passwd *pw = getpwuid(getuid());
            home = pw != NULL ? pw->pw_dir : NULL;
        }
        if (home == NULL || home[0] == '\0')
            return sm_error_set(err, SM_ERR_ARG,
                                "no home directory: set --secmedia-offline-dir or XDG_DATA_HOME");
        n = snprintf(buf, size, "%s/.local/share/secmedia/offline", home);
    }
    if (n < 0 || (size_t)n >= size)
        return sm_error_set(err, SM_ERR_ARG, "the offline directory's path is too long");
    return SM_OK;
}

sm_status sm_pl_offline_entry_name(const char *voucher, char out[44], sm_error *err)
{
    uint8_t digest[32];
    unsigned int dlen = 0;
    if (EVP_Digest(voucher, strlen(voucher), digest, &dlen, EVP_sha256(), NULL) != 1 ||
        dlen != sizeof(digest))
        return sm_error_set(err, SM_ERR_CRYPTO, "SHA-256 failed");
    return sm_b64url_encode(digest, sizeof(digest), out, 44, err);
}

static char *path_join(const char *a, const char *b)
{
    size_t n = strlen(a) + strlen(b) + 2;
    char *p = malloc(n);
    if (p != NULL)
        snprintf(p, n, "%s/%s", a, b);
    return p;
}

void sm_pl_offline_entry_free(sm_pl_offline_entry *e)
{
    if (e == NULL)
        return;
    free(e->dir);
    free(e->media_path);
    free(e->work_id);
    free(e->txn);
    if (e->key_jwe != NULL) {
        sm_wipe(e->key_jwe, strlen(e->key_jwe));
        free(e->key_jwe);
    }
    free(e->media_type);
    free(e);
}

static sm_status read_small_file(const char *path, size_t max, uint8_t **out, size_t *len,
                                 sm_error *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return sm_error_set(err, errno == ENOENT ? SM_ERR_NOT_FOUND : SM_ERR_IO,
                            "cannot open %s: %s", path, strerror(errno));
    uint8_t *buf = malloc(max + 1);
    size_t have = 0;
    sm_status st = buf != NULL ? SM_OK : sm_error_set(err, SM_ERR_NOMEM, "out of memory");
    while (st == SM_OK) {
        ssize_t r = read(fd, buf + have, max + 1 - have);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            st = sm_error_set(err, SM_ERR_IO, "cannot read %s: %s", path, strerror(errno));
        else if (r == 0)
            break;
        else if ((have += (size_t)r) > max)
            st = sm_error_set(err, SM_ERR_TOO_LARGE, "%s is larger than %zu bytes", path, max);
    }
    close(fd);
    if (st != SM_OK) {
        free(buf);
        return st;
    }
    *out = buf;
    *len = have;
    return SM_OK;
}

static char *dup_str(json_t *o, const char *name)
{
    const char *s = json_string_value(json_object_get(o, name));
    return s != NULL ? strdup(s) : NULL;
}

static const sm_json_field license_fields[] = {
    {"format", SM_JSON_STRING, 1},       {"work_id", SM_JSON_STRING, 1},
    {"txn", SM_JSON_STRING, 1},          {"key_version", SM_JSON_INTEGER, 1},
    {"key_jwe", SM_JSON_STRING, 1},      {"license", SM_JSON_OBJECT, 1},
    {"rental_ends_at", SM_JSON_INTEGER, 0}, {"media_type", SM_JSON_STRING, 1},
    {"container_size", SM_JSON_INTEGER, 1}, {"stored_at", SM_JSON_INTEGER, 1},
    {NULL, SM_JSON_STRING, 0},
};

/* A kept license (sm_pl_streaming_*) has no media beside it. */
static const sm_json_field kept_fields[] = {
    {"format", SM_JSON_STRING, 1},       {"work_id", SM_JSON_STRING, 1},
    {"txn", SM_JSON_STRING, 1},          {"key_version", SM_JSON_INTEGER, 1},
    {"key_jwe", SM_JSON_STRING, 1},      {"license", SM_JSON_OBJECT, 1},
    {"rental_ends_at", SM_JSON_INTEGER, 0}, {"stored_at", SM_JSON_INTEGER, 1},
    {NULL, SM_JSON_STRING, 0},
};

/* license.json, or with kept a kept license (no media_type, no
 * container_size). */
static sm_status parse_license(const uint8_t *bytes, size_t len, const char *expected_work_id,
                               const char *what, int kept, sm_pl_offline_entry *e,
                               sm_error *err)
{
    json_t *o = NULL;
    sm_status st = sm_json_parse_object(bytes, len, SM_PL_OFFLINE_LICENSE_MAX, what, &o, err);
    if (st == SM_OK)
        st = sm_json_check_fields(o, kept ? kept_fields : license_fields, what, err);
    uint64_t kv = 0, csize = 0, ends = 0, stored = 0;
    if (st == SM_OK && strcmp(json_string_value(json_object_get(o, "format")),
                              kept ? SM_PL_KEPT_FORMAT : SM_PL_OFFLINE_FORMAT) != 0)
        st = sm_error_set(err, SM_ERR_UNSUPPORTED, "%s: unknown \"format\"", what);
    if (st == SM_OK)
        st = sm_json_get_uint64(o, "key_version", UINT32_MAX, 1, &kv, what, err);
    if (st == SM_OK && kv == 0)
        st = sm_error_set(err, SM_ERR_FORMAT, "%s: \"key_version\" must be at least 1", what);
    if (st == SM_OK && !kept)
        st = sm_json_get_uint64(o, "container_size", UINT64_C(1) << 53, 1, &csize, what, err);
    if (st == SM_OK)
        st = sm_json_get_uint64(o, "rental_ends_at", INT64_MAX, 0, &ends, what, err);
    if (st == SM_OK)
        st = sm_json_get_uint64(o, "stored_at", INT64_MAX, 1, &stored, what, err);
    if (st == SM_OK) {
        e->work_id = dup_str(o, "work_id");
        e->txn = dup_str(o, "txn");
        e->key_jwe = dup_str(o, "key_jwe");
        e->media_type = kept ? NULL : dup_str(o, "media_type");
        const char *type = json_string_value(json_object_get(json_object_get(o, "license"), "type"));
        e->rental = type != NULL && strcmp(type, "rental") == 0;
        e->key_version = (uint32_t)kv;
        e->container_size = csize;
        e->rental_ends_at = (int64_t)ends;
        e->stored_at = (int64_t)stored;
        if (e->work_id == NULL || e->txn == NULL || e->key_jwe == NULL ||
            (!kept && e->media_type == NULL))
            st = sm_error_set(err, SM_ERR_NOMEM, "out of memory");
        else if (type == NULL || (!e->rental && strcmp(type, "purchase") != 0))
            st = sm_error_set(err, SM_ERR_FORMAT, "%s: \"license\" has no known type", what);
        else if (e->rental && ends == 0)
            st = sm_error_set(err, SM_ERR_FORMAT, "%s: a rental without \"rental_ends_at\"", what);
        else if (expected_work_id != NULL && strcmp(e->work_id, expected_work_id) != 0)
            st = sm_error_set(err, SM_ERR_FORMAT, "%s is for work \"%s\", not \"%s\"", what,
                              e->work_id, expected_work_id);
        else if (!kept && sm_validate_media_type(e->media_type, "media_type", NULL) != SM_OK)
            st = sm_error_set(err, SM_ERR_FORMAT, "%s: bad \"media_type\"", what);
    }
    json_decref(o);
    return st;
}

sm_status sm_pl_offline_parse_license(const uint8_t *bytes, size_t len,
                                      const char *expected_work_id, const char *what,
                                      sm_pl_offline_entry *e, sm_error *err)
{
    return parse_license(bytes, len, expected_work_id, what, 0, e, err);
}

sm_status sm_pl_streaming_parse(const uint8_t *bytes, size_t len, const char *expected_work_id,
                                const char *what, sm_pl_offline_entry *e, sm_error *err)
{
    return parse_license(bytes, len, expected_work_id, what, 1, e, err);
}

sm_status sm_pl_offline_find(const char *store, const sm_steer *steer, int64_t now,
                             sm_pl_offline_entry **out, sm_error *err)
{
    *out = NULL;
    char name[44];
    sm_status st = sm_pl_offline_entry_name(steer->voucher, name, err);
    if (st != SM_OK)
        return st;
    sm_pl_offline_entry *e = calloc(1, sizeof(*e));
    if (e == NULL)
        return sm_error_set(err, SM_ERR_NOMEM, "out of memory");
    e->dir = path_join(store, name);
    e->media_path = e->dir != NULL ? path_join(e->dir, SM_PL_OFFLINE_MEDIA) : NULL;
    char *lpath = e->dir != NULL ? path_join(e->dir, SM_PL_OFFLINE_LICENSE) : NULL;
    if (lpath == NULL || e->media_path == NULL) {
        free(lpath);
        sm_pl_offline_entry_free(e);
        return sm_error_set(err, SM_ERR_NOMEM, "out of memory");
    }
    uint8_t *bytes = NULL;
    size_t len = 0;
    char what[600];
    snprintf(what, sizeof(what), "offline license %s", lpath);
    st = read_small_file(lpath, SM_PL_OFFLINE_LICENSE_MAX, &bytes, &len, err);
    if (st == SM_ERR_NOT_FOUND)
        st = sm_error_set(err, SM_ERR_NOT_FOUND, "no offline copy of this purchase");
    if (st == SM_OK)
        st = sm_pl_offline_parse_license(bytes, len, steer->work_id, what, e, err);
    if (st == SM_OK) {
        struct stat sb;
        if (stat(e->media_path, &sb) != 0 || !S_ISREG(sb.st_mode))
            st = sm_error_set(err, SM_ERR_FORMAT, "the offline copy %s is missing",
                              e->media_path);
        else if ((uint64_t)sb.st_size != e->container_size)
            st = sm_error_set(err, SM_ERR_FORMAT,
                              "The media is damaged or was tampered with: the offline copy %s "
                              "has %llu bytes, %llu were stored", e->media_path,
                              (unsigned long long)sb.st_size,
                              (unsigned long long)e->container_size);
    }
    if (st == SM_OK && e->rental) {
        int64_t t = now != 0 ? now : (int64_t)time(NULL);
        if (t >= e->rental_ends_at)
            st = sm_error_set(err, SM_ERR_EXPIRED,
                              "License refused: the rental period has ended.");
    }
    if (bytes != NULL) {
        sm_wipe(bytes, len);
        free(bytes);
    }
    free(lpath);
    if (st != SM_OK) {
        sm_pl_offline_entry_free(e);
        return st;
    }
    *out = e;
    return SM_OK;
}

/* mkdir -p with mode 0700 for the parts it creates. */
static sm_status make_dirs(const char *path, sm_error *err)
{
    char buf[4096];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof(buf))
        return sm_error_set(err, SM_ERR_ARG, "bad offline directory path");
    memcpy(buf, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] != '/' && buf[i] != '\0')
            continue;
        char saved = buf[i];
        buf[i] = '\0';
        if (mkdir(buf, 0700) != 0 && errno != EEXIST)
            return sm_error_set(err, SM_ERR_IO, "cannot create %s: %s", buf, strerror(errno));
        buf[i] = saved;
    }
    return SM_OK;
}

static void remove_dir(const char *dir)
{
    if (dir == NULL)
        return;
    DIR *d = opendir(dir);
    if (d != NULL) {
        struct dirent *de;
        while ((de = readdir(d)) != NULL) {
            if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                continue;
            char *p = path_join(dir, de->d_name);
            if (p != NULL)
                unlink(p);
            free(p);
        }
        closedir(d);
    }
    rmdir(dir);
}

void sm_pl_offline_abort(sm_pl_offline_writer *w)
{
    if (w->media_fd >= 0)
        close(w->media_fd);
    w->media_fd = -1;
    remove_dir(w->tmp_dir);
    free(w->store);
    free(w->tmp_dir);
    free(w->final_dir);
    w->store = w->tmp_dir = w->final_dir = NULL;
}

sm_status sm_pl_offline_begin(const char *store, const sm_steer *steer, int overwrite,
                              sm_pl_offline_writer *w, sm_error *err)
{
    memset(w, 0, sizeof(*w));
    w->media_fd = -1;
    char name[44];
    sm_status st = sm_pl_offline_entry_name(steer->voucher, name, err);
    if (st != SM_OK)
        return st;
    if ((st = make_dirs(store, err)) != SM_OK)
        return st;
    w->store = strdup(store);
    w->final_dir = path_join(store, name);
    w->tmp_dir = path_join(store, ".tmp-XXXXXX");
    if (w->store == NULL || w->final_dir == NULL || w->tmp_dir == NULL) {
        sm_pl_offline_abort(w);
        return sm_error_set(err, SM_ERR_NOMEM, "out of memory");
    }
    struct stat sb;
    if (!overwrite && lstat(w->final_dir, &sb) == 0) {
        st = sm_error_set(err, SM_ERR_DUPLICATE, "an offline copy already exists in %s",
                          w->final_dir);
        sm_pl_offline_abort(w);
        return st;
    }
    if (mkdtemp(w->tmp_dir) == NULL) {
        st = sm_error_set(err, SM_ERR_IO, "cannot create a directory in %s: %s", store,
                          strerror(errno));
        free(w->tmp_dir);
        w->tmp_dir = NULL;
        sm_pl_offline_abort(w);
        return st;
    }
    char *mpath = path_join(w->tmp_dir, SM_PL_OFFLINE_MEDIA);
    if (mpath != NULL)
        w->media_fd = open(mpath, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (w->media_fd < 0) {
        st = sm_error_set(err, SM_ERR_IO, "cannot create %s: %s",
                          mpath != NULL ? mpath : w->tmp_dir, strerror(errno));
        free(mpath);
        sm_pl_offline_abort(w);
        return st;
    }
    free(mpath);
    return SM_OK;
}

static sm_status write_all(int fd, const char *data, size_t len, const char *path, sm_error *err)
{
    while (len > 0) {
        ssize_t n = write(fd, data, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return sm_error_set(err, SM_ERR_IO, "cannot write %s: %s", path, strerror(errno));
        data += n;
        len -= (size_t)n;
    }
    return SM_OK;
}

static void sync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
}

/* license.json's text, or with media_type NULL a kept license's. */
static char *license_text(const sm_pl_license *lic, const char *media_type,
                          uint64_t container_size, int64_t stored_at)
{
    json_t *terms = lic->rental ? json_pack("{s:s,s:I}", "type", "rental", "duration",
                                            (json_int_t)lic->rental_duration)
                                : json_pack("{s:s}", "type", "purchase");
    json_t *o = terms != NULL
                    ? json_pack("{s:s,s:s,s:s,s:I,s:s,s:o,s:I}", "format",
                                media_type != NULL ? SM_PL_OFFLINE_FORMAT : SM_PL_KEPT_FORMAT,
                                "work_id", lic->work_id, "txn", lic->txn, "key_version",
                                (json_int_t)lic->key_version, "key_jwe", lic->key_jwe, "license",
                                terms, "stored_at", (json_int_t)stored_at)
                    : NULL;
    if (o != NULL && media_type != NULL &&
        (json_object_set_new(o, "media_type", json_string(media_type)) != 0 ||
         json_object_set_new(o, "container_size", json_integer((json_int_t)container_size)) !=
             0)) {
        json_decref(o);
        o = NULL;
    }
    if (o != NULL && lic->rental)
        json_object_set_new(o, "rental_ends_at", json_integer(lic->rental_ends_at));
    char *text = o != NULL ? json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(o);
    return text;
}

char *sm_pl_offline_license_text(const sm_pl_license *lic, const char *media_type,
                                 uint64_t container_size, int64_t stored_at)
{
    return media_type != NULL ? license_text(lic, media_type, container_size, stored_at) : NULL;
}

sm_status sm_pl_offline_commit(sm_pl_offline_writer *w, const sm_pl_license *lic,
                               const char *media_type, uint64_t container_size, int64_t now,
                               int overwrite, sm_error *err)
{
    sm_status st = SM_OK;
    if (fsync(w->media_fd) != 0)
        st = sm_error_set(err, SM_ERR_IO, "cannot flush the container to disk: %s",
                          strerror(errno));
    close(w->media_fd);
    w->media_fd = -1;
    char *text = sm_pl_offline_license_text(lic, media_type, container_size,
                                            now != 0 ? now : (int64_t)time(NULL));
    if (st == SM_OK && text == NULL)
        st = sm_error_set(err, SM_ERR_NOMEM, "out of memory");
    char *lpath = path_join(w->tmp_dir, SM_PL_OFFLINE_LICENSE);
    if (st == SM_OK && lpath == NULL)
        st = sm_error_set(err, SM_ERR_NOMEM, "out of memory");
    if (st == SM_OK) {
        int fd = open(lpath, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd < 0) {
            st = sm_error_set(err, SM_ERR_IO, "cannot create %s: %s", lpath, strerror(errno));
        } else {
            st = write_all(fd, text, strlen(text), lpath, err);
            if (st == SM_OK)
                st = write_all(fd, "\n", 1, lpath, err);
            if (st == SM_OK && fsync(fd) != 0)
                st = sm_error_set(err, SM_ERR_IO, "cannot flush %s: %s", lpath, strerror(errno));
            close(fd);
        }
    }
    free(lpath);
    if (text != NULL) {
        sm_wipe(text, strlen(text));
        free(text);
    }
    sync_dir(w->tmp_dir);
    if (st == SM_OK) {
        /* An old entry is moved aside first, so the new one appears whole. */
        char *old = NULL;
        struct stat sb;
        if (lstat(w->final_dir, &sb) == 0) {
            if (!overwrite) {
                st = sm_error_set(err, SM_ERR_DUPLICATE, "an offline copy already exists in %s",
                                  w->final_dir);
            } else {
                old = path_join(w->store, ".old-XXXXXX");
                if (old == NULL || mkdtemp(old) == NULL || rename(w->final_dir, old) != 0)
                    st = sm_error_set(err, SM_ERR_IO, "cannot replace %s: %s", w->final_dir,
                                      strerror(errno));
            }
        }
        if (st == SM_OK && rename(w->tmp_dir, w->final_dir) != 0)
            st = sm_error_set(err, SM_ERR_IO, "cannot move the offline copy into %s: %s",
                              w->final_dir, strerror(errno));
        if (old != NULL)
            remove_dir(old);
        free(old);
        if (st == SM_OK) {
            sync_dir(w->store);
            free(w->tmp_dir);
            w->tmp_dir = NULL; /* nothing left to remove */
        }
    }
    sm_pl_offline_abort(w);
    return st;
}

/* --- licenses of streaming plays ---------------------------------------------- */

/* <store>/streaming/<entry name>.json (malloc'ed), its directory in *dir
 * (malloc'ed) when dir is not NULL. */
static sm_status streaming_path(const char *store, const sm_steer *steer, char **path,
                                char **dir, sm_error *err)
{
    *path = NULL;
    char entry[44], name[44 + 5];
    sm_status st = sm_pl_offline_entry_name(steer->voucher, entry, err);
    if (st != SM_OK)
        return st;
    snprintf(name, sizeof(name), "%s.json", entry);
    char *d = path_join(store, SM_PL_STREAMING_DIR);
    *path = d != NULL ? path_join(d, name) : NULL;
    if (*path == NULL) {
        free(d);
        return sm_error_set(err, SM_ERR_NOMEM, "out of memory");
    }
    if (dir != NULL)
        *dir = d;
    else
        free(d);
    return SM_OK;
}

sm_status sm_pl_streaming_find(const char *store, const sm_steer *steer,
                               sm_pl_offline_entry **out, sm_error *err)
{
    *out = NULL;
    char *path = NULL;
    sm_status st = streaming_path(store, steer, &path, NULL, err);
    if (st != SM_OK)
        return st;
    uint8_t *bytes = NULL;
    size_t len = 0;
    st = read_small_file(path, SM_PL_OFFLINE_LICENSE_MAX, &bytes, &len, err);
    sm_pl_offline_entry *e = NULL;
    if (st == SM_OK && (e = calloc(1, sizeof(*e))) == NULL)
        st = sm_error_set(err, SM_ERR_NOMEM, "out of memory");
    if (st == SM_OK) {
        char what[600];
        snprintf(what, sizeof(what), "kept license %s", path);
        st = sm_pl_streaming_parse(bytes, len, steer->work_id, what, e, err);
    }
    /* Unusable contents are "damaged" (the caller forgets the file); a
     * failure to read it now (permissions, I/O) is SM_ERR_IO. */
    if (st != SM_OK && st != SM_ERR_IO && st != SM_ERR_NOT_FOUND && st != SM_ERR_NOMEM)
        st = SM_ERR_FORMAT;
    if (bytes != NULL) {
        sm_wipe(bytes, len);
        free(bytes);
    }
    free(path);
    if (st != SM_OK) {
        sm_pl_offline_entry_free(e);
        return st;
    }
    *out = e;
    return SM_OK;
}

sm_status sm_pl_streaming_keep(const char *store, const sm_steer *steer,
                               const sm_pl_license *lic, int64_t now, sm_error *err)
{
    if (lic->key_jwe == NULL)
        return sm_error_set(err, SM_ERR_ARG, "only a license with its key can be kept");
    char *path = NULL, *dir = NULL;
    sm_status st = streaming_path(store, steer, &path, &dir, err);
    if (st != SM_OK)
        return st;
    st = make_dirs(dir, err);
    char *text = st == SM_OK ? license_text(lic, NULL, 0, now != 0 ? now : (int64_t)time(NULL))
                             : NULL;
    if (st == SM_OK && text == NULL)
        st = sm_error_set(err, SM_ERR_NOMEM, "out of memory");
    if (st == SM_OK)
        st = sm_file_write_atomic(path, text, strlen(text), 0600, 1, err);
    if (text != NULL) {
        sm_wipe(text, strlen(text));
        free(text);
    }
    free(path);
    free(dir);
    return st;
}

void sm_pl_streaming_forget(const char *store, const sm_steer *steer)
{
    char *path = NULL;
    if (streaming_path(store, steer, &path, NULL, NULL) == SM_OK)
        unlink(path);
    free(path);
}
