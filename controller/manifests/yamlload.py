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


class YamlProblem(Exception):
    def __init__(self, line: int, message: str, path: Path = ()) -> None:
        super().__init__(message)
        self.line = line
        self.message = message
        self.path = path     # where in the document, when known


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
        raise YamlProblem(line, f"YAML does not parse: {_one_line(exc.problem or exc)}") from None
    except yaml.reader.ReaderError as exc:   # libyaml's reader: a position, no mark
        line = text[: exc.position].count("\n") + 1
        raise YamlProblem(line, f"YAML does not parse: {_one_line(exc.reason)} "
                                f"(character U+{int(exc.character):04X})") from None
    except yaml.YAMLError as exc:
        raise YamlProblem(1, f"YAML does not parse: {_one_line(exc)}") from None
    except RecursionError:  # PyYAML's pure-Python composer recurses before our depth limit can see it
        raise YamlProblem(1, f"nested deeper than {MAX_DEPTH} levels; flatten the document") from None
    finally:
        loader.dispose()
    return docs


_YAML = "tag:yaml.org,2002:"
# The tags a manifest may use, on the node kind each fits; !!binary, !!set, !!omap, !!pairs, !!python/...
# and local !tags are refused. "value" is what PyYAML resolves a plain "=" to: a string to anyone else.
_SCALARS = {_YAML + t for t in ("str", "int", "float", "bool", "null", "timestamp", "value")}
_MAP, _SEQ, _MERGE = _YAML + "map", _YAML + "seq", _YAML + "merge"


class _Builder:
    def __init__(self, loader: yaml.SafeLoader) -> None:
        self.loader = loader
        self.lines: dict[Path, int] = {}
        self.count = 0

    def build(self, node: yaml.Node, path: Path, depth: int) -> Any:
        line = self._visit(node, depth)
        self.lines[path] = line
        if isinstance(node, yaml.MappingNode):
            self._expect(node, _MAP, "a mapping", path)
            return self._mapping(node, path, depth)
        if isinstance(node, yaml.SequenceNode):
            self._expect(node, _SEQ, "a list", path)
            return [self.build(item, path + (i,), depth + 1) for i, item in enumerate(node.value)]
        return self._scalar(node, path)

    def _visit(self, node: yaml.Node, depth: int) -> int:
        self.count += 1
        line = node.start_mark.line + 1
        if self.count > MAX_NODES:
            raise YamlProblem(line, f"more than {MAX_NODES:,} values (an alias bomb?); "
                                    "write the document out without deep aliases")
        if depth > MAX_DEPTH:
            raise YamlProblem(line, f"nested deeper than {MAX_DEPTH} levels; flatten the document")
        return line

    @staticmethod
    def _expect(node: yaml.Node, tag: str, what: str, path: Path) -> None:
        if node.tag != tag:
            raise YamlProblem(node.start_mark.line + 1, f"{_tag_name(node.tag)} cannot tag {what}; "
                                                        "manifests use plain YAML — remove the tag", path)

    def _scalar(self, node: yaml.Node, path: Path) -> Any:
        line = node.start_mark.line + 1
        if node.tag not in _SCALARS:
            raise YamlProblem(line, f"{_tag_name(node.tag)} is not supported; manifests use plain YAML "
                                    "(strings, numbers, true/false, null, mappings, lists) — remove the tag", path)
        if node.tag == _YAML + "value":
            return node.value
        try:
            return self.loader.construct_object(node)
        except (ValueError, TypeError, LookupError, AttributeError, OverflowError, yaml.YAMLError):
            # PyYAML's constructors fail with bare Python errors: `!!float abc`, `!!int x`, `!!bool maybe`,
            # `!!int ''` (an IndexError)
            raise YamlProblem(line, f"{node.value[:40]!r} is not a valid {_tag_name(node.tag)}; "
                                    "fix the value or remove the tag", path) from None

    def _mapping(self, node: yaml.MappingNode, path: Path, depth: int) -> dict:
        out: dict[str, Any] = {}
        explicit: set[str] = set()
        for key_node, value_node, own in self._pairs(node, depth):
            key = self._scalar(key_node, path) if isinstance(key_node, yaml.ScalarNode) else None
            line = key_node.start_mark.line + 1
            if not isinstance(key, str):
                shown = "a mapping or list" if key is None else f"{type(key).__name__} {key!r}"
                raise YamlProblem(line, f"a key must be a string, not {shown}; quote it", path)
            if own and key in explicit:
                raise YamlProblem(line, f"duplicate key {key!r}; keep only one", path + (key,))
            if key in out and not own:
                continue  # merged: the first mapping that gives the key wins (yaml.org/type/merge.html)
            if own:
                explicit.add(key)
            out[key] = self.build(value_node, path + (key,), depth + 1)
            self.lines[path + (key,)] = line
        return out

    def _pairs(self, node: yaml.MappingNode, depth: int) -> list[tuple[yaml.Node, yaml.Node, bool]]:
        """The mapping's pairs, merged ones (``<<``) first and flagged, so that keys written here override them."""
        merged: list[tuple[yaml.Node, yaml.Node, bool]] = []
        own = []
        for key_node, value_node in node.value:
            if key_node.tag != _MERGE:
                own.append((key_node, value_node, True))
                continue
            sources = value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
            for source in sources:
                self._visit(source, depth + 1)
                if not isinstance(source, yaml.MappingNode):
                    raise YamlProblem(source.start_mark.line + 1, "<< merges a mapping or a list of mappings; "
                                                                  "point it at a mapping's anchor (<<: *name)")
                merged.extend((k, v, False) for k, v in self._effective(source, depth + 1))
        return merged + own

    def _effective(self, node: yaml.MappingNode, depth: int) -> list[tuple[yaml.Node, yaml.Node]]:
        """A merged mapping as it reads: its own keys over its merged ones, the first merged one winning."""
        chosen: dict[Any, tuple[yaml.Node, yaml.Node]] = {}
        for key_node, value_node, own in self._pairs(node, depth):
            key = self._scalar(key_node, ()) if isinstance(key_node, yaml.ScalarNode) else id(key_node)
            if own or key not in chosen:
                chosen[key] = (key_node, value_node)
        return list(chosen.values())


def _one_line(text: object) -> str:
    return " ".join(str(text).split("\n")[0].split())


def _tag_name(tag: str) -> str:
    return "!!" + tag[len(_YAML):] if tag.startswith(_YAML) else repr(tag)
