#!/bin/sh
# Command-line tests of peanalyze: exit statuses, exact messages, golden
# tables, the planted fixtures of mkfix_attn (labels, sink masses and
# exceedances known by construction), --fail-on, invariance under -j,
# --block and the stored type, pooling, an independent full-matrix
# reference (tests/refattn.c) on fixtures and on the real dump, output
# handling, and the figure scripts.
#
#   tests/cli-peanalyze.sh BUILD_DIR        (run by tests/run.sh)
. tests/lib.sh
PA=$BUILD/peanalyze
REF=$BUILD/tests/refattn
SCRIPTS=$TOP/scripts

# near DESC GOT WANT TOL: |GOT - WANT| <= TOL (numbers as awk reads them).
near() {
    if awk -v g="$2" -v w="$3" -v t="$4" 'BEGIN { d = g - w; if (d < 0) d = -d; exit !(d <= t) }'; then
        ok "$1"
    else
        notok "$1" "got $2, want $3 (tol $4)"
    fi
}
# cell TABLE LAYER HEAD COLUMN: one cell of a heads table (tsv), by column name.
cell() {
    awk -F'\t' -v l="$2" -v h="$3" -v c="$4" '/^#/ { next } !hdr { for (i = 1; i <= NF; i++) col[$i] = i; hdr = 1; next }
        $1 == l && $2 == h { print $(col[c]); exit }' "$1"
}

# lossrows FILE: the rows of a loss table, without its calibration section.
# The rows of a loss table without their first column, pe (the spec the
# loss was recorded with), so that bin_lo is $1.
lossrows() { sed '/^# section: /,$d' "$1" | data /dev/stdin | cut -f 2-; }

# ------------------------------------------------------------------ usage
run "$PA" --help
if [ "$status" -eq 0 ] && grep -q '^Usage: peanalyze' "$TMP/out" && [ ! -s "$TMP/err" ]; then
    ok "peanalyze --help: usage on stdout, status 0"
else
    notok "peanalyze --help" "status $status"
fi
for opt in --table --bins --rows --sink-tokens --margin --exceed-threshold --entropy-threshold --sink-threshold \
    --u-threshold --unseen-threshold --fail-on --head --window --pixels --block --layers --heads --train-len --pairing --output \
    --format --digits --jobs --max-memory --quiet --verbose --version; do
    if grep -q -- "$opt" "$TMP/out"; then ok "peanalyze --help lists $opt"; else notok "peanalyze --help lists $opt"; fi
done
run "$PA" --version
if [ "$status" -eq 0 ] && grep -q '^peanalyze (petools) ' "$TMP/out" && grep -q 'HDF5 1\.' "$TMP/out" &&
    grep -q 'OpenBLAS' "$TMP/out"; then
    ok "peanalyze --version names the version, HDF5 and OpenBLAS"
else
    notok "peanalyze --version" "$(cat "$TMP/out")"
fi

expect 2 "peanalyze: no input file" "no input file" "$PA"
expect 2 "peanalyze: unknown option --frobnicate" "unknown long option" "$PA" --frobnicate f32.h5
expect 2 "peanalyze: unknown option -Z" "unknown short option" "$PA" -Z f32.h5
expect 2 "peanalyze: option --rows needs an argument" "missing argument" "$PA" f32.h5 --rows
expect 2 "peanalyze: --table: unknown value 'nonsense' (one of: profile, heads, layers, heatmap, loss, whatif)" "unknown table" "$PA" -t nonsense f32.h5
expect 2 "peanalyze: --bins: -1 is out of range" "negative bins" "$PA" --bins -1 f32.h5
expect 2 "peanalyze: --rows: 0 is out of range" "--rows 0" "$PA" --rows 0 f32.h5
expect 2 "peanalyze: --rows: '5x' is not an integer" "--rows with garbage" "$PA" --rows 5x f32.h5
expect 2 "peanalyze: --block: 0 is out of range" "--block 0" "$PA" --block 0 f32.h5
expect 2 "peanalyze: --sink-tokens: -1 is out of range" "--sink-tokens -1" "$PA" --sink-tokens -1 f32.h5
expect 2 "peanalyze: --margin: -0.1 is out of range" "--margin negative" "$PA" --margin -0.1 f32.h5
expect 2 "peanalyze: --exceed-threshold: 2 is out of range [0, 1]" "--exceed-threshold above 1" "$PA" --exceed-threshold 2 f32.h5
expect 2 "peanalyze: --entropy-threshold: 'x' is not a number" "--entropy-threshold not a number" "$PA" --entropy-threshold x f32.h5
expect 2 "peanalyze: --sink-threshold: 'nan' is not a finite number" "--sink-threshold nan" "$PA" --sink-threshold nan f32.h5
expect 2 "peanalyze: --u-threshold: 1.5 is out of range [0, 1]" "--u-threshold above 1" "$PA" --u-threshold 1.5 f32.h5
expect 2 "peanalyze: --fail-on: unknown value 'oops' (one of: ood, ushape)" "--fail-on unknown" "$PA" --fail-on oops f32.h5
expect 2 "peanalyze: --fail-on: unknown value '' (one of: ood, ushape)" "--fail-on with an empty item" "$PA" --fail-on ood, f32.h5
expect 2 "peanalyze: --fail-on: empty" "--fail-on empty" "$PA" --fail-on '' f32.h5
expect 2 "peanalyze: --head: only for -t heatmap" "--head without -t heatmap" "$PA" --head 1 f32.h5
expect 2 "peanalyze: --window: only for -t heatmap" "--window without -t heatmap" "$PA" -t heads --window 0:5 f32.h5
expect 2 "peanalyze: --pixels: only for -t heatmap" "--pixels without -t heatmap" "$PA" --pixels 4 f32.h5
expect 2 "peanalyze: --window: '12' is not M0:M1" "--window without a colon" "$PA" -t heatmap --window 12 f32.h5
expect 2 "peanalyze: --window: 9:3 is empty (M0 must be below M1)" "--window backwards" "$PA" -t heatmap --window 9:3 f32.h5
expect 2 "peanalyze: --window: 'a' is not an integer" "--window not numbers" "$PA" -t heatmap --window a:3 f32.h5
expect 2 "peanalyze: --window: 0:41 is beyond the 40 tokens of f32.h5" "--window past T" "$PA" -t heatmap --window 0:41 f32.h5
expect 2 "peanalyze: --pixels: 0 is out of range" "--pixels 0" "$PA" -t heatmap --pixels 0 f32.h5
expect 2 "peanalyze: --rows: not for -t heatmap (its rows are --window)" "--rows with heatmap" "$PA" -t heatmap --rows 3 f32.h5
expect 2 "peanalyze: --fail-on: not for -t heatmap" "--fail-on with heatmap" "$PA" -t heatmap --fail-on ood f32.h5
expect 2 "peanalyze: --heads: not for -t heatmap (use --head)" "-H with heatmap" "$PA" -t heatmap -H 1 f32.h5
expect 2 "peanalyze: --layers: -t heatmap takes one layer" "two layers with heatmap" "$PA" -t heatmap -l 0,2 f32.h5
expect 2 "peanalyze: -t heatmap reads one FILE (got 2)" "two files with heatmap" "$PA" -t heatmap f32.h5 short.h5
expect 2 "peanalyze: --head: head 9 does not exist (the files have 4 query heads)" "--head out of range" "$PA" -t heatmap --head 9 f32.h5
expect 2 "peanalyze: --layers: layer 1 is not in f32.h5" "missing layer" "$PA" -l 1 f32.h5
expect 2 "peanalyze: --heads: head 4 does not exist" "missing head" "$PA" -H 4 f32.h5
expect 2 "peanalyze: -t heads needs the training length" "heads without L" "$PA" -t heads attn-nolen.h5
expect 2 "peanalyze: -t layers needs the training length" "layers without L" "$PA" -t layers attn-nolen.h5
expect 2 "peanalyze: --fail-on needs the training length" "--fail-on without L" "$PA" --fail-on ood attn-nolen.h5
expect 0 "" "the profile needs no training length" "$PA" attn-nolen.h5
expect 0 "" "-t heads with --train-len on a file without one" "$PA" -t heads -L 20 attn-nolen.h5
expect 2 "peanalyze: --output: cannot create 'no/such/x.tsv': No such file or directory" "output in a missing folder" "$PA" -o no/such/x.tsv f32.h5
cp f32.h5 "$TMP/in.h5"
expect 2 "peanalyze: --output: '$TMP/in.h5' is an input file" "-o onto an input is refused" "$PA" -o "$TMP/in.h5" "$TMP/in.h5"

