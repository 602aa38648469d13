/*
 * quality.h — what a run costs in output quality: perplexity with
 * llama-perplexity's conventions, the KL divergence of a run's
 * next-token distributions from a base run's (llama-perplexity's
 * --kl-divergence), and the base file (.klbase) that carries the base
 * run's log-probabilities from one run to the next. docs/quality.md
 * describes the figures and the file format.
 *
 * Conventions (llama.cpp 82bb485 tools/perplexity/perplexity.cpp):
 *  - a scored position's negative log-likelihood is computed as its
 *    log_softmax does: the maximum logit m in float, the sum of
 *    expf(l_i - m) in double, nll = -((l_target - m) - log(sum));
 *  - perplexity = exp(mean nll) and its uncertainty
 *    ppl * sqrt((mean(nll^2) - mean(nll)^2) / (count - 1));
 *  - KL at a position = sum over the base's tokens with log p_base > -16 of
 *    p_base * (log p_base - log p), the log-probabilities in float
 *    (l_i - (m + log(sum))); top-1 agreement: the first maximum of both
 *    runs' logits is the same token; the mean's uncertainty and the
 *    percentiles as llama.cpp's (R type 7 interpolation).
 * Each position's log-probabilities are computed by one function for the
 * base and for the run, so a run with bit-identical logits has KL exactly 0.
 *
 * Thread-safety: the accumulators and files are single-thread objects;
 * the row functions are pure.
 */
#ifndef MET_QUALITY_H
#define MET_QUALITY_H

#include "engine/err.h"

#include <stdbool.h>
#include <stdint.h>

/* Log-probabilities at or below this are not kept in a base row and do not
 * count in KL (llama.cpp's cutoff: p < 1.1e-7). */
#define MET_QUALITY_LP_MIN (-16.0f)

/* -log p(target) of one row of logits [n_vocab], as llama-perplexity. */
double met_quality_nll(const float *logits, int64_t n_vocab, int32_t target);

/* Sums for a perplexity (and its uncertainty). Zero-initialise. */
typedef struct met_quality_ppl {
    double nll, nll2;        /* sum of nll and of nll^2                 */
    int64_t count;           /* positions scored                        */
} met_quality_ppl;

void met_quality_ppl_add(met_quality_ppl *p, double nll);
/* exp(mean nll); *err = the uncertainty above, NAN when count < 2 or the
 * variance is not positive (llama.cpp then prints no estimate). ppl is NAN
 * when count == 0. */
double met_quality_ppl_value(const met_quality_ppl *p, double *err);

/* What a base run keeps of one scored position. */
typedef struct met_quality_row {
    double nll;              /* -log p_base(target), met_quality_nll     */
    int32_t top1;            /* first maximum of the base's logits       */
    int64_t n;               /* entries kept                             */
    int32_t *id;             /* [n] ascending ids; NULL when dense (n = n_vocab,
                                lp[i] is token i's)                     */
    float *lp;               /* [n] log-probabilities                    */
} met_quality_row;

/* Fills r from logits [n_vocab] and the target: every log-probability >
 * MET_QUALITY_LP_MIN, stored sparse (r->id = id_buf, r->lp = lp_buf) or
 * dense (all n_vocab, r->id = NULL, r->lp = lp_buf), whichever takes fewer
 * bytes in the file. id_buf and lp_buf hold n_vocab entries each. */
void met_quality_row_of(met_quality_row *r, const float *logits, int64_t n_vocab,
                        int32_t target, int32_t *id_buf, float *lp_buf);

/* KL(base || run) at one position (the convention above), and the run's
 * first maximum in *top1. lp_buf: scratch of n_vocab floats (not base->lp). */
double met_quality_kl(const met_quality_row *base, const float *logits, int64_t n_vocab,
                      int32_t *top1, float *lp_buf);

/* Sums of a run against its base. Zero-initialise; free with
 * met_quality_kl_free. */
