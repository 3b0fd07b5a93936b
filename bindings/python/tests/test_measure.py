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
    from nativemi._progress import LineReporter

    # tqdm may be installed where the tests run; the plain reporter is what CI's Debian python3 gets.
    monkeypatch.setattr("nativemi._measure.default_reporter", lambda: LineReporter(interval=0.0))
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


@pytest.fixture
def python_sigint_handler():
    # A shell starts background jobs with SIGINT ignored, and Python then keeps it ignored (no KeyboardInterrupt at
    # all), so a CI run launched with `&` would never see the interrupt this test sends: install Python's own handler.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_keyboard_interrupt_cancels_and_is_reraised(python_sigint_handler):
    # SIGINT once probe training has started (a run that would take minutes), as Ctrl-C would send it.
    training = threading.Event()
    sent = []

    def progress(stage, completed, total, message):
        if stage in ("control", "probe"):
            training.set()

    def interrupt():
        if training.wait(300):
            sent.append(time.monotonic())
            os.kill(os.getpid(), signal.SIGINT)

    sender = threading.Thread(target=interrupt, daemon=True)
    sender.start()
    with pytest.raises(KeyboardInterrupt):
        nativemi.measure("minilm", progress=progress, **dict(SMALL, epochs=500, patience=500))
    assert sent, "probe training never started"
    assert time.monotonic() - sent[0] < 10, "the engine did not stop soon after the interrupt"
    sender.join(5)
    # The engine is usable afterwards.
    with pytest.raises(nativemi.UsageError):
        nativemi.measure("minilm", bogus_option=1)


def test_options_json():
    from nativemi._measure import options_json

    text = options_json(Path("/models/x"), corpus=Path("/c.txt"), layers=range(3), seed=np.int64(4), max_sentences=None)
    assert json.loads(text) == {"model": "/models/x", "corpus": "/c.txt", "layers": [0, 1, 2], "seed": 4, "max_sentences": None}


def test_tqdm_reporter_draws_one_bar_per_stage():
    from nativemi._progress import TqdmReporter

    bars = []

    class FakeBar:
        def __init__(self, total=None, desc=None, **_):
            self.total, self.desc, self.n, self.postfix, self.closed = total, desc, 0, None, False
            bars.append(self)

        def set_postfix_str(self, text, refresh=True):
            self.postfix = text

        def refresh(self):
            pass

        def close(self):
            self.closed = True

    reporter = TqdmReporter(FakeBar)
    reporter("forward", 10, 200, None)
    reporter("forward", 200, 200, None)
    reporter("probe", 1, 0, "layer 0: val CE 3.1 bits")
    reporter.close()
    assert [(bar.desc, bar.total, bar.n, bar.closed) for bar in bars] == [("forward", 200, 200, True), ("probe", None, 1, True)]
    assert bars[1].postfix == "layer 0: val CE 3.1 bits"
