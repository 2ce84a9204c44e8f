"""100 concurrent identical requests for one transaction give exactly the
allowed ledger effect: one payment, one license per proof, and never more
licenses than the activation limit."""

import uuid
from concurrent.futures import ThreadPoolExecutor

import harness
from keyserver_setup import Catalog, Device, KeyServer

N = 100


def _parallel(env, role, send):
    """Runs send(client) N times at once, each with its own connection."""
    credential = env.pki.client(role) if role else None

    def one(_):
        client = harness.Client(env.httpd.https_url, env.pki.ca_cert, credential, timeout=60)
        try:
            return send(client)
        finally:
            client.close()

    with ThreadPoolExecutor(max_workers=N) as pool:
        return list(pool.map(one, range(N)))


def _ledger_types(ks, txn):
    ks.ledger_settled()
    return [r[0] for r in ks.query("SELECT type FROM ledger WHERE txn = '%s' ORDER BY seq" % txn)]


def test_concurrent_identical_payments(env):
    ks = KeyServer(env)
    env.httpd.start()
    cat = Catalog(ks)
    reservation = cat.reserve(Device())
    body = {"txn": reservation["txn"], "payment_ref": "pay-" + uuid.uuid4().hex,
            "amount": reservation["price"], "currency": reservation["currency"]}
    responses = _parallel(env, "retailer1", lambda c: c.post("/v1/payments", json=body))
    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(201) == 1 and statuses.count(200) == N - 1, statuses
    tokens = {r.json()["payment_token"] for r in responses}
    assert len(tokens) == 1           # every repeat gets the same acknowledgement
    assert ks.query("SELECT COUNT(*) FROM payments") == [("1",)]
    assert _ledger_types(ks, reservation["txn"]) == ["reservation", "payment"]


def test_concurrent_identical_license_requests(env):
    ks = KeyServer(env)
    env.httpd.start()
    cat = Catalog(ks)
    device = Device()
    reservation = cat.sold(device)
    proof = device.proof(ks.license_url)
    responses = _parallel(env, None, lambda c: c.post(
        "/v1/license", json={"voucher": reservation["voucher"]}, headers={"DPoP": proof}))
    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(200) == 1 and statuses.count(401) == N - 1, statuses
    assert all(r.json()["type"].endswith("proof-replayed")
               for r in responses if r.status_code == 401)
    assert ks.query("SELECT activations FROM transactions WHERE txn = '%s'"
                    % reservation["txn"]) == [("1",)]
    assert _ledger_types(ks, reservation["txn"]) == ["reservation", "payment", "license"]


def test_concurrent_distinct_proofs_respect_the_activation_limit(env):
    ks = KeyServer(env)               # limit 5
    env.httpd.start()
    cat = Catalog(ks)
    device = Device()
    reservation = cat.sold(device)
    proofs = [device.proof(ks.license_url) for _ in range(N)]
    it = iter(proofs)
    import threading
    lock = threading.Lock()

    def send(client):
        with lock:
            proof = next(it)
        return client.post("/v1/license", json={"voucher": reservation["voucher"]},
                           headers={"DPoP": proof})

    responses = _parallel(env, None, send)
    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(200) == 5 and statuses.count(403) == N - 5, statuses
    assert sorted(r.json()["activation"] for r in responses if r.status_code == 200) == [
        1, 2, 3, 4, 5]
    assert _ledger_types(ks, reservation["txn"]).count("license") == 5
    seqs = [int(r[0]) for r in ks.query("SELECT seq FROM ledger ORDER BY seq")]
    assert seqs == list(range(1, len(seqs) + 1))      # gapless


def test_concurrent_sales_and_licenses_chain_in_causal_order(env, sm_workspace):
    """Sale events and licenses are queued ledger entries (schema version
    5): under concurrent sales each event is chained exactly once, gapless,
    and every transaction's entries in the order they happened
    (reservation, payment, then its licenses); the export verifies."""
    from keyserver_setup import request_license, run_ledger_verify
    ks = KeyServer(env)
    env.httpd.start()
    cat = Catalog(ks)
    sales = 30
    retailer = env.pki.client("retailer1")

    def sale(_):
        client = harness.Client(env.httpd.https_url, env.pki.ca_cert, retailer, timeout=60)
        device_client = harness.Client(env.httpd.https_url, env.pki.ca_cert, None, timeout=60)
        try:
            device = Device()
            reservation = cat.reserve(device, client=ks_client(client))
            cat.pay(reservation, client=ks_client(client))
            for _ in range(2):
                r = request_license(ks, device, reservation["voucher"],
                                    client=ks_client(device_client))
                assert r.status_code == 200, r.text
            return reservation["txn"]
        finally:
            client.close()
            device_client.close()

    def ks_client(client):
        return type(ks.client())(client, ks.location)

    # Ten sales at a time: two kept-alive connections each stay within one
    # httpd child's threads (the event MPM closes kept-alive connections
    # of a child over its limit, which a client sees as a dropped POST).
    with ThreadPoolExecutor(max_workers=10) as pool:
        txns = list(pool.map(sale, range(sales)))
    ks.ledger_settled()
    rows = ks.query("SELECT seq, type, txn FROM ledger ORDER BY seq")
    assert [int(r[0]) for r in rows] == list(range(1, len(rows) + 1))
    for txn in txns:
        assert [t for _, t, x in rows if x == txn] == [
            "reservation", "payment", "license", "license"], txn
    types = [t for _, t, _ in rows]
    assert types.count("reservation") == types.count("payment") == sales
    assert types.count("license") == 2 * sales
    assert ks.query("SELECT COUNT(*) FROM ledger_queue WHERE chained = 0") == [("0",)]
    export = ks.client("admin").get("/v1/ledger/export")
    code, out, err = run_ledger_verify(ks, export.text, sm_workspace.new_dir("ledger"))
    assert code == 0, (out, err)


