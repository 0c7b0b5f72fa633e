"""The controller's own least-privilege IAM policy, derived from the manifests. Pure.

As in cloud-custodian, permissions are data. ``STEPS`` lists every call site of observe and apply
with the IAM actions it needs (including those AWS checks implicitly: tag-on-create, iam:PassRole,
the KMS calls SSM makes for us), the kind of resource it touches and the statement that grants it.
``policy_for`` resolves each resource kind against the manifests (exact parameter, key, secret and
role ARNs, task-definition families, the lease table) and merges the steps into statements.

``"*"`` appears only where the Service Authorization Reference lists no resource type for the
action (ssm:DescribeParameters; ecs Describe/Register/Deregister/ListTaskDefinitions, ListClusters,
ListServices; iam:ListRoles, GetAccountAuthorizationDetails; tag:GetResources; sts:GetCallerIdentity),
and the Sid says so. Where a name is only known at run time the resource is a pattern narrowed by a
condition: the keys SSM decrypts with (whatever key a parameter has now) by kms:ViaService and the
encryption context PARAMETER_ARN that SSM sets to the parameter's ARN; what --prune deletes by its tags.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable, Iterable

from controller.core.desired import (DELETION_TAG, OWNER_TAG, Desired, DesiredParameter, DesiredRole,
                                    DesiredTaskDefinition)
from controller.core.events import queue_url
from controller.vocab import arns

VERSION = "2012-10-17"
MAX_MANAGED_POLICY_CHARS = 6_144  # IAM counts the document without white space
ECS_TASKS = "ecs-tasks.amazonaws.com"
LIST_MIN_ROLES = 4  # observe_iam lists the account's roles from this many declared roles on
_SECRET_SUFFIX = re.compile(r"-[A-Za-z0-9]{6}$")  # the random suffix Secrets Manager appends to a name


@dataclass(frozen=True)
class Target:
    """Where the controller runs and with which switches; the manifests say the rest."""

    account: str
    region: str
    partition: str = "aws"
    owner: str = "ecs-secrets"
    lease_table: str | None = None
    prune: bool = False
    clusters: tuple[str, ...] = ()   # --cluster: where services may use our revisions; (): every cluster
    verify_services: tuple[str, ...] = ()   # --verify-service CLUSTER/NAME: what `verify --service` reads of them
    events_queue: str | None = None  # run --events: the queue's URL


@dataclass(frozen=True)
class Step:
    site: str                      # where the call is made (module.function: what)
    actions: tuple[str, ...]
    sid: str                       # the statement that grants it
    on: str                        # the resource kind: a key of RESOURCES
    conditions: tuple[str, ...] = ()  # keys of CONDITIONS, all of which must hold
    only: str | None = None        # a key of ``wanted``: needed only then


STEPS: tuple[Step, ...] = (
    Step("observe._account", ("sts:GetCallerIdentity",), "GetCallerIdentityHasNoResourceType", "*"),
    Step("observe_ssm.describe_parameters: owned, by name, by tag", ("ssm:DescribeParameters",),
         "DescribeParametersSupportsOnlyAllResources", "*"),
    Step("observe_ssm._Values: values to compare", ("ssm:GetParameters",), "CompareParameterValues", "compared_parameters"),
    Step("writers._value: a generated value rewritten with new fields; idempotency: read back after an "
         "ambiguous write", ("ssm:GetParameter", "ssm:ListTagsForResource"), "ReadBackParameters", "valued_parameters"),
    Step("writers.put_parameter: create (tags on create), overwrite, retag",
         ("ssm:PutParameter", "ssm:AddTagsToResource"), "WriteParameters", "valued_parameters"),
    Step("observe._key_arn: declared customer managed keys", ("kms:DescribeKey",), "DescribeKeys", "declared_keys"),
    Step("observe._key_arn: keys of referenced secrets and undeclared parameters; idempotency._same_key: "
         "the key a SecureString has after an ambiguous write", ("kms:DescribeKey",),
         "DescribeKeysKnownOnlyAtRunTime", "runtime_keys"),
    Step("SSM decrypts for observe_ssm._Values, writers._value, idempotency: under whatever key a parameter has now "
         "(out-of-band moves included), so any key, but only through SSM and only for our parameters",
         ("kms:Decrypt",), "DecryptOnlyOurParametersThroughSsm", "secure_parameter_keys",
         ("via_ssm", "decrypted_parameters")),
    Step("SSM encrypts for writers.put_parameter (Advanced tier: GenerateDataKey) under the declared keys",
         ("kms:Encrypt", "kms:GenerateDataKey"), "EncryptOnlyOurParametersThroughSsm", "encrypting_keys",
         ("via_ssm", "encrypted_parameters")),
    Step("observe._read_secrets", ("secretsmanager:DescribeSecret",), "DescribeReferencedSecrets", "secrets"),
    Step("observe._read_objects: HeadObject on the S3 files tasks read at start (it needs s3:GetObject)",
         ("s3:GetObject",), "CheckReferencedS3FilesExist", "s3_objects"),
    Step("observe_iam._read_role", ("iam:GetRole", "iam:GetRolePolicy", "iam:ListAttachedRolePolicies"),
         "ReadExecutionRoles", "declared_roles"),
    Step("observe_iam.read_roles: roles named but not declared", ("iam:GetRole",), "ReadExternalRoles",
         "external_roles"),
    Step("observe_iam._list_roles: one account-wide listing instead of three reads a role", (
        "iam:GetAccountAuthorizationDetails",), "ListRolesSupportsOnlyAllResources", "*", only="many_roles"),
    Step("writers.put_role (CreateRole with tags needs TagRole)",
         ("iam:CreateRole", "iam:TagRole", "iam:UpdateAssumeRolePolicy", "iam:UpdateRole", "iam:DetachRolePolicy",
          "iam:PutRolePolicy", "iam:DeleteRolePolicy"), "ManageExecutionRoles", "declared_roles"),
    Step("observe_iam._missing_policies: managed policies to attach must exist", ("iam:GetPolicy",),
         "ReadDeclaredManagedPolicies", "managed_policies"),
    Step("writers.put_role: attach", ("iam:AttachRolePolicy",), "AttachDeclaredManagedPoliciesOnly",
         "attaching_roles", ("declared_policy_arns",)),
    Step("writers.put_task_definition: RegisterTaskDefinition passes the roles", ("iam:PassRole",),
         "PassRolesToEcsTasksOnly", "passed_roles", ("passed_to_ecs_tasks",)),
    Step("observe_ecs.latest, observe_prune._referenced", ("ecs:DescribeTaskDefinition",),
         "TaskDefinitionActionsSupportOnlyAllResources", "*"),
    Step("writers.put_task_definition: register", ("ecs:RegisterTaskDefinition",),
         "TaskDefinitionActionsSupportOnlyAllResources", "*"),
    Step("observe_ecs.active_revisions: keepRevisions, or the latest revision is not ours",
         ("ecs:ListTaskDefinitions",), "TaskDefinitionActionsSupportOnlyAllResources", "*"),
    Step("writers.put_task_definition (keepRevisions), writers.deregister_family", ("ecs:DeregisterTaskDefinition",),
         "TaskDefinitionActionsSupportOnlyAllResources", "*", only="revisions"),
    Step("writers.put_task_definition: tags on register, retag a revision", ("ecs:TagResource",),
         "TagTaskDefinitions", "families"),
    Step("inuse: the clusters whose services may use a revision about to be deregistered (no --cluster)",
         ("ecs:ListClusters",), "ListClustersAndServicesSupportOnlyAllResources", "*", ("in_clusters",),
         only="all_clusters"),
    Step("inuse: their services", ("ecs:ListServices",), "ListClustersAndServicesSupportOnlyAllResources", "*",
         ("in_clusters",), only="revisions"),
    Step("inuse: the revisions those services and their deployments use", ("ecs:DescribeServices",),
         "DescribeServicesInUse", "services", ("in_clusters",), only="revisions"),
    Step("observe_prune: list roles and tagged task definitions", ("iam:ListRoles", "tag:GetResources"),
         "PruneListingsSupportOnlyAllResources", "*", only="prune"),
    Step("observe_prune._roles: whose tags say owned (names unknown until listed)", ("iam:ListRoleTags",),
         "ReadRoleTagsToFindOwned", "all_roles", only="prune"),
    Step("observe_prune._role, writers.delete_role",
         ("iam:ListRolePolicies", "iam:ListAttachedRolePolicies", "iam:DeleteRolePolicy", "iam:DetachRolePolicy",
          "iam:DeleteRole"), "DeleteOnlyOwnedRolesTaggedDelete", "all_roles", ("owned_and_deletable",), only="prune"),
    Step("writers.delete_parameter", ("ssm:DeleteParameter",), "DeleteOnlyOwnedParametersTaggedDelete",
         "all_parameters", ("owned_and_deletable",), only="prune"),
    Step("verify.observe_network.service: the service and the revision it runs now", ("ecs:DescribeServices",),
         "VerifyReadsTheNamedServices", "verify_services", only="verify_network"),
    Step("verify.observe_network.Reader: the subnets, route tables, NAT gateways, VPC endpoints (with their policies), "
         "security groups and DNS attributes of the services' VPCs",
         ("ec2:DescribeSubnets", "ec2:DescribeRouteTables", "ec2:DescribeNatGateways", "ec2:DescribeVpcEndpoints",
          "ec2:DescribeSecurityGroups", "ec2:DescribeVpcAttribute"),
         "VerifyNetworkEc2DescribeSupportsOnlyAllResources", "*", only="verify_network"),
    Step("lease: the leader-election item and its table (created on demand)",
         ("dynamodb:DescribeTable", "dynamodb:CreateTable", "dynamodb:GetItem", "dynamodb:PutItem",
          "dynamodb:UpdateItem"), "LeaderElectionLease", "lease_table", only="lease"),
    Step("daemon.events: long polls, deletes after the reconcile, returns a failed round later, probes the queue",
         ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility", "sqs:GetQueueAttributes"),
         "ReadTheEventsQueue", "events_queue", only="events"),
)


# --- what the manifests touch ---------------------------------------------------------------

@dataclass(frozen=True)
class Param:
    region: str
    name: str
    key: str | None       # a customer managed KMS key as written; None for alias/aws/* or String
    secure: bool          # SecureString
    compared: bool        # its value is read to compare (fromEnv, fromFile, literal)
    generated: bool       # generate: read back only to rewrite it with other fields


@dataclass(frozen=True)
class Scope:
    target: Target
    params: tuple[Param, ...] = ()
    secrets: tuple[str, ...] = ()              # ARN patterns
    runtime_key_regions: tuple[str, ...] = ()
    roles: tuple[str, ...] = ()                # declared role ARNs
    attaching: tuple[str, ...] = ()            # declared role ARNs with managed policies
    external_roles: tuple[str, ...] = ()       # ARN patterns of roles named but not declared
    passed_roles: tuple[str, ...] = ()
    families: tuple[str, ...] = ()
    managed_policies: tuple[str, ...] = ()
    keep_revisions: bool = False
    many_roles: bool = False
    objects: tuple[str, ...] = ()              # S3 object ARNs tasks read at start


def scope(desired: Desired, target: Target) -> Scope:
    """What ``desired`` touches, as ARNs of ``target``'s account and Region (the one ``desired`` was loaded in)."""
    if target.region != desired.region:
        raise ValueError(f"the manifests were loaded for {desired.region}, the policy asked for {target.region}")
    t = target
    params = tuple(_param(p) for p in desired.parameters.values())
    roles, tds = desired.roles, desired.task_definitions
    secrets: set[str] = set()
    runtime_regions: set[str] = set()
    for td in tds:
        for ref in td.references:
            region = ref.region or t.region
            if ref.secret_id:
                secrets.update(_secret_patterns(t, region, ref.account or t.account, ref.secret_id))
            if ref.secret_id or (ref.service == "ssm" and (region, ref.name) not in desired.parameters):
                runtime_regions.add(region)
    runtime_regions |= {p.region for p in params if p.secure and (p.compared or p.generated)}
    return Scope(
        target=t, params=params, secrets=tuple(sorted(secrets)), runtime_key_regions=tuple(sorted(runtime_regions)),
        roles=tuple(_role_arn(t, r) for r in roles),
        attaching=tuple(_role_arn(t, r) for r in roles if r.managed),
        external_roles=tuple(sorted({p for td in tds for p in _external(desired, td, t)})),
        passed_roles=tuple(sorted({p for td in tds for p in _passed(desired, td, t)})),
        families=tuple(sorted({td.family for td in tds})),
        managed_policies=tuple(sorted({a for r in roles for a in r.managed})),
        keep_revisions=any(td.keep_revisions for td in tds),
        many_roles=len(roles) >= LIST_MIN_ROLES,
        objects=tuple(sorted({o for n in desired.reads.values() for o in n.objects})))


