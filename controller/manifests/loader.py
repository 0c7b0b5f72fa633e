"""Loading manifests: files → YAML documents (with lines) → typed objects → checked ``Manifest``.

Pure apart from reading the files named by the user. Every refusal is collected (not just the
first) and raised together as ``ManifestError``; nothing here calls AWS.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterator

from pydantic import BaseModel, ValidationError

from controller.manifests import fleet
from controller.manifests import nulls as nulls_
from controller.manifests.documents import Manifest, Obj
from controller.manifests.files import STDIN, STDIN_NAME, Entry, PathLike, Sources, manifest_files
from controller.manifests.models import API_VERSION, KINDS
from controller.manifests.yamlload import YamlDocument, YamlProblem, decode, load_documents
from controller.vocab.problems import ManifestError, Problem, dotted


log = logging.getLogger("ecs_secrets.manifests")


def load(path: PathLike | Sources, region: str = "us-east-1") -> Manifest:
    """Every file that ``path`` names (one path, several, or the ``Sources`` of the -f options) as one
    manifest. ``region``: the controller's Region, where names without an ARN resolve."""
    manifest, problems = collect(path, region)
    if problems:
        raise ManifestError(problems)
    return manifest


def collect(path: PathLike | Sources, region: str = "us-east-1") -> tuple[Manifest, list[Problem]]:
    """Every problem the manifests show, and the objects without one.

    A document that does not parse or type hides nothing in the others: the per-object and
    cross-object checks run over every object that did load. The returned manifest holds only the
    objects no problem names, so that later stages (policy sizes, values) can build on it safely.
    """
    sources = Sources.of(path)
    problems: list[Problem] = []
    objects: list[Obj] = []
    notes: list[str] = []
    files = manifest_files(sources, problems, notes)
    for note in notes:
        log.warning("%s", note)
    for file in files:
        objects.extend(_load_file(file, sources, problems))
    if not problems and not objects:
        problems.append(Problem(str(sources), 1, None, None, "no manifest documents found; "
                                f"add documents with apiVersion: {API_VERSION}"))
    found = fleet.check(tuple(objects), region)   # checks.check, per target when the manifests name targets
    problems.extend(found)
    named = {(p.file, p.obj) for p in found}
    return Manifest(tuple(o for o in objects if (o.file, o.ref) not in named), region), problems


def _load_file(file: Entry, sources: Sources, problems: list[Problem]) -> Iterator[Obj]:
    name = STDIN_NAME if file == STDIN else str(file)
    try:
        raw = (sources.stdin or b"") if file == STDIN else Path(file).read_bytes()
        docs = load_documents(decode(raw))
    except YamlProblem as exc:
        problems.append(Problem(name, exc.line, None, dotted(exc.path) or None, exc.message))
        return
    except OSError as exc:
        problems.append(Problem(name, 1, None, None, f"cannot read it: {exc.strerror}"))
        return
    docs = [d for d in docs if d.data is not None]
    if not docs:
        problems.append(Problem(name, 1, None, None, "holds no documents (empty, or only comments); "
                                "remove it or add a manifest"))
    for doc in docs:
        obj = _typed(name, doc, problems)
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
        problems.extend(_pydantic_problems(file, doc, ref or f"{kind}/?", exc, KINDS[kind]))
        return None
    return Obj(kind, model.metadata.name, file, doc, model)


def _pydantic_problems(file: str, doc: YamlDocument, ref: str, exc: ValidationError,
                       model: type[BaseModel]) -> list[Problem]:
    out, nulls = [], set()
    for err in exc.errors(include_input=False, include_url=False):
        path = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        null = nulls_.null_at(doc.data, path)
        if null is None:
            out.append(Problem(file, doc.line_of(path), ref, dotted(path), _hint(err, path)))
        elif null not in nulls:  # one line per null, however many ways a union could not take it
            nulls.add(null)
            required = nulls_.required(model, doc.data, null)
            out.append(Problem(file, doc.line_of(null), ref, dotted(null), nulls_.hint(err, required)))
    return out


def _hint(err: dict, path: tuple) -> str:
    if err["type"] == "extra_forbidden":
        return f"unknown field {path[-1]!r}; remove it or check its spelling"
    if err["type"] == "missing":
        return f"required field {path[-1]!r} is missing; add it"
    return err["msg"].removeprefix("Value error, ")
