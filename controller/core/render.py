"""Plans as a person reads them (like ``terraform plan``) and as a machine does (JSON). Pure."""

from __future__ import annotations

import json
from typing import Any, Callable, Mapping

from controller.core.plan import Blocker, Change, FieldChange, Plan, show
from controller.vocab.sensitive import scrub

SYMBOL = {"create": "+", "update": "~", "delete": "-"}
NOT_COMPARED = "(not compared)"
# terraform's colours: green creates, yellow updates, red deletes; bold headlines
_ANSI = {"+": "\033[32m", "~": "\033[33m", "-": "\033[31m", "!": "\033[31m", "?": "\033[33m", "bold": "\033[1m"}
_RESET = "\033[0m"
Paint = Callable[[str, str], str]


def text(plan: Plan, versions: Mapping[str, int] | None = None, colour: bool = False) -> str:
    """``versions``: ref → the parameter version a change was planned against (shown, since a saved plan
    holds it); ``colour``: ANSI colours, for a terminal (the command line decides: a TTY, and no NO_COLOR)."""
    paint = _painter(colour)
    lines: list[str] = []
    for change in plan.ordered():
        lines += change_lines(plan, change, (versions or {}).get(change.ref), paint)
        lines.append("")
    for blocker in plan.blockers:
        lines.append(paint("!", f"  ! {blocker.ref}: {blocker.reason}"))
    if plan.blockers:
        lines.append("")
    lines.append(paint("bold", summary_line(plan)))
    return scrub("\n".join(lines))   # a second line of defence: no registered secret, whatever a field holds


def _painter(colour: bool) -> Paint:
    if not colour:
        return lambda style, line: line
    return lambda style, line: f"{_ANSI[style]}{line}{_RESET}" if style in _ANSI else line


def change_lines(plan: Plan, change: Change, version: int | None = None,
                 paint: Paint = lambda style, line: line) -> list[str]:
    """One change as ``terraform plan`` shows it: the headline (with the parameter version it was planned
    against, or the revision it registers), then a line per field (a list: a line per item added or removed)."""
    symbol = SYMBOL[change.action]
    notes = ([f"from version {version}"] if version is not None else []) + ([change.note] if change.note else [])
    note = f" ({'; '.join(notes)})" if notes else ""
    # painted in three parts: a reset inside one painted string would end its colour at the name
    verb = "roll" if change.kind == "Service" else f"be {change.action}d"
    lines = [paint(symbol, f"  {symbol} ") + paint("bold", _headline_ref(change)) + paint(symbol, f" will {verb}{note}")]
    for f in _fields(plan, change):
        lines += [paint(mark, line) for mark, line in _field_lines(change, f)]
    if change.ref in plan.not_compared and change.action == "update":
        lines.append(paint("?", f"      ? value {NOT_COMPARED}"))
    return lines


def _headline_ref(change: Change) -> str:
    """``Service prod/web``: a service's name holds a slash, so its kind is set apart by a space."""
    return f"{change.kind} {change.name}" if change.kind == "Service" else change.ref


def summary_line(plan: Plan) -> str:
    s = plan.summary()
    rolls = f", {s['roll']} service(s) to roll" if s.get("roll") else ""
    if plan.not_compared:
        skipped = f"values not compared (--skip-values): {', '.join(plan.not_compared)}."
        if not plan.changes:
            return f"No changes, but {skipped}" if not plan.blockers else \
                f"No changes can be planned; {len(plan.blockers)} object(s) blocked; {skipped}"
        return f"Plan: {s['create']} to create, {s['update']} to update, {s['delete']} to delete{rolls}; {skipped}"
    if not plan.changes:
        return "No changes. Everything is in sync." if not plan.blockers else \
            f"No changes can be planned; {len(plan.blockers)} object(s) blocked."
    return f"Plan: {s['create']} to create, {s['update']} to update, {s['delete']} to delete{rolls}."


def _fields(plan: Plan, change: Change) -> tuple[FieldChange, ...]:
    """A value that --skip-values did not read shows as not compared, never as a value to be written."""
    if change.ref not in plan.not_compared:
        return change.fields
    return tuple(FieldChange(f.path, f.before and NOT_COMPARED, NOT_COMPARED) if f.path == "value" else f
                 for f in change.fields)


def _field_lines(change: Change, f: Any) -> list[tuple[str, str]]:
    before, after = show(f.before, f.sensitive), show(f.after, f.sensitive)
    if change.action == "create" or (change.action == "update" and f.before is None):
        return [("+", f"      + {f.path} = {_value(after)}")]
    if change.action == "delete" or f.after is None:
        return [("-", f"      - {f.path} = {_value(before)}")]
    added, removed = list_items(before, after)
    if added or removed:
        return [("~", f"      ~ {f.path}:")] + [("+", f"          + {_value(i)}") for i in added] + \
            [("-", f"          - {_value(i)}") for i in removed]
    return [("~", f"      ~ {f.path}: {_value(before)} -> {_value(after)}")]


def list_items(before: Any, after: Any) -> tuple[list[Any], list[Any]]:
    """Of two lists, the items added and removed (none: not two lists, or only the order changed)."""
    if not (isinstance(before, list) and isinstance(after, list)):
        return [], []
    key = lambda item: json.dumps(item, sort_keys=True, default=str)  # noqa: E731
    old, new = {key(i) for i in before}, {key(i) for i in after}
    return [i for i in after if key(i) not in old], [i for i in before if key(i) not in new]


