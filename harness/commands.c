/* commands.c — the subcommand table, in the order `moebench --help` lists it. */
#include "harness/cli.h"
#include "harness/commands.h"

#include <stddef.h>

const hx_command hx_commands[] = {
    {"events", "list PAPI/libpfm4 events and whether each can be counted here", hx_cmd_events},
    {"metrics", "local routing consistency of a trace: SRP, SCH, LRU/LFU/Belady curves", hx_cmd_metrics},
    {"trace", "routing traces: convert between formats, statistics, synthesis", hx_cmd_trace},
    {NULL, NULL, NULL},
};
