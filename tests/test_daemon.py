"""`ecs-secrets run`: the daemon as a subprocess against moto's server, plus its isolation in process.

Every wait polls with a deadline; no test sleeps a fixed time.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Callable

import boto3
import pytest
from botocore.exceptions import ClientError
from prometheus_client.parser import text_string_to_metric_families

from awsops import WRITE_PREFIXES
from awsserver import TEST_ENV
from controller.core import ops
from controller import reconcile
from controller.aws import writers
from controller.aws.session import Aws
from controller.cli import main
from controller.daemon.loop import Daemon
from controller.daemon.metrics import Metrics
from controller.daemon.watch import Watcher

REPO = Path(__file__).resolve().parent.parent
SPEC_METRICS = ("ecs_secrets_reconcile_total", "ecs_secrets_reconcile_duration_seconds_bucket",
                "ecs_secrets_resources", "ecs_secrets_changes_applied_total", "ecs_secrets_aws_api_calls_total",
                "ecs_secrets_last_success_timestamp_seconds", "ecs_secrets_is_leader")
BROKEN = """apiVersion: ecs-secrets/v1
kind: Parameter
metadata: {name: broken}
spec:
  name: /test/broken
  type: SecureString
  kmsKeyId: alias/does-not-exist
  value: {generate: {length: 16}}
"""


# --- helpers ---------------------------------------------------------------------------------

def wait_for(what: Callable[[], Any], timeout: float = 20.0, every: float = 0.1, message: str = "") -> Any:
    deadline, last = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        try:
            last = what()
        except (OSError, urllib.error.URLError, ClientError) as exc:
            last = exc
        if last and not isinstance(last, Exception):
            return last
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout}s waiting for {message or what}: last {last!r}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def client(service: str, url: str) -> Any:
    return boto3.client(service, endpoint_url=url, region_name="us-east-1")


class Replica:
    """One `python -m controller run` process; its stderr goes to a file so nothing blocks."""

    def __init__(self, tmp: Path, manifests: Path, *extra: str, env: dict[str, str] | None = None,
                 name: str = "r", interval: float = 2, log_format: str = "json") -> None:
        self.port = free_port()
        self.log = tmp / f"{name}-{self.port}.log"
        argv = [sys.executable, "-m", "controller", "run", "-f", str(manifests), "--interval", str(interval),
                "--metrics-port", str(self.port), "--metrics-address", "127.0.0.1",
                "--log-level", "debug", "--log-format", log_format, *extra]
        self.out = tmp / f"{name}-{self.port}.out"
        with open(self.log, "wb") as err, open(self.out, "wb") as out:
            self.proc = subprocess.Popen(argv, stdout=out, stderr=err, env={**os.environ, **(env or {})}, cwd=REPO)

    def get(self, path: str) -> tuple[int, str]:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(f"http://127.0.0.1:{self.port}{path}", timeout=5) as reply:
                return reply.status, reply.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def status(self) -> dict:
        return json.loads(self.get("/status")[1])

    def metrics(self) -> dict[tuple[str, frozenset], float]:
        text = self.get("/metrics")[1]
        return {(s.name, frozenset(s.labels.items())): s.value
                for family in text_string_to_metric_families(text) for s in family.samples}

    def metric(self, name: str, **labels: str) -> float:
        return sum(v for (n, ls), v in self.metrics().items() if n == name and set(labels.items()) <= ls)

    def aws_writes(self) -> float:
        """AWS writes this replica made, the lease's own DynamoDB writes aside."""
        return sum(v for (n, ls), v in self.metrics().items() if n == "ecs_secrets_aws_api_calls_total"
                   and dict(ls)["service"] != "dynamodb" and dict(ls)["operation"].startswith(WRITE_PREFIXES))

    def ready(self) -> bool:
        return self.get("/readyz")[0] == 200

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10) -> int:
        self.proc.send_signal(sig)
        return self.proc.wait(timeout=timeout)

    def output(self) -> str:
        return self.out.read_text() + self.log.read_text()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


@pytest.fixture
def canary() -> str:
    return f"canary-{secrets.token_hex(12)}"


