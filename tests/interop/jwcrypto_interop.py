#!/usr/bin/env python3
"""Interop between secmedia's JOSE helpers (through jose_tool) and jwcrypto.

usage: jwcrypto_interop.py JOSE_TOOL WORKDIR

Checks, each in both directions where it applies:
  thumbprint  our RFC 7638 jkt equals jwcrypto's
  JWE         our ECDH-ES/A256GCM media-key JWE decrypts in jwcrypto; one made
              by jwcrypto unwraps with ours; ours refuses one for another key
              and one with enc A128GCM
  JWS         our ES256 JWS verifies in jwcrypto; one made by jwcrypto
              verifies with ours (kid looked up in a JWKS); ours refuses one
              whose payload was altered
  DPoP        our proof verifies in jwcrypto with the embedded key; one made
              by jwcrypto verifies with ours and yields jwcrypto's thumbprint

Prints every failed check and exits 1 if there was any.
"""

import json
import os
import secrets
import subprocess
import sys
import time

try:
    from jwcrypto import jwe, jwk, jws
    from jwcrypto.common import base64url_encode, json_encode
except ImportError:
    sys.stderr.write("jwcrypto_interop: python3-jwcrypto is missing "
                     "(apt-get install python3-jwcrypto)\n")
    sys.exit(1)

TOOL = sys.argv[1] if len(sys.argv) == 3 else None
WORK = sys.argv[2] if len(sys.argv) == 3 else None
failures = []


def check(cond, what):
    if cond:
        print("ok   " + what)
    else:
        print("FAIL " + what)
        failures.append(what)


def tool(*args, expect_ok=True):
    """Runs jose_tool; returns stdout (stripped) or None on failure."""
    p = subprocess.run([TOOL] + list(args), capture_output=True, text=True,
                       check=False)
    if (p.returncode == 0) != expect_ok:
        print("     jose_tool %s exited %d: %s" % (args[0], p.returncode,
                                                   p.stderr.strip()))
        return None
    return p.stdout.strip() if p.returncode == 0 else ""


def path(name):
    return os.path.join(WORK, name)


def write(name, text, private=False):
    fd = os.open(path(name), os.O_WRONLY | os.O_CREAT | os.O_EXCL,
                 0o600 if private else 0o644)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return path(name)


def read_jwk(name):
    with open(path(name)) as f:
        return jwk.JWK.from_json(f.read())


def test_thumbprint():
    if tool("keygen", path("dev.jwk"), path("dev.pub.jwk")) is None:
        check(False, "jose_tool keygen")
        return
    ours = tool("thumbprint", path("dev.pub.jwk"))
    theirs = read_jwk("dev.pub.jwk").thumbprint()
    check(ours == theirs, "RFC 7638 thumbprint matches jwcrypto")
    check(tool("thumbprint", path("dev.jwk")) == theirs,
          "thumbprint of the private file equals the public one")


def test_jwe():
    media_key = secrets.token_bytes(32)

    # (a) ours -> jwcrypto: jwcrypto holds the device private key.
    py_dev = jwk.JWK.generate(kty="EC", crv="P-256")
    write("py_dev.pub.jwk", py_dev.export_public())
    token = tool("wrap", path("py_dev.pub.jwk"), media_key.hex(), "device-1")
    if token is None:
        check(False, "jose_tool wrap")
    else:
        obj = jwe.JWE()
        obj.deserialize(token, key=py_dev)
        hdr = json.loads(obj.objects["protected"])
        check(obj.payload == media_key, "our JWE decrypts in jwcrypto to the same key")
        check(hdr.get("alg") == "ECDH-ES" and hdr.get("enc") == "A256GCM"
              and hdr.get("kid") == "device-1" and "epk" in hdr,
              "our JWE header is alg ECDH-ES, enc A256GCM, kid, epk")

    # (b) jwcrypto -> ours: our device key, public part given to jwcrypto.
    dev_pub = read_jwk("dev.pub.jwk")
    obj = jwe.JWE(media_key, json_encode({"alg": "ECDH-ES", "enc": "A256GCM"}))
    obj.add_recipient(dev_pub)
    write("py.jwe", obj.serialize(compact=True))
    out = tool("unwrap", path("dev.jwk"), path("py.jwe"))
    check(out == media_key.hex(), "jwcrypto's JWE unwraps with ours to the same key")

    # Ours refuses: wrong device key, and an enc other than A256GCM.
    other = jwk.JWK.generate(kty="EC", crv="P-256")
    write("other.jwk", other.export_private(), private=True)
    check(tool("unwrap", path("other.jwk"), path("py.jwe"), expect_ok=False) == "",
          "our unwrap refuses a JWE made for another device key")
    obj = jwe.JWE(media_key, json_encode({"alg": "ECDH-ES", "enc": "A128GCM"}))
    obj.add_recipient(dev_pub)
    write("py128.jwe", obj.serialize(compact=True))
    check(tool("unwrap", path("dev.jwk"), path("py128.jwe"), expect_ok=False) == "",
          "our unwrap refuses enc A128GCM")


def claims(now):
    return {"iss": "https://ks.example", "aud": ["retail-1", "store-1"],
            "iat": now, "exp": now + 600, "jti": base64url_encode(secrets.token_bytes(16)),
            "work": "w-1"}


