/*
 * cmd_info.c — `moebench info FILE.gguf`: what a GGUF file holds.
 *
 * Architecture, the `{arch}.*` hyper-parameter keys printed as found (the
 * model loader interprets them), the tensor table, and how many bytes are
 * routed experts (`*_exps*` tensors and legacy per-expert
 * `blk.N.ffn_{gate,up,down}.E.weight`) versus dense weights (everything
 * else, shared experts included: they run for every token). Only the
 * public engine headers are used. A file that does not open is one error
 * line and exit status 2, a missing file included (bad input).
 */
#include "engine/formats.h"
#include "engine/gguf.h"
#include "engine/model.h"
#include "harness/cli/cli.h"
#include "harness/cli/cli_impl.h"

#include <ctype.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage_text[] =
    "usage: moebench info FILE.gguf [--json] [--kv]\n\n"
    "Shows what a GGUF file holds: architecture, the {arch}.* hyper-parameters\n"
    "as stored, the tensor table (name, type, shape, bytes), bytes in routed\n"
    "experts versus dense weights, and the file size. The file is validated\n"
    "completely; a malformed one is reported in one line (exit status 2).\n\n"
    "  --json      one JSON object instead of text\n"
    "  --kv        also every other metadata key (general.*, tokenizer.*, ...)\n"
    "  -h, --help  this text\n";

/* Routed-expert tensors: stacked "*_exps*", or legacy "blk.N.ffn_X.E.weight". */
static int is_expert_tensor(const char *name)
{
    if (strstr(name, "_exps"))
        return 1;
    int layer, expert, n = 0;
    char which[8];
    if (sscanf(name, "blk.%d.ffn_%7[a-z].%d.weight%n", &layer, which, &expert, &n) == 3 &&
        name[n] == '\0')
        return !strcmp(which, "gate") || !strcmp(which, "up") || !strcmp(which, "down");
    return 0;
}

static int starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* A value's bytes, printable: escapes control and non-ASCII bytes, cuts at max. */
static void put_escaped(FILE *f, eng_gguf_str s, size_t max)
{
    size_t n = s.len < max ? (size_t)s.len : max;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s.ptr[i];
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (isprint(c))
            fputc(c, f);
        else
            fprintf(f, "\\x%02x", c);
    }
    if (s.len > max)
        fprintf(f, "...(%" PRIu64 " bytes)", s.len);
}

static void put_scalar(FILE *f, const eng_gguf_kv *kv)
{
    switch (kv->type) {
    case ENG_GGUF_U8: case ENG_GGUF_U16: case ENG_GGUF_U32: case ENG_GGUF_U64:
        fprintf(f, "%" PRIu64, kv->v.u);
        break;
    case ENG_GGUF_I8: case ENG_GGUF_I16: case ENG_GGUF_I32: case ENG_GGUF_I64:
        fprintf(f, "%" PRId64, kv->v.i);
        break;
    case ENG_GGUF_F32: case ENG_GGUF_F64: fprintf(f, "%.9g", kv->v.f); break;
    case ENG_GGUF_BOOL: fputs(kv->v.b ? "true" : "false", f); break;
    case ENG_GGUF_STRING:
        fputc('"', f);
        put_escaped(f, kv->v.s, 200);
        fputc('"', f);
        break;
    default: break;
    }
}

/* "[151936 x string: "!", "\"", ...]" — at most 8 elements shown. */
static void put_array(FILE *f, const eng_gguf *g, int64_t i, const eng_gguf_kv *kv)
{
    fprintf(f, "[%" PRIu64 " x %s", kv->arr_len, eng_gguf_type_name(kv->arr_type));
    uint64_t shown = kv->arr_len < 8 ? kv->arr_len : 8;
    for (uint64_t j = 0; j < shown; j++) {
        fputs(j ? ", " : ": ", f);
        eng_gguf_str s;
        int64_t v;
        float x;
        if (eng_gguf_kv_arr_str(g, i, j, &s, NULL) == ENG_OK) {
            fputc('"', f);
            put_escaped(f, s, 40);
            fputc('"', f);
        } else if (eng_gguf_kv_arr_int(g, i, j, &v, NULL) == ENG_OK) {
            fprintf(f, "%" PRId64, v);
        } else if (eng_gguf_kv_arr_f32(g, i, j, &x, NULL) == ENG_OK) {
            fprintf(f, "%.9g", (double)x);
        } else {
            fputs("?", f);   /* u64 beyond int64 */
        }
    }
    fputs(kv->arr_len > shown ? ", ...]" : "]", f);
}

