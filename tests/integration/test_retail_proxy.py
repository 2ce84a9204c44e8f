"""The license proxy: a .steer naming the retailer; the retailer forwards
the device's request (body and DPoP proof unchanged) to the key server
with its own client certificate and relays the answer."""

from keyserver_setup import assert_problem
from retail_setup import shop_with_offer, steer_json


def test_license_through_the_proxy(env):
    shop, cat, offer = shop_with_offer(env, proxy=True)
    buyer, dev, _ = shop.new_buyer(points=1000)
    steer = steer_json(shop.order(buyer, offer["offer_id"])["steer"])
    assert steer["license_url"] == shop.proxy_url
    pub = shop.public()
    r = pub.post("/v1/license", json={"voucher": steer["voucher"]},
                 headers={"DPoP": dev.proof(shop.proxy_url)})
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("application/json")
    assert dev.open_key(r.json()["key_jwe"]) == cat.media_key
    # A delivery-token renewal goes through the same route unchanged.
    renewal = {"voucher": steer["voucher"], "delivery_only": True}
    r = pub.post("/v1/license", json=renewal, headers={"DPoP": dev.proof(shop.proxy_url)})
    assert r.status_code == 200, r.text
    assert "key_jwe" not in r.json() and r.json()["activation"] == 1
    # A proof made for the key server's own URL does not fit the proxy:
    # the key server's refusal is relayed as it is.
    r = pub.post("/v1/license", json={"voucher": steer["voucher"]},
                 headers={"DPoP": dev.proof(shop.ks.license_url)})
    assert_problem(r, 401, "proof-invalid")
    assert r.headers["WWW-Authenticate"].startswith("DPoP")
    r = pub.post("/v1/license", json={"voucher": steer["voucher"]})
    assert_problem(r, 401, "proof-invalid")
    r = pub.post("/v1/license", json={"voucher": steer["voucher"]},
                 headers={"DPoP": "x" * 5000})
    assert_problem(r, 400, "invalid-request")
    r = pub.post("/v1/license", data="voucher", headers={"Content-Type": "text/plain"})
    assert_problem(r, 415, "unsupported-media-type")
    r = pub.post("/v1/license", data=b"{" + b" " * 70000 + b"}",
                 headers={"Content-Type": "application/json"})
    assert_problem(r, 413, "body-too-large")


def test_proxy_off_by_default(env):
    shop, cat, offer = shop_with_offer(env)
    assert_problem(shop.public().post("/v1/license", json={"voucher": "a.b.c"}), 404,
                   "not-found")
