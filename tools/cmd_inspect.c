/* secmedia inspect: what a container holds, without its key. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "cli.h"
#include "sm_container.h"

static void inspect_help(void)
{
    printf("Usage: secmedia inspect [--json] FILE.smc\n\n"
           "Shows the container header (work id, key version, media type, original\n"
           "name, plaintext length), the chunk count and whether the file size matches\n"
           "the header. Needs no key, so nothing here is authenticated: use\n"
           "'secmedia verify' for that.\n\n"
           "  --json   print one JSON object instead of text\n");
}

int cmd_inspect(int argc, char **argv)
{
    static const struct option opts[] = {{"json", no_argument, NULL, 'j'},
                                          {"help", no_argument, NULL, 'h'},
                                          {NULL, 0, NULL, 0}};
    int as_json = 0, c;
    sm_error err = {0};
    struct stat st;

    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'j': as_json = 1; break;
        case 'h': inspect_help(); return CLI_EXIT_OK;
        default: return cli_usage_error("inspect", "invalid option");
        }
    }
    if (optind + 1 != argc)
        return cli_usage_error("inspect", "exactly one container file is expected");
    const char *path = argv[optind];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) != 0) {
        cli_error("inspect", "cannot open %s: %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return CLI_EXIT_INPUT;
    }
    sm_fd_io src = {fd, path};
    sm_container_header *hdr = NULL;
    if (sm_container_header_read_at(sm_fd_read_at, &src, &hdr, &err) != SM_OK) {
        close(fd);
        cli_error("inspect", "%s: %s", path, err.message);
        return cli_exit_code(err.status, CLI_EXIT_INPUT);
    }
    close(fd);

    const sm_container_meta *m = &hdr->meta;
    uint64_t expected = sm_container_file_size(hdr->len, m->plaintext_length);
    uint64_t chunks = sm_container_chunk_count(m->plaintext_length);
    uint64_t actual = (uint64_t)st.st_size;
    const char *size_state = actual == expected ? "ok"
                             : actual < expected ? "truncated"
                                                 : "trailing-data";
    if (as_json) {
        json_t *o = json_pack("{s:i,s:I,s:s,s:I,s:s,s:s,s:I,s:I,s:I,s:I,s:s}", "format_version",
                              (int)SM_CONTAINER_VERSION, "header_length", (json_int_t)hdr->len,
                              "work_id", m->work_id, "key_version", (json_int_t)m->key_version,
                              "media_type", m->media_type, "original_name", m->original_name,
                              "plaintext_length", (json_int_t)m->plaintext_length, "chunk_count",
                              (json_int_t)chunks, "expected_file_size", (json_int_t)expected,
                              "file_size", (json_int_t)actual, "size_check", size_state);
        char *s = o != NULL ? json_dumps(o, JSON_INDENT(2) | JSON_SORT_KEYS) : NULL;
        if (s != NULL)
            printf("%s\n", s);
        free(s);
        json_decref(o);
    } else {
        printf("file:             %s\n"
               "format version:   %u\n"
               "header length:    %zu bytes\n"
               "work id:          %s\n"
               "key version:      %u\n"
               "media type:       %s\n"
               "original name:    %s\n"
               "plaintext length: %llu bytes\n"
               "chunks:           %llu of %u bytes (+16-byte tag each)\n"
               "file size:        %llu bytes (header implies %llu: %s)\n",
               path, SM_CONTAINER_VERSION, hdr->len, m->work_id, m->key_version, m->media_type,
               m->original_name, (unsigned long long)m->plaintext_length,
               (unsigned long long)chunks, SM_CHUNK_PLAIN_SIZE, (unsigned long long)actual,
               (unsigned long long)expected, size_state);
    }
    sm_container_header_free(hdr);
    if (actual != expected) {
        cli_error("inspect", "%s: the file is %llu bytes but its header implies %llu: %s", path,
                  (unsigned long long)actual, (unsigned long long)expected,
                  actual < expected ? "it was truncated (download or copy it again)"
                                    : "it has extra bytes at the end");
        return CLI_EXIT_FORMAT;
    }
    return CLI_EXIT_OK;
}
