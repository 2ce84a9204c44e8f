#include "config.h"

#include "smh_httpd.h"

#include <stdlib.h>
#include <string.h>

#include <apr_strings.h>
#include <http_protocol.h>

#include "smh_json.h"
#include "smh_problem.h"

int smh_send_json(request_rec *r, int status, json_t *body)
{
    char *text = json_dumps(body, JSON_COMPACT);
    if (text == NULL)
        return smh_problem_internal(r);
    r->status = status;
    ap_set_content_type(r, "application/json");
    apr_table_setn(r->headers_out, "Cache-Control", "no-store");
    apr_size_t len = strlen(text);
    ap_set_content_length(r, (apr_off_t)len);
    if (!r->header_only)
        ap_rwrite(text, (int)len, r);
    free(text);
    return DONE;
}

int smh_send_no_content(request_rec *r)
{
    r->status = HTTP_NO_CONTENT;
    apr_table_setn(r->headers_out, "Cache-Control", "no-store");
    return DONE;
}
