"""What --prune deletes: owned, left the manifests, deletionPolicy Delete, not in use, within the cap. Pure."""

from __future__ import annotations

from controller import ops
from controller.manifest import Manifest
from controller.plan import Change, FieldChange
from controller.problems import ControllerError
from controller.state import Actual


class TooManyDeletions(ControllerError):
    pass


def plan_prune(manifest: Manifest, actual: Actual, max_deletions: int) -> list[Change]:
    candidates = actual.prune
    if candidates is None:
        return []
    changes = [_parameter(p, candidates.referenced) for p in candidates.parameters]
    changes += [Change("ExecutionRole", r.name, "delete",
                       (FieldChange("roleName", r.name, None),),
                       ops.DeleteRole(r.name, tuple(sorted(r.inline)), tuple(sorted(r.managed))))
                for r in candidates.roles]
    changes += [Change("TaskDefinition", family, "delete",
                       tuple(FieldChange(f"revision {family}:{rev}", "ACTIVE", "INACTIVE") for rev in revs),
                       ops.DeregisterFamily(family, tuple(revs)))
                for family, revs in sorted(candidates.task_definitions.items())]
    changes = [c for c in changes if c is not None]
    if len(changes) > max_deletions:
        raise TooManyDeletions(f"--prune would delete {len(changes)} objects, more than --max-deletions "
                               f"{max_deletions}; nothing was changed. Check the manifests, or raise the limit")
    return changes


def _parameter(p, referenced: set) -> Change | None:
    if (p.region, p.name) in referenced:
        return None  # an ACTIVE task-definition revision still reads it: deleting it would break a deploy
    return Change("Parameter", p.name, "delete", (FieldChange("name", p.name, None),),
                  ops.DeleteParameter(p.name, p.region))
