"""docs/openapi/keyserver.yaml against the implementation: every route of
mod_keyserver is in the spec and every operation of the spec is a route; a
scripted session that calls every operation (successes and refusals)
only ever gets a status and a content type the spec documents for it, and
covers every operation."""

import time
import uuid

from keyserver_setup import Catalog, Device, KeyServer
from openapi_check import Recorder, check_seen, check_spec_and_routes, load_spec

SPEC = "keyserver.yaml"


def test_spec_lists_exactly_the_routes():
    check_spec_and_routes(SPEC, "mod_keyserver/mod_keyserver.c", "ks_handle_")


def test_answers_match_the_spec(env):
    spec = load_spec(SPEC)
    ks = KeyServer(env)
    env.httpd.start()
    seen = []

    def as_role(role):
        return Recorder(ks.client(role), spec, seen)

    anyone, admin, owner = as_role(None), as_role("admin"), as_role("owner")
    retailer, store = as_role("retailer1"), as_role("mediastore")
    auditor = as_role("auditor")

    anyone.call("GET", "/v1/jwks")                                                    # 200
    anyone.call("GET", "/v1/encryption-key")                                          # 200
    admin.call("GET", "/v1/ledger/checkpoints/latest")                                # 404
    admin.call("POST", "/v1/ledger/checkpoints")                                      # 409
    anyone.call("POST", "/v1/owners", json={})                                        # 403
    admin.call("POST", "/v1/owners", json={"owner_id": "x"})                         # 400
    admin.call("POST", "/v1/owners", data="x",
               headers={"Content-Type": "text/plain"})                                # 415
    admin.call("POST", "/v1/retailers", data="{" + " " * 70000 + "}",
               headers={"Content-Type": "application/json"})                          # 413
    cat = Catalog(ks)     # registers owner and retailers, a work, a contract
    admin.call("POST", "/v1/owners", json={
        "owner_id": "owner", "name": "Owner",
        "subject_dn": env.pki.client("owner").subject_dn})                            # 409
    admin.call("POST", "/v1/retailers", json={
        "retailer_id": "shop-" + uuid.uuid4().hex[:6], "name": "Shop",
        "subject_dn": "CN=shop-%s,O=Example" % uuid.uuid4().hex[:6]})                # 201
    admin.call("POST", "/v1/owners", json={
        "owner_id": "label-" + uuid.uuid4().hex[:6], "name": "Label",
        "subject_dn": "CN=label-%s,O=Example" % uuid.uuid4().hex[:6]})               # 201
    work_id = "work-" + uuid.uuid4().hex[:12]
    owner.call("POST", "/v1/works", json={
        "work_id": work_id, "key_version": 1, "media_key_jwe": ks.wrap_media_key(b"k" * 32),
        "title": "Spec song"})                                                        # 201
    owner.call("POST", "/v1/works", json={
        "work_id": work_id, "key_version": 1, "media_key_jwe": ks.wrap_media_key(b"k" * 32),
        "title": "Spec song"})                                                        # 409
    owner.call("POST", "/v1/works", json={
        "work_id": "w-bad-key", "key_version": 1, "media_key_jwe": "a.b.c.d.e",
        "title": "x"})                                                                # 400
    owner.call("GET", "/v1/works/" + work_id)                                         # 200
    owner.call("GET", "/v1/works/no-such-work")                                       # 404
    retailer.call("GET", "/v1/works/" + work_id)                                      # 403
    contract = cat.contract_request()
    owner.call("POST", "/v1/contracts", json=dict(contract, works=[work_id]))         # 201
    owner.call("POST", "/v1/contracts", json=dict(contract, retailer="nobody"))       # 422
    owner.call("POST", "/v1/contracts", json=dict(contract, royalties=[]))            # 400
    retailer.call("GET", "/v1/inventory")                                             # 200
    owner.call("GET", "/v1/inventory")                                                # 403

    device = Device()
    ref = "res-" + uuid.uuid4().hex
    body = {"reservation_ref": ref, "work_id": cat.work_id,
            "license": {"type": "purchase"}, "jkt": device.jkt}
    sale = retailer.call("POST", "/v1/reservations", json=body).json()               # 201
    retailer.call("POST", "/v1/reservations", json=body)                              # 200
    retailer.call("POST", "/v1/reservations", json=dict(body, jkt=Device().jkt))      # 409
    as_role("retailer2").call("POST", "/v1/reservations", json=dict(
        body, reservation_ref="r2-" + ref))                                           # 403
    pay = {"txn": sale["txn"], "payment_ref": "pay-" + ref, "amount": sale["price"],
           "currency": sale["currency"]}
    retailer.call("POST", "/v1/payments", json=dict(pay, amount=1))                   # 422
    retailer.call("POST", "/v1/payments", json=pay)                                   # 201
    retailer.call("POST", "/v1/payments", json=pay)                                   # 200
    retailer.call("POST", "/v1/payments", json=dict(pay, payment_ref="other-" + ref))  # 409
    retailer.call("POST", "/v1/payments", json=dict(pay, txn="txn-none"))             # 404

    license_url = ks.license_url
    anyone.call("POST", "/v1/license", json={"voucher": sale["voucher"]},
                headers={"DPoP": device.proof(license_url)})                          # 200
    anyone.call("POST", "/v1/license", json={"voucher": sale["voucher"]})             # 401
    anyone.call("POST", "/v1/license", json={"voucher": sale["voucher"], "x": 1},
                headers={"DPoP": device.proof(license_url)})                          # 400
    unpaid = cat.reserve(device)
    anyone.call("POST", "/v1/license", json={"voucher": unpaid["voucher"]},
                headers={"DPoP": device.proof(license_url)})                          # 402
    anyone.call("POST", "/v1/license", json={"voucher": sale["voucher"]},
                headers={"DPoP": Device().proof(license_url)})                        # 403
    renewal = {"voucher": sale["voucher"], "delivery_only": True}
    anyone.call("POST", "/v1/license", json=renewal,
                headers={"DPoP": device.proof(license_url)})                          # 200
    never_licensed = cat.sold(device)
    anyone.call("POST", "/v1/license", json=dict(renewal, voucher=never_licensed["voucher"]),
                headers={"DPoP": device.proof(license_url)})                          # 409

    done = {"txn": sale["txn"], "work_id": cat.work_id, "delivered_at": int(time.time())}
    store.call("POST", "/v1/delivery-complete", json=done)                            # 204
    store.call("POST", "/v1/delivery-complete", json=dict(done, work_id=work_id))     # 409
    store.call("POST", "/v1/delivery-complete", json=dict(done, txn="txn-none"))      # 404
    retailer.call("POST", "/v1/delivery-complete", json=done)                         # 403

    retailer.call("POST", "/v1/revocations", json={
        "kind": "device", "subject": device.jkt, "reason": "lost"})                   # 403
    retailer.call("POST", "/v1/revocations", json={
        "kind": "transaction", "subject": "txn-none", "reason": "refund"})            # 404
    revoke = {"kind": "transaction", "subject": unpaid["txn"], "reason": "refund"}
    retailer.call("POST", "/v1/revocations", json=revoke)                             # 201
    admin.call("POST", "/v1/revocations", json=revoke)                                # 200
    anyone.call("POST", "/v1/license", json={"voucher": sale["voucher"]},
                headers={"DPoP": device.proof(license_url)})                          # 200
    # A withdrawn work: its earlier sales get 410.
    owner.call("POST", "/v1/works/%s/withdrawal" % cat.work_id,
               json={"reason": "spec"})                                               # 201
    owner.call("POST", "/v1/works/%s/withdrawal" % cat.work_id,
               json={"reason": "spec"})                                               # 200
    owner.call("POST", "/v1/works/no-such-work/withdrawal", json={"reason": "x"})     # 404
    owner.call("POST", "/v1/works/%s/withdrawal" % work_id, json={})                  # 400
    retailer.call("POST", "/v1/works/%s/withdrawal" % work_id, json={"reason": "x"})  # 403
    anyone.call("POST", "/v1/license", json={"voucher": sale["voucher"]},
                headers={"DPoP": device.proof(license_url)})                          # 410
    revocation = "/v1/contracts/%d/revocation" % cat.contract["contract_id"]
    owner.call("POST", revocation, json={"reason": "spec"})                           # 201
    admin.call("POST", revocation, json={"reason": "spec"})                           # 200
    owner.call("POST", "/v1/contracts/999999/revocation", json={"reason": "x"})       # 404
    owner.call("POST", "/v1/contracts/007/revocation", json={"reason": "x"})          # 400
    retailer.call("POST", revocation, json={"reason": "x"})                           # 403

    ks.ledger_settled()
    admin.call("POST", "/v1/ledger/checkpoints")                                      # 201
    admin.call("POST", "/v1/ledger/checkpoints")                                      # 200
    retailer.call("POST", "/v1/ledger/checkpoints")                                   # 403
    retailer.call("GET", "/v1/ledger/checkpoints/latest")                             # 200
    anyone.call("GET", "/v1/ledger/checkpoints/latest")                               # 403
    auditor.call("GET", "/v1/ledger/export")                                          # 200
    retailer.call("GET", "/v1/ledger/export")                                         # 403

    # The database down: every operation that needs it answers 503.
    env.expect_log("SM00011")
    env.allow_log("SM01007", "SM01008")
    env.db.stop()
    try:
        for who, method, path, kwargs in (
                (admin, "POST", "/v1/owners", {"json": {
                    "owner_id": "o-down", "name": "x", "subject_dn": "CN=o-down"}}),
                (admin, "POST", "/v1/retailers", {"json": {
                    "retailer_id": "r-down", "name": "x", "subject_dn": "CN=r-down"}}),
                (owner, "POST", "/v1/works", {"json": {
                    "work_id": "w-down", "key_version": 1,
                    "media_key_jwe": ks.wrap_media_key(b"k" * 32), "title": "x"}}),
                (owner, "GET", "/v1/works/" + work_id, {}),
                (owner, "POST", "/v1/works/%s/withdrawal" % work_id, {"json": {"reason": "x"}}),
                (owner, "POST", "/v1/contracts", {"json": dict(contract, works=[work_id])}),
                (owner, "POST", revocation, {"json": {"reason": "x"}}),
                (retailer, "GET", "/v1/inventory", {}),
                (retailer, "POST", "/v1/reservations", {"json": dict(
                    body, reservation_ref="down-" + ref)}),
                (retailer, "POST", "/v1/payments", {"json": pay}),
                (anyone, "POST", "/v1/license", {
                    "json": {"voucher": sale["voucher"]},
                    "headers": {"DPoP": device.proof(license_url)}}),
                (store, "POST", "/v1/delivery-complete", {"json": done}),
                (admin, "POST", "/v1/revocations", {"json": revoke}),
                (admin, "POST", "/v1/ledger/checkpoints", {}),
                (admin, "GET", "/v1/ledger/checkpoints/latest", {}),
                (auditor, "GET", "/v1/ledger/export", {})):
            r = who.call(method, path, **kwargs)
            assert r.status_code == 503, (method, path, r.status_code, r.text[:300])
    finally:
        env.db.start()

    check_seen(spec, seen)
