/*
 * cmd_perplexity.c — `moebench perplexity`: the perplexity of a model on a
 * text with llama-perplexity's conventions (llama.cpp 82bb485
 * tools/perplexity/perplexity.cpp, function perplexity), under any
 * offloading option of `generate`, and the KL divergence of a run from a
 * base run (its kl_divergence). docs/quality.md has the definitions.
 *
 * The run, as llama-perplexity's:
 *  - tokens: the text (-f, one trailing newline dropped, as llama.cpp's -f
 *    does) through the file's tokenizer with BOS/EOS as the file says and
 *    special tokens as text (common_tokenize(..., add_special = true,
 *    parse_special = false)); or ids given as they are (--tokens-file);
 *  - at least 2 * ctx tokens; chunks c = 0 .. min(--chunks, n / ctx) - 1
 *    of tokens [c ctx, (c + 1) ctx); the KV cache emptied before each;
 *    when the vocabulary adds BOS, BOS replaces the chunk's first token;
 *  - a chunk runs in batches of --batch from position 0; the logits of
 *    positions first = ctx / 2 .. ctx - 2 predict the next token, whose
 *    -log p is averaged over every chunk: PPL = exp(mean) with its
 *    uncertainty (metrics/quality.h).
 * Logits come from eng_session_eval_logits (each row by the decode head).
 *
 * --kl-base writes every scored position's log-probabilities (a .klbase
 * file, metrics/quality.h); --kl-against reads one, checks it is the same
 * text, context and model, and compares position by position.
 */
#include "engine/gguf.h"
#include "engine/session.h"
#include "engine/store_tiered.h"
#include "engine/tokenizer.h"
#include "harness/cli/cli.h"
#include "harness/cli/cli_impl.h"
#include "harness/probe/probe.h"
#include "metrics/quality.h"
#include "metrics/trace.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>

#define CMD "perplexity"

static const char usage_text[] =
    "usage: moebench perplexity -m FILE.gguf (-f TEXT | --tokens-file F) [--ctx N]\n"
    "                           [--batch N] [--chunks N] [--threads T] [--seed S]\n"
    "                           [--kl-base OUT | --kl-against BASE [--kl-other-model]]\n"
    "                           [--prefault | --in-ram] [--json] [offloading options]\n\n"
    "Perplexity of the model on a text, as llama-perplexity computes it: the tokens\n"
    "in chunks of N, the KV cache emptied before each chunk, BOS in place of a\n"
    "chunk's first token when the vocabulary adds BOS, and -log p of the next token\n"
    "averaged over positions N/2 .. N-2 of every chunk. Prints\n"
    "\"Final estimate: PPL = X +/- Y\" (docs/quality.md).\n\n"
    "  -m, --model FILE     GGUF model\n"
    "  -f, --file TEXT      the text (one trailing newline dropped, as llama.cpp's\n"
    "                       -f); special tokens written in it stay text\n"
    "  --tokens-file F      the tokens instead: ids separated by spaces, commas or\n"
    "                       brackets (`moebench tokenize --ids` output), used as given\n"
    "  --ctx N              tokens per chunk (default 512, llama-perplexity's); the\n"
    "                       text must give at least 2N tokens\n"
    "  --batch N            evaluate a chunk in batches of N (default: N = ctx, up\n"
    "                       to 4096); 1: token by token (the decode path)\n"
    "  --chunks N           at most N chunks (default: all the text holds)\n"
    "  --threads T          worker threads (default: all online CPUs)\n"
    "  --seed S             the random policy's seed (default 0)\n"
    "  --kl-base OUT        also write every scored position's log-probabilities\n"
    "                       to OUT (the base for --kl-against)\n"
    "  --kl-against BASE    compare with a base file: KL divergence (mean, p99,\n"
    "                       max), top-1 agreement, PPL - PPL(base); the text may be\n"
    "                       left out (the base holds its tokens); the run must have\n"
    "                       the base's tokens and context (else exit 2)\n"
    "  --kl-other-model     accept a base computed with another model file (same\n"
    "                       vocabulary): e.g. another quantization\n"
    "  --prefault           map the whole file before timing\n"
    "  --in-ram             read the whole file into memory in huge pages\n"
    "  --json               one JSON object on stdout: ppl, ppl_err, tokens_scored,\n"
    "                       chunks, tokens_per_s, ... (with --kl-against kl_mean,\n"
    "                       kl_p99, kl_max, top1, ppl_base, ppl_delta)\n"
    "  -h, --help           this text\n\n"
    "Offloading options are those of `moebench generate`; a policy that needs\n"
    "--trace-in (belady, fsf, --prefetch oracle) replays one sequence: --chunks 1,\n"
    "with the trace recorded by a --batch 1 run (docs/quality.md).\n";

