"""The generated controller policy (controller/core/permissions.py) covers every API call a reconcile makes.

Reconciles of manifests/ (create, dry-run, repair of out-of-band changes, keepRevisions, --prune,
writes whose reply was lost) and the leader-election lease run against moto's server while botocore's ``before-call`` events record every call with its
parameters. ``MAPPING`` turns each call into the IAM requests AWS authorizes for it (action,
resource ARN, the condition keys AWS supplies), including the implicit ones: tag-on-create,
iam:PassRole, the KMS calls SSM makes on our behalf. Our evaluator must ALLOW each of them under
the generated policy (table tests of the policy's shape: test_permissions.py). The last tests keep
deploy/iam/controller-policy.json in step with the command.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import boto3
import pytest

from awsserver import TEST_ENV
from controller.core import permissions
from controller import reconcile
from recording import Call, RecordingAws
from controller.cli import main
from controller.verify.iam_eval import Decision, NamedPolicy, Request, evaluate
from controller.core.desired import desire
from controller.manifests.loader import load
from controller.manifests.models import DEFAULT_MANAGED_POLICY

pytest.register_assert_rewrite("faultkit")   # as the fault tests do; imported here first, rewritten once
from faultkit import no_backoff  # noqa: E402,F401 - a fixture
from faultproxy import FaultProxy, FaultRule  # noqa: E402

ACCOUNT, REGION = "123456789012", "us-east-1"   # moto's account
ROOT = Path(__file__).resolve().parent.parent
MANIFESTS = ROOT / "manifests"
COMMITTED = ROOT / "deploy" / "iam" / "controller-policy.json"
AWS_MANAGED_KEY = "alias/aws/ssm"   # its key policy lets every principal of the account use it through SSM


# --- recording ----------------------------------------------------------------------------------

# --- what AWS knows at the time of a call (read with clients that record nothing) -------------------

def _tags(items: list[dict]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in items}


@dataclass
class World:
    param_keys: dict[str, str] = field(default_factory=dict)       # name → KeyId
    param_tags: dict[str, dict] = field(default_factory=dict)
    role_arns: dict[str, str] = field(default_factory=dict)
    role_tags: dict[str, dict] = field(default_factory=dict)
    key_arns: dict[str, str] = field(default_factory=dict)          # alias or key id → key ARN
    key_aliases: dict[str, list[str]] = field(default_factory=dict)  # key ARN → its aliases
    secret_arns: dict[str, str] = field(default_factory=dict)       # name → ARN

    def param_arn(self, name: str) -> str:
        return f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/{name.lstrip('/')}"

    def on_param(self, action: str, name: str) -> Request:
        tags = {f"aws:ResourceTag/{k}": v for k, v in self.param_tags.get(name, {}).items()}
        return Request(action, self.param_arn(name), tags)

    def on_role(self, action: str, name: str, **context: str) -> Request:
        tags = {f"aws:ResourceTag/{k}": v for k, v in self.role_tags.get(name, {}).items()}
        arn = self.role_arns.get(name, f"arn:aws:iam::{ACCOUNT}:role/{name}")
        return Request(action, arn, {**tags, **context})

    def on_key(self, action: str, key_id: str, for_parameter: str | None = None) -> list[Request]:
        """A KMS request on the key ``key_id`` names; SSM's own carry its service and encryption context."""
        if key_id == AWS_MANAGED_KEY:
            return []
        arn = self.key_arns[key_id.split(":")[-1] if key_id.startswith("arn:") and ":alias/" in key_id else key_id]
        context: dict = {"kms:ResourceAliases": self.key_aliases.get(arn, [])}
        if for_parameter:
            context["kms:ViaService"] = f"ssm.{REGION}.amazonaws.com"
            context["kms:EncryptionContext:PARAMETER_ARN"] = self.param_arn(for_parameter)
        return [Request(action, arn, context)]

    def read_param(self, action: str, name: str, decrypt: bool) -> list[Request]:
        key = self.param_keys.get(name)
        return [self.on_param(action, name)] + (self.on_key("kms:Decrypt", key, name) if decrypt and key else [])


