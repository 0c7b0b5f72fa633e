"""A YAML or JSON ``null`` where a value belongs: said in one line, with how to fix it. Pure.

YAML reads an empty value (``image:``), ``~`` and ``null`` as null. Where a field takes a union, pydantic
reports one "wrong type" per member; the loader reports one line per null instead, from here.
"""

from __future__ import annotations

import copy
from typing import Any

from pydantic import BaseModel, ValidationError

_EXPECTED = {
    "string_type": "a string", "dict_type": "a mapping", "model_type": "a mapping",
    "model_attributes_type": "a mapping", "list_type": "a list", "int_type": "a whole number",
    "int_parsing": "a whole number", "bool_type": "true or false", "float_type": "a number",
}
WHAT_NULL_IS = "is null (an empty value, ~ or null in YAML)"


def null_at(data: Any, path: tuple) -> tuple | None:
    """The shortest prefix of ``path`` whose value in ``data`` is null; None when there is none."""
    node = data
    for i, part in enumerate(path):
        if isinstance(node, dict) and isinstance(part, str) and part in node:
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        else:
            return None
        if node is None:
            return path[: i + 1]
    return None


def required(model: type[BaseModel], data: Any, path: tuple) -> bool:
    """Whether leaving the field out would be refused as missing (asked of the model, not guessed)."""
    trimmed = copy.deepcopy(data)
    parent = trimmed
    for part in path[:-1]:
        parent = parent[part]
    if not isinstance(parent, dict):
        return True   # a null list item: it cannot be left out by removing a key
    del parent[path[-1]]
    try:
        model.model_validate(trimmed)
    except ValidationError as exc:
        return any(e["type"] == "missing" and tuple(e["loc"]) == path for e in exc.errors(include_url=False))
    return False


def hint(err: dict, is_required: bool) -> str:
    expected = _EXPECTED.get(err["type"])
    if expected is None and err["type"] == "literal_error":
        expected = "one of " + str(err.get("ctx", {}).get("expected", "the allowed values"))
    expected = expected or err["msg"].removeprefix("Input should be ")
    fix = f"give {expected}" if is_required else f"give {expected}, or remove the line to use the default"
    return f"{WHAT_NULL_IS}; {fix}"


_ECS_TYPES = {"str": "a string", "list": "a list", "tuple": None, "dict": "a mapping", "int": "a whole number",
              "bool": "true or false", "float": "a number", "Decimal": None}


def ecs_hint(types: list[str], is_required: bool) -> str:
    """A null in the ECS part, as botocore's validator found it (``types``: the Python types it takes)."""
    expected = " or ".join(dict.fromkeys(_ECS_TYPES.get(t, t) for t in types if _ECS_TYPES.get(t, t)))
    fix = f"give {expected}" if is_required else f"give {expected}, or remove it"
    return f"{WHAT_NULL_IS}; {fix}"
