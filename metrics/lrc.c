/*
 * lrc.c — one-sample kernels: hit counts for every cache size in one pass
 * (LRU, LFU, Belady, FSF) and the SRP window-count histogram.
 *
 * Curves: all four policies evict the cached expert of lowest priority, and
 * at every moment the priority order is a total order that depends on the
 * access history only, never on the cache size (LRU: last access position;
 * LFU: (accesses since sample start, last position); Belady: next access
 * position, N + id when none; FSF: (accesses in the lookahead window after
 * the current position, last position)). For such policies the caches of
 * sizes 1..E stay nested (Mattson et al. 1970, "stack algorithms"), so one
 * ordering of the experts — the stack S_1, S_2, ... — describes them all:
 * the cache of size c holds S_1..S_c. An access to x at stack position d
 * changes caches of size < d only; with v_1 = S_1 and, for j = 2..d-1,
 * v_j = min(v_{j-1}, S_j) (the victim of size j) and S'_j = max(v_{j-1},
 * S_j), we get S'_1 = x, S'_d = v_{d-1} and positions > d unchanged (a new
 * expert has d = n + 1, the stack grows).
 *
 * The conventions (reference: lrc-metrics) differ from a plain cache in how
 * hits are counted, not in how contents evolve:
 *  - look-up of the whole token against the cache before the token: the
 *    token's stack positions are taken before any of its accesses updates
 *    the stack, so an expert evicted by an earlier expert of the same token
 *    still counts as a hit;
 *  - warm start: the first c distinct experts are hits at size c. A new
 *    expert's rank among distinct experts is the stack size before it (plus
 *    the new experts earlier in the token), so its "distance" is rank + 1,
 *    and the loads happen as in the plain simulation (nothing is evicted
 *    before the cache is full).
 * hits(c) = #{accesses with distance <= c}: a histogram and a prefix sum.
 *
 * Cost: O(d) per access (the scan down to x's position).
 *
 * SRP: sliding windows of seg_len tokens; instead of re-histogramming every
 * window, each expert's count is piecewise constant over windows, so when it
 * changes at window w the run since the last change is added at once:
 * O(T*k + E) per sample.
 */
#include "metrics/lrc.h"
#include "metrics/lrc_impl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct met_lrc_ws {
    int32_t E;
    int32_t *st;        /* [E] the stack: st[0] = highest, cache c = st[0..c-1] */
    int64_t *sk;        /* [E] priority of st[j], kept in stack order (scans)  */
    int32_t *pos;       /* [E] position of each expert in st, -1 if absent    */
    int64_t *key;       /* [E] current priority (larger = kept longer)        */
    int64_t *cnt;       /* [E] LFU/FSF counts; SRP window counts              */
    int64_t *since;     /* [E] SRP: window where cnt last changed; last access */
    int64_t *last;      /* [E] Belady: next-use scan; LRU: last position      */
    int64_t *dist;      /* [E + 2] histogram of look-up distances             */
    int64_t *next;      /* [ncap] Belady: next access position per access     */
    int32_t *fen;       /* [ncap + 1] LRU: Fenwick tree over access positions */
    int64_t ncap;
    int32_t *lts;       /* [E rounded up to 8] LRU count: last use, -1 never;
                           NULL when E > MET_LRC_LRU_COUNT_MAX_E              */
    met_lrc_lru lru;    /* forced LRU method (tests), AUTO normally           */
    met_lrc_walk walk;  /* forced walk (tests), AUTO normally                 */
    met_lrc_small small;/* forced off (tests), AUTO normally                  */
    int64_t *sdist;     /* [MET_LRC_SMALL_MAX_CURVES][E + 2] lrc_avx512.c
                           histograms; NULL: E > 64 or not this CPU          */
    int32_t *sgt;       /* [MET_LRC_SMALL_MAX_CURVES][tcap + 2] its LFU counts */
    int32_t *w32;       /* [6][E + MET_LRC_WIDE_PAD] scratch of the vector
                           walks; NULL: this CPU has neither                 */
    int w512, w256;     /* this CPU runs met_lrc_wide_sample, _wide2_sample   */
    int64_t tcap;
    int dense;          /* this call's walk: record masks after the first one */
};

