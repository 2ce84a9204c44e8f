"""Shared set-up for the media store tests: a migrated database, a storage
dir the httpd children can write, the password file, and the module's
configuration in the test's HTTPS vhost."""

import os
import pwd
import shutil

import harness

TOKEN_ISSUER = "https://keyserver.test"
TOKEN_AUDIENCE = "mediastore-test-1"


def _www_data_ids():
    try:
        user = pwd.getpwnam("www-data")
        return user.pw_uid, user.pw_gid
    except KeyError:
        return None


def make_storage_dir(env):
    path = os.path.join(env.httpd.directory, "storage")
    os.makedirs(path, exist_ok=True)
    ids = _www_data_ids()
    if os.geteuid() == 0 and ids:
        os.chown(path, *ids)
        os.chmod(path, 0o750)
    else:
        os.chmod(path, 0o777)
    return path


def write_password_file(env, database):
    path = os.path.join(env.httpd.conf_dir, "mediastore-db.password")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(database.password + "\n")
    return path


class MediaStore:
    """The module configured in env.httpd (not started)."""

    def __init__(self, env, keyserver_url="https://127.0.0.1:9/ks",
                 jwks_url="https://127.0.0.1:9/jwks", extra="", location="/"):
        self.env = env
        self.db = env.migrated_database("mediastore")
        self.storage = make_storage_dir(env)
        self.password_file = write_password_file(env, self.db)
        pki = env.pki
        owner = pki.client("owner")
        ms = pki.client("mediastore")
        env.load_project_module("mod_mediastore")
        self.base_config = f"""
MediaStoreStorageDir "{self.storage}"
MediaStoreDBSocket "{self.db.socket}"
MediaStoreDBUser {self.db.user}
MediaStoreDBPasswordFile "{self.password_file}"
MediaStoreDBName {self.db.name}
MediaStoreDBPoolSize 4
MediaStoreClientRole owner "{owner.subject_dn}"
MediaStoreKeyServerURL {keyserver_url}
MediaStoreKeyServerJWKSURL {jwks_url}
MediaStoreKeyServerCAFile "{pki.ca_cert}"
MediaStoreClientCertFile "{ms.cert}"
MediaStoreClientKeyFile "{ms.key}"
MediaStoreTokenIssuer {TOKEN_ISSUER}
MediaStoreTokenAudience {TOKEN_AUDIENCE}
{extra}
<Location {location}>
    SetHandler secmedia-mediastore
    Require all granted
</Location>
"""
        env.httpd.add_vhost_config(self.base_config)

    def query(self, sql):
        return self.env.db.query(sql, self.db.name)

    def file_path(self, work_id, preview=False):
        return os.path.join(self.storage, work_id + (".preview" if preview else ".smc"))

    def storage_listing(self):
        return sorted(os.listdir(self.storage))


def copy_sql_dir(env, dest):
    shutil.copytree(env.sql_dir, dest)
    return dest


# --- tokens ----------------------------------------------------------------------

import base64
import hashlib
import json
import secrets
import ssl
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DELIVERY_TYP = "secmedia-delivery+jwt"


def _tool(name, *parts):
    top = os.environ.get("SM_TESTS_BUILDDIR") or os.path.join(
        os.environ.get("SM_TOP_BUILDDIR", ""), "tests")
    path = os.path.join(top, *parts)
    if not os.access(path, os.X_OK):
        raise harness.HarnessError("%s not built (make -C tests %s)" % (path, "/".join(parts)))
    return path


def token_tool():
    return _tool("ms_token_tool", "tools", "ms_token_tool")


def secmedia_cli():
    path = os.path.join(os.environ.get("SM_TOP_BUILDDIR", ""), "tools", "secmedia")
    if not os.access(path, os.X_OK):
        raise harness.HarnessError("%s not built" % path)
    return path


