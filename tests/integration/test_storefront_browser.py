"""The storefront (issue 5) in a real browser against real servers: one
httpd with the media store (/), the key server (/ks) and the retailer
(/shop, storefront under /shop/store/ with a strict Content-Security-Policy);
two works packed and published with the real CLI (one with an ffmpeg-made
preview), contracts, a catalog sync, offers and a redeem code. Debian's
chromium, driven by playwright-core (tests/browser/storefront.test.mjs),
signs up, tops up, searches, plays the preview, registers a device made by
`secmedia keygen`, buys and downloads the .steer twice. Then the .steer is
checked against docs/FORMATS.md §2, its voucher against the key server's
keys and the device, and the device obtains the media key with it; with the
VLC plugin and tests/vlc/vlc_decode built (issue 4), it plays through VLC
to exactly the PCM of the plain file.

Chromium trusts the run's server certificate through
--ignore-certificate-errors-spki-list (the SHA-256 of that one key), not a
blanket ignore and not an NSS database in a home directory: the browser
accepts exactly the key this run made, nothing else, and nothing outside
the run's temp dir is touched."""

import base64
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import time
import types
import uuid

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from jwcrypto import jwk

import harness
from keyserver_setup import Device, b64u_decode, request_license, verify_token
from mediastore_setup import MediaStore
from retail_setup import PASSWORD, Retail

STEER_MAGIC = b"SECMEDIA-STEER/1\n"
# The policy the retailer can serve the store with (docs/STOREFRONT.md):
# the page must work under it, and the browser test fails on any violation.
STORE_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
             "media-src 'self' https:; img-src 'self'; form-action 'none'; base-uri 'none'; "
             "frame-ancestors 'none'")
NODE_TIMEOUT = 300          # the whole browser run; steps have their own waits
CODE_POINTS = 1000
PRICE = 250
RENTAL_PRICE = 120

WORKS = [
    # work id suffix, title, artist, album, tone (Hz), with preview
    ("main", "Aurora Tone", "The Testers", "Harness Sessions", 440, True),
    ("other", "Basalt Drone", "Second Band", "Quiet Rooms", 220, False),
]


def _tool_path(*parts):
    return os.path.join(os.environ["SM_TOP_BUILDDIR"], *parts)


def secmedia(*args, timeout=120):
    result = subprocess.run([_tool_path("tools", "secmedia"), *args], capture_output=True,
                            text=True, timeout=timeout)
    assert result.returncode == 0, "secmedia %s: exit %d\n%s%s" % (
        args[0], result.returncode, result.stdout, result.stderr)
    return result.stdout


def source_tests_dir():
    return os.environ.get("SM_TESTS_SRCDIR") or os.path.dirname(
        os.path.dirname(os.path.abspath(__file__)))


def source_top_dir():
    return os.environ.get("SM_TOP_SRCDIR") or os.path.dirname(source_tests_dir())


def spki_sha256(cert_path):
    """base64(SHA-256(SubjectPublicKeyInfo)) of a PEM certificate: what
    Chromium's --ignore-certificate-errors-spki-list takes."""
    with open(cert_path, "rb") as f:
        cert = x509.load_pem_x509_certificate(f.read())
    der = cert.public_key().public_bytes(serialization.Encoding.DER,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


def find_program(name, hint):
    path = shutil.which(name)
    if path is None:
        pytest.fail("%s not found: %s" % (name, hint), pytrace=False)
    return path


def install_playwright(directory):
    """`npm ci` of tests/browser's package.json and lock into a temp dir
    (the source tree may be read-only); npm's cache makes repeats cheap.
    Returns the node_modules directory."""
    src = os.path.join(source_tests_dir(), "browser")
    os.makedirs(directory, exist_ok=True)
    for name in ("package.json", "package-lock.json"):
        shutil.copyfile(os.path.join(src, name), os.path.join(directory, name))
    npm = find_program("npm", "install Node.js 18+ with npm (.ci/install-deps)")
    result = subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts"],
                            cwd=directory, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, "npm ci in %s failed:\n%s%s" % (
        directory, result.stdout[-3000:], result.stderr[-3000:])
    modules = os.path.join(directory, "node_modules")
    assert os.path.isfile(os.path.join(modules, "playwright-core", "package.json"))
    return modules


def make_tone(path, frequency, seconds, title, artist):
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y",
                    "-f", "lavfi", "-i", "sine=frequency=%d:duration=%g" % (frequency, seconds),
                    "-f", "lavfi", "-i", "sine=frequency=%d:duration=%g" % (frequency * 3 // 2,
                                                                             seconds),
                    "-filter_complex", "amerge=inputs=2", "-c:a", "libvorbis", "-q:a", "4",
                    "-metadata", "title=" + title, "-metadata", "artist=" + artist, path],
                   check=True, timeout=120)
    return path