typedef struct ppl_args {
    const char *model, *file, *tokens_file, *kl_base, *kl_against;
    int64_t ctx, batch, chunks;
    int threads, json, prefault, in_ram, other_model;
    int64_t seed;
    hx_probe_offload off;        /* --cache-*, --policy, ... (probe.h) */
} ppl_args;

typedef struct ppl_run {
    ppl_args *a;
    const eng_model *m;
    eng_session *s;
    int64_t n_vocab;
    int32_t *tokens;             /* the text's tokens                       */
    int64_t n_tokens;
    int64_t n_ctx, n_chunks, first, n_batch;
    int32_t bos;                 /* put first in each chunk; -1: none       */
    met_quality_ppl ppl;
    met_quality_base_writer *bw;
    met_quality_base_reader *br;
    met_quality_kl_acc kl;
    float *rows;                 /* [min(n_batch, n_ctx - first)][n_vocab]:
                                    the scored rows of one batch            */
    int32_t *ids;                /* [n_vocab] scratch for base rows         */
    float *lp;                   /* [n_vocab]                               */
    int32_t *chunk;              /* [n_ctx] the chunk as evaluated          */
    double *chunk_ms;            /* [n_chunks] evaluation time per chunk    */
    double eval_ms;              /* engine time of every chunk */
    uint64_t model_size;
} ppl_run;

static int parse_one(ppl_args *a, int c, const char *arg, char **argv)
{
    switch (c) {
    case 'm': a->model = arg; return 0;
    case 'f': a->file = arg; return 0;
    case 'T': a->tokens_file = arg; return 0;
    case 'c': return hx_cli_parse_i64(CMD, "--ctx", arg, 4, 1 << 20, &a->ctx);
    case 'b': return hx_cli_parse_i64(CMD, "--batch", arg, 1, 4096, &a->batch);
    case 'n': return hx_cli_parse_i64(CMD, "--chunks", arg, 1, INT32_MAX, &a->chunks);
    case 'j': return hx_cli_parse_int(CMD, "--threads", arg, 1, 1024, &a->threads);
    case 's': return hx_cli_parse_i64(CMD, "--seed", arg, 0, INT64_MAX, &a->seed);
    case 'B': a->kl_base = arg; return 0;
    case 'A': a->kl_against = arg; return 0;
    case 'O': a->other_model = 1; return 0;
    case 'F': a->prefault = 1; return 0;
    case 'R': a->in_ram = 1; return 0;
    case 'J': a->json = 1; return 0;
    case 'h': fputs(usage_text, stdout); fputs(hx_probe_offload_usage, stdout); return -1;
    default:
        if (c >= HX_PROBE_OFF_BASE && c < HX_PROBE_BASE)
            return hx_probe_offload_parse(&a->off, c, arg);
        return hx_cli_usage_error(CMD, "unknown option '%s'", argv[optind - 1]);
    }
}

static int check_args(ppl_args *a)
{
    if (!a->model)
        return hx_cli_usage_error(CMD, "-m FILE.gguf is required");
    if (a->file && a->tokens_file)
        return hx_cli_usage_error(CMD, "give one of -f TEXT and --tokens-file F");
    if (!a->file && !a->tokens_file && !a->kl_against)
        return hx_cli_usage_error(CMD, "give the text: -f TEXT or --tokens-file F");
    if (a->kl_base && a->kl_against)
        return hx_cli_usage_error(CMD, "--kl-base and --kl-against do not go together");
    if (a->other_model && !a->kl_against)
        return hx_cli_usage_error(CMD, "--kl-other-model goes with --kl-against");
    return hx_probe_offload_check(&a->off);
}

