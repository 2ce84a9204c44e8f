/* A progress bar on stderr, shown only when stderr is a terminal and the
 * work is large enough to be worth watching. */
#ifndef SM_PROGRESS_H
#define SM_PROGRESS_H

#include <stdint.h>

typedef struct progress {
    int enabled;
    uint64_t total;
    uint64_t done;
    int last_permille;
    double start;
    const char *label;
} progress;

void progress_start(progress *p, const char *label, uint64_t total);
void progress_update(progress *p, uint64_t done);
/* Clears the bar's line; call on success and on failure. */
void progress_finish(progress *p);

#endif
