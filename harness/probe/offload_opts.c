/*
 * offload_opts.c — the offloading options of `moebench generate` (see
 * offload_opts.h).
 *
 * Design notes. Offloading is on when a cache size is given (--cache-experts
 * or --cache-mb); the other options then shape the tiered store, and are a
 * usage error without one. --trace-in loads a routing trace (any format
 * metrics/trace.h reads) and uses its first sample as the routing of this
 * input: the oracle policies' future and the oracle prefetcher's plan. A
 * trace that does not match the run is caught by the policy (ENG_ESTATE:
 * "routing differs from the trace"); it runs the prompt token by token (the
 * future is per token) and so takes only traces whose prompt ran that way
 * (recorded with --batch 1). --trace-out records this run's routing to a
 * .moetrace file with how its prompt was batched, so one run can feed the
 * next; it changes nothing the engine computes.
 */
#include "harness/probe/probe.h"

#include "engine/formats.h"
#include "engine/lowprec.h"
#include "engine/policy.h"
#include "engine/predict.h"
#include "harness/cli/cli.h"
#include "metrics/subset.h"
#include "metrics/trace.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

const char hx_probe_offload_usage[] =
    "Expert offloading (on when a cache size is given; docs/offloading.md):\n"
    "  --cache-experts N  fast tier of N expert slots (per layer with --cache-scope layer)\n"
    "  --cache-mb M       fast tier of M MiB (split over layers with scope layer)\n"
    "  --cache-scope S    global (default) | layer\n"
    "  --policy P         lru (default), lfu, fifo, random, static, belady, fsf,\n"
    "                     hobbit, or\n"
    "                     lua:FILE.lua (a policy written in Lua; docs/policies.md)\n"
    "  --tier T           file (default: pread, O_DIRECT when possible) | link\n"
    "  --link PRESET      pcie4x16, pcie5x16, nvme, ufs4 (implies --tier link)\n"
    "  --link-gbps G      emulated link bandwidth, GB/s (implies --tier link)\n"
    "  --link-latency-us U  emulated per-load latency (implies --tier link)\n"
    "  --link-copy M      copy (default: memcpy, paced; never faster than memcpy) |\n"
    "                     map (no copy, the load time is modelled; implies --tier link)\n"
    "  --prefetch P       none (default) | oracle (needs --trace-in) | pregate |\n"
    "                     predict:FILE (a predictor from `moebench trace predictor`)\n"
    "  --prefetch-correct cancel a layer's queued prefetches its real routing does\n"
    "                     not use (ExpertFlow's cache correction)\n"
    "  --predict-kind K   predict: transition (default) | history | frequency\n"
    "  --predict-n N      predict: experts predicted per layer (default top-k)\n"
    "  --pregate-ahead N  pregate: predict layers l+1..l+N at layer l (default 1)\n"
    "  --pregate-wrap     pregate: past the last layer, predict the next token's\n"
    "                     first layers\n"
    "  --pregate-adaptive C  pregate: predict layer l+d (d >= 2) only while the\n"
    "                     nearer predictions were confident (largest predicted\n"
    "                     gate weight >= C of their sum; HOBBIT's adaptive depth)\n"
    "  --trace-in FILE    routing of this input (belady, fsf, oracle prefetch)\n"
    "  --trace-out FILE   record this run's routing (.moetrace)\n"
    "  --profile TRACE    static policy: pin the experts this trace uses most;\n"
    "                     --lp-rule edgemoe:Q: the counts of expert importance\n"
    "  --lookahead L      fsf window in tokens (default 1)\n"
    "  --hobbit-weights R,F,H,D  hobbit: weights of recency, frequency, high-precision\n"
    "                     share and layer nearness (default 1,1,1,1)\n"
    "  --no-direct        file tier: buffered reads even where O_DIRECT works\n"
    "  --loaders N        loader threads (default 1)\n"
    "  --expert-file F    file tier: read experts from this copy of the model\n"
    "  --cache-warm       start each sequence with a full cache (not belady/fsf)\n"
    "  --low-precision F  mixed precision: F is the model's companion expert file\n"
    "                     (moebench mkexperts); --lp-rule says when a load takes it\n"
    "  --lp-rule R        hobbit:T (a miss of an expert whose gate weight is below T\n"
    "                     loads the low copy), hobbit:last (the last of the top-k),\n"
    "                     hobbit:T,last (either), all (every load), edgemoe:Q (the\n"
    "                     share Q of each layer's experts least used in --profile\n"
    "                     TRACE: always low); lossy\n"
    "Expert subset (PreMoe; lossy, no cache needed; docs/policies.md):\n"
    "  --expert-subset F  route only among the experts F keeps per layer (a file\n"
    "                     from `moebench trace subset`)\n";

void hx_probe_offload_init(hx_probe_offload *x)
{
    memset(x, 0, sizeof *x);
    x->o = eng_tiered_defaults();
    x->cmd = "generate";
    x->lp_r.edgemoe = -1;
}

bool hx_probe_offload_private_dense(const hx_probe_offload *x)
{
    return x->cache_set && x->o.tier == ENG_TIER_FILE;
}

static int parse_cache(hx_probe_offload *x, int code, const char *arg)
{
    if (code == HX_PROBE_OFF_CACHE_EXPERTS) {
        int64_t n;
        int rc = hx_cli_parse_i64(x->cmd, "--cache-experts", arg, 1, 1 << 24, &n);
        x->o.cache_experts = (uint32_t)n;
        x->cache_set = true;
        return rc;
    }
    double mb;
    int rc = hx_cli_parse_double(x->cmd, "--cache-mb", arg, 1e-6, 1e9, &mb);
    x->o.cache_bytes = (uint64_t)(mb * 1048576.0);
    x->o.cache_experts = 0;
    x->cache_set = true;
    return rc;
}

