"""controller/core/permissions.py, table by table: the shape of the generated controller policy. Pure: no AWS."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import pytest

from controller.core import permissions
from controller.verify.iam_eval import Decision, NamedPolicy, Request, evaluate
from controller.core.desired import desire
from controller.manifests.loader import load

ACCOUNT, REGION = "123456789012", "us-east-1"
MANIFESTS = Path(__file__).resolve().parent.parent / "manifests"


def policy_of(path: Path, **target: Any) -> dict:
    return permissions.policy_for(desire(load(path, REGION)), permissions.Target(ACCOUNT, REGION, **target))


OTHER = "111122223333"


@pytest.mark.parametrize("keys, grants", [
    ([("us-east-1", "alias/A")],
     [("ByAlias", ["arn:aws:kms:us-east-1:123456789012:key/*"], ["alias/A"])]),
    ([("us-east-1", f"arn:aws:kms:eu-west-1:{OTHER}:alias/B")],
     [("ByAlias", [f"arn:aws:kms:eu-west-1:{OTHER}:key/*"], ["alias/B"])]),
    ([("us-east-1", f"arn:aws:kms:eu-west-1:{OTHER}:key/1234abcd-12ab-34cd-56ef-1234567890ab")],
     [("", [f"arn:aws:kms:eu-west-1:{OTHER}:key/1234abcd-12ab-34cd-56ef-1234567890ab"], None)]),
    ([("eu-west-1", "1234abcd-12ab-34cd-56ef-1234567890ab")],
     [("", ["arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"], None)]),
    ([("us-east-1", "alias/A"), ("us-east-1", "mrk-1"), ("us-east-1", "alias/A")],
     [("", ["arn:aws:kms:us-east-1:123456789012:key/mrk-1"], None),
      ("ByAlias", ["arn:aws:kms:us-east-1:123456789012:key/*"], ["alias/A"])]),
])
def test_key_grants_use_key_arns_and_narrow_aliases_by_resource_aliases(keys, grants):
    found = permissions.key_grants(permissions.Target(ACCOUNT, REGION), keys)
    aliases = [(g.condition or {}).get("ForAnyValue:StringEquals", {}).get("kms:ResourceAliases") for g in found]
    assert [(g.suffix, list(g.resources), a) for g, a in zip(found, aliases)] == grants


@pytest.mark.parametrize("secret_id, patterns", [
    ("payments/stripe-token", ["arn:aws:secretsmanager:us-east-1:123456789012:secret:payments/stripe-token-??????"]),
    (f"arn:aws:secretsmanager:eu-west-1:{OTHER}:secret:db-AbCdEf",
     [f"arn:aws:secretsmanager:eu-west-1:{OTHER}:secret:db-AbCdEf-??????",
      f"arn:aws:secretsmanager:eu-west-1:{OTHER}:secret:db-AbCdEf"]),
    (f"arn:aws:secretsmanager:eu-west-1:{OTHER}:secret:db",
     [f"arn:aws:secretsmanager:eu-west-1:{OTHER}:secret:db-??????"]),
])
def test_secret_patterns_match_the_random_suffix(secret_id, patterns):
    assert permissions._secret_patterns(permissions.Target(ACCOUNT, REGION), REGION, ACCOUNT, secret_id) == patterns


ELSEWHERE = """\
apiVersion: ecs-secrets/v1
kind: Parameter
metadata: {name: token}
spec:
  name: /app/token
  region: eu-west-1
  kmsKeyId: arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab
  value: {fromEnv: TOKEN}
---
apiVersion: ecs-secrets/v1
kind: TaskDefinition
metadata: {name: app}
spec:
  family: app
  executionRole: shared-exec
  taskRoleArn: arn:aws:iam::123456789012:role/app/app-task
  containerDefinitions:
    - name: app
      image: public.ecr.aws/nginx/nginx:1.27
      memory: 128
      secrets:
        - {name: TOKEN, valueFrom: "arn:aws:ssm:eu-west-1:123456789012:parameter/app/token"}
        - {name: FLAG, valueFrom: /shared/flag}
