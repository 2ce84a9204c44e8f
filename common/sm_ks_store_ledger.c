#include "config.h"

/* The ledger in the database: appends inside business transactions,
 * checkpoints, export, and proof-table housekeeping (sm_ks_store.h). */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sm_ks_store_int.h"

#define HEAD_LOCK_SKIP 2 /* read_head: lock, or give up at once if another holds it */

/* Reads the head (locked FOR UPDATE when lock). With HEAD_LOCK_SKIP, a
 * head another transaction holds is SM_ERR_NOT_FOUND at once. */
static sm_status read_head(sm_db_conn *c, int lock, uint64_t *seq,
                           uint8_t hash[SM_KS_LEDGER_HASH_LEN], sm_error *err)
{
    sm_db_rows *rows = NULL;
    int has = 0;
    size_t len = 0;
    sm_status st = sm_db_query(
        c,
        lock == HEAD_LOCK_SKIP ? "SELECT seq, hash FROM ledger_head WHERE id = 1 "
                                 "FOR UPDATE SKIP LOCKED"
        : lock                 ? "SELECT seq, hash FROM ledger_head WHERE id = 1 FOR UPDATE"
                               : "SELECT seq, hash FROM ledger_head WHERE id = 1",
        NULL, 0, &rows, err);
    if (st != SM_OK)
        return st;
    if ((st = sm_db_rows_next(rows, &has, err)) == SM_OK && !has && lock == HEAD_LOCK_SKIP) {
        sm_db_rows_free(rows);
        /* Skipped because another transaction holds it, or missing (which
         * must not pass for the former: nothing would ever be chained). */
        int64_t present = 0;
        if ((st = sm_db_query(c, "SELECT COUNT(*) FROM ledger_head WHERE id = 1", NULL, 0,
                              &rows, err)) != SM_OK)
            return st;
        if ((st = sm_db_rows_next(rows, &has, err)) == SM_OK && has)
            st = sm_db_col_int(rows, 0, &present, err);
        sm_db_rows_free(rows);
        if (st != SM_OK)
            return st;
        return present == 1 ? SM_ERR_NOT_FOUND
                            : sm_error_set(err, SM_ERR_DB,
                                           "the ledger head row is missing or damaged");
    }
    if (st == SM_OK) {
        const char *h = has ? sm_db_col_text(rows, 1, &len) : NULL;
        if (!has || h == NULL || len != SM_KS_LEDGER_HASH_LEN)
            st = sm_error_set(err, SM_ERR_DB, "the ledger head row is missing or damaged");
        else if ((st = sm_db_col_uint(rows, 0, seq, err)) == SM_OK)
            memcpy(hash, h, SM_KS_LEDGER_HASH_LEN);
    }
    sm_db_rows_free(rows);
    return st;
}

static sm_status store_checkpoint(sm_db_conn *c, const sm_ks_ctx *ctx, uint64_t seq,
                                  const uint8_t head[SM_KS_LEDGER_HASH_LEN], char **token_out,
                                  sm_error *err)
{
    char *token = NULL;
    int64_t now = sm_ks_now(ctx);
    sm_status st = sm_ks_checkpoint_issue(ctx->keys, ctx->issuer, seq, head, now, &token, err);
    if (st != SM_OK)
        return st;
    st = sm_db_exec(c,
                    "INSERT INTO ledger_checkpoints (seq, token, created_at) VALUES (?, ?, ?)",
                    SM_DB_PARAMS(sm_db_uint(seq), sm_db_text(token), sm_db_int(now)), NULL, err);
    if (st == SM_OK && token_out != NULL)
        *token_out = token;
    else
        free(token);
    return st;
}

/* ---- queued entries and sealing -------------------------------------------
 *
 * Frequent events do not append to the chain: a license's row in
 * `licenses`, and a sale event's row in `ledger_queue` (reservation,
 * payment, delivery), is its queued entry (chained = 0), written in the
 * event's own transaction. Both queues share one queue order (queue_order,
 * from one sequence: an event written after another committed draws a
 * larger number). Sealing chains the committed entries of both queues in
 * that order under the head lock and marks them chained in the same
 * transaction. It runs inside the caller's transaction, after the head row
 * was locked FOR UPDATE, so there is one sealer at a time. It marks exactly
 * the rows it chains (AND chained = 0): a row another sealer chained
 * meanwhile (possible when this transaction's snapshot predates that
 * sealer's commit) changes nothing, and the whole transaction is retried
 * as a conflict, so no entry is chained twice. */

#define SEAL_BATCH 64u
/* Written out for 64 in the queue reads' LIMIT and MARK_IDS' placeholders
 * below: change them together. */
_Static_assert(SEAL_BATCH == 64u, "LICENSE_QUEUE, EVENT_QUEUE and MARK_IDS assume 64");
/* Chained rows are marked with one statement per batch: 64 placeholders,
 * the unused ones repeating the last id (an IN list ignores repeats). */
#define P8 "?, ?, ?, ?, ?, ?, ?, ?"
/* By primary key only: a scan of (chained, ...) would next-key-lock the
 * queue's end and make new licenses and sales wait for the sealer. */
#define MARK_IDS "WHERE chained = 0 AND id IN (" \
    P8 ", " P8 ", " P8 ", " P8 ", " P8 ", " P8 ", " P8 ", " P8 ")"
static const char mark_licenses_64[] =
    "UPDATE licenses FORCE INDEX (PRIMARY) SET chained = 1 " MARK_IDS;
static const char mark_queue_64[] =
    "UPDATE ledger_queue FORCE INDEX (PRIMARY) SET chained = 1 " MARK_IDS;
