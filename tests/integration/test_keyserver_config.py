"""mod_keyserver's configuration: every bad or missing directive fails
`apachectl configtest` with a message naming it; KEK rotation works."""

import os
import re
import secrets

import pytest

from keyserver_setup import (Catalog, Device, KeyServer, kek_document, new_p256,
                             request_license, write_private)


@pytest.mark.parametrize("omit, extra, message", [
    (["KeyServerIssuer"], "", "KeyServerIssuer is required"),
    (["KeyServerIssuer"], "KeyServerIssuer http://ks.example", "https"),
    (["KeyServerKEKFile"], "", "KeyServerKEKFile is required"),
    (["KeyServerKEKFile"], "KeyServerKEKFile /nonexistent/kek.json", "cannot access"),
    (["KeyServerEncryptionKey"], "", "KeyServerEncryptionKey is required"),
    (["KeyServerSigningKey"], "", "KeyServerSigningKey is required"),
    (["KeyServerMediaStoreID"], "", "KeyServerMediaStoreID is required"),
    ([], "KeyServerMediaStoreID ../store", "media store id"),
    ([], "KeyServerActivationLimit 0", "out of range"),
    ([], "KeyServerActivationLimit 5x", "KeyServerActivationLimit"),
    ([], "KeyServerProofMaxAge 2d", "out of range"),
    ([], "KeyServerDeliveryTokenLifetime 1y", "unknown unit"),
    ([], "KeyServerMaxBodySize 12", "out of range"),
    ([], 'KeyServerClientRole king "CN=x"', "king"),
    ([], "KeyServerKEKFile /etc/hostname", "given twice"),
    (["KeyServerDBName"], "", "KeyServerDBName"),
])
def test_bad_directive_fails_configtest(env, omit, extra, message):
    KeyServer(env, omit=omit, extra=extra)
    ok, output = env.httpd.configtest()
    assert not ok, output
    assert re.search(re.escape(message), output), output


def _loose_kek(ks):
    os.chmod(ks.kek_file, 0o644)


def _broken_kek(ks):
    write_private(ks.kek_file, '{"format":"secmedia-kek/1"}')


def _public_signing_key(ks):
    os.chmod(ks.old_signing_file, 0o600)
    with open(ks.old_signing_file, "w") as f:
        f.write(new_p256().export_public())


@pytest.mark.parametrize("files, omit, extra, message", [
    (_loose_kek, [], "", "chmod 600"),
    (_broken_kek, [], "", "current"),
    (_public_signing_key, [], "", "public key"),
    (None, [], 'KeyServerSigningKey "{signing}" k9 active', "already the active signing key"),
    (None, ["KeyServerEncryptionKey"], 'KeyServerEncryptionKey "{signing}" e1', "separate keys"),
    (None, [], 'KeyServerSigningKey "{signing}" k2', "same key"),
    (None, [], 'KeyServerSigningKey "{signing}" k3 yes', "active"),
])
def test_key_files_are_checked(env, files, omit, extra, message):
    signing = os.path.join(env.httpd.conf_dir, "signing-1.jwk")
    KeyServer(env, files=files, omit=omit, extra=extra.format(signing=signing))
    ok, output = env.httpd.configtest()
    assert not ok and message in output, output


def test_good_configuration_passes_configtest(env):
    KeyServer(env)
    ok, output = env.httpd.configtest()
    assert ok, output


def test_kek_rotation_keeps_old_keys_readable(env):
    ks = KeyServer(env)
    env.httpd.start()
    cat = Catalog(ks)
    # Rotate: version 2 becomes current, version 1 stays for unwrapping.
    ks.kek_versions.append((2, secrets.token_bytes(32)))
    write_private(ks.kek_file, kek_document(ks.kek_versions, 2))
    env.httpd.restart()
    newer = Catalog(ks)
    versions = dict(ks.query("SELECT work_id, kek_version FROM works"))
    assert versions == {cat.work_id: "1", newer.work_id: "2"}
    for catalog in (cat, newer):
        device = Device()
        reservation = catalog.sold(device)
        r = request_license(ks, device, reservation["voucher"])
        assert r.status_code == 200, r.text
        assert device.open_key(r.json()["key_jwe"]) == catalog.media_key
    # A wrapped key moved to another work's row does not unwrap.
    ks.query("UPDATE works SET wrapped_key = (SELECT wrapped_key FROM (SELECT * FROM works) w "
             "WHERE w.work_id = '%s'), kek_version = 2 WHERE work_id = '%s'"
             % (newer.work_id, cat.work_id))
    device = Device()
    reservation = cat.sold(device)
    env.expect_log("SM01002")
    r = request_license(ks, device, reservation["voucher"])
    assert r.status_code == 500 and "key_jwe" not in r.text


