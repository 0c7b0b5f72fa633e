"""What --prune deletes: owned, left the manifests, deletionPolicy Delete, not in use, within the cap. Pure.

The cap counts every deletion of the run: a parameter, a role, and each task-definition revision
deregistered, by a pruned family or by keepRevisions (``limit_deletions``, on the whole plan).
"""

from __future__ import annotations

from controller.core import ops
from controller.core.desired import Desired
from controller.core.plan import Change, FieldChange, Plan
from controller.core.state import Actual
from controller.vocab.arns import role_name_from_arn
from controller.vocab.problems import ControllerError


class TooManyDeletions(ControllerError):
    pass


def plan_prune(desired: Desired, actual: Actual) -> list[Change]:
    """The deletions of --prune; --max-deletions is checked on the whole plan (``limit_deletions``)."""
    candidates = actual.prune
    if candidates is None:
        return []
    referenced = candidates.referenced | _wanted_parameters(desired)
    wanted_roles = _wanted_roles(desired)
    changes = [_parameter(p, referenced) for p in candidates.parameters]
    changes += [Change("ExecutionRole", r.name, "delete",
                       (FieldChange("roleName", r.name, None),),
                       ops.DeleteRole(r.name, tuple(sorted(r.inline)), tuple(sorted(r.managed))))
                for r in candidates.roles if r.name not in wanted_roles and r.name.lower() not in candidates.roles_in_use]
    changes += [Change("TaskDefinition", family, "delete",
                       tuple(FieldChange(f"revision {family}:{rev}", "ACTIVE", "INACTIVE") for rev in revs),
                       ops.DeregisterFamily(family, tuple(revs)))
                for family, revs in sorted(candidates.task_definitions.items())]
    return [c for c in changes if c is not None]


def deletions(change: Change) -> int:
    """How many AWS objects ``change`` deletes; a deregistered revision is one."""
    if isinstance(change.op, ops.DeregisterFamily):
        return len(change.op.revisions)
    if isinstance(change.op, ops.PutTaskDefinition):
        return len(change.op.deregister)   # keepRevisions
    return 1 if change.action == "delete" else 0


_PLURAL = {"Parameter": "parameters", "ExecutionRole": "roles", "TaskDefinition": "task-definition revisions"}


def limit_deletions(plan: Plan, max_deletions: int) -> None:
    """All or nothing: a plan that deletes more than the cap is refused before the first write."""
    counts: dict[str, int] = {}
    for change in plan.changes:
        if deletions(change):
            kind = _PLURAL.get(change.kind, change.kind)
            counts[kind] = counts.get(kind, 0) + deletions(change)
    total = sum(counts.values())
    if total > max_deletions:
        what = ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items()))
        raise TooManyDeletions(f"--prune would delete {total} objects ({what}), more than --max-deletions "
                               f"{max_deletions}; nothing was changed. Check the manifests and keepRevisions, "
                               "or raise the limit")


def _wanted_parameters(desired: Desired) -> set[tuple[str, str]]:
    """What the manifests' own task definitions read: registered in this run, after observe looked."""
    return {(ref.region or desired.region, ref.name) for td in desired.task_definitions
            for ref in td.references if ref.service == "ssm"}


def _wanted_roles(desired: Desired) -> set[str]:
    """Execution roles the manifests' task definitions name without declaring them."""
    names = set()
    for td in desired.task_definitions:
        role = td.fields.get("executionRoleArn") or td.role
        if role:
            names.add(role_name_from_arn(role) if role.startswith("arn:") else role)
    return names


def _parameter(p, referenced: set) -> Change | None:
    if (p.region, p.name) in referenced:
        return None  # an ACTIVE task-definition revision still reads it: deleting it would break a deploy
    return Change("Parameter", p.name, "delete", (FieldChange("name", p.name, None),),
                  ops.DeleteParameter(p.name, p.region))
