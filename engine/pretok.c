/*
 * pretok.c — the pre-tokenizers of byte-level BPE, as llama.cpp 82bb485's
 * unicode_regex_split (src/unicode.cpp) runs them.
 *
 * A pre-type is a list of passes (llama-vocab.cpp llm_tokenizer_bpe: one
 * regex per pass). Each pass re-splits every piece of the previous pass
 * into matches and the runs between them, both kept. A pass is either one
 * of llama.cpp's hand-written splitters (unicode_regex_split_custom picks
 * them by the exact regex string: gpt2, llama3, qwen2, kimi-k2), ported
 * below line for line, or a regex run by pretok_regex.c with the results
 * std::regex gives in llama.cpp:
 *   - a regex naming \p{..} runs on the "collapsed" text: ASCII stays as
 *     it is, a non-ASCII code point becomes one byte for its category
 *     (0x0B whitespace, 0xD1 number, 0xD2 letter, 0xD3 punctuation, 0xD4
 *     mark, 0xD5 symbol, 0xD0 other), and the regex's \p{X} becomes that
 *     byte plus X's ASCII members (collapse_regex, unicode.cpp:1291-1345);
 *     so \p{Lu} matches every non-ASCII letter, lower case too;
 *   - other regexes run on the code points, non-ASCII whitespace replaced
 *     by 0x0B (std::wregex's \s knows ASCII only).
 * Lookarounds and $ see the end of the current piece as the end of text.
 *
 * Text to code points: llama.cpp decodes leniently (tk_utf8_next_lenient:
 * invalid bytes become U+FFFD, overlong forms are accepted) and rebuilds
 * the pieces from the code points, so the pieces are pieces of that
 * normalized text, which eng_pretok_split returns.
 *
 * Unicode categories: unicode_tab.c, generated from the Unicode 15.1 data
 * llama.cpp uses (scripts/gen_unicode_tab.py checks it code point by code
 * point against llama.cpp's table).
 */
#include "engine/tokenizer.h"
#include "engine/tokenizer_impl.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* ---- UTF-8 ---------------------------------------------------------------- */

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

