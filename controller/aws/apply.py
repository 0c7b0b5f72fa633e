"""Apply a plan: ordered writes, one small function per kind and action, nothing else.

Dry-run never reaches this module. Independent writes overlap in a small pool; a change starts only
once every change it depends on (``Change.depends_on``: a task definition after its role and its
parameters) has finished, and is reported as blocked, not tried, when one of them did not apply.
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
WORKERS = 4   # writes in flight; the rate limiter (session.py), not this, keeps us under AWS's quotas


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
    with ThreadPoolExecutor(max(1, workers), thread_name_prefix="apply") as pool:
        for i, wave in enumerate(_waves([c for c in ordered if c.kind != "Service"])):
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
        """Start each change, in plan order, once the changes it depends on have finished; at most
        ``workers`` in flight, so that ``may_write`` is asked right before each write starts."""
        order = {id(c): i for i, c in enumerate(changes)}
        refs = {c.ref for c in changes}
        left, dependents, ready = {}, defaultdict(list), []
        for c in changes:
            deps = {d for d in _dependencies(c) if d in refs and d != c.ref}
            left[id(c)] = len(deps)
            for d in deps:
                dependents[d].append(c)
            if not deps:
                heapq.heappush(ready, (order[id(c)], c))
        running: dict[Future, Change] = {}
        while ready or running:
            while ready and len(running) < self.workers:
                change = heapq.heappop(ready)[1]
                if not self._settled(change):
                    self.on_start(change)
                    running[pool.submit(_write, self.aws, change)] = change
                    continue
                self._release(change, left, dependents, ready, order)
            if running:
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    change = running.pop(future)
                    self._finish(change, future.result())
                    self._release(change, left, dependents, ready, order)
        for c in changes:  # only a dependency cycle leaves any: nothing could start them
            if id(c) not in self.outcomes:
                self._finish(c, Outcome(c, "blocked", "its dependencies never finished"))

    def _release(self, change: Change, left: dict, dependents: dict, ready: list, order: dict) -> None:
        for dep in dependents.pop(change.ref, []):
            left[id(dep)] -= 1
            if left[id(dep)] == 0:
                heapq.heappush(ready, (order[id(dep)], dep))

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
