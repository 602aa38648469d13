/*
 * tokenizer.c — opening a vocabulary (from a GGUF or a description), the
 * fixes llama.cpp applies when it loads one, decoding (see tokenizer.h;
 * encoding is in tokenizer_encode.c).
 *
 * Design. BPE works on the text's bytes, not on GPT-2's byte-level strings:
 * each token's text is decoded once from its byte-level form (GPT-2
 * bytes_to_unicode) into raw bytes, its key. A text that is not byte-level
 * (a special token such as "<｜begin▁of▁sentence｜>") can never equal a
 * byte-level symbol, so it has no key. Byte-level forms and raw bytes
 * correspond one to one, so looking keys up is what llama.cpp's
 * text_to_token does on the mapped strings, for tokens of every type.
 *
 * Load-time fixes (llama-vocab.cpp load(), "auto-detect special tokens by
 * text"): llama.cpp turns tokens into control tokens by their text
 * (end-of-generation texts always, fill-in-middle texts when the file does
 * not name the token), and gpt-oss's channel tokens into user-defined ones.
 * These decide which tokens are cut out of a prompt, so they are applied
 * here the same way; where llama.cpp picks "the first" of several
 * fill-in-middle candidates in hash order, the lowest id is taken.
 *
 * Invariants: tok_bytes[i] and tok_key[i] point into tok_text[i], into the
 * separately allocated key, or (SentencePiece) into their own allocation
 * (tok_key then aliases tok_bytes); the token map holds every key, the
 * first id winning for equal keys (llama.cpp refuses such files).
 */
#include "engine/tokenizer.h"
#include "engine/gguf.h"
#include "engine/tokenizer_impl.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- GPT-2 byte <-> unicode --------------------------------------------- */

static int byte_is_printable(unsigned b)
{
    return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
}

uint32_t tk_byte_to_cp(uint8_t b)
{
    if (byte_is_printable(b))
        return b;
    unsigned n = 0; /* rank of b among the non-printable bytes */
    for (unsigned c = 0; c < b; c++)
        n += !byte_is_printable(c);
    return 256 + n;
}

int tk_cp_to_byte(uint32_t cp)
{
    if (cp < 256)
        return byte_is_printable(cp) ? (int)cp : -1;
    if (cp >= 256 + 68)
        return -1;
    unsigned n = cp - 256;
    for (unsigned c = 0; c < 256; c++)
        if (!byte_is_printable(c) && n-- == 0)
            return (int)c;
    return -1;
}

size_t tk_bytes_to_vocab(const unsigned char *raw, size_t n, char *out)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        k += tk_utf8_put(tk_byte_to_cp(raw[i]), out + k); /* < 0x800: 1-2 bytes */
    out[k] = 0;
    return k;
}

/* Raw bytes of a byte-level string; false when some character is not in
 * the mapping. out has room for n bytes. */
static bool vocab_to_bytes(const char *s, size_t n, char *out, size_t *outn)
{
    size_t i = 0, k = 0;
    while (i < n) {
        size_t bl;
        uint32_t cp = tk_utf8_next((const unsigned char *)s + i, n - i, &bl);
        int b = cp == TK_INVALID_CP ? -1 : tk_cp_to_byte(cp);
        if (b < 0)
            return false;
        out[k++] = (char)b;
        i += bl;
    }
    *outn = k;
    return true;
}

/* ---- byte-string hash maps ------------------------------------------------ */

static uint64_t hash_bytes(const void *p, size_t n, uint64_t h)
{
    const unsigned char *s = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ s[i]) * 0x100000001b3ull;
    return h;
}

#define FNV0 0xcbf29ce484222325ull

static uint64_t pair_hash(const char *l, size_t ln, const char *r, size_t rn)
{
    uint64_t h = hash_bytes(l, ln, FNV0);
    h = (h ^ 0xFF) * 0x100000001b3ull ^ ln;
    return hash_bytes(r, rn, h);
}

static int smap_init(tk_smap *m, size_t entries)
{
    m->cap = 16;
    while (m->cap < entries * 2)
        m->cap *= 2;
    m->slot = calloc(m->cap, sizeof *m->slot);
    return m->slot ? ENG_OK : ENG_ENOMEM;
}

/* Lookup in a map whose entry v has key keys[v], lens[v]. */
static int32_t smap_find(const tk_smap *m, char *const *keys, const size_t *lens, const char *s,
                         size_t n)
{
    uint64_t h = hash_bytes(s, n, FNV0);
    for (size_t i = h & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        uint32_t v = m->slot[i];
        if (!v)
            return -1;
        if (lens[v - 1] == n && !memcmp(keys[v - 1], s, n))
            return (int32_t)(v - 1);
    }
}

