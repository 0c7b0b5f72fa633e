"""`run --work-queue QUEUE_URL`: replicas share the work through an SQS FIFO queue (``core.workitems``).

Every replica long-polls the queue and takes any item; while it reconciles a batch, a heartbeat thread
extends the batch's visibility timeout (ChangeMessageVisibility) whenever a quarter of it has passed, so a long reconcile
keeps its items; a replica that dies stops the heartbeat and its items come back after the visibility
timeout, to whichever replica asks next. An item is deleted only after its reconcile finished; a failed
write leaves it invisible for the object's backoff, then it comes back (its group waits meanwhile).

Writes are guarded by the heartbeat, not by the lease (``aws.guard``): a write attempt leaves the process only
while the batch's visibility — timed from before the request that set it — still covers the attempt, so a
replica whose heartbeat lapsed (a pause, a partition) stops writing before another replica can receive the
same items. A lapse is final for that batch: its items are not deleted (they are someone else's now).

The lease (``--lease-table``) has one duty left: its holder enqueues every target's resync each
``--resync-interval``, at once when it becomes the holder and when the manifests change; and, with
``--events``, it moves the events queue's messages onto the work queue as object items.
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import threading
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Callable

from botocore.exceptions import BotoCoreError, ClientError
from prometheus_client import Counter, Gauge

from controller import fleet as run
from controller import reconcile
from controller.aws.guard import Guard
from controller.aws.session import Aws, error_code
from controller.core import events as events_
from controller.core import fleet as fleet_
from controller.core import workitems
from controller.core.workitems import Item
from controller.daemon.events import Inbox
from controller.daemon.fleetloop import FleetDaemon, _rollout_owners
from controller.daemon.loop import Daemon, _ctx, _current
from controller.daemon.metrics import PREFIX, Metrics
from controller.daemon.status import Pass, owner_of
from controller.vocab.sensitive import scrub

log = logging.getLogger("ecs_secrets.workqueue")
BATCH = 10                 # ReceiveMessage, SendMessageBatch, DeleteMessageBatch: at most 10
WAIT = 20                  # the longest long poll
WAIT_ENV = "ECS_SECRETS_WORK_WAIT"   # a shorter long poll (0-20 s), for tests and demos
LEADER_WAIT = 2            # the lease holder polls shorter: it also has resyncs to enqueue and events to move
IDLE = 0.2                 # between short polls that found nothing
MAX_VISIBILITY = 43200     # 12 hours: SQS's ceiling for a message's visibility timeout
QUEUE, UNREADABLE = "queue", "unreadable"


class WorkMetrics:
    def __init__(self, metrics: Metrics) -> None:
        r = metrics.registry
        self.items = Counter(f"{PREFIX}work_items_total", "Work items taken off the --work-queue, by kind and result: "
                             "done (deleted after its reconcile), retry (comes back after its backoff), lapsed "
                             "(the heartbeat lapsed: left to another replica), dropped (not a work item of ours)",
                             ["kind", "result"], registry=r)
        self.enqueued = Counter(f"{PREFIX}work_items_enqueued_total", "Work items sent to the --work-queue, by kind",
                                ["kind"], registry=r)
        self.heartbeat_failures = Counter(f"{PREFIX}work_heartbeat_failures_total", "ChangeMessageVisibility calls "
                                          "of the heartbeat that failed (or found an item no longer ours)", registry=r)
        self.mode = Gauge(f"{PREFIX}work_queue_mode", "1 for the mode in force: queue (taking items from the "
                          "--work-queue) or unreadable (the queue cannot be read: nothing is written)", ["mode"],
                          registry=r)
        self.set_mode(QUEUE)

    def set_mode(self, mode: str) -> None:
        self.mode.labels(QUEUE).set(1 if mode == QUEUE else 0)
        self.mode.labels(UNREADABLE).set(1 if mode == UNREADABLE else 0)


@dataclass
class Received:
    handle: str
    message_id: str
    item: Item | None          # None: not a work item of ours


class WorkQueue:
    """The queue's calls. Its own ``Aws`` (no write guard: a delete after a reconcile must not be refused)."""

    def __init__(self, aws: Aws, url: str, visibility: int, metrics: WorkMetrics) -> None:
        parsed = events_.queue_url(url)
        region = parsed.region or aws.region
        self.url, self.visibility, self.metrics = url, visibility, metrics
        self.poll_client = aws.client("sqs", region, read_timeout=WAIT + 10)   # outlasts the long poll
        self.client = aws.client("sqs", region)

    def send(self, items: list[Item], units: dict[str | None, dict[str, str]]) -> int:
        """Every item, or an exception: a caller that must not lose them (events) deletes its input after."""
        sent = 0
        for start in range(0, len(items), BATCH):
            chunk = items[start:start + BATCH]
            entries = [{"Id": str(i), "MessageBody": it.body(),
                        "MessageGroupId": workitems.group(it, units.get(it.target, {})),
                        "MessageDeduplicationId": workitems.dedup_id(it, units.get(it.target, {}))}
                       for i, it in enumerate(chunk)]
            reply = self.client.send_message_batch(QueueUrl=self.url, Entries=entries)
            failed = reply.get("Failed") or []
            if failed:
                raise RuntimeError(f"SendMessageBatch: {len(failed)} of {len(chunk)} not sent: {failed[0].get('Code')}")
            for it in chunk:
                self.metrics.enqueued.labels(it.kind).inc()
            sent += len(chunk)
        return sent

    def receive(self, wait: int) -> list[Received]:
        reply = self.poll_client.receive_message(QueueUrl=self.url, MaxNumberOfMessages=BATCH, WaitTimeSeconds=wait,
                                                 VisibilityTimeout=self.visibility)
        out = []
        for m in reply.get("Messages") or []:
            try:
                item = workitems.parse(m.get("Body") or "")
            except workitems.BadItem as exc:
                log.warning("dropped message %s: %s", m.get("MessageId", "?"), exc, extra=_ctx("work"))
                item = None
            out.append(Received(m["ReceiptHandle"], m.get("MessageId", ""), item))
        return out

    def extend(self, handles: list[str], seconds: int) -> list[str]:
        """ChangeMessageVisibility for each; returns the handles SQS refused (no longer in flight, not ours)."""
        refused: list[str] = []
        for start in range(0, len(handles), BATCH):
            chunk = handles[start:start + BATCH]
            reply = self.client.change_message_visibility_batch(QueueUrl=self.url, Entries=[
                {"Id": str(i), "ReceiptHandle": h, "VisibilityTimeout": seconds} for i, h in enumerate(chunk)])
            refused += [chunk[int(f["Id"])] for f in reply.get("Failed") or []]
        return refused

    def delete(self, handles: list[str]) -> None:
        for start in range(0, len(handles), BATCH):
            chunk = handles[start:start + BATCH]
            try:
                reply = self.client.delete_message_batch(QueueUrl=self.url, Entries=[
                    {"Id": str(i), "ReceiptHandle": h} for i, h in enumerate(chunk)])
            except (ClientError, BotoCoreError) as exc:
                log.warning("could not delete %d work items (%s); they come back after the visibility timeout and "
                            "are reconciled once more", len(chunk), error_code(exc), extra=_ctx("work"))
                continue
            for failed in reply.get("Failed") or []:
                log.warning("could not delete a work item: %s", failed.get("Code"), extra=_ctx("work"))

    def release(self, handles: list[str], after: float) -> None:
        """Back in ``after`` seconds (an object's backoff); a failure here means the visibility timeout instead."""
        try:
            self.extend(handles, int(max(0, min(after, MAX_VISIBILITY))))
        except (ClientError, BotoCoreError):
            pass


