/* PUT /works/{work_id} and PUT /works/{work_id}/preview: an owner streams
 * a container (or its preview) in. The bytes go to a temporary file in the
 * storage directory while sm_upload_check judges them; only a complete,
 * valid upload whose SHA-256 matches the declared digest is recorded in
 * the database, and only after that COMMIT succeeded is the file renamed
 * into place. A GET serves whatever file is in place without asking the
 * database, so a file must never appear before its row: when the COMMIT
 * fails (its outcome may even be unknown) the temporary file is removed
 * and the owner told to send it again. The reverse gap, a committed row
 * whose file is missing (the rename failed, or the process died between
 * COMMIT and rename), is repaired by the next upload of the same bytes,
 * which puts the file in place instead of answering "already stored".
 * So no partial or unrecorded file is ever visible under a work's name,
 * and a stored work is never replaced: a repeat of the same bytes is
 * answered 200, different bytes under a stored work id 409. Previews may
 * be replaced by the work's owner; each upload gets a file name of its own
 * (<work_id>.preview-<16 hex>), put in place before the COMMIT that
 * records it in works.preview_file (invisible until then), and the
 * replaced file is removed after it: the file served and the type and
 * digest recorded always belong together, whatever the order of two
 * replacements or a failing COMMIT. */
#include "config.h"

#include "smh_httpd.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <apr_file_io.h>
#include <apr_strings.h>
#include <http_config.h>
#include <http_log.h>
#include <http_protocol.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <util_filter.h>

#include "mediastore.h"
#include "ms_config.h"
#include "sm_ms_upload.h"
#include "sm_validate.h"
#include "smh_body.h"
#include "smh_db.h"
#include "smh_identity.h"
#include "smh_json.h"
#include "smh_log.h"
#include "smh_problem.h"

APLOG_USE_MODULE(mediastore);

/* Bytes asked from the input filters at a time. */
#define READ_BLOCK (256 * 1024)

typedef struct upload {
    request_rec *r;
    sm_upload_kind kind;
    const char *work_id;
    const char *owner_dn;
    const char *media_type; /* previews */
    uint8_t declared[SM_SHA256_SIZE];
    const char *temp_path;
    const char *final_path;
    const char *preview_file;     /* previews: the final file's name */
    const char *old_preview_file; /* previews: the file this one replaces */
    int renamed;
    int recorded; /* our file is the one the database records: keep it */
    int repair;   /* containers: the row was there, its file was not */
    uint64_t size;
    /* Outcome of the transaction */
    enum { STORED, ALREADY_STORED, OTHER_CONTENT, NO_WORK, NOT_OWNER } outcome;
} upload;

int ms_check_work_id(request_rec *r, const char *work_id)
{
    sm_error err;
    if (work_id != NULL && sm_validate_work_id(work_id, "work id", &err) == SM_OK)
        return OK;
    return smh_problem(r, HTTP_BAD_REQUEST, "invalid-work-id", "Invalid work id",
                       "%s; a work id has 1 to 64 characters of A-Z a-z 0-9 . _ - and starts "
                       "with a letter or digit",
                       err.message);
}

static const char *b64(apr_pool_t *p, const uint8_t *data, size_t len)
{
    char *out = apr_palloc(p, 4 * ((len + 2) / 3) + 1);
    EVP_EncodeBlock((unsigned char *)out, data, (int)len);
    return out;
}

/* The declared SHA-256 from Repr-Digest or Content-Digest (RFC 9530);
 * both, if given, must agree. OK or DONE after a 400. */
static int declared_digest(request_rec *r, uint8_t out[SM_SHA256_SIZE])
{
    static const char *const fields[] = {"Repr-Digest", "Content-Digest"};
    int have = 0;
    for (size_t i = 0; i < 2; i++) {
        const char *v = apr_table_get(r->headers_in, fields[i]);
        if (v == NULL)
            continue;
        uint8_t d[SM_SHA256_SIZE];
        sm_error err;
        if (sm_digest_field_sha256(v, d, &err) != SM_OK)
            return smh_problem(r, HTTP_BAD_REQUEST, "digest-required",
                               "SHA-256 digest required",
                               "%s: %s; send Repr-Digest: sha-256=:<base64 of the SHA-256>:",
                               fields[i], err.message);
        if (have && memcmp(d, out, SM_SHA256_SIZE) != 0)
            return smh_problem(r, HTTP_BAD_REQUEST, "digest-required", "SHA-256 digest required",
                               "Repr-Digest and Content-Digest disagree; send one of them");
        memcpy(out, d, SM_SHA256_SIZE);
        have = 1;
    }
    if (!have)
        return smh_problem(r, HTTP_BAD_REQUEST, "digest-required", "SHA-256 digest required",
                           "uploads must declare their SHA-256: send Repr-Digest: "
                           "sha-256=:<base64 of the SHA-256 of the file>: (RFC 9530)");
    return OK;
}

