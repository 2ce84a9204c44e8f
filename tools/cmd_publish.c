#include "config.h"

/* secmedia publish: DESIGN flow 1 after `secmedia pack`. Uploads the
 * container (and its preview) to every media store, then registers the
 * work's metadata and its media key, as the JWE `pack --recipient` made to
 * the key server's encryption key, with the key server. The key itself is
 * never read here: only the JWE travels. */

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/evp.h>

#include "cli.h"
#include "sm_container.h"
#include "sm_file.h"
#include "sm_io.h"
#include "sm_validate.h"

#define PUBLISH_MAX_STORES 16
#define PUBLISH_PEM_MAX (64u * 1024u)
#define PUBLISH_TEXT_FILE_MAX (100u * 1000u)
#define PUBLISH_ANSWER_MAX (64u * 1024u)
/* Uploads of large containers may take a while; metadata calls do not. */
#define PUBLISH_UPLOAD_TIMEOUT_MS (6u * 3600u * 1000u)
#define PUBLISH_CALL_TIMEOUT_MS (60u * 1000u)

typedef struct publish_args {
    const char *container, *jwe, *preview, *preview_type;
    const char *key_server, *stores[PUBLISH_MAX_STORES];
    int n_stores;
    const char *cert, *key, *ca;
    const char *title, *artist, *album, *lyrics_file, *liner_notes_file, *credits, *artwork;
} publish_args;

/* A mapped input file. */
typedef struct mapped_file {
    const char *path;
    int fd;
    uint8_t *data;
    size_t len;
} mapped_file;

static void publish_help(void)
{
    printf("Usage: secmedia publish FILE.smc --key-server URL --media-store URL\n"
           "                        --cert PEM --key PEM [--ca PEM] --title TEXT [...]\n\n"
           "Uploads a container made by 'secmedia pack' to every media store, then\n"
           "registers the work (metadata and the media key JWE made with\n"
           "'pack --recipient KEYSERVER-ENCRYPTION-KEY') with the key server, using\n"
           "your owner client certificate. Safe to run again: stores answer\n"
           "'already stored' for the same bytes.\n\n"
           "  --key-server URL     https base URL of the key server\n"
           "  --media-store URL    https base URL of a media store (repeat per mirror)\n"
           "  --cert PEM, --key PEM  your client certificate and its key (0600)\n"
           "  --ca PEM             CA certificates to trust (default: the system's)\n"
           "  --jwe FILE           the media key JWE (default FILE.smc.jwe)\n"
           "  --preview FILE       an unencrypted preview to upload with it\n"
           "  --preview-type TYPE  its media type (default from the name: .ogg, .webm)\n"
           "  --title TEXT         required; --artist, --album, --credits TEXT,\n"
           "  --lyrics FILE, --liner-notes FILE (UTF-8 text), --artwork URL (https)\n");
}

