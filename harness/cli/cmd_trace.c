/*
 * cmd_trace.c — `moebench trace convert|stats|synth`: routing traces as
 * files (metrics/trace.h, metrics/synth.h).
 */
#include "harness/cli/cli.h"
#include "harness/cli/cli_impl.h"
#include "metrics/synth.h"
#include "metrics/trace.h"

#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage_text[] =
    "usage: moebench trace convert IN OUT [--from FORMAT] [--to FORMAT]\n"
    "       moebench trace stats TRACE [--json] [--from FORMAT]\n"
    "       moebench trace synth --layers L --experts E --top-k K --samples S --tokens T\n"
    "                            --model uniform|zipf|sticky|segments [--zipf A]\n"
    "                            [--stickiness P] [--segment-len N] [--seed N] -o OUT\n"
    "       moebench trace predictor TRACE -o FILE\n"
    "       moebench trace subset TRACE -o FILE (--keep N | --keep-mb M -m MODEL)\n\n"
    "Routing traces: per token and layer, the top-k experts the router chose.\n"
    "Formats (docs/metrics.md): moetrace (binary, streamable), json, csv, and\n"
    "safetensors (a directory of moe-lrc per-layer files); chosen by extension\n"
    "(.moetrace .json .csv .safetensors or a directory) unless --from/--to says.\n\n"
    "  convert   rewrite a trace in another format\n"
    "  stats     shape, expert popularity per layer (entropy, Gini, top experts),\n"
    "            reuse distances (tokens between uses of an expert, log2 buckets)\n"
    "  synth     a synthetic trace: uniform, zipf (--zipf A, default 1), sticky\n"
    "            (keep each previous expert with probability --stickiness, default\n"
    "            0.8), segments (--segment-len N tokens per domain, default 64;\n"
    "            --stickiness = share of slots from the domain); seeded\n"
    "  predictor a routing predictor for --prefetch predict:FILE (--help)\n"
    "  subset    a PreMoe expert subset for --expert-subset FILE (--help)\n"
    "  -h, --help  this text\n";

