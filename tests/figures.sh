#!/bin/sh
# Tests of the gnuplot figure scripts (scripts/pe-fig-*.gp) and of the demo
# driver (scripts/demo): figures in every format, the text (dumb) renderings
# against golden snapshots, error handling, the demo end to end.  Prints one
# "ok"/"not ok"/"skip" line per check; exits 0.
#
#   tests/figures.sh BUILD_DIR        (run by tests/run.sh, after the fixtures)
#
# The tables are made inside the fixture folder (tests/lib.sh goes there) so
# that the input names in their comment lines, and so in the figures'
# titles, do not depend on where the build lives.  PE_REGEN=1 rewrites the
# golden snapshots (tests/golden/fig-*.txt); their first line names the
# gnuplot version that drew them, and under another version they are
# skipped, not compared.
. tests/lib.sh
SCRIPTS=$TOP/scripts
PEDECOMP=$BUILD/pedecomp

skip() { echo "skip - $1: $2"; }

if ! command -v gnuplot >/dev/null 2>&1; then
    skip "figure scripts and demo" "gnuplot is not installed (make deps installs gnuplot-nox)"
    exit 0
fi

# magic FILE HEX: the file is non-empty and its first bytes are HEX.
magic() {
    [ -s "$1" ] && [ "$(head -c $(($(echo "$2" | wc -w))) "$1" | od -An -tx1 | tr -s ' \n' '  ' | sed 's/^ //; s/ $//')" = "$2" ]
}
PNG_MAGIC="89 50 4e 47 0d 0a 1a 0a"
PDF_MAGIC="25 50 44 46 2d"

# contains DESC FILE STRING...: FILE holds every STRING (fixed strings).
contains() {
    desc=$1 file=$2
    shift 2
    missing=""
    for want_s in "$@"; do
        grep -qF -- "$want_s" "$file" || missing="$missing '$want_s'"
    done
    if [ -z "$missing" ]; then ok "$desc"; else notok "$desc" "missing:$missing"; fi
}

# golden_fig NAME FILE: FILE equals tests/golden/NAME after its first line,
# which names the gnuplot version (PE_REGEN=1 rewrites it).
GPVER=$(gnuplot --version)
golden_fig() {
    name=$1 file=$2
    if [ "${PE_REGEN:-0}" = 1 ]; then
        mkdir -p "$GOLDEN"
        { echo "# $GPVER"; cat "$file"; } >"$GOLDEN/$name"
        ok "golden $name (regenerated)"
    elif [ ! -f "$GOLDEN/$name" ]; then
        notok "golden $name" "tests/golden/$name is missing (make regen)"
    elif [ "$(head -n 1 "$GOLDEN/$name")" != "# $GPVER" ]; then
        skip "golden $name" "drawn by $(head -n 1 "$GOLDEN/$name" | cut -c 3-), this is $GPVER"
    elif tail -n +2 "$GOLDEN/$name" | cmp -s - "$file"; then
        ok "golden $name"
    else
        notok "golden $name" "differs: diff <(tail -n +2 $GOLDEN/$name) against $file ($(tail -n +2 "$GOLDEN/$name" | diff - "$file" | head -n 3 | tr '\n' ' '))"
    fi
}

# --------------------------------------------------------------- tables
if ! { "$PEDECOMP" -l 0,2 -H 0,1 --bins 0 f32.h5 >"$TMP/prof.gp" &&
    "$PEDECOMP" -f tsv -l 2 -H 1 --bins 0 f32.h5 >"$TMP/prof.tsv" &&
    "$PEDECOMP" -t freqs --scale yarn:4 f32.h5 >"$TMP/freqs-yarn.gp" &&
    "$PEDECOMP" -t freqs f32.h5 >"$TMP/freqs.gp" &&
    "$PEDECOMP" --bins 8 minimal.h5 >"$TMP/nolen.gp" &&
    "$PEDECOMP" --bins 8 -H 0 norope.h5 >"$TMP/norope.gp" &&
    "$PEDECOMP" -t usage f32.h5 >"$TMP/usage.gp" &&
    "$PEDECOMP" -f tsv -t usage -l 2 f32.h5 >"$TMP/usage.tsv" &&
    "$PEDECOMP" -t usage minimal.h5 >"$TMP/usage-nolen.gp" &&
    "$PEDECOMP" -t spectrum f32.h5 >"$TMP/spectrum.gp" &&
    "$PEDECOMP" -t spectrum spectral.h5 >"$TMP/spectral.gp" &&
    "$PEDECOMP" -t spectrum --train-len 8 minimal.h5 >"$TMP/spectrum-nan.gp" &&
    "$PEDECOMP" -t spectrum --spectrum-of 0 f32.h5 >"$TMP/power.gp"; } 2>"$TMP/err"; then
    notok "pedecomp makes the tables for the figures" "$(head -n 1 "$TMP/err")"
    exit 0