@pytest.fixture
def world(aws_env: str, canary: str, tmp_path: Path) -> Path:
    """The documentation's manifests in a folder of the test's own; the KMS alias and the secret they expect."""
    kms = client("kms", aws_env)
    kms.create_alias(AliasName="alias/MyAliasName", TargetKeyId=kms.create_key()["KeyMetadata"]["KeyId"])
    client("secretsmanager", aws_env).create_secret(Name="payments/stripe-token", SecretString="not-read")
    folder = tmp_path / "manifests"
    shutil.copytree(REPO / "manifests", folder)
    return folder


@pytest.fixture
def replicas(tmp_path: Path, canary: str):
    started: list[Replica] = []

    def start(manifests: Path, *extra: str, **kw: Any) -> Replica:
        r = Replica(tmp_path, manifests, *extra, env={"DB_PASSWORD": canary}, **kw)
        started.append(r)
        return r
    yield start
    for r in started:
        r.kill()


def value(url: str, name: str) -> str:
    return client("ssm", url).get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"]


def repaired(drift: Callable[[], Any], fixed: Callable[[], bool], within: float) -> float:
    """Make an out-of-band change; seconds until the daemon has undone it."""
    drift()
    started = time.monotonic()
    wait_for(fixed, within, every=0.05, message="drift repaired")
    return time.monotonic() - started


def assert_clean_logs(replica: Replica, *canaries: str, fmt: str) -> None:
    text = replica.output()
    for c in canaries:
        assert c not in text
    lines = [line for line in replica.log.read_text().splitlines() if line.strip()]
    assert lines
    for line in lines:
        if fmt == "json":
            record = json.loads(line)
            assert {"object", "action", "reconcile_id"} <= set(record), line
        elif not line.startswith(" "):   # continuation lines of a traceback
            assert "object=" in line and "action=" in line and "reconcile_id=" in line, line


# --- the daemon as an operator runs it -------------------------------------------------------

def test_converges_serves_metrics_repairs_drift_and_stops_on_sigterm(world, aws_env, replicas, canary):
    interval = 2.0
    d = replicas(world, interval=interval)
    wait_for(d.ready, 30, message="/readyz")
    assert value(aws_env, "/test/database_password") == canary
    assert client("ecs", aws_env).describe_task_definition(taskDefinition="web")["taskDefinition"]["revision"] == 1
    assert d.get("/healthz")[0] == 200
    status = d.status()
    assert status["ready"] and status["leader"] and status["manifests"]["valid"]
    assert {ref: o["state"] for ref, o in status["objects"].items()} == dict.fromkeys(
        ["ExecutionRole/web-exec", "Parameter/api-key", "Parameter/db-password", "Parameter/log-level",
         "TaskDefinition/web"], "in_sync")
    samples = d.metrics()
    names = {n for n, _ in samples}
    assert set(SPEC_METRICS) <= names
    assert samples[("ecs_secrets_resources", frozenset({"kind": "Parameter", "state": "in_sync"}.items()))] == 3
    assert d.metric("ecs_secrets_changes_applied_total", kind="Parameter", action="create") == 3
    assert d.metric("ecs_secrets_is_leader") == 1 and d.metric("ecs_secrets_last_success_timestamp_seconds") > 0

    drift, iam = f"drift-{secrets.token_hex(8)}", client("iam", aws_env)
    within = 2 * interval * 1.1 + 3        # two intervals with their jitter, and a reconcile on a busy machine
    value_repair = repaired(lambda: client("ssm", aws_env).put_parameter(
        Name="/test/database_password", Value=drift, Type="SecureString", Overwrite=True),
        lambda: value(aws_env, "/test/database_password") == canary, within)
    policy_repair = repaired(lambda: iam.put_role_policy(
        RoleName="ecsTaskExecutionRole-web", PolicyName="ecs-secrets", PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "ssm:*", "Resource": "*"}]})),
        lambda: "ssm:*" not in json.dumps(iam.get_role_policy(RoleName="ecsTaskExecutionRole-web",
                                                              PolicyName="ecs-secrets")["PolicyDocument"]), within)
    print(f"drift repaired with --interval {interval}: value {value_repair:.1f}s, policy {policy_repair:.1f}s")

    for page in ("/status", "/metrics"):
        assert canary not in d.get(page)[1] and drift not in d.get(page)[1]
    started = time.monotonic()
    assert d.stop(signal.SIGTERM) == 0
    assert time.monotonic() - started < 5
    assert_clean_logs(d, canary, drift, fmt="json")