/* Removes this upload's file, wherever it is, unless it was recorded. */
static apr_status_t remove_unrecorded(void *data)
{
    upload *u = data;
    const char *path = u->renamed ? u->final_path : u->temp_path;
    if (!u->recorded && path != NULL)
        apr_file_remove(path, u->r->pool);
    return APR_SUCCESS;
}

/* Makes the rename durable: sync the storage directory itself. */
static void sync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
}

static sm_status place_file(upload *u, sm_error *err)
{
    if (u->renamed)
        return SM_OK;
    if (rename(u->temp_path, u->final_path) != 0)
        return sm_error_set(err, SM_ERR_IO, "cannot rename %s to %s: %s", u->temp_path,
                            u->final_path, strerror(errno));
    u->renamed = 1;
    return SM_OK;
}

static int file_exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 || errno != ENOENT;
}

/* The transaction recording a container: lock the work's row (or the gap
 * where it would be), decide, insert. The caller renames the file into
 * place after the COMMIT. */
static sm_status store_work_tx(sm_db_conn *c, void *arg, sm_error *err)
{
    upload *u = arg;
    sm_db_rows *rows;
    u->repair = 0;
    sm_status st = sm_db_query(c, "SELECT owner_dn, sha256 FROM works WHERE work_id = ? FOR UPDATE",
                               SM_DB_PARAMS(sm_db_text(u->work_id)), &rows, err);
    if (st != SM_OK)
        return st;
    int has;
    st = sm_db_rows_next(rows, &has, err);
    if (st == SM_OK && has) {
        size_t len = 0;
        const char *owner = sm_db_col_text(rows, 0, NULL);
        const char *sha = sm_db_col_text(rows, 1, &len);
        int same = owner != NULL && strcmp(owner, u->owner_dn) == 0 && sha != NULL &&
                   len == SM_SHA256_SIZE && memcmp(sha, u->declared, SM_SHA256_SIZE) == 0;
        u->outcome = same ? ALREADY_STORED : OTHER_CONTENT;
        /* Recorded earlier, but its file never reached its place: this
         * upload's verified copy of the same bytes completes it. */
        u->repair = same && !file_exists(u->final_path);
        if (u->repair)
            u->outcome = STORED;
    }
    sm_db_rows_free(rows);
    if (st != SM_OK || has)
        return st;
    st = sm_db_exec(c,
                    "INSERT INTO works (work_id, owner_dn, size, sha256, uploaded_at) "
                    "VALUES (?, ?, ?, ?, UNIX_TIMESTAMP())",
                    SM_DB_PARAMS(sm_db_text(u->work_id), sm_db_text(u->owner_dn),
                                 sm_db_uint(u->size), sm_db_blob(u->declared, SM_SHA256_SIZE)),
                    NULL, err);
    /* Another upload of this work committed first: look again. */
    if (st == SM_ERR_DUPLICATE)
        return sm_error_set(err, SM_ERR_CONFLICT, "concurrent upload of %s", u->work_id);
    if (st != SM_OK)
        return st;
    u->outcome = STORED;
    return SM_OK;
}

/* The transaction recording a preview whose file is already in place
 * under its own name: lock the work's row, check the owner, note the file
 * it replaces, point the row at the new one. */
