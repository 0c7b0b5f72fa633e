"""AWS's published request quotas as token buckets, and the time they alone force on a workload.

One row per bucket: which calls take a token from it, its refill rate (tokens a second, the
"sustained" rate) and its capacity (the "burst"), and the page that publishes the numbers. AWS keeps
every bucket per account and per Region (IAM, a global service, per account). A bucket that AWS
documents as a token bucket without publishing its numbers has ``rate=None``: the quota proxy
(``bench/quotaproxy.py``) lets those calls through unthrottled, so the benchmark charges the tools
only for what AWS has written down.

- Parameter Store: one throughput quota per account and Region, 40 TPS by default, shared by
  GetParameter, GetParameters, GetParametersByPath and PutParameter (the SSM quotas page lists the three
  reads; the throughput page and the PutParameter reference add PutParameter). No burst is published;
  the bucket holds one second of it. DescribeParameters, ListTagsForResource and AddTagsToResource are
  outside that quota, with no published number.
- ECS: the request-throttling page of the ECS API reference, token buckets per group of actions:
  task-definition reads (DescribeTaskDefinition, ListTaskDefinitions, ListTaskDefinitionFamilies)
  refill 20 a second with a capacity of 50; task-definition registrations (Register/Deregister) 1 and 20;
  TagResource/UntagResource 10 and 20; cluster reads (DescribeClusters, ListClusters) 20 and 50.
- IAM and STS: both use token buckets whose size and refill depend on the API (AWS Security blog,
  "How to monitor and query IAM resources at scale – Part 2"), and publish no per-action numbers.

The quota-bound minimum of a phase (``bound``): a bucket that starts full serves ``calls`` requests no
sooner than ``max(0, calls - burst) / rate`` seconds after the first; the phase takes at least the longest
of those over its buckets (the buckets drain in parallel, so they do not add up).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

ECS_THROTTLING = "https://docs.aws.amazon.com/AmazonECS/latest/APIReference/request-throttling.html"
SSM_QUOTAS = "https://docs.aws.amazon.com/general/latest/gr/ssm.html"
SSM_THROUGHPUT = "https://docs.aws.amazon.com/systems-manager/latest/userguide/parameter-store-throughput.html"
IAM_THROTTLING = "https://aws.amazon.com/blogs/security/how-to-monitor-and-query-iam-resources-at-scale-part-2/"
IAM_QUOTAS = "https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_iam-quotas.html"


@dataclass(frozen=True)
class Quota:
    name: str
    service: str                       # the SigV4 signing name: ssm, ecs, iam, sts, kms, secretsmanager
    operations: frozenset[str]         # empty: every operation of the service no other row names
    rate: float | None                 # tokens a second; None: a bucket AWS does not publish (not enforced)
    burst: float                       # the bucket's capacity
    source: str
    global_service: bool = False       # one bucket per account, whatever the Region (IAM)

    def seconds_for(self, calls: int) -> float:
        """The least time ``calls`` requests take through this bucket, starting full."""
        if self.rate is None or calls <= self.burst:
            return 0.0
        return (calls - self.burst) / self.rate


def _ops(*names: str) -> frozenset[str]:
    return frozenset(names)


QUOTAS: tuple[Quota, ...] = (
    Quota("ssm-throughput", "ssm", _ops("GetParameter", "GetParameters", "GetParametersByPath", "PutParameter"),
          40, 40, f"{SSM_QUOTAS} ; {SSM_THROUGHPUT}"),
    Quota("ssm-other", "ssm", frozenset(), None, 0, f"{SSM_QUOTAS} (no published rate)"),
    Quota("ecs-taskdef-read", "ecs", _ops("DescribeTaskDefinition", "ListTaskDefinitions",
                                          "ListTaskDefinitionFamilies"), 20, 50, ECS_THROTTLING),
    Quota("ecs-taskdef-modify", "ecs", _ops("RegisterTaskDefinition", "DeregisterTaskDefinition"), 1, 20,
          ECS_THROTTLING),
    Quota("ecs-tag", "ecs", _ops("TagResource", "UntagResource"), 10, 20, ECS_THROTTLING),
    Quota("ecs-cluster-read", "ecs", _ops("DescribeClusters", "ListClusters"), 20, 50, ECS_THROTTLING),
    Quota("ecs-other", "ecs", frozenset(), None, 0, f"{ECS_THROTTLING} (not needed by the workload)"),
    Quota("iam", "iam", frozenset(), None, 0, f"{IAM_THROTTLING} (token buckets, numbers unpublished)",
          global_service=True),
    Quota("sts", "sts", frozenset(), None, 0, f"{IAM_QUOTAS} (no published request rate)"),
)


def quota_for(service: str, operation: str, quotas: tuple[Quota, ...] = QUOTAS) -> Quota | None:
    """The row whose bucket a call takes a token from: the one naming the operation, else the service's
    catch-all row; None for a service with no row (never throttled)."""
    named = next((q for q in quotas if q.service == service and operation in q.operations), None)
    return named or next((q for q in quotas if q.service == service and not q.operations), None)


def per_bucket(calls: Counter, quotas: tuple[Quota, ...] = QUOTAS) -> dict[str, int]:
    """``{(service, operation): count}`` summed per bucket name (calls of no bucket left out)."""
    out: Counter = Counter()
    for (service, operation), n in calls.items():
        q = quota_for(service, operation, quotas)
        if q is not None:
            out[q.name] += n
    return dict(out)


def bound(calls: Counter, quotas: tuple[Quota, ...] = QUOTAS) -> tuple[float, str]:
    """(seconds, bucket name): the least time the quotas force on these calls, and the bucket that sets it."""
    by_name = {q.name: q for q in quotas}
    best, which = 0.0, ""
    for name, n in per_bucket(calls, quotas).items():
        t = by_name[name].seconds_for(n)
        if t > best:
            best, which = t, name
    return best, which


def table_markdown(quotas: tuple[Quota, ...] = QUOTAS) -> str:
    lines = ["| bucket | calls | refill /s | burst | source |", "|---|---|---:|---:|---|"]
    for q in quotas:
        named = any(o.service == q.service and o.operations for o in quotas)
        ops = ", ".join(sorted(q.operations)) or f"every {'other ' if named else ''}{q.service} call"
        rate = "not published" if q.rate is None else f"{q.rate:g}"
        burst = "—" if q.rate is None else f"{q.burst:g}"
        lines.append(f"| {q.name} | {ops} | {rate} | {burst} | {q.source} |")
    return "\n".join(lines)



def daemon_per_hour(n: int, interval: float = 60.0, resync: float = 3600.0) -> dict[str, float]:
    """The idle daemon's SSM/IAM/ECS/STS calls an hour, from the model (AWS paging): polling makes a
    no-op pass every ``interval``; the events daemon only its resync pass every ``resync`` (SQS long
    polls not counted), and, once a pass reads values only of changed versions (issue 13, item 4),
    that pass without its GetParameters."""
    from bench import model
    per_pass = model.total(model.noop(n, model.AWS))
    no_decrypt = per_pass - model.noop(n, model.AWS)[("ssm", "GetParameters")]
    return {"pass": per_pass, "polling": per_pass * 3600 / interval, "events": per_pass * 3600 / resync,
            "events_no_decrypt": no_decrypt * 3600 / resync}


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.quotas [N ...]``: the quota table, each phase's quota-bound minimum, the idle daemon."""
    import sys
    from bench import model
    ns = [int(a) for a in (sys.argv[1:] if argv is None else argv)] or [1000, 10000]
    print(table_markdown() + "\n")
    print("| N | phase | calls (model, AWS paging) | quota-bound minimum s | bucket |\n|---:|---|---:|---:|---|")
    for n in ns:
        for phase in ("cold", "noop", "update"):
            calls = model.phase(phase, n, model.AWS)
            least, which = bound(calls)
            print(f"| {n:,} | {phase} | {model.total(calls):,} | {least:,.1f} | {which or 'none'} |")
    print("\n| N | calls a pass | polling every 60 s, calls/h | events, resync 1 h, calls/h | events/polling "
          "| resync without GetParameters, calls/h | its share |\n|---:|---:|---:|---:|---:|---:|---:|")
    for n in ns:
        d = daemon_per_hour(n)
        print(f"| {n:,} | {d['pass']:,.0f} | {d['polling']:,.0f} | {d['events']:,.0f} | "
              f"{d['events'] / d['polling']:.2%} | {d['events_no_decrypt']:,.0f} | "
              f"{d['events_no_decrypt'] / d['polling']:.2%} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