static void put_kv(FILE *f, const eng_gguf *g, int64_t i)
{
    const eng_gguf_kv *kv = eng_gguf_kv_at(g, i);
    fprintf(f, "  %-48s %-6s ", kv->key, eng_gguf_type_name(kv->type));
    if (kv->type == ENG_GGUF_ARRAY)
        put_array(f, g, i, kv);
    else
        put_scalar(f, kv);
    fputc('\n', f);
}

static void shape_str(const eng_gguf_tensor *t, char *buf, size_t cap)
{
    size_t n = 0;
    buf[0] = '\0';
    for (int d = 0; d < (t->n_dims ? t->n_dims : 1) && n < cap; d++)
        n += (size_t)snprintf(buf + n, cap - n, "%s%" PRId64, d ? " x " : "", t->ne[d]);
}

typedef struct info_totals {
    uint64_t experts, dense;
    const char *arch;   /* NUL-terminated copy, or NULL */
    char prefix[128];   /* "{arch}." */
} info_totals;

static void totals(const eng_gguf *g, info_totals *t)
{
    for (int64_t i = 0; i < eng_gguf_tensor_count(g); i++) {
        const eng_gguf_tensor *ti = eng_gguf_tensor_at(g, i);
        *(is_expert_tensor(ti->name) ? &t->experts : &t->dense) += ti->nbytes;
    }
}

/* How the engine reads the file: the layers it runs and what they are, its
 * attention and KV cache, its router; or why it cannot run the file. */
static json_t *engine_view(const char *path)
{
    eng_model *m = NULL;
    eng_err e = {0};
    if (eng_model_open(&m, path, NULL, &e))
        return json_pack("{s:b, s:s}", "runs", 0, "error", e.msg);
    const eng_hparams *hp = eng_model_hparams(m);
    const eng_arch *a = eng_arch_find(hp->arch);
    const char *attn = eng_attn_kind_name(a->traits.attn);
    if (a->traits.attn == ENG_ATTN_MLA && !hp->mla.absorbed)
        attn = "mla-legacy";
    json_int_t window_layers = 0; /* as model.h's swa_pattern says */
    for (int64_t il = 0; hp->n_swa && il < hp->n_layer; il++)
        window_layers += il % hp->swa_pattern < hp->swa_pattern - 1;
    json_t *v = json_pack("{s:b, s:I, s:I, s:I, s:I, s:s, s:I, s:s, s:I, s:I, s:I, s:I}",
                          "runs", 1,
                          "layers", (json_int_t)hp->n_layer, "dense_layers",
                          (json_int_t)hp->n_layer_dense, "moe_layers",
                          (json_int_t)hp->n_layer_moe, "skipped_layers",
                          (json_int_t)(hp->n_layer_file - hp->n_layer), "attention", attn,
                          "kv_cache_bytes_per_token", (json_int_t)eng_model_kv_bytes(m, 1),
                          "router", eng_gating_name(hp->gating), "expert_groups",
                          (json_int_t)hp->n_group, "expert_groups_used",
                          (json_int_t)hp->n_group_used, "sliding_window", (json_int_t)hp->n_swa,
                          "window_layers", window_layers);
    eng_model_free(m);
    return v;
}

static void print_engine_view(const char *path)
{
    json_t *v = engine_view(path);
    if (!json_is_true(json_object_get(v, "runs"))) {
        printf("engine:        cannot run it: %s\n",
               json_string_value(json_object_get(v, "error")));
        json_decref(v);
        return;
    }
#define I(k) ((long long)json_integer_value(json_object_get(v, k)))
#define S(k) json_string_value(json_object_get(v, k))
    printf("engine:        runs %lld layers (%lld dense FFN, %lld MoE", I("layers"),
           I("dense_layers"), I("moe_layers"));
    if (I("skipped_layers"))
        printf(", %lld next-token-prediction layer%s skipped", I("skipped_layers"),
               I("skipped_layers") == 1 ? "" : "s");
    printf("); attention %s, KV cache %lld bytes per token (f32)\n", S("attention"),
           I("kv_cache_bytes_per_token"));
    if (I("window_layers"))
        printf("  window:      %lld of %lld layers see the last %lld positions only (their "
               "KV cache stops growing there)\n",
               I("window_layers"), I("layers"), I("sliding_window"));
    if (I("moe_layers")) {
        printf("  router:      %s", S("router"));
        if (I("expert_groups") > 1)
            printf(", %lld of %lld expert groups", I("expert_groups_used"), I("expert_groups"));
        printf("\n");
    }
#undef I
#undef S
    json_decref(v);
}

