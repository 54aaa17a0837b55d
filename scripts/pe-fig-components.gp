# pe-fig-components.gp: per-pair mean logit against distance for one head
# (HoPE Figure 2 style): one curve per RoPE pair coloured by its class, the
# total in black (drawn first, under the pairs), the training length L marked.
#
#   gnuplot -c scripts/pe-fig-components.gp TABLE OUT [LAYER [HEAD]] [L=N]
#
# TABLE  a profile table of pedecomp (-t profile, the default; format gnuplot
#        or tsv).  Columns are used by NUMBER (gnuplot's columnheader only
#        reads the first block):
#          1 layer  2 head  3 kv_head  4 component (pair index, pass, total)
#          5 theta  6 class (hf, act, tlf, nope, unknown, pass, total)
#          7 delta_lo  8 delta_hi  9 n_pairs  10 mean_logit
#        x = distance (delta_lo + delta_hi) / 2, y = mean_logit.
#        Comment lines read: "# train_len: N" (0 = unknown), "# input: ...".
# OUT    the figure; its extension picks the terminal: .png (pngcairo),
#        .svg (svg), .pdf (pdfcairo), .txt (dumb: a text rendering).
# LAYER  layer index (default: the first layer of the table).
# HEAD   query head (default: the first head of the layer, 0 in a full
#        table), or "mean": the unweighted mean over the heads of the layer
#        that the table holds, computed here at each (component, distance).
# L=N    training length to mark (default: the table's train_len; without
#        either the figure is drawn unmarked, with a warning on stderr).
#
# Exit status: 0 done; 1 unreadable or unsuitable table, LAYER/HEAD not in
# it, or OUT's folder missing; 2 usage error (arguments, extension).  Errors
# are one line on stderr.  Needs sh and awk (the table is read with awk).

ME = "pe-fig-components"
USAGE = "usage: gnuplot -c pe-fig-components.gp TABLE OUT.{png,svg,pdf,txt} [LAYER [HEAD|mean]] [L=N]"

