#include "config.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include "sm_io.h"

/* read()/write() take at most SSIZE_MAX bytes per call; 1 GiB keeps every
 * call well inside that on 32-bit systems too. */
#define SM_IO_MAX_PER_CALL ((size_t)1 << 30)

static const char *io_name(const sm_fd_io *io)
{
    return io->name != NULL ? io->name : "(unnamed file)";
}

/* strerror() is not thread-safe, and strerror_r() comes in two flavours. */
static const char *errno_text(int errnum, char *buf, size_t size)
{
#if defined(__GLIBC__) && defined(_GNU_SOURCE)
    return strerror_r(errnum, buf, size);
#else
    if (strerror_r(errnum, buf, size) != 0)
        snprintf(buf, size, "error %d", errnum);
    return buf;
#endif
}

static size_t clamp_call_size(size_t len)
{
    return len < SM_IO_MAX_PER_CALL ? len : SM_IO_MAX_PER_CALL;
}

sm_status sm_read_fully(sm_read_fn read_fn, void *read_ctx, uint8_t *buf, size_t len, size_t *got,
                        sm_error *err)
{
    size_t done = 0;
    *got = 0;
    while (done < len) {
        size_t n = 0;
        sm_status st = read_fn(read_ctx, buf + done, len - done, &n, err);
        if (st != SM_OK) {
            *got = done;
            return st;
        }
        if (n == 0)
            break;
        if (n > len - done)
            return sm_error_set(err, SM_ERR_IO, "the input source returned more bytes than asked");
        done += n;
    }
    *got = done;
    return SM_OK;
}

sm_status sm_fd_read(void *ctx, uint8_t *buf, size_t len, size_t *got, sm_error *err)
{
    const sm_fd_io *io = ctx;
    size_t done = 0;
    *got = 0;
    /* Short reads (pipes, sockets, signals) are not the end of input: only a
     * read() that returns 0 is. */
    while (done < len) {
        ssize_t n = read(io->fd, buf + done, clamp_call_size(len - done));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            char text[128];
            *got = done;
            return sm_error_set(err, SM_ERR_IO, "cannot read %s: %s", io_name(io),
                                errno_text(errno, text, sizeof(text)));
        }
        if (n == 0)
            break;
        done += (size_t)n;
    }
    *got = done;
    return SM_OK;
}

/* Largest offset pread() can address for this off_t. */
static uint64_t max_file_offset(void)
{
    return sizeof(off_t) >= 8 ? (uint64_t)INT64_MAX : (uint64_t)INT32_MAX;
}

sm_status sm_fd_read_at(void *ctx, uint64_t offset, uint8_t *buf, size_t len, size_t *got,
                        sm_error *err)
{
    const sm_fd_io *io = ctx;
    size_t done = 0;
    *got = 0;
    if (offset > max_file_offset() || len > max_file_offset() - offset)
        return sm_error_set(err, SM_ERR_ARG,
                            "cannot read %s: offset %llu is beyond the largest file offset",
                            io_name(io), (unsigned long long)offset);
    while (done < len) {
        ssize_t n = pread(io->fd, buf + done, clamp_call_size(len - done),
                          (off_t)(offset + done));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            char text[128];
            *got = done;
            return sm_error_set(err, SM_ERR_IO, "cannot read %s at offset %llu: %s",
                                io_name(io), (unsigned long long)(offset + done),
                                errno_text(errno, text, sizeof(text)));
        }
        if (n == 0)
            break;
        done += (size_t)n;
    }
    *got = done;
    return SM_OK;
}

sm_status sm_fd_write(void *ctx, const uint8_t *buf, size_t len, sm_error *err)
{
    const sm_fd_io *io = ctx;
    size_t done = 0;
    while (done < len) {
        ssize_t n = write(io->fd, buf + done, clamp_call_size(len - done));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            char text[128];
            return sm_error_set(err, SM_ERR_IO, "cannot write %s: %s (is the disk full?)",
                                io_name(io), errno_text(errno, text, sizeof(text)));
        }
        if (n == 0)
            return sm_error_set(err, SM_ERR_IO, "cannot write %s: the write made no progress",
                                io_name(io));
        done += (size_t)n;
    }
    return SM_OK;
}

sm_status sm_mem_read(void *ctx, uint8_t *buf, size_t len, size_t *got, sm_error *err)
{
    sm_mem_io *mem = ctx;
    (void)err;
    size_t available = mem->pos < mem->len ? mem->len - mem->pos : 0;
    size_t n = len < available ? len : available;
    if (n > 0)
        memcpy(buf, mem->data + mem->pos, n);
    mem->pos += n;
    *got = n;
    return SM_OK;
}

sm_status sm_mem_read_at(void *ctx, uint64_t offset, uint8_t *buf, size_t len, size_t *got,
                         sm_error *err)
{
    const sm_mem_io *mem = ctx;
    (void)err;
    *got = 0;
    if (offset >= mem->len)
        return SM_OK;
    size_t available = mem->len - (size_t)offset;
    size_t n = len < available ? len : available;
    if (n > 0)
        memcpy(buf, mem->data + (size_t)offset, n);
    *got = n;
    return SM_OK;
}

sm_status sm_mem_write(void *ctx, const uint8_t *buf, size_t len, sm_error *err)
{
    sm_mem_io *mem = ctx;
    if (len == 0)
        return SM_OK;
    if (len > SIZE_MAX - mem->len)
        return sm_error_set(err, SM_ERR_TOO_LARGE, "in-memory output would exceed the address space");
    size_t needed = mem->len + len;
    if (needed > mem->cap) {
        /* Doubling keeps appends amortised O(1). */
        size_t new_cap = mem->cap > 0 ? mem->cap : 4096;
        while (new_cap < needed)
            new_cap = new_cap <= SIZE_MAX / 2 ? new_cap * 2 : needed;
        uint8_t *grown = realloc(mem->data, new_cap);
        if (grown == NULL)
            return sm_error_set(err, SM_ERR_NOMEM,
                                "out of memory growing an in-memory output to %zu bytes", new_cap);
        mem->data = grown;
        mem->cap = new_cap;
    }
    memcpy(mem->data + mem->len, buf, len);
    mem->len = needed;
    return SM_OK;
}
