/*
 * mkvocab.c — the byte-level BPE vocabulary of synthetic models.
 *
 * Tokens, in id order: the 256 GPT-2 byte symbols (id = byte value), the
 * tokens made by merges learned from a small built-in English text (BPE
 * training: repeatedly merge the most frequent adjacent pair inside
 * pre-tokenizer pieces; ties go to the lowest (left id, right id)), then
 * BOS "<|startoftext|>" and EOS "<|endoftext|>" (control tokens), then
 * "[PAD{i}]" (unused) up to the vocabulary size, as llama.cpp's converter
 * pads. Everything is deterministic and independent of the seed. A merge
 * whose result already exists as a token (two merge paths to one string)
 * is kept as a merge but adds no token.
 *
 * The SentencePiece form (eng_mkvocab_build_spm, `mkmodel --vocab spm`, as
 * real Mixtral files have): <unk> <s> </s>, the 256 byte tokens <0xXX>, then
 * the same learned tokens that are whole UTF-8 characters, spaces written
 * as U+2581, scored by merge order (earlier = higher), then padding.
 */
#include "engine/mkvocab.h"
#include "engine/tokenizer.h"
#include "engine/tokenizer_impl.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Original text written for this purpose (no third-party content). */
static const char k_corpus[] =
    "The model reads a prompt, one token at a time, and each layer sends the token to a few "
    "of its experts. An expert is a small feed forward network; the router picks the ones "
    "with the highest scores. When the experts do not fit in fast memory, the engine keeps "
    "a cache of the most useful ones and loads the others from the slow tier. A miss costs "
    "time: the bytes of the expert must travel over the link before the layer can go on.\n"
    "This is why the order of the tokens matters. If consecutive tokens choose the same "
    "experts, the cache works well and the model runs at nearly full speed. If every token "
    "chooses different experts, the cache thrashes and the run is slow. We measure the "
    "hit rate, the bytes loaded, the time spent waiting and the tokens per second.\n"
    "In the morning the weather was cold and the sky was grey, but by the afternoon the sun "
    "came out and the streets were full of people walking to the market. They bought bread, "
    "cheese, apples, oranges and fresh vegetables, and some of them stopped for coffee.\n"
    "The recipe is simple: mix the flour with water and a little salt, let the dough rest for "
    "an hour, then bake it in a hot oven for twenty minutes. Serve it warm with butter.\n"
    "Numbers appear everywhere: 1, 2, 3, 10, 42, 100, 256, 1024, 2048, 4096 and 65536. "
    "The year 2024 had 366 days; the price was $19.99 (or 20 euros), and 3.14159 is pi.\n"
    "She said: \"I don't know, but we'll see what they've done.\" He's sure it's right, "
    "isn't he? You're welcome; I'm here, and they'd like to help.\n"
    "def main(argc, argv):\n    for i in range(10):\n        print(i * i)\n    return 0\n"
    "int main(void) { int x = 0; for (int i = 0; i < 8; i++) x += i; return x; }\n"
    "The history of computing is a story of memory and speed. Early machines had very little "
    "memory, and programmers learned to move data between fast and slow storage by hand. "
    "Later, caches did this work automatically, guided by simple policies such as least "
    "recently used, least frequently used, or first in first out. The best possible policy, "
    "which knows the future, evicts the item that will be needed furthest ahead.\n"
    "Mixture of experts models follow the same pattern. Each expert is a block of weights; "
    "the router decides which blocks the next token needs. Good locality means that the same "
    "experts are needed again soon, so a small cache holds most of what is needed.\n"
    "Questions? Answers! Lists: first, second, third. Brackets [like this] and {these} and "
    "<tags> and paths like /usr/local/bin or C:\\Windows\\System32 and emails like "
    "someone@example.com, hash #tags, 50% off, a & b, x | y, a ^ b, ~home, `code`.\n"
    "Caf\xc3\xa9, na\xc3\xafve, \xc3\xbc" "ber, se\xc3\xb1or, \xe2\x80\x9cquoted\xe2\x80\x9d "
    "\xe2\x80\x94 dash, \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e, \xd0\xbf\xd1\x80\xd0\xb8\xd0\xb2"
    "\xd0\xb5\xd1\x82, \xce\xb1\xce\xb2\xce\xb3.\n";