static const char *const policy_names[] = {"lru", "lfu", "belady", "fsf"};
const char *met_policy_name(met_policy p)
{
    return (unsigned)p < MET_POLICY_COUNT ? policy_names[p] : "?";
}

/* First j in [i, end) with sk[j] < v, else end: where the next "record"
 * (new victim) of the Mattson scan is. Contiguous keys and four compares
 * per step; an AVX2 version measured slower (records are dense enough that
 * the vector setup does not pay). */
static inline int32_t find_below(const int64_t *sk, int32_t i, int32_t end, int64_t v)
{
    for (; i + 4 <= end; i += 4)
        if ((sk[i] < v) | (sk[i + 1] < v) | (sk[i + 2] < v) | (sk[i + 3] < v))
            break;
    for (; i < end; i++)
        if (sk[i] < v)
            return i;
    return end;
}

int met_lrc_ws_new(met_lrc_ws **out, int32_t E, eng_err *err)
{
    *out = NULL;
    /* the one reading of MOEBENCH_SIMD (engine/formats.h): a bad value is
     * the same error here as in the engine */
    eng_simd simd;
    eng_err se = {0};
    int rc = eng_simd_default(&simd, &se);
    if (rc)
        return eng_err_set(err, rc, "%s", se.msg);
    met_lrc_ws *ws = calloc(1, sizeof *ws);
    if (ws && E >= 1) {
        ws->E = E;
        ws->st = malloc((size_t)E * sizeof *ws->st);
        ws->sk = malloc((size_t)E * sizeof *ws->sk);
        ws->pos = malloc((size_t)E * sizeof *ws->pos);
        ws->key = malloc((size_t)E * sizeof *ws->key);
        ws->cnt = malloc((size_t)E * sizeof *ws->cnt);
        ws->since = malloc((size_t)E * sizeof *ws->since);
        ws->last = malloc((size_t)E * sizeof *ws->last);
        ws->dist = malloc(((size_t)E + 2) * sizeof *ws->dist);
        if (E <= MET_LRC_LRU_COUNT_MAX_E)
            ws->lts = aligned_alloc(32, (size_t)(E + 7) / 8 * 32);
        ws->w512 = met_lrc_wide_available(simd), ws->w256 = met_lrc_wide2_available(simd);
        if ((ws->w512 || ws->w256) &&
            !(ws->w32 = calloc(6 * ((size_t)E + MET_LRC_WIDE_PAD), 4))) {
            met_lrc_ws_free(ws);
            return eng_err_set(err, ENG_ENOMEM, "lrc: cannot make a workspace for %d experts",
                               (int)E);
        }
        if (E <= MET_LRC_SMALL_MAX_E && met_lrc_small_available(simd) &&
            !(ws->sdist = malloc(MET_LRC_SMALL_MAX_CURVES * ((size_t)E + 2) * 8))) {
            met_lrc_ws_free(ws);
            return eng_err_set(err, ENG_ENOMEM, "lrc: cannot make a workspace for %d experts",
                               (int)E);
        }
    }
    if (!ws || E < 1 || !ws->st || !ws->sk || !ws->pos || !ws->key || !ws->cnt || !ws->since ||
        !ws->last || !ws->dist || (E <= MET_LRC_LRU_COUNT_MAX_E && !ws->lts)) {
        met_lrc_ws_free(ws);
        return eng_err_set(err, E < 1 ? ENG_EINVAL : ENG_ENOMEM,
                           "lrc: cannot make a workspace for %d experts", (int)E);
    }
    *out = ws;
    return ENG_OK;
}