# ------------------------------------------------------------ bad inputs
# The reader is pedecomp's (tested there); a few of its refusals, to see
# that peanalyze passes them on with status 1 and one line.
while IFS='|' read -r file msg; do
    [ -n "$file" ] || continue
    expect 1 "peanalyze: $file: $msg" "refuses $file" "$PA" "$file"
done <<'EOF'
bad-text.h5|not an HDF5 file
bad-format.h5|format: is 'npz', not 'qkdump'
bad-no-pairing.h5|rope_pairing: missing (required when rotary_dim > 0
bad-q-shape.h5|/layers/000/q: shape [4, 40, 10], expected [4, T, 8]
bad-positions-order.h5|/tokens/positions: not strictly increasing at token 20 (19 after 19)
bad-q-nan.h5|layer 0: q head 1 token 5 dim 3: value is NaN
bad-k-inf.h5|layer 0: k head 1 token 5 dim 3: value is infinite
EOF
expect 1 "peanalyze: no-such.h5: cannot open: No such file or directory" "missing file" "$PA" no-such.h5
expect 1 "peanalyze: otherbase.h5: the frequencies (/rope/inv_freq or rope_theta): differs from f32.h5" \
    "pooling files that disagree is refused" "$PA" f32.h5 otherbase.h5
expect 1 "peanalyze: bad-q-nan.h5: layer 0: q head 1 token 5 dim 3: value is NaN" "the heat map reads through the same checks" \
    "$PA" -t heatmap --head 1 bad-q-nan.h5

# ---------------------------------------------------------- golden tables
golden peanalyze-profile.gp "$PA" -l 0 -H 0,3 --bins 8 f32.h5
golden peanalyze-profile-softcap.tsv "$PA" -f tsv -l 2 -H 1 --bins 0 attn-softcap.h5
golden peanalyze-profile.json "$PA" -f json -l 0 -H 0 --bins 4 f32.h5
golden peanalyze-profile-nolen.tsv "$PA" -f tsv -l 2 -H 3 --bins 6 attn-nolen.h5
golden peanalyze-heads.gp "$PA" -t heads attn.h5
golden peanalyze-heads.tsv "$PA" -t heads -f tsv f32.h5
golden peanalyze-heads-gappy.json "$PA" -t heads -f json -l 2 attn-gappy.h5
golden peanalyze-heads-rows.tsv "$PA" -t heads -f tsv --rows 7 --sink-tokens 3 -l 0 f32.h5
golden peanalyze-heads-t1.tsv "$PA" -t heads -f tsv -l 0 t1.h5
golden peanalyze-heads-pooled.tsv "$PA" -t heads -f tsv -l 2 f32.h5 short.h5
golden peanalyze-layers.gp "$PA" -t layers attn.h5
golden peanalyze-layers.tsv "$PA" -t layers -f tsv f32.h5
golden peanalyze-layers.json "$PA" -t layers -f json f32.h5
golden peanalyze-heatmap.gp "$PA" -t heatmap -l 0 --head 2 --window 60:68 --pixels 8 attn.h5
golden peanalyze-heatmap.tsv "$PA" -t heatmap -f tsv -l 2 --head 1 --window 30:40 --pixels 5 f32.h5
golden peanalyze-heatmap.json "$PA" -t heatmap -f json --window 0:4 --pixels 3 attn-gappy.h5

if command -v jq >/dev/null 2>&1; then
    run "$PA" -t heads -f json -L 100 f32.h5
    if jq -e '.rows | length == 8 and all(.sink_beyond == null and .ood == 0)' "$TMP/out" >/dev/null; then
        ok "json: 8 heads rows; no beyond rows: null and ood 0"
    else
        notok "json: 8 heads rows; no beyond rows: null and ood 0"
    fi
    run "$PA" -t heatmap -f json --window 10:20 --pixels 4 f32.h5
    if jq -e '(.rows | length == 10) and (.key_lo | length == 4) and (.values | length == 10) and all(.values[]; length == 4)' \
        "$TMP/out" >/dev/null; then
        ok "json heat map: 10 rows of 4 columns"
    else
        notok "json heat map: 10 rows of 4 columns"
    fi
else
    echo "skip - json checks: jq is not installed"
fi

# --------------------------------------------------------- planted patterns
# attn.h5 (see tests/mkfix_attn.c): T 128, L 64, attn_scale 1.
run "$PA" -t heads -f tsv --digits 17 attn.h5
cp "$TMP/out" "$TMP/planted.tsv"
check_head() { # LAYER HEAD LABEL_IN LABEL_ALL OOD
    got="$(cell "$TMP/planted.tsv" "$1" "$2" label_in) $(cell "$TMP/planted.tsv" "$1" "$2" label_all) $(cell "$TMP/planted.tsv" "$1" "$2" ood)"
    if [ "$got" = "$3 $4 $5" ]; then ok "planted layer $1 head $2: $3 / $4, ood $5"; else notok "planted layer $1 head $2" "got '$got', want '$3 $4 $5'"; fi
}
# Every planted head attends to distances beyond L (tests/mkfix_attn.c), so
# every one is ood: the periodic ones by their unseen-distance mass, the
# decay and rise heads by their exceedance too, the sink head by the mass it
# spreads evenly over the keys that are not the sink.
check_head 0 0 u-shape u-shape 1
check_head 0 1 decay decay 1
check_head 0 2 rise rise 1
check_head 1 0 u-shape u-shape 1
check_head 1 1 u-shape u-shape 1
check_head 1 2 rise rise 1
n=$(awk -F'\t' '!/^#/ && $1 ~ /^[0-9]/ && $4 == 64 && $5 == 64' "$TMP/planted.tsv" | wc -l)
if [ "$n" -eq 6 ]; then ok "planted: 64 rows in-train and 64 beyond for every head"; else notok "planted: rows split at L" "$n heads"; fi
near "planted u-shape: u_in near 1 (one period inside L)" "$(cell "$TMP/planted.tsv" 0 0 u_in)" 1 0.01
near "planted u-shape: the periodic logits never leave the in-train range (exceedance 0)" "$(cell "$TMP/planted.tsv" 0 0 exceedance)" 0 0
near "planted decay: exceedance = 2016/6176 (beyond pairs at distances >= 65)" "$(cell "$TMP/planted.tsv" 0 1 exceedance)" \
    "$(awk 'BEGIN { printf "%.17g", 2016 / 6176 }')" 1e-15
near "planted rise (layer 1 head 2): exceedance = 2016/6176 upwards" "$(cell "$TMP/planted.tsv" 1 2 exceedance)" \
    "$(awk 'BEGIN { printf "%.17g", 2016 / 6176 }')" 1e-15
near "planted sink: exceedance 0 (logits 0 and 5 only)" "$(cell "$TMP/planted.tsv" 0 2 exceedance)" 0 0
# The sink head: p(m, 0) = a / (a + m), a = e^5; entropy of row m >= 1:
# (ln(a + m) - 5 a / (a + m)) / ln(m + 1).
sink_ref() { # FROM TO S: mean sink mass over rows FROM..TO with S sink tokens
    awk -v f="$1" -v t="$2" -v S="$3" 'BEGIN { a = exp(5); for (m = f; m <= t; m++) { k = S - 1 < m ? S - 1 : m; s += (a + k) / (a + m) }
        printf "%.17g", s / (t - f + 1) }'
}
ent_ref() { # FROM TO: mean normalised entropy over rows FROM..TO (m >= 1)
    awk -v f="$1" -v t="$2" 'BEGIN { a = exp(5); if (f < 1) f = 1; for (m = f; m <= t; m++) s += (log(a + m) - 5 * a / (a + m)) / log(m + 1)
        printf "%.17g", s / (t - f + 1) }'
}
near "planted sink: sink_in = mean of e^5/(e^5+m) over m < 64" "$(cell "$TMP/planted.tsv" 0 2 sink_in)" "$(sink_ref 0 63 1)" 1e-12
near "planted sink: sink_beyond = the same over m >= 64" "$(cell "$TMP/planted.tsv" 0 2 sink_beyond)" "$(sink_ref 64 127 1)" 1e-12
near "planted sink: entropy_in by its closed form" "$(cell "$TMP/planted.tsv" 0 2 entropy_in)" "$(ent_ref 1 63)" 1e-12
near "planted sink: entropy_beyond by its closed form" "$(cell "$TMP/planted.tsv" 0 2 entropy_beyond)" "$(ent_ref 64 127)" 1e-12
run "$PA" -t heads -f tsv --digits 17 --sink-tokens 3 -l 0 -H 2 attn.h5
cp "$TMP/out" "$TMP/sink3.tsv"
# Unseen-distance mass of row m >= 64: the keys 1 .. m - 64 (distance >= 64,
# not the sink), e^0 each against Z = e^5 + m; entropy in nats of row m:
# ln(e^5 + m) - 5 e^5 / (e^5 + m); the sink ratio from sink_ref.
unseen_ref() { awk 'BEGIN { a = exp(5); for (m = 64; m <= 127; m++) s += (m - 64) / (a + m); printf "%.17g", s / 64 }'; }
nats_ref() { # FROM TO: mean entropy in nats over rows FROM..TO (m >= 1)
    awk -v f="$1" -v t="$2" 'BEGIN { a = exp(5); if (f < 1) f = 1; for (m = f; m <= t; m++) s += log(a + m) - 5 * a / (a + m)
        printf "%.17g", s / (t - f + 1) }'
}
near "planted sink: unseen_mass = mean of (m - 64)/(e^5+m) over m >= 64" "$(cell "$TMP/planted.tsv" 0 2 unseen_mass)" "$(unseen_ref)" 1e-12
near "planted sink: entropy_nats_in by its closed form" "$(cell "$TMP/planted.tsv" 0 2 entropy_nats_in)" "$(nats_ref 1 63)" 1e-12
near "planted sink: entropy_nats_beyond by its closed form" "$(cell "$TMP/planted.tsv" 0 2 entropy_nats_beyond)" "$(nats_ref 64 127)" 1e-12
near "planted sink: sink_ratio = sink_beyond / sink_in" "$(cell "$TMP/planted.tsv" 0 2 sink_ratio)" \
    "$(awk -v a="$(sink_ref 64 127 1)" -v b="$(sink_ref 0 63 1)" 'BEGIN { printf "%.17g", a / b }')" 1e-12
