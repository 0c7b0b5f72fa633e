"""No split brain: a deposed leader's write never lands after its successor's, and concurrent one-shot
runs with a lease table take turns.

Two lease holders in process against moto's server; the old leader talks to AWS through the fault
proxy (tests/faultproxy.py), which throttles its writes and fails its renewals. What landed is read
back from SSM's parameter history (GetParameterHistory lists every version in order:
https://docs.aws.amazon.com/systems-manager/latest/APIReference/API_GetParameterHistory.html).
moto's lease item writes are DynamoDB conditional PutItem calls
(https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_PutItem.html, ConditionExpression).
"""

from __future__ import annotations

import argparse
import json
import threading
import time
import uuid
from pathlib import Path

import boto3
import pytest

from awsserver import TEST_ENV, UNSET_ENV
from controller import reconcile
from controller.aws.session import Aws
from controller.daemon import loop
from controller.daemon.loop import Daemon
from controller.daemon.metrics import Metrics
from faultproxy import FaultProxy, FaultRule

TABLE = "ecs-secrets-split-brain"


@pytest.fixture
def env(moto_server, monkeypatch):
    """AWS_* pointing at moto, without a reset (slow): every test has its own owner, names and lease."""
    for name in UNSET_ENV:
        monkeypatch.delenv(name, raising=False)
    for name, value in {**TEST_ENV, "AWS_ENDPOINT_URL": moto_server.url}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("ECS_SECRETS_RATE_LIMITS", "off")
    return moto_server.url


def direct(service: str, url: str):
    return boto3.client(service, endpoint_url=url, region_name="us-east-1")


def manifest(folder: Path, name: str, value: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    doc = {"apiVersion": "ecs-secrets/v1", "kind": "Parameter", "metadata": {"name": "level"},
           "spec": {"name": name, "type": "String", "value": {"literal": value}}}
    (folder / "p.yaml").write_text(json.dumps(doc) + "\n", encoding="utf-8")
    return folder


def lease_args(owner: str, duration: float, renew: float, retry: float) -> argparse.Namespace:
    return argparse.Namespace(lease_table=TABLE, owner=owner, sandbox=False, profile=None, lease_duration=duration,
                              lease_renew_deadline=renew, lease_retry_period=retry)


def replica(url: str, folder: Path, owner: str, timings: tuple[float, float, float]) -> Daemon:
    """A daemon wired as `run --lease-table` wires it (``loop._lease``), its lease not yet started."""
    aws = Aws(endpoint_url=url)
    daemon = Daemon(aws, str(folder), reconcile.Settings(isolate=True), 60, Metrics(), owner=owner)
    daemon.lease = loop._lease(lease_args(owner, *timings), aws, daemon.metrics, daemon)
    daemon.load()
    return daemon


def wait_for(what, timeout: float, message: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if what():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout}s: {message}")


def test_a_deposed_leaders_throttled_write_never_lands_after_its_successors(env, tmp_path):
    """The issue's attack, no pause needed: the leader's PutParameter is throttled (and retried) while
    its renewals fail; the successor takes over and writes; then the throttling ends."""
    owner, name = f"split-{uuid.uuid4().hex[:8]}", f"/split-{uuid.uuid4().hex[:8]}/level"
    direct("ssm", env).put_parameter(Name=name, Value="v0", Type="String",
                                     Tags=[{"Key": "ecs-secrets:owner", "Value": owner}])
    timings = (2.0, 1.5, 0.2)   # lease duration, renew deadline, retry period
    with FaultProxy(env, seed=1) as proxy:
        old = replica(proxy.url, manifest(tmp_path / "old", name, "old"), owner, timings)
        new = replica(env, manifest(tmp_path / "new", name, "new"), owner, timings)
        assert old.lease.step() is True
        old.lease.start()
        proxy.set_rules([FaultRule("throttle", match="ssm:PutParameter")])
        writer = threading.Thread(target=old.tick, name="old-leader")
        writer.start()
        wait_for(lambda: proxy.calls[("ssm", "PutParameter")] >= 1, 10, "the old leader's first write attempt")
        proxy.set_rules([FaultRule("throttle", match="ssm:PutParameter"),
                         FaultRule("http500", match="dynamodb:PutItem")])   # its renewals fail from now on
        new.lease.start()
        wait_for(new.lease.is_leader, 15, "the successor takes over")
        assert new.tick() == "success"
        proxy.set_rules([])                       # the throttling ends: a retry still under way now lands
        writer.join(timeout=60)
        assert not writer.is_alive()
        new.lease.stop()
        old.lease.stop()

    history = [v["Value"] for v in direct("ssm", env).get_parameter_history(Name=name)["Parameters"]]
    first_new = history.index("new")
    assert "old" not in history[first_new:], f"the old leader overwrote its successor: {history}"
    assert direct("ssm", env).get_parameter(Name=name)["Parameter"]["Value"] == "new"
    assert proxy.calls[("ssm", "PutParameter")] >= 1
