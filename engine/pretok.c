/*
 * pretok.c — the pre-tokenizers of byte-level BPE, written by hand (no
 * regex library), matching llama.cpp's unicode_regex_split for ASCII.
 *
 * A pre-tokenizer is a regex applied with "split" semantics: scanning left
 * to right, the first alternative that matches at the current position
 * makes a piece; characters where nothing matches collect into a gap piece
 * (std::regex_iterator in llama.cpp keeps gaps as pieces). Each matcher
 * below returns the length (in code points) of the match at pos, 0 for
 * none; alternatives are tried in the regex's order, quantifiers are
 * greedy and the backtracking the regex would do is spelled out.
 *
 *   gpt2/olmo: 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 *   qwen2:     (?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+
 *              |\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
 *   default:   a cascade: [\p{P}\$\+<=>\^~\|]+, then the gpt2 regex on each
 *              piece, then \p{N}+, then [0-9][0-9][0-9] (llama-vocab.cpp).
 *
 * Lookarounds ((?!\S)) see the end of the current piece as end of text, as
 * in llama.cpp where each regex runs on the previous regex's pieces.
 *
 * Unicode classes: ASCII is exact. Other code points use the small range
 * table below (whitespace, punctuation, symbols, digits, combining marks);
 * anything not listed is a letter. Invalid UTF-8 bytes are single "other"
 * characters (kept as bytes, where llama.cpp substitutes U+FFFD).
 */
#include "engine/tokenizer.h"
#include "engine/tokenizer_int.h"

#include <stdlib.h>
#include <string.h>

typedef struct cprange {
    uint32_t lo, hi;
    uint8_t cls;
} cprange;

