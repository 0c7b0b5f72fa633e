"""`run --api-budget PERCENT`: the daemon's token buckets are that share of each AWS quota it shares with the
account, a pass that needs more spreads over time, and metrics show the budget and what was used.

The quotas (controller/aws/ratelimit.py), per account and Region:
- Parameter Store: "AWS Systems Manager endpoints and quotas", default throughput 40 TPS shared by
  GetParameter, GetParameters, GetParametersByPath ("Changing Parameter Store throughput" adds PutParameter).
- ECS: "Request throttling for the Amazon ECS API" (token buckets: sustained rate and burst), task-definition
  reads 20/50, RegisterTaskDefinition 1/20, TagResource 10/20.
- STS: "IAM and AWS STS quotas", STS request quotas: 600 a second shared by GetCallerIdentity and AssumeRole.
- KMS: "Request quotas" (KMS Developer Guide): DescribeKey 2,000 a second.
- Secrets Manager: "AWS Secrets Manager quotas": DescribeSecret and GetSecretValue 10,000 a second combined.
- IAM publishes no per-action rate: the bucket's own 10/20 stands for it.
"""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from controller import cli, reconcile
from controller.aws import ratelimit
from controller.aws.session import Aws
from controller.daemon.loop import Daemon
from controller.daemon.metrics import Metrics
from controller.cli import UsageError

QUOTAS = {"ssm": (40, 40), "ecs-read": (20, 50), "ecs-write": (1, 20), "ecs-tag": (10, 20), "ecs": (20, 50),
          "iam": (10, 20), "kms": (2000, 2000), "secretsmanager": (10000, 10000), "sts": (600, 600)}


def limit(limits: tuple[ratelimit.Limit, ...], name: str) -> ratelimit.Limit:
    return next(lim for lim in limits if lim.name == name)


@pytest.mark.parametrize("name, quota", sorted(QUOTAS.items()))
def test_each_bucket_names_the_quota_it_draws_on(name: str, quota: tuple[int, int]) -> None:
    assert limit(ratelimit.DEFAULTS, name).account_quota == quota


@pytest.mark.parametrize("budget, spec, name, tps, burst", [
    (25, None, "ssm", 10, 10),              # a quarter of Parameter Store's 40, which the ECS agents share
    (25, None, "ecs-write", 0.25, 5),       # registrations: 1 TPS, burst 20
    (25, None, "ecs-read", 5, 12.5),
    (25, None, "iam", 2.5, 5),
    (25, None, "sts", 50, 50),              # 25 % of 600 is above our own pacing, which stays
    (10, None, "ecs-write", 0.1, 2),
    (1, None, "ecs-write", 0.01, 1),        # never below one token of burst
    (100, None, "ssm", 40, 40),             # the whole quota: the one-shot's pacing
    (25, "ssm=30", "ssm", 30, 40),          # an explicit bucket is taken as given
    (25, "ssm=30", "ecs-write", 0.25, 5),   # ... and only that one
    (25, "ecs=off", "ecs-write", None, 20),
    (25, "off", "ssm", None, 40),
    (None, None, "ssm", 40, 40),            # no budget (reconcile): the full quotas
])
def test_the_budget_is_a_share_of_each_quota_and_an_explicit_limit_wins(budget, spec, name, tps, burst) -> None:
    got = limit(ratelimit.parse(spec, budget=budget), name)
    assert (got.tps, got.burst) == (tps, burst)


def test_a_pass_that_needs_more_than_its_budget_spreads_over_time() -> None:
    """60 GetParameters: at the full quota (40/s, burst 40) the last waits 0.5 s; at 25 % (10/s, burst 10) 5 s."""
    def last_wait(budget: float | None) -> float:
        limiter = ratelimit.RateLimiter(ratelimit.parse(None, budget=budget), clock=lambda: 0.0, sleep=lambda s: None)
        return [limiter.wait("ssm", "GetParameters") for _ in range(60)][-1]
    assert last_wait(None) == pytest.approx(0.5)
    assert last_wait(25) == pytest.approx(5.0)


def test_run_takes_the_budget_and_reconcile_has_none(monkeypatch) -> None:
    monkeypatch.delenv(ratelimit.ENV, raising=False)
    run = cli.parse(["run", "-f", "manifests", "--region", "us-east-1"])
    assert run.api_budget == 25
    assert limit(cli._aws(run).limiter.limits, "ssm").tps == 10
    assert limit(cli._aws(cli.parse(["run", "-f", "manifests", "--region", "us-east-1", "--api-budget", "50%"]))
                 .limiter.limits, "ecs-write").tps == 0.5
    explicit = cli.parse(["run", "-f", "manifests", "--region", "us-east-1", "--rate-limit", "ssm=20"])
    assert limit(cli._aws(explicit).limiter.limits, "ssm").tps == 20
    assert limit(cli._aws(explicit).limiter.limits, "iam").tps == 2.5
    once = cli.parse(["reconcile", "-f", "manifests", "--region", "us-east-1"])
    assert limit(cli._aws(once).limiter.limits, "ssm").tps == 40
    for bad in ("0", "101", "-5", "nan", "lots"):
        with pytest.raises(UsageError, match="--api-budget"):
            cli.parse(["run", "-f", "manifests", "--api-budget", bad])
    with pytest.raises(UsageError):
        cli.parse(["reconcile", "-f", "manifests", "--api-budget", "25"])


MANIFEST = """apiVersion: ecs-secrets/v1
kind: Parameter
metadata: {name: db-password}
spec:
  name: /budget/db_password
  type: SecureString
  value: {fromEnv: DB_PASSWORD}
"""


def test_the_metrics_show_the_budget_and_what_was_used(aws_env: str, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv(ratelimit.ENV, raising=False)
    canary = f"canary-{secrets.token_urlsafe(16)}"
    (tmp_path / "p.yaml").write_text(MANIFEST)
    aws = Aws(region="us-east-1", api_budget=25)
    d = Daemon(aws, str(tmp_path), reconcile.Settings(environ={"DB_PASSWORD": canary}, isolate=True), 60, Metrics())
    d.load()
    assert d.tick() == "success" and d.tick() == "success"
    text = d.metrics.exposition().decode()
    samples = {(s.name, s.labels.get("bucket")): s.value for f in text_string_to_metric_families(text)
               for s in f.samples if s.name.startswith("ecs_secrets_api_budget")}
    assert samples[("ecs_secrets_api_budget_ratio", "ssm")] == 0.25
    assert samples[("ecs_secrets_api_budget_ratio", "ecs-write")] == 0.25
    used = samples[("ecs_secrets_api_budget_used_ratio", "ssm")]
    calls = sum(n for (service, _, _), n in aws.calls.items() if service == "ssm")
    assert used == pytest.approx(calls / ratelimit.WINDOW / 40) and 0 < used <= 0.25
    assert ("ecs_secrets_api_budget_wait_seconds_total", "ssm") in samples
    assert canary not in text
