"""Retailer accounts, API tokens, the login rate limit, devices and the
wallet (codes, top-ups through the payment authority's test double)."""

import concurrent.futures
import json
import time
import uuid

import pytest

from keyserver_setup import Device, assert_problem
from retail_setup import PASSWORD, Retail

SQL_META = "x'; DROP TABLE accounts; -- \" OR 1=1 #"


@pytest.fixture
def shop(env):
    s = Retail(env, extra="RetailPaymentAuthority test-double\n"
                          "RetailLoginMaxFailures 3\nRetailLoginMaxFailuresPerAddress 6")
    env.httpd.start()
    return s


def test_signup_login_account_logout(shop, env):
    email = shop.signup("Buyer.One@Example.org")
    pub = shop.public()
    acc = pub.json("POST", "/v1/accounts", {"email": "buyer.one@example.org",
                                             "password": PASSWORD}, expect=409)
    assert acc["type"].endswith("/account-exists")
    token = shop.login("BUYER.ONE@example.org")
    buyer = shop.consumer(token)
    me = buyer.json("GET", "/v1/account")
    assert me["email"] == email.lower() and me["balance"] == 0
    # Stored hashed: neither the token nor the password is in the database.
    dump = json.dumps(shop.query("SELECT HEX(token_sha256), account_id FROM api_tokens")) + json.dumps(
        shop.query("SELECT password_hash FROM accounts"))
    assert token not in dump and PASSWORD not in dump
    assert shop.query("SELECT password_hash FROM accounts")[0][0].startswith("$scrypt$ln=10,")
    r = buyer.delete("/v1/sessions/current")
    assert r.status_code == 204
    assert_problem(buyer.get("/v1/account"), 401, "token-invalid")


def test_token_required_invalid_expired(shop):
    pub = shop.public()
    r = pub.get("/v1/account")
    assert_problem(r, 401, "token-required")
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
    assert_problem(shop.consumer("smrt_" + "A" * 43).get("/v1/account"), 401, "token-invalid")
    assert_problem(shop.consumer("nonsense").get("/v1/wallet"), 401, "token-invalid")
    assert_problem(shop.consumer(SQL_META).get("/v1/devices"), 401, "token-invalid")
    email = shop.signup()
    token = shop.login(email)
    shop.env.db.execute("UPDATE api_tokens SET expires_at = 1", shop.db.name)
    assert_problem(shop.consumer(token).get("/v1/account"), 401, "token-invalid")


def test_login_failures_and_rate_limit(shop):
    email = shop.signup()
    pub = shop.public()
    for _ in range(3):
        assert_problem(pub.post("/v1/sessions",
                                json={"email": email, "password": "wrong password!"}),
                       401, "login-failed")
    r = pub.post("/v1/sessions", json={"email": email, "password": PASSWORD})
    doc = assert_problem(r, 429, "too-many-attempts")
    assert int(r.headers["Retry-After"]) > 0
    # Unknown accounts count against the address: 3 more reach its limit of 6.
    for i in range(3):
        assert_problem(pub.post("/v1/sessions", json={"email": "nobody%d@example.org" % i,
                                                       "password": PASSWORD}), 401,
                       "login-failed")
    other = shop.signup()
    assert_problem(pub.post("/v1/sessions", json={"email": other, "password": PASSWORD}), 429,
                   "too-many-attempts")
    # The window passes (moved back in the database): logins work again.
    shop.env.db.execute("UPDATE login_failures SET window_start = window_start - 100000",
                        shop.db.name)
    assert shop.login(email)
    assert doc["detail"]


