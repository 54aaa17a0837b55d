#!/bin/sh
# Command-line tests of peentropy: exit statuses, exact messages, golden
# tables, the test vectors and the cone through the tool, every number of
# several tables against the independent reference of test_entropy --ref,
# grouped-query attention with and without --broadcast, ties, the order of
# the input files, threads, output files, the mask, the acceptance checks
# on the real dump, and the two figure scripts.
#
#   tests/cli-peentropy.sh BUILD_DIR        (run by tests/run.sh)
. tests/lib.sh
PE=$BUILD/peentropy
REF=$BUILD/tests/test_entropy
SCRIPTS=$TOP/scripts

# num_close DESC A B TOL: |A - B| <= TOL (numbers as text).
num_close() {
    if awk -v a="$2" -v b="$3" -v t="$4" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= t) }'; then
        ok "$1"
    else
        notok "$1" "got $2, want $3 (tol $4)"
    fi
}

# refcheck DESC TABLE FILE...: every row of TABLE (tsv, --digits 17) equals
# the reference computed from FILE... to 1e-9.
refcheck() {
    desc=$1 tab=$2
    shift 2
    if "$REF" --ref "$tab" "$@" >"$TMP/ref.log" 2>&1; then
        ok "$desc ($(tail -n 1 "$TMP/ref.log"))"
    else
        notok "$desc" "$(head -n 3 "$TMP/ref.log" | tr '\n' ' ')"
    fi
}

# ------------------------------------------------------------------ usage
run "$PE" --help
if [ "$status" -eq 0 ] && grep -q '^Usage: peentropy' "$TMP/out" && [ ! -s "$TMP/err" ]; then
    ok "peentropy --help: usage on stdout, status 0"
else
    notok "peentropy --help" "status $status"
fi
for opt in --table --tensor --stage --prep --rank --ntk-len --ntk-factor --broadcast --top --order --score --mask \
    --layers --heads --train-len --pairing --output --format --digits --jobs --max-memory --quiet --verbose --version; do
    if grep -q -- "$opt" "$TMP/out"; then ok "peentropy --help lists $opt"; else notok "peentropy --help lists $opt"; fi
done
run "$PE" --version
if [ "$status" -eq 0 ] && grep -q '^peentropy (petools) ' "$TMP/out" && grep -q 'HDF5 1\.' "$TMP/out" &&
    grep -q 'OpenBLAS' "$TMP/out" && grep -q 'LAPACK [0-9]' "$TMP/out"; then
    ok "peentropy --version names the version, HDF5, OpenBLAS and LAPACK"
else
    notok "peentropy --version" "$(cat "$TMP/out")"
fi

while IFS='|' read -r msg desc args; do
    [ -n "$desc" ] || continue
    # shellcheck disable=SC2086
    expect 2 "peentropy: $msg" "$desc" "$PE" $args
done <<'EOF'
no input file|no input file|
unknown option --frobnicate|unknown long option|--frobnicate ent-gqa.h5
option --rank needs an argument|missing argument|ent-gqa.h5 --rank
--table: unknown value 'nonsense' (one of: heads, bands, select)|unknown table|-t nonsense ent-gqa.h5
--tensor: unknown value 'v' (one of: q, k, both)|unknown tensor|--tensor v ent-gqa.h5
--stage: unknown value 'mid' (one of: pre, post, ntk, all)|unknown stage|--stage mid ent-gqa.h5
--prep: unknown value 'pca' (one of: paper, uncomp)|unknown preparation|--prep pca ent-gqa.h5
--order: unknown value 'up' (one of: asc, desc)|unknown order|-t select --order up ent-gqa.h5
--score: unknown value 'h' (one of: s, norm, rho, full, lambda1, energy)|unknown score|-t select --score h ent-gqa.h5
--rank: 0 is out of range [1, 1000000]|rank 0|-r 0 ent-gqa.h5
--rank: '4x' is not an integer|rank with garbage|-r 4x ent-gqa.h5
--top: 0 is out of range|top 0|-t select -n 0 ent-gqa.h5
--ntk-len: 0 is out of range|ntk length 0|--stage ntk --ntk-len 0 ent-gqa.h5
--ntk-factor: 0.5 is out of range [1, 1e+06]|ntk factor below 1|--stage ntk --ntk-len 64 --ntk-factor 0.5 ent-gqa.h5
--ntk-factor: 'inf' is not a finite number|ntk factor inf|--stage ntk --ntk-len 64 --ntk-factor inf ent-gqa.h5
--top: only for -t select|--top with heads|-n 3 ent-gqa.h5
--order: only for -t select|--order with bands|-t bands --order desc ent-gqa.h5
--score: only for -t select|--score with heads|--score rho ent-gqa.h5
--mask: only for -t select|--mask with heads|--mask m.json ent-gqa.h5
-t select ranks the heads of one stage: give --stage pre, post or ntk, not all|select with --stage all|-t select --stage all ent-gqa.h5
--stage ntk needs the target length: give --ntk-len N|ntk without --ntk-len|--stage ntk ent-gqa.h5
--ntk-len: only with --stage ntk or all|--ntk-len with post|--ntk-len 64 ent-gqa.h5
--ntk-factor: only with --ntk-len|--ntk-factor alone|--stage all --ntk-factor 2 ent-gqa.h5
--mask: empty file name|empty mask name|-t select --mask= ent-gqa.h5
--mask -: the table already goes to standard output (-o -)|mask and table both on stdout|-t select --mask - -o - ent-gqa.h5
--mask: 'same.json' is also the --output file|mask onto the table|-t select --mask same.json -o same.json ent-gqa.h5
--layers: layer 1 is not in ent-gqa.h5|missing layer|-l 1 ent-gqa.h5
--heads: head 8 does not exist (the files have 8 query heads)|missing head|-H 8 ent-gqa.h5
--mask needs the training length|mask without L|-t select --mask m.json minimal.h5
--stage ntk needs the training length|ntk without L|--stage ntk --ntk-len 64 minimal.h5
--stage all needs the training length|all with ntk without L|--stage all --ntk-len 64 minimal.h5
ent-cone.h5: --stage ntk: dynamic scaling needs rotary dim R >= 4|ntk with R = 2|--stage ntk --ntk-len 128 ent-cone.h5
EOF
cp ent-gqa.h5 "$TMP/in.h5"
sum_before=$(cksum <"$TMP/in.h5")
expect 2 "peentropy: --mask: '$TMP/in.h5' is an input file; refusing to overwrite it" "--mask onto an input is refused" \
    "$PE" -t select --mask "$TMP/in.h5" "$TMP/in.h5"
