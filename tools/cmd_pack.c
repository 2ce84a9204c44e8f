/* secmedia pack: encrypt a media file under a fresh random media key. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"
#include "progress.h"
#include "sm_container.h"
#include "sm_jose.h"
#include "sm_keyfile.h"
#include "sm_validate.h"

extern char **environ;

#define PACK_BLOCK (1024u * 1024u)
#define PREVIEW_MAX_SECONDS 600u

static void pack_help(void)
{
    printf(
        "Usage: secmedia pack IN -o OUT.smc --work-id ID [options]\n\n"
        "Encrypts IN into the container OUT.smc with a new random 256-bit media key.\n"
        "The key must go somewhere: --key-out, --recipient, or both.\n\n"
        "  -o, --output OUT        container to write (required); - streams it to\n"
        "                          standard output (then --jwe-out and --preview-out\n"
        "                          must be given explicitly)\n"
        "      --work-id ID        work id: 1-64 of [A-Za-z0-9._-] (required)\n"
        "      --type MIME         media type of IN (default: from the file extension)\n"
        "      --key-version N     key version recorded in the header (default 1)\n"
        "      --key-out FILE      write the media key as a JWK to FILE (mode 0600)\n"
        "      --recipient JWK     wrap the media key as a JWE to this public key\n"
        "                          (e.g. the key server's encryption key)\n"
        "      --jwe-out FILE      where the JWE goes (default OUT.smc.jwe)\n"
        "      --preview SECONDS   also make a low-bitrate unencrypted preview of the\n"
        "                          first SECONDS seconds with ffmpeg\n"
        "      --preview-out FILE  preview file (default OUT.preview.ogg, or .webm for video)\n"
        "      --force             replace existing output files\n");
}

typedef struct pack_args {
    const char *input, *output, *work_id, *media_type, *key_out, *recipient, *jwe_out;
    const char *preview_out;
    uint64_t key_version, preview_seconds;
    int force;
} pack_args;

/* Searches PATH like execvp would, so a missing ffmpeg is reported before
 * any work is done. */
static int find_in_path(const char *prog)
{
    const char *path = getenv("PATH");
    char candidate[4096];
    if (path == NULL)
        path = "/usr/local/bin:/usr/bin:/bin";
    while (*path) {
        size_t len = strcspn(path, ":");
        if ((size_t)snprintf(candidate, sizeof(candidate), "%.*s/%s", (int)len, path, prog) <
                sizeof(candidate) &&
            access(candidate, X_OK) == 0)
            return 1;
        path += len;
        if (*path == ':')
            path++;
    }
    return 0;
}

/* Runs ffmpeg (no shell) to make the preview into out's temporary file;
 * committed with the other outputs once everything succeeded. */
static int make_preview(const pack_args *a, int is_video, cli_outfile *out)
{
    char seconds[24];
    sm_error err = {0};
    snprintf(seconds, sizeof(seconds), "%llu", (unsigned long long)a->preview_seconds);
    if (cli_outfile_open(out, a->preview_out, 0644, a->force, &err) != 0)
        return cli_fail("pack", &err, CLI_EXIT_OUTPUT);

    const char *audio_args[] = {"ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error",
                                "-y", "-i", a->input, "-t", seconds, "-map", "0:a:0", "-vn",
                                "-c:a", "libopus", "-b:a", "48k", "-f", "ogg", out->tmp_path, NULL};
    const char *video_args[] = {"ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
                                "-i", a->input, "-t", seconds, "-map", "0:v:0", "-map", "0:a:0?",
                                "-vf", "scale=-2:240", "-c:v", "libvpx", "-b:v", "300k",
                                "-deadline", "realtime", "-c:a", "libopus", "-b:a", "48k",
                                "-f", "webm", out->tmp_path, NULL};
    pid_t pid;
    int status = 0;
    int rc = posix_spawnp(&pid, "ffmpeg", NULL, NULL,
                          (char *const *)(is_video ? video_args : audio_args), environ);
    if (rc != 0) {
        cli_outfile_abort(out);
        cli_error("pack", "cannot run ffmpeg for --preview: %s; install it with: apt-get install "
                          "ffmpeg",
                  strerror(rc));
        return CLI_EXIT_EXTERNAL;
    }
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        cli_outfile_abort(out);
        cli_error("pack", "ffmpeg could not make a preview of %s (see its message above); "
                          "nothing was written",
                  a->input);
        return CLI_EXIT_EXTERNAL;
    }
    return CLI_EXIT_OK;
}

