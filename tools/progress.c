#include "config.h"

#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "progress.h"

/* Small files finish before a bar would be readable. */
#define PROGRESS_MIN_BYTES (16u * 1024 * 1024)
#define PROGRESS_WIDTH 30

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void progress_start(progress *p, const char *label, uint64_t total)
{
    p->enabled = isatty(STDERR_FILENO) && total >= PROGRESS_MIN_BYTES;
    p->total = total;
    p->done = 0;
    p->last_permille = -1;
    p->start = now_seconds();
    p->label = label;
}

void progress_update(progress *p, uint64_t done)
{
    if (!p->enabled)
        return;
    p->done = done;
    int permille = p->total ? (int)(done * 1000 / p->total) : 1000;
    if (permille == p->last_permille)
        return;
    p->last_permille = permille;
    int filled = permille * PROGRESS_WIDTH / 1000;
    char bar[PROGRESS_WIDTH + 1];
    for (int i = 0; i < PROGRESS_WIDTH; i++)
        bar[i] = i < filled ? '#' : '.';
    bar[PROGRESS_WIDTH] = '\0';
    double elapsed = now_seconds() - p->start;
    double mib_s = elapsed > 0 ? (double)done / (1024.0 * 1024.0) / elapsed : 0;
    fprintf(stderr, "\r%s [%s] %3d.%d%% %7.1f MiB/s", p->label, bar, permille / 10,
            permille % 10, mib_s);
    fflush(stderr);
}

void progress_finish(progress *p)
{
    if (!p->enabled)
        return;
    fprintf(stderr, "\r\033[K");
    fflush(stderr);
    p->enabled = 0;
}
