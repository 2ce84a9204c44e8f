"""mod_keyserver against bad input and attacks (issue 3's list, the key
server's part): malformed bodies, oversize bodies, missing/foreign/wrong
client certificates, another retailer's transaction, a voucher for another
device, replayed and stale proofs, expired or altered vouchers, work A's
token on work B, licenses before payment / after revocation / over the
limit, SQL metacharacters, path traversal, and the database going away."""

import json
import time
import uuid

import pytest
import requests

import harness
import openapi_check
from keyserver_setup import (Catalog, Device, KeyServer, assert_problem, request_license,
                             until_status)

SQL_NASTY = "x'; DROP TABLE works; -- \" \\ %_ `"


ENDPOINTS = [
    ("admin", "/v1/owners"),
    ("admin", "/v1/retailers"),
    ("owner", "/v1/works"),
    ("owner", "/v1/contracts"),
    ("retailer1", "/v1/reservations"),
    ("retailer1", "/v1/payments"),
    ("mediastore", "/v1/delivery-complete"),
    ("admin", "/v1/revocations"),
    (None, "/v1/license"),
]


def test_malformed_bodies(env):
    KeyServer(env)
    env.httpd.start()
    for role, path in ENDPOINTS:
        client = env.client(role)
        for body in (b"{", b"[]", b'{"a":1} x', b'{"a":1,"a":2}', b"\x00", b"null"):
            r = client.post(path, data=body, headers={"Content-Type": "application/json"})
            assert_problem(r, 400, "invalid-request")
        # Unknown member, wrong type.
        assert_problem(client.post(path, json={"surprise": 1}), 400, "invalid-request")
        doc = assert_problem(client.post(path, json={"txn": 5, "work_id": [],
                                                      "voucher": {}}), 400, "invalid-request")
        assert doc["detail"]
        r = client.post(path, data=b"{}", headers={"Content-Type": "text/plain"})
        assert_problem(r, 415, "unsupported-media-type")


# A value of each JSON type, and one of another type.
RIGHT_TYPE = {"string": "x1", "integer": 1, "boolean": False, "array": [], "object": {}}
WRONG_TYPE = {"string": 7, "integer": "7", "boolean": "yes", "array": {}, "object": []}
# Who may POST each body the OpenAPI description lists (path parameters
# filled in: the body is judged before anything is looked up).
BODY_ROLES = {"/v1/owners": "admin", "/v1/retailers": "admin", "/v1/works": "owner",
              "/v1/works/{work_id}/withdrawal": "owner", "/v1/contracts": "owner",
              "/v1/contracts/{contract_id}/revocation": "owner",
              "/v1/reservations": "retailer1", "/v1/payments": "retailer1",
              "/v1/delivery-complete": "mediastore", "/v1/revocations": "admin",
              "/v1/license": None}


def typed_sample(spec, schema):
    """A value of the schema's type, objects with their required members."""
    schema = openapi_check.resolve(spec, schema)
    if "enum" in schema:
        return schema["enum"][0]
    if schema["type"] == "object":
        return {name: typed_sample(spec, member)
                for name, member in schema.get("properties", {}).items()
                if name in schema.get("required", ())}
    if schema["type"] == "array":
        return [typed_sample(spec, schema["items"])]
    return RIGHT_TYPE[schema["type"]]


