#!/usr/bin/python3
"""bench/license: licenses per second and p99 latency over HTTPS keep-alive
with 32 connections (wrk -t2 -c32), against a baseline handler doing one
SELECT and one INSERT on the same database through the same pool
(bench/mod_sm_dbbaseline.c, built here with apxs), on the same httpd, in
the same run. Each license request carries a fresh device proof (made here
beforehand) and a voucher of a paid transaction; every request is a full
license: proof replay check, activation, ledger entry, key JWE, delivery
token.

Prints one last line: "license: ratio=<licenses/s / baseline req/s>
rate=<licenses/s> p99_ms=<p99 of the license runs>" (targets: ratio >= 0.3,
p99 < 50 ms).

At the end the ledger is exported and checked with `secmedia ledger
verify`: every license must be chained, gapless, under load.

Each round also reports the CPU time httpd and mariadbd spent per request
(utime + stime from /proc, both sides): unlike the rates, it hardly moves
with other load on the machine.

Env: SM_TOP_BUILDDIR (default <top>/build), BENCH_SECONDS (default 4),
BENCH_ROUNDS (default 5). Rounds alternate which side runs first; ratio and
rate are medians over rounds."""

import base64
import json
import os
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import time

from bench_cpu import CpuMeter, StealMeter, p256_speed
from bench_run import finish

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PER_THREAD = 12000          # proofs per wrk thread per round (2 threads)
ACTIVATIONS = 1000          # KeyServerActivationLimit: licenses per transaction
TRANSACTIONS = 200          # distinct sales per round


def log(msg):
    print(msg, flush=True)


def b64u(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def ensure_tool(name, package):
    if shutil.which(name):
        return
    log("installing %s" % package)
    subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", package], check=True,
                   stdout=subprocess.DEVNULL)


def ensure_built(build):
    if not os.path.exists(os.path.join(build, "mod_keyserver", ".libs", "mod_keyserver.so")):
        log("building into %s first" % build)
        subprocess.run(["bash", os.path.join(TOP, ".ci", "install-deps")], check=True)
        if not os.path.exists(os.path.join(build, "Makefile")):
            subprocess.run(["autoreconf", "-fi"], cwd=TOP, check=True, stdout=subprocess.DEVNULL)
            os.makedirs(build, exist_ok=True)
            subprocess.run([os.path.join(TOP, "configure")], cwd=build, check=True,
                           stdout=subprocess.DEVNULL)
        subprocess.run(["make", "-j%d" % (os.cpu_count() or 2)], cwd=build, check=True,
                       stdout=subprocess.DEVNULL)


