/*
 * vlc_decode: play one MRL through libvlc, decoding as fast as possible to
 * raw files, for the VLC end-to-end tests and bench/vlc-play.
 *
 * cvlc refuses to run as root (CI does), libvlc does not, hence this small
 * program. The media is transcoded to raw PCM (s16le, interleaved, at the
 * source's own rate and channel count: no resampling) and, if asked, raw
 * I420 video, and handed to the smem stream output without clock sync, so a
 * 10-minute track decodes in a second or two. Every libvlc log message and
 * every dialog goes to the --log file, so tests can check what VLC and the
 * plugin said. See tests/integration/README.md ("VLC end-to-end tests").
 *
 * Exit status: 0 played to the end; 1 playback failed (VLC's error event,
 * an error dialog, or an error logged by a module named with --fail-module);
 * 2 usage or setup error; 3 timeout.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <vlc/vlc.h>

#define MAX_LIST 32

struct list {
    const char *item[MAX_LIST];
    int count;
};

struct decode {
    pthread_mutex_t lock;
    pthread_cond_t changed;
    bool ended, failed, parsed;
    const char *why;             /* what ended the run, for the summary */

    FILE *log;
    struct list fail_modules;
    unsigned module_errors, dialog_errors;

    FILE *audio, *video;
    unsigned char *audio_buf, *video_buf;
    size_t audio_cap, video_cap;
    uint64_t audio_bytes, video_frames;
    unsigned rate, channels, bits, width, height;
    int64_t first_audio_pts, first_video_pts;
    struct timespec play_started;
    double first_audio_ms;       /* from play() to the first PCM, -1: none */
    bool write_error;
};

static struct decode g;

static double ms_since(const struct timespec *t0)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - t0->tv_sec) * 1e3
         + (double)(now.tv_nsec - t0->tv_nsec) / 1e6;
}

/* A failure is recorded, but the run goes on until VLC ends it, so the
 * output shows everything VLC made of the input (e.g. nothing after a
 * damaged chunk). */
static void fail(const char *why)
{
    pthread_mutex_lock(&g.lock);
    if (!g.failed) {
        g.failed = true;
        g.why = why;
    }
    pthread_mutex_unlock(&g.lock);
}

static void finish(const char *why)
{
    pthread_mutex_lock(&g.lock);
    if (!g.ended) {
        g.ended = true;
        if (!g.failed)
            g.why = why;
    }
    pthread_cond_broadcast(&g.changed);
    pthread_mutex_unlock(&g.lock);
}

/* --- log and dialogs ------------------------------------------------------ */

static const char *level_name(int level)
{
    switch (level) {
    case LIBVLC_DEBUG:   return "debug";
    case LIBVLC_NOTICE:  return "info";
    case LIBVLC_WARNING: return "warning";
    case LIBVLC_ERROR:   return "error";
    default:             return "?";
    }
}

static bool is_fail_module(const char *module)
{
    if (module == NULL)
        return false;
    for (int i = 0; i < g.fail_modules.count; i++)
        if (strcmp(module, g.fail_modules.item[i]) == 0)
            return true;
    return false;
}

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
static void on_log(void *data, int level, const libvlc_log_t *ctx,
                   const char *fmt, va_list args)
{
    (void)data;
    char text[4096];
    const char *module = NULL, *file = NULL, *object = NULL, *header = NULL;
    unsigned line = 0;
    uintptr_t id = 0;

    vsnprintf(text, sizeof text, fmt, args);
    libvlc_log_get_context(ctx, &module, &file, &line);
    libvlc_log_get_object(ctx, &object, &header, &id);
    pthread_mutex_lock(&g.lock);
    if (g.log != NULL) {
        fprintf(g.log, "%s %s %s: %s\n", level_name(level),
                module ? module : "-", object ? object : "-", text);
        fflush(g.log);
    }
    bool fatal = level == LIBVLC_ERROR && is_fail_module(module);
    if (fatal)
        g.module_errors++;
    pthread_mutex_unlock(&g.lock);
    if (fatal)
        fail("module error");
}
#pragma GCC diagnostic pop

