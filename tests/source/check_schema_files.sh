#!/usr/bin/env bash
# make check: sql/<role>.sql, the whole schema for a new database, is what
# `secmedia-db-migrate --print` makes from the migrations, so it can never
# drift from them (regenerate with `make -C sql schemas`).
set -euo pipefail
migrate=$SM_TOP_BUILDDIR/sql/secmedia-db-migrate
status=0
for role in keyserver mediastore retail; do
  if ! diff -u "$SM_TOP_SRCDIR/sql/$role.sql" \
       <("$migrate" --role "$role" --print --sql-dir "$SM_TOP_SRCDIR/sql") >&2; then
    echo "check_schema_files: sql/$role.sql differs from its migrations: run make -C sql schemas" >&2
    status=1
  fi
done
exit $status