/* Non-ASCII code points that are not letters (sorted, non-overlapping). */
static const cprange k_ranges[] = {
    {0x0080, 0x0084, TK_OTHER}, {0x0085, 0x0085, TK_SPACE}, {0x0086, 0x009F, TK_OTHER},
    {0x00A0, 0x00A0, TK_SPACE}, {0x00A1, 0x00A1, TK_PUNCT}, {0x00A2, 0x00A6, TK_SYMBOL},
    {0x00A7, 0x00A7, TK_PUNCT}, {0x00A8, 0x00A9, TK_SYMBOL}, {0x00AB, 0x00AB, TK_PUNCT},
    {0x00AC, 0x00AC, TK_SYMBOL}, {0x00AD, 0x00AD, TK_OTHER}, {0x00AE, 0x00B1, TK_SYMBOL},
    {0x00B2, 0x00B3, TK_NUMBER}, {0x00B4, 0x00B4, TK_SYMBOL}, {0x00B6, 0x00B7, TK_PUNCT},
    {0x00B8, 0x00B8, TK_SYMBOL}, {0x00B9, 0x00B9, TK_NUMBER}, {0x00BB, 0x00BB, TK_PUNCT},
    {0x00BC, 0x00BE, TK_NUMBER}, {0x00BF, 0x00BF, TK_PUNCT}, {0x00D7, 0x00D7, TK_SYMBOL},
    {0x00F7, 0x00F7, TK_SYMBOL}, {0x0300, 0x036F, TK_OTHER}, {0x037E, 0x037E, TK_PUNCT},
    {0x0387, 0x0387, TK_PUNCT}, {0x055A, 0x055F, TK_PUNCT}, {0x0589, 0x058A, TK_PUNCT},
    {0x0591, 0x05BD, TK_OTHER}, {0x05BE, 0x05BE, TK_PUNCT}, {0x060C, 0x060D, TK_PUNCT},
    {0x061B, 0x061F, TK_PUNCT}, {0x064B, 0x065F, TK_OTHER}, {0x0660, 0x0669, TK_NUMBER},
    {0x066A, 0x066D, TK_PUNCT}, {0x06D4, 0x06D4, TK_PUNCT}, {0x06F0, 0x06F9, TK_NUMBER},
    {0x0900, 0x0903, TK_OTHER}, {0x093A, 0x094F, TK_OTHER}, {0x0964, 0x0965, TK_PUNCT},
    {0x0966, 0x096F, TK_NUMBER}, {0x0E31, 0x0E31, TK_OTHER}, {0x0E34, 0x0E3A, TK_OTHER},
    {0x0E47, 0x0E4E, TK_OTHER}, {0x0E50, 0x0E59, TK_NUMBER}, {0x1680, 0x1680, TK_SPACE},
    {0x2000, 0x200A, TK_SPACE}, {0x200B, 0x200F, TK_OTHER}, {0x2010, 0x2027, TK_PUNCT},
    {0x2028, 0x2029, TK_SPACE}, {0x202A, 0x202E, TK_OTHER}, {0x202F, 0x202F, TK_SPACE},
    {0x2030, 0x2043, TK_PUNCT}, {0x2044, 0x2044, TK_SYMBOL}, {0x2045, 0x2051, TK_PUNCT},
    {0x2052, 0x2052, TK_SYMBOL}, {0x2053, 0x205E, TK_PUNCT}, {0x205F, 0x205F, TK_SPACE},
    {0x2060, 0x206F, TK_OTHER}, {0x2070, 0x2070, TK_NUMBER}, {0x2074, 0x2079, TK_NUMBER},
    {0x207A, 0x207C, TK_SYMBOL}, {0x207D, 0x207E, TK_PUNCT}, {0x2080, 0x2089, TK_NUMBER},
    {0x208A, 0x208C, TK_SYMBOL}, {0x208D, 0x208E, TK_PUNCT}, {0x20A0, 0x20C0, TK_SYMBOL},
    {0x20D0, 0x20FF, TK_OTHER}, {0x2100, 0x214F, TK_SYMBOL}, {0x2150, 0x2182, TK_NUMBER},
    {0x2185, 0x2189, TK_NUMBER}, {0x2190, 0x23FF, TK_SYMBOL}, {0x2400, 0x245F, TK_SYMBOL},
    {0x2460, 0x249B, TK_NUMBER}, {0x249C, 0x24E9, TK_SYMBOL}, {0x24EA, 0x24FF, TK_NUMBER},
    {0x2500, 0x2767, TK_SYMBOL}, {0x2768, 0x2775, TK_PUNCT}, {0x2776, 0x2793, TK_NUMBER},
    {0x2794, 0x27FF, TK_SYMBOL}, {0x2900, 0x2BFF, TK_SYMBOL}, {0x2E00, 0x2E7F, TK_PUNCT},
    {0x3000, 0x3000, TK_SPACE}, {0x3001, 0x3003, TK_PUNCT}, {0x3004, 0x3004, TK_SYMBOL},
    {0x3007, 0x3007, TK_NUMBER}, {0x3008, 0x3011, TK_PUNCT}, {0x3012, 0x3013, TK_SYMBOL},
    {0x3014, 0x301F, TK_PUNCT}, {0x3020, 0x3020, TK_SYMBOL}, {0x3021, 0x3029, TK_NUMBER},
    {0x302A, 0x302F, TK_OTHER}, {0x3030, 0x3030, TK_PUNCT}, {0x303D, 0x303D, TK_PUNCT},
    {0x3099, 0x309A, TK_OTHER}, {0x30FB, 0x30FB, TK_PUNCT}, {0xD800, 0xDFFF, TK_OTHER},
    {0xE000, 0xF8FF, TK_OTHER}, {0xFE00, 0xFE0F, TK_OTHER}, {0xFE10, 0xFE19, TK_PUNCT},
    {0xFE30, 0xFE4F, TK_PUNCT}, {0xFE50, 0xFE6B, TK_PUNCT}, {0xFEFF, 0xFEFF, TK_OTHER},
    {0xFF01, 0xFF03, TK_PUNCT}, {0xFF04, 0xFF04, TK_SYMBOL}, {0xFF05, 0xFF0A, TK_PUNCT},
    {0xFF0B, 0xFF0B, TK_SYMBOL}, {0xFF0C, 0xFF0F, TK_PUNCT}, {0xFF10, 0xFF19, TK_NUMBER},
    {0xFF1A, 0xFF1B, TK_PUNCT}, {0xFF1C, 0xFF1E, TK_SYMBOL}, {0xFF1F, 0xFF20, TK_PUNCT},
    {0xFF3B, 0xFF3D, TK_PUNCT}, {0xFF3E, 0xFF3E, TK_SYMBOL}, {0xFF3F, 0xFF3F, TK_PUNCT},
    {0xFF40, 0xFF40, TK_SYMBOL}, {0xFF5B, 0xFF5B, TK_PUNCT}, {0xFF5C, 0xFF5C, TK_SYMBOL},
    {0xFF5D, 0xFF5D, TK_PUNCT}, {0xFF5E, 0xFF5E, TK_SYMBOL}, {0xFF5F, 0xFF65, TK_PUNCT},
    {0xFFF0, 0xFFFF, TK_OTHER}, {0x1F000, 0x1FAFF, TK_SYMBOL}, {0xE0000, 0xE007F, TK_OTHER},
    {0xF0000, 0x10FFFF, TK_OTHER},
};

