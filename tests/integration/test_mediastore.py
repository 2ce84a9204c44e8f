"""mod_mediastore end to end: real httpd + mod_ssl + MariaDB, and the real
key server (mod_keyserver) in an httpd of its own, so a test can stop it
while the media store runs: its JWKS checks the tokens, it takes the
delivery-complete reports. Successful deliveries use the delivery tokens
of real licenses; the attacks use tokens made with the key server's own
signing key (claims no key server would issue) or a forger's. Each bad
input or attack from issue 3 that concerns the media store has a test
here."""

import glob
import os
import re
import socket
import ssl
import struct
import time

import pytest
import requests

import harness

from keyserver_setup import KeyServer, new_p256, private_jwk_text, write_private
from mediastore_setup import (DeliveryTokens, MediaStore, Sales, logged_requests, pack_container,
                              repr_digest, store_for)

PROBLEM_BASE = "https://secmedia.example/problems/"
STORE_TUNING = "MediaStoreNotifyRetryInterval 1\nMediaStoreJWKSMinRefreshInterval 2\n"


def problem(response, status, slug):
    assert response.status_code == status, "%d %s" % (response.status_code, response.text[:400])
    assert response.headers["Content-Type"] == "application/problem+json"
    doc = response.json()
    assert doc["type"] == PROBLEM_BASE + slug, doc
    assert doc["detail"]
    return doc


@pytest.fixture
def keyserver(peer_env):
    """The real key server, started in peer_env's httpd."""
    ks = KeyServer(peer_env)
    peer_env.httpd.start()
    return ks


@pytest.fixture
def sales(keyserver):
    """Work w1 on sale at the key server."""
    return Sales(keyserver, "w1")


@pytest.fixture
def tokens(keyserver):
    return DeliveryTokens(keyserver)


@pytest.fixture
def containers(sm_workspace):
    return sm_workspace.path + "/containers"


def start_store(env, extra=""):
    """A media store with no key server behind it (uploads need none)."""
    store = MediaStore(env, extra=STORE_TUNING + extra)
    env.httpd.start()
    return store


def upload(client, work_id, path_or_bytes, digest=None, preview=False, **kwargs):
    if isinstance(path_or_bytes, bytes):
        data = path_or_bytes
    else:
        with open(path_or_bytes, "rb") as f:
            data = f.read()
    headers = kwargs.pop("headers", {})
    headers.setdefault("Repr-Digest", digest or repr_digest(data))
    url = "/works/%s%s" % (work_id, "/preview" if preview else "")
    return client.put(url, data=data, headers=headers, **kwargs)


def stored(store, work_id):
    return os.path.exists(store.file_path(work_id))


def no_temp_files(store):
    return not glob.glob(os.path.join(store.storage, ".upload-*"))


# --- upload --------------------------------------------------------------------------

def test_upload_stores_once_and_never_replaces(env, containers):
    store = start_store(env)
    owner = env.client("owner")
    c1 = pack_container(containers, "w1", 100000)
    r = upload(owner, "w1", c1)
    assert r.status_code == 201, r.text
    doc = r.json()
    assert doc["status"] == "stored" and doc["size"] == os.path.getsize(c1)
    assert r.headers["Location"] == "/works/w1"
    with open(c1, "rb") as a, open(store.file_path("w1"), "rb") as b:
        assert a.read() == b.read()
    row = store.query("SELECT owner_dn, size, HEX(sha256) FROM works WHERE work_id = 'w1'")
    assert row[0][0] == env.pki.client("owner").subject_dn
    # The same bytes again: fine, nothing rewritten.
    mtime = os.stat(store.file_path("w1")).st_mtime_ns
    r = upload(owner, "w1", c1)
    assert r.status_code == 200 and r.json()["status"] == "already-stored"
    assert os.stat(store.file_path("w1")).st_mtime_ns == mtime
    # Different bytes under the same work id: refused before the body is read.
    c1b = pack_container(containers, "w1", 100000, seed=2)
    problem(upload(owner, "w1", c1b), 409, "work-exists")
    with open(c1, "rb") as a, open(store.file_path("w1"), "rb") as b:
        assert a.read() == b.read()
    assert no_temp_files(store)


