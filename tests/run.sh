#!/bin/sh
# Runs every test of petools.  The last line is "N passed, N failed"; the
# status is non-zero when anything failed.
#
#   tests/run.sh BUILD_DIR [PYTHON]
#
# Each test program prints one line per check ("ok - ...", "not ok - ...",
# "skip - ..."); this script counts them.  Full logs: BUILD_DIR/test-logs/.
# PE_REGEN=1 rewrites the golden files instead of comparing (make regen).
set -u
BUILD=${1:-build}
PYTHON=${2:-/usr/bin/python3}
export LC_ALL=C
FIX=$BUILD/fixtures
LOGS=$BUILD/test-logs
rm -rf "$FIX" "$LOGS"
mkdir -p "$FIX" "$LOGS"
pass=0
fail=0

# tally NAME LOG STATUS: adds a program's checks to the totals.
tally() {
    p=$(grep -c '^ok ' "$2")
    f=$(grep -c '^not ok ' "$2")
    if [ "$3" -ne 0 ] && [ "$f" -eq 0 ]; then
        echo "not ok - $1 exited with status $3" >>"$2"
        f=1
    fi
    grep -E '^(not ok|skip)' "$2" | sed "s|^|$1: |"
    printf '%-22s %5d passed, %d failed\n' "$1" "$p" "$f"
    pass=$((pass + p))
    fail=$((fail + f))
}

for g in "$BUILD"/tests/mkfix*; do
    case $g in *.o | *.d) continue ;; esac
    if ! "$g" "$FIX" >"$LOGS/$(basename "$g").log" 2>&1; then
        cat "$LOGS/$(basename "$g").log"
        echo "0 passed, 1 failed"
        exit 1
    fi
done

for t in "$BUILD"/tests/test_*; do
    case $t in *.o | *.d) continue ;; esac
    [ -x "$t" ] || continue
    n=$(basename "$t")
    "$t" "$FIX" >"$LOGS/$n.log" 2>&1
    tally "$n" "$LOGS/$n.log" $?
done

# Command-line tests of each tool, the figures, the man pages.
for t in tests/cli-*.sh tests/figures.sh tests/docs.sh; do
    [ -f "$t" ] || continue
    n=$(basename "$t" .sh)
    sh "$t" "$BUILD" >"$LOGS/$n.log" 2>&1
    tally "$n" "$LOGS/$n.log" $?
done

if "$PYTHON" -c 'import numpy, h5py' 2>/dev/null; then
    PE_BUILD=$BUILD "$PYTHON" tests/test_pe_dump.py >"$LOGS/pe-dump.log" 2>&1
    tally pe-dump "$LOGS/pe-dump.log" $?
else
    echo "pe-dump: skip - the dumper's tests: $PYTHON cannot import numpy and h5py"
fi

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