static void smap_add(tk_smap *m, char *const *keys, const size_t *lens, uint32_t id)
{
    if (!keys[id] || smap_find(m, keys, lens, keys[id], lens[id]) >= 0)
        return; /* first id wins */
    for (size_t i = hash_bytes(keys[id], lens[id], FNV0) & (m->cap - 1);;
         i = (i + 1) & (m->cap - 1))
        if (!m->slot[i]) {
            m->slot[i] = id + 1;
            return;
        }
}

int32_t tk_tokmap_find(const eng_tokenizer *t, const char *s, size_t n)
{
    return smap_find(&t->tokmap, t->tok_key, t->tok_key_len, s, n);
}

int32_t tk_merge_rank(const eng_tokenizer *t, const char *l, size_t ln, const char *r, size_t rn)
{
    uint64_t h = pair_hash(l, ln, r, rn);
    for (size_t i = h & (t->mergemap.cap - 1);; i = (i + 1) & (t->mergemap.cap - 1)) {
        uint32_t v = t->mergemap.slot[i];
        if (!v)
            return -1;
        size_t k = v - 1;
        if (t->mg_llen[k] == ln && t->mg_rlen[k] == rn && !memcmp(t->mg_left[k], l, ln) &&
            !memcmp(t->mg_right[k], r, rn))
            return (int32_t)k;
    }
}

static void mergemap_add(eng_tokenizer *t, uint32_t k)
{
    if (tk_merge_rank(t, t->mg_left[k], t->mg_llen[k], t->mg_right[k], t->mg_rlen[k]) >= 0)
        return; /* a repeated merge keeps its first (lowest) rank */
    uint64_t h = pair_hash(t->mg_left[k], t->mg_llen[k], t->mg_right[k], t->mg_rlen[k]);
    for (size_t i = h & (t->mergemap.cap - 1);; i = (i + 1) & (t->mergemap.cap - 1))
        if (!t->mergemap.slot[i]) {
            t->mergemap.slot[i] = k + 1;
            return;
        }
}

/* ---- tables ---------------------------------------------------------------- */

void eng_tokenizer_free(eng_tokenizer *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->n_vocab && t->tok_text; i++) {
        if (t->spm)
            free(t->tok_bytes[i]); /* tok_key aliases it */
        else if (t->tok_key[i] != t->tok_text[i])
            free(t->tok_key[i]);
        free(t->tok_text[i]);
    }
    for (size_t i = 0; i < t->n_merges && t->mg_left; i++)
        free(t->mg_left[i]); /* right side shares the allocation */
    free(t->tok_text);
    free(t->tok_text_len);
    free(t->tok_bytes);
    free(t->tok_len);
    free(t->tok_key);
    free(t->tok_key_len);
    free(t->tok_type);
    free(t->tok_attr);
    free(t->tok_score);
    free(t->tokmap.slot);
    free(t->mg_left);
    free(t->mg_right);
    free(t->mg_llen);
    free(t->mg_rlen);
    free(t->mergemap.slot);
    free(t->special);
    free(t);
}

static int alloc_tables(eng_tokenizer *t, size_t nv, size_t nm)
{
    t->n_vocab = nv;
    t->n_merges = nm;
    t->tok_text = calloc(nv + 1, sizeof *t->tok_text);
    t->tok_text_len = calloc(nv + 1, sizeof *t->tok_text_len);
    t->tok_bytes = calloc(nv + 1, sizeof *t->tok_bytes);
    t->tok_len = calloc(nv + 1, sizeof *t->tok_len);
    t->tok_key = calloc(nv + 1, sizeof *t->tok_key);
    t->tok_key_len = calloc(nv + 1, sizeof *t->tok_key_len);
    t->tok_type = calloc(nv + 1, sizeof *t->tok_type);
    t->tok_attr = calloc(nv + 1, sizeof *t->tok_attr);
    t->tok_score = calloc(nv + 1, sizeof *t->tok_score);
    for (int b = 0; b < 256; b++)
        t->byte_tok[b] = -1;
    t->unk = -1;
    t->mg_left = calloc(nm + 1, sizeof *t->mg_left);
    t->mg_right = calloc(nm + 1, sizeof *t->mg_right);
    t->mg_llen = calloc(nm + 1, sizeof *t->mg_llen);
    t->mg_rlen = calloc(nm + 1, sizeof *t->mg_rlen);
    if (!t->tok_text || !t->tok_text_len || !t->tok_bytes || !t->tok_len || !t->tok_key ||
        !t->tok_key_len || !t->tok_type || !t->tok_attr || !t->tok_score || !t->mg_left ||
        !t->mg_right || !t->mg_llen || !t->mg_rlen)
        return ENG_ENOMEM;
    if (smap_init(&t->tokmap, nv) || smap_init(&t->mergemap, nm))
        return ENG_ENOMEM;
    return ENG_OK;
}

