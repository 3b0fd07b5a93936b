#!/usr/bin/env bash
# The CPU speed bar (issue 13) in one command: builds the CLI and the benchmarks in Release, gives PyTorch OpenBLAS
# (Debian's torch otherwise runs on the reference BLAS, which would flatter our probe ratio), runs `bar` and writes
# benchmarks/results/<UTC date>-bar.md. Takes about 15 minutes on a 2-core machine; run it on an idle machine.
#
#   scripts/bench-bar.sh [--quick] [--skip-measure]
set -euo pipefail
cd "$(dirname "$0")/.."

dotnet build src/NativeMi.Cli -c Release -v quiet -nologo
dotnet build benchmarks/NativeMi.Benchmarks -c Release -v quiet -nologo

# OpenBLAS is unpacked into a scratch folder, never installed system-wide, from the Debian archive the machine already uses.
if [ -z "${NATIVEMI_TORCH_LD_LIBRARY_PATH:-}" ]; then
  openblas=${TMPDIR:-/tmp}/nativemi-openblas
  lib="$openblas/root/usr/lib/x86_64-linux-gnu/openblas-pthread"
  if [ ! -f "$lib/libopenblas.so.0" ]; then
    mkdir -p "$openblas"
    (cd "$openblas" && apt-get download libopenblas0-pthread >/dev/null 2>&1 && dpkg -x libopenblas0-pthread_*.deb root) ||
      echo "bench-bar: could not fetch libopenblas0-pthread; PyTorch runs on its default BLAS" >&2
  fi
  if [ -f "$lib/libopenblas.so.0" ]; then export NATIVEMI_TORCH_LD_LIBRARY_PATH="$lib"; fi
fi

# A day's earlier bar is kept: a second run that day writes <date>-bar-2.md, then -3, and so on.
out="benchmarks/results/$(date -u +%Y-%m-%d)-bar.md"
n=2
while [ -e "$out" ]; do out="benchmarks/results/$(date -u +%Y-%m-%d)-bar-$n.md"; n=$((n + 1)); done
dotnet benchmarks/NativeMi.Benchmarks/bin/Release/net10.0/NativeMi.Benchmarks.dll bar --out "$out" \
  --nativemi src/NativeMi.Cli/bin/Release/net10.0/nativemi "$@"
echo "wrote $out"