static void log_line(const char *kind, const char *title, const char *text)
{
    pthread_mutex_lock(&g.lock);
    if (g.log != NULL) {
        fprintf(g.log, "dialog %s: %s: %s\n", kind, title ? title : "",
                text ? text : "");
        fflush(g.log);
    }
    pthread_mutex_unlock(&g.lock);
}

static void on_dialog_error(void *data, const char *title, const char *text)
{
    (void)data;
    log_line("error", title, text);
    pthread_mutex_lock(&g.lock);
    g.dialog_errors++;
    pthread_mutex_unlock(&g.lock);
    fail("error dialog");
}

static void on_dialog_login(void *data, libvlc_dialog_id *id, const char *title,
                            const char *text, const char *user, bool store)
{
    (void)data; (void)user; (void)store;
    log_line("login", title, text);
    libvlc_dialog_dismiss(id);
}

static void on_dialog_question(void *data, libvlc_dialog_id *id,
                               const char *title, const char *text,
                               libvlc_dialog_question_type type,
                               const char *cancel, const char *action1,
                               const char *action2)
{
    (void)data; (void)type; (void)cancel; (void)action1; (void)action2;
    log_line("question", title, text);
    libvlc_dialog_dismiss(id);
}

static void on_dialog_progress(void *data, libvlc_dialog_id *id,
                               const char *title, const char *text,
                               bool indeterminate, float position,
                               const char *cancel)
{
    (void)data; (void)id; (void)indeterminate; (void)position; (void)cancel;
    log_line("progress", title, text);
}

static void on_dialog_cancel(void *data, libvlc_dialog_id *id)
{
    (void)data; (void)id;
}

static void on_dialog_update(void *data, libvlc_dialog_id *id, float position,
                             const char *text)
{
    (void)data; (void)id; (void)position; (void)text;
}

/* --- smem callbacks --------------------------------------------------------- */

static unsigned char *grow(unsigned char **buf, size_t *cap, size_t size)
{
    if (size > *cap) {
        unsigned char *p = realloc(*buf, size);
        if (p == NULL)
            return NULL;
        *buf = p;
        *cap = size;
    }
    return *buf;
}

static void audio_prerender(void *data, uint8_t **buffer, size_t size)
{
    (void)data;
    pthread_mutex_lock(&g.lock);
    *buffer = grow(&g.audio_buf, &g.audio_cap, size ? size : 1);
    pthread_mutex_unlock(&g.lock);
}

static void audio_postrender(void *data, uint8_t *buffer, unsigned channels,
                             unsigned rate, unsigned samples, unsigned bits,
                             size_t size, int64_t pts)
{
    (void)data; (void)samples;
    pthread_mutex_lock(&g.lock);
    if (g.audio_bytes == 0 && size > 0) {
        g.first_audio_ms = ms_since(&g.play_started);
        g.first_audio_pts = pts;
        g.rate = rate;
        g.channels = channels;
        g.bits = bits;
    }
    if (g.audio != NULL && size > 0 && buffer != NULL
        && fwrite(buffer, 1, size, g.audio) != size)
        g.write_error = true;
    g.audio_bytes += size;
    pthread_mutex_unlock(&g.lock);
}

static void video_prerender(void *data, uint8_t **buffer, size_t size)
{
    (void)data;
    pthread_mutex_lock(&g.lock);
    *buffer = grow(&g.video_buf, &g.video_cap, size ? size : 1);
    pthread_mutex_unlock(&g.lock);
}

static void video_postrender(void *data, uint8_t *buffer, int width, int height,
                             int pixel_pitch, size_t size, int64_t pts)
{
    (void)data; (void)pixel_pitch;
    pthread_mutex_lock(&g.lock);
    if (g.video_frames == 0) {
        g.first_video_pts = pts;
        g.width = (unsigned)width;
        g.height = (unsigned)height;
    }
    if (g.video != NULL && size > 0 && buffer != NULL
        && fwrite(buffer, 1, size, g.video) != size)
        g.write_error = true;
    g.video_frames++;
    pthread_mutex_unlock(&g.lock);
}

/* --- player events ---------------------------------------------------------- */

