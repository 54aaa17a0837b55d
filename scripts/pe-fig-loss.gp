# pe-fig-loss.gp: the ground truth a verdict about "what breaks beyond L" is
# held against: the model's own next-token loss against position, beside the
# loss of the control pass that hides only the distances beyond L (every
# query sees the last L keys and the sink tokens).  Below L the two are the
# same pass; beyond L the shaded gap (the excess) is what the distances never
# seen in training cost the model.
#
#   gnuplot -c scripts/pe-fig-loss.gp TABLE OUT [L=N]
#
# TABLE  a loss table of peanalyze (-t loss; format gnuplot or tsv).
#        Columns are found by NAME in its header: bin_lo, bin_hi, nll,
#        nll_control, excess (other columns are ignored).
#        Comment lines read: "# train_len: N", "# input: ...",
#        "# control: ...".
# OUT    the figure; its extension picks the terminal: .png (pngcairo),
#        .svg (svg), .pdf (pdfcairo), .txt (dumb: a text rendering).
# L=N    training length to mark (default: the table's train_len; without
#        either, with a warning on stderr).
#
# Without a control (nll_control all nan) only the loss is drawn, and the
# key says that the control is missing.
#
# A table of dumps recorded with several positional specs (pe-dump --pe;
# the pe column, man petools-whatif(7)) draws the loss of each spec against
# position instead, one line per spec, with the control of the first (rope
# when it is there) dashed: what each remedy really does to the model.
#
# Exit status: 0 done; 1 unreadable or unsuitable table, or OUT's folder
# missing; 2 usage error (arguments, extension).  Errors are one line on
# stderr.  Needs sh and awk.

