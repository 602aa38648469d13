// llama_split.cpp — prints llama.cpp's own pre-tokenizer pieces
// (unicode_regex_split, src/unicode.cpp) for every record of an input file,
// for each pre-type of regex_lists.inc (made by llama_regex_lists.py from
// the same llama.cpp tree). Built and run by split_check.sh; compares with
// split_ours.c. Records: 4-byte little-endian length, then the bytes.
// Output per record and pre-type: "PRE INDEX HEX|HEX|..." (pieces in hex).
#include "unicode.h"

#include <cstdint>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <vector>

struct pre_list { const char * name; std::vector<std::string> regex; };
static const std::vector<pre_list> k_lists = {
#include "regex_lists.inc"
};

int main(int argc, char ** argv) {
    if (argc != 2) { fprintf(stderr, "usage: llama_split RECORDS\n"); return 2; }
    FILE * f = fopen(argv[1], "rb");
    if (!f) { perror(argv[1]); return 2; }
    std::vector<std::string> recs;
    uint8_t h[4];
    while (fread(h, 1, 4, f) == 4) {
        uint32_t n = h[0] | h[1] << 8 | h[2] << 16 | (uint32_t) h[3] << 24;
        std::string s(n, '\0');
        if (n && fread(&s[0], 1, n, f) != n) { fprintf(stderr, "short record\n"); return 2; }
        recs.push_back(s);
    }
    for (const auto & pl : k_lists) {
        for (size_t i = 0; i < recs.size(); i++) {
            if (recs[i].empty()) // llama.cpp never splits empty text
                continue;
            printf("%s %zu ", pl.name, i);
            try {
                auto words = unicode_regex_split(recs[i], pl.regex, false);
                for (size_t w = 0; w < words.size(); w++) {
                    if (w) putchar('|');
                    for (unsigned char c : words[w]) printf("%02x", c);
                }
            } catch (const std::exception & e) {
                printf("EXCEPTION");
            }
            putchar('\n');
        }
    }
    return 0;
}
