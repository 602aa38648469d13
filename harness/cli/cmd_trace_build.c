/*
 * cmd_trace_build.c — `moebench trace predictor` and `moebench trace
 * subset`: artefacts learnt from a profile trace. A predictor
 * (engine/predict.h) drives `--prefetch predict:FILE` in generate,
 * perplexity and simulate; an expert subset (metrics/subset.h, PreMoe)
 * drives `--expert-subset FILE` in generate and perplexity.
 */
#include "engine/model.h"
#include "engine/predict.h"
#include "harness/cli/cli.h"
#include "harness/cli/cli_impl.h"
#include "metrics/subset.h"
#include "metrics/trace.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char predictor_usage[] =
    "usage: moebench trace predictor TRACE -o FILE [--from FORMAT]\n\n"
    "Learns a routing predictor from a profile trace (any format `trace convert`\n"
    "reads; record one with `generate --trace-out`): per layer the experts'\n"
    "activation counts, the transitions from layer l's experts to layer l+1's\n"
    "(the last layer to the next token's first) and from a token's experts at a\n"
    "layer to the next token's there. Use it with --prefetch predict:FILE\n"
    "(generate, perplexity, simulate) and --predict-kind transition|history|\n"
    "frequency. docs/policies.md has the predictors and the file layout.\n\n"
    "  -o, --output FILE  the predictor file to write\n"
    "  --from FORMAT      the trace's format (default: by extension)\n"
    "  -h, --help         this text\n";

static const char subset_usage[] =
    "usage: moebench trace subset TRACE -o FILE (--keep N | --keep-mb M -m MODEL)\n"
    "                             [--min-weight R] [--from FORMAT]\n\n"
    "PreMoe's task-adaptive expert subset: scores each layer's experts on a\n"
    "profile trace of a task's prompts (the mean over tokens of the gate weight\n"
    "an expert got when chosen, counting choices with weight >= R: PreMoe's\n"
    "TCESS; selection counts when the trace has no weights) and keeps the best\n"
    "of each layer. `generate`/`perplexity --expert-subset FILE` then route only\n"
    "among them (lossy: measure it with perplexity --kl-against).\n\n"
    "  -o, --output FILE  the subset file to write (JSON)\n"
    "  --keep N           experts kept per layer (top-k .. experts)\n"
    "  --keep-mb M        or a budget in MiB for all layers' routed experts,\n"
    "                     split evenly over the layers; needs -m\n"
    "  -m, --model FILE   the model whose expert sizes --keep-mb counts\n"
    "  --min-weight R     PreMoe's confidence threshold r (default 0)\n"
    "  --from FORMAT      the trace's format (default: by extension)\n"
    "  -h, --help         this text\n";

static int load_trace(const char *cmd, const char *path, met_trace_format from, met_trace **t)
{
    eng_err err = {0};
    int rc = hx_cli_input(cmd, NULL, path);
    if (rc)
        return rc;
    if ((rc = met_trace_load(t, path, from, &err)))
        return hx_cli_fail(cmd, rc, "%s", err.msg);
    return 0;
}