int tk_class(uint32_t cp)
{
    if (cp < 0x80) {
        if ((cp | 0x20) >= 'a' && (cp | 0x20) <= 'z')
            return TK_LETTER;
        if (cp >= '0' && cp <= '9')
            return TK_NUMBER;
        if (cp == ' ' || (cp >= '\t' && cp <= '\r'))
            return TK_SPACE;
        if (cp < 0x20 || cp == 0x7F)
            return TK_OTHER;
        if (strchr("$+<=>^`|~", (int)cp))
            return TK_SYMBOL;
        return TK_PUNCT;
    }
    size_t lo = 0, hi = sizeof k_ranges / sizeof k_ranges[0];
    while (lo < hi) { /* binary search: first range with hi >= cp */
        size_t mid = (lo + hi) / 2;
        if (k_ranges[mid].hi < cp)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < sizeof k_ranges / sizeof k_ranges[0] && k_ranges[lo].lo <= cp)
        return k_ranges[lo].cls;
    return TK_LETTER;
}

/* One UTF-8 character at s[0..n): its code point and byte length. Invalid
 * or truncated sequences are one byte with cp = TK_INVALID_CP. */
uint32_t tk_utf8_next(const unsigned char *s, size_t n, size_t *blen)
{
    unsigned c = s[0];
    size_t need = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (need == 1) {
        *blen = 1;
        return c;
    }
    if (need == 0 || need > n)
        goto bad;
    uint32_t cp = c & (0x7F >> need);
    for (size_t i = 1; i < need; i++) {
        if ((s[i] & 0xC0) != 0x80)
            goto bad;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    /* overlong forms and out-of-range values are invalid too */
    static const uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min_cp[need] || cp > 0x10FFFF)
        goto bad;
    *blen = need;
    return cp;
bad:
    *blen = 1;
    return TK_INVALID_CP;
}

/* ---- code point buffer for one text ----------------------------------- */

typedef struct cpbuf {
    uint32_t *cp;   /* [n] code points                 */
    uint8_t *cls;   /* [n] TK_* class                  */
    size_t *boff;   /* [n+1] byte offset of each cp    */
    size_t n;
} cpbuf;

static int cpbuf_init(cpbuf *b, const char *text, size_t len)
{
    b->cp = malloc((len + 1) * sizeof *b->cp);
    b->cls = malloc(len + 1);
    b->boff = malloc((len + 1) * sizeof *b->boff);
    if (!b->cp || !b->cls || !b->boff)
        return ENG_ENOMEM;
    size_t i = 0, n = 0;
    while (i < len) {
        size_t bl;
        uint32_t cp = tk_utf8_next((const unsigned char *)text + i, len - i, &bl);
        b->cp[n] = cp;
        b->cls[n] = cp == TK_INVALID_CP ? TK_OTHER : (uint8_t)tk_class(cp);
        b->boff[n++] = i;
        i += bl;
    }
    b->boff[n] = len;
    b->n = n;
    return ENG_OK;
}

static void cpbuf_free(cpbuf *b)
{
    free(b->cp);
    free(b->cls);
    free(b->boff);
}

/* ---- matchers: length of the match at pos within [pos, end), 0 = none -- */

typedef size_t (*matcher)(const cpbuf *b, size_t pos, size_t end);

static int is_l(const cpbuf *b, size_t i, size_t end) { return i < end && b->cls[i] == TK_LETTER; }
static int is_n(const cpbuf *b, size_t i, size_t end) { return i < end && b->cls[i] == TK_NUMBER; }
static int is_s(const cpbuf *b, size_t i, size_t end) { return i < end && b->cls[i] == TK_SPACE; }
static int is_crlf(const cpbuf *b, size_t i, size_t end)
{
    return i < end && (b->cp[i] == '\r' || b->cp[i] == '\n');
}
/* [^\s\p{L}\p{N}] */
static int is_o(const cpbuf *b, size_t i, size_t end)
{
    return i < end && b->cls[i] != TK_SPACE && b->cls[i] != TK_LETTER && b->cls[i] != TK_NUMBER;
}

