/*
 * cmd_generate.c — `moebench generate`: run a GGUF model on a prompt (text
 * through the file's tokenizer, or token ids) and print what it generates
 * with the prefill/decode speed; --json gives one object for scripts.
 *
 * The JSON object is assembled from the section table `json_sections`: a
 * later feature (cache statistics, per-region counters) adds one function
 * and one row there.
 */
#include "engine/gguf.h"
#include "engine/session.h"
#include "engine/tokenizer.h"
#include "harness/cli/cli.h"
#include "harness/cli/cli_impl.h"

#include <errno.h>
#include "harness/probe/probe.h"

#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

static const char usage_text[] =
    "usage: moebench generate -m FILE.gguf (-p TEXT | --tokens IDS) [-n N]\n"
    "                         [--seed S] [--temp T] [--top-k K] [--top-p P]\n"
    "                         [--threads T] [--ctx N] [--batch N] [--ignore-eos]\n"
    "                         [--no-special]\n"
    "                         [--prefault | --in-ram] [--json] [--logits]\n"
    "                         [--trace FILE [--trace-label TEXT]]\n"
    "                         [--events LIST | --events-preset NAME [--multiplex]]\n\n"
    "Evaluates the prompt, then generates N tokens (greedy unless --temp > 0).\n"
    "Prints the generated text on stdout and a summary line on stderr (prompt and\n"
    "generated tokens, prefill and decode tok/s, peak RSS).\n\n"
    "  -m, --model FILE   GGUF model (llama/Mixtral, qwen2moe, qwen3moe, olmoe,\n"
    "                     deepseek2, gpt-oss, glm4moe)\n"
    "  -p, --prompt TEXT  prompt, tokenized with the file's tokenizer; special tokens\n"
    "                     written in it (<|im_start|>, <s>) are those tokens\n"
    "  --no-special       ...unless this is given: then control tokens are text\n"
    "  --tokens IDS       prompt as comma-separated token ids (no tokenizer needed)\n"
    "  -n N               tokens to generate (default 16; 0: evaluate the prompt only)\n"
    "  --seed S           sampling seed (default 0)\n"
    "  --temp T           temperature (default 0 = greedy argmax)\n"
    "  --top-k K          keep the K most likely tokens (default 0 = all)\n"
    "  --top-p P          keep the smallest set with mass >= P (default 1 = all)\n"
    "  --threads T        worker threads (default: all online CPUs)\n"
    "  --ctx N            KV cache size in tokens (default: prompt + N)\n"
    "  --batch N          prefill chunk in tokens (default 128)\n"
    "  --ignore-eos       do not stop at the end-of-sequence token\n"
    "  --prefault         map the whole file before timing (as a warm-up run would)\n"
    "  --in-ram           read the whole file into memory in huge pages instead of\n"
    "                     mapping it (faster decode; costs the file's size in RAM)\n"
    "  --json             one JSON object on stdout instead of text\n"
    "  --logits           with --json: the logits at the last prompt position\n"
    "  -h, --help         this text\n";

typedef struct gen_args {
    const char *model, *prompt, *tokens;
    int64_t n_predict, ctx, batch;
    int threads, json, logits, ignore_eos, prefault, in_ram, no_special;
    eng_sampler_opts sampler;
    hx_probe_offload off;              /* --cache-*, --policy, ... (probe.h) */
    hx_probe probe;              /* --trace, --events, ... (probe.h)  */
} gen_args;

typedef struct gen_run {
    const gen_args *a;
    hx_probe_offload *off;
    hx_probe *probe;
    const eng_model *m;
    eng_session *s;
    eng_tokenizer *tok;          /* NULL when the file has none we can use */
    int32_t *prompt;
    int64_t n_prompt;
    eng_generate_result res;
    float *logits;               /* [n_vocab] at the last prompt position */
    bool logits_taken;
    char *text;                  /* decoded generated tokens (NULL without tokenizer) */
} gen_run;

static int parse_ids(const char *s, int32_t **ids, int64_t *n)
{
    size_t cap = 1;
    for (const char *p = s; *p; p++)
        cap += *p == ',';
    *ids = malloc(cap * sizeof **ids);
    *n = 0;
    if (!*ids)
        return hx_cli_fail("generate", ENG_ENOMEM, "out of memory");
    const char *p = s;
    for (;;) {
        char *end;
        errno = 0;
        long long v = strtoll(p, &end, 10);
        if (end == p || errno || v < 0 || v > INT32_MAX || (*end && *end != ','))
            return hx_cli_usage_error("generate", "--tokens: '%s' is not a list of token ids", s);
        (*ids)[(*n)++] = (int32_t)v;
        if (!*end)
            return 0;
        p = end + 1;
    }
}

