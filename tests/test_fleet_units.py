"""The parts of a fleet that need no whole reconcile: the split per target, the labels, the scheduler, the
assumed credentials and their refresh, the rate limits per account and Region."""

from __future__ import annotations

import json
import threading
import time

import pytest

from controller import fleet as run
from controller import reconcile
from controller.aws import assume
from controller.aws.session import Aws
from controller.core import fleet as fleet_
from controller.core.plan import Blocker, Change, Plan
from controller.manifests.fleet import Target, session_name

A, B = "111111111111", "222222222222"
ROLE = "ecs-secrets-fleet"


def target(name: str, account: str, region: str) -> str:
    return json.dumps({"apiVersion": "ecs-secrets/v1", "kind": "Target", "metadata": {"name": name},
                       "spec": {"account": account, "region": region, "roleArn": f"arn:aws:iam::{account}:role/{ROLE}"}})


def param(name: str, targets: list[str] | None) -> str:
    metadata: dict = {"name": name} if targets is None else {"name": name, "targets": targets}
    return json.dumps({"apiVersion": "ecs-secrets/v1", "kind": "Parameter", "metadata": metadata,
                       "spec": {"name": f"/{name}", "type": "String", "value": {"literal": "x"}}})


@pytest.fixture
def three(tmp_path) -> fleet_.Fleet:
    docs = [target("fast-1", A, "eu-west-1"), target("fast-2", B, "eu-west-1"), target("slow", A, "us-east-2"),
            param("p", ["fast-1", "fast-2", "slow"]), param("own", None)]
    path = tmp_path / "f.yaml"
    path.write_text("\n---\n".join(docs))
    return fleet_.load(str(path), "us-east-1")


def test_each_target_is_an_ordinary_desired_state_in_its_region(three):
    assert list(three.groups) == ["fast-1", "fast-2", "slow", None]
    assert three.groups["slow"].region == "us-east-2" and three.groups[None].region == "us-east-1"
    assert [o.ref for o in three.groups["fast-2"].objects] == ["Parameter/p@fast-2"]
    assert three.groups["fast-2"].parameters[("eu-west-1", "/p")].ref == "Parameter/p@fast-2"
    assert [o.ref for o in three.groups[None].objects] == ["Parameter/own"]
    assert [o.ref for o in fleet_.only(three, ["slow"]).objects] == ["Parameter/p@slow"]


def test_json_entries_get_their_target_back():
    document = {"changes": [{"kind": "Parameter", "name": "p@a-eu"}, {"kind": "Parameter", "name": "own"}],
                "blocked": [{"kind": "Target", "name": "b-eu", "reason": "denied"}]}
    out = fleet_.with_targets(document)
    assert out["changes"] == [{"kind": "Parameter", "name": "p", "target": "a-eu"},
                              {"kind": "Parameter", "name": "own", "target": None}]
    assert out["blocked"][0]["target"] == "b-eu"


def test_plans_are_relabelled_prunes_too():
    plan = Plan((Change("Parameter", "old", "delete", ()), Change("TaskDefinition", "web@x", "update", (),
                                                                   depends_on=("Parameter/old",))),
                (Blocker("Parameter/p", "why"),), ("ExecutionRole/r@x",))
    out = fleet_.relabel_plan(plan, "x")
    assert [c.ref for c in out.changes] == ["Parameter/old@x", "TaskDefinition/web@x"]
    assert out.changes[1].depends_on == ("Parameter/old@x",)
    assert out.blockers[0].ref == "Parameter/p@x" and out.in_sync == ("ExecutionRole/r@x",)


@pytest.mark.parametrize("owner, given, want", [
    ("ecs-secrets", None, "ecs-secrets"),
    ("team payments/prod", None, "ecs-secrets-team-payments-prod"),
    ("x" * 100, None, ("ecs-secrets-" + "x" * 100)[:64]),
    ("any", "ci-run", "ci-run"),
])
def test_session_name_keeps_to_sts_rules(owner, given, want):
    """STS AssumeRole API reference, RoleSessionName: 2-64 characters of [\\w+=,.@-]."""
    assert session_name(owner, given) == want


class _Creds:
    def get_frozen_credentials(self) -> None:
        return None


class _Session:
    def get_credentials(self) -> _Creds:
        return _Creds()


class _FakeAws:
    session = _Session()


