/* JSON answers. */
#ifndef SMH_JSON_H
#define SMH_JSON_H

#include "smh_httpd.h"
#include <jansson.h>

/* Answers status with body (borrowed) as application/json, compact, with
 * Cache-Control: no-store. Returns DONE (500 problem when body cannot be
 * serialised). */
int smh_send_json(request_rec *r, int status, json_t *body);

/* Answers 204 No Content. Returns DONE. */
int smh_send_no_content(request_rec *r);

#endif
