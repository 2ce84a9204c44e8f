/* Request bodies: bounded reads into memory and strict JSON bodies.
 * Streaming consumers (uploads) read with ap_get_brigade themselves and
 * call smh_body_mark_consumed when they reached the end. */
#ifndef SMH_BODY_H
#define SMH_BODY_H

#include "smh_httpd.h"
#include <jansson.h>

#include "sm_json.h"

/* 1 once the body was read to its end (or there is none to read). */
int smh_body_consumed(request_rec *r);
void smh_body_mark_consumed(request_rec *r);

/* The announced Content-Length, or -1 when absent (chunked) or invalid. */
apr_off_t smh_body_announced_length(request_rec *r);

/* Reads the whole body into r->pool, NUL-terminated. Returns OK, or DONE
 * after answering 413 (announced or actual size above limit; the rest is
 * not read) or 400 (read error, a client that went away). */
int smh_read_body(request_rec *r, apr_size_t limit, char **buf, apr_size_t *len);

/* A JSON object body: Content-Type must be application/json (415
 * otherwise), at most limit bytes (413), parsed strictly by sm_json and
 * checked against fields (400 naming the field). what names the document
 * in messages ("reservation request"). OK with *out set (json_decref it),
 * or DONE after answering. */
int smh_read_json_body(request_rec *r, apr_size_t limit, const sm_json_field *fields,
                       const char *what, json_t **out);

#endif
