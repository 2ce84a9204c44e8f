#include "config.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "sm_https.h"
#include "sm_pl_http.h"
#include "sm_secmem.h"

struct sm_pl_http_curl {
    CURL *h;
    sm_pl_http_config cfg;
    char *ca_file;
};

void sm_pl_http_response_clear(sm_pl_http_response *rs)
{
    if (rs == NULL)
        return;
    free(rs->body);
    memset(rs, 0, sizeof(*rs));
}

void sm_pl_url_for_message(const char *url, char *buf, size_t size)
{
    if (size == 0)
        return;
    size_t n = strcspn(url, "?#");
    if (n >= size)
        n = size - 1;
    memcpy(buf, url, n);
    buf[n] = '\0';
}

sm_status sm_pl_http_curl_new(const sm_pl_http_config *cfg, sm_pl_http_curl **out, sm_error *err)
{
    *out = NULL;
    sm_status st = sm_https_global_init(err);
    if (st != SM_OK)
        return st;
    sm_pl_http_curl *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return sm_error_set(err, SM_ERR_NOMEM, "out of memory");
    c->cfg = *cfg;
    if (cfg->ca_file != NULL && cfg->ca_file[0] != '\0') {
        c->ca_file = strdup(cfg->ca_file);
        if (c->ca_file == NULL) {
            free(c);
            return sm_error_set(err, SM_ERR_NOMEM, "out of memory");
        }
    }
    c->cfg.ca_file = c->ca_file;
    if (c->cfg.connect_timeout_s == 0)
        c->cfg.connect_timeout_s = 10;
    if (c->cfg.timeout_s == 0)
        c->cfg.timeout_s = 30;
    c->h = curl_easy_init();
    if (c->h == NULL) {
        free(c->ca_file);
        free(c);
        return sm_error_set(err, SM_ERR_NOMEM, "out of memory (curl_easy_init)");
    }
    *out = c;
    return SM_OK;
}

void sm_pl_http_curl_free(sm_pl_http_curl *c)
{
    if (c == NULL)
        return;
    curl_easy_cleanup(c->h);
    free(c->ca_file);
    free(c);
}

typedef struct transfer {
    const sm_pl_http_request *rq;
    sm_pl_http_response *rs;
    sm_pl_http_curl *c;
    size_t cap;       /* capacity of rs->body */
    int overflow;
    int nomem;
    int interrupted;
    int unexpected;   /* status other than rq->expect_status */
    int dropped;      /* unexpected answer's body cut short on purpose */
} transfer;

static size_t on_body(char *data, size_t size, size_t nmemb, void *ctx)
{
    transfer *t = ctx;
    size_t n = size * nmemb;
    size_t max_body = t->rq->max_body;
    if (t->rq->expect_status != 0 && !t->unexpected) {
        long code = 0;
        curl_easy_getinfo(t->c->h, CURLINFO_RESPONSE_CODE, &code);
        t->unexpected = code != t->rq->expect_status;
    }
    if (t->unexpected) {
        max_body = SM_PL_HTTP_ERROR_BODY_MAX;
        if (n > max_body - t->rs->len) {
            t->dropped = 1;
            return 0;
        }
    } else if (t->rq->body_buf != NULL) {
        if (n > t->rq->body_cap - t->rs->len) {
            t->overflow = 1;
            return 0;
        }
        memcpy(t->rq->body_buf + t->rs->len, data, n);
        t->rs->len += n;
        return n;
    }
    if (n > max_body - t->rs->len) {
        t->overflow = 1;
        return 0;
    }
    if (t->rs->len + n + 1 > t->cap) {
        size_t cap = t->cap != 0 ? t->cap : 4096;
        while (cap < t->rs->len + n + 1)
            cap *= 2;
        uint8_t *grown = realloc(t->rs->body, cap);
        if (grown == NULL) {
            t->nomem = 1;
            return 0;
        }
        t->rs->body = grown;
        t->cap = cap;
    }
    memcpy(t->rs->body + t->rs->len, data, n);
    t->rs->len += n;
    t->rs->body[t->rs->len] = '\0';
    return n;
}

/* Copies a header's value (trimmed) into dst when the line is "name:". */
static void take_header(const char *line, size_t len, const char *name, char *dst, size_t size)
{
    size_t nl = strlen(name);
    if (len <= nl || strncasecmp(line, name, nl) != 0 || line[nl] != ':')
        return;
    const char *v = line + nl + 1;
    const char *end = line + len;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ' || end[-1] == '\t'))
        end--;
    size_t n = (size_t)(end - v);
    if (n >= size) {
        dst[0] = '\0'; /* too long to be one we accept */
        return;
    }
    memcpy(dst, v, n);
    dst[n] = '\0';
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *ctx)
{
    transfer *t = ctx;
    size_t n = size * nmemb;
    /* A new status line (e.g. after 100 Continue) starts a new header set. */
    if (n >= 5 && strncmp(data, "HTTP/", 5) == 0) {
        t->rs->content_type[0] = '\0';
        t->rs->content_range[0] = '\0';
    }
    take_header(data, n, "Content-Type", t->rs->content_type, sizeof(t->rs->content_type));
    take_header(data, n, "Content-Range", t->rs->content_range, sizeof(t->rs->content_range));
    return n;
}

static int on_progress(void *ctx, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    (void)dltotal;
    (void)dlnow;
    (void)ultotal;
    (void)ulnow;
    transfer *t = ctx;
    if (t->c->cfg.interrupted != NULL && t->c->cfg.interrupted(t->c->cfg.interrupt_ctx)) {
        t->interrupted = 1;
        return 1;
    }
    return 0;
}