/* Ledger rows go in 10, 3 or 1 at a time (10 x 6 parameters fit the
 * 64-parameter limit; at most 3 + 3 statements for a remainder). */
#define ROW6 "(?, ?, ?, ?, ?, ?)"
#define INSERT_LEDGER "INSERT INTO ledger (seq, created_at, type, data, hash, txn) VALUES "
static const char insert_1[] = INSERT_LEDGER ROW6;
static const char insert_3[] = INSERT_LEDGER ROW6 ", " ROW6 ", " ROW6;
static const char insert_10[] = INSERT_LEDGER ROW6 ", " ROW6 ", " ROW6 ", " ROW6 ", " ROW6 ", "
    ROW6 ", " ROW6 ", " ROW6 ", " ROW6 ", " ROW6;
/* The first SEAL_BATCH of each queue, in queue order (licenses queued
 * before schema version 5 have order 0, and go by id). */
#define LICENSE_QUEUE "SELECT id, queue_order, issued_at, txn, work_id, jkt, activation, " \
                      "via_retailer FROM licenses WHERE chained = 0 " \
                      "ORDER BY queue_order, id LIMIT 64"
#define EVENT_QUEUE "SELECT id, queue_order, created_at, txn, type, data " \
                    "FROM ledger_queue WHERE chained = 0 ORDER BY queue_order, id LIMIT 64"

typedef enum queue_source { FROM_LICENSES, FROM_EVENTS } queue_source;

typedef struct queued {
    queue_source source;
    uint64_t id, order, seq;
    int64_t time;
    char type[SM_KS_LEDGER_TYPE_MAX + 1];
    char txn[SM_KS_ID_SIZE];
    json_t *data;
    char *text;
    uint8_t hash[SM_KS_LEDGER_HASH_LEN];
} queued;

static void free_queued(queued *q, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        json_decref(q[i].data);
        free(q[i].text);
    }
}

/* A queued row that cannot be read as an entry (a damaged column, or a
 * row a faulty or older writer left) is chained as an
 * SM_KS_LEDGER_UNREADABLE_TYPE entry naming its queue, id and problem, so
 * that one bad row never stops the ledger (and with it revocations,
 * checkpoints and exports); the row stays, marked chained, for inspection
 * (FORMATS.md §7.5). */
static const char *queue_name(queue_source source)
{
    return source == FROM_LICENSES ? "licenses" : "ledger_queue";
}

/* Turns e (id, order and source read) into an unreadable-entry; problem is
 * made printable ASCII first, as it may quote the damaged bytes. */
static sm_status make_unreadable(const sm_ks_ctx *ctx, queued *e, const char *problem,
                                 sm_error *err)
{
    char text[SM_ERROR_MESSAGE_MAX];
    size_t n = 0;
    for (; problem[n] != '\0' && n + 1 < sizeof(text); n++) {
        unsigned char c = (unsigned char)problem[n];
        text[n] = c >= 0x20 && c < 0x7f ? (char)c : '?';
    }
    text[n] = '\0';
    json_decref(e->data);
    free(e->text);
    e->text = NULL;
    e->txn[0] = '\0';
    snprintf(e->type, sizeof(e->type), "%s", SM_KS_LEDGER_UNREADABLE_TYPE);
    e->data = json_pack("{s:s,s:I,s:s}", "queue", queue_name(e->source), "id",
                        (json_int_t)e->id, "problem", text);
    if (e->data == NULL || (e->text = sm_ks_ledger_data_to_text(e->data)) == NULL)
        return sm_error_set(err, SM_ERR_NOMEM, "out of memory");
    /* The event's time when it was readable, else the sealing time. */
    sm_ks_ledger_entry probe = {1, e->time, e->type, e->data};
    if (sm_ks_ledger_check_entry(&probe, NULL) != SM_OK)
        e->time = sm_ks_now(ctx);
    if (ctx->unreadable_entry != NULL)
        ctx->unreadable_entry(ctx->unreadable_entry_arg, queue_name(e->source), e->id, text);
    return SM_OK;
}

/* A text column copied into dst, or a problem naming it. */
static int copy_column(const sm_db_rows *rows, unsigned col, const char *name, char *dst,
                       size_t size, char *problem, size_t problem_size)
{
    if (ks_col_copy(rows, col, dst, size, NULL) == SM_OK)
        return 1;
    snprintf(problem, problem_size, "column %s is missing or longer than %zu bytes", name,
             size - 1);
    return 0;
}

static int int_column(const sm_db_rows *rows, unsigned col, const char *name, int64_t *out,
                      char *problem, size_t problem_size)
{
    if (sm_db_col_int(rows, col, out, NULL) == SM_OK)
        return 1;
    snprintf(problem, problem_size, "column %s is missing or not an integer", name);
    return 0;
}

/* The id and queue order of a queued row: primary key and NOT NULL
 * integer columns, the only facts a sealer cannot do without. */
static sm_status queue_position(const sm_db_rows *rows, queue_source source, queued *e,
                                sm_error *err)
{
    e->source = source;
    e->time = -1;
    if (sm_db_col_uint(rows, 0, &e->id, NULL) != SM_OK ||
        sm_db_col_uint(rows, 1, &e->order, NULL) != SM_OK)
        return sm_error_set(err, SM_ERR_DB, "a row of %s has no readable id or queue order",
                            queue_name(source));
    return SM_OK;
}

/* Checks an entry read from a row against FORMATS.md §7; problem says why
 * not. */