void met_lrc_ws_free(met_lrc_ws *ws)
{
    if (!ws)
        return;
    free(ws->st), free(ws->sk), free(ws->pos), free(ws->key), free(ws->cnt), free(ws->since);
    free(ws->last), free(ws->dist), free(ws->next), free(ws->fen), free(ws->lts);
    free(ws->sdist), free(ws->sgt), free(ws->w32);
    free(ws);
}

void met_lrc_ws_force(met_lrc_ws *ws, met_lrc_lru lru, met_lrc_walk walk, met_lrc_small small)
{
    ws->lru = lru, ws->walk = walk, ws->small = small;
}

/* The record rotation of one Mattson update over stack positions [b, end)
 * whose records are the bits of m (bit j = position b + j): each record's
 * expert moves to the next record's position, the carried victim (*v, *kv)
 * takes the first, the last one is carried on. */
static void rotate(met_lrc_ws *ws, int32_t b, uint64_t m, int32_t *v, int64_t *kv)
{
    int32_t *st = ws->st, *pos = ws->pos;
    int64_t *sk = ws->sk;
    for (; m; m &= m - 1) {
        int32_t j = b + __builtin_ctzll(m), y = st[j];
        int64_t ky = sk[j];
        st[j] = *v, sk[j] = *kv, pos[*v] = j;
        *v = y, *kv = ky;
    }
}

/* Records (positions with a key below every key above them) among at most
 * 64 positions from b, as a bit mask; *run = the running minimum, updated.
 * Branch-free: where records are dense, a branch per record mispredicts
 * more than this costs (two cycles a position, the min chain). */
static uint64_t records(const int64_t *sk, int32_t b, int32_t e, int64_t *run)
{
    uint64_t m = 0;
    int64_t r = *run;
    for (int32_t j = 0; j < e; j++) {
        int64_t y = sk[b + j];
        m |= (uint64_t)(y < r) << j;
        r = y < r ? y : r;
    }
    *run = r;
    return m;
}

/* Mattson update for an access to x; n = stack size (updated). Only the
 * records (successive new victims) move. Two exact ways to find them: a
 * branchy scan that jumps from record to record (cheap where records are
 * sparse: long stacks, LFU, Belady, long FSF lookahead) and, after the first
 * record, branch-free record masks (dense records: short FSF lookahead,
 * small E); ws->dense says which (met_curve_sample sets it). */
static void stack_access(met_lrc_ws *ws, int32_t x, int32_t *n)
{
    int32_t *st = ws->st, *pos = ws->pos;
    int64_t *sk = ws->sk;
    int32_t d = pos[x];
    if (d == 0)
        return;
    int32_t end = d < 0 ? *n : d;
    if (d < 0 && (*n)++ == 0) { /* first expert of the sample */
        st[0] = x, pos[x] = 0, sk[0] = ws->key[x];
        return;
    }
    int32_t v = st[0];
    int64_t kv = sk[0];
    st[0] = x, pos[x] = 0, sk[0] = ws->key[x];
    int32_t j = find_below(sk, 1, end, kv);
    while (j < end && ws->dense) {
        int32_t e = end - j < 64 ? end - j : 64;
        int64_t run = kv;
        rotate(ws, j, records(sk, j, e, &run), &v, &kv);
        j += e;
    }
    for (; j < end; j = find_below(sk, j + 1, end, kv)) {
        int32_t y = st[j]; /* y is the new victim; the old one stays at j */
        int64_t ky = sk[j];
        st[j] = v, sk[j] = kv, pos[v] = j;
        v = y, kv = ky;
    }
    st[end] = v, sk[end] = kv, pos[v] = end;
}

static void set_key(met_lrc_ws *ws, int32_t e, int64_t k)
{
    ws->key[e] = k;
    if (ws->pos[e] >= 0)
        ws->sk[ws->pos[e]] = k;
}

/* Per-access scratch for N accesses; with the small path also its LFU
 * counts for T tokens (sgt: MET_LRC_SMALL_MAX_CURVES rows of tcap + 2). */