static int parse_publish_args(int argc, char **argv, publish_args *a)
{
    static const struct option opts[] = {
        {"key-server", required_argument, NULL, 'K'}, {"media-store", required_argument, NULL, 'M'},
        {"cert", required_argument, NULL, 'c'},       {"key", required_argument, NULL, 'k'},
        {"ca", required_argument, NULL, 'a'},         {"jwe", required_argument, NULL, 'j'},
        {"preview", required_argument, NULL, 'p'},    {"preview-type", required_argument, NULL, 'P'},
        {"title", required_argument, NULL, 't'},      {"artist", required_argument, NULL, 'r'},
        {"album", required_argument, NULL, 'b'},      {"lyrics", required_argument, NULL, 'l'},
        {"liner-notes", required_argument, NULL, 'n'}, {"credits", required_argument, NULL, 'C'},
        {"artwork", required_argument, NULL, 'w'},    {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    int c;
    memset(a, 0, sizeof(*a));
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'K': a->key_server = optarg; break;
        case 'M':
            if (a->n_stores == PUBLISH_MAX_STORES)
                return cli_usage_error("publish", "at most %d --media-store", PUBLISH_MAX_STORES);
            a->stores[a->n_stores++] = optarg;
            break;
        case 'c': a->cert = optarg; break;
        case 'k': a->key = optarg; break;
        case 'a': a->ca = optarg; break;
        case 'j': a->jwe = optarg; break;
        case 'p': a->preview = optarg; break;
        case 'P': a->preview_type = optarg; break;
        case 't': a->title = optarg; break;
        case 'r': a->artist = optarg; break;
        case 'b': a->album = optarg; break;
        case 'l': a->lyrics_file = optarg; break;
        case 'n': a->liner_notes_file = optarg; break;
        case 'C': a->credits = optarg; break;
        case 'w': a->artwork = optarg; break;
        case 'h': publish_help(); return -1;
        default: return cli_usage_error("publish", "invalid option");
        }
    }
    if (optind + 1 != argc)
        return cli_usage_error("publish", "exactly one container file is expected");
    a->container = argv[optind];
    if (a->key_server == NULL || a->n_stores == 0)
        return cli_usage_error("publish", "--key-server and at least one --media-store are "
                                          "required");
    if (a->cert == NULL || a->key == NULL)
        return cli_usage_error("publish", "--cert and --key (your owner certificate) are "
                                          "required");
    if (a->title == NULL || a->title[0] == '\0')
        return cli_usage_error("publish", "--title is required");
    sm_error err = {0};
    if (sm_validate_url(a->key_server, 0, "--key-server", &err) != SM_OK)
        return cli_usage_error("publish", "%s", err.message);
    for (int i = 0; i < a->n_stores; i++)
        if (sm_validate_url(a->stores[i], 0, "--media-store", &err) != SM_OK)
            return cli_usage_error("publish", "%s", err.message);
    if (a->artwork != NULL && sm_validate_url(a->artwork, 0, "--artwork", &err) != SM_OK)
        return cli_usage_error("publish", "%s", err.message);
    return 0;
}

