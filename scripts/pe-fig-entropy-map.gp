# pe-fig-entropy-map.gp: DoPE's truncated matrix entropy of every head, as a
# map: heads (x) by layers (y), coloured by the score of one tensor and one
# stage, with the heads of a select table marked by their rank when one is
# given.  The colour key says which way each score runs: energy_r and
# lambda1 are high for a spiky spectrum (dark there), full and eff_rank low
# (dark there); S_r (score, score_norm) is not monotone in spikiness, since
# -x ln x rises below 1/e: the key says so instead of "low = spiky".
#
#   gnuplot -c scripts/pe-fig-entropy-map.gp TABLE OUT [SELECT] [tensor=q|k] [stage=S] [value=COLUMN]
#
# TABLE   a heads table of peentropy (-t heads, the default; format gnuplot
#         or tsv).  Columns are used by NUMBER:
#           1 layer  2 head  3 kv_head  4 tensor  5 stage  6 prep  7 r
#           8 score  9 score_norm  10 rho  11 lambda1  12 full  13 eff_rank
#           14 energy_r
#         Comment lines read: "# input: ...", "# broadcast: ...".
# OUT     the figure; its extension picks the terminal: .png (pngcairo),
#         .svg (svg), .pdf (pdfcairo), .txt (dumb: a text rendering, without
#         the colours; the ranks of the selected heads still show).
# SELECT  a select table of peentropy (-t select): its heads of the drawn
#         tensor are marked with their rank.  A warning goes to stderr when it
#         was made with another stage, prep, rank or broadcast setting.
# tensor=q|k    which tensor (default: k when the table has keys, else q).
# stage=S       which stage (default: the first of the table).
# value=COLUMN  score (default), score_norm, rho, lambda1, full, eff_rank or
#               energy_r.
#
# Layers are drawn in the order of the table, one row each (a table of
# layers 0 and 3 has two rows).  Exit status: 0 done; 1 unreadable or
# unsuitable table, tensor or stage not in it, or OUT's folder missing;
# 2 usage error (arguments, extension).  Errors are one line on stderr.
# Needs sh and awk.

ME = "pe-fig-entropy-map"
USAGE = "usage: gnuplot -c pe-fig-entropy-map.gp TABLE OUT.{png,svg,pdf,txt} [SELECT] [tensor=q|k] [stage=S] [value=COLUMN]"

# ---------------------------------------------------------------- arguments
if (ARGC < 2) { print USAGE; exit status 2 }
TABLE = ARG1
OUT = ARG2

# shq(s): s quoted for sh (single quotes; a ' inside becomes '\'').
esc(s) = strstrt(s, "'") == 0 ? s : s[1:strstrt(s, "'") - 1] . "'\\''" . esc(s[strstrt(s, "'") + 1:])
shq(s) = "'" . esc(s) . "'"
has(list, x) = strstrt(" " . list . " ", " " . x . " ") > 0

SELECT = ""
TENSOR = ""
STAGE = ""
VALUE = "score"
VALUES = "score score_norm rho lambda1 full eff_rank energy_r"
npos = 0
do for [i = 3:ARGC] {
    a = value(sprintf("ARG%d", i))
    if (strstrt(a, "tensor=") == 1) {
        TENSOR = a[8:]
        if (TENSOR ne "q" && TENSOR ne "k") { print ME . ": tensor=" . TENSOR . ": not q or k"; exit status 2 }
    } else {
        if (strstrt(a, "stage=") == 1) {
            STAGE = a[7:]
            if (STAGE ne "pre" && STAGE ne "post" && STAGE ne "ntk") { print ME . ": stage=" . STAGE . ": not pre, post or ntk"; exit status 2 }
        } else {
            if (strstrt(a, "value=") == 1) {
                VALUE = a[7:]
                if (!has(VALUES, VALUE)) { print ME . ": value=" . VALUE . ": not one of " . VALUES; exit status 2 }
            } else {
                npos = npos + 1
                if (npos == 1) { SELECT = a } else { print USAGE; exit status 2 }
            }
        }
    }
}
VCOL = VALUE eq "score" ? 8 : VALUE eq "score_norm" ? 9 : VALUE eq "rho" ? 10 : VALUE eq "lambda1" ? 11 : \
       VALUE eq "full" ? 12 : VALUE eq "eff_rank" ? 13 : 14