fi
ok "pedecomp makes the tables for the figures"
# A frequency table with a pair of theta 0 (class nope), written by hand.
awk -F'\t' 'BEGIN { OFS = "\t" } $1 == "2" && NF == 9 { $2 = 0; $3 = "nan"; $4 = $5 = $7 = $8 = 0; $6 = $9 = "nope" } { print }' \
    "$TMP/freqs-yarn.gp" >"$TMP/freqs-nope.gp"

# ------------------------------------------------------- every script
# Per script: its name, the table, the arguments after OUT, and the text
# that the dumb rendering must show (axis labels, title, key, L marker).
for s in components heatmap freqmap usage purity; do
    gp=$SCRIPTS/pe-fig-$s.gp
    case $s in
    components)
        table=$TMP/prof.gp args="2 1"
        set -- "distance m - n (tokens)" "mean logit component C_i(distance)" "f32.h5" "layer 2 head 1" \
            "hf, pair 0" "tlf, pairs 1-2" "pass-through dims" "total (logit)" "L = 16 (training length)" "L = 16" ;;
    heatmap)
        table=$TMP/prof.gp args="2 1"
        set -- "distance m - n (tokens)" "RoPE pair i (0 = highest frequency)" "f32.h5" "layer 2 head 1" \
            "hf" "tlf" "L = 16 (training length)" "L = 16" ;;
    freqmap)
        table=$TMP/freqs-yarn.gp args=""
        set -- "RoPE pair i (0 = highest frequency)" "wavelength 2 pi / theta_i (tokens)" "f32.h5" \
            "what-if yarn:4 (target length 64)" "hf: 1 pair" "tlf: 2 pairs" "scaled tlf: 2 pairs" \
            "L = 16 (training length)" "target length 64" "L = 16" "target = 64" ;;
    usage)
        table=$TMP/usage.gp args=""
        set -- "pair i, 0 = highest freq" "f32.h5: RoPE pair usage, queries, one row per query head" \
            "colour = share of the head's summed pair norms (white: uniform 1/3 = 0.333)" \
            "layer 0: hf pairs 0" "layer 2: hf pairs 0" "2pi/L" "dashed line: 2 pi / L, L = 16" "L = 16" ;;
    purity)
        table=$TMP/spectrum.gp args=""
        set -- "theta_i (radians per token, log scale; layers shifted slightly apart)" \
            "purity (power at the pair's own frequency / all power)" \
            "f32.h5: spectral purity of each pair's in-train profile, window Dw = 16, L = 16" \
            "one point per layer, head and pair; lowest purity 0.531: layer 0 head 1 pair 0" \
            "16 of 24 pairs undefined (nan: fewer than 2 turns in the window), not drawn" \
            "tlf" "act" "hf" "2pi/L" "4pi/Dw" "a pair of a head" "2 pi / L, L = 16" "4 pi / Dw: 2 turns in Dw = 16" "L = 16" ;;
    esac

    # shellcheck disable=SC2086
    expect 0 "" "$s: PNG: status 0, stderr empty" gnuplot -c "$gp" "$table" "$TMP/$s.png" $args
    if magic "$TMP/$s.png" "$PNG_MAGIC"; then ok "$s: PNG: non-empty, PNG magic bytes"; else notok "$s: PNG: non-empty, PNG magic bytes" "$(head -c 8 "$TMP/$s.png" | od -An -tx1)"; fi
    # shellcheck disable=SC2086
    expect 0 "" "$s: SVG: status 0" gnuplot -c "$gp" "$table" "$TMP/$s.svg" $args
    if [ -s "$TMP/$s.svg" ] && grep -q '<svg' "$TMP/$s.svg" && tail -n 3 "$TMP/$s.svg" | grep -q '</svg>'; then
        ok "$s: SVG: a whole <svg> document"
    else
        notok "$s: SVG: a whole <svg> document"
    fi
    # shellcheck disable=SC2086
    expect 0 "" "$s: PDF: status 0" gnuplot -c "$gp" "$table" "$TMP/$s.pdf" $args
    if magic "$TMP/$s.pdf" "$PDF_MAGIC"; then ok "$s: PDF: %PDF- magic"; else notok "$s: PDF: %PDF- magic"; fi
    # shellcheck disable=SC2086
    expect 0 "" "$s: text (dumb): status 0" gnuplot -c "$gp" "$table" "$TMP/$s.txt" $args
    contains "$s: text shows the axis labels, title, key and the L marker" "$TMP/$s.txt" "$@"
    golden_fig "fig-$s.txt" "$TMP/$s.txt"

    # Called wrongly: non-zero status, one line on stderr, no figure.
    name=pe-fig-$s
    expect 2 "usage: gnuplot -c $name.gp TABLE OUT" "$s: no arguments: usage, status 2" gnuplot -c "$gp"
    expect 2 "usage: gnuplot -c $name.gp TABLE OUT" "$s: one argument: usage, status 2" gnuplot -c "$gp" "$table"
    expect 2 "$name: OUT '$TMP/bad.jpg': unknown extension" "$s: unknown extension .jpg: status 2" gnuplot -c "$gp" "$table" "$TMP/bad.jpg"
    expect 2 "$name: OUT '$TMP/bad': unknown extension" "$s: no extension: status 2" gnuplot -c "$gp" "$table" "$TMP/bad"
    expect 1 "$name: cannot read table '$TMP/no-such.gp'" "$s: missing table: status 1" gnuplot -c "$gp" "$TMP/no-such.gp" "$TMP/bad.png"
    expect 1 "$name: cannot read table '$TMP'" "$s: a folder as table: status 1" gnuplot -c "$gp" "$TMP" "$TMP/bad.png"
    expect 1 "$name: OUT '$TMP/no/such/x.png': its folder does not exist" "$s: OUT in a missing folder: status 1" \
        gnuplot -c "$gp" "$table" "$TMP/no/such/x.png"
    expect 2 "$name: L=0: not a positive integer" "$s: L=0 refused: status 2" gnuplot -c "$gp" "$table" "$TMP/bad.png" L=0
    case $s in
    freqmap)
        expect 1 "$name: $TMP/prof.gp: not a pedecomp frequency table" "$s: a profile table is refused: status 1" \
            gnuplot -c "$gp" "$TMP/prof.gp" "$TMP/bad.png"
        expect 2 "usage: gnuplot -c $name.gp" "$s: extra argument: usage, status 2" gnuplot -c "$gp" "$table" "$TMP/bad.png" 3
        ;;
    usage)
        expect 1 "$name: $TMP/spectrum.gp: not a pedecomp usage table" "$s: a spectrum table is refused: status 1" \
            gnuplot -c "$gp" "$TMP/spectrum.gp" "$TMP/bad.png"
        expect 2 "usage: gnuplot -c $name.gp" "$s: extra argument: usage, status 2" gnuplot -c "$gp" "$table" "$TMP/bad.png" 3
        expect 2 "usage: gnuplot -c $name.gp" "$s: q and k together: usage, status 2" gnuplot -c "$gp" "$table" "$TMP/bad.png" q k
        expect 2 "usage: gnuplot -c $name.gp" "$s: share and norm_mean together: usage, status 2" \
            gnuplot -c "$gp" "$table" "$TMP/bad.png" share norm_mean
        expect 1 "$name: layer 1 is not in $TMP/usage.gp (layers: 0 2)" "$s: LAYERS with a missing layer: status 1" \
            gnuplot -c "$gp" "$table" "$TMP/bad.png" LAYERS=0-2
        expect 2 "$name: LAYERS=two: not a list of layer indices and ranges" "$s: LAYERS not a list: status 2" \
            gnuplot -c "$gp" "$table" "$TMP/bad.png" LAYERS=two
        expect 2 "$name: LAYERS=3-1: not a list of layer indices and ranges" "$s: LAYERS with a backward range: status 2" \
            gnuplot -c "$gp" "$table" "$TMP/bad.png" LAYERS=3-1
        expect 2 "$name: LAYERS=: an empty list" "$s: LAYERS empty: status 2" gnuplot -c "$gp" "$table" "$TMP/bad.png" LAYERS=
        expect 2 "$name: LAYERS=0-8: more than 8 layers" "$s: LAYERS of 9 layers: status 2" \
            gnuplot -c "$gp" "$table" "$TMP/bad.png" LAYERS=0-8
        ;;
    purity)
        expect 1 "$name: $TMP/usage.gp: not a pedecomp spectrum table" "$s: a usage table is refused: status 1" \
            gnuplot -c "$gp" "$TMP/usage.gp" "$TMP/bad.png"
        expect 1 "$name: $TMP/power.gp: not a pedecomp spectrum table, -t spectrum without --spectrum-of" \
            "$s: a --spectrum-of (power) table is refused: status 1" gnuplot -c "$gp" "$TMP/power.gp" "$TMP/bad.png"
        expect 2 "usage: gnuplot -c $name.gp" "$s: extra argument: usage, status 2" gnuplot -c "$gp" "$table" "$TMP/bad.png" 3
        expect 2 "usage: gnuplot -c $name.gp" "$s: mean twice: usage, status 2" gnuplot -c "$gp" "$table" "$TMP/bad.png" mean mean
        ;;
    *)
        expect 1 "$name: $TMP/freqs.gp: not a pedecomp profile table" "$s: a freqs table is refused: status 1" \
            gnuplot -c "$gp" "$TMP/freqs.gp" "$TMP/bad.png"
        expect 1 "$name: layer 1 is not in $TMP/prof.gp (layers: 0 2)" "$s: missing layer: status 1" \
            gnuplot -c "$gp" "$TMP/prof.gp" "$TMP/bad.png" 1
        expect 1 "$name: head 3 of layer 2 is not in $TMP/prof.gp (heads: 0 1)" "$s: missing head: status 1" \
            gnuplot -c "$gp" "$TMP/prof.gp" "$TMP/bad.png" 2 3
        expect 2 "$name: LAYER 'two' is not a layer index" "$s: LAYER not a number: status 2" \
            gnuplot -c "$gp" "$TMP/prof.gp" "$TMP/bad.png" two
        expect 2 "$name: HEAD 'avg' is not a head index or 'mean'" "$s: HEAD not a number or mean: status 2" \
            gnuplot -c "$gp" "$TMP/prof.gp" "$TMP/bad.png" 0 avg
        expect 2 "usage: gnuplot -c $name.gp" "$s: a third position argument: usage, status 2" \
            gnuplot -c "$gp" "$TMP/prof.gp" "$TMP/bad.png" 0 0 0
        ;;
    esac
    if ls "$TMP"/bad* "$TMP/no" >/dev/null 2>&1; then notok "$s: failed calls write no figure" "$(ls -d "$TMP"/bad* 2>/dev/null)"; else ok "$s: failed calls write no figure"; fi

    # L=N overrides the table's train_len; a table without one warns.
    # shellcheck disable=SC2086
    expect 0 "" "$s: L=20: status 0" gnuplot -c "$gp" "$table" "$TMP/$s-L20.txt" $args L=20
    if grep -qF "L = 20" "$TMP/$s-L20.txt" && ! grep -qF "L = 16" "$TMP/$s-L20.txt"; then
        ok "$s: L=20 marks L = 20, not the table's 16"
    else
        notok "$s: L=20 marks L = 20, not the table's 16"
    fi
