"""End to end through the retailer: sign-up, login, device, code, catalog
sync, offer, order (reserve, debit, payment at the real key server), the
.steer, and a license from the key server with the voucher in it."""

import json

from keyserver_setup import Device, assert_problem, request_license
from retail_setup import Retail, shop_with_offer, steer_json


def test_purchase_end_to_end(env):
    shop, cat, offer = shop_with_offer(env)
    buyer, dev, _ = shop.new_buyer(points=1000)
    page = shop.public().json("GET", "/v1/catalog")
    assert page["total"] == 1 and page["items"][0]["work_id"] == cat.work_id
    assert page["items"][0]["offers"][0]["offer_id"] == offer["offer_id"]

    order = shop.order(buyer, offer["offer_id"])
    assert order["state"] == "completed" and order["price"] == 250
    assert order["device_jkt"] == dev.jkt and order["gift"] is False
    assert shop.balance(buyer) == 750
    steer = steer_json(order["steer"])
    assert steer["work_id"] == cat.work_id
    assert steer["license_url"] == shop.ks.license_url
    assert steer["media_urls"] == [shop.media_urls[0] + "/works/" + cat.work_id]

    # The key server recorded the sale: the device gets the key.
    r = request_license(shop.ks, dev, steer["voucher"])
    assert r.status_code == 200, r.text
    assert dev.open_key(r.json()["key_jwe"]) == cat.media_key

    # History and re-download.
    orders = buyer.json("GET", "/v1/orders")["orders"]
    assert [o["order_id"] for o in orders] == [order["order_id"]]
    r = buyer.get("/v1/orders/%s/steer" % order["order_id"])
    assert r.status_code == 200 and r.headers["Content-Type"] == "application/vnd.secmedia.steer"
    assert r.text == order["steer"]
    journal = buyer.json("GET", "/v1/wallet")["entries"]
    assert [(e["kind"], e["amount"]) for e in journal] == [("order", -250), ("redeem", 1000)]