static int grow(met_lrc_ws *ws, int64_t N, int64_t T, eng_err *err)
{
    if (N <= ws->ncap && (!ws->sdist || T <= ws->tcap))
        return ENG_OK;
    N = N > ws->ncap ? N : ws->ncap;
    T = T > ws->tcap ? T : ws->tcap;
    int64_t *p = realloc(ws->next, (size_t)N * sizeof *p + 1);
    if (p)
        ws->next = p;
    int32_t *f = p ? realloc(ws->fen, ((size_t)N + 1) * sizeof *f) : NULL;
    if (f)
        ws->fen = f;
    int32_t *g = f && ws->sdist ? realloc(ws->sgt, MET_LRC_SMALL_MAX_CURVES * ((size_t)T + 2) * 4)
                                : ws->sgt;
    if (!f || (ws->sdist && !g))
        return eng_err_set(err, ENG_ENOMEM, "lrc: out of memory for %lld accesses", (long long)N);
    ws->sgt = g, ws->ncap = N, ws->tcap = T;
    return ENG_OK;
}

/* Belady priorities need each access's next use: one backward scan. */
static void belady_next(met_lrc_ws *ws, const int32_t *ids, int64_t N)
{
    for (int32_t e = 0; e < ws->E; e++)
        ws->last[e] = N + e; /* never again: N + id, so the highest id goes first */
    for (int64_t p = N - 1; p >= 0; p--) {
        ws->next[p] = ws->last[ids[p]];
        ws->last[ids[p]] = p;
    }
}

#define KEY MET_LRC_KEY

static void fsf_enter(met_lrc_ws *ws, const int32_t *tok, int32_t k)
{
    for (int32_t r = 0; r < k; r++) {
        int32_t e = tok[r];
        ws->cnt[e]++;
        set_key(ws, e, KEY(ws->cnt[e], ws->since[e]));
    }
}

/* LRU needs no stack: the stack distance of x is 1 + the number of distinct
 * experts used since x's last use = 1 + the marks after last[x] in a Fenwick
 * tree over access positions holding a mark at each expert's latest use. */
static void lru_sample(met_lrc_ws *ws, const int32_t *ids, int64_t T, int32_t k)
{
    int32_t *fen = ws->fen, n = 0;
    int64_t N = T * k, *last = ws->last;
    memset(fen, 0, ((size_t)N + 1) * sizeof *fen);
    for (int32_t e = 0; e < ws->E; e++)
        last[e] = -1;
    for (int64_t t = 0; t < T; t++) {
        const int32_t *tok = ids + t * k;
        for (int32_t r = 0, fresh = 0; r < k; r++) {
            int64_t l = last[tok[r]];
            if (l < 0) {
                ws->dist[n + ++fresh]++;
                continue;
            }
            int32_t upto = 0; /* marks at positions <= l */
            for (int64_t i = l + 1; i > 0; i -= i & -i)
                upto += fen[i];
            ws->dist[1 + n - upto]++;
        }
        for (int32_t r = 0; r < k; r++) {
            int32_t x = tok[r];
            if (last[x] >= 0)
                for (int64_t i = last[x] + 1; i <= N; i += i & -i)
                    fen[i]--;
            else
                n++;
            last[x] = t * k + r;
            for (int64_t i = last[x] + 1; i <= N; i += i & -i)
                fen[i]++;
        }
    }
}

/* LRU for small E: the stack distance of x is 1 + the number of experts
 * used after x's last use, counted over all E last-use times at once (eight
 * lanes a step; never-used experts hold -1 and never count). */
typedef int32_t v4i32 __attribute__((vector_size(16)));