static int map_file(const char *path, mapped_file *m)
{
    struct stat st;
    memset(m, 0, sizeof(*m));
    m->path = path;
    m->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (m->fd < 0 || fstat(m->fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size == 0) {
        cli_error("publish", "cannot read %s: %s", path,
                  m->fd < 0 ? strerror(errno) : "not a non-empty regular file");
        if (m->fd >= 0)
            close(m->fd);
        m->fd = -1;
        return CLI_EXIT_INPUT;
    }
    m->len = (size_t)st.st_size;
    m->data = mmap(NULL, m->len, PROT_READ, MAP_PRIVATE, m->fd, 0);
    if (m->data == MAP_FAILED) {
        m->data = NULL;
        cli_error("publish", "cannot map %s: %s", path, strerror(errno));
        return CLI_EXIT_INPUT;
    }
    return CLI_EXIT_OK;
}

static void unmap_file(mapped_file *m)
{
    if (m->data != NULL)
        munmap(m->data, m->len);
    if (m->fd >= 0)
        close(m->fd);
    memset(m, 0, sizeof(*m));
    m->fd = -1;
}

/* "sha-256=:<base64>:" (RFC 9530 Repr-Digest). */
static int repr_digest(const mapped_file *m, char out[64])
{
    uint8_t md[32];
    unsigned int md_len = 0;
    char b64[48];
    if (EVP_Digest(m->data, m->len, md, &md_len, EVP_sha256(), NULL) != 1)
        return -1;
    EVP_EncodeBlock((unsigned char *)b64, md, (int)md_len);
    snprintf(out, 64, "sha-256=:%s:", b64);
    return 0;
}

/* Reads a small text file (JWE, lyrics) whole, NUL-terminated, into
 * *out: an exit code (3 unreadable or too large, 4 not text). */
static int read_text(const char *path, size_t max, char **out)
{
    sm_error err = {0};
    sm_status st = sm_file_read_text(path, max, out, NULL, &err);
    if (st == SM_OK)
        return CLI_EXIT_OK;
    cli_error("publish", "%s", err.message);
    return st == SM_ERR_FORMAT ? CLI_EXIT_FORMAT : CLI_EXIT_INPUT;
}

/* ---- HTTPS --------------------------------------------------------------- */

typedef struct http_answer {
    long status;
    char *body;
    size_t len;
    int too_large;
} http_answer;

typedef struct upload_source {
    const uint8_t *data;
    size_t len, pos;
} upload_source;

static size_t collect_answer(char *ptr, size_t size, size_t nmemb, void *arg)
{
    http_answer *a = arg;
    size_t n = size * nmemb;
    if (a->len + n > PUBLISH_ANSWER_MAX) {
        a->too_large = 1;
        return 0;
    }
    char *grown = realloc(a->body, a->len + n + 1);
    if (grown == NULL)
        return 0;
    memcpy(grown + a->len, ptr, n);
    a->body = grown;
    a->len += n;
    a->body[a->len] = '\0';
    return n;
}

static size_t feed_upload(char *buf, size_t size, size_t nmemb, void *arg)
{
    upload_source *u = arg;
    size_t n = size * nmemb, left = u->len - u->pos;
    if (n > left)
        n = left;
    memcpy(buf, u->data + u->pos, n);
    u->pos += n;
    return n;
}

/* One request with the owner's certificate; https only, no redirects, the
 * server checked against --ca (or the system store). */
static int https_call(const publish_args *a, const char *method, const char *url,
                      const char *content_type, const char *digest, const uint8_t *body,
                      size_t len, long timeout_ms, http_answer *out)
{
    char errbuf[CURL_ERROR_SIZE] = "";
    struct curl_slist *headers = NULL;
    char line[256];
    upload_source src = {body, len, 0};
    memset(out, 0, sizeof(*out));
    CURL *c = curl_easy_init();
    if (c == NULL) {
        cli_error("publish", "cannot set up an HTTPS client");
        return CLI_EXIT_FAILURE;
    }
    snprintf(line, sizeof(line), "Content-Type: %s", content_type);
    headers = curl_slist_append(headers, line);
    if (digest != NULL) {
        snprintf(line, sizeof(line), "Repr-Digest: %s", digest);
        headers = curl_slist_append(headers, line);
    }
    headers = curl_slist_append(headers, "Expect:");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "https");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
    if (a->ca != NULL)
        curl_easy_setopt(c, CURLOPT_CAINFO, a->ca);
    curl_easy_setopt(c, CURLOPT_SSLCERT, a->cert);
    curl_easy_setopt(c, CURLOPT_SSLKEY, a->key);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect_answer);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
    if (strcmp(method, "PUT") == 0) {
        curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(c, CURLOPT_READFUNCTION, feed_upload);
        curl_easy_setopt(c, CURLOPT_READDATA, &src);
        curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, (curl_off_t)len);
    } else {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, (const char *)body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    }
    CURLcode rc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &out->status);
    curl_slist_free_all(headers);
    curl_easy_cleanup(c);
    if (rc != CURLE_OK) {
        cli_error("publish", "%s %s: %s", method, url,
                  errbuf[0] ? errbuf : curl_easy_strerror(rc));
        free(out->body);
        out->body = NULL;
        return rc == CURLE_SSL_CERTPROBLEM || rc == CURLE_SSL_CACERT_BADFILE ? CLI_EXIT_KEY
                                                                           : CLI_EXIT_EXTERNAL;
    }
    return CLI_EXIT_OK;
}

/* Reports a server's refusal with the problem detail it sent. */
static int server_refused(const char *url, const http_answer *res)
{
    json_error_t jerr;
    json_t *doc = res->body != NULL ? json_loadb(res->body, res->len, 0, &jerr) : NULL;
    const char *detail = doc != NULL ? json_string_value(json_object_get(doc, "detail")) : NULL;
    cli_error("publish", "%s answered %ld%s%.300s", url, res->status, detail != NULL ? ": " : "",
              detail != NULL ? detail : "");
    json_decref(doc);
    return CLI_EXIT_EXTERNAL;
}

