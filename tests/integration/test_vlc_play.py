"""VLC end to end (issue 4): the secmedia plugin in real libvlc
(tests/vlc/vlc_decode) against the real key server and media store over
HTTPS. For ogg/vorbis, opus, mp3, flac, m4a (index at the end) and an mkv
with video, decoding the `.steer` must give exactly the PCM (and video) of
decoding the plain file the same way, also when starting at several points;
damaged chunks, revoked sales and wrong device keys must end in an error
without garbage; offline play works with the servers stopped; no key or token
reaches VLC's log; the preparser costs no extra licence; plain files are
left alone by the plugin. How to run: README.md, "VLC end-to-end tests"."""

import os
import re
import struct

import pytest

import harness
import vlc_setup as vs
from vlc_setup import FORMATS, decode, plugin_args

ALL_FORMATS = list(FORMATS)
# Start points (seconds) for the seek comparisons; the media is
# MEDIA_SECONDS long. VLC 3 itself does not give the same PCM twice for a
# start-time play of the same plain file: see vlc_setup.SEEK_TOLERANCE for
# what it varies by and why; the comparison allows exactly that.
SEEK_POINTS = (1.3, 2.2, 3.3)


# --- fixtures ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def media_dir(sm_workspace):
    directory = sm_workspace.new_dir("vlc-media")
    for fmt in ALL_FORMATS:
        vs.make_media(directory, fmt)
    return directory


@pytest.fixture(scope="module")
def reference(media_dir, sm_workspace):
    """Decodes of the plain files without the plugin, computed on demand:
    reference(fmt, start=None) -> harness Decoded."""
    out = sm_workspace.new_dir("vlc-reference")
    cache = {}

    def get(fmt, start=None):
        if (fmt, start) not in cache:
            plain = os.path.join(media_dir, FORMATS[fmt][0])
            result = decode(plain, out, "%s-%s" % (fmt, start), plugin=False, start=start,
                            video=fmt == "mkv", fail_module=None)
            assert result.returncode == 0, result.describe()
            assert len(result.audio) > pcm_bytes(fmt, 0.5), result.describe()
            if fmt == "mkv":
                assert result.summary.get("video_frames", "0") != "0", result.describe()
            cache[(fmt, start)] = result
        return cache[(fmt, start)]

    return get


@pytest.fixture(scope="module")
def plugin():
    reason = vs.plugin_missing_reason()
    if reason is not None:
        kind, text = reason
        if kind == "placeholder":
            pytest.skip(text + ": vlc_access_secmedia/ is still the placeholder")
        pytest.fail(text)
    return vs.plugin_dir()


@pytest.fixture(scope="module")
def shop(request, sm_workspace, pki, mariadb_server, media_dir):
    """One httpd with the key server and the media store for the whole
    module (publishing six works per test would cost more than the tests),
    every format published. Stopped afterwards; its error log must be clean."""
    httpd = harness.Httpd(sm_workspace.new_dir("vlc-shop"), pki)
    env = harness.Env(pki, httpd, lambda: mariadb_server)
    try:
        shop = vs.Shop(env, sm_workspace.new_dir("vlc-works"))
        shop.works = {fmt: shop.publish(os.path.join(media_dir, FORMATS[fmt][0]), fmt)
                      for fmt in ALL_FORMATS}
        yield shop
    finally:
        env.close()
        print("httpd config and logs of the VLC tests: %s" % httpd.directory)
        httpd.stop()
    problems = httpd.error_log_violations()
    if problems:
        pytest.fail("error log %s:\n  %s" % (httpd.error_log, "\n  ".join(problems)),
                    pytrace=False)


@pytest.fixture(scope="module")
def device(sm_workspace):
    """A device key made with `secmedia keygen`: (path, jkt)."""
    directory = sm_workspace.new_dir("vlc-device")
    path = os.path.join(directory, "device.jwk")
    return path, vs.keygen(path)


