"""mod_keyserver end to end: registration, works, contracts, inventory,
reservation, payment, license, delivery-complete, revocation and the ledger,
seen by stock JOSE code (jwcrypto) on the other side."""

import json
import os
import shutil
import time

from keyserver_setup import (MEDIA_STORE_ID, Catalog, Device, KeyServer, assert_problem,
                             request_license, run_ledger_verify, verify_token)


def test_public_keys(env):
    ks = KeyServer(env)
    env.httpd.start()
    client = env.client()
    r = client.get("/v1/jwks")
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("application/json")
    jwks = r.json()
    kids = sorted(k["kid"] for k in jwks["keys"])
    assert kids == ["ks-sig-0", "ks-sig-1"]          # both, for rotation
    assert all("d" not in k for k in jwks["keys"])
    enc = client.get_json("/v1/encryption-key")
    assert enc["kid"] == "ks-enc-1" and "d" not in enc
    assert enc["x"] == json.loads(ks.encryption_key.export_public())["x"]
    assert client.head("/v1/jwks").status_code == 200


def test_sale_and_license_end_to_end(env, sm_workspace):
    ks = KeyServer(env)
    env.httpd.start()
    cat = Catalog(ks)

    # The owner sees its work, without any key material.
    work = cat.owner.get_json("/v1/works/" + cat.work_id)
    assert work["title"].startswith("Song of") and work["lyrics"] == "la la\nla"
    assert "wrapped_key" not in work and "media_key" not in json.dumps(work)
    stored = ks.query("SELECT LENGTH(wrapped_key), kek_version FROM works WHERE work_id = '%s'"
                      % cat.work_id)
    assert stored == [("61", "1")]

    # Inventory: the retailer's works with wholesale prices.
    inv = cat.retailer.get_json("/v1/inventory")
    entry = next(w for w in inv["works"] if w["work_id"] == cat.work_id)
    assert entry["currency"] == "EUR" and entry["title"] == work["title"]
    assert {"type": "purchase", "price": 199} in entry["licenses"]
    assert {"type": "rental", "duration": 172800, "price": 99} in entry["licenses"]
    # The other retailer has no contract for it.
    inv2 = ks.client("retailer2").get_json("/v1/inventory")
    assert all(w["work_id"] != cat.work_id for w in inv2["works"])

    device = Device()
    reservation = cat.reserve(device)
    assert reservation["price"] == 199 and reservation["currency"] == "EUR"
    jwks = ks.jwks()
    voucher = verify_token(jwks, reservation["voucher"], "secmedia-voucher+jwt")
    assert voucher["txn"] == reservation["txn"] and voucher["jkt"] == device.jkt
    assert voucher["work_id"] == cat.work_id and voucher["retailer"] == "retailer1"
    assert voucher["license"] == {"type": "purchase"}
    assert voucher["iss"] == ks.issuer and voucher["aud"] == ks.issuer

    # Not paid yet: 402.
    r = request_license(ks, device, reservation["voucher"])
    assert_problem(r, 402, "not-paid")

    payment = cat.pay(reservation)
    ack = verify_token(jwks, payment["payment_token"], "secmedia-payment+jwt")
    assert ack["aud"] == "retailer1" and ack["amount"] == 199 and ack["txn"] == reservation["txn"]

    r = request_license(ks, device, reservation["voucher"])
    assert r.status_code == 200, r.text
    lic = r.json()
    assert device.open_key(lic["key_jwe"]) == cat.media_key
    assert lic["activation"] == 1 and lic["activation_limit"] == 5
    delivery = verify_token(jwks, lic["delivery_token"], "secmedia-delivery+jwt")
    assert delivery["aud"] == MEDIA_STORE_ID and delivery["work_id"] == cat.work_id
    assert delivery["txn"] == reservation["txn"] and delivery["jkt"] == device.jkt
    assert delivery["iss"] == ks.issuer and 0 < delivery["exp"] - delivery["iat"] <= 3600
    assert set(delivery) == {"iss", "aud", "iat", "exp", "jti", "work_id", "txn", "jkt"}

    # The media store reports the delivery; repeats are harmless.
    ms = ks.client("mediastore")
    body = {"txn": reservation["txn"], "work_id": cat.work_id, "delivered_at": int(time.time())}
    for _ in range(2):
        r = ms.post("/v1/delivery-complete", json=body)
        assert r.status_code == 204, r.text
    assert ks.query("SELECT COUNT(*) FROM deliveries") == [("1",)]

    # A refund revokes the purchase: no more licenses.
    r = cat.retailer.post("/v1/revocations", json={
        "kind": "transaction", "subject": reservation["txn"], "reason": "refund"})
    assert r.status_code == 201, r.text
    assert_problem(request_license(ks, device, reservation["voucher"]), 403,
                   "transaction-revoked")

    # Every event is in the ledger in the order it happened (the queued
    # license entry was chained before the delivery), and the export
    # verifies.
    ks.ledger_settled()
    types = [row[0] for row in ks.query("SELECT type FROM ledger ORDER BY seq")]
    assert types == ["work-registered", "contract", "reservation", "payment", "license",
                     "delivery", "revocation"]
    export = ks.client("admin").get("/v1/ledger/export")
    assert export.status_code == 200 and export.headers["Content-Type"].startswith(
        "application/jsonl")
    code, out, err = run_ledger_verify(ks, export.text, sm_workspace.new_dir("ledger"))
    assert code == 0, (out, err)
    assert "ledger ok: 7 entries" in out and "checkpoints: 1 matched" in out


