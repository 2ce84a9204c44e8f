#include "config.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <check.h>
#include <jansson.h>

#include "sm_steer.h"
#include "sm_test.h"

#define VOUCHER                                                                          \
    "eyJhbGciOiJFUzI1NiIsImtpZCI6ImtzLTIwMjYtMDEiLCJ0eXAiOiJzZWNtZWRpYS12b3VjaGVyK2p3dCJ9" \
    ".eyJ0eG4iOiJ0eC0wMDAxIiwid29yayI6IndvcmstNDIiLCJqa3QiOiJhYmMifQ"                     \
    ".MEUCIQDx7m4Vb2XyJ3n7e2wYk2yD1mR2yq0yG2o2E9cJ5iQ5bgIgQ0Fb"

static const sm_steer_options strict_opts = {0};
static const sm_steer_options insecure_opts = {1};

/* A JSON object with every field set to a valid value. */
static json_t *full_object(void)
{
    json_t *o = json_pack(
        "{s:i, s:s, s:s, s:s, s:s, s:s, s:s, s:[s,s], s:s, s:s, s:s}", "version", 1, "work_id",
        "work-42", "title", "Caf\xc3\xa9 \xe2\x80\x93 \xe6\x9d\xb1\xe4\xba\xac", "artist",
        "The Examples", "album", "Test Pressings", "media_type", "audio/ogg", "license_url",
        "https://keys.example.org/v1/license", "media_urls", "https://m1.example.org/w/work-42.smc",
        "https://m2.example.net/work-42.smc", "preview_url",
        "https://m1.example.org/p/work-42.ogg", "transaction_id", "tx-0001_A", "voucher", VOUCHER);
    ck_assert_ptr_nonnull(o);
    return o;
}

/* magic + compact JSON (+ extra bytes); malloc'ed. */
static uint8_t *file_bytes(json_t *o, const char *extra, size_t *len)
{
    char *json = json_dumps(o, JSON_COMPACT);
    ck_assert_ptr_nonnull(json);
    size_t jl = strlen(json), el = extra != NULL ? strlen(extra) : 0;
    uint8_t *buf = malloc(SM_STEER_MAGIC_LEN + jl + el + 1);
    ck_assert_ptr_nonnull(buf);
    memcpy(buf, SM_STEER_MAGIC, SM_STEER_MAGIC_LEN);
    memcpy(buf + SM_STEER_MAGIC_LEN, json, jl);
    if (el > 0)
        memcpy(buf + SM_STEER_MAGIC_LEN + jl, extra, el);
    free(json);
    *len = SM_STEER_MAGIC_LEN + jl + el;
    return buf;
}

static void assert_clean_message(const sm_error *err)
{
    for (const char *p = err->message; *p != '\0'; p++)
        ck_assert_msg((unsigned char)*p >= 0x20 && *p != 0x7f, "control byte in message: %s",
                      err->message);
}

/* Parses buf and expects status `want` with `needle` in the message. */
static void expect_bytes(const uint8_t *buf, size_t len, const sm_steer_options *opts,
                         sm_status want, const char *needle)
{
    sm_steer *s = (sm_steer *)0x1;
    sm_error err;
    sm_error_clear(&err);
    sm_status st = sm_steer_parse(buf, len, opts, &s, &err);
    ck_assert_msg(st == want, "expected %s, got %s: %s", sm_status_name(want), sm_status_name(st),
                  err.message);
    if (want == SM_OK) {
        ck_assert_ptr_nonnull(s);
        sm_steer_free(s);
        return;
    }
    ck_assert_ptr_null(s);
    ck_assert_int_eq(err.status, want);
    ck_assert_msg(strncmp(err.message, "steering file: ", 15) == 0, "message prefix: %s",
                  err.message);
    ck_assert_msg(needle == NULL || strstr(err.message, needle) != NULL,
                  "message \"%s\" should mention %s", err.message, needle);
    assert_clean_message(&err);
}

static void expect_text(const char *text, sm_status want, const char *needle)
{
    expect_bytes((const uint8_t *)text, strlen(text), &strict_opts, want, needle);
}

/* Consumes o. */
static void expect_object(json_t *o, const sm_steer_options *opts, sm_status want,
                          const char *needle)
{
    size_t len;
    uint8_t *buf = file_bytes(o, "\n", &len);
    json_decref(o);
    expect_bytes(buf, len, opts, want, needle);
    free(buf);
}

/* `"name"` as it appears in messages. */
static const char *quoted(const char *name)
{
    static char buf[128];
    snprintf(buf, sizeof(buf), "\"%s\"", name);
    return buf;
}

static sm_steer *parse_ok(const uint8_t *buf, size_t len, const sm_steer_options *opts)
{
    sm_steer *s = NULL;
    sm_error err;
    sm_error_clear(&err);
    sm_status st = sm_steer_parse(buf, len, opts, &s, &err);
    ck_assert_msg(st == SM_OK, "parse failed: %s", err.message);
    ck_assert_ptr_nonnull(s);
    return s;
}

static void assert_same(const sm_steer *a, const sm_steer *b)
{
    ck_assert_int_eq(a->version, b->version);
    ck_assert_str_eq(a->work_id, b->work_id);
    ck_assert_str_eq(a->title, b->title);
    ck_assert_pstr_eq(a->artist, b->artist);
    ck_assert_pstr_eq(a->album, b->album);
    ck_assert_str_eq(a->media_type, b->media_type);
    ck_assert_str_eq(a->license_url, b->license_url);
    ck_assert_uint_eq(a->media_url_count, b->media_url_count);
    for (size_t i = 0; i < a->media_url_count; i++)
        ck_assert_str_eq(a->media_urls[i], b->media_urls[i]);
    ck_assert_str_eq(a->voucher, b->voucher);
    ck_assert_pstr_eq(a->preview_url, b->preview_url);
    ck_assert_pstr_eq(a->transaction_id, b->transaction_id);
}

