"""Shared set-up for the VLC end-to-end tests (test_vlc_*.py) and
bench/vlc-play: test media made with ffmpeg, the key server and the media
store in one httpd, publishing with the real `secmedia` CLI, sales made with
the retailer's client certificate, steering files (docs/FORMATS.md §2), and
running tests/vlc/vlc_decode (libvlc, with or without the secmedia plugin).

No pytest dependency here, so the benchmark can use it too."""

import base64
import json
import os
import re
import shutil
import subprocess
import time
import uuid
from dataclasses import dataclass, field

import harness
from keyserver_setup import KeyServer

STEER_MAGIC = "SECMEDIA-STEER/1\n"

# One entry per format the issue names: file name, media type, and the
# ffmpeg arguments that make it from lavfi sources. Pink noise compresses
# badly, so a few seconds span many 16 KiB chunks (see MEDIA_SECONDS).
# The m4a is written without +faststart: its index (moov) is at the end,
# so the demuxer must seek to the end first (a Range request far ahead).
NOISE = "anoisesrc=color=pink:seed=7:amplitude=0.25:sample_rate=%d:duration=%g"
FORMATS = {
    "ogg": ("song.ogg", "audio/ogg", 44100, ["-c:a", "libvorbis", "-q:a", "8"]),
    "opus": ("song.opus", "audio/ogg", 48000, ["-c:a", "libopus", "-b:a", "256k"]),
    "mp3": ("song.mp3", "audio/mpeg", 44100, ["-c:a", "libmp3lame", "-b:a", "256k"]),
    "flac": ("song.flac", "audio/flac", 44100, ["-c:a", "flac"]),
    "m4a": ("song.m4a", "audio/mp4", 44100, ["-c:a", "aac", "-b:a", "256k"]),
    "mkv": ("clip.mkv", "video/x-matroska", 48000,
            ["-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-pix_fmt", "yuv420p",
             "-c:a", "libvorbis", "-q:a", "6"]),
}
MEDIA_SECONDS = 6
# Bytes of PCM per second for the s16 stereo output of each format.
def pcm_rate(fmt):
    return FORMATS[fmt][2] * 2 * 2


def build_dir():
    return os.environ["SM_TOP_BUILDDIR"]


def src_dir():
    return os.environ.get("SM_TOP_SRCDIR") or os.path.dirname(
        os.path.dirname(os.environ["SM_TESTS_SRCDIR"]))


def secmedia_path():
    return os.path.join(build_dir(), "tools", "secmedia")


