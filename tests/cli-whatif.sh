#!/bin/sh
# Command-line tests of the --pe SPEC (man petools-whatif(7)) across the
# tools: peanalyze -t whatif against an independent full-matrix reference
# (tests/refattn.c --whatif) on the fixtures and on the real dump; what the
# tables must say for specs that change nothing (prope:1, clip on a model
# whose pairs all turn within L, rope itself); dope masks as peentropy
# writes them and as they select heads; the tools agreeing with one another
# under a spec; refusals; the old --scale; the warning for a dump recorded
# with another spec.
#
#   tests/cli-whatif.sh BUILD_DIR        (run by tests/run.sh)
. tests/lib.sh
PA=$BUILD/peanalyze
PD=$BUILD/pedecomp
PN=$BUILD/peentropy
REF=$BUILD/tests/refattn

# A DoPE mask for the standard fixture shape (f32.h5: 4 heads, 2 key heads,
# head_dim 8, rotary_dim 6, half), written by hand so that the heads it
# selects do not depend on a ranking: layer 0 query head 0, the key head 1
# (query heads 2 and 3) and layer 2 query head 3, each on pairs 1 and 2,
# which are the pairs with theta < 2 pi / 16 (theta 1, 0.046, 0.0022; L 16):
# on them dope:parts is clip and dope:all is prope:0.
cat >"$TMP/hand.json" <<'EOF'
{"format": "petools-dope-mask", "format_version": 1, "created_by": "cli-whatif.sh", "inputs": ["f32.h5"],
 "model": "petools fixture", "n_heads": 4, "n_kv_heads": 2, "head_dim": 8, "rotary_dim": 6,
 "rope_pairing": "half", "train_len": 16, "threshold": 0.39269908169872414,
 "selection": {"score": "energy", "order": "desc", "top": 3, "r": 8, "stage": "post", "prep": "paper",
               "tensor": "both", "broadcast": false, "ntk_len": null, "ntk_factor": null},
 "heads": [
  {"rank": 1, "layer": 0, "tensor": "q", "head": 0, "kv_head": 0, "query_heads": [0], "score": 1,
   "pairs": [1, 2], "dims": [[1, 4], [2, 5]], "theta": [0.046415888336127795, 0.0021544346900318843]},
  {"rank": 2, "layer": 0, "tensor": "k", "head": 1, "kv_head": 1, "query_heads": [2, 3], "score": 1,
   "pairs": [1, 2], "dims": [[1, 4], [2, 5]], "theta": [0.046415888336127795, 0.0021544346900318843]},
  {"rank": 3, "layer": 2, "tensor": "q", "head": 3, "kv_head": 1, "query_heads": [3], "score": 1,
   "pairs": [1, 2], "dims": [[1, 4], [2, 5]], "theta": [0.046415888336127795, 0.0021544346900318843]}
 ]}
EOF
HAND=$TMP/hand.json
# shown SPEC: the spec with the temporary folder left out, for the names of checks.
shown() { printf '%s' "$1" | sed "s|$TMP/||g"; }
sed 's/"half"/"interleaved"/' "$HAND" >"$TMP/hand-inter.json"

