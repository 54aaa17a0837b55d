#!/bin/sh
# The documentation: every man page renders without groff warnings, and
# every example line of a man page's EXAMPLES section runs (status 0) from
# the repository root, as a reader would type it.
#
#   tests/docs.sh BUILD_DIR        (run by tests/run.sh)
. tests/lib.sh
cd "$TOP" || exit 1

for page in man/*.[1-8]; do
    [ -f "$page" ] || continue
    n=$(basename "$page")
    warn=$(groff -man -Tutf8 -ww -z "$page" 2>&1)
    if [ -z "$warn" ]; then
        ok "man $n renders without groff warnings"
    else
        notok "man $n renders without groff warnings" "$(echo "$warn" | head -n 2 | tr '\n' ' ')"
    fi
done

# Examples: lines of the EXAMPLES section that start with a petools command,
# with the man escapes for '-', '\' and quotes undone.
for page in man/*.1 man/*.7; do
    [ -f "$page" ] || continue
    n=$(basename "$page")
    sed -n '/^\.SH EXAMPLES/,/^\.SH /p' "$page" |
        sed -e 's/\\-/-/g' -e 's/\\e/\\/g' -e "s/\\\\(aq/'/g" -e 's/\\(dq/"/g' -e 's/\\&//g' |
        grep -E '^(pedecomp|peanalyze|peentropy|pe-dump) ' >"$TMP/examples"
    count=0
    while IFS= read -r line; do
        count=$((count + 1))
        if (PATH="$BUILD:$TOP/scripts:$PATH" sh -c "$line" >"$TMP/ex.out" 2>"$TMP/ex.err"); then
            ok "$n example runs: $line"
        else
            notok "$n example runs: $line" "$(head -n 1 "$TMP/ex.err")"
        fi
    done <"$TMP/examples"
    if [ "$count" -gt 0 ]; then ok "$n has $count runnable examples"; else notok "$n has runnable examples"; fi
done

# The README's worked example of a new table (Contributing): its code, put
# into a copy of peanalyze.c with the two lines the text asks for, builds
# against the library and prints one row per head with the two columns.
sed -n '/^## Contributing/,/^Where things live/p' README.md | sed -n '/^```c$/,/^```$/p' | sed '1d;$d' >"$TMP/norms.c"
grep '^    \[TABLE_NORMS\]' "$TMP/norms.c" >"$TMP/norms-entry.c"
grep -v '^    \[TABLE_NORMS\]\|^/\* in tables' "$TMP/norms.c" >"$TMP/norms-code.c"
awk -v code="$TMP/norms-code.c" -v entry="$TMP/norms-entry.c" '
    /^typedef enum \{ TABLE_PROFILE/ { sub(/ \} table_kind;/, ", TABLE_NORMS } table_kind;") }
    /^static const char \*const table_names\[\]/ { sub(/, NULL\}/, ", \"norms\", NULL}") }
    /^static const pe_table_def tables\[\] = \{/ {
        while ((getline l < code) > 0) print l
        print
        while ((getline l < entry) > 0) print l
        next
    }
    { print }' src/peanalyze.c >"$TMP/peanalyze-norms.c"
if [ -s "$TMP/norms-entry.c" ] && [ -f "$BUILD/flags" ] &&
    $(cat "$BUILD/flags") -o "$TMP/peanalyze-norms" "$TMP/peanalyze-norms.c" "$BUILD/libpetools.a" \
        $(pkg-config --libs hdf5 fftw3 lapacke openblas) -lpthread -lm >"$TMP/cc.err" 2>&1; then
    ok "README Contributing: the norms table builds into peanalyze"
    run "$TMP/peanalyze-norms" -t norms -f tsv "$FIX/attn.h5"
    rows=$(data "$TMP/out" | awk -F'\t' 'NR > 1 && $4 > 0 && $5 > 0' | wc -l)
    heads=$("$BUILD/peanalyze" -t heads -f tsv "$FIX/attn.h5" | data /dev/stdin | awk 'NR > 1' | wc -l)
    if [ "$status" -eq 0 ] && grep -q "^# peanalyze table: norms" "$TMP/out" &&
        data "$TMP/out" | head -n 1 | grep -q "q_rms	k_rms" && [ "$rows" -eq "$heads" ] && [ "$rows" -gt 0 ]; then
        ok "README Contributing: peanalyze -t norms prints q_rms and k_rms for each of the $heads heads"
    else
        notok "README Contributing: peanalyze -t norms runs" "status $status, $rows rows of $heads: $(head -n 1 "$TMP/err")"
    fi
else
    notok "README Contributing: the norms table builds into peanalyze" "$(head -n 3 "$TMP/cc.err" | tr '\n' ' ')"
fi
