"""`ecs-secrets init`: manifests for what already runs, so a team adopts ecs-secrets in one command.

The round trip: a task definition, its execution role and its parameters made directly with boto3 (as a
team's existing tooling made them), `init`, then reconcile the manifests it wrote. No value is ever read:
init uses DescribeParameters (metadata only; SSM API reference: DescribeParameters "Request results are
returned on a best-effort basis" and returns no values, GetParameters does).
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import boto3
import pytest
import yaml

from controller.cli import main
from controller.core import adopt
from controller.core.taskdef import normalize

REGION, ACCOUNT = "us-east-1", "123456789012"
MANAGED = "arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"


def run(capfd: pytest.CaptureFixture, *argv: str) -> tuple[int, str, str]:
    capfd.readouterr()
    code = main(list(argv))
    out, err = capfd.readouterr()
    return code, out, err


def existing(canary: str) -> None:
    """What a team has before ecs-secrets: made by hand, no owner tag anywhere."""
    iam, ssm, ecs = (boto3.client(s, region_name=REGION) for s in ("iam", "ssm", "ecs"))
    iam.create_role(RoleName="legacy-exec", AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "ecs-tasks.amazonaws.com"},
                                                "Action": "sts:AssumeRole"}]}))
    iam.attach_role_policy(RoleName="legacy-exec", PolicyArn=MANAGED)
    ssm.put_parameter(Name="/legacy/db_password", Type="SecureString", Value=canary, Description="db")
    ssm.put_parameter(Name="/legacy/log_level", Type="String", Value="info")
    ecs.register_task_definition(
        family="legacy_web", executionRoleArn=f"arn:aws:iam::{ACCOUNT}:role/legacy-exec",
        networkMode="awsvpc", requiresCompatibilities=["FARGATE"], cpu="256", memory="512",
        containerDefinitions=[{
            "name": "web", "image": "nginx:1.27", "essential": True,
            "portMappings": [{"containerPort": 80, "protocol": "tcp"}],
            "environment": [{"name": "MODE", "value": "prod"}],
            "secrets": [{"name": "DB_PASSWORD", "valueFrom": "/legacy/db_password"},
                        {"name": "LOG_LEVEL", "valueFrom": f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/legacy/log_level"}],
        }])


def test_init_then_reconcile_registers_nothing_and_reads_no_value(aws_env: str, tmp_path: Path, capfd) -> None:
    canary = secrets.token_urlsafe(24)
    existing(canary)
    out_dir = tmp_path / "adopted"
    code, out, err = run(capfd, "init", "--family", "legacy_web", "-o", str(out_dir))
    assert code == 0, err
    (written,) = sorted(out_dir.glob("*.yaml"))
    text = written.read_text()
    assert canary not in text + out + err
    docs = list(yaml.safe_load_all(text))
    kinds = {(d["kind"], d["metadata"]["name"]) for d in docs}
    assert kinds == {("TaskDefinition", "legacy-web"), ("ExecutionRole", "legacy-exec"),
                     ("Parameter", "legacy-db-password"), ("Parameter", "legacy-log-level")}
    assert all(d["metadata"]["adopt"] is True for d in docs)
    assert not [d for d in docs if d["kind"] == "Parameter" and "value" in d["spec"]]   # managed elsewhere
    (td,) = [d["spec"] for d in docs if d["kind"] == "TaskDefinition"]
    assert td["executionRole"] == "legacy-exec" and "executionRoleArn" not in td
    for dropped in ("revision", "status", "taskDefinitionArn", "registeredAt", "compatibilities",
                    "requiresAttributes", "enableFaultInjection"):
        assert dropped not in td
    assert "essential" not in td["containerDefinitions"][0]               # ECS's default, left out
    (role,) = [d["spec"] for d in docs if d["kind"] == "ExecutionRole"]
    assert role["managedPolicyArns"] == [MANAGED]

    assert run(capfd, "validate", "-f", str(out_dir))[0] == 0
    # Adopting is a write: the owner tag goes on what we take over, and the role gets its derived policy.
    # The task definition's body is unchanged, so no revision is registered.
    code, out, err = run(capfd, "reconcile", "--dry-run", "-f", str(out_dir), "--output", "json")
    assert code == 0, err
    plan = json.loads(out)
    td_changes = [c for c in plan["changes"] if c["kind"] == "TaskDefinition"]
    assert all(f["path"].startswith("tags.") for c in td_changes for f in c["fields"]), td_changes
    assert not [c for c in plan["changes"] if c["kind"] == "Parameter"]

    assert run(capfd, "reconcile", "-f", str(out_dir))[0] == 0
    code, out, err = run(capfd, "reconcile", "--dry-run", "--detailed-exitcode", "-f", str(out_dir))
    assert code == 0, out + err
    ecs = boto3.client("ecs", region_name=REGION)
    assert ecs.list_task_definitions(familyPrefix="legacy_web", status="ACTIVE")["taskDefinitionArns"] == [
        f"arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/legacy_web:1"]      # adopted, not re-registered
    assert boto3.client("ssm", region_name=REGION).get_parameter(
        Name="/legacy/db_password", WithDecryption=True)["Parameter"]["Value"] == canary   # never written


def test_init_from_a_service_prints_to_stdout(aws_env: str, capfd) -> None:
    existing(secrets.token_urlsafe(24))
    ecs = boto3.client("ecs", region_name=REGION)
    ecs.create_cluster(clusterName="prod")
    ecs.create_service(cluster="prod", serviceName="web", taskDefinition="legacy_web:1", desiredCount=1)
    code, out, err = run(capfd, "init", "--service", "prod/web")
    assert code == 0, err
    assert [d["kind"] for d in yaml.safe_load_all(out)] == ["Parameter", "Parameter", "ExecutionRole", "TaskDefinition"]


def test_init_needs_something_to_read(capfd) -> None:
    code, _, err = run(capfd, "init")
    assert code == 1 and "--family" in err


def test_init_refuses_to_overwrite(aws_env: str, tmp_path: Path, capfd) -> None:
    existing(secrets.token_urlsafe(24))
    (tmp_path / "legacy-web.yaml").write_text("# mine\n")
    code, _, err = run(capfd, "init", "--family", "legacy_web", "-o", str(tmp_path))
    assert code == 1 and "never overwrites" in err
    assert (tmp_path / "legacy-web.yaml").read_text() == "# mine\n"


CORPUS = Path(__file__).parent / "corpus"


@pytest.mark.parametrize("path", sorted(CORPUS.glob("*.described.json")), ids=lambda p: p.name.split(".")[0])
def test_the_manifest_of_a_real_answer_normalises_to_the_same_definition(path: Path) -> None:
    """Real DescribeTaskDefinition answers (tests/corpus/SOURCES.md): the spec init writes for one asks ECS
    for exactly what it describes, so the first reconcile registers no revision."""
    described = json.loads(path.read_text())
    described = described.get("taskDefinition", described)
    spec = adopt.task_definition_spec(described)
    assert normalize(spec) == normalize(described)
    assert not set(spec) & {"revision", "status", "taskDefinitionArn", "compatibilities", "requiresAttributes"}
