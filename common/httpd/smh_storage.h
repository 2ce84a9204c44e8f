/* map_to_storage for the modules' URLs: none of them names a file, so the
 * core's directory and file walk (a stat per path component of
 * DocumentRoot + URI, an .htaccess open per directory) is wasted on them.
 *
 * A module registers a two-line hook:
 *     static int ks_map_to_storage(request_rec *r)
 *     { return smh_storage_skip_walk(r, KS_HANDLER); }
 *     smh_storage_hook(ks_map_to_storage);
 *
 * User-visible effect: <Directory>, <Files> sections and .htaccess files no
 * longer apply to a request that SetHandler gives to the module; <Location>
 * and <If> sections apply as before (docs/CONFIGURATION.md §1). */
#ifndef SMH_STORAGE_H
#define SMH_STORAGE_H

#include "smh_httpd.h"

#include <http_request.h>

/* OK (the walk is skipped, r->filename becomes "<handler>:") when the
 * request's <Location>/<If> configuration sets SetHandler to handler;
 * DECLINED otherwise, so the core maps the request as usual. Leaves
 * r->per_dir_config as it found it. */
int smh_storage_skip_walk(request_rec *r, const char *handler);

/* Registers fn as a map_to_storage hook, after mod_http's TRACE and
 * "OPTIONS *" answers and before the core's walk. */
void smh_storage_hook(ap_HOOK_map_to_storage_t *fn);

#endif
