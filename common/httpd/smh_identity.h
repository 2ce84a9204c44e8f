/* Client-certificate identities and roles.
 *
 * A client is identified by the subject DN of a certificate mod_ssl
 * verified (SSL_CLIENT_VERIFY == "SUCCESS"), as mod_ssl prints it in
 * SSL_CLIENT_S_DN (RFC 4514 order, e.g. "CN=owner,O=Example"). Which DN
 * holds which role is configuration: one directive per module, e.g.
 *   MediaStoreClientRole owner "CN=owner,O=Example"
 * Comparison is exact; a DN may hold several roles. The handshake's
 * SSLVerifyClient optional|require is the operator's; these functions
 * only trust what mod_ssl verified. */
#ifndef SMH_IDENTITY_H
#define SMH_IDENTITY_H

#include <apr_tables.h>
#include "smh_httpd.h"

typedef struct smh_role_map {
    apr_array_header_t *entries; /* smh_role_entry */
} smh_role_map;

typedef struct smh_role_entry {
    const char *role;
    const char *subject_dn;
} smh_role_entry;

smh_role_map *smh_role_map_make(apr_pool_t *p);
/* Adds DN -> role. known_roles is a NULL-terminated list of the roles the
 * module knows; an unknown role or an empty DN is an error message naming
 * the directive (NULL on success). */
const char *smh_role_map_add(apr_pool_t *p, smh_role_map *m, const char *directive,
                             const char *role, const char *subject_dn,
                             const char *const *known_roles);
/* base's entries followed by add's. */
smh_role_map *smh_role_map_merge(apr_pool_t *p, const smh_role_map *base,
                                 const smh_role_map *add);

/* Looks up mod_ssl's ssl_var_lookup; call from an optional_fn_retrieve
 * hook. Returns 0 when mod_ssl is not loaded. */
int smh_identity_init(void);

/* The verified client certificate's subject DN, or NULL when the client
 * sent none, mod_ssl did not verify it, or the connection is not TLS. */
const char *smh_client_subject_dn(request_rec *r);

/* 1 when the verified client holds role in m. */
int smh_client_has_role(request_rec *r, const smh_role_map *m, const char *role);

/* OK when the client holds role (and *dn_out, may be NULL, gets its DN);
 * otherwise DONE after a 403 problem: "client-certificate-required" when
 * no verified certificate was presented, "client-certificate-not-authorized"
 * when its DN lacks the role. */
int smh_require_role(request_rec *r, const smh_role_map *m, const char *role,
                     const char **dn_out);

#endif