static size_t run(const cpbuf *b, size_t i, size_t end, int (*pred)(const cpbuf *, size_t, size_t))
{
    size_t j = i;
    while (pred(b, j, end))
        j++;
    return j - i;
}

/* 's|'t|'re|'ve|'m|'ll|'d, case-folded when fold */
static size_t m_contraction(const cpbuf *b, size_t pos, size_t end, int fold)
{
    if (b->cp[pos] != '\'' || pos + 1 >= end)
        return 0;
    uint32_t c1 = b->cp[pos + 1], c2 = pos + 2 < end ? b->cp[pos + 2] : 0;
    if (fold) {
        c1 = c1 < 0x80 && (c1 | 0x20) >= 'a' && (c1 | 0x20) <= 'z' ? (c1 | 0x20) : c1;
        c2 = c2 < 0x80 && (c2 | 0x20) >= 'a' && (c2 | 0x20) <= 'z' ? (c2 | 0x20) : c2;
    }
    if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd')
        return 2;
    if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l'))
        return 3;
    return 0;
}

/* " ?X+" for a class predicate X */
static size_t m_opt_space_run(const cpbuf *b, size_t pos, size_t end,
                              int (*pred)(const cpbuf *, size_t, size_t))
{
    size_t p = (b->cp[pos] == ' ' && pred(b, pos + 1, end)) ? pos + 1 : pos;
    size_t r = run(b, p, end, pred);
    return r ? p - pos + r : 0;
}

/* \s+(?!\S) then \s+ : a whitespace run keeps its last char for the next
 * piece when a non-space follows (the lookahead backtracks one). */
static size_t m_spaces(const cpbuf *b, size_t pos, size_t end)
{
    size_t r = run(b, pos, end, is_s);
    if (r >= 2 && pos + r < end)
        return r - 1;
    return r;
}

static size_t m_gpt2(const cpbuf *b, size_t pos, size_t end)
{
    size_t r;
    if ((r = m_contraction(b, pos, end, 0)))
        return r;
    if ((r = m_opt_space_run(b, pos, end, is_l)))
        return r;
    if ((r = m_opt_space_run(b, pos, end, is_n)))
        return r;
    if ((r = m_opt_space_run(b, pos, end, is_o)))
        return r;
    return m_spaces(b, pos, end);
}

static size_t m_qwen2(const cpbuf *b, size_t pos, size_t end)
{
    size_t r;
    if ((r = m_contraction(b, pos, end, 1)))
        return r;
    /* [^\r\n\p{L}\p{N}]?\p{L}+ */
    if (is_l(b, pos, end))
        return run(b, pos, end, is_l);
    if (!is_crlf(b, pos, end) && !is_n(b, pos, end) && is_l(b, pos + 1, end))
        return 1 + run(b, pos + 1, end, is_l);
    if (is_n(b, pos, end)) /* \p{N} */
        return 1;
    /* ' ?[^\s\p{L}\p{N}]+[\r\n]*' */
    size_t p = (b->cp[pos] == ' ' && is_o(b, pos + 1, end)) ? pos + 1 : pos;
    if ((r = run(b, p, end, is_o)))
        return p - pos + r + run(b, p + r, end, is_crlf);
    /* \s*[\r\n]+ : up to and including the run's last CR/LF */
    size_t ws = run(b, pos, end, is_s), last = 0;
    for (size_t i = 0; i < ws; i++)
        if (is_crlf(b, pos + i, end))
            last = i + 1;
    if (last)
        return last;
    return m_spaces(b, pos, end);
}

