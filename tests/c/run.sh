#!/usr/bin/env bash
# The C ABI test: builds libnativemi.so when build/native lacks it (scripts/build-native.sh), writes the reference
# hidden states of a few sentences with the `nativemi hidden` command, compiles tests/c/nativemi_test.c against the
# library with the system compiler and runs it. Exits nonzero when anything fails.
#
#   tests/c/run.sh            # NATIVEMI_NATIVE_BUILD picks another library folder; CC another compiler
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
native=${NATIVEMI_NATIVE_BUILD:-$root/build/native}
if [ ! -f "$native/libnativemi.so" ]; then
  echo "tests/c/run.sh: building $native/libnativemi.so" >&2
  native=$("$root/scripts/build-native.sh" | tail -n 1)
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# Sentences of different lengths, with accents and an unknown-to-WordPiece symbol, so padding and [UNK] are exercised.
cat > "$work/sentences.txt" <<'TEXT'
The cat sat on the mat.
A quick brown fox jumps over the lazy dog near the old riverbank at dawn.
Naïve café owners serve crème brûlée ☃.
Hello
TEXT

# The reference: the CLI's hidden states for the same sentences, written with the built CLI when there is one.
cli="$root/src/NativeMi.Cli/bin/Release/net10.0/nativemi"
if [ ! -x "$cli" ]; then
  dotnet build "$root/src/NativeMi.Cli" -c Release >&2
fi
"$cli" hidden --model minilm --backend cpu --input "$work/sentences.txt" --out "$work/hidden.safetensors" >/dev/null 2>"$work/hidden.log" || {
  cat "$work/hidden.log" >&2
  echo "tests/c/run.sh: nativemi hidden failed" >&2
  exit 1
}

${CC:-cc} -std=c99 -Wall -Wextra -Werror -pthread -I"$native" "$root/tests/c/nativemi_test.c" -o "$work/nativemi_test" \
  -L"$native" -lnativemi -Wl,-rpath,"$native" -lm
"$work/nativemi_test" "$work/sentences.txt" "$work/hidden.safetensors"
