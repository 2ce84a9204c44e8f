/* secmedia unpack / verify: decrypt and authenticate a container. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "progress.h"
#include "sm_container.h"
#include "sm_jose.h"
#include "sm_keyfile.h"

#define UNPACK_BLOCK (1024u * 1024u)
#define JWE_MAX_SIZE 16384u

typedef struct key_source {
    const char *key_file;   /* --key: media key JWK */
    const char *jwe_file;   /* --jwe: media key wrapped to the device */
    const char *device_key; /* --device-key: device private JWK */
} key_source;

static void key_help(void)
{
    printf("The media key comes from one of:\n"
           "  --key FILE          a media key file written by 'secmedia pack --key-out'\n"
           "  --jwe FILE          a media key wrapped to a device (JWE), unwrapped with\n"
           "  --device-key JWK    the device private key (default: the 'secmedia keygen'\n"
           "                      location)\n");
}

/* Loads the media key from a key file, or unwraps it from a JWE. */
static int load_media_key(const char *cmd, const key_source *ks, sm_secret **key)
{
    sm_error err = {0};
    if ((ks->key_file != NULL) == (ks->jwe_file != NULL))
        return cli_usage_error(cmd, "give exactly one of --key FILE or --jwe FILE");
    if (ks->key_file != NULL) {
        if (sm_keyfile_load(ks->key_file, SM_MEDIA_KEY_SIZE, key, NULL, 0, &err) != SM_OK)
            return cli_fail(cmd, &err, CLI_EXIT_KEY);
        return CLI_EXIT_OK;
    }
    char default_path[4096];
    const char *device_path = ks->device_key;
    if (device_path == NULL) {
        if (sm_device_key_default_path(default_path, sizeof(default_path), &err) != SM_OK)
            return cli_fail(cmd, &err, CLI_EXIT_KEY);
        device_path = default_path;
    }
    sm_jwk *device = NULL;
    sm_secret *jwe = NULL;
    int rc = CLI_EXIT_OK;
    if (sm_jwk_load_file(device_path, &device, &err) != SM_OK) {
        cli_error(cmd, "%s (create a device key with 'secmedia keygen')", err.message);
        return CLI_EXIT_KEY;
    }
    FILE *f = fopen(ks->jwe_file, "rb");
    if (f == NULL) {
        cli_error(cmd, "cannot open %s: %s", ks->jwe_file, strerror(errno));
        sm_jwk_free(device);
        return CLI_EXIT_INPUT;
    }
    jwe = sm_secret_new(JWE_MAX_SIZE + 1);
    size_t n = jwe != NULL ? fread(jwe->bytes, 1, JWE_MAX_SIZE + 1, f) : 0;
    fclose(f);
    if (jwe == NULL || n > JWE_MAX_SIZE) {
        cli_error(cmd, "%s is larger than %u bytes: not a media key JWE", ks->jwe_file,
                  JWE_MAX_SIZE);
        rc = CLI_EXIT_FORMAT;
        goto out;
    }
    while (n > 0 && (jwe->bytes[n - 1] == '\n' || jwe->bytes[n - 1] == '\r'))
        n--;
    if (sm_jwe_unwrap_key(device, (const char *)jwe->bytes, n, key, &err) != SM_OK) {
        cli_error(cmd, "%s: %s", ks->jwe_file, err.message);
        rc = cli_exit_code(err.status, CLI_EXIT_INPUT);
        goto out;
    }
    if ((*key)->len != SM_MEDIA_KEY_SIZE) {
        cli_error(cmd, "%s does not hold a %u-byte media key", ks->jwe_file, SM_MEDIA_KEY_SIZE);
        sm_secret_free(*key);
        *key = NULL;
        rc = CLI_EXIT_KEY;
    }
out:
    sm_secret_free(jwe);
    sm_jwk_free(device);
    return rc;
}

/* Decrypts path with key, writing plaintext to out (or nowhere when out is
 * NULL: verify). Only authenticated bytes ever reach out. */
static int decrypt_container(const char *cmd, const char *path, const sm_secret *key,
                             cli_outfile *out, uint64_t *plain_len, uint64_t *chunks)
{
    sm_error err = {0};
    sm_container_reader *r = NULL;
    struct stat st;
    uint8_t *buf = NULL;
    progress bar;
    int rc = CLI_EXIT_OK;
    uint64_t done = 0;

    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) != 0) {
        cli_error(cmd, "cannot open %s: %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return CLI_EXIT_INPUT;
    }
    posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    sm_fd_io src = {fd, path};
    sm_fd_io sink = {out != NULL ? out->fd : -1, out != NULL ? out->path : ""};
    progress_start(&bar, out != NULL ? "unpacking" : "verifying", (uint64_t)st.st_size);
    if (sm_container_reader_new(sm_fd_read, &src, key, &r, &err) != SM_OK) {
        cli_error(cmd, "%s: %s", path, err.message);
        rc = cli_exit_code(err.status, CLI_EXIT_INPUT);
        goto out;
    }
    buf = malloc(UNPACK_BLOCK);
    if (buf == NULL) {
        cli_error(cmd, "out of memory");
        rc = CLI_EXIT_FAILURE;
        goto out;
    }
    for (;;) {
        size_t got = 0;
        if (sm_container_reader_read(r, buf, UNPACK_BLOCK, &got, &err) != SM_OK) {
            cli_error(cmd, "%s: %s", path, err.message);
            rc = cli_exit_code(err.status, CLI_EXIT_INPUT);
            goto out;
        }
        if (got == 0)
            break;
        if (out != NULL && sm_fd_write(&sink, buf, got, &err) != SM_OK) {
            rc = cli_fail(cmd, &err, CLI_EXIT_OUTPUT);
            goto out;
        }
        done += got;
        progress_update(&bar, done);
    }
    *plain_len = done;
    *chunks = sm_container_chunk_count(done);
out:
    progress_finish(&bar);
    free(buf);
    sm_container_reader_free(r);
    close(fd);
    return rc;
}

