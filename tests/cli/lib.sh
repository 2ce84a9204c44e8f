# Helpers for shell tests: a private temp dir removed on exit, and assertions
# that print what was expected and what happened.
set -u
SM_TMP=$(mktemp -d "${TMPDIR:-/tmp}/smtest.XXXXXX")
trap 'rm -rf "$SM_TMP"' EXIT
failures=0
checks=0

fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
pass() { checks=$((checks + 1)); }

# expect_exit CODE DESCRIPTION -- command...   (stdout/stderr kept in $SM_TMP/out, err)
expect_exit() {
  local want=$1 what=$2; shift 3
  "$@" >"$SM_TMP/out" 2>"$SM_TMP/err"
  local got=$?
  if [ "$got" -ne "$want" ]; then
    fail "$what: exit $got, expected $want; stderr: $(head -c 600 "$SM_TMP/err")"
  else
    pass
  fi
}

expect_stderr() {
  local what=$1 pattern=$2
  if grep -qE -- "$pattern" "$SM_TMP/err"; then pass; else
    fail "$what: stderr does not match /$pattern/: $(head -c 600 "$SM_TMP/err")"
  fi
}

expect_true() {
  local what=$1; shift
  if "$@"; then pass; else fail "$what"; fi
}

finish() {
  echo "$checks checks passed, $failures failed"
  [ "$failures" -eq 0 ]
}
