#include "config.h"

/* The ledger in the database: appends inside business transactions,
 * checkpoints, export, and proof-table housekeeping (sm_ks_store.h). */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sm_ks_store_int.h"

/* Reads the head (locked FOR UPDATE when lock). */
static sm_status read_head(sm_db_conn *c, int lock, uint64_t *seq,
                           uint8_t hash[SM_KS_LEDGER_HASH_LEN], sm_error *err)
{
    sm_db_rows *rows = NULL;
    int has = 0;
    size_t len = 0;
    sm_status st = sm_db_query(c,
                               lock ? "SELECT seq, hash FROM ledger_head WHERE id = 1 FOR UPDATE"
                                    : "SELECT seq, hash FROM ledger_head WHERE id = 1",
                               NULL, 0, &rows, err);
    if (st != SM_OK)
        return st;
    if ((st = sm_db_rows_next(rows, &has, err)) == SM_OK) {
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

sm_status sm_ks_ledger_append(sm_db_conn *c, const sm_ks_ctx *ctx, const char *type,
                              const char *txn, json_t *data, uint64_t *seq_out, sm_error *err)
{
    uint64_t seq = 0;
    uint8_t head[SM_KS_LEDGER_HASH_LEN];
    /* The head row is the ledger's single writer lock: taken last in every
     * transaction (after the rows of the event), it orders all appends. */
    sm_status st = read_head(c, 1, &seq, head, err);
    if (st != SM_OK)
        return st;
    seq++;
    sm_ks_ledger_entry e = {seq, sm_ks_now(ctx), type, data};
    if ((st = sm_ks_ledger_hash(head, &e, head, err)) != SM_OK)
        return st;
    char *text = sm_ks_ledger_data_to_text(data);
    if (text == NULL)
        return sm_error_set(err, SM_ERR_NOMEM, "out of memory");
    st = sm_db_exec(c,
                    "INSERT INTO ledger (seq, created_at, type, data, hash, txn) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    SM_DB_PARAMS(sm_db_uint(seq), sm_db_int(e.time), sm_db_text(type),
                                 sm_db_text(text), sm_db_blob(head, sizeof(head)),
                                 sm_db_text(txn)),
                    NULL, err);
    free(text);
    if (st == SM_OK)
        st = sm_db_exec(c, "UPDATE ledger_head SET seq = ?, hash = ? WHERE id = 1",
                        SM_DB_PARAMS(sm_db_uint(seq), sm_db_blob(head, sizeof(head))), NULL, err);
    if (st == SM_OK && ctx->checkpoint_every > 0 && seq % ctx->checkpoint_every == 0)
        st = store_checkpoint(c, ctx, seq, head, NULL, err);
    if (st == SM_OK && seq_out != NULL)
        *seq_out = seq;
    return st;
}

/* ---- checkpoints on demand ------------------------------------------------- */

typedef struct checkpoint_args {
    const sm_ks_ctx *ctx;
    sm_ks_result *out;
} checkpoint_args;

static sm_status checkpoint_tx(sm_db_conn *c, void *argp, sm_error *err)
{
    checkpoint_args *a = argp;
    uint64_t seq = 0;
    uint8_t head[SM_KS_LEDGER_HASH_LEN];
    sm_ks_result_clear(a->out);
    sm_status st = read_head(c, 1, &seq, head, err);
    if (st != SM_OK)
        return st;
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
    checkpoint_args a = {ctx, out};
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

static sm_status export_snapshot(sm_db_conn *c, const sm_ks_ctx *ctx, sm_ks_write_fn write,
                                 void *arg, sm_error *err)
{
    uint64_t head_seq = 0;
    uint8_t head[SM_KS_LEDGER_HASH_LEN];
    sm_status st = read_head(c, 0, &head_seq, head, err);
    if (st != SM_OK)
        return st;
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
            int64_t time = 0;
            size_t data_len = 0, hash_len = 0;
            json_t *data = NULL;
            const char *type = sm_db_col_text(rows, 2, NULL);
            const char *text = sm_db_col_text(rows, 3, &data_len);
            const char *hash = sm_db_col_text(rows, 4, &hash_len);
            if ((st = sm_db_col_uint(rows, 0, &seq, err)) != SM_OK ||
                (st = sm_db_col_int(rows, 1, &time, err)) != SM_OK)
                break;
            if (type == NULL || text == NULL || hash == NULL ||
                hash_len != SM_KS_LEDGER_HASH_LEN) {
                st = sm_error_set(err, SM_ERR_DB, "ledger row %llu is damaged",
                                  (unsigned long long)seq);
                break;
            }
            /* Exported as stored, even when it no longer parses or no
             * longer matches its hash: the verifier is the judge. */
            if (sm_ks_ledger_data_from_text(text, data_len, &data, NULL) != SM_OK)
                data = json_object();
            sm_ks_ledger_entry e = {seq, time, type, data};
            char *line = sm_ks_ledger_export_entry(&e, (const uint8_t *)hash, err);
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
        if (page_last == done)
            return sm_error_set(err, SM_ERR_DB, "the ledger has a gap after seq %llu",
                                (unsigned long long)done);
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
    checkpoint_args a = {ctx, &cp};
    sm_status st = ks_run(ctx, checkpoint_tx, &a, &cp, err);
    sm_ks_result_clear(&cp);
    if (st != SM_OK)
        return st;
    sm_db_conn *c = NULL;
    if ((st = sm_db_acquire(ctx->db, &c, err)) != SM_OK)
        return st;
    /* One snapshot (InnoDB's REPEATABLE READ, taken at the first read, the
     * head): entries appended meanwhile are not half-included. */
    if ((st = sm_db_begin(c, err)) == SM_OK) {
        st = export_snapshot(c, ctx, write, arg, err);
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
