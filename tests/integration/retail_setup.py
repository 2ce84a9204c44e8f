"""Shared set-up for the retailer tests: a key server (mod_keyserver under
/ks) and the retailer (mod_retail under /shop) in the test's httpd, the
retailer talking to the key server over mutual TLS with the retailer1
certificate; helpers for accounts, tokens, devices, codes and offers."""

import json
import os
import uuid

import harness
from keyserver_setup import Catalog, Device, KeyServer, assert_problem, write_private

SHOP = "/shop"
PASSWORD = "correct horse battery staple"


class Consumer:
    """A harness client below /shop that sends one account's bearer token."""

    def __init__(self, client, token):
        self.client = client
        self.token = token

    def _kw(self, kwargs):
        headers = dict(kwargs.pop("headers", {}) or {})
        if self.token is not None:
            headers.setdefault("Authorization", "Bearer " + self.token)
        kwargs["headers"] = headers
        return kwargs

    def request(self, method, path, **kwargs):
        return self.client.request(method, SHOP + path, **self._kw(kwargs))

    def get(self, path, **kwargs):
        return self.request("GET", path, **kwargs)

    def post(self, path, **kwargs):
        return self.request("POST", path, **kwargs)

    def delete(self, path, **kwargs):
        return self.request("DELETE", path, **kwargs)

    def json(self, method, path, body=None, expect=200, **kwargs):
        return self.client.json(method, SHOP + path, body, expect, **self._kw(kwargs))[1]


class Retail:
    """mod_retail configured next to a key server in env.httpd (not started)."""

    def __init__(self, env, extra="", proxy=False, media_urls=None, omit=(), ks=None,
                 ks_extra=""):
        self.env = env
        self.ks = ks or KeyServer(env, location="/ks", extra=ks_extra)
        self.db = env.migrated_database("retail")
        conf = env.httpd.conf_dir
        self.password_file = write_private(os.path.join(conf, "retail-db.password"),
                                           self.db.password + "\n")
        pki = env.pki
        retailer = pki.client("retailer1")
        self.url = env.httpd.https_url + SHOP
        self.proxy_url = self.url + "/v1/license"
        self.media_urls = media_urls or [env.httpd.https_url + "/ms"]
        env.load_project_module("mod_retail")
        lines = [
            "RetailKeyServerURL %s" % self.ks.issuer,
            'RetailKeyServerCAFile "%s"' % pki.ca_cert,
            'RetailClientCertFile "%s"' % retailer.cert,
            'RetailClientKeyFile "%s"' % retailer.key,
            'RetailClientRole admin "%s"' % pki.client("admin").subject_dn,
            "RetailCurrency EUR",
            "RetailPasswordCost 10",
            "RetailCatalogSyncInterval 0",
            'RetailDBSocket "%s"' % self.db.socket,
            "RetailDBUser %s" % self.db.user,
            'RetailDBPasswordFile "%s"' % self.password_file,
            "RetailDBName %s" % self.db.name,
            "RetailDBPoolSize 8",
        ] + ["RetailMediaStoreURL %s" % u for u in self.media_urls]
        if proxy:
            lines += ["RetailLicenseProxy On", "RetailLicenseProxyURL %s" % self.proxy_url]
        lines = [l for l in lines if not any(l.startswith(d + " ") for d in omit)]
        self.base_config = "\n".join(lines) + f"""
{extra}
<Location {SHOP}>
    SetHandler secmedia-retail
    Require all granted
</Location>
"""
        env.httpd.add_vhost_config(self.base_config)
        self.proxy = proxy

    # ---- clients -----------------------------------------------------------
    def public(self):
        return Consumer(self.env.client(), None)

    def admin(self, role="admin"):
        return Consumer(self.env.client(role), None)

    def consumer(self, token):
        return Consumer(self.env.client(), token)

    def query(self, sql):
        return self.env.db.query(sql, self.db.name)

    # ---- key server side ------------------------------------------------------
    def register_retailer(self):
        """Registers retailer1 at the key server (with the proxy URL when
        the proxy is on) before Catalog does it without."""
        admin = self.ks.client("admin")
        body = {"retailer_id": "retailer1", "name": "Retailer1",
                "subject_dn": self.env.pki.client("retailer1").subject_dn}
        if self.proxy:
            body["license_proxy_url"] = self.proxy_url
        r = admin.post("/v1/retailers", json=body)
        assert r.status_code in (201, 409), r.text

    def catalog(self, **kwargs):
        self.register_retailer()
        return Catalog(self.ks, **kwargs)

    # ---- shop side ----------------------------------------------------------------
    def sync(self):
        return self.admin().json("POST", "/v1/admin/catalog/sync", expect=200)

    def offer(self, work_id, price, license=None, expect=201, **extra):
        body = {"work_id": work_id, "license": license or {"type": "purchase"}, "price": price}
        body.update(extra)
        return self.admin().json("POST", "/v1/admin/offers", body, expect=expect)

    def signup(self, email=None, password=PASSWORD):
        email = email or "buyer-%s@example.org" % uuid.uuid4().hex[:12]
        self.public().json("POST", "/v1/accounts", {"email": email, "password": password},
                           expect=201)
        return email

    def login(self, email, password=PASSWORD):
        return self.public().json("POST", "/v1/sessions",
                                  {"email": email, "password": password}, expect=201)["token"]

    def new_buyer(self, points=0, device=True):
        """(consumer client, Device or None, email)."""
        email = self.signup()
        buyer = self.consumer(self.login(email))
        dev = None
        if device:
            dev = Device()
            buyer.json("POST", "/v1/devices",
                       {"name": "player", "jwk": json.loads(dev.key.export_public())},
                       expect=201)
        if points:
            self.fund(buyer, points)
        return buyer, dev, email

    def codes(self, points, count=1):
        return self.admin().json("POST", "/v1/admin/codes", {"points": points, "count": count},
                                 expect=201)["codes"]

    def fund(self, buyer, points):
        code = self.codes(points)[0]
        return buyer.json("POST", "/v1/wallet/redeem", {"code": code}, expect=200)

    def order(self, buyer, offer_id, key=None, device_jkt=None, expect=201):
        body = {"offer_id": offer_id}
        if device_jkt:
            body["device_jkt"] = device_jkt
        return buyer.json("POST", "/v1/orders", body, expect=expect,
                          headers={"Idempotency-Key": key or uuid.uuid4().hex})

    def balance(self, buyer):
        return buyer.json("GET", "/v1/wallet")["balance"]


def shop_with_offer(env, price=250, wholesale=199, **kwargs):
    """Started httpd with a key server, a retailer, one work under contract,
    a synced catalog and one purchase offer: (shop, catalog, offer)."""
    shop = Retail(env, **kwargs)
    env.httpd.start()
    cat = shop.catalog(price=wholesale)
    shop.sync()
    offer = shop.offer(cat.work_id, price)
    return shop, cat, offer


def steer_json(text):
    assert text.startswith("SECMEDIA-STEER/1\n"), text[:40]
    return json.loads(text[len("SECMEDIA-STEER/1\n"):])
