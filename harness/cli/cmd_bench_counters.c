/*
 * cmd_bench_counters.c — `moebench bench-counters`: what region accounting
 * costs (docs/counters.md, "Overhead"), and a synthetic decode workload that
 * shows the region table without a model.
 *
 * Overhead mode times many begin/end pairs through the engine's hook table
 * in three states in one run: hooks off (the engine's cost: one branch),
 * regions with clocks and rusage only, regions with the chosen event set.
 * It then measures the share of a decode token: synthetic decode tokens of
 * about --token-ms, alternating hooks off and on token by token (median
 * of each), next to the estimate pairs per token x (pair cost with
 * the set - pair cost off) / token time.
 *
 * The synthetic token mimics a 4-layer OLMoE-shaped decode step: embed;
 * per layer attention, router and 8 routed experts (expert_ffn), the first
 * with a nested expert_wait; lm_head; sampling: 47 region pairs. Its work is
 * a fixed number of LCG steps per unit, so under callgrind the instruction
 * count of every region is exactly repeatable.
 */
#include "engine/hooks.h"
#include "harness/probe/probe.h"
#include "harness/cli/cli.h"
#include "harness/cli/cli_impl.h"
#include "metrics/regions.h"

#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char usage_text[] =
    "usage: moebench bench-counters [--iters N] [--tokens N] [--token-ms MS]\n"
    "                               [--preset NAME | --events LIST] [--backend B]\n"
    "                               [--multiplex] [--json]\n"
    "       moebench bench-counters --synthetic TOKENS [--unit-iters K]\n"
    "                               [--preset NAME | --events LIST] [--json]\n"
    "       moebench bench-counters --model FILE [--steps N] [--prompt N]\n"
    "                               [--threads T] [--prefault] [--no-coalesce]\n"
    "                               [--preset NAME | --events LIST] [--json]\n\n"
    "Measures the cost of region accounting (a region begin/end pair with the\n"
    "hook table off, with clocks and rusage only, and with the event set) and\n"
    "its share of a synthetic decode token; or, with --synthetic, runs that\n"
    "synthetic workload (4 layers, 47 regions a token) and prints the region table;\n"
    "or, with --model, measures the overhead on the real engine: every greedy\n"
    "decode step runs twice at the same position (the session rewound in\n"
    "between), once with the region counters and once without, the order\n"
    "alternating; it reports the median on/off ratio of step time with a 95 %\n"
    "interval, and checks that both passes give bit-identical logits.\n\n"
    "  --iters N          begin/end pairs timed per state (default 200000)\n"
    "  --tokens N         synthetic tokens per state for the measured share (default 40)\n"
    "  --token-ms MS      synthetic token length to aim for (default 20)\n"
    "  --preset NAME      event preset (default: default); --events LIST instead\n"
    "  --backend B        auto (default), papi or perf\n"
    "  --multiplex        let events share counters\n"
    "  --synthetic N      run N synthetic tokens and print the region table\n"
    "  --unit-iters K     LCG steps per work unit (default: calibrated to the\n"
    "                     token length); fix it for repeatable callgrind counts\n"
    "  --model FILE       real-engine mode on this GGUF model\n"
    "  --steps N          with --model: decode steps, each timed on and off\n"
    "                     (default 200)\n"
    "  --prompt N         with --model: prompt tokens before timing (default 16)\n"
    "  --threads T        with --model: engine threads (default 1: then thread\n"
    "                     CPU time holds all the work and is the main figure)\n"
    "  --prefault         with --model: map the whole file first\n"
    "  --no-coalesce      with --model: read the counters at every region\n"
    "                     boundary (default: back-to-back regions share one)\n"
    "  --json             one JSON object\n"
    "  -h, --help         this text\n";

typedef struct bench_opts {
    hx_probe_bce_opts engine;          /* --model mode                       */
    int64_t iters, tokens, synthetic, unit_iters;
    double token_ms;
    const char *preset, *list;
    met_counters_opts copts;
    int json;
} bench_opts;