uint32_t tk_utf8_next_lenient(const unsigned char *s, size_t n, size_t *blen)
{
    unsigned c = s[0];
    /* unicode_cpt_from_utf8: the lead byte's high bits give the length */
    size_t need = !(c & 0x80) ? 1 : !(c & 0x40) ? 0 : !(c & 0x20) ? 2 : !(c & 0x10) ? 3
                : !(c & 0x08) ? 4 : 0;
    *blen = 1;
    if (need == 1)
        return c;
    if (need == 0 || need > n)
        return 0xFFFD;
    uint32_t cp = c & (0x7F >> need);
    for (size_t i = 1; i < need; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0xFFFD;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    *blen = need;
    return cp > 0x10FFFF ? 0xFFFD : cp; /* llama.cpp throws for these */
}

size_t tk_utf8_put(uint32_t cp, char *out)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* ---- the text as code points ---------------------------------------------- */

typedef struct cpbuf {
    uint32_t *cp;    /* [n] code points (lenient decoding)              */
    int16_t *fl;     /* [n] tk_uflags of each                            */
    size_t *boff;    /* [n+1] byte offset of each in norm                */
    char *norm;      /* the code points re-encoded, NUL-terminated       */
    size_t n;
    uint32_t *sym;   /* [n] symbols for a regex pass (collapsed or wide) */
    int sym_mode;    /* which form sym holds: 0 none, 1 collapsed, 2 wide */
} cpbuf;

static int cpbuf_init(cpbuf *b, const char *text, size_t len)
{
    memset(b, 0, sizeof *b);
    b->cp = malloc((len + 1) * sizeof *b->cp);
    b->fl = malloc((len + 1) * sizeof *b->fl);
    b->boff = malloc((len + 1) * sizeof *b->boff);
    b->norm = malloc(4 * len + 1); /* U+FFFD (3 bytes) for one bad byte */
    b->sym = malloc((len + 1) * sizeof *b->sym);
    if (!b->cp || !b->fl || !b->boff || !b->norm || !b->sym)
        return ENG_ENOMEM;
    size_t i = 0, k = 0;
    while (i < len) {
        size_t bl;
        uint32_t cp = tk_utf8_next_lenient((const unsigned char *)text + i, len - i, &bl);
        b->cp[b->n] = cp;
        b->fl[b->n] = (int16_t)tk_uflags(cp);
        b->boff[b->n++] = k;
        k += tk_utf8_put(cp, b->norm + k);
        i += bl;
    }
    b->boff[b->n] = k;
    b->norm[k] = 0;
    return ENG_OK;
}

static void cpbuf_free(cpbuf *b)
{
    free(b->cp);
    free(b->fl);
    free(b->boff);
    free(b->norm);
    free(b->sym);
}

/* ---- piece boundaries ------------------------------------------------------ */

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

/* ---- llama.cpp's hand-written splitters (unicode.cpp) ---------------------
 * Each walks one piece [ini, end) exactly as its C++ original; get_cpt and
 * get_fl return OUT / NOFL outside the piece (llama.cpp's OUT_OF_RANGE and
 * empty flags). Flags are never NOFL inside: every code point has a
 * category (undefined counts). */

#define OUT 0xFFFFFFFFu
#define NOFL (-1)

typedef struct piece {
    const cpbuf *b;
    size_t ini, end, prev; /* prev: end of the last piece added */
    cuts *out;
    int rc;
} piece;

static uint32_t get_cpt(const piece *p, size_t pos)
{
    return pos >= p->ini && pos < p->end ? p->b->cp[pos] : OUT;
}
static int get_fl(const piece *p, size_t pos)
{
    return pos >= p->ini && pos < p->end ? p->b->fl[pos] : NOFL;
}
static bool f_letter(int f) { return f != NOFL && (f & TK_CAT_MASK) == TK_CAT_LETTER; }
static bool f_number(int f) { return f != NOFL && (f & TK_CAT_MASK) == TK_CAT_NUMBER; }
static bool f_space(int f) { return f != NOFL && (f & TK_WS); }
static bool f_any(int f) { return f != NOFL; } /* flags.as_uint() != 0 */
static bool is_crlf(uint32_t c) { return c == '\r' || c == '\n'; }
/* unicode_tolower for the comparisons below: only ASCII capitals lower to
 * ASCII letters (asserted by scripts/gen_unicode_tab.py). */
static uint32_t lower(uint32_t c) { return c >= 'A' && c <= 'Z' ? c + 32 : c; }

/* _add_token: closes the piece at `end`; returns its length. */
static size_t add_token(piece *p, size_t end)
{
    size_t len = end - p->prev;
    if (len > 0 && !p->rc)
        p->rc = cuts_push(p->out, end);
    p->prev = end;
    return len;
}

/* 's|'t|'re|'ve|'m|'ll|'d at pos (case-folded when fold): its length. */
static size_t contraction(const piece *p, size_t pos, bool fold)
{
    if (get_cpt(p, pos) != '\'' || pos + 1 >= p->end)
        return 0;
    uint32_t n1 = get_cpt(p, pos + 1);
    n1 = fold ? lower(n1) : n1;
    if (n1 == 's' || n1 == 't' || n1 == 'm' || n1 == 'd')
        return 2;
    if (pos + 2 >= p->end)
        return 0;
    uint32_t n2 = get_cpt(p, pos + 2);
    n2 = fold ? lower(n2) : n2;
    if ((n1 == 'r' && n2 == 'e') || (n1 == 'v' && n2 == 'e') || (n1 == 'l' && n2 == 'l'))
        return 3;
    return 0;
}

/* The whitespace tail shared by the splitters: \s*[\r\n]+ (when crlf),
 * \s+(?!\S), \s+, else one character. Returns the new position. */
static size_t spaces_tail(piece *p, size_t pos, bool crlf)
{
    size_t nws = 0, last_rn = 0;
    while (f_space(get_fl(p, pos + nws))) {
        if (crlf && is_crlf(get_cpt(p, pos + nws)))
            last_rn = pos + nws + 1;
        nws++;
    }
    if (last_rn > 0) {
        add_token(p, last_rn);
        return last_rn;
    }
    if (nws > 1 && get_cpt(p, pos + nws) != OUT) {
        pos += nws - 1;
        add_token(p, pos);
        return pos;
    }
    if (nws > 0) {
        add_token(p, pos + nws);
        return pos + nws;
    }
    add_token(p, pos + 1); /* no match */
    return pos + 1;
}

/* 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+ */
static void split_gpt2(piece *p)
{
    for (size_t pos = p->ini; pos < p->end;) {
        uint32_t cpt = get_cpt(p, pos);
        int fl = get_fl(p, pos);
        size_t c = contraction(p, pos, false);
        if (c) {
            pos += add_token(p, pos + c);
            continue;
        }
        int f2 = cpt == ' ' ? get_fl(p, pos + 1) : fl;
        if (f_letter(f2) || f_number(f2)) {
            bool letter = f_letter(f2);
            pos += cpt == ' ';
            while (letter ? f_letter(f2) : f_number(f2))
                f2 = get_fl(p, ++pos);
            add_token(p, pos);
            continue;
        }
        if (!(f_space(f2) || f_letter(f2) || f_number(f2)) && f_any(f2)) {
            pos += cpt == ' ';
            while (!(f_space(f2) || f_letter(f2) || f_number(f2)) && f_any(f2))
                f2 = get_fl(p, ++pos);
            add_token(p, pos);
            continue;
        }
        pos = spaces_tail(p, pos, false);
    }
}

/* [^\r\n\p{L}\p{N}]?\p{L}+ at pos (llama3, qwen2): new position or 0. */
static size_t letters(piece *p, size_t pos, uint32_t cpt, int fl)
{
    if (is_crlf(cpt) || f_number(fl) || !(f_letter(fl) || f_letter(get_fl(p, pos + 1))))
        return 0;
    pos++;
    while (f_letter(get_fl(p, pos)))
        pos++;
    add_token(p, pos);
    return pos;
}

/* ' ?[^\s\p{L}\p{N}]+[\r\n]*' (llama3, qwen2): new position or 0. As in
 * llama.cpp, the entry test looks at the flags of the first character
 * (`flags.as_uint()`), the loop at the following ones. */
static size_t punct_run(piece *p, size_t pos, uint32_t cpt, int fl)
{
    int f2 = cpt == ' ' ? get_fl(p, pos + 1) : fl;
    if ((f_space(f2) || f_letter(f2) || f_number(f2)) || !f_any(fl))
        return 0;
    pos += cpt == ' ';
    while (!(f_space(f2) || f_letter(f2) || f_number(f2)) && f_any(f2))
        f2 = get_fl(p, ++pos);
    while (is_crlf(get_cpt(p, pos)))
        pos++;
    add_token(p, pos);
    return pos;
}

/* \p{N}{1,3}: new position. */
static size_t digits3(piece *p, size_t pos)
{
    size_t ini = pos;
    while (f_number(get_fl(p, pos))) {
        if (++pos - ini >= 3) {
            add_token(p, pos);
            ini = pos;
        }
    }
    add_token(p, pos);
    return pos;
}

/* llama3:  (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
 *          ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
 * qwen2: the same with \p{N} for \p{N}{1,3} (one digit per piece). */
static void split_llama3_qwen2(piece *p, bool qwen2)
{
    for (size_t pos = p->ini; pos < p->end;) {
        uint32_t cpt = get_cpt(p, pos);
        int fl = get_fl(p, pos);
        size_t c = contraction(p, pos, true), np;
        if (c) {
            pos += add_token(p, pos + c);
            continue;
        }
        if ((np = letters(p, pos, cpt, fl))) {
            pos = np;
            continue;
        }
        if (f_number(fl)) {
            if (qwen2)
                pos += add_token(p, pos + 1);
            else
                pos = digits3(p, pos);
            continue;
        }
        if ((np = punct_run(p, pos, cpt, fl))) {
            pos = np;
            continue;
        }
        pos = spaces_tail(p, pos, true);
    }
}

/* unicode_cpt_is_han (unicode.cpp) */
static bool is_han(uint32_t c)
{
    return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) ||
           (c >= 0x20000 && c <= 0x2A6DF) || (c >= 0x2A700 && c <= 0x2B73F) ||
           (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B820 && c <= 0x2CEAF) ||
           (c >= 0x2CEB0 && c <= 0x2EBEF) || (c >= 0xF900 && c <= 0xFAFF) ||
           (c >= 0x2F800 && c <= 0x2FA1F);
}