def _value(value: Any) -> str:
    if value in ("(sensitive value)", NOT_COMPARED):
        return value
    flat = json.dumps(value, sort_keys=True, default=str)
    if len(flat) <= 100 or not isinstance(value, (dict, list)):
        return flat
    return json.dumps(value, sort_keys=True, default=str, indent=2).replace("\n", "\n          ")


def markdown(plan: Plan) -> str:
    """The plan for a pull-request comment: which objects and fields change, never a value."""
    lines = [f"#### ecs-secrets: {summary_line(plan)}", ""]
    if plan.changes:
        lines += ["| | Object | Action | Changed fields |", "|---|---|---|---|"]
        for change in plan.ordered():
            note = f" ({_md(change.note)})" if change.note else ""
            fields = ", ".join(_md_field(f) for f in _fields(plan, change))
            lines.append(f"| {SYMBOL[change.action]} | `{_md(change.ref)}` | {change.action}{note} | {fields} |")
        lines.append("")
    if plan.blockers:
        lines += ["**Blocked:**", ""] + [f"- `{_md(b.ref)}`: {_md(b.reason)}" for b in plan.blockers] + [""]
    return scrub("\n".join(lines).rstrip() + "\n")


def _md_field(f: Any) -> str:
    if f.after == NOT_COMPARED:
        return f"`{_md(f.path)}` {NOT_COMPARED}"
    return f"`{_md(f.path)}`" + (" (sensitive value)" if f.sensitive else "")


def _md(text: str) -> str:
    """Safe inside a table cell and a code span: no pipe, backtick or line break can break out."""
    return text.replace("`", "'").replace("|", "\\|").replace("\n", " ")


def as_dict(plan: Plan) -> dict[str, Any]:
    doc = {
        "changes": [{
            "kind": c.kind, "name": c.name, "action": c.action,
            "fields": [{"path": f.path, "before": show(f.before, f.sensitive), "after": show(f.after, f.sensitive)}
                       for f in _fields(plan, c)],
        } for c in plan.ordered()],
        "blocked": [_blocker(b) for b in plan.blockers],
        "summary": plan.summary(),
    }
    if plan.not_compared:
        doc["valuesNotCompared"] = [_ref(ref) for ref in plan.not_compared]
        doc["summary"]["valuesNotCompared"] = len(plan.not_compared)
    return doc


def _ref(ref: str) -> dict[str, str]:
    kind, _, name = ref.partition("/")
    return {"kind": kind, "name": name}


def _blocker(b: Blocker) -> dict[str, Any]:
    kind, _, name = b.ref.partition("/")
    return {"kind": kind, "name": name, "reason": b.reason}


def as_json(plan: Plan) -> str:
    return scrub(json.dumps(as_dict(plan), indent=2, sort_keys=False, default=str))


# --- what an apply did ---------------------------------------------------------------------------
# ``outcomes``: each with ``change``, ``result`` (applied | failed | blocked | skipped), ``error`` and
# ``assigned`` (what AWS gave the write: a parameter's ``version``, a revision's ``taskDefinitionArn``).

DONE = {"create": "created", "update": "updated", "delete": "deleted", "roll": "rolled"}
RESULTS = ("applied", "failed", "blocked", "skipped")


def applied_text(outcomes: list[Any]) -> str:
    lines = []
    for o in outcomes:
        if o.result == "applied":
            done = DONE["roll" if o.change.kind == "Service" else o.change.action]
            lines.append(f"  {SYMBOL[o.change.action]} {o.change.ref}: {done}"
                         + "".join(f", {_assigned(k, v)}" for k, v in o.assigned.items() if k != "revision"))
        else:
            lines.append(f"  ! {o.change.ref}: {o.change.action} {o.result}: {o.error}")
    counts = _counts(outcomes)
    skipped = f", {counts['skipped']} skipped" if counts["skipped"] else ""
    lines.append(f"Apply complete: {counts['applied']} applied, {counts['failed']} failed, "
                 f"{counts['blocked']} blocked{skipped}.")
    return scrub("\n".join(lines))   # an error message may echo what was sent


def _assigned(key: str, value: Any) -> str:
    return f"registered {value}" if key == "taskDefinitionArn" else f"{key} {value}"


def _counts(outcomes: list[Any]) -> dict[str, int]:
    return {r: sum(o.result == r for o in outcomes) for r in RESULTS}


def applied_dict(plan: Plan, outcomes: list[Any]) -> dict[str, Any]:
    """One document for an apply: the plan, each change with its result and what AWS assigned, and the
    counts of the results under ``applied``."""
    doc = as_dict(plan)
    by_ref = {o.change.ref: o for o in outcomes}
    for change, entry in zip(plan.ordered(), doc["changes"]):
        o = by_ref.get(change.ref)
        entry["result"] = o.result if o else "not run"
        entry["assigned"] = dict(o.assigned) if o else {}
        if o and o.error:
            entry["error"] = o.error
    doc["applied"] = _counts(outcomes)
    return doc


def applied_json(plan: Plan, outcomes: list[Any]) -> str:
    return scrub(json.dumps(applied_dict(plan, outcomes), indent=2, default=str))