done

# ------------------------------------------------------- particular cases
C=$SCRIPTS/pe-fig-components.gp
H=$SCRIPTS/pe-fig-heatmap.gp
F=$SCRIPTS/pe-fig-freqmap.gp

# Defaults: the first layer and its first head.
expect 0 "" "components: default layer and head" gnuplot -c "$C" "$TMP/prof.gp" "$TMP/def.txt"
contains "components: the default is layer 0 head 0" "$TMP/def.txt" "layer 0 head 0"

# HEAD mean: the figure of the mean over heads 0 and 1 equals the figure of a
# one-head table holding that mean (title lines aside).
expect 0 "" "components: HEAD mean: status 0" gnuplot -c "$C" "$TMP/prof.gp" "$TMP/mean.txt" 2 mean
contains "components: HEAD mean names the heads" "$TMP/mean.txt" "layer 2, mean of 2 heads (0-1)"
awk -F'\t' 'BEGIN { OFS = "\t" }
    /^#/ || NF < 10 || $1 !~ /^[0-9]+$/ { if (!hdr && !/^#/ && NF) { print; hdr = 1 } else if (/^#/) print; next }
    $1 != 2 { next }
    { k = $4 SUBSEP $7; if (!(k in s)) { o[++n] = k; row[k] = $0 } s[k] += $10; c[k]++ }
    END { for (i = 1; i <= n; i++) { k = o[i]; split(row[k], f, "\t"); if (i > 1 && f[4] != prev) print "";
          prev = f[4]; f[2] = 0; f[10] = sprintf("%.10g", s[k] / c[k]);
          print f[1], f[2], f[3], f[4], f[5], f[6], f[7], f[8], f[9], f[10] } }' "$TMP/prof.gp" >"$TMP/mean-table.gp"