/* ---- round trips ---- */

START_TEST(test_round_trip_full)
{
    size_t len, out_len, out2_len;
    char *out = NULL, *out2 = NULL;
    sm_error err;
    json_t *o = full_object();
    uint8_t *buf = file_bytes(o, "\n", &len);
    json_decref(o);
    sm_steer *s = parse_ok(buf, len, NULL);

    ck_assert_int_eq(s->version, 1);
    ck_assert_str_eq(s->work_id, "work-42");
    ck_assert_str_eq(s->title, "Caf\xc3\xa9 \xe2\x80\x93 \xe6\x9d\xb1\xe4\xba\xac");
    ck_assert_str_eq(s->artist, "The Examples");
    ck_assert_str_eq(s->album, "Test Pressings");
    ck_assert_str_eq(s->media_type, "audio/ogg");
    ck_assert_str_eq(s->license_url, "https://keys.example.org/v1/license");
    ck_assert_uint_eq(s->media_url_count, 2);
    ck_assert_str_eq(s->media_urls[1], "https://m2.example.net/work-42.smc");
    ck_assert_str_eq(s->preview_url, "https://m1.example.org/p/work-42.ogg");
    ck_assert_str_eq(s->transaction_id, "tx-0001_A");
    ck_assert_str_eq(s->voucher, VOUCHER);

    ck_assert_int_eq(sm_steer_serialize(s, NULL, &out, &out_len, &err), SM_OK);
    ck_assert_uint_eq(strlen(out), out_len);
    ck_assert(sm_steer_probe((const uint8_t *)out, out_len));
    ck_assert_str_eq(out + out_len - 2, "}\n");
    ck_assert_ptr_null(memchr(out, '\r', out_len));

    sm_steer *s2 = parse_ok((const uint8_t *)out, out_len, NULL);
    assert_same(s, s2);
    /* The written form is canonical: writing the re-read data gives the same bytes. */
    ck_assert_int_eq(sm_steer_serialize(s2, NULL, &out2, &out2_len, &err), SM_OK);
    ck_assert_uint_eq(out_len, out2_len);
    ck_assert_mem_eq(out, out2, out_len);

    ck_assert_int_eq(sm_steer_validate(s, NULL, &err), SM_OK);
    free(out);
    free(out2);
    free(buf);
    sm_steer_free(s);
    sm_steer_free(s2);
}
END_TEST

START_TEST(test_round_trip_minimal)
{
    static char *urls[] = {"https://m.example.org/x.smc"};
    sm_steer in = {
        .version = 1,
        .work_id = "x",
        .title = "T",
        .media_type = "video/mp4",
        .license_url = "https://k.example.org/l",
        .media_urls = urls,
        .media_url_count = 1,
        .voucher = "ab.cd.ef",
    };
    char *out = NULL;
    size_t len;
    sm_error err;
    ck_assert_int_eq(sm_steer_serialize(&in, NULL, &out, &len, &err), SM_OK);
    sm_steer *s = parse_ok((const uint8_t *)out, len, NULL);
    assert_same(&in, s);
    ck_assert_ptr_null(s->artist);
    ck_assert_ptr_null(s->album);
    ck_assert_ptr_null(s->preview_url);
    ck_assert_ptr_null(s->transaction_id);
    ck_assert_ptr_null(strstr(out, "artist"));
    sm_steer_free(s);
    free(out);
}
END_TEST

