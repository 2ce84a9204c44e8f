/* Helpers shared by the C tests: vector files, hex, zlib, temp files. */
#ifndef SM_TEST_H
#define SM_TEST_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

/* Loads <SM_TESTVECTORS_DIR>/wycheproof/<name>; aborts the test program with
 * a message if the file is missing or is not JSON (a missing vector file is
 * a failure, never a skip). */
json_t *smt_load_wycheproof(const char *name);

/* Decodes a hex string into a new malloc'ed buffer; *len gets its length.
 * Aborts on invalid hex. Returns a non-NULL pointer even for "". */
uint8_t *smt_hex_decode(const char *hex, size_t *len);

/* Hex-decodes then zlib-inflates (the Wycheproof `ct` encoding). */
uint8_t *smt_hex_inflate(const char *hex, size_t *len);

/* Lowercase hex of a SHA-512 digest of data (129 bytes incl. NUL in out). */
void smt_sha512_hex(const uint8_t *data, size_t len, char out[129]);

/* Whether a Wycheproof test object has the given flag. */
int smt_has_flag(json_t *test, const char *flag);

/* Creates a fresh temporary directory (mode 0700) and returns its path
 * (static storage until the next call). Removed by smt_rm_rf. */
const char *smt_tmpdir(void);
void smt_rm_rf(const char *path);

/* Reads a whole file into a malloc'ed buffer; aborts on error. */
uint8_t *smt_read_file(const char *path, size_t *len);
/* Writes a buffer to a file (0600); aborts on error. */
void smt_write_file(const char *path, const uint8_t *data, size_t len);

/* Deterministic pseudo-random bytes for test data (not for keys). */
void smt_fill_pattern(uint8_t *buf, size_t len, uint32_t seed);

#endif
