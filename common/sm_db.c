#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <errmsg.h>
#include <mysql.h>
#include <mysqld_error.h>
#include <openssl/rand.h>

#include "sm_db.h"
#include "sm_secmem.h"

/* Prepared statements kept per connection, keyed by their SQL text. */
#define STMT_CACHE_SIZE 48u
/* First buffer size for a result column; grown on truncation. */
#define COLUMN_BUF_INITIAL 64u

typedef struct cached_stmt {
    const char *sql; /* the caller's constant; compared by content */
    MYSQL_STMT *stmt;
} cached_stmt;

struct sm_db_conn {
    sm_db_pool *pool;
    MYSQL *mysql;
    cached_stmt cache[STMT_CACHE_SIZE];
    unsigned cache_next; /* round-robin eviction slot */
    int broken;          /* a client error happened: close instead of reuse */
    int in_transaction;
    int commit_sent;     /* lost connection during COMMIT: outcome unknown */
    /* The rows of a CALL are open and the procedure's final status is
     * still unread: no other statement until they are freed. */
    int call_pending;
    /* A CALL's trailing status was an error, read when its rows were
     * freed: the connection is broken, and its next statement reports
     * this error (a deadlock stays a conflict, retried). */
    unsigned deferred_errno;
    char deferred_message[256];
    /* autocommit is off: the first statement begins a transaction, so a
     * transaction costs no START round trip. Such a connection is always
     * between transactions while idle (each ends in COMMIT or ROLLBACK);
     * plain statements switch it back on first (see stmt_run). */
    int implicit_begin;
    unsigned checked_generation; /* the pool's loss_generation when opened */
    struct timespec idle_since;
    sm_db_conn *next_idle;
};

struct sm_db_pool {
    sm_db_config cfg; /* strings point into the copies below */
    char *socket, *host, *user, *database;
    char *password;   /* secure memory */
    size_t password_size;
    pthread_mutex_t lock;
    pthread_condattr_t waiter_attr; /* CLOCK_MONOTONIC, for the waiters' deadlines */
    struct pool_waiter *wait_head, *wait_tail; /* first come, first served */
    sm_db_conn *idle;
    unsigned open;
    unsigned idle_count;
    /* Bumped whenever a connection is found broken: the server may have
     * restarted, so every connection opened before is replaced on its next
     * acquire instead of failing a request. */
    unsigned loss_generation;
    sm_db_pool_stats stats;
};

/* A thread waiting for a connection, queued in arrival order. A release
 * hands its connection (or, when it was closed, the right to open one) to
 * the oldest waiter directly, so an arriving thread never takes it first:
 * under overload every request waits its turn instead of some waiting
 * until they time out. */
typedef struct pool_waiter {
    pthread_cond_t wake;
    sm_db_conn *conn;  /* handed over */
    int may_open;      /* handed a slot: open a connection */
    struct pool_waiter *next;
} pool_waiter;

struct sm_db_rows {
    sm_db_conn *conn;
    MYSQL_STMT *stmt;
    int more_results; /* a CALL's: its status (and any other result) follows */
    unsigned ncols;
    MYSQL_BIND *binds;
    char **bufs;
    unsigned long *lens;
    my_bool *nulls;
    my_bool *errors;
    size_t *caps;
};

/* --- configuration -------------------------------------------------------- */

void sm_db_config_defaults(sm_db_config *c)
{
    memset(c, 0, sizeof(*c));
    c->port = 3306;
    c->connect_timeout_s = 5;
    c->read_timeout_s = 30;
    c->write_timeout_s = 30;
    c->lock_wait_timeout_s = 10;
    c->pool_size = 8;
    c->acquire_timeout_ms = 2000;
    c->health_check_idle_ms = 1000;
    c->tx_max_attempts = 5;
}

sm_status sm_db_config_check(const sm_db_config *c, sm_error *err)
{
    if (c->user == NULL || c->user[0] == '\0')
        return sm_error_set(err, SM_ERR_ARG, "database: no user configured");
    if (c->database == NULL || c->database[0] == '\0')
        return sm_error_set(err, SM_ERR_ARG, "database: no database name configured");
    if (c->socket == NULL && (c->port == 0 || c->port > 65535))
        return sm_error_set(err, SM_ERR_ARG, "database: port %u is not 1..65535", c->port);
    if (c->pool_size == 0 || c->pool_size > 1000)
        return sm_error_set(err, SM_ERR_ARG, "database: pool size %u is not 1..1000",
                            c->pool_size);
    if (c->connect_timeout_s == 0 || c->read_timeout_s == 0 || c->write_timeout_s == 0)
        return sm_error_set(err, SM_ERR_ARG, "database: timeouts must be at least 1 second");
    if (c->lock_wait_timeout_s == 0 || c->lock_wait_timeout_s > 3600)
        return sm_error_set(err, SM_ERR_ARG, "database: lock wait timeout %u is not 1..3600",
                            c->lock_wait_timeout_s);
    if (c->tx_max_attempts == 0 || c->tx_max_attempts > 100)
        return sm_error_set(err, SM_ERR_ARG,
                            "database: transaction attempts %u is not 1..100",
                            c->tx_max_attempts);
    return SM_OK;
}

