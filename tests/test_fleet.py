"""A fleet as a user runs it: one controller, three accounts, two Regions, against moto's server over HTTP.

The controller's own account is moto's default (123456789012, credentials "testing"); the targets' accounts
are reached the way a real controller reaches them, through sts:AssumeRole into a role of that account.
moto assumes any role, even one that does not exist, and ignores trust policies and external ids
(moto/sts/models.py ``assume_role``); the faithful test AWS (controller/sandbox/faithful_sts.py) answers as
STS does: AccessDenied unless the role exists and its trust policy allows the caller, with the external id its
condition requires (STS AssumeRole API reference, Errors and ExternalId; IAM User Guide, "Access to AWS
accounts owned by third parties").
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import boto3
import pytest

from controller.cli import main

OWN = "123456789012"
A, B = "111111111111", "222222222222"
EU, US = "eu-west-1", "us-east-2"
ROLE = "ecs-secrets-fleet"


def client(service: str, url: str, account: str = OWN, region: str = "us-east-1"):
    """A client of ``account`` (moto's x-moto-account-id header): how the test looks into each account."""
    c = boto3.client(service, endpoint_url=url, region_name=region)
    if account != OWN:
        c.meta.events.register("before-sign.*.*", lambda request, **_: request.headers.__setitem__(
            "x-moto-account-id", account))
    return c


def trust(external_id: str | None = None, principal: str = f"arn:aws:iam::{OWN}:root") -> str:
    statement = {"Effect": "Allow", "Principal": {"AWS": principal}, "Action": "sts:AssumeRole"}
    if external_id:
        statement["Condition"] = {"StringEquals": {"sts:ExternalId": external_id}}
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


def make_role(url: str, account: str, external_id: str | None = None) -> None:
    client("iam", url, account).create_role(RoleName=ROLE, AssumeRolePolicyDocument=trust(external_id))


def target(name: str, account: str, region: str, external_id: str | None = None) -> str:
    spec = {"account": account, "region": region, "roleArn": f"arn:aws:iam::{account}:role/{ROLE}"}
    if external_id:
        spec["externalId"] = external_id
    return json.dumps({"apiVersion": "ecs-secrets/v1", "kind": "Target", "metadata": {"name": name}, "spec": spec})


def doc(kind: str, name: str, spec: dict, targets: list[str] | None = None) -> str:
    metadata: dict = {"name": name}
    if targets is not None:
        metadata["targets"] = targets
    return json.dumps({"apiVersion": "ecs-secrets/v1", "kind": kind, "metadata": metadata, "spec": spec})


def app(targets: list[str] | None) -> list[str]:
    """A parameter, its execution role and the task definition that reads it, sent to ``targets``."""
    return [
        doc("Parameter", "db", {"name": "/app/db", "value": {"fromEnv": "DB_PASSWORD"}}, targets),
        doc("ExecutionRole", "web-exec", {"roleName": "web-exec"}, targets),
        doc("TaskDefinition", "web", {"family": "web", "executionRole": "web-exec", "containerDefinitions": [
            {"name": "web", "image": "nginx:1.27", "memory": 128,
             "secrets": [{"name": "DB", "valueFrom": "/app/db"}]}]}, targets),
    ]


@pytest.fixture
def canary(monkeypatch) -> str:
    value = f"canary-{secrets.token_urlsafe(12)}"
    monkeypatch.setenv("DB_PASSWORD", value)
    return value


@pytest.fixture
def fleet(aws_env, tmp_path, canary) -> dict:
    """Targets a-eu and a-us (account A, two Regions) and b-eu (account B, with an external id), their roles,
    and manifests: the app in a-eu and b-eu, a parameter in a-us, and one object of the controller's own."""
    make_role(aws_env, A)
    make_role(aws_env, B, external_id="fleet-b")
    docs = [target("a-eu", A, EU), target("a-us", A, US), target("b-eu", B, EU, "fleet-b"),
            *app(["a-eu", "b-eu"]),
            doc("Parameter", "flag", {"name": "/app/flag", "type": "String", "value": {"literal": "on"}}, ["a-us"]),
            doc("Parameter", "own", {"name": "/own/flag", "type": "String", "value": {"literal": "x"}})]
    path = tmp_path / "fleet.yaml"
    path.write_text("\n---\n".join(docs))
    return {"url": aws_env, "path": str(path)}


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def names(url: str, account: str, region: str) -> set[str]:
    return {p["Name"] for p in client("ssm", url, account, region).describe_parameters()["Parameters"]}


def families(url: str, account: str, region: str) -> list[str]:
    return client("ecs", url, account, region).list_task_definitions()["taskDefinitionArns"]


@pytest.mark.slow
def test_objects_land_only_in_their_targets_and_reports_name_them(fleet, capsys, canary):
    url = fleet["url"]
    code, out, err = run(capsys, "reconcile", "-f", fleet["path"], "--dry-run", "--output", "json")
    assert code == 0, err
    changes = json.loads(out)["changes"]
    got = {(c["kind"], c["name"], c["target"]) for c in changes}
    assert ("Parameter", "db", "a-eu") in got and ("TaskDefinition", "web", "b-eu") in got
    assert ("Parameter", "own", None) in got and len(got) == len(changes) == 8
    code, out, err = run(capsys, "reconcile", "-f", fleet["path"])
    assert code == 0, err
    assert "+ Parameter/db@a-eu will be created" in out and "+ TaskDefinition/web@b-eu will be created" in out
    assert "+ Parameter/flag@a-us will be created" in out and "+ Parameter/own will be created" in out
    assert "Parameter/db@b-eu: created, version 1" in out   # the apply report
    assert "Parameter/db@a-eu" in err                        # the progress lines
    assert names(url, A, EU) == {"/app/db"} and names(url, B, EU) == {"/app/db"}
    assert names(url, A, US) == {"/app/flag"} and names(url, OWN, "us-east-1") == {"/own/flag"}
    assert names(url, OWN, EU) == set() and names(url, B, US) == set()
    assert len(families(url, A, EU)) == 1 and len(families(url, B, EU)) == 1 and families(url, A, US) == []
    role = client("iam", url, B).get_role_policy(RoleName="web-exec", PolicyName="ecs-secrets")["PolicyDocument"]
    assert role["Statement"][0]["Resource"] == [f"arn:aws:ssm:{EU}:{B}:parameter/app/db"]   # its own account
    td = client("ecs", url, B, EU).describe_task_definition(taskDefinition="web")["taskDefinition"]
    assert td["executionRoleArn"] == f"arn:aws:iam::{B}:role/web-exec"
    value = client("ssm", url, A, EU).get_parameter(Name="/app/db", WithDecryption=True)["Parameter"]["Value"]
    assert value == canary and canary not in out + err
    code, out, err = run(capsys, "reconcile", "-f", fleet["path"], "--dry-run", "--output", "json")
    assert code == 0 and json.loads(out)["changes"] == []   # converged: every target in sync


@pytest.mark.slow
def test_all_or_nothing_spans_targets(fleet, capsys):
    """A parameter in target b-eu that we do not own blocks the whole run: nothing is written in a-eu either."""
    url = fleet["url"]
    client("ssm", url, B, EU).put_parameter(Name="/app/db", Value="someone else's", Type="String")
    code, out, err = run(capsys, "reconcile", "-f", fleet["path"])
    assert code == 1
    assert "Parameter/db@b-eu" in out + err and "ecs-secrets:owner" in out + err
    assert names(url, A, EU) == set() and names(url, A, US) == set() and names(url, OWN, "us-east-1") == set()
    assert families(url, A, EU) == []


@pytest.mark.slow
def test_a_target_that_cannot_be_assumed_fails_before_any_write(fleet, capsys):
    """A wrong external id: STS says AccessDenied; the one-shot names the target and writes nothing anywhere."""
    url = fleet["url"]
    client("iam", url, B).update_assume_role_policy(RoleName=ROLE, PolicyDocument=trust("another-id"))
    code, out, err = run(capsys, "reconcile", "-f", fleet["path"])
    assert code == 1
    assert "Target/b-eu" in err and "AccessDenied" in err and f"arn:aws:iam::{B}:role/{ROLE}" in err
    assert names(url, A, EU) == set() and names(url, OWN, "us-east-1") == set()


@pytest.mark.slow
@pytest.mark.parametrize("break_it", ["missing role", "untrusted caller"])
def test_missing_or_untrusting_role_is_access_denied(fleet, capsys, break_it):
    url = fleet["url"]
    iam = client("iam", url, A)
    if break_it == "missing role":
        iam.delete_role(RoleName=ROLE)
    else:
        iam.update_assume_role_policy(RoleName=ROLE, PolicyDocument=trust(principal="arn:aws:iam::999999999999:root"))
    code, _, err = run(capsys, "reconcile", "-f", fleet["path"], "--dry-run")
    assert code == 1 and "Target/a-eu" in err and "Target/a-us" in err and "AccessDenied" in err
    assert "Target/b-eu" not in err   # the others were assumed


@pytest.mark.slow
def test_target_flag_limits_the_run(fleet, capsys):
    url = fleet["url"]
    code, out, err = run(capsys, "reconcile", "-f", fleet["path"], "--target", "a-us")
    assert code == 0, err
    assert "Parameter/flag@a-us" in out and "@a-eu" not in out and "Parameter/own" not in out
    assert names(url, A, US) == {"/app/flag"}
    assert names(url, A, EU) == set() and names(url, B, EU) == set() and names(url, OWN, "us-east-1") == set()
    code, _, err = run(capsys, "reconcile", "-f", fleet["path"], "--target", "nowhere")
    assert code == 1 and "--target nowhere" in err and "a-eu" in err


@pytest.mark.slow
def test_daemon_isolates_a_denied_target(fleet, capsys, caplog):
    """`run --once`: b-eu's role refuses us; its objects are in error with STS's reason, the rest converge."""
    url = fleet["url"]
    client("iam", url, B).delete_role(RoleName=ROLE)
    code, _, err = run(capsys, "run", "-f", fleet["path"], "--once", "--log-format", "json")
    assert code == 1   # not everything converged
    assert names(url, A, EU) == {"/app/db"} and names(url, A, US) == {"/app/flag"}
    assert names(url, OWN, "us-east-1") == {"/own/flag"} and names(url, B, EU) == set()
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    errors = {rec.get("object") for rec in lines if "is error" in rec.get("message", "")}
    assert {"Parameter/db@b-eu", "ExecutionRole/web-exec@b-eu", "TaskDefinition/web@b-eu"} <= errors
    assert not any("@a-eu" in (o or "") for o in errors)
    assert any("AccessDenied" in rec.get("message", "") and rec.get("object") == "Target/b-eu" for rec in lines)


def test_validation_names_file_line_and_field(tmp_path, capsys):
    docs = [target("a-eu", A, EU),
            json.dumps({"apiVersion": "ecs-secrets/v1", "kind": "Target", "metadata": {"name": "wrong"},
                        "spec": {"account": A, "region": EU, "roleArn": f"arn:aws:iam::{B}:role/x"}}),
            doc("Parameter", "p", {"name": "/p", "type": "String", "value": {"literal": "x"}}, ["a-eu", "nowhere"]),
            *app(["a-eu"])[:1],
            doc("ExecutionRole", "web-exec", {"roleName": "web-exec"}, ["a-eu"]),
            doc("TaskDefinition", "web", {"family": "web", "executionRole": "web-exec", "containerDefinitions": [
                {"name": "web", "image": "nginx", "memory": 128, "secrets": [{"name": "DB", "valueFrom": "/app/db"}]}]},
                ["wrong"])]
    path = tmp_path / "bad.yaml"
    path.write_text("\n---\n".join(docs))
    code, _, err = run(capsys, "validate", "-f", str(path))
    assert code == 1
    assert f"{path}:3: Target/wrong: spec.roleArn: the role is in account {B}, not in spec.account {A}" in err
    assert f"{path}:5: Parameter/p: metadata.targets[1]: no Target named 'nowhere'" in err


def test_references_resolve_within_a_target(tmp_path, capsys):
    docs = [target("a-eu", A, EU), target("b-eu", B, EU), *app(["a-eu"])[:2],
            doc("TaskDefinition", "web", {"family": "web", "executionRole": "web-exec", "containerDefinitions": [
                {"name": "web", "image": "nginx", "memory": 128, "secrets": [{"name": "DB", "valueFrom": "/app/db"}]}]},
                ["a-eu", "b-eu"])]
    path = tmp_path / "refs.yaml"
    path.write_text("\n---\n".join(docs))
    code, _, err = run(capsys, "validate", "-f", str(path))
    assert code == 1
    assert "TaskDefinition/web: spec.executionRole: ExecutionRole 'web-exec' is not deployed to target 'b-eu'" in err
    assert "Parameter /app/db is not deployed to target 'b-eu'" in err


def test_same_ssm_name_in_two_targets_is_no_duplicate(tmp_path, capsys):
    docs = [target("a-eu", A, EU), target("b-eu", B, EU),
            doc("Parameter", "db", {"name": "/app/db", "type": "String", "value": {"literal": "a"}}, ["a-eu"]),
            doc("Parameter", "db-b", {"name": "/app/db", "type": "String", "value": {"literal": "b"}}, ["b-eu"])]
    path = tmp_path / "two.yaml"
    path.write_text("\n---\n".join(docs))
    code, out, err = run(capsys, "validate", "-f", str(path))
    assert code == 0, err
    assert "Parameter/db@a-eu" in out and "Parameter/db-b@b-eu" in out


def test_controller_policy_assumes_exactly_the_targets_roles(tmp_path, capsys):
    docs = [target("a-eu", A, EU), target("b-eu", B, EU, "x-id"), *app(["a-eu", "b-eu"])]
    path = tmp_path / "p.yaml"
    path.write_text("\n---\n".join(docs))
    code, out, err = run(capsys, "controller-policy", "-f", str(path))
    assert code == 0, err
    statements = json.loads(out)["Statement"]
    assert statements == [{"Sid": "AssumeTheRolesOfTheFleetsTargets", "Effect": "Allow", "Action": "sts:AssumeRole",
                           "Resource": [f"arn:aws:iam::{A}:role/{ROLE}", f"arn:aws:iam::{B}:role/{ROLE}"]}]
    code, out, err = run(capsys, "controller-policy", "-f", str(path), "--target", "b-eu")
    assert code == 0, err
    text = out
    assert f"arn:aws:ssm:{EU}:{B}:parameter/app/db" in text and f"arn:aws:iam::{B}:role/web-exec" in text
    assert A not in text and "sts:ExternalId" in err


def test_single_account_manifests_are_untouched(tmp_path, capsys):
    """No Target anywhere: the plan is today's, without @ and without a target field."""
    path = tmp_path / "one.yaml"
    path.write_text(doc("Parameter", "p", {"name": "/p", "type": "String", "value": {"literal": "x"}}))
    code, out, _ = run(capsys, "validate", "-f", str(path), "--output", "json")
    assert code == 0 and json.loads(out) == {"valid": True, "objects": ["Parameter/p"]}


def test_readme_example_validates(tmp_path, capsys):
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme.split("## Fleets", 1)[1]
    example = section.split("```yaml", 1)[1].split("```", 1)[0]
    path = tmp_path / "fleet.yaml"
    path.write_text(example)
    code, out, err = run(capsys, "validate", "-f", str(path))
    assert code == 0, err
    assert "@prod-eu" in out and "@prod-us" in out
