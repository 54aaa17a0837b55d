# pe-fig-bands.gp: DoPE's band view of one head: the entropy of each RoPE
# pair's 2 x 2 Gram matrix against the pair's frequency theta (log scale),
# one curve per stage of the table (pre, post, ntk), with 2 pi / L marked:
# the pairs at or left of it (theta <= 2 pi / L, less than one turn within
# the training length) are the ones DoPE-by-parts masks.  An entropy near 0
# is a pair whose vectors stay inside a cone (rank one); ln 2 is isotropic.
#
#   gnuplot -c scripts/pe-fig-bands.gp TABLE OUT [LAYER [HEAD]] [tensor=q|k] [stage=S] [L=N]
#
# TABLE  a bands table of peentropy (-t bands; format gnuplot or tsv).
#        Columns are used by NUMBER:
#          1 layer  2 head  3 kv_head  4 tensor  5 stage  6 band  7 theta
#          8 class  9 mu1  10 mu2  11 entropy
#        Comment lines read: "# train_len: N" (0 = unknown), "# input: ...",
#        "# prep: ...".
# OUT    the figure; its extension picks the terminal: .png (pngcairo),
#        .svg (svg), .pdf (pdfcairo), .txt (dumb: a text rendering).
# LAYER  layer index (default: the first layer of the table).
# HEAD   the head column of the table (a query head, or a key head for
#        unbroadcast keys; default: the first head of the layer).
# tensor=q|k   which tensor (default: the first of the table).
# stage=S      draw only stage S (default: every stage of the table).
# L=N    training length for 2 pi / L (default: the table's train_len;
#        without either, nothing is marked and a warning goes to stderr).
#
# Pairs with theta 0 (class nope) cannot sit on a log axis: they are left
# out, and the title says how many.  Exit status: 0 done; 1 unreadable or
# unsuitable table, LAYER/HEAD/tensor/stage not in it, or OUT's folder
# missing; 2 usage error (arguments, extension).  Errors are one line on
# stderr.  Needs sh and awk.

ME = "pe-fig-bands"
USAGE = "usage: gnuplot -c pe-fig-bands.gp TABLE OUT.{png,svg,pdf,txt} [LAYER [HEAD]] [tensor=q|k] [stage=S] [L=N]"

# ---------------------------------------------------------------- arguments
if (ARGC < 2) { print USAGE; exit status 2 }
TABLE = ARG1
OUT = ARG2

# shq(s): s quoted for sh (single quotes; a ' inside becomes '\'').
esc(s) = strstrt(s, "'") == 0 ? s : s[1:strstrt(s, "'") - 1] . "'\\''" . esc(s[strstrt(s, "'") + 1:])
shq(s) = "'" . esc(s) . "'"
alldig(s) = strlen(s) == 0 ? 1 : (strstrt("0123456789", s[1:1]) > 0 ? alldig(s[2:]) : 0)
isuint(s) = strlen(s) > 0 && alldig(s)

LAYER = ""
HEAD = ""
LARG = ""
TENSOR = ""
STAGE = ""
npos = 0
do for [i = 3:ARGC] {
    a = value(sprintf("ARG%d", i))
    if (strstrt(a, "L=") == 1) {
        LARG = a[3:]
        if (!isuint(LARG) || LARG + 0 < 1) { print ME . ": L=" . LARG . ": not a positive integer"; exit status 2 }
    } else {
        if (strstrt(a, "tensor=") == 1) {
            TENSOR = a[8:]
            if (TENSOR ne "q" && TENSOR ne "k") { print ME . ": tensor=" . TENSOR . ": not q or k"; exit status 2 }
        } else {
            if (strstrt(a, "stage=") == 1) {
                STAGE = a[7:]
                if (STAGE ne "pre" && STAGE ne "post" && STAGE ne "ntk") { print ME . ": stage=" . STAGE . ": not pre, post or ntk"; exit status 2 }
            } else {
                npos = npos + 1
                if (npos == 1) {
                    LAYER = a
                    if (!isuint(LAYER)) { print ME . ": LAYER '" . a . "' is not a layer index"; exit status 2 }
                } else {
                    if (npos == 2) {
                        HEAD = a
                        if (!isuint(HEAD)) { print ME . ": HEAD '" . a . "' is not a head index"; exit status 2 }
                    } else {
                        print USAGE; exit status 2
                    }
                }
            }
        }
    }
}

dot = 0
do for [i = 1:strlen(OUT)] { if (OUT[i:i] eq ".") { dot = i } }
EXT = dot > 0 ? OUT[dot + 1:] : ""
if (EXT ne "png" && EXT ne "svg" && EXT ne "pdf" && EXT ne "txt") {
    print ME . ": OUT '" . OUT . "': unknown extension (want .png, .svg, .pdf or .txt)"; exit status 2
}
Q = shq(TABLE)
FILES = system("r=; test -f " . Q . " && test -r " . Q . " && r=t; d=$(dirname " . shq(OUT) . ") && " . \
    "test -d \"$d\" && test -w \"$d\" && r=${r}o; echo \"$r\"")