typedef struct met_quality_kl_acc {
    met_quality_ppl run, base;   /* nll sums of the run and the base    */
    double nll_nll_base;         /* sum of nll * nll_base (covariance)  */
    double kl_sum, kl_sum2;
    int64_t same_top;            /* positions whose top-1 agree         */
    double *kl;                  /* [n] per position, for percentiles    */
    int64_t n, cap;
} met_quality_kl_acc;

/* One position: the run's nll and logits against the base row. ENG_ENOMEM
 * when the per-position array cannot grow. */
int met_quality_kl_add(met_quality_kl_acc *a, const met_quality_row *base, const float *logits,
                       int64_t n_vocab, double nll, float *lp_buf, eng_err *err);

typedef struct met_quality_kl_result {
    int64_t count;
    double kl_mean, kl_mean_err; /* err: llama.cpp's; 0 for <= 10 positions */
    double kl_median, kl_p99, kl_max;
    double top1, top1_err;       /* fraction of positions agreeing, 0..1  */
    double ppl, ppl_err, ppl_base, ppl_base_err;
    double ppl_delta, ppl_delta_err; /* ppl - ppl_base, llama.cpp's error  */
} met_quality_kl_result;

/* The figures; sorts a->kl. NAN where undefined (no positions). */
void met_quality_kl_result_of(met_quality_kl_acc *a, met_quality_kl_result *out);
void met_quality_kl_free(met_quality_kl_acc *a);

/* ---- the base file --------------------------------------------------------- */

/* What a base run was: the file must match the run compared with it. */
typedef struct met_quality_base_info {
    const char *model;       /* model file as given (reader: owned by it) */
    uint64_t model_size;     /* its size in bytes                        */
    int64_t n_vocab;
    int64_t n_ctx;           /* tokens per chunk                         */
    int64_t n_chunks;
    int64_t first;           /* first scored position of a chunk (n_ctx/2) */
    int64_t n_batch;         /* how the base evaluated a chunk (1: token by token) */
    int32_t bos;             /* token put first in every chunk; -1: none */
    const int32_t *tokens;   /* [n_chunks * n_ctx] the text's tokens, before
                                the BOS replacement (reader: owned by it) */
} met_quality_base_info;

/* Positions a chunk scores: first .. n_ctx - 2. */
static inline int64_t met_quality_scored(int64_t n_ctx, int64_t first)
{
    return n_ctx - 1 - first;
}

typedef struct met_quality_base_writer met_quality_base_writer;
typedef struct met_quality_base_reader met_quality_base_reader;

/* Creates path (replaced atomically at close: written to path.tmp first)
 * and writes the header. ENG_EINVAL for inconsistent info, ENG_EIO. */
int met_quality_base_create(met_quality_base_writer **out, const char *path,
                            const met_quality_base_info *info, eng_err *err);
/* The next row, in chunk then position order. */
int met_quality_base_write(met_quality_base_writer *w, const met_quality_row *r, eng_err *err);
/* After exactly n_chunks * scored rows: writes the end mark, renames into
 * place and frees w. Fewer rows: ENG_ESTATE, nothing left at path. */
int met_quality_base_close(met_quality_base_writer *w, eng_err *err);
/* Frees w and removes the temporary file (after an error). */
void met_quality_base_abort(met_quality_base_writer *w);

/* Opens and checks a base file: magic, version, every count against the
 * bytes present, the end mark (an unfinished file is refused). ENG_EIO
 * (unreadable), ENG_EFORMAT (not a base file, damaged; the message names
 * the field). */
int met_quality_base_open(met_quality_base_reader **out, const char *path, eng_err *err);
const met_quality_base_info *met_quality_base_info_of(const met_quality_base_reader *r);
/* The next row (buffers owned by the reader, valid until the next call).
 * ENG_EFORMAT for a damaged row (ids out of order or range, a log-prob
 * that is not finite or > 0), ENG_ESTATE past the last row. */
int met_quality_base_next(met_quality_base_reader *r, met_quality_row *row, eng_err *err);
void met_quality_base_free(met_quality_base_reader *r);

#endif
