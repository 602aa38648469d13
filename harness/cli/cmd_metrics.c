/*
 * cmd_metrics.c — `moebench metrics TRACE`: SRP, SCH and the LRU/LFU/Belady
 * hit-rate curves of a routing trace, per layer and model-wide, with
 * bootstrap intervals (metrics/lrc.h). A table by default, the documented
 * JSON document with --json.
 */
#include "harness/cli/cli.h"
#include "harness/cli/cli_impl.h"
#include "metrics/lrc.h"
#include "metrics/trace.h"

#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char usage_text[] =
    "usage: moebench metrics TRACE [--json] [--seg-lens 4,16,64,256] [--bootstrap B]\n"
    "                        [--seed S] [--stride N] [--layers LIST] [--threads T]\n"
    "                        [--from FORMAT]\n\n"
    "Local routing consistency of a routing trace (docs/metrics.md): SRP for each\n"
    "segment length, and hit-rate curves for every cache size of LRU, LFU, Belady\n"
    "and FSF (lookahead = segment length; its curve is SCH), per layer and for the\n"
    "model-wide trace (all layers concatenated), with 95% basic-bootstrap intervals.\n\n"
    "  --json           the full results as JSON (every cache size, every threshold)\n"
    "  --seg-lens LIST  segment lengths, comma-separated (default 4,16,64,256);\n"
    "                   lengths longer than every sample are skipped\n"
    "  --bootstrap B    bootstrap replicates (default 1000; 0 = no intervals)\n"
    "  --seed S         seed of the bootstrap draws (default 0)\n"
    "  --stride N       analyse every N-th sample only (the paper's SCH script: 16)\n"
    "  --layers LIST    layers to analyse, e.g. 0,3,8-15 (default all), numbered as\n"
    "                   the model numbers them (a trace from a model with dense\n"
    "                   leading layers starts at its first MoE layer); the model-wide\n"
    "                   trace concatenates these\n"
    "  --threads T      worker threads (default: online CPUs)\n"
    "  --from FORMAT    moetrace, json, csv or safetensors (default: by extension)\n"
    "  -h, --help       this text\n";

typedef struct m_opts {
    int json;
    int32_t segs[64];
    int nseg;
    int32_t *layers;
    int nlayers;
    met_lrc_opts lrc;
    met_trace_format from;
} m_opts;

/* --layers names the model's layers: subtract the trace's layer offset. */
static int model_layers_to_trace(const met_trace_info *in, int32_t *layers, int n, eng_err *err)
{
    for (int i = 0; i < n; i++) {
        if (layers[i] < in->layer_offset)
            return eng_err_set(err, ENG_EINVAL,
                               "--layers: layer %d has a dense FFN (the trace starts at the "
                               "model's layer %d)", (int)layers[i], (int)in->layer_offset);
        layers[i] -= in->layer_offset;
    }
    return ENG_OK;
}

static void print_table(const met_lrc_report *rep, const char *path)
{
    const met_lrc_result *r0 = &rep->layers[0];
    int boot = rep->bootstrap > 0;
    printf("%s: %d layer(s), %lld samples analysed%s\n", path, rep->num_layers,
           (long long)r0->num_samples, boot ? ", 95% basic-bootstrap intervals in [ ]" : "");
    if (rep->layer_offset)
        printf("layers are the model's; its first %d layer(s) have a dense FFN and are not "
               "in the trace\n", (int)rep->layer_offset);
    printf("\n");
    printf("SRP (best F1 of predicting a segment's experts)\n%-7s", "layer");
    for (int q = 0; q < r0->num_seg; q++)
        printf(boot ? "  L=%-23d" : "  L=%-7d", (int)r0->srp[q].seg_len);
    printf("\n");
    for (int i = 0; i <= rep->num_layers; i++) {
        const met_lrc_result *r = i < rep->num_layers ? &rep->layers[i] : rep->model;
        if (!r)
            break;
        char name[16];
        snprintf(name, sizeof name, "%d",
                 i < rep->num_layers ? (int)(rep->layer_offset + rep->layer_index[i]) : 0);
        printf("%-7s", i < rep->num_layers ? name : "model");
        for (int q = 0; q < r->num_seg; q++) {
            printf("  %.4f", r->srp[q].srp.best_f1);
            if (boot)
                printf(" [%.4f,%.4f]", r->srp[q].ci_lb, r->srp[q].ci_ub);
            printf("   ");
        }
        printf("\n");
    }
    printf("\nHit rates at cache_m = cache size / top_k\n%-7s %-7s %-7s %-7s %-7s", "layer",
           "cache_m", "lru", "lfu", "belady");
    for (int q = 0; q < r0->num_seg; q++)
        printf(" sch@%-3d", (int)r0->srp[q].seg_len);
    printf("\n");
    for (int i = 0; i <= rep->num_layers; i++) {
        const met_lrc_result *r = i < rep->num_layers ? &rep->layers[i] : rep->model;
        if (!r)
            break;
        for (int m = 1; m <= 4; m *= 2) {
            int64_t c = (int64_t)m * r->top_k;
            if (c > r->num_experts)
                break;
            if (i < rep->num_layers)
                printf("%-7d %-7d", (int)(rep->layer_offset + rep->layer_index[i]), m);
            else
                printf("%-7s %-7d", "model", m);
            for (int p = 0; p < 3; p++)
                printf(" %.4f ", r->curve[p].hit_rate[c - 1]);
            for (int q = 0; q < r->num_seg; q++)
                printf(" %.4f ", r->sch[q].hit_rate[c - 1]);
            printf("\n");
        }
    }
}

