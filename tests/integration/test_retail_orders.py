"""Orders: idempotency, gifts, refusals, the state machine's failure paths
(key server refusing or unreachable, payment refused after the debit,
orders resumed after a crash) and 100 parallel orders on one wallet."""

import concurrent.futures
import hashlib
import json
import time
import uuid

import harness
from keyserver_setup import Device, assert_problem, request_license
from retail_setup import Retail, SHOP, shop_with_offer, steer_json

SQL_META = "k'; DROP TABLE orders; --"


def journal_consistent(shop, email):
    """Balance = sum of the journal; every balance_after chains."""
    rows = shop.query(
        "SELECT j.amount, j.balance_after, a.balance FROM wallet_journal j JOIN accounts a "
        "ON a.account_id = j.account_id WHERE a.email = '%s' ORDER BY j.entry_id" % email)
    running = 0
    for amount, after, _ in rows:
        running += int(amount)
        assert running == int(after) and running >= 0
    assert running == int(rows[-1][2]) if rows else True
    return running


def test_idempotent_repeat_and_key_reuse(env):
    shop, cat, offer = shop_with_offer(env)
    buyer, dev, email = shop.new_buyer(points=1000)
    key = "order-" + uuid.uuid4().hex
    first = shop.order(buyer, offer["offer_id"], key=key, expect=201)
    again = shop.order(buyer, offer["offer_id"], key=key, expect=200)
    assert again["order_id"] == first["order_id"] and again["steer"] == first["steer"]
    assert shop.balance(buyer) == 750
    doc = shop.order(buyer, offer["offer_id"], key=key, device_jkt=Device().jkt, expect=409)
    assert doc["type"].endswith("/idempotency-key-reused")
    # One payment at the key server for the one order.
    assert shop.ks.query("SELECT COUNT(*) FROM payments") == [("1",)]
    assert journal_consistent(shop, email) == 750
    # The same key from another account is another order.
    other, _, _ = shop.new_buyer(points=300)
    assert shop.order(other, offer["offer_id"], key=key)["order_id"] != first["order_id"]


def test_gift_to_another_accounts_device(env):
    shop, cat, offer = shop_with_offer(env)
    buyer, _, _ = shop.new_buyer(points=1000)
    friend, friend_dev, _ = shop.new_buyer()
    order = shop.order(buyer, offer["offer_id"], device_jkt=friend_dev.jkt)
    assert order["gift"] is True and order["device_jkt"] == friend_dev.jkt
    voucher = steer_json(order["steer"])["voucher"]
    r = request_license(shop.ks, friend_dev, voucher)
    assert r.status_code == 200, r.text
    assert friend.json("GET", "/v1/orders")["orders"] == []


def test_order_refusals(env):
    shop, cat, offer = shop_with_offer(env)
    buyer, dev, _ = shop.new_buyer(points=100)
    assert_problem(buyer.post("/v1/orders", json={"offer_id": offer["offer_id"]},
                              headers={"Idempotency-Key": "k1"}), 402, "insufficient-funds")
    shop.fund(buyer, 1000)
    assert_problem(buyer.post("/v1/orders", json={"offer_id": offer["offer_id"]}), 400,
                   "invalid-request")  # no Idempotency-Key
    assert_problem(buyer.post("/v1/orders", json={"offer_id": offer["offer_id"]},
                              headers={"Idempotency-Key": SQL_META}), 400, "invalid-request")
    assert_problem(buyer.post("/v1/orders", json={"offer_id": 999999},
                              headers={"Idempotency-Key": "k2"}), 404, "unknown-offer")
    assert_problem(buyer.post("/v1/orders", json={"offer_id": offer["offer_id"],
                                                  "device_jkt": Device().jkt},
                              headers={"Idempotency-Key": "k3"}), 404, "unknown-device")
    for body in ({"offer_id": "1"}, {"offer_id": offer["offer_id"], "device_jkt": SQL_META},
                 {"offer_id": offer["offer_id"], "coupon": "x"}, {}):
        assert_problem(buyer.post("/v1/orders", json=body, headers={"Idempotency-Key": "k4"}),
                       400, "invalid-request")
    no_device, _, _ = shop.new_buyer(points=1000, device=False)
    assert_problem(no_device.post("/v1/orders", json={"offer_id": offer["offer_id"]},
                                  headers={"Idempotency-Key": "k5"}), 400, "invalid-request")
    assert_problem(shop.public().post("/v1/orders", json={"offer_id": offer["offer_id"]},
                                      headers={"Idempotency-Key": "k6"}), 401, "token-required")
    assert shop.balance(buyer) == 1100
    assert shop.query("SELECT COUNT(*) FROM orders") == [("0",)]


