"""Rolling services: one UpdateService per service, then its deployment followed until ECS says how it ended.

The services of one TaskDefinition's rollout go ``maxConcurrent`` at a time, in plan order; rollouts of
different task definitions run side by side. A deployment that ends FAILED (ECS's deployment circuit
breaker gave up and, with rollback on, went back to the last completed one) or does not end within
``--rollout-timeout`` fails its service and stops the rest of that rollout: the services not started yet
are reported as blocked. A service deleted meanwhile has nothing left to roll: reported, not an error.

UpdateService is sent once (``idempotency.write_once``): after an ambiguous failure the service is read
again, and a PRIMARY deployment other than the one it had just before we sent means ours landed.
Deployment API reference (rolloutState): "When a service deployment is started, it begins in an
IN_PROGRESS state. When the service reaches a steady state, the deployment transitions to a COMPLETED
state. If the service fails to reach a steady state and circuit breaker is turned on, the deployment
transitions to a FAILED state"; rolloutStateReason says why. UpdateService API reference
(taskDefinition): "If a revision isn't specified, the latest ACTIVE revision is used."
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, Callable

from botocore.exceptions import BotoCoreError, ClientError

from controller.aws import guard, idempotency, retry
from controller.aws.observe_services import primary, services
from controller.aws.session import Aws, error_code
from controller.core.plan import Change
from controller.vocab.sensitive import scrub

POLL_FIRST, POLL_MAX = 1.0, 15.0   # seconds between DescribeServices while a deployment runs: 1, 2, 4 … 15
ENDED = ("COMPLETED", "FAILED")


@dataclass
class Rolled:
    """How one roll ended, as apply reports it (``Outcome``)."""
    result: str                          # applied | failed | blocked | skipped
    error: str | None = None
    code: str | None = None              # RolloutFailed | RolloutTimeout | ServiceGone | an AWS error code
    assigned: dict[str, Any] = field(default_factory=dict)


class _Gone(Exception):
    pass


def run(aws: Aws, changes: list[Change], failed: set[str], may_write: Callable[[], bool],
        on_start: Callable[[Change], None], finish: Callable[[Change, Rolled], None], timeout: float) -> None:
    """Roll every service of ``changes`` (each a ``Service`` change); ``failed``: refs that did not apply."""
    groups: dict[str, list[Change]] = {}
    for change in changes:
        groups.setdefault(change.op.rollout, []).append(change)
    lock = threading.Lock()

    def done(change: Change, rolled: Rolled) -> None:
        with lock:   # apply's bookkeeping and the progress lines are not shared between threads
            finish(change, rolled)
            if rolled.result not in ("applied",) and rolled.code != "ServiceGone":
                failed.add(change.ref)

    def started(change: Change) -> None:
        with lock:
            on_start(change)

    with ThreadPoolExecutor(max(1, len(groups)), thread_name_prefix="rollout") as pool:
        for future in [pool.submit(_rollout, aws, group, failed, may_write, started, done, timeout)
                       for group in groups.values()]:
            future.result()


def _rollout(aws: Aws, group: list[Change], failed: set[str], may_write: Callable[[], bool],
             started: Callable[[Change], None], done: Callable[[Change, Rolled], None], timeout: float) -> None:
    width = max(1, group[0].op.max_concurrent)
    stopped: list[str] = []
    running: dict[Future, Change] = {}
    with ThreadPoolExecutor(width, thread_name_prefix="roll") as pool:
        for change in group:
            while len(running) >= width:
                _collect(running, stopped, done)
            why = _held(change, failed, stopped, may_write)
            if why is not None:
                done(change, why)
                continue
            started(change)
            running[pool.submit(roll, aws, change, timeout, may_write)] = change
        while running:
            _collect(running, stopped, done)


def _collect(running: dict[Future, Change], stopped: list[str], done: Callable[[Change, Rolled], None]) -> None:
    finished, _ = wait(running, return_when=FIRST_COMPLETED)
    for future in finished:
        change = running.pop(future)
        rolled = future.result()
        if rolled.result == "failed":
            stopped.append(change.name)
        done(change, rolled)


def _held(change: Change, failed: set[str], stopped: list[str], may_write: Callable[[], bool]) -> Rolled | None:
    blocked_by = [d for d in change.depends_on if d in failed]
    if blocked_by:
        return Rolled("blocked", f"depends on {', '.join(blocked_by)}, which did not apply")
    if stopped:
        return Rolled("blocked", f"the rollout of {change.op.rollout} stopped: ECS service {stopped[0]} did not "
                      "roll (see its error); fix that and reconcile again")
    if not may_write():
        return Rolled("skipped", "not allowed to write now (shutting down or not the leader)")
    return None


def roll(aws: Aws, change: Change, timeout: float, keep_following: Callable[[], bool] = lambda: True) -> Rolled:
    """UpdateService once, then follow the new PRIMARY deployment."""
    op, began = change.op, time.monotonic()
    where = f"ECS service {op.cluster}/{op.service}"
    try:
        with guard.active(getattr(aws, "guard", None)):   # the lease covers every attempt of the write
            deployment = _update(aws, op)
        state, reason = _follow(aws, op, deployment, began + timeout, keep_following)
    except guard.LeaseLost as exc:
        return Rolled("skipped", str(exc), "LeaseLost")
    except _Gone:
        return Rolled("skipped", f"{where} no longer exists (deleted during the rollout): nothing left to roll",
                      "ServiceGone")
    except (ClientError, BotoCoreError) as exc:
        return Rolled("failed", scrub(f"{where}: {exc}"), error_code(exc))
    seconds = round(time.monotonic() - began, 1)
    assigned = {"deployment": deployment, "rolloutState": state, "seconds": seconds}
    if state == "FAILED":
        return Rolled("failed", f"{where}: deployment {deployment} FAILED: {reason or 'no reason given'}",
                      "RolloutFailed", assigned)
    if state == "IN_PROGRESS" and reason == "timeout":
        return Rolled("failed", f"{where}: deployment {deployment} still IN_PROGRESS after {timeout:.0f}s "
                      "(--rollout-timeout)", "RolloutTimeout", assigned)
    return Rolled("applied", assigned=assigned)


def _read(aws: Aws, op: Any) -> dict:
    found = services(aws, op.cluster, [op.service])
    service = found[0] if found else {"status": "MISSING"}
    if service.get("status") not in ("ACTIVE", "DRAINING"):
        raise _Gone()
    return service


def _update(aws: Aws, op: Any) -> str:
    """The id of the deployment our UpdateService started."""
    before = (primary(_read(aws, op)) or {}).get("id")
    args: dict[str, Any] = {"cluster": op.cluster, "service": op.service}
    if op.family:
        args["taskDefinition"] = op.family     # the latest ACTIVE revision: the one this plan registered
    else:
        args["forceNewDeployment"] = True
    once = aws.client("ecs", retries=False)

    def landed() -> bool:
        now = primary(_read(aws, op))
        return now is not None and now.get("id") != before

    try:
        reply = idempotency.write_once(lambda: once.update_service(**args), landed, once)
    except ClientError as exc:
        if error_code(exc) in ("ServiceNotFoundException", "ServiceNotActiveException", "ClusterNotFoundException"):
            raise _Gone() from None
        raise
    service = reply["service"] if reply else _read(aws, op)
    return (primary(service) or {}).get("id") or "?"


def _follow(aws: Aws, op: Any, deployment: str, deadline: float,
            keep_following: Callable[[], bool]) -> tuple[str, str | None]:
    delay = POLL_FIRST
    while True:
        service = _read(aws, op)
        mine = next((d for d in service.get("deployments") or [] if d.get("id") == deployment), None)
        if mine is None:   # drained away: a later deployment replaced it (and it started after ours)
            return "SUPERSEDED", None
        state = mine.get("rolloutState")
        if state in ENDED:
            return state, mine.get("rolloutStateReason")
        now = time.monotonic()
        if now >= deadline:
            return "IN_PROGRESS", "timeout"
        if not keep_following():
            return "IN_PROGRESS", "not followed to its end (shutting down or not the leader)"
        retry.sleep(min(delay, deadline - now))
        delay = min(delay * 2, POLL_MAX)
