/*
 * pretok_regex.c — the small regex engine behind the pre-tokenizers that
 * llama.cpp runs through std::regex (see tokenizer_impl.h for the syntax).
 *
 * Why an engine and not hand-written matchers: llama.cpp feeds its regex
 * strings (after the "collapse" rewrite of \p{..}, pretok.c) to std::regex
 * with ECMAScript grammar, whose results are defined by backtracking order.
 * Compiling the very same strings and running them with the same order is
 * the most direct way to get the same pieces, and each new pre-type is a
 * string, not a new matcher.
 *
 * Design: parse into a small tree, generate code for a backtracking VM
 * (the Pike/Thompson instruction set run depth-first, as in Russ Cox's
 * "Regular Expression Matching: the Virtual Machine Approach"):
 *   CLASS c   consume one symbol in class c, else fail
 *   SPLIT x,y try x; on failure resume at y (x is the preferred branch)
 *   JMP x
 *   LOOK x,y  run the sub-program at x from here (ends in MATCH); on
 *             success (or failure for a negative lookahead) go on at y,
 *             with the position unchanged; lookaheads are atomic
 *   EOL       succeed only at the end of the subject
 *   MATCH
 * Greedy X* is "L: SPLIT L1,out; L1: X; JMP L", so more iterations are
 * tried first; X{n,m} is n copies of X and m-n nested optional copies; an
 * alternation tries its branches left to right. Depth-first search over
 * these choices finds exactly the match ECMAScript defines.
 *
 * Invariant: no unbounded loop's body can match empty (refused at compile
 * time), so every loop iteration consumes a symbol and matching ends.
 */
#include "engine/tokenizer_impl.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

enum { OP_CLASS, OP_SPLIT, OP_JMP, OP_LOOK, OP_NLOOK, OP_EOL, OP_MATCH };

typedef struct inst {
    uint8_t op;
    int32_t x, y;
} inst;

typedef struct rclass {
    uint32_t (*r)[2]; /* sorted, disjoint, non-adjacent ranges [lo, hi] */
    size_t n;
    bool neg;
} rclass;

struct tk_regex {
    inst *code;
    size_t ncode;
    rclass *cls;
    size_t ncls;
};

/* ---- parse tree --------------------------------------------------------- */

enum { N_CLASS, N_CAT, N_ALT, N_REP, N_LOOK, N_NLOOK, N_EOL };
#define REP_INF (-1)

typedef struct node {
    int type;
    int cls;                  /* N_CLASS: class index                    */
    int min, max;             /* N_REP: bounds, max REP_INF for none     */
    struct node **kid;        /* N_CAT/N_ALT: kids; N_REP/N_LOOK: kid[0] */
    size_t nkid;
} node;

typedef struct parser {
    const uint32_t *p;
    size_t n, i;
    tk_regex *re;
    node **all;               /* every node made, for freeing             */
    size_t nall, capall;
    eng_err *e;
    int rc;
} parser;

static int perr(parser *ps, const char *what)
{
    if (!ps->rc)
        ps->rc = eng_err_set(ps->e, ENG_EINVAL, "regex: %s at position %zu", what, ps->i);
    return ps->rc;
}

static node *mknode(parser *ps, int type)
{
    if (ps->rc)
        return NULL;
    if (ps->nall == ps->capall) {
        size_t nc = ps->capall ? ps->capall * 2 : 64;
        node **na = realloc(ps->all, nc * sizeof *na);
        if (!na) {
            ps->rc = eng_err_set(ps->e, ENG_ENOMEM, "regex: out of memory");
            return NULL;
        }
        ps->all = na;
        ps->capall = nc;
    }
    node *nd = calloc(1, sizeof *nd);
    if (!nd) {
        ps->rc = eng_err_set(ps->e, ENG_ENOMEM, "regex: out of memory");
        return NULL;
    }
    nd->type = type;
    ps->all[ps->nall++] = nd;
    return nd;
}

static int add_kid(parser *ps, node *nd, node *kid)
{
    if (ps->rc || !kid)
        return perr(ps, "internal");
    node **nk = realloc(nd->kid, (nd->nkid + 1) * sizeof *nk);
    if (!nk)
        return ps->rc = eng_err_set(ps->e, ENG_ENOMEM, "regex: out of memory");
    nd->kid = nk;
    nd->kid[nd->nkid++] = kid;
    return ENG_OK;
}

/* ---- classes ---------------------------------------------------------- */

typedef struct rbuf {
    uint32_t (*r)[2];
    size_t n, cap;
} rbuf;