static int parse_args(int argc, char **argv, ppl_args *a)
{
    static const struct option lo[] = {
        {"model", required_argument, 0, 'm'},   {"file", required_argument, 0, 'f'},
        {"tokens-file", required_argument, 0, 'T'}, {"ctx", required_argument, 0, 'c'},
        {"batch", required_argument, 0, 'b'},   {"chunks", required_argument, 0, 'n'},
        {"threads", required_argument, 0, 'j'}, {"seed", required_argument, 0, 's'},
        {"kl-base", required_argument, 0, 'B'}, {"kl-against", required_argument, 0, 'A'},
        {"kl-other-model", no_argument, 0, 'O'}, {"prefault", no_argument, 0, 'F'},
        {"json", no_argument, 0, 'J'},          {"help", no_argument, 0, 'h'},
        {"in-ram", no_argument, 0, 'R'},
        HX_PROBE_OFFLOAD_LONGOPTS,              {0, 0, 0, 0},
    };
    *a = (ppl_args){.ctx = 0};
    hx_probe_offload_init(&a->off);
    a->off.cmd = CMD;
    int c, rc = 0;
    opterr = 0;
    while (!rc && (c = getopt_long(argc, argv, "+hm:f:", lo, NULL)) != -1)
        rc = parse_one(a, c, optarg, argv);
    if (rc)
        return rc;
    if (optind < argc)
        return hx_cli_usage_error(CMD, "unexpected argument '%s'", argv[optind]);
    return check_args(a);
}

/* ---- input ------------------------------------------------------------------ */

/* The whole file; an unreadable one is bad input (exit 2). */
static int read_all(const char *opt, const char *path, char **out, size_t *len)
{
    FILE *f = fopen(path, "rb");
    struct stat st;
    if (!f || fstat(fileno(f), &st) || !S_ISREG(st.st_mode)) {
        int e = errno;
        if (f)
            fclose(f);
        return hx_cli_fail(CMD, ENG_EINVAL, "%s %s: %s", opt, path,
                           f ? "not a regular file" : strerror(e));
    }
    char *buf = malloc((size_t)st.st_size + 1);
    size_t n = buf ? fread(buf, 1, (size_t)st.st_size, f) : 0;
    int bad = !buf || ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        return hx_cli_fail(CMD, buf ? ENG_EINVAL : ENG_ENOMEM, "%s %s: %s", opt, path,
                           buf ? "read error" : "out of memory");
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return 0;
}

/* Ids separated by white space, commas or brackets. */
static int parse_token_file(ppl_run *r, const char *text)
{
    size_t cap = 1;
    for (const char *p = text; *p; p++)
        cap += *p == ',' || *p == ' ' || *p == '\n';
    if (!(r->tokens = malloc(cap * sizeof *r->tokens)))
        return hx_cli_fail(CMD, ENG_ENOMEM, "out of memory");
    for (const char *p = text;;) {
        p += strspn(p, " \t\r\n,[]");
        if (!*p)
            return 0;
        char *end;
        errno = 0;
        long long v = strtoll(p, &end, 10);
        if (end == p || errno || v < 0 || v >= r->n_vocab || r->n_tokens >= (int64_t)cap)
            return hx_cli_fail(CMD, ENG_EFORMAT,
                               "--tokens-file %s: token %" PRId64 " ('%.12s') is not an id in "
                               "0..%" PRId64, r->a->tokens_file, r->n_tokens, p, r->n_vocab - 1);
        r->tokens[r->n_tokens++] = (int32_t)v;
        p = end;
    }
}

/* The text through the tokenizer, as llama-perplexity tokenizes it. */
static int tokenize_text(ppl_run *r, const eng_tokenizer *tok, char *text, size_t len)
{
    if (len && text[len - 1] == '\n') /* common/arg.cpp -f: one trailing newline */
        len--;
    size_t n = 0;
    eng_err err = {0};
    int rc = eng_tokenizer_encode(tok, text, len, ENG_TOK_ADD_SPECIAL, &r->tokens, &n, &err);
    if (rc)
        return hx_cli_fail(CMD, rc, "-f %s: %s", r->a->file, err.msg);
    r->n_tokens = (int64_t)n;
    return 0;
}

