/* test_pretok.c — the pre-tokenizers of llama.cpp's pre-types: the regex
 * engine on ECMAScript's backtracking rules, the Unicode table, known splits
 * of every new pre-type, llama.cpp's lenient UTF-8 decoding.
 *
 * The expected splits below are what llama.cpp 82bb485's own
 * unicode_regex_split returns for these strings (scripts/tokcheck/
 * split_check.sh prints them; it also compares 170 000 random strings),
 * checked by hand against the regexes for the distinctive cases (noted). */
#include "tests/test.h"

#include "engine/tokenizer.h"
#include "engine/tokenizer_impl.h"

#include <stdlib.h>

/* ---- the regex engine ------------------------------------------------------ */

/* Compiles an ASCII pattern; the match length at pos 0 of subject, or -1. */
static long re_match(const char *pat, const char *subject)
{
    uint32_t p[256], s[256];
    size_t np = strlen(pat), ns = strlen(subject);
    REQUIRE(np < 256 && ns < 256);
    for (size_t i = 0; i < np; i++)
        p[i] = (unsigned char)pat[i];
    for (size_t i = 0; i < ns; i++)
        s[i] = (unsigned char)subject[i];
    tk_regex *re;
    eng_err e = {0};
    REQUIRE_MSG(tk_regex_compile(&re, p, np, &e) == ENG_OK, "%s: %s", pat, e.msg);
    tk_restack st = {0};
    long r = tk_regex_match(re, s, 0, ns, &st);
    free(st.a);
    tk_regex_free(re);
    return r;
}

TEST(regex_backtracking_order)
{
    /* alternatives are tried left to right: the first that matches wins,
     * not the longest (ECMAScript, unlike POSIX) */
    CHECK_EQ_INT(re_match("a|ab", "abc"), 1);
    CHECK_EQ_INT(re_match("ab|a", "abc"), 2);
    /* greedy loops give back one at a time */
    CHECK_EQ_INT(re_match("a*ab", "aaab"), 4);
    CHECK_EQ_INT(re_match("\\s+(?!\\S)", "   x"), 2);
    CHECK_EQ_INT(re_match("\\s+(?!\\S)", "   "), 3);
    CHECK_EQ_INT(re_match("\\s*[\\r\\n]+", " \n \n x"), 4);
    /* counted repetition and optional parts */
    CHECK_EQ_INT(re_match("[0-9]{1,3}", "12345"), 3);
    CHECK_EQ_INT(re_match("[0-9]{2}", "1"), -1);
    CHECK_EQ_INT(re_match("x{2,}", "xxxxy"), 4);
    CHECK_EQ_INT(re_match(" ?[a-z]+", " abc d"), 4);
    /* lookahead: does not consume; negative; inside a loop */
    CHECK_EQ_INT(re_match("a(?=b)", "ab"), 1);
    CHECK_EQ_INT(re_match("a(?=b)", "ac"), -1);
    CHECK_EQ_INT(re_match("a(?!b)", "ac"), 1);
    CHECK_EQ_INT(re_match("((?=[a-z])[^A-Z])+", "abC"), 2);
    /* $ only at the end of the subject */
    CHECK_EQ_INT(re_match("\\s+$", "  x"), -1);
    CHECK_EQ_INT(re_match("\\s+$", "  "), 2);
    /* classes: negation, escapes, ranges, literal '-' and ']' first */
    CHECK_EQ_INT(re_match("[^\\s\\r]+", "ab c"), 2);
    CHECK_EQ_INT(re_match("[\\[-\\]]+", "[\\]x"), 3);
    CHECK_EQ_INT(re_match("[-a]+", "-a-b"), 3);
    CHECK_EQ_INT(re_match("[]a]+", "]a]b"), 3);
    CHECK_EQ_INT(re_match("\\S\\d\\D", "x1y"), 3);
    CHECK_EQ_INT(re_match("(?:'[sS]|'[tT])", "'S"), 2);
    CHECK_EQ_INT(re_match("a{x", "a{x"), 3); /* '{' not a quantifier: literal */
}