def test_every_member_of_the_wrong_type_is_named(env):
    """Every member of every request body the OpenAPI description lists,
    sent with a value of another JSON type (the other members of their
    own type): 400, and the detail names the member."""
    KeyServer(env)
    env.httpd.start()
    spec = openapi_check.load_spec("keyserver.yaml")
    checked = 0
    for path, item in spec["paths"].items():
        operation = item.get("post")
        if operation is None or "requestBody" not in operation:
            continue
        assert path in BODY_ROLES, "no role for %s: add it to BODY_ROLES" % path
        schema = openapi_check.resolve(
            spec, operation["requestBody"]["content"]["application/json"]["schema"])
        client = env.client(BODY_ROLES[path])
        url = path.replace("{work_id}", "w1").replace("{contract_id}", "1")
        for name, member in schema["properties"].items():
            member_type = openapi_check.resolve(spec, member)["type"]
            body = typed_sample(spec, schema)
            body[name] = WRONG_TYPE[member_type]
            doc = assert_problem(client.post(url, json=body), 400, "invalid-request")
            assert name in doc["detail"], (path, body, doc["detail"])
            checked += 1
    assert checked > 40


def test_oversized_bodies(env):
    KeyServer(env)
    env.httpd.start()
    big = json.dumps({"reservation_ref": "x" * 70000})
    r = env.client("retailer1").post("/v1/reservations", data=big,
                                     headers={"Content-Type": "application/json"})
    doc = assert_problem(r, 413, "body-too-large")
    assert doc["limit"] == 65536
    # Works get a larger limit (lyrics, notes), but still one.
    huge = json.dumps({"work_id": "w", "lyrics": "la " * 400000})
    r = env.client("owner").post("/v1/works", data=huge,
                                 headers={"Content-Type": "application/json"})
    assert_problem(r, 413, "body-too-large")


def test_client_certificates(env):
    ks = KeyServer(env)
    extra = env.pki.issue_client("retailer3")
    env.httpd.add_vhost_config('KeyServerClientRole retailer "%s"' % extra.subject_dn)
    env.httpd.start()
    Catalog(ks)
    # No certificate where one is needed.
    assert_problem(env.client().post("/v1/works", json={}), 403, "client-certificate-required")
    assert_problem(env.client().get("/v1/inventory"), 403, "client-certificate-required")
    # A certificate without the role.
    assert_problem(env.client("retailer1").post("/v1/works", json={}), 403,
                   "client-certificate-not-authorized")
    assert_problem(env.client("owner").post("/v1/owners", json={}), 403,
                   "client-certificate-not-authorized")
    assert_problem(env.client("retailer1").post("/v1/delivery-complete", json={}), 403,
                   "client-certificate-not-authorized")
    # The role, but never registered by the admin.
    assert_problem(env.client("retailer3").get("/v1/inventory"), 403, "not-registered")
    # A certificate from a CA the server does not trust: no TLS session.
    foreign = harness.Client(env.httpd.https_url, env.pki.ca_cert, env.pki.client("foreign"))
    with pytest.raises(requests.exceptions.SSLError):
        foreign.get("/v1/inventory")
    foreign.close()
    env.allow_log("AH02039", "AH02261", "AH01964", "SSL Library Error")


def test_other_retailers_transaction(sold):
    ks, cat, device, reservation = sold
    other = ks.client("retailer2")
    r = other.post("/v1/payments", json={"txn": reservation["txn"], "payment_ref": "p-1",
                                         "amount": 199, "currency": "EUR"})
    assert_problem(r, 404, "unknown-transaction")
    r = other.post("/v1/revocations", json={"kind": "transaction",
                                            "subject": reservation["txn"], "reason": "mine"})
    assert_problem(r, 404, "unknown-transaction")
    # Retailers may not revoke devices.
    r = other.post("/v1/revocations", json={"kind": "device", "subject": device.jkt,
                                            "reason": "x"})
    assert_problem(r, 403, "not-allowed")
    # Retailer2 has no contract for the work: no reservation.
    r = other.post("/v1/reservations", json={
        "reservation_ref": "r-x", "work_id": cat.work_id, "license": {"type": "purchase"},
        "jkt": device.jkt})
    assert_problem(r, 403, "no-contract")
    assert ks.query("SELECT COUNT(*) FROM revocations") == [("0",)]