static sm_status store_preview_tx(sm_db_conn *c, void *arg, sm_error *err)
{
    upload *u = arg;
    sm_db_rows *rows;
    u->old_preview_file = NULL;
    sm_status st = sm_db_query(c,
                               "SELECT owner_dn, preview_file FROM works WHERE work_id = ? "
                               "FOR UPDATE",
                               SM_DB_PARAMS(sm_db_text(u->work_id)), &rows, err);
    if (st != SM_OK)
        return st;
    int has;
    st = sm_db_rows_next(rows, &has, err);
    const char *owner = st == SM_OK && has ? sm_db_col_text(rows, 0, NULL) : NULL;
    u->outcome = !has ? NO_WORK : (owner == NULL || strcmp(owner, u->owner_dn) != 0) ? NOT_OWNER
                                                                                     : STORED;
    const char *old = st == SM_OK && has ? sm_db_col_text(rows, 1, NULL) : NULL;
    if (old != NULL)
        u->old_preview_file = apr_pstrdup(u->r->pool, old);
    sm_db_rows_free(rows);
    if (st != SM_OK || u->outcome != STORED)
        return st;
    return sm_db_exec(c,
                      "UPDATE works SET preview_size = ?, preview_sha256 = ?, preview_type = ?, "
                      "preview_file = ?, preview_uploaded_at = UNIX_TIMESTAMP() "
                      "WHERE work_id = ?",
                      SM_DB_PARAMS(sm_db_uint(u->size), sm_db_blob(u->declared, SM_SHA256_SIZE),
                                   sm_db_text(u->media_type), sm_db_text(u->preview_file),
                                   sm_db_text(u->work_id)),
                      NULL, err);
}

/* <work_id>.preview-<16 random hex digits>, a name no other upload gets
 * and no container has (those end in .smc). NULL when out of randomness. */
static const char *new_preview_name(request_rec *r, const char *work_id)
{
    unsigned char rnd[8];
    if (RAND_bytes(rnd, sizeof(rnd)) != 1)
        return NULL;
    char hex[2 * sizeof(rnd) + 1];
    for (size_t i = 0; i < sizeof(rnd); i++)
        snprintf(hex + 2 * i, 3, "%02x", rnd[i]);
    return apr_pstrcat(r->pool, work_id, MS_PREVIEW_SUFFIX, "-", hex, NULL);
}

/* Answers for a work that is already stored before reading the body. */
static int check_existing(request_rec *r, ms_child_state *state, upload *u)
{
    sm_db_conn *c;
    sm_error err;
    sm_status st = sm_db_acquire(state->db, &c, &err);
    if (st != SM_OK)
        return smh_db_problem(r, "checking the work", &err);
    sm_db_rows *rows;
    st = sm_db_query(c, "SELECT owner_dn, sha256 FROM works WHERE work_id = ?",
                     SM_DB_PARAMS(sm_db_text(u->work_id)), &rows, &err);
    int has = 0;
    const char *owner = NULL, *sha = NULL;
    size_t sha_len = 0;
    if (st == SM_OK && (st = sm_db_rows_next(rows, &has, &err)) == SM_OK && has) {
        owner = apr_pstrdup(r->pool, sm_db_col_text(rows, 0, NULL));
        sha = sm_db_col_text(rows, 1, &sha_len);
        sha = sha != NULL ? apr_pmemdup(r->pool, sha, sha_len) : NULL;
    }
    if (st == SM_OK)
        sm_db_rows_free(rows);
    sm_db_release(c);
    if (st != SM_OK)
        return smh_db_problem(r, "checking the work", &err);
    if (u->kind == SM_UPLOAD_PREVIEW) {
        if (!has)
            return smh_problem(r, HTTP_NOT_FOUND, "work-not-found", "Work not found",
                               "no work \"%s\" is stored here; upload the container before its "
                               "preview",
                               u->work_id);
        if (strcmp(owner, u->owner_dn) != 0)
            return smh_problem(r, HTTP_FORBIDDEN, "not-owner", "Not the work's owner",
                               "work \"%s\" belongs to another owner; only its owner may upload "
                               "its preview",
                               u->work_id);
        return OK;
    }
    if (!has)
        return OK;
    if (strcmp(owner, u->owner_dn) == 0 && sha_len == SM_SHA256_SIZE &&
        memcmp(sha, u->declared, SM_SHA256_SIZE) == 0) {
        /* Recorded, but the file is not in place: take the body to
         * complete it (store_work_tx decides again under the row lock). */
        if (!file_exists(ms_storage_path(r, u->work_id, MS_CONTAINER_SUFFIX)))
            return OK;
        json_t *doc = json_pack("{s:s,s:s,s:s}", "work_id", u->work_id, "status",
                                "already-stored", "sha256",
                                b64(r->pool, u->declared, SM_SHA256_SIZE));
        smh_finish_request_body(r);
        int rc = smh_send_json(r, HTTP_OK, doc);
        json_decref(doc);
        return rc;
    }
    return smh_problem(r, HTTP_CONFLICT, "work-exists", "Work already stored",
                       "a different container is already stored as work \"%s\"; stored works "
                       "are never replaced: publish the new one under a new work id",
                       u->work_id);
}

