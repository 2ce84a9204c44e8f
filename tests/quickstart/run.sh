#!/usr/bin/env bash
# The README's first command as CI runs it: tools/quickstart.py on this
# build tree (its wrapper ./quickstart only adds the package install and the
# build, which tests/run-all has just done). It runs twice, because running
# it again must be safe, and then --stop, after which none of its servers
# may be left. Logs are kept when anything fails.
set -euo pipefail
src=${SM_TOP_SRCDIR:?run via make check}
: "${SM_TOP_BUILDDIR:?run via make check}"
python=${SM_PYTHON3:-/usr/bin/python3}
quickstart=("$python" "$src/tools/quickstart.py")

base=$(mktemp -d "${TMPDIR:-/tmp}/sm-quickstart.XXXXXX")
chmod 755 "$base"
export SM_QUICKSTART_DIR=$base/run
ok=0
finish() {
  "${quickstart[@]}" --stop >/dev/null 2>&1 || true
  if [ "$ok" = 1 ]; then rm -rf "$base"; else echo "quickstart test: kept $base" >&2; fi
}
trap finish EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }
server_pids() {
  "$python" -c 'import json,sys; print(" ".join(str(p["pid"]) for p in json.load(open(sys.argv[1]))["processes"]))' \
    "$SM_QUICKSTART_DIR/state.json"
}

export PYTHONDONTWRITEBYTECODE=1
# Sanitizer builds (make check-asan): cvlc hangs with the ASan runtime
# preloaded, so the quickstart plays through the instrumented libvlc driver
# of the VLC tests instead (same plugin, same comparison).
if [ -n "${SM_HTTPD_PRELOAD:-}" ]; then
  export SM_QUICKSTART_PLAYER=${SM_TESTS_BUILDDIR:?}/vlc/vlc_decode
fi
for round in 1 2; do
  echo "--- quickstart, run $round"
  "${quickstart[@]}" > "$base/out-$round.txt" 2>&1 || { cat "$base/out-$round.txt"; fail "run $round failed"; }
  cat "$base/out-$round.txt"
  grep -q "identical to the original's" "$base/out-$round.txt" || fail "run $round: no identical playback reported"
  ls "$SM_QUICKSTART_DIR"/consumer/*.steer >/dev/null || fail "run $round: no .steer written"
  pids=$(server_pids)
  for pid in $pids; do kill -0 "$pid" 2>/dev/null || fail "run $round: server pid $pid is not running"; done
  if [ "$round" = 2 ]; then
    for pid in $first_pids; do
      if kill -0 "$pid" 2>/dev/null; then fail "run 2 left run 1's server $pid running"; fi
    done
  fi
  first_pids=$pids
done

echo "--- quickstart --stop"
"${quickstart[@]}" --stop
for pid in $first_pids; do
  if kill -0 "$pid" 2>/dev/null; then fail "--stop left pid $pid running"; fi
done
[ ! -e "$SM_QUICKSTART_DIR/state.json" ] || fail "--stop left its state file"
# Nothing that names the run dir may be left: no httpd child, no player.
if pgrep -f "$SM_QUICKSTART_DIR/" >/dev/null; then
  pgrep -af "$SM_QUICKSTART_DIR/" >&2
  fail "--stop left processes of the run behind"
fi
ok=1
echo "quickstart test: passed"
