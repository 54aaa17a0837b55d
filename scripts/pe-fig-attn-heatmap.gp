# pe-fig-attn-heatmap.gp: attention probabilities of one head on two windows
# of query rows side by side (HoPE Figure 5): typically one in-train window
# and one beyond the training length L, with L marked on both axes where it
# falls inside a panel.  Colour: probability on a log scale shared by both
# panels; white: keys after the row (causal) and cells below the scale.
#
#   gnuplot -c scripts/pe-fig-attn-heatmap.gp IN.tbl BEYOND.tbl OUT [L=N]
#
# IN.tbl, BEYOND.tbl  heatmap tables of peanalyze (-t heatmap, format
#        gnuplot, the default): comment lines, then gnuplot's `matrix
#        nonuniform` layout: a line "N x_1 .. x_N" (the key-column centres,
#        in positions), then one line per query row "y v_1 .. v_N" (its
#        position, the mean probability of each key column).
#        Comment lines read: "# train_len: N", "# input: ...", "# layer: ",
#        "# head: ", "# window: ...".
# OUT    the figure; its extension picks the terminal: .png (pngcairo),
#        .svg (svg), .pdf (pdfcairo), .txt (dumb: a text rendering without
#        colours, where '#' marks the cells within a factor 30 of the
#        largest probability of the panel).
# L=N    training length to mark (default: the tables' train_len; without
#        either the figure is drawn unmarked, with a warning on stderr).
#
# Exit status: 0 done; 1 unreadable or unsuitable table, or OUT's folder
# missing; 2 usage error (arguments, extension).  Errors are one line on
# stderr.  Needs sh and awk.

ME = "pe-fig-attn-heatmap"
USAGE = "usage: gnuplot -c pe-fig-attn-heatmap.gp IN.tbl BEYOND.tbl OUT.{png,svg,pdf,txt} [L=N]"

# ---------------------------------------------------------------- arguments
if (ARGC < 3) { print USAGE; exit status 2 }
T1 = ARG1
T2 = ARG2
OUT = ARG3

# shq(s): s quoted for sh (single quotes; a ' inside becomes '\'').
esc(s) = strstrt(s, "'") == 0 ? s : s[1:strstrt(s, "'") - 1] . "'\\''" . esc(s[strstrt(s, "'") + 1:])
shq(s) = "'" . esc(s) . "'"
alldig(s) = strlen(s) == 0 ? 1 : (strstrt("0123456789", s[1:1]) > 0 ? alldig(s[2:]) : 0)
isuint(s) = strlen(s) > 0 && alldig(s)

LARG = ""
do for [i = 4:ARGC] {
    a = value(sprintf("ARG%d", i))
    if (strstrt(a, "L=") == 1) {
        LARG = a[3:]
        if (!isuint(LARG) || LARG + 0 < 1) { print ME . ": L=" . LARG . ": not a positive integer"; exit status 2 }
    } else {
        print USAGE; exit status 2
    }
}

dot = 0
do for [i = 1:strlen(OUT)] { if (OUT[i:i] eq ".") { dot = i } }
EXT = dot > 0 ? OUT[dot + 1:] : ""
if (EXT ne "png" && EXT ne "svg" && EXT ne "pdf" && EXT ne "txt") {
    print ME . ": OUT '" . OUT . "': unknown extension (want .png, .svg, .pdf or .txt)"; exit status 2
}
do for [t in "1 2"] {
    F = value("T" . t)
    QF = shq(F)
    OK = system("test -f " . QF . " && test -r " . QF . " && echo t")
    if (OK ne "t") { print ME . ": cannot read table '" . F . "'"; exit status 1 }
}
OK = system("d=$(dirname " . shq(OUT) . ") && test -d \"$d\" && test -w \"$d\" && echo o")
if (OK ne "o") { print ME . ": OUT '" . OUT . "': its folder does not exist or is not writable"; exit status 1 }

# ------------------------------------------------------------------ tables
# awk over a table: its output is gnuplot code that is run with eval (one
# line; a program must hold no single quote, q is one).  Variables get the
# suffix P (1 or 2).
AWKQ = 'function gs(n, s) { gsub(q, q q, s); printf "%s%s = %s%s%s; ", n, P, q, s, q } '
FACTS = 'NR == 1 && $0 != "# peanalyze table: heatmap" { bad = 1; exit } ' . \
    '/^# train_len: / { gs("TLRAW", substr($0, 14)); next } ' . \
    '/^# input: / { inp = substr($0, 10); sub(/ \(T [0-9].*$/, "", inp); gs("INPUT", inp); next } ' . \
    '/^# layer: / { gs("LAYER", substr($0, 10)); next } /^# head: / { gs("HEAD", substr($0, 9)); next } ' . \
    '/^#/ { next } ' . \
    'nc == 0 { if ($1 !~ /^[0-9]+$/ || NF != $1 + 1) { bad = 1; exit } nc = $1; x0 = $2; x1 = $NF; next } ' . \
    '{ if (NF != nc + 1) { bad = 1; exit } if (!nr++) y0 = $1; y1 = $1; ' . \
    '  for (i = 2; i <= NF; i++) { v = $i + 0; if (v > mx) mx = v; if (v > 0 && (mn == 0 || v < mn)) mn = v } } ' . \
    'END { if (bad || !nr) { printf "BAD%s = 1; ", P; exit } ' . \
    '  printf "BAD%s = 0; NC%s = %d; NR%s = %d; X0%s = %.10g; X1%s = %.10g; Y0%s = %.10g; Y1%s = %.10g; MX%s = %.10g; MN%s = %.10g; ", ' . \
    '    P, P, nc, P, nr, P, x0, P, x1, P, y0, P, y1, P, mx, P, mn }'
