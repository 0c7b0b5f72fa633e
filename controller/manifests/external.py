"""``spec.externallyManaged``: the fields of a task definition another writer owns, as paths. Pure.

A path names a whole field, of every container (``containerDefinitions[*].image``), of one container
(``containerDefinitions[web].image``) or of the task (``cpu``), and must name a field of botocore's
RegisterTaskDefinition model. Refused: a container's ``name`` (it is how containers are matched), the
fields the task execution role reads from (``secrets`` and the others of ``vocab.taskreads``; the
derived policy is computed from the manifest's values, so another writer's would go ungranted), and at
task level ``family``, ``containerDefinitions``, ``executionRoleArn``, ``volumes`` and ``tags``.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import Any, Iterator

from controller.manifests import ecsmodel

ALL = "*"
_PATH = re.compile(r"containerDefinitions\[(?P<container>[^\]]*)\]\.(?P<field>[^.\[\]]*)|(?P<task>[^.\[\]]+)")
# What the task execution role reads at task start (vocab/taskreads.py, vocab/secretrefs.py): the derived
# policy follows the manifest, so these stay ours.
_READ_BY_THE_ROLE = ("secrets", "repositoryCredentials", "environmentFiles", "logConfiguration",
                     "firelensConfiguration", "credentialSpecs")
_NOT_CONTAINER = {"name": "it is how a container is matched with its revision", **{
    f: "the task execution role reads from it, and its grants are derived from the manifest" for f in _READ_BY_THE_ROLE}}
_NOT_TASK = {
    "family": "it names the task definition",
    "containerDefinitions": "name the container fields instead, e.g. containerDefinitions[*].image",
    "executionRoleArn": "the execution role's grants are derived from the manifest",
    "volumes": "a volume's credentials are read with the execution role, whose grants are derived from the manifest",
    "tags": "tags are not part of a revision's definition",
}


@dataclass(frozen=True)
class FieldPath:
    """``container``: a container's name, ``*`` for every container, None for a field of the task."""

    container: str | None
    field: str

    def __str__(self) -> str:
        return self.field if self.container is None else f"containerDefinitions[{self.container}].{self.field}"


def parse(text: str) -> FieldPath | None:
    """The path, or None when it is not of the form ``containerDefinitions[NAME].FIELD`` or ``FIELD``."""
    match = _PATH.fullmatch(text) if isinstance(text, str) else None
    if match is None or (match["task"] is None and not (match["container"] and match["field"])):
        return None
    return FieldPath(None, match["task"]) if match["task"] else FieldPath(match["container"], match["field"])


def paths(written: Any) -> tuple[FieldPath, ...]:
    """The valid paths of ``spec.externallyManaged`` (``problems`` reports the others)."""
    return tuple(p for p in (parse(t) for t in written or ()) if p is not None)


def problems(written: Any, fields: dict[str, Any]) -> Iterator[tuple[int, str]]:
    """(index in the list, message) for each path that names no field we can leave to another writer."""
    names = [c.get("name") for c in fields.get("containerDefinitions") or [] if isinstance(c, dict)]
    for i, text in enumerate(written or ()):
        path = parse(text)
        msg = _problem(path, names) if path else (
            f"{text!r} is not a field path; write containerDefinitions[NAME].FIELD (NAME a container's name or *) "
            "or a field of the task, e.g. containerDefinitions[web].image")
        if msg:
            yield i, msg


def _problem(path: FieldPath, containers: list[Any]) -> str | None:
    shape = ecsmodel.input_shape()
    if path.container is not None:
        shape = shape.members["containerDefinitions"].member
        if path.container != ALL and path.container not in containers:
            have = ", ".join(str(c) for c in containers) or "none"
            return f"no container {path.container!r} in this task definition (containers: {have}); name one, or * for all"
    refused = (_NOT_TASK if path.container is None else _NOT_CONTAINER).get(path.field)
    if refused:
        return f"{path} cannot be managed elsewhere: {refused}"
    if path.field not in shape.members:
        close = difflib.get_close_matches(path.field, list(shape.members), n=1)
        hint = f"did you mean {close[0]!r}?" if close else "see the RegisterTaskDefinition API reference"
        return f"{path.field!r} is not a field of {'the task' if path.container is None else 'a container'} in ECS; {hint}"
    return None
