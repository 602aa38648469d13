#!/bin/sh
# make bench: runs every benchmark script in scripts/bench/ (each prints the
# figures that docs/performance.md quotes, with the command that made them).
set -eu
BIN=${1:-build/moebench}
found=0
for b in scripts/bench/*.sh; do
    [ -e "$b" ] || continue
    found=1
    echo "== $b"
    sh "$b" "$BIN"
done
[ "$found" = 1 ] || echo "moebench bench: no benchmarks yet."
