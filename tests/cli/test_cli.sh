#!/usr/bin/env bash
# End-to-end tests of the `secmedia` CLI: every command, its exit codes and
# its error messages, on real files.
. "${SM_TESTS_SRCDIR:-$(dirname "$0")/..}/cli/lib.sh"
SM=${SM_TOP_BUILDDIR:?}/tools/secmedia
T=$SM_TMP
cd "$T"

mode_of() { stat -c %a "$1"; }

# --- help, usage ------------------------------------------------------------
expect_exit 0 "top-level --help" -- "$SM" --help
expect_true "help lists exit codes" grep -q "Exit codes" "$T/out"
for c in keygen pack inspect unpack verify; do
  expect_exit 0 "$c --help" -- "$SM" "$c" --help
  expect_true "$c --help prints usage" grep -q "Usage: secmedia $c" "$T/out"
done
expect_exit 2 "no command" -- "$SM"
expect_exit 2 "unknown command" -- "$SM" frobnicate
expect_stderr "unknown command named" "unknown command 'frobnicate'"
expect_exit 2 "unknown option" -- "$SM" pack --bogus
expect_exit 2 "pack without input" -- "$SM" pack -o x.smc --work-id w --key-out k
expect_exit 2 "pack without key destination" -- "$SM" pack in.ogg -o x.smc --work-id w
expect_stderr "key destination message" "--key-out FILE"

# --- keygen ------------------------------------------------------------------
expect_exit 0 "keygen" -- "$SM" keygen --key "$T/dev.jwk" --public-out "$T/dev.pub.jwk"
jkt=$(cat "$T/out")
expect_true "keygen prints a 43-char thumbprint" test "${#jkt}" -eq 43
expect_true "private key is 0600" test "$(mode_of "$T/dev.jwk")" = 600
expect_true "public key has no private member" bash -c "! grep -q '\"d\"' '$T/dev.pub.jwk'"
expect_exit 6 "keygen refuses to overwrite" -- "$SM" keygen --key "$T/dev.jwk"
expect_stderr "overwrite message" "already exists"
expect_exit 0 "keygen --force" -- "$SM" keygen --key "$T/dev.jwk" --public-out "$T/dev.pub.jwk" --force
expect_true "new key after --force" test "$(cat "$T/out")" != "$jkt"
jkt_dev=$(cat "$T/out")
mkdir -p "$T/home"
expect_exit 0 "keygen default location" -- env -u SECMEDIA_DEVICE_KEY -u XDG_CONFIG_HOME HOME="$T/home" "$SM" keygen
expect_true "default key file" test -f "$T/home/.config/secmedia/device.jwk"
expect_true "default key dir 0700" test "$(mode_of "$T/home/.config/secmedia")" = 700

# --- pack / inspect / verify / unpack round trips ---------------------------
for size in 0 1 16383 16384 16385 200000; do
  head -c "$size" /dev/urandom > "in$size.bin"
  expect_exit 0 "pack $size bytes" -- "$SM" pack "in$size.bin" -o "c$size.smc" --work-id "w-$size" \
    --type application/octet-stream --key-out "k$size.jwk"
  expect_true "key file 0600 ($size)" test "$(mode_of "k$size.jwk")" = 600
  expect_exit 0 "inspect $size" -- "$SM" inspect "c$size.smc"
  expect_true "inspect shows work id ($size)" grep -q "work id: *w-$size" "$T/out"
  expect_exit 0 "inspect --json $size" -- "$SM" inspect --json "c$size.smc"
  expect_true "inspect json plaintext_length ($size)" \
    "${SM_PYTHON3:-python3}" -c "import json,sys; d=json.load(open('$T/out')); sys.exit(d['plaintext_length']!=$size or d['chunk_count']!=$size//16384+1)"
  expect_exit 0 "verify $size" -- "$SM" verify "c$size.smc" --key "k$size.jwk"
  expect_exit 0 "unpack $size" -- "$SM" unpack "c$size.smc" --key "k$size.jwk" -o "out$size.bin"
  expect_true "unpacked equals input ($size)" cmp -s "in$size.bin" "out$size.bin"
