#include "config.h"

/* Baseline for bench/license: a handler doing what the benchmark compares
 * the license endpoint against, one SELECT and one INSERT on the key
 * server's database through the same pool (common/sm_db). Built by
 * bench/license_bench.py with apxs; never installed. */

#include "smh_httpd.h"

#include <http_config.h>
#include <http_protocol.h>

#include "sm_db.h"

module AP_MODULE_DECLARE_DATA sm_dbbaseline_module;

typedef struct baseline_config {
    sm_db_config db;
    const char *password;
} baseline_config;

static sm_db_pool *pool;

static void *create_config(apr_pool_t *p, server_rec *s)
{
    (void)s;
    baseline_config *c = apr_pcalloc(p, sizeof(*c));
    sm_db_config_defaults(&c->db);
    return c;
}

static const char *set_db(cmd_parms *cmd, void *dummy, const char *socket, const char *user,
                          const char *database)
{
    (void)dummy;
    baseline_config *c = ap_get_module_config(cmd->server->module_config, &sm_dbbaseline_module);
    c->db.socket = socket;
    c->db.user = user;
    c->db.database = database;
    return NULL;
}

static const char *set_password(cmd_parms *cmd, void *dummy, const char *password)
{
    (void)dummy;
    baseline_config *c = ap_get_module_config(cmd->server->module_config, &sm_dbbaseline_module);
    c->db.password = password;
    return NULL;
}

static const char *set_pool(cmd_parms *cmd, void *dummy, const char *n)
{
    (void)dummy;
    baseline_config *c = ap_get_module_config(cmd->server->module_config, &sm_dbbaseline_module);
    c->db.pool_size = (unsigned)strtoul(n, NULL, 10);
    return NULL;
}

static void child_init(apr_pool_t *p, server_rec *s)
{
    (void)p;
    sm_error err;
    /* One pool, for the first (virtual) server that configures one. */
    for (server_rec *vs = s; vs != NULL && pool == NULL; vs = vs->next) {
        baseline_config *c = ap_get_module_config(vs->module_config, &sm_dbbaseline_module);
        if (c->db.database != NULL && sm_db_pool_new(&c->db, &pool, &err) != SM_OK)
            pool = NULL;
    }
}

static int handler(request_rec *r)
{
    if (r->handler == NULL || strcmp(r->handler, "sm-dbbaseline") != 0)
        return DECLINED;
    sm_db_conn *c = NULL;
    sm_db_rows *rows = NULL;
    sm_error err;
    int has = 0;
    if (pool == NULL || sm_db_acquire(pool, &c, &err) != SM_OK)
        return HTTP_SERVICE_UNAVAILABLE;
    sm_status st = sm_db_query(c, "SELECT seq, hash FROM ledger_head WHERE id = 1", NULL, 0,
                               &rows, &err);
    if (st == SM_OK)
        st = sm_db_rows_next(rows, &has, &err);
    sm_db_rows_free(rows);
    if (st == SM_OK)
        st = sm_db_exec(c, "INSERT INTO bench_probe (v) VALUES (?)",
                        SM_DB_PARAMS(sm_db_int(r->request_time)), NULL, &err);
    sm_db_release(c);
    if (st != SM_OK)
        return HTTP_SERVICE_UNAVAILABLE;
    ap_set_content_type(r, "application/json");
    ap_rputs("{\"ok\":true}", r);
    return OK;
}

static void register_hooks(apr_pool_t *p)
{
    (void)p;
    ap_hook_child_init(child_init, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_handler(handler, NULL, NULL, APR_HOOK_MIDDLE);
}

static const command_rec directives[] = {
    AP_INIT_TAKE3("DBBaselineDB", set_db, NULL, RSRC_CONF, "SOCKET USER DATABASE"),
    AP_INIT_TAKE1("DBBaselinePassword", set_password, NULL, RSRC_CONF, "password"),
    AP_INIT_TAKE1("DBBaselinePoolSize", set_pool, NULL, RSRC_CONF, "connections per child"),
    {.name = NULL}};

AP_DECLARE_MODULE(sm_dbbaseline) = {
    STANDARD20_MODULE_STUFF, NULL, NULL, create_config, NULL, directives, register_hooks,
#if defined(AP_MODULE_FLAG_ALWAYS_MERGE)
    0
#endif
};