static int upload(const publish_args *a, const char *store, const char *work_id,
                  const char *suffix, const char *content_type, const mapped_file *m)
{
    char url[4096], digest[64];
    http_answer res;
    if (repr_digest(m, digest) != 0) {
        cli_error("publish", "cannot hash %s", m->path);
        return CLI_EXIT_FAILURE;
    }
    if ((size_t)snprintf(url, sizeof(url), "%s/works/%s%s", store, work_id, suffix) >=
        sizeof(url))
        return cli_usage_error("publish", "media store URL too long");
    int rc = https_call(a, "PUT", url, content_type, digest, m->data, m->len,
                        PUBLISH_UPLOAD_TIMEOUT_MS, &res);
    if (rc != CLI_EXIT_OK)
        return rc;
    if (res.status == 201 || res.status == 200)
        printf("%s: %s\n", url, res.status == 201 ? "stored" : "already stored");
    else
        rc = server_refused(url, &res);
    free(res.body);
    return rc;
}

/* Adds a text member from a file (lyrics, notes) when given. */
static int add_text_file(json_t *body, const char *name, const char *path)
{
    if (path == NULL)
        return CLI_EXIT_OK;
    char *text;
    int rc = read_text(path, PUBLISH_TEXT_FILE_MAX, &text);
    if (rc != CLI_EXIT_OK)
        return rc;
    json_t *v = json_string(text);
    free(text);
    if (v == NULL) {
        cli_error("publish", "%s is not UTF-8 text", path);
        return CLI_EXIT_FORMAT;
    }
    json_object_set_new(body, name, v);
    return CLI_EXIT_OK;
}

/* The key server's registration body, as compact JSON in *out: built
 * (lyrics and notes read, text checked) before anything is sent. */
static int work_body(const publish_args *a, const sm_container_meta *meta, const char *jwe,
                     char **out)
{
    *out = NULL;
    json_t *body = json_pack("{s:s,s:I,s:s,s:s,s:s}", "work_id", meta->work_id, "key_version",
                             (json_int_t)meta->key_version, "media_key_jwe", jwe, "title",
                             a->title, "media_type", meta->media_type);
    if (body == NULL) {
        cli_error("publish", "--title must be UTF-8 text");
        return CLI_EXIT_USAGE;
    }
    if (a->artist != NULL)
        json_object_set_new(body, "artist", json_string(a->artist));
    if (a->album != NULL)
        json_object_set_new(body, "album", json_string(a->album));
    if (a->credits != NULL)
        json_object_set_new(body, "credits", json_string(a->credits));
    if (a->artwork != NULL)
        json_object_set_new(body, "artwork_ref", json_string(a->artwork));
    int rc = add_text_file(body, "lyrics", a->lyrics_file);
    if (rc == CLI_EXIT_OK)
        rc = add_text_file(body, "liner_notes", a->liner_notes_file);
    /* json_string() of text that is not UTF-8 is NULL, and setting NULL
     * leaves the member out: count them to notice. */
    size_t expected = 5 + (a->artist != NULL) + (a->album != NULL) + (a->credits != NULL) +
                      (a->artwork != NULL) + (a->lyrics_file != NULL) +
                      (a->liner_notes_file != NULL);
    if (rc == CLI_EXIT_OK && json_object_size(body) != expected) {
        cli_error("publish", "--artist, --album, --credits and --artwork must be UTF-8 text");
        rc = CLI_EXIT_USAGE;
    }
    if (rc == CLI_EXIT_OK && (*out = json_dumps(body, JSON_COMPACT)) == NULL) {
        cli_error("publish", "out of memory");
        rc = CLI_EXIT_FAILURE;
    }
    json_decref(body);
    return rc;
}

static int register_work(const publish_args *a, const char *work_id, const char *body)
{
    char url[4096];
    http_answer res;
    snprintf(url, sizeof(url), "%s/v1/works", a->key_server);
    int rc = https_call(a, "POST", url, "application/json", NULL, (const uint8_t *)body,
                        strlen(body), PUBLISH_CALL_TIMEOUT_MS, &res);
    if (rc != CLI_EXIT_OK)
        return rc;
    if (res.status == 201)
        printf("%s: work %s registered\n", url, work_id);
    else
        rc = server_refused(url, &res);
    free(res.body);
    return rc;
}