static int parse_args(int argc, char **argv, gen_args *a)
{
    static const struct option lo[] = {
        {"model", required_argument, 0, 'm'}, {"prompt", required_argument, 0, 'p'},
        {"tokens", required_argument, 0, 'T'}, {"seed", required_argument, 0, 's'},
        {"temp", required_argument, 0, 't'}, {"top-k", required_argument, 0, 'k'},
        {"top-p", required_argument, 0, 'P'}, {"threads", required_argument, 0, 'j'},
        {"ctx", required_argument, 0, 'c'}, {"batch", required_argument, 0, 'b'},
        {"ignore-eos", no_argument, 0, 'E'}, {"json", no_argument, 0, 'J'},
        {"logits", no_argument, 0, 'L'}, {"prefault", no_argument, 0, 'F'},
        {"no-special", no_argument, 0, 'S'}, {"in-ram", no_argument, 0, 'R'},
        {"help", no_argument, 0, 'h'}, HX_PROBE_OFFLOAD_LONGOPTS, HX_PROBE_LONGOPTS, {0, 0, 0, 0},
    };
    *a = (gen_args){.n_predict = 16, .sampler = {.top_p = 1.0}};
    hx_probe_offload_init(&a->off);
    hx_probe_init(&a->probe);
    int c, rc = 0;
    int64_t seed = 0;
    opterr = 0;
    while (!rc && (c = getopt_long(argc, argv, "+hm:p:n:", lo, NULL)) != -1) {
        switch (c) {
        case 'm': a->model = optarg; break;
        case 'p': a->prompt = optarg; break;
        case 'T': a->tokens = optarg; break;
        case 'n': rc = hx_cli_parse_i64("generate", "-n", optarg, 0, 1 << 20, &a->n_predict); break;
        case 's': rc = hx_cli_parse_i64("generate", "--seed", optarg, 0, INT64_MAX, &seed); break;
        case 't': rc = hx_cli_parse_double("generate", "--temp", optarg, 0, 1e6, &a->sampler.temp); break;
        case 'k': rc = hx_cli_parse_int("generate", "--top-k", optarg, 0, INT32_MAX, &a->sampler.top_k); break;
        case 'P': rc = hx_cli_parse_double("generate", "--top-p", optarg, 1e-9, 1, &a->sampler.top_p); break;
        case 'j': rc = hx_cli_parse_int("generate", "--threads", optarg, 1, 1024, &a->threads); break;
        case 'c': rc = hx_cli_parse_i64("generate", "--ctx", optarg, 1, 1 << 20, &a->ctx); break;
        case 'b': rc = hx_cli_parse_i64("generate", "--batch", optarg, 1, 4096, &a->batch); break;
        case 'E': a->ignore_eos = 1; break;
        case 'J': a->json = 1; break;
        case 'L': a->logits = 1; break;
        case 'F': a->prefault = 1; break;
        case 'R': a->in_ram = 1; break;
        case 'S': a->no_special = 1; break;
        case 'h': fputs(usage_text, stdout); fputs(hx_probe_offload_usage, stdout);
                  fputs(hx_probe_usage, stdout); return -1;
        default:
            if (c >= HX_PROBE_BASE) {
                rc = hx_probe_parse(&a->probe, c, optarg);
                break;
            }
            if (c >= HX_PROBE_OFF_BASE) {
                rc = hx_probe_offload_parse(&a->off, c, optarg);
                break;
            }
            return hx_cli_usage_error("generate", "unknown option '%s'", argv[optind - 1]);
        }
    }
    a->sampler.seed = (uint64_t)seed;
    if (rc)
        return rc;
    if (optind < argc)
        return hx_cli_usage_error("generate", "unexpected argument '%s'", argv[optind]);
    if (!a->model)
        return hx_cli_usage_error("generate", "-m FILE.gguf is required");
    if (!a->prompt == !a->tokens)
        return hx_cli_usage_error("generate", "give exactly one of -p TEXT and --tokens IDS");
    if (a->logits && !a->json)
        return hx_cli_usage_error("generate", "--logits needs --json");
    int crc = hx_probe_offload_check(&a->off);
    return crc ? crc : hx_probe_check(&a->probe);
}