def test_voucher_for_another_device(sold):
    ks, cat, device, reservation = sold
    thief = Device()
    r = request_license(ks, thief, reservation["voucher"])
    assert_problem(r, 403, "wrong-device")
    assert r.headers.get("WWW-Authenticate") is None
    # A proof made with the thief's key but claiming the owner's jkt in the
    # header cannot exist: the jkt is computed from the key that signed.
    assert ks.query("SELECT COUNT(*) FROM licenses") == [("0",)]


def test_replayed_and_stale_proofs(sold):
    ks, cat, device, reservation = sold
    proof = device.proof(ks.license_url)
    assert request_license(ks, device, reservation["voucher"], proof=proof).status_code == 200
    r = request_license(ks, device, reservation["voucher"], proof=proof)
    assert_problem(r, 401, "proof-replayed")
    assert "DPoP" in r.headers["WWW-Authenticate"]
    # Spent by a license, it is spent for every other voucher too; spent by
    # a refusal, it cannot win a license afterwards.
    unpaid = cat.reserve(device)
    assert_problem(request_license(ks, device, unpaid["voucher"], proof=proof), 401,
                   "proof-replayed")
    refused = device.proof(ks.license_url)
    assert_problem(request_license(ks, device, unpaid["voucher"], proof=refused), 402,
                   "not-paid")
    assert_problem(request_license(ks, device, reservation["voucher"], proof=refused), 401,
                   "proof-replayed")
    assert ks.query("SELECT COUNT(*) FROM licenses") == [("1",)]
    stale = device.proof(ks.license_url, iat=int(time.time()) - 3600)
    assert_problem(request_license(ks, device, reservation["voucher"], proof=stale), 401,
                   "proof-stale")
    other_url = device.proof("https://evil.example/v1/license")
    assert_problem(request_license(ks, device, reservation["voucher"], proof=other_url), 401,
                   "proof-invalid")
    get_proof = device.proof(ks.license_url, method="GET")
    assert_problem(request_license(ks, device, reservation["voucher"], proof=get_proof), 401,
                   "proof-invalid")
    assert_problem(request_license(ks, device, reservation["voucher"], proof=""), 401,
                   "proof-invalid")
    r = ks.client().post("/v1/license", json={"voucher": reservation["voucher"]})
    assert_problem(r, 401, "proof-invalid")
    assert ks.query("SELECT COUNT(*) FROM licenses") == [("1",)]


def test_expired_and_forged_vouchers(sold):
    ks, cat, device, reservation = sold
    base = {"txn": reservation["txn"], "work_id": cat.work_id, "retailer": "retailer1",
            "license": {"type": "purchase"}, "jkt": device.jkt}
    expired = ks.voucher(base, now=int(time.time()) - 7200, lifetime=600)
    assert_problem(request_license(ks, device, expired), 401, "voucher-expired")
    # Signed by a key the key server does not have.
    from keyserver_setup import new_p256
    forged = ks.voucher(base, key=new_p256())
    assert_problem(request_license(ks, device, forged), 401, "voucher-invalid")
    # Another issuer, another token type, a payment token as voucher.
    assert_problem(request_license(ks, device, ks.voucher(dict(base, iss="https://x"))), 401,
                   "voucher-invalid")
    payment = ks.client("retailer1").post_json("/v1/payments", {
        "txn": reservation["txn"], "payment_ref": "x", "amount": 199, "currency": "EUR"},
        expect=409)
    assert payment["type"].endswith("already-paid")
    # Altered payload bytes.
    head, body, sig = reservation["voucher"].split(".")
    tampered = ".".join([head, body[:-4] + ("AAAA" if body[-4:] != "AAAA" else "BBBB"), sig])
    assert_problem(request_license(ks, device, tampered), 401, "voucher-invalid")


