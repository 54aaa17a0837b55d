# pe-fig-attention.gp: attention against distance, one panel per layer
# (HoPE Figure 1): the mean logit (left axis) and the mean (m+1) p(m, m-d),
# the attention relative to uniform (right axis, log scale, 1 = uniform),
# against the distance d, the training length L marked in every panel.
#
#   gnuplot -c scripts/pe-fig-attention.gp TABLE OUT [HEAD|mean] [L=N]
#
# TABLE  a profile table of peanalyze (-t profile, the default; format
#        gnuplot or tsv), of one or more layers.  Columns are used by NUMBER:
#          1 layer  2 head  3 kv_head  4 delta_lo  5 delta_hi  6 n_pairs
#          7 mean_logit  8 mean_prob  9 mean_prob_u  10 last_prob
#        x = distance (delta_lo + delta_hi) / 2.
#        Comment lines read: "# train_len: N" (0 = unknown), "# input: ...".
# OUT    the figure; its extension picks the terminal: .png (pngcairo),
#        .svg (svg), .pdf (pdfcairo), .txt (dumb: a text rendering).
# HEAD   query head to draw in every layer, or "mean" (the default): the
#        unweighted mean over the heads of each layer that the table holds,
#        computed here at each distance bin.
# L=N    training length to mark (default: the table's train_len; without
#        either the figure is drawn unmarked, with a warning on stderr).
#
# Exit status: 0 done; 1 unreadable or unsuitable table, HEAD not in a
# layer, or OUT's folder missing; 2 usage error (arguments, extension).
# Errors are one line on stderr.  Needs sh and awk (the table is read with awk).

ME = "pe-fig-attention"
USAGE = "usage: gnuplot -c pe-fig-attention.gp TABLE OUT.{png,svg,pdf,txt} [HEAD|mean] [L=N]"

# ---------------------------------------------------------------- arguments
# (The same as in pe-fig-components.gp.)
if (ARGC < 2) { print USAGE; exit status 2 }
TABLE = ARG1
OUT = ARG2

# shq(s): s quoted for sh (single quotes; a ' inside becomes '\'').
esc(s) = strstrt(s, "'") == 0 ? s : s[1:strstrt(s, "'") - 1] . "'\\''" . esc(s[strstrt(s, "'") + 1:])
shq(s) = "'" . esc(s) . "'"
alldig(s) = strlen(s) == 0 ? 1 : (strstrt("0123456789", s[1:1]) > 0 ? alldig(s[2:]) : 0)
isuint(s) = strlen(s) > 0 && alldig(s)

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
            HEAD = a
            if (HEAD ne "mean" && !isuint(HEAD)) { print ME . ": HEAD '" . a . "' is not a head index or 'mean'"; exit status 2 }
        } else {
            print USAGE; exit status 2
        }
    }
}
if (HEAD eq "") { HEAD = "mean" }

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
WANT = "layer\thead\tkv_head\tdelta_lo\tdelta_hi\tn_pairs\tmean_logit\tmean_prob\tmean_prob_u\tlast_prob"
if (strstrt(HDR, WANT) != 1) {
    print ME . ": " . TABLE . ": not a peanalyze profile table (its header starts '" . AWK("", '!/^#/ && NF { gsub(/\t/, " "); print substr($0, 1, 40); exit }') . "')"; exit status 1
}
if (LAYERS eq "") { print ME . ": " . TABLE . ": the table has no rows"; exit status 1 }
has(list, x) = strstrt(" " . list . " ", " " . x . " ") > 0
NL = words(LAYERS)
if (HEAD ne "mean") {
    do for [i = 1:NL] {
        l = word(LAYERS, i)
        if (!has(value("HEADS_" . l), HEAD)) {
            print ME . ": head " . HEAD . " of layer " . l . " is not in " . TABLE . " (heads: " . value("HEADS_" . l) . ")"; exit status 1
        }
    }
}

# Pass 2: the largest distance, and the range of the right axis (positive
# mean (m+1) p over every drawn layer).
SEL = ROWS . '(head != "mean" && $2 != head) { next } '
eval(AWK("-v head=" . HEAD, SEL . \
    '{ k = $1 SUBSEP $4; if (!(k in n)) o[++nk] = k; s[k] += $9; n[k]++; if ($5 + 0 > dmax) dmax = $5 + 0 } ' . \
    'END { lo = 0; hi = 0; for (i = 1; i <= nk; i++) { v = s[o[i]] / n[o[i]]; if (v > 0 && (lo == 0 || v < lo)) lo = v; if (v > hi) hi = v } ' . \
    'if (lo == 0) { lo = 0.5; hi = 2 } if (lo > 0.5) lo = 0.5; if (hi < 2) hi = 2; ' . \
    'printf "DMAX = %d; Y2LO = %.6g; Y2HI = %.6g\n", dmax, lo / 1.3, hi * 1.3 }'))