class Tokens:
    """Signing keys (as the key server would hold them) and delivery tokens."""

    def __init__(self, directory):
        self.directory = directory
        os.makedirs(directory, exist_ok=True)
        self.keys = {}

    def key(self, kid):
        if kid not in self.keys:
            path = os.path.join(self.directory, kid + ".jwk")
            subprocess.run([token_tool(), "keygen", path, kid], check=True)
            self.keys[kid] = path
        return self.keys[kid]

    def jwks(self, *kids):
        out = subprocess.run([token_tool(), "jwks"] + [self.key(k) for k in kids],
                             check=True, stdout=subprocess.PIPE, text=True)
        return out.stdout.strip()

    def sign(self, kid, claims, typ=DELIVERY_TYP):
        out = subprocess.run([token_tool(), "sign", self.key(kid), typ, json.dumps(claims)],
                             check=True, stdout=subprocess.PIPE, text=True)
        return out.stdout.strip()

    def delivery(self, work_id, txn="txn-1", kid="ks-1", lifetime=300, now=None, **override):
        now = int(time.time()) if now is None else now
        claims = {"iss": TOKEN_ISSUER, "aud": TOKEN_AUDIENCE, "iat": now,
                  "exp": now + lifetime, "jti": secrets.token_urlsafe(16),
                  "work_id": work_id, "txn": txn,
                  "jkt": base64.urlsafe_b64encode(hashlib.sha256(b"device").digest())
                  .decode().rstrip("=")}
        claims.update(override)
        for k in [k for k, v in claims.items() if v is None]:
            del claims[k]
        return self.sign(kid, claims)


# --- a stand-in for the key server --------------------------------------------------

class FakeKeyServer:
    """TEST DOUBLE for the key server (mod_keyserver is built separately):
    serves GET /v1/jwks and accepts POST /v1/delivery-complete over HTTPS
    with the run's server certificate, recording each notification and the
    client certificate that sent it. stop() and start() keep the port, so a
    test can take it down and bring it back."""

    def __init__(self, pki, jwks="{\"keys\":[]}"):
        self.pki = pki
        self.jwks = jwks
        self.port = harness.free_port()
        self.notifications = []   # (json body, client subject CN)
        self.jwks_fetches = 0
        self.answer_status = 204
        self._server = None
        self._thread = None
        self._lock = threading.Lock()

    @property
    def url(self):
        return "https://localhost:%d" % self.port

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _send(self, status, body=b"", ctype="application/json"):
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                if self.path != "/v1/jwks":
                    return self._send(404, b"{}")
                with fake._lock:
                    fake.jwks_fetches += 1
                    body = fake.jwks.encode()
                self._send(200, body, "application/jwk-set+json")

            def do_POST(self):
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                if self.path != "/v1/delivery-complete":
                    return self._send(404, b"{}")
                cert = self.connection.getpeercert() or {}
                subject = dict(x[0] for x in cert.get("subject", ()))
                with fake._lock:
                    status = fake.answer_status
                    if status in (200, 204):
                        fake.notifications.append((json.loads(body),
                                                   subject.get("commonName")))
                self._send(status, b"" if status == 204 else b"{}")

        return Handler

    def start(self):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.pki.server.cert, self.pki.server.key)
        ctx.load_verify_locations(self.pki.ca_cert)
        ctx.verify_mode = ssl.CERT_OPTIONAL
        ThreadingHTTPServer.allow_reuse_address = True
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        self._server.daemon_threads = True
        self._server.socket = ctx.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self):
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(timeout=10)
            self._server = None

    def wait_for_notifications(self, count, timeout=15):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.notifications) >= count:
                    return list(self.notifications)
            time.sleep(0.05)
        raise AssertionError("expected %d delivery-complete notifications, got %d"
                             % (count, len(self.notifications)))


# --- containers ---------------------------------------------------------------------

def pack_container(directory, work_id, plain_size, seed=1):
    """A real .smc made by `secmedia pack` from plain_size pseudo-random bytes."""
    os.makedirs(directory, exist_ok=True)
    plain = os.path.join(directory, "%s.%d.ogg" % (work_id, seed))
    out = os.path.join(directory, "%s.%d.smc" % (work_id, seed))
    if not os.path.exists(out):
        rng = hashlib.sha256(b"%d" % seed).digest()
        with open(plain, "wb") as f:
            left = plain_size
            block = (rng * (65536 // len(rng)))
            while left > 0:
                f.write(block[:min(left, len(block))])
                left -= len(block)
        subprocess.run([secmedia_cli(), "pack", plain, "-o", out, "--work-id", work_id,
                        "--type", "audio/ogg", "--key-out", out + ".key"],
                       check=True, stdout=subprocess.DEVNULL)
    return out


def repr_digest(data):
    return "sha-256=:%s:" % base64.b64encode(hashlib.sha256(data).digest()).decode()


def file_digest(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return "sha-256=:%s:" % base64.b64encode(h.digest()).decode()
