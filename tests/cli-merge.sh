#!/bin/sh
# Tests of scripts/pemerge: tables computed on shards merge into the unsplit
# table.  Shards split by --layers / --heads must give the unsplit table byte
# for byte (comment lines included); shards of different files are pooled
# from their counts, which reorders floating-point sums: there the numbers
# must agree within 1e-12 (|a| + |b|) + 1e-15 (shards written with
# --digits 17), and counts and every other column exactly.
#
#   tests/cli-merge.sh BUILD_DIR        (run by tests/run.sh)
. tests/lib.sh
PEDECOMP=$BUILD/pedecomp
PEANALYZE=$BUILD/peanalyze
PEENTROPY=$BUILD/peentropy
PEMERGE=$TOP/scripts/pemerge

# tables NAME CMD...: runs CMD, keeps standard output in $TMP/NAME.
tables() {
    name=$1
    shift
    "$@" >"$TMP/$name" 2>"$TMP/err.$name" || echo "status $? from $*" >>"$TMP/failed"
}

# merged DESC UNSPLIT SHARD...: pemerge of the shards equals UNSPLIT, byte for byte.
merged() {
    desc=$1 whole=$2
    shift 2
    if ! "$PEMERGE" "$@" >"$TMP/merged" 2>"$TMP/merr"; then
        notok "$desc" "pemerge failed: $(head -n 1 "$TMP/merr")"
    elif [ -s "$TMP/merr" ]; then
        notok "$desc" "stderr not empty: $(head -n 1 "$TMP/merr")"
    elif cmp -s "$TMP/merged" "$whole"; then
        ok "$desc"
    else
        notok "$desc" "$(diff "$whole" "$TMP/merged" | head -n 4 | tr '\n' ' ')"
    fi
}

