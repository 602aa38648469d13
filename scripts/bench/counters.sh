#!/bin/sh
# counters.sh — the cost of per-region counters (docs/performance.md,
# "Counters overhead"): a region begin/end pair with the hook table off, with
# clocks + rusage, and with the event set, timed in one run; the estimated and
# the measured share of a 20 ms synthetic decode token (47 region pairs).
set -eu
BIN=${1:-build/moebench}
for args in "--preset default" "--preset software" "--preset default --backend perf"; do
    echo "\$ moebench bench-counters $args"
    # shellcheck disable=SC2086
    "$BIN" bench-counters $args
    echo
done
