#!/usr/bin/env bash
# The Python bindings' tests, as CI runs them: install bindings/python into a fresh virtual environment and run pytest.
#
#   bindings/python/run-tests.sh [pytest arguments...]
#
# Needs the engine's native folder build/native (libnativemi.so with models/ and data/); when it is missing it is
# built first with scripts/build-native.sh. The virtual environment lives in a temporary folder, sees the system's
# packages (--system-site-packages: Debian's python3-numpy and python3-pytest) and gets the package with
# `pip install --no-build-isolation` (no package index is needed; setuptools and wheel come from the system,
# python3-wheel on Debian). The tests run against the installed package and its bundled copy of the library
# (NATIVEMI_LIBRARY is unset), with a fresh NATIVEMI_CACHE unless one is set. Exits with pytest's status.
#
# NATIVEMI_PYTHON picks the interpreter (default /usr/bin/python3, else python3 on PATH); NATIVEMI_NATIVE_DIR a native
# folder built elsewhere instead of build/native.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"

python="${NATIVEMI_PYTHON:-}"
if [ -z "$python" ]; then
  if [ -x /usr/bin/python3 ]; then python=/usr/bin/python3; else python=python3; fi
fi

if [ -n "${NATIVEMI_NATIVE_DIR:-}" ]; then
  # A native folder built elsewhere (setup.py bundles the same one).
  if [ ! -f "$NATIVEMI_NATIVE_DIR/libnativemi.so" ]; then
    echo "bindings/python/run-tests.sh: NATIVEMI_NATIVE_DIR=$NATIVEMI_NATIVE_DIR holds no libnativemi.so" >&2
    exit 1
  fi
  export NATIVEMI_NATIVE_DIR
elif [ ! -f build/native/libnativemi.so ]; then
  if [ ! -f scripts/build-native.sh ]; then
    echo "bindings/python/run-tests.sh: build/native/libnativemi.so is missing and scripts/build-native.sh does not exist" >&2
    exit 1
  fi
  echo "bindings/python/run-tests.sh: build/native/libnativemi.so is missing; building it with scripts/build-native.sh" >&2
  bash scripts/build-native.sh >/dev/null
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/nativemi-python-tests.XXXXXX")"
trap 'rm -rf "$work"' EXIT

"$python" -m venv --system-site-packages "$work/venv"
venv_python="$work/venv/bin/python"
# --no-build-isolation: build with the system's setuptools and wheel instead of fetching them from an index.
"$venv_python" -m pip install --quiet --disable-pip-version-check --no-build-isolation ./bindings/python

unset NATIVEMI_LIBRARY
export NATIVEMI_CACHE="${NATIVEMI_CACHE:-$work/cache}"
# Run from the temporary folder so that nothing but the installed package can be imported as nativemi.
status=0
(cd "$work" && "$venv_python" -m pytest "$root/bindings/python/tests" -q -p no:cacheprovider "$@") || status=$?
exit "$status"