static int count_dir_entries(const char *dir)
{
    int n = 0;
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

START_TEST(test_save_and_load_file)
{
    char dir[256], path[300], missing_dir_path[320];
    sm_error err;
    json_t *o = full_object();
    size_t len;
    uint8_t *buf = file_bytes(o, "\n", &len);
    json_decref(o);
    sm_steer *s = parse_ok(buf, len, NULL);
    snprintf(dir, sizeof(dir), "%s", smt_tmpdir());
    snprintf(path, sizeof(path), "%s/work-42.steer", dir);

    /* Create, then replace an existing file; no temporary file is left. */
    smt_write_file(path, (const uint8_t *)"old contents", 12);
    ck_assert_int_eq(sm_steer_save_file(s, NULL, path, &err), SM_OK);
    ck_assert_int_eq(count_dir_entries(dir), 1);
    sm_steer *back = NULL;
    ck_assert_int_eq(sm_steer_load_file(path, NULL, &back, &err), SM_OK);
    assert_same(s, back);
    sm_steer_free(back);

    /* Invalid data: refused before anything is written, old file intact. */
    free(s->title);
    s->title = strdup("bad\x01title");
    ck_assert_int_eq(sm_steer_save_file(s, NULL, path, &err), SM_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(err.message, "\"title\""));
    ck_assert_int_eq(count_dir_entries(dir), 1);
    ck_assert_int_eq(sm_steer_load_file(path, NULL, &back, &err), SM_OK);
    sm_steer_free(back);

    /* Unwritable location: an I/O error naming the path. */
    free(s->title);
    s->title = strdup("fine");
    snprintf(missing_dir_path, sizeof(missing_dir_path), "%s/no-such-dir/x.steer", dir);
    ck_assert_int_eq(sm_steer_save_file(s, NULL, missing_dir_path, &err), SM_ERR_IO);
    ck_assert_ptr_nonnull(strstr(err.message, "no-such-dir"));

    /* Loading a missing file. */
    back = (sm_steer *)0x1;
    ck_assert_int_eq(sm_steer_load_file(missing_dir_path, NULL, &back, &err), SM_ERR_IO);
    ck_assert_ptr_null(back);
    ck_assert_ptr_nonnull(strstr(err.message, "no-such-dir/x.steer"));

    /* Parse errors from a file name the file and the field. */
    smt_write_file(path, (const uint8_t *)SM_STEER_MAGIC "{\"version\":1,\"x\":1}\n", 37);
    ck_assert_int_eq(sm_steer_load_file(path, NULL, &back, &err), SM_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(err.message, "work-42.steer"));
    ck_assert_ptr_nonnull(strstr(err.message, "\"x\""));

    /* A hostile file name does not put control characters in the message. */
    char odd[340];
    snprintf(odd, sizeof(odd), "%s/evil\n\x1b[2Jname.steer", dir);
    ck_assert_int_eq(sm_steer_load_file(odd, NULL, &back, &err), SM_ERR_IO);
    assert_clean_message(&err);
    smt_write_file(odd, (const uint8_t *)"x", 1);
    ck_assert_int_eq(sm_steer_load_file(odd, NULL, &back, &err), SM_ERR_FORMAT);
    assert_clean_message(&err);

    /* A directory is not a steering file. */
    ck_assert_int_eq(sm_steer_load_file(dir, NULL, &back, &err), SM_ERR_IO);

    smt_rm_rf(dir);
    sm_steer_free(s);
    free(buf);
}
END_TEST

/* ---- size limit ---- */

/* A valid file padded with trailing LFs to exactly `size` bytes. */
static uint8_t *padded_file(size_t size)
{
    json_t *o = full_object();
    size_t len;
    uint8_t *buf = file_bytes(o, NULL, &len);
    json_decref(o);
    ck_assert_uint_le(len, size);
    buf = realloc(buf, size);
    ck_assert_ptr_nonnull(buf);
    memset(buf + len, '\n', size - len);
    return buf;
}

START_TEST(test_size_limit)
{
    char dir[256], path[300];
    sm_error err;
    sm_steer *s = NULL;
    uint8_t *ok = padded_file(SM_STEER_MAX_SIZE);
    uint8_t *big = padded_file(SM_STEER_MAX_SIZE + 1);
    expect_bytes(ok, SM_STEER_MAX_SIZE, NULL, SM_OK, NULL);
    expect_bytes(big, SM_STEER_MAX_SIZE + 1, NULL, SM_ERR_TOO_LARGE, "65536");

    snprintf(dir, sizeof(dir), "%s", smt_tmpdir());
    snprintf(path, sizeof(path), "%s/a.steer", dir);
    smt_write_file(path, ok, SM_STEER_MAX_SIZE);
    ck_assert_int_eq(sm_steer_load_file(path, NULL, &s, &err), SM_OK);
    sm_steer_free(s);
    smt_write_file(path, big, SM_STEER_MAX_SIZE + 1);
    ck_assert_int_eq(sm_steer_load_file(path, NULL, &s, &err), SM_ERR_TOO_LARGE);
    ck_assert_ptr_null(s);
    ck_assert_ptr_nonnull(strstr(err.message, "65536"));

    /* A much larger file is refused the same way (only 64 KiB + 1 is read). */
    uint8_t *huge = calloc(1, 4 * SM_STEER_MAX_SIZE);
    ck_assert_ptr_nonnull(huge);
    memcpy(huge, SM_STEER_MAGIC, SM_STEER_MAGIC_LEN);
    smt_write_file(path, huge, 4 * SM_STEER_MAX_SIZE);
    ck_assert_int_eq(sm_steer_load_file(path, NULL, &s, &err), SM_ERR_TOO_LARGE);

    /* The writer refuses to produce an oversize file too. */
    json_t *o = full_object();
    size_t len;
    uint8_t *buf = file_bytes(o, NULL, &len);
    json_decref(o);
    s = parse_ok(buf, len, NULL);
    char *urls[SM_STEER_MEDIA_URLS_MAX];
    char *old_urls = (char *)s->media_urls;
    size_t old_count = s->media_url_count;
    for (int i = 0; i < SM_STEER_MEDIA_URLS_MAX; i++) {
        urls[i] = malloc(2049);
        ck_assert_ptr_nonnull(urls[i]);
        int n = snprintf(urls[i], 2049, "https://m%d.example.org/", i);
        memset(urls[i] + n, 'a', 2048 - (size_t)n);
        urls[i][2048] = '\0';
    }
    s->media_urls = urls;
    s->media_url_count = SM_STEER_MEDIA_URLS_MAX;
    free(s->voucher);
    s->voucher = malloc(SM_STEER_VOUCHER_MAX + 1);
    memset(s->voucher, 'A', SM_STEER_VOUCHER_MAX);
    s->voucher[10] = '.';
    s->voucher[21] = '.';
    s->voucher[SM_STEER_VOUCHER_MAX] = '\0';
    char *out = NULL;
    ck_assert_int_eq(sm_steer_serialize(s, NULL, &out, &len, &err), SM_OK);
    sm_steer *back = parse_ok((const uint8_t *)out, len, NULL);
    assert_same(s, back);
    sm_steer_free(back);
    free(out);
    for (int i = 0; i < SM_STEER_MEDIA_URLS_MAX; i++)
        free(urls[i]);
    s->media_urls = (char **)old_urls;
    s->media_url_count = old_count;

    sm_steer_free(s);
    free(buf);
    free(huge);
    free(ok);
    free(big);
    smt_rm_rf(dir);
}
END_TEST

/* ---- fields ---- */

static const char *const required_fields[] = {
    "version", "work_id", "license_url", "title", "media_type", "media_urls", "voucher",
};

START_TEST(test_required_field_missing)
{
    const char *name = required_fields[_i];
    json_t *o = full_object();
    json_object_del(o, name);
    char needle[128];
    snprintf(needle, sizeof(needle), "required field \"%s\" is missing", name);
    expect_object(o, NULL, SM_ERR_FORMAT, needle);
}
END_TEST

START_TEST(test_required_field_missing_in_struct)
{
    const char *name = required_fields[_i];
    json_t *o = full_object();
    size_t len;
    char *out = NULL;
    sm_error err;
    uint8_t *buf = file_bytes(o, NULL, &len);
    json_decref(o);
    sm_steer *s = parse_ok(buf, len, NULL);
    if (strcmp(name, "version") == 0) {
        s->version = 0;
    } else if (strcmp(name, "media_urls") == 0) {
        for (size_t i = 0; i < s->media_url_count; i++)
            free(s->media_urls[i]);
        free(s->media_urls);
        s->media_urls = NULL;
        s->media_url_count = 0;
    } else {
        char **field = strcmp(name, "work_id") == 0       ? &s->work_id
                       : strcmp(name, "license_url") == 0 ? &s->license_url
                       : strcmp(name, "title") == 0       ? &s->title
                       : strcmp(name, "media_type") == 0  ? &s->media_type
                                                          : &s->voucher;
        free(*field);
        *field = NULL;
    }
    sm_status st = sm_steer_serialize(s, NULL, &out, &len, &err);
    ck_assert_int_eq(st, strcmp(name, "version") == 0 ? SM_ERR_UNSUPPORTED : SM_ERR_FORMAT);
    ck_assert_int_eq(err.status, st);
    ck_assert_ptr_null(out);
    ck_assert_msg(strstr(err.message, quoted(name)) != NULL, "%s", err.message);
    sm_steer_free(s);
    free(buf);
}
END_TEST

static const char *const unknown_fields[] = {
    "foo", "Title", "media_url", "signature", "jkt", "versions", "",
};

START_TEST(test_unknown_field)
{
    const char *name = unknown_fields[_i];
    json_t *o = full_object();
    json_object_set_new(o, name, json_string("x"));
    char needle[128];
    snprintf(needle, sizeof(needle), "unknown field \"%s\"", name);
    expect_object(o, NULL, SM_ERR_FORMAT, needle);
}
END_TEST

START_TEST(test_unknown_field_with_control_chars_in_name)
{
    /* The key is quoted in the message, but without its control bytes. */
    expect_text(SM_STEER_MAGIC "{\"a\\u0001\\u001b[31m\":1}", SM_ERR_FORMAT, "unknown field");
}
END_TEST

struct wrong_type {
    const char *field;
    const char *json; /* the wrong value */
};

static const struct wrong_type wrong_types[] = {
    {"version", "\"1\""},          {"version", "1.0"},          {"version", "true"},
    {"version", "null"},           {"work_id", "42"},           {"work_id", "[\"w\"]"},
    {"title", "null"},             {"title", "{}"},             {"artist", "1"},
    {"album", "false"},            {"media_type", "[]"},        {"license_url", "{\"u\":1}"},
    {"media_urls", "\"https://m.example.org/x\""},              {"media_urls", "{}"},
    {"voucher", "[\"ab\",\"cd\",\"ef\"]"},                      {"preview_url", "0"},
    {"transaction_id", "7"},
};

START_TEST(test_wrong_type)
{
    const struct wrong_type *w = &wrong_types[_i];
    json_error_t jerr;
    json_t *o = full_object();
    json_t *v = json_loads(w->json, JSON_DECODE_ANY, &jerr);
    ck_assert_ptr_nonnull(v);
    json_object_set_new(o, w->field, v);
    char needle[128];
    snprintf(needle, sizeof(needle), "field \"%s\" must be", w->field);
    expect_object(o, NULL, SM_ERR_FORMAT, needle);
}
END_TEST

START_TEST(test_version)
{
    json_t *o = full_object();
    json_object_set_new(o, "version", json_integer(2));
    expect_object(o, NULL, SM_ERR_UNSUPPORTED, "\"version\"");
    o = full_object();
    json_object_set_new(o, "version", json_integer(0));
    expect_object(o, NULL, SM_ERR_UNSUPPORTED, "\"version\"");
    o = full_object();
    json_object_set_new(o, "version", json_integer(-1));
    expect_object(o, NULL, SM_ERR_UNSUPPORTED, "\"version\"");
    /* Beyond what jansson holds in an integer: a JSON error in the field. */
    expect_text(SM_STEER_MAGIC "{\"version\":123456789012345678901234567890}", SM_ERR_FORMAT,
                "field \"version\"");
}
END_TEST

/* ---- the magic line ---- */

START_TEST(test_probe)
{
    const uint8_t *m = (const uint8_t *)SM_STEER_MAGIC;
    ck_assert_int_eq(sm_steer_probe(m, 17), 1);
    ck_assert_int_eq(sm_steer_probe((const uint8_t *)SM_STEER_MAGIC "{}", 19), 1);
    ck_assert_int_eq(sm_steer_probe(m, 16), 0);
    ck_assert_int_eq(sm_steer_probe(m, 0), 0);
    ck_assert_int_eq(sm_steer_probe(NULL, 17), 0);
    ck_assert_int_eq(sm_steer_probe((const uint8_t *)"SECMEDIA-STEER/1\r\n", 18), 0);
    ck_assert_int_eq(sm_steer_probe((const uint8_t *)"SECMEDIA-STEER/2\n", 17), 0);
    ck_assert_int_eq(sm_steer_probe((const uint8_t *)"secmedia-steer/1\n", 17), 0);
    ck_assert_int_eq(sm_steer_probe((const uint8_t *)"\xef\xbb\xbfSECMEDIA-STEER/1\n", 20), 0);
    ck_assert_int_eq(sm_steer_probe((const uint8_t *)"SECMEDIA-STEER/1 \n", 18), 0);
    ck_assert_int_eq(sm_steer_probe((const uint8_t *)"{\"version\":1}    \n", 18), 0);
    ck_assert_int_eq(sm_steer_probe((const uint8_t *)"OggS\0\2\0\0\0\0\0\0\0\0\0\0\0", 17), 0);
}
END_TEST

/* The JSON of a valid file, to put behind a wrong first line. */
static char *valid_json(void)
{
    json_t *o = full_object();
    char *json = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    ck_assert_ptr_nonnull(json);
    return json;
}

static void expect_with_prefix(const char *prefix, sm_status want, const char *needle)
{
    char *json = valid_json();
    size_t pl = strlen(prefix), jl = strlen(json);
    uint8_t *buf = malloc(pl + jl);
    ck_assert_ptr_nonnull(buf);
    memcpy(buf, prefix, pl);
    memcpy(buf + pl, json, jl);
    expect_bytes(buf, pl + jl, NULL, want, needle);
    free(buf);
    free(json);
}

START_TEST(test_bad_magic)
{
    expect_with_prefix(SM_STEER_MAGIC, SM_OK, NULL);
    expect_with_prefix("", SM_ERR_FORMAT, "SECMEDIA-STEER/1");
    expect_with_prefix("\xef\xbb\xbf" SM_STEER_MAGIC, SM_ERR_FORMAT, "byte order mark");
    expect_with_prefix("SECMEDIA-STEER/1\r\n", SM_ERR_FORMAT, "CR LF");
    expect_with_prefix("SECMEDIA-STEER/1", SM_ERR_FORMAT, "followed by a line feed");
    expect_with_prefix("SECMEDIA-STEER/1 \n", SM_ERR_FORMAT, "followed by a line feed");
    expect_with_prefix("SECMEDIA-STEER/2\n", SM_ERR_UNSUPPORTED, "SECMEDIA-STEER/2");
    expect_with_prefix("SECMEDIA-STEER/10\n", SM_ERR_UNSUPPORTED, "SECMEDIA-STEER/10");
    expect_with_prefix("SECMEDIA-STEER/\n", SM_ERR_FORMAT, "not a secmedia steering file");
    expect_with_prefix("secmedia-steer/1\n", SM_ERR_FORMAT, "not a secmedia steering file");
    expect_with_prefix("\n" SM_STEER_MAGIC, SM_ERR_FORMAT, "not a secmedia steering file");

    expect_bytes((const uint8_t *)"", 0, NULL, SM_ERR_TRUNCATED, "empty");
    expect_bytes(NULL, 0, NULL, SM_ERR_TRUNCATED, "empty");
    expect_text("SECMEDIA", SM_ERR_TRUNCATED, "first line");
    expect_text("SECMEDIA-STEER/1", SM_ERR_TRUNCATED, "line feed");
    expect_text("SECMEDIA-STEER/X\n{}", SM_ERR_FORMAT, "not a secmedia steering file");
    expect_text("OggS", SM_ERR_FORMAT, "not a secmedia steering file");
    expect_text(SM_STEER_MAGIC, SM_ERR_FORMAT, "invalid JSON at line 2");
}
END_TEST

START_TEST(test_crlf_in_body)
{
    char *json = valid_json();
    char text[4096];
    /* Replace the comma before "title" with ",\r\n". */
    char *p = strstr(json, ",\"title\"");
    ck_assert_ptr_nonnull(p);
    snprintf(text, sizeof(text), "%s%.*s,\r\n%s\r\n", SM_STEER_MAGIC, (int)(p - json), json, p + 1);
    expect_text(text, SM_ERR_FORMAT, "line 2 contains a carriage return");
    snprintf(text, sizeof(text), "%s%s\n\r\n", SM_STEER_MAGIC, json);
    expect_text(text, SM_ERR_FORMAT, "line 3 contains a carriage return");
    free(json);
}
END_TEST

START_TEST(test_trailing_bytes)
{
    char *json = valid_json();
    char text[4096];
    static const char *const ok[] = {"", "\n", "\n\n", " \t\n  \n"};
    static const char *const bad[] = {"x", "\n{}", ",", "}", "\n//", "\n1"};
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        snprintf(text, sizeof(text), "%s%s%s", SM_STEER_MAGIC, json, ok[i]);
        expect_text(text, SM_OK, NULL);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(text, sizeof(text), "%s%s%s", SM_STEER_MAGIC, json, bad[i]);
        expect_text(text, SM_ERR_FORMAT, "invalid JSON");
    }
    /* An error after the object is not blamed on its last field. */
    snprintf(text, sizeof(text), "%s%s\n{\"version\":1}", SM_STEER_MAGIC, json);
    sm_steer *s = NULL;
    sm_error err;
    ck_assert_int_eq(sm_steer_parse((const uint8_t *)text, strlen(text), NULL, &s, &err),
                     SM_ERR_FORMAT);
    ck_assert_msg(strstr(err.message, "field") == NULL, "%s", err.message);
    ck_assert_ptr_nonnull(strstr(err.message, "line 3"));
    /* A NUL after the object. */
    size_t len = (size_t)snprintf(text, sizeof(text), "%s%s", SM_STEER_MAGIC, json);
    text[len] = '\0';
    expect_bytes((const uint8_t *)text, len + 1, NULL, SM_ERR_FORMAT, "NUL");
    /* Leading whitespace before the object is JSON whitespace and allowed. */
    snprintf(text, sizeof(text), "%s\n  %s", SM_STEER_MAGIC, json);
    expect_text(text, SM_OK, NULL);
    /* Not an object. */
    expect_text(SM_STEER_MAGIC "[1]", SM_ERR_FORMAT, "JSON object");
    free(json);
}
END_TEST