expect 2 "peentropy: --output: '$TMP/in.h5' is an input file" "-o onto an input is refused" "$PE" -o "$TMP/in.h5" "$TMP/in.h5"
expect 2 "peentropy: --mask: cannot create 'no/such/m.json': No such file or directory" "--mask in a missing folder" "$PE" -t select --mask no/such/m.json ent-gqa.h5
if [ "$(cksum <"$TMP/in.h5")" = "$sum_before" ]; then ok "the input is left untouched"; else notok "the input is left untouched"; fi

# Bad files: status 1, one line naming the file and what is wrong.
expect 1 "peentropy: bad-text.h5: not an HDF5 file" "a text file" "$PE" bad-text.h5
expect 1 "peentropy: no-such.h5: cannot open: No such file or directory" "a missing file" "$PE" no-such.h5
expect 1 "peentropy: bad-q-nan.h5: layer 0: q head 1 token 5 dim 3: value is NaN" "a NaN in q" "$PE" bad-q-nan.h5
expect 1 "peentropy: bad-k-inf.h5: layer 0: k head 1 token 5 dim 3: value is infinite" "an infinity in k" "$PE" --tensor k bad-k-inf.h5
expect 1 "peentropy: otherbase.h5: the frequencies (/rope/inv_freq or rope_theta): differs from f32.h5" \
    "files that disagree" "$PE" f32.h5 otherbase.h5
expect 1 "peentropy: ent-zerorow.h5: layer 0: k head 0: stage post: token 2: the vector equals the mean over tokens" \
    "uncomp: a zero row names file, layer, tensor, head, stage and token" "$PE" --prep uncomp ent-zerorow.h5
expect 0 "" "paper has no trouble with the same file" "$PE" ent-zerorow.h5

# ----------------------------------------------------------- golden tables
golden peentropy-heads.gp "$PE" -l 0 ent-gqa.h5
golden peentropy-heads-all.tsv "$PE" -f tsv --stage all --ntk-len 64 --prep uncomp -r 3 ent-gqa.h5
golden peentropy-heads-broadcast.json "$PE" -f json --tensor k --broadcast -l 3 ent-gqa.h5
golden peentropy-bands.gp "$PE" -t bands -H 0,5 ent-gqa.h5
golden peentropy-bands-cone.tsv "$PE" -t bands -f tsv --stage all ent-cone.h5
golden peentropy-bands.json "$PE" -t bands -f json --tensor q -H 1 -l 0 --stage pre ent-gqa.h5
golden peentropy-select.gp "$PE" -t select ent-gqa.h5 ent-gqa2.h5
golden peentropy-select.tsv "$PE" -t select -f tsv -n 5 --order desc --score rho -r 2 ent-gqa.h5
golden peentropy-select.json "$PE" -t select -f json --tensor k --broadcast -n 3 --score lambda1 --order desc ent-gqa.h5
golden peentropy-mask.json "$PE" -t select -n 4 --mask - ent-gqa.h5 ent-gqa2.h5
golden peentropy-minimal.tsv "$PE" -f tsv -t bands -H 0 minimal.h5
# The real dump, from the top of the tree so that the input line is short.
golden peentropy-real-select.tsv sh -c "cd '$TOP' && '$PE' -t select -f tsv -r 4 testdata/stories260K.h5"

# -------------------------------------------- the test vectors through the tool
# The specification's test vectors; ent-tv.h5 holds the 6 x 4 matrix as q and k.
check_vectors() {
    prep=$1 file=$2 stage=$3
    shift 3
    for r in 1 2 4; do
        "$PE" -f tsv --digits 17 --tensor k --stage "$stage" --prep "$prep" -r "$r" "$file" | grep -v '^#' | sed -n 2p >"$TMP/tv$r"
    done
    # columns: 8 score 10 rho 11 lambda1
    set -- "$@"
    num_close "$prep via $file: lambda_1" "$(cut -f 11 "$TMP/tv1")" "$1" 1e-9
    num_close "$prep via $file: S_1" "$(cut -f 8 "$TMP/tv1")" "$2" 1e-9
    num_close "$prep via $file: S_2" "$(cut -f 8 "$TMP/tv2")" "$3" 1e-9
    num_close "$prep via $file: S_4" "$(cut -f 8 "$TMP/tv4")" "$4" 1e-9
    num_close "$prep via $file: rho_2" "$(cut -f 10 "$TMP/tv2")" "$5" 1e-9
    num_close "$prep via $file: rho_4" "$(cut -f 10 "$TMP/tv4")" "$6" 1e-9
    num_close "$prep via $file: full = S_4" "$(cut -f 12 "$TMP/tv1")" "$4" 1e-9
}
check_vectors paper ent-tv.h5 pre 0.939298071 0.058821114 0.186318252 0.276446693 1.183966636 1.318436669
check_vectors uncomp ent-tv.h5 pre 0.488909463 0.349852833 0.717731381 1.093780297 1.980381434 2.985538990
check_vectors paper ent-tv-norope.h5 post 0.939298071 0.058821114 0.186318252 0.276446693 1.183966636 1.318436669
check_vectors uncomp ent-tv-norope.h5 post 0.488909463 0.349852833 0.717731381 1.093780297 1.980381434 2.985538990

