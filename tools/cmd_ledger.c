#include "config.h"

/* secmedia ledger verify: checks a key server ledger export (hash chain,
 * gapless sequence, signed checkpoints) and names the first bad entry. */

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "sm_jose.h"
#include "sm_ks_ledger.h"

#define LEDGER_MAX_CHECKPOINT_FILES 64

static void ledger_help(void)
{
    printf("Usage: secmedia ledger verify [OPTIONS] EXPORT\n\n"
           "Checks a ledger export of the key server (GET /v1/ledger/export; '-' reads\n"
           "standard input): every entry's hash, the gapless sequence, and every signed\n"
           "checkpoint. A changed, deleted or reordered entry, or entries cut behind a\n"
           "checkpoint, are reported with the first bad sequence number.\n\n"
           "  --jwks FILE         the key server's JWKS, obtained separately\n"
           "                      (GET /v1/jwks); without it checkpoints are checked with\n"
           "                      the keys inside the export, which only shows the\n"
           "                      export is consistent with itself\n"
           "  --issuer ISS        expected issuer (default: the export's)\n"
           "  --checkpoint FILE   a checkpoint token kept elsewhere (e.g. by a retailer);\n"
           "                      the export must reach and match it (needs --jwks and\n"
           "                      --issuer); may be given several times\n\n"
           "Exit codes: 0 valid, 2 bad command line, 3 unreadable input, 4 malformed\n"
           "export, 5 tampering detected or export truncated, 7 unusable --jwks.\n");
}

/* Reads a small text file whole (NUL-terminated, trailing whitespace cut). */
static char *read_small_file(const char *path, size_t max, sm_error *err)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        sm_error_set(err, SM_ERR_IO, "cannot open %s: %s", path, strerror(errno));
        return NULL;
    }
    char *buf = malloc(max + 1);
    size_t n = buf != NULL ? fread(buf, 1, max + 1, f) : 0;
    int bad = ferror(f);
    fclose(f);
    if (buf == NULL || bad) {
        free(buf);
        sm_error_set(err, buf == NULL ? SM_ERR_NOMEM : SM_ERR_IO, "cannot read %s", path);
        return NULL;
    }
    if (n > max) {
        free(buf);
        sm_error_set(err, SM_ERR_TOO_LARGE, "%s is larger than %zu bytes", path, max);
        return NULL;
    }
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
        n--;
    buf[n] = '\0';
    return buf;
}

static int verify_stream(FILE *in, const char *name, sm_ks_ledger_verifier *v)
{
    sm_error err = {0};
    sm_ks_ledger_report report;
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int read_error = 0;
    while ((n = getline(&line, &cap, in)) >= 0) {
        size_t len = (size_t)n;
        if (len > 0 && line[len - 1] == '\n')
            len--;
        if (sm_ks_ledger_verifier_feed(v, line, len, &err) != SM_OK)
            break;
    }
    if (ferror(in))
        read_error = errno != 0 ? errno : EIO;
    free(line);
    if (read_error != 0) {
        cli_error("ledger", "cannot read %s: %s", name, strerror(read_error));
        return CLI_EXIT_INPUT;
    }
    sm_status st = sm_ks_ledger_verifier_finish(v, &report, &err);
    if (st != SM_OK) {
        cli_error("ledger", "%s: %s", name, err.message);
        if (report.first_bad_seq != 0)
            fprintf(stderr, "first bad entry: seq %llu\n",
                    (unsigned long long)report.first_bad_seq);
        fprintf(stderr, "verified before the failure: %llu entries (up to seq %llu), %llu "
                        "checkpoints\n",
                (unsigned long long)report.entries, (unsigned long long)report.last_seq,
                (unsigned long long)report.checkpoints);
        return cli_exit_code(st, CLI_EXIT_INPUT);
    }
    char head[SM_KS_LEDGER_HASH_B64_SIZE];
    sm_ks_ledger_hash_to_b64(report.head, head);
    printf("ledger ok: %llu entries, last seq %llu, head %s\n",
           (unsigned long long)report.entries, (unsigned long long)report.last_seq, head);
    printf("checkpoints: %llu matched, the last at seq %llu\n",
           (unsigned long long)report.checkpoints,
           (unsigned long long)report.last_checkpoint_seq);
    if (report.unreadable > 0)
        printf("unreadable entries: %llu, the first at seq %llu: events whose queued row the "
               "key server could not read; their content is in the row each names "
               "(FORMATS.md section 7.5)\n",
               (unsigned long long)report.unreadable,
               (unsigned long long)report.first_unreadable_seq);
    if (report.last_checkpoint_seq < report.last_seq)
        printf("entries after seq %llu are not yet covered by a checkpoint\n",
               (unsigned long long)report.last_checkpoint_seq);
    if (report.keys_from_export)
        fprintf(stderr,
                "secmedia ledger: note: checkpoints were checked with the keys inside the "
                "export; give --jwks with the key server's published JWKS to check them "
                "against keys you trust\n");
    return CLI_EXIT_OK;
}

