/* Steering files (.steer): what a retailer hands the buyer and VLC opens.
 *
 * A steering file is the line "SECMEDIA-STEER/1" followed by one strict JSON
 * object naming the work, where to fetch the key and the media, and the
 * key-server-signed voucher. Nothing in it is secret; the voucher is only
 * useful together with the designated device's private key.
 * docs/FORMATS.md §2 describes the format byte for byte. */
#ifndef SM_STEER_H
#define SM_STEER_H

#include <stddef.h>
#include <stdint.h>

#include "sm_error.h"

/* The first line of every steering file; a probe needs only these bytes. */
#define SM_STEER_MAGIC "SECMEDIA-STEER/1\n"
#define SM_STEER_MAGIC_LEN 17
#define SM_STEER_VERSION 1

/* Limits (bytes, excluding the terminating NUL of C strings). */
#define SM_STEER_MAX_SIZE 65536       /* whole file, magic line included */
#define SM_STEER_TEXT_MAX 512         /* title, artist, album */
#define SM_STEER_VOUCHER_MAX 8192     /* compact JWS */
#define SM_STEER_MEDIA_URLS_MAX 8     /* mirrors */
#define SM_STEER_TRANSACTION_ID_MAX 64

/* A parsed steering file. Every string is NUL-terminated UTF-8 owned by the
 * struct (malloc'ed; released by sm_steer_free). Optional fields are NULL
 * when absent; when present they are never empty. */
typedef struct sm_steer {
    int version;            /* always SM_STEER_VERSION */
    char *work_id;          /* sm_validate_work_id */
    char *title;            /* display text, 1..512 bytes */
    char *artist;           /* optional, 1..512 bytes */
    char *album;            /* optional, 1..512 bytes */
    char *media_type;       /* MIME type of the plaintext, e.g. "audio/ogg" */
    char *license_url;      /* https URL of the key server or retailer proxy */
    char **media_urls;      /* 1..8 distinct https URLs of the container */
    size_t media_url_count;
    char *voucher;          /* compact JWS, syntax-checked only */
    char *preview_url;      /* optional https URL of an unencrypted preview */
    char *transaction_id;   /* optional, [A-Za-z0-9_-]{1,64}, for support */
} sm_steer;

typedef struct sm_steer_options {
    /* Accept http:// URLs as well as https://. For tests against plain-HTTP
     * servers only; never set from user input. */
    int allow_insecure_urls;
} sm_steer_options;

/* 1 when buf starts with SM_STEER_MAGIC (needs len >= SM_STEER_MAGIC_LEN),
 * 0 otherwise. Reads at most the first SM_STEER_MAGIC_LEN bytes. */
int sm_steer_probe(const uint8_t *buf, size_t len);

/* Parses and validates a whole steering file held in memory. opts may be
 * NULL (https only). On success *out is a new sm_steer; on failure *out is
 * NULL and err says what is wrong and in which field. Statuses:
 * SM_ERR_FORMAT (malformed, wrong type, missing/unknown/invalid field),
 * SM_ERR_UNSUPPORTED (another format version), SM_ERR_TOO_LARGE (> 64 KiB),
 * SM_ERR_TRUNCATED (ends inside the magic line), SM_ERR_NOMEM, SM_ERR_ARG. */
sm_status sm_steer_parse(const uint8_t *buf, size_t len, const sm_steer_options *opts,
                         sm_steer **out, sm_error *err);

/* Reads path (at most SM_STEER_MAX_SIZE + 1 bytes: a larger file is refused
 * without reading it all) and parses it; messages name the path. */
sm_status sm_steer_load_file(const char *path, const sm_steer_options *opts, sm_steer **out,
                             sm_error *err);

/* Checks every field of s against the format (the same rules the parser
 * applies), e.g. before handing a steering file to a buyer. */
sm_status sm_steer_validate(const sm_steer *s, const sm_steer_options *opts, sm_error *err);

/* The voucher rule alone (a compact JWS of at most SM_STEER_VOUCHER_MAX
 * bytes), for whoever takes a voucher to put in a steering file later;
 * `what` names it in the message. */
sm_status sm_steer_validate_voucher(const char *voucher, const char *what, sm_error *err);

/* Validates s, then writes it in canonical form: the magic line, the JSON
 * object indented by two spaces with the fields in a fixed order, and a final
 * LF. *out is malloc'ed and NUL-terminated (the NUL is not counted in *len);
 * parsing it with the same opts gives back s field for field. */
sm_status sm_steer_serialize(const sm_steer *s, const sm_steer_options *opts, char **out,
                             size_t *len, sm_error *err);

/* Serializes s and writes it to path atomically: a temporary file in the
 * same directory, flushed to disk, then renamed over path. On failure path
 * is left as it was and no temporary file remains. */
sm_status sm_steer_save_file(const sm_steer *s, const sm_steer_options *opts, const char *path,
                             sm_error *err);

/* Releases s and every string it owns; s may be NULL. */
void sm_steer_free(sm_steer *s);

#endif