static int parse_pack_args(int argc, char **argv, pack_args *a)
{
    static const struct option opts[] = {
        {"output", required_argument, NULL, 'o'},    {"work-id", required_argument, NULL, 'w'},
        {"type", required_argument, NULL, 't'},      {"key-version", required_argument, NULL, 'v'},
        {"key-out", required_argument, NULL, 'k'},   {"recipient", required_argument, NULL, 'r'},
        {"jwe-out", required_argument, NULL, 'j'},   {"preview", required_argument, NULL, 'p'},
        {"preview-out", required_argument, NULL, 'P'}, {"force", no_argument, NULL, 'f'},
        {"help", no_argument, NULL, 'h'},            {NULL, 0, NULL, 0}};
    int c;
    memset(a, 0, sizeof(*a));
    a->key_version = 1;
    while ((c = getopt_long(argc, argv, "o:fh", opts, NULL)) != -1) {
        switch (c) {
        case 'o': a->output = optarg; break;
        case 'w': a->work_id = optarg; break;
        case 't': a->media_type = optarg; break;
        case 'k': a->key_out = optarg; break;
        case 'r': a->recipient = optarg; break;
        case 'j': a->jwe_out = optarg; break;
        case 'P': a->preview_out = optarg; break;
        case 'f': a->force = 1; break;
        case 'v':
            if (cli_parse_u64(optarg, UINT32_MAX, &a->key_version) != 0 || a->key_version == 0)
                return cli_usage_error("pack", "--key-version must be an integer from 1 to %u",
                                       UINT32_MAX);
            break;
        case 'p':
            if (cli_parse_u64(optarg, PREVIEW_MAX_SECONDS, &a->preview_seconds) != 0 ||
                a->preview_seconds == 0)
                return cli_usage_error("pack", "--preview takes a number of seconds from 1 to %u",
                                       PREVIEW_MAX_SECONDS);
            break;
        case 'h': pack_help(); return -1;
        default: return cli_usage_error("pack", "invalid option");
        }
    }
    if (optind + 1 != argc)
        return cli_usage_error("pack", optind == argc ? "missing input file"
                                                      : "exactly one input file is expected");
    a->input = argv[optind];
    if (a->output == NULL)
        return cli_usage_error("pack", "missing -o OUT.smc");
    if (a->work_id == NULL)
        return cli_usage_error("pack", "missing --work-id ID");
    if (a->key_out == NULL && a->recipient == NULL)
        return cli_usage_error("pack", "the media key needs a destination: --key-out FILE "
                                       "and/or --recipient JWK");
    if (a->jwe_out != NULL && a->recipient == NULL)
        return cli_usage_error("pack", "--jwe-out needs --recipient");
    if (a->preview_out != NULL && a->preview_seconds == 0)
        return cli_usage_error("pack", "--preview-out needs --preview SECONDS");
    if (strcmp(a->output, "-") == 0 && ((a->recipient != NULL && a->jwe_out == NULL) ||
                                        (a->preview_seconds > 0 && a->preview_out == NULL)))
        return cli_usage_error("pack", "with -o - the JWE and preview need explicit "
                                       "--jwe-out FILE / --preview-out FILE");
    if (strcmp(a->output, "-") == 0 && isatty(STDOUT_FILENO))
        return cli_usage_error("pack", "refusing to write a binary container to a terminal; "
                                       "redirect standard output or give -o FILE");
    return 0;
}

/* Streams the input through the container writer. */
static int encrypt_input(const pack_args *a, int in_fd, const sm_container_meta *meta,
                         const sm_secret *key, cli_outfile *out)
{
    sm_error err = {0};
    sm_fd_io sink = {out->fd, a->output};
    sm_container_writer *w = NULL;
    uint8_t *buf = malloc(PACK_BLOCK);
    progress bar;
    uint64_t done = 0;
    int rc = CLI_EXIT_OK;

    if (buf == NULL) {
        cli_error("pack", "out of memory");
        return CLI_EXIT_FAILURE;
    }
    progress_start(&bar, "packing", meta->plaintext_length);
    if (sm_container_writer_new(meta, key, sm_fd_write, &sink, &w, &err) != SM_OK) {
        rc = cli_fail("pack", &err, CLI_EXIT_OUTPUT);
        goto out;
    }
    for (;;) {
        ssize_t n = read(in_fd, buf, PACK_BLOCK);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            cli_error("pack", "cannot read %s: %s", a->input, strerror(errno));
            rc = CLI_EXIT_INPUT;
            goto out;
        }
        if (n == 0)
            break;
        if (sm_container_writer_write(w, buf, (size_t)n, &err) != SM_OK) {
            rc = cli_fail("pack", &err, CLI_EXIT_OUTPUT);
            goto out;
        }
        done += (uint64_t)n;
        progress_update(&bar, done);
    }
    if (sm_container_writer_finish(w, &err) != SM_OK) {
        if (err.status == SM_ERR_STATE)
            cli_error("pack", "%s changed size while being packed; try again", a->input);
        else
            cli_fail("pack", &err, CLI_EXIT_OUTPUT);
        rc = err.status == SM_ERR_STATE ? CLI_EXIT_INPUT : cli_exit_code(err.status, CLI_EXIT_OUTPUT);
    }