/* Tokens from -f or --tokens-file; the BOS rule from the file's tokenizer. */
static int load_tokens(ppl_run *r)
{
    const ppl_args *a = r->a;
    eng_err err = {0};
    eng_tokenizer *tok = NULL;
    int trc = eng_tokenizer_open_gguf(&tok, eng_model_gguf(r->m), &err);
    r->bos = !trc && eng_tokenizer_add_bos(tok) ? eng_tokenizer_bos(tok) : -1;
    bool add_eos = false;
    int rc = 0;
    if (eng_gguf_has(eng_model_gguf(r->m), "tokenizer.ggml.add_eos_token") &&
        !eng_gguf_get_bool(eng_model_gguf(r->m), "tokenizer.ggml.add_eos_token", &add_eos, &err) &&
        add_eos) /* llama-perplexity asserts !llama_vocab_get_add_eos */
        rc = hx_cli_fail(CMD, ENG_EUNSUPPORTED, "%s: the tokenizer adds EOS "
                         "(tokenizer.ggml.add_eos_token): llama-perplexity refuses such files",
                         a->model);
    else if (!trc && a->file && eng_tokenizer_n_vocab(tok) != (size_t)r->n_vocab)
        rc = hx_cli_fail(CMD, ENG_EFORMAT, "%s: the vocabulary has %zu tokens, the model %" PRId64,
                         a->model, eng_tokenizer_n_vocab(tok), r->n_vocab);
    else if (trc && a->file)
        rc = hx_cli_fail(CMD, trc, "%s: cannot tokenize the text: %s (use --tokens-file F)",
                         a->model, err.msg);
    if (!rc && (a->file || a->tokens_file)) {
        char *text = NULL;
        size_t len = 0;
        rc = read_all(a->file ? "-f" : "--tokens-file", a->file ? a->file : a->tokens_file,
                      &text, &len);
        if (!rc)
            rc = a->file ? tokenize_text(r, tok, text, len) : parse_token_file(r, text);
        free(text);
    }
    eng_tokenizer_free(tok);
    return rc;
}

/* ---- the base file ------------------------------------------------------------ */