# pooled DESC UNSPLIT PEMERGE-ARGS...: pemerge of the shards has the rows,
# text and counts of UNSPLIT, and its numbers agree within the tolerance.
pooled() {
    desc=$1 whole=$2
    shift 2
    if ! "$PEMERGE" --digits 17 "$@" >"$TMP/merged" 2>"$TMP/merr"; then
        notok "$desc" "pemerge failed: $(head -n 1 "$TMP/merr")"
        return
    fi
    data "$TMP/merged" >"$TMP/pa"
    data "$whole" >"$TMP/pb"
    if [ "$(wc -l <"$TMP/pa")" -ne "$(wc -l <"$TMP/pb")" ] || [ "$(wc -l <"$TMP/pb")" -lt 2 ]; then
        notok "$desc" "$(wc -l <"$TMP/pa") rows against $(wc -l <"$TMP/pb")"
        return
    fi
    bad=$(paste "$TMP/pa" "$TMP/pb" | awk -F'\t' '
        NR == 1 { n = NF / 2; next }
        {
            for (j = 1; j <= n; j++) {
                a = $j; b = $(j + n)
                if (a == b) continue
                # text, and counts (integers on both sides), must be equal
                if (a !~ /^-?[0-9.]+(e[-+]?[0-9]+)?$/ || b !~ /^-?[0-9.]+(e[-+]?[0-9]+)?$/ || (a ~ /^-?[0-9]+$/ && b ~ /^-?[0-9]+$/)) {
                    bad++; if (!first) first = "row " NR " column " j ": " a " / " b; continue
                }
                d = a - b; if (d < 0) d = -d
                s = (a < 0 ? -a : a) + (b < 0 ? -b : b)
                if (d > 1e-12 * s + 1e-15) { bad++; if (!first) first = "row " NR " column " j ": " a " / " b }
            }
        }
        END { print bad + 0 (first ? " (" first ")" : "") }')
    if [ "$bad" = 0 ]; then ok "$desc"; else notok "$desc" "cells differ: $bad"; fi
}

# ---------------------------------------------------------------- usage

expect 2 "usage: pemerge" "no shard is a usage error" "$PEMERGE"
expect 2 "usage: pemerge" "an unknown option is a usage error" "$PEMERGE" --frobnicate x.tsv
expect 2 "usage: pemerge" "--digits 0 is a usage error" "$PEMERGE" --digits 0 x.tsv
expect 1 "pemerge: $TMP/none.tsv: cannot read" "a missing shard" "$PEMERGE" "$TMP/none.tsv"
run "$PEMERGE" --help
if [ "$status" -eq 0 ] && grep -q 'pemerge \[-o OUT\]' "$TMP/out"; then ok "pemerge --help"; else notok "pemerge --help" "status $status"; fi

# ---------------------------------------------------------------- split by layers and heads

# pedecomp, on the real dump (5 layers, 8 query heads, 4 key heads).
tables whole "$PEDECOMP" -f tsv "$REAL"
tables l01 "$PEDECOMP" -f tsv -l 0-1 "$REAL"
tables l24 "$PEDECOMP" -f tsv -l 2-4 "$REAL"
merged "pedecomp profile: shards by --layers" "$TMP/whole" "$TMP/l01" "$TMP/l24"
merged "pedecomp profile: shards in any order" "$TMP/whole" "$TMP/l24" "$TMP/l01"
tables hA "$PEDECOMP" -f tsv -H 0,3,5 "$REAL"
tables hB "$PEDECOMP" -f tsv -H 1-2,4,6-7 "$REAL"
merged "pedecomp profile: shards by --heads" "$TMP/whole" "$TMP/hA" "$TMP/hB"
tables gA "$PEDECOMP" -l 0-2 "$REAL"
tables gB "$PEDECOMP" -l 3-4 "$REAL"
merged "pedecomp profile: gnuplot shards give the tsv table" "$TMP/whole" "$TMP/gA" "$TMP/gB"
for t in summary spectrum usage dims; do
    tables whole "$PEDECOMP" -t $t -f tsv "$REAL"
    tables a "$PEDECOMP" -t $t -f tsv -l 0,2,4 -H 0-4 "$REAL"
    tables b "$PEDECOMP" -t $t -f tsv -l 0,2,4 -H 5-7 "$REAL"
    tables c "$PEDECOMP" -t $t -f tsv -l 1,3 "$REAL"
    merged "pedecomp $t: shards by --layers and --heads" "$TMP/whole" "$TMP/c" "$TMP/b" "$TMP/a"
done
# Key heads shared by the query heads of two shards are written once.
tables whole "$PEDECOMP" -t usage -f tsv -H 0-3 "$REAL"
tables a "$PEDECOMP" -t usage -f tsv -H 0,2 "$REAL"
tables b "$PEDECOMP" -t usage -f tsv -H 1,3 "$REAL"
merged "pedecomp usage: a key head two shards share is written once" "$TMP/whole" "$TMP/a" "$TMP/b"

# peanalyze
for t in profile heads; do
    tables whole "$PEANALYZE" -t $t -f tsv --bins 64 --rows 300 "$REAL"
    tables a "$PEANALYZE" -t $t -f tsv --bins 64 --rows 300 -l 0-2 -H 0-3 "$REAL"
    tables b "$PEANALYZE" -t $t -f tsv --bins 64 --rows 300 -l 0-2 -H 4-7 "$REAL"
    tables c "$PEANALYZE" -t $t -f tsv --bins 64 --rows 300 -l 3-4 "$REAL"
    merged "peanalyze $t: shards by --layers and --heads" "$TMP/whole" "$TMP/a" "$TMP/b" "$TMP/c"
done
tables whole "$PEANALYZE" -t layers -f tsv --rows 300 "$REAL"
tables a "$PEANALYZE" -t layers -f tsv --rows 300 -l 0,4 "$REAL"
tables b "$PEANALYZE" -t layers -f tsv --rows 300 -l 1-3 "$REAL"
merged "peanalyze layers: shards by --layers" "$TMP/whole" "$TMP/a" "$TMP/b"
tables a "$PEANALYZE" -t layers -f tsv --rows 300 -H 0-3 "$REAL"
tables b "$PEANALYZE" -t layers -f tsv --rows 300 -H 4-7 "$REAL"
expect 1 "pemerge: peanalyze layers tables split by --heads cannot be merged" \
    "peanalyze layers: shards by --heads are refused" "$PEMERGE" "$TMP/a" "$TMP/b"

# peentropy
for t in heads bands; do
    tables whole "$PEENTROPY" -t $t -f tsv --stage all "$REAL"
    tables a "$PEENTROPY" -t $t -f tsv --stage all -H 0,2,4,6 "$REAL"
    tables b "$PEENTROPY" -t $t -f tsv --stage all -H 1,3,5,7 "$REAL"
    merged "peentropy $t: shards by --heads (key heads shared)" "$TMP/whole" "$TMP/b" "$TMP/a"
done
tables whole "$PEENTROPY" -t select -f tsv -r 4 "$REAL"
tables a "$PEENTROPY" -t select -f tsv -r 4 -H 0-3 "$REAL"
tables b "$PEENTROPY" -t select -f tsv -r 4 -H 4-7 "$REAL"
merged "peentropy select: the picks of shards by --heads, ranked again" "$TMP/whole" "$TMP/a" "$TMP/b"
tables whole "$PEENTROPY" -t select -f tsv -n 3 --order desc --score lambda1 "$REAL"
tables a "$PEENTROPY" -t select -f tsv -n 3 --order desc --score lambda1 -l 0-1 "$REAL"
tables b "$PEENTROPY" -t select -f tsv -n 3 --order desc --score lambda1 -l 2-4 "$REAL"
merged "peentropy select --order desc: shards by --layers" "$TMP/whole" "$TMP/b" "$TMP/a"

# -o
"$PEMERGE" -o "$TMP/o.tsv" "$TMP/a" "$TMP/b"
if cmp -s "$TMP/o.tsv" "$TMP/whole"; then ok "pemerge -o writes the table"; else notok "pemerge -o writes the table"; fi

# ---------------------------------------------------------------- shards of different files

# Files of the same length (f32.h5, offset.h5: T 40): binned shards pool.
tables whole "$PEDECOMP" -f tsv --bins 4 --digits 17 f32.h5 offset.h5
tables a "$PEDECOMP" -f tsv --bins 4 --digits 17 f32.h5
tables b "$PEDECOMP" -f tsv --bins 4 --digits 17 offset.h5
pooled "pedecomp profile: two files, binned, pooled from n_pairs" "$TMP/whole" "$TMP/a" "$TMP/b"
if [ "$(grep '^# input:' "$TMP/merged")" = "$(grep '^# input:' "$TMP/whole")" ]; then
    ok "pooled: the input lines of every shard"
else
    notok "pooled: the input lines of every shard" "$(grep '^# input:' "$TMP/merged" | tr '\n' ' ')"
fi
# Files and layers at once.
tables a0 "$PEDECOMP" -f tsv --bins 4 --digits 17 -l 0 f32.h5
tables a2 "$PEDECOMP" -f tsv --bins 4 --digits 17 -l 2 f32.h5
tables b0 "$PEDECOMP" -f tsv --bins 4 --digits 17 -l 0 offset.h5
tables b2 "$PEDECOMP" -f tsv --bins 4 --digits 17 -l 2 offset.h5
pooled "pedecomp profile: shards by file and by layer" "$TMP/whole" "$TMP/b2" "$TMP/a0" "$TMP/b0" "$TMP/a2"
# Files of different lengths (short.h5: T 24): bins differ, so unbinned shards.
tables a "$PEDECOMP" -f tsv --bins 4 f32.h5
tables b "$PEDECOMP" -f tsv --bins 4 short.h5
expect 1 "pemerge: the shards have different bins" "binned shards of files of different lengths are refused" \
    "$PEMERGE" "$TMP/a" "$TMP/b"
tables a "$PEDECOMP" -f tsv --bins 0 --digits 17 f32.h5
tables b "$PEDECOMP" -f tsv --bins 0 --digits 17 short.h5
tables whole "$PEDECOMP" -f tsv --bins 0 --digits 17 f32.h5 short.h5
pooled "pedecomp profile: files of different lengths, --bins 0" "$TMP/whole" "$TMP/a" "$TMP/b"
tables whole "$PEDECOMP" -f tsv --bins 7 --digits 17 f32.h5 short.h5
pooled "pedecomp profile: pemerge --bins 7 bins the pooled curve as pedecomp does" "$TMP/whole" --bins 7 "$TMP/a" "$TMP/b"
expect 1 "pemerge: --bins needs unbinned shards" "--bins on binned shards is refused" \
    "$PEMERGE" --bins 3 "$TMP/whole" "$TMP/whole"
for t in usage dims; do
    tables whole "$PEDECOMP" -t $t -f tsv --digits 17 f32.h5 short.h5 offset.h5
    tables a "$PEDECOMP" -t $t -f tsv --digits 17 f32.h5 short.h5
    tables b "$PEDECOMP" -t $t -f tsv --digits 17 offset.h5
    pooled "pedecomp $t: three files in two shards, weighted by tokens" "$TMP/whole" "$TMP/a" "$TMP/b"
done
for bins in 0 5; do
    tables whole "$PEANALYZE" -f tsv --bins $bins --digits 17 f32.h5 offset.h5
    tables a "$PEANALYZE" -f tsv --bins $bins --digits 17 f32.h5
    tables b "$PEANALYZE" -f tsv --bins $bins --digits 17 offset.h5
    pooled "peanalyze profile --bins $bins: two files (last_prob by files per distance)" "$TMP/whole" "$TMP/a" "$TMP/b"
done
tables whole "$PEANALYZE" -f tsv --bins 6 --digits 17 f32.h5 short.h5
tables a "$PEANALYZE" -f tsv --bins 0 --digits 17 f32.h5
tables b "$PEANALYZE" -f tsv --bins 0 --digits 17 short.h5
pooled "peanalyze profile: files of different lengths, binned by pemerge --bins 6" "$TMP/whole" --bins 6 "$TMP/a" "$TMP/b"
for t in heads bands; do
    tables whole "$PEENTROPY" -t $t -f tsv --digits 17 f32.h5 short.h5 offset.h5
    tables a "$PEENTROPY" -t $t -f tsv --digits 17 f32.h5 short.h5
    tables b "$PEENTROPY" -t $t -f tsv --digits 17 offset.h5
    pooled "peentropy $t: the mean over three files, from shards of two and one" "$TMP/whole" "$TMP/a" "$TMP/b"
    if grep -q '^# pooling: each number is the mean over 3 files' "$TMP/merged"; then
        ok "peentropy $t: the pooling line counts every file"
    else
        notok "peentropy $t: the pooling line counts every file" "$(grep '^# pooling' "$TMP/merged")"
    fi
done

# peanalyze -t loss pools by its merge rules (n added, the means weighted by
# n) and rebins by position like a profile by distance: the bins are over
# positions 0 .. Pmax of the longest input, so only --bins 0 shards rebin.
# The calibration section (rank correlations) does not pool: pemerge leaves
# it out and says so; the rows are compared without it.
tables whole "$PEANALYZE" -t loss --bins 0 --digits 17 -f tsv truth.h5 truth-short.h5
sed -i '/^# section: /,$d' "$TMP/whole"
tables a "$PEANALYZE" -t loss --bins 0 --digits 17 -f tsv truth.h5
tables b "$PEANALYZE" -t loss --bins 0 --digits 17 -f tsv truth-short.h5
pooled "peanalyze loss: files of different lengths, --bins 0" "$TMP/whole" "$TMP/b" "$TMP/a"
if grep -q '^# note: the calibration section of the shards is not merged' "$TMP/merged"; then
    ok "peanalyze loss: the calibration section is left out, with a note"
else
    notok "peanalyze loss: the calibration section is left out, with a note"
fi
tables a2 "$PEANALYZE" -t loss --bins 0 --digits 17 -f tsv truth.h5 truth-pi.h5
tables b2 "$PEANALYZE" -t loss --bins 0 --digits 17 -f tsv truth.h5 truth-pi.h5
if "$PEMERGE" "$TMP/a2" "$TMP/b2" >"$TMP/merged2" 2>"$TMP/err" &&
    grep -qx '# note: the calibration and compare sections of the shards are not merged (their numbers do not pool): run the tool on all the inputs for them' "$TMP/merged2" &&
    ! grep -q '^# section: ' "$TMP/merged2"; then
    ok "peanalyze loss: two specs: the calibration and compare sections are left out, with one note"
else
    notok "peanalyze loss: two specs: the calibration and compare sections are left out, with one note" "$(grep '^# note' "$TMP/merged2"; head -n 1 "$TMP/err")"
fi
if [ "$(grep -v '^# input:\|^# note:' "$TMP/merged" | grep '^#')" = "$(grep -v '^# input:' "$TMP/whole" | grep '^#')" ]; then
    ok "peanalyze loss: the comment lines of the unsplit table (bins of the longest input)"
else
    notok "peanalyze loss: the comment lines of the unsplit table (bins of the longest input)" "$(grep '^# bins' "$TMP/merged")"
fi
tables whole "$PEANALYZE" -t loss --bins 4 --digits 17 -f tsv truth.h5 truth-short.h5
sed -i '/^# section: /,$d' "$TMP/whole"
pooled "peanalyze loss: pemerge --bins 4 bins the pooled positions as peanalyze does" "$TMP/whole" --bins 4 "$TMP/a" "$TMP/b"
if grep -q '^# bins: 4 over positions 0\.\.39$' "$TMP/merged"; then
    ok "peanalyze loss: pemerge --bins 4 writes the bins line"
else
    notok "peanalyze loss: pemerge --bins 4 writes the bins line" "$(grep '^# bins' "$TMP/merged")"
fi
tables a "$PEANALYZE" -t loss --bins 4 -f tsv truth.h5
tables b "$PEANALYZE" -t loss --bins 4 -f tsv truth-short.h5
expect 1 "pemerge: the shards have different bins" "peanalyze loss: binned shards of files of different lengths are refused" \
    "$PEMERGE" "$TMP/a" "$TMP/b"

# pemerge knows no table: a table it has never seen pools by its merge line.
custom() { # custom FILE 'MERGE LINE' INPUT-LINE ROW...
    f=$1 m=$2 i=$3
    shift 3
    {
        printf '# sometool table: custom\n# version: 9\n# input: %s\n# merge: %s\n# unit: widgets\n' "$i" "$m"
        printf 'layer\titem\tn\tvalue\ttotal\n'
        printf '%s\n' "$@" | tr ' ' '\t'
    } >"$TMP/$f"
}
rules='layer:block item:key n:sum value:mean(n) total:sum'
ina='a.h5 (T 10, positions 0..9, 1 layer, model x)'
inb='b.h5 (T 30, positions 0..29, 1 layer, model x)'
custom ca "$rules" "$ina" '0 x 2 1.5 3' '0 y 1 4 4' '1 x 3 2 6'
custom cb "$rules" "$inb" '0 x 4 3 12' '0 y 3 0.5 1.5' '1 x 1 10 10'
custom cw "$rules" "$ina" '0 x 6 2.5 15' '0 y 4 1.375 5.5' '1 x 4 4 16'
sed "3a\\
# input: $inb" "$TMP/cw" >"$TMP/cwhole"
merged "a new table: pooled by its merge line (n and total added, value weighted by n)" "$TMP/cwhole" "$TMP/ca" "$TMP/cb"
custom cb "layer:block item:key n:sum value:mean(total) total:sum" "$inb" '0 x 4 3 12' '0 y 3 0.5 1.5' '1 x 1 10 10'
expect 1 "pemerge: $TMP/cb: its settings differ from the first shard: \"# merge: layer:block item:key n:sum value:mean(total)" \
    "shards whose merge lines differ are refused" "$PEMERGE" "$TMP/ca" "$TMP/cb"
custom ca "layer:block item:key n:sum value:median(n) total:sum" "$ina" '0 x 2 1.5 3'
custom cb "layer:block item:key n:sum value:median(n) total:sum" "$inb" '0 x 4 3 12'
expect 1 "pemerge: $TMP/ca: column value: unknown merge rule \"median(n)\"" \
    "an unknown merge rule is refused, naming the column and the rule" "$PEMERGE" "$TMP/ca" "$TMP/cb"
tables a "$PEDECOMP" -f tsv --bins 4 f32.h5
grep -v '^# merge:' "$TMP/a" >"$TMP/old"
expect 1 "pemerge: $TMP/old: no \"# merge:\" line" "a table without a merge line (an older petools) is refused" \
    "$PEMERGE" "$TMP/a" "$TMP/old"

# What cannot be pooled is refused, with the reason.
tables a "$PEDECOMP" -t summary -f tsv f32.h5
tables b "$PEDECOMP" -t summary -f tsv offset.h5
expect 1 "pemerge: pedecomp summary tables of different files cannot be pooled" "pedecomp summary of two files is refused" \
    "$PEMERGE" "$TMP/a" "$TMP/b"
tables a "$PEANALYZE" -t heads -f tsv f32.h5
tables b "$PEANALYZE" -t heads -f tsv offset.h5
expect 1 "pemerge: peanalyze heads tables of different files cannot be pooled" "peanalyze heads of two files is refused" \
    "$PEMERGE" "$TMP/a" "$TMP/b"
tables a "$PEENTROPY" -t select -f tsv f32.h5
tables b "$PEENTROPY" -t select -f tsv offset.h5
expect 1 "pemerge: peentropy select tables of different files cannot be pooled" "peentropy select of two files is refused" \
    "$PEMERGE" "$TMP/a" "$TMP/b"
tables a "$PEDECOMP" -f tsv --bins 4 f32.h5 short.h5
tables b "$PEDECOMP" -f tsv --bins 4 f32.h5
expect 1 "pemerge: shards share some input files but not all" "shards sharing some files are refused" \
    "$PEMERGE" "$TMP/a" "$TMP/b"
tables a "$PEDECOMP" -f tsv --bins 4 f32.h5
tables b "$PEDECOMP" -f tsv --bins 8 f32.h5
expect 1 "pemerge: $TMP/b: its settings differ from the first shard: \"# bins: 8\" against \"# bins: 4\"" \
    "shards with other settings are refused" "$PEMERGE" "$TMP/a" "$TMP/b"
tables b "$PEDECOMP" -t usage -f tsv f32.h5
expect 1 "pemerge: $TMP/b: a pedecomp usage table; the first shard holds a pedecomp profile table" \
    "shards of different tables are refused" "$PEMERGE" "$TMP/a" "$TMP/b"
if [ -f "$TMP/failed" ]; then notok "every tool run worked" "$(head -n 1 "$TMP/failed")"; else ok "every tool run worked"; fi