def test_token_for_work_a_on_work_b(sold):
    ks, cat, device, reservation = sold
    other_work = Catalog(ks)
    # A voucher naming work B for a transaction of work A.
    crossed = ks.voucher({"txn": reservation["txn"], "work_id": other_work.work_id,
                          "retailer": "retailer1", "license": {"type": "purchase"},
                          "jkt": device.jkt})
    assert_problem(request_license(ks, device, crossed), 403, "transaction-mismatch")
    # Terms upgraded from a rental to a purchase.
    rental = cat.sold(device, license={"type": "rental", "duration": 172800})
    upgraded = ks.voucher({"txn": rental["txn"], "work_id": cat.work_id,
                           "retailer": "retailer1", "license": {"type": "purchase"},
                           "jkt": device.jkt})
    assert_problem(request_license(ks, device, upgraded), 403, "transaction-mismatch")
    # Delivery-complete for the wrong work.
    r = ks.client("mediastore").post("/v1/delivery-complete", json={
        "txn": reservation["txn"], "work_id": other_work.work_id, "delivered_at": 1})
    assert_problem(r, 409, "work-mismatch")
    r = ks.client("mediastore").post("/v1/delivery-complete", json={
        "txn": "txn-nope", "work_id": cat.work_id, "delivered_at": 1})
    assert_problem(r, 404, "unknown-transaction")
    # Delivery-complete of a paid sale no license was issued for: no
    # delivery token exists for it, so no delivery either; nothing recorded.
    unlicensed = cat.sold(Device())
    r = ks.client("mediastore").post("/v1/delivery-complete", json={
        "txn": unlicensed["txn"], "work_id": cat.work_id, "delivered_at": 1})
    assert_problem(r, 409, "no-license")
    assert ks.query("SELECT COUNT(*) FROM deliveries WHERE txn = '%s'"
                    % unlicensed["txn"]) == [("0",)]


def test_license_before_payment_after_revocation_over_limit(sold):
    ks, cat, device, reservation = sold
    unpaid = cat.reserve(device)
    assert_problem(request_license(ks, device, unpaid["voucher"]), 402, "not-paid")
    # Limit 2 in this fixture.
    for n in (1, 2):
        assert request_license(ks, device, reservation["voucher"]).json()["activation"] == n
    # Refused over the limit: nothing counted, and the proof is spent all
    # the same (a refusal rolls the activation back and records the proof
    # id on its own).
    proof = device.proof(ks.license_url)
    assert_problem(request_license(ks, device, reservation["voucher"], proof=proof), 403,
                   "activation-limit")
    assert_problem(request_license(ks, device, reservation["voucher"], proof=proof), 401,
                   "proof-replayed")
    assert ks.query("SELECT activations FROM transactions WHERE txn = '%s'"
                    % reservation["txn"]) == [("2",)]
    assert_problem(request_license(ks, device, unpaid["voucher"]), 402, "not-paid")
    assert ks.query("SELECT activations, rental_started_at IS NULL FROM transactions "
                    "WHERE txn = '%s'" % unpaid["txn"]) == [("0", "1")]
    # A device revoked by the admin gets nothing, whatever it bought.
    other = cat.sold(device)
    r = ks.client("admin").post("/v1/revocations", json={
        "kind": "device", "subject": device.jkt, "reason": "key reported stolen"})
    assert r.status_code == 201
    again = ks.client("admin").post_json("/v1/revocations", {
        "kind": "device", "subject": device.jkt, "reason": "again"}, expect=200)
    assert again["already_revoked"] is True
    assert_problem(request_license(ks, device, other["voucher"]), 403, "device-revoked")
    # A revoked transaction cannot be paid either.
    fresh = cat.reserve(Device())
    ks.client("admin").post_json("/v1/revocations", {
        "kind": "transaction", "subject": fresh["txn"], "reason": "fraud"}, expect=201)
    assert_problem(ks.client("retailer1").post("/v1/payments", json={
        "txn": fresh["txn"], "payment_ref": "p", "amount": 199, "currency": "EUR"}), 409,
        "transaction-revoked")


