#!/usr/bin/env bash
# split_check.sh — compares moebench's pre-tokenizer pieces with llama.cpp's
# own unicode_regex_split, for every pre-type moebench supports, on random
# strings (gen_records.py) and on the test corpus.
#
#   scripts/tokcheck/split_check.sh LLAMA_CPP_DIR [N [SEED]]
#
# Needs a llama.cpp source tree (82bb485 for the results in
# docs/testing.md), g++, and build/libmoeengine.a (make). Compiles
# llama.cpp's src/unicode.cpp and src/unicode-data.cpp into a scratch
# folder (nothing of llama.cpp is copied into the repository). Exit 1 when
# any piece differs; the differing lines are printed.
set -euo pipefail
LL=${1:?usage: split_check.sh LLAMA_CPP_DIR [N [SEED]]}
N=${2:-3000}
SEED=${3:-1}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
python3 "$HERE/llama_regex_lists.py" "$LL" > "$W/regex_lists.inc"
g++ -std=c++17 -O2 -I"$LL/src" -I"$LL/include" -I"$W" -o "$W/llama_split" \
    "$HERE/llama_split.cpp" "$LL/src/unicode.cpp" "$LL/src/unicode-data.cpp"
make -C "$ROOT" -s build/libmoeengine.a
cc -std=gnu11 -O2 -I"$ROOT" -o "$W/split_ours" "$HERE/split_ours.c" "$ROOT/build/libmoeengine.a" -lm
python3 "$HERE/gen_records.py" "$N" "$SEED" > "$W/rec.bin"
python3 - "$ROOT/tests/tokenizers/corpus.txt" >> "$W/rec.bin" <<'PY' || true
import struct, sys
try:
    text = open(sys.argv[1], encoding="utf-8").read()
except FileNotFoundError:
    sys.exit(0)
for line in text.split("\n"):
    if line.startswith("#") or not line:
        continue
    s = line.encode().decode("unicode_escape").encode("latin-1") if "\\" in line else line.encode()
    sys.stdout.buffer.write(struct.pack("<I", len(s)) + s)
PY
"$W/llama_split" "$W/rec.bin" | sort > "$W/theirs"
"$W/split_ours" "$W/rec.bin" | sort > "$W/ours"
n=$(wc -l < "$W/ours")
if diff "$W/theirs" "$W/ours" > "$W/diff"; then
    echo "split_check: $n splits (pre-types x strings) identical to llama.cpp"
else
    echo "split_check: pieces differ from llama.cpp:" >&2
    head -40 "$W/diff" >&2
    exit 1
fi