def test_queued_sale_entries_survive_an_httpd_restart(env, sm_workspace):
    """Sale events queued while no sealer can chain them (a session holds
    the ledger head) stay queued across an httpd stop; the restarted
    children chain each exactly once, in order, and the export verifies."""
    from keyserver_setup import run_ledger_verify
    ks = KeyServer(env)
    env.httpd.start()
    cat = Catalog(ks)
    ks.ledger_settled()
    chained_before = int(ks.query("SELECT COUNT(*) FROM ledger")[0][0])
    hold = env.db.open_session(ks.db.name)
    try:
        hold.stdin.write("BEGIN; SELECT seq FROM ledger_head WHERE id = 1 LOCK IN SHARE MODE;\n")
        hold.stdin.flush()
        assert hold.stdout.readline().strip().isdigit()
        sales = [cat.sold(Device()) for _ in range(5)]
        assert ks.query("SELECT COUNT(*) FROM ledger_queue WHERE chained = 0") == [("10",)]
        env.httpd.stop()
        hold.stdin.write("COMMIT;\n")
        hold.stdin.flush()
    finally:
        hold.stdin.close()
        hold.wait(timeout=30)
    assert int(ks.query("SELECT COUNT(*) FROM ledger")[0][0]) == chained_before
    env.httpd.start()
    ks.ledger_settled()
    rows = ks.query("SELECT type, txn FROM ledger ORDER BY seq")
    for sale in sales:
        assert [t for t, x in rows if x == sale["txn"]] == ["reservation", "payment"]
    assert len(rows) == chained_before + 10
    export = ks.client("admin").get("/v1/ledger/export")
    code, out, err = run_ledger_verify(ks, export.text, sm_workspace.new_dir("ledger"))
    assert code == 0, (out, err)


def test_every_export_ends_with_a_checkpoint_of_its_last_entry(env, sm_workspace):
    """PROTOCOL.md §2.9: an export ends with a checkpoint of its head, also
    while sales are being chained: an export taken between its checkpoint
    and its snapshot must not carry entries no checkpoint covers."""
    import json
    import threading
    from keyserver_setup import run_ledger_verify
    # One pooled connection: after its checkpoint the export queues for the
    # connection behind the sellers and the sealer, which chains meanwhile.
    ks = KeyServer(env, extra="KeyServerDBPoolSize 1")
    env.httpd.start()
    cat = Catalog(ks)
    stop = threading.Event()
    sold = []

    def sell():
        client = harness.Client(env.httpd.https_url, env.pki.ca_cert,
                                env.pki.client("retailer1"), timeout=60)
        shop = type(ks.client())(client, ks.location)
        try:
            while not stop.is_set():
                sold.append(cat.reserve(Device(), client=shop)["txn"])
        finally:
            client.close()

    sellers = [threading.Thread(target=sell) for _ in range(4)]
    for t in sellers:
        t.start()
    try:
        auditor = ks.client("auditor")
        ends = []
        for i in range(25):
            export = auditor.get("/v1/ledger/export")
            assert export.status_code == 200
            lines = [json.loads(line) for line in export.text.splitlines()]
            assert lines[-1]["kind"] == "end" and lines[-2]["kind"] == "checkpoint", \
                "export %d ends with %s, not a checkpoint of its head" % (
                    i, [line["kind"] for line in lines[-3:]])
            ends.append(lines[-1]["last_seq"])
    finally:
        stop.set()
        for t in sellers:
            t.join()
    assert ends == sorted(ends) and ends[-1] > ends[0] and len(sold) > 25
    code, out, err = run_ledger_verify(ks, export.text, sm_workspace.new_dir("ledger"))
    assert code == 0, (out, err)