ME = "pe-fig-loss"
USAGE = "usage: gnuplot -c pe-fig-loss.gp TABLE OUT.{png,svg,pdf,txt} [L=N]"

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
do for [i = 3:ARGC] {
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
Q = shq(TABLE)
FILES = system("r=; test -f " . Q . " && test -r " . Q . " && r=t; d=$(dirname " . shq(OUT) . ") && " . \
    "test -d \"$d\" && test -w \"$d\" && r=${r}o; echo \"$r\"")
if (strstrt(FILES, "t") == 0) { print ME . ": cannot read table '" . TABLE . "'"; exit status 1 }
if (strstrt(FILES, "o") == 0) { print ME . ": OUT '" . OUT . "': its folder does not exist or is not writable"; exit status 1 }

# ------------------------------------------------------------------- table
# The rows, reduced to "centre nll nll_control excess" (columns by name).
AWKQ = 'function gs(n, s) { gsub(q, q q, s); printf "%s = %s%s%s; ", n, q, s, q } '
AWK(prog) = system("awk -F '\t' -v q=\"'\" '" . AWKQ . prog . "' " . Q)
COLS = '/^# section: / { exit } /^#/ { next } !hdr && NF { for (i = 1; i <= NF; i++) c[$i] = i; hdr = 1; next } ' . \
       '!NF || !c["bin_lo"] || !c["bin_hi"] || !c["nll"] || !c["nll_control"] || !c["excess"] || $c["bin_lo"] !~ /^[0-9]+$/ { next } ' . \
       '{ spec = c["pe"] ? $c["pe"] : "rope" } '
eval(AWK( \
    '/^# train_len: / { if (tl == "") tl = substr($0, 14); next } ' . \
    '/^# input: / { ni++; if (ni == 1) { inp = substr($0, 10); sub(/ \(T [0-9].*$/, "", inp) } next } ' . \
    '/^# control: / { ctl = substr($0, 12); sub(/ \(.*$/, "", ctl); next } ' . \
    '/^# [a-z]+ table: / { tab = $0; next } ' . \
    COLS . \
    '{ n++; x = $c["bin_hi"] + 0; if (x > xmax) xmax = x; if (!(spec in seen)) { seen[spec] = 1; pes = pes (npe++ ? " " : "") spec } ' . \
    '  for (k = 0; k < 2; k++) { v = $c[k ? "nll_control" : "nll"]; if (v == "nan") continue; ' . \
    '    if (k) nctl++; if (!ny || v + 0 > ymax) ymax = v + 0; if (!ny || v + 0 < ymin) ymin = v + 0; ny++ } } ' . \
    'END { if (ni > 1) inp = inp " + " (ni - 1) " more"; if (!ni) inp = "?"; ' . \
    'gs("TAB", tab); gs("TLRAW", tl); gs("INPUT", inp); gs("CONTROL", ctl); gs("PES", pes); ' . \
    'printf "NROWS = %d; NCTL = %d; NPE = %d; XMAX = %.10g; YMIN = %.10g; YMAX = %.10g", n, nctl, npe, xmax, ymin, ymax }'))
if (TAB ne "# peanalyze table: loss") {
    print ME . ": " . TABLE . ": not a peanalyze loss table"; exit status 1
}
if (NROWS == 0) { print ME . ": " . TABLE . ": the table has no rows"; exit status 1 }

TL = LARG ne "" ? LARG : TLRAW
if (!isuint(TL) || TL eq "0") { TL = "" }
if (TL eq "") { print ME . ": warning: " . TABLE . " gives no training length (no '# train_len:' line, or 0) and no L=N was given; L is not marked" }
# The rows of one spec (the first, or number i of PES).
ROWSOF(p) = "< awk -F '\t' -v want=" . shq(p) . " '" . COLS . "spec == want { print 0.5 * ($c[\"bin_lo\"] + $c[\"bin_hi\"]), $c[\"nll\"], $c[\"nll_control\"], $c[\"excess\"] }' " . Q
ROWS = ROWSOF(word(PES, 1))

# ------------------------------------------------------------------ figure
if (EXT eq "png") { set terminal pngcairo size 1000,600 noenhanced font "sans,11" }
if (EXT eq "svg") { set terminal svg size 1000,600 noenhanced dynamic font "sans,11" }
if (EXT eq "pdf") { set terminal pdfcairo size 7.5in,4.5in noenhanced font "sans,9" }
if (EXT eq "txt") { set terminal dumb size 110,34 noenhanced }

if (NPE > 1) {
    set title sprintf("%s: the model's loss against position, run with each positional spec\n(forward passes of pe-dump --pe; control: %s)", INPUT, NCTL > 0 ? CONTROL : "none") noenhanced
} else {
    set title sprintf("%s: the model's loss against position\n(control: %s)", INPUT, NCTL > 0 ? CONTROL : "none") noenhanced
}
set xlabel "position (bin centre)"
set ylabel "next-token loss (nats)"
set xrange [0:XMAX > 0 ? XMAX : 1]
PAD = (YMAX - YMIN) > 0 ? 0.1 * (YMAX - YMIN) : 0.5
set yrange [(YMIN - PAD > 0 ? YMIN - PAD : 0):YMAX + PAD]
set grid lc rgb "#dddddd"
set key outside bottom center vertical maxrows 3 noenhanced
if (TL ne "") {
    set arrow 1 from first TL, graph 0 to first TL, graph 1 nohead dt 2 lc rgb "#555555"
    set label 1 sprintf("L = %s", TL) at first TL, graph 0.9 offset 1.5, 0 left front
}
set style fill transparent solid 0.25 noborder
set output OUT
# The text rendering draws no shading (the dumb terminal fills with letters).
if (NPE > 1) {
    set key outside bottom center horizontal maxrows 3 noenhanced
    plot for [i = 1:NPE] ROWSOF(word(PES, i)) using 1:2 with linespoints lw 2 pt 7 title sprintf("loss with %s", word(PES, i)), \
         (NCTL > 0 ? ROWS : 1/0) using 1:3 with lines lw 2 dt 2 lc rgb "#555555" title sprintf("control of %s (keys within L, plus sinks)", word(PES, 1))
} else { if (NCTL > 0 && EXT eq "txt") {
    plot ROWS using 1:2 with linespoints pt 7 title "loss (full attention)", \
         ROWS using 1:3 with linespoints pt 5 title "control (keys within L, plus sinks)"
} else { if (NCTL > 0) {
    plot ROWS using 1:3:2 with filledcurves lc rgb "#D55E00" title "excess: loss - control (distances >= L)", \
         ROWS using 1:2 with linespoints lw 2 pt 7 lc rgb "#0072B2" title "loss (full attention)", \
         ROWS using 1:3 with linespoints lw 2 pt 5 dt 2 lc rgb "#009E73" title "control (keys within L, plus sinks)"
} else {
    plot ROWS using 1:2 with linespoints lw 2 pt 7 lc rgb "#0072B2" title "loss (full attention; the table has no control)"
} } }
unset output
