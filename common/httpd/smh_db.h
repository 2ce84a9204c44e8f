/* The database pool's life in an httpd child, and answers for failures. */
#ifndef SMH_DB_H
#define SMH_DB_H

#include "smh_httpd.h"

#include "sm_db.h"
#include "sm_error.h"

/* Creates this child's pool (call from child_init) and frees it with
 * pchild. On failure logs SM00010 and returns NULL: requests needing the
 * database then answer 503. No connection is made here. schema_version:
 * the version the module needs (sm_schema.h); each new connection checks
 * it, so requests on an older database fail with 500 and SM00012 naming
 * secmedia-db-migrate. */
sm_db_pool *smh_db_pool_child_init(apr_pool_t *pchild, server_rec *s, const sm_db_config *cfg,
                                   unsigned schema_version);

/* Answers a failed database operation and returns DONE:
 * UNAVAILABLE/CONFLICT -> 503 "service-unavailable" (logged as SM00011 at
 * error level), DUPLICATE -> 409 "conflict", anything else -> 500 (logged
 * as SM00012). what says what the request was doing ("storing the work"). */
int smh_db_problem(request_rec *r, const char *what, const sm_error *err);

#endif