@pytest.fixture
def outdir(request, sm_workspace):
    return sm_workspace.new_dir(request.node.name)


def pcm_bytes(fmt, seconds):
    return int(vs.pcm_rate(fmt) * seconds)


def buy(shop, device, fmt, outdir, name="song"):
    return shop.sell(shop.works[fmt], device[1], os.path.join(outdir, name + ".steer"))


def play(sale_or_path, outdir, name, device_key, shop, offline_dir=None, trust_ca=True,
         extra_args=(), **kwargs):
    """Play a steering file with the plugin: device_key (a path, or None for
    the default), the run CA trusted unless trust_ca is False, an offline
    store of the test's own (outdir/offline unless offline_dir)."""
    steer = getattr(sale_or_path, "steer", sale_or_path)
    args = plugin_args(device_key, shop.ca_file if trust_ca else None,
                       offline_dir or os.path.join(outdir, "offline"), *extra_args)
    return decode(steer, outdir, name, vlc_args=args, **kwargs)


def dialog_errors(result):
    """The texts of the error dialogs (title "secmedia") VLC showed."""
    return [l[len("dialog error: secmedia: "):] for l in result.log.splitlines()
            if l.startswith("dialog error: secmedia: ")]


def first_difference(a, b):
    n = min(len(a), len(b))
    for i in range(0, n, 4096):
        if a[i:i + 4096] != b[i:i + 4096]:
            for j in range(i, min(i + 4096, n)):
                if a[j] != b[j]:
                    return j
    return n if len(a) != len(b) else None


def assert_same_pcm(fmt, got, want, what):
    if got == want:
        return
    raise AssertionError("%s: %s PCM differs from the plain file's: %d vs %d bytes, first "
                         "difference at byte %s (%.3f s)" % (
                             what, fmt, len(got), len(want), first_difference(got, want),
                             (first_difference(got, want) or 0) / vs.pcm_rate(fmt)))


def assert_same_from_seek(fmt, got, want, start):
    """Same PCM from the seek point, within VLC's own run-to-run variation."""
    problem = vs.seek_mismatch(fmt, got, want)
    assert problem is None, "start at %g s: %s differs from the plain file: %s" % (
        start, fmt, problem)


# --- tests --------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ALL_FORMATS)
def test_reference_decodes_are_complete_and_stable(fmt, reference, media_dir, outdir):
    """The baseline itself: the plain file decodes to about MEDIA_SECONDS of
    audio, twice to the same bytes (the comparisons below rely on it)."""
    if fmt == "m4a":
        # Index at the end (no faststart): the demuxer must jump far ahead.
        with open(os.path.join(media_dir, FORMATS[fmt][0]), "rb") as f:
            data = f.read()
        assert 0 < data.find(b"mdat") < data.find(b"moov"), "m4a has its index first"
    ref = reference(fmt)
    assert abs(len(ref.audio) - pcm_bytes(fmt, vs.MEDIA_SECONDS)) < pcm_bytes(fmt, 0.2), \
        ref.describe()
    again = decode(os.path.join(media_dir, FORMATS[fmt][0]), outdir, "again", plugin=False,
                   video=fmt == "mkv", fail_module=None)
    assert again.returncode == 0, again.describe()
    assert_same_pcm(fmt, again.audio, ref.audio, "second plain decode")
    assert again.video == ref.video


def test_decoder_reports_unplayable_input(outdir):
    """vlc_decode itself: a file VLC cannot open ends in exit 1 with VLC's
    error dialog in the log and no audio; bad usage is exit 2. (Bytes that
    no demuxer understands are not an error to VLC: some demuxer takes them
    and finds nothing, so every test also checks how much was decoded.)"""
    junk = os.path.join(outdir, "missing.ogg")
    got = decode(junk, outdir, "junk", plugin=False, fail_module=None)
    assert got.returncode == 1, got.describe()
    assert got.summary.get("result") == "failed" and len(got.audio) == 0
    assert any(l.startswith("dialog error: ") for l in got.log.splitlines()), got.log_path
    import subprocess
    usage = subprocess.run([vs.decoder_path(), "--start-time", "soon", junk],
                           capture_output=True, text=True, timeout=30)
    assert usage.returncode == 2 and "bad value for --start-time" in usage.stderr