static bool kimi_letter(const piece *p, size_t pos)
{
    return f_letter(get_fl(p, pos)) && !is_han(get_cpt(p, pos));
}

/* Kimi-K2's letter patterns (2 and 3 of unicode_regex_split_custom_kimi_k2):
 * new position, or 0 when they do not apply. */
static size_t kimi_word(piece *p, size_t pos, uint32_t cpt, int fl)
{
    bool lead_ok = !(is_crlf(cpt) || f_letter(fl) || f_number(fl));
    if (!((f_letter(fl) && !is_han(cpt)) || (lead_ok && kimi_letter(p, pos + 1))))
        return 0;
    bool lead = false, any = false;
    if (lead_ok) {
        lead = true;
        pos++;
    }
    while (kimi_letter(p, pos)) {
        any = true;
        pos++;
    }
    if (!any && !(!lead && kimi_letter(p, pos)))
        return 0; /* llama.cpp backtracks over the leading character */
    if (!any)
        pos++;
    while (kimi_letter(p, pos))
        pos++;
    if (get_cpt(p, pos) == '\'' && pos + 1 < p->end) {
        uint32_t n1 = lower(get_cpt(p, pos + 1));
        if (n1 == 's' || n1 == 't' || n1 == 'm' || n1 == 'd') {
            pos += 2;
        } else if (pos + 2 < p->end) {
            uint32_t n2 = lower(get_cpt(p, pos + 2));
            if ((n1 == 'r' && n2 == 'e') || (n1 == 'v' && n2 == 'e') || (n1 == 'l' && n2 == 'l'))
                pos += 3;
        }
    }
    add_token(p, pos);
    return pos;
}