def publish(env, ks, directory, encryption_key, suffix, title, artist, album, tone, preview):
    """pack + publish with the real CLI, and a contract for retailer1 with
    a purchase and a 48-hour rental. Returns the work's facts."""
    work_id = "sf-%s-%s" % (suffix, uuid.uuid4().hex[:8])
    plain = make_tone(os.path.join(directory, work_id + ".ogg"), tone, 6, title, artist)
    smc = os.path.join(directory, work_id + ".smc")
    key_out = smc + ".key"
    pack = ["pack", plain, "-o", smc, "--work-id", work_id, "--type", "audio/ogg",
            "--recipient", encryption_key, "--key-out", key_out]
    preview_file = None
    if preview:
        preview_file = os.path.join(directory, work_id + ".preview.ogg")
        pack += ["--preview", "4", "--preview-out", preview_file]
    secmedia(*pack)
    with open(key_out) as f:
        media_key = b64u_decode(json.load(f)["k"])
    owner = env.pki.client("owner")
    argv = ["publish", smc, "--key-server", ks.issuer, "--media-store", env.httpd.https_url,
            "--cert", owner.cert, "--key", owner.key, "--ca", env.pki.ca_cert,
            "--title", title, "--artist", artist, "--album", album]
    if preview_file:
        argv += ["--preview", preview_file]
    secmedia(*argv)
    now = int(time.time())
    ks.client("owner").post_json("/v1/contracts", {
        "retailer": "retailer1", "works": [work_id], "currency": "EUR",
        "valid_from": now - 60, "valid_until": now + 86400,
        "licenses": [{"type": "purchase", "price": 199},
                     {"type": "rental", "duration": 172800, "price": 99}],
        "royalties": [{"holder": artist, "share_bps": 10000}]}, expect=201)
    return types.SimpleNamespace(work_id=work_id, title=title, artist=artist, album=album,
                                 plain=plain, smc=smc, media_key=media_key,
                                 preview=preview_file)


def device_from_key_file(path):
    """keyserver_setup.Device around a key made by `secmedia keygen`."""
    dev = Device.__new__(Device)
    with open(path) as f:
        dev.key = jwk.JWK.from_json(f.read())
    dev.jkt = dev.key.thumbprint()
    return dev


# --- processes started for the browser ------------------------------------------------

def _pids_mentioning(text):
    """PIDs whose command line contains text (our own profile dir path)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % entry, "rb") as f:
                cmdline = f.read()
        except OSError:
            continue
        if text.encode() in cmdline:
            found.append(int(entry))
    return [p for p in found if p != os.getpid()]


def stop_browser_leftovers(profile_dir):
    """Chromium runs in a process group of its own (playwright launches it
    detached); if node died before closing it, stop exactly the processes
    started with our profile dir."""
    pids = _pids_mentioning("--user-data-dir=" + profile_dir)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    for pid in harness.wait_until_gone(pids, 10):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    harness.wait_until_gone(pids, 10)
    return pids


def run_browser(node, script, environment, profile_dir):
    """Runs the Node script in a session of its own; on a timeout the whole
    session gets SIGTERM (playwright closes chromium on it), then SIGKILL."""
    proc = subprocess.Popen([node, script], env=environment, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=NODE_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            output, _ = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            output, _ = proc.communicate()
        output += "\n(node killed after %d s)" % NODE_TIMEOUT
    finally:
        leftovers = stop_browser_leftovers(profile_dir)
    return proc.returncode, output, leftovers


# --- the shop and the browser run, once for this module ----------------------------------

@pytest.fixture(scope="module")
def store(sm_workspace, pki, mariadb_server):
    node = find_program("node", "install Node.js 18+ (.ci/install-deps)")
    chromium = find_program("chromium", "install Debian's chromium (.ci/install-deps)")
    base = sm_workspace.new_dir("storefront")
    modules = install_playwright(os.path.join(base, "npm"))

    httpd = harness.Httpd(sm_workspace.new_dir("storefront-httpd"), pki)
    env = harness.Env(pki, httpd, lambda: mariadb_server)
    try:
        issuer = httpd.https_url + "/ks"
        MediaStore(env, keyserver_url=issuer, jwks_url=issuer + "/v1/jwks",
                   extra="MediaStoreTokenIssuer %s\nMediaStoreNotifyRetryInterval 1" % issuer)
        # The storefront's files as `make install` puts them: a copy the
        # httpd children (www-data) can read.
        store_dir = os.path.join(httpd.directory, "storefront")
        shutil.copytree(os.path.join(source_top_dir(), "mod_retail", "storefront"), store_dir,
                        ignore=shutil.ignore_patterns("*.am", "*.in", "Makefile*"))
        for root, dirs, files in os.walk(store_dir):
            os.chmod(root, 0o755)
            for name in files:
                os.chmod(os.path.join(root, name), 0o644)
        shop = Retail(env, media_urls=[httpd.https_url], extra=f"""
