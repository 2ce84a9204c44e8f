/* Strict parsers for directive values and the database directives every
 * module shares.
 *
 * Parsers return NULL on success or an error message naming the directive
 * and the accepted form; httpd prints it and `apachectl configtest` fails.
 * "300x", overflow, negative numbers and values out of range are refused. */
#ifndef SMH_CONFIG_H
#define SMH_CONFIG_H

#include <stdint.h>

#include "smh_httpd.h"

#include <http_config.h>

#include "sm_db.h"
#include "sm_secmem.h"

/* A decimal integer in [min, max]. */
const char *smh_parse_uint(apr_pool_t *p, const char *directive, const char *arg, uint64_t min,
                           uint64_t max, uint64_t *out);
/* A size in bytes with an optional unit K, M or G (powers of 1024), e.g.
 * "512M"; in [min, max]. */
const char *smh_parse_size(apr_pool_t *p, const char *directive, const char *arg, uint64_t min,
                           uint64_t max, uint64_t *out);
/* A duration in seconds with an optional unit s, m, h or d, e.g. "5m";
 * in [min, max] seconds. */
const char *smh_parse_seconds(apr_pool_t *p, const char *directive, const char *arg,
                              uint64_t min, uint64_t max, uint64_t *out);
/* An https:// URL (sm_validate_url rules), trailing '/' removed. */
const char *smh_parse_https_url(apr_pool_t *p, const char *directive, const char *arg,
                                const char **out);
/* A path (relative to ServerRoot) naming a readable regular file. */
const char *smh_parse_readable_file(apr_pool_t *p, const char *directive, const char *arg,
                                    const char **out);
/* The PEM file at path (a certificate or CA bundle, at most 1 MiB),
 * read now into cmd->pool; refused when empty or without a PEM block. */
const char *smh_read_pem_file(cmd_parms *cmd, const char *path, const char **data,
                              apr_size_t *len);
/* A private key file (at most 16 KiB), read now (as root, before httpd
 * drops privileges) into the secure heap, freed with cmd->pool; refused
 * when group or others may read it. */
const char *smh_read_private_key_file(cmd_parms *cmd, const char *path, sm_secret **out);
/* A path (relative to ServerRoot) naming an existing directory. */
const char *smh_parse_directory(apr_pool_t *p, const char *directive, const char *arg,
                                const char **out);

/* --- shared database directives -------------------------------------------
 * A module puts an smh_db_settings in its server config and lists
 * SMH_DB_DIRECTIVES("MediaStore", its_setter, ...) in its command table; the
 * setter finds the settings and calls smh_db_setting_set(cmd, settings, arg). */
typedef enum smh_db_setting {
    SMH_DB_SOCKET = 1,
    SMH_DB_HOST,
    SMH_DB_PORT,
    SMH_DB_USER,
    SMH_DB_PASSWORD_FILE,
    SMH_DB_NAME,
    SMH_DB_POOL_SIZE,
    SMH_DB_ACQUIRE_TIMEOUT,
    SMH_DB_CONNECT_TIMEOUT,
    SMH_DB_IO_TIMEOUT,
    SMH_DB_LOCK_WAIT_TIMEOUT
} smh_db_setting;

typedef struct smh_db_settings {
    sm_db_config cfg;  /* password read from the file at configuration time */
    unsigned set_mask; /* bit (1 << setting) for each directive given */
} smh_db_settings;

#define SMH_DB_DIRECTIVES(prefix, setter)                                                        \
    AP_INIT_TAKE1(prefix "DBSocket", setter, (void *)SMH_DB_SOCKET, RSRC_CONF,                   \
                  "Unix socket of the MariaDB server (instead of DBHost/DBPort)"),               \
    AP_INIT_TAKE1(prefix "DBHost", setter, (void *)SMH_DB_HOST, RSRC_CONF,                       \
                  "MariaDB server host name or address (default localhost)"),                    \
    AP_INIT_TAKE1(prefix "DBPort", setter, (void *)SMH_DB_PORT, RSRC_CONF,                       \
                  "MariaDB server TCP port (default 3306)"),                                     \
    AP_INIT_TAKE1(prefix "DBUser", setter, (void *)SMH_DB_USER, RSRC_CONF,                       \
                  "MariaDB account name"),                                                       \
    AP_INIT_TAKE1(prefix "DBPasswordFile", setter, (void *)SMH_DB_PASSWORD_FILE, RSRC_CONF,      \
                  "file holding the MariaDB password on its first line (not readable by others)"), \
    AP_INIT_TAKE1(prefix "DBName", setter, (void *)SMH_DB_NAME, RSRC_CONF, "database name"),     \
    AP_INIT_TAKE1(prefix "DBPoolSize", setter, (void *)SMH_DB_POOL_SIZE, RSRC_CONF,              \
                  "database connections per httpd child process (1..1000, default 8)"),          \
    AP_INIT_TAKE1(prefix "DBAcquireTimeout", setter, (void *)SMH_DB_ACQUIRE_TIMEOUT, RSRC_CONF,  \
                  "longest wait for a free pooled connection, e.g. 2s or 500ms (default 2s)"),   \
    AP_INIT_TAKE1(prefix "DBConnectTimeout", setter, (void *)SMH_DB_CONNECT_TIMEOUT, RSRC_CONF,  \
                  "database connect timeout in seconds (default 5)"),                            \
    AP_INIT_TAKE1(prefix "DBTimeout", setter, (void *)SMH_DB_IO_TIMEOUT, RSRC_CONF,              \
                  "database read and write timeout in seconds (default 30)"),                    \
    AP_INIT_TAKE1(prefix "DBLockWaitTimeout", setter, (void *)SMH_DB_LOCK_WAIT_TIMEOUT,          \
                  RSRC_CONF, "InnoDB lock wait timeout in seconds (default 10)")

/* Defaults from sm_db_config_defaults. */
void smh_db_settings_init(smh_db_settings *s);
/* Applies one directive (which one: cmd->info). */
const char *smh_db_setting_set(cmd_parms *cmd, smh_db_settings *s, const char *arg);
/* Per setting: add's value if given there, else base's. */
void smh_db_settings_merge(smh_db_settings *out, const smh_db_settings *base,
                           const smh_db_settings *add);
/* 1 when any database directive was given. */
int smh_db_settings_present(const smh_db_settings *s);
/* NULL when complete and consistent, else a message naming the missing
 * directive (prefix is the module's directive prefix). */
const char *smh_db_settings_check(apr_pool_t *p, const smh_db_settings *s, const char *prefix);

#endif
