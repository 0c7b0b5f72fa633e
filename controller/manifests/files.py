"""Which files the ``-f`` options name: files, folders' manifest files, or ``-`` (standard input).

Every ``-f`` adds to one desired state, as ``kubectl apply -f a -f b`` does. A folder gives its ``*.yaml``,
``*.yml`` and ``*.json`` files in sorted order; its subfolders only with ``-R`` (and a subfolder skipped
without it is said, never silent). Hidden entries are always skipped (Kubernetes ConfigMap mounts keep
their data in hidden ``..data`` folders) and symlinks out of the folder refused. The loader reads these
files; the daemon's watcher polls the same list.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Union

from controller.vocab.problems import Problem

SUFFIXES = (".yaml", ".yml", ".json")   # SPEC: every *.yaml/*.yml/*.json of a folder (JSON is YAML)
STDIN = "-"            # what -f takes for standard input
STDIN_NAME = "<stdin>"  # how messages name it (the file of its problems)


@dataclass(frozen=True)
class Sources:
    """What the ``-f`` options named, in order. ``stdin``: what ``-f -`` read, once (the command line reads it;
    the daemon reloads from these bytes, which never change)."""

    paths: tuple[str, ...]
    recursive: bool = False
    stdin: bytes | None = None

    @classmethod
    def of(cls, given: "PathLike | Sources", recursive: bool = False) -> "Sources":
        if isinstance(given, Sources):
            return given
        if isinstance(given, (str, os.PathLike)):
            return cls((os.fspath(given),), recursive)
        return cls(tuple(os.fspath(p) for p in given), recursive)

    def __str__(self) -> str:   # in logs and /status: the paths as they were typed
        return ", ".join(STDIN_NAME if p == STDIN else p for p in self.paths)


PathLike = Union[str, "os.PathLike[str]", Iterable[Union[str, "os.PathLike[str]"]]]
Entry = Union[Path, str]   # a file, or STDIN


def manifest_files(sources: PathLike | Sources, problems: list[Problem],
                   notes: list[str] | None = None) -> list[Entry]:
    """The files to read, each once (a file named twice, or by a folder and by name, is read once).
    ``notes``: what was skipped and should be said (subfolders without -R, symlinked folders)."""
    sources = Sources.of(sources)
    out: list[Entry] = []
    seen: set[str] = set()

    def add(entry: Entry) -> None:
        key = entry if entry == STDIN else str(Path(entry).resolve())
        if key not in seen:
            seen.add(key)
            out.append(entry)

    for given in sources.paths:
        if given == STDIN:
            add(STDIN)
            continue
        path = Path(given)
        if not path.exists():
            problems.append(Problem(given, 1, None, None, "no such file or folder; pass -f FILE, -f FOLDER "
                                    "or -f - (standard input)"))
        elif not path.is_dir():
            if not stat.S_ISREG(path.stat().st_mode):   # a FIFO or a device would block the read or never end
                problems.append(Problem(given, 1, None, None, "not a regular file (a FIFO, a device or a socket); "
                                        "pass a manifest file, a folder or - (standard input)"))
            else:
                add(path)
        else:
            for entry in _folder(path, path.resolve(), sources.recursive, problems, notes):
                add(entry)
    return out


def _folder(folder: Path, root: Path, recursive: bool, problems: list[Problem],
            notes: list[str] | None) -> Iterable[Path]:
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith("."):
            continue  # hidden: a ConfigMap's ..data, an editor's swap file, .git
        if entry.is_dir():
            problem = _symlink_problem(entry, root) if entry.is_symlink() else None
            if problem:
                problems.append(problem)
            elif entry.is_symlink():
                _note(notes, f"{entry}: a symlink to a folder, not followed; name the folder with -f instead")
            elif recursive:
                yield from _folder(entry, root, recursive, problems, notes)
            elif entry.name.endswith(SUFFIXES):   # its name says it holds manifests: skipping it would lose them
                problems.append(Problem(str(entry), 1, None, None, "a folder named like a manifest; folders are "
                                        "not read recursively without -R: pass -R or rename it"))
            else:
                _note(notes, f"{entry}: a subfolder, skipped; pass -R to read subfolders too")
            continue
        if not entry.name.endswith(SUFFIXES):
            continue  # a README or a script beside the manifests
        problem = _symlink_problem(entry, root)
        if problem:
            problems.append(problem)
        else:
            yield entry


def _note(notes: list[str] | None, text: str) -> None:
    if notes is not None:
        notes.append(text)


def _symlink_problem(entry: Path, root: Path) -> Problem | None:
    try:
        target = entry.resolve(strict=True)
    except (OSError, RuntimeError):
        return Problem(str(entry), 1, None, None, "a broken or looping symlink; point it at a real file")
    if entry.is_symlink() and not target.is_relative_to(root):
        return Problem(str(entry), 1, None, None,
                       f"a symlink to {target}, outside the manifest folder; copy the file in instead")
    return None
