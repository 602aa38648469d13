/*
 * tokenizer_encode.c — text to token ids (see tokenizer.h), as llama.cpp's
 * llama_vocab::impl::tokenize does it:
 *   1. special tokens written in the text are cut out (partition);
 *   2. each stretch of text between them goes through BPE (pre-tokenizer,
 *      merges) or SentencePiece;
 *   3. BOS/EOS around the whole when asked.
 *
 * BPE merge order (llm_tokenizer_bpe_session): repeatedly merge the
 * adjacent pair with the lowest merge rank, the leftmost one among equal
 * ranks. A min-heap of candidate pairs keyed (rank, left position) holds
 * it; entries made stale by an earlier merge are recognised by the symbols'
 * lengths (symbols only grow, so same start and same lengths = same text).
 * SentencePiece (llm_tokenizer_spm) uses the same loop with the merged
 * token's score as the priority, highest first.
 */
#include "engine/tokenizer.h"
#include "engine/tokenizer_impl.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

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

/* ---- 1. special tokens in the text (tokenizer_st_partition) --------------- */

typedef struct frag {
    size_t off, len;  /* raw text: text[off .. off+len)       */
    int32_t tok;      /* a special token, or -1 for raw text  */
} frag;

typedef struct frags {
    frag *a;
    size_t n, cap;
} frags;

static int frag_push(frags *f, size_t off, size_t len, int32_t tok)
{
    if (f->n == f->cap) {
        size_t nc = f->cap ? f->cap * 2 : 16;
        frag *na = realloc(f->a, nc * sizeof *na);
        if (!na)
            return ENG_ENOMEM;
        f->a = na;
        f->cap = nc;
    }
    f->a[f->n++] = (frag){off, len, tok};
    return ENG_OK;
}

/* Cuts every occurrence of special token id out of the raw fragments of
 * *in (left to right in each), giving *out. */
static int cut_token(const eng_tokenizer *t, const char *text, int32_t id, const frags *in,
                     frags *out)
{
    const char *s = t->tok_text[id];
    size_t sl = t->tok_text_len[id];
    out->n = 0;
    for (size_t i = 0; i < in->n; i++) {
        frag f = in->a[i];
        while (f.tok < 0 && f.len >= sl) {
            const char *m = memmem(text + f.off, f.len, s, sl);
            if (!m)
                break;
            size_t at = (size_t)(m - text);
            if ((at > f.off && frag_push(out, f.off, at - f.off, -1)) || frag_push(out, 0, 0, id))
                return ENG_ENOMEM;
            f.len -= at + sl - f.off;
            f.off = at + sl;
        }
        if ((f.tok >= 0 || f.len > 0) && frag_push(out, f.off, f.len, f.tok))
            return ENG_ENOMEM;
    }
    return ENG_OK;
}

/* The fragments of text: special tokens longest first; control and
 * unknown ones only when parse_special (user-defined ones always, as in
 * llama.cpp, which follows Hugging Face there). */
static int partition(const eng_tokenizer *t, const char *text, size_t len, bool parse_special,
                     frags *out)
{
    frags tmp = {0};
    int rc = len ? frag_push(out, 0, len, -1) : ENG_OK;
    for (size_t k = 0; !rc && k < t->n_special; k++) {
        int32_t id = t->special[k];
        if (!parse_special && (t->tok_attr[id] & (ENG_TOKATTR_CONTROL | ENG_TOKATTR_UNKNOWN)))
            continue;
        rc = cut_token(t, text, id, out, &tmp);
        frags sw = *out;
        *out = tmp;
        tmp = sw;
    }
    free(tmp.a);
    return rc;
}

/* ---- 2a. the merge loop ------------------------------------------------------ */

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

/* ---- 2b. BPE ------------------------------------------------------------------- */

static int bpe_push(const eng_tokenizer *t, const char *p, const sym *s, int l, int r, heap *h)
{
    if (l < 0 || r < 0)
        return ENG_OK;
    int32_t rank = tk_merge_rank(t, p + s[l].start, s[l].len, p + s[r].start, s[r].len);
    if (rank < 0)
        return ENG_OK;
    return heap_push(h, (cand){(double)rank, l, r, s[l].len, s[r].len});
}

/* The ids of one merged symbol. A symbol that is no token falls back, as
 * llama.cpp does, to looking up each byte of its byte-level form as a
 * one-character token: only printable ASCII bytes can be one, the others
 * are dropped. */
static int emit_symbol(const eng_tokenizer *t, const char *p, size_t len, idbuf *out)
{
    int32_t id = tk_tokmap_find(t, p, len);
    if (id >= 0)
        return ids_push(out, id);
    for (size_t i = 0; i < len; i++) {
        unsigned char b = (unsigned char)p[i];
        int32_t bid = b > 0x20 && b < 0x7F ? tk_tokmap_find(t, p + i, 1) : -1;
        if (bid >= 0 && ids_push(out, bid))
            return ENG_ENOMEM;
    }
    return ENG_OK;
}

/* BPE on one pre-tokenizer piece p[0..n). s has room for n symbols. */
static int bpe_piece(const eng_tokenizer *t, const char *p, size_t n, sym *s, heap *h,
                     idbuf *out)
{
    if (t->ignore_merges) { /* llama-bpe: a whole-piece token skips merges */
        int32_t id = tk_tokmap_find(t, p, n);
        if (id >= 0)
            return ids_push(out, id);
    }
    for (size_t i = 0; i < n; i++)
        s[i] = (sym){i, 1, (int)i - 1, i + 1 < n ? (int)i + 1 : -1};
    int rc = merge_symbols(t, p, s, n, h, bpe_push);
    for (int i = n ? 0 : -1; !rc && i >= 0; i = s[i].next)
        rc = emit_symbol(t, p + s[i].start, s[i].len, out);
    return rc;
}

