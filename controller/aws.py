"""The AWS edge: one session, one client per service and Region, every call counted once.

botocore already retries transient errors (standard mode), honours ``AWS_ENDPOINT_URL``, decodes
IAM policy documents and emits ``after-call`` events; we lean on all of it.
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any, Callable

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

THROTTLING = frozenset({"Throttling", "ThrottlingException", "ThrottledException", "RequestLimitExceeded",
                        "TooManyRequestsException", "RequestThrottled", "RequestThrottledException"})
Listener = Callable[[str, str, str], None]  # (service, operation, outcome)


def error_code(exc: BaseException) -> str:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", "Unknown"))
    return type(exc).__name__


class Aws:
    def __init__(self, region: str | None = None, profile: str | None = None,
                 endpoint_url: str | None = None, max_attempts: int = 8) -> None:
        self.session = boto3.session.Session(profile_name=profile, region_name=region)
        self.region = self.session.region_name or "us-east-1"
        self.endpoint_url = endpoint_url
        self.config = Config(retries={"mode": "standard", "max_attempts": max_attempts},
                             user_agent_extra="ecs-secrets", connect_timeout=5, read_timeout=30,
                             max_pool_connections=16)
        self.calls: Counter[tuple[str, str, str]] = Counter()
        self.listeners: list[Listener] = []
        self._clients: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()

    def client(self, service: str, region: str | None = None) -> Any:
        key = (service, region or self.region)
        with self._lock:  # sessions are not thread-safe; clients are
            if key not in self._clients:
                client = self.session.client(service, region_name=key[1], endpoint_url=self.endpoint_url,
                                             config=self.config)
                client.meta.events.register("after-call", self._after_call)
                client.meta.events.register("after-call-error", self._after_call_error)
                self._clients[key] = client
            return self._clients[key]

    def _after_call(self, http_response: Any, parsed: dict, model: Any, **_: Any) -> None:
        code = parsed.get("Error", {}).get("Code") if http_response.status_code >= 300 else None
        self._count(model.service_model.service_name, model.name, code or "success")

    def _after_call_error(self, exception: BaseException, model: Any, **_: Any) -> None:
        self._count(model.service_model.service_name, model.name, type(exception).__name__)

    def _count(self, service: str, operation: str, outcome: str) -> None:
        with self._lock:
            self.calls[(service, operation, outcome)] += 1
        for listener in self.listeners:
            listener(service, operation, outcome)

    def total_calls(self) -> int:
        return sum(self.calls.values())
