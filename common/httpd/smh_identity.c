#include "config.h"

#include "smh_httpd.h"

#include <string.h>

#include <apr_optional.h>
#include <apr_strings.h>
#include <http_log.h>
#include <mod_ssl.h>

#include "smh_identity.h"
#include "smh_log.h"
#include "smh_problem.h"

static APR_OPTIONAL_FN_TYPE(ssl_var_lookup) *ssl_var_lookup_fn;

smh_role_map *smh_role_map_make(apr_pool_t *p)
{
    smh_role_map *m = apr_pcalloc(p, sizeof(*m));
    m->entries = apr_array_make(p, 4, sizeof(smh_role_entry));
    return m;
}

const char *smh_role_map_add(apr_pool_t *p, smh_role_map *m, const char *directive,
                             const char *role, const char *subject_dn,
                             const char *const *known_roles)
{
    int known = 0;
    const char *list = "";
    for (const char *const *k = known_roles; *k != NULL; k++) {
        if (strcmp(*k, role) == 0)
            known = 1;
        list = apr_pstrcat(p, list, *list ? ", " : "", *k, NULL);
    }
    if (!known)
        return apr_psprintf(p, "%s: unknown role \"%s\"; known roles: %s", directive, role, list);
    if (subject_dn[0] == '\0' || strchr(subject_dn, '=') == NULL)
        return apr_psprintf(p,
                            "%s %s: \"%s\" is not a subject DN; write it as mod_ssl shows "
                            "SSL_CLIENT_S_DN, e.g. \"CN=name,O=Organisation\"",
                            directive, role, subject_dn);
    smh_role_entry *e = apr_array_push(m->entries);
    e->role = apr_pstrdup(p, role);
    e->subject_dn = apr_pstrdup(p, subject_dn);
    return NULL;
}

smh_role_map *smh_role_map_merge(apr_pool_t *p, const smh_role_map *base,
                                 const smh_role_map *add)
{
    smh_role_map *m = apr_pcalloc(p, sizeof(*m));
    m->entries = apr_array_append(p, base->entries, add->entries);
    return m;
}

int smh_identity_init(void)
{
    ssl_var_lookup_fn = APR_RETRIEVE_OPTIONAL_FN(ssl_var_lookup);
    return ssl_var_lookup_fn != NULL;
}

static const char *ssl_var(request_rec *r, const char *name)
{
    if (ssl_var_lookup_fn == NULL)
        return NULL;
    return ssl_var_lookup_fn(r->pool, r->server, r->connection, r, (char *)name);
}

const char *smh_client_subject_dn(request_rec *r)
{
    const char *verify = ssl_var(r, "SSL_CLIENT_VERIFY");
    if (verify == NULL || strcmp(verify, "SUCCESS") != 0)
        return NULL;
    const char *dn = ssl_var(r, "SSL_CLIENT_S_DN");
    return dn != NULL && dn[0] != '\0' ? dn : NULL;
}

static int dn_has_role(const smh_role_map *m, const char *dn, const char *role)
{
    const smh_role_entry *e = (const smh_role_entry *)m->entries->elts;
    for (int i = 0; i < m->entries->nelts; i++) {
        if (strcmp(e[i].role, role) == 0 && strcmp(e[i].subject_dn, dn) == 0)
            return 1;
    }
    return 0;
}

int smh_client_has_role(request_rec *r, const smh_role_map *m, const char *role)
{
    const char *dn = smh_client_subject_dn(r);
    return dn != NULL && dn_has_role(m, dn, role);
}

int smh_require_role(request_rec *r, const smh_role_map *m, const char *role,
                     const char **dn_out)
{
    const char *dn = smh_client_subject_dn(r);
    if (dn == NULL)
        return smh_problem(r, HTTP_FORBIDDEN, "client-certificate-required",
                           "Client certificate required",
                           "this request needs a TLS client certificate of the %s role, "
                           "issued by a CA this server trusts; present one",
                           role);
    if (!dn_has_role(m, dn, role)) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                      SMLOGNO(00003) "client %s lacks role %s", dn, role);
        return smh_problem(r, HTTP_FORBIDDEN, "client-certificate-not-authorized",
                           "Client certificate not authorized",
                           "the client certificate \"%s\" does not hold the %s role here; "
                           "ask the operator to map it to that role",
                           dn, role);
    }
    if (dn_out != NULL)
        *dn_out = dn;
    return OK;
}
