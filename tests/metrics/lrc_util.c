/* lrc_util.c — see lrc_util.h. */
#include "tests/metrics/lrc_util.h"
#include "tests/test.h"

#include <stdio.h>
#include <stdlib.h>

uint64_t lrc_next(lrc_rng *g)
{
    uint64_t z = (g->s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

uint64_t lrc_below(lrc_rng *g, uint64_t n) { return lrc_next(g) % n; }

static int has(const int32_t *v, int32_t n, int32_t x)
{
    for (int32_t i = 0; i < n; i++)
        if (v[i] == x)
            return 1;
    return 0;
}

void lrc_random_sample(lrc_rng *g, int32_t *ids, int64_t T, int32_t k, int32_t E, int model)
{
    int32_t hot = k + 1 < E ? k + 1 : E;
    for (int64_t t = 0; t < T; t++) {
        int32_t *tok = ids + t * k;
        if (t && model == 2 && lrc_below(g, 2)) {
            memcpy(tok, tok - k, (size_t)k * 4);
            continue;
        }
        int32_t n = 0;
        if (t && model == 1)
            for (int32_t r = 0; r < k; r++)
                if (lrc_below(g, 10) < 7)
                    tok[n++] = tok[r - k];
        while (n < k) {
            int32_t x = (int32_t)lrc_below(g, (uint64_t)(model == 3 && n < hot - 1 ? hot : E));
            if (!has(tok, n, x))
                tok[n++] = x;
        }
        for (int32_t r = k - 1; model == 1 && r > 0; r--) { /* new router order */
            int32_t j = (int32_t)lrc_below(g, (uint64_t)r + 1), x = tok[r];
            tok[r] = tok[j], tok[j] = x;
        }
    }
}

met_trace *lrc_random_trace(lrc_rng *g, int32_t L, int32_t E, int32_t k, int64_t S, int64_t maxT,
                            uint32_t flags)
{
    int64_t *counts = tst_alloc((size_t)(S + 1) * 8);
    for (int64_t s = 0; s < S; s++)
        counts[s] = maxT < 0 ? -maxT : 1 + (int64_t)lrc_below(g, (uint64_t)maxT);
    met_trace_info in = {.num_layers = L, .num_experts = E, .top_k = k, .num_samples = S,
                         .flags = flags};
    met_trace *t;
    if (met_trace_alloc(&t, &in, counts, NULL))
        return NULL;
    for (int32_t l = 0; l < L; l++) {
        for (int64_t s = 0; s < S; s++) {
            int64_t T = counts[s];
            int32_t *ids = malloc((size_t)(T * k) * 4);
            lrc_random_sample(g, ids, T, k, E, (int)lrc_below(g, 4));
            for (int64_t i = 0; i < T; i++)
                for (int32_t r = 0; r < k; r++) {
                    size_t o = ((size_t)(t->sample_start[s] + i) * L + l) * k + r;
                    t->ids[o] = (uint16_t)ids[i * k + r];
                    if (t->weights)
                        t->weights[o] = (float)(lrc_below(g, 1000) / 997.0);
                }
            free(ids);
        }
    }
    for (int64_t i = 0; t->token_ids && i < t->info.num_tokens; i++)
        t->token_ids[i] = (int32_t)lrc_below(g, 50000);
    for (int64_t s = 0; t->labels && s < S; s++) {
        char lab[32];
        snprintf(lab, sizeof lab, "set%d", (int)(s * 3 / (S ? S : 1)));
        met_trace_set_label(t, s, lab, NULL);
    }
    return t;
}
