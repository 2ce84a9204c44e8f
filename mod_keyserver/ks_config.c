#include "config.h"

#include "smh_httpd.h"

#include <string.h>

#include <apr_strings.h>
#include <http_config.h>

#include "ks_config.h"
#include "sm_ks_license.h"
#include "sm_validate.h"
#include "smh_route.h"

extern module AP_MODULE_DECLARE_DATA keyserver_module;

/* Bits of ks_server_config.set_mask */
enum {
    SET_ISSUER = 1u << 0,
    SET_KEK = 1u << 1,
    SET_KEYS = 1u << 2, /* any signing or encryption key */
    SET_MEDIA_STORES = 1u << 3,
    SET_VOUCHER_LIFETIME = 1u << 4,
    SET_PAYMENT_ACK_LIFETIME = 1u << 5,
    SET_DELIVERY_LIFETIME = 1u << 6,
    SET_RESERVATION_LIFETIME = 1u << 7,
    SET_PROOF_MAX_AGE = 1u << 8,
    SET_ACTIVATION_LIMIT = 1u << 9,
    SET_CHECKPOINT_EVERY = 1u << 10,
    SET_MAX_BODY = 1u << 11,
    SET_MAX_WORK_BODY = 1u << 12,
};

static const char *const known_roles[] = {KS_ROLE_ADMIN, KS_ROLE_OWNER, KS_ROLE_RETAILER,
                                          KS_ROLE_MEDIASTORE, KS_ROLE_AUDITOR, NULL};

ks_server_config *ks_server_conf(server_rec *s)
{
    return ap_get_module_config(s->module_config, &keyserver_module);
}

void *ks_create_server_config(apr_pool_t *p, server_rec *s)
{
    (void)s;
    ks_server_config *c = apr_pcalloc(p, sizeof(*c));
    smh_db_settings_init(&c->db);
    c->roles = smh_role_map_make(p);
    c->voucher_lifetime = SM_KS_DEFAULT_VOUCHER_LIFETIME;
    c->payment_ack_lifetime = SM_KS_DEFAULT_PAYMENT_ACK_LIFETIME;
    c->delivery_lifetime = SM_KS_DEFAULT_DELIVERY_LIFETIME;
    c->reservation_lifetime = SM_KS_DEFAULT_RESERVATION_LIFETIME;
    c->proof_max_age = SM_DPOP_DEFAULT_MAX_AGE;
    c->activation_limit = SM_KS_DEFAULT_ACTIVATION_LIMIT;
    c->checkpoint_every = SM_KS_DEFAULT_CHECKPOINT_EVERY;
    c->max_body = KS_DEFAULT_MAX_BODY;
    c->max_work_body = KS_DEFAULT_MAX_WORK_BODY;
    return c;
}

void *ks_merge_server_config(apr_pool_t *p, void *basev, void *addv)
{
    const ks_server_config *base = basev, *add = addv;
    ks_server_config *c = apr_pcalloc(p, sizeof(*c));
#define PICK(bit, field) c->field = (add->set_mask & (bit)) ? add->field : base->field
    PICK(SET_ISSUER, issuer);
    PICK(SET_KEK, kek_file);
    PICK(SET_KEK, kek);
    PICK(SET_KEYS, keys);
    PICK(SET_KEYS, n_signing);
    PICK(SET_KEYS, n_active);
    PICK(SET_KEYS, have_encryption);
    PICK(SET_VOUCHER_LIFETIME, voucher_lifetime);
    PICK(SET_PAYMENT_ACK_LIFETIME, payment_ack_lifetime);
    PICK(SET_DELIVERY_LIFETIME, delivery_lifetime);
    PICK(SET_RESERVATION_LIFETIME, reservation_lifetime);
    PICK(SET_PROOF_MAX_AGE, proof_max_age);
    PICK(SET_ACTIVATION_LIMIT, activation_limit);
    PICK(SET_CHECKPOINT_EVERY, checkpoint_every);
    PICK(SET_MAX_BODY, max_body);
    PICK(SET_MAX_WORK_BODY, max_work_body);
#undef PICK
    const ks_server_config *stores = (add->set_mask & SET_MEDIA_STORES) ? add : base;
    memcpy(c->media_stores, stores->media_stores, sizeof(c->media_stores));
    c->n_media_stores = stores->n_media_stores;
    c->set_mask = base->set_mask | add->set_mask;
    smh_db_settings_merge(&c->db, &base->db, &add->db);
    c->roles = smh_role_map_merge(p, base->roles, add->roles);
    return c;
}

