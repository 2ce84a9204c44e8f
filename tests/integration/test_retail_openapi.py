"""docs/openapi/retail.yaml against the implementation: every route of
mod_retail is in the spec and every operation of the spec is a route; a
scripted session that calls every operation (successes and refusals)
only ever gets a status and a content type the spec documents for it, and
covers every operation."""

import json
import os
import uuid

from keyserver_setup import Device
from openapi_check import Recorder, check_seen, check_spec_and_routes, load_spec
from retail_setup import SHOP, Retail, steer_json

SPEC = "retail.yaml"


def test_spec_lists_exactly_the_routes():
    check_spec_and_routes(SPEC, "mod_retail/mod_retail.c", "rt_handle_")


def test_answers_match_the_spec(env):
    spec = load_spec(SPEC)
    store = os.path.join(env.httpd.directory, "store")
    os.makedirs(store)
    with open(os.path.join(store, "index.html"), "w") as f:
        f.write("<!doctype html><title>shop</title>")
    os.chmod(store, 0o755)
    shop = Retail(env, proxy=True, extra='RetailPaymentAuthority test-double\n'
                                          'RetailStorefrontDir "%s"' % store)
    env.httpd.start()
    cat = shop.catalog()
    seen = []
    pub = Recorder(env.client(), spec, seen, prefix=SHOP)
    admin = Recorder(env.client("admin"), spec, seen, prefix=SHOP)
    email = "spec-%s@example.org" % uuid.uuid4().hex[:8]
    pw = "a long enough password"

    assert pub.call("POST", "/v1/accounts", json={"email": email, "password": pw}).status_code == 201
    pub.call("POST", "/v1/accounts", json={"email": email, "password": pw})          # 409
    pub.call("POST", "/v1/accounts", json={"email": "x"})                             # 400
    pub.call("POST", "/v1/accounts", data="x", headers={"Content-Type": "text/plain"})  # 415
    pub.call("POST", "/v1/accounts", data="{" + " " * 70000 + "}",
             headers={"Content-Type": "application/json"})                            # 413
    pub.call("POST", "/v1/sessions", json={"email": email, "password": "wrong one!!"})  # 401
    token = pub.call("POST", "/v1/sessions", json={"email": email, "password": pw}).json()["token"]
    me = Recorder(env.client(), spec, seen, token, prefix=SHOP)
    anon = Recorder(env.client(), spec, seen, None, prefix=SHOP)
    for path in ("/v1/account", "/v1/devices", "/v1/wallet", "/v1/orders"):
        anon.call("GET", path)                                                        # 401
        me.call("GET", path)                                                          # 200
    dev = Device()
    jwk = json.loads(dev.key.export_public())
    me.call("POST", "/v1/devices", json={"jwk": jwk})                                # 201
    me.call("POST", "/v1/devices", json={"jwk": jwk})                                # 200
    me.call("POST", "/v1/devices", json={"jwk": {"kty": "EC"}})                      # 400
    me.call("DELETE", "/v1/devices/" + Device().jkt)                                  # 404
    anon.call("POST", "/v1/admin/codes", json={"points": 1, "count": 1})             # 403
    code = admin.call("POST", "/v1/admin/codes", json={"points": 900, "count": 2}).json()["codes"]
    me.call("POST", "/v1/wallet/redeem", json={"code": code[0]})                     # 200
    me.call("POST", "/v1/wallet/redeem", json={"code": code[0]})                     # 409
    me.call("POST", "/v1/wallet/redeem", json={"code": "0" * 20})                    # 404
    me.call("POST", "/v1/wallet/topups", json={"points": 10, "payment_token": "approve"},
            headers={"Idempotency-Key": "t1"})                                        # 201
    me.call("POST", "/v1/wallet/topups", json={"points": 10, "payment_token": "approve"},
            headers={"Idempotency-Key": "t1"})                                        # 200
    me.call("POST", "/v1/wallet/topups", json={"points": 10, "payment_token": "no"},
            headers={"Idempotency-Key": "t2"})                                        # 402
    anon.call("POST", "/v1/admin/catalog/sync")                                       # 403
    admin.call("POST", "/v1/admin/catalog/sync")                                      # 200
    admin.call("POST", "/v1/admin/offers", json={"work_id": cat.work_id,
                                                 "license": {"type": "purchase"}, "price": 1})  # 422
    offer = admin.call("POST", "/v1/admin/offers", json={
        "work_id": cat.work_id, "license": {"type": "purchase"}, "price": 300}).json()
    extra = admin.call("POST", "/v1/admin/offers", json={
        "work_id": cat.work_id, "license": {"type": "purchase"}, "price": 400}).json()
    admin.call("GET", "/v1/admin/offers")                                             # 200
    admin.call("DELETE", "/v1/admin/offers/%d" % extra["offer_id"])                   # 204
    admin.call("DELETE", "/v1/admin/offers/99999")                                    # 404
    pub.call("GET", "/v1/catalog?q=song")                                             # 200
    pub.call("GET", "/v1/catalog?limit=0")                                            # 400
    pub.call("GET", "/v1/catalog/" + cat.work_id)                                     # 200
    pub.call("GET", "/v1/catalog/work-none")                                          # 404
    me.call("POST", "/v1/orders", json={"offer_id": 99999},
            headers={"Idempotency-Key": "o0"})                                        # 404
    order = me.call("POST", "/v1/orders", json={"offer_id": offer["offer_id"]},
                    headers={"Idempotency-Key": "o1"}).json()                         # 201
    me.call("POST", "/v1/orders", json={"offer_id": offer["offer_id"]},
            headers={"Idempotency-Key": "o1"})                                        # 200
    me.call("POST", "/v1/orders", json={"offer_id": offer["offer_id"]},
            headers={"Idempotency-Key": "o2"})                                        # 402
    me.call("GET", "/v1/orders/" + order["order_id"])                                 # 200
    me.call("GET", "/v1/orders/" + "a" * 26)                                          # 404
    me.call("GET", "/v1/orders/%s/steer" % order["order_id"])                         # 200
    me.call("GET", "/v1/orders/%s/steer" % ("a" * 26))                                # 404
    voucher = steer_json(order["steer"])["voucher"]
    pub.call("POST", "/v1/license", json={"voucher": voucher},
             headers={"DPoP": dev.proof(shop.proxy_url)})                             # 200
    pub.call("POST", "/v1/license", json={"voucher": voucher})                        # 401
    pub.call("GET", "/store/")                                                        # 200
    pub.call("GET", "/store/none.js")                                                 # 404
    me.call("DELETE", "/v1/devices/" + dev.jkt)                                       # 204
    me.call("DELETE", "/v1/sessions/current")                                         # 204
    me.call("DELETE", "/v1/sessions/current")                                         # 401

    check_seen(spec, seen)
