#include "config.h"

#include "smh_httpd.h"

#include <apr_pools.h>
#include <http_log.h>
#include <http_protocol.h>

#include "smh_db.h"
#include "smh_log.h"
#include "smh_problem.h"

static apr_status_t pool_cleanup(void *data)
{
    sm_db_pool_free(data);
    return APR_SUCCESS;
}

sm_db_pool *smh_db_pool_child_init(apr_pool_t *pchild, server_rec *s, const sm_db_config *cfg,
                                   unsigned schema_version)
{
    sm_db_pool *pool;
    sm_error err;
    sm_db_config with_version = *cfg;
    with_version.min_schema_version = schema_version;
    if (sm_db_pool_new(&with_version, &pool, &err) != SM_OK) {
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, s,
                     SMLOGNO(00010) "cannot create the database pool: %s", err.message);
        return NULL;
    }
    apr_pool_cleanup_register(pchild, pool, pool_cleanup, apr_pool_cleanup_null);
    return pool;
}

int smh_db_problem(request_rec *r, const char *what, const sm_error *err)
{
    switch (err->status) {
    case SM_ERR_UNAVAILABLE:
    case SM_ERR_CONFLICT:
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      SMLOGNO(00011) "database unavailable while %s: %s", what, err->message);
        return smh_problem(r, HTTP_SERVICE_UNAVAILABLE, "service-unavailable",
                           "Service temporarily unavailable",
                           "the database is unreachable or overloaded while %s; retry later",
                           what);
    case SM_ERR_DUPLICATE:
        return smh_problem(r, HTTP_CONFLICT, "conflict", "Conflict",
                           "%s conflicts with existing data", what);
    default:
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      SMLOGNO(00012) "database error while %s: %s", what, err->message);
        return smh_problem_internal(r);
    }
}
