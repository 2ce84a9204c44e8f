/* Drives common/sm_db.c against a real MariaDB for tests/integration/
 * test_db_pool.py, which starts the server and passes the connection in
 * SM_DB_SOCKET, SM_DB_USER, SM_DB_PASSWORD and SM_DB_NAME.
 *
 *   db_pool_helper basic        statements, types, errors, transactions
 *   db_pool_helper deadlock     two threads deadlock; the retry saves both
 *   db_pool_helper fairness     waiters served in arrival order, no barging
 *   db_pool_helper midresult    an error inside a result leaves no connection out of step
 *   db_pool_helper exhausted    every connection busy -> unavailable
 *   db_pool_helper unavailable  the server is down -> unavailable
 *   db_pool_helper interactive  one pool; each stdin line "query" prints the
 *                               status of a transaction (for stop/start)
 * Exit 0 when every check held; failures are printed. */
#include "config.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sm_db.h"

static int failures;

#define CHECK(cond, ...)                                                                       \
    do {                                                                                       \
        if (!(cond)) {                                                                         \
            fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__, #cond);          \
            fprintf(stderr, __VA_ARGS__);                                                      \
            fputc('\n', stderr);                                                               \
            failures++;                                                                        \
        }                                                                                      \
    } while (0)

#define MUST(expr, err)                                                                        \
    do {                                                                                       \
        sm_status must_st = (expr);                                                            \
        if (must_st != SM_OK) {                                                                \
            fprintf(stderr, "%s:%d: %s failed: %s (%s)\n", __FILE__, __LINE__, #expr,          \
                    (err)->message, sm_status_name(must_st));                                 \
            exit(1);                                                                           \
        }                                                                                      \
    } while (0)

static sm_db_config config_from_env(void)
{
    sm_db_config c;
    sm_db_config_defaults(&c);
    c.socket = getenv("SM_DB_SOCKET");
    c.user = getenv("SM_DB_USER");
    c.password = getenv("SM_DB_PASSWORD");
    c.database = getenv("SM_DB_NAME");
    c.connect_timeout_s = 2;
    c.lock_wait_timeout_s = 2;
    if (c.socket == NULL || c.user == NULL || c.database == NULL) {
        fprintf(stderr, "set SM_DB_SOCKET, SM_DB_USER, SM_DB_PASSWORD and SM_DB_NAME\n");
        exit(2);
    }
    return c;
}

static sm_db_pool *pool_new(const sm_db_config *c)
{
    sm_db_pool *p;
    sm_error err;
    MUST(sm_db_pool_new(c, &p, &err), &err);
    return p;
}

