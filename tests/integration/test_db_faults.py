"""The database failing in the middle of a transaction, for real: the
modules reach the test's MariaDB through sqlfault.SqlFaultRelay, which
cuts a connection at an exact statement — before the server sees it (the
server rolls the transaction back) or after the server ran it and before
the answer arrives (a COMMIT took effect; the module cannot know). What
each module leaves behind is then checked in the database and on disk:
nothing half-written, nothing visible that is not recorded, and the next
request completes what was missing."""

import os
import tempfile

import pytest

from keyserver_setup import (Catalog, Device, KeyServer, assert_problem, request_license,
                             run_ledger_verify)
from mediastore_setup import (MediaStore, Sales, pack_container, repr_digest, store_for)
from sqlfault import SqlFaultRelay

UPLOAD_INSERT = r"^INSERT INTO works "
PREVIEW_UPDATE = r"^UPDATE works SET preview_size"
COMMIT = r"^COMMIT"


@pytest.fixture
def relay(env, sm_workspace):
    directory = tempfile.mkdtemp(prefix="sqlfault-", dir=sm_workspace.path)
    with SqlFaultRelay(env.db.socket, directory) as r:
        yield r
        # httpd first: a relay gone under a running module is an outage.
        env.httpd.stop()


@pytest.fixture
def containers(sm_workspace):
    return sm_workspace.path + "/containers"


def upload(client, work_id, data, preview=False, headers=None):
    headers = dict(headers or {})
    headers["Repr-Digest"] = repr_digest(data)
    return client.put("/works/%s%s" % (work_id, "/preview" if preview else ""), data=data,
                      headers=headers)


def read(path):
    with open(path, "rb") as f:
        return f.read()


def temp_files(store):
    return [name for name in store.storage_listing() if name.startswith(".upload-")]


def works_rows(store):
    return store.query("SELECT work_id, size FROM works ORDER BY work_id")


# --- media store uploads ---------------------------------------------------------------

def test_upload_commit_never_reaching_the_server_leaves_no_file(env, relay, containers):
    store = MediaStore(env, db_socket=relay.path)
    env.httpd.start()
    owner = env.client("owner")
    data = read(pack_container(containers, "w1", 70000))
    fault = relay.arm(COMMIT, "before", following=UPLOAD_INSERT)
    doc = assert_problem(upload(owner, "w1", data), 503, "service-unavailable")
    assert fault.fired == 1 and "retry" in doc["detail"]
    # The server rolled the row back, and no file is under the work's name
    # (a GET serves the file in place without asking the database).
    assert works_rows(store) == []
    assert store.storage_listing() == []
    # Sent again: stored, once.
    r = upload(owner, "w1", data)
    assert r.status_code == 201 and r.json()["status"] == "stored", r.text
    assert read(store.file_path("w1")) == data
    assert works_rows(store) == [("w1", str(len(data)))]
    env.expect_log("SM00011")


def test_upload_commit_answer_lost_is_completed_by_the_next_upload(env, peer_env, relay,
                                                                   containers):
    ks = KeyServer(peer_env)
    peer_env.httpd.start()
    store = store_for(env, ks, db_socket=relay.path)
    env.httpd.start()
    owner = env.client("owner")
    data = read(pack_container(containers, "w1", 70000))
    fault = relay.arm(COMMIT, "after", following=UPLOAD_INSERT)
    assert_problem(upload(owner, "w1", data), 503, "service-unavailable")
    assert fault.fired == 1
    # The COMMIT took effect; the module could not know, so it did not put
    # the file in place: a licensed player gets 404, never a stray file.
    assert works_rows(store) == [("w1", str(len(data)))]
    assert store.storage_listing() == []
    txn, token = Sales(ks, "w1").licensed()
    player = env.client()
    assert_problem(player.get("/works/w1", headers={"Authorization": "Bearer " + token}),
                   404, "work-not-found")
    # Other bytes under the recorded work id are still refused ...
    other = read(pack_container(containers, "w1", 70000, seed=2))
    assert_problem(upload(owner, "w1", other), 409, "work-exists")
    assert store.storage_listing() == []
    # ... the same bytes complete it (201: put in place now), and after
    # that it is an ordinary stored work.
    r = upload(owner, "w1", data)
    assert r.status_code == 201 and r.json()["status"] == "stored", r.text
    assert read(store.file_path("w1")) == data
    r = upload(owner, "w1", data)
    assert r.status_code == 200 and r.json()["status"] == "already-stored", r.text
    r = player.get("/works/w1", headers={"Authorization": "Bearer " + token})
    assert r.status_code == 200 and r.content == data
    assert works_rows(store) == [("w1", str(len(data)))]
    assert temp_files(store) == []
    env.expect_log("SM00011")


def test_upload_recorded_but_not_renamed_is_507_then_completed(env, containers):
    store = MediaStore(env)
    env.httpd.start()
    owner = env.client("owner")
    data = read(pack_container(containers, "w1", 30000))
    # An operator's mistake in the storage directory: a directory where
    # the work's file must go, so the rename after the COMMIT fails.
    os.mkdir(store.file_path("w1"))
    doc = assert_problem(upload(owner, "w1", data), 507, "storage-failed")
    assert "send the same file again" in doc["detail"]
    assert works_rows(store) == [("w1", str(len(data)))]
    assert temp_files(store) == []
    os.rmdir(store.file_path("w1"))
    r = upload(owner, "w1", data)
    assert r.status_code == 201 and r.json()["status"] == "stored", r.text
    assert read(store.file_path("w1")) == data
    env.expect_log("SM02008")