def snapshot() -> World:
    w = World()
    ssm, iam = boto3.client("ssm", REGION), boto3.client("iam", REGION)
    for page in ssm.get_paginator("describe_parameters").paginate():
        for p in page["Parameters"]:
            if p.get("KeyId"):
                w.param_keys[p["Name"]] = p["KeyId"]
            w.param_tags[p["Name"]] = _tags(ssm.list_tags_for_resource(ResourceType="Parameter",
                                                                      ResourceId=p["Name"])["TagList"])
    for page in iam.get_paginator("list_roles").paginate():
        for r in page["Roles"]:
            w.role_arns[r["RoleName"]] = r["Arn"]
            w.role_tags[r["RoleName"]] = _tags(iam.list_role_tags(RoleName=r["RoleName"])["Tags"])
    kms = boto3.client("kms", REGION)
    for key in kms.list_keys()["Keys"]:
        w.key_arns[key["KeyId"]] = w.key_arns[key["KeyArn"]] = key["KeyArn"]
    for alias in kms.list_aliases()["Aliases"]:
        arn = w.key_arns.get(alias.get("TargetKeyId", ""))
        if arn:
            w.key_arns[alias["AliasName"]] = arn
            w.key_aliases.setdefault(arn, []).append(alias["AliasName"])
    for s in boto3.client("secretsmanager", REGION).list_secrets()["SecretList"]:
        w.secret_arns[s["Name"]] = s["ARN"]
    return w


# --- each API call → the IAM requests AWS authorizes for it -----------------------------------------

Mapper = Callable[[Call, World], list[Request]]


def star(action: str) -> Mapper:
    return lambda c, w: [Request(action, "*")]


def role(action: str) -> Mapper:
    return lambda c, w: [w.on_role(action, c.params["RoleName"])]


def _put_parameter(c: Call, w: World) -> list[Request]:
    p = c.params
    out = [w.on_param("ssm:PutParameter", p["Name"])]
    if p.get("Tags"):   # tag on create
        out.append(w.on_param("ssm:AddTagsToResource", p["Name"]))
    if p.get("Type") == "SecureString":   # Standard tier: SSM calls Encrypt; Advanced: GenerateDataKey
        action = "kms:GenerateDataKey" if p.get("Tier") == "Advanced" else "kms:Encrypt"
        out += w.on_key(action, p.get("KeyId") or AWS_MANAGED_KEY, p["Name"])   # no KeyId: SSM's default key
    return out


def _create_role(c: Call, w: World) -> list[Request]:
    tagging = [w.on_role("iam:TagRole", c.params["RoleName"])] if c.params.get("Tags") else []
    return [w.on_role("iam:CreateRole", c.params["RoleName"])] + tagging


def _register(c: Call, w: World) -> list[Request]:
    out = [Request("ecs:RegisterTaskDefinition", "*")]
    for key in ("executionRoleArn", "taskRoleArn"):
        if c.params.get(key):
            out.append(Request("iam:PassRole", c.params[key], {"iam:PassedToService": "ecs-tasks.amazonaws.com"}))
    if c.params.get("tags"):   # tag on create: ECS checks ecs:TagResource on the new revision
        made = c.result_arn or f"arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/{c.params['family']}:*"  # reply lost
        out.append(Request("ecs:TagResource", made, {"ecs:CreateAction": "RegisterTaskDefinition"}))
    return out


def _cluster_arn(cluster: str | None) -> str:
    name = cluster or "default"
    return name if name.startswith("arn:") else f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/{name}"


def _describe_services(c: Call, w: World) -> list[Request]:
    cluster = {"ecs:cluster": _cluster_arn(c.params.get("cluster"))}
    return [Request("ecs:DescribeServices", arn, cluster) for arn in c.params["services"]]


