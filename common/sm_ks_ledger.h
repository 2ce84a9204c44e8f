/* The key server's tamper-evident ledger (DESIGN §2 "Ledger"; byte-level
 * description in docs/FORMATS.md "Ledger").
 *
 * Every money- or key-relevant event is an entry: a gapless sequence number
 * (1, 2, 3, ...), a time, a type and a flat data object (string and integer
 * members). Each entry's hash is SHA-256 over a canonical binary encoding
 * that starts with the previous entry's hash (32 zero bytes before seq 1),
 * so changing, deleting or reordering an entry changes every later hash.
 * Checkpoints are ES256 JWS (typ "secmedia-checkpoint+jwt") over a sequence
 * number and the head hash at that number: once one is out, rewriting the
 * chain behind it, or cutting entries it covers, is detectable.
 *
 * An export is JSON Lines: a header, the entries in order with each
 * checkpoint right after the entry it covers, and an end line. The verifier
 * reads it line by line in constant memory and names the first bad entry. */
#ifndef SM_KS_LEDGER_H
#define SM_KS_LEDGER_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "sm_error.h"
#include "sm_jose.h"
#include "sm_ks_keys.h"

#define SM_KS_LEDGER_HASH_LEN 32u
/* base64url of a hash: 43 characters + NUL. */
#define SM_KS_LEDGER_HASH_B64_SIZE 44u
#define SM_KS_TYP_CHECKPOINT "secmedia-checkpoint+jwt"
/* The audience of checkpoints: anyone auditing the ledger. */
#define SM_KS_LEDGER_AUDIENCE "secmedia-ledger"
#define SM_KS_LEDGER_EXPORT_FORMAT "secmedia-ledger-export/1"

/* Entry limits: type 1..32 of [a-z0-9-]; data at most 32 members, names
 * 1..32 of [a-z0-9_], strings at most 1024 bytes of UTF-8 text, integers
 * any signed 64-bit value. */
#define SM_KS_LEDGER_TYPE_MAX 32u
/* The type of an entry chained for a queued row that could not be read
 * (FORMATS.md §7.5). */
#define SM_KS_LEDGER_UNREADABLE_TYPE "unreadable-entry"
#define SM_KS_LEDGER_MAX_FIELDS 32u
#define SM_KS_LEDGER_NAME_MAX 32u
#define SM_KS_LEDGER_STRING_MAX 1024u
/* Longest line in an export (an entry's JSON or a checkpoint line). */
#define SM_KS_LEDGER_LINE_MAX 65536u

typedef struct sm_ks_ledger_entry {
    uint64_t seq;     /* >= 1 */
    int64_t time;     /* seconds since the epoch, >= 0 */
    const char *type; /* "reservation", "payment", "license", ... */
    json_t *data;     /* flat object, see the limits above */
} sm_ks_ledger_entry;

/* Checks type and data against the limits. */
sm_status sm_ks_ledger_check_entry(const sm_ks_ledger_entry *e, sm_error *err);

/* The canonical encoding hashed for the entry (malloc'ed, free()). */
sm_status sm_ks_ledger_canonical(const uint8_t prev[SM_KS_LEDGER_HASH_LEN],
                                 const sm_ks_ledger_entry *e, uint8_t **out, size_t *out_len,
                                 sm_error *err);

/* hash = SHA-256(canonical(prev, e)). */
sm_status sm_ks_ledger_hash(const uint8_t prev[SM_KS_LEDGER_HASH_LEN],
                            const sm_ks_ledger_entry *e, uint8_t out[SM_KS_LEDGER_HASH_LEN],
                            sm_error *err);

/* Hash <-> 43 base64url characters. */
void sm_ks_ledger_hash_to_b64(const uint8_t hash[SM_KS_LEDGER_HASH_LEN],
                              char out[SM_KS_LEDGER_HASH_B64_SIZE]);
sm_status sm_ks_ledger_hash_from_b64(const char *b64, uint8_t out[SM_KS_LEDGER_HASH_LEN],
                                     sm_error *err);

/* The data object as stored (compact JSON, members sorted); free(). */
char *sm_ks_ledger_data_to_text(json_t *data);
/* Strict parse of stored data (then checked against the limits). */
sm_status sm_ks_ledger_data_from_text(const char *text, size_t len, json_t **out, sm_error *err);

