#!/usr/bin/env bash
# `secmedia publish` without servers: argument checks, local checks of the
# container before anything is sent, and unreachable servers. The full
# publish against real servers is tests/integration/test_keyserver_publish.py.
. "${SM_TESTS_SRCDIR:-$(dirname "$0")/..}/cli/lib.sh"
SM=${SM_TOP_BUILDDIR:?}/tools/secmedia
T=$SM_TMP
cd "$T"

expect_exit 0 "publish --help" -- "$SM" publish --help
expect_true "help names the command" grep -q "Usage: secmedia publish" "$T/out"
expect_true "top-level help lists publish" bash -c "'$SM' --help | grep -q publish"

head -c 40000 /dev/urandom > song.ogg
"$SM" keygen --key ks-enc.jwk --public-out ks-enc.pub.jwk >/dev/null 2>&1
"$SM" pack song.ogg -o song.smc --work-id w-cli --recipient ks-enc.pub.jwk >/dev/null 2>&1
expect_true "pack made a container and a JWE" test -s song.smc -a -s song.smc.jwe
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=owner \
  -keyout owner.key -out owner.crt -days 1 >/dev/null 2>&1
chmod 600 owner.key

common=(--key-server https://127.0.0.1:9 --media-store https://127.0.0.1:9
        --cert owner.crt --key owner.key --title "A Song")
expect_exit 2 "no container" -- "$SM" publish "${common[@]}"
expect_exit 2 "no key server" -- "$SM" publish song.smc --media-store https://127.0.0.1:9 \
  --cert owner.crt --key owner.key --title t
expect_stderr "names the missing option" "--key-server"
expect_exit 2 "no media store" -- "$SM" publish song.smc --key-server https://127.0.0.1:9 \
  --cert owner.crt --key owner.key --title t
expect_exit 2 "no certificate" -- "$SM" publish song.smc --key-server https://127.0.0.1:9 \
  --media-store https://127.0.0.1:9 --title t
expect_exit 2 "no title" -- "$SM" publish song.smc --key-server https://127.0.0.1:9 \
  --media-store https://127.0.0.1:9 --cert owner.crt --key owner.key
expect_exit 2 "plain http refused" -- "$SM" publish song.smc "${common[@]}" \
  --key-server http://127.0.0.1:9
expect_exit 2 "bad artwork URL" -- "$SM" publish song.smc "${common[@]}" --artwork "not a url"
expect_exit 2 "unknown preview type" -- "$SM" publish song.smc "${common[@]}" --preview song.xyz

expect_exit 3 "missing container" -- "$SM" publish nope.smc "${common[@]}"
head -c 1000 song.smc > short.smc
expect_exit 4 "truncated container" -- "$SM" publish short.smc "${common[@]}" --jwe song.smc.jwe
expect_stderr "truncation named" "size does not match|truncated"
expect_exit 4 "not a container" -- "$SM" publish song.ogg "${common[@]}" --jwe song.smc.jwe
expect_exit 3 "missing JWE" -- "$SM" publish song.smc "${common[@]}" --jwe nope.jwe
expect_exit 7 "unreadable key" -- "$SM" publish song.smc "${common[@]}" --key nope.key
expect_exit 8 "media store unreachable" -- "$SM" publish song.smc "${common[@]}"
expect_stderr "unreachable named" "127.0.0.1"

finish
