#!/bin/sh
# moebench against llama.cpp's llama-bench, side by side on the same files.
#
#   scripts/bench/vs-llamacpp.sh LLAMA_BENCH MODEL.gguf...
#
# LLAMA_BENCH is a llama-bench binary the user provides (never vendored:
# build one from llama.cpp's source at 82bb485, see docs/performance.md, or
# use node-llama-cpp's). For each model, thread count and prompt length the
# two engines run interleaved, A-B-A-B-...-A (REPS runs of moebench, REPS of
# llama-bench between them), so a drift of the shared machine falls on both;
# each llama-bench run is compared with the mean of the moebench runs just
# before and after it. Printed per row: both engines' median tok/s for the
# prompt (pp) and for generation (tg), and the ratio moebench / llama.cpp as
# its median with the min..max over the REPS pairs.
#
# Environment: THREADS ("1 2"), PP ("64" prompt lengths, e.g. "64 512"),
# TG (16 generated tokens), REPS (3), MOEBENCH (build/moebench), BATCH
# (moebench's --batch; default min(PP, 512), the prompt chunk llama-bench
# uses by default: its n_ubatch is 512, so both read every weight once per
# 512 prompt tokens; moebench's own default is 128).
# What is compared: moebench generate --prefault with a prompt of PP token
# ids, then TG greedy tokens (its prefill and decode tok/s); llama-bench
# -p PP -n TG -r 1 (its pp and tg tests; tg starts from an empty context).
# llama-bench keeps its defaults otherwise (f16 KV cache, flash attention
# auto, weight repacking), as people run it; moebench's KV cache is f32.
set -eu
usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }
case "${1:-}" in -h | --help) usage; exit 0 ;; esac
[ $# -ge 2 ] || { usage >&2; exit 2; }
LB=$1
shift
MB=${MOEBENCH:-build/moebench}
THREADS=${THREADS:-"1 2"}
PP=${PP:-64}
TG=${TG:-16}
REPS=${REPS:-3}
[ -x "$LB" ] || { echo "vs-llamacpp: $LB is not an executable llama-bench" >&2; exit 2; }
[ -x "$MB" ] || { echo "vs-llamacpp: $MB is not built (make)" >&2; exit 2; }
for f in "$@"; do
    [ -r "$f" ] || { echo "vs-llamacpp: cannot read $f" >&2; exit 2; }
done

num() { # num KEY TEXT: the first number after "KEY":
    printf '%s' "$2" | grep -o "\"$1\": *[-0-9.e+]*" | head -1 | cut -d: -f2 | tr -d ' '
}

# moebench: prints "pp_tok_s tg_tok_s"
run_mb() { # FILE THREADS PP
    ids=$(awk -v n="$3" 'BEGIN { for (i = 0; i < n; i++) printf "%s%d", (i ? "," : ""), (i * 7919 + 13) % 500 }')
    b=${BATCH:-$(( $3 < 512 ? $3 : 512 ))}
    out=$("$MB" generate -m "$1" --tokens "$ids" -n "$TG" --threads "$2" --batch "$b" --ignore-eos --prefault --json)
    echo "$(num prefill_tok_s "$out") $(num decode_tok_s "$out")"
}

# llama-bench, one repetition of pp and tg: prints "pp_tok_s tg_tok_s"
run_lb() { # FILE THREADS PP
    out=$("$LB" -m "$1" -t "$2" -p "$3" -n "$TG" -r 1 -o jsonl 2>/dev/null)
    pp=$(printf '%s\n' "$out" | grep "\"n_prompt\": $3, \"n_gen\": 0" | head -1)
    tg=$(printf '%s\n' "$out" | grep "\"n_prompt\": 0, \"n_gen\": $TG" | head -1)
    [ -n "$pp" ] && [ -n "$tg" ] || { echo "vs-llamacpp: llama-bench gave no result for $1" >&2; exit 1; }
    echo "$(num avg_ts "$pp") $(num avg_ts "$tg")"
}

# median and min/max of the numbers on stdin
stats() { sort -g | awk '{ v[NR] = $1 } END { m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; printf "%.3g %.3g %.3g", m, v[1], v[NR] }'; }

echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "llama-bench: $LB; moebench: $MB ($("$MB" --version | head -1))"
printf '\n| model | threads | pp | moebench pp tok/s | llama.cpp pp tok/s | pp ratio (min..max) | moebench tg tok/s | llama.cpp tg tok/s | tg ratio (min..max) |\n'
printf '|---|---|---|---|---|---|---|---|---|\n'
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM
for f in "$@"; do
    for t in $THREADS; do
        for p in $PP; do
            : > "$tmp/a"; : > "$tmp/b"; : > "$tmp/rpp"; : > "$tmp/rtg"
            prev=$(run_mb "$f" "$t" "$p")
            echo "$prev" >> "$tmp/a"
            for r in $(seq "$REPS"); do
                lb=$(run_lb "$f" "$t" "$p")
                echo "$lb" >> "$tmp/b"
                next=$(run_mb "$f" "$t" "$p")
                echo "$next" >> "$tmp/a"
                echo "$prev $next $lb" | awk '{ printf "%.6g\n", ($1 + $3) / 2 / $5 }' >> "$tmp/rpp"
                echo "$prev $next $lb" | awk '{ printf "%.6g\n", ($2 + $4) / 2 / $6 }' >> "$tmp/rtg"
                prev=$next
            done
            app=$(cut -d' ' -f1 "$tmp/a" | stats); atg=$(cut -d' ' -f2 "$tmp/a" | stats)
            bpp=$(cut -d' ' -f1 "$tmp/b" | stats); btg=$(cut -d' ' -f2 "$tmp/b" | stats)
            rpp=$(stats < "$tmp/rpp"); rtg=$(stats < "$tmp/rtg")
            printf '| %s | %s | %s | %s | %s | %s (%s..%s) | %s | %s | %s (%s..%s) |\n' \
                "$(basename "$f")" "$t" "$p" "${app%% *}" "${bpp%% *}" \
                "$(echo "$rpp" | cut -d' ' -f1)" "$(echo "$rpp" | cut -d' ' -f2)" \
                "$(echo "$rpp" | cut -d' ' -f3)" "${atg%% *}" "${btg%% *}" \
                "$(echo "$rtg" | cut -d' ' -f1)" "$(echo "$rtg" | cut -d' ' -f2)" \
                "$(echo "$rtg" | cut -d' ' -f3)"
        done
    done
done