def _param(p: DesiredParameter) -> Param:
    return Param(p.region, p.name, p.custom_key, p.type == "SecureString",
                 compared=p.compares_value, generated=p.source is not None and p.source.generate is not None)


def _role_arn(t: Target, role: DesiredRole) -> str:
    return arns.role_arn(t.partition, t.account, role.path, role.name)


def _role_patterns(t: Target, name_or_arn: str) -> list[str]:
    """A role known by name only may sit under any path: ``role/NAME`` or ``role/<path>/NAME``."""
    if name_or_arn.startswith("arn:"):
        return [name_or_arn]
    base = f"arn:{t.partition}:iam::{t.account}:role/"
    return [base + name_or_arn, base + "*/" + name_or_arn]


def _external(desired: Desired, td: DesiredTaskDefinition, t: Target) -> list[str]:
    return _role_patterns(t, td.role) if td.role in desired.external_roles else []


def _passed(desired: Desired, td: DesiredTaskDefinition, t: Target) -> list[str]:
    fields = td.fields
    out = [p for key in ("executionRoleArn", "taskRoleArn") if fields.get(key) for p in _role_patterns(t, fields[key])]
    if not fields.get("executionRoleArn") and td.role:
        role = desired.get(td.declared_role) if td.declared_role else None
        out += [_role_arn(t, role)] if role is not None else _role_patterns(t, td.role)
    return out


