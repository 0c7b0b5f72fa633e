"""Secret values: a wrapper that cannot be printed, and a redactor for everything that is.

A value read from the environment, a file, a generator or a decrypted parameter is held as
``Sensitive``. Its ``repr``/``str`` never show it; code that must send it to AWS calls ``reveal()``.
Every value that is revealed is also registered with the process-wide ``REDACTOR`` so that log
records, error messages and AWS replies that echo it are scrubbed before anyone sees them.
"""

from __future__ import annotations

import heapq
import html
import json
import re
import threading
from typing import Iterable
from urllib.parse import quote, quote_plus

SENSITIVE = "(sensitive value)"
MIN_SECRET_LEN = 4          # a secret value is at least this long (core.values refuses shorter ones)
SCRUB_ANYWHERE_LEN = 8      # shorter forms are replaced only where they stand alone, not inside a word
_MAX_FORMS_LEN = 65536      # past any size SSM or Secrets Manager stores: refused before it is sent
_INDEX_FROM = 256           # with more forms than this, only those whose first characters appear are tried


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
    """Replaces every registered secret value, in every form it can take in a message, in a text.

    ``forms`` lists those forms; ``scrub`` replaces each exactly, longest first. Nothing but a registered
    value (or one of its forms) is ever replaced.
    """

    def __init__(self) -> None:
        self._values: set[str] = set()
        self._forms: set[str] = set()
        self._lock = threading.Lock()
        self._compiled: tuple[list[str], re.Pattern[str] | None, dict[str, list[str]]] | None = None

    def add(self, value: str) -> None:
        if len(value) < MIN_SECRET_LEN:
            return
        with self._lock:
            if value not in self._values:
                self._values.add(value)
                self._forms |= forms(value)
                self._compiled = None

    def scrub(self, text: str) -> str:
        anywhere, alone, by_prefix = self._matchers()
        if len(anywhere) > _INDEX_FROM:
            # A daemon of 10,000 secrets holds ~100,000 forms: testing each against every log line costs
            # milliseconds a line. Every form here is at least SCRUB_ANYWHERE_LEN long, so one that occurs
            # starts with a SCRUB_ANYWHERE_LEN-slice of the text: try only the forms of those slices, in
            # the same order.
            # A replacement can complete a form that starts in the marker it wrote (a value may hold the
            # marker's characters): after each, the slices overlapping a marker are looked up too, and the
            # forms found that come later in the order are tried, as trying every form in turn would.
            return self._scrub_indexed(text, by_prefix, alone)
        for form in anywhere:        # longest first: a form inside a longer one is replaced with it
            if form in text:
                text = text.replace(form, SENSITIVE)
        if alone is not None:
            text = alone.sub(SENSITIVE, text)   # the marker is replaced by itself
        return text

    @staticmethod
    def _scrub_indexed(text: str, by_prefix: dict[str, list[str]], alone: re.Pattern[str] | None) -> str:
        n = SCRUB_ANYWHERE_LEN
        pending = [(_order(f), f) for f in {f for i in range(len(text) - n + 1)
                                            for f in by_prefix.get(text[i:i + n], ())}]
        heapq.heapify(pending)
        tried: set[str] = set()
        while pending:               # longest first: a form inside a longer one is replaced with it
            order, form = heapq.heappop(pending)
            if form in tried:
                continue
            tried.add(form)
            if form not in text:
                continue
            text = text.replace(form, SENSITIVE)
            for at in _occurrences(text, SENSITIVE):
                for i in range(max(0, at - n + 1), min(len(text) - n, at + len(SENSITIVE) - 1) + 1):
                    for f in by_prefix.get(text[i:i + n], ()):
                        if f not in tried and _order(f) > order:
                            heapq.heappush(pending, (_order(f), f))
        return alone.sub(SENSITIVE, text) if alone is not None else text

    def scrub_values(self, text: str) -> str:
        """For our own messages (which quote names, never values): the same exact replacement of the
        registered values' forms as ``scrub``, kept as its own name for the validation messages."""
        return self.scrub(text)

    def _matchers(self) -> tuple[list[str], re.Pattern[str] | None, dict[str, list[str]]]:
        with self._lock:
            if self._compiled is None:
                ordered = sorted(self._forms, key=_order)
                short = [f for f in ordered if len(f) < SCRUB_ANYWHERE_LEN]
                # the marker first, so that a short secret that is a word of it leaves it alone
                alone = re.compile(re.escape(SENSITIVE) + r"|(?<!\w)(?:" + "|".join(map(re.escape, short))
                                   + r")(?!\w)") if short else None
                anywhere = [f for f in ordered if len(f) >= SCRUB_ANYWHERE_LEN]
                by_prefix: dict[str, list[str]] = {}
                for f in anywhere:
                    by_prefix.setdefault(f[:SCRUB_ANYWHERE_LEN], []).append(f)
                self._compiled = (anywhere, alone, by_prefix)
            return self._compiled


def _order(form: str) -> tuple[int, str]:
    return -len(form), form


def _occurrences(text: str, part: str) -> Iterable[int]:
    at = text.find(part)
    while at >= 0:
        yield at
        at = text.find(part, at + 1)


def forms(value: str) -> set[str]:
    """Every form ``value`` can take in a message, each at least ``MIN_SECRET_LEN`` long: as it is and each
    of its lines (an echo may quote one line); each of those JSON-escaped (ASCII or not), URL-encoded,
    XML-escaped and escaped as a Python literal; and each of those escaped once more (a JSON body inside
    the repr of a bytes object, a URL-encoded JSON document)."""
    pieces = {value}
    if len(value) <= _MAX_FORMS_LEN:
        pieces |= {line for line in re.split(r"\r\n|\r|\n", value)} | {line.strip() for line in value.splitlines()}
    out = set(pieces)
    for piece in pieces:
        if len(piece) > _MAX_FORMS_LEN:
            continue
        once = _escaped(piece)
        out |= once
        for form in once - {piece}:
            out |= _escaped(form)
    return {f for f in out if len(f) >= MIN_SECRET_LEN}


def _escaped(text: str) -> set[str]:
    """``text`` escaped once, in each way a message may carry it."""
    xml = html.escape(text, quote=False)
    single = repr(text + "'\"")[1:-4]          # a Python literal quoted with ': ' escaped, " not
    bare = single.replace("\\'", "'")          # ... quoted with ", or part of a longer literal
    return {
        json.dumps(text)[1:-1], json.dumps(text, ensure_ascii=False)[1:-1],
        quote(text, safe=""), quote(text, safe="/"), quote_plus(text, safe=""),
        xml, html.escape(text, quote=True),
        xml.replace('"', "&quot;").replace("'", "&apos;"), xml.replace('"', "&#34;").replace("'", "&#39;"),
        repr(text.encode("utf-8"))[2:-1],         # inside a bytes literal, as botocore logs bodies
        single, bare, bare.replace('"', '\\"'),
    }


REDACTOR = Redactor()


def scrub(text: str) -> str:
    return REDACTOR.scrub(text)


def scrub_values(text: str) -> str:
    return REDACTOR.scrub_values(text)
