"""A fleet's desired state: one ordinary single-account ``Desired`` per target, and the plans put back together
for display. Pure.

Each target's objects are built exactly as a single-account manifest is (``desired.build`` on the target's
part of the manifests, in the target's Region), then relabelled ``Kind/name@target``: from then on every
stage (observe, plan, apply, the daemon's table, logs, progress) names the target without knowing fleets.
The controller's own objects (no ``metadata.targets``) keep their plain ``Kind/name``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from typing import Any, Iterable, Mapping

from controller.core import events, values
from controller.core.desired import (DEFAULT_OWNER, Desired, DesiredParameter, DesiredRole, DesiredTaskDefinition,
                                    build, policy_problems)
from controller.core.plan import Blocker, Change, Plan
from controller.manifests import fleet as manifest_fleet
from controller.manifests import loader
from controller.manifests.fleet import OWN, Target
from controller.vocab.problems import ControllerError, ManifestError

SEPARATOR = "@"


@dataclass(frozen=True)
class Fleet:
    targets: Mapping[str, Target]                        # every Target declared, by metadata.name
    groups: Mapping[str | None, Desired]                 # target (None: the controller's own) → its desired state
    owner: str = DEFAULT_OWNER
    declared: bool = field(default=False)                # the manifests use Targets or metadata.targets

    @property
    def single(self) -> bool:
        """Today's controller: one account, one Region, no target named anywhere."""
        return not self.declared

    @property
    def objects(self) -> list[Any]:
        return [o for d in self.groups.values() for o in d.objects]


def load(path: str | os.PathLike[str] | Any, region: str, owner: str = DEFAULT_OWNER,
         environ: Mapping[str, str] | None = None, read: values.ReadFile | None = None) -> Fleet:
    """``validate.load`` for every target: the manifests as a Fleet, or every problem raised together."""
    manifest, problems = loader.collect(path, region)
    groups: dict[str | None, Desired] = {}
    for name, part in manifest_fleet.split(manifest).items():
        desired = build(part, owner)
        problems += policy_problems(desired)
        if environ is not None and read is not None:
            problems += values.check_readable(desired, environ, read)
        groups[name] = desired if name is OWN else relabel(desired, name)
    declared = manifest_fleet.uses_targets(manifest.objects)
    if problems:   # a problem of an object sent to several targets is said once
        raise ManifestError(list(dict.fromkeys(problems)) if declared else problems)
    return Fleet(manifest_fleet.targets_of(manifest.objects), groups, owner, declared)


def only(fleet: Fleet, names: Iterable[str]) -> Fleet:
    """``--target NAME``: just these targets (and not the controller's own objects)."""
    wanted = list(dict.fromkeys(names))
    unknown = [n for n in wanted if n not in fleet.targets]
    if unknown:
        known = ", ".join(sorted(fleet.targets)) or "none"
        raise ControllerError(f"--target {unknown[0]}: no Target of that name in the manifests (declared: {known})")
    return replace(fleet, groups={n: d for n, d in fleet.groups.items() if n in wanted})


# --- labels ------------------------------------------------------------------------------------

def label(ref: str, target: str | None) -> str:
    """``Kind/name@target``; idempotent, and a plain ref for the controller's own objects."""
    if target is None or SEPARATOR in ref:
        return ref
    return f"{ref}{SEPARATOR}{target}"


def unlabel(ref_or_name: str) -> tuple[str, str | None]:
    """``name@target`` → (name, target); metadata.name never holds "@", so the split is unambiguous."""
    name, sep, target = ref_or_name.partition(SEPARATOR)
    return name, (target if sep else None)