def test_upload_needs_the_owner_certificate(env, containers):
    store = start_store(env)
    c1 = pack_container(containers, "w1", 5000)
    problem(upload(env.client(), "w1", c1), 403, "client-certificate-required")
    problem(upload(env.client("retailer1"), "w1", c1), 403,
            "client-certificate-not-authorized")
    # A certificate from a CA the server does not trust fails the handshake.
    with pytest.raises(requests.exceptions.RequestException):
        upload(env.client("foreign"), "w1", c1)
    assert not stored(store, "w1") and no_temp_files(store)
    assert store.query("SELECT COUNT(*) FROM works") == [("0",)]
    env.allow_log(r"AH02039|AH02261|certificate verify failed|SSL Library Error")


def test_oversize_upload_is_413(env, containers):
    store = start_store(env, "MediaStoreMaxUploadSize 64K")
    c1 = pack_container(containers, "w1", 200000)
    owner = env.client("owner")
    doc = problem(upload(owner, "w1", c1), 413, "body-too-large")
    assert doc["limit"] == 65536
    # Without Content-Length (chunked), noticed while streaming.
    with open(c1, "rb") as f:
        data = f.read()
    owner = env.client("owner")
    r = owner.put("/works/w1", data=iter([data[i:i + 16384] for i in range(0, len(data), 16384)]),
                  headers={"Repr-Digest": repr_digest(data)})
    problem(r, 413, "body-too-large")
    assert not stored(store, "w1") and no_temp_files(store)


@pytest.mark.parametrize("damage", ["junk", "other-work", "truncated", "trailing"])
def test_invalid_container_is_refused(env, containers, damage):
    store = start_store(env)
    with open(pack_container(containers, "w1", 40000), "rb") as f:
        data = f.read()
    if damage == "junk":
        data = b"not a container" * 1000
    elif damage == "other-work":
        with open(pack_container(containers, "w2", 40000), "rb") as f:
            data = f.read()
    elif damage == "truncated":
        data = data[:-1]
    else:
        data = data + b"x"
    r = upload(env.client("owner"), "w1", data)
    doc = problem(r, 400, "invalid-container")
    if damage == "other-work":
        assert "w2" in doc["detail"]
    assert not stored(store, "w1") and no_temp_files(store)


def test_digest_required_and_checked(env, containers):
    store = start_store(env)
    owner = env.client("owner")
    c1 = pack_container(containers, "w1", 40000)
    with open(c1, "rb") as f:
        data = f.read()
    problem(owner.put("/works/w1", data=data), 400, "digest-required")
    problem(upload(owner, "w1", data, digest="sha-256=:bm90IGEgZGlnZXN0:"), 400,
            "digest-required")
    doc = problem(upload(owner, "w1", data, digest=repr_digest(data + b"x")), 400,
                  "digest-mismatch")
    assert "SHA-256" in doc["detail"]
    # Content-Digest (RFC 9530) is accepted as well.
    r = owner.put("/works/w1", data=data, headers={"Content-Digest": repr_digest(data)})
    assert r.status_code == 201, r.text
    assert no_temp_files(store)


