/* split_ours.c — moebench's pre-tokenizer pieces (eng_pretok_split) in the
 * format of llama_split.cpp, for split_check.sh. */
#include "engine/tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const k_pre[] = {"llama-bpe", "deepseek-llm", "deepseek-v3", "gpt-2",
                                    "qwen2", "glm4", "gpt-4o", "kimi-k2", "default"};

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: split_ours RECORDS\n");
        return 2;
    }
    FILE *f = fopen(argv[1], "rb");
    if (!f) {
        perror(argv[1]);
        return 2;
    }
    char **rec = NULL;
    size_t *len = NULL, nrec = 0;
    unsigned char h[4];
    while (fread(h, 1, 4, f) == 4) {
        size_t n = h[0] | h[1] << 8 | h[2] << 16 | (size_t)h[3] << 24;
        rec = realloc(rec, (nrec + 1) * sizeof *rec);
        len = realloc(len, (nrec + 1) * sizeof *len);
        rec[nrec] = malloc(n + 1);
        if (n && fread(rec[nrec], 1, n, f) != n)
            return 2;
        len[nrec++] = n;
    }
    fclose(f);
    for (size_t p = 0; p < sizeof k_pre / sizeof k_pre[0]; p++) {
        eng_pretok kind;
        eng_err e = {0};
        if (eng_pretok_parse(k_pre[p], &kind, &e))
            return fprintf(stderr, "%s\n", e.msg), 2;
        for (size_t i = 0; i < nrec; i++) {
            if (!len[i])
                continue;
            char *norm;
            size_t nl, *off, n;
            if (eng_pretok_split(kind, rec[i], len[i], &norm, &nl, &off, &n, &e))
                return fprintf(stderr, "%s\n", e.msg), 2;
            printf("%s %zu ", k_pre[p], i);
            for (size_t w = 0; w < n; w++) {
                if (w)
                    putchar('|');
                for (size_t j = off[w]; j < off[w + 1]; j++)
                    printf("%02x", (unsigned char)norm[j]);
            }
            putchar('\n');
            free(norm);
            free(off);
        }
    }
    return 0;
}
