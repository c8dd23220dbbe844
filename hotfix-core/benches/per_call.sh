#!/bin/bash
# The per-call table of BENCHMARKS.md from one build of the slot_call bench:
# instructions per call (callgrind.sh) and the median time ratio over
# processes (paired.sh), joined by row. From the workspace root:
#   hotfix-core/benches/per_call.sh [processes] [rounds]   (default 15 and 41)
# The bench is built with every function and loop aligned to 64 bytes (in
# target/aligned, leaving the normal build alone): a loop of 5 to 7 cycles
# gains or loses a whole cycle with where its branches fall, and with the
# default alignment that placement, not the code, decided the ratios.
# Set HOTFIX_ALIGNED=0 to time the default layout instead.
set -euo pipefail
here=$(dirname "$0")
if [ "${HOTFIX_ALIGNED:-1}" != 0 ]; then
    export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target/aligned}
    export RUSTFLAGS="${RUSTFLAGS:-} -C llvm-args=-align-all-functions=6 -C llvm-args=-align-loops=64"
fi
counts=$(mktemp)
trap 'rm -f "$counts"' EXIT
"$here/callgrind.sh" 1000000 >"$counts"
"$here/paired.sh" "${1:-15}" "${2:-41}" | python3 -c '
import sys
counts = dict(line.split() for line in open(sys.argv[1]))
for line in sys.stdin:
    cells = [c.strip() for c in line.split("|")]
    if len(cells) < 5 or not cells[1].startswith("`"):
        if line.startswith("| row"):
            line = "| row | instructions per call (loop included) " + line[len("| row "):]
        elif line.startswith("| ---"):
            line = "| --- | ---: " + line[len("| --- "):]
        print(line, end="")
        continue
    row = cells[1].strip("`")
    print("| " + cells[1] + " | " + counts.get(row, "") + " |" + "|".join(line.split("|")[2:]), end="")
' "$counts"
