#!/bin/sh
# The bad-input corpus and command-line abuse, for all three tools (issue 7).
#
#   tests/cli-corpus.sh BUILD_DIR        (run by tests/run.sh)
#
# 1. Every corpus file (mkfixtures' bad-*.h5, one per refusal of the qkdump
#    spec, and mkfix_corpus' truncations, wrong kinds, NaN in k_rot, a
#    directory; an unreadable file made here) gets its pinned status and the
#    exact first words of its one-line message from every tool; the reader's
#    messages are shared, so one table serves the three tools.  Fuzzer finds
#    in tests/corpus/ (if any) must be refused the same way, never by a signal.
# 2. Legal but unusual files (T = 1, head_dim 2, rotary_dim 0, one key head,
#    a zero frequency) give status 0 and the numbers of their closed forms.
# 3. Command-line abuse: status 2 and one line that names the option.
# 4. Output failures: /dev/full, a pipe closed early, -o for a run that fails
#    midway or is killed.
. tests/lib.sh
TOOLS="pedecomp peanalyze peentropy"

# targs TOOL: the table each tool reads a corpus file with (peanalyze: the
# heads table, which also needs the training length).
targs() { [ "$1" = peanalyze ] && echo "-t heads"; }

# near DESC GOT WANT TOL: |GOT - WANT| <= TOL.
near() {
    if awk -v g="$2" -v w="$3" -v t="$4" 'BEGIN { d = g - w; if (d < 0) d = -d; exit !(g != "" && d <= t) }'; then
        ok "$1"
    else
        notok "$1" "got '$2', want $3 (tol $4)"
    fi
}

# col FILE NAME [AWK-CONDITION]: column NAME of the rows of a tsv table
# (optionally only rows where the condition holds), one per line.
col() {
    awk -F'\t' -v c="$2" '/^#/ { next } !hdr { for (i = 1; i <= NF; i++) ix[$i] = i; hdr = 1; next } '"${3:-1}"' { print $(ix[c]) }' "$1"
}

# mentions DESC WORD...: after run, stderr is one line holding every WORD.
mentions() {
    desc=$1
    shift
    missing=""
    for w in "$@"; do grep -qF -- "$w" "$TMP/err" || missing="$missing '$w'"; done
    if [ "$(wc -l <"$TMP/err")" -ne 1 ]; then
        notok "$desc" "stderr has $(wc -l <"$TMP/err") lines, want one"
    elif [ -n "$missing" ]; then
        notok "$desc" "'$(head -n 1 "$TMP/err")' does not name$missing"
    else
        ok "$desc"
    fi
}

