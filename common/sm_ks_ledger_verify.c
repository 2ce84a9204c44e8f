#include "config.h"

/* Ledger export verifier (sm_ks_ledger.h): one pass over the JSON Lines,
 * constant memory apart from the checkpoints still waiting for their entry.
 *
 * What each check catches:
 * - stored hash != recomputed hash: an entry changed (or an entry before it
 *   was removed/reordered without rewriting the hashes);
 * - seq not last + 1: an entry deleted, duplicated or moved;
 * - head at a checkpoint's seq != the signed head: the chain was rewritten
 *   behind a checkpoint (hashes recomputed after a change);
 * - a checkpoint, from the export or given separately, beyond the last
 *   entry: the tail was cut;
 * - no end line, or one that disagrees: the export itself is truncated. */

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sm_json.h"
#include "sm_ks_ledger.h"

typedef struct pending_checkpoint {
    uint64_t seq;
    uint8_t head[SM_KS_LEDGER_HASH_LEN];
    int external; /* given by the caller, not found in the export */
} pending_checkpoint;

typedef enum phase { EXPECT_HEADER, IN_BODY, AFTER_END } phase;

struct sm_ks_ledger_verifier {
    const sm_jwks *trusted;
    sm_jwks *embedded;
    char *issuer;
    phase phase;
    uint64_t line;
    uint64_t last_seq;
    uint8_t head[SM_KS_LEDGER_HASH_LEN];
    pending_checkpoint *pending; /* sorted by seq */
    size_t n_pending, cap_pending;
    sm_ks_ledger_report report;
    sm_error failure;
    int failed;
};

sm_status sm_ks_ledger_verifier_new(const sm_jwks *trusted, const char *issuer,
                                    sm_ks_ledger_verifier **out, sm_error *err)
{
    *out = NULL;
    sm_ks_ledger_verifier *v = calloc(1, sizeof(*v));
    if (v == NULL)
        return sm_error_set(err, SM_ERR_NOMEM, "ledger verify: out of memory");
    v->trusted = trusted;
    if (issuer != NULL && (v->issuer = strdup(issuer)) == NULL) {
        free(v);
        return sm_error_set(err, SM_ERR_NOMEM, "ledger verify: out of memory");
    }
    *out = v;
    return SM_OK;
}

void sm_ks_ledger_verifier_free(sm_ks_ledger_verifier *v)
{
    if (v == NULL)
        return;
    sm_jwks_free(v->embedded);
    free(v->issuer);
    free(v->pending);
    free(v);
}