def test_payment_checks(sold):
    ks, cat, device, reservation = sold
    fresh = cat.reserve(device)
    doc = assert_problem(ks.client("retailer1").post("/v1/payments", json={
        "txn": fresh["txn"], "payment_ref": "p-amount", "amount": 1, "currency": "EUR"}), 422,
        "amount-mismatch")
    assert doc["amount"] == 199 and doc["currency"] == "EUR"
    # A payment reference already used for another transaction.
    ref = "pay-" + uuid.uuid4().hex
    cat.pay(cat.reserve(device), ref=ref)
    assert_problem(ks.client("retailer1").post("/v1/payments", json={
        "txn": fresh["txn"], "payment_ref": ref, "amount": 199, "currency": "EUR"}), 409,
        "idempotency-key-reused")
    # Past the reservation's pay-by time.
    ks.query("UPDATE transactions SET pay_by = 1 WHERE txn = '%s'" % fresh["txn"])
    assert_problem(ks.client("retailer1").post("/v1/payments", json={
        "txn": fresh["txn"], "payment_ref": "p-late", "amount": 199, "currency": "EUR"}), 409,
        "reservation-expired")
    # Reservation refs: same ref and body is a repeat, another body a conflict.
    body = {"reservation_ref": "same-ref", "work_id": cat.work_id,
            "license": {"type": "purchase"}, "jkt": device.jkt}
    first = ks.client("retailer1").post_json("/v1/reservations", body, expect=201)
    repeat = ks.client("retailer1").post_json("/v1/reservations", body, expect=200)
    assert repeat == first
    assert_problem(ks.client("retailer1").post("/v1/reservations",
                                               json=dict(body, jkt=Device().jkt)), 409,
                   "idempotency-key-reused")


def test_sales_refusals_told_apart(env):
    """Reservations and payments check the caller, the contract and earlier
    sales in as few queries as they can; when those find nothing, each
    refusal must still be the precise one."""
    ks = KeyServer(env)
    extra = env.pki.issue_client("retailer3")
    env.httpd.add_vhost_config('KeyServerClientRole retailer "%s"' % extra.subject_dn)
    env.httpd.start()
    cat = Catalog(ks)
    device = Device()
    reservation = cat.sold(device)
    body = {"reservation_ref": "ref-" + uuid.uuid4().hex, "work_id": cat.work_id,
            "license": {"type": "purchase"}, "jkt": device.jkt}
    # The role, but never registered: refused before anything else.
    stranger = env.client("retailer3")
    assert_problem(stranger.post("/v1/reservations", json=body), 403, "not-registered")
    assert_problem(stranger.post("/v1/payments", json={
        "txn": reservation["txn"], "payment_ref": "p-x", "amount": 199, "currency": "EUR"}),
        403, "not-registered")
    assert_problem(stranger.post("/v1/payments", json={
        "txn": "no-such-txn", "payment_ref": "p-x", "amount": 199, "currency": "EUR"}),
        403, "not-registered")
    first = ks.client("retailer1").post_json("/v1/reservations", body, expect=201)
    paid = cat.pay(first, ref="pay-once")
    # A repeated payment gets the first answer; an unknown txn is unknown.
    assert cat.pay(first, ref="pay-once", expect=200)["payment_token"] == paid["payment_token"]
    assert_problem(ks.client("retailer1").post("/v1/payments", json={
        "txn": "no-such-txn", "payment_ref": "p-y", "amount": 199, "currency": "EUR"}), 404,
        "unknown-transaction")
    # The contract ends: a repeat of the reservation still gets its first
    # answer, the same reference for another sale is a reuse, a new one
    # finds no contract.
    ks.query("UPDATE contracts SET valid_until = 1")
    assert ks.client("retailer1").post_json("/v1/reservations", body, expect=200) == first
    assert_problem(ks.client("retailer1").post("/v1/reservations",
                                               json=dict(body, jkt=Device().jkt)), 409,
                   "idempotency-key-reused")
    assert_problem(ks.client("retailer1").post("/v1/reservations",
                                               json=dict(body, reservation_ref="ref-new")), 403,
                   "no-contract")
    assert ks.query("SELECT COUNT(*) FROM transactions WHERE reservation_ref = '%s'"
                    % body["reservation_ref"]) == [("1",)]
    assert ks.query("SELECT COUNT(*) FROM payments WHERE txn = '%s'" % first["txn"]) == [("1",)]


