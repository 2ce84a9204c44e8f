#!/bin/sh
# `make check` test: replays every fuzz target's seed corpus through the
# target built as a normal program (fuzz_<name>.c + replay_main.c).
# Fails when a target is missing, a corpus directory is missing or empty, or
# a replay fails (crash, sanitizer report, non-zero exit).
#
# Environment (set by tests/Makefile.am; defaults work from tests/ in the
# build tree of an in-tree build):
#   SM_TESTS_BUILDDIR  directory holding fuzz/<target>
#   SM_TESTS_SRCDIR    directory holding fuzz/corpus/<name>/

set -u

FUZZ_TARGETS="fuzz_steer fuzz_container_header fuzz_jose fuzz_keyserver fuzz_player fuzz_retail"

here=$(cd "$(dirname "$0")" && pwd)
builddir=${SM_TESTS_BUILDDIR:-$(pwd)}
srcdir=${SM_TESTS_SRCDIR:-$(dirname "$here")}

failed=0
for target in $FUZZ_TARGETS; do
    name=${target#fuzz_}
    bin="$builddir/fuzz/$target"
    corpus="$srcdir/fuzz/corpus/$name"

    if [ ! -x "$bin" ]; then
        echo "FAIL $target: $bin not built (run: make -C tests fuzz/$target)" >&2
        failed=1
        continue
    fi
    if [ ! -d "$corpus" ]; then
        echo "FAIL $target: seed corpus directory $corpus is missing" >&2
        failed=1
        continue
    fi
    # Seeds are the directory's regular, non-dot files (what the replayer reads).
    seeds=0
    for f in "$corpus"/*; do
        [ -f "$f" ] && seeds=$((seeds + 1))
    done
    if [ "$seeds" -eq 0 ]; then
        echo "FAIL $target: seed corpus $corpus is empty; add at least one input" >&2
        failed=1
        continue
    fi

    if "$bin" "$corpus"; then
        echo "PASS $target ($seeds seeds)"
    else
        rc=$?
        echo "FAIL $target: replaying $corpus exited with status $rc (see the log above)" >&2
        failed=1
    fi
done

exit $failed
