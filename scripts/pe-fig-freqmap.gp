# pe-fig-freqmap.gp: the wavelength of each RoPE pair against its index, on a
# log axis, coloured by class, with the training length L (and the target
# length of a scaling what-if) as horizontal lines.  When the table holds a
# --scale what-if, the scaled wavelengths are a second series (triangles,
# shifted right by a quarter pair) coloured by their classes at the target
# length.  The right axis reads the same heights as turns within L.
#
#   gnuplot -c scripts/pe-fig-freqmap.gp TABLE OUT [L=N]
#
# TABLE  a frequency table of pedecomp (-t freqs [--scale SPEC]; format
#        gnuplot or tsv).  Columns are used by NUMBER:
#          1 component (pair index)  2 theta  3 wavelength  4 rho
#          5 max_angle_train  6 class  [with --scale: 7 theta_scaled
#          8 rho_scaled  9 class_scaled]
#        y = column 3, or 2*pi/column 7 for the scaled series.  A pair with
#        theta 0 (class nope; wavelength printed "nan") is drawn at the
#        height labelled "inf" near the top of the figure.  Comment lines
#        read: "# train_len: N" (0 = unknown), "# input: ..." (or, without
#        one, "# rope_theta:" and "# rotary_dim:"), and "# scale: SPEC
#        (target length N, ...".
# OUT    the figure; its extension picks the terminal: .png (pngcairo),
#        .svg (svg), .pdf (pdfcairo), .txt (dumb: a text rendering).
# L=N    training length to mark (default: the table's train_len; without
#        either the figure is drawn unmarked, with a warning on stderr).
#
# Exit status: 0 done; 1 unreadable or unsuitable table, no pair in it, or
# OUT's folder missing; 2 usage error (arguments, extension).  Errors are
# one line on stderr.  Needs sh and awk (the table is read with awk).

ME = "pe-fig-freqmap"
USAGE = "usage: gnuplot -c pe-fig-freqmap.gp TABLE OUT.{png,svg,pdf,txt} [L=N]"

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

# ------------------------------------------------------------------- table
Q = shq(TABLE)
FILES = system("r=; test -f " . Q . " && test -r " . Q . " && r=t; d=$(dirname " . shq(OUT) . ") && " . \
    "test -d \"$d\" && test -w \"$d\" && r=${r}o; echo \"$r\"")
if (strstrt(FILES, "t") == 0) { print ME . ": cannot read table '" . TABLE . "'"; exit status 1 }
if (strstrt(FILES, "o") == 0) { print ME . ": OUT '" . OUT . "': its folder does not exist or is not writable"; exit status 1 }

# awk over the table (fields split at tabs): its output is gnuplot code that
# is run with eval.  A program must hold no single quote (q is one).
AWKQ = 'function gs(n, s) { gsub(q, q q, s); printf "%s = %s%s%s; ", n, q, s, q } '
AWK(vars, prog) = system("awk -F '\t' -v q=\"'\" " . vars . " '" . AWKQ . prog . "' " . Q)
ROWS = '/^#/ || NF < 6 || $1 !~ /^[0-9]+$/ { next } '