static int parse_args(int argc, char **argv, m_opts *o, const char **path)
{
    static const struct option lo[] = {
        {"json", no_argument, 0, 'j'},       {"seg-lens", required_argument, 0, 's'},
        {"bootstrap", required_argument, 0, 'b'}, {"seed", required_argument, 0, 'S'},
        {"stride", required_argument, 0, 'n'},    {"layers", required_argument, 0, 'l'},
        {"threads", required_argument, 0, 't'},   {"from", required_argument, 0, 'f'},
        {"help", no_argument, 0, 'h'},       {0, 0, 0, 0},
    };
    int c, rc = 0;
    int64_t v;
    opterr = 0;
    while (!rc && (c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        switch (c) {
        case 'j': o->json = 1; break;
        case 's': rc = hx_cli_parse_seg_lens("metrics", optarg, o->segs, &o->nseg); break;
        case 'b': rc = hx_cli_parse_int("metrics", "--bootstrap", optarg, 0, 1000000, &o->lrc.bootstrap); break;
        case 'S':
            rc = hx_cli_parse_i64("metrics", "--seed", optarg, 0, INT64_MAX, &v);
            o->lrc.seed = (uint64_t)v;
            break;
        case 'n': rc = hx_cli_parse_i64("metrics", "--stride", optarg, 1, INT64_MAX, &o->lrc.stride); break;
        case 'l': rc = hx_cli_parse_layers("metrics", optarg, &o->layers, &o->nlayers); break;
        case 't': rc = hx_cli_parse_int("metrics", "--threads", optarg, 1, 256, &o->lrc.threads); break;
        case 'f': rc = hx_cli_parse_format("metrics", optarg, &o->from); break;
        case 'h': fputs(usage_text, stdout); return -1;
        default: return hx_cli_usage_error("metrics", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (rc)
        return rc;
    if (optind != argc - 1)
        return hx_cli_usage_error("metrics", optind >= argc ? "missing TRACE" : "unexpected argument '%s'",
                              argv[optind + (optind < argc)]);
    *path = argv[optind];
    return 0;
}

/* Progress on stderr when it is a terminal: the pass (layer i of L, or
 * the model-wide one), samples done, elapsed time and an estimate of what
 * is left; at most five lines a second, one line rewritten in place. */
typedef struct progress {
    double t0, last;
    int shown;
    int model;       /* the last pass is the model-wide one (when > 1 layer) */
} progress;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void on_progress(void *user, int pass, int n_pass, int64_t done, int64_t total)
{
    progress *p = user;
    double t = now_s();
    if (t - p->last < 0.2 && done < total)
        return;
    p->last = t;
    double frac = ((double)pass + (total ? (double)done / (double)total : 1)) / n_pass;
    double el = t - p->t0, left = frac > 0 ? el / frac - el : 0;
    char what[48];
    int layers = p->model && n_pass > 1 ? n_pass - 1 : n_pass;
    if (pass >= layers)
        snprintf(what, sizeof what, "model-wide");
    else
        snprintf(what, sizeof what, "layer %d/%d", pass + 1, layers);
    fprintf(stderr, "\r\033[Kmoebench metrics: %s, sample %lld/%lld  elapsed %d:%02d  left ~%d:%02d",
            what, (long long)done, (long long)total, (int)el / 60, (int)el % 60,
            (int)left / 60, (int)left % 60);
    p->shown = 1;
}

int hx_cli_cmd_metrics(int argc, char **argv)
{
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    m_opts o = {.segs = {4, 16, 64, 256}, .nseg = 4, .from = MET_FMT_AUTO,
                .lrc = {.bootstrap = 1000, .stride = 1, .threads = ncpu < 1 ? 1 : ncpu > 64 ? 64 : (int)ncpu, .model = 1}};
    const char *path = NULL;
    int rc = parse_args(argc, argv, &o, &path);
    if (rc) {
        free(o.layers);
        return rc < 0 ? HX_CLI_EXIT_OK : rc;
    }
    o.lrc.seg_lens = o.segs, o.lrc.num_seg_lens = o.nseg;
    o.lrc.layers = o.layers, o.lrc.num_layers = o.nlayers;
    eng_err err = {0};
    met_trace_reader *r = NULL;
    met_lrc_report *rep = NULL;
    progress pg = {.t0 = now_s(), .model = o.lrc.model};
    if (isatty(2)) {
        o.lrc.progress = on_progress;
        o.lrc.progress_user = &pg;
    }
    if ((rc = hx_cli_input("metrics", NULL, path))) {
        free(o.layers);
        return rc;
    }
    rc = met_trace_reader_open(&r, path, o.from, &err);
    if (!rc)
        rc = model_layers_to_trace(met_trace_reader_info(r), o.layers, o.nlayers, &err);
    if (!rc)
        rc = met_lrc_compute(r, &o.lrc, &rep, &err);
    if (pg.shown)
        fputs("\r\033[K", stderr);
    if (rc) {
        met_trace_reader_free(r);
        free(o.layers);
        return hx_cli_fail("metrics", rc, "%s", err.msg);
    }
    if (o.json) {
        json_t *j = met_lrc_report_json(rep);
        rc = !j || json_dumpf(j, stdout, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(17));
        fputc('\n', stdout);
        json_decref(j);
    } else {
        print_table(rep, path);
    }
    met_lrc_report_free(rep);
    met_trace_reader_free(r);
    free(o.layers);
    if (rc)
        return hx_cli_fail("metrics", ENG_ENOMEM, "cannot write the JSON document");
    return HX_CLI_EXIT_OK;
}
