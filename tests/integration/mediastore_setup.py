"""Shared set-up for the media store tests: a migrated database, a storage
dir the httpd children can write, the password file, and the module's
configuration in the test's HTTPS vhost; and the key server's side of a
delivery (real sales and licenses, tokens made with its signing key, what
it recorded)."""

import base64
import hashlib
import os
import pwd
import re
import secrets
import shutil
import subprocess
import time

import harness
from keyserver_setup import (MEDIA_STORE_ID, Catalog, Device, new_p256, request_license,
                             sign_token)

# Defaults for a media store no key server stands behind (tests of its
# configuration and uploads); store_for() points one at a real key server.
TOKEN_ISSUER = "https://keyserver.test"
TOKEN_AUDIENCE = MEDIA_STORE_ID


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
                 jwks_url="https://127.0.0.1:9/jwks", extra="", location="/",
                 token_issuer=TOKEN_ISSUER, db_socket=None, plain_http=False):
        """db_socket: where the module reaches MariaDB, when not directly
        (a sqlfault.SqlFaultRelay in front of it); plain_http: serve on the
        plain HTTP virtual host too (the same configuration)."""
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
MediaStoreDBSocket "{db_socket or self.db.socket}"
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
MediaStoreTokenIssuer {token_issuer}
MediaStoreTokenAudience {TOKEN_AUDIENCE}
{extra}
<Location {location}>
    SetHandler secmedia-mediastore
    Require all granted
</Location>
"""
        env.httpd.add_vhost_config(self.base_config)
        if plain_http:
            env.httpd.add_http_vhost_config(self.base_config)

    def query(self, sql):
        return self.env.db.query(sql, self.db.name)

    def file_path(self, work_id, preview=False):
        """Where the work's container is stored; with preview, the file its
        row names for the preview (None when it has none)."""
        if not preview:
            return os.path.join(self.storage, work_id + ".smc")
        rows = self.query("SELECT preview_file FROM works WHERE work_id = '%s'"
                          % re.sub(r"[^A-Za-z0-9._-]", "", work_id))
        return os.path.join(self.storage, rows[0][0]) if rows and rows[0][0] else None

    def storage_listing(self):
        return sorted(os.listdir(self.storage))


def copy_sql_dir(env, dest):
    shutil.copytree(env.sql_dir, dest)
    return dest


# --- the key server's side -------------------------------------------------------

DELIVERY_TYP = "secmedia-delivery+jwt"


def secmedia_cli():
    path = os.path.join(os.environ.get("SM_TOP_BUILDDIR", ""), "tools", "secmedia")
    if not os.access(path, os.X_OK):
        raise harness.HarnessError("%s not built" % path)
    return path


def store_for(env, ks, extra="", location="/", db_socket=None, plain_http=False):
    """MediaStore in env.httpd taking its tokens from ks (a started
    keyserver_setup.KeyServer, possibly in another httpd): its JWKS, its
    issuer, its delivery-complete endpoint."""
    return MediaStore(env, keyserver_url=ks.issuer, jwks_url=ks.issuer + "/v1/jwks",
                      token_issuer=ks.issuer, extra=extra, location=location,
                      db_socket=db_socket, plain_http=plain_http)


class Sales:
    """Real sales of one work at the key server: paid, licensed
    transactions and the delivery tokens their licenses carry."""

    def __init__(self, ks, work_id):
        self.ks = ks
        self.catalog = Catalog(ks, work_id=work_id)
        self.device = Device()

    def paid(self):
        """A paid transaction no license was issued for: its txn."""
        return self.catalog.sold(self.device)["txn"]

    def licensed(self):
        """A paid transaction with one license: (txn, delivery token)."""
        reservation = self.catalog.sold(self.device)
        r = request_license(self.ks, self.device, reservation["voucher"])
        assert r.status_code == 200, r.text
        return reservation["txn"], r.json()["delivery_token"]

    def delivered(self):
        """What the key server has recorded as delivered: sorted (txn, work_id)."""
        return sorted(tuple(row) for row in self.ks.query(
            "SELECT txn, work_id FROM deliveries WHERE work_id = '%s'"
            % self.catalog.work_id))

    def wait_delivered(self, count, timeout=15):
        deadline = time.monotonic() + timeout
        while len(self.delivered()) < count:
            if time.monotonic() > deadline:
                raise AssertionError("expected %d deliveries recorded by the key server, got %r"
                                     % (count, self.delivered()))
            time.sleep(0.05)
        return self.delivered()


class DeliveryTokens:
    """Delivery tokens with chosen claims, signed with the key server's own
    signing key (what a license hands out), a key it was given later, or a
    forger's key; the attacks on the media store need tokens no key
    server would issue. Signed with python-jwcrypto, independent of the C
    code that verifies them."""

    def __init__(self, ks):
        self.ks = ks

    def sign(self, claims, typ=DELIVERY_TYP, key=None, kid=None):
        return sign_token(key or self.ks.signing_key, kid or self.ks.signing_kid, typ, claims)

    def delivery(self, work_id, txn="txn-unsold", lifetime=300, now=None, key=None, kid=None,
                 **override):
        now = int(time.time()) if now is None else now
        claims = {"iss": self.ks.issuer, "aud": MEDIA_STORE_ID, "iat": now,
                  "exp": now + lifetime, "jti": secrets.token_urlsafe(16),
                  "work_id": work_id, "txn": txn, "jkt": new_p256().thumbprint()}
        claims.update(override)
        for k in [k for k, v in claims.items() if v is None]:
            del claims[k]
        return self.sign(claims, key=key, kid=kid)


def logged_requests(server_env, request_prefix, count=None, timeout=10):
    """Access log lines of server_env's httpd whose request line starts
    with request_prefix (e.g. "GET /v1/jwks"). httpd writes a line after
    the answer has gone out, so a client can be quicker than the log: with
    count, waits (up to timeout) until there are at least that many."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with open(server_env.httpd.access_log) as f:
                lines = [line for line in f if '"%s ' % request_prefix in line]
        except FileNotFoundError:
            lines = []
        if count is None or len(lines) >= count or time.monotonic() > deadline:
            return lines
        time.sleep(0.05)


# --- containers ---------------------------------------------------------------------

def pack_container(directory, work_id, plain_size, seed=1):
    """A real .smc made by `secmedia pack` from plain_size pseudo-random bytes
    (made once per work id, size and seed: tests share the directory)."""
    os.makedirs(directory, exist_ok=True)
    stem = "%s.%d.%d" % (work_id, plain_size, seed)
    plain = os.path.join(directory, stem + ".ogg")
    out = os.path.join(directory, stem + ".smc")
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