@pytest.mark.parametrize("fmt", ALL_FORMATS)
def test_plain_file_left_alone_by_plugin(fmt, plugin, reference, media_dir, outdir, device,
                                         shop):
    """With the plugin loaded (and configured), a file that is not a
    steering file plays exactly as without it, and no licence is asked."""
    before = int(shop.ks.query("SELECT COUNT(*) FROM licenses")[0][0])
    got = decode(os.path.join(media_dir, FORMATS[fmt][0]), outdir, "plain", video=fmt == "mkv",
                 vlc_args=plugin_args(device[0], shop.ca_file,
                                      os.path.join(outdir, "offline")))
    assert got.returncode == 0, got.describe()
    # The plugin was there and declined (its probe), rather than absent.
    assert 'looking for stream_filter module matching "any"' in got.log
    assert 'using stream_filter module "secmedia"' not in got.log, got.log_path
    assert_same_pcm(fmt, got.audio, reference(fmt).audio, "plain file with the plugin loaded")
    assert got.video == reference(fmt).video
    assert int(shop.ks.query("SELECT COUNT(*) FROM licenses")[0][0]) == before


@pytest.mark.parametrize("fmt", ALL_FORMATS)
def test_steer_plays_like_plain_file(fmt, plugin, reference, shop, device, outdir):
    sale = buy(shop, device, fmt, outdir)
    got = play(sale, outdir, "steer", device[0], shop, video=fmt == "mkv")
    assert got.returncode == 0, got.describe()
    assert 'using stream_filter module "secmedia"' in got.log, got.log_path
    assert_same_pcm(fmt, got.audio, reference(fmt).audio, "whole file")
    if fmt == "mkv":
        assert got.summary["video_frames"] == reference(fmt).summary["video_frames"]
        assert got.video == reference(fmt).video, "mkv: decoded video differs"
    assert shop.license_count(sale.txn) == 1
    leaks = vs.secrets_in(got.log + got.stderr + got.stdout, sale.work, sale.voucher,
                          shop.delivery_jtis(sale.txn))
    assert not leaks, "found in VLC's log: %s (%s)" % (leaks, got.log_path)


@pytest.mark.parametrize("fmt", ALL_FORMATS)
def test_steer_seeks_like_plain_file(fmt, plugin, reference, shop, device, outdir):
    """Starting at several points (VLC's --start-time) gives the PCM the
    plain file gives from the same point."""
    sale = buy(shop, device, fmt, outdir)
    full = len(reference(fmt).audio)
    # The references did seek (some formats ignore an early start point).
    assert len(reference(fmt, SEEK_POINTS[-1]).audio) < full - pcm_bytes(fmt, 1)
    for start in SEEK_POINTS:
        want = reference(fmt, start)
        got = play(sale, outdir, "start-%g" % start, device[0], shop, start=start,
                   video=fmt == "mkv")
        assert got.returncode == 0, got.describe()
        assert_same_from_seek(fmt, got.audio, want.audio, start)
        if fmt == "mkv":
            assert got.video == want.video, "mkv: video from %g s differs" % start


