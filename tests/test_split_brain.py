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
import functools
import json
import os
import subprocess
import sys
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
from controller.daemon.lease import Lease
from controller.daemon.loop import Daemon
from controller.daemon.metrics import Metrics
from faultkit import Fleet, assert_one_of_each, cli, holdings, prepare_aws
from faultproxy import FaultProxy, FaultRule

TABLE = "ecs-secrets-split-brain"
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def env(moto_server, monkeypatch):
    """AWS_* pointing at moto, without a reset (slow): every test has its own owner, names and lease."""
    for name in UNSET_ENV:
        monkeypatch.delenv(name, raising=False)
    for name, value in {**TEST_ENV, "AWS_ENDPOINT_URL": moto_server.url}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("ECS_SECRETS_RATE_LIMITS", "off")
    return moto_server.url


@pytest.fixture
def fleet_env(env):
    """``env`` with what faultkit's fleets expect to exist (a KMS alias, a secret, a managed policy)."""
    prepare_aws(env)
    return env


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


class Clock:
    """Both leases' monotonic clock, moved by hand: the takeover needs no real wait."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def history(url: str, name: str) -> list[str]:
    return [v["Value"] for v in direct("ssm", url).get_parameter_history(Name=name)["Parameters"]]


def assert_no_old_write_after_the_first_new(url: str, name: str) -> None:
    values = history(url, name)
    assert "old" not in values[values.index("new"):], f"the old leader overwrote its successor: {values}"
    assert direct("ssm", url).get_parameter(Name=name)["Parameter"]["Value"] == "new"


def test_a_deposed_leaders_retried_write_never_lands_after_its_successors(env, tmp_path, monkeypatch):
    """The issue's attack without a pause: the leader's PutParameter is throttled and retried while its
    renewals fail; the successor takes over and writes; then the throttling ends. The leases run on a
    hand-moved clock; the old leader's retries (tenacity) wait in real time."""
    clock = Clock()
    monkeypatch.setattr(loop, "Lease", functools.partial(Lease, clock=clock))
    owner, name = f"split-{uuid.uuid4().hex[:8]}", f"/split-{uuid.uuid4().hex[:8]}/level"
    direct("ssm", env).put_parameter(Name=name, Value="v0", Type="String",
                                     Tags=[{"Key": "ecs-secrets:owner", "Value": owner}])
    timings = (15.0, 10.0, 0.1)   # the default lease and renew deadline; renewals (real time) every 0.1 s
    with FaultProxy(env, seed=1) as proxy:
        old = replica(proxy.url, manifest(tmp_path / "old", name, "old"), owner, timings)
        new = replica(env, manifest(tmp_path / "new", name, "new"), owner, timings)
        assert old.lease.step() is True
        old.lease.start()
        proxy.set_rules([FaultRule("throttle", match="ssm:PutParameter")])
        writer = threading.Thread(target=old.tick, name="old-leader")
        writer.start()
        wait_for(lambda: proxy.calls[("ssm", "PutParameter")] >= 1, 20, "the old leader's first write attempt")
        proxy.set_rules([FaultRule("throttle", match="ssm:PutParameter"),
                         FaultRule("http500", match="dynamodb:PutItem")])   # its renewals fail from now on
        wait_for(lambda: not old.lease.is_leader(), 10, "a failed renewal")
        assert new.lease.step() is False          # the successor sees the lease ...
        clock.now += 15.1                         # ... go unrenewed for a whole lease duration
        assert new.lease.step() is True
        assert new.tick() == "success"
        proxy.set_rules([])                       # the throttling ends: a retry still under way now lands
        writer.join(timeout=60)
        assert not writer.is_alive()
        old.lease.stop()
        new.lease.stop()
    assert_no_old_write_after_the_first_new(env, name)


@pytest.mark.slow
def test_the_same_attack_with_real_clocks_and_lease_threads(env, tmp_path):
    """As above, with both leases campaigning and renewing in their own threads on the real clock."""
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

    assert_no_old_write_after_the_first_new(env, name)


# --- item 6: without a daemon, two one-shot runs (two CI pipelines) --------------------------------

