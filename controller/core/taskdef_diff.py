"""A task definition's change: compare after normalising both sides, so ECS's own rewrites are no diff."""

from __future__ import annotations

from typing import Any

from controller.core import ops
from controller.core.desired import Context, DesiredTaskDefinition
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
        return Change("TaskDefinition", name, "create", tuple(diff_values({}, comparable(body, ctx))), op)
    fields = diff_values(comparable(current.body, ctx), comparable(body, ctx))
    register = bool(fields)
    add_tags = {k: v for k, v in tags.items() if current.tags.get(k) != v}
    if not register and add_tags:
        fields += [FieldChange(f"tags.{k}", current.tags.get(k), v) for k, v in sorted(add_tags.items())]
    deregister = _old_revisions(current, keep, register)
    fields += [FieldChange(f"revision {family}:{r}", "ACTIVE", "INACTIVE") for r in deregister]
    if not fields:
        return None
    op = ops.PutTaskDefinition(family=family, body=body, tags=tags, register=register,
                               tag_arn=None if register or not add_tags else current.arn, deregister=deregister)
    return Change("TaskDefinition", name, "update", tuple(fields), op)


def _old_revisions(current: ActualTaskDefinition, keep: int | None, register: bool) -> tuple[int, ...]:
    """Owned ACTIVE revisions beyond the newest ``keep``, counting the one this run registers."""
    if not keep:
        return ()
    survivors = keep - 1 if register else keep
    return tuple(sorted(r for r in current.active[survivors:] if r in current.owned_revisions))
