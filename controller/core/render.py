"""Plans as a person reads them (like ``terraform plan``) and as a machine does (JSON). Pure."""

from __future__ import annotations

import json
from typing import Any

from controller.core.plan import Blocker, Change, Plan, show
from controller.vocab.sensitive import scrub

SYMBOL = {"create": "+", "update": "~", "delete": "-"}


def text(plan: Plan) -> str:
    lines: list[str] = []
    for change in plan.ordered():
        lines.append(f"  {SYMBOL[change.action]} {change.ref} will be {change.action}d")
        lines.extend(_field_line(change, f) for f in change.fields)
        lines.append("")
    for blocker in plan.blockers:
        lines.append(f"  ! {blocker.ref}: {blocker.reason}")
    if plan.blockers:
        lines.append("")
    lines.append(summary_line(plan))
    return scrub("\n".join(lines))   # a second line of defence: no registered secret, whatever a field holds


def summary_line(plan: Plan) -> str:
    s = plan.summary()
    if not plan.changes:
        return "No changes. Everything is in sync." if not plan.blockers else \
            f"No changes can be planned; {len(plan.blockers)} object(s) blocked."
    return f"Plan: {s['create']} to create, {s['update']} to update, {s['delete']} to delete."


def _field_line(change: Change, f: Any) -> str:
    before, after = _value(show(f.before, f.sensitive)), _value(show(f.after, f.sensitive))
    if change.action == "create":
        return f"      + {f.path} = {after}"
    if change.action == "delete":
        return f"      - {f.path} = {before}"
    if f.before is None:
        return f"      + {f.path} = {after}"
    if f.after is None:
        return f"      - {f.path} = {before}"
    return f"      ~ {f.path}: {before} -> {after}"


def _value(value: Any) -> str:
    if value == "(sensitive value)":
        return value
    flat = json.dumps(value, sort_keys=True, default=str)
    if len(flat) <= 100 or not isinstance(value, (dict, list)):
        return flat
    return json.dumps(value, sort_keys=True, default=str, indent=2).replace("\n", "\n          ")


def as_dict(plan: Plan) -> dict[str, Any]:
    return {
        "changes": [{
            "kind": c.kind, "name": c.name, "action": c.action,
            "fields": [{"path": f.path, "before": show(f.before, f.sensitive), "after": show(f.after, f.sensitive)}
                       for f in c.fields],
        } for c in plan.ordered()],
        "blocked": [_blocker(b) for b in plan.blockers],
        "summary": plan.summary(),
    }


def _blocker(b: Blocker) -> dict[str, Any]:
    kind, _, name = b.ref.partition("/")
    return {"kind": kind, "name": name, "reason": b.reason}


def as_json(plan: Plan) -> str:
    return scrub(json.dumps(as_dict(plan), indent=2, sort_keys=False, default=str))