def secmedia(*args, check=True, timeout=120):
    result = subprocess.run([secmedia_path(), *args], capture_output=True, text=True,
                            timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError("secmedia %s: exit %d\n%s%s" % (
            " ".join(args), result.returncode, result.stdout, result.stderr))
    return result


def decoder_path():
    tests = os.environ.get("SM_TESTS_BUILDDIR") or os.path.join(build_dir(), "tests")
    return os.path.join(tests, "vlc", "vlc_decode")


def plugin_dir():
    """Where the build leaves libsecmedia_plugin.so (VLC_PLUGIN_PATH);
    $SM_VLC_PLUGIN_DIR overrides it (e.g. to test another build of it)."""
    return os.environ.get("SM_VLC_PLUGIN_DIR") or os.path.join(
        build_dir(), "vlc_access_secmedia", ".libs")


def plugin_missing_reason():
    """None when the plugin is built; otherwise why the steer tests cannot
    run. A tree whose plugin directory is still the placeholder (before
    issue 4's plugin is merged) gives a skip reason; a tree that should have
    built it but did not is an error the caller reports as a failure."""
    if os.path.exists(os.path.join(plugin_dir(), "libsecmedia_plugin.so")):
        return None
    makefile = os.path.join(src_dir(), "vlc_access_secmedia", "Makefile.am")
    try:
        with open(makefile) as f:
            placeholder = "Placeholder" in f.read()
    except OSError:
        placeholder = False
    return ("placeholder" if placeholder else "missing",
            "the secmedia VLC plugin is not built (%s/libsecmedia_plugin.so)" % plugin_dir())


def make_media(directory, fmt, seconds=MEDIA_SECONDS, name=None):
    """Generate the test file for fmt with ffmpeg (once per directory)."""
    default_name, _, rate, codec = FORMATS[fmt]
    name = name or default_name
    path = os.path.join(directory, name)
    if os.path.exists(path):
        return path
    args = ["ffmpeg", "-nostdin", "-v", "error", "-y"]
    if fmt == "mkv":
        args += ["-f", "lavfi", "-i", "testsrc=size=320x240:rate=25:duration=%g" % seconds]
    args += ["-f", "lavfi", "-i", NOISE % (rate, seconds), "-ac", "2"] + codec
    if fmt == "m4a":
        args += ["-movflags", "-faststart"]
    tmp = path + ".tmp" + os.path.splitext(name)[1]
    subprocess.run(args + [tmp], check=True, timeout=120)
    os.rename(tmp, path)
    return path


# --- decoding ------------------------------------------------------------------

@dataclass
class Decoded:
    """What one vlc_decode run produced."""
    argv: list
    returncode: int
    stdout: str
    stderr: str
    audio_path: str
    video_path: str
    log_path: str
    summary: dict = field(default_factory=dict)

    @property
    def audio(self):
        with open(self.audio_path, "rb") as f:
            return f.read()

    @property
    def video(self):
        if not self.video_path:
            return b""
        with open(self.video_path, "rb") as f:
            return f.read()

    @property
    def log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def describe(self):
        return ("vlc_decode exit %d\n  argv: %s\n  stdout: %s\n  stderr (tail): %s\n"
                "  log: %s\n  log errors:\n    %s" % (
                    self.returncode, " ".join(self.argv), self.stdout.strip(),
                    self.stderr[-1500:], self.log_path,
                    "\n    ".join(l for l in self.log.splitlines()
                                  if l.startswith(("error", "dialog")))[-3000:]))

    def errors(self):
        """Log lines at error level and dialogs."""
        return [l for l in self.log.splitlines() if l.startswith(("error ", "dialog error"))]


def decoder_env(plugin, home=None):
    env = dict(os.environ)
    env.pop("VLC_PLUGIN_PATH", None)
    if home is not None:
        # Defaults the plugin and VLC would take from the user's home
        # (device key, offline store, caches) point into the test's dir.
        for var, sub in (("HOME", ""), ("XDG_CONFIG_HOME", "config"),
                         ("XDG_DATA_HOME", "data"), ("XDG_CACHE_HOME", "cache")):
            env[var] = os.path.join(home, sub)
        env.pop("SECMEDIA_DEVICE_KEY", None)
    if plugin:
        env["VLC_PLUGIN_PATH"] = plugin_dir()
    # Sanitizer builds: libvlc and its plugins leak at exit by design, which
    # is not ours to report; everything else stays on (a later entry of
    # ASAN_OPTIONS wins).
    asan = env.get("ASAN_OPTIONS", "")
    env["ASAN_OPTIONS"] = (asan + ":" if asan else "") + "detect_leaks=0"
    return env


def decode(mrl, outdir, name, plugin=True, start=None, video=False, preparse=False,
           vlc_args=(), fail_module="secmedia", timeout=60, keep_audio=True):
    """Play mrl with vlc_decode into outdir/name.{pcm,yuv,log}."""
    os.makedirs(outdir, exist_ok=True)
    base = os.path.join(outdir, name)
    audio = base + ".pcm" if keep_audio else os.devnull
    argv = [decoder_path(), "--audio-out", audio, "--log", base + ".log",
            "--timeout", str(timeout)]
    if video:
        argv += ["--video-out", base + ".yuv"]
    if start is not None:
        argv += ["--start-time", "%g" % start]
    if preparse == "only":
        argv.append("--preparse-only")
    elif preparse:
        argv.append("--preparse")
    if fail_module:
        argv += ["--fail-module", fail_module]
    for arg in vlc_args:
        argv += ["--vlc-arg", arg]
    argv.append(mrl)
    home = os.path.join(outdir, "home")
    os.makedirs(home, exist_ok=True)
    result = subprocess.run(argv, capture_output=True, text=True,
                            env=decoder_env(plugin, home),
                            timeout=timeout + 30)
    with open(base + ".stderr", "w") as f:
        f.write(result.stderr)
    summary = {}
    for line in result.stdout.splitlines():
        if line.startswith("vlc_decode: "):
            for item in re.findall(r"(\w+)=(\S+)", line):
                summary[item[0]] = item[1]
    return Decoded(argv, result.returncode, result.stdout, result.stderr, audio,
                   base + ".yuv" if video else "", base + ".log", summary)


# --- servers, works and sales ------------------------------------------------------

@dataclass
class Work:
    fmt: str
    work_id: str
    plain: str          # the plain media file
    smc: str            # the packed container
    media_key: bytes    # from `pack --key-out` (to look for it in logs)
    media_type: str
    title: str


@dataclass
class Sale:
    work: Work
    txn: str
    voucher: str
    steer: str          # path of the .steer


class Shop:
    """Key server (on /ks) and media store (on /) in one httpd, as in
    test_keyserver_publish.py, with owner, retailer and admin registered.
    Works are packed and published with the real CLI; sales go through the
    retailer's reservation and payment; steering files point at both."""

    def __init__(self, env, directory, activation_limit=None):
        from mediastore_setup import MediaStore
        self.env = env
        self.directory = directory
        issuer = env.httpd.https_url + "/ks"
        self.ms = MediaStore(env, keyserver_url=issuer, jwks_url=issuer + "/v1/jwks",
                             extra="MediaStoreTokenIssuer %s\n"
                                   "MediaStoreNotifyRetryInterval 1" % issuer)
        self.ks = KeyServer(env, location="/ks", activation_limit=activation_limit)
        # A plugin's range requests and delivery-complete notices are normal.
        env.allow_log("SM02011", "SM02012")
        env.httpd.start()
        pki = env.pki
        self.admin = self.ks.client("admin")
        self.retailer = self.ks.client("retailer1")
        for role, path, id_key in (("owner", "/v1/owners", "owner_id"),
                                   ("retailer1", "/v1/retailers", "retailer_id")):
            r = self.admin.post(path, json={id_key: role, "name": role,
                                            "subject_dn": pki.client(role).subject_dn})
            assert r.status_code in (201, 409), r.text
        self.encryption_key = os.path.join(directory, "keyserver-encryption.jwk")
        with open(self.encryption_key, "w") as f:
            json.dump(self.ks.client().get_json("/v1/encryption-key"), f)

    @property
    def ca_file(self):
        return self.env.pki.ca_cert

    def media_url(self, work_id):
        return "%s/works/%s" % (self.env.httpd.https_url, work_id)

    def publish(self, plain, fmt, work_id=None):
        """pack (key to the key server, and a copy for the tests), publish,
        and a contract for retailer1."""
        work_id = work_id or "w-%s-%s" % (fmt, uuid.uuid4().hex[:8])
        media_type = FORMATS[fmt][1]
        smc = os.path.join(self.directory, work_id + ".smc")
        key_out = smc + ".key"
        secmedia("pack", plain, "-o", smc, "--work-id", work_id, "--type", media_type,
                 "--recipient", self.encryption_key, "--key-out", key_out)
        with open(key_out) as f:
            k = json.load(f)["k"]
        media_key = base64.urlsafe_b64decode(k + "=" * (-len(k) % 4))
        owner = self.env.pki.client("owner")
        title = "Test %s" % fmt
        secmedia("publish", smc, "--key-server", self.ks.issuer,
                 "--media-store", self.env.httpd.https_url, "--cert", owner.cert,
                 "--key", owner.key, "--ca", self.ca_file, "--title", title,
                 "--artist", "The Testers")
        now = int(time.time())
        self.ks.client("owner").post_json("/v1/contracts", {
            "retailer": "retailer1", "works": [work_id], "currency": "EUR",
            "valid_from": now - 60, "valid_until": now + 86400,
            "licenses": [{"type": "purchase", "price": 100}],
            "royalties": [{"holder": "The Testers", "share_bps": 10000}]}, expect=201)
        return Work(fmt, work_id, plain, smc, media_key, media_type, title)

    def sell(self, work, jkt, steer_path, media_urls=None):
        """Reservation + payment with retailer1's certificate; the voucher
        goes into a steering file written to steer_path."""
        ref = "order-" + uuid.uuid4().hex
        reservation = self.retailer.post_json("/v1/reservations", {
            "reservation_ref": ref, "work_id": work.work_id,
            "license": {"type": "purchase"}, "jkt": jkt}, expect=201)
        self.retailer.post_json("/v1/payments", {
            "txn": reservation["txn"], "payment_ref": ref,
            "amount": reservation["price"], "currency": reservation["currency"]},
            expect=201)
        write_steer(steer_path, work, self.ks.license_url,
                    media_urls or [self.media_url(work.work_id)], reservation["voucher"],
                    reservation["txn"])
        return Sale(work, reservation["txn"], reservation["voucher"], steer_path)

    def revoke(self, txn):
        self.retailer.post_json("/v1/revocations", {"kind": "transaction", "subject": txn,
                                                    "reason": "refunded"}, expect=201)

    def license_count(self, txn):
        return int(self.ks.query("SELECT COUNT(*) FROM licenses WHERE txn = '%s'"
                                 % re.sub(r"[^A-Za-z0-9_-]", "", txn))[0][0])

    def delivery_jtis(self, txn):
        return [r[0] for r in self.ks.query(
            "SELECT delivery_jti FROM licenses WHERE txn = '%s'"
            % re.sub(r"[^A-Za-z0-9_-]", "", txn))]


def write_steer(path, work, license_url, media_urls, voucher, txn):
    """The canonical form of docs/FORMATS.md §2.3."""
    doc = {"version": 1, "work_id": work.work_id, "title": work.title,
           "artist": "The Testers", "media_type": work.media_type,
           "license_url": license_url, "media_urls": list(media_urls),
           "transaction_id": txn, "voucher": voucher}
    text = STEER_MAGIC + json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)
    return path