def test_login_rate_limit_holds_under_parallel_attempts(env):
    """Each attempt is counted before its password is checked: 40 parallel
    wrong passwords against a limit of 10 get at most 10 password checks
    (the rest 429), and then the right password is refused too until the
    window passes. The same for the per-address limit."""
    shop = Retail(env, extra="RetailLoginMaxFailures 10\nRetailLoginMaxFailuresPerAddress 20")
    env.httpd.start()
    email = shop.signup()

    def attempts(emails, password):
        def one(e):
            return shop.public().post("/v1/sessions", json={"email": e, "password": password},
                                      timeout=60).status_code
        with concurrent.futures.ThreadPoolExecutor(max_workers=len(emails)) as pool:
            return sorted(pool.map(one, emails))

    statuses = attempts([email] * 40, "wrong password!")
    assert set(statuses) <= {401, 429} and statuses.count(401) <= 10, statuses
    assert statuses.count(429) >= 30, statuses
    r = shop.public().post("/v1/sessions", json={"email": email, "password": PASSWORD})
    assert_problem(r, 429, "too-many-attempts")
    assert int(r.headers["Retry-After"]) > 0
    # The address has 10 failures of its 20: 40 parallel logins for unknown
    # accounts get at most 10 more password checks.
    statuses = attempts(["nobody%d@example.org" % i for i in range(40)], PASSWORD)
    assert set(statuses) <= {401, 429} and statuses.count(401) <= 10, statuses
    other = shop.signup()
    assert_problem(shop.public().post("/v1/sessions", json={"email": other,
                                                            "password": PASSWORD}),
                   429, "too-many-attempts")
    # The window passes (moved back in the database): logins work again,
    # and a success takes its attempt back from the address's count.
    shop.env.db.execute("UPDATE login_failures SET window_start = window_start - 100000",
                        shop.db.name)
    assert shop.login(email) and shop.login(other)
    assert shop.query("SELECT failures FROM login_failures WHERE scope = 'address'") == []


@pytest.mark.parametrize("body, what", [
    ({"email": "a@example.org"}, "password"),
    ({"email": "a@example.org", "password": "short"}, "password"),
    ({"email": "not-an-address", "password": PASSWORD}, "email"),
    ({"email": SQL_META + "@example.org", "password": PASSWORD}, "email"),
    ({"email": "a@example.org", "password": PASSWORD, "admin": True}, "admin"),
    ({"email": 7, "password": PASSWORD}, "email"),
    ({"email": "a@example.org", "password": PASSWORD, "display_name": "x\u0001"},
     "display_name"),
])
def test_signup_bad_input(shop, body, what):
    doc = assert_problem(shop.public().post("/v1/accounts", json=body), 400, "invalid-request")
    assert what in doc["detail"]


def test_bodies_malformed_oversized_wrong_type(shop):
    pub = shop.public()
    r = pub.post("/v1/accounts", data=b'{"email":', headers={"Content-Type": "application/json"})
    assert_problem(r, 400, "invalid-request")
    r = pub.post("/v1/accounts", data=b'{"email":"a@b.c","email":"d@e.f","password":"xxxxxxxxxxxx"}',
                 headers={"Content-Type": "application/json"})
    assert_problem(r, 400, "invalid-request")
    r = pub.post("/v1/accounts", data=b"email=a", headers={"Content-Type": "text/plain"})
    assert_problem(r, 415, "unsupported-media-type")
    r = pub.post("/v1/accounts", data=b'{"email":"' + b"a" * 70000 + b'"}',
                 headers={"Content-Type": "application/json"})
    assert_problem(r, 413, "body-too-large")


def test_signup_keeps_sql_metacharacters_as_data(shop):
    email = "o'brien\"--%@example.org"
    assert_problem(shop.public().post("/v1/accounts", json={"email": email, "password": PASSWORD}),
                   400, "invalid-request")
    name = "Robert'); DROP TABLE accounts; --"
    r = shop.public().post("/v1/accounts", json={"email": "rob@example.org", "password":
                                                 PASSWORD + "'\"", "display_name": name})
    assert r.status_code == 201, r.text
    buyer = shop.consumer(shop.login("rob@example.org", PASSWORD + "'\""))
    assert buyer.json("GET", "/v1/account")["display_name"] == name


