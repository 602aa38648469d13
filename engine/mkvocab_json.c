/*
 * mkvocab_json.c — a Hugging Face tokenizer.json as the vocabulary of a
 * synthetic model (`mkmodel --vocab-from`), written the way llama.cpp's
 * converter writes it, so the GGUF tokenizes as the real model's GGUF.
 *
 * Byte-level BPE (model "BPE", a ByteLevel pre-tokenizer or decoder) is
 * written as "gpt2", as convert_hf_to_gguf.py's _set_vocab_gpt2 does
 * (conversion/base.py get_vocab_base): one token per id up to the largest
 * id (config.json's vocab_size when it says more), missing ids "[PAD<i>]"
 * unused; added tokens control when marked special or when they look
 * special (does_token_look_special: "<|...|>", "<｜...｜>", ...), else
 * user-defined with U+2581 as space; merges as "A B" (pairs of the newer
 * format joined, a space inside a part written as U+0120, as gguf-py's
 * SpecialVocab does). tokenizer.ggml.pre: the converter identifies the
 * model by hashing how it tokenizes a probe text, which needs the Python
 * tokenizer; here the pre-tokenizer's regexes are compared with the ones
 * llama.cpp knows (or --vocab-pre names it).
 *
 * BPE with byte fallback over U+2581 text (Llama 2, Mixtral) is written as
 * SentencePiece "llama", as the real models' GGUFs are (converted from
 * tokenizer.model): <0xXX> byte tokens, the unknown token, control and
 * user-defined tokens typed as sentencepiece does. Their scores are not in
 * tokenizer.json; Hugging Face ordered its merges by them, so a token's
 * score is minus the rank of the first merge that makes it, which gives
 * llama.cpp the order of the real scores. (The converter's own
 * tokenizer.json-only path, LlamaHfVocab, writes -1000 for every score,
 * with which llama.cpp cannot tokenize like the model.)
 *
 * Special ids and add_bos/add_eos follow SpecialVocab: tokenizer_config.json
 * ({bos,eos,unk,pad}_token looked up in added_tokens, add_{bos,eos}_token),
 * the post_processor's template, config.json's *_token_id.
 *
 * Hostile input: every value's type is checked before use; ids, counts and
 * lengths are bounded (TOK_MAX ids, TEXT_MAX bytes per string); duplicate
 * ids or token texts (llama.cpp refuses duplicate texts) are errors.
 */
#include "engine/mkvocab.h"
#include "engine/tokenizer.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOK_MAX (1 << 24)     /* ids and merges */
#define TEXT_MAX 65536        /* bytes of one token or merge */
/* Ids no entry names become padding; real files have a few hundred (gpt-oss
 * with config.json: 1069). More than the named tokens plus PAD_SLACK is
 * refused: a few bytes of JSON must not make a multi-gigabyte model. */
#define PAD_SLACK 65536

typedef struct hf {
    const char *name;         /* file name for messages */
    eng_err *e;
    json_t *root, *cfg, *mcfg; /* tokenizer.json, tokenizer_config.json, config.json */
    eng_mkvocab *v;
    uint8_t *added;           /* [n] 0 model vocab, 1 added, 2 added and special */
    size_t n;                 /* tokens (ids 0..n-1)                         */
} hf;

static int ferr(hf *h, int code, const char *fmt, const char *what, long long x)
{
    char msg[384];
    snprintf(msg, sizeof msg, fmt, what, x);
    return eng_err_set(h->e, code, "%s: %s", h->name, msg);
}

/* Files are read with JSON_DECODE_INT_AS_REAL: Hugging Face configs hold
 * integers beyond 64 bits (model_max_length = 1e30), which jansson refuses
 * otherwise. An integer is then a real with no fraction; ids fit easily in
 * the 53 bits a double holds exactly. */
#define JFLAGS (JSON_REJECT_DUPLICATES | JSON_DECODE_INT_AS_REAL)

/* ---- loading ---------------------------------------------------------------- */

static int parse_error(const char *name, const json_error_t *je, eng_err *e)
{
    return eng_err_set(e, ENG_EFORMAT, "%s: line %d column %d: %s", name, je->line, je->column,
                       je->text);
}