static ks_server_config *cmd_conf(cmd_parms *cmd)
{
    return ap_get_module_config(cmd->server->module_config, &keyserver_module);
}

static const char *set_db(cmd_parms *cmd, void *dummy, const char *arg)
{
    (void)dummy;
    return smh_db_setting_set(cmd, &cmd_conf(cmd)->db, arg);
}

static const char *set_issuer(cmd_parms *cmd, void *dummy, const char *arg)
{
    (void)dummy;
    ks_server_config *c = cmd_conf(cmd);
    const char *msg = smh_parse_https_url(cmd->pool, cmd->cmd->name, arg, &c->issuer);
    if (msg == NULL)
        c->set_mask |= SET_ISSUER;
    return msg;
}

/* Key material loaded while the configuration is read lives as long as the
 * configuration pool; freeing it wipes it. */
static apr_status_t free_kek(void *data)
{
    sm_ks_kek_free(data);
    return APR_SUCCESS;
}

static apr_status_t free_keys(void *data)
{
    sm_ks_keys_free(data);
    return APR_SUCCESS;
}

static const char *set_kek(cmd_parms *cmd, void *dummy, const char *arg)
{
    (void)dummy;
    ks_server_config *c = cmd_conf(cmd);
    const char *path;
    sm_error err = {0};
    const char *msg = smh_parse_readable_file(cmd->pool, cmd->cmd->name, arg, &path);
    if (msg != NULL)
        return msg;
    if (c->set_mask & SET_KEK)
        return apr_psprintf(cmd->pool, "%s: given twice in one server; use one file with "
                                       "several versions to rotate",
                            cmd->cmd->name);
    /* Read now, as root, so the file can stay private to root. The secure
     * heap is deliberately not set up in the parent (its locks would not
     * survive the fork): each child copies the KEK into its own locked
     * memory (ks_state.c). */
    sm_ks_kek *kek = NULL;
    if (sm_ks_kek_load(path, &kek, &err) != SM_OK)
        return apr_psprintf(cmd->pool, "%s: %s", cmd->cmd->name, err.message);
    apr_pool_cleanup_register(cmd->pool, kek, free_kek, apr_pool_cleanup_null);
    c->kek_file = path;
    c->kek = kek;
    c->set_mask |= SET_KEK;
    return NULL;
}

static const char *ensure_keys(cmd_parms *cmd, ks_server_config *c)
{
    if (c->keys != NULL)
        return NULL;
    sm_error err = {0};
    if (sm_ks_keys_new(&c->keys, &err) != SM_OK)
        return apr_psprintf(cmd->pool, "%s: %s", cmd->cmd->name, err.message);
    apr_pool_cleanup_register(cmd->pool, c->keys, free_keys, apr_pool_cleanup_null);
    c->set_mask |= SET_KEYS;
    return NULL;
}

static const char *set_signing_key(cmd_parms *cmd, void *dummy, const char *file,
                                   const char *kid, const char *flag)
{
    (void)dummy;
    ks_server_config *c = cmd_conf(cmd);
    const char *path;
    sm_error err = {0};
    int active = 0;
    if (flag != NULL) {
        if (strcmp(flag, "active") != 0)
            return apr_psprintf(cmd->pool,
                                "%s: the third argument may only be \"active\", not \"%s\"",
                                cmd->cmd->name, flag);
        active = 1;
    }
    const char *msg = smh_parse_readable_file(cmd->pool, cmd->cmd->name, file, &path);
    if (msg == NULL)
        msg = ensure_keys(cmd, c);
    if (msg != NULL)
        return msg;
    if (sm_ks_keys_load_signing(c->keys, path, kid, active, &err) != SM_OK)
        return apr_psprintf(cmd->pool, "%s %s: %s", cmd->cmd->name, kid, err.message);
    c->n_signing++;
    c->n_active += (unsigned)active;
    return NULL;
}

static const char *set_encryption_key(cmd_parms *cmd, void *dummy, const char *file,
                                      const char *kid)
{
    (void)dummy;
    ks_server_config *c = cmd_conf(cmd);
    const char *path;
    sm_error err = {0};
    const char *msg = smh_parse_readable_file(cmd->pool, cmd->cmd->name, file, &path);
    if (msg == NULL)
        msg = ensure_keys(cmd, c);
    if (msg != NULL)
        return msg;
    if (sm_ks_keys_load_encryption(c->keys, path, kid, &err) != SM_OK)
        return apr_psprintf(cmd->pool, "%s %s: %s", cmd->cmd->name, kid, err.message);
    c->have_encryption = 1;
    return NULL;
}

