"""Helpers shared by the tests (not a test module)."""
from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import pytest

#: With this set to 1 the tests skip, instead of failing, when libnativemi.so or the nativemi CLI is missing.
#: CI never sets it: there the native folder is built before the tests run (bindings/python/run-tests.sh).
ALLOW_MISSING = "NATIVEMI_TESTS_ALLOW_MISSING"


def allow_missing() -> bool:
    return os.environ.get(ALLOW_MISSING, "") not in ("", "0")


def import_nativemi():
    """The nativemi package; a missing library fails the importing test module unless NATIVEMI_TESTS_ALLOW_MISSING=1."""
    try:
        import nativemi
    except ImportError as error:
        if allow_missing():
            pytest.skip(f"nativemi cannot be imported ({error}); skipped because {ALLOW_MISSING} is set",
                        allow_module_level=True)
        raise
    return nativemi


def repo_root() -> Optional[Path]:
    """The NativeMi checkout these tests are in ($NATIVEMI_REPO overrides), or None."""
    configured = os.environ.get("NATIVEMI_REPO")
    root = Path(configured) if configured else Path(__file__).resolve().parents[3]
    return root if (root / "include" / "nativemi.h").is_file() else None


def cli_command() -> List[str]:
    """How to run the `nativemi` command: $NATIVEMI_CLI (a path to the binary), else the Release build in the
    checkout, else `dotnet run --project src/NativeMi.Cli -c Release --`."""
    configured = os.environ.get("NATIVEMI_CLI")
    if configured:
        return [configured]
    root = repo_root()
    if root is not None:
        built = root / "src" / "NativeMi.Cli" / "bin" / "Release" / "net10.0" / "nativemi"
        if built.is_file() and os.access(built, os.X_OK):
            return [str(built)]
        if shutil.which("dotnet"):
            return ["dotnet", "run", "--project", str(root / "src" / "NativeMi.Cli"), "-c", "Release", "--"]
    message = "the nativemi CLI was not found (set NATIVEMI_CLI, or run the tests inside a checkout with dotnet)"
    if allow_missing():
        pytest.skip(message)
    pytest.fail(message)


def run_cli(*arguments: str, timeout: float = 600) -> subprocess.CompletedProcess:
    command = cli_command() + list(arguments)
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        pytest.fail(f"{' '.join(command)} exited {result.returncode}:\n{result.stderr[-4000:]}")
    return result


_SAFETENSORS_DTYPES = {"F32": np.float32, "F64": np.float64, "F16": np.float16, "I64": np.int64, "I32": np.int32,
                       "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_}


def read_safetensors(path: Path) -> Dict[str, np.ndarray]:
    """A safetensors file as NumPy arrays: an 8-byte little-endian header length, a JSON header of
    {name: {dtype, shape, data_offsets}} (plus __metadata__), then the data."""
    data = Path(path).read_bytes()
    (header_length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + header_length].decode("utf-8"))
    base = 8 + header_length
    tensors = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        begin, end = entry["data_offsets"]
        dtype = np.dtype(_SAFETENSORS_DTYPES[entry["dtype"]]).newbyteorder("<")
        array = np.frombuffer(data, dtype=dtype, count=(end - begin) // dtype.itemsize, offset=base + begin)
        tensors[name] = array.reshape(entry["shape"])
    return tensors