static int entry_valid(const queued *e, char *problem, size_t problem_size)
{
    sm_error why = {0};
    sm_ks_ledger_entry probe = {1, e->time, e->type, e->data};
    if (sm_ks_ledger_check_entry(&probe, &why) == SM_OK)
        return 1;
    /* "ledger entry 1: ..." names the probe's seq, not the row's. */
    const char *msg = strncmp(why.message, "ledger entry 1: ", 16) == 0 ? why.message + 16
                                                                         : why.message;
    snprintf(problem, problem_size, "%s", msg);
    return 0;
}

/* The ledger entry of a license row: the same data the license path
 * recorded when it appended itself. */
static sm_status license_from_row(const sm_ks_ctx *ctx, const sm_db_rows *rows, queued *e,
                                  sm_error *err)
{
    char work_id[SM_KS_ID_SIZE], jkt[SM_JKT_SIZE], problem[SM_ERROR_MESSAGE_MAX];
    int64_t activation = 0;
    const char *via = sm_db_col_text(rows, 7, NULL);
    sm_status st = queue_position(rows, FROM_LICENSES, e, err);
    if (st != SM_OK)
        return st;
    snprintf(e->type, sizeof(e->type), "license");
    if (!int_column(rows, 2, "issued_at", &e->time, problem, sizeof(problem)) ||
        !copy_column(rows, 3, "txn", e->txn, sizeof(e->txn), problem, sizeof(problem)) ||
        !copy_column(rows, 4, "work_id", work_id, sizeof(work_id), problem, sizeof(problem)) ||
        !copy_column(rows, 5, "jkt", jkt, sizeof(jkt), problem, sizeof(problem)) ||
        !int_column(rows, 6, "activation", &activation, problem, sizeof(problem)))
        return make_unreadable(ctx, e, problem, err);
    e->data = json_pack("{s:s,s:s,s:s,s:I}", "txn", e->txn, "work_id", work_id, "jkt", jkt,
                        "activation", (json_int_t)activation);
    if (e->data == NULL)
        return sm_error_set(err, SM_ERR_NOMEM, "out of memory");
    if (via != NULL) {
        json_t *v = json_string(via); /* NULL also for bytes that are not UTF-8 */
        if (v == NULL || json_object_set_new(e->data, "via", v) != 0)
            return make_unreadable(ctx, e, "column via is not text", err);
    }
    if ((e->text = sm_ks_ledger_data_to_text(e->data)) == NULL)
        return sm_error_set(err, SM_ERR_NOMEM, "out of memory");
    return entry_valid(e, problem, sizeof(problem)) ? SM_OK
                                                    : make_unreadable(ctx, e, problem, err);
}

/* The ledger entry of a queued event row, as sm_ks_ledger_enqueue wrote
 * it. */
static sm_status event_from_row(const sm_ks_ctx *ctx, const sm_db_rows *rows, queued *e,
                                sm_error *err)
{
    char problem[SM_ERROR_MESSAGE_MAX];
    size_t len = 0;
    const char *data = sm_db_col_text(rows, 5, &len);
    sm_status st = queue_position(rows, FROM_EVENTS, e, err);
    if (st != SM_OK)
        return st;
    if (!int_column(rows, 2, "created_at", &e->time, problem, sizeof(problem)) ||
        (sm_db_col_text(rows, 3, NULL) != NULL &&
         !copy_column(rows, 3, "txn", e->txn, sizeof(e->txn), problem, sizeof(problem))) ||
        !copy_column(rows, 4, "type", e->type, sizeof(e->type), problem, sizeof(problem)))
        return make_unreadable(ctx, e, problem, err);
    sm_error why = {0};
    if (data == NULL ||
        (st = sm_ks_ledger_data_from_text(data, len, &e->data, &why)) != SM_OK) {
        if (st == SM_ERR_NOMEM)
            return sm_error_set(err, SM_ERR_NOMEM, "out of memory");
        snprintf(problem, sizeof(problem), "column data: %.400s",
                 data == NULL ? "missing" : why.message);
        return make_unreadable(ctx, e, problem, err);
    }
    if ((e->text = sm_ks_ledger_data_to_text(e->data)) == NULL)
        return sm_error_set(err, SM_ERR_NOMEM, "out of memory");
    return entry_valid(e, problem, sizeof(problem)) ? SM_OK
                                                    : make_unreadable(ctx, e, problem, err);
}

/* Up to SEAL_BATCH entries of one queue, in its order, into q. */
static sm_status read_one_queue(sm_db_conn *c, const sm_ks_ctx *ctx, queue_source source,
                                int locking, queued *q, size_t *n, sm_error *err)
{
    static const char *const sql[2][2] = {
        {LICENSE_QUEUE, LICENSE_QUEUE " LOCK IN SHARE MODE"},
        {EVENT_QUEUE, EVENT_QUEUE " LOCK IN SHARE MODE"}};
    sm_db_rows *rows = NULL;
    int has = 0;
    *n = 0;
    sm_status st = sm_db_query(c, sql[source][locking != 0], NULL, 0, &rows, err);
    while (st == SM_OK && *n < SEAL_BATCH && (st = sm_db_rows_next(rows, &has, err)) == SM_OK &&
           has) {
        memset(&q[*n], 0, sizeof(q[*n]));
        st = source == FROM_LICENSES ? license_from_row(ctx, rows, &q[*n], err)
                                     : event_from_row(ctx, rows, &q[*n], err);
        (*n)++;
    }
    sm_db_rows_free(rows);
    return st;
}

static int queued_before(const queued *a, const queued *b)
{
    if (a->order != b->order)
        return a->order < b->order;
    /* Equal orders: only licenses queued before schema version 5 (order
     * 0), chained first and by id, as they were. */
    if (a->source != b->source)
        return a->source == FROM_LICENSES;
    return a->id < b->id;
}

