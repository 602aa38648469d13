/* commands.c — the subcommand table, in the order `moebench --help` lists it. */
#include "harness/cli.h"
#include "harness/commands.h"

#include <stddef.h>

const hx_command hx_commands[] = {
    {"events", "list PAPI/libpfm4 events and whether each can be counted here", hx_cmd_events},
    {"generate", "run a GGUF model on a prompt: text, tokens, prefill/decode speed", hx_cmd_generate},
    {"bench-sys", "measure memory read bandwidth and OpenBLAS sgemm FLOP/s here", hx_cmd_bench_sys},
    {"metrics", "local routing consistency of a trace: SRP, SCH, LRU/LFU/Belady curves", hx_cmd_metrics},
    {"simulate", "replay a routing trace through a cache policy and a cost model", hx_cmd_simulate},
    {"info", "what a GGUF file holds: architecture, hyper-parameters, tensors, expert bytes", hx_cmd_info},
    {"mkmodel", "write a synthetic MoE model (GGUF) from a preset", hx_cmd_mkmodel},
    {NULL, NULL, NULL},
};
