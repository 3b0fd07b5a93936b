"""nativemi.measure: a whole `nativemi measure` run through nativemi_measure, its results.json as a dict."""
from __future__ import annotations

import ctypes
import json
import os
import queue
import threading
from ctypes import byref, c_int32, c_void_p
from typing import Any, Callable, Dict, Optional, Union

from . import _library
from ._errors import error_for_status
from ._library import LIB, PROGRESS_FN
from ._progress import ProgressCallback, default_reporter

__all__ = ["measure"]

_DONE = object()


def _json_default(value: Any) -> Any:
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, (range, tuple, set, frozenset)):
        return list(value)
    try:  # NumPy scalars and arrays without importing NumPy here
        return value.tolist()
    except AttributeError:
        raise TypeError(f"option value {value!r} of type {type(value).__name__} is not JSON") from None


def options_json(model: Any = "minilm", corpus: Any = None, **options: Any) -> str:
    """The options_json text measure() hands to the engine (exposed for inspection and tests)."""
    document: Dict[str, Any] = {"model": os.fspath(model)}
    if corpus is not None:
        document["corpus"] = os.fspath(corpus)
    document.update(options)
    return json.dumps(document, default=_json_default, allow_nan=False)


def measure(
    model: Union[str, "os.PathLike[str]"] = "minilm",
    corpus: Union[None, str, "os.PathLike[str]"] = None,
    progress: Union[None, bool, ProgressCallback] = None,
    **options: Any,
) -> Dict[str, Any]:
    """Runs a whole measurement, as ``nativemi measure`` does, and returns its results.json as a dict.

    Args:
        model: a built-in model name ("minilm", "arctic-xs") or a Hugging Face model folder.
        corpus: a UTF-8 text file, one sentence per line; None: the packaged WordNet examples.
        progress: None or False for silence; True for tqdm bars when tqdm is installed, else plain lines on stderr;
            or a callable ``progress(stage, completed, total, message)`` (stage a short name such as "forward" or
            "probe"; total 0 when unknown; message a str or None). It is called on the thread that called measure().
            Returning a true value cancels the measurement (then :class:`Cancelled` is raised); an exception it
            raises cancels the measurement and is re-raised here once the engine has stopped.
        **options: the C ABI's option keys, with Python values: backend, max_sentences (int or None for all),
            layers (list of ints), pool, probe, hidden, epochs, patience, learning_rate, classes, probe_seeds,
            target, batch_size, probe_batch_size, seed, max_tokens, bootstrap, fano_alphabet, baseline, cache.
            An unknown key is refused by the engine (:class:`UsageError` naming it).

    Returns:
        The results.json document (schema "nativemi.measure/2"): ``results["layers"][i]["coarse"]["ba_bits"]`` is
        layer i's headline I_BA (``results["headline_target"]`` names the headline target).

    Raises:
        UsageError, InputError, RuntimeEnvironmentError, InternalError: the engine's failure, with its message.
        Cancelled: the progress callback returned a true value.
        KeyboardInterrupt: Ctrl-C while it ran: the engine's cancellation flag is raised, the engine stops within
            about 50 ms, and the interrupt is re-raised (a second Ctrl-C returns at once, leaving the engine to stop
            on its own in the background).
    """
    text = options_json(model, corpus, **options).encode("utf-8")
    if progress is True:
        callback: Optional[Callable[..., Any]] = default_reporter()
    elif progress is None or progress is False:
        callback = None
    elif callable(progress):
        callback = progress
    else:
        raise TypeError(f"progress must be None, a bool or a callable, got {type(progress).__name__}")

    # The engine runs on a worker thread so that this thread stays responsive to Ctrl-C (a blocked ctypes call would
    # only see it on return). Progress events travel back through a queue and the callback runs here.
    cancel = c_int32(0)
    events: "queue.SimpleQueue[Any]" = queue.SimpleQueue()
    outcome: Dict[str, Any] = {}

    def on_progress(_user_data: Any, stage: Optional[bytes], completed: int, total: int, message: Optional[bytes]) -> int:
        try:
            events.put((
                stage.decode("utf-8", "replace") if stage else "",
                int(completed),
                int(total),
                message.decode("utf-8", "replace") if message else None,
            ))
        except BaseException:  # nothing may escape into the engine
            return 1
        return 1 if cancel.value else 0

    native_callback = PROGRESS_FN(on_progress) if callback is not None else PROGRESS_FN()

    def work() -> None:
        results = c_void_p()
        try:
            status = LIB.nativemi_measure(text, native_callback, None, byref(cancel), byref(results))
            if status != 0:
                # The last error is per thread: read it on this one.
                outcome["error"] = error_for_status(status, _library.last_error())
            else:
                try:
                    outcome["json"] = ctypes.string_at(results.value).decode("utf-8") if results.value else None
                finally:
                    LIB.nativemi_free_string(results.value)
        except BaseException as error:  # a ctypes failure: hand it to the caller
            outcome["exception"] = error
        finally:
            events.put(_DONE)

    worker = threading.Thread(target=work, name="nativemi-measure", daemon=True)
    interrupted = False
    callback_error: Optional[BaseException] = None
    worker.start()
    try:
        while True:
            try:
                try:
                    event = events.get(timeout=0.1)
                except queue.Empty:
                    continue
                if event is _DONE:
                    break
                if callback is None or cancel.value:
                    continue
                try:
                    if callback(*event):
                        cancel.value = 1
                except KeyboardInterrupt:
                    raise
                except BaseException as error:
                    callback_error = error
                    cancel.value = 1
            except KeyboardInterrupt:
                if interrupted:
                    raise  # the second Ctrl-C: return now; the engine stops on its own (the flag is raised)
                interrupted = True
                cancel.value = 1
        worker.join()
    finally:
        close = getattr(callback, "close", None)
        if callback is not progress and close is not None:
            close()
    if interrupted:
        raise KeyboardInterrupt
    if callback_error is not None:
        raise callback_error
    if "exception" in outcome:
        raise outcome["exception"]
    if "error" in outcome:
        raise outcome["error"]
    if outcome.get("json") is None:
        raise error_for_status(1, "nativemi_measure succeeded but returned no results")
    return json.loads(outcome["json"])