# Heads that attend only within L (attn-local.h5: self and previous token).
run "$PA" -t heads -f tsv --digits 17 attn-local.h5
got=$(data "$TMP/out" | awk -F'\t' 'NR > 1 { printf "%s:%s:%s ", $2, $15, ($16 < 1e-6 && $14 == 0 ? "local" : "far") }')
is "attn-local.h5: the self and previous-token heads attend within L: unseen mass < 1e-6, exceedance 0, not ood" "0:0:local 1:0:local " "$got"
expect 0 "" "attn-local.h5: --fail-on ood passes a model whose heads attend only within L" "$PA" -t heads --fail-on ood attn-local.h5
near "planted sink, --sink-tokens 3: sink_in = mean of (e^5 + min(2, m))/(e^5 + m)" "$(cell "$TMP/sink3.tsv" 0 2 sink_in)" "$(sink_ref 0 63 3)" 1e-12
near "planted sink, --sink-tokens 3: sink_beyond" "$(cell "$TMP/sink3.tsv" 0 2 sink_beyond)" "$(sink_ref 64 127 3)" 1e-12
# The profile of the decay head is the planted curve itself: 4 cos(0.024 d).
run "$PA" -f tsv --digits 17 --bins 0 -l 0 -H 1 attn.h5
bad=$(awk -F'\t' '/^#/ || $1 !~ /^[0-9]/ { next } { w = 4 * cos(0.024 * $4); d = $7 - w; if (d < 0) d = -d; if (d > 1e-12 || $6 != 128 - $4) b++; n++ }
    END { print (n == 128 ? b + 0 : "rows " n) }' "$TMP/out")
if [ "$bad" = 0 ]; then ok "planted decay: mean_logit = 4 cos(0.024 d) and n_pairs = 128 - d at every distance"; else notok "planted decay profile" "$bad"; fi
# The sink head's mean logit is 5 / (T - d) for d >= 1, and its last_prob at
# distance 127 (key 0) is e^5 / (e^5 + 127).
run "$PA" -f tsv --digits 17 --bins 0 -l 0 -H 2 attn.h5
bad=$(awk -F'\t' '/^#/ || $1 !~ /^[0-9]/ { next } { w = ($4 == 0 ? 5 / 128 : 5 / (128 - $4)); d = $7 - w; if (d < 0) d = -d; if (d > 1e-12) b++ }
    $4 == 127 { lp = $10 } END { a = exp(5); d = lp - a / (a + 127); if (d < 0) d = -d; if (d > 1e-12) b++; print b + 0 }' "$TMP/out")
if [ "$bad" = 0 ]; then ok "planted sink: mean_logit = 5 / (128 - d), last_prob at d 127 = e^5/(e^5+127)"; else notok "planted sink profile" "$bad rows"; fi
run "$PA" -t layers -f tsv attn.h5
got=$(awk -F'\t' '!/^#/ && $1 ~ /^[0-9]/ { printf "%s:%s/%s ", $1, $3, $2 }' "$TMP/out")
if [ "$got" = "0:3/3 1:3/3 " ]; then ok "planted layers: every head ood in both layers"; else notok "planted layers" "$got"; fi
# --rows 5 of T 128: rows 0 31 63 95 127: three in-train, two beyond.
run "$PA" -t heads -f tsv --rows 5 -l 0 -H 0 attn.h5
got="$(cell "$TMP/out" 0 0 rows_in) $(cell "$TMP/out" 0 0 rows_beyond)"
if [ "$got" = "3 2" ]; then ok "--rows 5: rows 0 31 63 in-train, 95 127 beyond"; else notok "--rows 5" "$got"; fi
run "$PA" -t heads -f tsv --rows 1 -l 0 -H 0 attn.h5
got="$(cell "$TMP/out" 0 0 rows_in) $(cell "$TMP/out" 0 0 rows_beyond)"
if [ "$got" = "0 1" ]; then ok "--rows 1: the last row only"; else notok "--rows 1" "$got"; fi
# No beyond rows: nan columns, never ood.
run "$PA" -t heads -f tsv -L 1000 -l 0 attn.h5
got=$(awk -F'\t' '!/^#/ && $1 ~ /^[0-9]/ { printf "%s %s %s %s %s|", $5, $7, $9, $14, $15 }' "$TMP/out")
if [ "$got" = "0 nan nan nan 0|0 nan nan nan 0|0 nan nan nan 0|" ]; then ok "-L past T: beyond columns nan, ood 0"; else notok "-L past T" "$got"; fi

# ---------------------------------------------------------------- --fail-on
run "$PA" -t heads attn.h5
cp "$TMP/out" "$TMP/heads-plain.gp"
expect 0 "" "--fail-on ood, with thresholds above the u-shape head's unseen mass: status 0" \
    "$PA" -t heads --fail-on ood --unseen-threshold 0.5 -l 0 -H 0 attn.h5
expect 3 "peanalyze: --fail-on ood: 1 of 1 heads are flagged ood (the first: layer 0 head 1)" \
    "--fail-on ood, the decay head: status 3, one line" "$PA" -t heads --fail-on ood -l 0 -H 1 attn.h5
expect 3 "peanalyze: --fail-on ood: 6 of 6 heads are flagged ood (the first: layer 0 head 0)" \
    "--fail-on ood over every head: status 3" "$PA" -t heads --fail-on ood attn.h5
if cmp -s "$TMP/out" "$TMP/heads-plain.gp"; then ok "--fail-on ood (status 3) still writes the whole table"; else notok "--fail-on ood writes the whole table"; fi
expect 3 "" "-q: status 3 without the message" "$PA" -q -t heads --fail-on ood attn.h5
expect 3 "peanalyze: --fail-on ood: 3 of 3" "--fail-on with -t layers" "$PA" -t layers --fail-on ood -l 0 attn.h5
if [ "$(grep -c '^[01]	3	' "$TMP/out")" -eq 1 ]; then ok "--fail-on with -t layers writes the layer row"; else notok "--fail-on with -t layers writes the layer row"; fi
expect 3 "peanalyze: --fail-on ood: 1 of 1" "--fail-on with the profile table" "$PA" --fail-on ood -l 0 -H 2 attn.h5
expect 0 "" "--fail-on ood when no row is beyond L: status 0" "$PA" -t heads --fail-on ood -L 1000 attn.h5
expect 0 "" "--fail-on ood with thresholds above the decay head's unseen mass and exceedance: status 0" \
    "$PA" -t heads --fail-on ood --exceed-threshold 0.5 --unseen-threshold 0.2 -l 0 -H 1 attn.h5
expect 3 "peanalyze: --fail-on ood: 1 of 1" "--fail-on ood with --entropy-threshold 0.2: the decay head's entropy shift flags it" \
    "$PA" -t heads --fail-on ood --exceed-threshold 0.5 --unseen-threshold 0.2 --entropy-threshold 0.05 -l 0 -H 1 attn.h5
expect 3 "peanalyze: --fail-on ushape: 1 of 3 heads have u_in >= --u-threshold (the first: layer 0 head 0)" \
    "--fail-on ushape: status 3 for the u-shape head" "$PA" -t heads --fail-on ushape -l 0 attn.h5
expect 0 "" "--fail-on ushape without a u-shape head: status 0" "$PA" -t heads --fail-on ushape -l 0 -H 1,2 attn.h5
expect 0 "" "--fail-on ushape --u-threshold 1: U 0.999 does not reach it" "$PA" -t heads --fail-on ushape --u-threshold 1 -l 0 attn.h5
expect 3 "peanalyze: --fail-on ushape: 1 of 1" "--fail-on ood,ushape: ushape alone suffices" \
    "$PA" -t heads --fail-on ood,ushape --unseen-threshold 0.5 -l 0 -H 0 attn.h5
expect 3 "peanalyze: --fail-on ood: 1 of 1" "-o with --fail-on: status 3" "$PA" -t heads --fail-on ood -l 0 -H 1 -o "$TMP/gated.gp" attn.h5
if [ -s "$TMP/gated.gp" ] && grep -q '^0	1	1	64	64	' "$TMP/gated.gp"; then ok "-o with --fail-on: the file is written whole"; else notok "-o with --fail-on: the file is written"; fi

# --------------------------------------------------------------- invariance
for t in profile heads; do
    run "$PA" -t $t -j 1 -f tsv --bins 0 f32.h5 attn-softcap.h5
    cp "$TMP/out" "$TMP/j1.tsv"
    run "$PA" -t $t -j 2 -f tsv --bins 0 f32.h5 attn-softcap.h5
    if cmp -s "$TMP/out" "$TMP/j1.tsv"; then ok "$t: -j 1 and -j 2 write the same bytes"; else notok "$t: -j 1 and -j 2 write the same bytes"; fi
    run "$PA" -t $t -j 3 --block 1 -f tsv --bins 0 f32.h5 attn-softcap.h5
    if cmp -s "$TMP/out" "$TMP/j1.tsv"; then ok "$t: --block 1 (and -j 3) writes the default block's bytes"; else notok "$t: --block 1 writes the same bytes"; fi
    run "$PA" -t $t --block 7 -f tsv --bins 0 f32.h5 attn-softcap.h5
    if cmp -s "$TMP/out" "$TMP/j1.tsv"; then ok "$t: --block 7 writes the same bytes"; else notok "$t: --block 7 writes the same bytes"; fi
done
run "$PA" -t heatmap --block 3 --window 5:40 f32.h5
cp "$TMP/out" "$TMP/hb3.gp"
run "$PA" -t heatmap --window 5:40 f32.h5
if cmp -s "$TMP/out" "$TMP/hb3.gp"; then ok "heatmap: --block 3 writes the default block's bytes"; else notok "heatmap: --block 3 writes the same bytes"; fi
# (9 digits: rotated.h5 is un-rotated by the reader, which changes the last bits.)
run "$PA" -t heads -f tsv f32.h5
cp "$TMP/out" "$TMP/ref.tsv"
for f in f64 f16 bf16 deflate interleaved rotated both invfreq fixedstr; do
    run "$PA" -t heads -f tsv "$f.h5"
    same "heads of $f.h5 equal f32.h5 (same data, other storage)" "$TMP/out" "$TMP/ref.tsv"
done
# Positions from 100 with L 116 split the rows as positions from 0 with L
# 16 (in-train rows p < L), and every statistic of the rows is the same; but
# the distances stay below 40 < 116, all seen in training: unseen mass 0.
run "$PA" -t heads -f tsv -L 116 offset.h5
run2=$(data "$TMP/out" | cut -f 6-14)
if [ "$(data "$TMP/ref.tsv" | cut -f 6-14)" = "$run2" ]; then
    ok "offset.h5 (positions from 100) with L 116 equals f32.h5 with L 16, row statistics"
else
    notok "offset.h5 with L 116 equals f32.h5 with L 16, row statistics"
fi
is "offset.h5 with L 116: distances below 40 were all seen in training: unseen_mass 0 for every head" \
    "0 0 0 0 0 0 0 0" "$(data "$TMP/out" | awk -F'\t' 'NR > 1 { printf "%s%s", sep, $16; sep = " " }')"

# Pooling: counts add and means are pair-weighted (sums over sums).
run "$PA" -f tsv --bins 0 --digits 17 -l 0 f32.h5
data "$TMP/out" >"$TMP/a.tsv"
run "$PA" -f tsv --bins 0 --digits 17 -l 0 short.h5
data "$TMP/out" >"$TMP/b.tsv"
run "$PA" -f tsv --bins 0 --digits 17 -l 0 f32.h5 short.h5
data "$TMP/out" >"$TMP/ab.tsv"
bad=$(awk -F'\t' '
    FNR == 1 { next }
    { key = $2 SUBSEP $4 }
    FILENAME ~ /\/a.tsv$/ { na[key] = $6; la[key] = $7; pa[key] = $8; ua[key] = $9; ta[key] = $10; next }
    FILENAME ~ /\/b.tsv$/ { nb[key] = $6; lb[key] = $7; pb[key] = $8; ub[key] = $9; tb[key] = $10; next }
    {
        hasb = key in nb # (before nb[key] below creates it)
        n = na[key] + nb[key]
        for (c = 7; c <= 9; c++) {
            va = c == 7 ? la[key] : c == 8 ? pa[key] : ua[key]
            vb = c == 7 ? lb[key] : c == 8 ? pb[key] : ub[key]
            want = ((key in na) ? na[key] * va : 0) + (hasb && nb[key] > 0 ? nb[key] * vb : 0)
            want /= n
            d = $c - want; if (d < 0) d = -d
            s = want < 0 ? -want : want; if (s < 1) s = 1
            if (d > 1e-12 * s) bad++
        }
        # last_prob: the mean of the files that reach the distance
        lw = (hasb && tb[key] != "nan") ? (ta[key] + tb[key]) / 2 : ta[key]
        d = $10 - lw; if (d < 0) d = -d; if (d > 1e-15) bad++
        if ($6 != n) bad++
        rows++
    }
    END { print (rows > 0 ? bad + 0 : "no rows") }' "$TMP/a.tsv" "$TMP/b.tsv" "$TMP/ab.tsv")
if [ "$bad" = 0 ]; then ok "pooling two files: counts add, means are pair-weighted, last_prob averages the files"; else notok "pooling two files" "$bad values differ"; fi

# ------------------------------------------------------ the full-matrix reference
# refattn (tests/refattn.c) reads the file with HDF5 itself, rotates, builds
# each head's T x T matrix and computes every column by its definition.
refcheck() { # DESC FILE LAYER [ROWS]
    desc=$1 file=$2 layer=$3 rows=${4:-}
    "$PA" -f tsv --bins 0 --digits 17 -l "$layer" ${rows:+--rows "$rows"} "$file" >"$TMP/rp.tsv" 2>"$TMP/rp.err" &&
        "$PA" -t heads -f tsv --digits 17 -l "$layer" ${rows:+--rows "$rows"} "$file" >"$TMP/rh.tsv" 2>>"$TMP/rp.err"
    if [ $? -ne 0 ]; then
        notok "$desc" "peanalyze failed: $(head -n 1 "$TMP/rp.err")"
    elif "$REF" "$file" "$layer" "$TMP/rp.tsv" "$TMP/rh.tsv" $rows >"$TMP/ref.log" 2>&1; then
        ok "$desc ($(tail -n 1 "$TMP/ref.log"))"
    else
        notok "$desc" "$(tail -n 2 "$TMP/ref.log" | tr '\n' ' ')"
    fi
}
refcheck "attn.h5 layer 0: profile and heads equal the full-matrix reference" attn.h5 0
refcheck "attn.h5 layer 1: the same" attn.h5 1
refcheck "attn-softcap.h5: softcap 1.5, the same" attn-softcap.h5 2
refcheck "attn-softcap.h5 --rows 7: the same over rows 0 6 13 19 26 32 39" attn-softcap.h5 2 7
refcheck "attn-gappy.h5: positions with gaps, the same" attn-gappy.h5 0
refcheck "interleaved.h5: the other pairing, the same" interleaved.h5 2
# The reference can fail: a table with one probability changed by 1e-5 is refused.
awk -F'\t' 'BEGIN { OFS = "\t" } !/^#/ && $1 ~ /^[0-9]/ && !done && $4 == 3 { $8 = $8 + 1e-5; done = 1 } { print }' "$TMP/rp.tsv" >"$TMP/rp-bad.tsv"
if "$REF" interleaved.h5 2 "$TMP/rp-bad.tsv" "$TMP/rh.tsv" >/dev/null 2>&1; then
    notok "refattn refuses a table with one probability off by 1e-5"
else
    ok "refattn refuses a table with one probability off by 1e-5"
fi

# ------------------------------------------------------ the real dump (acceptance)
if [ ! -r "$REAL" ]; then
    echo "skip - the real dump: $REAL is missing"
else
    run "$PA" -t loss --bins 6 -f tsv "$REAL"
    got=$(lossrows "$TMP/out" | awk -F'\t' 'NR > 1 { printf "%s%s", sep, ($1 < 512 ? ($6 == 0 ? "zero" : "nonzero") : ($6 > 1 ? "above1" : "below1")); sep = " " }')
    is "real dump: the recorded excess loss is 0 below L = 512 and above 1 nat in every bin beyond it" \
        "zero above1 above1 above1 above1 above1" "$got"
    run "$PA" -t heads -f tsv "$REAL"
    n=$(data "$TMP/out" | awk -F'\t' '$1 ~ /^[0-9]/ && $4 == 512 && $5 == 2560' | wc -l)
    if [ "$status" -eq 0 ] && [ "$n" -eq 40 ]; then ok "real dump: heads table of all 5 layers x 8 heads, 512 rows in-train and 2560 beyond"; else notok "real dump: heads table" "status $status, $n rows"; fi
    run "$PA" -t layers -f tsv "$REAL"
    n=$(data "$TMP/out" | awk -F'\t' '$1 ~ /^[0-9]/ && $2 == 8' | wc -l)
    if [ "$status" -eq 0 ] && [ "$n" -eq 5 ]; then ok "real dump: layers table of 5 layers of 8 heads"; else notok "real dump: layers table" "status $status, $n rows"; fi
    refcheck "real dump layer 0 (T 3072, float16, interleaved): every column of 8 heads equals the full-matrix reference" "$REAL" 0
    refcheck "real dump layer 4: the same" "$REAL" 4
    refcheck "real dump layer 2 --rows 100: the same" "$REAL" 2 100
    run "$PA" -t heatmap -f tsv --digits 17 -l 3 --head 5 --pixels 64 "$REAL"
    got=$(data "$TMP/out" | awk -F'\t' '$1 ~ /^[0-9]/ { s[$1] += $4 * ($3 - $2 + 1); if ($1 < 1792) bad++ }
        END { for (r in s) { n++; d = s[r] - 1; if (d < 0) d = -d; if (d > 1e-12) bad++ } print n, bad + 0 }')
    if [ "$got" = "256 0" ]; then ok "real dump heat map: the last 256 rows by default, each row's mass 1"; else notok "real dump heat map" "$got"; fi
fi

# ------------------------------------------------------------------ output
expect 0 "" "-o writes a file" "$PA" -o "$TMP/table.tsv" -t heads -f tsv f32.h5
if [ -s "$TMP/table.tsv" ] && [ ! -s "$TMP/out" ]; then ok "-o: the table is in the file, not on stdout"; else notok "-o: the table is in the file"; fi
expect 1 "peanalyze: bad-q-nan.h5: layer 0: q head 1 token 5" "a failing run" "$PA" -o "$TMP/failed.tsv" bad-q-nan.h5
if ls "$TMP"/failed.tsv* >/dev/null 2>&1; then notok "a failed run leaves no file behind"; else ok "a failed run leaves no file behind"; fi
expect 0 "" "-o for the heat map" "$PA" -t heatmap -o "$TMP/hm.gp" f32.h5
if [ "$(grep -vc '^#' "$TMP/hm.gp")" -eq 41 ]; then ok "heat map: the count line and 40 rows"; else notok "heat map: the count line and 40 rows"; fi
if [ -w /dev/full ]; then
    expect 1 "peanalyze: standard output: write error: No space left on device" "> /dev/full fails with status 1" \
        sh -c "'$PA' -t heads f32.h5 >/dev/full"
    expect 1 "peanalyze: standard output: write error" "a heat map > /dev/full fails with status 1" \
        sh -c "'$PA' -t heatmap f32.h5 >/dev/full"
    expect 1 "peanalyze: standard output: write error" "--fail-on > /dev/full: status 1, not 3" \
        sh -c "'$PA' -q -t heads --fail-on ood attn.h5 >/dev/full"
    expect 1 "peanalyze: standard output: write error" "--help > /dev/full fails with status 1" \
        sh -c "'$PA' --help >/dev/full"
else
    echo "skip - /dev/full is not writable here"
fi
run sh -c "'$PA' --bins 0 attn.h5 2>'$TMP/pipe.err' | head -n 1 >/dev/null"
if [ ! -s "$TMP/pipe.err" ]; then ok "| head -n 1 ends quietly"; else notok "| head -n 1 ends quietly" "$(head -n 1 "$TMP/pipe.err")"; fi
run "$PA" -v -j 2 -t heads attn.h5
if [ "$status" -eq 0 ] && [ "$(grep -c '^peanalyze: layer [0-9]* done at [0-9.]* s$' "$TMP/err")" -eq 2 ] &&
    tail -n 1 "$TMP/err" | grep -q '^peanalyze: 6 heads, T up to 128, -j 2, done in [0-9.]* s$'; then
    ok "-v reports each layer, then the heads, T, the threads and the time"
else
    notok "-v reports each layer, then the heads, T, the threads and the time" "status $status: $(tr '\n' '|' <"$TMP/err")"
fi

# ------------------------------------------------------------------ figures
if ! command -v gnuplot >/dev/null 2>&1; then
    echo "skip - figure scripts: gnuplot is not installed"
    exit 0
fi
magic() {
    [ -s "$1" ] && [ "$(head -c $(($(echo "$2" | wc -w))) "$1" | od -An -tx1 | tr -s ' \n' '  ' | sed 's/^ //; s/ $//')" = "$2" ]
}
contains() {
    desc=$1 file=$2
    shift 2
    missing=""
    for want_s in "$@"; do grep -qF -- "$want_s" "$file" || missing="$missing '$want_s'"; done
    if [ -z "$missing" ]; then ok "$desc"; else notok "$desc" "missing:$missing"; fi
}
"$PA" --bins 32 attn.h5 >"$TMP/prof.gp" && "$PA" -t layers attn.h5 >"$TMP/layers.gp" &&
    "$PA" -t heatmap -l 0 --head 2 --window 0:64 --pixels 32 attn.h5 >"$TMP/hin.gp" &&
    "$PA" -t heatmap -l 0 --head 2 --window 64:128 --pixels 32 attn.h5 >"$TMP/hout.gp" &&
    "$PA" -t heads attn.h5 >"$TMP/heads.gp" && "$PA" -t heatmap -f tsv attn.h5 >"$TMP/hm.tsv" &&
    "$PA" attn-nolen.h5 >"$TMP/nolen.gp"
[ $? -eq 0 ] && ok "peanalyze makes the tables for the figures" || notok "peanalyze makes the tables for the figures"
for s in attention attn-heatmap damage; do
    gp=$SCRIPTS/pe-fig-$s.gp
    case $s in
    attention) set -- "$TMP/prof.gp"
        want="distance m - n (tokens)|mean logit (left)|mean (m+1) p (right, log)|layer 0|layer 1|L = 64 (training length)|attn.h5: attention against distance" ;;
    attn-heatmap) set -- "$TMP/hin.gp" "$TMP/hout.gp"
        want="key position n (y: query position m)|layer 0 head 2, query positions 0..63, in-train|query positions 64..127, beyond L|L = 64" ;;
    damage) set -- "$TMP/layers.gp"
        want="layer|heads flagged ood (left axis)|mean |entropy shift| (right)|mean |sink mass shift| (right)|mean logit exceedance (right)|damage beyond L = 64" ;;
    esac
    for ext in png svg pdf txt; do
        expect 0 "" "$s: .$ext: status 0, stderr empty" gnuplot -c "$gp" "$@" "$TMP/$s.$ext"
    done
    if magic "$TMP/$s.png" "89 50 4e 47 0d 0a 1a 0a"; then ok "$s: PNG magic"; else notok "$s: PNG magic"; fi
    if magic "$TMP/$s.pdf" "25 50 44 46 2d"; then ok "$s: PDF magic"; else notok "$s: PDF magic"; fi
    if grep -q '<svg' "$TMP/$s.svg" && tail -n 3 "$TMP/$s.svg" | grep -q '</svg>'; then ok "$s: a whole SVG"; else notok "$s: a whole SVG"; fi
    (IFS='|'; for w in $want; do printf '%s\n' "$w"; done) >"$TMP/want.txt"
    missing=""
    while IFS= read -r w; do grep -qF -- "$w" "$TMP/$s.txt" || missing="$missing '$w'"; done <"$TMP/want.txt"
    if [ -z "$missing" ]; then ok "$s: the text rendering shows the axes, titles, key and L"; else notok "$s: the text rendering" "missing:$missing"; fi
    name=pe-fig-$s
    expect 2 "usage: gnuplot -c $name.gp" "$s: no arguments: usage, status 2" gnuplot -c "$gp"
    expect 2 "$name: OUT '$TMP/bad.jpg': unknown extension" "$s: unknown extension: status 2" gnuplot -c "$gp" "$@" "$TMP/bad.jpg"
    expect 1 "$name: OUT '$TMP/no/such/x.png': its folder does not exist" "$s: OUT in a missing folder: status 1" \
        gnuplot -c "$gp" "$@" "$TMP/no/such/x.png"
    expect 2 "$name: L=0: not a positive integer" "$s: L=0: status 2" gnuplot -c "$gp" "$@" "$TMP/bad.png" L=0
    expect 0 "" "$s: L=100 overrides the table" gnuplot -c "$gp" "$@" "$TMP/$s-L.txt" L=100
    if grep -qF "L = 100" "$TMP/$s-L.txt" && ! grep -qF "L = 64" "$TMP/$s-L.txt"; then ok "$s: L=100 is marked, not 64"; else notok "$s: L=100 is marked, not 64"; fi
done
A=$SCRIPTS/pe-fig-attention.gp
expect 1 "pe-fig-attention: cannot read table '$TMP/no-such.gp'" "attention: missing table: status 1" gnuplot -c "$A" "$TMP/no-such.gp" "$TMP/bad.png"
expect 1 "pe-fig-attention: $TMP/heads.gp: not a peanalyze profile table" "attention: a heads table is refused" gnuplot -c "$A" "$TMP/heads.gp" "$TMP/bad.png"
expect 1 "pe-fig-attention: head 5 of layer 0 is not in $TMP/prof.gp (heads: 0 1 2)" "attention: a head not in the table" gnuplot -c "$A" "$TMP/prof.gp" "$TMP/bad.png" 5
expect 2 "pe-fig-attention: HEAD 'x' is not a head index or 'mean'" "attention: HEAD not a number" gnuplot -c "$A" "$TMP/prof.gp" "$TMP/bad.png" x
expect 0 "" "attention: one head" gnuplot -c "$A" "$TMP/prof.gp" "$TMP/one.txt" 1
contains "attention: one head is named" "$TMP/one.txt" "head 1 of each layer"
expect 0 "pe-fig-attention: warning: $TMP/nolen.gp gives no training length" "attention: no L: drawn, one warning" gnuplot -c "$A" "$TMP/nolen.gp" "$TMP/nolen.txt"
H=$SCRIPTS/pe-fig-attn-heatmap.gp
expect 2 "usage: gnuplot -c pe-fig-attn-heatmap.gp" "attn-heatmap: two arguments: usage" gnuplot -c "$H" "$TMP/hin.gp" "$TMP/bad.png"
expect 1 "pe-fig-attn-heatmap: $TMP/hm.tsv: not a peanalyze heatmap table in gnuplot format" "attn-heatmap: a tsv heat map is refused" \
    gnuplot -c "$H" "$TMP/hin.gp" "$TMP/hm.tsv" "$TMP/bad.png"
expect 1 "pe-fig-attn-heatmap: $TMP/prof.gp: not a peanalyze heatmap table" "attn-heatmap: a profile is refused" \
    gnuplot -c "$H" "$TMP/prof.gp" "$TMP/hout.gp" "$TMP/bad.png"
D=$SCRIPTS/pe-fig-damage.gp
expect 1 "pe-fig-damage: $TMP/heads.gp: not a peanalyze layers table" "damage: a heads table is refused" gnuplot -c "$D" "$TMP/heads.gp" "$TMP/bad.png"
if ls "$TMP"/bad* "$TMP/no" >/dev/null 2>&1; then notok "failed figure calls write no figure" "$(ls -d "$TMP"/bad* 2>/dev/null)"; else ok "failed figure calls write no figure"; fi
# ------------------------------------------------------------------ loss (ground truth)
# truth*.h5 hold fx_nll and fx_nll_control of tests/fixtures.h: nll = 1 +
# (m mod 5)/4, the control lower by (m - 15)/32 from position 16 on, the
# last token NaN.  The expected bins are summed here, token by token.
# lossref T1 [T2 ...]: the expected rows "lo hi n nll ctl excess" for files of
# T1, T2 ... tokens at positions 0 .. T-1, 4 bins over the longest.
lossref() {
    awk -v ts="$*" 'BEGIN {
        nf = split(ts, T, " "); P = 0; for (f = 1; f <= nf; f++) if (T[f] > P) P = T[f]
        for (b = 0; b < 4; b++) {
            lo = int(b * P / 4); hi = int((b + 1) * P / 4) - 1; n = s = c = x = 0
            for (f = 1; f <= nf; f++) for (m = lo; m <= hi && m < T[f] - 1; m++) {
                v = 1 + (m % 5) / 4; d = m >= 16 ? (m - 15) / 32 : 0
                n++; s += v; c += v - d; x += d
            }
            printf "%d %d %d %.9f %.9f %.9f\n", lo, hi, n, s / n, c / n, x / n
        }
    }'
}
# lossgot TABLE: the rows of a tsv loss table in the same form.
lossgot() { lossrows "$1" | awk -F'\t' '$1 == "bin_lo" { next } { printf "%d %d %d %.9f %.9f %.9f\n", $1, $2, $3, $4, $5, $6 }'; }

