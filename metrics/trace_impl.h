/*
 * trace_impl.h — internals shared by the trace files (trace.c, trace_file.c,
 * trace_json.c, trace_csv.c, trace_st.c). Not part of the public contract.
 */
#ifndef MET_TRACE_IMPL_H
#define MET_TRACE_IMPL_H

#include "metrics/trace.h"

/* Shape limits and overflow safety of an info record; `what` names it. */
int met_trace_info_check(const met_trace_info *in, const char *what, eng_err *err);

/* ids[k] of one (sample s, token tok, layer): each < E, none repeated. */
int met_ids_check(const uint16_t *ids, int32_t k, int32_t E, const char *what, int64_t s,
                  int64_t tok, int32_t layer, eng_err *err);

/* A sample's prompt batching against its T tokens (met_trace_prompt). */
int met_prompt_check(met_trace_prompt p, int64_t T, const char *what, int64_t s, eng_err *err);

int met_trace_load_moetrace(met_trace **out, const char *path, eng_err *err);
int met_trace_load_json(met_trace **out, const char *path, eng_err *err);
int met_trace_load_csv(met_trace **out, const char *path, eng_err *err);
int met_trace_load_st(met_trace **out, const char *path, eng_err *err);
int met_trace_save_json(const met_trace *t, const char *path, eng_err *err);
int met_trace_save_csv(const met_trace *t, const char *path, eng_err *err);
int met_trace_save_st(const met_trace *t, const char *path, eng_err *err);

#endif