out:
    progress_finish(&bar);
    sm_container_writer_free(w);
    free(buf);
    return rc;
}

/* Wraps the key to the recipient into out's temporary file. The JWE kid
 * names the recipient's key (RFC 7516): its own kid, else its thumbprint. */
static int prepare_jwe(const pack_args *a, const sm_jwk *recipient, const sm_secret *key,
                       const char *path, cli_outfile *out)
{
    sm_error err = {0};
    char *jwe = NULL;
    char jkt[44];
    const char *kid = sm_jwk_kid(recipient);
    if (kid == NULL || kid[0] == '\0') {
        if (sm_jwk_thumbprint(recipient, jkt, &err) != SM_OK)
            return cli_fail("pack", &err, CLI_EXIT_KEY);
        kid = jkt;
    }
    if (sm_jwe_wrap_key(recipient, key, kid, &jwe, &err) != SM_OK)
        return cli_fail("pack", &err, CLI_EXIT_KEY);
    int ok = cli_outfile_open(out, path, 0644, a->force, &err) == 0 &&
             cli_outfile_write(out, jwe, strlen(jwe), &err) == 0 &&
             cli_outfile_write(out, "\n", 1, &err) == 0;
    free(jwe);
    if (!ok) {
        cli_outfile_abort(out);
        return cli_fail("pack", &err, CLI_EXIT_OUTPUT);
    }
    return CLI_EXIT_OK;
}

/* Writes the media key file into out's temporary file (mode 0600). */
static int prepare_key_file(const pack_args *a, const sm_secret *key, const char *kid,
                            cli_outfile *out)
{
    sm_error err = {0};
    sm_secret *doc = NULL;
    if (sm_keyfile_encode(key, kid, &doc, &err) != SM_OK)
        return cli_fail("pack", &err, CLI_EXIT_FAILURE);
    int ok = cli_outfile_open(out, a->key_out, 0600, a->force, &err) == 0 &&
             cli_outfile_write(out, doc->bytes, doc->len, &err) == 0;
    sm_secret_free(doc);
    if (!ok) {
        cli_outfile_abort(out);
        return cli_fail("pack", &err, CLI_EXIT_OUTPUT);
    }
    return CLI_EXIT_OK;
}