sm_status sm_db_read_password_file(const char *path, char *buf, size_t size, sm_error *err)
{
    if (size < 2)
        return sm_error_set(err, SM_ERR_ARG, "password buffer too small");
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return sm_error_set(err, SM_ERR_IO, "cannot open password file %s: %s", path,
                            strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return sm_error_set(err, SM_ERR_IO, "password file %s is not a regular file", path);
    }
    if (st.st_mode & (S_IROTH | S_IWOTH)) {
        close(fd);
        return sm_error_set(err, SM_ERR_KEY,
                            "password file %s is accessible by others; chmod o-rwx it", path);
    }
    /* One byte more than the limit plus a line end, to notice oversize. */
    char raw[SM_DB_PASSWORD_MAX + 3];
    size_t got = 0;
    for (;;) {
        ssize_t n = read(fd, raw + got, sizeof(raw) - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int e = errno;
            close(fd);
            sm_wipe(raw, sizeof(raw));
            return sm_error_set(err, SM_ERR_IO, "cannot read password file %s: %s", path,
                                strerror(e));
        }
        if (n == 0 || (got += (size_t)n) == sizeof(raw))
            break;
    }
    char extra;
    ssize_t more = got == sizeof(raw) ? read(fd, &extra, 1) : 0;
    close(fd);
    size_t len = got;
    if (len > 0 && raw[len - 1] == '\n')
        len--;
    if (len > 0 && raw[len - 1] == '\r')
        len--;
    sm_status st_out = SM_OK;
    if (more > 0 || len > SM_DB_PASSWORD_MAX || len + 1 > size)
        st_out = sm_error_set(err, SM_ERR_TOO_LARGE,
                              "password file %s: the password is longer than %u bytes", path,
                              SM_DB_PASSWORD_MAX);
    else if (len == 0)
        st_out = sm_error_set(err, SM_ERR_FORMAT, "password file %s is empty", path);
    else if (memchr(raw, '\0', len) != NULL || memchr(raw, '\n', len) != NULL)
        st_out = sm_error_set(err, SM_ERR_FORMAT,
                              "password file %s: the password must be a single line without "
                              "NUL bytes",
                              path);
    if (st_out == SM_OK) {
        memcpy(buf, raw, len);
        buf[len] = '\0';
    }
    sm_wipe(raw, sizeof(raw));
    return st_out;
}

/* --- library and pool ------------------------------------------------------ */

static pthread_once_t library_once = PTHREAD_ONCE_INIT;
static int library_ok;

static void library_init_once(void)
{
    library_ok = mysql_library_init(0, NULL, NULL) == 0;
}

sm_status sm_db_library_init(sm_error *err)
{
    pthread_once(&library_once, library_init_once);
    if (!library_ok)
        return sm_error_set(err, SM_ERR_STATE, "MariaDB client library failed to initialise");
    return SM_OK;
}

static char *dup_or_null(const char *s, int *failed)
{
    if (s == NULL)
        return NULL;
    char *d = strdup(s);
    if (d == NULL)
        *failed = 1;
    return d;
}

sm_status sm_db_pool_new(const sm_db_config *cfg, sm_db_pool **out, sm_error *err)
{
    *out = NULL;
    sm_status st = sm_db_config_check(cfg, err);
    if (st != SM_OK)
        return st;
    if ((st = sm_db_library_init(err)) != SM_OK)
        return st;
    sm_db_pool *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return sm_error_set(err, SM_ERR_NOMEM, "out of memory");
    int failed = 0;
    p->cfg = *cfg;
    p->socket = dup_or_null(cfg->socket, &failed);
    p->host = dup_or_null(cfg->host ? cfg->host : "localhost", &failed);
    p->user = dup_or_null(cfg->user, &failed);
    p->database = dup_or_null(cfg->database, &failed);
    if (cfg->password != NULL) {
        p->password_size = strlen(cfg->password) + 1;
        p->password = sm_secure_alloc(p->password_size);
        if (p->password == NULL)
            failed = 1;
        else
            memcpy(p->password, cfg->password, p->password_size);
    }
    p->cfg.socket = p->socket;
    p->cfg.host = p->host;
    p->cfg.user = p->user;
    p->cfg.database = p->database;
    p->cfg.password = p->password;
    if (failed || pthread_mutex_init(&p->lock, NULL) != 0) {
        sm_secure_free(p->password, p->password_size);
        free(p->socket);
        free(p->host);
        free(p->user);
        free(p->database);
        free(p);
        return sm_error_set(err, SM_ERR_NOMEM, "out of memory");
    }
    pthread_condattr_init(&p->waiter_attr);
    pthread_condattr_setclock(&p->waiter_attr, CLOCK_MONOTONIC);
    *out = p;
    return SM_OK;
}

static void conn_close(sm_db_conn *c)
{
    for (unsigned i = 0; i < STMT_CACHE_SIZE; i++) {
        if (c->cache[i].stmt != NULL)
            mysql_stmt_close(c->cache[i].stmt);
    }
    if (c->mysql != NULL)
        mysql_close(c->mysql);
    free(c);
}

void sm_db_pool_free(sm_db_pool *pool)
{
    if (pool == NULL)
        return;
    while (pool->idle != NULL) {
        sm_db_conn *c = pool->idle;
        pool->idle = c->next_idle;
        conn_close(c);
    }
    pthread_mutex_destroy(&pool->lock);
    pthread_condattr_destroy(&pool->waiter_attr);
    sm_secure_free(pool->password, pool->password_size);
    free(pool->socket);
    free(pool->host);
    free(pool->user);
    free(pool->database);
    free(pool);
}

static int64_t ms_since(const struct timespec *t)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (int64_t)(now.tv_sec - t->tv_sec) * 1000 + (now.tv_nsec - t->tv_nsec) / 1000000;
}

/* Client-side errors (2000..2999) mean the connection cannot be trusted;
 * these server errors mean the session is gone or the server refuses us. */
static int is_connection_errno(unsigned e)
{
    return (e >= 2000 && e < 3000) || e == ER_SERVER_SHUTDOWN || e == ER_CONNECTION_KILLED ||
           e == ER_CON_COUNT_ERROR || e == ER_TOO_MANY_USER_CONNECTIONS ||
           e == ER_ACCESS_DENIED_ERROR || e == ER_DBACCESS_DENIED_ERROR ||
           e == ER_BAD_DB_ERROR || e == ER_NET_READ_INTERRUPTED || e == ER_NET_READ_ERROR ||
           e == ER_NET_WRITE_INTERRUPTED || e == ER_NET_ERROR_ON_WRITE ||
           e == ER_QUERY_INTERRUPTED;
}