static int convert(int argc, char **argv)
{
    static const struct option lo[] = {{"from", required_argument, 0, 'f'},
                                       {"to", required_argument, 0, 't'},
                                       {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    met_trace_format from = MET_FMT_AUTO, to = MET_FMT_AUTO;
    int c, rc = 0;
    opterr = 0;
    while (!rc && (c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        switch (c) {
        case 'f': rc = hx_cli_parse_format("trace convert", optarg, &from); break;
        case 't': rc = hx_cli_parse_format("trace convert", optarg, &to); break;
        case 'h': fputs(usage_text, stdout); return HX_CLI_EXIT_OK;
        default: return hx_cli_usage_error("trace convert", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (rc)
        return rc;
    if (argc - optind != 2)
        return hx_cli_usage_error("trace convert", "expected IN and OUT");
    eng_err err = {0};
    met_trace *t = NULL;
    if ((rc = hx_cli_input("trace convert", NULL, argv[optind])))
        return rc;
    rc = met_trace_load(&t, argv[optind], from, &err);
    if (!rc)
        rc = met_trace_save(t, argv[optind + 1], to, &err);
    met_trace_free(t);
    return rc ? hx_cli_fail("trace convert", rc, "%s", err.msg) : HX_CLI_EXIT_OK;
}

/* The n most activated experts, most first (ties: lower id first). */
static int top_experts(const met_layer_stats *st, int32_t E, int32_t *top, int n)
{
    int m = 0;
    for (int32_t e = 0; e < E; e++) {
        if (m == n && st->counts[e] <= st->counts[top[n - 1]])
            continue;
        int i = m < n ? m++ : n - 1; /* when full, the last one drops out */
        for (; i > 0 && st->counts[top[i - 1]] < st->counts[e]; i--)
            top[i] = top[i - 1];
        top[i] = e;
    }
    return m;
}

static json_t *stats_json(const met_trace_info *in, const met_layer_stats *st)
{
    json_t *o = json_pack("{s:i, s:i, s:i, s:i, s:I, s:I, s:b, s:b, s:b}", "num_layers",
                          in->num_layers, "layer_offset", in->layer_offset, "num_experts",
                          in->num_experts, "top_k", in->top_k,
                          "num_samples", (json_int_t)in->num_samples, "num_tokens",
                          (json_int_t)in->num_tokens, "has_weights",
                          !!(in->flags & MET_TRACE_WEIGHTS), "has_token_ids",
                          !!(in->flags & MET_TRACE_TOKENS), "has_labels",
                          !!(in->flags & MET_TRACE_LABELS));
    json_object_set_new(o, "has_prompt_batching", json_boolean(in->flags & MET_TRACE_PROMPT));
    json_t *layers = json_array();
    for (int32_t l = 0; l < in->num_layers; l++) {
        int64_t tot = 0;
        json_t *counts = json_array(), *top = json_array(), *reuse = json_array();
        for (int32_t e = 0; e < in->num_experts; e++)
            json_array_append_new(counts, json_integer(st[l].counts[e])), tot += st[l].counts[e];
        int32_t t[5];
        int n = top_experts(&st[l], in->num_experts, t, 5);
        for (int i = 0; i < n; i++)
            json_array_append_new(top, json_pack("{s:i, s:f}", "expert", t[i], "share",
                                                 tot ? (double)st[l].counts[t[i]] / tot : 0.0));
        for (int b = 0; b < MET_REUSE_BUCKETS; b++)
            if (st[l].reuse[b])
                json_array_append_new(reuse, json_pack("{s:I, s:I, s:I}", "min",
                                                       (json_int_t)1 << b, "max",
                                                       ((json_int_t)1 << (b + 1)) - 1, "count",
                                                       (json_int_t)st[l].reuse[b]));
        json_array_append_new(layers, json_pack("{s:i, s:f, s:f, s:f, s:o, s:o, s:I, s:o}",
                                                "layer", in->layer_offset + l,
                                                "entropy_bits", st[l].entropy_bits,
                                                "entropy_norm", st[l].entropy_norm, "gini",
                                                st[l].gini, "top", top, "counts", counts,
                                                "first_use", (json_int_t)st[l].first_use,
                                                "reuse", reuse));
    }
    json_object_set_new(o, "layers", layers);
    return o;
}

static void stats_table(const char *path, const met_trace_info *in, const met_layer_stats *st)
{
    printf("%s: %d layers, %d experts, top-%d, %lld samples, %lld tokens%s%s%s%s\n\n", path,
           (int)in->num_layers, (int)in->num_experts, (int)in->top_k,
           (long long)in->num_samples, (long long)in->num_tokens,
           in->flags & MET_TRACE_WEIGHTS ? ", gate weights" : "",
           in->flags & MET_TRACE_TOKENS ? ", token ids" : "",
           in->flags & MET_TRACE_LABELS ? ", labels" : "",
           in->flags & MET_TRACE_PROMPT ? ", prompt batching" : "");
    printf("%-6s %-8s %-7s %-6s %s\n", "layer", "entropy", "normal", "gini",
           "top experts (share)");
    int64_t reuse[MET_REUSE_BUCKETS] = {0}, first = 0;
    for (int32_t l = 0; l < in->num_layers; l++) {
        int32_t t[5];
        int n = top_experts(&st[l], in->num_experts, t, 5);
        int64_t tot = in->num_tokens * in->top_k;
        printf("%-6d %-8.3f %-7.3f %-6.3f", (int)(in->layer_offset + l), st[l].entropy_bits,
               st[l].entropy_norm, st[l].gini);
        for (int i = 0; i < n; i++)
            printf(" %d (%.3f)", (int)t[i], tot ? (double)st[l].counts[t[i]] / tot : 0.0);
        printf("\n");
        for (int b = 0; b < MET_REUSE_BUCKETS; b++)
            reuse[b] += st[l].reuse[b];
        first += st[l].first_use;
    }
    int64_t all = first;
    for (int b = 0; b < MET_REUSE_BUCKETS; b++)
        all += reuse[b];
    printf("\nreuse distance (tokens since the expert's previous use in the sample), all "
           "layers:\n  %-15s %12lld  %.4f\n", "first use", (long long)first,
           all ? (double)first / all : 0.0);
    for (int b = 0; b < MET_REUSE_BUCKETS; b++)
        if (reuse[b]) {
            char range[40];
            snprintf(range, sizeof range, "%lld-%lld", 1LL << b, (1LL << (b + 1)) - 1);
            printf("  %-15s %12lld  %.4f\n", range, (long long)reuse[b], (double)reuse[b] / all);
        }
}

static int stats(int argc, char **argv)
{
    static const struct option lo[] = {{"json", no_argument, 0, 'j'},
                                       {"from", required_argument, 0, 'f'},
                                       {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    met_trace_format from = MET_FMT_AUTO;
    int c, rc = 0, json = 0;
    opterr = 0;
    while (!rc && (c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        switch (c) {
        case 'j': json = 1; break;
        case 'f': rc = hx_cli_parse_format("trace stats", optarg, &from); break;
        case 'h': fputs(usage_text, stdout); return HX_CLI_EXIT_OK;
        default: return hx_cli_usage_error("trace stats", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (rc)
        return rc;
    if (argc - optind != 1)
        return hx_cli_usage_error("trace stats", "expected one TRACE");
    eng_err err = {0};
    met_trace_reader *r = NULL;
    met_layer_stats *st = NULL;
    if ((rc = hx_cli_input("trace stats", NULL, argv[optind])))
        return rc;
    rc = met_trace_reader_open(&r, argv[optind], from, &err);
    if (!rc)
        rc = met_trace_stats(r, &st, &err);
    if (rc) {
        met_trace_reader_free(r);
        return hx_cli_fail("trace stats", rc, "%s", err.msg);
    }
    const met_trace_info *in = met_trace_reader_info(r);
    if (json) {
        json_t *j = stats_json(in, st);
        json_dumpf(j, stdout, JSON_COMPACT | JSON_PRESERVE_ORDER);
        fputc('\n', stdout);
        json_decref(j);
    } else {
        stats_table(argv[optind], in, st);
    }
    met_trace_stats_free(st, in->num_layers);
    met_trace_reader_free(r);
    return HX_CLI_EXIT_OK;
}

static int synth(int argc, char **argv)
{
    static const struct option lo[] = {
        {"layers", required_argument, 0, 'L'},  {"experts", required_argument, 0, 'E'},
        {"top-k", required_argument, 0, 'k'},   {"samples", required_argument, 0, 'S'},
        {"tokens", required_argument, 0, 'T'},  {"model", required_argument, 0, 'm'},
        {"zipf", required_argument, 0, 'z'},    {"stickiness", required_argument, 0, 'p'},
        {"segment-len", required_argument, 0, 'n'}, {"seed", required_argument, 0, 's'},
        {"output", required_argument, 0, 'o'},  {"to", required_argument, 0, 't'},
        {"help", no_argument, 0, 'h'},          {0, 0, 0, 0}};
    const char *cmd = "trace synth", *out = NULL;
    met_synth_opts o = {.num_layers = 1, .model = -1, .zipf = NAN, .stickiness = 0.8,
                        .segment_len = 64};
    met_trace_format to = MET_FMT_AUTO;
    int c, rc = 0, have_E = 0, have_k = 0, have_S = 0, have_T = 0;
    int64_t v;
    opterr = 0;
    while (!rc && (c = getopt_long(argc, argv, "ho:", lo, NULL)) != -1) {
        switch (c) {
        case 'L': rc = hx_cli_parse_int(cmd, "--layers", optarg, 1, MET_TRACE_MAX_LAYERS, &o.num_layers); break;
        case 'E': rc = hx_cli_parse_int(cmd, "--experts", optarg, 1, MET_TRACE_MAX_EXPERTS, &o.num_experts), have_E = 1; break;
        case 'k': rc = hx_cli_parse_int(cmd, "--top-k", optarg, 1, MET_TRACE_MAX_EXPERTS, &o.top_k), have_k = 1; break;
        case 'S': rc = hx_cli_parse_i64(cmd, "--samples", optarg, 0, INT32_MAX, &o.num_samples), have_S = 1; break;
        case 'T': rc = hx_cli_parse_i64(cmd, "--tokens", optarg, 0, INT32_MAX, &o.tokens), have_T = 1; break;
        case 'm':
            if ((o.model = met_synth_model_parse(optarg)) < 0)
                rc = hx_cli_usage_error(cmd, "--model: unknown model '%s'", optarg);
            break;
        case 'z': rc = hx_cli_parse_double(cmd, "--zipf", optarg, 0, 100, &o.zipf); break;
        case 'p': rc = hx_cli_parse_double(cmd, "--stickiness", optarg, 0, 1, &o.stickiness); break;
        case 'n': rc = hx_cli_parse_int(cmd, "--segment-len", optarg, 1, INT32_MAX, &o.segment_len); break;
        case 's': rc = hx_cli_parse_i64(cmd, "--seed", optarg, 0, INT64_MAX, &v), o.seed = (uint64_t)v; break;
        case 'o': out = optarg; break;
        case 't': rc = hx_cli_parse_format(cmd, optarg, &to); break;
        case 'h': fputs(usage_text, stdout); return HX_CLI_EXIT_OK;
        default: return hx_cli_usage_error(cmd, "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (rc)
        return rc;
    if (optind < argc)
        return hx_cli_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
    if (!have_E || !have_k || !have_S || !have_T || (int)o.model < 0 || !out)
        return hx_cli_usage_error(cmd, "--experts, --top-k, --samples, --tokens, --model and -o "
                              "are required");
    if (o.top_k > o.num_experts)
        return hx_cli_usage_error(cmd, "--top-k %d exceeds --experts %d", o.top_k, o.num_experts);
    if (isnan(o.zipf))
        o.zipf = o.model == MET_SYNTH_ZIPF ? 1.0 : 0.0;
    eng_err err = {0};
    rc = met_synth_write(out, to, &o, &err);
    return rc ? hx_cli_fail(cmd, rc, "%s", err.msg) : HX_CLI_EXIT_OK;
}

int hx_cli_cmd_trace(int argc, char **argv)
{
    if (argc < 2)
        return hx_cli_usage_error("trace", "expected a subcommand: convert, stats, synth, "
                                  "predictor or subset");
    const char *sub = argv[1];
    if (!strcmp(sub, "--help") || !strcmp(sub, "-h")) {
        fputs(usage_text, stdout);
        return HX_CLI_EXIT_OK;
    }
    optind = 0; /* fresh getopt state for the subcommand */
    if (!strcmp(sub, "convert"))
        return convert(argc - 1, argv + 1);
    if (!strcmp(sub, "stats"))
        return stats(argc - 1, argv + 1);
    if (!strcmp(sub, "synth"))
        return synth(argc - 1, argv + 1);
    if (!strcmp(sub, "predictor"))
        return hx_cli_trace_predictor(argc - 1, argv + 1);
    if (!strcmp(sub, "subset"))
        return hx_cli_trace_subset(argc - 1, argv + 1);
    return hx_cli_usage_error("trace", "unknown subcommand '%s' (convert, stats, synth, "
                              "predictor, subset)", sub);
}