def _secret_patterns(t: Target, region: str, account: str, secret_id: str) -> list[str]:
    """IAM sees the full ARN, which ends in ``-`` and six random characters: match them with ``-??????``."""
    arn = secret_id if secret_id.startswith("arn:") else \
        f"arn:{t.partition}:secretsmanager:{region}:{account}:secret:{secret_id}"
    complete = secret_id.startswith("arn:") and _SECRET_SUFFIX.search(secret_id)
    return [arn + "-??????"] + ([arn] if complete else [])


# --- resource kinds and conditions --------------------------------------------------------------

@dataclass(frozen=True)
class Grant:
    resources: tuple[str, ...]
    condition: dict | None = field(default=None, compare=False)
    suffix: str = ""              # appended to the Sid when one kind yields several statements


def _grant(resources: Iterable[str]) -> list[Grant]:
    found = tuple(sorted(set(resources)))
    return [Grant(found)] if found else []


def _parameters(pick: Callable[[Param], bool]) -> Callable[[Scope], list[Grant]]:
    def grants(s: Scope) -> list[Grant]:
        t = s.target
        return _grant(arns.parameter_arn(t.partition, p.region, t.account, p.name) for p in s.params if pick(p))
    return grants


def _keys(pick: Callable[[Param], bool]) -> Callable[[Scope], list[Grant]]:
    def grants(s: Scope) -> list[Grant]:
        return key_grants(s.target, [(p.region, p.key) for p in s.params if p.key and pick(p)])
    return grants