def test_a_manifest_change_is_applied_at_once_and_a_broken_one_is_ignored(world, aws_env, replicas):
    d = replicas(world, interval=300)
    wait_for(d.ready, 30, message="/readyz")
    params = world / "parameters.yaml"
    original = params.read_text()
    started = time.monotonic()
    params.write_text(original.replace("literal: info", "literal: warn"))
    wait_for(lambda: value(aws_env, "/test/log_level") == "warn", 10, message="manifest change applied")
    print(f"manifest change applied {time.monotonic() - started:.1f}s after the edit (interval 300s)")

    params.write_text(original.replace("literal: info", "literal: warn\n    bogus: field"))
    wait_for(lambda: d.status()["manifests"]["valid"] is False, 10, message="invalid manifest noticed")
    assert "bogus" in d.status()["manifests"]["error"]
    assert d.metric("ecs_secrets_manifests_valid") == 0
    assert d.get("/healthz")[0] == 200 and d.proc.poll() is None
    assert len(d.status()["objects"]) == 5        # the last valid manifests stay in force

    params.write_text(original.replace("literal: info", "literal: error"))
    wait_for(lambda: value(aws_env, "/test/log_level") == "error", 10, message="the next valid change")
    assert d.status()["manifests"]["valid"] is True
    assert d.stop() == 0


def test_a_broken_object_is_reported_while_the_rest_converges(world, aws_env, replicas, canary):
    (world / "broken.yaml").write_text(BROKEN)
    d = replicas(world, interval=1, log_format="text")
    wait_for(lambda: d.metric("ecs_secrets_resources", kind="Parameter", state="error") == 1, 30,
             message="state=error in /metrics")
    wait_for(lambda: d.status()["objects"]["TaskDefinition/web"]["state"] == "in_sync", 10, message="web in sync")
    broken = d.status()["objects"]["Parameter/broken"]
    assert broken["state"] == "error" and "alias/does-not-exist" in broken["last_error"]
    assert d.metric("ecs_secrets_resources", kind="TaskDefinition", state="in_sync") == 1
    assert d.ready()          # the rest converged: ready despite one broken object
    assert client("ecs", aws_env).describe_task_definition(taskDefinition="web")["taskDefinition"]["revision"] == 1
    with pytest.raises(ClientError):
        client("ssm", aws_env).get_parameter(Name="/test/broken")
    before = d.metric("ecs_secrets_reconcile_total", result="partial")
    wait_for(lambda: d.metric("ecs_secrets_reconcile_total", result="partial") >= before + 2, 10,
             message="the loop keeps going")
    assert d.proc.poll() is None
    assert d.stop() == 0
    assert_clean_logs(d, canary, fmt="text")


