/* cli_impl.h — one entry point per subcommand (harness/cli/cmd_NAME.c); the
 * table that maps names to them is in commands.c. */
#ifndef HX_CLI_IMPL_H
#define HX_CLI_IMPL_H

int hx_cli_cmd_events(int argc, char **argv);
int hx_cli_cmd_generate(int argc, char **argv);
int hx_cli_cmd_perplexity(int argc, char **argv);
int hx_cli_cmd_bench_sys(int argc, char **argv);
int hx_cli_cmd_info(int argc, char **argv);
int hx_cli_cmd_tokenize(int argc, char **argv);
int hx_cli_cmd_mkmodel(int argc, char **argv);
int hx_cli_cmd_mkexperts(int argc, char **argv);
int hx_cli_cmd_metrics(int argc, char **argv);
int hx_cli_cmd_trace(int argc, char **argv);
/* `trace predictor` and `trace subset` (cmd_trace_build.c), argv[0] = the subcommand. */
int hx_cli_trace_predictor(int argc, char **argv);
int hx_cli_trace_subset(int argc, char **argv);
int hx_cli_cmd_simulate(int argc, char **argv);
int hx_cli_cmd_bench_counters(int argc, char **argv);
int hx_cli_cmd_run(int argc, char **argv);
int hx_cli_cmd_query(int argc, char **argv);
int hx_cli_cmd_runs(int argc, char **argv);
int hx_cli_cmd_merge(int argc, char **argv);
int hx_cli_cmd_export(int argc, char **argv);
int hx_cli_cmd_compare(int argc, char **argv);
int hx_cli_cmd_regress(int argc, char **argv);
int hx_cli_cmd_report(int argc, char **argv);
int hx_cli_cmd_trend(int argc, char **argv);

#endif
