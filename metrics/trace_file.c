/*
 * trace_file.c — the .moetrace format: streaming reader and capture writer.
 *
 * Layout (little-endian; docs/metrics.md has the table):
 *   header, 64 bytes: "MOETRACE", u32 version (1), u32 flags, u32 layers,
 *     u32 experts, u32 top_k, u32 header size (64 or 72), u64 samples,
 *     u64 tokens, u64 index offset, u64 index size; a 72-byte header adds
 *     u32 layer_offset (the model layer of trace layer 0) and u32 0, and is
 *     written only when layer_offset > 0, so other traces stay byte for byte
 *     what they were
 *   one chunk per sample, in sample order, right after the header, no gaps:
 *     ids u16 [L][T][k] (layer-major), zero-padded to a multiple of 4 bytes;
 *     weights f32 [L][T][k] if flag WEIGHTS; token ids i32 [T] if flag TOKENS
 *   index at the index offset: per sample {u64 tokens, u32 label bytes,
 *     u32 0}, with flag PROMPT followed by {u32 prompt tokens, u32 prompt
 *     batch} (entries of 24 bytes instead of 16), then the label bytes of
 *     every sample concatenated (no NULs);
 *   the file ends right after the index.
 * Chunk offsets are not stored: they follow from the token counts, which
 * leaves nothing to overlap or point outside the file. Layer-major chunks
 * make one layer of one sample a single contiguous pread, so gathering a
 * layer costs S reads and no more memory than the layer itself; a sample
 * (all layers) is one read too.
 *
 * The writer keeps only the current sample in memory (token slots in
 * arrival order, found by position, so token-major decode and layer-major
 * prefill batches both work), writes it layer-major in position order when
 * the sample ends, and writes the index and the final header at close. Until then the
 * header's index offset is 0, so a file from a crashed capture is rejected.
 */
#include "metrics/trace.h"
#include "metrics/trace_impl.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the .moetrace reader/writer assumes a little-endian host"
#endif

#define HDR_SIZE 64     /* the base header                                */
#define HDR_EXT 72      /* with layer_offset                              */
#define IDX_ENTRY 16     /* an index entry; with MET_TRACE_PROMPT:       */
#define IDX_ENTRY_PROMPT 24
static const char MAGIC[8] = {'M', 'O', 'E', 'T', 'R', 'A', 'C', 'E'};

struct met_trace_reader {
    char *path;
    uint32_t hdr;            /* header bytes: HDR_SIZE or HDR_EXT        */
    int fd;                  /* -1 when mem holds the trace              */
    met_trace *mem;          /* non-.moetrace formats                    */
    met_trace_info info;
    int64_t *sample_start;   /* [S+1] (file) or mem's                    */
    uint64_t *chunk_off;     /* [S] byte offset of each sample's chunk   */
    char **labels;           /* [S] or NULL                              */
    met_trace_prompt *prompt;/* [S] or NULL (file) or mem's              */
};

static uint64_t idx_entry(const met_trace_info *in)
{
    return in->flags & MET_TRACE_PROMPT ? IDX_ENTRY_PROMPT : IDX_ENTRY;
}

/* Bytes of a sample's chunk: T tokens. Overflow was excluded by
 * met_trace_info_check (tokens * L * k < INT64_MAX / 8). */
static uint64_t ids_bytes(const met_trace_info *in, int64_t T)
{
    return ((uint64_t)in->num_layers * (uint64_t)T * (uint64_t)in->top_k * 2 + 3) & ~(uint64_t)3;
}

static uint64_t chunk_bytes(const met_trace_info *in, int64_t T)
{
    uint64_t n = (uint64_t)in->num_layers * (uint64_t)T * (uint64_t)in->top_k;
    uint64_t b = ids_bytes(in, T);
    if (in->flags & MET_TRACE_WEIGHTS)
        b += n * 4;
    if (in->flags & MET_TRACE_TOKENS)
        b += (uint64_t)T * 4;
    return b;
}

static uint32_t rd32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t rd64(const unsigned char *p) { return rd32(p) | (uint64_t)rd32(p + 4) << 32; }
static void wr32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}
static void wr64(unsigned char *p, uint64_t v)
{
    wr32(p, (uint32_t)v);
    wr32(p + 4, (uint32_t)(v >> 32));
}