static int bpe_text(const eng_tokenizer *t, const char *text, size_t len, idbuf *out, eng_err *e)
{
    char *norm;
    size_t nlen, *off, npieces;
    int rc = eng_pretok_split(t->pre, text, len, &norm, &nlen, &off, &npieces, e);
    if (rc)
        return rc;
    size_t maxp = 0;
    for (size_t i = 0; i < npieces; i++)
        maxp = off[i + 1] - off[i] > maxp ? off[i + 1] - off[i] : maxp;
    heap h = {0};
    sym *s = malloc((maxp + 1) * sizeof *s);
    rc = s ? ENG_OK : ENG_ENOMEM;
    for (size_t i = 0; !rc && i < npieces; i++)
        rc = bpe_piece(t, norm + off[i], off[i + 1] - off[i], s, &h, out);
    free(s);
    free(h.a);
    free(off);
    free(norm);
    return rc ? eng_err_set(e, rc, "tokenizer: out of memory encoding %zu bytes", len) : ENG_OK;
}

/* ---- 2c. SentencePiece (llama.cpp's llm_tokenizer_spm) -------------------------
 * A stretch of text is one piece (a space put before it when the vocabulary
 * says add_space_prefix and it starts the text or follows a special token);
 * it starts as one symbol per UTF-8 character; the adjacent pair whose
 * concatenation is a token with the highest score is merged first (ties:
 * leftmost); a symbol that is not a token at the end falls back to its
 * bytes' <0xXX> tokens (or the unknown token). Token bytes hold spaces
 * where the vocabulary has U+2581, so no escaping of the text is needed. */

static int spm_push(const eng_tokenizer *t, const char *p, const sym *s, int l, int r, heap *h)
{
    if (l < 0 || r < 0)
        return ENG_OK;
    /* adjacent symbols are contiguous in p */
    int32_t id = tk_tokmap_find(t, p + s[l].start, s[l].len + s[r].len);
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
    int32_t id = tk_tokmap_find(t, p, len);
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

/* llama.cpp escapes spaces as U+2581 before matching, so a U+2581 written
 * in the text is a space too; token bytes hold spaces, so write it as one.
 * In place; returns the new length. */
static size_t spm_spaces(char *p, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (i + 2 < n && !memcmp(p + i, "\xe2\x96\x81", 3)) {
            p[k++] = ' ';
            i += 2;
        } else {
            p[k++] = p[i];
        }
    }
    return k;
}

static int spm_text(const eng_tokenizer *t, const char *text, size_t len, bool prefix,
                    idbuf *out)
{
    size_t pre = prefix ? 1 : 0, n = len + pre;
    if (n == 0)
        return ENG_OK;
    char *p = malloc(n);
    sym *s = malloc(n * sizeof *s);
    heap h = {0};
    int rc = p && s ? ENG_OK : ENG_ENOMEM;
    size_t ns = 0;
    if (!rc) {
        p[0] = ' ';
        memcpy(p + pre, text, len);
        n = spm_spaces(p, n);
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

/* ---- 3. the whole text ---------------------------------------------------------- */

static int encode_frags(const eng_tokenizer *t, const char *text, const frags *f, idbuf *out,
                        eng_err *e)
{
    bool prev_special = true; /* SentencePiece: prefix the first stretch */
    for (size_t i = 0; i < f->n; i++) {
        int rc;
        if (f->a[i].tok >= 0) {
            rc = ids_push(out, f->a[i].tok);
            prev_special = true;
        } else if (t->spm) {
            rc = spm_text(t, text + f->a[i].off, f->a[i].len, t->add_space_prefix && prev_special,
                          out);
            prev_special = false;
        } else {
            if ((rc = bpe_text(t, text + f->a[i].off, f->a[i].len, out, e)))
                return rc;
        }
        if (rc)
            return eng_err_set(e, rc, "tokenizer: out of memory");
    }
    return ENG_OK;
}

int eng_tokenizer_encode(const eng_tokenizer *t, const char *text, size_t len, int flags,
                         int32_t **ids, size_t *n, eng_err *e)
{
    *ids = NULL;
    *n = 0;
    bool add = flags & ENG_TOK_ADD_SPECIAL;
    if (add && ((t->add_bos && t->bos < 0) || (t->add_eos && t->eos < 0)))
        return eng_err_set(e, ENG_EFORMAT, "tokenizer: the vocabulary asks for %s but has none",
                           t->add_bos && t->bos < 0 ? "BOS" : "EOS");
    frags f = {0};
    idbuf out = {0};
    int rc = partition(t, text, len, flags & ENG_TOK_PARSE_SPECIAL, &f);
    if (rc)
        rc = eng_err_set(e, rc, "tokenizer: out of memory");
    if (!rc && add && t->add_bos && ids_push(&out, t->bos))
        rc = eng_err_set(e, ENG_ENOMEM, "tokenizer: out of memory");
    if (!rc)
        rc = encode_frags(t, text, &f, &out, e);
    if (!rc && add && t->add_eos && ids_push(&out, t->eos))
        rc = eng_err_set(e, ENG_ENOMEM, "tokenizer: out of memory");
    free(f.a);
    if (rc) {
        free(out.a);
        return rc;
    }
    *ids = out.a;
    *n = out.n;
    return ENG_OK;
}