int cmd_pack(int argc, char **argv)
{
    pack_args a;
    sm_error err = {0};
    sm_container_meta meta;
    struct stat st;
    char kid[128];
    char preview_default[4096], jwe_default[4096];
    /* Every output is prepared in a temporary file; none is installed until
     * all of them are complete, so a failure (even with --force) never
     * leaves a container without its key or replaces a key file early. */
    enum { OUT_KEY, OUT_JWE, OUT_PREVIEW, OUT_CONTAINER, OUT_COUNT };
    cli_outfile outs[OUT_COUNT];
    const char *jwe_path = NULL;
    sm_secret *key = NULL;
    sm_jwk *recipient = NULL;
    int in_fd = -1;
    int rc = parse_pack_args(argc, argv, &a);
    if (rc != 0)
        return rc < 0 ? CLI_EXIT_OK : rc;

    memset(&meta, 0, sizeof(meta));
    memset(outs, 0, sizeof(outs));
    for (int i = 0; i < OUT_COUNT; i++)
        outs[i].fd = -1;
    if (sm_validate_work_id(a.work_id, "--work-id", &err) != SM_OK)
        return cli_usage_error("pack", "%s", err.message);
    if (a.media_type == NULL && (a.media_type = cli_media_type_for(a.input)) == NULL)
        return cli_usage_error("pack", "cannot tell the media type of %s from its name; "
                                       "give it with --type (e.g. audio/ogg)", a.input);
    if (sm_validate_media_type(a.media_type, "--type", &err) != SM_OK)
        return cli_usage_error("pack", "%s", err.message);
    int is_video = strncmp(a.media_type, "video/", 6) == 0;
    if (a.preview_seconds > 0 && a.preview_out == NULL) {
        size_t stem = strlen(a.output);
        if (stem > 4 && strcmp(a.output + stem - 4, ".smc") == 0)
            stem -= 4;
        snprintf(preview_default, sizeof(preview_default), "%.*s.preview.%s", (int)stem,
                 a.output, is_video ? "webm" : "ogg");
        a.preview_out = preview_default;
    }
    if (a.recipient != NULL) {
        snprintf(jwe_default, sizeof(jwe_default), "%s.jwe", a.output);
        jwe_path = a.jwe_out != NULL ? a.jwe_out : jwe_default;
    }
    if (a.preview_seconds > 0 && !find_in_path("ffmpeg")) {
        cli_error("pack", "--preview needs ffmpeg, which is not installed (not found in PATH); "
                          "install it with: apt-get install ffmpeg");
        return CLI_EXIT_EXTERNAL;
    }
    /* A bad recipient is found before any work is done. */
    if (a.recipient != NULL && sm_jwk_load_file(a.recipient, &recipient, &err) != SM_OK)
        return cli_fail("pack", &err, CLI_EXIT_KEY);

    in_fd = open(a.input, O_RDONLY | O_CLOEXEC);
    if (in_fd < 0) {
        cli_error("pack", "cannot open %s: %s", a.input, strerror(errno));
        rc = CLI_EXIT_INPUT;
        goto done;
    }
    if (fstat(in_fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        cli_error("pack", "%s is not a regular file (the size must be known up front)", a.input);
        rc = CLI_EXIT_INPUT;
        goto done;
    }
    posix_fadvise(in_fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    snprintf(meta.work_id, sizeof(meta.work_id), "%s", a.work_id);
    snprintf(meta.media_type, sizeof(meta.media_type), "%s", a.media_type);
    meta.key_version = (uint32_t)a.key_version;
    meta.plaintext_length = (uint64_t)st.st_size;
    if ((size_t)snprintf(meta.original_name, sizeof(meta.original_name), "%s",
                         cli_basename(a.input)) >= sizeof(meta.original_name) ||
        sm_validate_file_name(meta.original_name, SM_ORIGINAL_NAME_MAX, "input file name",
                              &err) != SM_OK) {
        cli_error("pack", "the input file name cannot be stored in the header (%s); rename it",
                  err.message[0] ? err.message : "too long");
        rc = CLI_EXIT_USAGE;
        goto done;
    }
    snprintf(kid, sizeof(kid), "%s:%u", meta.work_id, meta.key_version);

    if (a.preview_seconds > 0 &&
        (rc = make_preview(&a, is_video, &outs[OUT_PREVIEW])) != CLI_EXIT_OK)
        goto done;
    key = sm_secret_random(SM_MEDIA_KEY_SIZE);
    if (key == NULL) {
        cli_error("pack", "cannot generate a media key (random generator or memory failure)");
        rc = CLI_EXIT_FAILURE;
        goto done;
    }
    if (cli_outfile_open(&outs[OUT_CONTAINER], a.output, 0644, a.force, &err) != 0) {
        rc = cli_fail("pack", &err, CLI_EXIT_OUTPUT);
        goto done;
    }
    rc = encrypt_input(&a, in_fd, &meta, key, &outs[OUT_CONTAINER]);
    if (rc == CLI_EXIT_OK && a.key_out != NULL)
        rc = prepare_key_file(&a, key, kid, &outs[OUT_KEY]);
    if (rc == CLI_EXIT_OK && recipient != NULL)
        rc = prepare_jwe(&a, recipient, key, jwe_path, &outs[OUT_JWE]);
    /* Install: keys first, the container last (it is useless without them). */
    for (int i = 0; rc == CLI_EXIT_OK && i < OUT_COUNT; i++) {
        if (outs[i].open && cli_outfile_commit(&outs[i], &err) != 0)
            rc = cli_fail("pack", &err, CLI_EXIT_OUTPUT);
    }
    if (rc == CLI_EXIT_OK) {
        if (a.preview_seconds > 0)
            fprintf(stderr, "secmedia pack: preview written to %s\n", a.preview_out);
        if (recipient != NULL)
            fprintf(stderr, "secmedia pack: media key wrapped for %s written to %s\n",
                    a.recipient, jwe_path);
        fprintf(stderr, "secmedia pack: %s: %llu bytes encrypted in %llu chunks\n", a.output,
                (unsigned long long)meta.plaintext_length,
                (unsigned long long)sm_container_chunk_count(meta.plaintext_length));
    }
done:
    for (int i = 0; i < OUT_COUNT; i++)
        cli_outfile_abort(&outs[i]);
    sm_secret_free(key);
    sm_jwk_free(recipient);
    if (in_fd >= 0)
        close(in_fd);
    return rc;
}
