"""nativemi.Model: one open model handle of the engine (nativemi_open ... nativemi_close)."""
from __future__ import annotations

import ctypes
import enum
import os
import threading
from contextlib import contextmanager
from ctypes import POINTER, byref, c_char_p, c_float, c_int32, c_size_t, c_void_p
from dataclasses import dataclass
from typing import Iterable, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np

from . import _library
from ._errors import UsageError
from ._library import LIB, check

__all__ = ["Model", "ModelInfo", "Pool"]

PathLike = Union[str, "os.PathLike[str]"]
Sentences = Union[str, Iterable[str]]
Layers = Union[None, int, Iterable[int]]


class Pool(enum.IntEnum):
    """How token states become one sentence vector (enum nativemi_pool)."""

    #: The model's default: mean for encoders, last token for decoders (what `nativemi measure` uses).
    DEFAULT = 0
    #: Mean over the sentence's real tokens (special tokens and padding excluded).
    MEAN = 1
    #: The first real token ([CLS] for BERT).
    CLS = 2
    #: The last real token.
    LAST = 3
    #: Element-wise maximum over the real tokens.
    MAX = 4


@dataclass(frozen=True)
class ModelInfo:
    """What an open model is (nativemi_describe)."""

    #: Family as config.json's model_type says it: "bert", "roberta", "gpt2", "llama", "mistral", "qwen2", "qwen3", "gemma".
    family: str
    #: "cpu" or "cuda" (with "emulated" appended for the CPU-emulated CUDA device).
    backend: str
    #: Transformer blocks L.
    layers: int
    #: Hidden-state entries: L + 1 (0 the embedding output, 1..L the blocks), or L + 2 with a final-norm entry.
    entries: int
    #: Width of every hidden state.
    width: int
    #: Tokenizer vocabulary size.
    vocabulary_size: int
    #: Longest token sequence the model accepts; longer sentences are truncated.
    max_sequence_length: int
    #: True for decoders (causal attention).
    causal: bool
    #: What pool="default" means for this model: "mean" or "last".
    default_pool: str


def _encode(text: str, what: str) -> bytes:
    if not isinstance(text, str):
        raise TypeError(f"{what} must be str, got {type(text).__name__}")
    data = text.encode("utf-8", "surrogatepass")
    if b"\0" in data:
        raise UsageError(f"{what} contains a NUL character, which the C ABI cannot pass: {text!r}")
    return data


def _sentences(sentences: Sentences) -> Tuple[List[bytes], bool]:
    """UTF-8 copies of the sentences, and whether a single str was given."""
    if isinstance(sentences, str):
        return [_encode(sentences, "sentence")], True
    if isinstance(sentences, (bytes, bytearray)):
        raise TypeError("sentences must be str or an iterable of str, not bytes")
    return [_encode(s, f"sentence {i}") for i, s in enumerate(sentences)], False


def _string_array(encoded: Sequence[bytes]) -> "ctypes.Array[c_char_p]":
    return (c_char_p * max(len(encoded), 1))(*encoded)


def _pool(pool: Union[str, int, Pool]) -> Pool:
    if isinstance(pool, str):
        try:
            return Pool[pool.upper()]
        except KeyError:
            raise UsageError(f"unknown pool {pool!r}; expected one of default, mean, cls, last, max") from None
    if isinstance(pool, bool) or not isinstance(pool, int):
        raise TypeError(f"pool must be a str or nativemi.Pool, got {type(pool).__name__}")
    try:
        return Pool(pool)
    except ValueError:
        raise UsageError(f"unknown pool {pool!r}; expected 0..4 (nativemi.Pool)") from None


