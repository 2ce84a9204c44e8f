"""Shared set-up for the key server tests: a migrated database, the key
server's key files (KEK, signing keys, encryption key), the module's
configuration in the test's HTTPS vhost, and the JOSE pieces a device, an
owner and a retailer make (with python-jwcrypto, independent of our C
library)."""

import base64
import json
import os
import secrets
import time
import uuid

from jwcrypto import jwe, jwk, jws
from jwcrypto.common import json_encode

import harness

ROLES = ("admin", "owner", "retailer1", "retailer2", "mediastore", "auditor")
MEDIA_STORE_ID = "mediastore-test-1"
PROBLEM_BASE = "https://secmedia.example/problems/"


def b64u(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64u_decode(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def write_private(path, text):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return path


def new_p256():
    return jwk.JWK.generate(kty="EC", crv="P-256")


def private_jwk_text(key):
    d = json.loads(key.export_private())
    return json.dumps({k: d[k] for k in ("kty", "crv", "x", "y", "d")})


def kek_document(versions, current):
    return json.dumps({"format": "secmedia-kek/1", "current": current,
                       "keys": [{"version": v, "key": b64u(k)} for v, k in versions]})


def assert_problem(response, status, slug):
    assert response.status_code == status, (response.status_code, response.text[:600])
    assert response.headers["Content-Type"] == "application/problem+json", response.headers
    doc = response.json()
    assert doc["type"] == PROBLEM_BASE + slug, doc
    assert doc["status"] == status and doc["title"] and doc["detail"]
    return doc


class Device:
    """A player's P-256 key: jkt, DPoP proofs, opening the key JWE."""

    def __init__(self):
        self.key = new_p256()
        self.jkt = self.key.thumbprint()

    def proof(self, url, method="POST", iat=None, jti=None):
        header = {"typ": "dpop+jwt", "alg": "ES256",
                  "jwk": json.loads(self.key.export_public())}
        claims = {"jti": jti or b64u(secrets.token_bytes(16)), "htm": method, "htu": url,
                  "iat": int(time.time()) if iat is None else iat}
        token = jws.JWS(json_encode(claims))
        token.add_signature(self.key, alg="ES256", protected=json_encode(header))
        return token.serialize(compact=True)

    def open_key(self, compact):
        token = jwe.JWE()
        token.deserialize(compact, key=self.key)
        return token.payload


def sign_token(key, kid, typ, claims):
    token = jws.JWS(json_encode(claims))
    token.add_signature(key, alg="ES256",
                        protected=json_encode({"alg": "ES256", "kid": kid, "typ": typ}))
    return token.serialize(compact=True)


def verify_token(jwks_doc, compact, typ):
    """Claims of a compact JWS checked against a JWKS document (jwcrypto)."""
    header = json.loads(b64u_decode(compact.split(".")[0]))
    assert header["alg"] == "ES256" and header["typ"] == typ, header
    keyset = jwk.JWKSet.from_json(json.dumps(jwks_doc))
    token = jws.JWS()
    token.deserialize(compact)
    token.verify(keyset.get_key(header["kid"]))
    return json.loads(token.payload)


class _Prefixed:
    """A harness client whose paths are below the key server's location."""

    def __init__(self, client, prefix):
        self._client = client
        self._prefix = prefix

    def __getattr__(self, name):
        attr = getattr(self._client, name)
        if name in ("get", "head", "post", "put", "delete", "request", "json", "get_json",
                    "post_json", "url"):
            def call(*args, **kwargs):
                args = list(args)
                index = 1 if name in ("request", "json") else 0
                args[index] = self._prefix + args[index]
                return attr(*args, **kwargs)
            return call
        return attr


class KeyServer:
    """mod_keyserver configured in env.httpd (not started)."""

    def __init__(self, env, extra="", activation_limit=None, checkpoint_every=None, omit=(),
                 files=None, location="/", db_socket=None):
        """omit: directives left out of the standard configuration; files:
        a callback(ks) run after the key files are written and before the
        configuration is built (to break or replace them); location: the
        <Location> serving the key server (its issuer URL ends with it);
        db_socket: where the module reaches MariaDB, when not directly (a
        sqlfault.SqlFaultRelay in front of it)."""
        self.env = env
        self.db = env.migrated_database("keyserver")
        conf = env.httpd.conf_dir
        for role in ROLES:
            env.pki.issue_client(role)
        self.location = location.rstrip("/")
        self.issuer = env.httpd.https_url + self.location
        self.license_url = self.issuer + "/v1/license"
        self.kek_versions = [(1, secrets.token_bytes(32))]
        self.kek_file = write_private(os.path.join(conf, "kek.json"),
                                      kek_document(self.kek_versions, 1))
        self.signing_key = new_p256()
        self.signing_kid = "ks-sig-1"
        self.signing_file = write_private(os.path.join(conf, "signing-1.jwk"),
                                          private_jwk_text(self.signing_key))
        self.old_signing_key = new_p256()
        self.old_signing_file = write_private(os.path.join(conf, "signing-0.jwk"),
                                              private_jwk_text(self.old_signing_key))
        self.encryption_key = new_p256()
        self.encryption_file = write_private(os.path.join(conf, "encryption.jwk"),
                                             private_jwk_text(self.encryption_key))
        self.password_file = write_private(os.path.join(conf, "keyserver-db.password"),
                                           self.db.password + "\n")
        pki = env.pki
        roles = "\n".join(
            'KeyServerClientRole %s "%s"' % (role.rstrip("12"), pki.client(role).subject_dn)
            for role in ROLES)
        tunables = ""
        if activation_limit is not None:
            tunables += "KeyServerActivationLimit %d\n" % activation_limit
        if checkpoint_every is not None:
            tunables += "KeyServerCheckpointInterval %d\n" % checkpoint_every
        if files is not None:
            files(self)
        env.load_project_module("mod_keyserver")
        config = f"""
KeyServerIssuer {self.issuer}
KeyServerKEKFile "{self.kek_file}"
KeyServerSigningKey "{self.old_signing_file}" ks-sig-0
KeyServerSigningKey "{self.signing_file}" {self.signing_kid} active
KeyServerEncryptionKey "{self.encryption_file}" ks-enc-1
KeyServerMediaStoreID {MEDIA_STORE_ID}
KeyServerDBSocket "{db_socket or self.db.socket}"
KeyServerDBUser {self.db.user}
KeyServerDBPasswordFile "{self.password_file}"
KeyServerDBName {self.db.name}
KeyServerDBPoolSize 4
{roles}
{tunables}
"""
        kept = [line for line in config.splitlines()
                if not any(line.startswith(d + " ") for d in omit)]
        self.base_config = "\n".join(kept) + f"""
{extra}
<Location {location}>
    SetHandler secmedia-keyserver
    Require all granted
</Location>
"""
        env.httpd.add_vhost_config(self.base_config)

    def query(self, sql):
        return self.env.db.query(sql, self.db.name)

    def ledger_settled(self, timeout=10.0):
        """Waits until the children's sealers have chained every queued
        ledger entry (a license row, or a sale event's ledger_queue row, is
        its queued entry; FORMATS.md §7.5)."""
        deadline = time.monotonic() + timeout
        while self.query("SELECT (SELECT COUNT(*) FROM licenses WHERE chained = 0) + "
                         "(SELECT COUNT(*) FROM ledger_queue WHERE chained = 0)") != [("0",)]:
            assert time.monotonic() < deadline, "ledger entries still queued after %ss" % timeout
            time.sleep(0.02)

    def ledger_count(self):
        """Entries chained plus entries queued."""
        return self.query("SELECT (SELECT COUNT(*) FROM ledger) + "
                          "(SELECT COUNT(*) FROM licenses WHERE chained = 0) + "
                          "(SELECT COUNT(*) FROM ledger_queue WHERE chained = 0)")

    def client(self, role=None):
        return _Prefixed(self.env.client(role), self.location)

    def wrap_media_key(self, media_key, kid="ks-enc-1"):
        """What `secmedia pack --recipient` makes: the key as a JWE to our
        encryption key."""
        pub = jwk.JWK.from_json(self.encryption_key.export_public())
        header = {"alg": "ECDH-ES", "enc": "A256GCM"}
        if kid:
            header["kid"] = kid
        token = jwe.JWE(media_key, protected=json_encode(header))
        token.add_recipient(pub)
        return token.serialize(compact=True)

    def jwks(self):
        return self.client().get_json("/v1/jwks")

    def voucher(self, claims_override=None, lifetime=3600, kid=None, key=None, now=None):
        """A voucher signed with our real key (to forge expired or altered
        ones, as an attacker who cannot sign could not)."""
        now = int(time.time()) if now is None else now
        claims = {"iss": self.issuer, "aud": self.issuer, "iat": now, "exp": now + lifetime,
                  "jti": b64u(secrets.token_bytes(16))}
        claims.update(claims_override or {})
        return sign_token(key or self.signing_key, kid or self.signing_kid,
                          "secmedia-voucher+jwt", claims)


class Catalog:
    """Owner, retailers, one work and a contract: the state a sale needs."""

    def __init__(self, ks, work_id=None, licenses=None, price=199, currency="EUR",
                 retailer="retailer1"):
        self.ks = ks
        self.admin = ks.client("admin")
        self.owner = ks.client("owner")
        self.retailer = ks.client(retailer)
        pki = ks.env.pki
        for role, path, id_key in (("owner", "/v1/owners", "owner_id"),
                                   ("retailer1", "/v1/retailers", "retailer_id"),
                                   ("retailer2", "/v1/retailers", "retailer_id")):
            r = self.admin.post(path, json={id_key: role, "name": role.title(),
                                            "subject_dn": pki.client(role).subject_dn})
            assert r.status_code in (201, 409), r.text
        self.work_id = work_id or "work-" + uuid.uuid4().hex[:12]
        self.media_key = secrets.token_bytes(32)
        self.owner.post_json("/v1/works", {
            "work_id": self.work_id, "key_version": 1,
            "media_key_jwe": ks.wrap_media_key(self.media_key),
            "title": "Song of " + self.work_id, "artist": "The Testers", "album": "Harness",
            "lyrics": "la la\nla", "liner_notes": "recorded\tlive", "credits": "all of us",
            "artwork_ref": "https://cdn.example/art/%s.jpg" % self.work_id,
            "media_type": "audio/ogg"}, expect=201)
        now = int(time.time())
        self.licenses = licenses or [{"type": "purchase", "price": price},
                                     {"type": "rental", "duration": 172800, "price": 99}]
        self._contract_request = {
            "retailer": retailer, "works": [self.work_id], "currency": currency,
            "valid_from": now - 60, "valid_until": now + 86400,
            "licenses": self.licenses,
            "royalties": [{"holder": "Label", "share_bps": 6000},
                          {"holder": "Artist", "share_bps": 4000}]}
        self.contract = self.owner.post_json("/v1/contracts", self.contract_request(),
                                             expect=201)
        self.price = price
        self.currency = currency

    def reserve(self, device, client=None, license=None, ref=None, expect=201):
        client = client or self.retailer
        return client.post_json("/v1/reservations", {
            "reservation_ref": ref or "res-" + uuid.uuid4().hex,
            "work_id": self.work_id, "license": license or {"type": "purchase"},
            "jkt": device.jkt}, expect=expect)

    def pay(self, reservation, client=None, ref=None, expect=201):
        client = client or self.retailer
        return client.post_json("/v1/payments", {
            "txn": reservation["txn"], "payment_ref": ref or "pay-" + uuid.uuid4().hex,
            "amount": reservation["price"], "currency": reservation["currency"]},
            expect=expect)

    def contract_request(self):
        """A copy of the body that created self.contract."""
        return json.loads(json.dumps(self._contract_request))

    def sold(self, device, license=None, client=None):
        reservation = self.reserve(device, client=client, license=license)
        self.pay(reservation, client=client)
        return reservation


def request_license(ks, device, voucher, client=None, proof=None, url=None,
                    delivery_only=False):
    """POST /v1/license with a fresh proof (or proof); delivery_only asks
    for a delivery-token renewal (PROTOCOL.md §2.6)."""
    client = client or ks.client()
    headers = {"DPoP": proof if proof is not None else device.proof(url or ks.license_url)}
    body = {"voucher": voucher}
    if delivery_only:
        body["delivery_only"] = True
    return client.post("/v1/license", json=body, headers=headers)


def until_status(send, status, tries=20, pause=0.25):
    """Calls send() until it answers status (e.g. while the pool reconnects
    after the database came back); returns the last response."""
    for _ in range(tries):
        r = send()
        if r.status_code == status:
            break
        time.sleep(pause)
    return r


def run_ledger_verify(ks, export_text, workdir, jwks=True):
    """`secmedia ledger verify` on an export: (exit code, stdout, stderr)."""
    import subprocess
    path = os.path.join(workdir, "ledger-%s.jsonl" % uuid.uuid4().hex[:8])
    with open(path, "w") as f:
        f.write(export_text)
    argv = [os.path.join(os.environ["SM_TOP_BUILDDIR"], "tools", "secmedia"), "ledger",
            "verify"]
    if jwks:
        jwks_path = path + ".jwks"
        with open(jwks_path, "w") as f:
            json.dump(ks.jwks(), f)
        argv += ["--jwks", jwks_path]
    result = subprocess.run(argv + [path], capture_output=True, text=True, timeout=60)
    return result.returncode, result.stdout, result.stderr