static void on_event(const libvlc_event_t *event, void *data)
{
    (void)data;
    switch (event->type) {
    case libvlc_MediaPlayerEndReached:
        finish("end");
        break;
    case libvlc_MediaPlayerEncounteredError:
        fail("player error");
        finish("player error");
        break;
    case libvlc_MediaParsedChanged:
        pthread_mutex_lock(&g.lock);
        g.parsed = true;
        pthread_cond_broadcast(&g.changed);
        pthread_mutex_unlock(&g.lock);
        break;
    default:
        break;
    }
}

/* --- command line ----------------------------------------------------------- */

static void usage(FILE *out)
{
    fputs("Usage: vlc_decode [OPTION]... MRL\n"
          "Plays MRL through libvlc, decoding as fast as possible (no clock sync).\n"
          "  --audio-out FILE    raw PCM, s16le interleaved, source rate and channels\n"
          "  --video-out FILE    raw I420 frames (without it, video is not decoded)\n"
          "  --log FILE          every log message (all levels) and dialog, one a line\n"
          "  --start-time SEC    start at SEC seconds (media option :start-time)\n"
          "  --stop-time SEC     stop at SEC seconds\n"
          "  --preparse          parse the media first, as VLC's playlist does\n"
          "  --preparse-only     parse the media and exit without playing\n"
          "  --media-option OPT  extra media option, without the leading ':'\n"
          "  --vlc-arg ARG       extra libvlc argument, e.g. --secmedia-offline\n"
          "  --fail-module NAME  an error logged by module NAME fails the run\n"
          "  --timeout SEC       give up after SEC seconds (default 60): exit 3\n"
          "Prints one summary line; exit 0 ended, 1 failed, 2 usage, 3 timeout.\n",
          out);
}

static bool add(struct list *list, const char *value)
{
    if (list->count == MAX_LIST)
        return false;
    list->item[list->count++] = value;
    return true;
}

static bool parse_seconds(const char *text, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (errno != 0 || end == text || *end != '\0' || !(v >= 0) || v > 1e6)
        return false;
    *out = v;
    return true;
}

static FILE *open_out(const char *path)
{
    FILE *f = fopen(path, "wb");
    if (f == NULL)
        fprintf(stderr, "vlc_decode: cannot write %s: %s\n", path, strerror(errno));
    return f;
}

