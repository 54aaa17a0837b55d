#!/bin/sh
# Command-line tests of pedecomp: exit statuses, exact messages, golden
# tables, and relations that must hold between runs (dtype and layout
# invariance, pooling, threads, an independent direct sum).
#
#   tests/cli-pedecomp.sh BUILD_DIR        (run by tests/run.sh)
. tests/lib.sh
PEDECOMP=$BUILD/pedecomp

# ---------------------------------------------------------------- pedecomp

# Usage: --help on stdout, --version, bad options (status 2, one line).
run "$PEDECOMP" --help
if [ "$status" -eq 0 ] && grep -q '^Usage: pedecomp' "$TMP/out" && [ ! -s "$TMP/err" ]; then
    ok "pedecomp --help: usage on stdout, status 0"
else
    notok "pedecomp --help" "status $status"
fi
for opt in --table --bins --method --scale --check --layers --heads --train-len --pairing --output \
    --format --digits --jobs --max-memory --quiet --verbose --version; do
    if grep -q -- "$opt" "$TMP/out"; then ok "pedecomp --help lists $opt"; else notok "pedecomp --help lists $opt"; fi
done
run "$PEDECOMP" --version
if [ "$status" -eq 0 ] && grep -q '^pedecomp (petools) ' "$TMP/out" && grep -q 'HDF5 1\.' "$TMP/out" &&
    grep -q 'FFTW' "$TMP/out"; then
    ok "pedecomp --version names the version, HDF5 and FFTW"
else
    notok "pedecomp --version" "$(cat "$TMP/out")"
fi
expect 2 "pedecomp: no input file" "no input file" "$PEDECOMP"
expect 2 "pedecomp: unknown option --frobnicate" "unknown long option" "$PEDECOMP" --frobnicate f32.h5
expect 2 "pedecomp: unknown option -Z" "unknown short option" "$PEDECOMP" -Z f32.h5
expect 2 "pedecomp: option --bins needs an argument" "missing argument" "$PEDECOMP" f32.h5 --bins
expect 2 "pedecomp: --bins: '12x' is not an integer" "trailing garbage" "$PEDECOMP" --bins 12x f32.h5
expect 2 "pedecomp: --bins: -1 is out of range" "negative bins" "$PEDECOMP" --bins -1 f32.h5
expect 2 "pedecomp: --bins: 99999999999999999999999 is out of range" "overflow" "$PEDECOMP" --bins 99999999999999999999999 f32.h5
expect 2 "pedecomp: --bins: '' is not an integer" "empty number" "$PEDECOMP" --bins '' f32.h5
expect 2 "pedecomp: --table: unknown value 'nonsense'" "unknown table" "$PEDECOMP" -t nonsense f32.h5
expect 2 "pedecomp: --method: unknown value 'slow'" "unknown method" "$PEDECOMP" --method slow f32.h5
expect 2 "pedecomp: --format: unknown format 'xml'" "unknown format" "$PEDECOMP" -f xml f32.h5
expect 2 "pedecomp: --pairing: unknown value 'zigzag'" "unknown pairing" "$PEDECOMP" --pairing zigzag f32.h5
expect 2 "pedecomp: --digits: 0 is out of range" "digits range" "$PEDECOMP" --digits 0 f32.h5
expect 2 "pedecomp: --train-len: 0 is out of range" "train length 0" "$PEDECOMP" -L 0 f32.h5
expect 2 "pedecomp: --jobs: 'two' is not an integer" "jobs not a number" "$PEDECOMP" -j two f32.h5
expect 2 "pedecomp: --layers: empty list" "empty layer list" "$PEDECOMP" -l '' f32.h5
expect 2 "pedecomp: --layers: '1,,2' is not a list" "malformed layer list" "$PEDECOMP" -l 1,,2 f32.h5
expect 2 "pedecomp: --layers: range 3-1 runs backwards" "backward range" "$PEDECOMP" -l 3-1 f32.h5
expect 2 "pedecomp: --layers: -1 is out of range" "negative layer" "$PEDECOMP" -l -1 f32.h5
expect 2 "pedecomp: --layers: layer 1 is not in f32.h5" "missing layer" "$PEDECOMP" -l 1 f32.h5
expect 2 "pedecomp: --heads: head 9 does not exist" "missing head" "$PEDECOMP" -H 9 f32.h5
expect 2 "pedecomp: --scale 'yarn:x': factor is not a number" "bad scale" "$PEDECOMP" -t freqs --scale yarn:x f32.h5
expect 2 "pedecomp: --scale: only for -t freqs" "scale with profile" "$PEDECOMP" --scale pi:2 f32.h5
expect 2 "pedecomp: -t summary needs the training length" "summary without L" "$PEDECOMP" -t summary minimal.h5
if [ ! -s "$TMP/out" ]; then ok "a usage error found after opening the files writes nothing"; else notok "a usage error writes nothing" "$(head -n 1 "$TMP/out")"; fi
expect 2 "pedecomp: --scale 'ntk:2': ntk scaling needs rotary dim R >= 4" "a scaling the rotary dims do not allow" "$PEDECOMP" -t freqs --rotary-dim 2 -L 8 --scale ntk:2
if [ ! -s "$TMP/out" ]; then ok "... and writes nothing"; else notok "... and writes nothing"; fi
expect 2 "pedecomp: --rope-theta: only for -t freqs without an input file" "--rope-theta with a file" "$PEDECOMP" -t freqs --rope-theta 500000 f32.h5
expect 2 "pedecomp: --rotary-dim: must be even (got 7)" "odd --rotary-dim" "$PEDECOMP" -t freqs --rotary-dim 7 -L 8
expect 2 "pedecomp: --check: writes its own table" "--check with -t" "$PEDECOMP" --check -t summary f32.h5
expect 2 "pedecomp: --output: cannot create 'no/such/x.tsv': No such file or directory" "output in a missing folder" "$PEDECOMP" -o no/such/x.tsv f32.h5
cp f32.h5 "$TMP/in.h5"
sum_before=$(cksum <"$TMP/in.h5")
expect 2 "pedecomp: --output: '$TMP/in.h5' is an input file" "-o onto an input is refused" "$PEDECOMP" -o "$TMP/in.h5" "$TMP/in.h5"
if [ "$(cksum <"$TMP/in.h5")" = "$sum_before" ]; then ok "-o onto an input leaves it untouched"; else notok "-o onto an input leaves it untouched"; fi