dot = 0
do for [i = 1:strlen(OUT)] { if (OUT[i:i] eq ".") { dot = i } }
EXT = dot > 0 ? OUT[dot + 1:] : ""
if (EXT ne "png" && EXT ne "svg" && EXT ne "pdf" && EXT ne "txt") {
    print ME . ": OUT '" . OUT . "': unknown extension (want .png, .svg, .pdf or .txt)"; exit status 2
}
Q = shq(TABLE)
QS = shq(SELECT)
FILES = system("r=; test -f " . Q . " && test -r " . Q . " && r=t; d=$(dirname " . shq(OUT) . ") && " . \
    "test -d \"$d\" && test -w \"$d\" && r=${r}o; " . (SELECT ne "" ? "test -f " . QS . " && test -r " . QS . " && r=${r}s; " : "") . \
    "echo \"$r\"")
if (strstrt(FILES, "t") == 0) { print ME . ": cannot read table '" . TABLE . "'"; exit status 1 }
if (strstrt(FILES, "o") == 0) { print ME . ": OUT '" . OUT . "': its folder does not exist or is not writable"; exit status 1 }
if (SELECT ne "" && strstrt(FILES, "s") == 0) { print ME . ": cannot read select table '" . SELECT . "'"; exit status 1 }

# ------------------------------------------------------------------- tables
# awk over a table (fields split at tabs): its output is gnuplot code that
# is run with eval.  A program must hold no single quote (q is one).
AWKQ = 'function gs(n, s) { gsub(q, q q, s); printf "%s = %s%s%s; ", n, q, s, q } '
AWKF(file, vars, prog) = system("awk -F '\t' -v q=\"'\" " . vars . " '" . AWKQ . prog . "' " . file)
ROWS = '/^#/ || NF < 13 || $1 !~ /^[0-9]+$/ { next } '
# The settings of a table: its header and the comment lines that matter here.
SETTINGS(p) = \
    '/^# input: / { ni++; if (ni == 1) { inp = substr($0, 10); sub(/ \(T [0-9].*$/, "", inp) } next } ' . \
    '/^# [a-z_]*: / { k = substr($0, 3, index($0, ":") - 3); if (!(k in m)) m[k] = substr($0, length(k) + 5); next } ' . \
    '/^#/ { next } hdr == "" && NF { hdr = $0; next } ' . \
    'END { if (ni > 1) inp = inp " + " (ni - 1) " more"; if (!ni) inp = "?"; gs("' . p . 'HDR", hdr); gs("' . p . 'INPUT", inp); ' . \
    'gs("' . p . 'STAGE", m["stage"]); gs("' . p . 'PREP", m["prep"]); gs("' . p . 'RANK", m["rank"]); ' . \
    'gs("' . p . 'BROADCAST", m["broadcast"]); gs("' . p . 'ORDER", m["order"]); gs("' . p . 'SCORE", m["score"]); ' . \
    'gs("' . p . 'TOP", m["top"]) } '

eval(AWKF(Q, "", SETTINGS("T_") . ROWS . \
    '!sl[$1]++ { layers = layers (nl++ ? " " : "") $1 } ' . \
    '!st[$4]++ { tensors = tensors (nt++ ? " " : "") $4 } ' . \
    '!ss[$5]++ { stages = stages (ns++ ? " " : "") $5 } ' . \
    'END { gs("LAYERS", layers); gs("TENSORS", tensors); gs("STAGES", stages) }'))
