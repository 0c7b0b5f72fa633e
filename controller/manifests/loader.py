"""Loading manifests: files → YAML documents (with lines) → typed objects → checked ``Manifest``.

Pure apart from reading the files named by the user. Every refusal is collected (not just the
first) and raised together as ``ManifestError``; nothing here calls AWS.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Callable, Hashable, Iterator

from pydantic import ValidationError

from controller.manifests import checks
from controller.manifests.models import API_VERSION, KINDS, Doc
from controller.vocab.problems import ManifestError, Problem, dotted
from controller.manifests.yamlload import YamlDocument, YamlProblem, decode, load_documents

SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True)
class Obj:
    """One manifest document, typed, with where each of its fields stood."""

    kind: str
    name: str
    file: str
    doc: YamlDocument
    model: Doc

    @property
    def ref(self) -> str:
        return f"{self.kind}/{self.name}"

    @property
    def spec(self) -> Any:
        return self.model.spec

    def problem(self, path: tuple, message: str) -> Problem:
        return Problem(self.file, self.doc.line_of(path), self.ref, dotted(path) or None, message)


@dataclass(frozen=True)
class Manifest:
    objects: tuple[Obj, ...]

    def of(self, kind: str) -> list[Obj]:
        return list(self._by_kind.get(kind, ()))

    def get(self, kind: str, name: str) -> Obj | None:
        return self._by_ref.get((kind, name))

    def memo(self, key: Hashable, make: Callable[[], Any]) -> Any:
        """A value derived from the (immutable) manifests, made once: lookups of 10,000 objects stay O(1)."""
        if key not in self._memo:
            self._memo[key] = make()
        return self._memo[key]

    @cached_property
    def _by_kind(self) -> dict[str, list[Obj]]:
        out: dict[str, list[Obj]] = {}
        for o in self.objects:
            out.setdefault(o.kind, []).append(o)
        return out

    @cached_property
    def _by_ref(self) -> dict[tuple[str, str], Obj]:
        out: dict[tuple[str, str], Obj] = {}
        for o in self.objects:
            out.setdefault((o.kind, o.name), o)  # the first, as next() found it
        return out

    @cached_property
    def _memo(self) -> dict:
        return {}


def load(path: str | os.PathLike[str], region: str = "us-east-1") -> Manifest:
    """``region``: the controller's Region, where names without an ARN resolve."""
    problems: list[Problem] = []
    objects: list[Obj] = []
    files = manifest_files(Path(path), problems)
    for file in files:
        objects.extend(_load_file(file, problems))
    if not problems and not objects:
        problems.append(Problem(str(path), 1, None, None, "no manifest documents found; "
                                f"add documents with apiVersion: {API_VERSION}"))
    manifest = Manifest(tuple(objects))
    if not problems:
        problems.extend(checks.check(manifest, region))
    if problems:
        raise ManifestError(problems)
    return manifest


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


def _load_file(file: Path, problems: list[Problem]) -> Iterator[Obj]:
    try:
        docs = load_documents(decode(file.read_bytes()))
    except YamlProblem as exc:
        problems.append(Problem(str(file), exc.line, None, None, exc.message))
        return
    except OSError as exc:
        problems.append(Problem(str(file), 1, None, None, f"cannot read it: {exc.strerror}"))
        return
    docs = [d for d in docs if d.data is not None]
    if not docs:
        problems.append(Problem(str(file), 1, None, None, "the file holds no documents (empty, or only "
                                "comments); remove it or add a manifest"))
    for doc in docs:
        obj = _typed(str(file), doc, problems)
        if obj is not None:
            yield obj


def _typed(file: str, doc: YamlDocument, problems: list[Problem]) -> Obj | None:
    data = doc.data
    if not isinstance(data, dict):
        problems.append(Problem(file, doc.line, None, None, "a document must be a mapping with "
                                "apiVersion, kind, metadata and spec"))
        return None
    kind, name = data.get("kind"), (data.get("metadata") or {}).get("name") if isinstance(
        data.get("metadata"), dict) else None
    ref = f"{kind}/{name}" if isinstance(kind, str) and isinstance(name, str) else None
    if data.get("apiVersion") != API_VERSION:
        problems.append(Problem(file, doc.line_of(("apiVersion",)), ref, "apiVersion",
                                f"must be {API_VERSION!r}"))
        return None
    if not isinstance(kind, str) or kind not in KINDS:
        problems.append(Problem(file, doc.line_of(("kind",)), ref, "kind",
                                f"unknown kind {kind!r}; use one of {', '.join(KINDS)}"))
        return None
    try:
        model = KINDS[kind].model_validate(data)
    except ValidationError as exc:
        problems.extend(_pydantic_problems(file, doc, ref or f"{kind}/?", exc))
        return None
    return Obj(kind, model.metadata.name, file, doc, model)


def _pydantic_problems(file: str, doc: YamlDocument, ref: str, exc: ValidationError) -> list[Problem]:
    out = []
    for err in exc.errors(include_input=False, include_url=False):
        path = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        out.append(Problem(file, doc.line_of(path), ref, dotted(path), _hint(err, path)))
    return out


def _hint(err: dict, path: tuple) -> str:
    if err["type"] == "extra_forbidden":
        return f"unknown field {path[-1]!r}; remove it or check its spelling"
    if err["type"] == "missing":
        return f"required field {path[-1]!r} is missing; add it"
    return err["msg"].removeprefix("Value error, ")