def keygen(path):
    """`secmedia keygen`: a device key; returns its jkt."""
    return secmedia("keygen", "--key", path).stdout.strip()


def plugin_args(device_key, ca_file, offline_dir, *extra):
    """The plugin's options (docs/PLAYER.md §1.1). offline_dir always: the
    plugin looks in its offline store first, and the default one is in the
    user's home, which tests must neither read nor fill."""
    args = ["--secmedia-offline-dir=%s" % offline_dir]
    if device_key is not None:
        args.append("--secmedia-device-key=%s" % device_key)
    if ca_file is not None:
        args.append("--secmedia-ca-file=%s" % ca_file)
    return args + list(extra)


# --- comparisons -----------------------------------------------------------------------

def common_suffix_len(a, b):
    """Length of the longest common suffix of two byte strings."""
    n = min(len(a), len(b))
    lo, hi = 0, n
    # If the last k bytes match, so do the last j < k: binary search on k.
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[len(a) - mid:] == b[len(b) - mid:]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def secrets_in(text, work, voucher, delivery_jtis=()):
    """Which secrets (or secret-bearing tokens) appear in text: the media
    key as hex, base64 or base64url, and any compact JWS/JWE other than the
    voucher (the delivery token, the key JWE, a device proof), or a
    delivery token's jti."""
    found = []
    key = work.media_key
    forms = {"media key hex": key.hex(), "media key HEX": key.hex().upper(),
             "media key base64": base64.b64encode(key).decode().rstrip("="),
             "media key base64url": base64.urlsafe_b64encode(key).decode().rstrip("=")}
    for what, form in forms.items():
        if form in text:
            found.append(what)
    # Any JOSE compact token: base64url of '{"' starts with eyJ.
    for token in re.findall(r"eyJ[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]*){2,4}", text):
        if token != voucher:
            found.append("token %s..." % token[:16])
    for jti in delivery_jtis:
        if jti and jti in text:
            found.append("delivery token jti")
    return found