/* "type/subtype; charset=..." -> "type/subtype" in lower case. */
static void normalise_content_type(char *ct)
{
    size_t n = strcspn(ct, "; \t");
    ct[n] = '\0';
    for (char *p = ct; *p; p++)
        *p = (char)tolower((unsigned char)*p);
}

static int is_certificate_error(CURLcode rc)
{
    return rc == CURLE_PEER_FAILED_VERIFICATION || rc == CURLE_SSL_CACERT_BADFILE ||
           rc == CURLE_SSL_ISSUER_ERROR || rc == CURLE_SSL_PINNEDPUBKEYNOTMATCH;
}

sm_status sm_pl_http_curl_perform(void *ctx, const sm_pl_http_request *rq,
                                  sm_pl_http_response *rs, sm_error *err)
{
    sm_pl_http_curl *c = ctx;
    memset(rs, 0, sizeof(*rs));
    char shown[512];
    sm_pl_url_for_message(rq->url, shown, sizeof(shown));
    int https = strncmp(rq->url, "https://", 8) == 0;
    if (!https && !(c->cfg.allow_http && strncmp(rq->url, "http://", 7) == 0))
        return sm_error_set(err, SM_ERR_ARG, "only https:// URLs are used (got %s)", shown);

    CURL *h = c->h;
    /* Reset options but keep the connection cache (keep-alive). */
    curl_easy_reset(h);
    transfer t = {.rq = rq, .rs = rs, .c = c};
    char errbuf[CURL_ERROR_SIZE] = "";
    struct curl_slist *headers = NULL;
    curl_easy_setopt(h, CURLOPT_URL, rq->url);
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, c->cfg.allow_http ? "https,http" : "https");
#else
    curl_easy_setopt(h, CURLOPT_PROTOCOLS,
                     (long)(c->cfg.allow_http ? (CURLPROTO_HTTPS | CURLPROTO_HTTP) : CURLPROTO_HTTPS));
#endif
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, (long)c->cfg.connect_timeout_s);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, (long)c->cfg.timeout_s);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
    if (c->cfg.ca_file != NULL)
        curl_easy_setopt(h, CURLOPT_CAINFO, c->cfg.ca_file);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &t);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, &t);
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, &t);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "secmedia-player/" PACKAGE_VERSION);
    /* Bodies are taken as sent: no transparent decompression. */
    curl_easy_setopt(h, CURLOPT_HTTP_CONTENT_DECODING, 0L);
    if (strcmp(rq->method, "GET") != 0) {
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, rq->method);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, rq->body != NULL ? rq->body : "");
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)rq->body_len);
    }
    sm_status st = SM_OK;
    for (size_t i = 0; i < SM_PL_HTTP_MAX_HEADERS && rq->headers[i] != NULL; i++) {
        struct curl_slist *grown = curl_slist_append(headers, rq->headers[i]);
        if (grown == NULL) {
            st = sm_error_set(err, SM_ERR_NOMEM, "out of memory");
            break;
        }
        headers = grown;
    }
    if (st == SM_OK) {
        struct curl_slist *grown = curl_slist_append(headers, "Expect:");
        if (grown == NULL)
            st = sm_error_set(err, SM_ERR_NOMEM, "out of memory");
        else
            headers = grown;
    }
    if (st == SM_OK) {
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
        CURLcode rc = curl_easy_perform(h);
        if (rc == CURLE_OK || (rc == CURLE_WRITE_ERROR && t.dropped)) {
            curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &rs->status);
            normalise_content_type(rs->content_type);
            if ((rq->body_buf == NULL || t.unexpected) && rs->body == NULL) {
                rs->body = calloc(1, 1);
                if (rs->body == NULL)
                    st = sm_error_set(err, SM_ERR_NOMEM, "out of memory");
            }
        } else if (t.interrupted) {
            st = sm_error_set(err, SM_ERR_STATE, "Interrupted: the request to %s was stopped",
                              shown);
        } else if (t.overflow) {
            st = sm_error_set(err, SM_ERR_TOO_LARGE,
                              "Network failure: %s sent a larger answer than expected", shown);
        } else if (t.nomem) {
            st = sm_error_set(err, SM_ERR_NOMEM, "out of memory");
        } else if (rc == CURLE_SSL_CACERT_BADFILE) {
            st = sm_error_set(err, SM_ERR_AUTH,
                              "Certificate failure: the CA file %s cannot be used (%s)",
                              c->cfg.ca_file != NULL ? c->cfg.ca_file : "(system)",
                              errbuf[0] ? errbuf : curl_easy_strerror(rc));
        } else if (is_certificate_error(rc)) {
            st = sm_error_set(err, SM_ERR_AUTH,
                              "Certificate failure: the certificate of %s could not be verified "
                              "(%s). Set --secmedia-ca-file if the server uses a private CA.",
                              shown, errbuf[0] ? errbuf : curl_easy_strerror(rc));
        } else {
            st = sm_error_set(err, SM_ERR_UNAVAILABLE, "Network failure: cannot reach %s: %s",
                              shown, errbuf[0] ? errbuf : curl_easy_strerror(rc));
        }
    }
    /* Headers carry the delivery token and the proof: wipe curl's copies. */
    for (struct curl_slist *l = headers; l != NULL; l = l->next)
        sm_wipe(l->data, strlen(l->data));
    curl_slist_free_all(headers);
    /* Forget the pointers into this call's stack frame. */
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, NULL);
    if (st != SM_OK) {
        free(rs->body);
        rs->body = NULL;
        rs->len = 0;
    }
    return st;
}
