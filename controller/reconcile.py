"""One reconcile: load → observe → resolve → plan → (apply). Level-triggered; the daemon calls the same thing.

``Desired`` is built once per load (``load``) and resolved once per reconcile against what observe
found; every stage below receives it, not the manifest.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Mapping

from controller.aws.apply import Outcome, Report, apply
from controller.aws.observe import observe
from controller.aws.session import Aws
from controller.core import planfile, rollout
from controller.core import values as values_
from controller.core import validate
from controller.core.desired import DEFAULT_OWNER, Desired
from controller.core.diff import make_plan
from controller.core.plan import Blocker, Change, Plan, block_dependents
from controller.core.prune import limit_deletions, plan_prune
from controller.core.state import Actual
from controller.manifests.valuefile import read_text  # noqa: F401 - also reconcile.read_text, as the sandbox uses it
from controller.vocab.problems import CheckError, ManifestError, Problem
from controller.vocab.sensitive import Sensitive

log = logging.getLogger("ecs_secrets.reconcile")




@dataclass(frozen=True)
class Settings:
    prune: bool = False
    max_deletions: int = 10
    environ: Mapping[str, str] = field(default_factory=lambda: os.environ)   # where fromEnv values come from
    read_file: values_.ReadFile = read_text                                  # and fromFile values
    isolate: bool = False               # the daemon: a value problem blocks its object, not the whole run
    clusters: tuple[str, ...] = ()      # ECS clusters whose services' revisions are never deregistered; (): all
    skip_values: bool = False           # plan without reading any fromEnv/fromFile value (a dry-run only)
    rollout_timeout: float = 900.0      # how long to follow one service's deployment (``rolling``)


@dataclass
class Result:
    plan: Plan
    actual: Actual
    desired: Desired    # resolved against actual.ctx
    report: Report | None = None


def load(path: str, aws: Aws, owner: str = DEFAULT_OWNER) -> Desired:
    """The manifests under ``path`` as desired state; every refusal raised together as ``ManifestError``."""
    return validate.load(path, aws.region, owner)


def resolve_values(desired: Desired, settings: Settings) -> tuple[dict[str, Sensitive], list[Problem]]:
    found, problems = values_.resolve(desired, settings.environ, settings.read_file)
    if problems and not settings.isolate:
        raise ManifestError(problems)
    return found, problems


def make(aws: Aws, desired: Desired, settings: Settings) -> Result:
    """Observe and plan; no writes."""
    if settings.prune and desired.partial:   # what a subset leaves out is not gone
        raise ValueError("prune needs the whole desired state, not a subset")
    if settings.skip_values:
        desired = desired.without_values()
    values, problems = resolve_values(desired, settings)
    actual = observe(aws, desired, prune=settings.prune, clusters=settings.clusters, values=values)
    resolved = desired.resolve(actual.ctx)
    prune_changes = plan_prune(resolved, actual) if settings.prune else []
    plan = rollout.add(make_plan(resolved, actual, values, prune_changes), resolved, actual, settings.isolate)
    limit_deletions(plan, settings.max_deletions)   # keepRevisions' deregistrations count too
    reasons = {p.obj: str(p) for p in problems if p.obj}
    reasons.update(unreadable(actual))
    return Result(replace(block(plan, reasons), not_compared=desired.not_compared), actual, resolved)


def unreadable(actual: Actual) -> dict[str, str]:
    """Objects observe could not read (access denied on one role, say): each blocks only itself."""
    return {key[1]: reason for key, reason in actual.missing.items() if key[0] == "read"}


def block(plan: Plan, reasons: dict[str, str]) -> Plan:
    """Turn the changes of these objects into blockers, with every change that depends on them."""
    known = {b.ref for b in plan.blockers}
    blockers = list(plan.blockers) + [Blocker(ref, why) for ref, why in sorted(reasons.items()) if ref not in known]
    if len(blockers) == len(plan.blockers):
        return plan
    dependents: dict[str, list[str]] = {}
    for change in plan.changes:
        for dep in change.depends_on:
            dependents.setdefault(dep, []).append(change.ref)
    changes = list(plan.changes)
    block_dependents(changes, blockers, dependents)
    blocked = {b.ref for b in blockers}
    # replace, not a new Plan: what else the plan says (values not compared) stays
    return replace(plan, changes=tuple(changes), blockers=tuple(blockers),
                   in_sync=tuple(r for r in plan.in_sync if r not in blocked))


def check(plan: Plan) -> None:
    """The one-shot reconcile is all-or-nothing: anything blocked stops it before the first write."""
    if plan.blockers:
        raise CheckError([(b.ref, b.reason) for b in plan.blockers])


def execute(aws: Aws, result: Result, may_write: Callable[[], bool] = lambda: True,
            on_outcome: Callable[[Outcome], None] = lambda o: None,
            on_start: Callable[[Change], None] = lambda c: None, rollout_timeout: float = 900.0) -> Report:
    result.report = apply(aws, result.plan, may_write, on_outcome, on_start=on_start, rollout_timeout=rollout_timeout)
    return result.report


# --- saved plans (``planfile``: what the file holds and when it is stale) ---------------------------

def write_plan(path: str, result: Result, options: planfile.Options) -> None:
    """Atomically: a reader never finds half a plan, and a failed write leaves the old file."""
    text = planfile.to_json(planfile.save(result.plan, result.actual, result.desired, options))
    target = Path(path)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, target)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise planfile.PlanFileError(f"cannot write the plan to {path}: {exc.strerror or exc}") from None


def read_plan(path: str) -> planfile.SavedPlan:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise planfile.PlanFileError(f"cannot read the plan {path}: {getattr(exc, 'strerror', None) or exc}") \
            from None
    return planfile.from_json(text, path)


def check_inputs(path: str, saved: planfile.SavedPlan, desired: Desired, options: planfile.Options) -> None:
    """Before any AWS call: the same manifests and the same options as the plan was made with."""
    reasons = planfile.options_differ(saved.options, options)
    if planfile.manifests_digest(desired) != saved.manifests:
        reasons.append("the manifests differ from those the plan was made from")
    if reasons:
        raise _stale(path, reasons)


def check_plan(path: str, saved: planfile.SavedPlan, result: Result, options: planfile.Options) -> None:
    """After observing again, before the first write: AWS as the plan found it, and the same changes."""
    reasons = planfile.stale(saved, planfile.save(result.plan, result.actual, result.desired, options))
    if reasons:
        raise _stale(path, reasons)


def _stale(path: str, reasons: list[str]) -> planfile.PlanFileError:
    return planfile.PlanFileError(f"the saved plan {path} no longer applies; nothing was changed. Make a new one "
                                  "with `reconcile --dry-run --out FILE`:\n" + "\n".join(f"  {r}" for r in reasons))
