/*
 * cmd_mkmodel.c — `moebench mkmodel`: write a synthetic MoE model (GGUF)
 * from a preset, or list the presets.
 */
#include "harness/cli/cli.h"
#include "harness/cli/cli_impl.h"

#include "engine/mkmodel.h"
#include "engine/tokenizer.h"

#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char usage_text[] =
    "usage: moebench mkmodel --preset NAME [--arch ARCH] [--type TYPE] [--seed N]\n"
    "                        [--layers N] [--router-locality X] [--vocab bpe|spm]\n"
    "                        [--vocab-from tokenizer.json [--vocab-pre NAME]]\n"
    "                        [--mla-legacy] -o FILE.gguf\n"
    "       moebench mkmodel --list\n\n"
    "Writes a synthetic Mixture-of-Experts model that llama.cpp and moebench load:\n"
    "metadata and tensor names as llama.cpp's converter writes them, seeded random\n"
    "weights, a vocabulary learnt from a built-in text. The same options give the\n"
    "same bytes.\n\n"
    "  --preset NAME         tiny-mixtral, tiny-qwen2moe, tiny-qwen3moe, tiny-olmoe,\n"
    "                        tiny-k-mixtral, tiny-k-qwen2moe, tiny-k-qwen3moe,\n"
    "                        tiny-k-olmoe (widths of 256, for K-quants),\n"
    "                        tiny-deepseek2, tiny-deepseek2-lite, tiny-gpt-oss,\n"
    "                        tiny-glm4moe,\n"
    "                        mixtral-8x7b, qwen1.5-moe-a2.7b, qwen3-30b-a3b,\n"
    "                        olmoe-1b-7b, deepseek-v2-lite, deepseek-v3, kimi-k2,\n"
    "                        gpt-oss-20b, gpt-oss-120b, glm-4.5-air, glm-4.5\n"
    "                        (--list shows their dimensions)\n"
    "  --arch ARCH           mixtral (= llama), qwen2moe, qwen3moe, olmoe, deepseek2,\n"
    "                        gpt-oss, glm4moe; optional, must match the preset's\n"
    "                        architecture\n"
    "  --type TYPE           a format, every weight matrix in it (llama-quantize\n"
    "                        --pure): f32 (default), f16, bf16, q8_0, q4_0, q4_1,\n"
    "                        q5_0, q5_1, iq4_nl, q3_k, q4_k, q5_k; or a mix with\n"
    "                        llama-quantize's per-tensor choices: q2_k, q3_k_m,\n"
    "                        q4_k_s, q4_k_m, q5_k_m, q6_k, iq4_xs; or mxfp4 (experts\n"
    "                        in MXFP4, other matrices bf16: the converter's gpt-oss).\n"
    "                        Norms, biases and routers stay f32; rows that do not fit\n"
    "                        a type's block fall back as llama.cpp does (q4_k -> q5_0,\n"
    "                        q6_k -> q8_0, ...); `moebench info` lists the types\n"
    "  --seed N              weights seed (default 1)\n"
    "  --layers N            keep the first N layers (default: the preset's); a\n"
    "                        model with dense leading layers keeps at least one\n"
    "                        MoE layer\n"
    "  --router-locality X   0..1 (default 0): tokens of one topic (block of ids)\n"
    "                        route to the same experts; see docs/engine.md\n"
    "  --vocab KIND          bpe (default: byte-level BPE, 'gpt2', as Qwen and OLMoE)\n"
    "                        or spm (SentencePiece, 'llama', as real Mixtral files)\n"
    "  --mla-legacy          deepseek2: the older form of MLA files (attn_kv_b,\n"
    "                        per-head KV cache) instead of attn_k_b/attn_v_b; the\n"
    "                        same weights, so both forms compute the same logits\n"
    "  --vocab-from FILE     the vocabulary of a Hugging Face tokenizer.json instead\n"
    "                        (tokens, merges, types, special tokens; byte-level BPE\n"
    "                        or SentencePiece-style BPE), written as llama.cpp's\n"
    "                        converter writes it; the model gets as many token rows.\n"
    "                        tokenizer_config.json and config.json beside it are\n"
    "                        read when present\n"
    "  --vocab-pre NAME      with --vocab-from: the pre-tokenizer to write when it\n"
    "                        cannot be told from the file (" ENG_PRETOK_NAMES ")\n"
    "  -o, --output FILE     the GGUF file to write (replaced atomically)\n"
    "  --list                presets with dimensions and estimated sizes\n"
    "  -h, --help            this text\n";

static int list_presets(void)
{
    printf("%-20s %-9s %6s %6s %7s %8s %6s %6s %7s %10s %10s\n", "PRESET", "ARCH", "EMBD",
           "LAYERS", "HEADS", "EXPERTS", "FF", "SHARED", "VOCAB", "F32", "Q8_0");
    for (size_t i = 0; i < eng_mkmodel_preset_count(); i++) {
        const eng_mkmodel_preset *p = eng_mkmodel_preset_at(i);
        uint64_t sz[2] = {0, 0};
        int types[2] = {ENG_MK_F32, ENG_MK_Q8_0};
        for (int t = 0; t < 2; t++) {
            eng_mkmodel_opts o = {.preset = p->name, .type = types[t]};
            eng_mkmodel_info info;
            if (eng_mkmodel_plan(&o, &info, NULL) == ENG_OK)
                sz[t] = info.file_bytes;
        }
        char heads[16], experts[16], a[32], b[32];
        snprintf(heads, sizeof heads, "%u/%u", p->n_head, p->n_head_kv);
        snprintf(experts, sizeof experts, "%u/%u", p->n_expert, p->n_expert_used);
        hx_cli_human_bytes(sz[0], a, sizeof a);
        hx_cli_human_bytes(sz[1], b, sizeof b);
        printf("%-20s %-9s %6u %6u %7s %8s %6u %6u %7u %10s %10s\n", p->name, p->arch, p->n_embd,
               p->n_layer, heads, experts, p->n_ff_exp, p->n_ff_shexp, p->n_vocab, a, b);
    }
    printf("\nSizes are for all layers; --layers N scales the layer part.\n");
    return HX_CLI_EXIT_OK;
}

