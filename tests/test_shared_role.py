"""Never break what runs: a shared execution role keeps the grants of every ACTIVE revision that runs as it.

SPEC: the derived inline policy is the least privilege that every task definition using the role needs —
those in the manifests and every ACTIVE revision registered with the role. Through moto's server and the
CLI: ``reconcile -f a.yaml`` keeps what b's task definition (another file) and a CI-registered revision
read; the grants go once those revisions are deregistered.

What AWS does that these tests rest on:
- The ECS agent reads a task's secrets with the execution role of the revision the task starts from, at
  start (ECS Developer Guide, "Amazon ECS task execution IAM role": "The task execution role grants the
  Amazon ECS container and Fargate agents permission to make AWS API calls on your behalf"; "Pass
  sensitive data to an Amazon ECS container": the execution role needs ssm:GetParameters /
  secretsmanager:GetSecretValue, and kms:Decrypt for a customer managed key). A service's rollback and
  every CI deploy start tasks from a revision the manifests at hand may not hold.
- ECS has no filter by role: ListTaskDefinitions (API reference) filters by familyPrefix and status only,
  and DescribeTaskDefinition reads one revision a call.
- RegisterTaskDefinition takes "the short name or full ARN" of the role and DescribeTaskDefinition answers
  with the ARN (the faithful sandbox does the same; controller/sandbox/faithful.py cites it): compared as
  account and role name, which IAM keeps unique without regard to case (IAM User Guide, "IAM
  identifiers": names "are not distinguished by case").
- moto does not evaluate IAM, so "allowed" is decided by verify's evaluator reading the written policy.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import boto3
import pytest

from controller.cli import main
from controller.verify.iam_eval import Decision, NamedPolicy, Request, evaluate

pytest.register_assert_rewrite("faultkit")
from faultkit import ScriptedProxy, always  # noqa: E402

ACCOUNT, REGION = "123456789012", "us-east-1"   # moto's
ROLE = "shared-exec"

A = """\
apiVersion: ecs-secrets/v1
kind: ExecutionRole
metadata: {name: shared-exec}
spec: {roleName: shared-exec}
---
apiVersion: ecs-secrets/v1
kind: Parameter
metadata: {name: a-db}
spec:
  name: /svc-a/db
  type: SecureString
  value: {fromEnv: SHARED_A_DB}
---
apiVersion: ecs-secrets/v1
kind: TaskDefinition
metadata: {name: svc-a}
spec:
  family: svc-a
  executionRole: shared-exec
  containerDefinitions:
    - name: app
      image: nginx:1.27
      memory: 256
      secrets: [{name: DB, valueFrom: /svc-a/db}]
"""

B = """\
apiVersion: ecs-secrets/v1
kind: Parameter
metadata: {name: b-token}
spec:
  name: /svc-b/token
  type: SecureString
  kmsKeyId: alias/svc-b
  value: {fromEnv: SHARED_B_TOKEN}
---
apiVersion: ecs-secrets/v1
kind: TaskDefinition
metadata: {name: svc-b}
spec:
  family: svc-b
  executionRole: shared-exec          # the role a.yaml declares, by its name
  containerDefinitions:
    - name: app
      image: nginx:1.27
      memory: 256
      secrets:
        - {name: TOKEN, valueFrom: /svc-b/token}
        - {name: API, valueFrom: "SECRET_ARN"}