def test_sql_metacharacters(env):
    ks = KeyServer(env)
    env.httpd.start()
    admin = ks.client("admin")
    r = admin.post_json("/v1/owners", {"owner_id": "owner", "name": SQL_NASTY,
                                       "subject_dn": env.pki.client("owner").subject_dn},
                        expect=201)
    assert r["name"] == SQL_NASTY
    # Ids refuse metacharacters outright.
    for field in ("owner_id",):
        assert_problem(admin.post("/v1/owners", json={field: SQL_NASTY, "name": "n",
                                                      "subject_dn": "CN=x"}), 400,
                       "invalid-request")
    owner = ks.client("owner")
    # A DN is free text: kept verbatim (it is matched by its hash).
    admin.post_json("/v1/owners", {"owner_id": "owner-sql", "name": "n",
                                   "subject_dn": "CN=" + SQL_NASTY}, expect=201)
    assert ks.query("SELECT subject_dn FROM owners WHERE owner_id = 'owner-sql'") == [
        ("CN=" + SQL_NASTY,)]
    # Quotes, semicolons, comment dashes and % _ are legal in a URL, and
    # dashes, _, # and & in a media type (RFC 6838 restricted names):
    # stored and answered verbatim.
    artwork = "https://art.example/a';DROP%20TABLE%20works;--%_'?q=1'OR'1'='1"
    media_type = "audio/x--_#$&!^.+"
    work = {"work_id": "w-sql", "key_version": 1,
            "media_key_jwe": ks.wrap_media_key(b"k" * 32), "title": SQL_NASTY,
            "artist": SQL_NASTY, "album": SQL_NASTY, "lyrics": SQL_NASTY + "\n" + SQL_NASTY,
            "liner_notes": SQL_NASTY, "credits": SQL_NASTY, "artwork_ref": artwork,
            "media_type": media_type}
    owner.post_json("/v1/works", work, expect=201)
    got = owner.get_json("/v1/works/w-sql")
    for field in ("title", "artist", "album", "liner_notes", "credits"):
        assert got[field] == SQL_NASTY
    assert got["artwork_ref"] == artwork and got["media_type"] == media_type
    # The rest of the metacharacters cannot be in either.
    for field in ("artwork_ref", "media_type"):
        doc = assert_problem(owner.post("/v1/works", json=dict(work, work_id="w-sql2",
                                                               **{field: SQL_NASTY})),
                             400, "invalid-request")
        assert field in doc["detail"]
    for bad_id in (SQL_NASTY, "w' OR '1'='1", "../../etc/passwd", "a b", ""):
        assert_problem(owner.post("/v1/works", json=dict(work, work_id=bad_id)), 400,
                       "invalid-request")
    proxy_url = "https://shop.example/lic';--%_?x='1'OR'1'='1"
    admin.post_json("/v1/retailers", {"retailer_id": "retailer1", "name": SQL_NASTY,
                                      "subject_dn": env.pki.client("retailer1").subject_dn,
                                      "license_proxy_url": proxy_url},
                    expect=201)
    assert ks.query("SELECT license_proxy_url FROM retailers WHERE retailer_id = 'retailer1'") \
        == [(proxy_url,)]
    doc = assert_problem(admin.post("/v1/retailers", json={
        "retailer_id": "retailer9", "name": "n", "subject_dn": "CN=r9",
        "license_proxy_url": "https://shop.example/" + SQL_NASTY}), 400, "invalid-request")
    assert "license_proxy_url" in doc["detail"]
    now = int(time.time())
    contract = owner.post_json("/v1/contracts", {
        "retailer": "retailer1", "works": ["w-sql"], "currency": "EUR",
        "valid_from": now - 10, "valid_until": now + 1000,
        "licenses": [{"type": "purchase", "price": 5}],
        "royalties": [{"holder": SQL_NASTY, "share_bps": 10000}]}, expect=201)
    assert contract["royalties"][0]["holder"] == SQL_NASTY
    device = Device()
    retailer = ks.client("retailer1")
    for field, value in (("reservation_ref", SQL_NASTY), ("work_id", SQL_NASTY),
                         ("jkt", SQL_NASTY)):
        body = {"reservation_ref": "ok", "work_id": "w-sql", "license": {"type": "purchase"},
                "jkt": device.jkt}
        body[field] = value
        assert_problem(retailer.post("/v1/reservations", json=body), 400, "invalid-request")
    res = retailer.post_json("/v1/reservations", {
        "reservation_ref": "ok", "work_id": "w-sql", "license": {"type": "purchase"},
        "jkt": device.jkt}, expect=201)
    assert_problem(retailer.post("/v1/payments", json={
        "txn": res["txn"], "payment_ref": SQL_NASTY, "amount": 5, "currency": "EUR"}), 400,
        "invalid-request")
    r = admin.post("/v1/revocations", json={"kind": "transaction", "subject": res["txn"],
                                            "reason": SQL_NASTY})
    assert r.status_code == 201
    assert ks.query("SELECT reason FROM revocations") == [(SQL_NASTY,)]
    tables = {row[0] for row in ks.query("SHOW TABLES")}
    assert {"works", "transactions", "ledger", "payments"} <= tables