# ------------------------------------------------- the full-matrix reference
# wcheck DESC FILE LAYER ROWS L SPEC...: peanalyze -t whatif of FILE's LAYER
# (ROWS, L: '-' for the defaults) with --pe SPEC each, against refattn.
wcheck() {
    desc=$1 file=$2 layer=$3 rows=$4 len=$5
    shift 5
    opts=""
    for s in "$@"; do opts="$opts --pe $s"; done
    [ "$rows" = - ] || opts="$opts --rows $rows"
    [ "$len" = - ] || opts="$opts -L $len"
    # shellcheck disable=SC2086
    if ! "$PA" -t whatif -f tsv --digits 17 -l "$layer" $opts "$file" >"$TMP/wc.tsv" 2>"$TMP/wc.err"; then
        notok "$desc" "peanalyze failed: $(head -n 1 "$TMP/wc.err")"
        return
    fi
    r=0
    [ "$rows" = - ] || r=$rows
    if [ "$len" = - ]; then set -- "$r"; else set -- "$r" "$len"; fi
    if "$REF" --whatif "$file" "$layer" "$TMP/wc.tsv" "$@" >"$TMP/wc.log" 2>&1; then
        ok "$desc ($(tail -n 1 "$TMP/wc.log"))"
    else
        notok "$desc" "$(tail -n 3 "$TMP/wc.log" | tr '\n' ' ')"
    fi
}
# The frequency and factor steps, alone and chained (pi:2+clip clips more
# than clip+pi:2), and the defaults of -t whatif among them.
SPECS="rope pi:4 ntk:4 yarn:4 dynamic:4 clip logn prope:0.5 prope:1 pi:2+clip clip+pi:2 logn+yarn:4 llama3:8:1:4:32 \
dynamic:2:100 yarn:4:16:2 pi:0.5+logn+logn prope:0"
DOPE="dope:$HAND dope:$HAND:all dope:$HAND:gauss yarn:2+dope:$HAND:gauss+logn pi:2+dope:$HAND:parts+prope:0.5"
# shellcheck disable=SC2086
{
    wcheck "whatif f32.h5 layer 0: every row of 17 specs and 5 dope specs equals the full-matrix reference" f32.h5 0 - - $SPECS $DOPE
    wcheck "whatif f32.h5 layer 2: the same (dope on query head 3 only)" f32.h5 2 - - $SPECS $DOPE
    wcheck "whatif f32.h5 -L 24: the same with the training length of the command line" f32.h5 2 - 24 $SPECS $DOPE
    wcheck "whatif interleaved.h5: the other pairing, the same" interleaved.h5 0 - - $SPECS \
        "dope:$TMP/hand-inter.json:gauss" "dope:$TMP/hand-inter.json:all"
    wcheck "whatif attn.h5 layer 0 (planted heads, /rope/inv_freq): the same" attn.h5 0 - - $SPECS
    wcheck "whatif attn.h5 layer 1: the same" attn.h5 1 - - $SPECS
    wcheck "whatif attn-local.h5 (128 pass dims, heads local within L): the same" attn-local.h5 0 - - $SPECS
    wcheck "whatif attn-softcap.h5 (softcap 1.5): the same" attn-softcap.h5 2 - - $SPECS
    wcheck "whatif attn-softcap.h5 --rows 7: the same over 7 rows" attn-softcap.h5 2 7 - $SPECS
    wcheck "whatif attn-gappy.h5 (positions with gaps, L 30): the same" attn-gappy.h5 0 - - $SPECS
    wcheck "whatif offset.h5 (positions 100..139, no in-train row: nan where rope has none): the same" offset.h5 0 - - $SPECS
}
cp "$TMP/wc.tsv" "$TMP/offset.tsv"
got=$(sed '/^# section/,$d' "$TMP/offset.tsv" | data /dev/stdin | awk -F'\t' 'NR > 1 && ($5 != "nan" || $7 != "nan" || $8 != "nan") { bad++ } END { print bad + 0 }')
is "whatif offset.h5: without in-train rows kl_in, entropy_shift and exceedance are nan" 0 "$got"

# The reference can fail: a kl_in off by 1e-8 (relative) or a row under
# another spec's name is refused.
"$PA" -t whatif -f tsv --digits 17 -l 0 f32.h5 >"$TMP/w0.tsv"
awk -F'\t' 'BEGIN { OFS = "\t" } !/^#/ && $4 == "pi:4" && !done { $5 = $5 * (1 + 1e-8); done = 1 } { print }' "$TMP/w0.tsv" >"$TMP/w0-bad.tsv"
if "$REF" --whatif f32.h5 0 "$TMP/w0-bad.tsv" >/dev/null 2>&1; then
    notok "refattn --whatif refuses a table with one kl_in off by 1e-8"
else
    ok "refattn --whatif refuses a table with one kl_in off by 1e-8"
fi
sed 's/\tntk:4\t/\tntk:3\t/' "$TMP/w0.tsv" >"$TMP/w0-bad.tsv"
if "$REF" --whatif f32.h5 0 "$TMP/w0-bad.tsv" >/dev/null 2>&1; then
    notok "refattn --whatif refuses the rows of ntk:4 under the name ntk:3"
else
    ok "refattn --whatif refuses the rows of ntk:4 under the name ntk:3"
fi

# rope is the baseline: its divergence from itself is 0 exactly.
rope0() { # DESC TABLE
    got=$(sed '/^# section/,$d' "$2" | data /dev/stdin | awk -F'\t' '$4 == "rope" { n++; if ($5 != "0") bad++ } END { print n + 0, bad + 0 }')
    case $got in
    "0 "*) notok "$1" "no rope rows" ;;
    *" 0") ok "$1 ($got)" ;;
    *) notok "$1" "rows, not 0: $got" ;;
    esac
}
rope0 "whatif f32.h5: every rope row has kl_in 0 exactly" "$TMP/w0.tsv"
"$PA" -t whatif -f tsv --digits 17 --pe prope:1 attn.h5 >"$TMP/wa.tsv"
rope0 "whatif attn.h5: every rope row has kl_in 0 exactly" "$TMP/wa.tsv"
got=$(data "$TMP/wa.tsv" | awk -F'\t' '$4 == "prope:1" && $5 != "0" { bad++ } END { print bad + 0 }')
is "whatif attn.h5: prope:1 has kl_in 0 exactly as well" 0 "$got"

