/*
 * tokenizer.c — byte-level BPE encode/decode (see tokenizer.h).
 *
 * Design. At open every token and merge is converted from its byte-level
 * form (GPT-2 bytes_to_unicode) back to raw bytes, so encoding works on the
 * text's bytes directly: a pre-tokenizer piece starts as one symbol per
 * byte, merges join adjacent symbols, and a symbol's bytes are looked up in
 * a hash table of token bytes. Byte-level forms and raw bytes correspond
 * one to one, so this is the same computation llama.cpp does on the mapped
 * strings.
 *
 * Merge order (llm_tokenizer_bpe_session): repeatedly merge the adjacent
 * pair with the lowest merge rank, the leftmost one among equal ranks. A
 * min-heap of candidate pairs keyed (rank, left position) holds it; entries
 * made stale by an earlier merge are recognised by the symbols' lengths
 * (symbols only grow, so same start and same lengths = same text).
 *
 * Invariants: tok_bytes[i] points into `arena`; the token map holds only
 * normal, byte, unknown and user-defined tokens (control and unused tokens
 * are never produced from text), the first id wins for duplicate bytes.
 */
#include "engine/tokenizer.h"
#include "engine/gguf.h"
#include "engine/tokenizer_int.h"

#include <stdbool.h>
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
    for (size_t i = 0; i < n; i++) {
        uint32_t cp = tk_byte_to_cp(raw[i]);
        if (cp < 0x80) {
            out[k++] = (char)cp;
        } else { /* all mapped code points are < 0x800: two bytes */
            out[k++] = (char)(0xC0 | (cp >> 6));
            out[k++] = (char)(0x80 | (cp & 0x3F));
        }
    }
    out[k] = 0;
    return k;
}

/* Raw bytes of a byte-level string; false when some character is not in
 * the mapping (then the caller keeps the text as it is). */
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

/* ---- byte-string hash map ------------------------------------------------ */

typedef struct smap {
    uint32_t *slot;   /* [cap] entry index + 1, 0 = empty                */
    size_t cap;       /* power of two, >= 2 * entries                    */
} smap;

static uint64_t hash_bytes(const void *p, size_t n, uint64_t h)
{
    const unsigned char *s = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ s[i]) * 0x100000001b3ull;
    return h;
}

struct eng_tokenizer {
    eng_pretok pre;
    size_t n_vocab;
    char **tok_bytes;     /* [n_vocab] raw bytes of each token (into arena) */
    size_t *tok_len;      /* [n_vocab]                                      */
    char **tok_text;      /* [n_vocab] vocab string as stored, NUL-terminated */
    size_t *tok_text_len;
    int32_t *tok_type;    /* [n_vocab]                                      */
    smap tokmap;          /* raw bytes -> token id                          */
    size_t n_merges;
    char **mg_left, **mg_right; /* [n_merges] raw bytes of each side        */
    size_t *mg_llen, *mg_rlen;
    smap mergemap;        /* (left, right) -> rank                           */
    int32_t bos, eos;
    bool add_bos, add_eos;
    /* SentencePiece (tokenizer.ggml.model "llama"): tok_bytes hold the
     * decoded text (U+2581 as a space, <0xXX> as the byte), so the token
     * map works on the text's own bytes as for BPE. */
    bool spm;
    bool add_space_prefix;  /* a space is put before the text            */
    float *tok_score;       /* [n_vocab] merge priority, higher first     */
    int32_t byte_tok[256];  /* <0xXX> byte-fallback tokens, -1 if missing */
    int32_t unk;            /* unknown token, -1 when none                */
};

static uint64_t tok_hash(const eng_tokenizer *t, uint32_t id)
{
    return hash_bytes(t->tok_bytes[id], t->tok_len[id], 0xcbf29ce484222325ull);
}