run "$PA" -t loss --bins 4 --digits 17 -f tsv truth.h5
is "loss: one file: bins, counts and means equal the token-by-token sums" "$(lossref 40)" "$(lossgot "$TMP/out")"
is "loss: header: pe, the six columns, then four per layer" \
    "pe	bin_lo	bin_hi	n	nll	nll_control	excess	l0_unseen_mass	l0_entropy_nats	l0_sink_mass	l0_exceedance	l2_unseen_mass	l2_entropy_nats	l2_sink_mass	l2_exceedance" \
    "$(data "$TMP/out" | head -n 1)"
if grep -qx '# train_len: 16' "$TMP/out" && grep -q '^# control: window:16:1 ' "$TMP/out" &&
    grep -qx '# pe: each file rotated with the spec its loss was recorded with (the pe column)' "$TMP/out" &&
    [ "$(sed '/^# section: /,$d' "$TMP/out" | data /dev/stdin | awk -F'\t' 'NR > 1 { print $1 }' | sort -u)" = rope ]; then
    ok "loss: train_len, control window as comment lines; pe rope in every row"
else
    notok "loss: train_len, control window and pe" "$(grep '^#' "$TMP/out" | tr '\n' ' ')"
fi
run "$PA" -t loss --bins 4 --digits 17 -f tsv truth.h5 truth-short.h5
is "loss: two files pool by summing per bin" "$(lossref 40 24)" "$(lossgot "$TMP/out")"
run "$PA" -t loss -f tsv truth.h5
is "loss: 16 position bins by default" "16" "$(lossrows "$TMP/out" | awk 'NR > 1' | wc -l | tr -d ' ')"
run "$PA" -t loss --bins 0 -f tsv truth.h5
is "loss: --bins 0: one row per position, the last without a loss" "40 0" "$(lossrows "$TMP/out" | awk -F'\t' 'NR > 1 { r++; last = $3 } END { print r, last }')"
excess_in=$(lossrows "$TMP/out" | awk -F'\t' 'NR > 1 && $1 < 16 && $6 != 0 { bad++ } END { print bad + 0 }')
is "loss: --bins 0: the excess is 0 at every position below L" "0" "$excess_in"
run "$PA" -t loss --bins 4 -f tsv truth.h5 truth-nocontrol.h5
if [ "$status" -eq 0 ] && [ "$(lossrows "$TMP/out" | awk -F'\t' 'NR > 1 && $5 == "nan" && $6 == "nan"' | wc -l)" -eq 4 ] &&
    grep -q '^# control: none (truth-nocontrol.h5 has no /tokens/nll_control)' "$TMP/out"; then
    ok "loss: a file without the control: nll_control and excess are nan, and a comment says which file"