/* [\p{Han}]+ | Kimi words | \p{N}{1,3} | ?[^\s\p{L}\p{N}]+[\r\n]* | \s*[\r\n]+
 * | \s+(?!\S) | \s+ (unicode.cpp:776) */
static void split_kimi(piece *p)
{
    for (size_t pos = p->ini; pos < p->end;) {
        uint32_t cpt = get_cpt(p, pos);
        int fl = get_fl(p, pos);
        size_t np;
        if (is_han(cpt)) {
            while (is_han(get_cpt(p, pos)))
                pos++;
            add_token(p, pos);
            continue;
        }
        if ((np = kimi_word(p, pos, cpt, fl))) {
            pos = np;
            continue;
        }
        if (f_number(fl)) {
            pos = digits3(p, pos);
            continue;
        }
        /* unlike llama3's, this entry test reads the next flags (f2) */
        int f2 = cpt == ' ' ? get_fl(p, pos + 1) : fl;
        if (!(f_space(f2) || f_letter(f2) || f_number(f2)) && f_any(f2)) {
            pos += cpt == ' ';
            while (!(f_space(f2) || f_letter(f2) || f_number(f2)) && f_any(f2))
                f2 = get_fl(p, ++pos);
            while (is_crlf(get_cpt(p, pos)))
                pos++;
            add_token(p, pos);
            continue;
        }
        pos = spaces_tail(p, pos, true);
    }
}

/* deepseek-llm's `\s+$` (a std::regex pass in llama.cpp). The leftmost
 * match in a piece starts where the piece's trailing whitespace begins
 * (from any earlier start a non-space stands between the run and the end),
 * and \s here is TK_WS: ASCII \t..\r and space, and the non-ASCII
 * whitespace that llama.cpp's wide text turns into 0x0B. So the pass cuts
 * the trailing whitespace off, in linear time, where a backtracking regex
 * takes time quadratic in a long run of spaces followed by a non-space. */
