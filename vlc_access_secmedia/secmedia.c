/* secmedia VLC 3 plugin: a stream_filter that turns a steering file
 * (.steer) opened as a local file into the decrypted media it stands for.
 * Glue only: everything else is the player core in common/sm_pl_*.c.
 * docs/PLAYER.md describes the behaviour, the options and the messages. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <stdlib.h>
#include <string.h>

/* Shown in VLC's plugin list (vlc_entry_copyright / vlc_entry_license). */
#define VLC_MODULE_COPYRIGHT "Copyright (C) the secmedia authors"
#define VLC_MODULE_LICENSE "Apache License 2.0"

#include <vlc_common.h>
#include <vlc_dialog.h>
#include <vlc_input.h>
#include <vlc_input_item.h>
#include <vlc_interrupt.h>
#include <vlc_plugin.h>
#include <vlc_stream.h>

#include "sm_pl_http.h"
#include "sm_pl_session.h"
#include "sm_secmem.h"
#include "sm_steer.h"

/* Strings are not translated (VLC's installed headers have no gettext
 * markers for out-of-tree plugins). */
#ifndef N_
#define N_(str) (str)
#endif

#define DEVKEY_TEXT N_("Device key file")
#define DEVKEY_LONGTEXT                                                                        \
    N_("The device's private key (a JWK written by \"secmedia keygen\"). Default: "           \
       "$SECMEDIA_DEVICE_KEY, else $XDG_CONFIG_HOME/secmedia/device.jwk, else "                \
       "~/.config/secmedia/device.jwk.")
#define CAFILE_TEXT N_("CA certificates file")
#define CAFILE_LONGTEXT                                                                        \
    N_("PEM file of the certificate authorities trusted for the key server and the media "    \
       "stores. Default: the system's trust store.")
#define CONNTO_TEXT N_("Connect timeout (seconds)")
#define CONNTO_LONGTEXT N_("Time allowed to connect to a key server or media store.")
#define TIMEOUT_TEXT N_("Request timeout (seconds)")
#define TIMEOUT_LONGTEXT N_("Time allowed for one whole license request or media fetch.")
#define OFFLINE_TEXT N_("Keep for offline play")
#define OFFLINE_LONGTEXT                                                                       \
    N_("On the first play, store the license (still encrypted to the device key) and the "    \
       "encrypted media in the offline directory, so later plays need no network.")
#define OFFDIR_TEXT N_("Offline directory")
#define OFFDIR_LONGTEXT                                                                        \
    N_("Where offline copies are kept. Default: $XDG_DATA_HOME/secmedia/offline, else "        \
       "~/.local/share/secmedia/offline.")

static int Open(vlc_object_t *);
static void Close(vlc_object_t *);

/* None of these is change_safe(): they decide where keys come from and whom
 * to trust, so a playlist or MRL option must not set them. */
vlc_module_begin()
    set_shortname("secmedia")
    set_description(N_("secmedia steering files (encrypted media)"))
    set_category(CAT_INPUT)
    set_subcategory(SUBCAT_INPUT_STREAM_FILTER)
    set_capability("stream_filter", 50)
    add_shortcut("secmedia")
    add_loadfile("secmedia-device-key", NULL, DEVKEY_TEXT, DEVKEY_LONGTEXT, false)
    add_loadfile("secmedia-ca-file", NULL, CAFILE_TEXT, CAFILE_LONGTEXT, false)
    add_integer_with_range("secmedia-connect-timeout", 10, 1, 300, CONNTO_TEXT, CONNTO_LONGTEXT,
                           true)
    add_integer_with_range("secmedia-timeout", 30, 1, 3600, TIMEOUT_TEXT, TIMEOUT_LONGTEXT, true)
    add_bool("secmedia-offline", false, OFFLINE_TEXT, OFFLINE_LONGTEXT, false)
    add_directory("secmedia-offline-dir", NULL, OFFDIR_TEXT, OFFDIR_LONGTEXT, false)
    set_callbacks(Open, Close)
vlc_module_end()

struct stream_sys_t {
    sm_pl_http_curl *http;
    sm_pl_transport transport;
    sm_pl_session *session;
    uint64_t pos;
    bool failed; /* the error was already reported */
};