/* [\p{P}\$\+<=>\^~\|]+ : punctuation and the ASCII symbols but '`' */
static int is_default_punct(const cpbuf *b, size_t i, size_t end)
{
    if (i >= end)
        return 0;
    if (b->cls[i] == TK_PUNCT)
        return 1;
    return b->cp[i] < 0x80 && b->cp[i] && strchr("$+<=>^~|", (int)b->cp[i]);
}
static size_t m_default_punct(const cpbuf *b, size_t pos, size_t end)
{
    return run(b, pos, end, is_default_punct);
}
static size_t m_numbers(const cpbuf *b, size_t pos, size_t end)
{
    return run(b, pos, end, is_n);
}
static size_t m_digits3(const cpbuf *b, size_t pos, size_t end)
{
    for (size_t i = 0; i < 3; i++)
        if (pos + i >= end || b->cp[pos + i] < '0' || b->cp[pos + i] > '9')
            return 0;
    return 3;
}

/* ---- split driver ------------------------------------------------------ */

typedef struct cuts {
    size_t *at;    /* piece boundaries in code points, ascending, at[0] = 0 */
    size_t n, cap; /* entries used (pieces + 1) */
} cuts;

static int cuts_push(cuts *c, size_t v)
{
    if (c->n && c->at[c->n - 1] == v)
        return ENG_OK;
    if (c->n == c->cap) {
        size_t nc = c->cap ? c->cap * 2 : 64;
        size_t *na = realloc(c->at, nc * sizeof *na);
        if (!na)
            return ENG_ENOMEM;
        c->at = na;
        c->cap = nc;
    }
    c->at[c->n++] = v;
    return ENG_OK;
}

/* Applies one regex to every piece of `in`, giving `out`: matches are
 * pieces, runs of unmatched characters are pieces too. */
static int split_pass(const cpbuf *b, const cuts *in, matcher m, cuts *out)
{
    out->n = 0;
    if (cuts_push(out, 0))
        return ENG_ENOMEM;
    for (size_t k = 0; k + 1 < in->n; k++) {
        size_t pos = in->at[k], end = in->at[k + 1];
        while (pos < end) {
            size_t r = m(b, pos, end);
            if (r == 0) { /* gap: extend to the next position that matches */
                pos++;
                continue;
            }
            if (cuts_push(out, pos) || cuts_push(out, pos + r))
                return ENG_ENOMEM;
            pos += r;
        }
        if (cuts_push(out, end))
            return ENG_ENOMEM;
    }
    return ENG_OK;
}

int eng_pretok_parse(const char *pre, eng_pretok *out, eng_err *e)
{
    if (!pre || !*pre || !strcmp(pre, "default"))
        *out = ENG_PRETOK_DEFAULT;
    else if (!strcmp(pre, "gpt2") || !strcmp(pre, "olmo"))
        *out = ENG_PRETOK_GPT2;
    else if (!strcmp(pre, "qwen2"))
        *out = ENG_PRETOK_QWEN2;
    else
        return eng_err_set(e, ENG_EUNSUPPORTED,
                           "tokenizer.ggml.pre '%s' is not supported (default, gpt2, olmo, qwen2)",
                           pre);
    return ENG_OK;
}

int eng_pretok_split(eng_pretok kind, const char *text, size_t len, size_t **off, size_t *n,
                     eng_err *e)
{
    static const matcher k_default[] = {m_default_punct, m_gpt2, m_numbers, m_digits3};
    const matcher *passes = k_default;
    size_t npass = 4;
    matcher single = kind == ENG_PRETOK_QWEN2 ? m_qwen2 : m_gpt2;
    if (kind != ENG_PRETOK_DEFAULT) {
        passes = &single;
        npass = 1;
    }
    *off = NULL;
    *n = 0;
    cpbuf b = {0};
    cuts a = {0}, c = {0};
    int rc = cpbuf_init(&b, text, len);
    if (!rc && b.n > 0) {
        rc = cuts_push(&a, 0) || cuts_push(&a, b.n) ? ENG_ENOMEM : ENG_OK;
        for (size_t p = 0; !rc && p < npass; p++) {
            rc = split_pass(&b, &a, passes[p], &c);
            cuts t = a;
            a = c;
            c = t;
        }
    }
    if (!rc && b.n > 0) { /* code point boundaries -> byte offsets */
        for (size_t i = 0; i < a.n; i++)
            a.at[i] = b.boff[a.at[i]];
        *off = a.at;
        *n = a.n - 1;
        a.at = NULL;
    }
    free(a.at);
    free(c.at);
    cpbuf_free(&b);
    if (rc)
        return eng_err_set(e, rc, "pre-tokenizer: out of memory");
    return ENG_OK;
}
