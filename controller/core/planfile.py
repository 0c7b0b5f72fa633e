"""Saved plans (``reconcile --dry-run --out FILE``, ``reconcile --plan FILE``): what the file holds, and
when a plan has gone stale. Pure: the command line reads and writes the file.

A saved plan pins the CHANGES, not the values: it holds the rendered plan (what ``--output json``
prints, so a secret only ever as ``(sensitive value)``), the digest of the manifests' canonical content
(with every literal value left out), the options that shaped it, and what the plan was based on in AWS:
the version of each parameter it changes (which the text plan shows beside it), the latest revision of
each family, the PRIMARY deployment of each service a rollout targets, and a digest of each role's policy documents (policies are no secret). No value, digest or
length of a value is ever in it. Applying it observes and plans again, with the values read again
from their sources, and refuses when anything of that differs.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from controller.core.desired import Desired
from controller.core.plan import Plan
from controller.core.render import as_dict
from controller.core.state import Actual
from controller.vocab import policy
from controller.vocab.problems import ControllerError
from controller.vocab.sensitive import scrub

FORMAT = "ecs-secrets-plan/1"


class PlanFileError(ControllerError):
    """The file is no saved plan of ours, or the plan it holds no longer applies."""


@dataclass(frozen=True)
class Options:
    """The options that shape a plan; applying it with other ones would apply another plan."""

    owner: str
    prune: bool
    max_deletions: int
    clusters: tuple[str, ...] = ()


@dataclass(frozen=True)
class SavedPlan:
    account: str
    region: str
    manifests: str                         # "sha256:…" of the manifests' canonical content, values left out
    options: Options
    plan: dict[str, Any]                   # render.as_dict of the plan
    observed: dict[str, dict[str, Any]] = field(default_factory=dict)   # ref → what the plan was based on


def save(plan: Plan, actual: Actual, desired: Desired, options: Options) -> SavedPlan:
    return SavedPlan(actual.ctx.account, actual.ctx.region, manifests_digest(desired), options,
                     _plain(as_dict(plan)), observed(plan, actual, desired))


def to_json(saved: SavedPlan) -> str:
    doc = {"format": FORMAT, **asdict(saved)}
    doc["options"] = {"owner": saved.options.owner, "prune": saved.options.prune,
                      "maxDeletions": saved.options.max_deletions, "clusters": list(saved.options.clusters)}
    return scrub(json.dumps(doc, indent=2)) + "\n"   # a second line of defence, as for every printed plan


def from_json(text: str, where: str) -> SavedPlan:
    try:
        doc = json.loads(text)
        if doc.get("format") != FORMAT:
            raise PlanFileError(f"{where} is not a saved plan of this version of ecs-secrets (format "
                                f"{doc.get('format')!r}, expected {FORMAT!r}); make the plan again")
        o = doc["options"]
        options = Options(str(o["owner"]), bool(o["prune"]), int(o["maxDeletions"]), tuple(o["clusters"]))
        return SavedPlan(str(doc["account"]), str(doc["region"]), str(doc["manifests"]), options,
                         dict(doc["plan"]), dict(doc["observed"]))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise PlanFileError(f"{where} is not a saved plan ({type(exc).__name__}); write one with "
                            "`reconcile --dry-run --out FILE`") from None


# --- what a plan depends on ----------------------------------------------------------------------

def manifests_digest(desired: Desired) -> str:
    """Of every object as validated (its fields as written, not its layout or file), sorted by ref.

    Literal values are left out (never a digest of any value): a changed literal shows in the plan
    itself, which is compared as well.
    """
    docs = sorted((o.ref, _without_values(o.obj.model.model_dump(mode="json", exclude_unset=True)))
                  for o in desired.objects)
    return "sha256:" + hashlib.sha256(json.dumps(docs, sort_keys=True).encode()).hexdigest()


def _without_values(doc: dict[str, Any]) -> dict[str, Any]:
    value = (doc.get("spec") or {}).get("value")
    if isinstance(value, dict) and "literal" in value:
        doc["spec"]["value"] = {"literal": "(left out)"}
    return doc


def observed(plan: Plan, actual: Actual, desired: Desired) -> dict[str, dict[str, Any]]:
    """The AWS state the plan rests on, as versions: a change of any means the plan is stale."""
    out: dict[str, dict[str, Any]] = {}
    for ref, version in parameter_versions(plan, actual).items():
        out[ref] = {"version": version}
    for td in desired.task_definitions:
        current = actual.task_definitions.get(td.family)
        out[td.ref] = {"latestRevision": current.arn if current else None}
    for rollout in actual.rollouts.values():   # a service deployed since: its roll may be done, or due anew
        for service in rollout.services:
            out[service.ref] = {"primaryDeployment": service.primary}
    for role in desired.roles:
        current = actual.roles.get(role.name)
        out[role.ref] = {"policies": None if current is None else _digest({
            "trust": policy.canonical(current.trust), "managed": sorted(current.managed),
            "inline": {name: policy.canonical(doc) for name, doc in sorted(current.inline.items())}})}
    return out


def parameter_versions(plan: Plan, actual: Actual) -> dict[str, int]:
    """ref → the version of each existing parameter the plan changes or deletes (the text plan shows it)."""
    found = {(p.region, p.name): p for p in actual.parameters.values()}
    if actual.prune is not None:
        found.update({(p.region, p.name): p for p in actual.prune.parameters})
    out = {}
    for change in plan.changes:
        op = change.op
        if change.kind == "Parameter" and change.action != "create" and op is not None:
            current = found.get((op.region, op.name))
            if current is not None:
                out[change.ref] = current.version
    return out


def _digest(doc: Any) -> str:
    return "sha256:" + hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()


def _plain(doc: Any) -> Any:
    """As it reads back from the file (tuples as lists, everything else as JSON has it)."""
    return json.loads(json.dumps(doc, default=str))


# --- staleness -----------------------------------------------------------------------------------

def stale(saved: SavedPlan, now: SavedPlan) -> list[str]:
    """Why ``saved`` no longer applies, given the plan made now from the same command; [] when it does."""
    reasons = []
    if saved.manifests != now.manifests:
        reasons.append("the manifests differ from those the plan was made from")
    if (saved.account, saved.region) != (now.account, now.region):
        reasons.append(f"the plan was made for account {saved.account} in {saved.region}, not "
                       f"{now.account} in {now.region}")
    for ref in sorted(set(saved.observed) | set(now.observed)):
        was, found = saved.observed.get(ref), now.observed.get(ref)
        if was != found:
            reasons.append(f"{ref} changed in AWS since the plan was made ({_said(was)} then, {_said(found)} now)")
    reasons += _changes_differ(saved.plan, now.plan)
    return reasons


def options_differ(saved: Options, given: Options) -> list[str]:
    names = {"owner": "--owner", "prune": "--prune", "max_deletions": "--max-deletions", "clusters": "--cluster"}
    was, now = asdict(saved), asdict(given)
    return [f"{flag}: the plan was made with {_flag(was[key])}, this command gives {_flag(now[key])}"
            for key, flag in names.items() if was[key] != now[key]]


def _flag(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(value) or "none"
    return str(value).lower() if isinstance(value, bool) else str(value)


def _said(observation: dict[str, Any] | None) -> str:
    if not observation:
        return "absent"
    return ", ".join(f"{k} {'none' if v is None else v}" for k, v in observation.items())


def _changes_differ(saved: dict[str, Any], now: dict[str, Any]) -> list[str]:
    def by_ref(plan: dict[str, Any]) -> dict[str, dict]:
        return {f"{c['kind']}/{c['name']}": c for c in plan.get("changes", [])}

    was, found = by_ref(saved), by_ref(now)
    out = []
    for ref in sorted(set(was) | set(found)):
        a, b = was.get(ref), found.get(ref)
        if a == b:
            continue
        if a is None:
            out.append(f"{ref}: the plan now also has it ({b['action']})")
        elif b is None:
            out.append(f"{ref}: the plan had it ({a['action']}); now there is nothing to do")
        else:
            paths = sorted({f["path"] for f in a["fields"]} ^ {f["path"] for f in b["fields"]}
                           | {f["path"] for f in a["fields"] if f not in b["fields"]})
            out.append(f"{ref}: the change differs now ({a['action']} then, {b['action']} now"
                       + (f"; fields {', '.join(paths)}" if paths else "") + ")")
    return out