def key_grants(t: Target, keys: Iterable[tuple[str, str]]) -> list[Grant]:
    """Keys by ARN are exact. IAM authorizes a call made with an alias against the key it points
    to, never the alias ARN, so an alias becomes ``key/*`` narrowed by kms:ResourceAliases."""
    exact: set[str] = set()
    aliased: dict[tuple[str, str], set[str]] = {}
    for region, key in keys:
        arn = arns.parse_arn(key)
        if arn is not None and arn.resource.startswith("alias/"):
            aliased.setdefault((arn.region, arn.account), set()).add(arn.resource)
        elif arn is not None:
            exact.add(key)
        elif key.startswith("alias/"):
            aliased.setdefault((region, t.account), set()).add(key)
        else:
            exact.add(f"arn:{t.partition}:kms:{region}:{t.account}:key/{key}")
    out = _grant(exact)
    if aliased:
        names = sorted(set().union(*aliased.values()))
        out.append(Grant(tuple(sorted(f"arn:{t.partition}:kms:{r}:{a}:key/*" for r, a in aliased)),
                         {"ForAnyValue:StringEquals": {"kms:ResourceAliases": names}}, "ByAlias"))
    return out


def _not_at_run_time(s: Scope, grants: list[Grant]) -> list[Grant]:
    """Keys of a Region where DescribeKey is allowed on ``key/*`` anyway need no statement of their own."""
    covered = {_arn(s, "kms", "key/", r) for r in s.runtime_key_regions}
    out = []
    for g in grants:
        left = tuple(r for r in g.resources if r.rsplit("/", 1)[0] + "/" not in covered)
        if left:
            out.append(Grant(left, g.condition, g.suffix))
    return out


