"""`ecs-secrets run`: a few lines around one reconcile, level-triggered, forever.

Every interval (±10%), at once when a manifest file changes, and early when an object's backoff
is due, the loop runs the one-shot pipeline (``reconcile.make`` / ``reconcile.execute``) — one
reconcile at a time, from this thread only. Where the one-shot is all-or-nothing the daemon
isolates: blockers and failed writes mark their object (and its dependents) and back off on their
own while the rest converges. Only the leader writes; ``may_write`` is asked before every write, so
SIGTERM stops writing after the write in flight; the lease's write guard (``aws.guard``) checks every
attempt of every write, so a lost lease stops even the write in flight at its next attempt.
"""

from __future__ import annotations

import argparse
import errno
import logging
import random
import signal
import socket
import threading
import time
import uuid
from collections import Counter
from dataclasses import replace
from typing import Any, Callable

from controller import reconcile
from controller.aws.known import KnownValues
from controller.aws.session import Aws, error_code
from controller.core.desired import DEFAULT_OWNER, Desired
from controller.daemon import backoff as backoff_
from controller.daemon.backoff import Backoff
from controller.daemon.budget import BudgetCollector
from controller.daemon.events import POLLING, Inbox
from controller.daemon.httpserver import Endpoints, Server
from controller.daemon.lease import Lease, lease_aws, lease_name
from controller.daemon.metrics import Metrics
from controller.daemon.status import Pass, Table, iso, owner_of
from controller.daemon.watch import Watcher
from controller.manifests.files import Sources
from controller.vocab.problems import ControllerError, ManifestError
from controller.vocab.sensitive import scrub

log = logging.getLogger("ecs_secrets.daemon")
POLL = 0.5          # seconds between looks at the manifest files and the stop flag
MIN_GAP = 1.0       # the shortest wait for a backoff or after an error (a manifest change does not wait)
HEALTH_FLOOR = 30.0  # with a tiny --interval, one slow first reconcile must not fail the liveness probe
_current = {"id": "-"}
Seed = Callable[[Aws, Desired], None]