static int64_t clock_ns(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t now_ns(void) { return clock_ns(CLOCK_MONOTONIC); }
/* The thread's CPU time: unlike wall time, preemption by other processes on
 * a shared machine does not add to it, while the syscalls of the counters
 * do. */
static int64_t cpu_ns(void) { return clock_ns(CLOCK_THREAD_CPUTIME_ID); }

static volatile uint64_t sink;

static void work(int64_t iters)
{
    uint64_t x = sink;
    for (int64_t i = 0; i < iters; i++)
        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
    sink = x;
}

static void region(const eng_hooks *h, eng_region g, int64_t iters)
{
    ENG_HOOK(h, region_begin, g);
    work(iters);
    ENG_HOOK(h, region_end, g);
}

/* One synthetic decode token: 54 work units in 47 region pairs. */
static void synthetic_token(const eng_hooks *h, int64_t unit, int64_t pos)
{
    region(h, ENG_REGION_EMBED, unit);
    for (int layer = 0; layer < 4; layer++) {
        region(h, ENG_REGION_ATTENTION, 3 * unit);
        region(h, ENG_REGION_ROUTER, unit);
        for (int e = 0; e < 8; e++) {
            ENG_HOOK(h, region_begin, ENG_REGION_EXPERT_FFN);
            if (e == 0)
                region(h, ENG_REGION_EXPERT_WAIT, unit / 2);
            work(e == 0 ? unit - unit / 2 : unit);
            ENG_HOOK(h, region_end, ENG_REGION_EXPERT_FFN);
        }
    }
    region(h, ENG_REGION_LM_HEAD, 4 * unit);
    region(h, ENG_REGION_SAMPLING, unit);
    ENG_HOOK(h, token_done, pos);
}
enum { PAIRS_PER_TOKEN = 47, UNITS_PER_TOKEN = 54 };

static int open_counters(const bench_opts *o, met_counters **c, eng_err *err)
{
    if (o->list)
        return met_counters_open_list(c, o->list, &o->copts, err);
    return met_counters_open_preset(c, o->preset ? o->preset : "default", &o->copts, err);
}

static int open_regions(met_counters *c, met_regions **r, eng_err *err)
{
    met_regions_opts ro;
    met_regions_opts_default(&ro);
    return met_regions_open(r, c, &ro, err);
}

/* Thread CPU ns per begin/end pair through hook table h (CPU time, so that
 * other jobs preempting this one do not inflate it). */
static double time_pairs(const eng_hooks *h, int64_t iters)
{
    int64_t t0 = cpu_ns();
    for (int64_t i = 0; i < iters; i++) {
        ENG_HOOK(h, region_begin, ENG_REGION_ROUTER);
        ENG_HOOK(h, region_end, ENG_REGION_ROUTER);
    }
    return (double)(cpu_ns() - t0) / (double)iters;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int64_t n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return v[n / 2];
}

/* LCG steps per unit so that a token takes about token_ms (the fastest of
 * three probes: a preempted probe would make tokens short). */
static int64_t calibrate(double token_ms)
{
    int64_t probe = 1000000;
    double ns_per_iter = 0;
    for (int i = 0; i < 3; i++) {
        int64_t t0 = now_ns();
        work(probe);
        double v = (double)(now_ns() - t0) / (double)probe;
        ns_per_iter = i == 0 || v < ns_per_iter ? v : ns_per_iter;
    }
    int64_t unit = (int64_t)(token_ms * 1e6 / UNITS_PER_TOKEN / ns_per_iter);
    return unit > 1 ? unit : 1;
}

typedef struct overhead {
    double off_ns, clocks_ns, events_ns;   /* per begin/end pair         */
    double est_share;                      /* estimated share of a token */
    double token_off_ns, token_on_ns;      /* measured medians, thread CPU ns */
} overhead;

/* Median token CPU times with hooks off and on, the two alternating token
 * by token so that both see the same conditions. */
static void measure_tokens(const bench_opts *o, const eng_hooks *on, overhead *m)
{
    eng_hooks off = {0};
    int64_t unit = o->unit_iters ? o->unit_iters : calibrate(o->token_ms);
    double *t_off = malloc((size_t)o->tokens * sizeof *t_off);
    double *t_on = malloc((size_t)o->tokens * sizeof *t_on);
    m->token_off_ns = m->token_on_ns = 0;
    if (t_off && t_on) {
        synthetic_token(&off, unit, 0); /* warm-up */
        synthetic_token(on, unit, 0);
        for (int64_t i = 0; i < o->tokens; i++) {
            int64_t t0 = cpu_ns();
            synthetic_token(&off, unit, i);
            int64_t t1 = cpu_ns();
            synthetic_token(on, unit, i);
            t_off[i] = (double)(t1 - t0);
            t_on[i] = (double)(cpu_ns() - t1);
        }
        m->token_off_ns = median(t_off, o->tokens);
        m->token_on_ns = median(t_on, o->tokens);
    }
    free(t_off);
    free(t_on);
}

static int measure(const bench_opts *o, met_counters *c, overhead *m, eng_err *err)
{
    met_regions *rclk, *rev;
    int rc = open_regions(NULL, &rclk, err);
    if (rc)
        return rc;
    rc = open_regions(c, &rev, err);
    if (rc) {
        met_regions_free(rclk);
        return rc;
    }
    eng_hooks off = {0}, clk = {0}, ev = {0};
    met_regions_hooks(rclk, &clk);
    met_regions_hooks(rev, &ev);
    time_pairs(&ev, o->iters / 10 + 1); /* warm-up: thread sets made, caches hot */
    m->off_ns = time_pairs(&off, o->iters);
    m->clocks_ns = time_pairs(&clk, o->iters);
    m->events_ns = time_pairs(&ev, o->iters);
    met_regions_reset(rev);
    measure_tokens(o, &ev, m);
    m->est_share = m->token_off_ns > 0
                       ? PAIRS_PER_TOKEN * (m->events_ns - m->off_ns) / m->token_off_ns
                       : 0;
    met_regions_free(rclk);
    met_regions_free(rev);
    return ENG_OK;
}

static void report(const bench_opts *o, const met_counters *c, const overhead *m)
{
    double measured = m->token_off_ns > 0 ? m->token_on_ns / m->token_off_ns - 1 : 0;
    if (o->json) {
        json_t *j = json_pack(
            "{s:s, s:I, s:I, s:f, s:f, s:f, s:i, s:f, s:f, s:f, s:f, s:f}", "backend",
            met_backend_name(met_counters_backend(c)), "events", (json_int_t)met_counters_count(c),
            "iters", (json_int_t)o->iters, "pair_ns_off", m->off_ns, "pair_ns_clocks",
            m->clocks_ns, "pair_ns_events", m->events_ns, "pairs_per_token", PAIRS_PER_TOKEN,
            "token_ms", o->token_ms, "estimated_share", m->est_share, "token_cpu_ns_off",
            m->token_off_ns, "token_cpu_ns_on", m->token_on_ns, "measured_share", measured);
        json_dumpf(j, stdout, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
        fputc('\n', stdout);
        json_decref(j);
        return;
    }
    printf("region begin/end pair (thread CPU time), %lld iterations each, one run (backend %s, "
           "%zu events):\n",
           (long long)o->iters, met_backend_name(met_counters_backend(c)), met_counters_count(c));
    printf("  hooks off (engine: one branch)   %10.1f ns\n", m->off_ns);
    printf("  regions, clocks + rusage only    %10.1f ns\n", m->clocks_ns);
    printf("  regions, clocks + rusage + set   %10.1f ns\n", m->events_ns);
    printf("synthetic decode token (%d pairs), median thread CPU time of %lld each, off/on "
           "alternating:\n",
           PAIRS_PER_TOKEN, (long long)o->tokens);
    printf("  hooks off %.3f ms, regions + set %.3f ms\n", m->token_off_ns / 1e6,
           m->token_on_ns / 1e6);
    printf("  overhead estimated from the pair cost %.2f %%, measured %+.2f %%\n",
           100 * m->est_share, 100 * measured);
}

static int run_synthetic(const bench_opts *o, met_counters *c, eng_err *err)
{
    met_regions *r;
    int rc = open_regions(c, &r, err);
    if (rc)
        return rc;
    eng_hooks h = {0};
    met_regions_hooks(r, &h);
    int64_t unit = o->unit_iters ? o->unit_iters : calibrate(o->token_ms);
    for (int64_t t = 0; t < o->synthetic; t++)
        synthetic_token(&h, unit, t);
    if (o->json) {
        json_t *j = met_regions_json(r, 0);
        json_dumpf(j, stdout, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
        fputc('\n', stdout);
        json_decref(j);
    } else {
        met_regions_print(r, stdout);
    }
    met_regions_free(r);
    return ENG_OK;
}

static int parse_backend(const char *v, met_backend *b)
{
    if (!strcmp(v, "auto") || !strcmp(v, "papi") || !strcmp(v, "perf")) {
        *b = v[0] == 'a' ? MET_BACKEND_AUTO : v[1] == 'a' ? MET_BACKEND_PAPI : MET_BACKEND_PERF;
        return 0;
    }
    return hx_cli_usage_error("bench-counters", "--backend: '%s' is not auto, papi or perf", v);
}

static int parse_opts(int argc, char **argv, bench_opts *o)
{
    static const struct option longopts[] = {
        {"iters", required_argument, 0, 'i'},    {"tokens", required_argument, 0, 't'},
        {"token-ms", required_argument, 0, 'm'}, {"preset", required_argument, 0, 'P'},
        {"events", required_argument, 0, 'E'},   {"backend", required_argument, 0, 'B'},
        {"multiplex", no_argument, 0, 'X'},      {"synthetic", required_argument, 0, 's'},
        {"unit-iters", required_argument, 0, 'u'}, {"json", no_argument, 0, 'j'},
        {"model", required_argument, 0, 'M'},    {"steps", required_argument, 0, 'p'},
        {"prompt", required_argument, 0, 'r'},   {"threads", required_argument, 0, 'T'},
        {"prefault", no_argument, 0, 'F'},      {"no-coalesce", no_argument, 0, 'C'},
        {"help", no_argument, 0, 'h'},           {0, 0, 0, 0},
    };
    const char *cmd = "bench-counters";
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "+h", longopts, NULL)) != -1) {
        int bad = 0;
        switch (c) {
        case 'i': bad = hx_cli_parse_i64(cmd, "--iters", optarg, 1, 100000000, &o->iters); break;
        case 't': bad = hx_cli_parse_i64(cmd, "--tokens", optarg, 1, 100000, &o->tokens); break;
        case 'm': bad = hx_cli_parse_double(cmd, "--token-ms", optarg, 0.1, 10000, &o->token_ms); break;
        case 's': bad = hx_cli_parse_i64(cmd, "--synthetic", optarg, 1, 1000000, &o->synthetic); break;
        case 'u': bad = hx_cli_parse_i64(cmd, "--unit-iters", optarg, 1, INT64_C(1) << 40, &o->unit_iters); break;
        case 'M': o->engine.model = optarg; break;
        case 'p': bad = hx_cli_parse_i64(cmd, "--steps", optarg, 2, 100000, &o->engine.steps); break;
        case 'r': bad = hx_cli_parse_i64(cmd, "--prompt", optarg, 1, 100000, &o->engine.prompt); break;
        case 'T': {
            int64_t t;
            bad = hx_cli_parse_i64(cmd, "--threads", optarg, 1, 1024, &t);
            o->engine.threads = (int)t;
            break;
        }
        case 'F': o->engine.prefault = 1; break;
        case 'C': o->engine.no_coalesce = 1; break;
        case 'P': o->preset = optarg; break;
        case 'E': o->list = optarg; break;
        case 'B': bad = parse_backend(optarg, &o->copts.backend); break;
        case 'X': o->copts.multiplex = 1; break;
        case 'j': o->json = 1; break;
        case 'h': fputs(usage_text, stdout); return -1;
        default: return hx_cli_usage_error(cmd, "unknown option '%s'", argv[optind - 1]);
        }
        if (bad)
            return HX_CLI_EXIT_USAGE;
    }
    if (optind < argc)
        return hx_cli_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
    if (o->preset && o->list)
        return hx_cli_usage_error(cmd, "--preset and --events exclude each other");
    if (o->engine.model && o->synthetic)
        return hx_cli_usage_error(cmd, "--model and --synthetic exclude each other");
    return 0;
}