static void split_trailing_space(piece *p)
{
    size_t j = p->end;
    while (j > p->ini && f_space(get_fl(p, j - 1)))
        j--;
    add_token(p, j);
}

/* ---- regex passes ------------------------------------------------------------ */

enum { SPLIT_GPT2 = 1, SPLIT_LLAMA3, SPLIT_QWEN2, SPLIT_KIMI, SPLIT_TRAILING_SPACE };

typedef struct pass {
    int custom;        /* SPLIT_*, or 0 for a regex */
    const char *re;    /* the regex as llama-vocab.cpp writes it */
} pass;

/* The \p{..} names llama.cpp collapses, with their byte and ASCII members
 * (k_ucat_enum, k_ucat_cpt, k_ucat_map in unicode.cpp:1202-1228). */
static const struct ucat {
    const char *name;
    uint8_t byte;
    const char *ascii;
} k_ucat[] = {
    {"\\p{N}", 0xD1, "0-9"},
    {"\\p{L}", 0xD2, "A-Za-z"},
    {"\\p{P}", 0xD3, "!-#%-*,-/:-;?-@\\[-\\]_\\{\\}"},
    {"\\p{M}", 0xD4, ""},
    {"\\p{S}", 0xD5, "\\$\\+<->^`\\|"},
    {"\\p{Lu}", 0xD2, "A-Za-z"},
    {"\\p{Ll}", 0xD2, "A-Za-z"},
    {"\\p{Lt}", 0xD2, "A-Za-z"},
    {"\\p{Lm}", 0xD2, "A-Za-z"},
    {"\\p{Lo}", 0xD2, "A-Za-z"},
};
#define N_UCAT (sizeof k_ucat / sizeof k_ucat[0])

static bool uses_categories(const char *re)
{
    for (size_t i = 0; i < N_UCAT; i++)
        if (strstr(re, k_ucat[i].name))
            return true;
    return false;
}

/* The collapsed regex (unicode.cpp:1296-1338, the same walk): \p{X} becomes
 * X's byte and ASCII members, bracketed unless already inside [..]. The
 * regex is ASCII, so its bytes are its symbols. out has room for 8*len. */
static size_t collapse_regex(const char *re, uint32_t *out)
{
    size_t len = strlen(re), k = 0;
    bool inside = false;
    for (size_t i = 0; i < len; i++) {
        if (re[i] == '[' && (i == 0 || re[i - 1] != '\\')) {
            out[k++] = '[';
            inside = true;
            continue;
        }
        if (inside && re[i] == ']' && re[i - 1] != '\\') {
            out[k++] = ']';
            inside = false;
            continue;
        }
        if (re[i] == '\\' && i + 3 < len && re[i + 1] == 'p' && re[i + 2] == '{') {
            const char *close = strchr(re + i + 3, '}');
            size_t cl = close ? (size_t)(close - re) : 0;
            const struct ucat *u = NULL;
            for (size_t j = 0; close && cl <= i + 10 && j < N_UCAT; j++)
                if (strlen(k_ucat[j].name) == cl - i + 1 && !memcmp(re + i, k_ucat[j].name, cl - i + 1))
                    u = &k_ucat[j];
            if (u) {
                if (!inside)
                    out[k++] = '[';
                out[k++] = u->byte;
                for (const char *a = u->ascii; *a; a++)
                    out[k++] = (unsigned char)*a;
                if (!inside)
                    out[k++] = ']';
                i = cl;
                continue;
            }
        }
        out[k++] = (unsigned char)re[i];
    }
    return k;
}

/* The symbols a regex pass matches on, for the whole text. */
static void make_symbols(cpbuf *b, bool collapsed)
{
    int mode = collapsed ? 1 : 2;
    if (b->sym_mode == mode)
        return;
    for (size_t i = 0; i < b->n; i++) {
        uint32_t c = b->cp[i];
        int f = b->fl[i];
        if (c < 0x80)
            b->sym[i] = c;
        else if (f & TK_WS)
            b->sym[i] = 0x0B;
        else if (!collapsed)
            b->sym[i] = c;
        else
            switch (f & TK_CAT_MASK) {
            case TK_CAT_NUMBER: b->sym[i] = 0xD1; break;
            case TK_CAT_LETTER: b->sym[i] = 0xD2; break;
            case TK_CAT_PUNCT: b->sym[i] = 0xD3; break;
            case TK_CAT_MARK: b->sym[i] = 0xD4; break;
            case TK_CAT_SYMBOL: b->sym[i] = 0xD5; break;
            default: b->sym[i] = 0xD0;
            }
    }
    b->sym_mode = mode;
}

