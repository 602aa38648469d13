#!/bin/sh
# Engine speed against the machine's limits (docs/performance.md).
#
# Writes olmoe-1b-7b with 4 layers in f32 and q8_0 into models/ (if absent),
# runs `moebench generate` with a 64-token prompt and 16 generated tokens on
# 1 and 2 threads, and `moebench bench-sys` for the memory read bandwidth
# and the OpenBLAS sgemm FLOP/s. Reports
#   decode:  bytes of weights read per token / decode time / bandwidth
#   prefill: 2 * weight elements per prompt / prefill time / sgemm peak
# Each row is the best of REPS (3) runs, prefill and decode separately, with
# the CPU time of the process (all threads) next to it.
# Usage: scripts/bench/engine.sh [build/moebench]
set -eu
BIN=${1:-build/moebench}
MODELS=${MODELS:-models}
THREADS=${THREADS:-"1 2"}
TYPES=${TYPES:-"q8_0 f32"}
REPS=${REPS:-3}
mkdir -p "$MODELS"

num() { # num KEY JSON: the first number after "KEY":
    printf '%s' "$2" | grep -o "\"$1\": *[-0-9.e+]*" | head -1 | cut -d: -f2 | tr -d ' '
}

PROMPT=$(awk 'BEGIN { for (i = 0; i < 64; i++) printf "%s%d", (i ? "," : ""), (i * 7919 + 13) % 50000 }')

for t in $TYPES; do
    f="$MODELS/olmoe-1b-7b-L4-$t.gguf"
    if [ ! -e "$f" ]; then
        echo "writing $f"
        "$BIN" mkmodel --preset olmoe-1b-7b --type "$t" --layers 4 -o "$f" >/dev/null
    fi
done

echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
for n in $THREADS; do
    sys=$("$BIN" bench-sys --threads "$n" --json)
    eval "bw_$n=$(num mem_read_gbs "$sys")"
    eval "gf_$n=$(num sgemm_gflops "$sys")"
    echo "bench-sys threads $n: memory read $(num mem_read_gbs "$sys") GB/s, sgemm $(num sgemm_gflops "$sys") GFLOP/s"
done

printf '\n| type | threads | prefill tok/s | decode tok/s | decode GB/s | decode / bandwidth | prefill GFLOP/s | prefill / sgemm peak | CPU s per prefill / decode | prefill, decode tok per CPU-s |\n'
printf '|---|---|---|---|---|---|---|---|---|---|\n'
for t in $TYPES; do
    f="$MODELS/olmoe-1b-7b-L4-$t.gguf"
    for n in $THREADS; do
        # best of REPS runs (prefill and decode each): the machine may be shared
        pre=0; dec=0; pms=1e30; pcpu=1e30; dcpu=1e30
        for r in $(seq "$REPS"); do
            out=$("$BIN" generate -m "$f" --tokens "$PROMPT" -n 16 --threads "$n" --ignore-eos --prefault --json)
            eval "$(awk -v a="$(num prefill_tok_s "$out")" -v b="$(num decode_tok_s "$out")" \
                -v c="$(num prefill_ms "$out")" -v d="$(num prefill_cpu_ms "$out")" \
                -v e="$(num decode_cpu_ms "$out")" -v pre="$pre" -v dec="$dec" -v pms="$pms" \
                -v pcpu="$pcpu" -v dcpu="$dcpu" 'BEGIN {
                printf "pre=%s; dec=%s; pms=%s; pcpu=%s; dcpu=%s\n", (a > pre ? a : pre),
                       (b > dec ? b : dec), (c < pms ? c : pms), (d < pcpu ? d : pcpu),
                       (e < dcpu ? e : dcpu) }')"
        done
        bytes=$(num decode_bytes_per_token "$out")
        lp=$(num layer_params_per_token "$out")
        hp=$(num head_params "$out")
        eval "bw=\$bw_$n; gf=\$gf_$n"
        awk -v t="$t" -v n="$n" -v pre="$pre" -v dec="$dec" -v bytes="$bytes" -v lp="$lp" \
            -v hp="$hp" -v pms="$pms" -v bw="$bw" -v gf="$gf" -v pcpu="$pcpu" -v dcpu="$dcpu" 'BEGIN {
            dgbs = bytes * dec / 1e9
            pgf = 2 * (lp * 64 + hp) / (pms / 1e3) / 1e9
            printf "| %s | %d | %.1f | %.2f | %.2f | %.0f%% | %.1f | %.0f%% | %.2f / %.2f | %.1f, %.1f |\n",
                   t, n, pre, dec, dgbs, 100 * dgbs / bw, pgf, 100 * pgf / gf,
                   pcpu / 1e3, dcpu / 1e3, 64e3 / pcpu, 16e3 / dcpu }'
    done
done
echo
echo "bar (llama.cpp, same files, 2 threads): q8_0 prefill 88 tok/s, decode 30.9 tok/s; f32 prefill 80 tok/s, decode 10.9 tok/s"
