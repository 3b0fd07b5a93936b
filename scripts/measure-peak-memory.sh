#!/usr/bin/env bash
# Peak memory of `nativemi hidden` on a seeded random-init checkpoint of Qwen2-0.5B's shape (BF16, 988 MB), with the weights
# kept 16-bit (the default) and widened to fp32 (--widen-16bit-weights), and whether both wrote identical hidden states.
#   scripts/measure-peak-memory.sh [NATIVEMI_BINARY] [SENTENCES]
# The target (issue 16): the 16-bit run peaks below the file size + 1 GiB.
set -euo pipefail
cd "$(dirname "$0")/.."
binary=${1:-src/NativeMi.Cli/bin/Release/net10.0/nativemi}
sentences=${2:-64}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
/usr/bin/python3 scripts/make_random_checkpoint.py --shape qwen2-0.5b --dtype bf16 --out "$work/model"
head -n "$sentences" data/wordnet-examples.txt > "$work/sentences.txt"
file_bytes=$(stat -c %s "$work/model/model.safetensors")
peak() { /usr/bin/time -f %M "$binary" hidden --model "$work/model" --input "$work/sentences.txt" --out "$work/$1.safetensors" "${@:2}" 2>&1 >/dev/null | tail -n 1; }
kept_kib=$(peak kept)
widened_kib=$(peak widened --widen-16bit-weights)
identical=$(cmp -s "$work/kept.safetensors" "$work/widened.safetensors" && echo yes || echo NO)
limit=$((file_bytes + 1073741824))
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo); $sentences sentences"
mib() { awk -v v="$1" -v d="$2" 'BEGIN { printf "%8.1f", v / d }'; }
echo "checkpoint file        $(mib "$file_bytes" 1048576) MiB"
echo "peak RSS, kept 16-bit  $(mib "$kept_kib" 1024) MiB"
echo "peak RSS, widened fp32 $(mib "$widened_kib" 1024) MiB"
echo "target (file + 1 GiB)  $(mib "$limit" 1048576) MiB: $([ $((kept_kib * 1024)) -lt $limit ] && echo met || echo MISSED)"
echo "hidden states identical: $identical"