"""


def client(service: str):
    return boto3.client(service, region_name=REGION)


def run(capsys, *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out + err


def policy() -> dict:
    return client("iam").get_role_policy(RoleName=ROLE, PolicyName="ecs-secrets")["PolicyDocument"]


def allows(action: str, resource: str) -> bool:
    verdict = evaluate([NamedPolicy("ecs-secrets", policy())], Request(action, resource))
    return verdict.decision == Decision.ALLOW


def param_arn(name: str) -> str:
    return f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/{name.lstrip('/')}"


def deregister_family(family: str) -> None:
    ecs = client("ecs")
    for arn in ecs.list_task_definitions(familyPrefix=family, status="ACTIVE")["taskDefinitionArns"]:
        ecs.deregister_task_definition(taskDefinition=arn)


@pytest.fixture
def world(aws_env: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    values = {"SHARED_A_DB": secrets.token_urlsafe(18), "SHARED_B_TOKEN": secrets.token_urlsafe(18),
              "secret": secrets.token_urlsafe(18)}
    for name in ("SHARED_A_DB", "SHARED_B_TOKEN"):
        monkeypatch.setenv(name, values[name])
    kms = client("kms")
    key = kms.create_key()["KeyMetadata"]
    kms.create_alias(AliasName="alias/svc-b", TargetKeyId=key["KeyId"])
    sm_key = kms.create_key()["KeyMetadata"]
    secret = client("secretsmanager").create_secret(Name="svc-b/api", SecretString=values["secret"],
                                                    KmsKeyId=sm_key["Arn"])["ARN"]
    (tmp_path / "a.yaml").write_text(A)
    (tmp_path / "b.yaml").write_text(B.replace("SECRET_ARN", secret))
    return {"aws": aws_env, "dir": tmp_path, "a": str(tmp_path / "a.yaml"), "key": key["Arn"], "sm_key": sm_key["Arn"],
            "secret": secret, "values": values}


def b_allowed(world: dict) -> dict[str, bool]:
    return {"param": allows("ssm:GetParameters", param_arn("/svc-b/token")),
            "secret": allows("secretsmanager:GetSecretValue", world["secret"]),
            "key": allows("kms:Decrypt", world["key"]), "secret key": allows("kms:Decrypt", world["sm_key"])}


def test_one_file_keeps_the_grants_of_another_files_revisions_until_they_are_deregistered(world, capsys):
    printed = []
    code, out = run(capsys, "reconcile", "-f", str(world["dir"]))
    printed.append(out)
    assert code == 0, out
    assert all(b_allowed(world).values()), policy()

    code, out = run(capsys, "reconcile", "-f", world["a"], "--dry-run", "--detailed-exitcode")
    printed.append(out)
    assert code == 0, out   # b's revision still runs as the role: nothing to narrow
    code, out = run(capsys, "reconcile", "-f", world["a"])
    printed.append(out)
    assert code == 0, out
    assert all(b_allowed(world).values()), policy()
    assert allows("ssm:GetParameters", param_arn("/svc-a/db"))

    # a change of a's own: the plan says why b's grants stay
    Path(world["a"]).write_text(A.replace("secrets: [{name: DB, valueFrom: /svc-a/db}]",
                                          "secrets: [{name: DB, valueFrom: /svc-a/db}, {name: X, valueFrom: /svc-a/x}]"))
    client("ssm").put_parameter(Name="/svc-a/x", Value="plain", Type="String")
    code, out = run(capsys, "reconcile", "-f", world["a"])
    printed.append(out)
    assert code == 0, out
    assert "ExecutionRole/shared-exec will be updated (keeps the grants of ACTIVE revisions svc-b:1" in out
    assert all(b_allowed(world).values()) and allows("ssm:GetParameters", param_arn("/svc-a/x"))

    deregister_family("svc-b")
    code, out = run(capsys, "reconcile", "-f", world["a"])
    printed.append(out)
    assert code == 0, out
    assert not any(b_allowed(world).values()), policy()
    assert allows("ssm:GetParameters", param_arn("/svc-a/db")) and allows("ssm:GetParameters", param_arn("/svc-a/x"))
    assert "keeps the grants" not in out
    leaked = [v for v in world["values"].values() if any(v in p for p in printed)]
    assert leaked == []


CI_BODY = {
    "family": "ci-job",
    "containerDefinitions": [{
        "name": "job", "image": "registry.example.com/ci/job:7", "memory": 256,
        "secrets": [{"name": "CI_TOKEN", "valueFrom": "/ci/token"}],
        "repositoryCredentials": {"credentialsParameter": "CI_REGISTRY"},
        "environmentFiles": [{"type": "s3", "value": "arn:aws:s3:::ci-config/job.env"}],
        "logConfiguration": {"logDriver": "awslogs",
                             "options": {"awslogs-group": "/ecs/ci-job", "awslogs-region": REGION,
                                         "awslogs-create-group": "true", "awslogs-stream-prefix": "job"},
                             "secretOptions": [{"name": "splunk-token", "valueFrom": "/ci/log-token"}]},
    }],
}


@pytest.mark.parametrize("named", ["name", "ARN"])
def test_a_revision_registered_out_of_band_keeps_what_it_reads(world, capsys, named):
    """CI registers a revision with the role (by name, or by ARN in another case): all it reads stays."""
    value = secrets.token_urlsafe(18)
    ssm = client("ssm")
    ssm.put_parameter(Name="/ci/token", Value=value, Type="SecureString", KeyId=world["key"])
    registry = client("secretsmanager").create_secret(Name="ci/registry", SecretString=value)["ARN"]
    assert run(capsys, "reconcile", "-f", world["a"])[0] == 0
    role = ROLE if named == "name" else f"arn:aws:iam::{ACCOUNT}:role/{ROLE.upper()}"
    body = json.loads(json.dumps(CI_BODY).replace("CI_REGISTRY", registry))
    client("ecs").register_task_definition(**body, executionRoleArn=role)
    # and one that runs as another role: nothing of it is granted
    other = json.loads(json.dumps(CI_BODY).replace("/ci/token", "/other/token").replace("ci-job", "other-job"))
    client("ecs").register_task_definition(**other, executionRoleArn="someone-elses-role")

    code, out = run(capsys, "reconcile", "-f", world["a"], "--dry-run")
    assert code == 0 and "keeps the grants of ACTIVE revisions ci-job:1" in out, out
    code, out2 = run(capsys, "reconcile", "-f", world["a"])
    assert code == 0, out2
    assert allows("ssm:GetParameters", param_arn("/ci/token")) and allows("kms:Decrypt", world["key"])
    assert allows("ssm:GetParameters", param_arn("/ci/log-token"))           # log-driver secretOptions
    assert allows("secretsmanager:GetSecretValue", registry)                   # repositoryCredentials
    assert allows("s3:GetObject", "arn:aws:s3:::ci-config/job.env")            # environmentFiles
    assert allows("s3:GetBucketLocation", "arn:aws:s3:::ci-config")
    assert allows("logs:CreateLogGroup", f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/ecs/ci-job:log-stream:")
    assert not allows("ssm:GetParameters", param_arn("/other/token"))
    assert value not in out + out2

    deregister_family("ci-job")
    assert run(capsys, "reconcile", "-f", world["a"])[0] == 0
    assert not allows("ssm:GetParameters", param_arn("/ci/token")) and not allows("kms:Decrypt", world["key"])


def test_revisions_that_push_the_policy_over_iams_limit_are_named(world, capsys):
    """IAM refuses an inline role policy over 10,240 characters (IAM User Guide, "IAM and AWS STS quotas":
    role policy size): the plan names the revisions whose grants tip it over, instead of dropping them."""
    assert run(capsys, "reconcile", "-f", world["a"])[0] == 0
    long = "/ci/" + "x" * 90
    body = {"family": "ci-big", "containerDefinitions": [{
        "name": "job", "image": "nginx:1.27", "memory": 256,
        "secrets": [{"name": f"S{i}", "valueFrom": f"{long}/{i}"} for i in range(110)]}]}
    client("ecs").register_task_definition(**body, executionRoleArn=ROLE)
    before = policy()
    code, out = run(capsys, "reconcile", "-f", world["a"])
    assert code != 0
    assert "over IAM's 10,240" in out and "ACTIVE revisions outside the manifests (ci-big:1)" in out, out
    assert "deregister those no longer needed" in out
    assert policy() == before   # nothing narrowed, nothing half-written


def test_the_daemon_describes_a_revision_once_and_forgets_it_when_deregistered(monkeypatch) -> None:
    """Revisions are immutable (RegisterTaskDefinition API reference: a change registers a new revision),
    so what one reads is remembered by its ARN for the life of the session: a later pass only lists."""
    from moto import mock_aws

    from controller.aws.revisions import ActiveRevisions
    from controller.aws.session import Aws

    def describes(aws: Aws) -> int:
        return sum(n for (service, op, _), n in aws.calls.items() if op == "DescribeTaskDefinition")

    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        ecs = boto3.client("ecs", region_name=REGION)
        for i in range(3):
            ecs.register_task_definition(family=f"f{i}", executionRoleArn=ROLE, containerDefinitions=[
                {"name": "c", "image": "nginx", "memory": 64, "secrets": [{"name": "S", "valueFrom": f"/p/{i}"}]}])
        aws = Aws(region=REGION, rate_limits="off")
        first = ActiveRevisions(aws).of(REGION)
        assert sorted(r.label for r in first) == ["f0:1", "f1:1", "f2:1"] and describes(aws) == 3
        again = ActiveRevisions(aws).of(REGION)   # the daemon's next pass: a new observe, the same session
        assert again == first and describes(aws) == 3
        ecs.deregister_task_definition(taskDefinition="f1:1")
        assert sorted(r.label for r in ActiveRevisions(aws).of(REGION)) == ["f0:1", "f2:1"]
        assert describes(aws) == 3
        fresh = Aws(region=REGION, rate_limits="off")   # another process (a one-shot run) remembers nothing
        assert len(ActiveRevisions(fresh).of(REGION)) == 2 and describes(fresh) == 2


# --- the pure part: which revisions count, and what of theirs is granted --------------------------------

def _revision(family: str, role: str | None, *value_froms: str) -> dict:
    return {"taskDefinitionArn": f"arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/{family}:1",
            "family": family, "revision": 1, "executionRoleArn": role,
            "containerDefinitions": [{"name": "c", "secrets": [{"name": f"S{i}", "valueFrom": v}
                                                               for i, v in enumerate(value_froms)]}]}


def test_resolve_keeps_only_what_the_revisions_of_the_role_read(tmp_path: Path) -> None:
    from controller.core.desired import Context
    from controller.core.revisions import revision_of
    from controller.core.validate import load

    (tmp_path / "a.yaml").write_text(A)
    desired = load(tmp_path, REGION)
    found = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:found"
    bodies = [
        _revision("by-path-and-case", f"arn:aws:iam::{ACCOUNT}:role/team/SHARED-EXEC", "/kept/one"),
        _revision("other-role", "other-exec", "/not/granted"),
        _revision("other-account", f"arn:aws:iam::210987654321:role/{ROLE}", "/not/granted/either"),
        _revision("no-role", None, "/nor/this"),
        _revision("secrets", ROLE, found, f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:gone",
                  f"arn:aws:ssm:{REGION}:210987654321:parameter/elsewhere", "/svc-a/db"),
        _revision("same-as-manifests", ROLE, "/svc-a/db"),
    ]
    ctx = Context(account=ACCOUNT, region=REGION, revisions=tuple(revision_of(b, REGION) for b in bodies),
                  secret_arns={(REGION, found): found + "-AbCdEf"}, secret_keys={found + "-AbCdEf": "k1"},
                  key_arns={(REGION, "k1"): f"arn:aws:kms:{REGION}:{ACCOUNT}:key/k1"})
    role = desired.resolve(ctx).roles[0]
    doc = json.dumps(role.inline)
    assert param_arn("/kept/one") in doc and param_arn("/svc-a/db") in doc
    assert found + "-AbCdEf" in doc and "key/k1" in doc
    assert "not/granted" not in doc and "nor/this" not in doc and "secret:gone" not in doc
    assert "210987654321" not in doc   # ECS reads no other account's parameter
    assert role.kept == ("by-path-and-case:1", "secrets:1")   # same-as-manifests adds nothing: not named
    # without revisions: exactly the manifests' needs, as before
    assert json.dumps(desired.resolve(Context(account=ACCOUNT, region=REGION)).roles[0].inline).count("parameter/") == 1


@pytest.mark.slow  # a proxy in front of moto: several seconds
def test_a_revisions_secret_that_cannot_be_read_blocks_the_role_rather_than_dropping_its_grant(
        world, capsys, monkeypatch):
    """DescribeSecret denied (Secrets Manager API reference, DescribeSecret: needs secretsmanager:DescribeSecret;
    an identity policy without it gets AccessDeniedException): the key of a secret a running revision reads
    is unknown, so the role is left as it is and the run stops, as for a secret of the manifests."""
    secret = client("secretsmanager").create_secret(Name="ci/denied", SecretString=secrets.token_urlsafe(8))["ARN"]
    assert run(capsys, "reconcile", "-f", world["a"])[0] == 0
    client("ecs").register_task_definition(family="ci-denied", executionRoleArn=ROLE, containerDefinitions=[
        {"name": "c", "image": "nginx", "memory": 64, "secrets": [{"name": "S", "valueFrom": secret}]}])
    Path(world["a"]).write_text(A.replace("memory: 256", "memory: 512"))   # a change of a's own, to be held back
    before = policy()
    denied = always(400, "AccessDeniedException", "User is not authorized to perform: secretsmanager:DescribeSecret")
    with ScriptedProxy(world["aws"], script=[("secretsmanager:DescribeSecret", None, denied)]) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        code, out = run(capsys, "reconcile", "-f", world["a"])
    monkeypatch.setenv("AWS_ENDPOINT_URL", world["aws"])
    assert code == 1 and "cannot read Secrets Manager secret" in out and "AccessDeniedException" in out, out
    assert policy() == before
    assert len(client("ecs").list_task_definitions(familyPrefix="svc-a")["taskDefinitionArns"]) == 1


def test_controller_policy_lets_observe_read_what_revisions_outside_the_manifests_read(tmp_path: Path) -> None:
    """Their secrets and keys are named only in the revisions: DescribeSecret (metadata; Secrets Manager API
    reference) and DescribeKey on the Region's, never a value; the scan's ECS reads support only "*"
    (Service Authorization Reference, Amazon ECS: ListTaskDefinitions, DescribeTaskDefinition)."""
    from controller.core import permissions
    from controller.core.validate import load

    (tmp_path / "a.yaml").write_text(A)
    doc = permissions.policy_for(load(tmp_path, REGION), permissions.Target(account=ACCOUNT, region=REGION))
    ci_secret = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:ci/registry-AbCdEf"
    key = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/any"
    for action, resource in (("secretsmanager:DescribeSecret", ci_secret), ("kms:DescribeKey", key),
                             ("ecs:ListTaskDefinitions", "*"), ("ecs:DescribeTaskDefinition", "*")):
        assert evaluate([NamedPolicy("controller", doc)], Request(action, resource)).decision == Decision.ALLOW, action
    assert not any("secretsmanager:GetSecretValue" in s["Action"] for s in doc["Statement"])
