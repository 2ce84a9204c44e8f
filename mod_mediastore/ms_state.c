#include "config.h"

#include "smh_httpd.h"

#include <apr_hash.h>
#include <http_config.h>
#include <http_log.h>

#include "mediastore.h"
#include "ms_config.h"
#include "smh_db.h"

extern module AP_MODULE_DECLARE_DATA mediastore_module;

/* One state per virtual host that uses the module; found through the
 * server config, which children inherit read-only, so the state pointer
 * lives in a child-private table keyed by the server_rec. */
static apr_hash_t *states;

void ms_state_child_init(apr_pool_t *pchild, server_rec *s)
{
    states = apr_hash_make(pchild);
    for (server_rec *vs = s; vs != NULL; vs = vs->next) {
        ms_server_config *c = ms_server_conf(vs);
        if (!ms_config_in_use(c))
            continue;
        ms_child_state *st = apr_pcalloc(pchild, sizeof(*st));
        st->db = smh_db_pool_child_init(pchild, vs, &c->db.cfg);
        apr_hash_set(states, &vs, sizeof(vs), st);
    }
}

ms_child_state *ms_state(request_rec *r)
{
    server_rec *s = r->server;
    return states != NULL ? apr_hash_get(states, &s, sizeof(s)) : NULL;
}