static const char *base_name(const char *p)
{
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

/* --kl-against: the base must be this text (or give it), context and model. */
static int open_base(ppl_run *r)
{
    const ppl_args *a = r->a;
    eng_err err = {0};
    int rc = met_quality_base_open(&r->br, a->kl_against, &err);
    if (rc)
        return hx_cli_fail(CMD, rc == ENG_EIO ? ENG_EINVAL : rc, "--kl-against: %s", err.msg);
    const met_quality_base_info *in = met_quality_base_info_of(r->br);
    const char *bad = NULL;
    if (in->n_vocab != r->n_vocab)
        bad = "a vocabulary of another size";
    else if (a->ctx && a->ctx != in->n_ctx)
        bad = "another --ctx";
    else if (!a->other_model &&
             (in->model_size != r->model_size || strcmp(base_name(in->model), base_name(a->model))))
        bad = "another model file (--kl-other-model accepts that)";
    else if (in->bos != r->bos || in->first != in->n_ctx / 2)
        bad = "another BOS rule or scored range";
    else if (a->chunks > in->n_chunks)
        bad = "fewer chunks than --chunks asks";
    else if (r->tokens && (r->n_tokens < in->n_chunks * in->n_ctx ||
                           memcmp(r->tokens, in->tokens,
                                  (size_t)(in->n_chunks * in->n_ctx) * sizeof *r->tokens)))
        bad = "other tokens (another text, tokenizer or --tokens-file)";
    if (bad)
        return hx_cli_fail(CMD, ENG_EINVAL,
                           "--kl-against %s: the base was computed with %s: it has model %s "
                           "(%" PRIu64 " bytes), vocabulary %" PRId64 ", ctx %" PRId64
                           ", %" PRId64 " chunks",
                           a->kl_against, bad, in->model, in->model_size, in->n_vocab, in->n_ctx,
                           in->n_chunks);
    if (!r->tokens) { /* no text given: the base's */
        size_t nb = (size_t)(in->n_chunks * in->n_ctx) * sizeof *r->tokens;
        if (!(r->tokens = malloc(nb)))
            return hx_cli_fail(CMD, ENG_ENOMEM, "out of memory");
        memcpy(r->tokens, in->tokens, nb);
        r->n_tokens = in->n_chunks * in->n_ctx;
    }
    r->n_ctx = in->n_ctx;
    r->n_chunks = a->chunks ? a->chunks : in->n_chunks;
    return 0;
}

static int create_base(ppl_run *r)
{
    met_quality_base_info in = {.model = r->a->model, .model_size = r->model_size,
                                .n_vocab = r->n_vocab, .n_ctx = r->n_ctx,
                                .n_chunks = r->n_chunks, .first = r->first,
                                .n_batch = r->n_batch, .bos = r->bos, .tokens = r->tokens};
    eng_err err = {0};
    int rc = met_quality_base_create(&r->bw, r->a->kl_base, &in, &err);
    return rc ? hx_cli_fail(CMD, rc, "--kl-base: %s", err.msg) : 0;
}

/* ---- the run ------------------------------------------------------------------ */

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Chunks and context from the text (--kl-against: from the base). */
static int plan_chunks(ppl_run *r)
{
    const ppl_args *a = r->a;
    if (!a->kl_against) {
        r->n_ctx = a->ctx ? a->ctx : 512;
        if (r->n_tokens < 2 * r->n_ctx)
            return hx_cli_fail(CMD, ENG_EINVAL,
                               "%s %s gives %" PRId64 " tokens; a context of %" PRId64
                               " needs at least %" PRId64 " (2 x ctx, as llama-perplexity): a "
                               "longer text or a smaller --ctx",
                               a->file ? "-f" : "--tokens-file", a->file ? a->file : a->tokens_file,
                               r->n_tokens, r->n_ctx, 2 * r->n_ctx);
        int64_t max = r->n_tokens / r->n_ctx;
        r->n_chunks = a->chunks && a->chunks < max ? a->chunks : max;
    }
    r->first = r->n_ctx / 2;
    r->n_batch = a->batch ? a->batch : (r->n_ctx < 4096 ? r->n_ctx : 4096);
    if (a->off.trace_in && r->n_chunks > 1)
        return hx_cli_usage_error(CMD, "--trace-in: the oracle replays one sequence and the text"
                                       " makes %" PRId64 " chunks: add --chunks 1", r->n_chunks);
    const int64_t train = eng_model_hparams(r->m)->n_ctx_train;
    if (train > 0 && r->n_ctx > train)
        fprintf(stderr, "perplexity: the model was trained on %" PRId64 " tokens of context (%"
                        PRId64 " asked)\n", train, r->n_ctx);
    return 0;
}

/* Rows [0, n) of a batch hold positions p0 .. p0 + n - 1 of chunk c:
 * score those in first .. n_ctx - 2 against the next token. */
static int score_rows(ppl_run *r, int64_t c, int64_t p0, int64_t n)
{
    eng_err err = {0};
    const int32_t *text = r->tokens + c * r->n_ctx;
    for (int64_t i = 0; i < n; i++) {
        const int64_t p = p0 + i;
        if (p < r->first || p > r->n_ctx - 2)
            continue;
        const float *row = r->rows + i * r->n_vocab;
        const double nll = met_quality_nll(row, r->n_vocab, text[p + 1]);
        met_quality_ppl_add(&r->ppl, nll);
        int rc = 0;
        met_quality_row br;
        if (r->bw) {
            met_quality_row_of(&br, row, r->n_vocab, text[p + 1], r->ids, r->lp);
            rc = met_quality_base_write(r->bw, &br, &err);
        } else if (r->br && !(rc = met_quality_base_next(r->br, &br, &err))) {
            rc = met_quality_kl_add(&r->kl, &br, row, r->n_vocab, nll, r->lp, &err);
        }
        if (rc)
            return hx_cli_fail(CMD, rc, "%s", err.msg);
    }
    return 0;
}

/* One chunk: BOS first when the vocabulary adds it, batches from position
 * 0 (llama-perplexity's), logits from the batch that reaches `first` on. */
static int run_chunk(ppl_run *r, int64_t c)
{
    eng_err err = {0};
    memcpy(r->chunk, r->tokens + c * r->n_ctx, (size_t)r->n_ctx * sizeof *r->chunk);
    if (r->bos >= 0)
        r->chunk[0] = r->bos;
    eng_session_reset(r->s);
    void *w = r->a->off.writer; /* --trace-out: one sample per chunk */
    char label[32];
    snprintf(label, sizeof label, "chunk %" PRId64, c);
    if (w && met_trace_writer_begin_sample(w, label, &err))
        return hx_cli_fail(CMD, err.code, "--trace-out: %s", err.msg);
    int rc = hx_probe_offload_set_prompt(&r->a->off, r->n_ctx, r->n_batch);
    for (int64_t p = 0; !rc && p < r->n_ctx; p += r->n_batch) {
        const int64_t T = r->n_ctx - p < r->n_batch ? r->n_ctx - p : r->n_batch;
        const int64_t f = r->first > p ? r->first - p : 0;
        double t0 = now_ms();
        rc = f < T ? eng_session_eval_logits(r->s, r->chunk + p, T, f, r->rows, &err)
                   : eng_session_eval(r->s, r->chunk + p, T, &err);
        double dt = now_ms() - t0;
        r->chunk_ms[c] += dt;
        r->eval_ms += dt;
        if (rc)
            return hx_cli_fail(CMD, rc, "chunk %" PRId64 ": %s", c, err.msg);
        if (f < T)
            rc = score_rows(r, c, p + f, T - f);
    }
    return rc;
}

static int alloc_run(ppl_run *r)
{
    const size_t nv = (size_t)r->n_vocab;
    /* one eval_logits call returns at most this many rows */
    const int64_t n_rows = r->n_batch < r->n_ctx - r->first ? r->n_batch : r->n_ctx - r->first;
    r->rows = malloc((size_t)n_rows * nv * sizeof *r->rows);
    r->ids = malloc(nv * sizeof *r->ids);
    r->lp = malloc(nv * sizeof *r->lp);
    r->chunk = malloc((size_t)r->n_ctx * sizeof *r->chunk);
    r->chunk_ms = calloc((size_t)r->n_chunks, sizeof *r->chunk_ms);
    if (!r->rows || !r->ids || !r->lp || !r->chunk || !r->chunk_ms)
        return hx_cli_fail(CMD, ENG_ENOMEM, "out of memory for %" PRId64 " rows of %" PRId64
                           " logits", n_rows, r->n_vocab);
    return 0;
}

static int open_session(ppl_run *r)
{
    ppl_args *a = r->a;
    eng_session_opts so = {.n_threads = a->threads, .n_batch = r->n_batch, .n_ctx = r->n_ctx};
    /* everything is "prompt" here: no token counts as decode (INT64_MAX) */
    int rc = hx_probe_offload_open(&a->off, r->m, (uint64_t)a->seed, INT64_MAX, &so.n_batch,
                                   &so.store, &so.hooks);
    if (rc)
        return rc;
    r->n_batch = so.n_batch; /* --trace-in: 1 */
    so.expert_keep = hx_probe_offload_keep(&a->off);
    eng_err err = {0};
    if ((rc = eng_session_open(&r->s, r->m, &so, &err)))
        return hx_cli_fail(CMD, rc, "%s", err.msg);
    return 0;
}

/* ---- output -------------------------------------------------------------------- */

static double peak_rss_mib(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss / 1024.0;
}

static int64_t tokens_evaluated(const ppl_run *r) { return r->n_chunks * r->n_ctx; }

static json_t *num_or_null(double v) { return isfinite(v) ? json_real(v) : json_null(); }

static void kl_json(ppl_run *r, json_t *o)
{
    met_quality_kl_result k;
    met_quality_kl_result_of(&r->kl, &k);
    const struct {
        const char *key;
        double v;
    } f[] = {{"kl_mean", k.kl_mean},     {"kl_mean_err", k.kl_mean_err}, {"kl_median", k.kl_median},
             {"kl_p99", k.kl_p99},       {"kl_max", k.kl_max},           {"top1", k.top1},
             {"top1_err", k.top1_err},   {"ppl_base", k.ppl_base},
             {"ppl_base_err", k.ppl_base_err}, {"ppl_delta", k.ppl_delta},
             {"ppl_delta_err", k.ppl_delta_err}};
    for (size_t i = 0; i < sizeof f / sizeof *f; i++)
        json_object_set_new(o, f[i].key, num_or_null(f[i].v));
    json_object_set_new(o, "kl_against", json_string(r->a->kl_against));
}

/* Which way each figure is better, for regress (docs/database.md). */
static json_t *directions(void)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "ppl", "lower", "ppl_delta",
                     "lower", "kl_*", "lower", "top1", "higher", "tokens_per_s", "higher",
                     "*_ms", "lower", "hit_rate", "higher", "stall_share", "lower");
}

