"""DESIGN flows 1, 5, 6 and 7 across the real key server and media store in
one httpd: `secmedia pack` + `secmedia publish`, a sale, a license, the
delivery with the key server's token, delivery-complete back to the key
server, and the plaintext recovered with the licensed key."""

import json
import os
import secrets
import subprocess
import time

from keyserver_setup import KeyServer, Device, request_license, b64u
from mediastore_setup import MediaStore


def _secmedia(*args, check=True):
    tool = os.path.join(os.environ["SM_TOP_BUILDDIR"], "tools", "secmedia")
    result = subprocess.run([tool, *args], capture_output=True, text=True, timeout=120)
    if check and result.returncode != 0:
        raise AssertionError("secmedia %s: exit %d\n%s%s" % (
            args[0], result.returncode, result.stdout, result.stderr))
    return result


def _servers(env):
    """The media store on /, the key server on /ks (the more specific
    <Location>, configured after, wins there), started, with the owner and
    retailer1 registered: (media store, key server)."""
    issuer = env.httpd.https_url + "/ks"
    ms = MediaStore(env, keyserver_url=issuer, jwks_url=issuer + "/v1/jwks",
                    extra="MediaStoreTokenIssuer %s\nMediaStoreNotifyRetryInterval 1" % issuer)
    ks = KeyServer(env, location="/ks")
    assert ks.issuer == issuer
    env.httpd.start()
    admin = ks.client("admin")
    for role, path, id_key in (("owner", "/v1/owners", "owner_id"),
                               ("retailer1", "/v1/retailers", "retailer_id")):
        admin.post_json(path, {id_key: role, "name": role,
                               "subject_dn": env.pki.client(role).subject_dn}, expect=201)
    return ms, ks


def _packed(ks, work, work_id):
    """A random 'song' packed for the key server: (plain path, .smc path)."""
    plain = os.path.join(work, work_id + ".ogg")
    with open(plain, "wb") as f:
        f.write(secrets.token_bytes(50000))
    enc = os.path.join(work, "keyserver-encryption.jwk")
    with open(enc, "w") as f:
        json.dump(ks.client().get_json("/v1/encryption-key"), f)
    smc = os.path.join(work, work_id + ".smc")
    _secmedia("pack", plain, "-o", smc, "--work-id", work_id, "--recipient", enc)
    return plain, smc


def _publish_args(env, ks, smc):
    owner = env.pki.client("owner")
    return ["publish", smc, "--key-server", ks.issuer, "--media-store", env.httpd.https_url,
            "--cert", owner.cert, "--key", owner.key, "--ca", env.pki.ca_cert]


def test_publish_sell_license_deliver(env, sm_workspace):
    ms, ks = _servers(env)
    issuer = ks.issuer

    # Flow 1: pack for the key server's encryption key, then publish.
    work = sm_workspace.new_dir("publish")
    plain, smc = _packed(ks, work, "w-pub")
    preview = os.path.join(work, "song.preview.ogg")
    with open(preview, "wb") as f:
        f.write(b"OggS" + secrets.token_bytes(1000))
    publish = _publish_args(env, ks, smc) + ["--title", "Published Song",
                                             "--artist", "Flow One", "--preview", preview]
    out = _secmedia(*publish).stdout
    assert "stored" in out and "work w-pub registered" in out
    assert os.path.exists(ms.file_path("w-pub")) and os.path.exists(ms.file_path("w-pub", True))
    meta = ks.client("owner").get_json("/v1/works/w-pub")
    assert meta["title"] == "Published Song" and meta["media_type"] == "audio/ogg"

    # Publishing again: the stores already have it, the key server refuses
    # to replace the key.
    again = _secmedia(*publish, check=False)
    assert again.returncode == 8 and "already stored" in again.stdout
    assert "already registered" in again.stderr

    # A damaged container is refused before anything is sent.
    broken = os.path.join(work, "broken.smc")
    with open(smc, "rb") as src, open(broken, "wb") as dst:
        dst.write(src.read()[:-10])
    bad = _secmedia("publish", broken, "--jwe", smc + ".jwe",
                    *publish[2:], check=False)
    assert bad.returncode == 4 and "size does not match" in bad.stderr

    # Flows 2, 5: contract, sale.
    now = int(time.time())
    ks.client("owner").post_json("/v1/contracts", {
        "retailer": "retailer1", "works": ["w-pub"], "currency": "EUR",
        "valid_from": now - 10, "valid_until": now + 3600,
        "licenses": [{"type": "purchase", "price": 250}],
        "royalties": [{"holder": "Flow One", "share_bps": 10000}]}, expect=201)
    retailer = ks.client("retailer1")
    device = Device()
    reservation = retailer.post_json("/v1/reservations", {
        "reservation_ref": "order-1", "work_id": "w-pub", "license": {"type": "purchase"},
        "jkt": device.jkt}, expect=201)
    retailer.post_json("/v1/payments", {"txn": reservation["txn"], "payment_ref": "order-1",
                                        "amount": 250, "currency": "EUR"}, expect=201)

    # Flow 6: the license.
    lic = request_license(ks, device, reservation["voucher"])
    assert lic.status_code == 200, lic.text
    lic = lic.json()
    media_key = device.open_key(lic["key_jwe"])

    # Flow 7: the container from the media store with the delivery token.
    player = env.client()
    r = player.get("/works/w-pub", headers={"Authorization": "Bearer " + lic["delivery_token"]})
    assert r.status_code == 200, r.text
    with open(smc, "rb") as f:
        assert r.content == f.read()
    # The licensed key opens it.
    key_file = os.path.join(work, "licensed.jwk")
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"kty": "oct", "k": b64u(media_key)}, f)
    got = os.path.join(work, "song.out")
    _secmedia("unpack", smc, "--key", key_file, "-o", got)
    with open(plain, "rb") as a, open(got, "rb") as b:
        assert a.read() == b.read()

    # Delivery-complete reaches the key server and its ledger.
    deadline = time.time() + 20
    while time.time() < deadline and ks.query("SELECT COUNT(*) FROM deliveries") != [("1",)]:
        time.sleep(0.2)
    assert ks.query("SELECT txn, work_id FROM deliveries") == [(reservation["txn"], "w-pub")]
    ks.ledger_settled()                     # the delivery's entry is queued, then chained
    assert ks.query("SELECT COUNT(*) FROM ledger WHERE type = 'delivery'") == [("1",)]
    env.allow_log("SM02011", "SM02012")


