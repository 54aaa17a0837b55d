# tests/lib-private.sh: the set-up shared by the scripts that run a build of
# their own on fixtures of their own, outside `make test` (valgrind.sh,
# tsan.sh; sourced from the repository root).
#
# private_setup BUILD LOGNAME GENERATOR...: checks that BUILD exists (else
# one "not ok" and exit 1), makes BUILD absolute, a temporary folder $TMP
# (removed at exit) with the generators' fixtures in $FIX, and an empty
# $BUILD/LOGNAME for the logs of failed runs ($LOGS).  ok and notok count
# into $pass and $fail; finish prints "N passed, N failed" and exits with
# the status.
set -u
export LC_ALL=C
pass=0
fail=0
ok() { echo "ok - $1"; pass=$((pass + 1)); }
notok() { echo "not ok - $1${2:+: $2}"; fail=$((fail + 1)); }
finish() {
    echo "$pass passed, $fail failed"
    [ "$fail" -eq 0 ]
    exit
}

private_setup() {
    BUILD=$1 LOGNAME=$2
    shift 2
    if [ ! -d "$BUILD" ]; then
        echo "not ok - $BUILD: no such build folder (run make first)"
        echo "0 passed, 1 failed"
        exit 1
    fi
    BUILD=$(cd "$BUILD" && pwd)
    for g in "$@"; do
        if [ ! -x "$BUILD/tests/$g" ]; then
            echo "not ok - $BUILD/tests/$g is not built"
            echo "0 passed, 1 failed"
            exit 1
        fi
    done
    TMP=$(mktemp -d)
    trap 'rm -rf "$TMP"' EXIT
    FIX=$TMP/fixtures
    LOGS=$BUILD/$LOGNAME
    rm -rf "$LOGS"
    mkdir -p "$FIX" "$LOGS"
    # The fixtures, in a private folder (the default run wipes BUILD/fixtures).
    for g in "$@"; do
        if ! "$BUILD/tests/$g" "$FIX" >"$TMP/$g.log" 2>&1; then
            notok "fixture generator $g" "$(head -n 1 "$TMP/$g.log")"
            finish
        fi
    done
}