static int rbuf_add(rbuf *b, uint32_t lo, uint32_t hi)
{
    if (b->n == b->cap) {
        size_t nc = b->cap ? b->cap * 2 : 16;
        uint32_t (*na)[2] = realloc(b->r, nc * sizeof *na);
        if (!na)
            return ENG_ENOMEM;
        b->r = na;
        b->cap = nc;
    }
    b->r[b->n][0] = lo;
    b->r[b->n++][1] = hi;
    return ENG_OK;
}

static int cmp_range(const void *a, const void *b)
{
    const uint32_t *x = a, *y = b;
    return (x[0] > y[0]) - (x[0] < y[0]);
}

/* Sorts and merges overlapping or adjacent ranges. */
static void rbuf_norm(rbuf *b)
{
    if (!b->n)
        return;
    qsort(b->r, b->n, sizeof *b->r, cmp_range);
    size_t k = 0;
    for (size_t i = 1; i < b->n; i++) {
        if (b->r[i][0] <= b->r[k][1] + 1) {
            if (b->r[i][1] > b->r[k][1])
                b->r[k][1] = b->r[i][1];
        } else {
            b->r[++k][0] = b->r[i][0];
            b->r[k][1] = b->r[i][1];
        }
    }
    b->n = k + 1;
}

/* Adds a finished class to the regex; returns its index or -1. */
static int class_add(parser *ps, rbuf *b, bool neg)
{
    rbuf_norm(b);
    rclass *nc = realloc(ps->re->cls, (ps->re->ncls + 1) * sizeof *nc);
    if (!nc) {
        free(b->r);
        ps->rc = eng_err_set(ps->e, ENG_ENOMEM, "regex: out of memory");
        return -1;
    }
    ps->re->cls = nc;
    nc[ps->re->ncls] = (rclass){b->r, b->n, neg};
    return (int)ps->re->ncls++;
}

/* std::regex's \s in the "C" locale: \t \n \v \f \r and space. */
static int add_space(rbuf *b) { return rbuf_add(b, 9, 13) || rbuf_add(b, 32, 32); }

/* An escape after the backslash at ps->i (already consumed): a single
 * symbol in *c (return 0), or a class escape added to b (return 1, with
 * *neg for \S \D); -1 on error. */
static int parse_escape(parser *ps, rbuf *b, uint32_t *c, bool *neg)
{
    if (ps->i >= ps->n)
        return perr(ps, "trailing backslash"), -1;
    uint32_t x = ps->p[ps->i++];
    *neg = false;
    switch (x) {
    case 'r': *c = '\r'; return 0;
    case 'n': *c = '\n'; return 0;
    case 't': *c = '\t'; return 0;
    case 'f': *c = '\f'; return 0;
    case 'v': *c = '\v'; return 0;
    case 'S': *neg = true; /* fall through */
    case 's': return add_space(b) ? (perr(ps, "out of memory"), -1) : 1;
    case 'D': *neg = true; /* fall through */
    case 'd': return rbuf_add(b, '0', '9') ? (perr(ps, "out of memory"), -1) : 1;
    default:
        /* identity escapes: punctuation only (\w, \b, \x.. are not used) */
        if ((x >= 'a' && x <= 'z') || (x >= 'A' && x <= 'Z') || (x >= '0' && x <= '9'))
            return perr(ps, "unsupported escape"), -1;
        *c = x;
        return 0;
    }
}

/* One class member for a range endpoint: a symbol (0) or a class escape
 * (1, merged into b). */
static int class_atom(parser *ps, rbuf *b, uint32_t *c)
{
    uint32_t x = ps->p[ps->i++];
    if (x != '\\') {
        *c = x;
        return 0;
    }
    bool neg;
    int r = parse_escape(ps, b, c, &neg);
    if (r == 1 && neg)
        return perr(ps, "\\S or \\D inside a class"), -1;
    return r;
}

/* [ ... ] with ps->i just after '['. */
static node *parse_class(parser *ps)
{
    rbuf b = {0};
    bool neg = ps->i < ps->n && ps->p[ps->i] == '^';
    ps->i += neg;
    bool first = true;
    while (!ps->rc) {
        if (ps->i >= ps->n) {
            perr(ps, "unterminated class");
            break;
        }
        if (ps->p[ps->i] == ']' && !first) {
            ps->i++;
            break;
        }
        first = false;
        uint32_t lo, hi;
        int r = class_atom(ps, &b, &lo);
        if (r < 0)
            break;
        if (r == 1)
            continue;
        hi = lo;
        if (ps->i + 1 < ps->n && ps->p[ps->i] == '-' && ps->p[ps->i + 1] != ']') {
            ps->i++;
            r = class_atom(ps, &b, &hi);
            if (r != 0 || hi < lo) {
                perr(ps, "bad range");
                break;
            }
        }
        if (rbuf_add(&b, lo, hi))
            perr(ps, "out of memory");
    }
    if (ps->rc) {
        free(b.r);
        return NULL;
    }
    node *nd = mknode(ps, N_CLASS);
    if (nd)
        nd->cls = class_add(ps, &b, neg);
    else
        free(b.r);
    return ps->rc ? NULL : nd;
}

