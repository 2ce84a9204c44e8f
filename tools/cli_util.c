#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "sm_file.h"
#include "sm_io.h"

void cli_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "secmedia %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "secmedia %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry 'secmedia %s --help'.\n", cmd);
    return CLI_EXIT_USAGE;
}

int cli_exit_code(sm_status st, int io_code)
{
    switch (st) {
    case SM_OK: return CLI_EXIT_OK;
    case SM_ERR_ARG: return CLI_EXIT_USAGE;
    case SM_ERR_IO: return io_code;
    case SM_ERR_FORMAT:
    case SM_ERR_UNSUPPORTED:
    case SM_ERR_TOO_LARGE: return CLI_EXIT_FORMAT;
    case SM_ERR_TRUNCATED:
    case SM_ERR_AUTH: return CLI_EXIT_AUTH;
    case SM_ERR_KEY: return CLI_EXIT_KEY;
    case SM_ERR_EXPIRED:
    case SM_ERR_CLAIM: return CLI_EXIT_AUTH;
    case SM_ERR_NOMEM:
    case SM_ERR_CRYPTO:
    case SM_ERR_STATE:
    case SM_ERR_UNAVAILABLE:
    case SM_ERR_CONFLICT:
    case SM_ERR_DUPLICATE:
    case SM_ERR_NOT_FOUND:
    case SM_ERR_DB: return CLI_EXIT_FAILURE;
    }
    return CLI_EXIT_FAILURE;
}

int cli_fail(const char *cmd, const sm_error *err, int io_code)
{
    cli_error(cmd, "%s", err->message[0] ? err->message : sm_status_name(err->status));
    return cli_exit_code(err->status, io_code);
}

/* Temporary files a command has open; removed if a fatal signal arrives so
 * an interrupted run leaves nothing behind. Fixed slots: the handler must
 * not allocate. */
#define CLEANUP_SLOTS 8
static char cleanup_paths[CLEANUP_SLOTS][4096];
static volatile sig_atomic_t cleanup_armed[CLEANUP_SLOTS];

static void cleanup_on_signal(int sig)
{
    for (int i = 0; i < CLEANUP_SLOTS; i++) {
        if (cleanup_armed[i])
            unlink(cleanup_paths[i]);
    }
    signal(sig, SIG_DFL);
    raise(sig);
}

static void install_cleanup_handler(void)
{
    static int installed;
    if (installed)
        return;
    installed = 1;
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = cleanup_on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    sigaction(SIGPIPE, &sa, NULL);
}

static int arm_cleanup(const char *path)
{
    size_t n = strlen(path);
    install_cleanup_handler();
    for (int i = 0; i < CLEANUP_SLOTS; i++) {
        if (!cleanup_armed[i] && n < sizeof(cleanup_paths[i])) {
            memcpy(cleanup_paths[i], path, n + 1);
            cleanup_armed[i] = 1;
            return 0;
        }
    }
    return -1;
}

static void disarm_cleanup(const char *path)
{
    for (int i = 0; i < CLEANUP_SLOTS; i++) {
        if (cleanup_armed[i] && strcmp(cleanup_paths[i], path) == 0)
            cleanup_armed[i] = 0;
    }
}

static mode_t current_umask(void)
{
    mode_t m = umask(0);
    umask(m);
    return m;
}

int cli_outfile_open(cli_outfile *o, const char *path, mode_t mode, int overwrite, sm_error *err)
{
    struct stat st;
    memset(o, 0, sizeof(*o));
    o->fd = -1;
    if (strcmp(path, "-") == 0) {
        o->is_stdout = 1;
        o->fd = STDOUT_FILENO;
        o->open = 1;
        snprintf(o->path, sizeof(o->path), "standard output");
        return 0;
    }
    if ((size_t)snprintf(o->path, sizeof(o->path), "%s", path) >= sizeof(o->path) ||
        (size_t)snprintf(o->tmp_path, sizeof(o->tmp_path), "%s.part.XXXXXX", path) >=
            sizeof(o->tmp_path)) {
        sm_error_set(err, SM_ERR_ARG, "output path is too long");
        return -1;
    }
    /* Early, friendly refusal; the final install refuses atomically too. */
    if (!overwrite && stat(path, &st) == 0) {
        sm_error_set(err, SM_ERR_IO, "%s already exists (use --force to replace it)", path);
        return -1;
    }
    o->overwrite = overwrite;
    o->mode = mode & ~current_umask();
    o->fd = mkstemp(o->tmp_path); /* 0600 until complete */
    if (o->fd < 0) {
        sm_error_set(err, SM_ERR_IO, "cannot create a file next to %s: %s", path,
                     strerror(errno));
        return -1;
    }
    if (arm_cleanup(o->tmp_path) != 0) {
        cli_outfile_abort(o);
        sm_error_set(err, SM_ERR_STATE, "too many output files at once");
        return -1;
    }
    o->open = 1;
    return 0;
}

int cli_outfile_write(cli_outfile *o, const void *data, size_t len, sm_error *err)
{
    sm_fd_io sink = {o->fd, o->path};
    return sm_fd_write(&sink, data, len, err) == SM_OK ? 0 : -1;
}

int cli_outfile_commit(cli_outfile *o, sm_error *err)
{
    if (!o->open)
        return -1;
    o->open = 0;
    if (o->is_stdout)
        return 0;
    int failed = fchmod(o->fd, o->mode) != 0 || fsync(o->fd) != 0;
    if (close(o->fd) != 0)
        failed = 1;
    o->fd = -1;
    if (failed) {
        sm_error_set(err, SM_ERR_IO, "cannot write %s: %s", o->path, strerror(errno));
    } else if (sm_file_install(o->tmp_path, o->path, o->overwrite, err) == SM_OK) {
        disarm_cleanup(o->tmp_path);
        o->tmp_path[0] = '\0'; /* installed: nothing left to remove */
        return 0;
    }
    unlink(o->tmp_path);
    disarm_cleanup(o->tmp_path);
    return -1;
}

void cli_outfile_abort(cli_outfile *o)
{
    if (o->is_stdout || o->tmp_path[0] == '\0')
        return;
    if (o->fd >= 0)
        close(o->fd);
    o->fd = -1;
    unlink(o->tmp_path);
    o->open = 0;
    disarm_cleanup(o->tmp_path);
    o->tmp_path[0] = '\0';
}

int cli_parse_u64(const char *s, uint64_t max, uint64_t *out)
{
    if (s == NULL || *s < '0' || *s > '9')
        return -1;
    errno = 0;
    char *end = NULL;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v > max)
        return -1;
    *out = v;
    return 0;
}

const char *cli_basename(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash != NULL ? slash + 1 : path;
}

const char *cli_media_type_for(const char *path)
{
    static const struct {
        const char *ext;
        const char *type;
    } types[] = {
        {"ogg", "audio/ogg"},   {"oga", "audio/ogg"},       {"opus", "audio/ogg"},
        {"mp3", "audio/mpeg"},  {"flac", "audio/flac"},     {"m4a", "audio/mp4"},
        {"aac", "audio/aac"},   {"wav", "audio/wav"},       {"mp4", "video/mp4"},
        {"m4v", "video/mp4"},   {"mkv", "video/x-matroska"}, {"mka", "audio/x-matroska"},
        {"webm", "video/webm"}, {"ogv", "video/ogg"},
    };
    const char *base = cli_basename(path);
    const char *dot = strrchr(base, '.');
    if (dot == NULL)
        return NULL;
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
        if (strcasecmp(dot + 1, types[i].ext) == 0)
            return types[i].type;
    }
    return NULL;
}
