"""The daemon's Prometheus metrics, in a registry of their own (names from SPEC, prefixed ecs_secrets_).

AWS calls are counted from ``Aws.listeners`` (one per API call, after botocore's retries); throttles
from botocore's ``needs-retry`` event, once per attempt, so the throttles botocore hid are seen too.
Labels carry kinds, names of states, services, operations and error codes — never a value.
"""

from __future__ import annotations

from typing import Any, Iterable

import prometheus_client
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from controller.aws.session import THROTTLING, Aws
from controller.core.plan import KIND_ORDER

PREFIX = "ecs_secrets_"
STATES = ("in_sync", "drifted", "error", "blocked")
RESULTS = ("success", "partial", "error")


class Metrics:
    def __init__(self) -> None:
        prometheus_client.disable_created_metrics()  # *_created series double the page and help nobody here
        self.registry = r = CollectorRegistry()
        self.reconcile_total = Counter(f"{PREFIX}reconcile_total", "Reconciles by result: success (all converged), "
                                       "partial (some objects in error or blocked), error (no full pass)",
                                       ["result"], registry=r)
        self.reconcile_duration = Histogram(f"{PREFIX}reconcile_duration_seconds", "Duration of one reconcile",
                                            buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300), registry=r)
        self.resources = Gauge(f"{PREFIX}resources", "Manifest objects by kind and state", ["kind", "state"],
                               registry=r)
        self.changes_applied = Counter(f"{PREFIX}changes_applied_total", "Changes written to AWS",
                                       ["kind", "action"], registry=r)
        self.api_calls = Counter(f"{PREFIX}aws_api_calls_total", "AWS API calls (after the SDK's retries)",
                                 ["service", "operation", "outcome"], registry=r)
        self.api_errors = Counter(f"{PREFIX}aws_api_errors_total", "AWS API calls that failed, by error code",
                                  ["service", "code"], registry=r)
        self.throttles = Counter(f"{PREFIX}aws_throttles_total", "Throttled AWS API attempts, retried or not",
                                 ["service", "operation"], registry=r)
        self.last_success = Gauge(f"{PREFIX}last_success_timestamp_seconds",
                                  "Unix time of the end of the last full reconcile (success or partial)", registry=r)
        self.is_leader = Gauge(f"{PREFIX}is_leader", "1 while this replica holds the lease and may write", registry=r)
        self.manifests_valid = Gauge(f"{PREFIX}manifests_valid", "0 while the manifests on disk do not validate "
                                     "(the last valid ones stay in force)", registry=r)
        self.events_total = Counter(f"{PREFIX}events_total", "Messages read from the --events queue: received, "
                                    "then each relevant, irrelevant (of no object of ours) or malformed",
                                    ["result"], registry=r)
        self.events_mode = Gauge(f"{PREFIX}events_mode", "1 for the mode in force: events (the --events queue) "
                                 "or polling (no --events, or the queue cannot be read)", ["mode"], registry=r)
        self.event_reconciles = Counter(f"{PREFIX}event_reconciles_total", "Reconciles of only the objects "
                                        "that events concern", registry=r)
        for result in RESULTS:
            self.reconcile_total.labels(result)
        self.set_resources({})

    def watch(self, aws: Aws) -> None:
        """Count every call of this Aws; call before its first client is made."""
        aws.listeners.append(self._on_call)
        aws.session.events.register("needs-retry", self._on_attempt)

    def _on_call(self, service: str, operation: str, outcome: str) -> None:
        self.api_calls.labels(service, operation, outcome).inc()
        if outcome != "success":
            self.api_errors.labels(service, outcome).inc()

    def _on_attempt(self, response: Any = None, operation: Any = None, **_: Any) -> None:
        if not response or operation is None:
            return
        code = (response[1] or {}).get("Error", {}).get("Code")
        if code in THROTTLING:
            self.throttles.labels(operation.service_model.service_name, operation.name).inc()

    def set_resources(self, states: dict[str, tuple[str, str]]) -> None:
        """``states``: ref → (kind, state). Every kind and state is set, zeros too, so none goes stale."""
        counts = {(k, s): 0 for k in KIND_ORDER for s in STATES}
        for kind, state in states.values():
            if (kind, state) in counts:   # "unknown" (before the first reconcile) is not a state to count
                counts[(kind, state)] += 1
        for (kind, state), n in counts.items():
            self.resources.labels(kind, state).set(n)

    def applied(self, changes: Iterable[tuple[str, str]]) -> None:
        for kind, action in changes:
            self.changes_applied.labels(kind, action).inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
