/* Byte sources and sinks used by the container code.
 *
 * The readers never do I/O themselves: they call these callbacks, so the
 * same code decrypts local files, HTTP Range responses and memory. */
#ifndef SM_IO_H
#define SM_IO_H

#include <stddef.h>
#include <stdint.h>

#include "sm_error.h"

/* Sequential read: fill up to len bytes; *got < len only at end of input. */
typedef sm_status (*sm_read_fn)(void *ctx, uint8_t *buf, size_t len, size_t *got, sm_error *err);

/* Positional read: fill up to len bytes starting at offset; *got < len only
 * when the input ends before offset + len. */
typedef sm_status (*sm_read_at_fn)(void *ctx, uint64_t offset, uint8_t *buf, size_t len,
                                   size_t *got, sm_error *err);

/* Sequential write of exactly len bytes. */
typedef sm_status (*sm_write_fn)(void *ctx, const uint8_t *buf, size_t len, sm_error *err);

/* Calls read_fn until len bytes arrived or it reports the end (*got == 0),
 * so sources that return short reads early are handled too. */
sm_status sm_read_fully(sm_read_fn read_fn, void *read_ctx, uint8_t *buf, size_t len, size_t *got,
                        sm_error *err);

/* File descriptor adapters: ctx is a pointer to an sm_fd_io. */
typedef struct sm_fd_io {
    int fd;
    const char *name; /* for error messages, e.g. the path */
} sm_fd_io;

sm_status sm_fd_read(void *ctx, uint8_t *buf, size_t len, size_t *got, sm_error *err);
sm_status sm_fd_read_at(void *ctx, uint64_t offset, uint8_t *buf, size_t len, size_t *got,
                        sm_error *err);
sm_status sm_fd_write(void *ctx, const uint8_t *buf, size_t len, sm_error *err);

/* Memory adapters: ctx is a pointer to an sm_mem_io. Writes grow `data`
 * (malloc'ed, caller frees); reads consume from `pos`. */
typedef struct sm_mem_io {
    uint8_t *data;
    size_t len;
    size_t cap;
    size_t pos;
} sm_mem_io;

sm_status sm_mem_read(void *ctx, uint8_t *buf, size_t len, size_t *got, sm_error *err);
sm_status sm_mem_read_at(void *ctx, uint64_t offset, uint8_t *buf, size_t len, size_t *got,
                         sm_error *err);
sm_status sm_mem_write(void *ctx, const uint8_t *buf, size_t len, sm_error *err);

#endif
