/* secmedia: the command line tool of the secmedia system.
 * Each subcommand lives in its own cmd_*.c file. */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "sm_secmem.h"

static const struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} commands[] = {
    {"keygen", cmd_keygen, "create a device key pair and print its thumbprint"},
    {"pack", cmd_pack, "encrypt a media file into a .smc container with a new media key"},
    {"inspect", cmd_inspect, "show a container's header, sizes and chunk count (no key needed)"},
    {"unpack", cmd_unpack, "decrypt a container, verifying every chunk"},
    {"verify", cmd_verify, "authenticate a whole container without writing the plaintext"},
    {"publish", cmd_publish, "upload a packed work to media stores and register it with the key server"},
    {"ledger", cmd_ledger, "verify a key server ledger export (ledger verify EXPORT)"},
    {"fetch", cmd_fetch, "keep a purchase (license + container) for offline play"},
};

static void usage(FILE *out)
{
    fprintf(out, "Usage: secmedia COMMAND [OPTIONS]\n\nCommands:\n");
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        fprintf(out, "  %-9s %s\n", commands[i].name, commands[i].summary);
    fprintf(out,
            "\n'secmedia COMMAND --help' describes a command.\n\n"
            "Exit codes:\n"
            "  0 success              5 authentication failed (wrong key, tampered, truncated)\n"
            "  1 internal error       6 an output cannot be written\n"
            "  2 bad command line     7 a key is missing, unreadable or unsuitable\n"
            "  3 input unreadable     8 ffmpeg missing or failed, or a server unreachable\n"
            "  4 input malformed        or refusing (publish, fetch)\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return CLI_EXIT_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return CLI_EXIT_OK;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("secmedia %s\n", PACKAGE_VERSION);
        return CLI_EXIT_OK;
    }
    /* Keys are held in locked memory where the system allows it. */
    sm_secmem_init();
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        if (strcmp(argv[1], commands[i].name) == 0)
            return commands[i].run(argc - 1, argv + 1);
    }
    fprintf(stderr, "secmedia: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return CLI_EXIT_USAGE;
}
