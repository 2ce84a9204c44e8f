#!/usr/bin/env bash
# make check: the VLC plugin and the secmedia CLI need no database client
# (the servers' database code lives in common/libsecmedia_db, which only
# the modules link). Reads the built files' NEEDED entries.
set -euo pipefail
top=${SM_TOP_BUILDDIR:?SM_TOP_BUILDDIR is not set}
status=0
for f in "$top/vlc_access_secmedia/.libs/libsecmedia_plugin.so" "$top/tools/secmedia"; do
  if [ ! -e "$f" ]; then
    echo "check_player_deps: $f is not built" >&2
    status=1
    continue
  fi
  needed=$(objdump -p "$f" | awk '$1 == "NEEDED" { print $2 }')
  if grep -q '^libmariadb' <<<"$needed"; then
    echo "check_player_deps: $f links the MariaDB client library:" $needed >&2
    status=1
  fi
done
exit $status