expect 0 "" "components: the one-head mean table: status 0" gnuplot -c "$C" "$TMP/mean-table.gp" "$TMP/mean-ref.txt" 2 0
grep -v 'per-pair logit components' "$TMP/mean.txt" >"$TMP/mean.a"
grep -v 'per-pair logit components' "$TMP/mean-ref.txt" >"$TMP/mean.b"
if [ -s "$TMP/mean.a" ] && cmp -s "$TMP/mean.a" "$TMP/mean.b"; then
    ok "components: HEAD mean draws the mean of the heads' curves"
else
    notok "components: HEAD mean draws the mean of the heads' curves" "$(diff "$TMP/mean.a" "$TMP/mean.b" | head -n 3 | tr '\n' ' ')"
fi
expect 0 "" "heatmap: HEAD mean: status 0" gnuplot -c "$H" "$TMP/prof.gp" "$TMP/hmean.png" 0 mean
if magic "$TMP/hmean.png" "$PNG_MAGIC"; then ok "heatmap: HEAD mean writes a PNG"; else notok "heatmap: HEAD mean writes a PNG"; fi

# The tsv format is read too.
expect 0 "" "components: a tsv table: status 0" gnuplot -c "$C" "$TMP/prof.tsv" "$TMP/tsv.txt"
contains "components: a tsv table: layer 2 head 1, L marked" "$TMP/tsv.txt" "layer 2 head 1" "L = 16"