@pytest.mark.slow  # CI time: covered again by `-m slow` (README, Testing)
def test_two_replicas_one_writer_and_failover(world, aws_env, replicas):
    lease = ("--lease-table", "ecs-secrets-lease", "--lease-duration", "4", "--lease-renew-deadline", "3",
             "--lease-retry-period", "0.5")
    a, b = replicas(world, *lease, name="a"), replicas(world, *lease, name="b")

    def one_leader() -> tuple[Replica, Replica] | None:
        leads = {r: r.metric("ecs_secrets_is_leader") for r in (a, b)}
        if sorted(leads.values()) != [0, 1]:
            return None
        return max(leads, key=leads.get), min(leads, key=leads.get)
    leader, follower = wait_for(one_leader, 30, message="exactly one leader")
    wait_for(leader.ready, 30, message="leader ready")
    wait_for(follower.ready, 30, message="follower ready (read-only reconciles)")
    client("ssm", aws_env).put_parameter(Name="/test/log_level", Value="drift", Type="String", Overwrite=True)
    wait_for(lambda: value(aws_env, "/test/log_level") == "info", 10, message="repair by the leader")
    assert follower.aws_writes() == 0 and follower.metric("ecs_secrets_changes_applied_total") == 0
    assert leader.aws_writes() > 0

    started = time.monotonic()
    assert leader.stop(signal.SIGTERM) == 0                        # releases the lease
    wait_for(lambda: follower.metric("ecs_secrets_is_leader") == 1, 10, message="takeover after release")
    print(f"failover after SIGTERM: {time.monotonic() - started:.1f}s")
    client("ssm", aws_env).put_parameter(Name="/test/log_level", Value="drift2", Type="String", Overwrite=True)
    wait_for(lambda: value(aws_env, "/test/log_level") == "info", 10, message="repair by the new leader")

    c = replicas(world, *lease, name="c")
    wait_for(c.ready, 30, message="third replica ready")
    assert c.metric("ecs_secrets_is_leader") == 0 and c.aws_writes() == 0
    started = time.monotonic()
    follower.proc.kill()                                           # SIGKILL: no release, the lease must expire
    wait_for(lambda: c.metric("ecs_secrets_is_leader") == 1, 15, message="takeover after expiry")
    took = time.monotonic() - started
    print(f"failover after SIGKILL with a 4s lease: {took:.1f}s")
    assert took >= 3.0      # not before the dead leader's lease ran out (4s from its last renewal, ≤0.6s before)
    assert c.stop() == 0


@pytest.mark.slow
def test_drift_repair_time(world, aws_env, replicas, canary):
    """Measures how long an out-of-band change lives. Each change lands just after the reconcile that undid the
    previous one, so this is the worst case: up to 1.1 × interval (jitter) plus one reconcile."""
    interval = 5.0
    d = replicas(world, interval=interval)
    wait_for(d.ready, 30)
    took = [repaired(lambda: client("ssm", aws_env).put_parameter(
        Name="/test/database_password", Value=f"drift-{secrets.token_hex(6)}", Type="SecureString", Overwrite=True),
        lambda: value(aws_env, "/test/database_password") == canary, 2 * interval * 1.1 + 3) for _ in range(6)]
    print(f"drift repair with --interval {interval:.0f}: min {min(took):.1f}s, mean {sum(took) / len(took):.1f}s, "
          f"max {max(took):.1f}s over {len(took)} changes")
    assert max(took) <= interval * 1.1 + 3


@pytest.mark.slow
def test_failover_with_the_default_lease_timings(world, aws_env, replicas):
    """Measures failover with controller-runtime's defaults (15s lease, 10s renew deadline, 2s retry)."""
    a, b = (replicas(world, "--lease-table", "ecs-secrets-lease", name=n) for n in "ab")
    leader = wait_for(lambda: next((r for r in (a, b) if r.metric("ecs_secrets_is_leader") == 1), None), 30)
    follower = b if leader is a else a
    wait_for(follower.ready, 30)
    started = time.monotonic()
    leader.stop(signal.SIGTERM)
    wait_for(lambda: follower.metric("ecs_secrets_is_leader") == 1, 10)
    print(f"failover after SIGTERM (defaults): {time.monotonic() - started:.1f}s")
    c = replicas(world, "--lease-table", "ecs-secrets-lease", name="c")
    wait_for(c.ready, 30)
    started = time.monotonic()
    follower.proc.kill()
    wait_for(lambda: c.metric("ecs_secrets_is_leader") == 1, 30)
    took = time.monotonic() - started
    print(f"failover after SIGKILL (defaults): {took:.1f}s")
    assert 10 <= took <= 25


# --- isolation, in process -------------------------------------------------------------------

@pytest.fixture
def daemon(world, canary):
    def make(environ: dict[str, str] | None = None) -> Daemon:
        settings = reconcile.Settings(environ={"DB_PASSWORD": canary} if environ is None else environ, isolate=True)
        d = Daemon(Aws(), str(world), settings, interval=60, metrics=Metrics())
        d.load()
        return d
    return make


def states(d: Daemon) -> dict[str, str]:
    return {ref: s.state for ref, s in d.table.objects.items()}


def denied(operation: str) -> ClientError:
    return ClientError({"Error": {"Code": "AccessDeniedException", "Message": "not allowed"}}, operation)