# How far a start-time play of the same file may differ from run to run in
# VLC 3 itself, per format: (length difference allowed, in seconds; leading
# seconds that may differ). Measured on the plain files of this test, many
# runs each (see README.md): VLC's sout path converts the timestamps of the
# first packets after the start-time seek against an input clock that the
# demuxer's first PCR may or may not have set yet, so the first packet or
# two are kept or dropped depending on thread timing; a decoder that starts
# one packet later has a different state for a moment (Opus and Vorbis
# about 0.5 s, MDCT codecs one frame). VLC 3's Ogg/Vorbis seek moreover
# lands anywhere within about 1 s from run to run (bisection over pages).
# Everything after that lead-in must be identical, and both runs must end
# at the same sample (common tail).
SEEK_TOLERANCE = {
    "ogg": (1.2, 0.75),
    "opus": (0.1, 0.75),
    "mp3": (0.1, 0.25),
    "flac": (0.25, 0.25),
    "m4a": (0.1, 0.25),
    "mkv": (0.1, 0.25),
}


def seek_mismatch(fmt, got, want):
    """None when got and want (PCM of two start-time plays) agree within
    SEEK_TOLERANCE[fmt]; otherwise what differs."""
    if got == want:
        return None
    rate = pcm_rate(fmt)
    max_diff, lead_in = SEEK_TOLERANCE[fmt]
    if not got or not want:
        return "one play gave no audio (%d vs %d bytes)" % (len(got), len(want))
    shorter = min(len(got), len(want))
    tail = common_suffix_len(got, want)
    problems = []
    if abs(len(got) - len(want)) > max_diff * rate:
        problems.append("lengths differ by %.3f s (%d vs %d bytes; allowed %.2f s)"
                        % (abs(len(got) - len(want)) / rate, len(got), len(want), max_diff))
    if tail < shorter - lead_in * rate:
        problems.append("only the last %.3f s of %.3f s are identical (allowed lead-in "
                        "%.2f s)" % (tail / rate, shorter / rate, lead_in))
    return "; ".join(problems) or None