def build_baseline(build, workdir):
    """apxs-builds the baseline module against the built libsecmedia_db and
    libsecmedia (the pool the key server uses)."""
    src = os.path.join(workdir, "mod_sm_dbbaseline.c")
    shutil.copy(os.path.join(TOP, "bench", "mod_sm_dbbaseline.c"), src)
    libs_dir = os.path.join(build, "common", ".libs")
    lib = [os.path.join(libs_dir, "libsecmedia_db.a"), os.path.join(libs_dir, "libsecmedia.a")]
    libs = subprocess.run(["pkg-config", "--libs", "libmariadb", "cjose", "jansson", "libcrypto",
                           "libcurl"], check=True, stdout=subprocess.PIPE, text=True).stdout.split()
    subprocess.run(["apxs", "-c", "-I" + build, "-I" + os.path.join(TOP, "common"),
                    "-I" + os.path.join(TOP, "common", "httpd"), src] + lib + libs + ["-lpthread"],
                   cwd=workdir, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    return os.path.join(workdir, ".libs", "mod_sm_dbbaseline.so")


class ProofMaker:
    """Device proofs (RFC 9449) made with python-cryptography: fast enough
    to prepare tens of thousands before a round."""

    def __init__(self, device_key, url):
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
        self._hashes, self._ec, self._decode = hashes, ec, decode_dss_signature
        self.key = device_key
        nums = device_key.public_key().public_numbers()
        jwk = {"kty": "EC", "crv": "P-256", "x": b64u(nums.x.to_bytes(32, "big")),
               "y": b64u(nums.y.to_bytes(32, "big"))}
        self.header = b64u(json.dumps({"typ": "dpop+jwt", "alg": "ES256", "jwk": jwk},
                                      separators=(",", ":")).encode())
        self.url = url

    def proof(self):
        claims = {"jti": b64u(secrets.token_bytes(16)), "htm": "POST", "htu": self.url,
                  "iat": int(time.time())}
        payload = b64u(json.dumps(claims, separators=(",", ":")).encode())
        signing_input = ("%s.%s" % (self.header, payload)).encode()
        r, s = self._decode(self.key.sign(signing_input, self._ec.ECDSA(self._hashes.SHA256())))
        return "%s.%s.%s" % (self.header, payload,
                             b64u(r.to_bytes(32, "big") + s.to_bytes(32, "big")))


WRK_LICENSE = """
local dir = "%s"
local counter = 0
local lines = {}
local idx = 0
local bad = 0
setup = function(thread)
  thread:set("id", counter)
  counter = counter + 1
end
init = function(args)
  for line in io.lines(dir .. "/proofs-" .. id .. ".txt") do lines[#lines + 1] = line end
end
request = function()
  idx = idx + 1
  local line = lines[idx]
  if line == nil then line = lines[#lines] end
  local sp = line:find(" ")
  local voucher, proof = line:sub(1, sp - 1), line:sub(sp + 1)
  return wrk.format("POST", "/v1/license",
    {["Content-Type"] = "application/json", ["DPoP"] = proof},
    '{"voucher":"' .. voucher .. '"}')
end
response = function(status, headers, body)
  if status ~= 200 then
    bad = bad + 1
    if bad < 3 then print("unexpected status " .. status .. " " .. body:sub(1, 200)) end
  end
end
"""


def wrk(url, script, seconds):
    """(requests/s, {percentile: latency ms}) of one wrk run."""
    argv = ["wrk", "-t2", "-c32", "-d%ds" % seconds, "--latency"]
    if script:
        argv += ["-s", script]
    out = subprocess.run(argv + [url], check=True, stdout=subprocess.PIPE, text=True).stdout
    if "unexpected status" in out or "Non-2xx" in out:
        raise SystemExit("wrk saw errors:\n" + out)
    rate = float(re.search(r"Requests/sec:\s+([0-9.]+)", out).group(1))
    latency = {}
    for pct, value, unit in re.findall(r"^\s*(50|75|90|99)%\s+([0-9.]+)(us|ms|s)\s*$", out, re.M):
        latency[int(pct)] = float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
    return rate, latency


def spread(latency):
    return "/".join("%.1f" % latency.get(p, float("nan")) for p in (50, 90, 99))


def main():
    build = os.environ.get("SM_TOP_BUILDDIR") or os.path.join(TOP, "build")
    ensure_built(build)
    ensure_tool("wrk", "wrk")
    ensure_tool("apxs", "apache2-dev")
    os.environ.update(SM_TOP_BUILDDIR=build, SM_TOP_SRCDIR=TOP,
                      SM_TESTS_BUILDDIR=os.path.join(build, "tests"))
    sys.path.insert(0, os.path.join(TOP, "tests", "integration"))
    import harness
    from cryptography.hazmat.primitives.asymmetric import ec
    from keyserver_setup import Catalog, KeyServer, run_ledger_verify

    seconds = int(os.environ.get("BENCH_SECONDS", "4"))
    rounds = int(os.environ.get("BENCH_ROUNDS", "5"))
    harness.install_signal_handlers()
    work = harness.Workspace()
    db = harness.MariaDB(os.path.join(work.path, "mariadb"))
    httpd = None
    ok = False
    try:
        baseline_so = build_baseline(build, work.new_dir("baseline"))
        pki = harness.TestPKI(os.path.join(work.path, "pki"))
        db.start()
        # The process model docs/CONFIGURATION.md §1.3 recommends: one child
        # with a thread for each of the 32 connections.
        httpd = harness.Httpd(work.new_dir("httpd"), pki, log_level="warn",
                              mpm=harness.single_child_mpm(64))
        env = harness.Env(pki, httpd, lambda: db)
        ks = KeyServer(env, activation_limit=ACTIVATIONS, checkpoint_every=1000,
                       extra="KeyServerProofMaxAge 1d\nKeyServerDBPoolSize 8")
        db.execute("CREATE TABLE bench_probe (id BIGINT AUTO_INCREMENT PRIMARY KEY, "
                   "v BIGINT NOT NULL) ENGINE=InnoDB", ks.db.name)
        httpd.load_module(baseline_so, "sm_dbbaseline_module")
        httpd.add_vhost_config(f"""
DBBaselineDB "{ks.db.socket}" {ks.db.user} {ks.db.name}
DBBaselinePassword "{ks.db.password}"
DBBaselinePoolSize 8
<Location /baseline>
    SetHandler sm-dbbaseline
    Require all granted
</Location>
""")
        httpd.start()
        cat = Catalog(ks)
        device_key = ec.generate_private_key(ec.SECP256R1())
        maker = ProofMaker(device_key, ks.license_url)
        # A sale only needs the device's thumbprint.
        from jwcrypto import jwk
        device = type("BenchDevice", (), {})()
        device.jkt = jwk.JWK(**json.loads(maker_public_jwk(device_key))).thumbprint()

        wrk_dir = work.new_dir("wrk")
        script = os.path.join(wrk_dir, "license.lua")
        with open(script, "w") as f:
            f.write(WRK_LICENSE % wrk_dir)

        def prepare_round():
            needed = 2 * PER_THREAD
            # Enough transactions that 32 connections rarely meet on one.
            vouchers = [cat.sold(device)["voucher"]
                        for _ in range(max(needed // ACTIVATIONS + 1, TRANSACTIONS))]
            for t in range(2):
                # Each wrk thread its own half of the transactions, taken in
                # turn: requests for one transaction serialise on its row by
                # design, and one device rarely asks twice at once, so
                # concurrent requests should not meet on one. (Both threads
                # walking the same list in step made them collide all the
                # time.)
                mine = vouchers[t::2]
                with open(os.path.join(wrk_dir, "proofs-%d.txt" % t), "w") as f:
                    for i in range(PER_THREAD):
                        f.write("%s %s\n" % (mine[i % len(mine)], maker.proof()))

        base_url = httpd.https_url + "/baseline"
        lic_url = httpd.https_url
        probe = env.client().get("/baseline")
        if probe.status_code != 200:
            raise SystemExit("baseline handler answers %d: %s\n%s" % (
                probe.status_code, probe.text[:300], httpd.error_log_text()[-2000:]))
        wrk(base_url, None, 2)                       # warm up
        log("host: P-256 on one core (openssl speed): %s" % p256_speed())
        lic_rates, base_rates, p99s = [], [], []
        meter = CpuMeter(httpd, db)
        steal = StealMeter()
        cpu, spreads = {}, {}
        for i in range(rounds):
            prepare_round()
            steal.start()
            sides = [("baseline", lambda: wrk(base_url, None, seconds)),
                     ("license", lambda: wrk(lic_url, script, seconds))]
            for name, run in (sides if i % 2 == 0 else sides[::-1]):
                meter.start()
                rate, latency = run()
                used = meter.stop()
                count = max(rate * seconds, 1.0)
                cpu[name] = "httpd %.3f + mariadbd %.3f ms" % (used["httpd"] / count,
                                                              used["mariadbd"] / count)
                spreads[name] = spread(latency)
                if name == "baseline":
                    base_rates.append(rate)
                else:
                    lic_rates.append(rate)
                    p99s.append(latency[99])
            log("round %d: baseline %.0f req/s, license %.0f licenses/s (p99 %.1f ms); "
                "CPU per request: baseline %s, license %s; latency p50/p90/p99 ms: "
                "baseline %s, license %s; host CPU steal %.0f %%"
                % (i + 1, base_rates[-1], lic_rates[-1], p99s[-1], cpu["baseline"],
                   cpu["license"], spreads["baseline"], spreads["license"], steal.stop()))
        ratio = statistics.median(a / b for a, b in zip(lic_rates, base_rates))
        rate = statistics.median(lic_rates)
        p99 = statistics.median(p99s)
        log("median: baseline %.0f req/s, license %.0f licenses/s" % (
            statistics.median(base_rates), rate))
        # Every license is in the ledger, chained without gaps under load:
        # the export (which chains what is still queued) must verify.
        # Requests still in flight when wrk stopped finish first.
        time.sleep(2)
        licenses = int(ks.query("SELECT COUNT(*) FROM licenses")[0][0])
        export = ks.client("admin").get("/v1/ledger/export")
        code, out, err = run_ledger_verify(ks, export.text, work.new_dir("ledger"))
        # One entry per license: (txn, activation) is unique per license.
        entries = int(ks.query("SELECT COUNT(DISTINCT data) FROM ledger "
                               "WHERE type = 'license'")[0][0])
        if int(ks.query("SELECT COUNT(*) FROM ledger WHERE type = 'license'")[0][0]) != entries:
            raise SystemExit("ledger check failed: a license is in the ledger twice")
        if export.status_code != 200 or code != 0 or entries != licenses:
            raise SystemExit("ledger check failed: export %d, verify %d %s %s, %d license "
                             "entries for %d licenses" % (export.status_code, code, out, err,
                                                          entries, licenses))
        status = dict(db.query("SHOW GLOBAL STATUS WHERE Variable_name IN "
                               "('Innodb_deadlocks', 'Innodb_row_lock_waits', "
                               "'Innodb_row_lock_time')"))
        log("database: %s deadlocks, %s row lock waits (%s ms waited)" % (
            status.get("Innodb_deadlocks", "?"), status.get("Innodb_row_lock_waits", "?"),
            status.get("Innodb_row_lock_time", "?")))
        log("ledger: %d license entries for %d licenses, %s" % (
            entries, licenses, out.strip().splitlines()[0] if out.strip() else "verified"))
        print("license: ratio=%.3f rate=%.0f p99_ms=%.1f target=ratio>=0.3,p99<50ms"
              % (ratio, rate, p99))
        ok = True
    finally:
        finish(work, ok, [httpd, db], log)


def maker_public_jwk(key):
    nums = key.public_key().public_numbers()
    return json.dumps({"kty": "EC", "crv": "P-256", "x": b64u(nums.x.to_bytes(32, "big")),
                       "y": b64u(nums.y.to_bytes(32, "big"))})


if __name__ == "__main__":
    main()