# Every refusal of the qkdump spec: status 1, one line naming file and field.
while IFS='|' read -r file msg; do
    [ -n "$file" ] || continue
    expect 1 "pedecomp: $file: $msg" "refuses $file" "$PEDECOMP" "$file"
done <<'EOF'
bad-text.h5|not an HDF5 file
bad-empty.h5|not an HDF5 file (empty)
bad-truncated.h5|not a readable HDF5 file
bad-no-format.h5|format: missing required attribute
bad-format.h5|format: is 'npz', not 'qkdump'
bad-version.h5|format_version: is 2; this reader knows version 1
bad-version-str.h5|format_version: wrong kind: must be an integer
bad-no-heads.h5|n_heads: missing required attribute
bad-no-kv.h5|n_kv_heads: missing required attribute
bad-no-dim.h5|head_dim: missing required attribute
bad-heads-str.h5|n_heads: wrong kind: must be an integer
bad-theta-str.h5|rope_theta: wrong kind: must be a number
bad-pairing-int.h5|rope_pairing: wrong kind: must be a string
bad-heads-zero.h5|n_heads: must be positive (got 0)
bad-kv-neg.h5|n_kv_heads: must be positive (got -2)
bad-dim-zero.h5|head_dim: must be positive (got 0)
bad-kv-divide.h5|n_kv_heads: 3 does not divide n_heads 4
bad-rotary-odd.h5|rotary_dim: must be even and within [0, head_dim 8] (got 5)
bad-rotary-neg.h5|rotary_dim: must be even and within [0, head_dim 8] (got -2)
bad-rotary-big.h5|rotary_dim: must be even and within [0, head_dim 8] (got 10)
bad-pairing.h5|rope_pairing: is 'zigzag', must be 'half' or 'interleaved'
bad-no-pairing.h5|rope_pairing: missing (required when rotary_dim > 0
bad-no-layers.h5|/layers: missing (no layers)
bad-empty-layers.h5|/layers: holds no layer groups (no layers)
bad-no-k.h5|/layers/000: needs q and k, or q_rot and k_rot
bad-q-rank.h5|/layers/000/q: must have 3 dimensions [heads, T, head_dim], has 2
bad-q-shape.h5|/layers/000/q: shape [4, 40, 10], expected [4, T, 8]
bad-k-heads.h5|/layers/000/k: shape [4, 40, 8], expected [2, 40, 8]
bad-q-int.h5|/layers/000/q: wrong kind: must hold floating-point values
bad-T-mismatch.h5|/layers/002/q: shape [4, 39, 8], expected [4, 40, 8]
bad-T-zero.h5|/layers/000/q: T is 0 (no tokens)
bad-positions-order.h5|/tokens/positions: not strictly increasing at token 20 (19 after 19)
bad-positions-len.h5|/tokens/positions: has 39 values, expected T = 40
bad-positions-float.h5|/tokens/positions: wrong kind: must be integers
bad-freq-len.h5|/rope/inv_freq: has 2 values, expected rotary_dim/2 = 3
bad-freq-neg.h5|/rope/inv_freq: value 1 is negative (-0.1)
bad-freq-nan.h5|/rope/inv_freq: value 1 is not finite
bad-layer-freq-inf.h5|/layers/002/inv_freq: value 1 is not finite
bad-huge.h5|shape: one head of T 34359738368 x head_dim 8 needs 4.0 TiB, more than the
bad-q-nan.h5|layer 0: q head 1 token 5 dim 3: value is NaN
bad-k-inf.h5|layer 0: k head 1 token 5 dim 3: value is infinite
bad-lzf.h5|/layers/000/q: compressed with h5py's lzf filter
bad-dup-index.h5|/layers/002: index 0 repeats /layers/000
EOF
expect 1 "pedecomp: no-such.h5: cannot open: No such file or directory" "missing file" "$PEDECOMP" no-such.h5
expect 1 "pedecomp: .: is a directory" "a directory" "$PEDECOMP" .
# An unreadable file: tests/cli-corpus.sh, for all three tools.
expect 1 "pedecomp: bad-huge.h5: shape: one head of T 34359738368 x head_dim 8 needs 4.0 TiB, more than the 1.0 GiB allowed by --max-memory" \
    "--max-memory limit is named" "$PEDECOMP" --max-memory 1G bad-huge.h5
expect 1 "pedecomp: f32.h5: layer 1 of threelayers.h5 is missing; files pooled together need the same layers" \
    "pooled files with different layers are refused" "$PEDECOMP" f32.h5 threelayers.h5
expect 1 "pedecomp: f32.h5: layer 1 of threelayers.h5 is missing" \
    "... whatever their order" "$PEDECOMP" threelayers.h5 f32.h5
expect 0 "" "... and pool on the layers they share" "$PEDECOMP" -l 0,2 threelayers.h5 f32.h5
expect 1 "pedecomp: otherbase.h5: the frequencies (/rope/inv_freq or rope_theta): differs from f32.h5" \
    "pooling files that disagree is refused" "$PEDECOMP" f32.h5 otherbase.h5

# Golden tables: every table in every format.
golden pedecomp-profile.gp "$PEDECOMP" -l 0 -H 0,3 --bins 8 f32.h5
golden pedecomp-profile-full.tsv "$PEDECOMP" -f tsv -l 2 -H 1 --bins 0 f32.h5
golden pedecomp-profile.json "$PEDECOMP" -f json -l 0 -H 0 --bins 4 f32.h5
golden pedecomp-summary.gp "$PEDECOMP" -t summary f32.h5
golden pedecomp-summary.tsv "$PEDECOMP" -t summary -f tsv -H 2 f32.h5
golden pedecomp-summary.json "$PEDECOMP" -t summary -f json --min-pairs 1 -l 2 -H 2 f32.h5
golden pedecomp-freqs.gp "$PEDECOMP" -t freqs f32.h5
golden pedecomp-freqs-yarn.tsv "$PEDECOMP" -t freqs -f tsv --rotary-dim 128 -L 4096 --scale yarn:4
golden pedecomp-freqs-llama3.json "$PEDECOMP" -t freqs -f json --rotary-dim 128 --rope-theta 500000 -L 8192 --scale llama3:8:1:4:8192
golden pedecomp-check.tsv "$PEDECOMP" --check -f tsv both.h5 f32.h5
golden pedecomp-minimal.tsv "$PEDECOMP" -f tsv --bins 6 minimal.h5
golden pedecomp-layerfreq.tsv "$PEDECOMP" -t summary -f tsv -H 0 layerfreq.h5
golden pedecomp-norope.tsv "$PEDECOMP" -f tsv -H 0 --bins 4 norope.h5
golden pedecomp-t1.tsv "$PEDECOMP" -f tsv -H 0 t1.h5

golden pedecomp-usage.gp "$PEDECOMP" -t usage -l 2 -H 1,2 f32.h5
golden pedecomp-dims.tsv "$PEDECOMP" -t dims -f tsv -l 0 -H 3 f32.h5
golden pedecomp-spectrum.tsv "$PEDECOMP" -t spectrum -f tsv spectral.h5
golden pedecomp-power.json "$PEDECOMP" -t spectrum -f json --spectrum-of 2 -l 0 -H 0 f32.h5

# Frequency usage (man pedecomp(1), TABLES, usage): the rotation does not change a
# pair's norm, so q_rot-only files give the same usage to 1e-12; shares sum
# to 1; queries per query head, keys per key head.
run "$PEDECOMP" -t usage -f tsv --digits 17 f32.h5
data "$TMP/out" >"$TMP/usage-plain.tsv"
run "$PEDECOMP" -t usage -f tsv --digits 17 rotated.h5
data "$TMP/out" >"$TMP/usage-rot.tsv"
bad=$(paste "$TMP/usage-plain.tsv" "$TMP/usage-rot.tsv" | awk -F'\t' '
    NR == 1 { next }
    { rows++; for (c = 8; c <= 9; c++) { d = $c - $(c + 9); if (d < 0) d = -d; if (d > 1e-12 * ($c < 0 ? -$c : $c)) bad++ } }
    END { print rows == 36 ? bad + 0 : "rows " rows }')
if [ "$bad" = 0 ]; then ok "usage from q equals usage from q_rot to 1e-12 (36 rows)"; else notok "usage from q equals usage from q_rot to 1e-12" "$bad"; fi
bad=$(awk -F'\t' 'NR > 1 { s[$1 " " $2 " " $4] += $9 } END { for (k in s) { d = s[k] - 1; if (d < 0) d = -d; if (d > 1e-12) bad++; n++ } print n == 12 ? bad + 0 : "groups " n }' "$TMP/usage-plain.tsv")
if [ "$bad" = 0 ]; then ok "usage shares sum to 1 for each of 12 (layer, head, tensor)"; else notok "usage shares sum to 1" "$bad"; fi
if [ "$(awk -F'\t' 'NR > 1 && $4 == "k" { print $1 $2 $3 }' "$TMP/usage-plain.tsv" | sort -u | tr '\n' ' ')" = "000 011 200 211 " ]; then
    ok "usage: key rows per key head, head = kv_head"
else
    notok "usage: key rows per key head"
fi
run "$PEDECOMP" -t usage -f tsv -H 3 f32.h5
if [ "$(data "$TMP/out" | awk -F'\t' 'NR > 1 { print $2 $4 }' | sort -u | tr '\n' ' ')" = "1k 3q " ]; then
    ok "usage -H 3: query head 3 and the key head it uses"
else
    notok "usage -H 3: query head 3 and the key head it uses" "$(data "$TMP/out" | head -n 3 | tr '\n' ' ')"
fi

# Spectral purity: in spectral.h5 only pair 3 carries a second line (at 3
# theta, a tenth of the amplitude): the only pair flagged leaky, with leakage
# near a hundredth; the constant pairs are pure to 1e-3.
run "$PEDECOMP" -t spectrum -f tsv spectral.h5
flags=$(data "$TMP/out" | awk -F'\t' 'NR > 1 { printf "%s:%s ", $4, ($10 > 0.005 ? "leaky" : ($9 >= 0.999 ? "pure" : "?")) }')
if [ "$flags" = "0:pure 1:pure 2:pure 3:leaky " ]; then ok "spectrum: only the planted pair 3 is leaky"; else notok "spectrum: only the planted pair 3 is leaky" "$flags"; fi
if data "$TMP/out" | awk -F'\t' '$4 == 3 { exit !($10 >= 0.008 && $10 <= 0.012) }'; then
    ok "spectrum: the planted line leaks between 0.008 and 0.012"
else
    notok "spectrum: the planted line leaks between 0.008 and 0.012"
fi
run "$PEDECOMP" -t spectrum --spectrum-of 3 -f tsv spectral.h5
if [ "$(data "$TMP/out" | wc -l)" -eq 514 ]; then ok "--spectrum-of writes N/2 + 1 = 513 bins"; else notok "--spectrum-of writes N/2 + 1 = 513 bins"; fi
expect 2 "pedecomp: --spectrum-of: only for -t spectrum" "--spectrum-of without -t spectrum" "$PEDECOMP" --spectrum-of 1 f32.h5
expect 2 "pedecomp: --spectrum-of: pair 3 does not exist (the files have 3 pairs)" "--spectrum-of a missing pair" "$PEDECOMP" -t spectrum --spectrum-of 3 f32.h5
expect 2 "pedecomp: -t spectrum needs the training length" "spectrum without L" "$PEDECOMP" -t spectrum minimal.h5

# The real dump: usage, dims and spectrum cover every layer, head and pair.
for spec in "usage 240" "dims 480" "spectrum 160"; do
    set -- $spec
    run "$PEDECOMP" -t "$1" -f tsv "$REAL"
    n=$(data "$TMP/out" | awk 'NR > 1' | wc -l)
    if [ "$status" -eq 0 ] && [ "$n" -eq "$2" ]; then ok "real dump: -t $1 has $2 rows"; else notok "real dump: -t $1 has $2 rows" "status $status, $n rows"; fi
done

# JSON is one document jq accepts, nan as null.
if command -v jq >/dev/null 2>&1; then
    run "$PEDECOMP" -f json -t summary f32.h5
    if jq -e '.rows | length == 24' "$TMP/out" >/dev/null; then ok "json: jq reads 24 summary rows"; else notok "json: jq reads 24 summary rows"; fi
    run "$PEDECOMP" -f json --bins 3 norope.h5
    if jq -e '[.rows[] | select(.component == "total")] | length == 24 and all(.theta == null)' "$TMP/out" >/dev/null; then
        ok "json: nan is null"
    else
        notok "json: nan is null"
    fi
else
    echo "skip - json checks: jq is not installed"
fi

# The same numbers whatever the dtype, layout, storage or position offset.
run "$PEDECOMP" -f tsv --bins 0 -t profile f32.h5
cp "$TMP/out" "$TMP/ref.tsv"
for f in f64 f16 bf16 deflate interleaved rotated both offset invfreq fixedstr; do
    run "$PEDECOMP" -f tsv --bins 0 "$f.h5"
    same "profile of $f.h5 equals f32.h5" "$TMP/out" "$TMP/ref.tsv"
done
run "$PEDECOMP" -f tsv -t summary f32.h5
cp "$TMP/out" "$TMP/ref-sum.tsv"
for f in bf16 interleaved rotated offset; do
    run "$PEDECOMP" -f tsv -t summary "$f.h5"
    same "summary of $f.h5 equals f32.h5" "$TMP/out" "$TMP/ref-sum.tsv"
done
run "$PEDECOMP" -f tsv --bins 0 --method direct f32.h5
same "--method direct prints the FFT's table" "$TMP/out" "$TMP/ref.tsv"
run "$PEDECOMP" -f tsv --bins 0 --pairing interleaved interleaved.h5
same "--pairing naming the file's own layout changes nothing" "$TMP/out" "$TMP/ref.tsv"

# Non-contiguous positions: the FFT path falls back to the direct sum, with a warning.
expect 0 "pedecomp: gappy.h5: positions are not contiguous; using the direct O(T^2) sum" \
    "gappy positions warn once" "$PEDECOMP" -f tsv --bins 0 gappy.h5
cp "$TMP/out" "$TMP/gappy-fft.tsv"
expect 0 "" "-q silences the warning" "$PEDECOMP" -q -f tsv --bins 0 gappy.h5
run "$PEDECOMP" -f tsv --bins 0 --method direct gappy.h5
same "gappy: fallback equals --method direct" "$TMP/out" "$TMP/gappy-fft.tsv"

# Threads change nothing.
run "$PEDECOMP" -j 1 -f tsv --bins 0 f32.h5
cp "$TMP/out" "$TMP/j1.tsv"
run "$PEDECOMP" -j 2 -f tsv --bins 0 f32.h5
if cmp -s "$TMP/out" "$TMP/j1.tsv"; then ok "-j 1 and -j 2 write the same bytes"; else notok "-j 1 and -j 2 write the same bytes"; fi
run "$PEDECOMP" -j 3 -t summary f32.h5
cp "$TMP/out" "$TMP/j3.tsv"
run "$PEDECOMP" -j 1 -t summary f32.h5
if cmp -s "$TMP/out" "$TMP/j3.tsv"; then ok "summary: -j 3 and -j 1 write the same bytes"; else notok "summary: -j 3 and -j 1"; fi

# Pooling: sums of sums over counts.  The pooled mean at each distance must be
# (n1*m1 + n2*m2)/(n1+n2) of the single-file tables.
run "$PEDECOMP" -f tsv --bins 0 --digits 17 f32.h5
data "$TMP/out" >"$TMP/a.tsv"
run "$PEDECOMP" -f tsv --bins 0 --digits 17 short.h5
data "$TMP/out" >"$TMP/b.tsv"
run "$PEDECOMP" -f tsv --bins 0 --digits 17 f32.h5 short.h5
data "$TMP/out" >"$TMP/ab.tsv"
bad=$(awk -F'\t' '
    FNR == 1 { next }
    { key = $1 SUBSEP $2 SUBSEP $4 SUBSEP $7 }
    FILENAME ~ /a.tsv$/ && FILENAME !~ /ab.tsv$/ { na[key] = $9; ma[key] = $10; next }
    FILENAME ~ /b.tsv$/ && FILENAME !~ /ab.tsv$/ { nb[key] = $9; mb[key] = $10; next }
    {
        n = na[key] + nb[key]
        want = ((key in na) ? na[key] * ma[key] : 0) + ((key in nb) ? nb[key] * mb[key] : 0)
        want /= n
        d = $10 - want; if (d < 0) d = -d
        s = want < 0 ? -want : want; if (s < 1) s = 1
        if ($9 != n || d > 1e-12 * s) { bad++ }
        rows++
    }
    END { print (rows > 0 ? bad + 0 : "no rows") }' "$TMP/a.tsv" "$TMP/b.tsv" "$TMP/ab.tsv")
if [ "$bad" = 0 ]; then ok "pooling two files: counts add and means are pair-weighted"; else notok "pooling two files" "$bad rows differ"; fi

# --check: a good file passes, a wrong pairing is found (status 3).
expect 0 "" "--check passes a file whose rotation matches" "$PEDECOMP" --check both.h5
expect 3 "" "--check finds a wrong rope_pairing (status 3)" "$PEDECOMP" --check wrongpair.h5
if grep -q 'mismatch' "$TMP/out"; then ok "--check names the mismatch"; else notok "--check names the mismatch"; fi
expect 1 "pedecomp: bad-q-nan.h5: layer 0: q head 1 token 5 dim 3: value is NaN" "--check reads every head" "$PEDECOMP" --check bad-q-nan.h5
expect 0 "" "--check -l 2 -H 0 skips the damaged head" "$PEDECOMP" --check -l 2 -H 0 bad-q-nan.h5
if [ "$(data "$TMP/out" | awk -F'\t' 'NR > 1 { print $2 $3 $5 }' | tr '\n' ' ')" = "2q1 2k1 " ]; then
    ok "--check -l/-H: one layer, one query head and its key head"
else
    notok "--check -l/-H" "$(data "$TMP/out" | tr '\n' ' ')"
fi
expect 0 "" "--check judges files one by one (no pooling agreement needed)" "$PEDECOMP" --check f32.h5 otherbase.h5
expect 2 "pedecomp: --layers: layer 1 is not in f32.h5" "--check -l checks the layer exists" "$PEDECOMP" --check -l 1 f32.h5

# The FFT path against an independent direct sum (refprofile reads the file
# with HDF5 itself and sums every causal pair): T = 2048, 8 heads of dim 128.
run "$PEDECOMP" -f tsv --bins 0 --digits 17 -H 0,5 big.h5
if [ "$status" -eq 0 ] && "$BUILD/tests/refprofile" big.h5 "$TMP/out" >"$TMP/ref.log" 2>&1; then
    ok "big.h5: FFT profile equals the direct O(T^2) sum to 1e-9 ($(tail -n 1 "$TMP/ref.log"))"
else
    notok "big.h5: FFT profile equals the direct O(T^2) sum" "$(tail -n 2 "$TMP/ref.log" | tr '\n' ' ')"
fi

# The same on the real dump: float16 data converted by HDF5 itself in the
# reference, interleaved pairs, T = 3072 (six times its training length).
REAL=$TOP/testdata/stories260K.h5
run "$PEDECOMP" -f tsv --bins 0 --digits 17 -l 0 -H 0,7 "$REAL"
if [ "$status" -eq 0 ] && "$BUILD/tests/refprofile" "$REAL" "$TMP/out" >"$TMP/ref.log" 2>&1; then
    ok "real dump: FFT profile equals the direct O(T^2) sum to 1e-9 ($(tail -n 1 "$TMP/ref.log"))"
else
    notok "real dump: FFT profile equals the direct O(T^2) sum" "$(tail -n 2 "$TMP/ref.log" | tr '\n' ' ')"
fi

# value_ood of the real dump, from the profile (itself checked against the
# direct sum above, here layer 0 heads 0 and 7) worked out here: the in-train
# range over distances < 512, then the largest distance from it over the
# distances >= 512 with at least 256 pairs, in units of the range; and the
# number of such distances.  No pair's value is then set by a distance of a
# few pairs, whose key is the first token.
cp "$TMP/out" "$TMP/real-prof.tsv"
run "$PEDECOMP" -t summary -f tsv --digits 17 -l 0 -H 0,7 "$REAL"
bad=$(awk -F'\t' -v L=512 '
    FNR == 1 { file++ } /^#/ || $1 !~ /^[0-9]+$/ { next }
    file == 1 && $4 ~ /^[0-9]+$/ { k = $2 SUBSEP $4; d = $7; c = $10
        if (d < L) { if (!(k in lo) || c < lo[k]) lo[k] = c; if (!(k in hi) || c > hi[k]) hi[k] = c }
        else if ($9 >= 256) { v[k, ++nv[k]] = c } next }
    file == 2 { k = $2 SUBSEP $4; w = hi[k] - lo[k]; e = 0
        for (j = 1; j <= nv[k]; j++) { c = v[k, j]; x = c < lo[k] ? lo[k] - c : c > hi[k] ? c - hi[k] : 0; if (x / w > e) e = x / w }
        n++; diff = $12 - e; if (diff < 0) diff = -diff; if (diff > 1e-9 * (e > 1 ? e : 1) || $15 != nv[k]) bad++ }
    END { print (n == 8 ? bad + 0 : "rows " n) }' "$TMP/real-prof.tsv" "$TMP/out")
is "real dump: value_ood and ood_distances equal the worked-out maximum over distances >= L with at least 256 pairs" 0 "$bad"
run "$PEDECOMP" -t summary -f tsv --digits 17 --min-pairs 1 -l 0 -H 0,7 "$REAL"
more=$(data "$TMP/out" | awk -F'\t' 'NR > 1 && $15 == 2560 { n++ } END { print n + 0 }')
is "real dump: --min-pairs 1 takes every distance >= L (2560) for all 8 pairs" 8 "$more"

# From the real checkpoint through the dumper to pedecomp: --check reads every
# head and finds the stored rotation equal to its own.
MODEL=$TOP/../shared/models/stories260K.bin
if [ ! -f "$MODEL" ]; then
    echo "skip - pe-dump to pedecomp --check: $MODEL is not here"
elif ! /usr/bin/python3 -c 'import numpy, h5py' 2>/dev/null; then
    echo "skip - pe-dump to pedecomp --check: /usr/bin/python3 lacks numpy or h5py"
else
    "$TOP/scripts/pe-dump" --llama2c "$MODEL" --sample 96 --documents 2 --seed 3 --rotated --dtype float32 \
        -o "$TMP/dumped.h5" >"$TMP/out" 2>"$TMP/err"
    expect 0 "" "pe-dump --rotated output passes pedecomp --check" "$PEDECOMP" --check "$TMP/dumped.h5"
    n=$(grep -c '	ok$' "$TMP/out")
    if [ "$n" -eq 10 ]; then ok "--check compared q and k of all 5 layers"; else notok "--check compared q and k of all 5 layers" "$n rows ok"; fi
fi

# Output: -o writes the file whole or not at all; write errors are caught.
expect 0 "" "-o writes a file" "$PEDECOMP" -o "$TMP/table.tsv" -f tsv f32.h5
ln -s table.tsv "$TMP/link.tsv"
expect 0 "" "-o through a symbolic link" "$PEDECOMP" -o "$TMP/link.tsv" -f tsv -l 0 f32.h5
if [ -L "$TMP/link.tsv" ] && cmp -s "$TMP/link.tsv" "$TMP/table.tsv" && ! grep -q '^2	' "$TMP/table.tsv"; then
    ok "-o through a link writes the link's target and keeps the link"
else
    notok "-o through a link writes the link's target and keeps the link"
fi
mkfifo "$TMP/fifo"
expect 2 "pedecomp: --output: '$TMP/fifo' is not a regular file" "-o onto a pipe or device is refused" "$PEDECOMP" -o "$TMP/fifo" f32.h5
if [ -s "$TMP/table.tsv" ] && [ ! -s "$TMP/out" ]; then ok "-o: the table is in the file, not on stdout"; else notok "-o: the table is in the file"; fi
expect 1 "pedecomp: bad-q-nan.h5: layer 0: q head 1 token 5" "a failing run" "$PEDECOMP" -o "$TMP/failed.tsv" bad-q-nan.h5
if ls "$TMP"/failed.tsv* >/dev/null 2>&1; then notok "a failed run leaves no file behind"; else ok "a failed run leaves no file behind"; fi
if [ -w /dev/full ]; then
    expect 1 "pedecomp: standard output: write error: No space left on device" "> /dev/full fails with status 1" \
        sh -c "'$PEDECOMP' f32.h5 >/dev/full"
    expect 1 "pedecomp: standard output: write error" "--help > /dev/full fails with status 1" \
        sh -c "'$PEDECOMP' --help >/dev/full"
else
    echo "skip - /dev/full is not writable here"
fi
run sh -c "'$PEDECOMP' --bins 0 big.h5 2>'$TMP/pipe.err' | head -n 1 >/dev/null"
if [ ! -s "$TMP/pipe.err" ]; then ok "| head -n 1 ends quietly"; else notok "| head -n 1 ends quietly" "$(head -n 1 "$TMP/pipe.err")"; fi

# Long profiles are formatted in pieces of 2048 rows on several threads
# (table forks) and written in order.  big.h5 (T 2048) with --bins 1500 is
# 65 series of 1500 rows per head: pieces start and end inside series and
# across heads.  The layout must be exactly the one-row-at-a-time layout:
# every row in order, one blank line between series and two between heads
# (gnuplot), none (tsv), one JSON document with every row; and the same
# bytes at any -j.
run "$PEDECOMP" -j 2 -H 0,1 --bins 1500 -f tsv big.h5
got=$(awk -F'\t' '/^#/ { next } !h { h = 1; next }
    { c = $4 == "total" ? 64 : $4; b = n % 1500
      if (NF != 10 || $2 != int(n / (65 * 1500)) || c != int(n / 1500) % 65 || (b == 0 && $7 != 0) || (b > 0 && $7 != last + 1)) {
          print "row " n + 1 ": " $0; exit }
      last = $8; n++ }
    END { if (n != 2 * 65 * 1500) print n " rows" }' "$TMP/out")
if [ -z "$got" ]; then ok "profile in pieces: every tsv row in order, no blank line"; else notok "profile in pieces (tsv)" "$got"; fi
# gaps N: the gnuplot table in $TMP/out as "R rows, S single, D double"
# blank lines, and any blank line not after a multiple of N rows.
gaps() {
    awk -v n="$1" '/^#/ { next } !h { h = 1; next } /^$/ { b++; next }
        { if (b) { gaps[b]++; if (rows % n) bad = bad " gap after row " rows; b = 0 } rows++ }
        END { printf "%d rows, %d single, %d double%s", rows, gaps[1], gaps[2], bad }' "$TMP/out"
}
run "$PEDECOMP" -j 2 -H 0,1 --bins 1500 big.h5
is "profile in pieces: gnuplot blank lines only between series (one) and heads (two)" \
    "195000 rows, 128 single, 1 double" "$(gaps 1500)"
# --bins 0: series of 2048 rows, each piece exactly one series.
run "$PEDECOMP" -j 2 -H 0,1 --bins 0 big.h5
is "profile in pieces of whole series: the same blank lines" "266240 rows, 128 single, 1 double" "$(gaps 2048)"
if command -v jq >/dev/null 2>&1; then
    run "$PEDECOMP" -j 2 -H 0,1 --bins 0 -f json big.h5
    got=$(jq -r '[(.rows | length), (.rows | map(.delta_lo)) == ([range(0; 130)] | map(range(0; 2048)))] | @tsv' "$TMP/out" 2>&1)
    is "profile in pieces: one JSON document, every row in order" "$(printf '266240\ttrue')" "$got"
else
    echo "skip - profile in pieces (json): jq is not installed"
fi
for f in tsv gnuplot json; do
    "$PEDECOMP" -j 1 -H 0,1 --bins 1500 -f "$f" big.h5 >"$TMP/j1" 2>/dev/null
    "$PEDECOMP" -j 3 -H 0,1 --bins 1500 -f "$f" big.h5 >"$TMP/j3" 2>/dev/null
    if cmp -s "$TMP/j1" "$TMP/j3"; then ok "profile in pieces -f $f: -j 1 and -j 3 write the same bytes"; else notok "profile in pieces -f $f: -j 1 and -j 3 differ"; fi
done
