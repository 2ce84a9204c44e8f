#!/usr/bin/env bash
# `secmedia ledger verify` on exports written by an independent
# implementation of the format (ledger_fixture.py): the valid export passes,
# each kind of tampering fails with the right exit code and names the first
# bad entry.
. "${SM_TESTS_SRCDIR:-$(dirname "$0")/..}/cli/lib.sh"
SM=${SM_TOP_BUILDDIR:?}/tools/secmedia
PY=${SM_PYTHON3:-/usr/bin/python3}
T=$SM_TMP
cd "$T"

if ! "$PY" -c 'import cryptography' 2>/dev/null; then
  echo "test_ledger: $PY cannot import cryptography (apt-get install python3-cryptography)" >&2
  exit 1
fi
"$PY" "${SM_TESTS_SRCDIR:-$(dirname "$0")/..}/cli/ledger_fixture.py" "$T" || exit 1

expect_exit 0 "ledger --help" -- "$SM" ledger --help
expect_true "help names the command" grep -q "Usage: secmedia ledger verify" "$T/out"
expect_exit 2 "ledger without subcommand" -- "$SM" ledger
expect_exit 2 "ledger unknown subcommand" -- "$SM" ledger check good.jsonl
expect_exit 2 "verify without file" -- "$SM" ledger verify
expect_exit 2 "--checkpoint needs --jwks" -- "$SM" ledger verify --checkpoint checkpoint-12.jwt good.jsonl
expect_exit 3 "missing export" -- "$SM" ledger verify nope.jsonl
expect_stderr "missing export named" "cannot open nope.jsonl"

# --- valid ---------------------------------------------------------------------
expect_exit 0 "valid export" -- "$SM" ledger verify good.jsonl
expect_true "summary" grep -q "ledger ok: 12 entries, last seq 12" "$T/out"
expect_true "checkpoints counted" grep -q "checkpoints: 3 matched, the last at seq 12" "$T/out"
expect_stderr "note about untrusted keys" "keys inside the export"
expect_exit 0 "valid export, trusted keys" -- "$SM" ledger verify --jwks jwks.json good.jsonl
expect_true "no note with --jwks" bash -c "! grep -q 'keys inside' '$T/err'"
expect_exit 0 "from stdin" -- bash -c "'$SM' ledger verify - < good.jsonl"
expect_exit 0 "with a kept checkpoint" -- "$SM" ledger verify --jwks jwks.json \
  --issuer https://ks.example --checkpoint checkpoint-12.jwt good.jsonl

# --- tampering -----------------------------------------------------------------
expect_exit 5 "changed entry" -- "$SM" ledger verify changed.jsonl
expect_stderr "changed entry named" "entry seq 6 does not match its hash"
expect_stderr "changed: first bad" "first bad entry: seq 6"

expect_exit 5 "rewritten chain" -- "$SM" ledger verify rewritten.jsonl
expect_stderr "rewritten: checkpoint" "checkpoint at seq 8"
expect_stderr "rewritten: first bad" "first bad entry: seq 5"

expect_exit 0 "re-signed by a forger looks self-consistent" -- "$SM" ledger verify resigned.jsonl
expect_exit 5 "re-signed by a forger, trusted keys" -- "$SM" ledger verify --jwks jwks.json resigned.jsonl
expect_stderr "forged checkpoint" "checkpoint does not verify"

expect_exit 5 "deleted entry" -- "$SM" ledger verify deleted.jsonl
expect_stderr "deleted: first bad" "first bad entry: seq 3"
expect_stderr "deleted: message" "entry 3 is missing"

expect_exit 5 "reordered entries" -- "$SM" ledger verify reordered.jsonl
expect_stderr "reordered: first bad" "first bad entry: seq 9"

expect_exit 5 "tail cut behind a checkpoint" -- "$SM" ledger verify tailcut.jsonl
expect_stderr "tail cut: message" "entries 10 to 12 were cut"
expect_stderr "tail cut: first bad" "first bad entry: seq 10"

expect_exit 0 "silent tail cut alone" -- "$SM" ledger verify tailcut-silent.jsonl
expect_exit 5 "silent tail cut, kept checkpoint" -- "$SM" ledger verify --jwks jwks.json \
  --issuer https://ks.example --checkpoint checkpoint-12.jwt tailcut-silent.jsonl
expect_stderr "silent tail cut: first bad" "first bad entry: seq 10"

expect_exit 5 "truncated export" -- "$SM" ledger verify truncated.jsonl
expect_stderr "truncated: message" "no end line"

expect_exit 4 "malformed line" -- "$SM" ledger verify garbage.jsonl
expect_stderr "malformed: line" "line 4"

expect_exit 7 "unusable --jwks" -- "$SM" ledger verify --jwks good.jsonl good.jsonl
expect_exit 5 "wrong trusted keys" -- "$SM" ledger verify --jwks other-jwks.json good.jsonl
expect_exit 5 "wrong issuer" -- "$SM" ledger verify --issuer https://other.example good.jsonl

finish