def relabel(desired: Desired, target: str) -> Desired:
    """Every object of ``desired`` named ``Kind/name@target``, its dependencies too."""
    def obj(o: Any) -> Any:
        return replace(o, name=label(o.name, target))

    parameters = {key: replace(p, obj=obj(p.obj)) for key, p in desired.parameters.items()}
    by_ref = {desired.parameters[key].ref: p for key, p in parameters.items()}

    def one(o: Any) -> Any:
        if isinstance(o, DesiredParameter):
            return by_ref.get(o.ref) or replace(o, obj=obj(o.obj))
        if isinstance(o, DesiredRole):
            return replace(o, obj=obj(o.obj))
        assert isinstance(o, DesiredTaskDefinition)
        return replace(o, obj=obj(o.obj), declared_role=o.declared_role and label(o.declared_role, target),
                       depends_on=tuple(label(d, target) for d in o.depends_on))

    reads = {region: replace(r, declared={name: parameters[(region, name)] for name in r.declared})
             for region, r in desired.reads.items()}
    return replace(desired, objects=tuple(one(o) for o in desired.objects), parameters=parameters, reads=reads)


def relabel_plan(plan: Plan, target: str | None) -> Plan:
    """What a target's plan holds that the desired state did not name (a prune of an object that left the
    manifests), labelled too."""
    if target is None:
        return plan

    def change(c: Change) -> Change:
        return replace(c, name=label(c.name, target), depends_on=tuple(label(d, target) for d in c.depends_on))

    return replace(plan, changes=tuple(change(c) for c in plan.changes),
                   blockers=tuple(replace(b, ref=label(b.ref, target)) for b in plan.blockers),
                   in_sync=tuple(label(r, target) for r in plan.in_sync),
                   not_compared=tuple(label(r, target) for r in plan.not_compared))


def combine(plans: Mapping[str | None, Plan]) -> Plan:
    """One plan to show for the whole fleet, the targets in the order given."""
    ps = list(plans.values())
    return Plan(tuple(c for p in ps for c in p.changes), tuple(b for p in ps for b in p.blockers),
                tuple(r for p in ps for r in p.in_sync), tuple(r for p in ps for r in p.not_compared))


def failure(target: str, reason: str) -> Blocker:
    """A target that cannot be served at all (its role cannot be assumed): one blocker that names it."""
    return Blocker(f"Target/{target}", reason, terminal=False)


def with_targets(document: dict[str, Any]) -> dict[str, Any]:
    """A rendered plan (``render.as_dict`` / ``applied_dict``) with a ``target`` on every entry that names an
    object: ``name`` is the object's metadata.name again, ``target`` its Target (null: the controller's own)."""
    for key in ("changes", "blocked", "valuesNotCompared"):
        for entry in document.get(key, []):
            if entry.get("kind") == "Target":
                entry["target"] = entry["name"]
                continue
            entry["name"], entry["target"] = unlabel(entry["name"])
    return document


class EventIndex:
    """``events.Index`` for a fleet: an event concerns the objects of the group of its own account and Region —
    each target's index is built in the target's Region (its task definitions' families, its references without
    a Region) and answers only the target's account; the controller's own group answers ``own_account`` (any,
    when None). Duck-types ``events.Index`` for the events inbox."""

    def __init__(self, fleet: Fleet, own_account: str | None = None) -> None:
        self.groups = [(events.Index(d), own_account if name is None else fleet.targets[name].account)
                       for name, d in fleet.groups.items()]

    def refs(self, touch: events.Touch, account: str | None = None) -> set[str]:
        out: set[str] = set()
        for index, group_account in self.groups:
            out |= index.refs(touch, group_account)
        return out


def empty(region: str, owner: str) -> Desired:
    """No objects: what a target's or the controller's own policy starts from when nothing goes there."""
    return Desired(region, owner, (), {}, frozenset(), {})


ASSUME_SID = "AssumeTheRolesOfTheFleetsTargets"


def controller_policy(statements: list[dict[str, Any]], targets: Iterable[Target]) -> dict[str, Any]:
    """The controller's own policy in a fleet: exactly sts:AssumeRole on every target's role, after what its own
    objects (and the lease table) need."""
    roles = sorted({t.role_arn for t in targets})
    assume = [{"Sid": ASSUME_SID, "Effect": "Allow", "Action": "sts:AssumeRole", "Resource": roles}] if roles else []
    return {"Version": "2012-10-17", "Statement": list(statements) + assume}
