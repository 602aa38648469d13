/* trace_opts.c — option parsers of the trace and metrics commands. */
#include "harness/cli/cli.h"

#include <stdlib.h>
#include <string.h>

/* Splits a comma list into numbers (a-b ranges when allow_range). */
static int parse_list(const char *cmd, const char *opt, const char *val, int64_t lo, int64_t hi,
                      int allow_range, int32_t *out, int max, int *n)
{
    char *copy = strdup(val), *save = NULL;
    int rc = copy ? 0 : hx_cli_usage_error(cmd, "out of memory");
    *n = 0;
    for (char *tok = copy ? strtok_r(copy, ",", &save) : NULL; !rc && tok;
         tok = strtok_r(NULL, ",", &save)) {
        char *dash = allow_range ? strchr(tok + 1, '-') : NULL;
        int64_t a, b;
        if (dash)
            *dash = 0;
        rc = hx_cli_parse_i64(cmd, opt, tok, lo, hi, &a);
        b = a;
        if (!rc && dash)
            rc = hx_cli_parse_i64(cmd, opt, dash + 1, a, hi, &b);
        for (int64_t x = a; !rc && x <= b; x++) {
            for (int i = 0; i < *n; i++)
                if (out[i] == x)
                    rc = hx_cli_usage_error(cmd, "%s: %lld given twice", opt, (long long)x);
            if (!rc && *n >= max)
                rc = hx_cli_usage_error(cmd, "%s: more than %d values", opt, max);
            if (!rc)
                out[(*n)++] = (int32_t)x;
        }
    }
    if (!rc && !*n)
        rc = hx_cli_usage_error(cmd, "%s: empty list", opt);
    free(copy);
    return rc;
}

int hx_cli_parse_seg_lens(const char *cmd, const char *val, int32_t *segs, int *n)
{
    return parse_list(cmd, "--seg-lens", val, 1, 1000000, 0, segs, 64, n);
}

int hx_cli_parse_layers(const char *cmd, const char *val, int32_t **layers, int *n)
{
    free(*layers);
    *layers = malloc(MET_TRACE_MAX_LAYERS * sizeof **layers);
    if (!*layers)
        return hx_cli_usage_error(cmd, "out of memory");
    return parse_list(cmd, "--layers", val, 0, MET_TRACE_MAX_LAYERS - 1, 1, *layers,
                      MET_TRACE_MAX_LAYERS, n);
}

int hx_cli_parse_format(const char *cmd, const char *val, met_trace_format *out)
{
    int f = met_trace_format_parse(val);
    if (f <= 0)
        return hx_cli_usage_error(cmd, "unknown trace format '%s' (moetrace, json, csv, safetensors)",
                              val);
    *out = (met_trace_format)f;
    return 0;
}