else
    notok "loss: a file without the control" "status $status; $(grep '^# control' "$TMP/out")"
fi
run "$PA" -t loss --bins 4 -f json truth-nocontrol.h5
if [ "$status" -eq 0 ] && jq -e '.table == "loss" and (.rows | length) == 4 and .rows[0].nll_control == null and .rows[3].n == 9' "$TMP/out" >/dev/null 2>&1; then
    ok "loss: json: null for a missing control"
else
    notok "loss: json: null for a missing control" "status $status"
fi
expect 1 "peanalyze: f32.h5: /tokens/nll: missing: -t loss needs the model's loss (pe-dump writes it)" \
    "loss: a file without /tokens/nll is refused, naming it" "$PA" -t loss truth.h5 f32.h5
expect 1 "peanalyze: truth-otherwindow.h5: /tokens/nll_control: control: window:8:1 differs from window:16:1 in truth.h5" \
    "loss: files whose controls differ are refused" "$PA" -t loss truth.h5 truth-otherwindow.h5
run "$PA" -t loss --bins 4 --digits 17 -f tsv truth.h5 truth-otherpe.h5
got=$(sed '/^# section/,$d' "$TMP/out" | data /dev/stdin | awk -F'\t' 'NR > 1 { n[$1]++ } END { print n["rope"] + 0, n["pi:4"] + 0 }')
cal=$(sed -n '/^# section: calibration/,$p' "$TMP/out" | sed '/^# section: compare/,$d' | awk -F'\t' '!/^#/ && $1 != "pe" { n[$1]++ } END { print n["rope"] + 0, n["pi:4"] + 0 }')
if [ "$status" -eq 0 ] && [ "$got" = "4 4" ] && [ "$cal" = "8 8" ]; then
    ok "loss: files recorded with different specs line up: one block of bins and of calibration rows per pe"
