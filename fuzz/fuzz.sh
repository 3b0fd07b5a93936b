#!/usr/bin/env bash
# Coverage-guided fuzzing of one parser with AFL++ and SharpFuzz.
#
#   fuzz/fuzz.sh TARGET SECONDS [RUN_DIR]
#
# TARGET is safetensors, index, configs or onnx. Publishes the harness, instruments the engine
# with SharpFuzz (the tokenizer the configs target reaches is native Rust code, which it cannot instrument), and runs afl-fuzz
# from fuzz/corpus/TARGET if it exists (else fuzz/seeds/TARGET) for SECONDS. Findings land in
# RUN_DIR/findings/default/{crashes,hangs}; `fuzz/fuzz.sh` prints the CPU time it used at the end.
# Needs: apt-get install afl++; dotnet tool install -g SharpFuzz.CommandLine --version 2.3.0
set -euo pipefail
target=${1:?target: safetensors, index, configs or onnx}
seconds=${2:?seconds to fuzz}
repo=$(cd "$(dirname "$0")/.." && pwd)
run=${3:-$repo/fuzz/runs/$target}
publish=${FUZZ_HARNESS:-$repo/fuzz/runs/harness}   # a fresh folder lets one target restart on new code while others run
export PATH="$PATH:$HOME/.dotnet/tools"

if [[ ! -f $publish/.instrumented ]]; then
  dotnet publish "$repo/fuzz/NativeMi.Fuzz" -c Release -o "$publish" >/dev/null
  sharpfuzz "$publish/NativeMi.Engine.dll"
  touch "$publish/.instrumented"
fi

input=$repo/fuzz/corpus/$target
[[ -d $input ]] || input=$repo/fuzz/seeds/$target
# A run folder that already has a queue is resumed rather than restarted.
[[ -d $run/findings/default/queue ]] && input=-
mkdir -p "$run"
# .NET is not AFL-instrumented at the binary level (SharpFuzz instruments the IL), and the runtime
# reserves far more virtual memory than afl's default limit; the GC heap limit turns any unbounded
# allocation into an OutOfMemoryException, which the harness reports as a crash.
export AFL_SKIP_BIN_CHECK=1 AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_NO_UI=1 AFL_NO_AFFINITY=1
export DOTNET_GCHeapHardLimit=0x20000000 DOTNET_TieredPGO=0
/usr/bin/time -a -o "$run/cpu.log" -f "cpu_seconds %U user %S system, wall %e s, started $(date -u +%FT%TZ)" \
  afl-fuzz -i "$input" -o "$run/findings" -t 5000 -m none -V "$seconds" -- dotnet "$publish/NativeMi.Fuzz.dll" "$target" \
  > "$run/afl.log" 2>&1 || { tail -40 "$run/afl.log"; exit 1; }
tail -1 "$run/cpu.log"
grep -E "^(run_time|execs_done|execs_per_sec|corpus_count|saved_crashes|saved_hangs|bitmap_cvg)" "$run/findings/default/fuzzer_stats"
