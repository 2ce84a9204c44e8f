#!/usr/bin/python3
"""Media store benchmarks against Apache's own static file handler, on the
same httpd (one HTTPS vhost), the same file (a hard link) and the same
client, measured in the same run. Used by bench/mediastore-get and
bench/mediastore-range; prints one last line "<name>: ratio=... target=...".

  get:   full GET of a 256 MiB container over HTTPS with a delivery token
         (curl, one connection) vs GET of the hard link as a static file.
         Median of several alternating runs.
  range: 64 KiB range GETs at random 64 KiB-aligned offsets with 32
         keep-alive connections (wrk -t2 -c32) vs the same on the static
         file. Requests per second, median of alternating runs.

Env: SM_TOP_BUILDDIR (default <top>/build, built when missing),
BENCH_SIZE_MIB (default 256), BENCH_SECONDS (range, default 4),
BENCH_ROUNDS (default 7 for range, 9 for get). Each round runs both sides back
to back (alternating which goes first); the ratio is the median of the
per-round ratios, so load from elsewhere on the machine cancels out."""

import os
import re
import shutil
import statistics
import subprocess
import sys

from bench_run import finish

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def log(msg):
    print(msg, flush=True)


def ensure_built(build):
    need = [os.path.join(build, "mod_mediastore", ".libs", "mod_mediastore.so"),
            os.path.join(build, "mod_keyserver", ".libs", "mod_keyserver.so"),
            os.path.join(build, "tools", "secmedia"),
            os.path.join(build, "sql", "secmedia-db-migrate")]
    if all(os.path.exists(p) for p in need):
        return
    log("building into %s first" % build)
    subprocess.run(["bash", os.path.join(TOP, ".ci", "install-deps")], check=True)
    if not os.path.exists(os.path.join(build, "Makefile")):
        subprocess.run(["autoreconf", "-fi"], cwd=TOP, check=True, stdout=subprocess.DEVNULL)
        os.makedirs(build, exist_ok=True)
        subprocess.run([os.path.join(TOP, "configure")], cwd=build, check=True,
                       stdout=subprocess.DEVNULL)
    jobs = str(os.cpu_count() or 2)
    subprocess.run(["make", "-j" + jobs], cwd=build, check=True, stdout=subprocess.DEVNULL)


def ensure_tool(name, package):
    if shutil.which(name):
        return
    log("installing %s" % package)
    subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", package], check=True,
                   stdout=subprocess.DEVNULL)


def main(mode):
    build = os.environ.get("SM_TOP_BUILDDIR") or os.path.join(TOP, "build")
    ensure_built(build)
    ensure_tool("curl", "curl")
    if mode == "range":
        ensure_tool("wrk", "wrk")
    os.environ.update(SM_TOP_BUILDDIR=build, SM_TOP_SRCDIR=TOP,
                      SM_TESTS_BUILDDIR=os.path.join(build, "tests"))
    sys.path.insert(0, os.path.join(TOP, "tests", "integration"))
    import harness
    import keyserver_setup as ks
    import mediastore_setup as ms

    harness.install_signal_handlers()
    work = harness.Workspace()
    db = harness.MariaDB(os.path.join(work.path, "mariadb"))
    httpd = None
    ok = False
    try:
        pki = harness.TestPKI(os.path.join(work.path, "pki"))
        db.start()
        httpd = harness.Httpd(work.new_dir("httpd"), pki, log_level="warn")
        env = harness.Env(pki, httpd, lambda: db)
        # The media store on /ms, the real key server on /ks of the same
        # httpd: the token comes from a license, the media store checks it
        # against the key server's JWKS and reports the delivery to it.
        keyserver = ks.KeyServer(env, location="/ks")
        store = ms.store_for(env, keyserver, location="/ms", extra="MediaStoreMaxUploadSize 1G")
        httpd.start()
        sales = ms.Sales(keyserver, "bench")
        size_mib = int(os.environ.get("BENCH_SIZE_MIB", "256"))
        log("packing a %d MiB container" % size_mib)
        container = ms.pack_container(os.path.join(work.path, "c"), "bench", size_mib << 20)
        owner = env.client("owner", timeout=300)
        with open(container, "rb") as f:
            r = owner.put("/ms/works/bench", data=f,
                          headers={"Repr-Digest": ms.file_digest(container)})
        if r.status_code != 201:
            raise SystemExit("upload failed: %d %s" % (r.status_code, r.text))
        # The static baseline serves the very same inode.
        static = os.path.join(httpd.docroot, "static.smc")
        os.link(store.file_path("bench"), static)
        os.chmod(httpd.docroot, 0o755)
        size = os.path.getsize(static)
        token = sales.licensed()[1]
        auth = "Authorization: Bearer " + token
        ms_url = httpd.https_url + "/ms/works/bench"
        static_url = httpd.https_url + "/static.smc"
        if mode == "get":
            run_get(pki, size, ms_url, static_url, auth)
        else:
            run_range(pki, size, ms_url, static_url, auth, work.path)
        ok = True
    finally:
        finish(work, ok, [httpd, db], log)


