# pe-fig-purity.gp: spectral purity of each RoPE pair against its frequency
# (FoPE's spectral damage): purity (y, 0 to 1: the share of the power of the
# pair's in-train profile that lies at the pair's own frequency) against
# theta (x, log scale), one point per layer, head and pair, coloured by
# layer, over the class bands (shaded: hf theta >= 2 pi/L, act pi/L <= theta
# < 2 pi/L, tlf below), with 2 pi / L marked (dashed) and the limit below
# which purity is undefined, 4 pi / Dw (dotted).
#
#   gnuplot -c scripts/pe-fig-purity.gp TABLE OUT [mean] [L=N]
#
# TABLE  a spectrum table of pedecomp (-t spectrum, without --spectrum-of;
#        format gnuplot or tsv).  Columns are used by NUMBER:
#          1 layer  2 head  3 kv_head  4 component (pair index)  5 theta
#          6 class  7 peak_freq  8 line_freq  9 purity  10 leakage  11 dc
#        x = column 5, y = column 9.  Rows whose purity is nan (the pair
#        turns fewer than 2 times within the window, theta Dw < 4 pi, or a
#        distance of the window had no token pairs; theta 0 included) are
#        not drawn: they are counted in the title, as is the lowest purity
#        drawn (of one head, also with "mean").  As Dw <= L, the act and tlf
#        bands never hold a point: they show where the undefined pairs lie
#        (column 5 of every row sets the x range).  So that the
#        layers do not hide one another, layer j of n is drawn shifted along
#        x by (j - (n - 1) / 2) steps, the whole spread at most 0.15 decade
#        and a third of the smallest gap between two thetas.  The bands come
#        from L, not from column 6 (L=N moves them).
#        Comment lines read: "# train_len: N" (0 = unknown), "# input: ...",
#        "# window: distances 0..D" (Dw = D + 1).
# OUT    the figure; its extension picks the terminal: .png (pngcairo),
#        .svg (svg), .pdf (pdfcairo), .txt (dumb: a text rendering, without
#        the colours and the shading; the band edges are lines).
# mean   one point per layer and pair instead: the mean purity over the
#        layer's heads whose purity is defined, joined by a line per layer.
# L=N    training length for the bands (default: the table's train_len;
#        without either the figure is drawn without bands, with a warning on
#        stderr).
#
# Exit status: 0 done; 1 unreadable or unsuitable table, or OUT's folder
# missing; 2 usage error (arguments, extension).  Errors are one line on
# stderr.  Needs sh and awk (the table is read with awk).

ME = "pe-fig-purity"
USAGE = "usage: gnuplot -c pe-fig-purity.gp TABLE OUT.{png,svg,pdf,txt} [mean] [L=N]"

# ---------------------------------------------------------------- arguments
if (ARGC < 2) { print USAGE; exit status 2 }
TABLE = ARG1
OUT = ARG2

# shq(s): s quoted for sh (single quotes; a ' inside becomes '\'').
esc(s) = strstrt(s, "'") == 0 ? s : s[1:strstrt(s, "'") - 1] . "'\\''" . esc(s[strstrt(s, "'") + 1:])
shq(s) = "'" . esc(s) . "'"
alldig(s) = strlen(s) == 0 ? 1 : (strstrt("0123456789", s[1:1]) > 0 ? alldig(s[2:]) : 0)
isuint(s) = strlen(s) > 0 && alldig(s)