def test_interrupted_upload_leaves_nothing(env, containers):
    store = start_store(env)
    c1 = pack_container(containers, "w1", 2000000)
    with open(c1, "rb") as f:
        data = f.read()
    owner = env.pki.client("owner")
    ctx = ssl.create_default_context(cafile=env.pki.ca_cert)
    ctx.load_cert_chain(owner.cert, owner.key)
    raw = socket.create_connection(("127.0.0.1", env.httpd.https_port))
    sock = ctx.wrap_socket(raw, server_hostname="localhost")
    sock.sendall(("PUT /works/w1 HTTP/1.1\r\nHost: localhost\r\nContent-Length: %d\r\n"
                  "Repr-Digest: %s\r\n\r\n" % (len(data), repr_digest(data))).encode())
    sock.sendall(data[:len(data) // 2])
    time.sleep(0.3)
    assert glob.glob(os.path.join(store.storage, ".upload-*")), "upload under way"
    sock.close()
    deadline = time.monotonic() + 10
    while not no_temp_files(store) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert no_temp_files(store) and not stored(store, "w1")
    assert store.query("SELECT COUNT(*) FROM works") == [("0",)]
    env.expect_log("SM02007")


def test_database_down_during_upload_is_503_then_recovers(env, containers):
    store = start_store(env)
    owner = env.client("owner")
    c1 = pack_container(containers, "w1", 40000)
    env.db.stop()
    doc = problem(upload(owner, "w1", c1), 503, "service-unavailable")
    assert "retry" in doc["detail"]
    assert not stored(store, "w1") and no_temp_files(store)
    env.db.start()
    # The same httpd, no restart: the pool replaced its dead connections.
    r = upload(owner, "w1", c1)
    assert r.status_code == 201, r.text
    env.expect_log("SM00011")
    # The delivery-complete notifier polls its queue in the background; a
    # poll that falls into the outage reports it (and retries), as it must.
    env.allow_log("SM02014")


# --- delivery ------------------------------------------------------------------------

@pytest.fixture
def published(env, keyserver, containers):
    store = store_for(env, keyserver, extra=STORE_TUNING)
    env.httpd.start()
    path = pack_container(containers, "w1", 300000)
    assert upload(env.client("owner"), "w1", path).status_code == 201
    assert upload(env.client("owner"), "w2", pack_container(containers, "w2", 1000)).status_code \
        == 201
    with open(path, "rb") as f:
        store.w1 = f.read()
    return store


def bearer(token):
    return {"Authorization": "Bearer " + token}


def test_full_get_with_bearer_or_query_token(env, published, sales):
    player = env.client()
    txn, token = sales.licensed()
    r = player.get("/works/w1", headers=bearer(token))
    assert r.status_code == 200 and r.content == published.w1
    assert r.headers["Content-Type"] == "application/vnd.secmedia.container"
    assert r.headers["Accept-Ranges"] == "bytes" and r.headers["ETag"]
    r = player.get("/works/w1", params={"token": token})
    assert r.status_code == 200 and r.content == published.w1
    # The query token never reaches the access log.
    with open(env.httpd.access_log) as f:
        assert token not in f.read()
    # Delivered: the key server has it, once.
    assert sales.wait_delivered(1) == [(txn, "w1")]
    env.expect_log("SM02011", "SM02012")


def test_plain_http_delivery_uses_sendfile(env, keyserver, containers, sales, sm_workspace):
    """Over plain HTTP (no TLS to pass the bytes through) a container goes
    out with sendfile(2) from the page cache, whole and in ranges: strace
    on httpd's children while a licensed player fetches it."""
    store_for(env, keyserver, extra=STORE_TUNING, plain_http=True)
    env.httpd.start()
    with open(pack_container(containers, "w1", 3000000), "rb") as f:
        data = f.read()
    # No client certificate over plain HTTP, so no upload there.
    problem(upload(env.client(http=True), "w1", data), 403, "client-certificate-required")
    assert upload(env.client("owner"), "w1", data).status_code == 201
    txn, token = sales.licensed()
    player = env.client(http=True)
    with harness.SyscallTrace(env.httpd.pids()[1:], "sendfile",
                              sm_workspace.new_dir("strace-sendfile")) as trace:
        r = player.get("/works/w1", headers=bearer(token))
        assert r.status_code == 200 and r.content == data
        r = player.get("/works/w1", headers=dict(bearer(token), Range="bytes=1000-1999999"))
        assert r.status_code == 206 and r.content == data[1000:2000000]
    sent = trace.returned()
    # Every body byte left through sendfile, and nothing else did.
    assert -1 not in sent and sum(sent) == len(data) + 1999000, sent
    assert sales.wait_delivered(1) == [(txn, "w1")]
    env.expect_log("SM02011", "SM02012")


def test_token_problems(env, published, tokens):
    player = env.client()
    r = player.get("/works/w1")
    problem(r, 401, "token-required")
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
    # A token for work A used on work B.
    problem(player.get("/works/w2", headers=bearer(tokens.delivery("w1"))),
            403, "token-wrong-work")
    # Expired.
    old = tokens.delivery("w1", now=int(time.time()) - 3600, lifetime=600)
    r = player.get("/works/w1", headers=bearer(old))
    problem(r, 401, "token-expired")
    assert 'error="invalid_token"' in r.headers["WWW-Authenticate"]
    # Signed by a key the key server does not publish, under its kid.
    problem(player.get("/works/w1", headers=bearer(tokens.delivery("w1", key=new_p256()))),
            401, "token-invalid")
    # Tampered payload.
    good = tokens.delivery("w1")
    head, payload, sig = good.split(".")
    bad = ".".join([head, payload[:-2] + ("A" if payload[-2] != "A" else "B") + payload[-1], sig])
    problem(player.get("/works/w1", headers=bearer(bad)), 401, "token-invalid")
    # Wrong audience, wrong issuer, another token type, garbage.
    for t in (tokens.delivery("w1", aud="another-store"),
              tokens.delivery("w1", iss="https://evil.example"),
              tokens.sign({"iss": "x"}, typ="secmedia-voucher+jwt"),
              "not.a.token"):
        problem(player.get("/works/w1", headers=bearer(t)), 401, "token-invalid")
    # Both header and query: refused.
    problem(player.get("/works/w1", params={"token": good}, headers=bearer(good)), 400,
            "token-invalid")
    env.allow_log("SM02010")


def jwks_fetches(peer_env, count, timeout=10):
    """GET /v1/jwks answered by the key server: waits for count of them."""
    return len(logged_requests(peer_env, "GET /v1/jwks", count, timeout))


def test_unknown_kid_refreshes_the_jwks_with_a_rate_limit(env, published, tokens, sales,
                                                          keyserver, peer_env):
    player = env.client()
    txn, token = sales.licensed()
    assert player.head("/works/w1", headers=bearer(token)).status_code == 200
    assert jwks_fetches(peer_env, 1) == 1
    # The key server is given a new signing key (restart with one more
    # KeyServerSigningKey): a token under the new kid makes the media
    # store fetch the JWKS again.
    new_key = new_p256()
    path = write_private(os.path.join(peer_env.httpd.conf_dir, "signing-2.jwk"),
                         private_jwk_text(new_key))
    peer_env.httpd.add_vhost_config('KeyServerSigningKey "%s" ks-sig-2\n' % path)
    peer_env.httpd.restart()
    assert "ks-sig-2" in [k["kid"] for k in keyserver.jwks()["keys"]]
    assert jwks_fetches(peer_env, 2) == 2   # ours, just now
    time.sleep(2.1)
    r = player.head("/works/w1", headers=bearer(tokens.delivery("w1", txn=txn, key=new_key,
                                                                kid="ks-sig-2")))
    assert r.status_code == 200, r.text
    assert jwks_fetches(peer_env, 3) == 3
    # Made-up kids right after: no fetch storm (one fetch per 2 s at most).
    for i in range(5):
        problem(player.get("/works/w1", headers=bearer(tokens.delivery("w1", kid="ks-x%d" % i))),
                401, "token-invalid")
    assert jwks_fetches(peer_env, 4, timeout=1) == 3   # a fourth must not come
    env.allow_log("SM02010")


def test_jwks_unreachable_is_503(env, published, tokens, peer_env):
    peer_env.httpd.stop()
    problem(env.client().get("/works/w1", headers=bearer(tokens.delivery("w1"))),
            503, "service-unavailable")
    env.expect_log("SM02009")


@pytest.mark.parametrize("path", [
    "/works/..%2F..%2Fetc%2Fpasswd",
    "/works/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "/works/../../etc/passwd",
    "/works/.hidden",
    "/works/w1%00.smc",
    "/works/w1.smc",
    "/works/w1/../w2",
])
def test_path_traversal_is_impossible(env, published, tokens, path):
    token = tokens.delivery("w1")
    r = env.client().get(path, headers={"Authorization": "Bearer " + token})
    assert r.status_code in (400, 403, 404), r.status_code
    assert b"root:" not in r.content and r.content != published.w1
    env.allow_log("AH00127|AH10244|AH10407|AH00126|SM02010")


def test_ranges(env, published, sales):
    player = env.client()
    # A real license's token: the stale If-Range below gets the whole body,
    # a delivery the key server is told about.
    auth = bearer(sales.licensed()[1])
    size = len(published.w1)
    r = player.get("/works/w1", headers=dict(auth, Range="bytes=100-65635"))
    assert r.status_code == 206
    assert r.headers["Content-Range"] == "bytes 100-65635/%d" % size
    assert r.content == published.w1[100:65636]
    r = player.get("/works/w1", headers=dict(auth, Range="bytes=-10"))
    assert r.status_code == 206 and r.content == published.w1[-10:]
    r = player.get("/works/w1", headers=dict(auth, Range="bytes=%d-" % size))
    problem(r, 416, "range-not-satisfiable")
    assert r.headers["Content-Range"] == "bytes */%d" % size
    # httpd makes the ETag of a file changed within the last second weak,
    # and If-Range needs a strong one.
    time.sleep(1.1)
    etag = player.head("/works/w1", headers=auth).headers["ETag"]
    assert not etag.startswith("W/")
    r = player.get("/works/w1", headers=dict(auth, Range="bytes=0-9", **{"If-Range": etag}))
    assert r.status_code == 206 and r.content == published.w1[:10]
    r = player.get("/works/w1", headers=dict(auth, Range="bytes=0-9", **{"If-Range": '"stale"'}))
    assert r.status_code == 200 and r.content == published.w1
    lm = player.head("/works/w1", headers=auth).headers["Last-Modified"]
    r = player.get("/works/w1", headers=dict(auth, **{"If-None-Match": etag}))
    assert r.status_code == 304
    r = player.get("/works/w1", headers=dict(auth, **{"If-Modified-Since": lm}))
    assert r.status_code == 304
    sales.wait_delivered(1)
    env.expect_log("SM02011", "SM02012")


def test_head(env, published, tokens):
    player = env.client()
    r = player.head("/works/w1", headers={"Authorization": "Bearer " + tokens.delivery("w1")})
    assert r.status_code == 200 and r.content == b""
    assert int(r.headers["Content-Length"]) == len(published.w1)
    r = player.head("/works/w1")
    assert r.status_code == 401 and r.content == b""


def test_missing_work_is_404(env, published, tokens):
    problem(env.client().get("/works/w9", headers={"Authorization": "Bearer "
                                                   + tokens.delivery("w9")}),
            404, "work-not-found")


# --- preview --------------------------------------------------------------------------

def test_preview_upload_and_public_get(env, published):
    owner = env.client("owner")
    preview = b"OggS" + os.urandom(5000)
    problem(upload(owner, "w1", preview, preview=True), 415, "unsupported-media-type")
    r = upload(owner, "w1", preview, preview=True, headers={"Content-Type": "audio/ogg"})
    assert r.status_code == 201, r.text
    r = env.client().get("/works/w1/preview")
    assert r.status_code == 200 and r.content == preview
    assert r.headers["Content-Type"] == "audio/ogg"
    r = env.client().get("/works/w1/preview", headers={"Range": "bytes=0-3"})
    assert r.status_code == 206 and r.content == b"OggS"
    problem(env.client().get("/works/w2/preview"), 404, "preview-not-found")
    problem(upload(owner, "w7", preview, preview=True, headers={"Content-Type": "audio/ogg"}),
            404, "work-not-found")
    problem(upload(env.client("retailer1"), "w1", preview, preview=True,
                   headers={"Content-Type": "audio/ogg"}),
            403, "client-certificate-not-authorized")
    # Replaced: a file of its own, recorded with its type; the old one goes.
    first = published.file_path("w1", preview=True)
    assert re.fullmatch(r"w1\.preview-[0-9a-f]{16}", os.path.basename(first))
    again = b"ID3" + os.urandom(4000)
    r = upload(owner, "w1", again, preview=True, headers={"Content-Type": "audio/mpeg"})
    assert r.status_code == 201, r.text
    r = env.client().get("/works/w1/preview")
    assert r.status_code == 200 and r.content == again
    assert r.headers["Content-Type"] == "audio/mpeg"
    assert [n for n in published.storage_listing() if ".preview" in n] == \
        [os.path.basename(published.file_path("w1", preview=True))]
    assert not os.path.exists(first)


def test_previews_stored_before_schema_3_are_still_served(env, published):
    """Schema version 3 names each preview file in the database; a preview
    stored by an older module (<work>.preview) is named by the migration's
    backfill and served as before, and its replacement removes it."""
    owner = env.client("owner")
    old = b"OggS" + os.urandom(3000)
    assert upload(owner, "w1", old, preview=True,
                  headers={"Content-Type": "audio/ogg"}).status_code == 201
    env.httpd.stop()
    # As a version-2 module left it.
    os.rename(published.file_path("w1", preview=True), os.path.join(published.storage,
                                                                   "w1.preview"))
    env.db.execute("ALTER TABLE works DROP COLUMN preview_file;"
                   "DELETE FROM schema_version WHERE version = 3;", published.db.name)
    out = env.db.migrate(published.db.name, "mediastore", env.sql_dir)
    assert "applied: 0003_preview_files.sql" in out
    env.httpd.start()
    r = env.client().get("/works/w1/preview")
    assert r.status_code == 200 and r.content == old
    assert r.headers["Content-Type"] == "audio/ogg"
    assert upload(owner, "w1", b"new", preview=True,
                  headers={"Content-Type": "audio/ogg"}).status_code == 201
    assert not os.path.exists(os.path.join(published.storage, "w1.preview"))
    assert env.client().get("/works/w1/preview").content == b"new"


# --- delivery-complete -------------------------------------------------------------

def events(store):
    return store.query("SELECT txn, work_id, acked_at IS NOT NULL FROM delivery_events "
                       "ORDER BY id")


def wait_events(store, expected, timeout=10):
    deadline = time.monotonic() + timeout
    while events(store) != expected and time.monotonic() < deadline:
        time.sleep(0.05)
    assert events(store) == expected


def reports_from(peer_env, count=None, timeout=10):
    """The client certificates that posted delivery-complete to the key
    server (its access log); with count, waits for that many."""
    return [line.split('"')[1]
            for line in logged_requests(peer_env, "POST /v1/delivery-complete", count, timeout)]


def test_delivery_complete_after_last_byte(env, published, sales, keyserver, peer_env):
    player = env.client()
    size = len(published.w1)
    txn_a, token_a = sales.licensed()
    auth = bearer(token_a)
    # Ranges that stop short of the end, and HEAD, complete nothing.
    assert player.get("/works/w1", headers=dict(auth, Range="bytes=0-999")).status_code == 206
    assert player.head("/works/w1", headers=auth).status_code == 200
    time.sleep(0.3)
    assert events(published) == []
    # The range holding the last byte does.
    r = player.get("/works/w1", headers=dict(auth, Range="bytes=%d-" % (size - 5000)))
    assert r.status_code == 206
    assert sales.wait_delivered(1) == [(txn_a, "w1")]
    delivered_at = keyserver.query("SELECT delivered_at FROM deliveries WHERE txn = '%s'" % txn_a)
    assert abs(int(delivered_at[0][0]) - time.time()) < 30
    # Sent with the media store's client certificate.
    assert reports_from(peer_env, 1) == [env.pki.client("mediastore").subject_dn]
    wait_events(published, [(txn_a, "w1", "1")])
    # A full GET for another transaction counts too; a repeat is not a new event.
    txn_b, token_b = sales.licensed()
    assert player.get("/works/w1", headers=bearer(token_b)).status_code == 200
    assert player.get("/works/w1", headers=bearer(token_b)).status_code == 200
    assert sales.wait_delivered(2) == sorted([(txn_a, "w1"), (txn_b, "w1")])
    wait_events(published, [(txn_a, "w1", "1"), (txn_b, "w1", "1")])
    assert len(reports_from(peer_env, 3, timeout=1)) == 2   # a third must not come
    # Each is a ledger entry.
    keyserver.ledger_settled()
    assert keyserver.query("SELECT txn FROM ledger WHERE type = 'delivery' ORDER BY seq") == \
        [(txn_a,), (txn_b,)]
    env.expect_log("SM02011", "SM02012")


def test_aborted_full_get_completes_nothing(env, published, keyserver, containers):
    """A player that drops the connection in the middle of a full GET has
    not received the work: no delivery-complete (httpd marks the
    connection aborted when the write fails). Big enough that the socket
    buffers cannot take it all before the drop."""
    big = pack_container(containers, "w-big", 16 * 1024 * 1024)
    with open(big, "rb") as f:
        data = f.read()
    assert upload(env.client("owner"), "w-big", data).status_code == 201
    txn, token = Sales(keyserver, "w-big").licensed()
    ctx = ssl.create_default_context(cafile=env.pki.ca_cert)
    raw = socket.create_connection(("127.0.0.1", env.httpd.https_port))
    sock = ctx.wrap_socket(raw, server_hostname="localhost")
    sock.sendall(("GET /works/w-big HTTP/1.1\r\nHost: localhost\r\n"
                  "Authorization: Bearer %s\r\n\r\n" % token).encode())
    received = b""
    while len(received) < 256 * 1024:
        received += sock.recv(65536)
    assert received.startswith(b"HTTP/1.1 200 ")
    # Reset, not a clean close: what a killed player leaves behind.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()
    assert logged_requests(env, "GET /works/w-big", 1)
    time.sleep(0.5)
    assert events(published) == []
    # The same token, the whole work: now it is delivered.
    r = env.client().get("/works/w-big", headers=bearer(token))
    assert r.status_code == 200 and r.content == data
    wait_events(published, [(txn, "w-big", "1")])
    env.expect_log("SM02011", "SM02012")


def test_delivery_complete_waits_for_the_key_server(env, published, sales, peer_env):
    player = env.client()
    txn, token = sales.licensed()
    assert player.head("/works/w1", headers=bearer(token)).status_code == 200   # JWKS fetched
    peer_env.httpd.stop()
    assert player.get("/works/w1", headers=bearer(token)).status_code == 200
    time.sleep(2.5)   # a few failed attempts (retry interval 1 s)
    rows = published.query("SELECT attempts > 0, acked_at IS NULL FROM delivery_events "
                           "WHERE txn = '%s'" % txn)
    assert rows == [("1", "1")]
    peer_env.httpd.start()
    assert sales.wait_delivered(1) == [(txn, "w1")]
    wait_events(published, [(txn, "w1", "1")])
    env.expect_log("SM02013")


def test_delivery_complete_survives_an_httpd_restart(env, published, sales, peer_env):
    player = env.client()
    txn, token = sales.licensed()
    assert player.head("/works/w1", headers=bearer(token)).status_code == 200   # JWKS fetched
    peer_env.httpd.stop()
    assert player.get("/works/w1", headers=bearer(token)).status_code == 200
    deadline = time.monotonic() + 10
    while published.query("SELECT attempts FROM delivery_events WHERE txn = '%s'" % txn) in \
            ([], [("0",)]) and time.monotonic() < deadline:
        time.sleep(0.05)
    # The media store restarts while the report is still owed; it is sent
    # from the database once the key server is back.
    env.httpd.stop()
    peer_env.httpd.start()
    env.httpd.start()
    assert sales.wait_delivered(1) == [(txn, "w1")]
    wait_events(published, [(txn, "w1", "1")])
    env.expect_log("SM02013")


def test_delivery_complete_refused_for_good_is_not_resent(env, published, sales, tokens,
                                                          peer_env):
    # A paid sale no license was issued for: the key server refuses the
    # report for good (409 no-license). Only a faulty media store or a
    # stolen signing key could produce the token.
    txn = sales.paid()
    assert env.client().get("/works/w1", headers=bearer(tokens.delivery("w1", txn=txn))) \
        .status_code == 200
    query = "SELECT rejected_at IS NOT NULL, acked_at IS NULL, attempts FROM delivery_events"
    deadline = time.monotonic() + 10
    while published.query(query) != [("1", "1", "1")] and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(2.5)   # retry interval 1 s: no further attempt
    assert published.query(query) == [("1", "1", "1")]
    assert len(reports_from(peer_env)) == 1 and sales.delivered() == []
    env.expect_log("SM02017")


def test_delivery_complete_while_the_database_is_down(env, published, sales, peer_env):
    player = env.client()
    txn, token = sales.licensed()
    # Delivery itself needs no database (token checked against the JWKS).
    assert player.head("/works/w1", headers=bearer(token)).status_code == 200
    env.db.stop()   # both servers' databases
    assert player.get("/works/w1", headers=bearer(token)).status_code == 200
    time.sleep(1.5)
    env.db.start()
    assert sales.wait_delivered(1) == [(txn, "w1")]
    env.expect_log("SM02016")
    env.allow_log("SM02014")
    # The key server's sealer may try its queue during the outage.
    peer_env.allow_log("SM01007", "SM01008", "SM00011")