/* The first SEAL_BATCH committed entries of both queues in queue order
 * (each queue's first SEAL_BATCH hold them all), into q.
 *
 * locking: a locking read (the latest committed rows, whatever this
 * transaction's snapshot) for appends inside business transactions, whose
 * snapshot may predate a sealer's commit; a consistent read otherwise (the
 * sealer's snapshot starts after it locked the head, and it must not block
 * new licenses and sales).
 *
 * The two reads see one state of both queues: the consistent reads share
 * the transaction's snapshot; a locking read leaves its queue's unchained
 * range next-key-locked to its end (or to its 64th row, and the caller
 * reads again while batches are full), so no entry of that queue commits
 * between the two reads, and an effect read from one queue never goes
 * without its cause from the other. */
static sm_status read_queue(sm_db_conn *c, const sm_ks_ctx *ctx, int locking, queued *q,
                            size_t *n, sm_error *err)
{
    queued licenses[SEAL_BATCH], events[SEAL_BATCH];
    size_t nl = 0, ne = 0, i = 0, j = 0;
    *n = 0;
    sm_status st = read_one_queue(c, ctx, FROM_LICENSES, locking, licenses, &nl, err);
    if (st == SM_OK)
        st = read_one_queue(c, ctx, FROM_EVENTS, locking, events, &ne, err);
    while (st == SM_OK && *n < SEAL_BATCH && (i < nl || j < ne)) {
        if (j == ne || (i < nl && queued_before(&licenses[i], &events[j])))
            q[(*n)++] = licenses[i++];
        else
            q[(*n)++] = events[j++];
    }
    /* What was read but not taken (or everything, on failure). */
    free_queued(licenses + i, nl - i);
    free_queued(events + j, ne - j);
    if (st != SM_OK) {
        free_queued(q, *n);
        *n = 0;
    }
    return st;
}

/* Marks the rows of one queue that were chained (ids of the entries of q
 * from that queue); all of them must still be unchained. */
static sm_status mark_queue(sm_db_conn *c, queue_source source, const queued *q, size_t n,
                            sm_error *err)
{
    sm_db_param p[SEAL_BATCH];
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (q[i].source == source)
            p[k++] = sm_db_uint(q[i].id);
    }
    if (k == 0)
        return SM_OK;
    for (size_t i = k; i < SEAL_BATCH; i++)
        p[i] = p[k - 1];
    uint64_t affected = 0;
    sm_status st = sm_db_exec(c, source == FROM_LICENSES ? mark_licenses_64 : mark_queue_64, p,
                              SEAL_BATCH, &affected, err);
    if (st == SM_OK && affected != k)
        st = sm_error_set(err, SM_ERR_CONFLICT,
                          "queued ledger entries were sealed by another transaction");
    return st;
}

static sm_status mark_chained(sm_db_conn *c, const queued *q, size_t n, sm_error *err)
{
    sm_status st = mark_queue(c, FROM_LICENSES, q, n, err);
    return st != SM_OK ? st : mark_queue(c, FROM_EVENTS, q, n, err);
}

/* A ledger row with this seq exists already: the head row did not follow
 * the last insert, i.e. the trigger of schema version 3 is missing (never
 * a caller's own duplicate: no caller may read it as a replay). */
static sm_status ledger_insert_status(sm_status st, uint64_t seq, sm_error *err)
{
    if (st != SM_ERR_DUPLICATE)
        return st;
    return sm_error_set(err, SM_ERR_DB,
                        "ledger entry %llu exists already: the ledger head did not follow the "
                        "last entry; apply the key server's schema version 3 (trigger "
                        "ledger_head_follows) with secmedia-db-migrate",
                        (unsigned long long)seq);
}

static sm_status insert_chained(sm_db_conn *c, const queued *q, size_t n, sm_error *err)
{
    for (size_t i = 0; i < n;) {
        size_t k = n - i >= 10 ? 10 : n - i >= 3 ? 3 : 1;
        const char *sql = k == 10 ? insert_10 : k == 3 ? insert_3 : insert_1;
        sm_db_param p[6 * 10];
        for (size_t j = 0; j < k; j++) {
            const queued *e = &q[i + j];
            p[6 * j] = sm_db_uint(e->seq);
            p[6 * j + 1] = sm_db_int(e->time);
            p[6 * j + 2] = sm_db_text(e->type);
            p[6 * j + 3] = sm_db_text(e->text);
            p[6 * j + 4] = sm_db_blob(e->hash, sizeof(e->hash));
            p[6 * j + 5] = sm_db_text(e->txn[0] != '\0' ? e->txn : NULL);
        }
        sm_status st = ledger_insert_status(sm_db_exec(c, sql, p, 6 * k, NULL, err),
                                            q[i].seq, err);
        if (st != SM_OK)
            return st;
        i += k;
    }
    return SM_OK;
}

/* Chains one batch of queued entries after (*seq, head) with the head row
 * locked; *n_out entries were chained (SEAL_BATCH: there may be more). The
 * head row follows the inserted rows (trigger ledger_head_follows, schema
 * version 3). */