def _table(action: str) -> Mapper:
    return lambda c, w: [Request(action, f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{c.params['TableName']}")]


MAPPING: dict[tuple[str, str], Mapper] = {
    ("sts", "GetCallerIdentity"): star("sts:GetCallerIdentity"),
    ("ssm", "DescribeParameters"): star("ssm:DescribeParameters"),
    ("ssm", "GetParameters"): lambda c, w: [
        r for n in c.params["Names"] for r in w.read_param("ssm:GetParameters", n, c.params.get("WithDecryption"))],
    ("ssm", "GetParameter"): lambda c, w: w.read_param("ssm:GetParameter", c.params["Name"],
                                                       c.params.get("WithDecryption")),
    ("ssm", "PutParameter"): _put_parameter,
    ("ssm", "AddTagsToResource"): lambda c, w: [w.on_param("ssm:AddTagsToResource", c.params["ResourceId"])],
    ("ssm", "ListTagsForResource"): lambda c, w: [w.on_param("ssm:ListTagsForResource", c.params["ResourceId"])],
    ("ssm", "DeleteParameter"): lambda c, w: [w.on_param("ssm:DeleteParameter", c.params["Name"])],
    ("kms", "DescribeKey"): lambda c, w: w.on_key("kms:DescribeKey", c.params["KeyId"]),
    ("secretsmanager", "DescribeSecret"): lambda c, w: [Request(
        "secretsmanager:DescribeSecret", w.secret_arns.get(c.params["SecretId"], c.params["SecretId"]))],
    ("iam", "GetRole"): role("iam:GetRole"),
    ("iam", "GetRolePolicy"): role("iam:GetRolePolicy"),
    ("iam", "ListAttachedRolePolicies"): role("iam:ListAttachedRolePolicies"),
    ("iam", "ListRolePolicies"): role("iam:ListRolePolicies"),
    ("iam", "ListRoleTags"): role("iam:ListRoleTags"),
    ("iam", "ListRoles"): star("iam:ListRoles"),
    ("iam", "GetAccountAuthorizationDetails"): star("iam:GetAccountAuthorizationDetails"),
    ("iam", "GetPolicy"): lambda c, w: [Request("iam:GetPolicy", c.params["PolicyArn"])],
    ("iam", "CreateRole"): _create_role,
    ("iam", "UpdateAssumeRolePolicy"): role("iam:UpdateAssumeRolePolicy"),
    ("iam", "UpdateRole"): role("iam:UpdateRole"),
    ("iam", "AttachRolePolicy"): lambda c, w: [w.on_role("iam:AttachRolePolicy", c.params["RoleName"],
                                                         **{"iam:PolicyARN": c.params["PolicyArn"]})],
    ("iam", "DetachRolePolicy"): role("iam:DetachRolePolicy"),
    ("iam", "PutRolePolicy"): role("iam:PutRolePolicy"),
    ("iam", "DeleteRolePolicy"): role("iam:DeleteRolePolicy"),
    ("iam", "TagRole"): role("iam:TagRole"),
    ("iam", "DeleteRole"): role("iam:DeleteRole"),
    ("ecs", "DescribeTaskDefinition"): star("ecs:DescribeTaskDefinition"),
    ("ecs", "ListTaskDefinitions"): star("ecs:ListTaskDefinitions"),
    ("ecs", "RegisterTaskDefinition"): _register,
    ("ecs", "DeregisterTaskDefinition"): star("ecs:DeregisterTaskDefinition"),
    ("ecs", "TagResource"): lambda c, w: [Request("ecs:TagResource", c.params["resourceArn"])],
    ("ecs", "ListClusters"): star("ecs:ListClusters"),
    ("ecs", "ListServices"): lambda c, w: [Request("ecs:ListServices", "*",
                                                   {"ecs:cluster": _cluster_arn(c.params.get("cluster"))})],
    ("ecs", "DescribeServices"): _describe_services,
    ("resourcegroupstaggingapi", "GetResources"): star("tag:GetResources"),
    # HeadObject is authorized as s3:GetObject (S3 API reference, HeadObject: "you must have the s3:GetObject permission")
    ("s3", "HeadObject"): lambda c, w: [Request("s3:GetObject", f"arn:aws:s3:::{c.params['Bucket']}/{c.params['Key']}")],
    **{("dynamodb", op): _table(f"dynamodb:{op}")
       for op in ("DescribeTable", "CreateTable", "GetItem", "PutItem", "UpdateItem", "DeleteItem")},
}


def requests_of(calls: list[Call], world: World) -> list[tuple[Call, Request]]:
    unmapped = sorted({f"{c.service}:{c.operation}" for c in calls if (c.service, c.operation) not in MAPPING})
    assert not unmapped, f"calls with no IAM mapping (add them to MAPPING and to permissions.STEPS): {unmapped}"
    return [(c, r) for c in calls for r in MAPPING[(c.service, c.operation)](c, world)]


def assert_allowed(policy: dict, calls: list[Call], world: World) -> set[str]:
    """Every request of every call is allowed; returns the actions exercised."""
    assert calls, "nothing was recorded"
    denied = []
    pairs = requests_of(calls, world)
    for call, req in pairs:
        verdict = evaluate([NamedPolicy("controller", policy)], req)
        if verdict.decision is not Decision.ALLOW:
            denied.append(f"{call.service}:{call.operation} needs {req.action} on {req.resource}: {verdict.reason}")
    assert not denied, "the generated policy does not cover:\n" + "\n".join(sorted(set(denied)))
    return {req.action for _, req in pairs}


# --- the reconciles ---------------------------------------------------------------------------------

OLD_OBJECTS = """\
apiVersion: ecs-secrets/v1
kind: Parameter
metadata: {name: old-flag}
spec: {name: /test/old_flag, type: String, deletionPolicy: Delete, value: {literal: "on"}}
---
apiVersion: ecs-secrets/v1
kind: ExecutionRole
metadata: {name: old-exec}
spec: {roleName: old-exec-role, deletionPolicy: Delete}
---
apiVersion: ecs-secrets/v1
kind: ExecutionRole
metadata: {name: old-idle}
spec: {roleName: old-idle-role, deletionPolicy: Delete}
---
apiVersion: ecs-secrets/v1
kind: TaskDefinition
metadata: {name: old-web}
spec:
  family: old-web
  executionRole: old-exec
  deletionPolicy: Delete
  requiresCompatibilities: [FARGATE]
  networkMode: awsvpc
  cpu: "256"
  memory: "512"
  containerDefinitions:
    - name: web
      image: public.ecr.aws/nginx/nginx:1.27
      secrets: [{name: LOG_LEVEL, valueFrom: /test/log_level}]
"""


def seed() -> None:
    """What the manifests expect to exist: the alias of a customer managed key, and the secret, on
    another key whose id only DescribeSecret tells (so observe describes a key found at run time)."""
    kms = boto3.client("kms", REGION)
    key_id = kms.create_key(Description="ecs-secrets test key")["KeyMetadata"]["KeyId"]
    kms.create_alias(AliasName="alias/MyAliasName", TargetKeyId=key_id)
    secret_key = kms.create_key(Description="the secret's key")["KeyMetadata"]["KeyId"]
    boto3.client("secretsmanager", REGION).create_secret(
        Name="payments/stripe-token", SecretString=secrets.token_urlsafe(24), KmsKeyId=secret_key)


def policy_of(path: Path, **target: Any) -> dict:
    return permissions.policy_for(desire(load(path, REGION)), permissions.Target(ACCOUNT, REGION, **target))


@dataclass
class Recorded:
    used: set[str]                 # the IAM actions the calls needed
    result: reconcile.Result
    calls: list[Call]


def reconcile_recorded(path: Path, settings: reconcile.Settings, policy: dict, write: bool = True) -> Recorded:
    """One reconcile (or dry-run) with every call recorded and checked against ``policy``."""
    world = snapshot()
    aws = RecordingAws(region=REGION)
    result = reconcile.make(aws, reconcile.load(str(path), aws), settings)
    reconcile.check(result.plan)
    if write:
        report = reconcile.execute(aws, result)
        assert report.ok, [(o.change.ref, o.result, str(o.error)) for o in report.outcomes if o.result != "applied"]
    assert settings.environ["DB_PASSWORD"] not in repr(aws.recorded)
    return Recorded(assert_allowed(policy, aws.recorded, world), result, aws.recorded)


def drift_everything() -> None:
    """Out-of-band changes that make every update path of apply run."""
    ssm, iam, ecs = (boto3.client(s, REGION) for s in ("ssm", "iam", "ecs"))
    ssm.put_parameter(Name="/test/database_password", Value=secrets.token_urlsafe(12), Type="SecureString",
                      Overwrite=True)
    ssm.put_parameter(Name="/test/api_key", Value=secrets.token_urlsafe(12), Type="SecureString",
                      KeyId="alias/MyAliasName", Description="changed out of band", Overwrite=True)
    ssm.remove_tags_from_resource(ResourceType="Parameter", ResourceId="/test/log_level",
                                  TagKeys=["ecs-secrets:deletion-policy"])
    role = "ecsTaskExecutionRole-web"
    iam.update_assume_role_policy(RoleName=role, PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]}))
    iam.detach_role_policy(RoleName=role, PolicyArn=DEFAULT_MANAGED_POLICY)
    iam.attach_role_policy(RoleName=role, PolicyArn="arn:aws:iam::aws:policy/ReadOnlyAccess")
    iam.delete_role_policy(RoleName=role, PolicyName="ecs-secrets")
    iam.update_role(RoleName=role, Description="changed out of band")
    iam.untag_role(RoleName=role, TagKeys=["team"])
    latest = ecs.describe_task_definition(taskDefinition="web")["taskDefinition"]["taskDefinitionArn"]
    ecs.untag_resource(resourceArn=latest, tagKeys=["ecs-secrets:deletion-policy"])