START_TEST(test_duplicate_keys)
{
    char *json = valid_json();
    char text[4096];
    snprintf(text, sizeof(text), "%s{\"title\":\"Other\",%s", SM_STEER_MAGIC, json + 1);
    expect_text(text, SM_ERR_FORMAT, "field \"title\"");
    snprintf(text, sizeof(text), "%s%.*s,\"voucher\":\"ab.cd.ef\"}", SM_STEER_MAGIC,
             (int)strlen(json) - 1, json);
    expect_text(text, SM_ERR_FORMAT, "field \"voucher\"");
    expect_text(text, SM_ERR_FORMAT, "duplicate");
    free(json);
}
END_TEST

/* ---- URLs ---- */

START_TEST(test_http_urls)
{
    json_t *o = full_object();
    json_object_set_new(o, "license_url", json_string("http://keys.example.org/l"));
    expect_object(json_deep_copy(o), NULL, SM_ERR_FORMAT,
                  "field \"license_url\": only https:// URLs are accepted");
    expect_object(json_deep_copy(o), &strict_opts, SM_ERR_FORMAT, "\"license_url\"");
    expect_object(json_deep_copy(o), &insecure_opts, SM_OK, NULL);

    json_object_set_new(o, "preview_url", json_string("http://m.example.org/p.ogg"));
    json_array_set_new(json_object_get(o, "media_urls"), 1,
                       json_string("http://127.0.0.1:8080/work-42.smc"));
    expect_object(json_deep_copy(o), &insecure_opts, SM_OK, NULL);
    json_object_set_new(o, "license_url", json_string("https://keys.example.org/l"));
    expect_object(json_deep_copy(o), NULL, SM_ERR_FORMAT, "field \"media_urls\"[1]: only https");
    json_array_set_new(json_object_get(o, "media_urls"), 1,
                       json_string("https://127.0.0.1:8443/work-42.smc"));
    expect_object(json_deep_copy(o), NULL, SM_ERR_FORMAT, "field \"preview_url\": only https");

    /* The writer applies the same option. */
    size_t len;
    char *out = NULL;
    sm_error err;
    json_object_set_new(o, "preview_url", json_string("http://m.example.org/p.ogg"));
    uint8_t *buf = file_bytes(o, NULL, &len);
    sm_steer *s = parse_ok(buf, len, &insecure_opts);
    ck_assert_int_eq(sm_steer_serialize(s, NULL, &out, &len, &err), SM_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(err.message, "\"preview_url\""));
    ck_assert_int_eq(sm_steer_validate(s, NULL, &err), SM_ERR_FORMAT);
    ck_assert_int_eq(sm_steer_serialize(s, &insecure_opts, &out, &len, &err), SM_OK);
    sm_steer *back = parse_ok((const uint8_t *)out, len, &insecure_opts);
    assert_same(s, back);
    sm_steer_free(back);
    sm_steer_free(s);
    free(out);
    free(buf);
    json_decref(o);
}
END_TEST

