"""The write guard: no write attempt leaves the process unless the lease still covers it.

A leader that lost its lease (a failed renewal, a pause past the renew deadline) must not write
again, and that includes the attempts already under way: botocore's own retries, ours (tenacity),
and the later calls of a write that takes several (CreateRole, then PutRolePolicy, ...). So the check
sits where every attempt passes: botocore's ``before-send`` event, which fires once per HTTP attempt
once the request is signed and ready to go on the wire
(https://docs.aws.amazon.com/botocore/latest/topics/events.html). A handler that raises there stops
the attempt; botocore hands the exception back to its retry handler, which does not retry what it does
not know, so the call raises ``LeaseLost``.

Three bounds together keep a deposed leader's write from landing after its successor's:

- an attempt lasts at most ``attempt_budget`` seconds (the connect + read timeouts of the guarded
  clients, ``Aws.set_guard``);
- an attempt starts only while the lease, on our own monotonic clock, covers that budget plus a
  ``margin`` (for the drift of clock rates between hosts and the moment from the check to the wire):
  it ends, answered or timed out, before the earliest moment a successor can take over;
- our retries (``retry.retrying``) stop before a wait after which no attempt could start any more.

The guard of the write running on this thread is found through ``active``/``time_left`` (the apply
pool runs one change per thread), so ``retry`` needs no handle on the lease.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Callable, Iterator

WRITE_PREFIXES = ("Put", "Create", "Delete", "Register", "Deregister", "Attach", "Detach", "Update",
                  "Add", "Remove", "Tag", "Untag", "Label", "Unlabel")


class LeaseLost(Exception):
    """The lease no longer covers a write: the attempt was not sent. Never retried (no retry policy knows it)."""


def is_write(operation: str) -> bool:
    return operation.startswith(WRITE_PREFIXES)


class Guard:
    """``covered()``: seconds from now until a successor could take over, on our monotonic clock (0 when
    we are not the leader); a write attempt starts only when that covers ``attempt_budget + margin``."""

    def __init__(self, covered: Callable[[], float], attempt_budget: float, margin: float = 0.0,
                 what: str = "the lease") -> None:
        if attempt_budget <= 0 or margin < 0:
            raise ValueError("need a positive attempt budget and a margin of at least 0")
        self.covered, self.attempt_budget, self.margin, self.what = covered, attempt_budget, margin, what

    def time_left(self) -> float:
        """Seconds in which a write attempt may still start (≤ 0: none may)."""
        return self.covered() - self.attempt_budget - self.margin

    def check(self, operation: str) -> None:
        if self.time_left() <= 0:
            raise LeaseLost(f"{operation} not sent: {self.what} no longer covers a write attempt")


_local = threading.local()


@contextmanager
def active(guard: Guard | None) -> Iterator[None]:
    """The guard of the write this thread runs now (``None``: unguarded)."""
    before = getattr(_local, "guard", None)
    _local.guard = guard
    try:
        yield
    finally:
        _local.guard = before


def time_left() -> float | None:
    """Seconds left for the write on this thread, or None when no guard bounds it."""
    guard: Guard | None = getattr(_local, "guard", None)
    return None if guard is None else guard.time_left()