static void lru_count(met_lrc_ws *ws, const int32_t *ids, int64_t T, int32_t k)
{
    int32_t nv = (ws->E + 7) / 8 * 2, n = 0; /* 4-lane vectors, even count */
    v4i32 *lv = (v4i32 *)ws->lts;
    int32_t *lt = ws->lts;
    for (int32_t i = 0; i < nv * 4; i++)
        lt[i] = -1;
    for (int64_t t = 0; t < T; t++) {
        const int32_t *tok = ids + t * k;
        for (int32_t r = 0, fresh = 0; r < k; r++) {
            int32_t l = lt[tok[r]];
            if (l < 0) {
                ws->dist[n + ++fresh]++;
                continue;
            }
            v4i32 a0 = {0}, a1 = {0}, lb = {l, l, l, l};
            for (int32_t i = 0; i < nv; i += 2) /* -1 per later use */
                a0 += lv[i] > lb, a1 += lv[i + 1] > lb;
            a0 += a1;
            int32_t later = -(a0[0] + a0[1] + a0[2] + a0[3]);
            ws->dist[1 + later]++;
        }
        for (int32_t r = 0; r < k; r++) {
            n += lt[tok[r]] < 0;
            lt[tok[r]] = (int32_t)(t * k + r);
        }
    }
}

/* The walk of ws->walk with int32 priorities and vector blocks
 * (lrc_avx512.c, lrc_avx2.c) into ws->dist, where this CPU has one and the
 * priorities fit; 0 otherwise (nothing done). */
static int vector_walk(met_lrc_ws *ws, met_policy pol, int32_t look, const int32_t *ids,
                       int64_t T, int32_t k)
{
    met_lrc_walk w = ws->walk;
    int use512 = ws->w512 && (w == MET_LRC_WALK_AUTO || w == MET_LRC_WALK_AVX512);
    int use256 = !use512 && ws->w256 &&
                 (w == MET_LRC_WALK_AVX2 ||
                  ((w == MET_LRC_WALK_AUTO || w == MET_LRC_WALK_AVX512) &&
                   ws->E >= MET_LRC_WIDE2_MIN_E));
    if (!use512 && !use256)
        return 0;
    int32_t E = ws->E, *p = ws->w32;
    size_t s = (size_t)E + MET_LRC_WIDE_PAD;
    met_lrc_wide_args a = {.pol = pol, .look = look, .k = k, .E = E, .ids = ids, .T = T,
                           .next = ws->next, .dist = ws->dist, .st = p, .sk = p + s,
                           .pos = p + 2 * s, .key = p + 3 * s, .cnt = p + 4 * s,
                           .since = p + 5 * s};
    return use512 ? met_lrc_wide_sample(&a) : met_lrc_wide2_sample(&a);
}

/* One curve's distance histogram (ws->dist) by the general methods. */
static void curve_dist(met_lrc_ws *ws, met_policy pol, int32_t look, const int32_t *ids,
                       int64_t T, int32_t k)
{
    int32_t E = ws->E, n = 0;
    int64_t N = T * k;
    memset(ws->dist, 0, ((size_t)E + 2) * sizeof *ws->dist);
    if (pol == MET_POLICY_LRU) {
        if (ws->lts && N < INT32_MAX && ws->lru != MET_LRC_LRU_FENWICK)
            lru_count(ws, ids, T, k);
        else
            lru_sample(ws, ids, T, k);
        return;
    }
    /* measured (docs/performance.md): masks pay where records are dense */
    ws->dense = ws->walk == MET_LRC_WALK_MASK ||
                ((ws->walk == MET_LRC_WALK_AUTO || ws->walk == MET_LRC_WALK_PORTABLE) &&
                 (E <= 256 || (pol == MET_POLICY_FSF && look <= 16)));
    if (pol == MET_POLICY_BELADY)
        belady_next(ws, ids, N);
    if (vector_walk(ws, pol, look, ids, T, k))
        return;
    for (int32_t e = 0; e < E; e++)
        ws->pos[e] = -1, ws->key[e] = 0, ws->cnt[e] = 0, ws->since[e] = 0;
    for (int64_t t = 0; pol == MET_POLICY_FSF && t < T && t < look; t++)
        fsf_enter(ws, ids + t * k, k);
    for (int64_t t = 0; t < T; t++) {
        const int32_t *tok = ids + t * k;
        if (pol == MET_POLICY_FSF && t > 0 && t + look - 1 < T)
            fsf_enter(ws, ids + (t + look - 1) * k, k);
        for (int32_t r = 0, fresh = 0; r < k; r++) { /* look-up before the token */
            int32_t d = ws->pos[tok[r]];
            ws->dist[d >= 0 ? d + 1 : n + ++fresh]++;
        }
        for (int32_t r = 0; r < k; r++) {
            int32_t x = tok[r];
            int64_t p = t * k + r;
            stack_access(ws, x, &n);
            ws->since[x] = p; /* last access position */
            if (pol == MET_POLICY_LFU)
                set_key(ws, x, KEY(++ws->cnt[x], p));
            else if (pol == MET_POLICY_FSF)
                set_key(ws, x, KEY(--ws->cnt[x], p));
            else
                set_key(ws, x, ((int64_t)1 << 62) - ws->next[p]);
        }
    }
}