/* A JSON file next to path (sibling name), or NULL when there is none. */
static int load_sibling(const char *path, const char *sibling, json_t **out, eng_err *e)
{
    *out = NULL;
    const char *slash = strrchr(path, '/');
    size_t dir = slash ? (size_t)(slash - path + 1) : 0;
    char *p = malloc(dir + strlen(sibling) + 1);
    if (!p)
        return eng_err_set(e, ENG_ENOMEM, "tokenizer.json: out of memory");
    memcpy(p, path, dir);
    strcpy(p + dir, sibling);
    FILE *f = fopen(p, "rb");
    int rc = ENG_OK;
    if (f) {
        json_error_t je;
        *out = json_loadf(f, JFLAGS, &je);
        if (!*out)
            rc = parse_error(p, &je, e);
        else if (!json_is_object(*out))
            rc = eng_err_set(e, ENG_EFORMAT, "%s: not a JSON object", p);
        fclose(f);
    }
    free(p);
    return rc;
}

/* ---- small helpers ------------------------------------------------------------ */

static bool jint(json_t *v, long long *out)
{
    double d = json_is_real(v)      ? json_real_value(v)
               : json_is_integer(v) ? (double)json_integer_value(v)
                                    : 0.5;
    if (d != d || d < -9e15 || d > 9e15 || d != (double)(long long)d)
        return false;
    *out = (long long)d;
    return true;
}

static const char *jstr(json_t *o, const char *key)
{
    json_t *v = json_is_object(o) ? json_object_get(o, key) : NULL;
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static char *dup_text(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = 0;
    }
    return d;
}

/* Replaces every U+2581 of s by a space (in place). */
static void unescape_space(char *s)
{
    char *w = s;
    for (const char *r = s; *r;) {
        if (!strncmp(r, "\xe2\x96\x81", 3)) {
            *w++ = ' ';
            r += 3;
        } else {
            *w++ = *r++;
        }
    }
    *w = 0;
}

/* does_token_look_special (conversion/base.py) */
static bool looks_special(const char *t)
{
    size_t n = strlen(t);
    static const char *const exact[] = {"<pad>", "<mask>", "<2mass>", "[@BOS@]"};
    for (size_t i = 0; i < 4; i++)
        if (!strcmp(t, exact[i]))
            return true;
    if (n >= 4 && !strncmp(t, "<|", 2) && !strcmp(t + n - 2, "|>"))
        return true;
    if (n >= 8 && !strncmp(t, "<\xef\xbd\x9c", 4) && !strcmp(t + n - 4, "\xef\xbd\x9c>"))
        return true;
    return n >= 8 && !strncmp(t, "<unused", 7) && t[n - 1] == '>';
}

/* ---- a string -> id map over v->tokens (open addressing) ------------------- */

typedef struct idmap {
    uint32_t *slot; /* id + 1, 0 empty */
    size_t cap;
} idmap;

static uint64_t fnv(const char *s, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 0x100000001b3ull;
    return h;
}

static int64_t idmap_find(const idmap *m, char *const *tok, const char *s, size_t n)
{
    for (size_t i = fnv(s, n) & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        uint32_t v = m->slot[i];
        if (!v)
            return -1;
        if (strlen(tok[v - 1]) == n && !memcmp(tok[v - 1], s, n))
            return v - 1;
    }
}

/* Builds the map; a text given to two ids is an error (llama.cpp refuses). */
static int idmap_build(hf *h, idmap *m)
{
    m->cap = 16;
    while (m->cap < 2 * h->n)
        m->cap *= 2;
    m->slot = calloc(m->cap, sizeof *m->slot);
    if (!m->slot)
        return eng_err_set(h->e, ENG_ENOMEM, "%s: out of memory", h->name);
    char *const *tok = h->v->tokens;
    for (size_t id = 0; id < h->n; id++) {
        size_t n = strlen(tok[id]);
        int64_t old = idmap_find(m, tok, tok[id], n);
        if (old >= 0)
            return eng_err_set(h->e, ENG_EFORMAT,
                               "%s: token '%.60s' has ids %lld and %zu (llama.cpp refuses "
                               "duplicate token texts)", h->name, tok[id], (long long)old, id);
        size_t i = fnv(tok[id], n) & (m->cap - 1);
        while (m->slot[i])
            i = (i + 1) & (m->cap - 1);
        m->slot[i] = (uint32_t)id + 1;
    }
    return ENG_OK;
}

/* ---- vocabulary ------------------------------------------------------------------ */