static sm_status seal_batch(sm_db_conn *c, const sm_ks_ctx *ctx, int locking, uint64_t *seq,
                            uint8_t head[SM_KS_LEDGER_HASH_LEN], size_t *n_out, sm_error *err)
{
    queued q[SEAL_BATCH];
    size_t n = 0;
    *n_out = 0;
    sm_status st = read_queue(c, ctx, locking, q, &n, err);
    uint64_t s = *seq;
    uint8_t h[SM_KS_LEDGER_HASH_LEN];
    memcpy(h, head, sizeof(h));
    for (size_t i = 0; st == SM_OK && i < n; i++) {
        q[i].seq = ++s;
        sm_ks_ledger_entry e = {q[i].seq, q[i].time, q[i].type, q[i].data};
        st = sm_ks_ledger_hash(h, &e, h, err);
        memcpy(q[i].hash, h, sizeof(h));
    }
    if (st == SM_OK && n > 0 && (st = mark_chained(c, q, n, err)) == SM_OK)
        st = insert_chained(c, q, n, err);
    for (size_t i = 0; st == SM_OK && i < n; i++) {
        if (ctx->checkpoint_every > 0 && q[i].seq % ctx->checkpoint_every == 0)
            st = store_checkpoint(c, ctx, q[i].seq, q[i].hash, NULL, err);
    }
    free_queued(q, n);
    if (st != SM_OK)
        return st;
    *seq = s;
    memcpy(head, h, sizeof(h));
    *n_out = n;
    return SM_OK;
}

/* Chains everything queued (in batches) after the locked head. */
static sm_status seal_all(sm_db_conn *c, const sm_ks_ctx *ctx, int locking, uint64_t *seq,
                          uint8_t head[SM_KS_LEDGER_HASH_LEN], uint64_t *total, sm_error *err)
{
    size_t n = 0;
    *total = 0;
    do {
        sm_status st = seal_batch(c, ctx, locking, seq, head, &n, err);
        if (st != SM_OK)
            return st;
        *total += n;
    } while (n == SEAL_BATCH);
    return SM_OK;
}

/* The head, locked, and whether an entry is queued (in either queue), in
 * one round trip: the lock is held until COMMIT and every append waits for
 * it, so each round trip under it counts. The queue checks are locking
 * reads of their own (FOR UPDATE on the outer query does not reach a
 * subquery, which would otherwise read the transaction's snapshot, older
 * than an entry committed while this transaction waited for a row lock);
 * they see the committed queues as seal_all's reads do. When nothing is
 * queued, the append needs no other read. */
static sm_status lock_head_for_append(sm_db_conn *c, uint64_t *seq,
                                      uint8_t hash[SM_KS_LEDGER_HASH_LEN], int *any_queued,
                                      sm_error *err)
{
    sm_db_rows *rows = NULL;
    int has = 0;
    size_t len = 0;
    int64_t any = 1;
    *any_queued = 1;
    sm_status st = sm_db_query(c,
                               "SELECT h.seq, h.hash, EXISTS (SELECT 1 FROM licenses "
                               "WHERE chained = 0 LIMIT 1 LOCK IN SHARE MODE) OR "
                               "EXISTS (SELECT 1 FROM ledger_queue WHERE chained = 0 "
                               "LIMIT 1 LOCK IN SHARE MODE) "
                               "FROM ledger_head h WHERE h.id = 1 FOR UPDATE",
                               NULL, 0, &rows, err);
    if (st == SM_OK)
        st = sm_db_rows_next(rows, &has, err);
    if (st == SM_OK) {
        const char *h = has ? sm_db_col_text(rows, 1, &len) : NULL;
        if (!has || h == NULL || len != SM_KS_LEDGER_HASH_LEN)
            st = sm_error_set(err, SM_ERR_DB, "the ledger head row is missing or damaged");
        else if ((st = sm_db_col_uint(rows, 0, seq, err)) == SM_OK &&
                 (st = sm_db_col_int(rows, 2, &any, err)) == SM_OK)
            memcpy(hash, h, SM_KS_LEDGER_HASH_LEN);
    }
    sm_db_rows_free(rows);
    /* Anything but a clear 0 means: look (seal_all finds what there is). */
    *any_queued = any != 0;
    return st;
}

sm_status sm_ks_ledger_append(sm_db_conn *c, const sm_ks_ctx *ctx, const char *type,
                              const char *txn, json_t *data, uint64_t *seq_out, sm_error *err)
{
    uint64_t seq = 0, sealed = 0;
    uint8_t head[SM_KS_LEDGER_HASH_LEN];
    int any_queued = 0;
    /* The head row is the ledger's single writer lock: taken last in every
     * transaction (after the rows of the event), it orders all appends.
     * Entries queued by events this transaction can see go first, so the
     * chain keeps the order in which things happened. */
    sm_status st = lock_head_for_append(c, &seq, head, &any_queued, err);
    if (st == SM_OK && any_queued)
        st = seal_all(c, ctx, 1, &seq, head, &sealed, err);
    if (st != SM_OK)
        return st;
    seq++;
    sm_ks_ledger_entry e = {seq, sm_ks_now(ctx), type, data};
    if ((st = sm_ks_ledger_hash(head, &e, head, err)) != SM_OK)
        return st;
    char *text = sm_ks_ledger_data_to_text(data);
    if (text == NULL)
        return sm_error_set(err, SM_ERR_NOMEM, "out of memory");
    st = sm_db_exec(c, insert_1,
                    SM_DB_PARAMS(sm_db_uint(seq), sm_db_int(e.time), sm_db_text(type),
                                 sm_db_text(text), sm_db_blob(head, sizeof(head)),
                                 sm_db_text(txn)),
                    NULL, err);
    free(text);
    st = ledger_insert_status(st, seq, err);
    if (st == SM_OK && ctx->checkpoint_every > 0 && seq % ctx->checkpoint_every == 0)
        st = store_checkpoint(c, ctx, seq, head, NULL, err);
    if (st == SM_OK && seq_out != NULL)
        *seq_out = seq;
    return st;
}