/* Maps a MariaDB error number to a status and records the message. */
static sm_status db_failure(sm_db_conn *c, unsigned e, const char *msg, const char *what,
                            sm_error *err)
{
    if (is_connection_errno(e)) {
        c->broken = 1;
        return sm_error_set(err, SM_ERR_UNAVAILABLE, "database unavailable (%s): %u %s", what,
                            e, msg);
    }
    /* 1020 (ER_CHECKREAD, "record has changed since last read"): what a
     * write meeting a row changed after the transaction's snapshot gets
     * under innodb_snapshot_isolation, on by default in newer MariaDB
     * (11.6 and later). A conflict like a deadlock: the whole transaction
     * runs again on a fresh snapshot. */
    if (e == ER_LOCK_DEADLOCK || e == ER_LOCK_WAIT_TIMEOUT || e == 1020)
        return sm_error_set(err, SM_ERR_CONFLICT, "database conflict (%s): %u %s", what, e, msg);
    if (e == ER_DUP_ENTRY || e == ER_DUP_ENTRY_WITH_KEY_NAME)
        return sm_error_set(err, SM_ERR_DUPLICATE, "duplicate key (%s): %s", what, msg);
    if (e == ER_SP_DOES_NOT_EXIST || e == ER_NO_SUCH_TABLE || e == ER_BAD_FIELD_ERROR)
        return sm_error_set(err, SM_ERR_DB,
                            "database error (%s): %u %s (is the database schema older than "
                            "this module? apply its migrations with secmedia-db-migrate)",
                            what, e, msg);
    return sm_error_set(err, SM_ERR_DB, "database error (%s): %u %s", what, e, msg);
}

static sm_status conn_failure(sm_db_conn *c, const char *what, sm_error *err)
{
    return db_failure(c, mysql_errno(c->mysql), mysql_error(c->mysql), what, err);
}

static sm_status stmt_failure(sm_db_conn *c, MYSQL_STMT *s, const char *what, sm_error *err)
{
    return db_failure(c, mysql_stmt_errno(s), mysql_stmt_error(s), what, err);
}

/* One unsigned number from a one-row, one-column answer. */
static int query_number(sm_db_conn *c, const char *sql, unsigned long long *out)
{
    if (mysql_query(c->mysql, sql) != 0)
        return 0;
    MYSQL_RES *res = mysql_store_result(c->mysql);
    MYSQL_ROW row = res != NULL ? mysql_fetch_row(res) : NULL;
    int ok = 0;
    if (row != NULL && row[0] != NULL) {
        char *end = NULL;
        errno = 0;
        *out = strtoull(row[0], &end, 10);
        ok = errno == 0 && end != row[0] && *end == '\0';
    }
    mysql_free_result(res);
    return ok;
}

/* Refuses a database older than the module (min_schema_version): its
 * statements would fail later, one by one, or worse, half of a change
 * would. Also refuses a database a migration made unsafe for modules
 * built for an older schema than this one (schema_version
 * .min_module_version, sql/secmedia-db-migrate). Constant queries, no
 * input. */
/* Why a query_number of schema_version gave no number. */
static sm_status schema_read_failure(sm_db_conn *c, sm_error *err)
{
    unsigned e = mysql_errno(c->mysql);
    if (e == ER_NO_SUCH_TABLE)
        return sm_error_set(err, SM_ERR_DB,
                            "database %s has no schema_version table: create its schema with "
                            "secmedia-db-migrate",
                            c->pool->cfg.database);
    if (e != 0)
        return db_failure(c, e, mysql_error(c->mysql), "schema version", err);
    return sm_error_set(err, SM_ERR_DB, "database %s: cannot read its schema version",
                        c->pool->cfg.database);
}

static sm_status check_schema_version(sm_db_conn *c, sm_error *err)
{
    const sm_db_config *cfg = &c->pool->cfg;
    unsigned long long version = 0, min_module = 0;
    if (!query_number(c, "SELECT COALESCE(MAX(version), 0) FROM schema_version", &version))
        return schema_read_failure(c, err);
    if (version < cfg->min_schema_version)
        return sm_error_set(err, SM_ERR_DB,
                            "database %s is at schema version %llu; this module needs version "
                            "%u: apply the migrations with secmedia-db-migrate",
                            cfg->database, version, cfg->min_schema_version);
    /* A database migrated by a migrator older than the column records no
     * such floor (ER_BAD_FIELD_ERROR). */
    if (!query_number(c, "SELECT COALESCE(MAX(min_module_version), 0) FROM schema_version",
                      &min_module) &&
        mysql_errno(c->mysql) != ER_BAD_FIELD_ERROR)
        return schema_read_failure(c, err);
    if (min_module > cfg->min_schema_version)
        return sm_error_set(err, SM_ERR_DB,
                            "database %s is at schema version %llu, which is unsafe for modules "
                            "built for a schema older than version %llu; this module is built "
                            "for version %u: upgrade it",
                            cfg->database, version, min_module, cfg->min_schema_version);
    return SM_OK;
}