static const char *set_media_store(cmd_parms *cmd, void *dummy, const char *id)
{
    (void)dummy;
    ks_server_config *c = cmd_conf(cmd);
    sm_error err = {0};
    if (sm_ks_validate_id(id, cmd->cmd->name, &err) != SM_OK)
        return apr_psprintf(cmd->pool, "%s: \"%s\" is not a media store id (1 to 64 of "
                                       "A-Z a-z 0-9 . _ -)",
                            cmd->cmd->name, id);
    if (c->n_media_stores >= SM_KS_MAX_MEDIA_STORES)
        return apr_psprintf(cmd->pool, "%s: at most %u media stores", cmd->cmd->name,
                            SM_KS_MAX_MEDIA_STORES);
    for (unsigned i = 0; i < c->n_media_stores; i++)
        if (strcmp(c->media_stores[i], id) == 0)
            return apr_psprintf(cmd->pool, "%s: %s is listed twice", cmd->cmd->name, id);
    c->media_stores[c->n_media_stores++] = apr_pstrdup(cmd->pool, id);
    c->set_mask |= SET_MEDIA_STORES;
    return NULL;
}

static const char *set_seconds(cmd_parms *cmd, void *dummy, const char *arg)
{
    (void)dummy;
    ks_server_config *c = cmd_conf(cmd);
    const char *which = cmd->info;
    uint64_t v, max = UINT64_C(36500) * 86400, min = 1;
    if (strcmp(which, "proof") == 0)
        max = 86400;
    else if (strcmp(which, "delivery") == 0 || strcmp(which, "reservation") == 0)
        max = 30 * 86400;
    const char *msg = smh_parse_seconds(cmd->pool, cmd->cmd->name, arg, min, max, &v);
    if (msg != NULL)
        return msg;
    if (strcmp(which, "voucher") == 0) {
        c->voucher_lifetime = v;
        c->set_mask |= SET_VOUCHER_LIFETIME;
    } else if (strcmp(which, "payment") == 0) {
        c->payment_ack_lifetime = v;
        c->set_mask |= SET_PAYMENT_ACK_LIFETIME;
    } else if (strcmp(which, "delivery") == 0) {
        c->delivery_lifetime = v;
        c->set_mask |= SET_DELIVERY_LIFETIME;
    } else if (strcmp(which, "reservation") == 0) {
        c->reservation_lifetime = v;
        c->set_mask |= SET_RESERVATION_LIFETIME;
    } else {
        c->proof_max_age = v;
        c->set_mask |= SET_PROOF_MAX_AGE;
    }
    return NULL;
}

static const char *set_count(cmd_parms *cmd, void *dummy, const char *arg)
{
    (void)dummy;
    ks_server_config *c = cmd_conf(cmd);
    uint64_t v;
    const char *msg;
    if (strcmp(cmd->info, "activations") == 0) {
        if ((msg = smh_parse_uint(cmd->pool, cmd->cmd->name, arg, 1, SM_KS_MAX_ACTIVATION_LIMIT,
                                  &v)) != NULL)
            return msg;
        c->activation_limit = v;
        c->set_mask |= SET_ACTIVATION_LIMIT;
    } else {
        if ((msg = smh_parse_uint(cmd->pool, cmd->cmd->name, arg, 0, 1000000, &v)) != NULL)
            return msg;
        c->checkpoint_every = v;
        c->set_mask |= SET_CHECKPOINT_EVERY;
    }
    return NULL;
}

static const char *set_size(cmd_parms *cmd, void *dummy, const char *arg)
{
    (void)dummy;
    ks_server_config *c = cmd_conf(cmd);
    uint64_t v;
    const char *msg = smh_parse_size(cmd->pool, cmd->cmd->name, arg, 1024, 64u * 1024 * 1024, &v);
    if (msg != NULL)
        return msg;
    if (strcmp(cmd->info, "work") == 0) {
        c->max_work_body = v;
        c->set_mask |= SET_MAX_WORK_BODY;
    } else {
        c->max_body = v;
        c->set_mask |= SET_MAX_BODY;
    }
    return NULL;
}

static const char *set_role(cmd_parms *cmd, void *dummy, const char *role, const char *dn)
{
    (void)dummy;
    return smh_role_map_add(cmd->pool, cmd_conf(cmd)->roles, cmd->cmd->name, role, dn,
                            known_roles);
}