/* The prompt's ids: --tokens as given, or -p through the tokenizer. */
static int make_prompt(gen_run *r)
{
    eng_err err = {0};
    const eng_gguf *g = eng_model_gguf(r->m);
    int trc = eng_tokenizer_open_gguf(&r->tok, g, &err);
    if (trc)
        r->tok = NULL;
    if (r->a->tokens)
        return parse_ids(r->a->tokens, &r->prompt, &r->n_prompt);
    if (trc)
        return hx_cli_fail("generate", trc, "%s: cannot tokenize the prompt: %s (use --tokens IDS)",
                       r->a->model, err.msg);
    size_t n = 0;
    int flags = ENG_TOK_ADD_SPECIAL | (r->a->no_special ? 0 : ENG_TOK_PARSE_SPECIAL);
    int rc = eng_tokenizer_encode(r->tok, r->a->prompt, strlen(r->a->prompt), flags, &r->prompt,
                                  &n, &err);
    if (rc)
        return hx_cli_fail("generate", rc, "prompt: %s", err.msg);
    r->n_prompt = (int64_t)n;
    if (n == 0)
        return hx_cli_usage_error("generate", "-p: the prompt gives no tokens");
    return 0;
}

static int on_token(void *user, int32_t token)
{
    (void)token;
    gen_run *r = user;
    if (r->logits && !r->logits_taken) /* first call: logits are still the prompt's */
        memcpy(r->logits, eng_session_logits(r->s),
               (size_t)eng_model_hparams(r->m)->n_vocab * sizeof(float));
    r->logits_taken = true;
    return 0;
}

static double peak_rss_mib(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss / 1024.0;
}

static double sum_ms(const gen_run *r)
{
    double t = 0;
    for (int64_t i = 0; i < r->res.n_tokens; i++)
        t += r->res.decode_ms[i];
    return t;
}

/* ---- JSON sections: one function per key, NULL omits the key ----------- */

static json_t *ids_json(const int32_t *ids, int64_t n)
{
    json_t *a = json_array();
    for (int64_t i = 0; i < n; i++)
        json_array_append_new(a, json_integer(ids[i]));
    return a;
}

static json_t *j_model(const gen_run *r)
{
    const eng_hparams *hp = eng_model_hparams(r->m);
    return json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}",
                     "path", r->a->model, "arch", hp->arch, "n_layer", (json_int_t)hp->n_layer,
                     "n_layer_dense", (json_int_t)hp->n_layer_dense, "n_layer_moe",
                     (json_int_t)hp->n_layer_moe, "n_embd", (json_int_t)hp->n_embd, "n_expert",
                     (json_int_t)hp->n_expert, "n_vocab", (json_int_t)hp->n_vocab,
                     "n_ctx", (json_int_t)eng_session_n_ctx(r->s), "kv_cache_bytes",
                     (json_int_t)eng_model_kv_bytes(r->m, eng_session_n_ctx(r->s)),
                     "decode_bytes_per_token", (json_int_t)eng_model_decode_bytes(r->m),
                     "layer_params_per_token", (json_int_t)eng_model_layer_params(r->m),
                     "head_params", (json_int_t)eng_model_head_params(r->m));
}
static json_t *j_prompt(const gen_run *r) { return ids_json(r->prompt, r->n_prompt); }
static json_t *j_tokens(const gen_run *r) { return ids_json(r->res.tokens, r->res.n_tokens); }
/* Length of the valid UTF-8 sequence at s (n bytes left), 0 if invalid. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    size_t len = s[0] < 0x80 ? 1 : (s[0] >> 5) == 6 ? 2 : (s[0] >> 4) == 14 ? 3
               : (s[0] >> 3) == 30 ? 4 : 0;
    if (len == 0 || len > n || (len == 2 && s[0] < 0xc2) || (len == 4 && s[0] > 0xf4))
        return 0;
    for (size_t i = 1; i < len; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    if ((len == 3 && s[0] == 0xe0 && s[1] < 0xa0) || (len == 3 && s[0] == 0xed && s[1] >= 0xa0) ||
        (len == 4 && s[0] == 0xf0 && s[1] < 0x90) || (len == 4 && s[0] == 0xf4 && s[1] >= 0x90))
        return 0; /* overlong, surrogate, beyond U+10FFFF */
    return len;
}