done
"$SM" unpack c200000.smc --key k200000.jwk -o - > stdout.bin 2>"$T/err"
expect_true "unpack to stdout" cmp -s in200000.bin stdout.bin
"$SM" pack in200000.bin -o - --work-id piped --type a/b --key-out piped.jwk > piped.smc 2>"$T/err"
expect_true "pack to stdout" "$SM" verify piped.smc --key piped.jwk
expect_exit 2 "pack -o - with --recipient needs --jwe-out" -- "$SM" pack in1.bin -o - --work-id p \
  --type a/b --recipient dev.pub.jwk
expect_exit 6 "unpack refuses to overwrite" -- "$SM" unpack c1.smc --key k1.jwk -o out1.bin
expect_exit 0 "unpack --force" -- "$SM" unpack c1.smc --key k1.jwk -o out1.bin --force
expect_exit 2 "unpack without -o" -- "$SM" unpack c1.smc --key k1.jwk
expect_exit 2 "unpack without key" -- "$SM" unpack c1.smc -o x
expect_exit 6 "pack refuses to overwrite container" -- "$SM" pack in1.bin -o c1.smc --work-id w \
  --type application/octet-stream --key-out k1b.jwk
expect_true "no key file left after refused pack" test ! -e k1b.jwk

# media type from the extension, or a clear error
cp in1.bin song.ogg
expect_exit 0 "pack guesses audio/ogg" -- "$SM" pack song.ogg -o song.smc --work-id song --key-out song.jwk
"$SM" inspect song.smc > insp.txt
expect_true "media type recorded" grep -q "media type: *audio/ogg" insp.txt
expect_true "original name recorded" grep -q "original name: *song.ogg" insp.txt
cp in1.bin mystery.xyz
expect_exit 2 "unknown extension" -- "$SM" pack mystery.xyz -o m.smc --work-id m --key-out m.jwk
expect_stderr "asks for --type" "--type"
expect_exit 2 "bad work id" -- "$SM" pack in1.bin -o b.smc --work-id ../etc --type a/b --key-out b.jwk
expect_stderr "work id message" "work id"
expect_exit 2 "bad media type" -- "$SM" pack in1.bin -o b.smc --work-id b --type "audio" --key-out b.jwk
expect_exit 2 "bad key version" -- "$SM" pack in1.bin -o b.smc --work-id b --type a/b --key-version 0 --key-out b.jwk
expect_exit 3 "missing input" -- "$SM" pack nope.bin -o b.smc --work-id b --type a/b --key-out b.jwk
expect_stderr "missing input named" "nope.bin"
expect_exit 3 "input is a directory" -- "$SM" pack "$T" -o b.smc --work-id b --type a/b --key-out b.jwk
expect_true "nothing left behind by failed packs" bash -c "! ls b.smc* b.jwk 2>/dev/null | grep -q ."

# --- JWE to a device key -----------------------------------------------------
expect_exit 0 "pack --recipient" -- "$SM" pack in200000.bin -o r.smc --work-id r --type a/b \
  --recipient dev.pub.jwk
expect_true "JWE written next to container" test -s r.smc.jwe
expect_true "JWE is compact (5 parts)" test "$(tr -cd . < r.smc.jwe | wc -c)" -eq 4
jwe_kid=$("${SM_PYTHON3:-python3}" -c "import base64,json,sys; h=open('r.smc.jwe').read().split('.')[0]; print(json.loads(base64.urlsafe_b64decode(h+'='*(-len(h)%4)))['kid'])")
expect_true "JWE kid names the recipient key (its jkt)" test "$jwe_kid" = "$jkt_dev"
expect_exit 0 "unpack --jwe" -- "$SM" unpack r.smc --jwe r.smc.jwe --device-key dev.jwk -o r.out
expect_true "JWE round trip" cmp -s in200000.bin r.out
"$SM" keygen --key other.jwk >/dev/null 2>&1
expect_exit 5 "unwrap with another device key" -- "$SM" verify r.smc --jwe r.smc.jwe --device-key other.jwk
expect_exit 7 "missing device key" -- "$SM" verify r.smc --jwe r.smc.jwe --device-key absent.jwk
expect_stderr "points to keygen" "secmedia keygen"