def _arn(s: Scope, service: str, resource: str, region: str | None = None) -> str:
    t = s.target
    return f"arn:{t.partition}:{service}:{t.region if region is None else region}:{t.account}:{resource}"


RESOURCES: dict[str, Callable[[Scope], list[Grant]]] = {
    "*": lambda s: [Grant(("*",))],
    "compared_parameters": _parameters(lambda p: p.compared),
    "valued_parameters": _parameters(lambda p: p.compared or p.generated),
    "declared_keys": lambda s: _not_at_run_time(s, _keys(lambda p: True)(s)),
    "encrypting_keys": _keys(lambda p: p.secure and (p.compared or p.generated)),
    "secure_parameter_keys": lambda s: _grant(_arn(s, "kms", "key/*", r) for r in {p.region for p in _secure(s)}),
    "runtime_keys": lambda s: _grant(_arn(s, "kms", "key/*", r) for r in s.runtime_key_regions),
    "secrets": lambda s: _grant(s.secrets),
    "s3_objects": lambda s: _grant(s.objects),
    "declared_roles": lambda s: _grant(s.roles),
    "attaching_roles": lambda s: _grant(s.attaching),
    "managed_policies": lambda s: _grant(a for a in s.managed_policies if a.startswith(f"arn:{s.target.partition}:")),
    "external_roles": lambda s: _grant(s.external_roles),
    "passed_roles": lambda s: _grant(s.passed_roles),
    "families": lambda s: _grant(_arn(s, "ecs", f"task-definition/{f}:*") for f in s.families),
    "services": lambda s: _grant([_arn(s, "ecs", "service/*")]),   # both ARN formats; ecs:cluster narrows
    "all_roles": lambda s: _grant([_arn(s, "iam", "role/*", region="")]),
    "all_parameters": lambda s: _grant(_arn(s, "ssm", "parameter/*", r)
                                       for r in {s.target.region} | {p.region for p in s.params}),
    "lease_table": lambda s: _grant([_arn(s, "dynamodb", f"table/{s.target.lease_table}")]),
    "verify_services": lambda s: _grant(a for ref in s.target.verify_services for a in _service_arns(s, ref)),
    "events_queue": lambda s: _grant([queue_url(s.target.events_queue).arn(s.target.partition, s.target.region)]),
}


def _service_arns(s: Scope, ref: str) -> list[str]:
    """CLUSTER/NAME as IAM sees it: ``service/CLUSTER/NAME``, or ``service/NAME`` for a service created before
    the long ARN format (ECS Developer Guide, "Amazon Resource Names (ARNs) and IDs")."""
    cluster, _, name = ref.partition("/")
    return [_arn(s, "ecs", f"service/{cluster}/{name}"), _arn(s, "ecs", f"service/{name}")]