/* JSON strings must be UTF-8: invalid bytes become U+FFFD, as llama.cpp
 * shows them. */
static json_t *j_text(const gen_run *r)
{
    if (!r->text)
        return json_null();
    size_t n = strlen(r->text), o = 0;
    char *buf = malloc(3 * n + 1);
    if (!buf)
        return json_null();
    const unsigned char *s = (const unsigned char *)r->text;
    for (size_t i = 0; i < n;) {
        size_t l = utf8_len(s + i, n - i);
        if (l) {
            memcpy(buf + o, s + i, l);
            o += l, i += l;
        } else {
            memcpy(buf + o, "\xEF\xBF\xBD", 3);
            o += 3, i++;
        }
    }
    json_t *v = json_stringn(buf, o);
    free(buf);
    return v ? v : json_null();
}

static json_t *j_decode_ms(const gen_run *r)
{
    json_t *a = json_array();
    for (int64_t i = 0; i < r->res.n_tokens; i++)
        json_array_append_new(a, json_real(r->res.decode_ms[i]));
    return a;
}

static json_t *j_summary(const gen_run *r)
{
    double dms = sum_ms(r), pms = r->res.prefill_ms;
    return json_pack("{s:I, s:I, s:f, s:f, s:f, s:f, s:f, s:f, s:i, s:f}", "prompt_tokens",
                     (json_int_t)r->n_prompt, "generated_tokens", (json_int_t)r->res.n_tokens,
                     "prefill_ms", pms, "prefill_tok_s", pms > 0 ? r->n_prompt * 1e3 / pms : 0.0,
                     "decode_ms", dms, "decode_tok_s",
                     dms > 0 ? (double)r->res.n_tokens * 1e3 / dms : 0.0, "prefill_cpu_ms",
                     r->res.prefill_cpu_ms, "decode_cpu_ms", r->res.decode_cpu_ms, "threads",
                     eng_session_threads(r->s), "peak_rss_mib", peak_rss_mib());
}

static json_t *j_store(const gen_run *r)
{
    eng_store_stats st;
    eng_store_get_stats(eng_session_store(r->s), &st);
    return json_pack("{s:s, s:I, s:I, s:I, s:I, s:I}", "kind",
                     eng_store_kind(eng_session_store(r->s)), "acquires", (json_int_t)st.acquires,
                     "hits", (json_int_t)st.hits, "misses", (json_int_t)st.misses,
                     "bytes_loaded", (json_int_t)st.bytes_loaded, "wait_ns",
                     (json_int_t)st.wait_ns);
}

static json_t *j_logits(const gen_run *r)
{
    if (!r->logits)
        return NULL;
    json_t *a = json_array();
    for (int64_t i = 0; i < eng_model_hparams(r->m)->n_vocab; i++)
        json_array_append_new(a, json_real(r->logits[i]));
    return a;
}

static const struct {
    const char *key;
    json_t *(*fn)(const gen_run *r);
} json_sections[] = {
    {"model", j_model},         {"prompt_tokens", j_prompt}, {"tokens", j_tokens},
    {"text", j_text},           {"decode_ms", j_decode_ms},  {"summary", j_summary},
    {"store", j_store},         {"logits", j_logits},
};

static void print_json(const gen_run *r)
{
    json_t *root = json_object();
    for (size_t i = 0; i < sizeof json_sections / sizeof json_sections[0]; i++) {
        json_t *v = json_sections[i].fn(r);
        if (v)
            json_object_set_new(root, json_sections[i].key, v);
    }
    hx_probe_offload_json(r->off, root, r->res.decode_ms, r->res.n_tokens);
    hx_probe_json(&r->a->probe, root);
    json_dumpf(root, stdout, JSON_COMPACT | JSON_PRESERVE_ORDER);
    fputc('\n', stdout);
    json_decref(root);
}