static node *class_node(parser *ps, uint32_t lo, uint32_t hi, bool neg, bool space)
{
    rbuf b = {0};
    if (space ? add_space(&b) : rbuf_add(&b, lo, hi)) {
        free(b.r);
        perr(ps, "out of memory");
        return NULL;
    }
    node *nd = mknode(ps, N_CLASS);
    if (nd)
        nd->cls = class_add(ps, &b, neg);
    else
        free(b.r);
    return ps->rc ? NULL : nd;
}

static node *parse_alt(parser *ps);

static node *parse_atom(parser *ps)
{
    uint32_t c = ps->p[ps->i++];
    if (c == '(') {
        int type = -1; /* plain group */
        if (ps->i + 1 < ps->n && ps->p[ps->i] == '?') {
            uint32_t k = ps->p[ps->i + 1];
            type = k == ':' ? -1 : k == '=' ? N_LOOK : k == '!' ? N_NLOOK : -2;
            if (type == -2)
                return perr(ps, "unsupported group"), NULL;
            ps->i += 2;
        }
        node *in = parse_alt(ps);
        if (!in)
            return NULL;
        if (ps->i >= ps->n || ps->p[ps->i] != ')')
            return perr(ps, "missing )"), NULL;
        ps->i++;
        if (type < 0)
            return in;
        node *nd = mknode(ps, type);
        return nd && !add_kid(ps, nd, in) ? nd : NULL;
    }
    if (c == '[')
        return parse_class(ps);
    if (c == '$')
        return mknode(ps, N_EOL);
    if (c == '^' || c == '.' || c == ')' || c == '*' || c == '+' || c == '?')
        return perr(ps, "unsupported or misplaced operator"), NULL;
    if (c == '\\') {
        rbuf b = {0};
        uint32_t x;
        bool neg;
        int r = parse_escape(ps, &b, &x, &neg);
        if (r < 0)
            return NULL;
        if (r == 0)
            return class_node(ps, x, x, false, false);
        node *nd = mknode(ps, N_CLASS);
        if (nd)
            nd->cls = class_add(ps, &b, neg);
        else
            free(b.r);
        return ps->rc ? NULL : nd;
    }
    return class_node(ps, c, c, false, false);
}

static bool is_digit(uint32_t c) { return c >= '0' && c <= '9'; }

/* {n}, {n,}, {n,m} at ps->i; true and the bounds when it is one (else '{'
 * is a literal, as in ECMAScript's non-unicode grammar). */
static bool parse_braces(parser *ps, int *min, int *max)
{
    size_t i = ps->i + 1;
    long a = 0, b = 0;
    if (i >= ps->n || !is_digit(ps->p[i]))
        return false;
    while (i < ps->n && is_digit(ps->p[i]) && a < 100000)
        a = a * 10 + (long)(ps->p[i++] - '0');
    b = a;
    if (i < ps->n && ps->p[i] == ',') {
        i++;
        b = REP_INF;
        if (i < ps->n && is_digit(ps->p[i])) {
            b = 0;
            while (i < ps->n && is_digit(ps->p[i]) && b < 100000)
                b = b * 10 + (long)(ps->p[i++] - '0');
        }
    }
    if (i >= ps->n || ps->p[i] != '}' || a > 1000 || b > 1000 || (b != REP_INF && b < a))
        return false;
    ps->i = i + 1;
    *min = (int)a;
    *max = (int)b;
    return true;
}

static node *parse_repeat(parser *ps)
{
    if (ps->i < ps->n && ps->p[ps->i] == '{') { /* a literal brace */
        ps->i++;
        return class_node(ps, '{', '{', false, false);
    }
    node *at = parse_atom(ps);
    while (at && ps->i < ps->n) {
        uint32_t q = ps->p[ps->i];
        int min, max;
        if (q == '*' || q == '+' || q == '?') {
            min = q == '+';
            max = q == '?' ? 1 : REP_INF;
            ps->i++;
        } else if (!(q == '{' && parse_braces(ps, &min, &max))) {
            break;
        }
        if (ps->i < ps->n && ps->p[ps->i] == '?')
            return perr(ps, "lazy quantifier"), NULL;
        node *r = mknode(ps, N_REP);
        if (!r || add_kid(ps, r, at))
            return NULL;
        r->min = min;
        r->max = max;
        at = r;
    }
    return at;
}