def test_rental_license_reports_its_end(env):
    ks = KeyServer(env)
    env.httpd.start()
    cat = Catalog(ks)
    device = Device()
    reservation = cat.sold(device, license={"type": "rental", "duration": 172800})
    assert reservation["price"] == 99
    lic = request_license(ks, device, reservation["voucher"]).json()
    assert lic["license"] == {"type": "rental", "duration": 172800}
    assert abs(lic["rental_ends_at"] - (time.time() + 172800)) < 30
    # The period started with the first license and does not move.
    lic2 = request_license(ks, device, reservation["voucher"]).json()
    assert lic2["rental_ends_at"] == lic["rental_ends_at"] and lic2["activation"] == 2
    # Once over, refused.
    ks.query("UPDATE transactions SET rental_started_at = rental_started_at - 172800")
    assert_problem(request_license(ks, device, reservation["voucher"]), 403, "rental-expired")


def test_checkpoints(env, sm_workspace):
    ks = KeyServer(env, checkpoint_every=3)
    env.httpd.start()
    cat = Catalog(ks)                       # 2 entries
    device = Device()
    cat.sold(device)                        # 2 more, queued: a checkpoint at 3
    ks.ledger_settled()
    assert ks.query("SELECT seq FROM ledger_checkpoints") == [("3",)]
    admin = ks.client("admin")
    r = admin.post_json("/v1/ledger/checkpoints", {}, expect=201)
    assert r["seq"] == 4
    claims = verify_token(ks.jwks(), r["token"], "secmedia-checkpoint+jwt")
    assert claims["seq"] == 4 and claims["head"] == r["head"]
    again = admin.post_json("/v1/ledger/checkpoints", {}, expect=200)
    assert again["token"] == r["token"]
    latest = cat.retailer.get_json("/v1/ledger/checkpoints/latest")
    assert latest["seq"] == 4
    assert_problem(ks.client().get("/v1/ledger/checkpoints/latest"), 403,
                   "client-certificate-required")
    # Only admins and auditors export.
    assert_problem(cat.retailer.get("/v1/ledger/export"), 403,
                   "client-certificate-not-authorized")
    export = ks.client("auditor").get("/v1/ledger/export").text
    code, out, err = run_ledger_verify(ks, export, sm_workspace.new_dir("ledger"))
    assert code == 0, (out, err)
    assert "checkpoints: 2 matched, the last at seq 4" in out


def test_queued_license_entries(env, sm_workspace):
    """A license's row is its queued ledger entry, chained by the
    children's sealers: gapless, in order, checkpoints at their interval
    also inside a batch, and an export seals what is still queued."""
    ks = KeyServer(env, checkpoint_every=5, activation_limit=100)
    env.httpd.start()
    cat = Catalog(ks)                       # 2 entries
    device = Device()
    reservation = cat.sold(device)          # 2 more
    for _ in range(12):
        assert request_license(ks, device, reservation["voucher"]).status_code == 200
    ks.ledger_settled()
    rows = ks.query("SELECT seq, type FROM ledger ORDER BY seq")
    assert [int(r[0]) for r in rows] == list(range(1, 17))
    assert [r[1] for r in rows[4:]] == ["license"] * 12
    activations = [json.loads(r[0])["activation"] for r in ks.query(
        "SELECT data FROM ledger WHERE type = 'license' ORDER BY seq")]
    assert activations == list(range(1, 13))
    assert ks.query("SELECT seq FROM ledger_checkpoints ORDER BY seq") == [
        ("5",), ("10",), ("15",)]
    assert ks.query("SELECT seq, hash = (SELECT hash FROM ledger WHERE seq = 16) "
                    "FROM ledger_head") == [("16", "1")]
    # A license row queued right before an export is in it, whether a
    # sealer or the export's own sealing chains it.
    ks.query("INSERT INTO licenses (txn, jkt, issued_at, proof_jti, delivery_jti, work_id, "
             "activation) VALUES ('%s', '%s', UNIX_TIMESTAMP(), 'proof-jti-0000000013', "
             "'delivery-jti-00000013', '%s', 13)" % (reservation["txn"], device.jkt,
                                                     cat.work_id))
    export = ks.client("admin").get("/v1/ledger/export")
    assert export.status_code == 200
    code, out, err = run_ledger_verify(ks, export.text, sm_workspace.new_dir("ledger"))
    assert code == 0, (out, err)
    assert "ledger ok: 17 entries" in out, out
    assert ks.query("SELECT COUNT(*) FROM licenses WHERE chained = 0") == [("0",)]
    last = json.loads(ks.query("SELECT data FROM ledger WHERE seq = 17")[0][0])
    assert last == {"txn": reservation["txn"], "work_id": cat.work_id, "jkt": device.jkt,
                    "activation": 13}
    # The head row follows the last entry, however it was inserted (one by
    # one in appends, in batches by sealers): trigger ledger_head_follows.
    assert ks.query("SELECT seq, HEX(hash) FROM ledger_head") == \
        ks.query("SELECT seq, HEX(hash) FROM ledger ORDER BY seq DESC LIMIT 1")


def _one_licensed_sale(env, *expected_log_ids):
    """A started key server with one paid, licensed sale whose ledger
    entries are all chained: (ks, cat, device, reservation)."""
    ks = KeyServer(env)
    env.httpd.start()
    if expected_log_ids:
        env.expect_log(*expected_log_ids)
    cat = Catalog(ks)
    device = Device()
    reservation = cat.sold(device)
    assert request_license(ks, device, reservation["voucher"]).status_code == 200
    ks.ledger_settled()
    return ks, cat, device, reservation


