# pe-fig-usage.gp: how much each head uses each RoPE pair (Barbero et al.,
# "Round and Round We Go", Figure 3 style): a heat map per layer, RoPE pair
# (x, 0 = highest frequency) by head (y), colour = the pair's share of the
# head's summed pair norms (or its mean norm), one panel per layer, with the
# 2 pi / L edge marked: a dashed line after the last pair whose theta >=
# 2 pi / L (the hf/act edge; hf pairs turn at least once within L).
#
#   gnuplot -c scripts/pe-fig-usage.gp TABLE OUT [q|k] [share|norm_mean] [LAYERS=LIST] [L=N]
#
# TABLE  a usage table of pedecomp (-t usage; format gnuplot or tsv).
#        Columns are used by NUMBER:
#          1 layer  2 head (query head for q rows, key head for k rows)
#          3 kv_head  4 tensor (q, k)  5 component (pair index)  6 theta
#          7 class  8 norm_mean  9 share
#        Each row is a cell: x = column 5, y = column 2, colour = column 9
#        (share) or 8 (norm_mean); heads the table lacks are left blank.
#        The colour scale is shared by every panel: for share, blue below the
#        uniform share 1/P (P pairs), white at it, red above, symmetric about
#        it out to the value drawn farthest from it (so small differences
#        show as strong colours: read the box); for norm_mean, white at 0 to
#        dark at the largest value drawn.  The edge is worked out here
#        from column 6 and L (column 7 is not read: L=N moves the edge); with
#        thetas that do not fall with the pair index, hf pairs may lie on
#        both sides of it (each panel's title lists its hf pairs).  A share
#        of nan (a head whose pairs are all zero) is left blank.
#        Comment lines read: "# train_len: N" (0 = unknown), "# input: ...".
# OUT    the figure; its extension picks the terminal: .png (pngcairo),
#        .svg (svg), .pdf (pdfcairo), .txt (dumb: a text rendering, without
#        the colours).
# q|k    the query rows (default), one row per query head, or the key rows,
#        one row per key head.
# share|norm_mean  the colour (default share).
# LAYERS=LIST  the layers to draw, as in pedecomp -l: indices and ranges,
#        "0,2,5-7" (default: every layer of the table).  One figure holds at
#        most 8 panels (a grid of up to 2 x 4): a longer LIST is refused, and
#        a table of more than 8 layers without LAYERS= draws its first 8 with
#        a warning on stderr (draw the others with a second call).
# L=N    training length for the edge (default: the table's train_len;
#        without either the figure is drawn without the edge, with a
#        warning on stderr).
#
# Exit status: 0 done; 1 unreadable or unsuitable table, a LAYERS layer not
# in it, or OUT's folder missing; 2 usage error (arguments, extension).
# Errors are one line on stderr.  Needs sh and awk (the table is read with
# awk).

ME = "pe-fig-usage"
USAGE = "usage: gnuplot -c pe-fig-usage.gp TABLE OUT.{png,svg,pdf,txt} [q|k] [share|norm_mean] [LAYERS=LIST] [L=N]"
MAXPANELS = 8

# ---------------------------------------------------------------- arguments
if (ARGC < 2) { print USAGE; exit status 2 }
TABLE = ARG1
OUT = ARG2

# shq(s): s quoted for sh (single quotes; a ' inside becomes '\'').
esc(s) = strstrt(s, "'") == 0 ? s : s[1:strstrt(s, "'") - 1] . "'\\''" . esc(s[strstrt(s, "'") + 1:])
shq(s) = "'" . esc(s) . "'"
alldig(s) = strlen(s) == 0 ? 1 : (strstrt("0123456789", s[1:1]) > 0 ? alldig(s[2:]) : 0)
isuint(s) = strlen(s) > 0 && alldig(s)

TENSOR = ""
VALUE = ""
LARG = ""
LAYERSARG = ""
do for [i = 3:ARGC] {
    a = value(sprintf("ARG%d", i))
    if (strstrt(a, "L=") == 1) {
        LARG = a[3:]
        if (!isuint(LARG) || LARG + 0 < 1) { print ME . ": L=" . LARG . ": not a positive integer"; exit status 2 }
    } else {
        if (strstrt(a, "LAYERS=") == 1) {
            LAYERSARG = a[8:]
            if (LAYERSARG eq "") { print ME . ": LAYERS=: an empty list"; exit status 2 }
        } else {
            if ((a eq "q" || a eq "k") && TENSOR eq "") {
                TENSOR = a
            } else {
                if ((a eq "share" || a eq "norm_mean") && VALUE eq "") {
                    VALUE = a
                } else {
                    print USAGE; exit status 2
                }
            }
        }
    }
}
if (TENSOR eq "") { TENSOR = "q" }
if (VALUE eq "") { VALUE = "share" }
VCOL = VALUE eq "share" ? 9 : 8

