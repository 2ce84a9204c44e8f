#!/usr/bin/python3
"""secmedia quickstart: the whole system on this machine, a work sold and played.

Called by ../quickstart after the build (README command 1). It starts a
private MariaDB and one httpd with the three modules (key server, media
store, retailer: one HTTPS virtual host each, on loopback) in a run
directory, with certificates from a CA made for this run; registers an
owner and a retailer; packs and publishes a sample work; signs a contract;
sets up the shop's catalog and a consumer with a device key and points;
buys the work, writes the .steer, and plays it through the VLC plugin.

The servers keep running afterwards (the storefront URL is printed) until
`./quickstart --stop`. Running it again stops the previous run first and
starts from a clean run directory.

It drives the servers with the classes the integration tests use
(tests/integration/harness.py: CA, MariaDB, httpd), in a directory that is
kept instead of a temp dir, and the real `secmedia` CLI and REST APIs for
everything else.
"""

import argparse
import hashlib
import json
import os
import secrets
import shutil
import signal
import stat
import subprocess
import sys
import time
import uuid

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.environ.get("SM_TOP_BUILDDIR", os.path.join(TOP, "build"))
os.environ.setdefault("SM_TOP_BUILDDIR", BUILD)
os.environ.setdefault("SM_TOP_SRCDIR", TOP)
sys.path.insert(0, os.path.join(TOP, "tests", "integration"))

import harness  # noqa: E402  (needs the path above)

STATE_FILE = "state.json"
ROLES = ("admin", "owner", "shop", "shop-admin", "mediastore", "auditor")
OWNER_ID = "label-1"
RETAILER_ID = "shop-1"
MEDIA_STORE_ID = "mediastore-1"


def say(msg):
    print("quickstart: " + msg, flush=True)


class QuickstartError(Exception):
    pass


# --- where the run lives ----------------------------------------------------------

def _traversable_by_others(path):
    """True when every directory from / to path lets others in (httpd's
    children run as www-data and must reach the sockets and storage)."""
    path = os.path.abspath(path)
    while True:
        try:
            mode = os.stat(path).st_mode
        except FileNotFoundError:
            mode = stat.S_IXOTH
        if not mode & stat.S_IXOTH:
            return False
        parent = os.path.dirname(path)
        if parent == path:
            return True
        path = parent


def run_dir():
    """./run/quickstart, or (when the checkout is private to its owner, e.g.
    under /root) a directory in /var/tmp linked from there."""
    if os.environ.get("SM_QUICKSTART_DIR"):       # tests: outside the source tree
        return os.path.abspath(os.environ["SM_QUICKSTART_DIR"])
    link = os.path.join(TOP, "run", "quickstart")
    if os.path.islink(link):
        return os.path.realpath(link)
    if _traversable_by_others(os.path.join(TOP, "run")) or os.geteuid() != 0:
        return link
    tag = hashlib.sha256(TOP.encode()).hexdigest()[:8]
    return "/var/tmp/secmedia-quickstart-" + tag


def prepare_run_dir(path):
    if os.path.isdir(path):
        shutil.rmtree(path)
    os.makedirs(path, mode=0o755)
    os.chmod(path, 0o755)
    if os.environ.get("SM_QUICKSTART_DIR"):
        return
    link = os.path.join(TOP, "run", "quickstart")
    os.makedirs(os.path.dirname(link), exist_ok=True)
    if os.path.realpath(link) != os.path.realpath(path):
        if os.path.islink(link) or os.path.exists(link):
            if os.path.islink(link):
                os.unlink(link)
            else:
                shutil.rmtree(link)
        os.symlink(path, link)


def write_private(path, text):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return path


def b64u(data):
    import base64
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


# --- stop -----------------------------------------------------------------------

