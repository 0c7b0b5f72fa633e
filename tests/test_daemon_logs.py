"""What the daemon tells its operator: which fields drifted, which revision it registered, who holds the
lease, in timestamps that carry their zone, without botocore's start-up chatter. Through `run`."""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from test_daemon import Replica, client, wait_for

REPO = Path(__file__).resolve().parent.parent
ISO_WITH_ZONE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d) ")


@pytest.fixture
def canary() -> str:
    return f"canary-{secrets.token_urlsafe(12)}"


@pytest.fixture
def world(aws_env: str, tmp_path: Path) -> Path:
    kms = client("kms", aws_env)
    kms.create_alias(AliasName="alias/MyAliasName", TargetKeyId=kms.create_key()["KeyMetadata"]["KeyId"])
    client("secretsmanager", aws_env).create_secret(Name="payments/stripe-token", SecretString="not-read")
    folder = tmp_path / "manifests"
    shutil.copytree(REPO / "manifests", folder)
    return folder


def run_once(world: Path, canary: str, *extra: str) -> subprocess.CompletedProcess:
    argv = [sys.executable, "-m", "controller", "run", "--once", "-f", str(world), "--log-format", "text", *extra]
    return subprocess.run(argv, capture_output=True, text=True, cwd=REPO, timeout=120,
                          env={**os.environ, "DB_PASSWORD": canary})


def test_the_log_says_which_fields_drifted_and_which_revision_was_registered(world, aws_env, canary):
    first = run_once(world, canary)
    assert first.returncode == 0, first.stderr
    assert "registered web:1" in first.stderr
    web = world / "web.yaml"
    web.write_text(web.read_text().replace("nginx:1.27", "nginx:1.28"))
    client("ssm", aws_env).put_parameter(Name="/test/log_level", Value="debug", Type="String", Overwrite=True)

    second = run_once(world, canary)
    assert second.returncode == 0, second.stderr
    err = second.stderr
    assert re.search(r"TaskDefinition/web drifted: .*containerDefinitions\[web\]\.image", err), err
    assert re.search(r"Parameter/log-level drifted: value", err), err
    assert "registered web:2" in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines and all(ISO_WITH_ZONE.match(line) for line in lines), lines   # every line, with its zone
    assert "Found credentials" not in err and "Found endpoint" not in err   # botocore stays at debug
    assert canary not in second.stdout + err


def test_credential_messages_show_at_debug(world, aws_env, canary):
    out = run_once(world, canary, "--log-level", "debug")
    assert "Found credentials in environment variables" in out.stderr
    assert canary not in out.stdout + out.stderr


def test_json_log_time_carries_its_zone(world, aws_env, canary):
    import json
    out = run_once(world, canary, "--log-format", "json")
    records = [json.loads(line) for line in out.stderr.splitlines() if line.startswith("{")]
    assert records
    for record in records:
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}(Z|[+-]\d\d:\d\d)", record["time"]), record


def test_status_names_the_lease_holder_not_itself(world, aws_env, canary, tmp_path):
    lease = ("--lease-table", "ecs-secrets-lease", "--lease-duration", "4", "--lease-renew-deadline", "3",
             "--lease-retry-period", "0.5")
    env = {"DB_PASSWORD": canary}
    a, b = Replica(tmp_path, world, *lease, name="a", env=env), Replica(tmp_path, world, *lease, name="b", env=env)
    try:
        wait_for(lambda: a.status()["holder"] and b.status()["holder"], 30, message="both see a holder")
        sa, sb = a.status(), b.status()
        leader, follower = (sa, sb) if sa["leader"] else (sb, sa)
        assert leader["leader"] and not follower["leader"]
        assert leader["holder"] == leader["identity"]
        assert follower["holder"] == leader["identity"] != follower["identity"]
    finally:
        a.kill()
        b.kill()