static sm_status conn_open(sm_db_pool *p, sm_db_conn **out, sm_error *err)
{
    *out = NULL;
    sm_db_conn *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return sm_error_set(err, SM_ERR_NOMEM, "out of memory");
    c->pool = p;
    c->mysql = mysql_init(NULL);
    if (c->mysql == NULL) {
        free(c);
        return sm_error_set(err, SM_ERR_NOMEM, "out of memory (mysql_init)");
    }
    my_bool off = 0;
    unsigned int ct = p->cfg.connect_timeout_s, rt = p->cfg.read_timeout_s,
                 wt = p->cfg.write_timeout_s;
    /* The lock wait timeout is a number from our own config, not input.
     * autocommit = 1 explicitly: a server whose default is 0 would
     * otherwise leave plain writes uncommitted (implicit_begin starts 0).
     * completion_type = 0: a COMMIT inside a procedure must end the
     * transaction (sm_db_exec_commit), not chain a new one. REPEATABLE
     * READ whatever the server's default: the ledger sealer's two queue
     * reads must share one snapshot, and its locking reads must gap-lock
     * (sm_ks_store_ledger.c). */
    char init[256];
    snprintf(init, sizeof(init),
             "SET SESSION innodb_lock_wait_timeout = %u, SESSION sql_mode = 'TRADITIONAL', "
             "SESSION autocommit = 1, SESSION completion_type = 0",
             p->cfg.lock_wait_timeout_s);
    mysql_optionsv(c->mysql, MYSQL_OPT_RECONNECT, &off);
    mysql_optionsv(c->mysql, MYSQL_OPT_CONNECT_TIMEOUT, &ct);
    mysql_optionsv(c->mysql, MYSQL_OPT_READ_TIMEOUT, &rt);
    mysql_optionsv(c->mysql, MYSQL_OPT_WRITE_TIMEOUT, &wt);
    mysql_optionsv(c->mysql, MYSQL_SET_CHARSET_NAME, "utf8mb4");
    mysql_optionsv(c->mysql, MYSQL_INIT_COMMAND, init);
    /* A statement of its own: the variable's name changed in MariaDB 11.1
     * (tx_isolation, transaction_isolation), this syntax did not. */
    mysql_optionsv(c->mysql, MYSQL_INIT_COMMAND,
                   "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ");
    if (p->cfg.socket != NULL) {
        unsigned proto = MYSQL_PROTOCOL_SOCKET;
        mysql_optionsv(c->mysql, MYSQL_OPT_PROTOCOL, &proto);
    }
    if (mysql_real_connect(c->mysql, p->cfg.socket ? NULL : p->cfg.host, p->cfg.user,
                           p->cfg.password, p->cfg.database, p->cfg.socket ? 0 : p->cfg.port,
                           p->cfg.socket, 0) == NULL) {
        unsigned e = mysql_errno(c->mysql);
        sm_error_set(err, SM_ERR_UNAVAILABLE, "cannot connect to database %s as %s via %s: %u %s",
                     p->cfg.database, p->cfg.user, p->cfg.socket ? p->cfg.socket : p->cfg.host,
                     e, mysql_error(c->mysql));
        conn_close(c);
        return SM_ERR_UNAVAILABLE;
    }
    if (p->cfg.min_schema_version > 0) {
        sm_status st = check_schema_version(c, err);
        if (st != SM_OK) {
            conn_close(c);
            return st;
        }
    }
    *out = c;
    return SM_OK;
}

static void deadline_after(struct timespec *t, unsigned ms)
{
    clock_gettime(CLOCK_MONOTONIC, t);
    t->tv_sec += ms / 1000;
    t->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (t->tv_nsec >= 1000000000L) {
        t->tv_sec++;
        t->tv_nsec -= 1000000000L;
    }
}

/* Takes an idle connection, one whose autocommit mode is the caller's if
 * there is one (switching modes costs a round trip); p->lock held. */
static sm_db_conn *take_idle(sm_db_pool *p, int implicit_begin)
{
    sm_db_conn **link = &p->idle;
    while (*link != NULL && (*link)->implicit_begin != implicit_begin)
        link = &(*link)->next_idle;
    if (*link == NULL)
        link = &p->idle;
    sm_db_conn *c = *link;
    *link = c->next_idle;
    p->idle_count--;
    return c;
}

/* Queues the caller and waits for a handover until the deadline; p->lock
 * held. SM_OK with *conn set or *may_open set. */
static sm_status wait_turn(sm_db_pool *p, const struct timespec *deadline, sm_db_conn **conn,
                           int *may_open, sm_error *err)
{
    pool_waiter w;
    memset(&w, 0, sizeof(w));
    pthread_cond_init(&w.wake, &p->waiter_attr);
    if (p->wait_tail != NULL)
        p->wait_tail->next = &w;
    else
        p->wait_head = &w;
    p->wait_tail = &w;
    int timed_out = 0;
    while (w.conn == NULL && !w.may_open && !timed_out)
        timed_out = pthread_cond_timedwait(&w.wake, &p->lock, deadline) == ETIMEDOUT;
    pthread_cond_destroy(&w.wake);
    if (w.conn == NULL && !w.may_open) {
        /* Still queued (a handover dequeues): leave the queue. */
        pool_waiter **link = &p->wait_head, *prev = NULL;
        while (*link != &w) {
            prev = *link;
            link = &(*link)->next;
        }
        *link = w.next;
        if (p->wait_tail == &w)
            p->wait_tail = prev;
        return sm_error_set(err, SM_ERR_UNAVAILABLE,
                            "all %u database connections stayed busy for %u ms; raise the "
                            "pool size or the database's capacity",
                            p->cfg.pool_size, p->cfg.acquire_timeout_ms);
    }
    *conn = w.conn;
    *may_open = w.may_open;
    return SM_OK;
}

/* Gives the oldest waiter conn, or the right to open one when conn is
 * NULL (a slot came free); p->lock held. 0 when nobody waits. */