/* "<0xAB>" -> 0xAB; -1 when s is not of that form. */
static int spm_byte_value(const char *s, size_t n)
{
    if (n != 6 || memcmp(s, "<0x", 3) || s[5] != '>')
        return -1;
    int v = 0;
    for (int i = 3; i < 5; i++) {
        char c = s[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0)
            return -1;
        v = v * 16 + d;
    }
    return v;
}

/* SentencePiece token text -> the bytes it stands for: U+2581 (lower one
 * eighth block, SentencePiece's space) becomes ' ', a byte token <0xXX>
 * its byte. Byte, control and unused tokens are not in the text map. */
static int spm_token(eng_tokenizer *t, size_t i, int type)
{
    const char *s = t->tok_text[i];
    size_t n = t->tok_text_len[i], k = 0;
    char *b = t->tok_bytes[i] = malloc(n + 1);
    if (!b)
        return ENG_ENOMEM;
    int v = type == ENG_TOKEN_BYTE ? spm_byte_value(s, n) : -1;
    if (v >= 0) {
        b[k++] = (char)v;
        if (t->byte_tok[v] < 0)
            t->byte_tok[v] = (int32_t)i;
    } else {
        for (size_t j = 0; j < n; j++) {
            if (j + 2 < n && !memcmp(s + j, "\xe2\x96\x81", 3)) {
                b[k++] = ' ';
                j += 2;
            } else {
                b[k++] = s[j];
            }
        }
    }
    t->tok_len[i] = k;
    if (type != ENG_TOKEN_CONTROL && type != ENG_TOKEN_UNUSED && type != ENG_TOKEN_BYTE) {
        t->tok_key[i] = b;
        t->tok_key_len[i] = k;
    }
    return ENG_OK;
}

/* llama_token_attr of a tokenizer.ggml.token_type value. */
static uint8_t attr_of_type(int type)
{
    static const uint8_t a[7] = {0, ENG_TOKATTR_NORMAL, ENG_TOKATTR_UNKNOWN, ENG_TOKATTR_CONTROL,
                                 ENG_TOKATTR_USER_DEFINED, ENG_TOKATTR_UNUSED, ENG_TOKATTR_BYTE};
    return type >= 0 && type < 7 ? a[type] : 0;
}

/* Stores token i: its text (llama.cpp names an empty one "[EMPTY_i]"), type
 * and, for BPE, its key. */
static int load_token(eng_tokenizer *t, size_t i, const char *s, size_t n, int type)
{
    char empty[32];
    if (n == 0) {
        n = (size_t)snprintf(empty, sizeof empty, "[EMPTY_%zu]", i);
        s = empty;
    }
    char *txt = t->tok_text[i] = malloc(n + 1);
    if (!txt)
        return ENG_ENOMEM;
    memcpy(txt, s, n);
    txt[n] = 0;
    t->tok_text_len[i] = n;
    t->tok_type[i] = type;
    t->tok_attr[i] = attr_of_type(type);
    if (t->spm)
        return spm_token(t, i, type);
    char *key = malloc(n + 1);
    if (!key)
        return ENG_ENOMEM;
    if (vocab_to_bytes(txt, n, key, &t->tok_key_len[i])) {
        t->tok_key[i] = key;
    } else {
        free(key);
        t->tok_key[i] = NULL;
    }
    return ENG_OK;
}

static int load_merge(eng_tokenizer *t, size_t k, const char *s, size_t n, eng_err *e)
{
    size_t sp = 1; /* split at the first space at index >= 1 (llama-vocab.cpp) */
    while (sp < n && s[sp] != ' ')
        sp++;
    if (n < 3 || sp >= n - 1)
        return eng_err_set(e, ENG_EFORMAT, "tokenizer.ggml.merges[%zu]: '%.*s' is not 'A B'", k,
                           (int)(n > 64 ? 64 : n), s);
    char *buf = malloc(n + 1);
    if (!buf)
        return eng_err_set(e, ENG_ENOMEM, "tokenizer: out of memory");
    t->mg_left[k] = buf;
    if (!vocab_to_bytes(s, sp, buf, &t->mg_llen[k])) {
        memcpy(buf, s, sp);
        t->mg_llen[k] = sp;
    }
    t->mg_right[k] = buf + t->mg_llen[k];
    if (!vocab_to_bytes(s + sp + 1, n - sp - 1, t->mg_right[k], &t->mg_rlen[k])) {
        memcpy(t->mg_right[k], s + sp + 1, n - sp - 1);
        t->mg_rlen[k] = n - sp - 1;
    }
    return ENG_OK;
}

