"""References the ECS agent refuses at task start, and partitions: refused before any write.

Sources this file pins (moto models neither):
- amazon-ecs-agent, agent/taskresource/asmsecret/asmsecret.go, ``getASMParametersFromInput``: the
  agent splits a Secrets Manager ``valueFrom`` ARN's resource at ':' and accepts exactly two parts
  (``secret:NAME``) or five (``secret:NAME:json-key:version-stage:version-id``); any other count
  fails the task with "an invalid ARN format for the AWS Secrets Manager secret was specified".
  ``reconstructASMARN`` calls GetSecretValue with the secret's ARN without the three fields.
- SSM User Guide, "Referencing AWS Secrets Manager secrets from Parameter Store parameters": the
  name is /aws/reference/secretsmanager/ followed by the secret's id in Secrets Manager; such
  references cannot use Parameter Store's versioning. Secrets Manager CreateSecret, ``Name``:
  ASCII letters, digits and /_+=.@-, at most 512 characters. SSM GetParameter, ``Name``: what
  follows ':' is a version or label selector.
- botocore/data/partitions.json: which partition each Region is in (``regionRegex``).
- AWS KMS Developer Guide, "kms:ViaService" (docs.aws.amazon.com and docs.amazonaws.cn
  kms/latest/developerguide/conditions-kms.html): the value is SERVICE.REGION.amazonaws.com.
"""

from __future__ import annotations

import json
import re
import secrets
import shutil
from pathlib import Path

import boto3
import botocore
import botocore.session
import pytest

from controller.cli import main
from controller.core import permissions
from controller.core.desired import Context, desire
from controller.manifests.loader import load
from controller.verify import decide
from controller.verify import facts as v
from controller.vocab import arns
from controller.vocab.arns import BadReference, parse_value_from
from controller.vocab.problems import ManifestError
from faultproxy import FaultProxy

ACC = "123456789012"
MANIFESTS = Path(__file__).resolve().parent.parent / "manifests"
SECRET = f"arn:aws:secretsmanager:us-east-1:{ACC}:secret:db-AbCdEf"

ROLE_DOC = """apiVersion: ecs-secrets/v1
kind: ExecutionRole
metadata: {{name: exec}}
spec:
  roleName: exec
{role_extra}---
apiVersion: ecs-secrets/v1
kind: TaskDefinition
metadata: {{name: web}}
spec:
  family: web
  executionRole: exec
  requiresCompatibilities: [FARGATE]
  networkMode: awsvpc
  cpu: "256"
  memory: "512"
  containerDefinitions:
    - name: web
      image: public.ecr.aws/nginx/nginx:1.27
      secrets:
        - name: DB
          valueFrom: {value_from}
"""


def write(tmp_path: Path, value_from: str, role_extra: str = "") -> Path:
    folder = tmp_path / "m"
    folder.mkdir(exist_ok=True)
    (folder / "app.yaml").write_text(ROLE_DOC.format(value_from=json.dumps(value_from), role_extra=role_extra))
    return folder


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def problems(folder: Path, region: str = "us-east-1") -> list[str]:
    try:
        load(folder, region)
    except ManifestError as exc:
        return [str(p) for p in exc.problems]
    return []


# --- 5. Secrets Manager ARNs: the secret alone, or all three fields --------------------------------

@pytest.mark.parametrize("raw, fixed", [
    (SECRET + ":password", SECRET + ":password::"),
    (SECRET + ":password:AWSCURRENT", SECRET + ":password:AWSCURRENT:"),
    (SECRET + ":a:b:c:d", None),
])
def test_a_secret_arn_with_some_of_the_three_fields_is_refused(raw: str, fixed: str | None) -> None:
    with pytest.raises(BadReference) as exc:
        parse_value_from(raw)
    message = str(exc.value)
    assert "json-key:version-stage:version-id" in message
    assert (f"write {fixed}" in message) if fixed else "cannot contain ':'" in message


@pytest.mark.parametrize("raw, key, stage, version", [
    (SECRET, None, None, None),
    (SECRET + ":::", None, None, None),
    (SECRET + ":password::", "password", None, None),
    (SECRET + "::AWSPREVIOUS:", None, "AWSPREVIOUS", None),
    (SECRET + ":password::0a1b2c3d-0000-4000-8000-00000000beef", "password", None, "0a1b2c3d-0000-4000-8000-00000000beef"),
])
def test_the_two_forms_the_agent_reads_parse_to_the_bare_secret_arn(raw, key, stage, version) -> None:
    ref = parse_value_from(raw)
    assert (ref.name, ref.json_key, ref.version_stage, ref.version_id) == (SECRET, key, stage, version)


def test_validate_refuses_it_located_with_the_fixed_form(tmp_path, capsys) -> None:
    folder = write(tmp_path, SECRET + ":password")
    code, out, err = run(capsys, "validate", "-f", str(folder), "--region", "us-east-1")
    assert code == 1 and "Traceback" not in err
    line = next(x for x in err.splitlines() if "json-key" in x)
    assert "app.yaml:" in line and "valueFrom" in line and SECRET + ":password::" in line


