/*
 * trace_opts.h — option parsers shared by `moebench trace` and `moebench
 * metrics`. Each prints its own usage error and returns HX_EXIT_USAGE, or 0.
 */
#ifndef HX_TRACE_OPTS_H
#define HX_TRACE_OPTS_H

#include "metrics/trace.h"

#include <stdint.h>

/* "4,16,64,256": at most 64 distinct lengths in 1..1e6. */
int hx_parse_seg_lens(const char *cmd, const char *val, int32_t *segs, int *n);
/* "0,3,8-15": distinct layer numbers 0..MET_TRACE_MAX_LAYERS-1 (malloc'd). */
int hx_parse_layers(const char *cmd, const char *val, int32_t **layers, int *n);
/* moetrace|json|csv|safetensors */
int hx_parse_format(const char *cmd, const char *val, met_trace_format *out);

#endif
