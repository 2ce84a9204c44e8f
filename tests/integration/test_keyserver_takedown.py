"""Taking sales back: an owner (or an admin) withdraws a work or revokes a
contract (PROTOCOL.md §2.3, §2.4). Sales stop, licenses of earlier sales
are refused, the ledger records who did it and why, and a second call
changes nothing."""

import json

from keyserver_setup import (Catalog, Device, KeyServer, assert_problem, request_license,
                             run_ledger_verify, until_status)


def _ledger_entries(ks, entry_type):
    ks.ledger_settled()
    return [json.loads(row[0]) for row in
            ks.query("SELECT data FROM ledger WHERE type = '%s' ORDER BY seq" % entry_type)]


def test_withdrawn_work_stops_sales_and_licenses(env, sm_workspace):
    ks = KeyServer(env)
    env.httpd.start()
    cat = Catalog(ks)
    device = Device()
    sale = cat.sold(device)
    assert request_license(ks, device, sale["voucher"]).status_code == 200

    path = "/v1/works/%s/withdrawal" % cat.work_id
    first = cat.owner.post_json(path, {"reason": "rights dispute"}, expect=201)
    assert first["work_id"] == cat.work_id and first["already_withdrawn"] is False
    assert isinstance(first["withdrawn_at"], int) and first["withdrawn_at"] > 0
    again = cat.owner.post_json(path, {"reason": "again"}, expect=200)
    assert again == dict(first, already_withdrawn=True)

    # Earlier sales get no more licenses; nobody can sell it any more.
    r = request_license(ks, device, sale["voucher"])
    assert_problem(r, 410, "work-withdrawn")
    assert_problem(cat.retailer.post("/v1/reservations", json={
        "reservation_ref": "after-withdrawal", "work_id": cat.work_id,
        "license": {"type": "purchase"}, "jkt": device.jkt}), 403, "no-contract")
    inventory = cat.retailer.get_json("/v1/inventory")
    assert all(w["work_id"] != cat.work_id for w in inventory["works"])
    assert cat.owner.get_json("/v1/works/" + cat.work_id)["withdrawn_at"] == \
        first["withdrawn_at"]
    assert_problem(cat.owner.post("/v1/contracts", json=dict(
        cat.contract_request(), works=[cat.work_id])), 422, "unknown-work")

    # One ledger entry, from the first call only; the export verifies.
    assert _ledger_entries(ks, "work-withdrawn") == [
        {"work_id": cat.work_id, "owner": "owner", "reason": "rights dispute", "by": "owner"}]
    export = ks.client("admin").get("/v1/ledger/export")
    code, out, err = run_ledger_verify(ks, export.text, sm_workspace.new_dir("ledger"))
    assert code == 0, (out, err)


def test_revoked_contract_stops_its_sales_only(env, sm_workspace):
    ks = KeyServer(env)
    env.httpd.start()
    cat = Catalog(ks)
    # A second contract for the same work with the other retailer stays.
    other = cat.owner.post_json("/v1/contracts", dict(cat.contract_request(),
                                                      retailer="retailer2"), expect=201)
    device = Device()
    sale = cat.sold(device)
    other_sale = cat.sold(device, client=ks.client("retailer2"))
    contract_id = cat.contract["contract_id"]

    path = "/v1/contracts/%d/revocation" % contract_id
    first = cat.owner.post_json(path, {"reason": "retailer stopped paying"}, expect=201)
    assert first == {"contract_id": contract_id, "retailer_id": "retailer1",
                     "revoked_at": first["revoked_at"], "already_revoked": False}
    again = ks.client("admin").post_json(path, {"reason": "twice"}, expect=200)
    assert again == dict(first, already_revoked=True)

    assert_problem(request_license(ks, device, sale["voucher"]), 403, "contract-invalid")
    assert request_license(ks, device, other_sale["voucher"]).status_code == 200
    assert_problem(cat.retailer.post("/v1/reservations", json={
        "reservation_ref": "after-revocation", "work_id": cat.work_id,
        "license": {"type": "purchase"}, "jkt": device.jkt}), 403, "no-contract")
    assert all(w["work_id"] != cat.work_id
               for w in cat.retailer.get_json("/v1/inventory")["works"])
    assert any(w["contract_id"] == other["contract_id"]
               for w in ks.client("retailer2").get_json("/v1/inventory")["works"])

    assert _ledger_entries(ks, "contract-revoked") == [
        {"contract_id": contract_id, "owner": "owner", "retailer": "retailer1",
         "reason": "retailer stopped paying", "by": "owner"}]
    export = ks.client("admin").get("/v1/ledger/export")
    code, out, err = run_ledger_verify(ks, export.text, sm_workspace.new_dir("ledger"))
    assert code == 0, (out, err)