# File names with a space and a quote.
mkdir -p "$TMP/it's here"
cp "$TMP/prof.gp" "$TMP/it's here/a table.gp"
expect 0 "" "components: names with a space and a quote" gnuplot -c "$C" "$TMP/it's here/a table.gp" "$TMP/it's here/fig 1.png"
if magic "$TMP/it's here/fig 1.png" "$PNG_MAGIC"; then ok "components: the figure is where OUT says"; else notok "components: the figure is where OUT says"; fi

# No training length in the table ("train_len: 0"): drawn, unmarked, one warning.
for s in components heatmap; do
    expect 0 "pe-fig-$s: warning: $TMP/nolen.gp gives no training length" "$s: no train_len: status 0, one warning" \
        gnuplot -c "$SCRIPTS/pe-fig-$s.gp" "$TMP/nolen.gp" "$TMP/nolen-$s.txt"
    if [ -s "$TMP/nolen-$s.txt" ] && ! grep -q 'L = ' "$TMP/nolen-$s.txt"; then ok "$s: no train_len: no L marker"; else notok "$s: no train_len: no L marker"; fi
done
contains "components: no train_len: class unknown in the key" "$TMP/nolen-components.txt" "unknown, pairs 0-3 (L unknown)"

# A head without RoPE pairs: the components figure has pass and total, the
# heat map has nothing to draw.
expect 0 "" "components: no RoPE pair: status 0" gnuplot -c "$C" "$TMP/norope.gp" "$TMP/norope.txt"
contains "components: no RoPE pair: pass and total drawn" "$TMP/norope.txt" "pass-through dims" "total (logit)"
expect 1 "pe-fig-heatmap: $TMP/norope.gp: layer 0 has no RoPE pair" "heatmap: no RoPE pair: status 1" \
    gnuplot -c "$H" "$TMP/norope.gp" "$TMP/bad.png"