int hx_cli_trace_predictor(int argc, char **argv)
{
    static const struct option lo[] = {{"output", required_argument, 0, 'o'},
                                       {"from", required_argument, 0, 'f'},
                                       {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    const char *cmd = "trace predictor", *out = NULL;
    met_trace_format from = MET_FMT_AUTO;
    int c, rc = 0;
    opterr = 0;
    while (!rc && (c = getopt_long(argc, argv, "ho:", lo, NULL)) != -1) {
        switch (c) {
        case 'o': out = optarg; break;
        case 'f': rc = hx_cli_parse_format(cmd, optarg, &from); break;
        case 'h': fputs(predictor_usage, stdout); return HX_CLI_EXIT_OK;
        default: return hx_cli_usage_error(cmd, "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (rc)
        return rc;
    if (argc - optind != 1 || !out)
        return hx_cli_usage_error(cmd, "expected TRACE and -o FILE");
    met_trace *t = NULL;
    if ((rc = load_trace(cmd, argv[optind], from, &t)))
        return rc;
    const met_trace_info *in = &t->info;
    eng_err err = {0};
    eng_predictor *p = NULL;
    rc = eng_predictor_new(&p, in->num_layers, in->num_experts, in->top_k, in->layer_offset,
                           &err);
    for (int64_t s = 0; !rc && s < in->num_samples; s++) {
        const int64_t t0 = t->sample_start[s], T = t->sample_start[s + 1] - t0;
        rc = eng_predictor_add_sample(
            p, t->ids + (size_t)t0 * (size_t)in->num_layers * (size_t)in->top_k, T, &err);
    }
    if (!rc)
        rc = eng_predictor_save(p, out, &err);
    if (!rc)
        fprintf(stderr, "%s: %s: %lld tokens of %lld samples, %d MoE layers x %d experts "
                        "(top-%d)\n", cmd, out, (long long)in->num_tokens,
                (long long)in->num_samples, in->num_layers, in->num_experts, in->top_k);
    eng_predictor_free(p);
    met_trace_free(t);
    return rc ? hx_cli_fail(cmd, rc, "%s", err.msg) : HX_CLI_EXIT_OK;
}

/* Each layer's expert bytes from the model, checked against the trace. */
static int model_bytes(const char *cmd, const char *path, const met_trace_info *in,
                       double **out)
{
    eng_err err = {0};
    eng_model *m = NULL;
    int rc = hx_cli_input(cmd, "-m", path);
    if (rc)
        return rc;
    if ((rc = eng_model_open(&m, path, NULL, &err)))
        return hx_cli_fail(cmd, rc, "%s", err.msg);
    const eng_hparams *hp = eng_model_hparams(m);
    if (hp->n_layer_moe != in->num_layers || hp->n_expert != in->num_experts) {
        rc = hx_cli_fail(cmd, ENG_EINVAL, "-m %s: %lld MoE layers x %lld experts; the trace "
                         "has %d x %d", path, (long long)hp->n_layer_moe,
                         (long long)hp->n_expert, in->num_layers, in->num_experts);
    } else if (!(*out = malloc((size_t)in->num_layers * sizeof **out))) {
        rc = hx_cli_fail(cmd, ENG_ENOMEM, "out of memory");
    } else {
        for (int32_t l = 0; l < in->num_layers; l++)
            (*out)[l] = (double)eng_model_expert_bytes(m, l);
    }
    eng_model_free(m);
    return rc;
}

typedef struct subset_args {
    const char *out, *model;
    met_trace_format from;
    met_subset_opts o;
    double keep_mb;
} subset_args;

static int subset_parse(int argc, char **argv, subset_args *a)
{
    static const struct option lo[] = {
        {"output", required_argument, 0, 'o'}, {"keep", required_argument, 0, 'k'},
        {"keep-mb", required_argument, 0, 'b'}, {"model", required_argument, 0, 'm'},
        {"min-weight", required_argument, 0, 'r'}, {"from", required_argument, 0, 'f'},
        {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    const char *cmd = "trace subset";
    int c, rc = 0;
    opterr = 0;
    while (!rc && (c = getopt_long(argc, argv, "ho:m:", lo, NULL)) != -1) {
        switch (c) {
        case 'o': a->out = optarg; break;
        case 'k': rc = hx_cli_parse_int(cmd, "--keep", optarg, 1, MET_TRACE_MAX_EXPERTS, &a->o.keep); break;
        case 'b': rc = hx_cli_parse_double(cmd, "--keep-mb", optarg, 1e-9, 1e12, &a->keep_mb); break;
        case 'm': a->model = optarg; break;
        case 'r': rc = hx_cli_parse_double(cmd, "--min-weight", optarg, 0, 1e30, &a->o.min_weight); break;
        case 'f': rc = hx_cli_parse_format(cmd, optarg, &a->from); break;
        case 'h': fputs(subset_usage, stdout); return -1;
        default: return hx_cli_usage_error(cmd, "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (rc)
        return rc;
    if (argc - optind != 1 || !a->out)
        return hx_cli_usage_error(cmd, "expected TRACE and -o FILE");
    if ((a->o.keep > 0) == (a->keep_mb > 0))
        return hx_cli_usage_error(cmd, "give one budget: --keep N or --keep-mb M");
    if (a->keep_mb > 0 && !a->model)
        return hx_cli_usage_error(cmd, "--keep-mb needs -m MODEL (its experts' sizes)");
    if (a->model && a->keep_mb <= 0)
        return hx_cli_usage_error(cmd, "-m goes with --keep-mb");
    return 0;
}

int hx_cli_trace_subset(int argc, char **argv)
{
    const char *cmd = "trace subset";
    subset_args a = {.from = MET_FMT_AUTO};
    int rc = subset_parse(argc, argv, &a);
    if (rc)
        return rc < 0 ? HX_CLI_EXIT_OK : rc;
    met_trace *t = NULL;
    double *bytes = NULL;
    if ((rc = load_trace(cmd, argv[optind], a.from, &t)))
        return rc;
    if (a.model && (rc = model_bytes(cmd, a.model, &t->info, &bytes))) {
        met_trace_free(t);
        return rc;
    }
    a.o.keep_bytes = a.keep_mb * 1048576.0;
    a.o.expert_bytes = bytes;
    eng_err err = {0};
    met_subset *s = NULL;
    rc = met_subset_build(t, &a.o, &s, &err);
    if (!rc)
        rc = met_subset_save(s, a.out, &err);
    if (!rc) {
        int64_t kept = 0;
        for (int32_t l = 0; l < s->num_layers; l++)
            kept += s->n_keep[l];
        fprintf(stderr, "%s: %s: keeps %lld of %lld experts (%d layers), scored on %lld "
                        "tokens by %s\n", cmd, a.out, (long long)kept,
                (long long)s->num_layers * s->num_experts, s->num_layers,
                (long long)s->profile_tokens, s->weighted ? "gate weight" : "selection count");
    }
    met_subset_free(s);
    met_trace_free(t);
    free(bytes);
    return rc ? hx_cli_fail(cmd, rc, "%s", err.msg) : HX_CLI_EXIT_OK;
}
