#!/bin/sh
# Routing-metrics figures for docs/performance.md ("Routing metrics").
#   sh scripts/bench/metrics.sh [build/moebench]      (make bench runs it)
# 1. synthesis of a paper-scale OLMoE-shaped trace (2048 x 512 tokens,
#    16 layers, 64 experts, top-8);
# 2. per-curve cost for one layer (E = 64, k = 8, T = 512), single thread:
#    `metrics` over 256 samples of one layer, no bootstrap, divided by
#    256 samples x 7 curves (LRU, LFU, Belady, FSF at 4 segment lengths) —
#    an upper bound, SRP and reading included; then the kernels alone
#    (scripts/bench/lrc_kernels.c: CPU time per call, per policy, mean over
#    32 different samples, best of 5 rounds);
# 3. the paper-scale run: every metric per layer and model-wide, 1000
#    bootstrap replicates, 2 threads: wall time and peak memory.
# Set MOEBENCH_BENCH_DIR to keep the traces elsewhere than a temp dir.
set -eu
BIN=${1:-build/moebench}
DIR=${MOEBENCH_BENCH_DIR:-$(mktemp -d)}
TIME=/usr/bin/time
now() { date +%s.%N; }
secs() { echo "$2 - $1" | bc -l | xargs printf '%.2f'; }

echo "moebench $($BIN --version | cut -d' ' -f2-)"
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"

t0=$(now)
$BIN trace synth --layers 16 --experts 64 --top-k 8 --samples 2048 --tokens 512 \
    --model sticky --stickiness 0.7 --seed 1 -o "$DIR/olmoe.moetrace"
t1=$(now)
echo "synth 2048x512, 16 layers, 64 experts, top-8: $(secs $t0 $t1) s ($(du -m "$DIR/olmoe.moetrace" | cut -f1) MB)"

$BIN trace synth --layers 1 --experts 64 --top-k 8 --samples 256 --tokens 512 \
    --model sticky --stickiness 0.7 --seed 2 -o "$DIR/layer.moetrace"
t0=$(now)
$BIN metrics "$DIR/layer.moetrace" --bootstrap 0 --threads 1 --json > /dev/null
t1=$(now)
echo "one layer, 256 samples, all metrics, 1 thread: $(secs $t0 $t1) s =" \
     "$(echo "($t1 - $t0) * 1000000 / 256 / 7" | bc -l | xargs printf '%.0f') us per curve per sample"

# the kernels alone (CPU time, so a busy machine inflates them less than wall time)
cc -std=gnu11 -O2 -I. -D_GNU_SOURCE scripts/bench/lrc_kernels.c \
    "$(dirname "$BIN")/libmoemetrics.a" "$(dirname "$BIN")/libmoeengine.a" \
    $(pkg-config --libs jansson openblas) -lm -pthread -o "$DIR/lrc_kernels"
"$DIR/lrc_kernels" "$DIR/olmoe.moetrace" 5 32

$TIME -f "%e s wall, %U s user, %M KB peak RSS" \
    $BIN metrics "$DIR/olmoe.moetrace" --threads 2 --bootstrap 1000 --json \
    > "$DIR/olmoe.metrics.json" 2> "$DIR/time.txt" || { cat "$DIR/time.txt"; exit 1; }
echo "paper scale (per layer + model-wide, E_tot 1024, k_tot 128), B = 1000, 2 threads: $(tail -1 "$DIR/time.txt")"
[ -n "${MOEBENCH_BENCH_DIR:-}" ] || rm -rf "$DIR"