static void engine_report(const bench_opts *o, const met_counters *c, const hx_probe_bce_result *r)
{
    const hx_probe_bce_opts *e = &o->engine;
    if (o->json) {
        json_t *j = json_pack(
            "{s:s, s:s, s:I, s:I, s:I, s:i, s:f, s:b, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f, "
            "s:f}",
            "model", e->model, "backend", met_backend_name(met_counters_backend(c)), "events",
            (json_int_t)met_counters_count(c), "steps", (json_int_t)e->steps, "mismatches",
            (json_int_t)r->mismatches, "threads",
            e->threads, "pairs_per_token", r->pairs_per_token, "coalesce", !e->no_coalesce,
            "readings_per_token", r->readings_per_token, "token_cpu_ms_off",
            r->cpu_ms_off, "token_cpu_ms_on", r->cpu_ms_on, "cpu_ratio", r->cpu_ratio,
            "cpu_ratio_lo", r->cpu_lo, "cpu_ratio_hi", r->cpu_hi, "wall_ratio", r->wall_ratio,
            "wall_ratio_lo", r->wall_lo, "wall_ratio_hi", r->wall_hi);
        json_t *ids = json_array();
        for (int64_t i = 0; i < r->n_generated; i++)
            json_array_append_new(ids, json_integer(r->generated[i]));
        json_object_set_new(j, "tokens", ids);
        json_t *prompt = json_array();
        for (int64_t i = 0; i < r->n_prompt; i++)
            json_array_append_new(prompt, json_integer(r->prompt[i]));
        json_object_set_new(j, "prompt", prompt);
        json_dumpf(j, stdout, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
        fputc('\n', stdout);
        json_decref(j);
        return;
    }
    printf("%s: %lld decode steps, each run with counters on and off (order alternating), "
           "%d thread%s, backend %s, %zu events\n",
           e->model, (long long)e->steps, e->threads, e->threads == 1 ? "" : "s",
           met_backend_name(met_counters_backend(c)), met_counters_count(c));
    printf("  per token: %.1f region begin/end pairs, %.1f counter readings (%s)\n",
           r->pairs_per_token, r->readings_per_token,
           e->no_coalesce ? "every boundary reads" : "back-to-back regions share one");
    printf("  median step thread CPU time: off %.3f ms, on %.3f ms; logits identical on/off: "
           "%s\n",
           r->cpu_ms_off, r->cpu_ms_on,
           r->mismatches ? "NO" : "yes");
    printf("  overhead, median of pair ratios [95 %% interval]: CPU %+.2f %% [%+.2f, %+.2f], "
           "wall %+.2f %% [%+.2f, %+.2f]\n",
           100 * (r->cpu_ratio - 1), 100 * (r->cpu_lo - 1), 100 * (r->cpu_hi - 1),
           100 * (r->wall_ratio - 1), 100 * (r->wall_lo - 1), 100 * (r->wall_hi - 1));
}

static int run_engine(const bench_opts *o, met_counters *c, eng_err *err)
{
    hx_probe_bce_result r;
    int rc = hx_probe_bce_run(&o->engine, c, &r, err);
    if (!rc)
        engine_report(o, c, &r);
    if (!rc && r.mismatches)
        rc = eng_err_set(err, ENG_ESTATE, "%lld of %lld steps gave different logits with the "
                                          "counters on: the hooks changed the computation",
                         (long long)r.mismatches, (long long)o->engine.steps);
    hx_probe_bce_result_free(&r);
    return rc;
}

int hx_cli_cmd_bench_counters(int argc, char **argv)
{
    bench_opts o = {.iters = 200000, .tokens = 40, .token_ms = 20,
                    .engine = {.steps = 200, .prompt = 16, .threads = 1}};
    int rc = parse_opts(argc, argv, &o);
    if (rc)
        return rc < 0 ? HX_CLI_EXIT_OK : rc;
    eng_err err = {0};
    met_counters *c;
    rc = open_counters(&o, &c, &err);
    if (rc)
        return hx_cli_fail("bench-counters", rc, "%s", err.msg);
    o.engine.progress = !o.json && isatty(2);
    if (o.engine.model) {
        rc = run_engine(&o, c, &err);
    } else if (o.synthetic) {
        rc = run_synthetic(&o, c, &err);
    } else {
        overhead m;
        rc = measure(&o, c, &m, &err);
        if (!rc)
            report(&o, c, &m);
    }
    met_counters_free(c);
    return rc ? hx_cli_fail("bench-counters", rc, "%s", err.msg) : HX_CLI_EXIT_OK;
}