def test_jws():
    now = int(time.time())
    # ours -> jwcrypto
    c = claims(now)
    write("claims.json", json.dumps(c))
    token = tool("sign", path("dev.jwk"), "ks-2024", "voucher+jwt", path("claims.json"))
    if token is None:
        check(False, "jose_tool sign")
    else:
        obj = jws.JWS()
        obj.deserialize(token)
        try:
            obj.verify(read_jwk("dev.pub.jwk"), alg="ES256")
            ok = json.loads(obj.payload) == c
        except Exception as e:  # noqa: BLE001 - report any verification failure
            print("     jwcrypto: %r" % e)
            ok = False
        hdr = obj.jose_header
        check(ok, "our ES256 JWS verifies in jwcrypto with the same claims")
        check(hdr == {"alg": "ES256", "kid": "ks-2024", "typ": "voucher+jwt"},
              "our JWS header is exactly alg, kid, typ")
        sig = token.split(".")[2]
        check(len(sig) == 86, "our ES256 signature is 64 raw bytes (r||s)")

    # jwcrypto -> ours, with the key found by kid in a JWKS of two keys
    issuer = jwk.JWK.generate(kty="EC", crv="P-256", kid="ks-2025")
    decoy = jwk.JWK.generate(kty="EC", crv="P-256", kid="ks-2024")
    keyset = jwk.JWKSet()
    keyset.add(decoy)
    keyset.add(issuer)
    write("jwks.json", keyset.export(private_keys=False))
    c = claims(now)
    obj = jws.JWS(json.dumps(c))
    obj.add_signature(issuer, None, json_encode({"alg": "ES256", "kid": "ks-2025",
                                                 "typ": "voucher+jwt"}))
    token = obj.serialize(compact=True)
    write("py.jws", token)
    out = tool("verify", path("jwks.json"), "https://ks.example", "store-1",
               "voucher+jwt", str(now), path("py.jws"))
    check(out is not None and json.loads(out) == c,
          "jwcrypto's ES256 JWS verifies with ours (kid lookup in a JWKS)")
    h, p, s = token.split(".")
    c2 = dict(c, work="w-2")
    write("py_tampered.jws", h + "." + base64url_encode(json.dumps(c2)) + "." + s)
    check(tool("verify", path("jwks.json"), "https://ks.example", "store-1",
               "voucher+jwt", str(now), path("py_tampered.jws"), expect_ok=False) == "",
          "ours refuses jwcrypto's JWS with an altered payload")


def test_dpop():
    now = int(time.time())
    htu = "https://ks.example/v1/license"
    # ours -> jwcrypto
    proof = tool("dpop", path("dev.jwk"), "POST", htu + "?q=1#f", str(now))
    if proof is None:
        check(False, "jose_tool dpop")
    else:
        obj = jws.JWS()
        obj.deserialize(proof)
        hdr = obj.jose_header
        embedded = jwk.JWK(**hdr.get("jwk", {}))
        try:
            obj.verify(embedded, alg="ES256")
            c = json.loads(obj.payload)
            ok = True
        except Exception as e:  # noqa: BLE001
            print("     jwcrypto: %r" % e)
            ok, c = False, {}
        check(ok, "our DPoP proof verifies in jwcrypto with the embedded jwk")
        check(hdr.get("typ") == "dpop+jwt" and hdr.get("alg") == "ES256"
              and not embedded.has_private, "our DPoP header: typ dpop+jwt, ES256, public jwk")
        check(c.get("htm") == "POST" and c.get("htu") == htu and c.get("iat") == now
              and len(c.get("jti", "")) >= 16,
              "our DPoP claims: htm, htu without query/fragment, iat, jti")
        check(embedded.thumbprint() == read_jwk("dev.pub.jwk").thumbprint(),
              "our DPoP jwk is the device key")

    # jwcrypto -> ours
    device = jwk.JWK.generate(kty="EC", crv="P-256")
    obj = jws.JWS(json.dumps({"jti": base64url_encode(secrets.token_bytes(16)),
                              "htm": "POST", "htu": htu, "iat": now}))
    obj.add_signature(device, None, json_encode({"typ": "dpop+jwt", "alg": "ES256",
                                                 "jwk": json.loads(device.export_public())}))
    write("py.dpop", obj.serialize(compact=True))
    out = tool("dpop-verify", "POST", htu, str(now + 5), path("py.dpop"), device.thumbprint())
    check(out is not None and out.split(" ")[0] == device.thumbprint(),
          "jwcrypto's DPoP proof verifies with ours and yields jwcrypto's thumbprint")
    check(tool("dpop-verify", "GET", htu, str(now + 5), path("py.dpop"),
               expect_ok=False) == "",
          "ours refuses jwcrypto's DPoP proof for another method")


def main():
    if TOOL is None:
        sys.stderr.write(__doc__)
        return 2
    for test in (test_thumbprint, test_jwe, test_jws, test_dpop):
        try:
            test()
        except Exception as e:  # noqa: BLE001 - a crash is a failed check
            check(False, "%s raised %r" % (test.__name__, e))
    if failures:
        print("jwcrypto_interop: %d check(s) failed:" % len(failures))
        for f in failures:
            print("  - " + f)
        return 1
    print("jwcrypto_interop: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