TL = LARG ne "" ? LARG : TLRAW
if (!isuint(TL) || TL eq "0") { TL = "" }
if (TL eq "") { print ME . ": warning: " . TABLE . " gives no training length (no '# train_len:' line, or 0) and no L=N was given; L is not marked" }

# The rows of one layer: 1 distance midpoint  2 mean logit  3 mean (m+1) p
# (means over heads for "mean"), nan cells skipped.
EXTRACT = SEL . '$1 != layer { next } ' . \
    '{ k = $4; if (!(k in n)) { o[++nk] = k; lo[k] = $4; hi[k] = $5 } if ($7 != "nan") { sl[k] += $7; nl[k]++ } ' . \
    '  if ($9 != "nan") { su[k] += $9; nu[k]++ } n[k]++ } ' . \
    'END { for (i = 1; i <= nk; i++) { k = o[i]; printf "%.10g\t%s\t%s\n", (lo[k] + hi[k]) / 2, ' . \
    '  (nl[k] ? sprintf("%.10g", sl[k] / nl[k]) : "NaN"), (nu[k] ? sprintf("%.10g", su[k] / nu[k]) : "NaN") } }'
DATA(l) = "< awk -F '\t' -v head=" . HEAD . " -v layer=" . l . " '" . EXTRACT . "' " . Q

# ------------------------------------------------------------------ figure
COLS = NL < 3 ? NL : (NL == 4 ? 2 : 3)
ROWSN = int((NL + COLS - 1) / COLS)
W = 520 * COLS
H = 330 * ROWSN + 60
if (EXT eq "png") { set terminal pngcairo size W, H noenhanced font "sans,10" }
if (EXT eq "svg") { set terminal svg size W, H noenhanced dynamic font "sans,10" }
if (EXT eq "pdf") { set terminal pdfcairo size W / 100.0, H / 100.0 noenhanced font "sans,8" }
if (EXT eq "txt") { set terminal dumb size 100 * COLS, 30 * ROWSN + 3 noenhanced }

WHO = HEAD eq "mean" ? "mean over the heads of each layer" : sprintf("head %s of each layer", HEAD)
XMAX = (TL ne "" && TL + 0 > DMAX) ? 1.05 * TL : DMAX + 0.5
LKEY = TL ne "" ? sprintf("L = %s (training length)", TL) : ""

# The panels sit inside fixed screen margins; the key goes under them.
MB = EXT eq "txt" ? 0.06 : 0.1
set output OUT
set multiplot layout ROWSN, COLS title sprintf("%s: attention against distance, %s", INPUT, WHO) noenhanced \
    margins 0.06, 0.95, MB + 0.04, 0.9 spacing 0.1, 0.14
set xlabel "distance m - n (tokens)"
YLABEL = "mean logit"
Y2LABEL = "mean (m+1) p, 1 = uniform"
set ylabel YLABEL tc rgb "#0072B2"
set y2label Y2LABEL tc rgb "#D55E00"
# dumb cannot rotate text: the axis names go into the key.
if (EXT eq "txt") { unset ylabel; unset y2label }
set ytics nomirror tc rgb "#0072B2"
set logscale y2
# Tics at powers of 2 (the range is narrow for a decade per tic).
set y2tics 2 ** floor(log(Y2LO) / log(2)), 2 nomirror tc rgb "#D55E00"
set y2range [Y2LO:Y2HI]
set format y2 "%g"
set grid lc rgb "#dddddd"
set xrange [0:XMAX]
set offsets 0, 0, graph 0.05, graph 0.05
set key at screen 0.01, screen 0.0 left bottom vertical Left reverse noenhanced samplen 3
set arrow 2 from graph 0, second 1 to graph 1, second 1 nohead lc rgb "#D55E00" dt 3 lw 1 back
if (TL ne "") {
    set arrow 1 from TL + 0, graph 0 to TL + 0, graph 1 nohead lc rgb "black" dt 2 lw 2 front
    set label 1 sprintf("L = %s", TL) at TL + 0, graph (EXT eq "txt" ? 0.9 : 0.95) offset character 0.6, 0 left front
}
do for [i = 1:NL] {
    l = word(LAYERS, i)
    set title sprintf("layer %s", l) noenhanced
    if (i == 1) {
        P = 'DATA(l) using 1:2 axes x1y1 with lines lw 2 lc rgb "#0072B2" title "mean logit (left)", ' . \
            'DATA(l) using 1:($3 > 0 ? $3 : NaN) axes x1y2 with lines lw 1.5 lc rgb "#D55E00" title "mean (m+1) p (right, log)"'
        if (TL ne "") { P = P . ', keyentry with lines lc rgb "black" dt 2 lw 2 title LKEY' }
    } else {
        P = 'DATA(l) using 1:2 axes x1y1 with lines lw 2 lc rgb "#0072B2" notitle, ' . \
            'DATA(l) using 1:($3 > 0 ? $3 : NaN) axes x1y2 with lines lw 1.5 lc rgb "#D55E00" notitle'
    }
    eval("plot " . P)
}
unset multiplot
unset output