# LAYERS=LIST expanded by awk to "0 2 5 6 7", or "!" when malformed.
SELLAYERS = ""
if (LAYERSARG ne "") {
    SELLAYERS = system("awk -v s=" . shq(LAYERSARG) . " 'BEGIN { n = split(s, a, \",\"); o = \"\"; " . \
        "for (i = 1; i <= n; i++) { if (a[i] ~ /^[0-9]+$/) { lo = hi = a[i] + 0 } " . \
        "else if (a[i] ~ /^[0-9]+-[0-9]+$/) { split(a[i], b, \"-\"); lo = b[1] + 0; hi = b[2] + 0; if (lo > hi) { print \"!\"; exit } } " . \
        "else { print \"!\"; exit } for (l = lo; l <= hi && c < 1000; l++) if (!(l in seen)) { seen[l] = 1; c++; o = o (o == \"\" ? \"\" : \" \") l } } " . \
        "print (n ? o : \"!\") }'")
    if (SELLAYERS eq "!") { print ME . ": LAYERS=" . LAYERSARG . ": not a list of layer indices and ranges (as 0,2,5-7)"; exit status 2 }
    if (words(SELLAYERS) > MAXPANELS) { print ME . ": LAYERS=" . LAYERSARG . ": more than " . MAXPANELS . " layers; one figure holds at most " . MAXPANELS . " panels"; exit status 2 }
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
ROWS = '/^#/ || NF < 9 || $1 !~ /^[0-9]+$/ { next } '

# Pass 1: header, train_len, input names, the layers holding rows of the
# tensor (sorted).
eval(AWK("-v tensor=" . TENSOR, \
    '/^# train_len: / { if (tl == "") tl = substr($0, 14); next } ' . \
    '/^# input: / { ni++; if (ni == 1) { inp = substr($0, 10); sub(/ \(T [0-9].*$/, "", inp) } next } ' . \
    '/^#/ { next } hdr == "" && NF { hdr = $0; next } ' . ROWS . \
    '{ nrow++ } $4 != tensor { next } !sl[$1]++ { la[++nl] = $1 + 0 } ' . \
    'END { if (ni > 1) inp = inp " + " (ni - 1) " more"; if (!ni) inp = "?"; ' . \
    '  for (i = 2; i <= nl; i++) { v = la[i]; for (j = i - 1; j >= 1 && la[j] > v; j--) la[j + 1] = la[j]; la[j + 1] = v } ' . \
    '  for (i = 1; i <= nl; i++) layers = layers (i > 1 ? " " : "") la[i]; ' . \
    'gs("HDR", hdr); gs("TLRAW", tl); gs("INPUT", inp); gs("LAYERS", layers); printf "NROWS = %d; ", nrow }'))
WANT = "layer\thead\tkv_head\ttensor\tcomponent\ttheta\tclass\tnorm_mean\tshare"
if (strstrt(HDR, WANT) != 1) {
    print ME . ": " . TABLE . ": not a pedecomp usage table, -t usage (its header starts '" . AWK("", '!/^#/ && NF { gsub(/\t/, " "); print substr($0, 1, 40); exit }') . "')"; exit status 1
}
if (NROWS == 0) { print ME . ": " . TABLE . ": the table has no rows"; exit status 1 }
if (LAYERS eq "") { print ME . ": " . TABLE . ": the table has no " . TENSOR . " rows"; exit status 1 }
has(list, x) = strstrt(" " . list . " ", " " . x . " ") > 0
if (SELLAYERS ne "") {
    do for [w in SELLAYERS] {
        if (!has(LAYERS, w)) { print ME . ": layer " . w . " is not in " . TABLE . " (layers: " . LAYERS . ")"; exit status 1 }
    }
    # In order.
    S = ""
    do for [w in LAYERS] { if (has(SELLAYERS, w)) { S = S . (S eq "" ? "" : " ") . w } }
    SELLAYERS = S
} else {
    SELLAYERS = LAYERS
    if (words(LAYERS) > MAXPANELS) {
        S = ""
        do for [j = 1:MAXPANELS] { S = S . (j > 1 ? " " : "") . word(LAYERS, j) }
        SELLAYERS = S
        print sprintf("%s: warning: %s has %d layers; drawing the first %d (%s to %s): give LAYERS=LIST for the others", \
            ME, TABLE, words(LAYERS), MAXPANELS, word(S, 1), word(S, MAXPANELS))
    }
}

TL = LARG ne "" ? LARG : TLRAW
if (!isuint(TL) || TL eq "0") { TL = "" }
if (TL eq "") { print ME . ": warning: " . TABLE . " gives no training length (no '# train_len:' line, or 0) and no L=N was given; the 2 pi/L edge is not marked" }

# Pass 2, the selected layers and tensor: per layer its first and last
# head (HLO_l, HHI_l), its largest pair (PMAX_l), its hf pairs (HF_l, a range
# list) and the edge (EDGE_l: the last pair with theta >= 2 pi / L, -1 for
# none); overall the largest value drawn (VMAX), the largest distance of a
# value from the uniform share 1 / (PMAXALL + 1) (DEV) and the last pair.
eval(AWK("-v tensor=" . TENSOR . " -v col=" . VCOL . " -v L=" . (TL ne "" ? TL : "0") . " -v sel=" . shq(SELLAYERS), \
    'BEGIN { n = split(sel, a, " "); for (i = 1; i <= n; i++) want[a[i]] = 1 } ' . ROWS . \
    '$4 != tensor || !($1 in want) { next } ' . \
    '{ l = $1; h = $2 + 0; p = $5 + 0; if (!(l in hlo) || h < hlo[l]) hlo[l] = h; if (!(l in hhi) || h > hhi[l]) hhi[l] = h; ' . \
    '  if (!(l in pmax) || p > pmax[l]) pmax[l] = p; ' . \
    '  if (!((l, p) in th)) { th[l, p] = $6 + 0 } v = $col; if (v != "nan") { if (!nv++ || v + 0 > vmax) vmax = v + 0; if (nv == 1 || v + 0 < vmin) vmin = v + 0 } } ' . \
    'END { for (l in pmax) { e = -1; hf = ""; for (p = 0; p <= pmax[l]; p++) if (((l, p) in th) && L > 0 && th[l, p] >= 6.283185307179586 / L) ' . \
    '  { e = p; hf = hf " " p } printf "EDGE_%s = %d; PMAX_%s = %d; HLO_%s = %d; HHI_%s = %d; ", l, e, l, pmax[l], l, hlo[l], l, hhi[l]; ' . \
    '  gs("HF_" l, range(substr(hf, 2))); if (pmax[l] > pm) pm = pmax[l] } ' . \
    '  u = 1 / (pm + 1); d = vmax - u; if (u - vmin > d) d = u - vmin; ' . \
    '  printf "VMAX = %.6g; DEV = %.6g; PMAXALL = %d", (vmax > 0 ? vmax : 1), (d > 0 ? d : 0.5 * u), pm }'))

# The cells of one layer, columns: 1 pair  2 head  3 value.
EXTRACT = ROWS . '$4 == tensor && $1 == layer { print $5, $2, $col }'
DATA(l) = "< awk -F '\t' -v tensor=" . TENSOR . " -v col=" . VCOL . " -v layer=" . l . " '" . EXTRACT . "' " . Q

# ------------------------------------------------------------------ figure
NP = words(SELLAYERS)
NCOLS = NP <= 3 ? NP : (NP == 4 ? 2 : (NP <= 6 ? 3 : 4))
NROWSP = (NP + NCOLS - 1) / NCOLS

if (EXT eq "png") { set terminal pngcairo size 1100,650 noenhanced font "sans,11" }
if (EXT eq "svg") { set terminal svg size 1100,650 noenhanced dynamic font "sans,11" }
if (EXT eq "pdf") { set terminal pdfcairo size 8in,4.7in noenhanced font "sans,9" }
if (EXT eq "txt") { set terminal dumb size 110,34 noenhanced }

WHO = TENSOR eq "q" ? "queries, one row per query head" : "keys, one row per key head"
UNIFORM = 1.0 / (PMAXALL + 1)
WHAT = VALUE eq "share" ? sprintf("colour = share of the head's summed pair norms (white: uniform 1/%d = %.3g)", PMAXALL + 1, UNIFORM) \
                        : "colour = mean norm of the pair over tokens"
TITLE = sprintf("%s: RoPE pair usage, %s\n%s\n%s", INPUT, WHO, WHAT, \
    TL ne "" ? sprintf("dashed line: 2 pi / L, L = %s: the pairs left of it (hf) turn at least once within L", TL) \
             : "L unknown: the 2 pi / L edge is not marked")
# The panels fill the left of the figure (margins in screen units: left,
# right, bottom, top), the colour box stands right of them (not in text).
PR = EXT eq "txt" ? 0.97 : 0.86
PT = EXT eq "txt" ? 0.84 : 0.80
set output OUT
set multiplot layout NROWSP, NCOLS title TITLE noenhanced \
    margins screen 0.07, PR, 0.11, PT spacing screen (EXT eq "txt" ? 0.06 : 0.05), (EXT eq "txt" ? 0.16 : 0.13)
# share: blue below the uniform share, white at it, red above, symmetric;
# norm_mean: white at 0 to dark brown at the largest norm.
if (VALUE eq "share") {
    set palette defined (-1 "#2166ac", -0.5 "#92c5de", 0 "#f7f7f7", 0.5 "#f4a582", 1 "#b2182b")
    set cbrange [UNIFORM - DEV:UNIFORM + DEV]
    set cblabel "share of the head's pair norms"
} else {
    set palette defined (0 "#ffffff", 0.2 "#fee391", 0.45 "#fe9929", 0.75 "#cc4c02", 1 "#662506")
    set cbrange [0:VMAX]
    set cblabel "mean pair norm"
}
if (EXT eq "txt") { unset colorbox } else { set colorbox user origin screen PR + 0.03, screen 0.11 size screen 0.02, screen PT - 0.11 }
set tics front
XLABEL = EXT eq "txt" ? "pair i, 0 = highest freq" : (NCOLS >= 4 ? "pair i (0 = highest freq.)" : "RoPE pair i (0 = highest frequency)")
YLABEL = TENSOR eq "q" ? "query head" : "key head"
PLOT = 'plot DATA(l) using 1:2:($1 - 0.5):($1 + 0.5):($2 - 0.5):($2 + 0.5):3 with boxxyerror fs solid 1.0 noborder lc palette notitle'
do for [j = 1:NP] {
    l = word(SELLAYERS, j)
    PM = value("PMAX_" . l)
    HLO = value("HLO_" . l)
    HHI = value("HHI_" . l)
    E = value("EDGE_" . l)
    HF = value("HF_" . l)
    # A strip above the heads (no cells), a fraction SF of the panel's
    # height, holds the edge's label.
    SF = EXT eq "txt" ? (NROWSP > 1 ? 0.2 : 0.1) : 0.08
    STRIP = (HHI - HLO + 1) * SF / (1 - SF)
    set xrange [-0.5:PM + 0.5]
    set yrange [HLO - 0.5:HHI + 0.5 + STRIP]
    if (PM < 24) { set xtics 1 } else { set xtics autofreq }
    if (HHI - HLO < 24) { set ytics HLO, 1, HHI } else { set ytics HLO, 4, HHI }
    set title sprintf("layer %s", l) . (TL ne "" ? (HF ne "" ? ": hf pairs " . HF : ": no hf pair") : "") noenhanced
    if (j > NP - NCOLS) { set xlabel XLABEL } else { unset xlabel }
    if ((j - 1) % NCOLS == 0 && EXT ne "txt") { set ylabel YLABEL } else { unset ylabel }
    unset arrow 1
    unset label 1
    if (TL ne "") {
        set arrow 1 from E + 0.5, graph 0 to E + 0.5, graph 1 nohead lc rgb "black" dt 2 lw 2.5 front
        if (E >= PM) {
            set label 1 "2pi/L" at E + 0.5, HHI + 0.5 + STRIP / 2 offset character (EXT eq "txt" ? -2 : -0.5), 0 right front
        } else {
            set label 1 "2pi/L" at E + 0.5, HHI + 0.5 + STRIP / 2 offset character (EXT eq "txt" ? 2 : 0.5), 0 left front
        }
    }
    eval(PLOT)
    unset colorbox
}
unset multiplot
unset output
