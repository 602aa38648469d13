/*
 * cmd_mkexperts.c — `moebench mkexperts`: write a model's companion expert
 * file (engine/lowprec.h), every routed expert in a lower-precision type,
 * for the mixed-precision options of generate and perplexity.
 */
#include "harness/cli/cli.h"
#include "harness/cli/cli_impl.h"

#include "engine/formats.h"
#include "engine/lowprec.h"

#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char usage_text[] =
    "usage: moebench mkexperts -m MODEL.gguf --type TYPE -o FILE.gguf\n\n"
    "Writes the companion expert file of a model: every routed expert (gate, up,\n"
    "down; the expert biases copied as they are) requantized to TYPE from the\n"
    "model's own values (each row dequantized, then quantized), under the model's\n"
    "tensor names, with keys that tie it to this model file (its size and a hash\n"
    "of its expert tensors). generate and perplexity load experts from it with\n"
    "--low-precision FILE (docs/policies.md, mixed precision).\n\n"
    "  -m, --model FILE   the model (GGUF with experts)\n"
    "  --type TYPE        f16, bf16, q8_0, q5_0, q5_1, q4_0, q4_1, iq4_nl, mxfp4,\n"
    "                     q2_K, q3_K, q4_K, q5_K, q6_K, iq4_xs (ggml names, any\n"
    "                     case); the rows of every expert matrix must fit its blocks\n"
    "  -o, --output FILE  the companion to write (replaced atomically)\n"
    "  -h, --help         this text\n";

static int run(const char *model, int type, const char *out)
{
    eng_err err = {0};
    eng_model *m = NULL;
    int rc = eng_model_open(&m, model, NULL, &err);
    if (rc)
        return hx_cli_fail("mkexperts", rc, "%s", err.msg);
    hx_cli_progress ps = {.cmd = "mkexperts", .last_pct = -1};
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    hx_cli_make_parent(out);
    rc = eng_lowprec_write(m, type, out, isatty(STDERR_FILENO) ? hx_cli_progress_bytes : NULL, &ps, &err);
    if (rc) {
        eng_model_free(m);
        return hx_cli_fail("mkexperts", rc, "%s", err.msg);
    }
    eng_lowprec *lp = NULL;
    if ((rc = eng_lowprec_open(&lp, m, out, &err))) { /* what we wrote must open */
        eng_model_free(m);
        return hx_cli_fail("mkexperts", rc, "%s", err.msg);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    const eng_hparams *hp = eng_model_hparams(m);
    printf("wrote %s: %" PRId64 " MoE layers x %" PRId64 " experts in %s, %" PRIu64
           " bytes per expert (the model's: %" PRIu64 "), %.2f s\n",
           out, hp->n_layer_moe, hp->n_expert, eng_type_name(type),
           eng_lowprec_expert_bytes(lp, 0), eng_model_expert_bytes(m, 0),
           (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec));
    eng_lowprec_free(lp);
    eng_model_free(m);
    return HX_CLI_EXIT_OK;
}

int hx_cli_cmd_mkexperts(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"model", required_argument, 0, 'm'},  {"type", required_argument, 0, 't'},
        {"output", required_argument, 0, 'o'}, {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    const char *model = NULL, *out = NULL, *tname = NULL;
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "+hm:o:", longopts, NULL)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case 't': tname = optarg; break;
        case 'o': out = optarg; break;
        case 'h': fputs(usage_text, stdout); return HX_CLI_EXIT_OK;
        default: return hx_cli_usage_error("mkexperts", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return hx_cli_usage_error("mkexperts", "unexpected argument '%s'", argv[optind]);
    if (!model)
        return hx_cli_usage_error("mkexperts", "-m MODEL is required");
    if (!tname)
        return hx_cli_usage_error("mkexperts", "--type TYPE is required");
    if (!out)
        return hx_cli_usage_error("mkexperts", "-o FILE is required");
    int type = eng_type_from_name(tname);
    if (type < 0)
        return hx_cli_usage_error("mkexperts", "--type: unknown type '%s' (q4_0, q8_0, q4_K, ...)",
                                  tname);
    int rc = hx_cli_input("mkexperts", "-m", model);
    return rc ? rc : run(model, type, out);
}
