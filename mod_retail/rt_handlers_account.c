#include "config.h"

/* The account, device, wallet and code endpoints: each a store operation
 * (common/sm_rt_store*.c) and what rt_handle_op needs to call it. */

#include "smh_httpd.h"

#include <apr_tables.h>

#include "retail.h"

/* ---- accounts -------------------------------------------------------------------- */

static sm_status signup(const rt_call *c, sm_rt_result *res, sm_error *err)
{
    return sm_rt_signup(c->ctx, c->body, res, err);
}
const rt_endpoint rt_ep_signup = {RT_PUBLIC, "sign-up", NULL, 0, "creating an account", signup};

static sm_status login(const rt_call *c, sm_rt_result *res, sm_error *err)
{
    return sm_rt_login(c->ctx, c->body, c->r->useragent_ip, res, err);
}
const rt_endpoint rt_ep_login = {RT_PUBLIC, "login", NULL, 0, "logging in", login};

static sm_status logout(const rt_call *c, sm_rt_result *res, sm_error *err)
{
    return sm_rt_logout(c->ctx, rt_bearer_token(c->r), res, err);
}
const rt_endpoint rt_ep_logout = {RT_CONSUMER, NULL, NULL, 0, "revoking the token", logout};

static sm_status account(const rt_call *c, sm_rt_result *res, sm_error *err)
{
    return sm_rt_account_get(c->ctx, c->account, res, err);
}
const rt_endpoint rt_ep_account = {RT_CONSUMER, NULL, NULL, 0, "reading the account", account};

/* ---- devices ------------------------------------------------------------------------ */

static sm_status devices_list(const rt_call *c, sm_rt_result *res, sm_error *err)
{
    return sm_rt_device_list(c->ctx, c->account, res, err);
}
const rt_endpoint rt_ep_devices_list = {RT_CONSUMER, NULL, NULL, 0, "listing devices",
                                        devices_list};

static sm_status device_register(const rt_call *c, sm_rt_result *res, sm_error *err)
{
    return sm_rt_device_register(c->ctx, c->account, c->body, res, err);
}
const rt_endpoint rt_ep_device_register = {RT_CONSUMER, "device", NULL, 0,
                                           "registering a device", device_register};

static sm_status device_remove(const rt_call *c, sm_rt_result *res, sm_error *err)
{
    return sm_rt_device_remove(c->ctx, c->account, c->param, res, err);
}
const rt_endpoint rt_ep_device_remove = {RT_CONSUMER, NULL, "jkt", 0, "removing a device",
                                         device_remove};

/* ---- wallet ------------------------------------------------------------------------ */

static sm_status wallet(const rt_call *c, sm_rt_result *res, sm_error *err)
{
    return sm_rt_wallet_get(c->ctx, c->account, c->limit, c->offset, res, err);
}
const rt_endpoint rt_ep_wallet = {RT_CONSUMER, NULL, NULL, 1, "reading the wallet", wallet};

static sm_status redeem(const rt_call *c, sm_rt_result *res, sm_error *err)
{
    return sm_rt_wallet_redeem(c->ctx, c->account, c->body, res, err);
}
const rt_endpoint rt_ep_redeem = {RT_CONSUMER, "redeem request", NULL, 0, "redeeming a code",
                                  redeem};

static sm_status topup(const rt_call *c, sm_rt_result *res, sm_error *err)
{
    return sm_rt_wallet_topup(c->ctx, c->account,
                              apr_table_get(c->r->headers_in, "Idempotency-Key"), c->body, res,
                              err);
}
const rt_endpoint rt_ep_topup = {RT_CONSUMER, "top-up", NULL, 0, "buying points", topup};

static sm_status codes(const rt_call *c, sm_rt_result *res, sm_error *err)
{
    return sm_rt_codes_issue(c->ctx, c->body, res, err);
}
const rt_endpoint rt_ep_codes = {RT_ADMIN, "code batch", NULL, 0, "issuing codes", codes};
