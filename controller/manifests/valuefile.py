"""Reading a ``fromFile`` value: only a regular file, at most a given number of bytes, within a timeout.

I/O at the edge, without boto3, so that ``validate`` uses it too. ``core.values`` decides what the
limit is and says what a refusal means.
"""

from __future__ import annotations

import os
import stat
import threading


class TooLarge(Exception):
    """The file holds more bytes than the reader was allowed to accept (it stopped reading there)."""


class Refused(Exception):
    """A value file the reader will not read or gave up on: a FIFO, a device, a read that hangs. The
    message says why, never any of the content."""


READ_TIMEOUT = 10.0  # seconds a value file may take to read (a hung network file system)
_KINDS = ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a folder"))


def read_text(path: str, limit: int) -> str:
    """A ``fromFile`` value: a regular file (symlinks followed) of at most ``limit`` bytes, read within
    ``READ_TIMEOUT``. Anything else is refused (``values.Refused``, ``values.TooLarge``) before or while
    reading, so a FIFO, ``/dev/zero`` or a stuck mount never blocks the run or fills memory.

    The read runs in a daemon thread: a read the kernel never returns from is abandoned, not waited for.
    """
    outcome: list = []
    worker = threading.Thread(target=lambda: outcome.append(_outcome(path, limit)), name="read-value-file",
                              daemon=True)
    worker.start()
    worker.join(READ_TIMEOUT)
    if not outcome:
        raise Refused(f"no answer within {READ_TIMEOUT:g} s (a stuck network file system?); "
                              "point fromFile at a local file")
    text, error = outcome[0]
    if error is not None:
        raise error
    return text


def _outcome(path: str, limit: int) -> tuple[str | None, BaseException | None]:
    try:
        return _read_regular(path, limit), None
    except BaseException as exc:  # handed to the caller's thread, raised there
        return None, exc


def _read_regular(path: str, limit: int) -> str:
    _must_be_regular(os.stat(path).st_mode)  # before open: opening a device or a FIFO can block or act
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        _must_be_regular(os.fstat(fd).st_mode)  # the path may have been swapped since the stat
        data = bytearray()
        while len(data) <= limit:
            chunk = os.read(fd, limit + 1 - len(data))
            if not chunk:
                break
            data += chunk
    finally:
        os.close(fd)
    if len(data) > limit:
        raise TooLarge()
    return data.decode("utf-8")


def _must_be_regular(mode: int) -> None:
    if not stat.S_ISREG(mode):
        kind = next((name for test, name in _KINDS if test(mode)), "a special file")
        raise Refused(f"it is {kind}, not a regular file; point fromFile at a file")