# The layers and model sections summarise the rows: per layer and spec the
# heads, the ood heads and the means over the heads (nan left out); for the
# model the same over every head, and the ranks (1 = lowest, ties share the
# lower rank, nan last).
"$PA" -t whatif -f tsv --digits 17 --pe prope:0.5 --pe "dope:$HAND:gauss" f32.h5 >"$TMP/wl.tsv"
bad=$(awk -F'\t' '
    function abs(x) { return x < 0 ? -x : x }
    function near(a, b) { if (a == "nan" || b == "nan") return a == b; return abs(a - b) <= 1e-12 * (abs(b) > 1 ? abs(b) : 1) }
    /^# section: layers/ { sec = 1; next } /^# section: model/ { sec = 2; next } /^#/ { next }
    $1 == "layer" || $1 == "pe" { next }
    sec == 0 {
        k = $1 SUBSEP $4; h[k]++; o[k] += $9; K[$4]; mh[$4]++; mo[$4] += $9
        for (c = 5; c <= 8; c++) if ($c != "nan") { s[k, c] += $c; n[k, c]++; ms[$4, c] += $c; mn[$4, c]++ }
        next
    }
    sec == 1 {
        k = $1 SUBSEP $2; rows1++
        if ($3 != h[k] || $4 != o[k]) bad++
        for (c = 5; c <= 8; c++) if (!near($c, n[k, c] ? s[k, c] / n[k, c] : "nan")) bad++
        next
    }
    sec == 2 {
        rows2++
        if ($2 != mh[$1] || $3 != mo[$1]) bad++
        for (c = 4; c <= 7; c++) { v[$1, c] = $c; if (!near($c, mn[$1, c + 1] ? ms[$1, c + 1] / mn[$1, c + 1] : "nan")) bad++ }
        rk[$1, 4] = $8; rk[$1, 5] = $9; P[++np] = $1
    }
    END {
        for (i = 1; i <= np; i++) for (c = 4; c <= 5; c++) {
            a = v[P[i], c]; r = 1
            if (a == "nan") r = np; else for (j = 1; j <= np; j++) if (v[P[j], c] != "nan" && v[P[j], c] + 0 < a + 0) r++
            if (rk[P[i], c] != r) bad++
        }
        print (rows1 == 2 * np && rows2 == np && np == 3) ? bad + 0 : "rows " rows1 " " rows2 " " np
    }' "$TMP/wl.tsv")
is "whatif f32.h5: the layers and model sections are the means of the rows, the ranks by the means" 0 "$bad"

# -j and pooling: the same table from any number of threads; a file pooled
# with the same data in float64 gives the same means (to the sums' rounding).
"$PA" -t whatif -f tsv --digits 17 -j 1 --pe "dope:$HAND:gauss" f32.h5 >"$TMP/j1.tsv"
"$PA" -t whatif -f tsv --digits 17 -j 3 --pe "dope:$HAND:gauss" f32.h5 >"$TMP/j3.tsv"
if cmp -s "$TMP/j1.tsv" "$TMP/j3.tsv"; then ok "whatif: -j 1 and -j 3 write the same bytes"; else notok "whatif: -j 1 and -j 3 write the same bytes"; fi
"$PA" -t whatif -f tsv --digits 17 --pe "dope:$HAND:gauss" f32.h5 f64.h5 >"$TMP/pool.tsv"
data "$TMP/j1.tsv" >"$TMP/j1.rows"
data "$TMP/pool.tsv" >"$TMP/pool.rows"
if numclose "$TMP/j1.rows" "$TMP/pool.rows"; then
    ok "whatif: f32.h5 pooled with f64.h5 (the same numbers) gives the means of f32.h5 alone"
else
    notok "whatif: f32.h5 pooled with f64.h5 gives the means of f32.h5 alone" "$(diff "$TMP/j1.rows" "$TMP/pool.rows" | head -n 2 | tr '\n' ' ')"
fi

# ------------------------------------------------------------ the real dump
if [ ! -r "$REAL" ]; then
    echo "skip - the real dump: $REAL is missing"
else
    # A mask as peentropy writes it for the real dump, the selection it makes.
    if "$PN" -t select --score energy --order desc -n 6 --mask "$TMP/real.json" -f tsv "$REAL" >/dev/null 2>"$TMP/err"; then
        ok "peentropy -t select --mask writes a mask for the real dump"
    else
        notok "peentropy -t select --mask writes a mask for the real dump" "$(head -n 1 "$TMP/err")"
    fi
    # shellcheck disable=SC2086
    {
        wcheck "whatif real dump layer 0 (T 3072, float16, interleaved): every row of the default specs, prope and dope equals the full-matrix reference" \
            "$REAL" 0 - - pi:4 ntk:4 yarn:4 dynamic:4 clip logn prope:0.5 "dope:$TMP/real.json:gauss"
        wcheck "whatif real dump layer 4 --rows 300: chains and dope, the same" "$REAL" 4 300 - pi:2+clip logn+yarn:4 \
            llama3:8:1:4:128 "dope:$TMP/real.json" "dope:$TMP/real.json:all" "dope:$TMP/real.json:gauss"
    }
    rope0 "whatif real dump: every rope row has kl_in 0 exactly" "$TMP/wc.tsv"
    # clip is prope:0.5 on this model (pairs 2 and 3 turn less than once
    # within 512: analyses.md section 9): the same rows under both names.
    "$PA" -t whatif -f tsv --digits 17 -l 1 --rows 200 --pe clip --pe prope:0.5 "$REAL" >"$TMP/cp.tsv"
    got=$(sed '/^# section/,$d' "$TMP/cp.tsv" | data /dev/stdin | awk -F'\t' '$4 == "clip" { c[$2] = $5 FS $6 FS $7 FS $8 FS $9 } $4 == "prope:0.5" { p[$2] = $5 FS $6 FS $7 FS $8 FS $9 }
        END { for (h in c) { n++; if (c[h] != p[h]) bad++ } print n + 0, bad + 0 }')
    is "whatif real dump: clip and prope:0.5 give the same rows (pairs 2 and 3 below 2 pi / 512)" "8 0" "$got"
fi

# ---------------------------------------------- specs that change nothing
# strip FILE: the table without its # pe: and # pe_note: lines.
strip() { grep -v -e '^# pe: ' -e '^# pe_note: ' "$1"; }
# nochange DESC SPEC CMD...: CMD with --pe SPEC writes the table CMD writes,
# but for the # pe: line (and the note that the table is a what-if).
nochange() {
    desc=$1 spec=$2
    shift 2
    if "$@" >"$TMP/nc-a" 2>"$TMP/nc-err" && "$@" --pe "$spec" >"$TMP/nc-b" 2>>"$TMP/nc-err"; then
        strip "$TMP/nc-a" >"$TMP/nc-a2"
        strip "$TMP/nc-b" >"$TMP/nc-b2"
        if ! grep -qx "# pe: $spec" "$TMP/nc-b"; then
            notok "$desc" "no '# pe: $spec' line"
        elif cmp -s "$TMP/nc-a2" "$TMP/nc-b2"; then
            ok "$desc"
        else
            notok "$desc" "$(diff "$TMP/nc-a2" "$TMP/nc-b2" | head -n 3 | tr '\n' ' ')"
        fi
    else
        notok "$desc" "$(head -n 1 "$TMP/nc-err")"
    fi
}
for f in f32.h5 interleaved.h5 layerfreq.h5; do
    nochange "prope:1 = rope: pedecomp -t summary $f" prope:1 "$PD" -t summary -f tsv --digits 17 "$f"
    nochange "prope:1 = rope: pedecomp (profile) $f" prope:1 "$PD" -f tsv --digits 17 --bins 0 "$f"
    nochange "prope:1 = rope: peanalyze -t heads $f" prope:1 "$PA" -t heads -f tsv --digits 17 "$f"
    nochange "prope:1 = rope: peentropy $f" prope:1 "$PN" -f tsv --digits 17 "$f"
done
nochange "rope+rope = rope: peanalyze -t heads" rope+rope "$PA" -t heads -f tsv --digits 17 f32.h5
if [ -r "$REAL" ]; then
    nochange "prope:1 = rope: peanalyze -t heads, real dump layer 2" prope:1 "$PA" -t heads -f tsv --digits 17 -l 2 "$REAL"
fi
# clip on a model whose pairs all turn at least once within L: spectral.h5
# (base 10, R 8, L 256: theta 1, 0.56, 0.32, 0.18, all >= 2 pi / 256), and
# f32.h5 read with -L 2917 (its lowest theta, 0.0021544, is above
# 2 pi / 2917 = 0.0021540); at -L 2916 that pair is clipped.
for t in "$PD -t summary" "$PA -t heads" "$PN"; do
    case $t in "$PD"*) name="pedecomp -t summary" ;; "$PA"*) name="peanalyze -t heads" ;; *) name=peentropy ;; esac
    # shellcheck disable=SC2086
    nochange "clip on an all-hf model changes nothing: $name spectral.h5" clip $t -f tsv --digits 17 spectral.h5
    # shellcheck disable=SC2086
    nochange "clip changes nothing: $name f32.h5 -L 2917" clip $t -f tsv --digits 17 -L 2917 f32.h5
