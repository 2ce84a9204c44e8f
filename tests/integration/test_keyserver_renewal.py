"""Delivery-token renewal (PROTOCOL.md §2.6, "delivery_only"): a device
that holds a license asks for a fresh delivery token with the same voucher
and a new proof. Every license check applies except the activation limit;
nothing is counted, no key is sent, nothing is written but the spent
proof."""

import time

from keyserver_setup import (MEDIA_STORE_ID, Catalog, Device, KeyServer, assert_problem,
                             request_license, until_status, verify_token)


def renew(ks, device, voucher, **kwargs):
    return request_license(ks, device, voucher, delivery_only=True, **kwargs)


def activations(ks, txn):
    return int(ks.query("SELECT activations FROM transactions WHERE txn = '%s'" % txn)[0][0])


def test_renewal_needs_a_license_and_counts_nothing(sold):
    ks, cat, device, sale = sold
    # Before any license: refused, nothing counted; the proof is spent.
    proof = device.proof(ks.license_url)
    doc = assert_problem(renew(ks, device, sale["voucher"], proof=proof), 409, "no-license")
    assert "request a license" in doc["detail"]
    assert_problem(request_license(ks, device, sale["voucher"], proof=proof), 401,
                   "proof-replayed")
    assert activations(ks, sale["txn"]) == 0
    lic = request_license(ks, device, sale["voucher"]).json()
    assert lic["activation"] == 1
    ks.ledger_settled()
    ledger = ks.ledger_count()
    jwks = ks.jwks()
    # Renewals past the limit of 2: each a new delivery token, no key.
    seen = set()
    for _ in range(4):
        r = renew(ks, device, sale["voucher"])
        assert r.status_code == 200, r.text
        assert r.headers["Cache-Control"] == "no-store"
        doc = r.json()
        assert "key_jwe" not in doc
        assert doc["txn"] == sale["txn"] and doc["work_id"] == cat.work_id
        assert doc["activation"] == 1 and doc["activation_limit"] == 2
        assert doc["license"] == {"type": "purchase"} and "rental_ends_at" not in doc
        claims = verify_token(jwks, doc["delivery_token"], "secmedia-delivery+jwt")
        assert claims["aud"] == MEDIA_STORE_ID and claims["work_id"] == cat.work_id
        assert claims["txn"] == sale["txn"] and claims["jkt"] == device.jkt
        assert claims["exp"] == doc["delivery_expires_at"]
        assert claims["exp"] > time.time() + 60
        seen.add(claims["jti"])
    assert len(seen) == 4
    assert activations(ks, sale["txn"]) == 1
    assert ks.query("SELECT COUNT(*) FROM licenses") == [("1",)]
    ks.ledger_settled()
    assert ks.ledger_count() == ledger
    # The limit still binds licenses, and renewals still work at the limit.
    assert request_license(ks, device, sale["voucher"]).json()["activation"] == 2
    assert_problem(request_license(ks, device, sale["voucher"]), 403, "activation-limit")
    assert renew(ks, device, sale["voucher"]).json()["activation"] == 2


def test_renewal_proofs_are_single_use_across_both_kinds(sold):
    ks, cat, device, sale = sold
    lic_proof = device.proof(ks.license_url)
    assert request_license(ks, device, sale["voucher"], proof=lic_proof).status_code == 200
    # A license's proof cannot renew, a renewal's cannot license or renew.
    assert_problem(renew(ks, device, sale["voucher"], proof=lic_proof), 401, "proof-replayed")
    proof = device.proof(ks.license_url)
    assert renew(ks, device, sale["voucher"], proof=proof).status_code == 200
    assert_problem(renew(ks, device, sale["voucher"], proof=proof), 401, "proof-replayed")
    assert_problem(request_license(ks, device, sale["voucher"], proof=proof), 401,
                   "proof-replayed")
    assert activations(ks, sale["txn"]) == 1
    # Another device with the voucher learns nothing.
    thief = Device()
    assert_problem(renew(ks, thief, sale["voucher"]), 403, "wrong-device")
    # A proof for another URL or method, or a stale one.
    assert_problem(renew(ks, device, sale["voucher"], url=ks.license_url + "x"), 401,
                   "proof-invalid")
    assert_problem(renew(ks, device, sale["voucher"],
                         proof=device.proof(ks.license_url, iat=int(time.time()) - 3600)),
                   401, "proof-stale")