static node *parse_cat(parser *ps)
{
    node *cat = mknode(ps, N_CAT);
    while (cat && !ps->rc && ps->i < ps->n && ps->p[ps->i] != '|' && ps->p[ps->i] != ')') {
        node *kid = parse_repeat(ps);
        if (!kid || add_kid(ps, cat, kid))
            return NULL;
    }
    return ps->rc ? NULL : cat;
}

static node *parse_alt(parser *ps)
{
    node *alt = mknode(ps, N_ALT);
    for (;;) {
        node *kid = parse_cat(ps);
        if (!alt || !kid || add_kid(ps, alt, kid))
            return NULL;
        if (ps->i >= ps->n || ps->p[ps->i] != '|')
            return alt;
        ps->i++;
    }
}

/* ---- checks and code generation ------------------------------------------ */

static bool nullable(const node *nd)
{
    switch (nd->type) {
    case N_CLASS: return false;
    case N_CAT:
        for (size_t i = 0; i < nd->nkid; i++)
            if (!nullable(nd->kid[i]))
                return false;
        return true;
    case N_ALT:
        for (size_t i = 0; i < nd->nkid; i++)
            if (nullable(nd->kid[i]))
                return true;
        return false;
    case N_REP: return nd->min == 0 || nullable(nd->kid[0]);
    default: return true; /* lookaheads and $ consume nothing */
    }
}

typedef struct gen {
    inst *code;
    size_t n, cap;
    bool oom;
} gen;

static int32_t emit(gen *g, uint8_t op, int32_t x, int32_t y)
{
    if (g->n == g->cap) {
        size_t nc = g->cap ? g->cap * 2 : 64;
        inst *na = realloc(g->code, nc * sizeof *na);
        if (!na || nc > INT32_MAX) {
            free(na == g->code ? NULL : na);
            g->oom = true;
            return 0;
        }
        g->code = na;
        g->cap = nc;
    }
    g->code[g->n] = (inst){op, x, y};
    return (int32_t)g->n++;
}

static int32_t here(const gen *g) { return (int32_t)g->n; }

static void patch_x(gen *g, int32_t at, int32_t v) { if (!g->oom) g->code[at].x = v; }
static void patch_y(gen *g, int32_t at, int32_t v) { if (!g->oom) g->code[at].y = v; }

static void gen_node(gen *g, const node *nd);

static void gen_alt(gen *g, const node *nd)
{
    int32_t jumps[nd->nkid ? nd->nkid : 1];
    size_t nj = 0;
    for (size_t i = 0; i < nd->nkid; i++) {
        if (i + 1 < nd->nkid) {
            int32_t sp = emit(g, OP_SPLIT, 0, 0);
            patch_x(g, sp, here(g));
            gen_node(g, nd->kid[i]);
            jumps[nj++] = emit(g, OP_JMP, 0, 0);
            patch_y(g, sp, here(g));
        } else {
            gen_node(g, nd->kid[i]);
        }
    }
    for (size_t j = 0; j < nj; j++)
        patch_x(g, jumps[j], here(g));
}

static void gen_rep(gen *g, const node *nd)
{
    for (int i = 0; i < nd->min; i++)
        gen_node(g, nd->kid[0]);
    if (nd->max == REP_INF) {
        int32_t sp = emit(g, OP_SPLIT, 0, 0);
        patch_x(g, sp, here(g));
        gen_node(g, nd->kid[0]);
        emit(g, OP_JMP, sp, 0);
        patch_y(g, sp, here(g));
        return;
    }
    int nopt = nd->max - nd->min;
    int32_t splits[nopt > 0 ? nopt : 1];
    for (int i = 0; i < nopt; i++) { /* (X(X(X)?)?)? */
        splits[i] = emit(g, OP_SPLIT, 0, 0);
        patch_x(g, splits[i], here(g));
        gen_node(g, nd->kid[0]);
    }
    for (int i = 0; i < nopt; i++)
        patch_y(g, splits[i], here(g));
}

