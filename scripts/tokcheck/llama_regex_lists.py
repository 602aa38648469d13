#!/usr/bin/env python3
"""Prints a C++ table of the pre-tokenizer regex lists of llama.cpp's
llm_tokenizer_bpe constructor (src/llama-vocab.cpp), taken from the source
as it is, for the split check (split_check.sh). Usage:
    llama_regex_lists.py LLAMA_CPP_DIR > regex_lists.inc
"""
import re
import sys

WANT = {"DEFAULT": "default", "GPT2": "gpt-2", "QWEN2": "qwen2", "LLAMA3": "llama-bpe",
        "CHATGLM4": "glm4", "DEEPSEEK_LLM": "deepseek-llm", "DEEPSEEK3_LLM": "deepseek-v3",
        "GPT4O": "gpt-4o", "KIMI_K2": "kimi-k2"}

src = open(sys.argv[1] + "/src/llama-vocab.cpp", encoding="utf-8").read()
body = src[src.index("llm_tokenizer_bpe(const llama_vocab & vocab)"):]
body = body[:body.index("std::vector<std::string> regex_exprs;")]
cases = re.split(r"\n\s*(?=case LLAMA_VOCAB_PRE_TYPE_|default:)", body)
labels = []
out = []
for chunk in cases:
    m = re.match(r"case LLAMA_VOCAB_PRE_TYPE_(\w+):", chunk)
    if m:
        labels.append(m.group(1))
    elif chunk.startswith("default:"):
        labels.append("DEFAULT")
    if "regex_exprs = {" not in chunk:
        continue
    block = chunk[chunk.index("regex_exprs = {") + len("regex_exprs = {"):]
    block = block[:block.index("};")]
    lits = [ln.strip().rstrip(",") for ln in block.split("\n")
            if ln.strip().startswith('"')]
    for lab in labels:
        if lab in WANT:
            out.append('{"%s", {%s}},' % (WANT[lab], ", ".join(lits)))
    labels = []
print("\n".join(out))
