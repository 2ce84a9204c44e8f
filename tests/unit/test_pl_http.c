/* The player's libcurl transport (common/sm_pl_http.c) against a tiny
 * HTTP/1.1 server on loopback in a thread: Range answers into the caller's
 * buffer, keep-alive on one handle, a server ignoring Range, problem
 * answers, and an interrupted request. Plain http (allow_http), so no
 * certificates are needed; HTTPS is exercised by the hand smoke tests. */
#include "config.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <check.h>

#include "sm_pl_http.h"
#include "sm_test.h"

#define BODY_LEN 100000

static uint8_t body[BODY_LEN];
static int listen_fd = -1;
static int port;
static atomic_int connections;
static atomic_int stop_server;
static char last_headers[4096];
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static void send_all(int fd, const void *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w <= 0)
            return;
        p = (const char *)p + w;
        n -= (size_t)w;
    }
}

/* Serves requests on one connection until the client closes it. */
static void *serve_connection(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char req[8192];
    size_t have = 0;
    for (;;) {
        char *end = NULL;
        while ((end = strstr(req, "\r\n\r\n")) == NULL || have == 0) {
            if (have >= sizeof(req) - 1)
                goto done;
            ssize_t r = recv(fd, req + have, sizeof(req) - 1 - have, 0);
            if (r <= 0)
                goto done;
            have += (size_t)r;
            req[have] = '\0';
        }
        size_t head_len = (size_t)(end - req) + 4;
        pthread_mutex_lock(&lock);
        snprintf(last_headers, sizeof(last_headers), "%.*s", (int)head_len, req);
        pthread_mutex_unlock(&lock);
        char path[256] = "";
        const char *sp = strchr(req, ' ');
        if (sp != NULL)
            snprintf(path, sizeof(path), "%.*s", (int)strcspn(sp + 1, " "), sp + 1);
        size_t content_length = 0;
        const char *cl = strcasestr(req, "\r\nContent-Length:");
        if (cl != NULL && cl < end)
            content_length = strtoul(cl + 17, NULL, 10);
        /* Drop the request (and any body) from the buffer. */
        size_t consumed = head_len + content_length;
        while (have < consumed) {
            ssize_t r = recv(fd, req + have, sizeof(req) - 1 - have, 0);
            if (r <= 0)
                goto done;
            have += (size_t)r;
        }
        memmove(req, req + consumed, have - consumed);
        have -= consumed;
        req[have] = '\0';
        char head[512];
        if (strcmp(path, "/range") == 0) {
            const char *r = strcasestr(last_headers, "\r\nRange: bytes=");
            unsigned long a = 0, b = 0;
            if (r != NULL) {
                char *e = NULL;
                a = strtoul(r + 15, &e, 10);
                b = strtoul(e + 1, NULL, 10);
            }
            if (b >= BODY_LEN)
                b = BODY_LEN - 1;
            int n = snprintf(head, sizeof(head),
                             "HTTP/1.1 206 Partial Content\r\nContent-Type: "
                             "application/vnd.secmedia.container\r\nContent-Range: bytes "
                             "%lu-%lu/%d\r\nContent-Length: %lu\r\n\r\n",
                             a, b, BODY_LEN, b - a + 1);
            send_all(fd, head, (size_t)n);
            send_all(fd, body + a, b - a + 1);
        } else if (strcmp(path, "/full") == 0) {
            int n = snprintf(head, sizeof(head),
                             "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", BODY_LEN);
            send_all(fd, head, (size_t)n);
            send_all(fd, body, BODY_LEN);
        } else if (strcmp(path, "/problem") == 0) {
            static const char doc[] = "{\"type\":\"https://secmedia.example/problems/not-paid\","
                                      "\"detail\":\"pay first\"}";
            int n = snprintf(head, sizeof(head),
                             "HTTP/1.1 402 Payment Required\r\nContent-Type: "
                             "application/problem+json; charset=utf-8\r\nContent-Length: "
                             "%zu\r\n\r\n",
                             sizeof(doc) - 1);
            send_all(fd, head, (size_t)n);
            send_all(fd, doc, sizeof(doc) - 1);
        } else if (strcmp(path, "/hang") == 0) {
            for (int i = 0; i < 100 && !atomic_load(&stop_server); i++)
                usleep(50000);
            goto done;
        } else {
            static const char nf[] = "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n";
            send_all(fd, nf, sizeof(nf) - 1);
        }
    }
done:
    close(fd);
    return NULL;
}