def test_reconcile_refuses_it_before_any_write(aws_env, monkeypatch, tmp_path, capsys) -> None:
    folder = write(tmp_path, SECRET + ":password")
    with FaultProxy(aws_env) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        code, _, err = run(capsys, "reconcile", "-f", str(folder))
        assert code == 1 and SECRET + ":password::" in err
        assert proxy.writes() == 0


def test_policy_and_verify_use_the_secret_arn_without_the_fields(tmp_path) -> None:
    folder = write(tmp_path, SECRET + ":password:AWSCURRENT:")
    desired = desire(load(folder, "us-east-1"))
    role = desired.resolve(Context(account=ACC, region="us-east-1")).roles[0]
    assert role.grants.secrets == {SECRET}
    [statement] = role.inline["Statement"]
    assert statement["Resource"] in (SECRET, [SECRET])
    policy = permissions.policy_for(desired, permissions.Target(ACC, "us-east-1"))
    described = next(s for s in policy["Statement"] if s["Sid"] == "DescribeReferencedSecrets")
    assert set(described["Resource"]) == {SECRET, SECRET + "-??????"}
    facts = v.Facts(account=ACC, region="us-east-1")
    facts.secrets[("us-east-1", SECRET)] = v.SecretFact(SECRET, None)
    facts.roles[f"arn:aws:iam::{ACC}:role/exec"] = v.RoleFact(f"arn:aws:iam::{ACC}:role/exec", ())
    row = decide.check(v.Target("web", "web", "DB", SECRET + ":password:AWSCURRENT:", f"arn:aws:iam::{ACC}:role/exec"),
                       facts)
    assert [(n.action, n.resource) for n in row.needs] == [("secretsmanager:GetSecretValue", SECRET)]
    bad = decide.check(v.Target("web", "web", "DB", SECRET + ":password", f"arn:aws:iam::{ACC}:role/exec"), facts)
    assert bad.verdict != v.ALLOWED and SECRET + ":password::" in bad.reason


# --- 6. /aws/reference/secretsmanager/NAME: a Secrets Manager name -----------------------------------

@pytest.mark.parametrize("name, needle", [
    ("/aws/reference/secretsmanager/db password", "' ' (U+0020 SPACE)"),
    ("/aws/reference/secretsmanager/db#1", "'#'"),
    ("/aws/reference/secretsmanager/prod/dé", "'é'"),
    ("/aws/reference/secretsmanager/db:password", "use the secret's ARN as valueFrom"),
    ("/aws/reference/secretsmanager/" + "a" * 513, "over Secrets Manager's 512"),
])
def test_a_reference_name_ecs_cannot_resolve_is_refused_at_validate(tmp_path, name, needle) -> None:
    found = problems(write(tmp_path, name))
    assert any(needle in p and "valueFrom" in p for p in found), found


@pytest.mark.parametrize("name", ["/aws/reference/secretsmanager/prod/db-creds",
                                  "/aws/reference/secretsmanager/team+a=b.c@d_e"])
def test_every_secrets_manager_name_character_is_accepted(tmp_path, name) -> None:
    assert problems(write(tmp_path, name)) == []


def test_a_declared_reference_parameter_is_checked_too(tmp_path) -> None:
    folder = tmp_path / "p"
    folder.mkdir()
    (folder / "p.yaml").write_text("apiVersion: ecs-secrets/v1\nkind: Parameter\nmetadata: {name: ref}\n"
                                   "spec: {name: '/aws/reference/secretsmanager/db:password'}\n")
    assert any("spec.name" in p and "version selector" in p for p in problems(folder))


# --- 11. Partitions -------------------------------------------------------------------------------

def test_the_partition_table_matches_botocore() -> None:
    data = json.loads((Path(botocore.__file__).parent / "data" / "partitions.json").read_text())
    session = botocore.session.get_session()
    ours = {p: rx.pattern for p, rx in arns.PARTITIONS}
    theirs = {p["id"]: p["regionRegex"].strip("^$").replace("\\", "").replace("(de)", "de")
              for p in data["partitions"] if p["id"] != "aws"}
    assert {p: rx.replace("\\", "") for p, rx in ours.items()} == theirs
    regions = [r for p in data["partitions"] for r in p["regions"] if not r.endswith("-global")]
    assert len(regions) > 30
    for region in regions:
        assert arns.partition_of(region) == session.get_partition_for_region(region), region


@pytest.mark.parametrize("region, partition", [("cn-north-1", "aws-cn"), ("us-gov-west-1", "aws-us-gov")])
def test_derived_policies_are_in_the_regions_partition(region, partition) -> None:
    desired = desire(load(MANIFESTS, region))
    [role] = desired.roles
    assert role.managed == (f"arn:{partition}:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy",)
    resolved = desired.resolve(Context(account=ACC, region=region, partition=partition))
    text = json.dumps(resolved.roles[0].inline)
    assert re.findall(r'"arn:([^:"]+):', text) and set(re.findall(r'"arn:([^:"]+):', text)) == {partition}


