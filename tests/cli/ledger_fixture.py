#!/usr/bin/env python3
"""Writes ledger exports for tests/cli/test_ledger.sh: a valid one and one
per kind of tampering.

Written from docs/FORMATS.md ("Ledger") alone, with python3-cryptography
for ES256, so `secmedia ledger verify` accepting the valid export also shows
the format can be produced by an independent implementation.

usage: ledger_fixture.py OUTDIR
"""
import base64
import hashlib
import json
import os
import struct
import sys

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

ISS = "https://ks.example"
N = 12
CHECKPOINTS = (4, 8, 12)


def b64u(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def canonical(prev, seq, time, etype, data):
    out = b"secmedia-ledger/1\x00" + prev + struct.pack(">QQ", seq, time)
    t = etype.encode()
    out += bytes([len(t)]) + t + bytes([len(data)])
    for name in sorted(data, key=lambda n: n.encode()):
        value = data[name]
        out += bytes([len(name)]) + name.encode()
        if isinstance(value, str):
            v = value.encode()
            out += b"s" + struct.pack(">I", len(v)) + v
        else:
            out += b"i" + struct.pack(">q", value)
    return out


def entry_hash(prev, seq, time, etype, data):
    return hashlib.sha256(canonical(prev, seq, time, etype, data)).digest()


class Signer:
    def __init__(self, kid):
        self.kid = kid
        self.key = ec.generate_private_key(ec.SECP256R1())

    def jwk(self):
        nums = self.key.public_key().public_numbers()
        return {"kty": "EC", "crv": "P-256", "kid": self.kid,
                "x": b64u(nums.x.to_bytes(32, "big")), "y": b64u(nums.y.to_bytes(32, "big"))}

    def sign(self, typ, claims):
        header = b64u(json.dumps({"alg": "ES256", "kid": self.kid, "typ": typ},
                                 separators=(",", ":")).encode())
        payload = b64u(json.dumps(claims, separators=(",", ":")).encode())
        der = self.key.sign(f"{header}.{payload}".encode(), ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        return f"{header}.{payload}.{b64u(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"

    def checkpoint(self, seq, head):
        return self.sign("secmedia-checkpoint+jwt", {
            "iss": ISS, "aud": "secmedia-ledger", "iat": 1700000000 + seq,
            "exp": 253402300799, "jti": b64u(os.urandom(16)), "seq": seq, "head": b64u(head)})


def events():
    out = []
    for seq in range(1, N + 1):
        etype = ["reservation", "payment", "license"][seq % 3]
        data = {"txn": f"txn-{seq // 3}", "work_id": "album-1", "retailer": "retailer1",
                "amount": 100 * seq, "note": "caf\u00e9 \"quoted\" \u2603"}
        out.append((seq, 1700000000 + seq, etype, data))
    return out


def build(signer, evs, checkpoints=CHECKPOINTS, end=True):
    """Lines of an export whose hashes are computed over evs as given."""
    lines = [{"kind": "header", "format": "secmedia-ledger-export/1", "issuer": ISS,
              "exported_at": 1700001000, "jwks": {"keys": [signer.jwk()]}}]
    head = bytes(32)
    tokens = {}
    for seq, time, etype, data in evs:
        head = entry_hash(head, seq, time, etype, data)
        lines.append({"kind": "entry", "seq": seq, "time": time, "type": etype,
                      "data": data, "hash": b64u(head)})
        if seq in checkpoints:
            tokens[seq] = signer.checkpoint(seq, head)
            lines.append({"kind": "checkpoint", "token": tokens[seq]})
    if end:
        lines.append({"kind": "end", "last_seq": evs[-1][0] if evs else 0, "head": b64u(head)})
    return lines, tokens


def write(path, lines):
    with open(path, "w", encoding="utf-8") as f:
        for obj in lines:
            f.write(json.dumps(obj, ensure_ascii=False, separators=(",", ":")) + "\n")


def index_of(lines, seq):
    return next(i for i, o in enumerate(lines) if o["kind"] == "entry" and o["seq"] == seq)


def main(outdir):
    signer = Signer("ks-1")
    other = Signer("ks-1")  # same kid, another key: a forger's
    evs = events()
    good, tokens = build(signer, evs)
    write(f"{outdir}/good.jsonl", good)
    with open(f"{outdir}/jwks.json", "w") as f:
        json.dump({"keys": [signer.jwk()]}, f)
    with open(f"{outdir}/other-jwks.json", "w") as f:
        json.dump({"keys": [other.jwk()]}, f)
    with open(f"{outdir}/checkpoint-12.jwt", "w") as f:
        f.write(tokens[12] + "\n")

    # Entry 6's amount changed, stored hashes left alone.
    changed = json.loads(json.dumps(good))
    changed[index_of(changed, 6)]["data"]["amount"] = 1
    write(f"{outdir}/changed.jsonl", changed)

    # Entry 6 changed and every hash recomputed by someone without the
    # signing key: the old checkpoints at 8 and 12 no longer match.
    forged_evs = [(s, t, e, dict(d, amount=1) if s == 6 else d) for s, t, e, d in evs]
    rewritten, _ = build(signer, forged_evs, checkpoints=())
    for seq in CHECKPOINTS:
        rewritten.insert(index_of(rewritten, seq) + 1, {"kind": "checkpoint", "token": tokens[seq]})
    write(f"{outdir}/rewritten.jsonl", rewritten)

    # The forger re-signs checkpoints with its own key (and JWKS).
    resigned, _ = build(other, forged_evs)
    write(f"{outdir}/resigned.jsonl", resigned)

    deleted = [o for o in good if not (o["kind"] == "entry" and o["seq"] == 3)]
    write(f"{outdir}/deleted.jsonl", deleted)

    reordered = list(good)
    a, b = index_of(reordered, 9), index_of(reordered, 10)
    reordered[a], reordered[b] = reordered[b], reordered[a]
    write(f"{outdir}/reordered.jsonl", reordered)

    # Entries 10-12 cut; the checkpoint at 12 stays in the export.
    cut = good[:index_of(good, 10)] + [{"kind": "checkpoint", "token": tokens[12]}]
    cut_end, _ = build(signer, evs[:9], checkpoints=CHECKPOINTS)
    cut.append(cut_end[-1])
    write(f"{outdir}/tailcut.jsonl", cut)

    # Entries 10-12 and their checkpoint cut, consistent end line: only a
    # checkpoint kept elsewhere shows the cut.
    silent, _ = build(signer, evs[:9], checkpoints=(4, 8))
    write(f"{outdir}/tailcut-silent.jsonl", silent)

    write(f"{outdir}/truncated.jsonl", good[:-1])
    write(f"{outdir}/garbage.jsonl", good[:3] + [{"kind": "entry", "seq": "4"}])


if __name__ == "__main__":
    main(sys.argv[1])