static int compile_pass(const char *re, bool collapsed, tk_regex **out, eng_err *e)
{
    size_t len = strlen(re), n = 0;
    uint32_t *pat = malloc((8 * len + 1) * sizeof *pat);
    if (!pat)
        return eng_err_set(e, ENG_ENOMEM, "pre-tokenizer: out of memory");
    if (collapsed) {
        n = collapse_regex(re, pat);
    } else { /* the regex's code points (std::wregex) */
        for (size_t i = 0; i < len;) {
            size_t bl;
            pat[n++] = tk_utf8_next((const unsigned char *)re + i, len - i, &bl);
            i += bl;
        }
    }
    int rc = tk_regex_compile(out, pat, n, e);
    free(pat);
    if (rc)
        eng_err_prefix(e, "pre-tokenizer regex '%.40s'", re);
    return rc;
}

/* std::regex_iterator over each piece: matches and the runs between them. */
static int regex_pass(cpbuf *b, const cuts *in, const char *re, cuts *out, eng_err *e)
{
    bool collapsed = uses_categories(re);
    tk_regex *rx;
    int rc = compile_pass(re, collapsed, &rx, e);
    if (rc)
        return rc;
    make_symbols(b, collapsed);
    tk_restack st = {0};
    for (size_t k = 0; !rc && k + 1 < in->n; k++) {
        size_t pos = in->at[k], end = in->at[k + 1];
        while (!rc && pos < end) {
            long r = tk_regex_match(rx, b->sym, pos, end, &st);
            if (r == -2)
                rc = ENG_ENOMEM;
            else if (r < 0 || (size_t)r == pos) /* no (non-empty) match here */
                pos++;
            else if (cuts_push(out, pos) || cuts_push(out, (size_t)r))
                rc = ENG_ENOMEM;
            else
                pos = (size_t)r;
        }
        if (!rc)
            rc = cuts_push(out, end);
    }
    free(st.a);
    tk_regex_free(rx);
    return rc == ENG_ENOMEM ? eng_err_set(e, rc, "pre-tokenizer: out of memory") : rc;
}

static int custom_pass(const cpbuf *b, const cuts *in, int which, cuts *out)
{
    for (size_t k = 0; k + 1 < in->n; k++) {
        piece p = {b, in->at[k], in->at[k + 1], in->at[k], out, ENG_OK};
        switch (which) {
        case SPLIT_GPT2: split_gpt2(&p); break;
        case SPLIT_LLAMA3: split_llama3_qwen2(&p, false); break;
        case SPLIT_QWEN2: split_llama3_qwen2(&p, true); break;
        case SPLIT_TRAILING_SPACE: split_trailing_space(&p); break;
        default: split_kimi(&p); break;
        }
        if (p.rc || cuts_push(out, p.end))
            return ENG_ENOMEM;
    }
    return ENG_OK;
}

/* ---- the pre-types (llama-vocab.cpp:280-553) ------------------------------- */

#define GPT2_RE "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)"

typedef struct pretype {
    eng_pretok kind;
    const char *name;    /* tokenizer.ggml.pre as llama.cpp's converter writes it */
    const char *aliases; /* other values llama.cpp maps to it, space-separated */
    pass passes[6];      /* up to the first {0, NULL} */
} pretype;