static void print_json(ppl_run *r)
{
    double err, ppl = met_quality_ppl_value(&r->ppl, &err);
    const eng_hparams *hp = eng_model_hparams(r->m);
    json_t *o = json_object(), *ms = json_array();
    json_object_set_new(o, "ppl", num_or_null(ppl));
    json_object_set_new(o, "ppl_err", num_or_null(err));
    json_object_set_new(o, "tokens_scored", json_integer(r->ppl.count));
    json_object_set_new(o, "chunks", json_integer(r->n_chunks));
    json_object_set_new(o, "ctx", json_integer(r->n_ctx));
    json_object_set_new(o, "batch", json_integer(r->n_batch));
    json_object_set_new(o, "first", json_integer(r->first));
    json_object_set_new(o, "bos", json_integer(r->bos));
    json_object_set_new(o, "tokens_evaluated", json_integer(tokens_evaluated(r)));
    json_object_set_new(o, "eval_ms", json_real(r->eval_ms));
    json_object_set_new(o, "tokens_per_s", json_real(r->eval_ms > 0 ? (double)tokens_evaluated(r)
                                                                      * 1e3 / r->eval_ms : 0));
    json_object_set_new(o, "threads", json_integer(eng_session_threads(r->s)));
    json_object_set_new(o, "peak_rss_mib", json_real(peak_rss_mib()));
    for (int64_t c = 0; c < r->n_chunks; c++)
        json_array_append_new(ms, json_real(r->chunk_ms[c]));
    json_object_set_new(o, "chunk_ms", ms);
    if (r->br)
        kl_json(r, o);
    if (r->bw)
        json_object_set_new(o, "kl_base", json_string(r->a->kl_base));
    json_object_set_new(o, "model", json_pack("{s:s, s:s, s:I, s:I}", "path", r->a->model, "arch",
                                              hp->arch, "n_vocab", (json_int_t)hp->n_vocab,
                                              "bytes", (json_int_t)r->model_size));
    /* "cache" and accesses/hits/misses; the prompt/decode split of generate
     * does not apply: every stall counts as decode_stall_ms */
    hx_probe_offload_json(&r->a->off, o, r->chunk_ms, r->n_chunks);
    json_object_set_new(o, "directions", directions());
    json_dumpf(o, stdout, JSON_COMPACT | JSON_PRESERVE_ORDER);
    fputc('\n', stdout);
    json_decref(o);
}