def _via_ssm(s: Scope, g: Grant) -> dict:
    """kms:ViaService names the calling service as SERVICE.REGION.amazonaws.com in every partition,
    China included (not the .amazonaws.com.cn of its endpoints): AWS KMS Developer Guide, kms:ViaService."""
    regions = sorted({r.split(":")[3] for r in g.resources})
    return {"StringEquals": {"kms:ViaService": [f"ssm.{r}.amazonaws.com" for r in regions]}}


def _secure(s: Scope, custom_key: bool = False) -> list[Param]:
    """SecureStrings we write (and so read back), optionally only those under a customer managed key."""
    return [p for p in s.params if p.secure and (p.compared or p.generated) and (p.key or not custom_key)]


def _encryption_context(params: list[Param], s: Scope) -> dict:
    """SSM encrypts every SecureString with the encryption context PARAMETER_ARN = the parameter's ARN."""
    t = s.target
    return {"StringEquals": {"kms:EncryptionContext:PARAMETER_ARN": sorted(
        arns.parameter_arn(t.partition, p.region, t.account, p.name) for p in params)}}


def _in_clusters(s: Scope, g: Grant) -> dict:
    """With --cluster, only the services of those clusters; without, every cluster's."""
    clusters = [c if c.startswith("arn:") else _arn(s, "ecs", f"cluster/{c}") for c in s.target.clusters]
    return {"ArnEquals": {"ecs:cluster": clusters}} if clusters else {}


CONDITIONS: dict[str, Callable[[Scope, Grant], dict]] = {
    "via_ssm": _via_ssm,
    "in_clusters": _in_clusters,
    "decrypted_parameters": lambda s, g: _encryption_context(_secure(s), s),
    "encrypted_parameters": lambda s, g: _encryption_context(_secure(s, custom_key=True), s),
    "declared_policy_arns": lambda s, g: {"ArnEquals": {"iam:PolicyARN": list(s.managed_policies)}},
    "passed_to_ecs_tasks": lambda s, g: {"StringEquals": {"iam:PassedToService": ECS_TASKS}},
    "owned_and_deletable": lambda s, g: {"StringEquals": {f"aws:ResourceTag/{OWNER_TAG}": s.target.owner,
                                                          f"aws:ResourceTag/{DELETION_TAG}": "Delete"}},
}


# --- the document ------------------------------------------------------------------------------

def wanted(step: Step, s: Scope) -> bool:
    t = s.target
    revisions = t.prune   # a deregistration may be on the table: only --prune deletes, keepRevisions too
    return {None: True, "prune": t.prune, "lease": bool(t.lease_table), "events": bool(t.events_queue),
            "revisions": revisions, "all_clusters": revisions and not t.clusters, "many_roles": s.many_roles,
            "verify_network": bool(t.verify_services)}[step.only]


def merge_conditions(*blocks: dict | None) -> dict | None:
    out: dict[str, dict] = {}
    for block in blocks:
        for operator, keys in (block or {}).items():
            out.setdefault(operator, {}).update(keys)
    return out or None


def policy_for(desired: Desired, target: Target) -> dict:
    """The identity policy for the controller reconciling ``desired`` as ``target`` says."""
    s = scope(desired, target)
    statements: dict[str, dict] = {}
    for step in STEPS:
        if not wanted(step, s):
            continue
        for grant in RESOURCES[step.on](s):
            sid = step.sid + grant.suffix
            condition = merge_conditions(grant.condition, *(CONDITIONS[c](s, grant) for c in step.conditions))
            statement = statements.setdefault(sid, _statement(sid, grant, condition))
            statement["Action"] = sorted(set(statement["Action"]) | set(step.actions))
    return {"Version": VERSION, "Statement": list(statements.values())}


def _statement(sid: str, grant: Grant, condition: dict | None) -> dict:
    resource: str | list[str] = "*" if grant.resources == ("*",) else list(grant.resources)
    out = {"Sid": sid, "Effect": "Allow", "Action": [], "Resource": resource}
    if condition:
        out["Condition"] = condition
    return out