static const pretype k_pretypes[] = {
    {ENG_PRETOK_DEFAULT, "default", "",
     {{0, "[\\p{P}\\$\\+<=>\\^~\\|]+"}, {SPLIT_GPT2, GPT2_RE}, {0, "\\p{N}+"},
      {0, "[0-9][0-9][0-9]"}}},
    {ENG_PRETOK_GPT2, "gpt-2", "gpt2 olmo", {{SPLIT_GPT2, GPT2_RE}}},
    {ENG_PRETOK_QWEN2, "qwen2", "deepseek-r1-qwen", {{SPLIT_QWEN2, "qwen2"}}},
    {ENG_PRETOK_LLAMA3, "llama-bpe", "llama3 llama-v3", {{SPLIT_LLAMA3, "llama3"}}},
    {ENG_PRETOK_GLM4, "glm4", "chatglm-bpe", {{SPLIT_LLAMA3, "llama3"}}},
    /* non-ASCII bytes as octal escapes, written by a script from the source
     * file, so that no editor can normalize them (U+1F7D is not U+03CE) */
    {ENG_PRETOK_DEEPSEEK_LLM, "deepseek-llm", "", /* llama-vocab.cpp:310-315 */
     {{0, "[\r\n]"},
      {0, "\\s?[A-Za-z\302\265\303\200-\303\226\303\230-\303\266\303\270-\306\272\306\274-\306"
           "\277\307\204-\312\223\312\225-\312\257\315\260-\315\263\315\266\315\267\315\273-\315"
           "\275\315\277\316\206\316\210-\316\212\316\214\316\216-\316\241\316\243-\317\265\317"
           "\267-\322\201\322\212-\324\257\324\261-\325\226\341\202\240-\341\203\205\341\216\240"
           "-\341\217\265\341\217\270-\341\217\275\341\262\220-\341\262\272\341\262\275-\341\262"
           "\277\341\264\200-\341\264\253\341\265\253-\341\265\267\341\265\271-\341\266\232\341"
           "\270\200-\341\274\225\341\274\230-\341\274\235\341\274\240-\341\275\205\341\275\210-"
           "\341\275\215\341\275\220-\341\275\227\341\275\231\341\275\233\341\275\235\341\275"
           "\237-\341\275\275\341\276\200-\341\276\264\341\276\266-\341\276\274\341\276\276\341"
           "\277\202-\341\277\204\341\277\206-\341\277\214\341\277\220-\341\277\223\341\277\226-"
           "\341\277\233\341\277\240-\341\277\254\341\277\262-\341\277\264\341\277\266-\341\277"
           "\274\342\204\202\342\204\207\342\204\212-\342\204\223\342\204\225\342\204\231-\342"
           "\204\235\342\204\244\342\204\246\342\204\250\342\204\252-\342\204\255\342\204\257-"
           "\342\204\264\342\204\271\342\204\274-\342\204\277\342\205\205-\342\205\211\342\205"
           "\216\342\206\203\342\206\204\342\260\200-\342\261\273\342\261\276-\342\263\244\342"
           "\263\253-\342\263\256\342\263\262\342\263\263\352\231\200-\352\231\255\352\232\200-"
           "\352\232\233\352\234\242-\352\235\257\352\235\261-\352\236\207\352\236\213-\352\236"
           "\216\352\255\260-\352\256\277\357\254\200-\357\254\206\357\254\223-\357\254\227\357"
           "\274\241-\357\274\272\357\275\201-\357\275\232\360\220\220\200-\360\220\221\217\360"
           "\220\222\260-\360\220\223\223\360\220\223\230-\360\220\223\273\360\220\262\200-\360"
           "\220\262\262\360\220\263\200-\360\220\263\262\360\221\242\240-\360\221\243\237\360"
           "\236\244\200-\360\236\245\203]+"},
      {0, "\\s?[!-/:-~\357\274\201-\357\274\217\357\274\232-\357\275\236\342\200\230-\342\200"
           "\237\343\200\200-\343\200\202]+"},
      {SPLIT_TRAILING_SPACE, "\\s+$"},
      {0, "[\344\270\200-\351\276\245\340\240\200-\344\270\200\352\260\200-\355\237\277]+"},
      {0, "\\p{N}+"}}},
    {ENG_PRETOK_DEEPSEEK3, "deepseek-v3", "", /* llama-vocab.cpp:322-324 */
     {{0, "\\p{N}{1,3}"},
      {0, "[\344\270\200-\351\276\245\343\201\200-\343\202\237\343\202\240-\343\203\277]+"},
      {0, "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p"
           "{L}\\p{M}]+| ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+"}}},
    {ENG_PRETOK_GPT4O, "gpt-4o", "llama4", /* llama-vocab.cpp:433, the adapted regex */
     {{0, "[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}])([^a-z]))*((?=[\\p{L}])([^A-Z]))+"
          "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?"
          "|[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}])([^a-z]))+((?=[\\p{L}])([^A-Z]))*"
          "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?"
          "|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"}}},
    {ENG_PRETOK_KIMI_K2, "kimi-k2", "", {{SPLIT_KIMI, "\\p{Han}+"}}},
};
#define N_PRETYPES (sizeof k_pretypes / sizeof k_pretypes[0])