def test_unreadable_queued_rows_do_not_stop_the_ledger(env, sm_workspace):
    """Queued rows a sealer cannot read (a license row an older module
    wrote without work and activation, a sale event whose data is not
    JSON, one whose type breaks the rules) are chained as unreadable-entry
    entries naming their row, and logged (SM01010): sealing, revocations
    (chained under the head lock after the queue) and exports go on, the
    rows stay for inspection. Before, the first such row stopped them all."""
    ks, cat, device, reservation = _one_licensed_sale(env, "SM01010")
    txn = reservation["txn"]
    ks.query("INSERT INTO licenses (txn, jkt, issued_at, proof_jti, delivery_jti) VALUES "
             "('%s', '%s', UNIX_TIMESTAMP(), 'legacy-proof-0000001', 'legacy-delivery-01');"
             "INSERT INTO ledger_queue (queue_order, created_at, type, data, txn) VALUES "
             "(NEXT VALUE FOR ledger_queue_order, UNIX_TIMESTAMP(), 'payment', "
             "'{\"amount\": 5', '%s');"
             "INSERT INTO ledger_queue (queue_order, created_at, type, data, txn) VALUES "
             "(NEXT VALUE FOR ledger_queue_order, UNIX_TIMESTAMP(), 'Pay ment', '{}', NULL)"
             % (txn, device.jkt, txn))
    # A revocation is chained under the head lock after everything queued.
    r = ks.client("admin").post("/v1/revocations", json={
        "kind": "device", "subject": device.jkt, "reason": "key reported stolen"})
    assert r.status_code == 201, r.text
    ks.ledger_settled()
    rows = ks.query("SELECT seq, type, data, txn FROM ledger ORDER BY seq")
    assert [int(row[0]) for row in rows] == list(range(1, len(rows) + 1))
    unreadable = [(json.loads(row[2]), row[3]) for row in rows if row[1] == "unreadable-entry"]
    assert [(d["queue"], sorted(d)) for d, _ in unreadable] == [
        ("licenses", ["id", "problem", "queue"]), ("ledger_queue", ["id", "problem", "queue"]),
        ("ledger_queue", ["id", "problem", "queue"])]
    assert all(t == "NULL" or t is None for _, t in unreadable), unreadable
    problems = [d["problem"] for d, _ in unreadable]
    assert "work_id" in problems[0] and "data" in problems[1] and "type" in problems[2], problems
    license_id = ks.query("SELECT id FROM licenses WHERE proof_jti = 'legacy-proof-0000001'")
    assert unreadable[0][0]["id"] == int(license_id[0][0])
    # The revocation came after them, and the rows are kept, marked chained.
    assert rows[-1][1] == "revocation"
    assert ks.query("SELECT COUNT(*) FROM ledger_queue WHERE chained = 1 AND "
                    "(type = 'Pay ment' OR data = '{\"amount\": 5')") == [("2",)]
    log = env.httpd.error_log_text()
    assert log.count("SM01010") >= 3 and "licenses.id=%s" % license_id[0][0] in log
    export = ks.client("admin").get("/v1/ledger/export")
    assert export.status_code == 200
    code, out, err = run_ledger_verify(ks, export.text, sm_workspace.new_dir("ledger"))
    assert code == 0, (out, err)
    first = min(int(row[0]) for row in rows if row[1] == "unreadable-entry")
    assert "unreadable entries: 3, the first at seq %d" % first in out, out


def test_export_carries_damaged_ledger_rows_to_the_verifier(env, sm_workspace):
    """Chained rows changed behind the key server's back (a type the format
    forbids, data that is no longer JSON, rows deleted at the end) are
    exported as stored: the export reaches its end line, and the verifier,
    not the export, names the first bad entry. Before, the first such row
    stopped the export half-way."""
    env.allow_log("SM01003")      # must not happen: asserted below
    ks, cat, device, reservation = _one_licensed_sale(env)
    last = int(ks.query("SELECT MAX(seq) FROM ledger")[0][0])
    assert last >= 5
    workdir = sm_workspace.new_dir("ledger")

    def export_and_verify():
        export = ks.client("admin").get("/v1/ledger/export")
        assert export.status_code == 200
        lines = export.text.splitlines()
        assert json.loads(lines[-1])["kind"] == "end", lines[-1]
        return lines, run_ledger_verify(ks, export.text, workdir)

    ks.query("UPDATE ledger SET data = 'not json' WHERE seq = 4")
    lines, (code, out, err) = export_and_verify()
    assert code == 5 and "first bad entry: seq 4" in err, (code, out, err)
    ks.query("UPDATE ledger SET type = 'Bad Type' WHERE seq = 3")
    lines, (code, out, err) = export_and_verify()
    assert code != 0 and "seq 3" in err, (code, out, err)
    assert any('"type":"Bad Type"' in line for line in lines)
    # The last entries deleted: the end line still names the head.
    ks.query("DELETE FROM ledger WHERE seq >= %d" % (last - 1))
    lines, (code, out, err) = export_and_verify()
    assert json.loads(lines[-1])["last_seq"] >= last and code != 0, (lines[-1], out, err)
    assert "SM01003" not in env.httpd.error_log_text()


def test_sealer_reports_a_missing_ledger_head(env):
    """The sealer skips a head row another transaction holds (that one
    chains the queue); a head row that is gone must not pass for that, or
    nothing would ever be chained and nobody told: SM01007 names it, and
    sealing resumes when the row is back (SM01008)."""
    ks, cat, device, reservation = _one_licensed_sale(env, "SM01007")
    head = ks.query("SELECT seq, HEX(hash) FROM ledger_head")[0]
    ks.query("DELETE FROM ledger_head")
    assert request_license(ks, device, reservation["voucher"]).status_code == 200
    deadline = time.monotonic() + 10
    while "the ledger head row is missing" not in env.httpd.error_log_text():
        assert time.monotonic() < deadline, env.httpd.error_log_text()[-2000:]
        time.sleep(0.05)
    assert ks.query("SELECT COUNT(*) FROM licenses WHERE chained = 0") == [("1",)]
    ks.query("INSERT INTO ledger_head (id, seq, hash) VALUES (1, %s, UNHEX('%s'))" % head)
    ks.ledger_settled()
    assert "SM01008" in env.httpd.error_log_text()
    rows = ks.query("SELECT seq FROM ledger ORDER BY seq")
    assert [int(r[0]) for r in rows] == list(range(1, len(rows) + 1))