/* ---- llama.cpp's load-time fixes (llama-vocab.cpp:2597-2946) -------------- */

/* Fill-in-middle kinds: each text list in llama.cpp's order. */
enum { FIM_PRE, FIM_SUF, FIM_MID, FIM_PAD, FIM_REP, FIM_SEP, FIM_N };
static const char *const k_fim[FIM_N][9] = {
    {"<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>", "<\xef\xbd\x9c" "fim\xe2\x96\x81" "begin\xef\xbd\x9c>",
     "<PRE>", "\xe2\x96\x81<PRE>", "<|code_prefix|>", "<|prefix|>"},
    {"<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>", "<\xef\xbd\x9c" "fim\xe2\x96\x81" "hole\xef\xbd\x9c>",
     "<SUF>", "\xe2\x96\x81<SUF>", "<|code_suffix|>", "<|suffix|>"},
    {"<|fim_middle|>", "<fim-middle>", "<fim_middle>", "<\xef\xbd\x9c" "fim\xe2\x96\x81" "end\xef\xbd\x9c>",
     "<MID>", "\xe2\x96\x81<MID>", "<|code_middle|>", "<|middle|>"},
    {"<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"},
    {"<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>"},
    {"<|file_sep|>"},
};
/* Texts that end generation: always control tokens. */
static const char *const k_eog[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<|flush|>", "<|calls|>",
    "<end_of_turn>", "<|endoftext|>", "</s>", "<|eom_id|>", "<EOT>", "_<EOT>", "[EOT]", "[EOS]",
    "<|end_of_text|>", "<end_of_utterance>", "<eos>", "<turn|>", "<|tool_response>",
    "<\xef\xbd\x9c" "end\xe2\x96\x81" "of\xe2\x96\x81" "sentence\xef\xbd\x9c>", "[e~[",
};

static int32_t find_text(const eng_tokenizer *t, const tk_smap *tm, const char *s)
{
    return smap_find(tm, t->tok_text, t->tok_text_len, s, strlen(s));
}

/* fim_set: bit k set when the file names fill-in-middle token kind k. */
static void apply_load_fixes(eng_tokenizer *t, const tk_smap *tm, unsigned fim_set)
{
    for (int k = 0; k < FIM_N; k++) {
        int32_t best = -1;
        for (int j = 0; !(fim_set >> k & 1) && j < 9 && k_fim[k][j]; j++) {
            int32_t id = find_text(t, tm, k_fim[k][j]);
            if (id >= 0 && (best < 0 || id < best))
                best = id;
        }
        if (best >= 0)
            t->tok_attr[best] |= ENG_TOKATTR_CONTROL;
    }
    for (size_t i = 0; i < t->n_vocab; i++)
        if ((t->tok_attr[i] & ENG_TOKATTR_CONTROL) && strstr(t->tok_text[i], "unused"))
            t->tok_attr[i] |= ENG_TOKATTR_UNUSED;
    for (size_t j = 0; j < sizeof k_eog / sizeof k_eog[0]; j++) {
        int32_t id = find_text(t, tm, k_eog[j]);
        if (id >= 0)
            t->tok_attr[id] |= ENG_TOKATTR_CONTROL;
    }
    static const char *const gptoss[] = {"<|channel|>", "<|message|>", "<|start|>", "<|constrain|>"};
    for (size_t j = 0; j < 4; j++) {
        int32_t id = find_text(t, tm, gptoss[j]);
        if (id >= 0)
            t->tok_attr[id] = ENG_TOKATTR_USER_DEFINED;
    }
    /* o200k_harmony: <|end|> is no end of generation next to <|return|> and
     * <|call|> (solar-open: <|calls|> and <|flush|>) */
    bool ret = find_text(t, tm, "<|return|>") >= 0, flush = find_text(t, tm, "<|flush|>") >= 0;
    bool call = find_text(t, tm, "<|call|>") >= 0 || find_text(t, tm, "<|calls|>") >= 0;
    int32_t end = find_text(t, tm, "<|end|>");
    if (end >= 0 && call && (ret || flush))
        t->tok_attr[end] = ENG_TOKATTR_USER_DEFINED;
    int32_t s = find_text(t, tm, "</s>");
    if (s >= 0 && find_text(t, tm, "<|tool_response>") >= 0)
        t->tok_attr[s] = ENG_TOKATTR_NORMAL;
}

/* Longest text first; equal lengths by id (llama.cpp's std::sort leaves
 * their order unspecified; it matters only for overlapping equal-length
 * special texts). */
static int cmp_special(const void *a, const void *b, void *arg)
{
    const eng_tokenizer *t = arg;
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    size_t lx = t->tok_text_len[x], ly = t->tok_text_len[y];
    if (lx != ly)
        return lx > ly ? -1 : 1;
    return (x > y) - (x < y);
}