def test_preview_replacement_lost_at_commit_keeps_the_old_preview(env, relay, containers):
    store = MediaStore(env, db_socket=relay.path)
    env.httpd.start()
    owner = env.client("owner")
    assert upload(owner, "w1", read(pack_container(containers, "w1", 3000))).status_code == 201
    old, new = b"OggS" + os.urandom(3000), b"ID3" + os.urandom(4000)
    r = upload(owner, "w1", old, preview=True, headers={"Content-Type": "audio/ogg"})
    assert r.status_code == 201, r.text
    fault = relay.arm(COMMIT, "before", following=PREVIEW_UPDATE)
    assert_problem(upload(owner, "w1", new, preview=True, headers={"Content-Type": "audio/mpeg"}),
                   503, "service-unavailable")
    assert fault.fired == 1
    # Neither the new bytes under the old type nor the other way round.
    r = env.client().get("/works/w1/preview")
    assert r.status_code == 200 and r.content == old
    assert r.headers["Content-Type"] == "audio/ogg"
    # Nothing but the work and the preview it records.
    assert store.storage_listing() == sorted(
        ["w1.smc", os.path.basename(store.file_path("w1", preview=True))])
    r = upload(owner, "w1", new, preview=True, headers={"Content-Type": "audio/mpeg"})
    assert r.status_code == 201, r.text
    r = env.client().get("/works/w1/preview")
    assert r.status_code == 200 and r.content == new
    assert r.headers["Content-Type"] == "audio/mpeg"
    env.expect_log("SM00011")


# --- key server licenses --------------------------------------------------------------

LICENSE_FACTS = r"^CALL license_facts\("
LICENSE_GRANT = r"^CALL license_grant\("


@pytest.fixture
def sold_via_relay(env, relay):
    """The conftest 'sold' setup with the key server behind the relay."""
    ks = KeyServer(env, activation_limit=2, db_socket=relay.path)
    env.httpd.start()
    cat = Catalog(ks)
    device = Device()
    return ks, cat, device, cat.sold(device)


def license_state(ks):
    """What a license writes: its row (which also spends its proof) and
    its ledger entry; and what a refusal writes (a spent proof)."""
    ks.ledger_settled()
    return (int(ks.query("SELECT COUNT(*) FROM licenses")[0][0]),
            int(ks.ledger_count()[0][0]),
            int(ks.query("SELECT COUNT(*) FROM dpop_jtis")[0][0]))


def plus_one_license(state):
    licenses, ledger, refusals = state
    return (licenses + 1, ledger + 1, refusals)


def test_license_lost_mid_transaction_is_retried_on_a_fresh_connection(sold_via_relay,
                                                                        relay):
    ks, cat, device, reservation = sold_via_relay
    before = license_state(ks)
    fault = relay.arm(LICENSE_FACTS, "after")
    r = request_license(ks, device, reservation["voucher"])
    assert r.status_code == 200, r.text
    assert fault.fired == 1
    assert device.open_key(r.json()["key_jwe"]) == cat.media_key
    # Counted once, although the transaction ran twice.
    assert license_state(ks) == plus_one_license(before)
    assert ks.query("SELECT activations FROM transactions WHERE txn = '%s'"
                    % reservation["txn"]) == [("1",)]


def test_license_lost_before_commit_writes_nothing(sold_via_relay, relay, env):
    ks, cat, device, reservation = sold_via_relay
    before = license_state(ks)
    # Both attempts (the first and the retry on a fresh connection) lose
    # their connection in the middle of the transaction; then the grant
    # itself is cut before the server sees it.
    fault = relay.arm(LICENSE_FACTS, "after", times=2)
    proof = device.proof(ks.license_url)
    r = request_license(ks, device, reservation["voucher"], proof=proof)
    doc = assert_problem(r, 503, "service-unavailable")
    assert fault.fired == 2 and "key_jwe" not in r.text and doc["detail"]
    assert license_state(ks) == before
    grant = relay.arm(LICENSE_GRANT, "before")
    assert_problem(request_license(ks, device, reservation["voucher"], proof=proof), 503,
                   "service-unavailable")
    assert grant.fired == 1
    assert license_state(ks) == before
    # Nothing was spent: the same proof is good for the license it asked.
    r = request_license(ks, device, reservation["voucher"], proof=proof)
    assert r.status_code == 200, r.text
    assert device.open_key(r.json()["key_jwe"]) == cat.media_key
    env.expect_log("SM00011")


def test_license_grant_answer_lost_is_recorded_once(sold_via_relay, relay, env, sm_workspace):
    ks, cat, device, reservation = sold_via_relay
    before = license_state(ks)
    fault = relay.arm(LICENSE_GRANT, "after")
    proof = device.proof(ks.license_url)
    r = request_license(ks, device, reservation["voucher"], proof=proof)
    assert_problem(r, 503, "service-unavailable")
    assert fault.fired == 1 and "key_jwe" not in r.text
    # The grant committed whole: the license (spending its proof) and its
    # ledger entry, each once — and the proof cannot be replayed for a
    # second answer.
    after = license_state(ks)
    assert after == plus_one_license(before)
    assert_problem(request_license(ks, device, reservation["voucher"], proof=proof), 401,
                   "proof-replayed")
    # A fresh proof is a second license (an activation: the first answer
    # never reached the device).
    r = request_license(ks, device, reservation["voucher"])
    assert r.status_code == 200, r.text
    assert ks.query("SELECT activations FROM transactions WHERE txn = '%s'"
                    % reservation["txn"]) == [("2",)]
    code, out, err = run_ledger_verify(ks, ks.client("auditor").get("/v1/ledger/export").text,
                                       sm_workspace.new_dir("ledger-faults"))
    assert code == 0, out + err
    env.expect_log("SM00011")