static int interrupted(void *ctx)
{
    (void)ctx;
    return vlc_killed();
}

static void report(stream_t *s, const char *message)
{
    msg_Err(s, "%s", message);
    vlc_dialog_display_error(s, "secmedia", "%s", message);
}

/* Whether this open is not a play: VLC's preparser or meta reader. VLC 3
 * marks the access with b_preparsing, but the stream that wraps it (what
 * a filter sees as its source) does not carry the flag, so also look at
 * the input: a preparsing input never gets the "video"/"audio" variables
 * (input_ConfigVarInit skips them), and a stream without an input is not
 * being played either. */
static bool preparsing(stream_t *s)
{
    for (const stream_t *p = s; p != NULL; p = p->p_source)
        if (p->b_preparsing)
            return true;
    if (s->p_input == NULL)
        return true;
    return var_Type(s->p_input, "video") == 0 && var_Type(s->p_input, "audio") == 0;
}

/* The steering file's title, artist and album on the playlist item. */
static void set_item_meta(stream_t *s, const uint8_t *buf, size_t len)
{
    if (s->p_input == NULL)
        return;
    input_item_t *item = input_GetItem(s->p_input);
    sm_steer *steer = NULL;
    if (item == NULL || sm_steer_parse(buf, len, NULL, &steer, NULL) != SM_OK)
        return;
    input_item_SetTitle(item, steer->title);
    if (steer->artist != NULL)
        input_item_SetArtist(item, steer->artist);
    if (steer->album != NULL)
        input_item_SetAlbum(item, steer->album);
    sm_steer_free(steer);
}

static ssize_t Read(stream_t *s, void *buf, size_t len)
{
    stream_sys_t *sys = s->p_sys;
    size_t got = 0;
    sm_error err = {SM_OK, ""};
    /* After the error was reported the stream is over: EOF, so the input
     * ends instead of retrying; never bytes that were not authenticated. */
    if (sys->failed)
        return 0;
    sm_status st = sm_pl_session_read(sys->session, sys->pos, buf, len, &got, &err);
    if (st != SM_OK) {
        sys->failed = true;
        if (st != SM_ERR_STATE) /* not when VLC is stopping the input */
            report(s, err.message);
        return -1;
    }
    sys->pos += got;
    return (ssize_t)got;
}

static int Seek(stream_t *s, uint64_t offset)
{
    stream_sys_t *sys = s->p_sys;
    if (sys->failed)
        return VLC_EGENERIC;
    sys->pos = offset;
    return VLC_SUCCESS;
}

static int Control(stream_t *s, int query, va_list args)
{
    stream_sys_t *sys = s->p_sys;
    switch (query) {
    case STREAM_CAN_SEEK:
    case STREAM_CAN_FASTSEEK:
    case STREAM_CAN_PAUSE:
    case STREAM_CAN_CONTROL_PACE:
        *va_arg(args, bool *) = true;
        return VLC_SUCCESS;
    case STREAM_GET_SIZE:
        *va_arg(args, uint64_t *) = sm_pl_session_size(sys->session);
        return VLC_SUCCESS;
    case STREAM_GET_PTS_DELAY:
        *va_arg(args, int64_t *) =
            sm_pl_session_is_offline(sys->session)
                ? INT64_C(1000) * var_InheritInteger(s, "file-caching")
                : INT64_C(1000) * var_InheritInteger(s, "network-caching");
        return VLC_SUCCESS;
    case STREAM_GET_CONTENT_TYPE: {
        char *type = strdup(sm_pl_session_media_type(sys->session));
        if (type == NULL)
            return VLC_ENOMEM;
        *va_arg(args, char **) = type;
        return VLC_SUCCESS;
    }
    case STREAM_SET_PAUSE_STATE:
        return VLC_SUCCESS;
    default:
        return VLC_EGENERIC;
    }
}

/* The whole steering file (at most SM_STEER_MAX_SIZE + 1 bytes), peeked so
 * that the source is left untouched when the filter declines. */