# ---------------------------------------------------------------- arguments
# (The same in pe-fig-components.gp and pe-fig-heatmap.gp.)
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
npos = 0
do for [i = 3:ARGC] {
    a = value(sprintf("ARG%d", i))
    if (strstrt(a, "L=") == 1) {
        LARG = a[3:]
        if (!isuint(LARG) || LARG + 0 < 1) { print ME . ": L=" . LARG . ": not a positive integer"; exit status 2 }
    } else {
        npos = npos + 1
        if (npos == 1) {
            LAYER = a
            if (!isuint(LAYER)) { print ME . ": LAYER '" . a . "' is not a layer index"; exit status 2 }
        } else {
            if (npos == 2) {
                HEAD = a
                if (HEAD ne "mean" && !isuint(HEAD)) { print ME . ": HEAD '" . a . "' is not a head index or 'mean'"; exit status 2 }
            } else {
                print USAGE; exit status 2
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
AWKQ = 'function gs(n, s) { gsub(q, q q, s); printf "%s = %s%s%s; ", n, q, s, q } ' . \
    'function range(s,   n, a, i, r, o) { n = split(s, a, " "); if (!n) return ""; o = a[1]; r = a[1]; ' . \
    'for (i = 2; i <= n + 1; i++) if (i > n || a[i] != a[i - 1] + 1) { if (a[i - 1] != r) o = o "-" a[i - 1]; ' . \
    'if (i <= n) { o = o "," a[i]; r = a[i] } } return o } '
AWK(vars, prog) = system("awk -F '\t' -v q=\"'\" " . vars . " '" . AWKQ . prog . "' " . Q)
ROWS = '/^#/ || NF < 10 || $1 !~ /^[0-9]+$/ { next } '

# Pass 1: header, train_len, input names, layers, the heads of each layer.
eval(AWK("", \
    '/^# train_len: / { if (tl == "") tl = substr($0, 14); next } ' . \
    '/^# input: / { ni++; if (ni == 1) { inp = substr($0, 10); sub(/ \(T [0-9].*$/, "", inp) } next } ' . \
    '/^#/ { next } hdr == "" && NF { hdr = $0; next } ' . ROWS . \
    '!sl[$1]++ { layers = layers (nl++ ? " " : "") $1 } ' . \
    '!sh[$1 SUBSEP $2]++ { heads[$1] = heads[$1] (heads[$1] == "" ? "" : " ") $2 } ' . \
    'END { if (ni > 1) inp = inp " + " (ni - 1) " more"; if (!ni) inp = "?"; ' . \
    'gs("HDR", hdr); gs("TLRAW", tl); gs("INPUT", inp); gs("LAYERS", layers); ' . \
    'for (l in heads) gs("HEADS_" l, heads[l]) }'))
WANT = "layer\thead\tkv_head\tcomponent\ttheta\tclass\tdelta_lo\tdelta_hi\tn_pairs\tmean_logit"
if (strstrt(HDR, WANT) != 1) {
    print ME . ": " . TABLE . ": not a pedecomp profile table (its header starts '" . AWK("", '!/^#/ && NF { gsub(/\t/, " "); print substr($0, 1, 40); exit }') . "')"; exit status 1
}
if (LAYERS eq "") { print ME . ": " . TABLE . ": the table has no rows"; exit status 1 }
if (LAYER eq "") { LAYER = word(LAYERS, 1) }
if (!exists("HEADS_" . LAYER)) { print ME . ": layer " . LAYER . " is not in " . TABLE . " (layers: " . LAYERS . ")"; exit status 1 }
HEADS = value("HEADS_" . LAYER)
if (HEAD eq "") { HEAD = word(HEADS, 1) }
has(list, x) = strstrt(" " . list . " ", " " . x . " ") > 0
if (HEAD ne "mean" && !has(HEADS, HEAD)) {
    print ME . ": head " . HEAD . " of layer " . LAYER . " is not in " . TABLE . " (heads: " . HEADS . ")"; exit status 1
}
VLH = "-v layer=" . LAYER . " -v head=" . HEAD
SEL = ROWS . '$1 != layer || (head != "mean" && $2 != head) { next } '

# Pass 2, the selected head(s): the largest distance, the components, per
# class the pairs it holds (CLASSES = "hf:0-1 act:2 tlf:3"), the heads.
eval(AWK(VLH, SEL . \
    '$8 + 0 > dmax { dmax = $8 + 0 } !sc[$4]++ { comps = comps (nc++ ? " " : "") $4 } ' . \
    '!sh[$2]++ { hl = hl (nh++ ? " " : "") $2 } ' . \
    '$4 ~ /^[0-9]+$/ && !sp[$4]++ { if (!($6 in pl)) ord[++nk] = $6; pl[$6] = pl[$6] " " $4 } ' . \
    'END { printf "DMAX = %d; ", dmax; gs("COMPS", comps); gs("HEADR", range(hl)); ' . \
    'for (i = 1; i <= nk; i++) cl = cl (i > 1 ? " " : "") ord[i] ":" range(substr(pl[ord[i]], 2)); gs("CLASSES", cl) }'))

TL = LARG ne "" ? LARG : TLRAW
if (!isuint(TL) || TL eq "0") { TL = "" }
if (TL eq "") { print ME . ": warning: " . TABLE . " gives no training length (no '# train_len:' line, or 0) and no L=N was given; L is not marked" }
NHEADS = words(HEADS)
WHO = HEAD eq "mean" ? sprintf("layer %s, mean of %d head%s (%s)", LAYER, NHEADS, NHEADS > 1 ? "s" : "", HEADR) \
                     : sprintf("layer %s head %s", LAYER, HEAD)

# The selected rows, one series per component (blank line between series),
# columns: 1 distance midpoint  2 mean logit (mean over heads for "mean")
# 3 component  4 delta_lo  5 delta_hi  6 class.  sel: class:C (the pairs of
# class C) or comp:X (component X).
EXTRACT = SEL . \
    'sel ~ /^class:/ && (substr(sel, 7) != $6 || $4 !~ /^[0-9]+$/) { next } ' . \
    'sel ~ /^comp:/ && substr(sel, 6) != $4 { next } ' . \
    '{ k = $4 SUBSEP $7; if (!(k in n)) { o[++nk] = k; c[k] = $4; lo[k] = $7; hi[k] = $8; cl[k] = $6 } s[k] += $10; n[k]++ } ' . \
    'END { for (i = 1; i <= nk; i++) { k = o[i]; if (i > 1 && c[k] != c[o[i - 1]]) print ""; ' . \
    'printf "%.10g\t%.10g\t%s\t%s\t%s\t%s\n", (lo[k] + hi[k]) / 2, s[k] / n[k], c[k], lo[k], hi[k], cl[k] } }'
DATA(sel) = "< awk -F '\t' " . VLH . " -v sel=" . sel . " '" . EXTRACT . "' " . Q

# ------------------------------------------------------------------ figure
# Fixed class colours (Okabe-Ito), the same in every petools figure.
ccol(c) = c eq "hf" ? "#0072B2" : c eq "act" ? "#E69F00" : c eq "tlf" ? "#009E73" : \
          c eq "nope" ? "#CC79A7" : c eq "pass" ? "#777777" : "#56B4E9"
cdesc(c) = c eq "hf" ? ">= 1 turn in L" : c eq "act" ? "0.5-1 turn in L" : c eq "tlf" ? "< 0.5 turn in L" : \
           c eq "nope" ? "theta 0" : "L unknown"
cname(w) = w[1:strstrt(w, ":") - 1]
cpairs(w) = w[strstrt(w, ":") + 1:]
plural(w) = strstrt(cpairs(w), "-") + strstrt(cpairs(w), ",") > 0 ? "s" : ""

if (EXT eq "png") { set terminal pngcairo size 1100,650 noenhanced font "sans,11" }
if (EXT eq "svg") { set terminal svg size 1100,650 noenhanced dynamic font "sans,11" }
if (EXT eq "pdf") { set terminal pdfcairo size 8in,4.7in noenhanced font "sans,9" }
if (EXT eq "txt") { set terminal dumb size 110,34 noenhanced }

set title sprintf("%s: per-pair logit components, %s", INPUT, WHO) noenhanced
set xlabel "distance m - n (tokens)"
YLABEL = "mean logit component C_i(distance)"
set ylabel YLABEL
# dumb cannot rotate text: the y label goes above the top left corner.
if (EXT eq "txt") { unset ylabel; set tmargin 5; set title offset 0, 2; set label 9 YLABEL at screen 0, graph 1 offset character 1, character 2 left }
set key outside right top noenhanced
set grid lc rgb "#dddddd"
set xzeroaxis lc rgb "#888888"
XMAX = (TL ne "" && TL + 0 > DMAX) ? 1.05 * TL : DMAX + 0.5
set xrange [0:XMAX]
set offsets 0, 0, graph 0.05, graph 0.05
if (TL ne "") {
    set arrow 1 from TL + 0, graph 0 to TL + 0, graph 1 nohead lc rgb "black" dt 2 lw 2 front
    set label 1 sprintf("L = %s", TL) at TL + 0, graph (EXT eq "txt" ? 0.9 : 0.96) offset character (EXT eq "txt" ? 2 : 0.6), 0 left front
}
LKEY = TL ne "" ? sprintf("L = %s (training length)", TL) : ""

# The plot command is assembled, then run: an empty "for [w in LIST]" still
# opens its data once in gnuplot 5.4 (and warns), so absent parts are left out.
add(p, part) = p . (p ne "" ? ", " : "") . part
P = ""
if (has(COMPS, "total")) {
    P = add(P, 'DATA("comp:total") using 1:2 with lines lw 2.5 lc rgb "black" title "total (logit)"')
}
if (CLASSES ne "") {
    P = add(P, 'for [w in CLASSES] DATA("class:" . cname(w)) using 1:2 with lines lw 1.3 lc rgb ccol(cname(w)) ' . \
        'title sprintf("%s, pair%s %s (%s)", cname(w), plural(w), cpairs(w), cdesc(cname(w)))')
}
if (has(COMPS, "pass")) {
    P = add(P, 'DATA("comp:pass") using 1:2 with lines lw 2 dt 3 lc rgb ccol("pass") title "pass-through dims"')
}
if (TL ne "") {
    P = add(P, 'keyentry with lines lc rgb "black" dt 2 lw 2 title LKEY')
}
set output OUT
eval("plot " . P)
unset output
