"""Desired state: the manifests resolved against what only AWS knows (account, key and secret ARNs).

Pure. ``Context`` carries the looked-up facts; ``placeholder_context`` fills it with stand-ins of the
right length so that ``validate`` can size the derived policies without calling AWS.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from controller.vocab import arns, policy
from controller.vocab.arns import Reference, parse_value_from
from controller.manifests.ecsmodel import ecs_input
from controller.manifests.loader import Manifest, Obj
from controller.manifests.models import DEFAULT_KMS_KEY
from controller.vocab.secretrefs import secret_uses

OWNER_TAG = "ecs-secrets:owner"
DELETION_TAG = "ecs-secrets:deletion-policy"


@dataclass(frozen=True)
class Context:
    account: str
    region: str
    partition: str = "aws"
    key_arns: Mapping[tuple[str, str], str | None] = field(default_factory=dict)  # (region, key as written) → ARN; None: AWS-managed
    secret_arns: Mapping[tuple[str, str], str] = field(default_factory=dict)       # (region, secret id) → full ARN
    secret_keys: Mapping[str, str | None] = field(default_factory=dict)            # secret ARN → its KMS key id, if custom
    param_keys: Mapping[tuple[str, str], str] = field(default_factory=dict)        # (region, name) → KeyId of an undeclared parameter
    role_arns: Mapping[str, str] = field(default_factory=dict)                     # external role name → ARN


def tags_of(obj: Obj, owner: str) -> dict[str, str]:
    """Every tag we write: the object's own, who owns it, and what --prune may do with it later."""
    return {**checked_tags(obj), OWNER_TAG: owner}


def checked_tags(obj: Obj) -> dict[str, str]:
    own = obj.spec.tags if obj.kind != "TaskDefinition" else {
        t["key"]: t["value"] for t in obj.spec.ecs_fields().get("tags") or []}
    return {**own, DELETION_TAG: obj.spec.deletionPolicy}


def is_aws_managed_key(key_id: str | None) -> bool:
    return key_id is None or key_id.startswith("alias/aws/")


def parameter_region(obj: Obj, ctx_region: str) -> str:
    return obj.spec.region or ctx_region


def declared_parameters(manifest: Manifest, region: str) -> dict[tuple[str, str], Obj]:
    """(region, SSM name) → Parameter; made once per manifest and Region (read-only: do not mutate)."""
    return manifest.memo(("declared_parameters", region), lambda: {
        (parameter_region(o, region), o.spec.name): o for o in manifest.of("Parameter")})


def execution_role(manifest: Manifest, td: Obj) -> Obj | None:
    """The declared ExecutionRole a TaskDefinition uses, by metadata.name or by roleName."""
    wanted = td.spec.executionRole
    if wanted is None:
        return None
    by_role_name = manifest.memo("roles_by_roleName", lambda: {
        r.spec.roleName: r for r in reversed(manifest.of("ExecutionRole"))})  # the first wins, as with next()
    return manifest.get("ExecutionRole", wanted) or by_role_name.get(wanted)


def role_arn_for(manifest: Manifest, td: Obj, ctx: Context) -> str | None:
    fields = td.spec.ecs_fields()
    if fields.get("executionRoleArn"):
        return fields["executionRoleArn"]
    wanted = td.spec.executionRole
    if wanted is None:
        return None
    role = execution_role(manifest, td)
    if role is not None:
        return arns.role_arn(ctx.partition, ctx.account, role.spec.path, role.spec.roleName)
    if wanted.startswith("arn:"):
        return wanted
    return ctx.role_arns.get(wanted) or arns.role_arn(ctx.partition, ctx.account, "/", wanted)


def references(td: Obj) -> list[Reference]:
    return [parse_value_from(u.value_from) for u in secret_uses(td.spec.ecs_fields())]


@dataclass
class Grants:
    parameters: set[str] = field(default_factory=set)
    secrets: set[str] = field(default_factory=set)
    keys: set[str] = field(default_factory=set)
    lookups: set[tuple[str, str, str]] = field(default_factory=set)   # ("kms"|"secret", region, id) it relied on

    def document(self) -> dict | None:
        return policy.derive(self.parameters, self.secrets, self.keys)


def grants_for(manifest: Manifest, role: Obj, ctx: Context) -> Grants:
    grants = Grants()
    declared = declared_parameters(manifest, ctx.region)
    for td in _tasks_by_role(manifest).get(id(role), ()):
        for ref in references(td):
            _grant(grants, ref, declared, ctx)
    return grants


def _tasks_by_role(manifest: Manifest) -> dict[int, list[Obj]]:
    """id(declared ExecutionRole) → the TaskDefinitions that use it, in manifest order; made once."""
    def index() -> dict[int, list[Obj]]:
        out: dict[int, list[Obj]] = {}
        for td in manifest.of("TaskDefinition"):
            role = execution_role(manifest, td)
            if role is not None:
                out.setdefault(id(role), []).append(td)
        return out
    return manifest.memo("tasks_by_role", index)


def _grant(grants: Grants, ref: Reference, declared: dict, ctx: Context) -> None:
    region = ref.region or ctx.region
    secret = ref.secret_id
    if ref.service == "ssm":
        grants.parameters.add(arns.parameter_arn(ctx.partition, region, ref.account or ctx.account, ref.name))
        obj = declared.get((region, ref.name))
        key = (obj.spec.kmsKeyId or DEFAULT_KMS_KEY) if obj else ctx.param_keys.get((region, ref.name))
        _grant_key(grants, region, key, ctx)
    if secret is not None:
        grants.lookups.add(("secret", region, secret))
        secret_arn = ctx.secret_arns.get((region, secret), secret)
        grants.secrets.add(secret_arn)
        _grant_key(grants, region, ctx.secret_keys.get(secret_arn), ctx)


def _grant_key(grants: Grants, region: str, key: str | None, ctx: Context) -> None:
    if is_aws_managed_key(key):
        return
    grants.lookups.add(("kms", region, key))
    arn = ctx.key_arns.get((region, key), key)
    if arn:
        grants.keys.add(arn)


def task_definition_body(manifest: Manifest, td: Obj, ctx: Context) -> dict[str, Any]:
    """The RegisterTaskDefinition input we would send, without tags."""
    body = ecs_input(td.spec.ecs_fields())
    body.pop("tags", None)
    role = role_arn_for(manifest, td, ctx)
    if role:
        body["executionRoleArn"] = role
    return body


def placeholder_context(manifest: Manifest, region: str) -> Context:
    """Stand-ins as long as the real ARNs, to size policies before any AWS call."""
    account = "000000000000"
    key_arns = {}
    for obj in manifest.of("Parameter"):
        key = obj.spec.kmsKeyId
        if key and not is_aws_managed_key(key):
            r = parameter_region(obj, region)
            key_arns[(r, key)] = key if key.startswith("arn:") and ":key/" in key else \
                f"arn:aws:kms:{r}:{account}:key/00000000-0000-0000-0000-000000000000"
    secrets = {}
    for td in manifest.of("TaskDefinition"):
        for ref in references(td):
            if ref.secret_id and ref.service == "ssm":
                secrets[(region, ref.secret_id)] = f"arn:aws:secretsmanager:{region}:{account}:secret:{ref.secret_id}-XXXXXX"
    return Context(account=account, region=region, key_arns=key_arns, secret_arns=secrets)