struct bad_value {
    const char *field;
    const char *value;
    const char *needle; /* beyond the field name */
};

static const struct bad_value bad_values[] = {
    {"license_url", "ftp://keys.example.org/l", "is not an https:// URL"},
    {"license_url", "https://", "no host"},
    {"license_url", "https://user:pw@keys.example.org/l", "user:password"},
    {"license_url", "https://keys.example.org/l#frag", "fragment"},
    {"license_url", "https://keys.example.org/a b", "percent-encoded"},
    {"license_url", "", "is not an https:// URL"},
    {"preview_url", "", "is not an https:// URL"},
    {"preview_url", "/relative/path.ogg", "is not an https:// URL"},
    {"work_id", "../x", "start with a letter or digit"},
    {"work_id", "", "1 to 64"},
    {"work_id", "a/b", "only letters"},
    {"work_id", ".hidden", "start with a letter or digit"},
    {"work_id", "x\xc3\xa9", "only letters"},
    {"work_id", "12345678901234567890123456789012345678901234567890123456789012345", "1 to 64"},
    {"media_type", "audio", "type/subtype"},
    {"media_type", "audio/ogg; codecs=opus", "type/subtype"},
    {"media_type", "", "media type"},
    {"title", "", "must not be empty"},
    {"title", "bell\x07", "control character"},
    {"title", "tab\there", "control character"},
    {"title", "del\x7f", "control character"},
    {"title", "line\nbreak", "control character"},
    {"artist", "", "leave the field out"},
    {"album", "esc\x1b[0m", "control character"},
    {"transaction_id", "", "1 to 64"},
    {"transaction_id", "tx 1", "only letters"},
    {"transaction_id", "tx.1", "only letters"},
    {"transaction_id", "12345678901234567890123456789012345678901234567890123456789012345",
     "1 to 64"},
    {"voucher", "", "found 1 segment"},
    {"voucher", "abcd", "found 1 segment"},
    {"voucher", "ab.cd", "found 2 segments"},
    {"voucher", "ab.cd.ef.gh", "more"},
    {"voucher", "ab..ef", "segment 2 of the compact JWS is empty"},
    {"voucher", ".cd.ef", "segment 1 of the compact JWS is empty"},
    {"voucher", "ab.cd.", "segment 3 of the compact JWS is empty"},
    {"voucher", "ab+c.cd.ef", "base64url alphabet"},
    {"voucher", "ab/c.cd.ef", "base64url alphabet"},
    {"voucher", "abc=.cd.ef", "base64url alphabet"},
    {"voucher", "ab.c d.ef", "base64url alphabet"},
    {"voucher", "abcde.cd.ef", "impossible base64url length"},
    {"voucher", " ab.cd.ef", "base64url alphabet"},
};

