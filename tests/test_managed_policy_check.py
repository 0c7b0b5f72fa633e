"""A managedPolicyArns entry that does not exist is found by the read-only check before any write, and a
NoSuchEntity for the policy on AttachRolePolicy is not waited on as if IAM were catching up.

AWS: AttachRolePolicy answers a missing policy with NoSuchEntity, "Policy ARN does not exist or is not
attachable." (seen against IAM in hashicorp/terraform#31748 and pulumi/pulumi#7419; moto matches it
since getmoto/moto#6482); GetPolicy (IAM API reference) answers NoSuchEntity for an ARN that names no policy.
"""

from __future__ import annotations

import secrets
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError

from controller import cli
from controller.aws import retry

pytest.register_assert_rewrite("faultkit")
from faultkit import fast_aws  # noqa: E402,F401 - a fixture: the session's moto without a reset

MISSING = "arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicyTypo"


def manifests(folder: Path, role: str, managed: list[str]) -> Path:
    arns = ", ".join(f"'{a}'" for a in managed)
    (folder / "m.yaml").write_text(f"""apiVersion: ecs-secrets/v1
kind: Parameter
metadata: {{name: db}}
spec:
  name: /{role}/db
  value: {{fromEnv: POLICY_CHECK_DB}}
---
apiVersion: ecs-secrets/v1
kind: ExecutionRole
metadata: {{name: exec}}
spec: {{roleName: {role}, managedPolicyArns: [{arns}]}}
---
apiVersion: ecs-secrets/v1
kind: TaskDefinition
metadata: {{name: web}}
spec:
  family: {role}
  executionRole: exec
  containerDefinitions:
    - name: web
      image: nginx
      memory: 128
      secrets: [{{name: DB, valueFrom: /{role}/db}}]
""")
    return folder


def test_a_managed_policy_that_does_not_exist_stops_reconcile_before_any_write(
        aws_env: str, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    canary = secrets.token_urlsafe(24)
    monkeypatch.setenv("POLICY_CHECK_DB", canary)
    role = "policy-check-" + secrets.token_hex(4)
    folder = manifests(tmp_path, role, ["arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy",
                                        MISSING])
    waits: list[float] = []
    monkeypatch.setattr(retry, "sleep", waits.append)

    code = cli.main(["reconcile", "-f", str(folder), "--region", "us-east-1"])

    out = capsys.readouterr()
    assert code == 1, out.err
    assert waits == []                               # no retries for something that will never appear
    assert MISSING in out.err and "ExecutionRole/exec" in out.err and "before any write" in out.err, out.err
    assert canary not in out.out + out.err
    iam, ssm = boto3.client("iam", "us-east-1"), boto3.client("ssm", "us-east-1")
    with pytest.raises(ClientError) as gone:
        iam.get_role(RoleName=role)
    assert gone.value.response["Error"]["Code"] == "NoSuchEntity"
    assert ssm.get_parameters(Names=[f"/{role}/db"])["Parameters"] == []
    ecs = boto3.client("ecs", "us-east-1")
    assert ecs.list_task_definitions(familyPrefix=role)["taskDefinitionArns"] == []


def test_dry_run_says_so_too(fast_aws: str, tmp_path: Path, capsys: pytest.CaptureFixture,
                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POLICY_CHECK_DB", secrets.token_urlsafe(24))
    folder = manifests(tmp_path, "policy-check-dry", [MISSING])
    assert cli.main(["reconcile", "-f", str(folder), "--region", "us-east-1", "--dry-run"]) == 1
    assert MISSING in capsys.readouterr().err


def test_policies_that_exist_or_are_attached_pass(fast_aws: str, tmp_path: Path, capsys: pytest.CaptureFixture,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POLICY_CHECK_DB", secrets.token_urlsafe(24))
    iam, suffix = boto3.client("iam", "us-east-1"), secrets.token_hex(4)
    own = iam.create_policy(PolicyName=f"policy-check-own-{suffix}", PolicyDocument='{"Version": "2012-10-17", "Statement": '
                            '[{"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "*"}]}')["Policy"]["Arn"]
    role = f"policy-check-ok-{suffix}"
    folder = manifests(tmp_path, role, [own])
    assert cli.main(["reconcile", "-f", str(folder), "--region", "us-east-1"]) == 0, capsys.readouterr().err
    assert [p["PolicyArn"] for p in iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"]] == [own]


def test_attach_of_a_policy_that_does_not_exist_is_not_retried(fast_aws: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from controller.aws import writers
    from controller.aws.session import Aws
    from controller.core import ops
    waits: list[float] = []
    monkeypatch.setattr(retry, "sleep", waits.append)
    op = ops.PutRole(name="policy-check-attach-" + secrets.token_hex(4), path="/", description=None,
                     trust={"Version": "2012-10-17", "Statement": []}, tags={}, inline_name="ecs-secrets",
                     inline=None, attach=(MISSING,))
    with pytest.raises(ClientError) as refused:
        writers.put_role(Aws(region="us-east-1"), op)
    assert refused.value.response["Error"]["Code"] == "NoSuchEntity" and waits == []


def test_a_role_not_visible_yet_is_still_waited_for() -> None:
    def error(message: str) -> ClientError:
        return ClientError({"Error": {"Code": "NoSuchEntity", "Message": message}}, "AttachRolePolicy")
    assert retry.no_such_entity(error("The role with name web-exec cannot be found."))
    assert not retry.no_such_entity(error(f"Policy {MISSING} does not exist or is not attachable."))