/* An id value: an integer in [0, TOK_MAX). */
static int get_id(hf *h, json_t *v, const char *what, size_t *id)
{
    long long x;
    if (!jint(v, &x))
        return ferr(h, ENG_EFORMAT, "%s: not an integer id", what, 0);
    if (x < 0 || x >= TOK_MAX)
        return ferr(h, ENG_EFORMAT, "%s: id %lld out of range", what, (long long)x);
    *id = (size_t)x;
    return ENG_OK;
}

static int check_text(hf *h, json_t *s, const char *what)
{
    if (!json_is_string(s))
        return ferr(h, ENG_EFORMAT, "%s: not a string", what, 0);
    size_t n = json_string_length(s);
    if (n == 0 || n > TEXT_MAX)
        return ferr(h, ENG_EFORMAT, "%s: string of %lld bytes", what, (long long)n);
    return ENG_OK;
}

/* The largest id of model.vocab and added_tokens + 1, checked, and the
 * number of entries (*named). */
static int count_ids(hf *h, json_t *vocab, json_t *added, size_t *n, size_t *named)
{
    const char *key;
    json_t *val;
    size_t max = 0, id, i;
    if (!json_is_object(vocab) || json_object_size(vocab) == 0)
        return ferr(h, ENG_EFORMAT, "%s: missing or empty", "model.vocab", 0);
    json_object_foreach(vocab, key, val) {
        int rc = get_id(h, val, "model.vocab", &id);
        if (rc)
            return rc;
        if (strlen(key) == 0 || strlen(key) > TEXT_MAX)
            return ferr(h, ENG_EFORMAT, "%s: a token of length %lld", "model.vocab",
                        (long long)strlen(key));
        max = id > max ? id : max;
    }
    if (added && !json_is_array(added))
        return ferr(h, ENG_EFORMAT, "%s: not an array", "added_tokens", 0);
    json_array_foreach(added, i, val) {
        int rc = get_id(h, json_object_get(val, "id"), "added_tokens[].id", &id);
        if (!rc)
            rc = check_text(h, json_object_get(val, "content"), "added_tokens[].content");
        if (rc)
            return rc;
        max = id > max ? id : max;
    }
    *n = max + 1;
    *named = json_object_size(vocab) + (added ? json_array_size(added) : 0);
    return ENG_OK;
}

static int alloc_vocab(hf *h)
{
    eng_mkvocab *v = h->v;
    v->n_tokens = h->n;
    v->tokens = calloc(h->n + 1, sizeof *v->tokens);
    v->types = calloc(h->n + 1, sizeof *v->types);
    h->added = calloc(h->n + 1, 1);
    if (!v->tokens || !v->types || !h->added)
        return eng_err_set(h->e, ENG_ENOMEM, "%s: out of memory", h->name);
    return ENG_OK;
}

/* Fills tokens from model.vocab, then added_tokens (which win), then
 * "[PAD<i>]" for ids neither names. */
static int fill_tokens(hf *h, json_t *vocab, json_t *added)
{
    eng_mkvocab *v = h->v;
    const char *key;
    json_t *val;
    size_t id, i;
    json_object_foreach(vocab, key, val) {
        get_id(h, val, "model.vocab", &id); /* checked by count_ids */
        if (v->tokens[id])
            return ferr(h, ENG_EFORMAT, "%s: id %lld given twice", "model.vocab", (long long)id);
        if (!(v->tokens[id] = dup_text(key, strlen(key))))
            return eng_err_set(h->e, ENG_ENOMEM, "%s: out of memory", h->name);
    }
    json_array_foreach(added, i, val) {
        json_t *c = json_object_get(val, "content");
        get_id(h, json_object_get(val, "id"), "added_tokens", &id);
        if (h->added[id])
            return ferr(h, ENG_EFORMAT, "%s: id %lld given twice", "added_tokens", (long long)id);
        free(v->tokens[id]);
        if (!(v->tokens[id] = dup_text(json_string_value(c), json_string_length(c))))
            return eng_err_set(h->e, ENG_ENOMEM, "%s: out of memory", h->name);
        h->added[id] = json_is_true(json_object_get(val, "special")) ? 2 : 1;
    }
    for (id = 0; id < h->n; id++) {
        char pad[32];
        if (v->tokens[id])
            continue;
        snprintf(pad, sizeof pad, "[PAD%zu]", id);
        if (!(v->tokens[id] = strdup(pad)))
            return eng_err_set(h->e, ENG_ENOMEM, "%s: out of memory", h->name);
        v->types[id] = ENG_TOKEN_UNUSED;
    }
    return ENG_OK;
}