static void print_text(const eng_gguf *g, const info_totals *t, int all_kv)
{
    char a[32], b[32], c[32];
    hx_cli_human_bytes(eng_gguf_file_size(g), a, sizeof a);
    printf("file:          %s\n", eng_gguf_path(g));
    printf("size:          %" PRIu64 " bytes (%s)\n", eng_gguf_file_size(g), a);
    printf("format:        GGUF v%u, alignment %u, tensor data at offset %" PRIu64 "\n",
           eng_gguf_version(g), eng_gguf_alignment(g), eng_gguf_data_offset(g));
    printf("architecture:  %s\n", t->arch ? t->arch : "(none: general.architecture missing)");
    uint64_t total = t->experts + t->dense;
    hx_cli_human_bytes(total, a, sizeof a);
    hx_cli_human_bytes(t->experts, b, sizeof b);
    hx_cli_human_bytes(t->dense, c, sizeof c);
    printf("weights:       %" PRIu64 " bytes (%s) in %" PRId64 " tensors\n", total, a,
           eng_gguf_tensor_count(g));
    printf("  experts:     %" PRIu64 " bytes (%s, %.1f%%)\n", t->experts, b,
           total ? 100.0 * (double)t->experts / (double)total : 0.0);
    printf("  dense:       %" PRIu64 " bytes (%s)\n", t->dense, c);
    print_engine_view(eng_gguf_path(g));
    printf("\nhyper-parameters (%s*):\n", t->arch ? t->prefix : "");
    for (int64_t i = 0; i < eng_gguf_kv_count(g); i++)
        if (t->arch && starts_with(eng_gguf_kv_at(g, i)->key, t->prefix))
            put_kv(stdout, g, i);
    if (all_kv) {
        printf("\nother metadata:\n");
        for (int64_t i = 0; i < eng_gguf_kv_count(g); i++)
            if (!t->arch || !starts_with(eng_gguf_kv_at(g, i)->key, t->prefix))
                put_kv(stdout, g, i);
    }
    printf("\n%-48s %-7s %-28s %14s\n", "TENSOR", "TYPE", "SHAPE (ne)", "BYTES");
    for (int64_t i = 0; i < eng_gguf_tensor_count(g); i++) {
        const eng_gguf_tensor *ti = eng_gguf_tensor_at(g, i);
        char shape[96];
        shape_str(ti, shape, sizeof shape);
        printf("%-48s %-7s %-28s %14" PRIu64 "\n", ti->name, eng_type_name(ti->type), shape,
               ti->nbytes);
    }
}

/* A JSON string of stored bytes; invalid UTF-8 bytes become '?'. */
static json_t *str_json(eng_gguf_str s)
{
    json_t *j = json_stringn(s.ptr, (size_t)s.len);
    if (j)
        return j;
    char *c = eng_gguf_str_dup(s);
    if (!c)
        return json_null();
    for (uint64_t i = 0; i < s.len; i++)
        if ((unsigned char)c[i] >= 0x80 || c[i] == 0)
            c[i] = '?';
    j = json_stringn(c, (size_t)s.len);
    free(c);
    return j ? j : json_null();
}

/* JSON value of kv i (arrays: all elements; strings as stored, cut at NUL). */
static json_t *kv_json(const eng_gguf *g, int64_t i)
{
    const eng_gguf_kv *kv = eng_gguf_kv_at(g, i);
    switch (kv->type) {
    case ENG_GGUF_U8: case ENG_GGUF_U16: case ENG_GGUF_U32: case ENG_GGUF_U64:
        return kv->v.u > INT64_MAX ? json_real((double)kv->v.u) : json_integer((json_int_t)kv->v.u);
    case ENG_GGUF_I8: case ENG_GGUF_I16: case ENG_GGUF_I32: case ENG_GGUF_I64:
        return json_integer(kv->v.i);
    case ENG_GGUF_F32: case ENG_GGUF_F64: return json_real(kv->v.f);
    case ENG_GGUF_BOOL: return json_boolean(kv->v.b);
    case ENG_GGUF_STRING: return str_json(kv->v.s);
    default: break;
    }
    json_t *arr = json_array();
    for (uint64_t j = 0; j < kv->arr_len; j++) {
        eng_gguf_str s;
        int64_t v;
        float x;
        if (eng_gguf_kv_arr_str(g, i, j, &s, NULL) == ENG_OK)
            json_array_append_new(arr, str_json(s));
        else if (eng_gguf_kv_arr_int(g, i, j, &v, NULL) == ENG_OK)
            json_array_append_new(arr, kv->arr_type == ENG_GGUF_BOOL ? json_boolean(v) : json_integer(v));
        else if (eng_gguf_kv_arr_f32(g, i, j, &x, NULL) == ENG_OK)
            json_array_append_new(arr, json_real(x));
        else
            json_array_append_new(arr, json_null());
    }
    return arr;
}