static int build_specials(eng_tokenizer *t)
{
    t->special = malloc((t->n_vocab + 1) * sizeof *t->special);
    if (!t->special)
        return ENG_ENOMEM;
    for (size_t i = 0; i < t->n_vocab; i++)
        if (t->tok_attr[i] &
            (ENG_TOKATTR_CONTROL | ENG_TOKATTR_USER_DEFINED | ENG_TOKATTR_UNKNOWN))
            t->special[t->n_special++] = (int32_t)i;
    qsort_r(t->special, t->n_special, sizeof *t->special, cmp_special, t);
    return ENG_OK;
}

/* BPE: what a token decodes to (token_to_piece): special and user-defined
 * tokens their text, others their byte-level decoded bytes. */
static void bpe_pieces(eng_tokenizer *t)
{
    const int plain = ENG_TOKATTR_CONTROL | ENG_TOKATTR_UNKNOWN | ENG_TOKATTR_USER_DEFINED;
    for (size_t i = 0; i < t->n_vocab; i++) {
        bool key = t->tok_key[i] && !(t->tok_attr[i] & plain);
        t->tok_bytes[i] = key ? t->tok_key[i] : t->tok_text[i];
        t->tok_len[i] = key ? t->tok_key_len[i] : t->tok_text_len[i];
    }
}

static int check_special(int64_t id, size_t nv, const char *what, int32_t *out, eng_err *e)
{
    if (id < -1 || id >= (int64_t)nv)
        return eng_err_set(e, ENG_EFORMAT, "tokenizer.ggml.%s_token_id %lld out of range [0, %zu)",
                           what, (long long)id, nv);
    *out = (int32_t)id;
    return ENG_OK;
}

/* Builds the maps and the special list once every token and merge is in. */
static int finish_open(eng_tokenizer *t, int64_t bos, int64_t eos, unsigned fim_set, eng_err *e)
{
    tk_smap tm = {0};
    if (smap_init(&tm, t->n_vocab))
        return eng_err_set(e, ENG_ENOMEM, "tokenizer: out of memory");
    for (size_t i = 0; i < t->n_vocab; i++)
        smap_add(&tm, t->tok_text, t->tok_text_len, (uint32_t)i);
    apply_load_fixes(t, &tm, fim_set);
    free(tm.slot);
    if (!t->spm)
        bpe_pieces(t);
    for (size_t i = 0; i < t->n_vocab; i++)
        smap_add(&t->tokmap, t->tok_key, t->tok_key_len, (uint32_t)i);
    for (size_t k = 0; k < t->n_merges; k++)
        mergemap_add(t, (uint32_t)k);
    if (build_specials(t))
        return eng_err_set(e, ENG_ENOMEM, "tokenizer: out of memory");
    if (check_special(bos, t->n_vocab, "bos", &t->bos, e) ||
        check_special(eos, t->n_vocab, "eos", &t->eos, e))
        return e ? e->code : ENG_EFORMAT;
    return ENG_OK;
}

/* "gpt2" (byte-level BPE) or "llama" (SentencePiece); *spm says which. */
static int check_model(const char *model, size_t len, bool *spm, eng_err *e)
{
    *spm = len == 5 && !memcmp(model, "llama", 5);
    if (*spm || (len == 4 && !memcmp(model, "gpt2", 4)))
        return ENG_OK;
    return eng_err_set(e, ENG_EUNSUPPORTED,
                       "tokenizer model '%.*s' is not supported: only byte-level BPE ('gpt2') "
                       "and SentencePiece ('llama'); pass token ids instead",
                       (int)(len > 64 ? 64 : len), model);
}

/* A new tokenizer with tables for nv tokens and nm merges. */
static int tokenizer_new(eng_tokenizer **out, size_t nv, size_t nm, bool spm, eng_pretok pre,
                         eng_err *e)
{
    eng_tokenizer *t = calloc(1, sizeof *t);
    if (!t || alloc_tables(t, nv, nm)) {
        eng_tokenizer_free(t);
        return eng_err_set(e, ENG_ENOMEM, "tokenizer: out of memory");
    }
    t->spm = spm;
    t->pre = spm ? ENG_PRETOK_DEFAULT : pre;
    t->ignore_merges = !spm && pre == ENG_PRETOK_LLAMA3;
    *out = t;
    return ENG_OK;
}

