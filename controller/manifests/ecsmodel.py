"""The ECS part of a TaskDefinition, checked against botocore's own RegisterTaskDefinition model.

botocore ships the service model and a validator for it; using them means every ECS field, enum
and type is checked as the SDK would, and a typo anywhere in a task definition is caught here
without us modelling ECS by hand. No client is created and nothing is sent.
"""

from __future__ import annotations

import difflib
import functools
import re
from typing import Any, Iterator

import botocore.session
from botocore.validate import ParamValidator

from controller.manifests import nulls
from controller.manifests.models import ecs_input

_PART = re.compile(r"\.?([^.\[\]]+)|\[(\d+)\]")


@functools.lru_cache(maxsize=1)
def _input_shape():
    return botocore.session.get_session().get_service_model("ecs").operation_model(
        "RegisterTaskDefinition").input_shape


def input_shape() -> Any:
    """botocore's shape of the RegisterTaskDefinition input (``ecsschema`` turns it into JSON Schema)."""
    return _input_shape()


def problems(fields: dict[str, Any]) -> list[tuple[tuple, str]]:
    """(path from the task definition's root, message) for every way ``fields`` breaks the model."""
    report = ParamValidator().validate(ecs_input(fields), _input_shape())
    out = []
    for kind, name, extra in report._errors:
        path = _path(name) + ((extra["unknown_param"],) if kind == "unknown field" else ())
        if kind == "invalid type" and extra.get("param", "") is None:
            types = [t.split("'")[1] if "'" in t else t for t in extra["valid_types"]]
            out.append((path, nulls.ecs_hint(types, _required(path))))
        else:
            out.append((path, _message(kind, extra)))
    return out


def _required(path: tuple) -> bool:
    """The model's required members, and a container's name and image, which ECS needs though it lists them optional."""
    shape, parent = _input_shape(), None
    for part in path:
        parent = shape
        shape = shape.member if isinstance(part, int) else shape.members.get(part)
        if shape is None:
            return False
    if isinstance(path[-1], int):
        return False
    needed = set(parent.required_members)
    if parent.name == "ContainerDefinition":
        needed |= {"name", "image"}
    return path[-1] in needed


def _path(name: str) -> tuple:
    return tuple(int(i) if i else p for p, i in _PART.findall(name))


def _message(kind: str, extra: dict) -> str:
    if kind == "unknown field":
        field = extra["unknown_param"]
        close = difflib.get_close_matches(field, extra["valid_names"], n=1)
        hint = f"did you mean {close[0]!r}?" if close else "see the RegisterTaskDefinition API reference"
        return f"unknown ECS field {field!r}; {hint}"
    if kind == "missing required field":
        return f"required ECS field {extra['required_name']!r} is missing; add it"
    if kind == "invalid type":
        types = ", ".join(t.split("'")[1] if "'" in t else t for t in extra["valid_types"])
        return f"wrong type; ECS expects {types}"
    if kind == "invalid range":
        return f"out of range; ECS expects at least {extra.get('min_allowed')}"
    if kind == "invalid length":
        return f"wrong length; ECS expects at least {extra.get('min_allowed')}"
    return f"{kind}; see the RegisterTaskDefinition API reference"


def integers(fields: dict[str, Any]) -> Iterator[tuple[tuple, Any]]:
    """(path, value) of every value that stands where the model wants an integer or a long: botocore
    checks only that it is an ``int``, so ``true`` and ``10**30`` pass its validator."""
    yield from _integers(ecs_input(fields), _input_shape(), ())


def _integers(value: Any, shape: Any, path: tuple) -> Iterator[tuple[tuple, Any]]:
    kind = shape.type_name
    if kind in ("integer", "long"):
        yield path, value
    elif kind == "structure" and isinstance(value, dict):
        for key, item in value.items():
            if key in shape.members:
                yield from _integers(item, shape.members[key], path + (key,))
    elif kind == "list" and isinstance(value, list):
        for i, item in enumerate(value):
            yield from _integers(item, shape.member, path + (i,))
    elif kind == "map" and isinstance(value, dict):
        for key, item in value.items():
            yield from _integers(item, shape.value, path + (key,))
