"""Source check run by `make check`: every log call in the httpd modules
and their glue library carries a stable message id SMLOGNO(nnnnn) from its
directory's range, and no id is used twice. See common/httpd/smh_log.h.

Also refuses log calls whose arguments name a password, secret, private
key or bearer token: those must never reach a log; and C length modifiers
APR's formatter does not know (%llu, %zu, %jd ...): on 64-bit Linux it
reads "%llu" as "%l" then "u", prints garbage and takes the following
arguments out of step (a "%s" after it then crashes the child). Use
APR_UINT64_T_FMT, APR_INT64_T_FMT, APR_SIZE_T_FMT."""

import os
import re
import sys

RANGES = {
    "common/httpd": (1, 999),
    "mod_keyserver": (1000, 1999),
    "mod_mediastore": (2000, 2999),
    "mod_retail": (3000, 3999),
}
LOG_CALL = re.compile(r"\bap_log_(?:r|c|cs|p|)error\s*\(")
ID = re.compile(r"SMLOGNO\((\d{5})\)")
# A conversion with a length modifier APR's apr_vformatter misreads.
BAD_LENGTH = re.compile(r"%[-+ #0]*[0-9*]*(?:\.[0-9*]+)?(?:ll|hh|[zjtL])[a-zA-Z]")
SECRETISH = re.compile(r"\b\w*(?:password|passwd|secret|private_key|bearer|compact_token)\w*\b",
                       re.IGNORECASE)


def call_text(src, start):
    """The text of the call whose '(' is at start-1, up to the matching ')'."""
    depth, i, in_str = 1, start, None
    while i < len(src) and depth:
        c = src[i]
        if in_str:
            if c == "\\":
                i += 1
            elif c == in_str:
                in_str = None
        elif c in "\"'":
            in_str = c
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
        i += 1
    return src[start:i - 1]


def main(top):
    problems, seen = [], {}
    for rel, (low, high) in RANGES.items():
        base = os.path.join(top, rel)
        if not os.path.isdir(base):
            continue
        for name in sorted(os.listdir(base)):
            if not name.endswith(".c"):
                continue
            path = os.path.join(base, name)
            with open(path, encoding="utf-8") as f:
                src = f.read()
            for m in LOG_CALL.finditer(src):
                line = src.count("\n", 0, m.start()) + 1
                where = "%s/%s:%d" % (rel, name, line)
                text = call_text(src, m.end())
                ids = ID.findall(text)
                if len(ids) != 1:
                    problems.append("%s: log call without exactly one SMLOGNO(nnnnn)" % where)
                    continue
                number = int(ids[0])
                if not low <= number <= high:
                    problems.append("%s: SM%s is outside %s's range %05d-%05d"
                                    % (where, ids[0], rel, low, high))
                if ids[0] in seen:
                    problems.append("%s: SM%s already used at %s" % (where, ids[0], seen[ids[0]]))
                seen.setdefault(ids[0], where)
                formats = "".join(re.findall(r'"((?:[^"\\]|\\.)*)"', text))
                for conv in BAD_LENGTH.findall(formats):
                    problems.append("%s: %s in a log format; APR's formatter misreads it, use "
                                    "APR_UINT64_T_FMT / APR_INT64_T_FMT / APR_SIZE_T_FMT"
                                    % (where, conv))
                # Only the arguments after the format string.
                args = re.sub(r'"(?:[^"\\]|\\.)*"', '""', text)
                bad = SECRETISH.findall(args)
                if bad:
                    problems.append("%s: log call passes %s; never log secrets"
                                    % (where, ", ".join(sorted(set(bad)))))
    for p in problems:
        print("check_log_ids: " + p, file=sys.stderr)
    if not seen and not problems:
        print("check_log_ids: no log calls found under %s" % top, file=sys.stderr)
        return 1
    print("check_log_ids: %d log ids checked" % len(seen))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else os.environ["SM_TOP_SRCDIR"]))
