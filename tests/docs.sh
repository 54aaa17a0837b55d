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
