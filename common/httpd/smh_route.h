/* Request routing: method + path patterns below a module's location.
 *
 * A pattern is a path of literal segments and {name} segments, e.g.
 * "/works/{work_id}/preview". A {name} segment matches one non-empty
 * segment (never a "/"); the handler validates the captured value.
 * Paths are matched against r->uri (already %-decoded and normalised by
 * httpd, so ".." segments are gone and %2F is refused by default) after
 * the location prefix, with no trailing slash. */
#ifndef SMH_ROUTE_H
#define SMH_ROUTE_H

#include "smh_httpd.h"

#define SMH_ROUTE_MAX_PARAMS 4

typedef struct smh_route_match {
    const char *names[SMH_ROUTE_MAX_PARAMS];
    const char *values[SMH_ROUTE_MAX_PARAMS];
    int count;
    const void *data; /* the matched route's data */
} smh_route_match;

typedef int (*smh_route_handler)(request_rec *r, const smh_route_match *m, void *ctx);

typedef struct smh_route {
    const char *methods; /* comma-separated, e.g. "GET,HEAD" */
    const char *pattern;
    smh_route_handler handler;
    /* Optional, passed in the match: lets one handler serve several routes
     * that differ only in what it should call. */
    const void *data;
} smh_route;

/* The captured value of {name}, or NULL. */
const char *smh_route_param(const smh_route_match *m, const char *name);

/* The request path below base (a <Location> path such as "/" or "/store"):
 * "/works/x" for r->uri "/store/works/x". NULL when r->uri is not below
 * base. */
const char *smh_route_path(request_rec *r, const char *base);

/* The <Location> path whose SetHandler selected this request: the last
 * <Location> (in config order, as httpd merges them) that is a URL prefix
 * of r->uri and sets this handler, whatever other sections match too (a
 * broader <Location /> placed after it, a narrower <Location> inside it).
 * Without one (SetHandler in a <LocationMatch>, a <Directory>, the virtual
 * host): the innermost merged section's path when it is a URL prefix of
 * r->uri, else "/". */
const char *smh_route_location_base(request_rec *r);

/* Finds the route for r below smh_route_location_base(r) and calls its
 * handler: routes work under whatever <Location> the operator chose. No
 * path match: 404 problem. Path matches but not the method: 405 problem
 * with Allow. Returns the handler's result or DONE. */
int smh_route_dispatch(request_rec *r, const smh_route *routes, size_t nroutes, void *ctx);

#endif
