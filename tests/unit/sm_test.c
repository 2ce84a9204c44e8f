#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/sha.h>
#include <zlib.h>

#include "sm_test.h"

#include <stdarg.h>

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void die(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "test setup: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n");
    abort();
}

json_t *smt_load_wycheproof(const char *name)
{
    char path[4096];
    json_error_t jerr;
    snprintf(path, sizeof(path), "%s/wycheproof/%s", SM_TESTVECTORS_DIR, name);
    json_t *root = json_load_file(path, 0, &jerr);
    if (root == NULL)
        die("cannot load Wycheproof vectors %s (configure --with-testvectors=DIR)", path);
    return root;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

uint8_t *smt_hex_decode(const char *hex, size_t *len)
{
    size_t n = strlen(hex);
    if (n % 2 != 0)
        die("odd-length hex string: %s", hex);
    uint8_t *out = malloc(n / 2 + 1);
    if (out == NULL)
        die("%s", "out of memory");
    for (size_t i = 0; i < n / 2; i++) {
        int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            die("invalid hex string: %s", hex);
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    *len = n / 2;
    return out;
}

uint8_t *smt_hex_inflate(const char *hex, size_t *len)
{
    size_t zlen;
    uint8_t *z = smt_hex_decode(hex, &zlen);
    size_t cap = zlen * 4 + 1024, used = 0;
    uint8_t *out = malloc(cap);
    z_stream zs;
    memset(&zs, 0, sizeof(zs));
    if (out == NULL || inflateInit(&zs) != Z_OK)
        die("%s", "zlib init failed");
    zs.next_in = z;
    zs.avail_in = (uInt)zlen;
    for (;;) {
        if (used == cap) {
            cap *= 2;
            out = realloc(out, cap);
            if (out == NULL)
                die("%s", "out of memory");
        }
        zs.next_out = out + used;
        zs.avail_out = (uInt)(cap - used);
        int rc = inflate(&zs, Z_NO_FLUSH);
        used = cap - zs.avail_out;
        if (rc == Z_STREAM_END)
            break;
        if (rc != Z_OK && rc != Z_BUF_ERROR)
            die("%s", "corrupt zlib stream in vector");
        if (rc == Z_BUF_ERROR && zs.avail_in == 0)
            die("%s", "truncated zlib stream in vector");
    }
    inflateEnd(&zs);
    free(z);
    *len = used;
    return out;
}

void smt_sha512_hex(const uint8_t *data, size_t len, char out[129])
{
    uint8_t md[SHA512_DIGEST_LENGTH];
    SHA512(data, len, md);
    for (size_t i = 0; i < sizeof(md); i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

int smt_has_flag(json_t *test, const char *flag)
{
    json_t *flags = json_object_get(test, "flags");
    size_t i;
    json_t *f;
    json_array_foreach(flags, i, f) {
        if (json_is_string(f) && strcmp(json_string_value(f), flag) == 0)
            return 1;
    }
    return 0;
}

const char *smt_tmpdir(void)
{
    static char path[256];
    const char *base = getenv("TMPDIR");
    snprintf(path, sizeof(path), "%s/smtest.XXXXXX", base != NULL ? base : "/tmp");
    if (mkdtemp(path) == NULL)
        die("mkdtemp failed under %s", base != NULL ? base : "/tmp");
    return path;
}

static int rm_entry(const char *p, const struct stat *sb, int type, struct FTW *ftw)
{
    (void)sb; (void)type; (void)ftw;
    return remove(p);
}

void smt_rm_rf(const char *path)
{
    nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

uint8_t *smt_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        die("cannot open %s", path);
    size_t cap = 65536, used = 0;
    uint8_t *buf = malloc(cap);
    for (;;) {
        if (used == cap) {
            cap *= 2;
            buf = realloc(buf, cap);
        }
        if (buf == NULL)
            die("%s", "out of memory");
        size_t n = fread(buf + used, 1, cap - used, f);
        used += n;
        if (n == 0)
            break;
    }
    if (ferror(f))
        die("read error on %s", path);
    fclose(f);
    *len = used;
    return buf;
}

void smt_write_file(const char *path, const uint8_t *data, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0)
        die("cannot create %s", path);
    size_t off = 0;
    while (off < len) {
        ssize_t n = write(fd, data + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            die("write error on %s", path);
        off += (size_t)n;
    }
    close(fd);
}

void smt_fill_pattern(uint8_t *buf, size_t len, uint32_t seed)
{
    uint32_t x = seed ? seed : 0x9e3779b9u;
    for (size_t i = 0; i < len; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        buf[i] = (uint8_t)x;
    }
}
