"""The one-shot controller as a user runs it: the CLI against moto's server over HTTP."""

from __future__ import annotations

import json
import secrets
import shutil

import boto3
import pytest

from controller.cli import main
from faultproxy import FaultProxy


@pytest.fixture
def canary() -> str:
    return f"canary-{secrets.token_hex(12)}"


@pytest.fixture
def proxy(aws_env, monkeypatch):
    """Every request goes through a counting proxy, so tests can prove that nothing was written."""
    with FaultProxy(aws_env) as p:
        monkeypatch.setenv("AWS_ENDPOINT_URL", p.url)
        yield p


@pytest.fixture
def world(aws_env, canary, monkeypatch):
    """What the documentation scenario expects to exist already: a KMS alias and a secret."""
    monkeypatch.setenv("DB_PASSWORD", canary)
    kms = client("kms", aws_env)
    key = kms.create_key()["KeyMetadata"]["KeyId"]
    kms.create_alias(AliasName="alias/MyAliasName", TargetKeyId=key)
    client("secretsmanager", aws_env).create_secret(Name="payments/stripe-token", SecretString="not-read")
    return aws_env


def client(service: str, url: str):
    return boto3.client(service, endpoint_url=url, region_name="us-east-1")


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def revisions(url: str, family: str = "web") -> list[str]:
    return client("ecs", url).list_task_definitions(familyPrefix=family)["taskDefinitionArns"]


def test_documentation_scenario_converges_and_second_run_writes_nothing(world, proxy, capsys, canary):
    code, out, err = run(capsys, "reconcile", "-f", "manifests", "--log-level", "debug")
    assert code == 0, err
    assert "Plan: 5 to create, 0 to update, 0 to delete." in out
    ssm = client("ssm", world)
    assert ssm.get_parameter(Name="/test/database_password", WithDecryption=True)["Parameter"]["Value"] == canary
    assert ssm.get_parameter(Name="/test/api_key")["Parameter"]["Version"] == 1
    role = client("iam", world).get_role_policy(RoleName="ecsTaskExecutionRole-web", PolicyName="ecs-secrets")
    assert "*" not in json.dumps(role["PolicyDocument"])
    proxy.reset_counts()
    code, out2, err2 = run(capsys, "reconcile", "-f", "manifests", "--log-level", "debug")
    assert code == 0 and "No changes. Everything is in sync." in out2
    assert proxy.writes() == 0, proxy.calls
    assert ssm.get_parameter(Name="/test/database_password")["Parameter"]["Version"] == 1
    assert len(revisions(world)) == 1
    assert canary not in out + err + out2 + err2


def test_dry_run_on_empty_account_writes_nothing(world, proxy, capsys):
    code, out, _ = run(capsys, "reconcile", "-f", "manifests", "--dry-run", "--detailed-exitcode")
    assert code == 2 and "Plan: 5 to create" in out
    assert proxy.writes() == 0
    code, out, _ = run(capsys, "reconcile", "-f", "manifests", "--dry-run")
    assert code == 0
    assert client("ssm", world).describe_parameters()["Parameters"] == []


def test_json_plan_shape(world, capsys, canary):
    code, out, _ = run(capsys, "reconcile", "-f", "manifests", "--dry-run", "--output", "json")
    plan = json.loads(out)
    assert code == 0 and plan["summary"] == {"create": 5, "update": 0, "delete": 0}
    change = plan["changes"][0]
    assert set(change) >= {"kind", "name", "action", "fields"} and change["kind"] == "Parameter"
    value = next(f for f in change["fields"] if f["path"] == "value")
    assert value["after"] == "(sensitive value)" and canary not in out


def test_drift_is_planned_and_repaired(world, capsys, canary):
    assert run(capsys, "reconcile", "-f", "manifests")[0] == 0
    ssm, iam, ecs = client("ssm", world), client("iam", world), client("ecs", world)
    ssm.put_parameter(Name="/test/database_password", Value="changed-out-of-band", Type="SecureString", Overwrite=True)
    iam.put_role_policy(RoleName="ecsTaskExecutionRole-web", PolicyName="ecs-secrets", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "ssm:*", "Resource": "*"}]}))
    body = ecs.describe_task_definition(taskDefinition="web")["taskDefinition"]
    body["containerDefinitions"][0]["image"] = "evil:latest"
    ecs.register_task_definition(**{k: body[k] for k in ("family", "containerDefinitions", "executionRoleArn",
                                                         "networkMode", "requiresCompatibilities", "cpu", "memory")})
    code, out, _ = run(capsys, "reconcile", "-f", "manifests", "--dry-run", "--detailed-exitcode")
    assert code == 2
    assert "~ Parameter/db-password" in out and "~ ExecutionRole/web-exec" in out and "~ TaskDefinition/web" in out
    assert "changed-out-of-band" not in out
    code, out, err = run(capsys, "reconcile", "-f", "manifests")
    assert code == 0, err
    assert ssm.get_parameter(Name="/test/database_password", WithDecryption=True)["Parameter"]["Value"] == canary
    doc = iam.get_role_policy(RoleName="ecsTaskExecutionRole-web", PolicyName="ecs-secrets")["PolicyDocument"]
    assert doc["Statement"][0]["Action"] == "ssm:GetParameters"
    latest = ecs.describe_task_definition(taskDefinition="web")["taskDefinition"]
    assert latest["containerDefinitions"][0]["image"] == "public.ecr.aws/nginx/nginx:1.27" and latest["revision"] == 3
    assert run(capsys, "reconcile", "-f", "manifests", "--dry-run", "--detailed-exitcode")[0] == 0


