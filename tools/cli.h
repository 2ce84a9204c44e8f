/* Shared pieces of the `secmedia` command line tool. */
#ifndef SM_CLI_H
#define SM_CLI_H

#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "sm_error.h"

/* Exit codes: documented in docs/CLI.md and in `secmedia --help`. */
enum {
    CLI_EXIT_OK = 0,
    CLI_EXIT_FAILURE = 1,   /* internal or unexpected error */
    CLI_EXIT_USAGE = 2,     /* bad command line */
    CLI_EXIT_INPUT = 3,     /* an input file cannot be read */
    CLI_EXIT_FORMAT = 4,    /* an input is not a valid container/key/steering file */
    CLI_EXIT_AUTH = 5,      /* authentication failed: wrong key, tampered or truncated data */
    CLI_EXIT_OUTPUT = 6,    /* an output cannot be written */
    CLI_EXIT_KEY = 7,       /* a key is missing, unreadable or unsuitable */
    CLI_EXIT_EXTERNAL = 8   /* ffmpeg missing or failed; a server unreachable or refusing */
};

int cmd_keygen(int argc, char **argv);
int cmd_pack(int argc, char **argv);
int cmd_inspect(int argc, char **argv);
int cmd_unpack(int argc, char **argv);
int cmd_verify(int argc, char **argv);
int cmd_ledger(int argc, char **argv);
int cmd_publish(int argc, char **argv);
int cmd_fetch(int argc, char **argv);

/* Prints "secmedia <cmd>: <message>" to stderr. */
void cli_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prints the library error and returns the exit code matching its status. */
int cli_fail(const char *cmd, const sm_error *err, int default_code);
/* Exit code for a library status, given the code for I/O errors (which
 * side, input or output, depends on the call). */
int cli_exit_code(sm_status st, int io_code);
/* Usage error: message plus a pointer to --help. */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* An output file that appears only when complete: data goes to a temporary
 * file beside it (mode 0600 while written), moved into place by commit with
 * the final mode (minus the umask) and without replacing an existing file
 * unless overwrite; abort (or a fatal signal) removes it. Several can be
 * open at once, so a command can prepare all its outputs and commit them
 * together at the end. "-" means standard output. */
typedef struct cli_outfile {
    char path[4096];
    char tmp_path[4096];
    int fd;
    int is_stdout;
    int open;
    int overwrite;
    mode_t mode;
} cli_outfile;

int cli_outfile_open(cli_outfile *o, const char *path, mode_t mode, int overwrite, sm_error *err);
/* Writes len bytes to the outfile. */
int cli_outfile_write(cli_outfile *o, const void *data, size_t len, sm_error *err);
int cli_outfile_commit(cli_outfile *o, sm_error *err);
void cli_outfile_abort(cli_outfile *o);

/* Parses a non-negative decimal integer (no sign, no junk, no overflow). */
int cli_parse_u64(const char *s, uint64_t max, uint64_t *out);

/* Guesses a media type from a file name's extension; NULL when unknown. */
const char *cli_media_type_for(const char *path);

/* Returns the final path component (no allocation). */
const char *cli_basename(const char *path);

#endif