def test_append_chains_licenses_committed_while_it_waited(env, sm_workspace):
    """An event's ledger append chains first every license committed before
    it, also one committed while the event's transaction waited, after its
    snapshot was taken (FORMATS.md §7.5): the queue check is a locking
    read. Here a retailer's revocation (which reads the retailer row first)
    waits for the ledger head, which a session holds in share mode (so no
    sealer runs either); meanwhile a license of another sale commits."""
    from concurrent.futures import ThreadPoolExecutor
    ks = KeyServer(env)
    env.httpd.start()
    cat = Catalog(ks)
    device = Device()
    refunded, licensed = cat.sold(device), cat.sold(device)
    hold = env.db.open_session(ks.db.name)
    try:
        hold.stdin.write("BEGIN; SELECT seq FROM ledger_head WHERE id = 1 LOCK IN SHARE MODE;\n")
        hold.stdin.flush()
        assert hold.stdout.readline().strip().isdigit()
        with ThreadPoolExecutor(max_workers=1) as pool:
            revocation = pool.submit(lambda: cat.retailer.post("/v1/revocations", json={
                "kind": "transaction", "subject": refunded["txn"], "reason": "refund"}))
            time.sleep(1.0)
            assert not revocation.done(), revocation.result().text
            r = request_license(ks, device, licensed["voucher"])
            assert r.status_code == 200, r.text
            hold.stdin.write("COMMIT;\n")
            hold.stdin.flush()
            assert revocation.result(timeout=30).status_code == 201
    finally:
        hold.stdin.close()
        hold.wait(timeout=30)
    ks.ledger_settled()
    order = [(t, txn) for t, txn in ks.query("SELECT type, txn FROM ledger ORDER BY seq")]
    assert order.index(("license", licensed["txn"])) < \
        order.index(("revocation", refunded["txn"])), order


def test_ledger_without_the_head_trigger_fails_clearly(env, sm_workspace):
    """A database left without the ledger_head_follows trigger (schema
    version 3): the head stays put, the next append meets its own seq, and
    the event fails with an error naming the migration, never a second
    chain. Revocations append in their own transaction."""
    ks = KeyServer(env)
    env.httpd.start()
    cat = Catalog(ks)
    device = Device()
    first, second = cat.sold(device), cat.sold(device)
    ks.ledger_settled()
    ks.query("DROP TRIGGER ledger_head_follows")
    entries = ks.query("SELECT COUNT(*) FROM ledger")
    admin = ks.client("admin")
    admin.post_json("/v1/revocations", {"kind": "transaction", "subject": first["txn"],
                                        "reason": "test"}, expect=201)
    r = admin.post("/v1/revocations", json={"kind": "transaction", "subject": second["txn"],
                                            "reason": "test"})
    assert r.status_code == 500 and "problem+json" in r.headers["Content-Type"], r.text
    assert int(ks.query("SELECT COUNT(*) FROM ledger")[0][0]) == int(entries[0][0]) + 1
    assert ks.query("SELECT COUNT(*) FROM revocations") == [("1",)]
    with open(env.httpd.error_log) as f:
        assert "apply the key server's schema version 3" in f.read()
    env.expect_log("SM00012")


def test_license_without_the_schema_4_procedures_fails_clearly(env):
    """A database left at schema version 3 (no license procedures): the
    license fails (500, nothing recorded), and the error log names the
    missing procedure and the migration tool."""
    ks = KeyServer(env)
    env.httpd.start()
    cat = Catalog(ks)
    device = Device()
    reservation = cat.sold(device)
    ks.query("DROP PROCEDURE license_facts")
    r = request_license(ks, device, reservation["voucher"])
    assert r.status_code == 500 and "problem+json" in r.headers["Content-Type"], r.text
    assert "key_jwe" not in r.text
    assert ks.query("SELECT COUNT(*) FROM licenses") == [("0",)]
    assert ks.query("SELECT activations FROM transactions") == [("0",)]
    with open(env.httpd.error_log) as f:
        log = f.read()
    assert "license_facts does not exist" in log and "secmedia-db-migrate" in log
    env.expect_log("SM00012")


def _refused_until_repaired(env, ks, *log_texts, repair):
    """With the database as the test left it, no request gets through
    (500, nothing written, the log says why with each of log_texts);
    after repair() the same children serve again."""
    env.httpd.start()
    env.expect_log("SM00012")
    # The ledger sealer (every 100 ms) meets the same refusal and may say
    # so before the repair (a slow run, e.g. under ASan).
    env.allow_log("SM01007")
    admin = ks.client("admin")
    owner = {"owner_id": "o1", "name": "Owner",
             "subject_dn": env.pki.client("owner").subject_dn}
    r = admin.post("/v1/owners", json=owner)
    assert r.status_code == 500 and "problem+json" in r.headers["Content-Type"], r.text
    assert ks.query("SELECT COUNT(*) FROM owners") == [("0",)]
    log = env.httpd.error_log_text()
    for text in log_texts:
        assert text in log, (text, log[-2000:])
    repair()
    r = admin.post("/v1/owners", json=owner)
    assert r.status_code == 201, r.text


