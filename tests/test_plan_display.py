"""The plan as a person reads it, through `reconcile --dry-run` against moto's server: IAM actions as
written, lists as items added and removed, the revision a change registers, secrets in manifest order,
no placeholders, colour only on a terminal, and --output markdown for a pull-request comment."""

from __future__ import annotations

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

from controller.cli import main

REPO = Path(__file__).resolve().parent.parent
ROLE = "ecsTaskExecutionRole-web"
READ_ONLY = "arn:aws:iam::aws:policy/ReadOnlyAccess"


@pytest.fixture
def canary() -> str:
    return f"canary-{secrets.token_urlsafe(12)}"


@pytest.fixture
def world(aws_env, canary, monkeypatch, tmp_path) -> Path:
    monkeypatch.setenv("DB_PASSWORD", canary)
    kms = client("kms", aws_env)
    kms.create_alias(AliasName="alias/MyAliasName", TargetKeyId=kms.create_key()["KeyMetadata"]["KeyId"])
    client("secretsmanager", aws_env).create_secret(Name="payments/stripe-token", SecretString="not-read")
    folder = tmp_path / "manifests"
    shutil.copytree(REPO / "manifests", folder)
    return folder


def client(service: str, url: str | None = None):
    return boto3.client(service, endpoint_url=url or os.environ["AWS_ENDPOINT_URL"], region_name="us-east-1")


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def drift(world: Path) -> None:
    """Out-of-band changes of every kind, and a manifest edit of the task definition."""
    iam = client("iam")
    iam.attach_role_policy(RoleName=ROLE, PolicyArn=READ_ONLY)
    document = json.loads(json.dumps(iam.get_role_policy(RoleName=ROLE, PolicyName="ecs-secrets")["PolicyDocument"]))
    reads = next(s for s in document["Statement"] if s.get("Sid") == "ReadParameters")
    reads["Action"] = "SSM:GetParameters"                # IAM compares actions case-insensitively
    dropped = reads["Resource"].pop()                    # and this grant went missing
    iam.put_role_policy(RoleName=ROLE, PolicyName="ecs-secrets", PolicyDocument=json.dumps(document))
    ssm = client("ssm")
    ssm.remove_tags_from_resource(ResourceType="Parameter", ResourceId="/test/database_password", TagKeys=["team"])
    web = world / "web.yaml"
    web.write_text(web.read_text().replace("nginx:1.27", "nginx:1.28").replace(
        "      secrets:\n", "      secrets:\n        - name: ZZ_FIRST\n          valueFrom: /test/log_level\n"))
    return dropped


def test_an_update_plan_reads_as_written(world, capsys, canary):
    assert run(capsys, "reconcile", "-f", str(world))[0] == 0
    dropped = drift(world)
    code, out, err = run(capsys, "reconcile", "--dry-run", "-f", str(world))
    assert code == 0, err
    # the task definition: the revision it registers, its fields by container and variable name
    assert "~ TaskDefinition/web will be updated (registers web:2)" in out
    assert '~ containerDefinitions[web].image: "public.ecr.aws/nginx/nginx:1.27" -> ' \
           '"public.ecr.aws/nginx/nginx:1.28"' in out
    assert '+ containerDefinitions[web].secrets[ZZ_FIRST].valueFrom = "/test/log_level"' in out
    # the role: the managed policy detached as one removed item, the missing grant as one added item
    assert re.search(r'~ managedPolicyArns:\n\s+- "arn:aws:iam::aws:policy/ReadOnlyAccess"\n', out), out
    assert re.search(r'~ inlinePolicy\.ecs-secrets\.Statement\[ReadParameters\]\.Resource:\n\s+\+ '
                     + re.escape(json.dumps(dropped)) + r"\n", out), out
    assert "ssm:getparameters" not in out and "kms:decrypt" not in out     # as written, never lower-cased
    assert "AmazonECSTaskExecutionRolePolicy" not in out                    # the unchanged item is not reprinted
    # the parameter's tags: each one written, no placeholder
    assert '+ tags.team = "payments"' in out
    for placeholder in ("(differ)", "null", "\033["):
        assert placeholder not in out                                      # nor colour into a pipe
    assert canary not in out + err


def test_create_lists_secrets_in_manifest_order_and_no_null_inline_policy(world, capsys, tmp_path):
    (world / "bare.yaml").write_text("""apiVersion: ecs-secrets/v1
kind: ExecutionRole
metadata: {name: bare}
spec:
  roleName: bare-exec
""")
    code, out, err = run(capsys, "reconcile", "--dry-run", "-f", str(world))
    assert code == 0, err
    order = re.findall(r"secrets\[([A-Z_]+)\]", out)
    assert order == ["DATABASE_PASSWORD", "API_KEY", "LOG_LEVEL", "STRIPE_TOKEN"]
    bare = out[out.index("ExecutionRole/bare"):].split("\n\n")[0]
    assert "inlinePolicy" not in bare and "null" not in bare


def test_markdown_names_the_fields_never_a_value(world, capsys, canary):
    code, out, err = run(capsys, "reconcile", "--dry-run", "-f", str(world), "--output", "markdown")
    assert code == 0, err
    assert out.startswith("#### ecs-secrets: Plan: 5 to create, 0 to update, 0 to delete.")
    assert "| + | `Parameter/db-password` | create | " in out
    assert "`value` (sensitive value)" in out
    assert "`containerDefinitions[web].secrets[API_KEY].valueFrom`" in out
    assert "registers web's first active revision" in out
    for i, value in enumerate(("/test/database_password\"", "payments", "nginx:1.27", "info", canary)):
        assert value not in out, f"value #{i} is in the markdown"   # never the value itself: one is the canary


def tty_run(argv: list[str], env: dict[str, str]) -> str:
    """Run the command with its stdout on a pseudo-terminal, as a person at a shell does."""
    primary, secondary = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "controller", *argv], stdout=secondary, stderr=subprocess.PIPE,
                            cwd=REPO, env=env)
    os.close(secondary)
    chunks = []
    while True:
        try:
            chunk = os.read(primary, 65536)
        except OSError:   # EIO: the other side closed
            break
        if not chunk:
            break
        chunks.append(chunk)
    proc.wait(timeout=60)
    os.close(primary)
    return b"".join(chunks).decode()


@pytest.mark.slow
def test_colour_on_a_terminal_and_never_with_no_color(world, canary):
    env = {**os.environ, "DB_PASSWORD": canary}
    env.pop("NO_COLOR", None)
    env.pop("TERM", None)
    coloured = tty_run(["reconcile", "--dry-run", "-f", str(world)], env)
    assert "\033[32m  + " in coloured and "Plan: 5 to create" in coloured
    plain = tty_run(["reconcile", "--dry-run", "-f", str(world)], {**env, "NO_COLOR": "1"})
    assert "\033[" not in plain and "Plan: 5 to create" in plain
    assert canary not in coloured + plain
