"""A reconcile of a fleet: the single-account pipeline (``reconcile.make`` / ``check`` / ``execute``) once per
target, around it.

Each target is an ordinary single-account ``Desired`` (``core.fleet``) with an ``Aws`` of its own, whose
credentials assume the target's role (``aws.assume``). Targets are planned and applied in a small pool,
each on its own thread with its own rate limiter, so one slow target takes its own time, not the others'.
A target whose role cannot be assumed fails alone, with STS's reason: the one-shot refuses everything
before the first write anywhere (``check``: all-or-nothing across every target); the daemon shows that
target's objects in error and converges the rest.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable

from controller import reconcile
from controller.aws import assume
from controller.aws.apply import Outcome, Report
from controller.aws.session import Aws, error_code
from controller.core import fleet as fleet_
from controller.core.fleet import Fleet
from controller.core.plan import Blocker, Change, Plan
from controller.vocab.problems import CheckError, ManifestError
from controller.vocab.sensitive import scrub

log = logging.getLogger("ecs_secrets.fleet")
WORKERS = 4   # targets in flight at once; each has its own rate limits, as AWS's quotas are per account+Region


@dataclass
class Connections:
    """The ``Aws`` of each group: the controller's own for its own objects, an assumed role per target."""

    base: Aws
    by_target: dict[str | None, Aws] = field(default_factory=dict)

    def __getitem__(self, name: str | None) -> Aws:
        return self.by_target[name]

    def all(self) -> list[Aws]:
        return list(self.by_target.values())


def connect(base: Aws, fleet: Fleet, duration: int | None = None) -> Connections:
    """No AWS call: each target's role is assumed at its first call (``reachable``)."""
    limiters = assume.Limiters(base.limiter)
    out = Connections(base)
    for name in fleet.groups:
        out.by_target[name] = base if name is None else \
            assume.for_target(base, fleet.targets[name], fleet.owner, limiters, duration)
    return out


def reachable(aws: Aws, target: Any) -> str | None:
    """None, or why the target's role cannot be assumed (STS's own words: denied, missing, wrong external id)."""
    try:
        aws.session.get_credentials().get_frozen_credentials()
    except Exception as exc:   # a ClientError from STS, or no network: this target only
        return f"cannot assume {target.role_arn}: {error_code(exc)}: {scrub(str(exc))}"
    return None


@dataclass
class FleetResult:
    results: dict[str | None, reconcile.Result]   # the targets that could be planned, plans labelled
    failed: dict[str | None, str]                  # the targets that could not (their role, their observe)
    reports: dict[str | None, Report] = field(default_factory=dict)

    @property
    def plan(self) -> Plan:
        """The whole fleet's plan, to show: every target's, and one blocker per failed target."""
        plans = {name: r.plan for name, r in self.results.items()}
        combined = fleet_.combine(plans)
        failures = tuple(fleet_.failure(name or "-", why) for name, why in self.failed.items())
        return Plan(combined.changes, combined.blockers + failures, combined.in_sync, combined.not_compared)

    @property
    def outcomes(self) -> list[Outcome]:
        return [o for r in self.reports.values() for o in r.outcomes]

    @property
    def ok(self) -> bool:
        return not self.failed and all(r.ok for r in self.reports.values())


def make(fleet: Fleet, connections: Connections, settings: reconcile.Settings, workers: int = WORKERS) -> FleetResult:
    """Observe and plan every target, in parallel; no writes."""
    names = list(fleet.groups)
    with ThreadPoolExecutor(max(1, min(workers, len(names))), thread_name_prefix="target") as pool:
        futures = {name: pool.submit(_make_one, fleet, connections, name, settings) for name in names}
        done = {name: f.result() for name, f in futures.items()}
    first_refusal = next((v for v in done.values() if isinstance(v, ManifestError)), None)
    if first_refusal is not None:
        raise first_refusal   # a value that cannot be read: the manifests' problem, said as validate says it
    return FleetResult({n: v for n, v in done.items() if isinstance(v, reconcile.Result)},
                       {n: v for n, v in done.items() if isinstance(v, str)})


def _make_one(fleet: Fleet, connections: Connections, name: str | None,
              settings: reconcile.Settings) -> reconcile.Result | str | ManifestError:
    aws = connections[name]
    if name is not None:
        why = reachable(aws, fleet.targets[name])
        if why:
            log.error("target %s: %s", name, why, extra={"object": f"Target/{name}", "action": "assume"})
            return why
    try:
        result = reconcile.make(aws, fleet.groups[name], settings)
    except ManifestError as exc:
        return exc
    except Exception as exc:   # the loop (or the one-shot's report) names the target, never dies of it
        log.error("target %s: %s: %s", name or "(own account)", error_code(exc), scrub(str(exc)),
                  extra={"object": f"Target/{name}", "action": "observe"}, exc_info=log.isEnabledFor(logging.DEBUG))
        return f"{error_code(exc)}: {scrub(str(exc))}"
    result.plan = fleet_.relabel_plan(result.plan, name)
    return result


def check(result: FleetResult) -> None:
    """All-or-nothing across the fleet: any target's blocker, or a target that failed, stops everything."""
    blockers = [(b.ref, b.reason) for b in result.plan.blockers]
    if blockers:
        raise CheckError(blockers)


def execute(result: FleetResult, connections: Connections, may_write: Callable[[], bool] = lambda: True,
            on_outcome: Callable[[Outcome], None] = lambda o: None,
            on_start: Callable[[Change], None] = lambda c: None, workers: int = WORKERS) -> list[Outcome]:
    """Every target's plan applied on its own thread, its own ordering and blocking as in one account."""
    names = [n for n, r in result.results.items() if r.plan.changes]
    if names:
        with ThreadPoolExecutor(max(1, min(workers, len(names))), thread_name_prefix="target") as pool:
            futures = {n: pool.submit(reconcile.execute, connections[n], result.results[n], may_write, on_outcome,
                                      on_start) for n in names}
            result.reports = {n: f.result() for n, f in futures.items()}
    for n, r in result.results.items():
        r.report = result.reports.setdefault(n, Report())
    return result.outcomes


def blocked_for_daemon(fleet: Fleet, result: FleetResult) -> Plan:
    """The daemon's view: a failed target's objects each in error with the target's reason, the rest as planned."""
    plan = result.plan
    blockers = [b for b in plan.blockers if not b.ref.startswith("Target/")]
    for name, why in result.failed.items():
        blockers += [Blocker(o.ref, why, terminal=False) for o in fleet.groups[name].objects]
    return Plan(plan.changes, tuple(blockers), plan.in_sync, plan.not_compared)
