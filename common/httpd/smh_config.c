#include "config.h"

#include "smh_httpd.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <apr_file_info.h>
#include <apr_file_io.h>
#include <apr_strings.h>
#include <http_config.h>

#include "sm_file.h"
#include "sm_validate.h"
#include "smh_config.h"

/* Parses the leading decimal digits of arg; *rest gets what follows.
 * Refuses signs, spaces and empty numbers; a number too large for 64 bits
 * saturates to UINT64_MAX so the caller reports it as out of range. */
static int parse_digits(const char *arg, uint64_t *out, const char **rest)
{
    if (arg[0] < '0' || arg[0] > '9')
        return 0;
    uint64_t v = 0;
    const char *s = arg;
    for (; *s >= '0' && *s <= '9'; s++) {
        unsigned d = (unsigned)(*s - '0');
        v = v > (UINT64_MAX - d) / 10 ? UINT64_MAX : v * 10 + d;
    }
    *out = v;
    *rest = s;
    return 1;
}

static const char *range_error(apr_pool_t *p, const char *directive, const char *arg,
                               uint64_t min, uint64_t max, const char *unit)
{
    return apr_psprintf(p, "%s: \"%s\" is out of range; use %" APR_UINT64_T_FMT "..%"
                        APR_UINT64_T_FMT "%s", directive, arg, min, max, unit);
}

const char *smh_parse_uint(apr_pool_t *p, const char *directive, const char *arg, uint64_t min,
                           uint64_t max, uint64_t *out)
{
    uint64_t v;
    const char *rest;
    if (!parse_digits(arg, &v, &rest) || *rest != '\0')
        return apr_psprintf(p, "%s: \"%s\" is not a decimal number", directive, arg);
    if (v < min || v > max)
        return range_error(p, directive, arg, min, max, "");
    *out = v;
    return NULL;
}

/* Multiplies a number by a unit's factor, refusing overflow. */
static int scale(uint64_t v, uint64_t factor, uint64_t *out)
{
    if (factor != 0 && v > UINT64_MAX / factor)
        return 0;
    *out = v * factor;
    return 1;
}

const char *smh_parse_size(apr_pool_t *p, const char *directive, const char *arg, uint64_t min,
                           uint64_t max, uint64_t *out)
{
    uint64_t v, factor = 1;
    const char *rest;
    if (!parse_digits(arg, &v, &rest))
        return apr_psprintf(p, "%s: \"%s\" is not a size; write e.g. 65536, 512K, 256M or 2G",
                            directive, arg);
    if (strcmp(rest, "K") == 0 || strcmp(rest, "k") == 0)
        factor = 1024;
    else if (strcmp(rest, "M") == 0)
        factor = 1024 * 1024;
    else if (strcmp(rest, "G") == 0)
        factor = 1024 * 1024 * 1024;
    else if (*rest != '\0')
        return apr_psprintf(p, "%s: \"%s\" has an unknown unit; write e.g. 65536, 512K, 256M "
                               "or 2G", directive, arg);
    uint64_t bytes;
    if (!scale(v, factor, &bytes) || bytes < min || bytes > max)
        return range_error(p, directive, arg, min, max, " bytes");
    *out = bytes;
    return NULL;
}

const char *smh_parse_seconds(apr_pool_t *p, const char *directive, const char *arg,
                              uint64_t min, uint64_t max, uint64_t *out)
{
    uint64_t v, factor = 1;
    const char *rest;
    if (!parse_digits(arg, &v, &rest))
        return apr_psprintf(p, "%s: \"%s\" is not a duration; write e.g. 30, 30s, 5m, 2h or 1d",
                            directive, arg);
    if (strcmp(rest, "m") == 0)
        factor = 60;
    else if (strcmp(rest, "h") == 0)
        factor = 3600;
    else if (strcmp(rest, "d") == 0)
        factor = 86400;
    else if (*rest != '\0' && strcmp(rest, "s") != 0)
        return apr_psprintf(p, "%s: \"%s\" has an unknown unit; write e.g. 30, 30s, 5m, 2h or 1d",
                            directive, arg);
    uint64_t secs;
    if (!scale(v, factor, &secs) || secs < min || secs > max)
        return range_error(p, directive, arg, min, max, " seconds");
    *out = secs;
    return NULL;
}

/* Milliseconds: "500ms", "2s" or a bare number of milliseconds. */
static const char *parse_millis(apr_pool_t *p, const char *directive, const char *arg,
                                uint64_t min, uint64_t max, uint64_t *out)
{
    uint64_t v, factor = 1;
    const char *rest;
    if (!parse_digits(arg, &v, &rest) ||
        (*rest != '\0' && strcmp(rest, "ms") != 0 && strcmp(rest, "s") != 0))
        return apr_psprintf(p, "%s: \"%s\" is not a duration; write e.g. 500ms or 2s",
                            directive, arg);
    if (strcmp(rest, "s") == 0)
        factor = 1000;
    uint64_t ms;
    if (!scale(v, factor, &ms) || ms < min || ms > max)
        return range_error(p, directive, arg, min, max, " milliseconds");
    *out = ms;
    return NULL;
}