def reconcile_process(folder: Path, fleet: Fleet, *extra: str) -> subprocess.Popen:
    argv = [sys.executable, "-m", "controller", "reconcile", "-f", str(folder), "--owner", fleet.owner, *extra]
    return subprocess.Popen(argv, cwd=REPO, env={**os.environ, **fleet.env}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_two_concurrent_one_shot_runs_with_a_lease_table_take_turns(fleet_env, tmp_path):
    """Two pipelines start at the same moment: one holds the lease, the other waits, then plans against
    what the first wrote and finds nothing to do — one revision per family, version 1 of every parameter."""
    fleet = Fleet(params=4, roles=1, families=2)
    folder = fleet.write(tmp_path / "m")
    runs = [reconcile_process(folder, fleet, "--lease-table", TABLE) for _ in range(2)]
    results = [(p.wait(timeout=180), *p.communicate()) for p in runs]
    assert [code for code, _, _ in results] == [0, 0], results
    waited = [err for _, _, err in results if "waiting up to 60s for the lease" in err]
    assert len(waited) == 1, results
    assert any("No changes" in out for _, out, _ in results), results
    assert_one_of_each(fleet, fleet_env)
    for secret in fleet.env.values():
        assert all(secret not in out + err for _, out, err in results)


def test_a_held_lease_makes_reconcile_refuse_at_its_lock_timeout_writing_nothing(fleet_env, tmp_path, capfd):
    fleet = Fleet(params=2, roles=1, families=1)
    folder = fleet.write(tmp_path / "m")
    daemon = Lease(Aws(), TABLE, f"ecs-secrets/{fleet.owner}", holder="daemon-elsewhere")   # as `run` names it
    assert daemon.step() is True
    try:
        run = cli(capfd, "reconcile", "-f", str(folder), "--owner", fleet.owner, "--lease-table", TABLE,
                  "--lock-timeout", "0")
    finally:
        daemon.release()
    assert run.code == 1
    assert "held by daemon-elsewhere" in run.err and "nothing written" in run.err
    held = holdings(fleet_env, fleet)
    assert held.revisions == {} and held.versions == {} and held.roles == {}


def test_without_a_lease_table_run_and_reconcile_say_that_nothing_locks_other_writers_out(fleet_env, tmp_path,
                                                                                        capfd, monkeypatch):
    fleet = Fleet(params=1, roles=1, families=1)
    folder = fleet.write(tmp_path / "m")
    for name, value in fleet.env.items():
        monkeypatch.setenv(name, value)
    run = cli(capfd, "run", "-f", str(folder), "--owner", fleet.owner, "--once")
    assert run.code == 0, run.err
    assert "no --lease-table: no leader election and no lock" in run.err
    fleet.write(folder, revision="2")
    again = cli(capfd, "reconcile", "-f", str(folder), "--owner", fleet.owner)
    assert again.code == 0, again.err
    assert "warning: no --lease-table: nothing stops another `reconcile` or `run`" in again.err


# --- the guard itself ------------------------------------------------------------------------------

def test_a_pause_past_the_lease_stops_the_next_attempt_without_any_failed_renewal(env):
    """SIGSTOP past the lease, as the guard sees it: the process resumes with its monotonic clock moved on."""
    from controller.aws.guard import LeaseLost
    clock = Clock()
    lease = Lease(Aws(), TABLE, f"ecs-secrets/pause-{uuid.uuid4().hex[:8]}", holder="paused", clock=clock)
    assert lease.step() is True
    guard = lease.guard()
    guard.check("PutParameter")                   # fresh lease: an attempt may start
    clock.now += lease.duration / 2 - lease.duration / 20 - 0.01
    guard.check("PutParameter")                   # still room for one whole attempt before a takeover
    clock.now += 0.02
    with pytest.raises(LeaseLost):                # no longer: the attempt could end after a successor's write
        guard.check("PutParameter")
    lease.release()


def test_every_attempt_botocore_retries_passes_the_guard(env):
    """botocore retries a throttled PutParameter on its own (standard mode); the attempt after the lease
    is lost never reaches AWS. before-send fires per attempt:
    https://docs.aws.amazon.com/botocore/latest/topics/events.html"""
    from controller.aws.guard import Guard, LeaseLost
    covered = iter([60.0, 60.0, 0.0])
    with FaultProxy(env, seed=1, rules=[FaultRule("throttle", match="ssm:PutParameter")]) as proxy:
        aws = Aws(endpoint_url=proxy.url)
        aws.set_guard(Guard(lambda: next(covered, 0.0), attempt_budget=6.0))
        ssm = aws.client("ssm")
        with pytest.raises(LeaseLost):
            ssm.put_parameter(Name=f"/guard-{uuid.uuid4().hex[:8]}", Value="x", Type="String")
        assert proxy.calls[("ssm", "PutParameter")] == 2   # two attempts sent, the third refused
        assert ssm.meta.config.read_timeout == 4.0 and ssm.meta.config.connect_timeout == 2.0
        aws.client("ssm").get_parameters(Names=["/nothing"])   # reads are never held back
