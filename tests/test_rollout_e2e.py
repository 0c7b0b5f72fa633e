"""Rolling services against moto's server, counting the deployments moto started for each service.

The faithful test AWS (controller/sandbox/faithful.py) lets a deployment go IN_PROGRESS -> COMPLETED, or
FAILED for an image containing "faithful-cannot-start". ECS behaviour relied on, with its source:
- Deployment API reference, rolloutState: a deployment begins IN_PROGRESS and becomes COMPLETED at steady
  state, or FAILED when the circuit breaker is on and the service cannot reach one; rolloutStateReason
  says why. UpdateService with forceNewDeployment, or another taskDefinition, starts a new PRIMARY
  deployment (UpdateService API reference); "If a revision isn't specified, the latest ACTIVE revision
  is used".
- SSM API reference, ParameterMetadata.LastModifiedDate: "Date the parameter was last changed or updated".
- Secrets Manager API reference: ListSecretVersionIds (SecretVersionsListEntry.CreatedDate, VersionStages)
  and DescribeSecret (LastRotatedDate: the last successful rotation).
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import boto3
import pytest
import yaml

from controller import reconcile
from controller.aws import retry, rolling
from controller.aws.session import Aws
from controller.cli import main
from controller.daemon.loop import Daemon
from controller.daemon.metrics import Metrics
from controller.sandbox import faithful
from faultkit import fast_aws  # noqa: F401 - a fixture: the session's moto without a reset

REPO = Path(__file__).resolve().parent.parent


def client(service: str, url: str):
    return boto3.client(service, endpoint_url=url, region_name="us-east-1")


class World:
    """Two task definitions with rollouts and four services; ``deployments`` counts what moto started.

    Its names are its own (the session's moto is shared without a reset, as in the fault tests)."""

    def __init__(self, url: str, folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.url, self.folder, self.monkeypatch = url, folder, monkeypatch
        self.id = secrets.token_hex(4)
        self.cluster, self.db, self.ext, self.token = (f"prod-{self.id}", f"/roll-{self.id}/db",
                                                       f"/roll-{self.id}/ext", f"roll-{self.id}/token")
        self.web, self.api = f"web-{self.id}", f"api-{self.id}"
        self.deployments: Counter[str] = Counter()
        self.value = secrets.token_urlsafe(16)
        monkeypatch.setenv("ROLL_DB", self.value)
        self.ecs, self.ssm, self.sm = (client(s, url) for s in ("ecs", "ssm", "secretsmanager"))
        self.ssm.put_parameter(Name=self.ext, Value="managed-elsewhere", Type="SecureString")
        self.sm.create_secret(Name=self.token, SecretString=secrets.token_urlsafe(16))
        self.ecs.create_cluster(clusterName=self.cluster)
        self.web_image, self.api_image = "nginx:1", "nginx:1"
        self.web_rollout: dict = {"discover": True, "maxConcurrent": 2}
        self.api_rollout: dict = {"services": [f"{self.cluster}/api"], "updateService": True}

    def write(self) -> None:
        docs = [
            {"kind": "Parameter", "metadata": {"name": "db"}, "spec": {"name": self.db, "value": {"fromEnv": "ROLL_DB"}}},
            {"kind": "Parameter", "metadata": {"name": "ext"}, "spec": {"name": self.ext}},
            {"kind": "ExecutionRole", "metadata": {"name": "exec"}, "spec": {"roleName": f"roll-exec-{self.id}",
                                                                            "managedPolicyArns": []}},
            self._td("web", self.web, self.web_image, [("DB", self.db), ("TOKEN", self._token_arn())], self.web_rollout),
            self._td("api", self.api, self.api_image, [("EXT", self.ext)], self.api_rollout),
        ]
        (self.folder / "m.yaml").write_text(yaml.safe_dump_all([{"apiVersion": "ecs-secrets/v1", **d} for d in docs]))

    def _token_arn(self) -> str:
        return self.sm.describe_secret(SecretId=self.token)["ARN"]

    @staticmethod
    def _td(name: str, family: str, image: str, secrets_: list, rollout_: dict) -> dict:
        return {"kind": "TaskDefinition", "metadata": {"name": name}, "spec": {
            "family": family, "executionRole": "exec", "rollout": rollout_,
            "containerDefinitions": [{"name": "app", "image": image, "memory": 128,
                                      "secrets": [{"name": n, "valueFrom": v} for n, v in secrets_]}]}}

    def services(self) -> None:
        """web and web-2 run the family web (discovered), api runs api (named), other runs neither."""
        self.ecs.register_task_definition(family=f"other-{self.id}", containerDefinitions=[
            {"name": "app", "image": "busybox", "memory": 64, "secrets": [{"name": "DB", "valueFrom": self.db}]}])
        for name, family in (("web", self.web), ("web-2", self.web), ("api", self.api), ("other", f"other-{self.id}")):
            self.ecs.create_service(cluster=self.cluster, serviceName=name, taskDefinition=family, desiredCount=1)
        for name in ("web", "web-2", "api", "other"):
            self.settle(name)
        self.deployments.clear()

    def settle(self, name: str) -> dict:
        for _ in range(5):
            service = self.ecs.describe_services(cluster=self.cluster, services=[name])["services"][0]
        return service

    def reconcile(self, capsys, *extra: str) -> tuple[int, str]:
        capsys.readouterr()
        code = main(["reconcile", "-f", str(self.folder), "--owner", f"roll-{self.id}", "--cluster", self.cluster,
                     *extra])
        out, err = capsys.readouterr()
        assert self.value not in out + err
        return code, out + err


@pytest.fixture
def world(fast_aws, tmp_path, monkeypatch) -> World:
    monkeypatch.setattr(rolling, "POLL_FIRST", 0.01)
    w = World(fast_aws, tmp_path, monkeypatch)
    original = faithful._new_deployment

    def counting(service, backend):
        if getattr(service, "cluster_name", None) == w.cluster:
            w.deployments[service.name] += 1
        return original(service, backend)

    monkeypatch.setattr(faithful, "_new_deployment", counting)
    w.write()
    return w


@pytest.fixture
def running(world, capsys) -> World:
    code, out = world.reconcile(capsys)
    assert code == 0, out
    world.services()
    return world


def test_a_value_change_of_ours_rolls_exactly_its_readers_once(running, capsys, monkeypatch):
    code, out = running.reconcile(capsys, "--dry-run", "--detailed-exitcode")
    assert code == 0 and "No changes" in out, out   # services that started after every change: nothing to roll
    running.value = secrets.token_urlsafe(16)
    monkeypatch.setenv("ROLL_DB", running.value)
    code, out = running.reconcile(capsys, "--dry-run", "--detailed-exitcode")
    assert code == 2 and f"~ Service {running.cluster}/web will roll (Parameter/db is written by this plan)" in out
    assert "Plan: 0 to create, 1 to update, 0 to delete, 2 service(s) to roll." in out
    code, out = running.reconcile(capsys)
    assert code == 0, out
    # "other" reads /app/db too, but no rollout names it; api reads another parameter
    assert running.deployments == {"web": 1, "web-2": 1}
    assert all(running.settle(n)["deployments"][0]["rolloutState"] == "COMPLETED" for n in ("web", "web-2"))
    code, out = running.reconcile(capsys, "--dry-run", "--detailed-exitcode")
    assert code == 0 and "No changes" in out, out
    assert running.reconcile(capsys)[0] == 0 and running.deployments == {"web": 1, "web-2": 1}


def test_out_of_band_changes_roll_their_readers_once(running, capsys):
    """A Secrets Manager rotation (its Lambda puts a new AWSCURRENT) and a parameter managed elsewhere."""
    time.sleep(0.01)
    running.sm.put_secret_value(SecretId=running.token, SecretString=secrets.token_urlsafe(16))
    running.ssm.put_parameter(Name=running.ext, Value=secrets.token_urlsafe(8), Type="SecureString", Overwrite=True)
    code, out = running.reconcile(capsys, "--dry-run", "--detailed-exitcode", "--output", "json")
    assert code == 2 and '"roll": 3' in out
    code, out = running.reconcile(capsys)
    assert code == 0, out
    assert running.deployments == {"web": 1, "web-2": 1, "api": 1}
    assert running.reconcile(capsys, "--dry-run", "--detailed-exitcode")[0] == 0
    assert running.deployments == {"web": 1, "web-2": 1, "api": 1}


@pytest.mark.slow  # CI time: covered again by `-m slow` (README, Testing)
def test_a_new_revision_moves_its_services_once(running, capsys):
    running.api_image = "nginx:2"
    running.write()
    code, out = running.reconcile(capsys)
    assert code == 0 and f"Service/{running.cluster}/api: rolled" in out, out
    assert running.deployments == {"api": 1}
    assert running.settle("api")["taskDefinition"].endswith(f"task-definition/{running.api}:2")
    assert running.reconcile(capsys, "--dry-run", "--detailed-exitcode")[0] == 0


def test_a_failed_deployment_stops_its_rollout_and_is_reported(running, capsys, monkeypatch):
    running.web_rollout = {"services": [f"{running.cluster}/web", f"{running.cluster}/web-2"], "updateService": True,
                           "maxConcurrent": 1}
    running.web_image = f"registry/{faithful.FAIL_IMAGE_MARKER}:1"
    running.api_image = "nginx:2"   # another task definition's rollout goes on
    running.write()
    code, out = running.reconcile(capsys)
    assert code == 1
    c = running.cluster
    assert f"Service/{c}/web: failed: ECS service {c}/web: deployment ecs-svc/" in out
    assert "FAILED: ECS deployment circuit breaker: tasks failed to start." in out   # ECS's rolloutStateReason
    assert f"Service/{c}/web-2: blocked: the rollout of TaskDefinition/web stopped" in out
    assert running.deployments == {"web": 1, "api": 1}


@pytest.mark.slow  # CI time: covered again by `-m slow` (README, Testing)
def test_under_a_throttle_and_a_lost_reply_update_service_starts_one_deployment(running, capsys, monkeypatch):
    from faultkit import ScriptedProxy, always
    from faultproxy import FaultProxy, FaultRule
    monkeypatch.setattr(retry, "sleep", lambda seconds: None)
    running.ssm.put_parameter(Name=running.ext, Value=secrets.token_urlsafe(8), Type="SecureString", Overwrite=True)
    with ScriptedProxy(running.url, script=[("ecs:UpdateService", 2, always(400, "ThrottlingException", "Rate exceeded"))]) as p:
        monkeypatch.setenv("AWS_ENDPOINT_URL", p.url)
        code, out = running.reconcile(capsys)
    assert code == 0, out
    assert running.deployments == {"api": 1}
    running.deployments.clear()
    running.ssm.put_parameter(Name=running.ext, Value=secrets.token_urlsafe(8), Type="SecureString", Overwrite=True)
    with FaultProxy(running.url, rules=[FaultRule("lost_reply", match="ecs:UpdateService", limit=1)]) as p:
        monkeypatch.setenv("AWS_ENDPOINT_URL", p.url)
        code, out = running.reconcile(capsys)
        sent = p.calls[("ecs", "UpdateService")]
    assert code == 0, out
    assert sent == 1 and running.deployments == {"api": 1}   # the reply was lost, the deployment read back


@pytest.mark.slow  # CI time: covered again by `-m slow` (README, Testing)
def test_a_service_deleted_mid_rollout_is_reported_not_fatal(running, capsys, monkeypatch):
    from faultkit import ScriptedProxy

    def delete_first(op, body):
        if b"web-2" in body and not running.deployments:
            running.ecs.delete_service(cluster=running.cluster, service="web-2", force=True)
        return None

    running.sm.put_secret_value(SecretId=running.token, SecretString=secrets.token_urlsafe(16))
    running.web_rollout = {"services": [f"{running.cluster}/web-2", f"{running.cluster}/web"], "maxConcurrent": 1}
    running.write()
    with ScriptedProxy(running.url, script=[("ecs:UpdateService", None, delete_first)]) as p:
        monkeypatch.setenv("AWS_ENDPOINT_URL", p.url)
        code, out = running.reconcile(capsys)
    assert code == 0, out
    assert f"ECS service {running.cluster}/web-2 no longer exists (deleted during the rollout)" in out
    assert running.deployments["web"] == 1


@pytest.mark.slow  # CI time: covered again by `-m slow` (README, Testing)
def test_the_daemon_rolls_after_an_out_of_band_change_within_one_interval(running, monkeypatch):
    settings = reconcile.Settings(environ={"ROLL_DB": running.value}, isolate=True, clusters=(running.cluster,))
    metrics = Metrics()
    daemon = Daemon(Aws(), str(running.folder), settings, interval=0.5, metrics=metrics, owner=f"roll-{running.id}")
    thread = threading.Thread(target=daemon.main, daemon=True)
    thread.start()
    try:
        time.sleep(0.5)
        running.ssm.put_parameter(Name=running.ext, Value=secrets.token_urlsafe(8), Type="SecureString", Overwrite=True)
        deadline = time.monotonic() + 20
        while running.deployments["api"] == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert running.deployments == {"api": 1}
        deadline = time.monotonic() + 10
        while not metrics.exposition().count(b'ecs_secrets_rollouts_total{result="completed"} 1.0') and \
                time.monotonic() < deadline:
            time.sleep(0.05)
        assert b'ecs_secrets_rollouts_total{result="completed"} 1.0' in metrics.exposition()
        time.sleep(1.2)   # two more passes: nothing rolls again
        assert running.deployments == {"api": 1}
    finally:
        daemon.stop("test")
        thread.join(10)


@pytest.mark.slow  # CI time: covered again by `-m slow` (README, Testing)
def test_the_daemon_shows_a_failed_rollout_and_backs_it_off(running, monkeypatch):
    running.api_image = f"registry/{faithful.FAIL_IMAGE_MARKER}:1"
    running.write()
    settings = reconcile.Settings(environ={"ROLL_DB": running.value}, isolate=True, clusters=(running.cluster,))
    daemon = Daemon(Aws(), str(running.folder), settings, interval=60, metrics=Metrics(), owner=f"roll-{running.id}")
    daemon.load()
    assert daemon.tick() == "partial"
    status = daemon.status()["objects"]["TaskDefinition/api"]
    assert status["state"] == "error" and "FAILED: ECS deployment circuit breaker" in status["last_error"]
    assert f"Service/{running.cluster}/api" in daemon.backoff.entries
    daemon.tick()   # the service went back (faithful keeps web:1 running): its move is held back, not resent
    assert running.deployments == {"api": 1}
    again = daemon.status()["objects"]["TaskDefinition/api"]   # its PRIMARY deployment is still the FAILED one
    assert again["state"] == "error" and "FAILED: ECS deployment circuit breaker" in again["last_error"]


@pytest.mark.slow
def test_kill_9_mid_rollout_then_rerun_rolls_each_service_exactly_once(running, capsys, monkeypatch):
    """A process killed while it follows the first deployment: the rerun rolls only what is left."""
    running.web_rollout = {"services": [f"{running.cluster}/web", f"{running.cluster}/web-2"], "maxConcurrent": 1}
    running.write()
    running.sm.put_secret_value(SecretId=running.token, SecretString=secrets.token_urlsafe(16))
    faithful.configure(settle_after_describes=10**6, settle_after_seconds=60)   # it stays IN_PROGRESS
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "controller", "reconcile", "-f", str(running.folder), "-q",
                             "--owner", f"roll-{running.id}", "--cluster", running.cluster],
                            env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not running.deployments and time.monotonic() < deadline:
            time.sleep(0.02)
        assert running.deployments == {"web": 1}
        time.sleep(0.3)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    faithful.configure()
    code, out = running.reconcile(capsys)
    assert code == 0, out
    assert running.deployments == {"web": 1, "web-2": 1}
    assert running.reconcile(capsys, "--dry-run", "--detailed-exitcode")[0] == 0