static int hand_over(sm_db_pool *p, sm_db_conn *conn)
{
    pool_waiter *w = p->wait_head;
    if (w == NULL)
        return 0;
    p->wait_head = w->next;
    if (p->wait_head == NULL)
        p->wait_tail = NULL;
    w->conn = conn;
    w->may_open = conn == NULL;
    pthread_cond_signal(&w->wake);
    return 1;
}

/* Returns a slot (p->open counted) whose connection is gone; p->lock held. */
static void give_back_slot(sm_db_pool *p)
{
    if (!hand_over(p, NULL))
        p->open--;
}

/* implicit_begin: the caller will run a transaction (sm_db_transaction). */
static sm_status acquire(sm_db_pool *p, int implicit_begin, sm_db_conn **out, sm_error *err)
{
    *out = NULL;
    struct timespec deadline;
    deadline_after(&deadline, p->cfg.acquire_timeout_ms);
    sm_db_conn *c = NULL;
    int may_open = 0;
    pthread_mutex_lock(&p->lock);
    if (p->wait_head == NULL && p->idle != NULL) {
        c = take_idle(p, implicit_begin);
    } else if (p->wait_head == NULL && p->open < p->cfg.pool_size) {
        p->open++;
        may_open = 1;
    } else {
        sm_status st = wait_turn(p, &deadline, &c, &may_open, err);
        if (st != SM_OK) {
            pthread_mutex_unlock(&p->lock);
            return st;
        }
    }
    unsigned generation = p->loss_generation;
    pthread_mutex_unlock(&p->lock);

    if (c != NULL) {
        c->next_idle = NULL;
        /* Older than a connection found broken since: dropped without a
         * ping (a ping on a socket the server closed can still succeed:
         * the write goes out before the reset comes back). Idle long:
         * pinged. Either way a stale one is replaced in its slot. */
        if (c->checked_generation == generation &&
            (ms_since(&c->idle_since) < (int64_t)p->cfg.health_check_idle_ms ||
             mysql_ping(c->mysql) == 0)) {
            *out = c;
            return SM_OK;
        }
        conn_close(c);
        pthread_mutex_lock(&p->lock);
        p->stats.discarded++;
        pthread_mutex_unlock(&p->lock);
    }
    /* A slot without a connection: open one. */
    sm_status st = conn_open(p, &c, err);
    pthread_mutex_lock(&p->lock);
    if (st != SM_OK) {
        give_back_slot(p);
        pthread_mutex_unlock(&p->lock);
        return st;
    }
    p->stats.connects++;
    c->checked_generation = p->loss_generation;
    pthread_mutex_unlock(&p->lock);
    *out = c;
    return SM_OK;
}

sm_status sm_db_acquire(sm_db_pool *p, sm_db_conn **out, sm_error *err)
{
    return acquire(p, 0, out, err);
}

void sm_db_release(sm_db_conn *c)
{
    if (c == NULL)
        return;
    sm_db_pool *p = c->pool;
    if (c->in_transaction && !c->broken)
        sm_db_rollback(c);
    int keep = !c->broken;
    if (keep)
        clock_gettime(CLOCK_MONOTONIC, &c->idle_since);
    else
        conn_close(c);
    pthread_mutex_lock(&p->lock);
    if (keep) {
        if (!hand_over(p, c)) {
            c->next_idle = p->idle;
            p->idle = c;
            p->idle_count++;
        }
    } else {
        p->stats.discarded++;
        p->loss_generation++;
        give_back_slot(p);
    }
    pthread_mutex_unlock(&p->lock);
}

void sm_db_pool_get_stats(sm_db_pool *p, sm_db_pool_stats *out)
{
    pthread_mutex_lock(&p->lock);
    *out = p->stats;
    out->open = p->open;
    out->idle = p->idle_count;
    pthread_mutex_unlock(&p->lock);
}

/* --- parameters ------------------------------------------------------------ */

sm_db_param sm_db_null(void)
{
    sm_db_param v = {.type = SM_DB_PARAM_NULL};
    return v;
}

sm_db_param sm_db_int(int64_t i)
{
    sm_db_param v = {.type = SM_DB_PARAM_INT, .i = i};
    return v;
}

sm_db_param sm_db_uint(uint64_t u)
{
    sm_db_param v = {.type = SM_DB_PARAM_UINT, .u = u};
    return v;
}

sm_db_param sm_db_text(const char *s)
{
    return s == NULL ? sm_db_null() : sm_db_text_n(s, strlen(s));
}

sm_db_param sm_db_text_n(const char *s, size_t len)
{
    sm_db_param v = {.type = SM_DB_PARAM_TEXT, .data = s, .len = len};
    return v;
}

sm_db_param sm_db_blob(const void *data, size_t len)
{
    sm_db_param v = {.type = SM_DB_PARAM_BLOB, .data = data, .len = len};
    return v;
}

/* --- statements ------------------------------------------------------------ */

/* The cached statement for sql, prepared on first use. */
static sm_status stmt_get(sm_db_conn *c, const char *sql, MYSQL_STMT **out, sm_error *err)
{
    for (unsigned i = 0; i < STMT_CACHE_SIZE; i++) {
        cached_stmt *e = &c->cache[i];
        if (e->stmt != NULL && (e->sql == sql || strcmp(e->sql, sql) == 0)) {
            *out = e->stmt;
            return SM_OK;
        }
    }
    MYSQL_STMT *s = mysql_stmt_init(c->mysql);
    if (s == NULL)
        return sm_error_set(err, SM_ERR_NOMEM, "out of memory (mysql_stmt_init)");
    if (mysql_stmt_prepare(s, sql, (unsigned long)strlen(sql)) != 0) {
        sm_status st = stmt_failure(c, s, "prepare", err);
        mysql_stmt_close(s);
        return st;
    }
    cached_stmt *slot = &c->cache[c->cache_next];
    c->cache_next = (c->cache_next + 1) % STMT_CACHE_SIZE;
    if (slot->stmt != NULL)
        mysql_stmt_close(slot->stmt);
    slot->sql = sql;
    slot->stmt = s;
    *out = s;
    return SM_OK;
}