# One pass: header, train_len, input (or base and rotary dims), the what-if's
# spec and target length (from "# scale: SPEC (target length N, ..."), the
# pairs, the classes present with their counts (N0_hf: trained, N1_hf:
# scaled), and the range of the finite wavelengths.
eval(AWK("", \
    '/^# train_len: / { if (tl == "") tl = substr($0, 14); next } ' . \
    '/^# input: / { ni++; if (ni == 1) { inp = substr($0, 10); sub(/ \(T [0-9].*$/, "", inp) } next } ' . \
    '/^# rope_theta: / { base = substr($0, 15); next } /^# rotary_dim: / { rd = substr($0, 15); next } ' . \
    '/^# scale: / { sc = substr($0, 10); spec = sc; sub(/ .*/, "", spec); t = sc; ' . \
    '  if (sub(/.*target length /, "", t)) sub(/[^0-9].*/, "", t); else t = ""; next } ' . \
    '/^#/ { next } hdr == "" && NF { hdr = $0; next } ' . ROWS . \
    '{ np++; if ($1 + 0 > pmax) pmax = $1 + 0; if (!n0[$6]++) cls = cls (cls == "" ? "" : " ") $6; ' . \
    '  if (NF >= 9 && !n1[$9]++) cls2 = cls2 (cls2 == "" ? "" : " ") $9; ' . \
    '  if ($2 + 0 > 0) { w = 6.283185307179586 / $2; if (!lo || w < lo) lo = w; if (w > hi) hi = w } ' . \
    '  if (NF >= 9 && $7 + 0 > 0) { w = 6.283185307179586 / $7; if (!lo || w < lo) lo = w; if (w > hi) hi = w } } ' . \
    'END { if (ni > 1) inp = inp " + " (ni - 1) " more"; if (!ni) inp = "rope_theta " base ", rotary_dim " rd; ' . \
    '  gs("HDR", hdr); gs("TLRAW", tl); gs("INPUT", inp); gs("SPEC", spec == "" ? "scaled" : spec); gs("TARGET", t); ' . \
    '  gs("CLS", cls); gs("CLS2", cls2); for (c in n0) printf "N0_%s = %d; ", c, n0[c]; ' . \
    '  for (c in n1) printf "N1_%s = %d; ", c, n1[c]; printf "NP = %d; PMAX = %d; WLO = %.6g; WHI = %.6g", np, pmax, lo, hi }'))
WANT = "component\ttheta\twavelength\trho\tmax_angle_train\tclass"
if (strstrt(HDR, WANT) != 1) {
    print ME . ": " . TABLE . ": not a pedecomp frequency table, -t freqs (its header starts '" . AWK("", '!/^#/ && NF { gsub(/\t/, " "); print substr($0, 1, 40); exit }') . "')"; exit status 1
}
SCALED = strstrt(HDR, WANT . "\ttheta_scaled\trho_scaled\tclass_scaled") == 1
if (NP == 0) { print ME . ": " . TABLE . ": the table has no pair (rotary_dim 0?)"; exit status 1 }
if (!SCALED) { TARGET = "" }

TL = LARG ne "" ? LARG : TLRAW
if (!isuint(TL) || TL eq "0") { TL = "" }
if (TL eq "") { print ME . ": warning: " . TABLE . " gives no training length (no '# train_len:' line, or 0) and no L=N was given; L is not marked" }

# y range: the finite wavelengths, L and the target length, with margins; a
# pair of theta 0 (nope) is drawn at YNOPE, a tic labelled "inf" above them.
has(list, x) = strstrt(" " . list . " ", " " . x . " ") > 0
YLO = WLO > 0 ? WLO : 1.0
YHI = WHI > 0 ? WHI : 10.0
if (TL ne "") { YLO = (TL + 0 < YLO) ? TL + 0 : YLO; YHI = (TL + 0 > YHI) ? TL + 0 : YHI }
if (TARGET ne "") { YHI = (TARGET + 0 > YHI) ? TARGET + 0 : YHI }
YLO = YLO / 2.0
YHI = YHI * 3.0
HASNOPE = has(CLS . " " . CLS2, "nope")
YNOPE = YHI * 3.0
if (HASNOPE) { YHI = YNOPE * 2.5 }

# The rows of one class, columns: 1 pair index (shifted right by 0.25 for the
# scaled series)  2 wavelength (YNOPE for theta 0).  which: 0 trained, 1 scaled.
EXTRACT = ROWS . \
    'which == 0 && $6 == cls { print $1, ($2 + 0 > 0 ? 6.283185307179586 / $2 : ynope) } ' . \
    'which == 1 && NF >= 9 && $9 == cls { print $1 + 0.25, ($7 + 0 > 0 ? 6.283185307179586 / $7 : ynope) }'
DATA(which, cls) = "< awk -F '\t' -v which=" . which . " -v cls=" . cls . " -v ynope=" . sprintf("%.6g", YNOPE) . " '" . EXTRACT . "' " . Q
NPC(which, cls) = value(sprintf("N%d_%s", which, cls))

# ------------------------------------------------------------------ figure
# Fixed class colours (Okabe-Ito), shared by every petools figure.
ccol(c) = c eq "hf" ? "#0072B2" : c eq "act" ? "#E69F00" : c eq "tlf" ? "#009E73" : \
          c eq "nope" ? "#CC79A7" : c eq "pass" ? "#777777" : "#56B4E9"
