"""Finding, loading and declaring libnativemi.so (include/nativemi.h in the NativeMi repository is the contract)."""
from __future__ import annotations

import ctypes
import os
from ctypes import POINTER, c_char, c_char_p, c_float, c_int, c_int32, c_int64, c_size_t, c_void_p
from pathlib import Path
from typing import List

from ._errors import error_for_status

#: NATIVEMI_ABI_VERSION of the header these bindings were written against.
ABI_VERSION = 1
LIBRARY_NAME = "libnativemi.so"
_PACKAGE_DIR = Path(__file__).resolve().parent
BUNDLED_LIBRARY = _PACKAGE_DIR / "_native" / LIBRARY_NAME

BUILD_HINT = (
    "build it from the NativeMi repository root with `bash scripts/build-native.sh` and reinstall the package "
    "(`pip install --no-build-isolation ./bindings/python`), or set NATIVEMI_LIBRARY to a libnativemi.so "
    "(with its models/ and data/ beside it)"
)


class ModelInfo(ctypes.Structure):
    """struct nativemi_model_info."""

    _fields_ = [
        ("struct_size", c_size_t),
        ("family", c_char * 32),
        ("backend", c_char * 32),
        ("layers", c_int32),
        ("entries", c_int32),
        ("width", c_int32),
        ("vocabulary_size", c_int32),
        ("max_sequence_length", c_int32),
        ("causal", c_int32),
        ("default_pool", c_int32),
    ]


#: nativemi_progress_fn: int32_t (*)(void *user_data, const char *stage, int64_t completed, int64_t total, const char *message)
PROGRESS_FN = ctypes.CFUNCTYPE(c_int32, c_void_p, c_char_p, c_int64, c_int64, c_char_p)


def candidate_paths() -> List[Path]:
    """Where the library is looked for, in order: $NATIVEMI_LIBRARY alone when set, else the bundled copy, then a
    source checkout's build/native (an editable install of bindings/python)."""
    configured = os.environ.get("NATIVEMI_LIBRARY")
    if configured:
        path = Path(configured)
        return [path / LIBRARY_NAME if path.is_dir() else path]
    paths = [BUNDLED_LIBRARY]
    # <repo>/bindings/python/src/nativemi: the package is imported from the repository itself.
    src = _PACKAGE_DIR.parent
    if src.name == "src" and src.parent.name == "python" and src.parent.parent.name == "bindings":
        paths.append(src.parent.parent.parent / "build" / "native" / LIBRARY_NAME)
    return paths


def _declare(lib: ctypes.CDLL) -> None:
    status = c_int  # enum nativemi_status
    handle = c_void_p
    strings = POINTER(c_char_p)
    signatures = {
        "nativemi_version": (c_char_p, []),
        "nativemi_abi_version": (c_int32, []),
        "nativemi_last_error": (c_char_p, []),
        "nativemi_last_status": (status, []),
        "nativemi_open": (status, [c_char_p, c_char_p, POINTER(handle)]),
        "nativemi_close": (None, [handle]),
        "nativemi_describe": (status, [handle, POINTER(ModelInfo)]),
        "nativemi_tokenize": (status, [handle, c_char_p, POINTER(c_int32), c_size_t, POINTER(c_size_t)]),
        "nativemi_embed": (status, [handle, strings, c_size_t, POINTER(c_int32), c_size_t, c_int, POINTER(c_float), c_size_t]),
        "nativemi_hidden_length": (status, [handle, strings, c_size_t, POINTER(c_size_t)]),
        "nativemi_hidden": (status, [handle, strings, c_size_t, POINTER(c_float), c_size_t, POINTER(c_int32), c_size_t]),
        # results_json is char **; read as void * so that the engine's pointer can be handed back to nativemi_free_string.
        "nativemi_measure": (status, [c_char_p, PROGRESS_FN, c_void_p, POINTER(c_int32), POINTER(c_void_p)]),
        "nativemi_free_string": (None, [c_void_p]),
    }
    for name, (restype, argtypes) in signatures.items():
        function = getattr(lib, name)  # AttributeError names the missing export
        function.restype = restype
        function.argtypes = argtypes


def load() -> "tuple[ctypes.CDLL, Path]":
    """Loads and declares the library; ImportError naming every path tried and how to build it."""
    tried = []
    for path in candidate_paths():
        if not path.is_file():
            tried.append(f"{path} (no such file)")
            continue
        try:
            lib = ctypes.CDLL(str(path))
        except OSError as error:
            raise ImportError(f"nativemi: cannot load {path}: {error}") from error
        try:
            _declare(lib)
        except AttributeError as error:
            raise ImportError(f"nativemi: {path} is not a NativeMi C library (or too old): {error}") from error
        abi = lib.nativemi_abi_version()
        if abi != ABI_VERSION:
            raise ImportError(
                f"nativemi: {path} has C ABI version {abi}, these bindings need {ABI_VERSION}; {BUILD_HINT}"
            )
        return lib, path
    raise ImportError(f"nativemi: native library not found; tried {'; '.join(tried)}. To fix it, {BUILD_HINT}.")


LIB, LIBRARY_PATH = load()


def last_error() -> str:
    """This thread's last failure message (call it on the thread whose call failed)."""
    raw = LIB.nativemi_last_error()
    return raw.decode("utf-8", "replace") if raw else ""


def check(status: int) -> None:
    """Raises the NativeMiError subclass of a failed call's status, with the thread's last error message."""
    if status != 0:
        raise error_for_status(status, last_error())
