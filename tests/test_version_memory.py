"""The daemon decrypts no parameter whose version is unchanged since it last read or wrote it.

Counted at moto's server (``bench.countingserver``), over several passes of the daemon in process. Why the
version is a sound key: every PutParameter makes a new version (SSM API reference, PutParameter, response
element ``Version``: "If you edit a parameter value, Parameter Store automatically creates a new version"),
and a parameter created again after a delete starts at version 1 ("Working with parameter versions",
Systems Manager User Guide), which ``LastModifiedDate`` (DescribeParameters) tells apart.
"""

from __future__ import annotations

import logging
import os
import secrets
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterator

import boto3
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")  # as awsserver.start_moto: attachable, as in AWS

from awsserver import TEST_ENV, UNSET_ENV  # noqa: E402
from bench import model  # noqa: E402
from bench.countingserver import CountingServer  # noqa: E402
from bench.workload import Workload  # noqa: E402
from controller import reconcile  # noqa: E402
from controller.aws import ratelimit  # noqa: E402
from controller.aws.known import KnownValues  # noqa: E402
from controller.aws.session import Aws  # noqa: E402
from controller.daemon.loop import Daemon  # noqa: E402
from controller.daemon.metrics import Metrics  # noqa: E402
from controller.vocab.sensitive import Sensitive  # noqa: E402

MANIFESTS = """apiVersion: ecs-secrets/v1
kind: Parameter
metadata: {name: db-password}
spec:
  name: /vm/db_password
  type: SecureString
  value: {fromEnv: DB_PASSWORD}
---
apiVersion: ecs-secrets/v1
kind: Parameter
metadata: {name: cert}
spec:
  name: /vm/cert
  type: SecureString
  value: {fromFile: %(file)s}
---
apiVersion: ecs-secrets/v1
kind: Parameter
metadata: {name: log-level}
spec:
  name: /vm/log_level
  type: String
  value: {literal: info}
---
apiVersion: ecs-secrets/v1
kind: Parameter
metadata: {name: token}
spec:
  name: /vm/token
  type: SecureString
  value: {generate: {length: 24}}
"""


@pytest.fixture(scope="module")
def server() -> Iterator[CountingServer]:
    with CountingServer() as s:
        yield s


@pytest.fixture
def env(server: CountingServer, monkeypatch: pytest.MonkeyPatch) -> CountingServer:
    for name in UNSET_ENV:
        monkeypatch.delenv(name, raising=False)
    for name, value in {**TEST_ENV, "AWS_ENDPOINT_URL": server.url, ratelimit.ENV: "off"}.items():
        monkeypatch.setenv(name, value)
    server.reset_state()
    server.reset_counts()
    return server


@pytest.fixture
def world(tmp_path: Path) -> dict:
    canaries = {"env": f"canary-env-{secrets.token_urlsafe(12)}", "file": f"canary-file-{secrets.token_urlsafe(12)}"}
    cert = tmp_path / "cert.pem"
    cert.write_text(canaries["file"])
    folder = tmp_path / "manifests"
    folder.mkdir()
    (folder / "params.yaml").write_text(MANIFESTS % {"file": cert})
    return {"folder": folder, "cert": cert, "canaries": canaries}


def daemon(world: dict) -> Daemon:
    settings = reconcile.Settings(environ={"DB_PASSWORD": world["canaries"]["env"]}, isolate=True)
    d = Daemon(Aws(region="us-east-1"), str(world["folder"]), settings, interval=60, metrics=Metrics())
    d.load()
    return d


def gets(server: CountingServer) -> int:
    return server.counts().get(("ssm", "GetParameters"), 0)


def ssm(server: CountingServer):
    return boto3.client("ssm", endpoint_url=server.url, region_name="us-east-1")


def value(server: CountingServer, name: str) -> str:
    return ssm(server).get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"]


def test_a_polling_no_op_with_unchanged_versions_makes_no_get_parameters_call(env, world, caplog, capsys):
    caplog.set_level(logging.DEBUG, logger="ecs_secrets")
    d = daemon(world)
    assert d.tick() == "success"          # creates all four; the writes' replies name their versions
    env.reset_counts()
    for _ in range(3):
        assert d.tick() == "success"
    counts = env.counts()
    assert gets(env) == 0 and ("ssm", "GetParameter") not in counts, counts
    assert counts.get(("ssm", "DescribeParameters"), 0) > 0      # the versions are still read every pass
    assert not [c for c in counts if c[1].startswith("Put")]      # and nothing is written
    _nowhere(world, d, caplog.text + "".join(capsys.readouterr()))


def test_a_daemon_started_on_converged_parameters_decrypts_once_then_never(env, world):
    daemon(world).tick()                  # another process created them: this one knows nothing
    d = daemon(world)
    env.reset_counts()
    assert d.tick() == "success"
    assert gets(env) == 1                 # the three compared values, one batch
    env.reset_counts()
    d.tick(), d.tick()
    assert gets(env) == 0


def test_an_out_of_band_version_is_decrypted_alone_and_repaired(env, world, caplog, capsys):
    caplog.set_level(logging.DEBUG, logger="ecs_secrets")
    d = daemon(world)
    d.tick()
    drift = f"drift-{secrets.token_urlsafe(8)}"
    ssm(env).put_parameter(Name="/vm/db_password", Value=drift, Type="SecureString", Overwrite=True)
    env.reset_counts()
    assert d.tick() == "success"
    assert gets(env) == 1 and env.counts()[("ssm", "PutParameter")] == 1
    assert value(env, "/vm/db_password") == world["canaries"]["env"]
    env.reset_counts()
    d.tick()
    assert gets(env) == 0                 # the repair's own version is known
    _nowhere(world, d, caplog.text + "".join(capsys.readouterr()))