WANT = "layer\thead\tkv_head\ttensor\tstage\tprep\tr\tscore\tscore_norm\trho\tlambda1\tfull\teff_rank"
if (strstrt(T_HDR, WANT) != 1) {
    print ME . ": " . TABLE . ": not a peentropy heads table (its header starts '" . AWKF(Q, "", '!/^#/ && NF { gsub(/\t/, " "); print substr($0, 1, 40); exit }') . "')"; exit status 1
}
if (LAYERS eq "") { print ME . ": " . TABLE . ": the table has no rows"; exit status 1 }
if (TENSOR eq "") { TENSOR = has(TENSORS, "k") ? "k" : word(TENSORS, 1) }
if (!has(TENSORS, TENSOR)) { print ME . ": tensor " . TENSOR . " is not in " . TABLE . " (tensors: " . TENSORS . ")"; exit status 1 }
if (STAGE eq "") { STAGE = word(STAGES, 1) }
if (!has(STAGES, STAGE)) { print ME . ": stage " . STAGE . " is not in " . TABLE . " (stages: " . STAGES . ")"; exit status 1 }
NL = words(LAYERS)
VSEL = "-v tensor=" . TENSOR . " -v stage=" . STAGE . " -v layers=" . shq(LAYERS) . " -v col=" . VCOL
# Row index of each layer: its place in the table's list.
YIDX = 'BEGIN { n = split(layers, a, " "); for (i = 1; i <= n; i++) y[a[i]] = i - 1 } '

# The cells: head, row, value; and their ranges.
CELLS = YIDX . ROWS . '$4 != tensor || $5 != stage { next } { print $2 "\t" y[$1] "\t" $col }'
eval(AWKF(Q, VSEL, YIDX . ROWS . '$4 != tensor || $5 != stage { next } ' . \
    '{ v = $col; n++; if ($2 + 0 > hmax) hmax = $2 + 0; if (v == "nan") next; v += 0; ' . \
    'if (lo == "" || v < lo) lo = v; if (hi == "" || v > hi) hi = v } ' . \
    'END { printf "NCELLS = %d; HMAX = %d; VLO = %.17g; VHI = %.17g; ", n, hmax, (lo == "" ? 0 : lo), (hi == "" ? 1 : hi) }'))
if (VHI <= VLO) { VHI = VLO + 1e-9 * (abs(VLO) > 0 ? abs(VLO) : 1) }
DATA = "< awk -F '\t' " . VSEL . " '" . CELLS . "' " . Q

# The select table: its rows of this tensor in these layers (head, row, rank).
NMARK = 0
NSEL = 0
if (SELECT ne "") {
    eval(AWKF(QS, "", SETTINGS("S_") . '!/^#/ && NF == 6 && $1 ~ /^[0-9]+$/ { n++ } END { printf "NSEL = %d; ", n }'))
    if (strstrt(S_HDR, "rank\tlayer\thead\tkv_head\ttensor\tscore") != 1) {
        print ME . ": " . SELECT . ": not a peentropy select table"; exit status 1
    }
    if (S_STAGE ne STAGE || S_PREP ne T_PREP || S_RANK ne T_RANK || (TENSOR eq "k" && S_BROADCAST ne T_BROADCAST)) {
        print ME . ": warning: " . SELECT . " was made with stage " . S_STAGE . ", prep " . S_PREP . ", rank " . S_RANK . \
            ", broadcast " . S_BROADCAST . "; the map shows stage " . STAGE . ", prep " . T_PREP . ", rank " . T_RANK . ", broadcast " . T_BROADCAST
    }
    MARKS = YIDX . '!/^#/ && NF == 6 && $1 ~ /^[0-9]+$/ && $5 == tensor && ($2 in y) { print $3 "\t" y[$2] "\t" $1 }'
    MDATA = "< awk -F '\t' " . VSEL . " '" . MARKS . "' " . QS
    NMARK = system("awk -F '\t' " . VSEL . " '" . MARKS . "' " . QS . " | wc -l") + 0
}