static uint8_t *read_steer(stream_t *src, size_t *len_out)
{
    const uint8_t *peek;
    ssize_t n = vlc_stream_Peek(src, &peek, SM_STEER_MAX_SIZE + 1);
    if (n < SM_STEER_MAGIC_LEN)
        return NULL;
    uint8_t *buf = malloc((size_t)n);
    if (buf == NULL)
        return NULL;
    memcpy(buf, peek, (size_t)n);
    *len_out = (size_t)n;
    return buf;
}

static int Open(vlc_object_t *obj)
{
    stream_t *s = (stream_t *)obj;
    const uint8_t *peek;
    /* Probe first, allocate later: the magic line or nothing. */
    if (vlc_stream_Peek(s->p_source, &peek, SM_STEER_MAGIC_LEN) < SM_STEER_MAGIC_LEN ||
        !sm_steer_probe(peek, SM_STEER_MAGIC_LEN))
        return VLC_EGENERIC;

    size_t len = 0;
    uint8_t *steer = read_steer(s->p_source, &len);
    if (steer == NULL)
        return VLC_EGENERIC;
    if (preparsing(s)) {
        /* No license for the preparser: one play costs one activation. */
        msg_Dbg(s, "steering file seen while preparsing: metadata only, no license request");
        set_item_meta(s, steer, len);
        free(steer);
        return VLC_EGENERIC;
    }

    /* Playing: consume the steering file, so that if this filter fails no
     * fallback demuxer (e.g. "ps", which takes anything) reads its text as
     * media. */
    if (vlc_stream_Read(s->p_source, NULL, len) < 0)
        msg_Dbg(s, "could not skip the steering file's bytes");

    sm_secmem_init();
    stream_sys_t *sys = calloc(1, sizeof(*sys));
    if (sys == NULL) {
        free(steer);
        return VLC_ENOMEM;
    }
    char *device_key = var_InheritString(s, "secmedia-device-key");
    char *ca_file = var_InheritString(s, "secmedia-ca-file");
    char *offline_dir = var_InheritString(s, "secmedia-offline-dir");
    sm_pl_http_config hc = {
        .ca_file = ca_file,
        .connect_timeout_s = (unsigned)var_InheritInteger(s, "secmedia-connect-timeout"),
        .timeout_s = (unsigned)var_InheritInteger(s, "secmedia-timeout"),
        .interrupted = interrupted,
    };
    sm_error err = {SM_OK, ""};
    sm_status st = sm_pl_http_curl_new(&hc, &sys->http, &err);
    if (st == SM_OK) {
        sys->transport.perform = sm_pl_http_curl_perform;
        sys->transport.ctx = sys->http;
        sm_pl_options o = {
            .device_key_path = device_key,
            .offline_dir = offline_dir,
            .offline_keep = var_InheritBool(s, "secmedia-offline"),
            .transport = &sys->transport,
        };
        st = sm_pl_session_open(&o, steer, len, &sys->session, NULL, &err);
    }
    free(device_key);
    free(ca_file);
    free(offline_dir);
    if (st == SM_OK)
        set_item_meta(s, steer, len); /* the media's own tags may refine it */
    free(steer);
    if (st != SM_OK) {
        if (st != SM_ERR_STATE) /* not when the user stopped it */
            report(s, err.message);
        sm_pl_http_curl_free(sys->http);
        free(sys);
        return VLC_EGENERIC;
    }
    msg_Dbg(s, "playing %s (%s, %" PRIu64 " bytes)%s",
            sm_pl_session_steer(sys->session)->work_id, sm_pl_session_media_type(sys->session),
            sm_pl_session_size(sys->session),
            sm_pl_session_is_offline(sys->session) ? " from the offline store" : "");
    s->p_sys = sys;
    s->pf_read = Read;
    s->pf_seek = Seek;
    s->pf_control = Control;
    return VLC_SUCCESS;
}

static void Close(vlc_object_t *obj)
{
    stream_t *s = (stream_t *)obj;
    stream_sys_t *sys = s->p_sys;
    sm_pl_session_free(sys->session); /* wipes the media key */
    sm_pl_http_curl_free(sys->http);
    free(sys);
}