@pytest.mark.parametrize("region, partition", [("cn-north-1", "aws-cn"), ("us-gov-west-1", "aws-us-gov")])
def test_controller_policy_command_in_another_partition(region, partition, capsys) -> None:
    code, out, err = run(capsys, "controller-policy", "-f", str(MANIFESTS), "--region", region, "--account", ACC)
    assert code == 0, err
    found = re.findall(r'"arn:([^:"]+):', out)
    assert found and set(found) == {partition}, "every ARN, the iam:PolicyARN condition's included"
    via = {v for s in json.loads(out)["Statement"]
           for v in (s.get("Condition", {}).get("StringEquals", {}).get("kms:ViaService") or [])}
    assert via == {f"ssm.{region}.amazonaws.com"}


@pytest.mark.parametrize("value_from, needle", [
    (f"arn:aws:ssm:cn-north-1:{ACC}:parameter/app/db", f"write arn:aws-cn:ssm:cn-north-1:{ACC}:parameter/app/db"),
    (f"arn:aws:ssm:us-east-1:{ACC}:parameter/app/db", "outside partition 'aws-cn'"),
    (f"arn:aws:secretsmanager:us-east-1:{ACC}:secret:db-AbCdEf", "outside partition 'aws-cn'"),
])
def test_an_arn_of_another_partition_is_refused_not_rebuilt(tmp_path, value_from, needle) -> None:
    found = problems(write(tmp_path, value_from), "cn-north-1")
    assert [p for p in found if needle in p and "valueFrom" in p], found
    assert len([p for p in found if "valueFrom" in p]) == 1, "one problem per reference"


def test_a_managed_policy_arn_of_another_partition_is_refused(tmp_path) -> None:
    extra = "  managedPolicyArns: [arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy]\n"
    found = problems(write(tmp_path, "/app/db", extra), "us-gov-west-1")
    assert any("managedPolicyArns" in p and "write arn:aws-us-gov:iam::aws:policy/" in p for p in found), found
    assert problems(write(tmp_path, "/app/db", extra.replace("arn:aws:", "arn:aws-us-gov:")), "us-gov-west-1") == []


def test_a_parameter_in_a_region_of_another_partition_is_refused(tmp_path) -> None:
    folder = tmp_path / "p"
    folder.mkdir()
    (folder / "p.yaml").write_text("apiVersion: ecs-secrets/v1\nkind: Parameter\nmetadata: {name: p}\n"
                                   "spec: {name: /app/db, region: us-east-1}\n")
    assert any("spec.region" in p and "outside partition 'aws-cn'" in p for p in problems(folder, "cn-north-1"))
    assert problems(folder, "us-west-2") == []


def test_verify_refuses_a_reference_of_another_partition() -> None:
    facts = v.Facts(account=ACC, region="cn-north-1", partition="aws-cn")
    with pytest.raises(BadReference, match="partition"):
        v.locate(f"arn:aws:ssm:us-east-1:{ACC}:parameter/app/db", facts)


@pytest.mark.slow
@pytest.mark.parametrize("region, partition", [("cn-north-1", "aws-cn"), ("us-gov-west-1", "aws-us-gov")])
def test_reconcile_converges_in_another_partition(aws_env, monkeypatch, capsys, tmp_path, region, partition):
    """moto keeps each partition apart as AWS does: in cn-north-1 AttachRolePolicy of
    arn:aws:iam::aws:policy/... answers NoSuchEntity, as IAM in China does."""
    canary = f"canary-{secrets.token_hex(12)}"
    monkeypatch.setenv("DB_PASSWORD", canary)
    kms = boto3.client("kms", endpoint_url=aws_env, region_name=region)
    kms.create_alias(AliasName="alias/MyAliasName", TargetKeyId=kms.create_key()["KeyMetadata"]["KeyId"])
    boto3.client("secretsmanager", endpoint_url=aws_env, region_name=region).create_secret(
        Name="payments/stripe-token", SecretString="not-read")
    folder = tmp_path / "m"
    shutil.copytree(MANIFESTS, folder)
    code, out, err = run(capsys, "reconcile", "-f", str(folder), "--region", region)
    assert code == 0, err
    iam = boto3.client("iam", endpoint_url=aws_env, region_name=region)
    attached = iam.list_attached_role_policies(RoleName="ecsTaskExecutionRole-web")["AttachedPolicies"]
    assert [p["PolicyArn"] for p in attached] == [
        f"arn:{partition}:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"]
    inline = iam.get_role_policy(RoleName="ecsTaskExecutionRole-web", PolicyName="ecs-secrets")["PolicyDocument"]
    assert set(re.findall(r'"arn:([^:"]+):', json.dumps(inline))) == {partition}
    td = boto3.client("ecs", endpoint_url=aws_env, region_name=region).describe_task_definition(
        taskDefinition="web")["taskDefinition"]
    assert td["executionRoleArn"].startswith(f"arn:{partition}:iam::")
    code, out, err = run(capsys, "reconcile", "-f", str(folder), "--region", region, "--dry-run",
                         "--detailed-exitcode")
    assert code == 0, out + err
    assert canary not in out + err
