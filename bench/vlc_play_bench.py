#!/usr/bin/python3
"""bench/vlc-play: what playing through a steering file costs the player.

A 10-minute Ogg/Vorbis track (pink noise, ffmpeg, about 10 MB) is packed,
published to a real media store and key server (one httpd with mod_ssl on
loopback, private MariaDB, the integration harness), sold to a device key
made with `secmedia keygen`, and a .steer written. Then, in the same run,
alternating which goes first, BENCH_ROUNDS times (default 5):

- plain: tests/vlc/vlc_decode on the plain .ogg,
- steer: tests/vlc/vlc_decode on the .steer (licence request, HTTPS range
  requests to the media store, decryption in the plugin),

both with the plugin loaded, decoding as fast as possible to a null output
(transcode to s16 into smem without clock sync, audio written to /dev/null).

Cost = user + sys CPU time of the vlc_decode process (wait4 rusage: all its
threads; the servers' CPU is not the player's and is not counted). Reported:
ratio = median(steer cost) / median(plain cost), target <= 1.10; and
first_audio_extra_ms = median(steer) - median(plain) of the time from
libvlc_media_player_play() to the first decoded audio (vlc_decode's
first_audio_ms), target <= 100 ms.

Last line exactly:
  vlc-play: ratio=<steer cost / plain cost> first_audio_extra_ms=<n> target=<=1.10

Env: SM_TOP_BUILDDIR (default <top>/build), BENCH_ROUNDS (default 5),
BENCH_MINUTES (default 10)."""

import os
import statistics
import subprocess
import sys

from bench_run import finish

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def log(msg):
    print(msg, flush=True)


def ensure_built(build):
    """Build the tree (and the libvlc harness, a check program) if needed."""
    if not os.path.exists(os.path.join(build, "Makefile")):
        log("configuring and building into %s first" % build)
        subprocess.run(["bash", os.path.join(TOP, ".ci", "install-deps")], check=True)
        subprocess.run(["autoreconf", "-fi"], cwd=TOP, check=True, stdout=subprocess.DEVNULL)
        os.makedirs(build, exist_ok=True)
        subprocess.run([os.path.join(TOP, "configure")], cwd=build, check=True,
                       stdout=subprocess.DEVNULL)
    subprocess.run(["make", "-j%d" % (os.cpu_count() or 2)], cwd=build, check=True,
                   stdout=subprocess.DEVNULL)
    subprocess.run(["make", "-C", "tests", "vlc/vlc_decode"], cwd=build, check=True,
                   stdout=subprocess.DEVNULL)


def timed_decode(vs, mrl, outdir, name, plugin_args):
    """One vlc_decode run: (cpu seconds, first_audio_ms, summary)."""
    argv = [vs.decoder_path(), "--audio-out", os.devnull, "--log", os.devnull,
            "--timeout", "300", "--fail-module", "secmedia"]
    for arg in plugin_args:
        argv += ["--vlc-arg", arg]
    argv.append(mrl)
    stdout_path = os.path.join(outdir, name + ".out")
    with open(stdout_path, "w") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.DEVNULL,
                                env=vs.decoder_env(plugin=True, home=outdir))
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    with open(stdout_path) as f:
        text = f.read()
    summary = dict(item.split("=", 1) for line in text.splitlines()
                   if line.startswith("vlc_decode: ") for item in line.split()[1:]
                   if "=" in item)
    if proc.returncode != 0 or summary.get("result") != "ok":
        raise RuntimeError("vlc_decode %s failed (exit %d): %s" % (mrl, proc.returncode,
                                                                   text.strip()))
    return usage.ru_utime + usage.ru_stime, float(summary["first_audio_ms"]), summary