if (strstrt(FILES, "t") == 0) { print ME . ": cannot read table '" . TABLE . "'"; exit status 1 }
if (strstrt(FILES, "o") == 0) { print ME . ": OUT '" . OUT . "': its folder does not exist or is not writable"; exit status 1 }

# ------------------------------------------------------------------- table
# awk over the table (fields split at tabs): its output is gnuplot code that
# is run with eval.  A program must hold no single quote (q is one).
AWKQ = 'function gs(n, s) { gsub(q, q q, s); printf "%s = %s%s%s; ", n, q, s, q } '
AWK(vars, prog) = system("awk -F '\t' -v q=\"'\" " . vars . " '" . AWKQ . prog . "' " . Q)
ROWS = '/^#/ || NF < 11 || $1 !~ /^[0-9]+$/ { next } '

# Pass 1: header, settings, layers, tensors, stages.
eval(AWK("", \
    '/^# train_len: / { if (tl == "") tl = substr($0, 14); next } ' . \
    '/^# prep: / { if (pr == "") pr = substr($0, 9); next } ' . \
    '/^# input: / { ni++; if (ni == 1) { inp = substr($0, 10); sub(/ \(T [0-9].*$/, "", inp) } next } ' . \
    '/^#/ { next } hdr == "" && NF { hdr = $0; next } ' . ROWS . \
    '!sl[$1]++ { layers = layers (nl++ ? " " : "") $1 } ' . \
    '!st[$4]++ { tensors = tensors (nt++ ? " " : "") $4 } ' . \
    '!ss[$5]++ { stages = stages (ns++ ? " " : "") $5 } ' . \
    'END { if (ni > 1) inp = inp " + " (ni - 1) " more"; if (!ni) inp = "?"; ' . \
    'gs("HDR", hdr); gs("TLRAW", tl); gs("PREP", pr); gs("INPUT", inp); gs("LAYERS", layers); ' . \
    'gs("TENSORS", tensors); gs("STAGES", stages) }'))
WANT = "layer\thead\tkv_head\ttensor\tstage\tband\ttheta\tclass\tmu1\tmu2\tentropy"
if (strstrt(HDR, WANT) != 1) {
    print ME . ": " . TABLE . ": not a peentropy bands table (its header starts '" . AWK("", '!/^#/ && NF { gsub(/\t/, " "); print substr($0, 1, 40); exit }') . "')"; exit status 1
}
if (LAYERS eq "") { print ME . ": " . TABLE . ": the table has no rows"; exit status 1 }
has(list, x) = strstrt(" " . list . " ", " " . x . " ") > 0
if (TENSOR eq "") { TENSOR = word(TENSORS, 1) }
if (!has(TENSORS, TENSOR)) { print ME . ": tensor " . TENSOR . " is not in " . TABLE . " (tensors: " . TENSORS . ")"; exit status 1 }
if (STAGE ne "" && !has(STAGES, STAGE)) { print ME . ": stage " . STAGE . " is not in " . TABLE . " (stages: " . STAGES . ")"; exit status 1 }
DRAW = STAGE ne "" ? STAGE : STAGES
if (LAYER eq "") { LAYER = word(LAYERS, 1) }
if (!has(LAYERS, LAYER)) { print ME . ": layer " . LAYER . " is not in " . TABLE . " (layers: " . LAYERS . ")"; exit status 1 }

# Pass 2: the heads of the layer and tensor; then the head's facts.
eval(AWK("-v layer=" . LAYER . " -v tensor=" . TENSOR, ROWS . '$1 != layer || $4 != tensor { next } ' . \
    '!sh[$2]++ { heads = heads (nh++ ? " " : "") $2 } END { gs("HEADS", heads) }'))
if (HEAD eq "") { HEAD = word(HEADS, 1) }
if (!has(HEADS, HEAD)) {
    print ME . ": " . TENSOR . " head " . HEAD . " of layer " . LAYER . " is not in " . TABLE . " (heads: " . HEADS . ")"; exit status 1
}
VSEL = "-v layer=" . LAYER . " -v head=" . HEAD . " -v tensor=" . TENSOR
SEL = ROWS . '$1 != layer || $2 != head || $4 != tensor { next } '
# TMIN, TMAX: the range of theta > 0; NZERO: the pairs with theta 0 (the
# most of any stage); KV: the key head.
eval(AWK(VSEL, SEL . \
    '$7 + 0 > 0 { t = $7 + 0; if (tmin == "" || t < tmin) tmin = t; if (tmax == "" || t > tmax) tmax = t } ' . \
    '$7 + 0 == 0 { nz[$5]++ } kv == "" { kv = $3 } ' . \
    'END { m = 0; for (s in nz) if (nz[s] > m) m = nz[s]; ' . \
    'printf "TMIN = %.17g; TMAX = %.17g; NZERO = %d; KV = %d; ", (tmin == "" ? 0 : tmin), (tmax == "" ? 0 : tmax), m, kv }'))