def test_order_refusals_after_the_one_query_finds_nothing(env):
    """A new order is checked by one query (offer, device, balance); when it
    finds nothing, the refusal must still name what was wrong."""
    shop, cat, offer = shop_with_offer(env)
    buyer, dev, email = shop.new_buyer(points=1000)
    # Two devices and none named: which one is meant?
    second = Device()
    buyer.json("POST", "/v1/devices", {"name": "second", "jwk": json.loads(
        second.key.export_public())}, expect=201)
    doc = assert_problem(buyer.post("/v1/orders", json={"offer_id": offer["offer_id"]},
                                    headers={"Idempotency-Key": "two"}), 400, "invalid-request")
    assert "several devices" in doc["detail"]
    # Naming one of them works, and an own device is no gift.
    order = shop.order(buyer, offer["offer_id"], device_jkt=second.jkt)
    assert order["gift"] is False and order["device_jkt"] == second.jkt
    # An offer not on sale yet, and a work no longer sold.
    now = int(time.time())
    later = shop.offer(cat.work_id, 300, valid_from=now + 3600, valid_until=now + 7200)
    doc = assert_problem(buyer.post("/v1/orders", json={"offer_id": later["offer_id"],
                                                        "device_jkt": dev.jkt},
                                    headers={"Idempotency-Key": "later"}), 404, "unknown-offer")
    assert str(later["offer_id"]) in doc["detail"]
    shop.query("UPDATE catalog_works SET available = 0 WHERE work_id = '%s'" % cat.work_id)
    assert_problem(buyer.post("/v1/orders", json={"offer_id": offer["offer_id"],
                                                  "device_jkt": dev.jkt},
                              headers={"Idempotency-Key": "gone"}), 404, "unknown-offer")
    shop.query("UPDATE catalog_works SET available = 1 WHERE work_id = '%s'" % cat.work_id)
    assert shop.balance(buyer) == 750
    # Too few points: the detail gives the price and the balance.
    shop.query("UPDATE accounts SET balance = 100 WHERE email = '%s'" % email)
    doc = assert_problem(buyer.post("/v1/orders", json={"offer_id": offer["offer_id"],
                                                        "device_jkt": dev.jkt},
                                    headers={"Idempotency-Key": "poor"}), 402,
                         "insufficient-funds")
    assert "250 points" in doc["detail"] and "balance is 100" in doc["detail"]
    # The key of the completed order, for another device: reused, even
    # though the balance no longer covers the offer.
    assert_problem(buyer.post("/v1/orders", json={"offer_id": offer["offer_id"],
                                                  "device_jkt": dev.jkt},
                              headers={"Idempotency-Key": order_key(shop, order)}), 409,
                   "idempotency-key-reused")
    # Its repeat still answers the completed order.
    again = buyer.post("/v1/orders", json={"offer_id": offer["offer_id"],
                                           "device_jkt": second.jkt},
                       headers={"Idempotency-Key": order_key(shop, order)})
    assert again.status_code == 200 and again.json()["order_id"] == order["order_id"]
    assert shop.query("SELECT COUNT(*) FROM orders") == [("1",)]


def order_key(shop, order):
    (key,), = shop.query("SELECT idempotency_key FROM orders WHERE order_id = '%s'"
                         % order["order_id"])
    return key


def test_pending_order_the_balance_no_longer_covers_fails(env):
    """The debit is one statement that moves the order and the balance
    together; when it changes nothing because the balance fell short since
    the order was created, the order fails without a debit."""
    shop, cat, offer = shop_with_offer(env)
    buyer, dev, email = shop.new_buyer(points=1000)
    key = "pending-" + uuid.uuid4().hex[:8]
    req = hashlib.sha256(("%d\n" % offer["offer_id"]).encode()).hexdigest()
    (account_id,), = shop.query("SELECT account_id FROM accounts WHERE email = '%s'" % email)
    now = int(time.time())
    shop.env.db.execute(
        "INSERT INTO orders (order_id, account_id, idempotency_key, request_sha256, state, "
        "offer_id, work_id, license_type, duration, price, device_jkt, gift, created_at, "
        "updated_at) SELECT 'p%s', %s, '%s', UNHEX('%s'), 'pending', offer_id, work_id, "
        "'purchase', 0, price, '%s', 0, %d, %d FROM offers WHERE offer_id = %d;"
        "UPDATE accounts SET balance = 100 WHERE account_id = %s;"
        "UPDATE wallet_journal SET balance_after = 100, amount = 100 WHERE account_id = %s"
        % (uuid.uuid4().hex[:25], account_id, key, req, dev.jkt, now, now, offer["offer_id"],
           account_id, account_id), shop.db.name)
    doc = shop.order(buyer, offer["offer_id"], key=key, expect=402)
    assert doc["type"].endswith("/insufficient-funds") and "no longer covers" in doc["detail"]
    assert shop.balance(buyer) == 100 and journal_consistent(shop, email) == 100
    assert shop.query("SELECT state FROM orders WHERE idempotency_key = '%s'" % key) == \
        [("failed",)]
    # The unpaid reservation stays unpaid.
    assert shop.ks.query("SELECT COUNT(*) FROM payments") == [("0",)]


