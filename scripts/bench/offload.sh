#!/bin/sh
# offload.sh — expert offloading benchmark (docs/offloading.md, figures in
# docs/performance.md "Offloading").
#
# Writes a synthetic OLMoE-shaped model (default: olmoe-1b-7b, 8 layers,
# q8_0, ~3.5 GB), records the routing of a fixed prompt once (--trace-out),
# then runs `moebench generate` with the tiered store, tier file (O_DIRECT
# where the file system allows it), for each policy at cache sizes 1x, 2x
# and 4x the experts one token activates (layers x top-k), plus the
# all-cached ceiling (every expert fits) and the memory store. Prints one
# line per run: decode tokens/s, hit rate, stall share of decode time,
# bytes read and the loaders' read rate (bytes / load time), prefetches
# issued/useful/late.
#
# Environment: LAYERS (8), TYPE (q8_0), NGEN (32 generated tokens), THREADS
# (all CPUs), DIR (scratch directory, default build/bench-offload),
# MOEBENCH (build/moebench). The machine should be quiet; run once and
# compare ratios within the run.
set -eu
MOEBENCH=${1:-${MOEBENCH:-build/moebench}}
LAYERS=${LAYERS:-8}
TYPE=${TYPE:-q8_0}
NGEN=${NGEN:-32}
DIR=${DIR:-build/bench-offload}
THREADS=${THREADS:-0}
mkdir -p "$DIR"
MODEL="$DIR/olmoe-l$LAYERS-$TYPE.gguf"
TRACE="$DIR/olmoe-l$LAYERS-$TYPE.moetrace"
[ -f "$MODEL" ] || "$MOEBENCH" mkmodel --preset olmoe-1b-7b --layers "$LAYERS" --type "$TYPE" \
    --router-locality 0.5 -o "$MODEL"
TOK=1,17,300,4000,5000,6000,7000,812,9000,1000,11000,12000,13000,14000,150,16000
TH=""
[ "$THREADS" -gt 0 ] && TH="--threads $THREADS"
# shellcheck disable=SC2086
common="-m $MODEL --tokens $TOK -n $NGEN --ignore-eos --json $TH"

summary() { # label, json on stdin
    python3 -c '
import json, sys
j = json.load(sys.stdin)
ms = sum(j["decode_ms"]); n = len(j["decode_ms"])
c = j.get("cache", {})
stall = c.get("decode_stall_ms", 0.0)
hr = c.get("hit_rate", 1.0)
rd = c.get("bytes_demand", 0) + c.get("bytes_prefetch", 0)
lms = c.get("load_ms", 0.0)
print("%-30s %6.2f tok/s  hit %6.2f%%  decode stall %5.1f%%  read %8.1f MiB at %5.2f GB/s  pf %d/%d/%d  io %s" % (
    sys.argv[1], n * 1e3 / ms, 100 * hr, 100 * stall / ms if ms else 0,
    rd / 2**20, rd / lms / 1e6 if lms else 0,
    c.get("prefetch_issued", 0), c.get("prefetch_useful", 0), c.get("prefetch_late", 0),
    c.get("io_mode", "-")))
' "$1"
}

# shellcheck disable=SC2086
"$MOEBENCH" generate $common --trace-out "$TRACE" | summary "memory store (trace)"
ACTIVE=$((LAYERS * 8))            # olmoe: top-8 per layer
ALL=$((LAYERS * 64))
for mult in 1 2 4; do
    N=$((ACTIVE * mult))
    for p in lru lfu fifo belady fsf; do
        # shellcheck disable=SC2086
        "$MOEBENCH" generate $common --cache-experts $N --policy $p --trace-in "$TRACE" |
            summary "$p ${mult}x ($N slots)"
    done
    # shellcheck disable=SC2086
    "$MOEBENCH" generate $common --cache-experts $N --policy lru --trace-in "$TRACE" \
        --prefetch oracle | summary "lru+oracle ${mult}x ($N slots)"
    # shellcheck disable=SC2086
    "$MOEBENCH" generate $common --cache-experts $N --policy lru --trace-in "$TRACE" \
        --prefetch pregate | summary "lru+pregate ${mult}x ($N slots)"
done
# shellcheck disable=SC2086
"$MOEBENCH" generate $common --cache-mb 1024 --policy lru --trace-in "$TRACE" | summary "lru 1 GiB"
# shellcheck disable=SC2086
"$MOEBENCH" generate $common --cache-mb 1024 --policy lru --trace-in "$TRACE" --link nvme |
    summary "lru 1 GiB, link nvme"
# the ceiling: every expert cached (cold start: first uses miss; warm: none)
# shellcheck disable=SC2086
"$MOEBENCH" generate $common --cache-experts $ALL --trace-in "$TRACE" | summary "all cached, cold"
# store overhead: memory store vs all cached + warm, same batch 1, twice
for i in 1 2; do
    # shellcheck disable=SC2086
    "$MOEBENCH" generate $common --batch 1 | summary "memory store (batch 1) #$i"
    # shellcheck disable=SC2086
    "$MOEBENCH" generate $common --batch 1 --cache-experts $ALL --cache-warm |
        summary "all cached, warm, file #$i"
    # shellcheck disable=SC2086
    "$MOEBENCH" generate $common --batch 1 --cache-experts $ALL --cache-warm --link-gbps 1e5 \
        --link-latency-us 0 | summary "all cached, warm, link #$i"
done
# store overhead measured in one process (docs/performance.md, "Store
# overhead, in one process"): memory store vs tiered store with every expert
# cached (link tier in map mode: the same bytes), token by token in lockstep
cc -std=gnu11 -O2 -I. -D_GNU_SOURCE scripts/bench/store_overhead.c build/libmoeengine.a \
    $(pkg-config --libs openblas) -lm -pthread -o "$DIR/store_overhead"
"$DIR/store_overhead" "$MODEL" 64 10 mem,map,mem