def test_devices(shop):
    buyer, dev, _ = shop.new_buyer()
    other, _, _ = shop.new_buyer(device=False)
    listed = buyer.json("GET", "/v1/devices")["devices"]
    assert [d["jkt"] for d in listed] == [dev.jkt] and "d" not in listed[0]["jwk"]
    pub = json.loads(dev.key.export_public())
    again = buyer.json("POST", "/v1/devices", {"jwk": pub}, expect=200)
    assert again["jkt"] == dev.jkt
    assert_problem(other.post("/v1/devices", json={"jwk": pub}), 409, "device-taken")
    private = json.loads(Device().key.export_private())
    assert_problem(buyer.post("/v1/devices", json={"jwk": private}), 400, "invalid-jwk")
    bad = dict(pub, x=pub["y"])
    assert_problem(buyer.post("/v1/devices", json={"jwk": bad}), 400, "invalid-jwk")
    assert_problem(buyer.post("/v1/devices", json={"jwk": {"kty": "RSA"}}), 400, "invalid-jwk")
    assert_problem(buyer.post("/v1/devices", json={"jwk": pub, "name": SQL_META * 20}), 400,
                   "invalid-request")
    assert_problem(buyer.post("/v1/devices", json={"jwk": "text"}), 400, "invalid-request")
    assert_problem(other.delete("/v1/devices/" + dev.jkt), 404, "not-found")
    assert_problem(buyer.delete("/v1/devices/" + "x" * 10), 400, "invalid-request")
    assert buyer.delete("/v1/devices/" + dev.jkt).status_code == 204
    assert buyer.json("GET", "/v1/devices")["devices"] == []


def test_codes_redeem_and_journal(shop):
    buyer, _, _ = shop.new_buyer()
    codes = shop.codes(500, count=3)
    assert len(set(codes)) == 3
    # Stored hashed.
    assert not any(c.replace("-", "") in json.dumps(shop.query("SELECT HEX(code_sha256), points FROM redeem_codes"))
                   for c in codes)
    e = buyer.json("POST", "/v1/wallet/redeem", {"code": codes[0].lower()})
    assert e["amount"] == 500 and e["balance_after"] == 500
    assert_problem(buyer.post("/v1/wallet/redeem", json={"code": codes[0]}), 409, "code-redeemed")
    assert_problem(buyer.post("/v1/wallet/redeem", json={"code": "0" * 20}), 404, "unknown-code")
    assert_problem(buyer.post("/v1/wallet/redeem", json={"code": SQL_META}), 400,
                   "invalid-request")
    shop.env.db.execute("UPDATE redeem_codes SET expires_at = 1 WHERE redeemed_by IS NULL",
                        shop.db.name)
    assert_problem(buyer.post("/v1/wallet/redeem", json={"code": codes[1]}), 410, "code-expired")
    w = buyer.json("GET", "/v1/wallet?limit=1")
    assert w["balance"] == 500 and len(w["entries"]) == 1
    assert_problem(buyer.get("/v1/wallet?limit=0"), 400, "invalid-request")
    assert_problem(buyer.get("/v1/wallet?limit=1&limit=2"), 400, "invalid-request")


def test_codes_need_admin_certificate(shop, env):
    body = {"points": 5, "count": 1}
    assert_problem(shop.public().post("/v1/admin/codes", json=body), 403,
                   "client-certificate-required")
    assert_problem(shop.admin("owner").post("/v1/admin/codes", json=body), 403,
                   "client-certificate-not-authorized")
    with pytest.raises(Exception):
        shop.admin("foreign").post("/v1/admin/codes", json=body)
    assert_problem(shop.admin().post("/v1/admin/codes", json={"points": 0, "count": 1}), 400,
                   "invalid-request")
    assert_problem(shop.admin().post("/v1/admin/codes", json={"points": 1, "count": 1001}), 400,
                   "invalid-request")
    assert_problem(shop.admin().post("/v1/admin/codes", json={"points": "5", "count": 1}), 400,
                   "invalid-request")


def test_topup_through_test_double(shop):
    buyer, _, _ = shop.new_buyer()
    key = {"Idempotency-Key": uuid.uuid4().hex}
    e = buyer.json("POST", "/v1/wallet/topups", {"points": 300, "payment_token": "approve"},
                   expect=201, headers=key)
    again = buyer.json("POST", "/v1/wallet/topups", {"points": 300, "payment_token": "approve"},
                       expect=200, headers=key)
    assert again["entry_id"] == e["entry_id"] and shop.balance(buyer) == 300
    assert_problem(buyer.post("/v1/wallet/topups", json={"points": 300, "payment_token": "no"},
                              headers={"Idempotency-Key": "k2"}), 402, "payment-declined")
    assert_problem(buyer.post("/v1/wallet/topups", json={"points": 300, "payment_token":
                                                         "approve"}), 400, "invalid-request")
    assert shop.balance(buyer) == 300