def test_a_failed_write_blocks_its_dependents_backs_off_and_is_retried_on_a_manifest_change(daemon, world, monkeypatch):
    real, calls = writers.WRITERS[ops.PutParameter], []

    def put(aws, op):
        calls.append(op.name)
        if op.name == "/test/database_password":
            raise denied("PutParameter")
        return real(aws, op)
    monkeypatch.setitem(writers.WRITERS, ops.PutParameter, put)
    d = daemon()
    assert d.tick() == "partial"
    assert states(d) == {"Parameter/db-password": "error", "Parameter/api-key": "in_sync",
                         "Parameter/log-level": "in_sync", "ExecutionRole/web-exec": "in_sync",
                         "TaskDefinition/web": "blocked"}
    assert "AccessDeniedException" in d.table.objects["Parameter/db-password"].last_error
    assert d.backoff.entries["Parameter/db-password"].terminal
    calls.clear()
    d.tick()                                                   # terminal: not tried again as it is
    assert calls == [] and states(d)["Parameter/db-password"] == "error"
    params = world / "parameters.yaml"
    params.write_text(params.read_text().replace("Database password of the web service", "DB password"))
    d.changed = True
    d.tick()                                                   # the manifest changed: tried once more
    assert calls == ["/test/database_password"]
    monkeypatch.setitem(writers.WRITERS, ops.PutParameter, real)
    params.write_text(params.read_text().replace("DB password", "The DB password"))
    d.changed = True
    assert d.tick() == "success"
    assert set(states(d).values()) == {"in_sync"} and "Parameter/db-password" not in d.backoff.entries


def test_a_transient_failure_waits_for_its_backoff(daemon, monkeypatch):
    real, calls = writers.WRITERS[ops.PutRole], []

    def put(aws, op):
        calls.append(op.name)
        raise ClientError({"Error": {"Code": "ServiceFailure", "Message": "try later"}}, "CreateRole")
    monkeypatch.setitem(writers.WRITERS, ops.PutRole, put)
    d = daemon()
    d.tick()
    entry = d.backoff.entries["ExecutionRole/web-exec"]
    assert not entry.terminal and entry.retry_at is not None
    assert states(d)["TaskDefinition/web"] == "blocked"
    assert d.next_time("partial") <= entry.retry_at + 0.01   # the loop wakes for it, not after a full interval
    d.tick()
    assert calls == ["ecsTaskExecutionRole-web"]             # not due yet
    monkeypatch.setitem(writers.WRITERS, ops.PutRole, real)
    entry.retry_at = 0                                       # due now
    assert d.tick() == "success"


def test_a_missing_value_blocks_only_its_parameter_and_dependents(daemon, world, canary, monkeypatch, capsys):
    d = daemon(environ={})
    assert d.tick() == "partial"
    s = states(d)
    assert s["Parameter/db-password"] == "error" and s["TaskDefinition/web"] == "blocked"
    assert s["Parameter/api-key"] == s["ExecutionRole/web-exec"] == "in_sync"
    assert "DB_PASSWORD is not set" in d.table.objects["Parameter/db-password"].last_error
    monkeypatch.delenv("DB_PASSWORD", raising=False)
    assert main(["run", "-f", str(world), "--once"]) == 1            # --once: 1 while anything is in error
    monkeypatch.setenv("DB_PASSWORD", canary)
    assert main(["run", "-f", str(world), "--once", "--log-level", "debug"]) == 0
    assert canary not in "".join(capsys.readouterr())


def test_invalid_manifests_at_start_exit_1(tmp_path, capsys):
    (tmp_path / "bad.yaml").write_text("apiVersion: ecs-secrets/v1\nkind: Parameter\nmetadata: {name: x}\n"
                                       "spec: {name: /x, bogus: 1}\n")
    assert main(["run", "-f", str(tmp_path), "--once", "--region", "us-east-1"]) == 1
    assert "bogus" in capsys.readouterr().err


