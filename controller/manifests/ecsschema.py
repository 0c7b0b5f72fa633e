"""The ECS part of the manifests' JSON Schema, generated from botocore's RegisterTaskDefinition model.

The same model that ``ecsmodel`` validates against, turned into JSON Schema (draft 2020-12) so that an
editor completes ECS fields, shows their documentation and flags a typo as the command would: every
structure refuses unknown members (botocore's validator does: "Unknown parameter"), enums and required
members are the model's, and each description is the model's documentation with its HTML removed.
Nothing is written by hand but where our manifests differ from the API input (``OVERRIDES``).
"""

from __future__ import annotations

import html.parser
import re
from typing import Any

from controller.manifests import ecsmodel

_SCALARS = {"string": "string", "integer": "integer", "long": "integer", "boolean": "boolean",
            "double": "number", "float": "number", "timestamp": "string", "blob": "string"}

# Where what a manifest may say differs from the API input: botocore's shape, then these keys on top.
# - task-level cpu/memory: YAML users write ``cpu: 256``; ``models.ecs_input`` sends it as the string ECS wants.
# - a container's name and image: ECS refuses a container without them ("Container.image should not be
#   null or empty.", see sandbox/faithful.py), and ``checks`` refuses them before any AWS call.
OVERRIDES: dict[str, dict[str, Any]] = {
    "RegisterTaskDefinitionRequest.cpu": {"type": ["string", "integer"]},
    "RegisterTaskDefinitionRequest.memory": {"type": ["string", "integer"]},
}
REQUIRED: dict[str, list[str]] = {"ContainerDefinition": ["name", "image"]}


class _Text(html.parser.HTMLParser):
    """The text of botocore's documentation HTML: paragraphs and list items on lines of their own."""

    _BREAKS = {"p", "li", "ul", "ol", "br", "note", "important"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._BREAKS:
            self.parts.append("\n")
        if tag == "li":
            self.parts.append("- ")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._BREAKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def plain(documentation: str) -> str:
    """botocore's HTML documentation as plain text: tags dropped, entities decoded, whitespace tidied."""
    parser = _Text()
    parser.feed(documentation or "")
    parser.close()
    lines = [re.sub(r"[ \t\r\f\v]+", " ", line).strip() for line in "".join(parser.parts).split("\n")]
    out: list[str] = []
    for line in filter(None, lines):
        if out and out[-1] == "-":   # <li><p>text</p></li>: the item's text follows its dash
            out[-1] = f"- {line}"
        else:
            out.append(line)
    return "\n".join(out)


def task_definition_schema() -> tuple[dict[str, Any], dict[str, Any]]:
    """(the schema of the RegisterTaskDefinition input, the ``$defs`` it refers to, keyed ``ecs.SHAPE``)."""
    defs: dict[str, Any] = {}
    root = ecsmodel.input_shape()
    return _structure(root, defs), defs


def _ref(shape: Any, defs: dict[str, Any]) -> dict[str, Any]:
    """A structure by reference (shared shapes appear once; cycles, were there any, stay finite)."""
    key = f"ecs.{shape.name}"
    if key not in defs:
        defs[key] = {}   # reserved before the walk, so that a recursive shape refers to itself
        defs[key] = _structure(shape, defs)
    return {"$ref": f"#/$defs/{key}"}


def _structure(shape: Any, defs: dict[str, Any]) -> dict[str, Any]:
    properties = {}
    for name, member in shape.members.items():
        prop = _schema(member, defs)
        doc = plain(member.documentation) if member.documentation else ""
        if doc:
            prop = {**prop, "description": doc} if "$ref" not in prop else {"allOf": [prop], "description": doc}
        prop["title"] = name
        prop.update(OVERRIDES.get(f"{shape.name}.{name}", {}))
        properties[name] = prop
    out: dict[str, Any] = {"type": "object", "title": shape.name, "properties": properties,
                           "additionalProperties": False}
    required = sorted(set(shape.required_members) | set(REQUIRED.get(shape.name, [])))
    if required:
        out["required"] = required
    if shape.documentation:
        out["description"] = plain(shape.documentation)
    return out


def _schema(shape: Any, defs: dict[str, Any]) -> dict[str, Any]:
    kind = shape.type_name
    if kind == "structure":
        return _ref(shape, defs)
    if kind == "list":
        out: dict[str, Any] = {"type": "array", "items": _schema(shape.member, defs)}
        if "min" in shape.metadata:
            out["minItems"] = shape.metadata["min"]
        return out
    if kind == "map":
        return {"type": "object", "additionalProperties": _schema(shape.value, defs)}
    out = {"type": _SCALARS.get(kind, "string")}
    if shape.metadata.get("enum"):
        out["enum"] = list(shape.metadata["enum"])
    if "min" in shape.metadata:   # what botocore's validator enforces: a minimum length or value
        out["minLength" if kind == "string" else "minimum"] = shape.metadata["min"]
    return out
