/* Validators for identifiers and strings that cross trust boundaries.
 * Each returns SM_OK or SM_ERR_FORMAT with a message naming `what`. */
#ifndef SM_VALIDATE_H
#define SM_VALIDATE_H

#include <stddef.h>

#include "sm_error.h"

/* Work ids are used in file names and URLs: 1..64 chars of
 * [A-Za-z0-9._-], starting with a letter or digit (so never "." or ".."). */
sm_status sm_validate_work_id(const char *s, const char *what, sm_error *err);

/* RFC 6838 media type "type/subtype", restricted-name characters only,
 * no parameters, at most 127 bytes. */
sm_status sm_validate_media_type(const char *s, const char *what, sm_error *err);

/* Well-formed UTF-8 without control characters (U+0000..U+001F, U+007F). */
sm_status sm_validate_text(const char *s, size_t max_len, const char *what, sm_error *err);

/* A file's base name: text as above, no '/', not "." or "..". */
sm_status sm_validate_file_name(const char *s, size_t max_len, const char *what, sm_error *err);

/* An absolute https:// URL with a host (http:// only when allow_insecure),
 * no spaces, controls, userinfo or fragment; at most 2048 bytes. */
sm_status sm_validate_url(const char *s, int allow_insecure, const char *what, sm_error *err);

#endif