/* Streams the body into the temporary file through the checker. */
static int receive(request_rec *r, upload *u, sm_upload_check *chk, apr_file_t *f)
{
    apr_bucket_brigade *bb = apr_brigade_create(r->pool, r->connection->bucket_alloc);
    sm_error err;
    int seen_eos = 0;
    while (!seen_eos) {
        apr_status_t rv = ap_get_brigade(r->input_filters, bb, AP_MODE_READBYTES, APR_BLOCK_READ,
                                         READ_BLOCK);
        if (rv != APR_SUCCESS) {
            smh_body_mark_consumed(r);
            r->connection->keepalive = AP_CONN_CLOSE;
            ap_log_rerror(APLOG_MARK, APLOG_INFO, rv, r,
                          SMLOGNO(02007) "upload of %s interrupted after %" APR_UINT64_T_FMT " bytes; nothing "
                                         "stored",
                          u->work_id, (apr_uint64_t)sm_upload_check_received(chk));
            return smh_problem(r, ap_map_http_request_error(rv, HTTP_BAD_REQUEST),
                               "upload-incomplete", "Upload incomplete",
                               "the upload was interrupted; nothing was stored, send it again");
        }
        for (apr_bucket *b = APR_BRIGADE_FIRST(bb); b != APR_BRIGADE_SENTINEL(bb);
             b = APR_BUCKET_NEXT(b)) {
            if (APR_BUCKET_IS_EOS(b)) {
                seen_eos = 1;
                break;
            }
            const char *data;
            apr_size_t len;
            if (APR_BUCKET_IS_METADATA(b) ||
                apr_bucket_read(b, &data, &len, APR_BLOCK_READ) != APR_SUCCESS || len == 0)
                continue;
            sm_status st = sm_upload_check_update(chk, (const uint8_t *)data, len, &err);
            if (st == SM_ERR_TOO_LARGE)
                return smh_problem_too_large(r, (apr_off_t)(u->kind == SM_UPLOAD_CONTAINER
                                                                ? ms_server_conf(r->server)->max_upload
                                                                : ms_server_conf(r->server)->max_preview),
                                             u->kind == SM_UPLOAD_CONTAINER ? "container"
                                                                            : "preview");
            if (st != SM_OK)
                return smh_problem(r, HTTP_BAD_REQUEST, "invalid-container", "Invalid container",
                                   "%s", err.message);
            apr_size_t written = 0;
            rv = apr_file_write_full(f, data, len, &written);
            if (rv != APR_SUCCESS) {
                ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r,
                              SMLOGNO(02005) "cannot write %s", u->temp_path);
                return smh_problem(r, HTTP_INSUFFICIENT_STORAGE, "storage-failed",
                                   "Storage failed",
                                   "the media store could not write the upload (disk full?); "
                                   "nothing was stored, try again later");
            }
        }
        apr_brigade_cleanup(bb);
    }
    smh_body_mark_consumed(r);
    return OK;
}

