#!/bin/sh
# A representative subset of the tools under valgrind's memcheck: each tool on
# a few small fixtures (every table, the 2-byte float types, filters, pooling,
# threads, -o), a few refusals and usage errors, --help.  Not part of the
# default run (valgrind makes each run some 50 times slower):
#
#   make check-valgrind          runs: sh tests/valgrind.sh BUILD
#   sh tests/valgrind.sh BUILD   (from the repository root, after `make test`
#                                 or `make all` plus the fixture generators)
#
# Every run must end with the tool's own status, valgrind must report no
# error ("ERROR SUMMARY: 0 errors"), and no block may be definitely lost.
# tests/valgrind.supp holds the suppressions for the libraries' own internals,
# if any (never a frame of petools).  A failed run's log is kept in
# BUILD/valgrind-logs/.  Prints ok / not ok / skip lines like the other test
# scripts, then "N passed, N failed"; the status is non-zero on a failure.
set -u
TOP=$(pwd)
. tests/lib-private.sh

if ! command -v valgrind >/dev/null 2>&1; then
    echo "skip - valgrind is not installed (Debian: apt-get install valgrind)"
    echo "0 passed, 0 failed"
    exit 0
fi
for t in pedecomp peanalyze peentropy; do
    if [ ! -x "${1:-build}/$t" ]; then
        echo "not ok - ${1:-build}/$t is not built (make BUILD=${1:-build} test builds it)"
        echo "0 passed, 1 failed"
        exit 1
    fi
done
private_setup "${1:-build}" valgrind-logs mkfixtures mkfix_corpus mkfix_attn mkfix_entropy

SUPP=""
[ -f "$TOP/tests/valgrind.supp" ] && SUPP="--suppressions=$TOP/tests/valgrind.supp"
n=0