static sm_status stmt_run(sm_db_conn *c, const char *sql, const sm_db_param *params,
                          size_t nparams, MYSQL_STMT **out, sm_error *err)
{
    if (c->broken && c->deferred_errno != 0)
        return db_failure(c, c->deferred_errno, c->deferred_message, "status of a CALL", err);
    if (c->broken)
        return sm_error_set(err, SM_ERR_UNAVAILABLE, "database connection already failed");
    if (c->call_pending)
        return sm_error_set(err, SM_ERR_STATE,
                            "the rows of a CALL must be freed before the next statement");
    if (!c->in_transaction && c->implicit_begin) {
        /* A plain statement commits on its own, as callers expect. */
        if (mysql_autocommit(c->mysql, 1) != 0)
            return conn_failure(c, "autocommit on", err);
        c->implicit_begin = 0;
    }
    MYSQL_STMT *s = NULL;
    sm_status st = stmt_get(c, sql, &s, err);
    if (st != SM_OK)
        return st;
    if (mysql_stmt_param_count(s) != nparams)
        return sm_error_set(err, SM_ERR_ARG, "statement has %lu placeholders, %zu values given",
                            mysql_stmt_param_count(s), nparams);
    if (nparams > SM_DB_MAX_PARAMS)
        return sm_error_set(err, SM_ERR_ARG, "more than %u statement parameters",
                            SM_DB_MAX_PARAMS);
    MYSQL_BIND binds[SM_DB_MAX_PARAMS];
    memset(binds, 0, sizeof(binds));
    my_bool is_unsigned = 1;
    for (size_t i = 0; i < nparams; i++) {
        const sm_db_param *v = &params[i];
        MYSQL_BIND *b = &binds[i];
        switch (v->type) {
        case SM_DB_PARAM_NULL:
            b->buffer_type = MYSQL_TYPE_NULL;
            break;
        case SM_DB_PARAM_INT:
            b->buffer_type = MYSQL_TYPE_LONGLONG;
            b->buffer = (void *)&v->i;
            break;
        case SM_DB_PARAM_UINT:
            b->buffer_type = MYSQL_TYPE_LONGLONG;
            b->buffer = (void *)&v->u;
            b->is_unsigned = is_unsigned;
            break;
        case SM_DB_PARAM_TEXT:
        case SM_DB_PARAM_BLOB:
            b->buffer_type = v->type == SM_DB_PARAM_TEXT ? MYSQL_TYPE_STRING : MYSQL_TYPE_BLOB;
            b->buffer = (void *)(v->data != NULL ? v->data : "");
            b->buffer_length = (unsigned long)v->len;
            break;
        default:
            return sm_error_set(err, SM_ERR_ARG, "parameter %zu has an unknown type", i + 1);
        }
    }
    if (nparams > 0 && mysql_stmt_bind_param(s, binds) != 0)
        return stmt_failure(c, s, "bind", err);
    if (mysql_stmt_execute(s) != 0)
        return stmt_failure(c, s, "execute", err);
    *out = s;
    return SM_OK;
}

/* Reads what a CALL sends after its result sets: the procedure's own
 * status, and the rows of any further SELECT it ran (discarded). 0 when
 * the server reported an error there; the connection is then unusable for
 * the transaction (its state is unknown) and is marked broken. */
static int drain_results(sm_db_conn *c, MYSQL_STMT *s)
{
    int rc;
    while ((rc = mysql_stmt_next_result(s)) == 0) {
        if (mysql_stmt_field_count(s) != 0 &&
            (mysql_stmt_store_result(s) != 0 || mysql_stmt_free_result(s) != 0)) {
            rc = 1;
            break;
        }
    }
    if (rc > 0) {
        c->deferred_errno = mysql_stmt_errno(s);
        snprintf(c->deferred_message, sizeof(c->deferred_message), "%s", mysql_stmt_error(s));
        c->broken = 1;
        return 0;
    }
    return 1;
}

sm_status sm_db_exec(sm_db_conn *c, const char *sql, const sm_db_param *params, size_t nparams,
                     uint64_t *affected, sm_error *err)
{
    MYSQL_STMT *s = NULL;
    sm_status st = stmt_run(c, sql, params, nparams, &s, err);
    if (st != SM_OK)
        return st;
    if (mysql_stmt_field_count(s) != 0) {
        mysql_stmt_free_result(s);
        drain_results(c, s);
        return sm_error_set(err, SM_ERR_ARG, "sm_db_exec used for a statement returning rows");
    }
    if (affected != NULL)
        *affected = (uint64_t)mysql_stmt_affected_rows(s);
    return drain_results(c, s) ? SM_OK : stmt_failure(c, s, "next result", err);
}

sm_status sm_db_exec_commit(sm_db_conn *c, const char *sql, const sm_db_param *params,
                            size_t nparams, sm_error *err)
{
    if (!c->in_transaction)
        return sm_error_set(err, SM_ERR_STATE, "no transaction is open");
    /* From here a lost connection leaves the outcome unknown, as for
     * sm_db_commit. */
    c->commit_sent = 1;
    sm_status st = sm_db_exec(c, sql, params, nparams, NULL, err);
    if (st != SM_OK)
        return st;
    unsigned int status = 0;
    if (mariadb_get_infov(c->mysql, MARIADB_CONNECTION_SERVER_STATUS, &status) != 0)
        return sm_error_set(err, SM_ERR_DB, "cannot read the session status after a commit");
    if (status & SERVER_STATUS_IN_TRANS)
        return sm_error_set(err, SM_ERR_DB, "the statement meant to commit left the "
                                            "transaction open (a stored procedure without "
                                            "COMMIT?)");
    c->in_transaction = 0;
    return SM_OK;
}