sm_status sm_ks_ledger_enqueue(sm_db_conn *c, const sm_ks_ctx *ctx, const char *type,
                               const char *txn, json_t *data, sm_error *err)
{
    /* Checked here, not first by the sealer: an entry it could not chain
     * would be chained as an unreadable-entry, its content lost to the
     * chain. */
    sm_error why = {0};
    sm_ks_ledger_entry probe = {1, sm_ks_now(ctx), type, data};
    if (sm_ks_ledger_check_entry(&probe, &why) != SM_OK)
        return sm_error_set(err, SM_ERR_ARG, "cannot queue a %s ledger entry: %s",
                            type != NULL ? type : "(typeless)", why.message);
    if (txn != NULL && (txn[0] == '\0' || strlen(txn) > SM_KS_ID_MAX))
        return sm_error_set(err, SM_ERR_ARG,
                            "cannot queue a %s ledger entry: a transaction id has 1 to %u "
                            "characters",
                            type, SM_KS_ID_MAX);
    char *text = sm_ks_ledger_data_to_text(data);
    if (text == NULL)
        return sm_error_set(err, SM_ERR_NOMEM, "out of memory");
    /* The entry's place in the one queue order of licenses and events. */
    sm_status st = sm_db_exec(c,
                              "INSERT INTO ledger_queue (queue_order, created_at, type, data, "
                              "txn) VALUES (NEXT VALUE FOR ledger_queue_order, ?, ?, ?, ?)",
                              SM_DB_PARAMS(sm_db_int(sm_ks_now(ctx)), sm_db_text(type),
                                           sm_db_text(text), sm_db_text(txn)),
                              NULL, err);
    free(text);
    return st;
}

typedef struct seal_args {
    const sm_ks_ctx *ctx;
    size_t sealed;
} seal_args;

/* One batch per transaction: the head lock is held for one batch only. */
static sm_status seal_tx(sm_db_conn *c, void *argp, sm_error *err)
{
    seal_args *a = argp;
    uint64_t seq = 0;
    uint8_t head[SM_KS_LEDGER_HASH_LEN];
    a->sealed = 0;
    /* Another sealer (a child, an append, a checkpoint) holds the head:
     * it chains the queue, this one need not wait for it with a pooled
     * connection. */
    sm_status st = read_head(c, HEAD_LOCK_SKIP, &seq, head, err);
    if (st == SM_ERR_NOT_FOUND)
        return SM_OK;
    if (st == SM_OK)
        st = seal_batch(c, a->ctx, 0, &seq, head, &a->sealed, err);
    return st;
}

sm_status sm_ks_ledger_seal(const sm_ks_ctx *ctx, const atomic_int *stop, uint64_t *sealed,
                            sm_error *err)
{
    uint64_t total = 0;
    if (sealed != NULL)
        *sealed = 0;
    if (ctx->db == NULL)
        return sm_error_set(err, SM_ERR_UNAVAILABLE, "the database is not configured");
    /* Most calls find the queue empty: one cheap read, no lock. */
    sm_db_conn *c = NULL;
    int has = 0;
    int64_t any = 1;
    sm_status st = sm_db_acquire(ctx->db, &c, err);
    if (st != SM_OK)
        return st;
    sm_db_rows *rows = NULL;
    st = sm_db_query(c,
                     "SELECT EXISTS (SELECT 1 FROM licenses WHERE chained = 0) OR "
                     "EXISTS (SELECT 1 FROM ledger_queue WHERE chained = 0)",
                     NULL, 0, &rows, err);
    if (st == SM_OK)
        st = sm_db_rows_next(rows, &has, err);
    if (st == SM_OK && has)
        st = sm_db_col_int(rows, 0, &any, err);
    sm_db_rows_free(rows);
    sm_db_release(c);
    if (st != SM_OK || !any)
        return st;
    seal_args a = {ctx, 0};
    do {
        if ((st = sm_db_transaction(ctx->db, seal_tx, &a, err)) != SM_OK)
            return st;
        total += a.sealed;
        if (sealed != NULL)
            *sealed = total;
    } while (a.sealed == SEAL_BATCH && (stop == NULL || !atomic_load(stop)));
    return SM_OK;
}

/* ---- checkpoints on demand ------------------------------------------------- */

typedef struct checkpoint_args {
    const sm_ks_ctx *ctx;
    sm_ks_result *out;
    /* The head the transaction checkpointed (seq 0: the ledger is empty). */
    uint64_t seq;
    uint8_t head[SM_KS_LEDGER_HASH_LEN];
} checkpoint_args;

static sm_status checkpoint_tx(sm_db_conn *c, void *argp, sm_error *err)
{
    checkpoint_args *a = argp;
    uint64_t seq = 0;
    uint8_t head[SM_KS_LEDGER_HASH_LEN];
    sm_ks_result_clear(a->out);
    uint64_t sealed = 0;
    /* Queued entries first: the checkpoint covers every event so far. */
    sm_status st = read_head(c, 1, &seq, head, err);
    if (st == SM_OK)
        st = seal_all(c, a->ctx, 0, &seq, head, &sealed, err);
    if (st != SM_OK)
        return st;
    a->seq = seq;
    memcpy(a->head, head, sizeof(a->head));
    if (seq == 0)
        return ks_refuse_tx(a->out, 409, "ledger-empty", "Ledger empty",
                            "the ledger has no entries yet, so there is nothing to checkpoint");
    sm_db_rows *rows = NULL;
    int has = 0;
    st = sm_db_query(c, "SELECT token FROM ledger_checkpoints WHERE seq = ?",
                     SM_DB_PARAMS(sm_db_uint(seq)), &rows, err);
    if (st == SM_OK)
        st = sm_db_rows_next(rows, &has, err);
    char *token = NULL;
    if (st == SM_OK && has) {
        const char *t = sm_db_col_text(rows, 0, NULL);
        token = t != NULL ? strdup(t) : NULL;
        if (token == NULL)
            st = sm_error_set(err, SM_ERR_NOMEM, "out of memory");
    }
    sm_db_rows_free(rows);
    if (st != SM_OK)
        return st;
    int created = 0;
    if (token == NULL) {
        if ((st = store_checkpoint(c, a->ctx, seq, head, &token, err)) != SM_OK)
            return st;
        created = 1;
    }
    char h64[SM_KS_LEDGER_HASH_B64_SIZE];
    sm_ks_ledger_hash_to_b64(head, h64);
    a->out->status = created ? 201 : 200;
    a->out->body = json_pack("{s:I,s:s,s:s}", "seq", (json_int_t)seq, "head", h64, "token",
                             token);
    free(token);
    return a->out->body != NULL ? SM_OK : sm_error_set(err, SM_ERR_NOMEM, "out of memory");
}