static int parse_link(hx_probe_offload *x, int code, const char *arg)
{
    x->link_set = true;
    x->o.tier = ENG_TIER_LINK;
    if (code == HX_PROBE_OFF_LINK_GBPS)
        return hx_cli_parse_double(x->cmd, "--link-gbps", arg, 1e-6, 1e5, &x->o.link_gbps);
    if (code == HX_PROBE_OFF_LINK_COPY) {
        if (strcmp(arg, "copy") && strcmp(arg, "map"))
            return hx_cli_usage_error(x->cmd, "--link-copy: '%s' is not copy or map", arg);
        x->o.link_mode = strcmp(arg, "map") ? ENG_LINK_COPY : ENG_LINK_MAP;
        return 0;
    }
    if (code == HX_PROBE_OFF_LINK_LAT)
        return hx_cli_parse_double(x->cmd, "--link-latency-us", arg, 0, 1e7,
                               &x->o.link_latency_us);
    const eng_link_preset *p = eng_link_preset_find(arg);
    if (!p)
        return hx_cli_usage_error(x->cmd,
                              "--link: unknown preset '%s' (pcie4x16, pcie5x16, nvme, ufs4)", arg);
    x->o.link_gbps = p->gbps;
    x->o.link_latency_us = p->latency_us;
    return 0;
}

int hx_probe_lp_rule_parse(const char *cmd, const char *arg, hx_probe_lp_rule *r)
{
    *r = (hx_probe_lp_rule){.edgemoe = -1};
    if (!strcmp(arg, "all")) {
        r->all = true;
        return 0;
    }
    if (!strncmp(arg, "edgemoe:", 8))
        return hx_cli_parse_double(cmd, "--lp-rule edgemoe:Q", arg + 8, 0, 1, &r->edgemoe);
    if (strncmp(arg, "hobbit:", 7) || !arg[7])
        return hx_cli_usage_error(cmd, "--lp-rule: '%s' is not hobbit:T, hobbit:last, "
                                  "hobbit:T,last, all or edgemoe:Q", arg);
    char buf[64];
    snprintf(buf, sizeof buf, "%s", arg + 7);
    char *comma = strchr(buf, ',');
    if (comma) {
        if (strcmp(comma + 1, "last"))
            return hx_cli_usage_error(cmd, "--lp-rule: '%s': after the comma only 'last'", arg);
        *comma = '\0';
        r->last = true;
    }
    if (!strcmp(buf, "last")) {
        if (comma)
            return hx_cli_usage_error(cmd, "--lp-rule: '%s': 'last' twice", arg);
        r->last = true;
        return 0;
    }
    return hx_cli_parse_double(cmd, "--lp-rule hobbit:T", buf, 1e-9, 1e6, &r->threshold);
}

bool hx_probe_lp_rule_map(const hx_probe_lp_rule *r, const uint64_t *counts, int L, int E,
                          uint8_t *out)
{
    if (r->edgemoe >= 0)
        eng_lowprec_importance_map(counts, L, E, r->edgemoe, out);
    else if (r->all)
        memset(out, 1, (size_t)L * (size_t)E);
    return r->edgemoe >= 0 || r->all;
}

int hx_probe_hobbit_weights_parse(const char *cmd, const char *arg, double w[4])
{
    char buf[256], *save = NULL, *tok;
    snprintf(buf, sizeof buf, "%s", arg);
    int n = 0;
    for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (n == 4)
            return hx_cli_usage_error(cmd, "--hobbit-weights: '%s' has more than 4 numbers", arg);
        int rc = hx_cli_parse_double(cmd, "--hobbit-weights", tok, 0, 1e6, &w[n++]);
        if (rc)
            return rc;
    }
    if (n != 4)
        return hx_cli_usage_error(cmd, "--hobbit-weights: '%s' is not 4 numbers R,F,H,D", arg);
    if (!(w[0] > 0 || w[1] > 0 || w[2] > 0 || w[3] > 0))
        return hx_cli_usage_error(cmd, "--hobbit-weights: '%s': at least one weight must be "
                                  "above 0", arg);
    return 0;
}

/* --lp-rule into x->o. */
static int parse_lp(hx_probe_offload *x, const char *arg)
{
    x->lp_rule = arg;
    int rc = hx_probe_lp_rule_parse(x->cmd, arg, &x->lp_r);
    x->o.lp_threshold = x->lp_r.threshold;
    x->o.lp_last = x->lp_r.last;
    return rc;
}

