#!/bin/sh
# counters.sh — the cost of per-region counters (docs/performance.md,
# "Counters overhead"): a region begin/end pair with the hook table off, with
# clocks + rusage, and with the event set, timed in one run; the estimated and
# the measured share of a 20 ms synthetic decode token (47 region pairs); then
# the overhead on the real engine: every decode step of the 4-layer
# OLMoE-shaped Q8_0 model timed with counters on and off on identical work
# (bench-counters --model; the model is written to models/ if absent).
set -eu
BIN=${1:-build/moebench}
MODELS=${MODELS:-models}
for args in "--preset default" "--preset software" "--preset default --backend perf"; do
    echo "\$ moebench bench-counters $args"
    # shellcheck disable=SC2086
    "$BIN" bench-counters $args
    echo
done
M="$MODELS/olmoe-1b-7b-L4-q8_0.gguf"
if [ ! -e "$M" ]; then
    mkdir -p "$MODELS"
    echo "writing $M"
    "$BIN" mkmodel --preset olmoe-1b-7b --type q8_0 --layers 4 -o "$M" >/dev/null
fi
echo "load $(cut -d' ' -f1-3 /proc/loadavg)"
for args in "--preset default" "--preset default --no-coalesce" "--events ''" \
            "--preset default --threads 2"; do
    echo "\$ moebench bench-counters --model $M --steps 200 --prefault $args"
    eval "\"\$BIN\" bench-counters --model \"\$M\" --steps 200 --prefault $args"
    echo
done
