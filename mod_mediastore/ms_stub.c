#include "config.h"

#include "smh_httpd.h"

#include <http_protocol.h>

#include "mediastore.h"
#include "smh_problem.h"

/* Placeholders until upload and delivery land. */
static int not_yet(request_rec *r)
{
    return smh_problem(r, HTTP_NOT_IMPLEMENTED, "not-implemented", "Not implemented",
                       "this endpoint is not implemented yet");
}

int ms_handle_upload_work(request_rec *r, const smh_route_match *m, void *ctx)
{
    (void)m;
    (void)ctx;
    return not_yet(r);
}

int ms_handle_upload_preview(request_rec *r, const smh_route_match *m, void *ctx)
{
    (void)m;
    (void)ctx;
    return not_yet(r);
}

int ms_handle_deliver(request_rec *r, const smh_route_match *m, void *ctx)
{
    (void)m;
    (void)ctx;
    return not_yet(r);
}

int ms_handle_preview(request_rec *r, const smh_route_match *m, void *ctx)
{
    (void)m;
    (void)ctx;
    return not_yet(r);
}

void ms_register_delivery_hooks(apr_pool_t *p)
{
    (void)p;
}