START_TEST(test_bad_value)
{
    const struct bad_value *b = &bad_values[_i];
    char needle[160];
    snprintf(needle, sizeof(needle), "field \"%s\": ", b->field);
    /* Through the parser (escaped by jansson, so control characters arrive
     * as \uXXXX escapes) ... */
    json_t *o = full_object();
    json_object_set_new(o, b->field, json_string(b->value));
    ck_assert_ptr_nonnull(json_object_get(o, b->field));
    expect_object(json_deep_copy(o), &insecure_opts, SM_ERR_FORMAT, needle);
    expect_object(json_deep_copy(o), &insecure_opts, SM_ERR_FORMAT, b->needle);

    /* ... and through the writer. */
    json_object_del(o, b->field);
    size_t len;
    uint8_t *buf = file_bytes(o, NULL, &len);
    json_decref(o);
    sm_steer *s = NULL;
    sm_error err;
    if (strcmp(b->field, "title") == 0 || strcmp(b->field, "work_id") == 0 ||
        strcmp(b->field, "media_type") == 0 || strcmp(b->field, "license_url") == 0 ||
        strcmp(b->field, "voucher") == 0) {
        /* required: put it back valid so the object parses, then break it */
        free(buf);
        o = full_object();
        buf = file_bytes(o, NULL, &len);
        json_decref(o);
    }
    s = parse_ok(buf, len, NULL);
    char **field = strcmp(b->field, "license_url") == 0      ? &s->license_url
                   : strcmp(b->field, "preview_url") == 0    ? &s->preview_url
                   : strcmp(b->field, "work_id") == 0        ? &s->work_id
                   : strcmp(b->field, "media_type") == 0     ? &s->media_type
                   : strcmp(b->field, "title") == 0          ? &s->title
                   : strcmp(b->field, "artist") == 0         ? &s->artist
                   : strcmp(b->field, "album") == 0          ? &s->album
                   : strcmp(b->field, "transaction_id") == 0 ? &s->transaction_id
                                                             : &s->voucher;
    free(*field);
    *field = strdup(b->value);
    char *out = (char *)0x1;
    ck_assert_int_eq(sm_steer_serialize(s, &insecure_opts, &out, &len, &err), SM_ERR_FORMAT);
    ck_assert_ptr_null(out);
    ck_assert_msg(strstr(err.message, needle) != NULL, "%s", err.message);
    ck_assert_msg(strstr(err.message, b->needle) != NULL, "%s", err.message);
    sm_steer_free(s);
    free(buf);
}
END_TEST