/* Byte-level BPE: added tokens control or user-defined (get_vocab_base). */
static void types_bpe(hf *h)
{
    eng_mkvocab *v = h->v;
    for (size_t id = 0; id < h->n; id++) {
        if (v->types[id] == ENG_TOKEN_UNUSED)
            continue;
        if (!h->added[id]) {
            v->types[id] = ENG_TOKEN_NORMAL;
        } else if (h->added[id] == 2 || looks_special(v->tokens[id])) {
            v->types[id] = ENG_TOKEN_CONTROL;
        } else {
            v->types[id] = ENG_TOKEN_USER_DEFINED;
            unescape_space(v->tokens[id]);
        }
    }
}

static bool is_byte_token(const char *t)
{
    return strlen(t) == 6 && !strncmp(t, "<0x", 3) && t[5] == '>' &&
           strchr("0123456789ABCDEFabcdef", t[3]) && strchr("0123456789ABCDEFabcdef", t[4]) &&
           t[3] && t[4];
}

/* SentencePiece-style: sentencepiece's piece types. */
static void types_spm(hf *h, const char *unk)
{
    eng_mkvocab *v = h->v;
    for (size_t id = 0; id < h->n; id++) {
        if (v->types[id] == ENG_TOKEN_UNUSED)
            continue;
        const char *t = v->tokens[id];
        v->types[id] = unk && !strcmp(t, unk)   ? ENG_TOKEN_UNKNOWN
                       : h->added[id] == 2      ? ENG_TOKEN_CONTROL
                       : h->added[id] == 1      ? ENG_TOKEN_USER_DEFINED
                       : is_byte_token(t)       ? ENG_TOKEN_BYTE
                                                : ENG_TOKEN_NORMAL;
    }
}

/* ---- merges ------------------------------------------------------------------------ */

/* Merge k as "A B": a string as it is; a pair [A, B] joined, spaces in the
 * parts as U+0120 (gguf-py SpecialVocab). */
static char *merge_text(hf *h, json_t *m, size_t k, int *rc)
{
    char what[48];
    snprintf(what, sizeof what, "model.merges[%zu]", k);
    *rc = ENG_OK;
    if (json_is_string(m)) {
        const char *s = json_string_value(m), *sp = strchr(s + (*s != 0), ' ');
        size_t n = json_string_length(m);
        if (n < 3 || n > TEXT_MAX || !sp || !sp[1])
            *rc = ferr(h, ENG_EFORMAT, "%s: not 'A B'", what, 0);
        return *rc ? NULL : dup_text(s, n);
    }
    json_t *a = json_array_get(m, 0), *b = json_array_get(m, 1);
    if (!json_is_array(m) || json_array_size(m) != 2 || check_text(h, a, what) ||
        check_text(h, b, what)) {
        *rc = ferr(h, ENG_EFORMAT, "%s: neither 'A B' nor a pair of strings", what, 0);
        return NULL;
    }
    size_t na = json_string_length(a), nb = json_string_length(b), k2 = 0;
    char *out = malloc(2 * (na + nb) + 2);
    if (!out)
        return NULL;
    for (int part = 0; part < 2; part++) {
        const char *s = json_string_value(part ? b : a);
        size_t n = part ? nb : na;
        if (part)
            out[k2++] = ' ';
        for (size_t i = 0; i < n; i++) {
            if (s[i] == ' ') { /* U+0120 */
                out[k2++] = (char)0xC4;
                out[k2++] = (char)0xA0;
            } else {
                out[k2++] = s[i];
            }
        }
    }
    out[k2] = 0;
    return out;
}

static int read_merges(hf *h, json_t *merges)
{
    eng_mkvocab *v = h->v;
    if (!merges)
        return ENG_OK;
    if (!json_is_array(merges) || json_array_size(merges) > TOK_MAX)
        return ferr(h, ENG_EFORMAT, "%s: not an array (or too long)", "model.merges", 0);
    v->merges = calloc(json_array_size(merges) + 1, sizeof *v->merges);
    if (!v->merges)
        return eng_err_set(h->e, ENG_ENOMEM, "%s: out of memory", h->name);
    size_t k;
    json_t *m;
    json_array_foreach(merges, k, m) {
        int rc;
        v->merges[k] = merge_text(h, m, k, &rc);
        if (rc || !v->merges[k])
            return rc ? rc : eng_err_set(h->e, ENG_ENOMEM, "%s: out of memory", h->name);
        v->n_merges = k + 1;
    }
    return ENG_OK;
}