static void dist_to_hits(const int64_t *dist, int32_t E, int64_t *hits)
{
    int64_t acc = 0;
    for (int32_t c = 1; c <= E; c++)
        hits[c - 1] = acc += dist[c];
}

/* The non-LRU curves among pols, up to MET_LRC_SMALL_MAX_CURVES at a time,
 * through lrc_avx512.c; done[i] set for those it computed. */
static void small_curves(met_lrc_ws *ws, int n, const met_policy *pols, const int32_t *looks,
                         const int32_t *ids, int64_t T, int32_t k, int64_t *hits, char *done)
{
    met_lrc_small_args a = {.ids = ids, .T = T, .k = k, .next = ws->next};
    int idx[MET_LRC_SMALL_MAX_CURVES], belady = 0;
    for (int i = 0; i < n; i++)
        belady |= pols[i] == MET_POLICY_BELADY;
    if (belady)
        belady_next(ws, ids, T * k);
    for (int i = 0; i <= n; i++) {
        if (i < n && pols[i] != MET_POLICY_LRU) {
            int c = a.ncurves++;
            idx[c] = i, a.pols[c] = pols[i], a.looks[c] = looks[i];
            a.dist[c] = ws->sdist + (size_t)c * (ws->E + 2);
            a.gt[c] = ws->sgt + (size_t)c * ((size_t)ws->tcap + 2);
            memset(a.dist[c], 0, ((size_t)ws->E + 2) * sizeof *a.dist[c]);
        }
        if (a.ncurves && (a.ncurves == MET_LRC_SMALL_MAX_CURVES || i == n)) {
            if (!met_lrc_small_sample(&a))
                return; /* priorities do not fit in int32: the general walk */
            for (int c = 0; c < a.ncurves; c++)
                dist_to_hits(a.dist[c], ws->E, hits + (size_t)idx[c] * ws->E), done[idx[c]] = 1;
            a.ncurves = 0;
        }
    }
}

int met_curves_sample(met_lrc_ws *ws, int n, const met_policy *pols, const int32_t *looks,
                      const int32_t *ids, int64_t T, int32_t k, int64_t *hits, eng_err *err)
{
    for (int i = 0; i < n; i++)
        if (looks[i] < 1 || (unsigned)pols[i] >= MET_POLICY_COUNT)
            return eng_err_set(err, ENG_EINVAL, "lrc: lookahead %d < 1 or bad policy %d",
                               (int)looks[i], (int)pols[i]);
    if (T < 0 || T >= ((int64_t)1 << 22))
        return eng_err_set(err, ENG_EINVAL, "lrc: sample of %lld tokens, not under 4M",
                           (long long)T);
    int rc = grow(ws, T * k, T, err);
    if (rc)
        return rc;
    char done[64] = {0};
    for (int i0 = 0; i0 < n; i0 += 64) {
        int m = n - i0 < 64 ? n - i0 : 64;
        memset(done, 0, sizeof done);
        if (ws->sdist && ws->small == MET_LRC_SMALL_AUTO)
            small_curves(ws, m, pols + i0, looks + i0, ids, T, k, hits + (size_t)i0 * ws->E,
                         done);
        for (int i = 0; i < m; i++)
            if (!done[i]) {
                curve_dist(ws, pols[i0 + i], looks[i0 + i], ids, T, k);
                dist_to_hits(ws->dist, ws->E, hits + (size_t)(i0 + i) * ws->E);
            }
    }
    return ENG_OK;
}