const char *smh_parse_https_url(apr_pool_t *p, const char *directive, const char *arg,
                                const char **out)
{
    sm_error err;
    if (sm_validate_url(arg, 0, directive, &err) != SM_OK)
        return apr_pstrdup(p, err.message);
    char *url = apr_pstrdup(p, arg);
    size_t n = strlen(url);
    while (n > 0 && url[n - 1] == '/')
        url[--n] = '\0';
    *out = url;
    return NULL;
}

const char *smh_parse_readable_file(apr_pool_t *p, const char *directive, const char *arg,
                                    const char **out)
{
    const char *path = ap_server_root_relative(p, arg);
    apr_finfo_t fi;
    if (path == NULL)
        return apr_psprintf(p, "%s: invalid path \"%s\"", directive, arg);
    apr_status_t rv = apr_stat(&fi, path, APR_FINFO_TYPE, p);
    if (rv != APR_SUCCESS) {
        char buf[120];
        return apr_psprintf(p, "%s: cannot access \"%s\": %s", directive, path,
                            apr_strerror(rv, buf, sizeof(buf)));
    }
    if (fi.filetype != APR_REG)
        return apr_psprintf(p, "%s: \"%s\" is not a regular file", directive, path);
    *out = path;
    return NULL;
}

const char *smh_parse_directory(apr_pool_t *p, const char *directive, const char *arg,
                                const char **out)
{
    const char *path = ap_server_root_relative(p, arg);
    apr_finfo_t fi;
    if (path == NULL)
        return apr_psprintf(p, "%s: invalid path \"%s\"", directive, arg);
    apr_status_t rv = apr_stat(&fi, path, APR_FINFO_TYPE, p);
    if (rv != APR_SUCCESS) {
        char buf[120];
        return apr_psprintf(p, "%s: cannot access \"%s\": %s; create it first", directive, path,
                            apr_strerror(rv, buf, sizeof(buf)));
    }
    if (fi.filetype != APR_DIR)
        return apr_psprintf(p, "%s: \"%s\" is not a directory", directive, path);
    *out = path;
    return NULL;
}

/* --- database directives --------------------------------------------------- */

void smh_db_settings_init(smh_db_settings *s)
{
    memset(s, 0, sizeof(*s));
    sm_db_config_defaults(&s->cfg);
}

const char *smh_db_setting_set(cmd_parms *cmd, smh_db_settings *s, const char *arg)
{
    const char *name = cmd->cmd->name;
    smh_db_setting which = (smh_db_setting)(uintptr_t)cmd->info;
    apr_pool_t *p = cmd->pool;
    uint64_t v = 0;
    const char *msg = NULL;
    switch (which) {
    case SMH_DB_SOCKET:
        s->cfg.socket = ap_server_root_relative(p, arg);
        break;
    case SMH_DB_HOST:
        s->cfg.host = apr_pstrdup(p, arg);
        break;
    case SMH_DB_PORT:
        if ((msg = smh_parse_uint(p, name, arg, 1, 65535, &v)) == NULL)
            s->cfg.port = (unsigned)v;
        break;
    case SMH_DB_USER:
        s->cfg.user = apr_pstrdup(p, arg);
        break;
    case SMH_DB_PASSWORD_FILE: {
        /* Read now, as root, so the file can stay private to root and
         * configtest catches a missing or unreadable file. */
        const char *path = ap_server_root_relative(p, arg);
        char *pw = apr_palloc(p, SM_DB_PASSWORD_MAX + 1);
        sm_error err;
        if (sm_db_read_password_file(path, pw, SM_DB_PASSWORD_MAX + 1, &err) != SM_OK)
            return apr_psprintf(p, "%s: %s", name, err.message);
        s->cfg.password = pw;
        break;
    }
    case SMH_DB_NAME:
        s->cfg.database = apr_pstrdup(p, arg);
        break;
    case SMH_DB_POOL_SIZE:
        if ((msg = smh_parse_uint(p, name, arg, 1, 1000, &v)) == NULL)
            s->cfg.pool_size = (unsigned)v;
        break;
    case SMH_DB_ACQUIRE_TIMEOUT:
        if ((msg = parse_millis(p, name, arg, 1, 600000, &v)) == NULL)
            s->cfg.acquire_timeout_ms = (unsigned)v;
        break;
    case SMH_DB_CONNECT_TIMEOUT:
        if ((msg = smh_parse_seconds(p, name, arg, 1, 3600, &v)) == NULL)
            s->cfg.connect_timeout_s = (unsigned)v;
        break;
    case SMH_DB_IO_TIMEOUT:
        if ((msg = smh_parse_seconds(p, name, arg, 1, 3600, &v)) == NULL)
            s->cfg.read_timeout_s = s->cfg.write_timeout_s = (unsigned)v;
        break;
    case SMH_DB_LOCK_WAIT_TIMEOUT:
        if ((msg = smh_parse_seconds(p, name, arg, 1, 3600, &v)) == NULL)
            s->cfg.lock_wait_timeout_s = (unsigned)v;
        break;
    default:
        return apr_psprintf(p, "%s: internal error: unknown database setting", name);
    }
    if (msg == NULL)
        s->set_mask |= 1u << which;
    return msg;
}