int eng_tokenizer_open(eng_tokenizer **out, const eng_tokenizer_desc *d, eng_err *e)
{
    *out = NULL;
    bool spm;
    int rc = check_model(d->model ? d->model : "", d->model ? strlen(d->model) : 0, &spm, e);
    eng_pretok pre;
    if (rc || (rc = eng_pretok_parse(d->pre, &pre, e)))
        return rc;
    if (d->n_tokens == 0 || d->n_tokens > INT32_MAX || d->n_merges > INT32_MAX)
        return eng_err_set(e, ENG_EFORMAT, "tokenizer: %zu tokens, %zu merges: out of range",
                           d->n_tokens, d->n_merges);
    eng_tokenizer *t;
    if ((rc = tokenizer_new(&t, d->n_tokens, d->n_merges, spm, pre, e)))
        return rc;
    t->add_space_prefix = d->add_space_prefix;
    for (size_t i = 0; !rc && i < d->n_tokens; i++) {
        size_t n = d->token_lens ? d->token_lens[i] : strlen(d->tokens[i]);
        int type = d->token_types ? d->token_types[i] : ENG_TOKEN_NORMAL;
        t->tok_score[i] = d->scores ? d->scores[i] : 0.0f;
        if (load_token(t, i, d->tokens[i], n, type))
            rc = eng_err_set(e, ENG_ENOMEM, "tokenizer: out of memory");
    }
    if (!rc && spm)
        rc = check_special(d->unk_id, d->n_tokens, "unknown", &t->unk, e);
    for (size_t k = 0; !rc && k < d->n_merges; k++)
        rc = load_merge(t, k, d->merges[k], d->merge_lens ? d->merge_lens[k] : strlen(d->merges[k]),
                        e);
    t->add_bos = d->add_bos;
    t->add_eos = d->add_eos;
    if (!rc)
        rc = finish_open(t, d->bos_id, d->eos_id, 0, e);
    if (rc) {
        eng_tokenizer_free(t);
        return rc;
    }
    *out = t;
    return ENG_OK;
}

/* ---- open from GGUF ------------------------------------------------------- */

/* Special ids and flags, with llama.cpp's defaults for missing keys. */
typedef struct gguf_special {
    int64_t bos, eos, unk;
    bool add_bos, add_eos, add_space_prefix;
    unsigned fim_set; /* FIM_* kinds the file names */
} gguf_special;

static int gguf_id(const eng_gguf *g, const char *key, int64_t *id, eng_err *e)
{
    uint32_t v;
    if (!eng_gguf_has(g, key))
        return ENG_OK;
    int rc = eng_gguf_get_u32(g, key, &v, e);
    if (!rc)
        *id = v;
    return rc;
}

static int gguf_specials(const eng_gguf *g, bool spm, eng_pretok pre, uint64_t ntok,
                         gguf_special *sp, eng_err *e)
{
    /* SentencePiece: unk 0, bos 1, eos 2; BPE: bos = eos = 11, glm4 no bos;
     * a default beyond the vocabulary is dropped (llama-vocab.cpp:2507) */
    sp->unk = spm ? 0 : -1;
    sp->bos = spm ? 1 : pre == ENG_PRETOK_GLM4 ? -1 : 11;
    sp->eos = spm ? 2 : 11;
    int64_t *def[3] = {&sp->bos, &sp->eos, &sp->unk};
    for (int i = 0; i < 3; i++)
        if (*def[i] >= (int64_t)ntok)
            *def[i] = -1;
    int rc = gguf_id(g, "tokenizer.ggml.bos_token_id", &sp->bos, e);
    if (!rc)
        rc = gguf_id(g, "tokenizer.ggml.eos_token_id", &sp->eos, e);
    if (!rc)
        rc = gguf_id(g, "tokenizer.ggml.unknown_token_id", &sp->unk, e);
    static const char *const fim_keys[FIM_N][2] = {
        {"fim_pre", "prefix"}, {"fim_suf", "suffix"}, {"fim_mid", "middle"},
        {"fim_pad", NULL}, {"fim_rep", NULL}, {"fim_sep", NULL}};
    sp->fim_set = 0;
    for (int k = 0; k < FIM_N; k++)
        for (int j = 0; j < 2 && fim_keys[k][j]; j++) {
            char key[64];
            snprintf(key, sizeof key, "tokenizer.ggml.%s_token_id", fim_keys[k][j]);
            int64_t id = -1;
            if (!rc)
                rc = gguf_id(g, key, &id, e);
            if (id >= 0 && (uint64_t)id < ntok)
                sp->fim_set |= 1u << k;
        }
    bool bos_def = spm || pre == ENG_PRETOK_LLAMA3;
    if (!rc)
        rc = eng_gguf_get_bool_or(g, "tokenizer.ggml.add_bos_token", bos_def, &sp->add_bos, e);
    if (!rc)
        rc = eng_gguf_get_bool_or(g, "tokenizer.ggml.add_eos_token", false, &sp->add_eos, e);
    if (!rc)
        rc = eng_gguf_get_bool_or(g, "tokenizer.ggml.add_space_prefix", spm,
                                  &sp->add_space_prefix, e);
    return rc;
}

