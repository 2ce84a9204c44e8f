/* Strict, canonical base64url without padding, for keys and tokens. */
#ifndef SM_B64_H
#define SM_B64_H

#include <stddef.h>
#include <stdint.h>

#include "sm_error.h"

/* 1 when s[0..len) is canonical unpadded base64url (alphabet, length not
 * 1 mod 4, unused trailing bits zero). */
int sm_b64url_canonical(const char *s, size_t len);

/* Decodes canonical base64url into dst (capacity cap); *out_len gets the
 * decoded length. Refuses non-canonical input and results over cap. The
 * message names `what` and never quotes the input (it may be a key). */
sm_status sm_b64url_decode(const char *s, size_t len, uint8_t *dst, size_t cap, size_t *out_len,
                           const char *what, sm_error *err);

/* Encodes into dst (NUL-terminated); refuses when it would not fit. */
sm_status sm_b64url_encode(const uint8_t *src, size_t len, char *dst, size_t dst_size,
                           sm_error *err);

#endif