do for [t in "1 2"] {
    F = value("T" . t)
    eval("TLRAW" . t . " = ''; INPUT" . t . " = '?'; LAYER" . t . " = '?'; HEAD" . t . " = '?'")
    eval(system("awk -F '\t' -v q=\"'\" -v P=" . t . " '" . AWKQ . FACTS . "' " . shq(F)))
    if (value("BAD" . t)) {
        print ME . ": " . F . ": not a peanalyze heatmap table in gnuplot format (peanalyze -t heatmap, without -f)"; exit status 1
    }
}

TL = LARG ne "" ? LARG : (TLRAW1 ne "" ? TLRAW1 : TLRAW2)
if (!isuint(TL) || TL eq "0") { TL = "" }
if (TL eq "") { print ME . ": warning: the tables give no training length (no '# train_len:' line, or 0) and no L=N was given; L is not marked" }

# One colour scale for both panels: from the largest probability down six
# decades (or to the smallest positive one).
CBHI = MX1 > MX2 ? MX1 : MX2
CBLO = (MN1 < MN2 ? MN1 : MN2)
if (CBLO <= 0 || CBLO < CBHI * 1e-6) { CBLO = CBHI * 1e-6 }
if (CBHI <= 0) { CBHI = 1; CBLO = 1e-6 }

where(t) = TL eq "" ? "" : (value("Y1" . t) < TL + 0 ? ", in-train" : (value("Y0" . t) >= TL + 0 ? ", beyond L" : ", across L"))
ptitle(t) = sprintf("layer %s head %s, query positions %g..%g%s", value("LAYER" . t), value("HEAD" . t), \
                    value("Y0" . t), value("Y1" . t), where(t))

# ------------------------------------------------------------------ figure
if (EXT eq "png") { set terminal pngcairo size 1300,600 noenhanced font "sans,10" }
if (EXT eq "svg") { set terminal svg size 1300,600 noenhanced dynamic font "sans,10" }
if (EXT eq "pdf") { set terminal pdfcairo size 10in,4.6in noenhanced font "sans,8" }
if (EXT eq "txt") { set terminal dumb size 160,40 noenhanced }

set output OUT
set multiplot layout 1, 2 title sprintf("%s: attention probabilities (HoPE Figure 5)", INPUT1) noenhanced
set xlabel "key position n"
YLABEL = "query position m"
set ylabel YLABEL
# dumb cannot rotate text: the y axis is named in the x label.
if (EXT eq "txt") { unset ylabel; set xlabel "key position n (y: query position m)" }
set logscale cb
set cbrange [CBLO:CBHI]
set format cb "%.0e"
set cblabel "attention probability (mean over a key column)"
set palette defined (0 "#fff3b0", 0.25 "#fec44f", 0.5 "#fe9929", 0.75 "#cc4c02", 1 "#4d1c02")
set tics front
set key off
do for [t = 1:2] {
    F = value("T" . t)
    set title ptitle(t) noenhanced
    DX = value("NC" . t) > 1 ? (value("X1" . t) - value("X0" . t)) / (value("NC" . t) - 1) : 1
    DY = value("NR" . t) > 1 ? (value("Y1" . t) - value("Y0" . t)) / (value("NR" . t) - 1) : 1
    set xrange [value("X0" . t) - DX / 2:value("X1" . t) + DX / 2]
    set yrange [value("Y0" . t) - DY / 2:value("Y1" . t) + DY / 2]
    unset arrow
    unset label
    if (TL ne "") {
        if (TL + 0 >= value("X0" . t) && TL + 0 <= value("X1" . t)) {
            set arrow 1 from TL + 0, graph 0 to TL + 0, graph 1 nohead lc rgb "#0072B2" dt 2 lw 2 front
            set label 1 sprintf("L = %s", TL) at TL + 0, graph 0.04 offset character 0.5, 0 left front tc rgb "#0072B2"
        }
        if (TL + 0 >= value("Y0" . t) && TL + 0 <= value("Y1" . t)) {
            set arrow 2 from graph 0, first TL + 0 to graph 1, first TL + 0 nohead lc rgb "#0072B2" dt 2 lw 2 front
            set label 2 sprintf("L = %s", TL) at graph 0.02, first TL + 0 offset 0, character 0.6 left front tc rgb "#0072B2"
        }
    }
    if (EXT eq "txt") {
        THR = value("MX" . t) / 30
        plot F matrix nonuniform using 1:($3 >= THR && $3 > 0 ? $2 : NaN) with points pt "#" notitle
    } else {
        plot F matrix nonuniform using 1:2:($3 > 0 ? $3 : NaN) with image failsafe notitle
    }
}
unset multiplot
unset output
