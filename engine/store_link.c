/*
 * store_link.c — the emulated link of the tiered store (store_tiered.h) and
 * its presets.
 *
 * Pacing. A transfer of n bytes that starts at t0 must end no earlier than
 * t0 + latency + n / bandwidth. The copy runs in chunks of 256 KiB; after
 * each chunk the copier waits until t0 + latency + done / bandwidth, so the
 * bytes arrive at the link's rate rather than in one burst at the end. The
 * wait sleeps (clock_nanosleep to an absolute deadline) while more than
 * SPIN_NS remain and spins on the clock for the rest, because sleeps
 * overshoot by tens of microseconds. memcpy itself bounds the fastest link
 * that can be emulated: when the copy is slower than the target the
 * transfer simply takes longer (the statistics report target and achieved
 * times, docs/offloading.md has the measured accuracy).
 *
 * Map mode (eng_link_wait) copies nothing and only waits to the same
 * deadline, so its accuracy is that of the sleep+spin wait alone.
 */
#include "engine/store_tiered.h"

#include <string.h>
#include <time.h>

enum { LINK_CHUNK = 256 * 1024, SPIN_NS = 1000 * 1000 };

/* Numbers: sustained host-to-device copy rates and per-transfer latencies
 * as commonly measured (see docs/offloading.md for the sources/reasoning). */
static const eng_link_preset presets[] = {
    {"pcie4x16", 25.0, 10.0, "PCIe 4.0 x16 host-to-GPU copy (~25 GB/s sustained, ~10 us)"},
    {"pcie5x16", 50.0, 10.0, "PCIe 5.0 x16 host-to-GPU copy (~50 GB/s sustained, ~10 us)"},
    {"nvme", 3.5, 80.0, "PCIe 3.0 x4 NVMe SSD sequential read (~3.5 GB/s, ~80 us)"},
    {"ufs4", 4.0, 100.0, "UFS 4.0 phone flash sequential read (~4 GB/s, ~100 us)"},
};

size_t eng_link_preset_count(void) { return sizeof presets / sizeof presets[0]; }

const eng_link_preset *eng_link_preset_at(size_t i)
{
    return i < eng_link_preset_count() ? &presets[i] : NULL;
}

const eng_link_preset *eng_link_preset_find(const char *name)
{
    for (size_t i = 0; name && i < eng_link_preset_count(); i++)
        if (strcmp(presets[i].name, name) == 0)
            return &presets[i];
    return NULL;
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void wait_until(uint64_t deadline)
{
    for (;;) {
        uint64_t now = now_ns();
        if (now >= deadline)
            return;
        if (deadline - now > SPIN_NS) {
            uint64_t wake = deadline - SPIN_NS / 2;
            struct timespec ts = {(time_t)(wake / 1000000000u), (long)(wake % 1000000000u)};
            clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
        }
    }
}

uint64_t eng_link_copy_segs(void *const *dst, const void *const *src, const uint64_t *len,
                            int n, double gbps, double latency_us)
{
    const uint64_t t0 = now_ns();
    const double base = (double)t0 + latency_us * 1e3;
    uint64_t done = 0;
    for (int i = 0; i < n; i++) {
        for (uint64_t off = 0; off < len[i]; off += LINK_CHUNK) {
            uint64_t c = len[i] - off < LINK_CHUNK ? len[i] - off : LINK_CHUNK;
            memcpy((char *)dst[i] + off, (const char *)src[i] + off, c);
            done += c;
            wait_until((uint64_t)(base + (double)done / gbps));
        }
    }
    wait_until((uint64_t)(base + (double)done / gbps)); /* n == 0: latency alone */
    return now_ns() - t0;
}

uint64_t eng_link_wait(uint64_t n, double gbps, double latency_us)
{
    const uint64_t t0 = now_ns();
    wait_until((uint64_t)((double)t0 + latency_us * 1e3 + (double)n / gbps));
    return now_ns() - t0;
}

uint64_t eng_link_copy(void *dst, const void *src, uint64_t n, double gbps, double latency_us)
{
    return eng_link_copy_segs(&dst, &src, &n, 1, gbps, latency_us);
}
