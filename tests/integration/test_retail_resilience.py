"""The database stopped during requests: clear 503s, nothing half-written,
recovery without an httpd restart. Storefront files and configtest."""

import os
import re

import pytest

from keyserver_setup import assert_problem
from retail_setup import Retail, shop_with_offer


def test_database_down_then_back(env):
    shop, cat, offer = shop_with_offer(env)
    buyer, _, email = shop.new_buyer(points=1000)
    env.expect_log("SM00011")
    env.allow_log("SM03003", "SM03005", "SM01002")
    # The key server's background ledger sealer shares the database.
    env.allow_log("SM01007", "SM01008")
    env.db.stop()
    try:
        for method, path, body in (("GET", "/v1/account", None), ("GET", "/v1/catalog", None),
                                   ("POST", "/v1/accounts", {"email": "new@example.org",
                                                             "password": "long enough pw"}),
                                   ("POST", "/v1/orders", {"offer_id": offer["offer_id"]})):
            r = buyer.request(method, path, json=body, headers={"Idempotency-Key": "down-1"})
            doc = assert_problem(r, 503, "service-unavailable")
            assert r.headers["Retry-After"] and "retry" in doc["detail"]
        assert_problem(shop.public().post("/v1/sessions", json={"email": email,
                                                                "password": "whatever!!"}),
                       503, "service-unavailable")
    finally:
        env.db.start()
    # Nothing was written while it was down; everything works again.
    assert shop.query("SELECT COUNT(*) FROM orders") == [("0",)]
    assert shop.query("SELECT COUNT(*) FROM accounts WHERE email = 'new@example.org'") == \
        [("0",)]
    # The key server's own pooled connections find out one by one that the
    # database restarted (503 once each): the same Idempotency-Key resumes.
    for _ in range(10):
        r = buyer.post("/v1/orders", json={"offer_id": offer["offer_id"]},
                       headers={"Idempotency-Key": "down-1"})
        if r.status_code != 503:
            break
    assert r.status_code == 201, r.text
    assert r.json()["state"] == "completed" and shop.balance(buyer) == 750
    assert shop.query("SELECT COUNT(*) FROM orders") == [("1",)]


def test_storefront_files(env):
    d = os.path.join(env.httpd.directory, "store")
    os.makedirs(d)
    with open(os.path.join(d, "index.html"), "w") as f:
        f.write("<!doctype html><title>shop</title>")
    with open(os.path.join(d, "app.js"), "w") as f:
        f.write("console.log(1)")
    os.chmod(d, 0o755)
    shop = Retail(env, extra='RetailStorefrontDir "%s"' % d)
    env.httpd.start()
    pub = shop.public()
    r = pub.get("/store/")
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/html")
    assert "<title>shop</title>" in r.text
    r = pub.get("/store/app.js")
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/javascript")
    assert_problem(pub.get("/store/missing.css"), 404, "not-found")
    assert_problem(pub.get("/store/.hidden"), 404, "not-found")
    assert pub.get("/store/%2e%2e%2fconf").status_code == 404


@pytest.mark.parametrize("omit, extra, message", [
    (["RetailCurrency"], "", "RetailCurrency is required"),
    (["RetailKeyServerURL"], "", "RetailKeyServerURL is required"),
    (["RetailClientKeyFile"], "", "RetailClientKeyFile is required"),
    (["RetailMediaStoreURL"], "", "RetailMediaStoreURL is required"),
    (["RetailDBName"], "", "RetailDBName"),
    ([], "RetailPasswordCost 30", "RetailPasswordCost"),
    ([], "RetailCurrency euro", "ISO 4217"),
    ([], "RetailPaymentAuthority stripe", "test-double"),
    ([], "RetailLicenseProxy On", "RetailLicenseProxyURL"),
    ([], "RetailTokenLifetime 10x", "RetailTokenLifetime"),
    ([], "RetailMediaStoreURL http://plain.example", "https"),
    ([], 'RetailClientRole owner "CN=x"', "owner"),
    ([], "RetailStorefrontDir /nonexistent/store", "RetailStorefrontDir"),
])
def test_bad_directive_fails_configtest(env, omit, extra, message):
    Retail(env, omit=omit, extra=extra)
    ok, output = env.httpd.configtest()
    assert not ok, output
    assert re.search(re.escape(message), output), output
