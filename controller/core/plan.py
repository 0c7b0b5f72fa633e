"""The plan: a pure diff of desired against actual, as typed changes in apply order.

``Change.fields`` is what a user reads (path, before, after); ``Change.op`` is what apply needs.
Objects that cannot be planned (a missing key, a resource we do not own) get a ``Blocker`` instead,
and everything that depends on them is blocked with them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from controller.vocab.sensitive import SENSITIVE

KIND_ORDER = ("Parameter", "ExecutionRole", "TaskDefinition", "Service")   # Service: a rollout (``rollout``)


@dataclass(frozen=True)
class FieldChange:
    path: str
    before: Any
    after: Any
    sensitive: bool = False


@dataclass(frozen=True)
class Change:
    kind: str
    name: str
    action: str                      # create | update | delete
    fields: tuple[FieldChange, ...]
    op: Any = field(default=None, compare=False, repr=False)
    depends_on: tuple[str, ...] = ()  # refs ("Kind/name") that must succeed first
    note: str = ""                   # what the headline adds, e.g. "registers web:4"

    @property
    def ref(self) -> str:
        return f"{self.kind}/{self.name}"


@dataclass(frozen=True)
class Blocker:
    ref: str
    reason: str
    terminal: bool = True            # waiting will not heal it (ownership, a missing key)
    dependent: bool = False          # blocked only because something it depends on is


@dataclass(frozen=True)
class Plan:
    changes: tuple[Change, ...]
    blockers: tuple[Blocker, ...] = ()
    in_sync: tuple[str, ...] = ()
    not_compared: tuple[str, ...] = ()   # refs of parameters whose values were not read (--skip-values)

    def summary(self) -> dict[str, int]:
        """Changes of objects by action; services to roll apart, as ``roll`` (present only when there are any):
        a rollout changes no object of ours, it starts new tasks."""
        counts = {"create": 0, "update": 0, "delete": 0}
        rolls = 0
        for c in self.changes:
            if c.kind == "Service":
                rolls += 1
            else:
                counts[c.action] += 1
        return {**counts, "roll": rolls} if rolls else counts

    def ordered(self) -> list[Change]:
        """Parameters, then roles, then task definitions, then the services to roll; deletes after, in reverse."""
        rank = {k: i for i, k in enumerate(KIND_ORDER)}
        writes = sorted((c for c in self.changes if c.action != "delete"), key=lambda c: rank[c.kind])
        deletes = sorted((c for c in self.changes if c.action == "delete"), key=lambda c: -rank[c.kind])
        return writes + deletes


def show(value: Any, sensitive: bool) -> Any:
    return SENSITIVE if sensitive and value is not None else value


def diff_values(before: Any, after: Any, path: str = "") -> list[FieldChange]:
    """Field-by-field differences of two JSON-like values, as a person reads them: a list of scalars
    stays one field (shown as the items added and removed), a list of objects that each have a unique
    ``name`` (containers, secrets) or ``Sid`` (policy statements) is compared by that key, in the order
    of ``after``, and any other list by position."""
    if isinstance(before, dict) and after is None or before is None and isinstance(after, dict):
        before, after = before or {}, after or {}
    if isinstance(before, dict) and isinstance(after, dict):
        out = []
        for key in sorted(set(before) | set(after)):
            out += diff_values(before.get(key), after.get(key), f"{path}.{key}" if path else key)
        return out
    if before == after:
        return []
    if _objects(before) and _objects(after):
        key = _key(before or [], after or [])
        if key:   # named items: their order is no difference (ECS's own, or meaningless, as for statements)
            return _keyed(before or [], after or [], key, path)
        return _positional(before or [], after or [], path) or [FieldChange(path, before, after)]
    return [FieldChange(path, before, after)]


_KEYS = ("name", "Sid")


def _objects(value: Any) -> bool:
    """None, or a list of objects only (a list of scalars is one field)."""
    return value is None or isinstance(value, list) and all(isinstance(v, dict) for v in value)


def _key(before: list[dict], after: list[dict]) -> str | None:
    for key in _KEYS:
        names = [item.get(key) for item in before + after]
        if all(isinstance(n, str) and n for n in names) and \
                len({i[key] for i in before}) == len(before) and len({i[key] for i in after}) == len(after):
            return key
    return None


def _keyed(before: list[dict], after: list[dict], key: str, path: str) -> list[FieldChange]:
    old = {item[key]: item for item in before}
    names = [item[key] for item in after] + [n for n in old if n not in {i[key] for i in after}]
    new = {item[key]: item for item in after}
    out: list[FieldChange] = []
    for name in names:
        b, a = old.get(name), new.get(name)
        b, a = ({k: v for k, v in side.items() if k != key} if side is not None else None for side in (b, a))
        out += diff_values(b, a, f"{path}[{name}]")
    return out


def _positional(before: list, after: list, path: str) -> list[FieldChange]:
    out: list[FieldChange] = []
    for i in range(max(len(before), len(after))):
        b = before[i] if i < len(before) else None
        a = after[i] if i < len(after) else None
        out += diff_values(b, a, f"{path}[{i}]")
    return out


def block_dependents(changes: list[Change], blockers: list[Blocker], dependents: dict[str, list[str]]) -> None:
    """Block every change that depends, transitively, on a blocked object."""
    blocked = {b.ref for b in blockers}
    frontier = list(blocked)
    while frontier:
        ref = frontier.pop()
        for dep in dependents.get(ref, []):
            if dep not in blocked:
                blocked.add(dep)
                blockers.append(Blocker(dep, f"depends on {ref}", terminal=False, dependent=True))
                frontier.append(dep)
    changes[:] = [c for c in changes if c.ref not in blocked]