def test_only_the_changed_version_is_in_the_decrypting_read(env, world, monkeypatch):
    d = daemon(world)
    d.tick()
    ssm(env).put_parameter(Name="/vm/log_level", Value="debug", Type="String", Overwrite=True)
    asked: list[list[str]] = []
    real = d.aws.client("ssm", "us-east-1")
    original = real.get_parameters

    def spy(**kwargs):
        asked.append(sorted(kwargs["Names"]))
        return original(**kwargs)
    monkeypatch.setattr(real, "get_parameters", spy)
    d.tick()
    assert asked == [["/vm/log_level"]]
    assert value(env, "/vm/log_level") == "info"


def test_a_changed_file_is_compared_and_written(env, world):
    d = daemon(world)
    d.tick()
    fresh = f"canary-file2-{secrets.token_urlsafe(12)}"
    world["cert"].write_text(fresh)
    env.reset_counts()
    assert d.tick() == "success"
    assert gets(env) == 1 and env.counts()[("ssm", "PutParameter")] == 1
    assert value(env, "/vm/cert") == fresh
    env.reset_counts()
    d.tick()
    assert gets(env) == 0


def test_a_parameter_deleted_and_created_again_at_version_1_is_compared(env, world):
    d = daemon(world)
    d.tick()
    client = ssm(env)
    client.delete_parameter(Name="/vm/log_level")
    time.sleep(1.1)   # a re-create after our write's reply second (the HTTP Date is cut to the second)
    client.put_parameter(Name="/vm/log_level", Value="trace", Type="String")   # version 1 again, not ours
    assert client.get_parameter(Name="/vm/log_level")["Parameter"]["Version"] == 1
    env.reset_counts()
    d.tick()
    assert gets(env) == 1     # compared, not vouched for: same version, another incarnation


def test_the_one_shot_reconcile_compares_every_value_fresh(env, world):
    aws = Aws(region="us-east-1")
    settings = reconcile.Settings(environ={"DB_PASSWORD": world["canaries"]["env"]})
    desired = reconcile.load(str(world["folder"]), aws)
    reconcile.execute(aws, reconcile.make(aws, desired, settings))
    env.reset_counts()
    for _ in range(2):
        assert reconcile.make(aws, desired, settings).plan.changes == ()
    assert gets(env) == 2 and aws.known is None


@pytest.mark.slow   # a cold create of the workload first
def test_a_daemon_no_op_of_the_benchmark_workload_is_within_the_model(env, tmp_path):
    """N = 40: 40 parameters from files, 4 roles (enough for the account-wide role listing), 4 task definitions."""
    work = Workload(40, tmp_path).write()
    d = Daemon(Aws(region="us-east-1"), str(work.manifests), reconcile.Settings(isolate=True), 60, Metrics())
    d.load()
    assert d.tick() == "success"
    env.reset_counts()
    assert d.tick() == "success"
    measured, modelled = env.counts(), model.daemon_noop(40, model.MOTO)
    assert {k: v for k, v in measured.items() if v > modelled.get(k, 0)} == {}
    assert gets(env) == 0


# --- the memory itself -------------------------------------------------------------------------------

def test_the_memory_holds_no_value_and_shows_none(world):
    canary = world["canaries"]["env"]
    known = KnownValues()
    replied = datetime(2026, 1, 1, tzinfo=timezone.utc)
    known.wrote("us-east-1", "/p", 3, Sensitive(canary), replied)
    meta = {"Name": "/p", "Version": 3, "LastModifiedDate": replied + timedelta(seconds=5)}
    assert not known.holds("us-east-1", meta, Sensitive(canary))   # modified after our write's reply
    meta = {"Name": "/p", "Version": 3, "LastModifiedDate": replied + timedelta(milliseconds=300)}
    assert known.holds("us-east-1", meta, Sensitive(canary))
    assert not known.holds("us-east-1", {**meta, "Version": 4}, Sensitive(canary))
    assert not known.holds("us-east-1", meta, Sensitive(canary + "x"))
    assert canary not in repr(known) and not hasattr(known, "__dict__")
    # the digest is keyed by the process: another memory's digest of the same value differs
    assert KnownValues()._digest(Sensitive(canary)) != known._digest(Sensitive(canary))
    assert all(canary.encode() not in e.digest for e in known._seen.values())


def test_a_read_that_differs_forgets_and_one_that_matches_remembers():
    known, want = KnownValues(), Sensitive(f"v-{secrets.token_hex(8)}")
    t1, t2 = datetime(2026, 1, 1, tzinfo=timezone.utc), datetime(2026, 1, 2, tzinfo=timezone.utc)
    known.read("r", {"Name": "/p", "Value": "other", "Version": 2, "LastModifiedDate": t1}, want)
    assert len(known) == 0
    known.read("r", {"Name": "/p", "Value": want.reveal(), "Version": 2, "LastModifiedDate": t1}, want)
    assert known.holds("r", {"Name": "/p", "Version": 2, "LastModifiedDate": t1}, want)
    assert not known.holds("r", {"Name": "/p", "Version": 2, "LastModifiedDate": t2}, want)  # re-created
    known.keep_only([])
    assert len(known) == 0


def _nowhere(world: dict, d: Daemon, printed: str) -> None:
    text = printed + d.metrics.exposition().decode() + repr(d.aws.known) + repr(d.status())
    for canary in world["canaries"].values():
        assert canary not in text