def test_database_older_than_the_module_is_refused(env):
    """The key server's pool checks the schema version of each connection
    it opens: a database one version behind gets no request through (500,
    the log names both versions and the migration tool), and once migrated
    the same children serve again."""
    ks = KeyServer(env)
    newest = ks.query("SELECT version, name, sha256 FROM schema_version "
                      "ORDER BY version DESC LIMIT 1")[0]
    ks.query("DELETE FROM schema_version WHERE version = %s" % newest[0])
    _refused_until_repaired(
        env, ks,
        "is at schema version %d; this module needs version %s" % (int(newest[0]) - 1,
                                                                   newest[0]),
        "secmedia-db-migrate",
        repair=lambda: ks.query("INSERT INTO schema_version (version, name, sha256) "
                                "VALUES (%s, '%s', '%s')" % newest))


def test_database_a_migration_made_unsafe_for_this_module_is_refused(env):
    """A migration recorded with a min-module-version above the schema
    this module was built for (secmedia-db-migrate) makes its pool refuse
    the database: 500, nothing written, the log says to upgrade the
    module; without that record the same children serve again."""
    ks = KeyServer(env)
    newest = int(ks.query("SELECT MAX(version) FROM schema_version")[0][0])
    ks.query("INSERT INTO schema_version (version, name, sha256, min_module_version) VALUES "
             "(%d, '%04d_future.sql', REPEAT('0', 64), %d)" % (newest + 1, newest + 1,
                                                             newest + 1))
    _refused_until_repaired(
        env, ks,
        "unsafe for modules built for a schema older than version %d; this module is "
        "built for version %d: upgrade it" % (newest + 1, newest),
        repair=lambda: ks.query("DELETE FROM schema_version WHERE version = %d"
                                % (newest + 1)))


def test_transaction_flags_follow_payments_and_revocations(env):
    """Schema version 4 keeps a transaction's payment and revocation on its
    row (triggers), which the license reads: a reserved transaction is
    neither, its payment sets paid, revocations of another transaction or
    of a device leave it alone, its own sets revoked, and its licenses are
    then refused."""
    ks = KeyServer(env)
    env.httpd.start()
    cat = Catalog(ks)
    device = Device()
    admin = ks.client("admin")

    def revoke(kind, subject):
        admin.post_json("/v1/revocations", {"kind": kind, "subject": subject,
                                            "reason": "test"}, expect=201)

    reservation = cat.reserve(device)
    txn = reservation["txn"]
    flags = "SELECT paid, revoked FROM transactions WHERE txn = '%s'" % txn
    assert ks.query(flags) == [("0", "0")]
    assert_problem(request_license(ks, device, reservation["voucher"]), 402, "not-paid")
    cat.pay(reservation)
    assert ks.query(flags) == [("1", "0")]
    other = cat.sold(device)
    revoke("transaction", other["txn"])
    revoke("device", Device().jkt)
    assert ks.query(flags) == [("1", "0")]
    assert_problem(request_license(ks, device, other["voucher"]), 403, "transaction-revoked")
    assert request_license(ks, device, reservation["voucher"]).status_code == 200
    revoke("transaction", txn)
    assert ks.query(flags) == [("1", "1")]
    assert_problem(request_license(ks, device, reservation["voucher"]), 403,
                   "transaction-revoked")


def test_license_follows_the_contract(env):
    """Schema version 6 keeps on each transaction whether its contract
    still offers its terms (triggers on contracts and contract_offers),
    which the license reads: the owner revoking the contract, or its offer
    of these terms removed, refuses the licenses of sales already made
    (contract-invalid); restored, they are granted again. Sales under
    other terms or contracts are untouched."""
    ks = KeyServer(env)
    env.httpd.start()
    cat = Catalog(ks)
    device = Device()
    sale = cat.sold(device)
    contract = ks.query("SELECT contract_id FROM transactions WHERE txn = '%s'"
                        % sale["txn"])[0][0]
    offered = "SELECT terms_offered FROM transactions WHERE txn = '%s'" % sale["txn"]
    assert ks.query(offered) == [("1",)]
    assert request_license(ks, device, sale["voucher"]).status_code == 200

    ks.query("UPDATE contracts SET revoked_at = 1 WHERE contract_id = %s" % contract)
    assert ks.query(offered) == [("0",)]
    assert_problem(request_license(ks, device, sale["voucher"]), 403, "contract-invalid")
    ks.query("UPDATE contracts SET revoked_at = NULL WHERE contract_id = %s" % contract)
    assert request_license(ks, device, sale["voucher"]).status_code == 200

    offer = ks.query("SELECT license_type, duration, price FROM contract_offers "
                     "WHERE contract_id = %s AND license_type = 'purchase'" % contract)[0]
    where = ("contract_id = %s AND license_type = '%s' AND duration = %s"
             % (contract, offer[0], offer[1]))
    ks.query("DELETE FROM contract_offers WHERE " + where)
    assert_problem(request_license(ks, device, sale["voucher"]), 403, "contract-invalid")
    ks.query("INSERT INTO contract_offers VALUES (%s, '%s', %s, %s)" % ((contract,) + offer))
    assert request_license(ks, device, sale["voucher"]).status_code == 200
    # An unrelated change leaves the flag alone (no row's answer changes).
    ks.query("UPDATE contracts SET valid_until = valid_until + 1 WHERE contract_id = %s"
             % contract)
    assert ks.query(offered) == [("1",)]
    # Other terms of the same contract: their removal is not this sale's.
    others = ks.query("SELECT COUNT(*) FROM contract_offers WHERE contract_id = %s AND "
                      "NOT (%s)" % (contract, where))[0][0]
    if int(others):
        ks.query("DELETE FROM contract_offers WHERE contract_id = %s AND NOT (%s)"
                 % (contract, where))
        assert request_license(ks, device, sale["voucher"]).status_code == 200