class ContextFilter(logging.Filter):
    """Every line names its object, action and reconcile (one reconcile at a time: a global will do)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, default in (("object", "-"), ("action", "-"), ("reconcile_id", _current["id"])):
            if getattr(record, name, None) is None:
                setattr(record, name, default)
        return True


def _ctx(action: str, obj: str = "-") -> dict[str, str]:
    return {"object": obj, "action": action}


class Daemon:
    def __init__(self, aws: Aws, path: str | Sources, settings: reconcile.Settings, interval: float,
                 metrics: Metrics, lease: Lease | None = None, owner: str = DEFAULT_OWNER,
                 seed: Seed | None = None, inbox: Inbox | None = None, resync: float = 3600.0) -> None:
        self.aws, self.path, self.settings, self.interval = aws, path, settings, interval
        self.metrics, self.lease, self.owner, self.seed = metrics, lease, owner, seed
        if aws.known is None:   # across passes, in memory only: a no-op pass decrypts no unchanged version
            aws.known = KnownValues()
        self.inbox, self.resync = inbox, resync   # --events: the queue; --resync-interval: the full pass
        self.backoff, self.table, self.watcher = Backoff(), Table(), Watcher(path)
        self.desired: Desired | None = None
        self.manifest_error: str | None = None
        self.stopping, self.wake = threading.Event(), threading.Event()
        self.changed = False
        self.ready = False
        self.last_tick = self.last_turn = time.monotonic()
        self.failed_passes = self.applied = 0
        self.last: dict[str, Any] = {}
        self.rollout_owners: dict[str, str] = {}   # a service's ref → its rollout's TaskDefinition ref, as last seen
        metrics.watch(aws)
        metrics.registry.register(BudgetCollector(aws))
        metrics.is_leader.set_function(lambda: float(self.leading()))
        if inbox is None:
            metrics.events_mode.labels(POLLING).set(1)

    # --- the loop ---------------------------------------------------------------------------

    def main(self, once: bool = False) -> int:
        self.load()
        if self.lease is not None:
            # --once: the first round is its one try (lead this reconcile or observe it read-only); the
            # renewals go on through its writes, which the lease's guard only lets out while it is held
            self.lease.start()
            # a sole replica leads its first reconcile
            self.lease.first_round.wait(self.lease.retry_period + (10 if once else 0))
        result = "error"
        while not self.stopping.is_set():
            result = self.tick()
            if once:
                break
            if self.inbox is None:
                self.sleep_until(self.next_time(result))
            else:
                self.listen(result)
        self.shutdown()
        return 0 if not once or result == "success" else 1

    def tick(self, refs: set[str] | None = None) -> str:
        """A full reconcile; or, with ``refs``, one of only those objects (and what their plan needs)."""
        rid = _current["id"] = uuid.uuid4().hex[:12]
        started, result = time.monotonic(), "error"
        try:
            if self.changed and refs is None:
                self.reload()
            result = self.reconcile(refs)
            if refs is None:
                self.failed_passes = 0
        except Exception as exc:  # the loop never dies: log it, back off, try again
            if refs is None:
                self.failed_passes += 1
            log.error("reconcile failed: %s: %s", error_code(exc), scrub(str(exc)), extra=_ctx("reconcile"),
                      exc_info=log.isEnabledFor(logging.DEBUG))
        finally:
            self._finish(rid, started, result, refs)
        return result

    def reconcile(self, refs: set[str] | None = None) -> str:
        assert self.desired is not None
        desired, settings = self.desired, self.settings
        if refs is not None:   # never prune a subset: what is not in it is not gone
            desired, settings = desired.subset(refs), replace(settings, prune=False)
        result = reconcile.make(self.aws, desired, settings)
        planned = result.plan.changes   # before the gate turns some into blockers
        if self.inbox is not None:
            self.inbox.account = result.actual.ctx.account
        gated, fingerprints = self.gate(result)
        leading = self.leading()
        for change in result.plan.changes:   # which fields, never their values
            paths = ", ".join(f.path for f in change.fields)
            log.info("%s %s: %s", change.ref, "drifted" if change.action == "update" else f"to {change.action}",
                     paths, extra=_ctx("plan", change.ref))
        if leading:
            reconcile.execute(self.aws, result, self.may_write, self._on_outcome,
                              rollout_timeout=self.settings.rollout_timeout)
        owners = {c.ref: owner_of(c) for c in planned if c.kind == "Service"}
        owners.update({s.ref: td for td, r in result.actual.rollouts.items() for s in r.services})
        self.rollout_owners.update(owners)
        p = Pass(result.plan, result.report if leading else None, gated, fingerprints, owners)
        scope = None if refs is None else {o.ref for o in desired.objects}
        return self.table.record(p, self.backoff, time.monotonic(), time.time(), scope)

    def gate(self, result: reconcile.Result) -> tuple[set[str], dict[str, str]]:
        """Hold back the changes of objects whose backoff is not due; they block their dependents."""
        assert self.desired is not None
        now, held, fingerprints = time.monotonic(), {}, {}
        for change in result.plan.changes:
            want = self.desired.get(owner_of(change))   # a service's roll: its TaskDefinition's manifest
            if want is None:
                continue  # a prune: the object left the manifests
            fp = fingerprints[change.ref] = backoff_.fingerprint(
                want.obj.model.model_dump(mode="json"), [(f.path, f.before, f.after) for f in change.fields])
            if not self.backoff.allows(change.ref, fp, now):
                held[change.ref] = "backing off after a failed write"
        result.plan = reconcile.block(result.plan, held)
        return set(held), fingerprints

    def _on_outcome(self, outcome: Any) -> None:
        if outcome.result == "applied":
            self.applied += 1
            self.metrics.applied([(outcome.change.kind, outcome.change.action)])
        if outcome.change.kind == "Service":
            self.metrics.rolled(outcome)

    def _finish(self, rid: str, started: float, result: str, refs: set[str] | None = None) -> None:
        duration = time.monotonic() - started
        self.last_tick = time.monotonic()
        self.metrics.reconcile_total.labels(result).inc()
        self.metrics.reconcile_duration.observe(duration)
        self.metrics.set_resources(self.table.states())
        if result != "error" and refs is None:   # /readyz and the timestamp speak of full reconciles
            self.ready = True
            self.metrics.last_success.set(time.time())
        if refs is not None:
            self.metrics.event_reconciles.inc()
            if self.inbox is not None:
                self.inbox.rounds += 1
        self.last = {"id": rid, "result": result, "finished_at": iso(time.time()),
                     "duration_seconds": round(duration, 3), "applied": self.applied,
                     "scope": "full" if refs is None else sorted(refs)}
        counts = Counter(state for _, state in self.table.states().values())
        log.info("reconcile %s in %.2fs%s: %d applied; %s%s", result, duration,
                 "" if refs is None else f" of {', '.join(sorted(refs))}", self.applied,
                 ", ".join(f"{n} {s}" for s, n in sorted(counts.items())),
                 "" if self.leading() else " (a follower: nothing written)", extra=_ctx("reconcile"))
        _current["id"], self.applied = "-", 0

    def next_time(self, result: str) -> float:
        now = time.monotonic()
        wait = self.interval * random.uniform(0.9, 1.1)
        if result == "error":
            wait = min(wait, backoff_.wait_seconds(self.failed_passes))
        due = self.backoff.next_retry()
        if due is not None:
            wait = min(wait, due - now)
        return now + max(wait, MIN_GAP)

    def listen(self, result: str) -> None:
        """--events: reconcile what the queue's events concern until the full resync is due, the manifests
        change, leadership changes or the daemon stops. A queue that cannot be read: poll, and probe it."""
        assert self.inbox is not None
        now = time.monotonic()
        resync_at = now + self.resync * random.uniform(0.9, 1.1)
        if result == "error":
            resync_at = min(resync_at, now + max(backoff_.wait_seconds(self.failed_passes), MIN_GAP))
        while not self.stopping.is_set():
            if self.inbox.mode == POLLING:
                self.sleep_until(self.next_time(result))
                if self.stopping.is_set() or self.changed or not self.inbox.probe():
                    return   # still unreadable: the next full pass, as polling does
            if not self.leading():   # only the leader takes messages off the queue
                self.sleep_until(resync_at)
                return
            if time.monotonic() >= resync_at or self._interrupted():
                return
            due = self._due()
            if due:
                if self.tick(due) == "error":
                    return
                continue
            try:
                batch = self.inbox.next()
            except Exception as exc:  # never a crash: poll instead, and try the queue again each interval
                self.inbox.fall_back(exc)
                batch = None
            self.last_turn = time.monotonic()
            if batch is not None and batch.refs:
                self._reconcile_events(batch)
            if batch is None or self.inbox.mode == POLLING:
                log.info("reconciling everything now, then every --interval (%gs) until the queue can be read",
                         self.interval, extra=_ctx("events"))
                return

    def _reconcile_events(self, batch: Any) -> None:
        """Delete the messages only once their objects were reconciled by a replica that could write."""
        assert self.inbox is not None
        if not self.may_write():   # stopping, or no longer the leader: at once to whoever reads next
            self.inbox.release(batch.handles, 0)
            return
        if self.aws.known is not None:   # the event says it changed: compare it, whatever its version says
            for key in batch.parameters:
                self.aws.known.forget(key)
        result = self.tick(batch.refs)
        if result == "error":      # not reconciled: they come back, after a backoff
            self.inbox.release(batch.handles, backoff_.wait_seconds(1))
        elif not self.may_write():   # stopped or deposed during it: some writes may have been skipped
            self.inbox.release(batch.handles, 0)
        else:
            self.inbox.delete(batch.handles)

    def _interrupted(self) -> bool:
        if self.wake.is_set():
            self.wake.clear()
            return True
        if self.watcher.changed():
            log.info("manifests changed; reconciling now", extra=_ctx("watch", self.path))
            self.changed = True
        return self.changed

    def _due(self) -> set[str]:
        """Objects whose backoff is over, with the task definitions they blocked."""
        now = time.monotonic()
        due = {ref for ref, e in self.backoff.entries.items() if e.retry_at is not None and e.retry_at <= now}
        due |= {self.rollout_owners[ref] for ref in due if ref in self.rollout_owners}   # a service: its rollout
        if due and self.desired is not None:
            due |= {td.ref for td in self.desired.task_definitions if due & set(td.depends_on)}
        return due

    def sleep_until(self, deadline: float) -> None:
        """Wait for the deadline, a manifest change, a new leadership or a stop — whichever comes first."""
        while not self.stopping.is_set():
            if self.wake.is_set():
                self.wake.clear()
                return
            if self.watcher.changed():
                log.info("manifests changed; reconciling now", extra=_ctx("watch", self.path))
                self.changed = True
                return
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self.wake.wait(min(POLL, left))

    # --- manifests --------------------------------------------------------------------------

    def load(self) -> None:
        """The first load: manifests that do not validate stop the daemon before it starts."""
        desired = reconcile.load(self.path, self.aws, self.owner)
        if self.seed is not None:
            guard, self.aws.guard = self.aws.guard, None   # the sandbox's placeholders, before any lease round
            try:
                self.seed(self.aws, desired)
            finally:
                self.aws.guard = guard
        self._adopt(desired)

    def reload(self) -> None:
        self.changed = False
        try:
            desired = reconcile.load(self.path, self.aws, self.owner)
        except ManifestError as exc:
            self.manifest_error = str(exc)
            self.metrics.manifests_valid.set(0)
            log.error("the changed manifests do not validate; still reconciling the last valid ones: %s", exc,
                      extra=_ctx("load", self.path))
            return
        log.info("loaded %d objects", len(desired.objects), extra=_ctx("load", self.path))
        self._adopt(desired)

    def _adopt(self, desired: Desired) -> None:
        self.desired, self.manifest_error = desired, None
        self.metrics.manifests_valid.set(1)
        self.table.follow(desired)
        self.backoff.forget_except({o.ref for o in desired.objects})
        if self.inbox is not None:
            self.inbox.follow(desired)
        self.watcher.follow(p.source.fromFile for p in desired.parameters.values()
                            if p.source is not None and p.source.fromFile)

    # --- leadership, stopping, health ---------------------------------------------------------

    def leading(self) -> bool:
        return self.lease is None or self.lease.is_leader()

    def may_write(self) -> bool:
        return not self.stopping.is_set() and self.leading()

    def on_leadership(self, leading: bool) -> None:
        if leading:
            self.wake.set()  # a new leader reconciles at once instead of at its next interval

    def stop(self, why: str) -> None:
        if self.stopping.is_set():
            raise KeyboardInterrupt  # a second signal: stop waiting for the write in flight
        self.stop_reason = why
        self.stopping.set()
        self.wake.set()

    def shutdown(self) -> None:
        log.info("stopping (%s)", getattr(self, "stop_reason", "done"), extra=_ctx("shutdown"))
        if self.lease is not None:
            self.lease.stop()

    def healthy(self) -> tuple[bool, str]:
        """Fails when the loop has not finished a reconcile (or, with --events, a poll of the queue) for 3
        intervals (never less than HEALTH_FLOOR)."""
        last = max(self.last_tick, self.last_turn) if self.inbox else self.last_tick
        age, limit = time.monotonic() - last, max(3 * self.interval, HEALTH_FLOOR)
        ok = age < limit
        what = "last reconcile or poll of the events queue" if self.inbox else "last reconcile"
        return ok, f"{'ok' if ok else 'stuck'}: {what} ended {age:.0f}s ago (limit {limit:.0f}s)"

    def readiness(self) -> tuple[bool, str]:
        return self.ready, "ok: a full reconcile has run" if self.ready else "not ready: no full reconcile yet"

    def status(self) -> dict[str, Any]:
        # "holder": whoever the lease item names (another replica on a follower); "identity": this replica
        return {"leader": self.leading(), "holder": self.lease.current_holder if self.lease else None,
                "identity": self.lease.holder if self.lease else None,
                "fence": self.lease.fence if self.lease else None, "ready": self.ready,
                "manifests": {"path": str(self.path), "valid": self.manifest_error is None,
                              "error": self.manifest_error,
                              "objects": len(self.desired.objects) if self.desired else 0},
                "last_reconcile": self.last, "events": self.inbox.status() if self.inbox else {"mode": POLLING},
                "objects": self.table.snapshot(self.backoff, time.monotonic())}


# --- the command -----------------------------------------------------------------------------

def run(args: argparse.Namespace, aws: Aws, sources: dict[str, Any] | None = None, seed: Seed | None = None,
        factory: Callable[..., Daemon] | None = None) -> int:
    """``sources``: where values come from (``reconcile.Settings``' environ and read_file); ``seed``: run once
    on the first manifests, before the first reconcile (the sandbox's placeholders); ``factory``: a Daemon
    of another kind (a fleet's, ``fleetloop``), made with the same arguments."""
    for handler in logging.getLogger().handlers:
        handler.addFilter(ContextFilter())
    settings = reconcile.Settings(isolate=True, clusters=tuple(getattr(args, "cluster", None) or ()),
                                  rollout_timeout=getattr(args, "rollout_timeout", 900.0), **(sources or {}))
    metrics = Metrics()
    inbox = Inbox(aws, args.events, metrics) if getattr(args, "events", None) else None
    daemon = (factory or Daemon)(aws, args.filename, settings, args.interval, metrics, owner=args.owner, seed=seed,
                                 inbox=inbox, resync=getattr(args, "resync_interval", 3600.0))
    if args.lease_table:
        daemon.lease = _lease(args, aws, metrics, daemon)
    else:
        log.warning("no --lease-table: no leader election and no lock; a second replica or a concurrent "
                    "`reconcile` of owner %s writes at the same time (duplicate revisions, extra parameter "
                    "versions). Run exactly one replica, or give every writer the same --lease-table.",
                    args.owner, extra=_ctx("start"))
    server = None if args.once else _serve(args, Endpoints(metrics.exposition, daemon.healthy, daemon.readiness,
                                                           daemon.status))
    if server is not None:
        log.info("serving /metrics, /healthz, /readyz, /status on %s:%d", args.metrics_address, server.port,
                 extra=_ctx("start"))
    previous = {sig: signal.signal(sig, lambda signum, _: daemon.stop(signal.Signals(signum).name))
                for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        return daemon.main(once=args.once)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if server is not None:
            server.stop()


def _lease(args: argparse.Namespace, aws: Aws, metrics: Metrics, daemon: Daemon) -> Lease:
    own = lease_aws(aws, None if args.sandbox else args.profile)
    metrics.watch(own)
    if not args.lease_retry_period < args.lease_renew_deadline < args.lease_duration:
        raise ControllerError("need --lease-retry-period < --lease-renew-deadline < --lease-duration")
    lease = Lease(own, args.lease_table, lease_name(args.owner), duration=args.lease_duration,
                  renew_deadline=args.lease_renew_deadline, retry_period=args.lease_retry_period,
                  on_change=daemon.on_leadership)
    aws.set_guard(lease.guard())   # every write attempt, retries included, only while the lease covers it
    return lease


def _serve(args: argparse.Namespace, endpoints: Endpoints) -> Server:
    """The metrics server; a port or address that cannot be bound names the flag that chose it."""
    try:
        return Server(args.metrics_address, args.metrics_port, endpoints).start()
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise ControllerError(f"--metrics-port {args.metrics_port}: {args.metrics_address}:{args.metrics_port} "
                                  "is already in use (another ecs-secrets run?); pick another port, or "
                                  "--metrics-port 0 for any free one") from None
        if exc.errno == errno.EADDRNOTAVAIL or isinstance(exc, socket.gaierror):  # not this host's, or no such name
            raise ControllerError(f"--metrics-address {args.metrics_address}: cannot bind to it ({exc.strerror}); "
                                  "use an address of this host, or 0.0.0.0 for all") from None
        raise