class Heartbeat:
    """Keeps one batch's messages in flight while it is reconciled. ``covered()``: seconds until another replica
    could receive them, on our monotonic clock, each extension timed from before its request was sent."""

    def __init__(self, queue: WorkQueue, handles: list[str], received_at: float, metrics: WorkMetrics,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.queue, self.handles, self.metrics, self.clock = queue, list(handles), metrics, clock
        self.visibility = queue.visibility
        self.expires = received_at + self.visibility
        self.lapsed = False
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="heartbeat", daemon=True)

    def start(self) -> Heartbeat:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=self.visibility)

    def covered(self) -> float:
        with self._lock:
            left = self.expires - self.clock()
            if left <= 0:
                self.lapsed = True   # final: the items may be another replica's already
            return 0.0 if self.lapsed else left

    def healthy(self) -> bool:
        return self.covered() > 0

    def _run(self) -> None:
        """Extend whenever less than three quarters of the visibility is left (soon after a slow receive); after a
        failed extension, again a sixteenth of the visibility later, not in a tight loop."""
        while not self._stop.wait(max(self.visibility / 16, self.covered() - 0.75 * self.visibility)):
            if not self.healthy():
                return
            self.beat()

    def beat(self) -> None:
        started = self.clock()
        if not self.healthy():
            return
        try:
            refused = self.queue.extend(self.handles, self.visibility)
        except (ClientError, BotoCoreError) as exc:   # the next beat tries again; coverage runs down meanwhile
            self.metrics.heartbeat_failures.inc()
            log.warning("heartbeat failed (%s): %.0fs of visibility left", error_code(exc), self.covered(),
                        extra=_ctx("work"))
            return
        with self._lock:
            if refused:
                self.metrics.heartbeat_failures.inc()
                self.lapsed = True
                log.warning("heartbeat: %d work items are no longer ours; writing stops", len(refused),
                            extra=_ctx("work"))
            elif not self.lapsed and started < self.expires:
                self.expires = started + self.visibility


