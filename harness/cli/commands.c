/* commands.c — the subcommand table, in the order `moebench --help` lists it. */
#include "harness/cli/cli.h"
#include "harness/cli/cli_impl.h"

#include <stddef.h>

const hx_cli_command hx_cli_commands[] = {
    {"events", "list PAPI/libpfm4 events and whether each can be counted here", hx_cli_cmd_events},
    {"generate", "run a GGUF model on a prompt: text, tokens, prefill/decode speed", hx_cli_cmd_generate},
    {"perplexity", "perplexity of a model on a text (llama-perplexity's way), KL against a base", hx_cli_cmd_perplexity},
    {"bench-sys", "measure memory read bandwidth and OpenBLAS sgemm FLOP/s here", hx_cli_cmd_bench_sys},
    {"info", "what a GGUF file holds: architecture, hyper-parameters, tensors, expert bytes", hx_cli_cmd_info},
    {"tokenize", "a text through a GGUF file's tokenizer: ids and pieces", hx_cli_cmd_tokenize},
    {"mkmodel", "write a synthetic MoE model (GGUF) from a preset", hx_cli_cmd_mkmodel},
    {"mkexperts", "write a model's experts in a lower precision (companion file)", hx_cli_cmd_mkexperts},
    {"metrics", "local routing consistency of a trace: SRP, SCH, LRU/LFU/Belady curves", hx_cli_cmd_metrics},
    {"trace", "routing traces: convert between formats, statistics, synthesis", hx_cli_cmd_trace},
    {"simulate", "replay a routing trace through a cache policy and a cost model", hx_cli_cmd_simulate},
    {"bench-counters", "cost of per-region counters; synthetic region table", hx_cli_cmd_bench_counters},
    {"run", "run a Lua experiment suite into the results database", hx_cli_cmd_run},
    {"query", "read-only SQL on the results database (table, CSV, JSON)", hx_cli_cmd_query},
    {"runs", "list the most recent runs of the results database", hx_cli_cmd_runs},
    {"merge", "combine results databases (shards) without duplicates", hx_cli_cmd_merge},
    {"export", "write one run with all its results as JSON or CSV", hx_cli_cmd_export},
    {"compare", "compare two runs: ratios with bootstrap intervals, rank-test p-values", hx_cli_cmd_compare},
    {"regress", "check a run against a baseline run; exit 1 on a regression", hx_cli_cmd_regress},
    {"trend", "a suite's history over runs, with change points (text, JSON, SVG)", hx_cli_cmd_trend},
    {"report", "one run as a report (Markdown/HTML), or every run as an HTML dashboard", hx_cli_cmd_report},
    {NULL, NULL, NULL},
};
