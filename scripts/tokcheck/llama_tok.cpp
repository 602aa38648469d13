// llama_tok.cpp — llama.cpp's own tokenizer (llama_tokenize in libllama,
// vocabulary only) over many texts: reads one JSON string per line, prints
// one JSON list of ids per line, as `moebench tokenize --jsonl` does. Built
// and run by llama_check.sh against a llama.cpp build.
//   llama_tok MODEL.gguf FILE.jsonl [--bos] [--no-special]
// Only the JSON string escapes the corpus uses are decoded (\" \\ \/ \b \f
// \n \r \t \uXXXX with surrogate pairs).
#include "llama.h"

#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

static void put_utf8(std::string & o, unsigned cp) {
    if (cp < 0x80) { o += (char) cp; return; }
    if (cp < 0x800) { o += (char) (0xC0 | cp >> 6); }
    else if (cp < 0x10000) { o += (char) (0xE0 | cp >> 12); o += (char) (0x80 | ((cp >> 6) & 0x3F)); }
    else { o += (char) (0xF0 | cp >> 18); o += (char) (0x80 | ((cp >> 12) & 0x3F)); o += (char) (0x80 | ((cp >> 6) & 0x3F)); }
    o += (char) (0x80 | (cp & 0x3F));
}

static bool json_string(const std::string & l, std::string & out) {
    size_t i = l.find('"');
    if (i == std::string::npos) return false;
    for (i++; i < l.size() && l[i] != '"'; i++) {
        if (l[i] != '\\') { out += l[i]; continue; }
        char c = l[++i];
        const char * m = strchr("\"\\/bfnrt", c);
        if (c == 'u') {
            unsigned cp = std::stoul(l.substr(i + 1, 4), nullptr, 16);
            i += 4;
            if (cp >= 0xD800 && cp < 0xDC00 && l.compare(i + 1, 2, "\\u") == 0) {
                unsigned lo = std::stoul(l.substr(i + 3, 4), nullptr, 16);
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                i += 6;
            }
            put_utf8(out, cp);
        } else if (m) {
            out += "\"\\/\b\f\n\r\t"[m - "\"\\/bfnrt"];
        } else {
            return false;
        }
    }
    return true;
}

int main(int argc, char ** argv) {
    if (argc < 3) { fprintf(stderr, "usage: llama_tok MODEL FILE.jsonl [--bos] [--no-special]\n"); return 2; }
    bool bos = false, special = true;
    for (int i = 3; i < argc; i++) {
        if (!strcmp(argv[i], "--bos")) bos = true;
        if (!strcmp(argv[i], "--no-special")) special = false;
    }
    llama_log_set([](ggml_log_level, const char *, void *) {}, nullptr);
    llama_backend_init();
    llama_model_params mp = llama_model_default_params();
    mp.vocab_only = true;
    llama_model * model = llama_model_load_from_file(argv[1], mp);
    if (!model) { fprintf(stderr, "cannot load %s\n", argv[1]); return 2; }
    const llama_vocab * vocab = llama_model_get_vocab(model);
    std::ifstream in(argv[2]);
    std::string line;
    while (std::getline(in, line)) {
        std::string text;
        if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
        if (!json_string(line, text)) { fprintf(stderr, "bad line: %s\n", line.c_str()); return 2; }
        std::vector<llama_token> ids(text.size() + 16);
        int n = llama_tokenize(vocab, text.data(), (int) text.size(), ids.data(), (int) ids.size(), bos, special);
        if (n < 0) { ids.resize(-n); n = llama_tokenize(vocab, text.data(), (int) text.size(), ids.data(), (int) ids.size(), bos, special); }
        printf("[");
        for (int i = 0; i < n; i++) printf(i ? ",%d" : "%d", ids[i]);
        printf("]\n");
    }
    llama_model_free(model);
    return 0;
}
