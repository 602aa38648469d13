/*
 * result_perplexity.c — `moebench perplexity --json` -> an hx_db_result,
 * for the command kind (docs/database.md, "How the command kind fills the
 * tables"):
 *   samples      every finite top-level number under its own name: ppl,
 *                ppl_err, tokens_scored, chunks, tokens_per_s, eval_ms, and
 *                with --kl-against kl_mean, kl_p99, kl_max, top1, ppl_base,
 *                ppl_delta, ...; with offloading hit_rate, stall_share
 *                (stall / eval_ms) and cache.<key> (hx_suite_result_cache)
 *   series       chunk_ms (evaluation time per chunk)
 *   cache_stats  as for generate
 *   directions   the output's own "directions" (ppl, kl_* lower, top1
 *                higher), read by hx_suite_result_from_json
 *   skipped      model, directions, kl_against (strings, objects)
 * A dedicated mapper for the same reason as generate's: the generic walk
 * would read the cache's per-layer objects as more model-wide rows.
 */
#include "harness/suite/suite.h"

#include <math.h>
#include <stdlib.h>

int hx_suite_result_is_perplexity(const json_t *root)
{
    return json_is_object(root) && json_object_get(root, "ppl") &&
           json_is_integer(json_object_get(root, "tokens_scored"));
}

int hx_suite_result_from_perplexity(hx_db_result *r, const json_t *root, eng_err *err)
{
    const char *key;
    json_t *v;
    int rc = ENG_OK;
    json_object_foreach((json_t *)root, key, v) {
        if (!rc && json_is_number(v) && isfinite(json_number_value(v)))
            rc = hx_db_result_sample(r, key, json_number_value(v), err);
    }
    const json_t *ms = json_object_get(root, "chunk_ms");
    size_t n = json_array_size(ms);
    if (!rc && n) {
        double *buf = malloc(n * sizeof *buf);
        if (!buf)
            return eng_err_set(err, ENG_ENOMEM, "out of memory reading 'chunk_ms'");
        for (size_t i = 0; i < n; i++)
            buf[i] = json_number_value(json_array_get(ms, i));
        rc = hx_db_result_series(r, "chunk_ms", buf, n, err);
        free(buf);
    }
    const json_t *t = json_object_get(root, "eval_ms");
    return rc ? rc : hx_suite_result_cache(r, root, json_is_number(t) ? json_number_value(t) : 0,
                                           err);
}
