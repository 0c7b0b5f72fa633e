"""Which files ``-f PATH`` names: a file, or a folder's manifest files (hidden entries and outside links refused).

The loader reads them; the daemon's watcher polls the same list.
"""

from __future__ import annotations

from pathlib import Path

from controller.vocab.problems import Problem

SUFFIXES = (".yaml", ".yml", ".json")   # SPEC: every *.yaml/*.yml/*.json of a folder (JSON is YAML)


def manifest_files(path: Path, problems: list[Problem]) -> list[Path]:
    if not path.exists():
        problems.append(Problem(str(path), 1, None, None, "no such file or folder; pass -f FILE or -f FOLDER"))
        return []
    if not path.is_dir():
        return [path]
    root = path.resolve()
    files = []
    for entry in sorted(path.iterdir()):
        if entry.name.startswith(".") or not entry.name.endswith(SUFFIXES):
            continue  # Kubernetes ConfigMap mounts keep their data in hidden ..data folders
        problem = _symlink_problem(entry, root)
        if problem:
            problems.append(problem)
        else:
            files.append(entry)
    return files


def _symlink_problem(entry: Path, root: Path) -> Problem | None:
    try:
        target = entry.resolve(strict=True)
    except (OSError, RuntimeError):
        return Problem(str(entry), 1, None, None, "a broken or looping symlink; point it at a real file")
    if entry.is_symlink() and not target.is_relative_to(root):
        return Problem(str(entry), 1, None, None,
                       f"a symlink to {target}, outside the manifest folder; copy the file in instead")
    if target.is_dir():
        return Problem(str(entry), 1, None, None, "a folder named like a manifest; folders are not read recursively")
    return None