START_TEST(test_voucher_limits)
{
    char *v = malloc(SM_STEER_VOUCHER_MAX + 2);
    ck_assert_ptr_nonnull(v);
    memset(v, 'A', SM_STEER_VOUCHER_MAX + 1);
    v[100] = '.';
    v[200] = '.';
    v[SM_STEER_VOUCHER_MAX] = '\0';
    json_t *o = full_object();
    json_object_set_new(o, "voucher", json_string(v));
    expect_object(o, NULL, SM_OK, NULL);
    v[SM_STEER_VOUCHER_MAX] = 'A';
    v[SM_STEER_VOUCHER_MAX + 1] = '\0';
    o = full_object();
    json_object_set_new(o, "voucher", json_string(v));
    expect_object(o, NULL, SM_ERR_FORMAT, "field \"voucher\": the voucher is 8193 bytes");
    free(v);
}
END_TEST

/* ---- media_urls ---- */

START_TEST(test_media_urls)
{
    json_t *o = full_object();
    json_object_set_new(o, "media_urls", json_array());
    expect_object(o, NULL, SM_ERR_FORMAT, "field \"media_urls\": must list 1 to 8 URLs, got 0");

    json_t *urls = json_array();
    for (int i = 0; i < 9; i++)
        json_array_append_new(urls, json_sprintf("https://m%d.example.org/w.smc", i));
    o = full_object();
    json_object_set_new(o, "media_urls", json_deep_copy(urls));
    expect_object(o, NULL, SM_ERR_FORMAT, "field \"media_urls\": must list 1 to 8 URLs, got 9");
    json_array_remove(urls, 8);
    o = full_object();
    json_object_set_new(o, "media_urls", json_deep_copy(urls));
    expect_object(o, NULL, SM_OK, NULL);

    json_array_set_new(urls, 5, json_string("https://m2.example.org/w.smc"));
    o = full_object();
    json_object_set_new(o, "media_urls", urls);
    expect_object(o, NULL, SM_ERR_FORMAT, "field \"media_urls\"[5]: duplicate of \"media_urls\"[2]");

    static const char *const non_strings[] = {"1", "null", "[]", "{}", "true"};
    for (size_t i = 0; i < sizeof(non_strings) / sizeof(non_strings[0]); i++) {
        char text[256];
        snprintf(text, sizeof(text), "[\"https://a.example.org/x\",%s]", non_strings[i]);
        o = full_object();
        json_object_set_new(o, "media_urls", json_loads(text, 0, NULL));
        expect_object(o, NULL, SM_ERR_FORMAT, "field \"media_urls\"[1] must be a string");
    }
    o = full_object();
    json_object_set_new(o, "media_urls", json_pack("[s]", "https://a.example.org/x y"));
    expect_object(o, NULL, SM_ERR_FORMAT, "field \"media_urls\"[0]: URL contains");
    o = full_object();
    json_object_set_new(o, "media_urls", json_pack("[s#]", "https://a.example.org/\0x", 24));
    /* jansson itself refuses \u0000; the message still names the field. */
    expect_object(o, NULL, SM_ERR_FORMAT, "field \"media_urls\": invalid JSON");
}
END_TEST

