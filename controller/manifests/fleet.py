"""Fleets in the manifests: the ``Target`` documents, each object's ``metadata.targets``, and the split of one
manifest into one ordinary single-account manifest per target. Pure.

Without a Target and without ``metadata.targets`` the manifests are what they always were: ``check`` is
``checks.check``. With them, every group (the controller's own objects, and each target's) is checked as its
own manifest in its own Region, so two targets may each declare the same SSM name (with different values,
as accounts do), and a reference resolves only within a target: a task definition in prod-eu reads the
parameters and uses the roles deployed to prod-eu.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Iterator

from controller.manifests import checks, rules
from controller.manifests.documents import Manifest, Obj
from controller.vocab.arns import BadReference, parse_arn, parse_value_from, partition_of
from controller.vocab.problems import Problem
from controller.vocab.secretrefs import secret_uses

TARGET = "Target"
OWN = None          # the group of objects without targets: the controller's own account and Region
_SESSION_CHARS = re.compile(r"[^\w+=,.@-]", re.ASCII)
SESSION_NAME_MAX = 64   # STS AssumeRole API reference, RoleSessionName: 2-64 characters of [\w+=,.@-]


@dataclass(frozen=True)
class Target:
    """A Target document as the AWS edge needs it."""

    name: str
    account: str
    region: str
    role_arn: str
    external_id: str | None = None
    session_name: str | None = None

    @property
    def partition(self) -> str:
        return partition_of(self.region)


def uses_targets(objects: Iterable[Obj]) -> bool:
    return any(o.kind == TARGET or o.model.metadata.targets is not None for o in objects)


def targets_of(objects: Iterable[Obj]) -> dict[str, Target]:
    out: dict[str, Target] = {}
    for o in objects:
        if o.kind == TARGET and o.name not in out:
            s = o.spec
            out[o.name] = Target(o.name, s.account, s.region, s.roleArn, s.externalId, s.sessionName)
    return out


def session_name(owner: str, given: str | None = None) -> str:
    """The role session name CloudTrail shows for our calls in a target: the owner's, in STS's alphabet."""
    if given:
        return given
    name = _SESSION_CHARS.sub("-", f"ecs-secrets-{owner}" if owner != "ecs-secrets" else owner)
    return name[:SESSION_NAME_MAX]


def split(manifest: Manifest) -> dict[str | None, Manifest]:
    """Target name (``OWN`` for objects without targets) → the manifest of that target, in its Region.
    Groups keep manifest order; the own group exists only when some object has no targets."""
    targets = targets_of(manifest.objects)
    groups: dict[str | None, list[Obj]] = {}
    for o in manifest.objects:
        if o.kind == TARGET:
            continue
        for name in o.model.metadata.targets if o.model.metadata.targets is not None else [OWN]:
            if name is OWN or name in targets:
                groups.setdefault(name, []).append(o)
    return {name: Manifest(tuple(objs), manifest.region if name is OWN else targets[name].region)
            for name, objs in groups.items()}


def check(objects: tuple[Obj, ...], region: str) -> list[Problem]:
    """``checks.check`` for a manifest without targets; with them, the targets themselves, what names them,
    and each group as its own manifest (a problem found in several groups is said once)."""
    if not uses_targets(objects):
        return checks.check(Manifest(objects, region))
    problems = list(_targets(objects)) + list(_named(objects))
    manifest = Manifest(objects, region)
    for name, group in split(manifest).items():
        problems += checks.check(group)
        problems += list(_within(group, name, targets_of(objects).get(name) if name else None, objects))
    return list(dict.fromkeys(problems))


def _targets(objects: tuple[Obj, ...]) -> Iterator[Problem]:
    seen: dict[str, Obj] = {}
    for o in (o for o in objects if o.kind == TARGET):
        msg = rules.check_metadata_name(o.name)
        if msg:
            yield o.problem(("metadata", "name"), msg)
        if o.name in seen:
            yield o.problem(("metadata", "name"), f"duplicate: {seen[o.name].ref} in {seen[o.name].file} has the "
                            "same name; keep one")
        seen.setdefault(o.name, o)
        if o.model.metadata.targets is not None:
            yield o.problem(("metadata", "targets"), "a Target goes to no target; remove metadata.targets")
        yield from _role_arn(o)


def _role_arn(o: Obj) -> Iterator[Problem]:
    spec, at = o.spec, ("spec", "roleArn")
    arn = parse_arn(spec.roleArn)
    if arn is None or arn.service != "iam" or not arn.resource.startswith("role/") or arn.region:
        yield o.problem(at, f"{spec.roleArn!r} is not an IAM role ARN; write "
                        f"arn:{partition_of(spec.region)}:iam::{spec.account}:role/NAME")
        return
    if arn.account != spec.account:
        yield o.problem(at, f"the role is in account {arn.account}, not in spec.account {spec.account}; the "
                        "controller assumes a role of the account it reconciles")
    if arn.partition != partition_of(spec.region):
        yield o.problem(at, f"{spec.roleArn!r} is in partition {arn.partition!r}, but Region {spec.region} is in "
                        f"{partition_of(spec.region)!r}")


def _named(objects: tuple[Obj, ...]) -> Iterator[Problem]:
    known = {o.name for o in objects if o.kind == TARGET}
    for o in objects:
        names = o.model.metadata.targets
        if o.kind == TARGET or names is None:
            continue
        if not names:
            yield o.problem(("metadata", "targets"), "an empty list sends the object nowhere; name a Target, or "
                            "remove metadata.targets for the controller's own account")
        for i, name in enumerate(names):
            if name not in known:
                hint = f"; declared: {', '.join(sorted(known))}" if known else "; declare it with kind: Target"
                yield o.problem(("metadata", "targets", i), f"no Target named {name!r}{hint}")
            elif names.index(name) != i:
                yield o.problem(("metadata", "targets", i), f"{name!r} is listed twice; list it once")


def _within(group: Manifest, name: str | None, target: Target | None, objects: tuple[Obj, ...]) -> Iterator[Problem]:
    """References resolve within a target: what a task definition names must be deployed to it too (declared
    for other targets only, it would silently become an undeclared role or parameter here)."""
    where = f"target {name!r}" if name else "the controller's own account (no metadata.targets)"
    roles = {n for o in objects if o.kind == "ExecutionRole" for n in (o.name, o.spec.roleName)}
    names = {o.spec.name for o in objects if o.kind == "Parameter"}
    here = {o.spec.name for o in group.of("Parameter")}
    for td in group.of("TaskDefinition"):
        role = td.spec.executionRole
        if role and not role.startswith("arn:") and group.execution_role(td) is None and role in roles:
            yield td.problem(("spec", "executionRole"), f"ExecutionRole {role!r} is not deployed to {where}; add "
                             "the target to the role's metadata.targets (or match this task definition's targets)")
        for use in secret_uses(td.spec.ecs_fields()):
            at = ("spec",) + use.path + ("valueFrom",)
            try:
                ref = parse_value_from(use.value_from)
            except BadReference:
                continue
            if target is not None and ref.account and ref.account != target.account:
                yield td.problem(at, f"{use.value_from!r} is in account {ref.account}, but {where} is account "
                                 f"{target.account}; ECS reads secrets from the task's own account only")
            if ref.service == "ssm" and ref.secret_id is None and ref.name in names - here:
                yield td.problem(at, f"Parameter {ref.name} is not deployed to {where}; add the target to its "
                                 "metadata.targets (a Parameter without value if it is managed elsewhere there)")
