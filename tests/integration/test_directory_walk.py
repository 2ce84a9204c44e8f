"""The modules' URLs skip the core's directory walk (common/httpd/
smh_storage.c): <Directory> sections and .htaccess files do not apply to
them, <Location> sections still do, and static files under the
DocumentRoot are mapped as before.

The sentinels are headers set by mod_headers in a <Directory> section for
the DocumentRoot and in its .htaccess: the walk merges them into every
request whose file name lies under the DocumentRoot, which core_translate
makes of every URL, ours included, unless the walk is skipped."""

import os

from keyserver_setup import KeyServer
from mediastore_setup import MediaStore
from retail_setup import Retail

DIRECTORY_SENTINEL = "X-SM-Directory-Walk"
HTACCESS_SENTINEL = "X-SM-Htaccess"
LOCATION_SENTINEL = "X-SM-Location"
NESTED_SENTINEL = "X-SM-Nested-Location"


def all_three_modules(env):
    """Key server at /ks, retailer at /shop (with a storefront), media store
    at /ms, the sentinels, and a static file; started."""
    store = os.path.join(env.httpd.directory, "store")
    os.makedirs(store)
    for name, text in (("index.html", "<!doctype html><title>shop</title>"),
                       ("notes.de.txt", "Hinweise")):
        with open(os.path.join(store, name), "w") as f:
            f.write(text)
    os.chmod(store, 0o755)
    Retail(env, extra='RetailStorefrontDir "%s"' % store)
    MediaStore(env, location="/ms")
    env.httpd.add_config(f"""
AddLanguage de .de
<Directory "{env.httpd.docroot}">
    AllowOverride FileInfo
    Header always set {DIRECTORY_SENTINEL} 1
</Directory>""")
    env.httpd.write_doc(".htaccess", "Header always set %s 1\n" % HTACCESS_SENTINEL)
    env.httpd.write_doc("static.txt", "static\n")
    # After the modules' <Location> blocks, so they merge last: a broader
    # one, and narrower ones inside the modules' locations. The routers
    # still take their base from the <Location> that set their handler.
    env.httpd.add_vhost_config(f"""
<Location />
    Header always set {LOCATION_SENTINEL} 1
</Location>
<Location /ks/v1/inventory>
    Require all denied
</Location>
<Location /ks/v1/jwks>
    Header always set {NESTED_SENTINEL} 1
</Location>
<Location /ms/works>
    Header always set {NESTED_SENTINEL} 1
</Location>""")
    env.httpd.start()


MODULE_URLS = [
    ("GET", "/ks/v1/jwks", 200),            # mod_keyserver
    ("GET", "/shop/store/", 200),           # mod_retail's storefront
    ("HEAD", "/shop/store/index.html", 200),
    ("GET", "/ms/nothing/here", 404),       # mod_mediastore's router
    ("POST", "/ms/works/w1", 405),
]


def test_keyserver_retail_mediastore_urls_skip_the_directory_walk(env):
    all_three_modules(env)
    client = env.client()

    # A static file: the walk runs, both sentinels and the location apply.
    r = client.get("/static.txt")
    assert r.status_code == 200 and r.text == "static\n"
    assert r.headers.get(DIRECTORY_SENTINEL) == "1"
    assert r.headers.get(HTACCESS_SENTINEL) == "1"
    assert r.headers.get(LOCATION_SENTINEL) == "1"

    for method, path, status in MODULE_URLS:
        r = client.request(method, path)
        assert r.status_code == status, (method, path, r.status_code, r.text[:300])
        assert DIRECTORY_SENTINEL not in r.headers, (method, path)
        assert HTACCESS_SENTINEL not in r.headers, (method, path)
        assert r.headers.get(LOCATION_SENTINEL) == "1", (method, path)


def test_keyserver_retail_location_config_still_applies_without_the_walk(env):
    all_three_modules(env)
    client = env.client()
    env.expect_log("AH01630")   # client denied by server configuration
    # A <Location> Require below the module's location.
    assert client.get("/ks/v1/inventory").status_code == 403
    assert client.get("/ks/v1/jwks").status_code == 200
    # <Location> sections inside a module's location apply to its routes,
    # which keep their paths.
    r = client.get("/ks/v1/jwks")
    assert r.status_code == 200 and r.headers.get(NESTED_SENTINEL) == "1"
    assert "keys" in r.json()
    r = client.post("/ms/works/w1")
    assert r.status_code == 405 and r.headers.get(NESTED_SENTINEL) == "1", r.text[:300]
    # mod_mime does not take the URL's extensions for the response's
    # metadata: the request's file name is no longer DocumentRoot + URL.
    r = client.get("/shop/store/notes.de.txt")
    assert r.status_code == 200 and r.text == "Hinweise"
    assert "Content-Language" not in r.headers
    # mod_http still answers TRACE (TraceEnable's default, on) before the
    # module's map_to_storage hook.
    r = client.request("TRACE", "/ks/v1/jwks")
    assert r.status_code == 200 and r.headers["Content-Type"] == "message/http"
    assert r.text.startswith("TRACE /ks/v1/jwks HTTP/1.1")


def test_keyserver_sethandler_at_vhost_level_keeps_directory_overrides(env):
    """A SetHandler of the virtual host, not of a <Location>, may be
    overridden by a <Directory>: such requests keep the walk."""
    KeyServer(env, location="/ks")
    env.httpd.add_vhost_config("SetHandler secmedia-keyserver")
    env.httpd.add_config(f"""
<Directory "{env.httpd.docroot}/static">
    SetHandler none
</Directory>""")
    env.httpd.write_doc("static/file.txt", "static\n")
    env.httpd.start()
    client = env.client()
    r = client.get("/static/file.txt")
    assert r.status_code == 200 and r.text == "static\n"
    assert client.get("/ks/v1/jwks").status_code == 200