/* Loads tokens (with types and scores) and merges from the GGUF arrays. */
static int gguf_arrays(eng_tokenizer *t, const eng_gguf *g, int64_t ktok, int64_t ktype,
                       int64_t kscore, int64_t kmerge, eng_err *e)
{
    int rc = ENG_OK;
    for (size_t i = 0; !rc && i < t->n_vocab; i++) {
        eng_gguf_str s;
        int64_t type = ENG_TOKEN_NORMAL;
        rc = eng_gguf_kv_arr_str(g, ktok, i, &s, e);
        if (!rc && ktype >= 0)
            rc = eng_gguf_kv_arr_int(g, ktype, i, &type, e);
        if (!rc && kscore >= 0)
            rc = eng_gguf_kv_arr_f32(g, kscore, i, &t->tok_score[i], e);
        int ty = type < INT32_MIN || type > INT32_MAX ? -1 : (int)type;
        if (!rc && load_token(t, i, s.ptr, (size_t)s.len, ty))
            rc = eng_err_set(e, ENG_ENOMEM, "tokenizer: out of memory");
    }
    for (size_t k = 0; !rc && k < t->n_merges; k++) {
        eng_gguf_str s;
        rc = eng_gguf_kv_arr_str(g, kmerge, k, &s, e);
        if (!rc)
            rc = load_merge(t, k, s.ptr, (size_t)s.len, e);
    }
    return rc;
}

static int gguf_arr_len(const eng_gguf *g, const char *key, int64_t *idx, uint64_t *n, eng_err *e)
{
    int rc = eng_gguf_get_arr(g, key, idx, e);
    if (rc)
        return rc;
    *n = eng_gguf_kv_at(g, *idx)->arr_len;
    return ENG_OK;
}

/* An optional per-token array: its index (or -1 when absent), checked to
 * have one entry per token. */
static int gguf_token_arr(const eng_gguf *g, const char *key, uint64_t ntok, int64_t *idx,
                          eng_err *e)
{
    uint64_t n;
    *idx = -1;
    if (!eng_gguf_has(g, key))
        return ENG_OK;
    int rc = gguf_arr_len(g, key, idx, &n, e);
    if (!rc && n != ntok)
        rc = eng_err_set(e, ENG_EFORMAT, "%s has %llu entries, tokens %llu", key,
                         (unsigned long long)n, (unsigned long long)ntok);
    return rc;
}

/* tokenizer.ggml.model and .pre. */
static int gguf_kind(const eng_gguf *g, bool *spm, eng_pretok *kind, eng_err *e)
{
    eng_gguf_str model;
    char pre[64] = "default";
    int rc = eng_gguf_get_str(g, "tokenizer.ggml.model", &model, e);
    if (!rc)
        rc = check_model(model.ptr, (size_t)model.len, spm, e);
    if (!rc && !*spm && eng_gguf_has(g, "tokenizer.ggml.pre")) {
        eng_gguf_str s;
        rc = eng_gguf_get_str(g, "tokenizer.ggml.pre", &s, e);
        if (!rc)
            eng_gguf_str_copy(s, pre, sizeof pre);
    }
    *kind = ENG_PRETOK_DEFAULT;
    return rc ? rc : eng_pretok_parse(pre, kind, e);
}

/* Reads and checks every key; *t is allocated and filled on success. */
static int gguf_load(eng_tokenizer **out, const eng_gguf *g, eng_err *e)
{
    bool spm = false;
    eng_pretok kind;
    int64_t ktok = -1, ktype = -1, kscore = -1, kmerge = -1;
    uint64_t ntok = 0, nmerge = 0;
    int rc = gguf_kind(g, &spm, &kind, e);
    if (!rc)
        rc = gguf_arr_len(g, "tokenizer.ggml.tokens", &ktok, &ntok, e);
    /* SentencePiece merges by scores; Kimi-K2's merges may be absent */
    bool need_merges = !spm && !(kind == ENG_PRETOK_KIMI_K2 &&
                                 !eng_gguf_has(g, "tokenizer.ggml.merges"));
    if (!rc && need_merges)
        rc = gguf_arr_len(g, "tokenizer.ggml.merges", &kmerge, &nmerge, e);
    if (!rc)
        rc = gguf_token_arr(g, "tokenizer.ggml.token_type", ntok, &ktype, e);
    if (!rc && spm)
        rc = gguf_token_arr(g, "tokenizer.ggml.scores", ntok, &kscore, e);
    if (!rc && (ntok == 0 || ntok > INT32_MAX || nmerge > INT32_MAX))
        rc = eng_err_set(e, ENG_EFORMAT, "tokenizer: %llu tokens, %llu merges: out of range",
                         (unsigned long long)ntok, (unsigned long long)nmerge);
    gguf_special sp;
    if (!rc)
        rc = gguf_specials(g, spm, kind, ntok, &sp, e);
    eng_tokenizer *t = NULL;
    if (!rc)
        rc = tokenizer_new(&t, (size_t)ntok, (size_t)nmerge, spm, kind, e);
    if (rc)
        return rc;
    t->add_bos = sp.add_bos;
    t->add_eos = sp.add_eos;
    t->add_space_prefix = sp.add_space_prefix;
    rc = gguf_arrays(t, g, ktok, ktype, kscore, kmerge, e);
    if (!rc && spm)
        rc = check_special(sp.unk, t->n_vocab, "unknown", &t->unk, e);
    if (!rc)
        rc = finish_open(t, sp.bos, sp.eos, sp.fim_set, e);
    if (rc) {
        eng_tokenizer_free(t);
        return rc;
    }
    *out = t;
    return ENG_OK;
}

