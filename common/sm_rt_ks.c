#include "config.h"

/* Key server client with kept-alive connections (sm_rt_ks.h). */

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "sm_rt_ks.h"

#define IDLE_HANDLES_MAX 64u

struct sm_rt_ks {
    char *base_url;
    char *ca, *cert, *key;
    size_t ca_len, cert_len, key_len;
    unsigned timeout_ms;
    pthread_mutex_t lock;
    CURL *idle[IDLE_HANDLES_MAX];
    unsigned n_idle;
};

static char *dup_blob(const char *p, size_t len, int *failed)
{
    if (p == NULL)
        return NULL;
    char *d = malloc(len + 1);
    if (d == NULL) {
        *failed = 1;
        return NULL;
    }
    memcpy(d, p, len);
    d[len] = '\0';
    return d;
}

sm_status sm_rt_ks_new(const char *base_url, const sm_https_tls *tls, unsigned timeout_ms,
                       sm_rt_ks **out, sm_error *err)
{
    *out = NULL;
    sm_status st = sm_https_global_init(err);
    if (st != SM_OK)
        return st;
    if (strncmp(base_url, "https://", 8) != 0)
        return sm_error_set(err, SM_ERR_ARG, "%s: the key server is reached over https:// only",
                            base_url);
    sm_rt_ks *ks = calloc(1, sizeof(*ks));
    if (ks == NULL)
        return sm_error_set(err, SM_ERR_NOMEM, "out of memory");
    int failed = 0;
    ks->base_url = strdup(base_url);
    ks->ca = dup_blob(tls->ca_pem, tls->ca_len, &failed);
    ks->cert = dup_blob(tls->cert_pem, tls->cert_len, &failed);
    ks->key = dup_blob(tls->key_pem, tls->key_len, &failed);
    ks->ca_len = tls->ca_len;
    ks->cert_len = tls->cert_len;
    ks->key_len = tls->key_len;
    ks->timeout_ms = timeout_ms;
    if (failed || ks->base_url == NULL || pthread_mutex_init(&ks->lock, NULL) != 0) {
        free(ks->base_url);
        free(ks->ca);
        free(ks->cert);
        free(ks->key);
        free(ks);
        return sm_error_set(err, SM_ERR_NOMEM, "out of memory");
    }
    *out = ks;
    return SM_OK;
}

void sm_rt_ks_free(sm_rt_ks *ks)
{
    if (ks == NULL)
        return;
    for (unsigned i = 0; i < ks->n_idle; i++)
        curl_easy_cleanup(ks->idle[i]);
    pthread_mutex_destroy(&ks->lock);
    free(ks->base_url);
    free(ks->ca);
    if (ks->key != NULL) {
        memset(ks->key, 0, ks->key_len);
        free(ks->key);
    }
    free(ks->cert);
    free(ks);
}

const char *sm_rt_ks_base_url(const sm_rt_ks *ks)
{
    return ks->base_url;
}

static void set_blob(CURL *h, CURLoption opt, const char *data, size_t len)
{
    struct curl_blob blob = {.data = (void *)data, .len = len, .flags = CURL_BLOB_COPY};
    curl_easy_setopt(h, opt, &blob);
}

/* A handle with the fixed options; its connection cache survives reuse. */
static CURL *take_handle(sm_rt_ks *ks)
{
    pthread_mutex_lock(&ks->lock);
    CURL *h = ks->n_idle > 0 ? ks->idle[--ks->n_idle] : NULL;
    pthread_mutex_unlock(&ks->lock);
    if (h != NULL)
        return h;
    h = curl_easy_init();
    if (h == NULL)
        return NULL;
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "https");
#else
    curl_easy_setopt(h, CURLOPT_PROTOCOLS, (long)CURLPROTO_HTTPS);
#endif
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "secmedia-retail/" PACKAGE_VERSION);
    if (ks->ca != NULL)
        set_blob(h, CURLOPT_CAINFO_BLOB, ks->ca, ks->ca_len);
    if (ks->cert != NULL) {
        curl_easy_setopt(h, CURLOPT_SSLCERTTYPE, "PEM");
        set_blob(h, CURLOPT_SSLCERT_BLOB, ks->cert, ks->cert_len);
        curl_easy_setopt(h, CURLOPT_SSLKEYTYPE, "PEM");
        set_blob(h, CURLOPT_SSLKEY_BLOB, ks->key, ks->key_len);
    }
    return h;
}