def _insert_transaction(env, database, txn, contract=1, terms="'purchase', 0", jkt_char="j"):
    """A reserved transaction of retailer r1 for work w1, written directly."""
    env.db.execute(
        "INSERT INTO transactions (txn, retailer_id, reservation_ref, work_id, contract_id, "
        "license_type, duration, price, currency, jkt, voucher, reserved_at, pay_by) "
        "VALUES ('%s', 'r1', '%s', 'w1', %d, %s, 100, 'EUR', REPEAT('%s', 43), 'v', 1, "
        "99999999999)" % (txn, txn, contract, terms, jkt_char), database.name)


def _keyserver_database_at(env, sm_workspace, version):
    """A key server database migrated up to version only, with an owner, a
    retailer, a work, a contract and three transactions: t-paid (paid),
    t-revoked (paid, then revoked), t-reserved; and a revoked device."""
    sql = os.path.join(sm_workspace.new_dir("sql-v%d" % version), "sql")
    shutil.copytree(env.sql_dir, sql)
    for name in os.listdir(os.path.join(sql, "keyserver")):
        if int(name[:4]) > version:
            os.remove(os.path.join(sql, "keyserver", name))
    database = env.role_database("keyserver")
    env.db.migrate(database.name, "keyserver", sql)
    key = "REPEAT(CHAR(7), 61)"
    env.db.execute(
        "INSERT INTO owners VALUES ('o1', 'Owner', 'CN=o1', UNHEX(SHA2('CN=o1', 256)), 1);"
        "INSERT INTO retailers VALUES ('r1', 'Shop', 'CN=r1', UNHEX(SHA2('CN=r1', 256)), NULL, 1);"
        "INSERT INTO works (work_id, owner_id, title, key_version, kek_version, wrapped_key, "
        " created_at) VALUES ('w1', 'o1', 'Song', 1, 1, %s, 1);"
        "INSERT INTO contracts (contract_id, owner_id, retailer_id, currency, valid_from, "
        " valid_until, created_at) VALUES (1, 'o1', 'r1', 'EUR', 0, 99999999999, 1);" % key,
        database.name)
    for txn in ("t-paid", "t-revoked", "t-reserved"):
        _insert_transaction(env, database, txn)
    for txn in ("t-paid", "t-revoked"):
        env.db.execute(
            "INSERT INTO payments VALUES ('%s', 'r1', 'p-%s', 100, 'EUR', 2, 'ack')"
            % (txn, txn), database.name)
    env.db.execute(
        "INSERT INTO revocations VALUES ('transaction', 't-revoked', 'fraud', 'admin', 3);"
        "INSERT INTO revocations VALUES ('device', REPEAT('j', 43), 'lost', 'admin', 3);",
        database.name)
    return database


def test_schema_4_migration_sets_the_flags_of_existing_transactions(env, sm_workspace):
    """A version-3 database with sales in it, migrated: the payment and
    revocation flags of existing transactions are filled in from their
    rows (a transaction paid, one paid and revoked, one reserved only, a
    device revoked)."""
    database = _keyserver_database_at(env, sm_workspace, 3)
    out = env.db.migrate(database.name, "keyserver", env.sql_dir)
    assert "applied: 0004_" in out
    assert env.db.query("SELECT txn, paid, revoked FROM transactions ORDER BY txn",
                        database.name) == [("t-paid", "1", "0"), ("t-reserved", "0", "0"),
                                           ("t-revoked", "1", "1")]


def test_schema_4_and_5_migrations_can_run_again(env, sm_workspace):
    """A migration that stopped half-way (say, for a missing privilege) is
    finished by running it again: versions 4 and 5 applied once without
    being recorded, then by the migrator, leave the same schema and data."""
    database = _keyserver_database_at(env, sm_workspace, 3)
    sql = os.path.join(env.sql_dir, "keyserver")
    env.db.apply_sql(database.name, [
        os.path.join(sql, name) for name in sorted(os.listdir(sql))
        if name[:4] in ("0004", "0005")])
    out = env.db.migrate(database.name, "keyserver", env.sql_dir)
    assert "applied: 0004_" in out and "applied: 0005_" in out
    assert env.db.query("SELECT txn, paid, revoked FROM transactions ORDER BY txn",
                        database.name) == [("t-paid", "1", "0"), ("t-reserved", "0", "0"),
                                           ("t-revoked", "1", "1")]
    assert env.db.query("SELECT COUNT(*) FROM information_schema.STATISTICS WHERE "
                        "TABLE_SCHEMA = '%s' AND INDEX_NAME = 'licenses_queue' AND "
                        "SEQ_IN_INDEX = 1" % database.name) == [("1",)]


def test_schema_5_migration_puts_queued_licenses_first(env, sm_workspace):
    """A version-4 database with licenses still queued, migrated: they keep
    their queue (order 0, i.e. before anything queued from now on, by id
    among themselves); new licenses and sale events draw their order from
    one sequence."""
    database = _keyserver_database_at(env, sm_workspace, 4)
    for i in (1, 2):
        env.db.execute(
            "INSERT INTO licenses (txn, jkt, issued_at, proof_jti, delivery_jti, work_id, "
            "activation, chained) VALUES ('t-paid', REPEAT('j', 43), 5, 'old-proof-%d', "
            "'old-delivery-%d', 'w1', %d, 0)" % (i, i, i), database.name)
    out = env.db.migrate(database.name, "keyserver", env.sql_dir)
    assert "applied: 0005_" in out
    env.db.execute(
        "INSERT INTO ledger_queue (queue_order, created_at, type, data, txn) "
        "VALUES (NEXT VALUE FOR ledger_queue_order, 6, 'payment', '{}', 't-reserved');"
        "CALL license_grant('t-paid', REPEAT('j', 43), 7, 'new-proof', 'new-delivery', "
        "NULL, 'w1', 3)", database.name)
    licenses = env.db.query("SELECT proof_jti, queue_order FROM licenses ORDER BY id",
                            database.name)
    event = int(env.db.query("SELECT queue_order FROM ledger_queue", database.name)[0][0])
    assert licenses[:2] == [("old-proof-1", "0"), ("old-proof-2", "0")]
    assert licenses[2][0] == "new-proof" and 0 < event < int(licenses[2][1])