int hx_probe_offload_parse(hx_probe_offload *x, int code, const char *arg)
{
    switch (code) {
    case HX_PROBE_OFF_POLICY:
        if (hx_probe_lua_policy_path(arg)) {
            eng_err err = {0};
            hx_probe_lua_policy_free(x->lua);
            x->lua = NULL;
            int rc = hx_probe_lua_policy_load(&x->lua, hx_probe_lua_policy_path(arg), &err);
            if (rc)
                return hx_cli_fail(x->cmd, rc == ENG_EIO ? ENG_EINVAL : rc, "--policy: %s",
                               err.msg);
            x->o.policy_ops = hx_probe_lua_policy_ops(x->lua);
            x->o.policy_user = hx_probe_lua_policy_user(x->lua);
        } else if (!eng_policy_find(arg)) {
            return hx_cli_usage_error(x->cmd, "--policy: unknown policy '%s'", arg);
        } else {
            x->o.policy_ops = NULL;
        }
        x->o.policy = arg;
        return 0;
    case HX_PROBE_OFF_CACHE_EXPERTS:
    case HX_PROBE_OFF_CACHE_MB: return parse_cache(x, code, arg);
    case HX_PROBE_OFF_SCOPE:
        if (strcmp(arg, "global") && strcmp(arg, "layer"))
            return hx_cli_usage_error(x->cmd, "--cache-scope: '%s' is not global or layer", arg);
        x->o.scope = strcmp(arg, "layer") ? ENG_SCOPE_GLOBAL : ENG_SCOPE_LAYER;
        return 0;
    case HX_PROBE_OFF_TIER:
        if (strcmp(arg, "file") && strcmp(arg, "link"))
            return hx_cli_usage_error(x->cmd, "--tier: '%s' is not file or link", arg);
        x->o.tier = strcmp(arg, "link") ? ENG_TIER_FILE : ENG_TIER_LINK;
        return 0;
    case HX_PROBE_OFF_LINK:
    case HX_PROBE_OFF_LINK_GBPS:
    case HX_PROBE_OFF_LINK_LAT:
    case HX_PROBE_OFF_LINK_COPY: return parse_link(x, code, arg);
    case HX_PROBE_OFF_PREFETCH:
        if (!strcmp(arg, "none"))
            x->o.prefetch = ENG_PREFETCH_NONE;
        else if (!strcmp(arg, "oracle"))
            x->o.prefetch = ENG_PREFETCH_ORACLE;
        else if (!strcmp(arg, "pregate"))
            x->o.prefetch = ENG_PREFETCH_PREGATE;
        else if (!strncmp(arg, "predict:", 8) && arg[8])
            x->o.prefetch = ENG_PREFETCH_PREDICT, x->predictor_path = arg + 8;
        else
            return hx_cli_usage_error(x->cmd, "--prefetch: '%s' is not none, oracle, pregate or "
                                      "predict:FILE", arg);
        return 0;
    case HX_PROBE_OFF_PREDICT_KIND:
        x->predict_set = true;
        if ((x->o.predict_kind = eng_predict_kind_parse(arg)) < 0)
            return hx_cli_usage_error(x->cmd, "--predict-kind: '%s' is not transition, history "
                                      "or frequency", arg);
        return 0;
    case HX_PROBE_OFF_PREDICT_N:
        x->predict_set = true;
        return hx_cli_parse_int(x->cmd, "--predict-n", arg, 1, ENG_PREDICT_MAX_EXPERTS,
                                &x->o.predict_n);
    case HX_PROBE_OFF_EXPERT_SUBSET: x->subset_path = arg; return 0;
    case HX_PROBE_OFF_TRACE_IN: x->trace_in = arg; return 0;
    case HX_PROBE_OFF_TRACE_OUT: x->trace_out = arg; return 0;
    case HX_PROBE_OFF_LOOKAHEAD:
        return hx_cli_parse_int(x->cmd, "--lookahead", arg, 1, 1 << 20, &x->o.lookahead);
    case HX_PROBE_OFF_NO_DIRECT: x->o.no_direct = true; return 0;
    case HX_PROBE_OFF_LOADERS: return hx_cli_parse_int(x->cmd, "--loaders", arg, 1, 64, &x->o.n_loaders);
    case HX_PROBE_OFF_FILE: x->o.file = arg; return 0;
    case HX_PROBE_OFF_WARM: x->o.warm = true; return 0;
    case HX_PROBE_OFF_PROFILE: x->profile_path = arg; return 0;
    case HX_PROBE_OFF_PREGATE_AHEAD:
        x->pregate_set = true;
        return hx_cli_parse_int(x->cmd, "--pregate-ahead", arg, 1, 64, &x->o.pregate_ahead);
    case HX_PROBE_OFF_PREGATE_WRAP: x->pregate_set = x->o.pregate_wrap = true; return 0;
    case HX_PROBE_OFF_PREFETCH_CORRECT: x->o.prefetch_correct = true; return 0;
    case HX_PROBE_OFF_PREGATE_ADAPTIVE:
        x->pregate_set = true;
        return hx_cli_parse_double(x->cmd, "--pregate-adaptive", arg, 1e-9, 1,
                                   &x->o.pregate_adaptive);
    case HX_PROBE_OFF_LOW_PRECISION: x->lp_path = arg; return 0;
    case HX_PROBE_OFF_LP_RULE: return parse_lp(x, arg);
    case HX_PROBE_OFF_HOBBIT_WEIGHTS:
        x->hobbit_w_set = true;
        return hx_probe_hobbit_weights_parse(x->cmd, arg, x->o.hobbit_w);
    default: return hx_cli_usage_error(x->cmd, "internal: unknown offload option %d", code);
    }
}

int hx_probe_offload_check(hx_probe_offload *x)
{
    bool other = strcmp(x->o.policy, "lru") || x->o.scope || x->link_set || x->o.tier ||
                 x->o.prefetch || x->trace_in || x->o.no_direct || x->o.file || x->o.warm ||
                 x->lp_path || x->lp_rule;
    if (other && !x->cache_set)
        return hx_cli_usage_error(x->cmd,
                              "offloading options need a cache size (--cache-experts N or "
                              "--cache-mb M)");
    if (x->link_set && x->o.tier != ENG_TIER_LINK)
        return hx_cli_usage_error(x->cmd, "--link options and --tier file do not go together");
    if (x->pregate_set && x->o.prefetch != ENG_PREFETCH_PREGATE)
        return hx_cli_usage_error(x->cmd, "--pregate-ahead/--pregate-wrap/--pregate-adaptive "
                                  "go with --prefetch pregate");
    if (x->hobbit_w_set && strcmp(x->o.policy, "hobbit"))
        return hx_cli_usage_error(x->cmd, "--hobbit-weights goes with --policy hobbit");
    if (x->predict_set && x->o.prefetch != ENG_PREFETCH_PREDICT)
        return hx_cli_usage_error(x->cmd, "--predict-kind/--predict-n go with --prefetch "
                                  "predict:FILE");
    if (x->o.prefetch_correct && x->o.prefetch == ENG_PREFETCH_NONE)
        return hx_cli_usage_error(x->cmd, "--prefetch-correct needs a prefetcher (--prefetch "
                                  "oracle, pregate or predict:FILE)");
    if (x->o.prefetch == ENG_PREFETCH_ORACLE && !x->trace_in)
        return hx_cli_usage_error(x->cmd, "--prefetch oracle needs --trace-in FILE");
    const eng_policy_ops *p = x->o.policy_ops ? x->o.policy_ops : eng_policy_find(x->o.policy);
    if ((p->flags & ENG_POLICY_NEEDS_FUTURE) && !x->trace_in)
        return hx_cli_usage_error(x->cmd, "--policy %s needs --trace-in FILE", x->o.policy);
    if (x->o.warm && (p->flags & ENG_POLICY_NEEDS_FUTURE))
        return hx_cli_usage_error(x->cmd, "--cache-warm does not go with --policy %s",
                              x->o.policy);
    const bool edgemoe = x->lp_rule && x->lp_r.edgemoe >= 0;
    if ((p->flags & ENG_POLICY_NEEDS_PROFILE) && !x->profile_path)
        return hx_cli_usage_error(x->cmd, "--policy %s needs --profile TRACE (a routing trace "
                              "of a profile run, e.g. from --trace-out)", x->o.policy);
    if (edgemoe && !x->profile_path)
        return hx_cli_usage_error(x->cmd, "--lp-rule edgemoe:Q needs --profile TRACE (a routing "
                                  "trace of a profile run, e.g. from --trace-out)");
    if (x->profile_path && !(p->flags & ENG_POLICY_NEEDS_PROFILE) && !edgemoe)
        return hx_cli_usage_error(x->cmd, "--profile goes with --policy static or --lp-rule "
                                  "edgemoe:Q only");
    if (!x->lp_path != !x->lp_rule)
        return hx_cli_usage_error(x->cmd, "--low-precision FILE and --lp-rule RULE go together");
    return 0;
}