def register_out_of_band(count: int) -> None:
    """Owned revisions beyond keepRevisions, the newest with another image: register, then deregister
    (all but the one an ECS service still runs)."""
    ecs = boto3.client("ecs", REGION)
    ecs.create_cluster(clusterName="platform")
    ecs.create_service(cluster="platform", serviceName="web", taskDefinition="web:1", desiredCount=0)
    described = ecs.describe_task_definition(taskDefinition="web", include=["TAGS"])
    td, tags = described["taskDefinition"], described["tags"]
    args = {k: td[k] for k in ("family", "containerDefinitions", "executionRoleArn", "networkMode",
                               "requiresCompatibilities", "cpu", "memory") if k in td}
    for _ in range(count):
        ecs.register_task_definition(**args, tags=tags)
    changed = [{**c, "image": "public.ecr.aws/nginx/nginx:1.26"} for c in td["containerDefinitions"]]
    ecs.register_task_definition(**{**args, "containerDefinitions": changed}, tags=tags)


# Granted for manifests/ but not exercised by these reconciles, each for a reason.
UNEXERCISED = {
    *(f"dynamodb:{op}" for op in ("DescribeTable", "CreateTable", "GetItem", "PutItem", "UpdateItem")),  # the lease test
    "ssm:ListTagsForResource",    # read back after a lost reply: see the ambiguous-writes test
    "kms:GenerateDataKey",        # SSM uses it for Advanced-tier parameters only
    "iam:DeleteRolePolicy",       # a role no task definition reads through: see the prune test
}   # ecs:ListTaskDefinitions: every reconcile with a declared role lists the ACTIVE revisions that run as it


