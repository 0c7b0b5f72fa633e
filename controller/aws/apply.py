"""Apply a plan: ordered writes, one small function per kind and action, nothing else.

Dry-run never reaches this module. Independent writes overlap in a small pool; a change starts only
once every change it depends on (``Change.depends_on``: a task definition after its role and its
parameters) has finished, and is reported as blocked, not tried, when one of them did not apply.
Each kind writes to its own AWS quota (Parameter Store, IAM, ECS registrations), so each kind has its
own ``workers`` slots: a registration waiting for ECS's 1-a-second token never holds up a parameter.
Within a kind, what a task definition needs goes first, in the order of the task definitions, so
that each registration can start as soon as its own role and parameters exist.
Deletes start after every write, kind by kind in reverse order. ``may_write`` is asked before every
write (the daemon's leader check, SIGTERM); a write guard on ``aws`` (``guard``) then checks every
attempt of it, retries included. Outcomes are reported as they finish, and listed in plan
order in the Report.
"""

from __future__ import annotations

import heapq
import logging
from collections import defaultdict
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Callable

from botocore.exceptions import BotoCoreError, ClientError

from controller.aws import guard, rolling
from controller.aws.session import Aws, error_code
from controller.aws.writers import WRITERS
from controller.core.plan import Change, Plan
from controller.vocab.sensitive import scrub

log = logging.getLogger("ecs_secrets.apply")
WORKERS = 4   # writes in flight per kind; the rate limiter (session.py), not this, keeps us under AWS's quotas


@dataclass
class Outcome:
    change: Change
    result: str                 # applied | failed | blocked | skipped
    error: str | None = None
    code: str | None = None     # the AWS error code of a failed write
    assigned: dict = field(default_factory=dict)   # what AWS gave an applied write (``writers``)