/* Loads a trace given with OPT and checks it fits the model (same layers,
 * experts and top-k, at least one sample); 0 or the exit code. */
static int load_model_trace(const char *cmd, const char *opt, const char *path,
                            const eng_model *m, met_trace **out)
{
    eng_err err = {0};
    met_trace *t = NULL;
    int rc = hx_cli_input(cmd, opt, path);
    if (rc)
        return rc;
    if ((rc = met_trace_load(&t, path, MET_FMT_AUTO, &err)))
        return hx_cli_fail(cmd, rc, "%s: %s", opt, err.msg);
    const eng_hparams *hp = eng_model_hparams(m);
    const met_trace_info *in = &t->info;
    if (in->num_layers != hp->n_layer_moe || in->top_k != hp->n_expert_used ||
        in->num_experts != hp->n_expert || in->num_samples < 1 ||
        in->layer_offset != hp->n_layer_dense) {
        met_trace_free(t);
        return hx_cli_fail(cmd, ENG_EINVAL,
                       "%s: %s: trace of %d MoE layers from layer %d, %d experts, top-k %d, "
                       "%lld samples does not fit the model (%lld MoE layers from layer %lld, "
                       "%lld experts, top-k %lld)",
                       opt, path, in->num_layers, in->layer_offset, in->num_experts, in->top_k,
                       (long long)in->num_samples, (long long)hp->n_layer_moe,
                       (long long)hp->n_layer_dense, (long long)hp->n_expert,
                       (long long)hp->n_expert_used);
    }
    *out = t;
    return 0;
}

/* The first sample of the trace as the routing plan. */
static int load_plan(hx_probe_offload *x, const eng_model *m)
{
    met_trace *t = NULL;
    int rc = load_model_trace(x->cmd, "--trace-in", x->trace_in, m, &t);
    if (rc)
        return rc;
    const met_trace_info *in = &t->info;
    int64_t T = t->sample_start[1] - t->sample_start[0];
    met_trace_prompt pr = met_trace_prompt_of(t, 0);
    if (pr.batch > 1) { /* the replay runs the prompt token by token */
        met_trace_free(t);
        return hx_cli_fail(x->cmd, ENG_EINVAL,
                       "--trace-in %s: its prompt ran in batches of %lld tokens; the oracle "
                       "replay runs the prompt token by token and can route differently at "
                       "near-ties: record the trace with --batch 1",
                       x->trace_in, (long long)pr.batch);
    }
    size_t n = (size_t)T * (size_t)in->num_layers * (size_t)in->top_k;
    x->plan_ids = malloc((n ? n : 1) * sizeof *x->plan_ids);
    if (!x->plan_ids) {
        met_trace_free(t);
        return hx_cli_fail(x->cmd, ENG_ENOMEM, "out of memory");
    }
    const uint16_t *ids = t->ids + (size_t)t->sample_start[0] * in->num_layers * in->top_k;
    for (size_t i = 0; i < n; i++)
        x->plan_ids[i] = ids[i];
    x->plan = (eng_routing_plan){x->plan_ids, T, in->num_layers, in->top_k};
    x->o.plan = &x->plan;
    met_trace_free(t);
    return 0;
}

/* --profile: how often each (layer, expert) was chosen in the trace. */
static int load_profile(hx_probe_offload *x, const eng_model *m)
{
    met_trace *t = NULL;
    int rc = load_model_trace(x->cmd, "--profile", x->profile_path, m, &t);
    if (rc)
        return rc;
    const met_trace_info *in = &t->info;
    size_t L = (size_t)in->num_layers, E = (size_t)in->num_experts, k = (size_t)in->top_k;
    x->profile = calloc(L * E, sizeof *x->profile);
    if (!x->profile) {
        met_trace_free(t);
        return hx_cli_fail(x->cmd, ENG_ENOMEM, "out of memory");
    }
    int64_t n_tok = t->sample_start[in->num_samples];
    for (int64_t tok = 0; tok < n_tok; tok++)
        for (size_t l = 0; l < L; l++)
            for (size_t j = 0; j < k; j++)
                x->profile[l * E + t->ids[((size_t)tok * L + l) * k + j]]++;
    if (!x->lp_rule || x->lp_r.edgemoe < 0 || !strcmp(x->o.policy, "static"))
        x->o.profile = x->profile; /* the static policy's; edgemoe reads x->profile */
    met_trace_free(t);
    return 0;
}

/* --prefetch predict:FILE: the predictor, checked against the model. */
static int load_predictor(hx_probe_offload *x, const eng_model *m)
{
    eng_err err = {0};
    int rc = hx_cli_input(x->cmd, "--prefetch predict:", x->predictor_path);
    if (rc)
        return rc;
    if ((rc = eng_predictor_load(&x->predictor, x->predictor_path, &err)))
        return hx_cli_fail(x->cmd, rc, "--prefetch predict: %s", err.msg);
    const eng_hparams *hp = eng_model_hparams(m);
    eng_predictor_info pi = eng_predictor_get_info(x->predictor);
    if (pi.n_layer != hp->n_layer_moe || pi.n_expert != hp->n_expert ||
        pi.layer_offset != hp->n_layer_dense || pi.top_k != hp->n_expert_used)
        return hx_cli_fail(x->cmd, ENG_EINVAL,
                           "--prefetch predict: %s: predictor of %d MoE layers from layer %d, "
                           "%d experts, top-k %d does not fit the model (%lld from layer %lld, "
                           "%lld experts, top-k %lld)", x->predictor_path, pi.n_layer,
                           pi.layer_offset, pi.n_expert, pi.top_k, (long long)hp->n_layer_moe,
                           (long long)hp->n_layer_dense, (long long)hp->n_expert,
                           (long long)hp->n_expert_used);
    if (x->o.predict_n > hp->n_expert)
        return hx_cli_usage_error(x->cmd, "--predict-n %d: the model has %lld experts",
                                  x->o.predict_n, (long long)hp->n_expert);
    x->o.predictor = x->predictor;
    return 0;
}