def test_one_slow_target_does_not_delay_the_others(three, monkeypatch):
    """Targets are planned on their own threads: the fast ones finish long before the slow one."""
    finished: dict[str, float] = {}
    start = time.monotonic()

    def make(aws, desired, settings):
        slow = any(o.ref.endswith("@slow") for o in desired.objects)
        time.sleep(1.5 if slow else 0.05)
        finished[desired.objects[0].ref] = time.monotonic() - start
        return reconcile.Result(Plan(()), None, desired)

    monkeypatch.setattr(run.reconcile, "make", make)
    connections = run.Connections(None, {name: _FakeAws() for name in three.groups})
    result = run.make(three, connections, reconcile.Settings())
    assert not result.failed and len(result.results) == 4
    assert finished["Parameter/p@slow"] >= 1.5
    assert all(t < 1.0 for ref, t in finished.items() if ref != "Parameter/p@slow"), finished
    assert time.monotonic() - start < 2.5   # the slowest target's time, not the sum


def test_a_failing_target_fails_alone(three, monkeypatch):
    def make(aws, desired, settings):
        if any(o.ref.endswith("@fast-2") for o in desired.objects):
            raise RuntimeError("the endpoint is down")
        return reconcile.Result(Plan((), in_sync=tuple(o.ref for o in desired.objects)), None, desired)

    monkeypatch.setattr(run.reconcile, "make", make)
    connections = run.Connections(None, {name: _FakeAws() for name in three.groups})
    result = run.make(three, connections, reconcile.Settings())
    assert set(result.failed) == {"fast-2"} and "the endpoint is down" in result.failed["fast-2"]
    assert [b.ref for b in result.plan.blockers] == ["Target/fast-2"]
    daemon_view = run.blocked_for_daemon(three, result)
    assert [b.ref for b in daemon_view.blockers] == ["Parameter/p@fast-2"]
    assert "Parameter/p@fast-1" in daemon_view.in_sync
    with pytest.raises(Exception, match="Target/fast-2"):
        run.check(result)


def test_rate_limits_are_per_account_and_region():
    limiters = assume.Limiters(Aws(region="us-east-1").limiter)
    assert limiters.of(A, "eu-west-1") is limiters.of(A, "eu-west-1")
    assert limiters.of(A, "eu-west-1") is not limiters.of(A, "us-east-2")
    assert limiters.of(A, "eu-west-1") is not limiters.of(B, "eu-west-1")
    assert limiters.of(A, "eu-west-1").limits == limiters.base.limits


@pytest.fixture
def no_managed_policies(monkeypatch):
    """These tests attach no managed policy: spare moto loading AWS's hundreds for each account."""
    monkeypatch.setenv("MOTO_IAM_LOAD_MANAGED_POLICIES", "false")


def _role(url: str, account: str) -> None:
    import boto3
    iam = boto3.client("iam", endpoint_url=url, region_name="us-east-1")
    iam.meta.events.register("before-sign.*.*", lambda request, **_: request.headers.__setitem__(
        "x-moto-account-id", account))
    iam.create_role(RoleName=ROLE, AssumeRolePolicyDocument=json.dumps({"Statement": [{
        "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123456789012:root"}, "Action": "sts:AssumeRole"}]}))


@pytest.mark.slow
def test_credentials_are_botocores_and_refresh_mid_reconcile(aws_env, no_managed_policies):
    """DurationSeconds 900, STS's minimum (AssumeRole API reference): botocore assumes again whenever the
    credentials are within 15 minutes of expiry, so here at every use; a run of calls spans several sets of
    credentials without an error, and every call lands in the target's account."""
    from botocore.credentials import DeferredRefreshableCredentials
    _role(aws_env, A)
    base = Aws(region="us-east-1")
    t = Target("a", A, "eu-west-1", f"arn:aws:iam::{A}:role/{ROLE}")
    aws = assume.for_target(base, t, "ecs-secrets", assume.Limiters(base.limiter), duration=900)
    assert isinstance(aws.session.get_credentials(), DeferredRefreshableCredentials)
    assert base.calls[("sts", "AssumeRole", "success")] == 0   # deferred: no call before the first use
    for _ in range(3):
        assert aws.client("sts").get_caller_identity()["Account"] == A
    assert base.calls[("sts", "AssumeRole", "success")] >= 2
    assert aws.client("ssm").describe_parameters()["Parameters"] == []


@pytest.mark.slow
def test_an_hour_of_credentials_is_assumed_once(aws_env, no_managed_policies):
    _role(aws_env, A)
    base = Aws(region="us-east-1")
    t = Target("a", A, "eu-west-1", f"arn:aws:iam::{A}:role/{ROLE}")
    aws = assume.for_target(base, t, "ecs-secrets", assume.Limiters(base.limiter))
    threads = [threading.Thread(target=lambda: aws.client("sts").get_caller_identity()) for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert base.calls[("sts", "AssumeRole", "success")] == 1
