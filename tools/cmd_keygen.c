/* secmedia keygen: a device key pair for the player. */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "sm_jose.h"

static void keygen_help(void)
{
    printf("Usage: secmedia keygen [--key PATH] [--public-out PATH] [--force]\n\n"
           "Creates a P-256 device key pair. The private key is written with mode 0600\n"
           "to PATH, by default $SECMEDIA_DEVICE_KEY, else\n"
           "$XDG_CONFIG_HOME/secmedia/device.jwk, else ~/.config/secmedia/device.jwk.\n"
           "It never leaves this machine; register the public key with your retailer.\n\n"
           "Prints the key's RFC 7638 thumbprint (jkt) on standard output.\n\n"
           "  --key PATH         where to write the private key (JWK)\n"
           "  --public-out PATH  also write the public key (JWK) here\n"
           "  --force            replace existing files\n");
}

/* Creates the parent directory of the default location (0700, like ~/.ssh). */
static int make_parent_dirs(const char *path, sm_error *err)
{
    char dir[4096];
    if ((size_t)snprintf(dir, sizeof(dir), "%s", path) >= sizeof(dir))
        return sm_error_set(err, SM_ERR_ARG, "path too long"), -1;
    for (char *p = dir + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
            sm_error_set(err, SM_ERR_IO, "cannot create directory %s: %s", dir, strerror(errno));
            return -1;
        }
        *p = '/';
    }
    return 0;
}

int cmd_keygen(int argc, char **argv)
{
    static const struct option opts[] = {{"key", required_argument, NULL, 'k'},
                                          {"public-out", required_argument, NULL, 'p'},
                                          {"force", no_argument, NULL, 'f'},
                                          {"help", no_argument, NULL, 'h'},
                                          {NULL, 0, NULL, 0}};
    const char *key_path = NULL, *public_path = NULL;
    int force = 0, c;
    char default_path[4096];
    sm_error err = {0};

    while ((c = getopt_long(argc, argv, "k:p:fh", opts, NULL)) != -1) {
        switch (c) {
        case 'k': key_path = optarg; break;
        case 'p': public_path = optarg; break;
        case 'f': force = 1; break;
        case 'h': keygen_help(); return CLI_EXIT_OK;
        default: return cli_usage_error("keygen", "invalid option");
        }
    }
    if (optind != argc)
        return cli_usage_error("keygen", "unexpected argument '%s'", argv[optind]);
    if (key_path == NULL) {
        if (sm_device_key_default_path(default_path, sizeof(default_path), &err) != SM_OK)
            return cli_fail("keygen", &err, CLI_EXIT_OUTPUT);
        if (make_parent_dirs(default_path, &err) != 0)
            return cli_fail("keygen", &err, CLI_EXIT_OUTPUT);
        key_path = default_path;
    }

    sm_jwk *jwk = NULL;
    char jkt[44];
    int rc = CLI_EXIT_OK;
    sm_status (*save)(const sm_jwk *, const char *, int, sm_error *) =
        force ? sm_jwk_save_file_overwrite : sm_jwk_save_file;
    if (sm_jwk_generate(&jwk, &err) != SM_OK || sm_jwk_thumbprint(jwk, jkt, &err) != SM_OK) {
        rc = cli_fail("keygen", &err, CLI_EXIT_FAILURE);
        goto out;
    }
    if (save(jwk, key_path, 1, &err) != SM_OK ||
        (public_path != NULL && save(jwk, public_path, 0, &err) != SM_OK)) {
        rc = cli_fail("keygen", &err, CLI_EXIT_OUTPUT);
        goto out;
    }
    fprintf(stderr, "secmedia keygen: device key written to %s\n", key_path);
    printf("%s\n", jkt);
out:
    sm_jwk_free(jwk);
    return rc;
}
