"""Checks of an OpenAPI document (docs/openapi/*.yaml) against a module:
the routes in its C source and the spec's operations must be the same
set, and a scripted session (Recorder) may only get statuses and content
types the spec documents, and must call every operation."""

import os
import re

import yaml

METHODS = ("get", "post", "put", "delete", "patch")


def load_spec(name):
    path = os.path.join(os.environ["SM_TOP_SRCDIR"], "docs", "openapi", name)
    with open(path) as f:
        return yaml.safe_load(f)


def module_routes(source, handler_prefix):
    """(method, pattern) of every entry of the module's route table, HEAD
    left out (the spec lists GET, which answers HEAD too)."""
    path = os.path.join(os.environ["SM_TOP_SRCDIR"], source)
    with open(path) as f:
        text = f.read()
    routes = set()
    for methods, pattern in re.findall(r'\{"([A-Z,]+)", "(/[^"]*)", %s\w+,' % handler_prefix,
                                       text):
        for m in methods.split(","):
            if m != "HEAD":
                routes.add((m.lower(), pattern))
    assert routes, "no routes found in " + source
    return routes


def spec_operations(spec):
    return {(m, p) for p, item in spec["paths"].items() for m in item if m in METHODS}


def resolve(spec, obj):
    while "$ref" in obj:
        node = spec
        for part in obj["$ref"].lstrip("#/").split("/"):
            node = node[part]
        obj = node
    return obj


def check_spec_and_routes(name, source, handler_prefix):
    """The spec `name` is OpenAPI 3 with answers for every operation, and
    lists exactly the routes of the module's route table in `source`."""
    spec = load_spec(name)
    check_structure(spec)
    routes, ops = module_routes(source, handler_prefix), spec_operations(spec)
    assert routes - ops == set(), "routes missing from the spec"
    assert ops - routes == set(), "spec operations the module does not route"


def check_structure(spec):
    assert spec["openapi"].startswith("3.")
    for (method, path) in spec_operations(spec):
        op = spec["paths"][path][method]
        assert op.get("responses"), (method, path)
        for status in op["responses"]:
            assert re.fullmatch(r"[1-5]\d\d", str(status)), (method, path, status)


class Recorder:
    """Wraps a client and records (method, spec path, status, content type)
    of every answer; paths are given without the module's prefix."""

    def __init__(self, client, spec, seen, token=None, prefix=""):
        self.client, self.spec, self.seen, self.token = client, spec, seen, token
        self.prefix = prefix
        self.paths = list(spec["paths"])

    def template(self, path):
        segs = path.split("?")[0].split("/")

        def fits(p, exact):
            ps = p.split("/")
            return len(ps) == len(segs) and all(
                a == b or (not exact and a.startswith("{") and b) for a, b in zip(ps, segs))
        # A literal path wins over a template with a parameter in its place.
        for exact in (True, False):
            for p in self.paths:
                if fits(p, exact):
                    return p
        raise AssertionError("no spec path for " + path)

    def call(self, method, path, **kwargs):
        headers = dict(kwargs.pop("headers", {}) or {})
        if self.token:
            headers.setdefault("Authorization", "Bearer " + self.token)
        r = self.client.request(method, self.prefix + path, headers=headers, **kwargs)
        ctype = r.headers.get("Content-Type", "").split(";")[0].strip()
        self.seen.append((method.lower(), self.template(path), r.status_code, ctype))
        return r


def check_seen(spec, seen):
    for method, path, status, ctype in seen:
        op = spec["paths"][path][method]
        assert str(status) in map(str, op["responses"]), \
            "%s %s answered %d, not documented" % (method.upper(), path, status)
        resp = resolve(spec, op["responses"].get(status, op["responses"].get(str(status))))
        content = resp.get("content")
        if content:
            assert ctype in content or "*/*" in content, \
                "%s %s %d: content type %s, documented %s" % (method.upper(), path, status,
                                                               ctype, list(content))
        else:
            assert status == 204 or ctype in ("", "application/json",
                                              "application/problem+json"), \
                (method, path, status, ctype)
    missing = spec_operations(spec) - {(m, p) for m, p, _, _ in seen}
    assert missing == set(), "operations the scripted session never called"