sm_status sm_ks_checkpoint_now(const sm_ks_ctx *ctx, sm_ks_result *out, sm_error *err)
{
    checkpoint_args a = {ctx, out, 0, {0}};
    sm_ks_result_init(out);
    return ks_run(ctx, checkpoint_tx, &a, out, err);
}

sm_status sm_ks_latest_checkpoint(const sm_ks_ctx *ctx, sm_ks_result *out, sm_error *err)
{
    sm_db_conn *c = NULL;
    sm_db_rows *rows = NULL;
    int has = 0;
    sm_ks_result_init(out);
    if (ctx->db == NULL)
        return sm_error_set(err, SM_ERR_UNAVAILABLE, "the database is not configured");
    sm_status st = sm_db_acquire(ctx->db, &c, err);
    if (st != SM_OK)
        return st;
    st = sm_db_query(c, "SELECT seq, token FROM ledger_checkpoints ORDER BY seq DESC LIMIT 1",
                     NULL, 0, &rows, err);
    if (st == SM_OK)
        st = sm_db_rows_next(rows, &has, err);
    if (st == SM_OK && !has) {
        sm_ks_refuse(out, 404, "not-found", "Not found", "no checkpoint has been issued yet");
    } else if (st == SM_OK) {
        uint64_t seq = 0;
        const char *token = sm_db_col_text(rows, 1, NULL);
        if ((st = sm_db_col_uint(rows, 0, &seq, err)) == SM_OK) {
            out->status = 200;
            out->body = json_pack("{s:I,s:s}", "seq", (json_int_t)seq, "token",
                                  token != NULL ? token : "");
            if (out->body == NULL)
                st = sm_error_set(err, SM_ERR_NOMEM, "out of memory");
        }
    }
    sm_db_rows_free(rows);
    sm_db_release(c);
    return st;
}

/* ---- export ---------------------------------------------------------------- */

static int write_line(sm_ks_write_fn write, void *arg, char *line)
{
    if (line == NULL)
        return -1;
    size_t n = strlen(line);
    int rc = write(arg, line, n);
    if (rc == 0)
        rc = write(arg, "\n", 1);
    free(line);
    return rc;
}

/* Writes the checkpoints with from < seq <= to, in order. */
static sm_status export_checkpoints(sm_db_conn *c, uint64_t from, uint64_t to,
                                    sm_ks_write_fn write, void *arg, sm_error *err)
{
    sm_db_rows *rows = NULL;
    int has = 0;
    sm_status st = sm_db_query(c,
                               "SELECT token FROM ledger_checkpoints WHERE seq > ? AND seq <= ? "
                               "ORDER BY seq",
                               SM_DB_PARAMS(sm_db_uint(from), sm_db_uint(to)), &rows, err);
    while (st == SM_OK && (st = sm_db_rows_next(rows, &has, err)) == SM_OK && has) {
        const char *token = sm_db_col_text(rows, 0, NULL);
        if (write_line(write, arg, sm_ks_ledger_export_checkpoint(token != NULL ? token : "",
                                                                  err)) != 0)
            st = sm_error_set(err, SM_ERR_IO, "the client stopped reading the export");
    }
    sm_db_rows_free(rows);
    return st;
}

/* The export line of a ledger row the format cannot carry as it is (a
 * type, time or hash out of its rules; data that is no longer a data
 * object is written as {}): what is stored, so that the export still
 * reaches its end and `secmedia ledger verify` names this entry as the
 * first bad one instead of the export stopping there. */
static char *damaged_entry_line(uint64_t seq, int64_t time, const char *type, json_t *data,
                                const char *hash, size_t hash_len)
{
    char h[SM_KS_LEDGER_HASH_B64_SIZE] = "";
    if (hash != NULL && hash_len == SM_KS_LEDGER_HASH_LEN)
        sm_ks_ledger_hash_to_b64((const uint8_t *)hash, h);
    json_t *o = json_pack("{s:s,s:I,s:I,s:s,s:O,s:s}", "kind", "entry", "seq", (json_int_t)seq,
                          "time", (json_int_t)time, "type", type != NULL ? type : "", "data",
                          data, "hash", h);
    char *line = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return line;
}

/* Entries 1..head_seq (the head the export's checkpoint signed, so the
 * export ends with a checkpoint of its last entry; entries chained since
 * are left for the next export). Chained rows never change, so any later
 * snapshot reads them as they were. */