uint64_t sm_db_insert_id(const sm_db_conn *c)
{
    return (uint64_t)mysql_insert_id(c->mysql);
}

void sm_db_rows_free(sm_db_rows *r)
{
    if (r == NULL)
        return;
    if (r->stmt != NULL)
        mysql_stmt_free_result(r->stmt);
    if (r->more_results) {
        r->conn->call_pending = 0;
        (void)drain_results(r->conn, r->stmt);
    }
    if (r->bufs != NULL) {
        for (unsigned i = 0; i < r->ncols; i++)
            free(r->bufs[i]);
    }
    free(r->bufs);
    free(r->binds);
    free(r->lens);
    free(r->nulls);
    free(r->errors);
    free(r->caps);
    free(r);
}

static sm_status rows_bind(sm_db_rows *r, sm_error *err)
{
    for (unsigned i = 0; i < r->ncols; i++) {
        MYSQL_BIND *b = &r->binds[i];
        memset(b, 0, sizeof(*b));
        b->buffer_type = MYSQL_TYPE_STRING;
        b->buffer = r->bufs[i];
        b->buffer_length = (unsigned long)(r->caps[i] - 1); /* room for a NUL */
        b->length = &r->lens[i];
        b->is_null = &r->nulls[i];
        b->error = &r->errors[i];
    }
    if (mysql_stmt_bind_result(r->stmt, r->binds) != 0)
        return stmt_failure(r->conn, r->stmt, "bind result", err);
    return SM_OK;
}

sm_status sm_db_query(sm_db_conn *c, const char *sql, const sm_db_param *params, size_t nparams,
                      sm_db_rows **out, sm_error *err)
{
    *out = NULL;
    MYSQL_STMT *s = NULL;
    sm_status st = stmt_run(c, sql, params, nparams, &s, err);
    if (st != SM_OK)
        return st;
    sm_db_rows *r = calloc(1, sizeof(*r));
    if (r == NULL) {
        mysql_stmt_free_result(s);
        return sm_error_set(err, SM_ERR_NOMEM, "out of memory");
    }
    r->conn = c;
    r->stmt = s;
    r->ncols = mysql_stmt_field_count(s);
    if (r->ncols == 0) {
        sm_db_rows_free(r);
        return sm_error_set(err, SM_ERR_ARG, "sm_db_query used for a statement without rows");
    }
    r->binds = calloc(r->ncols, sizeof(*r->binds));
    r->bufs = calloc(r->ncols, sizeof(*r->bufs));
    r->lens = calloc(r->ncols, sizeof(*r->lens));
    r->nulls = calloc(r->ncols, sizeof(*r->nulls));
    r->errors = calloc(r->ncols, sizeof(*r->errors));
    r->caps = calloc(r->ncols, sizeof(*r->caps));
    if (!r->binds || !r->bufs || !r->lens || !r->nulls || !r->errors || !r->caps) {
        sm_db_rows_free(r);
        return sm_error_set(err, SM_ERR_NOMEM, "out of memory");
    }
    for (unsigned i = 0; i < r->ncols; i++) {
        r->caps[i] = COLUMN_BUF_INITIAL;
        if ((r->bufs[i] = malloc(COLUMN_BUF_INITIAL)) == NULL) {
            sm_db_rows_free(r);
            return sm_error_set(err, SM_ERR_NOMEM, "out of memory");
        }
    }
    if ((st = rows_bind(r, err)) != SM_OK || mysql_stmt_store_result(s) != 0) {
        if (st == SM_OK)
            st = stmt_failure(c, s, "store result", err);
        sm_db_rows_free(r);
        return st;
    }
    if (mysql_stmt_more_results(s)) {
        /* A CALL: its status follows the rows (read by sm_db_rows_free). */
        r->more_results = 1;
        c->call_pending = 1;
    }
    *out = r;
    return SM_OK;
}

sm_status sm_db_rows_next(sm_db_rows *r, int *has_row, sm_error *err)
{
    *has_row = 0;
    int rc = mysql_stmt_fetch(r->stmt);
    if (rc == MYSQL_NO_DATA)
        return SM_OK;
    if (rc == 1)
        return stmt_failure(r->conn, r->stmt, "fetch", err);
    if (rc == MYSQL_DATA_TRUNCATED) {
        int rebind = 0;
        for (unsigned i = 0; i < r->ncols; i++) {
            if (!r->errors[i] || r->nulls[i])
                continue;
            size_t need = (size_t)r->lens[i] + 1;
            char *grown = realloc(r->bufs[i], need);
            if (grown == NULL)
                return sm_error_set(err, SM_ERR_NOMEM, "out of memory");
            r->bufs[i] = grown;
            r->caps[i] = need;
            rebind = 1;
            MYSQL_BIND b = r->binds[i];
            b.buffer = grown;
            b.buffer_length = (unsigned long)(need - 1);
            if (mysql_stmt_fetch_column(r->stmt, &b, i, 0) != 0)
                return stmt_failure(r->conn, r->stmt, "fetch column", err);
        }
        if (rebind) {
            sm_status st = rows_bind(r, err);
            if (st != SM_OK)
                return st;
        }
    }
    for (unsigned i = 0; i < r->ncols; i++) {
        if (!r->nulls[i])
            r->bufs[i][r->lens[i]] = '\0';
    }
    *has_row = 1;
    return SM_OK;
}

size_t sm_db_rows_count(const sm_db_rows *r)
{
    return (size_t)mysql_stmt_num_rows(r->stmt);
}

unsigned sm_db_rows_columns(const sm_db_rows *r)
{
    return r->ncols;
}

