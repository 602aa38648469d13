/*
 * cmd_tokenize.c — `moebench tokenize`: a text through a GGUF file's
 * tokenizer, the ids and the pieces, as a user checks a tokenizer (in the
 * manner of llama.cpp's llama-tokenize, whose defaults it shares: special
 * tokens written in the text are parsed, BOS/EOS added as the file says).
 *
 * Only the vocabulary is read (the tensors are not loaded). Pieces are
 * printed with C escapes for control characters, quotes and bytes that are
 * not valid UTF-8, so every byte of a piece can be seen; a control token
 * shows its text.
 */
#include "engine/gguf.h"
#include "engine/tokenizer.h"
#include "harness/cli/cli.h"
#include "harness/cli/cli_impl.h"

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage_text[] =
    "usage: moebench tokenize -m FILE.gguf (-p TEXT | -f FILE | --jsonl FILE) [--ids]\n"
    "                         [--no-bos] [--no-special] [--escape]\n\n"
    "Tokenizes a text with the tokenizer of a GGUF file (byte-level BPE with any\n"
    "pre-tokenizer llama.cpp has for the MoE families, or SentencePiece) and prints\n"
    "one line per token: the id and the piece, quoted, with C escapes (\\n, \\t,\n"
    "\\xNN for bytes that are not UTF-8). Special tokens written in the text\n"
    "(<|im_start|>, <s>) are those tokens, as in llama.cpp; BOS/EOS are added as\n"
    "the file's tokenizer.ggml.add_bos_token / add_eos_token say.\n\n"
    "  -m, --model FILE   the GGUF file (only its tokenizer.ggml.* keys are read)\n"
    "  -p, --prompt TEXT  the text, as given\n"
    "  -f, --file FILE    the text: the file's bytes, a final newline included\n"
    "  --jsonl FILE       many texts: one JSON string per line (blank lines are\n"
    "                     skipped); prints one JSON list of ids per text\n"
    "  --ids              only the ids, as a list: [1, 2, 3]\n"
    "  --no-bos           add no BOS/EOS (llama-tokenize's --no-bos)\n"
    "  --no-special       control tokens written in the text are plain text\n"
    "                     (user-defined ones stay tokens, as in llama.cpp)\n"
    "  -e, --escape       turn \\n \\r \\t \\' \\\" \\\\ and \\xNN in -p TEXT into the\n"
    "                     characters (as llama.cpp's tools do by default)\n"
    "  -h, --help         this text\n";

typedef struct tok_args {
    const char *model, *prompt, *file, *jsonl;
    int ids, no_bos, no_special, escape;
} tok_args;

static int parse_args(int argc, char **argv, tok_args *a)
{
    static const struct option lo[] = {
        {"model", required_argument, 0, 'm'}, {"prompt", required_argument, 0, 'p'},
        {"file", required_argument, 0, 'f'},  {"ids", no_argument, 0, 'I'},
        {"no-bos", no_argument, 0, 'B'},      {"no-special", no_argument, 0, 'S'},
        {"escape", no_argument, 0, 'e'},      {"help", no_argument, 0, 'h'},
        {"jsonl", required_argument, 0, 'J'}, {0, 0, 0, 0},
    };
    *a = (tok_args){0};
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "+hm:p:f:e", lo, NULL)) != -1) {
        switch (c) {
        case 'm': a->model = optarg; break;
        case 'p': a->prompt = optarg; break;
        case 'f': a->file = optarg; break;
        case 'I': a->ids = 1; break;
        case 'B': a->no_bos = 1; break;
        case 'S': a->no_special = 1; break;
        case 'e': a->escape = 1; break;
        case 'J': a->jsonl = optarg; break;
        case 'h': fputs(usage_text, stdout); return -1;
        default: return hx_cli_usage_error("tokenize", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return hx_cli_usage_error("tokenize", "unexpected argument '%s'", argv[optind]);
    if (!a->model)
        return hx_cli_usage_error("tokenize", "-m FILE.gguf is required");
    if (!!a->prompt + !!a->file + !!a->jsonl != 1)
        return hx_cli_usage_error("tokenize", "give exactly one of -p TEXT, -f FILE and --jsonl FILE");
    if (a->escape && !a->prompt)
        return hx_cli_usage_error("tokenize", "--escape applies to -p TEXT");
    return 0;
}

/* The whole file, any bytes. */
static int read_file(const char *path, char **out, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return hx_cli_fail("tokenize", ENG_EIO, "%s: %s", path, strerror(errno));
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap)
            break;
        char *nb = cap <= SIZE_MAX / 2 ? realloc(buf, cap * 2) : NULL;
        if (!nb)
            free(buf);
        buf = nb;
        cap *= 2;
    }
    int bad = ferror(f);
    fclose(f);
    if (!buf)
        return hx_cli_fail("tokenize", ENG_ENOMEM, "%s: out of memory", path);
    if (bad) {
        free(buf);
        return hx_cli_fail("tokenize", ENG_EIO, "%s: read error", path);
    }
    *out = buf;
    *len = n;
    return 0;
}