int eng_tokenizer_open_gguf(eng_tokenizer **out, const eng_gguf *g, eng_err *e)
{
    *out = NULL;
    int rc = gguf_load(out, g, e);
    if (rc)
        eng_err_prefix(e, "%s", eng_gguf_path(g));
    return rc;
}

/* ---- decode and accessors ---------------------------------------------------- */

/* Tokens whose piece is empty when decoding without special tokens
 * (llama.cpp token_to_piece with special = false). */
static bool piece_silent(const eng_tokenizer *t, int32_t id)
{
    return (t->tok_attr[id] & (ENG_TOKATTR_CONTROL | ENG_TOKATTR_UNKNOWN)) ||
           !(t->tok_attr[id] & (ENG_TOKATTR_NORMAL | ENG_TOKATTR_USER_DEFINED | ENG_TOKATTR_BYTE));
}

int eng_tokenizer_piece(const eng_tokenizer *t, int32_t id, char *buf, size_t cap)
{
    if (id < 0 || (size_t)id >= t->n_vocab)
        return -1;
    size_t n = piece_silent(t, id) ? 0 : t->tok_len[id];
    if (cap) {
        size_t k = n < cap - 1 ? n : cap - 1;
        memcpy(buf, t->tok_bytes[id], k);
        buf[k] = 0;
    }
    return (int)n;
}

int eng_tokenizer_decode(const eng_tokenizer *t, const int32_t *ids, size_t n, char **text,
                         size_t *len, eng_err *e)
{
    *text = NULL;
    *len = 0;
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || (size_t)ids[i] >= t->n_vocab)
            return eng_err_set(e, ENG_EINVAL, "token id %lld at position %zu out of range [0, %zu)",
                               (long long)ids[i], i, t->n_vocab);
        total += piece_silent(t, ids[i]) ? 0 : t->tok_len[ids[i]];
    }
    char *buf = malloc(total + 1);
    if (!buf)
        return eng_err_set(e, ENG_ENOMEM, "tokenizer: out of memory decoding %zu tokens", n);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (piece_silent(t, ids[i]))
            continue;
        memcpy(buf + k, t->tok_bytes[ids[i]], t->tok_len[ids[i]]);
        k += t->tok_len[ids[i]];
    }
    buf[k] = 0;
    *text = buf;
    *len = k;
    return ENG_OK;
}

const char *eng_tokenizer_token_text(const eng_tokenizer *t, int32_t id, size_t *len)
{
    if (id < 0 || (size_t)id >= t->n_vocab)
        return NULL;
    if (len)
        *len = t->tok_text_len[id];
    return t->tok_text[id];
}

int eng_tokenizer_token_type(const eng_tokenizer *t, int32_t id)
{
    return id < 0 || (size_t)id >= t->n_vocab ? -1 : t->tok_type[id];
}

int eng_tokenizer_token_attr(const eng_tokenizer *t, int32_t id)
{
    return id < 0 || (size_t)id >= t->n_vocab ? 0 : t->tok_attr[id];
}

size_t eng_tokenizer_n_vocab(const eng_tokenizer *t) { return t->n_vocab; }
int32_t eng_tokenizer_bos(const eng_tokenizer *t) { return t->bos; }
int32_t eng_tokenizer_eos(const eng_tokenizer *t) { return t->eos; }
eng_pretok eng_tokenizer_pretok(const eng_tokenizer *t) { return t->pre; }
int eng_tokenizer_add_bos(const eng_tokenizer *t) { return t->add_bos; }
int eng_tokenizer_is_spm(const eng_tokenizer *t) { return t->spm; }
