"""What this process knows a parameter holds, so that the daemon's no-op pass decrypts nothing.

Every PutParameter makes a new version (the SSM API reference, PutParameter, response element
``Version``; "Working with parameter versions": a new parameter starts at version 1 and every change of
its value adds one), so a parameter whose version has not moved since we last read or wrote it still holds
the value it held then. A delete and a re-create start again at version 1, so the version alone is not
the identity of a value: ``LastModifiedDate``, which DescribeParameters lists beside it, tells the two
incarnations apart. A label or a tag changes neither the version nor the value. After our own write
the date is not known yet (PutParameter's reply names only the version), so until a listing shows it, the
listed date must be no later than the write's reply (its HTTP ``Date``, AWS's clock, to the second):
a parameter deleted and created again since then is compared, not vouched for.

What is remembered, per (Region, name), is that version and date, and an HMAC-SHA256 of the value we
knew it held, under a key drawn at random when the process starts and never written anywhere. Why an HMAC
and not the value, nor a plain hash: the value itself would be a second copy of every secret kept for the
life of the process; a plain SHA-256 of a short or guessable secret can be reversed by trying candidates.
The keyed digest answers one question only, "is the value the manifest asks for now the value that
version holds?", and is worthless outside this process. It is kept only while it matches: a parameter
whose value we saw differ, or that left the manifests, is forgotten. Nothing here is logged, exported
as a metric, or saved; ``repr`` shows counts only. Only the daemon keeps one (``Aws.known``); the one-shot
reconcile has none and compares every value fresh.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
from datetime import datetime, timedelta
from typing import Iterable, NamedTuple

from controller.vocab.sensitive import Sensitive

Key = tuple[str, str]   # (Region, parameter name)


class _Entry(NamedTuple):
    version: int
    modified: datetime | None      # LastModifiedDate, once a listing or a read showed it
    digest: bytes
    written_by: datetime | None = None   # our write's reply came at this time (modified unknown)


class KnownValues:
    __slots__ = ("_key", "_seen", "_lock")

    def __init__(self) -> None:
        self._key = secrets.token_bytes(32)
        self._seen: dict[Key, _Entry] = {}
        self._lock = threading.Lock()

    def _digest(self, value: Sensitive) -> bytes:
        return hmac.new(self._key, value.reveal().encode("utf-8"), hashlib.sha256).digest()

    def holds(self, region: str, meta: dict, value: Sensitive) -> bool:
        """True when the parameter DescribeParameters listed as ``meta`` still holds ``value``: same
        version and date as when we last read or wrote it, and the same value as then."""
        key = (region, meta["Name"])
        with self._lock:
            known = self._seen.get(key)
        modified = meta.get("LastModifiedDate")
        if known is None or known.version != meta.get("Version") or not _same_incarnation(known, modified):
            return False
        if not hmac.compare_digest(known.digest, self._digest(value)):
            return False   # the manifest asks for another value now (a changed fromFile): compare it fresh
        if known.modified is None:
            with self._lock:   # learnt after our own write, whose reply names no date
                self._seen[key] = _Entry(known.version, modified, known.digest)
        return True

    def read(self, region: str, found: dict, value: Sensitive | None) -> None:
        """A decrypting read (GetParameters' own Version and date) and the value the manifest asks for."""
        key = (region, found["Name"])
        if value is None or found.get("Value") != value.reveal() or found.get("LastModifiedDate") is None:
            self.forget(key)
            return
        entry = _Entry(found["Version"], found["LastModifiedDate"], self._digest(value))
        with self._lock:
            self._seen[key] = entry

    def wrote(self, region: str, name: str, version: int, value: Sensitive, replied: datetime | None) -> None:
        """Our PutParameter landed; its reply named the version it made and came at ``replied``."""
        if replied is None:
            return   # nothing to tell this version from a re-created one: the next pass compares
        entry = _Entry(version, None, self._digest(value), replied)
        with self._lock:
            self._seen[(region, name)] = entry

    def forget(self, key: Key) -> None:
        with self._lock:
            self._seen.pop(key, None)

    def keep_only(self, keys: Iterable[Key]) -> None:
        wanted = set(keys)
        with self._lock:
            for key in [k for k in self._seen if k not in wanted]:
                del self._seen[key]

    def __len__(self) -> int:
        return len(self._seen)

    def __repr__(self) -> str:
        return f"KnownValues({len(self)} parameters)"


def _same_incarnation(known: _Entry, modified: datetime | None) -> bool:
    if modified is None:
        return False
    if known.modified is not None:
        return known.modified == modified
    # the reply's Date is cut to the second and comes after the write: ours was modified before it + 1 s
    return known.written_by is not None and modified < known.written_by + timedelta(seconds=1)
