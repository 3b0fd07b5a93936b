#!/usr/bin/env bash
# Publishes the engine as a C shared library with NativeAOT (src/NativeMi.Native) and prints the folder holding
# libnativemi.so, include/nativemi.h and what the library reads at run time (models/, data/, libhf_tokenizers.so) on
# the last line:
#
#   cc -std=c99 my.c -I"$(scripts/build-native.sh | tail -n 1)" -L<that folder> -lnativemi -Wl,-rpath,<that folder>
#
# The folder is build/native (or $NATIVEMI_NATIVE_BUILD); extra arguments go to dotnet publish (for instance
# -p:IlcInstructionSet=native). The publish's own output goes to standard error.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${NATIVEMI_NATIVE_BUILD:-$root/build/native}
dotnet publish "$root/src/NativeMi.Native" -c Release -r linux-x64 -o "$out" "$@" >&2
cp "$root/include/nativemi.h" "$out/nativemi.h"
(cd "$out" && pwd)
