"""docs/openapi/retail.yaml against the implementation: every route of
mod_retail is in the spec and every operation of the spec is a route; a
scripted session that calls every operation (successes and refusals)
only ever gets a status and a content type the spec documents for it, and
covers every operation."""

import json
import os
import re
import uuid

import pytest
import yaml

from keyserver_setup import Device
from retail_setup import SHOP, Retail, steer_json

METHODS = ("get", "post", "put", "delete", "patch")


def load_spec():
    path = os.path.join(os.environ["SM_TOP_SRCDIR"], "docs", "openapi", "retail.yaml")
    with open(path) as f:
        return yaml.safe_load(f)


def module_routes():
    path = os.path.join(os.environ["SM_TOP_SRCDIR"], "mod_retail", "mod_retail.c")
    with open(path) as f:
        text = f.read()
    routes = set()
    for methods, pattern in re.findall(r'\{"([A-Z,]+)", "(/[^"]*)", rt_handle_\w+,', text):
        for m in methods.split(","):
            if m != "HEAD":
                routes.add((m.lower(), pattern))
    assert routes, "no routes found in mod_retail.c"
    return routes


def spec_operations(spec):
    return {(m, p) for p, item in spec["paths"].items() for m in item if m in METHODS}


def resolve(spec, obj):
    while "$ref" in obj:
        node = spec
        for part in obj["$ref"].lstrip("#/").split("/"):
            node = node[part]
        obj = node
    return obj


def test_spec_is_valid_openapi_3():
    spec = load_spec()
    assert spec["openapi"].startswith("3.")
    for (method, path) in spec_operations(spec):
        op = spec["paths"][path][method]
        assert op.get("responses"), (method, path)
        for status in op["responses"]:
            assert re.fullmatch(r"[1-5]\d\d", str(status)), (method, path, status)


def test_every_route_is_documented_and_every_operation_is_routed():
    spec = load_spec()
    routes, ops = module_routes(), spec_operations(spec)
    assert routes - ops == set(), "routes missing from the spec"
    assert ops - routes == set(), "spec operations the module does not route"


class Recorder:
    """Wraps a client below /shop and records (method, spec path, status,
    content type) of every answer."""

    def __init__(self, client, spec, seen, token=None):
        self.client, self.spec, self.seen, self.token = client, spec, seen, token
        self.paths = list(spec["paths"])

    def template(self, path):
        path = path.split("?")[0]
        segs = path.split("/")
        for p in self.paths:
            ps = p.split("/")
            if len(ps) == len(segs) and all(a == b or (a.startswith("{") and b)
                                            for a, b in zip(ps, segs)):
                if all(a == b for a, b in zip(ps, segs)):
                    return p
        for p in self.paths:
            ps = p.split("/")
            if len(ps) == len(segs) and all(a == b or (a.startswith("{") and b)
                                            for a, b in zip(ps, segs)):
                return p
        raise AssertionError("no spec path for " + path)

    def call(self, method, path, **kwargs):
        headers = dict(kwargs.pop("headers", {}) or {})
        if self.token:
            headers.setdefault("Authorization", "Bearer " + self.token)
        r = self.client.request(method, SHOP + path, headers=headers, **kwargs)
        ctype = r.headers.get("Content-Type", "").split(";")[0].strip()
        self.seen.append((method.lower(), self.template(path), r.status_code, ctype))
        return r


def check_seen(spec, seen):
    for method, path, status, ctype in seen:
        op = spec["paths"][path][method]
        assert str(status) in map(str, op["responses"]), \
            "%s %s answered %d, not documented" % (method.upper(), path, status)
        resp = resolve(spec, op["responses"].get(status, op["responses"].get(str(status))))
        content = resp.get("content")
        if content:
            assert ctype in content or "*/*" in content, \
                "%s %s %d: content type %s, documented %s" % (method.upper(), path, status,
                                                               ctype, list(content))
        else:
            assert status == 204 or ctype in ("", "application/json", "application/problem+json"), \
                (method, path, status, ctype)


def test_answers_match_the_spec(env):
    spec = load_spec()
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
    pub = Recorder(env.client(), spec, seen)
    admin = Recorder(env.client("admin"), spec, seen)
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
    me = Recorder(env.client(), spec, seen, token)
    anon = Recorder(env.client(), spec, seen, None)
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
    missing = spec_operations(spec) - {(m, p) for m, p, _, _ in seen}
    assert missing == set(), "operations the scripted session never called"
