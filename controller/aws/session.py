"""The AWS edge: one session, one client per service and Region, every call counted once.

botocore already retries transient errors (standard mode), honours ``AWS_ENDPOINT_URL``, decodes
IAM policy documents and emits ``after-call`` events; we lean on all of it. Every HTTP attempt first
waits for a token of its API's bucket (``ratelimit``; ``before-send`` fires per attempt, retries too),
then, when a write guard is set (``guard``: the daemon's lease, the one-shot's lock), every write attempt
is refused unless the lease still covers it.
"""

from __future__ import annotations

import os
import threading
from collections import Counter
from functools import partial
from typing import Any, Callable

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from controller.aws import decrypting, paging, ratelimit, replies
from controller.aws import guard as guard_

THROTTLING = frozenset({"Throttling", "ThrottlingException", "ThrottledException", "RequestLimitExceeded",
                        "TooManyRequestsException", "RequestThrottled", "RequestThrottledException"})
Listener = Callable[[str, str, str], None]  # (service, operation, outcome)
_ONE_ATTEMPT = Config(retries={"mode": "standard", "total_max_attempts": 1})


def error_code(exc: BaseException) -> str:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", "Unknown"))
    return type(exc).__name__


class Aws:
    def __init__(self, region: str | None = None, profile: str | None = None,
                 endpoint_url: str | None = None, max_attempts: int = 8, rate_limits: str | None = None) -> None:
        """``rate_limits``: overrides of the default token buckets (``ratelimit``); None reads ECS_SECRETS_RATE_LIMITS."""
        self.session = boto3.session.Session(profile_name=profile, region_name=region)
        self.session.events.register("creating-client-class", paging.add_page_cap)  # no endless listings
        self.session.events.register("creating-client-class", replies.add_reply_checks)  # no bare KeyError
        self.region = self.session.region_name or "us-east-1"
        self.endpoint_url = endpoint_url
        self.config = Config(retries={"mode": "standard", "max_attempts": max_attempts},
                             user_agent_extra="ecs-secrets", connect_timeout=5, read_timeout=30,
                             max_pool_connections=16)
        self.calls: Counter[tuple[str, str, str]] = Counter()
        self.listeners: list[Listener] = []
        self._clients: dict[tuple[str, ...], Any] = {}
        self._lock = threading.Lock()
        self.guard: guard_.Guard | None = None
        self.limiter = ratelimit.RateLimiter(ratelimit.parse(
            os.environ.get(ratelimit.ENV) if rate_limits is None else rate_limits))

    def client(self, service: str, region: str | None = None, retries: bool = True,
               read_timeout: float | None = None) -> Any:
        """``retries=False``: one attempt only, for a write that must not be re-sent blindly after a
        lost reply (``idempotency.write_once`` reads the state first, then decides). ``read_timeout``: for
        a call that waits on purpose (an SQS long poll), longer than any write guard's attempt budget."""
        key = (service, region or self.region) + (() if retries else ("once",)) + \
            (() if read_timeout is None else (f"read={read_timeout}",))
        with self._lock:  # sessions are not thread-safe; clients are
            if key not in self._clients:
                config = self.config if retries else self.config.merge(_ONE_ATTEMPT)
                if read_timeout is not None:
                    config = config.merge(Config(read_timeout=read_timeout))
                client = self.session.client(service, region_name=key[1], endpoint_url=self.endpoint_url,
                                             config=config)
                client.meta.events.register("before-send", partial(self._throttle, service))
                client.meta.events.register("before-send", self._guard)  # after the rate limiter's wait
                client.meta.events.register("after-call", self._after_call)
                client.meta.events.register("after-call", decrypting.guard)  # before the error is raised
                client.meta.events.register("after-call-error", partial(self._after_call_error, service))
                self._clients[key] = client
            return self._clients[key]

    def _throttle(self, service: str, event_name: str, **_: Any) -> None:
        self.limiter.wait(service, event_name.rsplit(".", 1)[-1])  # returns None: botocore sends the request

    def set_guard(self, guard: guard_.Guard) -> None:
        """Guard every write from now on; each attempt lasts at most ``guard.attempt_budget`` seconds."""
        connect = min(self.config.connect_timeout, guard.attempt_budget / 3)
        read = min(self.config.read_timeout, guard.attempt_budget - connect)
        with self._lock:
            self.guard = guard
            self.config = self.config.merge(Config(connect_timeout=connect, read_timeout=read))
            self._clients.clear()   # made with the old timeouts

    def _guard(self, event_name: str, **_: Any) -> None:
        operation = event_name.rsplit(".", 1)[-1]
        if self.guard is not None and guard_.is_write(operation):
            self.guard.check(operation)

    def _after_call(self, http_response: Any, parsed: dict, model: Any, **_: Any) -> None:
        code = parsed.get("Error", {}).get("Code") if http_response.status_code >= 300 else None
        self._count(model.service_model.service_name, model.name, code or "success")

    def _after_call_error(self, service: str, exception: BaseException, event_name: str, **_: Any) -> None:
        # botocore passes no model here: the event is "after-call-error.<service-id>.<Operation>", and a
        # service id ("secrets-manager") is not the service name the other calls are counted under
        self._count(service, event_name.rsplit(".", 1)[-1], type(exception).__name__)

    def _count(self, service: str, operation: str, outcome: str) -> None:
        with self._lock:
            self.calls[(service, operation, outcome)] += 1
        for listener in self.listeners:
            listener(service, operation, outcome)

    def total_calls(self) -> int:
        return sum(self.calls.values())
