"""The API budget as metrics: for each token bucket, the share of the account's quota it may use and the
share this process used over the last minute, read from the limiter when Prometheus scrapes.

``ecs_secrets_api_budget_ratio`` is the bucket's rate over its quota (0.25 with the default
``--api-budget``; an explicit ``--rate-limit`` shows as what it is). ``ecs_secrets_api_budget_used_ratio``
is this process's requests a second over the last ``ratelimit.WINDOW`` seconds, over the same quota: it
stays at or under the budget, above it only by a burst. ``ecs_secrets_api_budget_wait_seconds_total`` is
the time calls waited for their tokens: a pass that needed more than its budget, spread over time.
"""

from __future__ import annotations

from typing import Any, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

PREFIX = "ecs_secrets_api_budget"


class BudgetCollector(Collector):
    def __init__(self, aws: Any) -> None:
        self.aws = aws   # its limiter is read at each scrape: a test may swap it

    def collect(self) -> Iterator[Any]:
        labels = ["bucket", "service"]
        allowed = GaugeMetricFamily(f"{PREFIX}_ratio", "Share of the account's AWS quota this token bucket may "
                                    "use (--api-budget, or an explicit --rate-limit)", labels=labels)
        used = GaugeMetricFamily(f"{PREFIX}_used_ratio", "Share of the account's AWS quota this process used "
                                 "over the last minute, by token bucket", labels=labels)
        waited = CounterMetricFamily(f"{PREFIX}_wait_seconds", "Seconds AWS calls waited for a token of their "
                                     "bucket (the budget spreading a pass over time)", labels=labels)
        for limit, bucket in self.aws.limiter.buckets():
            quota = limit.account_quota
            key = [limit.name, limit.service]
            if quota is not None:
                allowed.add_metric(key, bucket.tps / quota[0])
                used.add_metric(key, bucket.used() / quota[0])
            waited.add_metric(key, bucket.waited)
        yield allowed
        yield used
        yield waited