static void print_json(const eng_gguf *g, const info_totals *t, int all_kv)
{
    json_t *root = json_pack("{s:s, s:I, s:i, s:i, s:I, s:o}", "file", eng_gguf_path(g), "size",
                             (json_int_t)eng_gguf_file_size(g), "version", (int)eng_gguf_version(g),
                             "alignment", (int)eng_gguf_alignment(g), "data_offset",
                             (json_int_t)eng_gguf_data_offset(g), "architecture",
                             t->arch ? json_string(t->arch) : json_null());
    json_t *hp = json_object(), *other = json_object();
    for (int64_t i = 0; i < eng_gguf_kv_count(g); i++) {
        const char *key = eng_gguf_kv_at(g, i)->key;
        if (t->arch && starts_with(key, t->prefix))
            json_object_set_new(hp, key, kv_json(g, i));
        else if (all_kv)
            json_object_set_new(other, key, kv_json(g, i));
    }
    json_object_set_new(root, "hparams", hp);
    json_object_set_new(root, "engine", engine_view(eng_gguf_path(g)));
    if (all_kv)
        json_object_set_new(root, "kv", other);
    else
        json_decref(other);
    json_t *ts = json_array();
    for (int64_t i = 0; i < eng_gguf_tensor_count(g); i++) {
        const eng_gguf_tensor *ti = eng_gguf_tensor_at(g, i);
        json_t *shape = json_array();
        for (int d = 0; d < ti->n_dims; d++)
            json_array_append_new(shape, json_integer(ti->ne[d]));
        json_array_append_new(ts, json_pack("{s:s, s:s, s:o, s:I, s:I, s:b}", "name", ti->name, "type",
                                            eng_type_name(ti->type), "ne", shape, "bytes",
                                            (json_int_t)ti->nbytes, "offset",
                                            (json_int_t)ti->file_offset, "expert",
                                            is_expert_tensor(ti->name)));
    }
    json_object_set_new(root, "tensors", ts);
    json_object_set_new(root, "bytes", json_pack("{s:I, s:I, s:I}", "experts", (json_int_t)t->experts,
                                                 "dense", (json_int_t)t->dense, "total",
                                                 (json_int_t)(t->experts + t->dense)));
    json_dumpf(root, stdout, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
    fputc('\n', stdout);
    json_decref(root);
}

int hx_cli_cmd_info(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"json", no_argument, 0, 'j'}, {"kv", no_argument, 0, 'k'}, {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    int json = 0, all_kv = 0, c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case 'j': json = 1; break;
        case 'k': all_kv = 1; break;
        case 'h': fputs(usage_text, stdout); return HX_CLI_EXIT_OK;
        default: return hx_cli_usage_error("info", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind != argc - 1)
        return hx_cli_usage_error("info", optind < argc ? "exactly one FILE.gguf expected" : "missing FILE.gguf");
    eng_gguf *g;
    eng_err err = {0};
    int rc = eng_gguf_open(&g, argv[optind], &err);
    if (rc)   /* a file that cannot be read is bad input here, I/O errors included */
        return hx_cli_fail("info", rc == ENG_ENOMEM ? rc : ENG_EFORMAT, "%s", err.msg);
    info_totals t = {0};
    char *arch = NULL;
    if (eng_gguf_get_strdup(g, "general.architecture", &arch, NULL) == ENG_OK) {
        t.arch = arch;
        snprintf(t.prefix, sizeof t.prefix, "%.100s.", arch);
    }
    totals(g, &t);
    if (json)
        print_json(g, &t, all_kv);
    else
        print_text(g, &t, all_kv);
    free(arch);
    eng_gguf_free(g);
    return HX_CLI_EXIT_OK;
}