static void print_kl(ppl_run *r)
{
    met_quality_kl_result k;
    met_quality_kl_result_of(&r->kl, &k);
    printf("KL divergence against %s (%" PRId64 " positions):\n", r->a->kl_against, k.count);
    printf("Mean PPL(Q)          : %10.6f +/- %10.6f\n", k.ppl, k.ppl_err);
    printf("Mean PPL(base)       : %10.6f +/- %10.6f\n", k.ppl_base, k.ppl_base_err);
    printf("Mean PPL(Q)-PPL(base): %10.6f +/- %10.6f\n", k.ppl_delta, k.ppl_delta_err);
    printf("Mean    KLD: %10.6f +/- %10.6f\n", k.kl_mean, k.kl_mean_err);
    printf("Maximum KLD: %10.6f\n99.0%%   KLD: %10.6f\nMedian  KLD: %10.6f\n", k.kl_max, k.kl_p99,
           k.kl_median);
    printf("Same top p: %7.3f +/- %5.3f %%\n", 100.0 * k.top1, 100.0 * k.top1_err);
}

static void print_cache(const ppl_run *r)
{
    eng_store *st = r->a->off.store;
    eng_tiered_stats ts;
    eng_err err = {0};
    if (!st || eng_tiered_get_stats(st, &ts, &err))
        return;
    const eng_tiered_counts *c = &ts.total;
    fprintf(stderr,
            "cache: %s, %u slots (%.1f MiB): hit rate %.2f%%, read %.1f MiB, stall %.1f ms "
            "(%.1f%% of the evaluation)\n",
            r->a->off.o.policy, ts.slots, (double)ts.cache_bytes / 1048576.0,
            c->accesses ? 100.0 * (double)c->hits / (double)c->accesses : 0.0,
            (double)(c->bytes_demand + c->bytes_prefetch) / 1048576.0, (double)c->stall_ns / 1e6,
            r->eval_ms > 0 ? 100.0 * (double)c->stall_ns / 1e6 / r->eval_ms : 0.0);
}

