"""The sandbox's value sources: the environment and the files, with a random stand-in for what is missing.

They take the place of the real sources in ``reconcile.Settings``: reconcile neither knows nor asks
whether it runs in the sandbox. Each stand-in is reported once through ``note`` (the sandbox lists them
in one block on stderr), never its value.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Callable, Iterator


class Environ(Mapping[str, str]):
    """``environ`` as it is; its ``get`` gives a random value (made once) for a variable that is not set."""

    def __init__(self, environ: Mapping[str, str], note: Callable[[str], None]) -> None:
        self._environ: Mapping[str, str] = environ
        self._invented: dict[str, str] = {}
        self._note = note

    def __getitem__(self, key: str) -> str:
        return self._environ[key]

    def get(self, key: str, default: object = None) -> str:  # type: ignore[override]
        if key in self._environ:
            return self._environ[key]
        if key not in self._invented:
            self._invented[key] = secrets.token_urlsafe(24)
            self._note(f"environment variable {key}: not set, a random value")
        return self._invented[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._environ)

    def __len__(self) -> int:
        return len(self._environ)


def reader(read: Callable[[str, int], str], note: Callable[[str], None]) -> Callable[[str, int], str]:
    """``read``, and a random value (made once per file) for a file that cannot be read. A file refused
    for what it is (a FIFO, a device, too large) stays refused: that is no missing file to stand in for."""
    invented: dict[str, str] = {}

    def read_or_invent(path: str, limit: int) -> str:
        try:
            return read(path, limit)
        except (OSError, UnicodeDecodeError):
            if path not in invented:
                invented[path] = secrets.token_urlsafe(24)
                note(f"file {path}: cannot be read, a random value")
            return invented[path]
    return read_or_invent