@pytest.mark.slow  # CI time: covered again by `-m slow` (README, Testing)
def test_policy_covers_create_dry_run_and_every_repair(aws_env: str, capsys: pytest.CaptureFixture) -> None:
    seed()
    canary = "canary-" + secrets.token_hex(16)
    settings = reconcile.Settings(environ={"DB_PASSWORD": canary})
    policy = policy_of(MANIFESTS, lease_table="ecs-secrets-lease")
    used = reconcile_recorded(MANIFESTS, settings, policy).used
    dry = reconcile_recorded(MANIFESTS, settings, policy, write=False)
    assert not dry.result.plan.changes, "the first reconcile converged"
    drift_everything()
    repaired = reconcile_recorded(MANIFESTS, settings, policy)
    assert {c.ref for c in repaired.result.plan.changes} == {
        "Parameter/db-password", "Parameter/api-key", "Parameter/log-level", "ExecutionRole/web-exec",
        "TaskDefinition/web"}
    register_out_of_band(6)
    revised = reconcile_recorded(MANIFESTS, settings, policy)
    assert any(c.ref == "TaskDefinition/web" and c.op.register for c in revised.result.plan.changes)
    assert not any(f.path.startswith("revision web:") for c in revised.result.plan.changes for f in c.fields), \
        "keepRevisions deregisters only with --prune"
    granted = {a for s in policy["Statement"] for a in s["Action"]}
    assert granted - (used | dry.used | repaired.used | revised.used) == UNEXERCISED
    out = capsys.readouterr()
    assert canary not in out.out + out.err