static int hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
         : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* llama.cpp's string_process_escapes: \n \r \t \' \" \\ \xNN; any other
 * backslash stays. In place; returns the new length. */
static size_t unescape(char *s)
{
    size_t o = 0, n = strlen(s);
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '\\' || i + 1 >= n) {
            s[o++] = s[i];
            continue;
        }
        char c = s[++i];
        const char *from = "nrt'\"\\", *to = "\n\r\t'\"\\", *k = strchr(from, c);
        if (c && k) {
            s[o++] = to[k - from];
        } else if (c == 'x' && i + 2 < n && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
            s[o++] = (char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
            i += 2;
        } else {
            s[o++] = '\\';
            s[o++] = c;
        }
    }
    s[o] = 0;
    return o;
}

/* Length of the valid UTF-8 character at s (n > 0), 0 if invalid. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    size_t need = s[0] < 0x80 ? 1 : (s[0] >> 5) == 6 ? 2 : (s[0] >> 4) == 14 ? 3
                : (s[0] >> 3) == 30 ? 4 : 0;
    if (need == 0 || need > n || (need == 2 && s[0] < 0xC2))
        return 0;
    for (size_t i = 1; i < need; i++)
        if ((s[i] & 0xC0) != 0x80)
            return 0;
    if (need == 3 && ((s[0] == 0xE0 && s[1] < 0xA0) || (s[0] == 0xED && s[1] >= 0xA0)))
        return 0;
    if (need == 4 && ((s[0] == 0xF0 && s[1] < 0x90) || s[0] > 0xF4 || (s[0] == 0xF4 && s[1] >= 0x90)))
        return 0;
    return need;
}

static void put_piece(const char *p, size_t n)
{
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)p[i];
        size_t l = utf8_len((const unsigned char *)p + i, n - i);
        if (c == '\n' || c == '\t' || c == '\r' || c == '\\' || c == '\'') {
            printf("\\%c", c == '\n' ? 'n' : c == '\t' ? 't' : c == '\r' ? 'r' : (char)c);
        } else if (l == 0 || c < 0x20 || c == 0x7F) {
            printf("\\x%02x", c);
            l = 1;
        } else {
            fwrite(p + i, 1, l, stdout);
        }
        i += l ? l : 1;
    }
}

static void print_tokens(const eng_tokenizer *t, const int32_t *ids, size_t n, int only_ids)
{
    if (only_ids)
        putchar('[');
    for (size_t i = 0; i < n; i++) {
        if (only_ids) {
            printf(i ? ", %d" : "%d", ids[i]);
            continue;
        }
        char small[256];
        int len = eng_tokenizer_piece(t, ids[i], small, sizeof small);
        size_t tl;
        const char *text = eng_tokenizer_token_text(t, ids[i], &tl);
        int silent = len == 0 && tl > 0; /* control/unused: show the text */
        const char *p = silent ? text : small;
        size_t pl = silent ? tl : (size_t)len;
        char *big = NULL;
        if (!silent && (size_t)len >= sizeof small && (big = malloc((size_t)len + 1))) {
            eng_tokenizer_piece(t, ids[i], big, (size_t)len + 1);
            p = big;
        }
        printf("%6d -> '", ids[i]);
        put_piece(p, pl < sizeof small || big || silent ? pl : sizeof small - 1);
        puts("'");
        free(big);
    }
    if (only_ids)
        puts("]");
}