# --- wrong keys, bad key files ----------------------------------------------
expect_exit 5 "verify with the wrong media key" -- "$SM" verify c200000.smc --key k1.jwk
expect_stderr "wrong key message" "key|authentic|commitment"
cp k1.jwk loose.jwk; chmod 644 loose.jwk
expect_exit 7 "world-readable key file refused" -- "$SM" verify c1.smc --key loose.jwk
expect_stderr "chmod hint" "chmod 600"
printf '{"kty":"oct","k":"AAAA"}' > short.jwk; chmod 600 short.jwk
expect_exit 7 "short key refused" -- "$SM" verify c1.smc --key short.jwk
printf 'not json' > junk.jwk; chmod 600 junk.jwk
expect_exit 4 "junk key file" -- "$SM" verify c1.smc --key junk.jwk

# --- failures never lose or leak keys (from the security review) -------------
head -c 5000 /dev/urandom > keep.bin
"$SM" pack keep.bin -o keep.smc --work-id keep --type a/b --key-out keep.jwk 2>/dev/null
cp keep.jwk keep.jwk.orig
expect_exit 7 "pack --force with a bad recipient fails early" -- "$SM" pack keep.bin -o keep.smc \
  --work-id keep --type a/b --key-out keep.jwk --recipient /nonexistent.jwk --force
expect_true "the old key file is untouched" cmp -s keep.jwk keep.jwk.orig
expect_exit 0 "the old container still opens with it" -- "$SM" verify keep.smc --key keep.jwk
expect_true "no temp files left in the directory" bash -c "! ls .*tmp* *.part.* 2>/dev/null | grep -q ."
for bad in 'A==' 'A=AA' "$(head -c 41 /dev/zero | tr '\0' A)=="; do
  printf '{"kty":"oct","k":"%s"}' "$bad" > evil.jwk; chmod 600 evil.jwk
  expect_exit 7 "malformed base64 key '$bad' is refused, not a crash" -- "$SM" verify keep.smc --key evil.jwk
done
printf '{"kty":"oct","k":"%sB"}' "$(head -c 42 /dev/zero | tr '\0' A)" > evil.jwk; chmod 600 evil.jwk
expect_exit 7 "non-canonical trailing bits refused" -- "$SM" verify keep.smc --key evil.jwk
printf '{"kty":"oct","k":"SECRETSECRETSECRETSECRET' > cut.jwk; chmod 600 cut.jwk
expect_exit 4 "truncated key file" -- "$SM" verify keep.smc --key cut.jwk
expect_true "key text never appears in messages" bash -c "! grep -q SECRET '$T/err'"
printf '{"kty":"EC","crv":"P-256","d":"PRIVATEPRIVATEPRIVATE' > cutdev.jwk; chmod 600 cutdev.jwk
expect_exit 7 "truncated device key" -- "$SM" verify r.smc --jwe r.smc.jwe --device-key cutdev.jwk
expect_true "private key text never appears in messages" bash -c "! grep -q PRIVATE '$T/err'"
mkfifo fifo.jwk
expect_exit 7 "a FIFO as key file is refused at once" -- timeout 5 "$SM" verify keep.smc --key fifo.jwk
expect_stderr "FIFO message" "not a regular file"
(umask 077 && "$SM" unpack keep.smc --key keep.jwk -o private.out 2>/dev/null)
expect_true "unpack honours the umask" test "$(mode_of private.out)" = 600