RetailStorefrontDir "{store_dir}"
<Location /shop/store/>
    Header always set Content-Security-Policy "{STORE_CSP}"
</Location>""")
        # Range requests and delivery-complete notices of the media store.
        env.allow_log("SM02011", "SM02012")
        httpd.start()
        ks = shop.ks
        admin = ks.client("admin")
        r = admin.post("/v1/owners", json={"owner_id": "owner", "name": "Owner",
                                           "subject_dn": pki.client("owner").subject_dn})
        assert r.status_code in (201, 409), r.text
        shop.register_retailer()

        works_dir = os.path.join(base, "works")
        os.makedirs(works_dir)
        encryption_key = os.path.join(works_dir, "keyserver-encryption.jwk")
        with open(encryption_key, "w") as f:
            json.dump(ks.client().get_json("/v1/encryption-key"), f)
        works = [publish(env, ks, works_dir, encryption_key, *w) for w in WORKS]
        main = works[0]
        synced = shop.sync()
        assert synced["works"] == len(works), synced
        purchase = shop.offer(main.work_id, PRICE)
        shop.offer(main.work_id, RENTAL_PRICE, license={"type": "rental", "duration": 172800})
        shop.offer(works[1].work_id, 300)
        code = shop.codes(CODE_POINTS)[0]

        device_dir = os.path.join(base, "device")
        device_key = os.path.join(device_dir, "device.jwk")
        device_public = os.path.join(device_dir, "device.pub.jwk")
        os.makedirs(device_dir)
        jkt = secmedia("keygen", "--key", device_key, "--public-out", device_public).strip()

        email = "browser-%s@example.org" % uuid.uuid4().hex[:10]
        profile = os.path.join(base, "chromium-profile")
        downloads = os.path.join(base, "downloads")
        result_path = os.path.join(base, "result.json")
        home = os.path.join(base, "home")
        os.makedirs(home)
        environment = {k: v for k, v in os.environ.items()
                       if not k.startswith(("SF_", "PLAYWRIGHT", "DEBUG"))}
        environment.update({
            "HOME": home, "TMPDIR": base,
            # Node's own requests (playwright's route.fetch) trust the run CA.
            "NODE_EXTRA_CA_CERTS": pki.ca_cert,
            "SF_NODE_MODULES": modules,
            "SF_STORE_URL": shop.url + "/store/",
            "SF_CHROMIUM": chromium,
            "SF_SPKI": spki_sha256(pki.server.cert),
            "SF_PROFILE_DIR": profile,
            "SF_DOWNLOAD_DIR": downloads,
            "SF_EMAIL": email,
            "SF_PASSWORD": PASSWORD,
            "SF_CODE": code,
            "SF_CODE_POINTS": str(CODE_POINTS),
            "SF_SEARCH": main.title.split()[0].lower(),
            "SF_TITLE": main.title,
            "SF_ARTIST": main.artist,
            "SF_ALBUM": main.album,
            "SF_ALL_TITLES": json.dumps([w.title for w in works]),
            "SF_OFFER_ID": str(purchase["offer_id"]),
            "SF_PRICE": str(PRICE),
            "SF_DEVICE_PUBLIC": device_public,
            "SF_DEVICE_PRIVATE": device_key,
            "SF_DEVICE_JKT": jkt,
            "SF_RESULT": result_path,
        })
        script = os.path.join(source_tests_dir(), "browser", "storefront.test.mjs")
        rc, output, leftovers = run_browser(node, script, environment, profile)
        try:
            with open(result_path) as f:
                outcome = json.load(f)
        except (OSError, ValueError):
            outcome = {}
        yield types.SimpleNamespace(
            env=env, shop=shop, ks=ks, works=works, main=main, offer=purchase, email=email,
            jkt=jkt, device_key=device_key, rc=rc, output=output, outcome=outcome,
            leftovers=leftovers, base=base)
    finally:
        env.close()
        print("httpd config and logs of the storefront test: %s" % httpd.directory)
        httpd.stop()
    problems = httpd.error_log_violations()
    if problems:
        pytest.fail("error log %s:\n  %s" % (httpd.error_log, "\n  ".join(problems)),
                    pytrace=False)


def require_purchase(store):
    o = store.outcome
    if store.rc != 0 or not o.get("ok"):
        pytest.fail("the browser run failed (exit %s) at step %r:\n%s\n--- node output ---\n%s"
                    "\nscreenshot: %s" % (store.rc, o.get("failedStep"), o.get("error"),
                                          store.output[-6000:], o.get("screenshot")),
                    pytrace=False)


# --- .steer checks (docs/FORMATS.md §2) ---------------------------------------------------

STEER_MEMBERS = {"version", "work_id", "title", "artist", "album", "media_type",
                 "license_url", "media_urls", "preview_url", "transaction_id", "voucher"}
STEER_REQUIRED = {"version", "work_id", "title", "media_type", "license_url", "media_urls",
                  "voucher"}
URL_RE = re.compile(r'^https://[^/@#\s"<>\\^`{|}]+(/[^#\s"<>\\^`{|}]*)?$')


def _no_duplicates(pairs):
    keys = [k for k, _ in pairs]
    assert len(keys) == len(set(keys)), "duplicate members: %s" % keys
    return dict(pairs)


def check_steer(data):
    """The steering file as FORMATS.md §2 defines it; returns its members."""
    assert 0 < len(data) <= 65536, len(data)
    assert data.startswith(STEER_MAGIC), data[:20]
    assert b"\r" not in data, "CR in a steering file"
    text = data[len(STEER_MAGIC):].decode("utf-8")
    assert "\x00" not in text and "\\u0000" not in text
    doc = json.loads(text, object_pairs_hook=_no_duplicates)
    assert isinstance(doc, dict)
    assert set(doc) <= STEER_MEMBERS, set(doc) - STEER_MEMBERS
    assert STEER_REQUIRED <= set(doc), STEER_REQUIRED - set(doc)
    assert all(v is not None for v in doc.values())
    assert doc["version"] == 1 and type(doc["version"]) is int
    assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", doc["work_id"])
    for member in ("title", "artist", "album"):
        if member in doc:
            value = doc[member]
            assert isinstance(value, str) and 1 <= len(value.encode()) <= 512
            assert not re.search(r"[\x00-\x1f\x7f]", value)
    assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,62}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,62}",
                        doc["media_type"]) and len(doc["media_type"]) <= 127
    urls = [doc["license_url"]] + doc["media_urls"] + (
        [doc["preview_url"]] if "preview_url" in doc else [])
    for url in urls:
        assert isinstance(url, str) and len(url) <= 2048 and URL_RE.match(url), url
    assert 1 <= len(doc["media_urls"]) <= 8 and len(set(doc["media_urls"])) == len(
        doc["media_urls"])
    if "transaction_id" in doc:
        assert re.fullmatch(r"[A-Za-z0-9_-]{1,64}", doc["transaction_id"])
    voucher = doc["voucher"]
    assert len(voucher) <= 8192
    segments = voucher.split(".")
    assert len(segments) == 3 and all(re.fullmatch(r"[A-Za-z0-9_-]+", s) for s in segments)
    assert all(len(s) % 4 != 1 for s in segments)
    return doc


# --- tests ------------------------------------------------------------------------------------

def test_storefront_purchase_in_browser(store):
    """Sign up, top up, search, preview, device, buy, download: the browser
    run passed every step, and what it downloaded is the order's .steer,
    valid, bound to the registered device, and good for a license."""
    require_purchase(store)
    o = store.outcome
    assert store.leftovers == [], "chromium processes left running: %s" % store.leftovers
    main = store.main
    order_id = o["orderId"]

    # The preview that played is the media store's preview of the work.
    assert o["preview"]["src"] == "%s/works/%s/preview" % (store.env.httpd.https_url,
                                                          main.work_id)

    # Both downloads: named as the server names them, the same bytes as
    # the API gives the buyer.
    assert o["download"]["suggested"] == order_id + ".steer"
    assert o["redownload"]["suggested"] == order_id + ".steer"
    with open(o["download"]["path"], "rb") as f:
        bought = f.read()
    with open(o["redownload"]["path"], "rb") as f:
        again = f.read()
    assert bought == again
    buyer = store.shop.consumer(store.shop.login(store.email))
    r = buyer.get("/v1/orders/%s/steer" % order_id)
    assert r.status_code == 200 and r.content == bought

    # Two orders (the purchase, whose first answer was lost and which the
    # retry completed, and the rental), each charged once from the code.
    rental_id = o["rentalOrderId"]
    assert o["rentalPrice"] == RENTAL_PRICE
    orders = {x["order_id"]: x for x in buyer.json("GET", "/v1/orders")["orders"]}
    assert set(orders) == {order_id, rental_id}
    for oid, price, license in ((order_id, PRICE, {"type": "purchase"}),
                                (rental_id, RENTAL_PRICE, {"type": "rental",
                                                           "duration": 172800})):
        x = orders[oid]
        assert (x["state"], x["price"], x["device_jkt"], x["work_id"], x["license"]) == (
            "completed", price, store.jkt, main.work_id, license), x
    wallet = buyer.json("GET", "/v1/wallet")
    assert wallet["balance"] == CODE_POINTS - PRICE - RENTAL_PRICE
    assert sorted((e["kind"], e["amount"]) for e in wallet["entries"]) == [
        ("order", -PRICE), ("order", -RENTAL_PRICE), ("redeem", CODE_POINTS)]
    devices = buyer.json("GET", "/v1/devices")["devices"]
    assert [(d["jkt"], d.get("name")) for d in devices] == [(store.jkt, "Living room VLC")]

    # FORMATS.md §2, and what it says about this purchase.
    doc = check_steer(bought)
    assert doc["work_id"] == main.work_id and doc["title"] == main.title
    assert doc["artist"] == main.artist and doc["media_type"] == "audio/ogg"
    assert doc["license_url"] == store.ks.license_url
    assert doc["media_urls"] == ["%s/works/%s" % (store.env.httpd.https_url, main.work_id)]
    claims = verify_token(store.ks.jwks(), doc["voucher"], "secmedia-voucher+jwt")
    assert claims["jkt"] == store.jkt and claims["work_id"] == main.work_id
    assert claims["retailer"] == "retailer1" and claims["license"] == {"type": "purchase"}

    # Bound to that device: another device is refused, this one gets the key.
    stranger = Device()
    refused = request_license(store.ks, stranger, doc["voucher"])
    assert 400 <= refused.status_code < 500, refused.text
    device = device_from_key_file(store.device_key)
    assert device.jkt == store.jkt
    r = request_license(store.ks, device, doc["voucher"])
    assert r.status_code == 200, r.text
    assert device.open_key(r.json()["key_jwe"]) == main.media_key


def _vlc_helpers():
    """vlc_setup (issue 4's VLC end-to-end helpers) and the plugin, when
    this tree has them; otherwise the reason they are missing."""
    try:
        import vlc_setup
    except ImportError:
        return None, "tests/integration/vlc_setup.py is not in this tree (issue 4 not merged)"
    if not os.access(vlc_setup.decoder_path(), os.X_OK):
        return None, "tests/vlc/vlc_decode is not built (%s)" % vlc_setup.decoder_path()
    missing = vlc_setup.plugin_missing_reason()
    if missing is not None:
        kind, text = missing
        if kind == "placeholder":
            return None, text + ": vlc_access_secmedia/ is still the placeholder"
        pytest.fail(text)
    return vlc_setup, None


def test_storefront_steer_plays_in_vlc(store):
    """The .steer the browser downloaded plays through the secmedia VLC
    plugin (real libvlc, license from the key server, media from the media
    store) to exactly the PCM of the plain file decoded the same way."""
    vs, reason = _vlc_helpers()
    if vs is None:
        pytest.skip(reason)
    require_purchase(store)
    out = os.path.join(store.base, "vlc")
    plain = vs.decode(store.main.plain, out, "plain", plugin=False, fail_module=None)
    assert plain.returncode == 0, plain.describe()
    assert len(plain.audio) > 44100 * 4, plain.describe()
    args = vs.plugin_args(store.device_key, store.env.pki.ca_cert, os.path.join(out, "offline"))
    got = vs.decode(store.outcome["download"]["path"], out, "steer", vlc_args=args)
    assert got.returncode == 0, got.describe()
    assert got.audio == plain.audio, (
        "the .steer's PCM differs from the plain file's: %d vs %d bytes"
        % (len(got.audio), len(plain.audio)))
