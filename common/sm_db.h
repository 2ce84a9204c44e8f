/* MariaDB access for the server modules: a connection pool per process,
 * prepared statements with typed parameters, explicit transactions retried
 * as a whole on deadlock or lock wait timeout.
 *
 * No httpd dependency: the modules create one pool per child process (in
 * child_init) and tests drive the same code directly.
 *
 * Rules this API enforces or makes easy:
 * - SQL text is always a constant with `?` placeholders; values travel as
 *   typed parameters (sm_db_text, sm_db_int, ...), never spliced into SQL.
 * - Auto-reconnect is off: a connection that failed is discarded and a new
 *   one is made on the next acquire, so prepared statements and session
 *   state never silently vanish (the mod_dbd error 2030 trap).
 * - "Database unreachable" is its own status, SM_ERR_UNAVAILABLE, so
 *   request handlers answer 503 and fail closed. SM_ERR_CONFLICT means a
 *   deadlock or lock wait timeout (sm_db_transaction retries those),
 *   SM_ERR_DUPLICATE a unique-key violation, SM_ERR_DB anything else the
 *   server refused (a bug in the SQL, a constraint).
 * - Error messages carry the server's message but never the password. */
#ifndef SM_DB_H
#define SM_DB_H

#include <stddef.h>
#include <stdint.h>

#include "sm_error.h"

/* Most `?` placeholders in one statement. */
#define SM_DB_MAX_PARAMS 64u

/* Longest password accepted from a password file. */
#define SM_DB_PASSWORD_MAX 256u

typedef struct sm_db_config {
    const char *socket;      /* Unix socket path; if NULL, host and port are used */
    const char *host;        /* default "localhost" */
    unsigned port;           /* default 3306 */
    const char *user;        /* required */
    const char *password;    /* may be NULL (socket authentication) */
    const char *database;    /* required */
    unsigned connect_timeout_s;  /* default 5 */
    unsigned read_timeout_s;     /* default 30 */
    unsigned write_timeout_s;    /* default 30 */
    unsigned lock_wait_timeout_s; /* innodb_lock_wait_timeout of each session, default 10 */
    unsigned pool_size;          /* connections per process, default 8 */
    unsigned acquire_timeout_ms; /* wait for a free connection, default 2000 */
    unsigned health_check_idle_ms; /* ping a connection on acquire when it sat idle at
                                    * least this long (0: always), default 1000 */
    unsigned tx_max_attempts;    /* sm_db_transaction attempts on conflict, default 5 */
    unsigned min_schema_version; /* 0: none; else every new connection checks that
                                  * MAX(version) of table schema_version (written by
                                  * secmedia-db-migrate) is at least this, and the
                                  * acquire fails with SM_ERR_DB otherwise */
} sm_db_config;

/* Fills c with the defaults above (strings NULL). */
void sm_db_config_defaults(sm_db_config *c);

/* Checks that the required fields are set and the numbers are sane. */
sm_status sm_db_config_check(const sm_db_config *c, sm_error *err);

/* Reads a password from the first line of a file (a trailing "\n" or
 * "\r\n" is dropped; at most SM_DB_PASSWORD_MAX bytes, no NUL, no other
 * line). Refuses a file that others (not owner or group) can read.
 * Messages name the file, never its content. */
sm_status sm_db_read_password_file(const char *path, char *buf, size_t size, sm_error *err);

/* Initialises the client library once per process (thread-safe). Call
 * before creating threads that use the pool; sm_db_pool_new calls it too. */
sm_status sm_db_library_init(sm_error *err);

typedef struct sm_db_pool sm_db_pool;
typedef struct sm_db_conn sm_db_conn;

/* A pool for one database. Copies the configuration; connects lazily. */
sm_status sm_db_pool_new(const sm_db_config *cfg, sm_db_pool **out, sm_error *err);

/* Closes every idle connection and frees the pool. Connections still
 * acquired must be released first. NULL is fine. */
void sm_db_pool_free(sm_db_pool *pool);

/* Takes a connection: an idle one (pinged when it was idle long enough) or
 * a new one. SM_ERR_UNAVAILABLE when the server cannot be reached or every
 * connection stayed busy for acquire_timeout_ms. */
sm_status sm_db_acquire(sm_db_pool *pool, sm_db_conn **out, sm_error *err);

/* Gives the connection back. A connection with an open transaction is
 * rolled back first; a broken one is closed and replaced later. */
void sm_db_release(sm_db_conn *conn);

/* --- statements ----------------------------------------------------------- */

typedef enum sm_db_param_type {
    SM_DB_PARAM_NULL,
    SM_DB_PARAM_INT,  /* int64_t */
    SM_DB_PARAM_UINT, /* uint64_t */
    SM_DB_PARAM_TEXT, /* UTF-8 bytes, len given */
    SM_DB_PARAM_BLOB  /* bytes, len given */
} sm_db_param_type;

typedef struct sm_db_param {
    sm_db_param_type type;
    int64_t i;
    uint64_t u;
    const void *data;
    size_t len;
} sm_db_param;

sm_db_param sm_db_null(void);
sm_db_param sm_db_int(int64_t v);
sm_db_param sm_db_uint(uint64_t v);
sm_db_param sm_db_text(const char *s); /* NULL becomes SQL NULL */
sm_db_param sm_db_text_n(const char *s, size_t len);
sm_db_param sm_db_blob(const void *data, size_t len);

/* Number of elements of a parameter array. */
#define SM_DB_PARAMS(...) (const sm_db_param[]){__VA_ARGS__}, \
    (sizeof((const sm_db_param[]){__VA_ARGS__}) / sizeof(sm_db_param))