static uint64_t pair_hash(const char *l, size_t ln, const char *r, size_t rn)
{
    uint64_t h = hash_bytes(l, ln, 0xcbf29ce484222325ull);
    h = (h ^ 0xFF) * 0x100000001b3ull ^ ln;
    return hash_bytes(r, rn, h);
}

static int smap_init(smap *m, size_t entries)
{
    m->cap = 16;
    while (m->cap < entries * 2)
        m->cap *= 2;
    m->slot = calloc(m->cap, sizeof *m->slot);
    return m->slot ? ENG_OK : ENG_ENOMEM;
}

static int32_t tokmap_find(const eng_tokenizer *t, const char *s, size_t n)
{
    uint64_t h = hash_bytes(s, n, 0xcbf29ce484222325ull);
    for (size_t i = h & (t->tokmap.cap - 1);; i = (i + 1) & (t->tokmap.cap - 1)) {
        uint32_t v = t->tokmap.slot[i];
        if (!v)
            return -1;
        if (t->tok_len[v - 1] == n && !memcmp(t->tok_bytes[v - 1], s, n))
            return (int32_t)(v - 1);
    }
}

static void tokmap_add(eng_tokenizer *t, uint32_t id)
{
    if (tokmap_find(t, t->tok_bytes[id], t->tok_len[id]) >= 0)
        return; /* first id wins */
    for (size_t i = tok_hash(t, id) & (t->tokmap.cap - 1);; i = (i + 1) & (t->tokmap.cap - 1))
        if (!t->tokmap.slot[i]) {
            t->tokmap.slot[i] = id + 1;
            return;
        }
}

static int32_t merge_rank(const eng_tokenizer *t, const char *l, size_t ln, const char *r,
                          size_t rn)
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
    if (merge_rank(t, t->mg_left[k], t->mg_llen[k], t->mg_right[k], t->mg_rlen[k]) >= 0)
        return; /* a repeated merge keeps its first (lowest) rank */
    uint64_t h = pair_hash(t->mg_left[k], t->mg_llen[k], t->mg_right[k], t->mg_rlen[k]);
    for (size_t i = h & (t->mergemap.cap - 1);; i = (i + 1) & (t->mergemap.cap - 1))
        if (!t->mergemap.slot[i]) {
            t->mergemap.slot[i] = k + 1;
            return;
        }
}

/* ---- open ------------------------------------------------------------------ */

void eng_tokenizer_free(eng_tokenizer *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->n_vocab && t->tok_bytes; i++) {
        free(t->tok_bytes[i]);
        free(t->tok_text ? t->tok_text[i] : NULL);
    }
    for (size_t i = 0; i < t->n_merges && t->mg_left; i++)
        free(t->mg_left[i]); /* right side shares the allocation */
    free(t->tok_bytes);
    free(t->tok_len);
    free(t->tok_text);
    free(t->tok_text_len);
    free(t->tok_type);
    free(t->tok_score);
    free(t->tokmap.slot);
    free(t->mg_left);
    free(t->mg_right);
    free(t->mg_llen);
    free(t->mg_rlen);
    free(t->mergemap.slot);
    free(t);
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
 * its byte. */
static void spm_token_bytes(eng_tokenizer *t, size_t i, const char *s, size_t n, int type)
{
    int b = type == ENG_TOKEN_BYTE ? spm_byte_value(s, n) : -1;
    if (b >= 0) {
        t->tok_bytes[i][0] = (char)b;
        t->tok_len[i] = 1;
        if (t->byte_tok[b] < 0)
            t->byte_tok[b] = (int32_t)i;
        return;
    }
    size_t k = 0;
    for (size_t j = 0; j < n; j++) {
        if (j + 2 < n && !memcmp(s + j, "\xe2\x96\x81", 3)) {
            t->tok_bytes[i][k++] = ' ';
            j += 2;
        } else {
            t->tok_bytes[i][k++] = s[j];
        }
    }
    t->tok_len[i] = k;
}