@dataclass
class Report:
    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Everything applied; a service deleted during its rollout had nothing left to roll."""
        return all(o.result == "applied" or o.code == "ServiceGone" for o in self.outcomes)

    def count(self, result: str) -> int:
        return sum(o.result == result for o in self.outcomes)


def apply(aws: Aws, plan: Plan, may_write: Callable[[], bool] = lambda: True,
          on_outcome: Callable[[Outcome], None] = lambda o: None, workers: int = WORKERS,
          on_start: Callable[[Change], None] = lambda c: None, rollout_timeout: float = 900.0) -> Report:
    """``on_start``/``on_outcome``: told as each write starts and finishes (the progress lines). The services
    to roll go after every write and before the deletes (``rolling``)."""
    ordered = plan.ordered()
    run = _Run(aws, {b.ref for b in plan.blockers}, may_write, on_outcome, workers)
    run.on_start = on_start
    rolls = [c for c in ordered if c.kind == "Service"]
    writes = [c for c in ordered if c.kind != "Service"]
    kinds = len({c.kind for c in writes}) or 1   # each kind its own slots (``wave``)
    with ThreadPoolExecutor(max(1, workers) * kinds, thread_name_prefix="apply") as pool:
        for i, wave in enumerate(_waves(writes)):
            if i == 1 or (i == 0 and wave[0].action == "delete"):
                _roll(aws, run, rolls, rollout_timeout)
                rolls = []
            run.wave(pool, wave)
    _roll(aws, run, rolls, rollout_timeout)
    return Report([run.outcomes[id(c)] for c in ordered])


def _roll(aws: Aws, run: "_Run", changes: list[Change], timeout: float) -> None:
    if changes:
        rolling.run(aws, changes, run.failed, run.may_write, run.on_start,
                    lambda c, r: run._finish(c, Outcome(c, r.result, r.error, r.code, r.assigned)), timeout)


def _waves(ordered: list[Change]) -> list[list[Change]]:
    """Every write in one wave (dependencies order them), then one wave per kind of delete, in plan order."""
    waves: list[list[Change]] = [[c for c in ordered if c.action != "delete"]]
    for change in (c for c in ordered if c.action == "delete"):
        if len(waves) == 1 or waves[-1][0].kind != change.kind:
            waves.append([])
        waves[-1].append(change)
    return [w for w in waves if w]


class _Run:
    def __init__(self, aws: Aws, failed: set[str], may_write: Callable[[], bool],
                 on_outcome: Callable[[Outcome], None], workers: int) -> None:
        self.aws, self.failed, self.may_write, self.on_outcome = aws, failed, may_write, on_outcome
        self.workers = max(1, workers)
        self.outcomes: dict[int, Outcome] = {}
        self.on_start: Callable[[Change], None] = lambda c: None

    def wave(self, pool: ThreadPoolExecutor, changes: list[Change]) -> None:
        """Start each change once the changes it depends on have finished, most urgent first
        (``_urgency``); at most ``workers`` in flight per kind, so that ``may_write`` is asked right
        before each write starts."""
        refs = {c.ref for c in changes}
        left, dependents = {}, defaultdict(list)
        for c in changes:
            deps = {d for d in _dependencies(c) if d in refs and d != c.ref}
            left[id(c)] = len(deps)
            for d in deps:
                dependents[d].append(c)
        order = _urgency(changes, dependents)
        ready: dict[str, list] = defaultdict(list)
        for c in changes:
            if not left[id(c)]:
                heapq.heappush(ready[c.kind], (order[id(c)], c))
        running: dict[Future, Change] = {}
        busy: dict[str, int] = defaultdict(int)
        while any(ready.values()) or running:
            started = True
            while started:   # a settled change can release others, of any kind
                started = False
                for kind in list(ready):
                    while ready[kind] and busy[kind] < self.workers:
                        change = heapq.heappop(ready[kind])[1]
                        started = True
                        if not self._settled(change):
                            self.on_start(change)
                            running[pool.submit(_write, self.aws, change)] = change
                            busy[kind] += 1
                            continue
                        self._release(change, left, dependents, ready, order)
            if running:
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    change = running.pop(future)
                    busy[change.kind] -= 1
                    self._finish(change, future.result())
                    self._release(change, left, dependents, ready, order)
        for c in changes:  # only a dependency cycle leaves any: nothing could start them
            if id(c) not in self.outcomes:
                self._finish(c, Outcome(c, "blocked", "its dependencies never finished"))

    def _release(self, change: Change, left: dict, dependents: dict, ready: dict, order: dict) -> None:
        for dep in dependents.pop(change.ref, []):
            left[id(dep)] -= 1
            if left[id(dep)] == 0:
                heapq.heappush(ready[dep.kind], (order[id(dep)], dep))

    def _settled(self, change: Change) -> bool:
        """Blocked or skipped without a write (then True), or clear to write (False)."""
        blocked_by = [d for d in _dependencies(change) if d in self.failed]
        if blocked_by:
            outcome = Outcome(change, "blocked", f"depends on {', '.join(blocked_by)}, which did not apply")
        elif not self.may_write():
            outcome = Outcome(change, "skipped", "not allowed to write now (shutting down or not the leader)")
        else:
            return False
        self._finish(change, outcome)
        return True

    def _finish(self, change: Change, outcome: Outcome) -> None:
        if outcome.result != "applied":
            self.failed.add(change.ref)
        self.outcomes[id(change)] = outcome
        self.on_outcome(outcome)


def _write(aws: Aws, change: Change) -> Outcome:
    log.info("%s %s", change.action, change.ref, extra={"object": change.ref, "action": change.action})
    try:
        with guard.active(getattr(aws, "guard", None)):
            assigned = WRITERS[type(change.op)](aws, change.op)
    except guard.LeaseLost as exc:
        log.warning("%s %s stopped: %s", change.action, change.ref, exc,
                    extra={"object": change.ref, "action": change.action})
        return Outcome(change, "skipped", str(exc), "LeaseLost")
    except (ClientError, BotoCoreError) as exc:
        message = scrub(str(exc))
        log.error("%s %s failed: %s", change.action, change.ref, message,
                  extra={"object": change.ref, "action": change.action})
        return Outcome(change, "failed", message, error_code(exc))
    return Outcome(change, "applied", assigned=assigned or {})


def _dependencies(change: Change) -> tuple[str, ...]:
    return change.depends_on


def _urgency(changes: list[Change], dependents: dict[str, list[Change]]) -> dict[int, tuple[int, int, int]]:
    """id(change) → its place in the queue of its kind: first what some later change needs, in the
    plan order of the earliest change that needs it (through any chain), then the rest in plan order.
    So the parameters and the role of the first task definition come before those of the second, and a
    parameter nothing waits for does not hold up one that a registration waits for."""
    order = {id(c): i for i, c in enumerate(changes)}
    first: dict[str, int] = {}

    def earliest(c: Change, seen: frozenset[str] = frozenset()) -> int:
        if c.ref not in first:
            later = [d for d in dependents.get(c.ref, ()) if d.ref not in seen]
            first[c.ref] = min((earliest(d, seen | {c.ref}) for d in later), default=order[id(c)])
        return first[c.ref]

    return {id(c): (0 if dependents.get(c.ref) else 1, earliest(c), order[id(c)]) for c in changes}