def test_preparse_costs_no_licence_and_log_holds_no_secret(plugin, shop, device, outdir,
                                                           reference):
    """As VLC's playlist does: preparse the item, then play it, with every
    log message captured (debug level). One licence in the key server's
    records; neither the media key (hex, base64, base64url) nor the delivery
    token, the key JWE or a device proof in the log. (VLC 3 silences the
    preparser's own input in the log, OBJECT_FLAGS_QUIET, so the count is
    the evidence; that the preparser really opens the file is checked on a
    tagged plain file in test_preparser_reads_plain_file_tags.)"""
    sale = buy(shop, device, "ogg", outdir)
    got = play(sale, outdir, "preparsed", device[0], shop, preparse=True)
    assert got.returncode == 0, got.describe()
    # "failed" is what VLC reports when the plugin declines while preparsing
    # (nothing demuxes a steering file's text); it must have run, though.
    assert re.search(r"^dialog note: vlc_decode: preparsing done, status: (done|failed)$",
                     got.log, re.M), got.log_path
    assert sum(1 for l in got.log.splitlines() if l.startswith("debug ")) > 100, \
        "the log was not captured at debug level"
    assert_same_pcm("ogg", got.audio, reference("ogg").audio, "after preparsing")
    assert shop.license_count(sale.txn) == 1, "the preparser asked for a licence too"
    jtis = shop.delivery_jtis(sale.txn)
    assert len(jtis) == 1 and jtis[0]
    leaks = vs.secrets_in(got.log + got.stderr + got.stdout, sale.work, sale.voucher, jtis)
    assert not leaks, "found in VLC's log: %s (%s)" % (leaks, got.log_path)


def test_preparse_alone_costs_no_licence(plugin, shop, device, outdir):
    """Only preparsing (the playlist showing an item that is never played):
    no licence, no activation used."""
    sale = buy(shop, device, "mp3", outdir)
    got = play(sale, outdir, "preparse-only", device[0], shop, preparse="only")
    assert got.returncode == 0, got.describe()
    assert shop.license_count(sale.txn) == 0, "preparsing alone asked for a licence"


def test_preparser_reads_plain_file_tags(plugin, media_dir, outdir, shop, device):
    """The harness's --preparse makes VLC open and demux the file (the
    licence count above would prove nothing otherwise): a title tag in a
    plain file shows up, with the plugin loaded."""
    import subprocess
    tagged = os.path.join(outdir, "tagged.ogg")
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i",
                    os.path.join(media_dir, FORMATS["ogg"][0]), "-c", "copy",
                    "-metadata", "title=Tagged Title", tagged], check=True, timeout=60)
    got = decode(tagged, outdir, "tagged", preparse=True,
                 vlc_args=plugin_args(device[0], shop.ca_file,
                                      os.path.join(outdir, "offline")))
    assert got.returncode == 0, got.describe()
    assert "dialog note: preparsed title: Tagged Title" in got.log, got.log_path


def test_preparser_shows_steer_title(plugin, shop, device, outdir):
    """PLAYER.md §1.2: while preparsing, the plugin sets the item's title and
    artist from the steering file (what the playlist shows)."""
    sale = buy(shop, device, "flac", outdir)
    got = play(sale, outdir, "preparsed", device[0], shop, preparse=True)
    assert got.returncode == 0, got.describe()
    assert "dialog note: preparsed title: %s" % sale.work.title in got.log, \
        "title after preparsing: %s" % [l for l in got.log.splitlines()
                                         if l.startswith("dialog note: preparsed")]
    assert "dialog note: preparsed artist: The Testers" in got.log


def _chunk_offset(smc_path, chunk):
    with open(smc_path, "rb") as f:
        head = f.read(14)
    (meta_len,) = struct.unpack(">I", head[10:14])
    return 14 + meta_len + 56 + chunk * 16400