# Frequency map without --scale, and with a theta-0 pair.
expect 0 "" "freqmap: no --scale: status 0" gnuplot -c "$F" "$TMP/freqs.gp" "$TMP/fplain.txt"
if grep -qF "L = 16" "$TMP/fplain.txt" && ! grep -q 'scaled\|target' "$TMP/fplain.txt"; then
    ok "freqmap: no --scale: L marked, no scaled series, no target"
else
    notok "freqmap: no --scale: L marked, no scaled series, no target"
fi
expect 0 "" "freqmap: a nope pair: status 0" gnuplot -c "$F" "$TMP/freqs-nope.gp" "$TMP/fnope.txt"
contains "freqmap: a nope pair is drawn at inf" "$TMP/fnope.txt" "inf" "nope: 1 pair" "scaled nope: 1 pair"
expect 0 "" "freqmap: a nope pair to PNG: status 0" gnuplot -c "$F" "$TMP/freqs-nope.gp" "$TMP/fnope.png"

# Usage heat map: keys, norm_mean, a layer list, the edge moving with L, a
# tsv table, no training length, more layers than panels.
U=$SCRIPTS/pe-fig-usage.gp
expect 0 "" "usage: keys, norm_mean: status 0" gnuplot -c "$U" "$TMP/usage.gp" "$TMP/ukeys.txt" k norm_mean
contains "usage: keys, norm_mean: named in the title" "$TMP/ukeys.txt" "keys, one row per key head" \
    "colour = mean norm of the pair over tokens" "layer 0: hf pairs 0" "layer 2: hf pairs 0"
expect 0 "" "usage: keys, norm_mean to PNG: status 0" gnuplot -c "$U" "$TMP/usage.gp" "$TMP/ukeys.png" norm_mean k
if magic "$TMP/ukeys.png" "$PNG_MAGIC"; then ok "usage: keys, norm_mean: a PNG"; else notok "usage: keys, norm_mean: a PNG"; fi
expect 0 "" "usage: LAYERS=2: status 0" gnuplot -c "$U" "$TMP/usage.gp" "$TMP/ul2.txt" LAYERS=2
if grep -qF "layer 2: hf pairs 0" "$TMP/ul2.txt" && ! grep -q "layer 0" "$TMP/ul2.txt"; then
    ok "usage: LAYERS=2 draws layer 2 alone"
else
    notok "usage: LAYERS=2 draws layer 2 alone"