static sm_status export_snapshot(sm_db_conn *c, const sm_ks_ctx *ctx, uint64_t head_seq,
                                 const uint8_t head[SM_KS_LEDGER_HASH_LEN],
                                 sm_ks_write_fn write, void *arg, sm_error *err)
{
    sm_status st = SM_OK;
    char *jwks = sm_ks_keys_jwks_json(ctx->keys, err);
    if (jwks == NULL)
        return err != NULL ? err->status : SM_ERR_NOMEM;
    int rc = write_line(write, arg, sm_ks_ledger_export_header(ctx->issuer, jwks, sm_ks_now(ctx),
                                                               err));
    free(jwks);
    if (rc != 0)
        return sm_error_set(err, SM_ERR_IO, "the client stopped reading the export");

    uint64_t done = 0;
    while (done < head_seq) {
        sm_db_rows *rows = NULL;
        int has = 0;
        uint64_t page_last = done;
        st = sm_db_query(c,
                         "SELECT seq, created_at, type, data, hash FROM ledger "
                         "WHERE seq > ? AND seq <= ? ORDER BY seq LIMIT 1000",
                         SM_DB_PARAMS(sm_db_uint(done), sm_db_uint(head_seq)), &rows, err);
        while (st == SM_OK && (st = sm_db_rows_next(rows, &has, err)) == SM_OK && has) {
            uint64_t seq = 0;
            int64_t time = -1;
            size_t data_len = 0, hash_len = 0;
            json_t *data = NULL;
            const char *type = sm_db_col_text(rows, 2, NULL);
            const char *text = sm_db_col_text(rows, 3, &data_len);
            const char *hash = sm_db_col_text(rows, 4, &hash_len);
            if ((st = sm_db_col_uint(rows, 0, &seq, err)) != SM_OK)
                break;
            /* Exported as stored, even when it no longer parses, breaks
             * the format or no longer matches its hash: the export goes on
             * and the verifier names the entry (damaged_entry_line). */
            int readable = sm_db_col_int(rows, 1, &time, NULL) == SM_OK && type != NULL &&
                           hash != NULL && hash_len == SM_KS_LEDGER_HASH_LEN;
            sm_error why = {0};
            if (text == NULL ||
                sm_ks_ledger_data_from_text(text, data_len, &data, &why) != SM_OK) {
                if (why.status == SM_ERR_NOMEM) {
                    st = sm_error_set(err, SM_ERR_NOMEM, "out of memory");
                    break;
                }
                data = json_object();
                readable = 0;
            }
            sm_ks_ledger_entry e = {seq, time, type, data};
            char *line = readable ? sm_ks_ledger_export_entry(&e, (const uint8_t *)hash, NULL)
                                  : NULL;
            if (line == NULL)
                line = damaged_entry_line(seq, time, type, data, hash, hash_len);
            json_decref(data);
            if (line == NULL) {
                st = sm_error_set(err, SM_ERR_DB, "ledger row %llu cannot be exported",
                                  (unsigned long long)seq);
                break;
            }
            if (write_line(write, arg, line) != 0) {
                st = sm_error_set(err, SM_ERR_IO, "the client stopped reading the export");
                break;
            }
            page_last = seq;
            /* Checkpoints right after the entry they cover. */
            if ((st = export_checkpoints(c, seq - 1, seq, write, arg, err)) != SM_OK)
                break;
        }
        sm_db_rows_free(rows);
        if (st != SM_OK)
            return st;
        /* Rows missing up to the head (deleted): the end line still says
         * the head, and the verifier reports the export as cut there. */
        if (page_last == done)
            break;
        done = page_last;
    }
    if (write_line(write, arg, sm_ks_ledger_export_end(head_seq, head, err)) != 0)
        return sm_error_set(err, SM_ERR_IO, "the client stopped reading the export");
    return SM_OK;
}

sm_status sm_ks_ledger_export(const sm_ks_ctx *ctx, sm_ks_write_fn write, void *arg,
                              sm_error *err)
{
    /* An export ends with a checkpoint of its head, so anyone holding it
     * can later detect a cut behind it. */
    sm_ks_result cp;
    sm_ks_result_init(&cp);
    checkpoint_args a = {ctx, &cp, 0, {0}};
    sm_status st = ks_run(ctx, checkpoint_tx, &a, &cp, err);
    /* 200/201: a checkpoint of a.seq exists; 409: the ledger is empty. */
    if (st == SM_OK && cp.status != 200 && cp.status != 201 && cp.status != 409)
        st = sm_error_set(err, SM_ERR_DB, "the export's checkpoint failed (%d)", cp.status);
    sm_ks_result_clear(&cp);
    if (st != SM_OK)
        return st;
    sm_db_conn *c = NULL;
    if ((st = sm_db_acquire(ctx->db, &c, err)) != SM_OK)
        return st;
    /* One snapshot: the checkpoints listed are those committed when it
     * starts. */
    if ((st = sm_db_begin(c, err)) == SM_OK) {
        st = export_snapshot(c, ctx, a.seq, a.head, write, arg, err);
        sm_db_rollback(c);
    }
    sm_db_release(c);
    return st;
}

sm_status sm_ks_purge_proofs(const sm_ks_ctx *ctx, uint64_t *purged, sm_error *err)
{
    sm_db_conn *c = NULL;
    if (ctx->db == NULL)
        return sm_error_set(err, SM_ERR_UNAVAILABLE, "the database is not configured");
    sm_status st = sm_db_acquire(ctx->db, &c, err);
    if (st != SM_OK)
        return st;
    /* Keep proofs until no verifier could accept them again: max age plus
     * the allowed clock skew, with a margin. */
    int64_t keep = ctx->proof_max_age + 2 * SM_JOSE_DEFAULT_SKEW;
    st = sm_db_exec(c, "DELETE FROM dpop_jtis WHERE seen_at < ?",
                    SM_DB_PARAMS(sm_db_int(sm_ks_now(ctx) - keep)), purged, err);
    sm_db_release(c);
    return st;
}