/* ---- text encoding ---- */

START_TEST(test_title_encoding)
{
    char *json = valid_json();
    char text[4096];
    char *t = strstr(json, "\"title\":\"");
    ck_assert_ptr_nonnull(t);
    t += 9;
    static const char *const bad_raw[] = {
        "Caf\xe9",             /* Latin-1 */
        "\xc3\x28",            /* bad continuation */
        "\xed\xa0\x80",        /* UTF-16 surrogate */
        "\xc0\xaf",            /* overlong '/' */
        "\xf4\x90\x80\x80",    /* above U+10FFFF */
        "\xff",                /* never valid */
        "a\x01z",              /* raw control character */
        "a\tz",                /* raw tab */
    };
    for (size_t i = 0; i < sizeof(bad_raw) / sizeof(bad_raw[0]); i++) {
        snprintf(text, sizeof(text), "%s%.*s%s%s", SM_STEER_MAGIC, (int)(t - json), json,
                 bad_raw[i], t);
        expect_text(text, SM_ERR_FORMAT, "field \"title\"");
    }
    static const char *const bad_escaped[] = {"\\u0001", "\\u001f", "\\u007f", "\\n", "\\ud800",
                                              "\\udc00x", "\\u0000"};
    for (size_t i = 0; i < sizeof(bad_escaped) / sizeof(bad_escaped[0]); i++) {
        snprintf(text, sizeof(text), "%s%.*s%s%s", SM_STEER_MAGIC, (int)(t - json), json,
                 bad_escaped[i], t);
        expect_text(text, SM_ERR_FORMAT, "field \"title\"");
    }
    /* Escapes of printable characters are fine. */
    snprintf(text, sizeof(text), "%s%.*s\\u00e9\\ud83c\\udfb5\\\"\\\\\\/%s", SM_STEER_MAGIC,
             (int)(t - json), json, t);
    sm_steer *s = parse_ok((const uint8_t *)text, strlen(text), NULL);
    ck_assert_ptr_eq(strstr(s->title, "\xc3\xa9\xf0\x9f\x8e\xb5\"\\/"), s->title);
    sm_steer_free(s);

    /* Length: 512 bytes of text (multi-byte characters count as bytes). */
    char title[600];
    memset(title, 'a', sizeof(title));
    memcpy(title + 508, "\xe2\x82\xac", 3); /* bytes 508..510 */
    title[511] = 'z';
    title[512] = '\0';
    json_t *o = full_object();
    json_object_set_new(o, "title", json_string(title));
    expect_object(o, NULL, SM_OK, NULL);
    title[512] = 'z';
    title[513] = '\0';
    o = full_object();
    json_object_set_new(o, "title", json_string(title));
    expect_object(o, NULL, SM_ERR_FORMAT, "field \"title\": longer than 512 bytes");

    /* The writer checks UTF-8 itself (a caller's string may be anything). */
    static const char *const bad_struct[] = {"Caf\xe9", "\xed\xa0\x80", "\xc3", "x\x1f"};
    o = full_object();
    size_t len;
    uint8_t *buf = file_bytes(o, NULL, &len);
    json_decref(o);
    for (size_t i = 0; i < sizeof(bad_struct) / sizeof(bad_struct[0]); i++) {
        char *out = NULL;
        size_t out_len;
        sm_error err;
        s = parse_ok(buf, len, NULL);
        free(s->title);
        s->title = strdup(bad_struct[i]);
        ck_assert_int_eq(sm_steer_serialize(s, NULL, &out, &out_len, &err), SM_ERR_FORMAT);
        ck_assert_msg(strstr(err.message, "field \"title\": ") != NULL, "%s", err.message);
        ck_assert_ptr_null(out);
        sm_steer_free(s);
    }
    free(buf);
    free(json);
}
END_TEST

static Suite *steer_suite(void)
{
    Suite *s = suite_create("steer");
    TCase *tc = tcase_create("steer");
    tcase_add_test(tc, test_round_trip_full);
    tcase_add_test(tc, test_round_trip_minimal);
    tcase_add_test(tc, test_save_and_load_file);
    tcase_add_test(tc, test_size_limit);
    tcase_add_loop_test(tc, test_required_field_missing, 0,
                        (int)(sizeof(required_fields) / sizeof(required_fields[0])));
    tcase_add_loop_test(tc, test_required_field_missing_in_struct, 0,
                        (int)(sizeof(required_fields) / sizeof(required_fields[0])));
    tcase_add_loop_test(tc, test_unknown_field, 0,
                        (int)(sizeof(unknown_fields) / sizeof(unknown_fields[0])));
    tcase_add_test(tc, test_unknown_field_with_control_chars_in_name);
    tcase_add_loop_test(tc, test_wrong_type, 0, (int)(sizeof(wrong_types) / sizeof(wrong_types[0])));
    tcase_add_test(tc, test_version);
    tcase_add_test(tc, test_probe);
    tcase_add_test(tc, test_bad_magic);
    tcase_add_test(tc, test_crlf_in_body);
    tcase_add_test(tc, test_trailing_bytes);
    tcase_add_test(tc, test_duplicate_keys);
    tcase_add_test(tc, test_http_urls);
    tcase_add_loop_test(tc, test_bad_value, 0, (int)(sizeof(bad_values) / sizeof(bad_values[0])));
    tcase_add_test(tc, test_voucher_limits);
    tcase_add_test(tc, test_media_urls);
    tcase_add_test(tc, test_title_encoding);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(steer_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
