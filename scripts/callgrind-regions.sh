#!/bin/sh
# callgrind-regions.sh — exact instructions per engine region from a
# callgrind run of moebench (docs/counters.md, "Callgrind mode").
#
#   valgrind --tool=callgrind --callgrind-out-file=cg/out moebench ...
#   scripts/callgrind-regions.sh cg/out*
#
# Under valgrind, metrics/regions.c dumps callgrind's statistics at every
# region boundary with the label "moebench:<region>" of the interval that just
# ended (exclusive: a parent's dump excludes its children). Each dump file
# holds one interval's cost; this sums the first event (Ir, instructions) of
# every dump by label. Dumps not made by moebench (the final "Program
# termination" one) are listed as "(unlabelled)".
set -eu
if [ $# -eq 0 ]; then
    echo "usage: scripts/callgrind-regions.sh CALLGRIND_OUT_FILE..." >&2
    exit 2
fi
awk '
FNR == 1 { label = "(unlabelled)" }
/^desc: Trigger: Client Request: moebench:/ {
    label = $0
    sub(/^desc: Trigger: Client Request: moebench:/, "", label)
}
/^summary:/ {
    if (!(label in ir)) order[++n] = label
    ir[label] += $2
}
END {
    printf "%-14s %16s\n", "region", "instructions"
    for (i = 1; i <= n; i++) printf "%-14s %16.0f\n", order[i], ir[order[i]]
}' "$@"