# --- tampering, truncation, not-a-container ---------------------------------
flip() { # flip one bit of file $1 at offset $2 into $3
  cp "$1" "$3"
  local b; b=$(od -An -tu1 -j "$2" -N1 "$3" | tr -d ' ')
  printf "$(printf '\\%03o' $((b ^ 1)))" | dd of="$3" bs=1 seek="$2" conv=notrunc status=none
}
hdr_len=$("$SM" inspect --json c200000.smc | "${SM_PYTHON3:-python3}" -c 'import json,sys; print(json.load(sys.stdin)["header_length"])')
# A byte inside the work id value keeps the header well-formed: only the key
# commitment (the header is the Cobblestone context) can catch the change.
wid_off=$(grep -abo 'w-200000' c200000.smc | head -n1 | cut -d: -f1)
flip c200000.smc 20 t.smc
expect_exit 4 "a flip that breaks the header JSON is a format error" -- "$SM" verify t.smc --key k200000.jwk
for off in "$wid_off" $((hdr_len + 3)) $((hdr_len + 40)) $((hdr_len + 56 + 16400 * 5 + 100)) $(( $(stat -c %s c200000.smc) - 1 )); do
  flip c200000.smc "$off" t.smc
  expect_exit 5 "verify detects a flipped bit at $off" -- "$SM" verify t.smc --key k200000.jwk
  expect_exit 5 "unpack refuses a flipped bit at $off" -- "$SM" unpack t.smc --key k200000.jwk -o t.out
  expect_true "no output after failed unpack ($off)" test ! -e t.out
  expect_true "no temp file after failed unpack ($off)" bash -c "! ls t.out.part.* 2>/dev/null | grep -q ."
done
flip c200000.smc "$((hdr_len + 56 + 16400 * 5 + 100))" t.smc
expect_exit 5 "flipped chunk" -- "$SM" verify t.smc --key k200000.jwk
expect_stderr "message names the chunk" "chunk 5"
head -c $(( $(stat -c %s c200000.smc) - 100 )) c200000.smc > trunc.smc
expect_exit 4 "inspect reports truncation" -- "$SM" inspect trunc.smc
expect_stderr "truncation message" "truncated"
expect_exit 5 "verify detects truncation" -- "$SM" verify trunc.smc --key k200000.jwk
cat c200000.smc in1.bin > trail.smc
expect_exit 4 "inspect reports trailing data" -- "$SM" inspect trail.smc
expect_stderr "trailing data message" "extra bytes"
expect_exit 4 "verify detects trailing data" -- "$SM" verify trail.smc --key k200000.jwk
expect_exit 4 "inspect of a non-container" -- "$SM" inspect in200000.bin
expect_stderr "not a container message" "in200000.bin"
expect_exit 3 "inspect of a missing file" -- "$SM" inspect missing.smc

# --- progress bar: only on a terminal ---------------------------------------
head -c $((20 * 1024 * 1024)) /dev/zero > big.bin
"$SM" pack big.bin -o big.smc --work-id big --type a/b --key-out big.jwk 2> notty.err
expect_true "no progress output when stderr is not a tty" bash -c "! grep -q 'packing \[' notty.err"
if command -v script >/dev/null; then
  script -qec "'$SM' unpack big.smc --key big.jwk -o big.out" /dev/null > tty.out 2>&1
  expect_true "progress bar on a terminal" grep -q "unpacking \[" tty.out
  expect_true "unpack under a tty still correct" cmp -s big.bin big.out
fi

# --- previews with ffmpeg ------------------------------------------------------
if command -v ffmpeg >/dev/null; then
  ffmpeg -nostdin -v error -f lavfi -i "sine=frequency=440:duration=8" -c:a flac tone.flac
  expect_exit 0 "pack --preview" -- "$SM" pack tone.flac -o tone.smc --work-id tone --key-out tone.jwk --preview 3
  expect_true "preview written" test -s tone.preview.ogg
  dur=$(ffprobe -v error -show_entries format=duration -of csv=p=0 tone.preview.ogg 2>/dev/null)
  expect_true "preview lasts about 3 s (got $dur)" "${SM_PYTHON3:-python3}" -c "import sys; sys.exit(not 2.5 < float('$dur') < 3.5)"
  expect_true "preview is opus" bash -c "ffprobe -v error -show_streams tone.preview.ogg | grep -q codec_name=opus"
else
  fail "ffmpeg is not installed: the --preview test cannot run (apt-get install ffmpeg)"
fi
mkdir -p nopath
expect_exit 8 "--preview without ffmpeg" -- env PATH="$T/nopath" "$SM" pack in1.bin -o np.smc --work-id np \
  --type audio/ogg --key-out np.jwk --preview 3
expect_stderr "ffmpeg install hint" "apt-get install ffmpeg"
expect_true "nothing written without ffmpeg" test ! -e np.smc -a ! -e np.jwk

finish