/* --expert-subset FILE: the kept experts as a mask, checked against the model. */
static int load_subset(hx_probe_offload *x, const eng_model *m)
{
    eng_err err = {0};
    met_subset *ss = NULL;
    int rc = hx_cli_input(x->cmd, "--expert-subset", x->subset_path);
    if (rc)
        return rc;
    if ((rc = met_subset_load(&ss, x->subset_path, &err)))
        return hx_cli_fail(x->cmd, rc, "--expert-subset: %s", err.msg);
    const eng_hparams *hp = eng_model_hparams(m);
    if (ss->num_layers != hp->n_layer_moe || ss->num_experts != hp->n_expert ||
        ss->layer_offset != hp->n_layer_dense || ss->top_k != hp->n_expert_used) {
        rc = hx_cli_fail(x->cmd, ENG_EINVAL,
                         "--expert-subset: %s: subset of %d MoE layers from layer %d, %d "
                         "experts, top-k %d does not fit the model (%lld from layer %lld, %lld "
                         "experts, top-k %lld)", x->subset_path, ss->num_layers,
                         ss->layer_offset, ss->num_experts, ss->top_k,
                         (long long)hp->n_layer_moe, (long long)hp->n_layer_dense,
                         (long long)hp->n_expert, (long long)hp->n_expert_used);
        met_subset_free(ss);
        return rc;
    }
    x->keep = met_subset_mask(ss);
    x->kept_min = x->kept_max = ss->n_keep[0];
    for (int32_t l = 1; l < ss->num_layers; l++) {
        x->kept_min = ss->n_keep[l] < x->kept_min ? ss->n_keep[l] : x->kept_min;
        x->kept_max = ss->n_keep[l] > x->kept_max ? ss->n_keep[l] : x->kept_max;
    }
    met_subset_free(ss);
    return x->keep ? 0 : hx_cli_fail(x->cmd, ENG_ENOMEM, "out of memory");
}

const uint8_t *hx_probe_offload_keep(const hx_probe_offload *x) { return x->keep; }

static void on_routing(void *user, const eng_routing_event *ev)
{
    hx_probe_offload *x = user;
    if (x->writer)
        met_trace_writer_hook(x->writer, ev);
}

/* Stall so far when the prompt's last token is done: splits prompt and
 * decode stalls. */
static void on_token_done(void *user, int64_t pos)
{
    hx_probe_offload *x = user;
    if (!x->store || x->prompt_done || pos + 1 < x->n_prompt)
        return;
    eng_tiered_stats st;
    eng_err err;
    if (eng_tiered_get_stats(x->store, &st, &err) == ENG_OK) {
        x->prompt_stall_ns = st.total.stall_ns;
        x->prompt_load_ns = st.total.load_ns;
        x->prompt_hits = st.total.hits;
        x->prompt_accesses = st.total.accesses;
    }
    x->prompt_done = true;
}

/* --low-precision: the companion, checked against the model, and the
 * rule's per-expert map for `all`. */
static int open_lowprec(hx_probe_offload *x, const eng_model *m)
{
    int rc = hx_cli_input(x->cmd, "--low-precision", x->lp_path);
    if (rc)
        return rc;
    eng_err err = {0};
    if ((rc = eng_lowprec_open(&x->lp, m, x->lp_path, &err)))
        return hx_cli_fail(x->cmd, rc, "--low-precision: %s", err.msg);
    x->o.lowprec = x->lp;
    const eng_hparams *hp = eng_model_hparams(m);
    x->lp_always = malloc((size_t)hp->n_layer_moe * (size_t)hp->n_expert);
    if (!x->lp_always)
        return hx_cli_fail(x->cmd, ENG_ENOMEM, "out of memory");
    if (hx_probe_lp_rule_map(&x->lp_r, x->profile, (int)hp->n_layer_moe, (int)hp->n_expert,
                             x->lp_always))
        x->o.lp_always = x->lp_always;
    return 0;
}

static int open_writer(hx_probe_offload *x, const eng_model *m)
{
    met_trace_info info = hx_probe_trace_shape(m);
    eng_err err = {0};
    met_trace_writer *w;
    int rc = met_trace_writer_open(&w, x->trace_out, &info, &err);
    if (rc)
        return hx_cli_fail(x->cmd, rc, "%s", err.msg);
    x->writer = w;
    return 0;
}

