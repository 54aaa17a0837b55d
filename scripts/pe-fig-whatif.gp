# pe-fig-whatif.gp: what each positional remedy does to a dumped model, as
# peanalyze -t whatif estimates it: the distortion it makes within the
# training length (KL of the model's own attention to the remedy's, on the
# in-train rows) against the attention it still puts on distances never seen
# in training, beyond L.  One point per head and spec; the large marker is
# the spec's mean over every head.  A remedy worth applying without
# fine-tuning sits low (it leaves the trained positions alone) and to the
# left (it moves attention off the unseen distances).  The numbers are a
# layer-local estimate (man petools-whatif(7)): the loss of pe-dump --pe
# forward passes (pe-fig-loss.gp) is the real effect.
#
#   gnuplot -c scripts/pe-fig-whatif.gp TABLE OUT
#
# TABLE  a whatif table of peanalyze (-t whatif; format gnuplot or tsv).
#        Columns are found by NAME in its header: pe, kl_in, unseen_mass
#        (other columns are ignored); the "# input:" line names the input.
# OUT    the figure; its extension picks the terminal: .png (pngcairo),
#        .svg (svg), .pdf (pdfcairo), .txt (dumb: a text rendering).
#
# Exit status: 0 done; 1 unreadable or unsuitable table, or OUT's folder
# missing; 2 usage error (arguments, extension).  Errors are one line on
# stderr.  Needs sh and awk.

ME = "pe-fig-whatif"
USAGE = "usage: gnuplot -c pe-fig-whatif.gp TABLE OUT.{png,svg,pdf,txt}"

# ---------------------------------------------------------------- arguments
if (ARGC != 2) { print USAGE; exit status 2 }
TABLE = ARG1
OUT = ARG2

# shq(s): s quoted for sh (single quotes; a ' inside becomes '\'').
esc(s) = strstrt(s, "'") == 0 ? s : s[1:strstrt(s, "'") - 1] . "'\\''" . esc(s[strstrt(s, "'") + 1:])
shq(s) = "'" . esc(s) . "'"

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
# The per-head rows (before the first section), reduced to "unseen kl" of
# one spec; the specs in the order of the table.
AWKQ = 'function gs(n, s) { gsub(q, q q, s); printf "%s = %s%s%s; ", n, q, s, q } '
AWK(prog) = system("awk -F '\t' -v q=\"'\" '" . AWKQ . prog . "' " . Q)
COLS = '/^# section: / { exit } /^#/ { next } !hdr && NF { for (i = 1; i <= NF; i++) c[$i] = i; hdr = 1; next } ' . \
       '!NF || !c["pe"] || !c["kl_in"] || !c["unseen_mass"] || $c["kl_in"] == "nan" || $c["unseen_mass"] == "nan" { next } '
eval(AWK( \
    '/^# input: / { ni++; if (ni == 1) { inp = substr($0, 10); sub(/ \(T [0-9].*$/, "", inp) } next } ' . \
    '/^# [a-z]+ table: / { if (tab == "") tab = $0; next } ' . \
    COLS . \
    '{ n++; if (!($c["pe"] in seen)) { seen[$c["pe"]] = 1; pes = pes (npe++ ? " " : "") $c["pe"] } ' . \
    '  x = $c["unseen_mass"] + 0; y = $c["kl_in"] + 0; if (x > xmax) xmax = x; if (y > ymax) ymax = y } ' . \
    'END { if (ni > 1) inp = inp " + " (ni - 1) " more"; if (!ni) inp = "?"; ' . \
    'gs("TAB", tab); gs("INPUT", inp); gs("PES", pes); ' . \
    'printf "NROWS = %d; NPE = %d; XMAX = %.10g; YMAX = %.10g", n, npe, xmax, ymax }'))
if (TAB ne "# peanalyze table: whatif") {
    print ME . ": " . TABLE . ": not a peanalyze whatif table"; exit status 1
}
if (NROWS == 0) { print ME . ": " . TABLE . ": the table has no rows with both numbers"; exit status 1 }
HEADS(p) = "< awk -F '\t' -v want=" . shq(p) . " '" . COLS . "$c[\"pe\"] == want { print $c[\"unseen_mass\"], $c[\"kl_in\"] }' " . Q
MEAN(p) = "< awk -F '\t' -v want=" . shq(p) . " '" . COLS . "$c[\"pe\"] == want { x += $c[\"unseen_mass\"]; y += $c[\"kl_in\"]; n++ } END { if (n) print x / n, y / n }' " . Q

# ------------------------------------------------------------------ figure
if (EXT eq "png") { set terminal pngcairo size 1000,700 noenhanced font "sans,11" }
if (EXT eq "svg") { set terminal svg size 1000,700 noenhanced dynamic font "sans,11" }
if (EXT eq "pdf") { set terminal pdfcairo size 7.5in,5.2in noenhanced font "sans,9" }
if (EXT eq "txt") { set terminal dumb size 110,40 noenhanced }

set title sprintf("%s: what each positional remedy does, head by head (layer-local estimate)\nlow: leaves the trained positions alone; left: less attention on distances never seen in training", INPUT) noenhanced
set xlabel "attention on unseen distances beyond L (mean over beyond-L rows)"
set ylabel "distortion within L: KL(p_rope || p_spec), nats"
set xrange [0:XMAX > 0 ? 1.05 * XMAX : 1]
set yrange [0:YMAX > 0 ? 1.08 * YMAX : 1]
set grid lc rgb "#dddddd"
set key outside bottom center horizontal maxrows 3 noenhanced
set output OUT
plot for [i = 1:NPE] HEADS(word(PES, i)) using 1:2 with points pt 7 ps 0.6 lc i title word(PES, i), \
     for [i = 1:NPE] MEAN(word(PES, i)) using 1:2 with points pt 9 ps 2.5 lc i notitle
unset output
