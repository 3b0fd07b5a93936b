"""The progress reporters measure(progress=True) uses: tqdm bars when tqdm is importable, plain lines otherwise."""
from __future__ import annotations

import sys
import time
from typing import Any, Callable, Optional, TextIO

ProgressCallback = Callable[[str, int, int, Optional[str]], Any]


class LineReporter:
    """Prints ``nativemi: <stage> <completed>/<total> <message>`` to a stream (stderr): on each new stage, at a
    stage's last unit, and otherwise at most once every ``interval`` seconds."""

    def __init__(self, stream: Optional[TextIO] = None, interval: float = 2.0) -> None:
        self._stream = stream
        self._interval = interval
        self._stage: Optional[str] = None
        self._last = 0.0

    def __call__(self, stage: str, completed: int, total: int, message: Optional[str]) -> None:
        now = time.monotonic()
        finished = total > 0 and completed >= total
        if stage == self._stage and not finished and now - self._last < self._interval:
            return
        self._stage, self._last = stage, now
        count = f"{completed}/{total}" if total > 0 else f"{completed}"
        line = f"nativemi: {stage} {count}" + (f" {message}" if message else "")
        stream = self._stream if self._stream is not None else sys.stderr
        print(line, file=stream, flush=True)

    def close(self) -> None:
        pass


class TqdmReporter:
    """One tqdm bar per stage (total unknown when the engine says 0); the message goes in the bar's postfix."""

    def __init__(self, tqdm: Any) -> None:
        self._tqdm = tqdm
        self._bar: Any = None
        self._stage: Optional[str] = None

    def __call__(self, stage: str, completed: int, total: int, message: Optional[str]) -> None:
        if stage != self._stage or self._bar is None:
            self.close()
            self._stage = stage
            self._bar = self._tqdm(total=total if total > 0 else None, desc=stage, leave=True, file=sys.stderr)
        bar = self._bar
        if total > 0 and bar.total != total:
            bar.total = total
        bar.n = completed
        if message:
            bar.set_postfix_str(message, refresh=False)
        bar.refresh()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def default_reporter() -> "TqdmReporter | LineReporter":
    """A TqdmReporter when tqdm can be imported, else a LineReporter on stderr."""
    try:
        from tqdm.auto import tqdm  # type: ignore[import-not-found]
    except Exception:
        return LineReporter()
    return TqdmReporter(tqdm)