int hx_probe_offload_open(hx_probe_offload *x, const eng_model *m, uint64_t seed, int64_t n_prompt,
                    int64_t *n_batch, eng_store **store, const eng_hooks **hooks)
{
    *store = NULL;
    *hooks = NULL;
    x->n_prompt = n_prompt;
    x->hooks = (eng_hooks){.user = x, .routing = on_routing, .token_done = on_token_done};
    if (x->trace_out || x->cache_set)
        *hooks = &x->hooks;
    int rc;
    if (x->trace_out && (rc = open_writer(x, m)))
        return rc;
    if (x->subset_path && (rc = load_subset(x, m)))
        return rc;
    if (!x->cache_set)
        return 0;
    if (x->trace_in && (rc = load_plan(x, m)))
        return rc;
    if (x->predictor_path && (rc = load_predictor(x, m)))
        return rc;
    if (x->profile_path && (rc = load_profile(x, m)))
        return rc;
    x->o.seed = seed;
    if (x->lp_path && (rc = open_lowprec(x, m)))
        return rc;
    const eng_hparams *hp = eng_model_hparams(m);
    uint64_t per_pool = (uint64_t)hp->n_expert * (x->o.scope ? 1 : (uint64_t)hp->n_layer_moe);
    if (x->o.cache_experts && x->o.cache_experts > per_pool) /* the store would clamp it */
        return hx_cli_usage_error(x->cmd, "--cache-experts %u: %s %llu slots hold every"
                                  " expert (%lld MoE layers x %lld experts, scope %s); give at"
                                  " most %llu", x->o.cache_experts,
                                  x->o.scope ? "per layer" : "in all", (unsigned long long)per_pool,
                                  (long long)hp->n_layer_moe, (long long)hp->n_expert,
                                  x->o.scope ? "layer" : "global", (unsigned long long)per_pool);
    if (x->lua)
        hx_probe_lua_policy_context(x->lua, &(hx_probe_lua_ctx){
            .n_layers = (int)hp->n_layer_moe, .n_experts = (int)hp->n_expert,
            .top_k = (int)hp->n_expert_used, .per_layer = x->o.scope == ENG_SCOPE_LAYER});
    eng_err err = {0};
    if ((rc = eng_store_open_tiered(&x->store, m, &x->o, &err)))
        return hx_cli_fail(x->cmd, rc, "%s", err.msg);
    eng_tiered_stats st;
    if (!x->o.cache_experts && !eng_tiered_get_stats(x->store, &st, &err) &&
        st.slots >= (uint64_t)hp->n_expert * (uint64_t)hp->n_layer_moe)
        fprintf(stderr, "moebench %s: --cache-mb holds every expert (%u slots, %.1f MiB);"
                        " nothing is offloaded\n", x->cmd, st.slots,
                (double)st.cache_bytes / 1048576.0);
    /* oracle futures index per-token accesses, and a Lua policy's positions
     * in a global pool (cfg.token_of, cfg.layer_at) assume token order: the
     * prompt runs token by token, which computes differently from an
     * untraced run, so say so */
    const bool lp_token = x->o.lp_threshold > 0 || x->o.lp_last;
    const bool per_token = x->o.plan || (x->lua && x->o.scope == ENG_SCOPE_GLOBAL) || lp_token;
    if (per_token && *n_batch != 1) {
        if (n_prompt > 1)
            fprintf(stderr, "%s: %s: the prompt runs token by token (%s)\n", x->cmd,
                    x->o.plan ? "--trace-in" : lp_token ? "--lp-rule" : "a Lua policy in a global pool",
                    x->o.plan ? "the oracle's future is per token"
                    : lp_token ? "the rule reads each token's gate weights"
                              : "its positions follow token order");
        *n_batch = 1;
    }
    *store = x->store;
    return 0;
}

int hx_probe_offload_set_prompt(hx_probe_offload *x, int64_t n_prompt, int64_t n_batch)
{
    if (!x->writer)
        return 0;
    eng_err err = {0};
    met_trace_prompt p = {n_prompt, n_prompt ? n_batch : 0};
    int rc = met_trace_writer_set_prompt(x->writer, p, &err);
    return rc ? hx_cli_fail(x->cmd, rc, "--trace-out: %s", err.msg) : 0;
}