# The cone (unit key (1, 0) turned by j theta, j = 0..63): layer 0 theta 0.01, layer 1 theta 1.
run "$PE" -t bands -f tsv --digits 17 --tensor k ent-cone.h5
data "$TMP/out" | awk -F'\t' '$1 == 0 { print $9, $10, $11 }' >"$TMP/cone0"
data "$TMP/out" | awk -F'\t' '$1 == 1 { print $11 }' >"$TMP/cone1"
num_close "cone theta 0.01: mu1" "$(cut -d' ' -f1 "$TMP/cone0")" 0.966566715 1e-9
num_close "cone theta 0.01: mu2" "$(cut -d' ' -f2 "$TMP/cone0")" 0.033433285 1e-9
num_close "cone theta 0.01: entropy" "$(cut -d' ' -f3 "$TMP/cone0")" 0.146481159 1e-9
num_close "cone theta 1.0: entropy" "$(cat "$TMP/cone1")" 0.693001248 1e-9
run "$PE" -t bands -f tsv --stage pre --tensor k ent-cone.h5
if [ "$(data "$TMP/out" | awk -F'\t' 'NR > 1 { print $11 }' | sort -u)" = 0 ]; then
    ok "cone, stage pre: the unrotated keys are rank one (entropy 0)"
else
    notok "cone, stage pre: entropy 0"
fi

# ------------------------------------------- every number against the reference
run "$PE" -f tsv --digits 17 --stage all --ntk-len 64 ent-gqa.h5
refcheck "heads, all stages, paper: the reference" "$TMP/out" ent-gqa.h5
run "$PE" -f tsv --digits 17 --stage all --ntk-len 100 --ntk-factor 2 --prep uncomp -r 3 --broadcast ent-gqa.h5
refcheck "heads, all stages, uncomp, r 3, broadcast: the reference" "$TMP/out" ent-gqa.h5
run "$PE" -f tsv --digits 17 --stage all -r 5 ent-gqa.h5 ent-gqa2.h5
refcheck "two files pooled (the mean of the per-file numbers): the reference" "$TMP/out" ent-gqa.h5 ent-gqa2.h5
cp "$TMP/out" "$TMP/pooled.tsv"
run "$PE" -t bands -f tsv --digits 17 --stage all --ntk-len 64 ent-gqa.h5 ent-gqa2.h5
refcheck "bands, all stages, two files: the reference" "$TMP/out" ent-gqa.h5 ent-gqa2.h5
run "$PE" -t bands -f tsv --digits 17 --stage all --prep uncomp ent-gqa.h5
refcheck "bands, uncomp: the reference" "$TMP/out" ent-gqa.h5
for f in interleaved.h5 bf16.h5 layerfreq.h5 gappy.h5; do
    run "$PE" -f tsv --digits 17 --stage all --ntk-len 64 "$f"
    refcheck "$f (interleaved; bfloat16; own inv_freq and a layer without rope; gappy positions): the reference" "$TMP/out" "$f"
done
# The reference can fail: one number moved in the last digits.
awk -F'\t' 'BEGIN { OFS = "\t" } !/^#/ && $1 == "3" && $2 == "1" && $4 == "q" && $5 == "pre" { $8 = $8 + 1e-7 } { print }' \
    "$TMP/pooled.tsv" >"$TMP/moved.tsv"
if "$REF" --ref "$TMP/moved.tsv" ent-gqa.h5 ent-gqa2.h5 >"$TMP/ref.log" 2>&1; then
    notok "the reference finds a number moved by 1e-7"
else
    ok "the reference finds a number moved by 1e-7"
fi

# ------------------------------------------------ grouped-query attention
run "$PE" -f tsv --digits 17 ent-gqa.h5
data "$TMP/out" >"$TMP/gqa.tsv"
run "$PE" -f tsv --digits 17 --broadcast ent-gqa.h5
data "$TMP/out" >"$TMP/gqa-b.tsv"
nq=$(awk -F'\t' '$4 == "q"' "$TMP/gqa.tsv" | wc -l)
nk=$(awk -F'\t' '$4 == "k"' "$TMP/gqa.tsv" | wc -l)
nkb=$(awk -F'\t' '$4 == "k"' "$TMP/gqa-b.tsv" | wc -l)
if [ "$nq" -eq 16 ] && [ "$nk" -eq 4 ] && [ "$nkb" -eq 16 ]; then
    ok "GQA 8 on 2, two layers: 16 q rows, 4 key-head rows, 16 broadcast rows"
else
    notok "GQA row counts" "q $nq, k $nk, broadcast k $nkb"
fi
if awk -F'\t' '$4 == "k" && $2 != $3 { bad++ } END { exit bad > 0 }' "$TMP/gqa.tsv"; then
    ok "unbroadcast key rows: head is the key head and kv_head repeats it"
else
    notok "unbroadcast key rows: head == kv_head"
