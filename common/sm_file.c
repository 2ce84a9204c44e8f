#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sm_file.h"

static sm_status write_all(int fd, const uint8_t *data, size_t len, const char *path,
                           sm_error *err)
{
    while (len > 0) {
        ssize_t n = write(fd, data, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return sm_error_set(err, SM_ERR_IO, "%s: cannot write it: %s", path,
                                n < 0 ? strerror(errno) : "no progress");
        data += n;
        len -= (size_t)n;
    }
    return SM_OK;
}

/* Moves tmp to path without ever replacing an existing file. */
static int install_noreplace(const char *tmp, const char *path)
{
    if (renameat2(AT_FDCWD, tmp, AT_FDCWD, path, RENAME_NOREPLACE) == 0)
        return 0;
    if (errno != EINVAL && errno != ENOSYS && errno != ENOTSUP)
        return -1;
    /* File systems without RENAME_NOREPLACE: link() refuses to replace too. */
    if (link(tmp, path) != 0)
        return -1;
    unlink(tmp);
    return 0;
}

/* The directory holding path ("." or "/" at the ends); 0 when too long. */
static int parent_dir(const char *path, char *dir, size_t size)
{
    const char *slash = strrchr(path, '/');
    int n = slash == NULL ? snprintf(dir, size, ".")
            : slash == path ? snprintf(dir, size, "/")
                            : snprintf(dir, size, "%.*s", (int)(slash - path), path);
    return n >= 0 && (size_t)n < size;
}

static sm_status refuse_existing(const char *path, sm_error *err)
{
    return sm_error_set(err, SM_ERR_IO,
                        "%s: already exists; refusing to replace it (move it away first, or "
                        "use --force where the command offers it)",
                        path);
}

sm_status sm_file_write_atomic(const char *path, const void *data, size_t len, mode_t mode,
                               int overwrite, sm_error *err)
{
    struct stat sb;
    if (path == NULL || path[0] == '\0')
        return sm_error_set(err, SM_ERR_ARG, "no file name given");
    if (!overwrite && lstat(path, &sb) == 0)
        return refuse_existing(path, err);

    const char *slash = strrchr(path, '/');
    const char *base = slash != NULL ? slash + 1 : path;
    char dir[4096], tmp[4096];
    if (base[0] == '\0')
        return sm_error_set(err, SM_ERR_ARG, "%s: names a directory, not a file", path);
    int tn = parent_dir(path, dir, sizeof(dir))
                 ? snprintf(tmp, sizeof(tmp), "%s/.%s.tmp-XXXXXX", dir, base)
                 : -1;
    if (tn < 0 || (size_t)tn >= sizeof(tmp))
        return sm_error_set(err, SM_ERR_TOO_LARGE, "%s: path too long", path);

    /* mkostemp: O_CREAT|O_EXCL and mode 0600, so nobody reads a half-written
     * secret; the final mode is applied once the content is complete. */
    int fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0)
        return sm_error_set(err, SM_ERR_IO,
                            "%s: cannot create a temporary file in %s: %s (check that the "
                            "directory exists and is writable)",
                            path, dir, strerror(errno));
    sm_status st = write_all(fd, data, len, path, err);
    if (st == SM_OK && fchmod(fd, mode) != 0)
        st = sm_error_set(err, SM_ERR_IO, "%s: cannot set its mode: %s", path, strerror(errno));
    if (st == SM_OK && fsync(fd) != 0)
        st = sm_error_set(err, SM_ERR_IO, "%s: cannot flush it to disk: %s", path,
                          strerror(errno));
    if (close(fd) != 0 && st == SM_OK)
        st = sm_error_set(err, SM_ERR_IO, "%s: cannot write it: %s", path, strerror(errno));
    if (st == SM_OK)
        st = sm_file_install(tmp, path, overwrite, err);
    if (st != SM_OK)
        unlink(tmp);
    return st;
}

sm_status sm_file_install(const char *tmp, const char *path, int overwrite, sm_error *err)
{
    if ((overwrite ? rename(tmp, path) : install_noreplace(tmp, path)) != 0)
        return errno == EEXIST ? refuse_existing(path, err)
                               : sm_error_set(err, SM_ERR_IO, "%s: cannot move it into place: %s",
                                              path, strerror(errno));
    /* The rename is durable only once the directory entry is on disk. */
    char dir[4096];
    if (!parent_dir(path, dir, sizeof(dir)))
        return sm_error_set(err, SM_ERR_TOO_LARGE, "%s: path too long", path);
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0 || fsync(dfd) != 0) {
        int e = errno;
        if (dfd >= 0)
            close(dfd);
        return sm_error_set(err, SM_ERR_IO, "%s: written, but syncing directory %s failed: %s",
                            path, dir, strerror(e));
    }
    close(dfd);
    return SM_OK;
}

