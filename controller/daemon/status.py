"""What the daemon knows of each manifest object after a reconcile: in_sync, drifted, error or blocked.

Pure bookkeeping over the plan and the apply report (no AWS, no clock of its own): a failed write
starts or extends the object's backoff, a success or an object found in sync resets it. Reasons and
errors are the plan's and apply's own, which never carry a value.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from controller.aws.apply import Outcome, Report
from controller.core.desired import Desired
from controller.core.plan import Change, Plan
from controller.daemon.backoff import Backoff, is_terminal

log = logging.getLogger("ecs_secrets.status")


def iso(wall: float | None) -> str | None:
    return None if wall is None else datetime.fromtimestamp(wall, timezone.utc).isoformat(timespec="seconds")


@dataclass
class ObjectStatus:
    kind: str
    name: str
    state: str = "unknown"
    since: float | None = None
    last_change: dict[str, Any] | None = None
    last_error: str | None = None
    pending: tuple[str, ...] = ()        # field paths that differ (no values)


@dataclass
class Pass:
    """The facts of one reconcile that the table records."""
    plan: Plan
    report: Report | None                # None: this replica did not write (a follower)
    gated: set[str] = field(default_factory=set)       # changes held back by their backoff
    fingerprints: dict[str, str] = field(default_factory=dict)
    owners: dict[str, str] = field(default_factory=dict)   # a service's ref → its rollout's TaskDefinition ref


class Table:
    def __init__(self) -> None:
        self.objects: dict[str, ObjectStatus] = {}

    def follow(self, desired: Desired) -> None:
        """Track exactly the objects of the manifests in force."""
        refs = {o.ref: o.obj for o in desired.objects}
        self.objects = {ref: self.objects.get(ref) or ObjectStatus(o.kind, o.name) for ref, o in refs.items()}

    def record(self, p: Pass, backoff: Backoff, mono: float, wall: float, scope: set[str] | None = None) -> str:
        """Update every object from one pass; returns the pass's result: success or partial. ``scope``: the
        refs a partial pass planned (an event's); the others keep what the last pass found."""
        for ref in p.plan.in_sync:
            self._set(ref, "in_sync", wall)
            backoff.reset(ref)
        for b in p.plan.blockers:
            if b.ref in p.gated:
                self._set(p.owners.get(b.ref, b.ref), "error", wall)   # keeps the error that started the backoff
            elif b.ref in p.owners:   # a service of a rollout: an error of its TaskDefinition
                self._set(p.owners[b.ref], "blocked" if b.dependent else "error", wall, f"{b.ref}: {b.reason}")
            else:
                self._set(b.ref, "blocked" if b.dependent else "error", wall, b.reason)
        changes = {c.ref: c for c in p.plan.changes}
        for ref in set(p.owners) - set(changes) - p.gated:   # a service with no roll to send: nothing to retry
            backoff.reset(ref)
        if p.report is None:
            for c in p.plan.changes:   # a service's roll: drift of its TaskDefinition
                self._set(owner_of(c), "drifted", wall, pending=_paths(c))
        else:
            for o in p.report.outcomes:
                self._outcome(o, p, backoff, mono, wall)
        missing = (set(self.objects) if scope is None else set(self.objects) & scope) - set(p.plan.in_sync) - {b.ref for b in p.plan.blockers} - set(changes)
        for ref in missing:       # cannot happen with today's plan; never report it as fine
            self._set(ref, "error", wall, "not planned")
        bad = any(s.state in ("error", "blocked") for s in self.objects.values())
        return "partial" if bad else "success"

    def _outcome(self, outcome: Outcome, p: Pass, backoff: Backoff, mono: float, wall: float) -> None:
        change, result, error = outcome.change, outcome.result, outcome.error
        ref = owner_of(change)   # a service's roll shows on its TaskDefinition; it backs off on its own
        if ref not in self.objects:
            return  # a prune of an object that left the manifests: counted in metrics, not tracked
        if result == "applied":
            self._set(ref, "in_sync", wall)
            self.objects[ref].last_change = {"action": change.action, "at": iso(wall)}
            backoff.reset(change.ref)
        elif result == "failed":
            entry = backoff.failed(change.ref, p.fingerprints.get(change.ref, ""), is_terminal(outcome.code), mono)
            when = "when the manifest or the object changes" if entry.retry_at is None else \
                f"in {entry.retry_at - mono:.0f}s"
            where = f"{change.ref}: " if ref != change.ref else ""
            self._set(ref, "error", wall, f"{where}{error} (attempt {entry.failures}; retry {when})", _paths(change))
        elif result == "blocked":
            if ref == change.ref or self.objects[ref].state != "error":   # the failure that stopped it stays shown
                self._set(ref, "blocked", wall, error if ref == change.ref else f"{change.ref}: {error}", _paths(change))
        elif outcome.code == "ServiceGone":
            self._set(ref, "in_sync", wall)
        else:  # skipped: not the leader any more, or shutting down
            self._set(ref, "drifted", wall, pending=_paths(change))

    def _set(self, ref: str, state: str, wall: float, error: str | None = None, pending: tuple[str, ...] = ()) -> None:
        s = self.objects.get(ref)
        if s is None:
            return
        if s.state != state:
            level = logging.WARNING if state in ("error", "blocked") else logging.INFO
            log.log(level, "%s is %s%s", ref, state, f": {error}" if error else "",
                    extra={"object": ref, "action": "state"})
            s.state, s.since = state, wall
        if error is not None:
            s.last_error = error
        s.pending = pending

    def states(self) -> dict[str, tuple[str, str]]:
        return {ref: (s.kind, s.state) for ref, s in self.objects.items()}

    def snapshot(self, backoff: Backoff, mono: float) -> dict[str, Any]:
        out = {}
        for ref, s in sorted(self.objects.items()):
            entry = backoff.entries.get(ref)
            out[ref] = {"kind": s.kind, "name": s.name, "state": s.state, "since": iso(s.since),
                        "last_change": s.last_change, "last_error": s.last_error, "pending_fields": list(s.pending),
                        "failures": entry.failures if entry else 0, "terminal": bool(entry and entry.terminal),
                        "retry_in_seconds": None if not entry or entry.retry_at is None else
                        round(max(entry.retry_at - mono, 0.0), 1)}
        return out


def owner_of(change: Change) -> str:
    """The manifest object a change belongs to: a service's roll belongs to the TaskDefinition whose rollout it is."""
    return getattr(change.op, "rollout", None) or change.ref if change.kind == "Service" else change.ref


def _paths(change: Change) -> tuple[str, ...]:
    return tuple(f.path for f in change.fields[:20])
