#include "config.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "sm_https.h"

/* Certificates and keys are handed over as memory blobs (curl 7.77). */
#if LIBCURL_VERSION_NUM < 0x074d00
#error "sm_https needs libcurl 7.77 or newer (CURLOPT_CAINFO_BLOB)"
#endif

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_result = CURLE_FAILED_INIT;

static void curl_init_once(void)
{
    curl_init_result = curl_global_init(CURL_GLOBAL_DEFAULT);
}

sm_status sm_https_global_init(sm_error *err)
{
    pthread_once(&curl_once, curl_init_once);
    if (curl_init_result != CURLE_OK)
        return sm_error_set(err, SM_ERR_STATE, "libcurl failed to initialise: %s",
                            curl_easy_strerror(curl_init_result));
    return SM_OK;
}

typedef struct sink {
    char *buf;
    size_t len, max;
    int overflow;
} sink;

static size_t on_data(char *data, size_t size, size_t nmemb, void *ctx)
{
    sink *s = ctx;
    size_t n = size * nmemb;
    if (n > s->max - s->len) {
        s->overflow = 1;
        return 0; /* makes curl fail with CURLE_WRITE_ERROR */
    }
    char *grown = realloc(s->buf, s->len + n + 1);
    if (grown == NULL)
        return 0;
    s->buf = grown;
    memcpy(s->buf + s->len, data, n);
    s->len += n;
    s->buf[s->len] = '\0';
    return n;
}

static void set_blob(CURL *h, CURLoption opt, const char *data, size_t len)
{
    struct curl_blob blob = {.data = (void *)data, .len = len, .flags = CURL_BLOB_COPY};
    curl_easy_setopt(h, opt, &blob);
}

sm_status sm_https_request(const char *method, const char *url, const sm_https_tls *tls,
                           const char *content_type, const char *body, size_t body_len,
                           size_t max_response, unsigned timeout_ms, sm_https_response *out,
                           sm_error *err)
{
    memset(out, 0, sizeof(*out));
    sm_status st = sm_https_global_init(err);
    if (st != SM_OK)
        return st;
    if (strncmp(url, "https://", 8) != 0)
        return sm_error_set(err, SM_ERR_ARG, "%s: only https:// URLs are used", url);
    CURL *h = curl_easy_init();
    if (h == NULL)
        return sm_error_set(err, SM_ERR_NOMEM, "out of memory (curl_easy_init)");
    sink s = {.max = max_response};
    char errbuf[CURL_ERROR_SIZE] = "";
    struct curl_slist *headers = NULL;
    curl_easy_setopt(h, CURLOPT_URL, url);
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "https");
#else
    curl_easy_setopt(h, CURLOPT_PROTOCOLS, (long)CURLPROTO_HTTPS);
#endif
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)(timeout_ms < 5000 ? timeout_ms : 5000));
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &s);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "secmedia/" PACKAGE_VERSION);
    if (tls != NULL && tls->ca_pem != NULL)
        set_blob(h, CURLOPT_CAINFO_BLOB, tls->ca_pem, tls->ca_len);
    if (tls != NULL && tls->cert_pem != NULL) {
        curl_easy_setopt(h, CURLOPT_SSLCERTTYPE, "PEM");
        set_blob(h, CURLOPT_SSLCERT_BLOB, tls->cert_pem, tls->cert_len);
        curl_easy_setopt(h, CURLOPT_SSLKEYTYPE, "PEM");
        set_blob(h, CURLOPT_SSLKEY_BLOB, tls->key_pem, tls->key_len);
    }
    if (strcmp(method, "GET") != 0) {
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body != NULL ? body : "");
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
    }
    if (content_type != NULL) {
        char line[128];
        int n = snprintf(line, sizeof(line), "Content-Type: %s", content_type);
        if (n > 0 && (size_t)n < sizeof(line))
            headers = curl_slist_append(headers, line);
    }
    headers = curl_slist_append(headers, "Expect:");
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    CURLcode rc = curl_easy_perform(h);
    if (rc != CURLE_OK) {
        if (s.overflow)
            st = sm_error_set(err, SM_ERR_TOO_LARGE, "%s: the answer is larger than %zu bytes",
                              url, max_response);
        else
            st = sm_error_set(err, SM_ERR_UNAVAILABLE, "%s: %s", url,
                              errbuf[0] ? errbuf : curl_easy_strerror(rc));
        free(s.buf);
    } else {
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &out->status);
        out->body = s.buf != NULL ? s.buf : calloc(1, 1);
        out->len = s.len;
        if (out->body == NULL)
            st = sm_error_set(err, SM_ERR_NOMEM, "out of memory");
    }
    curl_slist_free_all(headers);
    curl_easy_cleanup(h);
    return st;
}

void sm_https_response_free(sm_https_response *r)
{
    if (r != NULL) {
        free(r->body);
        r->body = NULL;
        r->len = 0;
    }
}