int main(int argc, char **argv)
{
    const char *audio_path = NULL, *video_path = NULL, *log_path = NULL;
    const char *mrl = NULL, *start = NULL, *stop = NULL;
    double timeout = 60, seconds;
    bool preparse = false, preparse_only = false;
    struct list media_opts = {0}, vlc_args = {0};

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        bool ok = true;
        if (strcmp(a, "--help") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(a, "--preparse") == 0) {
            preparse = true;
            continue;
        } else if (strcmp(a, "--preparse-only") == 0) {
            preparse = preparse_only = true;
            continue;
        } else if (a[0] != '-' || a[1] != '-') {
            if (mrl != NULL) {
                fprintf(stderr, "vlc_decode: more than one MRL (%s)\n", a);
                return 2;
            }
            mrl = a;
            continue;
        }
        if (v == NULL) {
            fprintf(stderr, "vlc_decode: %s needs a value\n", a);
            return 2;
        }
        i++;
        if (strcmp(a, "--audio-out") == 0)
            audio_path = v;
        else if (strcmp(a, "--video-out") == 0)
            video_path = v;
        else if (strcmp(a, "--log") == 0)
            log_path = v;
        else if (strcmp(a, "--start-time") == 0)
            ok = parse_seconds(v, &seconds) && (start = v);
        else if (strcmp(a, "--stop-time") == 0)
            ok = parse_seconds(v, &seconds) && (stop = v);
        else if (strcmp(a, "--timeout") == 0)
            ok = parse_seconds(v, &timeout) && timeout > 0;
        else if (strcmp(a, "--media-option") == 0)
            ok = add(&media_opts, v);
        else if (strcmp(a, "--vlc-arg") == 0)
            ok = add(&vlc_args, v);
        else if (strcmp(a, "--fail-module") == 0)
            ok = add(&g.fail_modules, v);
        else {
            fprintf(stderr, "vlc_decode: unknown option %s\n", a);
            usage(stderr);
            return 2;
        }
        if (!ok) {
            fprintf(stderr, "vlc_decode: bad value for %s: %s\n", a, v);
            return 2;
        }
    }
    if (mrl == NULL) {
        usage(stderr);
        return 2;
    }

    pthread_mutex_init(&g.lock, NULL);
    pthread_cond_init(&g.changed, NULL);
    g.first_audio_ms = -1;
    if ((log_path && !(g.log = open_out(log_path)))
        || (audio_path && !(g.audio = open_out(audio_path)))
        || (video_path && !(g.video = open_out(video_path))))
        return 2;

    /* Dummy outputs, no configuration file, no network metadata, one decoder
     * thread: the same settings for every run, so runs can be compared. */
    const char *base_args[] = {
        "--ignore-config", "--no-media-library", "--no-metadata-network-access",
        "--no-lua", "--no-video-title-show", "--no-osd", "--no-stats",
        "--aout=dummy", "--vout=dummy", "--avcodec-threads=1", "--verbose=2",
    };
    const int n_base = (int)(sizeof base_args / sizeof base_args[0]);
    const char *args[sizeof base_args / sizeof base_args[0] + MAX_LIST];
    for (int i = 0; i < n_base; i++)
        args[i] = base_args[i];
    for (int i = 0; i < vlc_args.count; i++)
        args[n_base + i] = vlc_args.item[i];

    libvlc_instance_t *vlc = libvlc_new(n_base + vlc_args.count, args);
    if (vlc == NULL) {
        /* libvlc_new's own message (e.g. an unknown option) is on stderr. */
        fprintf(stderr, "vlc_decode: libvlc_new failed%s%s\n",
                libvlc_errmsg() ? ": " : "", libvlc_errmsg() ? libvlc_errmsg() : "");
        return 2;
    }
    libvlc_log_set(vlc, on_log, NULL);
    static const libvlc_dialog_cbs dialogs = {
        .pf_display_error = on_dialog_error,
        .pf_display_login = on_dialog_login,
        .pf_display_question = on_dialog_question,
        .pf_display_progress = on_dialog_progress,
        .pf_cancel = on_dialog_cancel,
        .pf_update_progress = on_dialog_update,
    };
    libvlc_dialog_set_callbacks(vlc, &dialogs, NULL);

    libvlc_media_t *media = strstr(mrl, "://") ? libvlc_media_new_location(vlc, mrl)
                                               : libvlc_media_new_path(vlc, mrl);
    if (media == NULL) {
        fprintf(stderr, "vlc_decode: cannot create a media for %s\n", mrl);
        return 2;
    }

    char sout[1024], opt[1200];
    int n = snprintf(sout, sizeof sout,
        "sout=#transcode{acodec=s16l%s}:smem{no-time-sync,"
        "audio-prerender-callback=%lld,audio-postrender-callback=%lld,"
        "video-prerender-callback=%lld,video-postrender-callback=%lld}",
        video_path ? ",vcodec=I420" : "",
        (long long)(intptr_t)audio_prerender, (long long)(intptr_t)audio_postrender,
        (long long)(intptr_t)video_prerender, (long long)(intptr_t)video_postrender);
    if (n < 0 || (size_t)n >= sizeof sout)
        return 2;
    libvlc_media_add_option(media, sout);
    if (video_path == NULL)
        libvlc_media_add_option(media, "no-sout-video");
    libvlc_media_add_option(media, "no-sout-spu");
    if (start) {
        snprintf(opt, sizeof opt, "start-time=%s", start);
        libvlc_media_add_option(media, opt);
    }
    if (stop) {
        snprintf(opt, sizeof opt, "stop-time=%s", stop);
        libvlc_media_add_option(media, opt);
    }
    for (int i = 0; i < media_opts.count; i++)
        libvlc_media_add_option(media, media_opts.item[i]);

    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += (time_t)timeout;

    if (preparse) {
        /* What VLC's playlist does for a local item before playing it. */
        libvlc_event_attach(libvlc_media_event_manager(media),
                            libvlc_MediaParsedChanged, on_event, NULL);
        if (libvlc_media_parse_with_options(media, libvlc_media_parse_local,
                                            (int)(timeout * 1000)) != 0) {
            fprintf(stderr, "vlc_decode: cannot start preparsing %s\n", mrl);
            return 2;
        }
        pthread_mutex_lock(&g.lock);
        while (!g.parsed && pthread_cond_timedwait(&g.changed, &g.lock, &deadline) == 0)
            ;
        bool parsed = g.parsed;
        pthread_mutex_unlock(&g.lock);
        if (!parsed) {
            fprintf(stderr, "vlc_decode: preparsing did not finish in time\n");
            return 3;
        }
        /* What the playlist would show for the item after preparsing. */
        char *title = libvlc_media_get_meta(media, libvlc_meta_Title);
        char *artist = libvlc_media_get_meta(media, libvlc_meta_Artist);
        static const char *const statuses[] = {"none", "skipped", "failed", "timeout", "done"};
        unsigned st = (unsigned)libvlc_media_get_parsed_status(media);
        log_line("note", "vlc_decode: preparsing done, status",
                 st < sizeof statuses / sizeof statuses[0] ? statuses[st] : "?");
        log_line("note", "preparsed title", title ? title : "(none)");
        log_line("note", "preparsed artist", artist ? artist : "(none)");
        libvlc_free(title);
        libvlc_free(artist);
    }

    if (preparse_only) {
        libvlc_media_release(media);
        libvlc_log_unset(vlc);
        libvlc_release(vlc);
        printf("vlc_decode: result=ok why=preparsed\n");
        if (g.log)
            fclose(g.log);
        return 0;
    }

    libvlc_media_player_t *player = libvlc_media_player_new_from_media(media);
    if (player == NULL)
        return 2;
    libvlc_event_manager_t *events = libvlc_media_player_event_manager(player);
    libvlc_event_attach(events, libvlc_MediaPlayerEndReached, on_event, NULL);
    libvlc_event_attach(events, libvlc_MediaPlayerEncounteredError, on_event, NULL);

    clock_gettime(CLOCK_MONOTONIC, &g.play_started);
    if (libvlc_media_player_play(player) != 0) {
        fprintf(stderr, "vlc_decode: cannot start playing %s\n", mrl);
        return 1;
    }

    pthread_mutex_lock(&g.lock);
    while (!g.ended && pthread_cond_timedwait(&g.changed, &g.lock, &deadline) == 0)
        ;
    bool timed_out = !g.ended;
    pthread_mutex_unlock(&g.lock);
    if (timed_out) {
        /* Stopping may hang on whatever hung the input: leave at once. */
        fprintf(stderr, "vlc_decode: no end after %g s\n", timeout);
        pthread_mutex_lock(&g.lock);
        if (g.log)
            fprintf(g.log, "vlc_decode: no end after %g s\n", timeout);
        /* What was decoded so far stays readable for the test. */
        if (g.log)
            fflush(g.log);
        if (g.audio)
            fflush(g.audio);
        if (g.video)
            fflush(g.video);
        pthread_mutex_unlock(&g.lock);
        _exit(3);
    }

    /* Stopping closes the transcoder, which flushes its last samples. */
    libvlc_media_player_stop(player);
    libvlc_media_player_release(player);
    libvlc_media_release(media);
    libvlc_log_unset(vlc);
    libvlc_release(vlc);

    bool failed = g.failed || g.write_error;
    if (g.audio && fclose(g.audio) != 0)
        failed = true;
    if (g.video && fclose(g.video) != 0)
        failed = true;
    printf("vlc_decode: result=%s why=%s audio_bytes=%" PRIu64 " rate=%u channels=%u "
           "bits=%u first_audio_pts=%" PRId64 " first_audio_ms=%.1f video_frames=%"
           PRIu64 " width=%u height=%u first_video_pts=%" PRId64
           " module_errors=%u dialog_errors=%u\n",
           failed ? "failed" : "ok", g.write_error ? "write error" : g.why ? g.why : "none",
           g.audio_bytes, g.rate, g.channels, g.bits, g.first_audio_pts,
           g.first_audio_ms, g.video_frames, g.width, g.height, g.first_video_pts,
           g.module_errors, g.dialog_errors);
    if (g.log)
        fclose(g.log);
    free(g.audio_buf);
    free(g.video_buf);
    return failed ? 1 : 0;
}
