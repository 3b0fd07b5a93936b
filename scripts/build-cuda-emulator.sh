#!/usr/bin/env bash
# Builds the emulated CUDA device (emulator/, a test tool: the real kernels and the driver and cuBLAS entry points the
# engine binds, run on the CPU) and prints the folder holding its libcuda.so.1 and libcublas.so.12 on the last line:
#
#   NATIVEMI_CUDA_PATH=$(scripts/build-cuda-emulator.sh | tail -n 1) dotnet run --project src/NativeMi.Cli -c Release -- doctor
#
# Needs cmake, a C++17 compiler and Boost.Context (Debian: cmake g++ libboost-context-dev). The build goes to
# build/cuda-emulator (or $NATIVEMI_EMULATOR_BUILD); the build's own output goes to standard error.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${NATIVEMI_EMULATOR_BUILD:-$root/build/cuda-emulator}
cmake -S "$root/emulator" -B "$build" -DCMAKE_BUILD_TYPE=Release >&2
cmake --build "$build" --parallel "$(nproc 2>/dev/null || echo 2)" >&2
(cd "$build/lib" && pwd)