/* A word (pre-tokenizer piece) as a sequence of token ids, with its count. */
typedef struct word {
    int32_t *sym;
    size_t n;
    uint32_t count;
} word;

typedef struct vocab_build {
    word *w;
    size_t nw;
    char **tok;        /* [ntok] raw bytes of each token */
    size_t *tlen;
    size_t ntok, captok;
} vocab_build;

static int cmp_piece(const void *a, const void *b, void *text)
{
    const size_t *x = a, *y = b;
    const char *t = text;
    size_t lx = x[1] - x[0], ly = y[1] - y[0];
    int c = memcmp(t + x[0], t + y[0], lx < ly ? lx : ly);
    return c ? c : (lx > ly) - (lx < ly);
}

/* Unique pieces of the corpus with their counts; symbols = byte ids. */
static int collect_words(vocab_build *vb, eng_pretok pre, eng_err *e)
{
    size_t *off, n, tlen;
    char *text; /* the corpus is valid UTF-8: the split gives it back as is */
    int rc = eng_pretok_split(pre, k_corpus, sizeof k_corpus - 1, &text, &tlen, &off, &n, e);
    if (rc)
        return rc;
    size_t (*pc)[2] = malloc((n + 1) * sizeof *pc);
    vb->w = calloc(n + 1, sizeof *vb->w);
    if (!pc || !vb->w) {
        free(pc);
        free(off);
        free(text);
        return eng_err_set(e, ENG_ENOMEM, "mkmodel: out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        pc[i][0] = off[i];
        pc[i][1] = off[i + 1];
    }
    qsort_r(pc, n, sizeof *pc, cmp_piece, text);
    for (size_t i = 0; i < n && !rc; i++) {
        if (i && !cmp_piece(pc[i - 1], pc[i], text)) {
            vb->w[vb->nw - 1].count++;
            continue;
        }
        word *w = &vb->w[vb->nw++];
        w->n = pc[i][1] - pc[i][0];
        w->count = 1;
        w->sym = malloc(w->n * sizeof *w->sym);
        if (!w->sym)
            rc = eng_err_set(e, ENG_ENOMEM, "mkmodel: out of memory");
        for (size_t j = 0; j < w->n && w->sym; j++)
            w->sym[j] = (unsigned char)text[pc[i][0] + j];
    }
    free(pc);
    free(off);
    free(text);
    return rc;
}

static int add_token(vocab_build *vb, const char *raw, size_t n)
{
    if (vb->ntok == vb->captok) {
        size_t nc = vb->captok ? vb->captok * 2 : 1024;
        char **nt = realloc(vb->tok, nc * sizeof *nt);
        if (!nt)
            return ENG_ENOMEM;
        vb->tok = nt;
        size_t *nl = realloc(vb->tlen, nc * sizeof *nl);
        if (!nl)
            return ENG_ENOMEM;
        vb->tlen = nl;
        vb->captok = nc;
    }
    char *c = malloc(n + 1);
    if (!c)
        return ENG_ENOMEM;
    memcpy(c, raw, n);
    c[n] = 0;
    vb->tok[vb->ntok] = c;
    vb->tlen[vb->ntok++] = n;
    return ENG_OK;
}

typedef struct pairc {
    uint64_t key; /* left id << 32 | right id */
    uint32_t cnt;
} pairc;

static int cmp_pairc(const void *a, const void *b)
{
    uint64_t x = ((const pairc *)a)->key, y = ((const pairc *)b)->key;
    return (x > y) - (x < y);
}

/* The most frequent adjacent pair (ties: smallest ids); *count = 0 if none,
 * -1 on allocation failure. Pairs are counted by sorting: the corpus is
 * small, so this stays well under a second for thousands of merges. */
static int best_pair(const vocab_build *vb, uint64_t *best, uint32_t *count)
{
    size_t np = 0;
    for (size_t i = 0; i < vb->nw; i++)
        np += vb->w[i].n ? vb->w[i].n - 1 : 0;
    *count = 0;
    *best = 0;
    pairc *p = malloc((np + 1) * sizeof *p);
    if (!p)
        return -1;
    size_t k = 0;
    for (size_t i = 0; i < vb->nw; i++)
        for (size_t j = 0; j + 1 < vb->w[i].n; j++)
            p[k++] = (pairc){(uint64_t)(uint32_t)vb->w[i].sym[j] << 32 |
                                 (uint32_t)vb->w[i].sym[j + 1],
                             vb->w[i].count};
    qsort(p, np, sizeof *p, cmp_pairc);
    for (size_t i = 0; i < np;) {
        size_t j = i;
        uint32_t c = 0;
        while (j < np && p[j].key == p[i].key)
            c += p[j++].cnt;
        if (c > *count) { /* ascending keys: the first maximum has the smallest ids */
            *count = c;
            *best = p[i].key;
        }
        i = j;
    }
    free(p);
    return 0;
}

/* Replaces every (a, b) by id in all words, left to right. */
static void apply_merge(vocab_build *vb, int32_t a, int32_t b, int32_t id)
{
    for (size_t i = 0; i < vb->nw; i++) {
        word *w = &vb->w[i];
        size_t k = 0;
        for (size_t j = 0; j < w->n; j++) {
            if (j + 1 < w->n && w->sym[j] == a && w->sym[j + 1] == b) {
                w->sym[k++] = id;
                j++;
            } else {
                w->sym[k++] = w->sym[j];
            }
        }
        w->n = k;
    }
}

static int32_t find_token(const vocab_build *vb, const char *raw, size_t n)
{
    for (size_t i = 0; i < vb->ntok; i++)
        if (vb->tlen[i] == n && !memcmp(vb->tok[i], raw, n))
            return (int32_t)i;
    return -1;
}

static void vocab_build_free(vocab_build *vb)
{
    for (size_t i = 0; i < vb->nw; i++)
        free(vb->w[i].sym);
    for (size_t i = 0; i < vb->ntok; i++)
        free(vb->tok[i]);
    free(vb->w);
    free(vb->tok);
    free(vb->tlen);
}

/* Learns up to max_merges merges; merges[k] = (left id, right id). */
static int learn(vocab_build *vb, size_t max_merges, int32_t (*merges)[2], size_t *nm,
                 eng_err *e)
{
    char buf[512];
    *nm = 0;
    while (*nm < max_merges) {
        uint64_t key;
        uint32_t cnt;
        if (best_pair(vb, &key, &cnt))
            return eng_err_set(e, ENG_ENOMEM, "mkmodel: out of memory");
        if (cnt < 2)
            break;
        int32_t a = (int32_t)(key >> 32), b = (int32_t)(key & 0xFFFFFFFF);
        size_t la = vb->tlen[a], lb = vb->tlen[b];
        if (la + lb > sizeof buf)
            break;
        memcpy(buf, vb->tok[a], la);
        memcpy(buf + la, vb->tok[b], lb);
        int32_t id = find_token(vb, buf, la + lb);
        if (id < 0) {
            id = (int32_t)vb->ntok;
            if (add_token(vb, buf, la + lb))
                return eng_err_set(e, ENG_ENOMEM, "mkmodel: out of memory");
        }
        merges[*nm][0] = a;
        merges[(*nm)++][1] = b;
        apply_merge(vb, a, b, id);
    }
    return ENG_OK;
}

/* Byte-level (vocab) form of raw bytes, malloc'd. */
static char *to_vocab(const char *raw, size_t n)
{
    char *s = malloc(2 * n + 1);
    if (s)
        tk_bytes_to_vocab((const unsigned char *)raw, n, s);
    return s;
}

void eng_mkvocab_free(eng_mkvocab *v)
{
    if (!v)
        return;
    for (size_t i = 0; i < v->n_tokens && v->tokens; i++)
        free(v->tokens[i]);
    for (size_t i = 0; i < v->n_merges && v->merges; i++)
        free(v->merges[i]);
    free(v->tokens);
    free(v->types);
    free(v->merges);
    free(v->scores);
    memset(v, 0, sizeof *v);
}

/* Fills v's arrays from the learned tokens and merges, adds the special
 * tokens and the padding. */
static int assemble(eng_mkvocab *v, const vocab_build *vb, int32_t (*mg)[2], size_t nm,
                    size_t n_vocab)
{
    v->n_tokens = n_vocab;
    v->n_merges = nm;
    v->tokens = calloc(n_vocab, sizeof *v->tokens);
    v->types = calloc(n_vocab, sizeof *v->types);
    v->merges = calloc(nm + 1, sizeof *v->merges);
    if (!v->tokens || !v->types || !v->merges)
        return ENG_ENOMEM;
    for (size_t i = 0; i < vb->ntok; i++) {
        v->tokens[i] = to_vocab(vb->tok[i], vb->tlen[i]);
        v->types[i] = ENG_TOKEN_NORMAL;
    }
    v->bos_id = (uint32_t)vb->ntok;
    v->eos_id = (uint32_t)vb->ntok + 1;
    v->tokens[v->bos_id] = strdup("<|startoftext|>");
    v->tokens[v->eos_id] = strdup("<|endoftext|>");
    v->types[v->bos_id] = v->types[v->eos_id] = ENG_TOKEN_CONTROL;
    for (size_t i = vb->ntok + 2; i < n_vocab; i++) {
        char pad[32];
        snprintf(pad, sizeof pad, "[PAD%zu]", i);
        v->tokens[i] = strdup(pad);
        v->types[i] = ENG_TOKEN_UNUSED;
    }
    for (size_t k = 0; k < nm; k++) {
        char *l = to_vocab(vb->tok[mg[k][0]], vb->tlen[mg[k][0]]);
        char *r = to_vocab(vb->tok[mg[k][1]], vb->tlen[mg[k][1]]);
        if (l && r && (v->merges[k] = malloc(strlen(l) + strlen(r) + 2)))
            sprintf(v->merges[k], "%s %s", l, r);
        free(l);
        free(r);
    }
    for (size_t i = 0; i < n_vocab; i++)
        if (!v->tokens[i])
            return ENG_ENOMEM;
    for (size_t k = 0; k < nm; k++)
        if (!v->merges[k])
            return ENG_ENOMEM;
    return ENG_OK;
}

/* Learns the BPE tokens and merges for a vocabulary of n_vocab into vb and
 * *mg / *nm (malloc'd). */
static int learn_vocab(vocab_build *vb, size_t n_vocab, size_t min_vocab, eng_pretok pre,
                       int32_t (**mg)[2], size_t *nm, eng_err *e)
{
    if (n_vocab < min_vocab)
        return eng_err_set(e, ENG_EINVAL, "mkmodel: vocabulary of %zu tokens is below %zu",
                           n_vocab, min_vocab);
    int rc = collect_words(vb, pre, e);
    for (int b = 0; !rc && b < 256; b++) {
        char c = (char)b;
        if (add_token(vb, &c, 1))
            rc = eng_err_set(e, ENG_ENOMEM, "mkmodel: out of memory");
    }
    size_t max_merges = n_vocab - 258;
    if (max_merges > 100000)
        max_merges = 100000;
    *nm = 0;
    *mg = malloc((max_merges + 1) * sizeof **mg);
    if (!rc && !*mg)
        rc = eng_err_set(e, ENG_ENOMEM, "mkmodel: out of memory");
    if (!rc)
        rc = learn(vb, max_merges, *mg, nm, e);
    return rc;
}

int eng_mkvocab_build(eng_mkvocab *v, size_t n_vocab, eng_pretok pre, eng_err *e)
{
    memset(v, 0, sizeof *v);
    vocab_build vb = {0};
    int32_t (*mg)[2] = NULL;
    size_t nm = 0;
    int rc = learn_vocab(&vb, n_vocab, 256 + 2, pre, &mg, &nm, e);
    if (!rc && assemble(v, &vb, mg, nm, n_vocab))
        rc = eng_err_set(e, ENG_ENOMEM, "mkmodel: out of memory");
    free(mg);
    vocab_build_free(&vb);
    if (rc)
        eng_mkvocab_free(v);
    return rc;
}

/* ---- SentencePiece form ------------------------------------------------- */

/* Whether raw[0..n) is whole, valid UTF-8 characters. */
static bool whole_utf8(const char *raw, size_t n)
{
    for (size_t i = 0; i < n;) {
        size_t bl;
        if (tk_utf8_next((const unsigned char *)raw + i, n - i, &bl) == TK_INVALID_CP)
            return false;
        i += bl;
    }
    return n > 0;
}

/* The SentencePiece text of raw bytes: spaces as U+2581, malloc'd. */
static char *to_spm_text(const char *raw, size_t n)
{
    char *s = malloc(3 * n + 1);
    size_t k = 0;
    for (size_t i = 0; s && i < n; i++) {
        if (raw[i] == ' ') {
            memcpy(s + k, "\xe2\x96\x81", 3);
            k += 3;
        } else {
            s[k++] = raw[i];
        }
    }
    if (s)
        s[k] = 0;
    return s;
}

static int assemble_spm(eng_mkvocab *v, const vocab_build *vb, size_t n_vocab)
{
    v->spm = true;
    v->n_tokens = n_vocab;
    v->tokens = calloc(n_vocab, sizeof *v->tokens);
    v->types = calloc(n_vocab, sizeof *v->types);
    v->scores = calloc(n_vocab, sizeof *v->scores);
    if (!v->tokens || !v->types || !v->scores)
        return ENG_ENOMEM;
    static const char *const specials[3] = {"<unk>", "<s>", "</s>"};
    size_t n = 0;
    for (; n < 3; n++) {
        v->tokens[n] = strdup(specials[n]);
        v->types[n] = n ? ENG_TOKEN_CONTROL : ENG_TOKEN_UNKNOWN;
    }
    for (int b = 0; b < 256; b++, n++) {
        char t[8];
        snprintf(t, sizeof t, "<0x%02X>", b);
        v->tokens[n] = strdup(t);
        v->types[n] = ENG_TOKEN_BYTE;
    }
    v->unk_id = 0;
    v->bos_id = 1;
    v->eos_id = 2;
    /* learned tokens in merge order (earlier merges score higher), single
     * characters below every merge; pieces that are not whole UTF-8
     * characters cannot be SentencePiece tokens */
    for (size_t i = 0; i < vb->ntok && n < n_vocab; i++) {
        if (!whole_utf8(vb->tok[i], vb->tlen[i]))
            continue;
        v->tokens[n] = to_spm_text(vb->tok[i], vb->tlen[i]);
        v->types[n] = ENG_TOKEN_NORMAL;
        v->scores[n++] = i < 256 ? -1e6f : -(float)(i - 256);
    }
    for (; n < n_vocab; n++) {
        char pad[32];
        snprintf(pad, sizeof pad, "[PAD%zu]", n);
        v->tokens[n] = strdup(pad);
        v->types[n] = ENG_TOKEN_UNUSED;
    }
    for (size_t i = 0; i < n_vocab; i++)
        if (!v->tokens[i])
            return ENG_ENOMEM;
    return ENG_OK;
}

int eng_mkvocab_build_spm(eng_mkvocab *v, size_t n_vocab, eng_err *e)
{
    memset(v, 0, sizeof *v);
    vocab_build vb = {0};
    int32_t (*mg)[2] = NULL;
    size_t nm = 0;
    int rc = learn_vocab(&vb, n_vocab, 3 + 256, ENG_PRETOK_DEFAULT, &mg, &nm, e);
    if (!rc && assemble_spm(v, &vb, n_vocab))
        rc = eng_err_set(e, ENG_ENOMEM, "mkmodel: out of memory");
    free(mg);
    vocab_build_free(&vb);
    if (rc)
        eng_mkvocab_free(v);
    return rc;
}