done
"$PD" -t summary -f tsv --digits 17 -L 2916 f32.h5 >"$TMP/c1"
"$PD" -t summary -f tsv --digits 17 -L 2916 --pe clip f32.h5 >"$TMP/c2"
got=$(data "$TMP/c2" | awk -F'\t' '$4 == 2 { n++; if ($5 == 0 && $8 == "nope") z++ } END { print n + 0, z + 0 }')
if ! cmp -s "$TMP/c1" "$TMP/c2" && [ "$got" = "8 8" ]; then
    ok "clip at -L 2916 (2 pi / 2916 above the lowest theta): pair 2 of every head becomes theta 0, class nope"
else
    notok "clip at -L 2916: pair 2 clipped" "$got"
fi
# logn is harmless within L: with every row in-train (-L 40 on T 40) the
# heads table is rope's.
nochange "logn within L changes nothing: peanalyze -t heads -L 40" logn "$PA" -t heads -f tsv --digits 17 -L 40 f32.h5

# --------------------------------------------- dope: which heads it selects
# selected KEY: the rows of a table under SPEC equal those under EQUIV for
# the heads the mask selects, and rope's for the others.  Rows are keyed by
# layer, head and (peentropy) tensor; KEY lists the selected "layer head
# tensor" (q for query heads: their query and key turn with the head's
# rotation; k for a key head's own row).
dopesel() { # DESC SPEC EQUIV KEYS CMD...
    desc=$1 spec=$2 equiv=$3 keys=$4
    shift 4
    "$@" >"$TMP/ds-r" && "$@" --pe "$spec" >"$TMP/ds-s" && "$@" --pe "$equiv" >"$TMP/ds-e" || {
        notok "$desc" "a run failed"
        return
    }
    got=$(awk -F'\t' -v keys="$keys" '
        BEGIN { n = split(keys, K, ","); for (i = 1; i <= n; i++) sel[K[i]] = 1 }
        FNR == 1 { f++ } /^#/ || $1 !~ /^[0-9]/ { next }
        { t = ($4 == "k") ? "k" : "q"; key = $1 " " $2 " " t; i = key SUBSEP (++c[f, key]) }
        f == 1 { r[i] = $0; next } f == 2 { s[i] = $0; sk[i] = key; next }
        f == 3 { e[i] = $0 }
        END {
            for (i in s) { rows++; want = (sk[i] in sel) ? e[i] : r[i]; if (s[i] != want) bad++; if (sk[i] in sel) hit++ }
            print rows + 0, hit + 0, bad + 0
        }' "$TMP/ds-r" "$TMP/ds-s" "$TMP/ds-e")
    case $got in
    *" 0") if [ "${got#0 }" != "$got" ]; then notok "$desc" "no rows"; else ok "$desc (rows, selected, wrong: $got)"; fi ;;
    *) notok "$desc" "rows, selected, wrong: $got" ;;
    esac
}
SEL_Q="0 0 q,0 2 q,0 3 q,2 3 q"
dopesel "dope:MASK on peanalyze -t heads: the selected query heads get clip's rows, the others rope's" \
    "dope:$HAND" clip "$SEL_Q" "$PA" -t heads -f tsv --digits 17 f32.h5
