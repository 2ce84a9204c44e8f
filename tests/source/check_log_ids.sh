#!/usr/bin/env bash
# make check: stable, unique, in-range log message ids (check_log_ids.py).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
exec "${SM_PYTHON3:-python3}" -B "$here/check_log_ids.py" "${SM_TOP_SRCDIR:-$here/../..}"
