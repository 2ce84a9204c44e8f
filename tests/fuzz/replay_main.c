/* Corpus replayer: the main() of every fuzz target in the normal build.
 *
 * `fuzz_x FILE|DIR...` feeds each file (a directory's regular files,
 * non-recursively, in byte order of their names, skipping dot files) to
 * LLVMFuzzerTestOneInput, the same entry point libFuzzer calls. Each input
 * gets its own exactly-sized heap copy so a sanitizer build catches reads
 * past its end. A crash or sanitizer report fails the run; otherwise the
 * program prints how many inputs it replayed and exits 0. Arguments that
 * start with '-' (libFuzzer options) are ignored so the same command line
 * works with both builds. */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
/* Optional in a target: libFuzzer calls it once before the first input. */
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

/* Inputs larger than this are a mistake in the corpus, not a test. */
#define REPLAY_MAX_INPUT (16 * 1024 * 1024)

static const char *prog = "replay";

static int read_input(const char *path, uint8_t **data, size_t *size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        fprintf(stderr, "%s: cannot open %s: %s\n", prog, path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > REPLAY_MAX_INPUT) {
        fprintf(stderr, "%s: %s is not a regular file of at most %d bytes\n", prog, path,
                REPLAY_MAX_INPUT);
        close(fd);
        return -1;
    }
    size_t len = (size_t)st.st_size;
    /* malloc(0) may return NULL; a 1-byte allocation keeps "empty" distinct
     * from "failed" and still has no readable byte inside the input. */
    uint8_t *buf = malloc(len > 0 ? len : 1);
    if (buf == NULL) {
        fprintf(stderr, "%s: out of memory reading %s\n", prog, path);
        close(fd);
        return -1;
    }
    size_t got = 0;
    while (got < len) {
        ssize_t n = read(fd, buf + got, len - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            fprintf(stderr, "%s: cannot read %s: %s\n", prog, path,
                    n < 0 ? strerror(errno) : "file shrank while reading");
            free(buf);
            close(fd);
            return -1;
        }
        got += (size_t)n;
    }
    close(fd);
    *data = buf;
    *size = len;
    return 0;
}

static int run_file(const char *path)
{
    uint8_t *data = NULL;
    size_t size = 0;
    if (read_input(path, &data, &size) != 0)
        return -1;
    /* Named before the call so a crash report can be traced to its input. */
    fprintf(stderr, "%s: running %s (%zu bytes)\n", prog, path, size);
    LLVMFuzzerTestOneInput(data, size);
    free(data);
    return 0;
}

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void free_names(char **names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

/* Replays a directory's regular files; returns the count or -1. */
static long run_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (d == NULL) {
        fprintf(stderr, "%s: cannot open directory %s: %s\n", prog, dir, strerror(errno));
        return -1;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            char **bigger = realloc(names, cap * sizeof(*names));
            if (bigger == NULL)
                goto nomem;
            names = bigger;
        }
        names[n] = strdup(e->d_name);
        if (names[n] == NULL)
            goto nomem;
        n++;
    }
    closedir(d);
    qsort(names, n, sizeof(*names), compare_names);

    long count = 0;
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(dir) + 1 + strlen(names[i]) + 1;
        char *path = malloc(len);
        if (path == NULL) {
            free_names(names, n);
            fprintf(stderr, "%s: out of memory\n", prog);
            return -1;
        }
        snprintf(path, len, "%s/%s", dir, names[i]);
        struct stat st;
        int skip = stat(path, &st) == 0 && !S_ISREG(st.st_mode); /* subdirectories */
        int rc = skip ? 0 : run_file(path);
        free(path);
        if (rc != 0) {
            free_names(names, n);
            return -1;
        }
        count += !skip;
    }
    free_names(names, n);
    return count;

nomem:
    closedir(d);
    free_names(names, n);
    fprintf(stderr, "%s: out of memory listing %s\n", prog, dir);
    return -1;
}

int main(int argc, char **argv)
{
    long total = 0;
    int paths = 0;
    if (argc > 0 && argv[0] != NULL) {
        const char *slash = strrchr(argv[0], '/');
        prog = slash != NULL ? slash + 1 : argv[0];
    }
    if (LLVMFuzzerInitialize != NULL)
        LLVMFuzzerInitialize(&argc, &argv);

    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        struct stat st;
        if (arg[0] == '-')
            continue;
        paths++;
        if (stat(arg, &st) != 0) {
            fprintf(stderr, "%s: %s: %s\n", prog, arg, strerror(errno));
            return 1;
        }
        if (S_ISDIR(st.st_mode)) {
            long n = run_dir(arg);
            if (n < 0)
                return 1;
            total += n;
        } else {
            if (run_file(arg) != 0)
                return 1;
            total++;
        }
    }
    if (paths == 0) {
        fprintf(stderr, "usage: %s FILE|DIRECTORY...\n"
                        "Replays each file (or each file in each directory) through the fuzz "
                        "target once.\n",
                prog);
        return 2;
    }
    printf("%s: replayed %ld input%s\n", prog, total, total == 1 ? "" : "s");
    return 0;
}