fi
# thetas 1, 0.0464, 0.00215: 2 pi / L is 3.14 for L = 2, 0.0314 for L = 200, 0.00209 for L = 3000.
for lh in "2:no hf pair" "200:hf pairs 0-1" "3000:hf pairs 0-2"; do
    l=${lh%%:*} edge=${lh#*:}
    expect 0 "" "usage: L=$l: status 0" gnuplot -c "$U" "$TMP/usage.gp" "$TMP/uL$l.txt" "L=$l"
    contains "usage: L=$l moves the 2 pi/L edge: $edge" "$TMP/uL$l.txt" "layer 0: $edge" "layer 2: $edge" "L = $l"
done
expect 0 "" "usage: a tsv table: status 0" gnuplot -c "$U" "$TMP/usage.tsv" "$TMP/utsv.txt"
if grep -qF "layer 2: hf pairs 0" "$TMP/utsv.txt" && ! grep -q "layer 0" "$TMP/utsv.txt"; then ok "usage: a tsv table is read"; else notok "usage: a tsv table is read"; fi
expect 0 "pe-fig-usage: warning: $TMP/usage-nolen.gp gives no training length" "usage: no train_len: status 0, one warning" \
    gnuplot -c "$U" "$TMP/usage-nolen.gp" "$TMP/unolen.txt"
if [ -s "$TMP/unolen.txt" ] && grep -qF "L unknown: the 2 pi / L edge is not marked" "$TMP/unolen.txt" && ! grep -q '2pi/L\|hf pair' "$TMP/unolen.txt"; then
    ok "usage: no train_len: no edge"
else
    notok "usage: no train_len: no edge"
fi
# Ten layers (0 2 10 12 ... 42, made from the two of f32.h5): the first 8 drawn, one warning.
awk -F'\t' 'BEGIN { OFS = "\t" } /^#/ || $1 !~ /^[0-9]+$/ { print; next } { l = $1; for (r = 0; r < 5; r++) { $1 = l + 10 * r; print } }' \
    "$TMP/usage.gp" >"$TMP/usage10.gp"
expect 0 "pe-fig-usage: warning: $TMP/usage10.gp has 10 layers; drawing the first 8 (0 to 32)" \
    "usage: 10 layers: status 0, one warning" gnuplot -c "$U" "$TMP/usage10.gp" "$TMP/u10.txt"
if grep -qF "layer 32: hf" "$TMP/u10.txt" && ! grep -q "layer 4[02]" "$TMP/u10.txt"; then ok "usage: 10 layers: the first 8 drawn"; else notok "usage: 10 layers: the first 8 drawn"; fi
expect 0 "" "usage: 10 layers, LAYERS=40,42,0,2: status 0, no warning" gnuplot -c "$U" "$TMP/usage10.gp" "$TMP/u10b.png" LAYERS=40,42,0,2
if magic "$TMP/u10b.png" "$PNG_MAGIC"; then ok "usage: LAYERS=40,42,0,2: a PNG"; else notok "usage: LAYERS=40,42,0,2: a PNG"; fi

# Purity: the spectral fixture (pair 3 the leaky one), mean, all undefined,
# no training length.
PU=$SCRIPTS/pe-fig-purity.gp
expect 0 "" "purity: spectral.h5: status 0" gnuplot -c "$PU" "$TMP/spectral.gp" "$TMP/pspec.txt"
contains "purity: spectral.h5: pair 3 is the lowest, nothing undefined" "$TMP/pspec.txt" \
    "lowest purity 0.989: layer 0 head 0 pair 3" "0 of 4 pairs undefined" "theta_i (radians per token, log scale)"
expect 0 "" "purity: mean: status 0" gnuplot -c "$PU" "$TMP/spectrum.gp" "$TMP/pmean.txt" mean
contains "purity: mean: named" "$TMP/pmean.txt" "mean over the heads of each layer" "mean over the heads of a layer" "16 of 24 pairs undefined"
expect 0 "" "purity: mean to PNG: status 0" gnuplot -c "$PU" "$TMP/spectrum.gp" "$TMP/pmean.png" mean L=20
if magic "$TMP/pmean.png" "$PNG_MAGIC"; then ok "purity: mean: a PNG"; else notok "purity: mean: a PNG"; fi
expect 0 "" "purity: every pair undefined: status 0" gnuplot -c "$PU" "$TMP/spectrum-nan.gp" "$TMP/pnan.txt"
contains "purity: every pair undefined: counted" "$TMP/pnan.txt" "none defined" "32 of 32 pairs undefined"
sed 's/^# train_len: .*/# train_len: 0/' "$TMP/spectrum.gp" >"$TMP/spectrum-nolen.gp"
expect 0 "pe-fig-purity: warning: $TMP/spectrum-nolen.gp gives no training length" "purity: no train_len: status 0, one warning" \
    gnuplot -c "$PU" "$TMP/spectrum-nolen.gp" "$TMP/pnolen.txt"
if [ -s "$TMP/pnolen.txt" ] && grep -qF "4pi/Dw" "$TMP/pnolen.txt" && ! grep -q '2pi/L\|tlf\|L = ' "$TMP/pnolen.txt"; then
    ok "purity: no train_len: no bands, the 4 pi / Dw limit drawn"
else
    notok "purity: no train_len: no bands, the 4 pi / Dw limit drawn"
fi

# ------------------------------------------------------------------ demo
cd "$TOP" || exit 0
if [ ! -r "$REAL" ]; then
    skip "scripts/demo" "$REAL is missing"
else
    DEMO=$TMP/demo
    start=$(date +%s)
    # The forward passes of pe-dump --pe are tests/test_pe_dump.py's: skipped here.
    PE_DEMO_DIR=$DEMO PE_DEMO_FORWARD=0 sh scripts/demo "$BUILD" >"$TMP/demo.out" 2>"$TMP/demo.err"
    st=$?
    secs=$(($(date +%s) - start))
    if [ "$st" -eq 0 ] && [ ! -s "$TMP/demo.err" ]; then
        ok "demo: status 0, stderr empty (${secs}s)"
    else
        notok "demo: status 0, stderr empty" "status $st: $(head -n 2 "$TMP/demo.err" | tr '\n' ' ')"
    fi
    n=0 bad=""
    for f in "$DEMO"/*/*.png; do
        [ -e "$f" ] || continue
        n=$((n + 1))
        magic "$f" "$PNG_MAGIC" || bad="$bad $(basename "$f")"
    done
    if [ "$n" -ge 5 ] && [ -z "$bad" ]; then ok "demo: $n PNG figures, each non-empty with PNG magic"; else notok "demo: PNG figures" "$n figures, bad:$bad"; fi
    # Every figure is announced as "PATH: what it shows", and every path printed exists.
    missing=""
    for f in "$DEMO"/*/*.png; do
        [ -e "$f" ] || continue
        grep -q "^$f: ..*" "$TMP/demo.out" || missing="$missing $(basename "$f")"
    done
    for f in $(sed -n 's/^\([^ ]*\.png\): .*/\1/p; s/^\([^ ]*\.gp\): .*/\1/p' "$TMP/demo.out"); do
        [ -s "$f" ] || missing="$missing $f(printed, absent)"
    done
    if [ -z "$missing" ]; then ok "demo: prints each file with what it shows"; else notok "demo: prints each file with what it shows" "$missing"; fi
    contains "demo: both models, the byte-level one first, and the figure lines name L" "$TMP/demo.out" \
        "demo: testdata/vimdoc3m.h5" "/vimdoc3m/loss.png: " "/vimdoc3m/components-L0H0.png: " "/vimdoc3m/whatif.png: " \
        "L = 256 marked" "demo: testdata/stories260K.h5" "/stories260K/loss.png: " "/stories260K/components-L2H2.png: " \
        "/stories260K/heatmap-L2H2.png: " "freqmap-yarn4.png: " "usage-q.png: " "usage-k.png: " "purity.png: " \
        "/stories260K/whatif.png: " "L = 512 marked"
    if [ "$(grep -n '^demo: testdata/' "$TMP/demo.out" | head -n 1 | cut -d: -f3-)" = " testdata/vimdoc3m.h5" ]; then
        ok "demo: the byte-level model comes first"
    else
        notok "demo: the byte-level model comes first" "$(grep '^demo: testdata/' "$TMP/demo.out" | tr '\n' ' ')"
    fi
    if [ ! -e "$DEMO/.demo-stderr" ]; then ok "demo: leaves no scratch file"; else notok "demo: leaves no scratch file"; fi
    expect 1 "demo: $TMP/no-build/pedecomp is missing" "demo: a missing build: status 1, one line" \
        env PE_DEMO_DIR="$TMP/demo2" sh scripts/demo "$TMP/no-build"
fi
exit 0
