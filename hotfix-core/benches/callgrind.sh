#!/bin/bash
# Instructions per call of each row of the slot_call bench, counted by
# callgrind (independent of machine load). From the workspace root:
#   hotfix-core/benches/callgrind.sh [calls]      (default 1000000)
# Prints `row instructions-per-call`: the inclusive count of the row's
# function (`callgrind_row_<row>`, its loop included) divided by the calls.
# `--smc-check=all`: the bench rewrites an entry, and valgrind must see it.
set -euo pipefail
n=${1:-1000000}
bin=$(cargo bench -p hotfix-core --bench slot_call --no-run --message-format=json 2>/dev/null \
    | grep -o '"executable":"[^"]*slot_call[^"]*"' | tail -1 | cut -d'"' -f4)
[ -x "$bin" ] || { echo "the slot_call bench did not build" >&2; exit 1; }
out=target/callgrind.slot_call.out
HOTFIX_CALLGRIND=$n valgrind --tool=callgrind --smc-check=all --callgrind-out-file="$out" "$bin" >/dev/null 2>&1
callgrind_annotate --inclusive=yes "$out" \
    | grep -o '^ *[0-9,]* ([^)]*) *[^ ]*callgrind_row_[a-z_]*' \
    | sed 's/,//g; s/(.*callgrind_row_/ /' \
    | awk -v n="$n" '{ printf "%s %.2f\n", $2, $1 / n }'