def test_path_traversal_in_work_ids(env):
    ks = KeyServer(env)
    env.httpd.start()
    Catalog(ks, work_id="w-1")
    owner = ks.client("owner")
    for path in ("/v1/works/..%2F..%2Fetc%2Fpasswd", "/v1/works/%2e%2e",
                 "/v1/works/w-1%00x", "/v1/works/w-1/../../v1/jwks"):
        r = owner.get(path)
        assert r.status_code in (400, 404), (path, r.status_code)
        assert "keys" not in r.text
    assert_problem(owner.get("/v1/works/.hidden"), 400, "invalid-request")
    assert owner.get("/v1/works/w-1").status_code == 200
    env.allow_log("AH00127", "AH10244")


def test_database_down_fails_closed_and_recovers(sold, env):
    ks, cat, device, reservation = sold
    env.expect_log("SM00011")
    # The children's ledger sealers notice the outage too.
    env.allow_log("SM01007", "SM01008")
    ledger_before = ks.ledger_count()
    env.db.stop()
    try:
        # A license cannot be released without the database: 503, no key.
        r = request_license(ks, device, reservation["voucher"])
        doc = assert_problem(r, 503, "service-unavailable")
        assert "key_jwe" not in r.text and r.headers.get("Retry-After")
        assert_problem(cat.retailer.post("/v1/reservations", json={
            "reservation_ref": "down", "work_id": cat.work_id,
            "license": {"type": "purchase"}, "jkt": device.jkt}), 503, "service-unavailable")
        assert_problem(cat.retailer.get("/v1/inventory"), 503, "service-unavailable")
        assert doc["detail"]
    finally:
        env.db.start()
    # Nothing half-written, and the same httpd works again.
    assert ks.ledger_count() == ledger_before
    assert ks.query("SELECT COUNT(*) FROM licenses") == [("0",)]
    r = until_status(lambda: request_license(ks, device, reservation["voucher"]), 200)
    assert r.status_code == 200, r.text
    assert device.open_key(r.json()["key_jwe"]) == cat.media_key
