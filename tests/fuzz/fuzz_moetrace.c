/*
 * fuzz_moetrace.c — libFuzzer target for every trace reader. The first
 * byte picks the format (moetrace, json, csv, safetensors), the rest is the
 * file. A file that loads is also streamed layer by layer and, when small,
 * run through the metrics, so whatever a reader accepts must satisfy the
 * invariants the metrics index arrays by.
 *   make fuzz && build-fuzz/fuzz_moetrace -max_total_time=300 CORPUS/
 */
#include "metrics/lrc.h"
#include "metrics/trace.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void exercise(const char *path, met_trace_format f)
{
    met_trace_reader *r;
    if (met_trace_reader_open(&r, path, f, NULL))
        return;
    const met_trace_info *in = met_trace_reader_info(r);
    if (in->num_tokens <= 4096 && (int64_t)in->num_layers * in->num_experts <= 4096 &&
        in->num_samples * in->num_layers * in->num_experts <= 1000000) {
        size_t n = (size_t)in->num_tokens * in->top_k + 1;
        uint16_t *ids = malloc(n * 2);
        for (int32_t l = 0; ids && l < in->num_layers; l++)
            met_trace_reader_layer(r, l, ids, NULL, NULL);
        free(ids);
        static const int32_t segs[] = {1, 3};
        met_lrc_opts o = {.seg_lens = segs, .num_seg_lens = 2, .bootstrap = 3, .seed = 1,
                          .stride = 1, .threads = 1, .model = 1};
        met_lrc_report *rep = NULL;
        if (!met_lrc_compute(r, &o, &rep, NULL))
            met_lrc_report_free(rep);
    }
    met_trace_reader_free(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int fd = -1;
    static char path[64];
    if (fd < 0) {
        fd = memfd_create("fuzz_trace", 0);
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    }
    if (size < 1 || fd < 0)
        return 0;
    if (ftruncate(fd, 0) || pwrite(fd, data + 1, size - 1, 0) != (ssize_t)(size - 1))
        return 0;
    static const met_trace_format fmts[] = {MET_FMT_MOETRACE, MET_FMT_JSON, MET_FMT_CSV,
                                            MET_FMT_SAFETENSORS};
    exercise(path, fmts[data[0] % 4]);
    return 0;
}
