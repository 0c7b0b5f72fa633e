"""Through moto's server (``aws_env``): reconcile derives and writes the grants for registry credentials,
an S3 environment file and awslogs-create-group, and verify passes them; a missing S3 environment file
stops reconcile before any write.

moto does not evaluate IAM resources, so what proves "allowed" here is verify's own evaluator
(controller/verify/iam_eval.py) reading the policy reconcile wrote. The AWS sources for each grant are
in tests/test_task_reads.py.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import boto3
import pytest

from controller.cli import main

ACCOUNT = "123456789012"  # moto's


def client(service: str):
    return boto3.client(service, region_name="us-east-1")


MANIFEST = """\
apiVersion: ecs-secrets/v1
kind: ExecutionRole
metadata: {name: exec}
spec: {roleName: app-exec}
---
apiVersion: ecs-secrets/v1
kind: TaskDefinition
metadata: {name: app}
spec:
  family: app
  executionRole: exec
  containerDefinitions:
    - name: app
      image: registry.example.com/team/app:1
      memory: 512
      repositoryCredentials: {credentialsParameter: registry/creds}
      environmentFiles: [{type: s3, value: "arn:aws:s3:::app-config/prod.env"}]
      logConfiguration:
        logDriver: awslogs
        options: {awslogs-group: /ecs/app, awslogs-region: us-east-1, awslogs-create-group: "true",
                  awslogs-stream-prefix: app}
"""


@pytest.fixture
def folder(aws_env: str, tmp_path: Path) -> Path:
    (tmp_path / "app.yaml").write_text(MANIFEST)
    return tmp_path


@pytest.fixture
def canary() -> str:
    return f"canary-{secrets.token_urlsafe(12)}"


def run(capsys, *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out + err


def test_reconcile_writes_the_grants_and_verify_passes(folder: Path, capsys, canary: str) -> None:
    key = client("kms").create_key()["KeyMetadata"]["Arn"]
    secret = client("secretsmanager").create_secret(Name="registry/creds", KmsKeyId=key,
                                                    SecretString=json.dumps({"username": "u", "password": canary}))
    s3 = client("s3")
    s3.create_bucket(Bucket="app-config")
    s3.put_object(Bucket="app-config", Key="prod.env", Body=f"TOKEN={canary}\n".encode())

    code, out = run(capsys, "reconcile", "-f", str(folder))
    assert code == 0, out
    document = client("iam").get_role_policy(RoleName="app-exec", PolicyName="ecs-secrets")["PolicyDocument"]
    assert {s["Sid"]: (s["Action"], s["Resource"]) for s in document["Statement"]} == {
        "ReadSecrets": ("secretsmanager:GetSecretValue", [secret["ARN"]]),
        "DecryptWithCustomKeys": ("kms:Decrypt", [key]),
        "ReadS3Files": ("s3:GetObject", ["arn:aws:s3:::app-config/prod.env"]),
        "LocateS3FileBuckets": ("s3:GetBucketLocation", ["arn:aws:s3:::app-config"]),
        "CreateLogGroups": ("logs:CreateLogGroup", [f"arn:aws:logs:us-east-1:{ACCOUNT}:log-group:/ecs/app:*"]),
    }
    registered = client("ecs").describe_task_definition(taskDefinition="app")["taskDefinition"]
    assert registered["containerDefinitions"][0]["repositoryCredentials"] == {"credentialsParameter": "registry/creds"}

    code, report = run(capsys, "verify", "-f", str(folder), "--output", "json")
    rows = {r["variable"]: (r["verdict"], r["reason"]) for r in json.loads(report)["rows"]}
    assert code == 0, report
    assert rows == {"repositoryCredentials": ("allowed", ""), "environmentFiles[0]": ("allowed", ""),
                    "awslogs-create-group": ("allowed", "")}

    # the file deleted out of band: verify says so; the grant taken away: verify says which
    s3.delete_object(Bucket="app-config", Key="prod.env")
    code, report = run(capsys, "verify", "-f", str(folder), "--output", "json")
    rows = {r["variable"]: r["verdict"] for r in json.loads(report)["rows"]}
    assert code == 1 and rows["environmentFiles[0]"] == "missing"
    document["Statement"] = [s for s in document["Statement"] if s["Sid"] != "CreateLogGroups"]
    client("iam").put_role_policy(RoleName="app-exec", PolicyName="ecs-secrets", PolicyDocument=json.dumps(document))
    code, report = run(capsys, "verify", "-f", str(folder), "--output", "json")
    rows = {r["variable"]: r["verdict"] for r in json.loads(report)["rows"]}
    assert code == 1 and rows["awslogs-create-group"] == "denied"
    assert canary not in out + report


def test_a_missing_s3_environment_file_is_refused_before_any_write(folder: Path, capsys) -> None:
    client("secretsmanager").create_secret(Name="registry/creds", SecretString="{}")
    client("s3").create_bucket(Bucket="app-config")            # the bucket, but not the file

    code, out = run(capsys, "reconcile", "-f", str(folder))
    assert code != 0
    assert "S3 object s3://app-config/prod.env does not exist" in out
    iam = client("iam")
    assert "app-exec" not in {r["RoleName"] for r in iam.list_roles()["Roles"]}
    assert client("ecs").list_task_definitions()["taskDefinitionArns"] == []
    assert client("ssm").describe_parameters()["Parameters"] == []


@pytest.mark.slow  # CI time: covered again by `-m slow` (README, Testing)
def test_prune_keeps_a_parameter_an_fsx_volume_of_an_active_revision_reads(aws_env: str, tmp_path: Path,
                                                                          capsys) -> None:
    """FSxWindowsFileServerAuthorizationConfig.credentialsParameter (ECS API reference) may be an SSM
    parameter ARN: the agent reads it at task start, like a container secret, so it is in use."""
    (tmp_path / "p.yaml").write_text("""\
apiVersion: ecs-secrets/v1
kind: Parameter
metadata: {name: fsx-creds}
spec: {name: /fsx/creds, type: String, deletionPolicy: Delete, value: {literal: "user"}}
""")
    assert run(capsys, "reconcile", "-f", str(tmp_path))[0] == 0
    client("ecs").register_task_definition(   # not ours
        family="windows", executionRoleArn=f"arn:aws:iam::{ACCOUNT}:role/x",
        containerDefinitions=[{"name": "c", "image": "mcr.microsoft.com/windows/servercore", "memory": 512}],
        volumes=[{"name": "share", "fsxWindowsFileServerVolumeConfiguration": {
            "fileSystemId": "fs-0123456789abcdef0", "rootDirectory": "share", "authorizationConfig": {
                "credentialsParameter": f"arn:aws:ssm:us-east-1:{ACCOUNT}:parameter/fsx/creds",
                "domain": "example.com"}}}])
    (tmp_path / "p.yaml").unlink()
    (tmp_path / "other.yaml").write_text("""\
apiVersion: ecs-secrets/v1
kind: Parameter
metadata: {name: anchor}
spec: {name: /fsx/anchor, type: String, value: {literal: "x"}}
""")
    code, out = run(capsys, "reconcile", "-f", str(tmp_path), "--prune")
    assert code == 0, out
    names = {p["Name"] for p in client("ssm").describe_parameters()["Parameters"]}
    assert "/fsx/creds" in names