static double since(const struct timespec *t0)
{
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0->tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0->tv_nsec);
}

static int run_write(eng_mkmodel_opts *o, const char *out)
{
    eng_err err = {0};
    eng_mkmodel_info info;
    int rc = eng_mkmodel_plan(o, &info, &err);
    if (rc)
        return rc == ENG_EINVAL ? hx_cli_usage_error("mkmodel", "%s", err.msg)
                                : hx_cli_fail("mkmodel", rc, "%s", err.msg);
    hx_cli_progress ps = {.cmd = "mkmodel", .last_pct = -1};
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (isatty(STDERR_FILENO)) {
        o->progress = hx_cli_progress_bytes;
        o->progress_user = &ps;
    }
    hx_cli_make_parent(out);
    rc = eng_mkmodel_write(o, out, &err);
    if (rc)
        return hx_cli_fail("mkmodel", rc, "%s", err.msg);
    char sz[32];
    hx_cli_human_bytes(info.file_bytes, sz, sizeof sz);
    printf("wrote %s: %s %s %s, %u layers, %.3g M params, %" PRIu64 " bytes (%s), %.2f s\n", out,
           info.hp.name, info.hp.arch, eng_mkmodel_type_name(o->type), info.hp.n_layer,
           (double)info.n_params / 1e6, info.file_bytes, sz, since(&t0));
    return HX_CLI_EXIT_OK;
}

int hx_cli_cmd_mkmodel(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"preset", required_argument, 0, 'p'}, {"arch", required_argument, 0, 'a'},
        {"type", required_argument, 0, 't'},   {"seed", required_argument, 0, 's'},
        {"layers", required_argument, 0, 'l'}, {"router-locality", required_argument, 0, 'r'},
        {"output", required_argument, 0, 'o'}, {"list", no_argument, 0, 'L'},
        {"vocab", required_argument, 0, 'V'},  {"help", no_argument, 0, 'h'},
        {"mla-legacy", no_argument, 0, 'M'},
        {"vocab-from", required_argument, 0, 'F'}, {"vocab-pre", required_argument, 0, 'P'},
        {0, 0, 0, 0},
    };
    eng_mkmodel_opts o = {.type = ENG_MK_F32, .seed = 1};
    const char *out = NULL;
    int c, list = 0, v;
    int64_t seed;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "+ho:", longopts, NULL)) != -1) {
        switch (c) {
        case 'p': o.preset = optarg; break;
        case 'a': o.arch = optarg; break;
        case 't':
            if (eng_mkmodel_type_parse(optarg, &o.type))
                return hx_cli_usage_error("mkmodel", "unknown --type '%s' (" ENG_MKMODEL_TYPES ")",
                                      optarg);
            break;
        case 's':
            if (hx_cli_parse_i64("mkmodel", "--seed", optarg, 0, INT64_MAX, &seed))
                return HX_CLI_EXIT_USAGE;
            o.seed = (uint64_t)seed;
            break;
        case 'l':
            if (hx_cli_parse_int("mkmodel", "--layers", optarg, 1, 4096, &v))
                return HX_CLI_EXIT_USAGE;
            o.layers = (uint32_t)v;
            break;
        case 'r':
            if (hx_cli_parse_double("mkmodel", "--router-locality", optarg, 0, 1, &o.router_locality))
                return HX_CLI_EXIT_USAGE;
            break;
        case 'V':
            if (strcmp(optarg, "bpe") && strcmp(optarg, "spm"))
                return hx_cli_usage_error("mkmodel", "--vocab: '%s' is not bpe or spm", optarg);
            o.vocab = optarg[0] == 's' ? ENG_MK_VOCAB_SPM : ENG_MK_VOCAB_BPE;
            break;
        case 'F': o.vocab_from = optarg; break;
        case 'P': o.vocab_pre = optarg; break;
        case 'o': out = optarg; break;
        case 'L': list = 1; break;
        case 'M': o.mla_legacy = true; break;
        case 'h': fputs(usage_text, stdout); return HX_CLI_EXIT_OK;
        default: return hx_cli_usage_error("mkmodel", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return hx_cli_usage_error("mkmodel", "unexpected argument '%s'", argv[optind]);
    if (list)
        return list_presets();
    if (!o.preset)
        return hx_cli_usage_error("mkmodel", "--preset is required (see --list)");
    if (!out)
        return hx_cli_usage_error("mkmodel", "-o FILE is required");
    if (o.vocab_from && o.vocab == ENG_MK_VOCAB_SPM)
        return hx_cli_usage_error("mkmodel", "--vocab spm and --vocab-from exclude each other");
    if (o.vocab_pre && !o.vocab_from)
        return hx_cli_usage_error("mkmodel", "--vocab-pre needs --vocab-from");
    return run_write(&o, out);
}