# ------------------------------------------------------------------ figure
if (EXT eq "png") { set terminal pngcairo size 1100,650 noenhanced font "sans,11" }
if (EXT eq "svg") { set terminal svg size 1100,650 noenhanced dynamic font "sans,11" }
if (EXT eq "pdf") { set terminal pdfcairo size 8in,4.7in noenhanced font "sans,9" }
if (EXT eq "txt") { set terminal dumb size 110,34 noenhanced }

VDESC = VALUE eq "score" ? "S_r" : VALUE eq "score_norm" ? "S_r / ln D" : VALUE eq "rho" ? "rho_r" : \
        VALUE eq "lambda1" ? "lambda_1" : VALUE eq "full" ? "S_D" : VALUE eq "eff_rank" ? "exp(S_D)" : "energy_r"
HEADKIND = TENSOR eq "q" ? "query head" : (T_BROADCAST eq "yes" ? "query head (its key head's keys)" : "key head")
set title sprintf("Truncated matrix entropy of the %s heads: %s, stage %s, prep %s, r %s", TENSOR, T_INPUT, STAGE, T_PREP, word(T_RANK, 1)) noenhanced
set xlabel HEADKIND
YLABEL = "layer"
set ylabel YLABEL
if (EXT eq "txt") { unset ylabel; set tmargin 5; set title offset 0, 2; set label 9 YLABEL at screen 0, graph 1 offset character 1, character 2 left }
HIGH_SPIKY = VALUE eq "lambda1" || VALUE eq "energy_r"
VDIR = HIGH_SPIKY ? ": high = spiky spectrum" : (VALUE eq "full" || VALUE eq "eff_rank") ? ": low = spiky spectrum" : \
       VALUE eq "rho" ? ": low = top r uneven" : ": not monotone in spikiness (higher = spikier while every lambda < 1/e)"
set cblabel sprintf("%s (%s)", VALUE, VDESC) . VDIR
# Dark for the spiky end where the score has one (low entropy; a large top
# eigenvalue or top-r energy).
if (HIGH_SPIKY) {
    set palette defined (0 "#fde725", 0.25 "#5ec962", 0.5 "#21918c", 0.75 "#3b528b", 1 "#440154")
} else {
    set palette defined (0 "#440154", 0.25 "#3b528b", 0.5 "#21918c", 0.75 "#5ec962", 1 "#fde725")
}
set cbrange [VLO:VHI]
set xrange [-0.5:HMAX + 0.5]
set yrange [-0.5:NL - 0.5]
if (HMAX < 40) { set xtics 1 }
set ytics ()
do for [i = 1:NL] { set ytics add (word(LAYERS, i) (i - 1)) }
set tics front
set key outside below center horizontal noenhanced
P = 'DATA using 1:2:($1 - 0.5):($1 + 0.5):($2 - 0.5):($2 + 0.5):3 with boxxyerror fs solid 1.0 noborder lc palette notitle'
if (NMARK > 0) {
    SELTITLE = sprintf("selected (select: top %s by %s, %s; the number is the rank%s)", S_TOP, S_SCORE, S_ORDER, \
        NMARK < NSEL ? sprintf("; %d of %d are %s heads", NMARK, NSEL, TENSOR) : "")
    set style textbox opaque fc rgb "white" border lc rgb "#d62728" linewidth 2 margins 3, 2
    P = P . ', MDATA using 1:2:3 with labels boxed textcolor rgb "#d62728" font ",13" notitle'
    P = P . ', keyentry with points pt 4 ps 2 lw 2 lc rgb "#d62728" title SELTITLE'
}
if (SELECT ne "" && NMARK == 0) {
    print ME . ": warning: " . SELECT . " selects no " . TENSOR . " head of these layers; nothing is marked"
}
set output OUT
eval("plot " . P)
unset output