def test_media_key_jwe_must_be_for_this_key_server(env):
    ks = KeyServer(env)
    env.httpd.start()
    Catalog(ks)
    owner = ks.client("owner")
    from jwcrypto import jwe, jwk
    from jwcrypto.common import json_encode
    stranger = jwk.JWK.from_json(new_p256().export_public())
    token = jwe.JWE(b"k" * 32, protected=json_encode({"alg": "ECDH-ES", "enc": "A256GCM"}))
    token.add_recipient(stranger)
    r = owner.post("/v1/works", json={"work_id": "w-stranger", "key_version": 1,
                                      "media_key_jwe": token.serialize(compact=True),
                                      "title": "t"})
    assert r.status_code == 400 and r.json()["type"].endswith("invalid-media-key")
    short = ks.wrap_media_key(b"k" * 16)
    r = owner.post("/v1/works", json={"work_id": "w-short", "key_version": 1,
                                      "media_key_jwe": short, "title": "t"})
    assert r.status_code == 400 and r.json()["type"].endswith("invalid-media-key")
    assert ks.query("SELECT COUNT(*) FROM works WHERE work_id LIKE 'w-%'") == [("0",)]
    # The JWE's kid is the sender's label (pack writes "<work>:<version>").
    owner.post_json("/v1/works", {"work_id": "w-labelled", "key_version": 1,
                                  "media_key_jwe": ks.wrap_media_key(b"k" * 32, "w-labelled:1"),
                                  "title": "t"}, expect=201)
    # Registering the same work twice is refused: keys are never replaced.
    body = {"work_id": "w-once", "key_version": 1,
            "media_key_jwe": ks.wrap_media_key(b"k" * 32), "title": "t"}
    owner.post_json("/v1/works", body, expect=201)
    r = owner.post("/v1/works", json=body)
    assert r.status_code == 409 and r.json()["type"].endswith("work-exists")


def _sample(name):
    with open(os.path.join(os.environ["SM_TOP_SRCDIR"], name)) as f:
        return f.read()


def test_sample_config_lists_every_directive_and_passes_configtest(env):
    conf = _sample("httpd-conf/keyserver.conf")
    names = set(re.findall(r'AP_INIT_\w+\("(KeyServer\w+)"',
                           _sample("mod_keyserver/ks_config.c")))
    names |= {"KeyServer" + n for n in
              re.findall(r'prefix "(DB\w+)"', _sample("common/httpd/smh_config.h"))}
    assert len(names) > 20
    missing = [n for n in sorted(names) if not re.search(r"^\s*%s\s" % n, conf, re.M)]
    assert missing == [], "directives missing from httpd-conf/keyserver.conf: %s" % missing
    # Valid once its paths point at real files.
    ks = KeyServer(env)
    for old, new in (("/etc/secmedia/keyserver/kek.json", ks.kek_file),
                     ("/etc/secmedia/keyserver/signing-2025.jwk", ks.signing_file),
                     ("/etc/secmedia/keyserver/encryption.jwk", ks.encryption_file),
                     ("/etc/secmedia/keyserver/db.password", ks.password_file)):
        conf = conf.replace(old, new)
    env.httpd.add_config(conf)
    ok, output = env.httpd.configtest()
    assert ok, output
    load = _sample("httpd-conf/keyserver.load")
    assert "LoadModule keyserver_module /usr/lib/apache2/modules/mod_keyserver.so" in load