def test_key_server_refuses_the_sale(env):
    """The contract ended after the sync: the reservation is refused, the
    order fails without a debit, and a repeat answers the same."""
    shop, cat, offer = shop_with_offer(env)
    buyer, _, email = shop.new_buyer(points=1000)
    shop.ks.env.db.execute("UPDATE contracts SET valid_until = 1", shop.ks.db.name)
    key = uuid.uuid4().hex
    doc = shop.order(buyer, offer["offer_id"], key=key, expect=409)
    assert doc["type"].endswith("/offer-unavailable") and "no-contract" in doc["detail"]
    assert shop.order(buyer, offer["offer_id"], key=key, expect=409)["detail"] == doc["detail"]
    assert shop.balance(buyer) == 1000 and journal_consistent(shop, email) == 1000
    orders = buyer.json("GET", "/v1/orders")["orders"]
    assert orders[0]["state"] == "failed" and "steer_url" not in orders[0]
    assert_problem(buyer.get("/v1/orders/%s/steer" % orders[0]["order_id"]), 409,
                   "order-not-completed")


def _stuck_order(shop, buyer_email, offer, txn, price=250):
    """An order left in 'debited' by a crash between the debit and the
    payment: the row and the debit as the state machine writes them."""
    key = "crash-" + uuid.uuid4().hex[:8]
    order_id = "c" + uuid.uuid4().hex[:25]
    req = hashlib.sha256(("%d\n" % offer["offer_id"]).encode()).hexdigest()
    (account_id, balance), = shop.query(
        "SELECT account_id, balance FROM accounts WHERE email = '%s'" % buyer_email)
    (jkt,), = shop.query("SELECT jkt FROM devices WHERE account_id = %s" % account_id)
    now = int(time.time()) - 120
    shop.env.db.execute(
        "INSERT INTO orders (order_id, account_id, idempotency_key, request_sha256, state, "
        "offer_id, work_id, license_type, duration, price, device_jkt, gift, txn, voucher, "
        "wholesale_price, currency, created_at, updated_at) SELECT '%s', %s, '%s', UNHEX('%s'), "
        "'debited', offer_id, work_id, 'purchase', 0, %d, '%s', 0, '%s', 'a.b.c', 199, 'EUR', "
        "%d, %d FROM offers WHERE offer_id = %d;"
        "UPDATE accounts SET balance = balance - %d WHERE account_id = %s;"
        "INSERT INTO wallet_journal (account_id, kind, amount, balance_after, order_id, "
        "created_at) VALUES (%s, 'order', -%d, %d, '%s', %d)"
        % (order_id, account_id, key, req, price, jkt, txn, now, now, offer["offer_id"], price,
           account_id, account_id, price, int(balance) - price, order_id, now), shop.db.name)
    return key, order_id, jkt


def test_payment_refused_after_debit_is_refunded(env):
    shop, cat, offer = shop_with_offer(env)
    buyer, _, email = shop.new_buyer(points=1000)
    key, order_id, _ = _stuck_order(shop, email, offer, "txn-unknowntotheserver")
    assert shop.balance(buyer) == 750
    doc = shop.order(buyer, offer["offer_id"], key=key, expect=409)
    assert doc["type"].endswith("/order-failed") and "refunded" in doc["detail"]
    assert shop.balance(buyer) == 1000 and journal_consistent(shop, email) == 1000
    assert shop.query("SELECT state FROM orders WHERE order_id = '%s'" % order_id) == \
        [("refunded",)]
    # A repeat neither refunds again nor pays.
    shop.order(buyer, offer["offer_id"], key=key, expect=409)
    assert shop.balance(buyer) == 1000