/* Runs a statement that returns no rows (INSERT, UPDATE, DELETE, DDL).
 * sql must be a constant; the number of `?` must equal nparams.
 * affected (may be NULL) gets the affected row count. */
sm_status sm_db_exec(sm_db_conn *conn, const char *sql, const sm_db_param *params,
                     size_t nparams, uint64_t *affected, sm_error *err);

/* Id generated by the last INSERT into an AUTO_INCREMENT column. */
uint64_t sm_db_insert_id(const sm_db_conn *conn);

/* Runs a query and buffers its rows client-side. Read them with
 * sm_db_rows_next and the column getters, then sm_db_rows_free. Other
 * statements may run on the connection while rows are open, except after
 * a CALL of a stored procedure: its first result set is returned, and its
 * status is read when the rows are freed, so free them first (another
 * statement meanwhile fails with SM_ERR_STATE). */
typedef struct sm_db_rows sm_db_rows;

sm_status sm_db_query(sm_db_conn *conn, const char *sql, const sm_db_param *params,
                      size_t nparams, sm_db_rows **out, sm_error *err);
/* *has_row = 1 and the row's columns become readable, or 0 at the end. */
sm_status sm_db_rows_next(sm_db_rows *rows, int *has_row, sm_error *err);
size_t sm_db_rows_count(const sm_db_rows *rows);
unsigned sm_db_rows_columns(const sm_db_rows *rows);
/* Column col of the current row as NUL-terminated bytes (numbers in
 * decimal, dates as "YYYY-MM-DD hh:mm:ss"); NULL for SQL NULL or an
 * invalid column. len (may be NULL) gets the byte length. Valid until the
 * next sm_db_rows_next or sm_db_rows_free. */
const char *sm_db_col_text(const sm_db_rows *rows, unsigned col, size_t *len);
/* Integer columns; SM_ERR_FORMAT when NULL or not an integer in range. */
sm_status sm_db_col_int(const sm_db_rows *rows, unsigned col, int64_t *out, sm_error *err);
sm_status sm_db_col_uint(const sm_db_rows *rows, unsigned col, uint64_t *out, sm_error *err);
void sm_db_rows_free(sm_db_rows *rows);

/* --- transactions --------------------------------------------------------- */

/* Begins a transaction: the connection's autocommit goes off (a round trip
 * the first time only: the pool hands transactions connections already
 * so) and its next statement begins the transaction, as START TRANSACTION
 * would. Plain statements outside a transaction still commit on their own
 * (the connection switches back first). */
sm_status sm_db_begin(sm_db_conn *conn, sm_error *err);
sm_status sm_db_commit(sm_db_conn *conn, sm_error *err);
/* Never fails visibly: a connection whose rollback failed is marked broken. */
void sm_db_rollback(sm_db_conn *conn);

/* Ends the open transaction with a statement that commits it itself: the
 * CALL of a stored procedure whose last statement is COMMIT, one round
 * trip where a last statement and sm_db_commit take two. Returns no rows.
 * On success the transaction is over (sm_db_transaction then commits
 * nothing more); SM_ERR_DB when the server reports it still open. When the
 * statement fails, the transaction is open as after any failed statement.
 * A lost connection is SM_ERR_UNAVAILABLE with the outcome unknown, as
 * for sm_db_commit, and not retried by sm_db_transaction: the statements
 * the procedure ran before its COMMIT are part of that unknown outcome.
 * After it succeeded, sm_db_transaction neither commits nor rolls back
 * (no round trip) and never runs the body again, whatever it returns. */
sm_status sm_db_exec_commit(sm_db_conn *conn, const char *sql, const sm_db_param *params,
                            size_t nparams, sm_error *err);

/* The body of a transaction. It may run more than once, so it must not
 * have effects outside the database (or must make them idempotent), and it
 * must start from its inputs each time. Return SM_OK to commit (or after
 * committing with sm_db_exec_commit, as its last statement); any other
 * status rolls back. SM_ERR_CONFLICT from a statement (deadlock, lock wait
 * timeout) makes sm_db_transaction roll back and run it again. Use
 * `SELECT ... FOR UPDATE` inside it to lock rows you are about to change. */
typedef sm_status (*sm_db_tx_fn)(sm_db_conn *conn, void *arg, sm_error *err);

/* Acquires a connection, runs fn inside a transaction (sm_db_begin ...
 * COMMIT) and releases the connection. Retries the whole transaction,
 * with a short randomised backoff, up to tx_max_attempts times on
 * SM_ERR_CONFLICT, and once on a fresh connection when the connection was lost before COMMIT
 * was sent (nothing was committed then). A connection lost during COMMIT
 * is SM_ERR_UNAVAILABLE: the outcome is unknown, so callers must be able
 * to repeat the request (idempotency keys, unique inserts). */
sm_status sm_db_transaction(sm_db_pool *pool, sm_db_tx_fn fn, void *arg, sm_error *err);

/* Runs fn on a pooled connection outside a transaction: each statement
 * commits on its own. For bodies of one write, or whose writes are each
 * safe alone. Retried like sm_db_transaction (SM_ERR_CONFLICT with
 * backoff, once more when the connection was lost), so fn must be safe to
 * run again after a partial run (conditional updates, unique inserts). */
sm_status sm_db_autocommit(sm_db_pool *pool, sm_db_tx_fn fn, void *arg, sm_error *err);

/* Pool statistics, for tests and status pages. */
typedef struct sm_db_pool_stats {
    unsigned open;       /* connections currently open (idle + in use) */
    unsigned idle;
    uint64_t connects;   /* connections made so far */
    uint64_t discarded;  /* connections closed because they failed */
    uint64_t retries;    /* transaction attempts repeated */
} sm_db_pool_stats;

void sm_db_pool_get_stats(sm_db_pool *pool, sm_db_pool_stats *out);

#endif