const char *sm_db_col_text(const sm_db_rows *r, unsigned col, size_t *len)
{
    if (col >= r->ncols || r->nulls[col])
        return NULL;
    if (len != NULL)
        *len = r->lens[col];
    return r->bufs[col];
}

sm_status sm_db_col_int(const sm_db_rows *r, unsigned col, int64_t *out, sm_error *err)
{
    const char *s = sm_db_col_text(r, col, NULL);
    if (s == NULL || *s == '\0')
        return sm_error_set(err, SM_ERR_FORMAT, "column %u is NULL or missing", col);
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0')
        return sm_error_set(err, SM_ERR_FORMAT, "column %u is not an integer", col);
    *out = (int64_t)v;
    return SM_OK;
}

sm_status sm_db_col_uint(const sm_db_rows *r, unsigned col, uint64_t *out, sm_error *err)
{
    const char *s = sm_db_col_text(r, col, NULL);
    if (s == NULL || *s < '0' || *s > '9')
        return sm_error_set(err, SM_ERR_FORMAT, "column %u is NULL or not an unsigned integer",
                            col);
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0')
        return sm_error_set(err, SM_ERR_FORMAT, "column %u is not an unsigned integer", col);
    *out = (uint64_t)v;
    return SM_OK;
}

/* --- transactions ---------------------------------------------------------- */

sm_status sm_db_begin(sm_db_conn *c, sm_error *err)
{
    if (c->broken)
        return sm_error_set(err, SM_ERR_UNAVAILABLE, "database connection already failed");
    if (c->in_transaction)
        return sm_error_set(err, SM_ERR_STATE, "a transaction is already open");
    /* Reset first: a START lost with the connection must not look like a
     * lost COMMIT of the connection's previous transaction. */
    c->commit_sent = 0;
    /* Autocommit off instead of START TRANSACTION: the same round trip
     * once, then none for the connection's next transactions (InnoDB
     * begins one, and takes its snapshot, at the first statement either
     * way). */
    if (!c->implicit_begin) {
        if (mysql_autocommit(c->mysql, 0) != 0)
            return conn_failure(c, "autocommit off", err);
        c->implicit_begin = 1;
    }
    c->in_transaction = 1;
    return SM_OK;
}

sm_status sm_db_commit(sm_db_conn *c, sm_error *err)
{
    if (!c->in_transaction)
        return sm_error_set(err, SM_ERR_STATE, "no transaction is open");
    c->commit_sent = 1;
    if (mysql_commit(c->mysql) != 0) {
        sm_status st = conn_failure(c, "commit", err);
        sm_db_rollback(c);
        return st;
    }
    c->in_transaction = 0;
    return SM_OK;
}

void sm_db_rollback(sm_db_conn *c)
{
    if (!c->broken && mysql_rollback(c->mysql) != 0)
        c->broken = 1;
    c->in_transaction = 0;
}

/* 5..(20 << attempt) ms, random, so that two deadlocked transactions do
 * not collide again in lockstep. */
static void backoff(unsigned attempt)
{
    unsigned char r[2] = {0, 0};
    (void)RAND_bytes(r, sizeof(r));
    unsigned span = 20u << (attempt < 5 ? attempt : 5);
    unsigned ms = 5 + (((unsigned)r[0] << 8 | r[1]) % span);
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* fn on pooled connections until it succeeds or fails for good: again
 * after SM_ERR_CONFLICT (deadlock, lock wait timeout), with a backoff, up
 * to tx_max_attempts; once more on a fresh connection when the one it had
 * was lost before a COMMIT was sent (a server restart: in a transaction
 * nothing was committed; outside one, fn is safe to repeat). In a
 * transaction (sm_db_begin ... COMMIT) when tx. */
static sm_status run_retried(sm_db_pool *pool, int tx, sm_db_tx_fn fn, void *arg,
                             sm_error *err)
{
    int reconnected = 0;
    for (unsigned attempt = 1;; attempt++) {
        sm_db_conn *c;
        sm_status st = acquire(pool, tx, &c, err);
        if (st != SM_OK)
            return st;
        c->commit_sent = 0;
        /* fn committed the transaction itself (sm_db_exec_commit): nothing
         * is left to commit or roll back (a ROLLBACK would cost a round
         * trip), and whatever fn returns, it must not run again. */
        int committed_by_fn = 0;
        if (!tx) {
            st = fn(c, arg, err);
        } else if ((st = sm_db_begin(c, err)) == SM_OK) {
            st = fn(c, arg, err);
            committed_by_fn = !c->in_transaction;
            if (!committed_by_fn && st == SM_OK)
                st = sm_db_commit(c, err);
            else if (!committed_by_fn && !c->broken)
                sm_db_rollback(c);
        }
        int lost_before_commit = st == SM_ERR_UNAVAILABLE && c->broken && !c->commit_sent;
        sm_db_release(c);
        if (st == SM_OK)
            return SM_OK;
        int again = st == SM_ERR_CONFLICT && attempt < pool->cfg.tx_max_attempts &&
                    !committed_by_fn;
        if (!again && lost_before_commit && !reconnected)
            again = reconnected = 1;
        if (!again)
            return st;
        pthread_mutex_lock(&pool->lock);
        pool->stats.retries++;
        pthread_mutex_unlock(&pool->lock);
        if (st == SM_ERR_CONFLICT)
            backoff(attempt);
    }
}

sm_status sm_db_transaction(sm_db_pool *pool, sm_db_tx_fn fn, void *arg, sm_error *err)
{
    return run_retried(pool, 1, fn, arg, err);
}

sm_status sm_db_autocommit(sm_db_pool *pool, sm_db_tx_fn fn, void *arg, sm_error *err)
{
    return run_retried(pool, 0, fn, arg, err);
}