def test_topup_key_is_bound_to_account_and_request(shop):
    """The reference the payment authority sees is the server's random one,
    bound to (account, Idempotency-Key) before the charge: another account
    using the same key gets its own reference (so a processor answering a
    repeated reference with its first outcome could never approve B's
    top-up with A's charge), and the same key with another amount or
    payment token is refused, not answered with the first entry."""
    a, _, _ = shop.new_buyer(device=False)
    b, _, _ = shop.new_buyer(device=False)
    key = {"Idempotency-Key": "topup-" + uuid.uuid4().hex}
    first = a.json("POST", "/v1/wallet/topups", {"points": 300, "payment_token": "approve"},
                   expect=201, headers=key)
    # Same key, another amount or token: 409, nothing credited or charged.
    assert_problem(a.post("/v1/wallet/topups", json={"points": 900, "payment_token": "approve"},
                          headers=key), 409, "idempotency-key-reused")
    assert_problem(a.post("/v1/wallet/topups", json={"points": 300, "payment_token": "approve2"},
                          headers=key), 409, "idempotency-key-reused")
    again = a.json("POST", "/v1/wallet/topups", {"points": 300, "payment_token": "approve"},
                   expect=200, headers=key)
    assert again["entry_id"] == first["entry_id"] and shop.balance(a) == 300
    # Account B with A's key: its own top-up, under its own reference.
    eb = b.json("POST", "/v1/wallet/topups", {"points": 500, "payment_token": "approve"},
                expect=201, headers=key)
    assert eb["amount"] == 500 and shop.balance(b) == 500 and shop.balance(a) == 300
    rows = shop.query("SELECT account_id, reference, points, state FROM topups "
                      "WHERE idempotency_key = '%s' ORDER BY account_id" % key["Idempotency-Key"])
    assert len(rows) == 2 and [r[2:] for r in rows] == [("300", "credited"), ("500", "credited")]
    refs = [r[1] for r in rows]
    assert refs[0] != refs[1]
    for ref in refs:
        assert key["Idempotency-Key"] not in ref and len(ref) == len("topup-") + 32
    # The journal credits each account once, under its row's reference.
    assert sorted(shop.query("SELECT reference FROM wallet_journal WHERE kind = 'purchase'")) == \
        sorted((r,) for r in refs)
    # A declined request leaves the row pending; the same request again
    # uses the same reference (the processor's repeat), another is refused.
    k2 = {"Idempotency-Key": "k-" + uuid.uuid4().hex}
    for _ in range(2):
        assert_problem(a.post("/v1/wallet/topups", json={"points": 10, "payment_token": "no"},
                              headers=k2), 402, "payment-declined")
    assert shop.query("SELECT state FROM topups WHERE idempotency_key = '%s'"
                      % k2["Idempotency-Key"]) == [("pending",)]
    assert_problem(a.post("/v1/wallet/topups", json={"points": 10, "payment_token": "approve"},
                          headers=k2), 409, "idempotency-key-reused")
    assert shop.balance(a) == 300


def test_parallel_topups_with_one_key_credit_once(shop):
    buyer, _, _ = shop.new_buyer(device=False)
    key = {"Idempotency-Key": uuid.uuid4().hex}

    def one(_):
        r = buyer.post("/v1/wallet/topups", json={"points": 70, "payment_token": "approve"},
                       headers=key, timeout=60)
        return r.status_code

    with concurrent.futures.ThreadPoolExecutor(max_workers=20) as pool:
        statuses = sorted(pool.map(one, range(20)))
    assert statuses.count(201) == 1 and statuses.count(200) == 19, statuses
    assert shop.balance(buyer) == 70
    assert shop.query("SELECT COUNT(*) FROM topups") == [("1",)]


