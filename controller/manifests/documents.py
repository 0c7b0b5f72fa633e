"""The loaded manifests as data: each document typed and located (``Obj``), and the set of them (``Manifest``).

Pure. The indexes that every later stage needs (a declared parameter by Region and name, a task
definition's declared ExecutionRole) are made here once, on first use.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

from controller.manifests.models import Doc
from controller.manifests.yamlload import YamlDocument
from controller.vocab.problems import Problem, dotted


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
    region: str = "us-east-1"   # the controller's Region, where names without an ARN resolve

    def of(self, kind: str) -> list[Obj]:
        return list(self._by_kind.get(kind, ()))

    def get(self, kind: str, name: str) -> Obj | None:
        return self._by_ref.get((kind, name))

    @cached_property
    def declared_parameters(self) -> dict[tuple[str, str], Obj]:
        """(region, SSM name) → Parameter (read-only: do not mutate)."""
        return {(o.spec.region or self.region, o.spec.name): o for o in self.of("Parameter")}

    def execution_role(self, td: Obj) -> Obj | None:
        """The declared ExecutionRole a TaskDefinition uses, by metadata.name or by roleName."""
        wanted = td.spec.executionRole
        if wanted is None:
            return None
        return self.get("ExecutionRole", wanted) or self._roles_by_role_name.get(wanted)

    @cached_property
    def _roles_by_role_name(self) -> dict[str, Obj]:
        return {r.spec.roleName: r for r in reversed(self.of("ExecutionRole"))}  # the first wins, as with next()

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