static void gen_node(gen *g, const node *nd)
{
    switch (nd->type) {
    case N_CLASS: emit(g, OP_CLASS, nd->cls, 0); break;
    case N_CAT:
        for (size_t i = 0; i < nd->nkid; i++)
            gen_node(g, nd->kid[i]);
        break;
    case N_ALT: gen_alt(g, nd); break;
    case N_REP: gen_rep(g, nd); break;
    case N_EOL: emit(g, OP_EOL, 0, 0); break;
    default: { /* lookahead: LOOK sub, cont; sub: kid MATCH; cont: */
        int32_t lk = emit(g, nd->type == N_LOOK ? OP_LOOK : OP_NLOOK, 0, 0);
        patch_x(g, lk, here(g));
        gen_node(g, nd->kid[0]);
        emit(g, OP_MATCH, 0, 0);
        patch_y(g, lk, here(g));
    }
    }
}

static bool loops_ok(const node *nd)
{
    if (nd->type == N_REP && nd->max == REP_INF && nullable(nd->kid[0]))
        return false;
    for (size_t i = 0; i < nd->nkid; i++)
        if (!loops_ok(nd->kid[i]))
            return false;
    return true;
}

void tk_regex_free(tk_regex *re)
{
    if (!re)
        return;
    for (size_t i = 0; i < re->ncls; i++)
        free(re->cls[i].r);
    free(re->cls);
    free(re->code);
    free(re);
}

int tk_regex_compile(tk_regex **out, const uint32_t *pat, size_t n, eng_err *e)
{
    *out = NULL;
    tk_regex *re = calloc(1, sizeof *re);
    if (!re)
        return eng_err_set(e, ENG_ENOMEM, "regex: out of memory");
    parser ps = {.p = pat, .n = n, .re = re, .e = e};
    node *root = parse_alt(&ps);
    if (!ps.rc && ps.i < ps.n)
        perr(&ps, "unbalanced )");
    if (!ps.rc && !loops_ok(root))
        perr(&ps, "a loop whose body can match empty");
    gen g = {0};
    if (!ps.rc) {
        gen_node(&g, root);
        emit(&g, OP_MATCH, 0, 0);
        if (g.oom)
            ps.rc = eng_err_set(e, ENG_ENOMEM, "regex: out of memory");
    }
    for (size_t i = 0; i < ps.nall; i++) {
        free(ps.all[i]->kid);
        free(ps.all[i]);
    }
    free(ps.all);
    if (ps.rc) {
        free(g.code);
        tk_regex_free(re);
        return ps.rc;
    }
    re->code = g.code;
    re->ncode = g.n;
    *out = re;
    return ENG_OK;
}

/* ---- matching ------------------------------------------------------------- */

static bool in_class(const rclass *c, uint32_t s)
{
    size_t lo = 0, hi = c->n;
    while (lo < hi) { /* first range with hi >= s */
        size_t mid = (lo + hi) / 2;
        if (c->r[mid][1] < s)
            lo = mid + 1;
        else
            hi = mid;
    }
    bool in = lo < c->n && c->r[lo][0] <= s;
    return in != c->neg;
}

static int push(tk_restack *st, int32_t pc, size_t pos)
{
    if (st->n == st->cap) {
        size_t nc = st->cap ? st->cap * 2 : 256;
        struct tk_refr *na = realloc(st->a, nc * sizeof *na);
        if (!na)
            return ENG_ENOMEM;
        st->a = na;
        st->cap = nc;
    }
    st->a[st->n].pc = pc;
    st->a[st->n++].pos = pos;
    return ENG_OK;
}

/* Runs from pc at pos; the stack above `base` belongs to this run. */
static long run(const tk_regex *re, const uint32_t *s, size_t pos, size_t end, int32_t pc,
                tk_restack *st)
{
    size_t base = st->n;
    for (;;) {
        const inst *in = &re->code[pc];
        bool ok = true;
        switch (in->op) {
        case OP_CLASS:
            ok = pos < end && in_class(&re->cls[in->x], s[pos]);
            pos += ok;
            pc++;
            break;
        case OP_SPLIT:
            if (push(st, in->y, pos)) {
                st->n = base;
                return -2;
            }
            pc = in->x;
            break;
        case OP_JMP: pc = in->x; break;
        case OP_LOOK:
        case OP_NLOOK: {
            long r = run(re, s, pos, end, in->x, st);
            if (r == -2) {
                st->n = base;
                return -2;
            }
            ok = (r >= 0) == (in->op == OP_LOOK);
            pc = in->y;
            break;
        }
        case OP_EOL: ok = pos == end; pc++; break;
        default: /* OP_MATCH */
            st->n = base;
            return (long)pos;
        }
        if (ok)
            continue;
        if (st->n == base)
            return -1;
        st->n--;
        pc = st->a[st->n].pc;
        pos = st->a[st->n].pos;
    }
}

long tk_regex_match(const tk_regex *re, const uint32_t *s, size_t pos, size_t end,
                    tk_restack *st)
{
    return run(re, s, pos, end, 0, st);
}