else
    notok "loss: files recorded with different specs line up" "status $status, bins $got, calibration $cal; $(head -n 1 "$TMP/err")"
fi
rope_block=$(sed '/^# section/,$d' "$TMP/out" | data /dev/stdin | awk -F'\t' '$1 == "rope"' | cut -f 2-7)
alone=$("$PA" -t loss --bins 4 --digits 17 -f tsv truth.h5 | sed '/^# section/,$d' | data /dev/stdin | awk -F'\t' '$1 == "rope"' | cut -f 2-7)
is "loss: the rope block of two specs' files equals the rope file alone" "$alone" "$rope_block"
# The compare section: truth-pi.h5 records truth.h5's tokens with a loss
# higher by (m mod 3)/8 (tests/fixtures.h: fx_nll_shift).  The expected mean
# and batch-means standard error, in batches of floor(sqrt(n)) tokens, are
# summed here from that formula.
cmpref() {
    awk 'function row(lo, hi,   n, m, b, i, s, c, tot, mean, ss, nb, r) {
            n = 0; for (m = lo; m <= hi; m++) x[n++] = (m % 3) / 8
            b = 1; while ((b + 1) * (b + 1) <= n) b++
            tot = 0; for (i = 0; i < n; i++) tot += x[i]; mean = tot / n
            ss = 0; nb = 0
            for (i = 0; i < n; i += b) { s = 0; c = 0; for (m = i; m < i + b && m < n; m++) { s += x[m]; c++ }
                r = s - mean * c; ss += r * r; nb++ }
            printf "%d %.12f %.12f", n, mean, sqrt(nb / (nb - 1) * ss) / n
        }
        BEGIN { printf "rope pi:4 "; row(0, 15); printf " "; row(16, 38); print "" }'
}
cmpgot() { sed -n '/^# section: compare/,$p' "$1" | awk -F'\t' '!/^#/ && $1 != "pe_a" { printf "%s %s %d %.12f %.12f %d %.12f %.12f\n", $1, $2, $3, $4, $5, $6, $7, $8 }'; }
run "$PA" -t loss --bins 4 --digits 17 -f tsv truth.h5 truth-pi.h5
is "loss: compare: the difference of two specs' losses over the same tokens, and its batch-means standard error, within L and beyond" \
    "$(cmpref)" "$(cmpgot "$TMP/out")"