static int pread_full(int fd, void *buf, size_t n, uint64_t off, const char *path, eng_err *err)
{
    unsigned char *p = buf;
    while (n) {
        ssize_t r = pread(fd, p, n, (off_t)off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return eng_err_set(err, ENG_EIO, "%s: read: %s", path, strerror(errno));
        if (r == 0)
            return eng_err_set(err, ENG_EFORMAT, "%s: truncated at byte %llu", path,
                               (unsigned long long)off);
        p += r, n -= (size_t)r, off += (uint64_t)r;
    }
    return ENG_OK;
}

static int write_full(int fd, const void *buf, size_t n, const char *path, eng_err *err)
{
    const unsigned char *p = buf;
    while (n) {
        ssize_t r = write(fd, p, n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return eng_err_set(err, ENG_EIO, "%s: write: %s", path, strerror(errno));
        p += r, n -= (size_t)r;
    }
    return ENG_OK;
}

/* ---- reader -------------------------------------------------------------- */

static int parse_header(met_trace_reader *r, const unsigned char *h, uint64_t fsize,
                        uint64_t *ioff, uint64_t *isize, eng_err *err)
{
    const char *p = r->path;
    if (memcmp(h, MAGIC, 8))
        return eng_err_set(err, ENG_EFORMAT, "%s: magic: not a .moetrace file", p);
    if (rd32(h + 8) != 1)
        return eng_err_set(err, ENG_EFORMAT, "%s: version %u not supported (1 is)", p,
                           rd32(h + 8));
    r->hdr = rd32(h + 28);
    if (r->hdr != HDR_SIZE && r->hdr != HDR_EXT)
        return eng_err_set(err, ENG_EFORMAT, "%s: header_size %u, expected 64 or 72", p, r->hdr);
    uint32_t L = rd32(h + 16), E = rd32(h + 20), k = rd32(h + 24);
    uint64_t S = rd64(h + 32), N = rd64(h + 40);
    if (L > MET_TRACE_MAX_LAYERS || E > MET_TRACE_MAX_EXPERTS || k > E)
        return eng_err_set(err, ENG_EFORMAT, "%s: layers/experts/top_k %u/%u/%u out of range", p,
                           L, E, k);
    if (S > fsize / IDX_ENTRY || N > (uint64_t)INT64_MAX)
        return eng_err_set(err, ENG_EFORMAT, "%s: num_samples %llu larger than the file allows",
                           p, (unsigned long long)S);
    r->info = (met_trace_info){.num_layers = (int32_t)L, .num_experts = (int32_t)E,
                               .top_k = (int32_t)k, .flags = rd32(h + 12),
                               .num_samples = (int64_t)S, .num_tokens = (int64_t)N};
    int rc = met_trace_info_check(&r->info, p, err);
    if (rc)
        return rc;
    *ioff = rd64(h + 48), *isize = rd64(h + 56);
    if (*ioff < r->hdr || *ioff > fsize || *isize != fsize - *ioff)
        return eng_err_set(err, ENG_EFORMAT,
                           "%s: index_offset/index_size %llu/%llu do not match file size %llu "
                           "(unfinished capture or truncated file)",
                           p, (unsigned long long)*ioff, (unsigned long long)*isize,
                           (unsigned long long)fsize);
    if (*isize / idx_entry(&r->info) < S)
        return eng_err_set(err, ENG_EFORMAT, "%s: index_size %llu too small for %llu samples", p,
                           (unsigned long long)*isize, (unsigned long long)S);
    return ENG_OK;
}

/* Index entries -> sample_start, chunk offsets, labels; every count is
 * checked against what remains before it is used. */
static int parse_index(met_trace_reader *r, const unsigned char *idx, uint64_t ioff,
                       uint64_t isize, eng_err *err)
{
    const char *p = r->path;
    int64_t S = r->info.num_samples;
    const uint64_t ent = idx_entry(&r->info);
    uint64_t off = r->hdr, lab_total = 0, lab_room = isize - (uint64_t)S * ent;
    r->sample_start[0] = 0;
    for (int64_t s = 0; s < S; s++) {
        const unsigned char *e = idx + s * ent;
        uint64_t T = rd64(e), lab = rd32(e + 8);
        if (T > (uint64_t)(r->info.num_tokens - r->sample_start[s]))
            return eng_err_set(err, ENG_EFORMAT, "%s: sample %lld: tokens %llu exceed num_tokens",
                               p, (long long)s, (unsigned long long)T);
        if (lab > MET_TRACE_MAX_LABEL || lab > lab_room - lab_total || rd32(e + 12) != 0)
            return eng_err_set(err, ENG_EFORMAT, "%s: sample %lld: bad label length %llu", p,
                               (long long)s, (unsigned long long)lab);
        if (lab && !(r->info.flags & MET_TRACE_LABELS))
            return eng_err_set(err, ENG_EFORMAT, "%s: sample %lld: label without labels flag", p,
                               (long long)s);
        r->sample_start[s + 1] = r->sample_start[s] + (int64_t)T;
        if (r->prompt) {
            r->prompt[s] = (met_trace_prompt){rd32(e + 16), rd32(e + 20)};
            int rc = met_prompt_check(r->prompt[s], (int64_t)T, p, s, err);
            if (rc)
                return rc;
        }
        r->chunk_off[s] = off;
        uint64_t cb = chunk_bytes(&r->info, (int64_t)T);
        if (cb > ioff - off)
            return eng_err_set(err, ENG_EFORMAT, "%s: sample %lld: chunk runs past the index", p,
                               (long long)s);
        off += cb;
        lab_total += lab;
    }
    if (r->sample_start[S] != r->info.num_tokens || off != ioff || lab_total != lab_room)
        return eng_err_set(err, ENG_EFORMAT,
                           "%s: index: token counts/chunk sizes/labels do not add up to the header",
                           p);
    if (!(r->info.flags & MET_TRACE_LABELS))
        return ENG_OK;
    r->labels = calloc(S ? (size_t)S : 1, sizeof *r->labels);
    if (!r->labels)
        return eng_err_set(err, ENG_ENOMEM, "%s: out of memory", p);
    const char *lb = (const char *)idx + S * ent;
    for (int64_t s = 0; s < S; s++) {
        uint32_t n = rd32(idx + s * ent + 8);
        if (memchr(lb, 0, n))
            return eng_err_set(err, ENG_EFORMAT, "%s: sample %lld: label contains NUL", p,
                               (long long)s);
        if (!(r->labels[s] = strndup(lb, n)))
            return eng_err_set(err, ENG_ENOMEM, "%s: out of memory", p);
        lb += n;
    }
    return ENG_OK;
}

static int open_file(met_trace_reader *r, eng_err *err)
{
    struct stat st;
    unsigned char h[HDR_EXT];
    if ((r->fd = open(r->path, O_RDONLY | O_CLOEXEC)) < 0 || fstat(r->fd, &st))
        return eng_err_set(err, ENG_EIO, "%s: %s", r->path, strerror(errno));
    if (!S_ISREG(st.st_mode))
        return eng_err_set(err, ENG_EFORMAT, "%s: not a regular file", r->path);
    uint64_t fsize = (uint64_t)st.st_size, ioff = 0, isize = 0;
    if (fsize < HDR_SIZE)
        return eng_err_set(err, ENG_EFORMAT, "%s: header: file is %llu bytes, header needs 64",
                           r->path, (unsigned long long)fsize);
    int rc = pread_full(r->fd, h, HDR_SIZE, 0, r->path, err);
    if (!rc)
        rc = parse_header(r, h, fsize, &ioff, &isize, err);
    if (!rc && r->hdr == HDR_EXT) /* parse_header checked ioff >= 72 <= fsize */
        rc = pread_full(r->fd, h + HDR_SIZE, HDR_EXT - HDR_SIZE, HDR_SIZE, r->path, err);
    if (!rc && r->hdr == HDR_EXT) {
        r->info.layer_offset = (int32_t)rd32(h + 64);
        if (rd32(h + 64) > MET_TRACE_MAX_LAYERS || rd32(h + 68) != 0)
            rc = eng_err_set(err, ENG_EFORMAT, "%s: layer_offset %u / reserved %u: out of range",
                             r->path, rd32(h + 64), rd32(h + 68));
    }
    if (rc)
        return rc;
    size_t S = (size_t)r->info.num_samples;
    unsigned char *idx = malloc(isize ? isize : 1);
    r->sample_start = malloc((S + 1) * sizeof *r->sample_start);
    r->chunk_off = malloc((S ? S : 1) * sizeof *r->chunk_off);
    if (r->info.flags & MET_TRACE_PROMPT)
        r->prompt = calloc(S ? S : 1, sizeof *r->prompt);
    if (!idx || !r->sample_start || !r->chunk_off ||
        ((r->info.flags & MET_TRACE_PROMPT) && !r->prompt))
        rc = eng_err_set(err, ENG_ENOMEM, "%s: out of memory for the index", r->path);
    if (!rc)
        rc = pread_full(r->fd, idx, isize, ioff, r->path, err);
    if (!rc)
        rc = parse_index(r, idx, ioff, isize, err);
    free(idx);
    return rc;
}

int met_trace_reader_open(met_trace_reader **out, const char *path, met_trace_format fmt,
                          eng_err *err)
{
    *out = NULL;
    met_trace_reader *r = calloc(1, sizeof *r);
    if (!r || !(r->path = strdup(path))) {
        free(r);
        return eng_err_set(err, ENG_ENOMEM, "%s: out of memory", path);
    }
    r->fd = -1;
    if (fmt == MET_FMT_AUTO)
        fmt = met_trace_format_guess(path);
    int rc;
    if (fmt == MET_FMT_MOETRACE) {
        rc = open_file(r, err);
    } else {
        rc = met_trace_load(&r->mem, path, fmt, err);
        if (!rc) {
            r->info = r->mem->info;
            r->sample_start = r->mem->sample_start;
            r->labels = r->mem->labels;
            r->prompt = r->mem->prompt;
        }
    }
    if (rc) {
        met_trace_reader_free(r);
        return rc;
    }
    *out = r;
    return ENG_OK;
}

void met_trace_reader_free(met_trace_reader *r)
{
    if (!r)
        return;
    if (r->mem) {
        met_trace_free(r->mem);
    } else {
        if (r->labels)
            for (int64_t s = 0; s < r->info.num_samples; s++)
                free(r->labels[s]);
        free(r->labels);
        free(r->sample_start);
        free(r->prompt);
    }
    free(r->chunk_off);
    if (r->fd >= 0)
        close(r->fd);
    free(r->path);
    free(r);
}

const met_trace_info *met_trace_reader_info(const met_trace_reader *r) { return &r->info; }
const int64_t *met_trace_reader_sample_start(const met_trace_reader *r)
{
    return r->sample_start;
}
const char *met_trace_reader_label(const met_trace_reader *r, int64_t s)
{
    return r->labels && s >= 0 && s < r->info.num_samples && r->labels[s] ? r->labels[s] : "";
}
met_trace_prompt met_trace_reader_prompt(const met_trace_reader *r, int64_t s)
{
    return r->prompt && s >= 0 && s < r->info.num_samples ? r->prompt[s] : (met_trace_prompt){0};
}
const met_trace *met_trace_reader_trace(const met_trace_reader *r) { return r->mem; }

static int check_block(const met_trace_reader *r, int64_t s, int32_t layer, const uint16_t *ids,
                       const float *w, int64_t T, eng_err *err)
{
    int32_t k = r->info.top_k;
    for (int64_t t = 0; t < T; t++) {
        int rc = met_ids_check(ids + t * k, k, r->info.num_experts, r->path, s, t, layer, err);
        if (rc)
            return rc;
        for (int32_t q = 0; w && q < k; q++)
            if (!isfinite(w[t * k + q]))
                return eng_err_set(err, ENG_EFORMAT,
                                   "%s: sample %lld token %lld layer %d: weight not finite",
                                   r->path, (long long)s, (long long)t, (int)layer);
    }
    return ENG_OK;
}

int met_trace_reader_layer(met_trace_reader *r, int32_t layer, uint16_t *ids, float *w,
                           eng_err *err)
{
    const met_trace_info *in = &r->info;
    if (layer < 0 || layer >= in->num_layers)
        return eng_err_set(err, ENG_EINVAL, "%s: layer %d out of range", r->path, (int)layer);
    if (!(in->flags & MET_TRACE_WEIGHTS))
        w = NULL;
    int32_t L = in->num_layers, k = in->top_k;
    if (r->mem) {
        met_trace_gather_layer(r->mem, layer, ids);
        for (int64_t g = 0; w && g < in->num_tokens; g++)
            memcpy(w + g * k, r->mem->weights + ((size_t)g * L + layer) * k, (size_t)k * 4);
        return ENG_OK;
    }
    for (int64_t s = 0; s < in->num_samples; s++) {
        int64_t T = r->sample_start[s + 1] - r->sample_start[s], g = r->sample_start[s];
        size_t n = (size_t)T * (size_t)k;
        uint64_t off = r->chunk_off[s];
        int rc = pread_full(r->fd, ids + g * k, n * 2, off + (uint64_t)layer * n * 2, r->path, err);
        if (!rc && w)
            rc = pread_full(r->fd, w + g * k, n * 4,
                            off + ids_bytes(in, T) + (uint64_t)layer * n * 4, r->path, err);
        if (!rc)
            rc = check_block(r, s, layer, ids + g * k, w ? w + g * k : NULL, T, err);
        if (rc)
            return rc;
    }
    return ENG_OK;
}

int met_trace_reader_sample(met_trace_reader *r, int64_t s, uint16_t *ids, float *w,
                            eng_err *err)
{
    const met_trace_info *in = &r->info;
    if (s < 0 || s >= in->num_samples)
        return eng_err_set(err, ENG_EINVAL, "%s: sample %lld out of range", r->path, (long long)s);
    if (!(in->flags & MET_TRACE_WEIGHTS))
        w = NULL;
    int32_t L = in->num_layers, k = in->top_k;
    int64_t T = r->sample_start[s + 1] - r->sample_start[s], g0 = r->sample_start[s];
    size_t n = (size_t)T * (size_t)k;
    if (r->mem) {
        for (int32_t l = 0; l < L; l++)
            for (int64_t t = 0; t < T; t++) {
                size_t src = ((size_t)(g0 + t) * L + l) * k, dst = l * n + (size_t)t * k;
                memcpy(ids + dst, r->mem->ids + src, (size_t)k * 2);
                if (w)
                    memcpy(w + dst, r->mem->weights + src, (size_t)k * 4);
            }
        return ENG_OK;
    }
    int rc = pread_full(r->fd, ids, n * L * 2, r->chunk_off[s], r->path, err);
    if (!rc && w)
        rc = pread_full(r->fd, w, n * L * 4, r->chunk_off[s] + ids_bytes(in, T), r->path, err);
    for (int32_t l = 0; !rc && l < L; l++)
        rc = check_block(r, s, l, ids + l * n, w ? w + l * n : NULL, T, err);
    return rc;
}

int met_trace_load_moetrace(met_trace **out, const char *path, eng_err *err)
{
    *out = NULL;
    met_trace_reader *r;
    int rc = met_trace_reader_open(&r, path, MET_FMT_MOETRACE, err);
    if (rc)
        return rc;
    const met_trace_info *in = &r->info;
    int64_t S = in->num_samples;
    int64_t *counts = malloc((S ? (size_t)S : 1) * sizeof *counts);
    met_trace *t = NULL;
    if (!counts)
        rc = eng_err_set(err, ENG_ENOMEM, "%s: out of memory", path);
    for (int64_t s = 0; !rc && s < S; s++)
        counts[s] = r->sample_start[s + 1] - r->sample_start[s];
    if (!rc)
        rc = met_trace_alloc(&t, in, counts, err);
    int32_t L = in->num_layers, k = in->top_k;
    /* Per layer: gather into a scratch [tokens][k] and scatter. */
    uint16_t *ids = NULL;
    float *w = NULL;
    size_t n = (size_t)in->num_tokens * (size_t)k;
    if (!rc && (!(ids = malloc(n ? n * 2 : 1)) ||
                (t->weights && !(w = malloc(n ? n * 4 : 1)))))
        rc = eng_err_set(err, ENG_ENOMEM, "%s: out of memory", path);
    for (int32_t l = 0; !rc && l < L; l++) {
        rc = met_trace_reader_layer(r, l, ids, w, err);
        for (int64_t g = 0; !rc && g < in->num_tokens; g++) {
            memcpy(t->ids + ((size_t)g * L + l) * k, ids + g * k, (size_t)k * 2);
            if (w)
                memcpy(t->weights + ((size_t)g * L + l) * k, w + g * k, (size_t)k * 4);
        }
    }
    for (int64_t s = 0; !rc && t->token_ids && s < S; s++) {
        int64_t T = counts[s];
        uint64_t off = r->chunk_off[s] + ids_bytes(in, T);
        if (in->flags & MET_TRACE_WEIGHTS)
            off += (uint64_t)T * L * k * 4;
        rc = pread_full(r->fd, t->token_ids + r->sample_start[s], (size_t)T * 4, off, path, err);
    }
    for (int64_t s = 0; !rc && t->labels && s < S; s++)
        rc = met_trace_set_label(t, s, r->labels[s], err);
    for (int64_t s = 0; !rc && t->prompt && s < S; s++)
        t->prompt[s] = r->prompt[s];
    free(ids), free(w), free(counts);
    met_trace_reader_free(r);
    if (rc) {
        met_trace_free(t);
        return rc;
    }
    *out = t;
    return ENG_OK;
}

/* ---- writer -------------------------------------------------------------- */

struct met_trace_writer {
    char *path;
    int fd;
    met_trace_info info;      /* num_samples/num_tokens count what was written */
    eng_err first;            /* first error; code ENG_OK while healthy        */
    /* current sample: token slots in arrival order, [T][L][k] */
    int in_sample;
    char *label;
    met_trace_prompt prompt;  /* of the current sample                       */
    int64_t T, cap;
    uint16_t *ids;
    float *w;
    int32_t *tok;             /* [cap] token id of each slot                    */
    int64_t *tpos;            /* [cap] position of each slot                    */
    int64_t *order;           /* [T] slots sorted by position                   */
    int32_t *ndone;           /* [cap] layers delivered to each slot            */
    uint8_t *seen;            /* [cap][L] which layers                          */
    /* finished samples: index entries and labels */
    int64_t ncap;
    uint64_t *counts;
    char **labels;
    met_trace_prompt *prompts;
    uint64_t off;             /* next chunk's byte offset                      */
};

static uint32_t header_bytes(const met_trace_info *in)
{
    return in->layer_offset ? HDR_EXT : HDR_SIZE;
}

/* The header (header_bytes of it); index_offset 0 (at open, until close)
 * marks an unfinished capture. */
static void encode_header(unsigned char *h, const met_trace_info *in, uint64_t ioff,
                          uint64_t isize)
{
    memset(h, 0, HDR_EXT);
    memcpy(h, MAGIC, 8);
    wr32(h + 8, 1), wr32(h + 12, in->flags), wr32(h + 16, (uint32_t)in->num_layers);
    wr32(h + 20, (uint32_t)in->num_experts), wr32(h + 24, (uint32_t)in->top_k);
    wr32(h + 28, header_bytes(in)), wr64(h + 32, (uint64_t)in->num_samples);
    wr64(h + 40, (uint64_t)in->num_tokens), wr64(h + 48, ioff), wr64(h + 56, isize);
    wr32(h + 64, (uint32_t)in->layer_offset);
}

static int wfail(met_trace_writer *w, eng_err *err, int code, const char *fmt, const char *a)
{
    if (!w->first.code)
        eng_err_set(&w->first, code, fmt, w->path, a);
    if (err)
        *err = w->first;
    return w->first.code;
}

int met_trace_writer_open(met_trace_writer **out, const char *path, const met_trace_info *info,
                          eng_err *err)
{
    *out = NULL;
    met_trace_info in = *info;
    in.num_samples = in.num_tokens = 0;
    in.flags &= (uint32_t)(MET_TRACE_WEIGHTS | MET_TRACE_TOKENS);
    eng_err ce = {0};
    int rc = met_trace_info_check(&in, path, &ce);
    if (rc)
        return eng_err_set(err, rc == ENG_EFORMAT ? ENG_EINVAL : rc, "%s", ce.msg);
    met_trace_writer *w = calloc(1, sizeof *w);
    if (!w || !(w->path = strdup(path))) {
        free(w);
        return eng_err_set(err, ENG_ENOMEM, "%s: out of memory", path);
    }
    w->info = in;
    w->off = header_bytes(&in);
    w->fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    unsigned char h[HDR_EXT];
    encode_header(h, &in, 0, 0);
    if (w->fd < 0 || write_full(w->fd, h, header_bytes(&in), path, err)) {
        rc = w->fd < 0 ? eng_err_set(err, ENG_EIO, "%s: %s", path, strerror(errno)) : err->code;
        if (w->fd >= 0)
            close(w->fd);
        free(w->path), free(w);
        return rc;
    }
    *out = w;
    return ENG_OK;
}

/* Transposes the buffered sample to layer-major and writes its chunk. */
static int flush_sample(met_trace_writer *w, eng_err *err)
{
    const met_trace_info *in = &w->info;
    if (!w->in_sample)
        return ENG_OK;
    int32_t L = in->num_layers, k = in->top_k;
    int64_t T = w->T;
    for (int64_t i = 0; i < T; i++)
        if (w->ndone[i] != L)
            return wfail(w, err, ENG_EINVAL,
                         "%s: a token of the sample did not get every layer%s", "");
    eng_err pe = {0};
    if (met_prompt_check(w->prompt, T, w->path, w->info.num_samples, &pe))
        return wfail(w, err, ENG_EINVAL, "%s%s", pe.msg + strlen(w->path));
    size_t n = (size_t)T * k, ib = ids_bytes(in, T);
    size_t bytes = chunk_bytes(in, T);
    unsigned char *buf = calloc(bytes ? bytes : 1, 1);
    if (!buf)
        return wfail(w, err, ENG_ENOMEM, "%s: out of memory%s", "");
    for (int32_t l = 0; l < L; l++)
        for (int64_t t = 0; t < T; t++) {
            size_t slot = (size_t)w->order[t];
            memcpy(buf + (l * n + (size_t)t * k) * 2, w->ids + (slot * L + l) * k,
                   (size_t)k * 2);
            if (in->flags & MET_TRACE_WEIGHTS)
                memcpy(buf + ib + (l * n + (size_t)t * k) * 4, w->w + (slot * L + l) * k,
                       (size_t)k * 4);
        }
    for (int64_t t = 0; (in->flags & MET_TRACE_TOKENS) && t < T; t++)
        memcpy(buf + bytes - (size_t)(T - t) * 4, &w->tok[w->order[t]], 4);
    eng_err e = {0};
    int rc = write_full(w->fd, buf, bytes, w->path, &e);
    free(buf);
    if (rc)
        return wfail(w, err, rc, "%s%s", e.msg + strlen(w->path));
    if (w->info.num_samples == w->ncap) {
        int64_t nc = w->ncap ? 2 * w->ncap : 64;
        uint64_t *c = realloc(w->counts, (size_t)nc * sizeof *c);
        char **lb = c ? realloc(w->labels, (size_t)nc * sizeof *lb) : NULL;
        met_trace_prompt *pr = lb ? realloc(w->prompts, (size_t)nc * sizeof *pr) : NULL;
        if (c)
            w->counts = c;
        if (lb)
            w->labels = lb;
        if (!pr)
            return wfail(w, err, ENG_ENOMEM, "%s: out of memory%s", "");
        w->prompts = pr, w->ncap = nc;
    }
    w->counts[w->info.num_samples] = (uint64_t)T;
    w->prompts[w->info.num_samples] = w->prompt;
    w->labels[w->info.num_samples++] = w->label;
    w->label = NULL;
    w->info.num_tokens += T;
    w->off += bytes;
    w->in_sample = 0;
    return ENG_OK;
}

int met_trace_writer_begin_sample(met_trace_writer *w, const char *label, eng_err *err)
{
    if (w->first.code)
        return wfail(w, err, w->first.code, "%s%s", "");
    int rc = flush_sample(w, err);
    if (rc)
        return rc;
    if (label && strlen(label) > MET_TRACE_MAX_LABEL)
        return wfail(w, err, ENG_EINVAL, "%s: label longer than 4096 bytes%s", "");
    if (label && *label) {
        if (!(w->label = strdup(label)))
            return wfail(w, err, ENG_ENOMEM, "%s: out of memory%s", "");
        w->info.flags |= MET_TRACE_LABELS;
    }
    w->in_sample = 1;
    w->T = 0;
    w->prompt = (met_trace_prompt){0};
    return ENG_OK;
}

static int grow_tokens(met_trace_writer *w, eng_err *err)
{
    int64_t nc = w->cap ? 2 * w->cap : 256;
    size_t per = (size_t)w->info.num_layers * w->info.top_k, L = (size_t)w->info.num_layers;
    void *p;
#define GROW(field, bytes)                                                                     \
    if (!(p = realloc(w->field, (bytes))))                                                     \
        return wfail(w, err, ENG_ENOMEM, "%s: out of memory%s", "");                           \
    w->field = p;
    GROW(ids, (size_t)nc * per * 2);
    if (w->info.flags & MET_TRACE_WEIGHTS) {
        GROW(w, (size_t)nc * per * 4);
    }
    GROW(tok, (size_t)nc * sizeof *w->tok);
    GROW(tpos, (size_t)nc * sizeof *w->tpos);
    GROW(order, (size_t)nc * sizeof *w->order);
    GROW(ndone, (size_t)nc * sizeof *w->ndone);
    GROW(seen, (size_t)nc * L);
#undef GROW
    w->cap = nc;
    return ENG_OK;
}

/* The slot of position pos in the current sample, made if new. Tokens
 * usually arrive in position order (decode, or token-major prefill), so a
 * new position is appended; a layer-major batch revisits earlier positions,
 * found by binary search. */
static int64_t token_slot(met_trace_writer *w, int64_t pos, int64_t token, eng_err *err)
{
    int64_t lo = 0, hi = w->T; /* first order index with tpos >= pos */
    if (w->T && w->tpos[w->order[w->T - 1]] < pos)
        lo = w->T;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if (w->tpos[w->order[mid]] < pos)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < w->T && w->tpos[w->order[lo]] == pos)
        return w->order[lo];
    if (token < INT32_MIN || token > INT32_MAX) {
        wfail(w, err, ENG_EINVAL, "%s: token id out of int32 range%s", "");
        return -1;
    }
    if (w->T == w->cap && grow_tokens(w, err))
        return -1;
    int64_t slot = w->T++;
    memmove(w->order + lo + 1, w->order + lo, (size_t)(slot - lo) * sizeof *w->order);
    w->order[lo] = slot;
    w->tpos[slot] = pos, w->tok[slot] = (int32_t)token, w->ndone[slot] = 0;
    memset(w->seen + (size_t)slot * w->info.num_layers, 0, (size_t)w->info.num_layers);
    return slot;
}

int met_trace_writer_set_prompt(met_trace_writer *w, met_trace_prompt p, eng_err *err)
{
    if (w->first.code)
        return wfail(w, err, w->first.code, "%s%s", "");
    if (!w->in_sample && met_trace_writer_begin_sample(w, NULL, err))
        return w->first.code;
    if (p.tokens < 0 || p.batch < 0 || p.tokens > UINT32_MAX || p.batch > UINT32_MAX)
        return wfail(w, err, ENG_EINVAL, "%s: prompt batching out of range%s", "");
    w->prompt = p;
    w->info.flags |= MET_TRACE_PROMPT;
    return ENG_OK;
}

int met_trace_writer_route(met_trace_writer *w, int32_t layer, int64_t pos, int64_t token,
                           int32_t k, const int32_t *experts, const float *weights, eng_err *err)
{
    const met_trace_info *in = &w->info;
    if (w->first.code)
        return wfail(w, err, w->first.code, "%s%s", "");
    if (!w->in_sample && met_trace_writer_begin_sample(w, NULL, err))
        return w->first.code;
    if (layer < 0 || layer >= in->num_layers || k != in->top_k)
        return wfail(w, err, ENG_EINVAL, "%s: routing event with bad layer or top_k%s", "");
    if ((in->flags & MET_TRACE_WEIGHTS) && !weights)
        return wfail(w, err, ENG_EINVAL, "%s: weights missing%s", "");
    int64_t slot = token_slot(w, pos, token, err);
    if (slot < 0)
        return w->first.code;
    uint8_t *seen = w->seen + (size_t)slot * in->num_layers;
    if (seen[layer])
        return wfail(w, err, ENG_EINVAL, "%s: layer delivered twice for one token%s", "");
    size_t o = ((size_t)slot * in->num_layers + layer) * k;
    for (int32_t r = 0; r < k; r++) {
        if (experts[r] < 0 || experts[r] >= in->num_experts)
            return wfail(w, err, ENG_EINVAL, "%s: expert id out of range%s", "");
        w->ids[o + r] = (uint16_t)experts[r];
        if (in->flags & MET_TRACE_WEIGHTS)
            w->w[o + r] = weights[r];
    }
    eng_err e = {0};
    if (met_ids_check(w->ids + o, k, in->num_experts, w->path, 0, slot, layer, &e))
        return wfail(w, err, ENG_EINVAL, "%s: expert id repeated within a token%s", "");
    seen[layer] = 1;
    w->ndone[slot]++;
    return ENG_OK;
}

void met_trace_writer_hook(void *user, const eng_routing_event *ev)
{
    met_trace_writer_route(user, ev->layer, ev->pos, ev->token, ev->top_k, ev->experts,
                           ev->weights, NULL);
}

static int write_index(met_trace_writer *w, eng_err *err)
{
    const met_trace_info *in = &w->info;
    size_t lab = 0;
    for (int64_t s = 0; s < in->num_samples; s++)
        lab += w->labels[s] ? strlen(w->labels[s]) : 0;
    const uint64_t ent = idx_entry(in);
    size_t isize = (size_t)in->num_samples * ent + lab;
    unsigned char *b = calloc(isize ? isize : 1, 1);
    if (!b)
        return wfail(w, err, ENG_ENOMEM, "%s: out of memory%s", "");
    unsigned char *lp = b + in->num_samples * ent;
    for (int64_t s = 0; s < in->num_samples; s++) {
        size_t n = w->labels[s] ? strlen(w->labels[s]) : 0;
        wr64(b + s * ent, w->counts[s]);
        wr32(b + s * ent + 8, (uint32_t)n);
        if (in->flags & MET_TRACE_PROMPT) {
            wr32(b + s * ent + 16, (uint32_t)w->prompts[s].tokens);
            wr32(b + s * ent + 20, (uint32_t)w->prompts[s].batch);
        }
        memcpy(lp, w->labels[s] ? w->labels[s] : "", n);
        lp += n;
    }
    eng_err e = {0};
    int rc = write_full(w->fd, b, isize, w->path, &e);
    free(b);
    unsigned char h[HDR_EXT];
    encode_header(h, in, w->off, isize);
    if (!rc && pwrite(w->fd, h, header_bytes(in), 0) != (ssize_t)header_bytes(in))
        rc = eng_err_set(&e, ENG_EIO, "%s: write header: %s", w->path, strerror(errno));
    if (rc)
        return wfail(w, err, rc, "%s%s", e.msg + strlen(w->path));
    return ENG_OK;
}

int met_trace_writer_close(met_trace_writer *w, eng_err *err)
{
    if (!w)
        return ENG_OK;
    if (!w->first.code && !flush_sample(w, err))
        write_index(w, err);
    if (close(w->fd) && !w->first.code)
        wfail(w, err, ENG_EIO, "%s: close failed%s", "");
    int rc = w->first.code;
    if (rc && err)
        *err = w->first;
    for (int64_t s = 0; s < w->info.num_samples; s++)
        free(w->labels[s]);
    free(w->labels), free(w->counts), free(w->prompts), free(w->label), free(w->seen);
    free(w->tpos);
    free(w->order), free(w->ndone), free(w->ids), free(w->w), free(w->tok), free(w->path);
    free(w);
    return rc;
}

int met_trace_write_moetrace(const met_trace *t, const char *path, eng_err *err)
{
    const met_trace_info *in = &t->info;
    met_trace_writer *w;
    met_trace_info wi = *in;
    wi.flags &= (uint32_t)(MET_TRACE_WEIGHTS | MET_TRACE_TOKENS);
    int rc = met_trace_writer_open(&w, path, &wi, err);
    if (rc)
        return rc;
    int32_t L = in->num_layers, k = in->top_k;
    int32_t *ex = malloc((size_t)k * sizeof *ex);
    if (!ex)
        rc = eng_err_set(err, ENG_ENOMEM, "%s: out of memory", path);
    for (int64_t s = 0; !rc && s < in->num_samples; s++) {
        rc = met_trace_writer_begin_sample(w, t->labels ? t->labels[s] : NULL, err);
        if (!rc && t->prompt)
            rc = met_trace_writer_set_prompt(w, t->prompt[s], err);
        for (int64_t g = t->sample_start[s]; !rc && g < t->sample_start[s + 1]; g++)
            for (int32_t l = 0; !rc && l < L; l++) {
                size_t o = ((size_t)g * L + l) * k;
                for (int32_t r = 0; r < k; r++)
                    ex[r] = t->ids[o + r];
                rc = met_trace_writer_route(w, l, g - t->sample_start[s],
                                            t->token_ids ? t->token_ids[g] : 0, k, ex,
                                            t->weights ? t->weights + o : NULL, err);
            }
    }
    free(ex);
    eng_err e2 = {0};
    int rc2 = met_trace_writer_close(w, &e2);
    if (!rc && rc2) {
        rc = rc2;
        if (err)
            *err = e2;
    }
    return rc;
}