static void basic(void)
{
    sm_db_config cfg = config_from_env();
    sm_db_pool *pool = pool_new(&cfg);
    sm_db_conn *c;
    sm_error err;
    MUST(sm_db_acquire(pool, &c, &err), &err);
    MUST(sm_db_exec(c, "DROP TABLE IF EXISTS t_basic", NULL, 0, NULL, &err), &err);
    MUST(sm_db_exec(c,
                    "CREATE TABLE t_basic (id BIGINT AUTO_INCREMENT PRIMARY KEY, "
                    "name VARCHAR(200) NOT NULL UNIQUE, data BLOB NULL, n BIGINT NULL, "
                    "u BIGINT UNSIGNED NULL) ENGINE=InnoDB",
                    NULL, 0, NULL, &err),
         &err);

    /* SQL metacharacters and a long value travel as data, never as SQL. */
    const char *evil = "x'); DROP TABLE t_basic; -- \"\\%_";
    char longname[190];
    memset(longname, 'L', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    static const unsigned char blob[] = {0, 1, 2, 0, 255, '\'', 0};
    uint64_t affected = 0;
    MUST(sm_db_exec(c, "INSERT INTO t_basic (name, data, n, u) VALUES (?, ?, ?, ?)",
                    SM_DB_PARAMS(sm_db_text(evil), sm_db_blob(blob, sizeof(blob)),
                                 sm_db_int(-42), sm_db_uint(UINT64_MAX)),
                    &affected, &err),
         &err);
    CHECK(affected == 1, "affected %llu", (unsigned long long)affected);
    CHECK(sm_db_insert_id(c) == 1, "insert id %llu", (unsigned long long)sm_db_insert_id(c));
    MUST(sm_db_exec(c, "INSERT INTO t_basic (name, data, n, u) VALUES (?, ?, ?, ?)",
                    SM_DB_PARAMS(sm_db_text(longname), sm_db_null(), sm_db_null(),
                                 sm_db_text(NULL)),
                    NULL, &err),
         &err);

    sm_db_rows *rows;
    MUST(sm_db_query(c, "SELECT name, data, n, u FROM t_basic ORDER BY id", NULL, 0, &rows, &err),
         &err);
    CHECK(sm_db_rows_count(rows) == 2, "rows %zu", sm_db_rows_count(rows));
    CHECK(sm_db_rows_columns(rows) == 4, "columns %u", sm_db_rows_columns(rows));
    int has;
    MUST(sm_db_rows_next(rows, &has, &err), &err);
    CHECK(has, "first row");
    size_t len;
    CHECK(strcmp(sm_db_col_text(rows, 0, NULL), evil) == 0, "name %s",
          sm_db_col_text(rows, 0, NULL));
    const char *data = sm_db_col_text(rows, 1, &len);
    CHECK(len == sizeof(blob) && memcmp(data, blob, len) == 0, "blob len %zu", len);
    int64_t n;
    uint64_t u;
    MUST(sm_db_col_int(rows, 2, &n, &err), &err);
    MUST(sm_db_col_uint(rows, 3, &u, &err), &err);
    CHECK(n == -42 && u == UINT64_MAX, "n %lld u %llu", (long long)n, (unsigned long long)u);
    MUST(sm_db_rows_next(rows, &has, &err), &err);
    CHECK(has, "second row");
    /* Longer than the first column buffer: grown on truncation. */
    CHECK(strcmp(sm_db_col_text(rows, 0, &len), longname) == 0 && len == strlen(longname),
          "long name len %zu", len);
    CHECK(sm_db_col_text(rows, 1, NULL) == NULL, "NULL blob");
    CHECK(sm_db_col_int(rows, 2, &n, &err) == SM_ERR_FORMAT, "NULL int is an error");
    CHECK(sm_db_col_text(rows, 9, NULL) == NULL, "column out of range");
    MUST(sm_db_rows_next(rows, &has, &err), &err);
    CHECK(!has, "end of rows");
    sm_db_rows_free(rows);

    /* Error classes. */
    sm_status st = sm_db_exec(c, "INSERT INTO t_basic (name) VALUES (?)",
                              SM_DB_PARAMS(sm_db_text(evil)), NULL, &err);
    CHECK(st == SM_ERR_DUPLICATE, "duplicate: %s %s", sm_status_name(st), err.message);
    st = sm_db_exec(c, "INSERT INTO t_basic (name) VALUES (?)", NULL, 0, NULL, &err);
    CHECK(st == SM_ERR_ARG, "placeholder count: %s", sm_status_name(st));
    st = sm_db_exec(c, "SELEKT nonsense", NULL, 0, NULL, &err);
    CHECK(st == SM_ERR_DB, "syntax error: %s", sm_status_name(st));
    st = sm_db_exec(c, "SELECT 1", NULL, 0, NULL, &err);
    CHECK(st == SM_ERR_ARG, "exec of a query: %s", sm_status_name(st));
    st = sm_db_query(c, "DELETE FROM t_basic WHERE id = 0", NULL, 0, &rows, &err);
    CHECK(st == SM_ERR_ARG && rows == NULL, "query of a statement: %s", sm_status_name(st));
    /* The connection stays usable after server-side errors. */
    MUST(sm_db_query(c, "SELECT COUNT(*) FROM t_basic", NULL, 0, &rows, &err), &err);
    MUST(sm_db_rows_next(rows, &has, &err), &err);
    MUST(sm_db_col_int(rows, 0, &n, &err), &err);
    CHECK(n == 2, "count %lld", (long long)n);
    sm_db_rows_free(rows);

    /* Explicit transaction rolled back leaves nothing. */
    MUST(sm_db_begin(c, &err), &err);
    MUST(sm_db_exec(c, "INSERT INTO t_basic (name) VALUES ('rolled back')", NULL, 0, NULL, &err),
         &err);
    sm_db_rollback(c);
    /* A transaction left open at release is rolled back too. */
    MUST(sm_db_begin(c, &err), &err);
    MUST(sm_db_exec(c, "INSERT INTO t_basic (name) VALUES ('left open')", NULL, 0, NULL, &err),
         &err);
    sm_db_release(c);
    MUST(sm_db_acquire(pool, &c, &err), &err);
    MUST(sm_db_query(c, "SELECT COUNT(*) FROM t_basic", NULL, 0, &rows, &err), &err);
    MUST(sm_db_rows_next(rows, &has, &err), &err);
    MUST(sm_db_col_int(rows, 0, &n, &err), &err);
    CHECK(n == 2, "count after rollbacks %lld", (long long)n);
    sm_db_rows_free(rows);
    /* utf8mb4 end to end. */
    const char *emoji = "caf\xc3\xa9 \xf0\x9f\x8e\xb5";
    MUST(sm_db_query(c, "SELECT ?, CHAR_LENGTH(?)", SM_DB_PARAMS(sm_db_text(emoji), sm_db_text(emoji)),
                     &rows, &err),
         &err);
    MUST(sm_db_rows_next(rows, &has, &err), &err);
    MUST(sm_db_col_int(rows, 1, &n, &err), &err);
    CHECK(strcmp(sm_db_col_text(rows, 0, NULL), emoji) == 0 && n == 6, "utf8mb4: %lld",
          (long long)n);
    sm_db_rows_free(rows);
    sm_db_release(c);

    sm_db_pool_stats stats;
    sm_db_pool_get_stats(pool, &stats);
    CHECK(stats.open == 1 && stats.idle == 1 && stats.connects == 1, "stats open %u idle %u",
          stats.open, stats.idle);
    sm_db_pool_free(pool);
}

/* --- autocommit modes ----------------------------------------------------------- */

static sm_status insert_named(sm_db_conn *c, void *arg, sm_error *err)
{
    return sm_db_exec(c, "INSERT INTO t_modes (name) VALUES (?)",
                      SM_DB_PARAMS(sm_db_text((const char *)arg)), NULL, err);
}

static sm_status refuse_after_insert(sm_db_conn *c, void *arg, sm_error *err)
{
    sm_status st = insert_named(c, arg, err);
    return st != SM_OK ? st : sm_error_set(err, SM_ERR_STATE, "refused on purpose");
}

/* One integer from another session (committed state only). */
static int64_t other_int(sm_db_pool *other, const char *sql)
{
    sm_db_conn *c;
    sm_db_rows *rows = NULL;
    sm_error err;
    int has = 0;
    int64_t n = -1;
    MUST(sm_db_acquire(other, &c, &err), &err);
    MUST(sm_db_query(c, sql, NULL, 0, &rows, &err), &err);
    MUST(sm_db_rows_next(rows, &has, &err), &err);
    MUST(sm_db_col_int(rows, 0, &n, &err), &err);
    sm_db_rows_free(rows);
    sm_db_release(c);
    return n;
}

static int64_t count_modes(sm_db_pool *other)
{
    return other_int(other, "SELECT COUNT(*) FROM t_modes");
}

/* A transaction leaves its connection with autocommit off (the next one
 * needs no START); plain statements on it must still commit on their own,
 * and transactions after them still roll back. Checked from a second pool,
 * i.e. another session, which sees committed rows only. */
static void modes(void)
{
    sm_db_config cfg = config_from_env();
    cfg.pool_size = 1; /* one connection: every step reuses it */
    sm_db_pool *pool = pool_new(&cfg), *other = pool_new(&cfg);
    sm_db_conn *c;
    sm_error err;
    MUST(sm_db_acquire(pool, &c, &err), &err);
    MUST(sm_db_exec(c, "DROP TABLE IF EXISTS t_modes", NULL, 0, NULL, &err), &err);
    MUST(sm_db_exec(c, "CREATE TABLE t_modes (name VARCHAR(20) PRIMARY KEY) ENGINE=InnoDB", NULL,
                    0, NULL, &err),
         &err);
    sm_db_release(c);

    MUST(sm_db_transaction(pool, insert_named, (void *)"tx1", &err), &err);
    CHECK(count_modes(other) == 1, "first transaction committed");
    /* A plain write on the same connection: committed without a COMMIT. */
    MUST(sm_db_acquire(pool, &c, &err), &err);
    MUST(insert_named(c, (void *)"plain", &err), &err);
    CHECK(count_modes(other) == 2, "a plain write after a transaction commits on its own");
    sm_db_release(c);
    CHECK(count_modes(other) == 2, "still two after release");
    /* A refused transaction after it leaves nothing; a good one commits. */
    sm_status st = sm_db_transaction(pool, refuse_after_insert, (void *)"refused", &err);
    CHECK(st == SM_ERR_STATE, "refusal passed through: %s", sm_status_name(st));
    CHECK(count_modes(other) == 2, "a refused transaction after a plain write rolls back");
    MUST(sm_db_transaction(pool, insert_named, (void *)"tx2", &err), &err);
    /* A transaction begun by hand on a plain connection, rolled back. */
    MUST(sm_db_acquire(pool, &c, &err), &err);
    MUST(sm_db_begin(c, &err), &err);
    MUST(insert_named(c, (void *)"by-hand", &err), &err);
    CHECK(count_modes(other) == 3, "uncommitted row invisible to another session");
    sm_db_rollback(c);
    MUST(insert_named(c, (void *)"plain2", &err), &err);
    sm_db_release(c);
    CHECK(count_modes(other) == 4, "rows: tx1, plain, tx2, plain2");
    /* Outside a transaction each statement stands alone: a body that
     * refuses after its insert keeps the insert. */
    MUST(sm_db_autocommit(pool, insert_named, (void *)"auto", &err), &err);
    st = sm_db_autocommit(pool, refuse_after_insert, (void *)"auto2", &err);
    CHECK(st == SM_ERR_STATE, "refusal passed through: %s", sm_status_name(st));
    CHECK(count_modes(other) == 6, "autocommit rows committed one by one");
    /* And a transaction after them still rolls back as a whole. */
    st = sm_db_transaction(pool, refuse_after_insert, (void *)"refused2", &err);
    CHECK(st == SM_ERR_STATE && count_modes(other) == 6, "rolled back after autocommit use");
    /* REPEATABLE READ whatever the server's default (the ledger sealer
     * relies on it); the test sets the default to READ COMMITTED. */
    sm_db_rows *rows = NULL;
    int has = 0;
    MUST(sm_db_acquire(pool, &c, &err), &err);
    MUST(sm_db_query(c, "SELECT @@SESSION.tx_isolation", NULL, 0, &rows, &err), &err);
    MUST(sm_db_rows_next(rows, &has, &err), &err);
    const char *level = has ? sm_db_col_text(rows, 0, NULL) : NULL;
    CHECK(level != NULL && strcmp(level, "REPEATABLE-READ") == 0, "isolation %s",
          level != NULL ? level : "(none)");
    sm_db_rows_free(rows);
    sm_db_release(c);

    sm_db_pool_stats stats;
    sm_db_pool_get_stats(pool, &stats);
    CHECK(stats.connects == 1, "one connection all along: %llu",
          (unsigned long long)stats.connects);
    sm_db_pool_free(other);
    sm_db_pool_free(pool);
}

/* --- errors inside a result ----------------------------------------------------- */

/* A statement that fails after its result began (INSERT ... RETURNING
 * meeting a duplicate key) must not leave its connection out of step:
 * the next statement, on the same pool, answers at once. */
static void midresult(void)
{
    sm_db_config cfg = config_from_env();
    cfg.pool_size = 1;
    cfg.read_timeout_s = 5; /* a connection out of step would wait this long */
    sm_db_pool *pool = pool_new(&cfg);
    sm_db_conn *c;
    sm_db_rows *rows = NULL;
    sm_error err;
    int has = 0;
    MUST(sm_db_acquire(pool, &c, &err), &err);
    MUST(sm_db_exec(c, "DROP TABLE IF EXISTS t_mid", NULL, 0, NULL, &err), &err);
    MUST(sm_db_exec(c, "CREATE TABLE t_mid (id INT PRIMARY KEY) ENGINE=InnoDB", NULL, 0, NULL,
                    &err),
         &err);
    MUST(sm_db_exec(c, "INSERT INTO t_mid VALUES (1)", NULL, 0, NULL, &err), &err);
    sm_status st = sm_db_query(c, "INSERT INTO t_mid VALUES (?) RETURNING id",
                               SM_DB_PARAMS(sm_db_int(1)), &rows, &err);
    if (st == SM_OK) {
        st = sm_db_rows_next(rows, &has, &err);
        sm_db_rows_free(rows);
    }
    CHECK(st == SM_ERR_DUPLICATE, "duplicate through RETURNING: %s %s", sm_status_name(st),
          err.message);
    /* The same inside a transaction, from a SELECT, then a statement on
     * the same connection. */
    MUST(sm_db_begin(c, &err), &err);
    st = sm_db_query(c, "INSERT INTO t_mid (id) SELECT ? FROM DUAL WHERE ? > 0 RETURNING id",
                     SM_DB_PARAMS(sm_db_int(1), sm_db_int(1)), &rows, &err);
    if (st == SM_OK) {
        st = sm_db_rows_next(rows, &has, &err);
        sm_db_rows_free(rows);
    }
    CHECK(st == SM_ERR_DUPLICATE, "duplicate through INSERT SELECT RETURNING: %s %s",
          sm_status_name(st), err.message);
    st = sm_db_exec(c, "INSERT INTO t_mid VALUES (2)", NULL, 0, NULL, &err);
    CHECK(st == SM_OK, "next statement in the transaction: %s %s", sm_status_name(st),
          err.message);
    sm_db_rollback(c);
    sm_db_release(c);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    MUST(sm_db_acquire(pool, &c, &err), &err);
    MUST(sm_db_query(c, "SELECT COUNT(*) FROM t_mid", NULL, 0, &rows, &err), &err);
    MUST(sm_db_rows_next(rows, &has, &err), &err);
    sm_db_rows_free(rows);
    sm_db_release(c);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    CHECK(s < 2.0, "the next statement took %.1f s", s);
    sm_db_pool_free(pool);
}

/* --- stored procedures ------------------------------------------------------------ */

/* The procedures are made by the test first (CREATE PROCEDURE cannot be
 * prepared): table t_calls (id, n) holding row (1, 0); calls_bump(id) adds
 * 1 to the row's n and returns the row; calls_insert_commit(id) inserts a
 * row and COMMITs; calls_insert(id) inserts one and does not. */

/* A CALL returning a row, then a CALL committing the transaction: while
 * the first CALL's rows are open another statement is refused (the
 * procedure's own status is still to be read); after them the connection
 * is in step. */
static sm_status bump_then_insert(sm_db_conn *c, void *arg, sm_error *err)
{
    int64_t *seen = arg;
    sm_db_rows *rows = NULL;
    int has = 0;
    sm_status st = sm_db_query(c, "CALL calls_bump(?)", SM_DB_PARAMS(sm_db_int(1)), &rows, err);
    if (st == SM_OK)
        st = sm_db_rows_next(rows, &has, err);
    if (st == SM_OK && has)
        st = sm_db_col_int(rows, 1, seen, err);
    if (st == SM_OK) {
        sm_error e2;
        sm_status inner =
            sm_db_exec(c, "UPDATE t_calls SET n = n WHERE id = 1", NULL, 0, NULL, &e2);
        CHECK(inner == SM_ERR_STATE, "a statement while a CALL's rows are open: %s",
              sm_status_name(inner));
    }
    sm_db_rows_free(rows);
    if (st == SM_OK && !has)
        st = sm_error_set(err, SM_ERR_STATE, "calls_bump returned no row");
    if (st == SM_OK)
        st = sm_db_exec_commit(c, "CALL calls_insert_commit(?)", SM_DB_PARAMS(sm_db_int(2)),
                               err);
    return st;
}

static sm_status insert_without_commit(sm_db_conn *c, void *arg, sm_error *err)
{
    (void)arg;
    return sm_db_exec_commit(c, "CALL calls_insert(?)", SM_DB_PARAMS(sm_db_int(3)), err);
}

static void calls(void)
{
    sm_db_config cfg = config_from_env();
    cfg.pool_size = 1;      /* every step on the same connection */
    cfg.read_timeout_s = 5; /* a connection out of step would wait this long */
    sm_db_pool *pool = pool_new(&cfg), *other = pool_new(&cfg);
    sm_error err;
    int64_t seen = 0;

    MUST(sm_db_transaction(pool, bump_then_insert, &seen, &err), &err);
    CHECK(seen == 1, "the CALL's row, with its own change: n = %lld", (long long)seen);
    CHECK(other_int(other, "SELECT COUNT(*) FROM t_calls") == 2 &&
              other_int(other, "SELECT n FROM t_calls WHERE id = 1") == 1,
          "the procedure's COMMIT committed the whole transaction");

    /* Again: the insert meets its duplicate inside the procedure, before
     * its COMMIT; the transaction is rolled back as a whole. */
    sm_status st = sm_db_transaction(pool, bump_then_insert, &seen, &err);
    CHECK(st == SM_ERR_DUPLICATE, "duplicate inside the procedure: %s", sm_status_name(st));
    CHECK(seen == 2, "the second bump was seen inside: n = %lld", (long long)seen);
    CHECK(other_int(other, "SELECT n FROM t_calls WHERE id = 1") == 1,
          "the failed transaction's bump rolled back");

    /* A procedure without COMMIT is not taken for one. */
    st = sm_db_transaction(pool, insert_without_commit, NULL, &err);
    CHECK(st == SM_ERR_DB && strstr(err.message, "open") != NULL,
          "a CALL that does not commit: %s %s", sm_status_name(st), err.message);
    CHECK(other_int(other, "SELECT COUNT(*) FROM t_calls") == 2, "its insert rolled back");

    /* Outside a transaction there is nothing to commit. */
    sm_db_conn *c;
    MUST(sm_db_acquire(pool, &c, &err), &err);
    st = sm_db_exec_commit(c, "CALL calls_insert_commit(?)", SM_DB_PARAMS(sm_db_int(5)), &err);
    CHECK(st == SM_ERR_STATE, "sm_db_exec_commit outside a transaction: %s",
          sm_status_name(st));
    /* The connection is in step: a plain CALL and a plain statement. */
    MUST(sm_db_exec(c, "CALL calls_insert(?)", SM_DB_PARAMS(sm_db_int(6)), NULL, &err), &err);
    sm_db_release(c);
    CHECK(other_int(other, "SELECT COUNT(*) FROM t_calls") == 3,
          "a plain CALL commits on its own");

    sm_db_pool_stats stats;
    sm_db_pool_get_stats(pool, &stats);
    CHECK(stats.connects == 1 && stats.discarded == 0, "one connection, never discarded");
    sm_db_pool_free(other);
    sm_db_pool_free(pool);
}

/* --- fairness ------------------------------------------------------------------ */

typedef struct fair_arg {
    sm_db_pool *pool;
    int id;
    int *order;
    int *n;
    pthread_mutex_t *lock;
} fair_arg;

static void *fair_thread(void *argp)
{
    fair_arg *a = argp;
    sm_db_conn *c;
    sm_error err;
    MUST(sm_db_acquire(a->pool, &c, &err), &err);
    pthread_mutex_lock(a->lock);
    a->order[(*a->n)++] = a->id;
    pthread_mutex_unlock(a->lock);
    usleep(20000);
    sm_db_release(c);
    return NULL;
}

/* Waiters get a connection in the order they asked for one, and a thread
 * that asks while others wait queues behind them (no barging). */
static void fairness(void)
{
    sm_db_config cfg = config_from_env();
    cfg.pool_size = 1;
    cfg.acquire_timeout_ms = 10000;
    sm_db_pool *pool = pool_new(&cfg);
    sm_db_conn *c;
    sm_error err;
    MUST(sm_db_acquire(pool, &c, &err), &err);
    enum { WAITERS = 4 };
    pthread_t threads[WAITERS];
    fair_arg args[WAITERS];
    int order[WAITERS + 1], n = 0;
    pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
    for (int i = 0; i < WAITERS; i++) {
        args[i] = (fair_arg){pool, i + 1, order, &n, &lock};
        pthread_create(&threads[i], NULL, fair_thread, &args[i]);
        usleep(50000); /* each one queued before the next asks */
    }
    sm_db_release(c);
    /* Asks at once after releasing, while the four wait: served last. */
    MUST(sm_db_acquire(pool, &c, &err), &err);
    pthread_mutex_lock(&lock);
    order[n++] = 99;
    pthread_mutex_unlock(&lock);
    sm_db_release(c);
    for (int i = 0; i < WAITERS; i++)
        pthread_join(threads[i], NULL);
    CHECK(n == WAITERS + 1, "served %d", n);
    for (int i = 0; i < WAITERS; i++)
        CHECK(order[i] == i + 1, "turn %d went to waiter %d", i + 1, order[i]);
    CHECK(order[WAITERS] == 99, "the late asker was served at turn %d", WAITERS + 1);
    sm_db_pool_stats stats;
    sm_db_pool_get_stats(pool, &stats);
    CHECK(stats.open == 1 && stats.idle == 1 && stats.connects == 1, "open %u idle %u", stats.open,
          stats.idle);
    sm_db_pool_free(pool);
}

/* --- deadlock ---------------------------------------------------------------- */

typedef struct deadlock_arg {
    sm_db_pool *pool;
    int first, second; /* row ids locked in this order */
    int attempts;
    pthread_barrier_t *barrier;
} deadlock_arg;

static sm_status lock_two_rows(sm_db_conn *c, void *argv, sm_error *err)
{
    deadlock_arg *a = argv;
    a->attempts++;
    sm_db_rows *rows;
    sm_status st = sm_db_query(c, "SELECT v FROM t_dead WHERE id = ? FOR UPDATE",
                               SM_DB_PARAMS(sm_db_int(a->first)), &rows, err);
    if (st != SM_OK)
        return st;
    sm_db_rows_free(rows);
    /* Both threads hold their first lock before asking for the second. */
    if (a->attempts == 1)
        pthread_barrier_wait(a->barrier);
    st = sm_db_query(c, "SELECT v FROM t_dead WHERE id = ? FOR UPDATE",
                     SM_DB_PARAMS(sm_db_int(a->second)), &rows, err);
    if (st != SM_OK)
        return st;
    sm_db_rows_free(rows);
    return sm_db_exec(c, "UPDATE t_dead SET v = v + 1 WHERE id IN (?, ?)",
                      SM_DB_PARAMS(sm_db_int(a->first), sm_db_int(a->second)), NULL, err);
}

static void *deadlock_thread(void *argv)
{
    deadlock_arg *a = argv;
    sm_error err;
    sm_status st = sm_db_transaction(a->pool, lock_two_rows, a, &err);
    CHECK(st == SM_OK, "transaction: %s %s", sm_status_name(st), err.message);
    return NULL;
}

static void deadlock(void)
{
    sm_db_config cfg = config_from_env();
    sm_db_pool *pool = pool_new(&cfg);
    sm_db_conn *c;
    sm_error err;
    MUST(sm_db_acquire(pool, &c, &err), &err);
    MUST(sm_db_exec(c, "DROP TABLE IF EXISTS t_dead", NULL, 0, NULL, &err), &err);
    MUST(sm_db_exec(c, "CREATE TABLE t_dead (id INT PRIMARY KEY, v INT NOT NULL) ENGINE=InnoDB",
                    NULL, 0, NULL, &err),
         &err);
    MUST(sm_db_exec(c, "INSERT INTO t_dead VALUES (1, 0), (2, 0)", NULL, 0, NULL, &err), &err);
    sm_db_release(c);

    pthread_barrier_t barrier;
    pthread_barrier_init(&barrier, NULL, 2);
    deadlock_arg a = {pool, 1, 2, 0, &barrier}, b = {pool, 2, 1, 0, &barrier};
    pthread_t ta, tb;
    pthread_create(&ta, NULL, deadlock_thread, &a);
    pthread_create(&tb, NULL, deadlock_thread, &b);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    pthread_barrier_destroy(&barrier);
    CHECK(a.attempts + b.attempts >= 3, "one side was retried: %d + %d", a.attempts,
          b.attempts);
    sm_db_pool_stats stats;
    sm_db_pool_get_stats(pool, &stats);
    CHECK(stats.retries >= 1, "retries %llu", (unsigned long long)stats.retries);

    MUST(sm_db_acquire(pool, &c, &err), &err);
    sm_db_rows *rows;
    int has;
    int64_t v1, v2;
    MUST(sm_db_query(c, "SELECT (SELECT v FROM t_dead WHERE id = 1), "
                        "(SELECT v FROM t_dead WHERE id = 2)",
                     NULL, 0, &rows, &err),
         &err);
    MUST(sm_db_rows_next(rows, &has, &err), &err);
    MUST(sm_db_col_int(rows, 0, &v1, &err), &err);
    MUST(sm_db_col_int(rows, 1, &v2, &err), &err);
    CHECK(v1 == 2 && v2 == 2, "both transactions applied exactly once: %lld %lld",
          (long long)v1, (long long)v2);
    sm_db_rows_free(rows);
    sm_db_release(c);
    sm_db_pool_free(pool);
}

static void exhausted(void)
{
    sm_db_config cfg = config_from_env();
    cfg.pool_size = 1;
    cfg.acquire_timeout_ms = 200;
    sm_db_pool *pool = pool_new(&cfg);
    sm_db_conn *c, *c2;
    sm_error err;
    MUST(sm_db_acquire(pool, &c, &err), &err);
    sm_status st = sm_db_acquire(pool, &c2, &err);
    CHECK(st == SM_ERR_UNAVAILABLE && strstr(err.message, "busy") != NULL, "%s %s",
          sm_status_name(st), err.message);
    sm_db_release(c);
    MUST(sm_db_acquire(pool, &c2, &err), &err);
    CHECK(c2 == c, "the released connection is reused");
    sm_db_release(c2);
    sm_db_pool_free(pool);
}

static sm_status count_rows(sm_db_conn *c, void *arg, sm_error *err)
{
    (void)arg;
    sm_db_rows *rows;
    sm_status st = sm_db_query(c, "SELECT COUNT(*) FROM information_schema.TABLES", NULL, 0,
                               &rows, err);
    if (st == SM_OK)
        sm_db_rows_free(rows);
    return st;
}

static void unavailable(void)
{
    sm_db_config cfg = config_from_env();
    sm_db_pool *pool = pool_new(&cfg);
    sm_error err;
    sm_status st = sm_db_transaction(pool, count_rows, NULL, &err);
    CHECK(st == SM_ERR_UNAVAILABLE, "%s %s", sm_status_name(st), err.message);
    CHECK(cfg.password == NULL || strstr(err.message, cfg.password) == NULL,
          "password in message");
    printf("%s\n", err.message);
    sm_db_pool_free(pool);
}

static void interactive(void)
{
    sm_db_config cfg = config_from_env();
    /* 0: as after a long idle time (every acquire pings); "busy": idle
     * connections are trusted without a ping, as under steady load. */
    const char *idle = getenv("SM_DB_HELPER_IDLE");
    cfg.health_check_idle_ms = idle != NULL && strcmp(idle, "busy") == 0 ? 3600000u : 0u;
    if (cfg.pool_size < 4)
        cfg.pool_size = 4;
    sm_db_pool *pool = pool_new(&cfg);
    char line[64];
    while (fgets(line, sizeof(line), stdin) != NULL) {
        if (strncmp(line, "fill", 4) == 0) {
            /* Every connection of the pool opened, then all idle. */
            sm_db_conn *held[4];
            sm_error err;
            for (unsigned i = 0; i < 4; i++)
                MUST(sm_db_acquire(pool, &held[i], &err), &err);
            for (unsigned i = 0; i < 4; i++)
                sm_db_release(held[i]);
            printf("filled\n");
            fflush(stdout);
            continue;
        }
        if (strncmp(line, "query", 5) != 0)
            continue;
        sm_error err;
        sm_error_clear(&err);
        sm_status st = sm_db_transaction(pool, count_rows, NULL, &err);
        sm_db_pool_stats stats;
        sm_db_pool_get_stats(pool, &stats);
        printf("%s connects=%llu discarded=%llu %s\n", sm_status_name(st),
               (unsigned long long)stats.connects, (unsigned long long)stats.discarded,
               err.message);
        fflush(stdout);
    }
    sm_db_pool_free(pool);
}

int main(int argc, char **argv)
{
    const char *what = argc > 1 ? argv[1] : "";
    if (strcmp(what, "basic") == 0)
        basic();
    else if (strcmp(what, "modes") == 0)
        modes();
    else if (strcmp(what, "fairness") == 0)
        fairness();
    else if (strcmp(what, "midresult") == 0)
        midresult();
    else if (strcmp(what, "calls") == 0)
        calls();
    else if (strcmp(what, "deadlock") == 0)
        deadlock();
    else if (strcmp(what, "exhausted") == 0)
        exhausted();
    else if (strcmp(what, "unavailable") == 0)
        unavailable();
    else if (strcmp(what, "interactive") == 0)
        interactive();
    else {
        fprintf(stderr, "usage: db_pool_helper basic|modes|fairness|midresult|calls|deadlock|exhausted|unavailable|interactive\n");
        return 2;
    }
    if (failures != 0)
        fprintf(stderr, "%d check(s) failed\n", failures);
    return failures != 0;
}
