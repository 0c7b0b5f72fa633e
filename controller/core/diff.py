"""Desired against actual, kind by kind: the heart of the plan. Pure."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from controller.core import ops
from controller.core.desired import Desired, DesiredParameter, DesiredRole, DesiredTaskDefinition, role_policy_problems
from controller.core.plan import Blocker, Change, FieldChange, Plan, block_dependents, diff_values
from controller.core.state import Actual, ActualParameter
from controller.core.taskdef_diff import task_definition_change
from controller.vocab import policy
from controller.vocab.sensitive import SENSITIVE, Sensitive
from controller.vocab.taskreads import s3_object


def make_plan(desired: Desired, actual: Actual, values: dict[str, Sensitive],
              prune_changes: list[Change] | None = None) -> Plan:
    """``desired`` resolved against ``actual.ctx``; ``values``: metadata.name → the value to write."""
    changes: list[Change] = []
    blockers: list[Blocker] = []
    in_sync: list[str] = []
    for want in desired.objects:
        try:
            change = _DIFF[want.obj.kind](want, actual, values)
        except Blocked as exc:
            blockers.append(Blocker(want.ref, str(exc), exc.terminal, exc.dependent))
            continue
        (changes.append(change) if change else in_sync.append(want.ref))
    dependents = _dependents(desired)
    block_dependents(changes, blockers, dependents)
    needs = {}
    for ref, deps in dependents.items():
        for dep in deps:
            needs.setdefault(dep, []).append(ref)
    changes = [replace(c, depends_on=tuple(sorted(needs.get(c.ref, ())))) for c in changes]
    changes.extend(prune_changes or [])
    return Plan(tuple(changes), tuple(blockers), tuple(r for r in in_sync if r not in {b.ref for b in blockers}))


class Blocked(Exception):
    def __init__(self, reason: str, terminal: bool = True, dependent: bool = False) -> None:
        super().__init__(reason)
        self.terminal, self.dependent = terminal, dependent


def _dependents(desired: Desired) -> dict[str, list[str]]:
    """ref → the refs that cannot be applied before it: a task definition after its role and parameters."""
    out: dict[str, list[str]] = {}
    for td in desired.task_definitions:
        for ref in td.depends_on:
            out.setdefault(ref, []).append(td.ref)
    return out


def _owned_or_adopted(obj: Any, owned: bool, what: str) -> None:
    if not owned and not obj.model.metadata.adopt:
        raise Blocked(f"{what} exists but is not owned by this controller (no ecs-secrets:owner tag with our "
                      "owner id); set metadata.adopt: true to take it over, or rename it")


def _missing(actual: Actual, *key: str) -> None:
    if key in actual.missing:
        raise Blocked(actual.missing[key])


# --- Parameter -------------------------------------------------------------------------------

def _parameter(want: DesiredParameter, actual: Actual, values: dict) -> Change | None:
    obj, region, key = want.obj, want.region, want.key
    if key:
        _missing(actual, "kms", region, key)
    current = actual.parameters.get((region, want.name))
    if want.source is None:  # managed elsewhere: it only has to exist
        _missing(actual, "ssm", region, want.name)
        return None
    put = ops.PutParameter(name=want.name, region=region, type=want.type, key_id=key, tier=want.tier,
                           description=want.description, tags=dict(want.tags), value=values.get(obj.name),
                           generate_length=want.source.generate.length if want.source.generate else None,
                           literal=want.literal)
    if current is None:
        return Change("Parameter", obj.name, "create", _parameter_fields(put), put)
    _owned_or_adopted(obj, current.owned, f"SSM parameter {want.name}")
    return _parameter_update(obj, put, current, actual)


def _parameter_fields(put: ops.PutParameter) -> tuple[FieldChange, ...]:
    fields = [FieldChange("name", None, put.name), FieldChange("type", None, put.type)]
    if put.key_id:
        fields.append(FieldChange("kmsKeyId", None, put.key_id))
    fields += [FieldChange("tier", None, put.tier), _value_field(put, None)]
    if put.description:
        fields.append(FieldChange("description", None, put.description))
    fields += [FieldChange(f"tags.{k}", None, v) for k, v in sorted(put.tags.items())]
    return tuple(fields)


def _parameter_update(obj: Any, put: ops.PutParameter, cur: ActualParameter, actual: Actual) -> Change | None:
    fields = []
    if put.type != cur.type:
        fields.append(FieldChange("type", cur.type, put.type))
    if put.key_id and not _same_key(actual, put.region, put.key_id, cur.key_id):
        fields.append(FieldChange("kmsKeyId", cur.key_id, put.key_id))
    if put.tier not in (cur.tier, "Intelligent-Tiering"):
        fields.append(FieldChange("tier", cur.tier, put.tier))
    if put.description is not None and put.description != (cur.description or ""):
        fields.append(FieldChange("description", cur.description, put.description))
    if put.value is not None and put.value != cur.value:
        fields.append(_value_field(put, cur.value, was_secret=cur.type == "SecureString"))
    write_value = bool(fields)
    retag = not cur.tags_in_sync or not cur.owned
    if retag:   # the tag-filtered listing says only that some pair is missing: every pair is written
        fields += [FieldChange(f"tags.{k}", None, v) for k, v in sorted(put.tags.items())]
    if not fields:
        return None
    op = ops.PutParameter(**{**put.__dict__, "create": False, "write_value": write_value,
                             "add_tags": put.tags if retag else {}})
    return Change("Parameter", obj.name, "update", tuple(fields), op)


def _value_field(put: ops.PutParameter, before: Sensitive | None, was_secret: bool = False) -> FieldChange:
    """A literal String value may be shown; every other value only as (sensitive value). Over what is, or
    was read as, a secret (a SecureString), both sides are sensitive: the old value must not show, and
    a literal replacing a secret is often the same secret in the clear."""
    if was_secret or (before is not None and before.secret):
        return FieldChange("value", SENSITIVE, SENSITIVE, True)
    if put.literal and before is not None:
        return FieldChange("value", before.reveal(), put.value.reveal())
    if put.literal:
        return FieldChange("value", None, put.value.reveal())
    return FieldChange("value", None if before is None else "(sensitive value)", "(sensitive value)", True)


def _same_key(actual: Actual, region: str, wanted: str, current: str | None) -> bool:
    if current is None or wanted == current:
        return wanted == current
    arns = actual.ctx.key_arns
    return arns.get((region, wanted), wanted) == arns.get((region, current), current)


# --- ExecutionRole ---------------------------------------------------------------------------

def _role(role: DesiredRole, actual: Actual, values: dict) -> Change | None:
    obj, ctx = role.obj, actual.ctx
    assert role.grants is not None, "diff needs the Desired resolved against actual.ctx"
    for arn in role.managed:
        _missing(actual, "policy", arn)
    for lookup in sorted(role.grants.lookups & actual.missing.keys()):
        # derived without it, the policy would drop a grant that running tasks still need
        raise Blocked(f"its policy needs what cannot be read: {actual.missing[lookup]}", terminal=False,
                      dependent=True)
    inline = role.inline
    problems = role_policy_problems(role, inline)
    if problems:
        raise Blocked(problems[0].message)
    want = ops.PutRole(name=role.name, path=role.path, description=role.description,
                       trust=policy.trust_policy(ctx.account), tags=dict(role.tags),
                       inline_name=role.inline_name, inline=inline, attach=role.managed)
    current = actual.roles.get(role.name)
    if current is None:
        fields = [FieldChange("roleName", None, role.name), FieldChange("path", None, role.path),
                  FieldChange("trustPolicy", None, "ecs-tasks.amazonaws.com"),
                  FieldChange("managedPolicyArns", None, list(want.attach))]
        if inline is not None:   # no secret to read: no inline policy, nothing to show
            fields.append(FieldChange(f"inlinePolicy.{role.inline_name}", None, inline))
        return Change("ExecutionRole", obj.name, "create", tuple(fields), want, note=_kept(role))
    _owned_or_adopted(obj, current.owned, f"IAM role {role.name}")
    if current.path != role.path:
        raise Blocked(f"role {role.name} has path {current.path}, not {role.path}; IAM cannot move a "
                      "role: delete it or keep its path")
    change = _role_update(obj, want, current)
    return replace(change, note=_kept(role)) if change else None


def _kept(role: DesiredRole) -> str:
    """Why the policy allows more than the manifests read: ACTIVE revisions that run as the role."""
    if not role.kept:
        return ""
    shown = ", ".join(role.kept[:5]) + (f" and {len(role.kept) - 5} more" if len(role.kept) > 5 else "")
    return f"keeps the grants of ACTIVE revisions {shown}, until they are deregistered"


def _role_update(obj: Any, want: ops.PutRole, cur: Any) -> Change | None:
    fields: list[FieldChange] = []
    trust = not policy.same(want.trust, cur.trust)
    if trust:
        fields += policy_diff(cur.trust, want.trust, "trustPolicy")
    attach = tuple(sorted(set(want.attach) - cur.managed))
    detach = tuple(sorted(cur.managed - set(want.attach)))
    if attach or detach:
        fields.append(FieldChange("managedPolicyArns", sorted(cur.managed), sorted(want.attach)))
    have = cur.inline.get(want.inline_name)
    inline = not policy.same(want.inline, have)
    if inline:
        fields += policy_diff(have, want.inline, f"inlinePolicy.{want.inline_name}")
    description = want.description is not None and want.description != (cur.description or "")
    if description:
        fields.append(FieldChange("description", cur.description, want.description))
    add_tags = {k: v for k, v in want.tags.items() if cur.tags.get(k) != v}
    fields += [FieldChange(f"tags.{k}", cur.tags.get(k), v) for k, v in sorted(add_tags.items())]
    if not fields:
        return None
    op = ops.PutRole(**{**want.__dict__, "create": False, "attach": attach, "detach": detach,
                        "update_trust": trust, "update_inline": inline, "update_description": description,
                        "add_tags": add_tags})
    return Change("ExecutionRole", obj.name, "update", tuple(fields), op)


def policy_diff(have: dict | str | None, want: dict | None, path: str) -> list[FieldChange]:
    """Two policy documents' differences, statement by statement (by Sid where they have one), with
    actions and resources as lists of items added and removed, spelt as written: IAM compares action
    names case-insensitively, so an action differing only in case is shown in the wanted spelling."""
    if have is None or want is None:
        return [FieldChange(path, have, want)]
    before, after = policy.as_written(have), policy.as_written(want)
    spelt = {a.lower(): a for s in after["Statement"] for key in ("Action", "NotAction") for a in s.get(key, [])}
    for statement in before["Statement"]:
        for key in ("Action", "NotAction"):
            if key in statement:
                statement[key] = sorted({spelt.get(a.lower(), a) for a in statement[key]}, key=str.lower)
    return diff_values(before, after, path)


def _task_definition(td: DesiredTaskDefinition, actual: Actual, values: dict) -> Change | None:
    obj = td.obj
    for ref in td.references:
        region = ref.region or actual.ctx.region
        if ref.account and ref.account != actual.ctx.account:
            raise Blocked(f"{ref.raw} is in account {ref.account}, not {actual.ctx.account}; ECS reads "
                          "secrets from the task's own account only")
        _missing(actual, "ssm", region, ref.name)
        if ref.secret_id:
            _missing(actual, "secret", region, ref.secret_id)
    for read in td.files:
        obj = s3_object(read.source)
        if obj is not None:
            _missing(actual, "s3", obj.arn)
    if td.role:
        _missing(actual, "role", td.role)
    current = actual.task_definitions.get(td.family)
    if current is not None:
        _owned_or_adopted(obj, current.owned, f"task definition family {td.family}")
    assert td.body is not None, "diff needs the Desired resolved against actual.ctx"
    return task_definition_change(td, current, actual.ctx, prune=actual.prune is not None)


_DIFF = {"Parameter": _parameter, "ExecutionRole": _role, "TaskDefinition": _task_definition}
