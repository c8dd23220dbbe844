#!/bin/sh
# Instructions per call of each row of the slot_call bench, counted by
# callgrind (independent of machine load). From the workspace root:
#   hotfix-core/benches/callgrind.sh [calls]      (default 1000000)
# Prints `row instructions-per-call`: the inclusive count of the row's
# function (`callgrind_row_*`, its loop included) divided by the calls.
set -eu
n=${1:-1000000}
bin=$(cargo bench -p hotfix-core --bench slot_call --no-run --message-format=json 2>/dev/null \
    | grep -o '"executable":"[^"]*slot_call[^"]*"' | tail -1 | cut -d'"' -f4)
out=target/callgrind.slot_call.out
HOTFIX_CALLGRIND=$n valgrind --tool=callgrind --callgrind-out-file="$out" "$bin" >/dev/null 2>&1
callgrind_annotate --inclusive=yes "$out" \
    | grep 'callgrind_row_' \
    | sed 's/,//g' \
    | awk -v n="$n" '{ name = $NF; sub(/.*:/, "", name); printf "%s %.2f\n", name, $1 / n }'