def main():
    build = os.environ.get("SM_TOP_BUILDDIR") or os.path.join(TOP, "build")
    rounds = int(os.environ.get("BENCH_ROUNDS", "5"))
    minutes = float(os.environ.get("BENCH_MINUTES", "10"))
    ensure_built(build)
    os.environ.update(SM_TOP_BUILDDIR=build, SM_TOP_SRCDIR=TOP,
                      SM_TESTS_BUILDDIR=os.path.join(build, "tests"),
                      SM_TESTS_SRCDIR=os.path.join(TOP, "tests"))
    sys.path.insert(0, os.path.join(TOP, "tests", "integration"))
    import harness
    import vlc_setup as vs

    missing = vs.plugin_missing_reason()
    if missing is not None:
        log("vlc-play: %s; build the plugin first" % missing[1])
        return 1

    harness.install_signal_handlers()
    work = harness.Workspace()
    db = harness.MariaDB(os.path.join(work.path, "mariadb"))
    httpd = None
    ok = False
    try:
        media = work.new_dir("media")
        log("making a %g-minute Ogg/Vorbis track with ffmpeg" % minutes)
        plain = vs.make_media(media, "ogg", seconds=minutes * 60, name="long.ogg")
        pki = harness.TestPKI(os.path.join(work.path, "pki"))
        db.start()
        httpd = harness.Httpd(work.new_dir("httpd"), pki, log_level="warn")
        env = harness.Env(pki, httpd, lambda: db)
        shop = vs.Shop(env, work.new_dir("works"), activation_limit=rounds + 10)
        item = shop.publish(plain, "ogg", work_id="w-bench-long")
        device_key = os.path.join(work.new_dir("device"), "device.jwk")
        jkt = vs.keygen(device_key)
        sale = shop.sell(item, jkt, os.path.join(media, "long.steer"))
        args = vs.plugin_args(device_key, shop.ca_file, work.new_dir("offline"))
        out = work.new_dir("runs")
        log("%s: %d bytes plain, %d bytes packed; %d rounds" % (
            os.path.basename(plain), os.path.getsize(plain), os.path.getsize(item.smc),
            rounds))

        # One untimed run of each: page cache, plugin load, TLS session set-up
        # paths warmed alike.
        timed_decode(vs, plain, out, "warm-plain", args)
        timed_decode(vs, sale.steer, out, "warm-steer", args)
        cost = {"plain": [], "steer": []}
        first = {"plain": [], "steer": []}
        decoded = set()
        for r in range(rounds):
            order = ("plain", "steer") if r % 2 == 0 else ("steer", "plain")
            for kind in order:
                mrl = plain if kind == "plain" else sale.steer
                cpu, first_ms, summary = timed_decode(vs, mrl, out, "%s-%d" % (kind, r), args)
                decoded.add(summary.get("audio_bytes"))
                cost[kind].append(cpu)
                first[kind].append(first_ms)
                log("round %d %-5s cpu=%.3fs first_audio=%.1fms audio_bytes=%s" % (
                    r + 1, kind, cpu, first_ms, summary.get("audio_bytes")))
        if len(decoded) != 1:
            raise RuntimeError("plain and steer runs decoded different amounts of audio: %s"
                               % sorted(decoded))
        plain_cost = statistics.median(cost["plain"])
        steer_cost = statistics.median(cost["steer"])
        ratio = steer_cost / plain_cost
        extra = statistics.median(first["steer"]) - statistics.median(first["plain"])
        log("median cpu: plain %.3fs, steer %.3fs (ratio of the minimums, less "
            "sensitive to other load on the machine: %.3f); median first audio: plain "
            "%.1fms, steer %.1fms; licences issued: %d" % (
                plain_cost, steer_cost, min(cost["steer"]) / min(cost["plain"]),
                statistics.median(first["plain"]), statistics.median(first["steer"]),
                shop.license_count(sale.txn)))
        ok = True
        log("vlc-play: ratio=%.3f first_audio_extra_ms=%d target=<=1.10"
            % (ratio, round(extra)))
        return 0
    finally:
        finish(work, ok, [httpd, db], log)


if __name__ == "__main__":
    sys.exit(main())