if (TMAX == 0) { print ME . ": " . TABLE . ": " . TENSOR . " head " . HEAD . " of layer " . LAYER . " has no pair with theta > 0 to draw"; exit status 1 }

TL = LARG ne "" ? LARG : TLRAW
if (!isuint(TL) || TL eq "0") { TL = "" }
if (TL eq "") { print ME . ": warning: " . TABLE . " gives no training length (no '# train_len:' line, or 0) and no L=N was given; 2 pi / L is not marked" }
THR = TL ne "" ? 2 * pi / (TL + 0) : 0

# One stage's pairs with theta > 0: theta, entropy, band, class.
EXTRACT = SEL . '$5 != stage || $7 + 0 <= 0 { next } { print $7 "\t" $11 "\t" $6 "\t" $8 }'
DATA(s) = "< awk -F '\t' " . VSEL . " -v stage=" . s . " '" . EXTRACT . "' " . Q

# ------------------------------------------------------------------ figure
scol(s) = s eq "pre" ? "#777777" : s eq "post" ? "#0072B2" : "#E69F00"
spt(s) = s eq "pre" ? 6 : s eq "post" ? 7 : 9
sdesc(s) = s eq "pre" ? "pre: unrotated" : s eq "post" ? "post: rotated (what attention sees)" : "ntk: rotated with dynamic-NTK frequencies"

if (EXT eq "png") { set terminal pngcairo size 1100,650 noenhanced font "sans,11" }
if (EXT eq "svg") { set terminal svg size 1100,650 noenhanced dynamic font "sans,11" }
if (EXT eq "pdf") { set terminal pdfcairo size 8in,4.7in noenhanced font "sans,9" }
if (EXT eq "txt") { set terminal dumb size 110,34 noenhanced }

WHO = sprintf("layer %s, %s head %s", LAYER, TENSOR, HEAD) . (TENSOR eq "k" ? "" : sprintf(" (key head %d)", KV))
set title sprintf("Band entropy of each RoPE pair: %s, %s, prep %s%s", INPUT, WHO, PREP, \
    NZERO > 0 ? sprintf(" (%d pair%s with theta 0 not shown)", NZERO, NZERO > 1 ? "s" : "") : "") noenhanced
set xlabel "theta_i (radians per position, log scale)"
set bmargin (EXT eq "txt" ? 7 : 8)
YLABEL = "entropy of the pair's 2x2 Gram (0 = cone, ln 2 = isotropic)"
set ylabel YLABEL
if (EXT eq "txt") { unset ylabel; set tmargin 5; set title offset 0, 2; set label 9 YLABEL at screen 0, graph 1 offset character 1, character 2 left }
set logscale x 10
set format x "%g"
XLO = TMIN
XHI = TMAX
if (THR > 0 && THR < XLO) { XLO = THR }
if (THR > 0 && THR > XHI) { XHI = THR }
set xrange [XLO / 2.5 : XHI * 2.5]
set yrange [0 : 0.78]
set key outside below center horizontal maxrows 2 width 2 noenhanced
set grid lc rgb "#dddddd"
set arrow 2 from graph 0, first log(2) to graph 1, first log(2) nohead lc rgb "#888888" dt 3 lw 1 back
set ytics 0, 0.1, 0.6
set ytics add ("ln 2" log(2))
P = ""
add(p, part) = p . (p ne "" ? ", " : "") . part
if (THR > 0) {
    set object 1 rect from graph 0, graph 0 to first THR, graph 1 fc rgb "#eeeeee" fs solid 1.0 noborder behind
    set arrow 1 from first THR, graph 0 to first THR, graph 1 nohead lc rgb "black" dt 2 lw 2 front
    set label 1 sprintf("2 pi / L, L = %s", TL) at first THR, graph (EXT eq "txt" ? 0.9 : 0.96) offset character 0.6, 0 left front
}
P = add(P, 'for [s in DRAW] DATA(s) using 1:2 with linespoints lw 1.5 pt spt(s) ps 1.3 lc rgb scol(s) title sdesc(s)')
if (THR > 0) {
    P = add(P, 'keyentry with lines lc rgb "black" dt 2 lw 2 title "2 pi / L (DoPE-by-parts masks the pairs at or left of it)"')
}
set output OUT
eval("plot " . P)
unset output
