"""Catalog sync from the key server's inventory, retail offers checked
against the contract, full-text search and pagination."""

import time

import pytest

from keyserver_setup import Catalog, assert_problem
from retail_setup import Retail

SQL_META = "x'; DROP TABLE offers; -- \" OR 1=1 #"


@pytest.fixture
def shop(env):
    s = Retail(env)
    env.httpd.start()
    return s


def test_sync_and_offers_follow_the_contract(shop):
    cat = shop.catalog(price=199, licenses=[{"type": "purchase", "price": 199},
                                            {"type": "rental", "duration": 3600, "price": 50}])
    res = shop.sync()
    assert res["works"] == 1 and res["offers"] == 2
    assert shop.public().json("GET", "/v1/catalog")["total"] == 0  # no offer yet
    # Below wholesale, license types or durations the contract lacks: refused.
    doc = shop.offer(cat.work_id, 198, expect=422)
    assert doc["type"].endswith("/below-wholesale") and "199" in doc["detail"]
    doc = shop.offer(cat.work_id, 500, license={"type": "rental", "duration": 7200}, expect=422)
    assert doc["type"].endswith("/license-not-in-contract")
    doc = shop.offer("work-unknown", 500, expect=422)
    assert doc["type"].endswith("/unknown-work")
    assert shop.offer(cat.work_id, 199)["price"] == 199
    rental = shop.offer(cat.work_id, 60, license={"type": "rental", "duration": 3600})
    item = shop.public().json("GET", "/v1/catalog/" + cat.work_id)
    assert sorted(o["price"] for o in item["offers"]) == [60, 199]
    assert item["preview_url"] == shop.media_urls[0] + "/works/%s/preview" % cat.work_id
    # Ending an offer takes it off the shelf; the admin list still has it.
    r = shop.admin().delete("/v1/admin/offers/%d" % rental["offer_id"])
    assert r.status_code == 204
    item = shop.public().json("GET", "/v1/catalog/" + cat.work_id)
    assert [o["price"] for o in item["offers"]] == [199]
    assert len(shop.admin().json("GET", "/v1/admin/offers")["offers"]) == 2
    assert_problem(shop.admin().delete("/v1/admin/offers/999999"), 404, "not-found")
    assert_problem(shop.admin().delete("/v1/admin/offers/" + "x"), 400, "invalid-request")


def test_offer_in_another_currency_is_refused(shop):
    cat = shop.catalog(currency="USD")
    shop.sync()
    doc = shop.offer(cat.work_id, 1000, expect=422)
    assert doc["type"].endswith("/currency-mismatch")


def test_offer_bad_input(shop):
    cat = shop.catalog()
    shop.sync()
    admin = shop.admin()
    for body in ({"work_id": cat.work_id, "license": {"type": "purchase"}},
                 {"work_id": cat.work_id, "license": {"type": "lease"}, "price": 300},
                 {"work_id": cat.work_id, "license": {"type": "purchase"}, "price": -1},
                 {"work_id": cat.work_id, "license": {"type": "purchase"}, "price": "300"},
                 {"work_id": SQL_META, "license": {"type": "purchase"}, "price": 300},
                 {"work_id": cat.work_id, "license": {"type": "purchase"}, "price": 300,
                  "extra": 1},
                 {"work_id": cat.work_id, "license": {"type": "purchase"}, "price": 300,
                  "valid_from": 2000000000, "valid_until": 1900000000}):
        assert_problem(admin.post("/v1/admin/offers", json=body), 400, "invalid-request")
    assert_problem(shop.public().post("/v1/admin/offers", json={}), 403,
                   "client-certificate-required")
    assert_problem(shop.admin("retailer2").post("/v1/admin/catalog/sync"), 403,
                   "client-certificate-not-authorized")


def test_offer_window(shop):
    cat = shop.catalog()
    shop.sync()
    now = int(time.time())
    shop.offer(cat.work_id, 300, valid_from=now + 3600, valid_until=now + 7200)
    assert shop.public().json("GET", "/v1/catalog")["total"] == 0
    shop.offer(cat.work_id, 300, valid_from=now - 10, valid_until=now + 7200)
    assert shop.public().json("GET", "/v1/catalog")["total"] == 1


def test_search_and_pagination(shop):
    works = []
    for i, (title, artist) in enumerate([("Moonlight Sonata", "Beethoven Ensemble"),
                                         ("Blue Moon", "Crooners"),
                                         ("Sunrise", "Beethoven Ensemble")]):
        cat = shop.catalog()
        shop.ks.env.db.execute(
            "UPDATE works SET title = '%s', artist = '%s' WHERE work_id = '%s'"
            % (title, artist, cat.work_id), shop.ks.db.name)
        works.append(cat)
    shop.sync()
    for cat in works:
        shop.offer(cat.work_id, 250)
    pub = shop.public()

    def titles(q, extra=""):
        return [i["title"] for i in pub.json("GET", "/v1/catalog?q=%s%s" % (q, extra))["items"]]

    assert sorted(titles("moon")) == ["Blue Moon", "Moonlight Sonata"]
    assert sorted(titles("beethoven")) == ["Moonlight Sonata", "Sunrise"]
    assert titles("beethoven+sun") == ["Sunrise"]
    assert titles("zzzz") == []
    # Operators and SQL are words or separators, never syntax.
    assert titles("%2Bmoon+-blue") == titles("moon+blue") == ["Blue Moon"]
    assert pub.json("GET", "/v1/catalog?q=" + "x%27%3B+DROP+TABLE+offers%3B+--")["items"] == []
    page = pub.json("GET", "/v1/catalog?limit=2&offset=0")
    assert page["total"] == 3 and len(page["items"]) == 2
    rest = pub.json("GET", "/v1/catalog?limit=2&offset=2")
    assert len(rest["items"]) == 1
    all_titles = [i["title"] for i in page["items"] + rest["items"]]
    assert sorted(all_titles) == ["Blue Moon", "Moonlight Sonata", "Sunrise"]
    assert_problem(pub.get("/v1/catalog?limit=101"), 400, "invalid-request")
    assert_problem(pub.get("/v1/catalog?offset=-1"), 400, "invalid-request")
    assert_problem(pub.get("/v1/catalog?q=" + "a" * 201), 400, "invalid-request")
    assert_problem(pub.get("/v1/catalog/" + "bad%20id"), 400, "invalid-request")
    assert_problem(pub.get("/v1/catalog/work-nothere"), 404, "not-found")


def test_sync_drops_works_no_longer_under_contract(shop):
    cat = shop.catalog()
    shop.sync()
    shop.offer(cat.work_id, 250)
    shop.ks.env.db.execute("UPDATE contracts SET valid_until = 1", shop.ks.db.name)
    res = shop.sync()
    assert res["works"] == 0 and res["removed"] == 1
    assert shop.public().json("GET", "/v1/catalog")["total"] == 0


def test_scheduled_sync(env):
    shop = Retail(env, extra="RetailCatalogSyncInterval 2")
    # the generated config sets 0 first; the later directive wins
    env.httpd.start()
    cat = shop.catalog()
    deadline = time.time() + 20
    while time.time() < deadline:
        if shop.query("SELECT work_id FROM catalog_works WHERE available = 1"):
            break
        time.sleep(0.5)
    assert shop.query("SELECT work_id FROM catalog_works WHERE available = 1") == [(cat.work_id,)]
    env.allow_log("SM03004")