def test_damaged_chunk_gives_error_and_no_garbage(plugin, shop, device, outdir, media_dir,
                                                  reference):
    """One byte flipped in a chunk in the middle of the stored container:
    the play fails with an error VLC reports, and what was decoded is a
    prefix of the good PCM (nothing from the damaged chunk or after it)."""
    work = shop.publish(os.path.join(media_dir, FORMATS["flac"][0]), "flac",
                        work_id="w-damaged-flac")
    stored = shop.ms.file_path(work.work_id)
    size = os.path.getsize(stored)
    chunks = (size - _chunk_offset(stored, 0)) // 16400
    assert chunks >= 20, "the test file spans too few chunks (%d)" % chunks
    damaged = chunks // 2
    offset = _chunk_offset(stored, damaged) + 1000
    with open(stored, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0x01]))
    sale = shop.sell(work, device[1], os.path.join(outdir, "damaged.steer"))
    # A bounded wait: if VLC does not end after the error, that is the bug.
    got = play(sale, outdir, "damaged", device[0], shop, timeout=20)
    want = reference("flac").audio
    assert got.returncode != 3, (
        "VLC did not end within 20 s after the damaged chunk (in VLC 3 a "
        "stream read of -1 means 'try again', 0 means end of stream):\n" + got.describe())
    assert got.returncode == 1, got.describe()
    assert any(m.startswith("The media is damaged or was tampered with:")
               for m in dialog_errors(got)), got.describe()
    audio = got.audio
    assert len(audio) < len(want), "the whole file decoded despite the damaged chunk"
    assert want[:len(audio)] == audio, (
        "decoded PCM is not a prefix of the good PCM: first difference at byte %s"
        % first_difference(audio, want))


def test_revoked_sale_is_refused(plugin, shop, device, outdir):
    sale = buy(shop, device, "mp3", outdir)
    shop.revoke(sale.txn)
    got = play(sale, outdir, "revoked", device[0], shop)
    assert got.returncode == 1, got.describe()
    assert len(got.audio) == 0
    assert shop.license_count(sale.txn) == 0
    assert any(m.startswith("License refused: this purchase was revoked or refunded.")
               for m in dialog_errors(got)), got.describe()
    # The same text in the log, for those who read it rather than the dialog.
    assert any("License refused: this purchase was revoked or refunded." in l
               for l in got.errors() if l.startswith("error secmedia")), got.describe()


def test_wrong_device_key_gives_clear_error(plugin, shop, device, outdir):
    sale = buy(shop, device, "mp3", outdir)
    other = os.path.join(outdir, "other-device.jwk")
    vs.keygen(other)
    got = play(sale, outdir, "wrong-device", other, shop)
    assert got.returncode == 1, got.describe()
    assert len(got.audio) == 0
    assert shop.license_count(sale.txn) == 0
    assert any(m.startswith("License refused: this steering file was bought for another "
                            "device.") for m in dialog_errors(got)), got.describe()


def test_missing_device_key_gives_clear_error(plugin, shop, device, outdir):
    sale = buy(shop, device, "mp3", outdir)
    # No --secmedia-device-key: the default path, in the test's empty home.
    got = play(sale, outdir, "no-device-key", None, shop)
    assert got.returncode == 1, got.describe()
    assert len(got.audio) == 0
    assert shop.license_count(sale.txn) == 0
    home = os.path.join(outdir, "home")
    assert any(m.startswith("No device key at %s" % home) and "secmedia keygen" in m
               for m in dialog_errors(got)), got.describe()


def test_untrusted_server_certificate_gives_clear_error(plugin, shop, device, outdir):
    """Without --secmedia-ca-file the run's private CA is not trusted: the
    plugin must not talk to the key server, and must say why."""
    sale = buy(shop, device, "mp3", outdir)
    got = play(sale, outdir, "untrusted", device[0], shop, trust_ca=False)
    assert got.returncode == 1, got.describe()
    assert len(got.audio) == 0
    assert shop.license_count(sale.txn) == 0
    assert any(m.startswith("Certificate failure:") and "--secmedia-ca-file" in m
               for m in dialog_errors(got)), got.describe()


