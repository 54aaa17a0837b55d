# tests/lib.sh: helpers shared by the command-line test scripts (sourced).
#
# A script does `. tests/lib.sh` from the repository root with the build
# folder as $1; it then runs inside the fixture folder, so that file names in
# the tables' comment lines do not depend on where the build lives.  Every
# check prints one line: "ok - ...", "not ok - ...: details" or "skip - ...".
set -u
export LC_ALL=C
TOP=$(pwd)
BUILD=$(cd "$1" && pwd)
FIX=$BUILD/fixtures
GOLDEN=$TOP/tests/golden
REAL=$TOP/testdata/stories260K.h5
TMP=$(mktemp -d)
trap 'chmod -R u+w "$TMP" 2>/dev/null; rm -rf "$TMP"' EXIT
cd "$FIX" || exit 1

ok() { echo "ok - $1"; }
notok() { echo "not ok - $1${2:+: $2}"; }

# run CMD...: runs it, leaving $TMP/out, $TMP/err and $status.
run() {
    "$@" >"$TMP/out" 2>"$TMP/err"
    status=$?
}

# expect STATUS 'STDERR PREFIX' DESC CMD...: the status, and the first line
# of stderr starting with the prefix ('' = stderr must be empty).
expect() {
    want=$1 prefix=$2 desc=$3
    shift 3
    run "$@"
    first=$(head -n 1 "$TMP/err")
    lines=$(wc -l <"$TMP/err")
    if [ "$status" -ne "$want" ]; then
        notok "$desc" "status $status, want $want; stderr: $first"
    elif [ -z "$prefix" ] && [ -s "$TMP/err" ]; then
        notok "$desc" "stderr not empty: $first"
    elif [ -n "$prefix" ] && [ "$lines" -ne 1 ]; then
        notok "$desc" "stderr has $lines lines, want one"
    elif [ -n "$prefix" ] && [ "${first#"$prefix"}" = "$first" ]; then
        notok "$desc" "stderr '$first' does not start with '$prefix'"
    else
        ok "$desc"
    fi
}

# numclose A B: the files have the same lines and words, and where words
# differ both are numbers within 1e-12 relative (1e-14 absolute).  Goldens
# are written at %.17g; OpenBLAS and FFTW pick kernels by CPU, which moves
# the last digits from one machine to another but nothing beyond.  The
# numbers themselves are checked against independent references elsewhere.
numclose() {
    awk -v other="$2" '
    function isnum(s) { return s ~ /^[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?$/ }
    function abs(x) { return x < 0 ? -x : x }
    {
        if ((getline o < other) <= 0) exit 1
        if ($0 == o) next
        n = split($0, a, /[][ \t,:{}"]+/); m = split(o, b, /[][ \t,:{}"]+/)
        if (n != m) exit 1
        for (i = 1; i <= n; i++) {
            if (a[i] == b[i]) continue
            if (!isnum(a[i]) || !isnum(b[i])) exit 1
            x = a[i] + 0; y = b[i] + 0; d = abs(x - y)
            s = abs(x) > abs(y) ? abs(x) : abs(y)
            if (d > 1e-12 * s && d > 1e-14) exit 1
        }
    }
    END { if ((getline o < other) > 0) exit 1 }' "$1"
}

# golden NAME CMD...: stdout equals tests/golden/NAME (PE_REGEN=1 rewrites it).
golden() {
    name=$1
    shift
    run "$@"
    if [ "$status" -ne 0 ]; then
        notok "golden $name" "status $status: $(head -n 1 "$TMP/err")"
    elif [ "${PE_REGEN:-0}" = 1 ]; then
        mkdir -p "$GOLDEN"
        cp "$TMP/out" "$GOLDEN/$name"
        ok "golden $name (regenerated)"
    elif cmp -s "$TMP/out" "$GOLDEN/$name"; then
        ok "golden $name"
    elif numclose "$GOLDEN/$name" "$TMP/out"; then
        ok "golden $name (last digits differ: BLAS/FFT kernels of this CPU)"
    else
        notok "golden $name" "differs: diff $GOLDEN/$name against: $* ($(diff "$GOLDEN/$name" "$TMP/out" | head -n 3 | tr '\n' ' '))"
    fi
}

# is DESC WANT GOT: GOT equals WANT, shown on failure.
is() {
    if [ "$3" = "$2" ]; then ok "$1"; else notok "$1" "got '$3', want '$2'"; fi
}

# data FILE: the rows of a table without its comment lines.
data() { grep -v '^#' "$1"; }

# same DESC A B: two tables hold the same header and rows.
same() {
    data "$2" >"$TMP/same.a"
    data "$3" >"$TMP/same.b"
    if cmp -s "$TMP/same.a" "$TMP/same.b"; then
        ok "$1"
    else
        notok "$1" "$(diff "$TMP/same.a" "$TMP/same.b" | head -n 4 | tr '\n' ' ')"
    fi
}

# have_python: /usr/bin/python3 with numpy and h5py (for the dumper only).
have_python() { /usr/bin/python3 -c 'import numpy, h5py' 2>/dev/null; }