def test_schema_6_migration_sets_terms_offered(env, sm_workspace):
    """A version-5 database with sales under a revoked contract and under
    terms no longer offered, migrated (twice: the migration can run
    again): their transactions are marked, the others not; from then on
    the triggers keep the column as contracts and offers change."""
    database = _keyserver_database_at(env, sm_workspace, 5)
    env.db.execute(
        "INSERT INTO contract_offers VALUES (1, 'purchase', 0, 100);"
        "INSERT INTO contracts (contract_id, owner_id, retailer_id, currency, valid_from, "
        " valid_until, created_at, revoked_at) VALUES (2, 'o1', 'r1', 'EUR', 0, 99999999999, "
        " 1, 5);"
        "INSERT INTO contract_offers VALUES (2, 'purchase', 0, 100);", database.name)
    _insert_transaction(env, database, "t-void", contract=2, jkt_char="k")
    _insert_transaction(env, database, "t-rental", terms="'rental', 3600", jkt_char="k")
    sql = os.path.join(env.sql_dir, "keyserver")
    env.db.apply_sql(database.name, [os.path.join(sql, name) for name in sorted(os.listdir(sql))
                                     if name.startswith("0006")])
    out = env.db.migrate(database.name, "keyserver", env.sql_dir)
    assert "applied: 0006_" in out

    def offered():
        return dict(env.db.query("SELECT txn, terms_offered FROM transactions",
                                 database.name))
    assert offered() == {"t-paid": "1", "t-reserved": "1", "t-revoked": "1", "t-void": "0",
                         "t-rental": "0"}
    env.db.execute("UPDATE contracts SET revoked_at = NULL WHERE contract_id = 2;"
                   "INSERT INTO contract_offers VALUES (1, 'rental', 3600, 50)", database.name)
    assert offered() == {"t-paid": "1", "t-reserved": "1", "t-revoked": "1", "t-void": "1",
                         "t-rental": "1"}
    env.db.execute("UPDATE contract_offers SET duration = 7200 WHERE contract_id = 1 AND "
                   "license_type = 'rental';"
                   "UPDATE contracts SET revoked_at = 9 WHERE contract_id = 2", database.name)
    assert offered() == {"t-paid": "1", "t-reserved": "1", "t-revoked": "1", "t-void": "0",
                         "t-rental": "0"}
    env.db.execute("UPDATE contract_offers SET duration = 3600 WHERE contract_id = 1 AND "
                   "license_type = 'rental'", database.name)
    assert offered()["t-rental"] == "1"


def test_spent_proof_ids_are_purged(env):
    ks = KeyServer(env)
    env.httpd.start()
    cat = Catalog(ks)
    device = Device()
    reservation = cat.sold(device)
    proof = device.proof(ks.license_url)
    assert request_license(ks, device, reservation["voucher"], proof=proof).status_code == 200
    # A granted license records its proof id in its own row, not here.
    assert ks.query("SELECT COUNT(*) FROM dpop_jtis") == [("0",)]
    assert_problem(request_license(ks, device, reservation["voucher"], proof=proof), 401,
                   "proof-replayed")
    # A refusal records its proof's id here.
    unpaid = cat.reserve(device)
    assert_problem(request_license(ks, device, unpaid["voucher"]), 402, "not-paid")
    # One proof id from long ago, one current.
    ks.query("INSERT INTO dpop_jtis (jkt, jti, seen_at) VALUES ('%s', 'old-proof-id-0000', 1)"
             % device.jkt)
    assert ks.query("SELECT COUNT(*) FROM dpop_jtis") == [("2",)]
    env.httpd.restart()                     # new children purge at start
    deadline = time.time() + 10
    while ks.query("SELECT COUNT(*) FROM dpop_jtis") != [("1",)] and time.time() < deadline:
        time.sleep(0.1)
    assert ks.query("SELECT jti FROM dpop_jtis") != [("old-proof-id-0000",)]
    assert ks.query("SELECT COUNT(*) FROM dpop_jtis") == [("1",)]


def test_license_through_a_retailer_proxy(env):
    ks = KeyServer(env)
    env.httpd.start()
    cat = Catalog(ks)
    proxy_url = "https://shop.example/secmedia/license"
    ks.query("UPDATE retailers SET license_proxy_url = '%s' WHERE retailer_id = 'retailer1'"
             % proxy_url)
    device = Device()
    reservation = cat.sold(device)
    # The device signs for the proxy's URL; the proxy forwards with its cert.
    proof = device.proof(proxy_url)
    r = request_license(ks, device, reservation["voucher"], client=cat.retailer, proof=proof)
    assert r.status_code == 200, r.text
    assert device.open_key(r.json()["key_jwe"]) == cat.media_key
    assert ks.query("SELECT via_retailer FROM licenses") == [("retailer1",)]
    # The same kind of proof sent directly (no proxy certificate) is for
    # another URL; and the proxy cannot use a proof made for the key server.
    assert_problem(request_license(ks, device, reservation["voucher"],
                                   proof=device.proof(proxy_url)), 401, "proof-invalid")
    assert_problem(request_license(ks, device, reservation["voucher"], client=cat.retailer,
                                   proof=device.proof(ks.license_url)), 401, "proof-invalid")