fi
# Every broadcast row holds exactly its key head's numbers.
bad=$(awk -F'\t' '
    FNR == 1 { next }
    NR == FNR { if ($4 == "k") { k = $1 SUBSEP $3; v[k] = $8 " " $9 " " $10 " " $11 " " $12 " " $13 } next }
    $4 == "k" { n++; if ($3 != int($2 / 4) || v[$1 SUBSEP $3] != $8 " " $9 " " $10 " " $11 " " $12 " " $13) bad++ }
    END { print (n == 16 ? bad + 0 : "no rows") }' "$TMP/gqa.tsv" "$TMP/gqa-b.tsv")
if [ "$bad" = 0 ]; then ok "--broadcast: each query head's row repeats its key head's score"; else notok "--broadcast rows" "$bad"; fi
if [ "$(awk -F'\t' '$4 == "q"' "$TMP/gqa.tsv")" = "$(awk -F'\t' '$4 == "q"' "$TMP/gqa-b.tsv")" ]; then
    ok "--broadcast leaves the query rows alone"
else
    notok "--broadcast leaves the query rows alone"
fi
run "$PE" -f tsv -H 5,6 ent-gqa.h5
if [ "$(data "$TMP/out" | awk -F'\t' 'NR > 1 { print $1 $2 $3 $4 }' | tr '\n' ' ')" = "051q 061q 011k 351q 361q 311k " ]; then
    ok "-H 5,6: their query rows and their one key head, once"
else
    notok "-H 5,6" "$(data "$TMP/out" | awk -F'\t' 'NR > 1 { print $1 $2 $3 $4 }' | tr '\n' ' ')"
fi

# Pairing: the same logical data stored half and interleaved scores the same.
run "$PE" -f tsv --digits 17 --stage all ent-twin-half.h5
data "$TMP/out" >"$TMP/twin-h"
run "$PE" -f tsv --digits 17 --stage all ent-twin-inter.h5
data "$TMP/out" >"$TMP/twin-i"
cmpnum() { # FILE_A FILE_B FIRST_COL TOL: rows equal, numbers from column FIRST_COL on within TOL.
    awk -F'\t' -v c="$3" -v t="$4" 'NR == FNR { a[FNR] = $0; next }
        { n = split(a[FNR], x, "\t"); if (n != NF) bad++
          for (i = 1; i <= NF; i++) { if (i < c) { if (x[i] != $i) bad++ } else { d = x[i] - $i; if (d < 0) d = -d; if (d > t) bad++ } } }
        END { exit (bad > 0 || FNR != NR - FNR) }' "$1" "$2"
}
if cmpnum "$TMP/twin-h" "$TMP/twin-i" 8 1e-12; then ok "half and interleaved twins: the same head scores (1e-12)"; else notok "pairing twins, heads"; fi
run "$PE" -t bands -f tsv --digits 17 --stage all ent-twin-half.h5
data "$TMP/out" >"$TMP/twin-h"
run "$PE" -t bands -f tsv --digits 17 --stage all ent-twin-inter.h5
data "$TMP/out" >"$TMP/twin-i"
if cmpnum "$TMP/twin-h" "$TMP/twin-i" 9 1e-12; then ok "half and interleaved twins: the same band view (1e-12)"; else notok "pairing twins, bands"; fi

# --------------------------------------------------------------------- ties
run "$PE" -t select -f tsv -n 100 ent-ties.h5
got=$(data "$TMP/out" | awk -F'\t' 'NR > 1 { printf "%s%s%s%s ", $2, $3, $4, $5 }')
if [ "$got" = "000q 000k 010q 011k 021q 031q 100q 100k 110q 111k 121q 131q " ]; then
    ok "ties: ranked by layer, then head, q before k"
else
    notok "ties: ranked by layer, then head, q before k" "$got"
fi
if [ "$(data "$TMP/out" | awk -F'\t' 'NR > 1 { print $6 }' | sort -u | wc -l)" -eq 1 ]; then ok "ties: every score is the same"; else notok "ties: every score is the same"; fi
run "$PE" -t select -f tsv -n 100 --order desc ent-ties.h5
got2=$(data "$TMP/out" | awk -F'\t' 'NR > 1 { printf "%s%s%s%s ", $2, $3, $4, $5 }')
if [ "$got2" = "$got" ]; then ok "ties: desc keeps the same tie order"; else notok "ties: desc keeps the same tie order" "$got2"; fi

# ------------------------------------------------ the order of the input files
for args in "" "--prep uncomp -r 3" "--stage pre --score rho --order desc"; do
    # shellcheck disable=SC2086
    "$PE" -t select -n 6 $args --mask "$TMP/m1.json" -o "$TMP/s1.tsv" ent-gqa.h5 ent-gqa2.h5 2>"$TMP/err" &&
        "$PE" -t select -n 6 $args --mask "$TMP/m2.json" -o "$TMP/s2.tsv" ent-gqa2.h5 ent-gqa.h5 2>>"$TMP/err"
    if cmp -s "$TMP/m1.json" "$TMP/m2.json"; then ok "mask ($args): the same bytes for both orders of the files"; else notok "mask ($args) and file order" "$(head -n 1 "$TMP/err")"; fi
    same "select ($args): the same rows for both orders of the files" "$TMP/s1.tsv" "$TMP/s2.tsv"
done
run "$PE" -f tsv --digits 17 --stage all -r 5 ent-gqa2.h5 ent-gqa.h5
same "heads (17 digits): the same rows for both orders of the files" "$TMP/out" "$TMP/pooled.tsv"

# ------------------------------------------------------------------ threads
for t in "" "-t bands --stage all" "-t select --prep uncomp"; do
    # shellcheck disable=SC2086
    "$PE" -j 1 $t --digits 17 ent-gqa.h5 ent-gqa2.h5 >"$TMP/j1" 2>&1
    # shellcheck disable=SC2086
    "$PE" -j 2 $t --digits 17 ent-gqa.h5 ent-gqa2.h5 >"$TMP/j2" 2>&1
    if cmp -s "$TMP/j1" "$TMP/j2"; then ok "-j 1 and -j 2 write the same bytes ($t)"; else notok "-j 1 and -j 2 ($t)"; fi
done

# ------------------------------------------------------------------ output
expect 0 "" "-o writes a file" "$PE" -o "$TMP/table.tsv" -f tsv ent-gqa.h5
if [ -s "$TMP/table.tsv" ] && [ ! -s "$TMP/out" ]; then ok "-o: the table is in the file, not on stdout"; else notok "-o: the table is in the file"; fi
echo keep >"$TMP/keep.tsv"
expect 1 "peentropy: ent-zerorow.h5: layer 0: k head 0" "a failing run" "$PE" --prep uncomp -o "$TMP/keep.tsv" ent-zerorow.h5
if [ "$(cat "$TMP/keep.tsv")" = keep ] && ! ls "$TMP"/keep.tsv.tmp* >/dev/null 2>&1; then
    ok "a failed run leaves the old file as it was and no temporary"
else
    notok "a failed run leaves the old file as it was"
fi
expect 1 "peentropy: ent-zerorow.h5: layer 0: k head 0" "a failing select" "$PE" -t select --prep uncomp --mask "$TMP/fail.json" -o "$TMP/fail.tsv" ent-zerorow.h5
if ls "$TMP"/fail.* >/dev/null 2>&1; then notok "a failed select leaves no table and no mask"; else ok "a failed select leaves no table and no mask"; fi
expect 0 "" "--mask FILE with the table on stdout" "$PE" -t select --mask "$TMP/m.json" ent-gqa.h5
if [ -s "$TMP/m.json" ] && grep -q '^rank' "$TMP/out"; then ok "--mask FILE: the mask in the file, the table on stdout"; else notok "--mask FILE and the table"; fi
expect 0 "" "--mask - -o FILE" "$PE" -t select --mask - -o "$TMP/t.tsv" ent-gqa.h5
if head -n 1 "$TMP/out" | grep -q '^{"format": "petools-dope-mask"' && grep -q '^rank' "$TMP/t.tsv"; then
    ok "--mask - -o FILE: the mask on stdout, the table in the file"
else
    notok "--mask - -o FILE"
fi
if [ -w /dev/full ]; then
    expect 1 "peentropy: standard output: write error: No space left on device" "> /dev/full fails with status 1" \
        sh -c "'$PE' ent-gqa.h5 >/dev/full"
    expect 1 "peentropy: standard output: write error" "--mask - > /dev/full fails with status 1" \
        sh -c "'$PE' -t select --mask - ent-gqa.h5 >/dev/full"
    expect 1 "peentropy: standard output: write error" "--help > /dev/full fails with status 1" sh -c "'$PE' --help >/dev/full"
    expect 1 "peentropy: standard output: write error" "a failed stdout keeps the mask file from appearing" \
        sh -c "'$PE' -t select --mask '$TMP/full.json' ent-gqa.h5 >/dev/full"
    if [ -e "$TMP/full.json" ]; then notok "no mask after a failed table"; else ok "no mask after a failed table"; fi
else
    echo "skip - /dev/full is not writable here"
fi

# --------------------------------------------------------------------- mask
if command -v jq >/dev/null 2>&1; then
    run "$PE" -t select -n 4 --mask - ent-gqa.h5
    if jq -e . "$TMP/out" >/dev/null; then ok "mask: jq reads it"; else notok "mask: jq reads it"; fi
    if jq -e '.format == "petools-dope-mask" and .format_version == 1 and .train_len == 16 and (.heads | length == 4)
              and ([.heads[] | .pairs == [1, 2] and .dims == [[1, 4], [2, 5]]] | all)
              and ((.threshold - 0.39269908169872414) | fabs < 1e-15)' "$TMP/out" >/dev/null; then
        ok "mask (R 6, half, L 16): pairs 1 and 2 (theta <= 2 pi / 16), dims (i, i + 3)"
    else
        notok "mask pairs of ent-gqa.h5" "$(jq -c '.heads[0]' "$TMP/out")"
    fi
    if jq -e '[.heads[] | select(.tensor == "k") | .query_heads == [range(.kv_head * 4; .kv_head * 4 + 4)]] | all' "$TMP/out" >/dev/null &&
        jq -e '[.heads[] | select(.tensor == "q") | .query_heads == [.head]] | all' "$TMP/out" >/dev/null; then
        ok "mask: a key head lists the query heads that use it"
    else
        notok "mask: query_heads"
    fi
    "$PE" -t select -n 4 -f tsv ent-gqa.h5 >"$TMP/sel.tsv"
    if [ "$(jq -r '.heads[] | "\(.rank) \(.layer) \(.head) \(.kv_head) \(.tensor)"' "$TMP/out")" = \
        "$(data "$TMP/sel.tsv" | awk -F'\t' 'NR > 1 { print $1, $2, $3, $4, $5 }')" ]; then
        ok "mask: the heads of the select table, in its order"
    else
        notok "mask: the heads of the select table"
    fi
    (cd "$TOP" && "$PE" -t select -n 6 -r 4 --mask - testdata/stories260K.h5) >"$TMP/real-mask.json" 2>"$TMP/err"
    if jq -e '(.heads | length == 6) and ([.heads[] | .pairs == [2, 3] and .dims == [[4, 5], [6, 7]] and .theta == [0.01, 0.001]] | all)
              and .rope_pairing == "interleaved" and .train_len == 512 and .inputs == ["testdata/stories260K.h5"]' \
        "$TMP/real-mask.json" >/dev/null; then
        ok "real dump mask: pairs 2 and 3 (theta 0.01, 0.001 <= 2 pi / 512), interleaved dims"
    else
        notok "real dump mask" "$(head -c 300 "$TMP/real-mask.json")"
    fi
    run "$PE" -t select --broadcast --tensor k -n 2 --mask - ent-gqa.h5
    if jq -e '[.heads[] | .query_heads == [.head]] | all' "$TMP/out" >/dev/null; then
        ok "mask with --broadcast: one query head per entry"
    else
        notok "mask with --broadcast"
    fi
    run "$PE" -f json -t bands ent-cone.h5
    if jq -e '.rows | length == 4' "$TMP/out" >/dev/null; then ok "json bands: jq reads 4 rows"; else notok "json bands"; fi
else
    echo "skip - mask checks: jq is not installed"
fi

# ---------------------------------------------------- acceptance: the real dump
# Every layer, head and tensor gets a score for r = 1, 4 and 8; every number
# equals the reference; S_1 <= S_4 <= S_8 = S_D.
for r in 1 4 8; do
    run "$PE" -f tsv --digits 17 --stage all -r "$r" "$REAL"
    cp "$TMP/out" "$TMP/real-r$r.tsv"
    n=$(data "$TMP/out" | awk -F'\t' 'NR > 1 && $8 != "nan" && $8 + 0 >= 0' | wc -l)
    if [ "$status" -eq 0 ] && [ "$n" -eq 120 ]; then
        ok "real dump, r $r: 5 layers x (8 q + 4 k heads) x 2 stages = 120 finite scores"
    else
        notok "real dump, r $r: 120 scores" "status $status, $n rows"
    fi
    refcheck "real dump, r $r: every number equals the reference" "$TMP/real-r$r.tsv" "$REAL"
done
bad=$(paste "$TMP/real-r1.tsv" "$TMP/real-r4.tsv" "$TMP/real-r8.tsv" | awk -F'\t' '
    /^#/ || $1 !~ /^[0-9]+$/ { next } { n++ }
    !($8 <= $22 + 1e-15 && $22 <= $36 + 1e-15 && $36 == $40 && $12 == $26 && $26 == $40) { bad++ }
    END { print (n == 120 ? bad + 0 : "rows " n) }')
if [ "$bad" = 0 ]; then ok "real dump: S_1 <= S_4 <= S_8 = full, and full does not depend on r"; else notok "real dump: S_r grows with r" "$bad"; fi

# post differs from pre as the rotation implies.  In general it changes every
# head's spectrum:
bad=$(data "$TMP/real-r8.tsv" | awk -F'\t' 'NR > 1 { k = $1 SUBSEP $2 SUBSEP $4; v[k, $5] = $8 }
    END { for (x in v) { split(x, a, SUBSEP); if (a[4] != "pre") continue; k = a[1] SUBSEP a[2] SUBSEP a[3]; n++
          d = v[k, "pre"] - v[k, "post"]; if (d < 0) d = -d; if (d < 1e-6) bad++ } print (n == 60 ? bad + 0 : "rows " n) }')
if [ "$bad" = 0 ]; then ok "real dump: post differs from pre in all 60 (layer, tensor, head)"; else notok "real dump: post differs from pre" "$bad"; fi
# ... but not in a layer whose rope attribute is 0 (ent-real-rope0.h5 is the
# real dump with layer 3 marked so): there post == pre to the last bit, and the
# other layers are untouched.
if [ -f ent-real-rope0.h5 ] && [ -f ent-real-shift.h5 ]; then
    run "$PE" -f tsv --digits 17 --stage all -r 4 ent-real-rope0.h5
    data "$TMP/out" >"$TMP/rope0.tsv"
    bad=$(awk -F'\t' 'NR > 1 && $1 == 3 { k = $2 SUBSEP $4; r = $8 " " $9 " " $10 " " $11 " " $12 " " $13
        if ($5 == "pre") pre[k] = r; else post[k] = r }
        END { for (k in pre) { n++; if (pre[k] != post[k]) bad++ } print (n == 12 ? bad + 0 : "rows " n) }' "$TMP/rope0.tsv")
    if [ "$bad" = 0 ]; then ok "layer with rope 0: post == pre exactly for its 12 heads"; else notok "layer with rope 0: post == pre" "$bad"; fi
    if [ "$(awk -F'\t' '$1 != 3' "$TMP/rope0.tsv")" = "$(data "$TMP/real-r4.tsv" | awk -F'\t' '$1 != 3')" ]; then
        ok "layer with rope 0: the other layers are as in the real dump"
    else
        notok "layer with rope 0: the other layers are as in the real dump"
    fi
    run "$PE" -t bands -f tsv --digits 17 --stage all -l 3 ent-real-rope0.h5
    bad=$(data "$TMP/out" | awk -F'\t' 'NR > 1 { k = $2 SUBSEP $4 SUBSEP $6; r = $9 " " $10 " " $11; if ($7 != 0 || $8 != "nope") bad++
        if ($5 == "pre") pre[k] = r; else post[k] = r } END { for (k in pre) { n++; if (pre[k] != post[k]) bad++ } print (n == 48 ? bad + 0 : "rows " n) }')
    if [ "$bad" = 0 ]; then ok "layer with rope 0: every band has theta 0, class nope, post == pre"; else notok "rope 0 bands" "$bad"; fi
    # RoPE is relative: moving every position by 1000 turns each pair by a
    # fixed angle, which leaves every spectrum, and every 2 x 2 band spectrum,
    # as it was (to rounding); pre does not move at all.
    run "$PE" -f tsv --digits 17 --stage all -r 4 ent-real-shift.h5
    data "$TMP/out" >"$TMP/shift.tsv"
    data "$TMP/real-r4.tsv" >"$TMP/r4d.tsv"
    if cmpnum "$TMP/shift.tsv" "$TMP/r4d.tsv" 8 1e-9; then
        ok "positions moved by 1000: every post score as before (1e-9)"
    else
        notok "positions moved by 1000: post scores"
    fi
    if [ "$(awk -F'\t' '$5 == "pre"' "$TMP/shift.tsv")" = "$(awk -F'\t' '$5 == "pre"' "$TMP/r4d.tsv")" ]; then
        ok "positions moved by 1000: pre exactly as before"
    else
        notok "positions moved by 1000: pre exactly as before"
    fi
    run "$PE" -t bands -f tsv --digits 17 ent-real-shift.h5
    data "$TMP/out" >"$TMP/shift-b.tsv"
    run "$PE" -t bands -f tsv --digits 17 "$REAL"
    data "$TMP/out" >"$TMP/real-b.tsv"
    if cmpnum "$TMP/shift-b.tsv" "$TMP/real-b.tsv" 9 1e-9; then ok "positions moved by 1000: every band entropy as before (1e-9)"; else notok "positions moved: bands"; fi
else
    echo "skip - rope 0 and shifted copies of the real dump: mkfix_entropy did not find testdata/stories260K.h5"
fi
# Dynamic NTK at a length <= L leaves the base as it is: ntk == post.
run "$PE" -f tsv --digits 17 --stage all --ntk-len 512 -r 4 "$REAL"
bad=$(data "$TMP/out" | awk -F'\t' 'NR > 1 && $5 != "pre" { k = $1 SUBSEP $2 SUBSEP $4; for (i = 8; i <= 13; i++) v[k, $5, i] = $i; ks[k] }
    END { for (k in ks) { n++; for (i = 8; i <= 13; i++) { d = v[k, "ntk", i] - v[k, "post", i]; if (d < 0) d = -d; if (d > 1e-12) bad++ } }
          print (n == 60 ? bad + 0 : "rows " n) }')
if [ "$bad" = 0 ]; then ok "real dump: --ntk-len 512 (= L) scores as post (1e-12)"; else notok "ntk at L equals post" "$bad"; fi
run "$PE" -f tsv --digits 17 --stage ntk --ntk-len 8192 -r 4 "$REAL"
refcheck "real dump, dynamic NTK at 8192: the reference" "$TMP/out" "$REAL"

# -------------------------------------------------------------------- figures
if ! command -v gnuplot >/dev/null 2>&1; then
    echo "skip - figure scripts: gnuplot is not installed"
    exit 0
fi
GPVER=$(gnuplot --version)
golden_fig() { # NAME FILE, as tests/figures.sh: the first line names the gnuplot version.
    if [ "${PE_REGEN:-0}" = 1 ]; then
        { echo "# $GPVER"; cat "$2"; } >"$GOLDEN/$1"
        ok "golden $1 (regenerated)"
    elif [ ! -f "$GOLDEN/$1" ]; then
        notok "golden $1" "tests/golden/$1 is missing (make regen)"
    elif [ "$(head -n 1 "$GOLDEN/$1")" != "# $GPVER" ]; then
        echo "skip - golden $1: drawn by $(head -n 1 "$GOLDEN/$1" | cut -c 3-), this is $GPVER"
    elif tail -n +2 "$GOLDEN/$1" | cmp -s - "$2"; then
        ok "golden $1"
    else
        notok "golden $1" "differs ($(tail -n +2 "$GOLDEN/$1" | diff - "$2" | head -n 3 | tr '\n' ' '))"
    fi
}
"$PE" -r 4 ent-gqa.h5 >"$TMP/heads.gp" && "$PE" -t select -r 4 -n 5 ent-gqa.h5 >"$TMP/sel.gp" &&
    "$PE" -t select -r 2 ent-gqa.h5 >"$TMP/sel2.gp" &&
    "$PE" -t bands --stage all --ntk-len 64 ent-gqa.h5 >"$TMP/bands.gp" && "$PE" -t bands -f tsv minimal.h5 >"$TMP/nolen.tsv"
MAP=$SCRIPTS/pe-fig-entropy-map.gp
BANDS=$SCRIPTS/pe-fig-bands.gp
expect 0 "" "entropy map (txt)" gnuplot -c "$MAP" "$TMP/heads.gp" "$TMP/map.txt" "$TMP/sel.gp"
golden_fig peentropy-fig-map.txt "$TMP/map.txt"
if grep -q 'Truncated matrix entropy of the k heads' "$TMP/map.txt" && grep -q 'key head' "$TMP/map.txt" && grep -q 'selected' "$TMP/map.txt"; then
    ok "entropy map: title, axis and the selected heads' legend"
else
    notok "entropy map: title, axis, legend"
fi
expect 0 "" "band figure (txt)" gnuplot -c "$BANDS" "$TMP/bands.gp" "$TMP/bands.txt" 3 5
golden_fig peentropy-fig-bands.txt "$TMP/bands.txt"
for ext in png svg pdf; do
    expect 0 "" "entropy map as .$ext" gnuplot -c "$MAP" "$TMP/heads.gp" "$TMP/map.$ext" "$TMP/sel.gp" tensor=q value=rho
    expect 0 "" "band figure as .$ext" gnuplot -c "$BANDS" "$TMP/bands.gp" "$TMP/bands.$ext" 0 1 tensor=k stage=post
done
if [ "$(head -c 4 "$TMP/map.png" | od -An -c | tr -d ' \n')" = '211PNG' ] && head -c 5 "$TMP/bands.pdf" | grep -q '%PDF-' &&
    grep -q '<svg' "$TMP/map.svg"; then
    ok "the figures are PNG, PDF and SVG"
else
    notok "the figures are PNG, PDF and SVG"
fi
expect 2 "usage: gnuplot -c pe-fig-entropy-map.gp" "entropy map without arguments" gnuplot -c "$MAP"
expect 2 "usage: gnuplot -c pe-fig-bands.gp" "band figure without arguments" gnuplot -c "$BANDS"
expect 2 "pe-fig-entropy-map: OUT '$TMP/x.jpg': unknown extension" "entropy map .jpg" gnuplot -c "$MAP" "$TMP/heads.gp" "$TMP/x.jpg"
expect 2 "pe-fig-entropy-map: value=x: not one of" "entropy map value=x" gnuplot -c "$MAP" "$TMP/heads.gp" "$TMP/x.txt" value=x
expect 2 "pe-fig-bands: HEAD 'h' is not a head index" "band figure HEAD h" gnuplot -c "$BANDS" "$TMP/bands.gp" "$TMP/x.txt" 0 h
expect 1 "pe-fig-entropy-map: cannot read table 'no-such.gp'" "entropy map, missing table" gnuplot -c "$MAP" no-such.gp "$TMP/x.txt"
expect 1 "pe-fig-entropy-map: $TMP/bands.gp: not a peentropy heads table" "entropy map of a bands table" gnuplot -c "$MAP" "$TMP/bands.gp" "$TMP/x.txt"
expect 1 "pe-fig-entropy-map: $TMP/heads.gp: not a peentropy select table" "entropy map, SELECT not a select table" \
    gnuplot -c "$MAP" "$TMP/heads.gp" "$TMP/x.txt" "$TMP/heads.gp"
expect 1 "pe-fig-entropy-map: stage ntk is not in" "entropy map, stage not in the table" gnuplot -c "$MAP" "$TMP/heads.gp" "$TMP/x.txt" stage=ntk
expect 1 "pe-fig-bands: $TMP/heads.gp: not a peentropy bands table" "band figure of a heads table" gnuplot -c "$BANDS" "$TMP/heads.gp" "$TMP/x.txt"
expect 1 "pe-fig-bands: layer 1 is not in" "band figure, missing layer" gnuplot -c "$BANDS" "$TMP/bands.gp" "$TMP/x.txt" 1
expect 1 "pe-fig-bands: k head 2 of layer 0 is not in" "band figure, missing key head" gnuplot -c "$BANDS" "$TMP/bands.gp" "$TMP/x.txt" 0 2 tensor=k
expect 1 "pe-fig-bands: OUT 'no/such/x.txt': its folder does not exist" "band figure into a missing folder" gnuplot -c "$BANDS" "$TMP/bands.gp" no/such/x.txt
expect 0 "pe-fig-bands: warning: $TMP/nolen.tsv gives no training length" "band figure without L: a warning" \
    gnuplot -c "$BANDS" "$TMP/nolen.tsv" "$TMP/nolen.txt"
expect 0 "pe-fig-entropy-map: warning: $TMP/sel2.gp was made with stage post, prep paper, rank 2" "a select table of other settings: a warning" \
    gnuplot -c "$MAP" "$TMP/heads.gp" "$TMP/x.txt" "$TMP/sel2.gp"

# ------------------------------------------------- the directions of the scores
# S_r is not monotone in spikiness (-x ln x rises below 1/e): every table,
# selection and figure says which way each score runs.
run "$PE" -f tsv -r 4 "$REAL"
cp "$TMP/out" "$TMP/dir-heads.tsv"
if grep -q '^# directions: score (S_r) and score_norm: not monotone in spikiness.*energy_r: high = spiky' "$TMP/dir-heads.tsv"; then
    ok "heads table: a directions line says S_r is not monotone and energy_r is high for a spiky spectrum"
else
    notok "heads table: the directions line" "$(grep '^# directions' "$TMP/dir-heads.tsv")"
fi
# energy_r is the sum of the top r eigenvalues: lambda1 <= energy_4 <= 1, and
# energy_1 = lambda1 (a separate run at r 1).
bad=$(data "$TMP/dir-heads.tsv" | awk -F'\t' 'NR > 1 { n++; if (!($11 <= $14 + 1e-15 && $14 <= 1 + 1e-12)) bad++ } END { print n == 60 ? bad + 0 : "rows " n }')
is "heads table: lambda1 <= energy_r <= 1 for the 60 rows of the real dump" 0 "$bad"
run "$PE" -f tsv --digits 17 -r 1 "$REAL"
bad=$(data "$TMP/out" | awk -F'\t' 'NR > 1 { n++; if ($11 != $14) bad++ } END { print n == 60 ? bad + 0 : "rows " n }')
is "heads table, r 1: energy_r equals lambda1 exactly" 0 "$bad"
l1max=$(data "$TMP/dir-heads.tsv" | awk -F'\t' 'NR > 1 && $11 > m { m = $11 } END { print (m < exp(-1)) ? "below" : "above" }')
is "real dump: every head's lambda_1 is below 1/e (so a lower S_r is a flatter spectrum here)" below "$l1max"
run "$PE" -t select -r 4 "$REAL"
if grep -q '^# direction: S_r, lowest first: not monotone in spikiness.*here every lambda_i < 1/e, so a lower S_r is a flatter spectrum: asc picks the flattest heads' "$TMP/out"; then
    ok "-t select, S_r asc: the header says that here it picks the flattest heads"
else
    notok "-t select, S_r asc: the direction line" "$(grep '^# direction' "$TMP/out")"
fi
run "$PE" -t select -r 4 -n 5 -f tsv --score energy --order desc "$REAL"
cp "$TMP/out" "$TMP/sel-energy.tsv"
if grep -q '^# direction: energy_r, highest first: high = spiky' "$TMP/sel-energy.tsv"; then
    ok "-t select --score energy --order desc: the header says high = spiky, highest first"
else
    notok "-t select --score energy: the direction line" "$(grep '^# direction' "$TMP/sel-energy.tsv")"
fi
# The selection is the 5 largest energy_r of the heads table (q rows and k rows).
want=$(data "$TMP/dir-heads.tsv" | awk -F'\t' 'NR > 1 { print $14 "\t" $1 "\t" $2 "\t" $4 }' | sort -t "$(printf '\t')" -k1,1gr -k2,2n -k3,3n -k4,4 | head -n 5 | cut -f 2-4 | tr '\t\n' ' |')
got=$(data "$TMP/sel-energy.tsv" | awk -F'\t' 'NR > 1 { print $2 "\t" $3 "\t" $5 }' | tr '\t\n' ' |')
is "-t select --score energy --order desc: the 5 heads of largest energy_r, in order" "$want" "$got"
expect 2 "peentropy: --score rho with r 1: rho_1 is 1 for every head, nothing to rank; give -r 2 or more" \
    "--score rho with -r 1 is a usage error" "$PE" -t select --score rho -r 1 "$REAL"
run "$PE" -t select -r 4 -n 3 --score energy --order desc --mask - "$REAL"
if [ "$status" -eq 0 ] && jq -e '.selection.score == "energy" and .selection.order == "desc" and (.heads | length) == 3' "$TMP/out" >/dev/null 2>&1; then
    ok "--mask records --score energy"
else
    notok "--mask records --score energy" "status $status"
fi
run "$PE" -t select -r 4 "$REAL"
cp "$TMP/out" "$TMP/dir-sel.gp"
"$PE" -r 4 "$REAL" >"$TMP/dir-heads.gp"
for v in score energy_r lambda1 full rho; do
    expect 0 "" "entropy map value=$v (txt)" gnuplot -c "$MAP" "$TMP/dir-heads.gp" "$TMP/dir-$v.txt" "$TMP/dir-sel.gp" tensor=k value=$v
done
contains() { f=$1; shift; for w in "$@"; do grep -qF -- "$w" "$f" || return 1; done; }
if contains "$TMP/dir-score.txt" "score (S_r): not monotone in spikiness" && contains "$TMP/dir-energy_r.txt" "energy_r (energy_r): high = spiky spectrum" &&
    contains "$TMP/dir-lambda1.txt" "lambda1 (lambda_1): high = spiky spectrum" && contains "$TMP/dir-full.txt" "full (S_D): low = spiky spectrum" &&
    contains "$TMP/dir-rho.txt" "rho (rho_r): low = top r uneven"; then
    ok "entropy map: the colour key says which way each score runs (S_r: not monotone)"
else
    notok "entropy map: the colour key says which way each score runs" "$(grep -h 'spiky\|monotone\|uneven' "$TMP"/dir-*.txt | head -n 3 | tr '\n' ' ')"
fi
exit 0
