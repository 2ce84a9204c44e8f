#!/usr/bin/env bash
# make check: the modules need the newest migrations (check_schema_versions.py).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
exec "${SM_PYTHON3:-python3}" -B "$here/check_schema_versions.py" "${SM_TOP_SRCDIR:-$here/../..}"