def test_admin_takes_down_any_owners_work(env):
    ks = KeyServer(env)
    env.httpd.start()
    cat = Catalog(ks)
    done = ks.client("admin").post_json("/v1/works/%s/withdrawal" % cat.work_id,
                                        {"reason": "court order"}, expect=201)
    assert done["already_withdrawn"] is False
    assert _ledger_entries(ks, "work-withdrawn") == [
        {"work_id": cat.work_id, "owner": "owner", "reason": "court order", "by": "admin"}]


def test_takedown_is_the_owners_alone(env):
    ks = KeyServer(env)
    second = env.pki.issue_client("owner2")
    env.httpd.add_vhost_config('KeyServerClientRole owner "%s"' % second.subject_dn)
    env.httpd.start()
    cat = Catalog(ks)
    ks.client("admin").post_json("/v1/owners", {
        "owner_id": "owner2", "name": "Other Label",
        "subject_dn": second.subject_dn}, expect=201)
    stranger = ks.client("owner2")
    work_path = "/v1/works/%s/withdrawal" % cat.work_id
    contract_path = "/v1/contracts/%d/revocation" % cat.contract["contract_id"]
    # Another owner: as if it did not exist.
    assert_problem(stranger.post(work_path, json={"reason": "mine"}), 404, "not-found")
    assert_problem(stranger.post(contract_path, json={"reason": "mine"}), 404, "not-found")
    assert_problem(cat.owner.post("/v1/works/no-such-work/withdrawal",
                                  json={"reason": "x"}), 404, "not-found")
    assert_problem(cat.owner.post("/v1/contracts/999999/revocation", json={"reason": "x"}),
                   404, "not-found")
    # Retailers, devices and unregistered certificates may not.
    assert_problem(cat.retailer.post(work_path, json={"reason": "x"}), 403,
                   "client-certificate-not-authorized")
    assert_problem(ks.client("mediastore").post(contract_path, json={"reason": "x"}), 403,
                   "client-certificate-not-authorized")
    assert_problem(ks.client().post(contract_path, json={"reason": "x"}), 403,
                   "client-certificate-required")
    # Strict input: a reason is required, nothing else is accepted, ids are checked.
    assert_problem(cat.owner.post(work_path, json={}), 400, "invalid-request")
    assert_problem(cat.owner.post(work_path, json={"reason": "x", "force": True}), 400,
                   "invalid-request")
    assert_problem(cat.owner.post(work_path, json={"reason": "x" * 501}), 400,
                   "invalid-request")
    assert_problem(cat.owner.post(work_path, json={"reason": "bell\x07"}), 400,
                   "invalid-request")
    for bad in ("0", "007", "-1", "1e3", "x", "9223372036854775808", "1" * 20):
        assert_problem(cat.owner.post("/v1/contracts/%s/revocation" % bad,
                                      json={"reason": "x"}), 400, "invalid-request")
    # Nothing changed.
    assert ks.query("SELECT withdrawn_at FROM works") == [(None,)]
    assert ks.query("SELECT COUNT(*) FROM contracts WHERE revoked_at IS NOT NULL") == [("0",)]
    assert _ledger_entries(ks, "work-withdrawn") == []


def test_takedown_fails_closed_without_the_database(env):
    ks = KeyServer(env)
    env.httpd.start()
    cat = Catalog(ks)
    env.expect_log("SM00011")
    env.allow_log("SM01007", "SM01008")     # the children's sealers notice too
    path = "/v1/works/%s/withdrawal" % cat.work_id
    env.db.stop()
    try:
        assert_problem(cat.owner.post(path, json={"reason": "x"}), 503, "service-unavailable")
        assert_problem(cat.owner.post("/v1/contracts/%d/revocation"
                                      % cat.contract["contract_id"], json={"reason": "x"}),
                       503, "service-unavailable")
    finally:
        env.db.start()
    assert ks.query("SELECT withdrawn_at FROM works") == [(None,)]
    assert ks.query("SELECT COUNT(*) FROM contracts WHERE revoked_at IS NOT NULL") == [("0",)]
    # The same httpd works again once the database is back.
    r = until_status(lambda: cat.owner.post(path, json={"reason": "x"}), 201)
    assert r.status_code == 201, r.text


def test_takedown_reasons_keep_sql_metacharacters_verbatim(env):
    ks = KeyServer(env)
    env.httpd.start()
    cat = Catalog(ks)
    nasty = "x'; DROP TABLE works; -- \" \\ %_ `"
    owner = ks.client("owner")
    owner.post_json("/v1/contracts/%d/revocation" % cat.contract["contract_id"],
                    {"reason": nasty}, expect=201)
    owner.post_json("/v1/works/%s/withdrawal" % cat.work_id, {"reason": nasty + "2"},
                    expect=201)
    assert [e["reason"] for e in _ledger_entries(ks, "contract-revoked")] == [nasty]
    assert [e["reason"] for e in _ledger_entries(ks, "work-withdrawn")] == [nasty + "2"]
    assert {"works", "contracts", "ledger"} <= {row[0] for row in ks.query("SHOW TABLES")}
