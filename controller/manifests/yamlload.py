"""YAML documents with the line of every field, and limits that stop hostile input.

PyYAML composes a node graph; we build plain Python data from it ourselves so that we can
remember where each value stood (``lines[path]``), refuse duplicate keys (YAML forbids them and
PyYAML silently keeps the last), and bound the work an alias bomb or deep nesting can cause.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

MAX_FILE_BYTES = 1024 * 1024
MAX_DEPTH = 50
MAX_NODES = 200_000

Path = tuple  # of str | int
_STANDARD_TAGS = ("tag:yaml.org,2002:",)   # !!str, !!int, !!map...; never !!python/... or a local !tag


class YamlProblem(Exception):
    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


@dataclass
class YamlDocument:
    data: Any
    line: int
    lines: dict[Path, int] = field(default_factory=dict)

    def line_of(self, path: Path) -> int:
        """The line of the deepest part of ``path`` that exists in the document."""
        path = tuple(path)
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.line


def decode(raw: bytes) -> str:
    if len(raw) > MAX_FILE_BYTES:
        raise YamlProblem(1, f"the file is {len(raw):,} bytes; manifests are limited to "
                             f"{MAX_FILE_BYTES:,} bytes — split it into several files")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise YamlProblem(line, f"not valid UTF-8 (byte 0x{raw[exc.start]:02x} at offset {exc.start}); "
                                "save the file as UTF-8") from None


# libyaml's parser when PyYAML has it: ten times faster, same nodes and marks (validate of 1,000 objects < 1 s)
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_documents(text: str) -> list[YamlDocument]:
    loader = _Loader(text)
    docs: list[YamlDocument] = []
    try:
        while loader.check_node():
            node = loader.get_node()
            builder = _Builder(loader)
            data = builder.build(node, (), 0)
            docs.append(YamlDocument(data, node.start_mark.line + 1, builder.lines))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        if "nesting depth" in str(exc.problem):  # newer libyaml (PyYAML >= 6.0.4) stops deep nesting itself
            raise YamlProblem(line, f"nested deeper than {MAX_DEPTH} levels; flatten the document") from None
        raise YamlProblem(line, f"YAML does not parse: {exc.problem or exc}") from None
    except yaml.YAMLError as exc:
        raise YamlProblem(1, f"YAML does not parse: {exc}") from None
    except RecursionError:  # PyYAML's pure-Python composer recurses before our depth limit can see it
        raise YamlProblem(1, f"nested deeper than {MAX_DEPTH} levels; flatten the document") from None
    finally:
        loader.dispose()
    return docs


class _Builder:
    def __init__(self, loader: yaml.SafeLoader) -> None:
        self.loader = loader
        self.lines: dict[Path, int] = {}
        self.count = 0

    def build(self, node: yaml.Node, path: Path, depth: int) -> Any:
        self.count += 1
        line = node.start_mark.line + 1
        if self.count > MAX_NODES:
            raise YamlProblem(line, f"more than {MAX_NODES:,} values (an alias bomb?); "
                                    "write the document out without deep aliases")
        if depth > MAX_DEPTH:
            raise YamlProblem(line, f"nested deeper than {MAX_DEPTH} levels; flatten the document")
        self.lines[path] = line
        if not node.tag.startswith(_STANDARD_TAGS):
            raise YamlProblem(line, f"unsupported YAML tag {node.tag!r}; manifests use plain YAML — remove it")
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path, depth)
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, path + (i,), depth + 1) for i, item in enumerate(node.value)]
        return self.loader.construct_object(node)

    def _mapping(self, node: yaml.MappingNode, path: Path, depth: int) -> dict:
        self.loader.flatten_mapping(node)  # resolves "<<" merge keys
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = self.loader.construct_object(key_node)
            line = key_node.start_mark.line + 1
            if not isinstance(key, str):
                raise YamlProblem(line, f"a key must be a string, not {type(key).__name__} {key!r}; quote it")
            if key in out:
                raise YamlProblem(line, f"duplicate key {key!r}; keep only one")
            out[key] = self.build(value_node, path + (key,), depth + 1)
            self.lines[path + (key,)] = line
        return out
