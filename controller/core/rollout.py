"""Which services of a ``spec.rollout`` to roll, and why: a pure decision over what observe found. Pure.

Level-triggered, with no state of our own: a service is rolled when its PRIMARY deployment started
before the last change of any secret its running revision reads (``ActualRollout.changed``: SSM's
LastModifiedDate, the date Secrets Manager's AWSCURRENT version was made current), or when this very
plan writes one of those parameters (the roll then depends on that write); with ``updateService``,
also when it does not run the family's latest revision (or this plan registers a new one). Every
reason of one service makes one change: several secrets changing at once roll it once. After a
roll the new deployment is younger than every change, so a rerun finds nothing to do; a crash
before the roll leaves the deployment older, so the rerun rolls it.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Iterable

from controller.core import ops
from controller.core.desired import Desired, DesiredTaskDefinition
from controller.core.plan import Blocker, Change, FieldChange, Plan
from controller.core.state import Actual, ActualRollout, ActualService
from controller.vocab.arns import Reference

KIND = "Service"
Source = tuple[str, str, str]   # ("ssm", region, parameter name) or ("secret", region, secret id or ARN)


def source(ref: Reference, region: str) -> Source:
    """What a reference reads, as one key: a Secrets Manager secret read through SSM's
    /aws/reference/secretsmanager/ path is the secret itself."""
    secret = ref.secret_id
    return ("secret", ref.region or region, secret) if secret else ("ssm", ref.region or region, ref.name)


def latest_moment(when: float) -> float:
    """A date given to the whole second (moto's Secrets Manager dates, some older APIs) may stand for any
    moment of that second: take its end, so that a change is never taken for older than a deployment
    that began after it. The price: a roll in that same second may repeat once, never be lost."""
    return when + 0.999999 if when == int(when) else when


def add(plan: Plan, desired: Desired, actual: Actual, failed_blocks: bool = False) -> Plan:
    """``plan`` with a ``Service`` change for every service to roll (after the changes it depends on).

    ``failed_blocks`` (the daemon): a service whose PRIMARY deployment FAILED and that has nothing to roll
    is an error of its rollout, shown until it deploys again. The one-shot reports a failure in the run
    that started the deployment; later runs do not stop every other write for it."""
    written = _written(plan)
    blocked = {b.ref for b in plan.blockers}
    changes, blockers, in_sync = list(plan.changes), list(plan.blockers), list(plan.in_sync)
    registers = {c.ref: c for c in plan.changes if isinstance(c.op, ops.PutTaskDefinition) and c.op.register}
    for td in desired.task_definitions:
        if td.rollout is None or td.ref in blocked:
            continue   # a blocked task definition is reported already; its services wait with it
        observed = actual.rollouts.get(td.ref, ActualRollout())
        latest = actual.task_definitions.get(td.family)
        for ref, why in sorted(observed.problems.items()):
            blockers.append(Blocker(ref, why))
        for service in observed.services:
            if service.ref in {b.ref for b in blockers}:
                continue
            if service.status in ("MISSING", "INACTIVE"):
                continue   # no task of it runs an old secret; observe said so (it may be created after us)
            if td.rollout.discover and _family(service.task_definition) not in (None, td.family):
                continue   # it runs another family now (an old deployment of ours drains): that one's to roll
            problem = _unrollable(service)
            if problem:
                blockers.append(Blocker(service.ref, problem))
                continue
            change = decide(td, service, observed, written, registers.get(td.ref),
                            latest.arn if latest else None, latest.revision if latest else 0)
            if change is None and failed_blocks and service.primary_state == "FAILED":
                blockers.append(Blocker(service.ref, f"ECS service {service.cluster}/{service.name}: its deployment "
                                        f"{service.primary} FAILED: {service.primary_reason or 'no reason given'}",
                                        terminal=False))
            elif change is None:
                in_sync.append(service.ref)
            elif any(d in blocked for d in change.depends_on):
                blockers.append(Blocker(change.ref, f"depends on {', '.join(change.depends_on)}", terminal=False,
                                        dependent=True))
            else:
                changes.append(change)
    return replace(plan, changes=tuple(changes), blockers=tuple(blockers), in_sync=tuple(in_sync))


def _written(plan: Plan) -> dict[Source, str]:
    """The parameters this plan writes a value to: source → the Parameter's ref."""
    return {("ssm", c.op.region, c.op.name): c.ref for c in plan.changes
            if c.kind == "Parameter" and c.action != "delete" and isinstance(c.op, ops.PutParameter) and c.op.write_value}


def _unrollable(service: ActualService) -> str | None:
    where = f"ECS service {service.cluster}/{service.name}"
    if service.controller != "ECS":
        return (f"{where} uses the {service.controller} deployment controller; ecs-secrets rolls only services "
                "that ECS deploys (deploymentController ECS): roll it with its own controller")
    return None


def decide(td: DesiredTaskDefinition, service: ActualService, observed: ActualRollout, written: dict[Source, str],
           registering: Change | None, latest_arn: str | None, latest_revision: int) -> Change | None:
    """The change that rolls ``service``, or None when it runs what it should, started after every change."""
    rollout = td.rollout
    move_to = None
    if rollout.updateService and (registering is not None or (latest_arn and service.task_definition != latest_arn)):
        move_to = f"{td.family}:{latest_revision + 1 if registering is not None else latest_revision}"
    changed, ours = [], []
    if rollout.onSecretChange:
        changed = sorted((when, src) for src in service.reads
                         if (when := observed.changed.get(src)) is not None and _after(when, service.primary_created))
        ours = sorted({written[src] for src in service.reads if src in written})
    if move_to is None and not changed and not ours:
        return None
    depends = tuple(sorted(set(ours) | ({registering.ref} if move_to and registering is not None else set())))
    fields = (FieldChange("taskDefinition", _revision(service.task_definition), move_to),) if move_to else \
        (FieldChange("deployment", service.primary, "(new deployment)"),)
    op = ops.RollService(service.cluster, service.name, td.ref, td.family if move_to else None, service.primary,
                         rollout.maxConcurrent)
    note = _note(move_to, [(observed.shown.get(src, str(when)), src) for when, src in changed], ours)
    return Change(KIND, f"{service.cluster}/{service.name}", "update", fields, op, depends, note)


def _after(when: float, started: float | None) -> bool:
    return started is None or latest_moment(when) > started


def _family(arn: str | None) -> str | None:
    return arn.rsplit("/", 1)[-1].rsplit(":", 1)[0] if arn else None


def _revision(arn: str | None) -> str | None:
    return arn.rsplit("/", 1)[-1] if arn else None


def _note(move_to: str | None, changed: list[tuple[str, Source]], ours: Iterable[str]) -> str:
    """Why it rolls, as the headline says it: ``will roll (secret /app/db changed 2026-…)``."""
    parts = [f"moves to {move_to}"] if move_to else []
    if changed:
        when, src = changed[-1]
        names = sorted({s[2] for _, s in changed})
        more = f" and {len(names) - 1} more" if len(names) > 1 else ""
        parts.append(f"secret {src[2]}{more} changed {when}")
    for ref in ours:
        parts.append(f"{ref} is written by this plan")
    return "; ".join(parts)