LARG = ""
MEAN = 0
do for [i = 3:ARGC] {
    a = value(sprintf("ARG%d", i))
    if (strstrt(a, "L=") == 1) {
        LARG = a[3:]
        if (!isuint(LARG) || LARG + 0 < 1) { print ME . ": L=" . LARG . ": not a positive integer"; exit status 2 }
    } else {
        if (a eq "mean" && !MEAN) { MEAN = 1 } else { print USAGE; exit status 2 }
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
DEF = '($9 != "nan" && $5 + 0 > 0)'

# One pass: header, train_len, input, the window, the layers (in order), the
# counts of rows and of undefined rows, the range of the positive thetas and
# the smallest ratio between two distinct ones (as log10, GAP), the lowest
# purity drawn and where it is.
eval(AWK("", \
    '/^# train_len: / { if (tl == "") tl = substr($0, 14); next } ' . \
    '/^# input: / { ni++; if (ni == 1) { inp = substr($0, 10); sub(/ \(T [0-9].*$/, "", inp) } next } ' . \
    '/^# window: distances 0\.\.[0-9]/ { w = $0; sub(/^# window: distances 0\.\./, "", w); sub(/[^0-9].*/, "", w); dw = w + 1; next } ' . \
    '/^#/ { next } hdr == "" && NF { hdr = $0; next } ' . ROWS . \
    '{ nrow++; if (!sl[$1]++) layers = layers (nl++ ? " " : "") $1; t = $5 + 0; ' . \
    '  if (t > 0) { if (!tlo || t < tlo) tlo = t; if (t > thi) thi = t; if (!(t in st)) { st[t] = 1; ths[++nt] = t } } ' . \
    '  if (!' . DEF . ') { nnan++; next } p = $9 + 0; if (!ndef++ || p < plo) { plo = p; where = "layer " $1 " head " $2 " pair " $4 } } ' . \
    'END { if (ni > 1) inp = inp " + " (ni - 1) " more"; if (!ni) inp = "?"; ' . \
    '  for (i = 1; i <= nt; i++) for (j = 1; j <= nt; j++) if (ths[j] > ths[i]) { g = log(ths[j] / ths[i]) / log(10); if (!gap || g < gap) gap = g } ' . \
    '  gs("HDR", hdr); gs("TLRAW", tl); gs("INPUT", inp); gs("LAYERS", layers); gs("WHERE", where); ' . \
    '  printf "NROWS = %d; NNAN = %d; NDEF = %d; DW = %d; TLO = %.10g; THI = %.10g; GAP = %.10g; PLO = %.10g", ' . \
    '    nrow, nnan, ndef, dw, tlo, thi, gap, plo }'))
WANT = "layer\thead\tkv_head\tcomponent\ttheta\tclass\tpeak_freq\tline_freq\tpurity\tleakage\tdc"
if (strstrt(HDR, WANT) != 1) {
    print ME . ": " . TABLE . ": not a pedecomp spectrum table, -t spectrum without --spectrum-of (its header starts '" . AWK("", '!/^#/ && NF { gsub(/\t/, " "); print substr($0, 1, 40); exit }') . "')"; exit status 1
}
if (NROWS == 0) { print ME . ": " . TABLE . ": the table has no rows"; exit status 1 }

TL = LARG ne "" ? LARG : TLRAW
if (!isuint(TL) || TL eq "0") { TL = "" }
if (TL eq "") { print ME . ": warning: " . TABLE . " gives no training length (no '# train_len:' line, or 0) and no L=N was given; the class bands are not drawn" }

# The x range (log): the thetas, the band edges and the definedness limit,
# with half a decade (or so) of margin.
PI2 = 2 * pi
HFE = TL ne "" ? PI2 / TL : 0
ACE = TL ne "" ? pi / TL : 0
DEFE = DW > 0 ? 2 * PI2 / DW : 0
XLO = TLO > 0 ? TLO : (DEFE > 0 ? DEFE : 1e-3)
XHI = THI > 0 ? THI : XLO
if (ACE > 0 && ACE < XLO) { XLO = ACE }
if (HFE > XHI) { XHI = HFE }
if (DEFE > 0 && DEFE < XLO) { XLO = DEFE }
if (DEFE > XHI) { XHI = DEFE }
XLO = XLO / 3.0
XHI = XHI * 3.0

# The shift of layer j (0-based position in LAYERS): a factor 10^(SHIFT * (j - (n - 1) / 2)).
NL = words(LAYERS)
SPREAD = GAP > 0 ? (GAP / 3.0 < 0.15 ? GAP / 3.0 : 0.15) : 0.15
SHIFT = NL > 1 ? SPREAD / (NL - 1.0) : 0

# The points, columns: 1 x (theta shifted by layer)  2 purity  3 layer
# position j (the colour).  mean: one point per layer and pair, the mean
# over the heads, a layer's points in the table's pair order with a blank
# line after each layer.
EXTRACT = 'BEGIN { n = split(layers, a, " "); for (i = 1; i <= n; i++) pos[a[i]] = i - 1 } ' . ROWS . \
    '!' . DEF . ' { next } { x = ($5 + 0) * exp(log(10) * shift * (pos[$1] - (n - 1) / 2)) } ' . \
    '!mean { printf "%.10g\t%.10g\t%d\n", x, $9, pos[$1]; next } ' . \
    '{ k = $1 SUBSEP $4; if (!(k in c)) { o[++nk] = k; xs[k] = x; ly[k] = $1 } s[k] += $9; c[k]++ } ' . \
    'END { if (!mean) exit; for (i = 1; i <= nk; i++) { k = o[i]; if (i > 1 && ly[k] != ly[o[i - 1]]) print ""; ' . \
    '  printf "%.10g\t%.10g\t%d\n", xs[k], s[k] / c[k], pos[ly[k]] } }'
DATA = "< awk -F '\t' -v mean=" . MEAN . " -v shift=" . sprintf("%.10g", SHIFT) . " -v layers=" . shq(LAYERS) . " '" . EXTRACT . "' " . Q

# ------------------------------------------------------------------ figure
# Fixed class colours (Okabe-Ito), the same in every petools figure.
ccol(c) = c eq "hf" ? "#0072B2" : c eq "act" ? "#E69F00" : c eq "tlf" ? "#009E73" : \
          c eq "nope" ? "#CC79A7" : c eq "pass" ? "#777777" : "#56B4E9"

if (EXT eq "png") { set terminal pngcairo size 1100,650 noenhanced font "sans,11" }
if (EXT eq "svg") { set terminal svg size 1100,650 noenhanced dynamic font "sans,11" }
if (EXT eq "pdf") { set terminal pdfcairo size 8in,4.7in noenhanced font "sans,9" }
if (EXT eq "txt") { set terminal dumb size 110,34 noenhanced }

WHAT = MEAN ? "mean over the heads of each layer" : "one point per layer, head and pair"
NTOT = NROWS
LOW = NDEF > 0 ? sprintf("; lowest purity %.3g: %s", PLO, WHERE) : "; none defined"
set title sprintf("%s: spectral purity of each pair's in-train profile, window Dw = %d%s\n%s%s\n%d of %d pairs undefined (nan: fewer than 2 turns in the window), not drawn", \
    INPUT, DW, TL ne "" ? ", L = " . TL : "", WHAT, LOW, NNAN, NTOT) noenhanced
set xlabel "theta_i (radians per token, log scale" . (NL > 1 ? "; layers shifted slightly apart)" : ")")
YLABEL = "purity (power at the pair's own frequency / all power)"
set ylabel YLABEL
# dumb cannot rotate text: the y label goes above the top left corner.
if (EXT eq "txt") { unset ylabel; set tmargin 5; set title offset 0, 2; set label 9 YLABEL at screen 0, graph 1 offset character 1, character 2 left }
set logscale x
set format x "%g"
set xrange [XLO:XHI]
set yrange [-0.03:1.03]
set ytics 0, 0.2, 1
set grid xtics ytics lc rgb "#dddddd"
set key outside below center horizontal noenhanced

# The bands (shaded, named at the bottom) and their edges, the edges' labels
# left of them, where no point can be (a point needs theta >= 4 pi / Dw).
set style textbox opaque noborder
if (TL ne "") {
    set object 1 rect from graph 0, graph 0 to first ACE, graph 1 fc rgb ccol("tlf") fs transparent solid 0.12 noborder behind
    set object 2 rect from first ACE, graph 0 to first HFE, graph 1 fc rgb ccol("act") fs transparent solid 0.18 noborder behind
    set object 3 rect from first HFE, graph 0 to graph 1, graph 1 fc rgb ccol("hf") fs transparent solid 0.12 noborder behind
    set label 11 "tlf" at sqrt(XLO * ACE), graph 0.04 center front textcolor rgb ccol("tlf")
    set label 12 "act" at sqrt(ACE * HFE), graph 0.04 center front textcolor rgb ccol("act")
    set label 13 "hf" at sqrt(HFE * XHI), graph 0.04 center front textcolor rgb ccol("hf")
    set arrow 2 from ACE, graph 0 to ACE, graph 1 nohead lc rgb "#999999" lw 1 back
    set arrow 1 from HFE, graph 0 to HFE, graph 1 nohead lc rgb "black" dt 2 lw 2 front
    set label 1 "2pi/L" at HFE, graph 0.88 offset character (EXT eq "txt" ? -1 : -0.6), 0 right front
}
if (DEFE > 0) {
    set arrow 3 from DEFE, graph 0 to DEFE, graph 1 nohead lc rgb "#555555" dt 3 lw 2 front
    # (In text, where the two lines may stand a few characters apart, right of it.)
    if (EXT eq "txt") {
        set label 3 "4pi/Dw" at DEFE, graph 0.80 offset character 2, 0 left front
    } else {
        set label 3 "4pi/Dw" at DEFE, graph 0.80 offset character -0.6, 0 right front
    }
}

# Colours by layer position, the box names the layers (every k-th when there
# are many); one layer: no box.
set palette defined (0 "#3b0f70", 0.35 "#8c2981", 0.7 "#de4968", 1 "#fe9f6d")
set cbrange [-0.5:NL - 0.5]
if (NL == 1) { set cbrange [0:1] }
set cblabel "layer" offset character 1, 0
STEP = NL > 12 ? (NL + 11) / 12 : 1
set cbtics scale 0 ()
do for [j = 0:NL - 1:STEP] { set cbtics add (word(LAYERS, j + 1) j) }
if (EXT eq "txt" || NL == 1) { unset colorbox }

add(p, part) = p . (p ne "" ? ", " : "") . part
P = ""
if (NDEF > 0) {
    if (MEAN) {
        P = add(P, 'DATA using 1:2:3 with linespoints pt 7 ps 1.2 lw 1.5 lc palette notitle, keyentry with linespoints pt 7 ps 1.2 lw 1.5 lc rgb "#555555" title "mean over the heads of a layer"')
    } else {
        P = add(P, 'DATA using 1:2:3 with points pt 7 ps 0.9 lc palette notitle, keyentry with points pt 7 ps 0.9 lc rgb "#555555" title "a pair of a head"')
    }
} else {
    # Nothing defined: an invisible curve carries the axes.
    P = add(P, '-1 notitle')
}
if (TL ne "") {
    P = add(P, 'keyentry with lines lc rgb "black" dt 2 lw 2 title sprintf("2 pi / L, L = %s", TL)')
}
if (DEFE > 0) {
    P = add(P, 'keyentry with lines lc rgb "#555555" dt 3 lw 2 title sprintf("4 pi / Dw: 2 turns in Dw = %d", DW)')
}
set output OUT
eval("plot " . P)
unset output
