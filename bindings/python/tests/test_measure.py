"""nativemi.measure against the engine: a small run, progress, cancellation, interrupts and option errors."""
from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from _support import import_nativemi

nativemi = import_nativemi()

# Small enough for a 2-core machine: 200 sentences, two layers, two probe epochs, 20 bootstrap resamples.
SMALL = dict(max_sentences=200, layers=[0, 6], epochs=2, bootstrap=20)


def test_small_measure_returns_the_results_and_reports_progress():
    events = []
    main = threading.current_thread()

    def progress(stage, completed, total, message):
        events.append((stage, completed, total, message, threading.current_thread() is main))

    results = nativemi.measure("minilm", progress=progress, **SMALL)
    assert isinstance(results, dict)
    assert results["schema"].startswith("nativemi.measure/")
    assert results["model"]["name"] == "minilm"
    assert results["settings"]["max_sentences"] == 200
    assert results["settings"]["bootstrap"] == 20
    assert [row["layer"] for row in results["layers"]] == [0, 6]
    headline = results["headline_target"]
    for row in results["layers"]:
        assert np.isfinite(row[headline]["ba_bits"])
        assert len(row[headline]["ba_ci"]) == 2
    json.dumps(results)  # plain JSON types all the way down

    assert events, "the progress callback was never called"
    for stage, completed, total, message, on_main in events:
        assert isinstance(stage, str) and stage
        assert isinstance(completed, int) and isinstance(total, int) and completed >= 0 and total >= 0
        assert message is None or isinstance(message, str)
        assert on_main, "the progress callback must run on the thread that called measure()"


def test_progress_true_prints_lines_without_tqdm(capsys, monkeypatch):
    import nativemi._progress as progress_module

    monkeypatch.setattr(progress_module, "default_reporter", lambda: progress_module.LineReporter(interval=0.0))
    monkeypatch.setattr("nativemi._measure.default_reporter", progress_module.default_reporter)
    nativemi.measure("minilm", progress=True, **SMALL)
    assert "nativemi: " in capsys.readouterr().err


def test_unknown_option_is_a_usage_error_naming_the_key():
    with pytest.raises(nativemi.UsageError) as caught:
        nativemi.measure("minilm", bogus_option=3)
    assert caught.value.status == 2
    assert "bogus_option" in str(caught.value)


def test_missing_corpus_is_an_input_error(tmp_path):
    missing = tmp_path / "no-corpus.txt"
    with pytest.raises(nativemi.InputError) as caught:
        nativemi.measure("minilm", corpus=missing, **SMALL)
    assert caught.value.status == 3 and str(missing) in str(caught.value)


def test_cancelling_from_the_callback_raises_cancelled():
    calls = []

    def progress(stage, completed, total, message):
        calls.append(stage)
        return True  # stop

    started = time.monotonic()
    with pytest.raises(nativemi.Cancelled) as caught:
        nativemi.measure("minilm", progress=progress, **SMALL)
    assert caught.value.status == 130
    assert len(calls) == 1, "no callback after the one that cancelled"
    assert time.monotonic() - started < 60


def test_an_exception_in_the_callback_cancels_and_is_reraised():
    class Stop(Exception):
        pass

    def progress(stage, completed, total, message):
        raise Stop(stage)

    with pytest.raises(Stop):
        nativemi.measure("minilm", progress=progress, **SMALL)


def test_keyboard_interrupt_cancels_and_is_reraised():
    first_event = threading.Event()

    def progress(stage, completed, total, message):
        first_event.set()

    def interrupt():
        if first_event.wait(120):
            os.kill(os.getpid(), signal.SIGINT)

    sender = threading.Thread(target=interrupt, daemon=True)
    sender.start()
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        nativemi.measure("minilm", progress=progress, **dict(SMALL, epochs=50, patience=50, seed=7))
    assert time.monotonic() - started < 120
    sender.join(5)
    # The engine is usable afterwards.
    with pytest.raises(nativemi.UsageError):
        nativemi.measure("minilm", bogus_option=1)


def test_options_json():
    from nativemi._measure import options_json

    text = options_json(Path("/models/x"), corpus=Path("/c.txt"), layers=range(3), seed=np.int64(4), max_sentences=None)
    assert json.loads(text) == {"model": "/models/x", "corpus": "/c.txt", "layers": [0, 1, 2], "seed": 4, "max_sentences": None}