void smh_db_settings_merge(smh_db_settings *out, const smh_db_settings *base,
                           const smh_db_settings *add)
{
    smh_db_settings m = *base;
#define TAKE(setting, field)                                                                   \
    if (add->set_mask & (1u << (setting)))                                                     \
        m.cfg.field = add->cfg.field;
    TAKE(SMH_DB_SOCKET, socket)
    TAKE(SMH_DB_HOST, host)
    TAKE(SMH_DB_PORT, port)
    TAKE(SMH_DB_USER, user)
    TAKE(SMH_DB_PASSWORD_FILE, password)
    TAKE(SMH_DB_NAME, database)
    TAKE(SMH_DB_POOL_SIZE, pool_size)
    TAKE(SMH_DB_ACQUIRE_TIMEOUT, acquire_timeout_ms)
    TAKE(SMH_DB_CONNECT_TIMEOUT, connect_timeout_s)
    TAKE(SMH_DB_IO_TIMEOUT, read_timeout_s)
    TAKE(SMH_DB_IO_TIMEOUT, write_timeout_s)
    TAKE(SMH_DB_LOCK_WAIT_TIMEOUT, lock_wait_timeout_s)
#undef TAKE
    m.set_mask = base->set_mask | add->set_mask;
    *out = m;
}

int smh_db_settings_present(const smh_db_settings *s)
{
    return s->set_mask != 0;
}

const char *smh_db_settings_check(apr_pool_t *p, const smh_db_settings *s, const char *prefix)
{
    if (s->cfg.user == NULL)
        return apr_psprintf(p, "%sDBUser is required", prefix);
    if (s->cfg.database == NULL)
        return apr_psprintf(p, "%sDBName is required", prefix);
    sm_error err;
    if (sm_db_config_check(&s->cfg, &err) != SM_OK)
        return apr_psprintf(p, "%s: %s", prefix, err.message);
    return NULL;
}

/* --- key material files ----------------------------------------------------- */

#define PEM_FILE_MAX (1024 * 1024)
#define KEY_FILE_MAX (16 * 1024)

const char *smh_read_pem_file(cmd_parms *cmd, const char *path, const char **data,
                              apr_size_t *len)
{
    apr_file_t *f;
    apr_finfo_t fi;
    char msg[120];
    apr_status_t rv = apr_file_open(&f, path, APR_READ | APR_BINARY, 0, cmd->temp_pool);
    if (rv == APR_SUCCESS)
        rv = apr_file_info_get(&fi, APR_FINFO_SIZE, f);
    if (rv != APR_SUCCESS)
        return apr_psprintf(cmd->pool, "%s: cannot read \"%s\": %s", cmd->cmd->name, path,
                            apr_strerror(rv, msg, sizeof(msg)));
    if (fi.size <= 0 || fi.size > PEM_FILE_MAX) {
        apr_file_close(f);
        return apr_psprintf(cmd->pool, "%s: \"%s\" is empty or larger than 1 MiB",
                            cmd->cmd->name, path);
    }
    char *buf = apr_palloc(cmd->pool, (apr_size_t)fi.size + 1);
    apr_size_t got = 0;
    rv = apr_file_read_full(f, buf, (apr_size_t)fi.size, &got);
    apr_file_close(f);
    if (rv != APR_SUCCESS || got != (apr_size_t)fi.size)
        return apr_psprintf(cmd->pool, "%s: cannot read \"%s\"", cmd->cmd->name, path);
    buf[got] = '\0';
    if (strstr(buf, "-----BEGIN ") == NULL)
        return apr_psprintf(cmd->pool, "%s: \"%s\" is not a PEM file", cmd->cmd->name, path);
    *data = buf;
    *len = got;
    return NULL;
}

static apr_status_t free_secret(void *data)
{
    sm_secret_free(data);
    return APR_SUCCESS;
}

const char *smh_read_private_key_file(cmd_parms *cmd, const char *path, sm_secret **out)
{
    sm_secret *key;
    sm_error err;
    mode_t mode = 0;
    if (sm_file_read_secret(path, KEY_FILE_MAX, &key, &mode, &err) != SM_OK)
        return apr_psprintf(cmd->pool, "%s: %s", cmd->cmd->name, err.message);
    if ((mode & 077) != 0) {
        sm_file_refuse_loose_mode(path, mode, &err);
        sm_secret_free(key);
        return apr_psprintf(cmd->pool, "%s: %s", cmd->cmd->name, err.message);
    }
    apr_pool_cleanup_register(cmd->pool, key, free_secret, apr_pool_cleanup_null);
    *out = key;
    return NULL;
}