static int re_compile_rc(const char *pat)
{
    uint32_t p[128];
    size_t n = strlen(pat);
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)pat[i];
    tk_regex *re = NULL;
    eng_err e = {0};
    int rc = tk_regex_compile(&re, p, n, &e);
    CHECK((rc == ENG_OK) == (re != NULL));
    if (rc)
        CHECK_CONTAINS(e.msg, "regex:");
    tk_regex_free(re);
    return rc;
}

TEST(regex_refuses_what_it_does_not_implement)
{
    static const char *const bad[] = {
        "(a",  "a)", "[a",  "[b-a]", "a**", "a+?", "(?<=a)", "\\w", "\\b", ".", "^a", "\\",
        "(a*)*", "(|a)+", "(?=a)*", "[\\S]", "*a",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK_MSG(re_compile_rc(bad[i]) == ENG_EINVAL, "'%s' compiled", bad[i]);
    CHECK_EQ_INT(re_compile_rc("(a+)*"), ENG_OK);
    CHECK_EQ_INT(re_compile_rc(""), ENG_OK);
}

/* ---- the Unicode table --------------------------------------------------------- */

TEST(unicode_categories_as_llama_cpp_collapses_them)
{
    static const struct {
        uint32_t cp;
        int flags;
    } want[] = {
        {'a', TK_CAT_LETTER}, {'Z', TK_CAT_LETTER}, {'7', TK_CAT_NUMBER},
        {' ', TK_CAT_SEPARATOR | TK_WS}, {'\n', TK_CAT_CONTROL | TK_WS},
        {'$', TK_CAT_SYMBOL}, {'_', TK_CAT_PUNCT}, {'`', TK_CAT_SYMBOL}, {0x7F, TK_CAT_CONTROL},
        {0x85, TK_CAT_CONTROL | TK_WS}, {0xA0, TK_CAT_SEPARATOR | TK_WS}, {0xB5, TK_CAT_LETTER},
        {0xBD, TK_CAT_NUMBER}, {0x301, TK_CAT_MARK}, {0x378, TK_CAT_UNDEF},
        {0x200B, TK_CAT_CONTROL}, {0x2028, TK_CAT_SEPARATOR | TK_WS}, {0x3000, TK_CAT_SEPARATOR | TK_WS},
        {0x4E00, TK_CAT_LETTER}, {0xFF01, TK_CAT_PUNCT}, {0xD800, TK_CAT_CONTROL},
        {0xE000, TK_CAT_CONTROL}, {0x1F600, TK_CAT_SYMBOL}, {0x1F3FD, TK_CAT_SYMBOL},
        {0x2FFC, TK_CAT_SYMBOL}, {0x31EF, TK_CAT_SYMBOL}, /* Unicode 15.1 additions */
        {0x2EBF0, TK_CAT_LETTER}, {0x2EE5D, TK_CAT_LETTER}, {0x2EE5E, TK_CAT_UNDEF},
        {0x10FFFF, TK_CAT_UNDEF}, {0x110000, TK_CAT_UNDEF}, {0xFFFFFFFF, TK_CAT_UNDEF},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        CHECK_MSG(tk_uflags(want[i].cp) == want[i].flags, "U+%04X: %#x, want %#x",
                  (unsigned)want[i].cp, tk_uflags(want[i].cp), want[i].flags);
}

/* ---- splits ------------------------------------------------------------------------ */

static char *split_str(const char *pre, const char *text)
{
    eng_pretok kind;
    eng_err e = {0};
    REQUIRE(eng_pretok_parse(pre, &kind, &e) == ENG_OK);
    size_t *off, n, nl;
    char *norm;
    REQUIRE_MSG(eng_pretok_split(kind, text, strlen(text), &norm, &nl, &off, &n, &e) == ENG_OK,
                "%s", e.msg);
    char *s = tst_alloc(2 * nl + 2);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        CHECK(off[i] < off[i + 1]);
        if (i)
            s[k++] = '|';
        memcpy(s + k, norm + off[i], off[i + 1] - off[i]);
        k += off[i + 1] - off[i];
    }
    s[k] = 0;
    CHECK(n == 0 || off[n] == nl);
    free(off);
    free(norm);
    return s;
}

static const struct {
    const char *pre, *text, *want;
} k_splits[] = {
    /* llama-bpe: digits in threes, case-folded contractions */
    {"llama-bpe", "Hello WORLD's 1234567 x\n\n  y", "Hello| WORLD|'s| |123|456|7| x|\n\n| | y"},
    {"llama-bpe", "I'M don't WE'LL", "I|'M| don|'t| WE|'LL"},
    {"llama-bpe", "e\xcc\x81" "cole", "e|\xcc\x81" "cole"}, /* a mark is no letter */
    {"llama-bpe", "def f(x):\n    return x**2\n", "def| f|(x|):\n|   | return| x|**|2|\n"},
    {"glm4", "3.14159 1,000,000", "3|.|141|59| |1|,|000|,|000"},
    /* deepseek-llm: six passes; letters only from its explicit list (not
     * U+01BB, U+0294; not e with diaeresis), digits in runs */
    {"deepseek-llm", "Hello WORLD's 1234567 x\n\n  y", "Hello| WORLD|'|s| |1234567| x|\n|\n| | y"},
    {"deepseek-llm", "na\xc3\xafve caf\xc3\xa9 \xe2\x80\x94 \xc2\xabok\xc2\xbb",
     "na|\xc3\xaf|ve| caf|\xc3\xa9| |\xe2\x80\x94| \xc2\xab|ok|\xc2\xbb"},
    {"deepseek-llm", "\xc2\xb5 \xc6\xbb \xca\x94", "\xc2\xb5| \xc6\xbb \xca\x94"},
    {"deepseek-llm", "\xc3\x89" "COLE \xc3\xa9" "cole", "\xc3\x89|COLE| \xc3\xa9|cole"},
    {"deepseek-llm", "x   \n\n   y", "x|   |\n|\n|  | y"},
    {"deepseek-llm", "def f(x):\n    return x**2\n", "def| f|(|x|):|\n|   | return| x|**|2|\n"},
    /* deepseek-v3: CJK and kana runs apart, marks join letters */
    {"deepseek-v3", "\xe4\xb8\xad\xe6\x96\x87" "abc123", "\xe4\xb8\xad\xe6\x96\x87|abc|123"},
    {"deepseek-v3", "e\xcc\x81" "cole", "e\xcc\x81" "cole"},
    {"deepseek-v3",
     "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e\xe3\x81\xae\xe3\x83\x86\xe3\x82\xad\xe3\x82\xb9\xe3\x83"
     "\x88\xe3\x80\x81\xe3\x82\xab\xe3\x82\xbf\xe3\x82\xab\xe3\x83\x8a\xef\xbc\x81",
     "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e\xe3\x81\xae\xe3\x83\x86\xe3\x82\xad\xe3\x82\xb9\xe3\x83"
     "\x88|\xe3\x80\x81|\xe3\x82\xab\xe3\x82\xbf\xe3\x82\xab\xe3\x83\x8a|\xef\xbc\x81"},
    {"deepseek-v3", "Hello WORLD's 1234567 x\n\n  y", "Hello| WORLD|'s| |123|456|7| x|\n\n| | y"},
    /* gpt-4o: capitals then lower case make a word; a non-ASCII letter is
     * both (llama.cpp's collapsed classes: "É" alone before "COLE") */
    {"gpt-4o", "HTTPServer getURL iPhone", "HTTPServer| get|URL| i|Phone"},
    {"gpt-4o", "I'M don't WE'LL", "I'M| don't| WE'LL"},
    {"gpt-4o", "\xc3\x89" "COLE \xc3\xa9" "cole", "\xc3\x89|COLE| \xc3\xa9" "cole"},
    {"gpt-4o", "Hello WORLD's 1234567 x\n\n  y", "Hello| WORLD's| |123|456|7| x|\n\n| | y"},
    {"gpt-4o", "a/b/c\n\n/", "a|/b|/c|\n\n|/"},
    /* kimi-k2: Han runs apart, kana with the next word */
    {"kimi-k2",
     "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e\xe3\x81\xae\xe3\x83\x86\xe3\x82\xad\xe3\x82\xb9\xe3\x83"
     "\x88\xe3\x80\x81\xe3\x82\xab\xe3\x82\xbf\xe3\x82\xab\xe3\x83\x8a\xef\xbc\x81",
     "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e|\xe3\x81\xae\xe3\x83\x86\xe3\x82\xad\xe3\x82\xb9\xe3\x83"
     "\x88|\xe3\x80\x81\xe3\x82\xab\xe3\x82\xbf\xe3\x82\xab\xe3\x83\x8a|\xef\xbc\x81"},
    {"kimi-k2", "\xe4\xb8\xad\xe6\x96\x87" "abc123", "\xe4\xb8\xad\xe6\x96\x87|abc|123"},
    {"kimi-k2", "I'M don't WE'LL", "I'M| don't| WE'LL"},
};

TEST(known_splits_of_the_new_pre_types)
{
    for (size_t i = 0; i < sizeof k_splits / sizeof k_splits[0]; i++) {
        char *got = split_str(k_splits[i].pre, k_splits[i].text);
        CHECK_MSG(!strcmp(got, k_splits[i].want), "%s: '%s'\n  got  '%s'\n  want '%s'",
                  k_splits[i].pre, k_splits[i].text, got, k_splits[i].want);
    }
}

TEST(invalid_utf8_read_as_llama_cpp_reads_it)
{
    /* a stray byte and a truncated sequence become U+FFFD; an overlong '/'
     * is '/'; an encoded surrogate stays as it is */
    CHECK_EQ_STR(split_str("gpt-2", "a\xff" "b"), "a|\xef\xbf\xbd|b");
    CHECK_EQ_STR(split_str("gpt-2", "x\xe2\x82"), "x|\xef\xbf\xbd\xef\xbf\xbd");
    CHECK_EQ_STR(split_str("gpt-2", "1\xc0\xaf" "2"), "1|/|2");
    CHECK_EQ_STR(split_str("qwen2", "\xed\xa0\x80"), "\xed\xa0\x80");
    /* above U+10FFFF (llama.cpp throws there): U+FFFD too */
    CHECK_EQ_STR(split_str("gpt-2", "\xf5\x80\x80\x80"), "\xef\xbf\xbd");
}

/* Every pre-type tiles the normalized text with non-empty pieces, on
 * random bytes. */
TEST(pieces_tile_the_text_for_every_pre_type)
{
    static const char *const pres[] = {"default", "gpt-2", "qwen2", "llama-bpe", "glm4",
                                       "deepseek-llm", "deepseek-v3", "gpt-4o", "kimi-k2"};
    unsigned seed = 5;
    for (int it = 0; it < 300; it++) {
        char buf[96];
        size_t len = rand_r(&seed) % sizeof buf;
        for (size_t j = 0; j < len; j++)
            buf[j] = (char)(rand_r(&seed) % 3 ? ' ' + rand_r(&seed) % 95 : rand_r(&seed));
        for (size_t p = 0; p < sizeof pres / sizeof pres[0]; p++) {
            eng_pretok kind;
            eng_err e = {0};
            REQUIRE(eng_pretok_parse(pres[p], &kind, &e) == ENG_OK);
            size_t *off, n, nl;
            char *norm;
            REQUIRE(eng_pretok_split(kind, buf, len, &norm, &nl, &off, &n, &e) == ENG_OK);
            CHECK(nl <= 3 * len); /* U+FFFD per bad byte at most; overlongs shrink */
            CHECK(len == 0 || (n > 0 && off[0] == 0 && off[n] == nl));
            for (size_t i = 0; i < n; i++)
                CHECK(off[i] < off[i + 1]);
            free(off);
            free(norm);
        }
    }
}