def test_renewal_follows_revocations_and_takedowns(sold):
    ks, cat, device, sale = sold
    assert request_license(ks, device, sale["voucher"]).status_code == 200
    assert renew(ks, device, sale["voucher"]).status_code == 200
    admin = ks.client("admin")
    admin.post_json("/v1/revocations", {"kind": "transaction", "subject": sale["txn"],
                                        "reason": "refund"}, expect=201)
    assert_problem(renew(ks, device, sale["voucher"]), 403, "transaction-revoked")
    # A withdrawn work and a revoked device, on another sale each.
    other = cat.sold(device)
    assert request_license(ks, device, other["voucher"]).status_code == 200
    cat.owner.post_json("/v1/works/%s/withdrawal" % cat.work_id, {"reason": "rights lapsed"},
                        expect=201)
    assert_problem(renew(ks, device, other["voucher"]), 410, "work-withdrawn")
    admin.post_json("/v1/revocations", {"kind": "device", "subject": device.jkt,
                                        "reason": "key reported stolen"}, expect=201)
    assert_problem(renew(ks, device, other["voucher"]), 403, "device-revoked")
    assert activations(ks, other["txn"]) == 1


def test_rental_renewal_ends_with_the_rental(env):
    ks = KeyServer(env)
    env.httpd.start()
    cat = Catalog(ks)
    device = Device()
    sale = cat.sold(device, license={"type": "rental", "duration": 172800})
    lic = request_license(ks, device, sale["voucher"]).json()
    doc = renew(ks, device, sale["voucher"]).json()
    assert doc["rental_ends_at"] == lic["rental_ends_at"]
    assert doc["license"] == {"type": "rental", "duration": 172800}
    # Within the rental's last hour (the token lifetime), the delivery token
    # of a license or a renewal expires with the rental, not after it.
    ks.query("UPDATE transactions SET rental_started_at = rental_started_at - 172800 + 600")
    jwks = ks.jwks()
    for r in (renew(ks, device, sale["voucher"]),
              request_license(ks, device, sale["voucher"])):
        assert r.status_code == 200, r.text
        doc = r.json()
        ends = doc["rental_ends_at"]
        assert abs(ends - (time.time() + 600)) < 30
        assert doc["delivery_expires_at"] == ends
        assert verify_token(jwks, doc["delivery_token"], "secmedia-delivery+jwt")["exp"] == ends
    ks.query("UPDATE transactions SET rental_started_at = rental_started_at - 600")
    assert_problem(renew(ks, device, sale["voucher"]), 403, "rental-expired")


def test_renewal_through_a_retailer_proxy(sold):
    ks, cat, device, sale = sold
    proxy_url = "https://shop.example/secmedia/license"
    ks.query("UPDATE retailers SET license_proxy_url = '%s' WHERE retailer_id = 'retailer1'"
             % proxy_url)
    assert request_license(ks, device, sale["voucher"], client=cat.retailer,
                           proof=device.proof(proxy_url)).status_code == 200
    r = renew(ks, device, sale["voucher"], client=cat.retailer, proof=device.proof(proxy_url))
    assert r.status_code == 200, r.text
    assert "key_jwe" not in r.json()


def test_renewal_request_is_strict(sold):
    ks, cat, device, sale = sold
    client = ks.client()
    for body, words in ((({"voucher": sale["voucher"], "delivery_only": "yes"}), "delivery_only"),
                        ({"voucher": sale["voucher"], "delivery_only": 1}, "delivery_only"),
                        ({"voucher": sale["voucher"], "renew": True}, "renew")):
        r = client.post("/v1/license", json=body,
                        headers={"DPoP": device.proof(ks.license_url)})
        doc = assert_problem(r, 400, "invalid-request")
        assert words in doc["detail"], doc
    # delivery_only false is a license.
    r = client.post("/v1/license", json={"voucher": sale["voucher"], "delivery_only": False},
                    headers={"DPoP": device.proof(ks.license_url)})
    assert r.status_code == 200 and "key_jwe" in r.json()
    assert activations(ks, sale["txn"]) == 1


def test_renewal_fails_closed_without_the_database(sold, env):
    ks, cat, device, sale = sold
    env.expect_log("SM00011")
    env.allow_log("SM01007", "SM01008")
    assert request_license(ks, device, sale["voucher"]).status_code == 200
    env.db.stop()
    try:
        r = renew(ks, device, sale["voucher"])
        assert_problem(r, 503, "service-unavailable")
        assert "delivery_token" not in r.text
    finally:
        env.db.start()
    r = until_status(lambda: renew(ks, device, sale["voucher"]), 200)
    assert r.status_code == 200, r.text