run "$PA" -t loss --bins 4 -f tsv truth.h5 truth-pi-otherids.h5
is "loss: compare: files whose token ids differ are not compared (n 0, nan)" "rope pi:4 0 nan nan 0 nan nan" \
    "$(sed -n '/^# section: compare/,$p' "$TMP/out" | awk -F'\t' '!/^#/ && $1 != "pe_a" { print $1, $2, $3, $4, $5, $6, $7, $8 }')"
run "$PA" -t loss --bins 4 -f tsv truth.h5 truth-short.h5 truth-otherpe.h5
is "loss: compare: specs with different numbers of files are not compared" "rope pi:4 0 nan nan 0 nan nan" \
    "$(sed -n '/^# section: compare/,$p' "$TMP/out" | awk -F'\t' '!/^#/ && $1 != "pe_a" { print $1, $2, $3, $4, $5, $6, $7, $8 }')"
run "$PA" -t loss --bins 4 -f tsv truth.h5
is "loss: compare: no section with one spec" "0" "$(grep -c '^# section: compare' "$TMP/out")"
expect 2 "peanalyze: --pe: -t loss rotates each file with the spec its loss was recorded with (the pe attribute of /tokens/nll)" \
    "loss: --pe is refused" "$PA" -t loss --pe pi:4 truth.h5