def _check_offline_entry(offline_dir, sale, shop):
    """PLAYER.md §2: one entry named by the voucher, the container exactly as
    stored, the key still wrapped; private modes."""
    import base64
    import hashlib
    import json
    entry = base64.urlsafe_b64encode(hashlib.sha256(sale.voucher.encode()).digest()) \
        .decode().rstrip("=")
    assert sorted(os.listdir(offline_dir)) == [entry], os.listdir(offline_dir)
    path = os.path.join(offline_dir, entry)
    with open(os.path.join(path, "media.smc"), "rb") as a, \
            open(shop.ms.file_path(sale.work.work_id), "rb") as b:
        assert a.read() == b.read()
    with open(os.path.join(path, "license.json")) as f:
        lic = json.load(f)
    assert lic["work_id"] == sale.work.work_id and lic["txn"] == sale.txn
    assert lic["key_jwe"].count(".") == 4
    for name in ("license.json", "media.smc"):
        assert os.stat(os.path.join(path, name)).st_mode & 0o077 == 0
    with open(os.path.join(path, "license.json")) as f:
        text = f.read()
    assert not vs.secrets_in(text.replace(lic["key_jwe"], ""), sale.work, sale.voucher,
                             shop.delivery_jtis(sale.txn))


def test_later_online_plays_renew_the_token_instead_of_an_activation(plugin, shop, device,
                                                                      outdir, reference):
    """PLAYER.md §1.5: the first online play spends one activation and
    keeps the licence (the key still wrapped to the device key, no media);
    later online plays ask the real key server only for a new delivery
    token. Forgetting the kept licence costs an activation again."""
    import base64
    import hashlib
    import json
    fmt = "opus"
    sale = buy(shop, device, fmt, outdir)
    store = os.path.join(outdir, "store")
    spent_proofs = lambda: int(shop.ks.query(   # noqa: E731  renewals spend theirs here
        "SELECT COUNT(*) FROM dpop_jtis WHERE jkt = '%s'" % device[1])[0][0])
    before = spent_proofs()
    for name in ("first", "second", "third"):
        got = play(sale, outdir, name, device[0], shop, offline_dir=store)
        assert got.returncode == 0, got.describe()
        assert_same_pcm(fmt, got.audio, reference(fmt).audio, name + " play")
        assert not vs.secrets_in(got.log + got.stderr + got.stdout, sale.work, sale.voucher,
                                 shop.delivery_jtis(sale.txn)), got.log_path
    assert shop.license_count(sale.txn) == 1
    assert shop.ks.query("SELECT activations FROM transactions WHERE txn = '%s'"
                         % sale.txn) == [("1",)]
    assert spent_proofs() == before + 2
    entry = base64.urlsafe_b64encode(hashlib.sha256(sale.voucher.encode()).digest()) \
        .decode().rstrip("=")
    assert sorted(os.listdir(store)) == ["streaming"]
    kept = os.path.join(store, "streaming", entry + ".json")
    assert sorted(os.listdir(os.path.dirname(kept))) == [entry + ".json"]
    assert os.stat(kept).st_mode & 0o077 == 0
    with open(kept) as f:
        text = f.read()
    lic = json.loads(text)
    assert lic["txn"] == sale.txn and lic["key_jwe"].count(".") == 4
    assert not vs.secrets_in(text.replace(lic["key_jwe"], ""), sale.work, sale.voucher,
                             shop.delivery_jtis(sale.txn))
    os.unlink(kept)
    got = play(sale, outdir, "forgotten", device[0], shop, offline_dir=store)
    assert got.returncode == 0, got.describe()
    assert shop.license_count(sale.txn) == 2 and os.path.exists(kept)


def _servers_down(shop):
    """Stop the shop's httpd for the block; start it again afterwards."""
    import contextlib

    @contextlib.contextmanager
    def down():
        shop.env.httpd.stop()
        try:
            yield
        finally:
            shop.env.httpd.start()
    # A delivery-complete the media store could not hand over before the
    # stop is retried after it.
    shop.env.allow_log("SM02013")
    return down()