/* ---- checkpoints --------------------------------------------------------- */

/* Signs {iss, aud:"secmedia-ledger", iat, exp:253402300799, jti, seq, head}:
 * checkpoints never expire, they stay evidence. now 0 = current time. */
sm_status sm_ks_checkpoint_issue(const sm_ks_keys *keys, const char *iss, uint64_t seq,
                                 const uint8_t head[SM_KS_LEDGER_HASH_LEN], int64_t now,
                                 char **compact_out, sm_error *err);

typedef struct sm_ks_checkpoint {
    uint64_t seq;
    uint8_t head[SM_KS_LEDGER_HASH_LEN];
    int64_t iat;
    char kid[SM_JOSE_KID_MAX + 1];
} sm_ks_checkpoint;

sm_status sm_ks_checkpoint_verify(const sm_jwks *keys, const char *iss, const char *compact,
                                  size_t len, sm_ks_checkpoint *out, sm_error *err);

/* ---- export lines (each a malloc'ed string without the newline) --------- */

/* {"kind":"header","format":...,"issuer":...,"exported_at":N,"jwks":{...}} */
char *sm_ks_ledger_export_header(const char *iss, const char *jwks_json, int64_t exported_at,
                                 sm_error *err);
/* {"kind":"entry","seq":N,"time":N,"type":"...","data":{...},"hash":"..."} */
char *sm_ks_ledger_export_entry(const sm_ks_ledger_entry *e,
                                const uint8_t hash[SM_KS_LEDGER_HASH_LEN], sm_error *err);
/* {"kind":"checkpoint","token":"<compact JWS>"} */
char *sm_ks_ledger_export_checkpoint(const char *compact, sm_error *err);
/* {"kind":"end","last_seq":N,"head":"..."} */
char *sm_ks_ledger_export_end(uint64_t last_seq, const uint8_t head[SM_KS_LEDGER_HASH_LEN],
                              sm_error *err);

/* ---- verifier ------------------------------------------------------------ */

typedef struct sm_ks_ledger_verifier sm_ks_ledger_verifier;

typedef struct sm_ks_ledger_report {
    uint64_t entries;              /* entry lines checked */
    uint64_t last_seq;             /* seq of the last good entry */
    uint8_t head[SM_KS_LEDGER_HASH_LEN];
    uint64_t checkpoints;          /* checkpoints matched against the chain */
    uint64_t last_checkpoint_seq;  /* highest seq covered by a matched checkpoint */
    int keys_from_export;          /* 1: checkpoints checked with the export's own JWKS */
    /* Entries standing for a queued row the key server could not read
     * (FORMATS.md §7.5): valid in the chain, but their event's content is
     * only in that row. */
    uint64_t unreadable;
    uint64_t first_unreadable_seq;
    /* On failure: */
    uint64_t first_bad_seq;        /* 0 when the failure is not an entry's */
    uint64_t bad_line;             /* 1-based line of the export, 0 if none */
} sm_ks_ledger_report;

/* trusted: the key server's JWKS obtained independently (NULL: use the
 * JWKS inside the export, which only shows the export is self-consistent).
 * issuer: expected issuer (NULL: the export header's). */
sm_status sm_ks_ledger_verifier_new(const sm_jwks *trusted, const char *issuer,
                                    sm_ks_ledger_verifier **out, sm_error *err);
void sm_ks_ledger_verifier_free(sm_ks_ledger_verifier *v);

/* A checkpoint obtained outside the export (e.g. kept by a retailer): it
 * must verify with the trusted keys (so trusted keys are required) and the
 * export must reach and match it. Call before the first line. */
sm_status sm_ks_ledger_verifier_add_checkpoint(sm_ks_ledger_verifier *v, const char *compact,
                                               size_t len, sm_error *err);

/* Feeds one line (without its newline; a trailing CR is an error). The
 * first failure is final: later calls return it again. */
sm_status sm_ks_ledger_verifier_feed(sm_ks_ledger_verifier *v, const char *line, size_t len,
                                     sm_error *err);

/* Ends the export and fills the report (also after a failure). */
sm_status sm_ks_ledger_verifier_finish(sm_ks_ledger_verifier *v, sm_ks_ledger_report *report,
                                       sm_error *err);

#endif