static const char *preview_type_for(const char *path)
{
    const char *dot = strrchr(path, '.');
    if (dot != NULL && strcmp(dot, ".webm") == 0)
        return "video/webm";
    if (dot != NULL && (strcmp(dot, ".ogg") == 0 || strcmp(dot, ".opus") == 0))
        return "audio/ogg";
    return cli_media_type_for(path);
}

int cmd_publish(int argc, char **argv)
{
    publish_args a;
    char jwe_default[4096];
    sm_error err = {0};
    mapped_file container = {NULL, -1, NULL, 0}, preview = {NULL, -1, NULL, 0};
    sm_container_header *hdr = NULL;
    sm_mem_io src;
    char *jwe = NULL, *body = NULL;
    int rc = parse_publish_args(argc, argv, &a);
    if (rc != 0)
        return rc < 0 ? CLI_EXIT_OK : rc;
    if (a.jwe == NULL) {
        snprintf(jwe_default, sizeof(jwe_default), "%s.jwe", a.container);
        a.jwe = jwe_default;
    }
    if (a.preview != NULL && a.preview_type == NULL &&
        (a.preview_type = preview_type_for(a.preview)) == NULL)
        return cli_usage_error("publish", "cannot tell the preview's media type from its name; "
                                          "give --preview-type");
    /* Everything local is checked before the first byte goes out. */
    if ((rc = map_file(a.container, &container)) != CLI_EXIT_OK)
        goto done;
    memset(&src, 0, sizeof(src));
    src.data = container.data;
    src.len = src.cap = container.len;
    if (sm_container_header_read_at(sm_mem_read_at, &src, &hdr, &err) != SM_OK) {
        cli_error("publish", "%s: %s", a.container, err.message);
        rc = cli_exit_code(err.status, CLI_EXIT_INPUT);
        goto done;
    }
    if (sm_container_file_size(hdr->len, hdr->meta.plaintext_length) != container.len) {
        cli_error("publish", "%s: the file size does not match its header (truncated or "
                             "trailing data); pack it again",
                  a.container);
        rc = CLI_EXIT_FORMAT;
        goto done;
    }
    if ((rc = read_text(a.jwe, 16384, &jwe)) != CLI_EXIT_OK)
        goto done;
    jwe[strcspn(jwe, "\r\n")] = '\0';
    if (a.preview != NULL && (rc = map_file(a.preview, &preview)) != CLI_EXIT_OK)
        goto done;
    if ((rc = work_body(&a, &hdr->meta, jwe, &body)) != CLI_EXIT_OK)
        goto done;
    if (access(a.key, R_OK) != 0 || access(a.cert, R_OK) != 0) {
        cli_error("publish", "cannot read --cert %s or --key %s", a.cert, a.key);
        rc = CLI_EXIT_KEY;
        goto done;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        cli_error("publish", "cannot initialise libcurl");
        rc = CLI_EXIT_FAILURE;
        goto done;
    }
    /* Bytes first, key last: a key server never holds a key for a work no
     * store can deliver. */
    for (int i = 0; i < a.n_stores && rc == CLI_EXIT_OK; i++) {
        rc = upload(&a, a.stores[i], hdr->meta.work_id, "", "application/octet-stream",
                    &container);
        if (rc == CLI_EXIT_OK && a.preview != NULL)
            rc = upload(&a, a.stores[i], hdr->meta.work_id, "/preview", a.preview_type,
                        &preview);
    }
    if (rc == CLI_EXIT_OK)
        rc = register_work(&a, hdr->meta.work_id, body);
    curl_global_cleanup();
done:
    free(body);
    free(jwe);
    sm_container_header_free(hdr);
    unmap_file(&container);
    unmap_file(&preview);
    return rc;
}