def test_payment_answer_not_a_definite_refusal_is_not_refunded(env):
    """Only the key server's definite refusals of the payment (§2.5:
    unknown-transaction, already-paid, transaction-revoked,
    reservation-expired, amount-mismatch) refund. Any other 4xx (here 403
    not-registered: the key server does not know the retailer's
    certificate for a while) leaves the order debited for the retry; once
    the key server answers a definite refusal it is refunded, once."""
    shop, cat, offer = shop_with_offer(env)
    buyer, _, email = shop.new_buyer(points=1000)
    key, order_id, _ = _stuck_order(shop, email, offer, "txn-unknowntotheserver")
    ksdb = shop.ks.db.name
    (dn_hex,), = shop.ks.query("SELECT HEX(dn_sha256) FROM retailers WHERE retailer_id = "
                               "'retailer1'")
    env.db.execute("UPDATE retailers SET dn_sha256 = UNHEX(REPEAT('00', 32)) "
                   "WHERE retailer_id = 'retailer1'", ksdb)
    try:
        for _ in range(2):
            r = buyer.post("/v1/orders", json={"offer_id": offer["offer_id"]},
                           headers={"Idempotency-Key": key})
            assert_problem(r, 502, "keyserver-error")
            assert "not-registered" in r.json()["detail"]
            assert shop.query("SELECT state FROM orders WHERE order_id = '%s'" % order_id) == \
                [("debited",)]
            assert shop.balance(buyer) == 750 and journal_consistent(shop, email) == 750
    finally:
        env.db.execute("UPDATE retailers SET dn_sha256 = UNHEX('%s') "
                       "WHERE retailer_id = 'retailer1'" % dn_hex, ksdb)
    doc = shop.order(buyer, offer["offer_id"], key=key, expect=409)
    assert doc["type"].endswith("/order-failed") and "refunded" in doc["detail"]
    assert shop.balance(buyer) == 1000 and journal_consistent(shop, email) == 1000


def test_unknown_payment_outcome_is_retried(env):
    """Reserved and debited, payment outcome unknown (crash): a repeat
    records the payment under the same reference and completes."""
    shop, cat, offer = shop_with_offer(env)
    buyer, dev, email = shop.new_buyer(points=1000)
    # The reservation the crashed request had made.
    key = "crash-" + uuid.uuid4().hex[:8]
    order_id = "c" + uuid.uuid4().hex[:25]
    res = shop.ks.client("retailer1").post_json("/v1/reservations", {
        "reservation_ref": order_id, "work_id": cat.work_id, "license": {"type": "purchase"},
        "jkt": dev.jkt}, expect=201)
    req = hashlib.sha256(("%d\n" % offer["offer_id"]).encode()).hexdigest()
    (account_id,), = shop.query("SELECT account_id FROM accounts WHERE email = '%s'" % email)
    now = int(time.time())
    shop.env.db.execute(
        "INSERT INTO orders (order_id, account_id, idempotency_key, request_sha256, state, "
        "offer_id, work_id, license_type, duration, price, device_jkt, gift, txn, voucher, "
        "wholesale_price, currency, created_at, updated_at) VALUES ('%s', %s, '%s', UNHEX('%s'), "
        "'debited', %d, '%s', 'purchase', 0, 250, '%s', 0, '%s', '%s', %d, 'EUR', %d, %d);"
        "UPDATE accounts SET balance = balance - 250 WHERE account_id = %s;"
        "INSERT INTO wallet_journal (account_id, kind, amount, balance_after, order_id, "
        "created_at) VALUES (%s, 'order', -250, 750, '%s', %d)"
        % (order_id, account_id, key, req, offer["offer_id"], cat.work_id, dev.jkt, res["txn"],
           res["voucher"], res["price"], now, now, account_id, account_id, order_id, now),
        shop.db.name)
    done = shop.order(buyer, offer["offer_id"], key=key, expect=201)
    assert done["order_id"] == order_id and done["txn"] == res["txn"]
    assert shop.balance(buyer) == 750 and journal_consistent(shop, email) == 750
    r = request_license(shop.ks, dev, steer_json(done["steer"])["voucher"])
    assert r.status_code == 200, r.text


def test_background_resumer_refunds_stuck_orders(env):
    shop = Retail(env, extra="RetailOrderResumeInterval 1")
    env.httpd.start()
    cat = shop.catalog()
    shop.sync()
    offer = shop.offer(cat.work_id, 250)
    buyer, _, email = shop.new_buyer(points=1000)
    _, order_id, _ = _stuck_order(shop, email, offer, "txn-neverreserved")
    deadline = time.time() + 20
    while time.time() < deadline and shop.query(
            "SELECT state FROM orders WHERE order_id = '%s'" % order_id) != [("refunded",)]:
        time.sleep(0.3)
    assert shop.query("SELECT state FROM orders WHERE order_id = '%s'" % order_id) == \
        [("refunded",)]
    assert shop.balance(buyer) == 1000 and journal_consistent(shop, email) == 1000
    env.allow_log("SM03004")