/* SentencePiece scores: minus the rank of the first merge that makes a
 * token; tokens no merge makes below all of them; 0 for the others. */
static int spm_scores(hf *h)
{
    eng_mkvocab *v = h->v;
    idmap m;
    int rc = idmap_build(h, &m);
    v->scores = calloc(h->n + 1, sizeof *v->scores);
    if (!rc && !v->scores)
        rc = eng_err_set(h->e, ENG_ENOMEM, "%s: out of memory", h->name);
    bool *set = rc ? NULL : calloc(h->n + 1, 1);
    if (!rc && !set)
        rc = eng_err_set(h->e, ENG_ENOMEM, "%s: out of memory", h->name);
    char *buf = rc ? NULL : malloc(2 * TEXT_MAX + 1);
    for (size_t k = 0; !rc && buf && k < v->n_merges; k++) {
        const char *s = v->merges[k], *sp = strchr(s + 1, ' ');
        size_t la = (size_t)(sp - s), lb = strlen(sp + 1);
        memcpy(buf, s, la);
        memcpy(buf + la, sp + 1, lb);
        int64_t id = idmap_find(&m, v->tokens, buf, la + lb);
        if (id >= 0 && !set[id]) {
            v->scores[id] = -(float)k;
            set[id] = true;
        }
    }
    for (size_t id = 0; !rc && buf && id < h->n; id++)
        if (!set[id] && v->types[id] == ENG_TOKEN_NORMAL)
            v->scores[id] = -(float)(v->n_merges + id);
    if (!rc && !buf)
        rc = eng_err_set(h->e, ENG_ENOMEM, "%s: out of memory", h->name);
    free(buf);
    free(set);
    free(m.slot);
    return rc;
}

/* ---- special ids and add_bos / add_eos (gguf-py SpecialVocab) ----------------- */

enum { SP_BOS, SP_EOS, SP_UNK, SP_PAD, SP_N };
static const char *const k_sp_name[SP_N] = {"bos", "eos", "unk", "pad"};

typedef struct specials {
    int64_t id[SP_N];          /* -1 = not set */
    int8_t add_bos, add_eos;   /* -1 = not set */
} specials;

/* tokenizer_config.json's "<typ>_token": a string or {"content": string}. */
static const char *cfg_token(json_t *cfg, const char *typ)
{
    char key[32];
    snprintf(key, sizeof key, "%s_token", typ);
    json_t *t = json_is_object(cfg) ? json_object_get(cfg, key) : NULL;
    if (json_is_object(t))
        t = json_object_get(t, "content");
    return json_is_string(t) ? json_string_value(t) : NULL;
}

/* The first added token with this content (SpecialVocab looks there only). */
static int64_t added_id(json_t *added, const char *content)
{
    size_t i;
    json_t *a;
    json_array_foreach(added, i, a) {
        const char *c = jstr(a, "content");
        long long id;
        if (c && !strcmp(c, content) && jint(json_object_get(a, "id"), &id))
            return id;
    }
    return -1;
}

/* TemplateProcessing: a special token first (last) in the single-sequence
 * template means BOS (EOS) is added when it is the BOS (EOS) token. */
static void template_flags(hf *h, specials *sp)
{
    json_t *pp = json_object_get(h->root, "post_processor");
    json_t *list = json_object_get(pp, "processors"), *one[1] = {pp};
    size_t n = json_is_array(list) ? json_array_size(list) : 1;
    const char *bos = cfg_token(h->cfg, "bos"), *eos = cfg_token(h->cfg, "eos");
    for (size_t i = 0; i < n; i++) {
        json_t *p = json_is_array(list) ? json_array_get(list, i) : one[0];
        const char *type = jstr(p, "type");
        if (type && !strcmp(type, "RobertaProcessing")) {
            sp->add_bos = sp->add_eos = 1;
            continue;
        }
        json_t *single = json_object_get(p, "single");
        if (!type || strcmp(type, "TemplateProcessing") || !json_is_array(single) ||
            json_array_size(single) < 2)
            continue;
        json_t *first = json_object_get(json_array_get(single, 0), "SpecialToken");
        json_t *last = json_object_get(json_array_get(single, json_array_size(single) - 1),
                                       "SpecialToken");
        const char *f = jstr(first, "id"), *l = jstr(last, "id");
        if (f)
            sp->add_bos = !h->cfg || (bos && !strcmp(f, bos));
        if (l)
            sp->add_eos = !h->cfg || (eos && !strcmp(l, eos));
    }
}