static int handle_upload(request_rec *r, const smh_route_match *m, sm_upload_kind kind)
{
    ms_server_config *cfg = ms_server_conf(r->server);
    ms_child_state *state = ms_state(r);
    upload *u = apr_pcalloc(r->pool, sizeof(*u));
    u->r = r;
    u->kind = kind;
    u->work_id = smh_route_param(m, "work_id");
    int rc = ms_check_work_id(r, u->work_id);
    if (rc == OK)
        rc = smh_require_role(r, cfg->roles, MS_ROLE_OWNER, &u->owner_dn);
    if (rc == OK)
        rc = declared_digest(r, u->declared);
    if (rc != OK)
        return rc;
    if (apr_table_get(r->headers_in, "Content-Encoding") != NULL)
        return smh_problem(r, HTTP_UNSUPPORTED_MEDIA_TYPE, "unsupported-media-type",
                           "Unsupported media type",
                           "send the file as it is, without Content-Encoding");
    if (kind == SM_UPLOAD_PREVIEW) {
        sm_error err;
        /* The request's header, not r->content_type, which mod_mime may
         * have guessed from the URL. */
        const char *ct = apr_table_get(r->headers_in, "Content-Type");
        if (ct == NULL || sm_validate_media_type(ct, "Content-Type", &err) != SM_OK)
            return smh_problem(r, HTTP_UNSUPPORTED_MEDIA_TYPE, "unsupported-media-type",
                               "Unsupported media type",
                               "send the preview with the Content-Type of its media, e.g. "
                               "audio/ogg (type/subtype, no parameters)");
        u->media_type = ct;
    }
    if (state == NULL || state->db == NULL)
        return smh_problem_unavailable(r, "the media store's database is not configured "
                                          "correctly; retry later");
    if ((rc = check_existing(r, state, u)) != OK)
        return rc;

    sm_upload_check *chk;
    sm_error err;
    uint64_t max = kind == SM_UPLOAD_CONTAINER ? cfg->max_upload : cfg->max_preview;
    sm_status st = sm_upload_check_new(kind, u->work_id, max, (int64_t)smh_body_announced_length(r),
                                       &chk, &err);
    if (st == SM_ERR_TOO_LARGE)
        return smh_problem_too_large(r, (apr_off_t)max,
                                     kind == SM_UPLOAD_CONTAINER ? "container" : "preview");
    if (st != SM_OK)
        return smh_problem_internal(r);

    char *tmpl = apr_pstrcat(r->pool, cfg->storage_dir, "/.upload-XXXXXX", NULL);
    apr_file_t *f;
    apr_status_t rv = apr_file_mktemp(&f, tmpl,
                                      APR_FOPEN_CREATE | APR_FOPEN_READ | APR_FOPEN_WRITE |
                                          APR_FOPEN_EXCL | APR_FOPEN_BUFFERED,
                                      r->pool);
    if (rv != APR_SUCCESS) {
        sm_upload_check_free(chk);
        ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r,
                      SMLOGNO(02004) "cannot create a temporary file in %s", cfg->storage_dir);
        return smh_problem(r, HTTP_INSUFFICIENT_STORAGE, "storage-failed", "Storage failed",
                           "the media store could not store the upload; try again later");
    }
    u->temp_path = tmpl;
    if (kind == SM_UPLOAD_CONTAINER) {
        u->final_path = ms_storage_path(r, u->work_id, MS_CONTAINER_SUFFIX);
    } else {
        u->preview_file = new_preview_name(r, u->work_id);
        u->final_path = u->preview_file != NULL ? ms_storage_path(r, u->preview_file, "") : NULL;
    }
    apr_pool_cleanup_register(r->pool, u, remove_unrecorded, apr_pool_cleanup_null);
    if (u->final_path == NULL) {
        apr_file_close(f);
        sm_upload_check_free(chk);
        apr_pool_cleanup_run(r->pool, u, remove_unrecorded);
        return smh_problem_internal(r);
    }
    apr_file_perms_set(tmpl, APR_FPROT_UREAD | APR_FPROT_UWRITE | APR_FPROT_GREAD);

    rc = receive(r, u, chk, f);
    if (rc == OK) {
        st = sm_upload_check_finish(chk, u->declared, &err);
        if (st == SM_ERR_AUTH)
            rc = smh_problem(r, HTTP_BAD_REQUEST, "digest-mismatch", "Digest mismatch",
                             "%s; nothing was stored", err.message);
        else if (st == SM_ERR_TRUNCATED)
            rc = smh_problem(r, HTTP_BAD_REQUEST, "upload-incomplete", "Upload incomplete",
                             "%s; nothing was stored, send the whole file", err.message);
        else if (st != SM_OK)
            rc = smh_problem(r, HTTP_BAD_REQUEST, "invalid-container", "Invalid container", "%s",
                             err.message);
    }
    u->size = sm_upload_check_received(chk);
    sm_upload_check_free(chk);
    if (rc == OK) {
        rv = apr_file_flush(f);
        if (rv == APR_SUCCESS)
            rv = apr_file_datasync(f);
        if (rv != APR_SUCCESS) {
            ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r, SMLOGNO(02006) "cannot sync %s",
                          u->temp_path);
            rc = smh_problem(r, HTTP_INSUFFICIENT_STORAGE, "storage-failed", "Storage failed",
                             "the media store could not store the upload; try again later");
        }
    }
    apr_file_close(f);
    /* A preview goes to its own name first: nothing serves it until the
     * row points at it. */
    if (rc == OK && kind == SM_UPLOAD_PREVIEW && place_file(u, &err) != SM_OK) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, SMLOGNO(02019) "preview of %s: %s",
                      u->work_id, err.message);
        rc = smh_problem(r, HTTP_INSUFFICIENT_STORAGE, "storage-failed", "Storage failed",
                         "the media store could not store the upload; try again later");
    }
    if (rc != OK) {
        /* Gone before the answer leaves, not when the request pool dies. */
        apr_pool_cleanup_run(r->pool, u, remove_unrecorded);
        return rc;
    }

    st = sm_db_transaction(state->db, kind == SM_UPLOAD_CONTAINER ? store_work_tx
                                                                  : store_preview_tx,
                           u, &err);
    if (st != SM_OK) {
        apr_pool_cleanup_run(r->pool, u, remove_unrecorded);
        return smh_db_problem(r, "recording the upload", &err);
    }
    if (kind == SM_UPLOAD_PREVIEW && u->outcome == STORED) {
        u->recorded = 1;
        /* The replaced file, named by the row this transaction changed
         * (so by nothing now); a crash before this leaves only litter. */
        if (u->old_preview_file != NULL && strcmp(u->old_preview_file, u->preview_file) != 0 &&
            ms_preview_name_ok(u->work_id, u->old_preview_file))
            apr_file_remove(ms_storage_path(r, u->old_preview_file, ""), r->pool);
    }
    /* A container: committed, so only now may the file appear under the
     * work's name. A concurrent upload of the same bytes may have
     * completed a recorded work first: then this one is a repeat. */
    if (kind == SM_UPLOAD_CONTAINER && u->outcome == STORED && u->repair &&
        file_exists(u->final_path))
        u->outcome = ALREADY_STORED;
    if (kind == SM_UPLOAD_CONTAINER && u->outcome == STORED) {
        if (place_file(u, &err) != SM_OK) {
            apr_pool_cleanup_run(r->pool, u, remove_unrecorded);
            ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                          SMLOGNO(02008) "work %s recorded but not put in place: %s",
                          u->work_id, err.message);
            return smh_problem(r, HTTP_INSUFFICIENT_STORAGE, "storage-failed",
                               "Storage failed",
                               "the upload of \"%s\" was recorded but its file could not be "
                               "put in place; send the same file again to complete it",
                               u->work_id);
        }
        u->recorded = 1;
    }
    apr_pool_cleanup_run(r->pool, u, remove_unrecorded);
    sync_dir(cfg->storage_dir);
    switch (u->outcome) {
    case OTHER_CONTENT:
        return smh_problem(r, HTTP_CONFLICT, "work-exists", "Work already stored",
                           "a different container was stored as work \"%s\" meanwhile; stored "
                           "works are never replaced",
                           u->work_id);
    case NO_WORK:
        return smh_problem(r, HTTP_NOT_FOUND, "work-not-found", "Work not found",
                           "work \"%s\" is not stored here; upload the container first",
                           u->work_id);
    case NOT_OWNER:
        return smh_problem(r, HTTP_FORBIDDEN, "not-owner", "Not the work's owner",
                           "work \"%s\" belongs to another owner", u->work_id);
    case STORED:
    case ALREADY_STORED:
        break;
    }
    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                  SMLOGNO(02003) "%s %s stored for %s (%" APR_UINT64_T_FMT " bytes)",
                  kind == SM_UPLOAD_CONTAINER ? "work" : "preview of", u->work_id, u->owner_dn,
                  (apr_uint64_t)u->size);
    json_t *doc = json_pack("{s:s,s:s,s:I,s:s}", "work_id", u->work_id, "status",
                            u->outcome == STORED ? "stored" : "already-stored", "size",
                            (json_int_t)u->size, "sha256",
                            b64(r->pool, u->declared, SM_SHA256_SIZE));
    if (u->outcome == STORED)
        apr_table_setn(r->headers_out, "Location", r->uri);
    rc = smh_send_json(r, u->outcome == STORED ? HTTP_CREATED : HTTP_OK, doc);
    json_decref(doc);
    return rc;
}

int ms_handle_upload_work(request_rec *r, const smh_route_match *m, void *ctx)
{
    (void)ctx;
    return handle_upload(r, m, SM_UPLOAD_CONTAINER);
}

int ms_handle_upload_preview(request_rec *r, const smh_route_match *m, void *ctx)
{
    (void)ctx;
    return handle_upload(r, m, SM_UPLOAD_PREVIEW);
}
