#include "config.h"

#include "smh_httpd.h"

#include <apr_strings.h>
#include <http_config.h>
#include <http_core.h>
#include <http_log.h>
#include <http_request.h>

#include "smh_log.h"
#include "smh_storage.h"

/* Whether core_override_type (the first fixup) will set r->handler to
 * handler, given r->per_dir_config: the same expression, lower-cased and
 * with "none" meaning unset, as the core does. An expression that fails
 * here fails there too; declining lets the core report it. A SetHandler
 * the server defaults already hold (server or virtual host level) does
 * not count: a <Directory> section may override that one. */
static int handler_is(request_rec *r, ap_conf_vector_t *server_defaults, const char *handler)
{
    const core_dir_config *d = ap_get_core_module_config(r->per_dir_config);
    const core_dir_config *s = ap_get_core_module_config(server_defaults);
    if (d->expr_handler == s->expr_handler && d->handler == s->handler)
        return 0;
    const char *val = NULL;
    if (d->expr_handler != NULL) {
        const char *err = NULL;
        val = ap_expr_str_exec(r, d->expr_handler, &err);
        if (err != NULL)
            return 0;
    } else {
        val = d->handler;
    }
    return val != NULL && ap_cstr_casecmp(val, handler) == 0;
}

/* Why this test is exact: ap_process_request_internal has reset
 * r->per_dir_config to the server defaults, and after map_to_storage it
 * merges the <Location> and <If> sections on top of whatever the hook left
 * (core_map_to_storage: <Directory>, .htaccess, <Files>). Those sections
 * merge last, so a SetHandler from them wins over any <Directory> one:
 * if they name our handler, the request is ours with or without the walk.
 * A SetHandler only in a <Directory> or at server level is not enough:
 * such a request still gets the walk, and still works. (<If> sections
 * nested in a <Directory> no longer apply, like the <Directory> itself.)
 * The core ran this location walk before translate_name for the same URI,
 * so ap_location_walk answers from its per-request cache; <If> conditions
 * are evaluated again, as the core does on every walk. The config is put
 * back so the core's own walk after this hook starts from the server
 * defaults, as it always does. */
int smh_storage_skip_walk(request_rec *r, const char *handler)
{
    ap_conf_vector_t *server_defaults = r->per_dir_config;
    int ours = ap_location_walk(r) == OK && ap_if_walk(r) == OK &&
               handler_is(r, server_defaults, handler);
    r->per_dir_config = server_defaults;
    if (!ours)
        return DECLINED;
    /* core_translate left DocumentRoot + URI here, a file that does not
     * exist; the type checker (mod_mime) would take the URI's extensions
     * for a content language, encoding or filter. The walk used to cut the
     * name at the first missing directory; a name with no path, like
     * mod_proxy's "proxy:", has no extensions at all. */
    r->filename = apr_pstrcat(r->pool, handler, ":", NULL);
    ap_log_rerror(APLOG_MARK, APLOG_TRACE3, 0, r,
                  SMLOGNO(00013) "%s: no directory walk for a %s request", r->uri, handler);
    return OK;
}

void smh_storage_hook(ap_HOOK_map_to_storage_t *fn)
{
    /* LAST: mod_proxy (FIRST) keeps its requests, and mod_http's TRACE and
     * "OPTIONS *" answers (MIDDLE) keep applying to our URLs; the core's
     * walk is REALLY_LAST. */
    ap_hook_map_to_storage(fn, NULL, NULL, APR_HOOK_LAST);
}
