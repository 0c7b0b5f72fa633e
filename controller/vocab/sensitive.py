"""Secret values: a wrapper that cannot be printed, and a redactor for everything that is.

A value read from the environment, a file, a generator or a decrypted parameter is held as
``Sensitive``. Its ``repr``/``str`` never show it; code that must send it to AWS calls ``reveal()``.
Every value that is revealed is also registered with the process-wide ``REDACTOR`` so that log
records, error messages and AWS replies that echo it are scrubbed before anyone sees them.
"""

from __future__ import annotations

import re
import threading

SENSITIVE = "(sensitive value)"
_MIN_SCRUB_LEN = 4  # shorter values would scrub ordinary words; they are still never printed by us


class Sensitive:
    __slots__ = ("_value", "secret")

    def __init__(self, value: str, secret: bool = True) -> None:
        self._value = value
        self.secret = secret  # False only for a literal String value, which a plan may show
        if secret:  # a literal String value from a manifest is held alike but is no secret to scrub
            REDACTOR.add(value)

    def reveal(self) -> str:
        return self._value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sensitive) and other._value == self._value

    def __hash__(self) -> int:  # pragma: no cover - never used as a key on purpose
        raise TypeError("a sensitive value is not hashable")

    def __repr__(self) -> str:
        return SENSITIVE

    __str__ = __repr__

    def __len__(self) -> int:
        return len(self._value)


class Redactor:
    """Replaces every registered secret value in a text."""

    def __init__(self) -> None:
        self._values: set[str] = set()
        self._lock = threading.Lock()
        self._pattern: re.Pattern[str] | None = None

    def add(self, value: str) -> None:
        if len(value) < _MIN_SCRUB_LEN:
            return
        with self._lock:
            if value not in self._values:
                self._values.add(value)
                self._pattern = None

    def scrub(self, text: str) -> str:
        pattern = self._compiled()
        text = _ECHOED_VALUE.sub(r"\1'***'", text)
        return pattern.sub(SENSITIVE, text) if pattern else text

    def _compiled(self) -> re.Pattern[str] | None:
        with self._lock:
            if self._pattern is None and self._values:
                longest_first = sorted(self._values, key=len, reverse=True)
                self._pattern = re.compile("|".join(re.escape(v) for v in longest_first))
            return self._pattern


# AWS validation messages echo request values: "Value 'hunter2' at 'value' failed to satisfy ..."
_ECHOED_VALUE = re.compile(r"((?:[Vv]alue|[Pp]arameter value)\s*)'[^']*'", re.DOTALL)

REDACTOR = Redactor()


def scrub(text: str) -> str:
    return REDACTOR.scrub(text)
