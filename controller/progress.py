"""Progress of a long run, for the person or CI log watching stderr: an object started and finished
(with its elapsed time when slow) and why we wait when we pace ourselves. Never stdout, which holds
the plan or report.

On a terminal one live line is rewritten in place (carriage return) and each finished object stays
as a line above it; anywhere else every event is a plain line, and repeated waits of one quota are
said once per ``QUIET_WAITS`` seconds so that a thousand paced writes do not print a thousand lines.
Events carry object refs, actions and quota names only: never a value. Imports nothing of the
controller: the AWS edge reports through callbacks the command line hands in.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable, TextIO

SLOW = 1.0          # seconds after which a finished object says how long it took
QUIET_WAITS = 10.0  # plain output: a quota's waits said at most once in this many seconds
DONE = {"create": "created", "update": "updated", "delete": "deleted"}
DOING = {"create": "creating", "update": "updating", "delete": "deleting"}


class Progress:
    def __init__(self, stream: TextIO, live: bool, clock: Callable[[], float] = time.monotonic) -> None:
        self.stream, self.live, self.clock = stream, live, clock
        self._lock = threading.Lock()
        self._started: dict[str, float] = {}
        self._said_wait: dict[str, float] = {}
        self._status = ""
        self.total = self.done = 0

    # --- the events ----------------------------------------------------------------------------

    def phase(self, text: str) -> None:
        with self._lock:
            self._line(text) if not self.live else self._redraw(text)

    def plan(self, total: int) -> None:
        self.total, self.done = total, 0

    def started(self, ref: str, action: str) -> None:
        with self._lock:
            self._started[ref] = self.clock()
            text = f"{DOING.get(action, action)} {ref}"
            self._redraw(text) if self.live else self._line(text)

    def finished(self, ref: str, action: str, result: str) -> None:
        with self._lock:
            self.done += 1
            began = self._started.pop(ref, None)
            elapsed = None if began is None else self.clock() - began
            what = DONE.get(action, action) if result == "applied" else result
            took = f" in {elapsed:.1f}s" if elapsed is not None and elapsed >= SLOW else ""
            self._redraw("")
            self._line(f"{self._count()} {ref}: {what}{took}")
            if self.live and self._started:
                self._redraw(f"{self._count()} still {len(self._started)} in flight: {', '.join(self._started)}")

    def waiting(self, quota: str, rate: float | None, seconds: float) -> None:
        """The rate limiter holds a call back ``seconds`` to stay under ``quota`` (``rate`` per second)."""
        pace = f", {rate:g}/s" if rate else ""
        text = f"waiting {seconds:.1f}s for {quota}{pace}"
        with self._lock:
            if self.live:
                self._redraw(text)
                return
            now = self.clock()
            if now - self._said_wait.get(quota, float("-inf")) >= QUIET_WAITS:
                self._said_wait[quota] = now
                self._line(text)

    def close(self) -> None:
        with self._lock:
            self._redraw("")

    # --- the output --------------------------------------------------------------------------

    def _count(self) -> str:
        return f"[{self.done}/{self.total}]" if self.total else ""

    def _line(self, text: str) -> None:
        """A line that stays; on a terminal the live line is cleared first and drawn again after."""
        status = self._status
        if self.live and status:
            self._write("\r\033[K")
        self._write(text.strip() + "\n")
        if self.live and status:
            self._write(status)

    def _redraw(self, text: str) -> None:
        if not self.live:
            return
        self._status = text.strip()
        self._write("\r\033[K" + self._status)

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):   # a closed stderr never fails the run
            pass


class Silent(Progress):
    """``--quiet``: the same calls, no output."""

    def __init__(self) -> None:
        super().__init__(stream=None, live=False)   # type: ignore[arg-type]

    def _write(self, text: str) -> None:
        pass


def for_stream(stream: Any, quiet: bool) -> Progress:
    if quiet:
        return Silent()
    isatty = getattr(stream, "isatty", None)
    return Progress(stream, live=bool(isatty and isatty()))