/* Records the first failure; every later call repeats it. */
static sm_status fail(sm_ks_ledger_verifier *v, sm_error *err, sm_status st, uint64_t bad_seq,
                      const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static sm_status fail(sm_ks_ledger_verifier *v, sm_error *err, sm_status st, uint64_t bad_seq,
                      const char *fmt, ...)
{
    char msg[SM_ERROR_MESSAGE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    v->failed = 1;
    v->report.first_bad_seq = bad_seq;
    v->report.bad_line = v->line;
    sm_error_set(&v->failure, st, "%s", msg);
    if (err != NULL)
        *err = v->failure;
    return st;
}

static sm_status add_pending(sm_ks_ledger_verifier *v, const sm_ks_checkpoint *cp, int external,
                             sm_error *err)
{
    /* Two checkpoints for one seq must agree, or the issuer signed two
     * different histories: keep both and both get checked. */
    if (v->n_pending == v->cap_pending) {
        size_t cap = v->cap_pending * 2 + 8;
        pending_checkpoint *p = realloc(v->pending, cap * sizeof(*p));
        if (p == NULL)
            return sm_error_set(err, SM_ERR_NOMEM, "ledger verify: out of memory");
        v->pending = p;
        v->cap_pending = cap;
    }
    size_t i = v->n_pending;
    while (i > 0 && v->pending[i - 1].seq > cp->seq) {
        v->pending[i] = v->pending[i - 1];
        i--;
    }
    v->pending[i].seq = cp->seq;
    memcpy(v->pending[i].head, cp->head, SM_KS_LEDGER_HASH_LEN);
    v->pending[i].external = external;
    v->n_pending++;
    return SM_OK;
}

sm_status sm_ks_ledger_verifier_add_checkpoint(sm_ks_ledger_verifier *v, const char *compact,
                                               size_t len, sm_error *err)
{
    sm_ks_checkpoint cp;
    if (v->trusted == NULL)
        return sm_error_set(err, SM_ERR_ARG,
                            "a separate checkpoint can only be checked against trusted keys "
                            "(give the key server's JWKS)");
    if (v->issuer == NULL)
        return sm_error_set(err, SM_ERR_ARG,
                            "a separate checkpoint needs the expected issuer to be given");
    if (v->phase != EXPECT_HEADER)
        return sm_error_set(err, SM_ERR_STATE, "checkpoints must be added before the export");
    sm_status st = sm_ks_checkpoint_verify(v->trusted, v->issuer, compact, len, &cp, err);
    if (st != SM_OK)
        return st;
    return add_pending(v, &cp, 1, err);
}

static const sm_jwks *checkpoint_keys(const sm_ks_ledger_verifier *v)
{
    return v->trusted != NULL ? v->trusted : v->embedded;
}

static sm_status feed_header(sm_ks_ledger_verifier *v, json_t *o, sm_error *err)
{
    static const sm_json_field fields[] = {
        {"kind", SM_JSON_STRING, 1},     {"format", SM_JSON_STRING, 1},
        {"issuer", SM_JSON_STRING, 1},   {"exported_at", SM_JSON_INTEGER, 1},
        {"jwks", SM_JSON_OBJECT, 1},     {NULL, SM_JSON_STRING, 0}};
    sm_error e = {0};
    if (sm_json_check_fields(o, fields, "export header", &e) != SM_OK)
        return fail(v, err, SM_ERR_FORMAT, 0, "line %llu: %s", (unsigned long long)v->line,
                    e.message);
    if (strcmp(json_string_value(json_object_get(o, "format")), SM_KS_LEDGER_EXPORT_FORMAT) != 0)
        return fail(v, err, SM_ERR_UNSUPPORTED, 0,
                    "line 1: not a \"%s\" ledger export (unknown format)",
                    SM_KS_LEDGER_EXPORT_FORMAT);
    const char *iss = json_string_value(json_object_get(o, "issuer"));
    if (v->issuer == NULL) {
        if ((v->issuer = strdup(iss)) == NULL)
            return fail(v, err, SM_ERR_NOMEM, 0, "out of memory");
    } else if (strcmp(v->issuer, iss) != 0) {
        return fail(v, err, SM_ERR_CLAIM, 0,
                    "line 1: the export is from issuer \"%.200s\", not the expected one", iss);
    }
    char *jwks_text = json_dumps(json_object_get(o, "jwks"), JSON_COMPACT);
    if (jwks_text == NULL)
        return fail(v, err, SM_ERR_NOMEM, 0, "out of memory");
    sm_status st = sm_jwks_from_json(jwks_text, strlen(jwks_text), &v->embedded, &e);
    free(jwks_text);
    if (st != SM_OK)
        return fail(v, err, st, 0, "line 1: the export's JWKS is invalid: %s", e.message);
    v->report.keys_from_export = v->trusted == NULL;
    v->phase = IN_BODY;
    return SM_OK;
}

/* Checks and drops the pending checkpoints that cover the entry just
 * accepted (seq == last_seq). */
static sm_status match_pending(sm_ks_ledger_verifier *v, sm_error *err)
{
    while (v->n_pending > 0 && v->pending[0].seq <= v->last_seq) {
        pending_checkpoint cp = v->pending[0];
        memmove(v->pending, v->pending + 1, (v->n_pending - 1) * sizeof(*v->pending));
        v->n_pending--;
        if (cp.seq < v->last_seq)
            return fail(v, err, SM_ERR_FORMAT, 0,
                        "line %llu: a checkpoint for seq %llu comes after entry %llu; "
                        "checkpoints follow the entry they cover",
                        (unsigned long long)v->line, (unsigned long long)cp.seq,
                        (unsigned long long)v->last_seq);
        if (!sm_ct_equal(cp.head, v->head, SM_KS_LEDGER_HASH_LEN))
            return fail(v, err, SM_ERR_AUTH, v->report.last_checkpoint_seq + 1,
                        "the entries from seq %llu to %llu do not match the %scheckpoint at seq "
                        "%llu: the ledger was rewritten there (first entry that may be bad: "
                        "seq %llu)",
                        (unsigned long long)(v->report.last_checkpoint_seq + 1),
                        (unsigned long long)cp.seq, cp.external ? "separately given " : "",
                        (unsigned long long)cp.seq,
                        (unsigned long long)(v->report.last_checkpoint_seq + 1));
        v->report.checkpoints++;
        v->report.last_checkpoint_seq = cp.seq;
    }
    return SM_OK;
}

static sm_status feed_entry(sm_ks_ledger_verifier *v, json_t *o, sm_error *err)
{
    static const sm_json_field fields[] = {
        {"kind", SM_JSON_STRING, 1}, {"seq", SM_JSON_INTEGER, 1}, {"time", SM_JSON_INTEGER, 1},
        {"type", SM_JSON_STRING, 1}, {"data", SM_JSON_OBJECT, 1}, {"hash", SM_JSON_STRING, 1},
        {NULL, SM_JSON_STRING, 0}};
    sm_error e = {0};
    uint64_t expected = v->last_seq + 1;
    if (sm_json_check_fields(o, fields, "entry", &e) != SM_OK)
        return fail(v, err, SM_ERR_FORMAT, expected, "line %llu: %s",
                    (unsigned long long)v->line, e.message);
    json_int_t seq = json_integer_value(json_object_get(o, "seq"));
    if (seq < 1 || (uint64_t)seq != expected) {
        if (seq > 0 && (uint64_t)seq > expected)
            return fail(v, err, SM_ERR_AUTH, expected,
                        "line %llu: entry seq %lld follows seq %llu: entr%s %llu%s missing "
                        "(deleted or moved)",
                        (unsigned long long)v->line, (long long)seq,
                        (unsigned long long)v->last_seq,
                        (uint64_t)seq - expected > 1 ? "ies" : "y", (unsigned long long)expected,
                        (uint64_t)seq - expected > 1 ? " onwards are" : " is");
        return fail(v, err, SM_ERR_AUTH, expected,
                    "line %llu: entry seq %lld where seq %llu was expected (duplicated or "
                    "reordered)",
                    (unsigned long long)v->line, (long long)seq, (unsigned long long)expected);
    }
    sm_ks_ledger_entry entry = {(uint64_t)seq, json_integer_value(json_object_get(o, "time")),
                                json_string_value(json_object_get(o, "type")),
                                json_object_get(o, "data")};
    uint8_t stored[SM_KS_LEDGER_HASH_LEN], computed[SM_KS_LEDGER_HASH_LEN];
    if (sm_ks_ledger_hash_from_b64(json_string_value(json_object_get(o, "hash")), stored, &e) !=
        SM_OK)
        return fail(v, err, SM_ERR_FORMAT, expected, "line %llu: entry seq %lld: %s",
                    (unsigned long long)v->line, (long long)seq, e.message);
    sm_status st = sm_ks_ledger_hash(v->head, &entry, computed, &e);
    if (st != SM_OK)
        return fail(v, err, st, expected, "line %llu: %s", (unsigned long long)v->line, e.message);
    if (!sm_ct_equal(stored, computed, SM_KS_LEDGER_HASH_LEN))
        return fail(v, err, SM_ERR_AUTH, expected,
                    "line %llu: entry seq %lld does not match its hash: its content or the "
                    "chain before it was changed",
                    (unsigned long long)v->line, (long long)seq);
    v->last_seq = (uint64_t)seq;
    memcpy(v->head, computed, SM_KS_LEDGER_HASH_LEN);
    v->report.entries++;
    if (strcmp(entry.type, SM_KS_LEDGER_UNREADABLE_TYPE) == 0 && v->report.unreadable++ == 0)
        v->report.first_unreadable_seq = (uint64_t)seq;
    return match_pending(v, err);
}

static sm_status feed_checkpoint(sm_ks_ledger_verifier *v, json_t *o, sm_error *err)
{
    static const sm_json_field fields[] = {{"kind", SM_JSON_STRING, 1},
                                           {"token", SM_JSON_STRING, 1},
                                           {NULL, SM_JSON_STRING, 0}};
    sm_error e = {0};
    sm_ks_checkpoint cp;
    if (sm_json_check_fields(o, fields, "checkpoint line", &e) != SM_OK)
        return fail(v, err, SM_ERR_FORMAT, 0, "line %llu: %s", (unsigned long long)v->line,
                    e.message);
    json_t *token = json_object_get(o, "token");
    sm_status st = sm_ks_checkpoint_verify(checkpoint_keys(v), v->issuer, json_string_value(token),
                                           json_string_length(token), &cp, &e);
    if (st != SM_OK)
        return fail(v, err, st, 0, "line %llu: checkpoint does not verify: %s",
                    (unsigned long long)v->line, e.message);
    if (cp.seq < v->last_seq)
        return fail(v, err, SM_ERR_FORMAT, 0,
                    "line %llu: the checkpoint for seq %llu comes after entry %llu; checkpoints "
                    "follow the entry they cover",
                    (unsigned long long)v->line, (unsigned long long)cp.seq,
                    (unsigned long long)v->last_seq);
    if ((st = add_pending(v, &cp, 0, &e)) != SM_OK)
        return fail(v, err, st, 0, "%s", e.message);
    return match_pending(v, err);
}

static sm_status feed_end(sm_ks_ledger_verifier *v, json_t *o, sm_error *err)
{
    static const sm_json_field fields[] = {{"kind", SM_JSON_STRING, 1},
                                           {"last_seq", SM_JSON_INTEGER, 1},
                                           {"head", SM_JSON_STRING, 1},
                                           {NULL, SM_JSON_STRING, 0}};
    sm_error e = {0};
    uint8_t head[SM_KS_LEDGER_HASH_LEN];
    if (sm_json_check_fields(o, fields, "end line", &e) != SM_OK ||
        sm_ks_ledger_hash_from_b64(json_string_value(json_object_get(o, "head")), head, &e) !=
            SM_OK)
        return fail(v, err, SM_ERR_FORMAT, 0, "line %llu: %s", (unsigned long long)v->line,
                    e.message);
    json_int_t last = json_integer_value(json_object_get(o, "last_seq"));
    if (last < 0 || (uint64_t)last != v->last_seq ||
        !sm_ct_equal(head, v->head, SM_KS_LEDGER_HASH_LEN))
        return fail(v, err, SM_ERR_AUTH, v->last_seq + 1,
                    "line %llu: the end line says the ledger ends at seq %lld, but the export "
                    "ends at seq %llu with another head: entries are missing",
                    (unsigned long long)v->line, (long long)last,
                    (unsigned long long)v->last_seq);
    v->phase = AFTER_END;
    return SM_OK;
}

sm_status sm_ks_ledger_verifier_feed(sm_ks_ledger_verifier *v, const char *line, size_t len,
                                     sm_error *err)
{
    if (v->failed) {
        if (err != NULL)
            *err = v->failure;
        return v->failure.status;
    }
    v->line++;
    if (v->phase == AFTER_END)
        return fail(v, err, SM_ERR_FORMAT, 0, "line %llu: data after the end line",
                    (unsigned long long)v->line);
    json_t *o = NULL;
    sm_error e = {0};
    char what[48];
    snprintf(what, sizeof(what), "line %llu", (unsigned long long)v->line);
    if (sm_json_parse_object((const uint8_t *)line, len, SM_KS_LEDGER_LINE_MAX, what, &o, &e) !=
        SM_OK)
        return fail(v, err, e.status, v->phase == IN_BODY ? v->last_seq + 1 : 0, "%s",
                    e.message);
    const char *kind = json_string_value(json_object_get(o, "kind"));
    sm_status st;
    if (kind == NULL)
        st = fail(v, err, SM_ERR_FORMAT, 0, "line %llu: no \"kind\" member",
                  (unsigned long long)v->line);
    else if (v->phase == EXPECT_HEADER)
        st = strcmp(kind, "header") == 0
                 ? feed_header(v, o, err)
                 : fail(v, err, SM_ERR_FORMAT, 0, "line 1: an export starts with a header line");
    else if (strcmp(kind, "entry") == 0)
        st = feed_entry(v, o, err);
    else if (strcmp(kind, "checkpoint") == 0)
        st = feed_checkpoint(v, o, err);
    else if (strcmp(kind, "end") == 0)
        st = feed_end(v, o, err);
    else
        st = fail(v, err, SM_ERR_FORMAT, 0, "line %llu: unknown kind \"%.32s\"",
                  (unsigned long long)v->line, kind);
    json_decref(o);
    return st;
}

sm_status sm_ks_ledger_verifier_finish(sm_ks_ledger_verifier *v, sm_ks_ledger_report *report,
                                       sm_error *err)
{
    sm_status st = SM_OK;
    if (v->failed) {
        if (err != NULL)
            *err = v->failure;
        st = v->failure.status;
    } else if (v->phase == EXPECT_HEADER) {
        st = fail(v, err, SM_ERR_TRUNCATED, 0, "the export is empty: no header line");
    } else if (v->n_pending > 0) {
        const pending_checkpoint *cp = &v->pending[0];
        v->line = 0;
        st = fail(v, err, SM_ERR_AUTH, v->last_seq + 1,
                  "the export ends at seq %llu but a %scheckpoint covers seq %llu: entries %llu "
                  "to %llu were cut",
                  (unsigned long long)v->last_seq, cp->external ? "separately given " : "",
                  (unsigned long long)cp->seq, (unsigned long long)(v->last_seq + 1),
                  (unsigned long long)cp->seq);
    } else if (v->phase != AFTER_END) {
        v->line = 0;
        st = fail(v, err, SM_ERR_TRUNCATED, 0,
                  "the export has no end line: it is truncated after seq %llu",
                  (unsigned long long)v->last_seq);
    }
    v->report.last_seq = v->last_seq;
    memcpy(v->report.head, v->head, SM_KS_LEDGER_HASH_LEN);
    if (report != NULL)
        *report = v->report;
    return st;
}
