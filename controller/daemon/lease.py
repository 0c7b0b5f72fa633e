"""Leader election through one DynamoDB item, as client-go's leaderelection does it with a Lease.

The item (key ``name``) holds the ``holder`` id, a ``version`` bumped by every write (the
compare-and-swap token), a ``fence`` counter bumped on every change of holder, and ``expires``
(wall clock, for people reading the table). Every write is conditional on the version last seen,
so two replicas can never both win. A follower takes over only after it has watched the same
version for a whole lease duration on its own monotonic clock — clocks of different hosts are
never compared. The leader renews every retry period and counts itself leader only while its last
successful renewal, timed from before the request, is younger than the renew deadline; a failed
renewal stops writes at once. ``release`` empties the holder so a successor need not wait.

``guard()`` hands the AWS edge a write guard (``aws.guard``): every write attempt, retries and the
later calls of a multi-call write included, starts only while the lease still covers the whole attempt
— until the earliest moment a successor could take over: its own clock starts when it first reads our
last renewal, which we timed from before we sent it, and runs a whole lease duration.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import secrets
import threading
import time
from typing import Any, Callable

from botocore.exceptions import BotoCoreError, ClientError

from controller.aws.guard import Guard
from controller.aws.session import Aws, error_code

log = logging.getLogger("ecs_secrets.lease")
LEASE_DURATION, RENEW_DEADLINE, RETRY_PERIOD = 15.0, 10.0, 2.0


def lease_aws(aws: Aws, profile: str | None) -> Aws:
    """The lease's own clients: a renewal must fail fast, well inside the renew deadline, rather than hang
    in retries; and its writes are never held back by the guard it feeds."""
    from botocore.config import Config
    own = Aws(region=aws.region, profile=profile, endpoint_url=aws.endpoint_url)
    own.config = own.config.merge(Config(connect_timeout=2, read_timeout=3,
                                         retries={"mode": "standard", "max_attempts": 2}))
    return own


def lease_name(owner: str) -> str:
    """One lease per owner id: every writer of the same owner — replicas and one-shot runs — shares it."""
    return f"ecs-secrets/{owner}"


def holder_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


class Lease:
    def __init__(self, aws: Aws, table: str, name: str, holder: str | None = None,
                 duration: float = LEASE_DURATION, renew_deadline: float = RENEW_DEADLINE,
                 retry_period: float = RETRY_PERIOD, clock: Callable[[], float] = time.monotonic,
                 on_change: Callable[[bool], None] = lambda leading: None) -> None:
        if not retry_period < renew_deadline < duration:
            raise ValueError("need retry period < renew deadline < lease duration")
        self.aws, self.table, self.name = aws, table, name
        self.holder = holder or holder_id()
        self.duration, self.renew_deadline, self.retry_period = duration, renew_deadline, retry_period
        self.clock, self.on_change = clock, on_change
        self.fence = 0
        self.current_holder: str | None = None   # who the lease item named when we last read or wrote it
        self._leading = False
        self._renew_failed = False
        self._renewed_at = float("-inf")
        self._version = 0
        self._observed: tuple[str, int] | None = None
        self._observed_at = 0.0
        self._table_ready = False
        self._stop = threading.Event()
        self._last_error: str | None = None
        self.first_round = threading.Event()   # set once the first campaign has come back, won or not
        self._thread: threading.Thread | None = None

    def is_leader(self) -> bool:
        return self._leading and not self._renew_failed and self.clock() - self._renewed_at < self.renew_deadline

    def holder_seen(self) -> str | None:
        """Who held the lease when we last looked (a follower's view)."""
        return self._observed[0] if self._observed else None

    def covered(self) -> float:
        """Seconds until a successor could take over (0 unless we lead): a write must be over by then."""
        if not self.is_leader():
            return 0.0
        return max(0.0, self._renewed_at + self.duration - self.clock())

    def guard(self) -> Guard:
        """A write attempt lasts at most half the lease; 5% of it is the margin for clock-rate drift."""
        return Guard(self.covered, attempt_budget=self.duration / 2, margin=self.duration / 20,
                     what=f"the lease {self.table}/{self.name}")

    # --- the loop --------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="lease", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop campaigning and give the lease up, so that a successor does not wait for expiry."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.retry_period + 10)
        self.release()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.step()
                self._last_error = None
            except Exception as exc:  # the election must outlive any error; the next step retries
                self._failed(exc)
            self.first_round.set()
            pause = self.retry_period if self._leading else self.retry_period * random.uniform(1.0, 1.2)
            self._stop.wait(pause)

    def step(self) -> bool:
        """One round: renew if leading, else try to acquire. Returns ``is_leader()``."""
        if not self._table_ready:
            self._ensure_table()
        if self._leading:
            self._renew()
        else:
            self._campaign()
        return self.is_leader()

    # --- the writes ------------------------------------------------------------------------

    def _renew(self) -> None:
        started = self.clock()
        if started - self._renewed_at >= self.renew_deadline:
            self._lose("could not renew within the renew deadline")
            return
        try:
            self._write(self._version + 1, self.fence, "holder = :me AND version = :v",
                        {":me": {"S": self.holder}, ":v": {"N": str(self._version)}})
        except ClientError as exc:
            if error_code(exc) != "ConditionalCheckFailedException":
                raise
            item = self._read()   # a renewal whose reply was lost still counts: is the lease still ours?
            if item is None or item.get("holder") != self.holder:
                self._lose("another replica holds the lease")
                return
            self._version = int(item["version"])   # ours: renew on this version at the next round
            return
        self._renewed_at, self._renew_failed = started, False
        self._version += 1
        self.current_holder = self.holder

    def _campaign(self) -> None:
        item = self._read()
        now = self.clock()
        if item is not None and item.get("holder"):
            seen = (item["holder"], int(item["version"]))
            if seen != self._observed:
                self._observed, self._observed_at = seen, now
                return
            if now - self._observed_at < self.duration:
                return
        self._acquire(item, now)

    def _acquire(self, item: dict | None, started: float) -> None:
        version, fence = (int(item["version"]), int(item["fence"])) if item else (0, 0)
        condition, values = ("version = :v", {":v": {"N": str(version)}}) if item else ("attribute_not_exists(#n)", {})
        try:
            self._write(version + 1, fence + 1, condition, values)
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                return  # someone else was faster; watch the new holder
            raise
        self._version, self.fence, self._renewed_at, self._renew_failed = version + 1, fence + 1, started, False
        self.current_holder = self.holder
        self._set_leading(True, f"acquired the lease (fence {self.fence})")

    def _write(self, version: int, fence: int, condition: str, values: dict) -> None:
        item = {"name": {"S": self.name}, "holder": {"S": self.holder}, "version": {"N": str(version)},
                "fence": {"N": str(fence)}, "expires": {"N": f"{time.time() + self.duration:.3f}"},
                "duration": {"N": str(self.duration)}}
        extra: dict[str, Any] = {"ExpressionAttributeValues": values} if values else {}
        if "#n" in condition:
            extra["ExpressionAttributeNames"] = {"#n": "name"}
        self._dynamodb().put_item(TableName=self.table, Item=item, ConditionExpression=condition, **extra)

    def release(self) -> None:
        if not self._leading:
            return
        self._set_leading(False, "releasing the lease")
        self.current_holder = None
        try:
            self._dynamodb().update_item(
                TableName=self.table, Key={"name": {"S": self.name}},
                UpdateExpression="SET holder = :empty, version = :next, expires = :zero",
                ConditionExpression="holder = :me AND version = :v",
                ExpressionAttributeValues={":empty": {"S": ""}, ":next": {"N": str(self._version + 1)},
                                           ":zero": {"N": "0"}, ":me": {"S": self.holder},
                                           ":v": {"N": str(self._version)}})
        except (ClientError, BotoCoreError) as exc:
            log.warning("could not release the lease: %s", error_code(exc), extra=_ctx(self))

    # --- helpers ---------------------------------------------------------------------------

    def _read(self) -> dict | None:
        raw = self._dynamodb().get_item(TableName=self.table, Key={"name": {"S": self.name}},
                                        ConsistentRead=True).get("Item")
        item = None if raw is None else {k: next(iter(v.values())) for k, v in raw.items()}
        self.current_holder = (item or {}).get("holder") or None   # "" once released
        return item

    def _failed(self, exc: Exception) -> None:
        if self._leading:
            self._renew_failed = True   # no write until a renewal succeeds again
        code, self._last_error = self._last_error, error_code(exc)
        level = logging.DEBUG if code == self._last_error else logging.WARNING   # once per new error, not every 2s
        log.log(level, "lease %s failed: %s", "renewal" if self._leading else "campaign", self._last_error,
                extra=_ctx(self))

    def _lose(self, why: str) -> None:
        self._observed = None
        self._set_leading(False, f"lost the lease: {why}")

    def _set_leading(self, leading: bool, message: str) -> None:
        changed = leading != self._leading
        self._leading = leading
        if changed:
            (log.warning if message.startswith("lost") else log.info)(message, extra=_ctx(self))
            self.on_change(leading)

    def _dynamodb(self) -> Any:
        return self.aws.client("dynamodb")

    def _ensure_table(self) -> None:
        ddb = self._dynamodb()
        try:
            ddb.describe_table(TableName=self.table)
        except ClientError as exc:
            if error_code(exc) != "ResourceNotFoundException":
                raise
            log.info("creating lease table %s", self.table, extra=_ctx(self))
            try:
                ddb.create_table(TableName=self.table, BillingMode="PAY_PER_REQUEST",
                                 AttributeDefinitions=[{"AttributeName": "name", "AttributeType": "S"}],
                                 KeySchema=[{"AttributeName": "name", "KeyType": "HASH"}])
            except ClientError as again:
                if error_code(again) != "ResourceInUseException":  # another replica created it first
                    raise
            ddb.get_waiter("table_exists").wait(TableName=self.table, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
        self._table_ready = True


def _ctx(lease: Lease) -> dict[str, str]:
    return {"object": f"lease/{lease.table}/{lease.name}", "action": "lease", "reconcile_id": "-"}
