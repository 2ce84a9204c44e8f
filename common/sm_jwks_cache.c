#include "config.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sm_jwks_cache.h"

typedef struct snapshot {
    sm_jwks *set;
    unsigned refs; /* users plus 1 while it is the current one */
} snapshot;

struct sm_jwks_cache {
    char *url;
    sm_https_tls tls; /* blobs owned */
    int64_t lifetime, min_refresh;
    unsigned timeout_ms;
    pthread_mutex_t lock;
    pthread_cond_t fetched;
    snapshot *current;
    int64_t fetched_at;      /* of current; monotonic seconds */
    int64_t last_attempt_at; /* any fetch, successful or not; INT64_MIN = never */
    int fetching;
    sm_jwks_cache_stats stats;
};

static int64_t now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec;
}

static char *dup_blob(const char *p, size_t n)
{
    if (p == NULL)
        return NULL;
    char *d = malloc(n + 1);
    if (d != NULL) {
        memcpy(d, p, n);
        d[n] = '\0';
    }
    return d;
}

sm_status sm_jwks_cache_new(const char *url, const sm_https_tls *tls, int64_t lifetime_s,
                            int64_t min_refresh_s, unsigned timeout_ms, sm_jwks_cache **out,
                            sm_error *err)
{
    *out = NULL;
    sm_jwks_cache *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return sm_error_set(err, SM_ERR_NOMEM, "out of memory");
    c->url = strdup(url);
    if (tls != NULL) {
        c->tls.ca_pem = dup_blob(tls->ca_pem, tls->ca_len);
        c->tls.ca_len = tls->ca_len;
        c->tls.cert_pem = dup_blob(tls->cert_pem, tls->cert_len);
        c->tls.cert_len = tls->cert_len;
        c->tls.key_pem = dup_blob(tls->key_pem, tls->key_len);
        c->tls.key_len = tls->key_len;
    }
    c->lifetime = lifetime_s;
    c->min_refresh = min_refresh_s;
    c->timeout_ms = timeout_ms;
    c->last_attempt_at = INT64_MIN;
    pthread_mutex_init(&c->lock, NULL);
    pthread_cond_init(&c->fetched, NULL);
    if (c->url == NULL) {
        sm_jwks_cache_free(c);
        return sm_error_set(err, SM_ERR_NOMEM, "out of memory");
    }
    *out = c;
    return SM_OK;
}

static void snapshot_unref_locked(snapshot *s)
{
    if (s != NULL && --s->refs == 0) {
        sm_jwks_free(s->set);
        free(s);
    }
}

void sm_jwks_cache_free(sm_jwks_cache *c)
{
    if (c == NULL)
        return;
    snapshot_unref_locked(c->current);
    pthread_mutex_destroy(&c->lock);
    pthread_cond_destroy(&c->fetched);
    free(c->url);
    free((char *)c->tls.ca_pem);
    free((char *)c->tls.cert_pem);
    if (c->tls.key_pem != NULL) {
        memset((char *)c->tls.key_pem, 0, c->tls.key_len);
        free((char *)c->tls.key_pem);
    }
    free(c);
}

/* One HTTPS fetch and parse, without the lock. */
static sm_status fetch(sm_jwks_cache *c, sm_jwks **out, sm_error *err)
{
    sm_https_response resp;
    sm_status st = sm_https_request("GET", c->url, &c->tls, NULL, NULL, 0, SM_JOSE_MAX_TOKEN,
                                    c->timeout_ms, &resp, err);
    if (st != SM_OK)
        return st == SM_ERR_TOO_LARGE ? SM_ERR_UNAVAILABLE : st;
    if (resp.status != 200) {
        st = sm_error_set(err, SM_ERR_UNAVAILABLE, "%s answered HTTP %ld instead of the key set",
                          c->url, resp.status);
    } else {
        sm_error perr;
        st = sm_jwks_from_json(resp.body, resp.len, out, &perr);
        if (st != SM_OK)
            st = sm_error_set(err, SM_ERR_UNAVAILABLE, "%s: not a usable JWK set: %s", c->url,
                              perr.message);
    }
    sm_https_response_free(&resp);
    return st;
}

/* Fetches the set unless another thread is fetching (then waits for it)
 * or the last attempt is less than min_interval seconds old. Called and
 * returns with the lock held. */
static void refresh_locked(sm_jwks_cache *c, int64_t min_interval, sm_error *err)
{
    if (c->fetching) {
        while (c->fetching)
            pthread_cond_wait(&c->fetched, &c->lock);
        return; /* someone else just fetched */
    }
    int64_t now = now_s();
    if (c->last_attempt_at != INT64_MIN && now - c->last_attempt_at < min_interval) {
        c->stats.refused_refreshes++;
        return;
    }
    c->fetching = 1;
    c->last_attempt_at = now;
    c->stats.fetches++;
    pthread_mutex_unlock(&c->lock);
    sm_jwks *set = NULL;
    sm_error ferr;
    sm_error_clear(&ferr);
    sm_status st = fetch(c, &set, &ferr);
    pthread_mutex_lock(&c->lock);
    if (st == SM_OK) {
        snapshot *s = calloc(1, sizeof(*s));
        if (s == NULL) {
            sm_jwks_free(set);
            st = sm_error_set(&ferr, SM_ERR_NOMEM, "out of memory");
        } else {
            s->set = set;
            s->refs = 1;
            snapshot_unref_locked(c->current);
            c->current = s;
            c->fetched_at = now_s();
        }
    }
    if (st != SM_OK) {
        c->stats.fetch_failures++;
        memcpy(c->stats.last_error, ferr.message, sizeof(ferr.message));
        if (err != NULL)
            *err = ferr;
    }
    c->fetching = 0;
    pthread_cond_broadcast(&c->fetched);
}

static snapshot *acquire_locked(sm_jwks_cache *c)
{
    if (c->current != NULL)
        c->current->refs++;
    return c->current;
}

sm_status sm_jwks_cache_use(sm_jwks_cache *c, sm_jwks_use_fn fn, void *arg, sm_error *err)
{
    sm_error ferr;
    sm_error_clear(&ferr);
    pthread_mutex_lock(&c->lock);
    /* Without any set, retry a failed fetch after a second: requests fail
     * until then, but do not each wait for a dead key server. */
    if (c->current == NULL || now_s() - c->fetched_at >= c->lifetime)
        refresh_locked(c, c->current != NULL ? c->min_refresh : 1, &ferr);
    snapshot *s = acquire_locked(c);
    pthread_mutex_unlock(&c->lock);
    if (s == NULL) {
        if (err != NULL) {
            if (ferr.status != SM_OK)
                *err = ferr;
            else
                sm_error_set(err, SM_ERR_UNAVAILABLE,
                             "the key server's key set could not be fetched from %s yet", c->url);
        }
        return SM_ERR_UNAVAILABLE;
    }
    sm_status st = fn(s->set, arg, err);
    if (st == SM_ERR_KEY) {
        pthread_mutex_lock(&c->lock);
        snapshot_unref_locked(s);
        refresh_locked(c, c->min_refresh, &ferr);
        s = acquire_locked(c);
        pthread_mutex_unlock(&c->lock);
        st = fn(s->set, arg, err);
    }
    pthread_mutex_lock(&c->lock);
    snapshot_unref_locked(s);
    pthread_mutex_unlock(&c->lock);
    return st;
}

void sm_jwks_cache_get_stats(sm_jwks_cache *c, sm_jwks_cache_stats *out)
{
    pthread_mutex_lock(&c->lock);
    *out = c->stats;
    pthread_mutex_unlock(&c->lock);
}