cdesc(c, len) = c eq "hf" ? ">= 1 turn in " . len : c eq "act" ? "0.5-1 turn in " . len : \
                c eq "tlf" ? "< 0.5 turn in " . len : c eq "nope" ? "theta 0: infinite, drawn at inf" : "class unknown"

if (EXT eq "png") { set terminal pngcairo size 1100,650 noenhanced font "sans,11" }
if (EXT eq "svg") { set terminal svg size 1100,650 noenhanced dynamic font "sans,11" }
if (EXT eq "pdf") { set terminal pdfcairo size 8in,4.7in noenhanced font "sans,9" }
if (EXT eq "txt") { set terminal dumb size 110,34 noenhanced }

WHAT = SCALED ? sprintf("\nwhat-if %s%s", SPEC, TARGET ne "" ? " (target length " . TARGET . ")" : "") : ""
set title sprintf("%s: RoPE wavelength by pair%s%s", INPUT, TL ne "" ? ", L = " . TL : "", WHAT) noenhanced
set xlabel "RoPE pair i (0 = highest frequency)"
YLABEL = "wavelength 2 pi / theta_i (tokens)"
set ylabel YLABEL
# dumb cannot rotate text: the y label goes above the top left corner.
if (EXT eq "txt") { unset ylabel; set tmargin 5; set title offset 0, 2; set label 9 YLABEL at screen 0, graph 1 offset character 1, character 2 left }
set logscale y
set format y "%g"
set yrange [YLO:YHI]
if (HASNOPE) { set ytics 1, 10, YNOPE / 2.0; set ytics add ("inf" YNOPE) }
set xrange [-0.6:PMAX + 0.6]
if (PMAX < 24) { set xtics 1 }
set grid xtics ytics mytics lc rgb "#dddddd"
set key inside top left opaque box lc rgb "#bbbbbb" noenhanced
if (TL ne "" && EXT ne "txt") {
    # Right axis: the same heights read as turns within L, rho = L / wavelength
    # (log rho = log L - log wavelength: a reversed log axis).
    set logscale y2
    set y2range [(TL + 0.0) / YLO:(TL + 0.0) / YHI]
    set y2tics format "%g"
    set y2label "turns within L = L / wavelength"
    set ytics nomirror
}
if (TL ne "") {
    set arrow 1 from graph 0, first TL + 0 to graph 1, first TL + 0 nohead lc rgb "black" dt 2 lw 2 front
    set label 1 sprintf("L = %s", TL) at graph 0.99, first TL + 0 offset 0, character 0.7 right front
}
if (SCALED && TARGET ne "") {
    set arrow 2 from graph 0, first TARGET + 0 to graph 1, first TARGET + 0 nohead lc rgb "#555555" dt 4 lw 2 front
    set label 2 sprintf("target = %s", TARGET) at graph 0.99, first TARGET + 0 offset 0, character 0.7 right front textcolor rgb "#555555"
}

# The plot command is assembled, then run (an empty "for [c in LIST]" still
# opens its data once in gnuplot 5.4).
add(p, part) = p . (p ne "" ? ", " : "") . part
plural(n) = n == 1 ? "" : "s"
P = ""
P = add(P, 'for [c in CLS] DATA(0, c) using 1:2 with points pt 7 ps 1.4 lc rgb ccol(c) ' . \
    'title sprintf("%s: %d pair%s (%s)", c, NPC(0, c), plural(NPC(0, c)), cdesc(c, "L"))')
if (SCALED) {
    P = add(P, 'for [c in CLS2] DATA(1, c) using 1:2 with points pt 9 ps 1.4 lc rgb ccol(c) ' . \
        'title sprintf("scaled %s: %d pair%s (%s)", c, NPC(1, c), plural(NPC(1, c)), cdesc(c, TARGET ne "" ? TARGET : "target"))')
}
if (TL ne "") {
    P = add(P, 'keyentry with lines lc rgb "black" dt 2 lw 2 title sprintf("L = %s (training length)", TL)')
}
if (SCALED && TARGET ne "") {
    P = add(P, 'keyentry with lines lc rgb "#555555" dt 4 lw 2 title sprintf("target length %s", TARGET)')
}
set output OUT
eval("plot " . P)
unset output