static void print_text(const gen_run *r)
{
    if (r->text)
        printf("%s\n", r->text);
    else
        for (int64_t i = 0; i < r->res.n_tokens; i++)
            printf("%s%d", i ? " " : "", r->res.tokens[i]);
    if (!r->text)
        putchar('\n');
    double dms = sum_ms(r), pms = r->res.prefill_ms;
    fprintf(stderr,
            "prompt %" PRId64 " tokens, generated %" PRId64 " tokens, prefill %.2f tok/s, "
            "decode %.2f tok/s, peak RSS %.1f MiB\n",
            r->n_prompt, r->res.n_tokens, pms > 0 ? r->n_prompt * 1e3 / pms : 0.0,
            dms > 0 ? (double)r->res.n_tokens * 1e3 / dms : 0.0, peak_rss_mib());
    hx_probe_offload_print(r->off, stderr, r->res.decode_ms, r->res.n_tokens, r->res.prefill_ms);
    hx_probe_print(&r->a->probe, stderr);
}

static int run(gen_run *r)
{
    const gen_args *a = r->a;
    eng_err err = {0};
    int rc = make_prompt(r);
    if (rc)
        return rc;
    const eng_hparams *hp = eng_model_hparams(r->m);
    eng_session_opts so = {.n_threads = a->threads, .n_batch = a->batch,
                           .n_ctx = a->ctx ? a->ctx : r->n_prompt + a->n_predict};
    if ((rc = hx_probe_offload_open(r->off, r->m, a->sampler.seed, r->n_prompt, &so.n_batch, &so.store, &so.hooks)))
        return rc;
    so.expert_keep = hx_probe_offload_keep(r->off);
    if ((rc = hx_probe_open(r->probe, r->m, r->n_prompt, &so.n_batch, so.hooks,
                            &so.hooks)))
        return rc;
    if ((rc = eng_session_open(&r->s, r->m, &so, &err)))
        return hx_cli_fail("generate", rc, "%s", err.msg);
    const int64_t n_batch = eng_session_n_batch(r->s);
    if ((rc = hx_probe_offload_set_prompt(r->off, r->n_prompt, n_batch)) ||
        (rc = hx_probe_set_prompt(r->probe, r->n_prompt, n_batch)))
        return rc;
    if (a->logits && !(r->logits = calloc((size_t)hp->n_vocab, sizeof(float))))
        return hx_cli_fail("generate", ENG_ENOMEM, "out of memory");
    eng_generate_opts go = {.n_predict = a->n_predict, .sampler = a->sampler, .eos = -1,
                            .on_token = on_token, .user = r};
    if (r->tok && !a->ignore_eos)
        go.eos = eng_tokenizer_eos(r->tok);
    if ((rc = eng_generate(r->s, r->prompt, r->n_prompt, &go, &r->res, &err)))
        return hx_cli_fail("generate", rc, "%s", err.msg);
    if ((rc = hx_probe_offload_finish(r->off)) || (rc = hx_probe_finish(r->probe)))
        return rc;
    if (r->logits && !r->logits_taken)
        on_token(r, -1);
    size_t len;
    if (r->tok && eng_tokenizer_decode(r->tok, r->res.tokens, (size_t)r->res.n_tokens, &r->text,
                                       &len, &err))
        r->text = NULL;
    if (a->json)
        print_json(r);
    else
        print_text(r);
    return HX_CLI_EXIT_OK;
}

int hx_cli_cmd_generate(int argc, char **argv)
{
    gen_args a;
    int rc = parse_args(argc, argv, &a);
    if (rc)
        return rc < 0 ? HX_CLI_EXIT_OK : rc;
    gen_run r = {.a = &a, .off = &a.off, .probe = &a.probe};
    eng_err err = {0};
    eng_model *m = NULL;
    /* file tier: only the store's pread reads the file after open, so a
     * file that shrinks is a clear ENG_EIO, not a SIGBUS (docs/offloading.md) */
    eng_model_opts mo = {.prefault = a.prefault, .in_ram = a.in_ram,
                         .private_dense = hx_probe_offload_private_dense(&a.off)};
    if ((rc = hx_cli_input("generate", "-m", a.model)))
        return rc;
    if ((rc = eng_model_open(&m, a.model, &mo, &err)))
        return hx_cli_fail("generate", rc, "%s", err.msg);
    r.m = m;
    rc = run(&r);
    eng_generate_result_free(&r.res);
    eng_session_free(r.s);
    hx_probe_offload_free(&a.off); /* the store's loader threads call the probe's hooks */
    hx_probe_free(&a.probe);
    eng_tokenizer_free(r.tok);
    free(r.prompt);
    free(r.logits);
    free(r.text);
    eng_model_free(m);
    return rc;
}
