"""Apply a plan: ordered writes, one small function per kind and action, nothing else.

Dry-run never reaches this module. A change whose dependency failed is reported as blocked and
not tried; ``may_write`` is asked before every write (the daemon's leader check, SIGTERM).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Callable

from botocore.exceptions import BotoCoreError, ClientError

from controller.aws import Aws
from controller.plan import Change, Plan
from controller.sensitive import scrub
from controller.writers import WRITERS

log = logging.getLogger("ecs_secrets.apply")


@dataclass
class Outcome:
    change: Change
    result: str                 # applied | failed | blocked | skipped
    error: str | None = None


@dataclass
class Report:
    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(o.result == "applied" for o in self.outcomes)

    def count(self, result: str) -> int:
        return sum(o.result == result for o in self.outcomes)


def apply(aws: Aws, plan: Plan, may_write: Callable[[], bool] = lambda: True,
          on_outcome: Callable[[Outcome], None] = lambda o: None) -> Report:
    report, failed = Report(), {b.ref for b in plan.blockers}
    for change in plan.ordered():
        outcome = _one(aws, change, failed, may_write)
        if outcome.result != "applied":
            failed.add(change.ref)
        report.outcomes.append(outcome)
        on_outcome(outcome)
    return report


def _one(aws: Aws, change: Change, failed: set[str], may_write: Callable[[], bool]) -> Outcome:
    blocked_by = [d for d in _dependencies(change) if d in failed]
    if blocked_by:
        return Outcome(change, "blocked", f"depends on {', '.join(blocked_by)}, which did not apply")
    if not may_write():
        return Outcome(change, "skipped", "not allowed to write now (shutting down or not the leader)")
    log.info("%s %s", change.action, change.ref, extra={"object": change.ref, "action": change.action})
    try:
        WRITERS[type(change.op)](aws, change.op)
    except (ClientError, BotoCoreError) as exc:
        message = scrub(str(exc))
        log.error("%s %s failed: %s", change.action, change.ref, message,
                  extra={"object": change.ref, "action": change.action})
        return Outcome(change, "failed", message)
    return Outcome(change, "applied")


def _dependencies(change: Change) -> tuple[str, ...]:
    return change.depends_on