dopesel "dope:MASK:all on peanalyze -t heads: the selected heads unrotated (prope:0's rows)" \
    "dope:$HAND:all" prope:0 "$SEL_Q" "$PA" -t heads -f tsv --digits 17 f32.h5
dopesel "dope:MASK on pedecomp -t summary: the same heads" "dope:$HAND" clip "$SEL_Q" "$PD" -t summary -f tsv --digits 17 f32.h5
dopesel "dope:MASK on peentropy: selected q rows and the key head named by a tensor k entry (layer 0 key 1) get clip's rows" \
    "dope:$HAND" clip "$SEL_Q,0 1 k" "$PN" -f tsv --digits 17 f32.h5
dopesel "dope:MASK:all on peentropy: the same rows, unrotated" \
    "dope:$HAND:all" prope:0 "$SEL_Q,0 1 k" "$PN" -f tsv --digits 17 f32.h5

# -------------------------------------------- the tools agree under a spec
# pedecomp's total component and peanalyze's mean logit are the same sum
# over the same rotated q and k (draws and factors folded into z^q, z^k).
agree() { # SPEC
    "$PD" -f tsv --digits 17 --bins 0 --pe "$1" f32.h5 >"$TMP/ag-d" && "$PA" -f tsv --digits 17 --bins 0 --pe "$1" f32.h5 >"$TMP/ag-a" || {
        notok "pedecomp total = peanalyze mean_logit under $1" "a run failed"
        return
    }
    got=$(awk -F'\t' 'FNR == 1 { f++ } /^#/ || $1 !~ /^[0-9]/ { next }
        f == 1 && $4 == "total" { t[$1 " " $2 " " $7] = $10; next }
        f == 2 { k = $1 " " $2 " " $4; if (!(k in t)) { miss++; next } d = t[k] - $7; if (d < 0) d = -d; s = $7 < 0 ? -$7 : $7; if (s < 1) s = 1
            if (d > 1e-12 * s) bad++; n++ }
        END { print n + 0, miss + 0, bad + 0 }' "$TMP/ag-d" "$TMP/ag-a")
    is "pedecomp total = peanalyze mean_logit at every distance of every head under $(shown "$1") (distances, missing, wrong)" "320 0 0" "$got"
}
for s in yarn:4 logn+pi:2 "dope:$HAND" "dope:$HAND:all" "dope:$HAND:gauss" "yarn:4+dope:$HAND:gauss+logn" prope:0.5 dynamic:4 \
    llama3:8:1:4:32; do agree "$s"; done
# peanalyze -t heads --pe SPEC rotates through the engine's door; -t whatif
# rotates the raw heads itself: the unseen mass must be the same, and the
# entropy shift the spec's entropy beyond L minus rope's within.
"$PA" -t heads -f tsv --digits 17 f32.h5 >"$TMP/h-rope.tsv"
for s in yarn:4 logn "dope:$HAND:gauss" "yarn:4+dope:$HAND:gauss+logn" dynamic:4; do
    "$PA" -t heads -f tsv --digits 17 --pe "$s" f32.h5 >"$TMP/h.tsv" && "$PA" -t whatif -f tsv --digits 17 --pe "$s" f32.h5 >"$TMP/w.tsv"
    got=$(awk -F'\t' -v spec="$s" 'FNR == 1 { f++ } /^# section/ { sec[f] = 1 } /^#/ || $1 !~ /^[0-9]/ || sec[f] { next }
        f == 1 { ni[$1 " " $2] = $17; next } f == 2 { u[$1 " " $2] = $16; nb[$1 " " $2] = $18; next }
        f == 3 && $4 == spec { k = $1 " " $2; n++; if ($6 != u[k] || $7 - (nb[k] - ni[k]) > 1e-15 || nb[k] - ni[k] - $7 > 1e-15) bad++ }
        END { print n + 0, bad + 0 }' "$TMP/h-rope.tsv" "$TMP/h.tsv" "$TMP/w.tsv")
    is "-t heads --pe $(shown "$s") and -t whatif agree: unseen mass, and entropy shift = beyond(spec) - in(rope) (heads, wrong)" "8 0" "$got"
done

# ------------------------------------------------------------- dope masks
# A mask written by peentropy -t select --mask is read back by every tool.
run "$PN" -t select --score energy --order desc -n 3 --mask "$TMP/m.json" f32.h5
if [ "$status" -eq 0 ] && grep -q '"format": "petools-dope-mask"' "$TMP/m.json"; then ok "peentropy -t select --mask m.json"; else notok "peentropy -t select --mask m.json" "status $status"; fi
for mode in "" :parts :all :gauss; do
    expect 0 "" "peanalyze -t heads --pe dope:m.json$mode: the mask peentropy wrote is accepted" "$PA" -t heads --pe "dope:$TMP/m.json$mode" f32.h5
done
expect 0 "" "pedecomp --pe dope:m.json:gauss: accepted" "$PD" --pe "dope:$TMP/m.json:gauss" f32.h5
expect 0 "" "peentropy --pe dope:m.json: accepted" "$PN" --pe "dope:$TMP/m.json" f32.h5
expect 0 "" "peanalyze -t whatif --pe dope:m.json --pe dope:m.json:gauss: accepted" "$PA" -t whatif --pe "dope:$TMP/m.json" --pe "dope:$TMP/m.json:gauss" f32.h5
# A mask made for another model's shape: status 1, one line naming the field.
"$PN" -t select -n 2 --mask "$TMP/m-attn.json" attn.h5 >/dev/null
"$PN" -t select -n 2 --mask "$TMP/m-inter.json" interleaved.h5 >/dev/null
sed 's/"layer": 2,/"layer": 1,/' "$HAND" >"$TMP/m-layer.json"
sed 's/"n_kv_heads": 2/"n_kv_heads": 4/' "$HAND" >"$TMP/m-kv.json"
sed 's/"head_dim": 8/"head_dim": 10/' "$HAND" >"$TMP/m-dim.json"
expect 1 "peanalyze: $TMP/m-attn.json: made for another model: n_heads 3, but f32.h5 has 4" \
    "a mask of attn.h5 (3 heads) on f32.h5: status 1, naming n_heads" "$PA" -t heads --pe "dope:$TMP/m-attn.json" f32.h5
expect 1 "pedecomp: $TMP/m-kv.json: made for another model: n_kv_heads 4, but f32.h5 has 2" \
    "a mask with another n_kv_heads: status 1, naming it" "$PD" --pe "dope:$TMP/m-kv.json" f32.h5
expect 1 "peentropy: $TMP/m-inter.json: made for another model: rope_pairing interleaved, but f32.h5 has half" \
    "a mask of interleaved.h5 on f32.h5 (the same shape, the other pairing): status 1, naming rope_pairing" "$PN" --pe "dope:$TMP/m-inter.json" f32.h5
expect 1 "peanalyze: $TMP/hand.json: made for another model: rotary_dim 6, but minimal.h5 has 8" \
    "a mask on a dump of another rotary_dim: status 1, naming rotary_dim" "$PA" --pe "dope:$HAND" minimal.h5
expect 1 "peanalyze: $TMP/m-dim.json: made for another model: head_dim 10, but f32.h5 has 8" \
    "a mask for another head_dim: status 1, naming head_dim" "$PA" --pe "dope:$TMP/m-dim.json" f32.h5
expect 1 "peanalyze: $TMP/m-layer.json: heads[2]: layer 1 is not in f32.h5" \
    "a mask naming a layer the dump does not have: status 1, naming the entry and the layer" "$PA" --pe "dope:$TMP/m-layer.json" f32.h5
expect 1 "peanalyze: $TMP/hand.json: made for another model: n_heads 4, but attn.h5 has 3" \
    "-t whatif checks its dope masks too" "$PA" -t whatif --pe pi:2 --pe "dope:$HAND" attn.h5
expect 1 "peanalyze: $TMP/nosuch.json: cannot open: No such file or directory" \
    "a missing mask: status 1" "$PA" --pe "dope:$TMP/nosuch.json" f32.h5
# A colon in the name stays part of it unless a mode follows: dope:M:gaus
# is the file 'M:gaus'.
expect 1 "peanalyze: $TMP/m.json:gaus: cannot open: No such file or directory" \
    "dope:m.json:gaus names the file m.json:gaus (not a mode)" "$PA" --pe "dope:$TMP/m.json:gaus" f32.h5
printf '{"format": "petools-dope-mask", "format_version": 1, "n_heads": 4}' >"$TMP/m-short.json"
expect 1 "peanalyze: $TMP/m-short.json: the mask has no \"n_kv_heads\"" "a mask without n_kv_heads: status 1" \
    "$PA" --pe "dope:$TMP/m-short.json" f32.h5
printf '{"format": "petools-dope-mask", "format_version": 1,\n "n_heads": 4 "x": 1}' >"$TMP/m-json.json"
expect 1 "peanalyze: $TMP/m-json.json: not JSON: line 2, column 15: expected ',' or '}'" "a mask that is not JSON: status 1, line and column" \
    "$PA" --pe "dope:$TMP/m-json.json" f32.h5

# ------------------------------------------------------------- refusals
# (The corpus, tests/cli-corpus.sh, has the parser's forms; these are the
# ones it has not.)
for spec in '+pi:2' 'pi:2++clip' 'prope:nan' 'prope:-0.5' 'yarn:4:32' 'llama3:8:1:4' 'dynamic:0.5' 'dynamic:x' \
    'logn+ntk:4+clip+yarn:2' 'dope:m.json+ntk:2' 'pi:4:2'; do
    run "$PA" --pe "$spec" f32.h5
    if [ "$status" -eq 2 ] && [ "$(wc -l <"$TMP/err")" -eq 1 ] && grep -q "^peanalyze: --pe '$spec'" "$TMP/err" && [ ! -s "$TMP/out" ]; then
        ok "--pe '$spec': status 2, one line naming the option and the spec"
    else
        notok "--pe '$spec': status 2, one line naming the option and the spec" "status $status: $(head -n 1 "$TMP/err")"
    fi
done
expect 2 "peanalyze: --pe 'dynamic:0.5': factor must be >= 1, got 0.5" "--pe dynamic:0.5: the message is about S (T is optional)" "$PA" --pe dynamic:0.5 f32.h5
expect 2 "peanalyze: --pe 'ntk:4': ntk scaling needs rotary dim R >= 4: its exponent R/(R-2) is undefined for R = 2 in odd-d2.h5" \
    "--pe ntk:4 on a rotary dim of 2: status 2, naming the option, the spec and the file" "$PA" --pe ntk:4 -j 1 odd-d2.h5
expect 2 "pedecomp: --pe 'logn+ntk:2': ntk scaling needs rotary dim R >= 4" "pedecomp --pe logn+ntk:2 -q on R 2: the option named, though -q came after it" \
    "$PD" --pe logn+ntk:2 -q -L 8 odd-d2.h5
# Steps that need L, on a dump without train_len (the profile needs none).
for spec in clip logn yarn:4 dynamic:4 dynamic:2:100 pi:2+clip; do
    first=${spec##*+}
    first=${first%%:*}
    expect 2 "peanalyze: --pe '$spec': $first needs the training length: the files have no train_len; give --train-len" \
        "--pe $spec without L: status 2" "$PA" --pe "$spec" attn-nolen.h5
done
expect 0 "" "--pe clip without train_len but with -L: accepted" "$PA" --pe clip -L 16 attn-nolen.h5
expect 0 "" "--pe ntk:4+pi:4+prope:0.5 needs no L" "$PA" --pe ntk:4+pi:4+prope:0.5 attn-nolen.h5
expect 0 "" "--pe llama3 needs no L (its own OLDLEN)" "$PA" --pe llama3:8:1:4:32 attn-nolen.h5
expect 2 "peanalyze: --pe: one spec per run for -t heads (peanalyze -t whatif compares several)" \
    "two --pe for -t heads: status 2" "$PA" -t heads --pe pi:2 --pe clip f32.h5

# ------------------------------------------------------- --scale is --pe
# pedecomp -t freqs: --pe yarn:4 and the old --scale yarn:4 write the same
# table, with a file and without one.
for args in "f32.h5" "-L 4096 --rotary-dim 128" "-L 8192 --rotary-dim 128 --rope-theta 500000"; do
    for spec in yarn:4 ntk:4 pi:4 llama3:8:1:4:8192; do
        # shellcheck disable=SC2086
        if "$PD" -t freqs --digits 17 --pe "$spec" $args >"$TMP/fp" 2>"$TMP/fe" && "$PD" -t freqs --digits 17 --scale "$spec" $args >"$TMP/fs" 2>>"$TMP/fe" &&
            cmp -s "$TMP/fp" "$TMP/fs" && grep -qx "# pe: $spec" "$TMP/fp"; then
            ok "pedecomp -t freqs $args: --pe $spec = --scale $spec"
        else
            notok "pedecomp -t freqs $args: --pe $spec = --scale $spec" "$(head -n 1 "$TMP/fe") $(diff "$TMP/fp" "$TMP/fs" | head -n 2 | tr '\n' ' ')"
        fi
    done
done
# The table's scaled frequencies are the spec's: -t freqs --pe yarn:4 (R 128,
# base 1e4, L 4096) keeps pairs 0 .. 20 and divides pairs 46 .. 63 by 4.
"$PD" -t freqs -f tsv --digits 17 --pe yarn:4 -L 4096 --rotary-dim 128 >"$TMP/fy"
got=$(data "$TMP/fy" | awk -F'\t' 'NR > 1 { r = $7 / $2; if ($1 <= 20 && (r < 1 - 1e-14 || r > 1 + 1e-14)) bad++; if ($1 >= 46 && (r < 0.25 - 1e-14 || r > 0.25 + 1e-14)) bad++
    if ($1 > 20 && $1 < 46 && (r >= 1 || r <= 0.25)) bad++; n++ } END { print n, bad + 0 }')
is "pedecomp -t freqs --pe yarn:4 R 128 L 4096: pairs 0..20 kept, 46..63 divided by 4, a ramp between" "64 0" "$got"

# A spec given twice, or rope itself (the baseline), is listed once.
"$PA" -t whatif -f tsv --pe rope --pe pi:4 --pe pi:4 --pe rope+rope attn.h5 >"$TMP/wd1" 2>&1
"$PA" -t whatif -f tsv --pe pi:4 attn.h5 >"$TMP/wd2" 2>&1
if cmp -s "$TMP/wd1" "$TMP/wd2" && grep -qx '# pe: rope, pi:4 (rope: the model.s own rotation, the baseline)' "$TMP/wd1"; then
    ok "whatif: --pe rope --pe pi:4 --pe pi:4 --pe rope+rope is --pe pi:4: rope once, pi:4 once"
else
    notok "whatif: repeated specs are listed once" "$(grep '^# pe' "$TMP/wd1")"
fi

# ------------------------------------- a dump recorded with another spec
# truth-otherpe.h5's loss (and so its q and k) came from a forward pass with
# --pe pi:4: rotating it with another spec is worth a warning, once per file.
W="its q and k come from a forward pass with --pe pi:4, which this run rotates with"
expect 0 "peanalyze: warning: truth-otherpe.h5: $W rope" "peanalyze: a dump recorded with pi:4, read with rope: one warning line" \
    "$PA" -t heads truth-otherpe.h5
expect 0 "pedecomp: warning: truth-otherpe.h5: $W rope" "pedecomp: the same warning" "$PD" -t summary truth-otherpe.h5
expect 0 "peentropy: warning: truth-otherpe.h5: $W clip" "peentropy --pe clip: the warning names the run's spec" \
    "$PN" --pe clip truth-otherpe.h5
expect 0 "peanalyze: warning: truth-otherpe.h5: $W rope" "pooled with a file recorded with rope: the warning names the one file" \
    "$PA" -t heads truth.h5 truth-otherpe.h5
expect 0 "" "read with its own spec (--pe pi:4): no warning" "$PA" -t heads --pe pi:4 truth-otherpe.h5
expect 0 "" "-q: no warning" "$PA" -t heads -q truth-otherpe.h5
expect 0 "" "-t whatif compares specs: no warning" "$PA" -t whatif truth-otherpe.h5
expect 0 "" "-t loss rotates the file with its own spec: no warning" "$PA" -t loss truth-otherpe.h5
expect 0 "" "a file recorded with rope, read with rope: no warning" "$PA" -t heads truth-nocontrol.h5
exit 0