def test_key_server_unreachable(env):
    ks_url_dead = "https://127.0.0.1:%d/ks" % harness.free_port()
    shop = Retail(env, extra="RetailKeyServerURL %s" % ks_url_dead)
    env.httpd.start()
    buyer, _, email = shop.new_buyer(points=1000)
    env.expect_log("SM03005")
    r = shop.admin().post("/v1/admin/catalog/sync")
    assert_problem(r, 503, "service-unavailable")
    assert r.headers.get("Retry-After")
    assert shop.balance(buyer) == 1000


def test_hundred_parallel_orders_on_ten_orders_worth_of_points(env):
    shop, cat, offer = shop_with_offer(env, price=250)
    buyer, dev, email = shop.new_buyer(points=2500)

    def one(i):
        c = shop.consumer(buyer.token)
        r = c.post("/v1/orders", json={"offer_id": offer["offer_id"]},
                   headers={"Idempotency-Key": "par-%03d" % i}, timeout=60)
        return r.status_code, r.json()

    with concurrent.futures.ThreadPoolExecutor(max_workers=100) as pool:
        results = list(pool.map(one, range(100)))
    statuses = sorted(s for s, _ in results)
    assert statuses.count(201) == 10, statuses
    assert statuses.count(402) == 90, statuses
    assert all(doc["type"].endswith("/insufficient-funds") for s, doc in results if s == 402)
    assert shop.balance(buyer) == 0
    assert journal_consistent(shop, email) == 0
    assert shop.query("SELECT COUNT(*) FROM wallet_journal WHERE kind = 'order'") == [("10",)]
    assert shop.query("SELECT COUNT(*) FROM orders WHERE state = 'completed'") == [("10",)]
    assert shop.ks.query("SELECT COUNT(*) FROM payments") == \
        [("10",)]


def test_key_server_failing_mid_order_then_resumed(env):
    """The key server fails (its payments table is gone: 500) after the
    reservation and the debit: the order stays debited (503, retry),
    nothing is refunded or charged twice; once the key server works again
    the same Idempotency-Key completes it. Then the same for a failure of
    the reservation itself (the order stays pending, nothing debited)."""
    shop, cat, offer = shop_with_offer(env)
    buyer, dev, email = shop.new_buyer(points=1000)
    env.allow_log("SM00012", "SM01002", "SM03005")
    ksdb = shop.ks.db.name
    env.db.execute("RENAME TABLE payments TO payments_away", ksdb)
    try:
        r = buyer.post("/v1/orders", json={"offer_id": offer["offer_id"]},
                       headers={"Idempotency-Key": "mid-1"})
        assert_problem(r, 503, "service-unavailable")
        assert shop.query("SELECT state FROM orders") == [("debited",)]
        assert shop.balance(buyer) == 750
    finally:
        env.db.execute("RENAME TABLE payments_away TO payments", ksdb)
    done = shop.order(buyer, offer["offer_id"], key="mid-1", expect=201)
    assert done["state"] == "completed" and shop.balance(buyer) == 750
    assert shop.ks.query("SELECT COUNT(*) FROM payments") == [("1",)]
    assert journal_consistent(shop, email) == 750

    env.db.execute("RENAME TABLE transactions TO transactions_away", ksdb)
    try:
        r = buyer.post("/v1/orders", json={"offer_id": offer["offer_id"]},
                       headers={"Idempotency-Key": "mid-2"})
        assert_problem(r, 503, "service-unavailable")
        assert shop.balance(buyer) == 750
    finally:
        env.db.execute("RENAME TABLE transactions_away TO transactions", ksdb)
    done = shop.order(buyer, offer["offer_id"], key="mid-2", expect=201)
    assert shop.balance(buyer) == 500 and journal_consistent(shop, email) == 500
    assert shop.ks.query("SELECT COUNT(*) FROM payments") == [("2",)]


def test_free_offer(env):
    """A contract with wholesale price 0 and an offer for 0 points: the
    order completes with an empty wallet and journals a zero debit."""
    shop, cat, offer = shop_with_offer(env, price=0, wholesale=0)
    buyer, dev, email = shop.new_buyer()
    order = shop.order(buyer, offer["offer_id"])
    assert order["state"] == "completed" and order["price"] == 0
    assert [(e["kind"], e["amount"]) for e in buyer.json("GET", "/v1/wallet")["entries"]] == \
        [("order", 0)]
    r = request_license(shop.ks, dev, steer_json(order["steer"])["voucher"])
    assert r.status_code == 200, r.text
