/* Ranged fetcher for a container on one or more media stores (mirrors):
 * GET with "Authorization: Bearer <delivery token>" and "Range: bytes=A-B",
 * 206 answers only, read-ahead by a window of whole chunks, fallover to the
 * next mirror on any failure (docs/PLAYER.md §1.6). Its read_at feeds
 * sm_container_ra. */
#ifndef SM_PL_FETCH_H
#define SM_PL_FETCH_H

#include <stddef.h>
#include <stdint.h>

#include "sm_error.h"
#include "sm_pl_http.h"

/* One container chunk on the wire (16 KiB plaintext + 16-byte tag). */
#define SM_PL_CHUNK_WIRE 16400u
/* Default read-ahead: 8 chunks per request. */
#define SM_PL_FETCH_DEFAULT_WINDOW (8u * SM_PL_CHUNK_WIRE)
#define SM_PL_FETCH_MAX_WINDOW (256u * SM_PL_CHUNK_WIRE)

typedef struct sm_pl_fetch sm_pl_fetch;

/* urls: 1..8 mirrors in order of preference; token: the delivery token
 * (copied, wiped on free); window: bytes per request (0 = default). */
sm_status sm_pl_fetch_new(const sm_pl_transport *tr, char *const *urls, size_t url_count,
                          const char *token, size_t window, sm_pl_fetch **out, sm_error *err);

/* Finds the first mirror that answers a range with 206 and learns the
 * container's size from Content-Range. */
sm_status sm_pl_fetch_open(sm_pl_fetch *f, sm_error *err);

/* Asked for a new delivery token when a media store answers 401
 * token-expired (the token outlived its lifetime during a play): *token is
 * malloc'ed, then wiped and freed by the fetcher, which repeats the request
 * once with it. An error ends the read with its message (e.g. the key
 * server's refusal in plain words). */
typedef sm_status (*sm_pl_token_renew_fn)(void *ctx, char **token, sm_error *err);
void sm_pl_fetch_set_renewal(sm_pl_fetch *f, sm_pl_token_renew_fn fn, void *ctx);

uint64_t sm_pl_fetch_size(const sm_pl_fetch *f);
/* Index of the mirror in use. */
size_t sm_pl_fetch_mirror(const sm_pl_fetch *f);
/* Requests sent so far (for tests and the bench). */
unsigned long sm_pl_fetch_requests(const sm_pl_fetch *f);

/* An sm_read_at_fn over the container (ctx: the sm_pl_fetch). Serves from
 * the read-ahead window or fetches a new window starting at offset. */
sm_status sm_pl_fetch_read_at(void *ctx, uint64_t offset, uint8_t *buf, size_t len, size_t *got,
                              sm_error *err);

void sm_pl_fetch_free(sm_pl_fetch *f);

/* Parses "bytes A-B/SIZE" strictly (decimal, A <= B < SIZE). 0 on success. */
int sm_pl_parse_content_range(const char *v, uint64_t *first, uint64_t *last, uint64_t *size);

#endif
