"""`run --events QUEUE_URL`: the SQS queue EventBridge feeds, read in long polls, and the fallback to polling.

``Inbox.next()`` long-polls (batches of 10), then drains what is already waiting, so that a burst for
one object becomes one reconcile; it sorts every message: malformed (not an EventBridge event: logged
without its body, counted, deleted), irrelevant (of no object of ours: counted, deleted) or relevant
(kept until ``done``: deleted only after the reconcile of its objects finished, so a crash means
redelivery, not loss). A queue that cannot be read (gone, access denied, unreachable) switches the
daemon to polling at ``--interval``; each interval it tries the queue again and switches back.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from controller.aws.guard import LeaseLost
from controller.aws.session import Aws, error_code
from controller.core import events as events_
from controller.core.desired import Desired
from controller.daemon.metrics import Metrics

log = logging.getLogger("ecs_secrets.events")
BATCH = 10            # ReceiveMessage's MaxNumberOfMessages can be at most 10
WAIT = 20             # ReceiveMessage's WaitTimeSeconds can be at most 20: the longest (cheapest) long poll
WAIT_ENV = "ECS_SECRETS_EVENTS_WAIT"   # a shorter long poll (0-20 s), for tests and demos
DRAIN = 1000          # at most this many messages a round: a burst is one reconcile, memory stays bounded
EVENTS, POLLING = "events", "polling"


@dataclass
class Batch:
    refs: set[str] = field(default_factory=set)
    handles: list[str] = field(default_factory=list)   # relevant messages, deleted after their reconcile
    parameters: set[tuple[str, str]] = field(default_factory=set)   # (Region, name) the events say changed


class Inbox:
    def __init__(self, aws: Aws, url: str, metrics: Metrics, wait: int | None = None) -> None:
        if wait is None:
            wait = max(0, min(WAIT, int(os.environ.get(WAIT_ENV) or WAIT)))
        self.url, self.metrics, self.wait = url, metrics, wait
        parsed = events_.queue_url(url) if url.startswith("http") else None
        region = parsed.region if parsed and parsed.region else aws.region
        self.poll_client = aws.client("sqs", region, read_timeout=wait + 10)  # outlasts the long poll
        self.client = aws.client("sqs", region)
        self.index: events_.Index | None = None
        self.account: str | None = None
        self.mode, self.reason, self.since = EVENTS, None, time.time()
        self.counts = {r: 0 for r in ("received", "relevant", "irrelevant", "malformed")}
        self.rounds = 0
        metrics.events_mode.labels(EVENTS).set(1)
        metrics.events_mode.labels(POLLING).set(0)

    def follow(self, desired: Desired) -> None:
        self.index = events_.Index(desired)

    # --- reading ------------------------------------------------------------------------------

    def next(self) -> Batch | None:
        """One round: a long poll, then what is waiting already. None: the queue cannot be read."""
        batch, first = Batch(), True
        try:
            while len(batch.handles) < DRAIN:
                messages = self._receive(self.wait if first else 0)
                first = False
                if not messages:
                    break
                self._sort(messages, batch)
        except (ClientError, BotoCoreError) as exc:
            self.fall_back(exc)
            return None if not batch.handles else batch   # what was read is still reconciled, then deleted
        self._recovered()
        return batch

    def probe(self) -> bool:
        """While polling: can the queue be read again? (GetQueueAttributes: reads no message)"""
        try:
            self.client.get_queue_attributes(QueueUrl=self.url, AttributeNames=["QueueArn"])
        except (ClientError, BotoCoreError) as exc:
            self.reason = _why(exc)
            return False
        self._recovered()
        return True

    def _receive(self, wait: int) -> list[dict[str, Any]]:
        reply = self.poll_client.receive_message(QueueUrl=self.url, MaxNumberOfMessages=BATCH, WaitTimeSeconds=wait)
        return reply.get("Messages") or []

    def _sort(self, messages: list[dict[str, Any]], batch: Batch) -> None:
        drop = []
        for m in messages:
            self._count("received")
            try:
                touches = events_.parse(m.get("Body") or "")
            except events_.Malformed as exc:   # its body could hold anything: never logged
                log.warning("dropped a malformed message %s: %s", m.get("MessageId", "?"), exc,
                            extra={"object": "-", "action": "events"})
                self._count("malformed")
                drop.append(m["ReceiptHandle"])
                continue
            refs = set().union(*(self.index.refs(t, self.account) for t in touches)) if self.index else set()
            if refs:
                self._count("relevant")
                batch.refs |= refs
                batch.handles.append(m["ReceiptHandle"])
                batch.parameters |= {self.index.parameter(t) for t in touches if t.kind == events_.PARAMETER}
            else:
                self._count("irrelevant")
                drop.append(m["ReceiptHandle"])
        self.delete(drop)

    def _count(self, result: str) -> None:
        self.counts[result] += 1
        self.metrics.events_total.labels(result).inc()

    # --- acknowledging ------------------------------------------------------------------------

    def delete(self, handles: list[str]) -> None:
        """After the reconcile of their objects; a delete that fails means one more (no-op) reconcile."""
        for start in range(0, len(handles), BATCH):
            chunk = handles[start:start + BATCH]
            try:
                reply = self.client.delete_message_batch(QueueUrl=self.url, Entries=[
                    {"Id": str(i), "ReceiptHandle": h} for i, h in enumerate(chunk)])
            except (ClientError, BotoCoreError, LeaseLost) as exc:
                log.warning("could not delete %d messages (%s); they come back after the queue's visibility "
                            "timeout", len(chunk), _why(exc), extra={"object": "-", "action": "events"})
                continue
            for failed in reply.get("Failed") or []:
                log.warning("could not delete a message: %s", failed.get("Code"), extra={"object": "-",
                                                                                         "action": "events"})

    def release(self, handles: list[str], after: float) -> None:
        """A reconcile that failed as a whole: its messages come back in ``after`` seconds, not at once."""
        for start in range(0, len(handles), BATCH):
            chunk = handles[start:start + BATCH]
            try:
                self.client.change_message_visibility_batch(QueueUrl=self.url, Entries=[
                    {"Id": str(i), "ReceiptHandle": h, "VisibilityTimeout": int(min(after, 43200))}
                    for i, h in enumerate(chunk)])
            except (ClientError, BotoCoreError):
                pass   # they come back after the queue's own visibility timeout

    # --- the mode -----------------------------------------------------------------------------

    def fall_back(self, exc: BaseException) -> None:
        self.reason = _why(exc)
        if self.mode == POLLING:
            return
        self._set_mode(POLLING)
        log.error("cannot read the events queue %s (%s); polling every --interval until it can be read again",
                  self.url, self.reason, extra={"object": "-", "action": "events"})

    def _recovered(self) -> None:
        if self.mode == EVENTS:
            return
        self._set_mode(EVENTS)
        self.reason = None
        log.info("the events queue %s can be read again; back to events", self.url,
                 extra={"object": "-", "action": "events"})

    def _set_mode(self, mode: str) -> None:
        self.mode, self.since = mode, time.time()
        self.metrics.events_mode.labels(mode).set(1)
        self.metrics.events_mode.labels(EVENTS if mode == POLLING else POLLING).set(0)

    def status(self) -> dict[str, Any]:
        from controller.daemon.status import iso
        return {"queue": self.url, "mode": self.mode, "since": iso(self.since), "reason": self.reason,
                "messages": dict(self.counts), "event_reconciles": self.rounds}


def _why(exc: BaseException) -> str:
    """The error code (AccessDenied, AWS.SimpleQueueService.NonExistentQueue, …) or the connection failure."""
    return error_code(exc)
