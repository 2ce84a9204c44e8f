/* Delivery-complete: when the last byte of a work has gone out for a
 * transaction, record the event in the media store's database and wake
 * the sender thread, which tells the key server (common/sm_ms_events.c).
 *
 * "Gone out" is judged in the log_transaction hook: httpd runs it once the
 * response up to its end-of-request marker was written to the connection
 * (or the connection failed, which sets c->aborted). A 200 carried the
 * whole file; a 206 counts when its range (Content-Range, or for a
 * multipart answer the Range asked for) includes the last byte. HEAD, 304,
 * 412 and aborted responses never count. */
#include "config.h"

#include "smh_httpd.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <apr_strings.h>
#include <http_config.h>
#include <http_log.h>
#include <http_protocol.h>
#include <http_request.h>

#include "mediastore.h"
#include "sm_ms_upload.h"
#include "smh_log.h"

APLOG_USE_MODULE(mediastore);
extern module AP_MODULE_DECLARE_DATA mediastore_module;

typedef struct delivery_note {
    const char *txn;
    const char *work_id;
    apr_off_t size;
} delivery_note;

void ms_note_delivery(request_rec *r, const char *txn, const char *work_id, apr_off_t size)
{
    delivery_note *n = apr_pcalloc(r->pool, sizeof(*n));
    n->txn = apr_pstrdup(r->pool, txn);
    n->work_id = apr_pstrdup(r->pool, work_id);
    n->size = size;
    ap_set_module_config(r->request_config, &mediastore_module, n);
}

/* "bytes FIRST-LAST/SIZE" ends at the last byte of size. */
static int content_range_reaches_end(const char *cr, apr_off_t size)
{
    const char *dash = cr != NULL ? strchr(cr, '-') : NULL;
    if (dash == NULL || strncmp(cr, "bytes ", 6) != 0)
        return 0;
    char *end;
    apr_off_t last;
    if (apr_strtoff(&last, dash + 1, &end, 10) != APR_SUCCESS || *end != '/')
        return 0;
    return last == size - 1;
}

static int delivered_last_byte(request_rec *r, const delivery_note *n)
{
    if (r->header_only || r->connection->aborted || n->size <= 0)
        return 0;
    if (r->status == HTTP_OK)
        return 1;
    if (r->status != HTTP_PARTIAL_CONTENT)
        return 0;
    const char *cr = apr_table_get(r->headers_out, "Content-Range");
    if (cr != NULL)
        return content_range_reaches_end(cr, n->size);
    return sm_range_includes_last_byte(apr_table_get(r->headers_in, "Range"),
                                       (uint64_t)n->size);
}

static int ms_log_transaction(request_rec *r)
{
    const delivery_note *n = ap_get_module_config(r->request_config, &mediastore_module);
    if (n == NULL || !delivered_last_byte(r, n))
        return DECLINED;
    ms_child_state *state = ms_state(r);
    sm_error err;
    sm_status st = state != NULL && state->db != NULL
                       ? sm_ms_event_record(state->db, n->txn, n->work_id, (int64_t)time(NULL),
                                            &err)
                       : sm_error_set(&err, SM_ERR_UNAVAILABLE, "no database pool");
    if (st != SM_OK) {
        /* Kept in this child's memory and stored by the sender thread when
         * the database is back. */
        int kept = state != NULL &&
                   sm_ms_notifier_defer(state->notifier, n->txn, n->work_id, (int64_t)time(NULL));
        ap_log_rerror(APLOG_MARK, kept ? APLOG_WARNING : APLOG_ERR, 0, r,
                      SMLOGNO(02016) "delivery-complete txn %s work %s could not be recorded "
                                     "(%s); %s",
                      n->txn, n->work_id, err.message,
                      kept ? "kept in memory until the database is back" : "lost");
        if (kept)
            sm_ms_notifier_wake(state->notifier);
        return DECLINED;
    }
    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                  SMLOGNO(02011) "delivery-complete txn %s work %s recorded", n->txn,
                  n->work_id);
    sm_ms_notifier_wake(state->notifier);
    return DECLINED;
}

void ms_register_delivery_hooks(apr_pool_t *p)
{
    (void)p;
    ap_hook_log_transaction(ms_log_transaction, NULL, NULL, APR_HOOK_MIDDLE);
}