int hx_probe_offload_finish(hx_probe_offload *x)
{
    if (!x->writer)
        return 0;
    eng_err err = {0};
    int rc = met_trace_writer_close(x->writer, &err);
    x->writer = NULL;
    return rc ? hx_cli_fail(x->cmd, rc, "%s", err.msg) : 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Percentile (nearest rank) of n values; 0 when n == 0. */
static double pct(const double *sorted, int64_t n, double p)
{
    if (n == 0)
        return 0;
    int64_t i = (int64_t)ceil(p / 100.0 * (double)n) - 1;
    return sorted[i < 0 ? 0 : (i >= n ? n - 1 : i)];
}

/* The mixed-precision counters (with --low-precision). */
static void lp_json(json_t *o, const eng_tiered_counts *c)
{
    json_object_set_new(o, "lp_loads", json_integer((json_int_t)c->lp_loads));
    json_object_set_new(o, "lp_bytes", json_integer((json_int_t)c->lp_bytes));
    json_object_set_new(o, "lp_served", json_integer((json_int_t)c->lp_served));
    json_object_set_new(o, "lp_upgrades", json_integer((json_int_t)c->lp_upgrades));
    json_object_set_new(o, "prefetch_low", json_integer((json_int_t)c->pf_low));
}

/* With --prefetch-correct: what the correction cancelled. */
static void correct_json(json_t *o, const eng_tiered_counts *c)
{
    json_object_set_new(o, "prefetch_cancelled", json_integer((json_int_t)c->pf_cancelled));
    json_object_set_new(o, "bytes_cancelled", json_integer((json_int_t)c->bytes_cancelled));
}

/* With --low-precision: the counters (total and per layer) and the
 * companion's configuration into cache object c. */
static void lp_config_json(const hx_probe_offload *x, json_t *c, json_t *layers,
                           const eng_tiered_stats *st)
{
    lp_json(c, &st->total);
    for (int l = 0; l < st->n_layer; l++)
        lp_json(json_array_get(layers, (size_t)l), &st->layers[l]);
    json_object_set_new(c, "low_precision", json_string(x->lp_path));
    json_object_set_new(c, "lp_type", json_string(eng_type_name(eng_lowprec_type(x->lp))));
    json_object_set_new(c, "lp_rule", json_string(x->lp_rule));
    json_object_set_new(c, "held_bytes", json_integer((json_int_t)st->held_bytes));
}

static json_t *counts_json(const eng_tiered_counts *c)
{
    json_t *o = json_object();
    json_object_set_new(o, "accesses", json_integer((json_int_t)c->accesses));
    json_object_set_new(o, "hits", json_integer((json_int_t)c->hits));
    json_object_set_new(o, "misses", json_integer((json_int_t)c->misses));
    json_object_set_new(o, "hit_rate",
                        json_real(c->accesses ? (double)c->hits / (double)c->accesses : 0));
    json_object_set_new(o, "prefetch_issued", json_integer((json_int_t)c->pf_issued));
    json_object_set_new(o, "prefetch_useful", json_integer((json_int_t)c->pf_useful));
    json_object_set_new(o, "prefetch_late", json_integer((json_int_t)c->pf_late));
    json_object_set_new(o, "prefetch_wasted", json_integer((json_int_t)c->pf_wasted));
    json_object_set_new(o, "bytes_demand", json_integer((json_int_t)c->bytes_demand));
    json_object_set_new(o, "bytes_prefetch", json_integer((json_int_t)c->bytes_prefetch));
    json_object_set_new(o, "evictions", json_integer((json_int_t)c->evictions));
    json_object_set_new(o, "stall_ms", json_real((double)c->stall_ns / 1e6));
    json_object_set_new(o, "load_ms", json_real((double)c->load_ns / 1e6));
    double hidden = c->load_ns > c->stall_ns ? (double)(c->load_ns - c->stall_ns) : 0;
    json_object_set_new(o, "overlap_ms", json_real(hidden / 1e6));
    json_object_set_new(o, "prefetch_useful_load_ms", json_real((double)c->pf_useful_load_ns / 1e6));
    json_object_set_new(o, "prefetch_late_stall_ms", json_real((double)c->pf_late_stall_ns / 1e6));
    double hid = c->pf_useful_load_ns > c->pf_late_stall_ns
                     ? (double)(c->pf_useful_load_ns - c->pf_late_stall_ns) : 0;
    json_object_set_new(o, "prefetch_hidden_ms", json_real(hid / 1e6));
    json_object_set_new(o, "predicted", json_integer((json_int_t)c->pred_made));
    json_object_set_new(o, "predicted_used", json_integer((json_int_t)c->pred_used));
    json_object_set_new(o, "prediction_accuracy",
                        json_real(c->pred_made ? (double)c->pred_used / (double)c->pred_made : 0));
    return o;
}

void hx_probe_offload_json(const hx_probe_offload *x, json_t *root, const double *decode_ms, int64_t n)
{
    if (x->keep)
        json_object_set_new(root, "expert_subset",
                            json_pack("{s:s, s:i, s:i}", "file", x->subset_path, "kept_min",
                                      x->kept_min, "kept_max", x->kept_max));
    if (!x->store)
        return;
    eng_tiered_stats st;
    eng_err err;
    if (eng_tiered_get_stats(x->store, &st, &err))
        return;
    json_t *c = counts_json(&st.total);
    uint64_t dstall = st.total.stall_ns - (x->prompt_done ? x->prompt_stall_ns : 0);
    json_object_set_new(c, "prompt_stall_ms", json_real((double)(st.total.stall_ns - dstall) / 1e6));
    json_object_set_new(c, "decode_stall_ms", json_real((double)dstall / 1e6));
    /* decode alone: its hit rate; the share of its load time hidden */
    uint64_t dacc = st.total.accesses - x->prompt_accesses, dhit = st.total.hits - x->prompt_hits;
    json_object_set_new(c, "decode_hit_rate", json_real(dacc ? (double)dhit / (double)dacc : 0));
    uint64_t dload = st.total.load_ns - (x->prompt_done ? x->prompt_load_ns : 0);
    json_object_set_new(c, "decode_load_ms", json_real((double)dload / 1e6));
    json_object_set_new(c, "decode_overlap_ms",
                        json_real(dload > dstall ? (double)(dload - dstall) / 1e6 : 0));
    json_object_set_new(c, "policy", json_string(x->o.policy));
    if (!strcmp(x->o.policy, "hobbit")) {
        const double *w = x->o.hobbit_w;
        const bool dflt = !(w[0] > 0 || w[1] > 0 || w[2] > 0 || w[3] > 0);
        json_object_set_new(c, "hobbit_weights",
                            json_pack("[f,f,f,f]", dflt ? 1.0 : w[0], dflt ? 1.0 : w[1],
                                      dflt ? 1.0 : w[2], dflt ? 1.0 : w[3]));
    }
    json_object_set_new(c, "scope", json_string(x->o.scope ? "layer" : "global"));
    json_object_set_new(c, "warm", json_boolean(x->o.warm));
    json_object_set_new(c, "slots", json_integer(st.slots));
    json_object_set_new(c, "expert_bytes", json_integer((json_int_t)st.slot_bytes));
    json_object_set_new(c, "cache_bytes", json_integer((json_int_t)st.cache_bytes));
    json_object_set_new(c, "tier", json_string(x->o.tier ? "link" : "file"));
    json_object_set_new(c, "io_mode", json_string(st.io_mode));
    json_object_set_new(c, "dense_weights",
                        json_string(hx_probe_offload_private_dense(x) ? "private" : "mapped"));
    static const char *const pf_names[] = {"none", "oracle", "pregate", "predict"};
    json_object_set_new(c, "prefetch", json_string(pf_names[x->o.prefetch]));
    if (x->o.prefetch == ENG_PREFETCH_PREDICT) {
        json_object_set_new(c, "predictor", json_string(x->predictor_path));
        json_object_set_new(c, "predict_kind",
                            json_string(eng_predict_kind_name(x->o.predict_kind)));
        json_object_set_new(c, "predict_n", json_integer(x->o.predict_n));
    }
    if (x->o.prefetch == ENG_PREFETCH_PREGATE) {
        json_object_set_new(c, "pregate_ahead",
                            json_integer(x->o.pregate_ahead > 0 ? x->o.pregate_ahead : 1));
        json_object_set_new(c, "pregate_wrap", json_boolean(x->o.pregate_wrap));
        if (x->o.pregate_adaptive > 0) {
            json_object_set_new(c, "pregate_adaptive", json_real(x->o.pregate_adaptive));
            json_object_set_new(c, "pregate_skipped",
                                json_integer((json_int_t)st.total.pg_skipped));
        }
    }
    if (x->o.tier == ENG_TIER_LINK) {
        json_object_set_new(c, "link_gbps", json_real(x->o.link_gbps));
        json_object_set_new(c, "link_latency_us", json_real(x->o.link_latency_us));
        json_object_set_new(c, "link_mode",
                            json_string(x->o.link_mode == ENG_LINK_MAP ? "map" : "copy"));
        json_object_set_new(c, "link_target_ms", json_real(st.link_target_ns / 1e6));
        json_object_set_new(c, "link_actual_ms", json_real(st.link_actual_ns / 1e6));
    }
    double *s = malloc((size_t)(n > 0 ? n : 1) * sizeof *s);
    if (s) {
        memcpy(s, decode_ms, (size_t)n * sizeof *s);
        qsort(s, (size_t)n, sizeof *s, cmp_double);
        json_object_set_new(c, "decode_ms_p50", json_real(pct(s, n, 50)));
        json_object_set_new(c, "decode_ms_p90", json_real(pct(s, n, 90)));
        json_object_set_new(c, "decode_ms_p99", json_real(pct(s, n, 99)));
        free(s);
    }
    json_t *layers = json_array();
    for (int l = 0; l < st.n_layer; l++)
        json_array_append_new(layers, counts_json(&st.layers[l]));
    if (x->lp)
        lp_config_json(x, c, layers, &st);
    if (x->o.prefetch_correct) {
        json_object_set_new(c, "prefetch_correct", json_true());
        correct_json(c, &st.total);
        for (int l = 0; l < st.n_layer; l++)
            correct_json(json_array_get(layers, (size_t)l), &st.layers[l]);
    }
    json_object_set_new(c, "layers", layers);
    json_object_set_new(root, "cache", c);
    json_object_set_new(root, "accesses", json_integer((json_int_t)st.total.accesses));
    json_object_set_new(root, "hits", json_integer((json_int_t)st.total.hits));
    json_object_set_new(root, "misses", json_integer((json_int_t)st.total.misses));
}

void hx_probe_offload_print(const hx_probe_offload *x, FILE *f, const double *decode_ms, int64_t n,
                      double prefill_ms)
{
    if (!x->store)
        return;
    eng_tiered_stats st;
    eng_err err;
    if (eng_tiered_get_stats(x->store, &st, &err))
        return;
    const eng_tiered_counts *c = &st.total;
    double sum = 0;
    for (int64_t i = 0; i < n; i++)
        sum += decode_ms[i];
    uint64_t pstall = x->prompt_done ? x->prompt_stall_ns : 0;
    fprintf(f,
            "cache: %s %s, %u slots (%.1f MiB), tier %s (%s): %llu accesses, %llu hits, "
            "%llu misses, hit rate %.2f%%\n",
            x->o.policy, x->o.scope ? "per layer" : "global", st.slots,
            (double)st.cache_bytes / 1048576.0, x->o.tier ? "link" : "file", st.io_mode,
            (unsigned long long)c->accesses, (unsigned long long)c->hits,
            (unsigned long long)c->misses,
            c->accesses ? 100.0 * (double)c->hits / (double)c->accesses : 0.0);
    fprintf(f,
            "cache: read %.1f MiB (demand %.1f, prefetch %.1f), stall %.1f ms in the prompt "
            "(%.1f%% of it), %.1f ms in decode (%.1f%% of it), load %.1f ms; prefetch issued %llu, useful %llu, late %llu, wasted %llu\n",
            (double)(c->bytes_demand + c->bytes_prefetch) / 1048576.0,
            (double)c->bytes_demand / 1048576.0, (double)c->bytes_prefetch / 1048576.0,
            (double)pstall / 1e6,
            prefill_ms > 0 ? 100.0 * (double)pstall / 1e6 / prefill_ms : 0.0,
            (double)(c->stall_ns - pstall) / 1e6,
            sum > 0 ? 100.0 * (double)(c->stall_ns - pstall) / 1e6 / sum : 0.0,
            (double)c->load_ns / 1e6, (unsigned long long)c->pf_issued,
            (unsigned long long)c->pf_useful, (unsigned long long)c->pf_late,
            (unsigned long long)c->pf_wasted);
    if (x->o.prefetch == ENG_PREFETCH_PREDICT)
        fprintf(f, "cache: predict %s: %llu experts predicted, %llu used (accuracy %.2f%%), "
                   "%.1f ms of right predictions' loads hidden\n",
                eng_predict_kind_name(x->o.predict_kind), (unsigned long long)c->pred_made,
                (unsigned long long)c->pred_used,
                c->pred_made ? 100.0 * (double)c->pred_used / (double)c->pred_made : 0.0,
                c->pf_useful_load_ns > c->pf_late_stall_ns
                    ? (double)(c->pf_useful_load_ns - c->pf_late_stall_ns) / 1e6 : 0.0);
    if (x->o.prefetch_correct)
        fprintf(f, "cache: correction: %llu queued prefetches cancelled (%.1f MiB not read)\n",
                (unsigned long long)c->pf_cancelled, (double)c->bytes_cancelled / 1048576.0);
    if (x->o.pregate_adaptive > 0)
        fprintf(f, "cache: pregate adaptive (confidence %g): %llu predicted layers skipped\n",
                x->o.pregate_adaptive, (unsigned long long)c->pg_skipped);
    if (x->lp)
        fprintf(f, "cache: low precision (%s, %s): %llu loads (%.1f MiB), %llu of %llu accesses "
                   "computed low, %llu upgrades, %llu of %llu prefetches low\n",
                eng_type_name(eng_lowprec_type(x->lp)), x->lp_rule,
                (unsigned long long)c->lp_loads, (double)c->lp_bytes / 1048576.0,
                (unsigned long long)c->lp_served, (unsigned long long)c->accesses,
                (unsigned long long)c->lp_upgrades, (unsigned long long)c->pf_low,
                (unsigned long long)c->pf_issued);
}

void hx_probe_offload_free(hx_probe_offload *x)
{
    if (x->writer) {
        eng_err err;
        (void)met_trace_writer_close(x->writer, &err);
    }
    eng_store_free(x->store);
    eng_lowprec_free(x->lp); /* after the store that reads it */
    free(x->lp_always);
    hx_probe_lua_policy_free(x->lua);
    free(x->profile);
    free(x->plan_ids);
    eng_predictor_free(x->predictor);
    free(x->keep);
    memset(x, 0, sizeof *x);
}