static void read_specials(hf *h, specials *sp)
{
    json_t *added = json_object_get(h->root, "added_tokens");
    for (int k = 0; k < SP_N; k++)
        sp->id[k] = -1;
    sp->add_bos = sp->add_eos = -1;
    template_flags(h, sp);
    for (int k = 0; h->cfg && k < SP_N; k++) {
        char key[32];
        snprintf(key, sizeof key, "add_%s_token", k_sp_name[k]);
        json_t *a = json_object_get(h->cfg, key);
        if (json_is_boolean(a) && k == SP_BOS)
            sp->add_bos = json_is_true(a);
        if (json_is_boolean(a) && k == SP_EOS)
            sp->add_eos = json_is_true(a);
        const char *c = cfg_token(h->cfg, k_sp_name[k]);
        int64_t id = c ? added_id(added, c) : -1;
        if (id >= 0 && (size_t)id < h->n)
            sp->id[k] = id;
    }
    for (int k = 0; h->mcfg && k < SP_N; k++) { /* config.json: the first set wins */
        char key[32];
        snprintf(key, sizeof key, "%s_token_id", k_sp_name[k]);
        long long id;
        if (sp->id[k] < 0 && jint(json_object_get(h->mcfg, key), &id) && id >= 0 &&
            (size_t)id < h->n)
            sp->id[k] = id;
    }
}

static void store_specials(eng_mkvocab *v, const specials *sp)
{
    v->has_bos = sp->id[SP_BOS] >= 0;
    v->has_eos = sp->id[SP_EOS] >= 0;
    v->has_unk = sp->id[SP_UNK] >= 0;
    v->has_pad = sp->id[SP_PAD] >= 0;
    v->bos_id = v->has_bos ? (uint32_t)sp->id[SP_BOS] : 0;
    v->eos_id = v->has_eos ? (uint32_t)sp->id[SP_EOS] : 0;
    v->unk_id = v->has_unk ? (uint32_t)sp->id[SP_UNK] : 0;
    v->pad_id = v->has_pad ? (uint32_t)sp->id[SP_PAD] : 0;
    v->add_bos = sp->add_bos;
    v->add_eos = sp->add_eos;
}

/* ---- the kind of tokenizer and its pre-tokenizer ------------------------------------ */

/* Whether a component (or any in its Sequence) has this type. */
static bool has_type(json_t *c, const char *list_key, const char *type)
{
    const char *t = jstr(c, "type");
    if (t && !strcmp(t, type))
        return true;
    json_t *list = json_object_get(c, list_key);
    size_t i;
    json_t *x;
    json_array_foreach(list, i, x) {
        if (has_type(x, list_key, type))
            return true;
    }
    return false;
}

/* The pre-tokenizer as a list of regex strings ("<gpt2>" for ByteLevel with
 * its built-in regex); false when some part is not a regex split. */
static bool pre_regexes(json_t *pt, const char **re, size_t *n, size_t cap)
{
    const char *t = jstr(pt, "type");
    if (!t)
        return pt == NULL || json_is_null(pt);
    if (!strcmp(t, "Sequence")) {
        json_t *list = json_object_get(pt, "pretokenizers");
        size_t i;
        json_t *x;
        json_array_foreach(list, i, x) {
            if (!pre_regexes(x, re, n, cap))
                return false;
        }
        return json_is_array(list);
    }
    if (!strcmp(t, "ByteLevel")) {
        if (json_is_true(json_object_get(pt, "use_regex")) && *n < cap)
            re[(*n)++] = "<gpt2>";
        return true;
    }
    const char *r = jstr(json_object_get(pt, "pattern"), "Regex");
    if (strcmp(t, "Split") || !r || *n >= cap)
        return false;
    re[(*n)++] = r;
    return true;
}