static int parse_key_opts(const char *cmd, int argc, char **argv, key_source *ks,
                          const char **output, int *force, void (*help)(void))
{
    static const struct option opts[] = {
        {"key", required_argument, NULL, 'k'},    {"jwe", required_argument, NULL, 'j'},
        {"device-key", required_argument, NULL, 'd'}, {"output", required_argument, NULL, 'o'},
        {"force", no_argument, NULL, 'f'},        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    int c;
    memset(ks, 0, sizeof(*ks));
    while ((c = getopt_long(argc, argv, output != NULL ? "o:fh" : "h", opts, NULL)) != -1) {
        switch (c) {
        case 'k': ks->key_file = optarg; break;
        case 'j': ks->jwe_file = optarg; break;
        case 'd': ks->device_key = optarg; break;
        case 'o':
        case 'f':
            if (output == NULL)
                return cli_usage_error(cmd, "invalid option");
            if (c == 'o')
                *output = optarg;
            else
                *force = 1;
            break;
        case 'h': help(); return -1;
        default: return cli_usage_error(cmd, "invalid option");
        }
    }
    if (optind + 1 != argc)
        return cli_usage_error(cmd, "exactly one container file is expected");
    if (ks->device_key != NULL && ks->jwe_file == NULL)
        return cli_usage_error(cmd, "--device-key is used with --jwe");
    return 0;
}

static void unpack_help(void)
{
    printf("Usage: secmedia unpack FILE.smc -o OUT [--force] (--key FILE | --jwe FILE "
           "[--device-key JWK])\n\n"
           "Decrypts FILE.smc, authenticating every chunk, the header and the length.\n"
           "OUT appears only when everything verified; with -o - the plaintext goes to\n"
           "standard output as it is authenticated, and a failure ends it early with a\n"
           "non-zero exit code.\n\n");
    key_help();
}

int cmd_unpack(int argc, char **argv)
{
    key_source ks;
    const char *output = NULL;
    int force = 0;
    sm_secret *key = NULL;
    sm_error err = {0};
    cli_outfile out;
    uint64_t plain_len = 0, chunks = 0;
    int rc = parse_key_opts("unpack", argc, argv, &ks, &output, &force, unpack_help);
    if (rc != 0)
        return rc < 0 ? CLI_EXIT_OK : rc;
    const char *path = argv[optind];
    if (output == NULL)
        return cli_usage_error("unpack", "missing -o OUT (use -o - for standard output)");
    if ((rc = load_media_key("unpack", &ks, &key)) != CLI_EXIT_OK)
        return rc;
    if (cli_outfile_open(&out, output, 0644, force, &err) != 0) {
        sm_secret_free(key);
        return cli_fail("unpack", &err, CLI_EXIT_OUTPUT);
    }
    rc = decrypt_container("unpack", path, key, &out, &plain_len, &chunks);
    sm_secret_free(key);
    if (rc == CLI_EXIT_OK && cli_outfile_commit(&out, &err) != 0)
        rc = cli_fail("unpack", &err, CLI_EXIT_OUTPUT);
    if (rc != CLI_EXIT_OK) {
        cli_outfile_abort(&out);
        if (!out.is_stdout)
            fprintf(stderr, "secmedia unpack: nothing was written to %s\n", output);
        return rc;
    }
    if (!out.is_stdout)
        fprintf(stderr, "secmedia unpack: %s: %llu bytes verified and written\n", output,
                (unsigned long long)plain_len);
    return CLI_EXIT_OK;
}

static void verify_help(void)
{
    printf("Usage: secmedia verify FILE.smc (--key FILE | --jwe FILE [--device-key JWK])\n\n"
           "Authenticates the whole container (commitment, every chunk, the length)\n"
           "without writing any plaintext.\n\n");
    key_help();
}

int cmd_verify(int argc, char **argv)
{
    key_source ks;
    sm_secret *key = NULL;
    uint64_t plain_len = 0, chunks = 0;
    int rc = parse_key_opts("verify", argc, argv, &ks, NULL, NULL, verify_help);
    if (rc != 0)
        return rc < 0 ? CLI_EXIT_OK : rc;
    const char *path = argv[optind];
    if ((rc = load_media_key("verify", &ks, &key)) != CLI_EXIT_OK)
        return rc;
    rc = decrypt_container("verify", path, key, NULL, &plain_len, &chunks);
    sm_secret_free(key);
    if (rc == CLI_EXIT_OK)
        printf("%s: OK (%llu bytes in %llu chunks authenticated)\n", path,
               (unsigned long long)plain_len, (unsigned long long)chunks);
    return rc;
}