@pytest.mark.slow  # CI time: covered again by `-m slow` (README, Testing)
def test_policy_with_prune_covers_deleting_what_left_the_manifests(aws_env: str, tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture) -> None:
    seed()
    canary = "canary-" + secrets.token_hex(16)
    settings = reconcile.Settings(environ={"DB_PASSWORD": canary})
    full = tmp_path / "manifests"
    shutil.copytree(MANIFESTS, full)
    (full / "old.yaml").write_text(OLD_OBJECTS)
    used = reconcile_recorded(full, settings, policy_of(full)).used
    iam = boto3.client("iam", REGION)   # an inline policy on a role that no longer needs one
    iam.put_role_policy(RoleName="old-idle-role", PolicyName="ecs-secrets", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "*"}]}))
    used |= reconcile_recorded(full, settings, policy_of(full)).used
    (full / "old.yaml").unlink()
    register_out_of_band(6)   # and keepRevisions: with --prune it deregisters the old revisions of web
    pruning = reconcile.Settings(environ=settings.environ, prune=True, max_deletions=20)
    pruned = reconcile_recorded(full, pruning, policy_of(full, prune=True))
    assert any(f.path.startswith("revision web:") for c in pruned.result.plan.changes for f in c.fields)
    used |= pruned.used
    # old-exec-role is kept while old-web's revisions, deregistered by that run, still named it
    used |= reconcile_recorded(full, pruning, policy_of(full, prune=True)).used
    assert {"iam:ListRoles", "tag:GetResources", "iam:ListRoleTags", "iam:ListRolePolicies", "iam:DeleteRole",
            "iam:DeleteRolePolicy", "iam:DetachRolePolicy", "ssm:DeleteParameter",
            "ecs:DeregisterTaskDefinition", "ecs:ListClusters", "ecs:ListServices", "ecs:DescribeServices"} <= used
    names = {r["RoleName"] for r in iam.list_roles()["Roles"]}
    assert not names & {"old-exec-role", "old-idle-role"}
    ssm = boto3.client("ssm", REGION)
    assert not ssm.get_parameters(Names=["/test/old_flag"])["Parameters"]
    ecs = boto3.client("ecs", REGION)
    assert not ecs.list_task_definitions(familyPrefix="old-web", status="ACTIVE")["taskDefinitionArns"]
    out = capsys.readouterr()
    assert canary not in out.out + out.err


# --- the command and the committed copy ---------------------------------------------------------------

DEPLOY_ARGS = ["controller-policy", "-f", str(MANIFESTS), "--account", ACCOUNT, "--region", REGION,
               "--lease-table", "ecs-secrets-lease"]


def test_committed_policy_is_what_the_command_prints(capsys: pytest.CaptureFixture) -> None:
    assert main(DEPLOY_ARGS) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads(COMMITTED.read_text()), (
        "deploy/iam/controller-policy.json is stale; regenerate it with: ecs-secrets " + " ".join(
            a if a != str(MANIFESTS) else "manifests/" for a in DEPLOY_ARGS) + " > deploy/iam/controller-policy.json")


def test_account_must_be_twelve_digits(capsys: pytest.CaptureFixture) -> None:
    assert main(["controller-policy", "-f", str(MANIFESTS), "--account", "12345", "--region", REGION]) == 1
    assert "12 digits" in capsys.readouterr().err