def test_healthz_fails_when_the_loop_stops_ticking():
    d = Daemon(Aws(region="us-east-1"), str(REPO / "manifests"), reconcile.Settings(), interval=60, metrics=Metrics())
    assert d.healthy()[0] and not d.readiness()[0]
    d.last_tick -= 3 * 60 + 1
    assert not d.healthy()[0]


def test_throttles_and_api_errors_are_counted(moto_server, monkeypatch):
    from faultproxy import FaultProxy, FaultRule
    for name, val in TEST_ENV.items():
        monkeypatch.setenv(name, val)
    rules = [FaultRule("throttle", match="sts:GetCallerIdentity", limit=2)]
    with FaultProxy(moto_server.url, rules=rules) as proxy:
        aws, metrics = Aws(region="us-east-1", endpoint_url=proxy.url), Metrics()
        metrics.watch(aws)
        aws.client("sts").get_caller_identity()                   # botocore retries the two throttles away
        with pytest.raises(ClientError):
            aws.client("iam").get_role(RoleName="nope")
    text = metrics.exposition().decode()
    assert 'ecs_secrets_aws_throttles_total{operation="GetCallerIdentity",service="sts"} 2.0' in text
    assert 'ecs_secrets_aws_api_calls_total{operation="GetCallerIdentity",outcome="success",service="sts"} 1.0' in text
    assert 'ecs_secrets_aws_api_errors_total{code="NoSuchEntity",service="iam"} 1.0' in text


def test_an_unreadable_role_or_key_is_a_problem_of_its_users_only(daemon):
    d = daemon()
    iam = d.aws.client("iam")

    def deny_get_role(params, **_):
        if params.get("RoleName") == "ecsTaskExecutionRole-web":
            raise denied("GetRole")
    iam.meta.events.register("before-parameter-build.iam.GetRole", deny_get_role)
    assert d.tick() == "partial"
    s = states(d)
    assert s["ExecutionRole/web-exec"] == "error" and s["TaskDefinition/web"] == "blocked"
    assert s["Parameter/db-password"] == "in_sync"
    assert "cannot read IAM role" in d.table.objects["ExecutionRole/web-exec"].last_error
    iam.meta.events.unregister("before-parameter-build.iam.GetRole", deny_get_role)
    assert d.tick() == "success"

    d.aws.client("kms").meta.events.register("before-parameter-build.kms.DescribeKey",
                                             lambda **_: (_ for _ in ()).throw(denied("DescribeKey")))
    assert d.tick() == "partial"
    s = states(d)
    # without the key's ARN the role's policy would lose its kms:Decrypt grant: it is held back too
    assert s["Parameter/api-key"] == "error" and s["ExecutionRole/web-exec"] == "blocked"
    assert s["TaskDefinition/web"] == "blocked" and s["Parameter/log-level"] == "in_sync"


def test_the_one_shot_stays_all_or_nothing():
    from controller.vocab.problems import ManifestError
    aws = Aws(region="us-east-1")
    with pytest.raises(ManifestError, match="DB_PASSWORD is not set"):   # before any AWS call
        reconcile.make(aws, reconcile.load(str(REPO / "manifests"), aws), reconcile.Settings(environ={}))
    assert aws.total_calls() == 0


def test_the_watcher_sees_edits_new_files_and_configmap_swaps(tmp_path):
    folder = tmp_path / "m"
    (folder / "..2024_01").mkdir(parents=True)
    (folder / "..2024_01" / "a.yaml").write_text("one")
    (folder / "..data").symlink_to("..2024_01")
    (folder / "a.yaml").symlink_to("..data/a.yaml")
    w = Watcher(str(folder))
    assert not w.changed()
    (folder / "..2024_02").mkdir()
    (folder / "..2024_02" / "a.yaml").write_text("two")      # same size, new inode: the kubelet's atomic swap
    (folder / "..data_tmp").symlink_to("..2024_02")
    os.replace(folder / "..data_tmp", folder / "..data")
    assert w.changed() and not w.changed()
    (folder / "b.yml").write_text("x")
    assert w.changed()
    (folder / ".hidden.yaml").write_text("x")
    assert not w.changed()
    secret = tmp_path / "value"
    secret.write_text("v1")
    w.follow([str(secret)])
    secret.write_text("v22")
    assert w.changed()