#define HF_LLAMA3 "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define HF_QWEN2 "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define HF_O200K "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define HF_DSV3_CJK "[\xe4\xb8\x80-\xe9\xbe\xa5\xe3\x81\x80-\xe3\x82\x9f\xe3\x82\xa0-\xe3\x83\xbf]+"
#define HF_DSV3_MAIN "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+"

/* tokenizer.ggml.pre from the pre-tokenizer's regexes (the ones llama.cpp
 * knows, quoted from Hugging Face files in llama-vocab.cpp); NULL when they
 * are not one of them. llama-bpe and glm4 share their regex: llama-bpe's
 * file says ignore_merges. */
static const char *detect_pre(hf *h, const char **why)
{
    const char *re[8];
    size_t n = 0;
    json_t *model = json_object_get(h->root, "model");
    *why = "its pre_tokenizer is not a list of regex splits";
    if (!pre_regexes(json_object_get(h->root, "pre_tokenizer"), re, &n, 8))
        return NULL;
    *why = n ? re[0] : "it has no pre_tokenizer";
    if (n == 1 && !strcmp(re[0], "<gpt2>"))
        return "gpt-2";
    if (n == 1 && !strcmp(re[0], HF_QWEN2))
        return "qwen2";
    if (n == 1 && !strcmp(re[0], HF_O200K))
        return "gpt-4o";
    if (n == 1 && !strcmp(re[0], HF_LLAMA3)) {
        *why = "its regex is llama-bpe's and glm4's, and model.ignore_merges does not tell";
        return json_is_true(json_object_get(model, "ignore_merges")) ? "llama-bpe" : NULL;
    }
    if (n == 3 && !strcmp(re[0], "\\p{N}{1,3}") && !strcmp(re[1], HF_DSV3_CJK) &&
        !strcmp(re[2], HF_DSV3_MAIN))
        return "deepseek-v3";
    if (n == 6 && !strcmp(re[0], "[\r\n]") && !strcmp(re[3], "\\s+$"))
        return "deepseek-llm";
    return NULL;
}

/* SentencePiece-style (byte fallback, U+2581 for spaces) or byte-level. */
static int detect_kind(hf *h, bool *spm)
{
    json_t *model = json_object_get(h->root, "model");
    const char *type = jstr(model, "type");
    if (!json_is_object(model) || !type)
        return ferr(h, ENG_EFORMAT, "%s: missing or without a type", "model", 0);
    if (strcmp(type, "BPE"))
        return eng_err_set(h->e, ENG_EUNSUPPORTED,
                           "%s: model.type '%.32s' is not supported: byte-level BPE and "
                           "SentencePiece-style BPE only", h->name, type);
    bool bytelevel = has_type(json_object_get(h->root, "pre_tokenizer"), "pretokenizers",
                              "ByteLevel") ||
                     has_type(json_object_get(h->root, "decoder"), "decoders", "ByteLevel");
    *spm = !bytelevel && (json_is_true(json_object_get(model, "byte_fallback")) ||
                          has_type(json_object_get(h->root, "decoder"), "decoders",
                                   "ByteFallback"));
    if (!bytelevel && !*spm)
        return eng_err_set(h->e, ENG_EUNSUPPORTED,
                           "%s: BPE without ByteLevel or byte_fallback is not supported "
                           "(neither byte-level BPE nor SentencePiece-style)", h->name);
    return ENG_OK;
}

/* Whether the text gets a U+2581 in front: a Prepend normalizer or a
 * Metaspace pre-tokenizer that adds one. */
static bool spm_space_prefix(hf *h)
{
    json_t *norm = json_object_get(h->root, "normalizer");
    if (has_type(norm, "normalizers", "Prepend"))
        return true;
    json_t *pt = json_object_get(h->root, "pre_tokenizer");
    if (!has_type(pt, "pretokenizers", "Metaspace"))
        return false;
    const char *scheme = jstr(pt, "prepend_scheme");
    return scheme ? strcmp(scheme, "never") != 0
                  : json_is_true(json_object_get(pt, "add_prefix_space"));
}