int met_curve_sample(met_lrc_ws *ws, met_policy pol, int32_t look, const int32_t *ids,
                     int64_t T, int32_t k, int64_t *hits, eng_err *err)
{
    return met_curves_sample(ws, 1, &pol, &look, ids, T, k, hits, err);
}

static void srp_change(met_lrc_ws *ws, int32_t e, int64_t w, int delta, int64_t *hist)
{
    hist[ws->cnt[e]] += w - ws->since[e];
    ws->since[e] = w;
    ws->cnt[e] += delta;
}

int met_srp_sample_hist(met_lrc_ws *ws, const int32_t *ids, int64_t T, int32_t k,
                        int32_t seg, int64_t *hist, eng_err *err)
{
    if (seg < 1)
        return eng_err_set(err, ENG_EINVAL, "lrc: segment length %d < 1", (int)seg);
    if (T < seg)
        return ENG_OK;
    int64_t W = T - seg + 1;
    for (int32_t e = 0; e < ws->E; e++)
        ws->cnt[e] = 0, ws->since[e] = 0;
    for (int64_t i = 0; i < (int64_t)seg * k; i++)
        ws->cnt[ids[i]]++;
    for (int64_t w = 1; w < W; w++) {
        for (int32_t r = 0; r < k; r++)
            srp_change(ws, ids[(w - 1) * k + r], w, -1, hist);
        for (int32_t r = 0; r < k; r++)
            srp_change(ws, ids[(w + seg - 1) * k + r], w, +1, hist);
    }
    for (int32_t e = 0; e < ws->E; e++)
        hist[ws->cnt[e]] += W - ws->since[e];
    return ENG_OK;
}

void met_srp_from_hist(const double *hist, int32_t seg, double *f1, met_srp *out)
{
    double act = 0, pairs = 0;
    for (int32_t j = 0; j <= seg; j++)
        act += j * hist[j], pairs += hist[j];
    double tp = act, pred0 = seg * pairs;
    met_srp best = {.best_f1 = -1, .threshold = 0};
    double best_pred = 0;
    for (int32_t m = 0; m <= seg; m++) {
        double pred = seg * pairs, den = pred + act;
        double f = den > 0 ? 2 * tp / den : 0;
        if (f1)
            f1[m] = f;
        if (f > best.best_f1)
            best.best_f1 = f, best.threshold = m, best_pred = pred;
        tp -= m * hist[m], pairs -= hist[m];
    }
    best.act_r = pred0 > 0 ? act / pred0 : 0;
    best.best_m = act > 0 ? best_pred / act : 0;
    *out = best;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

void met_bootstrap_basic(double est, double *rep, int B, double conf, double *lb, double *ub)
{
    if (B < 1) {
        *lb = *ub = est;
        return;
    }
    qsort(rep, (size_t)B, sizeof *rep, cmp_double);
    /* B * 0.025 as the reference computes it (Python's round: half to
     * even); (1 - 0.95) / 2 is 0.025000000000000022 in binary, so snap the
     * tail probability to 12 decimals first. */
    double alpha = nearbyint((1 - conf) / 2 * 1e12) / 1e12;
    int lo = (int)nearbyint(B * alpha), hi = B - lo;
    if (hi > B - 1)
        hi = B - 1;
    *lb = 2 * est - rep[hi];
    *ub = 2 * est - rep[lo];
}
