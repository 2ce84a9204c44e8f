#include "config.h"

#include "smh_httpd.h"

#include <string.h>

#include <ap_expr.h>
#include <apr_strings.h>
#include <http_config.h>
#include <http_core.h>
#include <http_protocol.h>

#include "smh_problem.h"
#include "smh_route.h"

const char *smh_route_param(const smh_route_match *m, const char *name)
{
    for (int i = 0; i < m->count; i++) {
        if (strcmp(m->names[i], name) == 0)
            return m->values[i];
    }
    return NULL;
}

const char *smh_route_path(request_rec *r, const char *base)
{
    const char *uri = r->uri;
    if (uri == NULL || uri[0] != '/')
        return NULL;
    size_t blen = strlen(base);
    while (blen > 0 && base[blen - 1] == '/')
        blen--;
    if (strncmp(uri, base, blen) != 0 || (uri[blen] != '/' && uri[blen] != '\0'))
        return NULL;
    const char *rest = uri + blen;
    return rest[0] == '\0' ? "/" : rest;
}

/* Matches path against pattern, filling m. Both start with '/'. */
static int path_matches(apr_pool_t *p, const char *pattern, const char *path,
                        smh_route_match *m)
{
    m->count = 0;
    const char *pp = pattern, *sp = path;
    while (*pp == '/' && *sp == '/') {
        pp++;
        sp++;
        size_t plen = strcspn(pp, "/");
        size_t slen = strcspn(sp, "/");
        if (plen >= 2 && pp[0] == '{' && pp[plen - 1] == '}') {
            if (slen == 0 || m->count == SMH_ROUTE_MAX_PARAMS)
                return 0;
            m->names[m->count] = apr_pstrmemdup(p, pp + 1, plen - 2);
            m->values[m->count] = apr_pstrmemdup(p, sp, slen);
            m->count++;
        } else if (plen != slen || strncmp(pp, sp, plen) != 0) {
            return 0;
        }
        pp += plen;
        sp += slen;
    }
    return *pp == '\0' && *sp == '\0';
}

static int method_listed(const char *methods, const char *method)
{
    size_t mlen = strlen(method);
    const char *s = methods;
    while (*s != '\0') {
        size_t n = strcspn(s, ",");
        if (n == mlen && strncmp(s, method, n) == 0)
            return 1;
        s += n;
        if (*s == ',')
            s++;
    }
    return 0;
}

/* The path of the last <Location> (config order, as httpd merges them)
 * that is a plain URL prefix of r->uri and whose SetHandler names this
 * request's handler; NULL when there is none. Other sections matching the
 * request (a broader <Location /> after it, a narrower one inside it that
 * sets a header or Require) do not move the module's base. */
static const char *handler_location(request_rec *r)
{
    const core_server_config *sconf = ap_get_core_module_config(r->server->module_config);
    if (sconf == NULL || sconf->sec_url == NULL || r->handler == NULL)
        return NULL;
    const char *found = NULL;
    ap_conf_vector_t **sections = (ap_conf_vector_t **)sconf->sec_url->elts;
    for (int i = 0; i < sconf->sec_url->nelts; i++) {
        const core_dir_config *d = ap_get_core_module_config(sections[i]);
        if (d == NULL || d->d == NULL || d->d[0] != '/' || d->r != NULL || d->d_is_fnmatch ||
            d->expr_handler == NULL || smh_route_path(r, d->d) == NULL)
            continue;
        const char *err = NULL;
        const char *handler = ap_expr_str_exec(r, d->expr_handler, &err);
        if (err == NULL && handler != NULL && strcmp(handler, r->handler) == 0)
            found = d->d;
    }
    return found;
}

const char *smh_route_location_base(request_rec *r)
{
    const char *own = handler_location(r);
    if (own != NULL)
        return own;
    const core_dir_config *d = ap_get_core_module_config(r->per_dir_config);
    if (d == NULL || d->d == NULL || d->d[0] != '/' || d->r != NULL || d->d_is_fnmatch)
        return "/";
    /* A <Directory> path is a file system path: it is no prefix of r->uri
     * (and if it happened to be one, routes would still be matched below
     * it consistently). */
    return smh_route_path(r, d->d) != NULL ? d->d : "/";
}

int smh_route_dispatch(request_rec *r, const smh_route *routes, size_t nroutes, void *ctx)
{
    const char *base = smh_route_location_base(r);
    const char *path = smh_route_path(r, base);
    if (path == NULL)
        return smh_problem_not_found(r, "no such resource here; check the URL");
    const char *allow = NULL;
    smh_route_match m;
    for (size_t i = 0; i < nroutes; i++) {
        if (!path_matches(r->pool, routes[i].pattern, path, &m))
            continue;
        if (method_listed(routes[i].methods, r->method)) {
            m.data = routes[i].data;
            return routes[i].handler(r, &m, ctx);
        }
        allow = allow ? apr_pstrcat(r->pool, allow, ",", routes[i].methods, NULL)
                      : routes[i].methods;
    }
    if (allow == NULL)
        return smh_problem_not_found(r, "no such resource here; check the URL");
    apr_table_setn(r->headers_out, "Allow", allow);
    return smh_problem(r, HTTP_METHOD_NOT_ALLOWED, "method-not-allowed", "Method not allowed",
                       "%s is not allowed on this resource; allowed: %s", r->method, allow);
}