def test_sandbox_takes_the_account_from_sts() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")} | TEST_ENV
    done = subprocess.run([sys.executable, "-m", "controller", *DEPLOY_ARGS[:3], "--sandbox", *DEPLOY_ARGS[5:]],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == json.loads(COMMITTED.read_text())


@pytest.mark.slow  # CI time: covered again by `-m slow` (README, Testing)
def test_policy_covers_the_reads_after_ambiguous_writes(aws_env: str, monkeypatch: pytest.MonkeyPatch,
                                                        no_backoff: None, capsys: pytest.CaptureFixture) -> None:
    """Lost replies and 5xx on writes make apply read back what it wrote (controller/aws/idempotency.py)."""
    seed()
    canary = "canary-" + secrets.token_hex(16)
    settings = reconcile.Settings(environ={"DB_PASSWORD": canary})
    policy = policy_of(MANIFESTS, lease_table="ecs-secrets-lease")
    lost = [FaultRule("lost_reply", match=m, limit=1)
            for m in ("ssm:PutParameter", "iam:CreateRole", "ecs:RegisterTaskDefinition")]
    with FaultProxy(aws_env, rules=lost) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        created = reconcile_recorded(MANIFESTS, settings, policy)
        assert len(proxy.injected) == 3
    monkeypatch.setenv("AWS_ENDPOINT_URL", aws_env)
    key_id = boto3.client("kms", REGION).create_key(Description="moved out of band")["KeyMetadata"]["KeyId"]
    ssm = boto3.client("ssm", REGION)   # the generated value moves to another key; apply moves it back
    value = ssm.get_parameter(Name="/test/api_key", WithDecryption=True)["Parameter"]["Value"]
    ssm.put_parameter(Name="/test/api_key", Value=value, Type="SecureString", KeyId=key_id,
                      Description="Key for the payments API", Overwrite=True)
    with FaultProxy(aws_env, rules=[FaultRule("http500", match="ssm:PutParameter", limit=1)]) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        rewritten = reconcile_recorded(MANIFESTS, settings, policy)
        assert proxy.injected == [("ssm", "PutParameter", "http500")]
    ops = [(c.operation, c.params.get("KeyId")) for c in created.calls + rewritten.calls]
    assert ("ListTagsForResource", None) in ops                     # parameter_is_ours
    assert ops.count(("DescribeKey", key_id)) == 2                  # observe, then idempotency._same_key
    out = capsys.readouterr()
    assert canary not in out.out + out.err


def test_policy_covers_the_lease(aws_env: str) -> None:
    """Leader election as `run --lease-table` does it: create the table, acquire, renew, watch, release."""
    from controller.daemon.lease import Lease
    policy = policy_of(MANIFESTS, lease_table="ecs-secrets-lease")
    aws = RecordingAws(region=REGION)
    leader, follower = (Lease(aws, "ecs-secrets-lease", "ecs-secrets", holder=h) for h in ("a", "b"))
    assert leader.step() and leader.step() and not follower.step()
    leader.release()
    used = assert_allowed(policy, aws.recorded, World())
    lease = {a for st in policy["Statement"] if st["Sid"] == "LeaderElectionLease" for a in st["Action"]}
    assert used == lease


TASK_READS = """\
apiVersion: ecs-secrets/v1
kind: ExecutionRole
metadata: {name: exec}
spec: {roleName: files-exec}
---
apiVersion: ecs-secrets/v1
kind: TaskDefinition
metadata: {name: files}
spec:
  family: files
  executionRole: exec
  containerDefinitions:
    - name: app
      image: registry.example.com/app:1
      memory: 256
      repositoryCredentials: {credentialsParameter: payments/stripe-token}
      environmentFiles: [{type: s3, value: "arn:aws:s3:::app-config/prod.env"}]
"""


def test_policy_covers_the_checks_of_other_task_start_reads(aws_env: str, tmp_path: Path) -> None:
    """The S3 files tasks read must exist before any write: observe's HeadObject is in the policy, on that object."""
    seed()
    s3 = boto3.client("s3", REGION)
    s3.create_bucket(Bucket="app-config")
    s3.put_object(Bucket="app-config", Key="prod.env", Body=b"A=1\n")
    (tmp_path / "files.yaml").write_text(TASK_READS)
    policy = policy_of(tmp_path)
    assert {"Sid": "CheckReferencedS3FilesExist", "Effect": "Allow", "Action": ["s3:GetObject"],
            "Resource": ["arn:aws:s3:::app-config/prod.env"]} in policy["Statement"]
    used = reconcile_recorded(tmp_path, reconcile.Settings(environ={"DB_PASSWORD": "unused"}), policy).used
    assert {"s3:GetObject", "secretsmanager:DescribeSecret"} <= used
