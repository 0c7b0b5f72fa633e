"""Progress on stderr during `reconcile`: each object started and finished, the elapsed time of slow
ones, why we wait when we pace ourselves; a live line on a terminal, plain lines elsewhere, nothing with
--quiet, and never on stdout (the plan, machine-readable with --output json)."""

from __future__ import annotations

import io
import json
import os
import pty
import re
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

import boto3
import pytest

from controller import progress
from controller.cli import main

REPO = Path(__file__).resolve().parent.parent
PACED = ("--rate-limit", "ecs-write=1/1")   # one registration a second, no burst: the second one waits
NOISE = ("creating ", "waiting ", "created", "reading the state")


@pytest.fixture
def canary() -> str:
    return f"canary-{secrets.token_urlsafe(12)}"


@pytest.fixture
def world(aws_env, canary, monkeypatch, tmp_path) -> Path:
    monkeypatch.setenv("DB_PASSWORD", canary)
    kms = boto3.client("kms", endpoint_url=aws_env, region_name="us-east-1")
    kms.create_alias(AliasName="alias/MyAliasName", TargetKeyId=kms.create_key()["KeyMetadata"]["KeyId"])
    boto3.client("secretsmanager", endpoint_url=aws_env, region_name="us-east-1").create_secret(
        Name="payments/stripe-token", SecretString="not-read")
    folder = tmp_path / "manifests"
    shutil.copytree(REPO / "manifests", folder)
    web = (folder / "web.yaml").read_text()
    second = web[web.index("kind: TaskDefinition"):].replace("{name: web}", "{name: web2}").replace(
        "family: web", "family: web2")
    (folder / "web2.yaml").write_text("apiVersion: ecs-secrets/v1\n" + second)
    return folder


def test_plain_progress_on_stderr_names_objects_waits_and_slow_ones(world, capsys, canary):
    code = main(["reconcile", "-f", str(world), *PACED, "--output", "json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    json.loads(out)                                     # stdout stays one JSON document
    assert not any(word in out for word in NOISE)
    for ref in ("Parameter/db-password", "ExecutionRole/web-exec", "TaskDefinition/web", "TaskDefinition/web2"):
        assert f"creating {ref}\n" in err and re.search(rf"\[\d/6\] {ref}: created", err), err
    # the ECS registration quota is 1/s here: the second registration waited, and says so, and took long
    assert re.search(r"waiting \d\.\ds for the ECS registration quota, 1/s\n", err), err
    assert re.search(r"\[\d/6\] TaskDefinition/web2?: created in \d+\.\ds\n", err), err
    assert "\r" not in err                               # no live line outside a terminal
    assert canary not in out + err


def test_quiet_silences_progress_but_not_the_plan(world, capsys, canary):
    code = main(["reconcile", "-f", str(world), *PACED, "--quiet"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "Plan: 6 to create" in out
    assert not any(word in err for word in NOISE), err
    assert canary not in out + err


@pytest.mark.slow
def test_a_terminal_gets_a_live_line(world, canary):
    primary, secondary = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "controller", "reconcile", "-f", str(world), *PACED],
                            stdout=subprocess.PIPE, stderr=secondary, cwd=REPO,
                            env={**os.environ, "DB_PASSWORD": canary})
    os.close(secondary)
    chunks = []
    while True:
        try:
            chunk = os.read(primary, 65536)
        except OSError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    out = proc.stdout.read().decode()
    assert proc.wait(timeout=60) == 0
    os.close(primary)
    err = b"".join(chunks).decode()
    assert "\r\x1b[Kcreating TaskDefinition/web" in err     # rewritten in place
    assert re.search(r"TaskDefinition/web2?: created", err)
    assert "\r" not in out and "creating " not in out
    assert canary not in out + err


def test_plain_waits_are_said_once_per_quota_and_while():
    clock = [0.0]
    stream = io.StringIO()
    p = progress.Progress(stream, live=False, clock=lambda: clock[0])
    for _ in range(5):
        p.waiting("the ECS registration quota", 1, 1.0)
        clock[0] += 1
    p.waiting("the IAM quota", 10, 0.1)
    clock[0] += progress.QUIET_WAITS
    p.waiting("the ECS registration quota", 1, 1.0)
    assert stream.getvalue().splitlines() == ["waiting 1.0s for the ECS registration quota, 1/s",
                                              "waiting 0.1s for the IAM quota, 10/s",
                                              "waiting 1.0s for the ECS registration quota, 1/s"]
