"""Per-object backoff for the daemon: when may a failed object be written again.

Transient failures wait exponentially with jitter (tenacity's wait functions, AWS's "equal jitter":
half fixed, half random; first retry after 2.5–5 s, capped at 5–10 min) and reset on success.
Terminal failures (validation, access denied, ownership) do not heal by waiting: they are retried
only when the object's fingerprint changes — its manifest or what AWS shows of it. The fingerprint
is kept in memory only and never printed.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from tenacity import RetryCallState, wait_exponential, wait_random_exponential

BASE, CAP = 5.0, 600.0
WAIT = wait_exponential(multiplier=BASE / 2, max=CAP / 2) + wait_random_exponential(multiplier=BASE / 2, max=CAP / 2)

# Waiting does not heal these: a person has to change the manifests, the permissions or the resource.
TERMINAL_CODES = frozenset({
    "AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "UnrecognizedClientException",
    "ValidationException", "ValidationError", "InvalidParameterException", "InvalidParameterValue",
    "InvalidParameterValueException", "ClientException", "MalformedPolicyDocument", "LimitExceeded",
    "ParameterLimitExceeded", "ParameterMaxVersionLimitExceeded", "HierarchyLevelLimitExceededException",
    "HierarchyTypeMismatchException", "ParameterPatternMismatchException", "UnsupportedParameterType",
    "InvalidKeyId", "InvalidAllowedPatternException", "IncompatiblePolicyException", "PolicyNotAttachable",
    "NotFoundException", "DisabledException", "KMSInvalidStateException", "UnmodifiableEntity",
})
def is_terminal(code: str | None) -> bool:
    """The daemon's sense of terminal: a known error that only a person can heal. An unknown one backs off."""
    return code in TERMINAL_CODES


def fingerprint(*parts: Any) -> str:
    """A stable digest of the object's manifest and planned fields; compared, never shown."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def wait_seconds(failures: int) -> float:
    state = RetryCallState(retry_object=None, fn=None, args=(), kwargs={})  # type: ignore[arg-type]
    state.attempt_number = max(failures, 1)
    return WAIT(state)


@dataclass
class Entry:
    failures: int
    retry_at: float | None        # None: terminal, wait for a change
    fingerprint: str
    terminal: bool


class Backoff:
    def __init__(self) -> None:
        self.entries: dict[str, Entry] = {}

    def allows(self, ref: str, fp: str, now: float) -> bool:
        entry = self.entries.get(ref)
        if entry is None or entry.fingerprint != fp:
            return True
        return entry.retry_at is not None and now >= entry.retry_at

    def failed(self, ref: str, fp: str, terminal: bool, now: float) -> Entry:
        previous = self.entries.get(ref)
        failures = (previous.failures if previous else 0) + 1
        retry_at = None if terminal else now + wait_seconds(failures)
        entry = self.entries[ref] = Entry(failures, retry_at, fp, terminal)
        return entry

    def reset(self, ref: str) -> None:
        self.entries.pop(ref, None)

    def next_retry(self) -> float | None:
        """The earliest moment a transient failure may be retried; the loop wakes for it."""
        times = [e.retry_at for e in self.entries.values() if e.retry_at is not None]
        return min(times, default=None)

    def forget_except(self, refs: set[str]) -> None:
        for ref in set(self.entries) - refs:
            del self.entries[ref]