class Model:
    """A model loaded by the engine: weights on a backend and its tokenizer.

    Use it as a context manager, or call :meth:`close` (the handle is also released when the object is collected)::

        with nativemi.Model("minilm") as model:
            vectors = model.embed(["A dog barks.", "Rain fell all night."], layers=[0, 6])  # (2, 2, 384)

    Calls on one Model from several threads are safe and run one at a time; different Models run in parallel (the
    GIL is released during every call into the engine).
    """

    def __init__(self, name_or_folder: PathLike = "minilm", backend: str = "cpu") -> None:
        """Opens a built-in model ("minilm", "arctic-xs"; imported into the cache on first use) or a Hugging Face
        model folder, on backend "cpu", "cuda" (an error without a usable GPU) or "auto".

        The built-in models are imported into $NATIVEMI_CACHE (else $XDG_CACHE_HOME/nativemi, else ~/.cache/nativemi).

        Raises:
            InputError: the folder is missing or malformed (the message names it).
            UsageError: an unknown backend.
            RuntimeEnvironmentError: the backend is not available.
        """
        self._handle: Optional[int] = None
        self._lock = threading.Lock()
        self.name: str = os.fspath(name_or_folder)
        if not isinstance(backend, str):
            raise TypeError(f"backend must be str, got {type(backend).__name__}")
        handle = c_void_p()
        check(LIB.nativemi_open(_encode(self.name, "model"), _encode(backend, "backend"), byref(handle)))
        self._handle = handle.value
        try:
            raw = _library.ModelInfo()
            raw.struct_size = ctypes.sizeof(_library.ModelInfo)
            check(LIB.nativemi_describe(self._handle, byref(raw)))
        except BaseException:
            self.close()
            raise
        self.info: ModelInfo = ModelInfo(
            family=raw.family.decode("utf-8", "replace"),
            backend=raw.backend.decode("utf-8", "replace"),
            layers=raw.layers,
            entries=raw.entries,
            width=raw.width,
            vocabulary_size=raw.vocabulary_size,
            max_sequence_length=raw.max_sequence_length,
            causal=bool(raw.causal),
            default_pool=Pool(raw.default_pool).name.lower() if raw.default_pool in Pool._value2member_map_ else str(raw.default_pool),
        )

    # -- lifetime -------------------------------------------------------------------------------------------------

    def close(self) -> None:
        """Releases the handle and its weights; waits for a call in progress on another thread. Idempotent."""
        lock = getattr(self, "_lock", None)
        if lock is None:
            return
        with lock:
            handle, self._handle = self._handle, None
            if handle is not None:
                LIB.nativemi_close(handle)

    @property
    def closed(self) -> bool:
        """True once :meth:`close` has run."""
        return self._handle is None

    def __enter__(self) -> "Model":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    def __repr__(self) -> str:
        if self._handle is None:
            return f"<nativemi.Model {self.name!r} closed>"
        i = self.info
        return f"<nativemi.Model {self.name!r} {i.family}, {i.layers} layers, width {i.width}, on {i.backend}>"

    @contextmanager
    def _open_handle(self) -> Iterator[int]:
        with self._lock:
            if self._handle is None:
                raise UsageError(f"the model {self.name!r} is closed")
            yield self._handle

    # -- calls ----------------------------------------------------------------------------------------------------

    def tokenize(self, text: str) -> np.ndarray:
        """Token ids of one sentence exactly as the model sees them: special tokens included, truncated to
        ``info.max_sequence_length``. Returns a 1-D int32 array."""
        data = _encode(text, "text")
        capacity = max(self.info.max_sequence_length, 1)
        with self._open_handle() as handle:
            while True:
                ids = np.empty(capacity, dtype=np.int32)
                count = c_size_t(0)
                status = LIB.nativemi_tokenize(handle, data, ids.ctypes.data_as(POINTER(c_int32)), capacity, byref(count))
                if status == 2 and count.value > capacity:  # longer than the context says; ask again with room
                    capacity = count.value
                    continue
                check(status)
                return ids[: count.value].copy()

    def _layers(self, layers: Layers) -> Tuple[List[int], bool]:
        entries = self.info.entries
        if layers is None:
            return list(range(entries)), False
        if isinstance(layers, (int, np.integer)) and not isinstance(layers, bool):
            single = [int(layers)]
            scalar = True
        else:
            if isinstance(layers, (str, bytes)):
                raise TypeError("layers must be None, an int or an iterable of ints")
            single = []
            for layer in layers:
                if isinstance(layer, bool) or not isinstance(layer, (int, np.integer)):
                    raise TypeError(f"layers must hold ints, got {type(layer).__name__}")
                single.append(int(layer))
            scalar = False
        # Python-style negative entries: -1 is the last entry.
        return [layer + entries if -entries <= layer < 0 else layer for layer in single], scalar

    def embed(self, sentences: Sentences, layers: Layers = None, pool: Union[str, int, Pool] = "default") -> np.ndarray:
        """Pooled sentence vectors at chosen hidden-state entries (nativemi_embed).

        Args:
            sentences: a list (any iterable) of sentences, or one str.
            layers: entry numbers as the CLI numbers layers (0 the embedding output, 1..L the blocks, L + 1 a
                final norm where the family has one); negative numbers count from the end. None: every entry.
            pool: "default" (the model's: mean for encoders, last token for decoders), "mean" (over real tokens,
                special tokens excluded), "cls", "last", "max", or a :class:`Pool`.

        Returns:
            float32 array of shape (len(layers), len(sentences), width), its first axis in the order of ``layers``.
            A single str sentence drops the sentence axis; a single int layer drops the layer axis.
        """
        encoded, one_sentence = _sentences(sentences)
        entry_list, one_layer = self._layers(layers)
        mode = _pool(pool)
        width = self.info.width
        out = np.zeros((len(entry_list), len(encoded), width), dtype=np.float32)
        if out.size:
            layer_array = (c_int32 * len(entry_list))(*entry_list)
            strings = _string_array(encoded)
            with self._open_handle() as handle:
                check(LIB.nativemi_embed(handle, strings, len(encoded), layer_array, len(entry_list), int(mode),
                                         out.ctypes.data_as(POINTER(c_float)), out.size))
        if one_layer:
            out = out[0]
            return out[0] if one_sentence else out
        return out[:, 0] if one_sentence else out

    def hidden(self, sentences: Sentences) -> Tuple[np.ndarray, Union[np.ndarray, int]]:
        """Every hidden state of a batch (nativemi_hidden).

        Returns:
            ``(states, lengths)``: states is float32 of shape (entries, len(sentences), T, width) with T the longest
            sentence's token count, zero past each sentence's length; lengths is int32 of shape (len(sentences),),
            each sentence's token count (special tokens included). A single str sentence drops the sentence axis
            (states (entries, T, width), and the length is an int).
        """
        encoded, one_sentence = _sentences(sentences)
        entries, width, n = self.info.entries, self.info.width, len(encoded)
        lengths = np.zeros(n, dtype=np.int32)
        if n == 0:
            return np.zeros((entries, 0, 0, width), dtype=np.float32), lengths
        strings = _string_array(encoded)
        with self._open_handle() as handle:
            length = c_size_t(0)
            check(LIB.nativemi_hidden_length(handle, strings, n, byref(length)))
            states = np.zeros((entries, n, length.value, width), dtype=np.float32)
            check(LIB.nativemi_hidden(handle, strings, n, states.ctypes.data_as(POINTER(c_float)), states.size,
                                      lengths.ctypes.data_as(POINTER(c_int32)), n))
        if one_sentence:
            return states[:, 0], int(lengths[0])
        return states, lengths
