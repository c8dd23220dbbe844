#!/bin/bash
# The slot_call bench's paired timing (HOTFIX_PAIRED) in several processes:
# each process places code, statics and the stack at other addresses (ASLR),
# and on this machine a row's loop lands on a whole number of cycles that
# changes with the placement, so one process is one sample. From the
# workspace root:
#   hotfix-core/benches/paired.sh [processes] [rounds]   (default 15 and 41)
# Prints, per row, the median over processes of its median ratio to its
# baseline within a process, with the lowest and highest process.
set -euo pipefail
procs=${1:-15}
rounds=${2:-41}
bin=$(cargo bench -p hotfix-core --bench slot_call --no-run --message-format=json 2>/dev/null \
    | grep -o '"executable":"[^"]*slot_call[^"]*"' | tail -1 | cut -d'"' -f4)
[ -x "$bin" ] || { echo "the slot_call bench did not build" >&2; exit 1; }
for _ in $(seq "$procs"); do
    HOTFIX_PAIRED=$rounds "$bin" | grep '^| `'
done | python3 -c '
import collections, statistics, sys
ratios, base, ns = collections.defaultdict(list), {}, collections.defaultdict(list)
for line in sys.stdin:
    cells = [c.strip() for c in line.split("|")]
    row = cells[1]
    ns[row].append(float(cells[2]))
    value, _, rest = cells[3].partition("x")
    ratios[row].append(float(value))
    base[row] = rest.strip()
print("| row | median ns/call | median ratio (baseline) | lowest – highest process |")
print("| --- | ---: | --- | --- |")
for row, v in ratios.items():
    print(f"| {row} | {statistics.median(ns[row]):.3f} | {statistics.median(v):.3f}x {base[row]} | {min(v):.3f} – {max(v):.3f} |")
print(f"\n{len(next(iter(ratios.values())))} processes")
'