static int load_token(eng_tokenizer *t, size_t i, const char *s, size_t n, int type)
{
    t->tok_text[i] = malloc(n + 1);
    t->tok_bytes[i] = malloc(n + 1);
    if (!t->tok_text[i] || !t->tok_bytes[i])
        return ENG_ENOMEM;
    memcpy(t->tok_text[i], s, n);
    t->tok_text[i][n] = 0;
    t->tok_text_len[i] = n;
    t->tok_type[i] = type;
    if (t->spm) {
        spm_token_bytes(t, i, s, n, type);
        return ENG_OK;
    }
    /* user-defined and control tokens are plain text; others byte-level */
    bool plain = type == ENG_TOKEN_USER_DEFINED || type == ENG_TOKEN_CONTROL ||
                 !vocab_to_bytes(s, n, t->tok_bytes[i], &t->tok_len[i]);
    if (plain) {
        memcpy(t->tok_bytes[i], s, n);
        t->tok_len[i] = n;
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

static int alloc_tables(eng_tokenizer *t, size_t nv, size_t nm)
{
    t->n_vocab = nv;
    t->n_merges = nm;
    t->tok_bytes = calloc(nv + 1, sizeof *t->tok_bytes);
    t->tok_text = calloc(nv + 1, sizeof *t->tok_text);
    t->tok_len = calloc(nv + 1, sizeof *t->tok_len);
    t->tok_text_len = calloc(nv + 1, sizeof *t->tok_text_len);
    t->tok_type = calloc(nv + 1, sizeof *t->tok_type);
    t->tok_score = calloc(nv + 1, sizeof *t->tok_score);
    for (int b = 0; b < 256; b++)
        t->byte_tok[b] = -1;
    t->unk = -1;
    t->mg_left = calloc(nm + 1, sizeof *t->mg_left);
    t->mg_right = calloc(nm + 1, sizeof *t->mg_right);
    t->mg_llen = calloc(nm + 1, sizeof *t->mg_llen);
    t->mg_rlen = calloc(nm + 1, sizeof *t->mg_rlen);
    if (!t->tok_bytes || !t->tok_text || !t->tok_len || !t->tok_text_len || !t->tok_type ||
        !t->tok_score ||
        !t->mg_left || !t->mg_right || !t->mg_llen || !t->mg_rlen)
        return ENG_ENOMEM;
    if (smap_init(&t->tokmap, nv) || smap_init(&t->mergemap, nm))
        return ENG_ENOMEM;
    return ENG_OK;
}

static int check_special(int64_t id, size_t nv, const char *what, int32_t *out, eng_err *e)
{
    if (id < -1 || id >= (int64_t)nv)
        return eng_err_set(e, ENG_EFORMAT, "tokenizer.ggml.%s_token_id %lld out of range [0, %zu)",
                           what, (long long)id, nv);
    *out = (int32_t)id;
    return ENG_OK;
}

/* Builds the maps once every token and merge is loaded. */
static int finish_open(eng_tokenizer *t, int64_t bos, int64_t eos, eng_err *e)
{
    /* SentencePiece byte tokens are only the fallback: the token "a" and
     * <0x61> decode alike, and text finds "a" (llama.cpp's text_to_token). */
    for (size_t i = 0; i < t->n_vocab; i++)
        if (t->tok_type[i] != ENG_TOKEN_CONTROL && t->tok_type[i] != ENG_TOKEN_UNUSED &&
            !(t->spm && t->tok_type[i] == ENG_TOKEN_BYTE))
            tokmap_add(t, (uint32_t)i);
    for (size_t k = 0; k < t->n_merges; k++)
        mergemap_add(t, (uint32_t)k);
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
    eng_tokenizer *t = calloc(1, sizeof *t);
    if (!t || alloc_tables(t, d->n_tokens, d->n_merges)) {
        eng_tokenizer_free(t);
        return eng_err_set(e, ENG_ENOMEM, "tokenizer: out of memory");
    }
    t->pre = pre;
    t->spm = spm;
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
        rc = finish_open(t, d->bos_id, d->eos_id, e);
    if (rc) {
        eng_tokenizer_free(t);
        return rc;
    }
    *out = t;
    return ENG_OK;
}

/* ---- open from GGUF ------------------------------------------------------- */

/* Special ids and flags. Where a key is missing, SentencePiece files take
 * llama.cpp's defaults for them (unk 0, bos 1, eos 2, BOS added, a space
 * prefix), BPE files none. */
typedef struct gguf_special {
    int64_t bos, eos, unk;
    bool add_bos, add_eos, add_space_prefix;
} gguf_special;

static int gguf_specials(const eng_gguf *g, bool spm, uint64_t ntok, gguf_special *sp,
                         eng_err *e)
{
    static const char *const keys[3] = {"tokenizer.ggml.bos_token_id",
                                        "tokenizer.ggml.eos_token_id",
                                        "tokenizer.ggml.unknown_token_id"};
    int64_t *dst[3] = {&sp->bos, &sp->eos, &sp->unk};
    for (int i = 0; i < 3; i++) {
        uint32_t v;
        *dst[i] = spm && (uint64_t)(i + 1) % 3 < ntok ? (i + 1) % 3 : -1;
        if (!eng_gguf_has(g, keys[i]))
            continue;
        int rc = eng_gguf_get_u32(g, keys[i], &v, e);
        if (rc)
            return rc;
        *dst[i] = v;
    }
    int rc = eng_gguf_get_bool_or(g, "tokenizer.ggml.add_bos_token", spm, &sp->add_bos, e);
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
        if (!rc && load_token(t, i, s.ptr, (size_t)s.len, (int)type))
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

/* Reads and checks every key; *t is allocated and filled on success. */
static int gguf_load(eng_tokenizer **out, const eng_gguf *g, eng_err *e)
{
    eng_gguf_str model;
    char pre[64] = "default";
    bool spm = false;
    int rc = eng_gguf_get_str(g, "tokenizer.ggml.model", &model, e);
    if (!rc)
        rc = check_model(model.ptr, (size_t)model.len, &spm, e);
    if (!rc && eng_gguf_has(g, "tokenizer.ggml.pre")) {
        eng_gguf_str s;
        rc = eng_gguf_get_str(g, "tokenizer.ggml.pre", &s, e);
        if (!rc)
            eng_gguf_str_copy(s, pre, sizeof pre);
    }
    eng_pretok kind = ENG_PRETOK_DEFAULT;
    int64_t ktok = -1, ktype = -1, kscore = -1, kmerge = -1;
    uint64_t ntok = 0, nmerge = 0;
    gguf_special sp;
    if (!rc)
        rc = eng_pretok_parse(pre, &kind, e);
    if (!rc)
        rc = gguf_arr_len(g, "tokenizer.ggml.tokens", &ktok, &ntok, e);
    if (!rc && !spm) /* SentencePiece merges by token scores, not a merge list */
        rc = gguf_arr_len(g, "tokenizer.ggml.merges", &kmerge, &nmerge, e);
    if (!rc)
        rc = gguf_token_arr(g, "tokenizer.ggml.token_type", ntok, &ktype, e);
    if (!rc && spm)
        rc = gguf_token_arr(g, "tokenizer.ggml.scores", ntok, &kscore, e);
    if (!rc && (ntok == 0 || ntok > INT32_MAX || nmerge > INT32_MAX))
        rc = eng_err_set(e, ENG_EFORMAT, "tokenizer: %llu tokens, %llu merges: out of range",
                         (unsigned long long)ntok, (unsigned long long)nmerge);
    if (!rc)
        rc = gguf_specials(g, spm, ntok, &sp, e);
    if (rc)
        return rc;
    eng_tokenizer *t = calloc(1, sizeof *t);
    if (!t || alloc_tables(t, (size_t)ntok, (size_t)nmerge)) {
        eng_tokenizer_free(t);
        return eng_err_set(e, ENG_ENOMEM, "tokenizer: out of memory");
    }
    t->pre = kind;
    t->spm = spm;
    t->add_bos = sp.add_bos;
    t->add_eos = sp.add_eos;
    t->add_space_prefix = sp.add_space_prefix;
    rc = gguf_arrays(t, g, ktok, ktype, kscore, kmerge, e);
    if (!rc && spm)
        rc = check_special(sp.unk, t->n_vocab, "unknown", &t->unk, e);
    if (!rc)
        rc = finish_open(t, sp.bos, sp.eos, e);
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

/* ---- encode ----------------------------------------------------------------- */

typedef struct sym {
    size_t start, len;  /* bytes of the piece                      */
    int prev, next;     /* neighbours, -1 at the ends              */
} sym;

typedef struct cand {
    double prio;        /* lower first: a BPE merge rank, minus an SPM score */
    int left, right;
    size_t llen, rlen;  /* symbol lengths when pushed (staleness)   */
} cand;

typedef struct heap {
    cand *a;
    size_t n, cap;
} heap;

static int cand_less(const cand *x, const cand *y)
{
    return x->prio < y->prio || (x->prio == y->prio && x->left < y->left);
}

static int heap_push(heap *h, cand c)
{
    if (h->n == h->cap) {
        size_t nc = h->cap ? h->cap * 2 : 64;
        cand *na = realloc(h->a, nc * sizeof *na);
        if (!na)
            return ENG_ENOMEM;
        h->a = na;
        h->cap = nc;
    }
    size_t i = h->n++;
    while (i > 0 && cand_less(&c, &h->a[(i - 1) / 2])) {
        h->a[i] = h->a[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    h->a[i] = c;
    return ENG_OK;
}

static cand heap_pop(heap *h)
{
    cand top = h->a[0], last = h->a[--h->n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->n)
            break;
        if (c + 1 < h->n && cand_less(&h->a[c + 1], &h->a[c]))
            c++;
        if (!cand_less(&h->a[c], &last))
            break;
        h->a[i] = h->a[c];
        i = c;
    }
    if (h->n)
        h->a[i] = last;
    return top;
}

static int push_pair(const eng_tokenizer *t, const char *p, const sym *s, int l, int r, heap *h)
{
    if (l < 0 || r < 0)
        return ENG_OK;
    int32_t rank = merge_rank(t, p + s[l].start, s[l].len, p + s[r].start, s[r].len);
    if (rank < 0)
        return ENG_OK;
    return heap_push(h, (cand){(double)rank, l, r, s[l].len, s[r].len});
}

typedef struct idbuf {
    int32_t *a;
    size_t n, cap;
} idbuf;

static int ids_push(idbuf *b, int32_t id)
{
    if (b->n == b->cap) {
        size_t nc = b->cap ? b->cap * 2 : 64;
        int32_t *na = realloc(b->a, nc * sizeof *na);
        if (!na)
            return ENG_ENOMEM;
        b->a = na;
        b->cap = nc;
    }
    b->a[b->n++] = id;
    return ENG_OK;
}

/* Emits the ids of one merged symbol; bytes without a token are looked up
 * one by one, and dropped when even that fails (llama.cpp does the same). */
static int emit_symbol(const eng_tokenizer *t, const char *p, size_t len, idbuf *out)
{
    int32_t id = tokmap_find(t, p, len);
    if (id >= 0)
        return ids_push(out, id);
    for (size_t i = 0; i < len; i++) {
        int32_t b = tokmap_find(t, p + i, 1);
        if (b >= 0 && ids_push(out, b))
            return ENG_ENOMEM;
    }
    return ENG_OK;
}

typedef int (*push_fn)(const eng_tokenizer *t, const char *p, const sym *s, int l, int r,
                       heap *h);

/* Merges the n0 symbols s[0..n0) of p (linked in order) best candidate
 * first, as `push` ranks adjacent pairs, until no candidate is left. */
static int merge_symbols(const eng_tokenizer *t, const char *p, sym *s, size_t n0, heap *h,
                         push_fn push)
{
    h->n = 0;
    int rc = ENG_OK;
    for (size_t i = 0; !rc && i + 1 < n0; i++)
        rc = push(t, p, s, (int)i, (int)i + 1, h);
    while (!rc && h->n) {
        cand c = heap_pop(h);
        sym *l = &s[c.left], *r = &s[c.right];
        if (l->len != c.llen || r->len != c.rlen || l->next != c.right)
            continue; /* stale: one side merged since */
        l->len += r->len;
        r->len = 0;
        l->next = r->next;
        if (r->next >= 0)
            s[r->next].prev = c.left;
        rc = push(t, p, s, l->prev, c.left, h);
        if (!rc)
            rc = push(t, p, s, c.left, l->next, h);
    }
    return rc;
}

/* BPE on one pre-tokenizer piece p[0..n). s has room for n symbols. */
static int bpe_piece(const eng_tokenizer *t, const char *p, size_t n, sym *s, heap *h,
                     idbuf *out)
{
    for (size_t i = 0; i < n; i++)
        s[i] = (sym){i, 1, (int)i - 1, i + 1 < n ? (int)i + 1 : -1};
    int rc = merge_symbols(t, p, s, n, h, push_pair);
    for (int i = n ? 0 : -1; !rc && i >= 0; i = s[i].next)
        rc = emit_symbol(t, p + s[i].start, s[i].len, out);
    return rc;
}

/* ---- SentencePiece (llama.cpp's llm_tokenizer_spm) -------------------------
 * The whole text is one piece (a space put before it when the vocabulary
 * says add_space_prefix); it starts as one symbol per UTF-8 character; the
 * adjacent pair whose concatenation is a token with the highest score is
 * merged first (ties: leftmost); a symbol that is not a token at the end
 * falls back to its bytes' <0xXX> tokens (or the unknown token). Token
 * bytes hold spaces where the vocabulary has U+2581, so no escaping of the
 * text is needed. */

static int spm_push(const eng_tokenizer *t, const char *p, const sym *s, int l, int r, heap *h)
{
    if (l < 0 || r < 0)
        return ENG_OK;
    /* adjacent symbols are contiguous in p */
    int32_t id = tokmap_find(t, p + s[l].start, s[l].len + s[r].len);
    if (id < 0)
        return ENG_OK;
    return heap_push(h, (cand){-(double)t->tok_score[id], l, r, s[l].len, s[r].len});
}

/* Bytes of the UTF-8 character starting with b (a stray continuation or
 * invalid lead byte counts as one), as llama.cpp's unicode_len_utf8. */
static size_t spm_char_len(unsigned char b)
{
    return b < 0xC0 ? 1 : b < 0xE0 ? 2 : b < 0xF0 ? 3 : b < 0xF8 ? 4 : 1;
}

static int spm_emit(const eng_tokenizer *t, const char *p, size_t len, idbuf *out)
{
    int32_t id = tokmap_find(t, p, len);
    if (id >= 0)
        return ids_push(out, id);
    for (size_t i = 0; i < len; i++) {
        int32_t b = t->byte_tok[(unsigned char)p[i]];
        b = b >= 0 ? b : t->unk;
        if (b >= 0 && ids_push(out, b))
            return ENG_ENOMEM;
    }
    return ENG_OK;
}

static int spm_encode(const eng_tokenizer *t, const char *text, size_t len, idbuf *out)
{
    if (len == 0)
        return ENG_OK;
    size_t pre = t->add_space_prefix ? 1 : 0, n = len + pre;
    char *p = malloc(n);
    sym *s = malloc(n * sizeof *s);
    heap h = {0};
    int rc = p && s ? ENG_OK : ENG_ENOMEM;
    size_t ns = 0;
    if (!rc) {
        p[0] = ' ';
        memcpy(p + pre, text, len);
        for (size_t i = 0; i < n; ns++) {
            size_t cl = spm_char_len((unsigned char)p[i]);
            cl = cl < n - i ? cl : n - i;
            s[ns] = (sym){i, cl, (int)ns - 1, -1};
            if (ns)
                s[ns - 1].next = (int)ns;
            i += cl;
        }
        rc = merge_symbols(t, p, s, ns, &h, spm_push);
    }
    for (int i = ns ? 0 : -1; !rc && i >= 0; i = s[i].next)
        rc = spm_emit(t, p + s[i].start, s[i].len, out);
    free(p);
    free(s);
    free(h.a);
    return rc;
}

static int spm_encode_all(const eng_tokenizer *t, const char *text, size_t len,
                          int add_special, int32_t **ids, size_t *n, eng_err *e)
{
    idbuf out = {0};
    int rc = ENG_OK;
    if (add_special && t->add_bos && t->bos >= 0)
        rc = ids_push(&out, t->bos);
    if (!rc)
        rc = spm_encode(t, text, len, &out);
    if (!rc && add_special && t->add_eos && t->eos >= 0)
        rc = ids_push(&out, t->eos);
    if (rc) {
        free(out.a);
        return eng_err_set(e, rc, "tokenizer: out of memory encoding %zu bytes", len);
    }
    *ids = out.a;
    *n = out.n;
    return ENG_OK;
}

int eng_tokenizer_encode(const eng_tokenizer *t, const char *text, size_t len, int add_special,
                         int32_t **ids, size_t *n, eng_err *e)
{
    *ids = NULL;
    *n = 0;
    if (t->spm)
        return spm_encode_all(t, text, len, add_special, ids, n, e);
    size_t *off = NULL, npieces = 0;
    int rc = eng_pretok_split(t->pre, text, len, &off, &npieces, e);
    if (rc)
        return rc;
    size_t maxp = 0;
    for (size_t i = 0; i < npieces; i++)
        maxp = off[i + 1] - off[i] > maxp ? off[i + 1] - off[i] : maxp;
    idbuf out = {0};
    heap h = {0};
    sym *s = malloc((maxp + 1) * sizeof *s);
    rc = s ? ENG_OK : ENG_ENOMEM;
    if (!rc && add_special && t->add_bos && t->bos >= 0)
        rc = ids_push(&out, t->bos);
    for (size_t i = 0; !rc && i < npieces; i++)
        rc = bpe_piece(t, text + off[i], off[i + 1] - off[i], s, &h, &out);
    if (!rc && add_special && t->add_eos && t->eos >= 0)
        rc = ids_push(&out, t->eos);
    free(s);
    free(h.a);
    free(off);
    if (rc) {
        free(out.a);
        return eng_err_set(e, rc, "tokenizer: out of memory encoding %zu bytes", len);
    }
    *ids = out.a;
    *n = out.n;
    return ENG_OK;
}

/* ---- decode and accessors ---------------------------------------------------- */

static bool piece_silent(const eng_tokenizer *t, int32_t id)
{
    return t->tok_type[id] == ENG_TOKEN_CONTROL || t->tok_type[id] == ENG_TOKEN_UNUSED;
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

size_t eng_tokenizer_n_vocab(const eng_tokenizer *t) { return t->n_vocab; }
int32_t eng_tokenizer_bos(const eng_tokenizer *t) { return t->bos; }
int32_t eng_tokenizer_eos(const eng_tokenizer *t) { return t->eos; }
eng_pretok eng_tokenizer_pretok(const eng_tokenizer *t) { return t->pre; }
