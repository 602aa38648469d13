#!/usr/bin/env python3
"""Writes random test strings for split_check.sh: length-prefixed records
(4-byte little-endian length, then the bytes) mixing the things
pre-tokenizers treat differently: ASCII classes, contractions, whitespace
runs, digits of many scripts, letters of many scripts and cases, combining
marks, CJK edges, emoji sequences, unassigned and private-use code points,
and invalid UTF-8 (never bytes that decode above U+10FFFF, where llama.cpp
throws). Usage: gen_records.py N SEED > records.bin"""
import random
import struct
import sys

ASCII_PUNCT = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"
ATOMS = [
    "Hello", "WORLD", "world", "HeLLo", "x", "I", "a", "the", "ab12cd", "don't", "I'M", "we'll",
    "'s", "'S", "'t", "'re", "'RE", "'ve", "'Ve", "'m", "'ll", "'lL", "'d", "'D", "'", "''",
    " ", "  ", "   ", "\t", "\n", "\r\n", "\n\n", " \n ", "\r", "\x0b", "\x0c", "\x1c", "\x1f",
    "\x7f", "\x00", "\x01",
    "0", "7", "12", "123", "1234", "12345", "3.14", "1,000", "٣٤", "४२", "１２", "²", "½", "Ⅻ",
    "é", "Ä", "ß", "ñ", "µ", "ª", "º", "ǅ", "ǆ", "ƺ", "ƻ", "ʔ", "ʕ", "Ω", "K", "İ", "ı",
    "\u00a0", "\u0085", "¿", "¡", "«", "»", "×", "÷", "·", "¶", "§", "©",
    "αβγ", "ΑΒΓ", "ά", "ῼ", "привет", "ПРИВЕТ", "Ёж", "բարեւ", "שָׁלוֹם", "مرحبا", "ـ",
    "नमस्ते", "क्षि", "สวัสดี", "ภาษาไทย", "안녕하세요", "ㄱ", "한", "ひらがな", "カタカナ",
    "ー", "・", "日本語", "中文", "一", "龥", "\u9fa6", "\u9fff", "\u3400", "𠀀", "豈",
    "ࠀ", "\u0800", "ＡＢＣ", "ａｂｃ", "！", "？", "　", "。", "、", "「", "」", "\u2028",
    "\u2029", "\u200b", "\u200d", "\ufeff", "▁", "‐", "–", "—", "‘", "’", "“", "”", "…",
    "‟", "‰", "€", "£", "¥", "$", "∑", "∞", "≠", "→", "⇒", "°", "™",
    "🚀", "😀", "👍🏽", "👨\u200d👩\u200d👧", "❤\ufe0f", "🇺🇸", "1\ufe0f\u20e3", "😶\u200d🌫️",
    "e\u0301", "a\u0308", "\u0301", "\u20dd", "\u0378", "\ue000", "\U0010fffd", "\U000e0041",
    "\U0001d400", "\U00010400", "\U00010428",
]
BAD = [b"\x80", b"\xbf", b"\xff", b"\xfe", b"\xc3", b"\xe2\x82", b"\xc0\xaf", b"\xe0\x80\xaf",
       b"\xed\xa0\x80", b"\xf0\x9f\x98", b"\xf0\x90\x80\x80", b"\xf4\x8f\xbf\xbf", b"\xc3\x28"]


def one(rng):
    parts = []
    for _ in range(rng.randint(0, 24)):
        r = rng.random()
        if r < 0.05:
            parts.append(rng.choice(BAD))
        elif r < 0.15:
            parts.append(rng.choice(ASCII_PUNCT).encode() * rng.randint(1, 3))
        elif r < 0.20:
            parts.append((" " * rng.randint(1, 6)).encode())
        else:
            parts.append(rng.choice(ATOMS).encode("utf-8", "surrogatepass"))
    return b"".join(parts)


def main():
    n, seed = int(sys.argv[1]), int(sys.argv[2])
    rng = random.Random(seed)
    out = sys.stdout.buffer
    for _ in range(n):
        s = one(rng)
        out.write(struct.pack("<I", len(s)) + s)


main()