@pytest.mark.parametrize("how", ["fetch", "offline-option"])
def test_offline_play_with_servers_stopped(how, plugin, shop, device, outdir, reference):
    """`secmedia fetch`, or a first play with --secmedia-offline, stores the
    licence and container; then the servers stop and the steering file still
    plays, to the same PCM, without another licence."""
    fmt = "m4a"
    sale = buy(shop, device, fmt, outdir)
    offline = os.path.join(outdir, "store")
    if how == "fetch":
        vs.secmedia("fetch", "--device-key", device[0], "--ca", shop.ca_file,
                    "--offline-dir", offline, sale.steer)
    else:
        first = play(sale, outdir, "first", device[0], shop, offline_dir=offline,
                     extra_args=["--secmedia-offline"])
        assert first.returncode == 0, first.describe()
        assert_same_pcm(fmt, first.audio, reference(fmt).audio, "first (online) play")
    assert shop.license_count(sale.txn) == 1
    _check_offline_entry(offline, sale, shop)
    with _servers_down(shop):
        got = play(sale, outdir, "offline", device[0], shop, offline_dir=offline)
        assert got.returncode == 0, got.describe()
        assert_same_pcm(fmt, got.audio, reference(fmt).audio, "offline play")
        # And started part-way, too.
        start = SEEK_POINTS[1]
        got = play(sale, outdir, "offline-seek", device[0], shop, offline_dir=offline,
                   start=start)
        assert got.returncode == 0, got.describe()
        assert_same_from_seek(fmt, got.audio, reference(fmt, start).audio, start)
        # Without the store, the same steering file cannot play now.
        cut_off = play(sale, outdir, "no-store", device[0], shop,
                       extra_args=["--secmedia-connect-timeout=2", "--secmedia-timeout=5"])
        assert cut_off.returncode == 1 and len(cut_off.audio) == 0, cut_off.describe()
        assert any(m.startswith("Network failure:") for m in dialog_errors(cut_off)), \
            cut_off.describe()
    assert shop.license_count(sale.txn) == 1


def test_sale_is_licensable_without_vlc(shop, device, outdir):
    """The set-up the plugin tests stand on, checked without VLC: the
    steering file has the §2 form, the key server licenses the voucher to
    the `secmedia keygen` device, the media store serves the container
    named in it (with ranges), and the licensed key opens it. If this
    fails, the plugin tests' failures say nothing about the plugin."""
    import json
    import keyserver_setup
    from jwcrypto import jwk

    sale = buy(shop, device, "opus", outdir)
    with open(sale.steer, "rb") as f:
        raw = f.read()
    assert raw.startswith(vs.STEER_MAGIC.encode()) and b"\r" not in raw and len(raw) < 65536
    doc = json.loads(raw[len(vs.STEER_MAGIC):])
    assert doc["license_url"] == shop.ks.license_url and doc["voucher"] == sale.voucher
    player = keyserver_setup.Device.__new__(keyserver_setup.Device)
    with open(device[0]) as f:
        player.key = jwk.JWK.from_json(f.read())
    player.jkt = player.key.thumbprint()
    assert player.jkt == device[1]
    answer = keyserver_setup.request_license(shop.ks, player, doc["voucher"])
    assert answer.status_code == 200, answer.text
    lic = answer.json()
    client = shop.env.client()
    url = doc["media_urls"][0]
    assert url.startswith(shop.env.httpd.https_url)
    path = url[len(shop.env.httpd.https_url):]
    auth = {"Authorization": "Bearer " + lic["delivery_token"]}
    part = client.get(path, headers=dict(auth, Range="bytes=100-16483"))
    assert part.status_code == 206 and len(part.content) == 16384
    whole = client.get(path, headers=auth)
    assert whole.status_code == 200 and whole.content[100:16484] == part.content
    smc = os.path.join(outdir, "fetched.smc")
    with open(smc, "wb") as f:
        f.write(whole.content)
    jwe_file = os.path.join(outdir, "key.jwe")
    with open(jwe_file, "w") as f:
        f.write(lic["key_jwe"])
    out = os.path.join(outdir, "plain.out")
    vs.secmedia("unpack", smc, "--jwe", jwe_file, "--device-key", device[0], "-o", out)
    with open(out, "rb") as a, open(sale.work.plain, "rb") as b:
        assert a.read() == b.read()
    assert shop.license_count(sale.txn) == 1