static void *accept_loop(void *arg)
{
    (void)arg;
    for (;;) {
        int fd = accept(listen_fd, NULL, NULL);
        if (fd < 0)
            return NULL;
        if (atomic_load(&stop_server)) {
            close(fd);
            return NULL;
        }
        atomic_fetch_add(&connections, 1);
        pthread_t t;
        pthread_create(&t, NULL, serve_connection, (void *)(intptr_t)fd);
        pthread_detach(t);
    }
}

static pthread_t acceptor;

static void start_server(void)
{
    smt_fill_pattern(body, sizeof(body), 7);
    atomic_store(&stop_server, 0);
    atomic_store(&connections, 0);
    listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(listen_fd, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ck_assert_int_eq(bind(listen_fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    socklen_t sl = sizeof(sa);
    ck_assert_int_eq(getsockname(listen_fd, (struct sockaddr *)&sa, &sl), 0);
    port = ntohs(sa.sin_port);
    ck_assert_int_eq(listen(listen_fd, 16), 0);
    pthread_create(&acceptor, NULL, accept_loop, NULL);
}

static void stop(void)
{
    atomic_store(&stop_server, 1);
    shutdown(listen_fd, SHUT_RDWR);
    close(listen_fd);
    pthread_join(acceptor, NULL);
}

static void url(char *buf, size_t size, const char *path)
{
    snprintf(buf, size, "http://127.0.0.1:%d%s", port, path);
}

START_TEST(ranges_keep_alive_and_headers)
{
    start_server();
    sm_pl_http_config cfg = {.allow_http = 1, .timeout_s = 10};
    sm_pl_http_curl *c = NULL;
    ck_assert_int_eq(sm_pl_http_curl_new(&cfg, &c, NULL), SM_OK);
    char u[128];
    url(u, sizeof(u), "/range");
    uint8_t buf[5000];
    for (int i = 0; i < 3; i++) {
        char range[64];
        snprintf(range, sizeof(range), "Range: bytes=%d-%d", i * 5000, i * 5000 + 4999);
        sm_pl_http_request rq = {.method = "GET",
                                 .url = u,
                                 .headers = {"Authorization: Bearer tok.en.x", range, NULL},
                                 .body_buf = buf,
                                 .body_cap = sizeof(buf),
                                 .expect_status = 206};
        sm_pl_http_response rs;
        sm_error err = {SM_OK, ""};
        ck_assert_msg(sm_pl_http_curl_perform(c, &rq, &rs, &err) == SM_OK, "%s", err.message);
        ck_assert_int_eq(rs.status, 206);
        ck_assert_uint_eq(rs.len, 5000);
        ck_assert_ptr_null(rs.body);
        ck_assert_mem_eq(buf, body + i * 5000, 5000);
        ck_assert_str_eq(rs.content_type, "application/vnd.secmedia.container");
        char expect[64];
        snprintf(expect, sizeof(expect), "bytes %d-%d/%d", i * 5000, i * 5000 + 4999, BODY_LEN);
        ck_assert_str_eq(rs.content_range, expect);
        sm_pl_http_response_clear(&rs);
    }
    ck_assert_int_eq(atomic_load(&connections), 1); /* keep-alive on one handle */
    pthread_mutex_lock(&lock);
    ck_assert_ptr_nonnull(strstr(last_headers, "\r\nAuthorization: Bearer tok.en.x\r\n"));
    ck_assert_ptr_null(strstr(last_headers, "Expect:"));
    pthread_mutex_unlock(&lock);

    /* A POST with a body and a problem answer (type normalised). */
    url(u, sizeof(u), "/problem");
    sm_pl_http_request post = {.method = "POST",
                               .url = u,
                               .headers = {"Content-Type: application/json", "DPoP: a.b.c", NULL},
                               .body = "{\"voucher\":\"v\"}",
                               .body_len = 15,
                               .max_body = 4096};
    sm_pl_http_response rs;
    ck_assert_int_eq(sm_pl_http_curl_perform(c, &post, &rs, NULL), SM_OK);
    ck_assert_int_eq(rs.status, 402);
    ck_assert_str_eq(rs.content_type, "application/problem+json");
    ck_assert_ptr_nonnull(strstr((const char *)rs.body, "not-paid"));
    sm_pl_http_response_clear(&rs);
    pthread_mutex_lock(&lock);
    ck_assert_ptr_nonnull(strstr(last_headers, "\r\nDPoP: a.b.c\r\n"));
    pthread_mutex_unlock(&lock);

    /* A server ignoring Range: the answer never overflows the buffer. */
    url(u, sizeof(u), "/full");
    uint8_t small[100];
    sm_pl_http_request rq = {.method = "GET",
                             .url = u,
                             .headers = {"Range: bytes=0-99", NULL},
                             .body_buf = small,
                             .body_cap = sizeof(small),
                             .expect_status = 206};
    sm_error err = {SM_OK, ""};
    ck_assert_msg(sm_pl_http_curl_perform(c, &rq, &rs, &err) == SM_OK, "%s", err.message);
    ck_assert_int_eq(rs.status, 200);
    ck_assert_uint_le(rs.len, SM_PL_HTTP_ERROR_BODY_MAX);
    sm_pl_http_response_clear(&rs);

    /* Only http(s) URLs, and plain http only when allowed. */
    sm_pl_http_curl_free(c);
    cfg.allow_http = 0;
    ck_assert_int_eq(sm_pl_http_curl_new(&cfg, &c, NULL), SM_OK);
    ck_assert_int_eq(sm_pl_http_curl_perform(c, &rq, &rs, &err), SM_ERR_ARG);
    rq.url = "file:///etc/passwd";
    ck_assert_int_eq(sm_pl_http_curl_perform(c, &rq, &rs, &err), SM_ERR_ARG);
    sm_pl_http_curl_free(c);
    stop();
}
END_TEST

static struct timespec started;

static int interrupt_after_300ms(void *ctx)
{
    (void)ctx;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (now.tv_sec - started.tv_sec) * 1000 + (now.tv_nsec - started.tv_nsec) / 1000000 > 300;
}

START_TEST(hanging_request_interrupted)
{
    start_server();
    sm_pl_http_config cfg = {.allow_http = 1, .timeout_s = 30,
                             .interrupted = interrupt_after_300ms};
    sm_pl_http_curl *c = NULL;
    ck_assert_int_eq(sm_pl_http_curl_new(&cfg, &c, NULL), SM_OK);
    char u[128];
    url(u, sizeof(u), "/hang");
    sm_pl_http_request rq = {.method = "POST", .url = u, .headers = {NULL}, .body = "{}",
                             .body_len = 2, .max_body = 4096};
    sm_pl_http_response rs;
    sm_error err = {SM_OK, ""};
    clock_gettime(CLOCK_MONOTONIC, &started);
    ck_assert_int_eq(sm_pl_http_curl_perform(c, &rq, &rs, &err), SM_ERR_STATE);
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    ck_assert_int_lt(now.tv_sec - started.tv_sec, 3);
    ck_assert_msg(strncmp(err.message, "Interrupted", 11) == 0, "%s", err.message);
    sm_pl_http_curl_free(c);

    /* A closed port: a network failure naming the URL. */
    cfg.interrupted = NULL;
    ck_assert_int_eq(sm_pl_http_curl_new(&cfg, &c, NULL), SM_OK);
    rq.url = "http://127.0.0.1:1/v1/license?x=secret";
    ck_assert_int_eq(sm_pl_http_curl_perform(c, &rq, &rs, &err), SM_ERR_UNAVAILABLE);
    ck_assert_msg(strncmp(err.message, "Network failure: cannot reach http://127.0.0.1:1/v1/license",
                          58) == 0, "%s", err.message);
    ck_assert_ptr_null(strstr(err.message, "secret"));
    sm_pl_http_curl_free(c);
    stop();
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("pl_http");
    TCase *tc = tcase_create("curl");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, ranges_keep_alive_and_headers);
    tcase_add_test(tc, hanging_request_interrupted);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
