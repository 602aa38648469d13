/* commands.c — the subcommand table, in the order `moebench --help` lists it. */
#include "harness/cli.h"
#include "harness/commands.h"

#include <stddef.h>

const hx_command hx_commands[] = {
    {"events", "list PAPI/libpfm4 events and whether each can be counted here", hx_cmd_events},
    {"info", "what a GGUF file holds: architecture, hyper-parameters, tensors, expert bytes", hx_cmd_info},
    {"mkmodel", "write a synthetic MoE model (GGUF) from a preset", hx_cmd_mkmodel},
    {NULL, NULL, NULL},
};
