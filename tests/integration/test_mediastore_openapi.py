"""docs/openapi/mediastore.yaml against the implementation: the module's
routes and the spec's operations are the same set, and a scripted session
calling every operation (successes, refusals, ranges, conditional
requests) only gets statuses and content types the spec documents."""

import time

from mediastore_setup import pack_container, repr_digest, store_for
from openapi_check import Recorder, check_seen, check_spec_and_routes, load_spec
from test_mediastore import (STORE_TUNING, containers, keyserver, sales,  # noqa: F401 (fixtures)
                             tokens)

SPEC = "mediastore.yaml"


def test_spec_lists_exactly_the_routes():
    check_spec_and_routes(SPEC, "mod_mediastore/mod_mediastore.c", "ms_handle_")


def test_answers_match_the_spec(env, keyserver, sales, tokens, containers):  # noqa: F811
    spec = load_spec(SPEC)
    store_for(env, keyserver, extra=STORE_TUNING)
    env.httpd.start()
    seen = []
    owner = Recorder(env.client("owner"), spec, seen)
    anyone = Recorder(env.client(), spec, seen)
    path = pack_container(containers, "w1", 70000)
    with open(path, "rb") as f:
        w1 = f.read()
    with open(pack_container(containers, "w1", 70000, seed=2), "rb") as f:
        other = f.read()

    def put(who, url, data, **headers):
        headers.setdefault("Repr-Digest", repr_digest(data))
        return who.call("PUT", url, data=data, headers=headers)

    put(anyone, "/works/w1", w1)                                                      # 403
    put(owner, "/works/w1", w1, **{"Repr-Digest": repr_digest(b"x")})                # 400
    put(owner, "/works/w1", w1, **{"Content-Encoding": "gzip"})                       # 415
    put(owner, "/works/w1", w1)                                                       # 201
    put(owner, "/works/w1", w1)                                                       # 200
    put(owner, "/works/w1", other)                                                    # 409
    put(owner, "/works/bad%20id", w1)                                                 # 400
    put(owner, "/works/w1/preview", b"ID3 preview", **{"Content-Type": "audio/mpeg"})  # 201
    put(owner, "/works/w1/preview", b"ID3 preview2", **{"Content-Type": "audio/mpeg"})
    put(owner, "/works/w1/preview", b"x", **{"Content-Type": "not a type"})           # 415
    put(owner, "/works/none/preview", b"x", **{"Content-Type": "audio/mpeg"})         # 404
    put(anyone, "/works/w1/preview", b"x", **{"Content-Type": "audio/mpeg"})          # 403

    # A real license's token: the whole body goes out, and the key server
    # takes the delivery-complete report.
    auth = {"Authorization": "Bearer " + sales.licensed()[1]}
    anyone.call("GET", "/works/w1")                                                   # 401
    anyone.call("GET", "/works/w1", headers={
        "Authorization": "Bearer " + tokens.delivery("w2")})                         # 403
    anyone.call("GET", "/works/w2", headers={
        "Authorization": "Bearer " + tokens.delivery("w2")})                         # 404
    anyone.call("GET", "/works/w1?token=" + tokens.delivery("w1"), headers=auth)     # 400
    anyone.call("GET", "/works/w1", headers=auth)                                     # 200
    anyone.call("GET", "/works/w1", headers=dict(auth, Range="bytes=0-99"))           # 206
    anyone.call("GET", "/works/w1", headers=dict(auth, Range="bytes=0-9,20-29"))      # 206
    anyone.call("GET", "/works/w1", headers=dict(auth, Range="bytes=%d-" % len(w1)))  # 416
    time.sleep(1.1)       # a strong ETag (httpd weakens one younger than a second)
    etag = env.client().head("/works/w1", headers=auth).headers["ETag"]
    anyone.call("GET", "/works/w1", headers=dict(auth, **{"If-None-Match": etag}))    # 304
    anyone.call("GET", "/works/w1", headers=dict(auth, **{"If-Match": '"other"'}))    # 412
    anyone.call("GET", "/works/w1/preview")                                           # 200
    anyone.call("GET", "/works/w1/preview", headers={"Range": "bytes=0-1"})           # 206
    anyone.call("GET", "/works/w1/preview", headers={"Range": "bytes=999-"})          # 416
    anyone.call("GET", "/works/w2/preview")                                           # 404
    anyone.call("GET", "/works/bad%20id/preview")                                     # 400
    petag = env.client().head("/works/w1/preview").headers["ETag"]
    anyone.call("GET", "/works/w1/preview", headers={"If-None-Match": petag})         # 304
    anyone.call("GET", "/works/w1/preview", headers={"If-Match": '"other"'})          # 412

    check_seen(spec, seen)
    statuses = {(m, p, s) for m, p, s, _ in seen}
    for expected in (("put", "/works/{work_id}", 201), ("put", "/works/{work_id}", 409),
                     ("get", "/works/{work_id}", 206), ("get", "/works/{work_id}", 304),
                     ("get", "/works/{work_id}", 416), ("get", "/works/{work_id}/preview", 200)):
        assert expected in statuses, expected
    sales.wait_delivered(1)
    env.allow_log("SM02010")       # the refused tokens
    env.expect_log("SM02011", "SM02012")
