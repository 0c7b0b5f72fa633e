"""Client-side token buckets per API, so that one reconcile stays under AWS's request quotas.

AWS throttles per account and Region with token buckets of its own; a reconcile of thousands of objects
that bursts past them spends its time in ThrottlingException retries (and throttles every other client
of the account). So every HTTP attempt (botocore's ``before-send`` event, retries included) first takes
a token from the bucket of its API. The defaults sit at the published quotas where AWS publishes them:

- Parameter Store: 40 TPS by default per account and Region, shared by GetParameter(s) and PutParameter
  (the "standard throughput" of the SSM API reference); we share it with every SSM call, DescribeParameters too.
- ECS (request-throttling page of the ECS API reference): task-definition reads 20 TPS (burst 50),
  RegisterTaskDefinition/DeregisterTaskDefinition 1 TPS (burst 20), TagResource/UntagResource 10 (20).
- IAM, KMS, Secrets Manager and STS publish no per-action numbers for these calls; the defaults are
  conservative guesses, and IAM's is the lowest because IAM's quota is global to the account.

``ECS_SECRETS_RATE_LIMITS`` or ``--rate-limit`` change them: ``off`` lifts them all;
``NAME=TPS[/BURST]`` or ``NAME=off`` for one bucket (``ssm``, ``ecs-read``, ``ecs-write``, ``ecs-tag``,
``ecs``, ``iam``, ``kms``, ``secretsmanager``, ``sts``) or every bucket of a service (``ecs=off``);
comma-separated, later entries win.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, replace
from typing import Callable, Iterable

from controller.vocab.problems import ControllerError

ENV = "ECS_SECRETS_RATE_LIMITS"


@dataclass(frozen=True)
class Limit:
    name: str
    service: str
    tps: float | None                      # None: unlimited
    burst: float
    operations: frozenset[str] = frozenset()   # empty: every other operation of the service
    what: str = ""                              # for a person: why we wait ("the ECS registration quota")


DEFAULTS: tuple[Limit, ...] = (
    Limit("ssm", "ssm", 40, 40, what="the Parameter Store quota"),
    Limit("ecs-read", "ecs", 20, 50, frozenset({"DescribeTaskDefinition", "ListTaskDefinitions",
                                                 "ListTaskDefinitionFamilies"}), "the ECS task-definition read quota"),
    Limit("ecs-write", "ecs", 1, 20, frozenset({"RegisterTaskDefinition", "DeregisterTaskDefinition"}),
          "the ECS registration quota"),
    Limit("ecs-tag", "ecs", 10, 20, frozenset({"TagResource", "UntagResource"}), "the ECS tagging quota"),
    Limit("ecs", "ecs", 20, 50, what="the ECS API quota"),
    Limit("iam", "iam", 10, 20, what="the IAM quota"),
    Limit("kms", "kms", 50, 50, what="the KMS quota"),
    Limit("secretsmanager", "secretsmanager", 50, 50, what="the Secrets Manager quota"),
    Limit("sts", "sts", 50, 50, what="the STS quota"),
)


class BadRateLimit(ControllerError):
    pass


def parse(spec: str | None, defaults: Iterable[Limit] = DEFAULTS) -> tuple[Limit, ...]:
    """The defaults with ``spec`` applied (see the module docstring for its form)."""
    limits = list(defaults)
    for item in (spec or "").replace(";", ",").split(","):
        item = item.strip()
        if not item:
            continue
        if item.lower() in ("off", "none", "unlimited"):
            limits = [replace(lim, tps=None) for lim in limits]
            continue
        key, sep, value = item.partition("=")
        hits = [i for i, lim in enumerate(limits) if key.strip() in (lim.name, lim.service, "*")]
        if not sep or not hits:
            names = ", ".join(lim.name for lim in limits)
            raise BadRateLimit(f"rate limit {item!r}: expected off, NAME=TPS[/BURST] or NAME=off with NAME one "
                               f"of {names} (or a service)")
        tps, burst = _value(item, value.strip())
        for i in hits:
            limits[i] = replace(limits[i], tps=tps, burst=burst or limits[i].burst)
    return tuple(limits)


def _value(item: str, value: str) -> tuple[float | None, float | None]:
    if value.lower() in ("off", "0", "none", "unlimited"):
        return None, None
    rate, _, burst = value.partition("/")
    try:
        tps, size = float(rate), float(burst) if burst else None
    except ValueError:
        raise BadRateLimit(f"rate limit {item!r}: TPS and BURST are numbers, e.g. ssm=40/40") from None
    if tps <= 0 or (size is not None and size < 1):
        raise BadRateLimit(f"rate limit {item!r}: TPS must be > 0 and BURST >= 1 (or use NAME=off)")
    return tps, size


class Bucket:
    """A token bucket that reserves: a caller takes its token now and sleeps off any deficit outside the lock."""

    def __init__(self, tps: float, burst: float, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.tps, self.burst = tps, burst
        self._tokens, self._clock, self._sleep = burst, clock, sleep
        self._last = clock()
        self._lock = threading.Lock()

    def take(self) -> float:
        wait = self.reserve()
        if wait:
            self._sleep(wait)
        return wait

    def reserve(self) -> float:
        """Take a token now; the seconds the caller must sleep before using it."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.tps) - 1
            self._last = now
            return -self._tokens / self.tps if self._tokens < 0 else 0.0


class RateLimiter:
    """One bucket per Limit; ``wait(service, operation)`` blocks until that API may be called.
    ``on_wait(limit, seconds)``, when set, hears of every wait before it starts (the progress line)."""

    def __init__(self, limits: Iterable[Limit], clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.limits = tuple(limits)
        self.on_wait: Callable[[Limit, float], None] | None = None
        self._sleep = sleep
        self._limit_of: dict[int, Limit] = {}
        self._buckets = {lim.name: Bucket(lim.tps, lim.burst, clock, sleep) for lim in self.limits if lim.tps}
        self.waited = 0.0
        self._chosen: dict[tuple[str, str], Bucket | None] = {}

    def bucket(self, service: str, operation: str) -> Bucket | None:
        key = (service, operation)
        if key not in self._chosen:
            self._chosen[key] = self._find(service, operation)
        return self._chosen[key]

    def _find(self, service: str, operation: str) -> Bucket | None:
        specific = next((lim for lim in self.limits if lim.service == service and operation in lim.operations), None)
        chosen = specific or next((lim for lim in self.limits if lim.service == service and not lim.operations), None)
        bucket = self._buckets.get(chosen.name) if chosen else None
        if bucket is not None:
            self._limit_of[id(bucket)] = chosen
        return bucket

    def wait(self, service: str, operation: str) -> float:
        bucket = self.bucket(service, operation)
        waited = bucket.reserve() if bucket else 0.0
        if waited:
            if self.on_wait is not None:
                self.on_wait(self._limit_of[id(bucket)], waited)
            self._sleep(waited)
        self.waited += waited
        return waited
