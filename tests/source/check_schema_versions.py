"""Source check run by `make check`: the schema version each module needs
(common/sm_schema.h) is the number of the newest migration in its
sql/<role>/ directory, so a new migration cannot ship without the modules
refusing databases that lack it."""

import os
import re
import sys

ROLES = {"SM_SCHEMA_KEYSERVER": "keyserver", "SM_SCHEMA_MEDIASTORE": "mediastore",
         "SM_SCHEMA_RETAIL": "retail"}


def main(top):
    with open(os.path.join(top, "common", "sm_schema.h"), encoding="utf-8") as f:
        declared = dict(re.findall(r"#define (SM_SCHEMA_\w+) (\d+)u?\b", f.read()))
    failures = []
    for name, role in ROLES.items():
        files = [f for f in os.listdir(os.path.join(top, "sql", role))
                 if re.fullmatch(r"\d{4}_[A-Za-z0-9_-]+\.sql", f)]
        newest = max(int(f[:4]) for f in files)
        if name not in declared:
            failures.append("%s is not defined in common/sm_schema.h" % name)
        elif int(declared[name]) != newest:
            failures.append("%s is %s but the newest migration in sql/%s is %04d: raise it"
                            % (name, declared[name], role, newest))
    for message in failures:
        print("check_schema_versions: " + message, file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