static void give_back(sm_rt_ks *ks, CURL *h, int reusable)
{
    if (reusable) {
        pthread_mutex_lock(&ks->lock);
        if (ks->n_idle < IDLE_HANDLES_MAX) {
            ks->idle[ks->n_idle++] = h;
            h = NULL;
        }
        pthread_mutex_unlock(&ks->lock);
    }
    if (h != NULL)
        curl_easy_cleanup(h);
}

typedef struct sink {
    char *buf;
    size_t len, cap, max;
    int overflow;
    char *content_type;
} sink;

static size_t on_data(char *data, size_t size, size_t n, void *arg)
{
    sink *s = arg;
    size_t add = size * n;
    if (s->len + add > s->max) {
        s->overflow = 1;
        return 0;
    }
    if (s->len + add + 1 > s->cap) {
        size_t cap = s->cap ? s->cap : 4096;
        while (cap < s->len + add + 1)
            cap *= 2;
        char *b = realloc(s->buf, cap);
        if (b == NULL)
            return 0;
        s->buf = b;
        s->cap = cap;
    }
    memcpy(s->buf + s->len, data, add);
    s->len += add;
    s->buf[s->len] = '\0';
    return add;
}

sm_status sm_rt_ks_call(sm_rt_ks *ks, const char *method, const char *path, const char *body,
                        size_t body_len, const char *dpop, size_t max_response,
                        sm_rt_ks_response *out, sm_error *err)
{
    memset(out, 0, sizeof(*out));
    CURL *h = take_handle(ks);
    if (h == NULL)
        return sm_error_set(err, SM_ERR_NOMEM, "out of memory (curl_easy_init)");
    size_t ulen = strlen(ks->base_url) + strlen(path) + 1;
    char *url = malloc(ulen);
    if (url == NULL) {
        give_back(ks, h, 1);
        return sm_error_set(err, SM_ERR_NOMEM, "out of memory");
    }
    snprintf(url, ulen, "%s%s", ks->base_url, path);
    sink s = {.max = max_response};
    char errbuf[CURL_ERROR_SIZE] = "";
    struct curl_slist *headers = NULL;
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)ks->timeout_ms);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
                     (long)(ks->timeout_ms < 5000 ? ks->timeout_ms : 5000));
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &s);
    if (strcmp(method, "GET") == 0) {
        curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, NULL);
    } else {
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body != NULL ? body : "");
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(body ? body_len : 0));
        headers = curl_slist_append(headers, "Content-Type: application/json");
    }
    if (dpop != NULL) {
        size_t dl = strlen(dpop) + 8;
        char *line = malloc(dl);
        if (line != NULL) {
            snprintf(line, dl, "DPoP: %s", dpop);
            headers = curl_slist_append(headers, line);
            free(line);
        }
    }
    headers = curl_slist_append(headers, "Expect:");
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    CURLcode rc = curl_easy_perform(h);
    sm_status st = SM_OK;
    if (rc != CURLE_OK) {
        if (s.overflow)
            st = sm_error_set(err, SM_ERR_TOO_LARGE, "%s: the answer is larger than %zu bytes",
                              url, max_response);
        else
            st = sm_error_set(err, SM_ERR_UNAVAILABLE, "key server unreachable (%s): %s", url,
                              errbuf[0] ? errbuf : curl_easy_strerror(rc));
        free(s.buf);
    } else {
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &out->status);
        char *ct = NULL;
        if (curl_easy_getinfo(h, CURLINFO_CONTENT_TYPE, &ct) == CURLE_OK && ct != NULL)
            snprintf(out->content_type, sizeof(out->content_type), "%s", ct);
        out->body = s.buf != NULL ? s.buf : calloc(1, 1);
        out->len = s.len;
        if (out->body == NULL)
            st = sm_error_set(err, SM_ERR_NOMEM, "out of memory");
    }
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, NULL);
    curl_slist_free_all(headers);
    free(url);
    give_back(ks, h, rc == CURLE_OK);
    return st;
}

void sm_rt_ks_response_free(sm_rt_ks_response *r)
{
    if (r != NULL) {
        free(r->body);
        r->body = NULL;
        r->len = 0;
    }
}