def curl_speed(pki, url, headers=()):
    argv = ["curl", "-s", "-S", "-o", "/dev/null", "--cacert", pki.ca_cert,
            "-w", "%{http_code} %{size_download} %{speed_download}", url]
    for h in headers:
        argv += ["-H", h]
    out = subprocess.run(argv, check=True, stdout=subprocess.PIPE, text=True).stdout.split()
    return int(out[0]), int(out[1]), float(out[2])


def run_get(pki, size, ms_url, static_url, auth):
    rounds = int(os.environ.get("BENCH_ROUNDS", "9"))
    # Warm the page cache and the JWKS cache.
    curl_speed(pki, static_url)
    curl_speed(pki, ms_url, [auth])
    ms_speeds, static_speeds = [], []
    runs = [(static_url, (), static_speeds), (ms_url, (auth,), ms_speeds)]
    for i in range(rounds):
        # Alternate which goes first, so drift favours neither.
        for url, headers, speeds in (runs if i % 2 == 0 else runs[::-1]):
            code, got, speed = curl_speed(pki, url, headers)
            if code != 200 or got != size:
                raise SystemExit("GET %s: status %d, %d of %d bytes" % (url, code, got, size))
            speeds.append(speed)
        log("round %d: static %.0f MiB/s, mediastore %.0f MiB/s"
            % (i + 1, static_speeds[-1] / 2**20, ms_speeds[-1] / 2**20))
    s, m = statistics.median(static_speeds), statistics.median(ms_speeds)
    ratio = statistics.median(a / b for a, b in zip(ms_speeds, static_speeds))
    log("median: static %.0f MiB/s, mediastore %.0f MiB/s" % (s / 2**20, m / 2**20))
    # The median of the per-round ratios: each pair ran back to back, so
    # load from elsewhere on the machine affects both sides alike.
    print("mediastore-get: ratio=%.3f target=>=0.95" % ratio)


WRK_SCRIPT = """
local size = %d
local block = 65536
local blocks = math.floor(size / block)
local headers = %s
local n = 0
init = function(args)
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
end
request = function()
  local off = math.random(0, blocks - 1) * block
  headers["Range"] = "bytes=" .. off .. "-" .. (off + block - 1)
  return wrk.format("GET", nil, headers)
end
response = function(status, h, body)
  if status ~= 206 then
    n = n + 1
    if n < 3 then print("unexpected status " .. status) end
  end
end
"""


def wrk_rate(url, script, seconds):
    out = subprocess.run(["wrk", "-t2", "-c32", "-d%ds" % seconds, "-s", script, url],
                         check=True, stdout=subprocess.PIPE, text=True).stdout
    if "unexpected status" in out or "Non-2xx" in out:
        raise SystemExit("wrk saw errors:\n" + out)
    return float(re.search(r"Requests/sec:\s+([0-9.]+)", out).group(1))


def run_range(pki, size, ms_url, static_url, auth, workdir):
    rounds = int(os.environ.get("BENCH_ROUNDS", "7"))
    seconds = int(os.environ.get("BENCH_SECONDS", "4"))
    name, value = auth.split(": ", 1)
    scripts = {}
    for key, hdrs in (("static", "{}"), ("ms", '{["%s"] = "%s"}' % (name, value))):
        path = os.path.join(workdir, "wrk-%s.lua" % key)
        with open(path, "w") as f:
            f.write(WRK_SCRIPT % (size, hdrs))
        scripts[key] = path
    # wrk does not verify certificates; the URLs are our own loopback server.
    wrk_rate(static_url, scripts["static"], 2)
    wrk_rate(ms_url, scripts["ms"], 2)
    ms_rates, static_rates = [], []
    for i in range(rounds):
        pair = [(static_url, "static", static_rates), (ms_url, "ms", ms_rates)]
        for url, key, rates in (pair if i % 2 == 0 else pair[::-1]):
            rates.append(wrk_rate(url, scripts[key], seconds))
        log("round %d: static %.0f req/s, mediastore %.0f req/s"
            % (i + 1, static_rates[-1], ms_rates[-1]))
    s, m = statistics.median(static_rates), statistics.median(ms_rates)
    ratio = statistics.median(a / b for a, b in zip(ms_rates, static_rates))
    log("median: static %.0f req/s, mediastore %.0f req/s (64 KiB ranges, 32 connections)"
        % (s, m))
    print("mediastore-range: ratio=%.3f target=>=0.85" % ratio)


if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] not in ("get", "range"):
        raise SystemExit("usage: mediastore_bench.py get|range")
    main(sys.argv[1])
