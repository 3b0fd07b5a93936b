"""nativemi: Python bindings of the NativeMi engine through its C ABI (libnativemi.so, include/nativemi.h).

NativeMi measures how much of a sentence a language model keeps, layer by layer: a probe reads the sentence's
tokens back from one pooled vector per layer, and its held-out cross-entropy and accuracy give lower bounds on the
mutual information (Barber-Agakov and Fano; docs/METHOD.md in the repository defines every figure).

    import nativemi
    results = nativemi.measure("minilm", max_sentences=2000, progress=True)
    for row in results["layers"]:
        print(row["layer"], row[results["headline_target"]]["ba_bits"])

    with nativemi.Model("minilm") as model:
        vectors = model.embed(["A dog barks."], layers=[0, 6])    # float32, (2, 1, 384)

The library is loaded at import: $NATIVEMI_LIBRARY when set, else the copy bundled in the package at build time.
"""
from __future__ import annotations

from pathlib import Path

from ._errors import (
    Cancelled,
    InputError,
    InternalError,
    NativeMiError,
    RuntimeEnvironmentError,
    UsageError,
)
from ._library import ABI_VERSION, LIB as _LIB, LIBRARY_PATH as _LIBRARY_PATH
from ._measure import measure
from ._model import Model, ModelInfo, Pool

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "ABI_VERSION",
    "library_version",
    "library_path",
    "Model",
    "ModelInfo",
    "Pool",
    "measure",
    "NativeMiError",
    "InternalError",
    "UsageError",
    "InputError",
    "RuntimeEnvironmentError",
    "Cancelled",
]


def library_version() -> str:
    """The engine's version (nativemi_version), e.g. "0.3.0+00ecd25"."""
    return _LIB.nativemi_version().decode("utf-8", "replace")


def library_path() -> Path:
    """The libnativemi.so this process loaded."""
    return _LIBRARY_PATH