static int encode_print(const tok_args *a, const eng_tokenizer *t, const char *text,
                        size_t len, int only_ids)
{
    int flags = (a->no_bos ? 0 : ENG_TOK_ADD_SPECIAL) | (a->no_special ? 0 : ENG_TOK_PARSE_SPECIAL);
    int32_t *ids = NULL;
    size_t n = 0;
    eng_err err = {0};
    int rc = eng_tokenizer_encode(t, text, len, flags, &ids, &n, &err);
    if (rc)
        rc = hx_cli_fail("tokenize", rc, "%s: %s", a->model, err.msg);
    else
        print_tokens(t, ids, n, only_ids);
    free(ids);
    return rc;
}

/* --jsonl: one JSON string per line (blank lines skipped). */
static int run_jsonl(const tok_args *a, const eng_tokenizer *t, const char *buf, size_t len)
{
    size_t line = 0;
    for (size_t i = 0; i < len;) {
        const char *nl = memchr(buf + i, '\n', len - i);
        size_t end = nl ? (size_t)(nl - buf) : len;
        line++;
        size_t j = i;
        while (j < end && (buf[j] == ' ' || buf[j] == '\t' || buf[j] == '\r'))
            j++;
        if (j < end) {
            json_error_t je;
            json_t *v = json_loadb(buf + i, end - i, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
            int rc = 0;
            if (!json_is_string(v))
                rc = hx_cli_fail("tokenize", ENG_EFORMAT, "%s:%zu: %s", a->jsonl, line,
                             v ? "not a JSON string" : je.text);
            else
                rc = encode_print(a, t, json_string_value(v), json_string_length(v), 1);
            json_decref(v);
            if (rc)
                return rc;
        }
        i = end + 1;
    }
    return 0;
}

static int run(const tok_args *a, const char *text, size_t len)
{
    eng_gguf *g = NULL;
    eng_tokenizer *t = NULL;
    eng_err err = {0};
    int rc = eng_gguf_open(&g, a->model, &err);
    if (!rc)
        rc = eng_tokenizer_open_gguf(&t, g, &err);
    if (rc) {
        eng_gguf_free(g);
        return hx_cli_fail("tokenize", rc, "%s", err.msg);
    }
    rc = a->jsonl ? run_jsonl(a, t, text, len) : encode_print(a, t, text, len, a->ids);
    eng_tokenizer_free(t);
    eng_gguf_free(g);
    if (!rc && fflush(stdout))
        rc = hx_cli_fail("tokenize", ENG_EIO, "writing stdout: %s", strerror(errno));
    return rc;
}

int hx_cli_cmd_tokenize(int argc, char **argv)
{
    tok_args a;
    int rc = parse_args(argc, argv, &a);
    if (rc)
        return rc < 0 ? HX_CLI_EXIT_OK : rc;
    char *text = NULL;
    size_t len = 0;
    if (a.file || a.jsonl) {
        if ((rc = read_file(a.file ? a.file : a.jsonl, &text, &len)))
            return rc;
    } else {
        if (!(text = strdup(a.prompt)))
            return hx_cli_fail("tokenize", ENG_ENOMEM, "out of memory");
        len = a.escape ? unescape(text) : strlen(text);
    }
    rc = run(&a, text, len);
    free(text);
    return rc;
}