"""


def statements_of(policy: dict) -> dict[str, dict]:
    return {s["Sid"]: s for s in policy["Statement"]}


def test_policy_for_external_roles_other_regions_and_undeclared_parameters(tmp_path: Path) -> None:
    (tmp_path / "app.yaml").write_text(ELSEWHERE)
    s = statements_of(policy_of(tmp_path))
    token = "arn:aws:ssm:eu-west-1:123456789012:parameter/app/token"
    assert s["EncryptOnlyOurParametersThroughSsm"]["Resource"] == ["arn:aws:kms:eu-west-1:123456789012:key/"
                                                                   "1234abcd-12ab-34cd-56ef-1234567890ab"]
    assert s["EncryptOnlyOurParametersThroughSsm"]["Condition"] == {"StringEquals": {
        "kms:ViaService": ["ssm.eu-west-1.amazonaws.com"], "kms:EncryptionContext:PARAMETER_ARN": [token]}}
    assert s["DecryptOnlyOurParametersThroughSsm"]["Resource"] == ["arn:aws:kms:eu-west-1:123456789012:key/*"]
    assert s["CompareParameterValues"]["Resource"] == ["arn:aws:ssm:eu-west-1:123456789012:parameter/app/token"]
    external = ["arn:aws:iam::123456789012:role/*/shared-exec", "arn:aws:iam::123456789012:role/shared-exec"]
    assert s["ReadExternalRoles"]["Resource"] == external
    task_role = "arn:aws:iam::123456789012:role/app/app-task"
    assert s["PassRolesToEcsTasksOnly"]["Resource"] == sorted(external + [task_role])
    assert s["DescribeKeysKnownOnlyAtRunTime"]["Resource"] == ["arn:aws:kms:eu-west-1:123456789012:key/*",
                                                               "arn:aws:kms:us-east-1:123456789012:key/*"]
    assert "DescribeKeys" not in s, "the declared key's Region is covered already"
    assert "ecs:DeregisterTaskDefinition" not in s["TaskDefinitionActionsSupportOnlyAllResources"]["Action"]
    assert not {"ReadExecutionRoles", "ManageExecutionRoles", "LeaderElectionLease",
                "DeleteOnlyOwnedParametersTaggedDelete", "DescribeReferencedSecrets"} & set(s)


def test_partition_reaches_arns_and_service_names() -> None:
    target = permissions.Target(ACCOUNT, "cn-north-1", partition="aws-cn")
    policy = permissions.policy_for(desire(load(MANIFESTS, "cn-north-1")), target)
    resources = [r for st in policy["Statement"] if st["Resource"] != "*" for r in st["Resource"]]
    assert resources and all(r.startswith("arn:aws-cn:") for r in resources)
    encrypt = statements_of(policy)["EncryptOnlyOurParametersThroughSsmByAlias"]
    via = encrypt["Condition"]["StringEquals"]["kms:ViaService"]
    # kms:ViaService is SERVICE.REGION.amazonaws.com in China too, not the endpoint's .amazonaws.com.cn
    # (AWS KMS Developer Guide, "kms:ViaService"; docs.amazonaws.cn/kms/latest/developerguide/conditions-kms.html)
    assert via == ["ssm.cn-north-1.amazonaws.com"]


# The Service Authorization Reference lists no resource type for these: "*" is all AWS accepts.
STAR_ONLY = {"sts:GetCallerIdentity", "ssm:DescribeParameters", "ecs:DescribeTaskDefinition",
             "ecs:RegisterTaskDefinition", "ecs:DeregisterTaskDefinition", "ecs:ListTaskDefinitions",
             "iam:ListRoles", "iam:GetAccountAuthorizationDetails", "tag:GetResources", "ecs:ListClusters",
             "ecs:ListServices"}


def test_star_only_where_aws_requires_it_and_steps_are_consistent() -> None:
    policy = policy_of(MANIFESTS, lease_table="t", prune=True)
    for st in policy["Statement"]:
        assert re.fullmatch(r"[A-Za-z0-9]+", st["Sid"])
        if st["Resource"] == "*":
            assert set(st["Action"]) <= STAR_ONLY, st
            assert "AllResources" in st["Sid"] or "NoResourceType" in st["Sid"]
        else:
            assert not set(st["Action"]) & STAR_ONLY, st
    assert len({st["Sid"] for st in policy["Statement"]}) == len(policy["Statement"])
    by_sid: dict[str, tuple] = {}
    for step in permissions.STEPS:
        assert step.on in permissions.RESOURCES and set(step.conditions) <= set(permissions.CONDITIONS)
        assert by_sid.setdefault(step.sid, (step.on, step.conditions)) == (step.on, step.conditions), step


def test_switches_add_exactly_their_statements() -> None:
    plain = statements_of(policy_of(MANIFESTS))
    both = statements_of(policy_of(MANIFESTS, lease_table="ecs-secrets-lease", prune=True))
    assert set(both) - set(plain) == {"LeaderElectionLease", "PruneListingsSupportOnlyAllResources",
                                      "ReadRoleTagsToFindOwned", "DeleteOnlyOwnedRolesTaggedDelete",
                                      "DeleteOnlyOwnedParametersTaggedDelete",
                                      # only --prune deregisters, keepRevisions too
                                      "ListClustersAndServicesSupportOnlyAllResources", "DescribeServicesInUse"}
    assert both["LeaderElectionLease"]["Resource"] == [f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/ecs-secrets-lease"]
    deregister = "ecs:DeregisterTaskDefinition"
    assert deregister in both["TaskDefinitionActionsSupportOnlyAllResources"]["Action"]
    assert deregister not in plain["TaskDefinitionActionsSupportOnlyAllResources"]["Action"]
    both["TaskDefinitionActionsSupportOnlyAllResources"]["Action"].remove(deregister)
    assert {k: v for k, v in both.items() if k in plain} == plain


def tagged(owner: str = "ecs-secrets", deletion: str = "Delete") -> dict:
    return {"aws:ResourceTag/ecs-secrets:owner": owner, "aws:ResourceTag/ecs-secrets:deletion-policy": deletion}


KEY = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/ecsTaskExecutionRole-web"
API_KEY = f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/test/api_key"
VIA_SSM = {"kms:ResourceAliases": ["alias/MyAliasName"], "kms:ViaService": f"ssm.{REGION}.amazonaws.com",
           "kms:EncryptionContext:PARAMETER_ARN": API_KEY}


@pytest.mark.parametrize("action, resource, context", [
    ("iam:PassRole", ROLE, {"iam:PassedToService": "lambda.amazonaws.com"}),
    ("iam:PassRole", f"arn:aws:iam::{ACCOUNT}:role/admin", {"iam:PassedToService": "ecs-tasks.amazonaws.com"}),
    ("iam:AttachRolePolicy", ROLE, {"iam:PolicyARN": "arn:aws:iam::aws:policy/AdministratorAccess"}),
    ("iam:CreateRole", f"arn:aws:iam::{ACCOUNT}:role/other", {}),
    ("ssm:GetParameters", f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/prod/db", {}),
    ("ssm:PutParameter", f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/test/other", {}),
    ("ssm:GetParameter", f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/test/other", {}),
    ("kms:Encrypt", KEY, {**VIA_SSM, "kms:ResourceAliases": ["alias/other"]}),
    ("kms:Encrypt", KEY, {**VIA_SSM, "kms:EncryptionContext:PARAMETER_ARN": API_KEY.replace("api_key", "other")}),
    ("kms:Decrypt", KEY, {**VIA_SSM, "kms:EncryptionContext:PARAMETER_ARN": API_KEY.replace("api_key", "other")}),
    ("kms:Decrypt", KEY, {**VIA_SSM, "kms:ViaService": f"s3.{REGION}.amazonaws.com"}),
    ("kms:Decrypt", f"arn:aws:kms:eu-west-1:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab", VIA_SSM),
    ("secretsmanager:GetSecretValue", f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:payments/stripe-token-AbCdEf",
     {}),
    ("ecs:TagResource", f"arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/other:1", {}),
    ("ssm:DeleteParameter", f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/test/old", tagged(owner="someone-else")),
    ("ssm:DeleteParameter", f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/test/old", tagged(deletion="Retain")),
    ("iam:DeleteRole", f"arn:aws:iam::{ACCOUNT}:role/other", tagged(deletion="Retain")),
    ("dynamodb:PutItem", f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/other", {}),
])
def test_policy_denies_what_reconciling_does_not_need(action, resource, context):
    policy = policy_of(MANIFESTS, lease_table="ecs-secrets-lease", prune=True)
    verdict = evaluate([NamedPolicy("controller", policy)], Request(action, resource, context))
    assert verdict.decision is Decision.IMPLICIT_DENY, verdict


def test_permissions_module_is_pure() -> None:
    tree = ast.parse(Path(permissions.__file__).read_text())
    imported = {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert not {m for m in imported if m.split(".")[0] in ("boto3", "botocore", "os", "time")}


MANY_ROLES = "\n---\n".join(f"""\
apiVersion: ecs-secrets/v1
kind: ExecutionRole
metadata: {{name: r{i}}}
spec: {{roleName: role-{i}, managedPolicyArns: []}}""" for i in range(permissions.LIST_MIN_ROLES))


def test_many_roles_are_listed_account_wide_and_nothing_attaches_without_managed_policies(tmp_path: Path) -> None:
    from controller.aws import observe_iam
    assert permissions.LIST_MIN_ROLES == observe_iam.LIST_MIN_ROLES
    (tmp_path / "roles.yaml").write_text(MANY_ROLES)
    s = statements_of(policy_of(tmp_path))
    assert s["ListRolesSupportsOnlyAllResources"]["Action"] == ["iam:GetAccountAuthorizationDetails"]
    assert len(s["ManageExecutionRoles"]["Resource"]) == permissions.LIST_MIN_ROLES
    assert "AttachDeclaredManagedPoliciesOnly" not in s and "PassRolesToEcsTasksOnly" not in s
    (tmp_path / "roles.yaml").write_text(MANY_ROLES.rsplit("\n---\n", 1)[0])
    assert "ListRolesSupportsOnlyAllResources" not in statements_of(policy_of(tmp_path))


def test_a_declared_key_in_a_region_without_run_time_keys_is_described_by_alias(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text("""\
apiVersion: ecs-secrets/v1
kind: Parameter
metadata: {name: managed-elsewhere}
spec: {name: /x/y, kmsKeyId: alias/Team}
""")
    s = statements_of(policy_of(tmp_path))
    assert s["DescribeKeysByAlias"]["Resource"] == ["arn:aws:kms:us-east-1:123456789012:key/*"]
    assert s["DescribeKeysByAlias"]["Condition"] == {
        "ForAnyValue:StringEquals": {"kms:ResourceAliases": ["alias/Team"]}}
    assert not {"DescribeKeysKnownOnlyAtRunTime", "EncryptOnlyOurParametersThroughSsmByAlias",
                "DecryptOnlyOurParametersThroughSsm", "WriteParameters"} & set(s)


def test_clusters_narrow_the_in_use_scan() -> None:
    everywhere = statements_of(policy_of(MANIFESTS, prune=True))   # only --prune deregisters
    listing = everywhere["ListClustersAndServicesSupportOnlyAllResources"]
    assert listing["Action"] == ["ecs:ListClusters", "ecs:ListServices"] and "Condition" not in listing
    assert "Condition" not in everywhere["DescribeServicesInUse"]
    b = "arn:aws:ecs:us-east-1:123456789012:cluster/b"
    narrowed = statements_of(policy_of(MANIFESTS, prune=True, clusters=("platform", b)))
    listing = narrowed["ListClustersAndServicesSupportOnlyAllResources"]
    clusters = ["arn:aws:ecs:us-east-1:123456789012:cluster/platform", b]
    assert listing["Action"] == ["ecs:ListServices"]
    assert listing["Condition"] == {"ArnEquals": {"ecs:cluster": clusters}}
    assert narrowed["DescribeServicesInUse"]["Condition"] == {"ArnEquals": {"ecs:cluster": clusters}}
