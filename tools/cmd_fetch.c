/* secmedia fetch: keep a purchase for offline play (docs/PLAYER.md §3).
 * One license request, the whole container downloaded with its delivery
 * token and authenticated, both stored in the offline store. */
#include "config.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "sm_pl_http.h"
#include "sm_pl_session.h"
#include "sm_steer.h"

static void fetch_help(void)
{
    printf("Usage: secmedia fetch [OPTIONS] FILE.steer\n\n"
           "Keeps a purchase for offline play: requests one license (this counts as one\n"
           "activation), downloads the whole encrypted container with its delivery token,\n"
           "checks every chunk, and stores the license (still encrypted to the device key)\n"
           "and the container in the offline store. The VLC plugin then plays FILE.steer\n"
           "without the network. Nothing decrypted is written. Prints the entry's directory.\n\n"
           "  --device-key PATH     the device's private key (default: what keygen wrote)\n"
           "  --ca FILE             CA certificates (PEM) to trust (default: the system's)\n"
           "  --offline-dir DIR     the offline store (default:\n"
           "                        $XDG_DATA_HOME/secmedia/offline)\n"
           "  --connect-timeout S   seconds to connect (default 10)\n"
           "  --timeout S           seconds per request (default 60)\n"
           "  --force               replace an existing offline copy (a new activation)\n");
}

/* Exit code for a failure of the core, by what the user must fix. */
static int fetch_exit_code(sm_status st, sm_pl_refusal refusal, const sm_error *err)
{
    if (refusal != SM_PL_REFUSAL_NONE || st == SM_ERR_UNAVAILABLE ||
        strncmp(err->message, "Certificate failure", 19) == 0 ||
        strncmp(err->message, "The key server sent", 19) == 0)
        return CLI_EXIT_EXTERNAL;
    if (strncmp(err->message, "The media is damaged", 20) == 0)
        return CLI_EXIT_AUTH;
    if (st == SM_ERR_IO || st == SM_ERR_DUPLICATE)
        return CLI_EXIT_OUTPUT;
    return cli_exit_code(st, CLI_EXIT_OUTPUT);
}

int cmd_fetch(int argc, char **argv)
{
    static const struct option opts[] = {{"device-key", required_argument, NULL, 'k'},
                                          {"ca", required_argument, NULL, 'c'},
                                          {"offline-dir", required_argument, NULL, 'd'},
                                          {"connect-timeout", required_argument, NULL, 'C'},
                                          {"timeout", required_argument, NULL, 'T'},
                                          {"force", no_argument, NULL, 'f'},
                                          {"help", no_argument, NULL, 'h'},
                                          {NULL, 0, NULL, 0}};
    const char *device_key = NULL, *ca = NULL, *dir = NULL;
    uint64_t connect_timeout = 10, timeout = 60;
    int force = 0, c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'k': device_key = optarg; break;
        case 'c': ca = optarg; break;
        case 'd': dir = optarg; break;
        case 'C':
            if (cli_parse_u64(optarg, 300, &connect_timeout) != 0 || connect_timeout == 0)
                return cli_usage_error("fetch", "--connect-timeout takes 1..300 seconds");
            break;
        case 'T':
            if (cli_parse_u64(optarg, 3600, &timeout) != 0 || timeout == 0)
                return cli_usage_error("fetch", "--timeout takes 1..3600 seconds");
            break;
        case 'f': force = 1; break;
        case 'h': fetch_help(); return CLI_EXIT_OK;
        default: return cli_usage_error("fetch", "invalid option");
        }
    }
    if (optind + 1 != argc)
        return cli_usage_error("fetch", optind == argc ? "a steering file is required"
                                                       : "only one steering file at a time");
    const char *steer_path = argv[optind];
    sm_error err = {SM_OK, ""};
    sm_steer *steer = NULL;
    sm_status st = sm_steer_load_file(steer_path, NULL, &steer, &err);
    if (st != SM_OK)
        return cli_fail("fetch", &err, CLI_EXIT_INPUT);

    sm_pl_http_config hc = {.ca_file = ca,
                            .connect_timeout_s = (unsigned)connect_timeout,
                            .timeout_s = (unsigned)timeout};
    sm_pl_http_curl *http = NULL;
    st = sm_pl_http_curl_new(&hc, &http, &err);
    if (st != SM_OK) {
        sm_steer_free(steer);
        return cli_fail("fetch", &err, CLI_EXIT_FAILURE);
    }
    sm_pl_transport tr = {sm_pl_http_curl_perform, http};
    sm_pl_options o = {.device_key_path = device_key,
                       .offline_dir = dir,
                       .transport = &tr,
                       .device_key_option = "--device-key"};
    char entry[4096] = "";
    sm_pl_refusal refusal = SM_PL_REFUSAL_NONE;
    st = sm_pl_fetch_offline(&o, steer, force, entry, sizeof(entry), &refusal, &err);
    int rc = CLI_EXIT_OK;
    if (st == SM_ERR_DUPLICATE) {
        cli_error("fetch", "%s; kept it (--force fetches again, which uses an activation)",
                  err.message);
    } else if (st != SM_OK) {
        cli_error("fetch", "%s", err.message);
        rc = fetch_exit_code(st, refusal, &err);
    } else {
        printf("%s\n", entry);
    }
    sm_pl_http_curl_free(http);
    sm_steer_free(steer);
    return rc;
}