/* Opens path as a regular file of at most max_len bytes: the descriptor
 * in *fd, its stat in *st. */
static sm_status open_bounded(const char *path, size_t max_len, int *fd, struct stat *st,
                              sm_error *err)
{
    /* O_NONBLOCK: opening a FIFO planted at a key path must not hang; the
     * flag is irrelevant for the regular file we then insist on. */
    *fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (*fd < 0)
        return sm_error_set(err, SM_ERR_IO, "%s: cannot open it: %s", path, strerror(errno));
    if (fstat(*fd, st) != 0 || !S_ISREG(st->st_mode)) {
        close(*fd);
        return sm_error_set(err, SM_ERR_IO, "%s: not a regular file", path);
    }
    if ((uint64_t)st->st_size > max_len) {
        close(*fd);
        return sm_error_set(err, SM_ERR_TOO_LARGE, "%s: %lld bytes is more than the %zu allowed",
                            path, (long long)st->st_size, max_len);
    }
    return SM_OK;
}

/* Reads fd to its end into buf (cap bytes, at least max_len + 1: the spare
 * byte detects a file that grew after fstat) and closes it. */
static sm_status read_bounded(int fd, const char *path, uint8_t *buf, size_t cap,
                              size_t max_len, size_t *used, sm_error *err)
{
    sm_status rc = SM_OK;
    *used = 0;
    while (*used < cap) {
        ssize_t n = read(fd, buf + *used, cap - *used);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            rc = sm_error_set(err, SM_ERR_IO, "%s: cannot read it: %s", path, strerror(errno));
        if (n <= 0)
            break;
        *used += (size_t)n;
    }
    close(fd);
    if (rc == SM_OK && *used > max_len)
        rc = sm_error_set(err, SM_ERR_TOO_LARGE, "%s: more than the %zu bytes allowed", path,
                          max_len);
    return rc;
}

sm_status sm_file_read_secret(const char *path, size_t max_len, sm_secret **out, mode_t *mode_out,
                              sm_error *err)
{
    struct stat st;
    int fd;
    *out = NULL;
    sm_status rc = open_bounded(path, max_len, &fd, &st, err);
    if (rc != SM_OK)
        return rc;
    sm_secret *buf = sm_secret_new(max_len + 1);
    if (buf == NULL) {
        close(fd);
        return sm_error_set(err, SM_ERR_NOMEM, "%s: out of memory", path);
    }
    size_t used;
    rc = read_bounded(fd, path, buf->bytes, buf->len, max_len, &used, err);
    if (rc != SM_OK) {
        sm_secret_free(buf);
        return rc;
    }
    /* Report the real length; the spare capacity stays wiped-on-free. */
    sm_secret *exact = sm_secret_from(buf->bytes, used);
    sm_secret_free(buf);
    if (exact == NULL)
        return sm_error_set(err, SM_ERR_NOMEM, "%s: out of memory", path);
    if (mode_out != NULL)
        *mode_out = st.st_mode;
    *out = exact;
    return SM_OK;
}

sm_status sm_file_read_text(const char *path, size_t max_len, char **out, size_t *len_out,
                            sm_error *err)
{
    struct stat st;
    int fd;
    *out = NULL;
    sm_status rc = open_bounded(path, max_len, &fd, &st, err);
    if (rc != SM_OK)
        return rc;
    /* Sized by the file, not by max_len: one spare byte to see growth,
     * one for the NUL. */
    size_t cap = (size_t)st.st_size + 1 < max_len + 1 ? (size_t)st.st_size + 1 : max_len + 1;
    char *buf = malloc(cap + 1);
    if (buf == NULL) {
        close(fd);
        return sm_error_set(err, SM_ERR_NOMEM, "%s: out of memory", path);
    }
    size_t used;
    rc = read_bounded(fd, path, (uint8_t *)buf, cap, max_len, &used, err);
    if (rc == SM_OK && used == cap && cap <= max_len)
        rc = sm_error_set(err, SM_ERR_IO, "%s: the file grew while it was read; try again",
                          path);
    if (rc == SM_OK && memchr(buf, '\0', used) != NULL)
        rc = sm_error_set(err, SM_ERR_FORMAT, "%s: text with a NUL byte", path);
    if (rc != SM_OK) {
        free(buf);
        return rc;
    }
    buf[used] = '\0';
    if (len_out != NULL)
        *len_out = used;
    *out = buf;
    return SM_OK;
}

sm_status sm_file_refuse_loose_mode(const char *path, mode_t mode, sm_error *err)
{
    return sm_error_set(err, SM_ERR_KEY,
                        "%s: holds a private key but group or others may read it (mode %04o); "
                        "it must be readable by its owner only: run chmod 600 '%s'",
                        path, (unsigned)(mode & 07777), path);
}
