#!/bin/sh
# The tools' threaded runs under ThreadSanitizer: every table of every tool
# with -j 2 or -j 3 (the pool, the shared key heads, the query prefetch and
# the key read ahead of one-head tables, ordered emission), pooled files,
# and runs that fail while threads work.  Part of `make check-asan`, which
# builds BUILD (a -fsanitize=thread build) first:
#
#   sh tests/tsan.sh BUILD      (from the repository root)
#
# Every run must end with the tool's own status and ThreadSanitizer must
# report nothing; a failed run's report is kept in BUILD/tsan-logs/.  Prints
# ok / not ok lines, then "N passed, N failed"; non-zero status on a failure.
. tests/lib-private.sh
private_setup "${1:-build/tsan}" tsan-logs mkfixtures mkfix_attn mkfix_entropy
n=0
# ts STATUS TOOL ARGS...: TOOL ARGS under ThreadSanitizer, in the fixture folder.
ts() {
    want=$1 tool=$2
    shift 2
    n=$((n + 1))
    log=$TMP/ts.$n.log
    (cd "$FIX" && TSAN_OPTIONS="halt_on_error=0 exitcode=66 log_path=$log" "$BUILD/$tool" "$@" >"$TMP/out" 2>"$TMP/err" </dev/null)
    status=$?
    races=$(cat "$log".* 2>/dev/null | grep -c 'WARNING: ThreadSanitizer')
    if [ "$races" -ne 0 ]; then
        cat "$log".* >"$LOGS/$n.log"
        notok "$tool $*" "$races reports, the first: $(grep -m 1 -A 3 'WARNING: ThreadSanitizer' "$LOGS/$n.log" | tr '\n' ' ') (log: $LOGS/$n.log)"
    elif [ "$status" -ne "$want" ]; then
        notok "$tool $*" "status $status, want $want: $(head -n 1 "$TMP/err")"
    else
        ok "$tool $*: status $status, no report"
    fi
}
for j in 2 3; do
    ts 0 pedecomp -j $j f32.h5
    ts 0 pedecomp -j $j --bins 0 big.h5
    ts 0 pedecomp -j $j -t summary f16.h5 short.h5
    ts 0 pedecomp -j $j -t spectrum spectral.h5
    ts 1 pedecomp -j $j bad-k-inf.h5
    ts 1 pedecomp -j $j bad-q-nan.h5
    ts 0 peanalyze -j $j -t heads f32.h5 short.h5
    ts 0 peanalyze -j $j -t layers attn.h5
    ts 0 peanalyze -j $j -t profile attn-softcap.h5
    ts 0 peanalyze -j $j -t whatif --pe pi:4 --pe yarn:4 attn.h5
    ts 0 peanalyze -j $j -t loss truth.h5 truth-pi.h5
    ts 3 peanalyze -j $j -q -t heads --fail-on ood attn.h5
    ts 1 peanalyze -j $j -t heads bad-krot-nan.h5
    ts 0 peentropy -j $j f32.h5
    ts 0 peentropy -j $j -t bands ent-gqa.h5 ent-gqa2.h5
    ts 0 peentropy -j $j -t select --mask "$TMP/mask.json" ent-gqa.h5
    ts 1 peentropy -j $j bad-k-inf.h5
done
finish