def factory(args: argparse.Namespace, queue_aws: Callable[[Aws], Aws]) -> Callable[..., Daemon]:
    targets = tuple(getattr(args, "target", None) or ())
    visibility = int(args.work_visibility_timeout)

    def make(*a: Any, **kw: Any) -> Daemon:
        daemon = WorkDaemon(*a, **kw)
        daemon.only = targets
        daemon.setup(args.work_queue, visibility, queue_aws)
        return daemon
    return make


class WorkDaemon(FleetDaemon):
    """One replica of many: reconciles what it takes off the work queue (the controller's own objects, or a
    fleet's targets); the lease holder also enqueues the resyncs."""

    def setup(self, url: str, visibility: int, queue_aws: Callable[[Aws], Aws]) -> None:
        self.work = WorkMetrics(self.metrics)
        self.queue_aws = queue_aws(self.aws)
        self.metrics.watch(self.queue_aws)
        self.queue = WorkQueue(self.queue_aws, url, visibility, self.work)
        self.identity = uuid.uuid4().hex[:8]
        self.current: Heartbeat | None = None
        self.guard = Guard(lambda: self.current.covered() if self.current is not None else 0.0,
                           attempt_budget=visibility / 2, margin=visibility / 20,
                           what=f"the visibility of this replica's work items on {url}")
        self.units: dict[str | None, dict[str, str]] = {}
        self.next_resync: float | None = None   # the lease holder's; None: at once
        self.resyncs = 0
        self.fresh = True
        self.queue_reason: str | None = None
        self.wait = max(0, min(WAIT, int(os.environ.get(WAIT_ENV) or WAIT)))
        self.recorder: Callable[[str, str, tuple[str, ...], float, float], None] | None = None   # tests

    # --- set-up -----------------------------------------------------------------------------------

    def _use(self, fleet: fleet_.Fleet) -> None:
        super()._use(fleet)
        self.units = {name: workitems.units(d) for name, d in fleet.groups.items()}

    def main(self, once: bool = False) -> int:
        self.aws.set_guard(self.guard)   # before the targets' Aws are made: each copies it; replaces the lease's
        self.load()
        if self.inbox is not None:       # its deletes are the lease holder's, never held back by our guard
            self.inbox = Inbox(self.queue_aws, self.inbox.url, self.metrics, wait=0)
            self.inbox.index = fleet_.EventIndex(self.fleet) if self.fleet is not None else None
        if self.lease is not None:
            self.lease.start()
            self.lease.first_round.wait(self.lease.retry_period)
        while not self.stopping.is_set():
            try:
                self.turn()
            except Exception as exc:   # the loop never dies
                log.error("work loop: %s: %s", error_code(exc), scrub(str(exc)), extra=_ctx("work"))
                self.stopping.wait(1.0)
        self.shutdown()
        return 0

    def leading(self) -> bool:
        return self.lease is not None and self.lease.is_leader()

    def may_write(self) -> bool:
        return not self.stopping.is_set() and self.current is not None and self.current.healthy()

    def on_leadership(self, leading: bool) -> None:
        if leading:
            self.next_resync = None   # a new holder resyncs at once: the last one may have died before it did
            self.fresh = True
        self.wake.set()

    # --- one turn ---------------------------------------------------------------------------------

    def turn(self) -> None:
        self.last_tick = self.last_turn = time.monotonic()
        if self.watcher.changed():
            log.info("manifests changed; reloading", extra=_ctx("watch", str(self.path)))
            self.changed = True
        if self.changed:
            self.reload()
            self.next_resync = None   # the holder: every target once more, with the new manifests
        leading = self.leading()
        if leading:
            self.enqueue_resyncs()
            if self.inbox is not None:
                self.move_events()
        wait = min(self.wait, LEADER_WAIT) if leading else self.wait
        try:
            received_at = time.monotonic()
            messages = self.queue.receive(wait)
        except (ClientError, BotoCoreError) as exc:
            self._unreadable(exc)
            return
        if self.queue_reason is not None:
            log.info("the work queue can be read again", extra=_ctx("work"))
            self.queue_reason = None
            self.work.set_mode(QUEUE)
        self.ready = True
        if messages:
            self.process(messages, received_at)
        elif wait == 0:
            self.stopping.wait(IDLE)   # short polls (a test's): not a busy loop

    def _unreadable(self, exc: BaseException) -> None:
        why = error_code(exc)
        if self.queue_reason is None:
            log.error("cannot read the work queue %s (%s); nothing is written until it can be read", self.queue.url,
                      why, extra=_ctx("work"))
        self.queue_reason = why
        self.work.set_mode(UNREADABLE)
        self.stopping.wait(min(self.interval, 5.0))

    # --- the lease holder's duties ----------------------------------------------------------------

    def enqueue_resyncs(self) -> None:
        now = time.monotonic()
        if self.next_resync is not None and now < self.next_resync:
            return
        assert self.fleet is not None
        self.resyncs += 1
        # the first round of a new holder names the wall-clock slot, so that a failover within SQS's 5-minute
        # deduplication window does not send a round its predecessor sent already; later rounds are its own
        cause = f"slot-{int(time.time() // self.resync)}" if self.next_resync is None and self.fresh else \
            f"{self.identity}-{self.resyncs}"
        self.fresh = False
        items = [workitems.resync_item(name, cause) for name in self.fleet.groups]
        try:
            self.queue.send(items, self.units)
        except (ClientError, BotoCoreError, RuntimeError) as exc:
            log.warning("could not enqueue the resyncs (%s); trying again", error_code(exc), extra=_ctx("work"))
            return
        self.next_resync = now + self.resync * random.uniform(0.9, 1.1)
        log.info("enqueued the resync of %d targets", len(items), extra=_ctx("work"))

    def move_events(self) -> None:
        """--events: what the events concern becomes object items; the events are deleted once those are sent."""
        assert self.inbox is not None
        self.inbox.account = None   # a fleet's events come from its targets' accounts too
        batch = self.inbox.next()
        if not batch or not batch.refs:
            return
        by_target: dict[str | None, set[str]] = defaultdict(set)
        for ref in batch.refs:
            by_target[fleet_.unlabel(ref)[1]].add(ref)
        cause = "events-" + ",".join(sorted(batch.handles))[:200]
        items = [it for t, refs in by_target.items() for it in workitems.object_items(t, refs, self.units.get(t, {}),
                                                                                       cause)]
        try:
            self.queue.send(items, self.units)
        except (ClientError, BotoCoreError, RuntimeError) as exc:
            log.warning("could not enqueue the events' work (%s); the events come back", error_code(exc),
                        extra=_ctx("work"))
            return
        self.inbox.delete(batch.handles)

    # --- a batch ----------------------------------------------------------------------------------

    def spread(self, messages: list[Received]) -> list[Received]:
        """One target's resync at a time: the others of a receive go back at once, to whichever replica asks next
        (a receive returns up to 10 messages of several groups; a resync is a whole target's observe)."""
        resyncs = [m for m in messages if m.item is not None and m.item.kind == workitems.RESYNC]
        if len(resyncs) <= 1:
            return messages
        back = resyncs[1:]
        self.queue.release([m.handle for m in back], 0)
        return [m for m in messages if m not in back]

    def process(self, messages: list[Received], received_at: float) -> None:
        messages = self.spread(messages)
        heartbeat = Heartbeat(self.queue, [m.handle for m in messages], received_at, self.work).start()
        self.current = heartbeat
        done: list[Received] = []
        later: list[tuple[Received, float]] = []
        try:
            by_target: dict[str | None, list[Received]] = defaultdict(list)
            for m in messages:
                if m.item is None:
                    self.work.items.labels("unknown", "dropped").inc()
                    done.append(m)
                    continue
                if self.fleet is not None and m.item.target not in self.fleet.groups:
                    # another replica's (newer manifests, another --target): back to the queue, never deleted
                    log.warning("work item for target %s, which this replica does not serve; back to the queue in "
                                "%gs", m.item.target, self.interval, extra=_ctx("work"))
                    later.append((m, self.interval))
                    continue
                by_target[m.item.target].append(m)
            for target, ms in by_target.items():
                resyncs = [m for m in ms if m.item.kind == workitems.RESYNC]   # type: ignore[union-attr]
                objects = [m for m in ms if m.item.kind == workitems.OBJECT]   # type: ignore[union-attr]
                if resyncs:
                    if self.resync_target(target, resyncs[0].message_id):
                        done += resyncs
                    else:   # a target that cannot be assumed or observed: again after --interval, as a pass would
                        later += [(m, self.interval) for m in resyncs]
                if objects:
                    refs = {r for m in objects for r in m.item.refs}   # type: ignore[union-attr]
                    retry = self.reconcile_objects(target, refs)
                    (done.extend(objects) if retry is None else later.extend((m, retry) for m in objects))
        finally:
            heartbeat.stop()
            self.current = None
        if not heartbeat.healthy():   # the items may be someone else's by now: neither delete nor release them
            for m in messages:
                self.work.items.labels(m.item.kind if m.item else "unknown", "lapsed").inc()
            log.warning("the visibility of %d work items lapsed during their reconcile; left to the queue",
                        len(messages), extra=_ctx("work"))
            return
        self.queue.delete([m.handle for m in done])
        for m in done:
            if m.item is not None:
                self.work.items.labels(m.item.kind, "done").inc()
        for m, after in later:
            self.queue.release([m.handle], after)
            self.work.items.labels(m.item.kind if m.item else "unknown", "retry").inc()

    def resync_target(self, target: str | None, cause: str) -> bool:
        """Plan the whole target; enqueue an object item per unit that is not in sync. Writes nothing."""
        assert self.fleet is not None and self.connections is not None
        started = time.monotonic()
        _current["id"] = uuid.uuid4().hex[:12]
        try:
            aws = self.connections[target]
            if target is not None:
                why = run.reachable(aws, self.fleet.targets[target])
                if why:
                    log.error("target %s: %s", target, why, extra=_ctx("assume", f"Target/{target}"))
                    return False
            result = reconcile.make(aws, self.fleet.groups[target], self.settings)
            result.plan = fleet_.relabel_plan(result.plan, target)
            # a roll is no object: it goes as its TaskDefinition, whose rollout plans it again
            drifted = {owner_of(c) for c in result.plan.changes if c.action != "delete"}
            owners = _rollout_owners(run.FleetResult({target: result}, {}))
            self.table.record(Pass(result.plan, None, set(), {}, owners), self.backoff, time.monotonic(), time.time(),
                              {o.ref for o in self.fleet.groups[target].objects})
            if drifted:
                self.queue.send(workitems.object_items(target, drifted, self.units.get(target, {}), cause), self.units)
            self._record("resync", target, (), started)
            log.info("resync of %s: %d objects, %d not in sync", target or "the own account",
                     len(self.fleet.groups[target].objects), len(drifted), extra=_ctx("resync"))
            self.metrics.last_success.set(time.time())
            return True
        except Exception as exc:
            log.error("resync of %s failed: %s: %s", target or "the own account", error_code(exc), scrub(str(exc)),
                      extra=_ctx("resync"))
            return False
        finally:
            _current["id"] = "-"

    def reconcile_objects(self, target: str | None, refs: set[str]) -> float | None:
        """Reconcile these objects (and what their plan needs) with writes. None: done; else retry in seconds."""
        assert self.fleet is not None and self.connections is not None
        started = time.monotonic()
        _current["id"] = uuid.uuid4().hex[:12]
        desired = self.fleet.groups[target].subset(refs)
        scope = {o.ref for o in desired.objects}
        owners: dict[str, str] = {}
        try:
            aws = self.connections[target]
            if aws.known is not None:   # an item names objects, not what changed: an event's may have
                for p in desired.parameters.values():
                    aws.known.forget((p.region, p.name))
            if target is not None:
                why = run.reachable(aws, self.fleet.targets[target])
                if why:
                    log.error("target %s: %s", target, why, extra=_ctx("assume", f"Target/{target}"))
                    return self.interval
            result = reconcile.make(aws, desired, self.settings)
            result.plan = fleet_.relabel_plan(result.plan, target)
            owners = _rollout_owners(run.FleetResult({target: result}, {}))   # before the gate
            self.rollout_owners.update(owners)
            gated, fingerprints = self.gate(result)
            report = reconcile.execute(aws, result, self.may_write, self._on_outcome,
                                       rollout_timeout=self.settings.rollout_timeout)
            outcome = self.table.record(Pass(result.plan, report, gated, fingerprints, owners), self.backoff,
                                        time.monotonic(), time.time(), scope)
            self.metrics.reconcile_total.labels(outcome).inc()
            self._record("object", target, tuple(sorted(scope)), started)
        except Exception as exc:
            self.metrics.reconcile_total.labels("error").inc()
            log.error("reconcile of %s failed: %s: %s", ", ".join(sorted(refs)), error_code(exc), scrub(str(exc)),
                      extra=_ctx("reconcile"))
            return 5.0
        finally:
            self.metrics.reconcile_duration.observe(time.monotonic() - started)
            self.metrics.set_resources(self.table.states())
            _current["id"] = "-"
            self.applied = 0
        now = time.monotonic()
        # a failed roll backs off under its service's ref: the item of its TaskDefinition waits for it too
        due = [e.retry_at for ref, e in self.backoff.entries.items()
               if (ref in scope or owners.get(ref) in scope) and e.retry_at is not None]
        return max(1.0, min(due) - now) if due else None

    def _record(self, kind: str, target: str | None, refs: tuple[str, ...], started: float) -> None:
        if self.recorder is not None:
            self.recorder(kind, target or "", refs, started, time.monotonic())

    def status(self) -> dict[str, Any]:
        out = super().status()
        out["work_queue"] = {"queue": self.queue.url, "mode": UNREADABLE if self.queue_reason else QUEUE,
                             "reason": self.queue_reason, "visibility_timeout": self.queue.visibility,
                             "enqueues_resyncs": self.leading()}
        return out