static int ledger_verify(int argc, char **argv)
{
    static const struct option opts[] = {{"jwks", required_argument, NULL, 'j'},
                                          {"issuer", required_argument, NULL, 'i'},
                                          {"checkpoint", required_argument, NULL, 'c'},
                                          {"help", no_argument, NULL, 'h'},
                                          {NULL, 0, NULL, 0}};
    const char *jwks_path = NULL, *issuer = NULL;
    const char *checkpoint_paths[LEDGER_MAX_CHECKPOINT_FILES];
    size_t n_checkpoints = 0;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'j': jwks_path = optarg; break;
        case 'i': issuer = optarg; break;
        case 'c':
            if (n_checkpoints == LEDGER_MAX_CHECKPOINT_FILES)
                return cli_usage_error("ledger", "at most %d --checkpoint files",
                                       LEDGER_MAX_CHECKPOINT_FILES);
            checkpoint_paths[n_checkpoints++] = optarg;
            break;
        case 'h': ledger_help(); return CLI_EXIT_OK;
        default: return cli_usage_error("ledger", "invalid option");
        }
    }
    if (optind + 1 != argc)
        return cli_usage_error("ledger", "exactly one export file is expected");
    if (n_checkpoints > 0 && (jwks_path == NULL || issuer == NULL))
        return cli_usage_error("ledger", "--checkpoint needs --jwks and --issuer");
    const char *path = argv[optind];

    sm_error err = {0};
    sm_jwks *trusted = NULL;
    if (jwks_path != NULL) {
        char *text = read_small_file(jwks_path, SM_JOSE_MAX_TOKEN, &err);
        if (text == NULL)
            return cli_fail("ledger", &err, CLI_EXIT_INPUT);
        sm_status st = sm_jwks_from_json(text, strlen(text), &trusted, &err);
        free(text);
        if (st != SM_OK) {
            cli_error("ledger", "%s: %s", jwks_path, err.message);
            return CLI_EXIT_KEY;
        }
    }
    sm_ks_ledger_verifier *v = NULL;
    if (sm_ks_ledger_verifier_new(trusted, issuer, &v, &err) != SM_OK) {
        sm_jwks_free(trusted);
        return cli_fail("ledger", &err, CLI_EXIT_INPUT);
    }
    int rc = CLI_EXIT_OK;
    for (size_t i = 0; i < n_checkpoints && rc == CLI_EXIT_OK; i++) {
        char *token = read_small_file(checkpoint_paths[i], SM_JOSE_MAX_TOKEN, &err);
        if (token == NULL) {
            rc = cli_fail("ledger", &err, CLI_EXIT_INPUT);
            break;
        }
        sm_status st = sm_ks_ledger_verifier_add_checkpoint(v, token, strlen(token), &err);
        free(token);
        if (st != SM_OK) {
            cli_error("ledger", "%s: not a checkpoint of this key server: %s",
                      checkpoint_paths[i], err.message);
            rc = cli_exit_code(st, CLI_EXIT_INPUT);
        }
    }
    if (rc == CLI_EXIT_OK) {
        FILE *in = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
        if (in == NULL) {
            cli_error("ledger", "cannot open %s: %s", path, strerror(errno));
            rc = CLI_EXIT_INPUT;
        } else {
            rc = verify_stream(in, strcmp(path, "-") == 0 ? "standard input" : path, v);
            if (in != stdin)
                fclose(in);
        }
    }
    sm_ks_ledger_verifier_free(v);
    sm_jwks_free(trusted);
    return rc;
}

int cmd_ledger(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "verify") == 0)
        return ledger_verify(argc - 1, argv + 1);
    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        ledger_help();
        return CLI_EXIT_OK;
    }
    return cli_usage_error("ledger", argc < 2 ? "a subcommand is expected: verify"
                                              : "unknown subcommand; expected: verify");
}