# vg STATUS TOOL ARGS...: TOOL ARGS under memcheck, in the fixture folder.
vg() {
    want=$1 tool=$2
    shift 2
    n=$((n + 1))
    log=$TMP/vg.$n.log
    desc="$tool $*"
    # shellcheck disable=SC2086
    (cd "$FIX" && valgrind --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite \
        --show-leak-kinds=definite --num-callers=40 --track-fds=no $SUPP --log-file="$log" \
        "$BUILD/$tool" "$@" >"$TMP/out" 2>"$TMP/err" </dev/null)
    status=$?
    errors=$(sed -n 's/.*ERROR SUMMARY: \([0-9]*\) errors.*/\1/p' "$log" | tail -n 1)
    lost=$(grep -c 'are definitely lost' "$log")
    if [ -z "$errors" ]; then
        notok "$desc" "valgrind wrote no summary (status $status); see $LOGS/$n.log"
        cp "$log" "$LOGS/$n.log"
    elif [ "$errors" -ne 0 ] || [ "$lost" -ne 0 ]; then
        # The first error, or the first definite leak, with its top frames.
        where=$(sed 's/^==[0-9]*== //' "$log" | awk '
            /^   (at|by) / { if (!head) { head = prev; printf "%s", head } if (/vgpreload|valgrind/) next; sub(/^   (at|by) 0x[0-9A-F]+: /, ""); printf " | %s", $0; if (++f == 4) exit; next }
            head { exit } { prev = $0 }')
        cp "$log" "$LOGS/$n.log"
        notok "$desc" "$errors errors, $lost definite leaks: $where (log: $LOGS/$n.log)"
    elif [ "$status" -ne "$want" ]; then
        cp "$log" "$LOGS/$n.log"
        notok "$desc" "status $status, want $want: $(head -n 1 "$TMP/err")"
    else
        ok "$desc: status $status, no error, no definite leak"
    fi
}

O=$TMP/out-file
# --------------------------------------------------------------- pedecomp
vg 0 pedecomp --help
vg 0 pedecomp --version
vg 0 pedecomp -j 2 f32.h5
vg 0 pedecomp -j 2 -t summary -f json f16.h5
vg 0 pedecomp -j 1 -t usage bf16.h5
vg 0 pedecomp -j 1 -t dims -f tsv interleaved.h5
vg 0 pedecomp -j 1 -t spectrum spectral.h5
vg 0 pedecomp -j 1 -t spectrum --spectrum-of 1 -l 0 -H 0 f32.h5
vg 0 pedecomp -j 2 --bins 7 -o "$O.tsv" f32.h5 short.h5
vg 0 pedecomp -j 1 -q --method direct gappy.h5
vg 0 pedecomp -j 1 --bins 0 deflate.h5
vg 0 pedecomp -j 1 -t freqs fixedstr.h5
vg 0 pedecomp -t freqs -f json --rotary-dim 128 -L 4096 --scale yarn:4
vg 3 pedecomp -j 1 --check wrongpair.h5
vg 0 pedecomp -j 1 rotated.h5
vg 0 pedecomp -j 1 -t summary layerfreq.h5
vg 0 pedecomp -j 1 t1.h5
vg 0 pedecomp -j 1 odd-d2.h5
vg 1 pedecomp bad-text.h5
vg 1 pedecomp bad-cut-50.h5
vg 1 pedecomp bad-heads-str.h5
vg 1 pedecomp bad-lzf.h5
vg 1 pedecomp bad-huge.h5
vg 1 pedecomp bad-dir.h5
vg 1 pedecomp -j 2 -o "$O.tsv" bad-q-nan.h5
vg 1 pedecomp f32.h5 otherbase.h5
vg 2 pedecomp --bins 12x f32.h5
vg 2 pedecomp -l 1 f32.h5
# -------------------------------------------------------------- peanalyze
vg 0 peanalyze --help
vg 0 peanalyze -j 2 f32.h5
vg 0 peanalyze -j 2 -t heads -f tsv f32.h5 short.h5
vg 0 peanalyze -j 1 -t layers attn-softcap.h5
vg 0 peanalyze -j 1 -t heatmap -f json --window 0:8 --pixels 4 attn.h5
vg 0 peanalyze -j 1 --rows 5 --block 3 -t heads f16.h5
vg 3 peanalyze -j 1 -q -t heads --fail-on ood attn.h5
vg 0 peanalyze -j 1 -t heads odd-t1.h5
vg 0 peanalyze -j 1 -t heads -o "$O.gp" norope.h5
vg 1 peanalyze bad-k-inf.h5
vg 1 peanalyze bad-no-pairing.h5
vg 1 peanalyze bad-truncated.h5
vg 2 peanalyze -t heads attn-nolen.h5
vg 2 peanalyze --window 0:5 f32.h5
# -------------------------------------------------------------- peentropy
vg 0 peentropy --help
vg 0 peentropy -j 2 f32.h5
vg 0 peentropy -j 1 -t bands --stage all --ntk-len 64 bf16.h5
vg 0 peentropy -j 2 -t select --mask "$O.json" -o "$O.sel" ent-gqa.h5 ent-gqa2.h5
vg 0 peentropy -j 1 --prep uncomp --broadcast f32.h5
vg 0 peentropy -j 1 -t bands norope.h5
vg 0 peentropy -j 1 odd-kv1.h5
vg 1 peentropy --prep uncomp odd-t1.h5
vg 1 peentropy bad-krot-nan.h5
vg 1 peentropy bad-empty.h5
vg 1 peentropy bad-format-int.h5
vg 2 peentropy --rank 0 f32.h5
vg 2 peentropy -t select --mask f32.h5 f32.h5

# ------------------------------------- the whole corpus and abuse suite
# tests/cli-corpus.sh again, every tool run through memcheck: a folder whose
# pedecomp, peanalyze and peentropy are wrappers that exec valgrind with
# status 99 on an error or a definite leak, so that any finding breaks the
# pinned status of the check that ran it.  The logs of such runs are kept.
VGB=$TMP/vgbuild
mkdir -p "$VGB/logs"
ln -s "$FIX" "$VGB/fixtures"
for t in pedecomp peanalyze peentropy; do
    cat >"$VGB/$t" <<EOW
#!/bin/sh
exec valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite \\
    --show-leak-kinds=definite --num-callers=40 $SUPP --log-file="$VGB/logs/%p.log" "$BUILD/$t" "\$@"
EOW
    chmod 755 "$VGB/$t"
done
# The fuzzer finds (tests/corpus/) make libhdf5 itself read out of bounds,
# which memcheck reports inside libhdf5: they run below, with those faults
# suppressed.
PE_NO_FUZZ_FINDS="they run under memcheck below, with libhdf5's own faults suppressed" \
    sh "$TOP/tests/cli-corpus.sh" "$VGB" >"$TMP/corpus.out" 2>&1
cp=$(grep -c '^ok' "$TMP/corpus.out")
cf=$(grep -c '^not ok' "$TMP/corpus.out")
grep '^not ok' "$TMP/corpus.out" | head -n 20
for l in "$VGB"/logs/*.log; do
    [ -s "$l" ] && cp "$l" "$LOGS/corpus-$(basename "$l")"
done
if [ "$cf" -eq 0 ] && [ "$cp" -gt 0 ]; then
    ok "cli-corpus.sh under valgrind: $cp checks, no memcheck error, no definite leak"
else
    notok "cli-corpus.sh under valgrind" "$cf of $((cp + cf)) checks failed (memcheck logs in $LOGS/corpus-*.log)"
fi

# ------------------------------------------------- the fuzzer finds
# tests/corpus/*.h5 make libhdf5 itself read out of bounds or leak: with
# those faults suppressed (tests/valgrind-hdf5.supp: frames of libhdf5
# only), each tool must refuse each file with status 1 and one line naming
# it, with no error or definite leak anywhere else.
for f in "$TOP"/tests/corpus/*.h5; do
    [ -f "$f" ] || continue
    for t in pedecomp peanalyze peentropy; do
        n=$((n + 1))
        log=$TMP/vg.$n.log
        PE_HDF5_TIMEOUT=5 valgrind --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite \
            --show-leak-kinds=definite --num-callers=40 --suppressions="$TOP/tests/valgrind-hdf5.supp" $SUPP \
            --log-file="$log" "$BUILD/$t" "$f" >/dev/null 2>"$TMP/err" </dev/null
        status=$?
        first=$(head -n 1 "$TMP/err")
        desc="$t refuses tests/corpus/$(basename "$f") under memcheck"
        if [ "$status" -ne 1 ]; then
            cp "$log" "$LOGS/$n.log"
            notok "$desc" "status $status, want 1: $first (log: $LOGS/$n.log)"
        elif [ "$(wc -l <"$TMP/err")" -ne 1 ] || [ "${first#"$t: $f: "}" = "$first" ]; then
            notok "$desc" "want one line naming the file: $first"
        else
            ok "$desc"
        fi
    done
done

finish