def test_publish_sends_every_metadata_option_and_checks_it_first(env, sm_workspace):
    ms, ks = _servers(env)
    work = sm_workspace.new_dir("publish-meta")
    _, smc = _packed(ks, work, "w-meta")
    lyrics = os.path.join(work, "lyrics.txt")
    with open(lyrics, "w", encoding="utf-8") as f:
        f.write("Première ligne\n\tdeuxième — ligne\n")
    notes = os.path.join(work, "notes.txt")
    with open(notes, "w", encoding="utf-8") as f:
        f.write("Recorded live, 2026.\nMixed in one take.")
    latin1 = os.path.join(work, "latin1.txt")
    with open(latin1, "wb") as f:
        f.write("Première".encode("latin-1"))
    base = _publish_args(env, ks, smc) + ["--title", "Meta Song"]
    tool = os.path.join(os.environ["SM_TOP_BUILDDIR"], "tools", "secmedia")

    def nothing_sent():
        assert not os.path.exists(ms.file_path("w-meta"))
        assert ks.query("SELECT COUNT(*) FROM works WHERE work_id = 'w-meta'") == [("0",)]

    # Every local input is checked before the first byte goes out: a
    # lyrics file that is not UTF-8, a missing notes file, an argument
    # that is not UTF-8, an artwork URL that is not https.
    bad = _secmedia(*base, "--lyrics", latin1, check=False)
    assert bad.returncode == 4 and "not UTF-8" in bad.stderr, bad.stderr
    nothing_sent()
    bad = _secmedia(*base, "--liner-notes", os.path.join(work, "missing.txt"), check=False)
    assert bad.returncode == 3 and "missing.txt" in bad.stderr, bad.stderr
    nothing_sent()
    bad = subprocess.run([tool, *base, "--album", b"Caf\xe9"], capture_output=True,
                         timeout=120)
    assert bad.returncode == 2 and b"UTF-8" in bad.stderr, bad.stderr
    nothing_sent()
    bad = _secmedia(*base, "--artwork", "http://cdn.example/art.jpg", check=False)
    assert bad.returncode == 2 and "--artwork" in bad.stderr, bad.stderr
    nothing_sent()

    out = _secmedia(*base, "--artist", "Ärtist", "--album", "Album №1", "--credits",
                    "Words & music: A. N. Other", "--lyrics", lyrics, "--liner-notes", notes,
                    "--artwork", "https://cdn.example/art/w-meta.jpg?size=large").stdout
    assert "work w-meta registered" in out
    meta = ks.client("owner").get_json("/v1/works/w-meta")
    assert {k: meta.get(k) for k in ("title", "artist", "album", "credits", "lyrics",
                                     "liner_notes", "artwork_ref", "media_type")} == {
        "title": "Meta Song", "artist": "Ärtist", "album": "Album №1",
        "credits": "Words & music: A. N. Other",
        "lyrics": "Première ligne\n\tdeuxième — ligne\n",
        "liner_notes": "Recorded live, 2026.\nMixed in one take.",
        "artwork_ref": "https://cdn.example/art/w-meta.jpg?size=large",
        "media_type": "audio/ogg"}
    assert os.path.exists(ms.file_path("w-meta"))
