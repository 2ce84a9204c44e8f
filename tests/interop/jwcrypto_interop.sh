#!/bin/sh
# JOSE interop with jwcrypto (python3-jwcrypto): JWE, JWS, DPoP and RFC 7638
# thumbprints, both directions. Run by `make check` with SM_TESTS_BUILDDIR,
# SM_TESTS_SRCDIR and SM_PYTHON3 set; see jwcrypto_interop.py for the checks.
set -eu

srcdir=${SM_TESTS_SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}
builddir=${SM_TESTS_BUILDDIR:-$(pwd)}
# The first python3 on PATH may lack jwcrypto: use the one configure found.
python=${SM_PYTHON3:-/usr/bin/python3}
tool="$builddir/interop/jose_tool"

if [ ! -x "$tool" ]; then
    echo "jwcrypto_interop: $tool is missing; build it with: make -C tests interop/jose_tool" >&2
    exit 1
fi
if ! "$python" -c 'import jwcrypto' 2>/dev/null; then
    echo "jwcrypto_interop: $python cannot import jwcrypto (apt-get install python3-jwcrypto)" >&2
    exit 1
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/sm-jwcrypto.XXXXXX")
trap 'rm -rf "$work"' EXIT
trap 'exit 1' INT TERM

"$python" "$srcdir/interop/jwcrypto_interop.py" "$tool" "$work"
