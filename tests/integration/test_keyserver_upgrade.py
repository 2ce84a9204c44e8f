"""Upgrading a key server database that holds sales: schema version 3 (the
last before licenses read their facts from the transaction's row) with
paid, licensed, revoked, unpaid and contract-revoked sales, brought to the
newest schema by secmedia-db-migrate, then served by the current module.
The migrations' backfills (payment and revocation flags, whether the
contract still offers the terms) decide whether existing customers keep
their purchases, so each kind of sale is checked after the upgrade.

No module of version 3 is built here, so the sales are made by the
current module and the database is then taken back to version 3 by
DOWNGRADE_TO_3 below (test-only SQL). That it is exactly version 3 is
checked, not assumed: its tables, triggers, routines and sequences must
equal those of a fresh database migrated to version 3."""

import os
import re
import shutil

from keyserver_setup import (Catalog, Device, KeyServer, assert_problem, request_license,
                             run_ledger_verify)

# What migrations 4-6 added, removed again; run with the module stopped and
# every queued ledger entry chained (ledger_queue empty).
DOWNGRADE_TO_3 = """
DROP TRIGGER transactions_contract_revoked;
DROP TRIGGER transactions_offer_removed;
DROP TRIGGER transactions_offer_added;
DROP TRIGGER transactions_offer_changed;
ALTER TABLE transactions DROP COLUMN terms_offered;
DROP TABLE ledger_queue;
ALTER TABLE licenses DROP KEY licenses_queue, DROP COLUMN queue_order,
    ADD KEY licenses_unchained (chained, id);
DROP SEQUENCE ledger_queue_order;
DROP PROCEDURE license_facts;
DROP PROCEDURE license_grant;
DROP TRIGGER transactions_paid;
DROP TRIGGER transactions_revoked;
ALTER TABLE transactions DROP COLUMN paid, DROP COLUMN revoked;
DELETE FROM schema_version WHERE version > 3;
"""


def schema_of(db, database):
    """Tables (without AUTO_INCREMENT counters), triggers, routines and
    sequences of database, schema_version left out (its rows differ)."""
    def rows(sql):
        return db.query(sql, database)
    shape = {}
    for (table, kind) in rows("SELECT table_name, table_type FROM information_schema.tables "
                              "WHERE table_schema = DATABASE() AND table_name <> "
                              "'schema_version' ORDER BY table_name"):
        create = rows("SHOW CREATE %s `%s`" % ("SEQUENCE" if kind == "SEQUENCE" else "TABLE",
                                               table))[0][1]
        shape["%s %s" % (kind, table)] = re.sub(r" AUTO_INCREMENT=\d+", "", create)
    for row in rows("SELECT trigger_name, event_manipulation, event_object_table, "
                    "action_timing, action_statement FROM information_schema.triggers "
                    "WHERE trigger_schema = DATABASE() ORDER BY trigger_name"):
        shape["TRIGGER " + row[0]] = row[1:]
    for row in rows("SELECT routine_name, routine_type, routine_definition "
                    "FROM information_schema.routines WHERE routine_schema = DATABASE() "
                    "ORDER BY routine_name"):
        shape["ROUTINE " + row[0]] = row[1:]
    return shape


def fresh_v3_schema(env, sm_workspace):
    sql_dir = sm_workspace.new_dir("sql-v3")
    role_dir = os.path.join(sql_dir, "keyserver")
    os.makedirs(role_dir)
    for name in sorted(os.listdir(os.path.join(env.sql_dir, "keyserver"))):
        if re.match(r"000[123]_.*\.sql$", name):
            shutil.copy(os.path.join(env.sql_dir, "keyserver", name), role_dir)
    database = env.role_database("keyserver")
    env.db.migrate(database.name, "keyserver", sql_dir)
    assert env.db.query("SELECT MAX(version) FROM schema_version", database.name) == [("3",)]
    return schema_of(env.db, database.name)


def licensed(ks, device, reservation):
    r = request_license(ks, device, reservation["voucher"])
    assert r.status_code == 200, r.text
    return r.json()


def test_sales_survive_the_upgrade_from_version_3(env, sm_workspace):
    # First: a role database made later resets the role's password.
    version_3 = fresh_v3_schema(env, sm_workspace)
    ks = KeyServer(env)
    env.httpd.start()
    admin = ks.client("admin")
    device = Device()
    cat = Catalog(ks)
    kept = cat.sold(device)                       # paid and licensed
    assert licensed(ks, device, kept)["activation"] == 1
    refunded = cat.sold(device)                   # paid, then revoked
    admin.post_json("/v1/revocations", {"kind": "transaction", "subject": refunded["txn"],
                                        "reason": "refund"}, expect=201)
    unpaid = cat.reserve(device)                  # reserved only
    ended = Catalog(ks)                           # its contract revoked after the sale
    under_ended = ended.sold(device)
    ks.client("owner").post_json("/v1/contracts/%d/revocation" % ended.contract["contract_id"],
                                 {"reason": "ended early"}, expect=201)
    ks.ledger_settled()
    entries_before = int(ks.ledger_count()[0][0])
    env.httpd.stop()

    env.db.execute(DOWNGRADE_TO_3, ks.db.name)
    assert schema_of(env.db, ks.db.name) == version_3

    out = env.db.migrate(ks.db.name, "keyserver", env.sql_dir)
    assert "0004" in out and "0006" in out, out
    env.httpd.start()

    # The licensed sale licenses again (its second activation), with the
    # work's key; the refund stays refused; the contract's end still holds.
    answer = licensed(ks, device, kept)
    assert answer["activation"] == 2
    assert device.open_key(answer["key_jwe"]) == cat.media_key
    assert_problem(request_license(ks, device, refunded["voucher"]), 403, "transaction-revoked")
    assert_problem(request_license(ks, device, under_ended["voucher"]), 403, "contract-invalid")
    # The reservation is paid after the upgrade and then licensed.
    assert_problem(request_license(ks, device, unpaid["voucher"]), 402, "not-paid")
    cat.pay(unpaid)
    assert licensed(ks, device, unpaid)["activation"] == 1

    # The ledger goes on from the old head: one chain, verified.
    ks.ledger_settled()
    rows = ks.query("SELECT seq FROM ledger ORDER BY seq")
    assert [int(r[0]) for r in rows] == list(range(1, len(rows) + 1))
    assert len(rows) > entries_before
    export = admin.get("/v1/ledger/export")
    assert export.status_code == 200
    code, out, err = run_ledger_verify(ks, export.text, sm_workspace.new_dir("ledger"))
    assert code == 0, (out, err)
