"""A task definition's change: compare after normalising both sides, so ECS's own rewrites are no diff."""

from __future__ import annotations

from typing import Any

from controller.core import ops
from controller.core.desired import OWNER_TAG, Context, DesiredTaskDefinition
from controller.core.external import merged
from controller.core.plan import Change, FieldChange, diff_values
from controller.core.state import ActualTaskDefinition
from controller.core.taskdef import normalize
from controller.vocab.arns import parameter_name_from_arn, parse_arn, role_arn, role_name_from_arn


# Given a bare role name, ECS stores arn:PARTITION:iam::ACCOUNT:role/NAME (RegisterTaskDefinition API
# reference, taskRoleArn: "The short name or full Amazon Resource Name (ARN) of the IAM role").
ROLE_FIELDS = ("executionRoleArn", "taskRoleArn")


def comparable(body: dict[str, Any], ctx: Context) -> dict[str, Any]:
    """Normalised, with same-Region, same-account parameter ARNs written as names and role names
    written as the same-account role ARNs ECS stores for them."""
    out = normalize(body)
    for field in ROLE_FIELDS:
        if isinstance(out.get(field), str):
            out[field] = _role_as_arn(out[field], ctx)
    for container in out.get("containerDefinitions", []):
        for item in container.get("secrets", []):
            item["valueFrom"] = _as_name(item["valueFrom"], ctx)
        log = container.get("logConfiguration") or {}
        for item in log.get("secretOptions", []):
            item["valueFrom"] = _as_name(item["valueFrom"], ctx)
    return out


def _role_as_arn(role: str, ctx: Context) -> str:
    """A role name, or an ARN of our own account and partition with any path, as
    ``arn:PARTITION:iam::ACCOUNT:role/NAME``: a role name is unique in its account whatever its path."""
    arn = parse_arn(role)
    if arn is None:
        if "/" in role or ":" in role:
            return role
        return role_arn(ctx.partition, ctx.account, "/", role)
    if (arn.service == "iam" and arn.partition == ctx.partition and arn.account == ctx.account
            and arn.resource.startswith("role/")):
        return role_arn(ctx.partition, ctx.account, "/", role_name_from_arn(arn.resource))
    return role


def _as_name(value_from: str, ctx: Context) -> str:
    arn = parse_arn(value_from)
    if arn and arn.service == "ssm" and arn.region == ctx.region and arn.account == ctx.account:
        return parameter_name_from_arn(arn.resource)
    return value_from


def task_definition_change(td: DesiredTaskDefinition, current: ActualTaskDefinition | None,
                           ctx: Context, prune: bool = False) -> Change | None:
    """``prune``: deregistering is deleting, so keepRevisions acts only in a run with --prune."""
    keep, family, name = td.keep_revisions if prune else None, td.family, td.obj.name
    body, tags = dict(td.body or {}), dict(td.tags)
    if current is None:
        op = ops.PutTaskDefinition(family=family, body=body, tags=tags)
        fields = diff_values({}, in_manifest_order(comparable(body, ctx), body))
        return Change("TaskDefinition", name, "create", tuple(fields), op, note=f"registers {family}'s first active revision")
    body = merged(body, current.body, td.external)
    fields = diff_values(comparable(current.body, ctx), in_manifest_order(comparable(body, ctx), body))
    register = bool(fields)
    add_tags = {} if _theirs(td, current) else {k: v for k, v in tags.items() if current.tags.get(k) != v}
    if not register and add_tags:
        fields += [FieldChange(f"tags.{k}", current.tags.get(k), v) for k, v in sorted(add_tags.items())]
    deregister = _old_revisions(current, keep, register)
    fields += [FieldChange(f"revision {family}:{r}", "ACTIVE", "INACTIVE") for r in deregister]
    if not fields:
        return None
    op = ops.PutTaskDefinition(family=family, body=body, tags=tags, register=register,
                               tag_arn=None if register or not add_tags else current.arn, deregister=deregister)
    note = f"registers {family}:{current.revision + 1}" if register else ""
    if register and td.external:
        note += f", with the externally managed fields of {family}:{current.revision}"
    return Change("TaskDefinition", name, "update", tuple(fields), op, note=note)


def _theirs(td: DesiredTaskDefinition, current: ActualTaskDefinition) -> bool:
    """The latest revision is another writer's, on top of ours (a CI deploy): with fields left to that
    writer, it is expected, not drift, and we do not tag it; our tags go on each revision we register."""
    return bool(td.external) and current.owned and current.tags.get(OWNER_TAG) != td.tags.get(OWNER_TAG)


def in_manifest_order(normalized: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    """``normalized`` (sorted by name for comparing) with its containers, and their secrets, environment
    and other named lists, back in the order the manifest wrote them: the plan reads as the manifest does."""
    containers = body.get("containerDefinitions") or []
    written = {c.get("name"): c for c in containers}
    out = dict(normalized)
    if "containerDefinitions" in out:
        out["containerDefinitions"] = [_named_lists_in_order(c, written.get(c.get("name")) or {})
                                       for c in _ordered(out["containerDefinitions"], containers)]
    return out


def _named_lists_in_order(container: dict[str, Any], written: dict[str, Any]) -> dict[str, Any]:
    out = dict(container)
    for key, items in container.items():
        if isinstance(items, list) and isinstance(written.get(key), list):
            out[key] = _ordered(items, written[key])
    return out


def _ordered(items: list[Any], written: list[Any]) -> list[Any]:
    names = [w["name"] for w in written if isinstance(w, dict) and isinstance(w.get("name"), str)]
    if not all(isinstance(i, dict) and i.get("name") in names for i in items):
        return items
    return sorted(items, key=lambda i: names.index(i["name"]))


def _old_revisions(current: ActualTaskDefinition, keep: int | None, register: bool) -> tuple[int, ...]:
    """Owned ACTIVE revisions beyond the newest ``keep``, counting the one this run registers."""
    if not keep:
        return ()
    survivors = keep - 1 if register else keep
    return tuple(sorted(r for r in current.active[survivors:] if r in current.owned_revisions))