# ============================================================ 1. the corpus
# FILE|first words of the message after "prog: FILE: "|late (refused while
# reading heads, after the table may have begun; else stdout must be empty).
cat >"$TMP/refusals" <<'EOF'
bad-text.h5|not an HDF5 file|
bad-empty.h5|not an HDF5 file (empty)|
bad-dir.h5|is a directory, not an HDF5 file|
bad-truncated.h5|not a readable HDF5 file (truncated or damaged?)|
bad-cut-sig.h5|not a readable HDF5 file (truncated or damaged?)|
bad-cut-super.h5|not a readable HDF5 file (truncated or damaged?)|
bad-cut-10.h5|not a readable HDF5 file (truncated or damaged?)|
bad-cut-25.h5|not a readable HDF5 file (truncated or damaged?)|
bad-cut-50.h5|not a readable HDF5 file (truncated or damaged?)|
bad-cut-90.h5|not a readable HDF5 file (truncated or damaged?)|
bad-no-format.h5|format: missing required attribute (not a qkdump file)|
bad-format.h5|format: is 'npz', not 'qkdump'|
bad-format-int.h5|format: wrong kind: must be a string|
bad-version.h5|format_version: is 2; this reader knows version 1|
bad-version-str.h5|format_version: wrong kind: must be an integer|
bad-no-heads.h5|n_heads: missing required attribute|
bad-no-kv.h5|n_kv_heads: missing required attribute|
bad-no-dim.h5|head_dim: missing required attribute|
bad-heads-str.h5|n_heads: wrong kind: must be an integer|
bad-dim-float.h5|head_dim: wrong kind: must be an integer|
bad-trainlen-str.h5|train_len: wrong kind: must be an integer|
bad-theta-str.h5|rope_theta: wrong kind: must be a number|
bad-pairing-int.h5|rope_pairing: wrong kind: must be a string|
bad-model-float.h5|model: wrong kind: must be a string|
bad-heads-zero.h5|n_heads: must be positive (got 0)|
bad-kv-neg.h5|n_kv_heads: must be positive (got -2)|
bad-dim-zero.h5|head_dim: must be positive (got 0)|
bad-kv-divide.h5|n_kv_heads: 3 does not divide n_heads 4|
bad-rotary-odd.h5|rotary_dim: must be even and within [0, head_dim 8] (got 5)|
bad-rotary-neg.h5|rotary_dim: must be even and within [0, head_dim 8] (got -2)|
bad-rotary-big.h5|rotary_dim: must be even and within [0, head_dim 8] (got 10)|
bad-pairing.h5|rope_pairing: is 'zigzag', must be 'half' or 'interleaved'|
bad-no-pairing.h5|rope_pairing: missing (required when rotary_dim > 0; or give --pairing)|
bad-no-layers.h5|/layers: missing (no layers)|
bad-empty-layers.h5|/layers: holds no layer groups (no layers)|
bad-no-k.h5|/layers/000: needs q and k, or q_rot and k_rot|
bad-q-rank.h5|/layers/000/q: must have 3 dimensions [heads, T, head_dim], has 2|
bad-q-shape.h5|/layers/000/q: shape [4, 40, 10], expected [4, T, 8]|
bad-k-heads.h5|/layers/000/k: shape [4, 40, 8], expected [2, 40, 8]|
bad-q-int.h5|/layers/000/q: wrong kind: must hold floating-point values|
bad-T-mismatch.h5|/layers/002/q: shape [4, 39, 8], expected [4, 40, 8]|
bad-T-zero.h5|/layers/000/q: T is 0 (no tokens)|
bad-positions-order.h5|/tokens/positions: not strictly increasing at token 20 (19 after 19)|
bad-positions-len.h5|/tokens/positions: has 39 values, expected T = 40|
bad-positions-float.h5|/tokens/positions: wrong kind: must be integers|
bad-ids-len.h5|/tokens/ids: has 39 values, expected T = 40|
bad-ids-float.h5|/tokens/ids: wrong kind: must be integers|
bad-freq-len.h5|/rope/inv_freq: has 2 values, expected rotary_dim/2 = 3|
bad-freq-neg.h5|/rope/inv_freq: value 1 is negative (-0.1)|
bad-freq-nan.h5|/rope/inv_freq: value 1 is not finite|
bad-layer-freq-inf.h5|/layers/002/inv_freq: value 1 is not finite|
bad-huge.h5|shape: one head of T 34359738368 x head_dim 8 needs 4.0 TiB|
bad-lzf.h5|/layers/000/q: compressed with h5py's lzf filter, which petools cannot read|
bad-dup-index.h5|/layers/002: index 0 repeats /layers/000|
bad-q-nan.h5|layer 0: q head 1 token 5 dim 3: value is NaN|late
bad-k-inf.h5|layer 0: k head 1 token 5 dim 3: value is infinite|late
bad-krot-nan.h5|layer 0: k_rot head 1 token 5 dim 3: value is NaN|late
bad-nll-len.h5|/tokens/nll: has 39 values, expected T = 40|
bad-nll-int.h5|/tokens/nll: wrong kind: must be floats (nats)|
bad-nll-inf.h5|/tokens/nll: token 7: infinite value|
bad-control-len.h5|/tokens/nll_control: has 41 values, expected T = 40|
bad-control-attr.h5|/tokens/nll_control: control: 'window:16' is not window:W:S (W >= 1, S >= 0)|
bad-control-noattr.h5|/tokens/nll_control: control: missing (the control pass's window:W:S)|
EOF

# Every bad-* file the generators wrote is pinned above.
for f in bad-*; do
    if grep -q "^$f|" "$TMP/refusals"; then ok "corpus: $f has a pinned message"; else notok "corpus: $f has a pinned message" "add it to the table in tests/cli-corpus.sh"; fi
done

for tool in $TOOLS; do
    while IFS='|' read -r file tail late; do
        [ -n "$file" ] || continue
        # shellcheck disable=SC2046
        expect 1 "$tool: $file: $tail" "$tool refuses $file" "$BUILD/$tool" $(targs "$tool") "$file"
        if [ -z "$late" ] && [ -s "$TMP/out" ]; then notok "$tool: $file: nothing on stdout" "$(head -n 1 "$TMP/out")"; fi
    done <"$TMP/refusals"
done
# The reader checks every file before any is used: a bad second file of a
# pool gets the same message.
while IFS='|' read -r file tail late; do
    [ -n "$file" ] || continue
    expect 1 "pedecomp: $file: $tail" "pedecomp refuses $file as the second file of a pool" "$BUILD/pedecomp" f32.h5 "$file"
done <"$TMP/refusals"
# Values found bad while heads are read: the same message with two threads,
# where a key head is read on one thread while its query head is read on
# the other (pedecomp) or heads are read on both at once.
for tool in $TOOLS; do
    while IFS='|' read -r file tail late; do
        [ -n "$late" ] || continue
        # shellcheck disable=SC2046
        expect 1 "$tool: $file: $tail" "$tool -j 2 refuses $file" "$BUILD/$tool" -j 2 $(targs "$tool") "$file"
    done <"$TMP/refusals"
done

# A file without read permission (made here: nothing in the build is unreadable).
cp f32.h5 "$TMP/unreadable.h5"
chmod 000 "$TMP/unreadable.h5"
# Root reads anything: as root the tools run as nobody (setpriv), when the
# build is reachable for nobody.
AS=""
if [ -r "$TMP/unreadable.h5" ] && command -v setpriv >/dev/null 2>&1; then
    chmod o+x "$TMP"
    AS="setpriv --reuid=65534 --regid=65534 --clear-groups"
    $AS "$BUILD/pedecomp" --version >/dev/null 2>&1 || AS=""
fi
if [ -r "$TMP/unreadable.h5" ] && [ -z "$AS" ]; then
    echo "skip - an unreadable file, all three tools: running as root (uid $(id -u)) without setpriv, where permissions do not stop reads"
else
    for tool in $TOOLS; do
        # shellcheck disable=SC2046,SC2086
        expect 1 "$tool: $TMP/unreadable.h5: cannot open: Permission denied" "$tool refuses a file without read permission${AS:+ (as nobody)}" \
            $AS "$BUILD/$tool" $(targs "$tool") "$TMP/unreadable.h5"
    done
fi
for tool in $TOOLS; do
    expect 1 "$tool: no-such.h5: cannot open: No such file or directory" "$tool refuses a missing file" "$BUILD/$tool" no-such.h5
done

# Fuzzer finds (tests/corpus/, added after each fuzzing run): refused with
# status 1 and one line naming the file, never a signal or a hang.  They make
# libhdf5 itself read out of bounds, crash, loop or leak (tests/corpus/README).
# Built with AddressSanitizer, the tools cannot stop ASan from reporting such
# a fault inside libhdf5 before the crash guard sees it: there the check is
# that the report's first frame outside the sanitizer runtime is in libhdf5,
# and leaks that libhdf5 allocated are suppressed (tests/lsan.supp).
CORPUS=$TOP/tests/corpus
TIMEOUT=""
command -v timeout >/dev/null 2>&1 && TIMEOUT="timeout 120"
ASAN_BUILD=0
grep -q 'fsanitize=[a-z,]*address' "$BUILD/flags" 2>/dev/null && ASAN_BUILD=1
# in_hdf5: the sanitizer report in $TMP/err faults inside libhdf5.
in_hdf5() {
    awk '/^ *#[0-9]+ 0x/ && !/libasan|libubsan|libsanitizer|interceptor|asan_|__sanitizer/ { found = 1; exit !/libhdf5/ } END { if (!found) exit 1 }' "$TMP/err" &&
        grep -q '^==[0-9]*==ERROR: AddressSanitizer' "$TMP/err"
}
if [ -n "${PE_NO_FUZZ_FINDS:-}" ]; then
    echo "skip - fuzzer finds: $PE_NO_FUZZ_FINDS"
elif [ -d "$CORPUS" ] && [ -n "$(ls "$CORPUS"/*.h5 2>/dev/null)" ]; then
    for f in "$CORPUS"/*.h5; do
        [ -f "$f" ] || continue
        n=$(basename "$f")
        for tool in $TOOLS; do
            # shellcheck disable=SC2046,SC2086
            run env PE_HDF5_TIMEOUT=2 LSAN_OPTIONS="suppressions=$TOP/tests/lsan.supp:print_suppressions=0${LSAN_OPTIONS:+:$LSAN_OPTIONS}" \
                $TIMEOUT "$BUILD/$tool" $(targs "$tool") "$f"
            first=$(head -n 1 "$TMP/err")
            if [ "$ASAN_BUILD" = 1 ] && [ "$status" -eq 1 ] && [ "$(wc -l <"$TMP/err")" -gt 1 ] && in_hdf5; then
                ok "$tool refuses tests/corpus/$n (ASan: $(grep -m 1 '^==[0-9]*==ERROR' "$TMP/err" | sed 's/^==[0-9]*==ERROR: //; s/ on .*//; s/: memory ranges.*//') inside libhdf5)"
            elif [ "$status" -eq 124 ]; then
                notok "$tool refuses tests/corpus/$n" "still running after 120 s (a hang)"
            elif [ "$status" -gt 128 ]; then
                notok "$tool refuses tests/corpus/$n" "killed by signal $((status - 128)); stderr: $first"
            elif [ "$status" -ne 1 ]; then
                notok "$tool refuses tests/corpus/$n" "status $status, want 1; stderr: $first"
            elif [ "$(wc -l <"$TMP/err")" -ne 1 ]; then
                notok "$tool refuses tests/corpus/$n" "stderr has $(wc -l <"$TMP/err") lines, want one: $first"
            elif [ "${first#"$tool: $f: "}" = "$first" ]; then
                notok "$tool refuses tests/corpus/$n" "'$first' does not start with '$tool: $f: '"
            else
                ok "$tool refuses tests/corpus/$n ($(echo "${first#"$tool: $f: "}" | cut -c 1-60))"
            fi
        done
    done
else
    echo "skip - fuzzer finds: tests/corpus/ does not exist or is empty"
fi

# ======================================== 2. legal but unusual: status 0, closed forms
# Every table of every tool reads them with status 0 and nothing on stderr.
for f in t1.h5 odd-t1.h5 odd-d2.h5 norope.h5 odd-kv1.h5 odd-freq0.h5; do
    while IFS= read -r cmd; do
        [ -n "$cmd" ] || continue
        # shellcheck disable=SC2086
        expect 0 "" "$f: $cmd" "$BUILD"/$cmd -f tsv "$f"
        if ! data "$TMP/out" | head -n 1 | grep -q '	'; then notok "$f: $cmd writes a header line" "$(head -n 1 "$TMP/out")"; fi
    done <<'EOF'
pedecomp
pedecomp --method direct
pedecomp -t summary
pedecomp -t spectrum
pedecomp -t usage
pedecomp -t dims
pedecomp -t freqs
pedecomp --check
peanalyze
peanalyze -t heads
peanalyze -t layers
peanalyze -t heatmap
peentropy
peentropy --stage all
peentropy -t bands
peentropy -t select
EOF
done

# --- T = 1 (odd-t1.h5: pair 0 and pair 1 give 0.078125 (h + 1), the total
# twice that, at distance 0; no pass dims).
run "$BUILD/pedecomp" -f tsv --digits 17 odd-t1.h5
got=$(data "$TMP/out" | awk -F'\t' 'NR > 1 { printf "%s:%s:%s-%s:%s:%s ", $2, $4, $7, $8, $9, $10 }')
if [ "$got" = "0:0:0-0:1:0.078125 0:1:0-0:1:0.078125 0:total:0-0:1:0.15625 1:0:0-0:1:0.15625 1:1:0-0:1:0.15625 1:total:0-0:1:0.3125 " ]; then
    ok "T = 1: pedecomp: one pair at distance 0 per component, mean logit 0.078125 (h + 1) per pair"
else
    notok "T = 1: pedecomp profile" "$got"
fi
run "$BUILD/pedecomp" -f tsv --digits 17 t1.h5
bad=$(data "$TMP/out" | awk -F'\t' 'NR > 1 { if ($7 != 0 || $8 != 0 || $9 != 1 || $3 != int($2 / 2)) bad++; k = $1 " " $2
        if ($4 == "total") tot[k] = $10; else sum[k] += $10; n[k]++ }
    END { for (k in n) { d = sum[k] - tot[k]; if (d < 0) d = -d; if (n[k] != 5 || d > 1e-12) bad++; m++ } print m == 8 ? bad + 0 : "heads " m }')
if [ "$bad" = 0 ]; then ok "T = 1: t1.h5: 8 heads of 5 rows at distance 0, pairs + pass = total"; else notok "T = 1: t1.h5 profile" "$bad"; fi
run "$BUILD/pedecomp" -t summary -f tsv --digits 17 odd-t1.h5
got=$(data "$TMP/out" | awk -F'\t' 'NR > 1 { printf "%s %s %s %s %s|", $9, ($10 == $11), $12, $13, $14 }')
if [ "$got" = "0.5 1 0 0 nan|0.5 1 0 0 nan|0.5 1 0 0 nan|0.5 1 0 0 nan|" ]; then
    ok "T = 1: summary: equal shares, lo_in = hi_in, no OOD (no distance reaches L), du nan"
else
    notok "T = 1: summary" "$got"
fi
run "$BUILD/peanalyze" -f tsv --digits 17 odd-t1.h5
got=$(data "$TMP/out" | awk -F'\t' 'NR > 1 { printf "%s %s-%s %s %s %s %s %s|", $2, $4, $5, $6, $7, $8, $9, $10 }')
if [ "$got" = "0 0-0 1 0.15625 1 1 1|1 0-0 1 0.3125 1 1 1|" ]; then
    ok "T = 1: peanalyze profile: one pair, the total logit, probability 1"
else
    notok "T = 1: peanalyze profile" "$got"
fi
run "$BUILD/peanalyze" -t heads -f tsv odd-t1.h5
got=$(data "$TMP/out" | awk -F'\t' 'NR > 1 { printf "%s %s %s %s %s %s %s|", $4, $5, $6, $7, $8, $11, $15 }')
if [ "$got" = "1 0 1 nan nan none 0|1 0 1 nan nan none 0|" ]; then
    ok "T = 1: peanalyze heads: one in-train row, sink mass 1, entropy nan (row 0 is left out), not ood"
else
    notok "T = 1: peanalyze heads" "$got"
fi
run "$BUILD/peanalyze" -t heatmap -f tsv odd-t1.h5
if [ "$(data "$TMP/out" | awk -F'\t' 'NR > 1' | tr '\t' ' ')" = "0 0 0 1" ]; then ok "T = 1: heat map: one cell, probability 1"; else notok "T = 1: heat map" "$(data "$TMP/out" | tr '\n' ' ')"; fi
run "$BUILD/peentropy" -f tsv --digits 17 odd-t1.h5
bad=$(data "$TMP/out" | awk -F'\t' 'function a(x) { return x < 0 ? -x : x }
    NR > 1 { n++; if (a($8) > 1e-12 || a($10 - 1) > 1e-12 || a($11 - 1) > 1e-12 || a($12) > 1e-12 || a($13 - 1) > 1e-12) bad++ }
    END { print n == 3 ? bad + 0 : "rows " n }')
if [ "$bad" = 0 ]; then ok "T = 1: peentropy: rank one, S_r = 0, rho = lambda_1 = exp(S_D) = 1 (q 0, q 1, k 0)"; else notok "T = 1: peentropy" "$bad"; fi
expect 1 "peentropy: odd-t1.h5: layer 0: q head 0: stage post: token 0:" "T = 1: --prep uncomp is refused as documented (status 1, names file, layer, head, stage, token)" \
    "$BUILD/peentropy" --prep uncomp odd-t1.h5

# --- head_dim 2 (odd-d2.h5: every logit sqrt(2) cos(m - n), T 64, L 16).
run "$BUILD/pedecomp" -f tsv --digits 17 --bins 0 odd-d2.h5
bad=$(data "$TMP/out" | awk -F'\t' 'NR > 1 { n++; w = sqrt(2) * cos($7); d = $10 - w; if (d < 0) d = -d
        if ($7 != $8 || $9 != 64 - $7 || d > 1e-12 || ($4 != 0 && $4 != "total")) bad++ }
    END { print n == 256 ? bad + 0 : "rows " n }')
if [ "$bad" = 0 ]; then ok "head_dim 2: pedecomp: one pair (and the total), mean logit sqrt(2) cos(delta) at all 64 distances"; else notok "head_dim 2: pedecomp profile" "$bad"; fi
run "$BUILD/peanalyze" -f tsv --digits 17 --bins 0 odd-d2.h5
# Row m has keys at distances 0..m, p(m, m - delta) = e^(c cos delta) / Z_m with
# Z_m = sum_{j <= m} e^(c cos j), c = sqrt 2.
bad=$(data "$TMP/out" | awk -F'\t' 'function a(x) { return x < 0 ? -x : x }
    BEGIN { c = sqrt(2); z = 0; for (m = 0; m < 64; m++) { z += exp(c * cos(m)); Z[m] = z } }
    NR > 1 { n++; dl = $4; s1 = 0; s2 = 0; for (m = dl; m < 64; m++) { s1 += 1 / Z[m]; s2 += (m + 1) / Z[m] }
        e = exp(c * cos(dl)); cnt = 64 - dl
        if ($6 != cnt || a($7 - c * cos(dl)) > 1e-12 || a($8 - e * s1 / cnt) > 1e-12 || a($9 - e * s2 / cnt) > 1e-12 || a($10 - e / Z[63]) > 1e-12) bad++ }
    END { print n == 128 ? bad + 0 : "rows " n }')
if [ "$bad" = 0 ]; then ok "head_dim 2: peanalyze profile: mean logit, mean p, mean (m+1) p and last row by their closed forms"; else notok "head_dim 2: peanalyze profile" "$bad"; fi
run "$BUILD/peanalyze" -t heads -f tsv --digits 17 odd-d2.h5
ref=$(awk 'BEGIN { c = sqrt(2); z = 0
    for (m = 0; m < 64; m++) { z += exp(c * cos(m)); Z[m] = z }
    for (m = 0; m < 64; m++) { s = exp(c * cos(m)) / Z[m]; h = 0
        for (j = 0; j <= m; j++) { p = exp(c * cos(j)) / Z[m]; h -= p * log(p) }
        if (m < 16) { si += s; if (m > 0) { ei += h / log(m + 1); ni++ } } else { sb += s; eb += h / log(m + 1) } }
    printf "%.17g %.17g %.17g %.17g", si / 16, sb / 48, ei / ni, eb / 48 }')
# shellcheck disable=SC2086
set -- $ref
near "head_dim 2: sink_in = mean over rows m < 16 of e^(c cos m) / Z_m" "$(col "$TMP/out" sink_in '$2 == 0')" "$1" 1e-12
near "head_dim 2: sink_beyond, the same over rows 16..63" "$(col "$TMP/out" sink_beyond '$2 == 1')" "$2" 1e-12
near "head_dim 2: entropy_in, normalised row entropy over rows 1..15" "$(col "$TMP/out" entropy_in '$2 == 0')" "$3" 1e-12
near "head_dim 2: entropy_beyond over rows 16..63" "$(col "$TMP/out" entropy_beyond '$2 == 1')" "$4" 1e-12
# Rotated, token m is (a cos m, a sin m): lambda_1 = (1 + |sin 64| / (64 sin 1)) / 2.
run "$BUILD/peentropy" -f tsv --digits 17 --stage all odd-d2.h5
l1=$(awk 'BEGIN { s = sin(64) / (64 * sin(1)); if (s < 0) s = -s; printf "%.17g", (1 + s) / 2 }')
S=$(awk -v l="$l1" 'BEGIN { printf "%.17g", -l * log(l) - (1 - l) * log(1 - l) }')
bad=$(data "$TMP/out" | awk -F'\t' -v l1="$l1" -v S="$S" 'function a(x) { return x < 0 ? -x : x }
    NR > 1 { n++; if ($7 != 2) bad++
        if ($5 == "post" && (a($8 - S) > 1e-12 || a($9 - S / log(2)) > 1e-12 || a($10 - exp(S)) > 1e-12 || a($11 - l1) > 1e-12 || a($12 - S) > 1e-12)) bad++
        if ($5 == "pre" && (a($8) > 1e-12 || a($11 - 1) > 1e-12 || a($13 - 1) > 1e-12)) bad++ }
    END { print n == 6 ? bad + 0 : "rows " n }')
if [ "$bad" = 0 ]; then ok "head_dim 2: peentropy: pre rank one (S 0), post lambda_1 = (1 + |sin 64| / (64 sin 1)) / 2 = $l1"; else notok "head_dim 2: peentropy" "$bad"; fi
run "$BUILD/peentropy" -t bands -f tsv --digits 17 odd-d2.h5
near "head_dim 2: the one band's mu1 is the head's lambda_1" "$(col "$TMP/out" mu1 '$2 == 0 && $4 == "q"')" "$l1" 1e-12
run "$BUILD/pedecomp" -t freqs -f tsv odd-d2.h5
if [ "$(data "$TMP/out" | awk -F'\t' 'NR > 1 { print $1, $2, $6 }')" = "0 1 hf" ]; then ok "head_dim 2: freqs: one pair, theta 1, hf"; else notok "head_dim 2: freqs" "$(data "$TMP/out" | tr '\n' ' ')"; fi

# --- rotary_dim 0 (norope.h5): nothing rotates.
run "$BUILD/pedecomp" -f tsv --digits 17 --bins 0 norope.h5
bad=$(data "$TMP/out" | awk -F'\t' 'NR > 1 { k = $1 " " $2 " " $7; if ($4 == "pass") p[k] = $10; else if ($4 == "total") t[k] = $10; else bad++ }
    END { for (k in t) { n++; if (!(k in p) || p[k] != t[k]) bad++ } print n == 320 ? bad + 0 : "rows " n }')
if [ "$bad" = 0 ]; then ok "rotary_dim 0: pedecomp: pass and total rows only, equal at every distance"; else notok "rotary_dim 0: pedecomp profile" "$bad"; fi
run "$BUILD/peentropy" -f tsv --digits 17 --stage all norope.h5
if [ "$(col "$TMP/out" score '$5 == "pre"')" = "$(col "$TMP/out" score '$5 == "post"')" ] && [ "$(col "$TMP/out" score '$5 == "pre"' | wc -l)" -eq 12 ]; then
    ok "rotary_dim 0: peentropy: post equals pre for all 12 heads"
else
    notok "rotary_dim 0: peentropy: post equals pre"
fi
for tool in $TOOLS; do
    run "$BUILD/$tool" -f tsv norope.h5
    got=$(grep '^# pairing:' "$TMP/out")
    if [ "$got" = "# pairing: none" ]; then ok "rotary_dim 0: $tool says pairing: none (the file has no rope_pairing)"; else notok "rotary_dim 0: $tool says pairing: none" "'$got'"; fi
done
run "$BUILD/pedecomp" -t freqs --scale pi:2 norope.h5
if { [ "$status" -eq 0 ] && [ ! -s "$TMP/err" ] && [ "$(data "$TMP/out" | awk -F'\t' 'NR > 1' | wc -l)" -eq 0 ]; } ||
    { [ "$status" -eq 2 ] && [ "$(wc -l <"$TMP/err")" -eq 1 ] && grep -q -- '--scale' "$TMP/err" && grep -q 'norope\.h5' "$TMP/err"; }; then
    ok "rotary_dim 0: -t freqs --scale: an empty table, or status 2 naming --scale and the file"
else
    notok "rotary_dim 0: -t freqs --scale" "status $status: $(head -n 1 "$TMP/err")"
fi
run "$BUILD/pedecomp" -t freqs --rotary-dim 0 -L 16 --scale yarn:2
if { [ "$status" -eq 0 ] && [ ! -s "$TMP/err" ]; } || { [ "$status" -eq 2 ] && grep -q -- '--scale\|--rotary-dim' "$TMP/err"; }; then
    ok "--rotary-dim 0 --scale: an empty table, or a usage error naming the option"
else
    notok "--rotary-dim 0 --scale" "status $status: $(head -n 1 "$TMP/err")"
fi
run "$BUILD/pedecomp" -t freqs --scale ntk:2 odd-d2.h5
if [ "$status" -eq 2 ]; then mentions "head_dim 2: -t freqs --scale ntk: status 2, the message names --scale and the file" --scale odd-d2.h5; else notok "head_dim 2: -t freqs --scale ntk: status 2" "status $status"; fi

# --- one key head (odd-kv1.h5 holds the data of odd-kv4.h5, whose four key
# heads are equal): every query head uses key head 0, and the numbers are
# those of the four-key-head file.
for cmd in "pedecomp --bins 0" "pedecomp -t summary" "peanalyze --bins 0" "peanalyze -t heads" "pedecomp -t usage"; do
    # shellcheck disable=SC2086
    run "$BUILD"/$cmd -f tsv --digits 17 odd-kv1.h5
    kvs=$(col "$TMP/out" kv_head | sort -u | tr '\n' ' ')
    data "$TMP/out" | cut -f 1,2,4- >"$TMP/kv1"
    # shellcheck disable=SC2086
    run "$BUILD"/$cmd -f tsv --digits 17 odd-kv4.h5
    # (usage has a key row per key head: the 4-key-head file's key head 0)
    data "$TMP/out" | awk -F'\t' -v u="${cmd#*-t }" 'u != "usage" || NR == 1 || $4 == "q" || $2 == 0' | cut -f 1,2,4- >"$TMP/kv4"
    if [ "$kvs" = "0 " ] && [ "$(wc -l <"$TMP/kv1")" -gt 1 ] && cmp -s "$TMP/kv1" "$TMP/kv4"; then
        ok "n_kv_heads 1: $cmd: kv_head 0 throughout, the numbers of the same keys stored 4 times"
    else
        notok "n_kv_heads 1: $cmd: kv_head 0 throughout, the numbers of the 4-key-head file" "kv_head: $kvs; $(diff "$TMP/kv1" "$TMP/kv4" | head -n 3 | tr '\n' ' ')"
    fi
done
run "$BUILD/peentropy" -f tsv --digits 17 odd-kv1.h5
data "$TMP/out" | awk -F'\t' 'NR > 1 && $4 == "q"' | cut -f 1,2,4- >"$TMP/q1"
data "$TMP/out" | awk -F'\t' 'NR > 1 && $4 == "k"' >"$TMP/k1"
run "$BUILD/peentropy" -f tsv --digits 17 odd-kv4.h5
data "$TMP/out" | awk -F'\t' 'NR > 1 && $4 == "q"' | cut -f 1,2,4- >"$TMP/q4"
data "$TMP/out" | awk -F'\t' 'NR > 1 && $4 == "k"' | cut -f 1,4- | sort -u >"$TMP/k4"
if cmp -s "$TMP/q1" "$TMP/q4" && [ "$(wc -l <"$TMP/q1")" -eq 8 ]; then ok "n_kv_heads 1: peentropy: the 8 query rows as with 4 key heads"; else notok "n_kv_heads 1: peentropy query rows"; fi
got=$(awk -F'\t' '{ printf "%s:%s:%s ", $1, $2, $3 }' "$TMP/k1")
if [ "$got" = "0:0:0 2:0:0 " ] && [ "$(cut -f 1,4- "$TMP/k1")" = "$(cat "$TMP/k4")" ]; then
    ok "n_kv_heads 1: peentropy: one key row per layer (head 0), equal to each of the 4 stored copies"
else
    notok "n_kv_heads 1: peentropy key rows" "$got; $(wc -l <"$TMP/k4") distinct rows among the copies"
fi
if command -v jq >/dev/null 2>&1; then
    run "$BUILD/peentropy" -t select --tensor k -n 1 --mask - odd-kv1.h5
    if jq -e '.heads[0].tensor == "k" and .heads[0].kv_head == 0 and .heads[0].query_heads == [0, 1, 2, 3]' "$TMP/out" >/dev/null; then
        ok "n_kv_heads 1: the mask of the key head lists query heads 0-3"
    else
        notok "n_kv_heads 1: the mask of the key head lists query heads 0-3" "$(tr '\n' ' ' <"$TMP/out" | cut -c 1-200)"
    fi
else
    echo "skip - n_kv_heads 1 mask: jq is not installed"
fi

# --- inv_freq with a zero (odd-freq0.h5: 1, 0.1, 0; every token the same
# vector): pair 2 is class nope and its mean logit is the same at every distance.
run "$BUILD/pedecomp" -t freqs -f tsv odd-freq0.h5
if [ "$(data "$TMP/out" | awk -F'\t' '$1 == 2 { print $2, $3, $5, $6 }')" = "0 nan 0 nope" ]; then
    ok "theta 0: freqs: pair 2 has wavelength nan (never inf), max angle 0, class nope"
else
    notok "theta 0: freqs" "$(data "$TMP/out" | tr '\n' ' ')"
fi
run "$BUILD/pedecomp" -f tsv --digits 17 --bins 0 odd-freq0.h5
bad=$(data "$TMP/out" | awk -F'\t' 'NR > 1 && $4 == 2 { k = $1 " " $2; if ($6 != "nope") bad++
        if (!(k in lo) || $10 < lo[k]) lo[k] = $10; if (!(k in hi) || $10 > hi[k]) hi[k] = $10; r[k]++ }
    END { for (k in r) { n++; s = lo[k] < 0 ? -lo[k] : lo[k]; if (r[k] != 40 || hi[k] - lo[k] > 1e-12 * (s > 1 ? s : 1)) bad++ } print n == 8 ? bad + 0 : "heads " n }')
if [ "$bad" = 0 ]; then ok "theta 0: pedecomp: pair 2 (nope) has the same mean logit at all 40 distances, in all 8 heads"; else notok "theta 0: pair 2 is flat" "$bad"; fi
run "$BUILD/pedecomp" -t summary -f tsv --digits 17 --min-pairs 1 odd-freq0.h5
bad=$(data "$TMP/out" | awk -F'\t' 'NR > 1 && $4 == 2 { n++; d = $14 < 0 ? -$14 : $14; if ($8 != "nope" || $6 != "nan" || $13 != 0 || $12 > 0.01 || d > 1e-9) bad++ }
    END { print n == 8 ? bad + 0 : "rows " n }')
if [ "$bad" = 0 ]; then ok "theta 0: summary: nope, wavelength nan, no angle or value OOD, no part in the U (du 0)"; else notok "theta 0: summary" "$bad"; fi
run "$BUILD/peentropy" -t bands -f tsv --digits 17 odd-freq0.h5
bad=$(data "$TMP/out" | awk -F'\t' 'function a(x) { return x < 0 ? -x : x }
    NR > 1 && $6 == 2 { n++; if ($7 != 0 || $8 != "nope" || a($9 - 1) > 1e-12 || a($10) > 1e-12 || a($11) > 1e-12) bad++ }
    END { print n == 12 ? bad + 0 : "rows " n }')
if [ "$bad" = 0 ]; then ok "theta 0: bands: band 2 is nope and, unrotated constant data, rank one (mu 1 and 0, entropy 0)"; else notok "theta 0: bands" "$bad"; fi
if command -v jq >/dev/null 2>&1; then
    run "$BUILD/peentropy" -t select -n 2 --mask - odd-freq0.h5
    if jq -e '(.heads | length == 2) and all(.heads[]; .pairs == [1, 2] and .theta[1] == 0)' "$TMP/out" >/dev/null; then
        ok "theta 0: the mask holds pairs 1 and 2 (theta <= 2 pi / 16), with theta 0"
    else
        notok "theta 0: the mask holds pairs 1 and 2" "$(tr '\n' ' ' <"$TMP/out" | cut -c 1-200)"
    fi
else
    echo "skip - theta 0 mask: jq is not installed"
fi

# ======================================================= 3. command-line abuse
# Options every tool takes: ARGS|first words after "prog: ".
cat >"$TMP/abuse-common" <<'EOF'
-l 1x f32.h5|--layers: '1x' is not an integer
-l -1 f32.h5|--layers: -1 is out of range
-l 99999999999999999999 f32.h5|--layers: 99999999999999999999 is out of range
-l '' f32.h5|--layers: empty list
-l 1,,2 f32.h5|--layers: '1,,2' is not a list like 0,2-4
-l 0-99999999999 f32.h5|--layers: 99999999999 is out of range
-l 0-20000000 f32.h5|--layers: range 0-20000000 is too long
-l 3-1 f32.h5|--layers: range 3-1 runs backwards
-l 1 f32.h5|--layers: layer 1 is not in f32.h5
-l 0,7 f32.h5|--layers: layer 7 is not in f32.h5
--layers= f32.h5|--layers: empty list
-H 9 f32.h5|--heads: head 9 does not exist (the files have 4 query heads)
-H 0,4 f32.h5|--heads: head 4 does not exist
-H '' f32.h5|--heads: empty list
-H 0x1 f32.h5|--heads: '0x1' is not an integer
-H -3 f32.h5|--heads: -3 is out of range
-H 99999999999999999999 f32.h5|--heads: 99999999999999999999 is out of range
-L 12abc f32.h5|--train-len: '12abc' is not an integer
-L -5 f32.h5|--train-len: -5 is out of range
-L 0 f32.h5|--train-len: 0 is out of range
-L 99999999999999999999 f32.h5|--train-len: 99999999999999999999 is out of range
-L '' f32.h5|--train-len: '' is not an integer
-L ' 16' f32.h5|--train-len: ' 16' is not an integer
--digits 18 f32.h5|--digits: 18 is out of range [1, 17]
--digits 3.5 f32.h5|--digits: '3.5' is not an integer
-j 0 f32.h5|--jobs: 0 is out of range [1, 1024]
-j -2 f32.h5|--jobs: -2 is out of range [1, 1024]
-j 99999999999999999999 f32.h5|--jobs: 99999999999999999999 is out of range [1, 1024]
-j 2x f32.h5|--jobs: '2x' is not an integer
--max-memory 12Q f32.h5|--max-memory: '12Q' is not a byte count
--max-memory 1GB f32.h5|--max-memory: '1GB' is not a byte count
--max-memory -1 f32.h5|--max-memory: '-1' is not a byte count
--max-memory '' f32.h5|--max-memory: '' is not a byte count
--max-memory 0 f32.h5|--max-memory: '0' is not a usable byte count
--max-memory 1e400 f32.h5|--max-memory: '1e400' is not a usable byte count
--max-memory nan f32.h5|--max-memory: 'nan' is not a usable byte count
-f xml f32.h5|--format: unknown format 'xml'
--pairing zigzag f32.h5|--pairing: unknown value 'zigzag' (one of: half, interleaved)
-t nonsense f32.h5|--table: unknown value 'nonsense'
-t '' f32.h5|--table: unknown value ''
-o '' f32.h5|--output: empty file name
-o no/such/x.tsv f32.h5|--output: cannot create 'no/such/x.tsv': No such file or directory
-o . f32.h5|--output: '.' is a directory
-o /dev/full f32.h5|--output: '/dev/full' is not a regular file
--frobnicate f32.h5|unknown option --frobnicate
-Z f32.h5|unknown option -Z
f32.h5 --layers|option --layers needs an argument
f32.h5 -l|option -l needs an argument
f32.h5 -o|option -o needs an argument
f32.h5 --format|option --format needs an argument
f32.h5 --max-memory|option --max-memory needs an argument
f32.h5 --pe|option --pe needs an argument
--pe warp:2 f32.h5|--pe 'warp:2': unknown step 'warp:2' (accepted: rope, pi:S, ntk:S, dynamic:S[:T], yarn:S[:BETA_FAST:BETA_SLOW], llama3:S:LOW:HIGH:OLDLEN, prope:P, clip, logn, dope:MASK[:parts|all|gauss], joined with +)
--pe '' f32.h5|--pe: an empty spec (accepted: rope, pi:S
--pe 'pi:2+' f32.h5|--pe 'pi:2+': an empty step (accepted: rope
--pe ROPE f32.h5|--pe 'ROPE': unknown step 'ROPE'
--pe rope:2 f32.h5|--pe 'rope:2': unknown step 'rope:2'
--pe pi:x f32.h5|--pe 'pi:x': factor is not a number
--pe pi:0 f32.h5|--pe 'pi:0': factor must be > 0
--pe ntk:0.5 f32.h5|--pe 'ntk:0.5': factor must be >= 1
--pe yarn:4:1:32 f32.h5|--pe 'yarn:4:1:32': beta_fast (1) must be >= beta_slow (32)
--pe dynamic:4:0 f32.h5|--pe 'dynamic:4:0': target length T must be a positive integer
--pe llama3:8:4:1:8192 f32.h5|--pe 'llama3:8:4:1:8192': needs HIGH > LOW > 0
--pe prope:1.5 f32.h5|--pe 'prope:1.5': prope:P needs a fraction P from 0 to 1, got '1.5'
--pe prope: f32.h5|--pe 'prope:': prope:P needs a fraction P from 0 to 1, got ''
--pe 'prope: 0.5' f32.h5|--pe 'prope: 0.5': prope:P needs a fraction P from 0 to 1, got ' 0.5'
--pe clip:2 f32.h5|--pe 'clip:2': unknown step 'clip:2'
--pe dope: f32.h5|--pe 'dope:': dope needs the mask file: dope:MASK[:parts|all|gauss]
--pe dope::gauss f32.h5|--pe 'dope::gauss': dope needs the mask file: dope:MASK[:parts|all|gauss]
--pe 'clip+yarn:4' f32.h5|--pe 'clip+yarn:4': 'yarn:4' rebuilds the frequencies from the base, which would undo the steps before it: put it first
--pe 'pi:2+ntk:2' f32.h5|--pe 'pi:2+ntk:2': 'ntk:2' rebuilds the frequencies from the base
|no input file
EOF
# Each tool's own options.
cat >"$TMP/abuse-pedecomp" <<'EOF'
--bins 12x f32.h5|--bins: '12x' is not an integer
--bins -1 f32.h5|--bins: -1 is out of range
--bins 99999999999999999999 f32.h5|--bins: 99999999999999999999 is out of range
--bins 1099511627777 f32.h5|--bins: 1099511627777 is out of range
--bins '' f32.h5|--bins: '' is not an integer
--method slow f32.h5|--method: unknown value 'slow' (one of: fft, direct)
-t freqs --scale yarn:x f32.h5|--scale 'yarn:x': factor is not a number
-t summary --min-pairs 0 f32.h5|--min-pairs: 0 is out of range [1, 1099511627776]
-t summary --min-pairs x f32.h5|--min-pairs: 'x' is not an integer
-t summary --min-pairs 99999999999999999999 f32.h5|--min-pairs: 99999999999999999999 is out of range
--min-pairs 5 f32.h5|--min-pairs: only for -t summary
-t freqs --scale warp:2 f32.h5|--scale 'warp:2': unknown step 'warp:2' (accepted: rope, pi:S
--scale pi:2 f32.h5|--scale: only for -t freqs (see --pe)
-t freqs --scale pi:2 --pe pi:2 f32.h5|--scale is the old name of --pe: give one of them
--check --pe pi:2 f32.h5|--check: writes its own table; leave out -t, --scale and --pe
--pe pi:2 --pe pi:3 f32.h5|--pe: one spec per run for -t profile (peanalyze -t whatif compares several)
-t freqs --scale pi:-2 f32.h5|--scale 'pi:-2': factor must be > 0
-t freqs --scale pi:1e400 f32.h5|--scale 'pi:1e400': factor '1e400' is out of range
--hf-turns abc f32.h5|--hf-turns: 'abc' is not a number
--hf-turns -1 f32.h5|--hf-turns: -1 is out of range
--act-turns 1e400 f32.h5|--act-turns: '1e400' is not a finite number
--act-turns 2 f32.h5|--act-turns 2 is above --hf-turns 1
-t spectrum --spectrum-of -1 f32.h5|--spectrum-of: -1 is out of range
-t spectrum --spectrum-of 3 f32.h5|--spectrum-of: pair 3 does not exist (the files have 3 pairs)
-t spectrum --spectrum-of 99999999999999999999 f32.h5|--spectrum-of: 99999999999999999999 is out of range
-t freqs --rotary-dim 7 -L 8|--rotary-dim: must be even (got 7)
-t freqs --rotary-dim -2 -L 8|--rotary-dim: -2 is out of range
-t freqs --rope-theta 0 --rotary-dim 8 -L 8|--rope-theta: 0 is out of range
-t freqs --rotary-dim 8|-t freqs needs the training length: give --train-len
--check -l 1 f32.h5|--layers: layer 1 is not in f32.h5
--check -H 9 f32.h5|--heads: head 9 does not exist
f32.h5 --bins|option --bins needs an argument
f32.h5 -t|option -t needs an argument
EOF
cat >"$TMP/abuse-peanalyze" <<'EOF'
--bins 12x f32.h5|--bins: '12x' is not an integer
--bins -1 f32.h5|--bins: -1 is out of range
--bins 99999999999999999999 f32.h5|--bins: 99999999999999999999 is out of range
--rows 5x f32.h5|--rows: '5x' is not an integer
--rows -3 f32.h5|--rows: -3 is out of range
--rows 99999999999999999999 f32.h5|--rows: 99999999999999999999 is out of range
--sink-tokens 2x f32.h5|--sink-tokens: '2x' is not an integer
--sink-tokens 99999999999999999999 f32.h5|--sink-tokens: 99999999999999999999 is out of range
--margin 1e400 f32.h5|--margin: '1e400' is not a finite number
--margin -1 f32.h5|--margin: -1 is out of range
--u-threshold 0.5x f32.h5|--u-threshold: '0.5x' is not a number
-t heatmap --head 99 f32.h5|--head: head 99 does not exist (the files have 4 query heads)
-t heatmap --head -1 f32.h5|--head: -1 is out of range
-t heatmap --window 5:3 f32.h5|--window: 5:3 is empty (M0 must be below M1)
-t heatmap --window 0:99999999999999999999 f32.h5|--window: 99999999999999999999 is out of range
-t heatmap --window 0:100 f32.h5|--window: 0:100 is beyond the 40 tokens of f32.h5
-t heatmap --window : f32.h5|--window: '' is not an integer
-t heatmap --window 1x:5 f32.h5|--window: '1x' is not an integer
-t heatmap --pixels 0 f32.h5|--pixels: 0 is out of range
-t heatmap --pixels 99999999999999999999 f32.h5|--pixels: 99999999999999999999 is out of range
--block 0 f32.h5|--block: 0 is out of range
--block 1x f32.h5|--block: '1x' is not an integer
--fail-on x f32.h5|--fail-on: unknown value 'x' (one of: ood, ushape)
--fail-on '' f32.h5|--fail-on: empty
-t whatif --fail-on ood f32.h5|--fail-on: not for -t whatif
--unseen-threshold x f32.h5|--unseen-threshold: 'x' is not a number
--unseen-threshold -1 f32.h5|--unseen-threshold: -1 is out of range [0, 1]
--unseen-threshold 2 f32.h5|--unseen-threshold: 2 is out of range [0, 1]
--unseen-threshold nan f32.h5|--unseen-threshold: 'nan' is not a finite number
-t loss --pe pi:2 f32.h5|--pe: -t loss rotates each file with the spec its loss was recorded with
--pe pi:2 --pe pi:3 f32.h5|--pe: one spec per run for -t profile (peanalyze -t whatif compares several)
f32.h5 --rows|option --rows needs an argument
f32.h5 -t|option -t needs an argument
EOF
cat >"$TMP/abuse-peentropy" <<'EOF'
--rank 0 f32.h5|--rank: 0 is out of range
--rank 3x f32.h5|--rank: '3x' is not an integer
--rank 99999999999999999999 f32.h5|--rank: 99999999999999999999 is out of range
-t select --top -1 f32.h5|--top: -1 is out of range
-t select --top 0 f32.h5|--top: 0 is out of range
-t select --top 99999999999999999999 f32.h5|--top: 99999999999999999999 is out of range
--tensor x f32.h5|--tensor: unknown value 'x' (one of: q, k, both)
--stage x f32.h5|--stage: unknown value 'x' (one of: pre, post, ntk, all)
--prep x f32.h5|--prep: unknown value 'x' (one of: paper, uncomp)
--stage ntk --ntk-len 0 f32.h5|--ntk-len: 0 is out of range
--stage ntk --ntk-len 5x f32.h5|--ntk-len: '5x' is not an integer
--stage ntk --ntk-len 99999999999999999999 f32.h5|--ntk-len: 99999999999999999999 is out of range
--stage ntk --ntk-len 64 --ntk-factor 0.5 f32.h5|--ntk-factor: 0.5 is out of range
--stage ntk --ntk-len 64 --ntk-factor nan f32.h5|--ntk-factor: 'nan' is not a finite number
-t select --order x f32.h5|--order: unknown value 'x' (one of: asc, desc)
-t select --score x f32.h5|--score: unknown value 'x' (one of: s, norm, rho, full, lambda1, energy)
-t select --mask '' f32.h5|--mask: empty file name
-t select --mask no/such/m.json f32.h5|--mask: cannot create 'no/such/m.json': No such file or directory
-t select --mask . f32.h5|--mask: '.' is a directory
--mask m.json f32.h5|--mask: only for -t select
-t select --score rho -r 1 f32.h5|--score rho with r 1: rho_1 is 1 for every head, nothing to rank; give -r 2 or more
-t select --score Energy f32.h5|--score: unknown value 'Energy' (one of: s, norm, rho, full, lambda1, energy)
--pe pi:2 --pe pi:3 f32.h5|--pe: one spec per run for -t heads (peanalyze -t whatif compares several)
--stage all --ntk-len 64 --pe pi:2 f32.h5|--pe with the ntk stage: ntk is itself a what-if
f32.h5 --rank|option --rank needs an argument
f32.h5 -r|option -r needs an argument
EOF
for tool in $TOOLS; do
    for list in "$TMP/abuse-common" "$TMP/abuse-$tool"; do
        while IFS='|' read -r args tail; do
            eval "set -- $args"
            expect 2 "$tool: $tail" "$tool ${args:-(no arguments)}: status 2, one line naming the option" "$BUILD/$tool" "$@"
            if [ -s "$TMP/out" ]; then notok "$tool $args: nothing on stdout" "$(head -n 1 "$TMP/out")"; fi
        done <"$list"
    done
    # An output path that ends in a slash names the folder that is missing.
    run "$BUILD/$tool" -o nosuch/ f32.h5
    if [ "$status" -eq 2 ] && grep -q "^$tool: --output: .*'nosuch" "$TMP/err"; then
        ok "$tool -o nosuch/: status 2, the message names nosuch"
    else
        notok "$tool -o nosuch/: status 2, the message names nosuch" "status $status: $(head -n 1 "$TMP/err")"
    fi
done

# -o (and --mask) onto an input file: refused, whatever the path that leads
# to it; the input keeps its bytes.
cp f32.h5 "$TMP/in.h5"
cp f32.h5 "$TMP/in2.h5"
ln -s "$TMP/in.h5" "$TMP/in-link.h5"
ln "$TMP/in.h5" "$TMP/in-hard.h5" 2>/dev/null || cp "$TMP/in.h5" "$TMP/in-hard.h5"
before=$(cksum <"$TMP/in.h5")
before2=$(cksum <"$TMP/in2.h5")
for tool in $TOOLS; do
    expect 2 "$tool: --output: '$TMP/in.h5' is an input file; refusing to overwrite it" "$tool -o onto the input" "$BUILD/$tool" -o "$TMP/in.h5" "$TMP/in.h5"
    expect 2 "$tool: --output: '$TMP/in2.h5' is an input file" "$tool -o onto the second input" "$BUILD/$tool" -o "$TMP/in2.h5" "$TMP/in.h5" "$TMP/in2.h5"
    expect 2 "$tool: --output: '$TMP/in-link.h5' is an input file" "$tool -o onto a link to the input" "$BUILD/$tool" -o "$TMP/in-link.h5" "$TMP/in.h5"
    if [ "$(ls -i "$TMP/in.h5" | cut -d' ' -f1)" = "$(ls -i "$TMP/in-hard.h5" | cut -d' ' -f1)" ]; then
        expect 2 "$tool: --output: '$TMP/in-hard.h5' is an input file" "$tool -o onto a hard link to the input" "$BUILD/$tool" -o "$TMP/in-hard.h5" "$TMP/in.h5"
    fi
    (cd "$TMP" && "$BUILD/$tool" -o ./in.h5 in.h5 >/dev/null 2>"$TMP/err.rel")
    if [ $? -eq 2 ] && grep -q "is an input file" "$TMP/err.rel"; then ok "$tool -o ./in.h5 in.h5 is refused"; else notok "$tool -o ./in.h5 in.h5 is refused" "$(head -n 1 "$TMP/err.rel")"; fi
done
expect 2 "peentropy: --mask: '$TMP/in.h5' is an input file" "peentropy --mask onto the input" "$BUILD/peentropy" -t select --mask "$TMP/in.h5" "$TMP/in.h5"
expect 2 "peentropy: --mask: '$TMP/in-link.h5' is an input file" "peentropy --mask onto a link to the input" "$BUILD/peentropy" -t select --mask "$TMP/in-link.h5" "$TMP/in.h5"
if [ "$(cksum <"$TMP/in.h5")" = "$before" ] && [ "$(cksum <"$TMP/in2.h5")" = "$before2" ] && [ -L "$TMP/in-link.h5" ]; then
    ok "the refused -o and --mask left the inputs (and the link) untouched"
else
    notok "the refused -o and --mask left the inputs untouched"
fi
if ls "$TMP"/in*.tmp* >/dev/null 2>&1; then notok "no temporary file next to the inputs" "$(ls "$TMP"/in*.tmp*)"; else ok "no temporary file next to the inputs"; fi

# --bins larger than T is accepted: the binning rule then does not bin, so
# the table has one row per distance, as with --bins 0 (T 40: distances 0-39).
for tool in pedecomp peanalyze; do
    lo=4
    [ "$tool" = pedecomp ] && lo=7
    run "$BUILD/$tool" -f tsv --bins 0 f32.h5
    data "$TMP/out" >"$TMP/b0"
    for b in 41 1000 1099511627776; do
        expect 0 "" "$tool --bins $b > T is accepted" "$BUILD/$tool" -f tsv --bins "$b" f32.h5
        data "$TMP/out" >"$TMP/bb"
        n=$(awk -F'\t' -v c="$lo" 'NR > 1 { n++; if ($c != $(c + 1)) bad++; d[$c]++ } END { for (k in d) nd++; print n "/" nd "/" bad + 0 }' "$TMP/bb")
        if cmp -s "$TMP/bb" "$TMP/b0" && [ "$n" = "$(awk -F'\t' 'NR > 1' "$TMP/b0" | wc -l)/40/0" ]; then
            ok "$tool --bins $b: one row per distance (40 distances), the table of --bins 0"
        else
            notok "$tool --bins $b: one row per distance" "rows/distances/ranges: $n; $(diff "$TMP/bb" "$TMP/b0" | head -n 2 | tr '\n' ' ')"
        fi
    done
done
# peentropy's analogue: a rank above head_dim means head_dim, and says so.
run "$BUILD/peentropy" -f tsv --rank 1000 f32.h5
cp "$TMP/out" "$TMP/r1000"
run "$BUILD/peentropy" -f tsv --rank 8 f32.h5
if grep -q '^# rank: 8 (asked 1000, clamped to head_dim)' "$TMP/r1000" && [ "$(col "$TMP/r1000" r | sort -u)" = 8 ] &&
    [ "$(data "$TMP/r1000")" = "$(data "$TMP/out")" ]; then
    ok "peentropy --rank 1000 > head_dim: r 8, the numbers of --rank 8, the clamp stated"
else
    notok "peentropy --rank 1000 > head_dim" "$(grep '^# rank' "$TMP/r1000")"
fi

# ======================================================= 4. output failures
if [ -w /dev/full ]; then
    while IFS='|' read -r tool args; do
        [ -n "$tool" ] || continue
        # shellcheck disable=SC2086
        expect 1 "$tool: standard output: write error: No space left on device" "$tool $args > /dev/full: status 1 and a message" \
            sh -c "exec \"\$0\" \"\$@\" >/dev/full" "$BUILD/$tool" $args
    done <<'EOF'
pedecomp|f32.h5
pedecomp|-t summary -f json f32.h5
pedecomp|-t freqs --rotary-dim 8 -L 16
pedecomp|--check wrongpair.h5
pedecomp|-H 0 --bins 0 big.h5
pedecomp|--version
pedecomp|--help
peanalyze|-t heads f32.h5
peanalyze|-t heatmap -f json f32.h5
peanalyze|-t layers -f tsv f32.h5
peanalyze|-q -t heads --fail-on ood attn.h5
peanalyze|-H 0 --bins 0 big.h5
peanalyze|--help
peentropy|f32.h5
peentropy|-t bands -f json f32.h5
peentropy|-t select --mask - f32.h5
peentropy|--version
EOF
else
    echo "skip - > /dev/full: /dev/full is not writable here"
fi

# | head -n 1 on a table longer than a pipe holds (64 KiB): the tool ends
# quietly (status 0, or killed by SIGPIPE: 141), nothing on stderr; the same
# when the caller ignores SIGPIPE (as some CI runners and daemons do): then the
# write fails with EPIPE, which is no error to report either.
while IFS='|' read -r tool args; do
    [ -n "$tool" ] || continue
    # shellcheck disable=SC2086
    bytes=$("$BUILD/$tool" $args 2>/dev/null | wc -c)
    if [ "$bytes" -le 65536 ]; then notok "$tool $args is longer than a pipe holds" "$bytes bytes"; continue; fi
    for mode in default ignored; do
        trap_cmd=""
        [ "$mode" = ignored ] && trap_cmd="trap '' PIPE;"
        rm -f "$TMP/pipe.err" "$TMP/pipe.status"
        # shellcheck disable=SC2086
        sh -c "$trap_cmd { \"\$0\" \"\$@\" 2>'$TMP/pipe.err'; echo \$? >'$TMP/pipe.status'; } | head -n 1 >'$TMP/pipe.out'" "$BUILD/$tool" $args
        st=$(cat "$TMP/pipe.status" 2>/dev/null)
        if [ -s "$TMP/pipe.err" ]; then
            notok "$tool $args | head -n 1 (SIGPIPE $mode): quiet" "status $st; stderr: $(head -n 1 "$TMP/pipe.err")"
        elif [ "$st" != 0 ] && [ "$st" != 141 ] && { [ "$mode" = default ] || [ "$st" != 1 ]; }; then
            notok "$tool $args | head -n 1 (SIGPIPE $mode): quiet" "status $st"
        elif [ ! -s "$TMP/pipe.out" ]; then
            notok "$tool $args | head -n 1 (SIGPIPE $mode): head got the first line"
        else
            ok "$tool $args | head -n 1 (SIGPIPE $mode, $bytes bytes): quiet, status $st"
        fi
    done
done <<'EOF'
pedecomp|-H 0 --bins 0 big.h5
pedecomp|-f json -H 0 --bins 0 big.h5
peanalyze|-H 0 --bins 0 big.h5
peanalyze|-t heatmap big.h5
peentropy|-t bands --stage all big.h5
EOF

# -o for a run that fails midway (a NaN found while reading heads, after the
# output was opened): no file, no temporary, and an old file keeps its bytes.
while IFS='|' read -r tool args; do
    [ -n "$tool" ] || continue
    rm -f "$TMP"/mid.*
    # shellcheck disable=SC2086
    run "$BUILD/$tool" $args -o "$TMP/mid.tsv"
    if [ "$status" -eq 1 ] && [ "$(wc -l <"$TMP/err")" -eq 1 ] && ! ls "$TMP"/mid.* >/dev/null 2>&1; then
        ok "$tool $args -o FILE fails (status 1) and leaves neither FILE nor a temporary"
    else
        notok "$tool $args -o FILE fails cleanly" "status $status; left: $(ls "$TMP"/mid.* 2>/dev/null | tr '\n' ' ')"
    fi
    echo keep >"$TMP/mid.tsv"
    # shellcheck disable=SC2086
    run "$BUILD/$tool" $args -o "$TMP/mid.tsv"
    if [ "$status" -eq 1 ] && [ "$(cat "$TMP/mid.tsv")" = keep ] && [ "$(ls "$TMP"/mid.* | wc -l)" -eq 1 ]; then
        ok "$tool $args -o OLD fails and leaves OLD as it was, with no temporary"
    else
        notok "$tool $args -o OLD fails and leaves OLD as it was" "status $status; $(ls "$TMP"/mid.* | tr '\n' ' ')"
    fi
done <<'EOF'
pedecomp|bad-q-nan.h5
pedecomp|-t summary bad-krot-nan.h5
pedecomp|--check bad-k-inf.h5
pedecomp|f32.h5 bad-q-nan.h5
peanalyze|bad-q-nan.h5
peanalyze|-t heads bad-krot-nan.h5
peanalyze|-t layers bad-k-inf.h5
peanalyze|-t heatmap --head 1 bad-q-nan.h5
peentropy|bad-q-nan.h5
peentropy|-t bands bad-krot-nan.h5
peentropy|-t select bad-k-inf.h5
EOF
rm -f "$TMP"/mid.*
echo keep >"$TMP/mid.json"
run "$BUILD/peentropy" -t select --mask "$TMP/mid.json" -o "$TMP/mid.tsv" bad-krot-nan.h5
if [ "$status" -eq 1 ] && [ "$(cat "$TMP/mid.json")" = keep ] && [ "$(ls "$TMP"/mid.* | wc -l)" -eq 1 ]; then
    ok "peentropy --mask OLD -o FILE on a failing run: OLD kept, no table, no temporaries"
else
    notok "peentropy --mask OLD -o FILE on a failing run" "status $status; $(ls "$TMP"/mid.* | tr '\n' ' ')"
fi

# -o for a run stopped by SIGTERM or SIGINT (a CI timeout, ^C) while the
# temporary is open: neither FILE nor the temporary may stay behind.
DEFSIG=""
env --default-signal=INT true 2>/dev/null && DEFSIG="env --default-signal=INT"
if sleep 0.01 2>/dev/null; then
    while IFS='|' read -r sig tool args; do
        [ -n "$sig" ] || continue
        rm -f "$TMP"/sig.*
        # (a background job starts with SIGINT ignored; env gives it back)
        # shellcheck disable=SC2086
        $DEFSIG "$BUILD/$tool" $args -o "$TMP/sig.tsv" >/dev/null 2>"$TMP/sig.err" &
        pid=$!
        i=0
        while [ $i -lt 500 ] && ! ls "$TMP"/sig.tsv.tmp* >/dev/null 2>&1; do sleep 0.01; i=$((i + 1)); done
        if [ "$sig" = INT ] && [ -z "$DEFSIG" ]; then
            wait "$pid"
            echo "skip - $tool $args -o FILE stopped by SIGINT: env cannot restore SIGINT in a background job here"
        elif kill -"$sig" "$pid" 2>/dev/null; then
            wait "$pid" 2>/dev/null
            st=$?
            if ls "$TMP"/sig.* 2>/dev/null | grep -q 'sig\.tsv'; then
                notok "$tool $args -o FILE stopped by SIG$sig leaves nothing behind" "status $st; left: $(ls "$TMP"/sig.tsv* | tr '\n' ' ')"
            else
                ok "$tool $args -o FILE stopped by SIG$sig leaves nothing behind (status $st)"
            fi
        else
            wait "$pid" 2>/dev/null
            echo "skip - $tool $args -o FILE stopped by SIG$sig: it finished before the signal"
        fi
    done <<'EOF'
TERM|pedecomp|--method direct -j 1 big.h5
INT|pedecomp|--method direct -j 1 big.h5
TERM|peanalyze|-j 1 --bins 0 big.h5
HUP|peanalyze|-j 1 --bins 0 big.h5
EOF
else
    echo "skip - signals during -o: sleep takes no fractions of a second here"
fi

# ======================================================= 5. resource limits
# A run whose estimated peak is over --max-memory is refused before anything
# is allocated or written, with the amount; a budget above it runs.  One head
# of big.h5 (T 2048, head_dim 128) in double is 4.0 MiB; each tool's run
# needs more (threads' buffers), so 5M passes the per-head check and fails
# the per-run one.
for tool in $TOOLS; do
    expect 1 "$tool: big.h5: shape: one head of T 2048 x head_dim 128 needs 4.0 MiB, more than the 1.0 MiB allowed by --max-memory" \
        "$tool --max-memory 1M: one head does not fit" "$BUILD/$tool" --max-memory 1M big.h5
    expect 1 "$tool: this run (T 2048, head_dim 128, -j 2) needs " \
        "$tool -j 2 --max-memory 5M: the run does not fit" "$BUILD/$tool" -j 2 --max-memory 5M -o "$TMP/mm.tsv" big.h5
    if ls "$TMP"/mm.tsv* >/dev/null 2>&1; then notok "$tool: a refused run writes no -o file" "$(ls "$TMP"/mm.tsv*)"; else ok "$tool: a refused run writes no -o file"; fi
    expect 0 "" "$tool -j 2 --max-memory 100M runs" "$BUILD/$tool" -j 2 --max-memory 100M big.h5
done
exit 0
