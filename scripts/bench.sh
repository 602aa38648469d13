#!/bin/sh
# make bench: runs every benchmark script in scripts/bench/ (each prints the
# figures that docs/performance.md quotes, with the command that made them).
# With LLAMA_BENCH=/path/to/llama-bench set, also runs moebench against it
# side by side (scripts/bench/vs-llamacpp.sh) on the engine benchmark's
# models; without it that comparison is skipped.
set -eu
BIN=${1:-build/moebench}
found=0
for b in scripts/bench/*.sh; do
    [ -e "$b" ] || continue
    case "$b" in */vs-llamacpp.sh) continue ;; esac
    found=1
    echo "== $b"
    sh "$b" "$BIN"
done
[ "$found" = 1 ] || echo "moebench bench: no benchmarks yet."
if [ -n "${LLAMA_BENCH:-}" ]; then
    echo "== scripts/bench/vs-llamacpp.sh $LLAMA_BENCH"
    MOEBENCH="$BIN" sh scripts/bench/vs-llamacpp.sh "$LLAMA_BENCH" models/*-L4-*.gguf
else
    echo "(LLAMA_BENCH not set: the side-by-side comparison with llama.cpp is skipped)"
fi