def test_license_is_two_database_round_trips(env):
    """What a license costs on the wire (the general log): the module's
    session executes license_facts, then license_grant, which commits;
    no COMMIT or ROLLBACK of its own after it."""
    ks = KeyServer(env)
    env.httpd.start()
    cat = Catalog(ks)
    device = Device()
    reservation = cat.sold(device)
    assert request_license(ks, device, reservation["voucher"]).status_code == 200  # prepared
    env.db.execute("SET GLOBAL log_output = 'TABLE'; TRUNCATE mysql.general_log; "
                   "SET GLOBAL general_log = 1")
    try:
        assert request_license(ks, device, reservation["voucher"]).status_code == 200
        time.sleep(0.3)
    finally:
        env.db.execute("SET GLOBAL general_log = 0")
    # The statements' first characters only: the sealers' inserts carry
    # binary hashes.
    rows = env.db.query("SELECT thread_id, command_type, LEFT(CAST(argument AS CHAR), 24) "
                        "FROM mysql.general_log ORDER BY event_time")
    session = [t for t, c, a in rows if c == "Execute" and "CALL license_facts" in a]
    assert len(session) == 1, rows
    # Prepares happen once per pooled connection, not per license.
    mine = [(c, a.split("(")[0].strip()) for t, c, a in rows
            if t == session[0] and c != "Prepare"]
    start = mine.index(("Execute", "CALL license_facts"))
    assert mine[start:start + 2] == [("Execute", "CALL license_facts"),
                                     ("Execute", "CALL license_grant")], mine
    # What follows on the pooled connection is another user's (a sealer's).
    assert all(a.upper() not in ("COMMIT", "ROLLBACK") for _, a in mine[start + 2:start + 3]), mine


def test_license_waits_for_a_revocation_in_flight(env):
    """A transaction revocation not yet committed (its trigger has set the
    transaction row's flag): a license of that transaction waits for it
    and, once it commits, is refused; nothing is recorded."""
    from concurrent.futures import ThreadPoolExecutor
    ks = KeyServer(env)
    env.httpd.start()
    cat = Catalog(ks)
    device = Device()
    sale = cat.sold(device)
    hold = env.db.open_session(ks.db.name)
    try:
        hold.stdin.write("BEGIN; SELECT txn FROM transactions WHERE txn = '%s' FOR UPDATE; "
                         "INSERT INTO revocations VALUES ('transaction', '%s', 'refund', "
                         "'admin', 1); SELECT 7;\n" % (sale["txn"], sale["txn"]))
        hold.stdin.flush()
        assert hold.stdout.readline().strip() == sale["txn"]
        assert hold.stdout.readline().strip() == "7"
        with ThreadPoolExecutor(max_workers=1) as pool:
            lic = pool.submit(lambda: request_license(ks, device, sale["voucher"]))
            time.sleep(1.0)
            assert not lic.done(), lic.result().text
            hold.stdin.write("COMMIT;\n")
            hold.stdin.flush()
            assert_problem(lic.result(timeout=30), 403, "transaction-revoked")
    finally:
        hold.stdin.close()
        hold.wait(timeout=30)
    assert ks.query("SELECT COUNT(*) FROM licenses") == [("0",)]
    assert ks.query("SELECT revoked, activations FROM transactions WHERE txn = '%s'"
                    % sale["txn"]) == [("1", "0")]


def test_inventory_lists_only_contracts_inside_their_window(env):
    """valid_from <= now < valid_until, to the second: a contract that has
    not begun or has ended is not in the inventory, and one leaves it when
    its valid_until arrives."""
    ks = KeyServer(env)
    env.httpd.start()
    cat = Catalog(ks)   # a contract from a minute ago to tomorrow
    now = int(time.time())
    # w-ending's contract ends 3 s after it is made (made last, so that
    # the first listing comes well before).
    windows = {"w-past": (now - 1000, now - 10), "w-future": (now + 100, now + 1000),
               "w-ending": (now - 10, None)}
    contract_of = {cat.work_id: cat.contract["contract_id"]}
    for work_id, (start, end) in windows.items():
        cat.owner.post_json("/v1/works", {
            "work_id": work_id, "key_version": 1,
            "media_key_jwe": ks.wrap_media_key(os.urandom(32)), "title": work_id},
            expect=201)
        if end is None:
            end = int(time.time()) + 3
            windows[work_id] = (start, end)
        body = dict(cat.contract_request(), works=[work_id], valid_from=start,
                    valid_until=end)
        contract_of[work_id] = cat.owner.post_json("/v1/contracts", body,
                                                   expect=201)["contract_id"]

    def listed():
        works = cat.retailer.get_json("/v1/inventory")["works"]
        return {w["work_id"]: (w["contract_id"], w["valid_until"]) for w in works}

    assert listed() == {cat.work_id: (contract_of[cat.work_id], cat.contract["valid_until"]),
                        "w-ending": (contract_of["w-ending"], windows["w-ending"][1])}
    device = Device()
    for work_id in ("w-past", "w-future"):
        assert_problem(cat.retailer.post("/v1/reservations", json={
            "reservation_ref": "r-" + work_id, "work_id": work_id,
            "license": {"type": "purchase"}, "jkt": device.jkt}), 403, "no-contract")
    time.sleep(max(0.0, windows["w-ending"][1] - time.time()) + 0.05)
    assert listed() == {cat.work_id: (contract_of[cat.work_id], cat.contract["valid_until"])}
