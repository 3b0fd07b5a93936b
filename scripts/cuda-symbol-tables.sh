#!/usr/bin/env bash
# Writes the dynamic symbol tables of Debian's real CUDA driver, cuBLAS and NVRTC libraries to
# tests/NativeMi.Tests/fixtures/cuda-symbols/, where a test checks every entry point the engine binds against them
# (so a name only the emulated GPU exports is caught). Needs the non-free section (.ci/run adds it) and nm.
set -euo pipefail
cd "$(dirname "$0")/.."
out=tests/NativeMi.Tests/fixtures/cuda-symbols
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && apt-get download libcuda1 libcublas11 libnvrtc11.2 >/dev/null)
for deb in "$work"/*.deb; do dpkg-deb -x "$deb" "$work/root"; done
write() {
  local package=$1 library=$2 name=$3
  local file
  file=$(find "$work/root" -name "$library" | head -n 1)
  [ -n "$file" ] || { echo "cuda-symbol-tables: $library not found in $package" >&2; exit 1; }
  local version
  version=$(dpkg-deb -f "$work"/"${package}"_*.deb Version)
  { echo "# nm -D --defined-only $library from Debian package $package $version"
    nm -D --defined-only "$file" | awk '{ print $NF }' | sed 's/@.*//' | sort -u; } > "$out/$name"
  echo "$out/$name: $(($(wc -l < "$out/$name") - 1)) symbols"
}
write libcuda1 libcuda.so.1 libcuda.so.1.txt
write libcublas11 'libcublas.so.11' libcublas.so.11.txt
write libnvrtc11.2 'libnvrtc.so.11.2' libnvrtc.so.11.2.txt