def test_topup_migration_keeps_credited_keys(env, tmp_path):
    """0002_topups.sql backfills top-ups credited under version 1 (journal
    reference "topup:<key>"), so a repeat of such a key answers the first
    entry instead of charging again under a new reference."""
    import os
    import shutil
    old = tmp_path / "sql"
    (old / "retail").mkdir(parents=True)
    shutil.copy(os.path.join(env.sql_dir, "retail", "0001_initial.sql"), old / "retail")
    db = env.role_database("retail")
    env.db.migrate(db.name, "retail", str(old))
    env.db.execute(
        "INSERT INTO accounts (account_id, email, password_hash, balance, created_at) VALUES "
        "(7, 'old@example.org', 'x', 300, 1);"
        "INSERT INTO wallet_journal (entry_id, account_id, kind, amount, balance_after, "
        "reference, created_at) VALUES (3, 7, 'purchase', 300, 300, 'topup:k1', 2)", db.name)
    env.db.migrate(db.name, "retail", env.sql_dir)
    assert env.db.query("SELECT account_id, idempotency_key, request_sha256 IS NULL, points, "
                        "reference, state, entry_id FROM topups", db.name) == \
        [("7", "k1", "1", "300", "topup:k1", "credited", "3")]


def test_topup_not_configured(env):
    shop = Retail(env)
    env.httpd.start()
    buyer, _, _ = shop.new_buyer(device=False)
    assert_problem(buyer.post("/v1/wallet/topups", json={"points": 1, "payment_token": "approve"},
                              headers={"Idempotency-Key": "k"}), 501, "payments-not-configured")


JSON_ENDPOINTS = [
    ("consumer", "/v1/accounts"), ("consumer", "/v1/sessions"), ("consumer", "/v1/devices"),
    ("consumer", "/v1/wallet/redeem"), ("consumer", "/v1/wallet/topups"),
    ("consumer", "/v1/orders"), ("admin", "/v1/admin/codes"), ("admin", "/v1/admin/offers"),
]


def test_every_json_endpoint_refuses_bad_bodies(shop):
    """Malformed JSON, a non-object, an unknown member, a wrong type, a
    wrong content type and an oversized body, on every JSON endpoint."""
    buyer, _, _ = shop.new_buyer()
    admin = shop.admin()
    hdr = {"Idempotency-Key": "bad-bodies"}
    for who, path in JSON_ENDPOINTS:
        c = admin if who == "admin" else buyer
        for data in (b'{"a":', b'[1,2]', b'{"unknown_member":1}', b'{"a":1} trailing',
                     b'{"email":"x\\u0000y"}'):
            r = c.post(path, data=data, headers=dict(hdr, **{"Content-Type": "application/json"}))
            doc = assert_problem(r, 400, "invalid-request")
            assert doc["detail"], (path, data)
        r = c.post(path, data=b"{}", headers=dict(hdr, **{"Content-Type": "text/plain"}))
        assert_problem(r, 415, "unsupported-media-type")
        r = c.post(path, data=b'{"x":"' + b"y" * 70000 + b'"}',
                   headers=dict(hdr, **{"Content-Type": "application/json"}))
        assert_problem(r, 413, "body-too-large")
    # A wrong type names the member.
    doc = assert_problem(buyer.post("/v1/orders", json={"offer_id": "one"}, headers=hdr), 400,
                         "invalid-request")
    assert "offer_id" in doc["detail"]


def test_expired_tokens_are_purged(shop, env):
    email = shop.signup()
    token = shop.login(email)
    live = shop.login(email)
    shop.consumer(token).delete("/v1/sessions/current")
    env.db.execute("INSERT INTO login_failures VALUES ('address', REPEAT('x', 32), 1, 5)",
                   shop.db.name)
    assert shop.query("SELECT COUNT(*) FROM api_tokens") == [("2",)]
    env.allow_log("SM03004")
    env.httpd.restart()   # new children purge when they start
    import time
    for _ in range(50):
        if shop.query("SELECT COUNT(*) FROM api_tokens") == [("1",)]:
            break
        time.sleep(0.2)
    assert shop.query("SELECT COUNT(*) FROM api_tokens") == [("1",)]
    assert shop.query("SELECT COUNT(*) FROM login_failures") == [("0",)]
    assert shop.consumer(live).json("GET", "/v1/account")["email"] == email