def _pid_alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def _process_matches(pid, expected_start):
    """The PID still names the process we started (not a reused PID)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[19]) == expected_start
    except (OSError, IndexError, ValueError):
        return False


def _children(pid):
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            return [int(c) for c in f.read().split()]
    except (OSError, ValueError):
        return []


def _wait_gone(pids, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        pids = [p for p in pids if _pid_alive(p[0]) and _process_matches(*p)]
        if not pids:
            return []
        time.sleep(0.1)
    return pids


def stop(directory, quiet=False):
    """Stop the servers of a previous run (from its state file): each
    process and the children it has (httpd's), none left behind even when
    a slow (e.g. sanitizer) build needs the hard way."""
    state_path = os.path.join(directory, STATE_FILE)
    if not os.path.exists(state_path):
        if not quiet:
            say("nothing to stop (no run in %s)" % directory)
        return
    with open(state_path) as f:
        state = json.load(f)
    # Last started, first stopped: httpd before the database it uses.
    for proc in reversed(state.get("processes", [])):
        pid, label = proc["pid"], proc["label"]
        if not _process_matches(pid, proc["start_time"]):
            continue
        family = [(pid, proc["start_time"])]
        for child in _children(pid):
            try:
                family.append((child, _start_time(child)))
            except (OSError, IndexError, ValueError):
                pass
        if proc.get("stop_argv"):
            subprocess.run(proc["stop_argv"], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, timeout=60)
        else:
            os.kill(pid, signal.SIGTERM)
        left = _wait_gone(family, 60)
        for signum in (signal.SIGTERM, signal.SIGKILL):
            for other, _ in left:
                try:
                    os.kill(other, signum)
                except ProcessLookupError:
                    pass
            left = _wait_gone(left, 10)
        if not quiet:
            say("stopped %s (pid %d)" % (label, pid))
    os.unlink(state_path)


def _start_time(pid):
    with open("/proc/%d/stat" % pid) as f:
        return int(f.read().rsplit(")", 1)[1].split()[19])


# --- the run ----------------------------------------------------------------------

class Quickstart:
    def __init__(self, directory, media=None, listen=False):
        self.dir = directory
        self.media = media
        self.listen = listen
        self.cli = os.path.join(BUILD, "tools", "secmedia")
        self.work_dir = os.path.join(directory, "work")
        self.consumer_dir = os.path.join(directory, "consumer")
        self.summary = []

    # servers -------------------------------------------------------------------

    def start_servers(self):
        say("1. a CA for this run, server and client certificates")
        self.pki = harness.TestPKI(os.path.join(self.dir, "pki"), roles=ROLES)
        say("2. MariaDB (private, Unix socket only) with one database per role")
        self.db = harness.MariaDB(os.path.join(self.dir, "mariadb"))
        self.db.start()
        self.databases = {}
        for role in ("keyserver", "mediastore", "retail"):
            database = self.db.create_role_database(role)
            self.db.migrate(database.name, role, os.path.join(TOP, "sql"))
            self.databases[role] = database
        say("3. httpd with mod_ssl and the secmedia modules")
        self.httpd = harness.Httpd(os.path.join(self.dir, "httpd"), self.pki)
        self.keyserver_url = self.httpd.https_url
        self.mediastore_port = harness.free_port()
        self.mediastore_url = "https://localhost:%d" % self.mediastore_port
        self.retail_port = harness.free_port()
        self.retail_url = "https://localhost:%d" % self.retail_port
        self._configure_keyserver()
        self._configure_mediastore()
        self._configure_retail()
        self.httpd.start()
        self.state = {"processes": []}
        self._remember(self.db.pid, "mariadbd", None)
        self._remember(self.httpd.master_pid, "httpd",
                       [harness.APACHE_BIN, "-f", self.httpd.config_file, "-k", "stop"])

    def _remember(self, pid, label, stop_argv):
        self.state["processes"].append({"pid": pid, "label": label,
                                        "start_time": _start_time(pid),
                                        "stop_argv": stop_argv})
        with open(os.path.join(self.dir, STATE_FILE), "w") as f:
            json.dump(self.state, f, indent=1)

    def _password_file(self, role):
        return write_private(os.path.join(self.httpd.conf_dir, role + "-db.password"),
                             self.databases[role].password + "\n")

    def _configure_keyserver(self):
        conf = self.httpd.conf_dir
        keys = os.path.join(conf, "keyserver")
        os.makedirs(keys, mode=0o700)
        kek = {"format": "secmedia-kek/1", "current": 1,
               "keys": [{"version": 1, "key": b64u(secrets.token_bytes(32))}]}
        write_private(os.path.join(keys, "kek.json"), json.dumps(kek))
        for name in ("signing-1", "encryption-1"):
            self._run([self.cli, "keygen", "--key", os.path.join(keys, name + ".jwk")])
        db = self.databases["keyserver"]
        roles = "\n".join('KeyServerClientRole %s "%s"' % (role, self.pki.client(name).subject_dn)
                          for role, name in (("admin", "admin"), ("owner", "owner"),
                                             ("retailer", "shop"),
                                             ("mediastore", "mediastore"),
                                             ("auditor", "auditor")))
        self.httpd.load_module(harness.module_path("mod_keyserver"))
        self.httpd.add_vhost_config(f"""
KeyServerIssuer {self.keyserver_url}
KeyServerKEKFile "{keys}/kek.json"
KeyServerSigningKey "{keys}/signing-1.jwk" ks-sig-1 active
KeyServerEncryptionKey "{keys}/encryption-1.jwk" ks-enc-1
KeyServerMediaStoreID {MEDIA_STORE_ID}
KeyServerDBSocket "{db.socket}"
KeyServerDBUser {db.user}
KeyServerDBPasswordFile "{self._password_file('keyserver')}"
KeyServerDBName {db.name}
{roles}
<Location />
    SetHandler secmedia-keyserver
    Require all granted
</Location>
""")

    def _configure_mediastore(self):
        storage = os.path.join(self.httpd.directory, "storage")
        os.makedirs(storage)
        if os.geteuid() == 0:
            import pwd
            user = pwd.getpwnam("www-data")
            os.chown(storage, user.pw_uid, user.pw_gid)
            os.chmod(storage, 0o750)
        db = self.databases["mediastore"]
        ms = self.pki.client("mediastore")
        self.httpd.load_module(harness.module_path("mod_mediastore"))
        self.httpd.add_config(self._vhost(self.mediastore_port, f"""
MediaStoreStorageDir "{storage}"
MediaStoreDBSocket "{db.socket}"
MediaStoreDBUser {db.user}
MediaStoreDBPasswordFile "{self._password_file('mediastore')}"
MediaStoreDBName {db.name}
MediaStoreClientRole owner "{self.pki.client('owner').subject_dn}"
MediaStoreKeyServerURL {self.keyserver_url}
MediaStoreKeyServerJWKSURL {self.keyserver_url}/v1/jwks
MediaStoreKeyServerCAFile "{self.pki.ca_cert}"
MediaStoreClientCertFile "{ms.cert}"
MediaStoreClientKeyFile "{ms.key}"
MediaStoreTokenIssuer {self.keyserver_url}
MediaStoreTokenAudience {MEDIA_STORE_ID}
<Location />
    SetHandler secmedia-mediastore
    Require all granted
</Location>
"""))

    def _configure_retail(self):
        db = self.databases["retail"]
        shop = self.pki.client("shop")
        storefront = os.path.join(TOP, "mod_retail", "storefront")
        storefront_conf = ('RetailStorefrontDir "%s"' % storefront
                           if os.path.isfile(os.path.join(storefront, "index.html")) else "")
        self.httpd.load_module(harness.module_path("mod_retail"))
        self.httpd.add_config(self._vhost(self.retail_port, f"""
RetailKeyServerURL {self.keyserver_url}
RetailKeyServerCAFile "{self.pki.ca_cert}"
RetailClientCertFile "{shop.cert}"
RetailClientKeyFile "{shop.key}"
RetailClientRole admin "{self.pki.client('shop-admin').subject_dn}"
RetailCurrency EUR
RetailMediaStoreURL {self.mediastore_url}
RetailPasswordCost 14
{storefront_conf}
RetailDBSocket "{db.socket}"
RetailDBUser {db.user}
RetailDBPasswordFile "{self._password_file('retail')}"
RetailDBName {db.name}
<Location />
    SetHandler secmedia-retail
    Require all granted
</Location>
"""))

    def _vhost(self, port, body):
        pki = self.pki
        inner = "\n".join("    " + line for line in body.strip().splitlines())
        return f"""
Listen 127.0.0.1:{port} https
<VirtualHost 127.0.0.1:{port}>
    ServerName localhost
    SSLEngine on
    SSLCertificateFile "{pki.server.cert}"
    SSLCertificateKeyFile "{pki.server.key}"
    SSLCACertificateFile "{pki.ca_cert}"
    SSLVerifyClient optional
    SSLVerifyDepth 2
{inner}
</VirtualHost>
"""

    def client(self, base_url, role=None):
        credential = self.pki.client(role) if role else None
        return harness.Client(base_url, self.pki.ca_cert, credential, timeout=30)

    # the owner's side ------------------------------------------------------------

    def register_parties(self):
        say("4. the key server's admin registers the owner and the retailer")
        admin = self.client(self.keyserver_url, "admin")
        admin.post_json("/v1/owners", {"owner_id": OWNER_ID, "name": "Example Records",
                                       "subject_dn": self.pki.client("owner").subject_dn},
                        expect=201)
        admin.post_json("/v1/retailers", {"retailer_id": RETAILER_ID, "name": "Example Shop",
                                          "subject_dn": self.pki.client("shop").subject_dn},
                        expect=201)

    def sample_media(self):
        os.makedirs(self.work_dir)
        if self.media:
            return self.media
        path = os.path.join(self.work_dir, "sample.ogg")
        say("5. no media file given: generating a 20-second sample track with ffmpeg")
        self._run(["ffmpeg", "-nostdin", "-v", "error",
                   "-f", "lavfi", "-i", "sine=frequency=330:duration=20",
                   "-f", "lavfi", "-i", "sine=frequency=495:duration=20",
                   "-filter_complex", "amerge=inputs=2", "-c:a", "libvorbis", "-q:a", "4",
                   "-metadata", "title=Quickstart Tone", "-metadata", "artist=secmedia",
                   path])
        return path

    def publish(self, media):
        say("6. the owner packs the work (new media key, wrapped to the key server) and"
            " publishes it (container and preview to the media store, key to the key server)")
        owner_cert = self.pki.client("owner")
        enc = self.client(self.keyserver_url).get_json("/v1/encryption-key")
        enc_path = os.path.join(self.work_dir, "keyserver-encryption.jwk")
        with open(enc_path, "w") as f:
            json.dump(enc, f)
        self.work_id = "sample-" + uuid.uuid4().hex[:8]
        container = os.path.join(self.work_dir, "work.smc")
        self._run([self.cli, "pack", media, "-o", container, "--work-id", self.work_id,
                   "--recipient", enc_path, "--preview", "10"])
        preview = [os.path.join(self.work_dir, n) for n in os.listdir(self.work_dir)
                   if n.startswith("work.preview.")]
        argv = [self.cli, "publish", container, "--key-server", self.keyserver_url,
                "--media-store", self.mediastore_url, "--cert", owner_cert.cert,
                "--key", owner_cert.key, "--ca", self.pki.ca_cert,
                "--title", "Quickstart Tone", "--artist", "secmedia",
                "--album", "Quickstart"]
        if preview:
            argv += ["--preview", preview[0]]
        self._run(argv)
        self.summary.append("work %s published (%s)" % (self.work_id, container))

    def contract(self):
        say("7. the owner grants the retailer a contract: purchase and 48-hour rental")
        owner = self.client(self.keyserver_url, "owner")
        now = int(time.time())
        self.contract_doc = owner.post_json("/v1/contracts", {
            "retailer": RETAILER_ID, "works": [self.work_id], "currency": "EUR",
            "valid_from": now - 60, "valid_until": now + 365 * 86400,
            "licenses": [{"type": "purchase", "price": 99},
                         {"type": "rental", "duration": 172800, "price": 49}],
            "royalties": [{"holder": "Example Records", "share_bps": 7000},
                          {"holder": "The Artist", "share_bps": 3000}]}, expect=201)

    # the retailer's side ----------------------------------------------------------

    def setup_shop(self):
        say("8. the retailer syncs its catalog from the key server's inventory, sets a"
            " retail offer, and its admin issues a redeemable code for 500 points")
        admin = self.client(self.retail_url, "shop-admin")
        admin.post_json("/v1/admin/catalog/sync", {}, expect=200)
        self.offer = admin.post_json("/v1/admin/offers", {
            "work_id": self.work_id, "license": {"type": "purchase"}, "price": 150},
            expect=201)
        self.code = admin.post_json("/v1/admin/codes", {"points": 500, "count": 1},
                                    expect=201)["codes"][0]

    # the consumer's side ----------------------------------------------------------

    def consumer_account(self):
        say("9. a consumer (an unprivileged user: %s) makes a device key with"
            " `secmedia keygen`, signs up, registers the key and redeems the code"
            % self.consumer_user())
        os.makedirs(self.consumer_dir, mode=0o700)
        self._as_consumer_owned(self.consumer_dir)
        # What the consumer runs, where that user can read it (the checkout
        # may be private to root): the CLI and the plugin as built.
        self.consumer_bin = os.path.join(self.dir, "bin")
        self.plugin_dir = os.path.join(self.dir, "vlc-plugins")
        for directory in (self.consumer_bin, self.plugin_dir):
            os.makedirs(directory, mode=0o755)
        shutil.copy2(self.cli, self.consumer_bin)
        plugin = os.path.join(BUILD, "vlc_access_secmedia", ".libs", "libsecmedia_plugin.so")
        if not os.path.isfile(plugin):
            raise QuickstartError("the VLC plugin was not built (%s missing)" % plugin)
        shutil.copy2(plugin, self.plugin_dir)
        self._run_as_consumer([os.path.join(self.consumer_bin, "secmedia"), "keygen", "--public-out",
                               os.path.join(self.consumer_dir, "device.pub.jwk")])
        with open(os.path.join(self.consumer_dir, "device.pub.jwk")) as f:
            public_jwk = json.load(f)
        shop = self.client(self.retail_url)
        self.email = "listener-%s@example.org" % uuid.uuid4().hex[:6]
        self.password = secrets.token_urlsafe(15)
        write_private(os.path.join(self.dir, "consumer-login.txt"),
                      "%s\n%s\n" % (self.email, self.password))
        shop.post_json("/v1/accounts", {"email": self.email, "password": self.password,
                                        "display_name": "Quickstart Listener"}, expect=201)
        session = shop.post_json("/v1/sessions", {"email": self.email,
                                                  "password": self.password}, expect=201)
        self.auth = {"Authorization": "Bearer " + session["token"]}
        device = shop.post_json("/v1/devices", {"name": "VLC on this machine",
                                                "jwk": public_jwk},
                                headers=self.auth, expect=201)
        self.device_jkt = device["jkt"]
        wallet = shop.post_json("/v1/wallet/redeem", {"code": self.code},
                                headers=self.auth, expect=200)
        self.summary.append("consumer %s (password in %s), balance %d points"
                            % (self.email, os.path.join(self.dir, "consumer-login.txt"),
                               wallet["balance_after"]))

    def buy(self):
        say("10. the consumer buys the work for that device (reservation at the key"
            " server, wallet debit, payment recorded) and gets a .steer")
        shop = self.client(self.retail_url)
        headers = dict(self.auth)
        headers["Idempotency-Key"] = "quickstart-" + uuid.uuid4().hex
        order = shop.post_json("/v1/orders", {"offer_id": self.offer["offer_id"],
                                              "device_jkt": self.device_jkt},
                               headers=headers, expect=201)
        self.steer = os.path.join(self.consumer_dir, "Quickstart Tone.steer")
        with open(self.steer, "w") as f:
            f.write(order["steer"])
        self._as_consumer_owned(self.steer)
        self.summary.append("order %s: %s" % (order["order_id"], self.steer))

    def play(self):
        wav = os.path.join(self.consumer_dir, "played.wav")
        say("11. VLC plays the .steer through the secmedia plugin (license with a device"
            " proof, key unwrapped in memory, ranged fetches, decryption while playing)"
            + ("" if self.listen else " into %s" % wav))
        player = os.environ.get("SM_QUICKSTART_PLAYER")
        if player and not self.listen:
            # Sanitizer builds: cvlc hangs with the ASan runtime preloaded, so
            # the instrumented libvlc driver of the VLC tests plays instead.
            decode = self._decode_with(player)
            wav = wav[:-len(".wav")] + ".pcm"
        else:
            decode = self._decode_with_cvlc
        decode(self.steer, None if self.listen else wav)
        if self.listen:
            return
        # The same VLC path on the original file: the decoded audio must match.
        plain = os.path.join(self.consumer_dir, "original" + os.path.splitext(wav)[1])
        source = os.path.join(self.consumer_dir, "original" + os.path.splitext(self.media_path)[1])
        shutil.copyfile(self.media_path, source)
        self._as_consumer_owned(source)
        decode(source, plain)
        os.unlink(source)
        played, original = _pcm(wav), _pcm(plain)
        if not played or played != original:
            raise QuickstartError("the audio played through the .steer (%d bytes) differs from"
                                  " the original file's (%d bytes)"
                                  % (len(played), len(original)))
        self.summary.append("played through VLC: %s (%d bytes of audio, identical to the"
                            " original's)" % (wav, len(played)))

    def _decode_with_cvlc(self, mrl, wav):
        self._run_as_consumer(self._vlc_argv(mrl, wav), loads_plugin=True)

    def _decode_with(self, player):
        copy = os.path.join(self.consumer_bin, os.path.basename(player))
        if not os.path.exists(copy):
            shutil.copy2(player, copy)

        def decode(mrl, out):
            self._run_as_consumer([copy, "--audio-out", out, "--log", out + ".log",
                                   "--timeout", "300", "--fail-module", "secmedia",
                                   "--vlc-arg", "--secmedia-ca-file=" + self.pki.ca_cert, mrl])
        return decode

    def _vlc_argv(self, mrl, wav):
        argv = ["cvlc", "-q", "--play-and-exit", "--no-video",
                "--secmedia-ca-file=" + self.pki.ca_cert]
        if wav:
            argv += ["--no-sout-video", "--sout",
                     "#transcode{acodec=s16l,channels=2,samplerate=44100}"
                     ":std{access=file,mux=wav,dst=%s}" % wav]
        return argv + [mrl, "vlc://quit"]

    def consumer_user(self):
        """Who plays: VLC refuses to run as root, and a consumer is not root."""
        if os.geteuid() != 0:
            return os.environ.get("USER") or str(os.geteuid())
        return os.environ.get("SUDO_USER") if self.listen and os.environ.get("SUDO_USER") \
            else "nobody"

    def _as_consumer_owned(self, path):
        if os.geteuid() == 0:
            import pwd
            user = pwd.getpwnam(self.consumer_user())
            os.chown(path, user.pw_uid, user.pw_gid)

    def _run_as_consumer(self, argv, loads_plugin=False):
        env = {"PATH": "/usr/bin:/bin", "HOME": self.consumer_dir,
               "XDG_CONFIG_HOME": os.path.join(self.consumer_dir, ".config"),
               "XDG_DATA_HOME": os.path.join(self.consumer_dir, ".local", "share"),
               "VLC_PLUGIN_PATH": self.plugin_dir}
        for name in ("DISPLAY", "WAYLAND_DISPLAY", "XDG_RUNTIME_DIR", "PULSE_SERVER", "LANG"):
            if self.listen and name in os.environ:
                env[name] = os.environ[name]
        if loads_plugin and os.environ.get("SM_HTTPD_PRELOAD"):
            # Sanitizer builds: VLC is not instrumented, the plugin is (our
            # own programs carry their runtime and must not get a second).
            env["LD_PRELOAD"] = os.environ["SM_HTTPD_PRELOAD"]
        if os.environ.get("SM_HTTPD_PRELOAD"):
            # libvlc leaks at exit by design; that is not ours to report.
            env["ASAN_OPTIONS"] = "detect_leaks=0"
        # runuser resets HOME and friends; env -i sets exactly these.
        argv = ["env", "-i"] + ["%s=%s" % kv for kv in sorted(env.items())] + argv
        if os.geteuid() == 0:
            argv = ["runuser", "-u", self.consumer_user(), "--"] + argv
        command = [a for a in argv if not a.startswith("-") and "=" not in a
                   and a not in ("env", "runuser", self.consumer_user())]
        name = os.path.basename(command[0]) if command else argv[0]
        # A session of its own, so a player that hangs goes with runuser.
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, cwd=self.consumer_dir, start_new_session=True)
        try:
            output, _ = proc.communicate(timeout=600)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise QuickstartError("%s did not finish within 10 minutes" % name) from None
        if proc.returncode != 0:
            raise QuickstartError("%s failed (exit %d):\n%s" % (name, proc.returncode, output))
        return output

    # helpers ---------------------------------------------------------------------

    def _run(self, argv, **kwargs):
        result = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, **kwargs)
        if result.returncode != 0:
            raise QuickstartError("%s failed (exit %d):\n%s"
                                  % (" ".join(argv[:3]), result.returncode, result.stdout))
        return result.stdout

    def detach(self):
        """Leave the servers running after this process exits."""
        harness.REGISTRY.discard(self.db.pid)
        harness.REGISTRY.discard(self.httpd.master_pid)


def _pcm(path):
    """The PCM of a WAV file, or a raw .pcm file's bytes (b"" when missing)."""
    import wave
    if path.endswith(".pcm"):
        try:
            with open(path, "rb") as f:
                return f.read()
        except OSError:
            return b""
    try:
        with wave.open(path, "rb") as w:
            return w.readframes(w.getnframes())
    except (OSError, EOFError, wave.Error):
        return b""


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("media", nargs="?", help="an audio or video file to sell"
                        " (default: a generated sample track)")
    parser.add_argument("--stop", action="store_true", help="stop the servers of the last run")
    parser.add_argument("--listen", action="store_true",
                        help="play through the speakers instead of to a WAV file")
    args = parser.parse_args()
    directory = run_dir()
    if args.stop:
        stop(directory)
        return 0
    media = os.path.abspath(args.media) if args.media else None
    if media and not os.path.isfile(media):
        print("quickstart: %s is not a file; give an audio or video file, or nothing"
              " for a generated sample" % args.media, file=sys.stderr)
        return 2
    stop(directory, quiet=True)
    prepare_run_dir(directory)
    harness.install_signal_handlers()
    run = Quickstart(directory, media, args.listen)
    try:
        run.start_servers()
        run.register_parties()
        run.media_path = run.sample_media()
        run.publish(run.media_path)
        run.contract()
        run.setup_shop()
        run.consumer_account()
        run.buy()
        run.play()
    except (QuickstartError, harness.HarnessError, AssertionError) as e:
        print("quickstart: failed: %s" % e, file=sys.stderr)
        print("quickstart: logs are in %s (servers stopped)" % directory, file=sys.stderr)
        return 1
    run.detach()
    say("done.")
    for line in run.summary:
        print("  " + line)
    print("  key server:  %s" % run.keyserver_url)
    print("  media store: %s" % run.mediastore_url)
    print("  storefront:  %s/store/  (sign in as the consumer above)" % run.retail_url)
    print("  run dir:     %s" % directory)
    print("  stop with:   ./quickstart --stop")
    return 0


if __name__ == "__main__":
    sys.exit(main())