const command_rec ks_directives[] = {
    AP_INIT_TAKE1("KeyServerIssuer", set_issuer, NULL, RSRC_CONF,
                  "https base URL of this key server: the \"iss\" of its tokens; devices "
                  "sign their license requests for ISSUER/v1/license"),
    AP_INIT_TAKE1("KeyServerKEKFile", set_kek, NULL, RSRC_CONF,
                  "file (mode 0600) with the versioned key-encryption keys for media keys"),
    AP_INIT_TAKE23("KeyServerSigningKey", set_signing_key, NULL, RSRC_CONF,
                   "FILE KID [active]: a private P-256 JWK (mode 0600) published under KID; "
                   "exactly one is active and signs"),
    AP_INIT_TAKE2("KeyServerEncryptionKey", set_encryption_key, NULL, RSRC_CONF,
                  "FILE KID: the private P-256 JWK (mode 0600) owners wrap media keys to"),
    AP_INIT_TAKE2("KeyServerClientRole", set_role, NULL, RSRC_CONF,
                  "ROLE SUBJECT-DN: grant a client certificate a role (admin, owner, retailer, "
                  "mediastore, auditor)"),
    AP_INIT_TAKE1("KeyServerMediaStoreID", set_media_store, NULL, RSRC_CONF,
                  "a media store id put in the \"aud\" of delivery tokens (repeat per mirror)"),
    AP_INIT_TAKE1("KeyServerVoucherLifetime", set_seconds, (void *)"voucher", RSRC_CONF,
                  "how long a voucher can be used for licenses (default 3650d)"),
    AP_INIT_TAKE1("KeyServerPaymentAckLifetime", set_seconds, (void *)"payment", RSRC_CONF,
                  "validity of payment acknowledgements (default 3650d)"),
    AP_INIT_TAKE1("KeyServerDeliveryTokenLifetime", set_seconds, (void *)"delivery", RSRC_CONF,
                  "validity of delivery tokens for the media store (default 1h)"),
    AP_INIT_TAKE1("KeyServerReservationLifetime", set_seconds, (void *)"reservation",
                  RSRC_CONF, "time a retailer has to record the payment of a reservation "
                             "(default 1h)"),
    AP_INIT_TAKE1("KeyServerProofMaxAge", set_seconds, (void *)"proof", RSRC_CONF,
                  "oldest device proof accepted (default 300s)"),
    AP_INIT_TAKE1("KeyServerActivationLimit", set_count, (void *)"activations", RSRC_CONF,
                  "licenses per purchase (1..1000, default 5)"),
    AP_INIT_TAKE1("KeyServerCheckpointInterval", set_count, (void *)"checkpoint", RSRC_CONF,
                  "sign a ledger checkpoint every N entries (0 = only on demand; default 100)"),
    AP_INIT_TAKE1("KeyServerMaxBodySize", set_size, (void *)"body", RSRC_CONF,
                  "largest JSON request body (default 64K)"),
    AP_INIT_TAKE1("KeyServerMaxWorkBodySize", set_size, (void *)"work", RSRC_CONF,
                  "largest work registration body, with lyrics and notes (default 1M)"),
    SMH_DB_DIRECTIVES("KeyServer", set_db),
    {.name = NULL}}; /* designated: clang wants every field otherwise */

int ks_config_in_use(const ks_server_config *c)
{
    return c->set_mask != 0 || smh_db_settings_present(&c->db) || c->roles->entries->nelts > 0;
}

const char *ks_config_check(apr_pool_t *p, const ks_server_config *c)
{
    static const struct {
        unsigned bit;
        const char *directive;
    } required[] = {
        {SET_ISSUER, "KeyServerIssuer"},
        {SET_KEK, "KeyServerKEKFile"},
        {SET_KEYS, "KeyServerSigningKey"},
        {SET_MEDIA_STORES, "KeyServerMediaStoreID"},
    };
    for (size_t i = 0; i < sizeof(required) / sizeof(required[0]); i++)
        if (!(c->set_mask & required[i].bit))
            return apr_psprintf(p, "mod_keyserver: %s is required", required[i].directive);
    if (c->n_signing == 0)
        return "mod_keyserver: KeyServerSigningKey is required";
    if (c->n_active == 0 && c->n_signing > 1)
        return "mod_keyserver: several KeyServerSigningKey are given but none is marked "
               "\"active\"; mark the one that signs";
    if (!c->have_encryption)
        return "mod_keyserver: KeyServerEncryptionKey is required";
    return smh_db_settings_check(p, &c->db, "KeyServer");
}
