"""The work items replicas share through an SQS FIFO queue (``run --work-queue``). Pure.

Two kinds of item, each a small JSON body:

- ``object``: reconcile these objects of one target (``Kind/name@target``; the controller's own objects have
  target None). Its message group is ``TARGET/ROOT``: ROOT is the first ref (sorted) of the object's *unit*,
  the set of objects a reconcile of it may write — a task definition with its role and the parameters it
  declares, a role with the parameters its policy names (``Desired.subset`` takes exactly those along), and
  everything linked to them. SQS hands out no message of a group while another of that group is in flight,
  so no two replicas write one object at the same time, and the items of one object run in the order sent.
- ``resync``: plan a whole target (one observe of all its objects, the same calls as a single-account pass)
  and enqueue an ``object`` item for each object that is not in sync. A resync writes nothing itself, so it
  may run while object items of its target run elsewhere; its group is ``TARGET/*`` (two resyncs of one
  target never overlap either).

Deduplication ids name the cause (a resync slot, the resync message that found the drift, the events message
that reported it), so SQS drops what one cause sent twice within its 5-minute window (a leader that failed
over, a message handled twice) but never a new cause's item.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Iterable

from controller.core.desired import Desired, DesiredRole, DesiredTaskDefinition

OBJECT, RESYNC = "object", "resync"
OWN = "_"              # the controller's own account and Region in a group id (a Target's name is a DNS label)
MAX_ID = 128           # MessageGroupId and MessageDeduplicationId: at most 128 characters
MAX_REFS = 100         # refs in one object item: the body stays far below SQS's 256 KiB


class BadItem(ValueError):
    """A message that is not a work item of ours; says what is wrong, never the body."""


@dataclass(frozen=True)
class Item:
    kind: str                       # OBJECT or RESYNC
    target: str | None              # a Target's name; None: the controller's own account and Region
    refs: tuple[str, ...] = ()      # OBJECT: the objects to reconcile
    cause: str = ""                 # what made it: part of the deduplication id

    def body(self) -> str:
        return json.dumps({"v": 1, "kind": self.kind, "target": self.target, "refs": list(self.refs)},
                          sort_keys=True, separators=(",", ":"))


def parse(body: str) -> Item:
    try:
        doc = json.loads(body)
    except (TypeError, ValueError):
        raise BadItem("not JSON") from None
    if not isinstance(doc, dict) or doc.get("v") != 1 or doc.get("kind") not in (OBJECT, RESYNC):
        raise BadItem("not a work item (v 1, kind object or resync)")
    target, refs = doc.get("target"), doc.get("refs")
    if target is not None and not isinstance(target, str):
        raise BadItem("target is neither a name nor null")
    if not isinstance(refs, list) or not all(isinstance(r, str) for r in refs):
        raise BadItem("refs is not a list of names")
    if doc["kind"] == OBJECT and not refs:
        raise BadItem("an object item names no object")
    return Item(doc["kind"], target, tuple(refs))


def _bounded(text: str) -> str:
    """An id of at most 128 characters: itself, or a readable head with a digest of the whole."""
    if len(text) <= MAX_ID:
        return text
    digest = hashlib.sha256(text.encode()).hexdigest()[:40]
    return f"{text[:MAX_ID - 41]}~{digest}"


def _plain(ref: str) -> str:
    return ref.partition("@")[0]   # the target is in the group id already


def group(item: Item, units: dict[str, str]) -> str:
    place = item.target or OWN
    if item.kind == RESYNC:
        return _bounded(f"{place}/*")
    roots = sorted({units.get(r, r) for r in item.refs})
    return _bounded(f"{place}/{_plain(roots[0])}")


def dedup_id(item: Item, units: dict[str, str]) -> str:
    return _bounded(hashlib.sha256(f"{item.body()}|{item.cause}".encode()).hexdigest() + f"|{group(item, units)}")


def units(desired: Desired) -> dict[str, str]:
    """ref → the root of its unit: the objects one reconcile of it may write, and everything that shares one
    of them (connected components over ``subset``'s closure)."""
    parent = {o.ref: o.ref for o in desired.objects}

    def find(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def join(a: str, b: str) -> None:
        if a in parent and b in parent:
            ra, rb = find(a), find(b)
            if ra != rb:
                parent[max(ra, rb)] = min(ra, rb)

    declared = {(p.region, p.name): p.ref for p in desired.parameters.values()}
    for o in desired.objects:
        if isinstance(o, DesiredTaskDefinition):
            for dep in o.depends_on:
                join(o.ref, dep)
        elif isinstance(o, DesiredRole):
            for r in o.references:
                key = (r.region or desired.region, r.name)
                if key in declared:
                    join(o.ref, declared[key])
    return {ref: find(ref) for ref in parent}


def object_items(target: str | None, refs: Iterable[str], units_: dict[str, str], cause: str) -> list[Item]:
    """One item per unit (its refs together), so that one unit's objects are one reconcile."""
    by_root: dict[str, list[str]] = {}
    for ref in sorted(set(refs)):
        by_root.setdefault(units_.get(ref, ref), []).append(ref)
    return [Item(OBJECT, target, tuple(chunk[i:i + MAX_REFS]), cause)
            for chunk in by_root.values() for i in range(0, len(chunk), MAX_REFS)]


def resync_item(target: str | None, slot: Any) -> Item:
    return Item(RESYNC, target, (), f"resync-slot-{slot}")