static int set_pre(hf *h, const char *pre)
{
    eng_pretok kind;
    const char *why = NULL;
    if (!pre) {
        pre = detect_pre(h, &why);
        if (!pre)
            return eng_err_set(h->e, ENG_EUNSUPPORTED,
                               "%s: cannot tell its pre-tokenizer (%.80s); name it with "
                               "--vocab-pre (" ENG_PRETOK_NAMES ")", h->name, why);
    }
    int rc = eng_pretok_parse(pre, &kind, h->e);
    if (rc)
        return rc;
    snprintf(h->v->pre, sizeof h->v->pre, "%s", eng_pretok_name(kind));
    return ENG_OK;
}

/* ---- the whole file ------------------------------------------------------------------ */

static int build(hf *h, const char *pre)
{
    eng_mkvocab *v = h->v;
    json_t *model = json_object_get(h->root, "model");
    json_t *vocab = json_object_get(model, "vocab");
    json_t *added = json_object_get(h->root, "added_tokens");
    bool spm = false;
    int rc = detect_kind(h, &spm);
    if (!rc && spm && pre && strcmp(pre, "default"))
        rc = eng_err_set(h->e, ENG_EINVAL, "%s: a SentencePiece-style tokenizer has no "
                         "pre-tokenizer to name ('%.32s')", h->name, pre);
    if (!rc && !spm)
        rc = set_pre(h, pre);
    size_t named = 0;
    if (!rc)
        rc = count_ids(h, vocab, added, &h->n, &named);
    long long vs; /* the converter pads to config.json's vocab_size */
    if (!rc && jint(json_object_get(h->mcfg, "vocab_size"), &vs) && vs > 0 && vs <= TOK_MAX &&
        (size_t)vs > h->n)
        h->n = (size_t)vs;
    if (!rc && h->n > named + PAD_SLACK)
        rc = eng_err_set(h->e, ENG_EFORMAT, "%s: ids up to %zu for %zu tokens: %zu ids would be "
                         "padding", h->name, h->n - 1, named, h->n - named);
    if (!rc)
        rc = alloc_vocab(h);
    if (!rc)
        rc = fill_tokens(h, vocab, added);
    if (!rc)
        rc = read_merges(h, json_object_get(model, "merges"));
    if (rc)
        return rc;
    v->spm = spm;
    v->from_json = true;
    specials sp;
    read_specials(h, &sp);
    if (spm) {
        const char *unk = jstr(model, "unk_token");
        types_spm(h, unk ? unk : cfg_token(h->cfg, "unk"));
        v->add_space_prefix = spm_space_prefix(h);
        rc = spm_scores(h);
    } else {
        types_bpe(h);
        idmap m = {0};
        rc = idmap_build(h, &m); /* duplicate texts */
        free(m.slot);
    }
    store_specials(v, &sp);
    return rc;
}

static int run(hf *h, const char *pre)
{
    memset(h->v, 0, sizeof *h->v);
    int rc = json_is_object(h->root) ? build(h, pre)
                                     : eng_err_set(h->e, ENG_EFORMAT, "%s: not a JSON object",
                                                   h->name);
    free(h->added);
    json_decref(h->root);
    json_decref(h->cfg);
    json_decref(h->mcfg);
    if (rc)
        eng_mkvocab_free(h->v);
    return rc;
}

int eng_mkvocab_from_json(eng_mkvocab *v, const char *path, const char *pre, eng_err *e)
{
    memset(v, 0, sizeof *v);
    hf h = {.name = path, .e = e, .v = v};
    FILE *f = fopen(path, "rb");
    if (!f)
        return eng_err_set(e, ENG_EIO, "%s: cannot open: %m", path);
    json_error_t je;
    h.root = json_loadf(f, JFLAGS, &je);
    fclose(f);
    if (!h.root)
        return parse_error(path, &je, e);
    int rc = load_sibling(path, "tokenizer_config.json", &h.cfg, e);
    if (!rc)
        rc = load_sibling(path, "config.json", &h.mcfg, e);
    if (rc) {
        json_decref(h.root);
        json_decref(h.cfg);
        return rc;
    }
    return run(&h, pre);
}

int eng_mkvocab_from_json_mem(eng_mkvocab *v, const char *json, size_t len, const char *name,
                              const char *pre, eng_err *e)
{
    memset(v, 0, sizeof *v);
    hf h = {.name = name, .e = e, .v = v};
    json_error_t je;
    h.root = json_loadb(json, len, JFLAGS, &je);
    if (!h.root)
        return parse_error(name, &je, e);
    return run(&h, pre);
}