static void print_text(ppl_run *r)
{
    double err, ppl = met_quality_ppl_value(&r->ppl, &err);
    if (r->br)
        print_kl(r);
    if (isfinite(err))
        printf("Final estimate: PPL = %.4f +/- %.5f\n", ppl, err);
    else
        printf("Final estimate: PPL = %.4f (no uncertainty: too few positions)\n", ppl);
    fprintf(stderr,
            "perplexity: %" PRId64 " chunks of %" PRId64 " tokens, %" PRId64 " scored, batch %"
            PRId64 ": %.1f ms, %.2f tok/s, peak RSS %.1f MiB\n",
            r->n_chunks, r->n_ctx, r->ppl.count, r->n_batch, r->eval_ms,
            r->eval_ms > 0 ? (double)tokens_evaluated(r) * 1e3 / r->eval_ms : 0.0, peak_rss_mib());
    print_cache(r);
}

static int run(ppl_run *r)
{
    ppl_args *a = r->a;
    int rc = load_tokens(r); /* without a text: the BOS rule only */
    if (!rc && a->kl_against)
        rc = open_base(r);
    if (!rc)
        rc = plan_chunks(r);
    if (!rc)
        rc = open_session(r);
    if (!rc && r->br && met_quality_base_info_of(r->br)->n_batch != r->n_batch)
        fprintf(stderr, "perplexity: the base ran in batches of %" PRId64 ", this run in batches"
                        " of %" PRId64 ": their logits differ by the prefill-vs-decode difference,"
                        " so even a lossless run has KL above 0 (docs/quality.md)\n",
                met_quality_base_info_of(r->br)->n_batch, r->n_batch);
    if (!rc)
        rc = alloc_run(r);
    if (!rc && a->kl_base)
        rc = create_base(r);
    if (!rc && !a->json)
        fprintf(stderr, "perplexity: %" PRId64 " chunks of %" PRId64 " tokens, positions %" PRId64
                        "..%" PRId64 " scored, batch %" PRId64 "%s\n",
                r->n_chunks, r->n_ctx, r->first, r->n_ctx - 2, r->n_batch,
                r->bos >= 0 ? ", BOS first" : "");
    for (int64_t c = 0; !rc && c < r->n_chunks; c++) {
        rc = run_chunk(r, c);
        double e;
        if (!rc && !a->json)
            fprintf(stderr, "[%" PRId64 "]%.4f,%s", c + 1, met_quality_ppl_value(&r->ppl, &e),
                    c + 1 == r->n_chunks ? "\n" : "");
    }
    if (!rc)
        rc = hx_probe_offload_finish(&a->off);
    eng_err err = {0};
    if (!rc && r->bw) {
        rc = met_quality_base_close(r->bw, &err);
        r->bw = NULL;
        if (rc)
            return hx_cli_fail(CMD, rc, "--kl-base: %s", err.msg);
    }
    if (!rc)
        a->json ? print_json(r) : print_text(r);
    return rc;
}

int hx_cli_cmd_perplexity(int argc, char **argv)
{
    ppl_args a;
    int rc = parse_args(argc, argv, &a);
    if (rc)
        return rc < 0 ? HX_CLI_EXIT_OK : rc;
    ppl_run r = {.a = &a};
    eng_err err = {0};
    eng_model *m = NULL;
    struct stat st;
    eng_model_opts mo = {.prefault = a.prefault, .in_ram = a.in_ram,
                         .private_dense = hx_probe_offload_private_dense(&a.off)};
    if ((rc = eng_model_open(&m, a.model, &mo, &err))) {
        rc = hx_cli_fail(CMD, rc, "%s", err.msg);
    } else {
        r.m = m;
        r.n_vocab = eng_model_hparams(m)->n_vocab;
        r.model_size = stat(a.model, &st) == 0 ? (uint64_t)st.st_size : 0;
        rc = run(&r);
    }
    eng_session_free(r.s);
    hx_probe_offload_free(&a.off); /* the store's loader threads call its hooks */
    met_quality_base_abort(r.bw);
    met_quality_base_free(r.br);
    met_quality_kl_free(&r.kl);
    free(r.tokens), free(r.rows), free(r.ids), free(r.lp), free(r.chunk), free(r.chunk_ms);
    eng_model_free(m);
    return rc;
}