expect 2 "peanalyze: --rows: not for -t loss" "loss: --rows is refused" "$PA" -t loss --rows 3 truth.h5
expect 2 "peanalyze: --fail-on: not for -t loss" "loss: --fail-on is refused" "$PA" -t loss --fail-on ood truth.h5
expect 2 "peanalyze: --head: only for -t heatmap" "loss: --head is refused" "$PA" -t loss --head 1 truth.h5
# The diagnostics and the calibration against the full-matrix reference
# (tests/refattn.c --loss: per-token values from the T x T matrix, Spearman
# by counting ranks), on the truth fixture and on the real dump.
losscheck() { # DESC FILE LAYER
    if "$PA" -t loss -f tsv --digits 17 -l "$3" "$2" >"$TMP/lc.tsv" 2>"$TMP/lc.err" &&
        "$REF" --loss "$2" "$3" "$TMP/lc.tsv" >"$TMP/lc.log" 2>&1; then
        ok "$1 ($(tail -n 1 "$TMP/lc.log"))"
    else
        notok "$1" "$(head -n 1 "$TMP/lc.err") $(tail -n 2 "$TMP/lc.log" | tr '\n' ' ')"
    fi
}
losscheck "loss: truth.h5 layer 0: per-layer bin diagnostics and calibration equal the full-matrix reference" truth.h5 0
losscheck "loss: truth.h5 layer 2: the same" truth.h5 2
if [ -r "$REAL" ]; then
    losscheck "loss: real dump layer 0: the same" "$REAL" 0
    losscheck "loss: real dump layer 3: the same" "$REAL" 3
fi
awk -F'\t' 'BEGIN { OFS = "\t" } s && $3 == "unseen_mass" && !done { $6 = $6 + 1e-6; done = 1 } /^# section:/ { s = 1 } { print }' "$TMP/lc.tsv" >"$TMP/lc-bad.tsv"
if "$REF" --loss "${REAL:-truth.h5}" 3 "$TMP/lc-bad.tsv" >/dev/null 2>&1; then
    notok "refattn --loss refuses a table with one correlation off by 1e-6"
else
    ok "refattn --loss refuses a table with one correlation off by 1e-6"
fi

# The loss figure (scripts/pe-fig-loss.gp).
G=$SCRIPTS/pe-fig-loss.gp
"$PA" -t loss --bins 8 truth.h5 >"$TMP/loss.gp" && "$PA" -t loss --bins 8 -f tsv truth-nocontrol.h5 >"$TMP/loss-noctl.tsv"
[ $? -eq 0 ] && ok "peanalyze makes the loss tables for the figure" || notok "peanalyze makes the loss tables for the figure"
for ext in png svg pdf txt; do
    expect 0 "" "loss figure: .$ext: status 0, stderr empty" gnuplot -c "$G" "$TMP/loss.gp" "$TMP/loss.$ext"
done
if magic "$TMP/loss.png" "89 50 4e 47 0d 0a 1a 0a"; then ok "loss figure: PNG magic"; else notok "loss figure: PNG magic"; fi
if magic "$TMP/loss.pdf" "25 50 44 46 2d"; then ok "loss figure: PDF magic"; else notok "loss figure: PDF magic"; fi
contains "loss figure: the text rendering shows the axes, title, control, key and L" "$TMP/loss.txt" \
    "position (bin centre)" "truth.h5: the model's loss against position" "(control: window:16:1)" \
    "loss (full attention)" "control (keys within L, plus sinks)" "L = 16"
expect 0 "" "loss figure: a table without the control" gnuplot -c "$G" "$TMP/loss-noctl.tsv" "$TMP/loss-noctl.txt"
contains "loss figure: without the control, the key says so" "$TMP/loss-noctl.txt" "(control: none)" "the table has no control"
expect 0 "" "loss figure: L=20 overrides the table" gnuplot -c "$G" "$TMP/loss.gp" "$TMP/loss-L.txt" L=20
if grep -qF "L = 20" "$TMP/loss-L.txt" && ! grep -qF "L = 16" "$TMP/loss-L.txt"; then ok "loss figure: L=20 is marked, not 16"; else notok "loss figure: L=20 is marked, not 16"; fi
expect 2 "usage: gnuplot -c pe-fig-loss.gp" "loss figure: no arguments: usage, status 2" gnuplot -c "$G"
expect 2 "pe-fig-loss: OUT '$TMP/bad.jpg': unknown extension" "loss figure: unknown extension: status 2" gnuplot -c "$G" "$TMP/loss.gp" "$TMP/bad.jpg"
expect 1 "pe-fig-loss: cannot read table '$TMP/no-such.gp'" "loss figure: missing table: status 1" gnuplot -c "$G" "$TMP/no-such.gp" "$TMP/bad.png"
expect 1 "pe-fig-loss: $TMP/heads.gp: not a peanalyze loss table" "loss figure: a heads table is refused" gnuplot -c "$G" "$TMP/heads.gp" "$TMP/bad.png"
expect 2 "pe-fig-loss: L=0: not a positive integer" "loss figure: L=0: status 2" gnuplot -c "$G" "$TMP/loss.gp" "$TMP/bad.png" L=0
if ls "$TMP"/bad* >/dev/null 2>&1; then notok "loss figure: failed calls write no figure"; else ok "loss figure: failed calls write no figure"; fi
# A table of dumps recorded with two specs: one line per spec.
"$PA" -t loss --bins 4 truth.h5 truth-otherpe.h5 >"$TMP/loss2.gp"
expect 0 "" "loss figure: two specs: status 0" gnuplot -c "$G" "$TMP/loss2.gp" "$TMP/loss2.txt"
contains "loss figure: two specs: one line per spec and rope's control" "$TMP/loss2.txt" \
    "run with each positional spec" "loss with rope" "loss with pi:4" "control of rope (keys within L, plus sinks)"

# The what-if figure (scripts/pe-fig-whatif.gp).
G=$SCRIPTS/pe-fig-whatif.gp
"$PA" -t whatif --pe pi:4 --pe logn f32.h5 >"$TMP/whatif.gp"
[ $? -eq 0 ] && ok "peanalyze makes the whatif table for the figure" || notok "peanalyze makes the whatif table for the figure"
for ext in png svg pdf txt; do
    expect 0 "" "whatif figure: .$ext: status 0, stderr empty" gnuplot -c "$G" "$TMP/whatif.gp" "$TMP/whatif.$ext"
done
if magic "$TMP/whatif.png" "89 50 4e 47 0d 0a 1a 0a"; then ok "whatif figure: PNG magic"; else notok "whatif figure: PNG magic"; fi
contains "whatif figure: the text rendering shows the axes, title and one key entry per spec" "$TMP/whatif.txt" \
    "f32.h5: what each positional remedy does" "attention on unseen distances beyond L" \
    "rope" "pi:4" "logn"
expect 2 "usage: gnuplot -c pe-fig-whatif.gp" "whatif figure: no arguments: usage, status 2" gnuplot -c "$G"
expect 2 "pe-fig-whatif: OUT '$TMP/bad.jpg': unknown extension" "whatif figure: unknown extension: status 2" \
    gnuplot -c "$G" "$TMP/whatif.gp" "$TMP/bad.jpg"
expect 1 "pe-fig-whatif: cannot read table '$TMP/no-such.gp'" "whatif figure: missing table: status 1" \
    gnuplot -c "$G" "$TMP/no-such.gp" "$TMP/bad.png"
expect 1 "pe-fig-whatif: $TMP/heads.gp: not a peanalyze whatif table" "whatif figure: a heads table is refused" \
    gnuplot -c "$G" "$TMP/heads.gp" "$TMP/bad.png"
if ls "$TMP"/bad* >/dev/null 2>&1; then notok "whatif figure: failed calls write no figure"; else ok "whatif figure: failed calls write no figure"; fi
exit 0
