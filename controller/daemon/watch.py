"""Notice when the manifests change: poll (inode, mtime, size) of every file under -f.

Polling rather than inotify (watchfiles): Kubernetes updates a mounted ConfigMap by swapping a
hidden ``..data`` symlink, which ``os.stat`` follows for free while event watchers see only the
hidden entries; a few stat calls a second cost nothing; and it needs no new dependency. The same
files as ``manifests.loader.load`` are watched (hidden entries skipped), for every -f and with -R, plus any
``fromFile`` value files; a folder's new or removed files show as a change. Standard input (``-f -``) is read
once: it cannot change.
"""

from __future__ import annotations

import os
from typing import Iterable

from controller.manifests.files import STDIN, PathLike, Sources, manifest_files

Stamp = tuple[tuple[str, int, int, int], ...]


def stamp(files: Iterable[str]) -> Stamp:
    out = []
    for name in files:
        try:
            st = os.stat(name)  # follows symlinks: a swapped ConfigMap shows as a new inode
        except OSError:
            out.append((name, -1, -1, -1))
            continue
        out.append((name, st.st_ino, st.st_mtime_ns, st.st_size))
    return tuple(out)


class Watcher:
    def __init__(self, path: PathLike | Sources) -> None:
        self.path = Sources.of(path)
        self.extra: tuple[str, ...] = ()
        self.last = (self._manifests(), stamp(self.extra))

    def _manifests(self) -> Stamp:
        return stamp(str(f) for f in manifest_files(self.path, []) if f != STDIN)

    def follow(self, extra: Iterable[str]) -> None:
        """Also watch these files (the value files of the manifests in force)."""
        self.extra = tuple(sorted(set(extra)))
        self.last = (self.last[0], stamp(self.extra))

    def changed(self) -> bool:
        now = (self._manifests(), stamp(self.extra))
        if now == self.last:
            return False
        self.last = now
        return True
