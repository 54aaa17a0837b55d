# pe-fig-damage.gp: what changes beyond the training length, layer by layer
# (the depth profile of HoPE Figure 2c): the number of heads flagged ood
# (bars, left axis) and the mean shifts of the heads (lines, right axis):
# |entropy beyond - entropy in-train|, |sink mass beyond - sink mass
# in-train| and the logit exceedance.
#
#   gnuplot -c scripts/pe-fig-damage.gp TABLE OUT [L=N]
#
# TABLE  a layers table of peanalyze (-t layers; format gnuplot or tsv).
#        Columns are used by NUMBER:
#          1 layer  2 heads  3 ood_heads  4 mean_entropy_shift
#          5 mean_sink_shift  6 mean_exceedance
#        Comment lines read: "# train_len: N", "# input: ...",
#        "# thresholds: ..." (shown under the title).
# OUT    the figure; its extension picks the terminal: .png (pngcairo),
#        .svg (svg), .pdf (pdfcairo), .txt (dumb: a text rendering).
# L=N    training length to name in the title (default: the table's
#        train_len; without either, with a warning on stderr).
#
# Exit status: 0 done; 1 unreadable or unsuitable table, or OUT's folder
# missing; 2 usage error (arguments, extension).  Errors are one line on
# stderr.  Needs sh and awk.

ME = "pe-fig-damage"
USAGE = "usage: gnuplot -c pe-fig-damage.gp TABLE OUT.{png,svg,pdf,txt} [L=N]"

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
AWKQ = 'function gs(n, s) { gsub(q, q q, s); printf "%s = %s%s%s; ", n, q, s, q } '
AWK(prog) = system("awk -F '\t' -v q=\"'\" '" . AWKQ . prog . "' " . Q)
eval(AWK( \
    '/^# train_len: / { if (tl == "") tl = substr($0, 14); next } ' . \
    '/^# input: / { ni++; if (ni == 1) { inp = substr($0, 10); sub(/ \(T [0-9].*$/, "", inp) } next } ' . \
    '/^# thresholds: / { thr = substr($0, 15); sub(/, u-shape.*$/, "", thr); next } ' . \
    '/^#/ { next } hdr == "" && NF { hdr = $0; next } ' . \
    'NF < 6 || $1 !~ /^[0-9]+$/ { next } ' . \
    '{ n++; if (n == 1 || $1 < l0) l0 = $1; if (n == 1 || $1 > l1) l1 = $1; if ($2 > hmax) hmax = $2; ' . \
    '  for (i = 4; i <= 6; i++) if ($i != "nan" && $i + 0 > smax) smax = $i + 0 } ' . \
    'END { if (ni > 1) inp = inp " + " (ni - 1) " more"; if (!ni) inp = "?"; ' . \
    'gs("HDR", hdr); gs("TLRAW", tl); gs("INPUT", inp); gs("THR", thr); ' . \
    'printf "NROWS = %d; L0 = %d; L1 = %d; HMAX = %d; SMAX = %.10g", n, l0, l1, hmax, smax }'))
WANT = "layer\theads\tood_heads\tmean_entropy_shift\tmean_sink_shift\tmean_exceedance"
if (strstrt(HDR, WANT) != 1) {
    print ME . ": " . TABLE . ": not a peanalyze layers table (its header starts '" . AWK('!/^#/ && NF { gsub(/\t/, " "); print substr($0, 1, 40); exit }') . "')"; exit status 1
}
if (NROWS == 0) { print ME . ": " . TABLE . ": the table has no rows"; exit status 1 }

TL = LARG ne "" ? LARG : TLRAW
if (!isuint(TL) || TL eq "0") { TL = "" }
if (TL eq "") { print ME . ": warning: " . TABLE . " gives no training length (no '# train_len:' line, or 0) and no L=N was given; L is not named" }
BEYOND = TL ne "" ? sprintf("beyond L = %s", TL) : "beyond the training length"
ROWS = "< awk -F '\t' '/^#/ || NF < 6 || $1 !~ /^[0-9]+$/ { next } { print }' " . Q

# ------------------------------------------------------------------ figure
if (EXT eq "png") { set terminal pngcairo size 1000,600 noenhanced font "sans,11" }
if (EXT eq "svg") { set terminal svg size 1000,600 noenhanced dynamic font "sans,11" }
if (EXT eq "pdf") { set terminal pdfcairo size 7.5in,4.5in noenhanced font "sans,9" }
if (EXT eq "txt") { set terminal dumb size 110,34 noenhanced }

set title sprintf("%s: the damage %s by layer\n(ood: %s)", INPUT, BEYOND, THR) noenhanced
set xlabel "layer"
YLABEL = sprintf("heads flagged ood (of %d)", HMAX)
Y2LABEL = "mean over the heads"
set ylabel YLABEL
set y2label Y2LABEL
if (EXT eq "txt") { unset ylabel; unset y2label; set title sprintf("%s: the damage %s by layer", INPUT, BEYOND) }
set xrange [L0 - 0.6:L1 + 0.6]
set xtics 1 nomirror
set yrange [0:HMAX > 0 ? HMAX * 1.15 : 1]
if (HMAX <= 12) { set ytics 1 nomirror } else { set ytics nomirror }
set y2range [0:SMAX > 0 ? SMAX * 1.15 : 1]
set y2tics nomirror
set grid ytics lc rgb "#dddddd"
set style fill solid 0.5 noborder
set boxwidth 0.6
set key outside bottom center horizontal maxrows 2 noenhanced
# Under the x label, which the key would otherwise cover.
set xlabel offset 0, 0.5
set bmargin 6
if (EXT eq "txt") { set key outside bottom center vertical Left reverse noenhanced; set bmargin 7 }
set output OUT
plot ROWS using 1:3 axes x1y1 with boxes lc rgb "#CC79A7" title (EXT eq "txt" ? "heads flagged ood (left axis)" : "heads flagged ood"), \
     ROWS using 1:4 axes x1y2 with linespoints lw 2 pt 7 lc rgb "#0072B2" title "mean |entropy shift| (right)", \
     ROWS using 1:5 axes x1y2 with linespoints lw 2 pt 5 lc rgb "#E69F00" title "mean |sink mass shift| (right)", \
     ROWS using 1:6 axes x1y2 with linespoints lw 2 pt 9 lc rgb "#009E73" title "mean logit exceedance (right)"
unset output
