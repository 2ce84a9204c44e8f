#!/usr/bin/env bash
# `make check` entry point for the integration tests (pytest, real servers).
# Needs SM_TESTS_SRCDIR (set by tests/Makefile.am); writes nothing into the
# source tree, which distcheck makes read-only: no bytecode, no pytest cache,
# servers' temp dirs under $TMPDIR (override: SM_INTEGRATION_TMPDIR).
# Extra pytest arguments pass through, e.g. run.sh -k client_cert -v
set -euo pipefail

srcdir=${SM_TESTS_SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}
# Debian's python3 (configure's choice): it has python3-pytest and friends.
python=${SM_PYTHON3:-/usr/bin/python3}

if ! "$python" -c 'import pytest, requests, cryptography' 2>/dev/null; then
  echo "run.sh: $python lacks pytest, requests or cryptography;" \
       "install them with .ci/install-deps (python3-pytest python3-requests" \
       "python3-cryptography)" >&2
  exit 1
fi

export PYTHONDONTWRITEBYTECODE=1
exec "$python" -m pytest -q -p no:cacheprovider "$@" "$srcdir/integration"