static const pretype *pretype_of(eng_pretok kind)
{
    for (size_t i = 0; i < N_PRETYPES; i++)
        if (k_pretypes[i].kind == kind)
            return &k_pretypes[i];
    return &k_pretypes[0];
}

static bool name_in(const char *names, const char *pre)
{
    size_t n = strlen(pre);
    for (const char *s = names; *s;) {
        size_t w = strcspn(s, " ");
        if (w == n && !memcmp(s, pre, n))
            return true;
        s += w + (s[w] == ' ');
    }
    return false;
}

int eng_pretok_parse(const char *pre, eng_pretok *out, eng_err *e)
{
    if (!pre || !*pre) {
        *out = ENG_PRETOK_DEFAULT;
        return ENG_OK;
    }
    for (size_t i = 0; i < N_PRETYPES; i++)
        if (!strcmp(k_pretypes[i].name, pre) || name_in(k_pretypes[i].aliases, pre)) {
            *out = k_pretypes[i].kind;
            return ENG_OK;
        }
    return eng_err_set(e, ENG_EUNSUPPORTED,
                       "tokenizer.ggml.pre '%.64s' is not supported (" ENG_PRETOK_NAMES ")", pre);
}

const char *eng_pretok_name(eng_pretok kind)
{
    return pretype_of(kind)->name;
}

/* Runs every pass of kind over b; *a ends as the final cuts. */
static int run_passes(eng_pretok kind, cpbuf *b, cuts *a, eng_err *e)
{
    const pretype *pt = pretype_of(kind);
    cuts c = {0};
    int rc = cuts_push(a, 0) || cuts_push(a, b->n) ? ENG_ENOMEM : ENG_OK;
    for (size_t i = 0; !rc && i < 6 && pt->passes[i].re; i++) {
        c.n = 0;
        if (cuts_push(&c, 0))
            rc = ENG_ENOMEM;
        else if (pt->passes[i].custom)
            rc = custom_pass(b, a, pt->passes[i].custom, &c);
        else
            rc = regex_pass(b, a, pt->passes[i].re, &c, e);
        cuts t = *a;
        *a = c;
        c = t;
    }
    free(c.at);
    if (rc == ENG_ENOMEM)
        return eng_err_set(e, rc, "pre-tokenizer: out of memory");
    return rc;
}

int eng_pretok_split(eng_pretok kind, const char *text, size_t len, char **norm,
                     size_t *norm_len, size_t **off, size_t *n, eng_err *e)
{
    *off = NULL;
    *n = 0;
    *norm = NULL;
    *norm_len = 0;
    cpbuf b;
    cuts a = {0};
    int rc = cpbuf_init(&b, text, len) ? eng_err_set(e, ENG_ENOMEM, "pre-tokenizer: out of memory")
                                       : ENG_OK;
    if (!rc && b.n > 0)
        rc = run_passes(kind, &b, &a, e);
    if (!rc) {
        for (size_t i = 0; i < a.n; i++) /* code point boundaries -> bytes */
            a.at[i] = b.boff[a.at[i]];
        *off = b.n ? a.at : NULL;
        *n = b.n ? a.n - 1 : 0;
        *norm = b.norm;
        *norm_len = b.boff[b.n];
        b.norm = NULL;
        if (b.n)
            a.at = NULL;
    }
    free(a.at);
    cpbuf_free(&b);
    return rc;
}