@pytest.mark.parametrize("edit, needle", [
    (lambda t: t.replace("name: /test/database_password", "name: test/database_password"),
     "a name with a path must start with '/'"),
    (lambda t: t.replace("kmsKeyId: alias/MyAliasName", "kmsKeyId: alias/DoesNotExist"), "alias/DoesNotExist"),
    (lambda t: t.replace("fromEnv: DB_PASSWORD", "fromEnv: NOT_SET_ANYWHERE"), "NOT_SET_ANYWHERE"),
])
def test_refusals_exit_1_and_touch_nothing(world, proxy, capsys, tmp_path, edit, needle):
    shutil.copytree("manifests", tmp_path / "m")
    f = tmp_path / "m" / "parameters.yaml"
    f.write_text(edit(f.read_text()))
    code, out, err = run(capsys, "reconcile", "-f", str(tmp_path / "m"))
    assert code == 1 and needle in err and "Traceback" not in err
    assert proxy.writes() == 0


def test_unowned_parameter_is_refused_unless_adopted(world, proxy, capsys, tmp_path):
    client("ssm", world).put_parameter(Name="/test/log_level", Value="debug", Type="String")
    proxy.reset_counts()
    code, _, err = run(capsys, "reconcile", "-f", "manifests")
    assert code == 1 and "adopt: true" in err and proxy.writes() == 0
    shutil.copytree("manifests", tmp_path / "m")
    f = tmp_path / "m" / "parameters.yaml"
    f.write_text(f.read_text().replace("metadata: {name: log-level}", "metadata: {name: log-level, adopt: true}"))
    assert run(capsys, "reconcile", "-f", str(tmp_path / "m"))[0] == 0
    assert client("ssm", world).get_parameter(Name="/test/log_level")["Parameter"]["Value"] == "info"


def test_canary_in_no_output_of_any_command(world, capsys, canary):
    outputs = []
    for argv in (["validate"], ["reconcile", "--dry-run"], ["reconcile"], ["reconcile", "--dry-run", "--output", "json"]):
        for fmt in ("text", "json"):
            code, out, err = run(capsys, *argv, "-f", "manifests", "--log-level", "debug", "--log-format", fmt)
            assert code == 0, err
            outputs.append(out + err)
    assert all(canary not in o for o in outputs)


def test_prune_deletes_only_owned_delete_policy_objects(world, capsys, tmp_path):
    shutil.copytree("manifests", tmp_path / "m")
    f = tmp_path / "m" / "parameters.yaml"
    f.write_text(f.read_text().replace("  type: String\n", "  type: String\n  deletionPolicy: Delete\n"))
    assert run(capsys, "reconcile", "-f", str(tmp_path / "m"))[0] == 0
    docs = f.read_text().split("---\n")
    f.write_text("---\n".join(d for d in docs if "log-level" not in d))
    web = tmp_path / "m" / "web.yaml"
    web.write_text(web.read_text().replace("        - name: LOG_LEVEL\n          valueFrom: /test/log_level\n", ""))
    code, out, err = run(capsys, "reconcile", "-f", str(tmp_path / "m"), "--prune")
    assert code == 0, err
    assert "will be deleted" not in out
    names = {p["Name"] for p in client("ssm", world).describe_parameters()["Parameters"]}
    # the old revision still reads /test/log_level, so the in-use guard keeps it until that revision goes
    assert "/test/log_level" in names
    ecs = client("ecs", world)
    ecs.deregister_task_definition(taskDefinition="web:1")
    code, out, err = run(capsys, "reconcile", "-f", str(tmp_path / "m"), "--prune")
    assert code == 0, err
    assert "- Parameter//test/log_level will be deleted" in out
    names = {p["Name"] for p in client("ssm", world).describe_parameters()["Parameters"]}
    assert "/test/log_level" not in names and "/test/database_password" in names


def test_max_deletions_stops_before_any_write(aws_env, proxy, capsys, tmp_path):
    doc = ("apiVersion: ecs-secrets/v1\nkind: Parameter\nmetadata: {{name: p{i}}}\nspec:\n  name: /plain/p{i}\n"
           "  type: String\n  deletionPolicy: Delete\n  value: {{literal: x{i}}}\n")
    f = tmp_path / "m.yaml"
    f.write_text("---\n".join(doc.format(i=i) for i in range(4)))
    assert run(capsys, "reconcile", "-f", str(f))[0] == 0
    f.write_text(doc.format(i=0))
    proxy.reset_counts()
    code, _, err = run(capsys, "reconcile", "-f", str(f), "--prune", "--max-deletions", "2")
    assert code == 1 and "--max-deletions" in err and proxy.writes() == 0
    code, out, err = run(capsys, "reconcile", "-f", str(f), "--prune", "--max-deletions", "3")
    assert code == 0 and "0 to create, 0 to update, 3 to delete" in out
    assert [p["Name"] for p in client("ssm", aws_env).describe_parameters()["Parameters"]] == ["/plain/p0"]
